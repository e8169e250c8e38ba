//! What `loupe bench` shows while it runs: status lines on stderr, a progress bar on stderr
//! when it is a terminal (bench_serving's tqdm), each run's report on stdout as it ends and
//! the summary table after a sweep.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use loupe_bench::observer::{DatasetReady, RequestSent, RunStart};
use loupe_bench::record::RequestRecord;
use loupe_bench::{BenchObserver, BenchOutcome, RunOutcome};

use crate::print_requests::RequestPrinter;
use crate::{plot, table};

/// The terminal's view of a benchmark.
pub struct Terminal {
    /// Draw a progress bar (when stderr is a terminal).
    bar_enabled: bool,
    bar: Mutex<ProgressBar>,
    failed: AtomicUsize,
    /// --print-requests.
    printer: Option<RequestPrinter>,
    /// --plot-throughput.
    plot: bool,
}

impl Terminal {
    pub fn new(bar_enabled: bool) -> Terminal {
        Terminal {
            bar_enabled,
            bar: Mutex::new(ProgressBar::hidden()),
            failed: AtomicUsize::new(0),
            printer: None,
            plot: false,
        }
    }

    /// Print a line per request start and end (--print-requests).
    pub fn print_requests(mut self, printer: RequestPrinter) -> Self {
        self.printer = Some(printer);
        self
    }

    /// Plot each run's 1-second buckets (--plot-throughput).
    pub fn plot_throughput(mut self, on: bool) -> Self {
        self.plot = on;
        self
    }

    fn bar(&self) -> ProgressBar {
        self.bar.lock().expect("progress bar lock").clone()
    }
}

/// A live bar on a terminal (stderr), nothing otherwise.
fn progress_bar(n: usize, enabled: bool) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(n as u64), ProgressDrawTarget::stderr_with_hz(4));
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}] {msg}",
    ) {
        pb.set_style(style);
    }
    pb
}

impl BenchObserver for Terminal {
    fn embedded_server_started(&self, model: &str, url: &str) {
        eprintln!(
            "No --base-url given: started the embedded reference server ({model}) in this process at {url}"
        );
    }

    fn tokenizer(&self, source: Option<&Path>) {
        match source {
            Some(p) => eprintln!("Tokenizer: {}", p.display()),
            None => eprintln!(
                "No client tokenizer (pass --tokenizer): retokenized output counts are not reported"
            ),
        }
    }

    fn dataset_ready(&self, d: &DatasetReady<'_>) {
        for note in d.notes {
            eprintln!("note: {note}");
        }
        eprintln!(
            "#Input tokens: {}\n#Output tokens: {}",
            d.input_tokens, d.output_tokens
        );
    }

    fn run_started(&self, r: &RunStart<'_>) {
        eprintln!(
            "Benchmarking {} requests against {} ({}, {}, rate {}, max concurrency {})",
            r.requests,
            r.base_url,
            r.backend,
            r.workload,
            r.rate,
            r.max_concurrency
                .map_or("not set".into(), |c| c.to_string())
        );
    }

    fn connections_opened(&self, opened: usize, wanted: usize) {
        if opened < wanted {
            eprintln!("Connection ramp: {opened} of {wanted} connections opened ahead of the run");
        }
    }

    fn warmup_started(&self, n: usize) {
        eprintln!("Starting warmup with {n} sequences...");
    }

    fn warmup_finished(&self, n: usize) {
        eprintln!("Warmup completed with {n} sequences. Starting main benchmark run...");
    }

    fn requests_started(&self, n: usize) {
        self.failed.store(0, Ordering::Relaxed);
        *self.bar.lock().expect("progress bar lock") = progress_bar(n, self.bar_enabled);
    }

    fn request_sent(&self, r: &RequestSent<'_>) {
        if let Some(p) = &self.printer {
            let line = p.start_line(r);
            self.bar().suspend(|| println!("{line}"));
        }
    }

    fn request_ended(&self, seq: u64, r: &RequestRecord) {
        if let Some(line) = self.printer.as_ref().and_then(|p| p.end_line(seq, r)) {
            self.bar().suspend(|| println!("{line}"));
        }
    }

    fn request_finished(&self, r: &RequestRecord) {
        let bar = self.bar();
        if !r.ok {
            let n = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
            bar.set_message(format!("{n} failed"));
        }
        bar.inc(1);
    }

    fn requests_finished(&self) {
        self.bar().finish_and_clear();
    }

    fn run_finished(&self, run: &RunOutcome) {
        if self.plot {
            let b = loupe_bench::metrics::buckets(&run.records, run.native);
            println!("{}", plot::throughput(&b));
        }
        println!("{}", table::run_report(run));
        if let Some(r) = run.first_failure() {
            eprintln!(
                "{} of {} requests failed; first error: {}",
                run.summary.failed,
                run.records.len(),
                r.error
            );
        }
    }

    fn runs_finished(&self, outcome: &BenchOutcome) {
        eprintln!("Results appended to {}", outcome.jsonl.display());
        if outcome.wants_summary() {
            println!("{}", table::summary(&outcome.rows()));
        }
        for (scenario, report) in &outcome.search {
            println!("{}", table::search_report(scenario.as_deref(), report));
        }
    }
}
