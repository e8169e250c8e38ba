//! SGLang's `calculate_metrics`, with NumPy's percentile (linear interpolation) and
//! population standard deviation, so the numbers line up with bench_serving's.

use crate::client::RequestRecord;

/// mean, median, std, p90, p95, p99 (and max) of one latency, in milliseconds.
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
    /// From values in seconds; reported in milliseconds (all zeros when empty, as NumPy's
    /// `or 0` guard in bench_serving).
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

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub duration: f64,
    pub completed: usize,
    pub failed: usize,
    pub total_input_tokens: usize,
    pub total_output_tokens: usize,
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
    /// Beyond SGLang: time from the scheduled send to the actual send (client queueing).
    pub schedule_lag: Dist,
    /// Beyond SGLang: E2E counted from the scheduled send (no coordinated omission).
    pub e2e_from_schedule: Dist,
}

pub fn summarize(records: &[RequestRecord], duration: f64) -> Summary {
    let ok: Vec<&RequestRecord> = records.iter().filter(|r| r.ok).collect();
    let d = duration.max(1e-9);
    let total_in: usize = ok.iter().map(|r| r.prompt_len).sum();
    let total_out: usize = ok.iter().map(|r| r.output_len).sum();
    let mut tokens_per_s: Vec<usize> = Vec::new();
    let mut concurrent: Vec<usize> = Vec::new();
    for r in &ok {
        let mut t = r.start + r.ttft;
        let mut bump = |t: f64| {
            let s = t.max(0.0) as usize;
            if tokens_per_s.len() <= s {
                tokens_per_s.resize(s + 1, 0);
            }
            tokens_per_s[s] += 1;
        };
        bump(t);
        for gap in &r.itl {
            t += gap;
            bump(t);
        }
        let (a, b) = (
            r.start.max(0.0) as usize,
            (r.start + r.latency).max(0.0) as usize,
        );
        if concurrent.len() <= b {
            concurrent.resize(b + 1, 0);
        }
        for c in &mut concurrent[a..=b] {
            *c += 1;
        }
    }
    Summary {
        duration,
        completed: ok.len(),
        failed: records.len() - ok.len(),
        total_input_tokens: total_in,
        total_output_tokens: total_out,
        request_throughput: ok.len() as f64 / d,
        input_throughput: total_in as f64 / d,
        output_throughput: total_out as f64 / d,
        total_throughput: (total_in + total_out) as f64 / d,
        concurrency: ok.iter().map(|r| r.latency).sum::<f64>() / d,
        max_output_tokens_per_s: tokens_per_s.iter().copied().max().unwrap_or(0) as f64,
        max_concurrent_requests: concurrent.iter().copied().max().unwrap_or(0),
        e2e: Dist::of_seconds(ok.iter().map(|r| r.latency)),
        ttft: Dist::of_seconds(ok.iter().map(|r| r.ttft)),
        tpot: Dist::of_seconds(
            ok.iter()
                .filter(|r| r.output_len > 1)
                .map(|r| (r.latency - r.ttft) / (r.output_len - 1) as f64),
        ),
        itl: Dist::of_seconds(ok.iter().flat_map(|r| r.itl.iter().copied())),
        schedule_lag: Dist::of_seconds(ok.iter().map(|r| (r.start - r.intended_start).max(0.0))),
        e2e_from_schedule: Dist::of_seconds(
            ok.iter().map(|r| r.start + r.latency - r.intended_start),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn tpot_excludes_the_first_token_and_throughput_counts_successes() {
        let ok = RequestRecord {
            ok: true,
            prompt_len: 10,
            output_len: 5,
            ttft: 0.1,
            latency: 0.5,
            itl: vec![0.1; 4],
            ..Default::default()
        };
        let failed = RequestRecord::default();
        let s = summarize(&[ok, failed], 2.0);
        assert_eq!((s.completed, s.failed), (1, 1));
        assert!((s.tpot.mean - 100.0).abs() < 1e-9);
        assert!((s.output_throughput - 2.5).abs() < 1e-12);
        assert_eq!(s.max_output_tokens_per_s, 5.0);
    }
}
