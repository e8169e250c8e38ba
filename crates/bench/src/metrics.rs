//! bench_serving's `calculate_metrics`, with NumPy's percentile (linear interpolation) and
//! population standard deviation, so the numbers line up with bench_serving's: TTFT, TPOT
//! (excluding the first token), ITL (chunk gaps; per token on the native route), E2E,
//! throughputs over the run's duration, Little's-law concurrency, and the 1 s peak windows.

use crate::record::RequestRecord;

/// mean, median, std, p90, p95, p99 and max of one latency, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Dist {
    pub mean: f64,
    pub median: f64,
    pub std: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// NumPy's default `percentile` (linear interpolation) over sorted data.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

impl Dist {
    /// From values in seconds; reported in milliseconds (all zeros when empty, as
    /// bench_serving's `or 0` guard).
    pub fn of_seconds(values: impl IntoIterator<Item = f64>) -> Dist {
        let mut v: Vec<f64> = values.into_iter().map(|x| x * 1000.0).collect();
        if v.is_empty() {
            return Dist::default();
        }
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        Dist {
            mean,
            median: percentile(&v, 50.0),
            std: var.sqrt(),
            p90: percentile(&v, 90.0),
            p95: percentile(&v, 95.0),
            p99: percentile(&v, 99.0),
            max: *v.last().expect("non-empty"),
        }
    }
}

/// bench_serving's `BenchmarkMetrics`.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub duration: f64,
    pub completed: usize,
    pub failed: usize,
    pub total_input_tokens: usize,
    /// Of `total_input_tokens`: the text's and the images' (non-zero only for image and
    /// mmmu runs, see [`Summary::count_vision`]).
    pub total_input_text_tokens: usize,
    pub total_input_vision_tokens: usize,
    pub total_output_tokens: usize,
    /// None when no client tokenizer was available (or --disable-retokenize).
    pub total_output_tokens_retokenized: Option<usize>,
    pub request_throughput: f64,
    pub input_throughput: f64,
    pub output_throughput: f64,
    pub total_throughput: f64,
    pub concurrency: f64,
    pub max_output_tokens_per_s: f64,
    pub max_concurrent_requests: usize,
    pub e2e: Dist,
    pub ttft: Dist,
    pub tpot: Dist,
    pub itl: Dist,
}

/// `native`: the run used /generate (its ITL is split per token). `retokenized`: per-record
/// output token counts from the client tokenizer, when there is one.
pub fn summarize(
    records: &[RequestRecord],
    duration: f64,
    native: bool,
    retokenized: Option<&[usize]>,
) -> Summary {
    let ok: Vec<&RequestRecord> = records.iter().filter(|r| r.ok).collect();
    let d = duration.max(1e-9);
    // A round of a conversation has no client-side length unless its dataset gave one: its
    // prompt is what the server counted (bench_serving reports 0 for multi-turn runs).
    let total_in: usize = ok
        .iter()
        .map(|r| match r.prompt_len {
            0 => r.server_prompt_len.unwrap_or(0),
            n => n,
        })
        .sum();
    let total_out: usize = ok.iter().map(|r| r.output_len).sum();
    let retok = retokenized.map(|lens| {
        records
            .iter()
            .zip(lens)
            .filter(|(r, _)| r.ok)
            .map(|(_, n)| n)
            .sum()
    });
    let mut itl = Vec::new();
    for r in &ok {
        r.sglang_itl(native, &mut itl);
    }
    let (peak_tokens, peak_requests) = peaks(&ok, native);
    Summary {
        duration,
        completed: ok.len(),
        failed: records.len() - ok.len(),
        total_input_tokens: total_in,
        total_input_text_tokens: total_in,
        total_input_vision_tokens: 0,
        total_output_tokens: total_out,
        total_output_tokens_retokenized: retok,
        request_throughput: ok.len() as f64 / d,
        input_throughput: total_in as f64 / d,
        output_throughput: total_out as f64 / d,
        total_throughput: (total_in + total_out) as f64 / d,
        concurrency: ok.iter().map(|r| r.latency).sum::<f64>() / d,
        max_output_tokens_per_s: peak_tokens,
        max_concurrent_requests: peak_requests,
        e2e: Dist::of_seconds(ok.iter().map(|r| r.latency)),
        ttft: Dist::of_seconds(ok.iter().map(|r| r.ttft)),
        tpot: Dist::of_seconds(ok.iter().filter_map(|r| r.tpot())),
        itl: Dist::of_seconds(itl),
    }
}

impl Summary {
    /// Requests with images: the client counted only their text (`prompt_len`, as upstream's
    /// text-only `text_prompt_len`); the server's `prompt_tokens` holds text and image
    /// tokens, so the input is the server's count and the vision tokens are the difference
    /// (upstream gets the same split from the model's processor). A request whose server
    /// reported no count counts its text only.
    pub fn count_vision(&mut self, records: &[RequestRecord]) {
        let ok = records.iter().filter(|r| r.ok);
        let text: usize = ok.clone().map(|r| r.prompt_len).sum();
        let vision: usize = ok
            .map(|r| {
                r.server_prompt_len
                    .map_or(0, |s| s.saturating_sub(r.prompt_len))
            })
            .sum();
        let d = self.duration.max(1e-9);
        self.total_input_text_tokens = text;
        self.total_input_vision_tokens = vision;
        self.total_input_tokens = text + vision;
        self.input_throughput = self.total_input_tokens as f64 / d;
        self.total_throughput = (self.total_input_tokens + self.total_output_tokens) as f64 / d;
    }
}

/// bench_serving's peak windows: 1 s buckets from the first start, one token at
/// start + TTFT and one after each ITL entry; a request counts in every bucket it spans.
fn peaks(ok: &[&RequestRecord], native: bool) -> (f64, usize) {
    let b = buckets_of(ok, native);
    (
        b.tokens.into_iter().max().unwrap_or(0) as f64,
        b.requests.into_iter().max().unwrap_or(0),
    )
}

/// The 1-second buckets behind `max_output_tokens_per_s` and `max_concurrent_requests`
/// (what bench_serving's --plot-throughput draws), from the first successful start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// Output tokens in each second.
    pub tokens: Vec<usize>,
    /// Requests in flight at some time within each second.
    pub requests: Vec<usize>,
}

/// The buckets of a run's successful requests.
pub fn buckets(records: &[RequestRecord], native: bool) -> Buckets {
    let ok: Vec<&RequestRecord> = records.iter().filter(|r| r.ok).collect();
    buckets_of(&ok, native)
}

fn buckets_of(ok: &[&RequestRecord], native: bool) -> Buckets {
    let Some(t_min) = ok.iter().map(|r| r.start).min_by(f64::total_cmp) else {
        return Buckets::default();
    };
    let t_max = ok
        .iter()
        .map(|r| r.start + r.latency)
        .max_by(f64::total_cmp)
        .unwrap_or(t_min);
    let n = (t_max - t_min).ceil() as usize + 1;
    let mut tokens = vec![0usize; n];
    let mut requests = vec![0usize; n];
    let mut itl = Vec::new();
    for r in ok {
        let mut t = r.start + r.ttft;
        let mut bump = |t: f64| {
            let b = (t - t_min) as usize;
            if let Some(c) = tokens.get_mut(b) {
                *c += 1;
            }
        };
        bump(t);
        itl.clear();
        r.sglang_itl(native, &mut itl);
        for gap in &itl {
            t += gap;
            bump(t);
        }
        let a = (r.start - t_min) as usize;
        let b = ((r.start + r.latency - t_min) as usize).min(n - 1);
        for c in &mut requests[a..=b] {
            *c += 1;
        }
    }
    Buckets { tokens, requests }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vision_tokens_are_the_servers_count_less_the_text() {
        let mut a = rec(0.0, 5);
        a.prompt_len = 10;
        a.server_prompt_len = Some(110);
        let mut b = rec(0.5, 5);
        b.prompt_len = 20;
        b.server_prompt_len = None;
        let mut s = summarize(&[a.clone(), b.clone()], 2.0, false, None);
        assert_eq!(s.total_input_vision_tokens, 0);
        s.count_vision(&[a, b]);
        assert_eq!(
            (
                s.total_input_tokens,
                s.total_input_text_tokens,
                s.total_input_vision_tokens
            ),
            (130, 30, 100)
        );
        assert_eq!(s.input_throughput, 65.0);
    }

    #[test]
    fn percentiles_match_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        // numpy.percentile([1,2,3,4], [50, 90, 99]) == [2.5, 3.7, 3.97]
        assert!((percentile(&v, 50.0) - 2.5).abs() < 1e-12);
        assert!((percentile(&v, 90.0) - 3.7).abs() < 1e-12);
        assert!((percentile(&v, 99.0) - 3.97).abs() < 1e-12);
        let d = Dist::of_seconds([0.001, 0.002, 0.003, 0.004]);
        // numpy.std([1,2,3,4]) == 1.118033988749895 (population)
        assert!((d.std - 1.118033988749895).abs() < 1e-9);
    }

    fn rec(start: f64, out: usize) -> RequestRecord {
        RequestRecord {
            ok: true,
            prompt_len: 10,
            output_len: out,
            start,
            ttft: 0.1,
            latency: 0.1 + 0.1 * (out - 1) as f64,
            gaps: vec![0.1; out - 1],
            gap_tokens: vec![1; out - 1],
            ..Default::default()
        }
    }

    #[test]
    fn tpot_excludes_the_first_token_and_throughput_counts_successes() {
        let s = summarize(&[rec(0.0, 5), RequestRecord::default()], 2.0, false, None);
        assert_eq!((s.completed, s.failed), (1, 1));
        assert!((s.tpot.mean - 100.0).abs() < 1e-9);
        assert!((s.output_throughput - 2.5).abs() < 1e-12);
        assert_eq!(s.max_output_tokens_per_s, 5.0);
        assert_eq!(s.total_output_tokens_retokenized, None);
        assert!((s.concurrency - 0.25).abs() < 1e-12);
    }

    #[test]
    fn peaks_are_counted_from_the_first_start() {
        // Two requests starting 10 s into the run still share bucket 0, as in bench_serving.
        let s = summarize(&[rec(10.0, 3), rec(10.5, 3)], 11.0, false, Some(&[3, 4]));
        assert_eq!(s.max_concurrent_requests, 2);
        assert_eq!(s.max_output_tokens_per_s, 6.0);
        assert_eq!(s.total_output_tokens_retokenized, Some(7));
    }
}
