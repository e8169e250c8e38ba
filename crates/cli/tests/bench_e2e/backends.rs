//! Every backend against `loupe serve` over a real socket: the route it speaks, bench_serving's
//! JSONL keys appended to --output-file, the --output-details arrays, and output tokens taken
//! from the server's own counts.

use serde_json::Value;

use crate::common::*;

const N: usize = 6;
/// Long enough that the streams go to the receive thread (16 tokens or more), and that a busy
/// machine cannot put every chunk of every stream into one read (the tiny preset steps in
/// about a millisecond; 8-token streams did merge whole under parallel test load).
const OUT: u64 = 24;

async fn run_backend(backend: &str, url: &str, s: &Scratch) -> Value {
    let out = s.jsonl();
    let n = N.to_string();
    let o = OUT.to_string();
    let outcome = bench(&[
        "--backend",
        backend,
        "--base-url",
        url,
        "--dataset-name",
        "random-ids",
        "--num-prompts",
        &n,
        "--random-input-len",
        "24",
        "--random-output-len",
        &o,
        "--random-range-ratio",
        "1",
        "--output-file",
        &out,
        "--output-details",
        "--tag",
        backend,
    ])
    .await
    .unwrap_or_else(|e| panic!("{backend}: {e}"));
    assert!(outcome.success(), "{backend}: {outcome:?}");
    s.records().pop().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_writes_bench_serving_keys_and_details() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    for (i, backend) in [
        "sglang",
        "sglang-oai",
        "sglang-oai-chat",
        "vllm",
        "vllm-chat",
    ]
    .iter()
    .enumerate()
    {
        let tokens_before = metric(&server, "sglang:generation_tokens_total").await;
        let requests_before = metric(&server, "sglang:num_requests_total").await;
        let r = run_backend(backend, &url, &s).await;
        assert_eq!(s.records().len(), i + 1, "each run appends one line");

        // bench_serving's keys, in its order, then loupe's own.
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(&keys[..SGLANG_KEYS.len()], SGLANG_KEYS, "{backend}");
        for k in DETAIL_KEYS {
            assert!(
                r[k].as_array().is_some_and(|a| a.len() == N),
                "{backend}: {k}"
            );
        }
        assert_eq!(r["backend"], *backend);
        assert_eq!(r["tag"], *backend);
        assert_eq!(r["dataset_name"], "random-ids");
        assert_eq!(r["request_rate"], "inf");
        assert_eq!(u(&r, "completed"), N as u64);
        assert_eq!(u(&r, "failed"), 0);
        assert_eq!(
            r["server_info"]["model_path"], "tiny",
            "{backend}: /server_info"
        );

        // Output tokens are the server's counts: ignore_eos makes them exactly the request's,
        // and the server generated exactly those plus the warmup request's.
        assert_eq!(u(&r, "total_output_tokens"), N as u64 * OUT, "{backend}");
        assert_eq!(u(&r, "output_len_assumed"), 0, "{backend}: usage was read");
        let generated = metric(&server, "sglang:generation_tokens_total").await - tokens_before;
        assert_eq!(generated as u64, (N as u64 + 1) * OUT, "{backend}");
        let sent = metric(&server, "sglang:num_requests_total").await - requests_before;
        assert_eq!(sent as usize, N + 1, "{backend}: N requests and one warmup");

        // Latencies are real and ordered as their definitions say.
        let (ttft, e2e, tpot, itl) = (
            f(&r, "mean_ttft_ms"),
            f(&r, "mean_e2e_latency_ms"),
            f(&r, "mean_tpot_ms"),
            f(&r, "mean_itl_ms"),
        );
        assert!(
            ttft > 0.0 && tpot > 0.0 && itl > 0.0,
            "{backend}: {ttft} {tpot} {itl}"
        );
        assert!(e2e > ttft, "{backend}: E2E {e2e} <= TTFT {ttft}");
        assert!(
            (e2e - ttft - tpot * (OUT - 1) as f64).abs() < 1e-6 * e2e.max(1.0) + 1e-3,
            "{backend}: TPOT is (E2E - TTFT) / (out - 1) per request, so the means agree"
        );
        let dur = f(&r, "duration");
        assert!(
            (f(&r, "output_throughput") - (N as f64 * OUT as f64) / dur).abs() < 1e-6,
            "{backend}"
        );
        assert!(f(&r, "concurrency") > 0.0 && u(&r, "max_concurrent_requests") >= 1);

        // Per-request arrays: one entry per request, texts generated, no errors. ITL lists hold
        // at most out-1 gaps: a token that ends inside a UTF-8 character streams as an empty
        // chunk, which is not content (bench_serving's rule), so its gap joins the next one.
        let details_ok =
            |k: &str, p: &dyn Fn(&Value) -> bool| r[k].as_array().unwrap().iter().all(p);
        assert!(details_ok("output_lens", &|v| v.as_u64() == Some(OUT)));
        assert!(details_ok("ttfts", &|v| v
            .as_f64()
            .is_some_and(|t| t > 0.0)));
        assert!(details_ok("itls", &|v| v.as_array().is_some_and(|a| {
            (1..OUT as usize).contains(&a.len()) && a.iter().all(|g| g.as_f64().unwrap() >= 0.0)
        })));
        assert!(details_ok("generated_texts", &|v| v
            .as_str()
            .is_some_and(|t| !t.is_empty())));
        assert!(details_ok("errors", &|v| v == ""));
        assert!(details_ok("input_lens", &|v| v
            .as_u64()
            .is_some_and(|n| n > 0)));
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_port_api_keys_and_headers() {
    let server = server(|a| a.api_key = Some("sekret".into())).await;
    let port = server.addr.port().to_string();
    let s = Scratch::new();
    let out = s.jsonl();
    let common = [
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--dataset-name",
        "random-ids",
        "--num-prompts",
        "3",
        "--random-input-len",
        "16",
        "--random-output-len",
        "4",
        "--output-file",
        &out,
        "--ready-check-timeout-sec",
        "1",
    ];
    // Without the key the readiness check itself is refused: a clear error, not a run.
    let e = bench(&common).await.unwrap_err().to_string();
    assert!(
        e.contains("/v1/models") && e.contains("401") && e.contains("--api-key"),
        "{e}"
    );

    let mut with_key = common.to_vec();
    with_key.extend(["--api-key", "sekret"]);
    assert!(bench(&with_key).await.unwrap().success());

    // --header KEY=VALUE reaches the server (here: the Authorization header itself).
    let mut with_header = common.to_vec();
    with_header.extend(["--header", "Authorization=Bearer sekret"]);
    assert!(bench(&with_header).await.unwrap().success());
    let recs = s.records();
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|r| u(r, "completed") == 3));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_a_server_that_comes_up_late() {
    // A free port, then a server that binds it only after the benchmark started waiting.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let late = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        server(|a| a.port = port).await
    });
    let s = Scratch::new();
    let out = s.jsonl();
    let url = format!("http://127.0.0.1:{port}");
    let t0 = std::time::Instant::now();
    let outcome = bench(&[
        "--base-url",
        &url,
        "--dataset-name",
        "random-ids",
        "--num-prompts",
        "2",
        "--random-output-len",
        "4",
        "--random-input-len",
        "8",
        "--output-file",
        &out,
        "--ready-check-timeout-sec",
        "30",
    ])
    .await
    .unwrap();
    assert!(outcome.success());
    assert!(
        t0.elapsed().as_secs_f64() >= 1.4,
        "it waited for the server"
    );
    late.await.unwrap().shutdown().await.unwrap();

    // Nobody ever listens: the wait ends with an error naming the URL.
    let e = bench(&[
        "--base-url",
        &url,
        "--ready-check-timeout-sec",
        "0.5",
        "--output-file",
        &out,
    ])
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(&format!("{url}/v1/models")) && e.contains("not ready"),
        "{e}"
    );
}
