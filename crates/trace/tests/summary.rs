//! `summary` on real traces: TraceLens's golden GPU timeline, per-name statistics checked
//! against Python's reading of the same files, steps and stages.

mod common;

use common::data;
use loupe_trace::analyze::summarize;
use loupe_trace::analyze::summary::{TraceSummary, stages};
use loupe_trace::import::{Input, ReadOptions};
use loupe_trace::rank::Stage;

fn summary(file: &str) -> TraceSummary {
    let input = Input::open(&data(file), None).unwrap();
    summarize(&input, &ReadOptions::default(), 0).unwrap()
}

#[test]
fn gpu_timeline_matches_tracelens_within_half_a_percent() {
    let s = summary("sglang_Qwen3-8B_decode.json.gz");
    let csv =
        std::fs::read_to_string(data("sglang_Qwen3-8B_decode.gpu_timeline.expected.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("type,time ms,percent"));
    let ours = s.timeline.rows();
    let mut checked = 0;
    for line in lines {
        let cols: Vec<&str> = line.split(',').collect();
        let expected_ms: f64 = cols[1].parse().unwrap();
        let expected_pct: f64 = cols[2].parse().unwrap();
        let (_, ns) = ours.iter().find(|(n, _)| *n == cols[0]).unwrap();
        let ms = *ns as f64 / 1e6;
        let pct = *ns as f64 * 100.0 / s.timeline.total_ns as f64;
        let close = |a: f64, b: f64| (a - b).abs() <= 0.005 * b.abs().max(1e-12);
        assert!(
            close(ms, expected_ms),
            "{}: {ms} ms vs {expected_ms}",
            cols[0]
        );
        assert!(
            close(pct, expected_pct),
            "{}: {pct}% vs {expected_pct}",
            cols[0]
        );
        checked += 1;
    }
    assert_eq!(checked, 8);
    // Exact in integer nanoseconds (TraceLens's float microseconds round the last digits).
    assert_eq!(s.timeline.computation_ns, 9_759_749);
    assert_eq!(s.timeline.total_ns, 473_749_943);
}

#[test]
fn per_name_statistics_match_a_direct_count() {
    // Reference values: Python json.load of the same file, Decimal sums of `dur`.
    let s = summary("sampled_rank-0.json.gz");
    assert_eq!(s.kernels.len(), 199);
    let top = &s.kernels[0];
    assert!(
        top.name
            .starts_with("ncclKernel_SendRecv_RING_SIMPLE_Sum_int8_t")
    );
    assert_eq!((top.calls, top.total_ns), (10, 396_199_000));
    assert_eq!(s.ops.len(), 162);
    assert_eq!(
        (s.ops[0].name.as_str(), s.ops[0].calls, s.ops[0].total_ns),
        ("forward", 6, 264_862_000)
    );
    let memcpy = summary("mi250_minitoy_train_ROCm6_2_kineto.json.gz");
    let k = &memcpy.kernels[0];
    assert_eq!(
        (k.name.as_str(), k.calls, k.total_ns),
        ("Memcpy HtoD (Host -> Device)", 2, 38_161)
    );
    let cats = &s.categories;
    assert_eq!(cats[0].category, "cpu_op");
    assert_eq!(cats[0].events, 2329);
}

#[test]
fn steps_and_stages() {
    let s = summary("sampled_rank-0.json.gz");
    let numbers: Vec<Option<u64>> = s.steps.iter().map(|t| t.number).collect();
    assert_eq!(numbers, vec![Some(551), Some(552)]);
    assert_eq!(s.steps[0].span_ns, 607_312_000);
    assert_eq!(s.steps[1].span_ns, 622_928_000);
    // The NCCL kernels run inside the steps.
    let comm: i64 = s.steps.iter().map(|t| t.gpu.comm_ns).sum();
    assert!(comm > 0 && comm <= s.timeline.total_comm_ns);

    let d = summary("sglang_Qwen3-8B_decode.json.gz");
    let st = stages(std::slice::from_ref(&d));
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].stage, Some(Stage::Decode));
    assert_eq!(st[0].steps, 1);
    // All GPU work but one 4.246 us kernel (left from the step before) follows the decode
    // step's start.
    assert_eq!(st[0].gpu_ops, 557);
    assert_eq!(st[0].gpu_busy_ns, d.timeline.busy_ns - 4_246);
}

#[test]
fn a_name_shared_by_a_kernel_and_a_memcpy_keeps_each_category_s_class() {
    // The per-name cache of kernel classes must not turn the memcpy into compute (or the
    // kernel into memcpy) depending on which came first.
    let dir = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    for i in 0..100 {
        let cat = if i % 2 == 0 { "kernel" } else { "gpu_memcpy" };
        events.push(format!(
            r#"{{"ph": "X", "cat": "{cat}", "name": "copy", "pid": 0, "tid": 7, "ts": {}, "dur": 3}}"#,
            10 * i
        ));
    }
    let text = format!(r#"{{"traceEvents": [{}]}}"#, events.join(", "));
    let path = common::write(dir.path(), "shared.json", text.as_bytes());
    let s = summarize(
        &Input::open(&path, None).unwrap(),
        &ReadOptions::default(),
        0,
    )
    .unwrap();
    assert_eq!(s.timeline.computation_ns, 50 * 3_000);
    assert_eq!(s.timeline.total_memcpy_ns, 50 * 3_000);
    assert_eq!(s.timeline.exposed_memcpy_ns, 50 * 3_000);
    assert_eq!(
        (s.kernels[0].name.as_str(), s.kernels[0].calls),
        ("copy", 100)
    );
}
