//! The handlers without a socket: the route table over a started engine, called with
//! `Router::oneshot` — validation errors, auth levels, info and health routes, the models
//! list, non-streamed completions, cache flushes, `/metrics` and what a client counts of the
//! served text. Streaming, disconnects and one request per endpoint family over a real socket
//! are in `api.rs`.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;

use common::{App, app, greedy, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_naming_the_field() {
    let s = app(|a| a.context_length = Some(64)).await;
    let (status, _, text) = s
        .send(request(
            "POST",
            "/v1/completions",
            None,
            Some("{\"prompt\": \"x\","),
        ))
        .await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&text).unwrap();
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
        let (status, v) = s.post(path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body}: {v}");
        let param = v["param"].as_str().or(v["error"]["param"].as_str());
        assert_eq!(param, Some(field), "{path} {body}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_and_admin_key() {
    let s = app(|a| {
        a.api_key = Some("sk-user".into());
        a.admin_api_key = Some("sk-admin".into());
    })
    .await;
    let generate = |key| {
        let body = json!({"text": "x", "sampling_params": greedy(1)}).to_string();
        request("POST", "/generate", key, Some(&body))
    };
    let (status, _, body) = s.send(generate(None)).await;
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"error": "Unauthorized"})
    );
    assert_eq!(s.send(generate(Some("wrong"))).await.0, 401);
    assert_eq!(s.send(generate(Some("sk-user"))).await.0, 200);
    // Health and metrics stay open.
    assert_eq!(s.get("/health").await.0, 200);
    assert_eq!(s.get("/metrics").await.0, 200);
    // Admin routes take the admin key only.
    let flush = |key| request("POST", "/flush_cache", key, None);
    assert_eq!(s.send(flush(None)).await.0, 401);
    assert_eq!(s.send(flush(Some("sk-user"))).await.0, 401);
    assert_eq!(s.send(flush(Some("sk-admin"))).await.0, 200);
    assert_eq!(
        s.send(request("GET", "/profile_status", Some("sk-user"), None))
            .await
            .0,
        401
    );
    // Keys never leave the server.
    let (status, _, info) = s
        .send(request("GET", "/server_info", Some("sk-user"), None))
        .await;
    assert_eq!(status, 200);
    assert!(
        !info.contains("sk-user") && !info.contains("sk-admin"),
        "{info}"
    );
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["api_key"], "<redacted>");
    assert_eq!(info["admin_api_key"], "<redacted>");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_health_metrics_and_overrides() {
    let s = app(|a| {
        a.model_path = "small".into();
        a.json_model_override_args = r#"{"num_hidden_layers": 1, "vocab_size": 1000}"#.into();
        a.served_model_name = Some("my-model".into());
    })
    .await;
    let (_, mi) = s.get("/model_info").await;
    let mi: Value = serde_json::from_str(&mi).unwrap();
    assert_eq!(mi["served_model_name"], "my-model");
    assert_eq!(mi["architectures"], json!(["LlamaForCausalLM"]));
    assert_eq!(mi["hf_config"]["num_hidden_layers"], 1);
    assert_eq!(mi["vocab_size"], 1000);
    assert_eq!(
        s.get("/get_model_info").await.1,
        serde_json::to_string(&mi).unwrap()
    );
    let (_, si) = s.get("/get_server_info").await;
    let si: Value = serde_json::from_str(&si).unwrap();
    assert_eq!(
        si["json_model_override_args"],
        r#"{"num_hidden_layers": 1, "vocab_size": 1000}"#
    );
    assert_eq!(si["hf_config"]["num_hidden_layers"], 1);
    assert_eq!(si["launch_command"], "loupe serve (test)");
    for key in [
        "max_total_num_tokens",
        "max_req_input_len",
        "internal_states",
        "version",
        "tp_size",
    ] {
        assert!(si.get(key).is_some(), "server_info.{key}");
    }
    assert_eq!(s.get("/health").await.0, 200);
    assert_eq!(s.get("/health_generate").await.0, 200);
    assert_eq!(s.get("/ready").await, (200, "ready\n".to_string()));
    s.post(
        "/v1/completions",
        json!({"model": "my-model", "prompt": "hello", "max_tokens": 3}),
    )
    .await;
    assert!(s.metric("sglang:generation_tokens_total").await >= 3.0);
    assert!(s.metric("sglang:num_requests_total").await >= 1.0);
    let (_, ctype, text) = s.send(request("GET", "/metrics", None, None)).await;
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert!(
        text.contains("sglang:time_to_first_token_seconds_bucket"),
        "{text}"
    );
}

/// SGLang mounts `/metrics` only with `--enable-metrics`: without it the route is FastAPI's
/// 404, and so is loupe's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_enable_metrics() {
    let s = app(|a| a.enable_metrics = false).await;
    let (status, ctype, body) = s.send(request("GET", "/metrics", None, None)).await;
    assert_eq!((status, ctype.as_str()), (404, "application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"detail": "Not Found"})
    );
    assert_eq!(s.get("/health").await.0, 200, "the other routes are there");
}

/// Every config value reaches `/server_info` under its own key, as the config serializes
/// (`served_model_name` and `context_length` report the values in force, so they are set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_info_reports_the_config() {
    let s = app(|a| {
        a.max_total_tokens = Some(4096);
        a.served_model_name = Some("m".into());
        a.context_length = Some(1024);
    })
    .await;
    let (_, si) = s.get("/server_info").await;
    let si: Value = serde_json::from_str(&si).unwrap();
    let config = s.state.config.redacted_json();
    for (key, want) in config.as_object().unwrap() {
        if key == "tokenizer_path" {
            // The path in force, as SGLang resolves it (a preset's exported tokenizer).
            assert_eq!(si[key].as_str(), s.state.tokenizer_path.as_deref());
            continue;
        }
        assert_eq!(&si[key], want, "server_info.{key}");
    }
    assert_eq!(si["max_total_num_tokens"], 4096);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_list_and_non_streamed_completions() {
    let s = app(|_| {}).await;
    let (status, models) = s.get("/v1/models").await;
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "tiny");
    assert_eq!(models["data"][0]["max_model_len"], 8192);
    let (status, one) = s.get("/v1/models/tiny").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&one).unwrap(),
        models["data"][0]
    );
    assert_eq!(s.get("/v1/models/nope").await.0, 404);

    let (status, v) = s
        .post(
            "/v1/completions",
            json!({"model": "tiny", "prompt": "abc", "max_tokens": 5, "temperature": 0, "ignore_eos": true}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(
        v["usage"]["total_tokens"],
        v["usage"]["prompt_tokens"].as_u64().unwrap() + 5
    );
    // Default max_tokens is 16, as OpenAI's.
    let (_, v16) = s
        .post(
            "/v1/completions",
            json!({"prompt": [1, 2, 3], "temperature": 0, "ignore_eos": true}),
        )
        .await;
    assert_eq!(v16["usage"]["completion_tokens"], 16);
    let (status, v) = s
        .post(
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "max_completion_tokens": 4, "temperature": 0}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    // The preset's ChatML template around "hi": 52 bytes (no space, so no multi-byte
    // piece), no BOS.
    assert_eq!(v["usage"]["prompt_tokens"], 52);
}

async fn wait_for(s: &App, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..500 {
        let (_, text) = s.get("/server_info").await;
        let v: Value = serde_json::from_str(&text).unwrap();
        if cond(&v["internal_states"][0]) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_cache_only_when_idle() {
    let s = app(|_| {}).await;
    s.post(
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
    let (status, text) = s.get("/flush_cache").await;
    assert_eq!(status, 200);
    assert!(text.starts_with("Cache flushed."), "{text}");
    let after = wait_for(&s, "flushed", |_| true).await;
    assert_eq!(after["internal_states"][0]["num_evictable_tokens"], 0);

    // A running request (its stream held open, first chunk read) makes the flush refuse.
    let body = json!({"input_ids": [1, 2], "sampling_params": greedy(3000), "stream": true});
    let r = s
        .router
        .clone()
        .oneshot(request("POST", "/generate", None, Some(&body.to_string())))
        .await
        .unwrap();
    let mut stream = r.into_body().into_data_stream();
    stream.next().await.unwrap().unwrap();
    let (status, text) = s.get("/flush_cache").await;
    assert_eq!(status, 400);
    assert!(text.contains("pending requests"), "{text}");
    let (status, text) = s.get("/flush_cache?timeout=abc").await;
    assert_eq!(status, 400, "{text}");
    drop(stream);
    // With a timeout the flush waits for the abort to land.
    let (status, _) = s.get("/flush_cache?timeout=5").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_parallel_groups_share_the_load() {
    let s = app(|a| a.dp_size = 2).await;
    let tasks: Vec<_> = (0..8u32)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.post(
                    "/generate",
                    json!({"input_ids": [i + 3, 9], "sampling_params": greedy(4)}),
                )
                .await
                .0
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let (_, text) = s.get("/metrics").await;
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
}

/// A fresh server's `/metrics`, byte for byte as loupe has served it: every metric name,
/// label, bucket bound and value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_exposition_of_a_fresh_server() {
    let s = app(|a| {
        a.max_total_tokens = Some(4096);
        a.dp_size = 2;
    })
    .await;
    let (status, text) = s.get("/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(text, include_str!("data/metrics_fresh_dp2.txt"));
}

/// A served model name with a quote, a backslash and a newline is escaped in every label,
/// so each sample stays one line that a Prometheus parser reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_escape_the_model_name() {
    let s = app(|a| a.served_model_name = Some("my \"m\"\\x\nv2".into())).await;
    let (_, text) = s.get("/metrics").await;
    let escaped = r#"model_name="my \"m\"\\x\nv2""#;
    let mut samples = 0;
    for line in text.lines() {
        if line.starts_with('#') {
            assert!(line.starts_with("# HELP sglang:") || line.starts_with("# TYPE sglang:"));
            continue;
        }
        samples += 1;
        assert!(line.starts_with("sglang:"), "{line}");
        let (labels, value) = line.rsplit_once(' ').unwrap();
        value.parse::<f64>().unwrap();
        assert!(labels.contains(&format!("{{{escaped},")), "{line}");
    }
    assert!(samples > 50, "{text}");
}

/// What the tiny preset generates, as the server sends it, re-tokenizes (with the files
/// `/model_info` points clients to) to the tokens the server says it generated: within 3%.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_text_re_tokenizes_to_its_token_count() {
    let s = app(|_| {}).await;
    let (_, mi) = s.get("/model_info").await;
    let mi: Value = serde_json::from_str(&mi).unwrap();
    let dir = mi["tokenizer_path"].as_str().unwrap();
    let client = loupe_engine::Tokenizer::from_dir(std::path::Path::new(dir)).unwrap();
    let (mut generated, mut retokenized) = (0, 0);
    for (i, temperature) in [0.0, 0.7, 1.0, 1.5].into_iter().enumerate() {
        let (status, v) = s
            .post(
                "/generate",
                json!({"text": format!("prompt {i}: once upon a time"),
                "sampling_params": {"max_new_tokens": 300, "temperature": temperature, "ignore_eos": true}}),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        generated += v["meta_info"]["completion_tokens"].as_u64().unwrap();
        retokenized += client
            .encode(v["text"].as_str().unwrap(), false)
            .unwrap()
            .len() as u64;
    }
    assert_eq!(generated, 1200);
    let ratio = retokenized as f64 / generated as f64;
    assert!(
        (0.97..=1.03).contains(&ratio),
        "{generated} generated, {retokenized} retokenized"
    );
}
