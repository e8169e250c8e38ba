//! What loupe reports beyond bench_serving: per-token ITL next to the chunk-gap ITL, the time
//! requests waited in the client for a concurrency slot, E2E counted from the schedule (no
//! coordinated omission), the client's schedule lag, goodput against SLOs, and any
//! percentiles from HdrHistograms (which merge exactly across runs and workers).

use hdrhistogram::Histogram;

use crate::metrics::Dist;
use crate::plan::Slos;
use crate::record::RequestRecord;

/// Schedule lag (p99) above which the client, not the server, may be setting the timings.
pub const LAG_WARN_MS: f64 = 5.0;

/// One metric's HdrHistogram summary (milliseconds).
#[derive(Debug, Clone, PartialEq)]
pub struct HdrSummary {
    pub name: &'static str,
    pub count: u64,
    pub mean: f64,
    pub max: f64,
    /// (percentile, value) for each requested percentile.
    pub at: Vec<(f64, f64)>,
}

/// bench_serving's goodput (SGLang's `GoodputMetrics`, same JSONL keys).
#[derive(Debug, Clone, PartialEq)]
pub struct Goodput {
    pub slos_ms: Slos,
    /// Good requests per second.
    pub request_goodput: f64,
    /// Good requests over requests sent (failures count as missed).
    pub slo_attainment: f64,
    pub by_metric: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Default)]
pub struct Beyond {
    pub itl_token: Dist,
    /// Requests whose per-chunk token counts stayed unknown (no usage, no tokenizer).
    pub itl_token_unknown: usize,
    pub client_queue: Dist,
    pub e2e_incl_queue: Dist,
    pub schedule_lag: Dist,
    pub hdr: Vec<HdrSummary>,
    pub goodput: Option<Goodput>,
    /// Successful requests whose output length was assumed (the server sent no count).
    pub output_len_assumed: usize,
    /// Multi-turn workloads: figures per round.
    pub turns: Vec<crate::turns::TurnFigures>,
    /// The prefix-cache hits the server reported.
    pub cache: crate::turns::CacheHits,
    pub prompt_len_check: crate::turns::PromptLenCheck,
    /// Between the warm-up and cool-down windows (None: no windows asked for).
    pub steady: Option<crate::windows::WindowFigures>,
    /// Per --slice-duration slice.
    pub slices: Vec<crate::windows::WindowFigures>,
    /// Whether the dispatcher thread had a real-time priority (None: no dispatcher).
    pub realtime_dispatch: Option<bool>,
}

/// Microsecond histogram, 3 significant digits, growing as needed.
fn histogram(values: impl IntoIterator<Item = f64>) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(3).expect("3 significant digits is valid");
    for v in values {
        let us = (v * 1e6).round().max(0.0) as u64;
        // `record` grows the histogram; `saturating_record` would clamp to its current range.
        if h.record(us).is_err() {
            h.saturating_record(us);
        }
    }
    h
}

fn hdr(name: &'static str, h: &Histogram<u64>, pcts: &[f64]) -> HdrSummary {
    let ms = |us: u64| us as f64 / 1000.0;
    HdrSummary {
        name,
        count: h.len(),
        mean: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
        max: ms(h.max()),
        at: pcts
            .iter()
            .map(|&p| {
                (
                    p,
                    if h.is_empty() {
                        0.0
                    } else {
                        ms(h.value_at_quantile(p / 100.0))
                    },
                )
            })
            .collect(),
    }
}

/// bench_serving's `calculate_goodput`.
pub fn goodput(records: &[RequestRecord], slos: &Slos, duration: f64) -> Goodput {
    let mut good = 0usize;
    let mut met = vec![0usize; slos.len()];
    for r in records.iter().filter(|r| r.ok) {
        // A single-token response has no inter-token interval; its TPOT counts as 0.
        let observed = |k: &str| match k {
            "ttft" => r.ttft * 1000.0,
            "tpot" => r.tpot().unwrap_or(0.0) * 1000.0,
            _ => r.latency * 1000.0,
        };
        let mut all = true;
        for (i, (k, slo)) in slos.iter().enumerate() {
            if observed(k) <= *slo {
                met[i] += 1;
            } else {
                all = false;
            }
        }
        good += usize::from(all);
    }
    let n = records.len().max(1) as f64;
    Goodput {
        slos_ms: slos.clone(),
        request_goodput: good as f64 / duration.max(1e-9),
        slo_attainment: good as f64 / n,
        by_metric: slos
            .iter()
            .zip(met)
            .map(|((k, _), m)| (k.clone(), m as f64 / n))
            .collect(),
    }
}

pub fn summarize(
    records: &[RequestRecord],
    duration: f64,
    percentiles: &[f64],
    slos: &Slos,
) -> Beyond {
    let ok: Vec<&RequestRecord> = records.iter().filter(|r| r.ok).collect();
    let mut itl_chunk = Vec::new();
    let mut itl_token = Vec::new();
    for r in &ok {
        itl_chunk.extend_from_slice(&r.gaps);
        r.token_itl(&mut itl_token);
    }
    let series: [(&'static str, Vec<f64>); 8] = [
        ("ttft", ok.iter().map(|r| r.ttft).collect()),
        ("tpot", ok.iter().filter_map(|r| r.tpot()).collect()),
        ("itl_chunk", itl_chunk),
        ("itl_token", itl_token.clone()),
        ("e2e_latency", ok.iter().map(|r| r.latency).collect()),
        (
            "e2e_latency_incl_queue",
            ok.iter().map(|r| r.e2e_incl_queue()).collect(),
        ),
        (
            "client_queue",
            records.iter().map(|r| r.client_queue()).collect(),
        ),
        (
            "schedule_lag",
            records.iter().map(|r| r.schedule_lag()).collect(),
        ),
    ];
    let hdr = series
        .iter()
        .map(|(name, v)| hdr(name, &histogram(v.iter().copied()), percentiles))
        .collect();
    Beyond {
        itl_token: Dist::of_seconds(itl_token),
        itl_token_unknown: ok.iter().filter(|r| !r.token_counts_known()).count(),
        client_queue: Dist::of_seconds(records.iter().map(|r| r.client_queue())),
        e2e_incl_queue: Dist::of_seconds(ok.iter().map(|r| r.e2e_incl_queue())),
        schedule_lag: Dist::of_seconds(records.iter().map(|r| r.schedule_lag())),
        hdr,
        goodput: (!slos.is_empty()).then(|| goodput(records, slos, duration)),
        output_len_assumed: ok.iter().filter(|r| !r.output_len_reported).count(),
        turns: crate::turns::per_turn(records),
        cache: crate::turns::cache_hits(ok.iter().copied()),
        prompt_len_check: crate::turns::PromptLenCheck::of(records),
        steady: None,
        slices: Vec::new(),
        realtime_dispatch: None,
    }
}

impl Beyond {
    /// Warnings about the client's own timing, for the report. `scheduled`: the requests had
    /// due times (a finite rate or a ramp). With everything due at once there is no schedule
    /// to keep: the "lag" is only how long the last tasks took to start, and they wait for a
    /// concurrency slot or the server anyway.
    pub fn client_warnings(&self, cpu: Option<&ClientCpu>, scheduled: bool) -> Vec<String> {
        let mut w: Vec<String> = self.prompt_len_check.warning().into_iter().collect();
        if scheduled && self.schedule_lag.p99 > LAG_WARN_MS {
            w.push(format!(
                "the client lagged its schedule: p99 {:.2} ms, max {:.2} ms late (warning above \
                 {LAG_WARN_MS} ms); arrivals and latencies may be the client's, not the server's{}",
                self.schedule_lag.p99,
                self.schedule_lag.max,
                if self.realtime_dispatch == Some(false) {
                    " (the dispatcher thread was refused a real-time priority: run as root or \
                     with CAP_SYS_NICE for a punctual schedule on a loaded machine)"
                } else {
                    ""
                }
            ));
        }
        if let Some(c) = cpu
            && c.utilisation() > 0.9
        {
            w.push(format!(
                "this process used {:.0}% of the {} cores during the run: timings may be \
                 client-bound{}",
                100.0 * c.utilisation(),
                c.cores,
                if c.includes_server {
                    " (the embedded server runs in this process)"
                } else {
                    ""
                }
            ));
        }
        w
    }
}

/// CPU time this process spent during the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientCpu {
    pub seconds: f64,
    pub wall: f64,
    pub cores: usize,
    /// The embedded server shares the process, so its work is in `seconds` too.
    pub includes_server: bool,
}

impl ClientCpu {
    pub fn utilisation(&self) -> f64 {
        self.seconds / (self.wall.max(1e-9) * self.cores.max(1) as f64)
    }
}

/// User + system CPU seconds of this process so far.
pub fn process_cpu_seconds() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete rusage into the pointer it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return 0.0;
    }
    // SAFETY: rc == 0 means the kernel filled the struct.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ttft: f64, latency: f64, out: usize) -> RequestRecord {
        RequestRecord {
            ok: true,
            ttft,
            latency,
            output_len: out,
            output_len_reported: true,
            ..Default::default()
        }
    }

    #[test]
    fn goodput_counts_requests_meeting_every_slo() {
        let recs = [
            rec(0.1, 1.0, 10),
            rec(0.6, 1.0, 10),
            rec(0.1, 5.0, 1),
            RequestRecord::default(),
        ];
        let slos = vec![("ttft".to_string(), 500.0), ("tpot".to_string(), 150.0)];
        let g = goodput(&recs, &slos, 2.0);
        // Request 1 meets both; 2 misses TTFT; 3 is a single token (TPOT 0); 4 failed.
        assert_eq!(g.request_goodput, 1.0);
        assert_eq!(g.slo_attainment, 0.5);
        assert_eq!(
            g.by_metric,
            vec![("ttft".to_string(), 0.5), ("tpot".to_string(), 0.75)]
        );
    }

    #[test]
    fn hdr_percentiles_track_the_exact_ones() {
        let recs: Vec<RequestRecord> = (1..=1000).map(|i| rec(i as f64 / 1000.0, 2.0, 2)).collect();
        let b = summarize(&recs, 10.0, &[50.0, 99.9], &Vec::new());
        let ttft = b.hdr.iter().find(|h| h.name == "ttft").unwrap();
        assert_eq!(ttft.count, 1000);
        assert!((ttft.at[0].1 - 500.0).abs() < 1.0, "{:?}", ttft.at);
        // Within HdrHistogram's 3 significant digits (and one rank of rounding).
        assert!((ttft.at[1].1 - 999.0).abs() < 2.0, "{:?}", ttft.at);
        assert!(b.goodput.is_none());
    }

    #[test]
    fn lag_and_cpu_warnings() {
        let mut b = Beyond::default();
        assert!(b.client_warnings(None, true).is_empty());
        b.schedule_lag.p99 = 12.0;
        let cpu = ClientCpu {
            seconds: 19.0,
            wall: 10.0,
            cores: 2,
            includes_server: false,
        };
        let w = b.client_warnings(Some(&cpu), true);
        assert_eq!(w.len(), 2);
        let unscheduled = b.client_warnings(Some(&cpu), false);
        assert_eq!(
            unscheduled.len(),
            1,
            "no schedule, no lag warning: {unscheduled:?}"
        );
        assert!(w[0].contains("lagged") && w[1].contains("95%"), "{w:?}");
        assert!(!w[0].contains("real-time"), "{w:?}");
        // the lag's likely cause, when the dispatcher was refused its priority
        b.realtime_dispatch = Some(false);
        let w = b.client_warnings(None, true);
        assert!(w[0].contains("refused a real-time priority"), "{w:?}");
        b.realtime_dispatch = Some(true);
        assert!(!b.client_warnings(None, true)[0].contains("real-time"));
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let a = process_cpu_seconds();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_seconds() > a);
    }
}
