//! SGLang's three offline benchmarks, with their measurements, result keys and profiling:
//! `one_batch` (`python -m sglang.benchmark.one_batch`: the model driven batch by batch, no
//! server, no scheduler queue), `one_batch_server` (`sglang.benchmark.one_batch_server`: the
//! whole batch as one streamed `/generate` against any SGLang-API server) and `throughput`
//! (`sglang.benchmark.offline_throughput`: every prompt handed to the in-process engine at
//! once). `key_averages` folds a trace they wrote into torch's `key_averages` table rows.
//!
//! Not here: flags and terminal lines (crates/cli follows each run through its observer and
//! prints SGLang's lines), the engine (crates/engine), trace writing (crates/profiler's Kineto
//! writer), datasets (crates/bench).

pub mod error;
pub mod jsonl;
pub mod key_averages;
pub mod one_batch;
pub mod one_batch_server;
pub mod throughput;

pub use error::OfflineError;
