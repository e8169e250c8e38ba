//! `loupe run`.

use std::process::ExitCode;

pub use loupe_run::RunArgs;

/// Exit 1 when a phase failed, 2 when the job itself is invalid or cannot start.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    Ok(match loupe_run::run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    })
}
