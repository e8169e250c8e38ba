//! Running a plan on this machine: launch the workers as child processes (each in its own
//! process group, logs captured), wait for health, drive each profiling phase and benchmark
//! with `loupe bench` children, wait for the trace files, summarise, and always take the
//! workers down — on success, on failure, and when the run is cancelled (Ctrl-C drops the
//! future, and the process guard's `Drop` stops every child).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use loupe_client::vllm;
use loupe_client::{Engine, ProfileError, Server, StartProfile, WaitFor};

use crate::error::{RunError, io};
use crate::outcome::{BenchOutcome, JobOutcome, PhaseOutcome};
use crate::plan::{Plan, ProfilePhase, Traffic, bench_command, shell_line};

/// Where each line of `run.log` also goes as it is written (the command line shows them).
pub type Progress = Box<dyn FnMut(&str) + Send>;

/// The orchestrator's own log (`run.log`): every command line and environment, every step.
pub struct RunLog {
    file: File,
    started: Instant,
    progress: Progress,
}

impl RunLog {
    fn open(path: &Path, progress: Progress) -> Result<Self, RunError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io(path))?;
        Ok(RunLog {
            file,
            started: Instant::now(),
            progress,
        })
    }

    /// `[   12.345s] msg`, appended to run.log and handed to the progress callback (without
    /// the newline).
    pub fn line(&mut self, msg: impl AsRef<str>) {
        let line = format!(
            "[{:9.3}s] {}",
            self.started.elapsed().as_secs_f64(),
            msg.as_ref()
        );
        let _ = self.file.write_all(format!("{line}\n").as_bytes());
        (self.progress)(&line);
    }
}

/// Children that are stopped when this guard goes away, whatever the reason.
#[derive(Default)]
pub struct Processes {
    children: Vec<(String, Child)>,
}

impl Processes {
    fn spawn(
        &mut self,
        name: &str,
        argv: &[String],
        env: &std::collections::BTreeMap<String, String>,
        out: &Path,
        err: &Path,
    ) -> Result<(), RunError> {
        use std::os::unix::process::CommandExt;
        let stdout = File::create(out).map_err(io(out))?;
        let stderr = File::create(err).map_err(io(err))?;
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .envs(env)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // Its own process group: stopping it stops whatever it started (nsys, python...).
            .process_group(0)
            .spawn()
            .map_err(|e| RunError::Failed(format!("cannot start {name} ({}): {e}", argv[0])))?;
        self.children.push((name.to_string(), child));
        Ok(())
    }

    /// The exit status of a child that has already exited.
    fn exited(&mut self, name: &str) -> Option<std::process::ExitStatus> {
        self.children
            .iter_mut()
            .find(|(n, _)| n == name)
            .and_then(|(_, c)| c.try_wait().ok().flatten())
    }

    /// SIGTERM every process group, SIGKILL what is left after `grace`.
    pub fn stop_all(&mut self, grace: Duration) {
        for (_, c) in &self.children {
            // SAFETY: signalling a process group we created.
            unsafe {
                libc::kill(-(c.id() as libc::pid_t), libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + grace;
        for (_, c) in &mut self.children {
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if c.try_wait().ok().flatten().is_none() {
                // SAFETY: as above.
                unsafe {
                    libc::kill(-(c.id() as libc::pid_t), libc::SIGKILL);
                }
                let _ = c.wait();
            }
        }
        self.children.clear();
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.stop_all(Duration::from_secs(10));
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

async fn wait_healthy(
    plan: &Plan,
    procs: &mut Processes,
    client: &reqwest::Client,
    log: &mut RunLog,
) -> Result<(), RunError> {
    for w in &plan.workers {
        let name = w.label(&plan.hostname);
        let url = format!("{}/health", w.url(&plan.host));
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(status) = procs.exited(&name) {
                return Err(RunError::Failed(format!(
                    "worker {name} exited ({status}) before becoming healthy; last lines of {}:\n{}",
                    w.stderr.display(),
                    tail(&w.stderr, 15)
                )));
            }
            if matches!(client.get(&url).send().await, Ok(r) if r.status().is_success()) {
                log.line(format!(
                    "worker {name} is healthy after {attempt} attempt(s)"
                ));
                break;
            }
            if attempt >= plan.health.max_attempts {
                return Err(RunError::Failed(format!(
                    "worker {name} did not become healthy at {url} within {} attempts {} s apart \
                     (health_check.max_attempts / interval_seconds); see {}",
                    plan.health.max_attempts,
                    plan.health.interval_seconds,
                    w.stderr.display()
                )));
            }
            tokio::time::sleep(Duration::from_secs_f64(plan.health.interval_seconds)).await;
        }
    }
    Ok(())
}

/// `path` if a child wrote it.
fn written(path: PathBuf) -> Option<PathBuf> {
    path.is_file().then_some(path)
}

/// Run `loupe bench` for one traffic spec; its output goes to `benchmark.out`.
async fn bench(
    plan: &Plan,
    url: &str,
    t: &Traffic,
    log: &mut RunLog,
) -> Result<serde_json::Value, String> {
    let argv = bench_command(plan, url, t);
    if let Some(parent) = t.output_file.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    log.line(format!("$ {}", shell_line(&argv)));
    let out_path = plan.log_dir.join("benchmark.out");
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out_path)
        .map_err(|e| format!("{}: {e}", out_path.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let status = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    let record = std::fs::read_to_string(&t.output_file).ok().and_then(|s| {
        s.lines()
            .last()
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    });
    match (status.success(), record) {
        (true, Some(r)) if r["total_output_tokens"].as_u64().unwrap_or(0) > 0 => Ok(r),
        (true, Some(_)) => Err(format!(
            "the benchmark at concurrency {} generated 0 tokens",
            t.concurrency
        )),
        (ok, _) => Err(format!(
            "the benchmark at concurrency {} failed ({}); see {}",
            t.concurrency,
            if ok {
                "no result written".to_string()
            } else {
                status.to_string()
            },
            out_path.display()
        )),
    }
}

/// The engine a phase's worker runs: the plan's, else what the server says (SGLang's
/// protocol when nothing does).
async fn engine_of(plan: &Plan, server: &Server, log: &mut RunLog) -> Engine {
    if let Some(e) = plan.engine {
        return e;
    }
    let (engine, why) = match server.detect_engine().await {
        Some(d) => (d.engine, d.because),
        None => (
            Engine::Sglang,
            "nothing the server answered names it".into(),
        ),
    };
    log.line(format!("{}: engine {engine} ({why})", server.base()));
    engine
}

/// Start a phase's capture on its worker (vLLM: `ProfilePhase::vllm_start`'s body).
async fn start_profile(
    server: &Server,
    engine: Engine,
    p: &ProfilePhase,
    log: &mut RunLog,
) -> Result<(), RunError> {
    let failed = |e: ProfileError| RunError::Failed(format!("phase {}: {e}", p.name));
    if engine == Engine::Vllm {
        let body = p.vllm_start();
        log.line(format!(
            "phase {}: POST {} {} (vllm: writes to its --profiler-config directory {})",
            p.name,
            server.url("/start_profile"),
            body.to_json(),
            p.output_dir.display()
        ));
        return server
            .start_vllm_profile(&body)
            .await
            .map(drop)
            .map_err(failed);
    }
    let body = StartProfile {
        output_dir: Some(p.output_dir.display().to_string()),
        start_step: Some(p.start_step.into()),
        num_steps: Some(p.num_steps.into()),
        activities: Some(p.activities.iter().map(|a| a.to_string()).collect()),
        ..Default::default()
    };
    log.line(format!(
        "phase {}: POST {} {}",
        p.name,
        server.url("/start_profile"),
        body.to_json()
    ));
    server
        .start_profile_on(engine, &body)
        .await
        .map_err(failed)?;
    Ok(())
}

/// After a phase: stop the capture (vLLM's auto-stop leaves its guard set, SGLang's may not
/// have come), then wait for its files (loupe-client's wait: `/profile_status` where the
/// server has it, else the directory's files until they stop growing).
async fn finish_profile(
    server: &Server,
    engine: Engine,
    p: &ProfilePhase,
    since: SystemTime,
    log: &mut RunLog,
) -> Vec<String> {
    let dir = &p.output_dir;
    let url = server.url("/stop_profile");
    match server.stop_profile_on(engine).await {
        Ok(text) => log.line(format!("POST {url} -> {}", text.trim())),
        Err(e) => log.line(format!("POST {url} -> {e}")),
    }
    let vllm = engine == Engine::Vllm;
    let is_output: &(dyn Fn(&str) -> bool + Sync) = if vllm {
        &vllm::is_output
    } else {
        &loupe_trace::files::is_profile_file
    };
    let wait = WaitFor {
        dir: Some(dir.to_path_buf()),
        since: vllm.then_some(since),
        use_status: !vllm,
        status_poll: Duration::from_millis(500),
        dir_poll: Duration::from_millis(500),
        ..WaitFor::new(None, Duration::from_secs(600))
    };
    let outcome = match server.wait_for_files(&wait, is_output).await {
        Ok(o) => Some(o),
        Err(e) => {
            // A status route that fails (e.g. it wants a key this run does not have): the
            // directory still tells when the files are complete.
            log.line(format!("{e}; watching {} instead", dir.display()));
            let dir_only = WaitFor {
                use_status: false,
                ..wait
            };
            server.wait_for_files(&dir_only, is_output).await.ok()
        }
    };
    match outcome {
        Some(o) if o.complete => o.files,
        _ => {
            log.line(format!(
                "gave up waiting for the trace files of {} after 600 s",
                server.base()
            ));
            Vec::new()
        }
    }
}

/// Write a whole file of the run directory (whole or not at all).
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    loupe_trace::export::write_atomic(path, |w| w.write_all(bytes)).map_err(RunError::Write)
}

/// Execute `plan` (`source` is the job's text, kept as config.yaml); every run.log line also
/// goes to `progress`. Workers are always stopped before this returns (or when it is dropped).
pub async fn execute(
    plan: &Plan,
    source: &str,
    progress: Progress,
) -> Result<JobOutcome, RunError> {
    let dir = &plan.log_dir;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    write_file(&dir.join("config.yaml"), source.as_bytes())?;
    write_file(
        &dir.join("plan.json"),
        &serde_json::to_vec_pretty(plan).expect("plan serialises"),
    )?;
    let mut log = RunLog::open(&dir.join("run.log"), progress)?;
    let mut procs = Processes::default();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(900))
        .build()
        .map_err(|e| RunError::Failed(format!("HTTP client: {e}")))?;
    for w in &plan.workers {
        let name = w.label(&plan.hostname);
        for (k, v) in &w.env {
            log.line(format!("{name} env {k}={v}"));
        }
        log.line(format!("{name} $ {}", shell_line(&w.command)));
        for d in [
            w.stdout.parent(),
            w.env.get("SGLANG_TORCH_PROFILER_DIR").map(Path::new),
        ]
        .into_iter()
        .flatten()
        {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        procs.spawn(&name, &w.command, &w.env, &w.stdout, &w.stderr)?;
    }
    let mut report = JobOutcome {
        job: plan.job.clone(),
        log_dir: dir.clone(),
        phases: Vec::new(),
        benches: Vec::new(),
    };
    let result = async {
        wait_healthy(plan, &mut procs, &client, &mut log).await?;
        for p in &plan.phases {
            let url = plan.workers[p.worker].url(&plan.host);
            std::fs::create_dir_all(&p.output_dir).map_err(io(&p.output_dir))?;
            let server = Server::with_client(client.clone(), &url, Default::default());
            let engine = engine_of(plan, &server, &mut log).await;
            let since = SystemTime::now() - Duration::from_secs(1);
            start_profile(&server, engine, p, &mut log).await?;
            let outcome = bench(plan, &url, &p.traffic, &mut log).await;
            let files = finish_profile(&server, engine, p, since, &mut log).await;
            log.line(format!(
                "phase {}: {} trace file(s) in {}",
                p.name,
                files.len(),
                p.output_dir.display()
            ));
            report.phases.push(PhaseOutcome {
                name: p.name.to_string(),
                trace_files: files,
                bench: outcome,
                timings: written(p.traffic.timings_file()),
            });
        }
        if let Some(w) = plan.workers.first() {
            let url = w.url(&plan.host);
            for t in &plan.benches {
                let result = bench(plan, &url, t, &mut log).await;
                report.benches.push(BenchOutcome {
                    concurrency: t.concurrency,
                    result,
                    timings: written(t.timings_file()),
                });
            }
        }
        Ok::<(), RunError>(())
    }
    .await;
    log.line("stopping the workers");
    procs.stop_all(Duration::from_secs(10));
    result?;
    crate::summary::write(plan, &report).map_err(RunError::Write)?;
    log.line(format!("summary: {}", report.summary_path().display()));
    Ok(report)
}
