//! One host event as the call-tree fold sorts it, with the `args` members it needs: torch's
//! spelling of `Input Dims` and a runtime call's `correlation`.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::fmt::Write;
use std::io::{self, Read};
use std::sync::LazyLock;

use foldhash::fast::FixedState;
use memchr::memmem::Finder;

use serde::Deserialize;

use super::HostKind;
use crate::analyze::args::{Args, int_arg, plain_int};
use crate::external_sort::{Record, read_exact_or_end};
use std::sync::Arc;

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct HostRecord {
    /// A hash of `(pid, tid)`: records sort by thread first, and only grouping matters.
    pub(super) thread: u64,
    pub(super) ts: i64,
    /// Longer events first at equal starts, so a parent precedes its children.
    pub(super) end: Reverse<i64>,
    pub(super) kind: HostKind,
    /// Shared with every record of the same name (interned per parsing thread).
    pub(super) name: Arc<str>,
    /// Torch's printed `Input Dims` for a `cpu_op`, empty otherwise (shared likewise).
    pub(super) dims: Arc<str>,
    /// `args.correlation` of a runtime call (-1 otherwise): the key to the GPU work it launched.
    pub(super) correlation: i64,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Reads a string written by [`put_str`], shared with earlier reads of the same text on this
/// thread (a merge reads the same few names millions of times).
fn get_str(input: &mut impl Read) -> io::Result<Arc<str>> {
    let mut n = [0u8; 4];
    input.read_exact(&mut n)?;
    DECODED.with_borrow_mut(|(buf, seen)| {
        buf.resize(u32::from_le_bytes(n) as usize, 0);
        input.read_exact(buf)?;
        let text =
            std::str::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(intern_in(seen, text))
    })
}

type Interned = HashMap<Box<str>, Arc<str>, FixedState>;

/// Distinct names kept by one interner before it starts over (records keep their strings).
const INTERN_CAP: usize = 1 << 16;

/// The shared copy of `text` in `seen`, made on first sight.
pub(super) fn intern_in(seen: &mut Interned, text: &str) -> Arc<str> {
    if let Some(s) = seen.get(text) {
        return Arc::clone(s);
    }
    if seen.len() >= INTERN_CAP {
        seen.clear();
    }
    let s: Arc<str> = text.into();
    seen.insert(text.into(), Arc::clone(&s));
    s
}

/// A name interner (one per parsing thread).
#[derive(Default)]
pub(super) struct Names(Interned);

impl Names {
    pub(super) fn get(&mut self, text: &str) -> Arc<str> {
        intern_in(&mut self.0, text)
    }
}

thread_local! {
    static DECODED: RefCell<(Vec<u8>, Interned)> = RefCell::new((Vec::new(), HashMap::default()));
}

impl Record for HostRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.thread.to_le_bytes());
        out.extend_from_slice(&self.ts.to_le_bytes());
        out.extend_from_slice(&self.end.0.to_le_bytes());
        out.push(self.kind as u8);
        put_str(out, &self.name);
        put_str(out, &self.dims);
        out.extend_from_slice(&self.correlation.to_le_bytes());
    }

    fn decode(input: &mut impl Read) -> io::Result<Option<Self>> {
        let mut t = [0u8; 8];
        if !read_exact_or_end(input, &mut t)? {
            return Ok(None);
        }
        let thread = u64::from_le_bytes(t);
        let mut b = [0u8; 17];
        input.read_exact(&mut b)?;
        let kind = match b[16] {
            0 => HostKind::CpuOp,
            1 => HostKind::UserAnnotation,
            2 => HostKind::Runtime,
            _ => HostKind::PythonFunction,
        };
        Ok(Some(HostRecord {
            thread,
            ts: i64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            end: Reverse(i64::from_le_bytes(b[8..16].try_into().expect("8 bytes"))),
            kind,
            name: get_str(input)?,
            dims: get_str(input)?,
            correlation: {
                let mut c = [0u8; 8];
                input.read_exact(&mut c)?;
                i64::from_le_bytes(c)
            },
        }))
    }

    fn mem_size(&self) -> usize {
        // the strings are shared between records: count the record only
        std::mem::size_of::<HostRecord>()
    }
}

/// Built once: `memmem::find` builds its searcher on every call, which cost more than the
/// search on these short `args` objects.
pub(crate) static CORRELATION_KEY: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\"correlation\""));
static INPUT_DIMS_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"Input Dims"));

#[derive(Deserialize)]
struct CorrelationArgs {
    correlation: Option<serde_json::Value>,
}

/// A runtime call's `args.correlation` read as the GPU side reads a kernel's (HTA's
/// `int()`: `12`, `12.0`, `"12"`), -1 without one, so that both ends of a launch agree.
pub(crate) fn correlation(args: &Args<'_>) -> i64 {
    if !args.exact {
        return correlation_slow(args.text);
    }
    match args.correlation {
        None => -1,
        Some(raw) => plain_int(raw)
            .or_else(|| {
                serde_json::from_str::<serde_json::Value>(raw)
                    .ok()
                    .as_ref()
                    .and_then(int_arg)
            })
            .unwrap_or(-1),
    }
}

/// [`correlation`] by a serde_json parse of the whole object: of one that holds the key's
/// text, or an escape (a key may be spelt with one).
fn correlation_slow(args: Option<&str>) -> i64 {
    args.filter(|a| {
        CORRELATION_KEY.find(a.as_bytes()).is_some()
            || memchr::memchr(b'\\', a.as_bytes()).is_some()
    })
    .and_then(|a| serde_json::from_str::<CorrelationArgs>(a).ok())
    .and_then(|c| c.correlation)
    .as_ref()
    .and_then(int_arg)
    .unwrap_or(-1)
}

#[derive(Deserialize)]
struct ShapeArgs<'a> {
    #[serde(rename = "Input Dims", borrow)]
    input_dims: Option<&'a serde_json::value::RawValue>,
}

/// `Input Dims` in torch's spelling: `[[4, 64], []]` (`[]` without them).
pub(super) fn input_dims(args: &Args<'_>) -> Arc<str> {
    let raw = if args.exact {
        args.input_dims.filter(|r| *r != "null")
    } else {
        input_dims_slow(args.text)
    };
    PRINTED_DIMS.with_borrow_mut(|printed| {
        let raw = raw.unwrap_or("[]");
        if let Some(p) = printed.get(raw) {
            return Arc::clone(p);
        }
        let p: Arc<str> = match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(v) => {
                let mut out = String::new();
                torch_repr(&v, &mut out);
                out.into()
            }
            Err(_) => "[]".into(),
        };
        if printed.len() >= PRINTED_DIMS_CAP {
            printed.clear();
        }
        printed.insert(raw.into(), Arc::clone(&p));
        p
    })
}

/// The raw `Input Dims` by a serde_json parse of the whole object.
fn input_dims_slow(args: Option<&str>) -> Option<&str> {
    let args = args?;
    INPUT_DIMS_KEY.find(args.as_bytes())?;
    serde_json::from_str::<ShapeArgs<'_>>(args)
        .ok()?
        .input_dims
        .map(|r| r.get())
}

/// Distinct shapes are few and repeat every step: each parsing thread keeps the printed form
/// of the raw JSON it has seen (at most this many, then it starts over) instead of building
/// and printing a `serde_json::Value` per op.
const PRINTED_DIMS_CAP: usize = 4096;

thread_local! {
    static PRINTED_DIMS: RefCell<HashMap<Box<str>, Arc<str>, FixedState>> =
        RefCell::new(HashMap::default());
}

/// A JSON value as Python's `str()` prints the list torch builds (`[[4, 64], []]`), written
/// into one string.
fn torch_repr(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                torch_repr(item, out);
            }
            out.push(']');
        }
        serde_json::Value::String(s) => {
            out.push('\'');
            out.push_str(s);
            out.push('\'');
        }
        other => {
            write!(out, "{other}").expect("a String takes any write");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_dims_print_like_torch() {
        let dims = |t: Option<&str>| input_dims(&Args::scan(t)).to_string();
        let text = r#"{"Input Dims": [[4, 64], [], [128]], "x": 1}"#;
        assert_eq!(dims(Some(text)), "[[4, 64], [], [128]]");
        assert_eq!(dims(Some(r#"{"External id": 3}"#)), "[]");
        assert_eq!(dims(Some(r#"{"Input Dims": null}"#)), "[]");
        assert_eq!(dims(None), "[]");
        // the serde path (an escaped key) gives the same
        let escaped = r#"{"Input Dims": [[4, 64], [], [128]], "\u0078": 1}"#;
        assert!(!Args::scan(Some(escaped)).exact);
        assert_eq!(dims(Some(escaped)), "[[4, 64], [], [128]]");
        let corr = |t: &str| correlation(&Args::scan(Some(t)));
        assert_eq!(corr(r#"{"correlation": 12}"#), 12);
        // as the GPU side (HTA's int()) reads a kernel's, so both ends of a launch agree
        assert_eq!(corr(r#"{"correlation": "12"}"#), 12);
        assert_eq!(corr(r#"{"correlation": 1.5}"#), 1);
        assert_eq!(corr(r#"{"correlation": 1e3}"#), 1000);
        assert_eq!(corr(r#"{"correlation": "0x0"}"#), -1);
        assert_eq!(corr(r#"{"correlation": null}"#), -1);
        assert_eq!(corr(r#"{"correlation": 12, "\u0078": 1}"#), 12);
        assert_eq!(corr(r#"{"correlation": "12", "\u0078": 1}"#), 12);
        // a key spelt with an escape
        assert_eq!(corr(r#"{"\u0063orrelation": 7}"#), 7);
        assert_eq!(corr(r#"{"correlation": 1, "correlation": 2}"#), -1);
    }
}
