//! The transport of the generation requests: HTTP/1.1 over a pool of keep-alive TCP
//! connections, each request read by the task that sent it.
//!
//! Why not reqwest (which the control requests use): hyper runs every connection as a task of
//! its own that reads the socket and hands each body frame to the request's task through a
//! channel, and reqwest wraps the body in a timer that is polled per frame. At one SSE event
//! per token that is two task wake-ups, a channel hand-off and a timer poll per chunk, the
//! bulk of a client's CPU once parsing is cheap. Here the task that sent a request reads its
//! socket itself: one wake-up and one `read` per network read, the timestamp taken as the read
//! returns, chunked framing decoded in place and the payload handed straight to the SSE
//! splitter. Only what a streaming benchmark needs: `http://`, Content-Length and chunked
//! bodies, keep-alive with one retry when a pooled connection turns out to be closed.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::framing::{Chunked, Framing, ReadError};

/// Largest response head accepted.
const MAX_HEAD: usize = 64 << 10;
/// Bytes read per `read` call.
const READ_BUF: usize = 16 << 10;
/// Error bodies are kept up to this size.
const MAX_ERROR_BODY: usize = 64 << 10;

/// One server endpoint (`http://host:port/path`) and its idle connections.
pub struct Endpoint {
    addrs: Vec<SocketAddr>,
    /// `POST /path HTTP/1.1`, Host and the fixed headers, each line ending in CRLF.
    head: Vec<u8>,
    idle: Mutex<Vec<TcpStream>>,
}

/// How a request ended before its body could be streamed.
#[derive(Debug)]
pub enum Failure {
    /// No connection could be made.
    Connect(io::Error),
    /// The deadline passed (before or while streaming).
    TimedOut,
    /// The connection failed; `String` says how.
    Broken(String),
    /// A non-2xx status with (the start of) its body.
    Status(StatusCode, String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "cannot connect: {e}"),
            Failure::TimedOut => f.write_str("timed out"),
            Failure::Broken(m) => f.write_str(m),
            Failure::Status(s, body) => write!(f, "HTTP {s}: {body}"),
        }
    }
}

impl Endpoint {
    /// `url` is the full URL of the route (`http://127.0.0.1:30000/generate`); `headers` are
    /// sent with every request (auth, --header, content type).
    pub async fn new(url: &str, headers: &HeaderMap) -> Result<Endpoint, String> {
        let u = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        if u.scheme() != "http" {
            return Err(format!(
                "{url}: loupe bench speaks plain http:// to the server (scheme {} is not supported)",
                u.scheme()
            ));
        }
        let host = u.host_str().ok_or_else(|| format!("{url}: no host"))?;
        let port = u.port_or_known_default().unwrap_or(80);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| format!("{url}: cannot resolve {host}: {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{url}: {host} resolves to no address"));
        }
        let mut path = u.path().to_string();
        if let Some(q) = u.query() {
            path.push('?');
            path.push_str(q);
        }
        let mut head = format!("POST {path} HTTP/1.1\r\nHost: {host}").into_bytes();
        if u.port().is_some() {
            head.extend_from_slice(format!(":{port}").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        for (k, v) in headers {
            head.extend_from_slice(k.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(v.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        Ok(Endpoint {
            addrs,
            head,
            idle: Mutex::new(Vec::new()),
        })
    }

    async fn connect(&self) -> io::Result<TcpStream> {
        let mut last = None;
        for a in &self.addrs {
            match TcpStream::connect(a).await {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    #[cfg(target_os = "linux")]
                    crate::recv::enable_timestamps(std::os::fd::AsRawFd::as_raw_fd(&s));
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no address")))
    }

    /// An idle connection (reused: true) or a new one.
    async fn connection(&self) -> io::Result<(TcpStream, bool)> {
        let idle = self.idle.lock().expect("pool lock").pop();
        match idle {
            Some(s) => Ok((s, true)),
            None => Ok((self.connect().await?, false)),
        }
    }

    fn give_back(&self, s: TcpStream) {
        self.idle.lock().expect("pool lock").push(s);
    }

    /// Open up to `n` connections, `batch` at a time with a short pause between batches, so
    /// a burst of requests finds them open instead of overflowing the server's listen
    /// backlog. Returns how many are open.
    pub async fn prewarm(&self, n: usize, batch: usize) -> usize {
        let have = self.idle.lock().expect("pool lock").len();
        let mut opened = have;
        while opened < n && batch > 0 {
            let wave = batch.min(n - opened);
            let conns = futures::future::join_all((0..wave).map(|_| self.connect())).await;
            let ok: Vec<TcpStream> = conns.into_iter().filter_map(|c| c.ok()).collect();
            if ok.is_empty() {
                break;
            }
            opened += ok.len();
            self.idle.lock().expect("pool lock").extend(ok);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        opened
    }

    /// The request's bytes: head, `extra` header, Content-Length, body.
    pub fn request(&self, body: &[u8], extra: Option<(&str, &HeaderValue)>) -> Vec<u8> {
        let mut r = Vec::with_capacity(self.head.len() + body.len() + 64);
        r.extend_from_slice(&self.head);
        if let Some((k, v)) = extra {
            r.extend_from_slice(k.as_bytes());
            r.extend_from_slice(b": ");
            r.extend_from_slice(v.as_bytes());
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        r.extend_from_slice(body);
        r
    }

    /// Send `request` (from [`Endpoint::request`]) and read the response head. `on_sent` is
    /// called with the instant the request was written out (again if it is re-sent on a
    /// fresh connection after a pooled one turned out to be closed).
    pub async fn send(
        &self,
        request: &[u8],
        deadline: Instant,
        read_timeout: Option<Duration>,
        mut on_sent: impl FnMut(Instant),
    ) -> Result<Response<'_>, Failure> {
        let mut timer = Box::pin(tokio::time::sleep_until(deadline.into()));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut conn, reused) = tokio::select! {
                biased;
                c = self.connection() => c.map_err(Failure::Connect)?,
                _ = &mut timer => return Err(Failure::TimedOut),
            };
            on_sent(Instant::now());
            let written = tokio::select! {
                biased;
                w = conn.write_all(request) => w,
                _ = &mut timer => return Err(Failure::TimedOut),
            };
            let mut resp = Response {
                endpoint: self,
                conn: Some(conn),
                buf: vec![0; READ_BUF].into_boxed_slice(),
                carry: Vec::new(),
                carry_at: None,
                body: Framing::Length(0),
                keep_alive: true,
                timer,
                deadline,
                read_timeout,
                status: StatusCode::OK,
            };
            let head = match written {
                Ok(()) => resp.read_head().await,
                Err(e) => Err(HeadError::Io(e, 0)),
            };
            match head {
                Ok(()) => return Ok(resp),
                // A pooled connection the server had closed: nothing was processed; send again
                // once, on a new connection.
                Err(HeadError::Io(_, 0) | HeadError::Eof(0)) if reused && attempt == 1 => {
                    timer = resp.timer;
                }
                Err(HeadError::TimedOut) => return Err(Failure::TimedOut),
                Err(HeadError::Io(e, _)) => {
                    return Err(Failure::Broken(format!("no response: {e}")));
                }
                Err(HeadError::Eof(_)) => {
                    return Err(Failure::Broken(
                        "the server closed the connection without a response".into(),
                    ));
                }
                Err(HeadError::Bad(m)) => return Err(Failure::Broken(m)),
            }
        }
    }
}

/// Why a response head could not be read; the count is how many bytes had arrived.
enum HeadError {
    Io(io::Error, usize),
    Eof(usize),
    TimedOut,
    Bad(String),
}

/// The receive thread's use of a body's framing.
impl Framing {
    /// `feed` into a sink that arrived at `at`; Err(Stopped) once the sink says stop.
    #[cfg(target_os = "linux")]
    fn feed_sink<S: Sink>(
        &mut self,
        at: Instant,
        input: &[u8],
        sink: &mut S,
    ) -> Result<(), ReadError> {
        let mut go = true;
        self.feed(input, &mut |p| {
            if go {
                go = sink.data(at, p);
            }
        })?;
        if go { Ok(()) } else { Err(ReadError::Stopped) }
    }
}

/// A response being read.
pub struct Response<'a> {
    endpoint: &'a Endpoint,
    /// None once the body is complete (the connection went back to the pool or was closed).
    conn: Option<TcpStream>,
    buf: Box<[u8]>,
    /// Body bytes that arrived with the head, and when.
    carry: Vec<u8>,
    carry_at: Option<Instant>,
    body: Framing,
    keep_alive: bool,
    timer: Pin<Box<Sleep>>,
    deadline: Instant,
    read_timeout: Option<Duration>,
    pub status: StatusCode,
}
impl Response<'_> {
    /// One `read`, under the deadline (and the read timeout).
    async fn read_raw(&mut self, at: usize) -> Result<usize, ReadError> {
        let conn = self.conn.as_mut().expect("read on an open connection");
        let n = tokio::select! {
            biased;
            r = conn.read(&mut self.buf[at..]) => r.map_err(ReadError::Io)?,
            _ = &mut self.timer => return Err(ReadError::TimedOut),
        };
        if let Some(rt) = self.read_timeout {
            let next = (Instant::now() + rt).min(self.deadline);
            self.timer.as_mut().reset(next.into());
        }
        Ok(n)
    }

    async fn read_head(&mut self) -> Result<(), HeadError> {
        let mut head: Vec<u8> = Vec::new();
        loop {
            let n = match self.read_raw(0).await {
                Ok(0) => return Err(HeadError::Eof(head.len())),
                Ok(n) => n,
                Err(ReadError::TimedOut) => return Err(HeadError::TimedOut),
                Err(ReadError::Io(e)) => return Err(HeadError::Io(e, head.len())),
                Err(e) => return Err(HeadError::Bad(e.to_string())),
            };
            let at = Instant::now();
            head.extend_from_slice(&self.buf[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut headers);
            let used = match r.parse(&head) {
                Ok(httparse::Status::Complete(used)) => used,
                Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => continue,
                Ok(httparse::Status::Partial) => {
                    return Err(HeadError::Bad(format!(
                        "the response head is longer than {MAX_HEAD} bytes"
                    )));
                }
                Err(e) => return Err(HeadError::Bad(format!("not an HTTP/1 response: {e}"))),
            };
            let code = r.code.unwrap_or(0);
            if (100..200).contains(&code) {
                // Interim response (100 Continue and the like): the real one follows.
                head.drain(..used);
                continue;
            }
            self.status = StatusCode::from_u16(code)
                .map_err(|_| HeadError::Bad(format!("status {code} is not valid")))?;
            let mut chunked = false;
            let mut length = None;
            self.keep_alive = r.version == Some(1);
            for h in r.headers.iter() {
                let v = std::str::from_utf8(h.value).unwrap_or("").trim();
                if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = v.to_ascii_lowercase().contains("chunked");
                } else if h.name.eq_ignore_ascii_case("content-length") {
                    length = v.parse::<u64>().ok();
                } else if h.name.eq_ignore_ascii_case("connection") {
                    let v = v.to_ascii_lowercase();
                    if v.contains("close") {
                        self.keep_alive = false;
                    } else if v.contains("keep-alive") {
                        self.keep_alive = true;
                    }
                }
            }
            self.body = if chunked {
                Framing::Chunked(Chunked::default())
            } else if let Some(n) = length {
                Framing::Length(n)
            } else if matches!(code, 204 | 304) {
                Framing::Length(0)
            } else {
                self.keep_alive = false;
                Framing::UntilClose
            };
            self.carry = head.split_off(used);
            self.carry_at = Some(at);
            if self.body == Framing::Length(0) {
                self.finish();
            }
            return Ok(());
        }
    }

    /// The body is complete: the connection goes back to the pool (or is closed).
    fn finish(&mut self) {
        if let Some(c) = self.conn.take()
            && self.keep_alive
        {
            self.endpoint.give_back(c);
        }
    }

    fn complete(&self) -> bool {
        self.body.complete()
    }

    /// Decode `input` (raw body bytes) and hand the payload to `out`.
    fn decode(&mut self, input: &[u8], out: &mut impl FnMut(&[u8])) -> Result<(), ReadError> {
        self.body.feed(input, out)
    }

    /// Read what arrives next and hand its payload to `on_data` with the instant the read
    /// returned (taken before anything is decoded). Ok(false): the body is complete.
    pub async fn read(
        &mut self,
        on_data: &mut impl FnMut(Instant, &[u8]),
    ) -> Result<bool, ReadError> {
        if let Some(at) = self.carry_at.take() {
            let carry = std::mem::take(&mut self.carry);
            self.decode(&carry, &mut |p| on_data(at, p))?;
            if self.complete() {
                self.finish();
                return Ok(false);
            }
            if !carry.is_empty() {
                return Ok(true);
            }
        }
        if self.conn.is_none() {
            return Ok(false);
        }
        let n = self.read_raw(0).await?;
        let at = Instant::now();
        if n == 0 {
            self.conn = None;
            return self.body.at_eof().map(|()| false);
        }
        // The buffer is borrowed by the decoder: move it out for the call.
        let buf = std::mem::take(&mut self.buf);
        let r = self.decode(&buf[..n], &mut |p| on_data(at, p));
        self.buf = buf;
        r?;
        if self.complete() {
            self.finish();
            return Ok(false);
        }
        Ok(true)
    }

    /// Read the rest of the body into `sink`: on the receive thread when `recv` is given (the
    /// socket moves there and back), else by this task. Err: the receive thread is gone and
    /// took the sink with it.
    pub async fn stream<S: Sink>(
        mut self,
        recv: Option<&Receiver>,
        mut sink: S,
    ) -> Result<Streamed<S>, String> {
        #[cfg(target_os = "linux")]
        if let Some(recv) = recv {
            // Bytes that came with the head first.
            if let Some(at) = self.carry_at.take() {
                let carry = std::mem::take(&mut self.carry);
                if let Err(e) = self.body.feed_sink(at, &carry, &mut sink) {
                    return Ok(Streamed::new(sink, Err(e)));
                }
            }
            if self.complete() {
                self.finish();
                return Ok(Streamed::new(sink, Ok(())));
            }
            let Some(conn) = self.conn.take() else {
                let end = self.body.at_eof();
                return Ok(Streamed::new(sink, end));
            };
            let conn = match conn.into_std() {
                Ok(c) => c,
                Err(e) => return Ok(Streamed::new(sink, Err(ReadError::Io(e)))),
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            recv.hand(crate::recv::Handoff {
                body: Box::new(Handed {
                    conn,
                    framing: self.body,
                    keep_alive: self.keep_alive,
                    sink,
                    tx,
                }),
                deadline: self.deadline,
                read_timeout: self.read_timeout,
            });
            let (sink, outcome, conn) = rx
                .await
                .map_err(|_| "the receive thread stopped without ending the stream".to_string())?;
            if let Some(c) = conn
                && let Ok(c) = TcpStream::from_std(c)
            {
                self.endpoint.give_back(c);
            }
            return Ok(Streamed::new(sink, outcome));
        }
        #[cfg(not(target_os = "linux"))]
        let _ = recv;
        let mut go = true;
        let outcome = loop {
            let more = self
                .read(&mut |at, p| {
                    if go {
                        go = sink.data(at, p);
                    }
                })
                .await;
            match more {
                Ok(true) if go => {}
                Ok(true) => break Err(ReadError::Stopped),
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        Ok(Streamed::new(sink, outcome))
    }

    pub async fn text(mut self) -> String {
        let mut body = Vec::new();
        loop {
            let more = self
                .read(&mut |_, p| {
                    let room = MAX_ERROR_BODY.saturating_sub(body.len());
                    body.extend_from_slice(&p[..p.len().min(room)]);
                })
                .await;
            if !matches!(more, Ok(true)) || body.len() >= MAX_ERROR_BODY {
                break;
            }
        }
        String::from_utf8_lossy(&body).into_owned()
    }
}

/// Where a streamed body's payload goes (on the receive thread, when there is one).
pub trait Sink: Send + 'static {
    /// Payload bytes that reached the socket at `at`. false: stop reading (the connection
    /// is closed, not reused).
    fn data(&mut self, at: Instant, payload: &[u8]) -> bool;
}

/// A body read to its end: the sink back, and how the body ended.
pub struct Streamed<S> {
    pub sink: S,
    pub outcome: Result<(), ReadError>,
}

impl<S> Streamed<S> {
    fn new(sink: S, outcome: Result<(), ReadError>) -> Self {
        Streamed { sink, outcome }
    }
}

#[cfg(target_os = "linux")]
pub use crate::recv::Receiver;

/// Off Linux there is no receive thread: bodies are read by their tasks.
#[cfg(not(target_os = "linux"))]
pub enum Receiver {}

/// What the receive thread sends back: the sink, the outcome, and the connection when it can
/// be reused.
#[cfg(target_os = "linux")]
type Ended<S> = (S, Result<(), ReadError>, Option<std::net::TcpStream>);

/// A body on the receive thread: its socket, framing and sink.
#[cfg(target_os = "linux")]
struct Handed<S: Sink> {
    conn: std::net::TcpStream,
    framing: Framing,
    keep_alive: bool,
    sink: S,
    tx: tokio::sync::oneshot::Sender<Ended<S>>,
}

#[cfg(target_os = "linux")]
impl<S: Sink> crate::recv::Body for Handed<S> {
    fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.conn)
    }

    fn feed(&mut self, at: Instant, bytes: &[u8]) -> Result<bool, ReadError> {
        self.framing.feed_sink(at, bytes, &mut self.sink)?;
        Ok(!self.framing.complete())
    }

    fn eof(&mut self) -> Result<(), ReadError> {
        self.keep_alive = false;
        self.framing.at_eof()
    }

    fn end(self: Box<Self>, outcome: Result<(), ReadError>) {
        let me = *self;
        let reuse = outcome.is_ok() && me.keep_alive && me.framing.complete();
        let conn = reuse.then_some(me.conn);
        // The task may have gone (its run was dropped); the connection then closes.
        let _ = me.tx.send((me.sink, outcome, conn));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn one_shot_server(reply: &'static [u8]) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/generate", l.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = vec![0; 4096];
            let n = s.read(&mut req).await.unwrap();
            assert!(req[..n].starts_with(b"POST /generate HTTP/1.1\r\nHost: 127.0.0.1:"));
            s.write_all(reply).await.unwrap();
        });
        url
    }

    #[tokio::test]
    async fn statuses_lengths_and_early_ends() {
        let url =
            one_shot_server(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
                .await;
        let ep = Endpoint::new(&url, &HeaderMap::new()).await.unwrap();
        let far = Instant::now() + Duration::from_secs(10);
        let r = ep
            .send(&ep.request(b"{}", None), far, None, |_| {})
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.text().await, "busy");
        assert_eq!(
            ep.idle.lock().unwrap().len(),
            1,
            "a complete body frees the connection"
        );

        let url =
            one_shot_server(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
                .await;
        let ep = Endpoint::new(&url, &HeaderMap::new()).await.unwrap();
        let mut r = ep
            .send(&ep.request(b"{}", None), far, None, |_| {})
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut sink = |_: Instant, p: &[u8]| got.extend_from_slice(p);
        assert!(r.read(&mut sink).await.unwrap());
        let e = loop {
            match r.read(&mut sink).await {
                Ok(true) => continue,
                Ok(false) => panic!("the body had no end"),
                Err(e) => break e,
            }
        };
        assert_eq!(got, b"abc");
        assert!(matches!(e, ReadError::Eof), "{e}");

        let e = Endpoint::new("https://example.invalid/x", &HeaderMap::new()).await;
        assert!(e.is_err_and(|e| e.contains("plain http://")));
    }

    #[tokio::test]
    async fn a_pooled_connection_the_server_closed_is_replaced() {
        // The server answers one request per connection and then closes it (as an idle
        // keep-alive timeout would): the second request finds its pooled connection dead
        // before any response byte and is sent again, once, on a new one. Whether the close
        // has reached the client when it writes (EOF on the read) or not (a reset), no
        // response byte arrives on the pooled connection, so the retry does not depend on
        // timing.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/generate", l.local_addr().unwrap());
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut req = vec![0; 4096];
                let _ = s.read(&mut req).await.unwrap();
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
                    .unwrap();
            }
        });
        let ep = Endpoint::new(&url, &HeaderMap::new()).await.unwrap();
        let far = Instant::now() + Duration::from_secs(10);
        let mut sends = Vec::new();
        for _ in 0..2 {
            let mut n = 0;
            let r = ep
                .send(&ep.request(b"{}", None), far, None, |_| n += 1)
                .await
                .unwrap();
            assert_eq!(r.text().await, "ok");
            sends.push(n);
            assert_eq!(
                ep.idle.lock().unwrap().len(),
                1,
                "the complete response put its connection back in the pool"
            );
        }
        // The first request was sent once, on a new connection; the second was sent on the
        // pooled one, found it closed, and was sent again on a new one.
        assert_eq!(sends, [1, 2], "the second request was retried");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
