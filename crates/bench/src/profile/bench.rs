//! `loupe bench --profile`: bench_serving's profiling flags and request bodies, wrapped around
//! the measured phase. Unlike bench_serving, the run waits for the traces to be complete
//! (through `/profile_status` on loupe servers, by watching the output directory otherwise)
//! and reports the files it produced.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::{ProfileEndpoint, summarize_traces, wait_files_stable};
use crate::error::{BenchError, Result};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProfileArgs {
    /// Profile the server during the measured run (POST /start_profile, /stop_profile).
    #[arg(long)]
    pub profile: bool,
    /// CPU, GPU, MEM, CUDA_PROFILER, XPU (and RPD on loupe servers).
    #[arg(long, num_args = 1.., default_values = ["CPU", "GPU"],
          value_parser = ["CPU", "GPU", "CUDA_PROFILER", "XPU", "MEM", "RPD"])]
    pub profile_activities: Vec<String>,
    /// Absolute forward step at which capture starts.
    #[arg(long)]
    pub profile_start_step: Option<u64>,
    /// Capture this many steps; the server stops by itself (no /stop_profile).
    #[arg(long)]
    pub profile_steps: Option<u64>,
    /// num_steps of the request (5 with --profile-by-stage when unset).
    #[arg(long)]
    pub profile_num_steps: Option<u64>,
    #[arg(long)]
    pub profile_by_stage: bool,
    #[arg(long, num_args = 1..)]
    pub profile_stages: Vec<String>,
    /// Traces go to DIR/<timestamp> (default: $SGLANG_TORCH_PROFILER_DIR, else /tmp).
    #[arg(long)]
    pub profile_output_dir: Option<PathBuf>,
    #[arg(long)]
    pub profile_prefix: Option<String>,
    /// Disaggregated serving: profile the prefill/decode workers named below.
    #[arg(long)]
    pub pd_separated: bool,
    #[arg(long, num_args = 0.., conflicts_with = "profile_decode_url")]
    pub profile_prefill_url: Vec<String>,
    #[arg(long, num_args = 0..)]
    pub profile_decode_url: Vec<String>,
    /// How long to wait for the traces to be complete after the run.
    #[arg(long, default_value_t = 120.0)]
    pub profile_wait_timeout: f64,
}

impl ProfileArgs {
    pub fn validate(&self) -> Result<()> {
        let usage = |m: &str| Err(BenchError::Usage(m.into()));
        let any_detail = self.profile_start_step.is_some()
            || self.profile_steps.is_some()
            || self.profile_num_steps.is_some()
            || self.profile_by_stage
            || !self.profile_stages.is_empty()
            || self.profile_output_dir.is_some()
            || self.profile_prefix.is_some()
            || !self.profile_prefill_url.is_empty()
            || !self.profile_decode_url.is_empty();
        if any_detail && !self.profile {
            return usage("the --profile-* flags need --profile");
        }
        let urls = !self.profile_prefill_url.is_empty() || !self.profile_decode_url.is_empty();
        if urls && !self.pd_separated {
            return usage("--profile-prefill-url/--profile-decode-url need --pd-separated");
        }
        if self.profile && self.pd_separated && !urls {
            return usage(
                "--pd-separated profiling needs --profile-prefill-url or --profile-decode-url",
            );
        }
        if self.profile_wait_timeout < 0.0 {
            return usage("--profile-wait-timeout must be >= 0");
        }
        Ok(())
    }

    /// bench_serving's start body, plus loupe's `profile_id` (older servers ignore it).
    pub fn start_body(&self, output_dir: &Path, profile_id: &str) -> Value {
        let mut num_steps = self.profile_num_steps.map(|n| json!(n));
        if self.profile_by_stage && num_steps.is_none() {
            num_steps = Some(json!(5));
        }
        // bench_serving sends these two as strings; SGLang's lax validation coerces them.
        if let Some(n) = self.profile_steps {
            num_steps = Some(json!(n.to_string()));
        }
        let mut body = json!({
            "activities": self.profile_activities,
            "num_steps": num_steps,
            "profile_by_stage": self.profile_by_stage,
            "profile_stages": (!self.profile_stages.is_empty()).then_some(&self.profile_stages),
            "output_dir": output_dir.display().to_string(),
            "profile_prefix": self.profile_prefix,
            "profile_id": profile_id,
        });
        if let Some(s) = self.profile_start_step {
            body["start_step"] = json!(s.to_string());
        }
        body
    }

    /// Whether bench_serving would call /stop_profile after the run.
    pub fn sends_stop(&self) -> bool {
        self.profile_steps.is_none() && (self.pd_separated || self.profile_num_steps.is_none())
    }
}

/// The traces a profiled run produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileReport {
    pub profile_id: String,
    pub output_dir: String,
    pub files: Vec<String>,
    /// Every file was written (status idle, or sizes stable) before the report.
    pub complete: bool,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
    /// From crates/trace once it is wired in (see `summarize_traces`).
    pub summary: Option<String>,
}

/// A profile started around a run.
pub struct ProfileRun {
    /// (label, endpoint, whether its /start_profile succeeded).
    endpoints: Vec<(String, ProfileEndpoint, bool)>,
    args: ProfileArgs,
    output_dir: PathBuf,
    profile_id: String,
    started_at: SystemTime,
    errors: Vec<String>,
}

/// `$dir/<time>` (absolute) as bench_serving names it, created here (useful when the server
/// shares this file system; harmless otherwise).
fn output_dir(args: &ProfileArgs, stamp: &str) -> PathBuf {
    let root = args
        .profile_output_dir
        .clone()
        .or_else(|| std::env::var_os("SGLANG_TORCH_PROFILER_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let root = std::path::absolute(&root).unwrap_or(root);
    root.join(stamp)
}

impl ProfileRun {
    /// Start profiling on the server (or the PD workers). Failures are recorded, printed and
    /// reported, but do not stop the benchmark (as bench_serving).
    pub async fn start(args: &ProfileArgs, main: ProfileEndpoint) -> Self {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let stamp = format!("{now:.6}");
        let output_dir = output_dir(args, &stamp);
        let _ = std::fs::create_dir_all(&output_dir);
        let endpoints: Vec<(String, ProfileEndpoint)> = if args.pd_separated {
            let worker = |kind: &str, i: usize, url: &str| {
                (
                    format!("{kind}-{i}"),
                    ProfileEndpoint {
                        base: url.trim_end_matches('/').to_string(),
                        ..main.clone()
                    },
                )
            };
            let prefill = args
                .profile_prefill_url
                .iter()
                .enumerate()
                .map(|(i, u)| worker("Prefill", i, u));
            let decode = args
                .profile_decode_url
                .iter()
                .enumerate()
                .map(|(i, u)| worker("Decode", i, u));
            prefill.chain(decode).collect()
        } else {
            vec![("server".to_string(), main)]
        };
        let mut run = ProfileRun {
            endpoints: endpoints.into_iter().map(|(l, e)| (l, e, false)).collect(),
            args: args.clone(),
            profile_id: stamp.clone(),
            output_dir,
            started_at: SystemTime::now(),
            errors: Vec::new(),
        };
        let body = args.start_body(&run.output_dir, &run.profile_id);
        for (label, ep, started) in &mut run.endpoints {
            match ep.start(&body).await {
                Ok(_) => {
                    *started = true;
                    eprintln!("Profiler started ({label} at {})", ep.base);
                }
                Err(e) => {
                    eprintln!("Failed to start the profiler ({label}): {e}");
                    run.errors.push(format!("start ({label}): {e}"));
                }
            }
        }
        run
    }

    /// Stop (when bench_serving would), wait for complete traces, list them.
    pub async fn finish(mut self) -> ProfileReport {
        let wait = Duration::from_secs_f64(self.args.profile_wait_timeout);
        let mut report = ProfileReport {
            profile_id: self.profile_id.clone(),
            output_dir: self.output_dir.display().to_string(),
            complete: true,
            ..Default::default()
        };
        for (label, ep, started) in &self.endpoints {
            if !started {
                // Its start was refused (the error is already recorded): nothing to wait for.
                report.complete = false;
                continue;
            }
            if self.args.sends_stop() {
                eprintln!("Stopping the profiler ({label})...");
                if let Err(e) = ep.stop().await {
                    self.errors.push(format!("stop ({label}): {e}"));
                }
            }
            match ep.wait_finished(Some(&self.profile_id), wait).await {
                Ok(Some((st, done))) => {
                    let (st, done) = if done {
                        (st, true)
                    } else {
                        // The server went idle before its step window completed: stop it so
                        // what was captured is written.
                        report.notes.push(format!(
                            "{label}: the profile was still {} after {:.0} s; stopped it so the \
                             steps captured ({}) are written",
                            st.state, self.args.profile_wait_timeout, st.steps_captured
                        ));
                        let _ = ep.stop().await;
                        match ep.wait_finished(Some(&self.profile_id), wait).await {
                            Ok(Some((st, done))) => (st, done),
                            _ => (st, false),
                        }
                    };
                    report.complete &= done;
                    report.files.extend(st.files);
                    self.errors
                        .extend(st.errors.into_iter().map(|e| format!("{label}: {e}")));
                }
                Ok(None) => {
                    // No status route (an SGLang server): watch the directory if it is here.
                    let (files, stable) =
                        wait_files_stable(&self.output_dir, Some(self.started_at), wait).await;
                    if files.is_empty() {
                        report.notes.push(format!(
                            "{label}: no trace files appeared in {} (traces are written on the \
                             server's machine)",
                            self.output_dir.display()
                        ));
                    }
                    report.complete &= stable;
                    report
                        .files
                        .extend(files.iter().map(|f| f.display().to_string()));
                }
                Err(e) => {
                    report.complete = false;
                    self.errors.push(format!("status ({label}): {e}"));
                }
            }
        }
        report.files.sort();
        report.files.dedup();
        report.errors = self.errors;
        let paths: Vec<PathBuf> = report.files.iter().map(PathBuf::from).collect();
        report.summary = summarize_traces(&paths);
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_body_follows_bench_serving() {
        let mut a = ProfileArgs {
            profile: true,
            profile_activities: vec!["CPU".into(), "GPU".into()],
            profile_by_stage: true,
            profile_wait_timeout: 1.0,
            ..Default::default()
        };
        let b = a.start_body(Path::new("/x/1.5"), "1.5");
        assert_eq!(b["num_steps"], 5, "by-stage defaults to 5 steps");
        assert_eq!(b["output_dir"], "/x/1.5");
        assert_eq!(b["profile_stages"], Value::Null);
        assert!(b.get("start_step").is_none());
        assert!(
            a.sends_stop(),
            "no --profile-num-steps: bench_serving stops"
        );
        a.profile_steps = Some(7);
        a.profile_start_step = Some(3);
        let b = a.start_body(Path::new("/x"), "1");
        assert_eq!(
            (b["num_steps"].clone(), b["start_step"].clone()),
            (json!("7"), json!("3"))
        );
        assert!(!a.sends_stop());
        a.profile_steps = None;
        a.profile_num_steps = Some(4);
        assert!(!a.sends_stop());
        a.pd_separated = true;
        assert!(a.sends_stop(), "PD mode stops unless --profile-steps");
    }

    #[test]
    fn flags_without_profile_are_refused() {
        let a = ProfileArgs {
            profile_num_steps: Some(3),
            ..Default::default()
        };
        assert!(a.validate().is_err());
        let pd = ProfileArgs {
            profile: true,
            pd_separated: true,
            ..Default::default()
        };
        assert!(
            pd.validate()
                .unwrap_err()
                .to_string()
                .contains("--profile-prefill-url")
        );
    }
}
