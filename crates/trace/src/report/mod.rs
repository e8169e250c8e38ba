//! Reports: an analysis's result rendered as a terminal table, Markdown, CSV or JSON, into a
//! `String` (printing it is the caller's business).
//!
//! - [`summary`], [`ranks`], [`diff`], [`top`]: one analysis in a [`ReportOptions`] format.
//!   JSON serialises the analysis struct itself, at full precision; tables round for reading
//!   (see [`table`]).
//! - [`tables`]: the [`Table`]s of each analysis, for reports that lay them out themselves.
//! - [`summary_text`]: `loupe trace summary` (and `ranks` for several files) of a profile's
//!   traces as terminal text, for reports that embed it (`loupe bench --profile`, `loupe run`'s
//!   summary.md).

pub mod analyses;
pub mod table;
pub mod tables;

use std::path::PathBuf;

use serde::Serialize;

use crate::analyze::diff::DiffReport;
use crate::analyze::ranks::{self as rank_compare, RanksReport};
use crate::analyze::summarize_all;
use crate::analyze::summary::TraceSummary;
use crate::error::Result;
use crate::import::rpd::TopRow;
use crate::import::{ReadOptions, open_all};
pub use table::{Cell, Table, TableFormat, ms, percent, render_tables, us};

/// Output format of a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReportFormat {
    /// Aligned tables for a terminal.
    #[default]
    Table,
    /// Markdown tables.
    Markdown,
    /// CSV, full precision.
    Csv,
    /// The analysis struct as pretty-printed JSON.
    Json,
}

/// How a report is rendered.
#[derive(Clone, Debug, Default)]
pub struct ReportOptions {
    pub format: ReportFormat,
    /// Rows per operation table (0: all).
    pub top: usize,
    /// Only the table with this id (`timeline`, `kernels`, `ops`, `categories`, `stages`,
    /// `steps`, `ranks`, `key_ops`, `stragglers`, `diff`, `top`); ignored for JSON.
    pub table: Option<String>,
}

/// The `summary` report of one or more traces' summaries.
pub fn summary(summaries: &[TraceSummary], opts: &ReportOptions) -> String {
    render(summaries, || tables::summary(summaries, opts.top), opts)
}

/// `summary --group-by-shape`: CPU ops by name and input shape, torch's key_averages layout
/// (JSON: the rows themselves).
pub fn by_shape(summaries: &[TraceSummary], opts: &ReportOptions) -> String {
    let rows: Vec<_> = summaries.iter().map(|s| &s.host.by_shape).collect();
    render(
        &rows,
        || vec![analyses::by_shape(summaries, opts.top)],
        opts,
    )
}

/// `summary --by op|module|layer`: GPU time by what launched it, and a table of CUDA-graph
/// replays when there are any (JSON: the summaries' attribution).
pub fn attribution(
    summaries: &[TraceSummary],
    key: analyses::AttributionKey,
    opts: &ReportOptions,
) -> String {
    let rows: Vec<_> = summaries.iter().map(|s| &s.attribution).collect();
    render(
        &rows,
        || {
            let mut t = vec![analyses::attribution(summaries, key, opts.top)];
            t.extend(analyses::graph_replays(summaries));
            t
        },
        opts,
    )
}

/// The `ranks` report.
pub fn ranks(report: &RanksReport, opts: &ReportOptions) -> String {
    render(report, || tables::ranks(report), opts)
}

/// The `diff` report.
pub fn diff(report: &DiffReport, opts: &ReportOptions) -> String {
    render(report, || tables::diff(report, opts.top), opts)
}

/// The `top` report.
pub fn top(rows: &[TopRow], opts: &ReportOptions) -> String {
    render(rows, || tables::top(rows, opts.top), opts)
}

/// `value` as pretty-printed JSON with a final newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("analysis results serialise");
    s.push('\n');
    s
}

fn render<T: Serialize + ?Sized>(
    value: &T,
    tables: impl FnOnce() -> Vec<Table>,
    opts: &ReportOptions,
) -> String {
    let format = match opts.format {
        ReportFormat::Json => return json(value),
        ReportFormat::Table => TableFormat::Text,
        ReportFormat::Markdown => TableFormat::Markdown,
        ReportFormat::Csv => TableFormat::Csv,
    };
    render_tables(&tables(), format, opts.table.as_deref())
}

/// `loupe trace summary FILES --top N` as terminal text, followed by `loupe trace ranks` when
/// there are several files: what `loupe bench --profile` and `loupe run`'s summary.md embed.
/// Pick the files with [`rank_traces`](crate::files::rank_traces). A trace whose event array
/// is cut off is summarised up to the cut, with a warning logged.
pub fn summary_text(files: &[PathBuf], top: usize) -> Result<String> {
    let summaries = summarize_all(&open_all(files, None)?, &ReadOptions::default())?;
    for s in summaries.iter().filter(|s| s.truncated) {
        tracing::warn!(
            "{}: the event array is cut off; summarising the {} events before the cut",
            s.file,
            s.events
        );
    }
    let mut tables = tables::summary(&summaries, top);
    if summaries.len() > 1 {
        tables.extend(tables::ranks(&rank_compare::compare(
            &summaries,
            top.clamp(1, 50),
        )));
    }
    Ok(render_tables(&tables, TableFormat::Text, None))
}
