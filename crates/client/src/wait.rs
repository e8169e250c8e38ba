//! Waiting until a profile's files are complete: the one loop every client uses.
//!
//! SGLang's auto-stop (`num_steps`) sends no notification and `/stop_profile` may return
//! before later pipeline stages have exported, so completion is observed, not announced:
//! a loupe server says it through `/profile_status` (idle, and the profile is ours); for any
//! other server the output directory (when it is on this machine) is listed until the same
//! files with the same sizes are seen twice in a row, SGLang's own `monitor_trace_file` rule.
//! Which files count is the caller's predicate (loupe's front ends pass loupe-trace's
//! `files::is_profile_file`, the one filter for profile file names; this crate reads no
//! trace format). Temporary names must not count: a file still being written is not done.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::status::ProfileStatus;

/// The files of `dir` that `is_output` accepts (by file name), modified at or after `since`,
/// sorted, with their sizes. A directory that does not exist (yet) lists nothing.
pub fn list_outputs(
    dir: &Path,
    since: Option<SystemTime>,
    is_output: &(dyn Fn(&str) -> bool + Sync),
) -> Vec<(PathBuf, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(PathBuf, u64)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(is_output))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let recent = since.is_none_or(|t| meta.modified().is_ok_and(|m| m >= t));
            (meta.is_file() && recent).then(|| (e.path(), meta.len()))
        })
        .collect();
    files.sort();
    files
}

/// One look at a profile's progress.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// The server's `/profile_status`.
    Status(ProfileStatus),
    /// The output directory: each file with its size.
    Listing(Vec<(PathBuf, u64)>),
}

impl Observation {
    /// The files this observation names.
    pub fn files(&self) -> Vec<String> {
        match self {
            Observation::Status(st) => st.files.clone(),
            Observation::Listing(l) => l.iter().map(|(p, _)| p.display().to_string()).collect(),
        }
    }
}

/// Decides, one observation at a time, when a profile's files are complete.
#[derive(Debug, Clone, Default)]
pub struct CompletionRule {
    profile_id: Option<String>,
    previous: Option<Vec<(PathBuf, u64)>>,
}

impl CompletionRule {
    /// For `profile_id`, or for whatever profile the server ran last when `None`.
    pub fn new(profile_id: Option<&str>) -> Self {
        CompletionRule {
            profile_id: profile_id.map(str::to_string),
            previous: None,
        }
    }

    /// A status is complete when idle and ours; a listing when it is not empty and equal
    /// (names and sizes) to the listing before it.
    pub fn complete(&mut self, obs: &Observation) -> bool {
        match obs {
            Observation::Status(st) => st.finished(self.profile_id.as_deref()),
            Observation::Listing(now) => {
                let stable = !now.is_empty() && self.previous.as_ref() == Some(now);
                self.previous = Some(now.clone());
                stable
            }
        }
    }
}

#[cfg(feature = "http")]
pub use http::{FilesOutcome, WaitFor, Watched};

#[cfg(feature = "http")]
mod http {
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime};

    use tokio::time::Instant;

    use super::{CompletionRule, Observation, list_outputs};
    use crate::error::ClientError;
    use crate::server::Server;
    use crate::status::ProfileStatus;

    /// What to wait for.
    #[derive(Debug, Clone)]
    pub struct WaitFor {
        /// The profile; `None`: whatever profile the server ran last.
        pub profile_id: Option<String>,
        /// The output directory, watched when the server has no `/profile_status` (or when
        /// `use_status` is off). Only useful when it is on this machine.
        pub dir: Option<PathBuf>,
        /// In the directory, only files modified since then.
        pub since: Option<SystemTime>,
        /// Ask `/profile_status` first (off: watch the directory only).
        pub use_status: bool,
        /// Give up after this long (then the last observation is returned, incomplete).
        pub timeout: Duration,
        pub status_poll: Duration,
        /// SGLang's `monitor_trace_file` polls once a second.
        pub dir_poll: Duration,
    }

    impl WaitFor {
        pub fn new(profile_id: Option<&str>, timeout: Duration) -> Self {
            WaitFor {
                profile_id: profile_id.map(str::to_string),
                dir: None,
                since: None,
                use_status: true,
                timeout,
                status_poll: Duration::from_millis(200),
                dir_poll: Duration::from_secs(1),
            }
        }
    }

    /// How completion was observed.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Watched {
        /// Through `/profile_status`; the last status seen.
        Status(ProfileStatus),
        /// By listing the output directory.
        Directory(PathBuf),
        /// Neither: the server has no status route and no directory was given.
        Nothing,
    }

    /// The files, and whether they are complete.
    #[derive(Debug, Clone, PartialEq)]
    pub struct FilesOutcome {
        pub watched: Watched,
        pub files: Vec<String>,
        /// The status went idle (ours) or the listing stopped changing before the timeout.
        pub complete: bool,
    }

    impl Server {
        /// Wait until the profile's files are complete, or `w.timeout` passes. Errors only
        /// when `/profile_status` exists and fails; a server without the route (404/405) has
        /// its directory watched instead.
        pub async fn wait_for_files(
            &self,
            w: &WaitFor,
            is_output: &(dyn Fn(&str) -> bool + Sync),
        ) -> Result<FilesOutcome, ClientError> {
            let deadline = Instant::now() + w.timeout;
            let mut rule = CompletionRule::new(w.profile_id.as_deref());
            let mut use_status = w.use_status;
            loop {
                let (obs, poll) = if use_status {
                    match self.profile_status().await? {
                        Some(st) => (Observation::Status(st), w.status_poll),
                        None => {
                            use_status = false;
                            continue;
                        }
                    }
                } else {
                    let Some(dir) = &w.dir else {
                        return Ok(FilesOutcome {
                            watched: Watched::Nothing,
                            files: Vec::new(),
                            complete: false,
                        });
                    };
                    (
                        Observation::Listing(list_outputs(dir, w.since, is_output)),
                        w.dir_poll,
                    )
                };
                let complete = rule.complete(&obs);
                if complete || Instant::now() >= deadline {
                    let files = obs.files();
                    let watched = match obs {
                        Observation::Status(st) => Watched::Status(st),
                        Observation::Listing(_) => {
                            Watched::Directory(w.dir.clone().expect("listed a directory"))
                        }
                    };
                    return Ok(FilesOutcome {
                        watched,
                        files,
                        complete,
                    });
                }
                tokio::time::sleep(poll).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::ProfileState;

    fn listing(files: &[(&str, u64)]) -> Observation {
        Observation::Listing(files.iter().map(|(n, s)| (PathBuf::from(n), *s)).collect())
    }

    #[test]
    fn a_listing_is_complete_when_seen_twice_unchanged() {
        let mut r = CompletionRule::new(None);
        assert!(!r.complete(&listing(&[])));
        assert!(
            !r.complete(&listing(&[])),
            "nothing written is never complete"
        );
        assert!(!r.complete(&listing(&[("a.trace.json.gz", 10)])));
        assert!(
            !r.complete(&listing(&[("a.trace.json.gz", 20)])),
            "still growing"
        );
        assert!(!r.complete(&listing(&[("a.trace.json.gz", 20), ("b.trace.json.gz", 5)])));
        assert!(r.complete(&listing(&[("a.trace.json.gz", 20), ("b.trace.json.gz", 5)])));
    }

    #[test]
    fn a_status_is_complete_when_idle_and_ours() {
        let mut r = CompletionRule::new(Some("p2"));
        let mut st = ProfileStatus::idle();
        st.profile_id = Some("p1".into());
        assert!(
            !r.complete(&Observation::Status(st.clone())),
            "the previous profile"
        );
        st.profile_id = Some("p2".into());
        st.state = ProfileState::Exporting;
        assert!(!r.complete(&Observation::Status(st.clone())));
        st.state = ProfileState::Idle;
        st.files = vec!["/t/p2-TP-0.trace.json.gz".into()];
        let obs = Observation::Status(st);
        assert!(r.complete(&obs));
        assert_eq!(obs.files(), ["/t/p2-TP-0.trace.json.gz"]);
    }

    /// A stand-in for the callers' name filter (loupe-trace's `is_profile_file`).
    fn is_profiler_output(name: &str) -> bool {
        !name.starts_with('.') && (name.ends_with(".trace.json.gz") || name.ends_with(".pickle"))
    }

    #[test]
    fn listing_filters_by_name_and_time_and_sorts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.trace.json.gz"), b"xyz").unwrap();
        std::fs::write(dir.path().join("a-memory.pickle"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub.rpd")).unwrap();
        let l = list_outputs(dir.path(), None, &is_profiler_output);
        let names: Vec<_> = l
            .iter()
            .map(|(p, s)| (p.file_name().unwrap().to_str().unwrap(), *s))
            .collect();
        assert_eq!(names, [("a-memory.pickle", 1), ("b.trace.json.gz", 3)]);
        let future = SystemTime::now() + std::time::Duration::from_secs(3600);
        assert!(list_outputs(dir.path(), Some(future), &is_profiler_output).is_empty());
        assert!(list_outputs(&dir.path().join("missing"), None, &|_| true).is_empty());
    }

    #[cfg(feature = "http")]
    mod directory_wait {
        use super::super::*;
        use super::is_profiler_output;
        use crate::server::Server;
        use std::time::Duration;

        fn offline_server() -> Server {
            // Never contacted: the directory is watched without asking for a status.
            Server::with_client(
                reqwest::Client::new(),
                "http://127.0.0.1:9",
                Default::default(),
            )
        }

        fn dir_only(dir: &Path, timeout: Duration) -> WaitFor {
            WaitFor {
                dir: Some(dir.to_path_buf()),
                use_status: false,
                ..WaitFor::new(None, timeout)
            }
        }

        // Paused time: sleeps advance a virtual clock, so the test takes no real time and
        // asserts no timing.
        #[tokio::test(start_paused = true)]
        async fn stable_files_complete_and_an_empty_directory_times_out() {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("1-TP-0.trace.json.gz"), b"x").unwrap();
            std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
            let s = offline_server();
            let out = s
                .wait_for_files(
                    &dir_only(dir.path(), Duration::from_secs(5)),
                    &is_profiler_output,
                )
                .await
                .unwrap();
            assert!(out.complete);
            assert_eq!(out.watched, Watched::Directory(dir.path().to_path_buf()));
            assert_eq!(
                out.files,
                [dir.path()
                    .join("1-TP-0.trace.json.gz")
                    .display()
                    .to_string()]
            );

            let empty = tempfile::tempdir().unwrap();
            let out = s
                .wait_for_files(
                    &dir_only(empty.path(), Duration::from_secs(30)),
                    &is_profiler_output,
                )
                .await
                .unwrap();
            assert!(!out.complete && out.files.is_empty());
        }

        #[tokio::test]
        async fn without_status_or_directory_nothing_is_watched() {
            let w = WaitFor {
                use_status: false,
                ..WaitFor::new(None, Duration::from_secs(1))
            };
            let out = offline_server()
                .wait_for_files(&w, &is_profiler_output)
                .await
                .unwrap();
            assert_eq!(out.watched, Watched::Nothing);
            assert!(!out.complete);
        }
    }
}
