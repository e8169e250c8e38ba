//! Which inference engine a server is, and how loupe tells: `--engine` names it, or the
//! server's own answers do (SGLang's `/server_info`, vLLM's dev-mode `/server_info`,
//! `/v1/models`' `owned_by`, `/version`, the metric names' prefixes). The rules are a pure
//! function of what the server answered ([`Evidence`]), so they are tested without a server.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// An inference engine whose control surface loupe drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// SGLang and loupe's own server: `/flush_cache`, SGLang's `/start_profile` body.
    Sglang,
    /// vLLM: `/reset_prefix_cache`, strict `/start_profile` body, `/stop_profile` always.
    Vllm,
    /// `trtllm-serve`: SGLang-style `/start_profile` (PR #13872), JSON `/metrics`.
    #[serde(rename = "trtllm", alias = "tensorrt-llm")]
    TensorrtLlm,
    /// A Dynamo worker's system port: `/engine/start_profile`, answers with a `status`.
    Dynamo,
}

impl Engine {
    pub const ALL: [Engine; 4] = [
        Engine::Sglang,
        Engine::Vllm,
        Engine::TensorrtLlm,
        Engine::Dynamo,
    ];

    /// The name `--engine` takes and loupe prints.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sglang => "sglang",
            Engine::Vllm => "vllm",
            Engine::TensorrtLlm => "trtllm",
            Engine::Dynamo => "dynamo",
        }
    }

    /// Whether loupe sends `/stop_profile` after every capture, bounded ones too. vLLM: its
    /// automatic stop leaves the 409 guard set. TensorRT-LLM: whether `num_steps` stops it by
    /// itself is unverified. Dynamo: dynamo.vllm forwards only `profile_prefix`, so a bound
    /// is not honoured. A stop refused after a bounded capture means it had stopped already.
    pub fn always_stops(self) -> bool {
        !matches!(self, Engine::Sglang)
    }

    /// The prefix of the engine's Prometheus metric names.
    pub fn metric_prefix(self) -> &'static str {
        match self {
            Engine::Sglang => "sglang:",
            Engine::Vllm => "vllm:",
            Engine::TensorrtLlm => "trtllm_",
            Engine::Dynamo => "dynamo_",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `--engine` named something loupe does not drive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown engine {0:?} (expected sglang, vllm, trtllm or dynamo)")]
pub struct UnknownEngine(pub String);

impl FromStr for Engine {
    type Err = UnknownEngine;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sglang" | "loupe" => Ok(Engine::Sglang),
            "vllm" => Ok(Engine::Vllm),
            "trtllm" | "tensorrt-llm" | "tensorrt_llm" => Ok(Engine::TensorrtLlm),
            "dynamo" => Ok(Engine::Dynamo),
            _ => Err(UnknownEngine(s.to_string())),
        }
    }
}

/// What a server answered to the routes detection asks, each `None` when the route failed.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub server_info: Option<Value>,
    pub models: Option<Value>,
    pub version: Option<Value>,
    /// The metric names of one `/metrics` scrape.
    pub metric_names: Vec<String>,
    /// `/metrics` answered JSON (trtllm-serve's iteration statistics).
    pub metrics_json: bool,
}

/// An engine and the answer that said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub engine: Engine,
    /// e.g. `/v1/models owned_by "vllm"`.
    pub because: String,
}

impl Evidence {
    /// The engine, from the most specific answer first: `/server_info`'s shape (SGLang's has
    /// its launch arguments at the top, vLLM's dev-mode one a `vllm_config`), `owned_by`,
    /// the metric prefixes, then `/version` (vLLM answers `{"version"}` only, SGLang has no
    /// such route). `None` when nothing is recognisable.
    pub fn engine(&self) -> Option<Detected> {
        let found = |engine, because: String| Some(Detected { engine, because });
        if let Some(info) = &self.server_info {
            if info.get("vllm_config").is_some() {
                return found(Engine::Vllm, "/server_info has vllm_config".into());
            }
            if info.get("tp_size").is_some() || info.get("model_path").is_some() {
                return found(Engine::Sglang, "/server_info has SGLang's tp_size".into());
            }
        }
        let owners = self.models.as_ref().and_then(|m| m["data"].as_array());
        for owner in owners
            .into_iter()
            .flatten()
            .filter_map(|m| m["owned_by"].as_str())
        {
            let o = owner.to_ascii_lowercase();
            let engine = if o == "vllm" {
                Engine::Vllm
            } else if o == "sglang" {
                Engine::Sglang
            } else if o.contains("tensorrt") || o.contains("trtllm") {
                Engine::TensorrtLlm
            } else if o.contains("dynamo") {
                Engine::Dynamo
            } else {
                continue;
            };
            return found(engine, format!("/v1/models owned_by {owner:?}"));
        }
        if self.metrics_json {
            return found(
                Engine::TensorrtLlm,
                "/metrics answers JSON (trtllm-serve's iteration statistics)".into(),
            );
        }
        for engine in Engine::ALL {
            if let Some(n) = self
                .metric_names
                .iter()
                .find(|n| n.starts_with(engine.metric_prefix()))
            {
                return found(engine, format!("/metrics has {n}"));
            }
        }
        if let Some(v) = self.version.as_ref().and_then(|v| v["version"].as_str()) {
            return found(Engine::Vllm, format!("/version answers {v:?}"));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_round_trip() {
        for e in Engine::ALL {
            assert_eq!(e.name().parse::<Engine>().unwrap(), e);
        }
        assert_eq!("TensorRT-LLM".parse::<Engine>(), Ok(Engine::TensorrtLlm));
        assert!(
            "tgi"
                .parse::<Engine>()
                .unwrap_err()
                .to_string()
                .contains("tgi")
        );
    }

    #[test]
    fn detection_prefers_the_most_specific_answer() {
        let mut ev = Evidence {
            models: Some(json!({"data": [{"id": "m", "owned_by": "vllm"}]})),
            ..Default::default()
        };
        assert_eq!(ev.engine().unwrap().engine, Engine::Vllm);
        ev.server_info = Some(json!({"tp_size": 1, "dp_size": 2}));
        let d = ev.engine().unwrap();
        assert_eq!(
            (d.engine, d.because.as_str()),
            (Engine::Sglang, "/server_info has SGLang's tp_size")
        );
        ev.server_info = Some(json!({"vllm_config": {}}));
        assert_eq!(ev.engine().unwrap().engine, Engine::Vllm);

        let by_metrics = Evidence {
            models: Some(json!({"data": [{"id": "m", "owned_by": "someone"}]})),
            metric_names: vec![
                "process_cpu_seconds_total".into(),
                "sglang:token_usage".into(),
            ],
            ..Default::default()
        };
        let d = by_metrics.engine().unwrap();
        assert_eq!(d.engine, Engine::Sglang);
        assert_eq!(d.because, "/metrics has sglang:token_usage");

        let by_version = Evidence {
            version: Some(json!({"version": "0.32.0"})),
            ..Default::default()
        };
        assert_eq!(by_version.engine().unwrap().engine, Engine::Vllm);
        let by_json = Evidence {
            metrics_json: true,
            ..by_version
        };
        assert_eq!(by_json.engine().unwrap().engine, Engine::TensorrtLlm);
        assert_eq!(Evidence::default().engine(), None);
    }
}
