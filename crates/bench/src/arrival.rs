//! Arrival processes: when each request is due, in seconds from the start of the run, all
//! computed before the run. Infinite rate (everything at 0, bench_serving's default),
//! Poisson, gamma with vLLM's burstiness (shape b, scale 1/(rate*b); b = 1 is Poisson),
//! constant spacing (b = inf), and vLLM's linear or exponential ramp-up.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Gamma};

use crate::plan::RampUpStrategy;

/// How requests arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrivals {
    /// Requests per second (inf: all at once). Ignored with a ramp.
    pub rate: f64,
    pub burstiness: f64,
    /// Ramp from the first to the second rate over the requests.
    pub ramp: Option<(RampUpStrategy, f64, f64)>,
}

impl Arrivals {
    /// The rate for request `i` of `n`.
    fn rate_at(&self, i: usize, n: usize) -> f64 {
        match self.ramp {
            None => self.rate,
            Some((strategy, a, b)) => {
                let x = if n > 1 {
                    i as f64 / (n - 1) as f64
                } else {
                    0.0
                };
                match strategy {
                    RampUpStrategy::Linear => a + (b - a) * x,
                    RampUpStrategy::Exponential => a * (b / a).powf(x),
                }
            }
        }
    }

    /// Due times for `n` requests: the first at 0, each gap drawn at the rate of the request
    /// before it.
    pub fn offsets(&self, n: usize, seed: u64) -> Vec<f64> {
        if self.ramp.is_none() && !self.rate.is_finite() {
            return vec![0.0; n];
        }
        // A stream of its own, so the arrivals do not depend on how the dataset drew.
        let mut rng = StdRng::seed_from_u64(seed ^ 0xA77_1A15);
        let mut t = 0.0;
        (0..n)
            .map(|i| {
                let at = t;
                let rate = self.rate_at(i, n);
                t += if self.burstiness.is_infinite() {
                    1.0 / rate
                } else {
                    let b = self.burstiness;
                    Gamma::new(b, 1.0 / (rate * b))
                        .expect("rate and burstiness checked positive")
                        .sample(&mut rng)
                };
                at
            })
            .collect()
    }

    /// As the report prints it: `inf`, or the rate (`16.0` like Python's float).
    pub fn label(&self) -> String {
        match self.ramp {
            Some((s, a, b)) => format!(
                "{}-ramp {}->{}",
                match s {
                    RampUpStrategy::Linear => "linear",
                    RampUpStrategy::Exponential => "exponential",
                },
                py_float(a),
                py_float(b)
            ),
            None => py_float(self.rate),
        }
    }
}

/// A float as Python's `str()` writes it (`inf`, `16.0`, `0.5`).
pub fn py_float(x: f64) -> String {
    if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaps(t: &[f64]) -> Vec<f64> {
        t.windows(2).map(|w| w[1] - w[0]).collect()
    }

    fn cv(g: &[f64]) -> f64 {
        let m = g.iter().sum::<f64>() / g.len() as f64;
        (g.iter().map(|x| (x - m).powi(2)).sum::<f64>() / g.len() as f64).sqrt() / m
    }

    fn plain(rate: f64, burstiness: f64) -> Arrivals {
        Arrivals {
            rate,
            burstiness,
            ramp: None,
        }
    }

    #[test]
    fn poisson_has_the_rate_and_unit_cv() {
        let t = plain(100.0, 1.0).offsets(20000, 3);
        assert_eq!(t[0], 0.0);
        let rate = (t.len() - 1) as f64 / t[t.len() - 1];
        assert!((rate - 100.0).abs() < 3.0, "{rate}");
        assert!((cv(&gaps(&t)) - 1.0).abs() < 0.05);
        assert!(
            plain(f64::INFINITY, 1.0)
                .offsets(5, 0)
                .iter()
                .all(|x| *x == 0.0)
        );
    }

    #[test]
    fn burstiness_sets_the_spread_not_the_rate() {
        for b in [0.25, 4.0] {
            let t = plain(50.0, b).offsets(20000, 9);
            let rate = (t.len() - 1) as f64 / t[t.len() - 1];
            assert!((rate - 50.0).abs() < 2.5, "b={b}: {rate}");
            // The gamma's coefficient of variation is 1/sqrt(b).
            assert!((cv(&gaps(&t)) - 1.0 / b.sqrt()).abs() < 0.06, "b={b}");
        }
        let c = plain(10.0, f64::INFINITY).offsets(4, 0);
        assert_eq!(c, vec![0.0, 0.1, 0.2, 0.30000000000000004]);
    }

    #[test]
    fn ramps_move_the_rate_from_start_to_end() {
        let a = Arrivals {
            rate: f64::INFINITY,
            burstiness: f64::INFINITY,
            ramp: Some((RampUpStrategy::Linear, 10.0, 100.0)),
        };
        let g = gaps(&a.offsets(1001, 0));
        assert!((g[0] - 0.1).abs() < 1e-9 && (g[999] - 1.0 / 99.91).abs() < 1e-6);
        let e = Arrivals {
            ramp: Some((RampUpStrategy::Exponential, 1.0, 100.0)),
            ..a
        };
        let g = gaps(&e.offsets(3, 0));
        assert!((g[0] - 1.0).abs() < 1e-9 && (g[1] - 0.1).abs() < 1e-9);
        assert_eq!(e.label(), "exponential-ramp 1.0->100.0");
        assert_eq!(py_float(16.0), "16.0");
        assert_eq!(py_float(0.25), "0.25");
    }
}
