//! One module per command: its flags (clap), their conversion into the library's config
//! struct, the call, and what the terminal shows of the outcome. `trace`, `profile`, `watch`
//! (and `trace_html`, `engine`) live in the sibling crate loupe-cli-observe and are
//! re-exported here under the same paths.

pub mod bench;
pub mod report;
pub mod run;
pub mod run_html;
pub mod serve;

pub use loupe_cli_observe::{engine, profile, table, trace, trace_html, watch};
