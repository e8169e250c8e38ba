//! Server-side profiling around a benchmark (`loupe bench --profile`, `bench.rs`), through
//! loupe-client: SGLang's `/start_profile` and `/stop_profile`, loupe's `/profile_status`
//! where the server has it (an SGLang server does not: then the output directory is watched
//! instead, when it is on this machine), and the summary of the traces a run produced.

pub mod bench;

use std::path::PathBuf;

use loupe_client::Server;
use reqwest::header::HeaderMap;

/// The server whose profiling endpoints a run drives.
#[derive(Clone)]
pub struct ProfileEndpoint {
    pub client: reqwest::Client,
    pub base: String,
    pub headers: HeaderMap,
}

impl ProfileEndpoint {
    pub fn server(&self) -> Server {
        Server::with_client(self.client.clone(), &self.base, self.headers.clone())
    }
}

/// `loupe trace summary` of the run's Kineto traces (with `loupe trace ranks` when there are
/// several), for the report. A merged trace is left out (its events are the per-rank files'
/// again), as are memory snapshots and RPD files. A trace that cannot be read is said in the
/// summary's place: the benchmark's own results stand.
pub fn summarize_traces(files: &[PathBuf]) -> Option<String> {
    summarize_rank_traces(loupe_trace::files::rank_traces(files))
}

/// The summary of `traces`, each one rank's Kineto trace.
pub fn summarize_rank_traces(traces: Vec<PathBuf>) -> Option<String> {
    if traces.is_empty() {
        return None;
    }
    Some(match loupe_trace::report::summary_text(&traces, 10) {
        Ok(text) => text,
        Err(e) => format!("(no trace summary: {e})\n"),
    })
}
