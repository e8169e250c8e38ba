//! SQLite inputs, below both SQLite importers: opening read-only, listing the tables, and the
//! row helpers `rpd.rs` and `nsys.rs` use. Telling the two apart is `database.rs`'s job, so
//! this module knows neither.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, Row};

use crate::error::{Result, TraceError};
use crate::export::json::write_str;
use crate::model::{Event, EventSink, Id, Phase};

/// Opens `path` read-only and lists its tables and views, sorted by name.
pub fn connect(path: &Path) -> Result<(Connection, Vec<String>)> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| TraceError::sqlite(path, e))?;
    let tables: Vec<String> = {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name")
            .map_err(|e| TraceError::sqlite(path, e))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(|e| TraceError::sqlite(path, e))?
    };
    Ok((conn, tables))
}

/// Runs `sql` and calls `f` for every row, streaming.
pub fn each(
    conn: &Connection,
    path: &Path,
    sql: &str,
    params: impl rusqlite::Params,
    mut f: impl FnMut(&Row<'_>) -> Result<()>,
) -> Result<()> {
    let err = |e| TraceError::sqlite(path, e);
    let mut stmt = conn.prepare(sql).map_err(err)?;
    let mut rows = stmt.query(params).map_err(err)?;
    while let Some(row) = rows.next().map_err(err)? {
        f(row)?;
    }
    Ok(())
}

/// An integer column, tolerating the text and real values loose schemas hold.
pub fn int(r: &Row<'_>, i: usize) -> i64 {
    match r.get_ref(i) {
        Ok(ValueRef::Integer(v)) => v,
        Ok(ValueRef::Real(v)) => v as i64,
        Ok(ValueRef::Text(t)) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// A text column, borrowed from the row; empty for NULL and non-text values.
pub fn text<'r>(r: &'r Row<'_>, i: usize) -> &'r str {
    match r.get_ref(i) {
        Ok(ValueRef::Text(t)) => std::str::from_utf8(t).unwrap_or(""),
        _ => "",
    }
}

/// `{"key": "value"}` with both escaped.
pub fn json_obj(key: &str, value: &str) -> String {
    let mut s = Vec::with_capacity(key.len() + value.len() + 8);
    s.push(b'{');
    write_str(&mut s, key);
    s.extend_from_slice(b": ");
    write_str(&mut s, value);
    s.push(b'}');
    String::from_utf8(s).expect("escaped JSON is UTF-8")
}

pub fn meta(name: &'static str, pid: i64, tid: i64, args: String) -> Event<'static> {
    Event {
        ph: Phase::METADATA,
        name: name.into(),
        pid: Id::Int(pid),
        tid: Id::Int(tid),
        args: Some(args.into()),
        ..Event::default()
    }
}

/// A sink that counts what passes through it to `inner` (a reader's `TraceInfo::events`).
pub struct Counting<'a> {
    inner: &'a mut dyn EventSink,
    pub events: u64,
}

impl<'a> Counting<'a> {
    pub fn new(inner: &'a mut dyn EventSink) -> Self {
        Counting { inner, events: 0 }
    }
}

impl EventSink for Counting<'_> {
    fn event(&mut self, ev: &Event<'_>) -> Result<()> {
        self.events += 1;
        self.inner.event(ev)
    }
}
