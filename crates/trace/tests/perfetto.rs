//! `.pftrace` output, decoded with the same field numbers the writer uses (the Python check
//! in scripts/check_pftrace.py decodes with Perfetto's own protos): every complete event is one
//! properly nested BEGIN/END pair, flows connect, names resolve, overlaps get their own track.

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
