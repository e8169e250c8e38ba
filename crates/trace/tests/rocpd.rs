//! rocprofv3's rocpd database: told apart from RPD by its tables, read through its views into
//! kernels, copies and API regions joined by correlation. No public rocpd file is in the
//! fixtures, so the database is built here with rocprofiler-sdk's table and column names
//! (session-suffixed tables, unsuffixed views, `guid` on every row).

mod common;

use loupe_trace::analyze::summarize;
use loupe_trace::import::{Input, ReadOptions};

const SUFFIX: &str = "_00000000_0000_0000_0000_000000000001";

fn build(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let tables = [
        (
            "rocpd_metadata",
            "id INTEGER PRIMARY KEY, guid TEXT, tag TEXT, value TEXT",
        ),
        ("rocpd_string", "id INTEGER, guid TEXT, string TEXT"),
        (
            "rocpd_info_agent",
            "id INTEGER, guid TEXT, nid INTEGER, pid INTEGER, type TEXT, absolute_index INTEGER, logical_index INTEGER, type_index INTEGER, name TEXT",
        ),
        (
            "rocpd_info_kernel_symbol",
            "id INTEGER, guid TEXT, kernel_name TEXT, display_name TEXT",
        ),
        (
            "rocpd_event",
            "id INTEGER, guid TEXT, category_id INTEGER, correlation_id INTEGER, stack_id INTEGER, extdata TEXT",
        ),
        (
            "rocpd_region",
            "id INTEGER, guid TEXT, nid INTEGER, pid INTEGER, tid INTEGER, start INTEGER, end INTEGER, name_id INTEGER, event_id INTEGER",
        ),
        (
            "rocpd_kernel_dispatch",
            "id INTEGER, guid TEXT, agent_id INTEGER, kernel_id INTEGER, dispatch_id INTEGER, queue_id INTEGER, stream_id INTEGER, start INTEGER, end INTEGER, event_id INTEGER",
        ),
        (
            "rocpd_memory_copy",
            "id INTEGER, guid TEXT, start INTEGER, end INTEGER, size INTEGER, src_agent_id INTEGER, dst_agent_id INTEGER, event_id INTEGER",
        ),
    ];
    for (t, cols) in tables {
        conn.execute_batch(&format!(
            "CREATE TABLE {t}{SUFFIX} ({cols}); CREATE VIEW {t} AS SELECT * FROM {t}{SUFFIX};"
        ))
        .unwrap();
    }
    let g = "'g1'";
    conn.execute_batch(&format!(
        "INSERT INTO rocpd_metadata{SUFFIX} VALUES (1, {g}, 'schema_version', '3');
         INSERT INTO rocpd_string{SUFFIX} VALUES (1, {g}, 'hipLaunchKernel'), (2, {g}, 'HIP_RUNTIME_API'),
                (3, {g}, 'KERNEL_DISPATCH'), (4, {g}, 'hipMemcpyAsync'), (5, {g}, 'MEMORY_COPY'),
                (6, {g}, 'decode'), (7, {g}, 'MARKER_CORE_RANGE_API');
         INSERT INTO rocpd_info_agent{SUFFIX} VALUES (1, {g}, 0, 7, 'CPU', 0, 0, 0, 'cpu'), (2, {g}, 0, 7, 'GPU', 1, 0, 0, 'gfx942');
         INSERT INTO rocpd_info_kernel_symbol{SUFFIX} VALUES (1, {g}, '_Z4gemmv', 'gemm'), (2, {g}, '_Z4normv', 'norm');
         INSERT INTO rocpd_event{SUFFIX} VALUES
                (1, {g}, 2, 11, 0, '{{}}'), (2, {g}, 3, 11, 0, '{{}}'),
                (3, {g}, 2, 12, 0, '{{}}'), (4, {g}, 3, 12, 0, '{{}}'),
                (5, {g}, 2, 13, 0, '{{}}'), (6, {g}, 5, 13, 0, '{{}}'),
                (7, {g}, 7, 14, 0, '{{}}');
         INSERT INTO rocpd_region{SUFFIX} VALUES
                (1, {g}, 0, 7, 7, 1000, 1500, 1, 1),
                (2, {g}, 0, 7, 7, 2000, 2600, 1, 3),
                (3, {g}, 0, 7, 7, 3000, 3900, 4, 5),
                (4, {g}, 0, 7, 7, 500, 9000, 6, 7);
         INSERT INTO rocpd_kernel_dispatch{SUFFIX} VALUES
                (1, {g}, 2, 1, 1, 3, 1, 4000, 6000, 2),
                (2, {g}, 2, 2, 2, 3, 1, 6500, 7000, 4);
         INSERT INTO rocpd_memory_copy{SUFFIX} VALUES (1, {g}, 7100, 8100, 4096, 1, 2, 6);"
    ))
    .unwrap();
}

#[test]
fn rocprofv3_databases_read_like_rpd() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("7_results.db");
    build(&path);
    let s = summarize(
        &Input::open(&path, None).unwrap(),
        &ReadOptions::default(),
        0,
    )
    .unwrap();
    assert_eq!(s.format, "rocpd");
    let names: Vec<(&str, u64, i64)> = s
        .kernels
        .iter()
        .map(|k| (k.name.as_str(), k.calls, k.total_ns))
        .collect();
    assert_eq!(
        names,
        vec![
            ("gemm", 1, 2000),
            ("Memcpy HtoD", 1, 1000),
            ("norm", 1, 500)
        ]
    );
    assert_eq!(s.timeline.busy_ns, 3500);
    assert_eq!(s.timeline.total_memcpy_ns, 1000);
    // the launch calls join their kernels through correlation
    let a = &s.attribution;
    assert_eq!(a.unattributed, 0);
    let launch = a
        .by_op
        .iter()
        .find(|r| r.name == "hipLaunchKernel")
        .unwrap();
    assert_eq!((launch.kernels, launch.gpu_ns), (2, 2500));
    // copies run on no stream, so HTA's stream-based launch statistics see the two kernels
    assert_eq!(s.hta.launches.launches, 2);
    assert_eq!(s.hta.launches.delay.max_ns, Some(3900.0));
    // the roctx range is a step marker-free annotation on the host
    assert!(
        s.categories
            .iter()
            .any(|c| c.category == "user_annotation" && c.events == 1)
    );
}

#[test]
fn an_rpd_file_is_still_rpd() {
    let s = summarize(
        &Input::open(&common::data("matmul_result.rpd"), None).unwrap(),
        &ReadOptions::default(),
        0,
    )
    .unwrap();
    assert_eq!(s.format, "rpd");
}
