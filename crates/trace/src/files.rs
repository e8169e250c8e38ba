//! What a profiler's output file is, from its name: the one filter for SGLang's (and loupe's)
//! profile file names. SGLang's torch profiler writes one Kineto trace per rank
//! (`<id>-TP-0[-DP-0][-EXTEND].trace.json.gz`), its merger `merged-<id>.trace.json.gz`, its
//! memory profiler `<id>-TP-0-memory[-STAGE].pickle`; loupe's profiler writes memory snapshots
//! as `-memory[-STAGE].json` and RPD databases as `.rpd`; Nsight Systems writes `.nsys-rep`
//! (`.qdrep` before 2021.3). A name starting with `.` is a file still being written under a
//! temporary name and is nothing yet.
//!
//! The name only says which file to pick up; what a file holds is always read from its bytes
//! ([`import`](crate::import)).

use std::path::{Path, PathBuf};

/// A profiler output file, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileFile {
    /// One rank's Kineto trace (`.trace.json.gz`, or `.trace.json` uncompressed).
    RankTrace,
    /// A merged trace (`merged-<id>.trace.json.gz`, `<prefix>-merged-...`): the per-rank
    /// traces' events again, under rank labels.
    MergedTrace,
    /// A memory snapshot (`-memory.pickle` from SGLang, `-memory.json` from loupe, either
    /// with a stage after `-memory`).
    MemorySnapshot,
    /// An RPD (rocmProfileData) SQLite database.
    Rpd,
    /// An Nsight Systems report.
    NsysReport,
}

impl ProfileFile {
    /// What the file name `name` (no directory) says the file is; `None` for anything a
    /// profiler does not write.
    pub fn of(name: &str) -> Option<ProfileFile> {
        if name.starts_with('.') {
            None
        } else if name.ends_with(".trace.json.gz") || name.ends_with(".trace.json") {
            Some(
                if name.starts_with("merged-") || name.contains("-merged-") {
                    ProfileFile::MergedTrace
                } else {
                    ProfileFile::RankTrace
                },
            )
        } else if name.ends_with(".pickle") || is_memory_json(name) {
            Some(ProfileFile::MemorySnapshot)
        } else if name.ends_with(".rpd") {
            Some(ProfileFile::Rpd)
        } else if name.ends_with(".nsys-rep") || name.ends_with(".qdrep") {
            Some(ProfileFile::NsysReport)
        } else {
            None
        }
    }

    /// [`ProfileFile::of`] the last component of `path`.
    pub fn of_path(path: &Path) -> Option<ProfileFile> {
        path.file_name()
            .and_then(|n| n.to_str())
            .and_then(ProfileFile::of)
    }
}

/// Is `name` (a file name) anything a profiler writes? The predicate loupe-client's wait
/// loop is given, so a profile counts the same files whatever waits for it.
pub fn is_profile_file(name: &str) -> bool {
    ProfileFile::of(name).is_some()
}

/// loupe's memory snapshots: `<id>-TP-0-memory.json`, with SGLang's stage after `-memory`
/// (`-memory-DECODE.json`).
fn is_memory_json(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".json") else {
        return false;
    };
    let stem = ["-EXTEND", "-DECODE", "-prefill", "-decode"]
        .iter()
        .find_map(|s| stem.strip_suffix(s))
        .unwrap_or(stem);
    stem.ends_with("-memory")
}

/// The per-rank Kineto traces among a profile's files, in their order: merged traces (their
/// events are the per-rank files' again), memory snapshots and RPD files are left out.
pub fn rank_traces<P: AsRef<Path>>(files: &[P]) -> Vec<PathBuf> {
    files
        .iter()
        .map(|f| f.as_ref())
        .filter(|f| ProfileFile::of_path(f) == Some(ProfileFile::RankTrace))
        .map(Path::to_path_buf)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sglang_and_loupe_profile_names() {
        let kind = ProfileFile::of;
        assert_eq!(
            kind("1769070226.0713482-TP-1-DP-0-DECODE.trace.json.gz"),
            Some(ProfileFile::RankTrace)
        );
        assert_eq!(
            kind("my_exp-1769070226.07-TP-0.trace.json"),
            Some(ProfileFile::RankTrace)
        );
        assert_eq!(
            kind("merged-1769070226.0713482.trace.json.gz"),
            Some(ProfileFile::MergedTrace)
        );
        assert_eq!(
            kind("x-merged-1769070226.0713482.trace.json.gz"),
            Some(ProfileFile::MergedTrace)
        );
        assert_eq!(
            kind("1769070226.07-TP-0-memory.pickle"),
            Some(ProfileFile::MemorySnapshot)
        );
        assert_eq!(
            kind("1769070226.07-TP-0-memory-DECODE.json"),
            Some(ProfileFile::MemorySnapshot)
        );
        assert_eq!(
            kind("1769070226.07-TP-0-memory-DECODE.pickle"),
            Some(ProfileFile::MemorySnapshot)
        );
        assert_eq!(
            kind("1769070226.07-TP-0-memory.json"),
            Some(ProfileFile::MemorySnapshot)
        );
        assert_eq!(kind("1769070226.07-DP-0.rpd"), Some(ProfileFile::Rpd));
        assert_eq!(kind("w0_profile.nsys-rep"), Some(ProfileFile::NsysReport));
        assert_eq!(kind("old.qdrep"), Some(ProfileFile::NsysReport));
        for other in [
            ".1-TP-0.trace.json.gz.a1b2.tmp",
            ".1-TP-0.trace.json.gz",
            "report.qdstrm",
            "server.log",
            "a.json",
            "plan.json",
            "x.sqlite",
            "memory-DECODE.json",
        ] {
            assert_eq!(kind(other), None, "{other}");
        }
    }

    #[test]
    fn rank_traces_keep_only_per_rank_kineto_files() {
        let files = [
            "out/1-TP-0.trace.json.gz",
            "out/merged-1.trace.json.gz",
            "out/1-TP-0-memory.pickle",
            "out/1.rpd",
            "out/1-TP-1.trace.json.gz",
        ];
        assert_eq!(
            rank_traces(&files),
            [
                PathBuf::from("out/1-TP-0.trace.json.gz"),
                PathBuf::from("out/1-TP-1.trace.json.gz")
            ]
        );
    }
}
