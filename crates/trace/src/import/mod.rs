//! Importers: every input format becomes a stream of [`Event`](crate::Event)s plus a
//! [`TraceInfo`]. The format is found from the file's first bytes (and a SQLite file's
//! tables), never from its name.

pub mod database;
pub mod kineto;
pub mod nsys;
pub mod parallel;
pub mod rocpd;
pub mod rpd;
pub mod source;
pub mod sqlite;

use std::path::{Path, PathBuf};

use regex::Regex;

use crate::error::Result;
use crate::model::{EventSink, TraceInfo};
use crate::rank::{RankId, compile_rank_regex};
use source::Container;

#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    /// Accept what broken writers produce: raw control characters inside strings
    /// (pytorch/pytorch#130622), trailing commas, and an event array cut off by a crash (the
    /// events before the cut are kept).
    pub lenient: bool,
}

/// Opens every file (its container sniffed from its first bytes, its rank read from its name),
/// in order; the first file that cannot be opened is the error. `rank_regex` is `--rank-regex`:
/// a regex whose named group `rank` (else first group) gives the global rank from the name.
pub fn open_all<P: AsRef<Path>>(files: &[P], rank_regex: Option<&str>) -> Result<Vec<Input>> {
    let re = rank_regex.map(compile_rank_regex).transpose()?;
    files
        .iter()
        .map(|f| Input::open(f.as_ref(), re.as_ref()))
        .collect()
}

/// An input file with its detected container and the rank identity its name gives.
#[derive(Clone, Debug)]
pub struct Input {
    pub path: PathBuf,
    pub container: Container,
    pub rank: RankId,
}

impl Input {
    /// Sniffs `path`'s container and reads its rank from the name (`rank_regex` first).
    pub fn open(path: &Path, rank_regex: Option<&Regex>) -> Result<Input> {
        Ok(Input {
            path: path.to_path_buf(),
            container: source::sniff(path)?,
            rank: RankId::from_file_name(path, rank_regex),
        })
    }

    /// Streams every event to `sink`.
    pub fn read(&self, opts: &ReadOptions, sink: &mut dyn EventSink) -> Result<TraceInfo> {
        match self.container {
            Container::Json | Container::GzipJson => {
                kineto::read(&self.path, self.container, opts, sink)
            }
            Container::Sqlite => match database::open(&self.path)? {
                database::Database::Rpd(db) => db.read(sink),
                database::Database::Rocpd(db) => db.read(sink),
                database::Database::Nsys(db) => db.read(sink),
            },
        }
    }

    /// The trace's metadata without its events, reading as little as the layout allows (a
    /// Kineto file whose time base follows the events is scanned to its end, but not parsed).
    pub fn probe(&self, opts: &ReadOptions) -> Result<TraceInfo> {
        match self.container {
            Container::Json | Container::GzipJson => {
                kineto::probe(&self.path, self.container, opts)
            }
            Container::Sqlite => match database::open(&self.path)? {
                database::Database::Rpd(db) => Ok(db.info()),
                database::Database::Rocpd(db) => Ok(db.info()),
                database::Database::Nsys(db) => db.info(),
            },
        }
    }

    /// The rank identity, completed with what the trace itself says.
    pub fn rank_with(&self, info: &TraceInfo) -> RankId {
        let mut id = self.rank.clone();
        if id.global.is_none() {
            id.global = info.distributed.as_ref().and_then(|d| d.rank);
        }
        id
    }
}
