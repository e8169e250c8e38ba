//! The client's errors. A request's error always names its URL.

use reqwest::StatusCode;

/// A request to the server failed.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {kind}")]
pub struct ClientError {
    pub url: String,
    pub kind: ErrorKind,
}

impl ClientError {
    pub(crate) fn new(url: impl Into<String>, kind: ErrorKind) -> Self {
        ClientError {
            url: url.into(),
            kind,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match &self.kind {
            ErrorKind::Status { status, .. } | ErrorKind::Unauthorized(status) => Some(*status),
            ErrorKind::NoMetrics => Some(StatusCode::NOT_FOUND),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// No answer: cannot connect, timed out, connection reset (with reqwest's causes).
    #[error("{0}")]
    Transport(String),
    /// The server answered with an error status; `reason` is its message (loupe and OpenAI
    /// servers put it in a JSON `message`; SGLang's profiling errors are a bare 500).
    #[error("HTTP {status}{}", reason_suffix(.reason))]
    Status { status: StatusCode, reason: String },
    /// 401/403 while waiting for readiness: waiting longer cannot fix a refused key.
    #[error("HTTP {0}: the server wants an API key (--api-key or $OPENAI_API_KEY)")]
    Unauthorized(StatusCode),
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not the shape the route has.
    #[error("unexpected body: {0}")]
    Body(String),
    /// `/metrics` answered 404: SGLang (and loupe serve) mount it only with --enable-metrics.
    #[error(
        "HTTP 404: the server has no /metrics; SGLang and loupe serve answer it only when \
         launched with --enable-metrics"
    )]
    NoMetrics,
    /// `/metrics` answered JSON: trtllm-serve's iteration statistics.
    #[error(
        "the body is JSON, not Prometheus text: trtllm-serve's /metrics is JSON iteration \
         statistics (`loupe watch` reads them; trtllm-serve's Prometheus text is at \
         /prometheus/metrics, with return_perf_metrics)"
    )]
    JsonMetrics,
    #[error("the body is not Prometheus text: {0}")]
    Metrics(#[from] crate::metrics::MetricsError),
    /// The engine has no route for what was asked.
    #[error("{0}")]
    Unsupported(String),
    #[error("the server was not ready within {timeout_s} s ({last})")]
    NotReady { timeout_s: f64, last: String },
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

/// The client could not be set up (before any request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("the API key is not a valid header value")]
    ApiKey,
    #[error("header {0}: not a valid header name")]
    HeaderName(String),
    #[error("header {0}: not a valid header value")]
    HeaderValue(String),
}

/// reqwest's error with its causes, without repeating them ("cannot connect: Connection
/// refused (os error 111)").
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        e.to_string()
    };
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let s_msg = s.to_string();
        if !msg.contains(&s_msg) {
            msg.push_str(": ");
            msg.push_str(&s_msg);
        }
        src = s.source();
    }
    msg
}
