//! What changed between two traces: operations added, removed, slower and faster (by total
//! time, with call counts beside), and the GPU-timeline totals side by side. HTA's `ops_diff`
//! classifies the same way (added/deleted/increased/decreased/unchanged).

use std::collections::HashMap;

use serde::Serialize;

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
