//! loupe against a scripted trtllm-serve and scripted Dynamo workers (`engines_like/`):
//! `loupe bench --profile` and `loupe profile` send each engine's routes and bodies, stop
//! every capture they started (bounded ones too), report refusals clearly, and list and
//! summarise the files where they appear; `loupe watch` reads trtllm-serve's JSON `/metrics`.

mod engines_like;

use std::path::Path;
use std::process::{Command, Output};

use engines_like::{Kind, Running};
use serde_json::Value;

fn loupe(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loupe"));
    c.args(args)
        .env_remove("OPENAI_API_KEY")
        .env_remove("API_KEY");
    c
}

async fn output(args: &[&str]) -> Output {
    let mut c = loupe(args);
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

fn names(files: &Value) -> Vec<String> {
    let mut n: Vec<String> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            Path::new(f.as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    n.sort();
    n
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_profile_on_trtllm_sends_its_four_keys_and_always_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let t = engines_like::start(Kind::Trtllm, tmp.path()).await;
    let tok = tokenizer(tmp.path());
    let out = tmp.path().join("out.jsonl").display().to_string();
    let root = tmp.path().join("traces");
    let dir = root.display().to_string();

    // Unbounded: loupe's stop ends the capture and writes the files.
    let mut a = bench_args(&t.url, &tok, &out, "4");
    a.extend([
        "--profile",
        "--profile-output-dir",
        &dir,
        "--scrape-metrics",
    ]);
    let o = output(&a).await;
    assert!(o.status.success(), "{}", text(&o));
    let r = last_record(&out);
    let p = &r["profile_traces"];
    assert_eq!(
        p["engine"],
        r#"trtllm (/v1/models owned_by "tensorrt_llm")"#
    );
    assert_eq!(p["errors"], serde_json::json!([]), "{p}");
    assert_eq!(p["complete"], true, "{p}");
    assert_eq!(
        names(&p["files"]),
        ["trace-rank-0.json", "trace-rank-1.json"]
    );
    assert!(p["summary"].as_str().unwrap().contains("aten::mm"), "{p}");
    let starts = t.log(|l| l.bodies("/start_profile"));
    let body = json(&starts[0]);
    let out_dir = body["output_dir"].as_str().unwrap();
    assert!(out_dir.starts_with(&dir), "a directory per run: {body}");
    assert_eq!(body["activities"], serde_json::json!(["CPU", "GPU"]));
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["activities", "output_dir"],
        "only trtllm's keys: {body}"
    );
    assert_eq!(t.log(|l| l.bodies("/stop_profile").len()), 1);
    assert!(!t.profiling());
    // --scrape-metrics reads Prometheus text only: it says why it cannot read this one.
    let warnings = r["server_metrics"]["warning"].to_string();
    assert!(
        warnings.contains("JSON") && warnings.contains("/prometheus/metrics"),
        "{warnings}"
    );

    // Bounded: the server ends the capture after 3 steps; the stop still goes out, and its
    // refusal is a note, not an error.
    let mut a = bench_args(&t.url, &tok, &out, "6");
    a.extend([
        "--profile",
        "--profile-num-steps",
        "3",
        "--profile-output-dir",
        &dir,
    ]);
    let o = output(&a).await;
    assert!(o.status.success(), "{}", text(&o));
    let p = &last_record(&out)["profile_traces"];
    assert_eq!(p["errors"], serde_json::json!([]), "{p}");
    assert_eq!(p["complete"], true, "{p}");
    assert_eq!(
        names(&p["files"]),
        ["trace-rank-0.json", "trace-rank-1.json"]
    );
    assert!(
        p["notes"]
            .to_string()
            .contains("refused after the bounded capture"),
        "{p}"
    );
    let starts = t.log(|l| l.bodies("/start_profile"));
    assert_eq!(
        json(&starts[1])["num_steps"],
        3,
        "an integer: {}",
        starts[1]
    );
    assert_eq!(t.log(|l| l.bodies("/stop_profile").len()), 2);
    assert!(!t.profiling());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loupe_profile_and_watch_on_trtllm() {
    let tmp = tempfile::tempdir().unwrap();
    let t = engines_like::start(Kind::Trtllm, tmp.path()).await;
    let dir = tmp.path().join("t").display().to_string();
    let o = output(&[
        "profile",
        "start",
        "--url",
        &t.url,
        "--output-dir",
        &dir,
        "--num-steps",
        "0",
        "--activities",
        "CPU",
    ])
    .await;
    let s = text(&o);
    assert!(o.status.success(), "{s}");
    assert!(s.contains("engine: trtllm"), "{s}");
    assert!(
        s.contains(&format!(
            r#"request: {{"activities":["CPU"],"output_dir":"{dir}"}}"#
        )),
        "{s}"
    );
    assert!(t.profiling());
    let o = output(&["profile", "stop", "--url", &t.url, "--output-dir", &dir]).await;
    let s = text(&o);
    assert!(o.status.success(), "{s}");
    assert!(
        s.contains("trace-rank-0.json") && s.contains("trace-rank-1.json"),
        "{s}"
    );
    assert!(s.contains("aten::mm"), "the summary: {s}");
    assert!(!t.profiling());
    // A refusal names what the server said.
    let o = output(&[
        "profile",
        "start",
        "--url",
        &t.url,
        "--output-dir",
        &dir,
        "--activities",
        "MEM",
    ])
    .await;
    assert!(!o.status.success());
    assert!(
        text(&o).contains("HTTP 400") && text(&o).contains("activities: unknown"),
        "{}",
        text(&o)
    );
    // A stop with nothing running is an error with the server's reason.
    let o = output(&["profile", "stop", "--url", &t.url, "--engine", "trtllm"]).await;
    assert!(!o.status.success());
    assert!(text(&o).contains("profiling is not active"), "{}", text(&o));

    // loupe watch reads the JSON iteration statistics (load runs meanwhile, so the second
    // scrape has fresh ones).
    let front = t.frontend.clone();
    let load = tokio::spawn(async move {
        let c = reqwest::Client::new();
        loop {
            let _ = c
                .post(format!("{front}/v1/completions"))
                .json(&serde_json::json!({"prompt": "x", "max_tokens": 1}))
                .send()
                .await
                .and_then(|r| r.error_for_status());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    let jsonl = tmp.path().join("w.jsonl");
    let o = output(&[
        "watch",
        &t.url,
        "--once",
        "--interval",
        "0.3",
        "--jsonl",
        jsonl.to_str().unwrap(),
    ])
    .await;
    load.abort();
    let s = text(&o);
    assert!(o.status.success(), "{s}");
    let row = s
        .lines()
        .find(|l| l.contains(&t.url))
        .unwrap_or_else(|| panic!("{s}"));
    assert!(row.contains("trtllm"), "{row}");
    let sample: Value = serde_json::from_str(
        std::fs::read_to_string(&jsonl)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(sample["engine"], "trtllm", "{sample}");
    let r0 = &sample["ranks"][0];
    assert_eq!(
        (r0["running"].clone(), r0["queued"].clone()),
        (1.0.into(), 2.0.into()),
        "{sample}"
    );
    assert_eq!(r0["kv_usage"], 0.25, "{sample}");
    assert_eq!(r0["cache_hit_rate"], 0.5, "{sample}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_vllm_worker_errors_in_a_200_are_refusals_and_files_are_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let launch = tmp.path().join("vllm-dir");
    let w = engines_like::start(Kind::DynamoVllm { configured: true }, &launch).await;
    let o = output(&[
        "profile",
        "start",
        "--url",
        &w.url,
        "--num-steps",
        "0",
        "--profile-prefix",
        "run1",
    ])
    .await;
    let s = text(&o);
    assert!(o.status.success(), "{s}");
    assert!(s.contains("engine: dynamo (/metrics has dynamo_"), "{s}");
    assert!(s.contains("Profiling started"), "{s}");
    assert!(w.profiling());
    let starts = w.log(|l| l.bodies("/engine/start_profile"));
    assert_eq!(json(&starts[0])["profile_prefix"], "run1");
    // Already profiling: dynamo.vllm answers HTTP 200 {"status":"error"}; loupe says so.
    let o = output(&["profile", "start", "--url", &w.url, "--engine", "dynamo"]).await;
    assert!(!o.status.success());
    assert!(
        text(&o).contains("the engine refused: Profiling is already in progress"),
        "{}",
        text(&o)
    );
    let dir = launch.display().to_string();
    let o = output(&["profile", "stop", "--url", &w.url, "--output-dir", &dir]).await;
    let s = text(&o);
    assert!(o.status.success(), "{s}");
    assert!(
        s.contains("run1_dp0_pp0_tp0_dcp0_ep0_rank0.")
            && s.contains("run1_dp0_pp0_tp1_dcp0_ep0_rank1."),
        "{s}"
    );
    assert!(s.contains("aten::mm"), "the summary: {s}");
    assert!(!w.profiling());
    assert_eq!(w.log(|l| l.bodies("/engine/stop_profile").len()), 1);

    // A worker launched without --profiler-config.
    let bare = engines_like::start(Kind::DynamoVllm { configured: false }, &launch).await;
    let o = output(&["profile", "start", "--url", &bare.url]).await;
    assert!(!o.status.success());
    assert!(text(&o).contains("--profiler-config"), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_profile_through_dynamo_sglang_workers_and_a_worker_without_the_route() {
    let tmp = tempfile::tempdir().unwrap();
    let w = engines_like::start(Kind::DynamoSglang, tmp.path()).await;
    let tok = tokenizer(tmp.path());
    let out = tmp.path().join("out.jsonl").display().to_string();
    let dir = tmp.path().join("traces").display().to_string();
    // The load goes to the frontend; the worker's system port is profiled.
    let mut a = bench_args(&w.frontend, &tok, &out, "6");
    a.extend([
        "--engine",
        "dynamo",
        "--profile",
        "--pd-separated",
        "--profile-decode-url",
        &w.url,
        "--profile-num-steps",
        "3",
        "--profile-output-dir",
        &dir,
    ]);
    let o = output(&a).await;
    assert!(o.status.success(), "{}", text(&o));
    let p = &last_record(&out)["profile_traces"];
    assert_eq!(p["engine"], "dynamo (--engine)");
    assert_eq!(p["errors"], serde_json::json!([]), "{p}");
    assert_eq!(p["complete"], true, "{p}");
    assert_eq!(
        names(&p["files"]),
        [
            "1764000000.5-TP-0.trace.json",
            "1764000000.5-TP-1.trace.json"
        ]
    );
    assert!(p["summary"].as_str().unwrap().contains("aten::mm"), "{p}");
    // SGLang's body through /engine/start_profile; the stop went out after the bounded
    // capture, and SGLang's 500 for it is a note.
    let starts = w.log(|l| l.bodies("/engine/start_profile"));
    assert_eq!(starts.len(), 1);
    let body = json(&starts[0]);
    assert!(
        body["output_dir"].as_str().unwrap().starts_with(&dir),
        "{body}"
    );
    assert_eq!(body["num_steps"], 3, "{body}");
    assert_eq!(w.log(|l| l.bodies("/engine/stop_profile").len()), 1);
    assert!(
        p["notes"]
            .to_string()
            .contains("Profiling is not in progress"),
        "{p}"
    );
    assert!(!w.profiling());

    // dynamo.trtllm registers no profiling route: the 404 says where to go instead.
    let t = engines_like::start(Kind::DynamoTrtllm, tmp.path()).await;
    let mut a = bench_args(&t.frontend, &tok, &out, "2");
    a.extend([
        "--engine",
        "dynamo",
        "--profile",
        "--pd-separated",
        "--profile-prefill-url",
        &t.url,
    ]);
    let o = output(&a).await;
    assert!(o.status.success(), "the benchmark stands: {}", text(&o));
    let p = &last_record(&out)["profile_traces"];
    let errs = p["errors"].to_string();
    assert!(
        errs.contains("HTTP 404")
            && errs.contains("DYN_SYSTEM_PORT")
            && errs.contains("TLLM_PROFILE_START_STOP"),
        "{errs}"
    );
    assert_eq!(p["complete"], false);
    let o = output(&["profile", "start", "--url", &t.url, "--engine", "dynamo"]).await;
    assert!(!o.status.success());
    assert!(text(&o).contains("no profiling route"), "{}", text(&o));
    let _: &Running = &t;
}
