//! A load generator with SGLang bench_serving's settings, metric definitions and JSONL keys,
//! and the client side of server profiling. A plan in, an outcome out: a front end fills a
//! [`BenchPlan`] and calls [`run`], which follows the run through a [`BenchObserver`] and
//! returns a [`BenchOutcome`] holding every request record and metric of every run.
//!
//! A run is: a dataset (`dataset`) and an arrival schedule (`arrival`), computed before the
//! run; request bodies serialized before the run (`client`); one pooled HTTP client, one task
//! per request, a dispatcher thread for the schedule (`driver`); timestamps taken as bytes
//! arrive (`http1`, `recv`, over `framing`) and chunks parsed only for what the metrics need
//! (`sse`, `chunk`); raw timings per request (`record`); metrics afterwards, bench_serving's
//! (`metrics`) and loupe's own (`beyond`); outputs (`report`: the JSONL record, `summary`: the
//! CSVs). With [`ServerTarget::Embedded`] it starts the reference server in-process and
//! benchmarks that.
//!
//! Not here: flags, progress bars and terminal tables (crates/cli), trace analysis
//! (crates/trace; a profiled run lists its trace files and leaves the summary to
//! `profile::summarize_traces`), and the server itself (crates/server).

pub mod arrival;
pub mod beyond;
pub mod chunk;
pub mod client;
pub mod control;
pub mod dataset;
pub mod discover;
pub mod driver;
pub mod error;
pub mod framing;
pub mod http1;
pub mod metrics;
pub mod observer;
pub mod outcome;
pub mod plan;
pub mod point;
pub mod points;
pub mod profile;
pub mod record;
#[cfg(target_os = "linux")]
pub mod recv;
pub mod report;
pub mod request_keys;
pub mod run;
pub mod scrape;
pub mod search;
pub mod session;
pub mod sse;
pub mod summary;
pub mod timings;
pub mod tokenizer;
pub mod turns;
pub mod windows;

pub use error::BenchError;
pub use observer::{BenchObserver, Quiet};
pub use outcome::{BenchOutcome, RunOutcome};
pub use plan::{BenchPlan, PlanError, ServerTarget};
pub use run::run;
