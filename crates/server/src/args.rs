//! `loupe serve` flags, named as SGLang's `launch_server` names them so that launch scripts
//! keep working. They are also what `/server_info` reports (keys redacted).

use std::path::PathBuf;

use loupe_engine::{EngineArgs, LoadBalance, LoadFormat, SchedulePolicy};
use serde::Serialize;

#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct ServeArgs {
    /// A model directory (config.json, safetensors, tokenizer.json) or a preset: tiny, small.
    #[arg(long, default_value = "tiny")]
    pub model_path: String,
    /// Directory holding tokenizer.json (default: the model directory).
    #[arg(long)]
    pub tokenizer_path: Option<PathBuf>,
    /// The model name clients use (default: --model-path).
    #[arg(long)]
    pub served_model_name: Option<String>,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 30000)]
    pub port: u16,
    /// Tensor-parallel ranks (threads) per data-parallel group.
    #[arg(long, default_value_t = 1)]
    pub tp_size: usize,
    /// Data-parallel scheduler groups behind the router.
    #[arg(long, default_value_t = 1)]
    pub dp_size: usize,
    /// round_robin or shortest_queue.
    #[arg(long, default_value = "round_robin")]
    pub load_balance_method: String,
    /// Require `Authorization: Bearer KEY` on every route but health and metrics.
    #[arg(long)]
    pub api_key: Option<String>,
    /// Key for admin routes (flush_cache, profiling); the plain key is refused there.
    #[arg(long)]
    pub admin_api_key: Option<String>,
    /// auto, dummy or safetensors.
    #[arg(long, default_value = "auto")]
    pub load_format: String,
    /// Weight storage: auto (the config's torch_dtype), float32, bfloat16, float16. Compute is
    /// always float32; 16-bit weights are widened in registers.
    #[arg(long, default_value = "auto")]
    pub dtype: String,
    /// JSON merged into config.json, e.g. '{"num_hidden_layers": 2}'.
    #[arg(long, default_value = "{}")]
    pub json_model_override_args: String,
    /// Accept only input_ids; no tokenizer is loaded.
    #[arg(long)]
    pub skip_tokenizer_init: bool,
    /// Context length (default: the model's max_position_embeddings).
    #[arg(long)]
    pub context_length: Option<usize>,
    /// KV cache size in tokens per data-parallel group.
    #[arg(long)]
    pub max_total_tokens: Option<usize>,
    /// Tokens per KV page (1 = token-granular prefix matching).
    #[arg(long, default_value_t = 1)]
    pub page_size: usize,
    /// Prefill chunk size in tokens; -1 disables chunking.
    #[arg(long, default_value_t = 2048, allow_hyphen_values = true)]
    pub chunked_prefill_size: i64,
    /// Upper bound on the tokens of one prefill batch.
    #[arg(long, default_value_t = 16384)]
    pub max_prefill_tokens: usize,
    #[arg(long)]
    pub max_running_requests: Option<usize>,
    /// Refuse requests with 503 once this many wait in a group's queue.
    #[arg(long)]
    pub max_queued_requests: Option<usize>,
    /// fcfs or lpm (longest prefix match).
    #[arg(long, default_value = "fcfs")]
    pub schedule_policy: String,
    #[arg(long, default_value_t = 1.0)]
    pub schedule_conservativeness: f64,
    #[arg(long)]
    pub disable_radix_cache: bool,
    /// Stream deltas on /generate instead of cumulative text.
    #[arg(long)]
    pub incremental_streaming_output: bool,
    /// Tokens per streamed chunk.
    #[arg(long, default_value_t = 1)]
    pub stream_interval: usize,
    /// Always send the final usage chunk on OpenAI streams.
    #[arg(long)]
    pub stream_response_default_include_usage: bool,
    /// Report prompt_tokens_details.cached_tokens in OpenAI usage.
    #[arg(long)]
    pub enable_cache_report: bool,
    /// Accepted for compatibility: loupe always serves /metrics.
    #[arg(long)]
    pub enable_metrics: bool,
    #[arg(long, default_value_t = 42)]
    pub random_seed: u64,
    /// Reported in /model_info; loupe does not parse reasoning.
    #[arg(long)]
    pub reasoning_parser: Option<String>,
    /// Reported in /model_info; loupe does not parse tool calls.
    #[arg(long)]
    pub tool_call_parser: Option<String>,
    /// Confine every profile's output_dir to this directory (403 otherwise).
    #[arg(long)]
    pub profile_output_root: Option<PathBuf>,
    /// Compute threads in all (default: every core), split over TP x DP ranks.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Accepted for compatibility: there are no CUDA graphs on the CPU.
    #[arg(long)]
    pub disable_cuda_graph: bool,
    /// Accepted for compatibility: loupe never runs model code from the model directory.
    #[arg(long)]
    pub trust_remote_code: bool,
}

impl Default for ServeArgs {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ServeArgs,
        }
        <Wrapper as clap::Parser>::parse_from(["loupe"]).args
    }
}

impl ServeArgs {
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
