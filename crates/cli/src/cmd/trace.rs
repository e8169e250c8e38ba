//! `loupe trace`.

use std::process::ExitCode;

pub use loupe_trace::cli::TraceArgs;

/// Exit 2 for bad input, 1 when an output cannot be written.
pub fn run(args: TraceArgs) -> ExitCode {
    match loupe_trace::cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
