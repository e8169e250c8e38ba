//! Nsight Systems SQLite exports: a synthetic export with the documented tables (the layout of
//! `nsys export --type sqlite`), read into the Kineto vocabulary.

mod common;

use std::path::Path;

use common::read_all;
use loupe_trace::analyze::summarize;
use loupe_trace::export::merge::{CategoryFilter, merge};
use loupe_trace::import::{Input, ReadOptions};
use loupe_trace::{Id, Phase};

const PID: i64 = 4321;
const TID: i64 = 4330;

fn global_tid(pid: i64, tid: i64) -> i64 {
    (1 << 56) | (pid << 24) | tid
}

/// Two decode steps as NVTX ranges; each launches a GEMM, an NCCL all-reduce and copies a
/// result back; the session starts at `session_ns` (Unix).
fn export(path: &Path, session_ns: i64) {
    let c = rusqlite::Connection::open(path).unwrap();
    let g = global_tid(PID, TID);
    let gpid = global_tid(PID, 0);
    c.execute_batch(&format!(
        "CREATE TABLE StringIds (id INTEGER PRIMARY KEY, value TEXT NOT NULL);
         INSERT INTO StringIds VALUES (1, 'cudaLaunchKernel_v7000'), (2, 'cudaMemcpyAsync_v3020'),
           (3, 'void gemm_kernel<float, 128>(float*, float const*, int)'), (4, 'gemm_kernel'),
           (5, 'ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<4096ul>)'),
           (6, 'ncclDevKernel_AllReduce'), (7, 'scheduler'), (8, 'step[DECODE bs=4]');
         CREATE TABLE TARGET_INFO_SESSION_START_TIME (utcEpochNs INTEGER, utcTime TEXT, localTime TEXT);
         INSERT INTO TARGET_INFO_SESSION_START_TIME VALUES ({session_ns}, '', '');
         CREATE TABLE ThreadNames (nameId INTEGER, priority INTEGER, globalTid INTEGER);
         INSERT INTO ThreadNames VALUES (7, 0, {g});
         CREATE TABLE NVTX_EVENTS (start INTEGER, end INTEGER, eventType INTEGER, rangeId INTEGER,
           category INTEGER, color INTEGER, text TEXT, globalTid INTEGER, endGlobalTid INTEGER,
           textId INTEGER, domainId INTEGER);
         INSERT INTO NVTX_EVENTS VALUES (1000, 50000, 59, 0, 0, 0, NULL, {g}, NULL, 8, 0),
                                        (100000, 150000, 59, 0, 0, 0, 'step[DECODE bs=4]', {g}, NULL, NULL, 0),
                                        (60000, 60000, 34, 0, 0, 0, 'checkpoint', {g}, NULL, NULL, 0);
         CREATE TABLE CUPTI_ACTIVITY_KIND_RUNTIME (start INTEGER, end INTEGER, eventClass INTEGER,
           globalTid INTEGER, correlationId INTEGER, nameId INTEGER, returnValue INTEGER, callchainId INTEGER);
         INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME VALUES
           (2000, 2500, 0, {g}, 11, 1, 0, 0), (3000, 3400, 0, {g}, 12, 1, 0, 0), (4000, 4800, 0, {g}, 13, 2, 0, 0),
           (101000, 101500, 0, {g}, 21, 1, 0, 0), (102000, 102400, 0, {g}, 22, 1, 0, 0), (103000, 103800, 0, {g}, 23, 2, 0, 0);
         CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start INTEGER, end INTEGER, deviceId INTEGER,
           contextId INTEGER, streamId INTEGER, correlationId INTEGER, globalPid INTEGER,
           demangledName INTEGER, shortName INTEGER, gridX INTEGER, gridY INTEGER, gridZ INTEGER,
           blockX INTEGER, blockY INTEGER, blockZ INTEGER, registersPerThread INTEGER);
         INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES
           (5000, 25000, 0, 1, 7, 11, {gpid}, 3, 4, 132, 1, 1, 256, 1, 1, 128),
           (20000, 40000, 0, 1, 20, 12, {gpid}, 5, 6, 8, 1, 1, 512, 1, 1, 96),
           (105000, 135000, 0, 1, 7, 21, {gpid}, 3, 4, 132, 1, 1, 256, 1, 1, 128),
           (135000, 145000, 0, 1, 20, 22, {gpid}, 5, 6, 8, 1, 1, 512, 1, 1, 96);
         CREATE TABLE CUPTI_ACTIVITY_KIND_MEMCPY (start INTEGER, end INTEGER, deviceId INTEGER,
           contextId INTEGER, streamId INTEGER, correlationId INTEGER, globalPid INTEGER,
           bytes INTEGER, copyKind INTEGER, srcKind INTEGER, dstKind INTEGER);
         INSERT INTO CUPTI_ACTIVITY_KIND_MEMCPY VALUES
           (41000, 43000, 0, 1, 7, 13, {gpid}, 256, 2, 3, 2),
           (146000, 148000, 0, 1, 7, 23, {gpid}, 256, 2, 3, 2);"
    ))
    .unwrap();
}

#[test]
fn reads_kernels_copies_runtime_nvtx_and_flows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rank0.sqlite");
    export(&path, 1_727_743_122_500_000_000);
    let (info, evs) = read_all(&path);
    assert_eq!(info.base_ns, Some(1_727_743_122_500_000_000));
    assert_eq!(
        info.events,
        evs.len() as u64,
        "TraceInfo counts what was read"
    );
    let gemm = evs
        .iter()
        .find(|e| e.cat == "kernel" && e.name.starts_with("void gemm_kernel"))
        .unwrap();
    assert_eq!(
        (gemm.pid.clone(), gemm.tid.clone(), gemm.ts, gemm.dur),
        (Id::Int(0), Id::Int(7), Some(5000), 20_000)
    );
    let launch = evs.iter().find(|e| e.cat == "cuda_runtime").unwrap();
    assert_eq!(launch.name, "cudaLaunchKernel");
    assert_eq!(
        (launch.pid.clone(), launch.tid.clone()),
        (Id::Int(PID), Id::Int(TID))
    );
    assert_eq!(
        gemm.args.as_deref(),
        Some(
            r#"{"device": 0, "stream": 7, "correlation": 11, "grid": [132, 1, 1], "block": [256, 1, 1]}"#
        )
    );
    let copy = evs.iter().find(|e| e.cat == "gpu_memcpy").unwrap();
    assert_eq!(copy.name, "Memcpy DtoH (Device -> Pinned)");
    assert_eq!(
        copy.args.as_deref(),
        Some(r#"{"device": 0, "stream": 7, "correlation": 13, "bytes": 256}"#)
    );
    let steps: Vec<_> = evs.iter().filter(|e| e.cat == "user_annotation").collect();
    assert_eq!(steps.len(), 3);
    assert!(
        steps
            .iter()
            .all(|e| e.name == "step[DECODE bs=4]" || e.ph.is_instant())
    );
    // One flow per runtime call, each start on the host thread and end on the GPU stream.
    let starts = evs.iter().filter(|e| e.ph == Phase::FLOW_START).count();
    let ends: Vec<_> = evs.iter().filter(|e| e.ph == Phase::FLOW_END).collect();
    assert_eq!((starts, ends.len()), (6, 6));
    let end_of_gemm = ends.iter().find(|e| e.ts == Some(5000)).unwrap();
    assert_eq!(end_of_gemm.id, Some(Id::Int((PID << 32) | 11)));
    let names: Vec<String> = evs
        .iter()
        .filter(|e| e.name == "thread_name")
        .filter_map(|e| e.arg("name")?.as_str().map(String::from))
        .collect();
    assert_eq!(names, ["scheduler"]);
}

#[test]
fn summary_and_steps_on_nsys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rank0.sqlite");
    export(&path, 0);
    let s = summarize(
        &Input::open(&path, None).unwrap(),
        &ReadOptions::default(),
        0,
    )
    .unwrap();
    // GEMM [5,25) and all-reduce [20,40) us overlap for 5 us; the copy [41,43) is alone.
    assert_eq!(s.steps.len(), 2);
    assert_eq!(s.steps[0].gpu.computation_ns, 20_000);
    assert_eq!(s.steps[0].gpu.exposed_comm_ns, 15_000);
    assert_eq!(s.steps[1].gpu.computation_ns, 30_000);
    assert_eq!(s.timeline.total_comm_ns, 30_000);
    assert_eq!(s.timeline.exposed_memcpy_ns, 4_000);
    assert_eq!(s.timeline.total_ns, 148_000 - 5_000);
    assert_eq!(s.format, "nsys-sqlite");
}

#[test]
fn separate_sessions_align_on_unix_time() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("run-TP-0.sqlite");
    let b = dir.path().join("run-TP-1.sqlite");
    export(&a, 1_000_000_000_000);
    export(&b, 1_000_000_250_000);
    let out = dir.path().join("merged.json");
    let inputs = vec![
        Input::open(&a, None).unwrap(),
        Input::open(&b, None).unwrap(),
    ];
    merge(
        &inputs,
        &out,
        &ReadOptions::default(),
        &CategoryFilter::default(),
    )
    .unwrap();
    let (info, evs) = read_all(&out);
    assert_eq!(info.base_ns, Some(1_000_000_000_000));
    let gemm = |label: &str| {
        evs.iter()
            .find(|e| e.cat == "kernel" && matches!(&e.pid, Id::Str(p) if p.starts_with(label)))
            .unwrap()
            .ts
            .unwrap()
    };
    assert_eq!(gemm("[TP01]") - gemm("[TP00]"), 250_000);
}
