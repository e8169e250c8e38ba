//! bench_serving's Triton (trt), Truss and embedding backends, against the scripted server:
//! their bodies as upstream builds them, their streams (no [DONE] on Triton) and the
//! latency-only embeddings; gserver refused as upstream fails it.

use crate::common::*;
use crate::mock::{self, Behaviour};

fn bodies(m: &mock::MockServer, kind: &str) -> Vec<serde_json::Value> {
    m.mock
        .others
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, b)| b.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trt_truss_and_embeddings_backends() {
    let m = mock::start(|_| Behaviour::Status(500, "unused")).await;
    // The reference server's tokenizer, to make text prompts for the mock.
    let server = server(|_| {}).await;
    let info: serde_json::Value = reqwest::get(format!("{}/model_info", server.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tokenizer = info["tokenizer_path"].as_str().unwrap().to_string();
    let s = Scratch::new();
    let out = s.jsonl();
    let common = [
        "--base-url",
        &m.url,
        "--dataset-name",
        "random-ids",
        "--num-prompts",
        "3",
        "--random-input-len",
        "8",
        "--random-output-len",
        "5",
        "--random-range-ratio",
        "1",
        "--output-file",
        &out,
        "--warmup-requests",
        "0",
    ];
    // Triton and Truss take text: random-ids decoded by the tokenizer.
    let mut trt = common.to_vec();
    trt.extend(["--backend", "trt"]);
    let err = bench(&trt).await.unwrap_err().to_string();
    assert!(err.contains("--backend trt needs --model"), "{err}");
    trt.extend(["--model", "ensemble", "--tokenizer", &tokenizer]);
    let o = bench(&trt).await.unwrap();
    assert!(
        o.success(),
        "{:?}",
        o.runs[0].first_failure().map(|r| &r.error)
    );
    let r = &o.runs[0].records[0];
    assert_eq!(r.generated_text, "abc");
    assert_eq!(
        (r.gaps.len(), r.output_len),
        (2, 5),
        "requested length, as upstream"
    );
    let b = &bodies(&m, "trt")[0];
    assert_eq!(b["accumulate_tokens"], true);
    assert_eq!(
        (b["max_tokens"].clone(), b["min_length"].clone()),
        (5.into(), 5.into())
    );
    assert_eq!(b["end_id"], 1048576);
    assert!(b["text_input"].is_string());

    let mut truss = common.to_vec();
    truss.extend([
        "--backend",
        "truss",
        "--model",
        "m",
        "--tokenizer",
        &tokenizer,
    ]);
    let o = bench(&truss).await.unwrap();
    assert!(o.success());
    assert_eq!(o.runs[0].records[0].generated_text, "xy");
    let b = &bodies(&m, "truss")[0];
    assert_eq!(
        (b["model"].clone(), b["best_of"].clone()),
        ("m".into(), 1.into())
    );
    assert_eq!(b["stream"], true);

    let mut emb = common.to_vec();
    emb.extend(["--backend", "sglang-embedding", "--tokenize-prompt"]);
    let o = bench(&emb).await.unwrap();
    assert!(o.success());
    let r = &o.runs[0].records[0];
    assert_eq!((r.output_len, r.server_prompt_len), (0, Some(7)));
    assert!(r.latency > 0.0 && r.ttft == 0.0);
    let b = &bodies(&m, "embeddings")[0];
    assert_eq!(b["model"], "mock");
    assert_eq!(b["input"].as_array().unwrap().len(), 8);
    let rec = s.records().pop().unwrap();
    assert_eq!(rec["backend"], "sglang-embedding");
    assert_eq!(u(&rec, "total_output_tokens"), 0);

    let conv = [
        "--base-url",
        &m.url,
        "--backend",
        "vllm-embedding",
        "--dataset-name",
        "mooncake",
    ];
    let err = bench(&conv).await.unwrap_err().to_string();
    assert!(
        err.contains("--backend vllm-embedding cannot send conversations"),
        "{err}"
    );
    let mut g = common.to_vec();
    g.extend(["--backend", "gserver"]);
    let err = bench(&g).await.unwrap_err().to_string();
    assert!(err.contains("NotImplementedError"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_stream_times_one_response_per_request() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let out = s.jsonl();
    for backend in ["sglang", "sglang-oai", "sglang-oai-chat"] {
        let o = bench(&[
            "--base-url",
            &url,
            "--backend",
            backend,
            "--dataset-name",
            "random-ids",
            "--num-prompts",
            "3",
            "--random-input-len",
            "16",
            "--random-output-len",
            "4",
            "--random-range-ratio",
            "1",
            "--disable-stream",
            "--output-file",
            &out,
        ])
        .await
        .unwrap();
        assert!(
            o.success(),
            "{backend}: {:?}",
            o.runs[0].first_failure().map(|r| &r.error)
        );
        for r in &o.runs[0].records {
            // bench_serving without a stream: TTFT is the latency, no ITL, usage's count.
            assert_eq!(r.ttft, r.latency, "{backend}");
            assert!(
                r.gaps.is_empty() && r.output_len == 4 && r.output_len_reported,
                "{backend}"
            );
            assert!(!r.generated_text.is_empty(), "{backend}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lora_adapters_and_body_flags_reach_every_request() {
    let m = mock::start(|_| Behaviour::Status(500, "unused")).await;
    let s = Scratch::new();
    let line = |i: usize| {
        format!(r#"{{"messages": [{{"role": "user", "content": "line {i}"}}], "max_tokens": 2}}"#)
    };
    let path = s.path("chat.jsonl");
    std::fs::write(&path, (0..4).map(line).collect::<Vec<_>>().join("\n")).unwrap();
    let path = path.display().to_string();
    let out = s.jsonl();
    let o = bench(&[
        "--base-url",
        &m.url,
        "--backend",
        "sglang-oai-chat",
        "--dataset-name",
        "openai",
        "--dataset-path",
        &path,
        "--lora-name",
        "a",
        "b",
        "--lora-request-distribution",
        "distinct",
        "--fake-prefill",
        "--warmup-requests",
        "0",
        "--max-concurrency",
        "1",
        "--output-file",
        &out,
    ])
    .await
    .unwrap();
    assert!(o.success());
    let chats = m.mock.chats.lock().unwrap().clone();
    // Round robin over the dataset's order (the requests may reach the server in any order).
    let mut by_line: Vec<(String, String)> = chats
        .iter()
        .map(|c| {
            let content = c["messages"][0]["content"].as_str().unwrap().to_string();
            (content, c["model"].as_str().unwrap().to_string())
        })
        .collect();
    by_line.sort();
    let models: Vec<&str> = by_line.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(models, ["a", "b", "a", "b"]);
    assert!(chats.iter().all(|c| c["lora_path"] == c["model"]));
    assert!(
        chats
            .iter()
            .all(|c| c["bootstrap_host"] == "2.2.2.2" && c["bootstrap_room"] == 0)
    );
    // bench_serving's rules for the distribution.
    let err = bench(&[
        "--base-url",
        &m.url,
        "--dataset-name",
        "openai",
        "--dataset-path",
        &path,
        "--lora-name",
        "a",
        "--lora-request-distribution",
        "skewed",
        "--output-file",
        &out,
    ])
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("two for --lora-request-distribution"), "{err}");
}
