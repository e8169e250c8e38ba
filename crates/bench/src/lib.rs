//! `loupe bench`: a load generator with SGLang bench_serving's flags, metric definitions and
//! JSONL keys. One pooled HTTP client, one task per request, timestamps taken as bytes arrive.
//! Without `--base-url` it starts the reference server in-process and benchmarks that.

pub mod client;
pub mod metrics;
pub mod report;
pub mod sse;
pub mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::client::{Backend, RequestRecord, Target};
use crate::workload::Prompt;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "sglang")]
    pub backend: Backend,
    /// Server URL; without it (and without --host/--port) the embedded server is started.
    #[arg(long)]
    pub base_url: Option<String>,
    #[arg(long)]
    pub host: Option<String>,
    #[arg(long)]
    pub port: Option<u16>,
    /// Model name sent to OpenAI routes (default: the first of /v1/models).
    #[arg(long)]
    pub model: Option<String>,
    /// Only random-ids for now: token ids `(offset + i + j) % vocab`.
    #[arg(long, default_value = "random-ids")]
    pub dataset_name: String,
    /// Default 1000 against a server, 200 against the embedded one.
    #[arg(long)]
    pub num_prompts: Option<usize>,
    /// Default 1024 against a server, 256 against the embedded one.
    #[arg(long)]
    pub random_input_len: Option<usize>,
    /// Default 1024 against a server, 128 against the embedded one.
    #[arg(long)]
    pub random_output_len: Option<usize>,
    /// Lengths are uniform on [max(L*r, 1), L] (SGLang's convention).
    #[arg(long, default_value_t = 0.0)]
    pub random_range_ratio: f64,
    /// Requests per second (Poisson arrivals); inf sends everything at once.
    #[arg(long, default_value_t = f64::INFINITY)]
    pub request_rate: f64,
    #[arg(long)]
    pub max_concurrency: Option<usize>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Let the model stop at EOS (bench_serving ignores EOS by default).
    #[arg(long)]
    pub disable_ignore_eos: bool,
    #[arg(long, default_value_t = 1)]
    pub warmup_requests: usize,
    /// Append the JSONL record here (default: bench_serving's auto name).
    #[arg(long)]
    pub output_file: Option<PathBuf>,
    #[arg(long)]
    pub tag: Option<String>,
    /// Bearer key (default: $OPENAI_API_KEY).
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    #[arg(long, default_value_t = 60.0)]
    pub ready_check_timeout_sec: f64,
    /// Model of the embedded server (a preset or a model directory).
    #[arg(long, default_value = "tiny")]
    pub embedded_model: String,
}

fn http_client(concurrency: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency.max(64))
        .tcp_nodelay(true)
        .no_proxy()
        .timeout(Duration::from_secs(6 * 3600))
        .build()
        .context("cannot build the HTTP client")
}

async fn get_json(client: &reqwest::Client, url: &str, key: Option<&str>) -> anyhow::Result<Value> {
    let mut req = client.get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        bail!("GET {url}: HTTP {status}");
    }
    resp.json()
        .await
        .with_context(|| format!("GET {url}: the body is not JSON"))
}

/// Poll /v1/models until the server answers (bench_serving's readiness check).
async fn wait_ready(
    client: &reqwest::Client,
    base: &str,
    key: Option<&str>,
    timeout: f64,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    let url = format!("{base}/v1/models");
    loop {
        match get_json(client, &url, key).await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!(
                    "the server at {base} was not ready within {timeout} s"
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Run the workload; records come back in prompt order.
async fn drive(
    target: Arc<Target>,
    prompts: Vec<Prompt>,
    offsets: Vec<f64>,
    max_concurrency: Option<usize>,
) -> (Vec<RequestRecord>, f64) {
    let sem = max_concurrency.map(|c| Arc::new(tokio::sync::Semaphore::new(c)));
    let t0 = Instant::now();
    let tasks: Vec<_> = prompts
        .into_iter()
        .zip(offsets)
        .map(|(p, at)| {
            let target = target.clone();
            let sem = sem.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until((t0 + Duration::from_secs_f64(at)).into()).await;
                let _permit = match &sem {
                    Some(s) => Some(s.clone().acquire_owned().await.expect("semaphore open")),
                    None => None,
                };
                target.run(&p, t0, at).await
            })
        })
        .collect();
    let mut records = Vec::with_capacity(tasks.len());
    for t in tasks {
        records.push(t.await.unwrap_or_else(|e| RequestRecord {
            error: format!("request task failed: {e}"),
            ..Default::default()
        }));
    }
    (records, t0.elapsed().as_secs_f64())
}

/// `loupe bench` end to end. The exit code is non-zero when any request failed.
pub async fn run_cli(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.dataset_name != "random-ids" {
        bail!(
            "--dataset-name {} is not implemented yet; use random-ids",
            args.dataset_name
        );
    }
    if args.request_rate.is_nan() || args.request_rate <= 0.0 {
        bail!(
            "--request-rate must be positive (or inf), got {}",
            args.request_rate
        );
    }
    if args.max_concurrency == Some(0) {
        bail!("--max-concurrency must be at least 1");
    }
    let embedded = args.base_url.is_none() && args.host.is_none() && args.port.is_none();
    let mut server = None;
    let base_url = if embedded {
        let serve = loupe_server::ServeArgs {
            model_path: args.embedded_model.clone(),
            port: 0,
            ..Default::default()
        };
        let s = loupe_server::spawn(serve)
            .await
            .map_err(anyhow::Error::msg)?;
        eprintln!(
            "No --base-url given: started the embedded reference server ({}) at {}",
            args.embedded_model,
            s.url()
        );
        let url = s.url();
        server = Some(s);
        url
    } else if let Some(u) = &args.base_url {
        u.trim_end_matches('/').to_string()
    } else {
        format!(
            "http://{}:{}",
            args.host.as_deref().unwrap_or("127.0.0.1"),
            args.port.unwrap_or(30000)
        )
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
    let key = args.api_key.as_deref();
    let client = http_client(args.max_concurrency.unwrap_or(num))?;
    let models = wait_ready(&client, &base_url, key, args.ready_check_timeout_sec).await?;
    let model = match &args.model {
        Some(m) => m.clone(),
        None => models["data"][0]["id"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("{base_url}/v1/models lists no model; pass --model"))?,
    };
    let model_info = get_json(&client, &format!("{base_url}/model_info"), key)
        .await
        .ok();
    let vocab = model_info
        .as_ref()
        .and_then(|m| {
            m["vocab_size"]
                .as_u64()
                .or(m["hf_config"]["vocab_size"].as_u64())
        })
        .with_context(|| {
            format!("{base_url}/model_info does not give the vocabulary size that random-ids needs")
        })? as usize;

    let prompts = workload::random_ids(
        num,
        input_len,
        output_len,
        args.random_range_ratio,
        vocab,
        args.seed,
    );
    let target = Arc::new(Target {
        client,
        base_url: base_url.clone(),
        backend: args.backend,
        model,
        api_key: args.api_key.clone(),
        ignore_eos: !args.disable_ignore_eos,
        temperature: args.temperature,
    });
    // bench_serving's warmup: the first prompt again, with at most 32 output tokens.
    if let Some(first) = prompts.first() {
        let mut p = first.clone();
        p.output_len = p.output_len.min(32);
        for _ in 0..args.warmup_requests {
            let r = target.run(&p, Instant::now(), 0.0).await;
            if !r.ok {
                bail!("warmup request failed: {}", r.error);
            }
        }
    }
    eprintln!(
        "Benchmarking {num} requests ({} backend, random-ids input <= {input_len}, output <= {output_len}, rate {}, concurrency {})",
        args.backend.name(),
        report::rate(args.request_rate),
        args.max_concurrency
            .map_or("unbounded".into(), |c| c.to_string())
    );
    let offsets = workload::arrival_offsets(num, args.request_rate, args.seed);
    let (records, duration) = drive(target.clone(), prompts, offsets, args.max_concurrency).await;
    let server_info = get_json(&target.client, &format!("{base_url}/server_info"), key)
        .await
        .unwrap_or(Value::Null);
    let summary = metrics::summarize(&records, duration);
    let info = report::RunInfo {
        backend: args.backend.name(),
        dataset_name: &args.dataset_name,
        request_rate: args.request_rate,
        max_concurrency: args.max_concurrency,
        random_input_len: input_len,
        random_output_len: output_len,
        random_range_ratio: args.random_range_ratio,
        tag: args.tag.as_deref(),
        server_info,
    };
    println!("{}", report::table(&info, &summary));
    let out = args.output_file.clone().unwrap_or_else(|| {
        let mmdd = report::month_day();
        PathBuf::from(format!(
            "{}_{mmdd}_{num}_{input_len}_{output_len}.jsonl",
            args.backend.name()
        ))
    });
    report::append_jsonl(&out, &report::record(&info, &summary))
        .with_context(|| format!("cannot append to {}", out.display()))?;
    eprintln!("Results appended to {}", out.display());
    if let Some(s) = server {
        s.shutdown().await.context("embedded server shutdown")?;
    }
    let failed: Vec<&RequestRecord> = records.iter().filter(|r| !r.ok).collect();
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} of {} requests failed; first error: {}",
            failed.len(),
            records.len(),
            failed[0].error
        );
        Ok(ExitCode::from(1))
    }
}
