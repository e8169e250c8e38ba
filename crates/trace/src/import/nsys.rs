//! Nsight Systems SQLite exports (`nsys export --type sqlite`), streamed row by row into the
//! Kineto vocabulary so every analysis works on them:
//!
//! - kernels (`CUPTI_ACTIVITY_KIND_KERNEL`): `kernel` events on pid = device, tid = stream,
//!   named by their demangled name (else the short name) from `StringIds`;
//! - memcpy / memset: `gpu_memcpy` (`Memcpy HtoD (Pinned -> Device)`, Kineto's naming) and
//!   `gpu_memset` events;
//! - CUDA runtime calls: `cuda_runtime` events on their host thread, version suffixes dropped
//!   (`cudaLaunchKernel_v7000` -> `cudaLaunchKernel`);
//! - NVTX push/pop and start/end ranges: `user_annotation` events (so SGLang's NVTX step
//!   ranges are steps), marks as instants;
//! - `ac2g` flows from each runtime call to the GPU work it launched, joined on
//!   (process, correlation id) — correlation ids are unique only per process, so flow ids
//!   combine both;
//! - process and thread names from `PROCESSES` / `ThreadNames` where exported.
//!
//! Times are nanoseconds from the session start; `TARGET_INFO_SESSION_START_TIME.utcEpochNs`
//! is the Unix time base, so ranks from separate `.nsys-rep` files align. The export has no
//! indexes; the flow join relies on SQLite's automatic index.

use std::borrow::Cow;
use std::path::Path;

use rusqlite::{Connection, Row};

use super::sqlite::{Counting, int, json_obj, meta, text};
use crate::error::{Result, TraceError};
use crate::model::{Event, EventSink, Format, Id, Phase, TraceInfo};

pub struct Nsys {
    conn: Connection,
    path: std::path::PathBuf,
    tables: Vec<String>,
}

/// globalTid = (?, pid: 24 bits, tid: 24 bits); globalPid is it with the tid bits zero.
fn pid_of(global: i64) -> i64 {
    (global >> 24) & 0xFF_FFFF
}

fn tid_of(global: i64) -> i64 {
    global & 0xFF_FFFF
}

impl Nsys {
    pub fn open(conn: Connection, path: &Path, tables: Vec<String>) -> Nsys {
        Nsys {
            conn,
            path: path.to_path_buf(),
            tables,
        }
    }

    fn err(&self, e: rusqlite::Error) -> TraceError {
        TraceError::sqlite(&self.path, e)
    }

    fn has(&self, table: &str) -> bool {
        self.tables.iter().any(|t| t == table)
    }

    fn columns(&self, table: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA table_info({table})"))
            .map_err(|e| self.err(e))?;
        let cols = stmt
            .query_map([], |r| r.get::<_, String>(1))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(cols)
    }

    pub fn info(&self) -> Result<TraceInfo> {
        let base = if self.has("TARGET_INFO_SESSION_START_TIME") {
            self.conn
                .query_row(
                    "SELECT utcEpochNs FROM TARGET_INFO_SESSION_START_TIME LIMIT 1",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .ok()
        } else {
            None
        };
        Ok(TraceInfo {
            format: Format::Nsys,
            base_ns: base,
            ..TraceInfo::default()
        })
    }

    fn each(&self, sql: &str, f: impl FnMut(&Row<'_>) -> Result<()>) -> Result<()> {
        super::sqlite::each(&self.conn, &self.path, sql, [], f)
    }

    pub fn read(&self, sink: &mut dyn EventSink) -> Result<TraceInfo> {
        let mut info = self.info()?;
        let mut emit = Counting::new(sink);
        self.names(&mut emit)?;
        self.nvtx(&mut emit)?;
        self.runtime(&mut emit)?;
        self.kernels(&mut emit)?;
        self.memcpy(&mut emit)?;
        self.memset(&mut emit)?;
        self.flows(&mut emit)?;
        info.events = emit.events;
        Ok(info)
    }

    fn names(&self, emit: &mut dyn EventSink) -> Result<()> {
        let mut gpu_tables = Vec::new();
        for t in [
            "CUPTI_ACTIVITY_KIND_KERNEL",
            "CUPTI_ACTIVITY_KIND_MEMCPY",
            "CUPTI_ACTIVITY_KIND_MEMSET",
        ] {
            if self.has(t) {
                gpu_tables.push(format!("SELECT DISTINCT deviceId AS d FROM {t}"));
            }
        }
        if !gpu_tables.is_empty() {
            let sql = format!(
                "SELECT DISTINCT d FROM ({}) ORDER BY d",
                gpu_tables.join(" UNION ")
            );
            self.each(&sql, |r| {
                let d = int(r, 0);
                emit.event(&meta(
                    "process_name",
                    d,
                    0,
                    json_obj("name", &format!("GPU {d}")),
                ))?;
                emit.event(&meta(
                    "process_labels",
                    d,
                    0,
                    json_obj("labels", &format!("GPU {d}")),
                ))
            })?;
        }
        if self.has("PROCESSES") {
            self.each("SELECT pid, name FROM PROCESSES", |r| {
                emit.event(&meta(
                    "process_name",
                    int(r, 0),
                    0,
                    json_obj("name", text(r, 1)),
                ))
            })?;
        }
        if self.has("ThreadNames") && self.has("StringIds") {
            self.each(
                "SELECT T.globalTid, S.value FROM ThreadNames T JOIN StringIds S ON S.id = T.nameId",
                |r| {
                    let g = int(r, 0);
                    emit.event(&meta("thread_name", pid_of(g), tid_of(g), json_obj("name", text(r, 1))))
                },
            )?;
        }
        Ok(())
    }

    fn nvtx(&self, emit: &mut dyn EventSink) -> Result<()> {
        if !self.has("NVTX_EVENTS") {
            return Ok(());
        }
        let cols = self.columns("NVTX_EVENTS")?;
        let text_id = if cols.iter().any(|c| c == "textId") && self.has("StringIds") {
            "S.value"
        } else {
            "NULL"
        };
        let join = if text_id == "NULL" {
            ""
        } else {
            "LEFT JOIN StringIds S ON S.id = N.textId"
        };
        // 34 mark, 59 push/pop range, 60 start/end range.
        let sql = format!(
            "SELECT N.start, N.end, N.eventType, N.globalTid, N.text, {text_id} FROM NVTX_EVENTS N {join} \
             WHERE N.eventType IN (34, 59, 60) ORDER BY N.start"
        );
        self.each(&sql, |r| {
            let g = int(r, 3);
            let name = match text(r, 4) {
                "" => text(r, 5),
                t => t,
            };
            let start = int(r, 0);
            let mark = int(r, 2) == 34;
            emit.event(&Event {
                ph: if mark {
                    Phase::INSTANT
                } else {
                    Phase::COMPLETE
                },
                name: Cow::Borrowed(name),
                cat: "user_annotation".into(),
                pid: Id::Int(pid_of(g)),
                tid: Id::Int(tid_of(g)),
                ts: Some(start),
                dur: if mark { 0 } else { (int(r, 1) - start).max(0) },
                scope: mark.then(|| "t".into()),
                ..Event::default()
            })
        })
    }

    fn runtime(&self, emit: &mut dyn EventSink) -> Result<()> {
        if !self.has("CUPTI_ACTIVITY_KIND_RUNTIME") {
            return Ok(());
        }
        let sql = "SELECT R.start, R.end, R.globalTid, R.correlationId, S.value FROM CUPTI_ACTIVITY_KIND_RUNTIME R \
                   LEFT JOIN StringIds S ON S.id = R.nameId ORDER BY R.start";
        self.each(sql, |r| {
            let g = int(r, 2);
            let start = int(r, 0);
            emit.event(&Event {
                ph: Phase::COMPLETE,
                name: Cow::Borrowed(strip_version(text(r, 4))),
                cat: "cuda_runtime".into(),
                pid: Id::Int(pid_of(g)),
                tid: Id::Int(tid_of(g)),
                ts: Some(start),
                dur: int(r, 1) - start,
                args: Some(format!("{{\"correlation\": {}}}", int(r, 3)).into()),
                ..Event::default()
            })
        })
    }

    fn kernels(&self, emit: &mut dyn EventSink) -> Result<()> {
        let t = "CUPTI_ACTIVITY_KIND_KERNEL";
        if !self.has(t) {
            return Ok(());
        }
        let cols = self.columns(t)?;
        let has = |c: &str| cols.iter().any(|x| x == c);
        let name_col = if has("demangledName") {
            "demangledName"
        } else {
            "shortName"
        };
        let dims = if has("gridX") && has("blockX") {
            "K.gridX, K.gridY, K.gridZ, K.blockX, K.blockY, K.blockZ"
        } else {
            "1, 1, 1, 1, 1, 1"
        };
        let sql = format!(
            "SELECT K.start, K.end, K.deviceId, K.streamId, K.correlationId, S.value, {dims} \
             FROM {t} K LEFT JOIN StringIds S ON S.id = K.{name_col} ORDER BY K.start"
        );
        self.each(&sql, |r| {
            let extra = format!(
                ", \"grid\": [{}, {}, {}], \"block\": [{}, {}, {}]",
                int(r, 6),
                int(r, 7),
                int(r, 8),
                int(r, 9),
                int(r, 10),
                int(r, 11)
            );
            emit.event(&gpu_op(r, Cow::Borrowed(text(r, 5)), "kernel", &extra))
        })
    }

    fn memcpy(&self, emit: &mut dyn EventSink) -> Result<()> {
        let t = "CUPTI_ACTIVITY_KIND_MEMCPY";
        if !self.has(t) {
            return Ok(());
        }
        let sql = format!(
            "SELECT start, end, deviceId, streamId, correlationId, bytes, copyKind, srcKind, dstKind FROM {t} ORDER BY start"
        );
        self.each(&sql, |r| {
            let name = format!(
                "Memcpy {} ({} -> {})",
                copy_kind(int(r, 6)),
                memory_kind(int(r, 7)),
                memory_kind(int(r, 8))
            );
            let extra = format!(", \"bytes\": {}", int(r, 5));
            emit.event(&gpu_op(r, name.into(), "gpu_memcpy", &extra))
        })
    }

    fn memset(&self, emit: &mut dyn EventSink) -> Result<()> {
        let t = "CUPTI_ACTIVITY_KIND_MEMSET";
        if !self.has(t) {
            return Ok(());
        }
        let sql = format!(
            "SELECT start, end, deviceId, streamId, correlationId, bytes FROM {t} ORDER BY start"
        );
        self.each(&sql, |r| {
            let extra = format!(", \"bytes\": {}", int(r, 5));
            emit.event(&gpu_op(r, "Memset (Device)".into(), "gpu_memset", &extra))
        })
    }

    fn flows(&self, emit: &mut dyn EventSink) -> Result<()> {
        if !self.has("CUPTI_ACTIVITY_KIND_RUNTIME") {
            return Ok(());
        }
        for t in [
            "CUPTI_ACTIVITY_KIND_KERNEL",
            "CUPTI_ACTIVITY_KIND_MEMCPY",
            "CUPTI_ACTIVITY_KIND_MEMSET",
        ] {
            if !self.has(t) {
                continue;
            }
            let sql = format!(
                "SELECT R.start, R.globalTid, G.start, G.deviceId, G.streamId, G.correlationId \
                 FROM CUPTI_ACTIVITY_KIND_RUNTIME R JOIN {t} G \
                   ON G.correlationId = R.correlationId AND G.globalPid = (R.globalTid & -16777216) \
                 ORDER BY R.start"
            );
            self.each(&sql, |r| {
                let g = int(r, 1);
                let id = Id::Int((pid_of(g) << 32) | (int(r, 5) & 0xFFFF_FFFF));
                let flow = |ph, pid, tid, ts| Event {
                    ph,
                    name: "ac2g".into(),
                    cat: "ac2g".into(),
                    pid: Id::Int(pid),
                    tid: Id::Int(tid),
                    ts: Some(ts),
                    id: Some(id.clone()),
                    bp: (ph == Phase::FLOW_END).then(|| "e".into()),
                    ..Event::default()
                };
                emit.event(&flow(Phase::FLOW_START, pid_of(g), tid_of(g), int(r, 0)))?;
                emit.event(&flow(Phase::FLOW_END, int(r, 3), int(r, 4), int(r, 2)))
            })?;
        }
        Ok(())
    }
}

/// `cudaLaunchKernel_v7000` -> `cudaLaunchKernel`.
/// One GPU activity row (kernel, memcpy, memset) as a complete event on its device and stream.
/// The row's first five columns are start, end, deviceId, streamId and correlationId; `extra`
/// is the rest of its args object (`, "key": value`...).
fn gpu_op<'a>(r: &Row<'_>, name: Cow<'a, str>, cat: &'static str, extra: &str) -> Event<'a> {
    let start = int(r, 0);
    let (device, stream) = (int(r, 2), int(r, 3));
    Event {
        ph: Phase::COMPLETE,
        name,
        cat: cat.into(),
        pid: Id::Int(device),
        tid: Id::Int(stream),
        ts: Some(start),
        dur: int(r, 1) - start,
        args: Some(
            format!(
                "{{\"device\": {device}, \"stream\": {stream}, \"correlation\": {}{extra}}}",
                int(r, 4)
            )
            .into(),
        ),
        ..Event::default()
    }
}

fn strip_version(name: &str) -> &str {
    match name.rfind("_v") {
        Some(i) if i + 2 < name.len() && name[i + 2..].bytes().all(|b| b.is_ascii_digit()) => {
            &name[..i]
        }
        _ => name,
    }
}

/// CUPTI_ACTIVITY_MEMCPY_KIND.
fn copy_kind(k: i64) -> &'static str {
    match k {
        1 => "HtoD",
        2 => "DtoH",
        3 => "HtoA",
        4 => "AtoH",
        5 => "AtoA",
        6 => "AtoD",
        7 => "DtoA",
        8 => "DtoD",
        9 => "HtoH",
        10 => "PtoP",
        _ => "Unknown",
    }
}

/// CUPTI_ACTIVITY_MEMORY_KIND, in Kineto's words.
fn memory_kind(k: i64) -> &'static str {
    match k {
        1 => "Pageable",
        2 => "Pinned",
        3 => "Device",
        4 => "Array",
        5 => "Managed",
        6 => "Device Static",
        7 => "Managed Static",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_ids_and_names() {
        let g = (1i64 << 56) | (4321 << 24) | 77;
        assert_eq!((pid_of(g), tid_of(g)), (4321, 77));
        assert_eq!(strip_version("cudaLaunchKernel_v7000"), "cudaLaunchKernel");
        assert_eq!(strip_version("cudaMemcpyAsync"), "cudaMemcpyAsync");
        assert_eq!(strip_version("my_var"), "my_var");
        assert_eq!(
            format!(
                "Memcpy {} ({} -> {})",
                copy_kind(1),
                memory_kind(2),
                memory_kind(3)
            ),
            "Memcpy HtoD (Pinned -> Device)"
        );
    }
}
