//! `POST|PUT /generate`, SGLang's native API: text or input_ids (single or batch),
//! `sampling_params`, cumulative streaming by default, `meta_info` on every chunk.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use loupe_engine::{RequestOutput, SamplingParams};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, Surface};
use crate::parse::{Fields, json_object, kind, reject_unsupported, token_list};
use crate::state::{AppState, NewRequest, Pending};

/// Top-level fields of SGLang's `GenerateReqInput`; anything else is a 400, as upstream.
const KNOWN_KEYS: &[&str] = &[
    "text",
    "input_ids",
    "input_embeds",
    "sampling_params",
    "stream",
    "return_logprob",
    "logprob_start_len",
    "top_logprobs_num",
    "token_ids_logprob",
    "return_text_in_logprobs",
    "rid",
    "lora_path",
    "lora_id",
    "image_data",
    "video_data",
    "audio_data",
    "modalities",
    "log_metrics",
    "return_hidden_states",
    "return_routed_experts",
    "custom_logit_processor",
    "bootstrap_host",
    "bootstrap_port",
    "bootstrap_room",
    "bootstrap_pair_key",
    "routed_dp_rank",
    "data_parallel_rank",
    "priority",
    "extra_key",
    "session_params",
    "no_logs",
    "custom_labels",
    "background",
    "conversation_id",
    "label",
    "is_single",
    "stream_output",
    "require_reasoning",
    "return_bytes",
];

pub(crate) fn sse_headers(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(crate) fn sse_event(v: &Value) -> Bytes {
    let mut s = String::with_capacity(256);
    s.push_str("data: ");
    s.push_str(&v.to_string());
    s.push_str("\n\n");
    Bytes::from(s)
}

pub(crate) const SSE_DONE: &[u8] = b"data: [DONE]\n\n";

/// SGLang's sampling parameter names, shared by /generate and (renamed) the OpenAI routes.
pub(crate) fn common_sampling(f: &Fields<'_>, p: &mut SamplingParams) -> Result<(), ApiError> {
    if let Some(v) = f.f32("temperature")? {
        p.temperature = v;
    }
    if let Some(v) = f.f32("top_p")? {
        p.top_p = v;
    }
    if let Some(v) = f.i64("top_k")? {
        p.top_k = v;
    }
    if let Some(v) = f.f32("min_p")? {
        p.min_p = v;
    }
    if let Some(v) = f.f32("frequency_penalty")? {
        p.frequency_penalty = v;
    }
    if let Some(v) = f.f32("presence_penalty")? {
        p.presence_penalty = v;
    }
    if let Some(v) = f.f32("repetition_penalty")? {
        p.repetition_penalty = v;
    }
    p.stop = f.strings("stop")?;
    p.stop_token_ids = f.token_ids("stop_token_ids")?;
    if let Some(v) = f.bool("ignore_eos")? {
        p.ignore_eos = v;
    }
    if let Some(v) = f.bool("skip_special_tokens")? {
        p.skip_special_tokens = v;
    }
    if let Some(v) = f.bool("no_stop_trim")? {
        p.no_stop_trim = v;
    }
    reject_unsupported(
        f,
        &[
            ("json_schema", "no constrained decoding"),
            ("regex", "no constrained decoding"),
            ("ebnf", "no constrained decoding"),
            ("structural_tag", "no constrained decoding"),
            ("logit_bias", "no logit bias"),
            ("custom_params", "no custom logit processors"),
        ],
    )?;
    p.validate().map_err(|e| f.err(e.field, e.message))
}

/// The OpenAI routes take one choice per request.
pub(crate) fn single_choice(f: &Fields<'_>) -> Result<(), ApiError> {
    match f.u64("n")? {
        Some(n) if n != 1 => Err(f.err("n", format!("only n = 1 is supported, got {n}"))),
        _ => Ok(()),
    }
}

/// One input's `sampling_params` of /generate.
#[derive(Clone)]
struct NativeSampling {
    params: SamplingParams,
    stream_interval: Option<u64>,
    /// `n`: SGLang's parallel samples of this input.
    n: u64,
}

/// `sampling_params` of /generate.
fn native_sampling(f: &Fields<'_>) -> Result<NativeSampling, ApiError> {
    const KNOWN: &[&str] = &[
        "max_new_tokens",
        "min_new_tokens",
        "stop",
        "stop_token_ids",
        "stop_regex",
        "ignore_eos",
        "no_stop_trim",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "n",
        "sampling_seed",
        "logit_bias",
        "custom_params",
        "frequency_penalty",
        "presence_penalty",
        "repetition_penalty",
        "json_schema",
        "regex",
        "ebnf",
        "structural_tag",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "stream_interval",
    ];
    if let Some(k) = f.map.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(f.err(k, "is not a sampling parameter"));
    }
    let mut p = SamplingParams::default();
    if let Some(v) = f.u64("max_new_tokens")? {
        p.max_new_tokens = v as usize;
    }
    if let Some(v) = f.u64("min_new_tokens")? {
        p.min_new_tokens = v as usize;
    }
    p.seed = f.u64("sampling_seed")?;
    reject_unsupported(f, &[("stop_regex", "no regex stop conditions")])?;
    if let Some(v) = f.bool("spaces_between_special_tokens")?
        && !v
    {
        return Err(f.err(
            "spaces_between_special_tokens",
            "is not supported by loupe's reference engine (special tokens are always joined as decoded)",
        ));
    }
    let interval = f.u64("stream_interval")?;
    if interval == Some(0) {
        return Err(f.err("stream_interval", "must be at least 1"));
    }
    let n = f.u64("n")?.unwrap_or(1);
    if n == 0 {
        return Err(f.err("n", "must be at least 1"));
    }
    common_sampling(f, &mut p)?;
    Ok(NativeSampling {
        params: p,
        stream_interval: interval,
        n,
    })
}

fn meta_info(p: &Pending, out: &RequestOutput, e2e: bool) -> Value {
    let mut m = json!({
        "id": p.rid,
        "finish_reason": out.finish.as_ref().map(|f| f.to_json()),
        "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens,
        "cached_tokens": out.cached_tokens,
        "reasoning_tokens": 0,
        "weight_version": "default",
        "num_retractions": out.num_retractions,
    });
    if e2e {
        m["e2e_latency"] = p.started.elapsed().as_secs_f64().into();
    }
    m
}

struct Inputs {
    prompts: Vec<Vec<u32>>,
    batch: bool,
}

/// `image_data` (one data URI or a list) of a single prompt: its placeholder tokens go before
/// the prompt's (crate::vision).
fn add_images(st: &AppState, f: &Fields<'_>, inputs: &mut Inputs) -> Result<(), ApiError> {
    let uris: Vec<&str> = match f.get("image_data") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(u)) => vec![u.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().ok_or_else(|| {
                    f.err(
                        &format!("image_data[{i}]"),
                        format!("must be a data URI string, got {}", kind(v)),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(f.err(
                "image_data",
                format!("must be a data URI or a list of them, got {}", kind(v)),
            ));
        }
    };
    if inputs.batch {
        return Err(f.err(
            "image_data",
            "is accepted with a single prompt only (not a batch)",
        ));
    }
    let vocab = st.engine.config().vocab_size;
    let mut ids = Vec::new();
    for (i, u) in uris.iter().enumerate() {
        let t = crate::vision::image_tokens(u, vocab)
            .map_err(|e| f.err(&format!("image_data[{i}]"), e))?;
        ids.extend(t);
    }
    ids.append(&mut inputs.prompts[0]);
    inputs.prompts[0] = ids;
    Ok(())
}

fn read_inputs(st: &AppState, f: &Fields<'_>) -> Result<Inputs, ApiError> {
    reject_unsupported(f, &[("input_embeds", "only text or input_ids")])?;
    match (f.get("text"), f.get("input_ids")) {
        (Some(_), Some(_)) => Err(f.err("text", "give either text or input_ids, not both")),
        (None, None) => Err(f.err("text", "either text or input_ids is required")),
        (Some(text), None) => {
            let encode = |s: &str| st.encode(s, true).map_err(|e| f.err("text", e));
            match text {
                Value::String(s) => Ok(Inputs {
                    prompts: vec![encode(s)?],
                    batch: false,
                }),
                Value::Array(items) if !items.is_empty() => {
                    let prompts = items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| match v.as_str() {
                            Some(s) => encode(s),
                            None => Err(f.err(
                                &format!("text[{i}]"),
                                format!("must be a string, got {}", kind(v)),
                            )),
                        })
                        .collect::<Result<_, _>>()?;
                    Ok(Inputs {
                        prompts,
                        batch: true,
                    })
                }
                v => Err(f.err(
                    "text",
                    format!(
                        "must be a string or a non-empty list of strings, got {}",
                        kind(v)
                    ),
                )),
            }
        }
        (None, Some(ids)) => match ids.as_array() {
            Some(items) if items.first().is_some_and(|v| v.is_array()) => {
                let prompts = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| token_list(v).map_err(|m| f.err(&format!("input_ids[{i}]"), m)))
                    .collect::<Result<_, _>>()?;
                Ok(Inputs {
                    prompts,
                    batch: true,
                })
            }
            _ => Ok(Inputs {
                prompts: vec![token_list(ids).map_err(|m| f.err("input_ids", m))?],
                batch: false,
            }),
        },
    }
}

/// Per-input `sampling_params` (one dict for all, or a list with one per input).
fn read_sampling(f: &Fields<'_>, n: usize) -> Result<Vec<NativeSampling>, ApiError> {
    let empty = Map::new();
    match f.get("sampling_params") {
        None => {
            let one = native_sampling(&Fields::new(&empty, "sampling_params.", Surface::Native))?;
            Ok(vec![one; n])
        }
        Some(Value::Object(m)) => {
            let one = native_sampling(&Fields::new(m, "sampling_params.", Surface::Native))?;
            Ok(vec![one; n])
        }
        Some(Value::Array(list)) if list.len() == n => list
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_object() {
                Some(m) => native_sampling(&Fields::new(
                    m,
                    &format!("sampling_params[{i}]."),
                    Surface::Native,
                )),
                None => Err(f.err(&format!("sampling_params[{i}]"), "must be an object")),
            })
            .collect(),
        Some(Value::Array(list)) => Err(f.err(
            "sampling_params",
            format!("has {} entries for {n} inputs", list.len()),
        )),
        Some(v) => Err(f.err(
            "sampling_params",
            format!("must be an object, got {}", kind(v)),
        )),
    }
}

fn read_rids(
    st: &AppState,
    f: &Fields<'_>,
    n: usize,
    batch: bool,
) -> Result<Vec<String>, ApiError> {
    match f.get("rid") {
        None => Ok((0..n).map(|_| st.new_rid()).collect()),
        // SGLang: "The rid should be a list for batch processing."
        Some(Value::String(s)) if n == 1 && !batch => Ok(vec![s.clone()]),
        Some(Value::Array(list)) if list.len() == n => list
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| f.err(&format!("rid[{i}]"), "must be a string"))
            })
            .collect(),
        Some(_) => Err(f.err(
            "rid",
            format!("must be a string, or a list of {n} strings for a batch"),
        )),
    }
}

pub async fn generate(State(st): State<Arc<AppState>>, body: Bytes) -> Result<Response, ApiError> {
    let obj = json_object(&body, Surface::Native)?;
    if let Some(k) = obj.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
        return Err(ApiError::bad(
            Surface::Native,
            k.clone(),
            format!("Unknown field '{k}' in the /generate request."),
        ));
    }
    let f = Fields::new(&obj, "", Surface::Native);
    reject_unsupported(
        &f,
        &[
            ("return_logprob", "no logprobs"),
            ("return_hidden_states", "no hidden states"),
            ("video_data", "text only"),
            ("audio_data", "text only"),
            ("lora_path", "no LoRA adapters"),
        ],
    )?;
    let mut inputs = read_inputs(&st, &f)?;
    add_images(&st, &f, &mut inputs)?;
    let sampling = read_sampling(&f, inputs.prompts.len())?;
    // SGLang's parallel sampling: every input has the same `n`; each input becomes n requests,
    // output i*n + j being input i's sample j, and the reply is a list even for one input.
    let parallel = sampling[0].n;
    if let Some(i) = sampling.iter().position(|s| s.n != parallel) {
        return Err(f.err(
            &format!("sampling_params[{i}].n"),
            format!(
                "is {} but sampling_params[0].n is {parallel}: the parallel_sample_num should be \
                 the same for all samples in sample params",
                sampling[i].n
            ),
        ));
    }
    let batch = inputs.batch || parallel > 1;
    let n = inputs.prompts.len() * parallel as usize;
    // Parallel samples get fresh request ids, as SGLang regenerates them.
    let rids = if parallel > 1 {
        (0..n).map(|_| st.new_rid()).collect()
    } else {
        read_rids(&st, &f, n, batch)?
    };
    let stream = f.bool("stream")?.unwrap_or(false);
    let log_metrics = f.bool("log_metrics")?.unwrap_or(true);

    let requests = inputs
        .prompts
        .into_iter()
        .zip(sampling)
        .flat_map(|(ids, s)| std::iter::repeat_n((ids, s), parallel as usize));
    let reqs: Vec<NewRequest> = requests
        .zip(rids)
        .map(|((ids, s), rid)| NewRequest {
            rid,
            input_ids: ids,
            params: s.params,
            stream,
            stream_interval: s.stream_interval.map(|n| n as usize),
            log_metrics,
        })
        .collect();
    let pending = st.submit_batch(Surface::Native, reqs)?;

    if !stream {
        let mut results = Vec::with_capacity(n);
        for mut p in pending {
            let (mut text, mut ids) = (String::new(), Vec::new());
            let mut last = None;
            while let Some(out) = p.next().await {
                text.push_str(&out.text);
                ids.extend_from_slice(&out.token_ids);
                last = Some(out);
            }
            let last = last.expect("a request always ends with an output");
            results.push(
                json!({"text": text, "output_ids": ids, "meta_info": meta_info(&p, &last, true)}),
            );
        }
        let body = if batch {
            Value::Array(results)
        } else {
            results.pop().expect("one")
        };
        return Ok(axum::Json(body).into_response());
    }

    let incremental = st.config.incremental_streaming_output;
    let streams = pending.into_iter().map(|p| {
        let st = st.clone();
        futures::stream::unfold(
            (p, st, String::new(), Vec::<u32>::new()),
            move |(mut p, st, mut text, mut ids)| async move {
                let out = p.next().await?;
                let (chunk_text, chunk_ids) = if incremental {
                    (out.text.clone(), out.token_ids.clone())
                } else {
                    text.push_str(&out.text);
                    ids.extend_from_slice(&out.token_ids);
                    (text.clone(), ids.clone())
                };
                let done = out.finish.is_some();
                let mut chunk = json!({
                    "text": chunk_text,
                    "output_ids": chunk_ids,
                    "meta_info": meta_info(&p, &out, done),
                });
                if batch {
                    chunk["index"] = p.index.into();
                }
                Some((Ok::<_, Infallible>(sse_event(&chunk)), (p, st, text, ids)))
            },
        )
        .boxed()
    });
    let body = futures::stream::select_all(streams).chain(futures::stream::once(async {
        Ok(Bytes::from_static(SSE_DONE))
    }));
    Ok(sse_headers(Body::from_stream(body)))
}
