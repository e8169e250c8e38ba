//! `loupe serve`: SGLang's `launch_server` flags (same names, so launch scripts keep
//! working), turned into [`ServerConfig`]; then bind, start the engine and serve until
//! Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use loupe_server::ServerConfig;

/// `loupe serve`'s flags. Their defaults are [`ServerConfig::default`]'s (a test holds the two
/// equal).
#[derive(clap::Args, Debug, Clone)]
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
    /// Serve Prometheus /metrics (without it /metrics answers 404, as SGLang does).
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

impl From<ServeArgs> for ServerConfig {
    fn from(args: ServeArgs) -> Self {
        // Destructured field by field: a flag added on one side and not the other does not
        // compile.
        let ServeArgs {
            model_path,
            tokenizer_path,
            served_model_name,
            host,
            port,
            tp_size,
            dp_size,
            load_balance_method,
            api_key,
            admin_api_key,
            load_format,
            dtype,
            json_model_override_args,
            skip_tokenizer_init,
            context_length,
            max_total_tokens,
            page_size,
            chunked_prefill_size,
            max_prefill_tokens,
            max_running_requests,
            max_queued_requests,
            schedule_policy,
            schedule_conservativeness,
            disable_radix_cache,
            incremental_streaming_output,
            stream_interval,
            stream_response_default_include_usage,
            enable_cache_report,
            enable_metrics,
            random_seed,
            reasoning_parser,
            tool_call_parser,
            profile_output_root,
            threads,
            disable_cuda_graph,
            trust_remote_code,
        } = args;
        ServerConfig {
            model_path,
            tokenizer_path,
            served_model_name,
            host,
            port,
            tp_size,
            dp_size,
            load_balance_method,
            api_key,
            admin_api_key,
            load_format,
            dtype,
            json_model_override_args,
            skip_tokenizer_init,
            context_length,
            max_total_tokens,
            page_size,
            chunked_prefill_size,
            max_prefill_tokens,
            max_running_requests,
            max_queued_requests,
            schedule_policy,
            schedule_conservativeness,
            disable_radix_cache,
            incremental_streaming_output,
            stream_interval,
            stream_response_default_include_usage,
            enable_cache_report,
            enable_metrics,
            random_seed,
            reasoning_parser,
            tool_call_parser,
            profile_output_root,
            threads,
            disable_cuda_graph,
            trust_remote_code,
        }
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = ServerConfig::from(args);
    let addr: std::net::SocketAddr = format!("{}:{}", config.host, config.port)
        .parse()
        .map_err(|e| anyhow::anyhow!("--host {} --port {}: {e}", config.host, config.port))?;
    let listener =
        loupe_server::bind(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let launch: Vec<String> = std::env::args().collect();
    let state = loupe_server::start_state(config, launch.join(" "))
        .await
        .map_err(anyhow::Error::msg)?;
    tracing::info!(
        "The server is fired up and ready to roll! Listening on http://{}",
        listener.local_addr()?
    );
    loupe_server::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
