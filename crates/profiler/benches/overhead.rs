//! What profiling costs serving, measured on the engine itself (no HTTP in the way):
//!
//! 1. throughput with no observer attached (no hooks), with the profiler attached but idle,
//!    and with the profiler recording CPU+GPU activities, interleaved over several rounds;
//! 2. the largest inter-token gap clients see while a 100-step capture exports, against the
//!    median gap before the capture.
//!
//!     cargo bench -p loupe-profiler --bench overhead -- [--model tiny] [--rounds 5]
//!
//! Prints a JSON object (and a summary on stderr).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use loupe_engine::observer::StepObserver;
use loupe_engine::{Engine, EngineArgs, GenerateRequest, SamplingParams};
use loupe_profiler::{ProfileState, Profiler, ProfilerConfig, StartRequest};
use serde_json::json;

struct Opts {
    model: String,
    rounds: usize,
    requests: usize,
    tokens: usize,
    gap_tokens: usize,
}

fn opts() -> Opts {
    let mut o = Opts {
        model: "tiny".into(),
        rounds: 5,
        requests: 64,
        tokens: 128,
        gap_tokens: 1200,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--model" => o.model = v,
            "--rounds" => o.rounds = v.parse().expect("--rounds"),
            "--requests" => o.requests = v.parse().expect("--requests"),
            "--tokens" => o.tokens = v.parse().expect("--tokens"),
            "--gap-tokens" => o.gap_tokens = v.parse().expect("--gap-tokens"),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

fn engine(model: &str, observer: Option<Arc<dyn loupe_engine::observer::StepObserver>>) -> Engine {
    Engine::start(EngineArgs {
        model_path: model.into(),
        observer,
        ..Default::default()
    })
    .expect("engine starts")
}

fn profiler() -> Profiler {
    Profiler::new(ProfilerConfig {
        tp_size: 1,
        dp_size: 1,
        threads_per_rank: 2,
        model_name: "bench".into(),
        output_root: None,
    })
}

/// Wraps the profiler to time the work it adds to the scheduler thread, and counts the ops
/// the ranks timed for it (each costs two clock reads on a rank thread).
struct Timed {
    inner: Profiler,
    ns: AtomicU64,
    ops: AtomicU64,
}

impl StepObserver for Timed {
    fn step_begin(&self, info: &loupe_engine::observer::StepInfo) -> bool {
        let t = Instant::now();
        let r = self.inner.step_begin(info);
        self.ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }
    fn step_end(&self, report: &loupe_engine::observer::StepReport<'_>) {
        let t = Instant::now();
        self.inner.step_end(report);
        self.ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let ops: usize = report.rank_ops.iter().map(Vec::len).sum();
        self.ops.fetch_add(ops as u64, Ordering::Relaxed);
    }
}

/// Cost of one `Instant::now()` on this machine.
fn clock_read_ns() -> f64 {
    let n = 1_000_000;
    let t = Instant::now();
    let mut last = t;
    for _ in 0..n {
        last = std::hint::black_box(Instant::now());
    }
    (last - t).as_nanos() as f64 / n as f64
}

fn params(tokens: usize) -> SamplingParams {
    SamplingParams {
        max_new_tokens: tokens,
        temperature: 0.0,
        ignore_eos: true,
        ..Default::default()
    }
}

/// Submit `n` streaming requests; per request, the arrival time of every output.
async fn drive(
    e: &Engine,
    n: usize,
    tokens: usize,
    seed: usize,
    seen: Arc<AtomicUsize>,
) -> Vec<Vec<Instant>> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        e.submit(GenerateRequest {
            rid: format!("r{seed}-{i}"),
            input_ids: (0..32)
                .map(|j| ((i * 7 + j + seed) % 250 + 3) as u32)
                .collect(),
            params: params(tokens),
            stream: true,
            stream_interval: None,
            log_metrics: true,
            output: tx,
        })
        .expect("submit");
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            while let Some(o) = rx.recv().await {
                times.push(Instant::now());
                seen.fetch_add(1, Ordering::Relaxed);
                if o.finish.is_some() {
                    break;
                }
            }
            times
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("collector"));
    }
    out
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let o = opts();
    let dir = std::env::temp_dir().join(format!("loupe-profile-bench-{}", std::process::id()));
    let plain = engine(&o.model, None);
    let idle_profiler = profiler();
    let idle = engine(&o.model, Some(Arc::new(idle_profiler.clone())));
    let rec_profiler = profiler();
    let timed = Arc::new(Timed {
        inner: rec_profiler.clone(),
        ns: AtomicU64::new(0),
        ops: AtomicU64::new(0),
    });
    let recording = engine(&o.model, Some(timed.clone()));
    let mut recording_secs = 0.0;
    let total_tokens = (o.requests * o.tokens) as f64;
    let mut tput = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..o.rounds {
        // Rotate the order every round so warm-up and drift do not favour one variant.
        let engines = [&plain, &idle, &recording];
        for k in (0..3).map(|i| (i + round) % 3) {
            let e = engines[k];
            if k == 2 {
                let body = json!({"output_dir": dir, "activities": ["CPU", "GPU"]}).to_string();
                rec_profiler
                    .start(StartRequest::parse(body.as_bytes()).expect("request"))
                    .expect("start");
            }
            let t0 = Instant::now();
            drive(e, o.requests, o.tokens, round * 3 + k, Arc::default()).await;
            tput[k].push(total_tokens / t0.elapsed().as_secs_f64());
            if k == 2 {
                recording_secs += t0.elapsed().as_secs_f64();
                rec_profiler.stop().await.expect("stop");
            }
        }
    }
    let [a, b, c] = tput.map(|mut v| median(&mut v));
    // The profiler's own work on the serving path while recording: its observer calls on the
    // scheduler thread plus two clock reads per timed op on the rank threads.
    let added_s = timed.ns.load(Ordering::Relaxed) as f64 / 1e9
        + timed.ops.load(Ordering::Relaxed) as f64 * 2.0 * clock_read_ns() / 1e9;
    let added = added_s / recording_secs;
    eprintln!(
        "profiler work while recording: {:.1} ms over {recording_secs:.1} s of serving ({:.3}% of the time)",
        added_s * 1e3,
        added * 100.0
    );
    eprintln!(
        "throughput (median of {} rounds): no hooks {a:.0} tok/s, profiler idle {b:.0} ({:+.2}%), recording CPU+GPU {c:.0} ({:+.2}%)",
        o.rounds,
        (b / a - 1.0) * 100.0,
        (c / a - 1.0) * 100.0
    );

    // Inter-token gaps while a 100-step capture is exported.
    let e = &recording;
    let p = &rec_profiler;
    let seen = Arc::new(AtomicUsize::new(0));
    let load = drive(e, 32, o.gap_tokens, 999, seen.clone());
    let monitor = async {
        // Start once every request is decoding and has produced some gaps to compare with.
        while seen.load(Ordering::Relaxed) < 32 * 40 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let body =
            json!({"output_dir": dir, "activities": ["CPU", "GPU"], "num_steps": 100}).to_string();
        let started = Instant::now();
        p.start(StartRequest::parse(body.as_bytes()).expect("request"))
            .expect("start");
        let mut capture_done = None;
        loop {
            let st = p.status();
            if capture_done.is_none() && st.state == ProfileState::Exporting {
                capture_done = Some(Instant::now());
            }
            if st.state == ProfileState::Idle {
                return (
                    started,
                    capture_done.unwrap_or(started),
                    Instant::now(),
                    st.files.len(),
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let (times, (started, export_from, export_to, files)) = tokio::join!(load, monitor);
    // The export window, and a window of the same length just before the capture started.
    let export_len = export_to - export_from;
    let quiet_from = started - export_len;
    let mut before = Vec::new();
    let (mut quiet_max, mut during_max): (f64, f64) = (0.0, 0.0);
    let mut during_n = 0;
    for t in &times {
        for w in t.windows(2) {
            let gap = (w[1] - w[0]).as_secs_f64() * 1e3;
            if w[1] < started {
                before.push(gap);
                if w[1] >= quiet_from {
                    quiet_max = quiet_max.max(gap);
                }
            } else if w[1] >= export_from && w[0] <= export_to {
                during_max = during_max.max(gap);
                during_n += 1;
            }
        }
    }
    let normal = median(&mut before);
    eprintln!(
        "export of a 100-step capture ({files} files) took {:.0} ms; largest client gap meanwhile {during_max:.2} ms \
         ({during_n} gaps); same-length window before the capture: largest {quiet_max:.2} ms ({:.2}x); median gap {normal:.2} ms ({:.2}x)",
        export_len.as_secs_f64() * 1e3,
        during_max / quiet_max,
        during_max / normal
    );
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{}",
        json!({
            "model": o.model, "rounds": o.rounds, "requests": o.requests, "tokens": o.tokens,
            "tokens_per_s": {"no_hooks": a, "profiler_idle": b, "recording_cpu_gpu": c},
            "loss_idle": 1.0 - b / a, "loss_recording": 1.0 - c / a,
            "recording_work_fraction": added,
            "export": {
                "ms": export_len.as_secs_f64() * 1e3, "files": files,
                "max_gap_ms": during_max, "gaps_observed": during_n,
                "max_gap_same_window_before_ms": quiet_max, "median_gap_before_ms": normal,
                "ratio_to_window_before": during_max / quiet_max, "ratio_to_median": during_max / normal,
            },
        })
    );
}
