//! `loupe bench one-batch | one-batch-server | offline` through the binary, on `tiny`: the
//! stdout lines upstream's CI parses, the result files and their keys, the trace files'
//! names and the key_averages table read back from them, and bad input refused before any
//! work with the flag and the limit named.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn loupe(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loupe"));
    c.current_dir(dir)
        .env_remove("OPENAI_API_KEY")
        .env_remove("SGLANG_TORCH_PROFILER_DIR")
        .env("RUST_LOG", "warn");
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    loupe(dir).args(args).output().expect("loupe runs")
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

const ONE_BATCH: &[&str] = &[
    "bench",
    "one-batch",
    "--model-path",
    "tiny",
    "--threads",
    "1",
];

#[test]
fn one_batch_prints_upstreams_lines_and_appends_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        ONE_BATCH,
        &[
            "--batch-size",
            "1",
            "2",
            "--input-len",
            "8",
            "--output-len",
            "8",
            "1",
            "--log-decode-step",
            "3",
        ],
    ]
    .concat();
    let stdout = ok(&run(dir.path(), &args));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("max_total_num_tokens="), "{stdout}");
    let bench = lines.iter().position(|l| *l == "Benchmark ...").unwrap();
    assert_eq!(lines[1], "Warmup ...");
    let measured = &lines[bench + 1..];
    // Four cases: (1, 8, 8), (1, 8, 1), (2, 8, 8), (2, 8, 1), in product order.
    let prefills: Vec<&&str> = measured
        .iter()
        .filter(|l| l.starts_with("Prefill. latency: "))
        .collect();
    assert_eq!(prefills.len(), 4);
    for l in &prefills {
        // `{:6.5f} s, throughput: {:9.2f} token/s`
        let rest = l.strip_prefix("Prefill. latency: ").unwrap();
        let (lat, tput) = rest.split_once(" s, throughput: ").unwrap();
        assert_eq!(lat.split_once('.').unwrap().1.len(), 5, "{l}");
        let tput = tput.strip_suffix(" token/s").unwrap();
        assert!(
            tput.len() >= 9 && tput.trim().split_once('.').unwrap().1.len() == 2,
            "{l}"
        );
    }
    // Seven decode steps (0..=6): the first five always, then every third.
    let decode_idx: Vec<&str> = measured
        .iter()
        .filter_map(|l| l.strip_prefix("Decode "))
        .filter_map(|l| l.split_once('.').map(|p| p.0))
        .collect();
    assert_eq!(
        decode_idx,
        ["0", "1", "2", "3", "4", "6", "0", "1", "2", "3", "4", "6"],
        "{stdout}"
    );
    assert!(
        measured
            .iter()
            .any(|l| l.starts_with("Decode 2. Batch size: 2, latency: "))
    );
    assert_eq!(
        measured
            .iter()
            .filter(|l| l.starts_with("Decode.  median latency: "))
            .count(),
        2,
        "no median line for output_len 1"
    );
    assert_eq!(
        measured
            .iter()
            .filter(|l| l.starts_with("Total. latency: "))
            .count(),
        4
    );

    let records = jsonl(&dir.path().join("result.jsonl"));
    assert_eq!(records.len(), 4);
    assert_eq!(
        keys(&records[0]),
        [
            "run_name",
            "batch_size",
            "input_len",
            "output_len",
            "prefill_latency",
            "prefill_throughput",
            "median_decode_latency",
            "median_decode_throughput",
            "total_latency",
            "overall_throughput"
        ]
    );
    assert!(!keys(&records[1]).contains(&"median_decode_latency"));
    let r = &records[2];
    assert_eq!(
        (r["run_name"].as_str(), r["batch_size"].as_u64()),
        (Some("default"), Some(2))
    );
    let (pl, pt) = (
        r["prefill_latency"].as_f64().unwrap(),
        r["prefill_throughput"].as_f64().unwrap(),
    );
    assert!(
        (pt - 16.0 / pl).abs() < 1e-6 * pt,
        "throughput is input_len x batch / latency"
    );
    let total = r["total_latency"].as_f64().unwrap();
    assert!((r["overall_throughput"].as_f64().unwrap() - 32.0 / total).abs() < 1e-6 * 32.0 / total);

    // A rerun appends; --result-filename "" writes nothing.
    ok(&run(
        dir.path(),
        &[
            ONE_BATCH,
            &[
                "--input-len",
                "4",
                "--output-len",
                "2",
                "--run-name",
                "again",
            ],
        ]
        .concat(),
    ));
    let records = jsonl(&dir.path().join("result.jsonl"));
    assert_eq!(records.len(), 5);
    assert_eq!(records[4]["run_name"], "again");
    let other = tempfile::tempdir().unwrap();
    ok(&run(
        other.path(),
        &[
            ONE_BATCH,
            &[
                "--input-len",
                "4",
                "--output-len",
                "2",
                "--result-filename",
                "",
            ],
        ]
        .concat(),
    ));
    assert_eq!(std::fs::read_dir(other.path()).unwrap().count(), 0);
}

#[test]
fn one_batch_profiles_into_upstreams_file_names_with_a_table_per_trace() {
    let dir = tempfile::tempdir().unwrap();
    let prof = dir.path().join("prof");
    let args = [
        ONE_BATCH,
        &[
            "--batch-size",
            "2",
            "--input-len",
            "8",
            "--output-len",
            "5",
            "--profile",
            "--profile-record-shapes",
            "--profile-start-step",
            "1",
            "--profile-steps",
            "2",
            "--profile-prefix",
            "run1",
        ],
    ]
    .concat();
    let out = loupe(dir.path())
        .args(&args)
        .env("SGLANG_TORCH_PROFILER_DIR", &prof)
        .output()
        .unwrap();
    let stdout = ok(&out);
    let mut names: Vec<String> = std::fs::read_dir(&prof)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "run1_batch2_input8_output5_decode.trace.json.gz",
            "run1_batch2_input8_output5_prefill.trace.json.gz"
        ]
    );
    let decode_saved = format!(
        "torch profiler chrome trace for decode saved to {}",
        prof.join(&names[0]).display()
    );
    assert!(stdout.contains(&decode_saved), "{stdout}");
    // The tables are read back from the traces: tiny has 4 layers, so one prefill call per
    // layer, and the two decode steps of the window give 8 calls of each per-layer op.
    let tables: Vec<&str> = stdout.split("saved to ").skip(1).collect();
    assert_eq!(tables.len(), 2);
    let row = |table: &str, name: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in {table}"))
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect()
    };
    for (table, calls, shapes) in [
        (tables[0], "4", "[[16, 128], [256, 128]]"),
        (tables[1], "8", "[[2, 128], [256, 128]]"),
    ] {
        assert!(
            table.contains("Self CPU %")
                && table.contains("# of Calls")
                && table.contains("Self CUDA"),
            "{table}"
        );
        assert!(table.contains("Self CPU time total: "), "{table}");
        let qkv = row(table, "loupe::qkv_proj");
        assert_eq!(qkv[qkv.len() - 2], calls, "{qkv:?}");
        assert_eq!(qkv[qkv.len() - 1], shapes, "{qkv:?}");
    }
    // The decode window's two steps (the calls column; a step span has no input shapes).
    assert_eq!(
        row(tables[1], "step[DECODE bs=2]")
            .last()
            .map(String::as_str),
        Some("2")
    );
    // The scheduler-shaped spans SGLang's traces carry, and `loupe trace summary` reads the
    // files: each decode step is one `scheduler.run_batch` with its `step[DECODE bs=2]`, and
    // the stage table finds both steps; the prefill file has its EXTEND step.
    for (name, step, stage, steps) in [
        (&names[0], "step[DECODE bs=2]", "decode", "2"),
        (&names[1], "step[EXTEND bs=2 toks=16]", "prefill", "1"),
    ] {
        let summary = ok(&run(
            dir.path(),
            &["trace", "summary", prof.join(name).to_str().unwrap()],
        ));
        for needle in ["scheduler.run_batch", step, "loupe::qkv_proj"] {
            assert!(summary.contains(needle), "{name}: {needle}: {summary}");
        }
        let stages = summary.split("\nStages").nth(1).unwrap_or_default();
        assert!(
            stages.lines().any(|l| {
                let mut w = l.split_whitespace();
                w.next() == Some(stage) && w.next() == Some(steps)
            }),
            "{name}: {stage} x {steps}: {summary}"
        );
    }

    // CPU only, prefill only: one file, sorted by self CPU time, no device columns.
    let only = dir.path().join("only");
    let out = loupe(dir.path())
        .args(
            [
                ONE_BATCH,
                &[
                    "--batch-size",
                    "1",
                    "--input-len",
                    "8",
                    "--output-len",
                    "3",
                    "--profile",
                    "--profile-stage",
                    "prefill",
                    "--profile-activities",
                    "CPU",
                    "--result-filename",
                    "",
                ],
            ]
            .concat(),
        )
        .env("SGLANG_TORCH_PROFILER_DIR", &only)
        .output()
        .unwrap();
    let stdout = ok(&out);
    let names: Vec<String> = std::fs::read_dir(&only)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        ["profile_batch1_input8_output3_prefill.trace.json.gz"]
    );
    assert!(!stdout.contains("Self CUDA"), "{stdout}");
}

#[test]
fn one_batch_refuses_what_cannot_run_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &[
                "--batch-size",
                "1",
                "8",
                "--input-len",
                "1000",
                "--output-len",
                "24",
                "--max-total-tokens",
                "4096",
            ],
            &[
                "--batch-size 8",
                "max_total_num_tokens=4096",
                "at most 4 sequences",
            ],
        ),
        (
            &["--input-len", "8190", "--output-len", "16"],
            &["--input-len 8190", "context length (8192"],
        ),
        (
            &[
                "--input-len",
                "8",
                "--output-len",
                "4",
                "--profile",
                "--profile-start-step",
                "3",
            ],
            &[
                "--profile-start-step 3",
                "--output-len 4 runs only 3 decode steps",
            ],
        ),
        (
            &[
                "--input-len",
                "8",
                "--profile",
                "--profile-activities",
                "CUDA_PROFILER",
            ],
            &["CUDA_PROFILER"],
        ),
        (&["--batch-size", "0"], &["--batch-size"]),
        (&["--prompt-filename", "missing.txt"], &["missing.txt"]),
        (
            &["--correctness-test", "--cut-len", "40"],
            &["--cut-len 40"],
        ),
    ];
    for (extra, wants) in cases {
        let out = run(dir.path(), &[ONE_BATCH, extra].concat());
        let stderr = failed(&out);
        for w in *wants {
            assert!(stderr.contains(w), "{extra:?}: {stderr} should say {w}");
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("Prefill."), "{extra:?} ran: {stdout}");
    }
    assert!(
        !dir.path().join("result.jsonl").exists(),
        "nothing half-written"
    );
}

#[test]
fn one_batch_prompt_file_and_correctness_test() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.txt"),
        "Hello world, this is loupe\nA second prompt here\n",
    )
    .unwrap();
    let stdout = ok(&run(
        dir.path(),
        &[
            ONE_BATCH,
            &[
                "--correctness-test",
                "--output-len",
                "4",
                "--batch-size",
                "1",
            ],
        ]
        .concat(),
    ));
    assert!(stdout.contains("\ninput_ids=[["), "{stdout}");
    assert!(
        stdout.contains("prefill logits (first half): tensor([["),
        "{stdout}"
    );
    assert!(
        stdout.contains("prefill logits (final): tensor([["),
        "{stdout}"
    );
    for i in 0..3 {
        assert!(
            stdout.contains(&format!("========== Prompt {i} ==========\nThe"))
                || stdout.contains(&format!("========== Prompt {i} ==========\nToday")),
            "{stdout}"
        );
    }
    assert!(
        !dir.path().join("result.jsonl").exists(),
        "a correctness test records nothing"
    );
    // With a file: its first batch_size lines.
    let stdout = ok(&run(
        dir.path(),
        &[
            ONE_BATCH,
            &[
                "--correctness-test",
                "--output-len",
                "2",
                "--batch-size",
                "1",
                "--prompt-filename",
                "p.txt",
            ],
        ]
        .concat(),
    ));
    assert!(
        stdout.contains("========== Prompt 0 ==========\nHello world"),
        "{stdout}"
    );
    assert!(!stdout.contains("Prompt 1"), "{stdout}");
    // Latency mode with the file: two prompts for a batch of 3 (the last repeated).
    ok(&run(
        dir.path(),
        &[
            ONE_BATCH,
            &[
                "--batch-size",
                "3",
                "--output-len",
                "2",
                "--prompt-filename",
                "p.txt",
            ],
        ]
        .concat(),
    ));
    let r = &jsonl(&dir.path().join("result.jsonl"))[0];
    assert_eq!(r["batch_size"], 3);
}

/// `loupe serve` as a child on a free port, once healthy; killed on drop.
struct Serve {
    child: Child,
    url: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(dir: &Path) -> Serve {
    let port = free_port();
    let child = loupe(dir)
        .args([
            "serve",
            "--model-path",
            "tiny",
            "--threads",
            "1",
            "--enable-metrics",
            "--port",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(s, "GET /health HTTP/1.0\r\n\r\n");
            let mut t = String::new();
            let _ = s.read_to_string(&mut t);
            if t.starts_with("HTTP/1.1 200") || t.starts_with("HTTP/1.0 200") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "loupe serve did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    Serve { child, url }
}

#[test]
fn one_batch_server_against_loupe_serve_with_report_files_and_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path());
    let prof = dir.path().join("prof");
    let args = [
        "bench",
        "one-batch-server",
        "--base-url",
        &s.url,
        "--dataset-name",
        "random-ids",
        "--skip-warmup",
        "--batch-size",
        "1",
        "3",
        "--input-len",
        "16",
        "--output-len",
        "4",
        "--show-report",
        "--pydantic-result-filename",
        "p.json",
        "--profile",
        "--profile-steps",
        "2",
        "--profile-prefix",
        "foo",
        "--profile-output-dir",
        prof.to_str().unwrap(),
    ];
    let stdout = ok(&run(dir.path(), &args));
    for line in [
        "batch size: 3",
        "input_len: 16",
        "output_len: 4",
        "Results are saved to result.jsonl",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line}: {stdout}");
    }
    assert!(
        stdout.contains("| batch size | input len | latency (s) |"),
        "{stdout}"
    );
    let records = jsonl(&dir.path().join("result.jsonl"));
    assert_eq!(records.len(), 4, "plain then profiled, each case");
    assert_eq!(
        keys(&records[0]),
        [
            "run_name",
            "batch_size",
            "input_len",
            "output_len",
            "latency",
            "input_throughput",
            "output_throughput",
            "overall_throughput",
            "last_ttft",
            "last_gen_throughput",
            "acc_length",
            "total_output_tokens",
            "num_early_stopped",
            "steady_state_output_throughput",
            "steady_state_window_s",
            "cache_hit_rate"
        ]
    );
    for (r, bs) in records.iter().zip([1, 3, 1, 3]) {
        assert_eq!(r["batch_size"], bs);
        assert_eq!(r["total_output_tokens"], bs * 4, "{r}");
        assert_eq!(r["num_early_stopped"], 0);
        assert_eq!(r["acc_length"], -1.0);
        let hit = r["cache_hit_rate"]
            .as_f64()
            .expect("loupe serve has /metrics");
        assert!((0.0..=1.0).contains(&hit), "{r}");
        let lat = r["latency"].as_f64().unwrap();
        assert!(r["last_ttft"].as_f64().unwrap() <= lat);
    }
    // The profiled pass: one directory per case, server_args.json, the prefix rule.
    let mut dirs: Vec<_> = std::fs::read_dir(&prof)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 2);
    for (d, bs) in dirs.iter().zip([1, 3]) {
        let names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.contains(&"server_args.json".to_string()), "{names:?}");
        let prefix = format!("foobs-{bs}-il-16-");
        assert!(
            names
                .iter()
                .any(|n| n.starts_with(&prefix) && n.ends_with("-TP-0.trace.json.gz")),
            "{names:?}"
        );
    }
    let pyd: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("p.json")).unwrap()).unwrap();
    assert_eq!(pyd.as_array().unwrap().len(), 2);
    assert_eq!(pyd[0]["model_path"], "tiny");
    assert!(pyd[1]["profile_link_extend"].is_null() || pyd[1]["profile_link_extend"].is_string());
    assert!(stdout.contains("[Profile]("), "{stdout}");
}

/// A server that answers SGLang's info routes but refuses a batched /generate.
fn scripted_server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { return };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut first = String::new();
            if r.read_line(&mut first).is_err() {
                continue;
            }
            let mut len = 0;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let (status, reply) = if first.contains("/server_info") {
                (
                    "200 OK",
                    r#"{"internal_states": [{"effective_max_running_requests_per_dp": 8, "memory_usage": {"token_capacity": 100000}}], "hf_config": {"vocab_size": 512}}"#,
                )
            } else if first.contains("/generate") {
                (
                    "400 Bad Request",
                    r#"{"error": "input_ids: expected a list of integers"}"#,
                )
            } else {
                ("200 OK", "")
            };
            let _ = write!(
                c,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    url
}

#[test]
fn one_batch_server_names_a_server_that_cannot_take_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let url = scripted_server();
    let args = [
        "bench",
        "one-batch-server",
        "--base-url",
        &url,
        "--dataset-name",
        "random-ids",
        "--skip-warmup",
        "--batch-size",
        "2",
        "--input-len",
        "8",
        "--output-len",
        "2",
    ];
    let stderr = failed(&run(dir.path(), &args));
    assert!(
        stderr.contains("cannot take a batched /generate"),
        "{stderr}"
    );
    assert!(
        stderr.contains("expected a list of integers") && stderr.contains(&url),
        "{stderr}"
    );
    assert!(!dir.path().join("result.jsonl").exists());
    // The case is larger than the server says it can run: refused before any request.
    let args = [
        "bench",
        "one-batch-server",
        "--base-url",
        &url,
        "--dataset-name",
        "random-ids",
        "--skip-warmup",
        "--batch-size",
        "16",
        "--input-len",
        "8",
        "--output-len",
        "2",
    ];
    let stderr = failed(&run(dir.path(), &args));
    assert!(
        stderr.contains("--batch-size 16") && stderr.contains("at most 8 requests"),
        "{stderr}"
    );
}

#[test]
fn offline_throughput_keys_block_and_profile() {
    let dir = tempfile::tempdir().unwrap();
    let prof = dir.path().join("prof");
    let out = loupe(dir.path())
        .args([
            "bench",
            "offline",
            "--model-path",
            "tiny",
            "--threads",
            "1",
            "--dataset-name",
            "random-ids",
            "--num-prompts",
            "4",
            "--random-input-len",
            "16",
            "--random-output-len",
            "4",
            "--random-range-ratio",
            "1",
            "--skip-warmup",
            "--result-filename",
            "r.jsonl",
            "--profile",
            "--profile-steps",
            "2",
        ])
        .env("SGLANG_TORCH_PROFILER_DIR", &prof)
        .output()
        .unwrap();
    let stdout = ok(&out);
    assert!(
        stdout.contains("\n====== Offline Throughput Benchmark Result =======\n"),
        "{stdout}"
    );
    for (label, value) in [
        ("Successful requests:", "4"),
        ("Total generated tokens:", "16"),
    ] {
        let line = format!("{label:<40} {value:<10}");
        assert!(stdout.lines().any(|l| l == line), "{line}: {stdout}");
    }
    let r = &jsonl(&dir.path().join("r.jsonl"))[0];
    assert_eq!(
        keys(r),
        [
            "backend",
            "successful_requests",
            "total_latency",
            "total_input_tokens",
            "total_output_tokens",
            "request_throughput",
            "input_throughput",
            "output_throughput",
            "total_throughput",
            "last_gen_throughput"
        ]
    );
    assert_eq!(
        (r["backend"].as_str(), r["total_output_tokens"].as_u64()),
        (Some("engine"), Some(16))
    );
    let lat = r["total_latency"].as_f64().unwrap();
    assert!((r["request_throughput"].as_f64().unwrap() - 4.0 / lat).abs() < 1e-9);
    let traces: Vec<String> = std::fs::read_dir(&prof)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(traces.len(), 1, "{traces:?}");
    assert!(traces[0].ends_with("-TP-0.trace.json.gz"));

    let stderr = failed(&run(
        dir.path(),
        &["bench", "offline", "--backend", "runtime"],
    ));
    assert!(stderr.contains("--backend runtime"), "{stderr}");
    let stderr = failed(&run(
        dir.path(),
        &[
            "bench",
            "offline",
            "--extra-request-body",
            "{\"regex\": \"a\"}",
            "--dataset-name",
            "random-ids",
        ],
    ));
    assert!(stderr.contains("'regex'"), "{stderr}");
}

#[test]
fn plain_bench_keeps_its_flags_and_lists_the_tools() {
    let dir = tempfile::tempdir().unwrap();
    let help = ok(&run(dir.path(), &["bench", "--help"]));
    for s in [
        "one-batch",
        "one-batch-server",
        "offline",
        "--backend",
        "--dataset-name",
        "--request-rate",
    ] {
        assert!(help.contains(s), "{s}: {help}");
    }
    // bench_serving's flags do not mix with a tool.
    let stderr = failed(&run(
        dir.path(),
        &["bench", "--num-prompts", "3", "one-batch"],
    ));
    assert!(!stderr.is_empty());
}

/// Requests a recording server saw: (request line, body).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// An SGLang-API server that records every request and streams a batched `/generate` as
/// SGLang does (one chunk per index with its cumulative completion_tokens, then [DONE]).
fn recording_server() -> (String, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let seen: Seen = Default::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { return };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut first = String::new();
            if r.read_line(&mut first).is_err() {
                continue;
            }
            let mut len = 0;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let body = String::from_utf8_lossy(&body).to_string();
            log.lock()
                .unwrap()
                .push((first.trim().to_string(), body.clone()));
            let reply = if first.contains("/server_info") {
                r#"{"internal_states": [{"effective_max_running_requests_per_dp": 8, "memory_usage": {"token_capacity": 100000}}], "hf_config": {"vocab_size": 512}}"#.to_string()
            } else if first.contains("/generate") {
                let v: Value = serde_json::from_str(&body).unwrap();
                let bs = v["input_ids"].as_array().map_or(1, Vec::len);
                let ol = v["sampling_params"]["max_new_tokens"].as_u64().unwrap_or(1);
                if v["stream"] == true {
                    let mut s = String::new();
                    for t in 1..=ol {
                        for i in 0..bs {
                            let fin = if t == ol {
                                r#"{"type": "length", "length": 1}"#
                            } else {
                                "null"
                            };
                            s += &format!(
                                "data: {{\"index\": {i}, \"text\": \"\", \"meta_info\": {{\"completion_tokens\": {t}, \"finish_reason\": {fin}}}}}\n\n"
                            );
                        }
                    }
                    s += "data: [DONE]\n\n";
                    s
                } else {
                    "[]".to_string()
                }
            } else {
                String::new()
            };
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, seen)
}

#[test]
fn one_batch_server_sends_upstreams_body_flags_and_cache_warmup() {
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = recording_server();
    let args = [
        "bench",
        "one-batch-server",
        "--base-url",
        &url,
        "--dataset-name",
        "random-ids",
        "--skip-warmup",
        "--batch-size",
        "3",
        "--input-len",
        "8",
        "--input-len-list",
        "4,8",
        "--output-len",
        "2",
        "--parallel-batch",
        "--fake-prefill",
        "--flush-hicache-storage",
        "--cache-hit-rate",
        "0.5",
        "--lora-name",
        "a",
        "b",
        "--lora-request-distribution",
        "distinct",
        "--input-len-step-percentage",
        "0.1",
    ];
    ok(&run(dir.path(), &args));
    let seen = seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen.iter().map(|(l, _)| l.as_str()).collect();
    let at = |p: &str| {
        paths
            .iter()
            .position(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("{p}: {paths:?}"))
    };
    // Flush, then the storage tier, then the warm-up, then the timed request.
    assert!(at("POST /flush_cache") < at("POST /hicache/storage-backend/clear"));
    let gens: Vec<Value> = seen
        .iter()
        .filter(|(l, _)| l.starts_with("POST /generate"))
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(gens.len(), 2, "{paths:?}");
    let (warm, timed) = (&gens[0], &gens[1]);
    // Request lengths 4, 8, 4 (entry i mod 2); input_len 16 // 3 = 5; half of it cached.
    let lens: Vec<usize> = timed["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_array().unwrap().len())
        .collect();
    assert_eq!(lens, [4, 8, 4]);
    assert_eq!(warm["stream"], false);
    assert_eq!(warm["sampling_params"]["max_new_tokens"], 1);
    for (p, full) in warm["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .zip(timed["input_ids"].as_array().unwrap())
    {
        let p = p.as_array().unwrap();
        assert_eq!(p.len(), 2, "int(5 x 0.5) tokens of each prompt");
        assert_eq!(p[..], full.as_array().unwrap()[..2]);
    }
    assert_eq!(timed["parallel_batch"], true);
    assert_eq!(timed["bootstrap_host"], "2.2.2.2");
    assert_eq!(timed["bootstrap_room"], 0);
    assert_eq!(timed["lora_path"], serde_json::json!(["a", "b", "a"]));
    assert_eq!(timed["stream"], true);
    let r = &jsonl(&dir.path().join("result.jsonl"))[0];
    assert_eq!(
        (r["input_len"].as_u64(), r["total_output_tokens"].as_u64()),
        (Some(5), Some(6))
    );
}

#[test]
fn one_batch_server_datasets_against_loupe_serve() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path());
    let base = [
        "bench",
        "one-batch-server",
        "--base-url",
        &s.url,
        "--skip-warmup",
        "--batch-size",
        "3",
        "--input-len",
        "16",
        "--output-len",
        "5",
    ];
    // generated-shared-prefix: the record's output length is --gsp-output-len, the input
    // length the prompts' mean.
    let gsp = [
        &base[..],
        &[
            "--dataset-name",
            "generated-shared-prefix",
            "--gsp-num-groups",
            "2",
            "--gsp-system-prompt-len",
            "12",
            "--gsp-question-len",
            "4",
            "--gsp-output-len",
            "3",
            "--result-filename",
            "gsp.jsonl",
        ],
    ]
    .concat();
    ok(&run(dir.path(), &gsp));
    let r = &jsonl(&dir.path().join("gsp.jsonl"))[0];
    assert_eq!(r["output_len"], 3, "{r}");
    assert_eq!(r["total_output_tokens"], 9, "{r}");
    let il = r["input_len"].as_u64().unwrap();
    assert!(
        (14..=20).contains(&il),
        "system 12 + question 4 tokens: {r}"
    );
    // A fixed prompt file: every request the same text; input_len is its token count.
    std::fs::write(dir.path().join("p.txt"), "hello world, hello world").unwrap();
    let fixed = [
        &base[..],
        &[
            "--fixed-prompt-file",
            "p.txt",
            "--result-filename",
            "fixed.jsonl",
        ],
    ]
    .concat();
    ok(&run(dir.path(), &fixed));
    let r = &jsonl(&dir.path().join("fixed.jsonl"))[0];
    let il = r["input_len"].as_u64().unwrap();
    assert!(il > 0 && il != 16, "{r}");
    assert_eq!(r["total_output_tokens"], 15, "{r}");
}

#[test]
fn one_batch_server_refuses_each_flag_it_cannot_honour_by_name() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing answers here: every refusal comes before any request.
    let base = [
        "bench",
        "one-batch-server",
        "--base-url",
        "http://127.0.0.1:9",
    ];
    for (extra, needle) in [
        (&["--dataset-name", "mmmu"][..], "--dataset-name mmmu"),
        (&["--backend", "vllm"][..], "--backend vllm"),
        (
            &["--apply-chat-template"][..],
            "--apply-chat-template requires",
        ),
        (
            &["--lora-name", "a", "--lora-request-distribution", "skewed"][..],
            "--lora-request-distribution",
        ),
        (
            &["--lora-zipf-alpha", "1"][..],
            "--lora-zipf-alpha must be > 1",
        ),
        (
            &["--input-len-list", "4,8", "--input-len", "4", "8"][..],
            "--input-len-list",
        ),
        (&["--input-len-list", "4,x"][..], "--input-len-list must be"),
        (
            &["--dataset-name", "custom", "--dataset-path", "nope.jsonl"][..],
            "--dataset-name custom requires --dataset-path",
        ),
        (
            &["--disable-ignore-eos", "--fake-prefill"][..],
            "--fake-prefill",
        ),
        (&["--cache-hit-rate", "1.5"][..], "--cache-hit-rate 1.5"),
    ] {
        let args = [&base[..], extra].concat();
        let stderr = failed(&run(dir.path(), &args));
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(!dir.path().join("result.jsonl").exists());
}
