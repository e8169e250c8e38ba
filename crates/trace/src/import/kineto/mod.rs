//! Kineto / Chrome-trace JSON as a stream: the top-level object is walked key by key (any
//! order: `baseTimeNanoseconds` and metadata may follow `traceEvents`); the event array is cut
//! into blocks of whole elements (a 64-bytes-at-a-time structural scan, `structure.rs`), and
//! each block is parsed with serde_json, borrowing from the block. Blocks are parsed in order
//! on this thread ([`read`]) or handed to worker threads ([`read_blocks`]). Memory stays at a
//! few chunks and blocks whatever the size.

pub mod block;
mod direct;
mod event;
mod structure;
mod window;

use std::borrow::Cow;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Result, TraceError};
use crate::import::ReadOptions;
use crate::import::source::{ChunkStream, Container};
use crate::model::{DistributedInfo, EventSink, Format, TraceInfo};

use crate::buffers::BufferPool;
use block::{BLOCK_TARGET, Block, BlockContext, parse_block};
use structure::Structure;
pub use window::ValueScanner;
use window::Window;

/// Top-level values (other than the events) larger than this are skipped, not kept.
const KEEP_LIMIT: usize = 1 << 20;
/// One event longer than this is refused rather than held: in practice it means a string or
/// bracket that never closes, which would otherwise pull the rest of the file into memory.
const MAX_EVENT: usize = 64 << 20;

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
    let mut reader = Reader::open(path, container, opts, BufferPool::new(2 * BLOCK_TARGET))?;
    let cx = BlockContext {
        path,
        compressed: container == Container::GzipJson,
        lenient: opts.lenient,
    };
    let mut events = 0;
    let pool = reader.pool.clone();
    reader.run(Mode::Events, &mut |b: Block| {
        events += parse_block(&b, &cx, sink)?;
        pool.give(b.bytes);
        Ok(())
    })?;
    reader.info.events = events;
    Ok(reader.info)
}

/// The event array as blocks, in file order, for parsing elsewhere ([`parse_block`]; give the
/// parsed blocks' bytes back to `pool`). The returned info does not count events.
pub fn read_blocks(
    path: &Path,
    container: Container,
    opts: &ReadOptions,
    pool: &BufferPool,
    out: &mut dyn FnMut(Block) -> Result<()>,
) -> Result<TraceInfo> {
    let mut reader = Reader::open(path, container, opts, pool.clone())?;
    reader.run(Mode::Events, out)?;
    Ok(reader.info)
}

/// The top-level members only (time base, `distributedInfo`, `deviceProperties`, ...).
pub fn probe(path: &Path, container: Container, opts: &ReadOptions) -> Result<TraceInfo> {
    let mut reader = Reader::open(path, container, opts, BufferPool::new(2 * BLOCK_TARGET))?;
    let pool = reader.pool.clone();
    reader.run(Mode::Header, &mut |b: Block| {
        pool.give(b.bytes);
        Ok(())
    })?;
    Ok(reader.info)
}

struct Reader {
    win: Window,
    lenient: bool,
    info: TraceInfo,
    pool: BufferPool,
}

impl Reader {
    fn open(
        path: &Path,
        container: Container,
        opts: &ReadOptions,
        pool: BufferPool,
    ) -> Result<Reader> {
        Ok(Reader {
            win: Window::new(ChunkStream::open(path, container)?),
            lenient: opts.lenient,
            pool,
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
                    if mode == Mode::Header && self.info.base_ns.is_some() {
                        return Ok(true);
                    }
                    if self.win.peek()? != Some(b'[') {
                        return Err(self
                            .win
                            .error(self.win.pos, "`traceEvents` is not an array"));
                    }
                    // A header probe cuts the array too (the cheapest way past it) and
                    // discards the blocks.
                    self.events(out)?;
                    if self.info.truncated {
                        return Ok(false);
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
        Err(self.ends_early(self.win.offset(), what))
    }

    /// Cuts the event array at the current position (`[`) into blocks of whole elements,
    /// each ending just after an element's closing bracket, and leaves the window after the
    /// array's `]`. Bytes are copied once, from the decompressed chunks into the blocks.
    fn events(&mut self, out: &mut dyn FnMut(Block) -> Result<()>) -> Result<()> {
        self.win.bump();
        let mut structure = Structure::default();
        let mut block = self.pool.take();
        let mut offset = self.win.take_rest(&mut block);
        let mut first = true;
        // `block[..scanned]` has been scanned; `block[..end]` ends with a whole element.
        let mut scanned = 0;
        let mut end = 0;
        let mut eof = false;
        loop {
            let scan = structure.scan(&block[scanned..], eof);
            if let Some(e) = scan.last_end {
                end = scanned + e;
            }
            if let Some(x) = scan.exit {
                let exit = scanned + x;
                if block[exit] != b']' {
                    return Err(
                        self.error_at(offset + exit as u64, "expected `,` or `]` after an event")
                    );
                }
                // The array's `]` and what follows go back to the window.
                self.win.put_back(&block[exit..]);
                self.win.bump();
                block.truncate(exit);
                return self.emit(block, offset, first, out);
            }
            scanned += scan.consumed;
            if end >= BLOCK_TARGET {
                let mut next = self.pool.take();
                next.extend_from_slice(&block[end..]);
                block.truncate(end);
                self.emit(block, offset, first, out)?;
                first = false;
                block = next;
                offset += end as u64;
                scanned -= end;
                end = 0;
            }
            if eof {
                let rest = &block[end..];
                let separators = rest
                    .iter()
                    .take_while(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t' | b','))
                    .count();
                let only_separators = separators == rest.len();
                // Where the cut-off event starts.
                let at = offset + (end + separators) as u64;
                block.truncate(end);
                // The whole events go first: an error inside them is the earlier one.
                self.emit(block, offset, first, out)?;
                if self.lenient {
                    self.info.truncated = true;
                    return Ok(());
                }
                return Err(self.ends_early(
                    at,
                    if only_separators {
                        "the event array is not closed"
                    } else {
                        "the last event is cut off"
                    },
                ));
            }
            if block.len() - end > MAX_EVENT {
                return Err(self.error_at(
                    offset + end as u64,
                    format!(
                        "an event longer than {} MiB starts here (or a string or bracket \
                         before it is never closed)",
                        MAX_EVENT >> 20
                    ),
                ));
            }
            eof = !self.win.append_next(&mut block)?;
        }
    }

    fn emit(
        &mut self,
        bytes: Vec<u8>,
        offset: u64,
        first: bool,
        out: &mut dyn FnMut(Block) -> Result<()>,
    ) -> Result<()> {
        if bytes
            .iter()
            .all(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
        {
            self.pool.give(bytes);
            return Ok(());
        }
        out(Block {
            offset,
            bytes,
            first,
        })
    }

    fn error_at(&self, offset: u64, message: impl Into<String>) -> TraceError {
        TraceError::Json {
            path: self.path().to_path_buf(),
            offset,
            compressed: self.win.stream().compressed(),
            message: message.into(),
        }
    }

    fn ends_early(&self, offset: u64, what: &str) -> TraceError {
        self.error_at(
            offset,
            format!("{what}: the data ends early (a crashed or interrupted writer?); --lenient keeps the events before it"),
        )
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
