//! What happened to one request, as raw timings: every metric is derived from these after the
//! run, never while streams are being timed.

/// One request's outcome. Times are seconds; `intended`, `dispatched` and `start` count from
/// the run's start, `ttft`, `latency` and the gaps from `start` (when the request was sent).
#[derive(Debug, Clone, Default)]
pub struct RequestRecord {
    pub ok: bool,
    /// Why the request failed (empty when it did not).
    pub error: String,
    /// The prompt's length as the dataset counted it (bench_serving's `prompt_len`).
    pub prompt_len: usize,
    /// `prompt_tokens` as the server reported it.
    pub server_prompt_len: Option<usize>,
    /// Output tokens: the server's count when it gave one, else the requested length.
    pub output_len: usize,
    pub output_len_reported: bool,
    /// When the arrival process scheduled the request.
    pub intended: f64,
    /// When the client picked it up (dispatcher late = schedule lag).
    pub dispatched: f64,
    /// When it was sent, after waiting for a concurrency slot (bench_serving's start).
    pub start: f64,
    pub ttft: f64,
    /// Until the last event of the stream (bench_serving's `latency`).
    pub latency: f64,
    /// Tokens in the first content chunk (0: unknown).
    pub first_tokens: u32,
    /// Gaps between consecutive content chunks.
    pub gaps: Vec<f64>,
    /// Tokens each later chunk carried (0: unknown until retokenized).
    pub gap_tokens: Vec<u32>,
    /// OpenAI routes: byte offset in `generated_text` after each content chunk.
    pub text_ends: Vec<u32>,
    pub generated_text: String,
    /// Prompt tokens the server found in its prefix cache (`cached_tokens` of usage details
    /// or meta_info; None: not reported).
    pub cached_tokens: Option<usize>,
    /// Multi-turn workloads: the conversation this round belongs to, and the round's index.
    pub session: Option<u32>,
    pub turn: u32,
}

impl RequestRecord {
    /// bench_serving's ITL list: chunk gaps, except on the native route where each gap is
    /// split evenly over the tokens it brought.
    pub fn sglang_itl(&self, native: bool, out: &mut Vec<f64>) {
        if native {
            for (g, &k) in self.gaps.iter().zip(&self.gap_tokens) {
                let k = k.max(1) as usize;
                out.extend(std::iter::repeat_n(g / k as f64, k));
            }
        } else {
            out.extend_from_slice(&self.gaps);
        }
    }

    /// Per-token ITL: every gap split over its tokens; gaps whose token count is still unknown
    /// are left out (`token_counts_known` says whether any are).
    pub fn token_itl(&self, out: &mut Vec<f64>) {
        for (g, &k) in self.gaps.iter().zip(&self.gap_tokens) {
            if k > 0 {
                out.extend(std::iter::repeat_n(g / k as f64, k as usize));
            }
        }
    }

    pub fn token_counts_known(&self) -> bool {
        self.gap_tokens.iter().all(|&k| k > 0)
    }

    /// Fill unknown per-chunk token counts: one token per chunk when the totals say so, else
    /// from `count` applied to each chunk's text (a retokenizer).
    pub fn fill_token_counts(&mut self, count: Option<&dyn Fn(&str) -> usize>) {
        if self.token_counts_known() {
            return;
        }
        if self.output_len_reported && self.output_len == 1 + self.gaps.len() {
            self.first_tokens = 1;
            self.gap_tokens.iter_mut().for_each(|k| *k = 1);
            return;
        }
        let Some(count) = count else { return };
        if self.text_ends.len() != self.gaps.len() + 1 {
            return;
        }
        let text = &self.generated_text;
        let piece = |a: usize, b: usize| text.get(a..b).map_or(0, count);
        self.first_tokens = piece(0, self.text_ends[0] as usize) as u32;
        for (i, k) in self.gap_tokens.iter_mut().enumerate() {
            if *k == 0 {
                *k = piece(self.text_ends[i] as usize, self.text_ends[i + 1] as usize) as u32;
            }
        }
    }

    /// E2E counted from the schedule, so client queueing is not hidden (no coordinated
    /// omission).
    pub fn e2e_incl_queue(&self) -> f64 {
        self.start + self.latency - self.intended
    }

    /// Time between pickup and send: waiting for a --max-concurrency slot.
    pub fn client_queue(&self) -> f64 {
        (self.start - self.dispatched).max(0.0)
    }

    /// How late the client picked the request up against its schedule.
    pub fn schedule_lag(&self) -> f64 {
        (self.dispatched - self.intended).max(0.0)
    }

    /// bench_serving's TPOT (None for single-token outputs).
    pub fn tpot(&self) -> Option<f64> {
        (self.output_len > 1).then(|| (self.latency - self.ttft) / (self.output_len - 1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn itl_variants() {
        let r = RequestRecord {
            gaps: vec![0.2, 0.1],
            gap_tokens: vec![2, 1],
            ..Default::default()
        };
        let (mut native, mut chunk, mut tok) = (vec![], vec![], vec![]);
        r.sglang_itl(true, &mut native);
        r.sglang_itl(false, &mut chunk);
        r.token_itl(&mut tok);
        assert_eq!(native, [0.1, 0.1, 0.1]);
        assert_eq!(chunk, [0.2, 0.1]);
        assert_eq!(tok, native);
    }

    #[test]
    fn unknown_token_counts_come_from_totals_or_retokenizing() {
        let mut one_each = RequestRecord {
            output_len: 3,
            output_len_reported: true,
            gaps: vec![0.1, 0.1],
            gap_tokens: vec![0, 0],
            ..Default::default()
        };
        one_each.fill_token_counts(None);
        assert_eq!(one_each.gap_tokens, [1, 1]);

        let mut multi = RequestRecord {
            output_len: 6,
            output_len_reported: true,
            gaps: vec![0.3],
            gap_tokens: vec![0],
            text_ends: vec![2, 9],
            generated_text: "ab cd efg".to_string(),
            ..Default::default()
        };
        let words = |s: &str| s.split_whitespace().count().max(1) * 2;
        multi.fill_token_counts(Some(&words));
        assert_eq!((multi.first_tokens, multi.gap_tokens.clone()), (2, vec![4]));
    }

    #[test]
    fn queue_and_lag_split_the_wait() {
        let r = RequestRecord {
            intended: 1.0,
            dispatched: 1.001,
            start: 1.5,
            latency: 2.0,
            ..Default::default()
        };
        assert!((r.schedule_lag() - 0.001).abs() < 1e-12);
        assert!((r.client_queue() - 0.499).abs() < 1e-12);
        assert!((r.e2e_incl_queue() - 2.5).abs() < 1e-12);
    }
}
