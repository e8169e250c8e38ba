//! `python -m sglang.benchmark.one_batch_server`: against any SGLang-API server (a URL, or
//! loupe's reference server started in-process), each case (batch size x input length x
//! output length) is one streamed `/generate` carrying the whole batch as `input_ids` lists.
//! Per case: flush the cache, build the token ids (bench_serving's datasets), scrape
//! `/metrics`, send, follow every index's cumulative `completion_tokens`, then read
//! `/server_info` and `/metrics` again. With profiling, every case runs a second time with
//! `/start_profile` sent first (upstream's `run_profile`: a fresh directory, `server_args.json`
//! beside the traces, `{prefix}bs-{bs}-il-{il}`, no stop call); loupe then waits for the files.
//!
//! Differences from upstream, on purpose: a case that does not fit the server's running
//! requests or token capacity is an error before any work (upstream skips it mid-sweep), and
//! the profiled pass waits until the traces are complete before it reports their directory.

mod report;
pub mod stream;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use loupe_bench::dataset::{self, DatasetConfig, PromptInput};
use loupe_bench::plan::{DatasetName, GroupDistribution, RangeSemantics, SharedPrefixPlan};
use loupe_bench::tokenizer::BenchTokenizer;
use loupe_client::{LaxInt, Server, StartProfile, WaitFor};
use loupe_server::ServerConfig;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

pub use report::{CaseResult, pydantic_record};
use stream::BatchRecorder;

use crate::OfflineError;

/// Which server to benchmark.
#[derive(Clone)]
pub enum Target {
    Url(String),
    /// loupe's reference server in this process, on a free port.
    Embedded(Box<ServerConfig>),
}

/// The server-side profile of the second pass (`--profile` and its flags).
#[derive(Debug, Clone)]
pub struct ServerProfile {
    pub activities: Vec<String>,
    pub start_step: Option<u64>,
    pub steps: u64,
    pub by_stage: bool,
    pub prefix: Option<String>,
    /// `--profile-output-dir`, else `$SGLANG_TORCH_PROFILER_DIR`, else /tmp (absolute).
    pub output_dir: PathBuf,
    /// How long to wait for a profiled case's traces.
    pub wait: Duration,
}

/// one_batch_server's generated-shared-prefix shape: `min(groups, bs)` groups of
/// `ceil(bs / groups)` prompts, the first `bs` kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchGsp {
    pub num_groups: usize,
    pub system_prompt_len: usize,
    pub question_len: usize,
    pub output_len: usize,
}

impl Default for BatchGsp {
    fn default() -> Self {
        BatchGsp {
            num_groups: 1,
            system_prompt_len: 2048,
            question_len: 128,
            output_len: 256,
        }
    }
}

/// How `--lora-name` adapters are spread over the batch's prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoraDistribution {
    Uniform,
    Distinct,
    Skewed,
}

/// `--lora-name` with `--lora-request-distribution` and `--lora-zipf-alpha`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraChoice {
    pub names: Vec<String>,
    pub distribution: LoraDistribution,
    pub zipf_alpha: f64,
}

impl LoraChoice {
    /// The body's `lora_path`: the one name as a string, else one name per prompt
    /// (uniform: drawn at random; distinct: round-robin; skewed: P(i) proportional to alpha^-i).
    fn lora_path(&self, bs: usize, rng: &mut StdRng) -> Value {
        if self.names.len() == 1 {
            return Value::from(self.names[0].clone());
        }
        let n = self.names.len();
        let weights: Vec<f64> = (0..n).map(|i| self.zipf_alpha.powi(-(i as i32))).collect();
        let total: f64 = weights.iter().sum();
        let pick = |rng: &mut StdRng, i: usize| -> usize {
            match self.distribution {
                LoraDistribution::Uniform => rng.random_range(0..n),
                LoraDistribution::Distinct => i % n,
                LoraDistribution::Skewed => {
                    let mut x = rng.random::<f64>() * total;
                    for (j, w) in weights.iter().enumerate() {
                        if x < *w {
                            return j;
                        }
                        x -= w;
                    }
                    n - 1
                }
            }
        };
        Value::from(
            (0..bs)
                .map(|i| self.names[pick(rng, i)].clone())
                .collect::<Vec<_>>(),
        )
    }
}

/// The run, as plain data.
#[derive(Clone)]
pub struct OneBatchServerConfig {
    pub target: Target,
    pub api_key: Option<String>,
    pub run_name: String,
    pub batch_sizes: Vec<usize>,
    pub input_lens: Vec<usize>,
    pub output_lens: Vec<usize>,
    pub temperature: f64,
    pub ignore_eos: bool,
    pub return_logprob: bool,
    pub stream_interval: usize,
    /// random, random-ids, generated-shared-prefix, sharegpt, custom or longbench_v2.
    pub dataset: DatasetName,
    pub dataset_path: String,
    /// `--gsp-*` (generated-shared-prefix only).
    pub gsp: BatchGsp,
    /// `--fixed-prompt-file`: this text's ids for every request of the batch.
    pub fixed_prompt: Option<PathBuf>,
    pub apply_chat_template: bool,
    /// `--input-len-list`: request i gets entry i mod n (random and random-ids).
    pub input_len_list: Option<Vec<usize>>,
    /// `--cache-hit-rate`: each prompt's first int(il x r) tokens are sent once before the case.
    pub cache_hit_rate: f64,
    pub parallel_batch: bool,
    pub fake_prefill: bool,
    pub flush_hicache_storage: bool,
    pub enable_multi_batch: bool,
    pub lora: Option<LoraChoice>,
    pub tokenizer: Option<String>,
    pub seed: u64,
    pub skip_warmup: bool,
    pub skip_token_capacity_check: bool,
    /// Appended per case; `None` writes none.
    pub result_file: Option<PathBuf>,
    pub profile: Option<ServerProfile>,
    pub request_timeout: Duration,
}

/// What a front end is told, in order.
#[derive(Debug)]
pub enum ServerEvent<'a> {
    /// The embedded server is up at this URL.
    Embedded(&'a str),
    /// The skip guards read from `/server_info`.
    Limits {
        max_running_requests_per_dp: Option<i64>,
        num_dp_ranks: i64,
        max_running_requests: Option<i64>,
        token_capacity: Option<f64>,
    },
    WarmupBegin(&'a [usize]),
    WarmupEnd,
    CaseDone(&'a CaseResult),
    /// The profiled pass sent `/start_profile` for a case with this directory.
    ProfileStarted(&'a std::path::Path),
    /// A profiled case's traces (complete = their sizes stopped changing in time).
    ProfileFiles {
        files: &'a [String],
        complete: bool,
    },
    /// Upstream prints and swallows the profiled pass's errors.
    ProfileFailed(&'a str),
    /// `/metrics` could not be read (said once): cache_hit_rate is left out. A 404's message
    /// names --enable-metrics.
    NoMetrics(&'a str),
}

pub trait ServerObserver: Send + Sync {
    fn event(&self, event: &ServerEvent<'_>);
}

/// Every case's plain result, then (with profiling) every profiled result, in sweep order.
#[derive(Debug, Default)]
pub struct OneBatchServerOutcome {
    pub results: Vec<CaseResult>,
    pub profile_results: Vec<CaseResult>,
    pub server_info: Value,
}

fn cases(cfg: &OneBatchServerConfig) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    for &b in &cfg.batch_sizes {
        for &i in &cfg.input_lens {
            for &o in &cfg.output_lens {
                out.push((b, i, o));
            }
        }
    }
    out
}

fn check_flags(cfg: &OneBatchServerConfig) -> Result<(), OfflineError> {
    for (flag, list) in [
        ("--batch-size", &cfg.batch_sizes),
        ("--input-len", &cfg.input_lens),
        ("--output-len", &cfg.output_lens),
    ] {
        if list.is_empty() || list.contains(&0) {
            return Err(OfflineError::Flag(format!(
                "{flag} needs values of at least 1, got {list:?}"
            )));
        }
    }
    if !cfg.ignore_eos && cfg.stream_interval != 1 {
        return Err(OfflineError::Flag(
            "--disable-ignore-eos requires --client-stream-interval 1: the steady-state window \
             needs per-token cumulative counts"
                .into(),
        ));
    }
    if cfg.stream_interval == 0 {
        return Err(OfflineError::Flag(
            "--client-stream-interval must be at least 1".into(),
        ));
    }
    let replay = is_replay(cfg.dataset);
    match cfg.dataset {
        DatasetName::Random
        | DatasetName::RandomIds
        | DatasetName::GeneratedSharedPrefix
        | DatasetName::Sharegpt
        | DatasetName::Custom
        | DatasetName::LongbenchV2 => {}
        other => {
            return Err(OfflineError::Flag(format!(
                "--dataset-name {}: one_batch_server takes random, random-ids, generated-shared-prefix, sharegpt, custom, longbench_v2 or mmmu (mmmu needs image_data, which this one-batch-server does not send)",
                other.name()
            )));
        }
    }
    if !cfg.ignore_eos && cfg.fake_prefill {
        return Err(OfflineError::Flag(
            "--disable-ignore-eos is incompatible with --fake-prefill: decode conditions on uninitialized KV, so EOS timing is meaningless"
                .into(),
        ));
    }
    if let Some(list) = &cfg.input_len_list {
        if list.is_empty() || list.contains(&0) {
            return Err(OfflineError::Flag(format!(
                "--input-len-list must be comma-separated positive integers, got {list:?}"
            )));
        }
        if !matches!(cfg.dataset, DatasetName::Random | DatasetName::RandomIds)
            || cfg.fixed_prompt.is_some()
            || cfg.input_lens.len() > 1
        {
            return Err(OfflineError::Flag(
                "--input-len-list sizes random/random-ids prompts and replaces --input-len: use one of those datasets, one --input-len value and no --fixed-prompt-file"
                    .into(),
            ));
        }
    }
    if replay {
        if cfg.fixed_prompt.is_some() {
            return Err(OfflineError::Flag(
                "--fixed-prompt-file bypasses --dataset-name; drop one of them".into(),
            ));
        }
        if cfg.dataset == DatasetName::Custom && !std::path::Path::new(&cfg.dataset_path).is_file()
        {
            return Err(OfflineError::Flag(format!(
                "--dataset-name custom requires --dataset-path pointing at a JSONL conversation file; got {:?}",
                cfg.dataset_path
            )));
        }
        if cfg.input_lens.len() > 1 {
            return Err(OfflineError::Flag(
                "--input-len: replay datasets (sharegpt, custom) take prompt lengths from the recorded data; pass at most one value (used only by the token-capacity check)"
                    .into(),
            ));
        }
    }
    if cfg.apply_chat_template && cfg.fixed_prompt.is_none() && !replay {
        return Err(OfflineError::Flag(
            "--apply-chat-template requires --fixed-prompt-file or a replay dataset (sharegpt, custom)"
                .into(),
        ));
    }
    if let Some(l) = &cfg.lora {
        if l.names.is_empty() {
            return Err(OfflineError::Flag(
                "--lora-name needs at least one name".into(),
            ));
        }
        if l.distribution != LoraDistribution::Uniform && l.names.len() < 2 {
            return Err(OfflineError::Flag(
                "--lora-request-distribution distinct/skewed requires more than one --lora-name"
                    .into(),
            ));
        }
    }
    let alpha = cfg.lora.as_ref().map_or(1.1, |l| l.zipf_alpha);
    // NaN included: upstream asserts alpha > 1.
    if alpha.partial_cmp(&1.0) != Some(std::cmp::Ordering::Greater) {
        return Err(OfflineError::Flag(format!(
            "--lora-zipf-alpha must be > 1, got {alpha}"
        )));
    }
    if !(0.0..=1.0).contains(&cfg.cache_hit_rate) {
        return Err(OfflineError::Flag(format!(
            "--cache-hit-rate {}: a fraction of the input, from 0 to 1",
            cfg.cache_hit_rate
        )));
    }
    if cfg.gsp.num_groups == 0 {
        return Err(OfflineError::Flag(
            "--gsp-num-groups must be at least 1".into(),
        ));
    }
    Ok(())
}

/// Upstream's REPLAY_TEXT_DATASETS: recorded prompts, their real lengths counted.
fn is_replay(d: DatasetName) -> bool {
    matches!(d, DatasetName::Sharegpt | DatasetName::Custom)
}

/// The skip guards, from `/server_info` as upstream reads them.
struct Limits {
    max_running: Option<i64>,
    token_capacity: Option<f64>,
}

fn limits(cfg: &OneBatchServerConfig, info: &Value, observer: &dyn ServerObserver) -> Limits {
    let states = info["internal_states"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let first = states.first().cloned().unwrap_or(Value::Null);
    let dim = |k: &str| first[k].as_i64().filter(|&v| v > 0).unwrap_or(1);
    let num_dp_ranks = dim("dp_size") * dim("attn_dp_size");
    let per_dp = first["effective_max_running_requests_per_dp"]
        .as_i64()
        .filter(|&v| v > 0);
    let token_capacity = (!cfg.skip_token_capacity_check && !states.is_empty()).then(|| {
        states
            .iter()
            .map(|s| s["memory_usage"]["token_capacity"].as_f64().unwrap_or(1e9))
            .sum::<f64>()
    });
    let max_running = per_dp.map(|p| p * num_dp_ranks);
    observer.event(&ServerEvent::Limits {
        max_running_requests_per_dp: per_dp,
        num_dp_ranks,
        max_running_requests: max_running,
        token_capacity,
    });
    Limits {
        max_running,
        token_capacity,
    }
}

/// Upstream warms up each batch size at 1024 input tokens and 16 output tokens; on a server
/// too small for that, at the longest input that fits.
fn warmup_input_len(l: &Limits, bs: usize) -> usize {
    match l.token_capacity {
        Some(cap) => 1024.min((cap as usize / bs).saturating_sub(16).max(1)),
        None => 1024,
    }
}

/// Every case must fit before any request is sent.
fn check_limits(cfg: &OneBatchServerConfig, l: &Limits, url: &str) -> Result<(), OfflineError> {
    for (bs, il, ol) in cases(cfg) {
        // --enable-multi-batch: more prompts than the server runs at once are fine (they run
        // in waves); the KV check then counts one wave.
        let resident_bs = match l.max_running {
            Some(max) if cfg.enable_multi_batch => bs.min(max.max(0) as usize),
            _ => bs,
        };
        if let Some(max) = l.max_running
            && !cfg.enable_multi_batch
            && bs as i64 > max
        {
            return Err(OfflineError::Flag(format!(
                "--batch-size {bs}: the server at {url} runs at most {max} requests at once \
                 (/server_info internal_states effective_max_running_requests_per_dp x DP ranks); \
                 lower --batch-size or raise the server's --max-running-requests"
            )));
        }
        let resident = (resident_bs * (il + ol)) as f64;
        if let Some(cap) = l.token_capacity
            && resident > cap
        {
            return Err(OfflineError::Flag(format!(
                "--batch-size {bs} --input-len {il} --output-len {ol}: {resident} tokens exceed the \
                 server's KV capacity of {cap} tokens (/server_info memory_usage.token_capacity); \
                 lower the case or pass --skip-token-capacity-check"
            )));
        }
    }
    Ok(())
}

fn vocab_size(info: &Value) -> Option<usize> {
    info["hf_config"]["vocab_size"]
        .as_u64()
        .or_else(|| info["vocab_size"].as_u64())
        .map(|v| v as usize)
}

/// One case's inputs and the lengths its record reports.
struct Batch {
    ids: Vec<Vec<u32>>,
    /// Upstream rewrites the case's input length (fixed prompt, GSP, replay, length list)
    /// and, for GSP, its output length.
    input_len: usize,
    output_len: usize,
    /// Replay datasets count their real prompt tokens as the input.
    replay_input: Option<usize>,
}

/// The batch's token ids as upstream's `run_one_case` builds them: bench_serving's loaders
/// (`--random-range-ratio 1`), text prompts encoded client-side, ids sent as is.
fn build_batch(
    cfg: &OneBatchServerConfig,
    tok: Option<&BenchTokenizer>,
    vocab: Option<usize>,
    (bs, il, ol): (usize, usize, usize),
) -> Result<Batch, OfflineError> {
    let need_tok = |what: &str| {
        tok.ok_or_else(|| {
            OfflineError::Flag(format!(
                "{what} needs the model's tokenizer: pass --local-tokenizer-path (the server's /server_info names none that is readable here)"
            ))
        })
    };
    if let Some(path) = &cfg.fixed_prompt {
        let t = need_tok("--fixed-prompt-file")?;
        let text = std::fs::read_to_string(path).map_err(|e| OfflineError::file(path, e))?;
        let text = if cfg.apply_chat_template {
            t.chat(&text)
                .map_err(|e| OfflineError::Flag(format!("--apply-chat-template: {e}")))?
        } else {
            text
        };
        let ids = t
            .encode(&text)
            .map_err(|e| OfflineError::file(path, e.to_string()))?;
        return Ok(Batch {
            input_len: ids.len(),
            ids: vec![ids; bs],
            output_len: ol,
            replay_input: None,
        });
    }
    let groups = cfg.gsp.num_groups.min(bs).max(1);
    let gsp = SharedPrefixPlan {
        num_groups: groups,
        prompts_per_group: bs.div_ceil(groups),
        system_prompt_len: cfg.gsp.system_prompt_len,
        question_len: cfg.gsp.question_len,
        output_len: cfg.gsp.output_len,
        range_ratio: 1.0,
        send_routing_key: false,
        ordered: true,
        distribution: GroupDistribution::Uniform,
        num_turns: 1,
    };
    let tokenize_prompt = matches!(cfg.dataset, DatasetName::Random | DatasetName::RandomIds);
    let dc = DatasetConfig {
        name: cfg.dataset,
        path: &cfg.dataset_path,
        num: bs,
        input_len: il,
        output_len: ol,
        range_ratio: 1.0,
        semantics: RangeSemantics::Sglang,
        tokenize_prompt,
        sharegpt_output_len: None,
        sharegpt_context_len: None,
        apply_chat_template: cfg.apply_chat_template,
        prompt_suffix: "",
        gsp: &gsp,
        mooncake: &Default::default(),
        traces: &Default::default(),
        image: &Default::default(),
        seed: cfg.seed,
        scenario: None,
    };
    let ds = dataset::build(&dc, tok, vocab).map_err(|e| OfflineError::Flag(e.to_string()))?;
    let mut ids = ds
        .prompts
        .into_iter()
        .map(|p| match p.input {
            PromptInput::Ids(ids) => Ok(ids),
            PromptInput::Text(t) => need_tok(&format!("--dataset-name {}", cfg.dataset.name()))?
                .encode(&t)
                .map_err(|e| OfflineError::Flag(e.to_string())),
            PromptInput::Messages(_) | PromptInput::Multimodal { .. } => {
                Err(OfflineError::Flag(format!(
                    "--dataset-name {}: the dataset gives chat messages or images; \
                     one_batch_server sends one batch of token ids",
                    cfg.dataset.name()
                )))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mean = |ids: &[Vec<u32>]| ids.iter().map(Vec::len).sum::<usize>() / ids.len().max(1);
    match cfg.dataset {
        DatasetName::GeneratedSharedPrefix => {
            ids.truncate(bs);
            Ok(Batch {
                input_len: mean(&ids),
                ids,
                output_len: cfg.gsp.output_len,
                replay_input: None,
            })
        }
        DatasetName::LongbenchV2 => {
            // Real long documents cut to exactly --input-len tokens.
            let mut long: Vec<Vec<u32>> = ids
                .into_iter()
                .filter(|v| v.len() >= il)
                .map(|mut v| {
                    v.truncate(il);
                    v
                })
                .collect();
            if long.len() < bs {
                return Err(OfflineError::Flag(format!(
                    "--dataset-name longbench_v2 yielded only {} prompts of >= {il} tokens for --batch-size {bs} (--dataset-path {:?})",
                    long.len(),
                    cfg.dataset_path
                )));
            }
            long.truncate(bs);
            Ok(Batch {
                ids: long,
                input_len: il,
                output_len: ol,
                replay_input: None,
            })
        }
        d if is_replay(d) => {
            if ids.len() < bs {
                return Err(OfflineError::Flag(format!(
                    "--dataset-name {} produced only {} usable prompts for --batch-size {bs}; use a smaller batch size or a larger dataset (--dataset-path {:?})",
                    d.name(),
                    ids.len(),
                    cfg.dataset_path
                )));
            }
            let total = ids.iter().map(Vec::len).sum();
            Ok(Batch {
                input_len: mean(&ids),
                ids,
                output_len: ol,
                replay_input: Some(total),
            })
        }
        _ => match &cfg.input_len_list {
            Some(list) => {
                let lens: Vec<usize> = (0..bs).map(|i| list[i % list.len()]).collect();
                let ids: Vec<Vec<u32>> = ids
                    .into_iter()
                    .zip(&lens)
                    .map(|(v, &n)| v.iter().copied().cycle().take(n).collect())
                    .collect();
                Ok(Batch {
                    ids,
                    input_len: lens.iter().sum::<usize>() / bs,
                    output_len: ol,
                    replay_input: None,
                })
            }
            None => Ok(Batch {
                ids,
                input_len: il,
                output_len: ol,
                replay_input: None,
            }),
        },
    }
}

/// Upstream's `time.time()` directory name.
fn unix_time_name() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

/// The running benchmark's connection and what it learnt at start.
struct Session<'a> {
    cfg: &'a OneBatchServerConfig,
    server: Server,
    http: reqwest::Client,
    url: String,
    tokenizer: Option<BenchTokenizer>,
    vocab: Option<usize>,
    /// Draws `--lora-name` adapters (seeded with --seed).
    rng: std::sync::Mutex<StdRng>,
    observer: &'a dyn ServerObserver,
    /// `/metrics` failed once already (its warning is said once).
    metrics_failed: std::sync::atomic::AtomicBool,
}

impl Session<'_> {
    async fn flush(&self) {
        // Upstream: three tries, two seconds apart; a server without the route is benchmarked
        // anyway.
        for attempt in 0..3 {
            match self
                .server
                .flush_cache(loupe_client::Engine::Sglang, 0.0)
                .await
            {
                Ok(()) => return,
                Err(e) if attempt == 2 => tracing::warn!("cache flush failed: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
            }
        }
    }

    async fn cache_tokens(&self) -> Option<(f64, f64)> {
        use std::sync::atomic::Ordering;
        let samples = match self.server.metrics().await {
            Ok(s) => s,
            Err(e) => {
                if !self.metrics_failed.swap(true, Ordering::Relaxed) {
                    let why = format!("{e}; cache_hit_rate is left out");
                    self.observer.event(&ServerEvent::NoMetrics(&why));
                }
                return None;
            }
        };
        let sum = |name: &str| {
            samples
                .iter()
                .filter(|s| s.name == name)
                .map(|s| s.value)
                .sum::<f64>()
        };
        Some((
            sum("sglang:cached_tokens_total"),
            sum("sglang:prompt_tokens_total"),
        ))
    }

    async fn start_profile(
        &self,
        p: &ServerProfile,
        bs: usize,
        il: usize,
    ) -> Result<PathBuf, OfflineError> {
        let dir = p.output_dir.join(unix_time_name());
        std::fs::create_dir_all(&dir).map_err(|e| OfflineError::file(&dir, e))?;
        let info = self.server.server_info().await?;
        let args = dir.join("server_args.json");
        loupe_trace::export::write_atomic(&args, |w| {
            std::io::Write::write_all(w, info.to_string().as_bytes())
        })
        .map_err(|e| OfflineError::file(&args, e))?;
        let body = StartProfile {
            activities: Some(p.activities.clone()),
            output_dir: Some(dir.display().to_string()),
            num_steps: Some(LaxInt::Text(p.steps)),
            start_step: p.start_step.map(LaxInt::Text),
            profile_by_stage: Some(p.by_stage),
            profile_prefix: Some(format!(
                "{}bs-{bs}-il-{il}",
                p.prefix.as_deref().unwrap_or("")
            )),
            merge_profiles: Some(false),
            ..Default::default()
        };
        self.server.start_profile(&body).await?;
        Ok(dir)
    }

    /// `--flush-hicache-storage`: upstream's three tries, then the error.
    async fn flush_hicache_storage(&self) -> Result<(), OfflineError> {
        let url = format!("{}/hicache/storage-backend/clear", self.url);
        let mut last = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            match self
                .http
                .post(&url)
                .timeout(self.cfg.request_timeout)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => {
                    let status = r.status();
                    last = format!(
                        "HTTP {status}: {}",
                        r.text().await.unwrap_or_default().trim()
                    );
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(OfflineError::Server(format!(
            "--flush-hicache-storage: POST {url} failed three times: {last}"
        )))
    }

    /// `--cache-hit-rate`: one non-streaming request of every prompt's first int(il x r)
    /// tokens, one new token each, so the timed request finds that share cached.
    async fn warm_cache(&self, batch: &Batch) -> Result<(), OfflineError> {
        let cached = (batch.input_len as f64 * self.cfg.cache_hit_rate) as usize;
        if cached == 0 {
            return Ok(());
        }
        let prefixes: Vec<&[u32]> = batch
            .ids
            .iter()
            .map(|v| &v[..cached.min(v.len())])
            .collect();
        let url = format!("{}/generate", self.url);
        let body = json!({
            "input_ids": prefixes,
            "sampling_params": {"temperature": 0.0, "max_new_tokens": 1, "ignore_eos": true},
            "stream": false,
        });
        let mut req = self
            .http
            .post(&url)
            .json(&body)
            .timeout(self.cfg.request_timeout);
        if let Some(k) = &self.cfg.api_key {
            req = req.bearer_auth(k);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| OfflineError::Server(format!("--cache-hit-rate: POST {url}: {e}")))?;
        if !resp.status().is_success() {
            let status = resp.status();
            return Err(OfflineError::Server(format!(
                "--cache-hit-rate: POST {url} (the cache warm-up): HTTP {status}: {}",
                resp.text().await.unwrap_or_default().trim()
            )));
        }
        Ok(())
    }

    /// The timed request's body: upstream's keys, the optional ones only when asked for.
    fn body(&self, batch: &Batch, ignore_eos: bool) -> Value {
        let mut body = json!({
            "sampling_params": {
                "temperature": self.cfg.temperature,
                "max_new_tokens": batch.output_len,
                "ignore_eos": ignore_eos,
                "json_schema": null,
                "stream_interval": self.cfg.stream_interval,
            },
            "return_logprob": self.cfg.return_logprob,
            "stream": true,
        });
        if self.cfg.parallel_batch {
            body["parallel_batch"] = true.into();
        }
        body["input_ids"] = json!(batch.ids);
        if self.cfg.fake_prefill {
            body["bootstrap_host"] = "2.2.2.2".into();
            body["bootstrap_room"] = 0.into();
        }
        if let Some(l) = &self.cfg.lora {
            let mut rng = self.rng.lock().expect("lora rng");
            body["lora_path"] = l.lora_path(batch.ids.len(), &mut rng);
        }
        body
    }

    /// One case: flush, ids, (cache warm-up), (profile), metrics, the batched request,
    /// metrics again.
    async fn case(
        &self,
        case: (usize, usize, usize),
        ignore_eos: bool,
        run_name: &str,
        profile: Option<&ServerProfile>,
        observer: &dyn ServerObserver,
    ) -> Result<CaseResult, OfflineError> {
        let (bs, _, _) = case;
        self.flush().await;
        if self.cfg.flush_hicache_storage {
            self.flush_hicache_storage().await?;
        }
        let batch = build_batch(self.cfg, self.tokenizer.as_ref(), self.vocab, case)?;
        self.warm_cache(&batch).await?;
        let profile_link = match profile {
            Some(p) => {
                let dir = self.start_profile(p, bs, batch.input_len).await?;
                observer.event(&ServerEvent::ProfileStarted(&dir));
                Some(dir)
            }
            None => None,
        };
        let before = self.cache_tokens().await;
        let body = self.body(&batch, ignore_eos);
        let n = batch.ids.len();
        let t0 = Instant::now();
        let recorder = self.send(&body, n, ignore_eos, t0).await?;
        let latency = t0.elapsed().as_secs_f64();
        let info = self.server.server_info().await?;
        let after = self.cache_tokens().await;
        let mut r = CaseResult::measure(
            run_name,
            (bs, batch.input_len, batch.output_len),
            batch.replay_input,
            ignore_eos,
            latency,
            &recorder,
            &info,
            before,
            after,
        );
        r.profile_link = profile_link;
        if let Some(p) = profile
            && let Some(dir) = &r.profile_link
        {
            let mut w = WaitFor::new(None, p.wait);
            w.dir = Some(dir.clone());
            w.use_status = false;
            let files = self
                .server
                .wait_for_files(&w, &|name| name.ends_with(".trace.json.gz"))
                .await?;
            observer.event(&ServerEvent::ProfileFiles {
                files: &files.files,
                complete: files.complete,
            });
        }
        Ok(r)
    }

    /// POST the batch and follow its stream.
    async fn send(
        &self,
        body: &Value,
        bs: usize,
        ignore_eos: bool,
        t0: Instant,
    ) -> Result<BatchRecorder, OfflineError> {
        let url = format!("{}/generate", self.url);
        let mut req = self
            .http
            .post(&url)
            .json(body)
            .timeout(self.cfg.request_timeout);
        if let Some(k) = &self.cfg.api_key {
            req = req.bearer_auth(k);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| OfflineError::Server(format!("POST {url}: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(OfflineError::Server(format!(
                "POST {url}: the server cannot take a batched /generate (input_ids as a list of \
                 {bs} lists): HTTP {status}: {}",
                text.trim()
            )));
        }
        let mut recorder = BatchRecorder::new(bs);
        let mut buf: Vec<u8> = Vec::new();
        let mut chunks = resp.bytes_stream();
        'stream: while let Some(part) = chunks.next().await {
            let part = part.map_err(|e| OfflineError::Server(format!("POST {url}: {e}")))?;
            let now = t0.elapsed().as_secs_f64();
            buf.extend_from_slice(&part);
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end();
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let data = data.trim();
                if data == "[DONE]" {
                    break 'stream;
                }
                self.chunk(&mut recorder, data, ignore_eos, now, &url)?;
            }
        }
        let missing = recorder.missing();
        if !missing.is_empty() {
            return Err(OfflineError::Server(format!(
                "POST {url}: no stream chunk with a token for request indices {missing:?}: the \
                 server does not stream a batched /generate with one index per request"
            )));
        }
        Ok(recorder)
    }

    fn chunk(
        &self,
        recorder: &mut BatchRecorder,
        data: &str,
        ignore_eos: bool,
        now: f64,
        url: &str,
    ) -> Result<(), OfflineError> {
        let v: Value = serde_json::from_str(data).map_err(|e| {
            OfflineError::Server(format!(
                "POST {url}: a stream chunk is not JSON ({e}): {data}"
            ))
        })?;
        if v.get("error").is_some() {
            return Err(OfflineError::Server(format!(
                "POST {url}: the request failed: {data}"
            )));
        }
        let bs = recorder.batch_size();
        let index = match v["index"].as_u64() {
            Some(i) if (i as usize) < bs => i as usize,
            // Upstream reads data["index"]; a server that omits it answered one request.
            _ => {
                return Err(OfflineError::Server(format!(
                    "POST {url}: the server cannot take a batched /generate: a chunk has no \
                     index below {bs}: {data}"
                )));
            }
        };
        let tokens = v["meta_info"]["completion_tokens"].as_u64().unwrap_or(0);
        let finish = &v["meta_info"]["finish_reason"];
        let kind = finish["type"].as_str();
        match kind {
            None | Some("length") => {}
            Some("stop") if finish["matched"] == "NaN happened" => {
                return Err(OfflineError::Server(format!(
                    "POST {url}: request {index} hit NaN logits: {finish}"
                )));
            }
            Some("stop") if ignore_eos => {
                return Err(OfflineError::Server(format!(
                    "POST {url}: request {index} stopped early despite ignore_eos: {finish}"
                )));
            }
            Some("stop") => {}
            Some(_) => {
                return Err(OfflineError::Server(format!(
                    "POST {url}: request {index} ended unexpectedly: {finish}"
                )));
            }
        }
        recorder.chunk(index, tokens, kind, now);
        Ok(())
    }
}

/// Warm up, run every case, then (with profiling) every case again, profiled.
pub async fn run(
    cfg: &OneBatchServerConfig,
    observer: &dyn ServerObserver,
) -> Result<OneBatchServerOutcome, OfflineError> {
    check_flags(cfg)?;
    let embedded = match &cfg.target {
        Target::Url(_) => None,
        Target::Embedded(sc) => {
            let s = loupe_server::spawn((**sc).clone())
                .await
                .map_err(OfflineError::Server)?;
            observer.event(&ServerEvent::Embedded(&s.url()));
            Some(s)
        }
    };
    let url = match (&cfg.target, &embedded) {
        (_, Some(s)) => s.url(),
        (Target::Url(u), None) => u.trim_end_matches('/').to_string(),
        (Target::Embedded(_), None) => unreachable!("the embedded server was started"),
    };
    let result = run_against(cfg, &url, observer).await;
    if let Some(s) = embedded {
        let _ = s.shutdown().await;
    }
    result
}

async fn run_against(
    cfg: &OneBatchServerConfig,
    url: &str,
    observer: &dyn ServerObserver,
) -> Result<OneBatchServerOutcome, OfflineError> {
    let headers = loupe_client::headers(cfg.api_key.as_deref(), &[])
        .map_err(|e| OfflineError::Flag(e.to_string()))?;
    let server = Server::new(url, headers).map_err(|e| OfflineError::Flag(e.to_string()))?;
    let info = server.server_info().await?;
    let l = limits(cfg, &info, observer);
    check_limits(cfg, &l, url)?;
    // Every input but random-ids (and no fixed prompt) is text encoded client-side.
    let tokenizer = if cfg.dataset != DatasetName::RandomIds || cfg.fixed_prompt.is_some() {
        BenchTokenizer::resolve(cfg.tokenizer.as_deref(), Some(&info))
            .map_err(|e| OfflineError::Flag(e.to_string()))?
    } else {
        None
    };
    let http = loupe_client::http_client().map_err(|e| OfflineError::Flag(e.to_string()))?;
    let session = Session {
        cfg,
        server,
        http,
        url: url.to_string(),
        tokenizer,
        vocab: vocab_size(&info),
        rng: std::sync::Mutex::new(StdRng::seed_from_u64(cfg.seed)),
        observer,
        metrics_failed: Default::default(),
    };
    if !cfg.skip_warmup {
        let mut unique = cfg.batch_sizes.clone();
        unique.sort_unstable();
        unique.dedup();
        observer.event(&ServerEvent::WarmupBegin(&unique));
        for &bs in &unique {
            let r = session
                .case((bs, warmup_input_len(&l, bs), 16), true, "", None, observer)
                .await?;
            observer.event(&ServerEvent::CaseDone(&r));
        }
        observer.event(&ServerEvent::WarmupEnd);
    }
    let mut outcome = OneBatchServerOutcome {
        server_info: info,
        ..Default::default()
    };
    for c in cases(cfg) {
        let r = session
            .case(c, cfg.ignore_eos, &cfg.run_name, None, observer)
            .await?;
        if let Some(f) = &cfg.result_file {
            crate::jsonl::append(f, &[r.to_json()])?;
        }
        observer.event(&ServerEvent::CaseDone(&r));
        outcome.results.push(r);
    }
    if let Some(p) = &cfg.profile {
        for c in cases(cfg) {
            match session
                .case(c, cfg.ignore_eos, &cfg.run_name, Some(p), observer)
                .await
            {
                Ok(r) => {
                    if let Some(f) = &cfg.result_file {
                        crate::jsonl::append(f, &[r.to_json()])?;
                    }
                    observer.event(&ServerEvent::CaseDone(&r));
                    outcome.profile_results.push(r);
                }
                Err(e) => {
                    observer.event(&ServerEvent::ProfileFailed(&e.to_string()));
                    break;
                }
            }
        }
        for (r, p) in outcome.results.iter_mut().zip(&outcome.profile_results) {
            r.profile_link = p.profile_link.clone();
        }
    }
    Ok(outcome)
}
