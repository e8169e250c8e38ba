//! `summary.md` at the end of a run: the benchmark figures, the trace files of each phase and
//! `loupe trace summary` of each phase's traces (with `loupe trace ranks` for several ranks).

use std::fmt::Write;

use crate::exec::Report;
use crate::plan::Plan;

fn num(v: &serde_json::Value, key: &str) -> String {
    v[key]
        .as_f64()
        .map_or_else(|| "-".into(), |x| format!("{x:.2}"))
}

pub fn write(plan: &Plan, report: &Report) -> std::io::Result<()> {
    let mut o = String::new();
    let _ = writeln!(o, "# {}\n", plan.job);
    let _ = writeln!(
        o,
        "Run directory: `{}`; profiling: {}.\n",
        plan.log_dir.display(),
        plan.profiling
    );
    if !report.bench_results.is_empty() {
        let _ = writeln!(o, "## Benchmarks\n");
        let _ = writeln!(
            o,
            "| run | completed | output tok/s | mean TTFT ms | mean TPOT ms | p99 ITL ms |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|");
        for (name, r) in &report.bench_results {
            let _ = writeln!(
                o,
                "| {name} | {} | {} | {} | {} | {} |",
                r["completed"],
                num(r, "output_throughput"),
                num(r, "mean_ttft_ms"),
                num(r, "mean_tpot_ms"),
                num(r, "p99_itl_ms")
            );
        }
        let _ = writeln!(o);
    }
    if !report.trace_files.is_empty() {
        let _ = writeln!(o, "## Traces\n");
        for (phase, files) in &report.trace_files {
            let _ = writeln!(o, "- {phase}: {} file(s)", files.len());
            for f in files {
                let _ = writeln!(o, "  - `{f}`");
            }
        }
        let _ = writeln!(o);
        for (phase, files) in &report.trace_files {
            let traces = loupe_trace::files::rank_traces(files);
            if traces.is_empty() {
                continue;
            }
            let _ = writeln!(o, "### {phase}: where the time goes\n");
            match loupe_trace::report::summary_text(&traces, 10) {
                Ok(text) => {
                    let _ = writeln!(o, "```\n{}```\n", text);
                }
                Err(e) => {
                    let _ = writeln!(o, "No summary: {e}\n");
                }
            }
        }
    }
    if !report.failures.is_empty() {
        let _ = writeln!(o, "## Failures\n");
        for f in &report.failures {
            let _ = writeln!(o, "- {f}");
        }
    }
    std::fs::write(plan.log_dir.join("summary.md"), o)
}
