//! `loupe bench` end to end: resolve the target (or start the embedded server), wait for it,
//! find a tokenizer, build the dataset and the request bodies, run every scenario x sweep
//! point, report each (table, JSONL, CSV), and summarise several runs in one table.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::args::{self, BenchArgs, DatasetName};
use crate::arrival::{Arrivals, py_float};
use crate::client::{BodyOptions, Prepared, Target};
use crate::control;
use crate::dataset::{self, DatasetConfig, Scenario};
use crate::error::{BenchError, Result};
use crate::point::{PointContext, run_point};
use crate::report::{self, RunInfo, RunReport};
use crate::summary::{self, RunRow};
use crate::tokenizer::BenchTokenizer;

/// What a `loupe bench` invocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchOutcome {
    pub runs: usize,
    pub requests: usize,
    pub failed: usize,
}

impl BenchOutcome {
    /// Every request of every run completed.
    pub fn success(&self) -> bool {
        self.failed == 0 && self.requests > 0
    }
}

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

/// One setting of a sweep.
#[derive(Debug, Clone, Copy)]
struct Point {
    max_concurrency: Option<usize>,
    rate: f64,
}

fn points(a: &BenchArgs) -> (Vec<Point>, bool) {
    if !a.sweep_max_concurrency.is_empty() {
        let p = a.sweep_max_concurrency.iter().map(|&c| Point {
            max_concurrency: Some(c),
            rate: a.request_rate,
        });
        (p.collect(), true)
    } else if !a.sweep_request_rate.is_empty() {
        let p = a.sweep_request_rate.iter().map(|&r| Point {
            max_concurrency: a.max_concurrency,
            rate: r,
        });
        (p.collect(), true)
    } else {
        (
            vec![Point {
                max_concurrency: a.max_concurrency,
                rate: a.request_rate,
            }],
            false,
        )
    }
}

fn point_label(a: &BenchArgs, p: &Point, scenario: Option<&Scenario>) -> String {
    let mut parts = Vec::new();
    if let Some(s) = scenario {
        parts.push(s.label());
    }
    if !a.sweep_max_concurrency.is_empty() {
        parts.push(format!("concurrency {}", p.max_concurrency.unwrap_or(0)));
    } else if !a.sweep_request_rate.is_empty() {
        parts.push(format!("rate {}", py_float(p.rate)));
    }
    if parts.is_empty() {
        parts.push("run".into());
    }
    parts.join(" ")
}

fn vocab_of(info: Option<&Value>) -> Option<usize> {
    let i = info?;
    i["vocab_size"]
        .as_u64()
        .or(i["hf_config"]["vocab_size"].as_u64())
        .map(|v| v as usize)
}

/// `loupe bench`. Errors are configuration or control-plane failures; request failures are
/// reported per request and counted in the outcome.
pub async fn run_cli(args: BenchArgs) -> Result<BenchOutcome> {
    args.validate()?;
    raise_fd_limit();
    let percentiles = args::parse_percentiles(&args.percentiles)?;
    let slos = args::parse_slos(args.slo.as_deref(), &args.goodput)?;
    let extra_headers = args::parse_headers(&args.header)?;
    let scenarios: Vec<Scenario> = args
        .traffic_scenario
        .iter()
        .map(|s| Scenario::parse(s))
        .collect::<Result<_>>()?;

    let embedded = args.base_url.is_none() && args.host.is_none() && args.port.is_none();
    let server = if embedded {
        let serve = loupe_server::ServeArgs {
            model_path: args.embedded_model.clone(),
            port: 0,
            ..Default::default()
        };
        let s = loupe_server::spawn(serve)
            .await
            .map_err(BenchError::Server)?;
        eprintln!(
            "No --base-url given: started the embedded reference server ({}) in this process at {}",
            args.embedded_model,
            s.url()
        );
        Some(s)
    } else {
        None
    };
    let base_url = match (&server, &args.base_url) {
        (Some(s), _) => s.url(),
        (None, Some(u)) => u.trim_end_matches('/').to_string(),
        (None, None) => {
            let host = args.host.as_deref().unwrap_or("127.0.0.1");
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            format!(
                "http://{host}:{}",
                args.port.unwrap_or(args.backend.default_port())
            )
        }
    };
    let num = args
        .num_prompts
        .unwrap_or(if embedded { 200 } else { 1000 });
    let input_len = args
        .random_input_len
        .unwrap_or(if embedded { 256 } else { 1024 });
    let output_len = args
        .random_output_len
        .unwrap_or(if embedded { 128 } else { 1024 });
    let dataset_name = args.dataset_name.unwrap_or(if embedded {
        DatasetName::RandomIds
    } else {
        DatasetName::Sharegpt
    });

    let (points, sweeping) = points(&args);
    // Control requests only (readiness, info, flush, profiling): the generation requests
    // have their own transport (`http1`).
    let client = control::http_client()?;
    let headers = control::headers(args.api_key.as_deref(), &extra_headers)?;
    let models = if args.ready_check_timeout_sec > 0.0 {
        Some(control::wait_ready(&client, &base_url, &headers, args.ready_check_timeout_sec).await?)
    } else {
        None
    };
    let model = match &args.model {
        Some(m) => m.clone(),
        None => {
            let models = match models {
                Some(m) => m,
                None => {
                    control::get_json(&client, &format!("{base_url}/v1/models"), &headers).await?
                }
            };
            models["data"][0]["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| {
                    BenchError::http(
                        format!("{base_url}/v1/models"),
                        "lists no model; pass --model",
                    )
                })?
        }
    };
    let model_info = control::get_json(&client, &format!("{base_url}/model_info"), &headers)
        .await
        .ok();
    let tokenizer = BenchTokenizer::resolve(args.tokenizer.as_deref(), model_info.as_ref())?;
    match &tokenizer {
        Some(t) => eprintln!("Tokenizer: {}", t.source.display()),
        None => eprintln!(
            "No client tokenizer (pass --tokenizer): retokenized output counts are not reported"
        ),
    }
    let vocab = vocab_of(model_info.as_ref());

    let api = args.backend.api();
    let target = Arc::new(
        Target::new(
            format!("{base_url}{}", args.backend.path()),
            api,
            headers.clone(),
            Duration::from_secs_f64(args.request_timeout),
            args.read_timeout.map(Duration::from_secs_f64),
        )
        .await
        .map_err(BenchError::Usage)?,
    );
    let extra = match &args.extra_request_body {
        Some(s) => match serde_json::from_str(s) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(BenchError::Usage(
                    "--extra-request-body must be a JSON object".into(),
                ));
            }
        },
        None => Default::default(),
    };
    let body_opts = BodyOptions {
        api,
        model: args.served_model_name.clone().unwrap_or(model),
        temperature: args.temperature,
        top_p: args.top_p,
        ignore_eos: !args.disable_ignore_eos,
        continuous_usage: args.continuous_usage_stats,
        extra,
    };
    let ctx = PointContext {
        args: &args,
        client: &client,
        base_url: &base_url,
        headers: &headers,
        target: target.clone(),
        tokenizer: tokenizer.as_ref(),
        percentiles: &percentiles,
        slos: &slos,
        embedded,
    };
    let output_file = args.output_file.clone().unwrap_or_else(|| {
        PathBuf::from(report::default_output_file(
            args.backend.name(),
            dataset_name.name(),
            num,
            input_len,
            output_len,
        ))
    });

    let mut outcome = BenchOutcome {
        runs: 0,
        requests: 0,
        failed: 0,
    };
    let mut rows = Vec::new();
    let mut csv_runs = Vec::new();
    let scenario_list: Vec<Option<&Scenario>> = if scenarios.is_empty() {
        vec![None]
    } else {
        scenarios.iter().map(Some).collect()
    };
    for scenario in scenario_list {
        let cfg = DatasetConfig {
            name: dataset_name,
            path: &args.dataset_path,
            num,
            input_len,
            output_len,
            range_ratio: args.random_range_ratio,
            semantics: args.range_semantics,
            tokenize_prompt: args.tokenize_prompt,
            sharegpt_output_len: args.sharegpt_output_len,
            sharegpt_context_len: args.sharegpt_context_len,
            apply_chat_template: args.apply_chat_template,
            prompt_suffix: &args.prompt_suffix,
            gsp: &args.gsp,
            seed: args.seed,
            scenario,
        };
        let data = dataset::build(&cfg, tokenizer.as_ref(), vocab)?;
        for note in &data.notes {
            eprintln!("note: {note}");
        }
        let prepared: Vec<Prepared> = data
            .prompts
            .iter()
            .map(|p| body_opts.prepare(p, p.output_len))
            .collect::<std::result::Result<_, String>>()
            .map_err(BenchError::Usage)?;
        let first = &data.prompts[0];
        let warmup = body_opts
            .prepare(first, first.output_len.min(32))
            .map_err(BenchError::Usage)?;
        eprintln!(
            "#Input tokens: {}\n#Output tokens: {}",
            prepared.iter().map(|p| p.prompt_len).sum::<usize>(),
            prepared.iter().map(|p| p.output_len).sum::<usize>()
        );
        let requests = Arc::new(prepared);
        for p in &points {
            let arrivals = Arrivals {
                rate: p.rate,
                burstiness: args.burstiness,
                ramp: args.ramp_up_strategy.map(|s| {
                    (
                        s,
                        args.ramp_up_start_rps.unwrap_or(1.0),
                        args.ramp_up_end_rps.unwrap_or(1.0),
                    )
                }),
            };
            let label = point_label(&args, p, scenario);
            eprintln!(
                "Benchmarking {} requests against {base_url} ({}, {}, rate {}, max concurrency {})",
                requests.len(),
                args.backend.name(),
                scenario.map_or(dataset_name.name().to_string(), Scenario::label),
                arrivals.label(),
                p.max_concurrency
                    .map_or("not set".into(), |c| c.to_string())
            );
            let res =
                run_point(&ctx, requests.clone(), &warmup, p.max_concurrency, arrivals).await?;
            let scheduled = arrivals.ramp.is_some() || arrivals.rate.is_finite();
            let mut warnings = res.beyond.client_warnings(Some(&res.cpu), scheduled);
            if res.summary.completed == 0 {
                warnings.push("every request failed: the figures above describe nothing".into());
            }
            let info = RunInfo {
                backend: args.backend.name().to_string(),
                dataset_name: dataset_name.name().to_string(),
                request_rate: p.rate,
                rate_label: arrivals.label(),
                burstiness: args.burstiness,
                max_concurrency: p.max_concurrency,
                sharegpt_output_len: args.sharegpt_output_len,
                random_input_len: input_len,
                random_output_len: output_len,
                random_range_ratio: args.random_range_ratio,
                tag: args.tag.clone(),
                traffic_scenario: scenario.map(Scenario::label),
                server_info: res.server_info.clone(),
                accept_length: res.accept_length,
                cpu: Some(res.cpu),
                profile: res.profile.clone(),
                warnings,
            };
            let rep = RunReport {
                info: &info,
                summary: &res.summary,
                beyond: &res.beyond,
                retokenized: res.retokenized.as_deref(),
                records: &res.records,
                native: api == args::Api::Native,
            };
            println!("{}", report::table(&rep));
            report::append_jsonl(&output_file, &report::record(&rep, args.output_details))
                .map_err(|e| BenchError::io(output_file.display(), e))?;
            if let Some(r) = res.records.iter().find(|r| !r.ok) {
                eprintln!(
                    "{} of {} requests failed; first error: {}",
                    res.summary.failed,
                    res.records.len(),
                    r.error
                );
            }
            outcome.runs += 1;
            outcome.requests += res.records.len();
            outcome.failed += res.summary.failed;
            rows.push(RunRow::new(label.clone(), &res.summary, &res.beyond));
            if args.output_csv.is_some() {
                csv_runs.push((label, res.records));
            }
        }
    }
    eprintln!("Results appended to {}", output_file.display());
    if sweeping || rows.len() > 1 {
        println!("{}", summary::table(&rows));
    }
    if let Some(p) = &args.summary_csv {
        summary::write_summary_csv(p, &rows).map_err(|e| BenchError::io(p.display(), e))?;
    }
    if let Some(p) = &args.output_csv {
        summary::write_request_csv(p, &csv_runs).map_err(|e| BenchError::io(p.display(), e))?;
    }
    if let Some(s) = server {
        s.shutdown()
            .await
            .map_err(|e| BenchError::Server(e.to_string()))?;
    }
    Ok(outcome)
}
