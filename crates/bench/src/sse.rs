//! A server-sent-events splitter: bytes in as they arrive, each event's `data` payload out.
//! No line-length limit (aiohttp's 64 KB and 128 KB limits break long streams); several events
//! per read, events split across reads, `\n` and `\r\n` line ends are all handled. When a read
//! holds whole events (the common case) payloads are handed out as slices of that read, with
//! no copy.

use memchr::memchr;

/// One event's `data`.
#[derive(Debug, PartialEq, Eq)]
pub enum SseData<'a> {
    Json(&'a [u8]),
    Done,
}

#[derive(Debug, Default)]
pub struct SseSplitter {
    /// Bytes after the last complete line.
    partial: Vec<u8>,
    /// `data` lines of the event in progress that arrived in an earlier read.
    pending: Vec<u8>,
    has_pending: bool,
}

impl SseSplitter {
    /// Feed one network read; `on_data` is called for every event it completes.
    pub fn push(&mut self, chunk: &[u8], on_data: &mut impl FnMut(SseData<'_>)) {
        if self.partial.is_empty() {
            let used = self.scan(chunk, 0, on_data);
            self.partial.extend_from_slice(&chunk[used..]);
        } else {
            // `partial` holds no newline (it is what followed the last one), so the search
            // resumes where it stopped: a megabyte line read in many pieces is scanned once,
            // not once per piece.
            let searched = self.partial.len();
            let mut buf = std::mem::take(&mut self.partial);
            buf.extend_from_slice(chunk);
            let used = self.scan(&buf, searched, on_data);
            buf.drain(..used);
            self.partial = buf;
        }
    }

    /// Handle the complete lines of `bytes`, the first of which has no newline before byte
    /// `searched`; returns how many bytes they span.
    fn scan(
        &mut self,
        bytes: &[u8],
        searched: usize,
        on_data: &mut impl FnMut(SseData<'_>),
    ) -> usize {
        let mut pos = 0;
        let mut from = searched;
        // The current event's single data line, as a range of `bytes` (no copy needed).
        let mut line_data: Option<(usize, usize)> = None;
        while let Some(nl) = memchr(b'\n', &bytes[from..]) {
            let start = pos;
            let mut end = from + nl;
            pos = end + 1;
            from = pos;
            if end > start && bytes[end - 1] == b'\r' {
                end -= 1;
            }
            let line = &bytes[start..end];
            if line.is_empty() {
                match (line_data.take(), self.has_pending) {
                    (Some((a, b)), false) => emit(&bytes[a..b], on_data),
                    (data, true) => {
                        if let Some((a, b)) = data {
                            self.pending.push(b'\n');
                            self.pending.extend_from_slice(&bytes[a..b]);
                        }
                        emit(&self.pending, on_data);
                        self.pending.clear();
                        self.has_pending = false;
                    }
                    (None, false) => {}
                }
            } else if let Some(data) = line.strip_prefix(b"data:") {
                let skip = usize::from(data.first() == Some(&b' '));
                let (a, b) = (end - data.len() + skip, end);
                // Several data lines make one payload joined by newlines (the SSE rule).
                if let Some((pa, pb)) = line_data.replace((a, b)) {
                    self.stash(&bytes[pa..pb]);
                }
            }
            // Comments (`:`), `event:`, `id:` and `retry:` lines carry nothing we time.
        }
        if let Some((a, b)) = line_data {
            self.stash(&bytes[a..b]);
        }
        pos
    }

    fn stash(&mut self, data: &[u8]) {
        if self.has_pending {
            self.pending.push(b'\n');
        }
        self.pending.extend_from_slice(data);
        self.has_pending = true;
    }
}

fn emit(data: &[u8], on_data: &mut impl FnMut(SseData<'_>)) {
    if data == b"[DONE]" {
        on_data(SseData::Done);
    } else if !data.is_empty() {
        on_data(SseData::Json(data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(s: &mut SseSplitter, bytes: &[u8], out: &mut Vec<String>) {
        s.push(bytes, &mut |d| {
            out.push(match d {
                SseData::Json(b) => String::from_utf8(b.to_vec()).unwrap(),
                SseData::Done => "DONE".into(),
            })
        });
    }

    #[test]
    fn splits_events_across_and_within_reads() {
        let mut s = SseSplitter::default();
        let mut out = Vec::new();
        feed(&mut s, b"data: {\"a\":1}\n\ndata: {\"b\"", &mut out);
        assert_eq!(out, ["{\"a\":1}"]);
        feed(&mut s, b":2}\n\n: comment\n\ndata: [DONE]\n\n", &mut out);
        assert_eq!(out, ["{\"a\":1}", "{\"b\":2}", "DONE"]);
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let stream = b"data: {\"x\":\"a\"}\r\n\r\nevent: m\ndata: {\"y\":\ndata: 2}\n\ndata:{\"z\":3}\n\ndata: [DONE]\n\n";
        let mut whole = Vec::new();
        feed(&mut SseSplitter::default(), stream, &mut whole);
        assert_eq!(whole, ["{\"x\":\"a\"}", "{\"y\":\n2}", "{\"z\":3}", "DONE"]);
        for cut in 0..stream.len() {
            for cut2 in cut..stream.len() {
                let mut s = SseSplitter::default();
                let mut out = Vec::new();
                feed(&mut s, &stream[..cut], &mut out);
                feed(&mut s, &stream[cut..cut2], &mut out);
                feed(&mut s, &stream[cut2..], &mut out);
                assert_eq!(out, whole, "cut at {cut} and {cut2}");
            }
        }
    }

    #[test]
    fn lines_far_beyond_aiohttp_limits_pass() {
        let big = "x".repeat(3 << 20);
        let event = format!("data: {{\"text\":\"{big}\"}}\n\n");
        let mut s = SseSplitter::default();
        let mut out = Vec::new();
        for piece in event.as_bytes().chunks(60_000) {
            feed(&mut s, piece, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), big.len() + 11);
    }
}
