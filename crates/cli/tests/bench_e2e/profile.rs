//! `loupe bench --profile` against the real server: the start body's window, stop when
//! bench_serving would stop, and the traces listed in the report once complete.

use serde_json::Value;

use crate::common::*;

async fn profiled(url: &str, s: &Scratch, extra: &[&str]) -> Value {
    let out = s.jsonl();
    let dir = s.path("prof").display().to_string();
    let mut a = vec![
        "--base-url",
        url,
        "--dataset-name",
        "random-ids",
        "--num-prompts",
        "6",
        "--random-input-len",
        "16",
        "--random-output-len",
        "12",
        "--output-file",
        &out,
        "--profile",
        "--profile-output-dir",
        &dir,
    ];
    a.extend(extra);
    assert!(bench(&a).await.unwrap().success());
    s.records().pop().unwrap()
}

fn files(r: &Value) -> Vec<String> {
    let p = &r["profile_traces"];
    assert_eq!(p["complete"], true, "{p}");
    assert_eq!(p["errors"], serde_json::json!([]), "{p}");
    let files: Vec<String> = p["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    let dir = p["output_dir"].as_str().unwrap();
    for f in &files {
        assert!(
            f.starts_with(dir),
            "{f} is in the run's own directory {dir}"
        );
        let len = std::fs::metadata(f)
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .len();
        assert!(len > 0, "{f} is empty");
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiled_runs_list_their_traces() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();

    // A bounded window: the server stops by itself after 3 steps (no /stop_profile).
    let r = profiled(&url, &s, &["--profile-num-steps", "3"]).await;
    let f = files(&r);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].ends_with("-TP-0.trace.json.gz"), "{f:?}");
    let id = r["profile_traces"]["profile_id"].as_str().unwrap();
    assert!(f[0].contains(id), "files carry the run's profile id");
    // The traces are on this machine: the report summarises them with loupe trace.
    let summary = r["profile_traces"]["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("computation_time") && summary.contains("qkv_proj"),
        "{summary}"
    );

    // No window: bench_serving's order, start before the run and stop after it.
    let r = profiled(&url, &s, &["--profile-activities", "CPU", "MEM"]).await;
    let f = files(&r);
    assert!(f.iter().any(|f| f.ends_with(".trace.json.gz")), "{f:?}");
    assert!(f.iter().any(|f| f.ends_with("-memory.json")), "{f:?}");

    // By stage: prefill and decode captured separately.
    let r = profiled(
        &url,
        &s,
        &[
            "--profile-by-stage",
            "--profile-num-steps",
            "2",
            "--profile-prefix",
            "pfx",
        ],
    )
    .await;
    let f = files(&r);
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(
        f.iter().any(|f| f.ends_with("-TP-0-EXTEND.trace.json.gz")),
        "{f:?}"
    );
    assert!(
        f.iter().any(|f| f.ends_with("-TP-0-DECODE.trace.json.gz")),
        "{f:?}"
    );
    assert!(f.iter().all(|f| {
        std::path::Path::new(f)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("pfx-")
    }));

    // The server is idle again: a later profile can start.
    let st: Value = reqwest::get(format!("{url}/profile_status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(st["state"], "idle");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_profile_is_reported_and_the_run_goes_on() {
    // CUDA_PROFILER on a CPU server is a 400: the benchmark still runs (as bench_serving's
    // does), and the report carries the server's reason.
    let server = server(|_| {}).await;
    let s = Scratch::new();
    let r = profiled(
        &server.url(),
        &s,
        &["--profile-activities", "CUDA_PROFILER"],
    )
    .await;
    assert_eq!(u(&r, "completed"), 6);
    let errs = r["profile_traces"]["errors"].to_string();
    assert!(
        errs.contains("start (server)") && errs.contains("400"),
        "{errs}"
    );
    assert_eq!(r["profile_traces"]["files"], serde_json::json!([]));
    assert_eq!(r["profile_traces"]["complete"], false);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disaggregated_profiling_goes_to_the_named_workers() {
    // Traffic to one server, the profile to another (a "prefill worker"): only the named
    // worker is profiled, and its traces are the ones listed.
    let traffic = server(|_| {}).await;
    let worker = server(|_| {}).await;
    let s = Scratch::new();
    let worker_url = worker.url();
    let r = profiled(
        &traffic.url(),
        &s,
        &["--pd-separated", "--profile-prefill-url", &worker_url],
    )
    .await;
    // The worker served no steps during the run: its capture stops empty, but stops.
    let p = &r["profile_traces"];
    assert_eq!(p["errors"], serde_json::json!([]), "{p}");
    let st = |url: String| async move {
        reqwest::get(format!("{url}/profile_status"))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let w = st(worker_url.clone()).await;
    assert_eq!(
        w["profile_id"], p["profile_id"],
        "the worker was profiled: {w}"
    );
    let t = st(traffic.url()).await;
    assert!(t["profile_id"].is_null(), "the traffic server was not: {t}");
    traffic.shutdown().await.unwrap();
    worker.shutdown().await.unwrap();
}
