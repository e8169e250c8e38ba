//! A scripted SGLang-shaped server for what `loupe serve` cannot be made to do on demand:
//! streams with known timing, lines of megabytes, streams that break, stall or end early.
//! Each /generate request gets the behaviour the script assigns to its arrival index.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::json;

#[derive(Debug, Clone)]
pub enum Behaviour {
    /// `tokens` chunks of `text_len` new bytes each, the first after `first_ms`, then one
    /// every `gap_ms`; then [DONE].
    Stream {
        tokens: usize,
        first_ms: u64,
        gap_ms: u64,
        text_len: usize,
    },
    /// An HTTP error with this status and body.
    Status(u16, &'static str),
    /// `tokens` chunks, then the body ends cleanly without [DONE].
    EndEarly { tokens: usize },
    /// `tokens` chunks, then the connection is torn down mid-body.
    Break { tokens: usize },
    /// `tokens` chunks, then silence for a minute.
    Stall { tokens: usize },
}

pub struct Mock {
    script: Box<dyn Fn(usize) -> Behaviour + Send + Sync>,
    arrivals: AtomicUsize,
    /// The client port of each /generate request (which connection it came on).
    pub ports: Mutex<Vec<u16>>,
    /// Each /v1/chat/completions request body, in arrival order.
    pub chats: Mutex<Vec<serde_json::Value>>,
    /// (path, body) of each Triton, Truss and embeddings request.
    pub others: Mutex<Vec<(String, serde_json::Value)>>,
}

pub struct MockServer {
    pub url: String,
    pub mock: Arc<Mock>,
}

/// Serve `script` on a free port.
pub async fn start(script: impl Fn(usize) -> Behaviour + Send + Sync + 'static) -> MockServer {
    let mock = Arc::new(Mock {
        script: Box::new(script),
        arrivals: AtomicUsize::new(0),
        ports: Mutex::new(Vec::new()),
        chats: Mutex::new(Vec::new()),
        others: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route(
            "/v1/models",
            get(|| async { axum::Json(json!({"data": [{"id": "mock"}]})) }),
        )
        .route(
            "/model_info",
            get(|| async { axum::Json(json!({"vocab_size": 100})) }),
        )
        .route(
            "/server_info",
            get(|| async { axum::Json(json!({"mock": true})) }),
        )
        .route("/generate", post(generate))
        .route("/v1/chat/completions", post(chat))
        .route("/v2/models/ensemble/generate_stream", post(trt))
        .route("/v1/models/model:predict", post(truss))
        .route("/v1/embeddings", post(embeddings))
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    MockServer { url, mock }
}

fn chunk(text: &str, tokens: usize) -> Bytes {
    let v = json!({"text": text, "meta_info": {"completion_tokens": tokens, "prompt_tokens": 5}});
    Bytes::from(format!("data: {v}\n\n"))
}

type Piece = Result<Bytes, std::io::Error>;

fn sse(events: &[serde_json::Value], done: bool) -> Response {
    let mut text: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    if done {
        text.push_str("data: [DONE]\n\n");
    }
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from(text))
        .unwrap()
}

/// Triton's stream: three `text_output` events and no [DONE].
async fn trt(
    State(m): State<Arc<Mock>>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> Response {
    m.others.lock().unwrap().push(("trt".into(), body));
    let ev: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|t| json!({"text_output": t}))
        .collect();
    sse(&ev, false)
}

/// Truss: completions-shaped events, then [DONE].
async fn truss(
    State(m): State<Arc<Mock>>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> Response {
    m.others.lock().unwrap().push(("truss".into(), body));
    let ev: Vec<_> = ["x", "y"]
        .iter()
        .map(|t| json!({"choices": [{"text": t}]}))
        .collect();
    sse(&ev, true)
}

async fn embeddings(
    State(m): State<Arc<Mock>>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> axum::Json<serde_json::Value> {
    m.others.lock().unwrap().push(("embeddings".into(), body));
    axum::Json(json!({"data": [{"embedding": [0.1, 0.2]}], "usage": {"prompt_tokens": 7}}))
}

/// A chat stream whose reply names the request (`reply-<arrival index>`), so a test can find
/// it in a later request's history; usage with the prompt's message count as its length.
async fn chat(
    State(m): State<Arc<Mock>>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> Response {
    let i = {
        let mut c = m.chats.lock().unwrap();
        c.push(body.clone());
        c.len() - 1
    };
    let n = body["messages"].as_array().map_or(0, Vec::len);
    let text = format!(
        "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        json!({"choices": [{"delta": {"content": format!("reply-{i}")}}]}),
        json!({"choices": [], "usage": {"prompt_tokens": n, "completion_tokens": 1,
               "prompt_tokens_details": {"cached_tokens": n / 2}}})
    );
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from(text))
        .unwrap()
}

async fn generate(
    State(m): State<Arc<Mock>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let i = m.arrivals.fetch_add(1, Ordering::SeqCst);
    m.ports.lock().unwrap().push(peer.port());
    let (tokens, first_ms, gap_ms, text_len, end) = match (m.script)(i) {
        Behaviour::Status(code, body) => {
            return (StatusCode::from_u16(code).unwrap(), body).into_response();
        }
        Behaviour::Stream {
            tokens,
            first_ms,
            gap_ms,
            text_len,
        } => (
            tokens,
            first_ms,
            gap_ms,
            text_len,
            Some(Ok(Bytes::from_static(b"data: [DONE]\n\n"))),
        ),
        Behaviour::EndEarly { tokens } => (tokens, 5, 5, 1, None),
        Behaviour::Break { tokens } => (
            tokens,
            5,
            5,
            1,
            Some(Err(std::io::Error::other("torn down"))),
        ),
        Behaviour::Stall { tokens } => (tokens, 5, 5, 1, Some(Ok(Bytes::new()))),
    };
    let stall = end
        .as_ref()
        .is_some_and(|e: &Piece| e.as_ref().is_ok_and(Bytes::is_empty));
    let stream = futures::stream::unfold(
        (0usize, String::new(), end),
        move |(k, mut text, end)| async move {
            if k < tokens {
                // Build the chunk before the wait, so that serialising a megabyte line does
                // not stretch the gap the script asked for.
                text.extend(std::iter::repeat_n('x', text_len));
                let c = chunk(&text, k + 1);
                tokio::time::sleep(Duration::from_millis(if k == 0 {
                    first_ms
                } else {
                    gap_ms
                }))
                .await;
                return Some((Ok::<Bytes, std::io::Error>(c), (k + 1, text, end)));
            }
            if stall {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return None;
            }
            let last = end?;
            // Let the last chunk leave before the end (a torn-down connection loses what is
            // still buffered).
            tokio::time::sleep(Duration::from_millis(gap_ms)).await;
            Some((last, (k, text, None)))
        },
    );
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}
