//! The file-based datasets bench_serving reads and loupe cannot download here: openai chat
//! requests, LongBench-v2 rows and SPEED-Bench rows, small files written in each format, sent
//! to `loupe serve`; and malformed lines named by file and line.

use std::io::Write;

use crate::common::*;

fn write(s: &Scratch, name: &str, text: &str) -> String {
    let p = s.path(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p.display().to_string()
}

fn lens(r: &serde_json::Value, key: &str) -> Vec<u64> {
    r[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_lines_keep_their_messages_lengths_and_body_keys() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let lines = [
        r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}], "max_tokens": 3, "temperature": 0.0}"#,
        r#"{"messages": [{"role": "user", "content": [{"type": "text", "text": "Name a colour"}]}], "max_completion_tokens": 5, "model": "ignored"}"#,
        r#"{"messages": [{"role": "user", "content": "not taken"}], "max_tokens": 7}"#,
    ];
    let path = write(&s, "chat.jsonl", &lines.join("\n"));
    let out = s.jsonl();
    for backend in ["sglang-oai-chat", "sglang-oai"] {
        let o = bench(&[
            "--base-url",
            &url,
            "--backend",
            backend,
            "--dataset-name",
            "openai",
            "--dataset-path",
            &path,
            "--num-prompts",
            "2",
            "--output-file",
            &out,
            "--output-details",
        ])
        .await
        .unwrap();
        assert!(o.success(), "{backend}");
    }
    for r in s.records() {
        assert_eq!(r["dataset_name"], "openai");
        assert_eq!(
            lens(&r, "output_lens"),
            [3, 5],
            "first --num-prompts lines, in order"
        );
        assert!(u(&r, "total_input_tokens") > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longbench_v2_and_speed_bench_rows() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let row = |c: &str| {
        serde_json::json!({"_id": c, "context": format!("Context {c}: the sky was green."),
                           "question": "What colour was the sky?", "choice_A": "blue",
                           "choice_B": "green", "choice_C": "red", "choice_D": "grey"})
        .to_string()
    };
    let lb = write(
        &s,
        "longbench.jsonl",
        &[row("a"), row("b"), row("c")].join("\n"),
    );
    let out = s.jsonl();
    let o = bench(&[
        "--base-url",
        &url,
        "--dataset-name",
        "longbench_v2",
        "--dataset-path",
        &lb,
        "--num-prompts",
        "2",
        "--output-file",
        &out,
        "--output-details",
    ])
    .await
    .unwrap();
    assert!(o.success());
    let speed = [
        r#"{"category": "mixed", "turns": ["Write a haiku about rust.", "Another"]}"#,
        r#"{"category": "low_entropy", "turns": ["Count to five."]}"#,
        r#"{"category": "mixed", "turns": ["Say hello."]}"#,
    ];
    let sb = write(&s, "speed.jsonl", &speed.join("\n"));
    let o = bench(&[
        "--base-url",
        &url,
        "--dataset-name",
        "speed-bench",
        "--dataset-path",
        &sb,
        "--speed-bench-category",
        "mixed",
        "--num-prompts",
        "5",
        "--speed-bench-output-len",
        "4",
        "--output-file",
        &out,
        "--output-details",
    ])
    .await
    .unwrap();
    assert!(o.success());
    let r = s.records();
    assert_eq!(r[0]["dataset_name"], "longbench_v2");
    assert_eq!(
        lens(&r[0], "output_lens"),
        [10, 10],
        "bench_serving's 10 tokens"
    );
    // Prompts of about 60 tokens each, counted by the client tokenizer as the server does.
    let inputs = lens(&r[0], "input_lens");
    assert!(inputs.iter().all(|&n| n > 40), "{inputs:?}");
    assert_eq!(r[1]["dataset_name"], "speed-bench");
    // Two mixed rows, repeated and shuffled to five prompts.
    assert_eq!(lens(&r[1], "output_lens"), [4; 5]);
    let err = bench(&[
        "--base-url",
        &url,
        "--dataset-name",
        "speed-bench",
        "--dataset-path",
        &sb,
        "--speed-bench-category",
        "loud",
        "--output-file",
        &out,
    ])
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("--speed-bench-category loud: use one of low_entropy"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_trace_line_is_named_and_skipped_only_when_asked() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let trace = [
        r#"{"timestamp": 0, "input_length": 40, "output_length": 3, "hash_ids": [1]}"#,
        r#"{"timestamp": 10, "input_length": 40, "output_length": 3}"#,
        r#"{"timestamp": 20, "input_length": 40, "output_length": 3, "hash_ids": [2]}"#,
    ];
    let path = write(&s, "trace.jsonl", &trace.join("\n"));
    let out = s.jsonl();
    let base = [
        "--base-url",
        &url,
        "--dataset-name",
        "mooncake",
        "--dataset-path",
        &path,
        "--mooncake-block-tokens",
        "32",
        "--output-file",
        &out,
    ];
    let err = bench(&base).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("{path}:2: `hash_ids` is missing")),
        "{err}"
    );
    let mut skip = base.to_vec();
    skip.push("--skip-bad-lines");
    let o = bench(&skip).await.unwrap();
    assert!(o.success());
    assert_eq!(o.runs[0].records.len(), 2);
    // Without --dataset-path nor a cached trace, loupe says where the trace comes from.
    let err = bench(&[
        "--base-url",
        &url,
        "--dataset-name",
        "mooncake",
        "--mooncake-workload",
        "toolagent",
        "--output-file",
        &out,
    ])
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("FAST25-release/traces/toolagent_trace.jsonl"),
        "{err}"
    );
}
