//! `/generate`'s batched forms as SGLang accepts them: a list of texts, a list of input_id
//! lists (one_batch_server's exact body), `index` on every streamed chunk, parallel samples
//! (`n > 1`, also per input of a batch), and a 400 naming the field for every other shape.

use serde_json::{Value, json};

mod common;

use common::{App, app, greedy, request};

/// The `data:` events of a streamed reply, `[DONE]` checked and dropped.
async fn stream(s: &App, body: Value) -> Vec<Value> {
    let (status, ctype, text) = s
        .send(request("POST", "/generate", None, Some(&body.to_string())))
        .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(ctype, "text/event-stream");
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").expect("SSE data line"))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

/// Per index: the completion_tokens of its chunks, in order.
fn per_index(chunks: &[Value], n: usize) -> Vec<Vec<u64>> {
    let mut out = vec![Vec::new(); n];
    for c in chunks {
        let i = c["index"].as_u64().expect("every chunk has an index") as usize;
        out[i].push(c["meta_info"]["completion_tokens"].as_u64().unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_servers_body_streams_every_index() {
    let s = app(|_| {}).await;
    // sglang.benchmark.one_batch_server's request, key for key.
    let body = json!({
        "input_ids": [[5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]],
        "sampling_params": {"temperature": 0.0, "max_new_tokens": 4, "ignore_eos": true,
                            "json_schema": null, "stream_interval": 1},
        "return_logprob": false,
        "stream": true,
    });
    let chunks = stream(&s, body).await;
    assert_eq!(per_index(&chunks, 3), vec![vec![1, 2, 3, 4]; 3]);
    for c in chunks
        .iter()
        .filter(|c| c["meta_info"]["completion_tokens"] == 4)
    {
        assert_eq!(c["meta_info"]["finish_reason"]["type"], "length");
        assert_eq!(c["meta_info"]["prompt_tokens"], 4);
    }
    // A stream interval of 2: the first token at once, then every second one, then the
    // last (SGLang's rule); the counts stay cumulative.
    let chunks = stream(
        &s,
        json!({"text": ["Hello", "Hi there"], "stream": true,
               "sampling_params": {"max_new_tokens": 4, "temperature": 0, "ignore_eos": true,
                                   "stream_interval": 2}}),
    )
    .await;
    assert_eq!(per_index(&chunks, 2), vec![vec![1, 3, 4]; 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_samples_become_a_list_ordered_by_input_then_sample() {
    let s = app(|_| {}).await;
    let mut sp = greedy(3);
    sp["n"] = 3.into();
    let (status, v) = s
        .post("/generate", json!({"text": "Hello", "sampling_params": sp}))
        .await;
    assert_eq!(status, 200, "{v}");
    let outs = v
        .as_array()
        .expect("n > 1 answers a list even for one text");
    assert_eq!(outs.len(), 3);
    // Greedy samples of one prompt agree; each has its own request id.
    assert_eq!(outs[0]["output_ids"], outs[2]["output_ids"]);
    assert_ne!(outs[0]["meta_info"]["id"], outs[1]["meta_info"]["id"]);

    sp["n"] = 2.into();
    let (status, v) = s
        .post(
            "/generate",
            json!({"input_ids": [[5, 6], [7, 8, 9, 10, 11]], "sampling_params": sp}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let prompt_tokens: Vec<u64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["meta_info"]["prompt_tokens"].as_u64().unwrap())
        .collect();
    assert_eq!(
        prompt_tokens,
        [2, 2, 5, 5],
        "output i*n + j is input i's sample j"
    );

    let chunks = stream(
        &s,
        json!({"input_ids": [[5, 6], [7, 8, 9]], "sampling_params": sp, "stream": true}),
    )
    .await;
    assert_eq!(per_index(&chunks, 4), vec![vec![1, 2, 3]; 4]);
    for c in &chunks {
        let want = if c["index"].as_u64().unwrap() < 2 {
            2
        } else {
            3
        };
        assert_eq!(c["meta_info"]["prompt_tokens"], want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_shapes_are_a_400_naming_the_field() {
    let s = app(|_| {}).await;
    let mut two = greedy(2);
    two["n"] = 2.into();
    let cases = [
        (json!({"input_ids": [[1, 2], 3]}), "input_ids[1]"),
        (json!({"input_ids": [[1, 2], [-1]]}), "input_ids[1]"),
        (json!({"text": []}), "text"),
        (json!({"text": ["a", 5]}), "text[1]"),
        (
            json!({"text": ["a", "b"], "sampling_params": [greedy(2)]}),
            "sampling_params",
        ),
        (
            json!({"text": ["a", "b"], "sampling_params": [greedy(2), two]}),
            "sampling_params[1].n",
        ),
        (
            json!({"text": "a", "sampling_params": {"n": 0}}),
            "sampling_params.n",
        ),
        (
            json!({"input_ids": [[1, 2]], "parallel_batch": true}),
            "parallel_batch",
        ),
        (json!({"input_ids": [[1, 2]], "rid": "one"}), "rid"),
    ];
    for (body, field) in cases {
        let (status, v) = s.post("/generate", body.clone()).await;
        assert_eq!(status, 400, "{body} -> {v}");
        assert!(
            v.to_string().contains(field),
            "{body} -> {v} should name {field}"
        );
    }
    // The OpenAI routes keep one choice per request.
    let (status, v) = s
        .post("/v1/completions", json!({"prompt": "a", "n": 2}))
        .await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_info_reports_what_one_batch_server_sizes_cases_by() {
    let s = app(|a| {
        a.max_running_requests = Some(7);
        a.max_total_tokens = Some(5000);
    })
    .await;
    let v: Value = serde_json::from_str(&s.get("/server_info").await.1).unwrap();
    let st = &v["internal_states"][0];
    assert_eq!(st["effective_max_running_requests_per_dp"], 7);
    assert_eq!(st["dp_size"], 1);
    assert_eq!(st["memory_usage"]["token_capacity"], 5000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_info_names_a_tokenizer_clients_can_load() {
    let s = app(|_| {}).await;
    let v: Value = serde_json::from_str(&s.get("/server_info").await.1).unwrap();
    let dir = std::path::Path::new(v["tokenizer_path"].as_str().expect("a path for the preset"));
    assert!(dir.join("tokenizer.json").is_file(), "{}", dir.display());
}

/// The scheduler's forward-step count (`/server_info`) once it has counted at least
/// `at_least` steps and is idle again (the idle state is published after the last step's
/// count, so the figure read then is final).
async fn settled_steps(s: &App, at_least: u64) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, body) = s.get("/server_info").await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let st = &v["internal_states"][0];
        let steps = st["forward_steps"].as_u64().unwrap();
        if steps >= at_least && st["num_running_reqs"] == 0 && st["num_queue_reqs"] == 0 {
            return steps;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the scheduler never settled: {st}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_prefilled_in_one_step_as_sglang_sends_it_whole() {
    // SGLang's tokenizer manager hands a pre-tokenized batch to the scheduler as one
    // message; loupe's scheduler must likewise see all eight prompts before it plans the
    // step (one message per prompt let it start a prefill on the first one alone).
    let s = app(|_| {}).await;
    let one = |ids: Value| {
        json!({
            "input_ids": ids,
            "sampling_params": {"temperature": 0.0, "max_new_tokens": 1, "ignore_eos": true},
            "stream": true,
        })
    };
    let mut before = settled_steps(&s, 0).await;
    for round in 0..5u32 {
        let ids: Vec<Vec<u32>> = (0..8)
            .map(|i| {
                (0..16)
                    .map(|j| 3 + ((round * 8 + i) * 16 + j) % 200)
                    .collect()
            })
            .collect();
        let chunks = stream(&s, one(json!(ids))).await;
        assert_eq!(per_index(&chunks, 8), vec![vec![1]; 8]);
        // A single request after it: by its end every step of the batch has been counted.
        stream(&s, one(json!([7, 8, 9]))).await;
        let after = settled_steps(&s, before + 2).await;
        assert_eq!(
            after - before,
            2,
            "round {round}: eight 16-token prompts, one new token each, take one extend step \
             (and the single request after them one)"
        );
        before = after;
    }
}
