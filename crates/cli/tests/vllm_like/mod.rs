//! A scripted vLLM 0.32-like server: the profiling protocol as vLLM speaks it
//! (`entrypoints/serve/profile`, per ../shared/spec/engines-and-metrics.md §1), so loupe's
//! side is tested without minutes of vLLM start-up. POST-only routes, the strict body (JSON
//! integers only, unknown keys ignored, prefix rules), 409 while a session is active and a
//! guard that only `/stop_profile` clears (not the `max_iterations` auto-stop), 200 on an idle
//! stop, 404 `{"detail":"Not Found"}` when launched without `--profiler-config`, one trace
//! per rank plus the API server's and rank 0's `profiler_out.txt`, written before the stop's
//! 200. Each `/v1/completions` request is one engine step.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// How the scripted server was "launched".
#[derive(Clone, Debug)]
pub struct Launch {
    /// `--profiler-config`'s `torch_profiler_dir`; `None`: launched without it.
    pub profiler_dir: Option<PathBuf>,
    /// The directory is `<the one run directory under this root>/profiles/agg`: what a
    /// `loupe run` command job's `{profile_dir}` placeholder fills in, known only once the
    /// run has made its directory.
    pub under_run_root: bool,
    /// Workers (TP ranks), one trace each.
    pub world: u32,
}

#[derive(Default, Debug)]
pub struct Session {
    /// The 409 guard.
    pub active: bool,
    /// Workers are recording.
    pub recording: bool,
    pub max_iterations: Option<u64>,
    pub steps: u64,
    pub prefix: Option<String>,
    pub started_ns: u128,
}

#[derive(Default, Debug)]
pub struct Log {
    /// Every /start_profile body as received.
    pub starts: Vec<String>,
    pub stops: usize,
    /// The status each /start_profile got.
    pub start_codes: Vec<u16>,
    pub sessions_written: usize,
    pub completions: usize,
}

pub struct VllmLike {
    pub launch: Launch,
    pub session: Mutex<Session>,
    pub log: Mutex<Log>,
}

pub struct Running {
    pub url: String,
    pub state: Arc<VllmLike>,
}

impl Running {
    pub fn log<T>(&self, f: impl FnOnce(&Log) -> T) -> T {
        f(&self.state.log.lock().unwrap())
    }
    pub fn profiling(&self) -> bool {
        self.state.session.lock().unwrap().recording
    }
    pub fn guard_set(&self) -> bool {
        self.state.session.lock().unwrap().active
    }
}

pub async fn start(launch: Launch) -> Running {
    let state = Arc::new(VllmLike {
        launch: launch.clone(),
        session: Mutex::new(Session::default()),
        log: Mutex::new(Log::default()),
    });
    let mut app = Router::new()
        .route(
            "/v1/models",
            get(|| async {
                axum::Json(json!({"object": "list", "data": [
                    {"id": "qwen2-test", "object": "model", "owned_by": "vllm"}]}))
            }),
        )
        .route(
            "/version",
            get(|| async { axum::Json(json!({"version": "0.32.0"})) }),
        )
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { StatusCode::OK }))
        .route("/reset_prefix_cache", post(|| async { StatusCode::OK }))
        .route("/v1/completions", post(completions));
    if launch.profiler_dir.is_some() {
        app = app
            .route("/start_profile", post(start_profile))
            .route("/stop_profile", post(stop_profile));
    }
    let app = app
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"detail": "Not Found"})),
            )
        })
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Running { url, state }
}

fn error(status: StatusCode, kind: &str, message: &str, param: Option<&str>) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": status.as_u16()}});
    (status, axum::Json(body)).into_response()
}

fn valid_prefix(p: &str) -> bool {
    let b = p.as_bytes();
    (1..=128).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
}

async fn start_profile(State(s): State<Arc<VllmLike>>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).to_string();
    let r = start_inner(&s, &text);
    let mut log = s.log.lock().unwrap();
    log.starts.push(text);
    log.start_codes.push(r.status().as_u16());
    r
}

fn start_inner(s: &VllmLike, text: &str) -> Response {
    let v: Value = if text.trim().is_empty() {
        json!({})
    } else {
        match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    "JSON decode error",
                    Some("body"),
                );
            }
        }
    };
    let Some(obj) = v.as_object() else {
        return error(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "Input should be an object",
            Some("body"),
        );
    };
    let mut max = None;
    for key in ["delay_iterations", "max_iterations"] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(n) if n.is_i64() => {
                let n = n.as_i64().unwrap();
                if n < 0 {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "BadRequestError",
                        &format!("{key} must be >= 0"),
                        None,
                    );
                }
                if key == "max_iterations" && n > 0 {
                    max = Some(n as u64);
                }
            }
            Some(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    "Input should be a valid integer",
                    Some(&format!("body.{key}")),
                );
            }
        }
    }
    let prefix = match obj.get("profile_prefix") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if valid_prefix(p) => Some(p.clone()),
        Some(Value::String(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequestError",
                "invalid profile_prefix",
                None,
            );
        }
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "Input should be a valid string",
                Some("body.profile_prefix"),
            );
        }
    };
    let mut sess = s.session.lock().unwrap();
    if sess.active {
        return error(
            StatusCode::CONFLICT,
            "Conflict",
            "A profiling session is already active. Call /stop_profile before starting another session.",
            None,
        );
    }
    *sess = Session {
        active: true,
        recording: true,
        max_iterations: max,
        steps: 0,
        prefix,
        started_ns: now_ns(),
    };
    StatusCode::OK.into_response()
}

async fn stop_profile(State(s): State<Arc<VllmLike>>) -> Response {
    s.log.lock().unwrap().stops += 1;
    let mut sess = s.session.lock().unwrap();
    // The API server's trace ignores the step bounds: it is written at the stop.
    if sess.active {
        write_session(s.as_ref(), &sess, sess.recording, true);
    }
    *sess = Session::default();
    StatusCode::OK.into_response()
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// One worker's trace: a step span per recorded step, with a kernel-like op inside.
fn trace(rank: u32, steps: u64, version: bool) -> String {
    let mut events = Vec::new();
    for k in 0..steps.max(1) {
        let ts = 1_000 + k * 1_000;
        events.push(json!({"ph": "X", "cat": "user_annotation", "name": format!("execute_context_0(0)_generation_1(1)"),
            "pid": rank, "tid": 1, "ts": ts, "dur": 800 + rank as u64 * 10}));
        events.push(
            json!({"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": rank, "tid": 1,
            "ts": ts + 100, "dur": 500}),
        );
    }
    let mut t = json!({"schemaVersion": 1, "traceEvents": events});
    if version {
        t["vllm_version"] = json!("0.32.0");
    }
    t.to_string()
}

fn write_session(s: &VllmLike, sess: &Session, workers: bool, frontend: bool) {
    let root = s.launch.profiler_dir.as_deref().expect("configured");
    let dir = &if s.launch.under_run_root {
        let run = std::fs::read_dir(root)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        run.join("profiles").join("agg")
    } else {
        root.to_path_buf()
    };
    std::fs::create_dir_all(dir).unwrap();
    let pre = sess
        .prefix
        .as_ref()
        .map(|p| format!("{p}_"))
        .unwrap_or_default();
    let ns = now_ns();
    for r in (0..s.launch.world).filter(|_| workers) {
        let name = format!("{pre}dp0_pp0_tp{r}_dcp0_ep0_rank{r}");
        put(
            dir,
            &format!("{name}.{ns}.pt.trace.json"),
            &trace(r, sess.steps, true),
        );
        if r == 0 {
            put(
                dir,
                &format!("{name}.profiler_out.txt"),
                "Name  Self CPU %\naten::mm  50.00%\n",
            );
        }
    }
    if frontend {
        put(
            dir,
            &format!("{pre}testhost_4242.async_llm.{ns}.pt.trace.json"),
            &trace(99, 1, false),
        );
    }
    if workers {
        s.log.lock().unwrap().sessions_written += 1;
    }
}

fn put(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// One engine step per request: a bounded session stops recording (and writes) after its
/// `max_iterations`, but its guard stays set.
fn step(s: &VllmLike) {
    let mut sess = s.session.lock().unwrap();
    if !sess.recording {
        return;
    }
    sess.steps += 1;
    if sess.max_iterations.is_some_and(|m| sess.steps >= m) {
        write_session(s, &sess, true, false);
        sess.recording = false;
    }
}

async fn completions(State(s): State<Arc<VllmLike>>, body: Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let n = req["max_tokens"].as_u64().unwrap_or(4).clamp(1, 64) as usize;
    s.log.lock().unwrap().completions += 1;
    step(&s);
    let stream = futures::stream::unfold(0usize, move |k| async move {
        if k > n {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        let line = if k < n {
            let fin = if k + 1 == n {
                json!("length")
            } else {
                Value::Null
            };
            let c = json!({"id": "cmpl-1", "object": "text_completion", "model": "qwen2-test",
                "choices": [{"index": 0, "text": "x", "finish_reason": fin}]});
            format!("data: {c}\n\n")
        } else {
            let u = json!({"id": "cmpl-1", "object": "text_completion", "model": "qwen2-test", "choices": [],
                "usage": {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n}});
            format!("data: {u}\n\ndata: [DONE]\n\n")
        };
        Some((Ok::<Bytes, std::io::Error>(Bytes::from(line)), k + 1))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn metrics(State(s): State<Arc<VllmLike>>) -> String {
    let done = s.log.lock().unwrap().completions;
    format!(
        "# HELP vllm:num_requests_running Number of requests in model execution batches.\n\
         # TYPE vllm:num_requests_running gauge\n\
         vllm:num_requests_running{{engine=\"0\",model_name=\"qwen2-test\"}} 3.0\n\
         vllm:num_requests_running{{engine=\"1\",model_name=\"qwen2-test\"}} 1.0\n\
         vllm:num_requests_waiting{{engine=\"0\",model_name=\"qwen2-test\"}} 2.0\n\
         vllm:num_requests_waiting{{engine=\"1\",model_name=\"qwen2-test\"}} 0.0\n\
         vllm:kv_cache_usage_perc{{engine=\"0\",model_name=\"qwen2-test\"}} 0.5\n\
         vllm:kv_cache_usage_perc{{engine=\"1\",model_name=\"qwen2-test\"}} 0.25\n\
         vllm:generation_tokens_total{{engine=\"0\",model_name=\"qwen2-test\"}} {}\n\
         vllm:generation_tokens_created{{engine=\"0\",model_name=\"qwen2-test\"}} 1.7e9\n",
        done * 4
    )
}
