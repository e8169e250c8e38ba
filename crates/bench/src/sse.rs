//! A server-sent-events splitter: bytes in (as they arrive), `data:` payloads out, each
//! stamped with the arrival time of the network chunk that completed it. No line-length
//! limit; several events per read and events split across reads are both handled.

use std::time::Instant;

use memchr::memmem;

#[derive(Debug, Default)]
pub struct SseSplitter {
    buf: Vec<u8>,
}

/// One event's `data` payload.
#[derive(Debug, PartialEq, Eq)]
pub enum SseData {
    Json(Vec<u8>),
    Done,
}

impl SseSplitter {
    /// Feed a chunk received at `at`; returns the events it completes.
    pub fn push(&mut self, chunk: &[u8], at: Instant, out: &mut Vec<(Instant, SseData)>) {
        self.buf.extend_from_slice(chunk);
        let finder = memmem::Finder::new(b"\n\n");
        let mut start = 0;
        while let Some(end) = finder.find(&self.buf[start..]) {
            let event = &self.buf[start..start + end];
            for line in event.split(|b| *b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let Some(data) = line.strip_prefix(b"data:") else {
                    continue;
                };
                let data = data.strip_prefix(b" ").unwrap_or(data);
                if data == b"[DONE]" {
                    out.push((at, SseData::Done));
                } else if !data.is_empty() {
                    out.push((at, SseData::Json(data.to_vec())));
                }
            }
            start += end + 2;
        }
        self.buf.drain(..start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_across_and_within_reads() {
        let mut s = SseSplitter::default();
        let now = Instant::now();
        let mut out = Vec::new();
        s.push(b"data: {\"a\":1}\n\ndata: {\"b\"", now, &mut out);
        assert_eq!(out.len(), 1);
        s.push(b":2}\n\n: comment\n\ndata: [DONE]\n\n", now, &mut out);
        assert_eq!(
            out.into_iter().map(|(_, d)| d).collect::<Vec<_>>(),
            [
                SseData::Json(b"{\"a\":1}".to_vec()),
                SseData::Json(b"{\"b\":2}".to_vec()),
                SseData::Done
            ]
        );
    }
}
