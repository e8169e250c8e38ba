//! The receive thread's timing on real loopback TCP, where the figures depend on how the
//! kernel and the scheduler treat this machine: each check prints what it measured and PASS or
//! FAIL against the bounds `loupe bench` relies on. (`cargo test` checks the same logic
//! deterministically: the pacing rule over scripted read times in `recv/pace.rs`, the thread over
//! Unix socket pairs in `recv.rs`.)
//!
//! - arrival times: two writes 30 ms apart are two reads, each timed inside the window its
//!   write was made in;
//! - kernel timestamps: a read 20 ms after its write is stamped 15 ms to 5 s ago;
//! - paced writes: four streams, 1,000 one-byte chunks each at least 2 ms apart, all four at
//!   once: the thread paces its reads (a pause in (0, 625 us]) and still reads each chunk alone
//!   (at most 5% merged reads or gaps under 1.9 ms);
//! - spread writes: 64 streams written one after another, a write every 125 us: the read rate
//!   earns a pause after rounds that found one stream ready, so reads per round >= 1.5 (about
//!   9 on a quiet machine, 1.06 without the rate rule), at most 5% merged.
//!
//! Exits 1 when a check fails.
//!
//!   cargo bench -p loupe-bench --bench recv_timing

#[cfg(target_os = "linux")]
mod linux {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, RawFd};
    use std::sync::mpsc;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use loupe_bench::framing::ReadError;
    use loupe_bench::recv::{Body, Handoff, Receiver, enable_timestamps, recv_timestamped};

    /// Each read with its arrival time, and how the body ended.
    type Collected = (Vec<(Instant, Vec<u8>)>, Result<(), ReadError>);

    /// Collects bytes until `want` have arrived.
    struct Collect {
        conn: TcpStream,
        want: usize,
        got: Vec<(Instant, Vec<u8>)>,
        done: mpsc::Sender<Collected>,
    }

    impl Body for Collect {
        fn fd(&self) -> RawFd {
            self.conn.as_raw_fd()
        }
        fn feed(&mut self, at: Instant, bytes: &[u8]) -> Result<bool, ReadError> {
            self.got.push((at, bytes.to_vec()));
            Ok(self.got.iter().map(|g| g.1.len()).sum::<usize>() < self.want)
        }
        fn eof(&mut self) -> Result<(), ReadError> {
            Err(ReadError::Eof)
        }
        fn end(self: Box<Self>, outcome: Result<(), ReadError>) {
            let _ = self.done.send((self.got, outcome));
        }
    }

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        c.set_nonblocking(true).unwrap();
        enable_timestamps(c.as_raw_fd());
        (c, s)
    }

    fn collect(
        r: &Receiver,
        conn: TcpStream,
        want: usize,
        read_timeout: Option<Duration>,
    ) -> mpsc::Receiver<Collected> {
        let (tx, rx) = mpsc::channel();
        r.hand(Handoff {
            body: Box::new(Collect {
                conn,
                want,
                got: Vec::new(),
                done: tx,
            }),
            deadline: Instant::now() + Duration::from_secs(20),
            read_timeout,
        });
        rx
    }

    fn ended(rx: mpsc::Receiver<Collected>) -> Vec<(Instant, Vec<u8>)> {
        let (got, outcome) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the body ends");
        if let Err(e) = outcome {
            panic!("the body failed: {e}");
        }
        got
    }

    /// Write and read single bytes until the kernel timestamps them (it switches receive
    /// timestamping on asynchronously after the first socket asks: the first segments may
    /// come untimed). The last timestamp's age, or None when the kernel gives none.
    fn timestamps_on(c: &TcpStream, s: &mut TcpStream) -> Option<Duration> {
        for _ in 0..100 {
            s.write_all(b"x").unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let mut buf = [0u8; 16];
            let (n, ts) = recv_timestamped(c.as_raw_fd(), &mut buf).unwrap();
            assert_eq!(n, 1);
            if let Some(ts) = ts {
                let real = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
                return Some(real.saturating_sub(ts));
            }
        }
        None
    }

    struct Checks {
        failed: usize,
    }

    impl Checks {
        fn check(&mut self, name: &str, figures: String, pass: bool) {
            println!(
                "{:<16} {:<4} {figures}",
                name,
                if pass { "PASS" } else { "FAIL" }
            );
            self.failed += usize::from(!pass);
        }
    }

    fn arrival_times(c: &mut Checks) {
        let r = Receiver::start().unwrap();
        let (conn, mut s) = pair();
        let rx = collect(&r, conn, 6, None);
        let before = Instant::now();
        s.write_all(b"abc").unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let between = Instant::now();
        s.write_all(b"def").unwrap();
        let got = ended(rx);
        let bytes: Vec<u8> = got.iter().flat_map(|g| g.1.clone()).collect();
        // Arrival times fall in the windows the writes were made in (kernel timestamps are
        // converted between clocks, so allow a little slack either side).
        let slack = Duration::from_millis(2);
        let pass = bytes == b"abcdef"
            && got.len() == 2
            && got[0].0 + slack >= before
            && got[0].0 <= between + slack
            && got[1].0 + slack >= between
            && got[1].0 >= got[0].0 + Duration::from_millis(25);
        let gap = got
            .windows(2)
            .map(|w| format!("{:?}", w[1].0 - w[0].0))
            .collect::<Vec<_>>()
            .join(", ");
        c.check(
            "arrival times",
            format!("{} reads of two writes 30 ms apart; gap {gap}", got.len()),
            pass,
        );
    }

    fn kernel_timestamps(c: &mut Checks) -> bool {
        let (conn, mut s) = pair();
        match timestamps_on(&conn, &mut s) {
            Some(ago) => {
                c.check(
                    "kernel stamps",
                    format!("a read 20 ms after its write was stamped {ago:?} ago"),
                    ago >= Duration::from_millis(15) && ago < Duration::from_secs(5),
                );
                true
            }
            None => {
                println!(
                    "kernel stamps    SKIP no receive timestamp in 100 reads (paced checks skipped)"
                );
                false
            }
        }
    }

    fn paced_writes(c: &mut Checks) {
        let r = Receiver::start().unwrap();
        let n = 1000;
        let mut writers = Vec::new();
        let mut results = Vec::new();
        for _ in 0..4 {
            let (conn, mut s) = pair();
            timestamps_on(&conn, &mut s);
            results.push(collect(&r, conn, n, None));
            writers.push(s);
        }
        let mut paced = Duration::ZERO;
        for i in 0..n {
            for s in &mut writers {
                s.write_all(b"x").unwrap();
            }
            std::thread::sleep(Duration::from_millis(2));
            if i == n - 1 {
                paced = r.pace();
            }
        }
        // The pause is a quarter of the shortest arrival gap: the writer's 2 ms sleep plus its
        // writes and the sleep's overshoot (2.0-2.2 ms on a quiet machine). The writers leave
        // Nagle on, so a chunk can be held until the previous one is acknowledged, which
        // shortens the gap after it when the thread read late (a loaded machine): that makes
        // the pause shorter, never longer.
        c.check(
            "paced pause",
            format!("{paced:?} (bound: (0, 625 us], a quarter of the ~2 ms gap)"),
            paced > Duration::ZERO && paced <= Duration::from_micros(625),
        );
        for (i, rx) in results.into_iter().enumerate() {
            let got = ended(rx);
            let merged = got.iter().filter(|g| g.1.len() > 1).count();
            let short = got
                .windows(2)
                .filter(|w| w[1].0 - w[0].0 < Duration::from_micros(1900))
                .count();
            // A pause that merged chunks, or delayed ACKs stalling a Nagle writer (the stall
            // merges every chunk of it), shows on most reads; a machine busy enough to hold the
            // thread off past a 2 ms gap, or a Nagle-held chunk, on a few (up to 3% with twice
            // as many busy loops as cores beside it).
            c.check(
                &format!("paced stream {i}"),
                format!(
                    "{merged} merged reads, {short} gaps under 1.9 ms of {n} chunks (bound: 5%)"
                ),
                merged <= n / 20 && short <= n / 20,
            );
        }
    }

    fn spread_writes(c: &mut Checks) {
        // 64 streams written one after another, a write every 125 us, so each stream gets a
        // chunk every 8 ms but a round of reads finds about one socket ready. The read rate
        // (8,000/s) times the pause (1 ms, the cap) says a pause finds 8 ready, so the thread
        // pauses after every round anyway and reads several streams per wake-up, each chunk
        // still alone. The writer keeps a schedule rather than sleeping, so a slow machine
        // makes it write in bursts rather than more sparsely.
        let r = Receiver::start().unwrap();
        let (streams, n) = (64, 100);
        let mut writers = Vec::new();
        let mut results = Vec::new();
        for i in 0..streams {
            let (conn, mut s) = pair();
            if i == 0 {
                // Switches the kernel's receive timestamps on for every socket.
                timestamps_on(&conn, &mut s);
            }
            results.push(collect(&r, conn, n, None));
            writers.push(s);
        }
        let step = Duration::from_micros(125);
        let start = Instant::now();
        let mut settled = (0, 0);
        for k in 0..streams * n {
            let due = start + step * k as u32;
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            writers[k % streams].write_all(b"x").unwrap();
            // The pace needs a window of 1,000 reads and the rate a 100 ms period after it:
            // count from 60% of the way on.
            if k == streams * n * 3 / 5 {
                settled = r.rounds_and_reads();
            }
        }
        let mut worst = 0;
        for rx in results {
            let got = ended(rx);
            worst = worst.max(got.iter().filter(|g| g.1.len() > 1).count());
        }
        // Only a thread held off for 8 ms can merge two chunks: a few on a loaded machine.
        c.check(
            "spread merged",
            format!("at most {worst} merged reads of {n} chunks in a stream (bound: 5%)"),
            worst <= n / 20,
        );
        let end = r.rounds_and_reads();
        let (rounds, reads) = (end.0 - settled.0, end.1 - settled.1);
        // Quiet: about 9 reads per round with the rate rule, 1.06 without it. With twice as
        // many busy loops as cores the writer's catch-up bursts put two chunks of a stream
        // close together, the pace (a quarter of the shortest gap) shrinks with them, and the
        // rate rule rightly holds back: 1.8.
        c.check(
            "spread batches",
            format!(
                "{reads} reads in {rounds} rounds, {:.2} per round (bound: >= 1.5; pace {:?})",
                reads as f64 / rounds.max(1) as f64,
                r.pace()
            ),
            reads as f64 >= 1.5 * rounds as f64,
        );
    }

    pub fn main() {
        let mut c = Checks { failed: 0 };
        arrival_times(&mut c);
        if kernel_timestamps(&mut c) {
            paced_writes(&mut c);
            spread_writes(&mut c);
        }
        if c.failed > 0 {
            println!("{} check(s) failed", c.failed);
            std::process::exit(1);
        }
    }
}

fn main() {
    #[cfg(target_os = "linux")]
    linux::main();
    #[cfg(not(target_os = "linux"))]
    eprintln!("recv_timing needs Linux (the receive thread is Linux-only)");
}
