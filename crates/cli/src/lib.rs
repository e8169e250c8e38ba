//! loupe's command layer, and the only one: every clap struct, default, progress bar,
//! terminal print and exit code of `loupe serve|bench|profile|trace|run` lives here, one
//! module per command (`cmd/`). The library crates below take plain config structs, return
//! typed outcomes and log through `tracing`; they never print and never parse flags.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod cmd;

#[derive(Parser)]
#[command(
    name = "loupe",
    version,
    about = "Find out where the time goes in LLM inference serving"
)]
pub struct Cli {
    /// Log filter (e.g. info, debug, loupe_engine=debug). Default: info, except the embedded
    /// server's scheduler lines during `bench` (warn).
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start-up: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
    /// Run the reference inference server with SGLang's HTTP API.
    Serve(cmd::serve::ServeArgs),
    /// Benchmark a server (by default, the embedded reference server).
    Bench(cmd::bench::BenchCommand),
    /// Start, stop and watch server-side profiling; drive Nsight Systems sessions.
    Profile(cmd::profile::ProfileArgs),
    /// Summarise, compare ranks, merge, slice, diff and convert profiler traces.
    Trace(cmd::trace::TraceArgs),
    /// Run an srtctl-style profiling job: launch servers, profile each phase, collect.
    Run(cmd::run::RunArgs),
    /// Watch servers' /metrics live per DP rank; profile when a rule fires.
    Watch(cmd::watch::WatchArgs),
    /// Rebuild an HTML report from saved outputs (request timings, traces).
    Report(cmd::report::ReportArgs),
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Parse the process's arguments, set up logging, run the command, map its outcome to an
/// exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Command::Bench(_) => "info,loupe_engine=warn",
        _ => "info",
    };
    init_logging(cli.log_level.as_deref().unwrap_or(default_filter));
    match cli.command {
        Command::Serve(args) => run_async(cmd::serve::run(args)),
        Command::Bench(args) => run_async(cmd::bench::run(args)),
        Command::Profile(args) => run_async(cmd::profile::run(args)),
        Command::Run(args) => run_async(cmd::run::run(args)),
        Command::Watch(args) => run_async(cmd::watch::run(args)),
        // Synchronous, no runtime.
        Command::Trace(args) => cmd::trace::run(args),
        Command::Report(args) => cmd::report::run(args),
    }
}

/// Run an async command on a multi-threaded runtime; an error that escapes the command is
/// printed and exits 1.
pub fn run_async(job: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(job) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
