//! `loupe trace` through the binary: exit codes, stdout reports, no partial outputs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../trace/tests/data")
        .join(name)
}

fn loupe(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loupe"))
        .arg("trace")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn summary_prints_tracelens_csv() {
    let trace = data("sglang_Qwen3-8B_decode.json.gz");
    let out = loupe(&[
        "summary",
        trace.to_str().unwrap(),
        "--format",
        "csv",
        "--table",
        "timeline",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "type,time ms,percent");
    assert_eq!(lines[1], "computation_time,9.759749,2.060105577680249");
    assert_eq!(lines[6], "total_time,473.749943,100.0");
    assert_eq!(lines.len(), 9);
}

#[test]
fn bad_input_exits_2_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(data("sampled_rank-1.json.gz")).unwrap();
    let cut = dir.path().join("rank-1.json.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let merged = dir.path().join("merged.json.gz");
    let out = loupe(&[
        "merge",
        data("sampled_rank-0.json.gz").to_str().unwrap(),
        cut.to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("rank-1.json.gz") && err.contains("gzip"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "only the input remains");

    let out = loupe(&["summary", dir.path().join("absent.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.json: cannot read"));
}

#[test]
fn merge_writes_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let merged = dir.path().join("merged.json");
    let out = loupe(&[
        "merge",
        data("sampled_rank-0.json.gz").to_str().unwrap(),
        data("sampled_rank-1.json.gz").to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
        "--drop-cat",
        "cuda_runtime",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&merged).unwrap();
    assert!(text.contains("\"pid\": \"[RANK01] 4045\""));
    assert!(!text.contains("\"cat\": \"cuda_runtime\""));
}

#[test]
fn every_kind_of_bad_input_exits_2_names_the_file_and_leaves_no_output() {
    let inputs = tempfile::tempdir().unwrap();
    let dir = inputs.path();
    // Each broken input fails only after many good events, so every writer has started its
    // output by then.
    let gz = std::fs::read(data("sampled_rank-1.json.gz")).unwrap();
    let truncated = dir.join("truncated.json.gz");
    std::fs::write(&truncated, &gz[..gz.len() * 3 / 4]).unwrap();
    let event =
        r#"{"ph": "X", "cat": "kernel", "name": "k", "pid": 0, "tid": 7, "ts": 1, "dur": 1}"#;
    let mut text = String::from("{\"traceEvents\": [");
    while text.len() < 3 << 20 {
        text.push_str(event);
        text.push_str(",\n");
    }
    let bad_at = text.len() + r#"{"ph": "X", "name": "#.len();
    text.push_str(r#"{"ph": "X", "name": oops}]}"#);
    let invalid = dir.join("invalid.json");
    std::fs::write(&invalid, &text).unwrap();
    let sqlite = dir.join("other.sqlite");
    rusqlite::Connection::open(&sqlite)
        .unwrap()
        .execute_batch("CREATE TABLE results (x INTEGER); INSERT INTO results VALUES (1);")
        .unwrap();
    let missing = dir.join("missing.json");
    let directory = dir.join("a-directory.json");
    std::fs::create_dir(&directory).unwrap();
    let cases: [(&Path, String); 5] = [
        (&truncated, "corrupt or truncated gzip".into()),
        (
            &invalid,
            format!("invalid JSON at byte {bad_at}: expected value"),
        ),
        (&sqlite, "unknown SQLite schema".into()),
        (&missing, "cannot read".into()),
        (&directory, "cannot read".into()),
    ];
    for (input, says) in &cases {
        let input = input.to_str().unwrap();
        let out_dir = tempfile::tempdir().unwrap();
        let out = |name: &str| out_dir.path().join(name).to_str().unwrap().to_string();
        let commands: Vec<Vec<String>> = vec![
            vec!["summary".into(), input.into()],
            vec![
                "merge".into(),
                data("sampled_rank-0.json.gz").to_str().unwrap().into(),
                input.into(),
                "-o".into(),
                out("merged.json.gz"),
            ],
            vec![
                "slice".into(),
                input.into(),
                "--time".into(),
                "0%..100%".into(),
                "-o".into(),
                out("slice.json"),
            ],
            vec![
                "convert".into(),
                input.into(),
                "-o".into(),
                out("converted.json.gz"),
            ],
            vec![
                "convert".into(),
                input.into(),
                "-o".into(),
                out("converted.pftrace"),
            ],
        ];
        for args in commands {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = loupe(&args);
            let err = String::from_utf8_lossy(&run.stderr);
            assert_eq!(run.status.code(), Some(2), "{args:?}: {err}");
            assert!(
                err.starts_with(&format!("error: {input}")),
                "{args:?}: {err}"
            );
            assert!(err.contains(says.as_str()), "{args:?}: {err}");
            let left: Vec<_> = std::fs::read_dir(out_dir.path()).unwrap().collect();
            assert!(left.is_empty(), "{args:?} left {left:?}");
        }
    }
}

fn stdout_of(args: &[&str]) -> String {
    let out = loupe(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn terminal_tables_round_while_csv_and_json_keep_full_precision() {
    let trace = data("sglang_Qwen3-8B_decode.json.gz");
    let trace = trace.to_str().unwrap();
    let text = stdout_of(&["summary", trace]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "type                 time ms  percent");
    assert_eq!(lines[3], "computation_time       9.760     2.06");
    assert_eq!(lines[8], "total_time           473.750   100.00");
    assert!(!text.contains("2.060105577680249"), "{text}");

    let json: serde_json::Value =
        serde_json::from_str(&stdout_of(&["summary", trace, "--format", "json"])).unwrap();
    assert_eq!(json[0]["timeline"]["computation_ns"], 9_759_749);
    assert_eq!(json[0]["timeline"]["total_ns"], 473_749_943);

    // RPD's `top`: two decimals on the terminal, RPD's four in CSV.
    let rpd = data("matmul_result.rpd");
    let rpd = rpd.to_str().unwrap();
    let text = stdout_of(&["top", rpd]);
    let row = text.lines().nth(3).unwrap();
    assert!(row.starts_with("CopyHostToDevice "), "{text}");
    assert!(
        row.ends_with("     2            157178  78589.031       85.46"),
        "{row}"
    );
    let csv = stdout_of(&["top", rpd, "--format", "csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[..2],
        [
            "# top",
            "Name,TotalCalls,TotalDuration_us,Ave_us,Percentage"
        ]
    );
    assert_eq!(lines[2], "CopyHostToDevice,2,157178,78589.031,85.4609");
}

#[test]
fn csv_quotes_kernel_names_with_commas() {
    let trace = data("sglang_Qwen3-8B_decode.json.gz");
    let csv = stdout_of(&[
        "summary",
        trace.to_str().unwrap(),
        "--format",
        "csv",
        "--table",
        "kernels",
        "--top",
        "2",
    ]);
    let row = csv.lines().nth(2).unwrap();
    assert!(
        row.starts_with(
            "\"void paged_attention_ll4mi_QKV_mfma16_kernel<0, __hip_bfloat16, __hip_bfloat16, "
        ),
        "{row}"
    );
    assert!(
        row.ends_with(
            "ck_tile::ComposedAttention<0u, false> const*)\",36,1.950,54.154,51.596,59.728,19.94"
        ),
        "{row}"
    );
}

#[test]
fn an_output_that_is_an_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("rank-0.json.gz");
    std::fs::copy(data("sampled_rank-0.json.gz"), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let i = input.to_str().unwrap();
    let other = data("sampled_rank-1.json.gz");
    for args in [
        vec!["slice", i, "--time", "0%..50%", "-o", i],
        vec!["convert", i, "-o", i],
        vec!["merge", other.to_str().unwrap(), i, "-o", i],
    ] {
        let out = loupe(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(
            err.trim_end(),
            format!("error: {i}: the output would replace one of the inputs"),
            "{args:?}"
        );
    }
    assert_eq!(std::fs::read(&input).unwrap(), before);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn summary_groups_cpu_ops_by_shape_like_torch() {
    let trace = data("cpu_mlp.trace.json.gz");
    let text = ok(&loupe(&[
        "summary",
        trace.to_str().unwrap(),
        "--group-by-shape",
        "--format",
        "csv",
        "--top",
        "0",
    ]));
    let lines: Vec<&str> = text.lines().filter(|l| *l != "# shapes").collect();
    assert_eq!(
        lines[0],
        "Name,Self CPU %,Self CPU us,CPU total %,CPU total us,CPU time avg us,# of Calls,Input Shapes"
    );
    assert!(lines[1].starts_with("ProfilerStep*,"), "{}", lines[1]);
    assert!(lines[2].starts_with("aten::gelu,"), "{}", lines[2]);
    assert!(lines[2].ends_with(",4,\"[[8, 128], []]\""), "{}", lines[2]);
    assert_eq!(lines.len(), 1 + 38);
    // the default summary of a CPU-only trace shows self time, not an empty GPU timeline
    let text = ok(&loupe(&["summary", trace.to_str().unwrap()]));
    assert!(text.contains("CPU self time"), "{text}");
    assert!(!text.contains("GPU timeline"), "{text}");
}

#[test]
fn ranks_from_summaries_equal_ranks_from_traces() {
    let dir = tempfile::tempdir().unwrap();
    let traces = [
        data("cpu_gloo-rank0.trace.json.gz"),
        data("cpu_gloo-rank1.trace.json.gz"),
    ];
    let mut jsons = Vec::new();
    for (i, t) in traces.iter().enumerate() {
        let text = ok(&loupe(&[
            "summary",
            t.to_str().unwrap(),
            "--format",
            "json",
        ]));
        let p = dir.path().join(format!("rank{i}.summary.json"));
        std::fs::write(&p, text).unwrap();
        jsons.push(p);
    }
    let direct = ok(&loupe(&[
        "ranks",
        traces[0].to_str().unwrap(),
        traces[1].to_str().unwrap(),
        "--format",
        "json",
    ]));
    let combined = ok(&loupe(&[
        "ranks",
        "--from-summaries",
        jsons[0].to_str().unwrap(),
        jsons[1].to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(direct, combined);
    let report: serde_json::Value = serde_json::from_str(&direct).unwrap();
    assert_eq!(report["straggler"], report["ranks"][1]["label"]);
    // the terminal report names it
    let text = ok(&loupe(&[
        "ranks",
        traces[0].to_str().unwrap(),
        traces[1].to_str().unwrap(),
    ]));
    let label = report["ranks"][1]["label"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "Stragglers: {label} starts its last collective latest"
        )),
        "{text}"
    );
    assert!(
        text.contains("CPU compute time per step and rank"),
        "{text}"
    );
    // something that is not a summary is an error that says where
    std::fs::write(&jsons[1], "{\"label\": 3}").unwrap();
    let out = loupe(&["ranks", "--from-summaries", jsons[1].to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("rank1.summary.json: invalid JSON at byte"),
        "{err}"
    );
}

#[test]
fn diff_fail_if_gates_with_exit_status_1() {
    let a = data("sampled_rank-0.json.gz");
    let b = data("sampled_rank-1.json.gz");
    let run = |cond: &str| {
        loupe(&[
            "diff",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--fail-if",
            cond,
        ])
    };
    let held = run("total>-100%");
    assert_eq!(held.status.code(), Some(1));
    let err = String::from_utf8(held.stderr).unwrap();
    assert!(err.contains("fail-if total>-100%: A "), "{err}");
    assert!(
        String::from_utf8(held.stdout)
            .unwrap()
            .contains("paired by position")
    );
    assert_eq!(run("total>+1000%").status.code(), Some(0));
    let bad = run("totl>5%");
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8(bad.stderr)
            .unwrap()
            .contains("--fail-if \"totl>5%\"")
    );
}

#[test]
fn summary_by_op_and_hta_tables() {
    let trace = data("sampled_rank-0.json.gz");
    let text = ok(&loupe(&["summary", trace.to_str().unwrap(), "--by", "op"]));
    assert!(text.contains("GPU time by launching cpu_op"), "{text}");
    let csv = ok(&loupe(&[
        "summary",
        trace.to_str().unwrap(),
        "--format",
        "csv",
        "--table",
        "hta_temporal",
    ]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "rank,idle_time(us),compute_time(us),non_compute_time(us),kernel_time(us),idle_time_pctg,compute_time_pctg,non_compute_time_pctg"
    );
    assert!(
        lines[1].ends_with(",321378.000,106252.000,172428.000,600058.000,53.56,17.71,28.74"),
        "{}",
        lines[1]
    );
}

#[path = "../../trace/tests/common/graphs.rs"]
mod graphs;

/// `(launches, GPU ops, GPU ms)` of a `--by op --format csv` row.
fn csv_row(csv: &str, name: &str) -> Option<(u64, u64, String)> {
    csv.lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|c| c[0] == name)
        .map(|c| {
            (
                c[1].parse().unwrap(),
                c[2].parse().unwrap(),
                c[3].to_string(),
            )
        })
}

#[test]
fn capture_traces_move_graph_time_to_the_captured_ops() {
    let dir = tempfile::tempdir().unwrap();
    let captures = dir.path().join("capture_traces");
    std::fs::create_dir(&captures).unwrap();
    std::fs::write(
        captures.join("graph_capture_rank_0.1733000000.pt.trace.json"),
        graphs::capture_trace(&[graphs::graph_bs16(), graphs::graph_bs8()], true),
    )
    .unwrap();
    let replay = dir.path().join("run-TP-0.trace.json");
    std::fs::write(&replay, graphs::replay_trace(&graphs::decode_steps())).unwrap();
    let replay = replay.to_str().unwrap();
    let by_op = |extra: &[&str]| {
        let mut args = vec!["summary", replay, "--by", "op", "--format", "csv"];
        args.extend_from_slice(extra);
        ok(&loupe(&args))
    };
    let before = by_op(&["--table", "by_op"]);
    // 2 steps of the bs-8 graph (248 µs), 1 of the bs-16 graph (452 µs), a stray graph (15 µs)
    assert_eq!(
        csv_row(&before, graphs::REPLAY_OP),
        Some((4, 27, "0.963".into()))
    );
    assert_eq!(csv_row(&before, "aten::mm"), None);

    let out = loupe(&[
        "summary",
        replay,
        "--by",
        "op",
        "--format",
        "csv",
        "--capture-traces",
        captures.to_str().unwrap(),
    ]);
    let after = ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 CUDA-graph captures (18 launch calls) in 1 file"),
        "{err}"
    );
    // GEMMs: 2 layers x (30 + 40) µs in each bs-8 step, 2 x (60 + 80) in the bs-16 one
    assert_eq!(csv_row(&after, "aten::mm"), Some((12, 12, "0.560".into())));
    assert_eq!(
        csv_row(&after, "flash::decode"),
        Some((8, 8, "0.360".into()))
    );
    assert_eq!(csv_row(&after, "aten::copy_"), Some((6, 6, "0.028".into())));
    assert_eq!(
        csv_row(&after, "aten::argmax"),
        Some((4, 4, "0.020".into()))
    );
    assert_eq!(
        csv_row(&after, graphs::REPLAY_OP),
        Some((1, 1, "0.015".into()))
    );
    // the graph-replay table: 26 of 27 graph kernels through captures, 3 launches exact
    assert!(after.contains("# graph_replays"), "{after}");
    assert!(after.contains("\n4,27,26,1,2,3,0,0,1\n"), "{after}");

    let text = ok(&loupe(&[
        "summary",
        replay,
        "--by",
        "module",
        "--capture-traces",
        captures
            .join("graph_capture_rank_0.1733000000.pt.trace.json")
            .to_str()
            .unwrap(),
    ]));
    assert!(
        text.contains("26 of 27 graph kernels attributed through capture traces, 1 not"),
        "{text}"
    );
    assert!(
        text.contains("Qwen3Model/Qwen3DecoderLayer/Attention"),
        "{text}"
    );

    // a capture that matches nothing: a note, and the numbers of no capture at all
    let other = dir.path().join("other.json");
    let mut g = graphs::graph_bs8();
    for l in &mut g.per_layer {
        l.gpu = "a_kernel_of_another_model";
    }
    std::fs::write(&other, graphs::capture_trace(&[g], true)).unwrap();
    let out = loupe(&[
        "summary",
        replay,
        "--by",
        "op",
        "--format",
        "csv",
        "--table",
        "by_op",
        "--capture-traces",
        other.to_str().unwrap(),
    ]);
    assert_eq!(ok(&out), before);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("none of its 4 graph launches matched"),
        "{err}"
    );

    // not a trace: exit 2 naming the file
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "not json").unwrap();
    let out = loupe(&[
        "summary",
        replay,
        "--by",
        "op",
        "--capture-traces",
        junk.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk.json"));
}
