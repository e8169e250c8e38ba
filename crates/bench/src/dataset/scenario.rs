//! genai-bench's traffic scenarios for text generation: `D(in,out)` fixed lengths,
//! `N(mean_in,std_in)/(mean_out,std_out)` normal lengths (clipped at 1),
//! `U(min_in,max_in)/(min_out,max_out)` or `U(max_in,max_out)` uniform lengths.
//! Prompts are built as `random-ids` with the drawn lengths.

use rand::RngExt;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

use crate::error::{BenchError, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Scenario {
    Deterministic {
        input: usize,
        output: usize,
    },
    Normal {
        input: (f64, f64),
        output: (f64, f64),
    },
    Uniform {
        input: (usize, usize),
        output: (usize, usize),
    },
}

fn bad(s: &str, why: &str) -> BenchError {
    BenchError::Usage(format!(
        "--traffic-scenario '{s}': {why} (expected D(in,out), N(mean,std)/(mean,std), \
         U(min,max)/(min,max) or U(max_in,max_out))"
    ))
}

/// "(a,b)" into its two numbers.
fn pair(s: &str, whole: &str) -> Result<(f64, f64)> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .ok_or_else(|| bad(whole, "a group is not in parentheses"))?;
    let (a, b) = inner
        .split_once(',')
        .ok_or_else(|| bad(whole, "a group needs two numbers"))?;
    let num = |x: &str| {
        x.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| bad(whole, "not a non-negative number"))
    };
    Ok((num(a)?, num(b)?))
}

fn whole(v: f64, s: &str) -> Result<usize> {
    if v.fract() != 0.0 || v < 1.0 {
        return Err(bad(s, "token counts must be whole numbers >= 1"));
    }
    Ok(v as usize)
}

impl Scenario {
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        let (kind, rest) = t.split_at(t.find('(').ok_or_else(|| bad(s, "no parameters"))?);
        let groups: Vec<&str> = rest.split('/').collect();
        match (kind.trim(), groups.as_slice()) {
            ("D", [g]) => {
                let (i, o) = pair(g, s)?;
                Ok(Scenario::Deterministic {
                    input: whole(i, s)?,
                    output: whole(o, s)?,
                })
            }
            ("N", [gi, go]) => {
                let (input, output) = (pair(gi, s)?, pair(go, s)?);
                if input.0 < 1.0 || output.0 < 1.0 {
                    return Err(bad(s, "means must be at least 1"));
                }
                Ok(Scenario::Normal { input, output })
            }
            ("U", [g]) => {
                let (i, o) = pair(g, s)?;
                Ok(Scenario::Uniform {
                    input: (1, whole(i, s)?),
                    output: (1, whole(o, s)?),
                })
            }
            ("U", [gi, go]) => {
                let ((a, b), (c, d)) = (pair(gi, s)?, pair(go, s)?);
                let (a, b, c, d) = (whole(a, s)?, whole(b, s)?, whole(c, s)?, whole(d, s)?);
                if a > b || c > d {
                    return Err(bad(s, "min is above max"));
                }
                Ok(Scenario::Uniform {
                    input: (a, b),
                    output: (c, d),
                })
            }
            ("E" | "R" | "I" | "A", _) => Err(bad(
                s,
                "embedding, rerank, image and audio scenarios are not implemented",
            )),
            _ => Err(bad(s, "unknown form")),
        }
    }

    /// (input, output) lengths for one request.
    pub fn draw(&self, rng: &mut StdRng) -> (usize, usize) {
        match self {
            Scenario::Deterministic { input, output } => (*input, *output),
            Scenario::Normal { input, output } => {
                let mut one = |(m, sd): (f64, f64)| {
                    let n = Normal::new(m, sd).expect("finite, non-negative std");
                    n.sample(rng).round().max(1.0) as usize
                };
                (one(*input), one(*output))
            }
            Scenario::Uniform { input, output } => (
                rng.random_range(input.0..=input.1),
                rng.random_range(output.0..=output.1),
            ),
        }
    }

    /// The scenario as written canonically (the report's label).
    pub fn label(&self) -> String {
        match self {
            Scenario::Deterministic { input, output } => format!("D({input},{output})"),
            Scenario::Normal { input, output } => {
                format!("N({},{})/({},{})", input.0, input.1, output.0, output.1)
            }
            Scenario::Uniform { input, output } => {
                format!("U({},{})/({},{})", input.0, input.1, output.0, output.1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parses_genai_bench_forms() {
        assert_eq!(
            Scenario::parse("D(100,1000)").unwrap(),
            Scenario::Deterministic {
                input: 100,
                output: 1000
            }
        );
        assert_eq!(
            Scenario::parse("N(480,240)/(300,150)").unwrap(),
            Scenario::Normal {
                input: (480.0, 240.0),
                output: (300.0, 150.0)
            }
        );
        assert_eq!(
            Scenario::parse("U(50,100)/(200,250)").unwrap(),
            Scenario::Uniform {
                input: (50, 100),
                output: (200, 250)
            }
        );
        assert_eq!(
            Scenario::parse("U(100,200)").unwrap(),
            Scenario::Uniform {
                input: (1, 100),
                output: (1, 200)
            }
        );
        for bad in [
            "D(1.5,2)",
            "D(10)",
            "U(9,2)/(1,2)",
            "E(1024)",
            "X(1,2)",
            "D 5",
        ] {
            assert!(Scenario::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn draws_follow_the_distribution() {
        let mut rng = StdRng::seed_from_u64(3);
        let n = Scenario::parse("N(200,20)/(50,5)").unwrap();
        let draws: Vec<(usize, usize)> = (0..5000).map(|_| n.draw(&mut rng)).collect();
        let mean = draws.iter().map(|d| d.0 as f64).sum::<f64>() / 5000.0;
        assert!((mean - 200.0).abs() < 2.0, "{mean}");
        let u = Scenario::parse("U(10,20)/(3,4)").unwrap();
        assert!(
            (0..500)
                .map(|_| u.draw(&mut rng))
                .all(|(i, o)| (10..=20).contains(&i) && (3..=4).contains(&o))
        );
        assert_eq!(u.label(), "U(10,20)/(3,4)");
    }
}
