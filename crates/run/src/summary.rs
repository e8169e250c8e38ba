//! `summary.md` at the end of a run: the benchmark figures, the trace files of each phase and
//! `loupe trace summary` of each phase's traces (with `loupe trace ranks` for several ranks).

use std::fmt::Write;
use std::io::Write as _;

use crate::outcome::JobOutcome;
use crate::plan::Plan;

fn num(v: &serde_json::Value, key: &str) -> String {
    v[key]
        .as_f64()
        .map_or_else(|| "-".into(), |x| format!("{x:.2}"))
}

/// The markdown of `summary.md`.
pub fn render(plan: &Plan, outcome: &JobOutcome) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {}\n", plan.job);
    let _ = writeln!(
        o,
        "Run directory: `{}`; profiling: {}.\n",
        plan.log_dir.display(),
        plan.profiling
    );
    let results = outcome.bench_results();
    if !results.is_empty() {
        let _ = writeln!(o, "## Benchmarks\n");
        let _ = writeln!(
            o,
            "| run | completed | output tok/s | mean TTFT ms | mean TPOT ms | p99 ITL ms |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|");
        for (name, r) in &results {
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
    if !outcome.phases.is_empty() {
        let _ = writeln!(o, "## Traces\n");
        for p in &outcome.phases {
            let _ = writeln!(o, "- {}: {} file(s)", p.name, p.trace_files.len());
            for f in &p.trace_files {
                let _ = writeln!(o, "  - `{f}`");
            }
        }
        let _ = writeln!(o);
        for p in &outcome.phases {
            let traces = loupe_trace::files::rank_traces(&p.trace_files);
            if traces.is_empty() {
                continue;
            }
            let _ = writeln!(o, "### {}: where the time goes\n", p.name);
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
    let failures = outcome.failures();
    if !failures.is_empty() {
        let _ = writeln!(o, "## Failures\n");
        for f in &failures {
            let _ = writeln!(o, "- {f}");
        }
    }
    o
}

/// Write `summary.md` into the run directory (whole or not at all).
pub fn write(plan: &Plan, outcome: &JobOutcome) -> std::io::Result<()> {
    let text = render(plan, outcome);
    loupe_trace::export::write_atomic(&outcome.summary_path(), |w| w.write_all(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;
    use crate::outcome::{BenchOutcome, PhaseOutcome};

    fn plan(dir: PathBuf) -> Plan {
        Plan {
            job: "pd".into(),
            log_dir: dir,
            host: "127.0.0.1".into(),
            workers: Vec::new(),
            phases: Vec::new(),
            benches: Vec::new(),
            health: Default::default(),
            profiling: "torch",
            loupe_bin: PathBuf::from("loupe"),
            hostname: "node0".into(),
            engine: None,
            model_path: "m".into(),
        }
    }

    #[test]
    fn the_summary_lists_results_traces_and_failures() {
        let dir = tempfile::tempdir().unwrap();
        let outcome = JobOutcome {
            job: "pd".into(),
            log_dir: dir.path().to_path_buf(),
            phases: vec![
                PhaseOutcome {
                    name: "prefill".into(),
                    // Not a trace file loupe trace reads: listed, not summarised.
                    trace_files: vec!["/x/prefill.nsys-rep".into()],
                    bench: Ok(json!({"completed": 128, "output_throughput": 1234.5678,
                        "mean_ttft_ms": 1.0, "mean_tpot_ms": 2.25})),
                    timings: None,
                },
                PhaseOutcome {
                    name: "decode".into(),
                    trace_files: Vec::new(),
                    bench: Err("the benchmark at concurrency 4 generated 0 tokens".into()),
                    timings: None,
                },
            ],
            benches: vec![BenchOutcome {
                concurrency: 8,
                result: Ok(json!({"completed": 80, "output_throughput": 10.0,
                    "mean_ttft_ms": 3.0, "mean_tpot_ms": 4.0, "p99_itl_ms": 5.5})),
                timings: None,
            }],
        };
        write(&plan(dir.path().to_path_buf()), &outcome).unwrap();
        let text = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
        let want = format!(
            "# pd\n\nRun directory: `{}`; profiling: torch.\n\n## Benchmarks\n\n\
             | run | completed | output tok/s | mean TTFT ms | mean TPOT ms | p99 ITL ms |\n\
             |---|---|---|---|---|---|\n\
             | phase prefill | 128 | 1234.57 | 1.00 | 2.25 | - |\n\
             | concurrency 8 | 80 | 10.00 | 3.00 | 4.00 | 5.50 |\n\n\
             ## Traces\n\n- prefill: 1 file(s)\n  - `/x/prefill.nsys-rep`\n- decode: 0 file(s)\n\n\
             ## Failures\n\n- phase decode: no trace files were written\n\
             - phase decode: the benchmark at concurrency 4 generated 0 tokens\n",
            dir.path().display()
        );
        assert_eq!(text, want);
        // Written whole through a temporary file: nothing else is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
