//! Talking to a running inference server, of any engine that speaks SGLang's (or vLLM's)
//! control API: readiness, model and server info, cache flush, `/metrics` scraping, profile
//! start/stop/status, and the one loop that waits until a profile's files are complete.
//!
//! It also holds the wire types of the profiling conversation, used by both ends:
//! [`StartProfile`] is the `/start_profile` body with SGLang's keys (read as leniently as
//! SGLang reads it), [`ProfileStatus`] is loupe's `/profile_status`. loupe's own server
//! (through loupe-profiler) reads and writes these types, so client and server cannot drift.
//!
//! With the default `http` feature the crate is an async HTTP client ([`Server`], reqwest and
//! tokio); without it, only what needs no network: the wire types, the Prometheus text
//! parser ([`metrics`]), the completion rule ([`wait`]) and Nsight Systems session driving
//! ([`nsys`]).
//!
//! Not here: generating load (crates/bench has its own transport for timed requests), reading
//! traces (crates/trace; the wait loop takes a predicate for which files count), flags and
//! printing (crates/cli). The crate logs through `tracing` and never prints.

pub mod engine;
pub mod metrics;
pub mod nsys;
pub mod start;
pub mod status;
pub mod trtllm;
pub mod vllm;
pub mod wait;
pub mod watch;

#[cfg(feature = "http")]
mod control;
#[cfg(feature = "http")]
mod error;
#[cfg(feature = "http")]
mod server;

#[cfg(feature = "http")]
pub use control::ProfileError;
pub use engine::{Detected, Engine, Evidence};
#[cfg(feature = "http")]
pub use error::{ClientError, ErrorKind, SetupError};
pub use metrics::{MetricsError, Sample};
#[cfg(feature = "http")]
pub use server::{Server, headers, http_client};
pub use start::{BodyError, LaxInt, StartProfile};
pub use status::{ProfileState, ProfileStatus};
pub use wait::{CompletionRule, Observation, list_outputs};
#[cfg(feature = "http")]
pub use wait::{FilesOutcome, WaitFor, Watched};
