//! `loupe bench`: a load generator with SGLang bench_serving's flags,
//! metric definitions and JSONL keys, and the client side of server profiling.
//!
//! A run is: a dataset (`dataset`) and an arrival schedule (`arrival`), computed before the
//! run; request bodies serialized before the run (`client`); one pooled HTTP client, one task
//! per request, a dispatcher thread for the schedule (`driver`); timestamps taken as bytes
//! arrive and chunks parsed only for what the metrics need (`sse`, `chunk`); raw timings per
//! request (`record`); metrics afterwards, bench_serving's (`metrics`) and loupe's own
//! (`beyond`); reports (`report`, `summary`). Without `--base-url` it starts the reference
//! server in-process and benchmarks that.
//!
//! Not here: trace analysis (crates/trace; a profiled run lists its trace files and leaves
//! the summary to `profile::summarize_traces`), and the server itself (crates/server).

pub mod args;
pub mod arrival;
pub mod beyond;
pub mod chunk;
pub mod client;
pub mod control;
pub mod dataset;
pub mod driver;
pub mod error;
pub mod http1;
pub mod metrics;
pub mod point;
pub mod profile;
pub mod record;
#[cfg(target_os = "linux")]
pub mod recv;
pub mod refused;
pub mod report;
pub mod run;
pub mod sse;
pub mod summary;
pub mod tokenizer;

pub use args::BenchArgs;
pub use error::BenchError;
pub use run::{BenchOutcome, run_cli};
