//! `loupe bench offline`: `python -m sglang.benchmark.offline_throughput`'s flags (and
//! `loupe serve`'s for the engine) -> `loupe_offline::throughput`; upstream's result block and
//! result-file line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use loupe_bench::plan::DatasetName;
use loupe_offline::throughput::{
    self, DatasetFlags, ThroughputConfig, ThroughputEvent, ThroughputObserver, ThroughputProfile,
};
use loupe_server::ServerConfig;
use serde_json::{Map, Value};

use super::args::GspShapeArgs;
use super::one_batch::{ActivityName, profiler_dir};
use crate::cmd::serve::ServeArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OfflineBackend {
    /// The in-process engine.
    Engine,
    /// sglang.lang's Runtime (a server in a subprocess): not in loupe.
    Runtime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OfflineDataset {
    Sharegpt,
    /// ShareGPT prompts cut or repeated to the drawn lengths.
    Random,
    /// Token ids drawn from the vocabulary: no corpus needed (loupe's addition).
    RandomIds,
    GeneratedSharedPrefix,
}

#[derive(clap::Args, Debug, Clone)]
pub struct OfflineArgs {
    /// The engine, as `loupe serve` takes it.
    #[command(flatten)]
    pub server: ServeArgs,
    #[arg(long, value_enum, default_value = "engine")]
    pub backend: OfflineBackend,
    /// Appended with the result; "" writes none.
    #[arg(long, default_value = "")]
    pub result_filename: String,
    #[arg(long, value_enum, default_value = "sharegpt")]
    pub dataset_name: OfflineDataset,
    #[arg(long, default_value = "")]
    pub dataset_path: String,
    #[arg(long, default_value_t = 1000)]
    pub num_prompts: usize,
    #[arg(long)]
    pub sharegpt_output_len: Option<usize>,
    #[arg(long)]
    pub sharegpt_context_len: Option<usize>,
    #[arg(long, default_value_t = 1024)]
    pub random_input_len: usize,
    #[arg(long, default_value_t = 1024)]
    pub random_output_len: usize,
    #[arg(long, default_value_t = 0.0)]
    pub random_range_ratio: f64,
    #[command(flatten)]
    pub gsp: GspShapeArgs,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long)]
    pub disable_ignore_eos: bool,
    /// JSON merged into every prompt's sampling parameters.
    #[arg(long, default_value = "")]
    pub extra_request_body: String,
    #[arg(long)]
    pub apply_chat_template: bool,
    #[arg(long, default_value = "")]
    pub prompt_suffix: String,
    /// Refused: loupe's engine computes no logprobs.
    #[arg(long)]
    pub return_logprob: bool,
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub logprob_start_len: i64,
    /// Profile the measured generate into $SGLANG_TORCH_PROFILER_DIR (else /tmp).
    #[arg(long)]
    pub profile: bool,
    #[arg(long, value_enum, num_args = 1.., default_values = ["CPU", "GPU"])]
    pub profile_activities: Vec<ActivityName>,
    /// Steps the profile captures (default: until the generate returns).
    #[arg(long)]
    pub profile_steps: Option<u64>,
    #[arg(long)]
    pub skip_warmup: bool,
    /// Spin on a core afterwards, until interrupted (for `nsys --duration`).
    #[arg(long)]
    pub do_not_exit: bool,
}

impl OfflineArgs {
    pub fn config(&self) -> anyhow::Result<ThroughputConfig> {
        if self.backend == OfflineBackend::Runtime {
            bail!(
                "--backend runtime starts sglang.lang's Runtime, which loupe does not have; use \
                 --backend engine (the in-process engine) or benchmark `loupe serve` with \
                 `loupe bench`"
            );
        }
        if self.return_logprob {
            bail!("--return-logprob: loupe's reference engine computes no logprobs");
        }
        if self.logprob_start_len != -1 {
            bail!(
                "--logprob-start-len {}: only -1 (no prompt logprobs) is supported, as loupe's \
                 engine computes no logprobs",
                self.logprob_start_len
            );
        }
        let extra_sampling: Map<String, Value> = if self.extra_request_body.is_empty() {
            Map::new()
        } else {
            serde_json::from_str(&self.extra_request_body)
                .map_err(|e| anyhow::anyhow!("--extra-request-body is not a JSON object: {e}"))?
        };
        let profile = if self.profile {
            let activities = super::one_batch::activities(&self.profile_activities)?;
            Some(ThroughputProfile {
                activities,
                steps: self.profile_steps,
                output_dir: std::path::absolute(profiler_dir())?,
                wait: Duration::from_secs(600),
            })
        } else {
            None
        };
        let mut server = ServerConfig::from(self.server.clone());
        server.port = 0;
        Ok(ThroughputConfig {
            server,
            dataset: DatasetFlags {
                name: match self.dataset_name {
                    OfflineDataset::Sharegpt => DatasetName::Sharegpt,
                    OfflineDataset::Random => DatasetName::Random,
                    OfflineDataset::RandomIds => DatasetName::RandomIds,
                    OfflineDataset::GeneratedSharedPrefix => DatasetName::GeneratedSharedPrefix,
                },
                path: self.dataset_path.clone(),
                num_prompts: self.num_prompts,
                sharegpt_output_len: self.sharegpt_output_len,
                sharegpt_context_len: self.sharegpt_context_len,
                random_input_len: self.random_input_len,
                random_output_len: self.random_output_len,
                random_range_ratio: self.random_range_ratio,
                gsp_num_groups: self.gsp.gsp_num_groups,
                gsp_prompts_per_group: self.gsp.gsp_prompts_per_group,
                gsp_system_prompt_len: self.gsp.gsp_system_prompt_len,
                gsp_question_len: self.gsp.gsp_question_len,
                gsp_output_len: self.gsp.gsp_output_len,
                apply_chat_template: self.apply_chat_template,
                prompt_suffix: self.prompt_suffix.clone(),
            },
            seed: self.seed,
            ignore_eos: !self.disable_ignore_eos,
            extra_sampling,
            skip_warmup: self.skip_warmup,
            profile,
        })
    }
}

struct Lines;

impl ThroughputObserver for Lines {
    fn event(&self, event: &ThroughputEvent<'_>) {
        match event {
            ThroughputEvent::Warmup => eprintln!("\nWarmup..."),
            ThroughputEvent::Benchmark { prompts } => {
                eprintln!("\nBenchmark... ({prompts} prompts)")
            }
            ThroughputEvent::ProfileStarted { output_dir } => {
                eprintln!("Profiling; traces go to {}", output_dir.display())
            }
            ThroughputEvent::DatasetNote(n) => eprintln!("note: {n}"),
        }
    }
}

pub async fn run(args: OfflineArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config()?;
    let r = throughput::run(&cfg, &Lines).await?;
    if !args.result_filename.is_empty() {
        loupe_offline::jsonl::append(&PathBuf::from(&args.result_filename), &[r.to_json()])?;
    }
    println!("\n{:=^50}", " Offline Throughput Benchmark Result ");
    println!("{:<40} {:<10}", "Backend:", "engine");
    println!(
        "{:<40} {:<10}",
        "Successful requests:", r.successful_requests
    );
    println!(
        "{:<40} {:<10.2}",
        "Benchmark duration (s):", r.total_latency
    );
    println!("{:<40} {:<10}", "Total input tokens:", r.total_input_tokens);
    println!(
        "{:<40} {:<10}",
        "Total generated tokens:", r.total_output_tokens
    );
    println!(
        "{:<40} {:<10.2}",
        "Last generation throughput (tok/s):", r.last_gen_throughput
    );
    println!(
        "{:<40} {:<10.2}",
        "Request throughput (req/s):",
        r.request_throughput()
    );
    println!(
        "{:<40} {:<10.2}",
        "Input token throughput (tok/s):",
        r.input_throughput()
    );
    println!(
        "{:<40} {:<10.2}",
        "Output token throughput (tok/s):",
        r.output_throughput()
    );
    println!(
        "{:<40} {:<10.2}",
        "Total token throughput (tok/s):",
        r.total_throughput()
    );
    println!("{}", "=".repeat(50));
    for t in &r.traces {
        eprintln!("trace: {t}");
    }
    if args.do_not_exit {
        loop {
            std::hint::spin_loop();
        }
    }
    Ok(ExitCode::SUCCESS)
}
