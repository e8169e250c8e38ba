//! The profiler: a session state machine driven by `/start_profile`/`/stop_profile` and by
//! the engine's step observer, and a background writer that turns finished captures into
//! files. Serving never waits on an export: the scheduler thread only copies its step report
//! into a buffer; the writer thread does all formatting, compression and disk I/O and reports
//! each finished job on a channel, which a small thread of the profiler's applies to the
//! session.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use loupe_client::{ProfileState, ProfileStatus};
use loupe_engine::observer::{StepInfo, StepObserver, StepReport};

use crate::capture::{Capture, CapturedStep, Clock, ExportSpec, HostSpan, new_profile_id};
use crate::error::{ALREADY_RUNNING, NOT_RUNNING, ProfileError};
use crate::request::{Activity, StartRequest};
use crate::window::{Stage, Window};
use crate::writer;

/// Fixed facts about the server being profiled.
#[derive(Debug, Clone)]
pub struct ProfilerConfig {
    pub tp_size: usize,
    pub dp_size: usize,
    pub threads_per_rank: usize,
    pub model_name: String,
    /// `--profile-output-root`: every output_dir must lie inside it.
    pub output_root: Option<PathBuf>,
}

/// What a finished profile produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub profile_id: String,
    pub output_dir: PathBuf,
    pub files: Vec<String>,
    pub errors: Vec<String>,
    pub steps_captured: u64,
}

struct Session {
    spec: Arc<ExportSpec>,
    windows: Vec<Window>,
    open: Vec<Option<Capture>>,
    recording: Vec<bool>,
    steps_captured: u64,
    pending: usize,
    /// Every window finished (or stopped): nothing more will be recorded.
    window_done: bool,
    auto_stopped: bool,
    /// `merge_profiles` was handed to the writer (it runs once, after every capture).
    merge_submitted: bool,
    files: Vec<String>,
    errors: Vec<String>,
    waiters: Vec<tokio::sync::oneshot::Sender<Outcome>>,
}

#[derive(Default)]
struct State {
    session: Option<Session>,
    last: Option<Outcome>,
}

struct Shared {
    cfg: ProfilerConfig,
    clock: Clock,
    /// Armed or active: the only thing the step hooks read when nobody profiles.
    engaged: AtomicBool,
    last_step: Vec<AtomicU64>,
    state: Mutex<State>,
    jobs: Mutex<Sender<writer::Job>>,
}

/// Cheap to clone; hand one to the engine as its observer and keep one in the server.
#[derive(Clone)]
pub struct Profiler {
    shared: Arc<Shared>,
}

/// Lexically resolve `.` and `..` (the path may not exist yet).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn expand_home(dir: &str) -> PathBuf {
    match (dir.strip_prefix('~'), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            PathBuf::from(home).join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(dir),
    }
}

/// The directory traces go to: the request's, else `$SGLANG_TORCH_PROFILER_DIR`, else /tmp
/// (or the root when one is configured), confined to `root`.
pub fn resolve_output_dir(
    requested: Option<&str>,
    root: Option<&Path>,
) -> Result<PathBuf, ProfileError> {
    let env = std::env::var("SGLANG_TORCH_PROFILER_DIR")
        .ok()
        .filter(|s| !s.is_empty());
    let Some(root) = root else {
        let dir = requested
            .map(str::to_string)
            .or(env)
            .unwrap_or_else(|| "/tmp".into());
        return Ok(expand_home(&dir));
    };
    let root = std::fs::canonicalize(root).map_err(|e| {
        ProfileError::Forbidden(format!("--profile-output-root {}: {e}", root.display()))
    })?;
    let dir = match requested.map(str::to_string).or(env) {
        None => return Ok(root),
        Some(d) => expand_home(&d),
    };
    let candidate = normalize(&if dir.is_absolute() {
        dir.clone()
    } else {
        root.join(&dir)
    });
    // The deepest existing ancestor, with symlinks resolved, must also be inside the root.
    let mut existing = candidate.clone();
    while !existing.exists() && existing.pop() {}
    let real = std::fs::canonicalize(&existing).unwrap_or(existing);
    if !candidate.starts_with(&root) || !real.starts_with(&root) {
        return Err(ProfileError::Forbidden(format!(
            "output_dir '{}' is outside --profile-output-root '{}'",
            dir.display(),
            root.display()
        )));
    }
    Ok(candidate)
}

impl Profiler {
    pub fn new(cfg: ProfilerConfig) -> Profiler {
        let (tx, rx) = channel();
        let shared = Arc::new(Shared {
            last_step: (0..cfg.dp_size).map(|_| AtomicU64::new(0)).collect(),
            cfg,
            clock: Clock::default(),
            engaged: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            jobs: Mutex::new(tx),
        });
        let (done_tx, done_rx) = channel();
        std::thread::Builder::new()
            .name("loupe-profile-writer".into())
            .spawn(move || writer::run(rx, done_tx))
            .expect("spawn the profile writer thread");
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("loupe-profile-done".into())
            .spawn(move || apply_completions(done_rx, weak))
            .expect("spawn the profile completion thread");
        Profiler { shared }
    }

    /// `/start_profile`: arm (or start) a capture. Returns the profile id.
    pub fn start(&self, req: StartRequest) -> Result<String, ProfileError> {
        let sh = &self.shared;
        let mut st = sh.state.lock().expect("profiler state");
        if let Some(s) = &st.session {
            return Err(ProfileError::Conflict(if s.window_done {
                format!(
                    "{ALREADY_RUNNING} (profile {} is still being written; poll /profile_status)",
                    s.spec.profile_id
                )
            } else {
                ALREADY_RUNNING.to_string()
            }));
        }
        let output_dir =
            resolve_output_dir(req.output_dir.as_deref(), sh.cfg.output_root.as_deref())?;
        let profile_id = req.profile_id.clone().unwrap_or_else(new_profile_id);
        let v2 = crate::request::env_bool("SGLANG_PROFILE_V2", false);
        let windows = (0..sh.cfg.dp_size)
            .map(|dp| {
                let current = sh.last_step[dp].load(Ordering::Relaxed);
                if req.profile_by_stage {
                    let stages = match &req.profile_stages {
                        Some(list) => list.iter().filter_map(|s| Stage::parse(s)).collect(),
                        None => vec![Stage::Extend, Stage::Decode],
                    };
                    let min_bs = std::env::var("SGLANG_PROFILE_BY_STAGE_DECODE_MIN_BS")
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    Window::by_stage(req.num_steps.unwrap_or(1), stages, min_bs)
                } else {
                    Window::steps(current, req.start_step, req.num_steps)
                }
            })
            .collect();
        tracing::info!(
            "Profiling starts{}. Traces will be saved to: {} (with profile id: {profile_id})",
            if req.profile_by_stage {
                " by stage"
            } else {
                ""
            },
            output_dir.display()
        );
        let spec = ExportSpec {
            profile_id: profile_id.clone(),
            request: req,
            output_dir,
            tp_size: sh.cfg.tp_size,
            dp_size: sh.cfg.dp_size,
            clock: sh.clock,
            v2,
            threads_per_rank: sh.cfg.threads_per_rank,
            model_name: sh.cfg.model_name.clone(),
        };
        let dp = sh.cfg.dp_size;
        st.session = Some(Session {
            spec: Arc::new(spec),
            windows,
            open: (0..dp).map(|_| None).collect(),
            recording: vec![false; dp],
            steps_captured: 0,
            pending: 0,
            window_done: false,
            auto_stopped: false,
            merge_submitted: false,
            files: Vec::new(),
            errors: Vec::new(),
            waiters: Vec::new(),
        });
        sh.engaged.store(true, Ordering::Release);
        Ok(profile_id)
    }

    /// `/stop_profile`: end the capture and wait until its files are complete.
    pub async fn stop(&self) -> Result<Outcome, ProfileError> {
        let rx = {
            let sh = &self.shared;
            let mut st = sh.state.lock().expect("profiler state");
            let Some(s) = st.session.as_mut().filter(|s| !s.window_done) else {
                let detail = match (&st.session, &st.last) {
                    (Some(s), _) => format!(
                        " (profile {} stopped by itself after its steps and is being written; poll /profile_status)",
                        s.spec.profile_id
                    ),
                    (None, Some(last)) => format!(
                        " (the last profile, {}, captured {} steps into {} files in {})",
                        last.profile_id,
                        last.steps_captured,
                        last.files.len(),
                        last.output_dir.display()
                    ),
                    (None, None) => String::new(),
                };
                return Err(ProfileError::Conflict(format!("{NOT_RUNNING}{detail}")));
            };
            tracing::info!("Stop profiling...");
            for dp in 0..s.windows.len() {
                s.windows[dp].stop();
                s.recording[dp] = false;
                if let Some(c) = s.open[dp].take() {
                    submit(sh, s, c);
                }
            }
            s.window_done = true;
            let (tx, rx) = tokio::sync::oneshot::channel();
            s.waiters.push(tx);
            maybe_finish(sh, &mut st);
            rx
        };
        rx.await
            .map_err(|_| ProfileError::Export("the profile writer stopped before finishing".into()))
    }

    /// `/profile_status`.
    pub fn status(&self) -> ProfileStatus {
        let sh = &self.shared;
        let st = sh.state.lock().expect("profiler state");
        match (&st.session, &st.last) {
            (Some(s), _) => {
                let capturing = s.windows.iter().enumerate().any(|(dp, w)| {
                    w.capturing(sh.last_step[dp].load(Ordering::Relaxed)) || s.open[dp].is_some()
                });
                let state = if s.window_done {
                    ProfileState::Exporting
                } else if capturing {
                    ProfileState::Active
                } else {
                    ProfileState::Armed
                };
                ProfileStatus {
                    state,
                    profile_id: Some(s.spec.profile_id.clone()),
                    stage: s
                        .windows
                        .iter()
                        .find_map(|w| w.active_stage())
                        .map(|st| st.suffix(s.spec.v2).to_string()),
                    steps_captured: s.steps_captured,
                    output_dir: Some(s.spec.output_dir.display().to_string()),
                    files: s.files.clone(),
                    errors: s.errors.clone(),
                }
            }
            (None, last) => ProfileStatus {
                state: ProfileState::Idle,
                profile_id: last.as_ref().map(|l| l.profile_id.clone()),
                stage: None,
                steps_captured: last.as_ref().map_or(0, |l| l.steps_captured),
                output_dir: last.as_ref().map(|l| l.output_dir.display().to_string()),
                files: last.as_ref().map(|l| l.files.clone()).unwrap_or_default(),
                errors: last.as_ref().map(|l| l.errors.clone()).unwrap_or_default(),
            },
        }
    }

    /// Is anything armed or recording? (One atomic load.)
    pub fn engaged(&self) -> bool {
        self.shared.engaged.load(Ordering::Acquire)
    }

    /// Host work outside the scheduler (the HTTP tokenizer), recorded while a capture is open.
    pub fn host_span(&self, name: &'static str, start: Instant, end: Instant, tokens: usize) {
        if !self.engaged() {
            return;
        }
        let mut st = self.shared.state.lock().expect("profiler state");
        if let Some(s) = st.session.as_mut()
            && s.spec.request.has(Activity::Cpu)
            && let Some(c) = s.open.iter_mut().flatten().next()
        {
            c.host_spans.push(HostSpan {
                name,
                start,
                end,
                tokens,
            });
        }
    }
}

/// Hand a finished capture to the writer.
fn submit(sh: &Shared, s: &mut Session, capture: Capture) {
    if capture.steps.is_empty() && capture.host_spans.is_empty() {
        return;
    }
    s.pending += 1;
    let job = writer::Job::Export(s.spec.clone(), capture);
    if sh.jobs.lock().expect("writer channel").send(job).is_err() {
        s.pending -= 1;
        s.errors.push("the profile writer thread is gone".into());
    }
}

/// When recording is over and every file is written: merge if asked, then report.
fn maybe_finish(sh: &Shared, st: &mut State) {
    let Some(s) = st.session.as_mut() else { return };
    if !s.window_done || s.pending > 0 {
        return;
    }
    if s.spec.request.merge_profiles && !s.merge_submitted {
        s.merge_submitted = true;
        let traces = loupe_trace::files::rank_traces(&s.files);
        if traces.is_empty() {
            s.errors.push(format!(
                "merge_profiles: no trace files were written for profile {} (the CPU, GPU or \
                 MEM activity writes them)",
                s.spec.profile_id
            ));
        } else {
            s.pending += 1;
            let job = writer::Job::Merge(s.spec.clone(), traces);
            if sh.jobs.lock().expect("writer channel").send(job).is_ok() {
                return;
            }
            s.pending -= 1;
            s.errors.push("the profile writer thread is gone".into());
        }
    }
    let s = st.session.take().expect("checked above");
    let outcome = Outcome {
        profile_id: s.spec.profile_id.clone(),
        output_dir: s.spec.output_dir.clone(),
        files: s.files,
        errors: s.errors,
        steps_captured: s.steps_captured,
    };
    tracing::info!(
        "Profiling done. Traces are saved to: {}{}",
        outcome.output_dir.display(),
        if s.auto_stopped {
            " (stopped after its steps)"
        } else {
            ""
        }
    );
    for w in s.waiters {
        let _ = w.send(outcome.clone());
    }
    st.last = Some(outcome);
    sh.engaged.store(false, Ordering::Release);
}

/// Apply the writer's reports until the writer is gone or the profiler is dropped.
fn apply_completions(done: Receiver<writer::Done>, shared: Weak<Shared>) {
    while let Ok(d) = done.recv() {
        let Some(sh) = shared.upgrade() else { return };
        let mut st = sh.state.lock().expect("profiler state");
        if let Some(s) = st
            .session
            .as_mut()
            .filter(|s| s.spec.profile_id == d.profile_id)
        {
            s.pending -= 1;
            s.files.extend(d.files);
            s.errors.extend(d.error);
        }
        maybe_finish(&sh, &mut st);
    }
}

impl StepObserver for Profiler {
    fn step_begin(&self, info: &StepInfo) -> bool {
        let sh = &self.shared;
        sh.last_step[info.dp_rank].store(info.step, Ordering::Relaxed);
        if !sh.engaged.load(Ordering::Acquire) {
            return false;
        }
        let mut st = sh.state.lock().expect("profiler state");
        let Some(s) = st.session.as_mut() else {
            return false;
        };
        let dp = info.dp_rank;
        let plan = s.windows[dp].begin_step(info.step, info.mode, info.batch_size);
        if plan.finish_before.is_some()
            && let Some(c) = s.open[dp].take()
        {
            submit(sh, s, c);
        }
        let Some(stage) = plan.record else {
            return false;
        };
        if s.open[dp].is_none() {
            s.open[dp] = Some(Capture {
                dp_rank: dp,
                started: Instant::now(),
                stage,
                steps: Vec::new(),
                host_spans: Vec::new(),
            });
        }
        s.recording[dp] = true;
        // Ranks time their ops only when someone will read them.
        let r = &s.spec.request;
        r.has(Activity::Gpu) || r.has(Activity::Cpu) || r.has(Activity::Rpd)
    }

    fn step_end(&self, report: &StepReport<'_>) {
        let sh = &self.shared;
        if !sh.engaged.load(Ordering::Acquire) {
            return;
        }
        let mut st = sh.state.lock().expect("profiler state");
        let Some(s) = st.session.as_mut() else { return };
        let dp = report.info.dp_rank;
        if !std::mem::take(&mut s.recording[dp]) {
            return;
        }
        let Some(c) = s.open[dp].as_mut() else { return };
        c.steps.push(CapturedStep {
            info: report.info.clone(),
            phases: report.phases.to_vec(),
            rank_ops: report.rank_ops.to_vec(),
        });
        s.steps_captured += 1;
        if s.windows[dp].end_step(report.info.step).is_some()
            && let Some(c) = s.open[dp].take()
        {
            submit(sh, s, c);
        }
        let done = s
            .windows
            .iter()
            .enumerate()
            .all(|(d, w)| w.finished(sh.last_step[d].load(Ordering::Relaxed)));
        if done && !s.window_done {
            s.window_done = true;
            s.auto_stopped = true;
            tracing::info!("Stop profiling... (after {} steps)", s.steps_captured);
            maybe_finish(sh, &mut st);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_dir_follows_request_env_and_root() {
        assert_eq!(
            resolve_output_dir(Some("/data/x"), None).unwrap(),
            PathBuf::from("/data/x")
        );
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let real_root = std::fs::canonicalize(r).unwrap();
        assert_eq!(
            resolve_output_dir(Some("runs/a"), Some(r)).unwrap(),
            real_root.join("runs/a")
        );
        let e = resolve_output_dir(Some("../escape"), Some(r)).unwrap_err();
        assert_eq!(e.status(), 403);
        let e = resolve_output_dir(Some("/etc"), Some(r)).unwrap_err();
        assert!(
            e.to_string().contains("outside --profile-output-root"),
            "{e}"
        );
        // A symlink inside the root that points out of it.
        std::os::unix::fs::symlink("/", r.join("out")).unwrap();
        assert_eq!(
            resolve_output_dir(Some("out/tmp"), Some(r))
                .unwrap_err()
                .status(),
            403
        );
    }
}
