//! `loupe watch URL...`: every interval, each server's `/metrics` as per-DP-rank rows
//! (running, queued, KV usage, throughput, cache hit rate, preemptions) and the imbalance
//! across ranks and servers, in a live ratatui view (`view.rs`), as plain lines when stdout
//! is no terminal (or `--no-view`), or as one table (`--once`). Every sample is appended to
//! `--jsonl`. `--trigger` rules start the engine's profile when they fire (`capture.rs`).
//! The sampling, rates and rules are loupe-client's `watch` module; this module schedules,
//! prints and writes.
//!
//! Exit codes: 0 when the watch ran (a server that failed some scrapes is shown, not fatal);
//! 1 when no server ever answered, or with `--once` when any server did not; 2 for bad
//! flags (a rule that does not parse, an interval that is not positive).

mod capture;
pub mod view;

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use loupe_client::watch::{Fire, Rule, ServerPoint, Snapshot, Watcher, server_imbalance};
use loupe_client::{Engine, Server};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use capture::{Capture, CaptureResult};
use view::{ServerView, ViewState};

#[derive(clap::Args, Debug, Clone)]
pub struct WatchArgs {
    /// The servers (SGLang, loupe, vLLM, trtllm-serve) whose /metrics to watch.
    #[arg(required = true, num_args = 1..)]
    pub urls: Vec<String>,
    /// Seconds between scrapes.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Scrape twice, `--interval` apart (rates need two), print one table and exit.
    #[arg(long)]
    pub once: bool,
    /// Append every sample (and every trigger and capture) to this JSONL file.
    #[arg(long)]
    pub jsonl: Option<PathBuf>,
    /// A rule that starts a profile: `METRIC OP VALUE [for DURATION]`; metrics
    /// dp_imbalance, server_imbalance, queue, running, kv_usage, throughput,
    /// throughput_drop, ttft (e.g. 'dp_imbalance > 1.5 for 10s', 'kv_usage > 90%').
    #[arg(long)]
    pub trigger: Vec<String>,
    /// Steps each triggered capture records.
    #[arg(long, default_value_t = 20)]
    pub profile_num_steps: u64,
    /// Where triggered traces go (SGLang: sent as output_dir; vLLM: its torch_profiler_dir,
    /// to find the files).
    #[arg(long)]
    pub profile_output_dir: Option<String>,
    /// Seconds after a capture fired before a rule may fire again.
    #[arg(long, default_value_t = 300.0)]
    pub cooldown: f64,
    /// Seconds at the start whose mean throughput is throughput_drop's baseline.
    #[arg(long, default_value_t = 30.0)]
    pub baseline: f64,
    /// Seconds a capture may take to write its files.
    #[arg(long, default_value_t = 600.0)]
    pub profile_wait_timeout: f64,
    /// Stop after this many rounds of scrapes (default: until q or Ctrl-C).
    #[arg(long)]
    pub samples: Option<u64>,
    /// Plain lines instead of the live view.
    #[arg(long)]
    pub no_view: bool,
    /// The servers' engine (default: asked from each server).
    #[arg(long, value_parser = crate::engine::parse)]
    pub engine: Option<Engine>,
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

/// One watched server.
struct Target {
    server: Server,
    engine: Option<Engine>,
    prev: Option<(Snapshot, f64)>,
    answered: bool,
}

async fn scrape(server: &Server, engine: Engine) -> Result<Snapshot, String> {
    if engine == Engine::TensorrtLlm {
        let v = server
            .get_json("/metrics")
            .await
            .map_err(|e| e.to_string())?;
        return Snapshot::from_trtllm_json(&v).ok_or_else(|| {
            format!(
                "{}: not trtllm-serve's iteration statistics",
                server.url("/metrics")
            )
        });
    }
    server
        .metrics()
        .await
        .map(|s| Snapshot::from_samples(engine, &s))
        .map_err(|e| e.to_string())
}

/// Appends lines to `--jsonl` (opened once; a line is written whole).
struct Jsonl(Option<std::fs::File>);

impl Jsonl {
    fn open(path: Option<&PathBuf>) -> anyhow::Result<Jsonl> {
        Ok(Jsonl(match path {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| anyhow::anyhow!("--jsonl {}: {e}", p.display()))?,
            ),
            None => None,
        }))
    }
    fn write(&mut self, v: &Value) {
        if let Some(f) = &mut self.0 {
            let mut line = v.to_string();
            line.push('\n');
            if let Err(e) = f.write_all(line.as_bytes()) {
                eprintln!("warning: --jsonl: {e}; no longer writing it");
                self.0 = None;
            }
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The line a sample is in the JSONL file.
fn sample_line(url: &str, engine: Option<Engine>, r: &Result<ServerPoint, String>) -> Value {
    let mut v = json!({"time": unix_now(), "url": url, "engine": engine.map(Engine::name)});
    match r {
        Ok(p) => {
            let point = serde_json::to_value(p).expect("plain fields");
            for (k, x) in point.as_object().expect("a struct").clone() {
                v[k] = x;
            }
        }
        Err(e) => v["error"] = json!(e),
    }
    v
}

/// One round: every server scraped at once, points computed.
async fn round(targets: &mut [Target], t: f64) -> Vec<Result<ServerPoint, String>> {
    let mut tasks = Vec::new();
    for tg in targets.iter() {
        let server = tg.server.clone();
        let engine = tg.engine;
        tasks.push(tokio::spawn(async move {
            let engine = match engine {
                Some(e) => e,
                None => match server.detect_engine().await {
                    Some(d) => d.engine,
                    // Say why: the scrape's own error (unreachable, not Prometheus text), or
                    // that it answers without a name loupe knows.
                    None => {
                        let why = match server.metrics().await {
                            Err(e) => e.to_string(),
                            Ok(_) => format!(
                                "{}: no answer names its engine; pass --engine",
                                server.base()
                            ),
                        };
                        return (None, Err(why));
                    }
                },
            };
            (Some(engine), scrape(&server, engine).await)
        }));
    }
    let mut out = Vec::new();
    for (tg, task) in targets.iter_mut().zip(tasks) {
        let (engine, snap) = task
            .await
            .unwrap_or_else(|e| (None, Err(format!("scrape task: {e}"))));
        if tg.engine.is_none() {
            tg.engine = engine;
        }
        out.push(snap.map(|s| {
            tg.answered = true;
            let prev = tg.prev.take();
            let point = match &prev {
                Some((p, pt)) => ServerPoint::between(t, Some(p), &s, t - pt),
                None => ServerPoint::between(t, None, &s, 0.0),
            };
            tg.prev = Some((s, t));
            point
        }));
    }
    out
}

fn bad_flag(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// `loupe watch ...`.
pub async fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    if !(args.interval > 0.0 && args.interval.is_finite()) {
        return Ok(bad_flag("--interval must be a positive number of seconds"));
    }
    let rules: Vec<Rule> = match args.trigger.iter().map(|r| r.parse()).collect() {
        Ok(r) => r,
        Err(e) => return Ok(bad_flag(e)),
    };
    if args.once && !rules.is_empty() {
        return Ok(bad_flag(
            "--once prints one table; --trigger needs a running watch",
        ));
    }
    let headers = loupe_client::headers(args.api_key.as_deref(), &[])?;
    let client = loupe_client::http_client()?;
    let mut targets: Vec<Target> = args
        .urls
        .iter()
        .map(|u| Target {
            server: Server::with_client(client.clone(), u, headers.clone()),
            engine: args.engine,
            prev: None,
            answered: false,
        })
        .collect();
    let mut jsonl = Jsonl::open(args.jsonl.as_ref())?;
    let interval = Duration::from_secs_f64(args.interval);
    let t0 = Instant::now();
    if args.once {
        let first = round(&mut targets, 0.0).await;
        tokio::time::sleep(interval).await;
        let second = round(&mut targets, t0.elapsed().as_secs_f64()).await;
        let mut ok = true;
        for (tg, r) in targets
            .iter()
            .zip(first.iter().chain(&second).skip(first.len()))
        {
            jsonl.write(&sample_line(tg.server.base(), tg.engine, r));
            ok &= r.is_ok();
        }
        print!("{}", view::once_table(&targets_view(&targets, &second)));
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }

    let live = !args.no_view && std::io::stdout().is_terminal();
    let mut watcher = Watcher::new(rules, targets.len(), args.cooldown, args.baseline);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<CaptureResult>();
    let mut running: Option<Capture> = None;
    let mut state = ViewState::new(args.urls.len());
    let mut terminal = if live {
        Some(view::Live::start()?)
    } else {
        None
    };
    let mut rounds = 0u64;
    let mut next = tokio::time::Instant::now();
    let result: anyhow::Result<()> = async {
        loop {
            let t = t0.elapsed().as_secs_f64();
            let points = round(&mut targets, t).await;
            rounds += 1;
            let ok_points: Vec<&ServerPoint> =
                points.iter().filter_map(|p| p.as_ref().ok()).collect();
            let across = server_imbalance(&ok_points);
            for (i, (tg, r)) in targets.iter().zip(&points).enumerate() {
                jsonl.write(&sample_line(tg.server.base(), tg.engine, r));
                state.servers[i].update(tg.server.base(), tg.engine, r);
                if !live {
                    println!("{}", view::plain_line(t, tg.server.base(), r));
                }
            }
            state.server_imbalance = across;
            while let Ok(done) = done_rx.try_recv() {
                watcher.capture_finished();
                running = None;
                let line = done.json();
                state.events.push_back(done.summary());
                if !live {
                    println!("{}", done.summary());
                }
                jsonl.write(&line);
            }
            let fires: Vec<Fire> = points
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.as_ref().ok().and_then(|p| watcher.observe(i, p, across)))
                .collect();
            for f in fires {
                let tg = &targets[f.server];
                let engine = tg.engine.unwrap_or(Engine::Sglang);
                let line = json!({"time": unix_now(), "t": f.t, "event": "trigger", "rule": f.text,
                    "value": f.value, "url": tg.server.base(), "engine": engine.name()});
                jsonl.write(&line);
                let msg = format!(
                    "t={:.1}s {}: rule '{}' fired ({:.3}); capturing {} steps",
                    f.t,
                    tg.server.base(),
                    f.text,
                    f.value,
                    args.profile_num_steps
                );
                if !live {
                    println!("{msg}");
                }
                state.events.push_back(msg);
                running = Some(capture::start(
                    tg.server.clone(),
                    engine,
                    &args,
                    f,
                    done_tx.clone(),
                ));
            }
            while state.events.len() > 8 {
                state.events.pop_front();
            }
            state.capturing = watcher.capturing();
            if let Some(term) = &mut terminal {
                term.draw(&state)?;
            }
            if args.samples.is_some_and(|n| rounds >= n) {
                break;
            }
            next += interval;
            let quit = match &mut terminal {
                Some(term) => term.wait_for_quit(next).await,
                None => tokio::select! {
                    _ = tokio::time::sleep_until(next) => false,
                    _ = tokio::signal::ctrl_c() => true,
                },
            };
            if quit {
                break;
            }
        }
        Ok(())
    }
    .await;
    if let Some(term) = terminal.take() {
        term.stop();
    }
    // A capture still running when the watch ends: let it finish (its files are the point
    // of the watch), or stop it at once on a second Ctrl-C.
    if let Some(c) = running.take() {
        eprintln!("waiting for the capture to be written (Ctrl-C to stop it now)...");
        let done = tokio::select! {
            d = done_rx.recv() => d,
            _ = tokio::signal::ctrl_c() => {
                c.abort().await;
                None
            }
        };
        if let Some(done) = done {
            println!("{}", done.summary());
            jsonl.write(&done.json());
        }
    }
    result?;
    if !targets.iter().any(|t| t.answered) {
        eprintln!("error: no server answered /metrics");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn targets_view(targets: &[Target], points: &[Result<ServerPoint, String>]) -> Vec<ServerView> {
    targets
        .iter()
        .zip(points)
        .map(|(tg, p)| {
            let mut v = ServerView::default();
            v.update(tg.server.base(), tg.engine, p);
            v
        })
        .collect()
}

/// History kept for the sparklines.
const HISTORY: usize = 120;

fn push(h: &mut VecDeque<u64>, v: f64) {
    h.push_back(v.max(0.0).round() as u64);
    while h.len() > HISTORY {
        h.pop_front();
    }
}
