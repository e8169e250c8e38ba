//! `merge`: labels, time alignment through `baseTimeNanoseconds`, flow ids kept apart,
//! filters, and an output loupe (and Python) reads back.

mod common;

use std::collections::{HashMap, HashSet};

use common::{data, gunzip, gzip, read_all, write};
use loupe_trace::export::merge::{CategoryFilter, merge};
use loupe_trace::import::{Input, ReadOptions};
use loupe_trace::{Event, Id, Phase};

fn run(files: &[std::path::PathBuf], out: &std::path::Path, filter: CategoryFilter) {
    let inputs: Vec<Input> = files
        .iter()
        .map(|f| Input::open(f, None).unwrap())
        .collect();
    merge(&inputs, out, &ReadOptions::default(), &filter).unwrap();
}

fn pid_label(e: &Event<'_>) -> String {
    match &e.pid {
        Id::Str(s) => s.split(']').next().unwrap().to_string() + "]",
        Id::Int(v) => panic!("numeric pid {v} left in a merged trace"),
    }
}

#[test]
fn two_ranks_are_labelled_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged.json.gz");
    // Command-line order does not matter: output follows the ranks.
    let files = [
        data("sampled_rank-1.json.gz"),
        data("sampled_rank-0.json.gz"),
    ];
    run(&files, &out, CategoryFilter::default());
    let (info, merged) = read_all(&out);

    let mut expected = 0;
    for (label, f) in [("[RANK00]", &files[1]), ("[RANK01]", &files[0])] {
        let (_, evs) = read_all(f);
        let is_proc_meta =
            |e: &Event<'_>| e.ph == Phase::METADATA && e.name.starts_with("process_");
        let pids: HashSet<String> = evs.iter().map(|e| e.pid.to_string()).collect();
        let kept: Vec<&Event<'_>> = evs.iter().filter(|e| !is_proc_meta(e)).collect();
        expected += kept.len() + 2 * pids.len();
        let ours: Vec<&Event<'_>> = merged
            .iter()
            .filter(|e| pid_label(e) == label && !is_proc_meta(e))
            .collect();
        assert_eq!(ours.len(), kept.len(), "{label}");
        // Same events, same order, same times (absolute microseconds, no base: no shift).
        for (a, b) in kept.iter().zip(&ours) {
            assert_eq!((&a.name, a.ts, a.dur), (&b.name, b.ts, b.dur));
            assert_eq!(format!("{label} {}", a.pid), b.pid.to_string());
        }
    }
    assert_eq!(merged.len(), expected);
    assert_eq!(info.base_ns, None);
    // Ranks in order, each process named after its rank.
    let first_rank1 = merged
        .iter()
        .position(|e| pid_label(e) == "[RANK01]")
        .unwrap();
    assert!(
        merged[..first_rank1]
            .iter()
            .all(|e| pid_label(e) == "[RANK00]")
    );
    let names: Vec<String> = merged
        .iter()
        .filter(|e| e.name == "process_name")
        .filter_map(|e| e.arg("name")?.as_str().map(str::to_string))
        .collect();
    for expected in [
        "[RANK01] pyper:trainer:0:1 (GPU 1)",
        "[RANK01] pyper:trainer:0:1 (CPU)",
        "[RANK01] Spans",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
    assert!(names.iter().all(|n| n.starts_with("[RANK0")), "{names:?}");
    let ranks = info.other.iter().find(|(k, _)| k == "loupeMerge").unwrap();
    assert!(ranks.1.contains("\"world_size\": 128"));
}

/// The triton trace (time base after the events, `ac2g` flows) as two ranks, the second
/// with its base one second later.
fn two_modern_ranks(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let json = String::from_utf8(gunzip(&data("triton_example.json.gz"))).unwrap();
    let later = json.replace(
        "\"baseTimeNanoseconds\": 1727743122000000000",
        "\"baseTimeNanoseconds\": 1727743123000000000",
    );
    assert_ne!(json, later);
    vec![
        write(dir, "run-TP-0.trace.json", json.as_bytes()),
        write(dir, "run-TP-1.trace.json.gz", &gzip(later.as_bytes())),
    ]
}

#[test]
fn aligns_time_bases_and_keeps_flows_apart() {
    let dir = tempfile::tempdir().unwrap();
    let files = two_modern_ranks(dir.path());
    let out = dir.path().join("merged.json");
    run(&files, &out, CategoryFilter::default());
    let (info, merged) = read_all(&out);
    assert_eq!(info.base_ns, Some(1_727_743_122_000_000_000));

    let step = |label: &str| {
        merged
            .iter()
            .find(|e| e.name == "ProfilerStep#1" && pid_label(e) == label)
            .unwrap()
            .ts
            .unwrap()
    };
    assert_eq!(step("[TP01]") - step("[TP00]"), 1_000_000_000);

    // Every flow id belongs to one rank only, and within a rank start and end still pair.
    let mut owner: HashMap<i64, String> = HashMap::new();
    let mut ends: HashMap<(String, i64), Vec<u8>> = HashMap::new();
    for e in merged.iter().filter(|e| e.ph.is_flow()) {
        let Some(Id::Int(id)) = e.id else {
            panic!("flow without integer id")
        };
        let label = pid_label(e);
        let prev = owner.insert(id, label.clone());
        assert!(
            prev.is_none() || prev.as_deref() == Some(label.as_str()),
            "id {id} crosses ranks"
        );
        ends.entry((label, id)).or_default().push(e.ph.0);
    }
    assert_eq!(owner.len(), 2 * 2, "two flow ids per rank");
    let paired = ends
        .values()
        .filter(|v| v.contains(&b's') && v.contains(&b'f'))
        .count();
    assert_eq!(paired, 2, "one complete s/f pair per rank");
}

#[test]
fn filters_drop_categories() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.json.gz");
    run(
        &[data("sglang_Qwen3-8B_decode.json.gz")],
        &out,
        CategoryFilter {
            drop: vec!["python_function".into()],
            keep: None,
        },
    );
    let (_, merged) = read_all(&out);
    assert!(!merged.iter().any(|e| e.cat == "python_function"));
    // 2058 events, 821 python_function, plus process metadata for the two processes.
    assert_eq!(merged.len(), 2058 - 821 + 4);
}

#[test]
fn process_metadata_comes_in_sort_order_whatever_thread_met_the_process_first() {
    // Processes first appear in the order 9, "Spans", 1, GPU 0, each in a different part of
    // a trace that spans several parsing blocks; the output lists them as viewers sort them:
    // CPU processes by pid, pseudo-processes, then GPUs.
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("{\"traceEvents\": [");
    let parts = [
        (r#""pid": 9, "tid": 9, "cat": "cpu_op""#, "op"),
        (r#""pid": "Spans", "tid": "x", "cat": "Trace""#, "span"),
        (r#""pid": 1, "tid": 1, "cat": "cpu_op""#, "op"),
        (r#""pid": 0, "tid": 7, "cat": "kernel""#, "k"),
    ];
    let mut first = true;
    for (who, name) in parts {
        for i in 0..12_000 {
            if !first {
                text.push_str(",\n");
            }
            first = false;
            text.push_str(&format!(
                r#"{{"ph": "X", "name": "{name}", {who}, "ts": {i}, "dur": 1}}"#
            ));
        }
    }
    text.push_str("]}");
    assert!(text.len() > 3 << 20);
    let input = write(dir.path(), "p-TP-0.trace.json", text.as_bytes());
    let mut outputs = Vec::new();
    for round in 0..3 {
        let out = dir.path().join(format!("merged{round}.json"));
        run(
            std::slice::from_ref(&input),
            &out,
            CategoryFilter::default(),
        );
        outputs.push(std::fs::read(&out).unwrap());
    }
    assert!(outputs.iter().all(|o| *o == outputs[0]), "merges differ");
    let (_, merged) = read_all(&dir.path().join("merged0.json"));
    let order: Vec<String> = merged
        .iter()
        .filter(|e| e.name == "process_sort_index")
        .map(|e| e.pid.to_string())
        .collect();
    assert_eq!(
        order,
        ["[TP00] 1", "[TP00] 9", "[TP00] Spans", "[TP00] 0"],
        "{order:?}"
    );
}
