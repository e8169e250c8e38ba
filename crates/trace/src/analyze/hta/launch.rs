//! HTA's `get_idle_time_breakdown` (per-stream gaps blamed on the host, on launch overhead or
//! on neither) and `get_cuda_kernel_launch_stats` (launch call vs kernel, launch delay), with
//! the thresholds HTA's plots apply (`hta/analyzers/breakdown_analysis.py`,
//! `cuda_kernel_analysis.py`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::stats::{Moments, quantile_of};
use super::{CpuRow, GpuRow, Launch, RowCat, round_to};
use crate::analyze::corr::{CorrMap, Repeat};

/// Gaps shorter than this count as launch overhead (`consecutive_kernel_delay`, 30 µs; HTA's
/// docstring says ns).
pub const CONSECUTIVE_KERNEL_DELAY_NS: i64 = 30_000;
/// Launch calls longer than this are runtime outliers (`runtime_cutoff`, 50 µs).
pub const RUNTIME_CUTOFF_NS: i64 = 50_000;
/// Launch delays longer than this are outliers (`launch_delay_cutoff`, 100 µs).
pub const LAUNCH_DELAY_CUTOFF_NS: i64 = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdleCategory {
    /// The launch call started after the previous kernel on the stream had ended.
    HostWait,
    /// A gap under [`CONSECUTIVE_KERNEL_DELAY_NS`]: back-to-back launch overhead.
    KernelWait,
    Other,
}

impl IdleCategory {
    pub fn name(self) -> &'static str {
        match self {
            IdleCategory::HostWait => "host_wait",
            IdleCategory::KernelWait => "kernel_wait",
            IdleCategory::Other => "other",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdleRow {
    pub stream: i64,
    pub category: IdleCategory,
    pub idle_ns: i64,
    /// Share of the stream's idle time, 2 decimals; `None` when the stream has none.
    pub ratio: Option<f64>,
}

/// pandas' `describe()` of one category's gaps on one stream (ns).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdleStatsRow {
    pub stream: i64,
    pub category: IdleCategory,
    pub count: u64,
    pub mean_ns: Option<f64>,
    pub std_ns: Option<f64>,
    pub min_ns: Option<f64>,
    pub p25_ns: Option<f64>,
    pub p50_ns: Option<f64>,
    pub p75_ns: Option<f64>,
    pub max_ns: Option<f64>,
}

pub(super) fn idle(
    rows: &[GpuRow],
    launch_of: &CorrMap<i64>,
    stream_order: &[i64],
) -> (Vec<IdleRow>, Vec<IdleStatsRow>) {
    let mut per_stream: HashMap<i64, Vec<&GpuRow>> = HashMap::new();
    for r in rows.iter().filter(|r| r.cat != RowCat::Other) {
        per_stream.entry(r.stream).or_default().push(r);
    }
    let mut order: Vec<i64> = stream_order
        .iter()
        .copied()
        .filter(|s| per_stream.contains_key(s))
        .collect();
    let mut rest: Vec<i64> = per_stream
        .keys()
        .copied()
        .filter(|s| !order.contains(s))
        .collect();
    rest.sort_unstable();
    order.extend(rest);

    let mut out = Vec::new();
    let mut stats = Vec::new();
    for stream in order {
        let mut ks = per_stream.remove(&stream).unwrap_or_default();
        ks.sort_by_key(|r| r.ts);
        let mut gaps: HashMap<IdleCategory, Vec<i64>> = HashMap::new();
        for w in ks.windows(2) {
            let (prev, k) = (w[0], w[1]);
            let gap = k.ts - prev.end;
            let runtime = launch_of.get(k.correlation);
            let cat = if runtime.is_some_and(|ts| ts > prev.end) {
                IdleCategory::HostWait
            } else if gap < CONSECUTIVE_KERNEL_DELAY_NS {
                IdleCategory::KernelWait
            } else {
                IdleCategory::Other
            };
            gaps.entry(cat).or_default().push(gap);
        }
        if ks.is_empty() {
            continue;
        }
        // the first row has no gap: HTA labels it `other` with a NaN interval
        gaps.entry(IdleCategory::Other).or_default();
        let total: i64 = gaps.values().flatten().sum();
        let mut cats: Vec<IdleCategory> = gaps.keys().copied().collect();
        cats.sort();
        for cat in cats {
            let g = &gaps[&cat];
            let idle_ns: i64 = g.iter().sum();
            out.push(IdleRow {
                stream,
                category: cat,
                idle_ns,
                ratio: (total != 0).then(|| round_to(idle_ns as f64 / total as f64, 2)),
            });
            stats.push(describe(stream, cat, g));
        }
    }
    (out, stats)
}

fn describe(stream: i64, category: IdleCategory, gaps: &[i64]) -> IdleStatsRow {
    let m = Moments::of(gaps.iter().copied());
    let mut v = gaps.to_vec();
    let n = v.len();
    let mut q = |p: f64| (n > 0).then(|| quantile_of(&mut v, p));
    IdleStatsRow {
        stream,
        category,
        count: n as u64,
        p25_ns: q(0.25),
        p50_ns: q(0.5),
        p75_ns: q(0.75),
        mean_ns: m.mean(),
        std_ns: m.std(),
        min_ns: (n > 0).then_some(m.min as f64),
        max_ns: (n > 0).then_some(m.max as f64),
    }
}

/// One launch call and the GPU operation it launched (a graph launch gives one per kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchRow {
    pub correlation: i64,
    pub cpu_ns: i64,
    pub gpu_ns: i64,
    /// `max(0, kernel start - launch call end)`.
    pub delay_ns: i64,
}

/// Sum, mean, min, median (linear) and max of one column; `None` without launches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    pub sum_ns: Option<f64>,
    pub mean_ns: Option<f64>,
    pub min_ns: Option<f64>,
    pub p50_ns: Option<f64>,
    pub p90_ns: Option<f64>,
    pub max_ns: Option<f64>,
}

impl Distribution {
    fn of(values: impl Iterator<Item = i64>) -> Distribution {
        let mut v: Vec<i64> = values.collect();
        if v.is_empty() {
            return Distribution::default();
        }
        let m = Moments::of(v.iter().copied());
        Distribution {
            sum_ns: Some(m.sum as f64),
            mean_ns: m.mean(),
            min_ns: Some(m.min as f64),
            p50_ns: Some(quantile_of(&mut v, 0.5)),
            p90_ns: Some(quantile_of(&mut v, 0.9)),
            max_ns: Some(m.max as f64),
        }
    }
}

/// Kernel launch statistics with HTA's plot thresholds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LaunchSummary {
    pub launches: u64,
    /// Launch call at most [`RUNTIME_CUTOFF_NS`] and the kernel shorter than its launch: the
    /// GPU finishes before the CPU has issued the next one.
    pub short_gpu_kernels: u64,
    pub runtime_outliers: u64,
    pub launch_delay_outliers: u64,
    pub cpu: Distribution,
    pub gpu: Distribution,
    pub delay: Distribution,
    /// Every row, by correlation (not serialised: a summary stays kilobytes).
    #[serde(skip)]
    pub rows: Vec<LaunchRow>,
}

pub(super) fn launches(gpu: &[GpuRow], cpu: &[CpuRow], hta_names: bool) -> LaunchSummary {
    let launch_calls = cpu.iter().filter(|c| match c.launch {
        Launch::Hta => true,
        Launch::Other => !hta_names,
        Launch::No => false,
    });
    let row = |c: &CpuRow, g: &GpuRow| LaunchRow {
        correlation: c.correlation,
        cpu_ns: c.end - c.ts,
        gpu_ns: g.end - g.ts,
        delay_ns: (g.ts - c.end).max(0),
    };
    let mut rows = Vec::new();
    // Most correlations name one GPU row (a graph launch names several): then each launch
    // call finds its row in one slot.
    let one = CorrMap::build(
        || {
            gpu.iter()
                .enumerate()
                .map(|(i, g)| (g.correlation, i as u32))
        },
        Repeat::Last,
    );
    let unique = gpu
        .iter()
        .enumerate()
        .all(|(i, g)| g.correlation < 0 || one.get(g.correlation) == Some(i as u32));
    if unique {
        for c in launch_calls {
            if let Some(i) = one.get(c.correlation) {
                rows.push(row(c, &gpu[i as usize]));
            }
        }
    } else {
        drop(one);
        // GPU rows by correlation (stable: a correlation's rows keep the file's order),
        // looked up by binary search: one reference per row, not a vector per correlation.
        let mut by_corr: Vec<&GpuRow> = gpu.iter().filter(|g| g.correlation >= 0).collect();
        by_corr.sort_by_key(|g| g.correlation);
        for c in launch_calls {
            let from = by_corr.partition_point(|g| g.correlation < c.correlation);
            let to = from + by_corr[from..].partition_point(|g| g.correlation == c.correlation);
            rows.extend(by_corr[from..to].iter().map(|g| row(c, g)));
        }
    }
    rows.sort_by_key(|r| (r.correlation, r.gpu_ns, r.cpu_ns));
    LaunchSummary {
        launches: rows.len() as u64,
        short_gpu_kernels: rows
            .iter()
            .filter(|r| r.cpu_ns <= RUNTIME_CUTOFF_NS && r.gpu_ns < r.cpu_ns)
            .count() as u64,
        runtime_outliers: rows.iter().filter(|r| r.cpu_ns > RUNTIME_CUTOFF_NS).count() as u64,
        launch_delay_outliers: rows
            .iter()
            .filter(|r| r.delay_ns > LAUNCH_DELAY_CUTOFF_NS)
            .count() as u64,
        cpu: Distribution::of(rows.iter().map(|r| r.cpu_ns)),
        gpu: Distribution::of(rows.iter().map(|r| r.gpu_ns)),
        delay: Distribution::of(rows.iter().map(|r| r.delay_ns)),
        rows,
    }
}
