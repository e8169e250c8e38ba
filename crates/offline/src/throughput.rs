//! `python -m sglang.benchmark.offline_throughput`: every prompt of a bench_serving dataset
//! handed to the in-process engine at once (one blocking `generate` of the whole list; the
//! batching is the scheduler's), timed from the call to the last output. The engine is the
//! reference server's, without its socket: its tokenizer, scheduler and profiler.
//!
//! `--profile` starts the profiler before the call (`num_steps` = `--profile-steps`), stops
//! it after (a profile that already stopped by itself is not an error, as upstream ignores
//! the RuntimeError), then waits until its files are written; upstream polls the directory
//! and waits forever when no file appears, loupe asks the profiler, which knows.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loupe_bench::dataset::{self, DatasetConfig, Prompt, PromptInput};
use loupe_bench::plan::{DatasetName, GroupDistribution, RangeSemantics, SharedPrefixPlan};
use loupe_bench::tokenizer::BenchTokenizer;
use loupe_client::ProfileState;
use loupe_engine::{GenerateRequest, SamplingParams};
use loupe_profiler::{Activity, StartRequest};
use loupe_server::{AppState, ServerConfig};
use serde_json::{Map, Value, json};

use crate::OfflineError;

/// The dataset flags (bench_serving's names), resolved.
#[derive(Debug, Clone)]
pub struct DatasetFlags {
    pub name: DatasetName,
    pub path: String,
    pub num_prompts: usize,
    pub sharegpt_output_len: Option<usize>,
    pub sharegpt_context_len: Option<usize>,
    pub random_input_len: usize,
    pub random_output_len: usize,
    pub random_range_ratio: f64,
    pub gsp_num_groups: usize,
    pub gsp_prompts_per_group: usize,
    pub gsp_system_prompt_len: usize,
    pub gsp_question_len: usize,
    pub gsp_output_len: usize,
    pub apply_chat_template: bool,
    pub prompt_suffix: String,
}

/// The offline profile.
#[derive(Debug, Clone)]
pub struct ThroughputProfile {
    pub activities: Vec<crate::one_batch::ProfileActivity>,
    pub steps: Option<u64>,
    pub output_dir: PathBuf,
    pub wait: Duration,
}

#[derive(Clone)]
pub struct ThroughputConfig {
    pub server: ServerConfig,
    pub dataset: DatasetFlags,
    pub seed: u64,
    pub ignore_eos: bool,
    /// `--extra-request-body`, merged into every prompt's sampling parameters.
    pub extra_sampling: Map<String, Value>,
    pub skip_warmup: bool,
    pub profile: Option<ThroughputProfile>,
}

/// What the run measured, under upstream's keys.
#[derive(Debug, Clone, PartialEq)]
pub struct ThroughputResult {
    pub successful_requests: usize,
    pub total_latency: f64,
    pub total_input_tokens: usize,
    pub total_output_tokens: usize,
    pub last_gen_throughput: f64,
    /// The profile's trace files (with `--profile`).
    pub traces: Vec<String>,
}

impl ThroughputResult {
    pub fn request_throughput(&self) -> f64 {
        self.successful_requests as f64 / self.total_latency
    }

    pub fn input_throughput(&self) -> f64 {
        self.total_input_tokens as f64 / self.total_latency
    }

    pub fn output_throughput(&self) -> f64 {
        self.total_output_tokens as f64 / self.total_latency
    }

    pub fn total_throughput(&self) -> f64 {
        (self.total_input_tokens + self.total_output_tokens) as f64 / self.total_latency
    }

    /// The result-file line, upstream's keys in its order.
    pub fn to_json(&self) -> Value {
        json!({
            "backend": "engine",
            "successful_requests": self.successful_requests,
            "total_latency": self.total_latency,
            "total_input_tokens": self.total_input_tokens,
            "total_output_tokens": self.total_output_tokens,
            "request_throughput": self.request_throughput(),
            "input_throughput": self.input_throughput(),
            "output_throughput": self.output_throughput(),
            "total_throughput": self.total_throughput(),
            "last_gen_throughput": self.last_gen_throughput,
        })
    }
}

/// What a front end is told.
#[derive(Debug)]
pub enum ThroughputEvent<'a> {
    Warmup,
    Benchmark { prompts: usize },
    ProfileStarted { output_dir: &'a std::path::Path },
    DatasetNote(&'a str),
}

pub trait ThroughputObserver: Send + Sync {
    fn event(&self, event: &ThroughputEvent<'_>);
}

/// `--extra-request-body` keys applied to the engine's sampling parameters; anything else is
/// refused by name rather than ignored.
fn apply_extra(p: &mut SamplingParams, extra: &Map<String, Value>) -> Result<(), OfflineError> {
    for (k, v) in extra {
        let bad = || OfflineError::Flag(format!("--extra-request-body: {k}: unusable value {v}"));
        let f = || v.as_f64().map(|x| x as f32).ok_or_else(bad);
        match k.as_str() {
            "temperature" => p.temperature = f()?,
            "top_p" => p.top_p = f()?,
            "min_p" => p.min_p = f()?,
            "top_k" => p.top_k = v.as_i64().ok_or_else(bad)?,
            "frequency_penalty" => p.frequency_penalty = f()?,
            "presence_penalty" => p.presence_penalty = f()?,
            "repetition_penalty" => p.repetition_penalty = f()?,
            "ignore_eos" => p.ignore_eos = v.as_bool().ok_or_else(bad)?,
            "min_new_tokens" => p.min_new_tokens = v.as_u64().ok_or_else(bad)? as usize,
            "max_new_tokens" => p.max_new_tokens = v.as_u64().ok_or_else(bad)? as usize,
            "sampling_seed" => p.seed = Some(v.as_u64().ok_or_else(bad)?),
            other => {
                return Err(OfflineError::Flag(format!(
                    "--extra-request-body: '{other}' is not a sampling parameter loupe's engine \
                     implements (temperature, top_p, top_k, min_p, frequency_penalty, \
                     presence_penalty, repetition_penalty, ignore_eos, min_new_tokens, \
                     max_new_tokens, sampling_seed)"
                )));
            }
        }
    }
    p.validate()
        .map_err(|e| OfflineError::Flag(format!("--extra-request-body: {e}")))
}

fn build_prompts(
    d: &DatasetFlags,
    name: DatasetName,
    (num, input_len, output_len, range): (usize, usize, usize, f64),
    seed: u64,
    tok: Option<&BenchTokenizer>,
    vocab: usize,
) -> Result<dataset::Dataset, OfflineError> {
    let gsp = SharedPrefixPlan {
        num_groups: d.gsp_num_groups,
        prompts_per_group: d.gsp_prompts_per_group,
        system_prompt_len: d.gsp_system_prompt_len,
        question_len: d.gsp_question_len,
        output_len: d.gsp_output_len,
        // offline_throughput fixes GSP's ratio at 1.0 and sends one turn.
        range_ratio: 1.0,
        send_routing_key: false,
        ordered: false,
        distribution: GroupDistribution::Uniform,
        num_turns: 1,
    };
    let dc = DatasetConfig {
        name,
        path: &d.path,
        num,
        input_len,
        output_len,
        range_ratio: range,
        semantics: RangeSemantics::Sglang,
        tokenize_prompt: false,
        sharegpt_output_len: d.sharegpt_output_len,
        sharegpt_context_len: d.sharegpt_context_len,
        apply_chat_template: d.apply_chat_template,
        prompt_suffix: &d.prompt_suffix,
        gsp: &gsp,
        mooncake: &Default::default(),
        traces: &Default::default(),
        image: &Default::default(),
        seed,
        scenario: None,
    };
    dataset::build(&dc, tok, Some(vocab)).map_err(|e| OfflineError::Flag(e.to_string()))
}

/// One blocking generate of every prompt: submit all, await all.
async fn generate_all(
    st: &Arc<AppState>,
    prompts: &[Prompt],
    ignore_eos: bool,
    extra: &Map<String, Value>,
) -> Result<usize, OfflineError> {
    let mut outputs = Vec::with_capacity(prompts.len());
    for (i, p) in prompts.iter().enumerate() {
        let input_ids = match &p.input {
            PromptInput::Ids(ids) => ids.clone(),
            // The engine tokenizes, as SGLang's Engine does inside generate().
            PromptInput::Text(t) => st
                .encode(t, true)
                .map_err(|e| OfflineError::Flag(format!("prompt {i}: {e}")))?,
            PromptInput::Messages(_) | PromptInput::Multimodal { .. } => {
                return Err(OfflineError::Flag(format!(
                    "prompt {i}: the dataset gives chat messages or images (a multi-turn, \
                     openai or image dataset); offline throughput sends one text or id prompt \
                     per request"
                )));
            }
        };
        let mut params = SamplingParams {
            temperature: 0.0,
            max_new_tokens: p.output_len,
            ignore_eos,
            ..Default::default()
        };
        apply_extra(&mut params, extra)?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        st.engine
            .submit(GenerateRequest {
                rid: st.new_rid(),
                input_ids,
                params,
                stream: false,
                stream_interval: None,
                log_metrics: true,
                output: tx,
            })
            .map_err(|e| OfflineError::Flag(format!("prompt {i}: {e}")))?;
        outputs.push(rx);
    }
    let mut total = 0;
    for (i, mut rx) in outputs.into_iter().enumerate() {
        let mut last = None;
        while let Some(o) = rx.recv().await {
            let done = o.finish.is_some();
            last = Some(o);
            if done {
                break;
            }
        }
        let out = last.ok_or_else(|| OfflineError::Engine(loupe_engine::EngineError::Stopped))?;
        if let Some(loupe_engine::FinishReason::Abort(m)) = &out.finish {
            return Err(OfflineError::Flag(format!("prompt {i} was aborted: {m}")));
        }
        total += out.completion_tokens;
    }
    Ok(total)
}

async fn start_profile(st: &AppState, p: &ThroughputProfile) -> Result<(), OfflineError> {
    std::fs::create_dir_all(&p.output_dir).map_err(|e| OfflineError::file(&p.output_dir, e))?;
    let req = StartRequest {
        output_dir: Some(p.output_dir.display().to_string()),
        start_step: None,
        num_steps: p.steps,
        activities: p
            .activities
            .iter()
            .map(|a| match a {
                crate::one_batch::ProfileActivity::Cpu => Activity::Cpu,
                crate::one_batch::ProfileActivity::Gpu => Activity::Gpu,
            })
            .collect(),
        profile_by_stage: false,
        profile_stages: None,
        with_stack: true,
        record_shapes: true,
        merge_profiles: false,
        profile_prefix: None,
        profile_id: None,
    };
    st.profiler
        .start(req)
        .map(drop)
        .map_err(|e| OfflineError::Flag(format!("--profile: {e}")))
}

/// Stop (if still capturing) and wait until the profile's files are written.
async fn finish_profile(st: &AppState, wait: Duration) -> Result<Vec<String>, OfflineError> {
    if let Ok(outcome) = st.profiler.stop().await {
        return Ok(outcome.files);
    }
    let deadline = Instant::now() + wait;
    loop {
        let s = st.profiler.status();
        if s.state == ProfileState::Idle {
            return Ok(s.files);
        }
        if Instant::now() >= deadline {
            return Err(OfflineError::Flag(format!(
                "--profile: the profile's files were not written within {} s (so far: {:?})",
                wait.as_secs(),
                s.files
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Start the engine, build the prompts, warm up, run the one timed generate.
pub async fn run(
    cfg: &ThroughputConfig,
    observer: &dyn ThroughputObserver,
) -> Result<ThroughputResult, OfflineError> {
    let mut probe = SamplingParams::default();
    apply_extra(&mut probe, &cfg.extra_sampling)?;
    let st = loupe_server::start_state(cfg.server.clone(), "loupe bench offline".into())
        .await
        .map_err(OfflineError::Flag)?;
    let info = json!({"tokenizer_path": st.tokenizer_path, "model_path": cfg.server.model_path});
    let tok = BenchTokenizer::resolve(None, Some(&info))
        .map_err(|e| OfflineError::Flag(e.to_string()))?;
    let vocab = st.engine.config().vocab_size;
    let d = &cfg.dataset;
    let ds = build_prompts(
        d,
        d.name,
        (
            d.num_prompts,
            d.random_input_len,
            d.random_output_len,
            d.random_range_ratio,
        ),
        cfg.seed,
        tok.as_ref(),
        vocab,
    )?;
    for n in &ds.notes {
        observer.event(&ThroughputEvent::DatasetNote(n));
    }
    if !cfg.skip_warmup {
        observer.event(&ThroughputEvent::Warmup);
        // Upstream warms up on ShareGPT-derived 256/16 prompts; the content does not matter
        // to a warmup, so loupe draws them from the vocabulary and needs no corpus.
        let warm = build_prompts(
            d,
            DatasetName::RandomIds,
            (d.num_prompts.min(16), 256, 16, 1.0),
            cfg.seed,
            None,
            vocab,
        )?;
        generate_all(&st, &warm.prompts, cfg.ignore_eos, &cfg.extra_sampling).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    observer.event(&ThroughputEvent::Benchmark {
        prompts: ds.prompts.len(),
    });
    if let Some(p) = &cfg.profile {
        start_profile(&st, p).await?;
        observer.event(&ThroughputEvent::ProfileStarted {
            output_dir: &p.output_dir,
        });
    }
    let t0 = Instant::now();
    let total_output_tokens =
        generate_all(&st, &ds.prompts, cfg.ignore_eos, &cfg.extra_sampling).await?;
    let total_latency = t0.elapsed().as_secs_f64();
    let traces = match &cfg.profile {
        Some(p) => finish_profile(&st, p.wait).await?,
        None => Vec::new(),
    };
    Ok(ThroughputResult {
        successful_requests: ds.prompts.len(),
        total_latency,
        total_input_tokens: ds.prompts.iter().map(|p| p.prompt_len).sum(),
        total_output_tokens,
        last_gen_throughput: st.engine.stats()[0].gen_throughput(),
        traces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_upstreams_in_order() {
        let r = ThroughputResult {
            successful_requests: 4,
            total_latency: 2.0,
            total_input_tokens: 100,
            total_output_tokens: 60,
            last_gen_throughput: 30.0,
            traces: Vec::new(),
        };
        let v = r.to_json();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "backend",
                "successful_requests",
                "total_latency",
                "total_input_tokens",
                "total_output_tokens",
                "request_throughput",
                "input_throughput",
                "output_throughput",
                "total_throughput",
                "last_gen_throughput"
            ]
        );
        assert_eq!(v["total_throughput"], 80.0);
        assert_eq!(v["request_throughput"], 2.0);
    }

    #[test]
    fn extra_body_keys_are_applied_or_refused_by_name() {
        let mut p = SamplingParams::default();
        let extra: Map<String, Value> =
            serde_json::from_str(r#"{"temperature": 0.5, "top_k": 3}"#).unwrap();
        apply_extra(&mut p, &extra).unwrap();
        assert_eq!((p.temperature, p.top_k), (0.5, 3));
        let bad: Map<String, Value> = serde_json::from_str(r#"{"json_schema": "{}"}"#).unwrap();
        let e = apply_extra(&mut p, &bad).unwrap_err().to_string();
        assert!(e.contains("json_schema"), "{e}");
    }
}
