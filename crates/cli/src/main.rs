//! The `loupe` binary: argument parsing and wiring only. Every capability lives in a library
//! crate (engine, profiler, server, bench, trace, run) with its own tests.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "loupe",
    version,
    about = "Find out where the time goes in LLM inference serving"
)]
struct Cli {
    /// Log filter (e.g. info, debug, loupe_engine=debug). Default: info, except the embedded
    /// server's scheduler lines during `bench` (warn).
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the reference inference server with SGLang's HTTP API.
    Serve(loupe_server::ServeArgs),
    /// Benchmark a server (by default, the embedded reference server).
    Bench(loupe_bench::BenchArgs),
    /// Start, stop and watch server-side profiling; drive Nsight Systems sessions.
    Profile(loupe_bench::ProfileCli),
    /// Summarise, compare ranks, merge, slice, diff and convert profiler traces.
    Trace(loupe_trace::cli::TraceArgs),
    /// Run an srtctl-style profiling job: launch servers, profile each phase, collect.
    Run(loupe_run::RunArgs),
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn serve(args: loupe_server::ServeArgs) -> anyhow::Result<()> {
    let addr: std::net::SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .map_err(|e| anyhow::anyhow!("--host {} --port {}: {e}", args.host, args.port))?;
    let listener =
        loupe_server::bind(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let launch: Vec<String> = std::env::args().collect();
    let state = loupe_server::start_state(args, launch.join(" "))
        .await
        .map_err(anyhow::Error::msg)?;
    tracing::info!(
        "The server is fired up and ready to roll! Listening on http://{}",
        listener.local_addr()?
    );
    loupe_server::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
    .await?;
    Ok(())
}

/// The exit code says whether every request of every run completed.
async fn bench(args: loupe_bench::BenchArgs) -> anyhow::Result<ExitCode> {
    let outcome = loupe_bench::run_cli(args).await?;
    if outcome.success() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "error: the benchmark failed: {} of {} requests did not complete (results were written)",
        outcome.failed, outcome.requests
    );
    Ok(ExitCode::from(1))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Command::Bench(_) => "info,loupe_engine=warn",
        _ => "info",
    };
    init_logging(cli.log_level.as_deref().unwrap_or(default_filter));
    match cli.command {
        Command::Serve(args) => run_async(async { serve(args).await.map(|_| ExitCode::SUCCESS) }),
        Command::Bench(args) => run_async(bench(args)),
        Command::Profile(args) => run_async(async {
            loupe_bench::profile::cli::run(args)
                .await
                .map(|_| ExitCode::SUCCESS)
                .map_err(anyhow::Error::from)
        }),
        // Exit 1 when a phase failed, 2 when the job itself is invalid or cannot start.
        Command::Run(args) => run_async(async {
            Ok(match loupe_run::run(args).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            })
        }),
        // Synchronous, no runtime. Exit 2 for bad input, 1 when an output cannot be written.
        Command::Trace(args) => match loupe_trace::cli::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(e.exit_code())
            }
        },
    }
}

fn run_async(job: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
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
