//! Kineto / Chrome-trace JSON as a stream: the top-level object is walked key by key (any
//! order: `baseTimeNanoseconds` and metadata may follow `traceEvents`), the event array is
//! parsed one element at a time straight out of the decompression window, and each event is
//! handed to the sink before the next is read. Memory stays at a few chunks whatever the size.

mod event;
mod window;

use std::borrow::Cow;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Result, TraceError};
use crate::import::ReadOptions;
use crate::import::source::{ChunkStream, Container};
use crate::model::{DistributedInfo, EventSink, Format, TraceInfo};

use event::RawEvent;
pub use window::ValueScanner;
use window::Window;

/// Top-level values (other than the events) larger than this are skipped, not kept.
const KEEP_LIMIT: usize = 1 << 20;

/// How far to read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every event to the sink.
    Events,
    /// Only the top-level members; the event array is skipped structurally, and reading stops
    /// at the array when the time base is already known.
    Header,
}

pub fn read(
    path: &Path,
    container: Container,
    opts: &ReadOptions,
    sink: &mut dyn EventSink,
) -> Result<TraceInfo> {
    let mut reader = Reader::open(path, container, opts)?;
    reader.run(Mode::Events, sink)?;
    Ok(reader.info)
}

/// The top-level members only (time base, `distributedInfo`, `deviceProperties`, ...).
pub fn probe(path: &Path, container: Container, opts: &ReadOptions) -> Result<TraceInfo> {
    let mut reader = Reader::open(path, container, opts)?;
    reader.run(Mode::Header, &mut |_: &crate::Event<'_>| Ok(()))?;
    Ok(reader.info)
}

struct Reader {
    win: Window,
    lenient: bool,
    info: TraceInfo,
}

impl Reader {
    fn open(path: &Path, container: Container, opts: &ReadOptions) -> Result<Reader> {
        Ok(Reader {
            win: Window::new(ChunkStream::open(path, container)?),
            lenient: opts.lenient,
            info: TraceInfo {
                format: Format::ChromeJson,
                ..TraceInfo::default()
            },
        })
    }

    fn path(&self) -> &Path {
        self.win.stream().path()
    }

    fn run(&mut self, mode: Mode, sink: &mut dyn EventSink) -> Result<()> {
        match self.win.peek()? {
            Some(b'{') => {
                self.win.bump();
                if self.object(mode, sink)? {
                    return Ok(());
                }
            }
            // rpd2tracing's `--format array` and nsys2json write a bare event array.
            Some(b'[') => {
                if mode == Mode::Header {
                    return Ok(());
                }
                self.events(sink)?;
            }
            Some(_) => {
                return Err(self.win.error(
                    self.win.pos,
                    "not a Chrome/Kineto trace: expected `{` or `[` at the start",
                ));
            }
            None => return Err(TraceError::format(self.path(), "no JSON content")),
        }
        match self.win.peek()? {
            None => Ok(()),
            Some(_) if self.lenient || self.info.truncated => Ok(()),
            Some(_) => Err(self
                .win
                .error(self.win.pos, "unexpected data after the end of the trace")),
        }
    }

    /// Walks the members of the top-level object. Returns `true` when a header probe stopped
    /// early.
    fn object(&mut self, mode: Mode, sink: &mut dyn EventSink) -> Result<bool> {
        let mut first = true;
        loop {
            let Some(b) = self.win.peek()? else {
                return self.truncated("the top-level object is not closed");
            };
            if b == b'}' {
                self.win.bump();
                return Ok(false);
            }
            if !first {
                if b != b',' {
                    return Err(self.win.error(self.win.pos, "expected `,` or `}`"));
                }
                self.win.bump();
                if self.win.peek()? == Some(b'}') && self.lenient {
                    continue;
                }
            }
            first = false;
            let key = self.key()?;
            match key.as_str() {
                "traceEvents" => {
                    if mode == Mode::Header {
                        if self.info.base_ns.is_some() {
                            return Ok(true);
                        }
                        self.win.take_value(0)?;
                    } else {
                        if self.win.peek()? != Some(b'[') {
                            return Err(self
                                .win
                                .error(self.win.pos, "`traceEvents` is not an array"));
                        }
                        self.events(sink)?;
                        if self.info.truncated {
                            return Ok(false);
                        }
                    }
                }
                _ => {
                    let at = self.win.offset();
                    let value = self.win.take_value(KEEP_LIMIT)?;
                    if let Some(v) = value {
                        let text = String::from_utf8(v).map_err(|_| {
                            TraceError::format(self.path(), format!("`{key}` is not UTF-8"))
                        })?;
                        self.member(key, text, at)?;
                    }
                }
            }
        }
    }

    fn member(&mut self, key: String, text: String, at: u64) -> Result<()> {
        match key.as_str() {
            "baseTimeNanoseconds" => {
                let v: i64 = text.trim().trim_matches('"').parse().map_err(|_| {
                    TraceError::format(
                        self.path(),
                        format!("`baseTimeNanoseconds` at byte {at} is not an integer: {text}"),
                    )
                })?;
                self.info.base_ns = Some(v);
            }
            "distributedInfo" => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let field = |k: &str| {
                    v.get(k)
                        .and_then(|x| x.as_u64().or_else(|| x.as_str()?.parse().ok()))
                        .and_then(|x| u32::try_from(x).ok())
                };
                self.info.distributed = Some(DistributedInfo {
                    rank: field("rank"),
                    world_size: field("world_size"),
                    raw: text,
                });
            }
            "deviceProperties" => self.info.device_properties = Some(text),
            _ => self.info.other.push((key, text)),
        }
        Ok(())
    }

    fn key(&mut self) -> Result<String> {
        if self.win.peek()? != Some(b'"') {
            return Err(self.win.error(self.win.pos, "expected a member name"));
        }
        let at = self.win.pos;
        let raw = self
            .win
            .take_value(KEEP_LIMIT)?
            .ok_or_else(|| self.win.error(at, "member name too long"))?;
        let key: String = serde_json::from_slice(&raw)
            .map_err(|e| self.win.error(at, format!("bad member name: {e}")))?;
        if self.win.peek()? != Some(b':') {
            return Err(self
                .win
                .error(self.win.pos, "expected `:` after a member name"));
        }
        self.win.bump();
        Ok(key)
    }

    fn truncated<T: Default>(&mut self, what: &str) -> Result<T> {
        if self.lenient {
            self.info.truncated = true;
            return Ok(T::default());
        }
        Err(self.win.error(
            self.win.pos,
            format!("{what}: the data ends early (a crashed or interrupted writer?); --lenient keeps the events before it"),
        ))
    }

    /// Streams the event array at the current position (`[`).
    fn events(&mut self, sink: &mut dyn EventSink) -> Result<()> {
        self.win.bump();
        let mut first = true;
        loop {
            let Some(b) = self.win.peek()? else {
                return self.truncated("the event array is not closed");
            };
            if b == b']' {
                self.win.bump();
                return Ok(());
            }
            if !first {
                if b != b',' {
                    return Err(self
                        .win
                        .error(self.win.pos, "expected `,` or `]` after an event"));
                }
                self.win.bump();
                match self.win.peek()? {
                    Some(b']') if self.lenient => continue,
                    Some(b']') => {
                        return Err(self.win.error(
                            self.win.pos,
                            "trailing comma before `]` (--lenient accepts it)",
                        ));
                    }
                    None => return self.truncated("the event array is not closed"),
                    _ => {}
                }
            }
            first = false;
            if !self.event(sink)? {
                return Ok(());
            }
        }
    }

    /// Parses one event in place. Returns `false` when lenient mode stopped at a truncation.
    fn event(&mut self, sink: &mut dyn EventSink) -> Result<bool> {
        loop {
            let start = self.win.pos;
            let outcome = {
                let slice = &self.win.buf[start..];
                let mut it = serde_json::Deserializer::from_slice(slice).into_iter::<RawEvent>();
                match it.next() {
                    Some(Ok(raw)) => {
                        let used = it.byte_offset();
                        match raw.into_event() {
                            Ok(ev) => {
                                sink.event(&ev)?;
                                Outcome::Parsed(used)
                            }
                            Err(m) => Outcome::Bad(start, m),
                        }
                    }
                    Some(Err(e)) if e.is_eof() => Outcome::NeedMore,
                    Some(Err(e)) => {
                        let control = e.to_string().contains("control character");
                        Outcome::Syntax(start + byte_of(slice, &e), e.to_string(), control)
                    }
                    None => Outcome::NeedMore,
                }
            };
            match outcome {
                Outcome::Parsed(used) => {
                    self.win.pos += used;
                    self.info.events += 1;
                    return Ok(true);
                }
                Outcome::NeedMore => {
                    if !self.win.fill()? {
                        self.truncated::<()>("the last event is cut off")?;
                        return Ok(false);
                    }
                }
                Outcome::Syntax(..) if !self.win.value_is_complete() => {
                    if !self.win.fill()? {
                        self.truncated::<()>("the last event is cut off")?;
                        return Ok(false);
                    }
                }
                Outcome::Syntax(_, _, true) if self.lenient => return self.sanitized(sink),
                Outcome::Syntax(at, message, control) => {
                    let hint = if control {
                        " (raw control characters inside strings: --lenient escapes them)"
                    } else {
                        ""
                    };
                    return Err(self.win.error(at, format!("{message}{hint}")));
                }
                Outcome::Bad(at, message) => {
                    if self.lenient {
                        let len = self.win.complete_value_len()?.unwrap_or(0);
                        self.win.pos += len;
                        return Ok(true);
                    }
                    return Err(self.win.error(at, message));
                }
            }
        }
    }

    /// Lenient path for pytorch/pytorch#130622: escapes raw control characters inside strings
    /// of one event, then parses the copy.
    fn sanitized(&mut self, sink: &mut dyn EventSink) -> Result<bool> {
        let Some(len) = self.win.complete_value_len()? else {
            self.info.truncated = true;
            return Ok(false);
        };
        let start = self.win.pos;
        let fixed = escape_control_chars(&self.win.buf[start..start + len]);
        let raw: RawEvent = serde_json::from_slice(&fixed).map_err(|e| {
            self.win
                .error(start + byte_of(&fixed, &e).min(len), e.to_string())
        })?;
        let ev = raw.into_event().map_err(|m| self.win.error(start, m))?;
        sink.event(&ev)?;
        self.win.pos += len;
        self.info.events += 1;
        Ok(true)
    }
}

enum Outcome {
    Parsed(usize),
    NeedMore,
    Syntax(usize, String, bool),
    Bad(usize, String),
}

/// Byte index inside `slice` of the line/column serde_json reports.
fn byte_of(slice: &[u8], e: &serde_json::Error) -> usize {
    let mut line = 1;
    let mut line_start = 0;
    if e.line() > 1 {
        for (i, &b) in slice.iter().enumerate() {
            if b == b'\n' {
                line += 1;
                line_start = i + 1;
                if line == e.line() {
                    break;
                }
            }
        }
    }
    (line_start + e.column().saturating_sub(1)).min(slice.len())
}

fn escape_control_chars(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let mut in_str = false;
    let mut esc = false;
    for &b in bytes {
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            } else if b < 0x20 {
                out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                continue;
            }
        } else if b == b'"' {
            in_str = true;
        }
        out.push(b);
    }
    out
}

/// A string that borrows from the input when it has no escapes (serde only borrows a bare
/// `Cow<str>`, never one inside an `Option`).
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
            // Names and categories are strings in every writer seen; a number is kept as text.
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_only_inside_strings() {
        let got = escape_control_chars(b"{\"name\": \"a\tb\\\"\nc\"}\n");
        assert_eq!(got, b"{\"name\": \"a\\u0009b\\\"\\u000ac\"}\n".to_vec());
    }
}
