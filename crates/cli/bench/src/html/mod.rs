//! `loupe bench --html`: a bench outcome as a report page (`run.rs`: one run's sections;
//! here: the page, and for a sweep its cross-run charts first, each run in a collapsed
//! section). With `--profile`, the profiled run's trace summary follows (`cmd::trace_html`).

pub mod run;
mod server_metrics;

use std::path::Path;

use loupe_bench::RunOutcome;
use loupe_bench::metrics::percentile;
use loupe_report::reduce;
use loupe_report::svg::{self, Stack};
use loupe_report::{Axis, Block, Chart, Page, Part, Scale, Section, Series, Style, Table};

/// Quantiles per run in the CDF overlays: 200 for a few runs, 100 at 16, no fewer than 50.
fn overlay_points(runs: usize) -> usize {
    (1_600 / runs.max(1)).clamp(50, 200)
}

/// The page for every run of one `loupe bench`; `records` are the runs' JSONL records.
pub fn page(runs: &[RunOutcome], swept: bool, records: Vec<serde_json::Value>) -> Page {
    let mut sections = Vec::new();
    let title;
    if runs.len() == 1 && !swept {
        let r = &runs[0];
        title = format!("loupe bench: {} ({})", r.label, r.info.backend);
        sections.extend(run::sections(r, "", run::Budget::ONE_RUN));
    } else {
        title = format!("loupe bench: sweep of {} runs", runs.len());
        sections.extend(runs_sections(runs, "", run::Budget::per_run(runs.len())));
    }
    for (i, r) in runs.iter().enumerate() {
        if let Some(p) = &r.info.profile {
            sections.push(profile_section(p, &format!("profile-{}", i + 1), &r.label));
        }
    }
    Page {
        title,
        subtitle: subtitle(runs),
        sections,
        records,
    }
}

/// Several runs: the cross-run charts first, then each run in a collapsed section within
/// `budget`; ids start with `prefix`.
pub fn runs_sections(runs: &[RunOutcome], prefix: &str, budget: run::Budget) -> Vec<Section> {
    let mut sections = vec![sweep(runs, prefix)];
    for (i, r) in runs.iter().enumerate() {
        sections.push(Section {
            id: format!("{prefix}run-{}", i + 1),
            title: format!("Run {}: {}", i + 1, r.label),
            children: run::sections(r, &format!("{prefix}run-{}-", i + 1), budget),
            collapsed: true,
            ..Default::default()
        });
    }
    sections
}

/// What was measured, from the outcome alone (a rebuilt page has the same bytes).
fn subtitle(runs: &[RunOutcome]) -> String {
    let Some(r) = runs.first() else {
        return "no runs".into();
    };
    let requests: usize = runs.iter().map(|r| r.records.len()).sum();
    let mut s = format!(
        "backend {}, dataset {}, {} run(s), {requests} requests",
        r.info.backend,
        r.info.dataset_name,
        runs.len()
    );
    if let Some(t) = &r.info.tag {
        s.push_str(&format!(", tag {t}"));
    }
    s
}

/// What a sweep varied, per run: (axis label, value).
fn load(r: &RunOutcome, i: usize) -> (&'static str, f64) {
    if let Some(c) = r.info.max_concurrency {
        ("max concurrency", c as f64)
    } else if r.info.request_rate.is_finite() {
        ("request rate (req/s)", r.info.request_rate)
    } else {
        ("run", (i + 1) as f64)
    }
}

fn point_chart(title: &str, caption: &str, x: Axis, y: Axis, names: &[&str]) -> Chart {
    Chart {
        title: title.into(),
        caption: caption.into(),
        x,
        y,
        series: names
            .iter()
            .map(|n| Series {
                label: n.to_string(),
                style: Style::Line,
                ys: Vec::new(),
            })
            .collect(),
        ..Default::default()
    }
}

fn by_x(rows: &[(f64, Vec<Option<f64>>)]) -> Vec<Part> {
    let n = rows.first().map_or(0, |r| r.1.len());
    vec![Part {
        xs: rows.iter().map(|r| r.0).collect(),
        ys: (0..n)
            .map(|s| (s, rows.iter().map(|r| r.1[s]).collect()))
            .collect(),
    }]
}

/// The cross-run charts of a sweep, and its summary table.
fn sweep(runs: &[RunOutcome], prefix: &str) -> Section {
    let (load_name, _) = load(&runs[0], 0);
    let log2 = load_name == "max concurrency";
    let load_axis = Axis {
        label: load_name.into(),
        scale: if log2 { Scale::Log } else { Scale::Linear },
    };
    let lin = |l: &str| Axis {
        label: l.into(),
        scale: Scale::Linear,
    };
    let log = |l: &str| Axis {
        label: l.into(),
        scale: Scale::Log,
    };
    let loads: Vec<f64> = runs.iter().enumerate().map(|(i, r)| load(r, i).1).collect();
    let some = |v: f64| Some(v);
    let throughput = point_chart(
        "Throughput vs load",
        "one point per run",
        load_axis.clone(),
        lin("per s"),
        &["output tok/s", "requests/s"],
    )
    .aligned(by_x(
        &runs
            .iter()
            .zip(&loads)
            .map(|(r, &x)| {
                (
                    x,
                    vec![
                        some(r.summary.output_throughput),
                        some(r.summary.request_throughput),
                    ],
                )
            })
            .collect::<Vec<_>>(),
    ));
    let latency = point_chart(
        "Latency vs achieved throughput",
        "one point per run, x = output tok/s",
        lin("output tok/s"),
        log("ms"),
        &["TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "E2E p99"],
    )
    .aligned(by_x(
        &runs
            .iter()
            .map(|r| {
                let s = &r.summary;
                (
                    s.output_throughput,
                    vec![
                        some(s.ttft.median),
                        some(s.ttft.p99),
                        some(s.tpot.median),
                        some(s.tpot.p99),
                        some(s.e2e.p99),
                    ],
                )
            })
            .collect::<Vec<_>>(),
    ));
    // tokens/s per user = 1000 / median TPOT (what one stream sees); the frontier keeps runs
    // no other run beats on both axes.
    let pts: Vec<(f64, f64)> = runs
        .iter()
        .map(|r| {
            let per_user = if r.summary.tpot.median > 0.0 {
                1000.0 / r.summary.tpot.median
            } else {
                0.0
            };
            (r.summary.output_throughput, per_user)
        })
        .collect();
    let frontier: Vec<Option<f64>> = pts
        .iter()
        .map(|&(x, y)| {
            let beaten = pts
                .iter()
                .any(|&(a, b)| a >= x && b >= y && (a > x || b > y));
            (!beaten).then_some(y)
        })
        .collect();
    let mut pareto = point_chart(
        "Per-user vs total output tokens/s",
        "tokens/s per user = 1000 / median TPOT; the line joins the Pareto frontier",
        lin("total output tok/s"),
        lin("tok/s per user"),
        &["runs", "frontier"],
    );
    pareto.series[0].style = Style::Points;
    let pareto = pareto.aligned(vec![Part {
        xs: pts.iter().map(|p| p.0).collect(),
        ys: vec![(0, pts.iter().map(|p| Some(p.1)).collect()), (1, frontier)],
    }]);
    let goodput = point_chart(
        "Goodput and errors vs load",
        "goodput needs --slo; error rate = failed / sent",
        load_axis.clone(),
        lin("%"),
        &["SLO attainment %", "error rate %"],
    )
    .aligned(by_x(
        &runs
            .iter()
            .zip(&loads)
            .map(|(r, &x)| {
                let sent = r.records.len().max(1) as f64;
                (
                    x,
                    vec![
                        r.beyond.goodput.as_ref().map(|g| g.slo_attainment * 100.0),
                        some(100.0 * r.summary.failed as f64 / sent),
                    ],
                )
            })
            .collect::<Vec<_>>(),
    ));
    let mut blocks = vec![
        Block::Pre(crate::table::summary(
            &runs.iter().map(RunOutcome::row).collect::<Vec<_>>(),
        )),
        Block::Chart(throughput),
        Block::Chart(latency),
        Block::Chart(pareto),
        Block::Chart(goodput),
    ];
    for (name, values) in [
        ("TTFT", ttfts as fn(&RunOutcome) -> Vec<f64>),
        ("TPOT", tpots),
    ] {
        blocks.push(Block::Chart(overlay(runs, name, values)));
    }
    let reasons: Vec<String> = {
        let mut all: Vec<String> = runs
            .iter()
            .flat_map(|r| run::errors_by_reason(r).into_iter().map(|e| e.0))
            .collect();
        all.sort();
        all.dedup();
        all
    };
    if reasons.is_empty() {
        blocks.push(Block::Text("No request failed in any run.".into()));
    } else {
        let rows: Vec<Stack> = runs
            .iter()
            .map(|r| {
                let e = run::errors_by_reason(r);
                Stack {
                    label: r.label.clone(),
                    parts: reasons
                        .iter()
                        .map(|k| e.iter().find(|x| &x.0 == k).map_or(0.0, |x| x.1 as f64))
                        .collect(),
                }
            })
            .collect();
        blocks.push(Block::Svg(svg::stacked(
            "Failed requests by reason, per run",
            "",
            &reasons,
            &rows,
            |v| format!("{v:.0}"),
        )));
    }
    blocks.push(Block::Table(Table {
        caption: "Runs (ms; tokens/s per user = 1000 / median TPOT)".into(),
        header: [
            "run",
            "load",
            "out tok/s",
            "req/s",
            "TTFT p50",
            "TTFT p99",
            "TPOT p50",
            "TPOT p99",
            "E2E p99",
            "tok/s/user",
            "failed",
        ]
        .map(String::from)
        .to_vec(),
        rows: runs
            .iter()
            .zip(&loads)
            .zip(&pts)
            .map(|((r, x), p)| {
                let s = &r.summary;
                let f = |v: f64| format!("{v:.2}");
                vec![
                    r.label.clone(),
                    x.to_string(),
                    f(s.output_throughput),
                    f(s.request_throughput),
                    f(s.ttft.median),
                    f(s.ttft.p99),
                    f(s.tpot.median),
                    f(s.tpot.p99),
                    f(s.e2e.p99),
                    f(p.1),
                    s.failed.to_string(),
                ]
            })
            .collect(),
    }));
    Section {
        id: format!("{prefix}sweep"),
        title: "Sweep".into(),
        blocks,
        ..Default::default()
    }
}

fn ttfts(r: &RunOutcome) -> Vec<f64> {
    r.records
        .iter()
        .filter(|x| x.ok)
        .map(|x| x.ttft * 1000.0)
        .collect()
}

fn tpots(r: &RunOutcome) -> Vec<f64> {
    r.records
        .iter()
        .filter(|x| x.ok)
        .filter_map(|x| x.tpot())
        .map(|t| t * 1000.0)
        .collect()
}

/// Every run's percentile curve of one metric on shared axes.
fn overlay(runs: &[RunOutcome], name: &str, values: fn(&RunOutcome) -> Vec<f64>) -> Chart {
    let mut chart = Chart {
        title: format!("{name} by percentile, every run"),
        caption: format!(
            "≤ {} percentiles per run, from all values",
            overlay_points(runs.len())
        ),
        x: Axis {
            label: "percentile".into(),
            scale: Scale::Nines,
        },
        y: Axis {
            label: "ms".into(),
            scale: Scale::Log,
        },
        ..Default::default()
    };
    let mut parts = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        chart.series.push(Series {
            label: r.label.clone(),
            style: Style::Line,
            ys: Vec::new(),
        });
        let mut v = values(r);
        v.sort_by(f64::total_cmp);
        let (xs, ys) = reduce::percentile_curve(&v, overlay_points(runs.len()), percentile);
        parts.push(Part {
            xs,
            ys: vec![(i, ys.into_iter().map(Some).collect())],
        });
    }
    chart.aligned(parts)
}

/// Render and write the page whole (temporary file, then rename).
pub fn write(path: &Path, page: &Page) -> anyhow::Result<()> {
    Ok(loupe_cli_observe::trace_html::write(path, page)?)
}

/// The profile a bench run took: its per-rank traces summarised, or why they could not be.
pub fn profile_section(
    p: &loupe_bench::profile::bench::ProfileReport,
    id: &str,
    run: &str,
) -> Section {
    let files: Vec<std::path::PathBuf> = p.files.iter().map(std::path::PathBuf::from).collect();
    let traces = loupe_trace::files::rank_traces(&files);
    let mut section = Section {
        id: id.into(),
        title: format!("Profile of {run}"),
        ..Default::default()
    };
    section.blocks.push(Block::Text(format!(
        "Profile {} in {}: {} file(s){}.",
        p.profile_id,
        p.output_dir,
        p.files.len(),
        if p.complete { "" } else { ", not all complete" }
    )));
    for e in p.errors.iter().chain(&p.notes) {
        section.blocks.push(Block::Text(e.clone()));
    }
    let summaries = loupe_trace::import::open_all(&traces, None).and_then(|inputs| {
        loupe_trace::analyze::summarize_all(&inputs, &loupe_trace::import::ReadOptions::default())
    });
    match summaries {
        Ok(s) if !s.is_empty() => {
            section.children =
                loupe_cli_observe::trace_html::summary_sections(&s, &format!("{id}-"))
        }
        Ok(_) => section
            .blocks
            .push(Block::Text("No per-rank trace among the files.".into())),
        Err(e) => section.blocks.push(Block::Text(format!(
            "The traces could not be summarised here: {e}"
        ))),
    }
    section
}
