//! rocprofv3's rocpd SQLite (rocprofiler-sdk, the ROCm 7 default output; schema v3, and the
//! development v4 whose views keep the same columns), read like RPD: kernel dispatches and
//! memory copies become `kernel` / `gpu_memcpy` events on one process per GPU agent (`GPU <n>`,
//! one thread per stream, else queue), host regions become `cuda_runtime` (HIP, HSA, RCCL
//! API calls) or `user_annotation` (roctx markers) events on their thread, and every event
//! carries `args.correlation` (rocpd_event's `correlation_id`) so launches join their kernels
//! as in a Kineto trace (copies have no stream, so HTA's stream-based analyses leave them out,
//! while the GPU timeline counts them). Queries go through the unsuffixed names, which are views over the
//! per-session tables, and join on `id` and `guid`. Times stay in integer nanoseconds on the
//! profiler's clock (`CLOCK_BOOTTIME`, not Unix time), so there is no time base.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::sqlite::{Counting, int, text};
use crate::error::{Result, TraceError};
use crate::export::json::write_str;
use crate::model::{Event, EventSink, Format, Id, Phase, TraceInfo};

pub struct Rocpd {
    conn: Connection,
    path: PathBuf,
    schema: Option<String>,
    /// `rocpd_timestamp` exists: the development schema with times in their own table.
    v4: bool,
    has_copies: bool,
    has_regions: bool,
}

/// Tables that only rocprofv3's database has (RPD has `rocpd_op` and `rocpd_api` instead);
/// physical tables carry a session suffix, so prefixes count.
pub fn is_rocpd(tables: &[String]) -> bool {
    tables
        .iter()
        .any(|t| t.starts_with("rocpd_kernel_dispatch") || t.starts_with("rocpd_info_agent"))
}

impl Rocpd {
    pub fn open(conn: Connection, path: &Path, tables: &[String]) -> Result<Rocpd> {
        let has = |t: &str| tables.iter().any(|x| x == t);
        if !has("rocpd_kernel_dispatch") || !has("rocpd_info_agent") {
            return Err(TraceError::format(
                path,
                "a rocprofv3 (rocpd) database without the `rocpd_kernel_dispatch` and `rocpd_info_agent` views (only session-suffixed tables?)",
            ));
        }
        let schema = conn
            .query_row(
                "SELECT value FROM rocpd_metadata WHERE tag = 'schema_version'",
                [],
                |r| r.get::<_, String>(0),
            )
            .ok();
        Ok(Rocpd {
            conn,
            path: path.to_path_buf(),
            schema,
            v4: tables.iter().any(|t| t.starts_with("rocpd_timestamp")),
            has_copies: has("rocpd_memory_copy"),
            has_regions: has("rocpd_region"),
        })
    }

    pub fn info(&self) -> TraceInfo {
        let mut info = TraceInfo {
            format: Format::Rocpd,
            ..TraceInfo::default()
        };
        if let Some(v) = &self.schema {
            let mut s = Vec::new();
            write_str(&mut s, v);
            info.other.push((
                "rocpdSchemaVersion".into(),
                String::from_utf8(s).expect("JSON text"),
            ));
        }
        info
    }

    fn each(&self, sql: &str, f: impl FnMut(&rusqlite::Row<'_>) -> Result<()>) -> Result<()> {
        super::sqlite::each(&self.conn, &self.path, sql, [], f)
    }

    pub fn read(&self, sink: &mut dyn EventSink) -> Result<TraceInfo> {
        if self.v4 {
            tracing::info!(
                "{}: rocpd schema v4 (rocpd_timestamp); reading its views",
                self.path.display()
            );
        }
        let mut info = self.info();
        let mut emit = Counting::new(sink);
        self.kernels(&mut emit)?;
        if self.has_copies {
            self.copies(&mut emit)?;
        }
        if self.has_regions {
            self.regions(&mut emit)?;
        }
        info.events = emit.events;
        Ok(info)
    }

    fn kernels(&self, emit: &mut dyn EventSink) -> Result<()> {
        let sql = "SELECT coalesce(S.display_name, S.kernel_name), K.start, K.end, A.absolute_index, \
                   coalesce(K.stream_id, K.queue_id), K.queue_id, coalesce(E.correlation_id, -1) \
                   FROM rocpd_kernel_dispatch K \
                   JOIN rocpd_info_kernel_symbol S ON S.id = K.kernel_id AND S.guid = K.guid \
                   JOIN rocpd_info_agent A ON A.id = K.agent_id AND A.guid = K.guid \
                   LEFT JOIN rocpd_event E ON E.id = K.event_id AND E.guid = K.guid \
                   ORDER BY K.start";
        self.each(sql, |r| {
            let (start, end) = (int(r, 1), int(r, 2));
            let stream = int(r, 4);
            emit.event(&Event {
                ph: Phase::COMPLETE,
                name: Cow::Borrowed(text(r, 0)),
                cat: "kernel".into(),
                pid: Id::Str(format!("GPU {}", int(r, 3)).into()),
                tid: Id::Int(stream),
                ts: Some(start),
                dur: end - start,
                args: Some(
                    format!(
                        "{{\"device\": {}, \"stream\": {stream}, \"queue\": {}, \"correlation\": {}}}",
                        int(r, 3),
                        int(r, 5),
                        int(r, 6)
                    )
                    .into(),
                ),
                ..Event::default()
            })
        })
    }

    fn copies(&self, emit: &mut dyn EventSink) -> Result<()> {
        let sql = "SELECT C.start, C.end, C.size, coalesce(S.type, ''), coalesce(D.type, ''), \
                   coalesce(D.absolute_index, S.absolute_index, 0), coalesce(E.correlation_id, -1) \
                   FROM rocpd_memory_copy C \
                   LEFT JOIN rocpd_info_agent S ON S.id = C.src_agent_id AND S.guid = C.guid \
                   LEFT JOIN rocpd_info_agent D ON D.id = C.dst_agent_id AND D.guid = C.guid \
                   LEFT JOIN rocpd_event E ON E.id = C.event_id AND E.guid = C.guid \
                   ORDER BY C.start";
        self.each(sql, |r| {
            let (start, end) = (int(r, 0), int(r, 1));
            let side = |t: &str| if t == "CPU" { 'H' } else { 'D' };
            let name = format!("Memcpy {}to{}", side(text(r, 3)), side(text(r, 4)));
            emit.event(&Event {
                ph: Phase::COMPLETE,
                name: name.into(),
                cat: "gpu_memcpy".into(),
                pid: Id::Str(format!("GPU {}", int(r, 5)).into()),
                tid: Id::Str("copies".into()),
                ts: Some(start),
                dur: end - start,
                args: Some(
                    format!(
                        "{{\"bytes\": {}, \"correlation\": {}}}",
                        int(r, 2),
                        int(r, 6)
                    )
                    .into(),
                ),
                ..Event::default()
            })
        })
    }

    fn regions(&self, emit: &mut dyn EventSink) -> Result<()> {
        let sql = "SELECT N.string, coalesce(C.string, ''), R.pid, R.tid, R.start, R.end, \
                   coalesce(E.correlation_id, -1) \
                   FROM rocpd_region R \
                   JOIN rocpd_string N ON N.id = R.name_id AND N.guid = R.guid \
                   LEFT JOIN rocpd_event E ON E.id = R.event_id AND E.guid = R.guid \
                   LEFT JOIN rocpd_string C ON C.id = E.category_id AND C.guid = E.guid \
                   ORDER BY R.start";
        self.each(sql, |r| {
            let (start, end) = (int(r, 4), int(r, 5));
            let category = text(r, 1);
            let cat = if category.contains("MARKER") {
                "user_annotation"
            } else {
                "cuda_runtime"
            };
            let mut args = Vec::new();
            args.extend_from_slice(b"{\"category\": ");
            write_str(&mut args, category);
            args.extend_from_slice(format!(", \"correlation\": {}}}", int(r, 6)).as_bytes());
            emit.event(&Event {
                ph: Phase::COMPLETE,
                name: Cow::Borrowed(text(r, 0)),
                cat: cat.into(),
                pid: Id::Int(int(r, 2)),
                tid: Id::Int(int(r, 3)),
                ts: Some(start),
                dur: end - start,
                args: Some(String::from_utf8(args).expect("JSON text").into()),
                ..Event::default()
            })
        })
    }
}
