//! The one error type of a benchmark run. Every message says what was wrong,
//! where (flag, URL, file) and, where there is one, what to do about it.

/// What stopped a benchmark or a profiling command before it could report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A setting is wrong, missing, or asks for something loupe does not implement.
    #[error("{0}")]
    Usage(String),
    /// The plan's settings contradict each other or are out of range.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A control request (readiness, model info, flush, profiling) failed.
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    /// A dataset file could not be read or holds nothing usable.
    #[error("{path}: {message}")]
    Dataset { path: String, message: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
    /// An output file could not be written (the message names it).
    #[error("{0}")]
    Output(std::io::Error),
    /// Ctrl-C during a profiled run (the server's profile was stopped first).
    #[error("interrupted: the server's profile was stopped")]
    Interrupted,
    /// The embedded reference server could not start or stop.
    #[error("embedded server: {0}")]
    Server(String),
}

impl BenchError {
    pub fn io(path: impl std::fmt::Display, err: std::io::Error) -> Self {
        BenchError::Io {
            path: path.to_string(),
            err,
        }
    }

    pub fn http(url: impl Into<String>, message: impl std::fmt::Display) -> Self {
        BenchError::Http {
            url: url.into(),
            message: message.to_string(),
        }
    }
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// A plan that means nothing runnable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("--request-rate must be positive (or inf), got {0}")]
    RequestRate(f64),
    #[error("--burstiness must be positive (1 = Poisson, inf = constant), got {0}")]
    Burstiness(f64),
    #[error("--max-concurrency must be at least 1")]
    MaxConcurrency,
    #[error("--sweep-request-rate: {0} is not a positive rate")]
    SweepRate(f64),
    #[error("a sweep needs at least one value")]
    EmptySweep,
    #[error(
        "--ramp-up-start-rps and --ramp-up-end-rps must be positive and finite, got {0} and {1}"
    )]
    RampRates(f64, f64),
    #[error("--ramp-up-strategy and --sweep-request-rate both set the rate; use one")]
    RampAndRateSweep,
    #[error("--random-range-ratio {0} is outside [0, 1] (SGLang's semantics)")]
    RangeRatio(f64),
    #[error("--top-p must be in (0, 1], got {0}")]
    TopP(f64),
    #[error("--request-timeout and --read-timeout must be positive")]
    Timeout,
    #[error("--sharegpt-output-len must be at least 4 (bench_serving's rule)")]
    SharegptOutputLen,
    #[error("--tokenize-prompt sends token ids, which chat backends cannot take")]
    TokenIdsToChat,
    #[error("--gsp-zipf-alpha must be finite and > 0, got {0}")]
    ZipfAlpha(f64),
    #[error("--percentiles: '{0}' is not a percentile between 0 and 100")]
    Percentile(f64),
    #[error("SLO {0}: '{1}' is not a positive number of ms")]
    Slo(String, f64),
    #[error("SLO key '{0}': use ttft, tpot or e2e (e2el)")]
    SloKey(String),
    #[error("--mooncake-slowdown-factor must be positive and finite, got {0}")]
    SlowdownFactor(f64),
    #[error("--mooncake-num-rounds and --gsp-num-turns must be at least 1")]
    Rounds,
    #[error("--mooncake-block-tokens must be at least 1")]
    BlockTokens,
    #[error(
        "--warmup-ratio {0} and --cooldown-ratio {1}: each must be in [0, 1) and together \
         below 1"
    )]
    Windows(f64, f64),
    #[error(
        "--duration, --max-time-per-run, --slice-duration and --max-requests-per-run must \
             be positive"
    )]
    TimeLimits,
    #[error(
        "--duration at an infinite --request-rate needs --max-concurrency (a closed loop): \
         otherwise everything is sent at once and there is nothing to run for a time"
    )]
    DurationAtInfiniteRate,
    #[error(
        "--lora-name needs at least one name (two for --lora-request-distribution distinct or \
         skewed), and --lora-zipf-alpha must be above 1 (bench_serving's rules)"
    )]
    Lora,
    #[error("--search and a sweep both set the load; use one")]
    SearchAndSweep,
    #[error("--search needs SLOs to meet: --slo ttft=MS,tpot=MS (or --goodput ttft:MS ...)")]
    SearchNeedsSlo,
    #[error(
        "--search: --goodput-target must be in (0, 1], --search-resolution positive, \
         --search-max-probes at least 1 and --search-start a positive load"
    )]
    Search,
    #[error("--backend {0} needs --model (its server has no /v1/models to ask)")]
    ModelRequired(&'static str),
    #[error(
        "--backend {0} cannot send conversations (mooncake, agentic-trace, openai, \
         --gsp-num-turns > 1): use a /generate, completions or chat backend"
    )]
    ConversationsOn(&'static str),
    #[error(
        "--dataset-name {0}: --backend {1} cannot send images (use sglang, sglang-native, \
         sglang-oai-chat, vllm-chat or lmdeploy-chat)"
    )]
    ImagesOn(&'static str, &'static str),
    #[error(
        "--dataset-name {0}: --tokenize-prompt cannot carry images (the prompt must be text \
         for the server's processor)"
    )]
    ImagesAsIds(&'static str),
    #[error("--image-count must be at least 1")]
    ImageCount,
}
