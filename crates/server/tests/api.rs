//! The HTTP API end to end over a real socket on 127.0.0.1: shapes, streaming, errors, auth,
//! queue limits, client disconnects and cache management.

use std::time::Duration;

use futures::StreamExt;
use loupe_server::{RunningServer, ServeArgs};
use serde_json::{Value, json};

mod common;

use common::{client, get};

async fn start(f: impl FnOnce(&mut ServeArgs)) -> RunningServer {
    common::start(1, f).await
}

async fn post(s: &RunningServer, path: &str, body: Value) -> (u16, Value) {
    let (status, text) = common::post_text(s, path, body).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// POST and collect the SSE `data:` payloads (the `[DONE]` marker included as a string).
async fn sse(s: &RunningServer, path: &str, body: Value) -> Vec<Value> {
    let r = client()
        .post(format!("{}{path}", s.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let d = e
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not an SSE data line: {e}"));
            serde_json::from_str(d).unwrap_or(Value::String(d.to_string()))
        })
        .collect()
}

fn greedy(n: usize) -> Value {
    json!({"max_new_tokens": n, "temperature": 0, "ignore_eos": true})
}

async fn metric(s: &RunningServer, name: &str) -> f64 {
    let (_, text) = get(s, "/metrics").await;
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_non_stream_stream_and_batch() {
    let s = start(|_| {}).await;
    let (status, full) = post(
        &s,
        "/generate",
        json!({"text": "Hello there", "sampling_params": greedy(12)}),
    )
    .await;
    assert_eq!(status, 200, "{full}");
    let meta = &full["meta_info"];
    assert_eq!(meta["completion_tokens"], 12);
    assert_eq!(meta["prompt_tokens"], 12, "byte tokenizer: BOS + 11 bytes");
    assert_eq!(
        meta["finish_reason"],
        json!({"type": "length", "length": 12})
    );
    assert!(meta["e2e_latency"].as_f64().unwrap() > 0.0);
    for key in [
        "id",
        "cached_tokens",
        "reasoning_tokens",
        "weight_version",
        "num_retractions",
    ] {
        assert!(meta.get(key).is_some(), "meta_info.{key} missing");
    }
    assert_eq!(full["output_ids"].as_array().unwrap().len(), 12);

    // Cumulative streaming (SGLang's default): each chunk holds everything so far.
    let chunks = sse(
        &s,
        "/generate",
        json!({"text": "Hello there", "sampling_params": greedy(12), "stream": true}),
    )
    .await;
    assert_eq!(chunks.last().unwrap(), "[DONE]");
    let data = &chunks[..chunks.len() - 1];
    assert_eq!(data.len(), 12);
    for (i, c) in data.iter().enumerate() {
        assert_eq!(c["meta_info"]["completion_tokens"], i + 1);
        assert_eq!(c["output_ids"].as_array().unwrap().len(), i + 1);
        assert_eq!(c["meta_info"].get("e2e_latency").is_some(), i == 11);
    }
    assert_eq!(data[11]["text"], full["text"]);
    assert_eq!(data[11]["output_ids"], full["output_ids"]);
    // The second identical prompt reuses the prefix cache.
    assert!(data[0]["meta_info"]["cached_tokens"].as_u64().unwrap() > 0);

    // Batch input: a list in, a list out; streamed chunks carry "index".
    let (status, batch) = post(
        &s,
        "/generate",
        json!({"input_ids": [[5, 6, 7], [8, 9]], "sampling_params": greedy(3)}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(batch.as_array().unwrap().len(), 2);
    assert_eq!(batch[1]["meta_info"]["prompt_tokens"], 2);
    let chunks = sse(
        &s,
        "/generate",
        json!({"input_ids": [[5, 6, 7], [8, 9]], "sampling_params": greedy(3), "stream": true}),
    )
    .await;
    let mut per_index = [0, 0];
    for c in &chunks[..chunks.len() - 1] {
        per_index[c["index"].as_u64().unwrap() as usize] += 1;
    }
    assert_eq!(per_index, [3, 3]);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_streaming_and_stream_interval() {
    let s = start(|a| a.incremental_streaming_output = true).await;
    let (_, full) = post(
        &s,
        "/generate",
        json!({"input_ids": [10, 20, 30], "sampling_params": greedy(9)}),
    )
    .await;
    let chunks = sse(
        &s,
        "/generate",
        json!({"input_ids": [10, 20, 30], "sampling_params": greedy(9), "stream": true}),
    )
    .await;
    let data = &chunks[..chunks.len() - 1];
    let ids: Vec<Value> = data
        .iter()
        .flat_map(|c| c["output_ids"].as_array().unwrap().clone())
        .collect();
    let text: String = data.iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert_eq!(Value::Array(ids), full["output_ids"]);
    assert_eq!(text, full["text"].as_str().unwrap());
    // Per-request stream_interval: 9 tokens in chunks of 4 -> 1 (first token) + 4 + 4.
    let mut p = greedy(9);
    p["stream_interval"] = json!(4);
    let chunks = sse(
        &s,
        "/generate",
        json!({"input_ids": [10, 20, 30], "sampling_params": p, "stream": true}),
    )
    .await;
    let sizes: Vec<usize> = chunks[..chunks.len() - 1]
        .iter()
        .map(|c| c["output_ids"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [1, 4, 4]);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_completions_and_chat() {
    let s = start(|_| {}).await;
    let (status, v) = post(&s, "/v1/completions", json!({"model": "tiny", "prompt": "abc", "max_tokens": 5, "temperature": 0, "ignore_eos": true})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(
        v["usage"]["total_tokens"],
        v["usage"]["prompt_tokens"].as_u64().unwrap() + 5
    );
    // Default max_tokens is 16, as OpenAI's.
    let (_, v16) = post(
        &s,
        "/v1/completions",
        json!({"prompt": [1, 2, 3], "temperature": 0, "ignore_eos": true}),
    )
    .await;
    assert_eq!(v16["usage"]["completion_tokens"], 16);

    let chunks = sse(
        &s,
        "/v1/completions",
        json!({"prompt": "abc", "max_tokens": 5, "temperature": 0, "ignore_eos": true,
        "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    let n = chunks.len();
    assert_eq!(chunks[n - 1], "[DONE]");
    let usage = &chunks[n - 2];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    assert_eq!(chunks[n - 3]["choices"][0]["finish_reason"], "length");
    let text: String = chunks[..n - 2]
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, v["choices"][0]["text"].as_str().unwrap());

    let chunks = sse(
        &s,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4, "temperature": 0, "ignore_eos": true, "stream": true}),
    )
    .await;
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"reasoning_content": null, "role": "assistant", "content": ""})
    );
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "length");
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "no usage unless asked"
    );
    let (status, v) = post(
        &s,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_completion_tokens": 4, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    // The preset's ChatML template around "hi": 52 bytes, no BOS.
    assert_eq!(v["usage"]["prompt_tokens"], 52);

    let (status, models) = get(&s, "/v1/models").await;
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["data"][0]["id"], "tiny");
    assert_eq!(models["data"][0]["max_model_len"], 8192);
    assert_eq!(get(&s, "/v1/models/nope").await.0, 404);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_strings_and_tokens() {
    let s = start(|_| {}).await;
    let (_, free) = post(
        &s,
        "/generate",
        json!({"input_ids": [40, 41, 42], "sampling_params": greedy(20)}),
    )
    .await;
    let text = free["text"].as_str().unwrap().to_string();
    let ids = free["output_ids"].as_array().unwrap().clone();
    // Stop at the text of output tokens 3..: the output is cut before it.
    let stop: String = text.chars().skip(4).take(3).collect();
    let cut = text.find(&stop).unwrap();
    let (_, v) = post(
        &s,
        "/generate",
        json!({"input_ids": [40, 41, 42],
        "sampling_params": {"max_new_tokens": 20, "temperature": 0, "stop": stop}}),
    )
    .await;
    assert_eq!(
        v["meta_info"]["finish_reason"],
        json!({"type": "stop", "matched": stop})
    );
    assert_eq!(v["text"].as_str().unwrap(), &text[..cut]);
    // Streamed deltas never show the stop string.
    let chunks = sse(&s, "/v1/completions", json!({"prompt": [40, 41, 42], "max_tokens": 20, "temperature": 0, "stop": [stop], "stream": true})).await;
    let streamed: String = chunks[..chunks.len() - 1]
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(streamed, &text[..cut]);
    // A stop token id ends generation with matched = the id.
    let (_, v) = post(
        &s,
        "/generate",
        json!({"input_ids": [40, 41, 42],
        "sampling_params": {"max_new_tokens": 20, "temperature": 0, "stop_token_ids": [ids[2]]}}),
    )
    .await;
    assert_eq!(
        v["meta_info"]["finish_reason"],
        json!({"type": "stop", "matched": ids[2]})
    );
    assert!(v["meta_info"]["completion_tokens"].as_u64().unwrap() <= 3);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_naming_the_field() {
    let s = start(|a| a.context_length = Some(64)).await;
    let raw = client()
        .post(format!("{}/v1/completions", s.url()))
        .body("{\"prompt\": \"x\",")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let v: Value = raw.json().await.unwrap();
    assert_eq!(v["object"], "error");
    assert!(
        v["message"].as_str().unwrap().contains("not valid JSON"),
        "{v}"
    );

    let cases = [
        (
            "/v1/completions",
            json!({"prompt": "x", "temperature": "hot"}),
            "temperature",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "temperature": -0.5}),
            "temperature",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "top_p": 1.5}),
            "top_p",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "max_tokens": null}),
            "max_tokens",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "max_tokens": -3}),
            "max_tokens",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "model": "gpt-4"}),
            "model",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x".repeat(100)}),
            "input_ids",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "max_tokens": 500}),
            "max_new_tokens",
        ),
        ("/v1/completions", json!({"prompt": [1, -2]}), "prompt"),
        (
            "/v1/chat/completions",
            json!({"messages": "hi"}),
            "messages",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"content": "hi"}]}),
            "messages[0].role",
        ),
        (
            "/generate",
            json!({"text": "x", "sampling_params": {"top_k": 0}}),
            "sampling_params.top_k",
        ),
        (
            "/generate",
            json!({"text": "x", "sampling_params": {"max_new_tokens": "many"}}),
            "sampling_params.max_new_tokens",
        ),
        (
            "/generate",
            json!({"text": "x", "sampling_params": {"temprature": 0.5}}),
            "sampling_params.temprature",
        ),
        ("/generate", json!({"text": "x", "bogus": 1}), "bogus"),
        ("/generate", json!({"input_ids": [999999]}), "input_ids"),
        ("/generate", json!({"sampling_params": {}}), "text"),
    ];
    for (path, body, field) in cases {
        let (status, v) = post(&s, path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body}: {v}");
        let param = v["param"].as_str().or(v["error"]["param"].as_str());
        assert_eq!(param, Some(field), "{path} {body}: {v}");
    }
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_and_admin_key() {
    let s = start(|a| {
        a.api_key = Some("sk-user".into());
        a.admin_api_key = Some("sk-admin".into());
    })
    .await;
    let c = client();
    let url = |p: &str| format!("{}{p}", s.url());
    let r = c
        .post(url("/generate"))
        .json(&json!({"text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "Unauthorized"})
    );
    let r = c
        .post(url("/generate"))
        .bearer_auth("wrong")
        .json(&json!({"text": "x", "sampling_params": greedy(1)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(url("/generate"))
        .bearer_auth("sk-user")
        .json(&json!({"text": "x", "sampling_params": greedy(1)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Health and metrics stay open.
    assert_eq!(c.get(url("/health")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(url("/metrics")).send().await.unwrap().status(), 200);
    // Admin routes take the admin key only.
    assert_eq!(
        c.post(url("/flush_cache"))
            .bearer_auth("sk-user")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.post(url("/flush_cache"))
            .bearer_auth("sk-admin")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Keys never leave the server.
    let info: Value = c
        .get(url("/server_info"))
        .bearer_auth("sk-user")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["api_key"], "<redacted>");
    assert_eq!(info["admin_api_key"], "<redacted>");
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_limit_answers_503() {
    let s = start(|a| {
        a.max_running_requests = Some(1);
        a.max_queued_requests = Some(1);
    })
    .await;
    let c = client();
    // A runs (wait for its first chunk), B waits in the queue, C is refused. A asks for nearly
    // the whole context (8,192) so that it is still running however slowly B arrives. B is sent
    // as soon as A's first chunk is in: admission must already count A as running then.
    let a = c
        .post(format!("{}/generate", s.url()))
        .json(&json!({"input_ids": [1, 2, 3], "sampling_params": greedy(8000), "stream": true}))
        .send()
        .await
        .unwrap();
    let mut a_stream = a.bytes_stream();
    a_stream.next().await.unwrap().unwrap();
    let url = s.url();
    let b = tokio::spawn(async move {
        client()
            .post(format!("{url}/generate"))
            .json(&json!({"input_ids": [4, 5], "sampling_params": greedy(2)}))
            .send()
            .await
            .unwrap()
            .status()
    });
    let mut queued = false;
    for _ in 0..1000 {
        if metric(&s, "sglang:num_queue_reqs").await >= 1.0 {
            queued = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(queued, "B never showed in the queue");
    assert_eq!(
        metric(&s, "sglang:num_running_reqs").await,
        1.0,
        "A still runs"
    );
    let (status, v) = post(
        &s,
        "/v1/completions",
        json!({"prompt": [7], "max_tokens": 1}),
    )
    .await;
    assert_eq!(status, 503, "{v}");
    assert!(v["message"].as_str().unwrap().contains("queue is full"));
    drop(a_stream);
    assert_eq!(b.await.unwrap(), 200);
    s.shutdown().await.unwrap();
}

async fn wait_for(s: &RunningServer, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..500 {
        let (_, text) = get(s, "/server_info").await;
        let v: Value = serde_json::from_str(&text).unwrap();
        if cond(&v["internal_states"][0]) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_aborts_and_frees_kv() {
    for radix in [true, false] {
        let s = start(|a| a.disable_radix_cache = !radix).await;
        let r = client()
            .post(format!("{}/generate", s.url()))
            .json(&json!({"input_ids": (0..200).collect::<Vec<u32>>(), "sampling_params": greedy(4000), "stream": true}))
            .send()
            .await
            .unwrap();
        let mut body = r.bytes_stream();
        body.next().await.unwrap().unwrap();
        wait_for(&s, "the request to run", |st| {
            st["num_running_reqs"] == 1 && st["num_used_tokens"].as_u64().unwrap() > 200
        })
        .await;
        drop(body);
        let st = wait_for(&s, "the abort", |st| {
            st["num_running_reqs"] == 0 && st["num_used_tokens"] == 0
        })
        .await;
        let evictable = st["internal_states"][0]["num_evictable_tokens"]
            .as_u64()
            .unwrap();
        if radix {
            assert!(evictable >= 200, "the prompt stays cached: {evictable}");
        } else {
            assert_eq!(evictable, 0);
        }
        assert_eq!(metric(&s, "sglang:num_aborted_requests_total").await, 1.0);
        s.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_cache_only_when_idle() {
    let s = start(|_| {}).await;
    post(
        &s,
        "/generate",
        json!({"input_ids": (0..64).collect::<Vec<u32>>(), "sampling_params": greedy(2)}),
    )
    .await;
    let before = wait_for(&s, "idle", |st| st["num_running_reqs"] == 0).await;
    assert!(
        before["internal_states"][0]["num_evictable_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    let (status, text) = get(&s, "/flush_cache").await;
    assert_eq!(status, 200);
    assert!(text.starts_with("Cache flushed."), "{text}");
    let after = wait_for(&s, "flushed", |_| true).await;
    assert_eq!(after["internal_states"][0]["num_evictable_tokens"], 0);

    let r = client()
        .post(format!("{}/generate", s.url()))
        .json(&json!({"input_ids": [1, 2], "sampling_params": greedy(3000), "stream": true}))
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    body.next().await.unwrap().unwrap();
    let (status, text) = get(&s, "/flush_cache").await;
    assert_eq!(status, 400);
    assert!(text.contains("pending requests"), "{text}");
    let (status, text) = get(&s, "/flush_cache?timeout=abc").await;
    assert_eq!(status, 400, "{text}");
    drop(body);
    // With a timeout the flush waits for the abort to land.
    let (status, _) = get(&s, "/flush_cache?timeout=5").await;
    assert_eq!(status, 200);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_health_metrics_and_overrides() {
    let s = start(|a| {
        a.model_path = "small".into();
        a.json_model_override_args = r#"{"num_hidden_layers": 1, "vocab_size": 1000}"#.into();
        a.served_model_name = Some("my-model".into());
    })
    .await;
    let (_, mi) = get(&s, "/model_info").await;
    let mi: Value = serde_json::from_str(&mi).unwrap();
    assert_eq!(mi["served_model_name"], "my-model");
    assert_eq!(mi["architectures"], json!(["LlamaForCausalLM"]));
    assert_eq!(mi["hf_config"]["num_hidden_layers"], 1);
    assert_eq!(mi["vocab_size"], 1000);
    assert_eq!(
        get(&s, "/get_model_info").await.1,
        serde_json::to_string(&mi).unwrap()
    );
    let (_, si) = get(&s, "/get_server_info").await;
    let si: Value = serde_json::from_str(&si).unwrap();
    assert_eq!(
        si["json_model_override_args"],
        r#"{"num_hidden_layers": 1, "vocab_size": 1000}"#
    );
    assert_eq!(si["hf_config"]["num_hidden_layers"], 1);
    for key in [
        "max_total_num_tokens",
        "max_req_input_len",
        "internal_states",
        "version",
        "tp_size",
    ] {
        assert!(si.get(key).is_some(), "server_info.{key}");
    }
    assert_eq!(get(&s, "/health").await.0, 200);
    assert_eq!(get(&s, "/health_generate").await.0, 200);
    assert_eq!(get(&s, "/ready").await.0, 200);
    post(
        &s,
        "/v1/completions",
        json!({"model": "my-model", "prompt": "hello", "max_tokens": 3}),
    )
    .await;
    assert!(metric(&s, "sglang:generation_tokens_total").await >= 3.0);
    assert!(metric(&s, "sglang:num_requests_total").await >= 1.0);
    let (_, text) = get(&s, "/metrics").await;
    assert!(
        text.contains("sglang:time_to_first_token_seconds_bucket"),
        "{text}"
    );
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_parallel_groups_share_the_load() {
    let s = start(|a| a.dp_size = 2).await;
    let mut tasks = Vec::new();
    for i in 0..8u32 {
        let url = s.url();
        tasks.push(tokio::spawn(async move {
            client()
                .post(format!("{url}/generate"))
                .json(&json!({"input_ids": [i + 3, 9], "sampling_params": greedy(4)}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let (_, text) = get(&s, "/metrics").await;
    let per_dp: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("sglang:generation_tokens_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(per_dp.len(), 2);
    assert!(
        per_dp.iter().all(|&n| n >= 8.0),
        "round robin spreads 8 requests: {per_dp:?}"
    );
    s.shutdown().await.unwrap();
}
