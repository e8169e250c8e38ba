//! `loupe bench` and `loupe profile` through the binary: the embedded server, exit codes, a
//! server killed in the middle of a run, interactive profiling of a running `loupe serve`,
//! and the nsys wrapper without nsys.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn loupe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loupe"));
    c.env_remove("OPENAI_API_KEY").env_remove("API_KEY");
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.0 GET (the test needs nothing more): (status, body).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// `loupe serve` as a child on a free port, once healthy.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let port = free_port();
        let child = loupe()
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
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(port, "/health").map(|r| r.0) != Some(200) {
            assert!(Instant::now() < deadline, "loupe serve did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The sum of one Prometheus series.
    fn metric(&self, name: &str) -> f64 {
        let (_, text) = http_get(self.port, "/metrics").unwrap();
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn last_record(p: &Path) -> serde_json::Value {
    let t = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(t.lines().last().unwrap()).unwrap()
}

#[test]
fn without_a_url_the_embedded_server_is_benchmarked_and_said_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = loupe()
        .current_dir(dir.path())
        .args([
            "bench",
            "--num-prompts",
            "12",
            "--random-input-len",
            "32",
            "--random-output-len",
            "8",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("No --base-url given: started the embedded reference server (tiny) in this process at http://127.0.0.1:"), "{stderr}");
    // bench_serving's table, line for line in its labels, then loupe's section.
    for label in [
        "============ Serving Benchmark Result ============",
        "Backend:                                 sglang",
        "Successful requests:                     12",
        "Total generated tokens:                  ",
        "Output token throughput (tok/s):",
        "Peak concurrent requests:",
        "Concurrency:",
        "Mean TTFT (ms):",
        "P99 TPOT (ms):",
        "Max ITL (ms):",
        "loupe: beyond bench_serving",
        "Schedule lag p50 / p99 / max (ms):",
        "Client CPU (s, % of all cores):",
    ] {
        assert!(stdout.contains(label), "missing {label:?} in\n{stdout}");
    }
    // bench_serving's auto-named file, in the working directory.
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].starts_with("sglang_") && files[0].ends_with("_12_32_8.jsonl"),
        "{files:?}"
    );
    let r = last_record(&dir.path().join(&files[0]));
    assert_eq!(
        (
            r["completed"].as_u64(),
            r["client_cpu_includes_server"].as_bool()
        ),
        (Some(12), Some(true))
    );
}

#[test]
fn bad_flags_exit_with_a_reason_before_anything_runs() {
    let out = loupe()
        .args(["bench", "--rust-client", "--request-rate", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--rust-client: loupe bench is itself a native client"),
        "{stderr}"
    );
}

#[test]
fn print_requests_and_plot_throughput_write_upstreams_lines_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = loupe()
        .current_dir(dir.path())
        .args([
            "bench",
            "--backend",
            "sglang-oai-chat",
            "--print-requests",
            "--plot-throughput",
            "--num-prompts",
            "4",
            "--random-input-len",
            "16",
            "--random-output-len",
            "6",
            "--output-file",
            "out.jsonl",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let starts: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" message=\"request start\" "))
        .collect();
    let ends: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" message=\"request end\" "))
        .collect();
    // The warm-up request and the four measured ones, each started and ended.
    assert_eq!((starts.len(), ends.len()), (5, 5), "{stdout}");
    let rid = |l: &str| l.split(' ').next().unwrap().to_string();
    for s in &starts {
        assert!(s.starts_with("rid=") && rid(s).len() == 4 + 36, "{s}");
        let time: f64 = s.split(' ').nth(1).unwrap()["time=".len()..]
            .parse()
            .unwrap();
        assert!(time > 1.6e9, "{s}");
        assert!(
            s.contains(
                "request_func_input=\"RequestFuncInput(prompt='...', api_url='http://127.0.0.1:"
            ),
            "{s}"
        );
        assert!(s.contains("/v1/chat/completions', prompt_len="), "{s}");
        assert!(ends.iter().any(|e| rid(e) == rid(s)), "no end for {s}");
    }
    for e in &ends {
        assert!(
            e.split(' ').nth(2).unwrap().starts_with("time_delta="),
            "{e}"
        );
        assert!(
            e.contains("output=\"RequestFuncOutput(generated_text='...', success=True, latency="),
            "{e}"
        );
    }
    // The plots come before the result block.
    let plot = stdout
        .find("Output tokens per second")
        .expect("the token plot");
    let conc = stdout
        .find("Concurrent requests per second")
        .expect("the request plot");
    let table = stdout.find("Serving Benchmark Result").unwrap();
    assert!(plot < conc && conc < table, "{stdout}");
    assert!(stdout.contains("Time (s)"));
    // Elsewhere than sglang-oai-chat, --print-requests is refused as upstream asserts.
    let out = loupe()
        .args(["bench", "--backend", "sglang", "--print-requests"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--backend sglang-oai-chat only"));
}

#[test]
fn a_server_killed_mid_run_fails_the_run_but_keeps_its_results() {
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("r.jsonl");
    let bench = loupe()
        .args([
            "bench",
            "--base-url",
            &server.url(),
            "--dataset-name",
            "random-ids",
        ])
        .args([
            "--num-prompts",
            "40",
            "--max-concurrency",
            "4",
            "--random-input-len",
            "32",
        ])
        .args([
            "--random-output-len",
            "100",
            "--random-range-ratio",
            "1",
            "--output-details",
        ])
        .args(["--output-file", jsonl.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server (SIGKILL: no graceful end) once a few requests have completed. The
    // server counts a request done when it has sent its last chunk; a client held off the CPU
    // may not have read it when the reset arrives (which discards what it had not read), so
    // wait for the warmup and eight measured requests, twice the four the client must show.
    // A debug-build server on a slow 2-core machine takes about 20 s for one 400-token
    // request, so the outputs are short and the wait generous: the kill still comes with
    // most of the 40 requests not yet sent.
    let deadline = Instant::now() + Duration::from_secs(240);
    while server.metric("sglang:e2e_request_latency_seconds_count") < 9.0 {
        assert!(Instant::now() < deadline, "requests never completed");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let out: Output = bench.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the benchmark failed:") && stderr.contains("(results were written)"),
        "{stderr}"
    );

    let r = last_record(&jsonl);
    let (completed, failed) = (
        r["completed"].as_u64().unwrap(),
        r["failed"].as_u64().unwrap(),
    );
    assert_eq!(completed + failed, 40);
    assert!(
        completed >= 4 && failed >= 4,
        "{completed} completed, {failed} failed"
    );
    let errors: Vec<&str> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    // In flight when the server died: the stream broke; queued behind them: no connection.
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("stream broke after") || e.contains("closed the stream")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("cannot connect")),
        "{errors:#?}"
    );
    assert!(errors.iter().filter(|e| !e.is_empty()).count() as u64 == failed);
    assert_eq!(r["total_output_tokens"].as_u64().unwrap(), completed * 100);
}

#[test]
fn profile_start_status_stop_drive_a_running_server() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("traces");
    let url = server.url();
    let run = |args: &[&str]| -> Output {
        let out = loupe().arg("profile").args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        out
    };
    let start = run(&[
        "start",
        "--url",
        &url,
        "--num-steps",
        "0",
        "--output-dir",
        out_dir.to_str().unwrap(),
        "--profile-id",
        "itest",
    ]);
    let stdout = text(&start.stdout);
    assert!(stdout.starts_with("Start profiling."), "{stdout}");
    assert!(
        stdout.contains(r#""profile_id":"itest""#) && !stdout.contains("num_steps"),
        "{stdout}"
    );

    // Give the capture some steps to record.
    let (status, _) = http_get(server.port, "/health_generate").unwrap();
    assert_eq!(status, 200);
    let st = text(&run(&["status", "--url", &url]).stdout);
    assert!(st.contains("state: active, profile_id: itest"), "{st}");

    let stop = text(&run(&["stop", "--url", &url]).stdout);
    assert!(stop.contains("state: idle, profile_id: itest"), "{stop}");
    let trace = out_dir.join("itest-TP-0.trace.json.gz");
    assert!(stop.contains(trace.to_str().unwrap()), "{stop}");
    assert!(std::fs::metadata(&trace).unwrap().len() > 0);

    // Stopping again: the server's reason, and a failing exit code.
    let again = loupe()
        .args(["profile", "stop", "--url", &url])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("not in progress"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn nsys_without_nsys_is_a_clear_error() {
    let out = loupe()
        .env("PATH", "/nonexistent")
        .env_remove("LOUPE_NSYS")
        .args(["profile", "nsys", "start", "--session", "s1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("'nsys' not found: Nsight Systems is not installed"),
        "{stderr}"
    );
}
