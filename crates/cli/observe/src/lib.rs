//! The commands of loupe's command layer that need no engine and no load generator:
//! `loupe trace`, `loupe profile` and `loupe watch`, their pages (`trace_html`), `--engine`
//! parsing and the one terminal-table renderer. The `loupe` crate (crates/cli) holds the
//! rest and the top-level parser, and re-exports these modules as `loupe_cli::cmd::*`; the
//! two are one layer, split only so a cold build compiles this half beside the engine chain.

pub mod engine;
pub mod profile;
pub mod table;
pub mod trace;
pub mod trace_html;
pub mod watch;
