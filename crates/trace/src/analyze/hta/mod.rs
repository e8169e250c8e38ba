//! HTA's (HolisticTraceAnalysis 0.5.0) per-rank analyses with its definitions: temporal
//! breakdown, idle-time attribution, comm/compute overlap, kernel launch statistics and the
//! kernel-type breakdown (`spec/trace-analyses.md` §1-6).
//!
//! The fold keeps one compact row per GPU-side event (anything with an integer `args.stream`,
//! HTA's meaning "A") and per CPU-side event carrying a `correlation`, then computes every
//! analysis at the end. Where HTA is wrong loupe says so instead of copying it:
//!
//! - Times stay integer nanoseconds. HTA rounds fractional-µs traces (start up, end down),
//!   which loses up to 2 µs per kernel; [`HtaOptions::hta_rounding`] reproduces it.
//! - A negative duration (from that rounding or from the writer) makes HTA assert
//!   (`non_compute_time >= 0`); here such a row counts as empty and is reported in
//!   [`Temporal::negative_durations`].
//! - Kernel launch statistics also recognise HIP, driver (`cuLaunchKernel*`) and graph
//!   launches, unless [`HtaOptions::hta_launch_names`] asks for HTA's CUDA-only list.
//! - An overlap without communication kernels is `None`, not a division by zero.

mod breakdown;
mod launch;
mod stats;

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use foldhash::fast::FixedState;
use serde::{Deserialize, Serialize};

use crate::analyze::args::{Args, int_arg, plain_int};
use crate::analyze::attribution::GpuOp;
use crate::analyze::capture::OpKind;
use crate::analyze::corr::{CorrMap, Repeat};
use crate::analyze::host::CORRELATION_KEY;
use crate::model::Event;
pub use breakdown::{KernelTypeRow, Temporal, TopKernelRow, kernel_type_shares};
pub use launch::{Distribution, IdleCategory, IdleRow, IdleStatsRow, LaunchRow, LaunchSummary};
use memchr::memmem::Finder;

/// How closely to follow HTA where it is wrong.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HtaOptions {
    /// HTA's µs rounding of fractional-µs traces (`HTA_DISABLE_NS_ROUNDING` unset).
    pub hta_rounding: bool,
    /// Only HTA's CUDA launch names count as launches.
    pub hta_launch_names: bool,
}

/// HTA's kernel types (0.5.0's anchored regexes, `hta/utils/utils.py`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KernelType {
    Computation,
    Communication,
    Memory,
    Other,
}

impl KernelType {
    pub fn of(name: &str) -> KernelType {
        if name.starts_with("nccl") && name[4..].contains("Kernel") {
            KernelType::Communication
        } else if name.starts_with("Memcpy")
            || name.starts_with("Memset")
            || name.starts_with("dma")
        {
            KernelType::Memory
        } else if name.contains("Memcpy") || name.contains("Sync") {
            KernelType::Other
        } else {
            KernelType::Computation
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KernelType::Computation => "COMPUTATION",
            KernelType::Communication => "COMMUNICATION",
            KernelType::Memory => "MEMORY",
            KernelType::Other => "OTHER",
        }
    }
}

/// Everything HTA's analyses say about one rank.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HtaReport {
    /// HTA's µs rounding was applied (see [`HtaOptions`]).
    pub rounded: bool,
    /// Start of the last `ProfilerStep` when HTA's step window applies (two or more step
    /// names): only work launched before it counts.
    pub window_end_ns: Option<i64>,
    pub temporal: Temporal,
    /// Per stream and category, streams in order of first appearance in the file.
    pub idle: Vec<IdleRow>,
    pub idle_stats: Vec<IdleStatsRow>,
    /// Share of communication time hidden by computation, percent; `None` without
    /// communication kernels.
    pub comm_comp_overlap_pctg: Option<f64>,
    pub launches: LaunchSummary,
    /// Time by overlap of kernel types (HTA's `kernel_type_breakdown` before summing ranks).
    pub kernel_types: Vec<KernelTypeRow>,
    /// Per type, kernels by name with the tail folded into `others`.
    pub top_kernels: Vec<TopKernelRow>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RowCat {
    Kernel,
    Memset,
    Memcpy,
    Other,
}

#[derive(Clone, Copy, Debug)]
struct GpuRow {
    ts: i64,
    end: i64,
    stream: i64,
    correlation: i64,
    cat: RowCat,
    kind: KernelType,
    name: u32,
    /// A row of HTA's `GPUKernelFilter` (stream and correlation, or a sync event): the rows
    /// its step window keeps.
    launched: bool,
}

#[derive(Clone, Copy, Debug)]
struct CpuRow {
    correlation: i64,
    ts: i64,
    end: i64,
    launch: Launch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Launch {
    /// A name in HTA's list.
    Hta,
    /// A launch HTA does not recognise (HIP, driver, graph launches).
    Other,
    No,
}

fn launch_kind(name: &str) -> Launch {
    match name {
        "cudaLaunchKernel"
        | "cudaLaunchKernelExC"
        | "runFunction - job_prep_and_submit_for_execution"
        | "cudaMemcpyAsync"
        | "cudaMemsetAsync" => Launch::Hta,
        _ if name.starts_with("hipLaunchKernel")
            || name.starts_with("hipExtLaunchKernel")
            || name.starts_with("hipExtModuleLaunchKernel")
            || name.starts_with("hipModuleLaunchKernel")
            || name.starts_with("cuLaunchKernel")
            || name.starts_with("cudaLaunchCooperativeKernel")
            || name.starts_with("cudaGraphLaunch")
            || name.starts_with("hipGraphLaunch")
            || name.starts_with("hipMemcpyAsync")
            || name.starts_with("hipMemsetAsync")
            || name.starts_with("hipMemcpyWithStream")
            || name.starts_with("cuMemcpy")
            || name.starts_with("cuMemset") =>
        {
            Launch::Other
        }
        _ => Launch::No,
    }
}

#[derive(Deserialize)]
struct RowArgs {
    #[serde(default)]
    stream: Option<serde_json::Value>,
    #[serde(default)]
    correlation: Option<serde_json::Value>,
}

type Map<K, V> = HashMap<K, V, FixedState>;

static STREAM_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"stream\""));
/// Built once (`str::contains` builds its searcher on every call, for every CPU event).
static PROFILER_STEP: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"ProfilerStep"));

/// `stream` and `correlation` by a serde_json parse of the whole `args` (where
/// [`Args::scan`] cannot vouch for its members).
fn row_args_slow(args: Option<&str>) -> (i64, i64) {
    match args {
        Some(args)
            if STREAM_KEY.find(args.as_bytes()).is_some()
                || CORRELATION_KEY.find(args.as_bytes()).is_some() =>
        {
            match serde_json::from_str::<RowArgs>(args) {
                Ok(a) => (
                    a.stream.as_ref().and_then(int_arg).unwrap_or(-1),
                    a.correlation.as_ref().and_then(int_arg).unwrap_or(-1),
                ),
                Err(_) => (-1, -1),
            }
        }
        _ => (-1, -1),
    }
}

/// The fold. One per parsing thread, combined with [`HtaBuilder::absorb`].
#[derive(Default)]
pub struct HtaBuilder {
    names: Vec<Box<str>>,
    /// By name id: the kernel type its name gives.
    kinds: Vec<KernelType>,
    name_ids: Map<Box<str>, u32>,
    gpu: Vec<GpuRow>,
    cpu: Vec<CpuRow>,
    /// `ProfilerStep` names among CPU-side rows, and the latest start of one.
    step_names: HashSet<Box<str>, FixedState>,
    last_step_start: Option<i64>,
    /// Whether some timestamp has a fraction of a µs (HTA then rounds every row).
    fractional: bool,
    /// Streams in the order this builder first saw them since the last block ended.
    new_streams: Vec<i64>,
    seen_streams: HashSet<i64, FixedState>,
}

impl HtaBuilder {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.kinds.push(KernelType::of(name));
        self.name_ids.insert(name.into(), id);
        id
    }

    /// Takes one complete event (HTA drops events without `cat` and `cat == "Trace"`);
    /// `args` is the event's [`Args::scan`].
    pub fn event(&mut self, ev: &Event<'_>, args: &Args<'_>) {
        if ev.cat.is_empty() || ev.cat == "Trace" {
            return;
        }
        let ts = ev.ts_or_zero();
        if ts % 1000 != 0 {
            self.fractional = true;
        }
        let (stream, correlation) = if args.exact {
            let int = |raw: Option<&str>| {
                raw.and_then(|r| {
                    plain_int(r).or_else(|| {
                        serde_json::from_str::<serde_json::Value>(r)
                            .ok()
                            .as_ref()
                            .and_then(int_arg)
                    })
                })
                .unwrap_or(-1)
            };
            (int(args.stream), int(args.correlation))
        } else {
            row_args_slow(args.text)
        };
        let end = ts + ev.dur;
        let sync_name = matches!(ev.name.as_ref(), "Event Sync" | "Context Sync");
        let is_b = (stream >= 0 && correlation >= 0) || sync_name;
        if !is_b && PROFILER_STEP.find(ev.name.as_bytes()).is_some() {
            if !self.step_names.contains(ev.name.as_ref()) {
                self.step_names.insert(ev.name.as_ref().into());
            }
            self.last_step_start = Some(self.last_step_start.map_or(ts, |t| t.max(ts)));
        }
        if stream != -1 {
            let cat = match ev.cat.as_ref() {
                "kernel" | "Kernel" | "mtia_ccp_events" => RowCat::Kernel,
                "gpu_memset" | "Memset" => RowCat::Memset,
                "gpu_memcpy" | "Memcpy" => RowCat::Memcpy,
                _ => RowCat::Other,
            };
            let name = self.intern(&ev.name);
            let kind = self.kinds[name as usize];
            if self.seen_streams.insert(stream) {
                self.new_streams.push(stream);
            }
            self.gpu.push(GpuRow {
                ts,
                end,
                stream,
                correlation,
                cat,
                kind,
                name,
                launched: is_b,
            });
        } else if correlation >= 0 {
            self.cpu.push(CpuRow {
                correlation,
                ts,
                end,
                launch: launch_kind(&ev.name),
            });
        }
    }

    /// GPU operations (kernels, memcpy, memset), their names by [`HtaBuilder::names`].
    pub fn gpu_ops(&self) -> impl Iterator<Item = GpuOp> + '_ {
        self.gpu.iter().filter_map(|r| {
            let kind = match r.cat {
                RowCat::Kernel => OpKind::Kernel,
                RowCat::Memcpy => OpKind::Memcpy,
                RowCat::Memset => OpKind::Memset,
                RowCat::Other => return None,
            };
            Some(GpuOp {
                ts: r.ts,
                end: r.end,
                correlation: r.correlation,
                name: r.name,
                kind,
            })
        })
    }

    /// The GPU operation names [`GpuOp::name`] indexes.
    pub fn names(&self) -> &[Box<str>] {
        &self.names
    }

    /// The streams first seen since the last call (a block's share of the stream order).
    pub fn take_new_streams(&mut self) -> Vec<i64> {
        std::mem::take(&mut self.new_streams)
    }

    pub fn absorb(&mut self, other: HtaBuilder) {
        let remap: Vec<u32> = other.names.iter().map(|n| self.intern(n)).collect();
        self.gpu.extend(other.gpu.into_iter().map(|mut r| {
            r.name = remap[r.name as usize];
            r
        }));
        self.cpu.extend(other.cpu);
        self.step_names.extend(other.step_names);
        self.last_step_start = match (self.last_step_start, other.last_step_start) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.fractional |= other.fractional;
        self.seen_streams.extend(other.seen_streams);
    }

    /// Every analysis; `stream_order` is the order streams first appear in the file. Reads
    /// the rows only (copying those HTA's rounding or step window change), so the attribution
    /// can read them on another thread meanwhile.
    pub fn finish(&self, stream_order: &[i64], opts: HtaOptions) -> HtaReport {
        let rounded = opts.hta_rounding && self.fractional;
        let up = |t: i64| t.div_euclid(1000) * 1000 + if t.rem_euclid(1000) > 0 { 1000 } else { 0 };
        let down = |t: i64| t.div_euclid(1000) * 1000;
        let last_step_start = self
            .last_step_start
            .map(|t| if rounded { up(t) } else { t });
        // HTA's step window: with two or more step names, only rows launched (CPU side)
        // before the last step's start, and the GPU rows they launched.
        let window_end_ns = last_step_start.filter(|_| self.step_names.len() >= 2);
        let changed = (rounded || window_end_ns.is_some()).then(|| {
            let cpu: Vec<CpuRow> = self
                .cpu
                .iter()
                .map(|&r| {
                    if rounded {
                        CpuRow {
                            ts: up(r.ts),
                            end: down(r.end),
                            ..r
                        }
                    } else {
                        r
                    }
                })
                .filter(|r| window_end_ns.is_none_or(|s| r.ts < s))
                .collect();
            let kept: Option<HashSet<i64, FixedState>> =
                window_end_ns.map(|_| cpu.iter().map(|r| r.correlation).collect());
            let gpu: Vec<GpuRow> = self
                .gpu
                .iter()
                .filter(|r| {
                    kept.as_ref().is_none_or(|k| {
                        r.launched && r.correlation >= 0 && k.contains(&r.correlation)
                    })
                })
                .map(|&r| {
                    if rounded {
                        GpuRow {
                            ts: up(r.ts),
                            end: down(r.end),
                            ..r
                        }
                    } else {
                        r
                    }
                })
                .collect();
            (gpu, cpu)
        });
        let (rows, cpu): (&[GpuRow], &[CpuRow]) = match &changed {
            Some((g, c)) => (g, c),
            None => (&self.gpu, &self.cpu),
        };
        let merged = breakdown::merged(rows);
        let temporal = breakdown::temporal(rows, &merged);
        let comm_comp_overlap_pctg = breakdown::overlap(&merged);
        let kernel_types = breakdown::kernel_types(&merged);
        drop(merged);
        let top_kernels = breakdown::top_kernels(rows, &self.names);
        // The start of the first CPU row of each correlation.
        let launch_of = CorrMap::build(|| cpu.iter().map(|r| (r.correlation, r.ts)), Repeat::First);
        let (idle, idle_stats) = launch::idle(rows, &launch_of, stream_order);
        let launches = launch::launches(rows, cpu, opts.hta_launch_names);
        HtaReport {
            rounded,
            window_end_ns,
            temporal,
            idle,
            idle_stats,
            comm_comp_overlap_pctg,
            launches,
            kernel_types,
            top_kernels,
        }
    }
}

/// HTA's `merge_kernel_intervals`: sorted by start, a group starts past the running maximum
/// end (touching intervals merge). Empty or negative rows are taken as empty.
#[cfg(test)]
fn merge(mut iv: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    iv.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (s, e) in iv {
        merge_push(&mut out, s, e);
    }
    out
}

/// Adds `[s, e)` (starts ascending) to merged intervals.
fn merge_push(out: &mut Vec<(i64, i64)>, s: i64, e: i64) {
    let e = e.max(s);
    match out.last_mut() {
        Some(last) if s <= last.1 => last.1 = last.1.max(e),
        _ => out.push((s, e)),
    }
}

fn covered(iv: &[(i64, i64)]) -> i64 {
    iv.iter().map(|(s, e)| e - s).sum()
}

/// `round(x, n)` as Python rounds a float for printing purposes (half away from zero is
/// close enough for percentages of integer times).
fn round_to(x: f64, decimals: i32) -> f64 {
    let m = 10f64.powi(decimals);
    (x * m).round() / m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_types_follow_hta_0_5() {
        use KernelType::*;
        for (name, t) in [
            (
                "ncclKernel_AllReduce_RING_LL_Sum_float(ncclWorkElem)",
                Communication,
            ),
            (
                "ncclDevKernel_AllGather_RING_LL(ncclDevKernelArgsStorage<4096ul>)",
                Communication,
            ),
            (
                "void rcclGenericKernel<1, false>(ncclDevComm*)",
                Computation,
            ),
            ("Memcpy DtoD (Device -> Device)", Memory),
            ("Memset (Device)", Memory),
            ("Stream Sync", Other),
            ("cross_device_reduce_1stage", Computation),
            ("ampere_sgemm_128x64_nn", Computation),
        ] {
            assert_eq!(KernelType::of(name), t, "{name}");
        }
    }

    #[test]
    fn merge_joins_touching_intervals() {
        assert_eq!(
            merge(vec![(10, 20), (0, 5), (5, 8), (15, 30), (40, 39)]),
            vec![(0, 8), (10, 30), (40, 40)]
        );
    }
}
