//! What changed between two traces: operations added, removed, slower and faster (by total
//! time, with call counts beside), and the GPU-timeline totals side by side. HTA's `ops_diff`
//! classifies the same way (added/deleted/increased/decreased/unchanged).
//!
//! Names of kernels differ across hardware (an H100's `sm90_xmma_gemm_*` is an MI300's
//! `Cijk_*`), so [`DiffReport::by_op`] pairs GPU work by what launched it instead: the k-th
//! launch of an op in a step on one side with the k-th on the other, compared on its median
//! over the steps (a slow outlier step does not move it), with the 90th percentile beside.

use std::collections::HashMap;

use serde::Serialize;

use crate::analyze::attribution::PositionRow;
use crate::analyze::summary::{OpStats, TraceSummary};
use crate::analyze::timeline::Breakdown;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Slower,
    Faster,
    Unchanged,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Slower => "slower",
            Change::Faster => "faster",
            Change::Unchanged => "unchanged",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct DiffRow {
    /// `kernel` (GPU operation) or `op` (CPU operator).
    pub kind: &'static str,
    pub name: String,
    pub change: Change,
    pub calls_a: u64,
    pub calls_b: u64,
    pub total_a_ns: i64,
    pub total_b_ns: i64,
    pub delta_ns: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DiffReport {
    pub a: String,
    pub b: String,
    pub timeline_a: Breakdown,
    pub timeline_b: Breakdown,
    pub counts: Vec<(Change, usize)>,
    /// Every changed operation, largest absolute time change first.
    pub rows: Vec<DiffRow>,
    /// GPU time by launching op, paired by position in the step; every op, largest absolute
    /// change first.
    pub by_op: Vec<OpDiffRow>,
    /// GPU busy time of each side (host busy time for CPU-only traces): `total` of `--fail-if`.
    pub total_a_ns: i64,
    pub total_b_ns: i64,
}

/// One launching op on both sides.
#[derive(Clone, Debug, Serialize)]
pub struct OpDiffRow {
    pub op: String,
    pub change: Change,
    /// Launch positions per step on each side, and how many both have.
    pub positions_a: u32,
    pub positions_b: u32,
    pub matched: u32,
    /// Σ over positions of the median over steps of the GPU time it launched.
    pub median_a_ns: f64,
    pub median_b_ns: f64,
    /// The same with each position's 90th percentile.
    pub p90_a_ns: f64,
    pub p90_b_ns: f64,
    pub delta_ns: f64,
}

fn by_op(a: &[PositionRow], b: &[PositionRow], threshold: f64) -> Vec<OpDiffRow> {
    #[derive(Default)]
    struct Side {
        positions: u32,
        median: f64,
        p90: f64,
        keys: std::collections::HashSet<u32>,
    }
    let mut ops: std::collections::BTreeMap<&str, (Side, Side)> = Default::default();
    for (rows, second) in [(a, false), (b, true)] {
        for r in rows {
            let e = ops.entry(r.op.as_str()).or_default();
            let side = if second { &mut e.1 } else { &mut e.0 };
            side.positions += 1;
            side.median += r.median_ns;
            side.p90 += r.p90_ns;
            side.keys.insert(r.position);
        }
    }
    let mut out: Vec<OpDiffRow> = ops
        .into_iter()
        .map(|(op, (x, y))| {
            let delta = y.median - x.median;
            let change = if x.positions == 0 {
                Change::Added
            } else if y.positions == 0 {
                Change::Removed
            } else {
                let rel = delta / x.median.max(1.0);
                if rel > threshold {
                    Change::Slower
                } else if rel < -threshold {
                    Change::Faster
                } else {
                    Change::Unchanged
                }
            };
            OpDiffRow {
                op: op.to_string(),
                change,
                positions_a: x.positions,
                positions_b: y.positions,
                matched: x.keys.intersection(&y.keys).count() as u32,
                median_a_ns: x.median,
                median_b_ns: y.median,
                p90_a_ns: x.p90,
                p90_b_ns: y.p90,
                delta_ns: delta,
            }
        })
        .collect();
    out.sort_by(|x, y| {
        y.delta_ns
            .abs()
            .total_cmp(&x.delta_ns.abs())
            .then_with(|| x.op.cmp(&y.op))
    });
    out
}

/// What `total` means in a diff: GPU busy time, or host busy time without GPU work.
fn total(s: &TraceSummary) -> i64 {
    if s.timeline.busy_ns > 0 {
        s.timeline.busy_ns
    } else {
        s.host.busy_ns
    }
}

/// `threshold` is the relative change of total time below which an operation counts as
/// unchanged (0.05 = 5%).
pub fn diff(a: &TraceSummary, b: &TraceSummary, threshold: f64) -> DiffReport {
    let mut rows = Vec::new();
    compare("kernel", &a.kernels, &b.kernels, threshold, &mut rows);
    compare("op", &a.ops, &b.ops, threshold, &mut rows);
    rows.sort_by(|x, y| {
        y.delta_ns
            .abs()
            .cmp(&x.delta_ns.abs())
            .then_with(|| x.name.cmp(&y.name))
    });
    let counts = [
        Change::Added,
        Change::Removed,
        Change::Slower,
        Change::Faster,
        Change::Unchanged,
    ]
    .map(|c| (c, rows.iter().filter(|r| r.change == c).count()))
    .to_vec();
    rows.retain(|r| r.change != Change::Unchanged);
    DiffReport {
        a: a.file.clone(),
        b: b.file.clone(),
        timeline_a: a.timeline,
        timeline_b: b.timeline,
        counts,
        rows,
        by_op: by_op(
            &a.attribution.positions,
            &b.attribution.positions,
            threshold,
        ),
        total_a_ns: total(a),
        total_b_ns: total(b),
    }
}

fn compare(
    kind: &'static str,
    a: &[OpStats],
    b: &[OpStats],
    threshold: f64,
    out: &mut Vec<DiffRow>,
) {
    let in_b: HashMap<&str, &OpStats> = b.iter().map(|o| (o.name.as_str(), o)).collect();
    let in_a: HashMap<&str, &OpStats> = a.iter().map(|o| (o.name.as_str(), o)).collect();
    for x in a {
        let y = in_b.get(x.name.as_str());
        let (calls_b, total_b) = y.map_or((0, 0), |y| (y.calls, y.total_ns));
        let delta = total_b - x.total_ns;
        let change = match y {
            None => Change::Removed,
            Some(_) if x.total_ns == 0 && delta == 0 => Change::Unchanged,
            Some(_) => {
                let rel = delta as f64 / x.total_ns.max(1) as f64;
                if rel > threshold {
                    Change::Slower
                } else if rel < -threshold {
                    Change::Faster
                } else {
                    Change::Unchanged
                }
            }
        };
        out.push(DiffRow {
            kind,
            name: x.name.clone(),
            change,
            calls_a: x.calls,
            calls_b,
            total_a_ns: x.total_ns,
            total_b_ns: total_b,
            delta_ns: delta,
        });
    }
    for y in b.iter().filter(|y| !in_a.contains_key(y.name.as_str())) {
        out.push(DiffRow {
            kind,
            name: y.name.clone(),
            change: Change::Added,
            calls_a: 0,
            calls_b: y.calls,
            total_a_ns: 0,
            total_b_ns: y.total_ns,
            delta_ns: y.total_ns,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str, calls: u64, total_ns: i64) -> OpStats {
        OpStats {
            name: name.into(),
            calls,
            total_ns,
            min_ns: 0,
            max_ns: 0,
        }
    }

    #[test]
    fn classifies_changes() {
        let a = [
            op("gemm", 10, 1000),
            op("gone", 1, 50),
            op("same", 4, 400),
            op("fast", 2, 300),
        ];
        let b = [
            op("gemm", 10, 1500),
            op("new", 3, 70),
            op("same", 4, 410),
            op("fast", 2, 100),
        ];
        let mut rows = Vec::new();
        compare("kernel", &a, &b, 0.05, &mut rows);
        let get = |n: &str| rows.iter().find(|r| r.name == n).unwrap();
        assert_eq!(get("gemm").change, Change::Slower);
        assert_eq!(get("gemm").delta_ns, 500);
        assert_eq!(get("gone").change, Change::Removed);
        assert_eq!(get("new").change, Change::Added);
        assert_eq!(get("new").calls_b, 3);
        assert_eq!(get("same").change, Change::Unchanged);
        assert_eq!(get("fast").change, Change::Faster);
    }
}
