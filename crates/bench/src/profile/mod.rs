//! Server-side profiling from the client: SGLang's `/start_profile` and `/stop_profile`, and
//! loupe's `/profile_status` where the server has it (an SGLang server does not: then the
//! output directory is watched instead, when it is on this machine). Used by
//! `loupe bench --profile` (`bench.rs`), `loupe profile start|stop|status` (`cli.rs`), and
//! `loupe profile nsys` wraps Nsight Systems' interactive sessions (`nsys.rs`).

pub mod bench;
pub mod cli;
pub mod nsys;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use crate::client::describe;
use crate::error::{BenchError, Result};

/// SGLang's stop writes every trace before answering: tens of seconds to minutes.
const STOP_TIMEOUT: Duration = Duration::from_secs(600);

/// `GET /profile_status` (loupe servers).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ProfileStatus {
    /// idle, armed, active or exporting.
    pub state: String,
    #[serde(default)]
    pub profile_id: Option<String>,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub steps_captured: u64,
    #[serde(default)]
    pub output_dir: Option<String>,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub errors: Vec<String>,
}

/// One server's profiling endpoints.
#[derive(Clone)]
pub struct ProfileEndpoint {
    pub client: reqwest::Client,
    pub base: String,
    pub headers: HeaderMap,
}

impl ProfileEndpoint {
    async fn post(&self, path: &str, body: &Value, timeout: Duration) -> Result<String> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .client
            .post(&url)
            .headers(self.headers.clone())
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| BenchError::http(&url, describe(&e)))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            // loupe answers JSON with the reason; SGLang a bare 500 (reason in its log).
            let reason = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| text.trim().to_string());
            return Err(BenchError::http(url, format!("HTTP {status}: {reason}")));
        }
        Ok(text)
    }

    /// POST /start_profile with `body` (SGLang's ProfileReq fields).
    pub async fn start(&self, body: &Value) -> Result<String> {
        self.post("/start_profile", body, Duration::from_secs(120))
            .await
    }

    /// POST /stop_profile; returns once the server has written its traces.
    pub async fn stop(&self) -> Result<String> {
        self.post(
            "/stop_profile",
            &Value::Object(Default::default()),
            STOP_TIMEOUT,
        )
        .await
    }

    /// GET /profile_status; `None` when the server has no such route (SGLang).
    pub async fn status(&self) -> Result<Option<ProfileStatus>> {
        let url = format!("{}/profile_status", self.base);
        let resp = self
            .client
            .get(&url)
            .headers(self.headers.clone())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| BenchError::http(&url, describe(&e)))?;
        if matches!(resp.status().as_u16(), 404 | 405) {
            return Ok(None);
        }
        let status = resp.status();
        if !status.is_success() {
            return Err(BenchError::http(url, format!("HTTP {status}")));
        }
        resp.json()
            .await
            .map(Some)
            .map_err(|e| BenchError::http(url, format!("unexpected body: {e}")))
    }

    /// Poll /profile_status until `profile_id` (any profile when None) is finished, or
    /// `timeout` passes (then the last status seen). `Ok(None)`: no status route.
    pub async fn wait_finished(
        &self,
        profile_id: Option<&str>,
        timeout: Duration,
    ) -> Result<Option<(ProfileStatus, bool)>> {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(st) = self.status().await? else {
                return Ok(None);
            };
            let ours = profile_id.is_none_or(|id| st.profile_id.as_deref() == Some(id));
            if st.state == "idle" && ours {
                return Ok(Some((st, true)));
            }
            if Instant::now() >= deadline {
                return Ok(Some((st, false)));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Is `name` a file a profiler writes (Kineto trace, memory snapshot, RPD database)?
fn is_trace_file(name: &str) -> bool {
    name.ends_with(".trace.json.gz")
        || name.ends_with(".trace.json")
        || name.ends_with(".pickle")
        || name.ends_with("-memory.json")
        || name.ends_with(".rpd")
}

/// Profiler output in `dir` modified since `since`, sorted.
pub fn list_trace_files(dir: &Path, since: Option<SystemTime>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(is_trace_file))
        .filter(|e| {
            since.is_none_or(|t| {
                e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|m| m >= t)
            })
        })
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// For servers without a status route: wait until `dir` holds profiler output whose sizes
/// stopped changing (SGLang's own `monitor_trace_file` rule), or `timeout`.
pub async fn wait_files_stable(
    dir: &Path,
    since: Option<SystemTime>,
    timeout: Duration,
) -> (Vec<PathBuf>, bool) {
    let deadline = Instant::now() + timeout;
    let sizes = |files: &[PathBuf]| -> Vec<u64> {
        files
            .iter()
            .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
            .collect()
    };
    let mut last: Option<(Vec<PathBuf>, Vec<u64>)> = None;
    loop {
        let files = list_trace_files(dir, since);
        let now = sizes(&files);
        if !files.is_empty()
            && let Some((pf, ps)) = &last
            && *pf == files
            && *ps == now
        {
            return (files, true);
        }
        if Instant::now() >= deadline {
            return (files, false);
        }
        last = Some((files, now));
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}

/// `loupe trace summary` of the run's Kineto traces (with `loupe trace ranks` when there are
/// several), for the report. A merged trace is left out (its events are the per-rank files'
/// again), as are memory snapshots and RPD files. A trace that cannot be read is said in the
/// summary's place: the benchmark's own results stand.
pub fn summarize_traces(files: &[PathBuf]) -> Option<String> {
    let traces = loupe_trace::files::rank_traces(files);
    if traces.is_empty() {
        return None;
    }
    Some(match loupe_trace::report::summary_text(&traces, 10) {
        Ok(text) => text,
        Err(e) => format!("(no trace summary: {e})\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stable_files_are_found_and_others_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1-TP-0.trace.json.gz"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        std::fs::write(dir.path().join("1-TP-0-memory.pickle"), b"x").unwrap();
        let (files, complete) = wait_files_stable(dir.path(), None, Duration::from_secs(5)).await;
        assert!(complete);
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["1-TP-0-memory.pickle", "1-TP-0.trace.json.gz"]);
        let empty = tempfile::tempdir().unwrap();
        let (files, complete) =
            wait_files_stable(empty.path(), None, Duration::from_millis(10)).await;
        assert!(files.is_empty() && !complete);
    }
}
