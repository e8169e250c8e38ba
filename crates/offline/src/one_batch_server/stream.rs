//! One batched streaming `/generate` as one_batch_server accounts for it: per index, the
//! cumulative `meta_info.completion_tokens` and when it arrived; the moment every request has
//! a first token (`last_ttft`); and the steady-state window from there to the first finish,
//! whose token counts at both ends are interpolated per request between its chunks (so the
//! order in which one step's chunks arrive cannot move tokens across the boundary).

/// A request's (time in seconds since the request was sent, cumulative tokens).
type Obs = (f64, u64);

/// Every request's observations just before an instant, and the first one after it.
#[derive(Debug, Clone)]
struct Boundary {
    time: f64,
    before: Vec<Option<Obs>>,
    after: Vec<Option<Obs>>,
}

impl Boundary {
    fn new(time: f64, before: Vec<Option<Obs>>) -> Self {
        let after = vec![None; before.len()];
        Boundary {
            time,
            before,
            after,
        }
    }

    fn observe(&mut self, index: usize, obs: Obs) {
        if self.after[index].is_none() {
            self.after[index] = Some(obs);
        }
    }

    fn tokens_of(&self, index: usize) -> f64 {
        let Some((t0, c0)) = self.before[index] else {
            return 0.0;
        };
        let Some((t1, c1)) = self.after[index] else {
            return c0 as f64;
        };
        if self.time <= t0 {
            c0 as f64
        } else if self.time >= t1 || t1 <= t0 {
            c1 as f64
        } else {
            c0 as f64 + (c1 as f64 - c0 as f64) * (self.time - t0) / (t1 - t0)
        }
    }

    fn total(&self) -> f64 {
        (0..self.before.len()).map(|i| self.tokens_of(i)).sum()
    }
}

/// The window in which the whole batch was decoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SteadyState {
    pub duration_s: f64,
    pub output_tokens: f64,
}

impl SteadyState {
    pub fn output_throughput(&self) -> f64 {
        self.output_tokens / self.duration_s
    }
}

/// Follows the chunks of one batched stream.
#[derive(Debug, Clone)]
pub struct BatchRecorder {
    last: Vec<Option<Obs>>,
    first_token: Vec<Option<f64>>,
    tokens: Vec<u64>,
    finish: Vec<Option<String>>,
    started: usize,
    all_started: Option<f64>,
    t0: Option<Boundary>,
    t1: Option<Boundary>,
}

impl BatchRecorder {
    pub fn new(batch_size: usize) -> Self {
        BatchRecorder {
            last: vec![None; batch_size],
            first_token: vec![None; batch_size],
            tokens: vec![0; batch_size],
            finish: vec![None; batch_size],
            started: 0,
            all_started: None,
            t0: None,
            t1: None,
        }
    }

    pub fn batch_size(&self) -> usize {
        self.tokens.len()
    }

    /// One chunk of request `index`, received `now` seconds after the request was sent.
    pub fn chunk(&mut self, index: usize, completion_tokens: u64, finish: Option<&str>, now: f64) {
        let obs = (now, completion_tokens);
        for b in [&mut self.t0, &mut self.t1].into_iter().flatten() {
            b.observe(index, obs);
        }
        self.last[index] = Some(obs);
        self.tokens[index] = completion_tokens;
        if self.first_token[index].is_none() && completion_tokens > 0 {
            self.first_token[index] = Some(now);
            self.started += 1;
            if self.started == self.batch_size() {
                self.all_started = Some(now);
                self.t0 = Some(Boundary::new(now, self.last.clone()));
            }
        }
        if let Some(f) = finish
            && self.finish[index].is_none()
        {
            self.finish[index] = Some(f.to_string());
            if self.t1.is_none() {
                self.t1 = Some(Boundary::new(now, self.last.clone()));
            }
        }
    }

    /// Indices that never produced a token.
    pub fn missing(&self) -> Vec<usize> {
        (0..self.batch_size())
            .filter(|&i| self.first_token[i].is_none())
            .collect()
    }

    /// Seconds from sending to the last request's first token.
    pub fn last_ttft(&self) -> Option<f64> {
        self.all_started
    }

    pub fn total_output_tokens(&self) -> u64 {
        self.tokens.iter().sum()
    }

    pub fn num_early_stopped(&self) -> usize {
        self.finish
            .iter()
            .filter(|f| f.as_deref() == Some("stop"))
            .count()
    }

    /// The batch's tokens at the moment the last request started.
    pub fn tokens_before_all_started(&self) -> f64 {
        self.t0.as_ref().map_or(0.0, Boundary::total)
    }

    /// `None` when some request finished before the last one started decoding.
    pub fn steady_state(&self) -> Option<SteadyState> {
        let (t0, t1) = (self.t0.as_ref()?, self.t1.as_ref()?);
        if t1.time <= t0.time {
            return None;
        }
        let tokens = t1.total() - t0.total();
        (tokens > 0.0).then_some(SteadyState {
            duration_s: t1.time - t0.time,
            output_tokens: tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_ttft_and_the_steady_window_interpolate_per_request() {
        let mut r = BatchRecorder::new(2);
        r.chunk(0, 1, None, 1.0);
        r.chunk(0, 2, None, 2.0);
        r.chunk(1, 1, None, 3.0); // everyone has started at 3.0
        r.chunk(0, 4, None, 4.0);
        r.chunk(1, 3, None, 5.0);
        r.chunk(0, 6, Some("length"), 6.0); // first finish at 6.0
        r.chunk(1, 5, Some("length"), 7.0);
        assert_eq!(r.last_ttft(), Some(3.0));
        assert_eq!(r.total_output_tokens(), 11);
        // At 3.0: request 0 between (2.0, 2) and (4.0, 4) -> 3; request 1 has 1.
        assert_eq!(r.tokens_before_all_started(), 4.0);
        // At 6.0: request 0 has 6; request 1 between (5.0, 3) and (7.0, 5) -> 4.
        let s = r.steady_state().unwrap();
        assert_eq!((s.duration_s, s.output_tokens), (3.0, 6.0));
        assert_eq!(r.num_early_stopped(), 0);
        assert!(r.missing().is_empty());
    }

    #[test]
    fn no_window_when_one_finishes_before_the_last_starts() {
        let mut r = BatchRecorder::new(2);
        r.chunk(0, 1, Some("stop"), 1.0);
        r.chunk(1, 1, None, 2.0);
        assert_eq!(r.steady_state(), None);
        assert_eq!(r.num_early_stopped(), 1);
        let mut r = BatchRecorder::new(2);
        r.chunk(0, 1, None, 1.0);
        assert_eq!(r.missing(), vec![1]);
        assert_eq!(r.last_ttft(), None);
    }
}
