//! Shared server state and the path every generation route takes into the engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use loupe_engine::{Engine, FinishReason, GenerateRequest, RequestOutput, SamplingParams};
use loupe_profiler::Profiler;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::config::ServerConfig;
use crate::error::{ApiError, Surface};
use crate::metrics::HttpMetrics;

pub struct AppState {
    pub engine: Arc<Engine>,
    pub config: ServerConfig,
    pub served_model_name: String,
    pub metrics: HttpMetrics,
    /// Unix seconds at start-up (`created` of /v1/models, `startup_time` of /server_info).
    pub started_unix: u64,
    pub launch_command: String,
    /// Where the tokenizer lives for clients that load it (`/model_info.tokenizer_path`).
    pub tokenizer_path: Option<String>,
    pub profiler: Profiler,
    rid_counter: AtomicU64,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl AppState {
    pub fn new(
        engine: Arc<Engine>,
        config: ServerConfig,
        launch_command: String,
        profiler: Profiler,
    ) -> Self {
        let tokenizer_path = tokenizer_path_for_clients(&engine, &config);
        AppState {
            profiler,
            tokenizer_path,
            served_model_name: config.served_model_name(),
            engine,
            config,
            metrics: HttpMetrics::default(),
            started_unix: unix_now(),
            launch_command,
            rid_counter: AtomicU64::new(0),
        }
    }

    /// A fresh request id (32 hex digits, like SGLang's uuid4().hex).
    pub fn new_rid(&self) -> String {
        let n = self.rid_counter.fetch_add(1, Ordering::Relaxed);
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        format!(
            "{:016x}{:016x}",
            t,
            n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n
        )
    }

    /// Tokenize `text` (timed for the profiler when one is recording).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, String> {
        let tok = self
            .engine
            .tokenizer()
            .ok_or("the server runs with --skip-tokenizer-init: send token ids")?;
        let start = Instant::now();
        let ids = tok
            .encode(text, add_special_tokens)
            .map_err(|e| e.to_string())?;
        self.profiler
            .host_span("tokenizer.encode", start, Instant::now(), ids.len());
        Ok(ids)
    }

    /// Hand one tokenized request to the engine; `index` is its place in a batch.
    pub fn submit(
        self: &Arc<Self>,
        surface: Surface,
        index: usize,
        req: NewRequest,
    ) -> Result<Pending, ApiError> {
        let (g, mut p) = self.prepare(index, req);
        if let Err(e) = self.engine.submit(g) {
            // Never submitted: not an abort.
            p.done = true;
            return Err(ApiError::from_submit(surface, e));
        }
        self.count(&p);
        Ok(p)
    }

    /// Hand a whole batch to the engine at once (SGLang sends a pre-tokenized batch to its
    /// scheduler as one message, so the batch can be prefilled together); the requests'
    /// indices are their places in `reqs`. Nothing is submitted when one is refused.
    pub fn submit_batch(
        self: &Arc<Self>,
        surface: Surface,
        reqs: Vec<NewRequest>,
    ) -> Result<Vec<Pending>, ApiError> {
        let (gens, mut pending): (Vec<_>, Vec<_>) = reqs
            .into_iter()
            .enumerate()
            .map(|(i, r)| self.prepare(i, r))
            .unzip();
        if let Err(e) = self.engine.submit_batch(gens) {
            for p in &mut pending {
                p.done = true;
            }
            return Err(ApiError::from_submit(surface, e));
        }
        for p in &pending {
            self.count(p);
        }
        Ok(pending)
    }

    fn prepare(self: &Arc<Self>, index: usize, req: NewRequest) -> (GenerateRequest, Pending) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let pending = Pending {
            state: self.clone(),
            index,
            rid: req.rid.clone(),
            rx,
            prompt_tokens: req.input_ids.len(),
            log_metrics: req.log_metrics,
            started: Instant::now(),
            last_token_at: None,
            done: false,
        };
        let g = GenerateRequest {
            rid: req.rid,
            input_ids: req.input_ids,
            params: req.params,
            stream: req.stream,
            stream_interval: req.stream_interval,
            log_metrics: req.log_metrics,
            output: tx,
        };
        (g, pending)
    }

    fn count(&self, p: &Pending) {
        if p.log_metrics {
            self.metrics.requests_total.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A tokenized request as a route prepared it.
pub struct NewRequest {
    pub rid: String,
    pub input_ids: Vec<u32>,
    pub params: SamplingParams,
    pub stream: bool,
    pub stream_interval: Option<usize>,
    /// SGLang's `log_metrics`: false keeps the request out of `/metrics` (health checks).
    pub log_metrics: bool,
}

/// A submitted request whose outputs are being awaited.
pub struct Pending {
    state: Arc<AppState>,
    pub index: usize,
    pub rid: String,
    rx: UnboundedReceiver<RequestOutput>,
    prompt_tokens: usize,
    log_metrics: bool,
    pub started: Instant,
    last_token_at: Option<Instant>,
    done: bool,
}

impl Pending {
    /// The next output, recording TTFT / ITL / E2E on the way. After the final output (or if
    /// the engine went away, reported as an abort) returns `None`.
    pub async fn next(&mut self) -> Option<RequestOutput> {
        let metrics = &self.state.metrics;
        if self.done {
            return None;
        }
        let out = match self.rx.recv().await {
            Some(o) => o,
            None => RequestOutput {
                text: String::new(),
                token_ids: Vec::new(),
                prompt_tokens: self.prompt_tokens,
                completion_tokens: 0,
                cached_tokens: 0,
                num_retractions: 0,
                finish: Some(FinishReason::Abort("the engine stopped".into())),
            },
        };
        let now = Instant::now();
        if !self.log_metrics {
            self.done = out.finish.is_some();
            return Some(out);
        }
        if !out.token_ids.is_empty() {
            match self.last_token_at {
                None => metrics.ttft.observe((now - self.started).as_secs_f64()),
                Some(prev) => {
                    let per_token = (now - prev).as_secs_f64() / out.token_ids.len() as f64;
                    for _ in 0..out.token_ids.len() {
                        metrics.itl.observe(per_token);
                    }
                }
            }
            self.last_token_at = Some(now);
        }
        if let Some(f) = &out.finish {
            self.done = true;
            metrics.e2e.observe((now - self.started).as_secs_f64());
            if matches!(f, FinishReason::Abort(_)) {
                metrics.aborted_total.fetch_add(1, Ordering::Relaxed);
            }
        }
        Some(out)
    }
}

impl Drop for Pending {
    /// A request dropped before its end (the client went away): the engine aborts it when it
    /// sees the closed channel; count it here.
    fn drop(&mut self) {
        if !self.done && self.log_metrics {
            self.state
                .metrics
                .aborted_total
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The directory clients should load the tokenizer from. For a preset there is none on disk,
/// so its byte-level tokenizer is written as Hugging Face files into loupe's cache
/// (`$LOUPE_CACHE_DIR`, else `$XDG_CACHE_HOME/loupe`, else `~/.cache/loupe`): bench_serving
/// and transformers then load it unchanged.
fn tokenizer_path_for_clients(engine: &Engine, config: &ServerConfig) -> Option<String> {
    if let Some(p) = &config.tokenizer_path {
        return Some(p.display().to_string());
    }
    let preset = match &engine.model_source {
        loupe_engine::ModelSource::Dir(d) => return Some(d.display().to_string()),
        loupe_engine::ModelSource::Preset(p) => *p,
    };
    engine.tokenizer().filter(|t| t.is_byte_level())?;
    let root = std::env::var_os("LOUPE_CACHE_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|d| std::path::PathBuf::from(d).join("loupe"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|d| std::path::PathBuf::from(d).join(".cache/loupe"))
        })
        .unwrap_or_else(|| std::env::temp_dir().join("loupe"));
    let cfg = engine.config();
    let dir = root
        .join("presets")
        .join(format!("{}-vocab{}", preset.name(), cfg.vocab_size));
    match loupe_engine::tokenizer::write_byte_level_hf_dir(&dir, cfg.vocab_size, &cfg.raw) {
        Ok(()) => Some(dir.display().to_string()),
        Err(e) => {
            tracing::warn!(
                "cannot write the preset tokenizer for clients to {}: {e}; /model_info reports no tokenizer_path",
                dir.display()
            );
            None
        }
    }
}
