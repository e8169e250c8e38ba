//! Engine throughput: decode tokens/s at several batch sizes and prefill tokens/s for a preset,
//! achieved GFLOP/s of the projections against the gemm crate's own peak, and the scheduler's
//! overhead at a given decode batch. Prints one JSON object; scripts/bench_engine.sh runs it
//! beside transformers and prints the ratios.
//!
//!     cargo bench -p loupe-engine --bench forward -- --model small --batches 1,8,32,64
//!         [--prompt-len 128] [--decode-steps 32] [--prefill-len 512] [--overhead-batch 64]
//!         [--threads N] [--write-config config.json] [--dtype float32|bfloat16|float16]
//!         [--record-every N (time every Nth step's ops, 0: none; default 4)] [--decode-only]
//!     cargo bench -p loupe-engine --bench forward -- --kernels [--dtype bfloat16]

use std::sync::{Arc, Mutex};
use std::time::Instant;

use loupe_engine::matmul::{self, Matrix, WeightDtype};
use loupe_engine::model::{ForwardBatch, RankModel, SeqInput};
use loupe_engine::observer::{ForwardMode, StepObserver, StepReport};
use loupe_engine::parallel::TpGroup;
use loupe_engine::sampling::argmax;
use loupe_engine::weights::WeightSource;
use loupe_engine::{Engine, EngineArgs, GenerateRequest, ModelConfig, Preset, SamplingParams};
use serde_json::json;

struct Opts {
    model: Preset,
    batches: Vec<usize>,
    prompt_len: usize,
    decode_steps: usize,
    prefill_len: usize,
    overhead_batch: usize,
    threads: usize,
    write_config: Option<String>,
    dtype: Option<WeightDtype>,
    kernels: bool,
    /// Time the ops of every Nth decode step for the GFLOP/s figure (0: never).
    record_every: usize,
    /// Decode only: no prefill, gemm peak or scheduler-overhead runs.
    decode_only: bool,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        model: Preset::Tiny,
        batches: vec![1, 8, 32, 64],
        prompt_len: 128,
        decode_steps: 32,
        prefill_len: 512,
        overhead_batch: 64,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        write_config: None,
        dtype: None,
        kernels: false,
        record_every: 4,
        decode_only: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = |i: usize| args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--model" => o.model = Preset::from_name(&val(i)).expect("--model tiny|small"),
            "--batches" => {
                o.batches = val(i)
                    .split(',')
                    .map(|b| b.parse().expect("batch size"))
                    .collect()
            }
            "--prompt-len" => o.prompt_len = val(i).parse().expect("--prompt-len"),
            "--decode-steps" => o.decode_steps = val(i).parse().expect("--decode-steps"),
            "--prefill-len" => o.prefill_len = val(i).parse().expect("--prefill-len"),
            "--overhead-batch" => o.overhead_batch = val(i).parse().expect("--overhead-batch"),
            "--threads" => o.threads = val(i).parse().expect("--threads"),
            "--write-config" => o.write_config = Some(val(i)),
            "--kernels" => {
                o.kernels = true;
                i += 1;
                continue;
            }
            "--decode-only" => {
                o.decode_only = true;
                i += 1;
                continue;
            }
            "--record-every" => o.record_every = val(i).parse().expect("--record-every"),
            "--dtype" => {
                o.dtype =
                    Some(WeightDtype::parse(&val(i)).expect("--dtype float32|bfloat16|float16"))
            }
            // cargo bench passes --bench; ignore flags that are not ours.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

/// What one batch size's decode measured.
struct Decode {
    /// Tokens/s of the best of three passes.
    tokens_per_s: f64,
    /// Projection GFLOP/s over the steps whose ops were timed.
    gflops: f64,
    /// The median of every untimed-ops step's own latency (batch built, forward, argmax),
    /// over the three passes: `bench one-batch`'s statistic.
    median_step_s: f64,
}

/// Decode `steps` tokens for `batch` sequences after a `prompt_len` prefill.
fn decode_throughput(
    group: &mut TpGroup,
    vocab: usize,
    batch: usize,
    prompt_len: usize,
    steps: usize,
    record_every: usize,
) -> Decode {
    let ctx = prompt_len + steps + 1;
    let slots: Vec<Vec<u32>> = (0..batch)
        .map(|b| ((b * ctx) as u32..((b + 1) * ctx) as u32).collect())
        .collect();
    let prefill = ForwardBatch {
        seqs: (0..batch)
            .map(|b| SeqInput {
                tokens: (0..prompt_len)
                    .map(|i| ((i * 7 + b) % vocab) as u32)
                    .collect(),
                start_pos: 0,
                slots: slots[b][..prompt_len].to_vec(),
                want_logits: true,
            })
            .collect(),
        record_ops: false,
        all_logits: false,
    };
    let logits = group.forward(prefill).logits.expect("rank 0 logits");
    let mut next: Vec<u32> = logits.chunks(vocab).map(argmax).collect();
    let (mut flops, mut proj_secs) = (0.0, 0.0);
    let mut best = f64::MAX;
    let mut step_secs = Vec::with_capacity(3 * steps);
    // Best of three passes over the same positions (the machine may be shared).
    for _ in 0..3 {
        let t0 = Instant::now();
        for step in 0..steps {
            let pos = prompt_len + step;
            let record = record_every > 0 && step % record_every == 0;
            let ts = Instant::now();
            let out = group.forward(ForwardBatch {
                seqs: (0..batch)
                    .map(|b| SeqInput {
                        tokens: vec![next[b]],
                        start_pos: pos,
                        slots: slots[b][..pos + 1].to_vec(),
                        want_logits: true,
                    })
                    .collect(),
                record_ops: record,
                all_logits: false,
            });
            next = out
                .logits
                .expect("rank 0 logits")
                .chunks(vocab)
                .map(argmax)
                .collect();
            if !record {
                step_secs.push(ts.elapsed().as_secs_f64());
            }
            for op in out
                .rank_ops
                .iter()
                .flatten()
                .filter(|o| o.kind.is_projection())
            {
                flops += op.flops();
                proj_secs += (op.end - op.start).as_secs_f64();
            }
        }
        best = best.min(t0.elapsed().as_secs_f64());
    }
    step_secs.sort_by(f64::total_cmp);
    let n = step_secs.len();
    let median_step_s = match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => step_secs[n / 2],
        _ => (step_secs[n / 2 - 1] + step_secs[n / 2]) / 2.0,
    };
    Decode {
        tokens_per_s: (batch * steps) as f64 / best,
        gflops: flops / proj_secs.max(1e-12) / 1e9,
        median_step_s,
    }
}

fn prefill_throughput(group: &mut TpGroup, vocab: usize, len: usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let batch = ForwardBatch {
            seqs: vec![SeqInput {
                tokens: (0..len).map(|i| ((i * 13) % vocab) as u32).collect(),
                start_pos: 0,
                slots: (0..len as u32).collect(),
                want_logits: true,
            }],
            record_ops: false,
            all_logits: false,
        };
        let t0 = Instant::now();
        group.forward(batch);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    len as f64 / best
}

/// The gemm crate's own best on this machine: large square f32 products.
fn gemm_peak(threads: usize) -> f64 {
    let n = 1024;
    let w = Matrix::new(
        n,
        n,
        (0..n * n).map(|i| (i % 17) as f32 * 0.01).collect(),
        WeightDtype::F32,
    );
    let x: Vec<f32> = (0..n * n).map(|i| (i % 13) as f32 * 0.01).collect();
    let mut out = vec![0.0; n * n];
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t0 = Instant::now();
        matmul::matmul(&mut out, &x, n, &w, threads);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    2.0 * (n * n * n) as f64 / best / 1e9
}

/// Records, for decode steps at the target batch size, each phase of the step.
#[derive(Default)]
struct OverheadProbe {
    batch: usize,
    /// Per step: (schedule, forward, process) seconds.
    samples: Mutex<Vec<[f64; 3]>>,
}

impl StepObserver for OverheadProbe {
    fn step_end(&self, r: &StepReport<'_>) {
        if r.info.mode == ForwardMode::Decode && r.info.batch_size == self.batch {
            use loupe_engine::observer::SchedulerPhase as P;
            let span = |p: P| {
                let ph = r.phases.iter().find(|x| x.0 == p).expect("phase");
                (ph.2 - ph.1).as_secs_f64()
            };
            // The receive phase is time spent waiting for work, not overhead of a busy step.
            let row = [span(P::Schedule), span(P::RunBatch), span(P::ProcessOutput)];
            self.samples.lock().expect("probe").push(row);
        }
    }
}

struct Overhead {
    fraction: f64,
    steps: usize,
    mean_step_ms: f64,
    mean_schedule_ms: f64,
    mean_process_ms: f64,
}

/// Scheduler overhead: (step time - forward time) / step time over decode steps at `batch`.
fn scheduler_overhead(
    model: Preset,
    batch: usize,
    threads: usize,
    dtype: Option<WeightDtype>,
) -> Overhead {
    let probe = Arc::new(OverheadProbe {
        batch,
        ..Default::default()
    });
    let engine = Engine::start(EngineArgs {
        model_path: model.name().into(),
        threads: Some(threads),
        dtype,
        observer: Some(probe.clone()),
        max_running_requests: Some(batch),
        ..Default::default()
    })
    .expect("engine starts");
    let mut rxs = Vec::new();
    for i in 0..batch {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        engine
            .submit(GenerateRequest {
                rid: format!("r{i}"),
                input_ids: (0..64).map(|j| ((i * 31 + j) % 250) as u32 + 3).collect(),
                params: SamplingParams {
                    max_new_tokens: 64,
                    temperature: 0.0,
                    ignore_eos: true,
                    ..Default::default()
                },
                stream: true,
                stream_interval: None,
                log_metrics: true,
                output: tx,
            })
            .expect("submit");
        rxs.push(rx);
    }
    for mut rx in rxs {
        while let Some(o) = rx.blocking_recv() {
            if o.finish.is_some() {
                break;
            }
        }
    }
    let samples = probe.samples.lock().expect("probe").clone();
    let [sched, fwd, process] = samples
        .iter()
        .fold([0.0; 3], |a, s| [a[0] + s[0], a[1] + s[1], a[2] + s[2]]);
    let step = sched + fwd + process;
    let n = samples.len().max(1) as f64;
    Overhead {
        fraction: (sched + process) / step.max(1e-12),
        steps: samples.len(),
        mean_step_ms: step / n * 1e3,
        mean_schedule_ms: sched / n * 1e3,
        mean_process_ms: process / n * 1e3,
    }
}

/// loupe's projection kernel against gemm on decode shapes, weights cold (cycled through
/// more memory than the caches hold), in the given weight dtype.
fn kernels(threads: usize, dtype: WeightDtype) {
    println!("| shape (m x k x n) | weights | loupe GFLOP/s | gemm GFLOP/s |");
    println!("|---|---|---|---|");
    for (m, k, n) in [
        (1, 1024, 5632),
        (8, 1024, 5632),
        (32, 1024, 5632),
        (64, 1024, 5632),
        (64, 2816, 1024),
        (128, 1024, 5632),
    ] {
        let copies = (480_000_000 / (k * n * 4)).max(2);
        let ws: Vec<Matrix> = (0..copies)
            .map(|c| {
                Matrix::new(
                    k,
                    n,
                    (0..k * n).map(|i| ((i + c) % 17) as f32 * 0.01).collect(),
                    dtype,
                )
            })
            .collect();
        let x: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.01).collect();
        let mut out = vec![0.0; m * n];
        let flops = 2.0 * (m * k * n * copies) as f64 / 1e9;
        let mut time = |f: &dyn Fn(&mut [f32], &Matrix)| {
            let mut best = f64::MAX;
            for _ in 0..3 {
                let t0 = Instant::now();
                for w in &ws {
                    f(&mut out, w);
                }
                best = best.min(t0.elapsed().as_secs_f64());
            }
            flops / best
        };
        let ours = time(&|out, w| matmul::matmul(out, &x, m, w, threads));
        let theirs = time(&|out, w| matmul::matmul_via_gemm(out, &x, m, w, threads));
        println!(
            "| {m} x {k} x {n} | {} | {ours:.1} | {theirs:.1} |",
            dtype.name()
        );
    }
}

fn main() {
    let o = parse_args();
    if o.kernels {
        kernels(o.threads, o.dtype.unwrap_or(WeightDtype::F32));
        return;
    }
    let cfg = Arc::new(ModelConfig::from_preset(o.model, &json!({})).expect("preset config"));
    if let Some(path) = &o.write_config {
        // The same config.json for the transformers side of the comparison.
        std::fs::write(path, serde_json::to_vec_pretty(&cfg.raw).expect("config"))
            .expect("write --write-config");
    }
    let vocab = cfg.vocab_size;
    let max_batch = o.batches.iter().copied().max().unwrap_or(1);
    let slots = (max_batch * (o.prompt_len + o.decode_steps + 1)).max(o.prefill_len);
    let ranks = RankModel::load_all(
        cfg.clone(),
        &WeightSource::Dummy,
        1,
        slots,
        o.threads,
        cfg.weight_dtype(o.dtype),
    )
    .expect("model");
    let mut group = TpGroup::new(ranks, 0);
    // Warm caches and thread pools once.
    decode_throughput(&mut group, vocab, 1, 16, 2, o.record_every);
    let peak = if o.decode_only {
        f64::NAN
    } else {
        gemm_peak(o.threads)
    };
    let decode: Vec<serde_json::Value> = o
        .batches
        .iter()
        .map(|&b| {
            let d = decode_throughput(&mut group, vocab, b, o.prompt_len, o.decode_steps, o.record_every);
            let (tps, gflops) = (d.tokens_per_s, d.gflops);
            eprintln!(
                "decode batch {b:>3}: {tps:>10.1} tok/s, median step {:.4} ms, projections {gflops:.1} GFLOP/s",
                d.median_step_s * 1e3
            );
            json!({"batch": b, "tokens_per_s": tps, "median_step_s": d.median_step_s,
                   "projection_gflops": gflops, "gemm_peak_fraction": gflops / peak})
        })
        .collect();
    if o.decode_only {
        println!(
            "{}",
            json!({"engine": "loupe", "model": o.model.name(), "threads": o.threads,
            "prompt_len": o.prompt_len, "decode_steps": o.decode_steps, "decode": decode})
        );
        return;
    }
    let prefill = prefill_throughput(&mut group, vocab, o.prefill_len);
    eprintln!(
        "prefill {} tokens: {prefill:.1} tok/s; gemm peak {peak:.1} GFLOP/s",
        o.prefill_len
    );
    drop(group);
    let ov = scheduler_overhead(o.model, o.overhead_batch, o.threads, o.dtype);
    eprintln!(
        "scheduler overhead at decode batch {}: {:.2}% over {} steps (step {:.3} ms: schedule {:.3} ms, process {:.3} ms)",
        o.overhead_batch,
        ov.fraction * 100.0,
        ov.steps,
        ov.mean_step_ms,
        ov.mean_schedule_ms,
        ov.mean_process_ms
    );
    println!(
        "{}",
        json!({
            "engine": "loupe",
            "model": o.model.name(),
            "weight_dtype": cfg.weight_dtype(o.dtype).name(),
            "threads": o.threads,
            "prompt_len": o.prompt_len,
            "decode_steps": o.decode_steps,
            "decode": decode,
            "prefill": {"tokens": o.prefill_len, "tokens_per_s": prefill},
            "gemm_peak_gflops": peak,
            "scheduler_overhead": {
                "batch": o.overhead_batch, "fraction": ov.fraction, "steps": ov.steps,
                "mean_step_ms": ov.mean_step_ms, "mean_schedule_ms": ov.mean_schedule_ms,
                "mean_process_ms": ov.mean_process_ms,
            },
        })
    );
}
