//! `loupe run` end to end through the binary: real `loupe serve` children, real profiles,
//! real `loupe bench` children; and a server that never becomes healthy.

use std::path::Path;
use std::process::Command;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(job: &str, dir: &Path) -> std::process::Output {
    let path = dir.join("job.yaml");
    std::fs::write(&path, job).unwrap();
    Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "run",
            path.to_str().unwrap(),
            "--log-root",
            dir.join("logs").to_str().unwrap(),
        ])
        .args(["--base-port", &free_port().to_string()])
        .output()
        .unwrap()
}

fn only_dir(p: &Path) -> std::path::PathBuf {
    let mut entries: Vec<_> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.pop().unwrap()
}

#[test]
fn prefill_and_decode_phases_produce_traces_and_bench_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        "name: pd\nmodel:\n  path: tiny\nresources:\n  prefill_workers: 1\n  decode_workers: 1\n\
         profiling:\n  type: torch\n  isl: 32\n  osl: 24\n  concurrency: 4\n\
         \x20 prefill:\n    start_step: 3\n    stop_step: 6\n  decode:\n    start_step: 8\n    stop_step: 14\n\
         health_check:\n  max_attempts: 100\n  interval_seconds: 0.1\n",
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let run_dir = only_dir(&dir.path().join("logs"));
    for phase in ["prefill", "decode"] {
        let traces: Vec<_> = std::fs::read_dir(run_dir.join("profiles").join(phase))
            .unwrap()
            .collect();
        assert_eq!(traces.len(), 1, "{phase}: one trace per rank");
        let bench = run_dir.join(format!("profile_{phase}_isl_32_osl_24/concurrency_4.json"));
        let record: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(&bench)
                .unwrap()
                .lines()
                .last()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(record["completed"], 128, "{phase}");
        // Every request's timings beside the record, for summary.html's over-time charts.
        let timings = bench.with_extension("requests.jsonl");
        let runs = loupe_bench::timings::read(&timings).unwrap();
        assert_eq!(runs[0].records.len(), 128, "{phase}");
        assert!(
            run_dir
                .join(format!("{}_{phase}_w0.out", hostname_of(&run_dir, phase)))
                .is_file()
        );
    }
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    assert!(
        summary.contains("phase prefill") && summary.contains("phase decode"),
        "{summary}"
    );
    let page = std::fs::read_to_string(run_dir.join("summary.html")).unwrap();
    assert!(page.contains("Phase prefill: profile") && page.contains("Phase decode: profile"));
    // Each phase's benchmark drawn request by request, as `loupe bench --html` draws a run.
    assert!(page.contains("Phase prefill: benchmark") && page.contains("Phase decode: benchmark"));
    assert_eq!(
        page.matches("<b>Latency of each request by when it was sent</b>")
            .count(),
        2
    );
    assert!(
        !page.contains("no request timings"),
        "every phase has its timings"
    );
    // `loupe report` on the run directory draws the same page.
    let again = dir.path().join("again.html");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loupe"))
        .arg("report")
        .arg(&run_dir)
        .arg("-o")
        .arg(&again)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rebuilt = std::fs::read_to_string(&again).unwrap();
    let at = rebuilt
        .bytes()
        .zip(page.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(rebuilt.len().min(page.len()));
    assert!(
        rebuilt == page,
        "the rebuilt summary.html differs at byte {at}: {:?} vs {:?}",
        &rebuilt[at.saturating_sub(200)..(at + 200).min(rebuilt.len())],
        &page[at.saturating_sub(200)..(at + 200).min(page.len())]
    );
    // Each phase's traces summarised by loupe trace: the timeline and the engine's ops.
    assert_eq!(
        summary.matches("where the time goes").count(),
        2,
        "{summary}"
    );
    assert_eq!(summary.matches("computation_time").count(), 2, "{summary}");
    assert!(
        summary.contains("qkv_proj") && summary.contains("lm_head"),
        "{summary}"
    );
    let log = std::fs::read_to_string(run_dir.join("run.log")).unwrap();
    assert!(
        log.contains("serve --model-path tiny") && log.contains("start_profile"),
        "{log}"
    );
    assert!(log.contains("stopping the workers"));
}

/// The host part of the worker log names (`<host>_<mode>_w<i>.out`).
fn hostname_of(run_dir: &Path, mode: &str) -> String {
    let suffix = format!("_{mode}_w0.out");
    std::fs::read_dir(run_dir)
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(&suffix).map(str::to_string))
        })
        .next()
        .expect("worker log")
}

#[test]
fn a_server_that_never_becomes_healthy_fails_the_job_and_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("alive");
    // A "server" that never listens, and proves it is alive by touching a file.
    let job = format!(
        "name: dead\nmodel:\n  path: tiny\nresources:\n  agg_workers: 1\nbackend:\n  type: command\n  \
         command: \"while true; do touch {m}; sleep 0.05; done\"\nhealth_check:\n  max_attempts: 5\n  interval_seconds: 0.1\n",
        m = marker.display()
    );
    let out = run(&job, dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("did not become healthy") && stderr.contains("max_attempts"),
        "{stderr}"
    );
    // No orphan: once loupe run has returned, nothing touches the file any more.
    std::fs::remove_file(&marker).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!marker.exists(), "the worker outlived the job");
}

#[test]
fn a_worker_that_exits_is_reported_with_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        "name: bad\nmodel:\n  path: no-such-model\nresources:\n  agg_workers: 1\nhealth_check:\n  max_attempts: 100\n  interval_seconds: 0.1\n",
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("exited") && stderr.contains("no-such-model"),
        "{stderr}"
    );
}

#[test]
fn dry_run_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.yaml");
    std::fs::write(&path, "name: d\nmodel:\n  path: tiny\nresources:\n  agg_workers: 1\nbenchmark:\n  type: sa-bench\n  isl: 8\n  osl: 8\n  concurrencies: \"2x4\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "run",
            path.to_str().unwrap(),
            "--dry-run",
            "--log-root",
            dir.path().join("logs").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("benchmark concurrency 2:") && text.contains("benchmark concurrency 4:"),
        "{text}"
    );
    assert!(
        !dir.path().join("logs").exists(),
        "a dry run writes nothing"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["run", dir.path().join("missing.yaml").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("missing.yaml"));
}

#[test]
fn nsys_jobs_need_nsys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.yaml");
    std::fs::write(
        &path,
        "name: n\nmodel:\n  path: /models/x\nresources:\n  agg_workers: 1\nbackend:\n  type: sglang\n\
         profiling:\n  type: nsys\n  aggregated:\n    isl: 8\n    osl: 8\n    concurrency: 1\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "run",
            path.to_str().unwrap(),
            "--log-root",
            dir.path().join("logs").to_str().unwrap(),
        ])
        .env("SRTCTL_NSYS_BIN", dir.path().join("no-nsys-here"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs Nsight Systems") && stderr.contains("SRTCTL_NSYS_BIN"),
        "{stderr}"
    );
    // The plan wraps the worker as srtctl does.
    let dry = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["run", path.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(text.contains("nsys profile -t cuda,nvtx --cuda-graph-trace=node -c cudaProfilerApi --capture-range-end stop"), "{text}");
    assert!(text.contains(r#""activities":["CUDA_PROFILER"]"#), "{text}");
}

/// The command prints the library's renderings byte for byte: the golden files of
/// crates/run/tests/plans.rs (the dry run differs only in the host name of worker labels).
#[test]
fn dry_run_and_slurm_print_the_golden_renderings() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../run/tests/data/plans");
    let job = data.join("disagg.yaml");
    let print = |mode: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
            .args(["run", job.to_str().unwrap(), mode])
            .args(["--loupe-bin", "/opt/loupe/bin/loupe"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let sbatch = print("--slurm");
    assert_eq!(
        sbatch,
        std::fs::read_to_string(data.join("disagg.sbatch")).unwrap()
    );
    let dry = print("--dry-run");
    let host = dry
        .lines()
        .find_map(|l| l.strip_prefix("worker ")?.split_once("_prefill_w0 "))
        .map(|(h, _)| h.to_string())
        .expect("a prefill worker line");
    assert_eq!(
        dry.replace(&format!("{host}_"), "node0_"),
        std::fs::read_to_string(data.join("disagg.plan.txt")).unwrap()
    );
}

#[path = "vllm_like/mod.rs"]
mod vllm_like;

/// A `command` job with `engine: vllm`: the phase speaks vLLM's protocol to the worker (the
/// scripted vLLM-like server on the worker's port; the command itself only holds the slot),
/// stops it although its window ended by itself, and lists vLLM's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vllm_job_profiles_through_vllms_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let vllm = vllm_like::start(vllm_like::Launch {
        profiler_dir: Some(logs.clone()),
        under_run_root: true,
        world: 1,
    })
    .await;
    let port = vllm.url.rsplit(':').next().unwrap().to_string();
    let model = dir.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    let vocab: serde_json::Map<String, serde_json::Value> = (0..50)
        .map(|i| (format!("t{i}"), serde_json::Value::from(i)))
        .collect();
    let tok = serde_json::json!({"version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [], "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "t0"}});
    std::fs::write(model.join("tokenizer.json"), tok.to_string()).unwrap();
    let job = format!(
        "name: v\nmodel:\n  path: {}\nresources:\n  agg_workers: 1\n\
         backend:\n  type: command\n  engine: vllm\n  command: \"sleep 300 # {{profile_dir}}\"\n\
         profiling:\n  type: torch\n  isl: 8\n  osl: 4\n  concurrency: 2\n\
         \x20 aggregated:\n    start_step: 2\n    stop_step: 5\n\
         health_check:\n  max_attempts: 50\n  interval_seconds: 0.1\n",
        model.display()
    );
    let path = dir.path().join("job.yaml");
    std::fs::write(&path, job).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_loupe"))
            .args([
                "run",
                path.to_str().unwrap(),
                "--log-root",
                logs.to_str().unwrap(),
            ])
            .args(["--base-port", &port])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let (starts, stops) = vllm.log(|l| (l.starts.clone(), l.stops));
    assert_eq!(starts, [r#"{"delay_iterations":2,"max_iterations":3}"#]);
    assert_eq!(stops, 2, "a stop before the start and one after the phase");
    assert!(!vllm.guard_set() && !vllm.profiling());
    let run_dir = only_dir(&dir.path().join("logs"));
    let log = std::fs::read_to_string(run_dir.join("run.log")).unwrap();
    assert!(log.contains("phase aggregated: 3 trace file(s)"), "{log}");
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    assert!(summary.contains("rank0"), "{summary}");
}
