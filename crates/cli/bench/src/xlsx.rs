//! `loupe bench --xlsx`: genai-bench's workbook for its users, from a bench outcome. Its
//! sheets, in its order and with its headers (genai-bench 0.0.5's `excel_report.py`):
//! `Summary`, `Appendix`, `Experiment Metadata`, `Aggregated Metrics for Each Run` (its
//! `AggregatedMetrics` fields, each request metric's statistics as the JSON block it writes)
//! and `Individual Request Metrics` (its `RequestLevelMetrics` fields). Latencies are in
//! seconds and per-run figures are means (its defaults); every figure is computed from the
//! requests as genai-bench computes it (linear-interpolated percentiles, population standard
//! deviation, tokens over the run's duration). A `Charts` sheet, which genai-bench's workbook
//! lacks, holds the numbers of its 2 x 4 plot grid (`plot_config.py`'s `2x4_default`) and that
//! grid as native charts over them, a series per traffic scenario and each point labelled
//! with its concurrency. What loupe does not know (the GPU type) reads N/A.

use std::collections::BTreeMap;
use std::path::Path;

use loupe_bench::RunOutcome;
use loupe_bench::metrics::percentile;
use loupe_bench::record::RequestRecord;
use loupe_report::xlsx::{self, Cell, ChartKind, ChartSeries, Sheet, SheetChart};
use serde_json::{Value, json};

/// genai-bench's target speed: the Summary's concurrency is the highest whose mean
/// per-request output speed is above this many tokens/s.
pub const TARGET_SPEED: f64 = 10.0;
/// genai-bench stops looking at higher concurrencies once total throughput and requests/s
/// both change by less than this (relative) from the concurrency chosen so far.
const PLATEAU: f64 = 0.05;

/// genai-bench's names for its standard scenarios (`SCENARIO_MAP`), listed first.
const SCENARIO_NAMES: [(&str, &str); 5] = [
    (
        "N(480,240)/(300,150)",
        "Scenario 1: Fusion N(480,240)/(300,150)",
    ),
    ("D(100,100)", "Scenario 2: Chatbot/Dialog D(100,100)"),
    ("D(100,1000)", "Scenario 3: Generation Heavy D(100,1000)"),
    ("D(2000,200)", "Scenario 4: Typical RAG D(2000,200)"),
    ("D(7800,200)", "Scenario 5: Heavier RAG D(7800,200)"),
];

/// `RequestLevelMetrics`' fields, in its order; the latencies carry " (s)" in headers.
const REQUEST_FIELDS: [&str; 14] = [
    "ttft",
    "tpot",
    "e2e_latency",
    "output_latency",
    "output_inference_speed",
    "num_input_tokens",
    "num_output_tokens",
    "num_reasoning_tokens",
    "total_tokens",
    "input_throughput",
    "output_throughput",
    "audio_throughput",
    "error_code",
    "error_message",
];
const LATENCIES: [&str; 4] = ["ttft", "tpot", "e2e_latency", "output_latency"];
/// The statistics of each request metric, in `StatField`'s order.
const STATS: [&str; 11] = [
    "min", "max", "mean", "stddev", "sum", "p25", "p50", "p75", "p90", "p95", "p99",
];

fn n(x: f64) -> Cell {
    Cell::Number(x)
}

fn t(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn opt(x: Option<f64>) -> Cell {
    x.map_or(Cell::Empty, n)
}

fn header(field: &str) -> String {
    if LATENCIES.contains(&field) {
        format!("{field} (s)")
    } else {
        field.to_string()
    }
}

/// One request as genai-bench's `RequestLevelMetrics` (seconds, tokens, tokens/s).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestMetrics {
    /// Values of `REQUEST_FIELDS[..12]`, None where genai-bench leaves the field empty.
    pub values: [Option<f64>; 12],
    pub error_code: Option<u16>,
    pub error_message: Option<String>,
}

/// The HTTP status genai-bench records for a failure: the server's when it answered, 503
/// when no connection was made, 408 on a timeout, else 500 (as its OpenAI user does).
pub fn error_code(error: &str) -> u16 {
    if let Some(code) = error
        .strip_prefix("HTTP ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
    {
        return code;
    }
    if error.starts_with("cannot connect") {
        503
    } else if error.contains("timed out") {
        408
    } else {
        500
    }
}

/// "500 Internal Server Error" as genai-bench's error plot labels a status.
fn status_label(code: u16, errors: &[&str]) -> String {
    let from_text = errors.iter().find_map(|e| {
        let rest = e.strip_prefix(&format!("HTTP {code} "))?;
        let phrase = rest.split(':').next()?.trim();
        (!phrase.is_empty()).then(|| phrase.to_string())
    });
    let phrase = from_text.or_else(|| {
        let p = match code {
            408 => "Request Timeout",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            _ => return None,
        };
        Some(p.to_string())
    });
    phrase.map_or(code.to_string(), |p| format!("{code} {p}"))
}

/// genai-bench's per-request metrics of `r`: output metrics only when more than one token
/// came back, TPOT and speed dropped when the output took under 1 ms (its jitter filter).
pub fn request_metrics(r: &RequestRecord) -> RequestMetrics {
    if !r.ok {
        return RequestMetrics {
            error_code: Some(error_code(&r.error)),
            error_message: Some(r.error.clone()),
            ..Default::default()
        };
    }
    let input = r.prompt_len as f64;
    let output = r.output_len as f64;
    let output_latency = r.latency - r.ttft;
    let (mut tpot, mut speed, mut out_tput) = (None, None, None);
    if r.output_len > 1 {
        let t = output_latency / (output - 1.0);
        tpot = Some(t);
        speed = Some(1.0 / t);
        out_tput = Some(if output_latency > 0.0 {
            (output - 1.0) / output_latency
        } else {
            0.0
        });
    }
    if output_latency < 0.001 && tpot != Some(0.0) {
        tpot = None;
        speed = None;
    }
    RequestMetrics {
        values: [
            Some(r.ttft),
            tpot,
            Some(r.latency),
            Some(output_latency),
            speed,
            Some(input),
            Some(output),
            None,
            Some(input + output),
            Some(if r.ttft > 0.0 { input / r.ttft } else { 0.0 }),
            out_tput,
            None,
        ],
        error_code: None,
        error_message: None,
    }
}

/// `StatField`: min, max, mean, population stddev, sum and numpy's percentiles of `v`;
/// None for every entry when no request had the field.
pub fn stat_field(mut v: Vec<f64>) -> [Option<f64>; 11] {
    if v.is_empty() {
        return [None; 11];
    }
    v.sort_by(f64::total_cmp);
    let len = v.len() as f64;
    let sum: f64 = v.iter().sum();
    let mean = sum / len;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / len;
    let p = |q| Some(percentile(&v, q));
    [
        Some(v[0]),
        Some(v[v.len() - 1]),
        Some(mean),
        Some(var.sqrt()),
        Some(sum),
        p(25.0),
        p(50.0),
        p(75.0),
        p(90.0),
        p(95.0),
        p(99.0),
    ]
}

/// One run as genai-bench's `AggregatedMetrics`.
#[derive(Debug, Clone)]
pub struct Aggregated {
    pub scenario: String,
    /// The iteration value (`num_concurrency`).
    pub iteration: f64,
    pub run_duration: f64,
    pub mean_output_throughput: f64,
    pub mean_input_throughput: f64,
    pub mean_total_throughput: f64,
    pub requests_per_second: f64,
    /// Failed requests per HTTP status.
    pub error_codes: BTreeMap<u16, usize>,
    pub error_rate: f64,
    pub num_error_requests: usize,
    pub num_completed_requests: usize,
    pub num_requests: usize,
    /// `StatField` of each of `REQUEST_FIELDS[..12]`.
    pub stats: Vec<[Option<f64>; 11]>,
    pub requests: Vec<RequestMetrics>,
    /// Error texts, for the status labels.
    pub errors: Vec<String>,
}

impl Aggregated {
    fn stat(&self, field: &str, stat: &str) -> f64 {
        let f = REQUEST_FIELDS
            .iter()
            .position(|x| *x == field)
            .expect("a field");
        let s = STATS.iter().position(|x| *x == stat).expect("a stat");
        self.stats[f][s].unwrap_or(f64::NAN)
    }

    /// Output speed per request, the Summary's criterion (mean, genai-bench's default).
    pub fn speed(&self) -> f64 {
        self.stat("output_inference_speed", "mean")
    }
}

fn sum_of(reqs: &[RequestMetrics], field: usize) -> f64 {
    reqs.iter().filter_map(|r| r.values[field]).sum()
}

pub fn aggregate(r: &RunOutcome, scenario: String, iteration: f64) -> Aggregated {
    let requests: Vec<RequestMetrics> = r.records.iter().map(request_metrics).collect();
    let stats = (0..12)
        .map(|f| stat_field(requests.iter().filter_map(|q| q.values[f]).collect()))
        .collect();
    let mut error_codes = BTreeMap::new();
    for q in &requests {
        if let Some(c) = q.error_code {
            *error_codes.entry(c).or_insert(0) += 1;
        }
    }
    let d = r.summary.duration;
    let per_s = |x: f64| if d > 0.0 { x / d } else { 0.0 };
    let failed: usize = error_codes.values().sum();
    let completed = requests.len() - failed;
    Aggregated {
        scenario,
        iteration,
        run_duration: d,
        mean_output_throughput: per_s(sum_of(&requests, 6)),
        mean_input_throughput: per_s(sum_of(&requests, 5)),
        mean_total_throughput: per_s(sum_of(&requests, 8)),
        requests_per_second: per_s(completed as f64),
        error_rate: if requests.is_empty() {
            0.0
        } else {
            failed as f64 / requests.len() as f64
        },
        num_error_requests: failed,
        num_completed_requests: completed,
        num_requests: requests.len(),
        error_codes,
        stats,
        errors: r
            .records
            .iter()
            .filter(|x| !x.ok)
            .map(|x| x.error.clone())
            .collect(),
        requests,
    }
}

fn scenario(r: &RunOutcome) -> String {
    r.info
        .traffic_scenario
        .clone()
        .unwrap_or_else(|| r.info.dataset_name.clone())
}

/// genai-bench's `num_concurrency` of each run: the concurrency limit; in a sweep of request
/// rates, the rate (its convention for open-loop runs); with neither, every request was in
/// flight at once, so their number.
fn iterations(runs: &[RunOutcome]) -> Vec<f64> {
    let rates_vary = runs
        .windows(2)
        .any(|w| w[0].info.request_rate != w[1].info.request_rate);
    runs.iter()
        .map(|r| match r.info.max_concurrency {
            _ if rates_vary && r.info.request_rate.is_finite() => r.info.request_rate,
            Some(c) => c as f64,
            None if r.info.request_rate.is_finite() => r.info.request_rate,
            None => r.records.len() as f64,
        })
        .collect()
}

/// genai-bench's scenario name for the Use Case column.
fn use_case(s: &str) -> String {
    SCENARIO_NAMES
        .iter()
        .find(|(k, _)| *k == s)
        .map_or(s.to_string(), |(_, v)| v.to_string())
}

/// The runs as genai-bench orders them: its standard scenarios first (in its order), then
/// the others as they first appear; each scenario's runs by ascending iteration.
pub fn grouped(runs: &[RunOutcome]) -> Vec<(String, Vec<Aggregated>)> {
    let its = iterations(runs);
    let mut groups: Vec<(String, Vec<Aggregated>)> = Vec::new();
    for (r, &it) in runs.iter().zip(&its) {
        let s = scenario(r);
        let a = aggregate(r, s.clone(), it);
        match groups.iter_mut().find(|g| g.0 == s) {
            Some(g) => g.1.push(a),
            None => groups.push((s, vec![a])),
        }
    }
    let rank = |s: &str| {
        SCENARIO_NAMES
            .iter()
            .position(|(k, _)| *k == s)
            .unwrap_or(SCENARIO_NAMES.len())
    };
    groups.sort_by_key(|g| rank(&g.0));
    for g in &mut groups {
        g.1.sort_by(|a, b| a.iteration.total_cmp(&b.iteration));
    }
    groups
}

/// The Summary's pick for one scenario (its runs by ascending iteration): the highest
/// iteration whose speed is above [`TARGET_SPEED`], stopping at the first higher one that
/// adds under 5% total throughput and requests/s to the one chosen so far.
pub fn target(runs: &[Aggregated]) -> Option<&Aggregated> {
    let mut best: Option<&Aggregated> = None;
    for a in runs {
        if a.speed().is_nan() || a.speed() <= TARGET_SPEED {
            continue;
        }
        if let Some(b) = best
            && a.iteration > b.iteration
        {
            let rel = |x: f64, y: f64| (x - y).abs() / y;
            if rel(a.mean_total_throughput, b.mean_total_throughput) < PLATEAU
                && rel(a.requests_per_second, b.requests_per_second) < PLATEAU
            {
                break;
            }
        }
        if best.is_none_or(|b| a.iteration >= b.iteration) {
            best = Some(a);
        }
    }
    best
}

/// The number of GPUs the server reports (tp x dp), or N/A.
fn gpu_count(server_info: &Value) -> String {
    let tp = server_info.get("tp_size").and_then(Value::as_u64);
    let dp = server_info
        .get("dp_size")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    tp.map_or("N/A".into(), |tp| (tp * dp).to_string())
}

/// genai-bench's JSON block: 2-space indent, keys in order.
fn json_block(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("a Value serializes")
}

fn stat_json(s: &[Option<f64>; 11]) -> String {
    let m: serde_json::Map<String, Value> = STATS
        .iter()
        .zip(s)
        .map(|(k, v)| (k.to_string(), v.map_or(Value::Null, |x| json!(x))))
        .collect();
    json_block(&Value::Object(m))
}

/// The iteration values of the runs, each once, ascending (the metadata's list).
fn levels(all: &[&Aggregated]) -> Vec<String> {
    let mut v: Vec<f64> = all.iter().map(|a| a.iteration).collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v.iter().map(f64::to_string).collect()
}

/// Merged runs of rows for column `col`: (first, last) of each group of `sizes`.
fn spans(sizes: impl IntoIterator<Item = usize>, col: u16) -> Vec<(u32, u32, u16)> {
    let mut out = Vec::new();
    let mut at = 0u32;
    for s in sizes {
        if s > 1 {
            out.push((at, at + s as u32 - 1, col));
        }
        at += s as u32;
    }
    out
}

/// The workbook's sheets; `command` is the command line that ran the benchmark.
pub fn sheets(runs: &[RunOutcome], command: &str) -> Vec<Sheet> {
    let groups = grouped(runs);
    let first = &runs[0].info;
    let gpu = format!("{}xN/A", gpu_count(&first.server_info));
    let all: Vec<&Aggregated> = groups.iter().flat_map(|g| &g.1).collect();
    let number = Some(("#,##0.00".to_string(), 3));

    let summary = Sheet {
        name: "Summary".into(),
        header: vec![
            "GPU Type".into(),
            "Use Case".into(),
            format!("Concurrency at target speed (>{TARGET_SPEED} tokens/s)"),
            "Total Throughput (tokens/min)".into(),
        ],
        rows: groups
            .iter()
            .map(|(s, rs)| {
                let (c, tpm) = match target(rs) {
                    Some(a) => (n(a.iteration), n(a.mean_total_throughput * 60.0)),
                    None => (t("N/A"), t("N/A")),
                };
                vec![t(gpu.clone()), t(use_case(s)), c, tpm]
            })
            .collect(),
        merges: spans([groups.len()], 0),
        number_format: number.clone(),
        ..Default::default()
    };

    let appendix = Sheet {
        name: "Appendix".into(),
        header: [
            "GPU Type",
            "Use Case",
            "Concurrency",
            "TTFT (s)",
            "Output Inference Speed per Request (tokens/s)",
            "Output Throughput of Server (tokens/s)",
            "End-to-End Latency per Request (s)",
            "Request Throughput (RPS)",
            "Total Throughput (Input + Output) of Server (tokens/s)",
        ]
        .map(String::from)
        .to_vec(),
        rows: all
            .iter()
            .map(|a| {
                vec![
                    t(gpu.clone()),
                    t(use_case(&a.scenario)),
                    n(a.iteration),
                    n(a.stat("ttft", "mean")),
                    n(a.speed()),
                    n(a.mean_output_throughput),
                    n(a.stat("e2e_latency", "mean")),
                    n(a.requests_per_second),
                    n(a.mean_total_throughput),
                ]
            })
            .collect(),
        merges: [
            spans([all.len()], 0),
            spans(groups.iter().map(|g| g.1.len()), 1),
        ]
        .concat(),
        number_format: number,
        ..Default::default()
    };

    let join = |v: Vec<String>| v.join(", ");
    let si = |k: &str| {
        first
            .server_info
            .get(k)
            .and_then(Value::as_str)
            .map_or(Cell::Empty, t)
    };
    let model = first
        .server_info
        .get("served_model_name")
        .or_else(|| first.server_info.get("model_path"))
        .and_then(Value::as_str)
        .map_or(Cell::Empty, t);
    let engine = match first.backend.as_str() {
        b if b.starts_with("sglang") => "SGLang".to_string(),
        b if b.starts_with("vllm") => "vLLM".to_string(),
        b => b.to_string(),
    };
    let metadata = Sheet {
        name: "Experiment Metadata".into(),
        bold_first_column: true,
        rows: [
            ("cmd", t(command)),
            (
                "benchmark_version",
                t(format!("loupe {}", env!("CARGO_PKG_VERSION"))),
            ),
            ("api_backend", t(first.backend.clone())),
            ("auth_config", t("{}")),
            ("api_model_name", model.clone()),
            ("server_model_tokenizer", si("tokenizer_path")),
            ("model", model),
            ("task", t("text-to-text")),
            ("num_concurrency", t(join(levels(&all)))),
            ("batch_size", Cell::Empty),
            ("iteration_type", t("num_concurrency")),
            (
                "traffic_scenario",
                t(join(groups.iter().map(|g| g.0.clone()).collect())),
            ),
            ("additional_request_params", t("{}")),
            ("server_engine", t(engine)),
            ("server_version", si("version")),
            ("server_gpu_type", t("N/A")),
            ("server_gpu_count", t(gpu_count(&first.server_info))),
            ("max_time_per_run_s", Cell::Empty),
            (
                "max_requests_per_run",
                n(runs.iter().map(|r| r.records.len()).max().unwrap_or(0) as f64),
            ),
            ("experiment_folder_name", Cell::Empty),
            ("metrics_time_unit", t("s")),
            ("dataset_path", t(first.dataset_name.clone())),
        ]
        .into_iter()
        .map(|(k, v)| vec![t(k), v])
        .collect(),
        ..Default::default()
    };

    let stats_fields = &REQUEST_FIELDS[..12];
    let aggregated = Sheet {
        name: "Aggregated Metrics for Each Run".into(),
        header: [
            "scenario",
            "num_concurrency",
            "run_duration",
            "mean_output_throughput_tokens_per_s",
            "mean_input_throughput_tokens_per_s",
            "mean_total_tokens_throughput_tokens_per_s",
            "requests_per_second",
            "error_codes_frequency",
            "error_rate",
            "num_error_requests",
            "num_completed_requests",
            "num_requests",
        ]
        .into_iter()
        .map(String::from)
        .chain(stats_fields.iter().map(|f| header(f)))
        .collect(),
        rows: all
            .iter()
            .map(|a| {
                let codes: serde_json::Map<String, Value> = a
                    .error_codes
                    .iter()
                    .map(|(c, k)| (c.to_string(), json!(k)))
                    .collect();
                let mut row = vec![
                    t(a.scenario.clone()),
                    n(a.iteration),
                    n(a.run_duration),
                    n(a.mean_output_throughput),
                    n(a.mean_input_throughput),
                    n(a.mean_total_throughput),
                    n(a.requests_per_second),
                    t(json_block(&Value::Object(codes))),
                    n(a.error_rate),
                    n(a.num_error_requests as f64),
                    n(a.num_completed_requests as f64),
                    n(a.num_requests as f64),
                ];
                row.extend(a.stats.iter().map(|s| t(stat_json(s))));
                row
            })
            .collect(),
        // genai-bench wraps the columns after L (its JSON blocks).
        wrap_from: Some(12),
        ..Default::default()
    };

    let requests = Sheet {
        name: "Individual Request Metrics".into(),
        header: ["scenario", "num_concurrency"]
            .into_iter()
            .map(String::from)
            .chain(REQUEST_FIELDS.iter().map(|f| header(f)))
            .collect(),
        rows: all
            .iter()
            .flat_map(|a| {
                a.requests.iter().map(move |q| {
                    let mut row = vec![t(a.scenario.clone()), n(a.iteration)];
                    row.extend(q.values.iter().map(|v| opt(*v)));
                    row.push(opt(q.error_code.map(f64::from)));
                    row.push(q.error_message.clone().map_or(Cell::Empty, t));
                    row
                })
            })
            .collect(),
        merges: [
            spans(all.iter().map(|a| a.requests.len()), 0),
            spans(all.iter().map(|a| a.requests.len()), 1),
        ]
        .concat(),
        ..Default::default()
    };

    vec![
        summary,
        appendix,
        metadata,
        aggregated,
        requests,
        charts(&groups),
    ]
}

/// Columns of the Charts sheet's table, before the error rate of each status.
const CHART_COLUMNS: [&str; 11] = [
    "scenario",
    "num_concurrency",
    "run",
    "Output Throughput of Server (tokens/s)",
    "Total Throughput (Input + Output) of Server (tokens/s)",
    "RPS (req/s)",
    "Output Inference Speed per Request (tokens/s)",
    "TTFT (s)",
    "Mean E2E Latency per Request (s)",
    "P90 E2E Latency per Request (s)",
    "P99 E2E Latency per Request (s)",
];

/// The Charts sheet: a row per run with the plotted figures (and the error rate of each
/// HTTP status), and genai-bench's 2 x 4 grid under it.
fn charts(groups: &[(String, Vec<Aggregated>)]) -> Sheet {
    const SHEET: &str = "Charts";
    let all: Vec<&Aggregated> = groups.iter().flat_map(|g| &g.1).collect();
    let codes: Vec<u16> = all
        .iter()
        .flat_map(|a| a.error_codes.keys().copied())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let errors: Vec<&str> = all
        .iter()
        .flat_map(|a| a.errors.iter().map(String::as_str))
        .collect();
    let one = groups.len() == 1;
    let rows: Vec<Vec<Cell>> = all
        .iter()
        .map(|a| {
            let mut row = vec![
                t(a.scenario.clone()),
                n(a.iteration),
                t(if one {
                    a.iteration.to_string()
                } else {
                    format!("{} {}", a.scenario, a.iteration)
                }),
                n(a.mean_output_throughput),
                n(a.mean_total_throughput),
                n(a.requests_per_second),
                n(a.speed()),
                n(a.stat("ttft", "mean")),
                n(a.stat("e2e_latency", "mean")),
                n(a.stat("e2e_latency", "p90")),
                n(a.stat("e2e_latency", "p99")),
                n(a.error_rate),
            ];
            row.extend(codes.iter().map(|c| {
                let k = a.error_codes.get(c).copied().unwrap_or(0);
                n(if a.num_requests > 0 {
                    k as f64 / a.num_requests as f64
                } else {
                    0.0
                })
            }));
            row
        })
        .collect();
    let mut header: Vec<String> = CHART_COLUMNS.iter().map(|s| s.to_string()).collect();
    header.push("Error Rate".into());
    header.extend(
        codes
            .iter()
            .map(|&c| format!("Error Rate {}", status_label(c, &errors))),
    );
    // (title, x column, y column, x label, y label, log y): plot_config.py's 2x4_default.
    let grid: [(&str, u16, u16, &str, &str, bool); 8] = [
        (
            "Output Inference Speed per Request vs Output Throughput of Server",
            3,
            6,
            "Output Throughput of Server (tokens/s)",
            "Output Inference Speed per Request (tokens/s)",
            false,
        ),
        (
            "TTFT vs Output Throughput of Server",
            3,
            7,
            "Output Throughput of Server (tokens/s)",
            "TTFT (s)",
            true,
        ),
        (
            "Mean E2E Latency per Request vs RPS",
            5,
            8,
            "RPS (req/s)",
            "Mean E2E Latency per Request (s)",
            false,
        ),
        (
            "Error Rates by HTTP Status vs Concurrency",
            2,
            11,
            "Concurrency",
            "Error Rate",
            false,
        ),
        (
            "Output Inference Speed per Request vs Total Throughput (Input + Output) of Server",
            4,
            6,
            "Total Throughput (Input + Output) of Server (tokens/s)",
            "Output Inference Speed per Request (tokens/s)",
            false,
        ),
        (
            "TTFT vs Total Throughput (Input + Output) of Server",
            4,
            7,
            "Total Throughput (Input + Output) of Server (tokens/s)",
            "TTFT (s)",
            true,
        ),
        (
            "P90 E2E Latency per Request vs RPS",
            5,
            9,
            "RPS (req/s)",
            "P90 E2E Latency per Request (s)",
            false,
        ),
        (
            "P99 E2E Latency per Request vs RPS",
            5,
            10,
            "RPS (req/s)",
            "P99 E2E Latency per Request (s)",
            false,
        ),
    ];
    let below = rows.len() as u32 + 3;
    let last = rows.len().saturating_sub(1) as u32;
    let charts = grid
        .iter()
        .enumerate()
        .map(|(i, &(title, x, y, xl, yl, log_y))| {
            let (kind, series) = if y == 11 {
                // Stacked by status over every run, as genai-bench stacks its bars.
                let series = if codes.is_empty() {
                    vec![ChartSeries {
                        name: "Error Rate".into(),
                        sheet: SHEET.into(),
                        x_col: x,
                        y_col: 11,
                        first: 0,
                        last,
                        label_col: None,
                    }]
                } else {
                    codes
                        .iter()
                        .enumerate()
                        .map(|(k, &c)| ChartSeries {
                            name: status_label(c, &errors),
                            sheet: SHEET.into(),
                            x_col: x,
                            y_col: 12 + k as u16,
                            first: 0,
                            last,
                            label_col: None,
                        })
                        .collect()
                };
                (ChartKind::StackedColumns, series)
            } else {
                let mut at = 0u32;
                let series = groups
                    .iter()
                    .map(|(name, rs)| {
                        let s = ChartSeries {
                            name: format!("Scenario: {name}"),
                            sheet: SHEET.into(),
                            x_col: x,
                            y_col: y,
                            first: at,
                            last: at + rs.len() as u32 - 1,
                            label_col: Some(1),
                        };
                        at += rs.len() as u32;
                        s
                    })
                    .collect();
                (ChartKind::Lines, series)
            };
            SheetChart {
                kind,
                title: title.into(),
                x_label: xl.into(),
                y_label: yl.into(),
                log_y,
                series,
                row: below + 16 * (i as u32 / 4),
                col: 8 * (i as u16 % 4),
            }
        })
        .collect();
    Sheet {
        name: SHEET.into(),
        header,
        rows,
        charts,
        ..Default::default()
    }
}

/// The command line for the metadata sheet, secrets (`--api-key`, `--header` values) as ***.
fn redacted(args: impl IntoIterator<Item = String>) -> String {
    const SECRET: [&str; 2] = ["--api-key", "--header"];
    let mut out = Vec::new();
    let mut hide = false;
    for a in args {
        if hide {
            out.push("***".to_string());
            hide = false;
        } else if let Some((flag, _)) = a.split_once('=').filter(|(f, _)| SECRET.contains(f)) {
            out.push(format!("{flag}=***"));
        } else {
            hide = SECRET.contains(&a.as_str());
            out.push(a);
        }
    }
    out.join(" ")
}

/// Build the workbook and write it whole.
pub fn write(path: &Path, runs: &[RunOutcome]) -> anyhow::Result<()> {
    if runs.is_empty() {
        anyhow::bail!("--xlsx {}: no run to write", path.display());
    }
    let command = redacted(std::env::args());
    let bytes = xlsx::render(&sheets(runs, &command))?;
    loupe_trace::export::write_atomic(path, |w| std::io::Write::write_all(w, &bytes))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(iteration: f64, speed: f64, total: f64, rps: f64) -> Aggregated {
        let mut stats = vec![[None; 11]; 12];
        stats[4][2] = Some(speed);
        Aggregated {
            scenario: "D(100,100)".into(),
            iteration,
            run_duration: 1.0,
            mean_output_throughput: 0.0,
            mean_input_throughput: 0.0,
            mean_total_throughput: total,
            requests_per_second: rps,
            error_codes: BTreeMap::new(),
            error_rate: 0.0,
            num_error_requests: 0,
            num_completed_requests: 0,
            num_requests: 0,
            stats,
            requests: Vec::new(),
            errors: Vec::new(),
        }
    }

    #[test]
    fn the_summary_takes_the_highest_concurrency_above_the_target_speed() {
        let runs = [
            agg(1.0, 50.0, 100.0, 1.0),
            agg(2.0, 30.0, 190.0, 1.9),
            agg(4.0, 12.0, 350.0, 3.5),
            agg(8.0, 9.0, 600.0, 6.0),
        ];
        assert_eq!(target(&runs).unwrap().iteration, 4.0);
        // A higher concurrency that adds under 5% of both throughputs ends the search.
        let plateau = [
            agg(1.0, 50.0, 100.0, 1.0),
            agg(2.0, 40.0, 103.0, 1.03),
            agg(4.0, 30.0, 300.0, 3.0),
        ];
        assert_eq!(target(&plateau).unwrap().iteration, 1.0);
        assert!(target(&[agg(1.0, 5.0, 1.0, 1.0)]).is_none());
        assert!(target(&[agg(1.0, f64::NAN, 1.0, 1.0)]).is_none());
    }

    #[test]
    fn request_metrics_follow_genai_bench() {
        let r = RequestRecord {
            ok: true,
            prompt_len: 100,
            output_len: 11,
            ttft: 0.5,
            latency: 1.5,
            ..Default::default()
        };
        let m = request_metrics(&r);
        let v = |i: usize| m.values[i].unwrap();
        assert_eq!(v(1), 0.1, "tpot = output latency / (tokens - 1)");
        assert!((v(4) - 10.0).abs() < 1e-12, "speed = 1 / tpot");
        assert_eq!(v(8), 111.0, "total tokens");
        assert_eq!(v(9), 200.0, "input throughput = input / ttft");
        assert!((v(10) - 10.0).abs() < 1e-12);
        assert_eq!(m.values[7], None, "reasoning tokens are not known");
        // Under 1 ms of output: TPOT and speed are dropped (genai-bench's jitter filter).
        let fast = request_metrics(&RequestRecord {
            latency: 0.5005,
            ..r.clone()
        });
        assert_eq!((fast.values[1], fast.values[4]), (None, None));
        let failed = request_metrics(&RequestRecord {
            ok: false,
            error: "HTTP 429 Too Many Requests: slow down".into(),
            ..Default::default()
        });
        assert_eq!(failed.error_code, Some(429));
        assert!(failed.values.iter().all(Option::is_none));
        assert_eq!(error_code("cannot connect: refused"), 503);
        assert_eq!(error_code("timed out"), 408);
        assert_eq!(error_code("stream ended early"), 500);
        assert_eq!(
            status_label(429, &["HTTP 429 Too Many Requests: slow down"]),
            "429 Too Many Requests"
        );
        assert_eq!(status_label(503, &[]), "503 Service Unavailable");
    }

    #[test]
    fn the_command_line_hides_secrets() {
        let args = [
            "loupe",
            "bench",
            "--api-key",
            "sk-1",
            "--header=X-Auth: t",
            "--tag",
            "a",
        ];
        assert_eq!(
            redacted(args.map(String::from)),
            "loupe bench --api-key *** --header=*** --tag a"
        );
    }

    #[test]
    fn statistics_are_numpy_s() {
        let s = stat_field(vec![4.0, 1.0, 3.0, 2.0]);
        let g = |i: usize| s[i].unwrap();
        assert_eq!((g(0), g(1), g(2), g(4)), (1.0, 4.0, 2.5, 10.0));
        assert!((g(3) - 1.25f64.sqrt()).abs() < 1e-12, "population stddev");
        assert_eq!((g(5), g(6), g(7)), (1.75, 2.5, 3.25));
        assert!((g(10) - 3.97).abs() < 1e-12);
        assert_eq!(stat_field(Vec::new()), [None; 11]);
        assert_eq!(
            stat_json(&stat_field(vec![2.0])),
            "{\n  \"min\": 2.0,\n  \"max\": 2.0,\n  \"mean\": 2.0,\n  \"stddev\": 0.0,\n  \
             \"sum\": 2.0,\n  \"p25\": 2.0,\n  \"p50\": 2.0,\n  \"p75\": 2.0,\n  \"p90\": 2.0,\n  \
             \"p95\": 2.0,\n  \"p99\": 2.0\n}"
        );
    }
}
