//! OpenAI-compatible routes with SGLang's shapes: `/v1/completions`, `/v1/chat/completions`
//! (delta streaming, `stream_options.include_usage`), `/v1/models`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use loupe_engine::{ChatMessage, FinishReason, RequestOutput, SamplingParams};
use serde_json::{Value, json};

use crate::error::{ApiError, Surface};
use crate::generate::{SSE_DONE, common_sampling, single_choice, sse_event, sse_headers};
use crate::parse::{Fields, json_object, kind, reject_unsupported, token_list};
use crate::state::{AppState, NewRequest, Pending, unix_now};

const S: Surface = Surface::OpenAi;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Completions,
    Chat,
}

/// Settings shared by the completion and chat routes.
struct Common {
    model: String,
    stream: bool,
    include_usage: bool,
    continuous_usage: bool,
    params: SamplingParams,
}

fn read_common(st: &AppState, f: &Fields<'_>, route: Route) -> Result<Common, ApiError> {
    let model = match f.str("model")? {
        None => st.served_model_name.clone(),
        Some(m) if m == st.served_model_name => m.to_string(),
        Some(m) => {
            return Err(f.err(
                "model",
                format!(
                    "The model '{m}' does not exist; this server serves '{}'.",
                    st.served_model_name
                ),
            ));
        }
    };
    let stream = f.bool("stream")?.unwrap_or(false);
    let opts = f
        .object("stream_options")?
        .map(|o| Fields::new(o, "stream_options.", S));
    let include_usage = match &opts {
        Some(o) => o.bool("include_usage")?.unwrap_or(false),
        None => false,
    } || st.config.stream_response_default_include_usage;
    let continuous_usage = match &opts {
        Some(o) => o.bool("continuous_usage_stats")?.unwrap_or(false),
        None => false,
    };
    reject_unsupported(
        f,
        &[
            ("logprobs", "no logprobs"),
            ("top_logprobs", "no logprobs"),
            ("echo", "no prompt echo"),
            ("suffix", "no suffix"),
            ("tools", "no tool calling"),
            ("response_format", "no constrained decoding"),
            ("lora_path", "no LoRA adapters"),
        ],
    )?;
    let mut p = SamplingParams::default();
    match route {
        Route::Completions => {
            // OpenAI's default and SGLang's non-Optional field: explicit null is an error.
            if f.map.get("max_tokens") == Some(&Value::Null) {
                return Err(f.err("max_tokens", "must be an integer > 0, got null"));
            }
            p.max_new_tokens = f.u64("max_tokens")?.unwrap_or(16) as usize;
            if p.max_new_tokens == 0 {
                return Err(f.err("max_tokens", "must be greater than 0"));
            }
        }
        Route::Chat => {
            // Unbounded by default: up to the context length (clipped once the prompt is known).
            let max = f.u64("max_completion_tokens")?.or(f.u64("max_tokens")?);
            p.max_new_tokens = max.map_or(usize::MAX, |m| m as usize);
        }
    }
    if let Some(v) = f.u64("min_tokens")? {
        p.min_new_tokens = v as usize;
    }
    p.seed = f.u64("seed")?;
    single_choice(f)?;
    if route == Route::Chat && p.max_new_tokens == usize::MAX {
        // Validation would compare against usize::MAX; check everything else now.
        let mut probe = p.clone();
        probe.max_new_tokens = probe.min_new_tokens.max(1);
        common_sampling(f, &mut probe)?;
        p = SamplingParams {
            max_new_tokens: usize::MAX,
            ..probe
        };
    } else {
        common_sampling(f, &mut p)?;
    }
    Ok(Common {
        model,
        stream,
        include_usage,
        continuous_usage,
        params: p,
    })
}

fn usage(prompt: usize, completion: usize, cached: usize, report_cache: bool) -> Value {
    let mut u = json!({
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "reasoning_tokens": 0,
    });
    if report_cache && cached > 0 {
        u["prompt_tokens_details"] = json!({"cached_tokens": cached});
    }
    u
}

fn finish_str(out: &RequestOutput) -> Value {
    out.finish.as_ref().map_or(Value::Null, |f| f.kind().into())
}

fn matched(out: &RequestOutput) -> Value {
    out.finish
        .as_ref()
        .map_or(Value::Null, FinishReason::matched_stop)
}

fn prompts_from(st: &AppState, f: &Fields<'_>) -> Result<Vec<Vec<u32>>, ApiError> {
    let Some(prompt) = f.get("prompt") else {
        return Err(f.err("prompt", "is required"));
    };
    let encode = |s: &str| st.encode(s, true).map_err(|e| f.err("prompt", e));
    match prompt {
        Value::String(s) => Ok(vec![encode(s)?]),
        Value::Array(items) if items.is_empty() => Err(f.err("prompt", "must not be empty")),
        Value::Array(items) => match &items[0] {
            Value::String(_) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v.as_str() {
                    Some(s) => encode(s),
                    None => Err(f.err(&format!("prompt[{i}]"), "must be a string")),
                })
                .collect(),
            Value::Array(_) => items
                .iter()
                .enumerate()
                .map(|(i, v)| token_list(v).map_err(|m| f.err(&format!("prompt[{i}]"), m)))
                .collect(),
            _ => Ok(vec![token_list(prompt).map_err(|m| f.err("prompt", m))?]),
        },
        v => Err(f.err(
            "prompt",
            format!(
                "must be a string, a list of strings or token ids, got {}",
                kind(v)
            ),
        )),
    }
}

fn chat_prompt(st: &AppState, f: &Fields<'_>) -> Result<Vec<u32>, ApiError> {
    let Some(Value::Array(msgs)) = f.get("messages") else {
        return Err(f.err("messages", "is required and must be a list of messages"));
    };
    if msgs.is_empty() {
        return Err(f.err("messages", "must not be empty"));
    }
    let mut messages = Vec::with_capacity(msgs.len());
    // Image placeholder tokens, in the order the images come (crate::vision).
    let mut vision: Vec<u32> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let path = format!("messages[{i}]");
        let Some(obj) = m.as_object() else {
            return Err(f.err(&path, "must be an object"));
        };
        let mf = Fields::new(obj, &format!("{path}."), S);
        let role = mf
            .str("role")?
            .ok_or_else(|| mf.err("role", "is required"))?;
        let content = match mf.get("content") {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for (j, part) in parts.iter().enumerate() {
                    let Some(pobj) = part.as_object() else {
                        return Err(f.err(&format!("{path}.content[{j}]"), "must be an object"));
                    };
                    let pfx = Fields::new(pobj, &format!("{path}.content[{j}]."), S);
                    match pfx.str("type")? {
                        Some("text") => text.push_str(pfx.str("text")?.unwrap_or_default()),
                        Some("image_url") => {
                            let url = match pfx.get("image_url") {
                                Some(Value::String(u)) => u.as_str(),
                                Some(Value::Object(o)) => match o.get("url") {
                                    Some(Value::String(u)) => u.as_str(),
                                    _ => {
                                        return Err(pfx.err(
                                            "image_url.url",
                                            "is required and must be a string",
                                        ));
                                    }
                                },
                                _ => {
                                    return Err(pfx.err(
                                        "image_url",
                                        "is required: {\"url\": \"data:image/...;base64,...\"}",
                                    ));
                                }
                            };
                            let vocab = st.engine.config().vocab_size;
                            let ids = crate::vision::image_tokens(url, vocab)
                                .map_err(|e| pfx.err("image_url.url", e))?;
                            vision.extend(ids);
                        }
                        other => {
                            return Err(pfx.err(
                                "type",
                                format!(
                                    "content part type {other:?} is not supported (text and \
                                     image_url only)"
                                ),
                            ));
                        }
                    }
                }
                text
            }
            Some(v) => {
                return Err(mf.err(
                    "content",
                    format!("must be a string or a list of parts, got {}", kind(v)),
                ));
            }
        };
        messages.push(ChatMessage {
            role: role.to_string(),
            content,
        });
    }
    let tok = st
        .engine
        .tokenizer()
        .ok_or_else(|| f.err("messages", "the server runs with --skip-tokenizer-init"))?;
    let text = tok
        .apply_chat_template(&messages, true)
        .map_err(|e| f.err("messages", e.to_string()))?;
    // The template already carries the special tokens it wants.
    let ids = st.encode(&text, false).map_err(|e| f.err("messages", e))?;
    if vision.is_empty() {
        return Ok(ids);
    }
    vision.extend(ids);
    Ok(vision)
}

pub async fn completions(
    State(st): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let obj = json_object(&body, S)?;
    let f = Fields::new(&obj, "", S);
    let c = read_common(&st, &f, Route::Completions)?;
    let prompts = prompts_from(&st, &f)?;
    let rid = f
        .str("rid")?
        .map(str::to_string)
        .unwrap_or_else(|| st.new_rid());
    let mut pending = Vec::with_capacity(prompts.len());
    for (i, ids) in prompts.into_iter().enumerate() {
        let sub_rid = if i == 0 {
            rid.clone()
        } else {
            format!("{rid}-{i}")
        };
        let req = NewRequest {
            rid: sub_rid,
            input_ids: ids,
            params: c.params.clone(),
            stream: c.stream,
            stream_interval: None,
            log_metrics: true,
        };
        pending.push(st.submit(S, i, req)?);
    }
    run(st, Route::Completions, c, rid, pending).await
}

pub async fn chat_completions(
    State(st): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let obj = json_object(&body, S)?;
    let f = Fields::new(&obj, "", S);
    let mut c = read_common(&st, &f, Route::Chat)?;
    let ids = chat_prompt(&st, &f)?;
    if c.params.max_new_tokens == usize::MAX {
        c.params.max_new_tokens = st.engine.context_length().saturating_sub(ids.len());
    }
    let rid = f
        .str("rid")?
        .map(str::to_string)
        .unwrap_or_else(|| st.new_rid());
    let req = NewRequest {
        rid: rid.clone(),
        input_ids: ids,
        params: c.params.clone(),
        stream: c.stream,
        stream_interval: None,
        log_metrics: true,
    };
    let pending = vec![st.submit(S, 0, req)?];
    run(st, Route::Chat, c, rid, pending).await
}

async fn run(
    st: Arc<AppState>,
    route: Route,
    c: Common,
    rid: String,
    pending: Vec<Pending>,
) -> Result<Response, ApiError> {
    let created = unix_now();
    let id = match route {
        Route::Completions => rid,
        Route::Chat => format!("chatcmpl-{rid}"),
    };
    let report_cache = st.config.enable_cache_report;
    if !c.stream {
        let mut choices = Vec::new();
        let (mut prompt, mut completion, mut cached) = (0, 0, 0);
        for mut p in pending {
            let mut text = String::new();
            let mut last = None;
            while let Some(out) = p.next().await {
                text.push_str(&out.text);
                last = Some(out);
            }
            let last = last.expect("a request always ends with an output");
            prompt += last.prompt_tokens;
            completion += last.completion_tokens;
            cached += last.cached_tokens;
            choices.push(match route {
                Route::Completions => json!({
                    "index": p.index, "text": text, "logprobs": null,
                    "finish_reason": finish_str(&last), "matched_stop": matched(&last),
                }),
                Route::Chat => json!({
                    "index": p.index,
                    "message": {"role": "assistant", "content": text, "reasoning_content": null, "tool_calls": null},
                    "logprobs": null, "finish_reason": finish_str(&last), "matched_stop": matched(&last),
                }),
            });
        }
        let object = match route {
            Route::Completions => "text_completion",
            Route::Chat => "chat.completion",
        };
        return Ok(axum::Json(json!({
            "id": id, "object": object, "created": created, "model": c.model,
            "choices": choices, "usage": usage(prompt, completion, cached, report_cache),
        }))
        .into_response());
    }

    let object = match route {
        Route::Completions => "text_completion",
        Route::Chat => "chat.completion.chunk",
    };
    let template =
        Arc::new(json!({"id": id, "object": object, "created": created, "model": c.model}));
    let per_request = pending.into_iter().map(|p| {
        let st = st.clone();
        let template = template.clone();
        let continuous = c.continuous_usage;
        futures::stream::unfold((p, st, false), move |(mut p, st, started)| {
            let template = template.clone();
            async move {
                let head = |choices: Value| with_choices(&template, choices);
                let out = p.next().await?;
                let mut events = Vec::new();
                if route == Route::Chat && !started {
                    events.push(head(json!([{
                        "index": p.index,
                        "delta": {"reasoning_content": null, "role": "assistant", "content": ""},
                        "logprobs": null, "finish_reason": null, "matched_stop": null,
                    }])));
                }
                let done = out.finish.is_some();
                // Empty deltas (text held back mid-character or before a possible stop string)
                // are not sent; the finish is always sent.
                if !out.text.is_empty() || (done && route == Route::Completions) {
                    let choice = match route {
                        Route::Completions => json!({
                            "index": p.index, "text": out.text, "logprobs": null,
                            "finish_reason": finish_str(&out), "matched_stop": matched(&out),
                        }),
                        Route::Chat => json!({
                            "index": p.index, "delta": {"content": out.text},
                            "logprobs": null, "finish_reason": null, "matched_stop": null,
                        }),
                    };
                    let mut ev = head(json!([choice]));
                    if continuous {
                        ev["usage"] = usage(
                            out.prompt_tokens,
                            out.completion_tokens,
                            out.cached_tokens,
                            report_cache,
                        );
                    } else if route == Route::Completions {
                        ev["usage"] = Value::Null;
                    }
                    events.push(ev);
                }
                if route == Route::Chat && done {
                    events.push(head(json!([{
                        "index": p.index, "delta": {}, "logprobs": null,
                        "finish_reason": finish_str(&out), "matched_stop": matched(&out),
                    }])));
                }
                let bytes: Vec<u8> = events.iter().flat_map(|e| sse_event(e).to_vec()).collect();
                Some(((Bytes::from(bytes), done.then_some(out)), (p, st, true)))
            }
        })
        .boxed()
    });
    let include_usage = c.include_usage;
    let usage_head = with_choices(&template, json!([]));
    let totals = std::sync::Arc::new(std::sync::Mutex::new((0usize, 0usize, 0usize)));
    let t2 = totals.clone();
    let body = futures::stream::select_all(per_request)
        .map(move |(bytes, finished)| {
            if let Some(out) = finished {
                let mut t = totals.lock().expect("usage totals");
                t.0 += out.prompt_tokens;
                t.1 += out.completion_tokens;
                t.2 += out.cached_tokens;
            }
            Ok::<_, Infallible>(bytes)
        })
        .chain(futures::stream::once(async move {
            let mut tail = Vec::new();
            if include_usage {
                let (p, c, cached) = *t2.lock().expect("usage totals");
                let mut u = usage_head;
                u["usage"] = usage(p, c, cached, report_cache);
                tail.extend_from_slice(&sse_event(&u));
            }
            tail.extend_from_slice(SSE_DONE);
            Ok(Bytes::from(tail))
        }));
    Ok(sse_headers(Body::from_stream(body)))
}

fn with_choices(template: &Value, choices: Value) -> Value {
    let mut v = template.clone();
    v["choices"] = choices;
    v
}

pub async fn models(State(st): State<Arc<AppState>>) -> Response {
    axum::Json(json!({"object": "list", "data": [model_card(&st)]})).into_response()
}

pub async fn model(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if id != st.served_model_name {
        return Err(ApiError::NotFound(format!(
            "The model '{id}' does not exist."
        )));
    }
    Ok(axum::Json(model_card(&st)).into_response())
}

fn model_card(st: &AppState) -> Value {
    json!({
        "id": st.served_model_name, "object": "model", "created": st.started_unix,
        "owned_by": "sglang", "root": st.served_model_name, "parent": null,
        "max_model_len": st.engine.context_length(),
    })
}
