//! `loupe report INPUT... -o FILE`: rebuild a page from saved outputs, without re-running.
//! Inputs: request-timings files written beside a bench page (`NAME.requests.jsonl`: every
//! run's JSONL record and every request's timings), bench JSONL files alone (their figures,
//! compared), profiler traces (any format loupe trace reads; which is which comes from the
//! file's bytes), or one `loupe run` directory.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use loupe_report::Page;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Request-timings files (`*.requests.jsonl` from `loupe bench --html`), trace files, or
    /// one `loupe run` directory.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The page to write (whole, under a temporary name first).
    #[arg(short, long)]
    pub output: PathBuf,
}

fn first_line(path: &Path) -> anyhow::Result<String> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut line = String::new();
    // A binary trace has no line to speak of: a short read is enough to tell.
    let _ = std::io::BufReader::new(f.take(1 << 20)).read_line(&mut line);
    Ok(line)
}

/// The page the inputs make.
pub fn build(inputs: &[PathBuf]) -> anyhow::Result<Page> {
    let mut runs = Vec::new();
    let mut traces = Vec::new();
    let mut records = Vec::new();
    if let [dir] = inputs
        && dir.is_dir()
    {
        return Ok(super::run_html::page(&super::run_html::outcome_of_dir(
            dir,
        )?));
    }
    for p in inputs {
        if p.is_dir() {
            anyhow::bail!(
                "{}: a directory among several inputs; give one `loupe run` directory alone",
                p.display()
            );
        }
        let line = first_line(p)?;
        if loupe_bench::timings::is_timings(&line) {
            runs.extend(loupe_bench::timings::read(p)?);
        } else if is_bench_record(&line) {
            records.push(p.clone());
        } else {
            traces.push(p.clone());
        }
    }
    let kinds = [!runs.is_empty(), !traces.is_empty(), !records.is_empty()];
    if kinds.iter().filter(|k| **k).count() > 1 {
        anyhow::bail!(
            "give one kind of input: request timings (NAME.requests.jsonl), bench JSONL \
             files, or traces"
        );
    }
    if !records.is_empty() {
        return records_page(&records);
    }
    if !runs.is_empty() {
        let records = runs
            .iter()
            .map(|r| loupe_bench::report::record(r, false))
            .collect();
        let swept = runs.len() > 1;
        return Ok(super::bench::html::page(&runs, swept, records));
    }
    let inputs = loupe_trace::import::open_all(&traces, None)?;
    let summaries =
        loupe_trace::analyze::summarize_all(&inputs, &loupe_trace::import::ReadOptions::default())?;
    let command = format!("rebuilt from {} trace file(s)", summaries.len());
    let mut page = super::trace_html::summary_page(&summaries, &command);
    if summaries.len() > 1 {
        let r = loupe_trace::analyze::ranks::compare(&summaries, 20);
        page.sections
            .extend(super::trace_html::ranks_page(&r, &command).sections);
    }
    Ok(page)
}

/// A bench JSONL line: bench_serving's keys.
fn is_bench_record(line: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .is_some_and(|v| v.get("backend").is_some() && v.get("request_throughput").is_some())
}

/// Bench JSONL files alone: every record's figures, compared (no request timings, so no
/// percentile curves or over-time charts; the page says where to get them).
fn records_page(files: &[PathBuf]) -> anyhow::Result<Page> {
    let mut values = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not a JSON record", f.display(), i + 1))?;
            let label = match (&v["max_concurrency"], &v["request_rate_label"]) {
                (serde_json::Value::Number(c), _) => format!("concurrency {c}"),
                (_, serde_json::Value::String(r)) => format!("rate {r}"),
                _ => format!("record {}", values.len() + 1),
            };
            let name = f.file_name().map_or_else(
                || f.display().to_string(),
                |n| n.to_string_lossy().to_string(),
            );
            values.push((format!("{label} ({name}:{})", i + 1), v));
        }
    }
    let results: Vec<(String, &serde_json::Value)> =
        values.iter().map(|(k, v)| (k.clone(), v)).collect();
    let mut blocks = super::run_html::records_blocks(&results);
    blocks.push(loupe_report::Block::Text(
        "Percentile curves and over-time charts need each request's timings: `loupe bench \
         --html FILE` writes them beside the page (FILE's .requests.jsonl), and `loupe report` \
         rebuilds the whole page from that file."
            .into(),
    ));
    Ok(Page {
        title: format!("loupe report: {} bench record(s)", results.len()),
        subtitle: "from bench JSONL records".into(),
        sections: vec![loupe_report::Section {
            id: "records".into(),
            title: "Benchmarks".into(),
            blocks,
            ..Default::default()
        }],
        records: values.iter().map(|(_, v)| v.clone()).collect(),
    })
}

pub fn run(args: ReportArgs) -> ExitCode {
    let page = match build(&args.inputs) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match super::bench::html::write(&args.output, &page) {
        Ok(()) => {
            eprintln!("report: {}", args.output.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
