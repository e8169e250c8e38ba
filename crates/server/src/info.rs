//! Health, info, cache and metrics routes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use loupe_engine::SamplingParams;
use serde_json::{Value, json};

use crate::error::{ApiError, Surface};
use crate::state::{AppState, NewRequest};

fn env_bool(name: &str, default: bool) -> bool {
    match std::env::var(name) {
        Ok(v) => matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true"),
        Err(_) => default,
    }
}

fn health_timeout() -> Duration {
    std::env::var("SGLANG_HEALTH_CHECK_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map_or(Duration::from_secs(20), Duration::from_secs_f64)
}

/// `/health` runs a real one-token generation (unless `SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION=0`);
/// `/health_generate` always does. Both count as healthy while requests are running.
async fn check(st: &Arc<AppState>, always_generate: bool) -> Response {
    if !always_generate && !env_bool("SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION", true) {
        return StatusCode::OK.into_response();
    }
    let busy = st
        .engine
        .stats()
        .iter()
        .any(|s| s.running.load(Ordering::Relaxed) > 0);
    if busy {
        return StatusCode::OK.into_response();
    }
    let params = SamplingParams {
        max_new_tokens: 1,
        temperature: 0.0,
        ..Default::default()
    };
    let rid = format!("HEALTH_CHECK_{}", st.new_rid());
    let req = NewRequest {
        rid,
        input_ids: vec![0],
        params,
        stream: false,
        stream_interval: None,
        log_metrics: false,
    };
    let mut pending = match st.submit(Surface::Native, 0, req) {
        Ok(p) => p,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let wait = async {
        let mut last = None;
        while let Some(out) = pending.next().await {
            last = Some(out);
        }
        last
    };
    match tokio::time::timeout(health_timeout(), wait).await {
        Ok(Some(out)) if out.completion_tokens == 1 => StatusCode::OK.into_response(),
        Ok(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "health check generation failed\n",
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "health check timed out\n").into_response(),
    }
}

pub async fn health(State(st): State<Arc<AppState>>) -> Response {
    check(&st, false).await
}

pub async fn health_generate(State(st): State<Arc<AppState>>) -> Response {
    check(&st, true).await
}

pub async fn ready() -> Response {
    (StatusCode::OK, "ready\n").into_response()
}

pub async fn model_info(State(st): State<Arc<AppState>>) -> Response {
    let engine = &st.engine;
    let cfg = engine.config();
    axum::Json(json!({
        "model_path": st.config.model_path,
        "served_model_name": st.served_model_name,
        "tokenizer_path": st.tokenizer_path,
        "is_generation": true,
        "preferred_sampling_params": null,
        "weight_version": "default",
        "load_format": st.config.load_format,
        "reasoning_parser": st.config.reasoning_parser,
        "tool_call_parser": st.config.tool_call_parser,
        "disaggregation_mode": "null",
        "has_image_understanding": false,
        "has_audio_understanding": false,
        "model_type": cfg.model_type,
        "architectures": [cfg.architecture.hf_name()],
        "context_length": engine.context_length(),
        "vocab_size": cfg.vocab_size,
        "hf_config": cfg.raw,
    }))
    .into_response()
}

pub async fn server_info(State(st): State<Arc<AppState>>) -> Response {
    let mut info = st.config.redacted_json();
    let engine = &st.engine;
    let stats = engine.stats();
    let internal: Vec<Value> = stats
        .iter()
        .map(|s| {
            let steps = s.steps_total.load(Ordering::Relaxed);
            let step_ns = s.step_ns_total.load(Ordering::Relaxed);
            let fwd_ns = s.forward_ns_total.load(Ordering::Relaxed);
            json!({
                "last_gen_throughput": s.gen_throughput(),
                "avg_spec_accept_length": null,
                "num_running_reqs": s.running.load(Ordering::Relaxed),
                "num_queue_reqs": s.queued.load(Ordering::Relaxed),
                "num_used_tokens": s.kv_used_tokens.load(Ordering::Relaxed),
                "num_evictable_tokens": s.cache_evictable_tokens.load(Ordering::Relaxed),
                "num_retractions": s.retractions_total.load(Ordering::Relaxed),
                "forward_steps": steps,
                "scheduler_overhead_fraction": if step_ns > 0 { (step_ns - fwd_ns.min(step_ns)) as f64 / step_ns as f64 } else { 0.0 },
                // What one_batch_server sizes its cases by (SGLang's scheduler reports them).
                "effective_max_running_requests_per_dp": engine.max_running_requests(),
                "dp_size": engine.args.dp_size,
                "memory_usage": {"token_capacity": engine.max_total_tokens()},
            })
        })
        .collect();
    let obj = info.as_object_mut().expect("args are an object");
    obj.insert(
        "served_model_name".into(),
        st.served_model_name.clone().into(),
    );
    obj.insert("launch_command".into(), st.launch_command.clone().into());
    // SGLang reports the resolved tokenizer path (one_batch_server loads its tokenizer from
    // it); for a preset, the directory its tokenizer was exported to.
    if let Some(p) = &st.tokenizer_path {
        obj.insert("tokenizer_path".into(), p.clone().into());
    }
    obj.insert(
        "max_total_num_tokens".into(),
        engine.max_total_tokens().into(),
    );
    obj.insert(
        "max_req_input_len".into(),
        engine.max_req_input_len().into(),
    );
    obj.insert("context_length".into(), engine.context_length().into());
    obj.insert("internal_states".into(), internal.into());
    obj.insert("kv_events".into(), Value::Null);
    obj.insert("startup_time".into(), st.started_unix.into());
    obj.insert("version".into(), env!("CARGO_PKG_VERSION").into());
    obj.insert("frontend".into(), "loupe".into());
    obj.insert("hf_config".into(), engine.config().raw.clone());
    axum::Json(info).into_response()
}

#[derive(serde::Deserialize)]
pub struct FlushQuery {
    timeout: Option<String>,
}

/// `/flush_cache?timeout=S`: flush when idle; with a timeout, keep trying that long.
pub async fn flush_cache(
    State(st): State<Arc<AppState>>,
    Query(q): Query<FlushQuery>,
) -> Result<Response, ApiError> {
    let timeout = match q.timeout.as_deref() {
        None => 0.0,
        Some(t) => match t.parse::<f64>() {
            Ok(v) if v >= 0.0 && v.is_finite() => v,
            _ => {
                return Err(ApiError::PlainBadRequest(format!(
                    "timeout must be a number >= 0 (seconds), got '{t}'\n"
                )));
            }
        },
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(timeout);
    loop {
        match st.engine.flush_cache().await {
            Ok(()) => {
                return Ok((
                    StatusCode::OK,
                    "Cache flushed.\nPlease check backend logs for more details. (When there are running or waiting requests, the operation will not be performed.)\n",
                )
                    .into_response());
            }
            Err(msg) if tokio::time::Instant::now() >= deadline => {
                return Err(ApiError::PlainBadRequest(format!("{msg}\n")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// `/metrics`, only with `--enable-metrics`; without it SGLang has no such route, so the
/// answer is its framework's 404 `{"detail":"Not Found"}` (clients name the flag).
pub async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    if !st.config.enable_metrics {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"detail": "Not Found"})),
        )
            .into_response();
    }
    let text = crate::metrics::render(&st.engine, &st.metrics, &st.served_model_name);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
