//! One measured run at one setting (a sweep point): connection ramp, warmup, optional cache
//! flush, optional profile, the schedule itself, then the metrics. bench_serving's order.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::beyond::{self, Beyond, ClientCpu};
use crate::client::Target;
use crate::control;
use crate::driver::{self, Limits, Schedule, Work};
use crate::error::{BenchError, Result};
use crate::metrics::{self, Summary};
use crate::observer::BenchObserver;
use crate::plan::{Api, BenchPlan};
use crate::profile::ProfileEndpoint;
use crate::profile::bench::{ProfileReport, ProfileRun};
use crate::record::RequestRecord;
use crate::scrape::{Scraped, Scraper};
use crate::tokenizer::BenchTokenizer;
use crate::windows;

/// What every point of a run shares.
pub struct PointContext<'a> {
    pub plan: &'a BenchPlan,
    pub client: &'a reqwest::Client,
    pub base_url: &'a str,
    pub headers: &'a HeaderMap,
    pub target: Arc<Target>,
    pub tokenizer: Option<&'a BenchTokenizer>,
    /// The embedded server runs in this process (its CPU counts as ours).
    pub embedded: bool,
    pub observer: &'a Arc<dyn BenchObserver>,
    /// Ctrl-C, listened for once for the whole run when it profiles (`None` otherwise:
    /// Ctrl-C keeps its default meaning).
    pub interrupt: Option<Interrupt>,
}

/// Ctrl-C during a profiled run. One listener for every point of a sweep, set up before the
/// first profile starts: a Ctrl-C between two points (or while a point's traces are being
/// waited for) is not lost, and ends the run with no profile left running on the server.
#[derive(Clone)]
pub struct Interrupt(tokio::sync::watch::Receiver<bool>);

impl Interrupt {
    /// Replace SIGINT's default action with this listener, for the rest of the process.
    pub fn listen() -> Result<Interrupt> {
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(|e| BenchError::Usage(format!("cannot listen for Ctrl-C: {e}")))?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if sigint.recv().await.is_some() {
                let _ = tx.send(true);
            }
            // Keep the sender: a closed channel would read as no interrupt ever coming.
            tx.closed().await;
        });
        Ok(Interrupt(rx))
    }

    /// Ctrl-C came already.
    pub fn fired(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once Ctrl-C comes (at once if it came already).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|v| *v).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
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
    pub server_metrics: Option<Scraped>,
}

fn env_true(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"))
}

/// SGLang's speculative accept length from /server_info (PD servers nest it under `decode`).
fn accept_length(info: &Value) -> Option<f64> {
    let info = info.get("decode").and_then(|d| d.get(0)).unwrap_or(info);
    info["internal_states"][0]["avg_spec_accept_length"].as_f64()
}

/// `schedule`: when each item of `work` is due.
pub async fn run_point(
    ctx: &PointContext<'_>,
    work: Work,
    warmup: Work,
    max_concurrency: Option<usize>,
    schedule: Schedule,
) -> Result<PointResult> {
    let plan = ctx.plan;
    let before = &plan.warmup;
    let connections = match &schedule {
        Schedule::At(o) => o.len().min(max_concurrency.unwrap_or(o.len())),
        Schedule::ClosedLoop { slots, .. } => *slots,
    };
    if before.connection_ramp > 0 {
        let opened = ctx
            .target
            .endpoint
            .prewarm(connections, before.connection_ramp)
            .await;
        ctx.observer.connections_opened(opened, connections);
    }
    if before.requests > 0 {
        ctx.observer.warmup_started(before.requests);
        let w = driver::drive(
            ctx.target.clone(),
            warmup,
            Schedule::At(vec![0.0; before.requests]),
            max_concurrency,
            None,
            Limits::default(),
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
        ctx.observer.warmup_finished(before.requests);
    }
    let backend = plan.backend;
    let flush = before.flush_cache || (backend.is_sglang() && env_true("SGLANG_IS_IN_CI"));
    if flush {
        control::flush_cache(
            ctx.client,
            ctx.base_url,
            ctx.headers,
            backend.is_vllm(),
            before.flush_cache_timeout.as_secs_f64(),
        )
        .await?;
        // bench_serving lets the server settle after a flush.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // The listener was set up before the run's first profile, so no Ctrl-C can fall between
    // the server starting to profile and loupe listening (it would end loupe and leave the
    // server profiling); one that came before this point's start ends the run here.
    let interrupt = ctx.interrupt.as_ref().filter(|_| plan.profile.profile);
    if interrupt.is_some_and(Interrupt::fired) {
        return Err(BenchError::Interrupted);
    }
    let mut profile = if plan.profile.profile {
        let ep = ProfileEndpoint {
            client: ctx.client.clone(),
            base: ctx.base_url.to_string(),
            headers: ctx.headers.clone(),
        };
        let p = ProfileRun::start(&plan.profile, ep).await;
        if interrupt.is_some_and(Interrupt::fired) {
            // Ctrl-C while the start was on its way: the server may be profiling now.
            p.abandon().await;
            return Err(BenchError::Interrupted);
        }
        Some(p)
    } else {
        None
    };

    let scraper = match plan.metrics.scrape_metrics {
        Some(every) => Some(
            Scraper::start(
                control::server(ctx.client, ctx.base_url, ctx.headers),
                every,
            )
            .await,
        ),
        None => None,
    };
    let cpu0 = beyond::process_cpu_seconds();
    let expected = match &schedule {
        Schedule::At(o) if o.len() == work.len() => work.requests(),
        Schedule::At(o) => o.len() * work.requests() / work.len().max(1),
        // Unknown ahead of a closed loop's deadline.
        Schedule::ClosedLoop { .. } => 0,
    };
    ctx.observer.requests_started(expected);
    let limits = Limits {
        stop_after: plan.time.duration.map(|d| d.as_secs_f64()),
    };
    let drive = driver::drive(
        ctx.target.clone(),
        work,
        schedule,
        max_concurrency,
        Some(ctx.observer.clone()),
        limits,
    );
    // While the server profiles, Ctrl-C must stop it before the process ends: a vLLM server
    // left profiling grows its trace without bound. Without a profile, Ctrl-C keeps its
    // default meaning.
    let driven = match (profile, interrupt) {
        (Some(p), Some(sigint)) => {
            tokio::select! {
                driven = drive => {
                    profile = Some(p);
                    driven
                }
                _ = sigint.wait() => {
                    p.abandon().await;
                    return Err(BenchError::Interrupted);
                }
            }
        }
        (p, _) => {
            profile = p;
            drive.await
        }
    };
    ctx.observer.requests_finished();
    let server_metrics = match scraper {
        Some(s) => Some(s.finish(driven.t0).await),
        None => None,
    };
    let cpu = ClientCpu {
        seconds: beyond::process_cpu_seconds() - cpu0,
        wall: driven.duration,
        cores: std::thread::available_parallelism().map_or(1, |c| c.get()),
        includes_server: ctx.embedded,
    };
    // Ctrl-C while the traces are waited for: stop every started endpoint (again; an idle
    // stop is harmless on vLLM) and end the run.
    let profile = match (profile, interrupt) {
        (Some(p), Some(sigint)) => {
            let spare = p.clone();
            tokio::select! {
                report = p.finish() => Some(report),
                _ = sigint.wait() => {
                    spare.abandon().await;
                    return Err(BenchError::Interrupted);
                }
            }
        }
        (Some(p), None) => Some(p.finish().await),
        (None, _) => None,
    };
    let server_info = control::get_json(
        ctx.client,
        &format!("{}/server_info", ctx.base_url),
        ctx.headers,
    )
    .await
    .unwrap_or(Value::Null);
    let accept_length = if backend.is_sglang() {
        accept_length(&server_info)
    } else {
        None
    };

    // Token counting happens here, after the run, never while streams are timed.
    let mut records = driven.records;
    let tok = ctx.tokenizer.filter(|_| plan.dataset.retokenize);
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
    let native = backend.api() == Api::Native;
    let mut summary = metrics::summarize(&records, driven.duration, native, retokenized.as_deref());
    let mut beyond = beyond::summarize(
        &records,
        driven.duration,
        &plan.metrics.percentiles,
        &plan.metrics.slos,
    );
    if plan.dataset.name.is_some_and(|n| n.has_images()) {
        count_images(&mut summary, &mut beyond, &records);
    }
    beyond.realtime_dispatch = driven.realtime_dispatch;
    let t = &plan.time;
    beyond.steady =
        windows::steady_state(&records, driven.duration, t.warmup_ratio, t.cooldown_ratio);
    if let Some(slice) = t.slice {
        beyond.slices = windows::slices(&records, driven.duration, slice.as_secs_f64());
    }
    Ok(PointResult {
        records,
        retokenized,
        summary,
        beyond,
        cpu,
        server_info,
        accept_length,
        profile,
        server_metrics,
    })
}

/// A run whose requests carry images (image, mmmu): the client counted only their text, the
/// server's prompt tokens hold the images' placeholder tokens too, so the input and vision
/// tokens come from the server's counts (`Summary::count_vision`) and the client's
/// text-only prompt length is not checked against the server's. The live run and a run read
/// back from its request timings (`timings::read`) both go through here.
pub fn count_images(summary: &mut Summary, beyond: &mut Beyond, records: &[RequestRecord]) {
    summary.count_vision(records);
    beyond.prompt_len_check = Default::default();
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
