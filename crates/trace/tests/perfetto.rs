//! `.pftrace` output, decoded with the writer's messages, which are checked field by field
//! against Perfetto's own definitions (`data/perfetto_fields.json`; scripts/check_pftrace.py
//! decodes whole files with them): every complete event is one properly nested BEGIN/END pair,
//! flows connect, names resolve, overlaps get their own track.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{data, read_all, write};
use loupe_trace::Phase;
use loupe_trace::export::perfetto::proto::{SLICE_BEGIN, SLICE_END, Trace, TracePacket};
use loupe_trace::export::perfetto::{PerfettoReport, convert};
use loupe_trace::import::{Input, ReadOptions};
use prost::Message;

struct Decoded {
    packets: Vec<TracePacket>,
    names: HashMap<u64, String>,
}

fn to_pftrace(file: &Path, out: &Path) -> (PerfettoReport, Decoded) {
    let input = Input::open(file, None).unwrap();
    let report = convert(&input, out, &ReadOptions::default()).unwrap();
    let trace = Trace::decode(std::fs::read(out).unwrap().as_slice()).unwrap();
    let mut names = HashMap::new();
    for p in &trace.packet {
        if let Some(d) = &p.interned_data {
            for n in &d.event_names {
                assert!(
                    names
                        .insert(n.iid.unwrap(), n.name.clone().unwrap())
                        .is_none()
                );
            }
        }
    }
    (
        report,
        Decoded {
            packets: trace.packet,
            names,
        },
    )
}

/// Replays BEGIN/END per track in timestamp order (stable, as trace processor sorts) and
/// checks nesting; returns the slices (track, name, start, end).
fn slices(d: &Decoded) -> Vec<(u64, String, u64, u64)> {
    let mut events: Vec<(u64, usize, &TracePacket)> = d
        .packets
        .iter()
        .enumerate()
        .filter(|(_, p)| p.track_event.is_some())
        .map(|(i, p)| (p.timestamp.unwrap(), i, p))
        .collect();
    events.sort_by_key(|e| (e.0, e.1));
    let mut open: HashMap<u64, Vec<(String, u64)>> = HashMap::new();
    let mut out = Vec::new();
    for (ts, _, p) in events {
        let te = p.track_event.as_ref().unwrap();
        let track = te.track_uuid.unwrap();
        match te.r#type.unwrap() {
            SLICE_BEGIN => {
                let name = d.names[&te.name_iid.unwrap()].clone();
                open.entry(track).or_default().push((name, ts));
            }
            SLICE_END => {
                let (name, start) = open
                    .get_mut(&track)
                    .and_then(Vec::pop)
                    .expect("END without BEGIN");
                out.push((track, name, start, ts));
            }
            _ => {}
        }
    }
    assert!(open.values().all(Vec::is_empty), "unclosed slices");
    out
}

#[test]
fn complete_events_become_nested_slices() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.pftrace");
    let file = data("sglang_Qwen3-8B_decode.json.gz");
    let (_, d) = to_pftrace(&file, &out);
    let (info, evs) = read_all(&file);
    let base = info.base_ns.unwrap();
    let mut want: Vec<(String, u64, u64)> = evs
        .iter()
        .filter(|e| e.ph == Phase::COMPLETE)
        .map(|e| {
            (
                e.name.to_string(),
                (base + e.ts.unwrap()) as u64,
                (base + e.end()) as u64,
            )
        })
        .collect();
    let mut got: Vec<(String, u64, u64)> =
        slices(&d).into_iter().map(|s| (s.1, s.2, s.3)).collect();
    want.sort();
    got.sort();
    assert_eq!(got.len(), 1471);
    assert_eq!(got, want);
    // The first packet clears incremental state; every event packet needs it.
    assert_eq!(d.packets[0].sequence_flags, Some(1));
    assert!(
        d.packets
            .iter()
            .filter(|p| p.track_event.is_some())
            .all(|p| p.sequence_flags == Some(2) && p.trusted_packet_sequence_id == Some(1))
    );
}

#[test]
fn flows_connect_launch_and_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.pftrace");
    let (_, d) = to_pftrace(&data("triton_example.json.gz"), &out);
    let mut starts = HashMap::new();
    let mut ends = HashMap::new();
    for p in &d.packets {
        let Some(te) = &p.track_event else { continue };
        let name = te.name_iid.map(|i| d.names[&i].clone()).unwrap_or_default();
        for f in &te.flow_ids {
            starts.insert(*f, name.clone());
        }
        for f in &te.terminating_flow_ids {
            ends.insert(*f, name.clone());
        }
    }
    // ac2g: the driver launch -> the Triton kernel (the trace's one complete pair).
    let paired: Vec<_> = ends
        .iter()
        .filter(|(f, _)| starts.contains_key(f))
        .collect();
    assert_eq!(paired.len(), 1);
    let (flow, kernel) = paired[0];
    assert_eq!(kernel, "triton_poi_fused_add_cos_sin_0");
    assert_eq!(starts[flow], "cuLaunchKernel");
}

#[test]
fn overlapping_slices_get_a_sibling_track() {
    let dir = tempfile::tempdir().unwrap();
    // PDL: the second kernel starts before the first ends on the same stream.
    let json = r#"{"traceEvents": [
        {"ph": "X", "cat": "kernel", "name": "a", "pid": 0, "tid": 7, "ts": 0, "dur": 10, "args": {"grid": [1, 2], "stream": 7}},
        {"ph": "X", "cat": "kernel", "name": "b", "pid": 0, "tid": 7, "ts": 5, "dur": 10},
        {"ph": "X", "cat": "kernel", "name": "c", "pid": 0, "tid": 7, "ts": 20, "dur": 1},
        {"ph": "C", "name": "QueueDepth", "pid": 0, "ts": 3, "args": {"depth": 2}},
        {"ph": "M", "name": "process_name", "pid": 0, "args": {"name": "GPU 0"}}]}"#;
    let file = write(dir.path(), "pdl.json", json.as_bytes());
    let out = dir.path().join("pdl.pftrace");
    let (report, d) = to_pftrace(&file, &out);
    assert_eq!(report.overflow_lanes, 1);
    let s = slices(&d);
    let track = |n: &str| s.iter().find(|x| x.1 == n).unwrap().0;
    assert_eq!(track("a"), track("c"));
    assert_ne!(track("a"), track("b"));
    let b = s.iter().find(|x| x.1 == "b").unwrap();
    assert_eq!((b.2, b.3), (5_000, 15_000));
    // Args become typed debug annotations, named on field 10.
    let a = d
        .packets
        .iter()
        .filter_map(|p| p.track_event.as_ref())
        .find(|te| te.name_iid.map(|i| d.names[&i].as_str()) == Some("a"))
        .unwrap();
    let ann: HashMap<_, _> = a
        .debug_annotations
        .iter()
        .map(|x| (x.name.clone().unwrap(), x.clone()))
        .collect();
    assert_eq!(ann["stream"].int_value, Some(7));
    assert_eq!(ann["grid"].legacy_json_value.as_deref(), Some("[1,2]"));
    // The counter lands on a counter track under the process named after the GPU.
    let counter = d
        .packets
        .iter()
        .filter_map(|p| p.track_event.as_ref())
        .find(|te| te.r#type == Some(4))
        .unwrap();
    assert_eq!(counter.double_counter_value, Some(2.0));
    let process = d
        .packets
        .iter()
        .filter_map(|p| p.track_descriptor.as_ref())
        .find(|t| t.process.is_some())
        .unwrap();
    assert_eq!(
        process.process.as_ref().unwrap().process_name.as_deref(),
        Some("GPU 0")
    );
}

#[test]
fn rpd_converts_to_perfetto() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rpd.pftrace");
    let (report, d) = to_pftrace(&data("matmul_result.rpd"), &out);
    assert_eq!(report.events_in, 705);
    // 85 ops + 125 API calls.
    assert_eq!(slices(&d).len(), 210);
}

/// The top-level fields of an encoded message: (number, wire type, varint value or length).
fn fields_of(mut b: &[u8]) -> Vec<(u64, u8, u64)> {
    fn varint(b: &mut &[u8]) -> u64 {
        let mut v = 0;
        for shift in (0..64).step_by(7) {
            let byte = b[0];
            *b = &b[1..];
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        v
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b);
        let wire = (key & 7) as u8;
        let value = match wire {
            0 => varint(&mut b),
            1 => {
                b = &b[8..];
                8
            }
            2 => {
                let len = varint(&mut b);
                b = &b[len as usize..];
                len
            }
            5 => {
                b = &b[4..];
                4
            }
            w => panic!("wire type {w}"),
        };
        out.push((key >> 3, wire, value));
    }
    out
}

#[test]
fn field_numbers_and_types_are_perfettos_own() {
    // tests/data/perfetto_fields.json: what Perfetto's own definitions (the `perfetto`
    // package's perfetto_trace_pb2, via scripts/perfetto_fields.py) say about every field the
    // writer uses. Each case sets one field of loupe's message (twice when repeated).
    use loupe_trace::export::perfetto::proto::*;
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("perfetto_fields.json")).unwrap())
            .unwrap();
    let one = Some(1);
    let s = || Some("a".to_string());
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "Trace",
            "packet",
            Trace {
                packet: vec![Default::default(), Default::default()],
            }
            .encode_to_vec(),
        ),
        (
            "TracePacket",
            "timestamp",
            TracePacket {
                timestamp: one,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TracePacket",
            "trusted_packet_sequence_id",
            TracePacket {
                trusted_packet_sequence_id: Some(1),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TracePacket",
            "track_event",
            TracePacket {
                track_event: Some(Default::default()),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TracePacket",
            "interned_data",
            TracePacket {
                interned_data: Some(Default::default()),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TracePacket",
            "sequence_flags",
            TracePacket {
                sequence_flags: Some(1),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TracePacket",
            "track_descriptor",
            TracePacket {
                track_descriptor: Some(Default::default()),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TrackDescriptor",
            "uuid",
            TrackDescriptor {
                uuid: one,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TrackDescriptor",
            "name",
            TrackDescriptor {
                name: s(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TrackDescriptor",
            "process",
            TrackDescriptor {
                process: Some(Default::default()),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TrackDescriptor",
            "parent_uuid",
            TrackDescriptor {
                parent_uuid: one,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TrackDescriptor",
            "counter",
            TrackDescriptor {
                counter: Some(Default::default()),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "ProcessDescriptor",
            "pid",
            ProcessDescriptor {
                pid: Some(1),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "ProcessDescriptor",
            "process_name",
            ProcessDescriptor {
                process_name: s(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TrackEvent",
            "category_iids",
            TrackEvent {
                category_iids: vec![1, 1],
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TrackEvent",
            "debug_annotations",
            TrackEvent {
                debug_annotations: vec![Default::default(), Default::default()],
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TrackEvent",
            "type",
            TrackEvent {
                r#type: Some(1),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TrackEvent",
            "name_iid",
            TrackEvent {
                name_iid: one,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TrackEvent",
            "track_uuid",
            TrackEvent {
                track_uuid: one,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TrackEvent",
            "double_counter_value",
            TrackEvent {
                double_counter_value: Some(1.0),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TrackEvent",
            "flow_ids",
            TrackEvent {
                flow_ids: vec![1, 1],
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "TrackEvent",
            "terminating_flow_ids",
            TrackEvent {
                terminating_flow_ids: vec![1, 1],
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "DebugAnnotation",
            "bool_value",
            DebugAnnotation {
                bool_value: Some(true),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "DebugAnnotation",
            "uint_value",
            DebugAnnotation {
                uint_value: one,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "DebugAnnotation",
            "int_value",
            DebugAnnotation {
                int_value: Some(1),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "DebugAnnotation",
            "double_value",
            DebugAnnotation {
                double_value: Some(1.0),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "DebugAnnotation",
            "string_value",
            DebugAnnotation {
                string_value: s(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "DebugAnnotation",
            "legacy_json_value",
            DebugAnnotation {
                legacy_json_value: s(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "DebugAnnotation",
            "name",
            DebugAnnotation {
                name: s(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "InternedData",
            "event_categories",
            InternedData {
                event_categories: vec![Default::default(), Default::default()],
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "InternedData",
            "event_names",
            InternedData {
                event_names: vec![Default::default(), Default::default()],
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        // EventName and EventCategory are both written as `InternedName`.
        (
            "EventName",
            "iid",
            InternedName {
                iid: one,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "EventName",
            "name",
            InternedName {
                name: s(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "EventCategory",
            "iid",
            InternedName {
                iid: one,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "EventCategory",
            "name",
            InternedName {
                name: s(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
    ];
    let mut covered = std::collections::HashSet::new();
    for (message, field, bytes) in &cases {
        let g = &golden["messages"][message][field];
        assert!(g.is_object(), "{message}.{field}: not in the golden file");
        let fields = fields_of(bytes);
        let repeated = g["repeated"].as_bool().unwrap();
        assert_eq!(g["packed"], false, "{message}.{field}");
        // Perfetto's proto2 repeated numbers are unpacked: one entry per value.
        assert_eq!(
            fields.len(),
            if repeated { 2 } else { 1 },
            "{message}.{field}: {fields:?}"
        );
        let (number, wire, value) = fields[0];
        assert_eq!(Some(number), g["number"].as_u64(), "{message}.{field}");
        let want_wire = match g["type"].as_str().unwrap() {
            "int32" | "int64" | "uint32" | "uint64" | "bool" | "enum" => 0,
            "fixed64" | "double" => 1,
            "string" | "bytes" | "message" => 2,
            "fixed32" | "float" => 5,
            t => panic!("{message}.{field}: type {t} has no case here"),
        };
        assert_eq!(wire, want_wire, "{message}.{field}: {}", g["type"]);
        if wire == 0 {
            // 1 is written as 1: a plain varint, not a zigzag sint.
            assert_eq!(value, 1, "{message}.{field}");
        }
        covered.insert((message.to_string(), field.to_string()));
    }
    for (message, fields) in golden["messages"].as_object().unwrap() {
        for field in fields.as_object().unwrap().keys() {
            assert!(
                covered.contains(&(message.clone(), field.clone())),
                "{message}.{field} has no case"
            );
        }
    }
    let e = &golden["enums"];
    assert_eq!(e["TrackEvent.Type"]["TYPE_SLICE_BEGIN"], SLICE_BEGIN);
    assert_eq!(e["TrackEvent.Type"]["TYPE_SLICE_END"], SLICE_END);
    assert_eq!(e["TrackEvent.Type"]["TYPE_INSTANT"], INSTANT);
    assert_eq!(e["TrackEvent.Type"]["TYPE_COUNTER"], COUNTER);
    let flags = &e["TracePacket.SequenceFlags"];
    assert_eq!(
        flags["SEQ_INCREMENTAL_STATE_CLEARED"],
        SEQ_INCREMENTAL_STATE_CLEARED
    );
    assert_eq!(
        flags["SEQ_NEEDS_INCREMENTAL_STATE"],
        SEQ_NEEDS_INCREMENTAL_STATE
    );
}
