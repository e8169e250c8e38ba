//! `loupe bench` flags. Names and defaults are bench_serving's, so a command line written for
//! `python -m sglang.benchmark.serving` runs unchanged; loupe's additions have their own names.
//! Flags bench_serving has and loupe does not implement are refused with a reason
//! (`refused.rs`), never accepted and ignored.

use std::path::PathBuf;

use crate::error::{BenchError, Result};
use crate::profile::bench::ProfileArgs;
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
}

/// The API a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Native,
    Completions,
    Chat,
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
        }
    }

    pub fn api(self) -> Api {
        match self {
            Backend::Sglang | Backend::SglangNative => Api::Native,
            Backend::SglangOai | Backend::Vllm | Backend::Lmdeploy => Api::Completions,
            Backend::SglangOaiChat | Backend::VllmChat | Backend::LmdeployChat => Api::Chat,
        }
    }

    pub fn path(self) -> &'static str {
        match self.api() {
            Api::Native => "/generate",
            Api::Completions => "/v1/completions",
            Api::Chat => "/v1/chat/completions",
        }
    }

    /// bench_serving's default port per backend.
    pub fn default_port(self) -> u16 {
        match self {
            Backend::Vllm | Backend::VllmChat => 8000,
            Backend::Lmdeploy | Backend::LmdeployChat => 23333,
            _ => 30000,
        }
    }

    pub fn is_sglang(self) -> bool {
        self.name().starts_with("sglang")
    }

    pub fn is_vllm(self) -> bool {
        self.name().starts_with("vllm")
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
}

impl DatasetName {
    pub fn name(self) -> &'static str {
        match self {
            DatasetName::Random => "random",
            DatasetName::RandomIds => "random-ids",
            DatasetName::Sharegpt => "sharegpt",
            DatasetName::Custom => "custom",
            DatasetName::GeneratedSharedPrefix => "generated-shared-prefix",
        }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RampUpStrategy {
    Linear,
    Exponential,
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

    // ---- sweeps
    /// Run once per value of --max-concurrency (comma-separated) and print one summary table.
    #[arg(long, value_delimiter = ',', conflicts_with = "sweep_request_rate")]
    pub sweep_max_concurrency: Vec<usize>,
    /// Run once per value of --request-rate (comma-separated; inf allowed).
    #[arg(long, value_delimiter = ',')]
    pub sweep_request_rate: Vec<f64>,

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

    #[command(flatten)]
    pub profile: ProfileArgs,

    /// Model of the embedded server (a preset or a model directory).
    #[arg(long, default_value = "tiny")]
    pub embedded_model: String,

    #[command(flatten)]
    pub refused: RefusedFlags,
}

/// bench_serving's generated-shared-prefix flags (same names and defaults).
#[derive(clap::Args, Debug, Clone)]
pub struct GspArgs {
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

/// Goodput SLOs in milliseconds, in bench_serving's key names (ttft, tpot, e2el).
pub type Slos = Vec<(String, f64)>;

/// `--slo ttft=500,tpot=50,e2e=3000` and `--goodput ttft:500 tpot:50` into one list.
pub fn parse_slos(slo: Option<&str>, goodput: &[String]) -> Result<Slos> {
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
            return Err(BenchError::Usage(format!(
                "SLO '{item}': expected KEY{sep}MILLISECONDS, e.g. ttft{sep}500"
            )));
        };
        let key = match k.trim() {
            "ttft" => "ttft",
            "tpot" => "tpot",
            "e2e" | "e2el" => "e2el",
            other => {
                return Err(BenchError::Usage(format!(
                    "SLO key '{other}': use ttft, tpot or e2e (e2el)"
                )));
            }
        };
        let ms: f64 = v
            .trim()
            .parse()
            .ok()
            .filter(|x: &f64| *x > 0.0)
            .ok_or_else(|| {
                BenchError::Usage(format!("SLO {key}: '{v}' is not a positive number of ms"))
            })?;
        out.retain(|(k, _)| k != key);
        out.push((key.to_string(), ms));
    }
    Ok(out)
}

/// `--percentiles 50,99,99.9`.
pub fn parse_percentiles(s: &str) -> Result<Vec<f64>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<f64>()
                .ok()
                .filter(|x| (0.0..=100.0).contains(x))
                .ok_or_else(|| {
                    BenchError::Usage(format!(
                        "--percentiles: '{p}' is not a percentile between 0 and 100"
                    ))
                })
        })
        .collect()
}

/// `--header K=V` pairs (bench_serving drops entries without a key or a value; loupe refuses them).
pub fn parse_headers(list: &[String]) -> Result<Vec<(String, String)>> {
    list.iter()
        .map(|h| match h.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.is_empty() => {
                Ok((k.trim().to_string(), v.to_string()))
            }
            _ => Err(BenchError::Usage(format!(
                "--header '{h}': expected KEY=VALUE"
            ))),
        })
        .collect()
}

impl BenchArgs {
    /// Checks that need no server: contradictions, out-of-range values, refused flags.
    pub fn validate(&self) -> Result<()> {
        self.refused.check()?;
        let usage = |m: String| Err(BenchError::Usage(m));
        if self.request_rate.is_nan() || self.request_rate <= 0.0 {
            return usage(format!(
                "--request-rate must be positive (or inf), got {}",
                self.request_rate
            ));
        }
        if self.burstiness.is_nan() || self.burstiness <= 0.0 {
            return usage(format!(
                "--burstiness must be positive (1 = Poisson, inf = constant), got {}",
                self.burstiness
            ));
        }
        if self.max_concurrency == Some(0) || self.sweep_max_concurrency.contains(&0) {
            return usage("--max-concurrency must be at least 1".into());
        }
        if let Some(r) = self
            .sweep_request_rate
            .iter()
            .find(|r| r.is_nan() || **r <= 0.0)
        {
            return usage(format!("--sweep-request-rate: {r} is not a positive rate"));
        }
        if self.ramp_up_strategy.is_some() {
            let (a, b) = (
                self.ramp_up_start_rps.unwrap_or(0.0),
                self.ramp_up_end_rps.unwrap_or(0.0),
            );
            if !(a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite()) {
                return usage(format!(
                    "--ramp-up-start-rps and --ramp-up-end-rps must be positive and finite, got {a} and {b}"
                ));
            }
            if !self.sweep_request_rate.is_empty() {
                return usage(
                    "--ramp-up-strategy and --sweep-request-rate both set the rate; use one".into(),
                );
            }
        } else if self.ramp_up_start_rps.is_some() || self.ramp_up_end_rps.is_some() {
            return usage("--ramp-up-start-rps/--ramp-up-end-rps need --ramp-up-strategy".into());
        }
        if !(0.0..=1.0).contains(&self.random_range_ratio)
            && self.range_semantics == RangeSemantics::Sglang
        {
            return usage(format!(
                "--random-range-ratio {} is outside [0, 1] (SGLang's semantics)",
                self.random_range_ratio
            ));
        }
        if self.top_p <= 0.0 || self.top_p > 1.0 {
            return usage(format!("--top-p must be in (0, 1], got {}", self.top_p));
        }
        if self.request_timeout <= 0.0 || self.read_timeout.is_some_and(|t| t <= 0.0) {
            return usage("--request-timeout and --read-timeout must be positive".into());
        }
        if self.sharegpt_output_len.is_some_and(|l| l < 4) {
            return usage("--sharegpt-output-len must be at least 4 (bench_serving's rule)".into());
        }
        if self.tokenize_prompt && self.backend.api() == Api::Chat {
            return usage(
                "--tokenize-prompt sends token ids, which chat backends cannot take".into(),
            );
        }
        if self.gsp.gsp_num_turns != 1 {
            return usage(
                "--gsp-num-turns > 1 (multi-turn chat replay) is not implemented in loupe bench"
                    .into(),
            );
        }
        match (self.gsp.gsp_group_distribution, self.gsp.gsp_zipf_alpha) {
            (GroupDistribution::Zipf, None) => {
                return usage("--gsp-group-distribution zipf needs --gsp-zipf-alpha".into());
            }
            (GroupDistribution::Zipf, Some(a)) if !(a.is_finite() && a > 0.0) => {
                return usage(format!("--gsp-zipf-alpha must be finite and > 0, got {a}"));
            }
            (GroupDistribution::Uniform, Some(_)) => {
                return usage(
                    "--gsp-zipf-alpha is only meaningful with --gsp-group-distribution zipf".into(),
                );
            }
            _ => {}
        }
        if let Some(body) = &self.extra_request_body {
            match serde_json::from_str::<serde_json::Value>(body) {
                Ok(serde_json::Value::Object(_)) => {}
                _ => {
                    return usage(format!(
                        "--extra-request-body must be a JSON object, got {body}"
                    ));
                }
            }
        }
        parse_headers(&self.header)?;
        parse_percentiles(&self.percentiles)?;
        parse_slos(self.slo.as_deref(), &self.goodput)?;
        self.profile.validate()?;
        Ok(())
    }
}

/// bench_serving's `--profile*` flags. They parse into `profile::bench::ProfileArgs`, the
/// plain values the profiling code takes (no clap there): `ProfileArgs` implements clap's
/// traits by delegating to this struct, so `BenchArgs` flattens it as before.
#[derive(clap::Args, Debug, Clone)]
struct ProfileFlags {
    /// Profile the server during the measured run (POST /start_profile, /stop_profile).
    #[arg(long)]
    profile: bool,
    /// CPU, GPU, MEM, CUDA_PROFILER, XPU (and RPD on loupe servers).
    #[arg(long, num_args = 1.., default_values = ["CPU", "GPU"],
          value_parser = ["CPU", "GPU", "CUDA_PROFILER", "XPU", "MEM", "RPD"])]
    profile_activities: Vec<String>,
    /// Absolute forward step at which capture starts.
    #[arg(long)]
    profile_start_step: Option<u64>,
    /// Capture this many steps; the server stops by itself (no /stop_profile).
    #[arg(long)]
    profile_steps: Option<u64>,
    /// num_steps of the request (5 with --profile-by-stage when unset).
    #[arg(long)]
    profile_num_steps: Option<u64>,
    #[arg(long)]
    profile_by_stage: bool,
    #[arg(long, num_args = 1..)]
    profile_stages: Vec<String>,
    /// Traces go to DIR/<timestamp> (default: $SGLANG_TORCH_PROFILER_DIR, else /tmp).
    #[arg(long)]
    profile_output_dir: Option<PathBuf>,
    #[arg(long)]
    profile_prefix: Option<String>,
    /// Disaggregated serving: profile the prefill/decode workers named below.
    #[arg(long)]
    pd_separated: bool,
    #[arg(long, num_args = 0.., conflicts_with = "profile_decode_url")]
    profile_prefill_url: Vec<String>,
    #[arg(long, num_args = 0..)]
    profile_decode_url: Vec<String>,
    /// How long to wait for the traces to be complete after the run.
    #[arg(long, default_value_t = 120.0)]
    profile_wait_timeout: f64,
}

impl From<ProfileFlags> for ProfileArgs {
    fn from(f: ProfileFlags) -> Self {
        ProfileArgs {
            profile: f.profile,
            profile_activities: f.profile_activities,
            profile_start_step: f.profile_start_step,
            profile_steps: f.profile_steps,
            profile_num_steps: f.profile_num_steps,
            profile_by_stage: f.profile_by_stage,
            profile_stages: f.profile_stages,
            profile_output_dir: f.profile_output_dir,
            profile_prefix: f.profile_prefix,
            pd_separated: f.pd_separated,
            profile_prefill_url: f.profile_prefill_url,
            profile_decode_url: f.profile_decode_url,
            profile_wait_timeout: f.profile_wait_timeout,
        }
    }
}

impl clap::FromArgMatches for ProfileArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> std::result::Result<Self, clap::Error> {
        ProfileFlags::from_arg_matches(m).map(Into::into)
    }

    fn update_from_arg_matches(
        &mut self,
        m: &clap::ArgMatches,
    ) -> std::result::Result<(), clap::Error> {
        *self = ProfileFlags::from_arg_matches(m)?.into();
        Ok(())
    }
}

impl clap::Args for ProfileArgs {
    fn group_id() -> Option<clap::Id> {
        ProfileFlags::group_id()
    }

    fn augment_args(cmd: clap::Command) -> clap::Command {
        ProfileFlags::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        ProfileFlags::augment_args_for_update(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn backend_names_ports_and_routes() {
        assert_eq!(Backend::Vllm.path(), "/v1/completions");
        assert_eq!(Backend::VllmChat.default_port(), 8000);
        assert_eq!(Backend::SglangNative.path(), "/generate");
        assert_eq!(Backend::Lmdeploy.default_port(), 23333);
        assert!(Backend::SglangOaiChat.is_sglang() && !Backend::Vllm.is_sglang());
    }
}
