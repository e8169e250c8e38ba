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
use crate::external_sort::{Record, read_exact_or_end};

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct HostRecord {
    /// A hash of `(pid, tid)`: records sort by thread first, and only grouping matters.
    pub(super) thread: u64,
    pub(super) ts: i64,
    /// Longer events first at equal starts, so a parent precedes its children.
    pub(super) end: Reverse<i64>,
    pub(super) kind: HostKind,
    pub(super) name: String,
    pub(super) dims: String,
    /// `args.correlation` of a runtime call (-1 otherwise): the key to the GPU work it launched.
    pub(super) correlation: i64,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn get_str(input: &mut impl Read) -> io::Result<String> {
    let mut n = [0u8; 4];
    input.read_exact(&mut n)?;
    let mut b = vec![0u8; u32::from_le_bytes(n) as usize];
    input.read_exact(&mut b)?;
    String::from_utf8(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
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
        std::mem::size_of::<HostRecord>() + self.name.len() + self.dims.len()
    }
}

/// Built once: `memmem::find` builds its searcher on every call, which cost more than the
/// search on these short `args` objects.
pub(crate) static CORRELATION_KEY: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\"correlation\""));
static INPUT_DIMS_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"Input Dims"));

#[derive(Deserialize)]
struct CorrelationArgs {
    correlation: Option<i64>,
}

pub(super) fn correlation(args: Option<&str>) -> i64 {
    args.filter(|a| CORRELATION_KEY.find(a.as_bytes()).is_some())
        .and_then(|a| serde_json::from_str::<CorrelationArgs>(a).ok())
        .and_then(|c| c.correlation)
        .unwrap_or(-1)
}

#[derive(Deserialize)]
struct ShapeArgs<'a> {
    #[serde(rename = "Input Dims", borrow)]
    input_dims: Option<&'a serde_json::value::RawValue>,
}

/// `Input Dims` in torch's spelling: `[[4, 64], []]`.
pub(super) fn input_dims(args: Option<&str>) -> String {
    let Some(args) = args else {
        return "[]".into();
    };
    if INPUT_DIMS_KEY.find(args.as_bytes()).is_none() {
        return "[]".into();
    }
    let Ok(parsed) = serde_json::from_str::<ShapeArgs<'_>>(args) else {
        return "[]".into();
    };
    let Some(raw) = parsed.input_dims else {
        return "[]".into();
    };
    PRINTED_DIMS.with_borrow_mut(|printed| {
        if let Some(p) = printed.get(raw.get()) {
            return p.to_string();
        }
        let p = match serde_json::from_str::<serde_json::Value>(raw.get()) {
            Ok(v) => {
                let mut out = String::new();
                torch_repr(&v, &mut out);
                out
            }
            Err(_) => "[]".into(),
        };
        if printed.len() >= PRINTED_DIMS_CAP {
            printed.clear();
        }
        printed.insert(raw.get().into(), p.as_str().into());
        p
    })
}

/// Distinct shapes are few and repeat every step: each parsing thread keeps the printed form
/// of the raw JSON it has seen (at most this many, then it starts over) instead of building
/// and printing a `serde_json::Value` per op.
const PRINTED_DIMS_CAP: usize = 4096;

thread_local! {
    static PRINTED_DIMS: RefCell<HashMap<Box<str>, Box<str>, FixedState>> =
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
        assert_eq!(
            input_dims(Some(r#"{"Input Dims": [[4, 64], [], [128]], "x": 1}"#)),
            "[[4, 64], [], [128]]"
        );
        assert_eq!(input_dims(Some(r#"{"External id": 3}"#)), "[]");
        assert_eq!(input_dims(None), "[]");
    }
}
