//! The SSE splitter beside the least any splitter must do: one `memchr` pass for newlines
//! over the same bytes, fed in the same reads.
//!
//! Two loads:
//! - short events: SGLang-native chunks of about 200 bytes, one event per read (a token per
//!   read, the common case);
//! - long lines: one event of `line_kib` KiB read in 16 KiB pieces (the in-task reader's
//!   buffer) and 64 KiB pieces (the receive thread's). The native /generate route repeats the
//!   whole text in every chunk, so long outputs make long lines; a splitter that rescans its
//!   partial line on every read costs the square of the line's length.
//!
//!   cargo bench -p loupe-bench --bench sse_split -- [line_kib] [rounds]

use std::hint::black_box;
use std::time::Instant;

use loupe_bench::sse::{SseData, SseSplitter};

/// The floor: find every newline of every read, nothing else.
fn floor(reads: &[&[u8]]) -> usize {
    let mut n = 0;
    for r in reads {
        n += memchr::memchr_iter(b'\n', r).count();
    }
    n
}

fn split(reads: &[&[u8]]) -> usize {
    let mut s = SseSplitter::default();
    let mut n = 0;
    for r in reads {
        s.push(r, &mut |d| {
            if let SseData::Json(j) = d {
                n += j.len();
            }
        });
    }
    n
}

/// Best of `rounds` timings of `f`, in seconds.
fn best(rounds: usize, mut f: impl FnMut() -> usize) -> f64 {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn row(label: &str, bytes: usize, reads: &[&[u8]], rounds: usize) {
    let (f, s) = (best(rounds, || floor(reads)), best(rounds, || split(reads)));
    let mb = bytes as f64 / 1e6;
    println!(
        "| {label} | {:.2} | {:.0} | {:.0} | {:.2}x |",
        mb,
        mb / f,
        mb / s,
        s / f
    );
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| {
            a.parse()
                .unwrap_or_else(|_| panic!("arguments are numbers: {a}"))
        })
        .collect();
    let line_kib = args.first().copied().unwrap_or(2400);
    let rounds = args.get(1).copied().unwrap_or(5);

    println!("| load | MB | floor MB/s | splitter MB/s | splitter / floor |");
    println!("|---|---:|---:|---:|---:|");

    let events: Vec<Vec<u8>> = (0..100_000)
        .map(|i| {
            format!(
                "data: {{\"text\":\"token {i} of a streamed reply\",\"output_ids\":[{i}],\"meta_info\":{{\"id\":\"4f2a\",\"prompt_tokens\":128,\"completion_tokens\":{i},\"cached_tokens\":0,\"finish_reason\":null}}}}\n\n"
            )
            .into_bytes()
        })
        .collect();
    let reads: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
    let bytes = events.iter().map(Vec::len).sum();
    row("100,000 short events, one per read", bytes, &reads, rounds);

    let text = "x".repeat(line_kib << 10);
    let line = format!("data: {{\"text\":\"{text}\"}}\n\n").into_bytes();
    for piece_kib in [16, 64] {
        let reads: Vec<&[u8]> = line.chunks(piece_kib << 10).collect();
        row(
            &format!("one {line_kib} KiB line in {piece_kib} KiB reads"),
            line.len(),
            &reads,
            rounds,
        );
    }
}
