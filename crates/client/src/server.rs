//! One running server's control API over HTTP: readiness, info, flush, metrics, profiling.

use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::engine::Engine;
use crate::error::{ClientError, ErrorKind, SetupError, describe};
use crate::metrics::{self, Sample};
use crate::start::StartProfile;
use crate::status::ProfileStatus;

/// SGLang's stop writes every trace before answering: tens of seconds to minutes (genai-bench
/// waits 600 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(600);
/// Start may wait for a running batch (control messages are handled between batches).
const START_TIMEOUT: Duration = Duration::from_secs(120);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const READY_POLL: Duration = Duration::from_millis(200);

/// The HTTP client for control requests: a small keep-alive pool, no proxy, no Nagle delay.
pub fn http_client() -> Result<reqwest::Client, SetupError> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(16)
        .tcp_nodelay(true)
        .no_proxy()
        .build()
        .map_err(|e| SetupError::Client(e.to_string()))
}

/// bench_serving's auth (`api_key` as Bearer, else `$API_KEY` verbatim) plus extra headers.
pub fn headers(api_key: Option<&str>, extra: &[(String, String)]) -> Result<HeaderMap, SetupError> {
    let mut h = HeaderMap::new();
    let auth = match api_key {
        Some(k) => Some(format!("Bearer {k}")),
        None => std::env::var("API_KEY").ok().filter(|k| !k.is_empty()),
    };
    if let Some(a) = auth {
        let v = HeaderValue::from_str(&a).map_err(|_| SetupError::ApiKey)?;
        h.insert(AUTHORIZATION, v);
    }
    for (k, v) in extra {
        let name =
            HeaderName::from_bytes(k.as_bytes()).map_err(|_| SetupError::HeaderName(k.clone()))?;
        let value = HeaderValue::from_str(v).map_err(|_| SetupError::HeaderValue(k.clone()))?;
        h.insert(name, value);
    }
    Ok(h)
}

/// A running server at `base` (e.g. `http://127.0.0.1:30000`). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Server {
    http: reqwest::Client,
    base: String,
    headers: HeaderMap,
}

/// The reason in an error body: loupe's (and OpenAI's) JSON `message`, else the text.
fn reason_of(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.trim().to_string())
}

impl Server {
    /// A server with its own control client.
    pub fn new(base: &str, headers: HeaderMap) -> Result<Self, SetupError> {
        Ok(Server::with_client(http_client()?, base, headers))
    }

    /// A server reached through an existing client (its pool is shared).
    pub fn with_client(http: reqwest::Client, base: &str, headers: HeaderMap) -> Self {
        Server {
            http,
            base: base.trim_end_matches('/').to_string(),
            headers,
        }
    }

    /// Another server (e.g. a disaggregated worker) through the same client and headers.
    pub fn at(&self, base: &str) -> Self {
        Server::with_client(self.http.clone(), base, self.headers.clone())
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `path` appended to the base URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, ClientError> {
        req.headers(self.headers.clone())
            .send()
            .await
            .map_err(|e| ClientError::new(url, ErrorKind::Transport(describe(&e))))
    }

    /// A failed status as an error carrying the server's reason.
    async fn check(resp: reqwest::Response, url: &str) -> Result<reqwest::Response, ClientError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        Err(ClientError::new(
            url,
            ErrorKind::Status {
                status,
                reason: reason_of(&text),
            },
        ))
    }

    async fn json_body(resp: reqwest::Response, url: &str) -> Result<Value, ClientError> {
        resp.json()
            .await
            .map_err(|e| ClientError::new(url, ErrorKind::NotJson(describe(&e))))
    }

    /// GET `path` as JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        let url = self.url(path);
        let resp = self
            .send(self.http.get(&url).timeout(REQUEST_TIMEOUT), &url)
            .await?;
        Self::json_body(Self::check(resp, &url).await?, &url).await
    }

    /// GET `path`, falling back to `legacy` when the server answers 404 (SGLang 0.5.5 has
    /// only the `get_` forms of its info routes).
    async fn get_json_or_legacy(&self, path: &str, legacy: &str) -> Result<Value, ClientError> {
        match self.get_json(path).await {
            Err(e) if e.status() == Some(reqwest::StatusCode::NOT_FOUND) => {
                self.get_json(legacy).await
            }
            other => other,
        }
    }

    /// `/v1/models`: the served models (bench_serving's discovery).
    pub async fn models(&self) -> Result<Value, ClientError> {
        self.get_json("/v1/models").await
    }

    /// `/model_info` (or `/get_model_info`).
    pub async fn model_info(&self) -> Result<Value, ClientError> {
        self.get_json_or_legacy("/model_info", "/get_model_info")
            .await
    }

    /// `/server_info` (or `/get_server_info`).
    pub async fn server_info(&self) -> Result<Value, ClientError> {
        self.get_json_or_legacy("/server_info", "/get_server_info")
            .await
    }

    /// Poll `/v1/models` until it answers (bench_serving's readiness check) and return it. A
    /// refused key ends the wait at once.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<Value, ClientError> {
        let deadline = Instant::now() + timeout;
        let url = self.url("/v1/models");
        loop {
            let last = match self
                .send(self.http.get(&url).timeout(REQUEST_TIMEOUT), &url)
                .await
            {
                Ok(resp) if resp.status().is_success() => {
                    return Self::json_body(resp, &url).await;
                }
                Ok(resp) if matches!(resp.status().as_u16(), 401 | 403) => {
                    return Err(ClientError::new(
                        url,
                        ErrorKind::Unauthorized(resp.status()),
                    ));
                }
                Ok(resp) => format!("HTTP {}", resp.status()),
                Err(e) => e.kind.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(ClientError::new(
                    url,
                    ErrorKind::NotReady {
                        timeout_s: timeout.as_secs_f64(),
                        last,
                    },
                ));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Flush the prefix cache: `/flush_cache?timeout=` (SGLang; it refuses with 400 while
    /// requests run, `timeout_s` lets it wait for them instead) or `/reset_prefix_cache`
    /// (vLLM). TensorRT-LLM and Dynamo workers have no such route.
    pub async fn flush_cache(&self, engine: Engine, timeout_s: f64) -> Result<(), ClientError> {
        let url = match engine {
            Engine::Sglang => self.url(&format!("/flush_cache?timeout={timeout_s}")),
            Engine::Vllm => self.url("/reset_prefix_cache"),
            Engine::TensorrtLlm | Engine::Dynamo => {
                return Err(ClientError::new(
                    self.url(""),
                    ErrorKind::Unsupported(format!("{engine} has no prefix-cache flush route")),
                ));
            }
        };
        let wait = Duration::from_secs_f64(timeout_s.max(0.0)) + REQUEST_TIMEOUT;
        let resp = self.send(self.http.post(&url).timeout(wait), &url).await?;
        Self::check(resp, &url).await.map(drop)
    }

    /// Scrape `/metrics`. A 404 is [`ErrorKind::NoMetrics`], whose message names
    /// `--enable-metrics`.
    pub async fn metrics(&self) -> Result<Vec<Sample>, ClientError> {
        let url = self.url("/metrics");
        let resp = self
            .send(self.http.get(&url).timeout(REQUEST_TIMEOUT), &url)
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(ClientError::new(url, ErrorKind::NoMetrics));
        }
        let text = Self::check(resp, &url)
            .await?
            .text()
            .await
            .map_err(|e| ClientError::new(&url, ErrorKind::Transport(describe(&e))))?;
        if text.trim_start().starts_with(['[', '{']) {
            return Err(ClientError::new(url, ErrorKind::JsonMetrics));
        }
        metrics::parse(&text).map_err(|e| ClientError::new(url, e.into()))
    }

    /// POST a JSON body to `path`; the reply text, or the error status with its reason.
    pub(crate) async fn post_json_text(
        &self,
        path: &str,
        body: String,
        timeout: Duration,
    ) -> Result<String, ClientError> {
        let url = self.url(path);
        let req = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(timeout);
        let resp = Self::check(self.send(req, &url).await?, &url).await?;
        Ok(resp.text().await.unwrap_or_default())
    }

    /// POST `/start_profile`; the server's reply text (SGLang: `Start profiling.\n`).
    pub async fn start_profile(&self, body: &StartProfile) -> Result<String, ClientError> {
        tracing::debug!("POST {}/start_profile {}", self.base, body.to_json());
        self.post_json_text("/start_profile", body.to_json(), START_TIMEOUT)
            .await
    }

    /// POST `/stop_profile`; returns once the server has written its traces.
    pub async fn stop_profile(&self) -> Result<String, ClientError> {
        self.post_json_text("/stop_profile", "{}".into(), STOP_TIMEOUT)
            .await
    }

    /// GET `/profile_status`; `None` when the server has no such route (SGLang).
    pub async fn profile_status(&self) -> Result<Option<ProfileStatus>, ClientError> {
        let url = self.url("/profile_status");
        let resp = self
            .send(self.http.get(&url).timeout(REQUEST_TIMEOUT), &url)
            .await?;
        if matches!(resp.status().as_u16(), 404 | 405) {
            return Ok(None);
        }
        let resp = Self::check(resp, &url).await?;
        resp.json()
            .await
            .map(Some)
            .map_err(|e| ClientError::new(url, ErrorKind::Body(describe(&e))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_and_custom_headers() {
        let h = headers(Some("k"), &[("X-Test".into(), "1".into())]).unwrap();
        assert_eq!(h[AUTHORIZATION], "Bearer k");
        assert_eq!(h["x-test"], "1");
        assert_eq!(
            headers(None, &[("bad name".into(), "1".into())]).unwrap_err(),
            SetupError::HeaderName("bad name".into())
        );
        assert_eq!(headers(Some("a\nb"), &[]).unwrap_err(), SetupError::ApiKey);
    }

    #[test]
    fn urls_join_without_double_slashes() {
        let s = Server::with_client(reqwest::Client::new(), "http://h:1/", HeaderMap::new());
        assert_eq!(s.url("/start_profile"), "http://h:1/start_profile");
        assert_eq!(s.at("http://w:2").url("/x"), "http://w:2/x");
    }

    #[test]
    fn errors_carry_the_reason_and_the_url() {
        assert_eq!(reason_of(r#"{"object":"error","message":"busy"}"#), "busy");
        assert_eq!(
            reason_of("Internal Server Error\n"),
            "Internal Server Error"
        );
        let e = ClientError::new(
            "http://h/stop_profile",
            ErrorKind::Status {
                status: reqwest::StatusCode::CONFLICT,
                reason: "Profiling is not in progress.".into(),
            },
        );
        assert_eq!(
            e.to_string(),
            "http://h/stop_profile: HTTP 409 Conflict: Profiling is not in progress."
        );
        let bare = ClientError::new(
            "http://h/x",
            ErrorKind::Status {
                status: reqwest::StatusCode::NOT_FOUND,
                reason: String::new(),
            },
        );
        assert_eq!(bare.to_string(), "http://h/x: HTTP 404 Not Found");
    }
}
