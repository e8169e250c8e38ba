//! Kernels attributed to their launching ops (through correlation, no flows needed), modules
//! and layers; `diff` pairing the same work on two GPU vendors by op and position in the step;
//! `--fail-if` conditions.

mod common;

use std::path::{Path, PathBuf};

use loupe_trace::analyze::diff::{Change, diff};
use loupe_trace::analyze::gate::FailIf;
use loupe_trace::analyze::summarize;
use loupe_trace::analyze::summary::TraceSummary;
use loupe_trace::import::{Input, ReadOptions};

fn summary(path: &Path) -> TraceSummary {
    summarize(
        &Input::open(path, None).unwrap(),
        &ReadOptions::default(),
        0,
    )
    .unwrap()
}

/// One step per entry of `mm_us`: `nn.Module: Layer_i` > `aten::mm` > launch > gemm kernel,
/// then `aten::add` > launch > add kernel (`add_us[step]` µs).
fn vendor_trace(
    dir: &Path,
    file: &str,
    launch: &str,
    gemm: &str,
    mm_us: &[i64],
    add_us: &[i64],
) -> PathBuf {
    let mut ev = Vec::new();
    let mut corr = 0;
    let x = |cat: &str, name: &str, tid: u32, ts: i64, dur: i64, args: String| {
        format!(
            r#"{{"ph":"X","cat":"{cat}","name":"{name}","pid":1,"tid":{tid},"ts":{ts},"dur":{dur},"args":{{{args}}}}}"#
        )
    };
    for (step, (&mm, &add)) in mm_us.iter().zip(add_us).enumerate() {
        let t = step as i64 * 10_000;
        ev.push(x(
            "user_annotation",
            &format!("ProfilerStep#{step}"),
            1,
            t,
            9_000,
            String::new(),
        ));
        for layer in 0..2 {
            let l = t + 100 + layer * 4_000;
            ev.push(x(
                "python_function",
                &format!("nn.Module: DecoderLayer_{layer}"),
                1,
                l,
                3_000,
                String::new(),
            ));
            ev.push(x(
                "python_function",
                "nn.Module: MLP_0",
                1,
                l + 10,
                2_000,
                String::new(),
            ));
            for (op, kernel, dur, at) in [
                ("aten::mm", gemm, mm, 20),
                ("aten::add", "add_kernel", add, 500),
            ] {
                corr += 1;
                ev.push(x("cpu_op", op, 1, l + at, 50, String::new()));
                ev.push(x(
                    "cuda_runtime",
                    launch,
                    1,
                    l + at + 5,
                    10,
                    format!(r#""correlation":{corr}"#),
                ));
                ev.push(x(
                    "kernel",
                    kernel,
                    7,
                    l + at + 1_000,
                    dur,
                    format!(r#""stream":7,"correlation":{corr}"#),
                ));
            }
        }
    }
    common::write(
        dir,
        file,
        format!(r#"{{"traceEvents":[{}]}}"#, ev.join(",")).as_bytes(),
    )
}

#[test]
fn kernels_go_to_their_op_module_and_layer() {
    let dir = tempfile::tempdir().unwrap();
    let p = vendor_trace(
        dir.path(),
        "a.json",
        "cudaLaunchKernel",
        "sm90_gemm",
        &[100, 100],
        &[10, 10],
    );
    let s = summary(&p);
    let a = &s.attribution;
    assert_eq!(a.unattributed, 0);
    let mm = a.by_op.iter().find(|r| r.name == "aten::mm").unwrap();
    assert_eq!((mm.launches, mm.kernels, mm.gpu_ns), (4, 4, 400_000));
    assert_eq!(a.by_module[0].name, "DecoderLayer/MLP");
    assert_eq!(a.by_module[0].gpu_ns, 4 * 110_000);
    let layers: Vec<&str> = a.by_layer.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(layers, vec!["DecoderLayer_0", "DecoderLayer_1"]);
    assert_eq!(a.by_layer[0].gpu_ns, 2 * 110_000);
    // each step: 4 launches of 10 us against 220 us of GPU work
    assert_eq!(a.steps.len(), 2);
    assert_eq!(
        (
            a.steps[0].launches,
            a.steps[0].launch_ns,
            a.steps[0].gpu_ns,
            a.steps[0].launch_bound
        ),
        (4, 40_000, 220_000, false)
    );
    let tiny = vendor_trace(
        dir.path(),
        "b.json",
        "cudaLaunchKernel",
        "sm90_gemm",
        &[2, 2],
        &[1, 1],
    );
    assert!(
        summary(&tiny)
            .attribution
            .steps
            .iter()
            .all(|t| t.launch_bound)
    );
}

#[test]
fn the_same_model_on_two_vendors_diffs_by_op() {
    let dir = tempfile::tempdir().unwrap();
    let h100 = vendor_trace(
        dir.path(),
        "h100.json",
        "cudaLaunchKernel",
        "sm90_xmma_gemm",
        &[100; 5],
        &[10; 5],
    );
    // The MI300 run: every kernel name differs; its GEMMs are 50% slower, and one step's adds
    // are an outlier that a median over steps ignores.
    let mi300 = vendor_trace(
        dir.path(),
        "mi300.json",
        "hipLaunchKernel",
        "Cijk_Alik_Bljk_gemm",
        &[150; 5],
        &[10, 10, 300, 10, 10],
    );
    let (a, b) = (summary(&h100), summary(&mi300));
    let d = diff(&a, &b, 0.05);
    // by name, nothing pairs
    let gemm_rows: Vec<Change> = d
        .rows
        .iter()
        .filter(|r| r.name.contains("gemm"))
        .map(|r| r.change)
        .collect();
    assert_eq!(gemm_rows.len(), 2);
    assert!(gemm_rows.contains(&Change::Added) && gemm_rows.contains(&Change::Removed));
    // by op and position, everything does
    let mm = d.by_op.iter().find(|r| r.op == "aten::mm").unwrap();
    assert_eq!((mm.positions_a, mm.positions_b, mm.matched), (2, 2, 2));
    assert_eq!(mm.change, Change::Slower);
    assert_eq!((mm.median_a_ns, mm.median_b_ns), (200_000.0, 300_000.0));
    let add = d.by_op.iter().find(|r| r.op == "aten::add").unwrap();
    assert_eq!(add.change, Change::Unchanged, "{add:?}");
    assert!(add.p90_b_ns > add.p90_a_ns, "the outlier shows in the tail");

    let holds = |e: &str| FailIf::parse(e).unwrap().check(&d).is_some();
    assert!(holds("op:aten::mm>+10%"));
    assert!(!holds("op:aten::mm>+60%"));
    assert!(!holds("op:aten::add>+10%"));
    assert!(holds("total>+5%"));
    assert!(!holds("total<-5%"));
    assert!(holds("op:aten::mm>+50us"));
}

#[test]
fn a_real_trace_without_flows_is_attributed_by_correlation() {
    let s = summary(&common::data("sampled_rank-0.json.gz"));
    let a = &s.attribution;
    let kernels: u64 = s.kernels.iter().map(|k| k.calls).sum();
    let attributed: u64 = a.by_op.iter().map(|r| r.kernels).sum();
    assert_eq!(attributed + a.unattributed, kernels);
    assert!(attributed * 10 > kernels * 9, "{attributed} of {kernels}");
    assert!(a.by_op.iter().any(|r| r.name.starts_with("aten::")));
}
