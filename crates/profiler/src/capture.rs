//! What a capture holds (raw step reports, copied cheaply on the scheduler thread and turned
//! into trace events only by the background writer), the wall clock that places them, and
//! SGLang's trace file names.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use loupe_engine::observer::{OpEvent, SchedulerPhase, StepInfo};

use crate::request::StartRequest;
use crate::window::Stage;

/// Maps monotonic instants to Unix nanoseconds (one anchor taken at start-up).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor: Instant,
    anchor_unix_ns: i64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            anchor: Instant::now(),
            anchor_unix_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64),
        }
    }
}

impl Clock {
    pub fn unix_ns(&self, t: Instant) -> i64 {
        match t.checked_duration_since(self.anchor) {
            Some(d) => self.anchor_unix_ns + d.as_nanos() as i64,
            None => self.anchor_unix_ns - self.anchor.duration_since(t).as_nanos() as i64,
        }
    }
}

/// One recorded scheduler step of a data-parallel group, every rank's ops included.
#[derive(Debug, Clone)]
pub struct CapturedStep {
    pub info: StepInfo,
    pub phases: Vec<(SchedulerPhase, Instant, Instant)>,
    pub rank_ops: Vec<Vec<OpEvent>>,
}

/// Host work outside the scheduler (tokenizing in the HTTP layer).
#[derive(Debug, Clone)]
pub struct HostSpan {
    pub name: &'static str,
    pub start: Instant,
    pub end: Instant,
    pub tokens: usize,
}

/// One capture: a data-parallel group's recorded steps, for one stage or none.
#[derive(Debug, Clone)]
pub struct Capture {
    pub dp_rank: usize,
    /// When the capture began recording.
    pub started: Instant,
    pub stage: Option<Stage>,
    pub steps: Vec<CapturedStep>,
    pub host_spans: Vec<HostSpan>,
}

/// Everything the writer needs besides the capture.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    pub profile_id: String,
    pub request: StartRequest,
    pub output_dir: PathBuf,
    pub tp_size: usize,
    pub dp_size: usize,
    pub clock: Clock,
    /// `SGLANG_PROFILE_V2` naming (lowercase stage suffixes).
    pub v2: bool,
    /// Compute threads per rank (reported as the "device" size).
    pub threads_per_rank: usize,
    pub model_name: String,
}

/// SGLang's trace file name:
/// `[{prefix}-]{profile_id}-TP-{tp}[-DP-{dp}][-PP-{pp}][-EP-{ep}][-{STAGE}]{ext}`.
/// DP/PP/EP appear only when that dimension has more than one rank.
pub fn rank_file_name(
    spec: &ExportSpec,
    tp: usize,
    dp: usize,
    stage: Option<Stage>,
    ext: &str,
) -> String {
    let mut name = String::new();
    if let Some(p) = &spec.request.profile_prefix {
        name.push_str(p);
        name.push('-');
    }
    name.push_str(&spec.profile_id);
    name.push_str(&format!("-TP-{tp}"));
    if spec.dp_size > 1 {
        name.push_str(&format!("-DP-{dp}"));
    }
    if let Some(s) = stage {
        name.push('-');
        name.push_str(s.suffix(spec.v2));
    }
    name.push_str(ext);
    name
}

/// `merged-{profile_id}.trace.json.gz`, SGLang's name (`profile_merger.py`) whatever the
/// `profile_prefix`: scripts glob for `merged-*`. The prefix still marks the per-rank files.
pub fn merged_file_name(spec: &ExportSpec) -> String {
    format!("merged-{}.trace.json.gz", spec.profile_id)
}

/// A fresh profile id like SGLang's `str(time.time())`, e.g. `1769070226.0713482`.
pub fn new_profile_id() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let s = format!("{}.{:07}", d.as_secs(), d.subsec_nanos() / 100);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(prefix: Option<&str>, dp_size: usize, v2: bool) -> ExportSpec {
        let mut request = StartRequest::parse(b"").unwrap();
        request.profile_prefix = prefix.map(str::to_string);
        ExportSpec {
            profile_id: "1769070226.0713482".into(),
            request,
            output_dir: PathBuf::from("out"),
            tp_size: 2,
            dp_size,
            clock: Clock::default(),
            v2,
            threads_per_rank: 1,
            model_name: "tiny".into(),
        }
    }

    #[test]
    fn file_names_follow_sglang() {
        let t = ".trace.json.gz";
        assert_eq!(
            rank_file_name(&spec(None, 1, false), 1, 0, None, t),
            "1769070226.0713482-TP-1.trace.json.gz"
        );
        assert_eq!(
            rank_file_name(
                &spec(Some("my_exp"), 2, false),
                1,
                0,
                Some(Stage::Decode),
                t
            ),
            "my_exp-1769070226.0713482-TP-1-DP-0-DECODE.trace.json.gz"
        );
        assert_eq!(
            rank_file_name(&spec(None, 1, true), 0, 0, Some(Stage::Extend), t),
            "1769070226.0713482-TP-0-prefill.trace.json.gz"
        );
        assert_eq!(
            merged_file_name(&spec(None, 1, false)),
            "merged-1769070226.0713482.trace.json.gz"
        );
        assert_eq!(
            merged_file_name(&spec(Some("x"), 1, false)),
            "merged-1769070226.0713482.trace.json.gz",
            "SGLang names the merged trace without the prefix"
        );
    }

    #[test]
    fn profile_ids_look_like_python_time() {
        let id = new_profile_id();
        let (secs, frac) = id.split_once('.').unwrap_or((&id, ""));
        assert!(secs.parse::<u64>().unwrap() > 1_700_000_000);
        assert!(frac.len() <= 7 && frac.chars().all(|c| c.is_ascii_digit()));
    }

    #[test]
    fn clock_places_instants_on_the_wall() {
        let c = Clock::default();
        let now = Instant::now();
        let later = now + std::time::Duration::from_millis(5);
        assert_eq!(c.unix_ns(later) - c.unix_ns(now), 5_000_000);
    }
}
