//! How close loupe's receive path comes to the kernel's own cost of a streamed chunk.
//!
//! One process, two readers in turn over the same load: `streams` loopback connections, each
//! sent `chunks` SGLang-native SSE events (chunked transfer encoding, cumulative text and
//! output_ids, as `loupe serve` sends them) by a writer thread that writes one event to every
//! stream per step, steps `gap_ms` apart, like a batched decode step.
//!
//! - floor: the least a client that times every chunk can do. One thread, an edge-triggered
//!   epoll set and one `recvmsg` with a kernel timestamp per ready socket; the bytes are
//!   dropped.
//! - loupe: `loupe_bench::recv::Receiver` (the receive thread `loupe bench` uses), whose
//!   bodies decode each read as the benchmark does: chunked framing, SSE splitting, the native
//!   chunk scan and the chunk-gap record.
//!
//! Reader CPU is the process's CPU minus the writer thread's (loopback delivery runs on the
//! sender's CPU and is charged to it). The writer is pinned to CPU 0 and the readers to CPU 1
//! where there are two.
//!
//! With `spread_ms` the writer spreads each step's writes evenly over that much of the step, as
//! a server does whose per-request tasks write their chunks one after another.
//!
//!   cargo bench -p loupe-bench --bench read_floor -- [streams] [chunks] [gap_ms] [rounds] [spread_ms]

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, RawFd};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use loupe_bench::chunk::StreamState;
    use loupe_bench::framing::{Chunked, ReadError};
    use loupe_bench::plan::Api;
    use loupe_bench::record::RequestRecord;
    use loupe_bench::recv::{Body, Handoff, Receiver, enable_timestamps, recv_timestamped};
    use loupe_bench::sse::{SseData, SseSplitter};

    fn pin(cpu: usize) {
        if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
            return;
        }
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
        }
    }

    fn cpu_of(clock: libc::clockid_t) -> f64 {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        unsafe { libc::clock_gettime(clock, &mut t) };
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    }

    /// Event `k` of a stream, chunked-encoded: text and output_ids grow with every token.
    fn event(k: usize, text: &mut String, ids: &mut String) -> Vec<u8> {
        const WORDS: [&str; 8] = [
            " zufa", " neda", " li", " vega", " dida", " pefa", " ru", " nada",
        ];
        text.push_str(WORDS[k % WORDS.len()]);
        if !ids.is_empty() {
            ids.push(',');
        }
        ids.push_str(&(100 + (k * 37) % 400).to_string());
        let json = format!(
            r#"{{"text":"{text}","output_ids":[{ids}],"meta_info":{{"id":"18eaba01570c7c8c9e3779b97f4a7c14","finish_reason":null,"prompt_tokens":128,"completion_tokens":{},"cached_tokens":0,"reasoning_tokens":0,"weight_version":"default","num_retractions":0}}}}"#,
            k + 1
        );
        let sse = format!("data: {json}\n\n");
        format!("{:x}\r\n{sse}\r\n", sse.len()).into_bytes()
    }

    struct Load {
        streams: usize,
        chunks: usize,
        gap: Duration,
        /// Each step's writes spread evenly over this much of the step (zero: back to back).
        spread: Duration,
    }

    /// Connected pairs (client side non-blocking and timestamped) and the writer's events.
    fn connect(load: &Load) -> (Vec<TcpStream>, Vec<TcpStream>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..load.streams {
            let mut c = TcpStream::connect(l.local_addr().unwrap()).expect("connect");
            let (mut s, _) = l.accept().expect("accept");
            s.set_nodelay(true).unwrap();
            // A request, so the connection is in the state a benchmark's is.
            c.write_all(b"POST /generate HTTP/1.1\r\n\r\n").unwrap();
            let mut b = [0u8; 64];
            let _ = s.read(&mut b).unwrap();
            enable_timestamps(c.as_raw_fd());
            c.set_nonblocking(true).unwrap();
            clients.push(c);
            servers.push(s);
        }
        (clients, servers)
    }

    /// Write every stream's events, one per stream per step; the writer's CPU seconds.
    fn write_all(load: &Load, mut servers: Vec<TcpStream>) -> std::thread::JoinHandle<f64> {
        let (chunks, gap, spread) = (load.chunks, load.gap, load.spread);
        std::thread::spawn(move || {
            pin(0);
            let mut texts = vec![(String::new(), String::new()); servers.len()];
            let c0 = cpu_of(libc::CLOCK_THREAD_CPUTIME_ID);
            let mut next = Instant::now();
            let n = servers.len() as u32;
            for k in 0..chunks {
                let step = Instant::now();
                for (i, (s, (text, ids))) in servers.iter_mut().zip(&mut texts).enumerate() {
                    // A server that writes each stream's chunk as its task gets to it: spin
                    // (the writer's CPU is not counted) to the write's slot in the spread.
                    let due = step + spread * i as u32 / n;
                    while Instant::now() < due {
                        std::hint::spin_loop();
                    }
                    s.write_all(&event(k, text, ids)).expect("write");
                }
                next += gap;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            for s in &mut servers {
                s.write_all(b"0\r\n\r\n").expect("write");
            }
            cpu_of(libc::CLOCK_THREAD_CPUTIME_ID) - c0
        })
    }

    /// The floor: epoll + one timestamped recvmsg per ready socket (the receive thread's own
    /// read), bytes dropped. Reads taken.
    fn floor(clients: &[TcpStream], total: usize) -> u64 {
        let ep = unsafe { libc::epoll_create1(0) };
        for (i, c) in clients.iter().enumerate() {
            let mut e = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                u64: i as u64,
            };
            unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, c.as_raw_fd(), &mut e) };
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
        let mut buf = vec![0u8; 64 << 10];
        let (mut bytes, mut reads) = (0usize, 0u64);
        while bytes < total {
            let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), 1024, 1000) };
            for e in &events[..n.max(0) as usize] {
                let fd = clients[e.u64 as usize].as_raw_fd();
                if let Ok((k, _)) = recv_timestamped(fd, &mut buf)
                    && k > 0
                {
                    bytes += k;
                    reads += 1;
                }
            }
        }
        unsafe { libc::close(ep) };
        reads
    }

    /// A body that decodes as `loupe bench` does and counts its chunks.
    struct Decode {
        fd: RawFd,
        framing: Chunked,
        splitter: SseSplitter,
        state: StreamState,
        rec: RequestRecord,
        start: Instant,
        reads: u64,
        done: mpsc::Sender<(u64, usize)>,
    }

    impl Body for Decode {
        fn fd(&self) -> RawFd {
            self.fd
        }
        fn feed(&mut self, at: Instant, bytes: &[u8]) -> Result<bool, ReadError> {
            self.reads += 1;
            let t = (at - self.start).as_secs_f64();
            let (splitter, state, rec) = (&mut self.splitter, &mut self.state, &mut self.rec);
            let mut bad = None;
            self.framing
                .feed(bytes, &mut |payload| {
                    splitter.push(payload, &mut |data| {
                        if let SseData::Json(b) = data
                            && let Err(e) = state.on_event(Api::Native, b, t, rec)
                        {
                            bad = Some(e);
                        }
                    })
                })
                .map_err(|e| ReadError::Io(std::io::Error::other(e)))?;
            if let Some(e) = bad {
                return Err(ReadError::Io(std::io::Error::other(e)));
            }
            Ok(!self.framing.done())
        }
        fn eof(&mut self) -> Result<(), ReadError> {
            Err(ReadError::Eof)
        }
        fn end(self: Box<Self>, outcome: Result<(), ReadError>) {
            if let Err(e) = outcome {
                panic!("a stream failed: {e:?}");
            }
            let _ = self.done.send((self.reads, self.rec.gaps.len() + 1));
        }
    }

    /// loupe's receive thread over the same load. Reads taken.
    fn loupe(r: &Receiver, clients: &[TcpStream], chunks: usize) -> u64 {
        let (tx, rx) = mpsc::channel();
        let n = clients.len();
        let start = Instant::now();
        for c in clients {
            r.hand(Handoff {
                body: Box::new(Decode {
                    fd: c.as_raw_fd(),
                    framing: Chunked::default(),
                    splitter: SseSplitter::default(),
                    state: StreamState::default(),
                    rec: RequestRecord::default(),
                    start,
                    reads: 0,
                    done: tx.clone(),
                }),
                deadline: Instant::now() + Duration::from_secs(600),
                read_timeout: None,
            });
        }
        let mut reads = 0;
        for _ in 0..n {
            let (r, events) = rx.recv().expect("a body ended");
            assert_eq!(events, chunks, "every event decoded");
            reads += r;
        }
        reads
    }

    pub fn main() {
        let arg = |i: usize, d: u64| {
            std::env::args()
                .skip(1)
                .filter(|a| !a.starts_with('-'))
                .nth(i)
                .map_or(d, |a| a.parse().expect("a number"))
        };
        let load = Load {
            streams: arg(0, 256) as usize,
            chunks: arg(1, 96) as usize,
            gap: Duration::from_millis(arg(2, 10)),
            spread: Duration::from_millis(arg(4, 0)),
        };
        let rounds = arg(3, 3);
        pin(1);
        let r = Receiver::start().expect("receive thread");
        let per_chunk = load.streams * load.chunks;
        println!(
            "{} streams x {} chunks, {} ms apart, each step's writes spread over {} ms; reader CPU \
             per chunk (us) and reads per chunk",
            load.streams,
            load.chunks,
            load.gap.as_millis(),
            load.spread.as_millis()
        );
        println!("| round | floor us | floor reads | loupe us | loupe reads | loupe / floor |");
        println!("|---|---|---|---|---|---|");
        let mut ratios = Vec::new();
        for round in 0..rounds {
            let mut row = Vec::new();
            for which in ["floor", "loupe"] {
                let (clients, servers) = connect(&load);
                let mut text = (String::new(), String::new());
                let total: usize = (0..load.chunks)
                    .map(|k| event(k, &mut text.0, &mut text.1).len())
                    .sum::<usize>()
                    * load.streams
                    + 5 * load.streams;
                let p0 = cpu_of(libc::CLOCK_PROCESS_CPUTIME_ID);
                let writer = write_all(&load, servers);
                let reads = match which {
                    "floor" => floor(&clients, total),
                    _ => loupe(&r, &clients, load.chunks),
                };
                let writer_cpu = writer.join().expect("writer");
                let reader = cpu_of(libc::CLOCK_PROCESS_CPUTIME_ID) - p0 - writer_cpu;
                row.push((
                    reader / per_chunk as f64 * 1e6,
                    reads as f64 / per_chunk as f64,
                ));
            }
            let ratio = row[1].0 / row[0].0;
            ratios.push(ratio);
            println!(
                "| {} | {:.2} | {:.3} | {:.2} | {:.3} | {:.2} |",
                round + 1,
                row[0].0,
                row[0].1,
                row[1].0,
                row[1].1,
                ratio
            );
        }
        ratios.sort_by(f64::total_cmp);
        println!("median loupe / floor: {:.2}", ratios[ratios.len() / 2]);
    }
}

fn main() {
    #[cfg(target_os = "linux")]
    linux::main();
    #[cfg(not(target_os = "linux"))]
    eprintln!("read_floor needs Linux (the receive thread is Linux-only)");
}
