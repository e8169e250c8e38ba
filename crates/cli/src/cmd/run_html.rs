//! `summary.html` of `loupe run`, beside `summary.md`: every phase's and benchmark's figures
//! from their JSONL records, compared across them; from each one's request timings
//! (`concurrency_N.requests.jsonl` beside its record, which `loupe run` has its `loupe bench`
//! children write) the same sections `loupe bench --html` draws (percentile curves, latency
//! over the run with its onset marker, throughput and concurrency over time) and, for several
//! benchmark runs, the sweep's cross-run charts; and each phase's traces summarised
//! (`trace_html`). `loupe report RUN_DIR` reads a finished run directory back
//! (`outcome_of_dir`) and builds the same page.

use std::path::{Path, PathBuf};

use loupe_bench::RunOutcome;
use loupe_report::svg::{self, Bar};
use loupe_report::{Block, Page, Section, Table};
use loupe_run::{BenchOutcome, JobOutcome, PhaseOutcome};

use super::bench::html::{self as bench_html, run::Budget};

/// The record's figures shown per benchmark, as (JSONL key, column).
const FIGURES: [(&str, &str); 12] = [
    ("completed", "completed"),
    ("request_throughput", "req/s"),
    ("output_throughput", "out tok/s"),
    ("median_ttft_ms", "TTFT p50"),
    ("p99_ttft_ms", "TTFT p99"),
    ("median_tpot_ms", "TPOT p50"),
    ("p99_tpot_ms", "TPOT p99"),
    ("median_itl_ms", "ITL p50"),
    ("p99_itl_ms", "ITL p99"),
    ("median_e2e_latency_ms", "E2E p50"),
    ("p99_e2e_latency_ms", "E2E p99"),
    ("duration", "duration s"),
];

fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        serde_json::Value::Number(n) => format!("{:.2}", n.as_f64().unwrap_or(0.0)),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn bars_of(results: &[(String, &serde_json::Value)], key: &str) -> Vec<Bar> {
    results
        .iter()
        .map(|(name, r)| Bar {
            label: name.clone(),
            value: r[key].as_f64().unwrap_or(0.0),
            class: 0,
            tooltip: String::new(),
        })
        .collect()
}

/// A table of every record's headline figures and bars comparing them.
pub fn records_blocks(results: &[(String, &serde_json::Value)]) -> Vec<Block> {
    let mut blocks = vec![Block::Table(Table {
        caption: "Benchmarks (ms unless named), from each one's JSONL record".into(),
        header: std::iter::once("benchmark".to_string())
            .chain(FIGURES.iter().map(|f| f.1.to_string()))
            .collect(),
        rows: results
            .iter()
            .map(|(name, r)| {
                std::iter::once(name.clone())
                    .chain(FIGURES.iter().map(|(k, _)| cell(&r[*k])))
                    .collect()
            })
            .collect(),
    })];
    if !results.is_empty() {
        for (key, title) in [
            ("p99_ttft_ms", "TTFT p99 per benchmark"),
            ("p99_tpot_ms", "TPOT p99 per benchmark"),
            ("output_throughput", "Output tokens/s per benchmark"),
        ] {
            let unit = if key.ends_with("_ms") { "ms" } else { "tok/s" };
            blocks.push(Block::Svg(svg::bars(
                title,
                "",
                &bars_of(results, key),
                &[],
                |v| format!("{v:.2} {unit}"),
            )));
        }
    }
    blocks
}

/// A benchmark's run back from its request timings, named as `summary.md` names it; a
/// sentence saying why not when it cannot be.
fn timed_run(name: &str, timings: Option<&Path>) -> Result<RunOutcome, String> {
    let Some(path) = timings else {
        return Err(format!(
            "{name}: no request timings were written, so its requests are not drawn"
        ));
    };
    let mut runs = loupe_bench::timings::read(path)
        .map_err(|e| format!("{name}: its request timings could not be read: {e}"))?;
    match runs.len() {
        1 => {
            let mut r = runs.remove(0);
            r.label = name.to_string();
            Ok(r)
        }
        n => Err(format!(
            "{name}: {} holds {n} runs, not one",
            path.display()
        )),
    }
}

/// One run's sections, collapsed under `title`, drawn within its share of a page of
/// `runs` runs.
fn run_section(r: &RunOutcome, id: &str, title: String, runs: usize) -> Section {
    Section {
        id: id.to_string(),
        title,
        children: bench_html::run::sections(r, &format!("{id}-"), Budget::per_run(runs)),
        collapsed: true,
        ..Default::default()
    }
}

pub fn page(o: &JobOutcome) -> Page {
    let results = o.bench_results();
    let mut blocks = records_blocks(&results);
    for f in o.failures() {
        blocks.push(Block::Text(format!("Failed: {f}")));
    }
    // Every run with request timings shares the page's budget.
    let drawn = o
        .phases
        .iter()
        .filter(|p| p.bench.is_ok() && p.timings.is_some())
        .count()
        + o.benches
            .iter()
            .filter(|b| b.result.is_ok() && b.timings.is_some())
            .count();
    // The benchmark runs drawn request by request: a sweep over their concurrencies.
    let mut runs = Vec::new();
    for b in o.benches.iter().filter(|b| b.result.is_ok()) {
        let name = format!("concurrency {}", b.concurrency);
        match timed_run(&name, b.timings.as_deref()) {
            Ok(r) => runs.push(r),
            Err(e) => blocks.push(Block::Text(e)),
        }
    }
    let children = match runs.len() {
        0 => Vec::new(),
        1 => vec![run_section(
            &runs[0],
            "bench-run-1",
            format!("Run 1: {}", runs[0].label),
            drawn,
        )],
        _ => bench_html::runs_sections(&runs, "bench-", Budget::per_run(drawn)),
    };
    let mut sections = vec![Section {
        id: "benchmarks".into(),
        title: "Benchmarks".into(),
        blocks,
        children,
        ..Default::default()
    }];
    for p in &o.phases {
        let files: Vec<PathBuf> = p.trace_files.iter().map(PathBuf::from).collect();
        let traces = loupe_trace::files::rank_traces(&files);
        let mut s = Section {
            id: format!("phase-{}", p.name),
            title: format!("Phase {}: profile", p.name),
            ..Default::default()
        };
        let summaries = loupe_trace::import::open_all(&traces, None).and_then(|inputs| {
            loupe_trace::analyze::summarize_all(
                &inputs,
                &loupe_trace::import::ReadOptions::default(),
            )
        });
        if p.bench.is_ok() {
            let name = format!("phase {}", p.name);
            match timed_run(&name, p.timings.as_deref()) {
                Ok(r) => s.children.push(run_section(
                    &r,
                    &format!("{}-bench", s.id),
                    format!("Phase {}: benchmark", p.name),
                    drawn,
                )),
                Err(e) => s.blocks.push(Block::Text(e)),
            }
        }
        match summaries {
            Ok(v) if !v.is_empty() => {
                s.children.extend(super::trace_html::summary_sections(
                    &v,
                    &format!("{}-", s.id),
                ));
            }
            Ok(_) => s
                .blocks
                .push(Block::Text("No per-rank trace was written.".into())),
            Err(e) => s.blocks.push(Block::Text(format!(
                "The traces could not be summarised: {e}"
            ))),
        }
        sections.push(s);
    }
    Page {
        title: format!("loupe run: {}", o.job),
        subtitle: format!(
            "{} phase(s), {} benchmark(s)",
            o.phases.len(),
            results.len()
        ),
        sections,
        records: results.iter().map(|(_, r)| (*r).clone()).collect(),
    }
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    v
}

/// The last JSONL record of a benchmark's output file.
fn last_record(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| format!("{}: no record", path.display()))?;
    serde_json::from_str(line).map_err(|e| format!("{}: {e}", path.display()))
}

/// The request timings `loupe run` has written beside a benchmark's record, if any.
fn timings_beside(record: &Path) -> Option<PathBuf> {
    Some(record.with_extension("requests.jsonl")).filter(|p| p.is_file())
}

/// A finished run directory read back as the outcome it recorded: `profiles/<phase>/` for
/// each phase's traces, `profile_<phase>_isl_*/concurrency_*.json` for its benchmark and
/// `loupe-bench_isl_*/concurrency_<n>.json` for the benchmark runs (the names `loupe run`
/// gives them).
pub fn outcome_of_dir(dir: &Path) -> anyhow::Result<JobOutcome> {
    let profiles = dir.join("profiles");
    let entries = sorted_entries(dir);
    // The job's name and its phases' order as the run had them (plan.json), else the
    // directory's name and its phases by name.
    let plan = std::fs::read_to_string(dir.join("plan.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    let planned = plan
        .as_ref()
        .and_then(|v| v.get("job")?.as_str().map(str::to_string));
    let order: Vec<String> = plan
        .as_ref()
        .and_then(|v| v.get("phases")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.get("name")?.as_str().map(str::to_string))
        .collect();
    let named = |prefix: &str| -> Vec<PathBuf> {
        entries
            .iter()
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(prefix))
            })
            .flat_map(|d| sorted_entries(d))
            .filter(|f| f.extension().is_some_and(|e| e == "json"))
            .collect()
    };
    let mut phases: Vec<PhaseOutcome> = sorted_entries(&profiles)
        .into_iter()
        .filter(|p| p.is_dir())
        .map(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let record = named(&format!("profile_{name}_isl_")).first().cloned();
            let bench = record.as_ref().map_or_else(
                || Err(format!("phase {name}: no benchmark record")),
                |f| last_record(f),
            );
            PhaseOutcome {
                trace_files: sorted_entries(&p)
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect(),
                name,
                bench,
                timings: record.as_deref().and_then(timings_beside),
            }
        })
        .collect();
    phases.sort_by_key(|p| {
        order
            .iter()
            .position(|n| *n == p.name)
            .unwrap_or(order.len())
    });
    let mut benches: Vec<BenchOutcome> = named("loupe-bench_isl_")
        .iter()
        .filter_map(|f| {
            let c = f
                .file_stem()?
                .to_str()?
                .strip_prefix("concurrency_")?
                .parse()
                .ok()?;
            Some(BenchOutcome {
                concurrency: c,
                result: last_record(f),
                timings: timings_beside(f),
            })
        })
        .collect();
    benches.sort_by_key(|b| b.concurrency);
    if phases.is_empty() && benches.is_empty() {
        anyhow::bail!(
            "{}: not a loupe run directory (no profiles/ and no benchmark results)",
            dir.display()
        );
    }
    Ok(JobOutcome {
        job: planned.unwrap_or_else(|| {
            dir.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string()
        }),
        log_dir: dir.to_path_buf(),
        phases,
        benches,
    })
}

/// `<log_dir>/summary.html`, beside `summary.md`.
pub fn write(o: &JobOutcome) -> anyhow::Result<PathBuf> {
    let path = o.log_dir.join("summary.html");
    super::bench::html::write(&path, &page(o))?;
    Ok(path)
}
