//! One streaming fold per trace: per-name statistics for GPU operations and CPU ops, event
//! counts per category, steps with their GPU time, and the GPU-timeline breakdown. Memory
//! grows with distinct names and steps, never with events (GPU intervals go through the
//! timeline's external sort).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::FixedState;
use serde::{Deserialize, Serialize};

use crate::analyze::args::Args;
use crate::analyze::attribution::{Attribution, GraphReplays, attribute};
use crate::analyze::capture::Captures;
use crate::analyze::host::{CpuStepStats, HostBuilder, HostOutcome, HostProfile};
use crate::analyze::hta::{HtaBuilder, HtaOptions, HtaReport};
use crate::analyze::steps::{StepCollector, StepSpan};
use crate::analyze::timeline::{Breakdown, TimelineBuilder, Window, WindowStats};
use crate::error::{Result, TraceError};
use crate::import::parallel::BlockWorker;
use crate::model::{Event, EventSink, GpuClass, Phase, TraceInfo, kernel_class};
use crate::rank::{RankId, Stage};

/// Statistics of one operation name.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpStats {
    pub name: String,
    pub calls: u64,
    pub total_ns: i64,
    pub min_ns: i64,
    pub max_ns: i64,
}

impl OpStats {
    pub fn avg_ns(&self) -> i64 {
        if self.calls == 0 {
            0
        } else {
            self.total_ns / self.calls as i64
        }
    }

    pub fn merge(&mut self, o: &OpStats) {
        self.calls += o.calls;
        self.total_ns += o.total_ns;
        self.min_ns = self.min_ns.min(o.min_ns);
        self.max_ns = self.max_ns.max(o.max_ns);
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CategoryStats {
    pub category: String,
    pub events: u64,
    /// Summed durations of its complete events.
    pub total_ns: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepStats {
    /// Position among the trace's steps.
    pub index: usize,
    /// `N` of `ProfilerStep#N`.
    pub number: Option<u64>,
    pub stage: Option<Stage>,
    /// Start of the step's span on the trace's clock (add `base_ns` for Unix time).
    pub start_ns: i64,
    /// Duration of the step's span (CPU side for SGLang and PyTorch markers).
    pub span_ns: i64,
    /// GPU activity attributed to the step.
    pub gpu: WindowStats,
    /// CPU activity (outermost ops, collectives) of the step.
    #[serde(default)]
    pub cpu: CpuStepStats,
}

/// Everything `summary`, `ranks` and `diff` need from one trace. Its JSON (`summary --format
/// json`) reads back ([`TraceSummary::from_json`]), so `ranks --from-summaries` compares ranks
/// summarised where their traces are.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TraceSummary {
    pub file: String,
    pub label: String,
    #[serde(skip)]
    pub rank: RankId,
    pub format: Cow<'static, str>,
    pub events: u64,
    pub base_ns: Option<i64>,
    /// First to last event timestamp.
    pub span_ns: i64,
    /// The stage the whole file covers, from its name (SGLang's by-stage files).
    pub stage: Option<Stage>,
    pub timeline: Breakdown,
    /// GPU operations (kernels, memcpy, memset), by total time.
    pub kernels: Vec<OpStats>,
    /// CPU operators (`cpu_op`), by total (inclusive) time.
    pub ops: Vec<OpStats>,
    pub categories: Vec<CategoryStats>,
    pub steps: Vec<StepStats>,
    pub truncated: bool,
    /// Self time per host event, and torch's key_averages grouped by input shape.
    #[serde(default)]
    pub host: HostProfile,
    /// HTA's analyses of this trace (one rank).
    #[serde(default)]
    pub hta: HtaReport,
    /// GPU time by launching op, module and layer, and per op and position in the step.
    #[serde(default)]
    pub attribution: Attribution,
}

impl TraceSummary {
    /// Reads what `summary --format json` wrote (an array of summaries, or one summary).
    pub fn from_json(path: &std::path::Path) -> Result<Vec<TraceSummary>> {
        let bytes = std::fs::read(path).map_err(|e| TraceError::read(path, e))?;
        let parsed = match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Array(_)) => serde_json::from_slice::<Vec<TraceSummary>>(&bytes),
            Ok(_) => serde_json::from_slice::<TraceSummary>(&bytes).map(|s| vec![s]),
            Err(e) => Err(e),
        };
        parsed.map_err(|e| {
            // serde_json reports lines and columns; the other errors here report bytes
            let offset: usize = bytes
                .split_inclusive(|&b| b == b'\n')
                .take(e.line().saturating_sub(1))
                .map(<[u8]>::len)
                .sum::<usize>()
                + e.column().saturating_sub(1);
            TraceError::Json {
                path: path.to_path_buf(),
                offset: offset as u64,
                compressed: false,
                message: format!("not a `loupe trace summary --format json` file: {e}"),
            }
        })
    }
}

type NameMap<V> = HashMap<Box<str>, V, FixedState>;

/// Statistics per name, with a value computed once per distinct name (a kernel's GPU class:
/// classifying means scanning the name, which kernels repeat millions of times).
struct NameTable<C>(NameMap<(OpStats, C)>);

impl<C> Default for NameTable<C> {
    fn default() -> Self {
        NameTable(NameMap::default())
    }
}

impl<C: Copy> NameTable<C> {
    /// Counts one call and returns the name's cached value.
    fn add(&mut self, name: &str, dur: i64, compute: impl FnOnce() -> C) -> C {
        if let Some((s, c)) = self.0.get_mut(name) {
            s.calls += 1;
            s.total_ns += dur;
            s.min_ns = s.min_ns.min(dur);
            s.max_ns = s.max_ns.max(dur);
            return *c;
        }
        let c = compute();
        let stats = OpStats {
            name: name.to_string(),
            calls: 1,
            total_ns: dur,
            min_ns: dur,
            max_ns: dur,
        };
        self.0.insert(name.into(), (stats, c));
        c
    }

    fn absorb(&mut self, other: NameTable<C>) {
        for (k, (o, c)) in other.0 {
            match self.0.get_mut(&k) {
                Some((s, _)) => s.merge(&o),
                None => {
                    self.0.insert(k, (o, c));
                }
            }
        }
    }

    fn into_sorted(self) -> Vec<OpStats> {
        let mut v: Vec<OpStats> = self.0.into_values().map(|(s, _)| s).collect();
        sort_ops(&mut v);
        v
    }
}

/// Largest total first; names break ties so output is stable.
pub fn sort_ops(v: &mut [OpStats]) {
    v.sort_by(|a, b| {
        b.total_ns
            .cmp(&a.total_ns)
            .then_with(|| a.name.cmp(&b.name))
    });
}

/// The streaming fold. Feed it every event of one trace (one builder per parsing thread,
/// combined with [`SummaryBuilder::absorb`]), then call [`SummaryBuilder::finish`].
#[derive(Default)]
pub struct SummaryBuilder {
    /// GPU operations, with the class their name gives a kernel (the category can override
    /// it, so the cache holds only what depends on the name).
    kernels: NameTable<GpuClass>,
    ops: NameTable<()>,
    categories: NameMap<(u64, i64)>,
    steps: StepCollector,
    timeline: TimelineBuilder,
    host: HostBuilder,
    hta: HtaBuilder,
    first_ts: Option<i64>,
    last_ts: i64,
}

impl EventSink for SummaryBuilder {
    fn event(&mut self, ev: &Event<'_>) -> Result<()> {
        self.fold(ev, None)
    }

    fn event_scanned(&mut self, ev: &Event<'_>, args: &Args<'_>) -> Result<()> {
        self.fold(ev, Some(args))
    }
}

impl SummaryBuilder {
    /// One event; `scanned` is its `args` members when the reader found them already.
    fn fold(&mut self, ev: &Event<'_>, scanned: Option<&Args<'_>>) -> Result<()> {
        if ev.ph == Phase::METADATA {
            return Ok(());
        }
        if let Some(ts) = ev.ts {
            self.first_ts = Some(self.first_ts.map_or(ts, |f| f.min(ts)));
            self.last_ts = self.last_ts.max(ev.end());
        }
        let dur = if ev.ph == Phase::COMPLETE { ev.dur } else { 0 };
        match self.categories.get_mut(ev.cat.as_ref()) {
            Some(c) => {
                c.0 += 1;
                c.1 += dur;
            }
            None => {
                self.categories.insert(ev.cat.as_ref().into(), (1, dur));
            }
        }
        if ev.ph != Phase::COMPLETE {
            return Ok(());
        }
        // `args` read once for the HTA and host folds
        let args = match scanned {
            Some(a) => *a,
            None => Args::scan(ev.args.as_deref()),
        };
        self.hta.event(ev, &args);
        if matches!(ev.cat.as_ref(), "kernel" | "gpu_memcpy" | "gpu_memset") {
            let by_name = self
                .kernels
                .add(&ev.name, ev.dur, || kernel_class(&ev.name));
            // The same name under another category (a memcpy named like a kernel) must not
            // take the class of whichever came first to this thread.
            let class = if ev.cat == "gpu_memcpy" {
                GpuClass::Memcpy
            } else {
                by_name
            };
            let start = ev.ts_or_zero();
            self.timeline
                .add(start, start + ev.dur, class)
                .map_err(TraceError::Temp)?;
        } else {
            if ev.cat == "cpu_op" {
                self.ops.add(&ev.name, ev.dur, || ());
            }
            self.host.event(ev, &args).map_err(TraceError::Temp)?;
            self.steps.event(ev);
        }
        Ok(())
    }
}

impl BlockWorker for SummaryBuilder {
    /// GPU streams first seen in the block: the file's stream order, which HTA's idle-time
    /// table keeps.
    type Output = Vec<i64>;

    fn finish_block(&mut self) -> Result<Vec<i64>> {
        Ok(self.hta.take_new_streams())
    }
}

/// What a summary computes beyond reading.
#[derive(Clone, Debug, Default)]
pub struct SummaryOptions {
    pub hta: HtaOptions,
    /// CUDA-graph capture traces: graph replays' kernels go to the ops that launched them
    /// while the graph was captured ([`crate::analyze::capture`]).
    pub captures: Option<Arc<Captures>>,
}

impl SummaryBuilder {
    /// Builders for `n` parsing threads of one trace, whose GPU intervals and host events
    /// spill to disk past `sort_budget` bytes in all (each has its share).
    pub fn workers(n: usize, sort_budget: usize) -> Vec<SummaryBuilder> {
        HostBuilder::workers(n, sort_budget)
            .into_iter()
            .map(|host| SummaryBuilder {
                timeline: TimelineBuilder::with_budget(sort_budget / n.max(1)),
                host,
                ..SummaryBuilder::default()
            })
            .collect()
    }

    /// Adds what another builder (another parsing thread of the same trace) collected.
    pub fn absorb(&mut self, other: SummaryBuilder) -> Result<()> {
        self.kernels.absorb(other.kernels);
        self.ops.absorb(other.ops);
        for (k, (n, t)) in other.categories {
            let c = self.categories.entry(k).or_default();
            c.0 += n;
            c.1 += t;
        }
        self.steps.absorb(other.steps);
        self.timeline
            .absorb(other.timeline)
            .map_err(TraceError::Temp)?;
        self.host.absorb(other.host).map_err(TraceError::Temp)?;
        self.hta.absorb(other.hta);
        self.first_ts = match (self.first_ts, other.first_ts) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_ts = self.last_ts.max(other.last_ts);
        Ok(())
    }

    /// `stream_order`: the GPU streams in order of first appearance (the blocks' outputs).
    pub fn finish(
        self,
        info: &TraceInfo,
        file: String,
        rank: RankId,
        label: String,
        stream_order: &[i64],
        opts: &SummaryOptions,
    ) -> Result<TraceSummary> {
        let SummaryBuilder {
            kernels,
            ops,
            categories,
            steps,
            timeline,
            host,
            hta,
            first_ts,
            last_ts,
        } = self;
        let hta = &hta;
        // HTA's analyses read only its rows: they run beside the host's call trees, the
        // attribution and the timeline sweep.
        let (hta_report, rest) = std::thread::scope(|scope| {
            let job = scope.spawn(move || {
                let t = std::time::Instant::now();
                let report = hta.finish(stream_order, opts.hta);
                tracing::debug!(hta_s = t.elapsed().as_secs_f64(), "summary: finish");
                report
            });
            let rest = host_side(host, steps, timeline, hta, opts.captures.as_deref());
            let report = job
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (report, rest)
        });
        let (host, steps, cpu_steps, attribution, timeline, per_step) = rest?;
        let steps = steps
            .into_iter()
            .zip(per_step)
            .zip(cpu_steps)
            .enumerate()
            .map(|(index, (((span, _), gpu), cpu))| StepStats {
                index,
                number: span.number,
                stage: span.stage.or(rank.stage),
                start_ns: span.start,
                span_ns: span.end - span.start,
                gpu,
                cpu,
            })
            .collect();
        let mut categories: Vec<CategoryStats> = categories
            .into_iter()
            .map(|(k, (events, total_ns))| CategoryStats {
                category: k.into(),
                events,
                total_ns,
            })
            .collect();
        categories.sort_by(|a, b| {
            b.events
                .cmp(&a.events)
                .then_with(|| a.category.cmp(&b.category))
        });
        Ok(TraceSummary {
            file,
            label,
            stage: rank.stage,
            rank,
            format: Cow::Borrowed(info.format.name()),
            events: info.events,
            base_ns: info.base_ns,
            span_ns: first_ts.map_or(0, |f| last_ts - f),
            timeline,
            kernels: kernels.into_sorted(),
            ops: ops.into_sorted(),
            categories,
            steps,
            truncated: info.truncated,
            host: host.profile,
            hta: hta_report,
            attribution,
        })
    }
}

/// What the host side of a summary's end yields.
type HostSide = (
    HostOutcome,
    Vec<(StepSpan, Window)>,
    Vec<CpuStepStats>,
    Attribution,
    Breakdown,
    Vec<WindowStats>,
);

/// The host's call trees, the steps (from markers, else a repeated span), the attribution
/// (graph replays through `captures` when given) and the timeline sweep over those steps.
fn host_side(
    host: HostBuilder,
    steps: StepCollector,
    timeline: TimelineBuilder,
    hta: &HtaBuilder,
    captures: Option<&Captures>,
) -> Result<HostSide> {
    let t0 = std::time::Instant::now();
    let mut host = host.finish().map_err(TraceError::Temp)?;
    let t1 = std::time::Instant::now();
    let mut steps = steps.finish();
    if steps.is_empty() && !host.repeating.is_empty() {
        // No step markers: a span repeated at the top of the host's call trees is one.
        steps = StepCollector::from_spans(&host.repeating);
    }
    let windows: Vec<_> = steps.iter().map(|(_, w)| *w).collect();
    let cpu_steps = host.steps(&windows);
    let batch_sizes: Vec<Option<u64>> = steps.iter().map(|(s, _)| s.batch_size).collect();
    let graphs = captures.map(|captures| GraphReplays {
        captures,
        kernel_names: hta.names(),
        batch_sizes: &batch_sizes,
    });
    let t2 = std::time::Instant::now();
    // The timeline sweep beside the attribution.
    let (attribution, swept) = std::thread::scope(|scope| {
        let sweep = scope.spawn(|| {
            let t = std::time::Instant::now();
            let swept = timeline.finish(&windows);
            (swept, t.elapsed())
        });
        let attribution = attribute(&host, || hta.gpu_ops(), &windows, graphs.as_ref());
        let attribute_s = t2.elapsed().as_secs_f64();
        let (swept, timeline_s) = sweep
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        tracing::debug!(
            host_s = (t1 - t0).as_secs_f64(),
            steps_s = (t2 - t1).as_secs_f64(),
            attribute_s,
            timeline_s = timeline_s.as_secs_f64(),
            "summary: finish"
        );
        (attribution, swept)
    });
    // Launch sites serve only the attribution.
    host.launches = Vec::new();
    host.names = Vec::new();
    let (timeline, per_step) = swept.map_err(TraceError::Temp)?;
    Ok((host, steps, cpu_steps, attribution, timeline, per_step))
}

/// Per-stage totals over steps (stage from the step marker, else from the file name).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct StageStats {
    pub stage: Option<Stage>,
    pub steps: u64,
    pub span_ns: i64,
    pub gpu_busy_ns: i64,
    pub computation_ns: i64,
    pub exposed_comm_ns: i64,
    pub gpu_ops: u64,
}

pub fn stages(summaries: &[TraceSummary]) -> Vec<StageStats> {
    let mut out: Vec<StageStats> = Vec::new();
    for s in summaries {
        if s.steps.is_empty() && s.stage.is_some() {
            // A by-stage file without step markers: the whole trace is that stage.
            let row = stage_row(&mut out, s.stage);
            row.span_ns += s.span_ns;
            row.gpu_busy_ns += s.timeline.busy_ns;
            row.computation_ns += s.timeline.computation_ns;
            row.exposed_comm_ns += s.timeline.exposed_comm_ns;
            row.gpu_ops += s.kernels.iter().map(|k| k.calls).sum::<u64>();
            continue;
        }
        for st in &s.steps {
            let row = stage_row(&mut out, st.stage);
            row.steps += 1;
            row.span_ns += st.span_ns;
            row.gpu_busy_ns += st.gpu.busy_ns;
            row.computation_ns += st.gpu.computation_ns;
            row.exposed_comm_ns += st.gpu.exposed_comm_ns;
            row.gpu_ops += st.gpu.ops;
        }
    }
    out.sort_by_key(|r| r.stage);
    out
}

fn stage_row(rows: &mut Vec<StageStats>, stage: Option<Stage>) -> &mut StageStats {
    let i = match rows.iter().position(|r| r.stage == stage) {
        Some(i) => i,
        None => {
            rows.push(StageStats {
                stage,
                ..StageStats::default()
            });
            rows.len() - 1
        }
    };
    &mut rows[i]
}

/// Sums per-name statistics over traces (for multi-file summaries).
pub fn combine_ops<'a>(tables: impl Iterator<Item = &'a [OpStats]>) -> Vec<OpStats> {
    let mut map: NameMap<OpStats> = NameMap::default();
    for t in tables {
        for o in t {
            match map.get_mut(o.name.as_str()) {
                Some(s) => s.merge(o),
                None => {
                    map.insert(o.name.as_str().into(), o.clone());
                }
            }
        }
    }
    let mut v: Vec<OpStats> = map.into_values().collect();
    sort_ops(&mut v);
    v
}

pub fn combine_categories(summaries: &[TraceSummary]) -> Vec<CategoryStats> {
    let mut map: NameMap<CategoryStats> = NameMap::default();
    for s in summaries {
        for c in &s.categories {
            match map.get_mut(c.category.as_str()) {
                Some(m) => {
                    m.events += c.events;
                    m.total_ns += c.total_ns;
                }
                None => {
                    map.insert(c.category.as_str().into(), c.clone());
                }
            }
        }
    }
    let mut v: Vec<CategoryStats> = map.into_values().collect();
    v.sort_by(|a, b| {
        b.events
            .cmp(&a.events)
            .then_with(|| a.category.cmp(&b.category))
    });
    v
}
