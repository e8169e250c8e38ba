//! The background writer: one thread that turns finished captures into files (every file
//! through `loupe_trace::export::write_atomic`: a temporary name, renamed when complete) and
//! merges a profile's files, so that the scheduler and the HTTP handlers never wait on disk
//! or compression. It reports each finished job on a channel; it knows nothing of the
//! session that asked for it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};

use loupe_trace::export::write_atomic;

use crate::capture::{Capture, ExportSpec, merged_file_name, rank_file_name};
use crate::request::Activity;

pub(crate) enum Job {
    Export(Arc<ExportSpec>, Capture),
    /// `merge_profiles`: every rank's trace of the profile, once all of them are written.
    Merge(Arc<ExportSpec>, Vec<PathBuf>),
}

/// A finished job: the files it wrote, or why it failed.
#[derive(Debug)]
pub(crate) struct Done {
    pub profile_id: String,
    pub files: Vec<String>,
    pub error: Option<String>,
}

/// Run the calling thread under SCHED_IDLE (the kernel's lowest class: it gets the CPU when
/// serving threads leave it, instead of taking a core from the ranks mid-step), falling back
/// to nice 19.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id with a valid sched_param.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::pid_t;
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) != 0
            && libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) != 0
        {
            tracing::debug!("could not lower the profile writer's priority");
        }
    }
}

/// Run jobs until the job channel closes (the profiler is gone) or nobody listens for
/// completions any more.
pub(crate) fn run(jobs: Receiver<Job>, done: Sender<Done>) {
    lower_priority();
    while let Ok(job) = jobs.recv() {
        let (profile_id, result) = match job {
            Job::Export(spec, capture) => (spec.profile_id.clone(), export(&spec, &capture)),
            Job::Merge(spec, files) => (spec.profile_id.clone(), merge(&spec, &files)),
        };
        let (files, error) = match result {
            Ok(files) => (files, None),
            Err(e) => {
                tracing::error!("profile {profile_id}: {e}");
                (Vec::new(), Some(e))
            }
        };
        let report = Done {
            profile_id,
            files,
            error,
        };
        if done.send(report).is_err() {
            return;
        }
    }
}

/// Write `path` atomically; the error names the file.
fn write_file<T>(
    path: &Path,
    f: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<T>,
) -> Result<T, String> {
    write_atomic(path, f).map_err(|e| e.to_string())
}

fn export(spec: &ExportSpec, capture: &Capture) -> Result<Vec<String>, String> {
    let dir = &spec.output_dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let req = &spec.request;
    let mut files = Vec::new();
    let traced = req.has(Activity::Cpu) || req.has(Activity::Gpu) || req.has(Activity::Mem);
    for tp in 0..spec.tp_size {
        if traced {
            let path = dir.join(rank_file_name(
                spec,
                tp,
                capture.dp_rank,
                capture.stage,
                ".trace.json.gz",
            ));
            let events = write_file(&path, |w| {
                crate::kineto::write_rank(w, &path, spec, capture, tp)
            })?;
            tracing::debug!("wrote {} ({events} events)", path.display());
            files.push(path.display().to_string());
        }
        if req.has(Activity::Mem) {
            let path = dir.join(memory_name(&rank_file_name(
                spec,
                tp,
                capture.dp_rank,
                capture.stage,
                "-memory.json",
            )));
            write_file(&path, |w| {
                crate::memory::write_snapshot(w, spec, capture, tp)
            })?;
            files.push(path.display().to_string());
        }
    }
    if req.has(Activity::Rpd) {
        let path = dir.join(
            rank_file_name(spec, 0, capture.dp_rank, capture.stage, ".rpd").replace("-TP-0", ""),
        );
        write_file(&path, |w| crate::rpd::write(w, spec, capture))?;
        files.push(path.display().to_string());
    }
    Ok(files)
}

/// `merge_profiles` through loupe-trace's streaming merge: SGLang's `[TP01-DP00]` process
/// labels, flow ids kept within their rank, ranks aligned on `baseTimeNanoseconds`; written
/// under a temporary name and renamed. Unlike SGLang's merger it runs after every DP group's
/// files are written, finds prefixed files, and a failure fails the stop request.
fn merge(spec: &ExportSpec, files: &[PathBuf]) -> Result<Vec<String>, String> {
    use loupe_trace::export::merge::{CategoryFilter, merge};
    use loupe_trace::import::{Input, ReadOptions};
    tracing::info!("Starting profile merge...");
    tracing::info!("Found {} trace files to merge", files.len());
    let inputs = files
        .iter()
        .map(|f| Input::open(f, None))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("Failed to merge profiles: {e}"))?;
    let out = spec.output_dir.join(merged_file_name(spec));
    let report = merge(
        &inputs,
        &out,
        &ReadOptions::default(),
        &CategoryFilter::default(),
    )
    .map_err(|e| format!("Failed to merge profiles: {e}"))?;
    tracing::info!("Merged profile saved to: {}", out.display());
    tracing::info!("Total events merged: {}", report.events_written);
    tracing::info!("Profile merge completed: {}", out.display());
    Ok(vec![out.display().to_string()])
}

/// SGLang puts the stage after `-memory`: `{id}-TP-{tp}-memory[-STAGE]`.
fn memory_name(name: &str) -> String {
    for stage in ["-EXTEND", "-DECODE", "-prefill", "-decode"] {
        if let Some(head) = name.strip_suffix(&format!("{stage}-memory.json")) {
            return format!("{head}-memory{stage}.json");
        }
    }
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_files_put_the_stage_last() {
        assert_eq!(
            memory_name("x-1-TP-0-DECODE-memory.json"),
            "x-1-TP-0-memory-DECODE.json"
        );
        assert_eq!(memory_name("1-TP-1-memory.json"), "1-TP-1-memory.json");
    }

    #[test]
    fn failed_writes_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        let r: Result<(), String> = write_file(&path, |w| {
            std::io::Write::write_all(w, b"partial")?;
            Err(std::io::Error::other("disk full"))
        });
        let e = r.unwrap_err();
        assert!(e.contains("disk full") && e.contains("a.json"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
