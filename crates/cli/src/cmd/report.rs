//! `loupe report INPUT... -o FILE`: rebuild a page from saved outputs, without re-running.
//! Inputs: request-timings files written beside a bench page (`NAME.requests.jsonl`: every
//! run's JSONL record and every request's timings), profiler traces (any format loupe trace
//! reads; which is which comes from the file's bytes), or one `loupe run` directory.

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
        if loupe_bench::timings::is_timings(&first_line(p)?) {
            runs.extend(loupe_bench::timings::read(p)?);
        } else {
            traces.push(p.clone());
        }
    }
    if !runs.is_empty() && !traces.is_empty() {
        anyhow::bail!(
            "give either request timings or traces, not both ({} is a trace)",
            traces[0].display()
        );
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
