//! `loupe bench`.

use std::process::ExitCode;

pub use loupe_bench::BenchArgs;

/// The exit code says whether every request of every run completed.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
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
