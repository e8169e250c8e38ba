//! A block: whole elements of `traceEvents` cut from the stream at element ends (found by
//! [`Structure`](super::structure::Structure)), parsed on whichever thread gets it. The parser
//! checks everything, separators included.

use std::path::Path;

use super::direct;
use super::event::RawEvent;
use super::window::ValueScanner;
use crate::error::{Result, TraceError};
use crate::model::EventSink;

/// About this much JSON per block: large enough that hand-offs between threads are rare,
/// small enough that a few in flight stay cheap.
pub const BLOCK_TARGET: usize = 1 << 20;

pub struct Block {
    /// Stream offset of `bytes[0]` (in the decompressed JSON).
    pub offset: u64,
    /// Elements separated by commas. The first block starts just after the array's `[`; the
    /// others just after the `}` that ended the previous block, so with a comma.
    pub bytes: Vec<u8>,
    pub first: bool,
}

/// Where a block came from, for error messages, and how to parse it.
#[derive(Clone, Copy)]
pub struct BlockContext<'a> {
    pub path: &'a Path,
    pub compressed: bool,
    pub lenient: bool,
}

impl BlockContext<'_> {
    fn error(&self, offset: u64, message: String) -> TraceError {
        TraceError::Json {
            path: self.path.to_path_buf(),
            offset,
            compressed: self.compressed,
            message,
        }
    }
}

/// Parses every event of `block` into `sink`, in order; returns how many.
pub fn parse_block(block: &Block, cx: &BlockContext<'_>, sink: &mut dyn EventSink) -> Result<u64> {
    let bytes = block.bytes.as_slice();
    let skip_ws = |mut p: usize| {
        while p < bytes.len() && matches!(bytes[p], b' ' | b'\n' | b'\r' | b'\t') {
            p += 1;
        }
        p
    };
    let at = |p: usize| block.offset + p as u64;
    let mut pos = 0;
    let mut n = 0;
    let mut need_comma = !block.first;
    // Once per block, so the direct parser need not check any string (`direct.rs`).
    let utf8 = std::str::from_utf8(bytes).is_ok();
    let mut direct_event: RawEvent<'_>;
    loop {
        pos = skip_ws(pos);
        if pos >= bytes.len() {
            return Ok(n);
        }
        if need_comma {
            if bytes[pos] != b',' {
                return Err(cx.error(at(pos), "expected `,` or `]` after an event".into()));
            }
            let comma = pos;
            pos = skip_ws(pos + 1);
            // Blocks end after an element, except the last, which ends before the `]`.
            if pos >= bytes.len() {
                if cx.lenient {
                    return Ok(n);
                }
                return Err(cx.error(
                    at(comma),
                    "trailing comma before `]` (--lenient accepts it)".into(),
                ));
            }
        }
        need_comma = true;
        let slice = &bytes[pos..];
        if utf8 {
            // the common case, kept apart so the event is built in place and only borrowed
            direct_event = RawEvent::default();
            if let Some(end) = direct::parse_into(bytes, pos, &mut direct_event) {
                match deliver(&direct_event, sink, cx.lenient)? {
                    Delivered::Sent => n += 1,
                    Delivered::Skipped => {}
                    Delivered::Unusable(message) => return Err(cx.error(at(pos), message)),
                }
                pos = end;
                continue;
            }
        }
        let parsed = {
            let mut it = serde_json::Deserializer::from_slice(slice).into_iter::<RawEvent>();
            it.next().map(|r| r.map(|raw| (raw, it.byte_offset())))
        };
        let failure = match parsed {
            Some(Ok((raw, used))) => match deliver(&raw, sink, cx.lenient)? {
                Delivered::Sent => {
                    pos += used;
                    n += 1;
                    continue;
                }
                Delivered::Skipped => {
                    pos += used;
                    continue;
                }
                Delivered::Unusable(message) => (0, message, false),
            },
            Some(Err(e)) => {
                let control = e.to_string().contains("control character");
                (byte_of(slice, &e), e.to_string(), control)
            }
            None => return Ok(n),
        };
        let (off, message, control) = failure;
        if control && cx.lenient {
            pos += sanitized(slice, cx, at(pos), sink)?;
            n += 1;
            continue;
        }
        let hint = if control {
            " (raw control characters inside strings: --lenient escapes them)"
        } else {
            ""
        };
        return Err(cx.error(at(pos + off), format!("{message}{hint}")));
    }
}

/// What became of one parsed event.
enum Delivered {
    Sent,
    /// An event loupe cannot use (no phase, a non-numeric time), skipped under `--lenient`.
    Skipped,
    Unusable(String),
}

/// Hands one parsed event to `sink`, with the `args` members the parser found in its pass.
fn deliver(raw: &RawEvent<'_>, sink: &mut dyn EventSink, lenient: bool) -> Result<Delivered> {
    Ok(match raw.to_event() {
        Ok(ev) => {
            match &raw.scanned {
                Some(args) => sink.event_scanned(&ev, args)?,
                None => sink.event(&ev)?,
            }
            Delivered::Sent
        }
        Err(_) if lenient => Delivered::Skipped,
        Err(message) => Delivered::Unusable(message),
    })
}

/// Lenient path for pytorch/pytorch#130622: escapes raw control characters inside the strings
/// of the event at the start of `slice`, then parses the copy. Returns the event's length.
fn sanitized(
    slice: &[u8],
    cx: &BlockContext<'_>,
    offset: u64,
    sink: &mut dyn EventSink,
) -> Result<usize> {
    let len = match ValueScanner::default().feed(slice) {
        Ok(Some(len)) => len,
        _ => return Err(cx.error(offset, "an event that never ends".into())),
    };
    let fixed = escape_control_chars(&slice[..len]);
    let raw: RawEvent = serde_json::from_slice(&fixed)
        .map_err(|e| cx.error(offset + byte_of(&fixed, &e).min(len) as u64, e.to_string()))?;
    if let Ok(ev) = raw.to_event() {
        sink.event(&ev)?;
    }
    Ok(len)
}

/// Byte index inside `slice` of the line/column serde_json reports.
pub fn byte_of(slice: &[u8], e: &serde_json::Error) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_only_inside_strings() {
        let got = escape_control_chars(b"{\"name\": \"a\tb\\\"\nc\"}\n");
        assert_eq!(got, b"{\"name\": \"a\\u0009b\\\"\\u000ac\"}\n".to_vec());
    }
}
