//! A benchmark end to end, in the steps a reader names: resolve the plan's defaults against
//! its target, start the embedded server (when that is the target), discover the model and
//! the tokenizer, run every scenario x sweep point (`point.rs`), and write the outputs (each
//! run's JSONL record as it ends, the CSVs once every run has).

use std::path::PathBuf;
use std::sync::Arc;

use loupe_server::RunningServer;

use crate::arrival::{Arrivals, py_float};
use crate::client::{BodyOptions, Prepared, Target};
use crate::dataset::{self, DatasetConfig, Scenario};
use crate::discover::{Discovery, discover};
use crate::driver::Work;
use crate::error::{BenchError, Result};
use crate::observer::{BenchObserver, DatasetReady, RunStart};
use crate::outcome::{BenchOutcome, RunInfo, RunOutcome};
use crate::plan::{Api, BenchPlan, DatasetName, ServerTarget};
use crate::point::{Interrupt, PointContext, PointResult, run_point};
use crate::points::{Point, point_label, points, schedule};
use crate::report;
use crate::request_keys;
use crate::search::{self, Knob, Probe, SearchReport};
use crate::session::{Rendering, SessionWork};
use crate::summary;

/// Let this process hold as many sockets as the hard limit allows (bench_serving does the
/// same): tens of thousands of streams need more than the usual 1024 descriptors.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The settings whose default depends on the target: bench_serving's against a server, a
/// run that finishes quickly against the embedded reference server.
#[derive(Debug, Clone, PartialEq)]
struct Resolved {
    embedded: bool,
    dataset: DatasetName,
    num: usize,
    input_len: usize,
    output_len: usize,
    jsonl: PathBuf,
}

impl Resolved {
    fn of(plan: &BenchPlan) -> Resolved {
        let embedded = plan.embedded();
        let d = &plan.dataset;
        let pick = |v: Option<usize>, server: usize, local: usize| {
            v.unwrap_or(if embedded { local } else { server })
        };
        let dataset = d.name.unwrap_or(if embedded {
            DatasetName::RandomIds
        } else {
            DatasetName::Sharegpt
        });
        let num = pick(d.num_prompts, 1000, 200);
        let input_len = pick(d.random_input_len, 1024, 256);
        let output_len = pick(d.random_output_len, 1024, 128);
        let jsonl = plan.outputs.jsonl.clone().unwrap_or_else(|| {
            if dataset == DatasetName::Image {
                let i = &d.image;
                return PathBuf::from(report::default_image_output_file(
                    plan.backend.name(),
                    num,
                    input_len,
                    output_len,
                    i.count,
                    &i.resolution_label,
                ));
            }
            PathBuf::from(report::default_output_file(
                plan.backend.name(),
                dataset.name(),
                num,
                input_len,
                output_len,
            ))
        });
        Resolved {
            embedded,
            dataset,
            num,
            input_len,
            output_len,
            jsonl,
        }
    }
}

/// Start the reference server (`model`) in this process, on a free port.
async fn start_embedded(model: &str, observer: &dyn BenchObserver) -> Result<RunningServer> {
    let serve = loupe_server::ServerConfig {
        model_path: model.to_string(),
        port: 0,
        // --scrape-metrics and --html's server charts read its /metrics.
        enable_metrics: true,
        ..Default::default()
    };
    let s = loupe_server::spawn(serve)
        .await
        .map_err(BenchError::Server)?;
    observer.embedded_server_started(model, &s.url());
    Ok(s)
}

/// One scenario's requests (the dataset's when there are no scenarios), serialized; or its
/// conversations, whose rounds are serialized as they go.
struct Workload {
    work: Work,
    warmup: Work,
    /// The dataset's own start times (a trace replay), in place of the arrival process.
    trace_offsets: Option<Vec<f64>>,
}

fn build_workload(
    plan: &BenchPlan,
    r: &Resolved,
    found: &Discovery,
    body: &BodyOptions,
    scenario: Option<&Scenario>,
    observer: &dyn BenchObserver,
) -> Result<Workload> {
    let d = &plan.dataset;
    let cfg = DatasetConfig {
        name: r.dataset,
        path: &d.path,
        num: r.num,
        input_len: r.input_len,
        output_len: r.output_len,
        range_ratio: d.random_range_ratio,
        semantics: d.range_semantics,
        tokenize_prompt: d.tokenize_prompt,
        sharegpt_output_len: d.sharegpt_output_len,
        sharegpt_context_len: d.sharegpt_context_len,
        apply_chat_template: d.apply_chat_template,
        prompt_suffix: &d.prompt_suffix,
        gsp: &d.shared_prefix,
        mooncake: &d.mooncake,
        traces: &d.traces,
        image: &d.image,
        seed: d.seed,
        scenario,
    };
    let data = dataset::build(&cfg, found.tokenizer.as_deref(), found.vocab)?;
    if !data.sessions.is_empty() {
        return session_workload(plan, found, body, data, observer);
    }
    let adapters = lora_of(plan, data.prompts.len(), body.api);
    let prepared: Vec<Prepared> = data
        .prompts
        .iter()
        .enumerate()
        .map(|(i, p)| body.prepare_with(p, p.output_len, adapters.get(i)))
        .collect::<std::result::Result<_, String>>()
        .map_err(BenchError::Usage)?;
    // bench_serving warms up with the first adapter.
    let first = &data.prompts[0];
    let warmup = body
        .prepare_with(first, first.output_len.min(32), adapters.first())
        .map_err(BenchError::Usage)?;
    observer.dataset_ready(&DatasetReady {
        notes: &data.notes,
        input_tokens: prepared.iter().map(|p| p.prompt_len).sum(),
        output_tokens: prepared.iter().map(|p| p.output_len).sum(),
    });
    let n = plan.warmup.requests;
    Ok(Workload {
        work: Work::Requests(Arc::new(prepared)),
        warmup: Work::Requests(Arc::new(vec![warmup; n])),
        trace_offsets: None,
    })
}

/// Each request's LoRA body keys (empty without --lora-name).
fn lora_of(
    plan: &BenchPlan,
    n: usize,
    api: Api,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    match &plan.requests.lora {
        Some(l) => request_keys::lora_choices(l, n, plan.dataset.seed)
            .into_iter()
            .map(|a| request_keys::lora_keys(api, a))
            .collect(),
        None => Vec::new(),
    }
}

/// Conversations: the trace's start times when it is replayed (--use-trace-timestamps, or
/// mooncake at the default infinite rate, as bench_serving replays it).
fn session_workload(
    plan: &BenchPlan,
    found: &Discovery,
    body: &BodyOptions,
    mut data: dataset::Dataset,
    observer: &dyn BenchObserver,
) -> Result<Workload> {
    let adapters = lora_of(plan, data.sessions.len(), body.api);
    // bench_serving's own warmup request where it is not the first conversation
    let upstream_warmup = data
        .warmup
        .as_ref()
        .map(|p| body.prepare_with(p, p.output_len, adapters.first()))
        .transpose()
        .map_err(BenchError::Usage)?;
    for (c, keys) in data.sessions.iter_mut().zip(adapters) {
        c.extra.extend(keys);
    }
    let replay = data.timed()
        && (plan.dataset.use_trace_timestamps || !plan.arrivals.request_rate.is_finite());
    let trace_offsets = replay.then(|| data.sessions.iter().map(|c| c.at.unwrap_or(0.0)).collect());
    let rendering = Rendering {
        api: body.api,
        tokenizer: found.tokenizer.clone(),
    };
    // bench_serving's warmup sends the whole first conversation, at most 32 tokens a round.
    let mut first = data.sessions[0].clone();
    first
        .turns
        .iter_mut()
        .for_each(|t| t.output_len = t.output_len.min(32));
    let warmup = SessionWork::new(
        vec![first; plan.warmup.requests],
        body.clone(),
        rendering.clone(),
    );
    let turns = data.sessions.iter().flat_map(|c| &c.turns);
    observer.dataset_ready(&DatasetReady {
        notes: &data.notes,
        input_tokens: turns.clone().filter_map(|t| t.prompt_len).sum(),
        output_tokens: turns.map(|t| t.output_len).sum(),
    });
    Ok(Workload {
        work: Work::Sessions(Arc::new(SessionWork::new(
            data.sessions,
            body.clone(),
            rendering,
        ))),
        warmup: match upstream_warmup {
            Some(w) => Work::Requests(Arc::new(vec![w; plan.warmup.requests])),
            None => Work::Sessions(Arc::new(warmup)),
        },
        trace_offsets,
    })
}

/// A point's results with the run's settings: the outcome the report is made of.
fn run_outcome(
    plan: &BenchPlan,
    r: &Resolved,
    label: String,
    p: &Point,
    arrivals: &Arrivals,
    scenario: Option<&Scenario>,
    res: PointResult,
) -> RunOutcome {
    let scheduled = arrivals.ramp.is_some() || arrivals.rate.is_finite();
    let mut warnings = res.beyond.client_warnings(Some(&res.cpu), scheduled);
    if res.summary.completed == 0 {
        warnings.push("every request failed: the figures above describe nothing".into());
    }
    if let Some(w) = res.server_metrics.as_ref().and_then(|m| m.warning.clone()) {
        warnings.push(w);
    }
    if plan.metrics.cache_report && res.beyond.cache.cached_tokens.is_none() {
        warnings.push(format!(
            "--cache-report: the server reported no cached tokens (backend {}; SGLang reports \
             them on /generate, and on its OpenAI routes when launched with \
             --enable-cache-report)",
            plan.backend.name()
        ));
    }
    let d = &plan.dataset;
    RunOutcome {
        label,
        info: RunInfo {
            backend: plan.backend.name().to_string(),
            dataset_name: r.dataset.name().to_string(),
            request_rate: p.rate,
            rate_label: arrivals.label(),
            burstiness: plan.arrivals.burstiness,
            max_concurrency: p.max_concurrency,
            sharegpt_output_len: d.sharegpt_output_len,
            random_input_len: r.input_len,
            random_output_len: r.output_len,
            random_range_ratio: d.random_range_ratio,
            tag: plan.outputs.tag.clone(),
            cache_report: plan.metrics.cache_report,
            traffic_scenario: scenario.map(Scenario::label),
            server_info: res.server_info,
            accept_length: res.accept_length,
            cpu: Some(res.cpu),
            profile: res.profile,
            server_metrics: res.server_metrics,
            warnings,
        },
        summary: res.summary,
        beyond: res.beyond,
        records: res.records,
        retokenized: res.retokenized,
        native: plan.backend.api() == Api::Native,
    }
}

/// Every scenario x sweep point (or search probe), each appending its JSONL record as it
/// ends.
async fn sweep(
    plan: &BenchPlan,
    r: &Resolved,
    base_url: &str,
    found: &Discovery,
    observer: &Arc<dyn BenchObserver>,
) -> Result<(Vec<RunOutcome>, Vec<(Option<String>, SearchReport)>)> {
    let api = plan.backend.api();
    let req = &plan.requests;
    let mut target = Target::new(
        format!("{base_url}{}", plan.backend.path()),
        api,
        found.headers.clone(),
        req.timeout,
        req.read_timeout,
        req.stream,
    )
    .await
    .map_err(BenchError::Usage)?;
    target.observer = Some(observer.clone());
    let target = Arc::new(target);
    let body = BodyOptions {
        api,
        model: found.model.clone(),
        temperature: req.temperature,
        top_p: req.top_p,
        ignore_eos: req.ignore_eos,
        continuous_usage: req.continuous_usage_stats,
        cached_details: plan.metrics.cache_report && plan.backend.is_sglang(),
        stream: req.stream,
        // The flags' keys first: --extra-request-body overrides them, as upstream.
        extra: {
            let mut keys = request_keys::flag_keys(api, &req.flags);
            keys.extend(req.extra_body.clone());
            keys
        },
    };
    let ctx = PointContext {
        plan,
        client: &found.client,
        base_url,
        headers: &found.headers,
        target,
        tokenizer: found.tokenizer.as_deref(),
        embedded: r.embedded,
        observer,
        interrupt: if plan.profile.profile {
            Some(Interrupt::listen()?)
        } else {
            None
        },
    };
    let scenarios: Vec<Option<&Scenario>> = if plan.dataset.scenarios.is_empty() {
        vec![None]
    } else {
        plan.dataset.scenarios.iter().map(Some).collect()
    };
    let points = points(plan);
    let mut runs = Vec::new();
    let mut searches = Vec::new();
    for scenario in scenarios {
        let work = build_workload(plan, r, found, &body, scenario, observer.as_ref())?;
        let one = PointRunner {
            plan,
            r,
            base_url,
            ctx: &ctx,
            work: &work,
            scenario,
            observer,
        };
        match &plan.search {
            Some(sp) => {
                let a = &plan.arrivals;
                let start = sp.start.unwrap_or(match sp.knob {
                    Knob::RequestRate if a.request_rate.is_finite() => a.request_rate,
                    Knob::MaxConcurrency => a.max_concurrency.unwrap_or(1) as f64,
                    Knob::RequestRate => 1.0,
                });
                let mut probes = Vec::new();
                while let Some(v) = search::next(sp, start, &probes) {
                    let (p, what) = match sp.knob {
                        Knob::RequestRate => (
                            Point {
                                max_concurrency: a.max_concurrency,
                                rate: v,
                            },
                            format!("rate {}", py_float(v)),
                        ),
                        Knob::MaxConcurrency => (
                            Point {
                                max_concurrency: Some(v as usize),
                                rate: a.request_rate,
                            },
                            format!("concurrency {v}"),
                        ),
                    };
                    let prefix = scenario.map_or(String::new(), |s| format!("{} ", s.label()));
                    let run = one.run(&p, format!("{prefix}search {what}")).await?;
                    let attainment = run
                        .beyond
                        .goodput
                        .as_ref()
                        .map_or(0.0, |g| g.slo_attainment);
                    probes.push(Probe {
                        value: v,
                        attainment,
                        meets: attainment >= sp.goodput_target,
                    });
                    runs.push(run);
                }
                searches.push((scenario.map(Scenario::label), search::report(sp, probes)));
            }
            None => {
                for p in &points {
                    let label = point_label(plan.sweep.as_ref(), p, scenario);
                    runs.push(one.run(p, label).await?);
                }
            }
        }
    }
    Ok((runs, searches))
}

/// What one run needs beside its point.
struct PointRunner<'a> {
    plan: &'a BenchPlan,
    r: &'a Resolved,
    base_url: &'a str,
    ctx: &'a PointContext<'a>,
    work: &'a Workload,
    scenario: Option<&'a Scenario>,
    observer: &'a Arc<dyn BenchObserver>,
}

impl PointRunner<'_> {
    /// Run at `p`, append its JSONL record, and return it.
    async fn run(&self, p: &Point, label: String) -> Result<RunOutcome> {
        let (plan, r, work, scenario) = (self.plan, self.r, self.work, self.scenario);
        let arrivals = Arrivals {
            rate: p.rate,
            burstiness: plan.arrivals.burstiness,
            ramp: plan
                .arrivals
                .ramp
                .map(|ramp| (ramp.strategy, ramp.start_rps, ramp.end_rps)),
        };
        let workload = scenario.map_or(r.dataset.name().to_string(), Scenario::label);
        let rate = match &work.trace_offsets {
            Some(_) => "trace".to_string(),
            None => arrivals.label(),
        };
        self.observer.run_started(&RunStart {
            label: &label,
            requests: work.work.requests(),
            base_url: self.base_url,
            backend: plan.backend.name(),
            workload: &workload,
            rate: &rate,
            max_concurrency: p.max_concurrency,
        });
        let sched = schedule(
            plan,
            &work.work,
            work.trace_offsets.as_deref(),
            &arrivals,
            p.max_concurrency,
        )?;
        let res = run_point(
            self.ctx,
            work.work.clone(),
            work.warmup.clone(),
            p.max_concurrency,
            sched,
        )
        .await?;
        let mut run = run_outcome(plan, r, label, p, &arrivals, scenario, res);
        if work.trace_offsets.is_some() {
            run.info.rate_label = rate;
        }
        self.observer.run_finished(&run);
        report::append_jsonl(&r.jsonl, &report::record(&run, plan.outputs.details))
            .map_err(|e| BenchError::io(r.jsonl.display(), e))?;
        Ok(run)
    }
}

/// The whole-file outputs, once every run is done.
fn write_outputs(plan: &BenchPlan, outcome: &BenchOutcome) -> Result<()> {
    if let Some(p) = &plan.outputs.summary_csv {
        summary::write_summary_csv(p, &outcome.rows()).map_err(BenchError::Output)?;
    }
    if let Some(p) = &plan.outputs.request_csv {
        summary::write_request_csv(p, &outcome.runs).map_err(BenchError::Output)?;
    }
    Ok(())
}

/// Run `plan`, telling `observer` of each step. Errors are configuration or control-plane
/// failures; request failures are recorded per request and counted in the outcome (whose
/// JSONL records and CSVs are written all the same).
pub async fn run(plan: BenchPlan, observer: Arc<dyn BenchObserver>) -> Result<BenchOutcome> {
    plan.validate()?;
    raise_fd_limit();
    let resolved = Resolved::of(&plan);
    let (server, base_url) = match &plan.server.target {
        ServerTarget::Url(u) => (None, u.trim_end_matches('/').to_string()),
        ServerTarget::Embedded { model } => {
            let s = start_embedded(model, observer.as_ref()).await?;
            let url = s.url();
            (Some(s), url)
        }
    };
    let found = discover(&plan, &base_url, observer.as_ref()).await?;
    let (runs, search) = sweep(&plan, &resolved, &base_url, &found, &observer).await?;
    let outcome = BenchOutcome {
        runs,
        jsonl: resolved.jsonl,
        swept: plan.sweep.is_some() || plan.search.is_some(),
        search,
    };
    observer.runs_finished(&outcome);
    write_outputs(&plan, &outcome)?;
    if let Some(s) = server {
        s.shutdown()
            .await
            .map_err(|e| BenchError::Server(e.to_string()))?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::plan;

    #[test]
    fn defaults_follow_the_target() {
        let local = Resolved::of(&plan());
        assert_eq!(
            (
                local.embedded,
                local.dataset,
                local.num,
                local.input_len,
                local.output_len
            ),
            (true, DatasetName::RandomIds, 200, 256, 128)
        );
        let j = local.jsonl.display().to_string();
        assert!(
            j.starts_with("sglang_") && j.ends_with("_200_256_128.jsonl"),
            "{j}"
        );

        let mut p = plan();
        p.server.target = ServerTarget::Url("http://h:1".into());
        p.backend = crate::plan::Backend::Vllm;
        let remote = Resolved::of(&p);
        assert_eq!(
            (
                remote.embedded,
                remote.dataset,
                remote.num,
                remote.input_len,
                remote.output_len
            ),
            (false, DatasetName::Sharegpt, 1000, 1024, 1024)
        );
        assert!(
            remote
                .jsonl
                .display()
                .to_string()
                .ends_with("_1000_sharegpt.jsonl")
        );

        p.dataset.num_prompts = Some(5);
        p.outputs.jsonl = Some("x.jsonl".into());
        let given = Resolved::of(&p);
        assert_eq!((given.num, given.jsonl), (5, PathBuf::from("x.jsonl")));
    }
}
