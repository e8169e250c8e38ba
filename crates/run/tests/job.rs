//! Job files: strict parsing with file:line errors, srtctl's validation messages, sweeps and
//! the plan (the rendered text and scripts are held by `plans.rs`).

use std::path::{Path, PathBuf};

use loupe_run::{job, plan};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/plans")
        .join(name)
}

fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn load_err(text: &str) -> job::JobError {
    let (_d, path) = write(text);
    job::load(&path).unwrap_err()
}

fn opts() -> plan::PlanOptions {
    plan::PlanOptions {
        loupe_bin: PathBuf::from("/opt/loupe/bin/loupe"),
        log_root: PathBuf::from("/runs"),
        timestamp: "20260101_000000".into(),
        host: "127.0.0.1".into(),
        hostname: "node0".into(),
        base_port: 6100,
        nsys_bin: "nsys".into(),
    }
}

const AGG: &str = "name: j\nmodel:\n  path: tiny\nresources:\n  agg_workers: 1\n";

#[test]
fn unknown_keys_name_the_file_the_key_and_the_line() {
    let e = load_err(&format!("{AGG}bencmark:\n  type: manual\n"));
    assert!(e.file.ends_with("job.yaml"));
    assert_eq!(e.line, Some(6), "{e}");
    assert!(e.message.contains("bencmark"), "{e}");
    let e = load_err("name: j\nmodel:\n  path: tiny\n  precison: fp8\nresources: {}\n");
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.to_string().contains("precison"), "{e}");
    let e = load_err("");
    assert_eq!(e.message, "YAML file is empty");
}

#[test]
fn srtctl_validation_messages() {
    let prof =
        "profiling:\n  type: torch\n  aggregated:\n    isl: 8\n    osl: 8\n    concurrency: 2\n";
    let e = load_err(&format!(
        "name: j\nmodel:\n  path: tiny\nresources:\n  agg_workers: 2\n{prof}"
    ));
    // Section errors point at the section's first line.
    assert_eq!(
        (e.line, e.message.as_str()),
        (Some(5), "Profiling mode requires single worker only")
    );
    let e = load_err(&format!(
        "{AGG}{prof}benchmark:\n  type: sa-bench\n  isl: 1\n  osl: 1\n  concurrencies: [1]\n"
    ));
    assert!(
        e.message
            .starts_with("Cannot enable profiling with benchmark type 'loupe'"),
        "{e}"
    );
    assert_eq!(e.line, Some(13));
    let e = load_err(&format!(
        "{AGG}profiling:\n  type: torch\n  aggregated:\n    isl: 8\n    concurrency: 2\n"
    ));
    assert!(e.message.contains("missing osl"), "{e}");
    let e = load_err(
        "name: j\nmodel:\n  path: tiny\nresources:\n  prefill_workers: 1\n  decode_workers: 1\nprofiling:\n  type: torch\n  isl: 8\n  osl: 8\n  concurrency: 1\n  prefill: {}\n",
    );
    assert_eq!(
        e.message,
        "Disaggregated mode requires both profiling.prefill and profiling.decode to be set when profiling is enabled."
    );
    let e = load_err(&format!(
        "{AGG}profiling:\n  type: nsys\n  aggregated:\n    isl: 8\n    osl: 8\n    concurrency: 2\n"
    ));
    assert!(e.message.contains("embedded engine runs on the CPU"), "{e}");
    let e = load_err(&format!(
        "{AGG}benchmark:\n  type: sa-bench\n  isl: 8\n  osl: 8\n"
    ));
    assert!(e.message.contains("needs concurrencies"), "{e}");
    let e = load_err(&format!("{AGG}sweep:\n  parameters:\n    c: 3\n"));
    assert_eq!(
        (e.line, e.message.as_str()),
        (Some(6), "Sweep parameter 'c' must be a list")
    );
}

#[test]
fn sweeps_expand_into_typed_jobs() {
    let jobs = job::load(&data("sweep.yaml")).unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1].job.name, "bench-c4");
    let b = &jobs[1].job.benchmark.as_ref().unwrap().value;
    assert_eq!(b.isl, Some(32));
    let p = plan::build(&jobs[0], &opts());
    assert_eq!(p.benches.len(), 1);
    assert_eq!(
        (
            p.benches[0].concurrency,
            p.benches[0].num_prompts,
            p.benches[0].warmup
        ),
        (2, 20, 4)
    );
}

#[test]
fn plan_and_dry_run_show_every_command() {
    let jobs = job::load(&data("disagg.yaml")).unwrap();
    let p = plan::build(&jobs[0], &opts());
    assert_eq!(p.log_dir, PathBuf::from("/runs/disagg-profile"));
    assert_eq!(p.workers.len(), 2);
    assert_eq!(
        plan::shell_line(&p.workers[0].command),
        "python3 -m sglang.launch_server --model-path tiny --host 127.0.0.1 --port 6100 \
         --disaggregation-mode prefill --disable-radix-cache --tensor-parallel-size 2"
    );
    assert_eq!(p.workers[1].port, 6132);
    assert_eq!(
        p.workers[1].env["SGLANG_TORCH_PROFILER_DIR"],
        "/runs/disagg-profile/profiles/decode"
    );
    assert_eq!((p.phases[1].start_step, p.phases[1].num_steps), (30, 30));
    let text = plan::render(&p);
    for needle in [
        "POST http://127.0.0.1:6132/start_profile {\"output_dir\":\"/runs/disagg-profile/profiles/decode\",\"start_step\":30,\"num_steps\":30",
        "/opt/loupe/bin/loupe bench --backend sglang --base-url http://127.0.0.1:6100",
        "--random-input-len 128 --random-output-len 16",
        "node0_prefill_w0.out",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}
