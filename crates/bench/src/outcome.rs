//! What a benchmark did, as values: every run's settings, raw request records and metrics
//! (bench_serving's and loupe's), so a report can be built from the outcome without reading
//! any text. The terminal table, the JSONL record and the CSVs are all views of these.

use std::path::PathBuf;

use serde_json::Value;

use crate::beyond::{Beyond, ClientCpu};
use crate::metrics::Summary;
use crate::profile::bench::ProfileReport;
use crate::record::RequestRecord;

/// A run's settings and context, as bench_serving records them plus loupe's.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub backend: String,
    pub dataset_name: String,
    /// The rate as a number (`inf` allowed); a ramp reports its label instead.
    pub request_rate: f64,
    pub rate_label: String,
    pub burstiness: f64,
    pub max_concurrency: Option<usize>,
    pub sharegpt_output_len: Option<usize>,
    pub random_input_len: usize,
    pub random_output_len: usize,
    pub random_range_ratio: f64,
    pub tag: Option<String>,
    /// Write bench_serving's `cache_report` (--cache-report).
    pub cache_report: bool,
    pub traffic_scenario: Option<String>,
    /// The server's /server_info after the run (null when it had none).
    pub server_info: Value,
    /// SGLang's speculative accept length, from `server_info`.
    pub accept_length: Option<f64>,
    pub cpu: Option<ClientCpu>,
    pub profile: Option<ProfileReport>,
    /// `/metrics` during the run (--scrape-metrics).
    pub server_metrics: Option<crate::scrape::Scraped>,
    /// What may make the figures the client's rather than the server's.
    pub warnings: Vec<String>,
}

impl RunInfo {
    /// The run's requests carried images (`--dataset-name image` or `mmmu`).
    pub fn has_images(&self) -> bool {
        [
            crate::plan::DatasetName::Image,
            crate::plan::DatasetName::Mmmu,
        ]
        .iter()
        .any(|n| n.name() == self.dataset_name)
    }
}

/// One measured run (one scenario at one sweep point).
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// What varied: "concurrency 64", "rate 16.0", "D(128,96) concurrency 8", or "run".
    pub label: String,
    pub info: RunInfo,
    /// bench_serving's metrics.
    pub summary: Summary,
    /// loupe's additions.
    pub beyond: Beyond,
    /// Every request, in the order they were scheduled.
    pub records: Vec<RequestRecord>,
    /// Output tokens of each record as the client tokenizer counts them.
    pub retokenized: Option<Vec<usize>>,
    /// The run used SGLang's native route (its ITL is split per token).
    pub native: bool,
}

impl RunOutcome {
    /// The first failed request, if any failed.
    pub fn first_failure(&self) -> Option<&RequestRecord> {
        self.records.iter().find(|r| !r.ok)
    }

    /// The run condensed to one summary row.
    pub fn row(&self) -> RunRow {
        RunRow::new(self.label.clone(), &self.summary, &self.beyond)
    }
}

/// Every run of a `loupe bench` invocation.
#[derive(Debug, Clone)]
pub struct BenchOutcome {
    pub runs: Vec<RunOutcome>,
    /// The JSONL file every run appended its record to.
    pub jsonl: PathBuf,
    /// The plan swept a setting (its summary table is due even for a single point).
    pub swept: bool,
    /// --search: what each scenario's search found (its probes are among `runs`).
    pub search: Vec<(Option<String>, crate::search::SearchReport)>,
}

impl BenchOutcome {
    /// Requests sent over all runs.
    pub fn requests(&self) -> usize {
        self.runs.iter().map(|r| r.records.len()).sum()
    }

    /// Requests that failed over all runs.
    pub fn failed(&self) -> usize {
        self.runs.iter().map(|r| r.summary.failed).sum()
    }

    /// Every request of every run completed.
    pub fn success(&self) -> bool {
        self.failed() == 0 && self.requests() > 0
    }

    /// One row per run, for the summary table and `summary_csv`.
    pub fn rows(&self) -> Vec<RunRow> {
        self.runs.iter().map(RunOutcome::row).collect()
    }

    /// Whether the runs call for a summary table: a sweep, or several scenarios.
    pub fn wants_summary(&self) -> bool {
        self.swept || self.runs.len() > 1
    }
}

/// One run of a sweep, condensed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// What varied: e.g. "concurrency 64", "rate 16.0", "D(128,96) concurrency 8".
    pub label: String,
    pub completed: usize,
    pub failed: usize,
    pub duration: f64,
    pub request_throughput: f64,
    pub output_throughput: f64,
    pub mean_ttft_ms: f64,
    pub p99_ttft_ms: f64,
    pub mean_tpot_ms: f64,
    pub p99_tpot_ms: f64,
    pub mean_itl_ms: f64,
    pub p99_e2e_ms: f64,
    pub p99_e2e_incl_queue_ms: f64,
    pub request_goodput: Option<f64>,
}

impl RunRow {
    pub fn new(label: String, s: &Summary, b: &Beyond) -> Self {
        RunRow {
            label,
            completed: s.completed,
            failed: s.failed,
            duration: s.duration,
            request_throughput: s.request_throughput,
            output_throughput: s.output_throughput,
            mean_ttft_ms: s.ttft.mean,
            p99_ttft_ms: s.ttft.p99,
            mean_tpot_ms: s.tpot.mean,
            p99_tpot_ms: s.tpot.p99,
            mean_itl_ms: s.itl.mean,
            p99_e2e_ms: s.e2e.p99,
            p99_e2e_incl_queue_ms: b.e2e_incl_queue.p99,
            request_goodput: b.goodput.as_ref().map(|g| g.request_goodput),
        }
    }

    /// The figures after `completed` and `failed`, in `SUMMARY_HEADER`'s order.
    pub fn figures(&self) -> [f64; 10] {
        [
            self.duration,
            self.request_throughput,
            self.output_throughput,
            self.mean_ttft_ms,
            self.p99_ttft_ms,
            self.mean_tpot_ms,
            self.p99_tpot_ms,
            self.mean_itl_ms,
            self.p99_e2e_ms,
            self.p99_e2e_incl_queue_ms,
        ]
    }
}
