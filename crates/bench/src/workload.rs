//! Workloads: the prompts to send and when to send them.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Exp};

/// One request to send.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub ids: Vec<u32>,
    /// The prompt as text, for routes that need text (chat); `None` for id-only datasets.
    pub text: Option<String>,
    pub output_len: usize,
}

/// SGLang's `compute_random_lens`: uniform on `[max(int(L*r), 1), L]` — so r = 0 means
/// uniform on [1, L] (mean about L/2) and r = 1 means exactly L.
pub fn random_len(rng: &mut StdRng, len: usize, range_ratio: f64) -> usize {
    let lo = ((len as f64 * range_ratio) as usize).max(1);
    if lo >= len {
        len.max(1)
    } else {
        rng.random_range(lo..=len)
    }
}

/// SGLang's `random-ids` dataset: token ids `(offset + i + j) % vocab`.
pub fn random_ids(
    num: usize,
    input_len: usize,
    output_len: usize,
    range_ratio: f64,
    vocab: usize,
    seed: u64,
) -> Vec<Prompt> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..num)
        .map(|i| {
            let n_in = random_len(&mut rng, input_len, range_ratio);
            let n_out = random_len(&mut rng, output_len, range_ratio);
            let offset = rng.random_range(0..vocab);
            Prompt {
                ids: (0..n_in)
                    .map(|j| ((offset + i + j) % vocab) as u32)
                    .collect(),
                text: None,
                output_len: n_out,
            }
        })
        .collect()
}

/// Send times in seconds from the start: all at 0 for an infinite rate, else Poisson.
pub fn arrival_offsets(n: usize, request_rate: f64, seed: u64) -> Vec<f64> {
    if !request_rate.is_finite() {
        return vec![0.0; n];
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED);
    let exp = Exp::new(request_rate).expect("rate checked positive");
    let mut t = 0.0;
    (0..n)
        .map(|_| {
            let at = t;
            t += exp.sample(&mut rng);
            at
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_ratio_follows_sglang() {
        let mut rng = StdRng::seed_from_u64(1);
        let fixed: Vec<usize> = (0..50).map(|_| random_len(&mut rng, 100, 1.0)).collect();
        assert!(fixed.iter().all(|&l| l == 100));
        let wide: Vec<usize> = (0..2000).map(|_| random_len(&mut rng, 100, 0.0)).collect();
        assert!(wide.iter().all(|&l| (1..=100).contains(&l)));
        let mean = wide.iter().sum::<usize>() as f64 / wide.len() as f64;
        assert!((mean - 50.5).abs() < 3.0, "{mean}");
    }

    #[test]
    fn poisson_arrivals_have_the_requested_rate() {
        let t = arrival_offsets(20000, 100.0, 3);
        assert_eq!(t[0], 0.0);
        let rate = t.len() as f64 / t[t.len() - 1];
        assert!((rate - 100.0).abs() < 3.0, "{rate}");
        assert!(
            arrival_offsets(5, f64::INFINITY, 0)
                .iter()
                .all(|x| *x == 0.0)
        );
    }

    #[test]
    fn random_ids_are_deterministic_and_in_vocab() {
        let a = random_ids(10, 64, 16, 0.5, 500, 42);
        let b = random_ids(10, 64, 16, 0.5, 500, 42);
        assert_eq!(
            a.iter().map(|p| &p.ids).collect::<Vec<_>>(),
            b.iter().map(|p| &p.ids).collect::<Vec<_>>()
        );
        assert!(
            a.iter()
                .all(|p| p.ids.iter().all(|&t| t < 500) && (32..=64).contains(&p.ids.len()))
        );
    }
}
