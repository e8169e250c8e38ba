//! What a run produced, phase by phase: the executor fills it in, `summary.md` and the
//! command line read it.

use std::path::PathBuf;

/// One profiling phase: its trace files and its benchmark's record (or why there is none).
#[derive(Debug, Clone)]
pub struct PhaseOutcome {
    /// `prefill`, `decode` or `aggregated`.
    pub name: String,
    /// The trace files the server reported, or found in the phase's directory.
    pub trace_files: Vec<String>,
    /// The last JSONL record of the phase's `loupe bench`, or the reason it failed.
    pub bench: Result<serde_json::Value, String>,
    /// Its request timings (`loupe bench --request-timings`), when the file was written.
    pub timings: Option<PathBuf>,
}

/// One benchmark run (`benchmark.type: loupe`) against the first worker.
#[derive(Debug, Clone)]
pub struct BenchOutcome {
    pub concurrency: u64,
    /// The last JSONL record of the run's `loupe bench`, or the reason it failed.
    pub result: Result<serde_json::Value, String>,
    /// Its request timings (`loupe bench --request-timings`), when the file was written.
    pub timings: Option<PathBuf>,
}

/// Everything one job's run produced, in the order it ran.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub job: String,
    /// The run directory (config.yaml, plan.json, run.log, worker logs, results, traces).
    pub log_dir: PathBuf,
    pub phases: Vec<PhaseOutcome>,
    pub benches: Vec<BenchOutcome>,
}

impl JobOutcome {
    /// `<log_dir>/summary.md`.
    pub fn summary_path(&self) -> PathBuf {
        self.log_dir.join("summary.md")
    }

    /// Every benchmark record with the name `summary.md` gives it (`phase decode`,
    /// `concurrency 8`), phases first.
    pub fn bench_results(&self) -> Vec<(String, &serde_json::Value)> {
        let phases = self.phases.iter().filter_map(|p| {
            p.bench
                .as_ref()
                .ok()
                .map(|r| (format!("phase {}", p.name), r))
        });
        let benches = self.benches.iter().filter_map(|b| {
            b.result
                .as_ref()
                .ok()
                .map(|r| (format!("concurrency {}", b.concurrency), r))
        });
        phases.chain(benches).collect()
    }

    /// What went wrong, one line each: a phase without trace files, a failed benchmark.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.phases {
            if p.trace_files.is_empty() {
                out.push(format!("phase {}: no trace files were written", p.name));
            }
            if let Err(e) = &p.bench {
                out.push(format!("phase {}: {e}", p.name));
            }
        }
        out.extend(self.benches.iter().filter_map(|b| b.result.clone().err()));
        out
    }

    /// Every phase wrote traces and every benchmark produced a record.
    pub fn succeeded(&self) -> bool {
        self.failures().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcome() -> JobOutcome {
        JobOutcome {
            job: "j".into(),
            log_dir: PathBuf::from("/runs/j"),
            phases: vec![
                PhaseOutcome {
                    name: "prefill".into(),
                    trace_files: vec!["/runs/j/profiles/prefill/a.trace.json.gz".into()],
                    bench: Ok(json!({"completed": 128})),
                    timings: None,
                },
                PhaseOutcome {
                    name: "decode".into(),
                    trace_files: Vec::new(),
                    bench: Err("the benchmark at concurrency 4 generated 0 tokens".into()),
                    timings: None,
                },
            ],
            benches: vec![
                BenchOutcome {
                    concurrency: 2,
                    result: Ok(json!({"completed": 20})),
                    timings: None,
                },
                BenchOutcome {
                    concurrency: 8,
                    result: Err("the benchmark at concurrency 8 failed (exit status: 1)".into()),
                    timings: None,
                },
            ],
        }
    }

    #[test]
    fn failures_name_the_phase_in_run_order() {
        let o = outcome();
        assert_eq!(
            o.failures(),
            [
                "phase decode: no trace files were written",
                "phase decode: the benchmark at concurrency 4 generated 0 tokens",
                "the benchmark at concurrency 8 failed (exit status: 1)",
            ]
        );
        assert!(!o.succeeded());
        let names: Vec<String> = o.bench_results().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["phase prefill", "concurrency 2"]);
        assert_eq!(o.summary_path(), PathBuf::from("/runs/j/summary.md"));
    }

    #[test]
    fn a_run_with_traces_and_records_succeeded() {
        let mut o = outcome();
        o.phases.truncate(1);
        o.benches.truncate(1);
        assert!(o.succeeded(), "{:?}", o.failures());
    }
}
