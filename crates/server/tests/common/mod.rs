//! What the server's tests share: a server on a free port and a plain client (real-socket
//! tests), or the router over a started state, called with `oneshot` (handler tests).

#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use loupe_server::{AppState, RunningServer, ServerConfig};
use serde_json::Value;
use tower::ServiceExt;

fn config(threads: usize, f: impl FnOnce(&mut ServerConfig)) -> ServerConfig {
    let mut config = ServerConfig {
        port: 0,
        threads: Some(threads),
        // The tests read /metrics; one test checks the 404 without it.
        enable_metrics: true,
        ..Default::default()
    };
    f(&mut config);
    config
}

/// `loupe serve` in-process on 127.0.0.1:0 with `threads` compute threads.
pub async fn start(threads: usize, f: impl FnOnce(&mut ServerConfig)) -> RunningServer {
    loupe_server::spawn(config(threads, f))
        .await
        .expect("server starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub async fn post_text(s: &RunningServer, path: &str, body: Value) -> (u16, String) {
    let r = client()
        .post(format!("{}{path}", s.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

pub async fn get(s: &RunningServer, path: &str) -> (u16, String) {
    let r = client()
        .get(format!("{}{path}", s.url()))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The route table over a started engine, without a socket.
#[derive(Clone)]
pub struct App {
    pub router: Router,
    pub state: Arc<AppState>,
}

pub async fn app(f: impl FnOnce(&mut ServerConfig)) -> App {
    let state = loupe_server::start_state(config(1, f), "loupe serve (test)".into())
        .await
        .expect("server state starts");
    App {
        router: loupe_server::router(state.clone()),
        state,
    }
}

/// A request as a client would send it: `body` is sent as is (JSON or not), `key` as a
/// bearer token.
pub fn request(method: &str, path: &str, key: Option<&str>, body: Option<&str>) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        r = r.header("authorization", format!("Bearer {k}"));
    }
    match body {
        Some(b) => r
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => r.body(Body::empty()),
    }
    .unwrap()
}

impl App {
    /// The response's status, content type and whole body.
    pub async fn send(&self, req: Request<Body>) -> (u16, String, String) {
        let r = self.router.clone().oneshot(req).await.unwrap();
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .map_or(String::new(), |v| v.to_str().unwrap().to_string());
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, ctype, String::from_utf8(body.to_vec()).unwrap())
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = self.send(request("GET", path, None, None)).await;
        (status, body)
    }

    /// POST JSON; the body parsed as JSON when it is JSON, else as a string.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (status, _, text) = self
            .send(request("POST", path, None, Some(&body.to_string())))
            .await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The sum of a metric's samples in `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        metric_sum(&self.get("/metrics").await.1, name)
    }
}

pub fn metric_sum(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

pub fn greedy(n: usize) -> Value {
    serde_json::json!({"max_new_tokens": n, "temperature": 0, "ignore_eos": true})
}
