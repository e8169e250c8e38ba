//! AMD rocmProfileData (RPD, rocpd SQLite, schema v2 and v3) with rpd2tracing's mapping
//! (ROCm/rocmProfileData:tools/rpd2tracing.py), streamed row by row:
//!
//! - one process per GPU (`pid` = gpuId, named `GPU<id>`, sort index gpuId + 1000000), one
//!   thread per queue (`tid` = queueId); GPU ops are complete events named by their
//!   description (the kernel name), else their op type, with `args.desc` = op type;
//! - HIP API calls are complete events on their host thread (`Hip <tid>`), `args.desc` = the
//!   call's arguments; `UserMarker` calls (roctx ranges) are named by their text, and those
//!   without duration become process-scoped instants;
//! - every `rocpd_api_ops` row is an `api_op` flow from the call (at the earlier of its end
//!   minus 2 us and the op's start) to the op;
//! - counters: per-GPU `QueueDepth` and `Idle` (a call enqueues, its op's end dequeues),
//!   `rocpd_monitor` samples (named by monitor type), and `Allocated Memory` from
//!   hipMalloc/hipFree arguments, each extended to the trace's last timestamp.
//!
//! Differences: times stay in integer nanoseconds (rpd2tracing truncates to microseconds);
//! numbers are JSON numbers, not strings; ops and calls carry a Kineto category (`kernel`,
//! `gpu_memcpy`, `gpu_op`, `cuda_runtime`, `user_annotation`) so every loupe analysis works on
//! RPD; the "faux calling stack" frames rpd2tracing draws from UserMarkers are not drawn.
//! RPD times are on the tracer's monotonic clock, so there is no Unix time base.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use rusqlite::{Connection, Row, params};

use super::sqlite::{Counting, int, json_obj, meta, text};
use crate::error::{Result, TraceError};
use crate::export::json::write_str;
use crate::model::{Event, EventSink, Format, Id, Phase, TraceInfo};

pub struct Rpd {
    conn: Connection,
    path: std::path::PathBuf,
    /// Table holding API argument strings: `rocpd_ustring` (v3) or `rocpd_string` (v2).
    args_table: &'static str,
    schema: Option<String>,
    has: Vec<String>,
}

impl Rpd {
    pub fn open(conn: Connection, path: &Path, tables: Vec<String>) -> Result<Rpd> {
        let schema: Option<String> = conn
            .query_row(
                "SELECT value FROM rocpd_metadata WHERE tag = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .ok();
        let v3 = tables.iter().any(|t| t == "rocpd_ustring");
        Ok(Rpd {
            conn,
            path: path.to_path_buf(),
            args_table: if v3 { "rocpd_ustring" } else { "rocpd_string" },
            schema,
            has: tables,
        })
    }

    fn err(&self, e: rusqlite::Error) -> TraceError {
        TraceError::sqlite(&self.path, e)
    }

    fn has(&self, table: &str) -> bool {
        self.has.iter().any(|t| t == table)
    }

    pub fn info(&self) -> TraceInfo {
        let mut info = TraceInfo {
            format: Format::Rpd,
            ..TraceInfo::default()
        };
        if let Some(v) = &self.schema {
            info.other
                .push(("rpdSchemaVersion".into(), format!("\"{v}\"")));
        }
        info
    }

    pub fn read(&self, sink: &mut dyn EventSink) -> Result<TraceInfo> {
        let mut info = self.info();
        let mut emit = Counting::new(sink);
        self.metadata(&mut emit)?;
        self.ops(&mut emit)?;
        self.graphs(&mut emit)?;
        self.apis(&mut emit)?;
        self.flows(&mut emit)?;
        let t_end = self.scalar(
            "SELECT max(e) FROM (SELECT max(end) AS e FROM rocpd_api UNION ALL SELECT max(end) FROM rocpd_op)",
        )?;
        if let Some(t_end) = t_end {
            self.queue_counters(t_end, &mut emit)?;
            self.monitor_counters(&mut emit)?;
            self.memory_counter(t_end, &mut emit)?;
        }
        info.events = emit.events;
        Ok(info)
    }

    fn scalar(&self, sql: &str) -> Result<Option<i64>> {
        self.conn
            .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
            .map_err(|e| self.err(e))
    }

    fn each(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        super::sqlite::each(&self.conn, &self.path, sql, params, f)
    }

    fn metadata(&self, emit: &mut dyn EventSink) -> Result<()> {
        self.each(
            "SELECT DISTINCT gpuId FROM rocpd_op ORDER BY gpuId",
            [],
            |r| {
                let gpu: i64 = r.get(0).map_err(|e| self.err(e))?;
                emit.event(&meta(
                    "process_name",
                    gpu,
                    0,
                    json_obj("name", &format!("GPU{gpu}")),
                ))?;
                emit.event(&meta(
                    "process_sort_index",
                    gpu,
                    0,
                    format!("{{\"sort_index\": {}}}", gpu + 1_000_000),
                ))
            },
        )?;
        self.each(
            "SELECT DISTINCT pid, tid FROM rocpd_api ORDER BY pid, tid",
            [],
            |r| {
                let pid: i64 = r.get(0).map_err(|e| self.err(e))?;
                let tid: i64 = r.get(1).map_err(|e| self.err(e))?;
                emit.event(&meta(
                    "thread_name",
                    pid,
                    tid,
                    json_obj("name", &format!("Hip {tid}")),
                ))?;
                emit.event(&meta(
                    "thread_sort_index",
                    pid,
                    tid,
                    format!("{{\"sort_index\": {}}}", tid * 2),
                ))
            },
        )
    }

    fn ops(&self, emit: &mut dyn EventSink) -> Result<()> {
        let sql = "SELECT O.gpuId, O.queueId, O.start, O.end, D.string, T.string FROM rocpd_op O \
                   JOIN rocpd_string T ON T.id = O.opType_id JOIN rocpd_string D ON D.id = O.description_id \
                   ORDER BY O.id";
        self.each(sql, [], |r| {
            let op_type = text(r, 5);
            let desc = text(r, 4);
            let name = if desc.is_empty() { op_type } else { desc };
            let (start, end) = (int(r, 2), int(r, 3));
            emit.event(&Event {
                ph: Phase::COMPLETE,
                name: Cow::Borrowed(name),
                cat: Cow::Borrowed(op_category(op_type)),
                pid: Id::Int(int(r, 0)),
                tid: Id::Int(int(r, 1)),
                ts: Some(start),
                dur: end - start,
                args: Some(json_obj("desc", op_type).into()),
                ..Event::default()
            })
        })
    }

    /// Graph launches (`rocpd_graphLaunchapi`, newer tracers) as spans over their ops.
    fn graphs(&self, emit: &mut dyn EventSink) -> Result<()> {
        if !self.has("rocpd_graphLaunchapi") {
            return Ok(());
        }
        let sql = "SELECT A.graphExec, C.gpuId, C.queueId, min(C.start), max(C.end), count(*) \
                   FROM rocpd_graphLaunchapi A JOIN rocpd_api_ops B ON B.api_id = A.api_ptr_id \
                   JOIN rocpd_op C ON C.id = B.op_id GROUP BY A.api_ptr_id ORDER BY min(C.start)";
        self.each(sql, [], |r| {
            let exec = r
                .get_ref(0)
                .map(|v| match v {
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                    _ => String::new(),
                })
                .unwrap_or_default();
            let (start, end) = (int(r, 3), int(r, 4));
            emit.event(&Event {
                ph: Phase::COMPLETE,
                name: format!("Graph {exec}").into(),
                cat: "gpu_op".into(),
                pid: Id::Int(int(r, 1)),
                tid: Id::Int(int(r, 2)),
                ts: Some(start),
                dur: end - start,
                args: Some(format!("{{\"kernels\": {}}}", int(r, 5)).into()),
                ..Event::default()
            })
        })
    }

    fn apis(&self, emit: &mut dyn EventSink) -> Result<()> {
        let sql = format!(
            "SELECT A.pid, A.tid, A.start, A.end, N.string, G.string FROM rocpd_api A \
             JOIN rocpd_string N ON N.id = A.apiName_id JOIN {} G ON G.id = A.args_id ORDER BY A.id",
            self.args_table
        );
        self.each(&sql, [], |r| {
            let (start, end) = (int(r, 2), int(r, 3));
            let api = text(r, 4);
            let args = text(r, 5);
            let (pid, tid) = (Id::Int(int(r, 0)), Id::Int(int(r, 1)));
            if api == "UserMarker" {
                let label = args.replace('"', "");
                let instant = end == start;
                return emit.event(&Event {
                    ph: if instant {
                        Phase::INSTANT
                    } else {
                        Phase::COMPLETE
                    },
                    name: Cow::Borrowed(&label),
                    cat: "user_annotation".into(),
                    pid,
                    tid,
                    ts: Some(start),
                    dur: end - start,
                    scope: instant.then(|| "p".into()),
                    args: Some(json_obj("desc", &label).into()),
                    ..Event::default()
                });
            }
            emit.event(&Event {
                ph: Phase::COMPLETE,
                name: Cow::Borrowed(api),
                cat: "cuda_runtime".into(),
                pid,
                tid,
                ts: Some(start),
                dur: end - start,
                args: Some(json_obj("desc", &args.replace(['"', '\t'], "")).into()),
                ..Event::default()
            })
        })?;
        if self.has("rocpd_hsaApi") {
            let sql = "SELECT A.pid, A.tid, A.start, A.end, N.string, G.string FROM rocpd_hsaApi A \
                       JOIN rocpd_string N ON N.id = A.apiName_id JOIN rocpd_string G ON G.id = A.args_id \
                       ORDER BY A.id";
            self.each(sql, [], |r| {
                let (start, end) = (int(r, 2), int(r, 3));
                emit.event(&Event {
                    ph: Phase::COMPLETE,
                    name: Cow::Borrowed(text(r, 4)),
                    cat: "hsa_api".into(),
                    pid: Id::Int(int(r, 0)),
                    // rpd2tracing puts HSA calls on the thread id + 1 lane.
                    tid: Id::Int(int(r, 1) + 1),
                    ts: Some(start),
                    dur: end - start,
                    args: Some(json_obj("desc", &text(r, 5).replace('"', "")).into()),
                    ..Event::default()
                })
            })?;
        }
        Ok(())
    }

    fn flows(&self, emit: &mut dyn EventSink) -> Result<()> {
        let sql = "SELECT X.id, A.pid, A.tid, O.gpuId, O.queueId, A.end, O.start FROM rocpd_api_ops X \
                   JOIN rocpd_api A ON X.api_id = A.id JOIN rocpd_op O ON X.op_id = O.id ORDER BY X.id";
        self.each(sql, [], |r| {
            let id = Id::Int(int(r, 0));
            let op_start = int(r, 6);
            let flow = |ph, pid, tid, ts| Event {
                ph,
                name: "api_op".into(),
                cat: "api_op".into(),
                pid: Id::Int(pid),
                tid: Id::Int(tid),
                ts: Some(ts),
                id: Some(id.clone()),
                bp: (ph == Phase::FLOW_END).then(|| "e".into()),
                ..Event::default()
            };
            emit.event(&flow(
                Phase::FLOW_START,
                int(r, 1),
                int(r, 2),
                (int(r, 5) - 2_000).min(op_start),
            ))?;
            emit.event(&flow(Phase::FLOW_END, int(r, 3), int(r, 4), op_start))
        })
    }

    fn queue_counters(&self, t_end: i64, emit: &mut dyn EventSink) -> Result<()> {
        let gpus: Vec<i64> = {
            let mut v = Vec::new();
            self.each(
                "SELECT DISTINCT gpuId FROM rocpd_op ORDER BY gpuId",
                [],
                |r| {
                    v.push(int(r, 0));
                    Ok(())
                },
            )?;
            v
        };
        let sql = "SELECT ts, delta FROM ( \
                     SELECT A.start AS ts, 1 AS delta FROM rocpd_api_ops X JOIN rocpd_api A ON X.api_id = A.id \
                       JOIN rocpd_op O ON X.op_id = O.id WHERE O.gpuId = ?1 \
                     UNION ALL \
                     SELECT O.end, -1 FROM rocpd_api_ops X JOIN rocpd_api A ON X.api_id = A.id \
                       JOIN rocpd_op O ON X.op_id = O.id WHERE O.gpuId = ?1) \
                   ORDER BY ts, delta DESC";
        for gpu in gpus {
            let (mut depth, mut idle) = (0i64, 1i64);
            self.each(sql, params![gpu], |r| {
                let (ts, delta) = (int(r, 0), int(r, 1));
                if idle == 1 && delta > 0 {
                    idle = 0;
                    emit.event(&counter(gpu, "Idle", "idle", ts, idle))?;
                }
                if depth == 1 && delta < 0 {
                    idle = 1;
                    emit.event(&counter(gpu, "Idle", "idle", ts, idle))?;
                }
                depth += delta;
                emit.event(&counter(gpu, "QueueDepth", "depth", ts, depth))
            })?;
            emit.event(&counter(gpu, "Idle", "idle", t_end, idle))?;
            emit.event(&counter(gpu, "QueueDepth", "depth", t_end, depth))?;
        }
        Ok(())
    }

    fn monitor_counters(&self, emit: &mut dyn EventSink) -> Result<()> {
        if !self.has("rocpd_monitor") {
            return Ok(());
        }
        let mut sample = |r: &Row<'_>| -> Result<()> {
            let kind = text(r, 1);
            let value = text(r, 3);
            let number: String = match value.trim().parse::<f64>() {
                Ok(_) => value.trim().to_string(),
                Err(_) => {
                    let mut s = Vec::new();
                    write_str(&mut s, value);
                    String::from_utf8(s).expect("UTF-8")
                }
            };
            let mut args = Vec::new();
            args.push(b'{');
            write_str(&mut args, kind);
            args.extend_from_slice(b": ");
            args.extend_from_slice(number.as_bytes());
            args.push(b'}');
            emit.event(&Event {
                ph: Phase::COUNTER,
                name: Cow::Borrowed(kind),
                pid: Id::Int(int(r, 0)),
                ts: Some(int(r, 2)),
                args: Some(String::from_utf8(args).expect("UTF-8").into()),
                ..Event::default()
            })
        };
        self.each(
            "SELECT deviceId, monitorType, start, value FROM rocpd_monitor ORDER BY id",
            [],
            &mut sample,
        )?;
        // The last sample of each series also ends at its range's end.
        self.each(
            "SELECT deviceId, monitorType, end, value FROM rocpd_monitor M WHERE end = \
               (SELECT max(end) FROM rocpd_monitor WHERE deviceId = M.deviceId AND monitorType = M.monitorType) \
             GROUP BY deviceId, monitorType ORDER BY deviceId, monitorType",
            [],
            sample,
        )
    }

    /// rpd2tracing's allocation counter: hipMalloc args `ptr(P) size(S)` add S at the call's
    /// start, hipFree args `ptr(P)` remove it at the call's end. Tracers that format the
    /// arguments differently (`ptr=P | size=S`) give only the final point, as in rpd2tracing.
    fn memory_counter(&self, t_end: i64, emit: &mut dyn EventSink) -> Result<()> {
        static MALLOC: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"^ptr\((.*)\)\s+size\((.*)\)$").expect("static regex"));
        static FREE: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"^ptr\((.*)\)$").expect("static regex"));
        let sql = format!(
            "SELECT ts, args, kind FROM ( \
               SELECT A.end AS ts, G.string AS args, 1 AS kind FROM rocpd_api A \
                 JOIN rocpd_string N ON N.id = A.apiName_id JOIN {t} G ON G.id = A.args_id WHERE N.string = 'hipFree' \
               UNION ALL \
               SELECT A.start, G.string, 0 FROM rocpd_api A \
                 JOIN rocpd_string N ON N.id = A.apiName_id JOIN {t} G ON G.id = A.args_id WHERE N.string = 'hipMalloc') \
             ORDER BY ts",
            t = self.args_table
        );
        let mut sizes: HashMap<String, i64> = HashMap::new();
        let mut total = 0i64;
        self.each(&sql, [], |r| {
            let (ts, args, free) = (int(r, 0), text(r, 1), int(r, 2) == 1);
            if !free {
                if let Some(c) = MALLOC.captures(args) {
                    let size = i64::from_str_radix(c[2].trim_start_matches("0x"), 16).unwrap_or(0);
                    total += size;
                    sizes.insert(c[1].to_string(), size);
                    return emit.event(&counter(0, "Allocated Memory", "depth", ts, total));
                }
            } else if let Some(c) = FREE.captures(args)
                && let Some(size) = sizes.get_mut(&c[1])
            {
                total -= *size;
                *size = 0;
                return emit.event(&counter(0, "Allocated Memory", "depth", ts, total));
            }
            Ok(())
        })?;
        emit.event(&counter(0, "Allocated Memory", "depth", t_end, total))
    }

    /// RPD's `top` view (schema v3 definition): GPU ops by name, where an op's name is its
    /// description, or its type when the description is empty; identical (name, start, end)
    /// rows count once (`UNION`, not `UNION ALL`); total in integer microseconds (integer
    /// division), average in microseconds, percentage of all ops' time.
    pub fn top(&self) -> Result<Vec<TopRow>> {
        let sql = "SELECT C.string, count(C.string), sum(A.end - A.start) / 1000, \
                     (sum(A.end - A.start) / count(C.string)) / 1000.0, \
                     sum(A.end - A.start) * 100.0 / (SELECT sum(end - start) FROM rocpd_op) \
                   FROM (SELECT opType_id AS name_id, start, end FROM rocpd_op \
                           WHERE description_id IN (SELECT id FROM rocpd_string WHERE string = '') \
                         UNION \
                         SELECT description_id, start, end FROM rocpd_op \
                           WHERE description_id NOT IN (SELECT id FROM rocpd_string WHERE string = '')) A \
                   JOIN rocpd_string C ON C.id = A.name_id \
                   GROUP BY C.string ORDER BY 3 DESC, 1";
        let mut out = Vec::new();
        self.each(sql, [], |r| {
            out.push(TopRow {
                name: text(r, 0).to_string(),
                calls: int(r, 1) as u64,
                total_us: int(r, 2),
                avg_us: r.get(3).map_err(|e| self.err(e))?,
                percent: r.get(4).map_err(|e| self.err(e))?,
            });
            Ok(())
        })?;
        Ok(out)
    }
}

/// One row of a `top` table (RPD's view; loupe computes the same columns for any trace).
#[derive(Clone, Debug, serde::Serialize, PartialEq)]
pub struct TopRow {
    pub name: String,
    pub calls: u64,
    pub total_us: i64,
    pub avg_us: f64,
    pub percent: f64,
}

fn op_category(op_type: &str) -> &'static str {
    match op_type {
        "KernelExecution" => "kernel",
        t if t.starts_with("Copy") => "gpu_memcpy",
        t if t.starts_with("Fill") => "gpu_memset",
        _ => "gpu_op",
    }
}

fn counter(pid: i64, name: &'static str, key: &str, ts: i64, value: i64) -> Event<'static> {
    Event {
        ph: Phase::COUNTER,
        name: name.into(),
        pid: Id::Int(pid),
        ts: Some(ts),
        args: Some(format!("{{\"{key}\": {value}}}").into()),
        ..Event::default()
    }
}
