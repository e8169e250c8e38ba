//! From a validated job to a plan: every process to launch (command line, environment, log
//! files, port), every profiling phase (which worker, which step window, which traffic, where
//! the traces go) and every benchmark run. `--dry-run` prints it; the executor and the SLURM
//! renderer both follow it, so what is shown is what runs.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use loupe_client::Engine;
use loupe_client::vllm::VllmStart;
use serde::Serialize;

use crate::job::{
    Backend, BackendType, BenchmarkType, HealthCheck, Job, LoadedJob, Profiling, ProfilingType,
    Resources,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Prefill,
    Decode,
    #[serde(rename = "agg")]
    Aggregated,
}

impl Role {
    /// srtctl's mode name (log and profile directories).
    pub fn mode(self) -> &'static str {
        match self {
            Role::Prefill => "prefill",
            Role::Decode => "decode",
            Role::Aggregated => "agg",
        }
    }
    /// The key of `sglang_config` / `profiling` for this role.
    fn config_key(self) -> &'static str {
        match self {
            Role::Prefill => "prefill",
            Role::Decode => "decode",
            Role::Aggregated => "aggregated",
        }
    }
}

/// Where and how to run things (`crate::plan_jobs` fills it from [`crate::RunOptions`]).
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The `loupe` binary used for `serve` and `bench` children.
    pub loupe_bin: PathBuf,
    /// Default parent of the run directory (`logs`).
    pub log_root: PathBuf,
    pub timestamp: String,
    pub host: String,
    pub hostname: String,
    /// First worker port; worker i listens on base + 32 i (srtctl's stride).
    pub base_port: u16,
    /// nsys binary (`SRTCTL_NSYS_BIN` or `nsys`).
    pub nsys_bin: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Worker {
    pub role: Role,
    pub index: usize,
    pub port: u16,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Worker {
    pub fn url(&self, host: &str) -> String {
        format!("http://{host}:{}", self.port)
    }
    pub fn label(&self, hostname: &str) -> String {
        format!("{hostname}_{}_w{}", self.role.mode(), self.index)
    }
}

/// Traffic sent by one `loupe bench` child.
#[derive(Debug, Clone, Serialize)]
pub struct Traffic {
    pub isl: u64,
    pub osl: u64,
    pub concurrency: u64,
    pub num_prompts: u64,
    pub warmup: u64,
    pub range_ratio: f64,
    /// The JSONL record goes here.
    pub output_file: PathBuf,
}

impl Traffic {
    /// Every request's timings, beside the record (`concurrency_4.requests.jsonl` beside
    /// `concurrency_4.json`): what `summary.html` draws the run's over-time charts from.
    pub fn timings_file(&self) -> PathBuf {
        self.output_file.with_extension("requests.jsonl")
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProfilePhase {
    pub name: &'static str,
    pub worker: usize,
    pub start_step: u64,
    pub num_steps: u64,
    pub activities: Vec<&'static str>,
    pub output_dir: PathBuf,
    pub traffic: Traffic,
}

impl ProfilePhase {
    /// vLLM's body for this window. vLLM counts steps from the start request, which comes
    /// right before the phase's traffic: the window's start step is its `delay_iterations`.
    pub fn vllm_start(&self) -> VllmStart {
        VllmStart {
            profile_prefix: None,
            delay_iterations: (self.start_step > 0).then_some(self.start_step),
            max_iterations: Some(self.num_steps),
        }
    }
}

impl Plan {
    /// The `/start_profile` body a phase sends, as the dry run and sbatch script show it.
    pub fn start_body(&self, p: &ProfilePhase) -> String {
        if self.engine == Some(Engine::Vllm) {
            p.vllm_start().to_json()
        } else {
            serde_json::json!({"output_dir": p.output_dir, "start_step": p.start_step,
                "num_steps": p.num_steps, "activities": p.activities})
            .to_string()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub job: String,
    pub log_dir: PathBuf,
    pub host: String,
    pub workers: Vec<Worker>,
    pub phases: Vec<ProfilePhase>,
    /// Benchmark runs (`benchmark.type: loupe`), against the first worker.
    pub benches: Vec<Traffic>,
    #[serde(skip)]
    pub health: HealthCheck,
    pub profiling: &'static str,
    pub loupe_bin: PathBuf,
    pub hostname: String,
    /// The workers' engine, when the job says it (`command` without `engine`: asked from
    /// the server when a phase starts).
    pub engine: Option<Engine>,
    pub model_path: String,
}

fn flag_args(flags: &BTreeMap<String, serde_json::Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in flags {
        let flag = format!("--{}", k.replace('_', "-"));
        match v {
            serde_json::Value::Bool(true) => out.push(flag),
            serde_json::Value::Bool(false) | serde_json::Value::Null => {}
            serde_json::Value::String(s) => out.extend([flag, s.clone()]),
            serde_json::Value::Array(items) => {
                out.push(flag);
                out.extend(
                    items
                        .iter()
                        .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string)),
                );
            }
            other => out.extend([flag, other.to_string()]),
        }
    }
    out
}

/// The run directory: `output.log_dir` with `{job}`/`{timestamp}`, or `<root>/<job>_<timestamp>`.
/// Absolute, because the servers receive it as their profile `output_dir`.
pub fn log_dir(job: &LoadedJob, opts: &PlanOptions) -> PathBuf {
    let name = &job.job.name;
    let dir = match job.job.output.as_ref().and_then(|o| o.log_dir.as_ref()) {
        Some(t) => PathBuf::from(
            t.replace("{job}", name)
                .replace("{timestamp}", &opts.timestamp),
        ),
        None => opts.log_root.join(format!("{name}_{}", opts.timestamp)),
    };
    if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir().map_or(dir.clone(), |cwd| cwd.join(&dir))
    }
}

/// One plan per job of a file. A sweep's jobs get `_<i>` after the timestamp, so that their
/// run directories differ.
pub fn build_all(jobs: &[LoadedJob], opts: &PlanOptions) -> Vec<Plan> {
    jobs.iter()
        .enumerate()
        .map(|(i, j)| {
            let mut opts = opts.clone();
            if jobs.len() > 1 {
                opts.timestamp = format!("{}_{i}", opts.timestamp);
            }
            build(j, &opts)
        })
        .collect()
}

/// The plan of one job: its workers, then the profiling phases on them, then the benchmark
/// runs against the first.
pub fn build(job: &LoadedJob, opts: &PlanOptions) -> Plan {
    let j = &job.job;
    let dir = log_dir(job, opts);
    let profiling = active_profiling(j);
    let workers = workers(j, profiling, &dir, opts);
    let phases = profiling.map_or_else(Vec::new, |p| profile_phases(p, &workers, &dir));
    Plan {
        job: j.name.clone(),
        benches: benchmark_runs(j, &dir),
        log_dir: dir,
        host: opts.host.clone(),
        workers,
        phases,
        health: j.health_check.unwrap_or_default(),
        profiling: profiling.map_or("none", |p| profile_type(p.kind)),
        loupe_bin: opts.loupe_bin.clone(),
        hostname: opts.hostname.clone(),
        engine: engine_of(j),
        model_path: j.model.value.path.clone(),
    }
}

fn engine_of(j: &Job) -> Option<Engine> {
    let b = j.backend.as_ref().map(|b| &b.value);
    match b.map_or(BackendType::Embedded, |b| b.kind) {
        BackendType::Embedded | BackendType::Sglang => Some(Engine::Sglang),
        BackendType::Vllm => Some(Engine::Vllm),
        BackendType::Command => b.and_then(|b| b.engine),
    }
}

/// `profiling`, unless absent or `type: none`.
fn active_profiling(j: &Job) -> Option<&Profiling> {
    j.profiling
        .as_ref()
        .map(|p| &p.value)
        .filter(|p| p.kind != ProfilingType::None)
}

/// `PROFILE_TYPE` and the plan's `profiling`: nsys, or torch for everything else.
fn profile_type(kind: ProfilingType) -> &'static str {
    if kind == ProfilingType::Nsys {
        "nsys"
    } else {
        "torch"
    }
}

/// One role per worker: the prefill workers then the decode workers, or the aggregated ones.
fn roles(res: &Resources) -> Vec<Role> {
    if res.disaggregated() {
        let mut r = vec![Role::Prefill; res.prefill_workers.unwrap_or(0) as usize];
        r.extend(vec![Role::Decode; res.decode_workers.unwrap_or(0) as usize]);
        r
    } else {
        vec![Role::Aggregated; res.agg_workers.unwrap_or(1) as usize]
    }
}

/// Every worker: its index within its role, its port (base + 32 i over all workers), its
/// command line (nsys-wrapped when profiling with nsys), environment and log files.
fn workers(j: &Job, profiling: Option<&Profiling>, dir: &Path, opts: &PlanOptions) -> Vec<Worker> {
    let backend = j.backend.as_ref().map(|b| &b.value);
    let mut per_role = BTreeMap::new();
    let mut workers = Vec::new();
    for (i, role) in roles(&j.resources.value).into_iter().enumerate() {
        let index = *per_role
            .entry(role.mode())
            .and_modify(|n| *n += 1)
            .or_insert(0usize);
        let port = opts.base_port + 32 * i as u16;
        let label = format!("{}_{}_w{index}", opts.hostname, role.mode());
        let profile_dir = dir.join("profiles").join(role.mode());
        let mut command = server_command(
            backend,
            role,
            &j.model.value.path,
            port,
            opts,
            profiling.is_some_and(|p| p.kind == ProfilingType::Torch),
            &profile_dir,
        );
        if let Some(p) = profiling.filter(|p| p.kind == ProfilingType::Nsys) {
            let out = dir
                .join("profiles")
                .join(role.mode())
                .join(format!("{label}_profile"));
            command = nsys_wrapped(p, &out, command, opts);
        }
        workers.push(Worker {
            role,
            index,
            port,
            command,
            env: worker_env(j, backend, role, profiling, dir),
            stdout: dir.join(format!("{label}.out")),
            stderr: dir.join(format!("{label}.err")),
        });
    }
    workers
}

/// The server's command line: `loupe serve` or SGLang with the role's `sglang_config` flags,
/// or the backend's own command with its placeholders filled in.
fn server_command(
    backend: Option<&Backend>,
    role: Role,
    model: &str,
    port: u16,
    opts: &PlanOptions,
    torch_profiling: bool,
    profile_dir: &Path,
) -> Vec<String> {
    let kind = backend.map_or(BackendType::Embedded, |b| b.kind);
    let mut command: Vec<String> = match kind {
        BackendType::Vllm => {
            return vllm_command(backend, model, port, opts, torch_profiling, profile_dir);
        }
        BackendType::Embedded => [opts.loupe_bin.display().to_string(), "serve".into()].into(),
        BackendType::Sglang => ["python3", "-m", "sglang.launch_server"]
            .map(String::from)
            .into(),
        BackendType::Command => {
            let template = backend.and_then(|b| b.command.clone()).unwrap_or_default();
            let line = template
                .replace("{port}", &port.to_string())
                .replace("{host}", &opts.host)
                .replace("{model_path}", model)
                .replace("{profile_dir}", &profile_dir.display().to_string());
            return ["bash".into(), "-c".into(), line].into();
        }
    };
    command.extend([
        "--model-path".into(),
        model.to_string(),
        "--host".into(),
        opts.host.clone(),
        "--port".into(),
        port.to_string(),
    ]);
    if kind == BackendType::Sglang && role != Role::Aggregated {
        command.extend(["--disaggregation-mode".into(), role.mode().into()]);
    }
    let flags = backend
        .and_then(|b| b.sglang_config.get(role.config_key()))
        .map(flag_args)
        .unwrap_or_default();
    command.extend(flags);
    command
}

/// `vllm serve MODEL --host H --port P`, the `vllm_config` flags, and with torch profiling
/// the `--profiler-config` that mounts vLLM's profiling routes and fixes its output
/// directory (no request can move it).
fn vllm_command(
    backend: Option<&Backend>,
    model: &str,
    port: u16,
    opts: &PlanOptions,
    torch_profiling: bool,
    profile_dir: &Path,
) -> Vec<String> {
    let mut command: Vec<String> = ["vllm", "serve", model, "--host", &opts.host, "--port"]
        .map(String::from)
        .into();
    command.push(port.to_string());
    if let Some(flags) = backend.and_then(|b| b.vllm_config.get("aggregated")) {
        command.extend(flag_args(flags));
    }
    if torch_profiling {
        let config = serde_json::json!({
            "profiler": "torch",
            "torch_profiler_dir": profile_dir.display().to_string(),
        });
        command.extend(["--profiler-config".into(), config.to_string()]);
    }
    command
}

/// srtctl's nsys wrapper: capture between cudaProfilerStart/Stop, the report at `out`.
fn nsys_wrapped(
    p: &Profiling,
    out: &Path,
    command: Vec<String>,
    opts: &PlanOptions,
) -> Vec<String> {
    let mut wrapped: Vec<String> = [
        opts.nsys_bin.as_str(),
        "profile",
        "-t",
        "cuda,nvtx",
        "--cuda-graph-trace=node",
        "-c",
        "cudaProfilerApi",
        "--capture-range-end",
        "stop",
        "--force-overwrite",
        "true",
    ]
    .map(String::from)
    .into();
    wrapped.extend(p.extra_nsys_args.iter().cloned());
    wrapped.extend(["-o".into(), out.display().to_string()]);
    wrapped.extend(command);
    wrapped
}

/// The job's environment, the role's, and srtctl's profiling variables.
fn worker_env(
    j: &Job,
    backend: Option<&Backend>,
    role: Role,
    profiling: Option<&Profiling>,
    dir: &Path,
) -> BTreeMap<String, String> {
    let mut env = j.environment.clone();
    if let Some(b) = backend {
        let role_env = match role {
            Role::Prefill => &b.prefill_environment,
            Role::Decode => &b.decode_environment,
            Role::Aggregated => &b.aggregated_environment,
        };
        env.extend(role_env.clone());
    }
    if let Some(p) = profiling {
        env.insert("PROFILING_MODE".into(), role.mode().into());
        env.insert("PROFILE_TYPE".into(), profile_type(p.kind).into());
        env.insert(
            "SGLANG_TORCH_PROFILER_DIR".into(),
            dir.join("profiles").join(role.mode()).display().to_string(),
        );
    }
    env
}

/// One phase per configured window, on the worker of its role, with the phase's traffic
/// (falling back to the profiling-level isl/osl/concurrency).
fn profile_phases(p: &Profiling, workers: &[Worker], dir: &Path) -> Vec<ProfilePhase> {
    let mut phases = Vec::new();
    for (name, role, phase) in [
        ("prefill", Role::Prefill, &p.prefill),
        ("decode", Role::Decode, &p.decode),
        ("aggregated", Role::Aggregated, &p.aggregated),
    ] {
        let Some(ph) = phase else { continue };
        let v = &ph.value;
        let worker = workers
            .iter()
            .position(|w| w.role == role)
            .expect("validated: one worker per phase");
        let (start, stop) = (v.start_step.unwrap_or(0), v.stop_step.unwrap_or(50));
        let concurrency = v.concurrency.or(p.concurrency).expect("validated");
        let (isl, osl) = (
            v.isl.or(p.isl).expect("validated"),
            v.osl.or(p.osl).expect("validated"),
        );
        phases.push(ProfilePhase {
            name,
            worker,
            start_step: start,
            num_steps: stop - start,
            activities: if p.kind == ProfilingType::Nsys {
                vec!["CUDA_PROFILER"]
            } else {
                vec!["CPU", "GPU"]
            },
            output_dir: dir.join("profiles").join(role.mode()),
            traffic: Traffic {
                isl,
                osl,
                concurrency,
                // Enough requests for the window: srtctl sends 128; more when concurrent.
                num_prompts: (4 * concurrency).max(128),
                warmup: 0,
                range_ratio: 1.0,
                output_file: dir
                    .join(format!("profile_{name}_isl_{isl}_osl_{osl}"))
                    .join(format!("concurrency_{concurrency}.json")),
            },
        });
    }
    phases
}

/// `benchmark.type: loupe`: one run per concurrency, srtctl's prompt and warm-up multiples.
fn benchmark_runs(j: &Job, dir: &Path) -> Vec<Traffic> {
    let Some(b) = j
        .benchmark
        .as_ref()
        .map(|b| &b.value)
        .filter(|b| b.kind == BenchmarkType::Loupe)
    else {
        return Vec::new();
    };
    let (isl, osl) = (b.isl.expect("validated"), b.osl.expect("validated"));
    b.concurrencies
        .as_ref()
        .expect("validated")
        .values()
        .expect("validated")
        .into_iter()
        .map(|c| Traffic {
            isl,
            osl,
            concurrency: c,
            num_prompts: c * b.num_prompts_mult.unwrap_or(10),
            warmup: c * b.num_warmup_mult.unwrap_or(2),
            range_ratio: b.random_range_ratio.unwrap_or(0.8),
            output_file: dir
                .join(format!("loupe-bench_isl_{isl}_osl_{osl}"))
                .join(format!("concurrency_{c}.json")),
        })
        .collect()
}

/// The `loupe bench` command line of one traffic run against `url`.
pub fn bench_command(plan: &Plan, url: &str, t: &Traffic) -> Vec<String> {
    let vllm = plan.engine == Some(Engine::Vllm);
    let backend = if vllm { "vllm" } else { "sglang" };
    let mut argv = vec![
        plan.loupe_bin.display().to_string(),
        "bench".into(),
        "--backend".into(),
        backend.into(),
        "--base-url".into(),
        url.into(),
        "--dataset-name".into(),
        "random-ids".into(),
        "--random-input-len".into(),
        t.isl.to_string(),
        "--random-output-len".into(),
        t.osl.to_string(),
        "--random-range-ratio".into(),
        t.range_ratio.to_string(),
        "--max-concurrency".into(),
        t.concurrency.to_string(),
        "--num-prompts".into(),
        t.num_prompts.to_string(),
        "--warmup-requests".into(),
        t.warmup.to_string(),
        "--output-file".into(),
        t.output_file.display().to_string(),
        "--request-timings".into(),
        t.timings_file().display().to_string(),
    ];
    // vLLM has no /model_info to give random-ids its vocabulary: the served checkpoint's
    // tokenizer gives it.
    if vllm {
        argv.extend(["--tokenizer".into(), plan.model_path.clone()]);
    }
    argv
}

/// Quote an argument for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub fn shell_line(args: &[String]) -> String {
    args.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `--dry-run`: the plan as a person reads it.
pub fn render(plan: &Plan) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "job {} -> {}", plan.job, plan.log_dir.display());
    let _ = writeln!(o, "profiling: {}", plan.profiling);
    for w in &plan.workers {
        let _ = writeln!(
            o,
            "\nworker {} ({}) at {}",
            w.label(&plan.hostname),
            w.role.mode(),
            w.url(&plan.host)
        );
        for (k, v) in &w.env {
            let _ = writeln!(o, "  env {k}={v}");
        }
        let _ = writeln!(o, "  $ {}", shell_line(&w.command));
        let _ = writeln!(o, "  logs: {} {}", w.stdout.display(), w.stderr.display());
    }
    let _ = writeln!(
        o,
        "\nwait for GET /health on every worker: up to {} attempts, {} s apart",
        plan.health.max_attempts, plan.health.interval_seconds
    );
    for p in &plan.phases {
        let url = plan.workers[p.worker].url(&plan.host);
        let _ = writeln!(o, "\nphase {}: worker {url}", p.name);
        let _ = writeln!(o, "  POST {url}/start_profile {}", plan.start_body(p));
        let _ = writeln!(
            o,
            "  $ {}",
            shell_line(&bench_command(plan, &url, &p.traffic))
        );
        let _ = writeln!(
            o,
            "  POST {url}/stop_profile{}, wait for the files",
            if plan.engine == Some(Engine::Vllm) {
                " (always: vLLM's own stop leaves its session guard set)"
            } else {
                " (unless stopped by itself)"
            }
        );
        let _ = writeln!(o, "  traces: {}", p.output_dir.display());
    }
    if let Some(w) = plan.workers.first() {
        for t in &plan.benches {
            let _ = writeln!(o, "\nbenchmark concurrency {}:", t.concurrency);
            let _ = writeln!(
                o,
                "  $ {}",
                shell_line(&bench_command(plan, &w.url(&plan.host), t))
            );
        }
    }
    let _ = writeln!(
        o,
        "\nthen: stop every worker (SIGTERM, then SIGKILL after 10 s), summarise into {}",
        plan.log_dir.join("summary.md").display()
    );
    o
}
