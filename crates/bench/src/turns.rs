//! Figures bench_serving does not give for multi-turn and prefix-cache workloads: TTFT, TPOT
//! and prompt-cache hits per round of a conversation (upstream flattens the rounds and reports
//! 0 input tokens), the cache-hit totals the server reported (`cached_tokens`), and the check
//! that the server counted the prompt lengths the dataset intended (sglang#15732,
//! vllm#24937: a tokenizer or template mismatch silently changes the workload).

use crate::metrics::Dist;
use crate::record::RequestRecord;

/// A server-counted prompt this far from its intended length (as a fraction) is reported.
pub const PROMPT_LEN_TOLERANCE: f64 = 0.05;

/// One round index over all conversations.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnFigures {
    /// 0 for the first round.
    pub turn: u32,
    pub requests: usize,
    pub completed: usize,
    /// Milliseconds.
    pub ttft: Dist,
    pub tpot: Dist,
    /// Prompt tokens as the server counted them, over the completed rounds.
    pub prompt_tokens: usize,
    /// Of which found in the prefix cache (None: the server reported none).
    pub cached_tokens: Option<usize>,
}

impl TurnFigures {
    /// Cached over prompt tokens, in percent.
    pub fn cache_hit_pct(&self) -> Option<f64> {
        self.cached_tokens
            .map(|c| 100.0 * c as f64 / self.prompt_tokens.max(1) as f64)
    }
}

/// Per-round figures; empty unless the records are rounds of conversations.
pub fn per_turn(records: &[RequestRecord]) -> Vec<TurnFigures> {
    if records.iter().all(|r| r.session.is_none()) {
        return Vec::new();
    }
    let last = records.iter().map(|r| r.turn).max().unwrap_or(0);
    (0..=last)
        .map(|turn| {
            let all: Vec<&RequestRecord> = records.iter().filter(|r| r.turn == turn).collect();
            let ok: Vec<&RequestRecord> = all.iter().copied().filter(|r| r.ok).collect();
            let cache = cache_hits(ok.iter().copied());
            TurnFigures {
                turn,
                requests: all.len(),
                completed: ok.len(),
                ttft: Dist::of_seconds(ok.iter().map(|r| r.ttft)),
                tpot: Dist::of_seconds(ok.iter().filter_map(|r| r.tpot())),
                prompt_tokens: cache.prompt_tokens,
                cached_tokens: cache.cached_tokens,
            }
        })
        .collect()
}

/// The prefix-cache hits of a run, as the server reported them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CacheHits {
    /// Server-counted prompt tokens of the completed requests.
    pub prompt_tokens: usize,
    /// None when no response carried `cached_tokens`.
    pub cached_tokens: Option<usize>,
}

impl CacheHits {
    pub fn hit_pct(&self) -> Option<f64> {
        self.cached_tokens
            .map(|c| 100.0 * c as f64 / self.prompt_tokens.max(1) as f64)
    }
}

pub fn cache_hits<'a>(ok: impl Iterator<Item = &'a RequestRecord>) -> CacheHits {
    let mut h = CacheHits::default();
    for r in ok {
        h.prompt_tokens += r.server_prompt_len.unwrap_or(r.prompt_len);
        if let Some(c) = r.cached_tokens {
            *h.cached_tokens.get_or_insert(0) += c;
        }
    }
    h
}

/// Intended prompt lengths against the server's counts.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PromptLenCheck {
    /// Completed requests with both an intended length and a server count.
    pub checked: usize,
    /// Of which off by more than [`PROMPT_LEN_TOLERANCE`] and more than one token.
    pub off: usize,
    /// Mean of server / intended over the checked requests.
    pub mean_ratio: f64,
    /// The request farthest off: (intended, server).
    pub worst: Option<(usize, usize)>,
}

impl PromptLenCheck {
    pub fn of(records: &[RequestRecord]) -> Self {
        let mut c = PromptLenCheck::default();
        let mut worst = 0.0;
        let mut sum = 0.0;
        for r in records.iter().filter(|r| r.ok && r.prompt_len > 0) {
            let Some(server) = r.server_prompt_len else {
                continue;
            };
            let ratio = server as f64 / r.prompt_len as f64;
            c.checked += 1;
            sum += ratio;
            let dev = (ratio - 1.0).abs();
            // One token either way is a special token (BOS) one side counts and the other
            // does not; on a prompt shorter than 20 tokens it alone would pass 5%.
            if dev > PROMPT_LEN_TOLERANCE && server.abs_diff(r.prompt_len) > 1 {
                c.off += 1;
            }
            if dev > worst {
                worst = dev;
                c.worst = Some((r.prompt_len, server));
            }
        }
        c.mean_ratio = if c.checked > 0 {
            sum / c.checked as f64
        } else {
            0.0
        };
        c
    }

    /// A warning for the report when any request is off.
    pub fn warning(&self) -> Option<String> {
        if self.off == 0 {
            return None;
        }
        let (want, got) = self.worst.unwrap_or_default();
        Some(format!(
            "the server counted {} of {} prompts more than {:.0}% away from their intended \
             length (server/intended {:.3} on average; worst {got} tokens for {want} intended): \
             the client tokenizer or chat template may not be the server's",
            self.off,
            self.checked,
            PROMPT_LEN_TOLERANCE * 100.0,
            self.mean_ratio
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(session: u32, turn: u32, ttft: f64, prompt: usize, cached: usize) -> RequestRecord {
        RequestRecord {
            ok: true,
            session: Some(session),
            turn,
            ttft,
            latency: ttft + 0.09,
            output_len: 10,
            prompt_len: prompt,
            server_prompt_len: Some(prompt),
            cached_tokens: Some(cached),
            ..Default::default()
        }
    }

    #[test]
    fn rounds_are_grouped_by_their_index() {
        let recs = [
            round(0, 0, 0.2, 100, 0),
            round(0, 1, 0.05, 220, 200),
            round(1, 0, 0.4, 100, 50),
            RequestRecord {
                session: Some(1),
                turn: 1,
                ..Default::default()
            },
        ];
        let t = per_turn(&recs);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].requests, t[0].completed), (2, 2));
        assert!((t[0].ttft.mean - 300.0).abs() < 1e-9);
        assert_eq!((t[0].prompt_tokens, t[0].cached_tokens), (200, Some(50)));
        assert_eq!((t[1].requests, t[1].completed), (2, 1));
        assert!((t[1].cache_hit_pct().unwrap() - 100.0 * 200.0 / 220.0).abs() < 1e-9);
        assert!((t[1].tpot.mean - 10.0).abs() < 1e-9);
        assert!(per_turn(&[RequestRecord::default()]).is_empty());
    }

    #[test]
    fn prompt_lengths_off_by_more_than_five_percent_are_reported() {
        let mut a = round(0, 0, 0.1, 100, 0);
        a.server_prompt_len = Some(104);
        let mut b = round(0, 0, 0.1, 100, 0);
        b.server_prompt_len = Some(130);
        let ok = PromptLenCheck::of(std::slice::from_ref(&a));
        assert_eq!((ok.checked, ok.off), (1, 0));
        assert!(ok.warning().is_none());
        let off = PromptLenCheck::of(&[a, b]);
        assert_eq!((off.checked, off.off, off.worst), (2, 1, Some((100, 130))));
        let w = off.warning().unwrap();
        assert!(w.contains("1 of 2 prompts more than 5%"), "{w}");
        // A one-token prompt the server counts as two (its BOS) is not a mismatch.
        let mut short = round(0, 0, 0.1, 1, 0);
        short.server_prompt_len = Some(2);
        let mut three = round(0, 0, 0.1, 3, 0);
        three.server_prompt_len = Some(5);
        let c = PromptLenCheck::of(&[short, three]);
        assert_eq!((c.checked, c.off), (2, 1));
    }
}
