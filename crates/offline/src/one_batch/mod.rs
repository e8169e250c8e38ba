//! `python -m sglang.benchmark.one_batch`: one batch at a time through the model, no server,
//! no scheduler queue, no prefix cache. Per case (batch size x input length x output length,
//! the Cartesian product of the lists): one timed extend of the whole batch, then
//! `output_len - 1` timed decode steps, each greedy; the batch's CPU preparation (building the
//! forward batch, picking tokens) is inside the timed region, as upstream times it.
//!
//! Differences from upstream, on purpose: a case that does not fit the KV pool or the context
//! is an error before any work (upstream skips it mid-sweep with a line on stdout), and a
//! profile window that cannot open or close within the decode steps is refused (upstream then
//! writes no decode trace and says nothing).

mod correctness;
pub mod profile;

use std::path::{Path, PathBuf};
use std::time::Instant;

use loupe_engine::model::{ForwardBatch, SeqInput};
use loupe_engine::sampling::argmax;
use loupe_engine::{EngineArgs, ModelRunner};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

pub use correctness::CorrectnessOutput;
pub use profile::{ProfileActivity, ProfileSettings, ProfileStage, TraceWritten};

use crate::OfflineError;

/// What to run, as plain data (the flags of `one_batch`, already parsed).
#[derive(Clone)]
pub struct OneBatchConfig {
    /// The model and its engine settings (`loupe serve`'s flags).
    pub engine: EngineArgs,
    pub run_name: String,
    pub batch_sizes: Vec<usize>,
    pub input_lens: Vec<usize>,
    pub output_lens: Vec<usize>,
    /// `--prompt-filename`: one prompt per line.
    pub prompt_file: Option<PathBuf>,
    /// `--correctness-test` with its `--cut-len`.
    pub correctness: Option<usize>,
    pub profile: Option<ProfileSettings>,
    /// Seed of the random input ids.
    pub seed: u64,
}

/// One (batch size, input length, output length) point of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub batch_size: usize,
    pub input_len: usize,
    pub output_len: usize,
}

impl Case {
    /// KV slots the case holds at its end, counted as upstream counts them.
    fn kv_tokens(&self) -> usize {
        self.batch_size * (self.input_len + self.output_len)
    }
}

/// The measured figures of one case, under SGLang's result keys.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    pub run_name: String,
    pub case: Case,
    pub prefill_latency: f64,
    pub prefill_throughput: f64,
    /// Every decode step's latency, in order (seconds).
    pub decode_latencies: Vec<f64>,
    /// `None` when `output_len` is 1 (no decode step).
    pub median_decode_latency: Option<f64>,
    pub median_decode_throughput: Option<f64>,
    pub total_latency: f64,
    pub overall_throughput: f64,
    /// The traces this case wrote (profiled runs only).
    pub traces: Vec<PathBuf>,
}

impl CaseResult {
    /// The JSONL record: upstream's keys in its order; the median keys only with decode steps.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "run_name": self.run_name,
            "batch_size": self.case.batch_size,
            "input_len": self.case.input_len,
            "output_len": self.case.output_len,
            "prefill_latency": self.prefill_latency,
            "prefill_throughput": self.prefill_throughput,
        });
        if let (Some(l), Some(t)) = (self.median_decode_latency, self.median_decode_throughput) {
            v["median_decode_latency"] = l.into();
            v["median_decode_throughput"] = t.into();
        }
        v["total_latency"] = self.total_latency.into();
        v["overall_throughput"] = self.overall_throughput.into();
        v
    }
}

/// Which part of the run is going on (upstream prints `Warmup ...` and `Benchmark ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Warmup,
    Benchmark,
}

/// What a front end is told while the benchmark runs, in order.
#[derive(Debug)]
pub enum OneBatchEvent<'a> {
    /// The model is loaded; its KV pool holds this many tokens.
    Loaded {
        max_total_num_tokens: usize,
    },
    Part(Part),
    Prefill {
        latency: f64,
        throughput: f64,
    },
    /// Every decode step (the front end decides which to show).
    DecodeStep {
        index: usize,
        batch_size: usize,
        latency: f64,
        throughput: f64,
    },
    DecodeMedian {
        latency: f64,
        throughput: f64,
    },
    Total {
        latency: f64,
        throughput: f64,
    },
    TraceWritten(&'a TraceWritten),
    Correctness(&'a CorrectnessOutput),
}

/// Follows a run; the command layer prints SGLang's lines from these events.
pub trait OneBatchObserver {
    fn event(&self, event: &OneBatchEvent<'_>);
}

/// What a run produced: one result per case of the sweep (none for a correctness test).
#[derive(Debug, Default)]
pub struct OneBatchOutcome {
    pub results: Vec<CaseResult>,
}

/// The cases in upstream's order (`itertools.product(batch_size, input_len, output_len)`).
pub fn cases(cfg: &OneBatchConfig) -> Vec<Case> {
    let mut out = Vec::new();
    for &batch_size in &cfg.batch_sizes {
        for &input_len in &cfg.input_lens {
            for &output_len in &cfg.output_lens {
                out.push(Case {
                    batch_size,
                    input_len,
                    output_len,
                });
            }
        }
    }
    out
}

/// Flag checks that need no model.
fn check_flags(cfg: &OneBatchConfig) -> Result<(), OfflineError> {
    for (flag, list) in [
        ("--batch-size", &cfg.batch_sizes),
        ("--input-len", &cfg.input_lens),
        ("--output-len", &cfg.output_lens),
    ] {
        if list.is_empty() {
            return Err(OfflineError::Flag(format!(
                "{flag} needs at least one value"
            )));
        }
        if list.contains(&0) {
            return Err(OfflineError::Flag(format!(
                "{flag} values must be at least 1, got {list:?}"
            )));
        }
    }
    if let Some(p) = &cfg.profile {
        if cfg.correctness.is_some() {
            return Err(OfflineError::Flag(
                "--profile measures the latency test; it cannot be combined with --correctness-test"
                    .into(),
            ));
        }
        for case in cases(cfg) {
            p.check_window(case.output_len)?;
        }
    }
    Ok(())
}

/// Checks against the loaded model, for every case, before any forward runs.
fn check_limits(
    cfg: &OneBatchConfig,
    runner: &ModelRunner,
    prompt_lens: Option<&[usize]>,
) -> Result<(), OfflineError> {
    let pool = runner.max_total_tokens();
    let context = runner.context_length();
    for case in cases(cfg) {
        let longest = prompt_lens
            .and_then(|l| l.iter().copied().max())
            .unwrap_or(case.input_len);
        if longest + case.output_len > context {
            return Err(OfflineError::Flag(format!(
                "--input-len {} --output-len {}: {} tokens per sequence exceed the context length \
                 ({context} tokens; set by the model's max_position_embeddings or --context-length)",
                longest,
                case.output_len,
                longest + case.output_len
            )));
        }
        if case.kv_tokens() > pool {
            return Err(OfflineError::Flag(format!(
                "--batch-size {} --input-len {} --output-len {}: {} x ({} + {}) = {} tokens do not \
                 fit in the KV pool (max_total_num_tokens={pool}: at most {} sequences of this \
                 length); lower --batch-size or raise --max-total-tokens",
                case.batch_size,
                case.input_len,
                case.output_len,
                case.batch_size,
                case.input_len,
                case.output_len,
                case.kv_tokens(),
                pool / (case.input_len + case.output_len)
            )));
        }
    }
    Ok(())
}

/// `--prompt-filename`: its non-empty lines, in order.
fn read_prompts(path: &Path) -> Result<Vec<String>, OfflineError> {
    let text = std::fs::read_to_string(path).map_err(|e| OfflineError::file(path, e))?;
    let prompts: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if prompts.is_empty() {
        return Err(OfflineError::file(
            path,
            "has no prompt (one prompt per line)",
        ));
    }
    Ok(prompts)
}

fn tokenize(runner: &ModelRunner, prompts: &[String]) -> Result<Vec<Vec<u32>>, OfflineError> {
    let tok = runner.tokenizer().ok_or_else(|| {
        OfflineError::Flag(
            "--prompt-filename and --correctness-test need a tokenizer; drop --skip-tokenizer-init"
                .into(),
        )
    })?;
    prompts
        .iter()
        .map(|p| {
            tok.encode(p, true).map_err(|e| {
                OfflineError::Flag(format!("--prompt-filename: cannot tokenize a prompt: {e}"))
            })
        })
        .collect()
}

/// Load the model, check every case, warm up, run the sweep (or the correctness test).
pub fn run(
    cfg: &OneBatchConfig,
    observer: &dyn OneBatchObserver,
) -> Result<OneBatchOutcome, OfflineError> {
    check_flags(cfg)?;
    let prompts = cfg.prompt_file.as_deref().map(read_prompts).transpose()?;
    let mut runner = ModelRunner::load(&cfg.engine)?;
    observer.event(&OneBatchEvent::Loaded {
        max_total_num_tokens: runner.max_total_tokens(),
    });
    if let Some(cut_len) = cfg.correctness {
        let output_len = cfg.output_lens[0];
        let out = correctness::run(
            &mut runner,
            prompts,
            cfg.batch_sizes[0],
            cut_len,
            output_len,
        )?;
        observer.event(&OneBatchEvent::Correctness(&out));
        return Ok(OneBatchOutcome::default());
    }
    let custom = prompts.map(|p| tokenize(&runner, &p)).transpose()?;
    let lens: Option<Vec<usize>> = custom.as_ref().map(|c| c.iter().map(Vec::len).collect());
    check_limits(cfg, &runner, lens.as_deref())?;
    if let Some(p) = &cfg.profile {
        p.check_output_dir()?;
    }
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let vocab = runner.config().vocab_size;
    let mut inputs = |bs: usize, il: usize| -> Vec<Vec<u32>> {
        match &custom {
            // More prompts than the batch: the first bs; fewer: the last one repeated.
            Some(c) => (0..bs).map(|i| c[i.min(c.len() - 1)].clone()).collect(),
            // Upstream's np.random.randint(0, 10000, (bs, il)), within the vocabulary.
            None => (0..bs)
                .map(|_| {
                    (0..il)
                        .map(|_| rng.random_range(0..vocab.min(10_000)) as u32)
                        .collect()
                })
                .collect(),
        }
    };
    observer.event(&OneBatchEvent::Part(Part::Warmup));
    let first = cases(cfg)[0];
    let warm = Case {
        output_len: first.output_len.min(32),
        ..first
    };
    let warm_inputs = inputs(warm.batch_size, warm.input_len);
    run_once(&mut runner, cfg, warm, &warm_inputs, None, observer)?;
    observer.event(&OneBatchEvent::Part(Part::Benchmark));
    let mut results = Vec::new();
    for case in cases(cfg) {
        let ids = inputs(case.batch_size, case.input_len);
        results.push(run_once(
            &mut runner,
            cfg,
            case,
            &ids,
            cfg.profile.as_ref(),
            observer,
        )?);
    }
    Ok(OneBatchOutcome { results })
}

/// Slots of sequence `b` in a case: a contiguous range of its own (the pool is cleared
/// between cases, and there is no prefix cache to share slots).
fn seq_slots(b: usize, per_seq: usize, len: usize) -> Vec<u32> {
    let base = b * per_seq;
    (base as u32..(base + len) as u32).collect()
}

fn pick(logits: &[f32], vocab: usize) -> Vec<u32> {
    logits.chunks(vocab).map(argmax).collect()
}

/// numpy's median: the middle value, or the mean of the two middle values.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn run_once(
    runner: &mut ModelRunner,
    cfg: &OneBatchConfig,
    case: Case,
    inputs: &[Vec<u32>],
    profile: Option<&ProfileSettings>,
    observer: &dyn OneBatchObserver,
) -> Result<CaseResult, OfflineError> {
    let vocab = runner.config().vocab_size;
    let bs = case.batch_size;
    let per_seq = inputs.iter().map(Vec::len).max().unwrap_or(0) + case.output_len;
    let prompt_tokens: usize = inputs.iter().map(Vec::len).sum();
    let mut recorder = profile.map(|p| profile::Recorder::new(p, runner, case));

    let record_prefill = recorder.as_ref().is_some_and(|r| r.wants_prefill());
    let t0 = Instant::now();
    let batch = ForwardBatch {
        seqs: inputs
            .iter()
            .enumerate()
            .map(|(b, ids)| SeqInput {
                tokens: ids.clone(),
                start_pos: 0,
                slots: seq_slots(b, per_seq, ids.len()),
                want_logits: true,
            })
            .collect(),
        record_ops: record_prefill,
        all_logits: false,
    };
    let out = runner.forward(batch);
    let mut next = pick(out.logits.as_deref().unwrap_or_default(), vocab);
    let t1 = Instant::now();
    let prefill_latency = (t1 - t0).as_secs_f64();
    // Upstream divides the flag's input length; with a prompt file the real token count.
    let prefill_throughput = prompt_tokens as f64 / prefill_latency;
    observer.event(&OneBatchEvent::Prefill {
        latency: prefill_latency,
        throughput: prefill_throughput,
    });
    let mut traces = Vec::new();
    if let Some(r) = recorder.as_mut()
        && record_prefill
    {
        r.step(
            loupe_engine::observer::ForwardMode::Extend,
            bs,
            prompt_tokens,
            t0,
            t1,
            out.rank_ops,
        );
        let written = r.finish(ProfileStage::Prefill)?;
        observer.event(&OneBatchEvent::TraceWritten(&written));
        traces.push(written.path);
    }

    let mut decode_latencies = Vec::with_capacity(case.output_len.saturating_sub(1));
    let mut lens: Vec<usize> = inputs.iter().map(Vec::len).collect();
    for i in 0..case.output_len.saturating_sub(1) {
        let recording = recorder.as_ref().is_some_and(|r| r.records_decode(i));
        let t0 = Instant::now();
        let batch = ForwardBatch {
            seqs: next
                .iter()
                .enumerate()
                .map(|(b, &tok)| SeqInput {
                    tokens: vec![tok],
                    start_pos: lens[b],
                    slots: seq_slots(b, per_seq, lens[b] + 1),
                    want_logits: true,
                })
                .collect(),
            record_ops: recording,
            all_logits: false,
        };
        let out = runner.forward(batch);
        next = pick(out.logits.as_deref().unwrap_or_default(), vocab);
        let t1 = Instant::now();
        for l in &mut lens {
            *l += 1;
        }
        let latency = (t1 - t0).as_secs_f64();
        decode_latencies.push(latency);
        observer.event(&OneBatchEvent::DecodeStep {
            index: i,
            batch_size: bs,
            latency,
            throughput: bs as f64 / latency,
        });
        if let Some(r) = recorder.as_mut()
            && recording
        {
            r.step(
                loupe_engine::observer::ForwardMode::Decode,
                bs,
                bs,
                t0,
                t1,
                out.rank_ops,
            );
            if r.decode_window_done(i) {
                let written = r.finish(ProfileStage::Decode)?;
                observer.event(&OneBatchEvent::TraceWritten(&written));
                traces.push(written.path);
            }
        }
    }
    let (median_decode_latency, median_decode_throughput) = if decode_latencies.is_empty() {
        (None, None)
    } else {
        let m = median(&decode_latencies);
        observer.event(&OneBatchEvent::DecodeMedian {
            latency: m,
            throughput: bs as f64 / m,
        });
        (Some(m), Some(bs as f64 / m))
    };
    let total_latency = prefill_latency + decode_latencies.iter().sum::<f64>();
    let overall_throughput = (prompt_tokens + bs * case.output_len) as f64 / total_latency;
    observer.event(&OneBatchEvent::Total {
        latency: total_latency,
        throughput: overall_throughput,
    });
    Ok(CaseResult {
        run_name: cfg.run_name.clone(),
        case,
        prefill_latency,
        prefill_throughput,
        decode_latencies,
        median_decode_latency,
        median_decode_throughput,
        total_latency,
        overall_throughput,
        traces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_numpys() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
    }

    #[test]
    fn records_have_upstreams_keys_in_order() {
        let mut r = CaseResult {
            run_name: "default".into(),
            case: Case {
                batch_size: 2,
                input_len: 8,
                output_len: 4,
            },
            prefill_latency: 0.5,
            prefill_throughput: 32.0,
            decode_latencies: vec![0.1, 0.2, 0.3],
            median_decode_latency: Some(0.2),
            median_decode_throughput: Some(10.0),
            total_latency: 1.1,
            overall_throughput: 24.0 / 1.1,
            traces: Vec::new(),
        };
        let keys = |v: Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
        assert_eq!(
            keys(r.to_json()),
            [
                "run_name",
                "batch_size",
                "input_len",
                "output_len",
                "prefill_latency",
                "prefill_throughput",
                "median_decode_latency",
                "median_decode_throughput",
                "total_latency",
                "overall_throughput"
            ]
        );
        r.median_decode_latency = None;
        r.median_decode_throughput = None;
        assert!(!keys(r.to_json()).iter().any(|k| k.starts_with("median")));
    }
}
