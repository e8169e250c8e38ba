//! `loupe bench one-batch-server`: `python -m sglang.benchmark.one_batch_server`'s flags ->
//! `loupe_offline::one_batch_server`; upstream's lines per case, the result files, and the
//! `--show-report` table (tabulate's `github` layout). Without `--base-url` the reference
//! server starts in-process from `loupe serve`'s flags, as upstream launches its own.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use loupe_bench::plan::DatasetName;
use loupe_offline::one_batch_server::{
    self, BatchGsp, CaseResult, LoraChoice, LoraDistribution, OneBatchServerConfig, ServerEvent,
    ServerObserver, ServerProfile, Target,
};
use loupe_server::ServerConfig;

use super::one_batch::profiler_dir;
use crate::cmd::serve::ServeArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BatchDataset {
    /// ShareGPT prompts cut or repeated to --input-len tokens.
    Random,
    /// Token ids drawn from the vocabulary: no corpus needed.
    RandomIds,
    /// min(--gsp-num-groups, batch) groups sharing a system prompt; the record's output
    /// length is --gsp-output-len.
    GeneratedSharedPrefix,
    /// Recorded prompts at their real lengths (recorded output lengths ignored).
    Sharegpt,
    /// A JSONL conversation file (--dataset-path), replayed as sharegpt.
    Custom,
    /// LongBench-v2 documents cut to exactly --input-len tokens.
    #[value(name = "longbench_v2")]
    LongbenchV2,
    /// Refused: needs image inputs.
    Mmmu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BatchBackend {
    Sglang,
    /// Refused: vLLM's /v1/completions batch is not implemented.
    Vllm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoraSpread {
    Uniform,
    Distinct,
    Skewed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerActivity {
    #[value(name = "CPU")]
    Cpu,
    #[value(name = "GPU")]
    Gpu,
    #[value(name = "XPU")]
    Xpu,
}

impl ServerActivity {
    fn name(self) -> &'static str {
        match self {
            ServerActivity::Cpu => "CPU",
            ServerActivity::Gpu => "GPU",
            ServerActivity::Xpu => "XPU",
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct OneBatchServerArgs {
    /// The server started in-process when there is no --base-url.
    #[command(flatten)]
    pub server: ServeArgs,
    /// An SGLang-API server to benchmark (SGLang or `loupe serve`).
    #[arg(long)]
    pub base_url: Option<String>,
    /// `Authorization: Bearer` for --base-url.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub bench_api_key: Option<String>,
    #[arg(long, default_value = "default")]
    pub run_name: String,
    #[arg(long, num_args = 1.., default_values_t = [1usize])]
    pub batch_size: Vec<usize>,
    #[arg(long, num_args = 1.., default_values_t = [1024usize])]
    pub input_len: Vec<usize>,
    #[arg(long, num_args = 1.., default_values_t = [16usize])]
    pub output_len: Vec<usize>,
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Let requests stop at EOS (adds early stops and the steady-state window).
    #[arg(long)]
    pub disable_ignore_eos: bool,
    #[arg(long)]
    pub return_logprob: bool,
    /// `sampling_params.stream_interval`.
    #[arg(long, default_value_t = 1)]
    pub client_stream_interval: usize,
    #[arg(long, value_enum, default_value = "random")]
    pub dataset_name: BatchDataset,
    #[arg(long, default_value = "")]
    pub dataset_path: String,
    /// This file's text (its token ids) for every request; replaces --dataset-name.
    #[arg(long, default_value = "")]
    pub fixed_prompt_file: String,
    /// The chat template around --fixed-prompt-file's text or sharegpt/custom prompts.
    #[arg(long)]
    pub apply_chat_template: bool,
    /// Comma-separated input lengths, request i gets entry i mod n (random, random-ids; one
    /// --input-len); the record's input_len is their floor mean.
    #[arg(long, default_value = "")]
    pub input_len_list: String,
    /// Unused, as upstream (accepted so copied command lines run).
    #[arg(long, default_value_t = 0.0)]
    pub input_len_step_percentage: f64,
    #[arg(long, default_value_t = 1)]
    pub gsp_num_groups: usize,
    #[arg(long, default_value_t = 2048)]
    pub gsp_system_prompt_len: usize,
    #[arg(long, default_value_t = 128)]
    pub gsp_question_len: usize,
    #[arg(long, default_value_t = 256)]
    pub gsp_output_len: usize,
    #[arg(long, value_enum, default_value = "sglang")]
    pub backend: BatchBackend,
    /// Send each prompt's first int(input_len x rate) tokens once before the timed request.
    #[arg(long, default_value_t = 0.0)]
    pub cache_hit_rate: f64,
    /// `parallel_batch: true` in the request body.
    #[arg(long)]
    pub parallel_batch: bool,
    /// `bootstrap_host: "2.2.2.2"`, `bootstrap_room: 0` (a decode server with a fake
    /// transfer backend).
    #[arg(long)]
    pub fake_prefill: bool,
    /// Also POST /hicache/storage-backend/clear before every case.
    #[arg(long)]
    pub flush_hicache_storage: bool,
    /// Allow batches over the server's running-request cap (they run in waves).
    #[arg(long)]
    pub enable_multi_batch: bool,
    /// Adapters for `lora_path` (one: every prompt; more: per prompt).
    #[arg(long, num_args = 0..)]
    pub lora_name: Option<Vec<String>>,
    #[arg(long, value_enum, default_value = "uniform")]
    pub lora_request_distribution: LoraSpread,
    #[arg(long, default_value_t = 1.1)]
    pub lora_zipf_alpha: f64,
    /// Tokenizer for text inputs (default: the server's tokenizer_path).
    #[arg(long, default_value = "")]
    pub local_tokenizer_path: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long)]
    pub skip_warmup: bool,
    #[arg(long)]
    pub skip_token_capacity_check: bool,
    /// Print the summary table after the run.
    #[arg(long)]
    pub show_report: bool,
    /// Appended with one line per case (twice with --profile); "" writes none.
    #[arg(long, default_value = "result.jsonl")]
    pub result_filename: String,
    /// A JSON array of the results in nightly_bench_utils' model.
    #[arg(long)]
    pub pydantic_result_filename: Option<PathBuf>,
    #[arg(long, num_args = 0..)]
    pub server_args_for_metrics: Option<Vec<String>>,
    /// Do not append the report to $GITHUB_STEP_SUMMARY under SGLANG_IS_IN_CI.
    #[arg(long)]
    pub no_append_to_github_summary: bool,
    /// Rerun every case with a server-side profile of --profile-steps steps.
    #[arg(long)]
    pub profile: bool,
    #[arg(long, value_enum, num_args = 1.., default_values = ["CPU", "GPU"])]
    pub profile_activities: Vec<ServerActivity>,
    #[arg(long)]
    pub profile_start_step: Option<u64>,
    #[arg(long, default_value_t = 5)]
    pub profile_steps: u64,
    #[arg(long)]
    pub profile_by_stage: bool,
    /// Prepended to `bs-{bs}-il-{il}` (no separator, as upstream).
    #[arg(long)]
    pub profile_prefix: Option<String>,
    #[arg(long)]
    pub profile_output_dir: Option<PathBuf>,
    /// Seconds to wait for a profiled case's traces to be complete.
    #[arg(long, default_value_t = 120.0)]
    pub profile_wait_timeout: f64,
}

impl OneBatchServerArgs {
    pub fn config(&self) -> anyhow::Result<OneBatchServerConfig> {
        if self.backend == BatchBackend::Vllm {
            anyhow::bail!(
                "--backend vllm: loupe's one-batch-server sends SGLang's batched /generate only (vLLM's /v1/completions batch with /reset_prefix_cache is not implemented); use --backend sglang against an SGLang-API server"
            );
        }
        let dataset = match self.dataset_name {
            BatchDataset::Random => DatasetName::Random,
            BatchDataset::RandomIds => DatasetName::RandomIds,
            BatchDataset::GeneratedSharedPrefix => DatasetName::GeneratedSharedPrefix,
            BatchDataset::Sharegpt => DatasetName::Sharegpt,
            BatchDataset::Custom => DatasetName::Custom,
            BatchDataset::LongbenchV2 => DatasetName::LongbenchV2,
            BatchDataset::Mmmu => anyhow::bail!(
                "--dataset-name mmmu: its requests carry images (image_data), which this \
                 one-batch-server does not send; use random, random-ids, generated-shared-prefix, sharegpt, custom or \
                 longbench_v2"
            ),
        };
        let input_len_list = if self.input_len_list.is_empty() {
            None
        } else {
            Some(
                self.input_len_list
                    .split(',')
                    .map(|v| v.trim().parse::<usize>().ok().filter(|&n| n > 0))
                    .collect::<Option<Vec<usize>>>()
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "--input-len-list must be comma-separated positive integers, got {:?}",
                            self.input_len_list
                        )
                    })?,
            )
        };
        let lora = self
            .lora_name
            .as_ref()
            .filter(|n| !n.is_empty())
            .map(|names| LoraChoice {
                names: names.clone(),
                distribution: match self.lora_request_distribution {
                    LoraSpread::Uniform => LoraDistribution::Uniform,
                    LoraSpread::Distinct => LoraDistribution::Distinct,
                    LoraSpread::Skewed => LoraDistribution::Skewed,
                },
                zipf_alpha: self.lora_zipf_alpha,
            });
        if self.lora_zipf_alpha.partial_cmp(&1.0) != Some(std::cmp::Ordering::Greater) {
            anyhow::bail!(
                "--lora-zipf-alpha must be > 1, got {}",
                self.lora_zipf_alpha
            );
        }
        let target = match &self.base_url {
            Some(u) => Target::Url(u.clone()),
            None => {
                let mut sc = ServerConfig::from(self.server.clone());
                // The in-process server binds a free port unless one was asked for.
                if sc.port == 30000 {
                    sc.port = 0;
                }
                // cache_hit_rate is read from its /metrics.
                sc.enable_metrics = true;
                Target::Embedded(Box::new(sc))
            }
        };
        let profile = if self.profile {
            let dir = self.profile_output_dir.clone().unwrap_or_else(profiler_dir);
            Some(ServerProfile {
                activities: self
                    .profile_activities
                    .iter()
                    .map(|a| a.name().to_string())
                    .collect(),
                start_step: self.profile_start_step,
                steps: self.profile_steps,
                by_stage: self.profile_by_stage,
                prefix: self.profile_prefix.clone(),
                output_dir: std::path::absolute(&dir)?,
                wait: Duration::from_secs_f64(self.profile_wait_timeout.max(0.0)),
            })
        } else {
            None
        };
        Ok(OneBatchServerConfig {
            target,
            api_key: self.bench_api_key.clone(),
            run_name: self.run_name.clone(),
            batch_sizes: self.batch_size.clone(),
            input_lens: self.input_len.clone(),
            output_lens: self.output_len.clone(),
            temperature: self.temperature,
            ignore_eos: !self.disable_ignore_eos,
            return_logprob: self.return_logprob,
            stream_interval: self.client_stream_interval,
            dataset,
            dataset_path: self.dataset_path.clone(),
            gsp: BatchGsp {
                num_groups: self.gsp_num_groups,
                system_prompt_len: self.gsp_system_prompt_len,
                question_len: self.gsp_question_len,
                output_len: self.gsp_output_len,
            },
            fixed_prompt: (!self.fixed_prompt_file.is_empty())
                .then(|| PathBuf::from(&self.fixed_prompt_file)),
            apply_chat_template: self.apply_chat_template,
            input_len_list,
            cache_hit_rate: self.cache_hit_rate,
            parallel_batch: self.parallel_batch,
            fake_prefill: self.fake_prefill,
            flush_hicache_storage: self.flush_hicache_storage,
            enable_multi_batch: self.enable_multi_batch,
            lora,
            tokenizer: (!self.local_tokenizer_path.is_empty())
                .then(|| self.local_tokenizer_path.clone()),
            seed: self.seed,
            skip_warmup: self.skip_warmup,
            skip_token_capacity_check: self.skip_token_capacity_check,
            result_file: (!self.result_filename.is_empty())
                .then(|| PathBuf::from(&self.result_filename)),
            profile,
            request_timeout: Duration::from_secs(600),
        })
    }
}

/// Upstream's per-case lines.
struct Lines {
    ignore_eos: bool,
    profile_steps: u64,
    by_stage: bool,
}

fn python_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

fn case_lines(r: &CaseResult, ignore_eos: bool) {
    println!("batch size: {}", r.batch_size);
    println!("input_len: {}", r.input_len);
    println!("output_len: {}", r.output_len);
    println!("latency: {:.2} s", r.latency);
    println!("input throughput: {:.2} tok/s", r.input_throughput);
    if r.output_len != 1 {
        println!("output throughput: {:.2} tok/s", r.output_throughput);
    }
    println!("last_ttft: {:.2} s", r.last_ttft);
    println!(
        "last generation throughput: {:.2} tok/s",
        r.last_gen_throughput
    );
    if r.acc_length > 0.0 {
        println!("acc_length: {:.2} ", r.acc_length);
    }
    if let Some(c) = r.cache_hit_rate {
        println!("cache hit rate: {c:.4}");
    }
    if !ignore_eos {
        println!(
            "total output tokens: {} (requested {})",
            r.total_output_tokens,
            r.batch_size * r.output_len
        );
        println!(
            "early-stopped requests: {}/{}",
            r.num_early_stopped, r.batch_size
        );
        match (r.steady_state_output_throughput, r.steady_state_window_s) {
            (Some(t), Some(w)) => println!(
                "steady-state output throughput: {t:.2} tok/s over a {w:.2} s full-batch window"
            ),
            _ => println!(
                "WARNING: no steady-state full-batch window (a request finished before the last \
                 one started decoding); steady-state metrics are n/a."
            ),
        }
    }
}

impl ServerObserver for Lines {
    fn event(&self, event: &ServerEvent<'_>) {
        match event {
            ServerEvent::Embedded(url) => eprintln!("loupe: reference server started at {url}"),
            ServerEvent::Limits {
                max_running_requests_per_dp,
                num_dp_ranks,
                max_running_requests,
                token_capacity,
            } => {
                let show = |v: Option<String>| v.unwrap_or_else(|| "inf".into());
                println!(
                    "max_running_requests_per_dp={}",
                    max_running_requests_per_dp.unwrap_or(-1)
                );
                println!("num_dp_ranks={num_dp_ranks}");
                println!(
                    "skip_max_running_requests_threshold={}",
                    show(max_running_requests.map(|v| v.to_string()))
                );
                println!(
                    "skip_token_capacity_threshold={}",
                    show(token_capacity.map(|v| format!("{}", v as u64)))
                );
            }
            ServerEvent::WarmupBegin(sizes) => {
                println!("======== Warmup Begin ========");
                println!("Warmup with batch_size={sizes:?}");
            }
            ServerEvent::WarmupEnd => println!("======== Warmup End   ========\n"),
            ServerEvent::CaseDone(r) => case_lines(r, self.ignore_eos || r.run_name.is_empty()),
            ServerEvent::ProfileStarted(dir) => {
                println!("Dump profiling traces to {}", dir.display());
                println!(
                    "Waiting for {} steps and the trace to be flushed.... (profile_by_stage={})",
                    self.profile_steps,
                    python_bool(self.by_stage)
                );
            }
            ServerEvent::ProfileFiles { files, complete } => {
                if *complete {
                    eprintln!("loupe: {} trace file(s) written", files.len());
                } else {
                    eprintln!(
                        "loupe: the profile's traces were not complete in time ({} file(s) so far)",
                        files.len()
                    );
                }
            }
            ServerEvent::ProfileFailed(e) => {
                println!("Error profiling, some profile traces may not be dumped: {e}")
            }
            ServerEvent::NoMetrics(why) => eprintln!("warning: {why}"),
        }
    }
}

/// tabulate's `github` table: numbers right-aligned, text left-aligned.
fn github_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let numeric = |s: &str| s.parse::<f64>().is_ok();
    let widths: Vec<usize> = (0..headers.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len())
                .chain([headers[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let right: Vec<bool> = (0..headers.len())
        .map(|c| !rows.is_empty() && rows.iter().all(|r| numeric(&r[c])))
        .collect();
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(c, s)| {
                let w = widths[c];
                if right[c] {
                    format!(" {s:>w$} ")
                } else {
                    format!(" {s:<w$} ")
                }
            })
            .collect();
        format!("|{}|", parts.join("|"))
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
    out.push_str(&format!("|{}|", rule.join("|")));
    for r in rows {
        out.push('\n');
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// upstream's `get_report_summary`.
fn report(args: &OneBatchServerArgs, results: &[CaseResult]) -> String {
    let mut summary = format!(
        "\nInput lens: {:?}. Output lens: {:?}.\n",
        args.input_len, args.output_len
    );
    // $2/h for one H100, times the local --tp-size (as upstream prices it).
    let hourly = 2.0 * args.server.tp_size as f64;
    let mut headers = vec![
        "batch size",
        "input len",
        "latency (s)",
        "input throughput (tok/s)",
        "output throughput (tok/s)",
        "acc length",
        "ITL (ms)",
        "input cost ($/1M)",
        "output cost ($/1M)",
        "cache hit rate",
    ];
    if args.disable_ignore_eos {
        headers.extend([
            "steady output throughput (tok/s)",
            "steady ITL (ms)",
            "early stops",
        ]);
    }
    if args.profile {
        headers.push("profile");
    }
    let mut sorted: Vec<&CaseResult> = results.iter().collect();
    sorted.sort_by_key(|r| r.input_len);
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|r| {
            let (itl, out_cost) = if r.output_throughput > 0.0 {
                (
                    format!("{:.2}", 1000.0 * r.batch_size as f64 / r.output_throughput),
                    format!("{:.2}", 1e6 / r.output_throughput / 3600.0 * hourly),
                )
            } else {
                ("n/a".into(), "n/a".into())
            };
            let mut row = vec![
                r.batch_size.to_string(),
                r.input_len.to_string(),
                format!("{:.2}", r.latency),
                format!("{:.2}", r.input_throughput),
                format!("{:.2}", r.output_throughput),
                if r.acc_length > 0.0 {
                    format!("{:.2}", r.acc_length)
                } else {
                    "n/a".into()
                },
                itl,
                format!("{:.2}", 1e6 / (r.input_throughput * 0.7) / 3600.0 * hourly),
                out_cost,
                r.cache_hit_rate.map_or("n/a".into(), |c| format!("{c:.4}")),
            ];
            if args.disable_ignore_eos {
                match r.steady_state_output_throughput {
                    Some(t) => row.extend([
                        format!("{t:.2}"),
                        format!("{:.2}", 1000.0 * r.batch_size as f64 / t),
                    ]),
                    None => row.extend(["n/a".into(), "n/a".into()]),
                }
                row.push(format!("{}/{}", r.num_early_stopped, r.batch_size));
            }
            if args.profile {
                row.push(
                    r.profile_link
                        .as_ref()
                        .map_or("n/a".into(), |d| format!("[Profile]({})", d.display())),
                );
            }
            row
        })
        .collect();
    summary.push_str(&github_table(&headers, &rows));
    summary.push('\n');
    summary
}

pub async fn run(args: OneBatchServerArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config()?;
    let lines = Lines {
        ignore_eos: cfg.ignore_eos,
        profile_steps: args.profile_steps,
        by_stage: args.profile_by_stage,
    };
    let outcome = one_batch_server::run(&cfg, &lines).await?;
    if let Some(path) = &args.pydantic_result_filename {
        let model = outcome.server_info["model_path"]
            .as_str()
            .unwrap_or(&args.server.model_path)
            .to_string();
        let records: Vec<_> = outcome
            .results
            .iter()
            .map(|r| {
                one_batch_server::pydantic_record(
                    r,
                    &model,
                    args.server_args_for_metrics.as_deref(),
                )
            })
            .collect();
        let text = serde_json::to_string_pretty(&records)?;
        loupe_trace::export::write_atomic(path, |w| std::io::Write::write_all(w, text.as_bytes()))?;
    }
    println!("\nResults are saved to {}", args.result_filename);
    if args.show_report {
        let summary = report(&args, &outcome.results);
        println!("{summary}");
        if std::env::var_os("SGLANG_IS_IN_CI").is_some()
            && !args.no_append_to_github_summary
            && let Some(p) = std::env::var_os("GITHUB_STEP_SUMMARY")
        {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)?;
            std::io::Write::write_all(&mut f, summary.as_bytes())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_tables_align_numbers_right() {
        let t = github_table(
            &["batch size", "profile"],
            &[vec!["16".into(), "n/a".into()]],
        );
        assert_eq!(
            t,
            "| batch size | profile |\n|------------|---------|\n|         16 | n/a     |"
        );
    }
}
