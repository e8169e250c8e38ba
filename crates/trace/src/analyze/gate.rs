//! `diff --fail-if EXPR`: conditions on a diff that CI gates on. `EXPR` is `TARGET OP LIMIT`:
//!
//! - `TARGET`: `total` (GPU busy time; host busy time without GPU work), `op:NAME` (GPU time
//!   launched by that op, paired by position in the step), or `kernel:NAME` (a kernel's total
//!   time by name);
//! - `OP`: `>` or `<`;
//! - `LIMIT`: a relative change (`+5%`, `-10%`) or an absolute one (`+2ms`, `-300us`, `+1s`).
//!
//! `total>+5%` holds when B's total exceeds A's by more than 5%; `op:aten::mm<-10%` when the
//! GPU time under `aten::mm` fell by more than 10%. A target absent on one side counts as 0.

use serde::Serialize;

use crate::analyze::diff::DiffReport;
use crate::error::{Result, TraceError};

#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Total,
    Op(String),
    Kernel(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    /// A relative change, as a fraction (`+5%` is 0.05).
    Relative(f64),
    /// An absolute change in nanoseconds.
    Absolute(f64),
}

/// One parsed `--fail-if` condition.
#[derive(Clone, Debug, PartialEq)]
pub struct FailIf {
    pub text: String,
    pub target: Target,
    pub greater: bool,
    pub limit: Limit,
}

/// A condition that held, with the values it compared.
#[derive(Clone, Debug, Serialize)]
pub struct GateHit {
    pub condition: String,
    pub a_ns: f64,
    pub b_ns: f64,
    /// `(b - a) / a`; `None` when A is 0.
    pub relative: Option<f64>,
}

impl FailIf {
    pub fn parse(text: &str) -> Result<FailIf> {
        let bad = |why: &str| {
            TraceError::Usage(format!(
                "--fail-if {text:?}: {why} (expected e.g. `total>+5%`, `op:aten::mm>+10%`, `kernel:NAME<-2ms`)"
            ))
        };
        // The last comparison sign splits: op and kernel names may hold `<` and `>`
        // (templates), the limit never does.
        let at = text.rfind(['>', '<']).ok_or_else(|| bad("no `>` or `<`"))?;
        let (lhs, rest) = text.split_at(at);
        let greater = rest.starts_with('>');
        let limit_text = rest[1..].trim();
        let target = match lhs.trim() {
            "total" => Target::Total,
            t => {
                if let Some(name) = t.strip_prefix("op:") {
                    Target::Op(name.to_string())
                } else if let Some(name) = t.strip_prefix("kernel:") {
                    Target::Kernel(name.to_string())
                } else {
                    return Err(bad(
                        "the target must be `total`, `op:NAME` or `kernel:NAME`",
                    ));
                }
            }
        };
        if matches!(&target, Target::Op(n) | Target::Kernel(n) if n.is_empty()) {
            return Err(bad("the target names nothing"));
        }
        let limit = parse_limit(limit_text)
            .ok_or_else(|| bad("the limit must look like +5%, -10%, +2ms, -300us or +1s"))?;
        Ok(FailIf {
            text: text.to_string(),
            target,
            greater,
            limit,
        })
    }

    /// The condition's values in `d`, if it holds.
    pub fn check(&self, d: &DiffReport) -> Option<GateHit> {
        let (a, b) = match &self.target {
            Target::Total => (d.total_a_ns as f64, d.total_b_ns as f64),
            Target::Op(name) => d
                .by_op
                .iter()
                .find(|r| &r.op == name)
                .map_or((0.0, 0.0), |r| (r.median_a_ns, r.median_b_ns)),
            Target::Kernel(name) => d
                .rows
                .iter()
                .find(|r| r.kind == "kernel" && &r.name == name)
                .map_or_else(
                    || {
                        // unchanged kernels are not in `rows`: they do not hold a `>` or `<`
                        (0.0, 0.0)
                    },
                    |r| (r.total_a_ns as f64, r.total_b_ns as f64),
                ),
        };
        let relative = (a != 0.0).then(|| (b - a) / a);
        let change = match self.limit {
            Limit::Relative(_) => relative.unwrap_or(if b > 0.0 { f64::INFINITY } else { 0.0 }),
            Limit::Absolute(_) => b - a,
        };
        let limit = match self.limit {
            Limit::Relative(x) | Limit::Absolute(x) => x,
        };
        let holds = if self.greater {
            change > limit
        } else {
            change < limit
        };
        holds.then(|| GateHit {
            condition: self.text.clone(),
            a_ns: a,
            b_ns: b,
            relative,
        })
    }
}

fn parse_limit(t: &str) -> Option<Limit> {
    let (number, unit) = t
        .find(|c: char| c.is_ascii_alphabetic() || c == '%')
        .map_or((t, ""), |i| t.split_at(i));
    let v: f64 = number.trim().parse().ok()?;
    if !v.is_finite() {
        return None;
    }
    Some(match unit.trim() {
        "%" => Limit::Relative(v / 100.0),
        "ns" => Limit::Absolute(v),
        "us" => Limit::Absolute(v * 1e3),
        "ms" => Limit::Absolute(v * 1e6),
        "s" => Limit::Absolute(v * 1e9),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_conditions() {
        let f = FailIf::parse("total>+5%").unwrap();
        assert_eq!(
            (f.target, f.greater, f.limit),
            (Target::Total, true, Limit::Relative(0.05))
        );
        let f = FailIf::parse("op:aten::mm>+10%").unwrap();
        assert_eq!(f.target, Target::Op("aten::mm".into()));
        let f = FailIf::parse("kernel:void k<float>(float*)<-2ms").unwrap();
        assert_eq!(f.target, Target::Kernel("void k<float>(float*)".into()));
        assert_eq!((f.greater, f.limit), (false, Limit::Absolute(-2e6)));
        for bad in [
            "total",
            "total>5",
            "cpu>+5%",
            "op:>+1%",
            "total>+x%",
            "total>+5%%",
        ] {
            assert!(FailIf::parse(bad).is_err(), "{bad}");
        }
    }
}
