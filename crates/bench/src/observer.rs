//! How a front end follows a benchmark while it runs: the library calls a [`BenchObserver`] at
//! each step a user would want to see (the embedded server is up, a run starts, a request
//! finishes, a run's report is ready) and never prints. `loupe bench` draws its progress bar
//! and prints its tables from these calls; a library user that wants none passes [`Quiet`].
//!
//! Calls come from the task that runs the benchmark, except `request_finished`, which comes
//! from each request's task (hence `Send + Sync`); it is called once per request, never per
//! chunk, so an observer costs nothing on the timed path.

use std::path::Path;

use crate::outcome::{BenchOutcome, RunOutcome};
use crate::record::RequestRecord;

/// A dataset built for one scenario (or the whole sweep when there is none).
#[derive(Debug, Clone, Copy)]
pub struct DatasetReady<'a> {
    /// What the user should know about how the prompts were made.
    pub notes: &'a [String],
    /// Prompt tokens over all requests, as the dataset counted them.
    pub input_tokens: usize,
    /// Output tokens asked for over all requests.
    pub output_tokens: usize,
}

/// One measured run about to start.
#[derive(Debug, Clone, Copy)]
pub struct RunStart<'a> {
    /// What varies between runs ("concurrency 4", "D(128,96) rate 8.0", "run").
    pub label: &'a str,
    pub requests: usize,
    /// The server's base URL.
    pub base_url: &'a str,
    pub backend: &'a str,
    /// The traffic scenario's label, else the dataset's name.
    pub workload: &'a str,
    /// The arrival rate as reported ("inf", "16.0", "linear-ramp 1.0->10.0").
    pub rate: &'a str,
    pub max_concurrency: Option<usize>,
}

/// One request about to be sent (warm-up and measured alike, each round of a conversation
/// too).
#[derive(Debug, Clone, Copy)]
pub struct RequestSent<'a> {
    /// Numbers the requests of the benchmark in the order they are sent; `request_ended`
    /// gives the same number.
    pub seq: u64,
    /// The generation endpoint's URL.
    pub url: &'a str,
    /// The JSON body as sent.
    pub body: &'a [u8],
    pub prompt_len: usize,
    pub output_len: usize,
}

/// Every method has an empty default: implement the ones you show.
pub trait BenchObserver: Send + Sync {
    /// The embedded reference server (`model`) listens at `url`.
    fn embedded_server_started(&self, _model: &str, _url: &str) {}
    /// The client tokenizer (None: there is none, so retokenized counts are not reported).
    fn tokenizer(&self, _source: Option<&Path>) {}
    fn dataset_ready(&self, _dataset: &DatasetReady<'_>) {}
    fn run_started(&self, _run: &RunStart<'_>) {}
    /// The connection ramp before a run opened `opened` of the `wanted` connections.
    fn connections_opened(&self, _opened: usize, _wanted: usize) {}
    fn warmup_started(&self, _requests: usize) {}
    fn warmup_finished(&self, _requests: usize) {}
    /// The measured requests of a run are being sent.
    fn requests_started(&self, _requests: usize) {}
    /// A request is about to be sent (called from its task, before its clock starts).
    fn request_sent(&self, _request: &RequestSent<'_>) {}
    /// The request `seq` of [`RequestSent`] ended (called from its task).
    fn request_ended(&self, _seq: u64, _record: &RequestRecord) {}
    /// One measured request ended (completed or failed).
    fn request_finished(&self, _record: &RequestRecord) {}
    /// Every measured request of the run has ended.
    fn requests_finished(&self) {}
    /// A run's report (its JSONL record is appended right after).
    fn run_finished(&self, _run: &RunOutcome) {}
    /// Every run is done and appended to `jsonl`; the CSVs are written next.
    fn runs_finished(&self, _outcome: &BenchOutcome) {}
}

/// Follows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl BenchObserver for Quiet {}
