//! One error type for every reader, analysis and writer. Each variant names the file and, for
//! malformed content, the byte offset, so a user can find the problem with `head -c`/`zcat`.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },

    /// Malformed JSON. `offset` counts bytes of the JSON text, i.e. after decompression for
    /// `.gz` inputs (`zcat FILE | head -c OFFSET` shows what precedes the problem).
    #[error("{}: invalid JSON at byte {offset}{}: {message}", path.display(), if *.compressed { " of the decompressed stream" } else { "" })]
    Json {
        path: PathBuf,
        offset: u64,
        compressed: bool,
        message: String,
    },

    #[error("{}: corrupt or truncated gzip data after {offset} decompressed bytes: {source}", path.display())]
    Gzip {
        path: PathBuf,
        offset: u64,
        source: io::Error,
    },

    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },

    #[error("{}: SQLite: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error("{}: cannot write: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },

    /// The external sort's temporary files (large traces spill sorted runs to `$TMPDIR`).
    #[error("cannot use a temporary file in the system's temporary directory: {0}")]
    Temp(io::Error),

    /// A value that cannot be used (a bad `--time` range, an invalid rank regex, an output
    /// that is one of the inputs).
    #[error("{0}")]
    Usage(String),
}

impl TraceError {
    pub fn read(path: &Path, source: io::Error) -> Self {
        TraceError::Read {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn format(path: &Path, message: impl Into<String>) -> Self {
        TraceError::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    pub fn sqlite(path: &Path, source: rusqlite::Error) -> Self {
        TraceError::Sqlite {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn write(path: &Path, source: io::Error) -> Self {
        TraceError::Write {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The process exit status for this error: 2 for anything wrong with the inputs or the
    /// arguments (the user must change something), 1 when an output could not be written.
    pub fn exit_code(&self) -> u8 {
        match self {
            TraceError::Write { .. } | TraceError::Temp(_) => 1,
            _ => 2,
        }
    }
}

pub type Result<T, E = TraceError> = std::result::Result<T, E>;
