//! Analyses: streaming folds over one trace ([`summary`], with [`timeline`] and [`steps`]),
//! comparisons built from their results ([`ranks`], [`diff`]), and RPD-style [`top`].

pub mod diff;
pub mod ranks;
pub mod steps;
pub mod summary;
pub mod timeline;
pub mod top;

use crate::error::Result;
use crate::import::parallel::{read_parallel, workers};
use crate::import::{Input, ReadOptions};
use summary::{SummaryBuilder, TraceSummary};
use timeline::SORT_BUDGET;

/// Reads one input (on every core) and folds it into a [`TraceSummary`]. `index` is the
/// input's position on the command line (the label of a file that names no rank).
pub fn summarize(input: &Input, opts: &ReadOptions, index: usize) -> Result<TraceSummary> {
    let n = workers();
    let mut folds: Vec<SummaryBuilder> = (0..n)
        .map(|_| SummaryBuilder::with_sort_budget(SORT_BUDGET / n))
        .collect();
    let info = read_parallel(input, opts, &mut folds, &mut |()| Ok(()))?;
    let mut fold = folds.pop().expect("at least one worker");
    for other in folds {
        fold.absorb(other)?;
    }
    let rank = input.rank_with(&info);
    let label = rank.label(index);
    fold.finish(&info, input.path.display().to_string(), rank, label)
}
