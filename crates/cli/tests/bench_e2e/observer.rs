//! The library's side of `loupe bench`, through the plan the flags make: an observer hears
//! every step in order, and the outcome holds every record and metric the report shows.

use std::sync::{Arc, Mutex};

use clap::Parser;
use loupe_bench::observer::{DatasetReady, RunStart};
use loupe_bench::record::RequestRecord;
use loupe_bench::{BenchObserver, BenchOutcome, RunOutcome};
use loupe_cli::cmd::bench::BenchArgs;

use crate::common::*;

#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Log {
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
}

impl BenchObserver for Log {
    fn tokenizer(&self, source: Option<&std::path::Path>) {
        self.push(format!("tokenizer {}", source.is_some()));
    }
    fn dataset_ready(&self, d: &DatasetReady<'_>) {
        self.push(format!("dataset {} {}", d.input_tokens, d.output_tokens));
    }
    fn run_started(&self, r: &RunStart<'_>) {
        self.push(format!("start {} {} {}", r.label, r.requests, r.workload));
    }
    fn warmup_started(&self, n: usize) {
        self.push(format!("warmup {n}"));
    }
    fn warmup_finished(&self, n: usize) {
        self.push(format!("warm {n}"));
    }
    fn requests_started(&self, n: usize) {
        self.push(format!("requests {n}"));
    }
    fn request_finished(&self, r: &RequestRecord) {
        self.push(format!("request {}", r.ok));
    }
    fn requests_finished(&self) {
        self.push("requests done".into());
    }
    fn run_finished(&self, r: &RunOutcome) {
        self.push(format!("run {} {}", r.label, r.summary.completed));
    }
    fn runs_finished(&self, o: &BenchOutcome) {
        self.push(format!("runs {}", o.runs.len()));
    }
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_hears_each_step_and_the_outcome_holds_every_record() {
    let server = server(|_| {}).await;
    let s = Scratch::new();
    let out = s.jsonl();
    let url = server.url();
    let cli = Cli::try_parse_from([
        "bench",
        "--base-url",
        &url,
        "--dataset-name",
        "random-ids",
        "--num-prompts",
        "3",
        "--random-input-len",
        "8",
        "--random-output-len",
        "4",
        "--random-range-ratio",
        "1",
        "--sweep-max-concurrency",
        "1,2",
        "--output-file",
        &out,
    ])
    .unwrap();
    let log = Arc::new(Log::default());
    let outcome = loupe_bench::run(cli.args.plan().unwrap(), log.clone())
        .await
        .unwrap();

    let events = log.0.lock().unwrap().clone();
    let one_run = |label: &str| {
        let mut v = vec![
            format!("start {label} 3 random-ids"),
            "warmup 1".to_string(),
            "warm 1".to_string(),
            "requests 3".to_string(),
        ];
        v.extend(std::iter::repeat_n("request true".to_string(), 3));
        v.extend(["requests done".to_string(), format!("run {label} 3")]);
        v
    };
    // The dataset counts prompt tokens as the server will (less its special tokens, when
    // prompts go as text through a client tokenizer).
    let tokenizer = outcome.runs[0].retokenized.is_some();
    let input: usize = outcome.runs[0].records.iter().map(|r| r.prompt_len).sum();
    let mut want = vec![
        format!("tokenizer {tokenizer}"),
        format!("dataset {input} 12"),
    ];
    want.extend(one_run("concurrency 1"));
    want.extend(one_run("concurrency 2"));
    want.push("runs 2".into());
    assert_eq!(events, want);

    // Every record and metric, without reading any text.
    assert!(outcome.success() && outcome.swept && outcome.wants_summary());
    assert_eq!(outcome.jsonl.display().to_string(), out);
    let labels: Vec<&str> = outcome.runs.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["concurrency 1", "concurrency 2"]);
    for (run, rec) in outcome.runs.iter().zip(s.records()) {
        assert_eq!(run.records.len(), 3);
        assert!(run.records.iter().all(|r| r.ok && r.output_len == 4));
        assert_eq!(run.summary.total_output_tokens, 12);
        assert_eq!(
            run.info.max_concurrency,
            rec["max_concurrency"].as_u64().map(|c| c as usize)
        );
        // The JSONL figure is the same statistic, computed once more for the record: equal to
        // the last bit or two of an f64.
        close(run.summary.ttft.mean, f(&rec, "mean_ttft_ms"));
        close(
            run.beyond.e2e_incl_queue.p99,
            rec["p99_e2e_latency_incl_queue_ms"].as_f64().unwrap(),
        );
        assert_eq!(run.retokenized.as_ref().map_or(3, Vec::len), 3);
    }
    server.shutdown().await.unwrap();
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} != {b}");
}
