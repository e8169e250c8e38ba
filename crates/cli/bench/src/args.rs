//! `loupe bench` flags. Names and defaults are bench_serving's, so a command line written for
//! `python -m sglang.benchmark.serving` runs unchanged; loupe's additions have their own names.
//! Flags bench_serving has and loupe does not implement are refused with a reason
//! (`refused.rs`), never accepted and ignored.
//!
//! [`BenchArgs::plan`] turns the flags into a `loupe_bench::BenchPlan`. It checks what is about
//! the flags themselves (spellings, combinations, refused flags); what the settings mean is
//! checked by the plan (`BenchPlan::validate`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use loupe_bench::dataset::Scenario;
use loupe_bench::plan::{self, BenchPlan, Slos};
use loupe_bench::profile::bench::ProfileArgs;
use serde_json::Value;

use crate::refused::RefusedFlags;

/// `--backend`: the name is kept as given (it goes into the report and the file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// SGLang's native /generate.
    Sglang,
    SglangNative,
    /// /v1/completions.
    SglangOai,
    Vllm,
    Lmdeploy,
    /// /v1/chat/completions.
    SglangOaiChat,
    VllmChat,
    LmdeployChat,
    /// /v1/embeddings (latency only).
    SglangEmbedding,
    VllmEmbedding,
    /// Triton TensorRT-LLM, /v2/models/ensemble/generate_stream (needs --model).
    Trt,
    /// Truss, /v1/models/model:predict (needs --model).
    Truss,
    /// Listed by bench_serving, which has no request function for it.
    Gserver,
}

impl Backend {
    fn plan(self) -> anyhow::Result<plan::Backend> {
        Ok(match self {
            Backend::Sglang => plan::Backend::Sglang,
            Backend::SglangNative => plan::Backend::SglangNative,
            Backend::SglangOai => plan::Backend::SglangOai,
            Backend::Vllm => plan::Backend::Vllm,
            Backend::Lmdeploy => plan::Backend::Lmdeploy,
            Backend::SglangOaiChat => plan::Backend::SglangOaiChat,
            Backend::VllmChat => plan::Backend::VllmChat,
            Backend::LmdeployChat => plan::Backend::LmdeployChat,
            Backend::SglangEmbedding => plan::Backend::SglangEmbedding,
            Backend::VllmEmbedding => plan::Backend::VllmEmbedding,
            Backend::Trt => plan::Backend::Trt,
            Backend::Truss => plan::Backend::Truss,
            Backend::Gserver => bail!(
                "--backend gserver: bench_serving has no request function for it (it raises \
                 NotImplementedError at warmup), so loupe has nothing to match"
            ),
        })
    }
}

/// `--dataset-name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DatasetName {
    /// ShareGPT prompts, token ids repeated or truncated to the drawn input length.
    Random,
    /// Token ids `(offset + i + j) % vocab`: no corpus needed.
    RandomIds,
    /// First human turn as the prompt, the first reply's length as the output length.
    Sharegpt,
    /// A JSONL file, one `{"conversations": [...]}` per line (`content` or `value` keys).
    Custom,
    /// Groups of prompts sharing a long system prompt (prefix-cache workloads).
    GeneratedSharedPrefix,
    /// Mooncake trace replay: sessions at their timestamps, shared prefixes by hash_id block.
    Mooncake,
    /// Agent sessions (JSON): turns in order, the server's replies in the history.
    AgenticTrace,
    /// OpenAI chat requests, one JSONL line each (messages, tools, other body keys).
    Openai,
    /// LongBench-v2 rows (data.json or JSONL).
    #[value(name = "longbench_v2")]
    LongbenchV2,
    /// SPEED-Bench rows (JSONL {category, turns}).
    SpeedBench,
    /// Generated images (random or blank, JPEG or PNG) with random-token text.
    Image,
    /// MMMU/MMMU Math rows with their image_1 (a local JSONL export: --dataset-path).
    Mmmu,
}

impl DatasetName {
    fn plan(self) -> anyhow::Result<plan::DatasetName> {
        Ok(match self {
            DatasetName::Image => plan::DatasetName::Image,
            DatasetName::Mmmu => plan::DatasetName::Mmmu,
            DatasetName::Mooncake => plan::DatasetName::Mooncake,
            DatasetName::AgenticTrace => plan::DatasetName::AgenticTrace,
            DatasetName::Openai => plan::DatasetName::Openai,
            DatasetName::LongbenchV2 => plan::DatasetName::LongbenchV2,
            DatasetName::SpeedBench => plan::DatasetName::SpeedBench,
            DatasetName::Random => plan::DatasetName::Random,
            DatasetName::RandomIds => plan::DatasetName::RandomIds,
            DatasetName::Sharegpt => plan::DatasetName::Sharegpt,
            DatasetName::Custom => plan::DatasetName::Custom,
            DatasetName::GeneratedSharedPrefix => plan::DatasetName::GeneratedSharedPrefix,
        })
    }
}

/// How `--random-range-ratio r` turns a length L into a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum RangeSemantics {
    /// Uniform on [max(L*r, 1), L]: r = 0 means [1, L], r = 1 means exactly L.
    #[default]
    Sglang,
    /// Uniform on [L*(1-r), L*(1+r)]: r = 0 means exactly L.
    Vllm,
}

impl From<RangeSemantics> for plan::RangeSemantics {
    fn from(r: RangeSemantics) -> Self {
        match r {
            RangeSemantics::Sglang => plan::RangeSemantics::Sglang,
            RangeSemantics::Vllm => plan::RangeSemantics::Vllm,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RampUpStrategy {
    Linear,
    Exponential,
}

impl From<RampUpStrategy> for plan::RampUpStrategy {
    fn from(r: RampUpStrategy) -> Self {
        match r {
            RampUpStrategy::Linear => plan::RampUpStrategy::Linear,
            RampUpStrategy::Exponential => plan::RampUpStrategy::Exponential,
        }
    }
}

/// Where a mooncake replay's assistant turns come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MooncakeHistory {
    /// The server's reply to the round before; rounds in order.
    Real,
    /// bench_serving's: a canned reply, every round sent at once (for comparisons with it).
    Canned,
}

/// `--lora-request-distribution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoraDistribution {
    Uniform,
    Distinct,
    Skewed,
}

/// `--search`: the load searched over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SearchKnob {
    RequestRate,
    MaxConcurrency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupDistribution {
    Uniform,
    Zipf,
}

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    // ---- target
    #[arg(long, value_enum, default_value = "sglang")]
    pub backend: Backend,
    /// Server URL. Without it (and without --host/--port) loupe starts its reference server
    /// in-process and benchmarks that.
    #[arg(long)]
    pub base_url: Option<String>,
    #[arg(long)]
    pub host: Option<String>,
    /// Default: the backend's usual port (30000 for SGLang, 8000 for vLLM).
    #[arg(long)]
    pub port: Option<u16>,
    /// Wait this long for /v1/models to answer before starting; 0 skips the check.
    #[arg(long, default_value_t = 60.0)]
    pub ready_check_timeout_sec: f64,
    /// Model name for the OpenAI routes (default: the first entry of /v1/models).
    #[arg(long)]
    pub model: Option<String>,
    /// The name to send when it differs from --model.
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// A tokenizer.json, a directory holding one, or a Hugging Face repo id already in the
    /// local Hugging Face cache (default: the server's /model_info tokenizer_path).
    #[arg(long)]
    pub tokenizer: Option<String>,
    /// Bearer key (default: $OPENAI_API_KEY; $API_KEY is sent as is, as bench_serving does).
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Extra HTTP headers, KEY=VALUE.
    #[arg(long, num_args = 1..)]
    pub header: Vec<String>,

    // ---- dataset
    /// Default: sharegpt against a server (as bench_serving), random-ids against the embedded one.
    #[arg(long, value_enum)]
    pub dataset_name: Option<DatasetName>,
    /// ShareGPT JSON (sharegpt, random) or JSONL (custom). Empty: the Hugging Face cache's copy.
    #[arg(long, default_value = "")]
    pub dataset_path: String,
    /// Default 1000 against a server, 200 against the embedded one.
    #[arg(long)]
    pub num_prompts: Option<usize>,
    #[arg(long)]
    pub sharegpt_output_len: Option<usize>,
    /// Drop ShareGPT prompts whose prompt + output exceed this many tokens.
    #[arg(long)]
    pub sharegpt_context_len: Option<usize>,
    /// Default 1024 against a server, 256 against the embedded one.
    #[arg(long)]
    pub random_input_len: Option<usize>,
    /// Default 1024 against a server, 128 against the embedded one.
    #[arg(long)]
    pub random_output_len: Option<usize>,
    #[arg(long, default_value_t = 0.0)]
    pub random_range_ratio: f64,
    /// How --random-range-ratio and --gsp-range-ratio widen a length.
    #[arg(long, value_enum, default_value = "sglang")]
    pub range_semantics: RangeSemantics,
    /// Send token ids instead of text, for exact prompt lengths.
    #[arg(long)]
    pub tokenize_prompt: bool,
    /// Wrap each prompt in the tokenizer's chat template (sharegpt, custom).
    #[arg(long)]
    pub apply_chat_template: bool,
    /// Appended to every ShareGPT/custom prompt, before the final "Assistant:".
    #[arg(long, default_value = "")]
    pub prompt_suffix: String,
    /// genai-bench traffic scenarios, e.g. "D(128,96)", "N(480,240)/(300,150)",
    /// "U(50,100)/(200,250)"; several give one run each and one summary table.
    #[arg(long)]
    pub traffic_scenario: Vec<String>,
    #[command(flatten)]
    pub gsp: GspArgs,
    #[command(flatten)]
    pub traces: TraceArgs,
    #[command(flatten)]
    pub images: ImageArgs,
    /// sglang-oai-chat: print a line as each request starts and ends (bench_serving's).
    #[arg(long)]
    pub print_requests: bool,
    /// Plot output tokens and concurrent requests per second after each run.
    #[arg(long)]
    pub plot_throughput: bool,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Do not re-count generated text with the tokenizer (total_output_tokens_retokenized).
    #[arg(long)]
    pub disable_retokenize: bool,

    // ---- requests
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// JSON object merged into every request body.
    #[arg(long)]
    pub extra_request_body: Option<String>,
    /// Let the model stop at EOS (bench_serving ignores EOS by default).
    #[arg(long)]
    pub disable_ignore_eos: bool,
    /// Ask OpenAI routes for usage on every chunk, so per-token ITL needs no tokenizer.
    #[arg(long)]
    pub continuous_usage_stats: bool,
    /// Non-streaming requests: TTFT is the whole latency, no ITL (bench_serving's).
    #[arg(long)]
    pub disable_stream: bool,
    /// `bootstrap_host`/`bootstrap_room` for a decode server with a fake transfer backend.
    #[arg(long)]
    pub fake_prefill: bool,
    /// Native `return_routed_experts` (server: --enable-return-routed-experts).
    #[arg(long)]
    pub return_routed_experts: bool,
    #[arg(long)]
    pub return_logprob: bool,
    #[arg(long, default_value_t = 0)]
    pub top_logprobs_num: usize,
    #[arg(long, num_args = 1..)]
    pub token_ids_logprob: Option<Vec<u32>>,
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub logprob_start_len: i64,
    /// LoRA adapters; each request names one (native `lora_path`, OpenAI `model`).
    #[arg(long, num_args = 1..)]
    pub lora_name: Vec<String>,
    #[arg(long, value_enum, default_value = "uniform")]
    pub lora_request_distribution: LoraDistribution,
    /// skewed: adapter i drawn with weight alpha^-i (must be above 1).
    #[arg(long, default_value_t = 1.5)]
    pub lora_zipf_alpha: f64,
    /// Fail a request that takes longer than this many seconds in all.
    #[arg(long, default_value_t = 6.0 * 3600.0)]
    pub request_timeout: f64,
    /// Fail a request whose stream stays silent this many seconds.
    #[arg(long)]
    pub read_timeout: Option<f64>,

    // ---- arrivals
    /// Requests per second; inf sends everything at once.
    #[arg(long, default_value_t = f64::INFINITY)]
    pub request_rate: f64,
    /// Gamma shape of the inter-arrival times (vLLM's): 1 = Poisson, < 1 burstier,
    /// > 1 smoother, inf = constant spacing.
    #[arg(long, default_value_t = 1.0)]
    pub burstiness: f64,
    /// Ramp the rate from --ramp-up-start-rps to --ramp-up-end-rps over the run (vLLM's).
    #[arg(long, value_enum, requires_all = ["ramp_up_start_rps", "ramp_up_end_rps"])]
    pub ramp_up_strategy: Option<RampUpStrategy>,
    #[arg(long)]
    pub ramp_up_start_rps: Option<f64>,
    #[arg(long)]
    pub ramp_up_end_rps: Option<f64>,
    #[arg(long)]
    pub max_concurrency: Option<usize>,
    /// Warmup requests before the measured run (the first prompt, at most 32 output tokens).
    #[arg(long, default_value_t = 1)]
    pub warmup_requests: usize,
    /// Flush the server's prefix cache after warmup.
    #[arg(long)]
    pub flush_cache: bool,
    #[arg(long, default_value_t = 60.0)]
    pub flush_cache_timeout: f64,
    /// Open connections ahead of the run, this many at a time, so that a burst of requests
    /// does not overflow the server's listen backlog; 0 opens them with the requests.
    #[arg(long, default_value_t = 256)]
    pub connection_ramp: usize,

    // ---- time-based runs
    /// Send for this many seconds (cycling through the dataset), then let what is in flight
    /// finish; at an infinite rate, --max-concurrency workers in a closed loop.
    #[arg(long, conflicts_with = "max_time_per_run")]
    pub duration: Option<f64>,
    /// genai-bench's spelling of --duration, in minutes.
    #[arg(long)]
    pub max_time_per_run: Option<f64>,
    /// Send at most this many requests (cycling through the dataset).
    #[arg(long)]
    pub max_requests_per_run: Option<usize>,
    /// Fraction of the run at its start left out of the steady-state figures.
    #[arg(long, default_value_t = 0.0)]
    pub warmup_ratio: f64,
    /// Fraction of the run at its end left out of the steady-state figures.
    #[arg(long, default_value_t = 0.0)]
    pub cooldown_ratio: f64,
    /// Report figures per slice of this many seconds of the run.
    #[arg(long)]
    pub slice_duration: Option<f64>,

    // ---- sweeps
    /// Run once per value of --max-concurrency (comma-separated) and print one summary table.
    #[arg(long, value_delimiter = ',', conflicts_with = "sweep_request_rate")]
    pub sweep_max_concurrency: Vec<usize>,
    /// Run once per value of --request-rate (comma-separated; inf allowed).
    #[arg(long, value_delimiter = ',')]
    pub sweep_request_rate: Vec<f64>,

    /// Input:output token lengths, one run each (random-ids prompts), e.g. 128:128,1024:128.
    #[arg(long, value_delimiter = ',', conflicts_with = "traffic_scenario")]
    pub sweep_isl_osl: Vec<String>,
    /// Find the highest load meeting --slo: bracketing, then bisection; every probe a run.
    #[arg(long, value_enum, conflicts_with_all = ["sweep_max_concurrency", "sweep_request_rate"])]
    pub search: Option<SearchKnob>,
    /// The share of requests that must meet every SLO for a probe to pass.
    #[arg(long, default_value_t = 0.9)]
    pub goodput_target: f64,
    /// The first probe (default: --request-rate or --max-concurrency when set, else 1).
    #[arg(long)]
    pub search_start: Option<f64>,
    /// Stop when the request-rate bracket is narrower than this fraction (concurrency: 1).
    #[arg(long, default_value_t = 0.1)]
    pub search_resolution: f64,
    #[arg(long, default_value_t = 12)]
    pub search_max_probes: usize,

    // ---- reports
    /// Append the JSONL record here (default: bench_serving's auto-named file).
    #[arg(long)]
    pub output_file: Option<PathBuf>,
    /// Add per-request arrays (input_lens, output_lens, ttfts, itls, generated_texts, errors).
    #[arg(long)]
    pub output_details: bool,
    #[arg(long)]
    pub tag: Option<String>,
    /// Write one CSV row per request here.
    #[arg(long)]
    pub output_csv: Option<PathBuf>,
    /// Write one CSV row per run here (sweeps and scenarios: one row per point).
    #[arg(long)]
    pub summary_csv: Option<PathBuf>,
    /// Write a self-contained HTML report here, and beside it the request timings it was
    /// built from (`NAME.requests.jsonl`, which `loupe report` rebuilds it from).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Write every request's timings here (the file `--html` writes beside its page), so
    /// `loupe report` can draw the run later.
    #[arg(long, value_name = "FILE")]
    pub request_timings: Option<PathBuf>,
    /// Write genai-bench's workbook (.xlsx, its sheet names, native charts) here; needs a
    /// loupe built with `--features xlsx`.
    #[arg(long)]
    pub xlsx: Option<PathBuf>,
    #[arg(long)]
    pub disable_tqdm: bool,
    /// Percentiles reported from HdrHistograms, comma-separated.
    #[arg(long, alias = "metric-percentiles", default_value = "50,90,95,99,99.9")]
    pub percentiles: String,
    /// SLOs in ms for goodput, e.g. ttft=500,tpot=50,e2e=3000.
    #[arg(long)]
    pub slo: Option<String>,
    /// bench_serving's spelling of the SLOs: ttft:500 tpot:50 e2el:3000.
    #[arg(long, num_args = 1..)]
    pub goodput: Vec<String>,

    /// bench_serving's prefix-cache hit report (SGLang servers report cached tokens).
    #[arg(long)]
    pub cache_report: bool,
    /// Poll the server's /metrics every MS milliseconds (1000 when given alone) during each
    /// measured run: every series in the JSONL, queue/KV/preemption/cache-hit summary.
    #[arg(long, value_name = "MS", num_args = 0..=1, default_missing_value = "1000")]
    pub scrape_metrics: Option<u64>,

    #[command(flatten)]
    pub profile: ProfileFlags,

    /// Model of the embedded server (a preset or a model directory).
    #[arg(long, default_value = "tiny")]
    pub embedded_model: String,

    #[command(flatten)]
    pub refused: RefusedFlags,
}

/// The generated-shared-prefix shape, as bench_serving and offline_throughput name it.
#[derive(clap::Args, Debug, Clone)]
pub struct GspShapeArgs {
    #[arg(long, default_value_t = 64)]
    pub gsp_num_groups: usize,
    #[arg(long, default_value_t = 16)]
    pub gsp_prompts_per_group: usize,
    #[arg(long, default_value_t = 2048)]
    pub gsp_system_prompt_len: usize,
    #[arg(long, default_value_t = 128)]
    pub gsp_question_len: usize,
    #[arg(long, default_value_t = 256)]
    pub gsp_output_len: usize,
}

/// bench_serving's generated-shared-prefix flags (same names and defaults).
#[derive(clap::Args, Debug, Clone)]
pub struct GspArgs {
    #[command(flatten)]
    pub shape: GspShapeArgs,
    /// Unlike --random-range-ratio, 1.0 (fixed lengths) by default, as bench_serving.
    #[arg(long, default_value_t = 1.0)]
    pub gsp_range_ratio: f64,
    /// Accepted: loupe's preparation is fast anyway and always counts prompt tokens.
    #[arg(long)]
    pub gsp_fast_prepare: bool,
    /// Send X-SMG-Routing-Key with a per-group key.
    #[arg(long)]
    pub gsp_send_routing_key: bool,
    #[arg(long, default_value_t = 1)]
    pub gsp_num_turns: usize,
    /// Keep the generated order instead of shuffling.
    #[arg(long)]
    pub gsp_ordered: bool,
    #[arg(long, value_enum, default_value = "uniform")]
    pub gsp_group_distribution: GroupDistribution,
    #[arg(long)]
    pub gsp_zipf_alpha: Option<f64>,
}

/// `--image-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImageFormat {
    Jpeg,
    Png,
}

/// `--image-content`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImageContent {
    /// Random RGB pixels.
    Random,
    /// White.
    Blank,
}

/// bench_serving's image dataset flags (same names and defaults).
#[derive(clap::Args, Debug, Clone)]
pub struct ImageArgs {
    /// Images per request (the most per request with --random-image-count).
    #[arg(long, default_value_t = 1)]
    pub image_count: usize,
    /// Each request gets 1 to --image-count images.
    #[arg(long)]
    pub random_image_count: bool,
    /// 4k, 1080p, 720p, 360p, HEIGHTxWIDTH, or random:<minH>x<minW>-<maxH>x<maxW>.
    #[arg(long, default_value = "1080p")]
    pub image_resolution: String,
    #[arg(long, value_enum, default_value = "jpeg")]
    pub image_format: ImageFormat,
    #[arg(long, value_enum, default_value = "random")]
    pub image_content: ImageContent,
}

impl ImageArgs {
    fn plan(&self) -> anyhow::Result<plan::ImagePlan> {
        let resolution = plan::ImageResolution::parse(&self.image_resolution)
            .map_err(|e| anyhow::anyhow!("--image-resolution {e}"))?;
        Ok(plan::ImagePlan {
            count: self.image_count,
            random_count: self.random_image_count,
            resolution,
            resolution_label: self.image_resolution.clone(),
            format: match self.image_format {
                ImageFormat::Jpeg => plan::ImageFormat::Jpeg,
                ImageFormat::Png => plan::ImageFormat::Png,
            },
            content: match self.image_content {
                ImageContent::Random => plan::ImageContent::Random,
                ImageContent::Blank => plan::ImageContent::Blank,
            },
        })
    }
}

/// bench_serving's mooncake, agentic-trace and speed-bench flags, and loupe's for bad lines.
#[derive(clap::Args, Debug, Clone)]
pub struct TraceArgs {
    /// Which published Mooncake trace --dataset-path holds: conversation, mooncake,
    /// synthetic or toolagent.
    #[arg(long, default_value = "conversation")]
    pub mooncake_workload: String,
    /// Stretch (> 1) or compress (< 1) the trace's time line.
    #[arg(long, default_value_t = 1.0)]
    pub mooncake_slowdown_factor: f64,
    #[arg(long, default_value_t = 1)]
    pub mooncake_num_rounds: usize,
    /// real: rounds in order with the server's replies; canned: bench_serving's replay.
    #[arg(long, value_enum, default_value = "real")]
    pub mooncake_history: MooncakeHistory,
    /// Tokens per hash_id block (Mooncake's convention).
    #[arg(long, default_value_t = 512)]
    pub mooncake_block_tokens: usize,
    /// Replay the dataset's timestamps (mooncake replays them anyway at --request-rate inf).
    #[arg(long)]
    pub use_trace_timestamps: bool,
    /// agentic-trace: start at this conversation (the list wraps around).
    #[arg(long, default_value_t = 0)]
    pub dataset_offset: usize,
    /// agentic-trace: at most this many turns per conversation.
    #[arg(long)]
    pub agentic_max_turns: Option<usize>,
    /// speed-bench: low_entropy, mixed or high_entropy (default: all).
    #[arg(long)]
    pub speed_bench_category: Option<String>,
    #[arg(long, default_value_t = 512)]
    pub speed_bench_output_len: usize,
    /// Skip malformed dataset lines (each is counted in the run's notes) instead of stopping.
    #[arg(long)]
    pub skip_bad_lines: bool,
}

impl From<&TraceArgs> for plan::MooncakePlan {
    fn from(t: &TraceArgs) -> Self {
        plan::MooncakePlan {
            workload: t.mooncake_workload.clone(),
            slowdown_factor: t.mooncake_slowdown_factor,
            num_rounds: t.mooncake_num_rounds,
            history: match t.mooncake_history {
                MooncakeHistory::Real => loupe_bench::session::History::Real,
                MooncakeHistory::Canned => loupe_bench::session::History::Canned,
            },
            block_tokens: t.mooncake_block_tokens,
        }
    }
}

impl From<&TraceArgs> for plan::TraceDatasetPlan {
    fn from(t: &TraceArgs) -> Self {
        plan::TraceDatasetPlan {
            dataset_offset: t.dataset_offset,
            agentic_max_turns: t.agentic_max_turns,
            speed_bench_category: t.speed_bench_category.clone(),
            speed_bench_output_len: t.speed_bench_output_len,
            skip_bad_lines: t.skip_bad_lines,
        }
    }
}

/// bench_serving's profiling flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ProfileFlags {
    /// Profile the server during the measured run (POST /start_profile, /stop_profile).
    #[arg(long)]
    pub profile: bool,
    /// CPU, GPU, MEM, CUDA_PROFILER, XPU (and RPD on loupe servers).
    #[arg(long, num_args = 1.., default_values = ["CPU", "GPU"],
          value_parser = ["CPU", "GPU", "CUDA_PROFILER", "XPU", "MEM", "RPD"])]
    pub profile_activities: Vec<String>,
    /// Absolute forward step at which capture starts.
    #[arg(long)]
    pub profile_start_step: Option<u64>,
    /// Capture this many steps; the server stops by itself (no /stop_profile).
    #[arg(long)]
    pub profile_steps: Option<u64>,
    /// num_steps of the request (5 with --profile-by-stage when unset).
    #[arg(long)]
    pub profile_num_steps: Option<u64>,
    #[arg(long)]
    pub profile_by_stage: bool,
    #[arg(long, num_args = 1..)]
    pub profile_stages: Vec<String>,
    /// Traces go to DIR/<timestamp> (default: $SGLANG_TORCH_PROFILER_DIR, else /tmp).
    #[arg(long)]
    pub profile_output_dir: Option<PathBuf>,
    #[arg(long)]
    pub profile_prefix: Option<String>,
    /// Disaggregated serving: profile the prefill/decode workers named below.
    #[arg(long)]
    pub pd_separated: bool,
    #[arg(long, num_args = 0.., conflicts_with = "profile_decode_url")]
    pub profile_prefill_url: Vec<String>,
    #[arg(long, num_args = 0..)]
    pub profile_decode_url: Vec<String>,
    /// How long to wait for the traces to be complete after the run.
    #[arg(long, default_value_t = 120.0)]
    pub profile_wait_timeout: f64,

    // loupe's own: which engine's profiling protocol to speak.
    /// The server's engine: sglang, vllm, trtllm or dynamo (default: asked from the server,
    /// and printed in the profile's report).
    #[arg(long, value_parser = loupe_cli_observe::engine::parse)]
    pub engine: Option<loupe_client::Engine>,
}

impl From<&ProfileFlags> for ProfileArgs {
    fn from(p: &ProfileFlags) -> Self {
        ProfileArgs {
            profile: p.profile,
            profile_activities: p.profile_activities.clone(),
            profile_start_step: p.profile_start_step,
            profile_steps: p.profile_steps,
            profile_num_steps: p.profile_num_steps,
            profile_by_stage: p.profile_by_stage,
            profile_stages: p.profile_stages.clone(),
            profile_output_dir: p.profile_output_dir.clone(),
            profile_prefix: p.profile_prefix.clone(),
            pd_separated: p.pd_separated,
            profile_prefill_url: p.profile_prefill_url.clone(),
            profile_decode_url: p.profile_decode_url.clone(),
            profile_wait_timeout: p.profile_wait_timeout,
            engine: p.engine,
        }
    }
}

/// `--slo ttft=500,tpot=50,e2e=3000` and `--goodput ttft:500 tpot:50` into one list.
pub fn parse_slos(slo: Option<&str>, goodput: &[String]) -> anyhow::Result<Slos> {
    let mut out: Slos = Vec::new();
    let items = slo
        .into_iter()
        .flat_map(|s| s.split(','))
        .map(|s| (s, '='))
        .chain(goodput.iter().map(|s| (s.as_str(), ':')));
    for (item, sep) in items {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let Some((k, v)) = item.split_once(sep) else {
            bail!("SLO '{item}': expected KEY{sep}MILLISECONDS, e.g. ttft{sep}500");
        };
        let key = match k.trim() {
            "ttft" => "ttft",
            "tpot" => "tpot",
            "e2e" | "e2el" => "e2el",
            other => bail!("SLO key '{other}': use ttft, tpot or e2e (e2el)"),
        };
        let ms: f64 = v
            .trim()
            .parse()
            .ok()
            .filter(|x: &f64| *x > 0.0)
            .with_context(|| format!("SLO {key}: '{v}' is not a positive number of ms"))?;
        out.retain(|(k, _)| k != key);
        out.push((key.to_string(), ms));
    }
    Ok(out)
}

/// `--percentiles 50,99,99.9`.
pub fn parse_percentiles(s: &str) -> anyhow::Result<Vec<f64>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<f64>()
                .ok()
                .filter(|x| (0.0..=100.0).contains(x))
                .with_context(|| {
                    format!("--percentiles: '{p}' is not a percentile between 0 and 100")
                })
        })
        .collect()
}

/// `--header K=V` pairs (bench_serving drops entries without a key or a value; loupe refuses them).
pub fn parse_headers(list: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    list.iter()
        .map(|h| match h.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.is_empty() => {
                Ok((k.trim().to_string(), v.to_string()))
            }
            _ => bail!("--header '{h}': expected KEY=VALUE"),
        })
        .collect()
}

/// Seconds from a flag, refused unless a non-negative, finite number of seconds.
fn seconds(flag: &str, s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| anyhow::anyhow!("{flag}: {s} is not a number of seconds"))
}

impl BenchArgs {
    /// Where to send the requests: --base-url, else --host/--port, else the embedded server.
    fn target(&self, backend: plan::Backend) -> plan::ServerTarget {
        if let Some(u) = &self.base_url {
            return plan::ServerTarget::Url(u.clone());
        }
        if self.host.is_none() && self.port.is_none() {
            return plan::ServerTarget::Embedded {
                model: self.embedded_model.clone(),
            };
        }
        let host = self.host.as_deref().unwrap_or("127.0.0.1");
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let port = self.port.unwrap_or(backend.default_port());
        plan::ServerTarget::Url(format!("http://{host}:{port}"))
    }

    fn shared_prefix(&self) -> anyhow::Result<plan::SharedPrefixPlan> {
        let g = &self.gsp;
        let distribution = match (g.gsp_group_distribution, g.gsp_zipf_alpha) {
            (GroupDistribution::Zipf, None) => {
                bail!("--gsp-group-distribution zipf needs --gsp-zipf-alpha")
            }
            (GroupDistribution::Zipf, Some(alpha)) => plan::GroupDistribution::Zipf { alpha },
            (GroupDistribution::Uniform, Some(_)) => {
                bail!("--gsp-zipf-alpha is only meaningful with --gsp-group-distribution zipf")
            }
            (GroupDistribution::Uniform, None) => plan::GroupDistribution::Uniform,
        };
        Ok(plan::SharedPrefixPlan {
            num_groups: g.shape.gsp_num_groups,
            prompts_per_group: g.shape.gsp_prompts_per_group,
            system_prompt_len: g.shape.gsp_system_prompt_len,
            question_len: g.shape.gsp_question_len,
            output_len: g.shape.gsp_output_len,
            range_ratio: g.gsp_range_ratio,
            send_routing_key: g.gsp_send_routing_key,
            ordered: g.gsp_ordered,
            distribution,
            num_turns: g.gsp_num_turns,
        })
    }

    fn ramp(&self) -> anyhow::Result<Option<plan::Ramp>> {
        match (
            self.ramp_up_strategy,
            self.ramp_up_start_rps,
            self.ramp_up_end_rps,
        ) {
            (Some(strategy), start, end) => Ok(Some(plan::Ramp {
                strategy: strategy.into(),
                // clap requires both with the strategy.
                start_rps: start.unwrap_or(0.0),
                end_rps: end.unwrap_or(0.0),
            })),
            (None, None, None) => Ok(None),
            (None, _, _) => {
                bail!("--ramp-up-start-rps/--ramp-up-end-rps need --ramp-up-strategy")
            }
        }
    }

    fn sweep(&self) -> Option<plan::Sweep> {
        if !self.sweep_max_concurrency.is_empty() {
            Some(plan::Sweep::MaxConcurrency(
                self.sweep_max_concurrency.clone(),
            ))
        } else if !self.sweep_request_rate.is_empty() {
            Some(plan::Sweep::RequestRate(self.sweep_request_rate.clone()))
        } else {
            None
        }
    }

    fn time(&self) -> anyhow::Result<plan::TimePlan> {
        let duration = match (self.duration, self.max_time_per_run) {
            (Some(s), _) => Some(seconds("--duration", s)?),
            (None, Some(m)) => Some(seconds("--max-time-per-run", m * 60.0)?),
            (None, None) => None,
        };
        Ok(plan::TimePlan {
            duration,
            max_requests: self.max_requests_per_run,
            warmup_ratio: self.warmup_ratio,
            cooldown_ratio: self.cooldown_ratio,
            slice: self
                .slice_duration
                .map(|s| seconds("--slice-duration", s))
                .transpose()?,
        })
    }

    fn extra_body(&self) -> anyhow::Result<serde_json::Map<String, Value>> {
        let Some(body) = &self.extra_request_body else {
            return Ok(Default::default());
        };
        match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(m)) => Ok(m),
            _ => bail!("--extra-request-body must be a JSON object, got {body}"),
        }
    }

    /// The plan these flags describe. Errors are about the flags as written: refused flags,
    /// combinations, spellings; the plan checks what the values mean when it runs.
    pub fn plan(&self) -> anyhow::Result<BenchPlan> {
        self.refused.check()?;
        let timeouts = || "--request-timeout and --read-timeout must be positive";
        let request_timeout = Duration::try_from_secs_f64(self.request_timeout)
            .ok()
            .with_context(timeouts)?;
        let read_timeout = self
            .read_timeout
            .map(|t| Duration::try_from_secs_f64(t).ok().with_context(timeouts))
            .transpose()?;
        let ready = self.ready_check_timeout_sec;
        let ready_check_timeout = if ready > 0.0 {
            seconds("--ready-check-timeout-sec", ready)?
        } else {
            Duration::ZERO
        };
        let mut scenarios = self
            .traffic_scenario
            .iter()
            .map(|s| Scenario::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        // An ISL:OSL pair is genai-bench's deterministic scenario D(isl,osl).
        for pair in &self.sweep_isl_osl {
            let (i, o) = pair
                .split_once(':')
                .filter(|(i, o)| i.trim().parse::<u32>().is_ok() && o.trim().parse::<u32>().is_ok())
                .with_context(|| {
                    format!("--sweep-isl-osl '{pair}': expected ISL:OSL, e.g. 128:128")
                })?;
            scenarios.push(Scenario::parse(&format!("D({},{})", i.trim(), o.trim()))?);
        }
        let backend = self.backend.plan()?;
        if self.print_requests && backend != plan::Backend::SglangOaiChat {
            bail!(
                "--print-requests works with --backend sglang-oai-chat only (as in \
                 bench_serving), not {}",
                backend.name()
            );
        }
        Ok(BenchPlan {
            server: plan::ServerPlan {
                target: self.target(backend),
                ready_check_timeout,
                model: self.model.clone(),
                served_model_name: self.served_model_name.clone(),
                tokenizer: self.tokenizer.clone(),
                api_key: self.api_key.clone(),
                headers: parse_headers(&self.header)?,
            },
            backend,
            dataset: plan::DatasetPlan {
                name: self.dataset_name.map(DatasetName::plan).transpose()?,
                path: self.dataset_path.clone(),
                num_prompts: self.num_prompts,
                sharegpt_output_len: self.sharegpt_output_len,
                sharegpt_context_len: self.sharegpt_context_len,
                random_input_len: self.random_input_len,
                random_output_len: self.random_output_len,
                random_range_ratio: self.random_range_ratio,
                range_semantics: self.range_semantics.into(),
                tokenize_prompt: self.tokenize_prompt,
                apply_chat_template: self.apply_chat_template,
                prompt_suffix: self.prompt_suffix.clone(),
                scenarios,
                shared_prefix: self.shared_prefix()?,
                mooncake: (&self.traces).into(),
                traces: (&self.traces).into(),
                image: self.images.plan()?,
                use_trace_timestamps: self.traces.use_trace_timestamps,
                seed: self.seed,
                retokenize: !self.disable_retokenize,
            },
            requests: plan::RequestPlan {
                temperature: self.temperature,
                top_p: self.top_p,
                extra_body: self.extra_body()?,
                ignore_eos: !self.disable_ignore_eos,
                continuous_usage_stats: self.continuous_usage_stats,
                stream: !self.disable_stream,
                flags: plan::RequestFlags {
                    fake_prefill: self.fake_prefill,
                    return_routed_experts: self.return_routed_experts,
                    return_logprob: self.return_logprob,
                    top_logprobs_num: self.top_logprobs_num,
                    token_ids_logprob: self.token_ids_logprob.clone(),
                    logprob_start_len: self.logprob_start_len,
                },
                lora: (!self.lora_name.is_empty()).then(|| plan::LoraPlan {
                    names: self.lora_name.clone(),
                    distribution: match self.lora_request_distribution {
                        LoraDistribution::Uniform => plan::LoraDistribution::Uniform,
                        LoraDistribution::Distinct => plan::LoraDistribution::Distinct,
                        LoraDistribution::Skewed => plan::LoraDistribution::Skewed {
                            alpha: self.lora_zipf_alpha,
                        },
                    },
                }),
                timeout: request_timeout,
                read_timeout,
            },
            arrivals: plan::ArrivalPlan {
                request_rate: self.request_rate,
                burstiness: self.burstiness,
                ramp: self.ramp()?,
                max_concurrency: self.max_concurrency,
            },
            sweep: self.sweep(),
            search: self.search.map(|k| loupe_bench::search::SearchPlan {
                knob: match k {
                    SearchKnob::RequestRate => loupe_bench::search::Knob::RequestRate,
                    SearchKnob::MaxConcurrency => loupe_bench::search::Knob::MaxConcurrency,
                },
                goodput_target: self.goodput_target,
                start: self.search_start,
                resolution: self.search_resolution,
                max_probes: self.search_max_probes,
            }),
            time: self.time()?,
            warmup: plan::WarmupPlan {
                connection_ramp: self.connection_ramp,
                requests: self.warmup_requests,
                flush_cache: self.flush_cache,
                flush_cache_timeout: seconds("--flush-cache-timeout", self.flush_cache_timeout)?,
            },
            metrics: plan::MetricsPlan {
                percentiles: parse_percentiles(&self.percentiles)?,
                slos: parse_slos(self.slo.as_deref(), &self.goodput)?,
                cache_report: self.cache_report,
                scrape_metrics: self
                    .scrape_metrics
                    .map(|ms| {
                        (ms > 0)
                            .then(|| Duration::from_millis(ms))
                            .context("--scrape-metrics: the interval must be at least 1 ms")
                    })
                    .transpose()?,
            },
            outputs: plan::OutputPlan {
                jsonl: self.output_file.clone(),
                details: self.output_details,
                tag: self.tag.clone(),
                request_csv: self.output_csv.clone(),
                summary_csv: self.summary_csv.clone(),
            },
            profile: (&self.profile).into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(args: &[&str]) -> BenchArgs {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .expect("flags parse")
            .args
    }

    fn plan(args: &[&str]) -> anyhow::Result<BenchPlan> {
        parse(args).plan()
    }

    #[test]
    fn slos_in_both_spellings() {
        let s = parse_slos(
            Some("ttft=500, e2e=3000"),
            &["tpot:50".into(), "ttft:400".into()],
        )
        .unwrap();
        assert_eq!(
            s,
            vec![
                ("e2el".to_string(), 3000.0),
                ("tpot".to_string(), 50.0),
                ("ttft".to_string(), 400.0)
            ]
        );
        assert!(parse_slos(Some("latency=5"), &[]).is_err());
        assert!(parse_slos(Some("ttft=-1"), &[]).is_err());
        assert!(parse_slos(None, &["ttft=5".into()]).is_err());
    }

    #[test]
    fn percentiles_and_headers() {
        assert_eq!(parse_percentiles("50, 99.9").unwrap(), vec![50.0, 99.9]);
        assert!(parse_percentiles("101").is_err());
        assert_eq!(
            parse_headers(&["X-A=b=c".into()]).unwrap(),
            vec![("X-A".to_string(), "b=c".to_string())]
        );
        assert!(parse_headers(&["novalue".into()]).is_err());
    }

    #[test]
    fn no_flags_is_the_embedded_server_with_bench_serving_defaults() {
        let p = plan(&[]).unwrap();
        assert_eq!(
            p.server.target,
            plan::ServerTarget::Embedded {
                model: "tiny".into()
            }
        );
        assert_eq!(p.server.ready_check_timeout, Duration::from_secs(60));
        assert_eq!(p.backend, plan::Backend::Sglang);
        assert_eq!(p.dataset.name, None, "the default depends on the target");
        assert_eq!((p.dataset.seed, p.dataset.retokenize), (42, true));
        assert_eq!(p.requests.timeout, Duration::from_secs(6 * 3600));
        assert!(p.requests.ignore_eos);
        assert!(p.arrivals.request_rate.is_infinite() && p.arrivals.burstiness == 1.0);
        assert_eq!(p.sweep, None);
        assert_eq!((p.warmup.requests, p.warmup.connection_ramp), (1, 256));
        assert_eq!(p.metrics.percentiles, [50.0, 90.0, 95.0, 99.0, 99.9]);
        assert_eq!(p.profile.profile_activities, ["CPU", "GPU"]);
        assert_eq!(p.profile.profile_wait_timeout, 120.0);
        p.validate().unwrap();
    }

    #[test]
    fn host_and_port_make_a_url_with_the_backends_port() {
        let p = plan(&["--backend", "vllm", "--host", "::1"]).unwrap();
        assert_eq!(
            p.server.target,
            plan::ServerTarget::Url("http://[::1]:8000".into())
        );
        let p = plan(&["--port", "9"]).unwrap();
        assert_eq!(
            p.server.target,
            plan::ServerTarget::Url("http://127.0.0.1:9".into())
        );
        let p = plan(&["--base-url", "http://h:1/", "--port", "9"]).unwrap();
        assert_eq!(
            p.server.target,
            plan::ServerTarget::Url("http://h:1/".into())
        );
    }

    #[test]
    fn every_flag_group_reaches_the_plan() {
        let p = plan(&[
            "--dataset-name",
            "generated-shared-prefix",
            "--gsp-group-distribution",
            "zipf",
            "--gsp-zipf-alpha",
            "1.5",
            "--sweep-request-rate",
            "1,inf",
            "--ramp-up-strategy",
            "linear",
            "--ramp-up-start-rps",
            "1",
            "--ramp-up-end-rps",
            "4",
            "--extra-request-body",
            r#"{"x": 1}"#,
            "--slo",
            "ttft=500",
            "--read-timeout",
            "2.5",
            "--ready-check-timeout-sec",
            "0",
            "--traffic-scenario",
            "D(1,2)",
            "--disable-retokenize",
            "--profile",
            "--profile-num-steps",
            "3",
        ])
        .unwrap();
        assert_eq!(
            p.dataset.name,
            Some(plan::DatasetName::GeneratedSharedPrefix)
        );
        assert_eq!(
            p.dataset.shared_prefix.distribution,
            plan::GroupDistribution::Zipf { alpha: 1.5 }
        );
        assert_eq!(
            p.sweep,
            Some(plan::Sweep::RequestRate(vec![1.0, f64::INFINITY]))
        );
        assert_eq!(
            p.arrivals.ramp,
            Some(plan::Ramp {
                strategy: plan::RampUpStrategy::Linear,
                start_rps: 1.0,
                end_rps: 4.0
            })
        );
        assert_eq!(p.requests.extra_body["x"], 1);
        assert_eq!(p.metrics.slos, [("ttft".to_string(), 500.0)]);
        assert_eq!(p.requests.read_timeout, Some(Duration::from_millis(2500)));
        assert!(p.server.ready_check_timeout.is_zero());
        assert_eq!(p.dataset.scenarios.len(), 1);
        assert!(!p.dataset.retokenize);
        assert!(p.profile.profile && p.profile.profile_num_steps == Some(3));
        // A ramp and a rate sweep both set the rate: the plan says so.
        assert!(p.validate().unwrap_err().to_string().contains("use one"));
    }

    #[test]
    fn flag_combinations_and_spellings_are_refused_here() {
        let err = |args: &[&str]| plan(args).unwrap_err().to_string();
        assert!(err(&["--ramp-up-end-rps", "3"]).contains("need --ramp-up-strategy"));
        assert!(err(&["--gsp-zipf-alpha", "1"]).contains("only meaningful"));
        assert!(err(&["--gsp-group-distribution", "zipf"]).contains("needs --gsp-zipf-alpha"));
        assert!(err(&["--extra-request-body", "[1]"]).contains("must be a JSON object"));
        assert!(err(&["--header", "novalue"]).contains("KEY=VALUE"));
        assert!(err(&["--request-timeout=-1"]).contains("must be positive"));
        assert!(err(&["--traffic-scenario", "Q(1)"]).contains("--traffic-scenario 'Q(1)'"));
        assert!(err(&["--percentiles", "50,x"]).contains("'x' is not a percentile"));
        assert!(
            err(&["--image-resolution", "8k"]).contains("--image-resolution '8k' is not a res")
        );
        assert!(
            err(&["--print-requests"]).contains("--backend sglang-oai-chat only"),
            "{}",
            err(&["--print-requests"])
        );
        let refused = err(&["--rust-client"]);
        assert!(refused.contains("--rust-client: loupe bench is itself"));
        // clap's own rules.
        let cli = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).is_err()
        };
        assert!(cli(&[
            "--ramp-up-strategy",
            "linear",
            "--ramp-up-start-rps",
            "1"
        ]));
        assert!(cli(&[
            "--sweep-max-concurrency",
            "1",
            "--sweep-request-rate",
            "1"
        ]));
    }
}
