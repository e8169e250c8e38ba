//! `loupe profile nsys start|stop|list`: Nsight Systems' interactive sessions, for a server
//! launched under `nsys launch --session-new=NAME ...` (or `nsys profile --start-later=true
//! --session-new=NAME ...`). `start`/`stop` may repeat; the server keeps running. loupe only
//! builds and runs the nsys command lines; nsys writes the reports.

use std::path::PathBuf;
use std::process::Command;

use crate::error::{BenchError, Result};

#[derive(clap::Args, Debug, Clone)]
pub struct NsysArgs {
    #[command(subcommand)]
    pub command: NsysCommand,
    /// The nsys executable.
    #[arg(long, env = "LOUPE_NSYS", default_value = "nsys", global = true)]
    pub nsys: String,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum NsysCommand {
    /// Begin a capture in a session (`nsys start --session=NAME`); arguments after `--` go to
    /// nsys (e.g. `-- --output run1`).
    Start {
        #[arg(long)]
        session: String,
        #[arg(last = true)]
        extra: Vec<String>,
    },
    /// End the capture and write its report (`nsys stop --session=NAME`).
    Stop {
        #[arg(long)]
        session: String,
    },
    /// The sessions nsys knows (`nsys sessions list`).
    List,
}

impl NsysCommand {
    /// The nsys arguments for this command.
    pub fn nsys_args(&self) -> Vec<String> {
        match self {
            NsysCommand::Start { session, extra } => {
                let mut a = vec!["start".to_string(), format!("--session={session}")];
                a.extend(extra.iter().cloned());
                a
            }
            NsysCommand::Stop { session } => vec!["stop".into(), format!("--session={session}")],
            NsysCommand::List => vec!["sessions".into(), "list".into()],
        }
    }
}

/// `nsys` on PATH (or the path given), or a clear error.
pub fn find_nsys(nsys: &str) -> Result<PathBuf> {
    let candidate = PathBuf::from(nsys);
    if candidate.components().count() > 1 {
        return if candidate.is_file() {
            Ok(candidate)
        } else {
            Err(not_installed(nsys))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(nsys))
        .find(|p| p.is_file())
        .ok_or_else(|| not_installed(nsys))
}

fn not_installed(nsys: &str) -> BenchError {
    BenchError::Nsys(format!(
        "'{nsys}' not found: Nsight Systems is not installed here (or not on PATH). Install it \
         from NVIDIA (the nsys CLI ships with the CUDA toolkit and as a standalone package), or \
         point --nsys / $LOUPE_NSYS at the executable"
    ))
}

/// Run the nsys command; its output goes to the terminal. Returns its exit status as an error
/// when it failed.
pub fn run(args: &NsysArgs) -> Result<()> {
    let exe = find_nsys(&args.nsys)?;
    let argv = args.command.nsys_args();
    let status = Command::new(&exe)
        .args(&argv)
        .status()
        .map_err(|e| BenchError::Nsys(format!("cannot run {}: {e}", exe.display())))?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::Nsys(format!(
            "`{} {}` failed ({status}); `loupe profile nsys list` shows the sessions",
            exe.display(),
            argv.join(" ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        let start = NsysCommand::Start {
            session: "s1".into(),
            extra: vec!["--output".into(), "r1".into()],
        };
        assert_eq!(
            start.nsys_args(),
            ["start", "--session=s1", "--output", "r1"]
        );
        assert_eq!(
            NsysCommand::Stop {
                session: "s1".into()
            }
            .nsys_args(),
            ["stop", "--session=s1"]
        );
        assert_eq!(NsysCommand::List.nsys_args(), ["sessions", "list"]);
    }

    #[test]
    fn missing_nsys_is_a_clear_error() {
        let e = find_nsys("nsys-that-does-not-exist")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Nsight Systems is not installed"), "{e}");
        let e = find_nsys("/no/such/dir/nsys").unwrap_err().to_string();
        assert!(e.contains("/no/such/dir/nsys"), "{e}");
    }
}
