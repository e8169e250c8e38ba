//! loupe-trace: profiler traces as streams.
//!
//! Kineto / Chrome-trace JSON (plain or gzip), AMD RPD, rocprofv3 rocpd and Nsight Systems
//! SQLite exports are read event by event into one event model ([`Event`],
//! integer-nanosecond times); analyses fold over that stream and return plain structs;
//! writers stream it back out. Memory stays bounded: nothing holds every event, what must be
//! sorted goes through an external sort, and the HTA analyses keep one compact row per GPU
//! operation and per launch call.
//!
//! # Public API
//!
//! - Import ([`import`]): [`import::open_all`] / [`import::Input::open`] sniff each file's
//!   format from its bytes and its rank from its name; [`import::Input::read`] streams its
//!   events into any [`EventSink`]; [`import::ReadOptions`] (lenient reading).
//! - Profile file names ([`files`]): [`files::ProfileFile::of`], the one filter for what
//!   SGLang's and loupe's profilers write, and [`files::rank_traces`].
//! - Ranks ([`rank`]): [`rank::RankId`] from file names and `distributedInfo`, SGLang's
//!   `[TP01-DP00]` labels, [`rank::RankFilter`] (`--ranks`).
//! - Analyses ([`analyze`]): [`analyze::summarize`] / [`analyze::summarize_all`] ->
//!   [`analyze::summary::TraceSummary`] (per-name stats, categories, steps, stages and the
//!   TraceLens GPU timeline, plus [`analyze::hta`]'s HTA analyses, [`analyze::host`]'s CPU
//!   self time and key_averages by input shape, and [`analyze::attribution`]'s GPU time by
//!   launching op, module and layer); [`analyze::summarize_with`] takes
//!   [`analyze::summary::SummaryOptions`]; [`analyze::summary::TraceSummary::from_json`]
//!   reads a summary back; [`analyze::ranks::compare`] -> `RanksReport`;
//!   [`analyze::diff::diff`] -> `DiffReport` with [`analyze::gate::FailIf`] conditions;
//!   [`analyze::top::top`] -> RPD's `top` rows.
//! - Exports ([`export`]): [`export::merge::merge`], [`export::slice::slice`],
//!   [`export::json::convert`], [`export::perfetto::convert`] (chosen by
//!   [`export::TraceFormat::for_output`]), each taking plain option structs and returning
//!   what it wrote; [`export::write_atomic`], the one whole-file atomic write.
//! - Reports ([`report`]): each analysis as a terminal table, Markdown, CSV or JSON
//!   ([`report::summary`], [`report::ranks`], [`report::diff`], [`report::top`] with
//!   [`report::ReportOptions`]); the [`report::Table`]s themselves; [`report::summary_text`]
//!   for reports that embed a profile's summary.
//! - Errors: [`TraceError`] names the file (and byte offset) of every failure;
//!   [`TraceError::exit_code`] classifies it (2: bad input or arguments, 1: unwritable output).
//!
//! # What this crate is not
//!
//! Not a command line: it has no flags and prints nothing (warnings go through `tracing`);
//! `loupe trace` lives in the `loupe` crate. Not a viewer, and not a client: it knows nothing
//! of HTTP, servers or async code; it reads files and writes files and reports.

pub mod analyze;
pub mod buffers;
pub mod error;
pub mod export;
pub mod external_sort;
pub mod files;
pub mod import;
pub mod model;
pub mod rank;
pub mod report;
pub mod time;

pub use error::{Result, TraceError};
pub use model::{Event, EventSink, Id, Phase, TraceInfo};
