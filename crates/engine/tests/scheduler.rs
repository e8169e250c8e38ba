//! The scheduler on a real checkpoint: every way of batching the same greedy requests
//! (chunked prefill, prefix cache, pages, retraction under KV pressure, tensor and data
//! parallelism) must produce the same tokens as the plainest configuration.

use std::path::Path;
use std::sync::{Arc, Mutex};

use loupe_engine::observer::{ForwardMode, StepObserver, StepReport};
use loupe_engine::{
    Engine, EngineArgs, FinishReason, GenerateRequest, RequestOutput, SamplingParams,
};

fn llama() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/llama")
        .to_string_lossy()
        .into_owned()
}

fn engine(f: impl FnOnce(&mut EngineArgs)) -> Engine {
    let mut a = EngineArgs {
        model_path: llama(),
        threads: Some(2),
        ..Default::default()
    };
    f(&mut a);
    Engine::start(a).expect("engine starts")
}

fn prompt(seed: usize, len: usize) -> Vec<u32> {
    (0..len)
        .map(|i| ((seed * 37 + i * 11) % 250 + 3) as u32)
        .collect()
}

fn greedy(n: usize) -> SamplingParams {
    SamplingParams {
        max_new_tokens: n,
        temperature: 0.0,
        ignore_eos: true,
        ..Default::default()
    }
}

/// Submit all at once, wait for all; per request its tokens and final output.
fn run(e: &Engine, reqs: &[(Vec<u32>, SamplingParams)]) -> Vec<(Vec<u32>, RequestOutput)> {
    let rxs: Vec<_> = reqs
        .iter()
        .enumerate()
        .map(|(i, (ids, p))| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            e.submit(GenerateRequest {
                rid: format!("req-{i}"),
                input_ids: ids.clone(),
                params: p.clone(),
                stream: true,
                stream_interval: None,
                log_metrics: true,
                output: tx,
            })
            .expect("accepted");
            rx
        })
        .collect();
    rxs.into_iter()
        .map(|mut rx| {
            let mut toks = Vec::new();
            loop {
                let o = rx
                    .blocking_recv()
                    .expect("the engine answers until the end");
                toks.extend_from_slice(&o.token_ids);
                if o.finish.is_some() {
                    return (toks, o);
                }
            }
        })
        .collect()
}

fn tokens(out: &[(Vec<u32>, RequestOutput)]) -> Vec<Vec<u32>> {
    out.iter().map(|(t, _)| t.clone()).collect()
}

fn workload() -> Vec<(Vec<u32>, SamplingParams)> {
    (0..6)
        .map(|i| (prompt(i, 20 + 13 * i), greedy(40)))
        .collect()
}

#[test]
fn chunked_prefill_pages_and_cache_do_not_change_outputs() {
    let reference = tokens(&run(
        &engine(|a| {
            a.chunked_prefill_size = None;
            a.disable_radix_cache = true;
        }),
        &workload(),
    ));
    assert!(reference.iter().all(|t| t.len() == 40));
    for (what, f) in [
        (
            "chunked prefill of 16 tokens",
            Box::new(|a: &mut EngineArgs| a.chunked_prefill_size = Some(16))
                as Box<dyn Fn(&mut EngineArgs)>,
        ),
        (
            "pages of 4 tokens",
            Box::new(|a: &mut EngineArgs| a.page_size = 4),
        ),
        (
            "max 2 running",
            Box::new(|a: &mut EngineArgs| a.max_running_requests = Some(2)),
        ),
        (
            "longest-prefix-match policy",
            Box::new(|a: &mut EngineArgs| a.schedule_policy = loupe_engine::SchedulePolicy::Lpm),
        ),
        (
            "tensor parallel 2",
            Box::new(|a: &mut EngineArgs| a.tp_size = 2),
        ),
        (
            "data parallel 2",
            Box::new(|a: &mut EngineArgs| a.dp_size = 2),
        ),
    ] {
        let e = engine(f);
        assert_eq!(tokens(&run(&e, &workload())), reference, "{what}");
    }
}

#[test]
fn both_routers_spread_requests_over_data_parallel_groups() {
    use std::sync::atomic::Ordering::Relaxed;
    for lb in [
        loupe_engine::LoadBalance::RoundRobin,
        loupe_engine::LoadBalance::ShortestQueue,
    ] {
        let e = engine(|a| {
            a.dp_size = 2;
            a.load_balance = lb;
        });
        run(&e, &workload());
        let per_group: Vec<u64> = e
            .stats()
            .iter()
            .map(|s| s.generation_tokens_total.load(Relaxed))
            .collect();
        assert_eq!(per_group.iter().sum::<u64>(), 6 * 40, "{lb:?}");
        assert!(
            per_group.iter().all(|&n| n >= 40),
            "{lb:?} left a group idle: {per_group:?}"
        );
    }
}

#[test]
fn shared_prefixes_are_served_from_the_cache() {
    let e = engine(|_| {});
    let base = prompt(1, 64);
    let mut other = base.clone();
    other.extend_from_slice(&[7, 8, 9]);
    let first = run(&e, &[(base.clone(), greedy(8))]);
    assert_eq!(first[0].1.cached_tokens, 0);
    let second = run(&e, &[(other.clone(), greedy(8))]);
    // The first request's prompt (and its output, whose KV was computed) are cached.
    assert!(
        second[0].1.cached_tokens >= 64,
        "cached {}",
        second[0].1.cached_tokens
    );
    let fresh = run(
        &engine(|a| a.disable_radix_cache = true),
        &[(other, greedy(8))],
    );
    assert_eq!(second[0].0, fresh[0].0);
    assert_eq!(fresh[0].1.cached_tokens, 0);
}

#[test]
fn kv_pressure_retracts_and_still_finishes_everything() {
    let reference = tokens(&run(&engine(|_| {}), &workload()));
    // 6 requests need 555 tokens in all; 256 slots and an optimistic admission (reserving
    // almost nothing for future tokens) force retractions during decode.
    let e = engine(|a| {
        a.max_total_tokens = Some(256);
        a.chunked_prefill_size = Some(64);
        a.schedule_conservativeness = 0.05;
    });
    let out = run(&e, &workload());
    assert_eq!(tokens(&out), reference);
    let retractions: u32 = out.iter().map(|(_, o)| o.num_retractions).sum();
    assert!(
        retractions > 0,
        "the pool is small enough to force retraction"
    );
    let stats = &e.stats()[0];
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.retractions_total.load(Relaxed) as u32, retractions);
    // Counters are published at the end of the step that emitted the last outputs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while stats.kv_used_tokens.load(Relaxed) != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(stats.kv_used_tokens.load(Relaxed), 0, "all KV released");
}

#[test]
fn a_request_larger_than_the_pool_is_aborted_not_looped() {
    let e = engine(|a| a.max_total_tokens = Some(64));
    let out = run(&e, &[(prompt(3, 40), greedy(100))]);
    match &out[0].1.finish {
        Some(FinishReason::Abort(m)) => assert!(m.contains("--max-total-tokens"), "{m}"),
        other => panic!("expected an abort, got {other:?}"),
    }
}

#[test]
fn stop_token_and_min_new_tokens() {
    let e = engine(|_| {});
    let free = run(&e, &[(prompt(5, 10), greedy(12))]);
    let stop_at = free[0].0[4];
    let first_hit = free[0].0.iter().position(|t| *t == stop_at).unwrap();
    let mut p = greedy(12);
    p.stop_token_ids = vec![stop_at];
    let out = run(&e, &[(prompt(5, 10), p.clone())]);
    assert_eq!(out[0].1.finish, Some(FinishReason::StopToken(stop_at)));
    assert_eq!(out[0].0, free[0].0[..=first_hit]);
    // min_new_tokens masks the stop token until enough tokens exist.
    p.min_new_tokens = first_hit + 2;
    let out = run(&e, &[(prompt(5, 10), p)]);
    assert!(out[0].0.len() > first_hit + 1);
    assert!(!out[0].0[..first_hit + 2].contains(&stop_at));
}

#[test]
fn seeded_sampling_is_reproducible() {
    let e = engine(|_| {});
    let p = SamplingParams {
        max_new_tokens: 16,
        temperature: 0.8,
        top_p: 0.9,
        top_k: 50,
        seed: Some(7),
        ignore_eos: true,
        ..Default::default()
    };
    let a = run(&e, &[(prompt(2, 12), p.clone())]);
    let b = run(&e, &[(prompt(2, 12), p.clone())]);
    assert_eq!(a[0].0, b[0].0);
    let mut q = p;
    q.seed = Some(8);
    let c = run(&e, &[(prompt(2, 12), q)]);
    assert_ne!(a[0].0, c[0].0, "another seed, another sample");
}

/// Per step: counter, mode, batch size, ranks reporting ops, ops in all.
type StepRow = (u64, ForwardMode, usize, usize, usize);

#[derive(Default)]
struct Recorder {
    steps: Mutex<Vec<StepRow>>,
}

impl StepObserver for Recorder {
    fn step_begin(&self, _: &loupe_engine::observer::StepInfo) -> bool {
        true
    }
    fn step_end(&self, r: &StepReport<'_>) {
        let ops = r.rank_ops.iter().map(Vec::len).sum();
        self.steps.lock().unwrap().push((
            r.info.step,
            r.info.mode,
            r.info.batch_size,
            r.rank_ops.len(),
            ops,
        ));
    }
}

#[test]
fn observer_sees_every_step_and_every_rank() {
    let rec = Arc::new(Recorder::default());
    let e = engine(|a| {
        a.observer = Some(rec.clone());
        a.tp_size = 2;
        a.chunked_prefill_size = Some(32);
    });
    run(&e, &[(prompt(1, 70), greedy(3))]);
    // The last step reports to the observer just after its outputs went out.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while rec.steps.lock().unwrap().len() < 5 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let steps = rec.steps.lock().unwrap().clone();
    // 70 tokens in chunks of 32: three EXTEND steps, then two DECODE steps.
    let modes: Vec<ForwardMode> = steps.iter().map(|s| s.1).collect();
    use ForwardMode::*;
    assert_eq!(modes, [Extend, Extend, Extend, Decode, Decode]);
    assert_eq!(
        steps.iter().map(|s| s.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    for (_, _, bs, ranks, ops) in steps {
        assert_eq!((bs, ranks), (1, 2));
        assert!(ops > 2 * 2 * 10, "per-layer ops on both ranks: {ops}");
    }
}
