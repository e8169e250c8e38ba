//! `loupe bench --xlsx`: genai-bench's workbook for its users, from a bench outcome. Its
//! sheet names and headers (latencies in seconds, its default; per-run figures as the mean,
//! its default percentile), plus a `Charts` sheet with its 2 x 4 grid of plots as native
//! charts over the cells, a series per traffic scenario. Where loupe does not measure what a
//! column holds (characters per hour, GPU type), the cell says N/A.

use std::path::Path;

use loupe_bench::RunOutcome;
use loupe_report::xlsx::{self, Cell, ChartSeries, Sheet, SheetChart};

/// genai-bench's "target speed": the highest concurrency whose mean per-request output speed
/// stays above this many tokens/s.
const TARGET_SPEED: f64 = 10.0;

fn n(x: f64) -> Cell {
    Cell::Number(x)
}

fn t(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn scenario(r: &RunOutcome) -> String {
    r.info
        .traffic_scenario
        .clone()
        .unwrap_or_else(|| r.info.dataset_name.clone())
}

fn concurrency(r: &RunOutcome) -> f64 {
    r.info.max_concurrency.map_or(f64::NAN, |c| c as f64)
}

/// Output tokens per second of one request after its first token (1 / TPOT).
fn speeds(r: &RunOutcome) -> Vec<f64> {
    r.records
        .iter()
        .filter(|x| x.ok)
        .filter_map(|x| x.tpot())
        .filter(|&t| t > 0.0)
        .map(|t| 1.0 / t)
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn gpu_type(r: &RunOutcome) -> String {
    // genai-bench's "<count>x<type>"; the server reports neither, so only the TP size when
    // server_info has it.
    let tp = r.info.server_info.get("tp_size").and_then(|v| v.as_u64());
    tp.map_or("N/A".into(), |tp| format!("{tp}xN/A"))
}

/// Runs grouped by scenario (in first-seen order), each group sorted by concurrency.
fn by_scenario(runs: &[RunOutcome]) -> Vec<(String, Vec<&RunOutcome>)> {
    let mut groups: Vec<(String, Vec<&RunOutcome>)> = Vec::new();
    for r in runs {
        let s = scenario(r);
        match groups.iter_mut().find(|g| g.0 == s) {
            Some(g) => g.1.push(r),
            None => groups.push((s, vec![r])),
        }
    }
    for g in &mut groups {
        g.1.sort_by(|a, b| concurrency(a).total_cmp(&concurrency(b)));
    }
    groups
}

pub fn sheets(runs: &[RunOutcome]) -> Vec<Sheet> {
    let groups = by_scenario(runs);
    let gpu = runs.first().map(gpu_type).unwrap_or_default();
    let summary = Sheet {
        name: "Summary".into(),
        header: vec![
            "GPU Type".into(),
            "Use Case".into(),
            format!("Concurrency at target speed (>{TARGET_SPEED} tokens/s)"),
            "Total Characters per hour".into(),
        ],
        rows: groups
            .iter()
            .map(|(s, rs)| {
                let best = rs
                    .iter()
                    .filter(|r| mean(&speeds(r)) > TARGET_SPEED)
                    .map(|r| concurrency(r))
                    .fold(f64::NAN, f64::max);
                vec![
                    t(gpu.clone()),
                    t(s.clone()),
                    if best.is_nan() { t("N/A") } else { n(best) },
                    t("N/A"),
                ]
            })
            .collect(),
        charts: Vec::new(),
    };
    // Appendix columns, in genai-bench's order.
    let appendix_rows: Vec<Vec<Cell>> = groups
        .iter()
        .flat_map(|(s, rs)| {
            let gpu = gpu.clone();
            rs.iter().map(move |r| {
                let sm = &r.summary;
                vec![
                    t(gpu.clone()),
                    t(s.clone()),
                    n(concurrency(r)),
                    n(sm.ttft.mean / 1000.0),
                    n(mean(&speeds(r))),
                    n(sm.output_throughput),
                    n(sm.e2e.mean / 1000.0),
                    n(sm.request_throughput),
                    n(sm.total_throughput),
                ]
            })
        })
        .collect();
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
        rows: appendix_rows,
        charts: Vec::new(),
    };
    let first = &runs[0].info;
    let metadata = Sheet {
        name: "Experiment Metadata".into(),
        header: Vec::new(),
        rows: vec![
            vec![t("backend"), t(first.backend.clone())],
            vec![t("dataset_name"), t(first.dataset_name.clone())],
            vec![t("metrics_time_unit"), t("s")],
            vec![t("iteration_type"), t("num_concurrency")],
            vec![
                t("num_concurrency"),
                t(runs
                    .iter()
                    .map(|r| concurrency(r).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")),
            ],
            vec![
                t("traffic_scenario"),
                t(groups
                    .iter()
                    .map(|g| g.0.clone())
                    .collect::<Vec<_>>()
                    .join(", ")),
            ],
            vec![t("server_info"), t(first.server_info.to_string())],
        ],
        charts: Vec::new(),
    };
    let aggregated = Sheet {
        name: "Aggregated Metrics for Each Run".into(),
        header: [
            "scenario",
            "num_concurrency",
            "num_completed_requests",
            "num_error_requests",
            "error_rate",
            "run_duration (s)",
            "requests_per_second",
            "mean_output_throughput_tokens_per_s",
            "mean_total_tokens_throughput_tokens_per_s",
            "ttft_p50 (s)",
            "ttft_p99 (s)",
            "tpot_p50 (s)",
            "tpot_p99 (s)",
            "e2e_latency_mean (s)",
            "e2e_latency_p90 (s)",
            "e2e_latency_p99 (s)",
        ]
        .map(String::from)
        .to_vec(),
        rows: groups
            .iter()
            .flat_map(|(s, rs)| {
                rs.iter().map(move |r| {
                    let sm = &r.summary;
                    let sent = r.records.len().max(1) as f64;
                    vec![
                        t(s.clone()),
                        n(concurrency(r)),
                        n(sm.completed as f64),
                        n(sm.failed as f64),
                        n(sm.failed as f64 / sent),
                        n(sm.duration),
                        n(sm.request_throughput),
                        n(sm.output_throughput),
                        n(sm.total_throughput),
                        n(sm.ttft.median / 1000.0),
                        n(sm.ttft.p99 / 1000.0),
                        n(sm.tpot.median / 1000.0),
                        n(sm.tpot.p99 / 1000.0),
                        n(sm.e2e.mean / 1000.0),
                        n(sm.e2e.p90 / 1000.0),
                        n(sm.e2e.p99 / 1000.0),
                    ]
                })
            })
            .collect(),
        charts: Vec::new(),
    };
    let requests = Sheet {
        name: "Individual Request Metrics".into(),
        header: [
            "scenario",
            "num_concurrency",
            "ttft (s)",
            "tpot (s)",
            "e2e_latency (s)",
            "output_latency (s)",
            "output_inference_speed",
            "num_input_tokens",
            "num_output_tokens",
            "error_message",
        ]
        .map(String::from)
        .to_vec(),
        rows: groups
            .iter()
            .flat_map(|(s, rs)| {
                rs.iter().flat_map(move |r| {
                    r.records.iter().map(move |x| {
                        let tpot = x.tpot();
                        vec![
                            t(s.clone()),
                            n(concurrency(r)),
                            n(x.ttft),
                            tpot.map_or(Cell::Empty, n),
                            n(x.latency),
                            n(x.latency - x.ttft),
                            tpot.filter(|&v| v > 0.0)
                                .map_or(Cell::Empty, |v| n(1.0 / v)),
                            n(x.prompt_len as f64),
                            n(if x.ok { x.output_len as f64 } else { 0.0 }),
                            if x.ok {
                                Cell::Empty
                            } else {
                                t(x.error.clone())
                            },
                        ]
                    })
                })
            })
            .collect(),
        charts: Vec::new(),
    };
    let charts = Sheet {
        name: "Charts".into(),
        header: vec!["genai-bench's plots, over the Appendix and Aggregated Metrics sheets".into()],
        rows: Vec::new(),
        charts: chart_grid(&groups),
    };
    vec![summary, appendix, metadata, aggregated, requests, charts]
}

/// genai-bench's 2 x 4 grid: (title, sheet, x column, y column, log y).
fn chart_grid(groups: &[(String, Vec<&RunOutcome>)]) -> Vec<SheetChart> {
    const APPX: &str = "Appendix";
    const AGG: &str = "Aggregated Metrics for Each Run";
    let grid: [(&str, &str, u16, u16, bool, &str, &str); 8] = [
        (
            "Output speed per request vs server output throughput",
            APPX,
            5,
            4,
            false,
            "server output tok/s",
            "tok/s per request",
        ),
        (
            "TTFT vs server output throughput",
            APPX,
            5,
            3,
            true,
            "server output tok/s",
            "TTFT (s)",
        ),
        (
            "Mean E2E latency vs RPS",
            APPX,
            7,
            6,
            false,
            "requests/s",
            "E2E (s)",
        ),
        (
            "Error rate vs concurrency",
            AGG,
            1,
            4,
            false,
            "concurrency",
            "error rate",
        ),
        (
            "Output speed per request vs total throughput",
            APPX,
            8,
            4,
            false,
            "total tok/s",
            "tok/s per request",
        ),
        (
            "TTFT vs total throughput",
            APPX,
            8,
            3,
            true,
            "total tok/s",
            "TTFT (s)",
        ),
        (
            "P90 E2E latency vs RPS",
            AGG,
            6,
            14,
            false,
            "requests/s",
            "E2E p90 (s)",
        ),
        (
            "P99 E2E latency vs RPS",
            AGG,
            6,
            15,
            false,
            "requests/s",
            "E2E p99 (s)",
        ),
    ];
    grid.iter()
        .enumerate()
        .map(|(i, &(title, sheet, x, y, log_y, xl, yl))| {
            let mut first = 0u32;
            let series = groups
                .iter()
                .map(|(name, rs)| {
                    let s = ChartSeries {
                        name: name.clone(),
                        sheet: sheet.into(),
                        x_col: x,
                        y_col: y,
                        first,
                        last: first + rs.len() as u32 - 1,
                    };
                    first += rs.len() as u32;
                    s
                })
                .collect();
            SheetChart {
                title: title.into(),
                x_label: xl.into(),
                y_label: yl.into(),
                log_y,
                series,
                row: 2 + 16 * (i as u32 / 4),
                col: 8 * (i as u16 % 4),
            }
        })
        .collect()
}

/// Build the workbook and write it whole.
pub fn write(path: &Path, runs: &[RunOutcome]) -> anyhow::Result<()> {
    let bytes = xlsx::render(&sheets(runs))?;
    loupe_trace::export::write_atomic(path, |w| std::io::Write::write_all(w, &bytes))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}
