//! Merging per-rank traces into one that Perfetto and chrome://tracing open with every rank
//! labelled. Differences from SGLang's `ProfileMerger` (srt/utils/profile_merger.py):
//!
//! - streamed: one event in, one event out, nothing held per event (SGLang's loads every
//!   rank's whole document, PR #39037);
//! - time-aligned: every file is shifted onto the earliest `baseTimeNanoseconds` (SGLang keeps
//!   the first file's base and ignores the others');
//! - integer flow ids get a per-file offset (string ids the rank label), because Perfetto keys
//!   flows by `(id, cat, name)` across the whole trace and correlation ids restart in every
//!   process: without it arrows cross-link ranks;
//! - process names and sort indexes are re-emitted per rank, so ranks sort together and every
//!   process says which rank it is, whether or not the input had `M` events.
//!
//! The pid labelling is SGLang's: `"[TP01-DP00] 4037"`.

use std::collections::HashMap;
use std::path::Path;

use crate::buffers::BufferPool;
use crate::error::Result;
use crate::export::json::{JsonTraceWriter, Rewrite, write_event, write_str};
use crate::export::output::ensure_not_an_input;
use crate::import::parallel::{BlockWorker, read_parallel, workers};
use crate::import::{Input, ReadOptions};
use crate::model::{Event, EventSink, Id, Phase, TraceInfo, gpu_class};
use crate::rank::RankId;

/// Which categories pass (merge and slice share it).
#[derive(Clone, Debug, Default)]
pub struct CategoryFilter {
    /// Dropped, e.g. `python_function` (the bulk of `with_stack` traces).
    pub drop: Vec<String>,
    /// When set, only these pass.
    pub keep: Option<Vec<String>>,
}

impl CategoryFilter {
    pub fn passes(&self, cat: &str) -> bool {
        !self.drop.iter().any(|d| d == cat)
            && self
                .keep
                .as_ref()
                .is_none_or(|k| k.iter().any(|c| c == cat))
    }
}

/// What [`merge`] wrote.
#[derive(Clone, Debug)]
pub struct MergeReport {
    pub files: usize,
    pub events_written: u64,
    pub base_ns: Option<i64>,
    /// `(label, file)` in output order.
    pub ranks: Vec<(String, String)>,
}

/// One input's place in the merge.
struct Part<'a> {
    input: &'a Input,
    info: TraceInfo,
    rank: RankId,
    label: String,
}

/// Flow ids of file `i` move to `[(i + 1) << 40, ...)`: below 2^53 for up to 8191 files, so
/// JavaScript viewers read them exactly.
const FLOW_ID_STRIDE_BITS: u32 = 40;

/// Merges per-rank traces into `out` (`.json`, or gzipped `.json.gz`), ranks in SGLang's
/// order (DP, EP, PP, TP, then global rank) whatever the input order: each rank's processes
/// under its `[TP01-DP00]` label, flow ids kept apart per file, times aligned on
/// `baseTimeNanoseconds`, `filter` applied to every event but metadata.
pub fn merge(
    inputs: &[Input],
    out: &Path,
    opts: &ReadOptions,
    filter: &CategoryFilter,
) -> Result<MergeReport> {
    ensure_not_an_input(out, inputs.iter().map(|i| i.path.as_path()))?;
    let mut parts = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let info = input.probe(opts)?;
        let rank = input.rank_with(&info);
        let label = rank.label(i);
        parts.push((
            i,
            Part {
                input,
                info,
                rank,
                label,
            },
        ));
    }
    parts.sort_by(|(i, a), (j, b)| a.rank.order(&b.rank).then(i.cmp(j)));
    // Old traces carry absolute Unix microseconds and no base: when one is present, every
    // file is written on the absolute clock, else on the earliest base (no negative times).
    let base = if parts.iter().all(|(_, p)| p.info.base_ns.is_some()) {
        parts.iter().filter_map(|(_, p)| p.info.base_ns).min()
    } else {
        None
    };

    let mut header = vec![("schemaVersion", "1".to_string())];
    if let Some(b) = base {
        header.push(("baseTimeNanoseconds", b.to_string()));
    }
    header.push(("displayTimeUnit", "\"ms\"".to_string()));
    let mut w = JsonTraceWriter::create(out, &header)?;
    let mut devices = DeviceUnion::default();
    let mut ranks_meta = Vec::new();
    for (order, (file_index, part)) in parts.iter().enumerate() {
        let shift = part.info.base_ns.unwrap_or(0) - base.unwrap_or(0);
        let rw = Rewrite {
            pid_prefix: Some(&part.label),
            shift_ns: shift,
            flow_offset: ((*file_index as i64) + 1) << FLOW_ID_STRIDE_BITS,
        };
        let mut rewriters: Vec<RankRewriter<'_>> = (0..workers())
            .map(|_| RankRewriter {
                rewrite: rw,
                filter,
                procs: Processes::default(),
                buf: w.buffers().take(),
                buffers: w.buffers().clone(),
                events: 0,
            })
            .collect();
        read_parallel(part.input, opts, &mut rewriters, &mut |(bytes, n)| {
            w.write_serialized(bytes, n)
        })?;
        let mut procs = Processes::default();
        for r in rewriters {
            procs.merge(r.procs);
        }
        for ev in procs.metadata(order, &part.label) {
            w.write(&ev, &Rewrite::default())?;
        }
        if let Some(d) = &part.info.device_properties {
            devices.add(d);
        }
        ranks_meta.push(rank_meta(part));
    }
    let mut trailer = Vec::new();
    if let Some(d) = devices.json() {
        trailer.push(("deviceProperties", d));
    }
    trailer.push((
        "loupeMerge",
        format!("{{\"ranks\": [{}]}}", ranks_meta.join(", ")),
    ));
    let events_written = w.finish(&trailer)?;
    Ok(MergeReport {
        files: parts.len(),
        events_written,
        base_ns: base,
        ranks: parts
            .iter()
            .map(|(_, p)| (p.label.clone(), p.input.path.display().to_string()))
            .collect(),
    })
}

fn rank_meta(part: &Part<'_>) -> String {
    let mut s = Vec::new();
    s.extend_from_slice(b"{\"label\": ");
    write_str(&mut s, &part.label);
    s.extend_from_slice(b", \"file\": ");
    write_str(&mut s, &part.input.path.display().to_string());
    if let Some(b) = part.info.base_ns {
        s.extend_from_slice(format!(", \"baseTimeNanoseconds\": {b}").as_bytes());
    }
    if let Some(d) = &part.info.distributed {
        s.extend_from_slice(b", \"distributedInfo\": ");
        s.extend_from_slice(d.raw.as_bytes());
    }
    s.push(b'}');
    String::from_utf8(s).expect("JSON text is UTF-8")
}

/// One parsing thread of a merge: rewrites the events of its blocks into JSON text (so
/// serialisation runs in parallel too) and notes the processes it sees.
struct RankRewriter<'a> {
    rewrite: Rewrite<'a>,
    filter: &'a CategoryFilter,
    procs: Processes,
    buf: Vec<u8>,
    buffers: BufferPool,
    events: u64,
}

impl EventSink for RankRewriter<'_> {
    fn event(&mut self, ev: &Event<'_>) -> Result<()> {
        if ev.ph == Phase::METADATA && self.procs.absorb(ev) {
            return Ok(());
        }
        if ev.ph != Phase::METADATA && !self.filter.passes(&ev.cat) {
            return Ok(());
        }
        self.procs.saw(ev);
        self.buf.extend_from_slice(b",\n");
        write_event(&mut self.buf, ev, &self.rewrite);
        self.events += 1;
        Ok(())
    }
}

impl BlockWorker for RankRewriter<'_> {
    /// The block's events as `,\n`-prefixed JSON, and how many.
    type Output = (Vec<u8>, u64);

    fn finish_block(&mut self) -> Result<(Vec<u8>, u64)> {
        let n = std::mem::take(&mut self.events);
        Ok((std::mem::replace(&mut self.buf, self.buffers.take()), n))
    }
}

/// The processes of one file: their original names (from `process_name` metadata, which is
/// replaced) and whether they carry GPU work.
#[derive(Default)]
struct Processes {
    seen: Vec<Id<'static>>,
    index: HashMap<Id<'static>, usize>,
    names: Vec<Option<String>>,
    labels: Vec<Option<String>>,
    gpu: Vec<bool>,
}

impl Processes {
    fn slot(&mut self, pid: &Id<'_>) -> usize {
        if let Some(&i) = self.index.get(pid) {
            return i;
        }
        let owned = pid.to_owned_id();
        self.index.insert(owned.clone(), self.seen.len());
        self.seen.push(owned);
        self.names.push(None);
        self.labels.push(None);
        self.gpu.push(false);
        self.seen.len() - 1
    }

    /// Takes process-level metadata (re-emitted per rank at the end, with names that carry
    /// the rank label); `true` if consumed.
    fn absorb(&mut self, ev: &Event<'_>) -> bool {
        match ev.name.as_ref() {
            "process_name" => {
                let name = ev.arg("name").and_then(|v| v.as_str().map(str::to_string));
                let i = self.slot(&ev.pid);
                self.names[i] = name;
                true
            }
            "process_labels" => {
                let labels = ev
                    .arg("labels")
                    .and_then(|v| v.as_str().map(str::to_string));
                let i = self.slot(&ev.pid);
                self.labels[i] = labels;
                true
            }
            "process_sort_index" => {
                self.slot(&ev.pid);
                true
            }
            _ => false,
        }
    }

    /// Adds what another parsing thread saw of the same file.
    fn merge(&mut self, other: Processes) {
        for (i, pid) in other.seen.iter().enumerate() {
            let j = self.slot(pid);
            if other.names[i].is_some() {
                self.names[j] = other.names[i].clone();
            }
            if other.labels[i].is_some() {
                self.labels[j] = other.labels[i].clone();
            }
            self.gpu[j] |= other.gpu[i];
        }
    }

    fn saw(&mut self, ev: &Event<'_>) {
        let i = self.slot(&ev.pid);
        if !self.gpu[i] && ev.ph == Phase::COMPLETE && gpu_class(&ev.cat, &ev.name).is_some() {
            self.gpu[i] = true;
        }
    }

    /// A process's sort index within its rank.
    fn sort_within(&self, i: usize) -> i64 {
        match (&self.seen[i], self.gpu[i]) {
            (Id::Int(p), true) => 500_000 + (*p).clamp(0, 499_999),
            (Id::Int(p), false) => (*p).clamp(0, 499_997),
            (Id::Str(_), _) => 499_998,
        }
    }

    /// `process_name` and `process_sort_index` for every process of the file, already in
    /// their merged form. Sort order: ranks in merge order; within a rank CPU processes, then
    /// pseudo-processes (`Spans`), then GPUs by device id.
    fn metadata(&self, order: usize, label: &str) -> Vec<Event<'static>> {
        let mut out = Vec::new();
        // In sort-index order, then by pid: which parsing thread met a process first must
        // not change the output.
        let mut procs: Vec<usize> = (0..self.seen.len()).collect();
        procs.sort_by_cached_key(|&i| (self.sort_within(i), self.seen[i].to_string()));
        for i in procs {
            let pid = &self.seen[i];
            let merged_pid = Id::Str(format!("{label} {pid}").into());
            // Kineto names GPU processes after the host process and says "GPU n" only in
            // `process_labels`, which viewers show less prominently: keep both in the name.
            let name = match (&self.names[i], &self.labels[i]) {
                (Some(n), Some(l)) => format!("{label} {n} ({l})"),
                (Some(n), None) => format!("{label} {n}"),
                (None, Some(l)) => format!("{label} {l}"),
                (None, None) if self.gpu[i] => format!("{label} GPU {pid}"),
                (None, None) => format!("{label} {pid}"),
            };
            let sort = order as i64 * 1_000_000 + self.sort_within(i);
            let mut args = Vec::new();
            args.extend_from_slice(b"{\"name\": ");
            write_str(&mut args, &name);
            args.push(b'}');
            for (n, a) in [
                ("process_name", String::from_utf8(args).expect("UTF-8")),
                ("process_sort_index", format!("{{\"sort_index\": {sort}}}")),
            ] {
                out.push(Event {
                    ph: Phase::METADATA,
                    name: n.into(),
                    pid: merged_pid.clone(),
                    args: Some(a.into()),
                    ..Event::default()
                });
            }
        }
        out
    }
}

/// `deviceProperties` of all ranks, one entry per device id (every rank lists every visible
/// device, so concatenating them, as SGLang does, repeats each one per rank).
#[derive(Default)]
struct DeviceUnion {
    entries: Vec<(String, String)>,
}

impl DeviceUnion {
    fn add(&mut self, raw: &str) {
        let Ok(list) = serde_json::from_str::<Vec<serde_json::Value>>(raw) else {
            return;
        };
        for d in list {
            let key = d.get("id").map(|v| v.to_string()).unwrap_or_default();
            if !self.entries.iter().any(|(k, _)| *k == key) {
                self.entries.push((key, d.to_string()));
            }
        }
    }

    fn json(&self) -> Option<String> {
        if self.entries.is_empty() {
            return None;
        }
        let items: Vec<&str> = self.entries.iter().map(|(_, v)| v.as_str()).collect();
        Some(format!("[{}]", items.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_filter() {
        let f = CategoryFilter {
            drop: vec!["python_function".into()],
            keep: None,
        };
        assert!(f.passes("kernel"));
        assert!(!f.passes("python_function"));
        let k = CategoryFilter {
            drop: vec![],
            keep: Some(vec!["kernel".into()]),
        };
        assert!(k.passes("kernel") && !k.passes("cpu_op"));
    }

    #[test]
    fn device_union_dedupes_by_id() {
        let mut u = DeviceUnion::default();
        u.add(r#"[{"id": 0, "name": "A"}, {"id": 1, "name": "A"}]"#);
        u.add(r#"[{"id": 1, "name": "A"}, {"id": 2, "name": "B"}]"#);
        let v: Vec<serde_json::Value> = serde_json::from_str(&u.json().unwrap()).unwrap();
        assert_eq!(v.len(), 3);
    }
}
