//! Nsight Systems' interactive sessions, for a server launched under
//! `nsys launch --session-new=NAME ...` (or `nsys profile --start-later=true
//! --session-new=NAME ...`): `start`/`stop` may repeat while the server keeps running. This
//! only builds and runs the nsys command lines; nsys writes the reports (and its own output
//! goes to the inherited terminal).

use std::path::PathBuf;
use std::process::Command;

/// One nsys session command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsysCommand {
    /// Begin a capture in a session (`nsys start --session=NAME`), with extra nsys arguments
    /// (e.g. `--output run1`).
    Start { session: String, extra: Vec<String> },
    /// End the capture and write its report (`nsys stop --session=NAME`).
    Stop { session: String },
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

#[derive(Debug, thiserror::Error)]
pub enum NsysError {
    #[error(
        "nsys: '{0}' not found: Nsight Systems is not installed here (or not on PATH). Install \
         it from NVIDIA (the nsys CLI ships with the CUDA toolkit and as a standalone package), \
         or point --nsys / $LOUPE_NSYS at the executable"
    )]
    NotInstalled(String),
    #[error("nsys: cannot run {exe}: {err}")]
    Spawn { exe: PathBuf, err: std::io::Error },
    #[error("nsys: `{command}` failed ({status}); `loupe profile nsys list` shows the sessions")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
    },
}

/// `nsys` on PATH (or the path given), or a clear error.
pub fn find_nsys(nsys: &str) -> Result<PathBuf, NsysError> {
    let not_installed = || NsysError::NotInstalled(nsys.to_string());
    let candidate = PathBuf::from(nsys);
    if candidate.components().count() > 1 {
        return if candidate.is_file() {
            Ok(candidate)
        } else {
            Err(not_installed())
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(nsys))
        .find(|p| p.is_file())
        .ok_or_else(not_installed)
}

/// Run `command` with the nsys executable `nsys` (a name on PATH or a path); a failing exit
/// status is an error.
pub fn run(nsys: &str, command: &NsysCommand) -> Result<(), NsysError> {
    let exe = find_nsys(nsys)?;
    let argv = command.nsys_args();
    tracing::debug!("running {} {}", exe.display(), argv.join(" "));
    let status = Command::new(&exe)
        .args(&argv)
        .status()
        .map_err(|err| NsysError::Spawn {
            exe: exe.clone(),
            err,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(NsysError::Failed {
            command: format!("{} {}", exe.display(), argv.join(" ")),
            status,
        })
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

    #[test]
    fn a_failing_nsys_names_its_command() {
        // `false` stands in for an nsys that refuses (e.g. an unknown session).
        let exe = find_nsys("false").expect("false(1) is on PATH");
        let e = run(exe.to_str().unwrap(), &NsysCommand::List).unwrap_err();
        assert!(
            matches!(&e, NsysError::Failed { command, .. } if command.ends_with("sessions list")),
            "{e}"
        );
    }
}
