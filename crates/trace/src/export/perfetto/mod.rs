//! Any trace -> Perfetto's native protobuf (`.pftrace`), which the UI loads with far less
//! memory than JSON and draws overlapping events correctly.
//!
//! Perfetto's track events have no "complete" event: each `X` becomes a SLICE_BEGIN and a
//! SLICE_END, and slices on one track must nest. Events therefore go through an external sort
//! by (track, time, longest first) and are laid out per track in lanes: a slice that
//! overlaps without nesting (PDL kernels on one stream, perfetto#4280) moves to a sibling
//! track of the same name instead of corrupting the nesting. Flow arrows become flow ids on
//! the slice that starts where the flow event is (Kineto puts `s` on the launch and `f` on the
//! kernel), else on an instant at that point. Names and categories are interned.
//!
//! Times are written as absolute nanoseconds (`baseTimeNanoseconds` + ts for Kineto, the
//! session start for Nsight, the boot clock for RPD).

pub mod proto;

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;

use prost::Message;

use crate::error::{Result, TraceError};
use crate::export::output::{AtomicOutput, ensure_not_an_input};
use crate::external_sort::{ExternalSorter, Record, read_exact_or_end};
use crate::import::{Input, ReadOptions};
use crate::model::{Event, EventSink, Id, Phase};
use proto::*;

const SORT_BUDGET: usize = 64 << 20;
/// Synthetic pids for string pids (`"Spans"`, `"[TP01] 4037"`) start here, above real ones.
const SYNTHETIC_PID: i32 = 0x4000_0000;

/// What a Perfetto conversion wrote.
#[derive(Clone, Debug, Default)]
pub struct PerfettoReport {
    pub events_in: u64,
    pub packets: u64,
    /// Extra tracks created for slices that overlap without nesting.
    pub overflow_lanes: u64,
}

/// Any input as a Perfetto protobuf trace at `out`, written under a temporary name and renamed
/// when complete.
pub fn convert(input: &Input, out: &Path, opts: &ReadOptions) -> Result<PerfettoReport> {
    ensure_not_an_input(out, [input.path.as_path()])?;
    let mut collect = Collect::default();
    let info = input.read(opts, &mut collect)?;
    let mut w = Writer::new(out, info.base_ns.unwrap_or(0))?;
    w.descriptors(&collect.tracks)?;
    let sorted = collect.sorter.finish().map_err(TraceError::Temp)?;
    let mut state: Option<TrackState> = None;
    for rec in sorted {
        let rec = rec.map_err(TraceError::Temp)?;
        if state.as_ref().is_none_or(|s| s.track != rec.track) {
            if let Some(s) = state.take() {
                w.finish_track(s)?;
            }
            state = Some(TrackState::new(rec.track, &collect.tracks));
        }
        let s = state.as_mut().expect("set above");
        w.record(s, &rec, &collect.tracks)?;
    }
    if let Some(s) = state.take() {
        w.finish_track(s)?;
    }
    let report = PerfettoReport {
        events_in: info.events,
        packets: w.packets,
        overflow_lanes: w.overflow_lanes,
    };
    w.out.commit()?;
    Ok(report)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TrackKind {
    Thread,
    Counter,
}

struct Track {
    kind: TrackKind,
    process: usize,
    /// The thread id (thread tracks) or the series name (counter tracks).
    name: String,
    tid: Option<Id<'static>>,
    uuid: u64,
}

struct Process {
    pid: Id<'static>,
    number: i32,
    name: Option<String>,
    labels: Option<String>,
    uuid: u64,
}

#[derive(Default)]
struct Tracks {
    processes: Vec<Process>,
    by_pid: HashMap<Id<'static>, usize>,
    tracks: Vec<Track>,
    by_thread: HashMap<(usize, Id<'static>), u32>,
    by_counter: HashMap<(usize, String), u32>,
    thread_names: HashMap<(usize, Id<'static>), String>,
    next_synthetic: i32,
}

impl Tracks {
    fn process(&mut self, pid: &Id<'_>) -> usize {
        if let Some(&i) = self.by_pid.get(pid) {
            return i;
        }
        let number = match pid {
            Id::Int(p) if (0..SYNTHETIC_PID as i64).contains(p) => *p as i32,
            _ => {
                self.next_synthetic = self.next_synthetic.max(SYNTHETIC_PID) + 1;
                self.next_synthetic
            }
        };
        let i = self.processes.len();
        self.processes.push(Process {
            pid: pid.to_owned_id(),
            number,
            name: None,
            labels: None,
            uuid: uuid_of(&[b"process", pid.to_string().as_bytes()]),
        });
        self.by_pid.insert(pid.to_owned_id(), i);
        i
    }

    fn thread(&mut self, pid: &Id<'_>, tid: &Id<'_>) -> u32 {
        let p = self.process(pid);
        if let Some(&t) = self.by_thread.get(&(p, tid.to_owned_id())) {
            return t;
        }
        let t = self.tracks.len() as u32;
        self.tracks.push(Track {
            kind: TrackKind::Thread,
            process: p,
            name: tid.to_string(),
            tid: Some(tid.to_owned_id()),
            uuid: uuid_of(&[
                b"thread",
                pid.to_string().as_bytes(),
                tid.to_string().as_bytes(),
            ]),
        });
        self.by_thread.insert((p, tid.to_owned_id()), t);
        t
    }

    fn counter(&mut self, pid: &Id<'_>, name: String) -> u32 {
        let p = self.process(pid);
        if let Some(&t) = self.by_counter.get(&(p, name.clone())) {
            return t;
        }
        let t = self.tracks.len() as u32;
        self.tracks.push(Track {
            kind: TrackKind::Counter,
            process: p,
            tid: None,
            uuid: uuid_of(&[b"counter", pid.to_string().as_bytes(), name.as_bytes()]),
            name: name.clone(),
        });
        self.by_counter.insert((p, name), t);
        t
    }
}

/// 64-bit FNV-1a over the parts (a stable uuid / flow id from names).
fn uuid_of(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

/// Sort order of records at one timestamp on one track: slice ends (`E`) first, then flow
/// points (they attach to the slice that begins right after), then slices, instants, counters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    End = 0,
    Flow = 1,
    Slice = 2,
    Begin = 3,
    Instant = 4,
    Counter = 5,
}

impl Kind {
    fn from_u8(v: u8) -> Kind {
        match v {
            0 => Kind::End,
            1 => Kind::Flow,
            2 => Kind::Slice,
            3 => Kind::Begin,
            4 => Kind::Instant,
            _ => Kind::Counter,
        }
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    track: u32,
    ts: i64,
    kind: u8,
    /// Longest first, so parents begin before their children.
    neg_dur: i64,
    seq: u64,
    /// Flow id (0: none); for flows, the high bit marks a terminating end.
    flow: u64,
    name: String,
    cat: String,
    /// `args` JSON, or the counter value as text.
    args: String,
}

impl Record for Rec {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.track.to_le_bytes());
        out.extend_from_slice(&self.ts.to_le_bytes());
        out.push(self.kind);
        out.extend_from_slice(&self.neg_dur.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.flow.to_le_bytes());
        for s in [&self.name, &self.cat, &self.args] {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }

    fn decode(input: &mut impl Read) -> io::Result<Option<Self>> {
        let mut head = [0u8; 4 + 8 + 1 + 8 + 8 + 8];
        if !read_exact_or_end(input, &mut head)? {
            return Ok(None);
        }
        let u64_at = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().expect("8 bytes"));
        let mut string = || -> io::Result<String> {
            let mut len = [0u8; 4];
            input.read_exact(&mut len)?;
            let mut b = vec![0u8; u32::from_le_bytes(len) as usize];
            input.read_exact(&mut b)?;
            String::from_utf8(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        };
        Ok(Some(Rec {
            track: u32::from_le_bytes(head[..4].try_into().expect("4 bytes")),
            ts: u64_at(4) as i64,
            kind: head[12],
            neg_dur: u64_at(13) as i64,
            seq: u64_at(21),
            flow: u64_at(29),
            name: string()?,
            cat: string()?,
            args: string()?,
        }))
    }

    fn mem_size(&self) -> usize {
        std::mem::size_of::<Rec>() + self.name.len() + self.cat.len() + self.args.len()
    }
}

const TERMINATING: u64 = 1 << 63;

/// First pass: names from metadata, every other event into the sorter.
struct Collect {
    tracks: Tracks,
    sorter: ExternalSorter<Rec>,
    seq: u64,
}

impl Default for Collect {
    fn default() -> Self {
        Collect {
            tracks: Tracks::default(),
            sorter: ExternalSorter::new(SORT_BUDGET),
            seq: 0,
        }
    }
}

impl EventSink for Collect {
    fn event(&mut self, ev: &Event<'_>) -> Result<()> {
        if ev.ph == Phase::METADATA {
            self.metadata(ev);
            return Ok(());
        }
        let Some(ts) = ev.ts else { return Ok(()) };
        let mut rec = Rec {
            track: 0,
            ts,
            kind: Kind::Slice as u8,
            neg_dur: 0,
            seq: self.seq,
            flow: 0,
            name: ev.name.to_string(),
            cat: ev.cat.to_string(),
            args: ev.args.as_deref().unwrap_or("").to_string(),
        };
        self.seq += 1;
        match ev.ph.0 {
            b'X' => {
                rec.track = self.tracks.thread(&ev.pid, &ev.tid);
                rec.neg_dur = -ev.dur.max(0);
            }
            b'B' => {
                rec.track = self.tracks.thread(&ev.pid, &ev.tid);
                rec.kind = Kind::Begin as u8;
            }
            b'E' => {
                rec.track = self.tracks.thread(&ev.pid, &ev.tid);
                rec.kind = Kind::End as u8;
            }
            b'i' | b'I' | b'n' => {
                rec.track = self.tracks.thread(&ev.pid, &ev.tid);
                rec.kind = Kind::Instant as u8;
            }
            b's' | b't' | b'f' => {
                rec.track = self.tracks.thread(&ev.pid, &ev.tid);
                rec.kind = Kind::Flow as u8;
                let id = ev.id.as_ref().map(|i| i.to_string()).unwrap_or_default();
                let fid = uuid_of(&[ev.cat.as_bytes(), ev.name.as_bytes(), id.as_bytes()]) >> 1;
                rec.flow = if ev.ph == Phase::FLOW_END {
                    fid | TERMINATING
                } else {
                    fid
                };
                rec.args.clear();
            }
            b'C' => return self.counters(ev, rec),
            _ => return Ok(()),
        }
        self.sorter.push(rec).map_err(TraceError::Temp)
    }
}

impl Collect {
    fn metadata(&mut self, ev: &Event<'_>) {
        let arg = |k: &str| ev.arg(k).and_then(|v| v.as_str().map(str::to_string));
        match ev.name.as_ref() {
            "process_name" => {
                let p = self.tracks.process(&ev.pid);
                self.tracks.processes[p].name = arg("name");
            }
            "process_labels" => {
                let p = self.tracks.process(&ev.pid);
                self.tracks.processes[p].labels = arg("labels");
            }
            "thread_name" => {
                let p = self.tracks.process(&ev.pid);
                if let Some(n) = arg("name") {
                    self.tracks
                        .thread_names
                        .insert((p, ev.tid.to_owned_id()), n);
                }
            }
            _ => {}
        }
    }

    /// One counter track per series: `{"depth": 3}` on `QueueDepth` is the track
    /// `QueueDepth`; several series are `name key`.
    fn counters(&mut self, ev: &Event<'_>, base: Rec) -> Result<()> {
        let Some(args) = ev.args.as_deref() else {
            return Ok(());
        };
        let Ok(map) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(args)
        else {
            return Ok(());
        };
        let single = map.len() == 1;
        for (k, v) in &map {
            let value = match v {
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::String(s) if s.trim().parse::<f64>().is_ok() => s.trim().into(),
                _ => continue,
            };
            let name = if single {
                ev.name.to_string()
            } else {
                format!("{} {k}", ev.name)
            };
            let track = self.tracks.counter(&ev.pid, name);
            let rec = Rec {
                track,
                kind: Kind::Counter as u8,
                args: value,
                seq: self.seq,
                name: String::new(),
                cat: String::new(),
                ..base
            };
            self.seq += 1;
            self.sorter.push(rec).map_err(TraceError::Temp)?;
        }
        Ok(())
    }
}

struct Lane {
    uuid: u64,
    /// End times of the open slices, innermost last.
    stack: Vec<i64>,
}

struct TrackState {
    track: u32,
    lanes: Vec<Lane>,
    /// Flow points waiting for a slice that begins at their time: (ts, flow id).
    pending: Vec<(i64, u64)>,
}

impl TrackState {
    fn new(track: u32, tracks: &Tracks) -> TrackState {
        TrackState {
            track,
            lanes: vec![Lane {
                uuid: tracks.tracks[track as usize].uuid,
                stack: Vec::new(),
            }],
            pending: Vec::new(),
        }
    }
}

struct Writer {
    out: AtomicOutput,
    base: i64,
    names: HashMap<String, u64>,
    cats: HashMap<String, u64>,
    scratch: Vec<u8>,
    packets: u64,
    overflow_lanes: u64,
}

impl Writer {
    fn new(path: &Path, base: i64) -> Result<Writer> {
        let mut w = Writer {
            out: AtomicOutput::create(path)?,
            base,
            names: HashMap::new(),
            cats: HashMap::new(),
            scratch: Vec::with_capacity(4096),
            packets: 0,
            overflow_lanes: 0,
        };
        w.packet(&TracePacket {
            trusted_packet_sequence_id: Some(1),
            sequence_flags: Some(SEQ_INCREMENTAL_STATE_CLEARED),
            ..Default::default()
        })?;
        Ok(w)
    }

    /// `Trace.packet` (tag 1, length-delimited) around one packet.
    fn packet(&mut self, p: &TracePacket) -> Result<()> {
        self.scratch.clear();
        p.encode(&mut self.scratch).expect("Vec grows");
        self.out.buf.push(0x0a);
        prost::encoding::encode_varint(self.scratch.len() as u64, &mut self.out.buf);
        self.out.buf.extend_from_slice(&self.scratch);
        self.packets += 1;
        self.out.maybe_flush()
    }

    fn descriptor(&mut self, d: TrackDescriptor) -> Result<()> {
        self.packet(&TracePacket {
            trusted_packet_sequence_id: Some(1),
            track_descriptor: Some(d),
            ..Default::default()
        })
    }

    fn descriptors(&mut self, tracks: &Tracks) -> Result<()> {
        for p in &tracks.processes {
            let name = match (&p.name, &p.labels) {
                (Some(n), Some(l)) => format!("{n} ({l})"),
                (Some(n), None) => n.clone(),
                (None, Some(l)) => l.clone(),
                (None, None) => p.pid.to_string(),
            };
            self.descriptor(TrackDescriptor {
                uuid: Some(p.uuid),
                process: Some(ProcessDescriptor {
                    pid: Some(p.number),
                    process_name: Some(name),
                }),
                ..Default::default()
            })?;
        }
        for t in &tracks.tracks {
            let named = t
                .tid
                .as_ref()
                .and_then(|tid| tracks.thread_names.get(&(t.process, tid.clone())));
            let name = match (t.kind, named) {
                (TrackKind::Thread, Some(n)) => n.clone(),
                (TrackKind::Thread, None) => format!("thread {}", t.name),
                (TrackKind::Counter, _) => t.name.clone(),
            };
            self.descriptor(TrackDescriptor {
                uuid: Some(t.uuid),
                name: Some(name),
                parent_uuid: Some(tracks.processes[t.process].uuid),
                counter: (t.kind == TrackKind::Counter).then(CounterDescriptor::default),
                ..Default::default()
            })?;
        }
        Ok(())
    }

    fn intern(&mut self, name: &str, cat: &str, data: &mut InternedData) -> (u64, Option<u64>) {
        let next = self.names.len() as u64 + 1;
        let n = *self.names.entry(name.to_string()).or_insert_with(|| {
            data.event_names.push(InternedName {
                iid: Some(next),
                name: Some(name.to_string()),
            });
            next
        });
        if cat.is_empty() {
            return (n, None);
        }
        let next = self.cats.len() as u64 + 1;
        let c = *self.cats.entry(cat.to_string()).or_insert_with(|| {
            data.event_categories.push(InternedName {
                iid: Some(next),
                name: Some(cat.to_string()),
            });
            next
        });
        (n, Some(c))
    }

    fn event(&mut self, ts: i64, ev: TrackEvent, interned: Option<InternedData>) -> Result<()> {
        self.packet(&TracePacket {
            timestamp: Some((self.base + ts).max(0) as u64),
            trusted_packet_sequence_id: Some(1),
            track_event: Some(ev),
            interned_data: interned,
            sequence_flags: Some(SEQ_NEEDS_INCREMENTAL_STATE),
            ..Default::default()
        })
    }

    fn named(&mut self, kind: i32, track: u64, rec: &Rec) -> (TrackEvent, Option<InternedData>) {
        let mut data = InternedData::default();
        let (n, c) = self.intern(&rec.name, &rec.cat, &mut data);
        let ev = TrackEvent {
            r#type: Some(kind),
            track_uuid: Some(track),
            name_iid: Some(n),
            category_iids: c.into_iter().collect(),
            debug_annotations: annotations(&rec.args),
            ..Default::default()
        };
        let interned =
            (!data.event_names.is_empty() || !data.event_categories.is_empty()).then_some(data);
        (ev, interned)
    }

    fn end(&mut self, track: u64, ts: i64) -> Result<()> {
        self.event(
            ts,
            TrackEvent {
                r#type: Some(SLICE_END),
                track_uuid: Some(track),
                ..Default::default()
            },
            None,
        )
    }

    /// Flow points older than `ts` found no slice beginning with them: they become instants.
    fn flush_flows(&mut self, s: &mut TrackState, before: i64) -> Result<()> {
        let lane = s.lanes[0].uuid;
        let keep: Vec<(i64, u64)> = s
            .pending
            .iter()
            .copied()
            .filter(|p| p.0 >= before)
            .collect();
        let old: Vec<(i64, u64)> = s.pending.iter().copied().filter(|p| p.0 < before).collect();
        s.pending = keep;
        for (ts, flow) in old {
            let mut ev = TrackEvent {
                r#type: Some(INSTANT),
                track_uuid: Some(lane),
                ..Default::default()
            };
            attach(&mut ev, flow);
            self.event(ts, ev, None)?;
        }
        Ok(())
    }

    fn record(&mut self, s: &mut TrackState, rec: &Rec, tracks: &Tracks) -> Result<()> {
        let kind = Kind::from_u8(rec.kind);
        if kind != Kind::Flow {
            self.flush_flows(s, rec.ts)?;
        }
        match kind {
            Kind::Flow => s.pending.push((rec.ts, rec.flow)),
            Kind::Counter => {
                let uuid = tracks.tracks[s.track as usize].uuid;
                let value: f64 = rec.args.parse().unwrap_or(0.0);
                self.event(
                    rec.ts,
                    TrackEvent {
                        r#type: Some(COUNTER),
                        track_uuid: Some(uuid),
                        double_counter_value: Some(value),
                        ..Default::default()
                    },
                    None,
                )?;
            }
            Kind::Instant => {
                let (ev, interned) = self.named(INSTANT, s.lanes[0].uuid, rec);
                self.event(rec.ts, ev, interned)?;
            }
            Kind::End => {
                // Closes the innermost open `B` slice of this thread, whichever lane holds it.
                if let Some(lane) = s
                    .lanes
                    .iter_mut()
                    .find(|l| l.stack.last() == Some(&i64::MAX))
                {
                    lane.stack.pop();
                    let uuid = lane.uuid;
                    self.end(uuid, rec.ts)?;
                }
            }
            Kind::Slice | Kind::Begin => {
                let end = if kind == Kind::Begin {
                    i64::MAX
                } else {
                    rec.ts - rec.neg_dur
                };
                let lane = self.place(s, rec.ts, end, tracks)?;
                let uuid = s.lanes[lane].uuid;
                let (mut ev, interned) = self.named(SLICE_BEGIN, uuid, rec);
                let ts = rec.ts;
                for (_, flow) in s.pending.iter().filter(|p| p.0 == ts) {
                    attach(&mut ev, *flow);
                }
                s.pending.retain(|p| p.0 != ts);
                self.event(rec.ts, ev, interned)?;
                s.lanes[lane].stack.push(end);
            }
        }
        Ok(())
    }

    /// The first lane where `[ts, end)` nests, closing slices that ended by `ts`; a new
    /// sibling track when none does.
    fn place(&mut self, s: &mut TrackState, ts: i64, end: i64, tracks: &Tracks) -> Result<usize> {
        for i in 0..s.lanes.len() {
            while let Some(&top) = s.lanes[i].stack.last() {
                if top > ts || top == i64::MAX {
                    break;
                }
                s.lanes[i].stack.pop();
                let uuid = s.lanes[i].uuid;
                self.end(uuid, top)?;
            }
            if s.lanes[i].stack.last().is_none_or(|&top| top >= end) {
                return Ok(i);
            }
        }
        let t = &tracks.tracks[s.track as usize];
        let n = s.lanes.len();
        let uuid = uuid_of(&[b"lane", &t.uuid.to_le_bytes(), &(n as u64).to_le_bytes()]);
        self.descriptor(TrackDescriptor {
            uuid: Some(uuid),
            name: Some(format!("{} (overlap {n})", t.name)),
            parent_uuid: Some(tracks.processes[t.process].uuid),
            ..Default::default()
        })?;
        self.overflow_lanes += 1;
        s.lanes.push(Lane {
            uuid,
            stack: Vec::new(),
        });
        Ok(n)
    }

    fn finish_track(&mut self, mut s: TrackState) -> Result<()> {
        self.flush_flows(&mut s, i64::MAX)?;
        for lane in &mut s.lanes {
            while let Some(end) = lane.stack.pop() {
                if end != i64::MAX {
                    let uuid = lane.uuid;
                    self.end(uuid, end)?;
                }
            }
        }
        Ok(())
    }
}

fn attach(ev: &mut TrackEvent, flow: u64) {
    if flow & TERMINATING != 0 {
        ev.terminating_flow_ids.push(flow & !TERMINATING);
    } else {
        ev.flow_ids.push(flow);
    }
}

/// `args` members as debug annotations: numbers, strings and booleans as such, anything else
/// as JSON text.
fn annotations(args: &str) -> Vec<DebugAnnotation> {
    if args.is_empty() {
        return Vec::new();
    }
    let Ok(map) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(args) else {
        return Vec::new();
    };
    map.into_iter()
        .map(|(k, v)| {
            let mut d = DebugAnnotation {
                name: Some(k),
                ..Default::default()
            };
            match v {
                serde_json::Value::Bool(b) => d.bool_value = Some(b),
                serde_json::Value::Number(n) => {
                    if let Some(i) = n.as_i64() {
                        d.int_value = Some(i);
                    } else if let Some(u) = n.as_u64() {
                        d.uint_value = Some(u);
                    } else {
                        d.double_value = n.as_f64();
                    }
                }
                serde_json::Value::String(s) => d.string_value = Some(s),
                other => d.legacy_json_value = Some(other.to_string()),
            }
            d
        })
        .collect()
}
