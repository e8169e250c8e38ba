//! `loupe profile`.

use std::process::ExitCode;

pub use loupe_bench::ProfileCli as ProfileArgs;

pub async fn run(args: ProfileArgs) -> anyhow::Result<ExitCode> {
    loupe_bench::profile::cli::run(args).await?;
    Ok(ExitCode::SUCCESS)
}
