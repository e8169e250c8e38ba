//! Time-based runs against `loupe serve`: a closed loop bounded by --max-requests-per-run,
//! an open loop cut at --duration, and the steady-state and per-slice figures.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_and_open_loops_bounded_by_count_and_clock() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let out = s.jsonl();
    let base = [
        "--base-url",
        &url,
        "--dataset-name",
        "random-ids",
        "--num-prompts",
        "3",
        "--random-input-len",
        "8",
        "--random-output-len",
        "2",
        "--random-range-ratio",
        "1",
        "--output-file",
        &out,
        "--output-details",
    ];
    // A closed loop of two workers cycling through three prompts, stopped by the count.
    let mut closed = base.to_vec();
    closed.extend([
        "--duration",
        "600",
        "--max-concurrency",
        "2",
        "--max-requests-per-run",
        "5",
        "--warmup-ratio",
        "0.1",
        "--cooldown-ratio",
        "0.1",
        "--slice-duration",
        "0.05",
    ]);
    let o = bench(&closed).await.unwrap();
    assert!(o.success());
    assert_eq!(o.runs[0].records.len(), 5);
    // An open loop at 40 req/s cut at 0.3 s: only requests due before the deadline.
    let mut open = base.to_vec();
    open.extend(["--duration", "0.3", "--request-rate", "40"]);
    let o = bench(&open).await.unwrap();
    assert!(o.success());
    let recs = &o.runs[0].records;
    assert!(!recs.is_empty() && recs.iter().all(|r| r.intended < 0.3));

    let r = s.records();
    let steady = &r[0]["steady_state"];
    assert!(f(steady, "end_s") > f(steady, "start_s"));
    assert!(u(steady, "completed") <= 5);
    let slices = r[0]["slices"].as_array().unwrap();
    let done: u64 = slices.iter().map(|w| u(w, "completed")).sum();
    assert_eq!(done, 5, "every request ends in one slice");
    assert!(r[1].get("slices").is_none() && r[1].get("steady_state").is_none());

    // At an infinite rate a duration needs a closed loop.
    let mut bad = base.to_vec();
    bad.extend(["--duration", "1"]);
    let err = bench(&bad).await.unwrap_err().to_string();
    assert!(err.contains("needs --max-concurrency"), "{err}");
    let mut bad = base.to_vec();
    bad.extend(["--warmup-ratio", "0.6", "--cooldown-ratio", "0.5"]);
    let err = bench(&bad).await.unwrap_err().to_string();
    assert!(err.contains("together below 1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_metrics_are_scraped_on_the_runs_clock() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let out = s.jsonl();
    let o = bench(&[
        "--base-url",
        &url,
        "--dataset-name",
        "generated-shared-prefix",
        "--gsp-num-groups",
        "2",
        "--gsp-prompts-per-group",
        "3",
        "--gsp-system-prompt-len",
        "64",
        "--gsp-question-len",
        "8",
        "--gsp-output-len",
        "4",
        "--scrape-metrics",
        "20",
        "--output-file",
        &out,
    ])
    .await
    .unwrap();
    assert!(o.success());
    let rec = s.record();
    let sm = &rec["server_metrics"];
    assert_eq!(u(sm, "interval_ms"), 20);
    // The first tick at the start and one after the last request, at least.
    assert!(u(sm, "scrapes") >= 2);
    assert!(sm["warning"].is_null());
    let series = sm["series"].as_array().unwrap();
    let running = series
        .iter()
        .find(|x| x["name"] == "sglang:num_running_reqs")
        .expect("SGLang's running gauge");
    let t = running["t"].as_array().unwrap();
    assert_eq!(t.len(), u(sm, "scrapes") as usize);
    assert!(
        t.windows(2).all(|w| w[0].as_f64() < w[1].as_f64()),
        "on the run's clock"
    );
    let summary = &sm["summary"];
    assert!(summary["queue"]["max"].as_f64().is_some());
    assert!(summary["kv_usage"]["mean"].as_f64().is_some());
    // Shared system prompts: the server's counters show prefix-cache hits during the run.
    assert!(f(summary, "cache_hit_pct") > 0.0, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_metrics_gets_one_warning_and_the_run_goes_on() {
    let m = crate::mock::start(|_| crate::mock::Behaviour::Stream {
        tokens: 3,
        first_ms: 1,
        gap_ms: 1,
        text_len: 1,
    })
    .await;
    let s = Scratch::new();
    let out = s.jsonl();
    let o = bench(&[
        "--base-url",
        &m.url,
        "--dataset-name",
        "random-ids",
        "--num-prompts",
        "4",
        "--random-input-len",
        "4",
        "--random-output-len",
        "3",
        "--tokenize-prompt",
        "--scrape-metrics",
        "--output-file",
        &out,
    ])
    .await
    .unwrap();
    assert!(o.success());
    let w: Vec<&String> = o.runs[0]
        .info
        .warnings
        .iter()
        .filter(|w| w.contains("--scrape-metrics"))
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("/metrics"), "{}", w[0]);
    assert_eq!(u(&s.record()["server_metrics"], "interval_ms"), 1000);
}
