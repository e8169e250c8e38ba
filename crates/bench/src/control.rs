//! Control-plane requests around a run, through loupe-client: the HTTP client, auth headers,
//! the readiness wait, model and server info, and the cache flush, with loupe-client's errors
//! turned into `BenchError`s that name the URL (and the flag, for header errors).

use std::time::Duration;

use loupe_client::{ClientError, Engine, Server, SetupError};
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::error::{BenchError, Result};

fn request_error(e: ClientError) -> BenchError {
    BenchError::http(e.url, e.kind)
}

fn setup_error(e: SetupError) -> BenchError {
    BenchError::Usage(match e {
        SetupError::HeaderName(k) => format!("--header {k}: not a valid header name"),
        SetupError::HeaderValue(k) => format!("--header {k}: not a valid header value"),
        other => other.to_string(),
    })
}

/// The HTTP client of the control requests: a small keep-alive pool, no proxy, no Nagle
/// delay.
pub fn http_client() -> Result<reqwest::Client> {
    loupe_client::http_client().map_err(setup_error)
}

/// bench_serving's auth (`OPENAI_API_KEY` or --api-key as Bearer, else `$API_KEY` verbatim)
/// plus `--header` pairs.
pub fn headers(api_key: Option<&str>, extra: &[(String, String)]) -> Result<HeaderMap> {
    loupe_client::headers(api_key, extra).map_err(setup_error)
}

/// The server at `base` through the run's client.
pub fn server(client: &reqwest::Client, base: &str, headers: &HeaderMap) -> Server {
    Server::with_client(client.clone(), base, headers.clone())
}

/// GET `url` (a whole URL) as JSON.
pub async fn get_json(client: &reqwest::Client, url: &str, headers: &HeaderMap) -> Result<Value> {
    server(client, url, headers)
        .get_json("")
        .await
        .map_err(request_error)
}

/// Poll `/v1/models` until it answers (bench_serving's readiness check). A refused key ends
/// the wait at once: waiting longer cannot fix it.
pub async fn wait_ready(
    client: &reqwest::Client,
    base: &str,
    headers: &HeaderMap,
    timeout: f64,
) -> Result<Value> {
    server(client, base, headers)
        .wait_ready(Duration::from_secs_f64(timeout.max(0.0)))
        .await
        .map_err(request_error)
}

/// Flush the prefix cache: SGLang's `/flush_cache?timeout=`, vLLM's `/reset_prefix_cache`.
pub async fn flush_cache(
    client: &reqwest::Client,
    base: &str,
    headers: &HeaderMap,
    vllm: bool,
    timeout: f64,
) -> Result<()> {
    let engine = if vllm { Engine::Vllm } else { Engine::Sglang };
    server(client, base, headers)
        .flush_cache(engine, timeout)
        .await
        .map_err(request_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::AUTHORIZATION;

    #[test]
    fn auth_and_custom_headers() {
        let h = headers(Some("k"), &[("X-Test".into(), "1".into())]).unwrap();
        assert_eq!(h[AUTHORIZATION], "Bearer k");
        assert_eq!(h["x-test"], "1");
        let e = headers(None, &[("bad name".into(), "1".into())]).unwrap_err();
        assert_eq!(e.to_string(), "--header bad name: not a valid header name");
    }
}
