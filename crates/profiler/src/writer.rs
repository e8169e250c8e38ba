//! The background writer: one thread that turns finished captures into files (every file
//! written under a temporary name and renamed when complete) and merges a profile's files,
//! so that the scheduler and the HTTP handlers never wait on disk or compression.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Weak;
use std::sync::mpsc::Receiver;

use crate::capture::{Capture, ExportSpec, merged_file_name, rank_file_name};
use crate::profiler::{Shared, job_done};
use crate::request::Activity;

pub(crate) enum Job {
    Export(Arc<ExportSpec>, Capture),
    /// `merge_profiles`: every rank's trace of the profile, once all of them are written.
    Merge(Arc<ExportSpec>, Vec<PathBuf>),
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

pub(crate) fn run(rx: Receiver<Job>, shared: Weak<Shared>) {
    lower_priority();
    while let Ok(job) = rx.recv() {
        let (id, result) = match job {
            Job::Export(spec, capture) => (spec.profile_id.clone(), export(&spec, &capture)),
            Job::Merge(spec, files) => (spec.profile_id.clone(), merge(&spec, &files)),
        };
        let Some(sh) = shared.upgrade() else { return };
        match result {
            Ok(files) => job_done(&sh, &id, files, None),
            Err(e) => {
                tracing::error!("profile {id}: {e}");
                job_done(&sh, &id, Vec::new(), Some(e));
            }
        }
    }
}

/// A temporary sibling of `path` (same directory, so the rename is atomic).
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Write to a temporary name with `f`, then rename into place; on failure nothing is left.
pub(crate) fn write_atomically<T>(
    path: &Path,
    f: impl FnOnce(&Path) -> std::io::Result<T>,
) -> Result<T, String> {
    let tmp = temp_path(path);
    match f(&tmp).and_then(|v| std::fs::rename(&tmp, path).map(|_| v)) {
        Ok(v) => Ok(v),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(format!("{}: {e}", path.display()))
        }
    }
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
            let events = write_atomically(&path, |tmp| {
                crate::kineto::write_rank(tmp, &path, spec, capture, tp)
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
            write_atomically(&path, |tmp| {
                crate::memory::write_snapshot(tmp, spec, capture, tp)
            })?;
            files.push(path.display().to_string());
        }
    }
    if req.has(Activity::Rpd) {
        let path = dir.join(
            rank_file_name(spec, 0, capture.dp_rank, capture.stage, ".rpd").replace("-TP-0", ""),
        );
        write_atomically(&path, |tmp| crate::rpd::write(tmp, spec, capture))?;
        files.push(path.display().to_string());
    }
    Ok(files)
}

/// SGLang puts the stage after `-memory`: `{id}-TP-{tp}-memory[-STAGE]`.
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
        let r: Result<(), String> = write_atomically(&path, |tmp| {
            std::fs::write(tmp, b"partial")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(r.unwrap_err().contains("disk full"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
