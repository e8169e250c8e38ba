//! CUDA-graph replays attributed through capture traces: each replayed kernel goes to the op,
//! module and layer that launched it while the graph was captured; captures chosen by their
//! launch sequence, then by batch size; unmatched graphs counted and left as they were.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::graphs::{self, REPLAY_OP, Step};
use loupe_trace::analyze::attribution::{Attribution, AttributionRow};
use loupe_trace::analyze::capture::{self, CaptureSource, Captures};
use loupe_trace::analyze::summarize_with;
use loupe_trace::analyze::summary::{SummaryOptions, TraceSummary};
use loupe_trace::import::{Input, ReadOptions};

fn summary(path: &Path, captures: Option<Captures>) -> TraceSummary {
    summarize_with(
        &Input::open(path, None).unwrap(),
        &ReadOptions::default(),
        0,
        &SummaryOptions {
            captures: captures.map(Arc::new),
            ..SummaryOptions::default()
        },
    )
    .unwrap()
}

fn read(paths: &[&Path]) -> Captures {
    let sources: Vec<CaptureSource> = paths
        .iter()
        .flat_map(|p| capture::sources(p).unwrap())
        .collect();
    Captures::read(&sources, &ReadOptions::default()).unwrap()
}

fn row<'a>(rows: &'a [AttributionRow], name: &str) -> &'a AttributionRow {
    rows.iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no row {name}: {rows:?}"))
}

/// `(launches, kernels, GPU µs)` of a row.
fn of(rows: &[AttributionRow], name: &str) -> (u64, u64, i64) {
    let r = row(rows, name);
    (r.launches, r.kernels, r.gpu_ns / 1000)
}

#[test]
fn graph_kernels_go_to_the_captured_ops() {
    let dir = tempfile::tempdir().unwrap();
    let cap = common::write_gz(
        dir.path(),
        "graph_capture_rank_0.1733000000.pt.trace.json.gz",
        graphs::capture_trace(&[graphs::graph_bs16(), graphs::graph_bs8()], true).as_bytes(),
    );
    let replay = common::write(
        dir.path(),
        "replay-TP-0.trace.json",
        graphs::replay_trace(&graphs::decode_steps()).as_bytes(),
    );
    let captures = read(&[&cap]);
    assert_eq!(captures.regions.len(), 2);
    // the warm-up launch before the first capture is not in any region
    assert_eq!(captures.files[0].launches, 2 * 5 + 2 * 4);
    let first = &captures.regions[0].launches[0];
    assert_eq!(captures.name(first.op), "aten::mm");
    assert_eq!(captures.name(first.kernel.unwrap()), "gemm_qkv_bs16");
    assert_eq!(
        captures.name(first.module.unwrap()),
        "Qwen3Model/Qwen3DecoderLayer/Attention"
    );

    // without captures: every graph kernel on the op around cudaGraphLaunch
    let before = summary(&replay, None).attribution;
    assert_eq!(of(&before.by_op, REPLAY_OP), (4, 27, 248 * 2 + 452 + 15));
    assert!(before.by_module.is_empty());
    assert_eq!(
        (
            before.graph_launches,
            before.graph_kernels,
            before.graph_kernels_unmatched
        ),
        (4, 27, 27)
    );
    assert!(before.capture.is_none());

    let a: Attribution = summary(&replay, Some(captures)).attribution;
    // steps of bs 8 and 4 replay the bs-8 graph (2 layers: GEMMs 30 + 40 µs, attention 50,
    // copy 4), the bs-12 step the bs-16 one (GEMMs 60 + 80, attention 70 + 10, copy 6)
    assert_eq!(of(&a.by_op, "aten::mm"), (12, 12, 2 * 2 * 70 + 2 * 140));
    assert_eq!(of(&a.by_op, "flash::decode"), (8, 8, 2 * 2 * 50 + 2 * 80));
    assert_eq!(of(&a.by_op, "aten::copy_"), (6, 6, 2 * 2 * 4 + 2 * 6));
    assert_eq!(of(&a.by_op, "aten::argmax"), (4, 4, 20));
    // the graph no capture holds stays where it was
    assert_eq!(of(&a.by_op, REPLAY_OP), (1, 1, 15));
    let total = |rows: &[AttributionRow]| rows.iter().map(|r| r.gpu_ns).sum::<i64>();
    assert_eq!(total(&a.by_op), total(&before.by_op));
    assert_eq!(
        of(&a.by_module, "Qwen3Model/Qwen3DecoderLayer/Attention").2,
        2 * 2 * 80 + 2 * 140
    );
    assert_eq!(
        of(&a.by_module, "Qwen3Model/Qwen3DecoderLayer/MLP").2,
        2 * 2 * 44 + 2 * 86
    );
    let layers: Vec<(&str, i64)> = a
        .by_layer
        .iter()
        .map(|r| (r.name.as_str(), r.gpu_ns / 1000))
        .collect();
    assert_eq!(
        layers,
        vec![
            ("Qwen3Model/Qwen3DecoderLayer_0", 2 * 124 + 226),
            ("Qwen3Model/Qwen3DecoderLayer_1", 2 * 124 + 226),
        ]
    );
    assert_eq!(
        (
            a.graph_launches,
            a.graph_kernels,
            a.graph_kernels_captured,
            a.graph_kernels_unmatched
        ),
        (4, 27, 26, 1)
    );
    let m = a.capture.as_ref().unwrap();
    assert_eq!(
        (
            m.regions,
            m.exact,
            m.greedy,
            m.grouped,
            m.unmatched_launches
        ),
        (2, 3, 0, 0, 1)
    );
    // positions in the step follow the captured launch order: the second aten::mm launch of
    // the bs-8 steps is layer 0's MLP GEMM (40 µs); the median over the 3 steps with it
    let p = a
        .positions
        .iter()
        .find(|p| p.op == "aten::mm" && p.position == 1)
        .unwrap();
    assert_eq!((p.steps, p.median_ns), (3, 40_000.0));
    // the step's launch-bound figures still count the one graph launch call
    assert_eq!(a.steps[0].launches, 2);
}

/// Two captures with the same kernel names (no `args.kernel`, as older profilers write) but
/// different ops: a folder's execution_details.json gives their batch sizes, and a step's
/// batch size picks the smallest capture at or above it.
#[test]
fn batch_size_chooses_among_equal_captures() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("captures");
    std::fs::create_dir(&folder).unwrap();
    let renamed = |op: &'static str| {
        let mut g = graphs::graph_bs8();
        for l in &mut g.per_layer {
            if l.op == "aten::mm" {
                l.op = op;
            }
        }
        g
    };
    common::write(
        &folder,
        "capture_8.json",
        graphs::capture_trace(&[renamed("mm_bs8")], false).as_bytes(),
    );
    common::write_gz(
        &folder,
        "capture_16.json.gz",
        graphs::capture_trace(&[renamed("mm_bs16")], false).as_bytes(),
    );
    std::fs::write(
        folder.join("execution_details.json"),
        r#"[{"file": "capture_16.json.gz", "batch_size": 16, "mode": "FULL"},
            {"file": "capture_8.json", "batch_size": 8, "mode": "FULL"}]"#,
    )
    .unwrap();
    let step = |bs| Step {
        batch_size: bs,
        replayed: graphs::graph_bs8().ops(),
        argmax_us: 5,
    };
    let replay = common::write(
        dir.path(),
        "replay.json",
        graphs::replay_trace(&[step(12), step(8), step(3), step(16)]).as_bytes(),
    );
    let captures = read(&[&folder]);
    assert_eq!(captures.files.len(), 2);
    assert_eq!(captures.regions[0].batch_size, Some(16));
    let a = summary(&replay, Some(captures)).attribution;
    // bs 12 and 16 -> the bs-16 capture; bs 8 and 3 -> the bs-8 one
    assert_eq!(of(&a.by_op, "mm_bs16"), (8, 8, 2 * 2 * 70));
    assert_eq!(of(&a.by_op, "mm_bs8"), (8, 8, 2 * 2 * 70));
    assert_eq!(a.graph_kernels_unmatched, 0);
    assert!(a.by_op.iter().all(|r| r.name != REPLAY_OP));
}

#[test]
fn a_replay_that_drops_a_captured_launch_matches_greedily() {
    let dir = tempfile::tempdir().unwrap();
    let cap = common::write(
        dir.path(),
        "cap.json",
        graphs::capture_trace(&[graphs::graph_bs8()], true).as_bytes(),
    );
    // the replay lacks layer 1's copy (a captured launch that did not show up in the replay)
    let mut ops = graphs::graph_bs8().ops();
    ops.remove(6);
    let replay = common::write(
        dir.path(),
        "replay.json",
        graphs::replay_trace(&[Step {
            batch_size: 8,
            replayed: ops,
            argmax_us: 5,
        }])
        .as_bytes(),
    );
    let a = summary(&replay, Some(read(&[&cap]))).attribution;
    let m = a.capture.unwrap();
    assert_eq!((m.exact, m.greedy), (0, 1));
    assert_eq!(of(&a.by_op, "aten::copy_"), (1, 1, 4));
    assert_eq!(of(&a.by_op, "aten::mm"), (4, 4, 140));
}

#[test]
fn no_matching_capture_leaves_the_numbers_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let cap = common::write(
        dir.path(),
        "cap.json",
        graphs::capture_trace(&[graphs::graph_bs16()], true).as_bytes(),
    );
    let steps: Vec<Step> = graphs::decode_steps()
        .into_iter()
        .filter(|s| s.batch_size != 12)
        .collect();
    let replay = common::write(
        dir.path(),
        "replay.json",
        graphs::replay_trace(&steps).as_bytes(),
    );
    let without = summary(&replay, None).attribution;
    let with = summary(&replay, Some(read(&[&cap]))).attribution;
    assert_eq!(with.by_op, without.by_op);
    assert_eq!(with.positions, without.positions);
    assert_eq!(with.graph_kernels_captured, 0);
    assert_eq!(with.graph_kernels_unmatched, 17);
    assert_eq!(with.capture.unwrap().unmatched_launches, 3);
}

#[test]
fn bad_capture_inputs_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = |p: &Path| {
        let sources = capture::sources(p);
        let e = match sources {
            Err(e) => e,
            Ok(s) => Captures::read(&s, &ReadOptions::default()).unwrap_err(),
        };
        e.to_string()
    };
    let junk = common::write(dir.path(), "junk.json", b"this is not JSON");
    let e = err(&junk);
    assert!(e.contains("junk.json") && e.contains("invalid JSON"), "{e}");
    let empty = common::write(dir.path(), "empty.json", br#"{"traceEvents": []}"#);
    let e = err(&empty);
    assert!(
        e.contains("empty.json") && e.contains("no trace events"),
        "{e}"
    );
    let replay = common::write(
        dir.path(),
        "replay.json",
        graphs::replay_trace(&graphs::decode_steps()).as_bytes(),
    );
    let e = err(&replay);
    assert!(
        e.contains("replay.json") && e.contains("StreamBeginCapture"),
        "{e}"
    );
    let e = err(&dir.path().join("absent.json.gz"));
    assert!(e.contains("absent.json.gz: cannot read"), "{e}");
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    let e = err(&folder);
    assert!(
        e.contains("folder") && e.contains("no capture traces"),
        "{e}"
    );
    std::fs::write(folder.join("execution_details.json"), b"{\"file\": 1}").unwrap();
    let e = err(&folder);
    assert!(e.contains("execution_details.json"), "{e}");
}

/// Begin and end calls pair on their own thread: a stray end before the first capture, a
/// begin never closed on another thread and a launch call without a correlation leave the
/// regions as the clean file has them, and are counted in a note.
#[test]
fn capture_calls_pair_per_thread_and_orphans_are_noted() {
    let dir = tempfile::tempdir().unwrap();
    let clean = graphs::capture_trace(&[graphs::graph_bs16(), graphs::graph_bs8()], true);
    let stray = [
        r#"{"ph":"X","cat":"cuda_runtime","name":"cudaStreamEndCapture","pid":1,"tid":2,"ts":500,"dur":5,"args":{"correlation":90}}"#,
        r#"{"ph":"X","cat":"cuda_runtime","name":"cudaStreamBeginCapture","pid":1,"tid":3,"ts":1001,"dur":5,"args":{"correlation":91}}"#,
        r#"{"ph":"X","cat":"cuda_runtime","name":"cudaLaunchKernel","pid":1,"tid":1,"ts":1012,"dur":1,"args":{"kernel":"stray_kernel"}}"#,
    ];
    let dirty = clean.replacen(
        "\"traceEvents\":[",
        &format!("\"traceEvents\":[{},", stray.join(",")),
        1,
    );
    assert_ne!(dirty, clean);
    let a = common::write(dir.path(), "clean.json", clean.as_bytes());
    let b = common::write(dir.path(), "dirty.json", dirty.as_bytes());
    let (a, b) = (read(&[&a]), read(&[&b]));
    assert_eq!(a.regions.len(), 2);
    assert!(a.notes.is_empty(), "{:?}", a.notes);
    assert_eq!(b.regions, a.regions);
    assert_eq!(b.names, a.names);
    assert_eq!(b.files[0].regions, 2);
    assert_eq!(b.notes.len(), 1, "{:?}", b.notes);
    let n = &b.notes[0];
    assert!(n.starts_with(&format!(
        "{}: left out ",
        dir.path().join("dirty.json").display()
    )));
    for part in [
        "1 capture begin(s) without an end",
        "1 capture end(s) without a begin",
        "1 launch call(s) in a region without a correlation",
    ] {
        assert!(n.contains(part), "{part}: {n}");
    }

    // Only unpaired calls, or only empty regions: an error that says what it found.
    let error_of = |name: &str, text: &str| {
        let p = common::write(dir.path(), name, text.as_bytes());
        Captures::read(&capture::sources(&p).unwrap(), &ReadOptions::default())
            .unwrap_err()
            .to_string()
    };
    let only_stray = format!(r#"{{"traceEvents":[{},{}]}}"#, stray[0], stray[1]);
    let e = error_of("stray.json", &only_stray);
    assert!(
        e.contains("stray.json")
            && e.contains("1 begin(s) without an end, 1 end(s) without a begin"),
        "{e}"
    );
    let hollow = r#"{"traceEvents":[
        {"ph":"X","cat":"cuda_runtime","name":"cudaStreamBeginCapture","pid":1,"tid":1,"ts":10,"dur":5,"args":{"correlation":1}},
        {"ph":"X","cat":"cuda_runtime","name":"cudaStreamEndCapture","pid":1,"tid":1,"ts":50,"dur":5,"args":{"correlation":2}}]}"#;
    let e = error_of("hollow.json", hollow);
    assert!(
        e.contains("hollow.json")
            && e.contains("no CUDA-graph capture region with a launch call")
            && e.contains("1 region(s) without a launch call"),
        "{e}"
    );
}

/// execution_details.json: a batch size that is not a whole number, or a list naming nothing,
/// is an error naming the entry, not a capture without a batch size.
#[test]
fn execution_details_batch_sizes_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("caps");
    std::fs::create_dir(&folder).unwrap();
    let write = |text: &str| std::fs::write(folder.join("execution_details.json"), text).unwrap();
    for (bs, shown) in [
        ("8.5", "8.5"),
        ("\"bs8\"", "\"bs8\""),
        ("-1", "-1"),
        ("true", "true"),
    ] {
        write(&format!(
            r#"[{{"file": "a.json", "batch_size": 4}}, {{"file": "b.json", "batch_size": {bs}}}]"#
        ));
        let e = capture::sources(&folder).unwrap_err().to_string();
        assert!(
            e.contains("execution_details.json")
                && e.contains(&format!(
                    "entry 1 (b.json): batch_size {shown} is not a whole number"
                )),
            "{bs}: {e}"
        );
    }
    write(
        r#"[{"file": "a.json", "batch_size": " 16 "}, {"file": "b.json", "batch_size": null}, {"file": "c.json"}]"#,
    );
    let s = capture::sources(&folder).unwrap();
    let sizes: Vec<Option<u64>> = s.iter().map(|c| c.batch_size).collect();
    assert_eq!(sizes, [Some(16), None, None]);
    write("[]");
    let e = capture::sources(&folder).unwrap_err().to_string();
    assert!(
        e.contains("execution_details.json") && e.contains("names no capture trace"),
        "{e}"
    );
}
