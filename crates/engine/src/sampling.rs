//! Sampling parameters (SGLang's `sampling_params`, validated with its rules) and the sampler:
//! penalties, greedy, temperature, top-k, top-p, min-p, seeded per request.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// SGLang's `SamplingParams`, with its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    pub max_new_tokens: usize,
    pub min_new_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    /// -1 means the whole vocabulary.
    pub top_k: i64,
    pub min_p: f32,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    pub repetition_penalty: f32,
    pub stop: Vec<String>,
    pub stop_token_ids: Vec<u32>,
    pub ignore_eos: bool,
    pub skip_special_tokens: bool,
    pub no_stop_trim: bool,
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            max_new_tokens: 128,
            min_new_tokens: 0,
            temperature: 1.0,
            top_p: 1.0,
            top_k: -1,
            min_p: 0.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            repetition_penalty: 1.0,
            stop: Vec::new(),
            stop_token_ids: Vec::new(),
            ignore_eos: false,
            skip_special_tokens: true,
            no_stop_trim: false,
            seed: None,
        }
    }
}

/// A parameter outside its range: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ParamError {
    pub field: &'static str,
    pub message: String,
}

fn check(
    ok: bool,
    field: &'static str,
    message: impl FnOnce() -> String,
) -> Result<(), ParamError> {
    if ok {
        Ok(())
    } else {
        Err(ParamError {
            field,
            message: message(),
        })
    }
}

impl SamplingParams {
    /// SGLang's `SamplingParams.verify` ranges (NaN is rejected everywhere).
    pub fn validate(&self) -> Result<(), ParamError> {
        let t = self.temperature;
        check(t >= 0.0 && t.is_finite(), "temperature", || {
            format!("must be a finite number >= 0, got {t}")
        })?;
        let p = self.top_p;
        check(p > 0.0 && p <= 1.0, "top_p", || {
            format!("must be in (0, 1], got {p}")
        })?;
        let m = self.min_p;
        check((0.0..=1.0).contains(&m), "min_p", || {
            format!("must be in [0, 1], got {m}")
        })?;
        let k = self.top_k;
        check(k == -1 || k >= 1, "top_k", || {
            format!("must be -1 (disable) or at least 1, got {k}")
        })?;
        let f = self.frequency_penalty;
        check((-2.0..=2.0).contains(&f), "frequency_penalty", || {
            format!("must be in [-2, 2], got {f}")
        })?;
        let pp = self.presence_penalty;
        check((-2.0..=2.0).contains(&pp), "presence_penalty", || {
            format!("must be in [-2, 2], got {pp}")
        })?;
        let r = self.repetition_penalty;
        check(r > 0.0 && r <= 2.0, "repetition_penalty", || {
            format!("must be in (0, 2], got {r}")
        })?;
        check(
            self.min_new_tokens <= self.max_new_tokens,
            "min_new_tokens",
            || {
                format!(
                    "must not exceed max_new_tokens ({}), got {}",
                    self.max_new_tokens, self.min_new_tokens
                )
            },
        )?;
        check(self.stop.iter().all(|s| !s.is_empty()), "stop", || {
            "stop strings must not be empty".into()
        })?;
        Ok(())
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature < 1e-5 || self.top_k == 1
    }

    fn has_penalties(&self) -> bool {
        self.frequency_penalty != 0.0
            || self.presence_penalty != 0.0
            || self.repetition_penalty != 1.0
    }
}

/// Per-request sampling state: its RNG and the token counts penalties need.
#[derive(Debug)]
pub struct SamplerState {
    rng: StdRng,
    output_counts: HashMap<u32, u32>,
}

impl SamplerState {
    pub fn new(seed: u64) -> Self {
        SamplerState {
            rng: StdRng::seed_from_u64(seed),
            output_counts: HashMap::new(),
        }
    }

    /// Remember a generated token (for frequency/presence/repetition penalties).
    pub fn observe(&mut self, token: u32, params: &SamplingParams) {
        if params.has_penalties() {
            *self.output_counts.entry(token).or_insert(0) += 1;
        }
    }

    /// Pick the next token from one row of logits (modified in place).
    pub fn sample(&mut self, logits: &mut [f32], params: &SamplingParams, prompt: &[u32]) -> u32 {
        if params.has_penalties() {
            self.apply_penalties(logits, params, prompt);
        }
        if params.is_greedy() {
            return argmax(logits);
        }
        let inv_t = 1.0 / params.temperature;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<f32> = logits.iter().map(|l| ((l - max) * inv_t).exp()).collect();
        let total: f32 = probs.iter().sum();
        for p in &mut probs {
            *p /= total;
        }
        let vocab = probs.len();
        let top_k = if params.top_k < 0 {
            vocab
        } else {
            (params.top_k as usize).min(vocab)
        };
        if top_k == vocab && params.top_p >= 1.0 && params.min_p <= 0.0 {
            return draw(
                &probs,
                (0..vocab).map(|i| i as u32),
                self.rng.random::<f32>(),
            );
        }
        let candidates = nucleus(&probs, top_k, params.top_p, params.min_p);
        draw(&probs, candidates.into_iter(), self.rng.random::<f32>())
    }

    fn apply_penalties(&self, logits: &mut [f32], params: &SamplingParams, prompt: &[u32]) {
        if params.repetition_penalty != 1.0 {
            let r = params.repetition_penalty;
            let seen = prompt
                .iter()
                .copied()
                .chain(self.output_counts.keys().copied());
            let mut done = std::collections::HashSet::new();
            for t in seen {
                if let Some(l) = logits.get_mut(t as usize)
                    && done.insert(t)
                {
                    *l = if *l > 0.0 { *l / r } else { *l * r };
                }
            }
        }
        for (&t, &c) in &self.output_counts {
            if let Some(l) = logits.get_mut(t as usize) {
                *l -= params.frequency_penalty * c as f32 + params.presence_penalty;
            }
        }
    }
}

/// Index of the largest value (the first one on ties), as torch's argmax.
pub fn argmax(x: &[f32]) -> u32 {
    // Sixteen independent running maxima (vectorised), then the first position holding the
    // maximum: a single compare-and-select chain would be latency-bound.
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (m, v) in lanes.iter_mut().zip(c) {
            *m = m.max(*v);
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    x.iter().position(|v| *v == max).unwrap_or(0) as u32
}

/// The tokens top-k, top-p and min-p keep, most likely first. Sorts only a growing head of
/// the distribution instead of the whole vocabulary.
fn nucleus(probs: &[f32], top_k: usize, top_p: f32, min_p: f32) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..probs.len() as u32).collect();
    let by_prob = |a: &u32, b: &u32| probs[*b as usize].total_cmp(&probs[*a as usize]);
    let mut m = top_k.clamp(1, 64);
    loop {
        let m_now = m.min(top_k);
        if m_now < idx.len() {
            idx.select_nth_unstable_by(m_now - 1, by_prob);
        }
        let head = &mut idx[..m_now];
        head.sort_unstable_by(by_prob);
        let mut cum = 0.0;
        let mut keep = m_now;
        for (i, t) in head.iter().enumerate() {
            cum += probs[*t as usize];
            if cum >= top_p {
                keep = i + 1;
                break;
            }
        }
        if cum >= top_p || m_now == top_k {
            let mut out = head[..keep].to_vec();
            if min_p > 0.0 {
                let floor = probs[out[0] as usize] * min_p;
                out.retain(|t| probs[*t as usize] >= floor);
            }
            return out;
        }
        m *= 4;
    }
}

/// Sample from `candidates` proportionally to `probs` (renormalised over the candidates).
fn draw(probs: &[f32], candidates: impl Iterator<Item = u32> + Clone, u: f32) -> u32 {
    let total: f32 = candidates.clone().map(|t| probs[t as usize]).sum();
    let target = u * total;
    let mut cum = 0.0;
    let mut last = 0;
    for t in candidates {
        cum += probs[t as usize];
        last = t;
        if cum > target {
            return t;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_sglang_and_validate() {
        let p = SamplingParams::default();
        assert_eq!((p.max_new_tokens, p.temperature, p.top_k), (128, 1.0, -1));
        assert!(p.validate().is_ok());
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases: [(&str, SamplingParams); 5] = [
            (
                "temperature",
                SamplingParams {
                    temperature: -1.0,
                    ..Default::default()
                },
            ),
            (
                "top_p",
                SamplingParams {
                    top_p: 0.0,
                    ..Default::default()
                },
            ),
            (
                "top_k",
                SamplingParams {
                    top_k: 0,
                    ..Default::default()
                },
            ),
            (
                "repetition_penalty",
                SamplingParams {
                    repetition_penalty: 0.0,
                    ..Default::default()
                },
            ),
            (
                "temperature",
                SamplingParams {
                    temperature: f32::NAN,
                    ..Default::default()
                },
            ),
        ];
        for (field, p) in cases {
            assert_eq!(p.validate().unwrap_err().field, field);
        }
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        let mut x: Vec<f32> = (0..100).map(|i| (i % 37) as f32).collect();
        assert_eq!(argmax(&x), 36);
        x[90] = 50.0;
        x[95] = 50.0;
        assert_eq!(argmax(&x), 90);
        assert_eq!(argmax(&[1.0]), 0);
        assert_eq!(argmax(&[-3.0, -1.0, -2.0]), 1);
    }

    #[test]
    fn greedy_takes_the_argmax() {
        let mut s = SamplerState::new(1);
        let p = SamplingParams {
            temperature: 0.0,
            ..Default::default()
        };
        assert_eq!(s.sample(&mut [0.1, 3.0, -1.0, 2.9], &p, &[]), 1);
    }

    #[test]
    fn same_seed_same_tokens_and_top_k_restricts() {
        let p = SamplingParams {
            top_k: 2,
            ..Default::default()
        };
        let logits: Vec<f32> = (0..100).map(|i| (i % 7) as f32 * 0.1).collect();
        let run = |seed| {
            let mut s = SamplerState::new(seed);
            (0..50)
                .map(|_| s.sample(&mut logits.clone(), &p, &[]))
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        // The two largest logits (value 0.6) sit at indices 6, 13, 20, ...; top_k=2 keeps two.
        let distinct: std::collections::HashSet<_> = a.iter().collect();
        assert!(
            distinct.len() <= 2 && a.iter().all(|t| t % 7 == 6),
            "{distinct:?}"
        );
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_the_mass() {
        let probs = [0.5, 0.3, 0.15, 0.05];
        assert_eq!(nucleus(&probs, 4, 0.8, 0.0), [0, 1]);
        assert_eq!(nucleus(&probs, 4, 0.81, 0.0), [0, 1, 2]);
        assert_eq!(nucleus(&probs, 4, 1.0, 0.2), [0, 1, 2]);
        let big: Vec<f32> = (0..1024).map(|_| 1.0 / 1024.0).collect();
        assert_eq!(nucleus(&big, 1024, 0.5, 0.0).len(), 512);
    }

    #[test]
    fn penalties_push_repeated_tokens_down() {
        let mut s = SamplerState::new(0);
        let p = SamplingParams {
            temperature: 0.0,
            presence_penalty: 1.0,
            ..Default::default()
        };
        s.observe(0, &p);
        assert_eq!(s.sample(&mut [1.0, 0.5], &p, &[]), 1);
        let p = SamplingParams {
            temperature: 0.0,
            repetition_penalty: 2.0,
            ..Default::default()
        };
        let s = SamplerState::new(0);
        let mut l = [1.0, 0.6];
        s.apply_penalties(&mut l, &p, &[0]);
        assert_eq!(l, [0.5, 0.6]);
    }
}
