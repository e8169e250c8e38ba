//! One host event as the call-tree fold sorts it, with the `args` members it needs: torch's
//! spelling of `Input Dims` and a runtime call's `correlation`.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::fmt::Write;
use std::hash::BuildHasher;
use std::io::{self, Read};
use std::sync::LazyLock;

use foldhash::fast::FixedState;
use memchr::memmem::Finder;

use serde::Deserialize;

use super::HostKind;
use crate::analyze::args::{Args, int_arg, plain_int};
use crate::external_sort::{Record, read_exact_or_end};
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct HostRecord {
    /// A hash of `(pid, tid)`: records sort by thread first, and only grouping matters.
    pub(super) thread: u64,
    pub(super) ts: i64,
    /// Longer events first at equal starts, so a parent precedes its children.
    pub(super) end: Reverse<i64>,
    pub(super) kind: HostKind,
    /// A hash of the name's and the dims' texts: events alike in everything before it sort
    /// by their texts' hashes, the same on every run (ids depend on which parsing thread
    /// saw a text first).
    pub(super) key: u64,
    /// The name's id among the trace's [`Texts`].
    pub(super) name: u32,
    /// Torch's printed `Input Dims` for a `cpu_op` (`[]` otherwise), as an id likewise.
    pub(super) dims: u32,
    /// `args.correlation` of a runtime call (-1 otherwise): the key to the GPU work it launched.
    pub(super) correlation: i64,
}

/// Bytes of one encoded record.
const ENCODED: usize = 8 * 3 + 1 + 8 + 4 + 4 + 8;

impl Record for HostRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.thread.to_le_bytes());
        out.extend_from_slice(&self.ts.to_le_bytes());
        out.extend_from_slice(&self.end.0.to_le_bytes());
        out.push(self.kind as u8);
        out.extend_from_slice(&self.key.to_le_bytes());
        out.extend_from_slice(&self.name.to_le_bytes());
        out.extend_from_slice(&self.dims.to_le_bytes());
        out.extend_from_slice(&self.correlation.to_le_bytes());
    }

    fn decode(input: &mut impl Read) -> io::Result<Option<Self>> {
        let mut b = [0u8; ENCODED];
        if !read_exact_or_end(input, &mut b)? {
            return Ok(None);
        }
        let i64_at = |at: usize| i64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        let kind = match b[24] {
            0 => HostKind::CpuOp,
            1 => HostKind::UserAnnotation,
            2 => HostKind::Runtime,
            _ => HostKind::PythonFunction,
        };
        Ok(Some(HostRecord {
            thread: i64_at(0) as u64,
            ts: i64_at(8),
            end: Reverse(i64_at(16)),
            kind,
            key: i64_at(25) as u64,
            name: u32_at(33),
            dims: u32_at(37),
            correlation: i64_at(41),
        }))
    }

    fn mem_size(&self) -> usize {
        std::mem::size_of::<HostRecord>()
    }
}

/// The distinct texts (names, printed input dims) of one trace's host records, by dense id,
/// shared by its parsing threads: records carry ids, so a spilled run holds no strings and
/// reading it back hashes none.
#[derive(Default)]
pub(super) struct Texts {
    ids: HashMap<Arc<str>, u32, FixedState>,
    pub(super) texts: Vec<Arc<str>>,
}

impl Texts {
    /// The id of `text`, given on first sight.
    pub(super) fn id(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.ids.get(text) {
            return id;
        }
        let id = u32::try_from(self.texts.len()).expect("fewer than 2^32 distinct texts");
        let text: Arc<str> = text.into();
        self.texts.push(Arc::clone(&text));
        self.ids.insert(text, id);
        id
    }
}

pub(super) type SharedTexts = Arc<Mutex<Texts>>;

/// Texts one parsing thread has seen, with their ids and hashes: the shared table is locked
/// only for a text this thread has not seen (or has forgotten: it keeps at most
/// [`LOCAL_CAP`] and then starts over).
pub(super) struct LocalTexts {
    shared: SharedTexts,
    names: HashMap<Box<str>, (u32, u64), FixedState>,
    /// By the raw JSON of `Input Dims`, the id and hash of its printed form.
    dims: HashMap<Box<str>, (u32, u64), FixedState>,
}

/// Texts a parsing thread remembers before it starts over.
const LOCAL_CAP: usize = 1 << 16;

impl LocalTexts {
    pub(super) fn new(shared: SharedTexts) -> Self {
        LocalTexts {
            shared,
            names: HashMap::default(),
            dims: HashMap::default(),
        }
    }

    pub(super) fn shared(&self) -> &SharedTexts {
        &self.shared
    }

    fn shared_id(shared: &SharedTexts, text: &str) -> (u32, u64) {
        let id = shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .id(text);
        (id, FixedState::default().hash_one(text))
    }

    /// The id and hash of a name.
    pub(super) fn name(&mut self, text: &str) -> (u32, u64) {
        if let Some(&v) = self.names.get(text) {
            return v;
        }
        let v = Self::shared_id(&self.shared, text);
        if self.names.len() >= LOCAL_CAP {
            self.names.clear();
        }
        self.names.insert(text.into(), v);
        v
    }

    /// The id and hash of the printed `Input Dims` of `args` (`[]` without them).
    pub(super) fn dims(&mut self, args: &Args<'_>) -> (u32, u64) {
        let raw = raw_input_dims(args).unwrap_or("[]");
        if let Some(&v) = self.dims.get(raw) {
            return v;
        }
        let v = Self::shared_id(&self.shared, &print_dims(raw));
        if self.dims.len() >= LOCAL_CAP {
            self.dims.clear();
        }
        self.dims.insert(raw.into(), v);
        v
    }

    /// The id and hash of `[]`, the dims of every event but a `cpu_op`.
    pub(super) fn no_dims(&mut self) -> (u32, u64) {
        self.dims(&Args::default())
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

/// The raw JSON of `args["Input Dims"]`, if any.
fn raw_input_dims<'a>(args: &Args<'a>) -> Option<&'a str> {
    if args.exact {
        args.input_dims.filter(|r| *r != "null")
    } else {
        input_dims_slow(args.text)
    }
}

/// Raw `Input Dims` JSON in torch's spelling: `[[4, 64], []]` (`[]` for what does not parse).
fn print_dims(raw: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(v) => {
            let mut out = String::new();
            torch_repr(&v, &mut out);
            out
        }
        Err(_) => "[]".into(),
    }
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
        let dims = |t: Option<&str>| print_dims(raw_input_dims(&Args::scan(t)).unwrap_or("[]"));
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
