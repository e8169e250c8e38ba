//! Chrome-trace JSON out: `{header members, "traceEvents": [events], trailer members}` written
//! event by event. Timestamps are written as exact decimal microseconds from the integer
//! nanoseconds (`"ts": 4909914679584.875`), so a read-write round trip loses nothing.

use std::path::Path;

use crate::buffers::BufferPool;
use crate::error::Result;
use crate::export::output::{AtomicOutput, ensure_not_an_input};
use crate::import::source::Container;
use crate::import::{Input, ReadOptions};
use crate::model::{Event, Id, TraceInfo};
use crate::time::write_ns_as_us;

/// How an event is changed on its way out (merge and slice use this; conversion does not).
#[derive(Clone, Copy, Default)]
pub struct Rewrite<'a> {
    /// Written before the pid, which then becomes a string: `"[TP01] 4037"` (SGLang's style).
    pub pid_prefix: Option<&'a str>,
    /// Added to `ts`.
    pub shift_ns: i64,
    /// Added to integer flow ids (string ids get the prefix instead), so ids from different
    /// ranks never meet.
    pub flow_offset: i64,
}

pub struct JsonTraceWriter {
    out: AtomicOutput,
    first: bool,
    events: u64,
}

impl JsonTraceWriter {
    /// Opens `path` and writes the top-level members that precede the events. Each member is
    /// `(name, raw JSON value)`. The time base comes first so streaming readers (loupe's own
    /// included) know it before the first event.
    pub fn create(path: &Path, header: &[(&str, String)]) -> Result<JsonTraceWriter> {
        let mut out = AtomicOutput::create(path)?;
        out.buf.push(b'{');
        for (k, v) in header {
            write_str(&mut out.buf, k);
            out.buf.extend_from_slice(b": ");
            out.buf.extend_from_slice(v.as_bytes());
            out.buf.extend_from_slice(b", ");
        }
        out.buf.extend_from_slice(b"\"traceEvents\": [");
        Ok(JsonTraceWriter {
            out,
            first: true,
            events: 0,
        })
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    /// Buffers to serialise events into for [`JsonTraceWriter::write_serialized`].
    pub fn buffers(&self) -> &BufferPool {
        self.out.buffers()
    }

    pub fn write(&mut self, ev: &Event<'_>, rw: &Rewrite<'_>) -> Result<()> {
        let buf = &mut self.out.buf;
        buf.extend_from_slice(if self.first { b"\n" } else { b",\n" });
        self.first = false;
        write_event(buf, ev, rw);
        self.events += 1;
        self.out.maybe_flush()
    }

    /// Appends events already serialised by [`write_event`], each preceded by `,\n`.
    pub fn write_serialized(&mut self, mut bytes: Vec<u8>, events: u64) -> Result<()> {
        if events == 0 {
            self.out.buffers().give(bytes);
            return Ok(());
        }
        if self.first {
            bytes.remove(0);
            self.first = false;
        }
        self.events += events;
        self.out.push_block(bytes)
    }

    /// Closes the event array, writes the trailing members and renames the file into place.
    pub fn finish(mut self, trailer: &[(&str, String)]) -> Result<u64> {
        let buf = &mut self.out.buf;
        buf.extend_from_slice(b"\n]");
        for (k, v) in trailer {
            buf.extend_from_slice(b",\n");
            write_str(buf, k);
            buf.extend_from_slice(b": ");
            buf.extend_from_slice(v.as_bytes());
        }
        buf.extend_from_slice(b"\n}\n");
        self.out.commit()?;
        Ok(self.events)
    }
}

/// Any input as Chrome JSON at `out` (gzipped for `.gz`), returning the number of events
/// written. The trace's metadata (time base, devices, `distributedInfo`)
/// goes before the events when it is known up front (SQLite inputs), after them otherwise.
pub fn convert(input: &Input, out: &Path, opts: &ReadOptions) -> Result<u64> {
    ensure_not_an_input(out, [input.path.as_path()])?;
    let upfront = input.container == Container::Sqlite;
    let header_info = if upfront {
        Some(input.probe(opts)?)
    } else {
        None
    };
    let mut header = vec![("schemaVersion", "1".to_string())];
    if let Some(info) = &header_info {
        header.extend(metadata_members(info));
    }
    let mut w = JsonTraceWriter::create(out, &header)?;
    let info = input.read(opts, &mut |ev: &Event<'_>| w.write(ev, &Rewrite::default()))?;
    let trailer = if upfront {
        Vec::new()
    } else {
        metadata_members(&info)
    };
    w.finish(&trailer)
}

/// A trace's top-level members other than its events, as `(name, raw JSON)`.
pub fn metadata_members(info: &TraceInfo) -> Vec<(&str, String)> {
    let mut m = Vec::new();
    if let Some(b) = info.base_ns {
        m.push(("baseTimeNanoseconds", b.to_string()));
    }
    m.push(("displayTimeUnit", "\"ms\"".to_string()));
    if let Some(d) = &info.device_properties {
        m.push(("deviceProperties", d.clone()));
    }
    if let Some(d) = &info.distributed {
        m.push(("distributedInfo", d.raw.clone()));
    }
    for (k, v) in &info.other {
        if !matches!(k.as_str(), "schemaVersion" | "displayTimeUnit") {
            m.push((k.as_str(), v.clone()));
        }
    }
    m
}

pub fn write_event(buf: &mut Vec<u8>, ev: &Event<'_>, rw: &Rewrite<'_>) {
    buf.extend_from_slice(b"{\"ph\": \"");
    buf.push(ev.ph.0);
    buf.push(b'"');
    if !ev.cat.is_empty() {
        buf.extend_from_slice(b", \"cat\": ");
        write_str(buf, &ev.cat);
    }
    buf.extend_from_slice(b", \"name\": ");
    write_str(buf, &ev.name);
    buf.extend_from_slice(b", \"pid\": ");
    match rw.pid_prefix {
        Some(prefix) => write_prefixed_id(buf, prefix, &ev.pid),
        None => write_id(buf, &ev.pid),
    }
    buf.extend_from_slice(b", \"tid\": ");
    write_id(buf, &ev.tid);
    if let Some(ts) = ev.ts {
        buf.extend_from_slice(b", \"ts\": ");
        write_ns_as_us(buf, ts + rw.shift_ns);
    }
    if ev.ph.0 == b'X' {
        buf.extend_from_slice(b", \"dur\": ");
        write_ns_as_us(buf, ev.dur);
    }
    if let Some(id) = &ev.id {
        buf.extend_from_slice(b", \"id\": ");
        match (id, rw.pid_prefix) {
            (Id::Int(v), _) => {
                buf.extend_from_slice(itoa::Buffer::new().format(v + rw.flow_offset).as_bytes())
            }
            (Id::Str(_), Some(prefix)) => write_prefixed_id(buf, prefix, id),
            (Id::Str(_), None) => write_id(buf, id),
        }
    }
    if let Some(bp) = &ev.bp {
        buf.extend_from_slice(b", \"bp\": ");
        write_str(buf, bp);
    }
    if let Some(s) = &ev.scope {
        buf.extend_from_slice(b", \"s\": ");
        write_str(buf, s);
    }
    if let Some(args) = &ev.args {
        buf.extend_from_slice(b", \"args\": ");
        buf.extend_from_slice(args.as_bytes());
    }
    buf.push(b'}');
}

pub fn write_id(buf: &mut Vec<u8>, id: &Id<'_>) {
    match id {
        Id::Int(v) => buf.extend_from_slice(itoa::Buffer::new().format(*v).as_bytes()),
        Id::Str(s) => write_str(buf, s),
    }
}

fn write_prefixed_id(buf: &mut Vec<u8>, prefix: &str, id: &Id<'_>) {
    buf.push(b'"');
    escape_into(buf, prefix);
    buf.push(b' ');
    match id {
        Id::Int(v) => buf.extend_from_slice(itoa::Buffer::new().format(*v).as_bytes()),
        Id::Str(s) => escape_into(buf, s),
    }
    buf.push(b'"');
}

/// A JSON string literal.
pub fn write_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    escape_into(buf, s);
    buf.push(b'"');
}

fn escape_into(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Almost every name needs no escaping: check without branching per byte (this folds into
    // vector compares), then copy it whole.
    let plain = !bytes.iter().fold(false, |any, &b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        buf.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                buf.extend_from_slice(&bytes[start..i]);
                buf.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(esc);
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::model::Phase;

    #[test]
    fn writes_exact_times_and_rewrites() {
        let ev = Event {
            ph: Phase::FLOW_END,
            name: "ac2g".into(),
            cat: "ac2g".into(),
            pid: Id::Int(0),
            tid: Id::Int(7),
            ts: Some(1_000_001),
            id: Some(Id::Int(42)),
            bp: Some("e".into()),
            ..Event::default()
        };
        let mut buf = Vec::new();
        write_event(
            &mut buf,
            &ev,
            &Rewrite {
                pid_prefix: Some("[TP01]"),
                shift_ns: 1_000,
                flow_offset: 1 << 40,
            },
        );
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            r#"{"ph": "f", "cat": "ac2g", "name": "ac2g", "pid": "[TP01] 0", "tid": 7, "ts": 1001.001, "id": 1099511627818, "bp": "e"}"#
        );
    }

    #[test]
    fn escapes_strings() {
        let mut buf = Vec::new();
        write_str(&mut buf, "a\"b\\c\nd\u{1}é");
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "\"a\\\"b\\\\c\\nd\\u0001é\""
        );
        let ev = Event {
            name: Cow::Borrowed("x"),
            dur: 1_500,
            ts: Some(0),
            args: Some(r#"{"a": [1]}"#.into()),
            ..Event::default()
        };
        let mut buf = Vec::new();
        write_event(&mut buf, &ev, &Rewrite::default());
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            r#"{"ph": "X", "name": "x", "pid": 0, "tid": 0, "ts": 0, "dur": 1.5, "args": {"a": [1]}}"#
        );
    }
}
