//! The bench page's budgets (docs/PERFORMANCE.md, "HTML reports"): its size and build time
//! for seeded synthetic runs of 10,000 and 100,000 requests (128 output tokens each, 1% failed,
//! latency degrading over the last 30% of the run), and for sweeps of 16 such runs of 1,000
//! and 10,000 requests each (the page `loupe bench --sweep-max-concurrency` with 16 points
//! writes). The pages are written to target/bench-report/ for `scripts/bench_report.sh` to
//! time in the browser.
//!
//!   cargo bench -p loupe --bench report_page

use std::time::Instant;

use loupe_bench::outcome::{RunInfo, RunOutcome};
use loupe_bench::record::RequestRecord;
use loupe_bench::{beyond, metrics};

/// splitmix64: a seeded stream of uniform numbers in [0, 1).
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.next()).ln()
    }
}

fn run(n: usize) -> RunOutcome {
    run_seeded(n, 42, None)
}

fn run_seeded(n: usize, seed: u64, max_concurrency: Option<usize>) -> RunOutcome {
    let mut rng = Seeded(seed);
    let rate = 20.0;
    let mut t = 0.0;
    let span = n as f64 / rate;
    let records: Vec<RequestRecord> = (0..n)
        .map(|i| {
            t += rng.exp(1.0 / rate);
            let slow = if t > 0.7 * span {
                1.0 + 4.0 * (t / span - 0.7) / 0.3
            } else {
                1.0
            };
            let ok = i % 100 != 37;
            let ttft = (0.03 + rng.exp(0.02)) * slow;
            let gaps: Vec<f64> = (0..127).map(|_| (0.015 + rng.exp(0.005)) * slow).collect();
            let latency = if ok {
                ttft + gaps.iter().sum::<f64>()
            } else {
                rng.exp(0.5)
            };
            RequestRecord {
                ok,
                error: if ok {
                    String::new()
                } else {
                    "HTTP 503: overloaded".into()
                },
                prompt_len: 200 + (rng.next() * 800.0) as usize,
                output_len: if ok { 128 } else { 0 },
                output_len_reported: ok,
                intended: t,
                dispatched: t + 0.0002,
                start: t + 0.0003,
                ttft: if ok { ttft } else { 0.0 },
                latency,
                first_tokens: 1,
                gap_tokens: if ok { vec![1; gaps.len()] } else { Vec::new() },
                gaps: if ok { gaps } else { Vec::new() },
                ..Default::default()
            }
        })
        .collect();
    let duration = records
        .iter()
        .map(|r| r.start + r.latency)
        .fold(0.0, f64::max);
    let slos = vec![("ttft".to_string(), 200.0), ("tpot".to_string(), 40.0)];
    RunOutcome {
        label: max_concurrency.map_or("run".into(), |c| format!("concurrency {c}")),
        info: RunInfo {
            backend: "sglang".into(),
            dataset_name: "random-ids".into(),
            request_rate: rate,
            rate_label: rate.to_string(),
            burstiness: 1.0,
            max_concurrency,
            sharegpt_output_len: None,
            random_input_len: 1000,
            random_output_len: 128,
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
        summary: metrics::summarize(&records, duration, true, None),
        beyond: beyond::summarize(&records, duration, &[50.0, 90.0, 95.0, 99.0, 99.9], &slos),
        records,
        retokenized: None,
        native: true,
    }
}

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-report");
    std::fs::create_dir_all(&dir).unwrap();
    println!("| requests | page bytes | build ms (best of 3) |");
    println!("|---:|---:|---:|");
    for n in [10_000, 100_000] {
        let r = run(n);
        let runs = std::slice::from_ref(&r);
        let mut best = f64::INFINITY;
        let mut bytes = Vec::new();
        for _ in 0..3 {
            let t0 = Instant::now();
            let record = loupe_bench::report::record(&r, false);
            let page = loupe_cli::cmd::bench::html::page(runs, false, vec![record]);
            bytes = loupe_report::render(&page).unwrap();
            best = best.min(t0.elapsed().as_secs_f64() * 1e3);
        }
        std::fs::write(dir.join(format!("run{}k.html", n / 1000)), &bytes).unwrap();
        println!("| {n} | {} | {best:.0} |", bytes.len());
    }
    println!();
    println!("| sweep | requests | page bytes | build ms (best of 3) |");
    println!("|---|---:|---:|---:|");
    for n in [1_000, 10_000] {
        let runs: Vec<RunOutcome> = (1..=16)
            .map(|c| run_seeded(n, 42 + c as u64, Some(c)))
            .collect();
        let mut best = f64::INFINITY;
        let mut bytes = Vec::new();
        for _ in 0..3 {
            let t0 = Instant::now();
            let records = runs
                .iter()
                .map(|r| loupe_bench::report::record(r, false))
                .collect();
            let page = loupe_cli::cmd::bench::html::page(&runs, true, records);
            bytes = loupe_report::render(&page).unwrap();
            best = best.min(t0.elapsed().as_secs_f64() * 1e3);
        }
        let name = format!("sweep16x{}k", n / 1000);
        std::fs::write(dir.join(format!("{name}.html")), &bytes).unwrap();
        println!(
            "| 16 runs x {n} | {} | {} | {best:.0} |",
            16 * n,
            bytes.len()
        );
    }
}
