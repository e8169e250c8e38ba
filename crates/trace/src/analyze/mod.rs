//! Analyses: streaming folds over one trace ([`summary`], with [`timeline`] and [`steps`]),
//! comparisons built from their results ([`ranks`], [`diff`]), and RPD-style [`top`].
//!
//! Each returns a plain, serialisable struct; the `report` module renders them.
//!
//! ```no_run
//! use loupe_trace::analyze::{ranks, summarize_all};
//! use loupe_trace::import::{ReadOptions, open_all};
//!
//! let inputs = open_all(&["a-TP-0.trace.json.gz", "a-TP-1.trace.json.gz"], None)?;
//! let summaries = summarize_all(&inputs, &ReadOptions::default())?;
//! let report = ranks::compare(&summaries, 10);
//! let straggler = report.straggler; // the slowest rank, when one stands out
//! # Ok::<(), loupe_trace::TraceError>(())
//! ```

pub mod args;
pub mod attribution;
pub mod capture;
pub(crate) mod corr;
pub mod diff;
pub mod gate;
pub mod host;
pub mod hta;
pub mod ranks;
pub mod steps;
pub mod summary;
pub mod timeline;
pub mod top;

use crate::error::Result;
use crate::import::parallel::{read_parallel, workers};
use crate::import::{Input, ReadOptions};
use summary::{SummaryBuilder, SummaryOptions, TraceSummary};
use timeline::SORT_BUDGET;

/// Reads one input (on every core) and folds it into a [`TraceSummary`]. `index` is the
/// input's position on the command line (the label of a file that names no rank).
pub fn summarize(input: &Input, opts: &ReadOptions, index: usize) -> Result<TraceSummary> {
    summarize_with(input, opts, index, &SummaryOptions::default())
}

/// [`summarize`] with analysis options (HTA's rounding and launch names).
pub fn summarize_with(
    input: &Input,
    opts: &ReadOptions,
    index: usize,
    analysis: &SummaryOptions,
) -> Result<TraceSummary> {
    let n = workers();
    let mut folds = SummaryBuilder::workers(n, SORT_BUDGET);
    let mut streams: Vec<i64> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let t0 = std::time::Instant::now();
    let info = read_parallel(input, opts, &mut folds, &mut |new: Vec<i64>| {
        streams.extend(new.into_iter().filter(|s| seen.insert(*s)));
        Ok(())
    })?;
    let t1 = std::time::Instant::now();
    let mut fold = folds.pop().expect("at least one worker");
    for other in folds {
        fold.absorb(other)?;
    }
    tracing::debug!(
        file = %input.path.display(),
        read_s = (t1 - t0).as_secs_f64(),
        absorb_s = t1.elapsed().as_secs_f64(),
        "summary: read"
    );
    let rank = input.rank_with(&info);
    let label = rank.label(index);
    fold.finish(
        &info,
        input.path.display().to_string(),
        rank,
        label,
        &streams,
        analysis,
    )
}

/// [`summarize`] of every input in turn, labelled by position; the first failure is the error.
pub fn summarize_all(inputs: &[Input], opts: &ReadOptions) -> Result<Vec<TraceSummary>> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, input)| summarize(input, opts, i))
        .collect()
}
