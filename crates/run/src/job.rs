//! Job files: srtctl's recipe vocabulary for the sections that make sense on one machine,
//! parsed strictly (an unknown key is an error naming file, key and line), then checked with
//! srtctl's validation rules and messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A job error: always says which file, and where in it when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct JobError {
    pub file: String,
    pub line: Option<u64>,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub name: String,
    pub model: Spanned<Model>,
    pub resources: Spanned<Resources>,
    #[serde(default)]
    pub backend: Option<Spanned<Backend>>,
    #[serde(default)]
    pub profiling: Option<Spanned<Profiling>>,
    #[serde(default)]
    pub benchmark: Option<Spanned<Benchmark>>,
    #[serde(default)]
    pub output: Option<Output>,
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub slurm: Option<Slurm>,
    /// Expanded before parsing (see [`load`]); kept here only so the key is accepted.
    #[serde(default)]
    pub sweep: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// A model directory, or a preset of the embedded engine (tiny, small).
    pub path: String,
    #[serde(default)]
    pub precision: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub gpu_type: Option<String>,
    #[serde(default)]
    pub gpus_per_node: Option<u32>,
    #[serde(default)]
    pub prefill_nodes: Option<u32>,
    #[serde(default)]
    pub prefill_workers: Option<u32>,
    #[serde(default)]
    pub decode_nodes: Option<u32>,
    #[serde(default)]
    pub decode_workers: Option<u32>,
    #[serde(default)]
    pub agg_nodes: Option<u32>,
    #[serde(default)]
    pub agg_workers: Option<u32>,
}

impl Resources {
    pub fn disaggregated(&self) -> bool {
        self.prefill_workers.unwrap_or(0) > 0 || self.decode_workers.unwrap_or(0) > 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendType {
    /// loupe's reference engine (`loupe serve`).
    Embedded,
    /// `python3 -m sglang.launch_server` with `sglang_config` flags.
    Sglang,
    /// `vllm serve` with `vllm_config` flags; with torch profiling, loupe adds
    /// `--profiler-config` (vLLM's output directory is fixed at launch).
    Vllm,
    /// Any command, with `{port}`, `{host}`, `{model_path}` and `{profile_dir}` placeholders.
    Command,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    #[serde(rename = "type")]
    pub kind: BackendType,
    /// Server flags per role: `prefill`, `decode`, `aggregated`; kebab or snake case keys.
    #[serde(default)]
    pub sglang_config: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// `vllm serve` flags per role (only `aggregated`: loupe runs no disaggregated vLLM).
    #[serde(default)]
    pub vllm_config: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub command: Option<String>,
    /// What `command` serves, for its profiling protocol (default: asked from the server).
    #[serde(default)]
    pub engine: Option<loupe_client::Engine>,
    #[serde(default)]
    pub prefill_environment: BTreeMap<String, String>,
    #[serde(default)]
    pub decode_environment: BTreeMap<String, String>,
    #[serde(default)]
    pub aggregated_environment: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfilingType {
    None,
    Torch,
    Nsys,
}

/// One phase's window (and, srtctl generation 1/2 style, its traffic).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    #[serde(default)]
    pub start_step: Option<u64>,
    #[serde(default)]
    pub stop_step: Option<u64>,
    #[serde(default)]
    pub isl: Option<u64>,
    #[serde(default)]
    pub osl: Option<u64>,
    #[serde(default)]
    pub concurrency: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profiling {
    #[serde(rename = "type")]
    pub kind: ProfilingType,
    #[serde(default)]
    pub prefill: Option<Spanned<Phase>>,
    #[serde(default)]
    pub decode: Option<Spanned<Phase>>,
    #[serde(default)]
    pub aggregated: Option<Spanned<Phase>>,
    /// Generation 2: traffic shared by all phases.
    #[serde(default)]
    pub isl: Option<u64>,
    #[serde(default)]
    pub osl: Option<u64>,
    #[serde(default)]
    pub concurrency: Option<u64>,
    #[serde(default)]
    pub extra_nsys_args: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchmarkType {
    Manual,
    /// A loupe bench run per concurrency (srtctl's `sa-bench` is accepted as a synonym).
    #[serde(alias = "sa-bench", alias = "sglang-bench")]
    Loupe,
}

impl BenchmarkType {
    pub fn name(self) -> &'static str {
        match self {
            BenchmarkType::Manual => "manual",
            BenchmarkType::Loupe => "loupe",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Benchmark {
    #[serde(rename = "type")]
    pub kind: BenchmarkType,
    #[serde(default)]
    pub isl: Option<u64>,
    #[serde(default)]
    pub osl: Option<u64>,
    /// A list, or srtctl's `"128x256"` form.
    #[serde(default)]
    pub concurrencies: Option<Concurrencies>,
    #[serde(default)]
    pub req_rate: Option<serde_json::Value>,
    #[serde(default)]
    pub random_range_ratio: Option<f64>,
    #[serde(default)]
    pub num_prompts_mult: Option<u64>,
    #[serde(default)]
    pub num_warmup_mult: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Concurrencies {
    List(Vec<u64>),
    Text(String),
}

impl Concurrencies {
    pub fn values(&self) -> Result<Vec<u64>, String> {
        match self {
            Concurrencies::List(v) => Ok(v.clone()),
            Concurrencies::Text(s) => s
                .split('x')
                .map(|p| {
                    p.trim().parse::<u64>().map_err(|_| {
                        format!("benchmark.concurrencies: '{s}' is not a list or 'AxB' of integers")
                    })
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// Where runs go; `{job}` and `{timestamp}` placeholders. Default `logs/{job}_{timestamp}`.
    #[serde(default)]
    pub log_dir: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_interval")]
    pub interval_seconds: f64,
}

fn default_attempts() -> u32 {
    180
}
fn default_interval() -> f64 {
    10.0
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            max_attempts: default_attempts(),
            interval_seconds: default_interval(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slurm {
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub partition: Option<String>,
    #[serde(default)]
    pub time_limit: Option<String>,
}

/// A loaded job: which file it came from, and its sweep point (if any).
#[derive(Debug, Clone)]
pub struct LoadedJob {
    pub file: PathBuf,
    pub job: Job,
    /// The sweep parameters of this instance, in declaration order.
    pub sweep_point: Vec<(String, serde_json::Value)>,
    pub source: String,
}

fn err(file: &Path, line: Option<u64>, message: impl Into<String>) -> JobError {
    JobError {
        file: file.display().to_string(),
        line,
        message: message.into(),
    }
}

/// Read a job file and expand its sweep into one job per point.
pub fn load(file: &Path) -> Result<Vec<LoadedJob>, JobError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| err(file, None, format!("cannot read: {e}")))?;
    if text.trim().is_empty() {
        return Err(err(file, None, "YAML file is empty"));
    }
    let raw: serde_json::Value = serde_saphyr::from_str(&text).map_err(|e| yaml_err(file, &e))?;
    if !raw.is_object() {
        return Err(err(
            file,
            None,
            "the job must be a YAML mapping at the top level",
        ));
    }
    let points = crate::sweep::points(&raw)
        .map_err(|m| err(file, crate::sweep::line_of(&text, "sweep"), m))?;
    points
        .into_iter()
        .map(|point| {
            let source = crate::sweep::substitute(&text, &point);
            let job: Job = serde_saphyr::from_str(&source).map_err(|e| yaml_err(file, &e))?;
            validate(file, &job)?;
            Ok(LoadedJob {
                file: file.to_path_buf(),
                job,
                sweep_point: point,
                source,
            })
        })
        .collect()
}

fn yaml_err(file: &Path, e: &serde_saphyr::Error) -> JobError {
    let line = e.location().map(|l| l.line());
    // The first line of serde-saphyr's message is the error; the rest is a source snippet.
    let message = e.to_string().lines().next().unwrap_or_default().to_string();
    err(file, line, message)
}

/// srtctl's load-time rules, with its messages, for the sections loupe runs.
pub fn validate(file: &Path, job: &Job) -> Result<(), JobError> {
    let res = &job.resources.value;
    let res_line = Some(job.resources.referenced.line());
    let disagg = res.disaggregated();
    if disagg && (res.prefill_workers.unwrap_or(0) == 0 || res.decode_workers.unwrap_or(0) == 0) {
        return Err(err(
            file,
            res_line,
            "resources: disaggregated mode requires prefill_workers and decode_workers to be > 0",
        ));
    }
    if !disagg && res.agg_workers.unwrap_or(1) == 0 {
        return Err(err(file, res_line, "resources: agg_workers must be > 0"));
    }
    let backend = job
        .backend
        .as_ref()
        .map_or(BackendType::Embedded, |b| b.value.kind);
    if let Some(b) = &job.backend {
        for role in b.value.sglang_config.keys() {
            if !["prefill", "decode", "aggregated"].contains(&role.as_str()) {
                return Err(err(
                    file,
                    Some(b.referenced.line()),
                    format!(
                        "backend.sglang_config: unknown role '{role}' (prefill, decode, aggregated)"
                    ),
                ));
            }
        }
        if let Some(role) = b.value.vllm_config.keys().find(|r| *r != "aggregated") {
            return Err(err(
                file,
                Some(b.referenced.line()),
                format!(
                    "backend.vllm_config: role '{role}': vLLM jobs run aggregated workers only"
                ),
            ));
        }
        if b.value.kind == BackendType::Vllm && disagg {
            return Err(err(
                file,
                Some(b.referenced.line()),
                "backend: type vllm runs aggregated workers only (agg_workers, not prefill/decode)",
            ));
        }
        if b.value.kind == BackendType::Command && b.value.command.is_none() {
            return Err(err(
                file,
                Some(b.referenced.line()),
                "backend: type command needs `command`",
            ));
        }
    }
    let Some(prof) = &job.profiling else {
        return check_benchmark(file, job);
    };
    let p = &prof.value;
    let line = Some(prof.referenced.line());
    if p.kind == ProfilingType::None {
        return check_benchmark(file, job);
    }
    let workers = if disagg {
        res.prefill_workers.unwrap_or(0) + res.decode_workers.unwrap_or(0)
    } else {
        res.agg_workers.unwrap_or(1)
    };
    if (disagg && workers != 2) || (!disagg && workers != 1) {
        return Err(err(
            file,
            res_line,
            "Profiling mode requires single worker only",
        ));
    }
    if let Some(b) = &job.benchmark
        && b.value.kind != BenchmarkType::Manual
    {
        return Err(err(
            file,
            Some(b.referenced.line()),
            format!(
                "Cannot enable profiling with benchmark type '{}': the profiling phases drive their own \
                 traffic; set benchmark.type: manual",
                b.value.kind.name()
            ),
        ));
    }
    if disagg {
        if p.prefill.is_none() || p.decode.is_none() {
            return Err(err(
                file,
                line,
                "Disaggregated mode requires both profiling.prefill and profiling.decode to be set when profiling is enabled.",
            ));
        }
        if p.aggregated.is_some() {
            return Err(err(
                file,
                line,
                "Disaggregated mode only supports profiling.prefill/decode; profiling.aggregated is not allowed.",
            ));
        }
    } else {
        if p.aggregated.is_none() {
            return Err(err(
                file,
                line,
                "Aggregated mode requires profiling.aggregated to be set when profiling is enabled.",
            ));
        }
        if p.prefill.is_some() || p.decode.is_some() {
            return Err(err(
                file,
                line,
                "Aggregated mode only supports profiling.aggregated; profiling.prefill/decode are not allowed.",
            ));
        }
    }
    for (name, phase) in [
        ("prefill", &p.prefill),
        ("decode", &p.decode),
        ("aggregated", &p.aggregated),
    ] {
        let Some(ph) = phase else { continue };
        let pl = Some(ph.referenced.line());
        let v = &ph.value;
        for (key, own, shared) in [
            ("isl", v.isl, p.isl),
            ("osl", v.osl, p.osl),
            ("concurrency", v.concurrency, p.concurrency),
        ] {
            if own.or(shared).is_none() {
                return Err(err(
                    file,
                    pl,
                    format!(
                        "profiling.{name}: missing {key} (set it in the phase or at profiling level)"
                    ),
                ));
            }
        }
        let (start, stop) = (v.start_step.unwrap_or(0), v.stop_step.unwrap_or(50));
        if stop <= start {
            return Err(err(
                file,
                pl,
                format!(
                    "profiling.{name}: stop_step ({stop}) must be greater than start_step ({start})"
                ),
            ));
        }
    }
    if p.kind == ProfilingType::Nsys && backend == BackendType::Embedded {
        return Err(err(
            file,
            line,
            "profiling.type nsys wraps a CUDA server in nsys and uses its CUDA_PROFILER activity; the \
             embedded engine runs on the CPU (use type torch, or backend sglang/command)",
        ));
    }
    Ok(())
}

fn check_benchmark(file: &Path, job: &Job) -> Result<(), JobError> {
    let Some(b) = &job.benchmark else {
        return Ok(());
    };
    if b.value.kind == BenchmarkType::Loupe {
        let line = Some(b.referenced.line());
        let v = &b.value;
        for (key, missing) in [
            ("isl", v.isl.is_none()),
            ("osl", v.osl.is_none()),
            ("concurrencies", v.concurrencies.is_none()),
        ] {
            if missing {
                return Err(err(
                    file,
                    line,
                    format!("benchmark: {} needs {key}", v.kind.name()),
                ));
            }
        }
        let c = v
            .concurrencies
            .as_ref()
            .expect("checked")
            .values()
            .map_err(|m| err(file, line, m))?;
        if c.is_empty() || c.contains(&0) {
            return Err(err(
                file,
                line,
                "benchmark.concurrencies: give positive integers",
            ));
        }
    }
    Ok(())
}
