//! Figures and tables in, a self-contained page out. A front end (crates/cli) turns a bench
//! outcome or a trace analysis into a [`Page`]: sections of tables, numeric [`Chart`]s (drawn
//! in the browser by the vendored uPlot) and categorical [`Svg`] figures (drawn here, readable
//! with JavaScript off); [`render`] makes the bytes.
//!
//! Every page is self-contained (script, style and data inline; a Content-Security-Policy
//! that forbids anything external), deterministic (same page, same bytes), escapes every
//! string it is given, and embeds its data as JSON (`loupe-data`, plus the caller's records
//! verbatim as `loupe-record`) so the file is also machine-readable. `reduce` holds the rules
//! for thinning a series without hiding its tail; `xlsx` (feature `xlsx`) writes the same
//! tables as a workbook.
//!
//! Not here: what a benchmark or a trace is (the front end builds the figures), files and
//! formats (the caller writes the bytes where it wants), HTTP.

mod embed;
pub mod page;
pub mod reduce;
mod render;
pub mod svg;
#[cfg(feature = "xlsx")]
pub mod xlsx;

pub use page::{Axis, Block, Chart, Page, Part, Rule, Scale, Section, Series, Style, Svg, Table};
pub use render::{RenderError, render};

/// The Content-Security-Policy every page carries: inline script and style only, images only
/// from `data:` URLs, nothing fetched.
pub const CSP: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";

/// The vendored uPlot, as embedded in every page.
pub const UPLOT_JS: &str = include_str!("../vendor/uplot/uPlot.iife.min.js");
pub const UPLOT_CSS: &str = include_str!("../vendor/uplot/uPlot.min.css");
pub const UPLOT_LICENSE: &str = include_str!("../vendor/uplot/LICENSE");
