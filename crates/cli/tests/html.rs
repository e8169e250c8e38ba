//! Every kind of `--html` page through the binary, opened from disk in headless Chromium:
//! a bench run, a profiled run, a sweep, trace summary/ranks/diff; and `loupe report`
//! rebuilding a bench page byte for byte from its request timings. Screenshots go under
//! target/tmp/html-pages/.

#[path = "../../report/tests/browser/mod.rs"]
mod browser;

use std::path::{Path, PathBuf};
use std::process::Command;

fn loupe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loupe"));
    c.env_remove("OPENAI_API_KEY").env_remove("API_KEY");
    c
}

fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{c:?} failed: {err}");
    err
}

fn bench(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let html = dir.join(format!("{name}.html"));
    let mut c = loupe();
    c.current_dir(dir)
        .args([
            "bench",
            "--dataset-name",
            "random-ids",
            "--random-input-len",
            "32",
            "--random-output-len",
            "12",
            "--disable-tqdm",
            "--output-file",
        ])
        .arg(dir.join(format!("{name}.jsonl")))
        .arg("--html")
        .arg(&html)
        .args(extra);
    ok(&mut c);
    html
}

fn data(html: &str) -> serde_json::Value {
    let key = r#"<script type="application/json" id="loupe-data">"#;
    let start = html.find(key).unwrap() + key.len();
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

fn screens() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-pages");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Open the page in the browser (when there is one) and check everything rendered.
fn check_in_browser(page: &Path, name: &str) {
    let Some(chrome) = browser::require() else {
        return;
    };
    let html = std::fs::read_to_string(page).unwrap();
    let charts = data(&html)["charts"].as_array().unwrap().len();
    let figures = html.matches("<svg xmlns=").count();
    let shot = screens().join(format!("{name}.png"));
    let loaded = browser::open(&chrome, page, &shot);
    browser::assert_rendered(&loaded, charts, figures, name);
}

/// The cells of the table row whose first cell is `first`.
fn row(html: &str, first: &str) -> Vec<String> {
    let key = format!("<tr><td>{first}</td>");
    let start = html.find(&key).unwrap_or_else(|| panic!("no row {first}"));
    let end = start + html[start..].find("</tr>").unwrap();
    html[start..end]
        .split("<td>")
        .skip(1)
        .map(|c| c.trim_end_matches("</td>").to_string())
        .collect()
}

fn nines(p: f64) -> f64 {
    -(1.0 - p / 100.0).log10()
}

#[test]
fn a_bench_page_renders_agrees_with_its_tables_and_rebuilds_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let page = bench(
        dir.path(),
        "run",
        &[
            "--num-prompts",
            "40",
            "--request-rate",
            "40",
            "--slo",
            "ttft=500,tpot=100",
        ],
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.len() < 500_000, "{} bytes", html.len());
    // Chart and table agree to the digit at every table percentile (R1).
    let charts = data(&html)["charts"].as_array().unwrap().clone();
    let record: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(dir.path().join("run.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    for (metric, key) in [("TTFT", "ttft"), ("TPOT", "tpot"), ("E2E", "e2e_latency")] {
        let cells = row(&html, metric);
        let chart = charts
            .iter()
            .find(|c| c["title"] == format!("{metric} by percentile"))
            .unwrap();
        let xs = chart["data"][0].as_array().unwrap();
        let ys = chart["data"][1].as_array().unwrap();
        for (p, cell) in [(50.0, 3), (90.0, 4), (95.0, 5), (99.0, 6)] {
            let want = (nines(p) * 1000.0).round() / 1000.0;
            let i = xs
                .iter()
                .position(|x| (x.as_f64().unwrap() - want).abs() < 1e-9)
                .unwrap_or_else(|| panic!("{metric}: no point at p{p}"));
            assert_eq!(
                format!("{:.2}", ys[i].as_f64().unwrap()),
                cells[cell],
                "{metric} p{p}"
            );
        }
        let max = ys.last().unwrap().as_f64().unwrap();
        assert_eq!(format!("{max:.2}"), cells[7], "{metric} max");
        let p99 = record[format!("p99_{key}_ms")].as_f64().unwrap();
        assert_eq!(format!("{p99:.2}"), cells[6], "{metric}: the JSONL's p99");
    }
    // The SLO lines are drawn where the flags put them.
    let ttft = charts
        .iter()
        .find(|c| c["title"] == "TTFT by percentile")
        .unwrap();
    assert_eq!(ttft["rules"][0]["y"], 500);
    check_in_browser(&page, "bench-run");

    // `loupe report` gives the same bytes from the timings file alone.
    let again = dir.path().join("again.html");
    let timings = dir.path().join("run.requests.jsonl");
    ok(loupe().arg("report").arg(&timings).arg("-o").arg(&again));
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&page).unwrap()
    );

    // The JSONL alone gives the records' figures (and says where the timings are).
    let jsonl = dir.path().join("run.jsonl");
    let records = dir.path().join("records.html");
    ok(loupe().arg("report").arg(&jsonl).arg("-o").arg(&records));
    let page_text = std::fs::read_to_string(&records).unwrap();
    let cells = row(&page_text, "rate 40.0 (run.jsonl:1)");
    let p99 = record["p99_ttft_ms"].as_f64().unwrap();
    assert_eq!(cells[5], format!("{p99:.2}"), "TTFT p99");
    assert!(page_text.contains(".requests.jsonl"));
    check_in_browser(&records, "report-records");

    // A cut-off timings file is refused with its line, and no page is left behind.
    let text = std::fs::read_to_string(&timings).unwrap();
    let cut = dir.path().join("cut.requests.jsonl");
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&cut, lines[..lines.len() - 3].join("\n")).unwrap();
    let bad = dir.path().join("bad.html");
    let out = loupe()
        .arg("report")
        .arg(&cut)
        .arg("-o")
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cut.requests.jsonl:") && err.contains("37 of its 40"),
        "{err}"
    );
    assert!(!bad.exists());
}

#[test]
fn sweep_and_profiled_pages_render() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = bench(
        dir.path(),
        "sweep",
        &["--num-prompts", "12", "--sweep-max-concurrency", "1,4"],
    );
    let html = std::fs::read_to_string(&sweep).unwrap();
    assert!(html.contains(r#"<details class="section" id="run-2">"#));
    for t in [
        "Latency vs achieved throughput",
        "Per-user vs total output tokens/s",
    ] {
        assert!(html.contains(t), "{t}");
    }
    check_in_browser(&sweep, "bench-sweep");

    let traces = dir.path().join("traces");
    let traces_arg = traces.display().to_string();
    let profiled = bench(
        dir.path(),
        "profiled",
        &[
            "--num-prompts",
            "8",
            "--profile",
            "--profile-output-dir",
            &traces_arg,
            "--scrape-metrics",
            "20",
        ],
    );
    let html = std::fs::read_to_string(&profiled).unwrap();
    assert!(html.contains("Profile of run") && html.contains("Top kernels by total time"));
    // The server's own gauges, scraped during the run, drawn beside the client's figures.
    assert!(
        html.contains("Running requests (server)") && html.contains("KV cache usage (server)"),
        "the scraped /metrics are charted"
    );
    assert!(
        !html.contains("could not be summarised"),
        "the traces were read"
    );
    check_in_browser(&profiled, "bench-profiled");

    // Rebuilt from its timings, the scraped and profiled page has the same bytes: the
    // scraped series' floats come back with the same bits.
    let again = dir.path().join("profiled-again.html");
    ok(loupe()
        .arg("report")
        .arg(dir.path().join("profiled.requests.jsonl"))
        .arg("-o")
        .arg(&again));
    assert!(
        std::fs::read(&again).unwrap() == std::fs::read(&profiled).unwrap(),
        "the rebuilt page differs from the live one"
    );
}

fn trace_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../trace/tests/data")
        .join(name)
}

#[test]
fn trace_pages_render() {
    let dir = tempfile::tempdir().unwrap();
    let (r0, r1) = (
        trace_data("sampled_rank-0.json.gz"),
        trace_data("sampled_rank-1.json.gz"),
    );
    let summary = dir.path().join("summary.html");
    ok(loupe()
        .args(["trace", "summary"])
        .arg(trace_data("sglang_Qwen3-8B_decode.json.gz"))
        .arg("--html")
        .arg(&summary));
    let html = std::fs::read_to_string(&summary).unwrap();
    assert!(html.contains("other (") && html.contains("GPU time per rank"));
    assert!(!html.contains("<void"), "kernel names are escaped");
    check_in_browser(&summary, "trace-summary");

    let ranks = dir.path().join("ranks.html");
    ok(loupe()
        .args(["trace", "ranks"])
        .arg(&r0)
        .arg(&r1)
        .arg("--html")
        .arg(&ranks));
    let html = std::fs::read_to_string(&ranks).unwrap();
    assert!(html.contains("Compute per step and rank") && html.contains("Stragglers"));
    check_in_browser(&ranks, "trace-ranks");

    let diff = dir.path().join("diff.html");
    ok(loupe()
        .args(["trace", "diff"])
        .arg(&r0)
        .arg(&r1)
        .arg("--html")
        .arg(&diff));
    let html = std::fs::read_to_string(&diff).unwrap();
    assert!(html.contains("Largest changes in total time"));
    check_in_browser(&diff, "trace-diff");

    // `loupe report` on the traces: their summary and, for two, the rank comparison.
    let rebuilt = dir.path().join("rebuilt.html");
    ok(loupe()
        .arg("report")
        .arg(&r0)
        .arg(&r1)
        .arg("-o")
        .arg(&rebuilt));
    let html = std::fs::read_to_string(&rebuilt).unwrap();
    assert!(html.contains("Compute per step and rank") && html.contains("Top kernels"));
    check_in_browser(&rebuilt, "report-traces");
}

#[test]
fn a_run_summary_page_renders() {
    let dir = tempfile::tempdir().unwrap();
    let record = serde_json::json!({
        "completed": 128, "request_throughput": 3.5, "output_throughput": 84.25,
        "median_ttft_ms": 12.5, "p99_ttft_ms": 40.125, "median_tpot_ms": 5.0,
        "p99_tpot_ms": 9.75, "duration": 36.6,
    });
    // Named as SGLang names a rank's trace, which is what the page looks for.
    let trace = dir.path().join("1769070226.0713482-TP-0.trace.json.gz");
    std::fs::copy(trace_data("sglang_Qwen3-8B_decode.json.gz"), &trace).unwrap();
    let outcome = loupe_run::JobOutcome {
        job: "pd <test>".into(),
        log_dir: dir.path().to_path_buf(),
        phases: vec![loupe_run::PhaseOutcome {
            name: "decode".into(),
            trace_files: vec![trace.display().to_string()],
            bench: Ok(record),
            timings: None,
        }],
        benches: vec![loupe_run::BenchOutcome {
            concurrency: 8,
            result: Err("concurrency 8: loupe bench exited 1".into()),
            timings: None,
        }],
    };
    let page = loupe_cli::cmd::run_html::write(&outcome).unwrap();
    assert_eq!(page, dir.path().join("summary.html"));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("loupe run: pd &lt;test&gt;"));
    assert_eq!(
        row(&html, "phase decode")[..5],
        ["phase decode", "128", "3.50", "84.25", "12.50"]
    );
    assert!(html.contains("Failed: concurrency 8: loupe bench exited 1"));
    assert!(html.contains("Top kernels by total time"));
    check_in_browser(&page, "run-summary");
}

/// Every part of a zip (an .xlsx), by name.
#[cfg(feature = "xlsx")]
fn zip_parts(path: &Path) -> std::collections::BTreeMap<String, String> {
    use std::io::Read;
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut text = String::new();
            f.read_to_string(&mut text).unwrap();
            (f.name().unwrap().to_string(), text)
        })
        .collect()
}

#[cfg(feature = "xlsx")]
#[test]
fn xlsx_workbook_has_genai_bench_sheets_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("bench.xlsx");
    let book_arg = book.display().to_string();
    bench(
        dir.path(),
        "sweep",
        &[
            "--num-prompts",
            "8",
            "--sweep-max-concurrency",
            "1,2",
            "--xlsx",
            &book_arg,
        ],
    );
    let parts = zip_parts(&book);
    // genai-bench's sheets in its order, then the charts.
    let workbook = &parts["xl/workbook.xml"];
    let names: Vec<&str> = workbook
        .split("<sheet name=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert_eq!(
        names,
        [
            "Summary",
            "Appendix",
            "Experiment Metadata",
            "Aggregated Metrics for Each Run",
            "Individual Request Metrics",
            "Charts"
        ]
    );
    // Each sheet's header row, as the shared strings its first row points at.
    let strings: Vec<String> = parts["xl/sharedStrings.xml"]
        .split("<t>")
        .skip(1)
        .map(|s| s[..s.find("</t>").unwrap()].replace("&gt;", ">"))
        .collect();
    let header = |sheet: usize| -> Vec<String> {
        let xml = &parts[&format!("xl/worksheets/sheet{sheet}.xml")];
        let row = &xml[xml.find("<row r=\"1\"").unwrap()..];
        let row = &row[..row.find("</row>").unwrap()];
        row.split("<v>")
            .skip(1)
            .map(|v| strings[v[..v.find("</v>").unwrap()].parse::<usize>().unwrap()].clone())
            .collect()
    };
    assert_eq!(
        header(1),
        [
            "GPU Type",
            "Use Case",
            "Concurrency at target speed (>10 tokens/s)",
            "Total Throughput (tokens/min)"
        ]
    );
    assert_eq!(
        header(2),
        [
            "GPU Type",
            "Use Case",
            "Concurrency",
            "TTFT (s)",
            "Output Inference Speed per Request (tokens/s)",
            "Output Throughput of Server (tokens/s)",
            "End-to-End Latency per Request (s)",
            "Request Throughput (RPS)",
            "Total Throughput (Input + Output) of Server (tokens/s)"
        ]
    );
    let stats = [
        "ttft (s)",
        "tpot (s)",
        "e2e_latency (s)",
        "output_latency (s)",
        "output_inference_speed",
        "num_input_tokens",
        "num_output_tokens",
        "num_reasoning_tokens",
        "total_tokens",
        "input_throughput",
        "output_throughput",
        "audio_throughput",
    ];
    let mut agg = vec![
        "scenario",
        "num_concurrency",
        "run_duration",
        "mean_output_throughput_tokens_per_s",
        "mean_input_throughput_tokens_per_s",
        "mean_total_tokens_throughput_tokens_per_s",
        "requests_per_second",
        "error_codes_frequency",
        "error_rate",
        "num_error_requests",
        "num_completed_requests",
        "num_requests",
    ];
    agg.extend(stats);
    assert_eq!(header(4), agg);
    let mut req = vec!["scenario", "num_concurrency"];
    req.extend(stats);
    req.extend(["error_code", "error_message"]);
    assert_eq!(header(5), req);
    // Experiment Metadata is rows of (field, value) with no header: its first field.
    assert!(parts["xl/worksheets/sheet3.xml"].contains("<row r=\"22\""));
    assert!(strings.iter().any(|s| s == "metrics_time_unit"));
    // Every request of both runs has its row (and the header).
    let requests = &parts["xl/worksheets/sheet5.xml"];
    assert!(requests.contains("<row r=\"17\"") && !requests.contains("<row r=\"18\""));
    // The statistics are genai-bench's JSON blocks.
    assert!(strings.iter().any(|s| s.starts_with("{\n  \"min\": ")));
    // The Charts sheet: genai-bench's 2 x 4 grid as native charts over its cells.
    let charts: Vec<&String> = (1..=8)
        .map(|i| &parts[&format!("xl/charts/chart{i}.xml")])
        .collect();
    assert!(!parts.contains_key("xl/charts/chart9.xml"));
    assert!(charts[0].contains("Output Inference Speed per Request vs Output Throughput"));
    assert!(charts[0].contains("<c:scatterChart>") && charts[0].contains("Charts!$G$2:$G$3"));
    assert!(
        charts[1].contains("<c:logBase val=\"10\"/>"),
        "TTFT on a log axis"
    );
    assert!(charts[3].contains("Error Rates by HTTP Status") && charts[3].contains("<c:barChart>"));
    assert!(charts[7].contains("P99 E2E Latency per Request vs RPS"));
    // One series per traffic scenario, each point labelled with its concurrency cell.
    assert_eq!(charts[0].matches("<c:ser>").count(), 1);
    assert!(charts[0].contains("Charts!$B$2"));
}

#[cfg(not(feature = "xlsx"))]
#[test]
fn xlsx_without_the_feature_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = loupe()
        .current_dir(dir.path())
        .args(["bench", "--num-prompts", "1", "--xlsx", "b.xlsx"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--features xlsx"), "{err}");
    assert!(!dir.path().join("b.xlsx").exists());
}

#[test]
fn loupe_report_reads_a_run_directory_back() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("pd_20261202_010000");
    std::fs::create_dir_all(run.join("profiles/decode")).unwrap();
    std::fs::copy(
        trace_data("sglang_Qwen3-8B_decode.json.gz"),
        run.join("profiles/decode/1769070226.0713482-TP-0-DECODE.trace.json.gz"),
    )
    .unwrap();
    std::fs::create_dir_all(run.join("profile_decode_isl_32_osl_24")).unwrap();
    std::fs::write(
        run.join("profile_decode_isl_32_osl_24/concurrency_4.json"),
        "{\"completed\": 1}\n{\"completed\": 128, \"p99_ttft_ms\": 12.345}\n",
    )
    .unwrap();
    std::fs::create_dir_all(run.join("loupe-bench_isl_32_osl_24")).unwrap();
    std::fs::write(
        run.join("loupe-bench_isl_32_osl_24/concurrency_16.json"),
        "{\"completed\": 64, \"output_throughput\": 99.5}\n",
    )
    .unwrap();
    // Two benchmark runs as `loupe run` has its children write them: record and timings.
    let benches = run.join("loupe-bench_isl_32_osl_12");
    std::fs::create_dir_all(&benches).unwrap();
    for c in ["1", "2"] {
        let record = benches.join(format!("concurrency_{c}.json"));
        ok(loupe().current_dir(dir.path()).args([
            "bench",
            "--dataset-name",
            "random-ids",
            "--random-input-len",
            "32",
            "--random-output-len",
            "12",
            "--disable-tqdm",
            "--num-prompts",
            "6",
            "--max-concurrency",
            c,
            "--output-file",
            record.to_str().unwrap(),
            "--request-timings",
            record.with_extension("requests.jsonl").to_str().unwrap(),
        ]));
    }
    let page = dir.path().join("run.html");
    ok(loupe().arg("report").arg(&run).arg("-o").arg(&page));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("loupe run: pd_20261202_010000"));
    assert_eq!(row(&html, "phase decode")[..2], ["phase decode", "128"]);
    assert_eq!(
        row(&html, "concurrency 16")[..4],
        ["concurrency 16", "64", "", "99.50"]
    );
    assert!(html.contains("Top kernels by total time"));
    // The runs with timings are drawn as a sweep, each request by request; the others say
    // why they are not.
    assert!(html.contains("Latency vs achieved throughput"));
    assert!(html.contains(r#"<details class="section" id="bench-run-2">"#));
    let over_time = |html: &str| {
        data(html)["charts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["title"] == "Latency of each request by when it was sent")
            .count()
    };
    assert_eq!(over_time(&html), 2);
    assert!(html.contains("concurrency 16: no request timings were written"));
    assert!(html.contains("phase decode: no request timings were written"));
    check_in_browser(&page, "report-run-dir");

    let empty = tempfile::tempdir().unwrap();
    let out = loupe()
        .arg("report")
        .arg(empty.path())
        .arg("-o")
        .arg(&page)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loupe run directory"));
}

/// A run of `n` synthetic requests (every 50th failed), metrics computed as a live run's.
fn synthetic(n: usize, failed_every: usize) -> loupe_bench::RunOutcome {
    use loupe_bench::record::RequestRecord;
    let records: Vec<RequestRecord> = (0..n)
        .map(|i| {
            let t = i as f64 * 0.01;
            let ok = i % failed_every != 0;
            // A slow tail: every 97th request is 20x slower.
            let k = if i % 97 == 0 {
                10.0 + (i % 1000) as f64 / 50.0
            } else {
                1.0 + (i % 13) as f64 / 13.0
            };
            RequestRecord {
                ok,
                error: if ok {
                    String::new()
                } else {
                    format!("HTTP 50{}: <busy>", i % 3)
                },
                prompt_len: 100 + i % 50,
                output_len: if ok { 8 } else { 0 },
                output_len_reported: ok,
                intended: t,
                dispatched: t,
                start: t,
                ttft: if ok { 0.02 * k } else { 0.0 },
                latency: if ok { 0.02 * k + 0.07 } else { 0.5 },
                first_tokens: 1,
                gaps: if ok { vec![0.01; 7] } else { Vec::new() },
                gap_tokens: if ok { vec![1; 7] } else { Vec::new() },
                ..Default::default()
            }
        })
        .collect();
    let duration = n as f64 * 0.01 + 1.0;
    let slos = vec![("e2el".to_string(), 300.0)];
    loupe_bench::RunOutcome {
        label: "run".into(),
        info: loupe_bench::outcome::RunInfo {
            backend: "sglang".into(),
            dataset_name: "random-ids".into(),
            request_rate: 100.0,
            rate_label: "100".into(),
            burstiness: 1.0,
            max_concurrency: None,
            sharegpt_output_len: None,
            random_input_len: 150,
            random_output_len: 8,
            random_range_ratio: 0.0,
            tag: None,
            cache_report: false,
            traffic_scenario: None,
            server_info: serde_json::Value::Null,
            accept_length: None,
            cpu: None,
            profile: None,
            warnings: Vec::new(),
            server_metrics: None,
        },
        summary: loupe_bench::metrics::summarize(&records, duration, true, None),
        beyond: loupe_bench::beyond::summarize(&records, duration, &[50.0, 99.0], &slos),
        records,
        retokenized: None,
        native: true,
    }
}

#[test]
fn a_large_run_is_binned_without_losing_its_tail_or_failures() {
    let run = synthetic(25_000, 50);
    let page = loupe_cli::cmd::bench::html::page(std::slice::from_ref(&run), false, Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("large.html");
    loupe_cli::cmd::bench::html::write(&file, &page).unwrap();
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.len() < 1_000_000, "{} bytes", html.len());
    let charts = data(&html)["charts"].as_array().unwrap().clone();
    let over = charts
        .iter()
        .find(|c| c["title"] == "Latency of each request by when it was sent")
        .unwrap();
    let labels: Vec<&str> = over["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "E2E max",
            "E2E min",
            "E2E p50",
            "failed",
            "E2E p99",
            "above p99"
        ]
    );
    let count = |col: &serde_json::Value| match col {
        serde_json::Value::Array(a) => a.iter().filter(|v| !v.is_null()).count(),
        sparse => sparse["at"].as_array().unwrap().len(),
    };
    // Every failure is a mark of its own; every request above the run's p99 is a point.
    assert_eq!(count(&over["data"][4]), 500);
    let p99 = run.summary.e2e.p99;
    let above = run
        .records
        .iter()
        .filter(|r| r.ok && r.latency * 1000.0 > p99)
        .count();
    assert!(above > 0);
    assert_eq!(count(&over["data"][6]), above);
    // 250 s at 1 s bins: no more than 1,000 columns of band, never an average.
    assert!(count(&over["data"][1]) <= 1000);
    assert!(html.contains("binned 1 s by start; band = min-max"));
    check_in_browser(&file, "bench-binned");

    let all_failed = synthetic(20, 1);
    let page =
        loupe_cli::cmd::bench::html::page(std::slice::from_ref(&all_failed), false, Vec::new());
    let file = dir.path().join("failed.html");
    loupe_cli::cmd::bench::html::write(&file, &page).unwrap();
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.contains("No request completed") && html.contains("20 of 20 requests failed"));
    assert!(html.contains("HTTP 500: &lt;busy&gt;"));
    check_in_browser(&file, "bench-all-failed");
}

#[test]
fn an_image_runs_input_histogram_counts_the_image_tokens_the_server_reported() {
    let mut run = synthetic(40, 1000);
    for r in &mut run.records {
        // 100..150 text tokens, 576 image tokens each, as the server counted them.
        r.server_prompt_len = Some(r.prompt_len + 576);
    }
    loupe_bench::point::count_images(&mut run.summary, &mut run.beyond, &run.records);
    assert!(run.summary.total_input_vision_tokens > 0);
    let dir = tempfile::tempdir().unwrap();
    let html = |run: &loupe_bench::RunOutcome, name: &str| {
        let page = loupe_cli::cmd::bench::html::page(std::slice::from_ref(run), false, Vec::new());
        let file = dir.path().join(name);
        loupe_cli::cmd::bench::html::write(&file, &page).unwrap();
        std::fs::read_to_string(&file).unwrap()
    };
    let charts = data(&html(&run, "image.html"))["charts"]
        .as_array()
        .unwrap()
        .clone();
    let titles: Vec<&str> = charts.iter().filter_map(|c| c["title"].as_str()).collect();
    assert!(
        titles.contains(&"Input length (text only) histogram"),
        "{titles:?}"
    );
    let with = charts
        .iter()
        .find(|c| c["title"] == "Input length with image tokens (server-reported) histogram")
        .unwrap_or_else(|| panic!("no image-token histogram in {titles:?}"));
    // The counted bins hold the server's counts (676..726), the text one the text's (100..149).
    let filled = |c: &serde_json::Value| -> Vec<f64> {
        let (edges, counts) = (
            c["data"][0].as_array().unwrap(),
            c["data"][1].as_array().unwrap(),
        );
        // The last edge closes the step line (it repeats the last count): bins are the rest.
        edges[..edges.len() - 1]
            .iter()
            .zip(counts)
            .filter(|(_, n)| n.as_f64().is_some_and(|n| n > 0.0))
            .map(|(e, _)| e.as_f64().unwrap())
            .collect()
    };
    let with_bins = filled(with);
    assert!(
        !with_bins.is_empty() && with_bins.iter().all(|&e| (600.0..=726.0).contains(&e)),
        "{with_bins:?}"
    );
    let text = charts
        .iter()
        .find(|c| c["title"] == "Input length (text only) histogram")
        .unwrap();
    let text_bins = filled(text);
    assert!(
        !text_bins.is_empty() && text_bins.iter().all(|&e| e < 150.0),
        "{text_bins:?}"
    );

    // A text-only run keeps the one histogram under its old title.
    let plain = synthetic(40, 1000);
    let charts = data(&html(&plain, "text.html"))["charts"]
        .as_array()
        .unwrap()
        .clone();
    let titles: Vec<&str> = charts.iter().filter_map(|c| c["title"].as_str()).collect();
    assert!(titles.contains(&"Input length histogram"));
    assert!(!titles.iter().any(|t| t.contains("image tokens")));
}

#[test]
fn a_scraped_run_rebuilds_byte_for_byte_whatever_its_floats() {
    // Floats whose shortest decimals serde_json's default parser reads back one bit off.
    let hard = [1.7546217903306627, 7.2316896362404055, 9.612558037550293];
    let mut run = synthetic(300, 50);
    run.info.request_rate = hard[1];
    run.info.accept_length = Some(hard[2]);
    let points = |k: f64| {
        (0..40)
            .map(|i| (i as f64 * 0.1 + hard[0] / 100.0, k * hard[i % 3]))
            .collect::<Vec<_>>()
    };
    run.info.server_metrics = Some(loupe_bench::scrape::Scraped {
        interval: std::time::Duration::from_millis(100),
        scrapes: 40,
        series: vec![
            loupe_bench::scrape::Series {
                name: "sglang:num_running_reqs".into(),
                labels: vec![("dp_rank".into(), "0".into())],
                points: points(1.0),
            },
            loupe_bench::scrape::Series {
                name: "sglang:token_usage".into(),
                labels: Vec::new(),
                points: points(0.01),
            },
        ],
        summary: loupe_bench::scrape::ScrapeSummary {
            queue: None,
            running: Some(loupe_bench::scrape::MeanMax {
                mean: hard[0],
                max: hard[2],
            }),
            kv_usage: None,
            preemptions: Some(0.0),
            cache_hit_pct: Some(hard[1]),
        },
        warning: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let timings = dir.path().join("live.requests.jsonl");
    let record = |r: &loupe_bench::RunOutcome| loupe_bench::report::record(r, false);
    loupe_bench::timings::write(&timings, std::slice::from_ref(&run), record).unwrap();
    let live = dir.path().join("live.html");
    let page =
        loupe_cli::cmd::bench::html::page(std::slice::from_ref(&run), false, vec![record(&run)]);
    loupe_cli::cmd::bench::html::write(&live, &page).unwrap();
    let html = std::fs::read_to_string(&live).unwrap();
    assert!(html.contains("Running requests (server)"));
    let again = dir.path().join("again.html");
    ok(loupe().arg("report").arg(&timings).arg("-o").arg(&again));
    assert!(
        std::fs::read(&again).unwrap() == std::fs::read(&live).unwrap(),
        "the rebuilt page differs from the live one"
    );
}

#[test]
fn the_onset_of_degradation_is_marked_by_its_stated_rule() {
    // 100 requests/s; from 20 s on every TTFT is 5x: the onset is the bin at 20 s.
    let mut run = synthetic(4000, 1000);
    for r in run.records.iter_mut().filter(|r| r.ok && r.start >= 20.0) {
        r.ttft *= 5.0;
        r.latency += r.ttft;
    }
    run.summary = loupe_bench::metrics::summarize(&run.records, 41.0, true, None);
    let slos = vec![("ttft".to_string(), 100.0)];
    run.beyond = loupe_bench::beyond::summarize(&run.records, 41.0, &[50.0, 99.0], &slos);
    let page = loupe_cli::cmd::bench::html::page(std::slice::from_ref(&run), false, Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("onset.html");
    loupe_cli::cmd::bench::html::write(&file, &page).unwrap();
    let html = std::fs::read_to_string(&file).unwrap();
    let charts = data(&html)["charts"].as_array().unwrap().clone();
    let over = charts
        .iter()
        .find(|c| c["title"] == "Latency of each request by when it was sent")
        .unwrap();
    assert_eq!(over["x_rules"][0]["label"], "onset (heuristic)");
    assert_eq!(over["x_rules"][0]["x"], 20);
    assert_eq!(over["x_rules"][1]["label"], "TTFT p90 > SLO");
    // The rule is said on the page, with what it found.
    assert!(html.contains("whose p90 TTFT both exceed 2x the p90 TTFT of the first 10% of"));
    assert!(
        html.contains("marked on the chart: at 20 s"),
        "onset sentence"
    );
    check_in_browser(&file, "bench-onset");

    // A steady run: no marker, and the page says none was found.
    let steady = synthetic(2000, 1000);
    let page = loupe_cli::cmd::bench::html::page(std::slice::from_ref(&steady), false, Vec::new());
    let file = dir.path().join("steady.html");
    loupe_cli::cmd::bench::html::write(&file, &page).unwrap();
    let html = std::fs::read_to_string(&file).unwrap();
    let charts = data(&html)["charts"].as_array().unwrap().clone();
    let over = charts
        .iter()
        .find(|c| c["title"] == "Latency of each request by when it was sent")
        .unwrap();
    assert_eq!(over["x_rules"].as_array().unwrap().len(), 0);
    assert!(html.contains("none found; the baseline p90 TTFT is"));
}

#[test]
fn a_16_run_sweep_page_stays_under_1_mb_whatever_the_runs_sizes() {
    let dir = tempfile::tempdir().unwrap();
    // At the per-run cap of requests drawn one by one (500 at 16 runs), and far past it.
    for n in [500, 10_000] {
        let runs: Vec<loupe_bench::RunOutcome> = (1..=16)
            .map(|c| {
                let mut r = synthetic(n, 50);
                r.label = format!("concurrency {c}");
                r.info.max_concurrency = Some(c);
                r
            })
            .collect();
        let records = runs
            .iter()
            .map(|r| loupe_bench::report::record(r, false))
            .collect();
        let page = loupe_cli::cmd::bench::html::page(&runs, true, records);
        let file = dir.path().join(format!("sweep16x{n}.html"));
        loupe_cli::cmd::bench::html::write(&file, &page).unwrap();
        let html = std::fs::read_to_string(&file).unwrap();
        assert!(html.len() < 1_000_000, "16 x {n}: {} bytes", html.len());
        // Every run is there, with its curves holding the table's percentiles (R1).
        assert!(html.contains(r#"<details class="section" id="run-16">"#));
        let charts = data(&html)["charts"].as_array().unwrap().clone();
        let curves = charts
            .iter()
            .filter(|c| c["title"] == "TTFT by percentile")
            .count();
        assert_eq!(curves, 16);
        check_in_browser(&file, &format!("bench-sweep16x{n}"));
    }
}
