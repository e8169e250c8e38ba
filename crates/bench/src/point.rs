//! One measured run at one setting (a sweep point): connection ramp, warmup, optional cache
//! flush, optional profile, the schedule itself, then the metrics. bench_serving's order.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::args::BenchArgs;
use crate::arrival::Arrivals;
use crate::beyond::{self, Beyond, ClientCpu};
use crate::client::{Prepared, Target};
use crate::control;
use crate::driver::{self, progress_bar};
use crate::error::{BenchError, Result};
use crate::metrics::{self, Summary};
use crate::profile::ProfileEndpoint;
use crate::profile::bench::{ProfileReport, ProfileRun};
use crate::record::RequestRecord;
use crate::tokenizer::BenchTokenizer;

/// What every point of a run shares.
pub struct PointContext<'a> {
    pub args: &'a BenchArgs,
    pub client: &'a reqwest::Client,
    pub base_url: &'a str,
    pub headers: &'a HeaderMap,
    pub target: Arc<Target>,
    pub tokenizer: Option<&'a BenchTokenizer>,
    pub percentiles: &'a [f64],
    pub slos: &'a crate::args::Slos,
    /// The embedded server runs in this process (its CPU counts as ours).
    pub embedded: bool,
}

/// One point's results.
pub struct PointResult {
    pub records: Vec<RequestRecord>,
    pub retokenized: Option<Vec<usize>>,
    pub summary: Summary,
    pub beyond: Beyond,
    pub cpu: ClientCpu,
    pub server_info: Value,
    pub accept_length: Option<f64>,
    pub profile: Option<ProfileReport>,
}

fn env_true(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"))
}

/// SGLang's speculative accept length from /server_info (PD servers nest it under `decode`).
fn accept_length(info: &Value) -> Option<f64> {
    let info = info.get("decode").and_then(|d| d.get(0)).unwrap_or(info);
    info["internal_states"][0]["avg_spec_accept_length"].as_f64()
}

pub async fn run_point(
    ctx: &PointContext<'_>,
    requests: Arc<Vec<Prepared>>,
    warmup: &Prepared,
    max_concurrency: Option<usize>,
    arrivals: Arrivals,
) -> Result<PointResult> {
    let a = ctx.args;
    let n = requests.len();
    let connections = n.min(max_concurrency.unwrap_or(n));
    if a.connection_ramp > 0 {
        let opened = ctx
            .target
            .endpoint
            .prewarm(connections, a.connection_ramp)
            .await;
        if opened < connections {
            eprintln!(
                "Connection ramp: {opened} of {connections} connections opened ahead of the run"
            );
        }
    }
    if a.warmup_requests > 0 {
        eprintln!("Starting warmup with {} sequences...", a.warmup_requests);
        let w = driver::drive(
            ctx.target.clone(),
            Arc::new(vec![warmup.clone(); a.warmup_requests]),
            vec![0.0; a.warmup_requests],
            max_concurrency,
            progress_bar(0, false),
        )
        .await;
        if let Some(first) = w
            .records
            .first()
            .filter(|_| w.records.iter().all(|r| !r.ok))
        {
            return Err(BenchError::http(
                &ctx.target.url,
                format!("warmup failed (check the benchmark flags): {}", first.error),
            ));
        }
        eprintln!(
            "Warmup completed with {} sequences. Starting main benchmark run...",
            a.warmup_requests
        );
    }
    let flush = a.flush_cache || (a.backend.is_sglang() && env_true("SGLANG_IS_IN_CI"));
    if flush {
        control::flush_cache(
            ctx.client,
            ctx.base_url,
            ctx.headers,
            a.backend.is_vllm(),
            a.flush_cache_timeout,
        )
        .await?;
        // bench_serving lets the server settle after a flush.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let profile = if a.profile.profile {
        let ep = ProfileEndpoint {
            client: ctx.client.clone(),
            base: ctx.base_url.to_string(),
            headers: ctx.headers.clone(),
        };
        Some(ProfileRun::start(&a.profile, ep).await)
    } else {
        None
    };

    let offsets = arrivals.offsets(n, a.seed);
    let cpu0 = beyond::process_cpu_seconds();
    let driven = driver::drive(
        ctx.target.clone(),
        requests,
        offsets,
        max_concurrency,
        progress_bar(n, !a.disable_tqdm),
    )
    .await;
    let cpu = ClientCpu {
        seconds: beyond::process_cpu_seconds() - cpu0,
        wall: driven.duration,
        cores: std::thread::available_parallelism().map_or(1, |c| c.get()),
        includes_server: ctx.embedded,
    };
    let profile = match profile {
        Some(p) => Some(p.finish().await),
        None => None,
    };
    let server_info = control::get_json(
        ctx.client,
        &format!("{}/server_info", ctx.base_url),
        ctx.headers,
    )
    .await
    .unwrap_or(Value::Null);
    let accept_length = if a.backend.is_sglang() {
        accept_length(&server_info)
    } else {
        None
    };

    // Token counting happens here, after the run, never while streams are timed.
    let mut records = driven.records;
    let tok = ctx.tokenizer.filter(|_| !a.disable_retokenize);
    let retokenized = tok.map(|t| {
        records
            .iter()
            .map(|r| {
                if r.ok {
                    t.count_plain(&r.generated_text)
                } else {
                    0
                }
            })
            .collect::<Vec<usize>>()
    });
    let count = |s: &str| ctx.tokenizer.map_or(0, |t| t.count_plain(s));
    for r in &mut records {
        r.fill_token_counts(ctx.tokenizer.map(|_| &count as &dyn Fn(&str) -> usize));
    }
    let native = a.backend.api() == crate::args::Api::Native;
    let summary = metrics::summarize(&records, driven.duration, native, retokenized.as_deref());
    let beyond = beyond::summarize(&records, driven.duration, ctx.percentiles, ctx.slos);
    Ok(PointResult {
        records,
        retokenized,
        summary,
        beyond,
        cpu,
        server_info,
        accept_length,
        profile,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accept_length_from_plain_and_pd_server_info() {
        let plain = json!({"internal_states": [{"avg_spec_accept_length": 2.5}]});
        assert_eq!(accept_length(&plain), Some(2.5));
        let pd = json!({"decode": [{"internal_states": [{"avg_spec_accept_length": 3.0}]}]});
        assert_eq!(accept_length(&pd), Some(3.0));
        assert_eq!(
            accept_length(&json!({"internal_states": [{"avg_spec_accept_length": null}]})),
            None
        );
    }
}
