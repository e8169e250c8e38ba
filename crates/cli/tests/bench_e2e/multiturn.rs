//! Multi-turn traffic against `loupe serve`: mooncake replays (rounds in order with the
//! server's real replies, and bench_serving's canned replay), agentic traces and
//! generated-shared-prefix conversations, with per-turn figures and the prefix-cache hits
//! the server reported. The trace files are small ones written in each format.

use std::io::Write;

use loupe_bench::record::RequestRecord;

use crate::common::*;

/// Two sessions sharing their first block, one on its own, 20 ms apart in the trace.
const MOONCAKE: &str = r#"{"timestamp": 0, "input_length": 120, "output_length": 4, "hash_ids": [1, 2]}
{"timestamp": 20, "input_length": 180, "output_length": 4, "hash_ids": [1, 2, 3]}
{"timestamp": 40, "input_length": 60, "output_length": 4, "hash_ids": [9]}
"#;

fn write(s: &Scratch, name: &str, text: &str) -> String {
    let p = s.path(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p.display().to_string()
}

fn rounds(recs: &[RequestRecord], session: u32) -> Vec<&RequestRecord> {
    let mut v: Vec<&RequestRecord> = recs.iter().filter(|r| r.session == Some(session)).collect();
    v.sort_by_key(|r| r.turn);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mooncake_rounds_go_in_order_with_the_real_reply_in_the_history() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let trace = write(&s, "trace.jsonl", MOONCAKE);
    let out = s.jsonl();
    let outcome = bench(&[
        "--base-url",
        &url,
        "--backend",
        "sglang",
        "--dataset-name",
        "mooncake",
        "--dataset-path",
        &trace,
        "--mooncake-num-rounds",
        "2",
        "--mooncake-block-tokens",
        "64",
        "--mooncake-slowdown-factor",
        "2",
        "--cache-report",
        "--output-file",
        &out,
    ])
    .await
    .unwrap();
    assert!(outcome.success());
    let recs = &outcome.runs[0].records;
    assert_eq!(recs.len(), 6, "3 sessions x 2 rounds");
    for session in 0..3 {
        let r = rounds(recs, session);
        assert_eq!(r.iter().map(|x| x.turn).collect::<Vec<_>>(), [0, 1]);
        // The second round leaves after the first ended, and carries its history: the first
        // round's prompt and reply, then the second user message.
        assert!(r[1].start >= r[0].start + r[0].latency, "{session}");
        let (p0, p1) = (
            r[0].server_prompt_len.unwrap(),
            r[1].server_prompt_len.unwrap(),
        );
        assert!(p1 + 40 > 2 * p0 + r[0].output_len, "{p0} {p1}");
        // The server's radix cache holds the first round, reply included.
        assert!(
            r[1].cached_tokens.unwrap() >= p0,
            "{:?} {p0}",
            r[1].cached_tokens
        );
    }
    // Sessions start at their timestamps times the slowdown factor: 0, 40 and 80 ms.
    let starts: Vec<f64> = (0..3).map(|k| rounds(recs, k)[0].intended).collect();
    assert_eq!(starts, [0.0, 0.04, 0.08]);
    // The second session shares the first's two blocks (128 tokens).
    assert!(rounds(recs, 1)[0].cached_tokens.unwrap() >= 100);

    let rec = s.record();
    assert_eq!(rec["dataset_name"], "mooncake");
    assert_eq!(rec["request_rate"], "trace");
    assert!(u(&rec, "total_input_tokens") > 0, "upstream reports 0 here");
    let turns = rec["per_turn"].as_array().unwrap();
    assert_eq!(turns.len(), 2);
    assert_eq!(
        (u(&turns[0], "completed"), u(&turns[1], "completed")),
        (3, 3)
    );
    assert!(f(&turns[1], "cache_hit_rate_pct") > f(&turns[0], "cache_hit_rate_pct"));
    assert!(f(&turns[0], "mean_ttft_ms") > 0.0 && f(&turns[1], "mean_tpot_ms") > 0.0);
    assert!(f(&rec, "cache_hit_rate_pct") > 0.0);
    // bench_serving's cache_report, right after max_concurrent_requests.
    let keys: Vec<&String> = rec.as_object().unwrap().keys().collect();
    let at = keys.iter().position(|k| *k == "cache_report").unwrap();
    assert_eq!(keys[at - 1], "max_concurrent_requests");
    let c = &rec["cache_report"];
    let server_counted: usize = recs.iter().map(|r| r.server_prompt_len.unwrap()).sum();
    assert_eq!(u(c, "total_prompt_tokens"), server_counted as u64);
    assert!(u(c, "total_cached_tokens") > 0);
    assert_eq!(c["device_cached_tokens"], c["total_cached_tokens"]);
    assert!(c["host_cached_tokens"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mooncake_canned_replay_sends_every_round_at_once_on_a_chat_backend() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    // One block: bench_serving's text is about three times as long as the block in tokens.
    let one = r#"{"timestamp": 0, "input_length": 60, "output_length": 4, "hash_ids": [5]}"#;
    let trace = write(&s, "trace.jsonl", one);
    let out = s.jsonl();
    let outcome = bench(&[
        "--base-url",
        &url,
        "--backend",
        "sglang-oai-chat",
        "--dataset-name",
        "mooncake",
        "--dataset-path",
        &trace,
        "--mooncake-num-rounds",
        "2",
        "--mooncake-history",
        "canned",
        "--output-file",
        &out,
        "--warmup-requests",
        "0",
    ])
    .await
    .unwrap();
    assert!(outcome.success());
    let r = rounds(&outcome.runs[0].records, 0);
    assert_eq!(r.len(), 2);
    // Both rounds due at the session's start; the second one's history holds the canned
    // reply ("story" x 4) instead of the first round's answer.
    assert_eq!((r[0].intended, r[1].intended), (0.0, 0.0));
    assert!(r[1].start < r[0].start + r[0].latency);
    // bench_serving's text: "5hi hi ..." (128 per block) then the closing sentence.
    assert!(r[0].server_prompt_len.unwrap() > 128);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agentic_traces_rotate_cap_turns_and_drop_assistant_messages() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let doc = serde_json::json!({
        "metadata": {"source": "test"},
        "conversations": [
            [{"messages": [{"role": "user", "content": "never sent"}], "prompt_tokens": 3}],
            [
                {"messages": [{"role": "system", "content": "You fix bugs."},
                              {"role": "user", "content": "Fix the test."}], "prompt_tokens": 20},
                {"messages": [{"role": "assistant", "content": "dropped"}]},
                {"messages": [{"role": "tool", "content": [{"type": "text", "text": "ok"}]}],
                 "prompt_tokens": 40},
                {"messages": [{"role": "user", "content": "capped"}]}
            ]
        ]
    });
    let path = write(&s, "agentic.json", &doc.to_string());
    let out = s.jsonl();
    let outcome = bench(&[
        "--base-url",
        &url,
        "--backend",
        "vllm-chat",
        "--dataset-name",
        "agentic-trace",
        "--dataset-path",
        &path,
        "--dataset-offset",
        "1",
        "--num-prompts",
        "1",
        "--agentic-max-turns",
        "2",
        "--sharegpt-output-len",
        "5",
        "--output-file",
        &out,
    ])
    .await
    .unwrap();
    assert!(outcome.success());
    let recs = &outcome.runs[0].records;
    // The second conversation only; its assistant-only turn dropped, the third turn capped.
    assert_eq!(recs.iter().map(|r| r.turn).collect::<Vec<_>>(), [0, 1]);
    assert!(
        recs.iter()
            .all(|r| r.output_len == 5 && r.session == Some(0))
    );
    // The trace's prompt_tokens are the intended lengths of the rounds.
    assert_eq!(
        recs.iter().map(|r| r.prompt_len).collect::<Vec<_>>(),
        [20, 40]
    );
    let p = |i: usize| recs[i].server_prompt_len.unwrap();
    assert!(p(1) > p(0) + 5, "{} {}", p(0), p(1));

    // A malformed conversation is named, and skipped only when asked.
    let bad = r#"{"conversations": [[{"messages": "oops"}]]}"#;
    let path = write(&s, "bad.json", bad);
    let base = [
        "--base-url",
        &url,
        "--backend",
        "vllm-chat",
        "--dataset-name",
        "agentic-trace",
        "--dataset-path",
        &path,
        "--output-file",
        &out,
    ];
    let err = bench(&base).await.unwrap_err().to_string();
    assert!(
        err.contains("bad.json: conversations[0]: turn 0: `messages`"),
        "{err}"
    );
    let mut skip = base.to_vec();
    skip.push("--skip-bad-lines");
    let err = bench(&skip).await.unwrap_err().to_string();
    assert!(err.contains("no prompts were left"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_shared_prefix_conversations_on_the_completions_route() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let out = s.jsonl();
    let outcome = bench(&[
        "--base-url",
        &url,
        "--backend",
        "sglang-oai",
        "--dataset-name",
        "generated-shared-prefix",
        "--gsp-num-groups",
        "2",
        "--gsp-prompts-per-group",
        "2",
        "--gsp-system-prompt-len",
        "64",
        "--gsp-question-len",
        "8",
        "--gsp-output-len",
        "4",
        "--gsp-num-turns",
        "3",
        "--gsp-send-routing-key",
        "--max-concurrency",
        "2",
        "--output-file",
        &out,
    ])
    .await
    .unwrap();
    assert!(outcome.success());
    let recs = &outcome.runs[0].records;
    assert_eq!(recs.len(), 12, "4 conversations x 3 turns");
    for k in 0..4 {
        let r = rounds(recs, k);
        assert_eq!(r.len(), 3);
        let p: Vec<usize> = r.iter().map(|x| x.server_prompt_len.unwrap()).collect();
        assert!(p[0] < p[1] && p[1] < p[2], "the history grows: {p:?}");
    }
    let rec = s.record();
    assert_eq!(rec["per_turn"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_round_carries_the_servers_reply_to_the_round_before() {
    let m = crate::mock::start(|_| crate::mock::Behaviour::Status(500, "unused")).await;
    let s = Scratch::new();
    let doc = serde_json::json!({"conversations": [[
        {"messages": [{"role": "user", "content": "one"}]},
        {"messages": [{"role": "user", "content": "two"}]},
        {"messages": [{"role": "user", "content": "three"}]}
    ]]});
    let path = write(&s, "agentic.json", &doc.to_string());
    let out = s.jsonl();
    let outcome = bench(&[
        "--base-url",
        &m.url,
        "--backend",
        "sglang-oai-chat",
        "--dataset-name",
        "agentic-trace",
        "--dataset-path",
        &path,
        "--warmup-requests",
        "0",
        "--output-file",
        &out,
    ])
    .await
    .unwrap();
    assert!(outcome.success());
    let chats = m.mock.chats.lock().unwrap().clone();
    assert_eq!(chats.len(), 3);
    let roles_contents = |i: usize| -> Vec<(String, String)> {
        chats[i]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["role"].as_str().unwrap().into(),
                    m["content"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let pair = |r: &str, c: &str| (r.to_string(), c.to_string());
    assert_eq!(roles_contents(0), [pair("user", "one")]);
    assert_eq!(
        roles_contents(2),
        [
            pair("user", "one"),
            pair("assistant", "reply-0"),
            pair("user", "two"),
            pair("assistant", "reply-1"),
            pair("user", "three")
        ]
    );
    assert_eq!(chats[1]["stream_options"]["include_usage"], true);
    // Cached tokens per round, as the usage details said (half the messages).
    let cached: Vec<Option<usize>> = outcome.runs[0]
        .records
        .iter()
        .map(|r| r.cached_tokens)
        .collect();
    assert_eq!(cached, [Some(0), Some(1), Some(2)]);
}
