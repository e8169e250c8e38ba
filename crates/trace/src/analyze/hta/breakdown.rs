//! HTA's `get_temporal_breakdown`, `get_comm_comp_overlap` and `get_gpu_kernel_breakdown`
//! (`hta/analyzers/breakdown_analysis.py`, `communication_analysis.py`) over one rank's rows.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::stats::{Moments, quantile};
use super::{GpuRow, KernelType, covered, merge_push, round_to};

/// HTA's temporal breakdown of one rank (times in ns; HTA prints µs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Temporal {
    pub idle_ns: i64,
    pub compute_ns: i64,
    /// Communication, memory and other GPU time not hidden under computation.
    pub non_compute_ns: i64,
    /// First GPU start to last GPU end.
    pub kernel_ns: i64,
    /// Shares of `kernel_ns`, percent with 2 decimals (`None` without GPU time).
    pub idle_pctg: Option<f64>,
    pub compute_pctg: Option<f64>,
    pub non_compute_pctg: Option<f64>,
    /// Rows with a negative duration, counted as empty (HTA asserts on some of them).
    pub negative_durations: u64,
}

/// HTA's merged intervals (`merge_kernel_intervals`) of every row and of each kernel type,
/// from one sort of the rows' intervals (a type's rows, taken in that order, are sorted too).
pub(super) struct Merged {
    all: Vec<(i64, i64)>,
    comp: Vec<(i64, i64)>,
    comm: Vec<(i64, i64)>,
    mem: Vec<(i64, i64)>,
}

pub(super) fn merged(rows: &[GpuRow]) -> Merged {
    let mut iv: Vec<(i64, i64, KernelType)> = rows.iter().map(|r| (r.ts, r.end, r.kind)).collect();
    iv.sort_unstable_by_key(|&(s, e, _)| (s, e));
    let mut m = Merged {
        all: Vec::new(),
        comp: Vec::new(),
        comm: Vec::new(),
        mem: Vec::new(),
    };
    for (s, e, kind) in iv {
        merge_push(&mut m.all, s, e);
        match kind {
            KernelType::Computation => merge_push(&mut m.comp, s, e),
            KernelType::Communication => merge_push(&mut m.comm, s, e),
            KernelType::Memory => merge_push(&mut m.mem, s, e),
            KernelType::Other => {}
        }
    }
    m
}

pub(super) fn temporal(rows: &[GpuRow], m: &Merged) -> Temporal {
    let all = &m.all;
    let (Some(first), Some(last)) = (all.first(), all.last()) else {
        return Temporal::default();
    };
    let kernel_ns = last.1 - first.0;
    let busy = covered(all);
    let compute_ns = covered(&m.comp);
    let idle_ns = kernel_ns - busy;
    let non_compute_ns = busy - compute_ns;
    let pct = |x: i64| (kernel_ns != 0).then(|| round_to(100.0 * x as f64 / kernel_ns as f64, 2));
    Temporal {
        idle_ns,
        compute_ns,
        non_compute_ns,
        kernel_ns,
        idle_pctg: pct(idle_ns),
        compute_pctg: pct(compute_ns),
        non_compute_pctg: pct(non_compute_ns),
        negative_durations: rows.iter().filter(|r| r.end < r.ts).count() as u64,
    }
}

/// `|comm ∩ comp| / |comm|`, percent, 2 decimals; `None` without communication.
pub(super) fn overlap(m: &Merged) -> Option<f64> {
    let (comm, comp) = (&m.comm, &m.comp);
    let comm_ns = covered(comm);
    if comm_ns == 0 {
        return None;
    }
    // both lists are sorted and disjoint within themselves
    let (mut i, mut j, mut both) = (0, 0, 0i64);
    while i < comm.len() && j < comp.len() {
        let s = comm[i].0.max(comp[j].0);
        let e = comm[i].1.min(comp[j].1);
        both += (e - s).max(0);
        if comm[i].1 < comp[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    Some(round_to(100.0 * both as f64 / comm_ns as f64, 2))
}

/// Time under one combination of kernel types (`COMPUTATION overlapping COMMUNICATION`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelTypeRow {
    pub kernel_type: String,
    /// HTA truncates each segment to whole µs before summing; this is that sum, in µs.
    pub sum_us: i64,
}

/// Computation, communication and memory, with HTA's bits 1, 2, 4 (labels list them in
/// that order).
const BREAKDOWN_TYPES: [KernelType; 3] = [
    KernelType::Computation,
    KernelType::Communication,
    KernelType::Memory,
];

pub(super) fn kernel_types(m: &Merged) -> Vec<KernelTypeRow> {
    let mut points: Vec<(i64, i32)> = Vec::new();
    // in BREAKDOWN_TYPES' order: bits 1, 2, 4
    for (bit, merged) in [&m.comp, &m.comm, &m.mem].into_iter().enumerate() {
        let v = 1 << bit;
        for &(s, e) in merged {
            points.push((s, v));
            points.push((e, -v));
        }
    }
    points.sort_unstable();
    let mut sums: HashMap<i32, i64> = HashMap::new();
    let mut running = 0;
    for w in 0..points.len() {
        running += points[w].1;
        if running > 0
            && let Some(next) = points.get(w + 1)
        {
            // HTA's `.astype(int)` on µs differences: truncation toward zero
            *sums.entry(running).or_default() += (next.0 - points[w].0) / 1000;
        }
    }
    let mut out: Vec<KernelTypeRow> = sums
        .into_iter()
        .map(|(bits, sum_us)| KernelTypeRow {
            kernel_type: label(bits),
            sum_us,
        })
        .collect();
    out.sort_by(|a, b| a.kernel_type.cmp(&b.kernel_type));
    out
}

fn label(bits: i32) -> String {
    BREAKDOWN_TYPES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, t)| t.name())
        .collect::<Vec<_>>()
        .join(" overlapping ")
}

/// HTA's `kernel_type_breakdown` over several ranks: sums per label, largest first, with
/// `round(100 * sum / total, 1)`.
pub fn kernel_type_shares<'a>(
    per_rank: impl IntoIterator<Item = &'a [KernelTypeRow]>,
) -> Vec<(String, i64, f64)> {
    let mut sums: HashMap<&str, i64> = HashMap::new();
    for rows in per_rank {
        for r in rows {
            *sums.entry(r.kernel_type.as_str()).or_default() += r.sum_us;
        }
    }
    let total: i64 = sums.values().sum();
    let mut out: Vec<(String, i64, f64)> = sums
        .into_iter()
        .map(|(k, v)| {
            let pct = if total == 0 {
                f64::NAN
            } else {
                round_to(100.0 * v as f64 / total as f64, 1)
            };
            (k.to_string(), v, pct)
        })
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// One kernel name (or `others`) of one type, HTA's `kernel_breakdown` second table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopKernelRow {
    pub kernel_type: KernelType,
    pub name: String,
    pub sum_ns: i64,
    pub max_ns: i64,
    pub min_ns: i64,
    pub mean_ns: f64,
    /// Sample standard deviation (0 for a single value, as HTA fills NaN).
    pub std_ns: f64,
}

/// Names kept before the tail becomes `others` (HTA's `num_kernels`).
const TOP_KERNELS: usize = 10;
/// Quantile of the cumulative sums past which names become `others` (`duration_ratio`).
const DURATION_RATIO: f64 = 0.8;

pub(super) fn top_kernels(rows: &[GpuRow], names: &[Box<str>]) -> Vec<TopKernelRow> {
    // one pass: moments per name id (a name has one kernel type)
    let mut by_name: Vec<Moments> = vec![Moments::default(); names.len()];
    for r in rows {
        if r.kind != KernelType::Other {
            by_name[r.name as usize].add(r.end - r.ts);
        }
    }
    let mut out = Vec::new();
    for t in BREAKDOWN_TYPES {
        let mut groups: Vec<(&str, Moments)> = rows_of_type(rows, names, &by_name, t);
        // HTA sorts by sum, descending (ties in name order here, for stability)
        groups.sort_by(|a, b| b.1.sum.cmp(&a.1.sum).then_with(|| a.0.cmp(b.0)));
        if groups.len() > TOP_KERNELS {
            let cum: Vec<f64> = groups
                .iter()
                .scan(0i128, |acc, g| {
                    *acc += g.1.sum;
                    Some(*acc as f64)
                })
                .collect();
            let q = quantile(&cum, DURATION_RATIO);
            let mut others = Moments::default();
            for (i, (name, m)) in groups.iter().enumerate() {
                // after folding, HTA aggregates each name's sum (one value per name)
                let sum = m.sum as i64;
                if cum[i] > q || i >= TOP_KERNELS {
                    others.add(sum);
                } else {
                    out.push(stats_row(t, name.to_string(), &Moments::of([sum])));
                }
            }
            if others.n > 0 {
                out.push(stats_row(t, "others".into(), &others));
            }
        } else {
            for (name, m) in groups {
                out.push(stats_row(t, name.to_string(), &m));
            }
        }
    }
    out.sort_by(|a, b| {
        a.kernel_type
            .cmp(&b.kernel_type)
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

/// The names of type `t` that some row has, with their moments.
fn rows_of_type<'a>(
    rows: &[GpuRow],
    names: &'a [Box<str>],
    by_name: &[Moments],
    t: KernelType,
) -> Vec<(&'a str, Moments)> {
    let mut seen = vec![false; names.len()];
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| r.kind == t) {
        let id = r.name as usize;
        if !std::mem::replace(&mut seen[id], true) {
            out.push((&*names[id], by_name[id]));
        }
    }
    out
}

fn stats_row(kernel_type: KernelType, name: String, m: &Moments) -> TopKernelRow {
    TopKernelRow {
        kernel_type,
        name,
        sum_ns: m.sum as i64,
        max_ns: m.max,
        min_ns: m.min,
        mean_ns: m.mean().expect("a group has values"),
        // a single value: 0, where HTA fills NaN
        std_ns: m.std().unwrap_or(0.0),
    }
}
