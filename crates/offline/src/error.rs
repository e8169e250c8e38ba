//! What can go wrong in an offline benchmark; every message names the flag, file or URL.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// A flag's value, or a combination of flags, that cannot run; names the flag.
    #[error("{0}")]
    Flag(String),
    #[error("cannot load the model: {0}")]
    Engine(#[from] loupe_engine::EngineError),
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Trace(#[from] loupe_trace::TraceError),
    /// The server answered, but not as an SGLang-API server would; names the URL and reply.
    #[error("{0}")]
    Server(String),
    #[error(transparent)]
    Client(#[from] loupe_client::ClientError),
}

impl OfflineError {
    pub(crate) fn file(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        OfflineError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}
