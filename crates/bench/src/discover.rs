//! What a benchmark learns from its server before it starts: readiness, the model to name
//! (the plan's, else the first of /v1/models), and the client tokenizer (the plan's, else the
//! server's /model_info tokenizer_path when readable here) with the vocabulary size.

use std::sync::Arc;

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::control;
use crate::error::{BenchError, Result};
use crate::observer::BenchObserver;
use crate::plan::BenchPlan;
use crate::tokenizer::BenchTokenizer;

/// What the server says about itself, and the client tokenizer that goes with it.
pub struct Discovery {
    /// Control requests only (readiness, info, flush, profiling): the generation requests
    /// have their own transport (`http1`).
    pub client: reqwest::Client,
    pub headers: HeaderMap,
    /// The model name to send.
    pub model: String,
    pub tokenizer: Option<Arc<BenchTokenizer>>,
    /// The server's vocabulary size (random-ids without a tokenizer).
    pub vocab: Option<usize>,
}

fn vocab_of(info: Option<&Value>) -> Option<usize> {
    let i = info?;
    i["vocab_size"]
        .as_u64()
        .or(i["hf_config"]["vocab_size"].as_u64())
        .map(|v| v as usize)
}

/// Wait for the server, find the model (the plan's, else the first of /v1/models) and the
/// tokenizer (the plan's, else the server's /model_info tokenizer_path when it is readable).
pub async fn discover(
    plan: &BenchPlan,
    base_url: &str,
    observer: &dyn BenchObserver,
) -> Result<Discovery> {
    let s = &plan.server;
    let client = control::http_client()?;
    let headers = control::headers(s.api_key.as_deref(), &s.headers)?;
    // Triton and Truss servers have no /v1/models: --model names the model (plan-checked).
    let models = if !s.ready_check_timeout.is_zero() && plan.backend.lists_models() {
        let wait = s.ready_check_timeout.as_secs_f64();
        Some(control::wait_ready(&client, base_url, &headers, wait).await?)
    } else {
        None
    };
    let model = match &s.model {
        Some(m) => m.clone(),
        None => {
            let models = match models {
                Some(m) => m,
                None => {
                    control::get_json(&client, &format!("{base_url}/v1/models"), &headers).await?
                }
            };
            models["data"][0]["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| {
                    BenchError::http(
                        format!("{base_url}/v1/models"),
                        "lists no model; pass --model",
                    )
                })?
        }
    };
    let model_info = control::get_json(&client, &format!("{base_url}/model_info"), &headers)
        .await
        .ok();
    let tokenizer = BenchTokenizer::resolve(s.tokenizer.as_deref(), model_info.as_ref())?;
    observer.tokenizer(tokenizer.as_ref().map(|t| t.source.as_path()));
    Ok(Discovery {
        client,
        headers,
        model: s.served_model_name.clone().unwrap_or(model),
        tokenizer: tokenizer.map(Arc::new),
        vocab: vocab_of(model_info.as_ref()),
    })
}
