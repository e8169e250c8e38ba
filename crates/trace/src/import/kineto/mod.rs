//! Kineto / Chrome-trace JSON as a stream: the top-level object is walked key by key (any
//! order: `baseTimeNanoseconds` and metadata may follow `traceEvents`); the event array is cut
//! into blocks of whole elements (a structural scan: depth, strings, separators), and each
//! block is parsed with serde_json, borrowing from the block. Blocks are parsed in order on
//! this thread ([`read`]) or handed to worker threads ([`read_blocks`]). Memory stays at a
//! few chunks and blocks whatever the size.

pub mod block;
mod event;
mod window;

use std::borrow::Cow;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Result, TraceError};
use crate::import::ReadOptions;
use crate::import::source::{ChunkStream, Container};
use crate::model::{DistributedInfo, EventSink, Format, TraceInfo};

use block::{BLOCK_TARGET, Block, BlockContext, parse_block};
pub use window::ValueScanner;
use window::Window;

/// Top-level values (other than the events) larger than this are skipped, not kept.
const KEEP_LIMIT: usize = 1 << 20;

/// How far to read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every event, in blocks.
    Events,
    /// Only the top-level members; the event array is skipped structurally, and reading stops
    /// at the array when the time base is already known.
    Header,
}

/// Every event to `sink`, in file order.
pub fn read(
    path: &Path,
    container: Container,
    opts: &ReadOptions,
    sink: &mut dyn EventSink,
) -> Result<TraceInfo> {
    let mut reader = Reader::open(path, container, opts)?;
    let cx = BlockContext {
        path,
        compressed: container == Container::GzipJson,
        lenient: opts.lenient,
    };
    let mut events = 0;
    reader.run(Mode::Events, &mut |b: Block| {
        events += parse_block(&b, &cx, sink)?;
        Ok(())
    })?;
    reader.info.events = events;
    Ok(reader.info)
}

/// The event array as blocks, in file order, for parsing elsewhere ([`parse_block`]). The
/// returned info does not count events.
pub fn read_blocks(
    path: &Path,
    container: Container,
    opts: &ReadOptions,
    out: &mut dyn FnMut(Block) -> Result<()>,
) -> Result<TraceInfo> {
    let mut reader = Reader::open(path, container, opts)?;
    reader.run(Mode::Events, out)?;
    Ok(reader.info)
}

/// The top-level members only (time base, `distributedInfo`, `deviceProperties`, ...).
pub fn probe(path: &Path, container: Container, opts: &ReadOptions) -> Result<TraceInfo> {
    let mut reader = Reader::open(path, container, opts)?;
    reader.run(Mode::Header, &mut |_: Block| Ok(()))?;
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

    fn run(&mut self, mode: Mode, out: &mut dyn FnMut(Block) -> Result<()>) -> Result<()> {
        match self.win.peek()? {
            Some(b'{') => {
                self.win.bump();
                if self.object(mode, out)? {
                    return Ok(());
                }
            }
            // rpd2tracing's `--format array` and nsys2json write a bare event array.
            Some(b'[') => {
                if mode == Mode::Header {
                    return Ok(());
                }
                self.events(out)?;
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
    fn object(&mut self, mode: Mode, out: &mut dyn FnMut(Block) -> Result<()>) -> Result<bool> {
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
                        self.events(out)?;
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

    /// Cuts the event array at the current position (`[`) into blocks of whole elements.
    /// Structure and separators are checked here; the elements' contents by the parser.
    fn events(&mut self, out: &mut dyn FnMut(Block) -> Result<()>) -> Result<()> {
        self.win.bump();
        // The block being cut spans `rel` bytes from the window's position; `done` of them
        // end with a complete element (what a truncation keeps).
        let mut rel = 0;
        let mut done = 0;
        let mut need_separator = false;
        loop {
            while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.win.byte_at(rel)? {
                rel += 1;
            }
            match self.win.byte_at(rel)? {
                None => {
                    self.cut(done, out)?;
                    return self.truncated("the event array is not closed");
                }
                Some(b']') => {
                    self.cut(rel, out)?;
                    self.win.bump();
                    return Ok(());
                }
                Some(b',') if need_separator => {
                    rel += 1;
                    need_separator = false;
                    while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.win.byte_at(rel)? {
                        rel += 1;
                    }
                    if self.win.byte_at(rel)? == Some(b']') && !self.lenient {
                        return Err(self.win.error(
                            self.win.pos + rel,
                            "trailing comma before `]` (--lenient accepts it)",
                        ));
                    }
                }
                Some(_) if need_separator => {
                    return Err(self
                        .win
                        .error(self.win.pos + rel, "expected `,` or `]` after an event"));
                }
                Some(_) => match self.win.value_len_at(rel)? {
                    Some(len) => {
                        rel += len;
                        done = rel;
                        need_separator = true;
                        if rel >= BLOCK_TARGET {
                            self.cut(rel, out)?;
                            rel = 0;
                            done = 0;
                        }
                    }
                    None => {
                        self.cut(done, out)?;
                        return self.truncated("the last event is cut off");
                    }
                },
            }
        }
    }

    /// Hands over the first `len` bytes at the window's position as a block.
    fn cut(&mut self, len: usize, out: &mut dyn FnMut(Block) -> Result<()>) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let block = Block {
            offset: self.win.offset(),
            bytes: self.win.buf[self.win.pos..self.win.pos + len].to_vec(),
        };
        self.win.pos += len;
        out(block)
    }
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
