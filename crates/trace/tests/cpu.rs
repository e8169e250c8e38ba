//! CPU-only traces: self time, torch's key_averages by input shape (against torch's own table
//! of the same profile), steps and the per-rank CPU comparison of a gloo job.

mod common;

use loupe_trace::analyze::host::HostKind;
use loupe_trace::analyze::summary::TraceSummary;
use loupe_trace::analyze::{ranks, summarize};
use loupe_trace::import::{Input, ReadOptions};

fn summary(file: &str, index: usize) -> TraceSummary {
    let input = Input::open(&common::data(file), None).unwrap();
    summarize(&input, &ReadOptions::default(), index).unwrap()
}

#[derive(serde::Deserialize)]
struct TorchRow {
    name: String,
    input_shapes: String,
    calls: u64,
    self_cpu_us: f64,
    cpu_total_us: f64,
}

#[test]
fn group_by_shape_matches_torch_key_averages() {
    let s = summary("cpu_mlp.trace.json.gz", 0);
    let torch: Vec<TorchRow> = serde_json::from_str(
        &std::fs::read_to_string(common::data("cpu_mlp.key_averages.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        s.host.by_shape.len(),
        torch.len(),
        "one row per (name, shapes)"
    );
    for t in &torch {
        let ours = s
            .host
            .by_shape
            .iter()
            .find(|r| r.name == t.name && r.input_dims == t.input_shapes)
            .unwrap_or_else(|| panic!("no row {} {}", t.name, t.input_shapes));
        assert_eq!(ours.calls, t.calls, "{} {}", t.name, t.input_shapes);
        // the trace keeps nanoseconds: at most one per event apart
        let tol = 0.001 * t.calls as f64 + 1e-9;
        let self_us = ours.self_ns as f64 / 1000.0;
        let total_us = ours.total_ns as f64 / 1000.0;
        // ProfilerStep*'s self time is 1.0% lower than torch's (174.62 vs 176.44 us): torch's
        // tree has 1.8 us less under the steps than the exported trace nests there; every
        // other row agrees to the nanosecond per call.
        let self_tol = if t.name == "ProfilerStep*" {
            t.self_cpu_us * 0.015
        } else {
            tol * 2.0
        };
        assert!(
            (self_us - t.self_cpu_us).abs() <= self_tol,
            "{} {}: self {self_us} vs torch {}",
            t.name,
            t.input_shapes,
            t.self_cpu_us
        );
        assert!(
            (total_us - t.cpu_total_us).abs() <= tol,
            "{} {}: total {total_us} vs torch {}",
            t.name,
            t.input_shapes,
            t.cpu_total_us
        );
    }
    // torch's table order (sort_by="self_cpu_time_total"), as its printed table lists it
    let table = std::fs::read_to_string(common::data("cpu_mlp.key_averages.txt")).unwrap();
    let printed: Vec<(String, String)> = table
        .lines()
        .filter(|l| l.contains('%') && l.contains('['))
        .map(|l| {
            let name = l.split_whitespace().next().unwrap().to_string();
            let shapes = l[l.find('[').unwrap()..].trim().to_string();
            (name, shapes)
        })
        .collect();
    // Equal self times (to the ns) print in an order only torch's float rounding decides, so
    // position by position the self times must agree, and the rows otherwise be the same.
    assert_eq!(printed.len(), s.host.by_shape.len());
    for (i, (p, ours)) in printed.iter().zip(&s.host.by_shape).enumerate() {
        let t = torch
            .iter()
            .find(|t| t.name == p.0 && t.input_shapes == p.1)
            .unwrap();
        let tol = if t.name == "ProfilerStep*" {
            2.0
        } else {
            0.002 * t.calls as f64
        };
        assert!(
            (ours.self_ns as f64 / 1000.0 - t.self_cpu_us).abs() <= tol,
            "row {i}: torch prints {p:?}, loupe {} {}",
            ours.name,
            ours.input_dims
        );
        if (ours.name.as_str(), ours.input_dims.as_str()) != (p.0.as_str(), p.1.as_str()) {
            assert!(
                s.host
                    .by_shape
                    .iter()
                    .any(|r| (r.name.as_str(), r.input_dims.as_str())
                        == (p.0.as_str(), p.1.as_str())
                        && r.self_ns == ours.self_ns),
                "row {i}: {p:?} is not a tie with {}",
                ours.name
            );
        }
    }
}

#[test]
fn self_time_counts_nested_python_frames_once() {
    let s = summary("cpu_mlp.trace.json.gz", 0);
    assert!(
        s.timeline.total_ns == 0 && s.kernels.is_empty(),
        "a CPU-only trace"
    );
    let python = |f: fn(&loupe_trace::analyze::host::SelfTimeRow) -> i64| -> i64 {
        s.host
            .self_time
            .iter()
            .filter(|r| r.kind == HostKind::PythonFunction)
            .map(f)
            .sum()
    };
    // the category table's inclusive sum counts every nesting level ...
    assert!(python(|r| r.total_ns) > 3 * s.span_ns);
    // ... self time splits one thread's time without overlap
    assert!(python(|r| r.self_ns) <= s.span_ns);
    assert!(python(|r| r.self_ns) > 0);
    let step = s
        .host
        .self_time
        .iter()
        .find(|r| r.name == "ProfilerStep#1")
        .unwrap();
    assert!(step.self_ns < step.total_ns);
    assert_eq!(s.steps.len(), 3);
    assert!(s.steps.iter().all(|t| t.cpu.compute_ns > 0));
}

#[test]
fn a_cpu_only_gloo_job_names_its_straggler() {
    let s = vec![
        summary("cpu_gloo-rank0.trace.json.gz", 0),
        summary("cpu_gloo-rank1.trace.json.gz", 1),
    ];
    for r in &s {
        assert_eq!(r.steps.len(), 4);
        assert!(r.steps.iter().all(|t| t.cpu.collective_ns > 0));
    }
    let report = ranks::compare(&s, 5);
    assert_eq!(report.ranks.len(), 2);
    let (r0, r1) = (&report.ranks[0], &report.ranks[1]);
    assert!(
        r1.cpu_compute_ns > 3 * r0.cpu_compute_ns,
        "rank 1 computes seven times as much: {} vs {}",
        r1.cpu_compute_ns,
        r0.cpu_compute_ns
    );
    assert!(r0.collective_ns > r1.collective_ns, "rank 0 waits for it");
    assert_eq!(report.straggler.as_deref(), Some(r1.label.as_str()));
    for step in &report.steps {
        assert_eq!(step.latecomer, Some(1), "step {}", step.step);
        assert!(step.cpu_compute_imbalance.unwrap() > 1.5);
    }
}

#[test]
fn a_repeated_top_level_span_makes_the_steps() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    for i in 0..5 {
        let t = i * 1000;
        events.push(format!(
            r#"{{"ph":"X","cat":"user_annotation","name":"forward","pid":1,"tid":1,"ts":{t},"dur":800}}"#
        ));
        events.push(format!(
            r#"{{"ph":"X","cat":"cpu_op","name":"aten::mm","pid":1,"tid":1,"ts":{},"dur":500}}"#,
            t + 100
        ));
    }
    events.push(
        r#"{"ph":"X","cat":"user_annotation","name":"setup","pid":1,"tid":1,"ts":6000,"dur":10}"#
            .into(),
    );
    let path = common::write(
        dir.path(),
        "plain.json",
        format!(r#"{{"traceEvents":[{}]}}"#, events.join(",")).as_bytes(),
    );
    let s = summarize(
        &Input::open(&path, None).unwrap(),
        &ReadOptions::default(),
        0,
    )
    .unwrap();
    assert_eq!(s.steps.len(), 5);
    assert_eq!(s.steps[2].start_ns, 2_000_000);
    assert_eq!(s.steps[2].cpu.compute_ns, 500_000);
}
