//! Profiling through each engine's own control surface: which routes, which body, which
//! answers mean what. SGLang (and loupe): `/start_profile` with SGLang's body. vLLM: the
//! strict three-key body, 404 when launched without `--profiler-config`, 409 while a session
//! is active, and a stop before every start, since only `/stop_profile` clears the 409 guard
//! (an automatic `max_iterations` stop does not). TensorRT-LLM: SGLang's four keys
//! (`output_dir`, `num_steps`, `start_step`, `activities`; its answers are unverified).
//! Dynamo: the worker system port's `/engine/start_profile`, whose errors may come back as
//! HTTP 200 with `"status":"error"`.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::engine::{Detected, Engine, Evidence};
use crate::error::{ClientError, ErrorKind};
use crate::server::Server;
use crate::start::StartProfile;
use crate::vllm::{self, Untranslatable, VllmStart};

const START_TIMEOUT: Duration = Duration::from_secs(120);
/// vLLM's stop exports every worker's trace before answering, with no timeout of its own.
const STOP_TIMEOUT: Duration = Duration::from_secs(600);

/// A profile call the server (or loupe, before sending) refused.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "{url}: HTTP 404: this vLLM server has no profiling routes; launch it with \
         --profiler-config '{{\"profiler\":\"torch\",\"torch_profiler_dir\":\"DIR\"}}'"
    )]
    NotConfigured { url: String },
    #[error("{url}: HTTP 409: a profiling session is already active (stop it first)")]
    AlreadyActive { url: String },
    #[error("{url}: the engine refused: {message}")]
    Refused { url: String, message: String },
    /// The route is not there (HTTP 404): what the engine needs instead.
    #[error("{url}: HTTP 404: {hint}")]
    NoRoute { url: String, hint: &'static str },
    #[error("{0}")]
    Untranslatable(#[from] Untranslatable),
    #[error("{0}")]
    Client(#[from] ClientError),
}

/// Where an engine's profiling routes are.
fn routes(engine: Engine) -> (&'static str, &'static str) {
    match engine {
        Engine::Dynamo => ("/engine/start_profile", "/engine/stop_profile"),
        Engine::Sglang | Engine::Vllm | Engine::TensorrtLlm => ("/start_profile", "/stop_profile"),
    }
}

const TRTLLM_NO_ROUTE: &str = "this trtllm-serve has no /start_profile (the route came with \
     TensorRT-LLM PR #13872); older servers profile through TLLM_PROFILE_START_STOP (with \
     TLLM_TORCH_PROFILE_TRACE, or under nsys -c cudaProfilerApi) set at launch";

const DYNAMO_NO_ROUTE: &str = "no profiling route on this Dynamo system port: address a \
     worker's system port (DYN_SYSTEM_PORT; the HTTP frontend does not proxy profiling); \
     dynamo.trtllm workers register none (launch them with TLLM_PROFILE_START_STOP under nsys)";

/// `{"status":"error","message":...}` (any HTTP code) is a refusal.
fn refused(url: &str, v: &Value) -> Result<(), ProfileError> {
    if v["status"].as_str() == Some("error") {
        return Err(ProfileError::Refused {
            url: url.to_string(),
            message: v["message"].as_str().unwrap_or("").to_string(),
        });
    }
    Ok(())
}

/// trtllm-serve's body: the four keys PR #13872 lists, integers as numbers.
fn trtllm_body(body: &StartProfile) -> String {
    let mut m = Map::new();
    if let Some(d) = &body.output_dir {
        m.insert("output_dir".into(), d.clone().into());
    }
    if let Some(n) = body.num_steps {
        m.insert("num_steps".into(), n.get().into());
    }
    if let Some(n) = body.start_step {
        m.insert("start_step".into(), n.get().into());
    }
    if let Some(a) = &body.activities {
        m.insert("activities".into(), a.clone().into());
    }
    Value::Object(m).to_string()
}

impl Server {
    /// Ask the routes detection reads and decide the engine; `None` when no answer says.
    pub async fn detect_engine(&self) -> Option<Detected> {
        let server_info = self.get_json("/server_info?config_format=json").await.ok();
        let models = self.get_json("/v1/models").await.ok();
        let version = self.get_json("/version").await.ok();
        let (metric_names, metrics_json) = match self.metrics().await {
            Ok(samples) => (samples.into_iter().map(|s| s.name).collect(), false),
            Err(e) => (Vec::new(), matches!(e.kind, ErrorKind::JsonMetrics)),
        };
        Evidence {
            server_info,
            models,
            version,
            metric_names,
            metrics_json,
        }
        .engine()
    }

    /// vLLM's `torch_profiler_dir`, when its `/server_info` (dev mode) says it.
    pub async fn vllm_profiler_dir(&self) -> Option<String> {
        let info = self
            .get_json("/server_info?config_format=json")
            .await
            .ok()?;
        vllm::profiler_dir(&info)
    }

    /// Start a profile the way `engine` takes it. For vLLM a stop goes first (clearing the
    /// guard an earlier auto-stopped session left behind).
    pub async fn start_profile_on(
        &self,
        engine: Engine,
        body: &StartProfile,
    ) -> Result<String, ProfileError> {
        let (start, _) = routes(engine);
        let text = match engine {
            Engine::Sglang => body.to_json(),
            Engine::Dynamo => body.to_json(),
            Engine::TensorrtLlm => trtllm_body(body),
            Engine::Vllm => {
                return self
                    .start_vllm_profile(&VllmStart::from_sglang(body)?)
                    .await;
            }
        };
        tracing::debug!("POST {}{start} {text} ({engine})", self.base());
        self.profile_call(engine, start, text, START_TIMEOUT).await
    }

    /// vLLM's `/start_profile` with its own body, after a `/stop_profile` that clears the
    /// guard an earlier (possibly auto-stopped) session left.
    pub async fn start_vllm_profile(&self, body: &VllmStart) -> Result<String, ProfileError> {
        self.stop_profile_on(Engine::Vllm).await?;
        let text = body.to_json();
        tracing::debug!("POST {}/start_profile {text} (vllm)", self.base());
        self.profile_call(Engine::Vllm, "/start_profile", text, START_TIMEOUT)
            .await
    }

    /// Stop the engine's profile; returns once the server answers (vLLM and SGLang: with
    /// every trace written).
    pub async fn stop_profile_on(&self, engine: Engine) -> Result<String, ProfileError> {
        let (_, stop) = routes(engine);
        self.profile_call(engine, stop, "{}".into(), STOP_TIMEOUT)
            .await
    }

    async fn profile_call(
        &self,
        engine: Engine,
        path: &str,
        body: String,
        timeout: Duration,
    ) -> Result<String, ProfileError> {
        let url = self.url(path);
        let text = match self.post_json_text(path, body, timeout).await {
            Ok(t) => t,
            Err(e) => {
                return Err(match (engine, e.status().map(|s| s.as_u16())) {
                    (Engine::Vllm, Some(404)) => ProfileError::NotConfigured { url },
                    (Engine::Vllm, Some(409)) => ProfileError::AlreadyActive { url },
                    (Engine::TensorrtLlm, Some(404)) => ProfileError::NoRoute {
                        url,
                        hint: TRTLLM_NO_ROUTE,
                    },
                    (Engine::Dynamo, Some(404)) => ProfileError::NoRoute {
                        url,
                        hint: DYNAMO_NO_ROUTE,
                    },
                    _ => ProfileError::Client(e),
                });
            }
        };
        match engine {
            // Dynamo's handlers answer errors as HTTP 200 {"status":"error"} (dynamo.vllm).
            Engine::Dynamo => {
                let v: Value = serde_json::from_str(&text).map_err(|e| {
                    ClientError::new(&url, ErrorKind::NotJson(format!("{e}: {text:?}")))
                })?;
                refused(&url, &v)?;
            }
            // trtllm-serve's answers are unverified: a JSON one that says error is one.
            Engine::TensorrtLlm => {
                if let Ok(v) = serde_json::from_str::<Value>(&text) {
                    refused(&url, &v)?;
                }
            }
            Engine::Sglang | Engine::Vllm => {}
        }
        Ok(text)
    }
}
