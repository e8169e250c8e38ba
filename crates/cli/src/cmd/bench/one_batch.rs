//! `loupe bench one-batch`: `python -m sglang.benchmark.one_batch`'s flags (and `loupe serve`'s
//! for the model) -> `loupe_offline::one_batch`; the lines upstream prints (its CI parses them
//! with regexes), the JSONL appended at the end, the key_averages table after each trace.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use loupe_offline::one_batch::{
    self, OneBatchConfig, OneBatchEvent, OneBatchObserver, Part, ProfileActivity, ProfileSettings,
    ProfileStage,
};
use loupe_server::ServerConfig;

use super::key_averages;
use crate::cmd::serve::ServeArgs;

/// `--profile-activities` names, upstream's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ActivityName {
    #[value(name = "CPU")]
    Cpu,
    #[value(name = "GPU")]
    Gpu,
    #[value(name = "CUDA_PROFILER")]
    CudaProfiler,
    #[value(name = "XPU")]
    Xpu,
}

/// The activities loupe records; the two it cannot are refused with the reason.
pub fn activities(names: &[ActivityName]) -> anyhow::Result<Vec<ProfileActivity>> {
    let mut out = Vec::new();
    for n in names {
        let a = match n {
            ActivityName::Cpu => ProfileActivity::Cpu,
            ActivityName::Gpu => ProfileActivity::Gpu,
            ActivityName::CudaProfiler => anyhow::bail!(
                "--profile-activities CUDA_PROFILER brackets the windows with cudaProfilerStart/Stop \
                 for an nsys session; loupe's reference engine runs on the CPU and has no CUDA \
                 context. Use CPU and/or GPU (the compute lane)."
            ),
            ActivityName::Xpu => anyhow::bail!(
                "--profile-activities XPU needs an Intel GPU build; loupe's reference engine runs \
                 on the CPU. Use CPU and/or GPU (the compute lane)."
            ),
        };
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

/// `--profile-stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StageName {
    All,
    Prefill,
    Decode,
}

/// Where upstream's tools put traces: `$SGLANG_TORCH_PROFILER_DIR`, else /tmp.
pub fn profiler_dir() -> PathBuf {
    std::env::var_os("SGLANG_TORCH_PROFILER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

#[derive(clap::Args, Debug, Clone)]
pub struct OneBatchArgs {
    /// The model and engine, as `loupe serve` takes them.
    #[command(flatten)]
    pub server: ServeArgs,
    #[arg(long, default_value = "default")]
    pub run_name: String,
    /// Batch sizes; with --input-len and --output-len, every combination runs.
    #[arg(long, num_args = 1.., default_values_t = [1usize])]
    pub batch_size: Vec<usize>,
    #[arg(long, num_args = 1.., default_values_t = [1024usize])]
    pub input_len: Vec<usize>,
    #[arg(long, num_args = 1.., default_values_t = [16usize])]
    pub output_len: Vec<usize>,
    /// One prompt per line, used instead of random token ids.
    #[arg(long, default_value = "")]
    pub prompt_filename: String,
    /// Appended with one line per case; "" writes none.
    #[arg(long, default_value = "result.jsonl")]
    pub result_filename: String,
    /// Extend (in two parts with --cut-len), decode greedily, print logits and texts.
    #[arg(long)]
    pub correctness_test: bool,
    #[arg(long, default_value_t = 4)]
    pub cut_len: usize,
    /// Also print decode step i when i % N == 0 (the first five are always printed).
    #[arg(long, default_value_t = 0)]
    pub log_decode_step: usize,
    /// Write a trace per window and print its key_averages table.
    #[arg(long)]
    pub profile: bool,
    /// Record `Input Dims` on every op.
    #[arg(long)]
    pub profile_record_shapes: bool,
    #[arg(long, value_enum, num_args = 1.., default_values = ["CPU", "GPU"])]
    pub profile_activities: Vec<ActivityName>,
    #[arg(long, value_enum, default_value = "all")]
    pub profile_stage: StageName,
    #[arg(long, default_value = "profile")]
    pub profile_prefix: String,
    /// 0-based decode step where the decode window opens (default: output_len // 2).
    #[arg(long)]
    pub profile_start_step: Option<usize>,
    /// Decode steps captured (default 1).
    #[arg(long)]
    pub profile_steps: Option<usize>,
}

impl OneBatchArgs {
    pub fn config(&self) -> anyhow::Result<OneBatchConfig> {
        let engine = ServerConfig::from(self.server.clone())
            .engine_args()
            .map_err(anyhow::Error::msg)?;
        let profile = if self.profile {
            Some(ProfileSettings {
                activities: activities(&self.profile_activities)?,
                stage: match self.profile_stage {
                    StageName::All => ProfileStage::All,
                    StageName::Prefill => ProfileStage::Prefill,
                    StageName::Decode => ProfileStage::Decode,
                },
                prefix: self.profile_prefix.clone(),
                start_step: self.profile_start_step,
                steps: self.profile_steps,
                record_shapes: self.profile_record_shapes,
                output_dir: profiler_dir(),
            })
        } else {
            None
        };
        Ok(OneBatchConfig {
            seed: engine.random_seed,
            engine,
            run_name: self.run_name.clone(),
            batch_sizes: self.batch_size.clone(),
            input_lens: self.input_len.clone(),
            output_lens: self.output_len.clone(),
            prompt_file: (!self.prompt_filename.is_empty())
                .then(|| PathBuf::from(&self.prompt_filename)),
            correctness: self.correctness_test.then_some(self.cut_len),
            profile,
        })
    }
}

/// Prints upstream's lines as the run goes.
struct Lines {
    log_decode_step: usize,
}

/// torch's summarised print of a 2-D tensor: rows of at most six values (first and last
/// three), four decimals.
fn tensor_text(rows: &[Vec<f32>]) -> String {
    let row = |r: &Vec<f32>| {
        let cell = |x: &f32| format!("{x:.4}");
        let cells: Vec<String> = if r.len() > 6 {
            r[..3]
                .iter()
                .map(cell)
                .chain(["...".to_string()])
                .chain(r[r.len() - 3..].iter().map(cell))
                .collect()
        } else {
            r.iter().map(cell).collect()
        };
        format!("[{}]", cells.join(", "))
    };
    let rows: Vec<String> = rows.iter().map(row).collect();
    format!("tensor([{}])", rows.join(",\n        "))
}

impl OneBatchObserver for Lines {
    fn event(&self, event: &OneBatchEvent<'_>) {
        match event {
            OneBatchEvent::Loaded {
                max_total_num_tokens,
            } => println!("max_total_num_tokens={max_total_num_tokens}"),
            OneBatchEvent::Part(Part::Warmup) => println!("Warmup ..."),
            OneBatchEvent::Part(Part::Benchmark) => println!("Benchmark ..."),
            OneBatchEvent::Prefill {
                latency,
                throughput,
            } => {
                println!("Prefill. latency: {latency:6.5} s, throughput: {throughput:9.2} token/s")
            }
            OneBatchEvent::DecodeStep {
                index,
                batch_size,
                latency,
                throughput,
            } => {
                if *index < 5 || (self.log_decode_step > 0 && index % self.log_decode_step == 0) {
                    println!(
                        "Decode {index}. Batch size: {batch_size}, latency: {latency:6.5} s, throughput: {throughput:9.2} token/s"
                    );
                }
            }
            OneBatchEvent::DecodeMedian {
                latency,
                throughput,
            } => println!(
                "Decode.  median latency: {latency:6.5} s, median throughput: {throughput:9.2} token/s"
            ),
            OneBatchEvent::Total {
                latency,
                throughput,
            } => println!("Total. latency: {latency:6.3} s, throughput: {throughput:9.2} token/s"),
            OneBatchEvent::TraceWritten(t) => {
                let stage = match t.stage {
                    ProfileStage::Prefill => "prefill",
                    _ => "decode",
                };
                println!(
                    "torch profiler chrome trace for {stage} saved to {}",
                    t.path.display()
                );
                println!("{}", key_averages::render(&t.table));
            }
            OneBatchEvent::Correctness(c) => {
                println!("\ninput_ids={:?}\n", c.input_ids);
                if let Some(first) = &c.first_half_logits {
                    println!("prefill logits (first half): {} \n", tensor_text(first));
                }
                println!(
                    "prefill logits (final): {} \n",
                    tensor_text(&c.final_logits)
                );
                for (i, text) in c.texts.iter().enumerate() {
                    println!("========== Prompt {i} ==========");
                    println!("{text} \n");
                }
            }
        }
    }
}

pub async fn run(args: OneBatchArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config()?;
    let lines = Lines {
        log_decode_step: args.log_decode_step,
    };
    // The model runs on this thread's compute pools; keep it off the async workers.
    let outcome = tokio::task::spawn_blocking(move || one_batch::run(&cfg, &lines))
        .await
        .context("the benchmark thread panicked")??;
    if !args.result_filename.is_empty() && !outcome.results.is_empty() {
        let records: Vec<_> = outcome.results.iter().map(|r| r.to_json()).collect();
        loupe_offline::jsonl::append(std::path::Path::new(&args.result_filename), &records)?;
    }
    Ok(ExitCode::SUCCESS)
}
