//! What the end-to-end tests share: `loupe serve` in-process on a free port, `loupe bench`
//! from a command line (parsed and run in-process by the cli's bench command), and readers
//! for what a run leaves behind (JSONL, CSV, /metrics).

use std::path::{Path, PathBuf};

use clap::Parser;
use loupe_bench::BenchOutcome;
use loupe_cli::cmd::bench::BenchArgs;
use loupe_server::{RunningServer, ServerConfig};
use serde_json::Value;

/// `loupe serve --model-path tiny` on 127.0.0.1:0 with one compute thread.
pub async fn server(f: impl FnOnce(&mut ServerConfig)) -> RunningServer {
    let mut args = ServerConfig {
        port: 0,
        threads: Some(1),
        // The tests read /metrics (and scrape it); a test turns it off to see the 404.
        enable_metrics: true,
        ..Default::default()
    };
    f(&mut args);
    loupe_server::spawn(args).await.expect("server starts")
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

/// `loupe bench ARGS...` in this process (`--disable-tqdm` added): the flags parsed as the
/// binary parses them, the run shown as the binary shows it, the outcome returned.
pub async fn bench(args: &[&str]) -> anyhow::Result<BenchOutcome> {
    let argv = std::iter::once("loupe-bench")
        .chain(args.iter().copied())
        .chain(["--disable-tqdm"]);
    let cli = Cli::try_parse_from(argv).expect("flags parse");
    loupe_cli::cmd::bench::execute(cli.args).await
}

/// A scratch directory and the JSONL file inside it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn jsonl(&self) -> String {
        self.path("out.jsonl").display().to_string()
    }

    /// Every record appended to out.jsonl.
    pub fn records(&self) -> Vec<Value> {
        read_jsonl(&self.path("out.jsonl"))
    }

    /// The only record of out.jsonl.
    pub fn record(&self) -> Value {
        let mut r = self.records();
        assert_eq!(r.len(), 1, "one run, one record");
        r.pop().unwrap()
    }
}

pub fn read_jsonl(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// A CSV file as header -> column maps, one per row (fields hold no commas in these tests
/// unless quoted; quoted fields are unquoted).
pub fn read_csv(p: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let text = std::fs::read_to_string(p).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    lines
        .map(|l| {
            let fields = split_csv(l);
            assert_eq!(fields.len(), header.len(), "{l}");
            header.iter().cloned().zip(fields).collect()
        })
        .collect()
}

fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => out.last_mut().unwrap().push(c),
        }
    }
    out
}

/// The sum over labels of one Prometheus series of the server's /metrics.
pub async fn metric(s: &RunningServer, name: &str) -> f64 {
    let text = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/metrics", s.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// bench_serving's JSONL keys, in its order (sglang 0.5.23 `benchmark/serving.py`).
pub const SGLANG_KEYS: &[&str] = &[
    "tag",
    "backend",
    "dataset_name",
    "request_rate",
    "max_concurrency",
    "sharegpt_output_len",
    "random_input_len",
    "random_output_len",
    "random_range_ratio",
    "server_info",
    "duration",
    "completed",
    "total_input_tokens",
    "total_input_text_tokens",
    "total_input_vision_tokens",
    "total_output_tokens",
    "total_output_tokens_retokenized",
    "request_throughput",
    "input_throughput",
    "output_throughput",
    "total_throughput",
    "mean_e2e_latency_ms",
    "median_e2e_latency_ms",
    "std_e2e_latency_ms",
    "p90_e2e_latency_ms",
    "p95_e2e_latency_ms",
    "p99_e2e_latency_ms",
    "mean_ttft_ms",
    "median_ttft_ms",
    "std_ttft_ms",
    "p90_ttft_ms",
    "p95_ttft_ms",
    "p99_ttft_ms",
    "mean_tpot_ms",
    "median_tpot_ms",
    "std_tpot_ms",
    "p90_tpot_ms",
    "p95_tpot_ms",
    "p99_tpot_ms",
    "mean_itl_ms",
    "median_itl_ms",
    "std_itl_ms",
    "p90_itl_ms",
    "p95_itl_ms",
    "p99_itl_ms",
    "concurrency",
    "accept_length",
    "max_output_tokens_per_s",
    "max_concurrent_requests",
];

/// `--output-details` arrays.
pub const DETAIL_KEYS: &[&str] = &[
    "input_lens",
    "output_lens",
    "ttfts",
    "itls",
    "generated_texts",
    "errors",
];

pub fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number: {}", v[key]))
}

pub fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not an integer: {}", v[key]))
}
