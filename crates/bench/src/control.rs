//! Control-plane requests around a run: their HTTP client, auth headers, the readiness wait,
//! model and server info, and the cache flush.

use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::client::describe;
use crate::error::{BenchError, Result};

/// The HTTP client of the control requests: a small keep-alive pool, no proxy, no Nagle
/// delay.
pub fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(16)
        .tcp_nodelay(true)
        .no_proxy()
        .build()
        .map_err(|e| BenchError::Usage(format!("cannot build the HTTP client: {e}")))
}

/// bench_serving's auth (`OPENAI_API_KEY` or --api-key as Bearer, else `$API_KEY` verbatim)
/// plus `--header` pairs.
pub fn headers(api_key: Option<&str>, extra: &[(String, String)]) -> Result<HeaderMap> {
    let mut h = HeaderMap::new();
    let auth = match api_key {
        Some(k) => Some(format!("Bearer {k}")),
        None => std::env::var("API_KEY").ok().filter(|k| !k.is_empty()),
    };
    if let Some(a) = auth {
        let v = HeaderValue::from_str(&a)
            .map_err(|_| BenchError::Usage("the API key is not a valid header value".into()))?;
        h.insert(AUTHORIZATION, v);
    }
    for (k, v) in extra {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| BenchError::Usage(format!("--header {k}: not a valid header name")))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| BenchError::Usage(format!("--header {k}: not a valid header value")))?;
        h.insert(name, value);
    }
    Ok(h)
}

/// GET `url` as JSON.
pub async fn get_json(client: &reqwest::Client, url: &str, headers: &HeaderMap) -> Result<Value> {
    let resp = client
        .get(url)
        .headers(headers.clone())
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| BenchError::http(url, describe(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(BenchError::http(url, format!("HTTP {status}")));
    }
    resp.json()
        .await
        .map_err(|e| BenchError::http(url, format!("the body is not JSON: {e}")))
}

/// Poll `/v1/models` until it answers (bench_serving's readiness check). A refused key ends
/// the wait at once: waiting longer cannot fix it.
pub async fn wait_ready(
    client: &reqwest::Client,
    base: &str,
    headers: &HeaderMap,
    timeout: f64,
) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs_f64(timeout.max(0.0));
    let url = format!("{base}/v1/models");
    loop {
        let last = match client
            .get(&url)
            .headers(headers.clone())
            .timeout(Duration::from_secs(30))
            .send()
            .await
        {
            Ok(resp) if resp.status().is_success() => {
                return resp
                    .json()
                    .await
                    .map_err(|e| BenchError::http(&url, format!("the body is not JSON: {e}")));
            }
            Ok(resp) if matches!(resp.status().as_u16(), 401 | 403) => {
                return Err(BenchError::http(
                    url,
                    format!(
                        "HTTP {}: the server wants an API key (--api-key or $OPENAI_API_KEY)",
                        resp.status()
                    ),
                ));
            }
            Ok(resp) => format!("HTTP {}", resp.status()),
            Err(e) => describe(&e),
        };
        if Instant::now() >= deadline {
            return Err(BenchError::http(
                url,
                format!("the server was not ready within {timeout} s ({last})"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Flush the prefix cache: SGLang's `/flush_cache?timeout=`, vLLM's `/reset_prefix_cache`.
pub async fn flush_cache(
    client: &reqwest::Client,
    base: &str,
    headers: &HeaderMap,
    vllm: bool,
    timeout: f64,
) -> Result<()> {
    let url = if vllm {
        format!("{base}/reset_prefix_cache")
    } else {
        format!("{base}/flush_cache?timeout={timeout}")
    };
    let resp = client
        .post(&url)
        .headers(headers.clone())
        .timeout(Duration::from_secs_f64(timeout + 30.0))
        .send()
        .await
        .map_err(|e| BenchError::http(&url, describe(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(BenchError::http(
            url,
            format!("HTTP {status}: {}", text.trim()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_and_custom_headers() {
        let h = headers(Some("k"), &[("X-Test".into(), "1".into())]).unwrap();
        assert_eq!(h[AUTHORIZATION], "Bearer k");
        assert_eq!(h["x-test"], "1");
        assert!(headers(None, &[("bad name".into(), "1".into())]).is_err());
    }
}
