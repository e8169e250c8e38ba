//! RPD (rocpd SQLite): rpd2tracing's mapping against the fixture's expected JSON, RPD's `top`
//! view, schema v3, and unknown schemas.

mod common;

use std::collections::BTreeMap;

use common::{data, read_all};
use loupe_trace::TraceError;
use loupe_trace::analyze::summarize;
use loupe_trace::analyze::top::top;
use loupe_trace::import::{Input, ReadOptions};
use loupe_trace::{Event, Phase};
use serde_json::Value;

/// One comparable line per event: rpd2tracing wrote integer microseconds (`start/1000` in
/// SQLite), loupe keeps nanoseconds, so times compare truncated to microseconds.
fn key_ours(e: &Event<'_>) -> String {
    let us = |ns: i64| ns.div_euclid(1000);
    let args: BTreeMap<String, String> = e
        .args
        .as_deref()
        .map(|a| serde_json::from_str::<BTreeMap<String, Value>>(a).unwrap())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, plain(&v)))
        .collect();
    match e.ph {
        Phase::COMPLETE => format!(
            "X|{}|{}|{}|{}|{}|{:?}",
            e.name,
            e.pid,
            e.tid,
            us(e.ts.unwrap()),
            us(e.dur),
            args
        ),
        Phase::METADATA if e.name.starts_with("process") => {
            format!("M|{}|{}|{:?}", e.name, e.pid, args)
        }
        Phase::METADATA => format!("M|{}|{}|{}|{:?}", e.name, e.pid, e.tid, args),
        Phase::COUNTER => format!("C|{}|{}|{}|{:?}", e.name, e.pid, us(e.ts.unwrap()), args),
        _ => format!(
            "{}|{}|{}|{}|{}|{}|{}",
            e.ph.0 as char,
            e.name,
            e.pid,
            e.tid,
            us(e.ts.unwrap()),
            e.id.as_ref().unwrap(),
            e.bp.as_deref().unwrap_or("")
        ),
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn key_expected(e: &serde_json::Map<String, Value>) -> String {
    let s = |k: &str| e.get(k).map(plain).unwrap_or_default();
    let args: BTreeMap<String, String> = e
        .get("args")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), plain(v))).collect())
        .unwrap_or_default();
    match s("ph").as_str() {
        "X" => format!(
            "X|{}|{}|{}|{}|{}|{:?}",
            s("name"),
            s("pid"),
            s("tid"),
            s("ts"),
            s("dur"),
            args
        ),
        "M" if s("name").starts_with("process") => {
            format!("M|{}|{}|{:?}", s("name"), s("pid"), args)
        }
        "M" => format!("M|{}|{}|{}|{:?}", s("name"), s("pid"), s("tid"), args),
        "C" => format!("C|{}|{}|{}|{:?}", s("name"), s("pid"), s("ts"), args),
        ph => format!(
            "{ph}|{}|{}|{}|{}|{}|{}",
            s("name"),
            s("pid"),
            s("tid"),
            s("ts"),
            s("id"),
            s("bp")
        ),
    }
}

#[test]
fn matches_rpd2tracing_output() {
    let (info, ours) = read_all(&data("matmul_result.rpd"));
    assert_eq!(
        info.events,
        ours.len() as u64,
        "TraceInfo counts what was read"
    );
    let expected: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(data("matmul_result.expected.json")).unwrap(),
    )
    .unwrap();
    let mut want: Vec<String> = expected
        .iter()
        .filter_map(Value::as_object)
        .filter(|m| !m.is_empty())
        .map(key_expected)
        .collect();
    let mut got: Vec<String> = ours.iter().map(key_ours).collect();
    assert_eq!(got.len(), 705);
    want.sort();
    got.sort();
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    assert_eq!(got.len(), want.len());
}

#[test]
fn converts_through_json_losslessly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rpd.json");
    let input = Input::open(&data("matmul_result.rpd"), None).unwrap();
    let n = loupe_trace::export::json::convert(&input, &out, &ReadOptions::default()).unwrap();
    assert_eq!(n, 705);
    let (_, direct) = read_all(&data("matmul_result.rpd"));
    let (_, via_json) = read_all(&out);
    let k = |v: &[Event<'static>]| v.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>();
    assert_eq!(k(&direct), k(&via_json));
}

#[test]
fn top_equals_the_files_own_view() {
    let path = data("matmul_result.rpd");
    let input = Input::open(&path, None).unwrap();
    let ours = top(&input, &ReadOptions::default()).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut stmt = conn
        .prepare("SELECT Name, TotalCalls, TotalDuration, Percentage FROM top")
        .unwrap();
    let view: Vec<(String, i64, i64, f64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ours.len(), view.len());
    for (name, calls, total, pct) in &view {
        let row = ours.iter().find(|r| &r.name == name).unwrap();
        assert_eq!((row.calls as i64, row.total_us), (*calls, *total), "{name}");
        assert!((row.percent - pct).abs() < 1e-9, "{name}");
    }
    assert_eq!(ours[0].name, "CopyHostToDevice");
}

#[test]
fn summary_works_on_rpd() {
    let input = Input::open(&data("matmul_result.rpd"), None).unwrap();
    let s = summarize(&input, &ReadOptions::default(), 0).unwrap();
    // 85 GPU ops: 55 copies (memcpy) and 30 kernels.
    let calls: u64 = s.kernels.iter().map(|k| k.calls).sum();
    assert_eq!(calls, 85);
    assert_eq!(s.timeline.total_memcpy_ns, 157_512_821);
    assert_eq!(s.format, "rpd");
}

/// A minimal schema-v3 RPD: API arguments live in `rocpd_ustring`, and there is no
/// `completionSignal` on ops.
fn v3_rpd(path: &std::path::Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE rocpd_metadata (id INTEGER PRIMARY KEY, tag TEXT, value TEXT);
         INSERT INTO rocpd_metadata (tag, value) VALUES ('schema_version', '3');
         CREATE TABLE rocpd_string (id INTEGER PRIMARY KEY, string TEXT);
         CREATE TABLE rocpd_ustring (id INTEGER PRIMARY KEY, string TEXT);
         INSERT INTO rocpd_string VALUES (1, ''), (2, 'hipLaunchKernel'), (3, 'KernelExecution'),
                                         (4, 'my_kernel'), (5, 'UserMarker');
         INSERT INTO rocpd_ustring VALUES (1, 'stream=0x0'), (2, 'step[DECODE bs=8]');
         CREATE TABLE rocpd_api (id INTEGER PRIMARY KEY, pid INTEGER, tid INTEGER, start INTEGER,
                                 end INTEGER, apiName_id INTEGER, category_id INTEGER,
                                 domain_id INTEGER, args_id INTEGER);
         INSERT INTO rocpd_api VALUES (1, 10, 11, 1000, 3000, 2, 0, 0, 1),
                                      (2, 10, 11, 500, 90000, 5, 0, 0, 2);
         CREATE TABLE rocpd_op (id INTEGER PRIMARY KEY, gpuId INTEGER, queueId INTEGER,
                                sequenceId INTEGER, start INTEGER, end INTEGER,
                                description_id INTEGER, opType_id INTEGER);
         INSERT INTO rocpd_op VALUES (1, 0, 1, 0, 5000, 25000, 4, 3);
         CREATE TABLE rocpd_api_ops (id INTEGER PRIMARY KEY, api_id INTEGER, op_id INTEGER);
         INSERT INTO rocpd_api_ops VALUES (1, 1, 1);",
    )
    .unwrap();
}

#[test]
fn schema_v3() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.rpd");
    v3_rpd(&path);
    let (_, evs) = read_all(&path);
    let call = evs.iter().find(|e| e.name == "hipLaunchKernel").unwrap();
    assert_eq!(call.args.as_deref(), Some(r#"{"desc": "stream=0x0"}"#));
    let marker = evs.iter().find(|e| e.cat == "user_annotation").unwrap();
    assert_eq!(
        (marker.name.as_ref(), marker.dur),
        ("step[DECODE bs=8]", 89_500)
    );
    let flow_start = evs.iter().find(|e| e.ph == Phase::FLOW_START).unwrap();
    // min(call end - 2 us, op start) = min(1000, 5000)
    assert_eq!(flow_start.ts, Some(1000));
    // The roctx step marker makes a decode step holding the kernel.
    let s = summarize(
        &Input::open(&path, None).unwrap(),
        &ReadOptions::default(),
        0,
    )
    .unwrap();
    assert_eq!(s.steps.len(), 1);
    assert_eq!(s.steps[0].gpu.busy_ns, 20_000);
}

#[test]
fn unknown_sqlite_schema_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE results (x INTEGER); INSERT INTO results VALUES (1);")
        .unwrap();
    let input = Input::open(&path, None).unwrap();
    let e = input
        .read(&ReadOptions::default(), &mut |_: &Event<'_>| Ok(()))
        .unwrap_err();
    assert!(matches!(e, TraceError::Format { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("unknown SQLite schema") && msg.contains("results"),
        "{msg}"
    );
    assert_eq!(e.exit_code(), 2);
}
