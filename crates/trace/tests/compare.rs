//! `ranks` and `diff` on real and generated traces.

mod common;

use common::{data, write};
use loupe_trace::analyze::diff::{Change, diff};
use loupe_trace::analyze::ranks::compare;
use loupe_trace::analyze::summarize;
use loupe_trace::analyze::summary::TraceSummary;
use loupe_trace::import::{Input, ReadOptions};

fn summary_of(path: &std::path::Path, index: usize) -> TraceSummary {
    summarize(
        &Input::open(path, None).unwrap(),
        &ReadOptions::default(),
        index,
    )
    .unwrap()
}

#[test]
fn ranks_match_steps_and_find_the_latecomer() {
    let s = [
        summary_of(&data("sampled_rank-0.json.gz"), 0),
        summary_of(&data("sampled_rank-1.json.gz"), 1),
    ];
    let r = compare(&s, 10);
    let labels: Vec<&str> = r.ranks.iter().map(|x| x.label.as_str()).collect();
    assert_eq!(labels, ["[RANK00]", "[RANK01]"]);
    let steps: Vec<&str> = r.steps.iter().map(|x| x.step.as_str()).collect();
    assert_eq!(steps, ["551", "552"]);
    // Start of each rank's last NCCL kernel per step, from Python over the same files:
    // rank 1 is 84 us late in step 551 and 1292 us late in step 552.
    assert_eq!(r.steps[0].latecomer, Some(1));
    assert_eq!(r.steps[0].lateness_ns, Some(84_000));
    assert_eq!(r.steps[1].lateness_ns, Some(1_292_000));
    assert_eq!(r.straggler.as_deref(), Some("[RANK01]"));
    assert_eq!(r.stragglers[0].late_steps, 2);
    assert_eq!(r.stragglers[0].mean_lateness_ns, (84_000 + 1_292_000) / 2);
    // Imbalance is max/mean of the cells shown.
    for st in &r.steps {
        let c: Vec<i64> = st
            .per_rank
            .iter()
            .map(|c| c.unwrap().computation_ns)
            .collect();
        let expected = *c.iter().max().unwrap() as f64 / (c.iter().sum::<i64>() as f64 / 2.0);
        assert!((st.compute_imbalance.unwrap() - expected).abs() < 1e-12);
        assert!(expected > 1.1, "rank 1 computes more in every step");
    }
    assert_eq!(r.key_ops.len(), 10);
    assert!(r.key_ops[0].name.starts_with("ncclKernel_SendRecv"));
    assert_eq!(
        r.key_ops[0].total_ns,
        vec![396_199_000, s[1].kernels[0].total_ns]
    );
}

#[test]
fn diff_classifies_operations() {
    let dir = tempfile::tempdir().unwrap();
    let trace = |gemm_us: u32, extra: &str| {
        format!(
            r#"{{"traceEvents": [
            {{"ph": "X", "cat": "kernel", "name": "gemm", "pid": 0, "tid": 7, "ts": 0, "dur": {gemm_us}}},
            {{"ph": "X", "cat": "kernel", "name": "gemm", "pid": 0, "tid": 7, "ts": 100, "dur": {gemm_us}}},
            {{"ph": "X", "cat": "kernel", "name": "norm", "pid": 0, "tid": 7, "ts": 200, "dur": 5}},
            {{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 0, "dur": 3}}{extra}
            ]}}"#
        )
    };
    let a = write(dir.path(), "a.json", trace(10, "").as_bytes());
    let b = write(
        dir.path(),
        "b.json",
        trace(
            25,
            r#", {"ph": "X", "cat": "kernel", "name": "ncclDevKernel_AllReduce", "pid": 0, "tid": 9, "ts": 300, "dur": 40}"#,
        )
        .as_bytes(),
    );
    let d = diff(&summary_of(&a, 0), &summary_of(&b, 1), 0.05);
    let row = |n: &str| d.rows.iter().find(|r| r.name == n);
    let gemm = row("gemm").unwrap();
    assert_eq!(gemm.change, Change::Slower);
    assert_eq!((gemm.calls_a, gemm.calls_b, gemm.delta_ns), (2, 2, 30_000));
    assert_eq!(
        row("ncclDevKernel_AllReduce").unwrap().change,
        Change::Added
    );
    assert!(
        row("norm").is_none(),
        "unchanged operations are counted, not listed"
    );
    let count = |c: Change| d.counts.iter().find(|(x, _)| *x == c).unwrap().1;
    assert_eq!(
        (
            count(Change::Added),
            count(Change::Slower),
            count(Change::Unchanged)
        ),
        (1, 1, 2)
    );
    assert_eq!(d.timeline_b.total_comm_ns, 40_000);
    // Largest change first.
    assert_eq!(d.rows[0].name, "ncclDevKernel_AllReduce");

    let same = diff(&summary_of(&a, 0), &summary_of(&a, 0), 0.0);
    assert!(same.rows.is_empty());
}

#[test]
fn stragglers_are_found_by_modern_nccl_kernel_names() {
    // Two SGLang-style decode ranks (`step[DECODE ...]` spans, no M events) whose only
    // collectives are `ncclDevKernel_*` (HTA matches `ncclKernel` and finds nothing here,
    // HTA#360). Rank 1 reaches the all-reduce 700 us late in steps 0 and 2, 50 us late in
    // step 1, and computes 20% more.
    let dir = tempfile::tempdir().unwrap();
    let nccl = "ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<4096ul>)";
    let rank = |r: usize, late_us: [u32; 3], gemm_us: u32| {
        let mut events = Vec::new();
        for (step, late) in late_us.iter().enumerate() {
            let t = 10_000 * step as u32;
            events.push(format!(
                r#"{{"ph": "X", "cat": "user_annotation", "name": "step[DECODE bs=8]", "pid": 100, "tid": 100, "ts": {t}, "dur": 9000}}"#
            ));
            events.push(format!(
                r#"{{"ph": "X", "cat": "kernel", "name": "gemm", "pid": {r}, "tid": 7, "ts": {}, "dur": {gemm_us}}}"#,
                t + 100
            ));
            events.push(format!(
                r#"{{"ph": "X", "cat": "kernel", "name": "{nccl}", "pid": {r}, "tid": 20, "ts": {}, "dur": {}}}"#,
                t + 3000 + late,
                1000 - late
            ));
        }
        let text = format!(
            r#"{{"baseTimeNanoseconds": 1727743122000000000, "traceEvents": [{}]}}"#,
            events.join(",\n")
        );
        write(dir.path(), &format!("p-TP-{r}.trace.json"), text.as_bytes())
    };
    let s = [
        summary_of(&rank(0, [0, 0, 0], 2000), 0),
        summary_of(&rank(1, [700, 50, 700], 2400), 1),
    ];
    let r = compare(&s, 5);
    let labels: Vec<&str> = r.ranks.iter().map(|x| x.label.as_str()).collect();
    assert_eq!(labels, ["[TP00]", "[TP01]"]);
    assert_eq!(r.steps.len(), 3);
    let late: Vec<_> = r
        .steps
        .iter()
        .map(|st| (st.latecomer, st.lateness_ns))
        .collect();
    assert_eq!(
        late,
        [
            (Some(1), Some(700_000)),
            (Some(1), Some(50_000)),
            (Some(1), Some(700_000))
        ]
    );
    assert_eq!(r.straggler.as_deref(), Some("[TP01]"));
    for st in &r.steps {
        // max / mean of 2000 and 2400 us.
        assert!((st.compute_imbalance.unwrap() - 2400.0 / 2200.0).abs() < 1e-12);
    }
    assert!(s.iter().all(|x| x.timeline.total_comm_ns > 0));
}
