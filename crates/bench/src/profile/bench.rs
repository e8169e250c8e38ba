//! `loupe bench --profile`: bench_serving's profiling request bodies, wrapped around the
//! measured phase. Unlike bench_serving, the run waits for the traces to be complete
//! (through `/profile_status` on loupe servers, by watching the output directory otherwise;
//! loupe-client's one wait loop) and reports the files it produced. It prints nothing: what
//! happened is in the `ProfileReport`, and start/stop are logged through `tracing`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use loupe_client::vllm::{self, VllmFile};
use loupe_client::{Engine, LaxInt, ProfileError, Server, StartProfile, WaitFor, Watched, trtllm};

use super::{ProfileEndpoint, summarize_rank_traces, summarize_traces};
use crate::error::{BenchError, Result};

/// What to profile around a run: bench_serving's `--profile*` flags (parsed in the command
/// layer) as plain values.
#[derive(Debug, Clone, Default)]
pub struct ProfileArgs {
    /// Profile the server during the measured run (POST /start_profile, /stop_profile).
    pub profile: bool,
    /// CPU, GPU, MEM, CUDA_PROFILER, XPU (and RPD on loupe servers).
    pub profile_activities: Vec<String>,
    /// Absolute forward step at which capture starts.
    pub profile_start_step: Option<u64>,
    /// Capture this many steps; the server stops by itself (no /stop_profile).
    pub profile_steps: Option<u64>,
    /// num_steps of the request (5 with `profile_by_stage` when unset).
    pub profile_num_steps: Option<u64>,
    pub profile_by_stage: bool,
    pub profile_stages: Vec<String>,
    /// Traces go to DIR/<timestamp> (default: $SGLANG_TORCH_PROFILER_DIR, else /tmp).
    pub profile_output_dir: Option<PathBuf>,
    pub profile_prefix: Option<String>,
    /// Disaggregated serving: profile the prefill/decode workers named below.
    pub pd_separated: bool,
    pub profile_prefill_url: Vec<String>,
    pub profile_decode_url: Vec<String>,
    /// How long to wait for the traces to be complete after the run, in seconds.
    pub profile_wait_timeout: f64,
    /// The engine whose profiling protocol to speak; `None`: ask the server.
    pub engine: Option<Engine>,
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
    pub fn start_body(&self, output_dir: &Path, profile_id: &str) -> StartProfile {
        let mut num_steps = self.profile_num_steps.map(LaxInt::Number);
        if self.profile_by_stage && num_steps.is_none() {
            num_steps = Some(LaxInt::Number(5));
        }
        // bench_serving sends these two as strings; SGLang's lax validation coerces them.
        if let Some(n) = self.profile_steps {
            num_steps = Some(LaxInt::Text(n));
        }
        StartProfile {
            activities: Some(self.profile_activities.clone()),
            num_steps,
            start_step: self.profile_start_step.map(LaxInt::Text),
            profile_by_stage: Some(self.profile_by_stage),
            profile_stages: (!self.profile_stages.is_empty()).then(|| self.profile_stages.clone()),
            output_dir: Some(output_dir.display().to_string()),
            profile_prefix: self.profile_prefix.clone(),
            profile_id: Some(profile_id.to_string()),
            ..Default::default()
        }
    }

    /// Whether bench_serving would call /stop_profile after the run.
    pub fn sends_stop(&self) -> bool {
        self.profile_steps.is_none() && (self.pd_separated || self.profile_num_steps.is_none())
    }

    /// Whether loupe stops `engine`'s profile after the run: when bench_serving would, and
    /// always for vLLM, which ignores SGLang's `num_steps` and whose automatic stop leaves
    /// its 409 guard set (a run that left vLLM profiling grows its trace until stopped).
    /// TensorRT-LLM and Dynamo are stopped always too ([`Engine::always_stops`]).
    pub fn stops(&self, engine: Engine) -> bool {
        engine.always_stops() || self.sends_stop()
    }

    /// The capture was bounded (the server may have stopped by itself before loupe's stop).
    fn bounded(&self) -> bool {
        self.profile_steps.is_some() || self.profile_num_steps.is_some()
    }
}

/// The traces a profiled run produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileReport {
    /// The engine whose protocol was spoken, and why (`vllm (/v1/models owned_by "vllm")`).
    pub engine: String,
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

/// A profile started around a run (cloned to stop it while `finish` runs).
#[derive(Clone)]
pub struct ProfileRun {
    /// (label, server, whether its /start_profile succeeded).
    endpoints: Vec<(String, Server, bool)>,
    args: ProfileArgs,
    engine: Engine,
    engine_line: String,
    /// Where the traces are looked for; `None`: not on this machine as far as loupe knows
    /// (a vLLM server that did not say its launch-time directory).
    output_dir: Option<PathBuf>,
    profile_id: String,
    started_at: SystemTime,
    errors: Vec<String>,
    notes: Vec<String>,
    /// vLLM's directory before the start (file and modification time): its earlier sessions
    /// share it, and `profiler_out.txt` is rewritten in place, so only new or rewritten files
    /// are this run's.
    before: Vec<(PathBuf, Option<SystemTime>)>,
}

fn modified_files(
    dir: &Path,
    is_output: &(dyn Fn(&str) -> bool + Sync),
) -> Vec<(PathBuf, Option<SystemTime>)> {
    loupe_client::list_outputs(dir, None, is_output)
        .into_iter()
        .map(|(p, _)| {
            let t = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
            (p, t)
        })
        .collect()
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
    /// Start profiling on the server (or the PD workers). Failures are recorded, logged and
    /// reported, but do not stop the benchmark (as bench_serving).
    pub async fn start(args: &ProfileArgs, main: ProfileEndpoint) -> Self {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let stamp = format!("{now:.6}");
        let main = main.server();
        let (engine, engine_line) = match args.engine {
            Some(e) => (e, format!("{e} (--engine)")),
            None => match main.detect_engine().await {
                Some(d) => (d.engine, format!("{} ({})", d.engine, d.because)),
                None => (
                    Engine::Sglang,
                    "sglang (nothing the server answered names its engine)".to_string(),
                ),
            },
        };
        tracing::info!("Engine: {engine_line}");
        let mut notes = Vec::new();
        let output_dir = if engine == Engine::Vllm {
            vllm_output_dir(args, &main, &mut notes).await
        } else {
            let dir = output_dir(args, &stamp);
            let _ = std::fs::create_dir_all(&dir);
            Some(dir)
        };
        let endpoints: Vec<(String, Server)> = if args.pd_separated {
            let worker = |kind: &str, i: usize, url: &str| (format!("{kind}-{i}"), main.at(url));
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
            engine,
            engine_line,
            profile_id: stamp.clone(),
            output_dir,
            // A second back: file times and this clock may differ by a rounding.
            started_at: SystemTime::now() - Duration::from_secs(1),
            errors: Vec::new(),
            notes,
            before: Vec::new(),
        };
        if engine == Engine::Vllm
            && let Some(d) = &run.output_dir
        {
            run.before = modified_files(d, &vllm::is_output);
        }
        let dir_for_body = run.output_dir.clone().unwrap_or_default();
        let mut body = args.start_body(&dir_for_body, &run.profile_id);
        if engine == Engine::Vllm {
            // vLLM's directory is fixed at launch; the body cannot carry one.
            body.output_dir = None;
        }
        for (label, server, started) in &mut run.endpoints {
            match server.start_profile_on(engine, &body).await {
                Ok(_) => {
                    *started = true;
                    tracing::info!("Profiler started ({label} at {})", server.base());
                }
                Err(e) => {
                    tracing::warn!("Failed to start the profiler ({label}): {e}");
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
            engine: self.engine_line.clone(),
            profile_id: self.profile_id.clone(),
            output_dir: self
                .output_dir
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            complete: true,
            notes: std::mem::take(&mut self.notes),
            ..Default::default()
        };
        let vllm = self.engine == Engine::Vllm;
        let dynamo_file = |n: &str| loupe_trace::files::is_profile_file(n) || vllm::is_output(n);
        let is_output: &(dyn Fn(&str) -> bool + Sync) = match self.engine {
            Engine::Vllm => &vllm::is_output,
            Engine::TensorrtLlm => &trtllm::is_output,
            Engine::Dynamo => &dynamo_file,
            Engine::Sglang => &loupe_trace::files::is_profile_file,
        };
        let wait_for = WaitFor {
            dir: self.output_dir.clone(),
            since: Some(self.started_at),
            // vLLM has no status route; its files are complete when /stop_profile answers,
            // so the listing only has to be seen twice.
            use_status: !vllm,
            dir_poll: if vllm {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(1)
            },
            ..WaitFor::new(Some(&self.profile_id), wait)
        };
        for (label, server, started) in &self.endpoints {
            if !started {
                // Its start was refused (the error is already recorded): nothing to wait for.
                report.complete = false;
                continue;
            }
            if self.args.stops(self.engine) {
                tracing::info!("Stopping the profiler ({label})...");
                match server.stop_profile_on(self.engine).await {
                    Ok(_) => {}
                    // A bounded capture the engine ended by itself: its stop has nothing to
                    // stop (SGLang's, behind Dynamo, answers 500 then).
                    Err(e @ (ProfileError::Refused { .. } | ProfileError::Client(_)))
                        if self.engine != Engine::Vllm
                            && self.args.bounded()
                            && !matches!(&e, ProfileError::Client(c) if c.status().is_none()) =>
                    {
                        report.notes.push(format!(
                            "stop ({label}): refused after the bounded capture (it had most \
                             likely stopped by itself): {e}"
                        ));
                    }
                    Err(e) => self.errors.push(format!("stop ({label}): {e}")),
                }
            }
            if vllm && self.output_dir.is_none() {
                report.complete = false;
                continue;
            }
            let mut outcome = server.wait_for_files(&wait_for, is_output).await;
            if let Ok(o) = &outcome
                && let Watched::Status(st) = &o.watched
                && !o.complete
            {
                // The server went idle before its step window completed: stop it so what
                // was captured is written.
                report.notes.push(format!(
                    "{label}: the profile was still {} after {:.0} s; stopped it so the steps \
                     captured ({}) are written",
                    st.state, self.args.profile_wait_timeout, st.steps_captured
                ));
                let _ = server.stop_profile_on(self.engine).await;
                if let Ok(again) = server.wait_for_files(&wait_for, is_output).await {
                    outcome = Ok(again);
                }
            }
            match outcome {
                Ok(o) => {
                    match o.watched {
                        Watched::Status(st) => self
                            .errors
                            .extend(st.errors.into_iter().map(|e| format!("{label}: {e}"))),
                        // No status route (an SGLang server): the directory was watched.
                        Watched::Directory(_) | Watched::Nothing if o.files.is_empty() => {
                            report.notes.push(format!(
                                "{label}: no trace files appeared in {} (traces are written on \
                                 the server's machine{})",
                                report.output_dir,
                                match self.engine {
                                    Engine::Vllm =>
                                        ", in the torch_profiler_dir of its --profiler-config",
                                    Engine::Dynamo => {
                                        "; dynamo.vllm workers ignore output_dir and write to \
                                         the torch_profiler_dir of their --profiler-config"
                                    }
                                    _ => "",
                                }
                            ));
                        }
                        Watched::Directory(_) | Watched::Nothing => {}
                    }
                    report.complete &= o.complete;
                    report.files.extend(o.files);
                }
                Err(e) => {
                    report.complete = false;
                    self.errors.push(format!("status ({label}): {e}"));
                }
            }
        }
        report.files.sort();
        report.files.dedup();
        if !self.before.is_empty() {
            report.files.retain(|f| {
                let t = std::fs::metadata(f).and_then(|m| m.modified()).ok();
                !self.before.contains(&(PathBuf::from(f), t))
            });
        }
        report.errors = self.errors;
        // The API server's CPU trace is no rank: it stays listed but out of the rank summary.
        let paths: Vec<PathBuf> = report
            .files
            .iter()
            .filter(|f| !vllm || vllm_file(f) != Some(VllmFile::Frontend))
            .map(PathBuf::from)
            .collect();
        report.summary = if self.engine == Engine::TensorrtLlm {
            // Its names are unverified: every JSON trace in the capture's directory is a rank's.
            summarize_rank_traces(
                paths
                    .into_iter()
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(trtllm::is_rank_trace)
                    })
                    .collect(),
            )
        } else {
            summarize_traces(&paths)
        };
        report
    }

    /// Stop every started endpoint now (Ctrl-C): the server must not be left profiling.
    pub async fn abandon(&self) {
        for (label, server, started) in &self.endpoints {
            if *started && let Err(e) = server.stop_profile_on(self.engine).await {
                tracing::warn!("Failed to stop the profiler ({label}): {e}");
            }
        }
    }
}

fn vllm_file(path: &str) -> Option<VllmFile> {
    Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(VllmFile::of)
}

/// Where a vLLM server writes: its launch-time `torch_profiler_dir`. `--profile-output-dir`
/// names it when the server shares this disk; else the server's dev-mode `/server_info`
/// may say it (then it is used only if it exists here); else loupe says where to look.
async fn vllm_output_dir(
    args: &ProfileArgs,
    server: &Server,
    notes: &mut Vec<String>,
) -> Option<PathBuf> {
    if let Some(d) = &args.profile_output_dir {
        let d = std::path::absolute(d).unwrap_or_else(|_| d.clone());
        notes.push(format!(
            "vLLM writes to the torch_profiler_dir it was launched with; looking for its files \
             in {} (--profile-output-dir)",
            d.display()
        ));
        return Some(d);
    }
    match server.vllm_profiler_dir().await {
        Some(d) if Path::new(&d).is_dir() => {
            notes.push(format!(
                "vLLM's torch_profiler_dir (from /server_info): {d}"
            ));
            Some(PathBuf::from(d))
        }
        Some(d) => {
            notes.push(format!(
                "vLLM writes its traces to {d} on the server's machine (not on this one)"
            ));
            None
        }
        None => {
            notes.push(
                "vLLM wrote its traces to the torch_profiler_dir of its --profiler-config, on \
                 the server's machine (dp<D>_pp<P>_tp<T>_dcp<C>_ep<E>_rank<N>.<ns>.pt.trace.json.gz \
                 per rank, <host>_<pid>.async_llm.<ns>.pt.trace.json.gz, *.profiler_out.txt); \
                 pass that directory as --profile-output-dir when it is on this machine"
                    .to_string(),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn start_body_follows_bench_serving() {
        let mut a = ProfileArgs {
            profile: true,
            profile_activities: vec!["CPU".into(), "GPU".into()],
            profile_by_stage: true,
            profile_wait_timeout: 1.0,
            ..Default::default()
        };
        let body = |a: &ProfileArgs, dir: &str, id: &str| {
            serde_json::to_value(a.start_body(Path::new(dir), id)).unwrap()
        };
        let b = body(&a, "/x/1.5", "1.5");
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
        let b = body(&a, "/x", "1");
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
