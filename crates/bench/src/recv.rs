//! The receive thread (Linux): every streaming response body of a run is read on one thread
//! that owns an epoll set, instead of by the request's task in the async runtime.
//!
//! Why: at one small SSE event per token, the cost of a streaming client is per network read.
//! Through the runtime each read is a task wake-up, a readiness poll, the `read` that returns
//! data and a second `read` that returns `EAGAIN` before the task parks again. Here a stream is
//! a slot in an edge-triggered epoll set: one `epoll_wait` returns every socket that has data,
//! each gets one `recvmsg` (a read shorter than the buffer means the socket is drained, so no
//! `EAGAIN` read), and the bytes go straight to the body decoder on this thread. The request's
//! task sleeps from the end of the response head to the end of the body.
//!
//! Timestamps: sockets ask for kernel receive timestamps (`SO_TIMESTAMPNS`), so a chunk's time
//! is when its bytes reached the socket, not when this thread got round to reading them; where
//! the kernel gives none, the time the read returned is used. A read that holds several
//! segments carries the timestamp of the last one, as a user-space read time would.
//!
//! Pacing: with arrival times from the kernel, reading late costs no accuracy as long as a
//! stream's next chunk has not arrived too (the two would share one read and one timestamp).
//! So after a round of reads the thread pauses, letting the next round find many sockets ready
//! instead of waking once per chunk: the pause is a quarter of the shortest gap seen between
//! two reads of one stream over the last window of reads, at most `MAX_PACE`, and none until a
//! window has been seen (or when kernel timestamps are missing). It pauses after a busy round
//! (`PACE_MIN_READY` streams or more), and after any round with reads while the recent read
//! rate says a pause would find that many ready (a server that writes a step's chunks spread
//! over the step leaves only a few ready per round; without this, every one of them is a
//! wake-up). With sparse chunks it blocks in `epoll_wait` instead. The rule is `pace.rs`, a pure
//! function of the read times it is given; `benches/recv_timing.rs` measures the thread itself.
//!
//! Invariants: a body is owned by exactly one of its task or this thread; this thread ends
//! every body it was handed exactly once (`Body::end`), with the body's outcome, a timeout, or
//! a shutdown error; a socket leaves the epoll set before its body is ended.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::framing::ReadError;

mod pace;

use pace::Pacer;

/// Bytes per `recvmsg`.
const READ_BUF: usize = 64 << 10;
/// Events per `epoll_wait`.
const EVENTS: usize = 1024;
/// The epoll token of the wake-up eventfd (stream tokens are slot indices).
const WAKE: u64 = u64::MAX;
/// Longest sleep while streams are open (deadlines are checked at least this often).
const MAX_WAIT: Duration = Duration::from_millis(100);

/// `SO_TIMESTAMPNS` (and its control message type) where its value is the generic one.
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
))]
const SO_TIMESTAMPNS: Option<libc::c_int> = Some(35);
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
const SO_TIMESTAMPNS: Option<libc::c_int> = None;

/// A response body being read on the receive thread.
pub trait Body: Send {
    fn fd(&self) -> RawFd;
    /// Bytes that reached the socket at `at`. Ok(true): more to come; Ok(false): complete.
    fn feed(&mut self, at: Instant, bytes: &[u8]) -> Result<bool, ReadError>;
    /// The peer closed the connection: Ok when that ends the body.
    fn eof(&mut self) -> Result<(), ReadError>;
    /// The body is over (complete, failed, timed out); called once, after the socket has left
    /// the epoll set.
    fn end(self: Box<Self>, outcome: Result<(), ReadError>);
}

/// A body handed over with its time limits.
pub struct Handoff {
    pub body: Box<dyn Body>,
    /// The request's overall deadline.
    pub deadline: Instant,
    /// Longest silence between reads.
    pub read_timeout: Option<Duration>,
}

struct Shared {
    epoll: OwnedFd,
    wake: OwnedFd,
    inbox: Mutex<Vec<Handoff>>,
    stop: AtomicBool,
    /// The current pause between rounds, in nanoseconds (for reports and tests).
    pace_ns: AtomicU64,
    /// Rounds that read something, and the reads they made (for reports and tests).
    rounds: AtomicU64,
    reads: AtomicU64,
}

impl Shared {
    fn ring(&self) {
        let one: u64 = 1;
        // An eventfd write only fails when the counter would overflow, which leaves it readable
        // anyway.
        unsafe {
            libc::write(
                self.wake.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }
}

/// The receive thread of a run. Dropping it stops the thread; bodies still open end with an
/// error saying so.
pub struct Receiver {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn cvt(r: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if r < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(r)
    }
}

fn ctl(epoll: RawFd, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    cvt(
        unsafe { libc::epoll_ctl(epoll, op, fd, &mut ev) },
        "epoll_ctl",
    )
    .map(|_| ())
}

/// Ask `fd` (a TCP socket) for kernel receive timestamps. Best effort: without them reads are
/// timed when they return.
pub fn enable_timestamps(fd: RawFd) {
    if let Some(opt) = SO_TIMESTAMPNS {
        let on: libc::c_int = 1;
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

impl Receiver {
    pub fn start() -> io::Result<Receiver> {
        let epoll = cvt(
            unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) },
            "epoll_create1",
        )?;
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        let wake = cvt(
            unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) },
            "eventfd",
        )?;
        let wake = unsafe { OwnedFd::from_raw_fd(wake) };
        ctl(
            epoll.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            wake.as_raw_fd(),
            libc::EPOLLIN as u32,
            WAKE,
        )?;
        let shared = Arc::new(Shared {
            epoll,
            wake,
            inbox: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            pace_ns: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("loupe-recv".into())
            .spawn(move || Loop::new(s).run())?;
        Ok(Receiver {
            shared,
            thread: Some(thread),
        })
    }

    /// The pause the thread now takes between rounds of reads.
    pub fn pace(&self) -> Duration {
        Duration::from_nanos(self.shared.pace_ns.load(Ordering::Relaxed))
    }

    /// Rounds of reads so far (wake-ups that found data), and the reads they made.
    pub fn rounds_and_reads(&self) -> (u64, u64) {
        (
            self.shared.rounds.load(Ordering::Relaxed),
            self.shared.reads.load(Ordering::Relaxed),
        )
    }

    /// Read `h`'s body on the receive thread from now on.
    pub fn hand(&self, h: Handoff) {
        self.shared.inbox.lock().expect("inbox lock").push(h);
        self.shared.ring();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.ring();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Open {
    body: Box<dyn Body>,
    /// The body's socket (read once: the body is behind a pointer, the fd is read per chunk).
    fd: RawFd,
    deadline: Instant,
    read_timeout: Option<Duration>,
    /// When this body times out unless bytes arrive.
    expires: Instant,
    /// The arrival time of its last read.
    last_at: Option<Instant>,
}

struct Loop {
    shared: Arc<Shared>,
    slots: Vec<Option<Open>>,
    free: Vec<usize>,
    open: usize,
    /// No body expires before this (a lower bound: reads only push expiries later).
    next_check: Instant,
    buf: Box<[u8]>,
    /// When to pause between rounds of reads.
    pacer: Pacer,
    /// Rounds that read something and the reads they made, published to `Shared` once per
    /// round (no atomic read-modify-write per chunk).
    rounds: u64,
    reads: u64,
}

/// CLOCK_REALTIME - CLOCK_MONOTONIC, to turn kernel timestamps into `Instant`s.
struct Clocks {
    mono: Instant,
    real: Duration,
}

impl Clocks {
    fn now() -> Clocks {
        Clocks {
            mono: Instant::now(),
            real: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }

    /// The instant of a CLOCK_REALTIME kernel timestamp; never later than now.
    fn instant(&self, ts: Duration) -> Instant {
        match self.real.checked_sub(ts) {
            Some(ago) => self.mono.checked_sub(ago).unwrap_or(self.mono),
            None => self.mono,
        }
    }
}

impl Loop {
    fn new(shared: Arc<Shared>) -> Loop {
        Loop {
            shared,
            slots: Vec::new(),
            free: Vec::new(),
            open: 0,
            next_check: Instant::now() + MAX_WAIT,
            buf: vec![0; READ_BUF].into_boxed_slice(),
            pacer: Pacer::new(Instant::now()),
            rounds: 0,
            reads: 0,
        }
    }

    /// Account one read of a stream (`prev`: its previous read) in the pacing window.
    #[inline]
    fn note_read(&mut self, prev: Option<Instant>, at: Instant, timed: bool) {
        self.reads += 1;
        if let Some(pace) = self.pacer.note_read(prev, at, timed) {
            self.shared
                .pace_ns
                .store(pace.as_nanos() as u64, Ordering::Relaxed);
        }
    }

    fn run(mut self) {
        let epoll = self.shared.epoll.as_raw_fd();
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        loop {
            let timeout = if self.open == 0 {
                -1
            } else {
                let left = self.next_check.saturating_duration_since(Instant::now());
                // Round up: waking a little after the deadline is fine, spinning before it not.
                left.min(MAX_WAIT).as_micros().div_ceil(1000) as libc::c_int
            };
            let n = unsafe {
                libc::epoll_wait(epoll, events.as_mut_ptr(), EVENTS as libc::c_int, timeout)
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Nothing sensible is left to do with a broken epoll set: end every body.
                self.end_all(|| io::Error::other(format!("epoll_wait: {e}")));
                return;
            }
            let clocks = Clocks::now();
            let mut ready = 0;
            for ev in &events[..n as usize] {
                let token = ev.u64;
                if token == WAKE {
                    let mut v: u64 = 0;
                    unsafe {
                        libc::read(
                            self.shared.wake.as_raw_fd(),
                            (&mut v as *mut u64).cast(),
                            std::mem::size_of::<u64>(),
                        );
                    }
                    if self.shared.stop.load(Ordering::SeqCst) {
                        self.end_all(|| {
                            io::Error::other("the benchmark stopped before the body's end")
                        });
                        return;
                    }
                    self.admit(&clocks);
                    continue;
                }
                let closing =
                    ev.events & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
                self.drain(token as usize, &clocks, closing != 0);
                ready += 1;
            }
            let now = Instant::now();
            if self.open > 0 && now >= self.next_check {
                self.expire();
            }
            let pause = self.pacer.after_round(now, ready, self.open);
            if ready > 0 {
                self.rounds += 1;
                self.shared.rounds.store(self.rounds, Ordering::Relaxed);
                self.shared.reads.store(self.reads, Ordering::Relaxed);
            }
            if let Some(pause) = pause {
                std::thread::sleep(pause);
            }
        }
    }

    /// Register the bodies in the inbox.
    fn admit(&mut self, clocks: &Clocks) {
        let new = std::mem::take(&mut *self.shared.inbox.lock().expect("inbox lock"));
        for h in new {
            let slot = match self.free.pop() {
                Some(s) => s,
                None => {
                    self.slots.push(None);
                    self.slots.len() - 1
                }
            };
            let fd = h.body.fd();
            let expires = h
                .read_timeout
                .map_or(h.deadline, |rt| (clocks.mono + rt).min(h.deadline));
            if let Err(e) = ctl(
                self.shared.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd,
                (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
                slot as u64,
            ) {
                self.free.push(slot);
                h.body.end(Err(ReadError::Io(e)));
                continue;
            }
            self.next_check = self.next_check.min(expires);
            self.slots[slot] = Some(Open {
                body: h.body,
                fd,
                deadline: h.deadline,
                read_timeout: h.read_timeout,
                expires,
                last_at: None,
            });
            self.open += 1;
        }
    }

    /// Read what `slot`'s socket holds. Edge-triggered: until a short read, which leaves the
    /// socket empty; when the peer has closed (`closing`) until the end of file, since no
    /// further edge would announce it.
    fn drain(&mut self, slot: usize, clocks: &Clocks, closing: bool) {
        loop {
            let Some(open) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let (n, ts) = match recv_timestamped(open.fd, &mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.close(slot, Err(ReadError::Io(e))),
            };
            if n == 0 {
                let r = open.body.eof();
                return self.close(slot, r);
            }
            let at = match ts {
                Some(ts) => clocks.instant(ts),
                None => Instant::now(),
            };
            if let Some(rt) = open.read_timeout {
                open.expires = (Instant::now() + rt).min(open.deadline);
            }
            let prev = open.last_at.replace(at);
            let fed = open.body.feed(at, &self.buf[..n]);
            self.note_read(prev, at, ts.is_some());
            match fed {
                Ok(true) if closing || n == self.buf.len() => continue,
                Ok(true) => return,
                Ok(false) => return self.close(slot, Ok(())),
                Err(e) => return self.close(slot, Err(e)),
            }
        }
    }

    fn close(&mut self, slot: usize, outcome: Result<(), ReadError>) {
        let Some(open) = self.slots[slot].take() else {
            return;
        };
        // Leaves the set before the body (and perhaps its socket) moves on; a failure here
        // means the socket is gone already.
        let _ = ctl(
            self.shared.epoll.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            open.fd,
            0,
            0,
        );
        self.free.push(slot);
        self.open -= 1;
        open.body.end(outcome);
    }

    /// End the bodies whose time is up; find the next expiry.
    fn expire(&mut self) {
        let now = Instant::now();
        let mut next = now + MAX_WAIT;
        for slot in 0..self.slots.len() {
            let Some(open) = &self.slots[slot] else {
                continue;
            };
            if open.expires <= now {
                self.close(slot, Err(ReadError::TimedOut));
            } else {
                next = next.min(open.expires);
            }
        }
        self.next_check = next;
    }

    fn end_all(&mut self, why: impl Fn() -> io::Error) {
        for slot in 0..self.slots.len() {
            if self.slots[slot].is_some() {
                self.close(slot, Err(ReadError::Io(why())));
            }
        }
        for h in std::mem::take(&mut *self.shared.inbox.lock().expect("inbox lock")) {
            h.body.end(Err(ReadError::Io(why())));
        }
    }
}

/// One `recvmsg` into `buf`: the byte count and the kernel's receive timestamp of the last
/// segment read (CLOCK_REALTIME), when it gave one. (Public for the read-floor benchmark,
/// whose bare reader reads the same way.)
pub fn recv_timestamped(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<Duration>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one timespec control message, aligned for cmsghdr.
    let mut control = [0u64; 8];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // The raw system call: libc's `recvmsg` is a thread-cancellation point and wraps the call in
    // two atomic updates of the thread's cancellation state, a cost paid per chunk here.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvmsg,
            fd,
            &mut msg as *mut libc::msghdr,
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut ts = None;
    if let Some(opt) = SO_TIMESTAMPNS {
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == opt {
                    let t: libc::timespec =
                        std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                    if t.tv_sec > 0 {
                        ts = Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32));
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
    }
    Ok((n as usize, ts))
}

#[cfg(test)]
mod tests {
    //! Deterministic: the sockets are Unix socket pairs, whose writes are on the reader's
    //! queue before `write` returns, and each test writes what a read is to see before the
    //! thread can read it. What depends on scheduling (reads of paced TCP writes, kernel
    //! timestamps, the rate rule under load) is measured by `benches/recv_timing.rs`.
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::sync::mpsc;

    /// Each read with its arrival time, and how the body ended.
    type Collected = (Vec<(Instant, Vec<u8>)>, Result<(), ReadError>);

    /// Collects bytes until `want` have arrived, telling `fed` the byte count after each read.
    struct Collect {
        conn: UnixStream,
        want: usize,
        got: Vec<(Instant, Vec<u8>)>,
        fed: mpsc::Sender<usize>,
        done: mpsc::Sender<Collected>,
    }

    impl Body for Collect {
        fn fd(&self) -> RawFd {
            self.conn.as_raw_fd()
        }
        fn feed(&mut self, at: Instant, bytes: &[u8]) -> Result<bool, ReadError> {
            self.got.push((at, bytes.to_vec()));
            let total = self.got.iter().map(|g| g.1.len()).sum::<usize>();
            let _ = self.fed.send(total);
            Ok(total < self.want)
        }
        fn eof(&mut self) -> Result<(), ReadError> {
            Err(ReadError::Eof)
        }
        fn end(self: Box<Self>, outcome: Result<(), ReadError>) {
            let _ = self.done.send((self.got, outcome));
        }
    }

    struct Handed {
        fed: mpsc::Receiver<usize>,
        done: mpsc::Receiver<Collected>,
    }

    const WAIT: Duration = Duration::from_secs(30);

    fn bytes(got: &[(Instant, Vec<u8>)]) -> Vec<u8> {
        got.iter().flat_map(|g| g.1.clone()).collect()
    }

    impl Handed {
        fn ended(&self) -> Collected {
            self.done.recv_timeout(WAIT).expect("the body ends")
        }
    }

    fn pair() -> (UnixStream, UnixStream) {
        let (c, s) = UnixStream::pair().unwrap();
        c.set_nonblocking(true).unwrap();
        (c, s)
    }

    fn collect(
        r: &Receiver,
        conn: UnixStream,
        want: usize,
        read_timeout: Option<Duration>,
    ) -> Handed {
        let (fed_tx, fed) = mpsc::channel();
        let (tx, done) = mpsc::channel();
        r.hand(Handoff {
            body: Box::new(Collect {
                conn,
                want,
                got: Vec::new(),
                fed: fed_tx,
                done: tx,
            }),
            deadline: Instant::now() + WAIT,
            read_timeout,
        });
        Handed { fed, done }
    }

    #[test]
    fn bytes_written_before_the_handoff_are_one_read_and_the_body_ends_once() {
        let r = Receiver::start().unwrap();
        let (c, mut s) = pair();
        let before = Instant::now();
        s.write_all(b"abcdef").unwrap();
        let h = collect(&r, c, 6, None);
        let (got, outcome) = h.ended();
        let after = Instant::now();
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(got.len(), 1, "one socket drained by one read");
        assert_eq!(got[0].1, b"abcdef");
        // No kernel timestamp on a Unix socket: the read is timed when it returns.
        assert!(got[0].0 >= before && got[0].0 <= after);
        // Ended exactly once: the body (and its senders) went with that one end.
        assert!(h.done.recv_timeout(WAIT).is_err());
    }

    #[test]
    fn each_write_after_a_read_is_a_read_of_its_own() {
        let r = Receiver::start().unwrap();
        let (c, mut s) = pair();
        let h = collect(&r, c, 9, None);
        for (i, piece) in [&b"abc"[..], b"def", b"ghi"].iter().enumerate() {
            s.write_all(piece).unwrap();
            // The next write waits until this one has been read.
            assert_eq!(h.fed.recv_timeout(WAIT).unwrap(), 3 * (i + 1));
        }
        let (got, outcome) = h.ended();
        assert!(outcome.is_ok(), "{outcome:?}");
        let pieces: Vec<&[u8]> = got.iter().map(|g| g.1.as_slice()).collect();
        assert_eq!(pieces, [b"abc", b"def", b"ghi"]);
        assert!(
            got.windows(2).all(|w| w[0].0 <= w[1].0),
            "arrival times in order"
        );
    }

    #[test]
    fn a_read_that_fills_the_buffer_is_followed_by_another() {
        // Edge-triggered: a full buffer may leave bytes behind that no new edge announces.
        let r = Receiver::start().unwrap();
        let (c, mut s) = pair();
        // (Well inside a Unix socket's send buffer, so the write completes unread.)
        let want = READ_BUF + 100;
        let payload: Vec<u8> = (0..want).map(|i| i as u8).collect();
        s.write_all(&payload).unwrap();
        let (got, outcome) = collect(&r, c, want, None).ended();
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(
            got.iter().map(|g| g.1.len()).collect::<Vec<_>>(),
            [READ_BUF, 100]
        );
        assert_eq!(bytes(&got), payload);
    }

    #[test]
    fn clocks_turn_kernel_timestamps_into_instants_never_later_than_now() {
        let mono = Instant::now();
        let real = Duration::from_secs(1_700_000_000);
        let c = Clocks { mono, real };
        let ms = Duration::from_millis;
        assert_eq!(c.instant(real - ms(5)), mono - ms(5));
        assert_eq!(c.instant(real), mono);
        // A stamp ahead of this clock reading (the two clocks are read one after the other).
        assert_eq!(c.instant(real + ms(1)), mono);
    }

    #[test]
    fn recv_timestamped_reads_what_is_there() {
        let (c, mut s) = pair();
        s.write_all(b"hello").unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = recv_timestamped(c.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        let e = recv_timestamped(c.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "drained: no wait");
        drop(s);
        assert_eq!(
            recv_timestamped(c.as_raw_fd(), &mut buf).unwrap().0,
            0,
            "end of file"
        );
    }

    #[test]
    fn early_close_silence_and_shutdown_end_their_bodies() {
        let r = Receiver::start().unwrap();
        let (c, mut s) = pair();
        s.write_all(b"partial").unwrap();
        drop(s);
        let (got, outcome) = collect(&r, c, 100, None).ended();
        assert!(matches!(outcome, Err(ReadError::Eof)), "{outcome:?}");
        assert_eq!(bytes(&got), b"partial");

        // The timer starts no earlier than the handoff, so the body cannot end sooner.
        let (c, _s) = pair();
        let t = Instant::now();
        let h = collect(&r, c, 100, Some(Duration::from_millis(50)));
        let (_, outcome) = h.ended();
        assert!(matches!(outcome, Err(ReadError::TimedOut)), "{outcome:?}");
        assert!(t.elapsed() >= Duration::from_millis(50));

        // Stopped with a body open (or still in the inbox): it ends, saying why.
        let (c, _s) = pair();
        let h = collect(&r, c, 100, None);
        drop(r);
        let (_, outcome) = h.ended();
        assert!(
            matches!(&outcome, Err(ReadError::Io(e)) if e.to_string().contains("stopped")),
            "{outcome:?}"
        );
    }
}
