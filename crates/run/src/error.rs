//! What can go wrong in `loupe run`, below every other module of the crate.

use std::path::{Path, PathBuf};

use crate::job::JobError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The job file cannot be read, parsed or validated.
    #[error(transparent)]
    Job(#[from] JobError),
    /// `profiling.type: nsys` without an nsys binary.
    #[error(
        "{file}: profiling.type nsys needs Nsight Systems: '{bin}' is not installed (install nsys or set SRTCTL_NSYS_BIN)"
    )]
    NsysMissing { file: PathBuf, bin: String },
    #[error("{0}")]
    Failed(String),
    /// A whole-file write whose error already names the file (`write_atomic`'s).
    #[error(transparent)]
    Write(std::io::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RunError {
    /// Whether the job could not start at all (invalid file, missing tool), as opposed to a
    /// run that started and failed.
    pub fn is_invalid_job(&self) -> bool {
        matches!(self, RunError::Job(_) | RunError::NsysMissing { .. })
    }
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}
