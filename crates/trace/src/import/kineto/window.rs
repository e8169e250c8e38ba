//! A sliding window over the decompressed JSON bytes, and a structural scanner that finds where
//! one JSON value ends (depth, in-string and escape state only) without parsing it.

use crate::error::{Result, TraceError};
use crate::import::source::ChunkStream;

pub struct Window {
    src: ChunkStream,
    pub buf: Vec<u8>,
    pub pos: usize,
    /// Stream offset of `buf[0]`.
    origin: u64,
    eof: bool,
}

impl Window {
    pub fn new(src: ChunkStream) -> Window {
        Window {
            src,
            buf: Vec::new(),
            pos: 0,
            origin: 0,
            eof: false,
        }
    }

    pub fn stream(&self) -> &ChunkStream {
        &self.src
    }

    /// Stream offset of `buf[pos]`.
    pub fn offset(&self) -> u64 {
        self.origin + self.pos as u64
    }

    pub fn offset_of(&self, index: usize) -> u64 {
        self.origin + index as u64
    }

    /// Appends the next chunk after dropping consumed bytes. `false` at the end of the stream.
    pub fn fill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        match self.src.next_chunk()? {
            Some(chunk) => {
                if self.pos == self.buf.len() {
                    self.origin += self.buf.len() as u64;
                    let old = std::mem::replace(&mut self.buf, chunk);
                    self.src.recycle(old);
                } else {
                    if self.pos > 0 {
                        self.buf.drain(..self.pos);
                        self.origin += self.pos as u64;
                    }
                    self.buf.extend_from_slice(&chunk);
                    self.src.recycle(chunk);
                }
                self.pos = 0;
                Ok(true)
            }
            None => {
                self.eof = true;
                Ok(false)
            }
        }
    }

    /// The next non-whitespace byte (not consumed), `None` at the end of the stream.
    pub fn peek(&mut self) -> Result<Option<u8>> {
        loop {
            while self.pos < self.buf.len() {
                match self.buf[self.pos] {
                    b' ' | b'\n' | b'\r' | b'\t' => self.pos += 1,
                    b => return Ok(Some(b)),
                }
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    pub fn bump(&mut self) {
        self.pos += 1;
    }

    pub fn error(&self, index: usize, message: impl Into<String>) -> TraceError {
        TraceError::Json {
            path: self.src.path().to_path_buf(),
            offset: self.offset_of(index),
            compressed: self.src.compressed(),
            message: message.into(),
        }
    }

    /// Consumes one JSON value at the current position (after whitespace). Returns its bytes
    /// when they fit in `keep_limit`; larger values are skipped without being held in memory.
    pub fn take_value(&mut self, keep_limit: usize) -> Result<Option<Vec<u8>>> {
        if self.peek()?.is_none() {
            return Err(self.error(self.pos, "unexpected end of data, expected a value"));
        }
        let mut scan = ValueScanner::default();
        let mut kept = Some(Vec::new());
        let start = self.offset();
        loop {
            let found = scan
                .feed(&self.buf[self.pos..])
                .map_err(|m| self.error(self.pos, m))?;
            let end = found.map_or(self.buf.len(), |n| self.pos + n);
            if let Some(k) = kept.as_mut() {
                if k.len() + (end - self.pos) <= keep_limit {
                    k.extend_from_slice(&self.buf[self.pos..end]);
                } else {
                    kept = None;
                }
            }
            self.pos = end;
            if found.is_some() {
                return Ok(kept);
            }
            if !self.fill()? {
                if scan.is_scalar() && scan.started {
                    return Ok(kept);
                }
                return Err(TraceError::Json {
                    path: self.src.path().to_path_buf(),
                    offset: start,
                    compressed: self.src.compressed(),
                    message: "the value starting here is truncated (the data ends inside it)"
                        .into(),
                });
            }
        }
    }

    /// Takes the unconsumed bytes (appended to `into`) and returns their stream offset; the
    /// window is then empty.
    pub fn take_rest(&mut self, into: &mut Vec<u8>) -> u64 {
        let at = self.offset();
        into.extend_from_slice(&self.buf[self.pos..]);
        self.origin += self.buf.len() as u64;
        self.buf.clear();
        self.pos = 0;
        at
    }

    /// Appends the next chunk of the stream to `into` instead of the window; `false` at the
    /// end. Only while the window is empty (after [`Window::take_rest`]).
    pub fn append_next(&mut self, into: &mut Vec<u8>) -> Result<bool> {
        debug_assert!(self.pos == self.buf.len());
        if self.eof {
            return Ok(false);
        }
        match self.src.next_chunk()? {
            Some(chunk) => {
                self.origin += chunk.len() as u64;
                into.extend_from_slice(&chunk);
                self.src.recycle(chunk);
                Ok(true)
            }
            None => {
                self.eof = true;
                Ok(false)
            }
        }
    }

    /// Gives back bytes taken with [`Window::take_rest`]/[`Window::append_next`]: `bytes`
    /// are the stream's bytes up to the current end, so the window continues after them.
    pub fn put_back(&mut self, bytes: &[u8]) {
        debug_assert!(self.pos == self.buf.len());
        self.buf.clear();
        self.buf.extend_from_slice(bytes);
        self.origin -= bytes.len() as u64;
        self.pos = 0;
    }
}

/// Finds the end of one JSON value fed in pieces.
#[derive(Default)]
pub struct ValueScanner {
    depth: u32,
    in_str: bool,
    esc: bool,
    started: bool,
    /// The first byte of the value: `{`, `[`, `"`, or 0 for a scalar.
    kind: u8,
}

impl ValueScanner {
    fn is_scalar(&self) -> bool {
        self.kind == 0
    }

    /// Returns how many bytes of `bytes` complete the value, or `None` if it continues.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, &'static str> {
        let mut i = 0;
        if !self.started {
            while i < bytes.len() && matches!(bytes[i], b' ' | b'\n' | b'\r' | b'\t') {
                i += 1;
            }
            let Some(&first) = bytes.get(i) else {
                return Ok(None);
            };
            self.started = true;
            match first {
                b'{' | b'[' => {
                    self.kind = first;
                    self.depth = 1;
                }
                b'"' => {
                    self.kind = first;
                    self.in_str = true;
                }
                b'}' | b']' | b',' | b':' => return Err("expected a value"),
                _ => self.kind = 0,
            }
            i += 1;
        }
        if self.kind == 0 {
            while i < bytes.len() {
                if matches!(
                    bytes[i],
                    b' ' | b'\n' | b'\r' | b'\t' | b',' | b']' | b'}' | b':'
                ) {
                    return Ok(Some(i));
                }
                i += 1;
            }
            return Ok(None);
        }
        while i < bytes.len() {
            if self.in_str {
                if self.esc {
                    self.esc = false;
                    i += 1;
                    continue;
                }
                match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                    None => return Ok(None),
                    Some(k) => {
                        i += k;
                        if bytes[i] == b'\\' {
                            self.esc = true;
                        } else {
                            self.in_str = false;
                            if self.depth == 0 {
                                return Ok(Some(i + 1));
                            }
                        }
                        i += 1;
                    }
                }
                continue;
            }
            match bytes[i] {
                b'"' => self.in_str = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Ok(Some(i + 1));
                    }
                }
                _ => {}
            }
            i += 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end_of(pieces: &[&str]) -> Option<usize> {
        let mut s = ValueScanner::default();
        let mut total = 0;
        for p in pieces {
            if let Some(n) = s.feed(p.as_bytes()).unwrap() {
                return Some(total + n);
            }
            total += p.len();
        }
        None
    }

    #[test]
    fn finds_value_ends_across_pieces() {
        assert_eq!(
            end_of(&[r#"{"a": "}\"]", "b": [1, {"c": 2}]}, 5"#]),
            Some(33)
        );
        assert_eq!(end_of(&[r#"{"a": "x\"#, r#""y"}, {"#]), Some(13));
        assert_eq!(end_of(&["  12", "34 ,"]), Some(6));
        assert_eq!(end_of(&[r#""str\\"x"#]), Some(7));
        assert_eq!(end_of(&["[[[", "]]"]), None);
        assert_eq!(end_of(&["[[[", "]]]"]), Some(6));
    }
}
