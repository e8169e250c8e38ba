//! The RPD activity: a real rocpd-schema SQLite file (schema version 3) holding every rank of
//! a data-parallel group, as SGLang's RPD mode produces `trace.rpd`. Host spans are
//! `rocpd_api` rows, each rank's ops are `rocpd_op` rows on `gpuId` = the global rank, and
//! `rocpd_api_ops` links each op to the host op that ran it. rocprofiler's utility views
//! (`api`, `op`, `top`, `busy`) are created, so `select * from top` works as with ROCm.
//!
//! Times are Unix nanoseconds (ROCm's tracer uses a boot-relative clock; tools only subtract).

use std::collections::HashMap;
use std::io::Write;

use rusqlite::{Connection, params};

use crate::capture::{Capture, ExportSpec};

const SCHEMA: &str = "
CREATE TABLE rocpd_metadata (id INTEGER PRIMARY KEY, tag varchar(4096), value varchar(4096));
CREATE TABLE rocpd_string (id INTEGER PRIMARY KEY, string varchar(4096));
CREATE TABLE rocpd_ustring (id INTEGER PRIMARY KEY, string varchar(4096));
CREATE TABLE rocpd_api (id INTEGER PRIMARY KEY, pid integer, tid integer, start integer, end integer,
    apiName_id integer REFERENCES rocpd_string(id), category_id integer REFERENCES rocpd_string(id),
    domain_id integer REFERENCES rocpd_string(id), args_id integer REFERENCES rocpd_ustring(id));
CREATE TABLE rocpd_op (id INTEGER PRIMARY KEY, gpuId integer, queueId integer, sequenceId integer,
    start integer, end integer, description_id integer REFERENCES rocpd_string(id),
    opType_id integer REFERENCES rocpd_string(id));
CREATE TABLE rocpd_api_ops (id INTEGER PRIMARY KEY, api_id integer REFERENCES rocpd_api(id),
    op_id integer REFERENCES rocpd_op(id));
CREATE TABLE rocpd_kernelapi (api_ptr_id integer PRIMARY KEY REFERENCES rocpd_api(id), stream varchar(18),
    gridX integer, gridY integer, gridZ integer, workgroupX integer, workgroupY integer, workgroupZ integer,
    groupSegmentSize integer, privateSegmentSize integer, kernelName_id integer REFERENCES rocpd_string(id));
CREATE TABLE rocpd_copyapi (api_ptr_id integer PRIMARY KEY REFERENCES rocpd_api(id), stream varchar(18),
    size integer, width integer, height integer, kind integer, dst varchar(18), src varchar(18),
    dstDevice integer, srcDevice integer, sync bool, pinned bool);
CREATE TABLE rocpd_monitor (id INTEGER PRIMARY KEY, deviceType varchar(16), deviceId integer,
    monitorType varchar(16), start integer, end integer, value varchar(255));
CREATE VIEW api AS SELECT rocpd_api.id, pid, tid, start, end, A.string AS apiName, B.string AS args
    FROM rocpd_api INNER JOIN rocpd_string A ON A.id = rocpd_api.apiName_id
    INNER JOIN rocpd_ustring B ON B.id = rocpd_api.args_id;
CREATE VIEW op AS SELECT rocpd_op.id, gpuId, queueId, sequenceId, start, end, A.string AS description,
    B.string AS opType FROM rocpd_op INNER JOIN rocpd_string A ON A.id = rocpd_op.description_id
    INNER JOIN rocpd_string B ON B.id = rocpd_op.opType_id;
CREATE VIEW top AS SELECT C.string AS Name, count(C.string) AS TotalCalls,
    sum(A.end-A.start) / 1000 AS TotalDuration_us,
    (sum(A.end-A.start)/count(C.string)) / 1000.0 AS Ave_us,
    sum(A.end-A.start) * 100.0 / (SELECT sum(A.end-A.start) FROM rocpd_op A) AS Percentage
    FROM (SELECT opType_id AS name_id, start, end FROM rocpd_op
            WHERE description_id IN (SELECT id FROM rocpd_string WHERE string='')
          UNION
          SELECT description_id, start, end FROM rocpd_op
            WHERE description_id NOT IN (SELECT id FROM rocpd_string WHERE string='')) A
    JOIN rocpd_string C ON C.id = A.name_id GROUP BY Name ORDER BY TotalDuration_us DESC;
CREATE VIEW busy AS SELECT A.gpuId, GpuTime, WallTime, GpuTime*1.0/WallTime AS Busy
    FROM (SELECT gpuId, sum(end-start) AS GpuTime FROM rocpd_op GROUP BY gpuId) A
    INNER JOIN (SELECT max(end) - min(start) AS WallTime FROM rocpd_op) B;
";

/// Interned strings of one table.
struct Strings<'c> {
    ids: HashMap<String, i64>,
    insert: rusqlite::Statement<'c>,
}

impl<'c> Strings<'c> {
    fn new(conn: &'c Connection, table: &str) -> rusqlite::Result<Self> {
        Ok(Strings {
            ids: HashMap::new(),
            insert: conn.prepare(&format!("INSERT INTO {table} (id, string) VALUES (?1, ?2)"))?,
        })
    }

    fn id(&mut self, s: &str) -> rusqlite::Result<i64> {
        if let Some(id) = self.ids.get(s) {
            return Ok(*id);
        }
        let id = self.ids.len() as i64 + 1;
        self.insert.execute(params![id, s])?;
        self.ids.insert(s.to_string(), id);
        Ok(id)
    }
}

fn sql(e: rusqlite::Error) -> std::io::Error {
    std::io::Error::other(format!("SQLite: {e}"))
}

/// Build every rank of `capture` as an SQLite database in memory and write its file image
/// into `out` (the caller's temporary file).
pub fn write(out: &mut impl Write, spec: &ExportSpec, capture: &Capture) -> std::io::Result<()> {
    let mut conn = Connection::open_in_memory().map_err(sql)?;
    conn.execute_batch(SCHEMA).map_err(sql)?;
    let tx = conn.transaction().map_err(sql)?;
    {
        let mut meta = tx
            .prepare("INSERT INTO rocpd_metadata (tag, value) VALUES (?1, ?2)")
            .map_err(sql)?;
        for (k, v) in [
            ("schema_version", "3".to_string()),
            ("gpu_stride", "1000".into()),
            ("pid_stride", "10000000".into()),
            ("producer", format!("loupe {}", env!("CARGO_PKG_VERSION"))),
            ("profile_id", spec.profile_id.clone()),
            ("model", spec.model_name.clone()),
        ] {
            meta.execute(params![k, v]).map_err(sql)?;
        }
        let mut strings = Strings::new(&tx, "rocpd_string").map_err(sql)?;
        let mut ustrings = Strings::new(&tx, "rocpd_ustring").map_err(sql)?;
        // Empty string first: rocprofiler's views test for it.
        strings.id("").map_err(sql)?;
        ustrings.id("").map_err(sql)?;
        let mut api = tx
            .prepare("INSERT INTO rocpd_api (id, pid, tid, start, end, apiName_id, category_id, domain_id, args_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)")
            .map_err(sql)?;
        let mut op = tx
            .prepare("INSERT INTO rocpd_op (id, gpuId, queueId, sequenceId, start, end, description_id, opType_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
            .map_err(sql)?;
        let mut api_ops = tx
            .prepare("INSERT INTO rocpd_api_ops (id, api_id, op_id) VALUES (?1, ?2, ?3)")
            .map_err(sql)?;
        let mut monitor = tx
            .prepare("INSERT INTO rocpd_monitor (deviceType, deviceId, monitorType, start, end, value) VALUES ('cpu', ?1, ?2, ?3, ?3, ?4)")
            .map_err(sql)?;
        let pid = std::process::id() as i64;
        let kernel_type = strings.id("KernelExecution").map_err(sql)?;
        let (mut api_id, mut op_id, mut link_id) = (0i64, 0i64, 0i64);
        let empty_args = ustrings.id("").map_err(sql)?;
        for step in &capture.steps {
            let ns = |t| spec.clock.unix_ns(t);
            let cat = strings.id("scheduler").map_err(sql)?;
            for (phase, s, e) in &step.phases {
                api_id += 1;
                let name = strings.id(phase.name()).map_err(sql)?;
                api.execute(params![
                    api_id,
                    pid,
                    1,
                    ns(*s),
                    ns(*e),
                    name,
                    cat,
                    empty_args
                ])
                .map_err(sql)?;
            }
            let at = step.phases.first().map_or(0, |p| ns(p.1));
            monitor
                .execute(params![
                    capture.dp_rank as i64,
                    "kv_used_tokens",
                    at,
                    step.info.kv_used_tokens.to_string()
                ])
                .map_err(sql)?;
            for (tp, ops) in step.rank_ops.iter().enumerate() {
                let gpu = (capture.dp_rank * spec.tp_size + tp) as i64;
                let op_cat = strings.id("cpu_op").map_err(sql)?;
                for (seq, o) in ops.iter().enumerate() {
                    let (s, e) = (ns(o.start), ns(o.end));
                    api_id += 1;
                    let host_name = strings
                        .id(&format!("loupe::{}", o.kind.name()))
                        .map_err(sql)?;
                    let args = match o.layer {
                        Some(l) => ustrings
                            .id(&format!("layer={l} dims={:?}", o.dims))
                            .map_err(sql)?,
                        None => ustrings.id(&format!("dims={:?}", o.dims)).map_err(sql)?,
                    };
                    api.execute(params![
                        api_id,
                        pid,
                        100 + tp as i64,
                        s,
                        e,
                        host_name,
                        op_cat,
                        args
                    ])
                    .map_err(sql)?;
                    op_id += 1;
                    let desc = strings.id(o.kind.name()).map_err(sql)?;
                    op.execute(params![op_id, gpu, 0, seq as i64, s, e, desc, kernel_type])
                        .map_err(sql)?;
                    link_id += 1;
                    api_ops
                        .execute(params![link_id, api_id, op_id])
                        .map_err(sql)?;
                }
            }
        }
    }
    tx.commit().map_err(sql)?;
    let image = conn.serialize(rusqlite::MAIN_DB).map_err(sql)?;
    out.write_all(&image)
}
