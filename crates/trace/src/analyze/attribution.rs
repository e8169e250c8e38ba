//! GPU work attributed to the host code that launched it: each kernel, memcpy and memset is
//! joined through its `correlation` to the runtime call that launched it (no flow events
//! needed, unlike TraceLens before its PR #996), and from there to the nearest enclosing
//! `cpu_op`, its `nn.Module` path and its layer. A graph launch's kernels share its
//! correlation and all go to the graph launch's op.
//!
//! Per op, time is the union of its kernels (overlapping kernels of one op count once), as
//! TraceLens's `total_direct_kernel_time`; the plain sum is kept beside it. For comparing
//! traces across hardware, each launch also gets its position in its step: the k-th launch of
//! op X in a step is the same work on an H100 and on an MI300 even when every kernel name
//! differs, and its GPU time over many steps is a distribution, not one total.

use std::collections::HashMap;

use foldhash::fast::FixedState;
use serde::{Deserialize, Serialize};

use crate::analyze::host::{HostOutcome, LaunchSite};
use crate::analyze::timeline::Window;

type Map<K, V> = HashMap<K, V, FixedState>;

/// GPU time of one op, module or layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributionRow {
    pub name: String,
    /// Launch calls attributed to it.
    pub launches: u64,
    /// GPU operations (kernels, memcpy, memset) they launched.
    pub kernels: u64,
    /// Union of those operations' intervals.
    pub gpu_ns: i64,
    /// Their summed durations.
    pub sum_ns: i64,
}

/// The k-th launch of one op within a step, over the steps that have it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PositionRow {
    pub op: String,
    /// 0 for the op's first launch in a step, 1 for its second, ...
    pub position: u32,
    /// Steps in which this launch exists.
    pub steps: u64,
    /// GPU time of what it launched (summed durations), over those steps.
    pub median_ns: f64,
    pub p90_ns: f64,
    pub mean_ns: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Attribution {
    /// By GPU time (union), largest first.
    pub by_op: Vec<AttributionRow>,
    /// Empty without `nn.Module` frames (`with_stack`).
    pub by_module: Vec<AttributionRow>,
    pub by_layer: Vec<AttributionRow>,
    /// GPU operations whose correlation names no runtime call in the trace.
    pub unattributed: u64,
    /// Per op and position in the step, for `diff`.
    pub positions: Vec<PositionRow>,
    /// Per step (in step order): launch calls against the GPU time they launched.
    #[serde(default)]
    pub steps: Vec<StepLaunches>,
}

/// The launches of one step. A step is launch-bound when its launch calls take longer on the
/// CPU than the GPU work they launch: the GPU waits for the host (HTA's short-kernel
/// condition, over a whole step).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepLaunches {
    pub launches: u64,
    pub launch_ns: i64,
    pub gpu_ns: i64,
    pub launch_bound: bool,
}

/// Joins GPU operations `(start, end, correlation)` to the host's launch sites; `gpu` yields
/// them (it is walked twice); `windows` are the steps (none: the whole trace is one).
pub fn attribute<I: Iterator<Item = (i64, i64, i64)>>(
    host: &HostOutcome,
    gpu: impl Fn() -> I,
    windows: &[Window],
) -> Attribution {
    let sites: &[LaunchSite] = &host.launches;
    // A correlation named by several launch calls goes to the last of them.
    let by_corr: Map<i64, u32> = sites
        .iter()
        .enumerate()
        .map(|(i, s)| (s.correlation, i as u32))
        .collect();
    let site_of = |corr: i64| by_corr.get(&corr).copied().filter(|_| corr >= 0);
    // Each site's GPU intervals are one slice of a single array (`of_site`): two passes over
    // the GPU operations, counting then filling, instead of a vector per launch call.
    let mut offsets = vec![0u32; sites.len() + 1];
    let mut unattributed = 0;
    for (_, _, corr) in gpu() {
        match site_of(corr) {
            Some(i) => offsets[i as usize + 1] += 1,
            None => unattributed += 1,
        }
    }
    for i in 0..sites.len() {
        offsets[i + 1] += offsets[i];
    }
    let mut fill = offsets.clone();
    let mut ivs = vec![(0i64, 0i64); offsets[sites.len()] as usize];
    for (ts, end, corr) in gpu() {
        if let Some(i) = site_of(corr) {
            let slot = &mut fill[i as usize];
            ivs[*slot as usize] = (ts, end.max(ts));
            *slot += 1;
        }
    }
    drop(fill);
    let of_site = SiteIntervals {
        offsets: &offsets,
        ivs: &ivs,
    };
    let names = &host.names;
    let group = |key: fn(&LaunchSite) -> Option<u32>| -> Vec<AttributionRow> {
        let mut keyed: Vec<(u32, u32)> = (0..sites.len())
            .filter(|&i| !of_site.get(i).is_empty())
            .filter_map(|i| key(&sites[i]).map(|k| (k, i as u32)))
            .collect();
        keyed.sort_unstable();
        let mut rows: Vec<AttributionRow> = Vec::new();
        let mut scratch: Vec<(i64, i64)> = Vec::new();
        for run in keyed.chunk_by(|a, b| a.0 == b.0) {
            scratch.clear();
            for &(_, i) in run {
                scratch.extend_from_slice(of_site.get(i as usize));
            }
            rows.push(AttributionRow {
                name: names[run[0].0 as usize].clone(),
                launches: run.len() as u64,
                kernels: scratch.len() as u64,
                sum_ns: scratch.iter().map(|(s, e)| e - s).sum(),
                gpu_ns: union(&mut scratch),
            });
        }
        rows.sort_by(|a, b| b.gpu_ns.cmp(&a.gpu_ns).then_with(|| a.name.cmp(&b.name)));
        rows
    };
    Attribution {
        by_op: group(|s| Some(s.op)),
        by_module: group(|s| s.module),
        by_layer: group(|s| s.layer),
        unattributed,
        positions: positions(sites, &of_site, names, windows),
        steps: step_launches(sites, &of_site, windows),
    }
}

/// The GPU intervals of every launch site, site `i`'s at `ivs[offsets[i]..offsets[i + 1]]`.
struct SiteIntervals<'a> {
    offsets: &'a [u32],
    ivs: &'a [(i64, i64)],
}

impl SiteIntervals<'_> {
    fn get(&self, site: usize) -> &[(i64, i64)] {
        &self.ivs[self.offsets[site] as usize..self.offsets[site + 1] as usize]
    }
}

fn step_launches(
    sites: &[LaunchSite],
    of_site: &SiteIntervals<'_>,
    windows: &[Window],
) -> Vec<StepLaunches> {
    let mut out = vec![StepLaunches::default(); windows.len()];
    for (i, site) in sites.iter().enumerate() {
        let ivs = of_site.get(i);
        if ivs.is_empty() {
            continue;
        }
        let i = windows.partition_point(|w| w.end <= site.ts);
        if let Some(s) = out.get_mut(i).filter(|_| windows[i].start <= site.ts) {
            s.launches += 1;
            s.launch_ns += site.dur;
            s.gpu_ns += ivs.iter().map(|(a, b)| b - a).sum::<i64>();
        }
    }
    for s in &mut out {
        s.launch_bound = s.launches > 0 && s.launch_ns > s.gpu_ns;
    }
    out
}

fn union(ivs: &mut [(i64, i64)]) -> i64 {
    ivs.sort_unstable();
    let (mut total, mut cur): (i64, Option<(i64, i64)>) = (0, None);
    for &(s, e) in ivs.iter() {
        cur = match cur {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    total + cur.map_or(0, |(s, e)| e - s)
}

fn positions(
    sites: &[LaunchSite],
    of_site: &SiteIntervals<'_>,
    names: &[String],
    windows: &[Window],
) -> Vec<PositionRow> {
    let mut order: Vec<usize> = (0..sites.len())
        .filter(|&i| !of_site.get(i).is_empty())
        .collect();
    order.sort_by_key(|&i| (sites[i].ts, sites[i].correlation));
    let step_of = |t: i64| -> Option<usize> {
        if windows.is_empty() {
            return Some(0);
        }
        let i = windows.partition_point(|w| w.end <= t);
        windows.get(i).filter(|w| w.start <= t).map(|_| i)
    };
    // (op, position) -> GPU time in each step that has it
    let mut per_key: Map<(u32, u32), Vec<i64>> = Map::default();
    let mut seen: Map<(usize, u32), u32> = Map::default();
    for i in order {
        let Some(step) = step_of(sites[i].ts) else {
            continue;
        };
        let k = seen.entry((step, sites[i].op)).or_default();
        let gpu: i64 = of_site.get(i).iter().map(|(s, e)| e - s).sum();
        per_key.entry((sites[i].op, *k)).or_default().push(gpu);
        *k += 1;
    }
    let mut rows: Vec<PositionRow> = per_key
        .into_iter()
        .map(|((op, position), mut v)| {
            v.sort_unstable();
            let q = |p: f64| {
                let pos = p * (v.len() - 1) as f64;
                let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
                v[lo] as f64 + (v[hi] - v[lo]) as f64 * (pos - lo as f64)
            };
            PositionRow {
                op: names[op as usize].clone(),
                position,
                steps: v.len() as u64,
                median_ns: q(0.5),
                p90_ns: q(0.9),
                mean_ns: v.iter().sum::<i64>() as f64 / v.len() as f64,
            }
        })
        .collect();
    rows.sort_by(|a, b| a.op.cmp(&b.op).then(a.position.cmp(&b.position)));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_counts_overlaps_once() {
        assert_eq!(union(&mut [(0, 10), (5, 15), (20, 25)]), 20);
        assert_eq!(union(&mut []), 0);
    }
}
