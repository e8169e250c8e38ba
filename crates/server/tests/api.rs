//! The HTTP API end to end over a real socket on 127.0.0.1, for what needs one: SSE streams,
//! queue limits with streams held open, client disconnects, and one request per endpoint
//! family. Handlers that need no socket are tested in `handlers.rs`.

use std::time::Duration;

use futures::StreamExt;
use loupe_server::{RunningServer, ServerConfig};
use serde_json::{Value, json};

mod common;

use common::{client, get, greedy, metric_sum};

async fn start(f: impl FnOnce(&mut ServerConfig)) -> RunningServer {
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

async fn metric(s: &RunningServer, name: &str) -> f64 {
    metric_sum(&get(s, "/metrics").await.1, name)
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
    // The preset tokenizer: BOS, "Hello", " t" (one synthetic-word piece), "here".
    assert_eq!(meta["prompt_tokens"], 11);
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
async fn openai_streams_match_the_full_responses() {
    let s = start(|_| {}).await;
    let (status, v) = post(&s, "/v1/completions", json!({"model": "tiny", "prompt": "abc", "max_tokens": 5, "temperature": 0, "ignore_eos": true})).await;
    assert_eq!(status, 200, "{v}");
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

/// One request per endpoint family over the socket: native, OpenAI, models, info and
/// health, cache, metrics, profiling, with the API key read from a real header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_family_over_a_socket() {
    let s = start(|a| a.api_key = Some("sk".into())).await;
    let c = client();
    let url = |p: &str| format!("{}{p}", s.url());
    let r = c.get(url("/v1/models")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let get = |p: &str| c.get(url(p)).bearer_auth("sk").send();
    let post = |p: &str, body: Value| c.post(url(p)).bearer_auth("sk").json(&body).send();

    let r = post(
        "/generate",
        json!({"text": "hi", "sampling_params": greedy(3)}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["meta_info"]["completion_tokens"], 3);
    let r = post(
        "/v1/completions",
        json!({"prompt": "hi", "max_tokens": 2, "ignore_eos": true}),
    )
    .await
    .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["usage"]["completion_tokens"],
        2
    );
    let r = post(
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "ignore_eos": true}),
    )
    .await
    .unwrap();
    let chat: Value = r.json().await.unwrap();
    assert_eq!(chat["choices"][0]["message"]["role"], "assistant");
    let chat_tokens = chat["usage"]["completion_tokens"].as_f64().unwrap();
    assert!((1.0..=2.0).contains(&chat_tokens), "{chat}");
    let models: Value = get("/v1/models").await.unwrap().json().await.unwrap();
    assert_eq!(models["data"][0]["id"], "tiny");
    let info: Value = get("/model_info").await.unwrap().json().await.unwrap();
    assert_eq!(info["model_path"], "tiny");
    let info: Value = get("/server_info").await.unwrap().json().await.unwrap();
    assert_eq!(info["api_key"], "<redacted>");
    assert_eq!(c.get(url("/health")).send().await.unwrap().status(), 200);
    let r = post("/flush_cache", json!({})).await.unwrap();
    assert_eq!(r.status(), 200);
    let text = c
        .get(url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Exactly the tokens the three responses report: `/health` generated one more token, with
    // `log_metrics` off as SGLang's health check runs, so it stays out of the counters.
    let generated = metric_sum(&text, "sglang:generation_tokens_total");
    assert_eq!(generated, 3.0 + 2.0 + chat_tokens, "{text}");
    let st: Value = get("/profile_status").await.unwrap().json().await.unwrap();
    assert_eq!(st["state"], "idle", "{st}");
    s.shutdown().await.unwrap();
}
