//! SGLang's server-side profiling system for loupe's reference engine: `/start_profile` and
//! `/stop_profile` semantics (step windows, `num_steps`, by-stage captures, activities, file
//! names, output directories), with SGLang's defects fixed, and the writers that turn
//! captured steps into Kineto-compatible traces, memory snapshots and RPD files.
//!
//! The profiler sees the engine only through `loupe_engine::observer::StepObserver`; it knows
//! nothing of HTTP (the server maps its errors to status codes). Its request body and status
//! are loupe-client's wire types (`StartProfile`, `ProfileStatus`), so loupe's clients and its
//! server read and write the same shapes.

pub mod capture;
pub mod error;
pub mod kineto;
mod memory;
pub mod profiler;
pub mod request;
mod rpd;
pub mod window;
mod writer;

pub use error::ProfileError;
pub use loupe_client::{ProfileState, ProfileStatus, StartProfile};
pub use profiler::{Outcome, Profiler, ProfilerConfig};
pub use request::{Activity, StartRequest};
