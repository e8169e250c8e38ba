//! The server's configuration: what `loupe serve` reads from SGLang's `launch_server` flags
//! (the flags themselves live in the command layer, crates/cli), with the same field names,
//! so that `/server_info` reports them under SGLang's keys (API keys redacted).

use std::path::PathBuf;

use loupe_engine::{EngineArgs, LoadBalance, LoadFormat, SchedulePolicy};
use serde::Serialize;

/// Everything the server and its engine are started with. `Default` holds `loupe serve`'s
/// defaults; the field order is `/server_info`'s key order.
#[derive(Debug, Clone, Serialize)]
pub struct ServerConfig {
    /// A model directory (config.json, safetensors, tokenizer.json) or a preset: tiny, small.
    pub model_path: String,
    /// Directory holding tokenizer.json (default: the model directory).
    pub tokenizer_path: Option<PathBuf>,
    /// The model name clients use (default: --model-path).
    pub served_model_name: Option<String>,
    pub host: String,
    pub port: u16,
    /// Tensor-parallel ranks (threads) per data-parallel group.
    pub tp_size: usize,
    /// Data-parallel scheduler groups behind the router.
    pub dp_size: usize,
    /// round_robin or shortest_queue.
    pub load_balance_method: String,
    /// Require `Authorization: Bearer KEY` on every route but health and metrics.
    pub api_key: Option<String>,
    /// Key for admin routes (flush_cache, profiling); the plain key is refused there.
    pub admin_api_key: Option<String>,
    /// auto, dummy or safetensors.
    pub load_format: String,
    /// Weight storage: auto (the config's torch_dtype), float32, bfloat16, float16. Compute is
    /// always float32; 16-bit weights are widened in registers.
    pub dtype: String,
    /// JSON merged into config.json, e.g. '{"num_hidden_layers": 2}'.
    pub json_model_override_args: String,
    /// Accept only input_ids; no tokenizer is loaded.
    pub skip_tokenizer_init: bool,
    /// Context length (default: the model's max_position_embeddings).
    pub context_length: Option<usize>,
    /// KV cache size in tokens per data-parallel group.
    pub max_total_tokens: Option<usize>,
    /// Tokens per KV page (1 = token-granular prefix matching).
    pub page_size: usize,
    /// Prefill chunk size in tokens; -1 disables chunking.
    pub chunked_prefill_size: i64,
    /// Upper bound on the tokens of one prefill batch.
    pub max_prefill_tokens: usize,
    pub max_running_requests: Option<usize>,
    /// Refuse requests with 503 once this many wait in a group's queue.
    pub max_queued_requests: Option<usize>,
    /// fcfs or lpm (longest prefix match).
    pub schedule_policy: String,
    pub schedule_conservativeness: f64,
    pub disable_radix_cache: bool,
    /// Stream deltas on /generate instead of cumulative text.
    pub incremental_streaming_output: bool,
    /// Tokens per streamed chunk.
    pub stream_interval: usize,
    /// Always send the final usage chunk on OpenAI streams.
    pub stream_response_default_include_usage: bool,
    /// Report prompt_tokens_details.cached_tokens in OpenAI usage.
    pub enable_cache_report: bool,
    /// Serve Prometheus /metrics (without it /metrics answers 404, as SGLang does).
    pub enable_metrics: bool,
    pub random_seed: u64,
    /// Reported in /model_info; loupe does not parse reasoning.
    pub reasoning_parser: Option<String>,
    /// Reported in /model_info; loupe does not parse tool calls.
    pub tool_call_parser: Option<String>,
    /// Confine every profile's output_dir to this directory (403 otherwise).
    pub profile_output_root: Option<PathBuf>,
    /// Compute threads in all (default: every core), split over TP x DP ranks.
    pub threads: Option<usize>,
    /// Accepted for compatibility: there are no CUDA graphs on the CPU.
    pub disable_cuda_graph: bool,
    /// Accepted for compatibility: loupe never runs model code from the model directory.
    pub trust_remote_code: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            model_path: "tiny".into(),
            tokenizer_path: None,
            served_model_name: None,
            host: "127.0.0.1".into(),
            port: 30000,
            tp_size: 1,
            dp_size: 1,
            load_balance_method: "round_robin".into(),
            api_key: None,
            admin_api_key: None,
            load_format: "auto".into(),
            dtype: "auto".into(),
            json_model_override_args: "{}".into(),
            skip_tokenizer_init: false,
            context_length: None,
            max_total_tokens: None,
            page_size: 1,
            chunked_prefill_size: 2048,
            max_prefill_tokens: 16384,
            max_running_requests: None,
            max_queued_requests: None,
            schedule_policy: "fcfs".into(),
            schedule_conservativeness: 1.0,
            disable_radix_cache: false,
            incremental_streaming_output: false,
            stream_interval: 1,
            stream_response_default_include_usage: false,
            enable_cache_report: false,
            enable_metrics: false,
            random_seed: 42,
            reasoning_parser: None,
            tool_call_parser: None,
            profile_output_root: None,
            threads: None,
            disable_cuda_graph: false,
            trust_remote_code: false,
        }
    }
}

impl ServerConfig {
    pub fn served_model_name(&self) -> String {
        self.served_model_name
            .clone()
            .unwrap_or_else(|| self.model_path.clone())
    }

    /// The engine's arguments, with every value checked.
    pub fn engine_args(&self) -> Result<EngineArgs, String> {
        let load_balance = LoadBalance::parse(&self.load_balance_method).ok_or_else(|| {
            format!(
                "--load-balance-method '{}' is not supported (round_robin, shortest_queue)",
                self.load_balance_method
            )
        })?;
        let schedule_policy = SchedulePolicy::parse(&self.schedule_policy).ok_or_else(|| {
            format!(
                "--schedule-policy '{}' is not supported (fcfs, lpm)",
                self.schedule_policy
            )
        })?;
        let model_overrides = loupe_engine::config::parse_overrides(&self.json_model_override_args)
            .map_err(|e| e.to_string())?;
        if let Some(name) = &self.served_model_name
            && name.contains(':')
        {
            return Err(format!(
                "--served-model-name '{name}' must not contain ':' (it selects LoRA adapters)"
            ));
        }
        let chunked_prefill_size = match self.chunked_prefill_size {
            -1 => None,
            n if n > 0 => Some(n as usize),
            n => {
                return Err(format!(
                    "--chunked-prefill-size must be positive or -1, got {n}"
                ));
            }
        };
        let dtype = match self.dtype.as_str() {
            "auto" => None,
            other => Some(
                loupe_engine::matmul::WeightDtype::parse(other).ok_or_else(|| {
                    format!("--dtype '{other}' is not supported (auto, float32, bfloat16, float16)")
                })?,
            ),
        };
        if self.stream_interval == 0 {
            return Err("--stream-interval must be at least 1".into());
        }
        Ok(EngineArgs {
            model_path: self.model_path.clone(),
            tokenizer_path: self.tokenizer_path.clone(),
            load_format: LoadFormat::parse(&self.load_format).map_err(|e| e.to_string())?,
            dtype,
            model_overrides,
            skip_tokenizer_init: self.skip_tokenizer_init,
            tp_size: self.tp_size,
            dp_size: self.dp_size,
            load_balance,
            context_length: self.context_length,
            max_total_tokens: self.max_total_tokens,
            page_size: self.page_size,
            chunked_prefill_size,
            max_prefill_tokens: self.max_prefill_tokens,
            max_running_requests: self.max_running_requests,
            max_queued_requests: self.max_queued_requests,
            disable_radix_cache: self.disable_radix_cache,
            schedule_policy,
            schedule_conservativeness: self.schedule_conservativeness,
            stream_interval: self.stream_interval,
            random_seed: self.random_seed,
            threads: self.threads,
            observer: None,
        })
    }

    /// The arguments as `/server_info` shows them: API keys never leave the server.
    pub fn redacted_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("args serialize");
        for key in ["api_key", "admin_api_key"] {
            if v[key].is_string() {
                v[key] = "<redacted>".into();
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/server_info`'s keys, in SGLang's flag order, and the defaults they report.
    #[test]
    fn serializes_every_field_with_keys_redacted() {
        let mut c = ServerConfig {
            api_key: Some("sk-secret".into()),
            ..Default::default()
        };
        let v = c.redacted_json();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "model_path",
                "tokenizer_path",
                "served_model_name",
                "host",
                "port",
                "tp_size",
                "dp_size",
                "load_balance_method",
                "api_key",
                "admin_api_key",
                "load_format",
                "dtype",
                "json_model_override_args",
                "skip_tokenizer_init",
                "context_length",
                "max_total_tokens",
                "page_size",
                "chunked_prefill_size",
                "max_prefill_tokens",
                "max_running_requests",
                "max_queued_requests",
                "schedule_policy",
                "schedule_conservativeness",
                "disable_radix_cache",
                "incremental_streaming_output",
                "stream_interval",
                "stream_response_default_include_usage",
                "enable_cache_report",
                "enable_metrics",
                "random_seed",
                "reasoning_parser",
                "tool_call_parser",
                "profile_output_root",
                "threads",
                "disable_cuda_graph",
                "trust_remote_code",
            ]
        );
        assert_eq!(v["api_key"], "<redacted>");
        assert_eq!(v["admin_api_key"], serde_json::Value::Null);
        assert!(!v.to_string().contains("sk-secret"));
        assert_eq!(v["model_path"], "tiny");
        assert_eq!(v["port"], 30000);
        assert_eq!(v["chunked_prefill_size"], 2048);
        assert_eq!(v["schedule_conservativeness"], 1.0);
        c.admin_api_key = Some("sk-admin".into());
        assert_eq!(c.redacted_json()["admin_api_key"], "<redacted>");
    }

    #[test]
    fn engine_args_check_every_value() {
        let ok = ServerConfig::default().engine_args().unwrap();
        assert_eq!(ok.chunked_prefill_size, Some(2048));
        let bad = |f: fn(&mut ServerConfig)| {
            let mut c = ServerConfig::default();
            f(&mut c);
            c.engine_args().err().expect("refused")
        };
        assert!(bad(|c| c.chunked_prefill_size = 0).contains("--chunked-prefill-size"));
        assert!(bad(|c| c.schedule_policy = "lifo".into()).contains("--schedule-policy"));
        assert!(bad(|c| c.dtype = "int4".into()).contains("--dtype"));
        assert!(bad(|c| c.stream_interval = 0).contains("--stream-interval"));
        assert!(bad(|c| c.served_model_name = Some("a:b".into())).contains("':'"));
        let off = ServerConfig {
            chunked_prefill_size: -1,
            ..Default::default()
        };
        assert_eq!(off.engine_args().unwrap().chunked_prefill_size, None);
    }
}
