//! Analyses: streaming folds over one trace ([`summary`], with [`timeline`] and [`steps`]),
//! comparisons built from their results ([`ranks`], [`diff`]), and RPD-style [`top`].

pub mod diff;
pub mod ranks;
pub mod steps;
pub mod summary;
pub mod timeline;
pub mod top;

use crate::error::Result;
use crate::import::{Input, ReadOptions};
use summary::{SummaryBuilder, TraceSummary};

/// Reads one input and folds it into a [`TraceSummary`]. `index` is the input's position on
/// the command line (the label of a file that names no rank).
pub fn summarize(input: &Input, opts: &ReadOptions, index: usize) -> Result<TraceSummary> {
    let mut fold = SummaryBuilder::default();
    let info = input.read(opts, &mut fold)?;
    let rank = input.rank_with(&info);
    let label = rank.label(index);
    fold.finish(&info, input.path.display().to_string(), rank, label)
}
