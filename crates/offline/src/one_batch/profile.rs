//! `--profile` of one_batch: which forward calls are recorded (the extend call; decode steps
//! `start .. start + steps`), the trace file each window becomes
//! (`{prefix}_batch{bs}_input{il}_output{ol}_{prefill|decode}.trace.json.gz`, upstream's
//! name, in upstream's directory), written by the profiler's Kineto writer, and the
//! `key_averages` table read back from that file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use loupe_engine::ModelRunner;
use loupe_engine::observer::{ForwardMode, OpEvent, SchedulerPhase, StepInfo};
use loupe_profiler::capture::{Capture, CapturedStep, Clock, ExportSpec};
use loupe_profiler::{Activity, StartRequest};

use super::Case;
use crate::OfflineError;
use crate::key_averages::{self, KeyAverages};

/// `--profile-activities`: what upstream's names mean here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileActivity {
    /// Host-side op spans (torch's CPU activity).
    Cpu,
    /// Each rank's compute lane, the stand-in for CUDA kernels.
    Gpu,
}

/// `--profile-stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileStage {
    All,
    Prefill,
    Decode,
}

impl ProfileStage {
    /// The file-name suffix of a window of this stage.
    pub fn suffix(self) -> &'static str {
        match self {
            ProfileStage::Prefill => "prefill",
            _ => "decode",
        }
    }
}

/// `--profile` and its flags, resolved (`output_dir` from `SGLANG_TORCH_PROFILER_DIR`).
#[derive(Debug, Clone)]
pub struct ProfileSettings {
    pub activities: Vec<ProfileActivity>,
    pub stage: ProfileStage,
    pub prefix: String,
    /// 0-based decode step where the decode window opens; `None` = `output_len / 2`.
    pub start_step: Option<usize>,
    /// Decode steps in the window; `None` = 1.
    pub steps: Option<usize>,
    pub record_shapes: bool,
    pub output_dir: PathBuf,
}

impl ProfileSettings {
    fn window(&self, output_len: usize) -> (usize, usize) {
        (
            self.start_step.unwrap_or(output_len / 2),
            self.steps.unwrap_or(1),
        )
    }

    fn profiles_decode(&self) -> bool {
        matches!(self.stage, ProfileStage::All | ProfileStage::Decode)
    }

    /// A decode window must open and close within the case's `output_len - 1` decode steps
    /// (upstream silently writes no decode trace otherwise).
    pub(super) fn check_window(&self, output_len: usize) -> Result<(), OfflineError> {
        if !self.profiles_decode() {
            return Ok(());
        }
        let (start, steps) = self.window(output_len);
        let decode_steps = output_len.saturating_sub(1);
        if steps == 0 {
            return Err(OfflineError::Flag(
                "--profile-steps must be at least 1".into(),
            ));
        }
        if start + steps > decode_steps {
            return Err(OfflineError::Flag(format!(
                "--profile-start-step {start} --profile-steps {steps}: the decode window ends after \
                 decode step {} but --output-len {output_len} runs only {decode_steps} decode steps \
                 (0..{}); lower the window, raise --output-len, or use --profile-stage prefill",
                start + steps - 1,
                decode_steps.saturating_sub(1)
            )));
        }
        Ok(())
    }

    /// The output directory is created (as upstream does) and must be writable.
    pub(super) fn check_output_dir(&self) -> Result<(), OfflineError> {
        std::fs::create_dir_all(&self.output_dir)
            .map_err(|e| OfflineError::file(&self.output_dir, e))?;
        tempfile::tempfile_in(&self.output_dir)
            .map(drop)
            .map_err(|e| OfflineError::file(&self.output_dir, format!("is not writable: {e}")))
    }

    /// Upstream's trace file name.
    pub fn file_name(&self, case: Case, stage: ProfileStage) -> String {
        format!(
            "{}_batch{}_input{}_output{}_{}.trace.json.gz",
            self.prefix,
            case.batch_size,
            case.input_len,
            case.output_len,
            stage.suffix()
        )
    }

    fn request(&self) -> StartRequest {
        StartRequest {
            output_dir: Some(self.output_dir.display().to_string()),
            start_step: None,
            num_steps: None,
            activities: self
                .activities
                .iter()
                .map(|a| match a {
                    ProfileActivity::Cpu => Activity::Cpu,
                    ProfileActivity::Gpu => Activity::Gpu,
                })
                .collect(),
            profile_by_stage: false,
            profile_stages: None,
            // Upstream profiles one_batch with_stack=True always.
            with_stack: true,
            record_shapes: self.record_shapes,
            merge_profiles: false,
            profile_prefix: None,
            profile_id: None,
        }
    }
}

/// A trace file written for one window, with its key_averages table.
#[derive(Debug)]
pub struct TraceWritten {
    pub stage: ProfileStage,
    pub path: PathBuf,
    pub events: usize,
    pub table: KeyAverages,
}

/// Collects one case's recorded forward calls and writes each window when it closes.
pub(super) struct Recorder {
    settings: ProfileSettings,
    case: Case,
    spec: ExportSpec,
    started: Instant,
    steps: Vec<CapturedStep>,
    step_counter: u64,
    kv_total: usize,
}

impl Recorder {
    pub fn new(settings: &ProfileSettings, runner: &ModelRunner, case: Case) -> Recorder {
        let spec = ExportSpec {
            profile_id: format!(
                "{}_batch{}_input{}_output{}",
                settings.prefix, case.batch_size, case.input_len, case.output_len
            ),
            request: settings.request(),
            output_dir: settings.output_dir.clone(),
            tp_size: runner.tp_size(),
            dp_size: 1,
            clock: Clock::default(),
            v2: false,
            threads_per_rank: runner.threads_per_rank(),
            model_name: runner.config().architecture.hf_name().to_string(),
        };
        Recorder {
            settings: settings.clone(),
            case,
            spec,
            started: Instant::now(),
            steps: Vec::new(),
            step_counter: 0,
            kv_total: runner.max_total_tokens(),
        }
    }

    pub fn wants_prefill(&self) -> bool {
        matches!(
            self.settings.stage,
            ProfileStage::All | ProfileStage::Prefill
        )
    }

    pub fn records_decode(&self, i: usize) -> bool {
        if !self.settings.profiles_decode() {
            return false;
        }
        let (start, steps) = self.settings.window(self.case.output_len);
        (start..start + steps).contains(&i)
    }

    pub fn decode_window_done(&self, i: usize) -> bool {
        let (start, steps) = self.settings.window(self.case.output_len);
        i + 1 == start + steps
    }

    /// One recorded forward call: the timed region becomes the step's run-batch span.
    pub fn step(
        &mut self,
        mode: ForwardMode,
        batch_size: usize,
        num_tokens: usize,
        start: Instant,
        end: Instant,
        rank_ops: Vec<Vec<OpEvent>>,
    ) {
        self.step_counter += 1;
        let per_seq = self.case.input_len + self.case.output_len;
        self.steps.push(CapturedStep {
            info: StepInfo {
                dp_rank: 0,
                step: self.step_counter,
                mode,
                batch_size,
                num_tokens,
                cached_tokens: 0,
                running_requests: batch_size,
                queued_requests: 0,
                kv_used_tokens: (batch_size * per_seq).min(self.kv_total),
                kv_total_tokens: self.kv_total,
            },
            phases: vec![(SchedulerPhase::RunBatch, start, end)],
            rank_ops,
        });
    }

    /// Write the window's trace (rank 0's, as upstream's rank 0 writes it) and read its table.
    pub fn finish(&mut self, stage: ProfileStage) -> Result<TraceWritten, OfflineError> {
        let path = self
            .settings
            .output_dir
            .join(self.settings.file_name(self.case, stage));
        let capture = Capture {
            dp_rank: 0,
            started: self.started,
            stage: None,
            steps: std::mem::take(&mut self.steps),
            host_spans: Vec::new(),
        };
        let events = write(&path, &self.spec, &capture)?;
        self.started = Instant::now();
        let sort = if self.settings.activities.contains(&ProfileActivity::Gpu) {
            key_averages::SortBy::SelfDeviceTime
        } else {
            key_averages::SortBy::SelfCpuTime
        };
        let table = key_averages::read(&path, sort)?;
        Ok(TraceWritten {
            stage,
            path,
            events,
            table,
        })
    }
}

fn write(path: &Path, spec: &ExportSpec, capture: &Capture) -> Result<usize, OfflineError> {
    loupe_trace::export::write_atomic(path, |w| {
        loupe_profiler::kineto::write_rank(w, path, spec, capture, 0)
    })
    .map_err(|e| OfflineError::file(path, e))
}
