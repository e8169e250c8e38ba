//! The engine as the server sees it: load the model once, start one scheduler thread per
//! data-parallel group (each with its tensor-parallel ranks), route requests between groups.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;

use crate::config::{ModelConfig, ModelSource};
use crate::error::EngineError;
use crate::matmul::WeightDtype;
use crate::model::{RankModel, Shard};
use crate::observer::StepObserver;
use crate::parallel::TpGroup;
use crate::request::GenerateRequest;
use crate::scheduler::{
    Command, SchedulePolicy, Scheduler, SchedulerConfig, SchedulerParts, SchedulerStats,
};
use crate::tokenizer::Tokenizer;
use crate::weights::{LoadFormat, SafetensorsCheckpoint, WeightSource};

/// How the router spreads requests over data-parallel groups (`--load-balance-method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBalance {
    RoundRobin,
    ShortestQueue,
}

impl LoadBalance {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "round_robin" => Some(Self::RoundRobin),
            "shortest_queue" => Some(Self::ShortestQueue),
            _ => None,
        }
    }
}

/// Everything needed to start an engine; defaults follow SGLang where it has one.
#[derive(Clone)]
pub struct EngineArgs {
    pub model_path: String,
    pub tokenizer_path: Option<PathBuf>,
    pub load_format: LoadFormat,
    /// Weight storage (`--dtype`); `None` follows the config's `torch_dtype`.
    pub dtype: Option<WeightDtype>,
    pub model_overrides: serde_json::Value,
    pub skip_tokenizer_init: bool,
    pub tp_size: usize,
    pub dp_size: usize,
    pub load_balance: LoadBalance,
    pub context_length: Option<usize>,
    pub max_total_tokens: Option<usize>,
    pub page_size: usize,
    pub chunked_prefill_size: Option<usize>,
    pub max_prefill_tokens: usize,
    pub max_running_requests: Option<usize>,
    pub max_queued_requests: Option<usize>,
    pub disable_radix_cache: bool,
    pub schedule_policy: SchedulePolicy,
    pub schedule_conservativeness: f64,
    pub stream_interval: usize,
    pub random_seed: u64,
    /// Compute threads in all; default: every core. Split evenly over all ranks.
    pub threads: Option<usize>,
    pub observer: Option<Arc<dyn StepObserver>>,
}

impl Default for EngineArgs {
    fn default() -> Self {
        EngineArgs {
            model_path: "tiny".into(),
            tokenizer_path: None,
            load_format: LoadFormat::Auto,
            dtype: None,
            model_overrides: serde_json::json!({}),
            skip_tokenizer_init: false,
            tp_size: 1,
            dp_size: 1,
            load_balance: LoadBalance::RoundRobin,
            context_length: None,
            max_total_tokens: None,
            page_size: 1,
            chunked_prefill_size: Some(2048),
            max_prefill_tokens: 16384,
            max_running_requests: None,
            max_queued_requests: None,
            disable_radix_cache: false,
            schedule_policy: SchedulePolicy::Fcfs,
            schedule_conservativeness: 1.0,
            stream_interval: 1,
            random_seed: 42,
            threads: None,
            observer: None,
        }
    }
}

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A request field is out of range; names the field.
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("The request queue is full.")]
    QueueFull,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

struct Group {
    tx: Sender<Command>,
    stats: Arc<SchedulerStats>,
    thread: Option<JoinHandle<()>>,
}

/// What starting a model needs before any scheduler exists: the resolved source, config,
/// weights and tokenizer, and the sizes derived from the arguments. Shared by [`Engine::start`]
/// and the model runner (`runner.rs`), so the two load a model identically.
pub(crate) struct LoadedModel {
    pub source: ModelSource,
    pub config: Arc<ModelConfig>,
    pub weights: WeightSource,
    pub tokenizer: Option<Arc<Tokenizer>>,
    pub eos_token_ids: Vec<u32>,
    pub context_length: usize,
    pub max_total_tokens: usize,
    pub threads_per_rank: usize,
    pub dtype: WeightDtype,
}

impl LoadedModel {
    pub fn load(args: &EngineArgs) -> Result<LoadedModel, EngineError> {
        if args.tp_size == 0 || args.dp_size == 0 {
            return Err(EngineError::Config(
                "--tp-size and --dp-size must be at least 1".into(),
            ));
        }
        if args.page_size == 0 {
            return Err(EngineError::Config("--page-size must be at least 1".into()));
        }
        let source = ModelSource::resolve(&args.model_path)?;
        let config = Arc::new(ModelConfig::load(&source, &args.model_overrides)?);
        Shard::check(&config, args.tp_size)?;
        let weights = match (&source, args.load_format) {
            (_, LoadFormat::Dummy) | (ModelSource::Preset(_), LoadFormat::Auto) => {
                WeightSource::Dummy
            }
            (ModelSource::Preset(p), LoadFormat::Safetensors) => {
                return Err(EngineError::Config(format!(
                    "preset '{}' has no checkpoint; use --load-format dummy",
                    p.name()
                )));
            }
            (ModelSource::Dir(dir), _) => {
                if args.load_format == LoadFormat::Auto && !SafetensorsCheckpoint::present(dir) {
                    return Err(EngineError::Weights {
                        path: dir.clone(),
                        message: "no safetensors weights found; pass --load-format dummy for \
                                  deterministic dummy weights"
                            .into(),
                    });
                }
                WeightSource::Safetensors(SafetensorsCheckpoint::open(dir)?)
            }
        };
        let tokenizer = if args.skip_tokenizer_init {
            None
        } else {
            let dir = args.tokenizer_path.clone().or(match &source {
                ModelSource::Dir(d) => Some(d.clone()),
                ModelSource::Preset(_) => None,
            });
            Some(Arc::new(match dir {
                Some(d) if d.join("tokenizer.json").is_file() => Tokenizer::from_dir(&d)?,
                Some(d) if args.tokenizer_path.is_some() => {
                    return Err(EngineError::Tokenizer(format!(
                        "{}: no tokenizer.json",
                        d.display()
                    )));
                }
                // No tokenizer files next to the weights: the byte-level tokenizer.
                _ => Tokenizer::byte_level(config.vocab_size),
            }))
        };
        let mut eos_token_ids = config.eos_token_ids.clone();
        if let Some(t) = &tokenizer {
            for id in &t.eos_token_ids {
                if !eos_token_ids.contains(id) {
                    eos_token_ids.push(*id);
                }
            }
        }
        let context_length = args
            .context_length
            .unwrap_or(config.max_position_embeddings);
        let kv_heads_per_rank = if config.num_key_value_heads >= args.tp_size {
            config.num_key_value_heads / args.tp_size
        } else {
            1
        };
        let bytes_per_token = config.kv_floats_per_token(kv_heads_per_rank) * 4 * args.tp_size;
        let max_total_tokens = args
            .max_total_tokens
            .unwrap_or_else(|| ((2usize << 30) / bytes_per_token).clamp(4096, 262_144));
        if max_total_tokens < args.page_size * 2 {
            return Err(EngineError::Config(format!(
                "--max-total-tokens {max_total_tokens} is smaller than two pages of --page-size {}",
                args.page_size
            )));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads_per_rank =
            (args.threads.unwrap_or(cores) / (args.tp_size * args.dp_size)).max(1);
        let dtype = config.weight_dtype(args.dtype);
        tracing::info!(
            "model {} ({}), weights kept as {}, compute in float32",
            args.model_path,
            config.architecture.hf_name(),
            dtype.name()
        );
        Ok(LoadedModel {
            source,
            config,
            weights,
            tokenizer,
            eos_token_ids,
            context_length,
            max_total_tokens,
            threads_per_rank,
            dtype,
        })
    }
}

/// A running engine. Dropping it stops the scheduler threads.
pub struct Engine {
    config: Arc<ModelConfig>,
    tokenizer: Option<Arc<Tokenizer>>,
    groups: Vec<Group>,
    next: AtomicUsize,
    load_balance: LoadBalance,
    context_length: usize,
    max_total_tokens: usize,
    max_running_requests: usize,
    max_queued: Option<usize>,
    pub args: EngineArgs,
    pub model_source: ModelSource,
    pub eos_token_ids: Vec<u32>,
}

impl Engine {
    pub fn start(args: EngineArgs) -> Result<Engine, EngineError> {
        let LoadedModel {
            source,
            config,
            weights,
            tokenizer,
            eos_token_ids,
            context_length,
            max_total_tokens,
            threads_per_rank,
            dtype,
        } = LoadedModel::load(&args)?;
        let max_running = args
            .max_running_requests
            .unwrap_or_else(|| (max_total_tokens / 2).clamp(1, 512));
        let sched_cfg = SchedulerConfig {
            max_total_tokens,
            page_size: args.page_size,
            chunked_prefill_size: args.chunked_prefill_size,
            max_prefill_tokens: args.max_prefill_tokens,
            max_running_requests: max_running,
            disable_radix_cache: args.disable_radix_cache,
            schedule_policy: args.schedule_policy,
            schedule_conservativeness: args.schedule_conservativeness,
            stream_interval: args.stream_interval,
            context_length,
            random_seed: args.random_seed,
        };
        let detok = tokenizer
            .clone()
            .unwrap_or_else(|| Arc::new(Tokenizer::byte_level(config.vocab_size)));
        let mut groups = Vec::with_capacity(args.dp_size);
        for dp_rank in 0..args.dp_size {
            let ranks = RankModel::load_all(
                config.clone(),
                &weights,
                args.tp_size,
                max_total_tokens,
                threads_per_rank,
                dtype,
            )?;
            let (tx, rx) = std::sync::mpsc::channel();
            let stats = Arc::new(SchedulerStats::default());
            let parts = SchedulerParts {
                dp_rank,
                cfg: sched_cfg.clone(),
                tp: TpGroup::new(ranks, dp_rank),
                tokenizer: detok.clone(),
                eos_ids: eos_token_ids.clone(),
                vocab_size: config.vocab_size,
                rx,
                observer: args.observer.clone(),
                stats: stats.clone(),
            };
            // Built here, not in its thread, so its gauges (the KV pool's size) are set when
            // the engine is returned: a fresh server's /metrics shows every DP rank's capacity.
            let scheduler = Scheduler::new(parts);
            let thread = std::thread::Builder::new()
                .name(format!("loupe-scheduler-dp{dp_rank}"))
                .spawn(move || scheduler.run())
                .map_err(|e| EngineError::Config(format!("cannot start scheduler thread: {e}")))?;
            groups.push(Group {
                tx,
                stats,
                thread: Some(thread),
            });
        }
        Ok(Engine {
            config,
            tokenizer,
            groups,
            next: AtomicUsize::new(0),
            load_balance: args.load_balance,
            context_length,
            max_total_tokens,
            max_running_requests: max_running,
            max_queued: args.max_queued_requests,
            model_source: source,
            eos_token_ids,
            args,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// `None` with `--skip-tokenizer-init`.
    pub fn tokenizer(&self) -> Option<&Arc<Tokenizer>> {
        self.tokenizer.as_ref()
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// KV pool size of each data-parallel group, in tokens.
    pub fn max_total_tokens(&self) -> usize {
        self.max_total_tokens
    }

    /// Requests one data-parallel group runs at once (`--max-running-requests` or its default).
    pub fn max_running_requests(&self) -> usize {
        self.max_running_requests
    }

    /// The longest prompt a request may have.
    pub fn max_req_input_len(&self) -> usize {
        (self.context_length - 1).min(self.max_total_tokens - 1)
    }

    pub fn stats(&self) -> Vec<Arc<SchedulerStats>> {
        self.groups.iter().map(|g| g.stats.clone()).collect()
    }

    /// Check a request's shape against the model, SGLang's messages where it has them.
    pub fn validate(&self, input_len: usize, max_new_tokens: usize) -> Result<(), SubmitError> {
        if input_len == 0 {
            return Err(SubmitError::Invalid {
                field: "input_ids",
                message: "The input is empty: at least one token is needed.".into(),
            });
        }
        if input_len >= self.context_length {
            return Err(SubmitError::Invalid {
                field: "input_ids",
                message: format!(
                    "The input ({input_len} tokens) is longer than the model's context length ({} tokens).",
                    self.context_length
                ),
            });
        }
        if input_len > self.max_req_input_len() {
            return Err(SubmitError::Invalid {
                field: "input_ids",
                message: format!(
                    "The input ({input_len} tokens) does not fit in the KV cache ({} tokens); raise --max-total-tokens.",
                    self.max_total_tokens
                ),
            });
        }
        if input_len + max_new_tokens > self.context_length {
            return Err(SubmitError::Invalid {
                field: "max_new_tokens",
                message: format!(
                    "Requested token count exceeds the model's maximum context length of {} tokens. \
                     You requested a total of {} tokens: {input_len} tokens from the input messages and \
                     {max_new_tokens} tokens for the completion. Please reduce the number of tokens in \
                     the input messages or the completion to fit within the limit.",
                    self.context_length,
                    input_len + max_new_tokens
                ),
            });
        }
        Ok(())
    }

    /// Validate and hand a request to a data-parallel group. Returns the group's rank.
    pub fn submit(&self, req: GenerateRequest) -> Result<usize, SubmitError> {
        let g = self.admit(&req)?;
        self.send_to(g, vec![req])?;
        Ok(g)
    }

    /// Validate and hand a batch to the schedulers, each group's share in one message, as
    /// SGLang's tokenizer manager sends a pre-tokenized batch (`BatchTokenizedGenerateReqInput`):
    /// the scheduler sees the whole share at once, so one prefill batch can hold all of it
    /// (one message per request would let it start a prefill on the first alone). Nothing is
    /// sent when one request is refused. Returns each request's group rank, in order.
    pub fn submit_batch(&self, reqs: Vec<GenerateRequest>) -> Result<Vec<usize>, SubmitError> {
        let mut groups = Vec::with_capacity(reqs.len());
        for req in &reqs {
            match self.admit(req) {
                Ok(g) => groups.push(g),
                Err(e) => {
                    for &g in &groups {
                        self.groups[g]
                            .stats
                            .inflight
                            .fetch_sub(1, Ordering::Relaxed);
                    }
                    return Err(e);
                }
            }
        }
        let mut shares: Vec<Vec<GenerateRequest>> =
            self.groups.iter().map(|_| Vec::new()).collect();
        for (req, &g) in reqs.into_iter().zip(&groups) {
            shares[g].push(req);
        }
        for (g, share) in shares.into_iter().enumerate() {
            if !share.is_empty() {
                self.send_to(g, share)?;
            }
        }
        Ok(groups)
    }

    /// Check a request and pick its group; counts it in flight there.
    fn admit(&self, req: &GenerateRequest) -> Result<usize, SubmitError> {
        let vocab = self.config.vocab_size as u32;
        if let Some(bad) = req.input_ids.iter().find(|&&t| t >= vocab) {
            return Err(SubmitError::Invalid {
                field: "input_ids",
                message: format!("token id {bad} is out of the vocabulary (size {vocab})"),
            });
        }
        self.validate(req.input_ids.len(), req.params.max_new_tokens)?;
        req.params.validate().map_err(|e| SubmitError::Invalid {
            field: e.field,
            message: e.to_string(),
        })?;
        let g = match self.load_balance {
            LoadBalance::RoundRobin => {
                self.next.fetch_add(1, Ordering::Relaxed) % self.groups.len()
            }
            LoadBalance::ShortestQueue => (0..self.groups.len())
                .min_by_key(|&i| self.groups[i].stats.inflight.load(Ordering::Relaxed))
                .expect("at least one group"),
        };
        let group = &self.groups[g];
        if let Some(max) = self.max_queued {
            let s = &group.stats;
            let waiting = s
                .inflight
                .load(Ordering::Relaxed)
                .saturating_sub(s.running.load(Ordering::Relaxed));
            if waiting >= max {
                return Err(SubmitError::QueueFull);
            }
        }
        group.stats.inflight.fetch_add(1, Ordering::Relaxed);
        Ok(g)
    }

    fn send_to(&self, g: usize, mut reqs: Vec<GenerateRequest>) -> Result<(), SubmitError> {
        let n = reqs.len();
        let cmd = if n == 1 {
            Command::Generate(Box::new(reqs.pop().expect("one request")))
        } else {
            Command::GenerateBatch(reqs)
        };
        if self.groups[g].tx.send(cmd).is_err() {
            self.groups[g]
                .stats
                .inflight
                .fetch_sub(n, Ordering::Relaxed);
            return Err(SubmitError::Engine(EngineError::Stopped));
        }
        Ok(())
    }

    /// Abort a request by id wherever it is.
    pub fn abort(&self, rid: &str) {
        for g in &self.groups {
            let _ = g.tx.send(Command::Abort(rid.to_string()));
        }
    }

    /// Drop every group's prefix cache; fails (with SGLang's message) while requests run.
    pub async fn flush_cache(&self) -> Result<(), String> {
        for g in &self.groups {
            let (tx, rx) = tokio::sync::oneshot::channel();
            g.tx.send(Command::FlushCache(tx))
                .map_err(|_| "the engine is not running".to_string())?;
            rx.await
                .map_err(|_| "the engine is not running".to_string())??;
        }
        Ok(())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        for g in &mut self.groups {
            // Replacing the sender closes the channel; the scheduler loop then ends.
            let (tx, _) = std::sync::mpsc::channel();
            drop(std::mem::replace(&mut g.tx, tx));
            if let Some(t) = g.thread.take() {
                let _ = t.join();
            }
        }
    }
}
