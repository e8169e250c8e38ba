//! GPU work attributed to the host code that launched it: each kernel, memcpy and memset is
//! joined through its `correlation` to the runtime call that launched it (no flow events
//! needed, unlike TraceLens before its PR #996), and from there to the nearest enclosing
//! `cpu_op`, its `nn.Module` path and its layer. A graph launch's kernels share its
//! correlation and go to the graph launch's op, unless capture traces are given
//! ([`GraphReplays`], [`capture`](crate::analyze::capture)): then each replayed kernel goes to
//! the op, module and layer of the launch call it replays, and counts as one launch of that
//! op; its times stay the replay's.
//!
//! Per op, time is the union of its kernels (overlapping kernels of one op count once), as
//! TraceLens's `total_direct_kernel_time`; the plain sum is kept beside it. For comparing
//! traces across hardware, each launch also gets its position in its step: the k-th launch of
//! op X in a step is the same work on an H100 and on an MI300 even when every kernel name
//! differs, and its GPU time over many steps is a distribution, not one total.

use std::collections::HashMap;

use foldhash::fast::FixedState;
use serde::{Deserialize, Serialize};

use crate::analyze::capture::{Captures, Key, Matcher, Method, OpKind};
use crate::analyze::corr::{CorrMap, Repeat};
use crate::analyze::host::{HostOutcome, LaunchSite};
use crate::analyze::timeline::{Window, window_from, window_of};

type Map<K, V> = HashMap<K, V, FixedState>;

/// One GPU operation as the attribution reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuOp {
    pub ts: i64,
    pub end: i64,
    pub correlation: i64,
    /// An id of the trace's GPU operation names (only read with capture traces).
    pub name: u32,
    pub kind: OpKind,
}

/// Capture traces to attribute one replay trace's graph launches through.
pub struct GraphReplays<'a> {
    pub captures: &'a Captures,
    /// The replay trace's GPU operation names, by [`GpuOp::name`].
    pub kernel_names: &'a [Box<str>],
    /// The batch size of each step window (from its marker), for choosing among captures.
    pub batch_sizes: &'a [Option<u64>],
}

/// How the graph launches' kernels were attributed through capture traces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureMerge {
    /// Capture regions (graphs) the capture traces hold.
    pub regions: u64,
    /// Graph launches matched to a region, by how they matched.
    pub exact: u64,
    pub greedy: u64,
    pub grouped: u64,
    /// Graph launches with GPU work that no region matched.
    pub unmatched_launches: u64,
}

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
    /// Graph launches that launched GPU work, and the GPU operations they replayed.
    #[serde(default)]
    pub graph_launches: u64,
    #[serde(default)]
    pub graph_kernels: u64,
    /// Of those operations, attributed through a capture trace to the launch each replays.
    #[serde(default)]
    pub graph_kernels_captured: u64,
    /// Those left on their graph launch's op: every one when no capture trace was given.
    #[serde(default)]
    pub graph_kernels_unmatched: u64,
    /// The capture merge, when capture traces were given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureMerge>,
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

/// Joins GPU operations to the host's launch sites; `gpu` yields them (it is walked twice);
/// `windows` are the steps (none: the whole trace is one); with `graphs`, graph launches are
/// attributed through capture traces.
pub fn attribute<I: Iterator<Item = GpuOp>>(
    host: &HostOutcome,
    gpu: impl Fn() -> I,
    windows: &[Window],
    graphs: Option<&GraphReplays<'_>>,
) -> Attribution {
    let sites: &[LaunchSite] = &host.launches;
    // A correlation named by several launch calls goes to the last of them.
    let by_corr = CorrMap::build(
        || {
            sites
                .iter()
                .enumerate()
                .map(|(i, s)| (s.correlation, i as u32))
        },
        Repeat::Last,
    );
    let site_of = |corr: i64| by_corr.get(corr);
    // Each site's GPU intervals are one slice of a single array (`of_site`): two passes over
    // the GPU operations, counting then filling, instead of a vector per launch call.
    let mut offsets = vec![0u32; sites.len() + 1];
    let mut unattributed = 0;
    for op in gpu() {
        match site_of(op.correlation) {
            Some(i) => offsets[i as usize + 1] += 1,
            None => unattributed += 1,
        }
    }
    for i in 0..sites.len() {
        offsets[i + 1] += offsets[i];
    }
    let mut fill = offsets.clone();
    let total = offsets[sites.len()] as usize;
    let mut ivs = vec![(0i64, 0i64); total];
    // what each graph-launched operation is, for matching it with a capture
    let mut keys = if graphs.is_some() {
        vec![Key::Foreign; total]
    } else {
        Vec::new()
    };
    for op in gpu() {
        if let Some(i) = site_of(op.correlation) {
            let slot = &mut fill[i as usize];
            ivs[*slot as usize] = (op.ts, op.end.max(op.ts));
            if !keys.is_empty() && sites[i as usize].graph {
                keys[*slot as usize] = match op.kind {
                    OpKind::Kernel => Key::Kernel(op.name),
                    OpKind::Memcpy => Key::Memcpy,
                    OpKind::Memset => Key::Memset,
                };
            }
            *slot += 1;
        }
    }
    drop(fill);
    let (mut graph_launches, mut graph_kernels) = (0u64, 0u64);
    for (i, s) in sites.iter().enumerate() {
        let n = (offsets[i + 1] - offsets[i]) as u64;
        if s.graph && n > 0 {
            graph_launches += 1;
            graph_kernels += n;
        }
    }
    let merged = graphs.map(|g| merge_graphs(host, g, &offsets, &mut ivs, &keys, windows));
    drop(keys);
    let (extras, replaced, extra_names, capture, captured) = match merged {
        Some(m) => (m.extras, m.replaced, m.names, Some(m.stats), m.captured),
        None => Default::default(),
    };
    let units = Units {
        sites,
        of_site: SiteIntervals {
            offsets: &offsets,
            ivs: &ivs,
        },
        replaced: &replaced,
        extras: &extras,
    };
    let name = |id: u32| -> &str {
        let id = id as usize;
        match host.names.get(id) {
            Some(n) => n,
            None => &extra_names[id - host.names.len()],
        }
    };
    let group = |key: fn(&Units<'_>, usize) -> Option<u32>| -> Vec<AttributionRow> {
        let mut keyed: Vec<(u32, u32)> = (0..units.len())
            .filter(|&u| !units.ivs(u).is_empty())
            .filter_map(|u| key(&units, u).map(|k| (k, u as u32)))
            .collect();
        keyed.sort_unstable();
        let mut rows: Vec<AttributionRow> = Vec::new();
        let mut scratch: Vec<(i64, i64)> = Vec::new();
        for run in keyed.chunk_by(|a, b| a.0 == b.0) {
            scratch.clear();
            for &(_, u) in run {
                scratch.extend_from_slice(units.ivs(u as usize));
            }
            rows.push(AttributionRow {
                name: name(run[0].0).to_string(),
                launches: run.len() as u64,
                kernels: scratch.len() as u64,
                sum_ns: scratch.iter().map(|(s, e)| e - s).sum(),
                gpu_ns: union(&mut scratch),
            });
        }
        rows.sort_by(|a, b| b.gpu_ns.cmp(&a.gpu_ns).then_with(|| a.name.cmp(&b.name)));
        rows
    };
    // The groupings on a second thread, beside the positions and the steps.
    let ((by_op, by_module, by_layer), positions, steps) = std::thread::scope(|scope| {
        let grouped = scope.spawn(|| {
            (
                group(|u, i| Some(u.op(i))),
                group(|u, i| u.module(i)),
                group(|u, i| u.layer(i)),
            )
        });
        let positions = positions(&units, &name, windows);
        let steps = step_launches(sites, &units.of_site, windows);
        let grouped = grouped
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (grouped, positions, steps)
    });
    Attribution {
        by_op,
        by_module,
        by_layer,
        unattributed,
        positions,
        steps,
        graph_launches,
        graph_kernels,
        graph_kernels_captured: captured,
        graph_kernels_unmatched: graph_kernels - captured,
        capture,
    }
}

/// A captured launch replayed by a graph launch: its operations are
/// `ivs[lo..hi]`, within the graph launch's slice.
struct Extra {
    site: u32,
    /// Its index among its capture region's launches.
    order: u32,
    op: u32,
    module: Option<u32>,
    layer: Option<u32>,
    lo: u32,
    hi: u32,
}

/// What attributing graph launches through captures gives.
#[derive(Default)]
struct Merged {
    extras: Vec<Extra>,
    /// Per site: whether its operations went to the captured launches (`extras`).
    replaced: Vec<bool>,
    /// Capture names the replay's host had not seen, by ids after `host.names`.
    names: Vec<String>,
    stats: CaptureMerge,
    captured: u64,
}

/// Matches each graph launch's operations (start order) with a capture region; the matched
/// launch's slice of `ivs` is reordered by captured launch, then start.
fn merge_graphs(
    host: &HostOutcome,
    g: &GraphReplays<'_>,
    offsets: &[u32],
    ivs: &mut [(i64, i64)],
    keys: &[Key],
    windows: &[Window],
) -> Merged {
    let sites = &host.launches;
    let mut out = Merged {
        replaced: vec![false; sites.len()],
        stats: CaptureMerge {
            regions: g.captures.regions.len() as u64,
            ..CaptureMerge::default()
        },
        ..Merged::default()
    };
    let mut matcher = Matcher::new(g.captures, g.kernel_names);
    let host_ids: Map<&str, u32> = host
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u32))
        .collect();
    let mut unified: Map<u32, u32> = Map::default();
    let mut order: Vec<usize> = Vec::new();
    let mut replay: Vec<Key> = Vec::new();
    let mut items: Vec<(u32, (i64, i64))> = Vec::new();
    for (i, site) in sites.iter().enumerate() {
        let (lo, hi) = (offsets[i] as usize, offsets[i + 1] as usize);
        if !site.graph || lo == hi {
            continue;
        }
        order.clear();
        order.extend(lo..hi);
        order.sort_by_key(|&k| (ivs[k], k));
        replay.clear();
        replay.extend(order.iter().map(|&k| keys[k]));
        let batch_size =
            window_of(windows, site.ts).and_then(|step| g.batch_sizes.get(step).copied().flatten());
        let Some(al) = matcher.align(&replay, batch_size) else {
            out.stats.unmatched_launches += 1;
            continue;
        };
        match al.method {
            Method::Exact => out.stats.exact += 1,
            Method::Greedy => out.stats.greedy += 1,
            Method::Grouped => out.stats.grouped += 1,
        }
        items.clear();
        items.extend(order.iter().zip(&al.to).map(|(&k, &c)| (c, ivs[k])));
        items.sort_unstable();
        for (j, &(_, iv)) in items.iter().enumerate() {
            ivs[lo + j] = iv;
        }
        let region = &g.captures.regions[al.region as usize];
        let mut uni = |id: u32| -> u32 {
            *unified.entry(id).or_insert_with(|| {
                let text = g.captures.name(id);
                host_ids.get(text).copied().unwrap_or_else(|| {
                    out.names.push(text.to_string());
                    (host.names.len() + out.names.len() - 1) as u32
                })
            })
        };
        let mut at = lo;
        for run in items.chunk_by(|a, b| a.0 == b.0) {
            let launch = &region.launches[run[0].0 as usize];
            out.extras.push(Extra {
                site: i as u32,
                order: run[0].0,
                op: uni(launch.op),
                module: launch.module.map(&mut uni),
                layer: launch.layer.map(&mut uni),
                lo: at as u32,
                hi: (at + run.len()) as u32,
            });
            at += run.len();
        }
        out.replaced[i] = true;
        out.captured += (hi - lo) as u64;
    }
    out
}

/// What GPU time is attributed to: launch sites, and captured launches in place of the graph
/// launches that replayed them. Unit `u < sites.len()` is site `u`; past them, `extras`.
struct Units<'a> {
    sites: &'a [LaunchSite],
    of_site: SiteIntervals<'a>,
    replaced: &'a [bool],
    extras: &'a [Extra],
}

impl Units<'_> {
    fn len(&self) -> usize {
        self.sites.len() + self.extras.len()
    }

    fn ivs(&self, u: usize) -> &[(i64, i64)] {
        match u.checked_sub(self.sites.len()) {
            None if self.replaced.get(u) == Some(&true) => &[],
            None => self.of_site.get(u),
            Some(e) => {
                let e = &self.extras[e];
                &self.of_site.ivs[e.lo as usize..e.hi as usize]
            }
        }
    }

    fn op(&self, u: usize) -> u32 {
        match u.checked_sub(self.sites.len()) {
            None => self.sites[u].op,
            Some(e) => self.extras[e].op,
        }
    }

    fn module(&self, u: usize) -> Option<u32> {
        match u.checked_sub(self.sites.len()) {
            None => self.sites[u].module,
            Some(e) => self.extras[e].module,
        }
    }

    fn layer(&self, u: usize) -> Option<u32> {
        match u.checked_sub(self.sites.len()) {
            None => self.sites[u].layer,
            Some(e) => self.extras[e].layer,
        }
    }

    /// Launch order: the call's start, then its correlation, then (for a captured launch) its
    /// place in the graph.
    fn order(&self, u: usize) -> (i64, i64, u32) {
        match u.checked_sub(self.sites.len()) {
            None => (self.sites[u].ts, self.sites[u].correlation, 0),
            Some(e) => {
                let x = &self.extras[e];
                let s = &self.sites[x.site as usize];
                (s.ts, s.correlation, x.order + 1)
            }
        }
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
        if let Some(s) = window_of(windows, site.ts).map(|i| &mut out[i]) {
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

fn positions<'n>(
    units: &Units<'_>,
    name: &dyn Fn(u32) -> &'n str,
    windows: &[Window],
) -> Vec<PositionRow> {
    // launch order, keys computed once (sites come from the call-tree fold nearly in order)
    let mut order: Vec<((i64, i64, u32), usize)> = (0..units.len())
        .filter(|&u| !units.ivs(u).is_empty())
        .map(|u| (units.order(u), u))
        .collect();
    order.sort();
    // launch times ascend: the step is found by walking the windows once
    let mut next_window = 0;
    let mut step_of = |t: i64| -> Option<usize> {
        if windows.is_empty() {
            return Some(0);
        }
        window_from(windows, &mut next_window, t)
    };
    // By op id, then position: GPU time in each step that has it. Units come in launch
    // order, so steps ascend and an op's count within the step restarts at each new step.
    let mut per_key: Vec<Vec<Vec<i64>>> = Vec::new();
    let mut seen: Vec<u32> = Vec::new();
    let mut touched: Vec<u32> = Vec::new();
    let mut current = None;
    for ((ts, _, _), u) in order {
        let Some(step) = step_of(ts) else {
            continue;
        };
        if current != Some(step) {
            current = Some(step);
            for op in touched.drain(..) {
                seen[op as usize] = 0;
            }
        }
        let op = units.op(u);
        let i = op as usize;
        if i >= seen.len() {
            seen.resize(i + 1, 0);
            per_key.resize_with(i + 1, Vec::new);
        }
        let k = seen[i] as usize;
        if k == 0 {
            touched.push(op);
        }
        seen[i] += 1;
        let gpu: i64 = units.ivs(u).iter().map(|(s, e)| e - s).sum();
        let at = &mut per_key[i];
        if at.len() <= k {
            at.resize_with(k + 1, Vec::new);
        }
        at[k].push(gpu);
    }
    let mut rows: Vec<PositionRow> = per_key
        .into_iter()
        .enumerate()
        .flat_map(|(op, by_position)| {
            by_position
                .into_iter()
                .enumerate()
                .filter(|(_, v)| !v.is_empty())
                .map(move |(position, v)| ((op as u32, position as u32), v))
        })
        .map(|((op, position), mut v)| {
            v.sort_unstable();
            let q = |p: f64| {
                let pos = p * (v.len() - 1) as f64;
                let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
                v[lo] as f64 + (v[hi] - v[lo]) as f64 * (pos - lo as f64)
            };
            PositionRow {
                op: name(op).to_string(),
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
