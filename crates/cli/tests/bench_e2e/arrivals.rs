//! Arrivals and run control against the real server, read back from the per-request CSV:
//! Poisson, constant and ramped schedules, --max-concurrency, warmup, --flush-cache, sweeps,
//! goodput and percentiles (against the scripted server, whose gaps are known).

use std::collections::BTreeMap;

use crate::common::*;
use crate::mock::{self, Behaviour};

type Row = BTreeMap<String, String>;

fn num(r: &Row, k: &str) -> f64 {
    r[k].parse().unwrap_or_else(|_| panic!("{k}: {}", r[k]))
}

fn gaps(rows: &[Row]) -> Vec<f64> {
    rows.windows(2)
        .map(|w| num(&w[1], "intended_s") - num(&w[0], "intended_s"))
        .collect()
}

/// Most requests in flight at once, from their send and end times.
fn max_in_flight(rows: &[Row]) -> usize {
    let mut events: Vec<(f64, i32)> = rows
        .iter()
        .flat_map(|r| {
            let s = num(r, "start_s");
            [(s, 1), (s + num(r, "e2e_ms") / 1e3, -1)]
        })
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0, 0);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    most as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_follow_rate_burstiness_and_ramp() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let out = s.jsonl();
    let run = |extra: &'static [&'static str], csv: &str| {
        let mut a: Vec<String> = [
            "--base-url",
            &url,
            "--dataset-name",
            "random-ids",
            "--num-prompts",
            "30",
            "--random-input-len",
            "16",
            "--random-output-len",
            "2",
            "--output-file",
            &out,
            "--output-csv",
            csv,
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let poisson = s.path("poisson.csv").display().to_string();
    let constant = s.path("constant.csv").display().to_string();
    let ramp = s.path("ramp.csv").display().to_string();
    for (extra, csv) in [
        (&["--request-rate", "60"][..], &poisson),
        (
            &["--request-rate", "60", "--burstiness", "inf"][..],
            &constant,
        ),
        (
            &[
                "--ramp-up-strategy",
                "linear",
                "--ramp-up-start-rps",
                "20",
                "--ramp-up-end-rps",
                "200",
                "--burstiness",
                "inf",
            ][..],
            &ramp,
        ),
    ] {
        let a = run(extra, csv);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        assert!(bench(&a).await.unwrap().success());
    }
    let recs = s.records();
    assert_eq!(recs[0]["request_rate"], 60.0);
    assert_eq!(recs[1]["burstiness"], "inf");
    assert_eq!(recs[2]["request_rate_label"], "linear-ramp 20.0->200.0");

    // Poisson: exponential gaps, irregular, mean 1/60 s (loosely: 29 draws).
    let p = read_csv(std::path::Path::new(&poisson));
    assert_eq!(p.len(), 30);
    let g = gaps(&p);
    let mean = g.iter().sum::<f64>() / g.len() as f64;
    assert!((0.008..0.03).contains(&mean), "mean gap {mean}");
    assert!(g.iter().cloned().fold(0.0, f64::max) > 2.0 * g.iter().cloned().fold(1.0, f64::min));
    // Constant: every gap 1/60 s.
    let c = read_csv(std::path::Path::new(&constant));
    // (The CSV keeps full precision; the schedule itself is in floating point.)
    assert!(
        gaps(&c).iter().all(|g| (g - 1.0 / 60.0).abs() < 2e-6),
        "{:?}",
        gaps(&c)
    );
    // Ramp (constant spacing at each moment's rate): gaps shrink from 1/20 s towards 1/200 s.
    let r = read_csv(std::path::Path::new(&ramp));
    let g = gaps(&r);
    assert!((g[0] - 0.05).abs() < 2e-6 && g[28] < 0.0055, "{g:?}");
    for rows in [&p, &c, &r] {
        // Requests were picked up on time (generously: the tests share two cores) and sent
        // after they were due.
        assert!(
            rows.iter()
                .all(|x| num(x, "dispatched_s") >= num(x, "intended_s"))
        );
        assert!(rows.iter().all(|x| num(x, "schedule_lag_ms") < 100.0));
        assert!(rows.iter().all(|x| x["ok"] == "true"));
    }
    // The run lasts as long as its schedule.
    let last = num(&c[29], "intended_s");
    assert!((last - 29.0 / 60.0).abs() < 2e-6);
    assert!(recs[1]["duration"].as_f64().unwrap() > last);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_queues_in_the_client_and_says_so() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let out = s.jsonl();
    let csv = s.path("req.csv").display().to_string();
    let outcome = bench(&[
        "--base-url",
        &url,
        "--dataset-name",
        "random-ids",
        "--num-prompts",
        "12",
        "--random-input-len",
        "16",
        "--random-output-len",
        "24",
        "--random-range-ratio",
        "1",
        "--max-concurrency",
        "2",
        "--output-file",
        &out,
        "--output-csv",
        &csv,
    ])
    .await
    .unwrap();
    assert!(outcome.success());
    let rows = read_csv(std::path::Path::new(&csv));
    assert_eq!(max_in_flight(&rows), 2);
    // All were due at once; ten of them waited for a slot, and that wait is reported.
    let queued = rows
        .iter()
        .filter(|r| num(r, "client_queue_ms") > 1.0)
        .count();
    assert!(queued >= 9, "{queued} requests waited for a slot");
    let r = s.record();
    assert_eq!(r["max_concurrency"], 2);
    assert!(f(&r, "mean_client_queue_ms") > 0.0);
    // E2E counted from the schedule includes the wait: no coordinated omission.
    assert!(f(&r, "mean_e2e_latency_incl_queue_ms") > f(&r, "mean_e2e_latency_ms") * 1.5);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_requests_and_flush_cache_reach_the_server() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let out = s.jsonl();
    let run = |warmup: &'static str, flush: bool, seed: &'static str| {
        let mut a = vec![
            "--base-url".to_string(),
            url.clone(),
            "--dataset-name".into(),
            "random-ids".into(),
            "--num-prompts".into(),
            "1".into(),
            "--random-input-len".into(),
            "64".into(),
            "--random-range-ratio".into(),
            "1".into(),
            "--random-output-len".into(),
            "4".into(),
            "--warmup-requests".into(),
            warmup.into(),
            "--seed".into(),
            seed.into(),
            "--tokenize-prompt".into(),
            "--output-file".into(),
            out.clone(),
        ];
        if flush {
            a.push("--flush-cache".into());
        }
        a
    };
    let mut seen = Vec::new();
    for (warmup, flush, seed) in [("3", false, "1"), ("0", false, "2"), ("1", true, "3")] {
        let requests0 = metric(&server, "sglang:num_requests_total").await;
        let cached0 = metric(&server, "sglang:cached_tokens_total").await;
        let a = run(warmup, flush, seed);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        assert!(bench(&a).await.unwrap().success());
        seen.push((
            metric(&server, "sglang:num_requests_total").await - requests0,
            metric(&server, "sglang:cached_tokens_total").await - cached0,
        ));
    }
    // Warmup re-sends the first prompt: the measured request then finds it cached...
    assert_eq!(seen[0].0, 4.0, "three warmups and the request");
    assert!(seen[0].1 >= 60.0, "{seen:?}");
    // ...no warmup, nothing sent before, nothing cached...
    assert_eq!(seen[1], (1.0, 0.0));
    // ...and --flush-cache empties the cache between warmup and the run.
    assert_eq!(seen[2], (2.0, 0.0));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_give_one_record_per_point_and_one_summary() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let out = s.jsonl();
    let summary = s.path("sweep.csv").display().to_string();
    let common = [
        "--base-url",
        &url,
        "--dataset-name",
        "random-ids",
        "--num-prompts",
        "8",
        "--random-input-len",
        "16",
        "--random-output-len",
        "4",
        "--output-file",
        &out,
        "--summary-csv",
        &summary,
    ];
    let mut conc = common.to_vec();
    conc.extend(["--sweep-max-concurrency", "1,4"]);
    let o = bench(&conc).await.unwrap();
    assert_eq!((o.runs.len(), o.requests(), o.failed()), (2, 16, 0));
    let rows = read_csv(std::path::Path::new(&summary));
    let labels: Vec<&str> = rows.iter().map(|r| r["run"].as_str()).collect();
    assert_eq!(labels, ["concurrency 1", "concurrency 4"]);

    let mut rate = common.to_vec();
    rate.extend(["--sweep-request-rate", "40,inf"]);
    assert_eq!(bench(&rate).await.unwrap().runs.len(), 2);
    let rows = read_csv(std::path::Path::new(&summary));
    let labels: Vec<&str> = rows.iter().map(|r| r["run"].as_str()).collect();
    assert_eq!(labels, ["rate 40.0", "rate inf"]);

    let r = s.records();
    assert_eq!(r.len(), 4);
    assert_eq!(
        (
            r[0]["max_concurrency"].clone(),
            r[1]["max_concurrency"].clone()
        ),
        (1.into(), 4.into())
    );
    assert_eq!(
        (r[2]["request_rate"].clone(), r[3]["request_rate"].clone()),
        (40.0.into(), "inf".into())
    );
    // Rate 40 spreads 8 requests over 7/40 s at least; inf sends them at once.
    assert!(f(&r[2], "duration") > 0.1);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goodput_percentiles_and_csv() {
    // The scripted server: a chunk every 3 ms however busy the machine is, so the ITL
    // percentiles below have real gaps to measure (a fast engine on a loaded machine can put
    // several of a stream's chunks into one read, and those gaps are honestly 0).
    let m = mock::start(|_| Behaviour::Stream {
        tokens: 6,
        first_ms: 2,
        gap_ms: 3,
        text_len: 1,
    })
    .await;
    let url = m.url.clone();
    let s = Scratch::new();
    let out = s.jsonl();
    let csv = s.path("req.csv").display().to_string();
    let common = [
        "--base-url",
        &url,
        "--dataset-name",
        "random-ids",
        "--num-prompts",
        "10",
        "--random-input-len",
        "16",
        "--random-output-len",
        "6",
        "--random-range-ratio",
        "1",
        "--output-file",
        &out,
        "--percentiles",
        "50,99.9",
    ];
    let mut lax = common.to_vec();
    lax.extend([
        "--slo",
        "ttft=60000,tpot=60000,e2e=60000",
        "--output-csv",
        &csv,
    ]);
    assert!(bench(&lax).await.unwrap().success());
    let mut strict = common.to_vec();
    strict.extend(["--goodput", "ttft:60000", "e2el:0.001"]);
    assert!(
        bench(&strict).await.unwrap().success(),
        "missing an SLO is not a failure"
    );

    let r = s.records();
    let g = &r[0];
    assert_eq!(
        g["goodput_slos_ms"],
        serde_json::json!({"ttft": 60000.0, "tpot": 60000.0, "e2el": 60000.0})
    );
    assert_eq!(f(g, "slo_attainment"), 1.0);
    assert!((f(g, "request_goodput") - f(g, "request_throughput")).abs() < 1e-9);
    let bad = &r[1];
    assert_eq!(f(bad, "slo_attainment"), 0.0);
    assert_eq!(f(bad, "request_goodput"), 0.0);
    assert_eq!(
        bad["slo_attainment_by_metric"],
        serde_json::json!({"ttft": 1.0, "e2el": 0.0})
    );

    // Percentiles asked for, from HdrHistograms, beside bench_serving's fixed set.
    let ttft = &g["hdr_percentiles_ms"]["ttft"];
    assert_eq!(ttft["count"], 10);
    let (p50, p999) = (
        ttft["p50"].as_f64().unwrap(),
        ttft["p99.9"].as_f64().unwrap(),
    );
    assert!(p50 <= p999 && p999 <= ttft["max"].as_f64().unwrap() * 1.001);
    let itl = &g["hdr_percentiles_ms"]["itl_token"];
    assert_eq!(itl["count"], 50, "5 gaps in each of 10 streams");
    let itl_p50 = itl["p50"].as_f64().unwrap();
    assert!(
        itl_p50 >= 1.0 && itl_p50 <= itl["p99.9"].as_f64().unwrap(),
        "ITL p50 {itl_p50} ms for chunks written 3 ms apart"
    );

    // One CSV row per request, with the figures the JSONL summarises.
    let rows = read_csv(std::path::Path::new(&csv));
    assert_eq!(rows.len(), 10);
    assert!(
        rows.iter()
            .all(|x| x["ok"] == "true" && x["output_len"] == "6" && x["error"].is_empty())
    );
    let mut ttfts: Vec<f64> = rows.iter().map(|x| num(x, "ttft_ms")).collect();
    let mean_ttft = ttfts.iter().sum::<f64>() / 10.0;
    assert!((mean_ttft - f(g, "mean_ttft_ms")).abs() < 0.01);
    // The HdrHistogram's p50 is a rank (the 5th of 10, as its bucket's top value, 3 significant
    // digits); bench_serving's median interpolates between the 5th and the 6th. The CSV keeps
    // full precision.
    ttfts.sort_by(f64::total_cmp);
    assert!(
        p50 >= ttfts[4] - 0.001 && p50 <= ttfts[4] * 1.001 + 0.001,
        "HDR p50 {p50} against the 5th TTFT {}",
        ttfts[4]
    );
    let median = f(g, "median_ttft_ms");
    assert!(
        (median - (ttfts[4] + ttfts[5]) / 2.0).abs() < 1e-3,
        "median {median}"
    );
}
