//! Profiling errors, each with the HTTP status the server answers with.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// The request itself is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// Start while a profile runs, stop while none does (409), with SGLang's message text.
    #[error("{0}")]
    Conflict(String),
    /// `output_dir` outside `--profile-output-root` (403).
    #[error("{0}")]
    Forbidden(String),
    /// Writing the trace files failed (500); names the file.
    #[error("{0}")]
    Export(String),
}

impl ProfileError {
    pub fn status(&self) -> u16 {
        match self {
            ProfileError::BadRequest(_) => 400,
            ProfileError::Conflict(_) => 409,
            ProfileError::Forbidden(_) => 403,
            ProfileError::Export(_) => 500,
        }
    }
}

/// SGLang's scheduler messages, kept verbatim for clients that match on them.
pub const ALREADY_RUNNING: &str = "Profiling is already in progress. Call /stop_profile first.";
pub const NOT_RUNNING: &str = "Profiling is not in progress. Call /start_profile first.";
