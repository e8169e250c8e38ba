//! CUDA-graph capture traces, for attributing graph replays (TraceLens's capture merge, spec
//! trace-analyses §11). A replayed graph's kernels all carry the correlation of one
//! `cudaGraphLaunch`, so by correlation alone they all go to the op around that call. The
//! launches were made once, while the graph was captured: a trace of the capture (SGLang's
//! `capture_torch_profiler`, `SGLANG_ENABLE_CUDA_GRAPH_CAPTURE_TRACE`, vLLM-style folders with
//! an `execution_details.json`) has them with their ops and `nn.Module` frames.
//!
//! [`Captures::read`] streams each capture trace through the host call-tree fold and keeps,
//! per capture region (a `*StreamBeginCapture*` call to the next `*StreamEndCapture*` call on
//! the same thread), its launch calls (`*Launch*`, `*Memcpy*`, `*Memset*` runtime or driver
//! calls, on the capturing thread) in order: the kernel each launched (`args.kernel`, when the
//! profiler recorded it) and the op, module path and layer it would have been attributed to.
//! A begin without an end, an end without a begin, a launch call without a correlation the
//! host fold knows, and a region with no launch in it are counted in [`Captures::notes`].
//! While a file is read, memory grows with its runtime launch calls (all of them, in a region
//! or not: which region a call falls in is known only once the file is read) and its host
//! call tree's launch sites; what is kept afterwards grows with the captured launches only.
//!
//! [`Matcher`] pairs a replay's kernels (in start order) with a region's launches: the same
//! count and names in order; else the replay as a subsequence of the region (extra captured
//! launches skipped: TraceLens's greedy forward scan); else the same names in another order,
//! paired by position within each name (graph schedulers reorder independent nodes). Where
//! several regions match at the best of those levels, the replay's batch size (from its step
//! marker) picks the smallest captured batch size at or above it.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use foldhash::fast::FixedState;
use serde::{Deserialize, Serialize};

use crate::analyze::args::Args;
use crate::analyze::host::{HOST_SORT_BUDGET, HostBuilder, launch_correlation};
use crate::error::{Result, TraceError};
use crate::import::parallel::{BlockWorker, read_parallel, workers};
use crate::import::{Input, ReadOptions};
use crate::model::{Event, EventSink, Phase};

type Map<K, V> = HashMap<K, V, FixedState>;

/// What a GPU operation is, on both sides of the merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Kernel,
    Memcpy,
    Memset,
}

impl OpKind {
    /// The kind of GPU work a launch call's name says it makes.
    pub fn of_launch(name: &str) -> OpKind {
        if name.contains("Memcpy") {
            OpKind::Memcpy
        } else if name.contains("Memset") {
            OpKind::Memset
        } else {
            OpKind::Kernel
        }
    }
}

/// One capture trace to read, with the batch size it was captured at when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureSource {
    pub path: PathBuf,
    pub batch_size: Option<u64>,
}

#[derive(Deserialize)]
struct ExecutionDetail {
    file: String,
    #[serde(default)]
    batch_size: Option<serde_json::Value>,
}

/// The capture traces `path` names: a trace file itself; a directory's
/// `execution_details.json` (a list of `{file, batch_size, mode}`, file names relative to the
/// directory) when it has one; else every `.json` / `.json.gz` file in the directory, in name
/// order.
pub fn sources(path: &Path) -> Result<Vec<CaptureSource>> {
    let meta = std::fs::metadata(path).map_err(|e| TraceError::read(path, e))?;
    if !meta.is_dir() {
        return Ok(vec![CaptureSource {
            path: path.to_path_buf(),
            batch_size: None,
        }]);
    }
    let details = path.join("execution_details.json");
    if details.is_file() {
        let bytes = std::fs::read(&details).map_err(|e| TraceError::read(&details, e))?;
        let list: Vec<ExecutionDetail> = serde_json::from_slice(&bytes).map_err(|e| {
            TraceError::format(
                &details,
                format!("not a list of {{file, batch_size, mode}} entries: {e}"),
            )
        })?;
        if list.is_empty() {
            return Err(TraceError::format(
                &details,
                "an empty list: it names no capture trace",
            ));
        }
        return list
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                let batch_size = match &d.batch_size {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::Number(n)) => Some(n.as_u64()),
                    Some(serde_json::Value::String(s)) => Some(s.trim().parse().ok()),
                    Some(_) => Some(None),
                }
                .map(|bs| {
                    bs.ok_or_else(|| {
                        TraceError::format(
                            &details,
                            format!(
                                "entry {i} ({}): batch_size {} is not a whole number of at \
                                 least 0",
                                d.file,
                                d.batch_size
                                    .as_ref()
                                    .map_or(String::new(), |v| v.to_string())
                            ),
                        )
                    })
                })
                .transpose()?;
                Ok(CaptureSource {
                    path: path.join(&d.file),
                    batch_size,
                })
            })
            .collect();
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| TraceError::read(path, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                !n.starts_with('.') && (n.ends_with(".json") || n.ends_with(".json.gz"))
            }) && p.is_file()
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(TraceError::format(
            path,
            "no capture traces in this directory (no execution_details.json, no .json or .json.gz files)",
        ));
    }
    Ok(files
        .into_iter()
        .map(|path| CaptureSource {
            path,
            batch_size: None,
        })
        .collect())
}

/// One launch call made while a graph was captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureLaunch {
    pub kind: OpKind,
    /// The kernel's name (`args.kernel`), an index into [`Captures::names`]; `None` when the
    /// profiler did not record it (then any kernel of the replay matches it).
    pub kernel: Option<u32>,
    /// The leaf `cpu_op` around the call (else the call itself), its module path and layer,
    /// as the attribution forms them; indices into [`Captures::names`].
    pub op: u32,
    pub module: Option<u32>,
    pub layer: Option<u32>,
}

/// One `*StreamBeginCapture*` .. `*StreamEndCapture*` region: one graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureRegion {
    /// Index into [`Captures::files`].
    pub file: u32,
    pub batch_size: Option<u64>,
    /// In call order.
    pub launches: Vec<CaptureLaunch>,
}

/// A capture trace that was read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureFile {
    pub path: String,
    /// Regions kept: paired begin and end with at least one launch call between them.
    pub regions: u64,
    pub launches: u64,
}

/// Every capture region of the capture traces read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captures {
    pub files: Vec<CaptureFile>,
    pub regions: Vec<CaptureRegion>,
    /// The names [`CaptureLaunch`] refers to.
    pub names: Vec<String>,
    name_ids: Map<String, u32>,
    /// What was left out of a file and why (unpaired capture calls, launch calls without a
    /// known correlation, regions without launches), one line per file that had any.
    pub notes: Vec<String>,
}

/// A capture boundary or launch call, as the fold collects them.
#[derive(Clone, Debug)]
struct Call {
    thread: u64,
    ts: i64,
    end: i64,
    what: CallKind,
}

#[derive(Clone, Debug)]
enum CallKind {
    Begin,
    End,
    Launch {
        correlation: i64,
        kind: OpKind,
        kernel: Option<String>,
    },
}

#[derive(Deserialize)]
struct KernelArg {
    #[serde(default)]
    kernel: Option<String>,
}

/// One parsing thread's share of a capture trace.
struct CaptureFold {
    host: HostBuilder,
    calls: Vec<Call>,
}

impl EventSink for CaptureFold {
    fn event(&mut self, ev: &Event<'_>) -> Result<()> {
        if ev.ph != Phase::COMPLETE {
            return Ok(());
        }
        let args = Args::scan(ev.args.as_deref());
        self.host.event(ev, &args).map_err(TraceError::Temp)?;
        if !matches!(ev.cat.as_ref(), "cuda_runtime" | "cuda_driver" | "runtime") {
            return Ok(());
        }
        let name = ev.name.as_ref();
        let what = if name.contains("StreamBeginCapture") {
            CallKind::Begin
        } else if name.contains("StreamEndCapture") {
            CallKind::End
        } else if is_capture_launch(name) {
            CallKind::Launch {
                correlation: launch_correlation(&args),
                kind: OpKind::of_launch(name),
                kernel: ev
                    .args
                    .as_deref()
                    .filter(|a| a.contains("\"kernel\""))
                    .and_then(|a| serde_json::from_str::<KernelArg>(a).ok())
                    .and_then(|k| k.kernel),
            }
        } else {
            return Ok(());
        };
        self.calls.push(Call {
            thread: FixedState::default().hash_one((&ev.pid, &ev.tid)),
            ts: ev.ts_or_zero(),
            end: ev.end(),
            what,
        });
        Ok(())
    }
}

impl BlockWorker for CaptureFold {
    type Output = ();

    fn finish_block(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A call that puts GPU work into a graph being captured (a host-function node launches
/// none, and is left out).
fn is_capture_launch(name: &str) -> bool {
    (name.contains("Launch") || name.contains("Memcpy") || name.contains("Memset"))
        && !name.contains("LaunchHostFunc")
        && !name.contains("GraphLaunch")
}

impl Captures {
    /// Reads every source in turn. A file that cannot be read, is not a trace, or holds no
    /// capture region is an error naming it.
    pub fn read(sources: &[CaptureSource], opts: &ReadOptions) -> Result<Captures> {
        let mut out = Captures::default();
        for src in sources {
            out.read_one(src, opts)?;
        }
        Ok(out)
    }

    /// The name with index `id` (of [`CaptureLaunch`]'s fields).
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.name_ids.insert(name.to_string(), id);
        id
    }

    fn read_one(&mut self, src: &CaptureSource, opts: &ReadOptions) -> Result<()> {
        let path = &src.path;
        let input = Input::open(path, None)?;
        let n = workers();
        let mut folds: Vec<CaptureFold> = HostBuilder::workers(n, HOST_SORT_BUDGET)
            .into_iter()
            .map(|host| CaptureFold {
                host,
                calls: Vec::new(),
            })
            .collect();
        let info = read_parallel(&input, opts, &mut folds, &mut |()| Ok(()))?;
        if info.events == 0 {
            return Err(TraceError::format(
                path,
                "not a capture trace: it holds no trace events",
            ));
        }
        let mut fold = folds.pop().expect("at least one worker");
        for other in folds {
            fold.host.absorb(other.host).map_err(TraceError::Temp)?;
            fold.calls.extend(other.calls);
        }
        let host = fold.host.finish().map_err(TraceError::Temp)?;
        // A launch site by its correlation and the call's start: correlations are unique
        // within a process, and a capture file may hold more than one.
        let site_of: Map<(i64, i64), usize> = host
            .launches
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.correlation, s.ts), i))
            .collect();
        let mut calls = fold.calls;
        calls.sort_by_key(|c| (c.ts, c.end));
        // Pair each begin with the next end on its thread; a second begin before that end
        // leaves the first unclosed.
        let mut open: Map<u64, usize> = Map::default();
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        let (mut unclosed, mut unopened) = (0u64, 0u64);
        for (i, c) in calls.iter().enumerate() {
            match c.what {
                CallKind::Begin => {
                    if open.insert(c.thread, i).is_some() {
                        unclosed += 1;
                    }
                }
                CallKind::End => match open.remove(&c.thread) {
                    Some(b) => pairs.push((b, i)),
                    None => unopened += 1,
                },
                CallKind::Launch { .. } => {}
            }
        }
        unclosed += open.len() as u64;
        if pairs.is_empty() {
            return Err(TraceError::format(
                path,
                format!(
                    "not a CUDA-graph capture trace: no *StreamBeginCapture* .. \
                     *StreamEndCapture* runtime call pair on one thread in it ({unclosed} \
                     begin(s) without an end, {unopened} end(s) without a begin)"
                ),
            ));
        }
        pairs.sort_unstable();
        let file = self.files.len() as u32;
        let mut regions = 0;
        let mut launches = 0;
        let (mut empty, mut unknown) = (0u64, 0u64);
        for &(b, e) in &pairs {
            let (b, e) = (&calls[b], &calls[e]);
            let (from, to) = (b.end, e.ts);
            let first = calls.partition_point(|c| c.ts < from);
            let mut region = CaptureRegion {
                file,
                batch_size: src.batch_size,
                launches: Vec::new(),
            };
            for c in calls[first..].iter().take_while(|c| c.ts <= to) {
                let CallKind::Launch {
                    correlation,
                    kind,
                    kernel,
                } = &c.what
                else {
                    continue;
                };
                if c.thread != b.thread || c.end > to {
                    continue;
                }
                let Some(&site) = site_of
                    .get(&(*correlation, c.ts))
                    .filter(|_| *correlation >= 0)
                else {
                    unknown += 1;
                    continue;
                };
                let site = host.launches[site];
                let mut name = |id: u32| self.intern(&host.names[id as usize]);
                let (op, module, layer) = (
                    name(site.op),
                    site.module.map(&mut name),
                    site.layer.map(&mut name),
                );
                region.launches.push(CaptureLaunch {
                    kind: *kind,
                    kernel: kernel.as_deref().map(|k| self.intern(k)),
                    op,
                    module,
                    layer,
                });
            }
            if region.launches.is_empty() {
                empty += 1;
                continue;
            }
            regions += 1;
            launches += region.launches.len() as u64;
            self.regions.push(region);
        }
        let mut left = Vec::new();
        for (n, what) in [
            (unclosed, "capture begin(s) without an end on their thread"),
            (unopened, "capture end(s) without a begin on their thread"),
            (
                unknown,
                "launch call(s) in a region without a correlation the trace's ops know",
            ),
            (empty, "region(s) without a launch call"),
        ] {
            if n > 0 {
                left.push(format!("{n} {what}"));
            }
        }
        if regions == 0 {
            return Err(TraceError::format(
                path,
                format!(
                    "no CUDA-graph capture region with a launch call in it ({})",
                    left.join(", ")
                ),
            ));
        }
        if !left.is_empty() {
            self.notes
                .push(format!("{}: left out {}", path.display(), left.join(", ")));
        }
        self.files.push(CaptureFile {
            path: path.display().to_string(),
            regions,
            launches,
        });
        Ok(())
    }
}

/// One side of a comparison: what a replayed GPU operation or a captured launch is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// A kernel, by the replay trace's name id.
    Kernel(u32),
    /// A captured kernel launch without a recorded kernel name: any kernel matches it.
    AnyKernel,
    /// A captured kernel whose name the replay trace never ran: nothing matches it.
    Foreign,
    Memcpy,
    Memset,
}

impl Key {
    fn matches(self, replay: Key) -> bool {
        match (self, replay) {
            (Key::AnyKernel, Key::Kernel(_)) => true,
            (Key::Foreign, _) => false,
            (a, b) => a == b,
        }
    }
}

/// How a graph launch's kernels were paired with a capture region's launches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Same count, names in order.
    Exact,
    /// The replay's kernels, in order, within the region's launches (extras skipped).
    Greedy,
    /// The same names in another order, paired by position within each name.
    Grouped,
}

/// A graph launch's kernels paired with one capture region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alignment {
    /// Index into [`Captures::regions`].
    pub region: u32,
    pub method: Method,
    /// For the replay's i-th kernel (start order), the index of its capture launch.
    pub to: Vec<u32>,
}

/// A replayed graph's kernel names (as keys) and its step's batch size.
type ReplayKey = (Vec<Key>, Option<u64>);

/// Finds the capture region each replayed graph matches, for one replay trace.
pub struct Matcher<'a> {
    captures: &'a Captures,
    /// Per region, its launches as keys over the replay's kernel names.
    keys: Vec<Vec<Key>>,
    cache: Map<ReplayKey, Option<Rc<Alignment>>>,
}

impl<'a> Matcher<'a> {
    /// `kernel_names`: the replay trace's GPU operation names, by the ids its keys use.
    pub fn new(captures: &'a Captures, kernel_names: &[Box<str>]) -> Matcher<'a> {
        let ids: Map<&str, u32> = kernel_names
            .iter()
            .enumerate()
            .map(|(i, n)| (&**n, i as u32))
            .collect();
        let keys = captures
            .regions
            .iter()
            .map(|r| {
                r.launches
                    .iter()
                    .map(|l| match (l.kind, l.kernel) {
                        (OpKind::Memcpy, _) => Key::Memcpy,
                        (OpKind::Memset, _) => Key::Memset,
                        (OpKind::Kernel, None) => Key::AnyKernel,
                        (OpKind::Kernel, Some(k)) => ids
                            .get(captures.name(k))
                            .map_or(Key::Foreign, |&id| Key::Kernel(id)),
                    })
                    .collect()
            })
            .collect();
        Matcher {
            captures,
            keys,
            cache: Map::default(),
        }
    }

    /// The region that `replay` (a graph launch's operations in start order) replays, and
    /// how its operations pair with the region's launches; `batch_size` is the replay's
    /// (from its step marker). `None`: no region matches.
    pub fn align(&mut self, replay: &[Key], batch_size: Option<u64>) -> Option<Rc<Alignment>> {
        let key = (replay.to_vec(), batch_size);
        if let Some(hit) = self.cache.get(&key) {
            return hit.clone();
        }
        let found = self.search(replay, batch_size).map(Rc::new);
        self.cache.insert(key, found.clone());
        found
    }

    fn search(&self, replay: &[Key], batch_size: Option<u64>) -> Option<Alignment> {
        if replay.is_empty() {
            return None;
        }
        for method in [Method::Exact, Method::Greedy, Method::Grouped] {
            let mut best: Option<((u8, u64, usize, usize), Alignment)> = None;
            for (r, keys) in self.keys.iter().enumerate() {
                let Some(to) = (match method {
                    Method::Exact => exact(keys, replay),
                    Method::Greedy => greedy(keys, replay),
                    Method::Grouped => grouped(keys, replay),
                }) else {
                    continue;
                };
                // smallest captured batch size at or above the replay's, then fewest skipped
                // launches, then the first region
                let bs = self.captures.regions[r].batch_size;
                let rank = match (batch_size, bs) {
                    (Some(want), Some(have)) if have >= want => (0, have),
                    _ => (1, 0),
                };
                let order = (rank.0, rank.1, keys.len() - replay.len(), r);
                if best.as_ref().is_none_or(|(o, _)| order < *o) {
                    best = Some((
                        order,
                        Alignment {
                            region: r as u32,
                            method,
                            to,
                        },
                    ));
                }
            }
            if let Some((_, a)) = best {
                return Some(a);
            }
        }
        None
    }
}

fn exact(capture: &[Key], replay: &[Key]) -> Option<Vec<u32>> {
    (capture.len() == replay.len() && capture.iter().zip(replay).all(|(c, r)| c.matches(*r)))
        .then(|| (0..replay.len() as u32).collect())
}

fn greedy(capture: &[Key], replay: &[Key]) -> Option<Vec<u32>> {
    if capture.len() <= replay.len() {
        return None;
    }
    let mut to = Vec::with_capacity(replay.len());
    let mut at = 0;
    for r in replay {
        let skip = capture[at..].iter().position(|c| c.matches(*r))?;
        at += skip;
        to.push(at as u32);
        at += 1;
    }
    Some(to)
}

fn grouped(capture: &[Key], replay: &[Key]) -> Option<Vec<u32>> {
    if capture.len() != replay.len() || capture.iter().any(|c| matches!(c, Key::AnyKernel)) {
        return None;
    }
    let mut by_key: Map<Key, (Vec<u32>, usize)> = Map::default();
    for (i, c) in capture.iter().enumerate() {
        by_key.entry(*c).or_default().0.push(i as u32);
    }
    let mut to = Vec::with_capacity(replay.len());
    for r in replay {
        let (list, next) = by_key.get_mut(r)?;
        to.push(*list.get(*next)?);
        *next += 1;
    }
    // equal lengths and every replay key found: the multisets are equal
    Some(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(keys: Vec<Key>, batch_size: Option<u64>) -> (CaptureRegion, Vec<Key>) {
        (
            CaptureRegion {
                file: 0,
                batch_size,
                launches: Vec::new(),
            },
            keys,
        )
    }

    fn matcher(captures: &Captures, regions: Vec<Vec<Key>>) -> Matcher<'_> {
        Matcher {
            captures,
            keys: regions,
            cache: Map::default(),
        }
    }

    use Key::{AnyKernel, Kernel as K, Memcpy};

    #[test]
    fn exact_then_greedy_then_grouped() {
        let (r0, k0) = region(vec![K(1), K(2), K(3)], Some(8));
        let (r1, k1) = region(vec![K(1), K(9), K(2), K(3)], Some(16));
        let (r2, k2) = region(vec![K(3), K(1), K(2)], Some(32));
        let caps = Captures {
            regions: vec![r0, r1, r2],
            ..Captures::default()
        };
        let mut m = matcher(&caps, vec![k0, k1, k2]);
        let a = m.align(&[K(1), K(2), K(3)], Some(4)).unwrap();
        assert_eq!(
            (a.region, a.method, a.to.clone()),
            (0, Method::Exact, vec![0, 1, 2])
        );
        // only region 1 holds 1, 9, 3 in order (1 and 3 kept, 2 skipped)
        let a = m.align(&[K(1), K(9), K(3)], None).unwrap();
        assert_eq!(
            (a.region, a.method, a.to.clone()),
            (1, Method::Greedy, vec![0, 1, 3])
        );
        let a = m.align(&[K(2), K(3), K(1)], None).unwrap();
        assert_eq!(a.method, Method::Grouped);
        // regions 0 and 2 hold the same names: the first in file order
        assert_eq!((a.region, a.to.clone()), (0, vec![1, 2, 0]));
        assert!(m.align(&[K(4)], None).is_none());
        assert!(m.align(&[], None).is_none());
    }

    #[test]
    fn batch_size_picks_the_smallest_capture_at_or_above() {
        let caps = Captures {
            regions: [Some(32), Some(8), Some(16), None]
                .into_iter()
                .map(|bs| region(Vec::new(), bs).0)
                .collect(),
            ..Captures::default()
        };
        let same = vec![AnyKernel, Memcpy, AnyKernel];
        let mut m = matcher(&caps, vec![same.clone(); 4]);
        let replay = [K(5), Memcpy, K(6)];
        assert_eq!(m.align(&replay, Some(9)).unwrap().region, 2);
        assert_eq!(m.align(&replay, Some(8)).unwrap().region, 1);
        assert_eq!(m.align(&replay, Some(1)).unwrap().region, 1);
        // above every capture, or unknown: the first region
        assert_eq!(m.align(&replay, Some(64)).unwrap().region, 0);
        assert_eq!(m.align(&replay, None).unwrap().region, 0);
        // a memcpy does not match a kernel launch
        assert!(m.align(&[K(5), K(7), K(6)], None).is_none());
    }

    #[test]
    fn launch_names() {
        assert!(is_capture_launch("cudaLaunchKernel"));
        assert!(is_capture_launch("cuLaunchKernelEx"));
        assert!(is_capture_launch("hipMemcpyAsync"));
        assert!(is_capture_launch("cudaMemsetAsync"));
        assert!(!is_capture_launch("cudaLaunchHostFunc"));
        assert!(!is_capture_launch("cudaStreamIsCapturing"));
        assert_eq!(OpKind::of_launch("cudaMemcpyAsync"), OpKind::Memcpy);
        assert_eq!(OpKind::of_launch("cudaLaunchKernel"), OpKind::Kernel);
    }
}
