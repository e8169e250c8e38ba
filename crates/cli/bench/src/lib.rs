//! `loupe bench`'s command layer, without SGLang's offline tools: bench_serving's flags
//! (`args.rs`; the ones loupe refuses, `refused.rs`) become a `loupe_bench::BenchPlan`; the run
//! is followed on the terminal (`terminal.rs`: status lines and the progress bar on stderr)
//! and reported from its outcome (`table.rs`: bench_serving's result block and loupe's
//! section after each run, the summary table after a sweep, on stdout); `--html` pages are
//! built from the outcome (`html/`), `--xlsx` workbooks in `xlsx.rs`. Part of crates/cli (the
//! `loupe` crate re-exports it as `loupe_cli::cmd::bench`), a crate of its own only so a cold
//! build compiles it beside loupe-offline and loupe-run; nothing outside crates/cli depends on
//! it.

pub mod args;
pub mod html;
mod plot;
mod print_requests;
mod refused;
pub mod table;
mod terminal;
#[cfg(feature = "xlsx")]
pub mod xlsx;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use args::BenchArgs;
use loupe_bench::BenchOutcome;

/// Run the benchmark the flags describe, showing it as `loupe bench` does; the outcome holds
/// every run's records and metrics.
pub async fn execute(args: BenchArgs) -> anyhow::Result<BenchOutcome> {
    if args.xlsx.is_some() && !cfg!(feature = "xlsx") {
        anyhow::bail!(
            "--xlsx: this loupe was built without the xlsx feature \
             (cargo build --release --features xlsx)"
        );
    }
    let plan = args.plan()?;
    let mut terminal =
        terminal::Terminal::new(!args.disable_tqdm).plot_throughput(args.plot_throughput);
    if args.print_requests {
        terminal = terminal.print_requests(print_requests::RequestPrinter::new(
            plan.requests.extra_body.clone(),
        ));
    }
    let terminal = Arc::new(terminal);
    let outcome = loupe_bench::run(plan, terminal).await?;
    if let Some(path) = &args.html {
        write_html(path, &outcome)?;
    }
    if let Some(path) = &args.request_timings {
        write_timings(path, &outcome)?;
        eprintln!("request timings: {}", path.display());
    }
    #[cfg(feature = "xlsx")]
    if let Some(path) = &args.xlsx {
        xlsx::write(path, &outcome.runs)?;
        eprintln!("workbook: {}", path.display());
    }
    Ok(outcome)
}

/// The request-timings sidecar of a report: `report.html` -> `report.requests.jsonl`.
pub fn timings_path(html: &Path) -> PathBuf {
    html.with_extension("requests.jsonl")
}

fn write_timings(path: &Path, outcome: &BenchOutcome) -> anyhow::Result<()> {
    let record = |r: &loupe_bench::RunOutcome| loupe_bench::report::record(r, false);
    loupe_bench::timings::write(path, &outcome.runs, record)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// The page and its request timings.
fn write_html(path: &Path, outcome: &BenchOutcome) -> anyhow::Result<()> {
    let record = |r: &loupe_bench::RunOutcome| loupe_bench::report::record(r, false);
    let timings = timings_path(path);
    write_timings(&timings, outcome)?;
    let records = outcome.runs.iter().map(record).collect();
    html::write(path, &html::page(&outcome.runs, outcome.swept, records))?;
    eprintln!(
        "report: {} (request timings: {})",
        path.display(),
        timings.display()
    );
    Ok(())
}
