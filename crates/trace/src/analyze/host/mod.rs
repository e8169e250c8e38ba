//! The host (CPU) side of a trace as a call tree per thread: self time of every `cpu_op`,
//! `user_annotation`, runtime call and `python_function` (a nested op's time counted once, not
//! in every ancestor's inclusive sum), torch's `key_averages(group_by_input_shape=True)`
//! grouping, and per-step CPU compute and collective (c10d/gloo) time.
//!
//! Self time follows torch's event tree for torch's own events (ops, annotations, runtime
//! calls): an op's self time is its duration less that of the torch events directly under it,
//! `python_function` frames in between being transparent. A `python_function`'s self time is
//! its duration less that of every event directly under it. Events are sorted per thread
//! through an external sort; what the fold returns per launch call and per outermost op
//! (launch sites, step attribution) is kept in memory.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io;

use foldhash::fast::FixedState;
use serde::{Deserialize, Serialize};

use crate::analyze::args::Args;
use crate::analyze::timeline::{Window, window_of};
use crate::external_sort::ExternalSorter;
use crate::model::Event;
pub(crate) use record::{CORRELATION_KEY, correlation as launch_correlation};
use record::{HostRecord, LocalTexts, SharedTexts, Texts, correlation};
use std::sync::Arc;

mod record;

/// In-memory budget of unsorted host events before they spill to disk, shared by the parsing
/// threads.
pub const HOST_SORT_BUDGET: usize = 48 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostKind {
    CpuOp,
    UserAnnotation,
    Runtime,
    PythonFunction,
}

impl HostKind {
    fn of(cat: &str) -> Option<HostKind> {
        Some(match cat {
            "cpu_op" | "operator" => HostKind::CpuOp,
            "user_annotation" => HostKind::UserAnnotation,
            "cuda_runtime" | "cuda_driver" | "runtime" => HostKind::Runtime,
            "python_function" => HostKind::PythonFunction,
            _ => return None,
        })
    }

    /// Torch's own events; `python_function` frames are transparent to their tree.
    fn is_torch(self) -> bool {
        self != HostKind::PythonFunction
    }

    pub fn name(self) -> &'static str {
        match self {
            HostKind::CpuOp => "cpu_op",
            HostKind::UserAnnotation => "user_annotation",
            HostKind::Runtime => "runtime",
            HostKind::PythonFunction => "python_function",
        }
    }
}

/// Self and inclusive time of one name (of one kind).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfTimeRow {
    pub kind: HostKind,
    pub name: String,
    pub calls: u64,
    pub self_ns: i64,
    /// Summed inclusive durations (what the category table adds up).
    pub total_ns: i64,
}

/// One row of torch's `key_averages(group_by_input_shape=True)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShapeRow {
    /// The op's name; `ProfilerStep#N` becomes `ProfilerStep*` as in torch.
    pub name: String,
    /// `args["Input Dims"]` as torch prints it (`[[4, 64], []]`), `[]` without shapes.
    pub input_dims: String,
    pub calls: u64,
    pub self_ns: i64,
    pub total_ns: i64,
    /// First start, the order torch's table keeps for equal self times.
    pub first_ns: i64,
}

/// CPU activity of one step window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStepStats {
    /// Inclusive time of the outermost `cpu_op`s starting in the step (every thread).
    pub op_ns: i64,
    /// Of which inside collectives (c10d, gloo, NCCL host calls), outermost only.
    pub collective_ns: i64,
    /// `op_ns - collective_ns`: the CPU compute of the step.
    pub compute_ns: i64,
    /// Start of the step's last collective (trace clock).
    pub last_collective_start: Option<i64>,
}

/// What the host fold returns.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HostProfile {
    /// By self time, largest first.
    pub self_time: Vec<SelfTimeRow>,
    /// torch's key_averages grouped by input shape, sorted by self time like its
    /// `table(sort_by="self_cpu_time_total")`.
    pub by_shape: Vec<ShapeRow>,
    /// Outermost torch events per thread, summed: the CPU time the trace covers once.
    pub busy_ns: i64,
}

/// A module frame's class: `Linear_3` -> `Linear` (TraceLens strips `_\d+` the same way).
fn strip_instance(module: &str) -> &str {
    match module.rsplit_once('_') {
        Some((class, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => class,
        _ => module,
    }
}

/// Host-side collectives: c10d's ops, gloo's and NCCL's host calls, the functional
/// collectives and their waits.
pub fn is_collective(name: &str) -> bool {
    name.starts_with("c10d::")
        || name.starts_with("gloo:")
        || name.starts_with("nccl:")
        || name.starts_with("_c10d_functional::")
        || name.starts_with("c10d_functional::")
        || name == "record_param_comms"
}

/// The fold: one per parsing thread, combined with [`HostBuilder::absorb`].
pub struct HostBuilder {
    sorter: ExternalSorter<HostRecord>,
    events: u64,
    texts: LocalTexts,
    /// The id and hash of `[]`.
    no_dims: (u32, u64),
}

impl Default for HostBuilder {
    fn default() -> Self {
        HostBuilder::with_budget(HOST_SORT_BUDGET)
    }
}

type Map<K, V> = HashMap<K, V, FixedState>;

/// The host report, and what per-step CPU figures are computed from.
pub struct HostOutcome {
    pub profile: HostProfile,
    /// Outermost `cpu_op`s `(start, duration)`, and outermost collectives.
    outer_ops: Vec<(i64, i64)>,
    collectives: Vec<(i64, i64)>,
    /// The outermost span name repeated most often (at least twice; largest total time among
    /// equals), with its spans: steps for traces without step markers.
    pub repeating: Vec<(i64, i64)>,
    /// Every runtime call with a correlation: what launched the GPU work it names.
    pub launches: Vec<LaunchSite>,
    /// The names [`LaunchSite`] refers to.
    pub names: Vec<String>,
}

/// A runtime call with a correlation, and where in the host's call tree it was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchSite {
    pub correlation: i64,
    pub ts: i64,
    /// Duration of the launch call.
    pub dur: i64,
    /// The nearest enclosing `cpu_op` (TraceLens's leaf cpu_op), else the runtime call itself:
    /// an index into [`HostOutcome::names`].
    pub op: u32,
    /// `nn.Module` frames above it, outermost first, instance numbers dropped (`Qwen3Model/
    /// Qwen3DecoderLayer/Qwen3MLP`); `None` without `with_stack` module frames.
    pub module: Option<u32>,
    /// The module path down to the first layer-like module (`...Layer_3`, `...Block_3`), with
    /// its instance number kept: one row per layer.
    pub layer: Option<u32>,
    /// A graph launch (`cudaGraphLaunch`, `hipGraphLaunch`, `cuGraphLaunch`): its correlation
    /// names every kernel the graph replays.
    pub graph: bool,
}

/// Whether a runtime or driver call launches a whole CUDA/HIP graph.
pub fn is_graph_launch(name: &str) -> bool {
    name.as_bytes()
        .windows(11)
        .any(|w| w.eq_ignore_ascii_case(b"graphlaunch"))
}

impl HostOutcome {
    /// CPU time per step; `windows` sorted and disjoint.
    pub fn steps(&self, windows: &[Window]) -> Vec<CpuStepStats> {
        let mut out = vec![CpuStepStats::default(); windows.len()];
        let at = |t: i64| window_of(windows, t);
        for &(ts, dur) in &self.outer_ops {
            if let Some(i) = at(ts) {
                out[i].op_ns += dur;
            }
        }
        for &(ts, dur) in &self.collectives {
            if let Some(i) = at(ts) {
                let s = &mut out[i];
                s.collective_ns += dur;
                s.last_collective_start = Some(s.last_collective_start.map_or(ts, |t| t.max(ts)));
            }
        }
        for s in &mut out {
            s.compute_ns = s.op_ns - s.collective_ns;
        }
        out
    }
}

impl HostBuilder {
    pub fn with_budget(bytes: usize) -> Self {
        HostBuilder::sharing(bytes, SharedTexts::default())
    }

    /// Builders for `n` parsing threads of one trace, sharing `budget` bytes and one table
    /// of texts (builders absorb only builders they share it with).
    pub fn workers(n: usize, budget: usize) -> Vec<HostBuilder> {
        let shared = SharedTexts::default();
        (0..n)
            .map(|_| HostBuilder::sharing(budget / n.max(1), Arc::clone(&shared)))
            .collect()
    }

    fn sharing(bytes: usize, shared: SharedTexts) -> Self {
        let mut texts = LocalTexts::new(shared);
        let no_dims = texts.no_dims();
        HostBuilder {
            sorter: ExternalSorter::new(bytes),
            events: 0,
            texts,
            no_dims,
        }
    }

    /// Takes a complete event if it is a host event; `args` is the event's [`Args::scan`].
    pub fn event(&mut self, ev: &Event<'_>, args: &Args<'_>) -> io::Result<()> {
        let Some(kind) = HostKind::of(&ev.cat) else {
            return Ok(());
        };
        let ts = ev.ts_or_zero();
        let (dims, dims_hash) = if kind == HostKind::CpuOp {
            self.texts.dims(args)
        } else {
            self.no_dims
        };
        let (name, name_hash) = self.texts.name(&ev.name);
        let correlation = if kind == HostKind::Runtime {
            correlation(args)
        } else {
            -1
        };
        self.events += 1;
        self.sorter.push(HostRecord {
            thread: FixedState::default().hash_one((&ev.pid, &ev.tid)),
            ts,
            end: Reverse(ts + ev.dur.max(0)),
            kind,
            key: name_hash.rotate_left(32) ^ dims_hash,
            name,
            dims,
            correlation,
        })
    }

    /// Takes over what `other`, a builder of the same [`HostBuilder::workers`], collected.
    pub fn absorb(&mut self, other: HostBuilder) -> io::Result<()> {
        assert!(
            Arc::ptr_eq(self.texts.shared(), other.texts.shared()),
            "host builders absorb only builders that share their texts"
        );
        self.events += other.events;
        self.sorter.absorb(other.sorter)
    }

    /// Builds the call trees.
    pub fn finish(self) -> io::Result<HostOutcome> {
        let texts = self
            .texts
            .shared()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .texts
            .clone();
        let mut fold = TreeFold {
            texts,
            ..TreeFold::default()
        };
        for rec in self.sorter.finish()? {
            fold.record(rec?);
        }
        Ok(fold.finish())
    }
}

struct Frame {
    rec: HostRecord,
    /// Duration of the events counted as this frame's children.
    child_ns: i64,
    /// Index in the stack of the nearest torch-kind ancestor.
    torch_parent: Option<usize>,
    /// Whether a collective encloses this frame (or it is one).
    in_collective: bool,
    /// Whether a `cpu_op` encloses this frame.
    under_op: bool,
}

/// An outermost span name's count, total time and spans.
type OuterSpans = (u64, i64, Vec<(i64, i64)>);

/// The name torch's shape table gives an op: `ProfilerStep#N` becomes `ProfilerStep*`.
fn shape_name_of(name: &str) -> &str {
    if name.starts_with("ProfilerStep#") {
        "ProfilerStep*"
    } else {
        name
    }
}

/// What the fold keeps per distinct name.
#[derive(Default)]
struct NameRows {
    /// Whether a record has had this name (ids are shared with input dims).
    known: bool,
    /// A graph launch's name.
    graph: bool,
    /// Per kind (`HostKind as usize`).
    self_time: [Option<SelfTimeRow>; 4],
    outer: Option<OuterSpans>,
    /// The name's id among the shape table's names (`ProfilerStep#N` -> `ProfilerStep*`),
    /// once known.
    shape_name: Option<u32>,
    collective: bool,
}

#[derive(Default)]
struct TreeFold {
    thread: u64,
    stack: Vec<Frame>,
    /// The records' names and dims, by id.
    texts: Vec<Arc<str>>,
    /// By name id.
    rows: Vec<NameRows>,
    /// `ProfilerStep*` for `ProfilerStep#N`, else the name.
    shape_names: Texts,
    /// By shape-name id and dims id.
    shapes: Map<(u32, u32), ShapeRow>,
    outer_ops: Vec<(i64, i64)>,
    collectives: Vec<(i64, i64)>,
    busy_ns: i64,
    launches: Vec<LaunchSite>,
    names: Vec<String>,
    name_ids: Map<String, u32>,
}

impl TreeFold {
    fn record(&mut self, rec: HostRecord) {
        if rec.thread != self.thread {
            self.close_all();
            self.thread = rec.thread;
        }
        while self.stack.last().is_some_and(|f| f.rec.end.0 <= rec.ts) {
            self.close();
        }
        let torch_parent = self.stack.iter().rposition(|f| f.rec.kind.is_torch());
        let name = rec.name as usize;
        if name >= self.rows.len() {
            self.rows.resize_with(name + 1, NameRows::default);
        }
        let row = &mut self.rows[name];
        if !row.known {
            let text = &self.texts[name];
            row.known = true;
            row.collective = is_collective(text);
            row.graph = is_graph_launch(text);
        }
        let parent = self.stack.last();
        let in_collective = parent.is_some_and(|f| f.in_collective) || row.collective;
        let under_op = parent.is_some_and(|f| f.under_op || f.rec.kind == HostKind::CpuOp);
        self.stack.push(Frame {
            rec,
            child_ns: 0,
            torch_parent,
            in_collective,
            under_op,
        });
    }

    fn close_all(&mut self) {
        while !self.stack.is_empty() {
            self.close();
        }
    }

    fn close(&mut self) {
        let f = self.stack.pop().expect("a frame to close");
        let rec = &f.rec;
        let dur = rec.end.0 - rec.ts;
        // Who counts this frame as a child: its nearest torch ancestor (torch's tree) when it
        // is a torch event, and its direct parent when that is a python frame.
        if rec.kind.is_torch()
            && let Some(p) = f.torch_parent
        {
            self.stack[p].child_ns += dur;
        }
        if let Some(parent) = self.stack.last_mut()
            && parent.rec.kind == HostKind::PythonFunction
        {
            parent.child_ns += dur;
        }
        let self_ns = dur - f.child_ns;
        let name = &self.texts[rec.name as usize];
        let rows = &mut self.rows[rec.name as usize];
        let row = rows.self_time[rec.kind as usize].get_or_insert_with(|| SelfTimeRow {
            kind: rec.kind,
            name: name.to_string(),
            calls: 0,
            self_ns: 0,
            total_ns: 0,
        });
        row.calls += 1;
        row.self_ns += self_ns;
        row.total_ns += dur;
        if rec.kind.is_torch() {
            let shape_name = match rows.shape_name {
                Some(id) => id,
                None => {
                    let id = self.shape_names.id(shape_name_of(name));
                    self.rows[rec.name as usize].shape_name = Some(id);
                    id
                }
            };
            let texts = &self.texts;
            let row = self
                .shapes
                .entry((shape_name, rec.dims))
                .or_insert_with(|| ShapeRow {
                    name: shape_name_of(&texts[rec.name as usize]).to_string(),
                    input_dims: texts[rec.dims as usize].to_string(),
                    calls: 0,
                    self_ns: 0,
                    total_ns: 0,
                    first_ns: rec.ts,
                });
            row.calls += 1;
            row.self_ns += self_ns;
            row.total_ns += dur;
            row.first_ns = row.first_ns.min(rec.ts);
            if f.torch_parent.is_none() {
                self.busy_ns += dur;
                if matches!(rec.kind, HostKind::CpuOp | HostKind::UserAnnotation) {
                    let o = self.rows[rec.name as usize]
                        .outer
                        .get_or_insert_with(OuterSpans::default);
                    o.0 += 1;
                    o.1 += dur;
                    o.2.push((rec.ts, rec.end.0));
                }
            }
        }
        if rec.kind == HostKind::Runtime && rec.correlation >= 0 {
            let site = self.launch_site(&f);
            self.launches.push(site);
        }
        if rec.kind == HostKind::CpuOp {
            if !f.under_op {
                self.outer_ops.push((rec.ts, dur));
            }
            if f.in_collective && !self.stack.last().is_some_and(|p| p.in_collective) {
                self.collectives.push((rec.ts, dur));
            }
        }
    }

    /// Where the runtime call `f` (just popped) sits in its thread's call tree.
    fn launch_site(&mut self, f: &Frame) -> LaunchSite {
        let texts = &self.texts;
        let op_name = self
            .stack
            .iter()
            .rev()
            .find(|p| p.rec.kind == HostKind::CpuOp)
            .map_or(&*texts[f.rec.name as usize], |p| {
                &*texts[p.rec.name as usize]
            });
        let modules: Vec<&str> = self
            .stack
            .iter()
            .filter(|p| p.rec.kind == HostKind::PythonFunction)
            .filter_map(|p| texts[p.rec.name as usize].strip_prefix("nn.Module: "))
            .collect();
        let (module, layer) = if modules.is_empty() {
            (None, None)
        } else {
            let path: Vec<&str> = modules.iter().map(|m| strip_instance(m)).collect();
            let cut = modules
                .iter()
                .position(|m| {
                    let class = strip_instance(m);
                    class.ends_with("Layer") || class.ends_with("Block")
                })
                .unwrap_or(0);
            let mut layer: Vec<&str> = path[..cut].to_vec();
            layer.push(modules[cut]);
            (Some(path.join("/")), Some(layer.join("/")))
        };
        let mut intern = |name: &str| -> u32 {
            if let Some(&id) = self.name_ids.get(name) {
                return id;
            }
            let id = self.names.len() as u32;
            self.names.push(name.to_string());
            self.name_ids.insert(name.to_string(), id);
            id
        };
        LaunchSite {
            correlation: f.rec.correlation,
            ts: f.rec.ts,
            dur: f.rec.end.0 - f.rec.ts,
            op: intern(op_name),
            module: module.map(|m| intern(&m)),
            layer: layer.map(|l| intern(&l)),
            graph: self.rows[f.rec.name as usize].graph,
        }
    }

    fn finish(mut self) -> HostOutcome {
        self.close_all();
        let mut self_time: Vec<SelfTimeRow> = Vec::new();
        let mut outer: Vec<(Arc<str>, OuterSpans)> = Vec::new();
        for (rows, name) in self.rows.into_iter().zip(self.texts) {
            self_time.extend(rows.self_time.into_iter().flatten());
            if let Some(o) = rows.outer {
                outer.push((name, o));
            }
        }
        self_time.sort_by(|a, b| {
            b.self_ns
                .cmp(&a.self_ns)
                .then_with(|| a.name.cmp(&b.name))
                .then(a.kind.cmp(&b.kind))
        });
        let mut by_shape: Vec<ShapeRow> = self.shapes.into_values().collect();
        by_shape.sort_by(|a, b| {
            b.self_ns
                .cmp(&a.self_ns)
                .then(a.first_ns.cmp(&b.first_ns))
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.input_dims.cmp(&b.input_dims))
        });
        let repeating = outer
            .into_iter()
            .filter(|(_, (n, _, _))| *n >= 2)
            .max_by(|a, b| {
                (a.1.0, a.1.1)
                    .cmp(&(b.1.0, b.1.1))
                    .then_with(|| b.0.cmp(&a.0))
            })
            .map(|(_, (_, _, mut spans))| {
                spans.sort_unstable();
                spans
            })
            .unwrap_or_default();
        HostOutcome {
            profile: HostProfile {
                self_time,
                by_shape,
                busy_ns: self.busy_ns,
            },
            outer_ops: self.outer_ops,
            collectives: self.collectives,
            repeating,
            launches: self.launches,
            names: self.names,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Phase;

    fn ev(cat: &str, name: &str, ts: i64, dur: i64) -> Event<'static> {
        Event {
            ph: Phase::COMPLETE,
            name: name.to_string().into(),
            cat: cat.to_string().into(),
            ts: Some(ts),
            dur,
            ..Event::default()
        }
    }

    #[test]
    fn self_time_skips_python_frames_for_torch_events() {
        let mut b = HostBuilder::with_budget(64);
        for e in [
            ev("python_function", "model.py(1): forward", 0, 100),
            ev("cpu_op", "aten::linear", 10, 80),
            ev("python_function", "hook.py(2): hook", 20, 30),
            ev("cpu_op", "aten::addmm", 25, 20),
            ev("cpu_op", "aten::t", 60, 10),
        ] {
            b.event(&e, &Args::scan(e.args.as_deref())).unwrap();
        }
        let out = b.finish().unwrap();
        let get = |n: &str| {
            out.profile
                .self_time
                .iter()
                .find(|r| r.name == n)
                .unwrap()
                .self_ns
        };
        assert_eq!(get("aten::linear"), 80 - 20 - 10);
        assert_eq!(get("hook.py(2): hook"), 30 - 20);
        assert_eq!(get("model.py(1): forward"), 100 - 80);
        assert_eq!(get("aten::addmm"), 20);
        assert_eq!(out.profile.busy_ns, 80);
    }

    #[test]
    fn collectives_split_step_time() {
        let mut b = HostBuilder::with_budget(1 << 20);
        for e in [
            ev("cpu_op", "aten::mm", 0, 40),
            ev("cpu_op", "c10d::allreduce_", 50, 30),
            ev("cpu_op", "gloo:all_reduce", 55, 20),
            ev("cpu_op", "aten::mm", 100, 10),
            ev("cpu_op", "aten::mm", 200, 10),
            ev("cpu_op", "aten::mm", 300, 10),
        ] {
            b.event(&e, &Args::scan(e.args.as_deref())).unwrap();
        }
        let w = [
            Window { start: 0, end: 100 },
            Window {
                start: 100,
                end: 200,
            },
        ];
        let out = b.finish().unwrap();
        let steps = out.steps(&w);
        assert_eq!(
            steps[0],
            CpuStepStats {
                op_ns: 70,
                collective_ns: 30,
                compute_ns: 40,
                last_collective_start: Some(50),
            }
        );
        assert_eq!(steps[1].compute_ns, 10);
        assert_eq!(out.repeating.len(), 4);
    }
}
