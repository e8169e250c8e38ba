//! loupe against a vLLM-like server (the scripted one in `vllm_like/`): `loupe bench
//! --profile` and `loupe profile` speak vLLM's protocol, never leave it profiling (bounded
//! runs, runs whose start was refused, Ctrl-C), list its files and summarise them.

mod vllm_like;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use vllm_like::{Launch, Running};

fn loupe(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loupe"));
    c.args(args)
        .env_remove("OPENAI_API_KEY")
        .env_remove("API_KEY");
    c
}

/// The binary's output, run off the runtime's threads (the scripted server shares them).
async fn output(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A word-level tokenizer of 100 tokens: random-ids needs a vocabulary size, and vLLM has
/// no `/model_info` to give one.
fn tokenizer(dir: &Path) -> String {
    let vocab: serde_json::Map<String, Value> = (0..100)
        .map(|i| (format!("t{i}"), Value::from(i)))
        .collect();
    let t = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "t0"}
    });
    let p = dir.join("tokenizer.json");
    std::fs::write(&p, t.to_string()).unwrap();
    p.display().to_string()
}

async fn server(dir: Option<&Path>) -> Running {
    vllm_like::start(Launch {
        profiler_dir: dir.map(Path::to_path_buf),
        under_run_root: false,
        world: 2,
    })
    .await
}

fn bench_args<'a>(url: &'a str, tok: &'a str, out: &'a str, n: &'a str) -> Vec<&'a str> {
    vec![
        "bench",
        "--backend",
        "vllm",
        "--base-url",
        url,
        "--tokenizer",
        tok,
        "--dataset-name",
        "random-ids",
        "--num-prompts",
        n,
        "--random-input-len",
        "8",
        "--random-output-len",
        "4",
        "--warmup-requests",
        "0",
        "--disable-tqdm",
        "--output-file",
        out,
    ]
}

fn last_record(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_profile_bounds_vllm_with_its_own_body_and_always_stops_it() {
    let tmp = tempfile::tempdir().unwrap();
    let traces = tmp.path().join("traces");
    let vllm = server(Some(&traces)).await;
    let tok = tokenizer(tmp.path());
    let out = tmp.path().join("out.jsonl").display().to_string();
    let dir = traces.display().to_string();
    for run in 0..2 {
        let mut a = bench_args(&vllm.url, &tok, &out, "6");
        a.extend([
            "--profile",
            "--profile-num-steps",
            "3",
            "--profile-output-dir",
            &dir,
        ]);
        let o = output(loupe(&a)).await;
        assert!(o.status.success(), "run {run}: {}", text(&o));
        assert!(text(&o).contains("Engine:"), "{}", text(&o));
        // Stopped although the bounded session ended by itself: the guard is clear, so the
        // second run's start is accepted.
        assert!(!vllm.profiling() && !vllm.guard_set(), "run {run}");
    }
    let (starts, codes, stops) = vllm.log(|l| (l.starts.clone(), l.start_codes.clone(), l.stops));
    assert_eq!(
        starts, [r#"{"max_iterations":3}"#; 2],
        "integers, vLLM's keys only"
    );
    assert_eq!(codes, [200, 200]);
    assert_eq!(stops, 4, "a stop before each start and one after each run");

    let r = last_record(&out);
    let p = &r["profile_traces"];
    assert_eq!(p["engine"], r#"vllm (/v1/models owned_by "vllm")"#);
    assert_eq!(p["complete"], true, "{p}");
    assert_eq!(p["errors"], serde_json::json!([]), "{p}");
    let files: Vec<&str> = p["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            Path::new(f)
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let count = |pat: &str| names.iter().filter(|n| n.contains(pat)).count();
    let trace_of = |rank: &str| {
        names
            .iter()
            .filter(|n| n.contains(rank) && n.ends_with(".pt.trace.json"))
            .count()
    };
    assert_eq!(names.len(), 4, "this run's files only: {names:?}");
    assert_eq!(trace_of("_rank0."), 1, "{names:?}");
    assert_eq!(trace_of("_rank1."), 1, "{names:?}");
    assert_eq!(count(".async_llm."), 1, "{names:?}");
    assert_eq!(count(".profiler_out.txt"), 1, "{names:?}");
    let summary = p["summary"].as_str().unwrap();
    assert!(summary.contains("aten::mm"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vllm_server_without_profiler_config_is_told_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let vllm = server(None).await;
    let tok = tokenizer(tmp.path());
    let out = tmp.path().join("out.jsonl").display().to_string();
    let mut a = bench_args(&vllm.url, &tok, &out, "2");
    a.extend(["--profile", "--engine", "vllm"]);
    let o = output(loupe(&a)).await;
    let p = &last_record(&out)["profile_traces"];
    let errs = p["errors"].to_string();
    assert!(errs.contains("--profiler-config"), "{errs}\n{}", text(&o));
    assert_eq!(p["complete"], false);

    let o = output(loupe(&["profile", "start", "--url", &vllm.url])).await;
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("engine: vllm") && t.contains("--profiler-config"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loupe_profile_start_and_stop_on_vllm_list_and_summarise_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let traces = tmp.path().join("t");
    let vllm = server(Some(&traces)).await;
    let dir = traces.display().to_string();
    let o = output(loupe(&[
        "profile",
        "start",
        "--url",
        &vllm.url,
        "--num-steps",
        "0",
        "--profile-prefix",
        "run1",
    ]))
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(r#"request: {"profile_prefix":"run1"}"#),
        "{}",
        text(&o)
    );
    assert!(vllm.profiling());
    // A second start: loupe clears the old guard first, so it is accepted, never a 409.
    let o = output(loupe(&[
        "profile",
        "start",
        "--url",
        &vllm.url,
        "--num-steps",
        "0",
    ]))
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let o = output(loupe(&[
        "profile",
        "stop",
        "--url",
        &vllm.url,
        "--output-dir",
        &dir,
    ]))
    .await;
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(!vllm.guard_set());
    assert!(
        t.contains("dp0_pp0_tp1_dcp0_ep0_rank1.") && t.contains(".profiler_out.txt"),
        "{t}"
    );
    assert!(t.contains("aten::mm"), "the summary: {t}");
    assert_eq!(vllm.log(|l| l.start_codes.clone()), [200, 200]);

    // An absolute start step cannot be said to vLLM: refused before anything is sent.
    let o = output(loupe(&[
        "profile",
        "start",
        "--url",
        &vllm.url,
        "--start-step",
        "3",
    ]))
    .await;
    assert!(!o.status.success());
    assert!(text(&o).contains("absolute start step"), "{}", text(&o));
    assert_eq!(vllm.log(|l| l.starts.len()), 2);
}

/// Ctrl-C in the middle of a profiled run: the server is stopped before loupe exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_profiled_run_stops_vllm() {
    let tmp = tempfile::tempdir().unwrap();
    let traces = tmp.path().join("t");
    let vllm = server(Some(&traces)).await;
    let tok = tokenizer(tmp.path());
    let out = tmp.path().join("out.jsonl").display().to_string();
    let mut a = bench_args(&vllm.url, &tok, &out, "2000");
    a.extend(["--profile", "--request-rate", "20"]);
    let mut child = loupe(&a)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the profile to start (state, not time).
    while !vllm.profiling() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            child.try_wait().unwrap().is_none(),
            "loupe ended before profiling"
        );
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("interrupted"), "{}", text(&o));
    assert!(!vllm.profiling() && !vllm.guard_set());
}

/// Ctrl-C once the first point of a profiled sweep is done (its record written, its profile
/// stopped): the one listener of the run still hears it, loupe ends without running the
/// sweep out, and the server is left stopped (every start followed by a stop, guard clear).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_after_the_first_point_of_a_profiled_sweep_leaves_vllm_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let traces = tmp.path().join("t");
    let vllm = server(Some(&traces)).await;
    let tok = tokenizer(tmp.path());
    let out = tmp.path().join("out.jsonl").display().to_string();
    let dir = traces.display().to_string();
    // The first point sends its 40 requests at once; the second one at 2 per second, which
    // alone would take 20 s. --flush-cache: each point flushes, then lets the server settle
    // for a second before its profile starts, so the Ctrl-C most likely comes while no
    // profile runs and no point is being measured.
    let mut a = bench_args(&vllm.url, &tok, &out, "40");
    a.extend([
        "--flush-cache",
        "--profile",
        "--profile-output-dir",
        &dir,
        "--sweep-request-rate",
        "inf,2",
    ]);
    let mut child = loupe(&a)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let records = |p: &str| {
        std::fs::read_to_string(p)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    // Wait for the first point's record (state, not time).
    while records(&out) < 1 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(
            child.try_wait().unwrap().is_none(),
            "loupe ended before the first point was done"
        );
    }
    // The first point stopped its profile (the second may have started one since).
    assert!(vllm.log(|l| l.stops) >= 2);
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("interrupted"), "{}", text(&o));
    assert_eq!(records(&out), 1, "the second point was not reported");
    assert!(!vllm.profiling() && !vllm.guard_set());
    let (starts, stops) = vllm.log(|l| (l.starts.len(), l.stops));
    assert!(starts >= 1, "{starts}");
    // A stop before each start and one after it (the second point's start, if it came
    // before the Ctrl-C, was stopped too).
    assert!(stops >= 2 * starts, "{starts} starts, {stops} stops");
    assert!(
        vllm.log(|l| l.completions) < 80,
        "the sweep was not run out"
    );
}
