//! The one error type of `loupe bench` and `loupe profile`. Every message says what was wrong,
//! where (flag, URL, file) and, where there is one, what to do about it.

/// What stopped a benchmark or a profiling command before it could report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A setting is wrong, missing, or asks for something loupe does not implement.
    #[error("{0}")]
    Usage(String),
    /// The plan's settings contradict each other or are out of range.
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    /// A control request (readiness, model info, flush, profiling) failed.
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    /// A dataset file could not be read or holds nothing usable.
    #[error("{path}: {message}")]
    Dataset { path: String, message: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
    /// An output file could not be written (the message names it).
    #[error("{0}")]
    Output(std::io::Error),
    /// The embedded reference server could not start or stop.
    #[error("embedded server: {0}")]
    Server(String),
    #[error("nsys: {0}")]
    Nsys(String),
}

impl BenchError {
    pub fn io(path: impl std::fmt::Display, err: std::io::Error) -> Self {
        BenchError::Io {
            path: path.to_string(),
            err,
        }
    }

    pub fn http(url: impl Into<String>, message: impl std::fmt::Display) -> Self {
        BenchError::Http {
            url: url.into(),
            message: message.to_string(),
        }
    }
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;
