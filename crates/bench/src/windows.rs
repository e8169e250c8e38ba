//! Time-based views of a run: the steady state between a warm-up and a cool-down window
//! (genai-bench's `--warmup-ratio`/`--cooldown-ratio`: the ramp at the start and the drain at
//! the end are not the load being measured), and figures per `--slice-duration` slice of the
//! run's clock, to see a run drift (queues growing, caches filling).

use crate::metrics::Dist;
use crate::record::RequestRecord;

/// bench_serving-style figures over one time window of a run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WindowFigures {
    /// Seconds from the run's start.
    pub start: f64,
    pub end: f64,
    /// Requests that ended in the window, and of those, how many failed.
    pub completed: usize,
    pub failed: usize,
    /// Output tokens of the completed requests over the window's length.
    pub output_throughput: f64,
    pub request_throughput: f64,
    /// Milliseconds.
    pub ttft: Dist,
    pub tpot: Dist,
    pub e2e: Dist,
}

/// Figures over the requests whose whole life lies in [start, end) (`whole`), or that ended
/// in it.
fn window(records: &[RequestRecord], start: f64, end: f64, whole: bool) -> WindowFigures {
    let inside = |r: &&RequestRecord| {
        let done = r.start + r.latency;
        done >= start && done < end && (!whole || r.start >= start)
    };
    let ended: Vec<&RequestRecord> = records.iter().filter(inside).collect();
    let ok: Vec<&RequestRecord> = ended.iter().copied().filter(|r| r.ok).collect();
    let span = (end - start).max(1e-9);
    WindowFigures {
        start,
        end,
        completed: ok.len(),
        failed: ended.len() - ok.len(),
        output_throughput: ok.iter().map(|r| r.output_len).sum::<usize>() as f64 / span,
        request_throughput: ok.len() as f64 / span,
        ttft: Dist::of_seconds(ok.iter().map(|r| r.ttft)),
        tpot: Dist::of_seconds(ok.iter().filter_map(|r| r.tpot())),
        e2e: Dist::of_seconds(ok.iter().map(|r| r.latency)),
    }
}

/// The steady state of a run of `duration` seconds: requests that started after the first
/// `warmup` and ended before the last `cooldown` fraction of it. None when both are 0.
pub fn steady_state(
    records: &[RequestRecord],
    duration: f64,
    warmup: f64,
    cooldown: f64,
) -> Option<WindowFigures> {
    if warmup <= 0.0 && cooldown <= 0.0 {
        return None;
    }
    Some(window(
        records,
        duration * warmup,
        duration * (1.0 - cooldown),
        true,
    ))
}

/// One window per `slice` seconds of the run, by when requests ended.
pub fn slices(records: &[RequestRecord], duration: f64, slice: f64) -> Vec<WindowFigures> {
    if slice <= 0.0 {
        return Vec::new();
    }
    let n = (duration / slice).ceil().max(1.0) as usize;
    (0..n)
        .map(|k| window(records, k as f64 * slice, (k + 1) as f64 * slice, false))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(start: f64, latency: f64) -> RequestRecord {
        RequestRecord {
            ok: true,
            start,
            latency,
            ttft: latency / 2.0,
            output_len: 10,
            ..Default::default()
        }
    }

    #[test]
    fn the_steady_state_leaves_out_the_ramp_and_the_drain() {
        let recs = [req(0.5, 1.0), req(2.0, 1.0), req(4.0, 1.0), req(8.5, 1.0)];
        let s = steady_state(&recs, 10.0, 0.1, 0.1).unwrap();
        assert_eq!((s.start, s.end), (1.0, 9.0));
        assert_eq!(
            s.completed, 2,
            "0.5 starts in the warm-up, 8.5 ends in the cool-down"
        );
        assert!((s.request_throughput - 0.25).abs() < 1e-12);
        assert!((s.output_throughput - 2.5).abs() < 1e-12);
        assert!(steady_state(&recs, 10.0, 0.0, 0.0).is_none());
    }

    #[test]
    fn slices_count_requests_by_when_they_ended() {
        let mut failed = req(0.1, 0.2);
        failed.ok = false;
        let recs = [req(0.0, 0.5), failed, req(0.5, 1.0), req(1.2, 1.5)];
        let s = slices(&recs, 3.0, 1.0);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].completed, s[0].failed), (1, 1));
        assert_eq!((s[1].completed, s[2].completed), (1, 1));
        assert!((s[0].ttft.mean - 250.0).abs() < 1e-9);
    }
}
