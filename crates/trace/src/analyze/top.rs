//! A `top` table of GPU operations: RPD's `top` view, computed exactly from an `.rpd` file's
//! tables, and the same columns for any other trace.

use crate::analyze::summarize;
use crate::error::Result;
use crate::import::database::{Database, open};
use crate::import::rpd::TopRow;
use crate::import::source::Container;
use crate::import::{Input, ReadOptions};

/// GPU operations by total time: from RPD's own `top` view for an `.rpd` file, else from the
/// trace's summary (kernels, memcpy and memset).
pub fn top(input: &Input, opts: &ReadOptions) -> Result<Vec<TopRow>> {
    if input.container == Container::Sqlite
        && let Database::Rpd(db) = open(&input.path)?
    {
        return db.top();
    }
    let s = summarize(input, opts, 0)?;
    let all: i64 = s.kernels.iter().map(|k| k.total_ns).sum();
    Ok(s.kernels
        .iter()
        .map(|k| TopRow {
            name: k.name.clone(),
            calls: k.calls,
            total_us: k.total_ns / 1000,
            avg_us: k.total_ns as f64 / k.calls.max(1) as f64 / 1000.0,
            percent: if all == 0 {
                0.0
            } else {
                k.total_ns as f64 * 100.0 / all as f64
            },
        })
        .collect())
}
