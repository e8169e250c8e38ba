//! What a benchmark is asked to do, as plain data: the server (a URL, or the reference server
//! started in this process), the backend's API, the dataset, the request bodies, the arrivals,
//! the scenarios x sweep points, the metrics and the output files. A front end fills a
//! [`BenchPlan`] (`loupe bench` from bench_serving's flags) and hands it to `loupe_bench::run`.
//!
//! [`BenchPlan::validate`] checks what a plan means, whoever made it; its messages name
//! settings by bench_serving's flag names, the names users know them by.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::dataset::scenario::Scenario;
pub use crate::error::PlanError;
use crate::error::{BenchError, Result};
use crate::profile::bench::ProfileArgs;

/// `--backend`: the name is kept as given (it goes into the report and the file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// /v1/embeddings: latency only.
    SglangEmbedding,
    VllmEmbedding,
    /// Triton's TensorRT-LLM ensemble, /v2/models/ensemble/generate_stream.
    Trt,
    /// Baseten's Truss, /v1/models/model:predict.
    Truss,
}

/// The API a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Native,
    Completions,
    Chat,
    /// One JSON response, no stream: only its latency is measured.
    Embeddings,
    /// SSE events whose `text_output` is appended; the stream ends without [DONE].
    Trt,
    /// Completions-shaped SSE events (`choices[0].text`) from /v1/models/model:predict.
    Truss,
}

impl Api {
    /// The stream's end is its body's end, with no [DONE] event.
    pub fn ends_without_done(self) -> bool {
        matches!(self, Api::Embeddings | Api::Trt | Api::Truss)
    }
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sglang => "sglang",
            Backend::SglangNative => "sglang-native",
            Backend::SglangOai => "sglang-oai",
            Backend::Vllm => "vllm",
            Backend::Lmdeploy => "lmdeploy",
            Backend::SglangOaiChat => "sglang-oai-chat",
            Backend::VllmChat => "vllm-chat",
            Backend::LmdeployChat => "lmdeploy-chat",
            Backend::SglangEmbedding => "sglang-embedding",
            Backend::VllmEmbedding => "vllm-embedding",
            Backend::Trt => "trt",
            Backend::Truss => "truss",
        }
    }

    pub fn api(self) -> Api {
        match self {
            Backend::Sglang | Backend::SglangNative => Api::Native,
            Backend::SglangOai | Backend::Vllm | Backend::Lmdeploy => Api::Completions,
            Backend::SglangOaiChat | Backend::VllmChat | Backend::LmdeployChat => Api::Chat,
            Backend::SglangEmbedding | Backend::VllmEmbedding => Api::Embeddings,
            Backend::Trt => Api::Trt,
            Backend::Truss => Api::Truss,
        }
    }

    pub fn path(self) -> &'static str {
        match self.api() {
            Api::Native => "/generate",
            Api::Completions => "/v1/completions",
            Api::Chat => "/v1/chat/completions",
            Api::Embeddings => "/v1/embeddings",
            Api::Trt => "/v2/models/ensemble/generate_stream",
            Api::Truss => "/v1/models/model:predict",
        }
    }

    /// bench_serving's default port per backend.
    pub fn default_port(self) -> u16 {
        match self {
            Backend::Vllm | Backend::VllmChat | Backend::VllmEmbedding | Backend::Trt => 8000,
            Backend::Lmdeploy | Backend::LmdeployChat => 23333,
            Backend::Truss => 8080,
            _ => 30000,
        }
    }

    /// The server lists its models at /v1/models (readiness and model discovery).
    pub fn lists_models(self) -> bool {
        !matches!(self, Backend::Trt | Backend::Truss)
    }

    pub fn is_sglang(self) -> bool {
        self.name().starts_with("sglang")
    }

    pub fn is_vllm(self) -> bool {
        self.name().starts_with("vllm")
    }
}

/// `--dataset-name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Mooncake's trace: sessions by timestamp, shared prefixes by hash_id block.
    Mooncake,
    /// Agent sessions (OpenHands/SWE-smith style JSON): turns in order with real replies.
    AgenticTrace,
    /// OpenAI chat requests, one JSONL line each (messages, tools and other body keys).
    Openai,
    /// THUDM/LongBench-v2 rows (JSONL): long-context multiple-choice prompts.
    LongbenchV2,
    /// nvidia/SPEED-Bench rows (JSONL `{category, turns}`).
    SpeedBench,
    /// bench_serving's generated images (random or blank, JPEG or PNG) with random-ids text.
    Image,
    /// MMMU/MMMU rows (a local JSONL export): `image_1` and the question.
    Mmmu,
}

impl DatasetName {
    pub fn name(self) -> &'static str {
        match self {
            DatasetName::Random => "random",
            DatasetName::RandomIds => "random-ids",
            DatasetName::Sharegpt => "sharegpt",
            DatasetName::Custom => "custom",
            DatasetName::GeneratedSharedPrefix => "generated-shared-prefix",
            DatasetName::Mooncake => "mooncake",
            DatasetName::AgenticTrace => "agentic-trace",
            DatasetName::Openai => "openai",
            DatasetName::LongbenchV2 => "longbench_v2",
            DatasetName::SpeedBench => "speed-bench",
            DatasetName::Image => "image",
            DatasetName::Mmmu => "mmmu",
        }
    }

    /// Requests carry images (image_url content parts or native image_data).
    pub fn has_images(self) -> bool {
        matches!(self, DatasetName::Image | DatasetName::Mmmu)
    }
}

/// `--image-resolution`: one size for every image, or a uniform draw per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageResolution {
    /// Width x height in pixels.
    Fixed { width: u32, height: u32 },
    /// Width and height each uniform on [min, max] (`random:<minH>x<minW>-<maxH>x<maxW>`).
    Random { min: (u32, u32), max: (u32, u32) },
}

impl ImageResolution {
    /// bench_serving's spellings: `4k`, `1080p`, `720p`, `360p`, `HxW` (height first), or
    /// `random:<minH>x<minW>-<maxH>x<maxW>`. The error says what was expected.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let fixed = |t: &str| -> std::result::Result<(u32, u32), String> {
            let t = t.trim().to_ascii_lowercase();
            let preset = match t.as_str() {
                "4k" => Some((3840, 2160)),
                "1080p" => Some((1920, 1080)),
                "720p" => Some((1280, 720)),
                "360p" => Some((640, 360)),
                _ => None,
            };
            if let Some(wh) = preset {
                return Ok(wh);
            }
            let (h, w) = t
                .split_once('x')
                .and_then(|(h, w)| Some((h.parse::<u32>().ok()?, w.parse::<u32>().ok()?)))
                .filter(|&(h, w)| h > 0 && w > 0)
                .ok_or_else(|| {
                    format!(
                        "'{t}' is not a resolution: use 4k, 1080p, 720p, 360p, HEIGHTxWIDTH \
                         (e.g. 1080x1920) or random:<minH>x<minW>-<maxH>x<maxW>"
                    )
                })?;
            Ok((w, h))
        };
        let trimmed = s.trim();
        if trimmed.len() >= 7 && trimmed[..7].eq_ignore_ascii_case("random:") {
            let (lo, hi) = trimmed[7..].split_once('-').ok_or_else(|| {
                format!(
                    "'{s}': a random resolution is random:<minH>x<minW>-<maxH>x<maxW>, e.g. \
                     random:256x256-1024x1024"
                )
            })?;
            let (min, max) = (fixed(lo)?, fixed(hi)?);
            if min.0 > max.0 || min.1 > max.1 {
                return Err(format!("'{s}': the minimum exceeds the maximum"));
            }
            return Ok(ImageResolution::Random { min, max });
        }
        let (width, height) = fixed(trimmed)?;
        Ok(ImageResolution::Fixed { width, height })
    }

    /// The largest image this setting can draw (width, height).
    pub fn max(self) -> (u32, u32) {
        match self {
            ImageResolution::Fixed { width, height } => (width, height),
            ImageResolution::Random { max, .. } => max,
        }
    }
}

/// `--image-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormat {
    /// Quality 85, as bench_serving's PIL call.
    #[default]
    Jpeg,
    Png,
}

impl ImageFormat {
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Png => "png",
        }
    }
}

/// `--image-content`: random RGB noise (incompressible: the largest bodies) or white.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageContent {
    #[default]
    Random,
    Blank,
}

/// bench_serving's image dataset flags.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePlan {
    /// Images per request (`--image-count`), or the most per request with `random_count`.
    pub count: usize,
    /// `--random-image-count`: each request gets 1..=count images.
    pub random_count: bool,
    pub resolution: ImageResolution,
    /// The flag as given (it goes into the auto-named output file).
    pub resolution_label: String,
    pub format: ImageFormat,
    pub content: ImageContent,
}

/// bench_serving's defaults: one random 1080p JPEG per request.
impl Default for ImagePlan {
    fn default() -> Self {
        ImagePlan {
            count: 1,
            random_count: false,
            resolution: ImageResolution::Fixed {
                width: 1920,
                height: 1080,
            },
            resolution_label: "1080p".into(),
            format: ImageFormat::Jpeg,
            content: ImageContent::Random,
        }
    }
}

/// bench_serving's mooncake flags.
#[derive(Debug, Clone, PartialEq)]
pub struct MooncakePlan {
    /// `conversation`, `mooncake`, `synthetic` or `toolagent`: which published trace
    /// `--dataset-path` holds (loupe does not download it).
    pub workload: String,
    /// Stretch (> 1) or compress (< 1) the trace's time line.
    pub slowdown_factor: f64,
    /// Rounds per session.
    pub num_rounds: usize,
    /// Where the assistant turns between rounds come from.
    pub history: crate::session::History,
    /// Tokens per hash_id block (Mooncake's convention: 512).
    pub block_tokens: usize,
}

/// bench_serving's defaults (`--mooncake-workload conversation`, no slowdown, one round).
impl Default for MooncakePlan {
    fn default() -> Self {
        MooncakePlan {
            workload: "conversation".into(),
            slowdown_factor: 1.0,
            num_rounds: 1,
            history: crate::session::History::Real,
            block_tokens: 512,
        }
    }
}

/// The agentic-trace, openai, longbench_v2 and speed-bench flags.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceDatasetPlan {
    /// agentic-trace: rotate the conversations by this many before taking --num-prompts.
    pub dataset_offset: usize,
    /// agentic-trace: at most this many turns per conversation.
    pub agentic_max_turns: Option<usize>,
    /// speed-bench: `low_entropy`, `mixed` or `high_entropy` (None: all).
    pub speed_bench_category: Option<String>,
    pub speed_bench_output_len: usize,
    /// A malformed dataset line is skipped (and counted) instead of stopping the run.
    pub skip_bad_lines: bool,
}

/// How `--random-range-ratio r` turns a length L into a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RangeSemantics {
    /// Uniform on [max(L*r, 1), L]: r = 0 means [1, L], r = 1 means exactly L.
    #[default]
    Sglang,
    /// Uniform on [L*(1-r), L*(1+r)]: r = 0 means exactly L.
    Vllm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RampUpStrategy {
    Linear,
    Exponential,
}

/// How generated-shared-prefix prompts are spread over the groups.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GroupDistribution {
    /// Every group gets its `prompts_per_group`.
    Uniform,
    /// Group of rank k drawn with weight 1/k^alpha.
    Zipf { alpha: f64 },
}

/// Goodput SLOs in milliseconds, in bench_serving's key names (ttft, tpot, e2el).
pub type Slos = Vec<(String, f64)>;

/// Everything one `loupe bench` invocation does.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    pub server: ServerPlan,
    pub backend: Backend,
    pub dataset: DatasetPlan,
    pub requests: RequestPlan,
    pub arrivals: ArrivalPlan,
    /// One run per value of one setting (None: one run per scenario).
    pub sweep: Option<Sweep>,
    /// Search for the highest load meeting the SLOs (`metrics.slos`), instead of a sweep.
    pub search: Option<crate::search::SearchPlan>,
    pub warmup: WarmupPlan,
    /// Time-based runs and their windows.
    pub time: TimePlan,
    pub metrics: MetricsPlan,
    pub outputs: OutputPlan,
    /// Server-side profiling around each measured run.
    pub profile: ProfileArgs,
}

/// Which server is benchmarked.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerTarget {
    /// A running server (`http://host:port`, no trailing slash needed).
    Url(String),
    /// loupe's reference server, started in this process on a free port and stopped after
    /// the runs. Its CPU counts as the client's, and the dataset defaults are smaller.
    Embedded {
        /// A preset (`tiny`, `small`) or a model directory.
        model: String,
    },
}

/// The server and how to talk to it.
#[derive(Debug, Clone)]
pub struct ServerPlan {
    pub target: ServerTarget,
    /// Wait this long for /v1/models to answer before starting; zero skips the check.
    pub ready_check_timeout: Duration,
    /// Model name for the OpenAI routes (None: the first entry of /v1/models).
    pub model: Option<String>,
    /// The name to send when it differs from `model`.
    pub served_model_name: Option<String>,
    /// A tokenizer.json, a directory holding one, or a cached Hugging Face repo id (None: the
    /// server's /model_info tokenizer_path).
    pub tokenizer: Option<String>,
    /// Bearer key.
    pub api_key: Option<String>,
    /// Extra HTTP headers sent with every request.
    pub headers: Vec<(String, String)>,
}

/// The prompts. `None` lengths and counts take their default from the target: a server gets
/// bench_serving's (1000 prompts of 1024 in, 1024 out, ShareGPT), the embedded reference
/// server a run it finishes quickly (200 prompts of 256 in, 128 out, random-ids).
#[derive(Debug, Clone)]
pub struct DatasetPlan {
    pub name: Option<DatasetName>,
    /// ShareGPT JSON (sharegpt, random) or JSONL (custom). Empty: the Hugging Face cache's copy.
    pub path: String,
    pub num_prompts: Option<usize>,
    pub sharegpt_output_len: Option<usize>,
    /// Drop ShareGPT prompts whose prompt + output exceed this many tokens.
    pub sharegpt_context_len: Option<usize>,
    pub random_input_len: Option<usize>,
    pub random_output_len: Option<usize>,
    pub random_range_ratio: f64,
    /// How `random_range_ratio` and the shared-prefix range ratio widen a length.
    pub range_semantics: RangeSemantics,
    /// Send token ids instead of text, for exact prompt lengths.
    pub tokenize_prompt: bool,
    /// Wrap each prompt in the tokenizer's chat template (sharegpt, custom).
    pub apply_chat_template: bool,
    /// Appended to every ShareGPT/custom prompt, before the final "Assistant:".
    pub prompt_suffix: String,
    /// genai-bench traffic scenarios: one run each, in place of the dataset's lengths.
    pub scenarios: Vec<Scenario>,
    pub shared_prefix: SharedPrefixPlan,
    pub mooncake: MooncakePlan,
    pub traces: TraceDatasetPlan,
    /// The image dataset's flags.
    pub image: ImagePlan,
    /// Replay the dataset's own timestamps (mooncake) instead of the arrival process.
    pub use_trace_timestamps: bool,
    pub seed: u64,
    /// Re-count generated text with the client tokenizer (total_output_tokens_retokenized).
    pub retokenize: bool,
}

/// bench_serving's generated-shared-prefix dataset.
#[derive(Debug, Clone)]
pub struct SharedPrefixPlan {
    pub num_groups: usize,
    pub prompts_per_group: usize,
    pub system_prompt_len: usize,
    pub question_len: usize,
    pub output_len: usize,
    pub range_ratio: f64,
    /// Send X-SMG-Routing-Key with a per-group key.
    pub send_routing_key: bool,
    /// Keep the generated order instead of shuffling.
    pub ordered: bool,
    pub distribution: GroupDistribution,
    /// Rounds per conversation (> 1: each prompt becomes a conversation on its group's prefix).
    pub num_turns: usize,
}

/// What every request body asks for, and how long a request may take.
#[derive(Debug, Clone)]
pub struct RequestPlan {
    pub temperature: f64,
    pub top_p: f64,
    /// Merged into every request body, last (it overrides loupe's fields).
    pub extra_body: Map<String, Value>,
    /// bench_serving ignores EOS by default.
    pub ignore_eos: bool,
    /// Ask OpenAI routes for usage on every chunk, so per-token ITL needs no tokenizer.
    pub continuous_usage_stats: bool,
    /// bench_serving's request flags that only add body keys.
    pub flags: RequestFlags,
    /// LoRA adapters, one chosen per request (per conversation).
    pub lora: Option<LoraPlan>,
    /// Stream the responses (bench_serving's --disable-stream turns it off: TTFT is then the
    /// whole latency, with no ITL).
    pub stream: bool,
    /// A request that takes longer than this in all fails.
    pub timeout: Duration,
    /// A request whose stream stays silent this long fails.
    pub read_timeout: Option<Duration>,
}

/// bench_serving's body-only request flags.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestFlags {
    /// `bootstrap_host: "2.2.2.2", bootstrap_room: 0`: a decode server with a fake transfer
    /// backend (PD disaggregation tests).
    pub fake_prefill: bool,
    /// Native `return_routed_experts` (the server needs --enable-return-routed-experts).
    pub return_routed_experts: bool,
    /// Native `return_logprob` (with `logprob_start_len`), completions `logprobs`.
    pub return_logprob: bool,
    pub top_logprobs_num: usize,
    pub token_ids_logprob: Option<Vec<u32>>,
    pub logprob_start_len: i64,
}

/// How requests pick their LoRA adapter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoraDistribution {
    /// Uniformly at random.
    Uniform,
    /// Round robin.
    Distinct,
    /// Adapter i with weight alpha^-i.
    Skewed { alpha: f64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoraPlan {
    pub names: Vec<String>,
    pub distribution: LoraDistribution,
}

/// When requests are due and how many may be in flight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArrivalPlan {
    /// Requests per second; inf sends everything at once.
    pub request_rate: f64,
    /// Gamma shape of the inter-arrival times: 1 = Poisson, inf = constant spacing.
    pub burstiness: f64,
    /// Ramp the rate over the run (replaces `request_rate`).
    pub ramp: Option<Ramp>,
    pub max_concurrency: Option<usize>,
}

/// vLLM's ramp-up: the rate moves from `start_rps` to `end_rps` over the requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ramp {
    pub strategy: RampUpStrategy,
    pub start_rps: f64,
    pub end_rps: f64,
}

/// The setting a sweep varies, and its values (one run each, per scenario).
#[derive(Debug, Clone, PartialEq)]
pub enum Sweep {
    MaxConcurrency(Vec<usize>),
    RequestRate(Vec<f64>),
}

/// What happens before each measured run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupPlan {
    /// Open connections ahead of the run, this many at a time (0: with the requests).
    pub connection_ramp: usize,
    /// Requests of the first prompt (at most 32 output tokens) before the measured run.
    pub requests: usize,
    /// Flush the server's prefix cache after warmup.
    pub flush_cache: bool,
    pub flush_cache_timeout: Duration,
}

/// Time-based runs (genai-bench's and vLLM's ways of bounding a run by the clock) and the
/// windows their figures are cut into.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TimePlan {
    /// Send for this long (cycling through the dataset), then let what is in flight finish.
    pub duration: Option<Duration>,
    /// Send at most this many requests (cycling through the dataset).
    pub max_requests: Option<usize>,
    /// Fractions of the run left out of the steady-state figures at its start and end.
    pub warmup_ratio: f64,
    pub cooldown_ratio: f64,
    /// Figures per slice of this length.
    pub slice: Option<Duration>,
}

/// What is computed beyond bench_serving's fixed set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsPlan {
    /// Percentiles reported from HdrHistograms.
    pub percentiles: Vec<f64>,
    /// Goodput SLOs (none: no goodput).
    pub slos: Slos,
    /// bench_serving's --cache-report: ask SGLang's OpenAI routes for cached-token details
    /// and report the prefix-cache hits as upstream's `cache_report`.
    pub cache_report: bool,
    /// Poll the server's /metrics this often during each measured run.
    pub scrape_metrics: Option<Duration>,
}

/// Where the results go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputPlan {
    /// The JSONL file each run appends its record to (None: bench_serving's auto-named file
    /// in the working directory).
    pub jsonl: Option<PathBuf>,
    /// Add per-request arrays to each record.
    pub details: bool,
    pub tag: Option<String>,
    /// One CSV row per request of every run.
    pub request_csv: Option<PathBuf>,
    /// One CSV row per run.
    pub summary_csv: Option<PathBuf>,
}

fn positive_rate(r: f64) -> bool {
    !r.is_nan() && r > 0.0
}

impl BenchPlan {
    /// Checks that need no server: contradictions and out-of-range values.
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(BenchError::Plan)?;
        self.profile.validate()
    }

    fn check(&self) -> Result<(), PlanError> {
        let a = &self.arrivals;
        if !positive_rate(a.request_rate) {
            return Err(PlanError::RequestRate(a.request_rate));
        }
        if !positive_rate(a.burstiness) {
            return Err(PlanError::Burstiness(a.burstiness));
        }
        if a.max_concurrency == Some(0) {
            return Err(PlanError::MaxConcurrency);
        }
        match &self.sweep {
            Some(Sweep::MaxConcurrency(c)) if c.is_empty() => return Err(PlanError::EmptySweep),
            Some(Sweep::RequestRate(r)) if r.is_empty() => return Err(PlanError::EmptySweep),
            Some(Sweep::MaxConcurrency(c)) if c.contains(&0) => {
                return Err(PlanError::MaxConcurrency);
            }
            Some(Sweep::RequestRate(rates)) => {
                if let Some(r) = rates.iter().find(|r| !positive_rate(**r)) {
                    return Err(PlanError::SweepRate(*r));
                }
            }
            _ => {}
        }
        if let Some(r) = &a.ramp {
            let (s, e) = (r.start_rps, r.end_rps);
            if !(s > 0.0 && e > 0.0 && s.is_finite() && e.is_finite()) {
                return Err(PlanError::RampRates(s, e));
            }
            if matches!(self.sweep, Some(Sweep::RequestRate(_))) {
                return Err(PlanError::RampAndRateSweep);
            }
        }
        let d = &self.dataset;
        if !(0.0..=1.0).contains(&d.random_range_ratio)
            && d.range_semantics == RangeSemantics::Sglang
        {
            return Err(PlanError::RangeRatio(d.random_range_ratio));
        }
        let top_p = self.requests.top_p;
        if top_p.is_nan() || top_p <= 0.0 || top_p > 1.0 {
            return Err(PlanError::TopP(top_p));
        }
        if self.requests.timeout.is_zero()
            || self.requests.read_timeout.is_some_and(|t| t.is_zero())
        {
            return Err(PlanError::Timeout);
        }
        if d.sharegpt_output_len.is_some_and(|l| l < 4) {
            return Err(PlanError::SharegptOutputLen);
        }
        if d.tokenize_prompt && self.backend.api() == Api::Chat {
            return Err(PlanError::TokenIdsToChat);
        }
        if !self.backend.lists_models() && self.server.model.is_none() {
            return Err(PlanError::ModelRequired(self.backend.name()));
        }
        let sessions = matches!(
            d.name,
            Some(DatasetName::Mooncake | DatasetName::AgenticTrace | DatasetName::Openai)
        ) || (d.name == Some(DatasetName::GeneratedSharedPrefix)
            && d.shared_prefix.num_turns > 1);
        if sessions
            && !matches!(
                self.backend.api(),
                Api::Native | Api::Completions | Api::Chat
            )
        {
            return Err(PlanError::ConversationsOn(self.backend.name()));
        }
        let m = &d.mooncake;
        if !(m.slowdown_factor.is_finite() && m.slowdown_factor > 0.0) {
            return Err(PlanError::SlowdownFactor(m.slowdown_factor));
        }
        if m.num_rounds == 0 || d.shared_prefix.num_turns == 0 {
            return Err(PlanError::Rounds);
        }
        if m.block_tokens == 0 {
            return Err(PlanError::BlockTokens);
        }
        if let Some(name) = d.name.filter(|n| n.has_images()) {
            let ok = matches!(
                self.backend,
                Backend::Sglang
                    | Backend::SglangNative
                    | Backend::SglangOaiChat
                    | Backend::VllmChat
                    | Backend::LmdeployChat
            );
            if !ok {
                return Err(PlanError::ImagesOn(name.name(), self.backend.name()));
            }
            if d.tokenize_prompt {
                return Err(PlanError::ImagesAsIds(name.name()));
            }
            if d.image.count == 0 {
                return Err(PlanError::ImageCount);
            }
        }
        if let Some(l) = &self.requests.lora {
            let several = l.names.len() >= 2;
            match l.distribution {
                _ if l.names.is_empty() => return Err(PlanError::Lora),
                LoraDistribution::Distinct | LoraDistribution::Skewed { .. } if !several => {
                    return Err(PlanError::Lora);
                }
                LoraDistribution::Skewed { alpha } if !(alpha.is_finite() && alpha > 1.0) => {
                    return Err(PlanError::Lora);
                }
                _ => {}
            }
        }
        if let Some(s) = &self.search {
            if self.sweep.is_some() {
                return Err(PlanError::SearchAndSweep);
            }
            if self.metrics.slos.is_empty() {
                return Err(PlanError::SearchNeedsSlo);
            }
            let target_ok = s.goodput_target > 0.0 && s.goodput_target <= 1.0;
            let start_ok = s.start.is_none_or(|v| v.is_finite() && v >= 1e-6);
            let resolution_ok = s.resolution.is_finite() && s.resolution > 0.0;
            if !target_ok || !start_ok || !resolution_ok || s.max_probes == 0 {
                return Err(PlanError::Search);
            }
        }
        let t = &self.time;
        let ratios = t.warmup_ratio + t.cooldown_ratio;
        if !(0.0..1.0).contains(&t.warmup_ratio)
            || !(0.0..1.0).contains(&t.cooldown_ratio)
            || ratios >= 1.0
        {
            return Err(PlanError::Windows(t.warmup_ratio, t.cooldown_ratio));
        }
        if t.duration.is_some_and(|d| d.is_zero())
            || t.slice.is_some_and(|d| d.is_zero())
            || t.max_requests == Some(0)
        {
            return Err(PlanError::TimeLimits);
        }
        if t.duration.is_some()
            && !a.request_rate.is_finite()
            && a.ramp.is_none()
            && a.max_concurrency.is_none()
            && self.sweep.is_none()
        {
            return Err(PlanError::DurationAtInfiniteRate);
        }
        if let GroupDistribution::Zipf { alpha } = d.shared_prefix.distribution
            && !(alpha.is_finite() && alpha > 0.0)
        {
            return Err(PlanError::ZipfAlpha(alpha));
        }
        if let Some(p) = self
            .metrics
            .percentiles
            .iter()
            .find(|p| !(0.0..=100.0).contains(*p))
        {
            return Err(PlanError::Percentile(*p));
        }
        for (key, ms) in &self.metrics.slos {
            if !matches!(key.as_str(), "ttft" | "tpot" | "e2el") {
                return Err(PlanError::SloKey(key.clone()));
            }
            if ms.is_nan() || *ms <= 0.0 {
                return Err(PlanError::Slo(key.clone(), *ms));
            }
        }
        Ok(())
    }

    /// The target is the reference server started in this process.
    pub fn embedded(&self) -> bool {
        matches!(self.server.target, ServerTarget::Embedded { .. })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A plan as `loupe bench` makes it with no flags.
    pub(crate) fn plan() -> BenchPlan {
        BenchPlan {
            server: ServerPlan {
                target: ServerTarget::Embedded {
                    model: "tiny".into(),
                },
                ready_check_timeout: Duration::from_secs(60),
                model: None,
                served_model_name: None,
                tokenizer: None,
                api_key: None,
                headers: Vec::new(),
            },
            backend: Backend::Sglang,
            dataset: DatasetPlan {
                name: None,
                path: String::new(),
                num_prompts: None,
                sharegpt_output_len: None,
                sharegpt_context_len: None,
                random_input_len: None,
                random_output_len: None,
                random_range_ratio: 0.0,
                range_semantics: RangeSemantics::Sglang,
                tokenize_prompt: false,
                apply_chat_template: false,
                prompt_suffix: String::new(),
                scenarios: Vec::new(),
                shared_prefix: SharedPrefixPlan {
                    num_groups: 64,
                    prompts_per_group: 16,
                    system_prompt_len: 2048,
                    question_len: 128,
                    output_len: 256,
                    range_ratio: 1.0,
                    send_routing_key: false,
                    ordered: false,
                    distribution: GroupDistribution::Uniform,
                    num_turns: 1,
                },
                mooncake: MooncakePlan {
                    workload: "conversation".into(),
                    slowdown_factor: 1.0,
                    num_rounds: 1,
                    history: crate::session::History::Real,
                    block_tokens: 512,
                },
                traces: TraceDatasetPlan {
                    speed_bench_output_len: 512,
                    ..Default::default()
                },
                image: ImagePlan::default(),
                use_trace_timestamps: false,
                seed: 42,
                retokenize: true,
            },
            requests: RequestPlan {
                temperature: 0.0,
                top_p: 1.0,
                extra_body: Map::new(),
                ignore_eos: true,
                continuous_usage_stats: false,
                flags: RequestFlags {
                    logprob_start_len: -1,
                    ..Default::default()
                },
                lora: None,
                stream: true,
                timeout: Duration::from_secs(6 * 3600),
                read_timeout: None,
            },
            arrivals: ArrivalPlan {
                request_rate: f64::INFINITY,
                burstiness: 1.0,
                ramp: None,
                max_concurrency: None,
            },
            sweep: None,
            search: None,
            time: TimePlan::default(),
            warmup: WarmupPlan {
                connection_ramp: 256,
                requests: 1,
                flush_cache: false,
                flush_cache_timeout: Duration::from_secs(60),
            },
            metrics: MetricsPlan {
                percentiles: vec![50.0, 90.0, 95.0, 99.0, 99.9],
                slos: Vec::new(),
                cache_report: false,
                scrape_metrics: None,
            },
            outputs: OutputPlan::default(),
            profile: ProfileArgs {
                profile_activities: vec!["CPU".into(), "GPU".into()],
                profile_wait_timeout: 120.0,
                ..Default::default()
            },
        }
    }

    fn refused(p: BenchPlan) -> PlanError {
        match p.validate() {
            Err(BenchError::Plan(e)) => e,
            other => panic!("expected a plan error, got {other:?}"),
        }
    }

    #[test]
    fn the_default_plan_is_valid() {
        plan().validate().unwrap();
    }

    #[test]
    fn rates_concurrency_and_sweeps_must_mean_something() {
        let mut p = plan();
        p.arrivals.request_rate = 0.0;
        assert_eq!(refused(p), PlanError::RequestRate(0.0));
        let mut p = plan();
        p.arrivals.burstiness = f64::NAN;
        assert!(matches!(refused(p), PlanError::Burstiness(b) if b.is_nan()));
        let mut p = plan();
        p.sweep = Some(Sweep::MaxConcurrency(vec![4, 0]));
        assert_eq!(refused(p), PlanError::MaxConcurrency);
        let mut p = plan();
        p.sweep = Some(Sweep::RequestRate(vec![]));
        assert_eq!(refused(p), PlanError::EmptySweep);
        let mut p = plan();
        p.sweep = Some(Sweep::RequestRate(vec![2.0, -1.0]));
        assert_eq!(
            refused(p).to_string(),
            "--sweep-request-rate: -1 is not a positive rate"
        );
        let ramp = Ramp {
            strategy: RampUpStrategy::Linear,
            start_rps: 1.0,
            end_rps: f64::INFINITY,
        };
        let mut p = plan();
        p.arrivals.ramp = Some(ramp);
        assert_eq!(refused(p), PlanError::RampRates(1.0, f64::INFINITY));
        let mut p = plan();
        p.arrivals.ramp = Some(Ramp {
            end_rps: 10.0,
            ..ramp
        });
        p.sweep = Some(Sweep::RequestRate(vec![1.0]));
        assert_eq!(refused(p), PlanError::RampAndRateSweep);
    }

    #[test]
    fn datasets_bodies_and_metrics_must_mean_something() {
        let mut p = plan();
        p.dataset.random_range_ratio = 1.5;
        assert_eq!(refused(p.clone()), PlanError::RangeRatio(1.5));
        p.dataset.range_semantics = RangeSemantics::Vllm;
        p.validate().unwrap();
        let mut p = plan();
        p.requests.top_p = 0.0;
        assert_eq!(refused(p), PlanError::TopP(0.0));
        let mut p = plan();
        p.requests.read_timeout = Some(Duration::ZERO);
        assert_eq!(refused(p), PlanError::Timeout);
        let mut p = plan();
        p.dataset.sharegpt_output_len = Some(3);
        assert_eq!(refused(p), PlanError::SharegptOutputLen);
        let mut p = plan();
        p.dataset.tokenize_prompt = true;
        p.backend = Backend::VllmChat;
        assert_eq!(refused(p), PlanError::TokenIdsToChat);
        let mut p = plan();
        p.dataset.shared_prefix.distribution = GroupDistribution::Zipf { alpha: 0.0 };
        assert_eq!(refused(p), PlanError::ZipfAlpha(0.0));
        let mut p = plan();
        p.metrics.percentiles = vec![50.0, 101.0];
        assert_eq!(refused(p), PlanError::Percentile(101.0));
        let mut p = plan();
        p.metrics.slos = vec![("ttft".into(), -1.0)];
        assert_eq!(refused(p), PlanError::Slo("ttft".into(), -1.0));
        let mut p = plan();
        p.metrics.slos = vec![("latency".into(), 5.0)];
        assert_eq!(refused(p), PlanError::SloKey("latency".into()));
        // Profiling settings are checked too.
        let mut p = plan();
        p.profile.profile_num_steps = Some(3);
        assert!(matches!(p.validate(), Err(BenchError::Usage(m)) if m.contains("--profile")));
    }

    #[test]
    fn image_resolutions_in_upstreams_spellings() {
        let f = |w, h| ImageResolution::Fixed {
            width: w,
            height: h,
        };
        assert_eq!(ImageResolution::parse("4k"), Ok(f(3840, 2160)));
        assert_eq!(ImageResolution::parse("720P"), Ok(f(1280, 720)));
        // Height first.
        assert_eq!(ImageResolution::parse("100x300"), Ok(f(300, 100)));
        assert_eq!(
            ImageResolution::parse("random:10x20-30x40"),
            Ok(ImageResolution::Random {
                min: (20, 10),
                max: (40, 30)
            })
        );
        assert!(
            ImageResolution::parse("0x10")
                .unwrap_err()
                .contains("'0x10'")
        );
        assert!(
            ImageResolution::parse("random:30x30-10x10")
                .unwrap_err()
                .contains("minimum")
        );
        assert!(
            ImageResolution::parse("random:10x10")
                .unwrap_err()
                .contains("random:<minH>")
        );
        assert!(ImageResolution::parse("8k").is_err());
    }

    #[test]
    fn images_go_only_where_upstream_sends_them() {
        let mut p = plan();
        p.dataset.name = Some(DatasetName::Image);
        p.validate().unwrap();
        p.backend = Backend::SglangOai;
        assert_eq!(
            refused(p.clone()).to_string(),
            "--dataset-name image: --backend sglang-oai cannot send images (use sglang, \
             sglang-native, sglang-oai-chat, vllm-chat or lmdeploy-chat)"
        );
        p.backend = Backend::VllmChat;
        p.validate().unwrap();
        p.dataset.name = Some(DatasetName::Mmmu);
        p.dataset.image.count = 0; // not an image-dataset setting for mmmu, but checked alike
        assert_eq!(refused(p.clone()), PlanError::ImageCount);
        p.dataset.image.count = 1;
        p.backend = Backend::Sglang;
        p.dataset.tokenize_prompt = true;
        assert_eq!(refused(p), PlanError::ImagesAsIds("mmmu"));
    }

    #[test]
    fn backend_names_ports_and_routes() {
        assert_eq!(Backend::Vllm.path(), "/v1/completions");
        assert_eq!(Backend::VllmChat.default_port(), 8000);
        assert_eq!(Backend::SglangNative.path(), "/generate");
        assert_eq!(Backend::Lmdeploy.default_port(), 23333);
        assert!(Backend::SglangOaiChat.is_sglang() && !Backend::Vllm.is_sglang());
    }
}
