//! `loupe bench`: bench_serving's flags and everything they drive live in the sibling crate
//! loupe-cli-bench (crates/cli/bench), re-exported here; this module adds SGLang's offline
//! tools as subcommands (`one_batch.rs`, `one_batch_server.rs`, `offline.rs`, and
//! `key_averages.rs` for their profiles' table), which need loupe-offline and `loupe serve`'s
//! flags.

mod key_averages;
pub mod offline;
pub mod one_batch;
pub mod one_batch_server;

use std::process::ExitCode;

#[cfg(feature = "xlsx")]
pub use loupe_cli_bench::xlsx;
pub use loupe_cli_bench::{BenchArgs, args, execute, html, table, timings_path};

/// `loupe bench <tool>`: SGLang's offline benchmarks, each with its own flags.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum OfflineTool {
    /// `python -m sglang.benchmark.one_batch`: the model batch by batch, no server, no queue.
    OneBatch(one_batch::OneBatchArgs),
    /// `python -m sglang.benchmark.one_batch_server`: each batch as one streamed /generate.
    OneBatchServer(Box<one_batch_server::OneBatchServerArgs>),
    /// `python -m sglang.benchmark.offline_throughput`: every prompt to the in-process engine.
    Offline(offline::OfflineArgs),
}

/// `loupe bench [TOOL]`: one of SGLang's offline tools, or bench_serving's flags.
#[derive(clap::Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchCommand {
    /// SGLang's offline tools; without one, bench_serving's flags below.
    #[command(subcommand)]
    pub tool: Option<OfflineTool>,
    #[command(flatten)]
    pub args: BenchArgs,
}

/// The exit code says whether every request of every run completed.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    if let Some(tool) = cmd.tool {
        return match tool {
            OfflineTool::OneBatch(a) => one_batch::run(a).await,
            OfflineTool::OneBatchServer(a) => one_batch_server::run(*a).await,
            OfflineTool::Offline(a) => offline::run(a).await,
        };
    }
    let outcome = execute(cmd.args).await?;
    if outcome.success() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "error: the benchmark failed: {} of {} requests did not complete (results were written)",
        outcome.failed(),
        outcome.requests()
    );
    Ok(ExitCode::from(1))
}
