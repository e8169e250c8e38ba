//! What goes into the engine (a tokenized request) and what comes out (outputs carrying new
//! tokens and text deltas, the last one with SGLang's finish reason).

use tokio::sync::mpsc::UnboundedSender;

use crate::sampling::SamplingParams;

/// A tokenized generation request.
#[derive(Debug)]
pub struct GenerateRequest {
    pub rid: String,
    pub input_ids: Vec<u32>,
    pub params: SamplingParams,
    /// Send an output every `stream_interval` tokens; otherwise only once, when finished.
    pub stream: bool,
    /// Tokens per streamed output (`sampling_params.stream_interval`); default: the server's.
    pub stream_interval: Option<usize>,
    /// Count this request in the token and request counters (`log_metrics`, default true).
    /// SGLang's health checks run with it off, so `/health` leaves `/metrics` unchanged.
    pub log_metrics: bool,
    /// Outputs go here. Dropping the receiver aborts the request and frees its KV.
    pub output: UnboundedSender<RequestOutput>,
}

/// Why a request ended, as SGLang's `FINISH_*` classes serialize it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// `{"type": "length", "length": N}`
    Length(usize),
    /// `{"type": "stop", "matched": <token id>}`
    StopToken(u32),
    /// `{"type": "stop", "matched": "<string>"}`
    StopString(String),
    /// `{"type": "abort", "message": ...}`
    Abort(String),
}

impl FinishReason {
    /// The OpenAI-style one-word reason (`length`, `stop`, `abort`).
    pub fn kind(&self) -> &'static str {
        match self {
            FinishReason::Length(_) => "length",
            FinishReason::StopToken(_) | FinishReason::StopString(_) => "stop",
            FinishReason::Abort(_) => "abort",
        }
    }

    /// SGLang's `meta_info.finish_reason` object.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            FinishReason::Length(n) => json!({"type": "length", "length": n}),
            FinishReason::StopToken(t) => json!({"type": "stop", "matched": t}),
            FinishReason::StopString(s) => json!({"type": "stop", "matched": s}),
            FinishReason::Abort(m) => json!({"type": "abort", "message": m}),
        }
    }

    /// OpenAI `matched_stop`: the token id or string that stopped generation.
    pub fn matched_stop(&self) -> serde_json::Value {
        match self {
            FinishReason::StopToken(t) => (*t).into(),
            FinishReason::StopString(s) => s.clone().into(),
            _ => serde_json::Value::Null,
        }
    }
}

/// One step of a request's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestOutput {
    /// Text completed since the previous output (stop strings trimmed).
    pub text: String,
    /// Token ids generated since the previous output.
    pub token_ids: Vec<u32>,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub cached_tokens: usize,
    pub num_retractions: u32,
    pub finish: Option<FinishReason>,
}
