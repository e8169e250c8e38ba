//! `loupe watch` against `loupe serve --dp-size 2 --enable-metrics` with a load that skews
//! one DP group: the imbalance rule fires, the capture's traces exist, and the JSONL holds
//! samples before and after the trigger. Also `--once`, and the exit codes for a server
//! without metrics and a rule that does not parse.

use std::process::Command;

use clap::Parser;
use futures::StreamExt;
use loupe_server::{RunningServer, ServerConfig};
use serde_json::{Value, json};

async fn dp2() -> RunningServer {
    loupe_server::spawn(ServerConfig {
        port: 0,
        threads: Some(1),
        dp_size: 2,
        enable_metrics: true,
        context_length: Some(65536),
        ..Default::default()
    })
    .await
    .expect("server starts")
}

/// Round-robin routing sends request i to group i % 2: alternate long requests (kept
/// streaming) with one-token ones, each sent once the one before is in the server, so every
/// long request lands in the same group. The long streams are returned to keep them open.
async fn skew(url: &str) -> Vec<impl futures::Stream> {
    let client = reqwest::Client::new();
    let mut open = Vec::new();
    for i in 0..8 {
        let long = i % 2 == 0;
        let body = json!({"text": "the watch test", "stream": long,
            "sampling_params": {"max_new_tokens": if long { 60000 } else { 1 }, "ignore_eos": long}});
        let resp = client
            .post(format!("{url}/generate"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        if long {
            let mut stream = resp.bytes_stream();
            stream.next().await.unwrap().unwrap();
            open.push(stream);
        } else {
            resp.bytes().await.unwrap();
        }
    }
    open
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: loupe_cli::cmd::watch::WatchArgs,
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imbalance_rule_fires_and_captures_a_profile() {
    let server = dp2().await;
    let url = server.url();
    let _streams = skew(&url).await;
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("watch.jsonl");
    let traces = tmp.path().join("traces");
    let argv = [
        "watch",
        &url,
        "--interval",
        "0.2",
        "--no-view",
        "--samples",
        "12",
        "--jsonl",
        jsonl.to_str().unwrap(),
        "--trigger",
        "dp_imbalance > 1.5 for 0.4s",
        "--profile-num-steps",
        "3",
        "--profile-output-dir",
        traces.to_str().unwrap(),
        // The idle group records no steps: the capture is stopped after this long.
        "--profile-wait-timeout",
        "2",
    ];
    let cli = Cli::try_parse_from(argv).expect("flags parse");
    let code = loupe_cli::cmd::watch::run(cli.args).await.unwrap();
    assert_eq!(
        format!("{code:?}"),
        format!("{:?}", std::process::ExitCode::SUCCESS)
    );

    let all = lines(&jsonl);
    let trigger = all
        .iter()
        .position(|l| l["event"] == "trigger")
        .unwrap_or_else(|| panic!("no trigger: {all:#?}"));
    let t = &all[trigger];
    assert_eq!(t["rule"], "dp_imbalance > 1.5 for 0.4s");
    assert_eq!(t["engine"], "sglang");
    assert!(t["value"].as_f64().unwrap() > 1.5);
    let samples = |ls: &[Value]| {
        ls.iter()
            .filter(|l| l.get("dp_imbalance").is_some())
            .count()
    };
    assert!(samples(&all[..trigger]) >= 3, "held 0.4 s at 0.2 s apart");
    assert!(
        samples(&all[trigger..]) >= 1,
        "sampling went on during the capture"
    );
    let before = &all[trigger - 1];
    assert_eq!(before["ranks"].as_array().unwrap().len(), 2, "{before}");
    assert_eq!(before["dp_imbalance"], 2.0, "{before}");
    assert_eq!(
        all.iter().filter(|l| l["event"] == "trigger").count(),
        1,
        "one capture, no second"
    );

    let capture = all
        .iter()
        .find(|l| l["event"] == "capture")
        .expect("the capture ended");
    assert_eq!(capture["complete"], true, "{capture}");
    let files = capture["files"].as_array().unwrap();
    assert!(!files.is_empty(), "{capture}");
    for f in files {
        let f = f.as_str().unwrap();
        assert!(f.starts_with(traces.to_str().unwrap()), "{f}");
        assert!(std::fs::metadata(f).unwrap().len() > 0, "{f}");
    }
}

fn loupe(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(args)
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_prints_a_row_per_dp_rank_and_bad_servers_exit_one() {
    let server = dp2().await;
    let url = server.url();
    // Nothing listens there.
    let nm = format!(
        "http://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let (u1, u2) = (url.clone(), nm.clone());
    let out = tokio::task::spawn_blocking(move || {
        loupe(&["watch", &u1, &u2, "--once", "--interval", "0.1"])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one server does not answer: {stdout}"
    );
    let rows: Vec<&str> = stdout.lines().filter(|l| l.contains(&url)).collect();
    assert_eq!(rows.len(), 2, "a row per DP rank: {stdout}");
    assert!(rows.iter().all(|r| r.contains("sglang")), "{stdout}");
    assert!(
        stdout.contains(&nm) && stdout.contains("cannot connect"),
        "{stdout}"
    );

    let out =
        tokio::task::spawn_blocking(move || loupe(&["watch", &url, "--trigger", "imbalance > 2"]))
            .await
            .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown metric \"imbalance\""));
}

/// `loupe serve` without `--enable-metrics` answers /metrics with a 404, as SGLang does:
/// `loupe watch`, `bench --scrape-metrics` and one-batch-server's cache_hit_rate each say
/// once that the server needs the flag, and the runs go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_server_without_metrics_name_enable_metrics() {
    let server = loupe_server::spawn(ServerConfig {
        port: 0,
        threads: Some(1),
        ..Default::default()
    })
    .await
    .expect("server starts");
    let url = server.url();
    let tmp = tempfile::tempdir().unwrap();
    let out_jsonl = tmp.path().join("out.jsonl").display().to_string();
    let result_jsonl = tmp.path().join("result.jsonl").display().to_string();
    let u = url.clone();
    let (watch, bench, obs) = tokio::task::spawn_blocking(move || {
        let watch = loupe(&["watch", &u, "--once", "--interval", "0.1"]);
        let bench = loupe(&[
            "bench",
            "--base-url",
            &u,
            "--dataset-name",
            "random-ids",
            "--num-prompts",
            "2",
            "--random-input-len",
            "4",
            "--random-output-len",
            "2",
            "--disable-tqdm",
            "--scrape-metrics",
            "--output-file",
            &out_jsonl,
        ]);
        let obs = loupe(&[
            "bench",
            "one-batch-server",
            "--base-url",
            &u,
            "--dataset-name",
            "random-ids",
            "--skip-warmup",
            "--batch-size",
            "1",
            "--input-len",
            "4",
            "--output-len",
            "2",
            "--result-filename",
            &result_jsonl,
        ]);
        (watch, bench, obs)
    })
    .await
    .unwrap();
    let all = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let flag = "launched with --enable-metrics";
    assert_eq!(watch.status.code(), Some(1), "{}", all(&watch));
    assert!(
        all(&watch).contains(flag) && all(&watch).contains("HTTP 404"),
        "{}",
        all(&watch)
    );
    assert!(bench.status.success(), "{}", all(&bench));
    assert_eq!(all(&bench).matches(flag).count(), 1, "{}", all(&bench));
    assert!(obs.status.success(), "{}", all(&obs));
    assert_eq!(all(&obs).matches(flag).count(), 1, "{}", all(&obs));
    assert!(all(&obs).contains("cache_hit_rate"), "{}", all(&obs));
}
