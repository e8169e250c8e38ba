//! HTTP/1.1 response body framing, below both readers of a body (`http1`, the task that sent
//! the request, and `recv`, the receive thread): how a body is delimited (Content-Length,
//! chunked, until the connection closes), the chunked decoder, and how a read can end a body
//! early. Payload is handed on in place, never copied into a body buffer.

use std::io;

/// How the body is delimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Framing {
    /// This many bytes left.
    Length(u64),
    Chunked(Chunked),
    /// Until the server closes the connection.
    UntilClose,
}

impl Framing {
    /// Decode `input` (raw body bytes) and hand the payload to `out`.
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        out: &mut impl FnMut(&[u8]),
    ) -> Result<(), ReadError> {
        match self {
            Framing::Length(left) => {
                let take = (*left).min(input.len() as u64) as usize;
                *left -= take as u64;
                if take > 0 {
                    out(&input[..take]);
                }
            }
            Framing::Chunked(c) => c.feed(input, out).map_err(ReadError::Framing)?,
            Framing::UntilClose => out(input),
        }
        Ok(())
    }

    pub(crate) fn complete(&self) -> bool {
        match self {
            Framing::Length(n) => *n == 0,
            Framing::Chunked(c) => c.done(),
            Framing::UntilClose => false,
        }
    }

    /// The connection closed: Ok when that is how this body ends.
    pub(crate) fn at_eof(&self) -> Result<(), ReadError> {
        match self {
            Framing::UntilClose => Ok(()),
            _ => Err(ReadError::Eof),
        }
    }
}

/// A read that ended the stream early.
#[derive(Debug)]
pub enum ReadError {
    TimedOut,
    Io(io::Error),
    /// The connection closed before the body's end.
    Eof,
    Framing(String),
    /// The reader stopped reading (it had seen something it could not use).
    Stopped,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TimedOut => f.write_str("timed out"),
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Eof => f.write_str("the connection closed before the end of the body"),
            ReadError::Framing(m) => write!(f, "bad chunked encoding: {m}"),
            ReadError::Stopped => f.write_str("the reader stopped"),
        }
    }
}

/// Chunked transfer decoding, one byte of framing at a time and payload in bulk.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Chunked {
    state: ChunkState,
    size: u64,
    /// Hex digits seen on the current size line.
    digits: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
enum ChunkState {
    /// Reading the hex digits of a chunk size.
    #[default]
    Size,
    /// After the digits: extensions up to the line end.
    SizeRest,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// After the last chunk: trailer lines (`true` at the start of a line).
    Trailer(bool),
    TrailerLf(bool),
    Done,
}

impl Chunked {
    pub fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    pub fn feed(&mut self, mut input: &[u8], out: &mut impl FnMut(&[u8])) -> Result<(), String> {
        use ChunkState::*;
        while !input.is_empty() {
            if self.state == Data {
                let take = self.size.min(input.len() as u64) as usize;
                out(&input[..take]);
                self.size -= take as u64;
                input = &input[take..];
                if self.size == 0 {
                    self.state = DataCr;
                }
                continue;
            }
            let b = input[0];
            input = &input[1..];
            self.state = match (self.state, b) {
                (Size, b) if b.is_ascii_hexdigit() => {
                    let d = (b as char).to_digit(16).expect("hex digit") as u64;
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(d))
                        .ok_or("chunk size overflows")?;
                    self.digits = true;
                    Size
                }
                (Size, _) if !self.digits => {
                    return Err(format!(
                        "unexpected byte {b:#04x} where a chunk size starts"
                    ));
                }
                (Size | SizeRest, b'\r') => SizeLf,
                (Size | SizeRest | SizeLf, b'\n') => {
                    if self.size == 0 {
                        Trailer(true)
                    } else {
                        Data
                    }
                }
                (Size | SizeRest, _) => SizeRest,
                (DataCr, b'\r') => DataLf,
                (DataCr | DataLf, b'\n') => {
                    self.size = 0;
                    self.digits = false;
                    Size
                }
                (Trailer(start), b'\r') => TrailerLf(start),
                (Trailer(true) | TrailerLf(true), b'\n') => Done,
                (Trailer(false) | TrailerLf(false), b'\n') => Trailer(true),
                (Trailer(_), _) => Trailer(false),
                (Done, _) => return Err("bytes after the last chunk".into()),
                (s, b) => return Err(format!("unexpected byte {b:#04x} in state {s:?}")),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(pieces: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut c = Chunked::default();
        let mut out = Vec::new();
        for p in pieces {
            c.feed(p, &mut |d| out.extend_from_slice(d)).unwrap();
        }
        (out, c.done())
    }

    #[test]
    fn chunked_bodies_split_anywhere() {
        let body = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(
            decode_all(&[body]),
            (b"helloabcdefghijklmnopqrstuvwxyz".to_vec(), true)
        );
        for cut in 0..body.len() {
            assert_eq!(
                decode_all(&[&body[..cut], &body[cut..]]),
                (b"helloabcdefghijklmnopqrstuvwxyz".to_vec(), true),
                "cut at {cut}"
            );
        }
        let (partial, done) = decode_all(&[b"5\r\nhel"]);
        assert_eq!((partial, done), (b"hel".to_vec(), false));
        let mut c = Chunked::default();
        assert!(
            c.feed(b"zz\r\n", &mut |_| {})
                .is_err_and(|e| e.contains("0x7a"))
        );
    }
}
