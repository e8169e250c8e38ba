//! One streaming request per backend, timed the way SGLang's bench_serving times it, but with
//! every timestamp taken when the bytes arrive (before any JSON is parsed).

use std::time::Instant;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::sse::{SseData, SseSplitter};
use crate::workload::Prompt;

/// `--backend`: which API the requests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Backend {
    /// SGLang's native /generate.
    #[value(name = "sglang", alias = "sglang-native")]
    Sglang,
    /// /v1/completions.
    #[value(name = "sglang-oai", alias = "vllm")]
    SglangOai,
    /// /v1/chat/completions.
    #[value(name = "sglang-oai-chat", alias = "vllm-chat")]
    SglangOaiChat,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sglang => "sglang",
            Backend::SglangOai => "sglang-oai",
            Backend::SglangOaiChat => "sglang-oai-chat",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Backend::Sglang => "/generate",
            Backend::SglangOai => "/v1/completions",
            Backend::SglangOaiChat => "/v1/chat/completions",
        }
    }
}

/// What happened to one request.
#[derive(Debug, Clone, Default)]
pub struct RequestRecord {
    pub ok: bool,
    pub error: String,
    pub prompt_len: usize,
    pub output_len: usize,
    /// Seconds from the benchmark start to when the request should have been sent.
    pub intended_start: f64,
    /// Seconds from the benchmark start to when it was sent.
    pub start: f64,
    /// Time to first token, from `start`.
    pub ttft: f64,
    /// End-to-end latency, from `start`.
    pub latency: f64,
    /// SGLang's ITL list: chunk gaps (native: each gap split evenly over its tokens).
    pub itl: Vec<f64>,
    pub generated_text: String,
}

/// Everything fixed for a run.
pub struct Target {
    pub client: reqwest::Client,
    pub base_url: String,
    pub backend: Backend,
    pub model: String,
    pub api_key: Option<String>,
    pub ignore_eos: bool,
    pub temperature: f64,
}

impl Target {
    fn body(&self, p: &Prompt) -> Result<Value, String> {
        Ok(match self.backend {
            Backend::Sglang => json!({
                "input_ids": p.ids,
                "sampling_params": {"temperature": self.temperature, "max_new_tokens": p.output_len, "ignore_eos": self.ignore_eos},
                "stream": true,
            }),
            Backend::SglangOai => json!({
                "model": self.model, "prompt": p.ids, "max_tokens": p.output_len,
                "temperature": self.temperature, "ignore_eos": self.ignore_eos, "stream": true,
                "stream_options": {"include_usage": true},
            }),
            Backend::SglangOaiChat => {
                let Some(text) = &p.text else {
                    return Err(
                        "chat backends need a text prompt; this dataset has token ids only".into(),
                    );
                };
                json!({
                    "model": self.model, "messages": [{"role": "user", "content": text}],
                    "max_completion_tokens": p.output_len, "temperature": self.temperature,
                    "ignore_eos": self.ignore_eos, "stream": true, "stream_options": {"include_usage": true},
                })
            }
        })
    }

    /// Send one request and time it. `t0` is the benchmark's start.
    pub async fn run(&self, p: &Prompt, t0: Instant, intended_start: f64) -> RequestRecord {
        let mut rec = RequestRecord {
            prompt_len: p.ids.len(),
            intended_start,
            ..Default::default()
        };
        let body = match self.body(p) {
            Ok(b) => b,
            Err(e) => {
                rec.error = e;
                return rec;
            }
        };
        let url = format!("{}{}", self.base_url, self.backend.path());
        let mut req = self.client.post(&url).json(&body);
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(k);
        }
        let sent = Instant::now();
        rec.start = (sent - t0).as_secs_f64();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                rec.error = format!("{url}: {e}");
                return rec;
            }
        };
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            rec.error = format!("{url}: HTTP {status}: {}", text.trim());
            return rec;
        }
        let mut splitter = SseSplitter::default();
        let mut events = Vec::new();
        let mut stream = resp.bytes_stream();
        let mut state = StreamState::default();
        while let Some(chunk) = stream.next().await {
            let at = Instant::now();
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    rec.error = format!("{url}: stream broke after {} tokens: {e}", state.tokens);
                    return rec;
                }
            };
            splitter.push(&chunk, at, &mut events);
            for (at, data) in events.drain(..) {
                rec.latency = (at - sent).as_secs_f64();
                match data {
                    SseData::Done => state.done = true,
                    SseData::Json(bytes) => {
                        if let Err(e) = state.on_event(
                            self.backend,
                            &bytes,
                            (at - sent).as_secs_f64(),
                            &mut rec,
                        ) {
                            rec.error = format!("{url}: {e}");
                            return rec;
                        }
                    }
                }
            }
        }
        if !state.done {
            rec.error = format!("{url}: the stream ended without [DONE]");
            return rec;
        }
        rec.output_len = state.tokens;
        rec.ok = true;
        rec
    }
}

#[derive(Default)]
struct StreamState {
    tokens: usize,
    last: Option<f64>,
    done: bool,
}

#[derive(Deserialize)]
struct NativeChunk {
    #[serde(default)]
    text: String,
    meta_info: NativeMeta,
}

#[derive(Deserialize)]
struct NativeMeta {
    completion_tokens: usize,
}

#[derive(Deserialize)]
struct OaiChunk {
    #[serde(default)]
    choices: Vec<OaiChoice>,
    #[serde(default)]
    usage: Option<OaiUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct OaiChoice {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    delta: Option<OaiDelta>,
}

#[derive(Deserialize)]
struct OaiDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
}

#[derive(Deserialize)]
struct OaiUsage {
    completion_tokens: usize,
}

/// A chunk that is not what the backend streams: an in-stream error, or garbage.
fn bad_chunk(bytes: &[u8], e: serde_json::Error) -> String {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) if v.get("error").is_some() => format!("error in stream: {}", v["error"]),
        _ => format!(
            "unexpected chunk ({e}): {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ),
    }
}

impl StreamState {
    fn on_event(
        &mut self,
        backend: Backend,
        bytes: &[u8],
        t: f64,
        rec: &mut RequestRecord,
    ) -> Result<(), String> {
        match backend {
            Backend::Sglang => {
                let c: NativeChunk =
                    serde_json::from_slice(bytes).map_err(|e| bad_chunk(bytes, e))?;
                let new = c.meta_info.completion_tokens.saturating_sub(self.tokens);
                if new > 0 {
                    match self.last {
                        None => rec.ttft = t,
                        // SGLang's native path: split a chunk gap evenly over its tokens.
                        Some(prev) => rec
                            .itl
                            .extend(std::iter::repeat_n((t - prev) / new as f64, new)),
                    }
                    self.last = Some(t);
                    self.tokens = c.meta_info.completion_tokens;
                }
                rec.generated_text = c.text;
            }
            Backend::SglangOai | Backend::SglangOaiChat => {
                let c: OaiChunk = serde_json::from_slice(bytes).map_err(|e| bad_chunk(bytes, e))?;
                if let Some(e) = c.error {
                    return Err(format!("error in stream: {e}"));
                }
                let text: String = c
                    .choices
                    .iter()
                    .map(|ch| {
                        let mut s = ch.text.clone().unwrap_or_default();
                        if let Some(d) = &ch.delta {
                            s.push_str(d.reasoning_content.as_deref().unwrap_or_default());
                            s.push_str(d.content.as_deref().unwrap_or_default());
                        }
                        s
                    })
                    .collect();
                if !text.is_empty() {
                    match self.last {
                        None => rec.ttft = t,
                        Some(prev) => rec.itl.push(t - prev),
                    }
                    self.last = Some(t);
                    rec.generated_text.push_str(&text);
                }
                if let Some(u) = c.usage {
                    self.tokens = u.completion_tokens;
                }
            }
        }
        Ok(())
    }
}
