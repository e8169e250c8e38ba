//! SGLang's profiling endpoints end to end: real requests drive real scheduler steps, and the
//! files the profiler writes are opened and checked.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use loupe_server::{RunningServer, ServerConfig};
use serde_json::{Value, json};

mod common;

use common::{client, post_text as post};

async fn start(f: impl FnOnce(&mut ServerConfig)) -> RunningServer {
    common::start(2, f).await
}

async fn status(s: &RunningServer) -> Value {
    let r = client()
        .get(format!("{}/profile_status", s.url()))
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

/// Keep the server busy: `n` requests of `tokens` output tokens each, all at once.
fn load(s: &RunningServer, n: usize, tokens: usize) -> tokio::task::JoinHandle<()> {
    let url = s.url();
    tokio::spawn(async move {
        let reqs = (0..n).map(|i| {
            let url = url.clone();
            async move {
                let body = json!({"input_ids": [5 + i as u32, 6, 7, 8], "sampling_params": {"max_new_tokens": tokens, "temperature": 0, "ignore_eos": true}});
                let r = client().post(format!("{url}/generate")).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 200);
            }
        });
        futures::future::join_all(reqs).await;
    })
}

async fn wait_idle(s: &RunningServer) -> Value {
    // Up to 2 minutes: a debug build merging four ranks' traces on a slow, busy 2-core
    // machine took longer than 10 s.
    for _ in 0..12_000 {
        let st = status(s).await;
        if st["state"] == "idle" {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the profile never finished: {}", status(s).await);
}

fn read_trace(path: &Path) -> (String, Value) {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (text, v)
}

fn events<'a>(trace: &'a Value, pred: impl Fn(&Value) -> bool + 'a) -> Vec<&'a Value> {
    trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| pred(e))
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn num_steps_captures_exactly_that_many_steps_on_every_rank() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(|a| a.tp_size = 2).await;
    let busy = load(&s, 4, 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (code, text) = post(
        &s,
        "/start_profile",
        json!({"output_dir": dir.path(), "num_steps": "5", "profile_id": "run1"}),
    )
    .await;
    assert_eq!((code, text.as_str()), (200, "Start profiling.\n"));
    let st = wait_idle(&s).await;
    assert_eq!(st["steps_captured"], 5);
    assert_eq!(
        names(dir.path()),
        ["run1-TP-0.trace.json.gz", "run1-TP-1.trace.json.gz"]
    );
    for tp in 0..2 {
        let (text, trace) = read_trace(&dir.path().join(format!("run1-TP-{tp}.trace.json.gz")));
        assert_eq!(trace["schemaVersion"], 1);
        assert_eq!(trace["distributedInfo"]["rank"], tp);
        assert_eq!(trace["distributedInfo"]["world_size"], 2);
        assert!(trace["baseTimeNanoseconds"].as_i64().unwrap() > 1_700_000_000_000_000_000);
        assert!(trace["deviceProperties"].is_array());
        assert!(
            trace["traceName"]
                .as_str()
                .unwrap()
                .ends_with(&format!("run1-TP-{tp}.trace.json.gz"))
        );
        let steps = events(&trace, |e| {
            e["name"].as_str().is_some_and(|n| n.starts_with("step["))
        });
        assert_eq!(
            steps.len(),
            5,
            "rank {tp}: one step span per captured batch"
        );
        // The compute lane, labelled honestly, with per-layer ops linked from the host.
        let lane = events(&trace, |e| {
            e["ph"] == "M" && e["name"] == "process_name" && e["pid"] == tp
        });
        assert_eq!(lane[0]["args"]["name"], format!("rank {tp} compute (CPU)"));
        let kernels = events(&trace, |e| e["cat"] == "kernel");
        for op in [
            "qkv_proj",
            "attention",
            "o_proj",
            "all_reduce [nccl-equivalent CPU collective]",
            "gate_up_proj",
            "down_proj",
            "lm_head",
        ] {
            assert!(
                kernels.iter().any(|k| k["name"] == op),
                "rank {tp}: no {op} kernel"
            );
        }
        assert!(
            kernels.iter().all(|k| k["args"]["Input Dims"].is_array()),
            "record_shapes is on by default"
        );
        let starts = events(&trace, |e| e["ph"] == "s" && e["cat"] == "ac2g");
        let ends = events(&trace, |e| e["ph"] == "f" && e["bp"] == "e");
        assert_eq!(starts.len(), kernels.len());
        assert_eq!(ends.len(), kernels.len());
        let mut ids: Vec<u64> = starts.iter().map(|e| e["id"].as_u64().unwrap()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(
            ids.len(),
            kernels.len(),
            "correlation ids are unique within the rank"
        );
        // Kineto's timestamp format on every timed event: microseconds with three decimals.
        let timed: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(r#""ph": "X""#))
            .collect();
        assert!(!timed.is_empty());
        for line in timed {
            let ts = line
                .split(r#""ts": "#)
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap();
            let (us, frac) = ts.split_once('.').unwrap_or_else(|| panic!("{line}"));
            assert!(us.parse::<u64>().is_ok() && frac.len() == 3, "{line}");
        }
    }
    // Rank 0 also carries the scheduler's phases.
    let (_, t0) = read_trace(&dir.path().join("run1-TP-0.trace.json.gz"));
    assert_eq!(events(&t0, |e| e["name"] == "scheduler.run_batch").len(), 5);
    busy.abort();
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_start_stop_and_state_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(|_| {}).await;
    assert_eq!(status(&s).await["state"], "idle");
    // Stop with nothing running: SGLang's message, as a 4xx.
    let (code, body) = post(&s, "/stop_profile", json!({})).await;
    assert_eq!(code, 409);
    assert!(
        body.contains("Profiling is not in progress. Call /start_profile first."),
        "{body}"
    );
    let (code, _) = post(&s, "/start_profile", json!({"output_dir": dir.path(), "profile_prefix": "exp", "activities": ["CPU", "GPU", "MEM"]})).await;
    assert_eq!(code, 200);
    let (code, body) = post(&s, "/start_profile", json!({})).await;
    assert_eq!(code, 409);
    assert!(
        body.contains("Profiling is already in progress. Call /stop_profile first."),
        "{body}"
    );
    load(&s, 2, 20).await.unwrap();
    let st = status(&s).await;
    assert_eq!(st["state"], "active");
    let id = st["profile_id"].as_str().unwrap().to_string();
    let (code, body) = post(&s, "/end_profile", json!({})).await;
    assert_eq!(
        (code, body.as_str()),
        (200, "Stop profiling. This will take some time.\n")
    );
    let st = status(&s).await;
    assert_eq!(st["state"], "idle");
    let files = names(dir.path());
    assert_eq!(
        files,
        [
            format!("exp-{id}-TP-0-memory.json"),
            format!("exp-{id}-TP-0.trace.json.gz")
        ],
        "files are complete when stop returns"
    );
    let (_, trace) = read_trace(&dir.path().join(&files[1]));
    assert!(
        !events(&trace, |e| e["ph"] == "C"
            && e["name"] == "KV cache (tokens)")
        .is_empty()
    );
    let mem: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(&files[0])).unwrap())
            .unwrap();
    assert!(mem["kv_cache"]["peak_used_tokens"].as_u64().unwrap() > 0);
    // After the stop: a second stop names the last profile.
    let (code, body) = post(&s, "/stop_profile", json!({})).await;
    assert_eq!(code, 409);
    assert!(body.contains(&id), "{body}");
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_stage_writes_one_file_per_stage() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(|_| {}).await;
    let (code, _) = post(&s, "/start_profile", json!({"output_dir": dir.path(), "profile_by_stage": true, "num_steps": 2, "profile_id": "st"})).await;
    assert_eq!(code, 200);
    assert_eq!(status(&s).await["state"], "armed");
    load(&s, 3, 30).await.unwrap();
    let st = wait_idle(&s).await;
    assert_eq!(
        names(dir.path()),
        [
            "st-TP-0-DECODE.trace.json.gz",
            "st-TP-0-EXTEND.trace.json.gz"
        ],
        "{st}"
    );
    let (_, decode) = read_trace(&dir.path().join("st-TP-0-DECODE.trace.json.gz"));
    let steps = events(&decode, |e| {
        e["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("step[DECODE"))
    });
    assert_eq!(steps.len(), 2);
    let (_, extend) = read_trace(&dir.path().join("st-TP-0-EXTEND.trace.json.gz"));
    assert!(
        events(&extend, |e| e["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("step[DECODE")))
        .is_empty()
    );
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_profiles_writes_one_trace_with_every_rank_labelled() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(|a| {
        a.tp_size = 2;
        a.dp_size = 2;
    })
    .await;
    let busy = load(&s, 8, 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (code, text) = post(
        &s,
        "/start_profile",
        json!({"output_dir": dir.path(), "num_steps": 3, "profile_id": "m1",
               "profile_prefix": "exp", "merge_profiles": true}),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    let st = wait_idle(&s).await;
    assert!(st["errors"].as_array().is_none_or(|e| e.is_empty()), "{st}");
    // SGLang's name for the merged trace, prefix or not (scripts glob for `merged-*`).
    let merged = dir.path().join("merged-m1.trace.json.gz");
    assert!(
        st["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str() == Some(merged.to_str().unwrap())),
        "the merged file is reported with the others: {st}"
    );
    let per_rank: Vec<String> = names(dir.path())
        .into_iter()
        .filter(|n| n.contains("-TP-"))
        .collect();
    assert_eq!(per_rank.len(), 4, "{per_rank:?}");
    // Every rank's events are in, each under its SGLang label, and no flow id is shared
    // between ranks (correlation ids restart in every rank's file).
    let (_, trace) = read_trace(&merged);
    let mut expected_events = 0;
    for name in &per_rank {
        let (_, t) = read_trace(&dir.path().join(name));
        expected_events += events(&t, |e| e["ph"] != "M").len();
    }
    let merged_events = events(&trace, |e| e["ph"] != "M");
    assert_eq!(merged_events.len(), expected_events);
    let mut labels: Vec<&str> = merged_events
        .iter()
        .map(|e| e["pid"].as_str().unwrap().split(' ').next().unwrap())
        .collect();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(
        labels,
        ["[TP00-DP00]", "[TP00-DP01]", "[TP01-DP00]", "[TP01-DP01]"]
    );
    let mut flow_ids: Vec<(u64, &str)> = events(&trace, |e| e["ph"] == "s")
        .iter()
        .map(|e| (e["id"].as_u64().unwrap(), e["pid"].as_str().unwrap()))
        .collect();
    let starts = flow_ids.len();
    assert!(starts > 0);
    flow_ids.sort_unstable();
    flow_ids.dedup_by_key(|(id, _)| *id);
    assert_eq!(flow_ids.len(), starts, "flow ids are unique across ranks");
    busy.abort();
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_and_output_root() {
    let root = tempfile::tempdir().unwrap();
    let s = start(|a| a.profile_output_root = Some(root.path().to_path_buf())).await;
    for (body, code, needle) in [
        (
            json!({"activities": ["CPU", "NPU"]}),
            400,
            "unknown activity 'NPU'",
        ),
        (json!({"profile_by_stage": true}), 400, "needs num_steps"),
        (json!({"activities": ["CUDA_PROFILER"]}), 400, "CUDA"),
        (
            json!({"output_dir": "/etc"}),
            403,
            "outside --profile-output-root",
        ),
        (
            json!({"output_dir": "../up"}),
            403,
            "outside --profile-output-root",
        ),
    ] {
        let (c, b) = post(&s, "/start_profile", body.clone()).await;
        assert_eq!(c, code, "{body}: {b}");
        assert!(b.contains(needle), "{body}: {b}");
    }
    assert_eq!(
        status(&s).await["state"],
        "idle",
        "nothing was armed by a refused request"
    );
    // A relative output_dir lands inside the root; start_step in the future stays armed.
    let (c, _) = post(
        &s,
        "/start_profile",
        json!({"output_dir": "runs/a", "start_step": 1000000, "num_steps": 1}),
    )
    .await;
    assert_eq!(c, 200);
    let st = status(&s).await;
    assert_eq!(st["state"], "armed");
    assert!(st["output_dir"].as_str().unwrap().ends_with("runs/a"));
    let (c, _) = post(&s, "/stop_profile", json!({})).await;
    assert_eq!(c, 200);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpd_activity_writes_a_rocpd_database_whose_top_view_works() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(|a| a.tp_size = 2).await;
    // Armed before the load, so the window's steps come whatever the machine's speed.
    let (c, _) = post(
        &s,
        "/start_profile",
        json!({"output_dir": dir.path(), "activities": ["RPD"], "num_steps": 3, "profile_id": "r"}),
    )
    .await;
    assert_eq!(c, 200);
    let busy = load(&s, 2, 100);
    wait_idle(&s).await;
    assert_eq!(names(dir.path()), ["r.rpd"]);
    let db = rusqlite::Connection::open(dir.path().join("r.rpd")).unwrap();
    let version: String = db
        .query_row(
            "select value from rocpd_metadata where tag = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, "3");
    let top: Vec<(String, i64)> = db
        .prepare("select Name, TotalCalls from top")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let calls = |name: &str| top.iter().find(|t| t.0 == name).map_or(0, |t| t.1);
    // tiny has 4 layers: 4 qkv projections per rank per step, 2 ranks, 3 steps.
    assert_eq!(calls("qkv_proj"), 4 * 2 * 3, "{top:?}");
    let gpus: i64 = db
        .query_row("select count(distinct gpuId) from rocpd_op", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(gpus, 2);
    let linked: i64 = db
        .query_row(
            "select count(*) from rocpd_api_ops join api on api.id = rocpd_api_ops.api_id",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let ops: i64 = db
        .query_row("select count(*) from rocpd_op", [], |r| r.get(0))
        .unwrap();
    assert_eq!(linked, ops, "every op links to the host op that ran it");
    busy.abort();
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiling_endpoints_need_the_admin_key() {
    let s = start(|a| {
        a.api_key = Some("user".into());
        a.admin_api_key = Some("admin".into());
    })
    .await;
    let c = client();
    let url = |p: &str| format!("{}{p}", s.url());
    assert_eq!(
        c.post(url("/start_profile"))
            .bearer_auth("user")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.get(url("/profile_status"))
            .bearer_auth("user")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let dir: PathBuf = tempfile::tempdir().unwrap().keep();
    let r = c
        .post(url("/start_profile"))
        .bearer_auth("admin")
        .json(&json!({"output_dir": dir}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        c.post(url("/stop_profile"))
            .bearer_auth("admin")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    std::fs::remove_dir_all(dir).unwrap();
    s.shutdown().await.unwrap();
}
