//! A capture a rule started: the engine's start-profile call, the wait for its files, and
//! (vLLM) the stop its automatic end does not make. It runs as a task of its own so the
//! watch keeps sampling; the watch hears of its end on a channel.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use loupe_client::watch::Fire;
use loupe_client::{Engine, LaxInt, Server, StartProfile, WaitFor, Watched};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use super::{WatchArgs, unix_now};

/// What a capture produced.
#[derive(Debug)]
pub struct CaptureResult {
    pub url: String,
    pub rule: String,
    pub profile_id: String,
    pub files: Vec<String>,
    pub complete: bool,
    pub error: Option<String>,
    pub note: Option<String>,
}

impl CaptureResult {
    pub fn json(&self) -> Value {
        json!({"time": unix_now(), "event": "capture", "url": self.url, "rule": self.rule,
            "profile_id": self.profile_id, "files": self.files, "complete": self.complete,
            "error": self.error, "note": self.note})
    }

    pub fn summary(&self) -> String {
        match &self.error {
            Some(e) => format!("capture for '{}' failed: {e}", self.rule),
            None => {
                let mut s = format!(
                    "capture for '{}' on {}: {} file(s){}",
                    self.rule,
                    self.url,
                    self.files.len(),
                    if self.complete { "" } else { " (incomplete)" }
                );
                for f in &self.files {
                    s.push_str(&format!("\n  {f}"));
                }
                if let Some(n) = &self.note {
                    s.push_str(&format!("\n  note: {n}"));
                }
                s
            }
        }
    }
}

/// A capture in flight.
pub struct Capture {
    server: Server,
    engine: Engine,
    task: tokio::task::JoinHandle<()>,
}

impl Capture {
    /// End it now: the task is dropped and the server told to stop.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.server.stop_profile_on(self.engine).await;
    }
}

pub fn start(
    server: Server,
    engine: Engine,
    args: &WatchArgs,
    fire: Fire,
    done: UnboundedSender<CaptureResult>,
) -> Capture {
    let profile_id = format!("watch-{:.3}", unix_now());
    let dir = args.profile_output_dir.as_ref().map(|d| {
        let d = PathBuf::from(d);
        let d = std::path::absolute(&d).unwrap_or(d);
        // SGLang takes a directory per request: one per capture. vLLM's is fixed at launch.
        if engine == Engine::Vllm {
            d
        } else {
            d.join(&profile_id)
        }
    });
    let body = StartProfile {
        num_steps: Some(LaxInt::Number(args.profile_num_steps)),
        output_dir: dir
            .as_ref()
            .filter(|_| engine != Engine::Vllm)
            .map(|d| d.display().to_string()),
        profile_id: Some(profile_id.clone()),
        ..Default::default()
    };
    let timeout = Duration::from_secs_f64(args.profile_wait_timeout.max(0.0));
    let s = server.clone();
    let task = tokio::spawn(async move {
        let r = run(&s, engine, &body, dir, timeout).await;
        let (files, complete, note, error) = match r {
            Ok((files, complete, note)) => (files, complete, note, None),
            Err(e) => (Vec::new(), false, None, Some(e)),
        };
        let _ = done.send(CaptureResult {
            url: s.base().to_string(),
            rule: fire.text,
            profile_id,
            files,
            complete,
            error,
            note,
        });
    });
    Capture {
        server,
        engine,
        task,
    }
}

async fn run(
    server: &Server,
    engine: Engine,
    body: &StartProfile,
    dir: Option<PathBuf>,
    timeout: Duration,
) -> Result<(Vec<String>, bool, Option<String>), String> {
    let since = SystemTime::now() - Duration::from_secs(1);
    if let Some(d) = dir.as_ref().filter(|_| engine != Engine::Vllm) {
        let _ = std::fs::create_dir_all(d);
    }
    server
        .start_profile_on(engine, body)
        .await
        .map_err(|e| e.to_string())?;
    let vllm = engine == Engine::Vllm;
    let is_output = crate::profile::outputs(engine);
    let w = WaitFor {
        dir: dir.clone(),
        since: Some(since),
        use_status: !vllm,
        dir_poll: Duration::from_millis(500),
        ..WaitFor::new(body.profile_id.as_deref(), timeout)
    };
    let mut out = server
        .wait_for_files(&w, is_output)
        .await
        .map_err(|e| e.to_string());
    let mut stopped = None;
    if let Ok(o) = &out
        && !o.complete
        && matches!(o.watched, Watched::Status(_))
    {
        // A rank that takes no steps (an idle DP group: the very imbalance that fired)
        // never completes its window; stopping writes what every rank recorded.
        server
            .stop_profile_on(engine)
            .await
            .map_err(|e| e.to_string())?;
        out = server
            .wait_for_files(&w, is_output)
            .await
            .map_err(|e| e.to_string());
        stopped = Some(format!(
            "stopped after {:.0} s (--profile-wait-timeout): some ranks had not recorded every step",
            timeout.as_secs_f64()
        ));
    }
    if vllm {
        // Its automatic stop leaves the session guard set; without a directory to watch,
        // this stop (after the wait timeout) is what ends the capture.
        server
            .stop_profile_on(engine)
            .await
            .map_err(|e| e.to_string())?;
    } else if engine.always_stops() && stopped.is_none() {
        // TensorRT-LLM, Dynamo: the bound may not have been honoured; a refusal means the
        // capture had ended by itself.
        if let Err(e) = server.stop_profile_on(engine).await {
            tracing::debug!("stop after the capture: {e}");
        }
    }
    let out = out?;
    let note = match (&out.watched, vllm) {
        (Watched::Nothing, true) => Some(
            "vLLM wrote to the torch_profiler_dir of its --profiler-config; pass it as \
             --profile-output-dir to list the files"
                .to_string(),
        ),
        (Watched::Nothing, false) => Some(
            "no /profile_status and no --profile-output-dir: the server's log says where the \
             traces went"
                .to_string(),
        ),
        _ => stopped,
    };
    Ok((out.files, out.complete, note))
}
