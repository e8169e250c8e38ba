//! Scripted TensorRT-LLM and Dynamo servers, speaking the profiling protocols as
//! ../shared/spec/engines-and-metrics.md §4 has them, so loupe's side is tested without
//! either engine.
//!
//! - `trtllm-serve` (PR #13872): `POST /start_profile` with `output_dir`, `num_steps`,
//!   `start_step`, `activities` (⊂ CPU, GPU, CUDA_PROFILER), `POST /stop_profile`; `/metrics`
//!   is JSON iteration statistics handed out once (drained), Prometheus text only at
//!   `/prometheus/metrics`. Its answers, codes and file names are unverified upstream: this
//!   server answers JSON, refuses a bad body with 400, a stop with nothing running with 500,
//!   and writes one `trace-rank-<r>.json` per rank into `output_dir`.
//! - A Dynamo worker's system port: `/engine/{*path}` (any method) with the registered
//!   `start_profile` / `stop_profile` callbacks; empty body = `{}`, bad JSON 400, unknown
//!   route 404 `{"error":"Route not found",...}`. dynamo.vllm forwards only `profile_prefix`
//!   and answers errors as HTTP 200 `{"status":"error"}`, writing vLLM's names into its own
//!   launch-time directory; dynamo.sglang passes the body to SGLang (errors: 500
//!   `{"error":"Handler error"}`), writing SGLang's names into `output_dir`. The frontend (a
//!   second listener) serves completions; each one is an engine step.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};

#[derive(Default, Debug)]
pub struct Session {
    pub active: bool,
    pub num_steps: Option<u64>,
    pub steps: u64,
    pub dir: Option<PathBuf>,
    pub prefix: Option<String>,
}

#[derive(Default, Debug)]
pub struct Log {
    /// (path, body) of every profiling call, in order.
    pub calls: Vec<(String, String)>,
    pub completions: usize,
}

impl Log {
    pub fn bodies(&self, path: &str) -> Vec<String> {
        self.calls
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Trtllm,
    /// dynamo.vllm; `configured`: launched with --profiler-config.
    DynamoVllm {
        configured: bool,
    },
    DynamoSglang,
    /// dynamo.trtllm: no profiling engine route.
    DynamoTrtllm,
}

pub struct Shared {
    pub kind: Kind,
    /// dynamo.vllm's torch_profiler_dir.
    pub launch_dir: PathBuf,
    pub world: u32,
    pub session: Mutex<Session>,
    pub log: Mutex<Log>,
    /// Iteration statistics not yet handed out by trtllm-serve's `/metrics`.
    pub stats: Mutex<Vec<Value>>,
}

pub struct Running {
    /// trtllm-serve's URL, or the Dynamo worker's system port.
    pub url: String,
    /// The URL that serves completions (trtllm-serve's own; Dynamo's frontend).
    pub frontend: String,
    pub state: Arc<Shared>,
}

impl Running {
    pub fn log<T>(&self, f: impl FnOnce(&Log) -> T) -> T {
        f(&self.state.log.lock().unwrap())
    }
    pub fn profiling(&self) -> bool {
        self.state.session.lock().unwrap().active
    }
}

async fn listen(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

pub async fn start(kind: Kind, launch_dir: &Path) -> Running {
    let state = Arc::new(Shared {
        kind,
        launch_dir: launch_dir.to_path_buf(),
        world: 2,
        session: Mutex::new(Session::default()),
        log: Mutex::new(Log::default()),
        stats: Mutex::new(Vec::new()),
    });
    let owner = if kind == Kind::Trtllm {
        "tensorrt_llm"
    } else {
        "nvidia"
    };
    let frontend = Router::new()
        .route(
            "/v1/models",
            get(move || async move {
                axum::Json(json!({"object": "list", "data": [
                    {"id": "tiny", "object": "model", "owned_by": owner}]}))
            }),
        )
        .route("/v1/completions", post(completions))
        .route("/health", get(|| async { StatusCode::OK }));
    let (url, frontend_url) = if kind == Kind::Trtllm {
        let app = frontend
            .route("/start_profile", post(trtllm_start))
            .route("/stop_profile", post(trtllm_stop))
            .route("/metrics", get(trtllm_metrics))
            .route(
                "/prometheus/metrics",
                get(|| async { "trtllm_request_success_total 0\n" }),
            )
            .with_state(state.clone());
        let url = listen(app).await;
        (url.clone(), url)
    } else {
        let worker = Router::new()
            .route(
                "/metrics",
                get(|| async {
                    "dynamo_component_requests_total{dynamo_component=\"backend\"} 3\n"
                }),
            )
            .route("/engine/{*path}", any(dynamo_engine))
            .with_state(state.clone());
        let front = listen(frontend.with_state(state.clone())).await;
        (listen(worker).await, front)
    };
    Running {
        url,
        frontend: frontend_url,
        state,
    }
}

fn err(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn log_call(s: &Shared, path: &str, body: &Bytes) {
    s.log
        .lock()
        .unwrap()
        .calls
        .push((path.to_string(), String::from_utf8_lossy(body).to_string()));
}

/// A rank's Kineto-like trace: a step span per recorded step with an op inside.
fn trace(rank: u32, steps: u64) -> String {
    let mut events = Vec::new();
    for k in 0..steps.max(1) {
        let ts = 1_000 + k * 1_000;
        events.push(
            json!({"ph": "X", "cat": "user_annotation", "name": "forward_step",
            "pid": rank, "tid": 1, "ts": ts, "dur": 800}),
        );
        events.push(
            json!({"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": rank,
            "tid": 1, "ts": ts + 100, "dur": 500}),
        );
    }
    json!({"schemaVersion": 1, "traceEvents": events}).to_string()
}

/// End the session and write its files where the engine writes them.
fn write_and_end(s: &Shared, sess: &mut Session) {
    let steps = sess.steps;
    match s.kind {
        Kind::Trtllm | Kind::DynamoSglang => {
            let dir = sess.dir.clone().expect("an output_dir");
            std::fs::create_dir_all(&dir).unwrap();
            for r in 0..s.world {
                let name = if s.kind == Kind::Trtllm {
                    format!("trace-rank-{r}.json")
                } else {
                    format!("1764000000.5-TP-{r}.trace.json")
                };
                std::fs::write(dir.join(name), trace(r, steps)).unwrap();
            }
        }
        Kind::DynamoVllm { .. } => {
            std::fs::create_dir_all(&s.launch_dir).unwrap();
            let pre = sess
                .prefix
                .as_ref()
                .map(|p| format!("{p}_"))
                .unwrap_or_default();
            for r in 0..s.world {
                let name = format!("{pre}dp0_pp0_tp{r}_dcp0_ep0_rank{r}.17.pt.trace.json");
                std::fs::write(s.launch_dir.join(name), trace(r, steps)).unwrap();
            }
        }
        Kind::DynamoTrtllm => {}
    }
    *sess = Session::default();
}

async fn trtllm_start(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    log_call(&s, "/start_profile", &body);
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return err(StatusCode::BAD_REQUEST, json!({"message": e.to_string()})),
    };
    let Some(dir) = v["output_dir"].as_str() else {
        return err(
            StatusCode::BAD_REQUEST,
            json!({"message": "output_dir is required"}),
        );
    };
    for key in ["num_steps", "start_step"] {
        if !(v[key].is_null() || v[key].is_u64()) {
            return err(
                StatusCode::BAD_REQUEST,
                json!({"message": format!("{key}: an integer")}),
            );
        }
    }
    if let Some(a) = v["activities"].as_array()
        && a.iter()
            .any(|x| !matches!(x.as_str(), Some("CPU" | "GPU" | "CUDA_PROFILER")))
    {
        return err(
            StatusCode::BAD_REQUEST,
            json!({"message": format!("activities: unknown in {}", v["activities"])}),
        );
    }
    let mut sess = s.session.lock().unwrap();
    if sess.active {
        return err(
            StatusCode::BAD_REQUEST,
            json!({"status": "error", "message": "profiling is already active"}),
        );
    }
    *sess = Session {
        active: true,
        num_steps: v["num_steps"].as_u64().filter(|n| *n > 0),
        steps: 0,
        dir: Some(PathBuf::from(dir)),
        prefix: None,
    };
    axum::Json(json!({"status": "ok", "message": "Profiling started"})).into_response()
}

async fn trtllm_stop(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    log_call(&s, "/stop_profile", &body);
    let mut sess = s.session.lock().unwrap();
    if !sess.active {
        return err(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"status": "error", "message": "profiling is not active"}),
        );
    }
    write_and_end(&s, &mut sess);
    axum::Json(json!({"status": "ok", "message": "Profiling stopped"})).into_response()
}

async fn trtllm_metrics(State(s): State<Arc<Shared>>) -> axum::Json<Value> {
    axum::Json(Value::Array(std::mem::take(&mut *s.stats.lock().unwrap())))
}

async fn dynamo_engine(
    State(s): State<Arc<Shared>>,
    UrlPath(path): UrlPath<String>,
    body: Bytes,
) -> Response {
    let route = format!("/engine/{path}");
    log_call(&s, &route, &body);
    let known =
        s.kind != Kind::DynamoTrtllm && matches!(path.as_str(), "start_profile" | "stop_profile");
    if !known {
        return err(
            StatusCode::NOT_FOUND,
            json!({"error": "Route not found", "message": format!("Route {route} not found")}),
        );
    }
    let v: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return err(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "Invalid JSON", "message": e.to_string()}),
                );
            }
        }
    };
    let fail = |message: &str| match s.kind {
        // dynamo.vllm: errors in a 200.
        Kind::DynamoVllm { .. } => {
            axum::Json(json!({"status": "error", "message": message})).into_response()
        }
        _ => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "Handler error", "message": message}),
        ),
    };
    let mut sess = s.session.lock().unwrap();
    if let Kind::DynamoVllm { configured: false } = s.kind {
        return fail("Profiling is not enabled: launch the worker with --profiler-config");
    }
    if path == "start_profile" {
        if sess.active {
            return fail("Profiling is already in progress. Call /stop_profile first.");
        }
        *sess = match s.kind {
            // Only profile_prefix is forwarded: no bound, no directory.
            Kind::DynamoVllm { .. } => Session {
                active: true,
                prefix: v["profile_prefix"].as_str().map(str::to_string),
                ..Default::default()
            },
            _ => Session {
                active: true,
                num_steps: v["num_steps"]
                    .as_u64()
                    .or_else(|| v["num_steps"].as_str().and_then(|n| n.parse().ok()))
                    .filter(|n| *n > 0),
                dir: Some(PathBuf::from(
                    v["output_dir"].as_str().unwrap_or("/nowhere"),
                )),
                ..Default::default()
            },
        };
        return axum::Json(json!({"status": "ok", "message": "Profiling started"})).into_response();
    }
    if !sess.active {
        return match s.kind {
            // vLLM: an idle stop is fine.
            Kind::DynamoVllm { .. } => {
                axum::Json(json!({"status": "ok", "message": "Profiling stopped"})).into_response()
            }
            _ => fail("Profiling is not in progress. Call /start_profile first."),
        };
    }
    write_and_end(&s, &mut sess);
    axum::Json(json!({"status": "ok", "message": "Profiling stopped"})).into_response()
}

/// One engine step per request: a bounded session ends (and writes) after `num_steps`.
fn step(s: &Shared) {
    let mut sess = s.session.lock().unwrap();
    if sess.active {
        sess.steps += 1;
        if sess.num_steps.is_some_and(|m| sess.steps >= m) {
            write_and_end(s, &mut sess);
        }
    }
}

async fn completions(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let n = req["max_tokens"].as_u64().unwrap_or(4).clamp(1, 64) as usize;
    let iter = {
        let mut log = s.log.lock().unwrap();
        log.completions += 1;
        log.completions
    };
    s.stats
        .lock()
        .unwrap()
        .push(json!({"iter": iter, "numActiveRequests": 1,
        "numQueuedRequests": 2, "kvCacheStats": {"usedNumBlocks": 25, "maxNumBlocks": 100,
        "cacheHitRate": 0.5}}));
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
            let c = json!({"id": "cmpl-1", "object": "text_completion", "model": "tiny",
                "choices": [{"index": 0, "text": "x", "finish_reason": fin}]});
            format!("data: {c}\n\n")
        } else {
            let u = json!({"id": "cmpl-1", "object": "text_completion", "model": "tiny",
                "choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": n,
                "total_tokens": 8 + n}});
            format!("data: {u}\n\ndata: [DONE]\n\n")
        };
        Some((Ok::<Bytes, std::io::Error>(Bytes::from(line)), k + 1))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}
