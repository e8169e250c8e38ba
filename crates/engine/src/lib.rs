//! loupe's reference inference engine: a real Llama-family model (Llama, Mistral, Qwen2) on
//! the CPU in f32, with SGLang's scheduling model — paged KV pool, radix prefix cache,
//! continuous batching with chunked prefill and retraction, tensor parallelism over rank
//! threads and data parallelism over scheduler groups.
//!
//! Not here: HTTP (crates/server), trace files (crates/profiler). The engine exposes its
//! steps through [`observer::StepObserver`] and nothing else.

pub mod attention;
pub mod collective;
pub mod config;
pub mod engine;
pub mod error;
pub mod kernels;
pub mod kv;
pub mod matmul;
pub mod model;
pub mod observer;
pub mod parallel;
pub mod request;
pub mod runner;
pub mod sampling;
pub mod scheduler;
pub mod simd;
pub mod tokenizer;
pub mod weights;

pub use config::{ModelConfig, ModelSource, Preset};
pub use engine::{Engine, EngineArgs, LoadBalance, SubmitError};
pub use error::EngineError;
pub use request::{FinishReason, GenerateRequest, RequestOutput};
pub use runner::ModelRunner;
pub use sampling::SamplingParams;
pub use scheduler::{SchedulePolicy, SchedulerStats};
pub use tokenizer::{ChatMessage, Tokenizer};
pub use weights::LoadFormat;
