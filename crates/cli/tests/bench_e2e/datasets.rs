//! Datasets against the real server: ShareGPT (a small file in ShareGPT's format), `random`
//! built from it, generated-shared-prefix, custom JSONL and genai-bench scenarios, with the
//! client tokenizer found through the server's /model_info or --tokenizer.

use serde_json::Value;

use crate::common::*;

const SHAREGPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/bench_e2e/sharegpt_small.json"
);

fn lens(r: &Value, key: &str) -> Vec<u64> {
    r[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key}"))
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharegpt_prompts_filters_and_lengths() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let out = s.jsonl();
    let base = [
        "--base-url",
        &url,
        "--dataset-name",
        "sharegpt",
        "--dataset-path",
        SHAREGPT,
        "--output-file",
        &out,
        "--output-details",
    ];
    // Asking for more than the file holds: the 22 conversations with a prompt and a reply of
    // at least 2 tokens each (single-turn, empty and turn-less entries are dropped).
    let mut all = base.to_vec();
    all.extend(["--num-prompts", "100"]);
    assert!(bench(&all).await.unwrap().success());
    // The context-length filter drops the two long conversations.
    let mut short = base.to_vec();
    short.extend(["--num-prompts", "100", "--sharegpt-context-len", "400"]);
    assert!(bench(&short).await.unwrap().success());
    // A fixed output length replaces the replies' lengths.
    let mut fixed = base.to_vec();
    fixed.extend(["--num-prompts", "5", "--sharegpt-output-len", "6"]);
    assert!(bench(&fixed).await.unwrap().success());

    let r = s.records();
    assert_eq!(r[0]["dataset_name"], "sharegpt");
    assert_eq!((u(&r[0], "completed"), u(&r[1], "completed")), (22, 20));
    assert_eq!(u(&r[2], "completed"), 5);
    assert!(lens(&r[2], "output_lens").iter().all(|&n| n == 6));
    assert_eq!(r[2]["sharegpt_output_len"], 6);
    // The client tokenizer (from the server's /model_info) counts prompts as the server
    // does: the dataset's prompt lengths add up to the server's.
    for rec in &r {
        let server_side: u64 = lens(rec, "input_lens").iter().sum();
        assert_eq!(u(rec, "total_input_tokens"), server_side);
        assert!(rec["total_output_tokens_retokenized"].as_u64().unwrap() > 0);
    }
    // Replies set the output lengths: they differ from prompt to prompt.
    let outs = lens(&r[0], "output_lens");
    assert!(outs.iter().min() < outs.iter().max(), "{outs:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_follows_sglang_range_ratio_and_tokenizer_flags() {
    let server = server(|_| {}).await;
    let url = server.url();
    let info: Value = reqwest::get(format!("{url}/model_info"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tokenizer = info["tokenizer_path"].as_str().unwrap().to_string();
    let s = Scratch::new();
    let out = s.jsonl();
    let base = [
        "--base-url",
        &url,
        "--dataset-name",
        "random",
        "--dataset-path",
        SHAREGPT,
        "--output-file",
        &out,
        "--output-details",
        "--tokenize-prompt",
        "--tokenizer",
        &tokenizer,
        "--num-prompts",
        "40",
        "--random-input-len",
        "48",
        "--random-output-len",
        "6",
    ];
    // Ratio 1: exactly the lengths asked for (token ids sent, so the server counts them as is).
    let mut fixed = base.to_vec();
    fixed.extend(["--random-range-ratio", "1"]);
    assert!(bench(&fixed).await.unwrap().success());
    // Ratio 0 (the default): SGLang's uniform draw on [1, L].
    assert!(bench(&base).await.unwrap().success());
    // vLLM's semantics on request: [L(1-r), L(1+r)].
    let mut vllm = base.to_vec();
    vllm.extend(["--random-range-ratio", "0.5", "--range-semantics", "vllm"]);
    assert!(bench(&vllm).await.unwrap().success());

    let r = s.records();
    assert_eq!(r[0]["dataset_name"], "random");
    assert_eq!(r[0]["random_range_ratio"], 1.0);
    assert!(lens(&r[0], "input_lens").iter().all(|&n| n == 48));
    assert!(lens(&r[0], "output_lens").iter().all(|&n| n == 6));
    let wide = lens(&r[1], "input_lens");
    assert!(wide.iter().all(|n| (1..=48).contains(n)), "{wide:?}");
    let mean = wide.iter().sum::<u64>() as f64 / wide.len() as f64;
    assert!(
        mean < 40.0 && wide.iter().min() < wide.iter().max(),
        "{wide:?}"
    );
    assert!(
        lens(&r[1], "output_lens")
            .iter()
            .all(|n| (1..=6).contains(n))
    );
    let v = lens(&r[2], "input_lens");
    assert!(v.iter().all(|n| (24..=72).contains(n)), "{v:?}");
    assert!(
        v.iter().any(|&n| n > 48),
        "vLLM's range goes above L: {v:?}"
    );

    // A tokenizer that is not there is an error naming it, before anything is sent.
    let mut missing = base.to_vec();
    let i = missing
        .iter()
        .position(|a| *a == tokenizer.as_str())
        .unwrap();
    missing[i] = "/no/such/tokenizer";
    let e = bench(&missing).await.unwrap_err().to_string();
    assert!(e.contains("--tokenizer /no/such/tokenizer"), "{e}");
    assert_eq!(s.records().len(), 3);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_shared_prefix_groups_hit_the_prefix_cache() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let out = s.jsonl();
    let cached0 = metric(&server, "sglang:cached_tokens_total").await;
    let outcome = bench(&[
        "--base-url",
        &url,
        "--dataset-name",
        "generated-shared-prefix",
        "--gsp-num-groups",
        "3",
        "--gsp-prompts-per-group",
        "4",
        "--gsp-system-prompt-len",
        "96",
        "--gsp-question-len",
        "8",
        "--gsp-output-len",
        "4",
        "--gsp-send-routing-key",
        "--max-concurrency",
        "1",
        "--output-file",
        &out,
        "--output-details",
    ])
    .await
    .unwrap();
    assert!(outcome.success());
    let r = s.record();
    assert_eq!(r["dataset_name"], "generated-shared-prefix");
    assert_eq!(u(&r, "completed"), 12, "groups x prompts per group");
    assert!(lens(&r, "output_lens").iter().all(|&n| n == 4));
    // One at a time: every request after its group's first finds the system prompt cached.
    let cached = metric(&server, "sglang:cached_tokens_total").await - cached0;
    assert!(cached >= 9.0 * 80.0, "cached {cached} tokens");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_jsonl_and_traffic_scenarios() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let out = s.jsonl();
    let custom = s.path("custom.jsonl");
    std::fs::write(
        &custom,
        "{\"conversations\": [{\"role\": \"user\", \"content\": \"Write a limerick about a cat.\"}, \
           {\"role\": \"assistant\", \"content\": \"There once was a cat on a mat.\"}]}\n\
         not a JSON line\n\
         {\"conversations\": [{\"from\": \"human\", \"value\": \"Name three rivers.\"}, \
           {\"from\": \"gpt\", \"value\": \"The Nile, the Amazon and the Danube.\"}]}\n\
         {\"conversations\": [{\"role\": \"user\", \"content\": \"What is 2 + 2?\"}, \
           {\"role\": \"assistant\", \"content\": \"It is four.\"}]}\n",
    )
    .unwrap();
    let custom = custom.display().to_string();
    let outcome = bench(&[
        "--base-url",
        &url,
        "--backend",
        "sglang-oai-chat",
        "--dataset-name",
        "custom",
        "--dataset-path",
        &custom,
        "--num-prompts",
        "10",
        "--output-file",
        &out,
    ])
    .await
    .unwrap();
    assert!(outcome.success());
    assert_eq!(outcome.requests(), 3, "three usable lines");

    let summary = s.path("summary.csv");
    let summary_s = summary.display().to_string();
    let outcome = bench(&[
        "--base-url",
        &url,
        "--traffic-scenario",
        "D(20,5)",
        "--traffic-scenario",
        "U(8,16)/(2,3)",
        "--traffic-scenario",
        "N(30,5)/(4,1)",
        "--num-prompts",
        "8",
        "--tokenize-prompt",
        "--output-file",
        &out,
        "--output-details",
        "--summary-csv",
        &summary_s,
    ])
    .await
    .unwrap();
    assert_eq!((outcome.runs.len(), outcome.requests()), (3, 24));
    let r = s.records();
    assert_eq!(r.len(), 4);
    assert_eq!(r[0]["dataset_name"], "custom");
    let d = &r[1];
    assert_eq!(d["traffic_scenario"], "D(20,5)");
    assert!(lens(d, "input_lens").iter().all(|&n| n == 20));
    assert!(lens(d, "output_lens").iter().all(|&n| n == 5));
    let uni = &r[2];
    assert_eq!(uni["traffic_scenario"], "U(8,16)/(2,3)");
    assert!(lens(uni, "input_lens").iter().all(|n| (8..=16).contains(n)));
    assert!(lens(uni, "output_lens").iter().all(|n| (2..=3).contains(n)));
    assert_eq!(r[3]["traffic_scenario"], "N(30,5)/(4,1)");
    // One summary row per scenario.
    let rows = read_csv(&summary);
    let labels: Vec<&str> = rows.iter().map(|r| r["run"].as_str()).collect();
    assert_eq!(labels, ["D(20,5)", "U(8,16)/(2,3)", "N(30,5)/(4,1)"]);
    assert!(
        rows.iter()
            .all(|r| r["completed"] == "8" && r["failed"] == "0")
    );
    server.shutdown().await.unwrap();
}
