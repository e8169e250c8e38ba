//! One module per command: its flags (clap), their conversion into the library's config
//! struct, the call, and what the terminal shows of the outcome.

pub mod bench;
pub mod engine;
pub mod profile;
pub mod report;
pub mod run;
pub mod run_html;
pub mod serve;
pub mod trace;
pub mod trace_html;
pub mod watch;
