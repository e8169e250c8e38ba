//! `--search` (every probe a real run; bracketing, bisection, the closest probe when none
//! meets the SLOs) and `--sweep-isl-osl`.

use crate::common::*;
use crate::mock::{self, Behaviour};

fn probes(o: &loupe_bench::BenchOutcome) -> Vec<(f64, bool)> {
    o.search[0]
        .1
        .probes
        .iter()
        .map(|p| (p.value, p.meets))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_brackets_up_and_names_the_closest_probe_when_none_meets() {
    // Every stream answers in about a millisecond, whatever the load.
    let m = mock::start(|_| Behaviour::Stream {
        tokens: 3,
        first_ms: 1,
        gap_ms: 1,
        text_len: 1,
    })
    .await;
    let s = Scratch::new();
    let out = s.jsonl();
    let base = [
        "--base-url",
        &m.url,
        "--dataset-name",
        "random-ids",
        "--num-prompts",
        "8",
        "--random-input-len",
        "4",
        "--random-output-len",
        "3",
        "--tokenize-prompt",
        "--output-file",
        &out,
        "--search",
        "max-concurrency",
        "--search-max-probes",
        "4",
    ];
    // A generous SLO: every probe meets it, the search doubles up to its probe budget.
    let mut easy = base.to_vec();
    easy.extend(["--slo", "ttft=60000"]);
    let o = bench(&easy).await.unwrap();
    assert_eq!(
        probes(&o),
        [(1.0, true), (2.0, true), (4.0, true), (8.0, true)]
    );
    assert_eq!(o.search[0].1.best.unwrap().value, 8.0);
    assert_eq!(o.runs.len(), 4, "each probe is a run");
    assert_eq!(o.runs[3].label, "search concurrency 8");
    assert_eq!(o.runs[3].info.max_concurrency, Some(8));
    // An SLO nothing can meet: down from the start to one at a time, the closest named.
    let mut hard = base.to_vec();
    hard.extend(["--slo", "ttft=0.000001", "--search-start", "4"]);
    let o = bench(&hard).await.unwrap();
    assert_eq!(probes(&o), [(4.0, false), (2.0, false), (1.0, false)]);
    let r = &o.search[0].1;
    assert!(r.best.is_none() && r.closest.is_some());
    let records = s.records();
    assert_eq!(records.len(), 7, "every probe appended its record");
    assert!(records.iter().all(|r| r.get("slo_attainment").is_some()));
    // A search needs SLOs.
    let err = bench(&base).await.unwrap_err().to_string();
    assert!(err.contains("--search needs SLOs"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_isl_osl_grids_against_loupe_serve() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let out = s.jsonl();
    let o = bench(&[
        "--base-url",
        &url,
        "--num-prompts",
        "4",
        "--sweep-isl-osl",
        "16:4,48:4",
        "--search",
        "request-rate",
        "--slo",
        "e2e=600000",
        "--search-start",
        "50",
        "--search-max-probes",
        "2",
        "--output-file",
        &out,
        "--output-details",
    ])
    .await
    .unwrap();
    assert!(o.success());
    assert_eq!(o.search.len(), 2, "one search per ISL:OSL pair");
    assert_eq!(o.search[0].0.as_deref(), Some("D(16,4)"));
    assert_eq!(probes(&o), [(50.0, true), (100.0, true)]);
    let labels: Vec<&str> = o.runs.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "D(16,4) search rate 50.0",
            "D(16,4) search rate 100.0",
            "D(48,4) search rate 50.0",
            "D(48,4) search rate 100.0"
        ]
    );
    let r = s.records();
    let inputs = |i: usize| r[i]["input_lens"].as_array().unwrap()[0].as_u64().unwrap();
    assert!(
        inputs(0) < inputs(2),
        "the longer ISL: {} {}",
        inputs(0),
        inputs(2)
    );
    assert!(r.iter().all(|x| x["output_lens"][0] == 4));
}
