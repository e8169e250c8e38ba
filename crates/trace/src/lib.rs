//! loupe-trace: profiler traces as streams.
//!
//! Kineto / Chrome-trace JSON (plain or gzip) is read event by event into one event model
//! ([`Event`], integer-nanosecond times); analyses fold over that stream (`summary`, `ranks`,
//! `diff`, the TraceLens GPU-timeline breakdown) and writers stream it back out (`merge`).
//! Memory stays bounded whatever the trace size: nothing holds every event, and what must be
//! sorted goes through an external sort.
//!
//! This crate is not a viewer and does not talk to servers: it reads files and writes files
//! and reports. It has no async code; the `loupe trace` command line lives in [`cli`].

pub mod analyze;
pub mod buffers;
pub mod cli;
pub mod error;
pub mod export;
pub mod external_sort;
pub mod import;
pub mod model;
pub mod rank;
mod render;
pub mod report;
pub mod time;

pub use error::{Result, TraceError};
pub use model::{Event, EventSink, Id, Phase, TraceInfo};
