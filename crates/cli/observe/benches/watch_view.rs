//! `loupe watch`'s redraw: the whole view (8 servers x 8 DP ranks, full sparkline histories,
//! a full event list) drawn into an off-screen ratatui buffer and diffed against the
//! previous frame, as the live view does every interval; the terminal write itself is left
//! out (it depends on the terminal). Prints the median and p99 of `rounds` redraws.
//!
//!   cargo bench -p loupe-cli-observe --bench watch_view -- [servers] [ranks] [rounds]

use std::time::Instant;

use loupe_cli_observe::watch::view::{ViewState, draw};
use loupe_client::Engine;
use loupe_client::watch::{RankPoint, ServerPoint};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn state(servers: usize, ranks: usize, step: u64) -> ViewState {
    let mut st = ViewState::new(servers);
    for (s, v) in st.servers.iter_mut().enumerate() {
        let ranks: Vec<RankPoint> = (0..ranks)
            .map(|r| RankPoint {
                rank: r as u32,
                running: ((r + s) as u64 + step) as f64 % 17.0,
                queued: (r as u64 * 3 + step) as f64 % 5.0,
                kv_usage: Some(((r * 7 + s) % 100) as f64 / 100.0),
                throughput: Some(1000.0 + (r * 13) as f64 + step as f64),
                cache_hit_rate: Some(0.5),
                preemptions: Some(0.0),
            })
            .collect();
        let p = ServerPoint {
            t: step as f64,
            ranks,
            throughput: Some(8000.0),
            ttft: Some(0.120),
            dp_imbalance: 1.3,
        };
        for k in 0..120 {
            v.update(
                &format!("http://node{s}:30000"),
                Some(Engine::Sglang),
                &Ok(ServerPoint {
                    t: k as f64,
                    ..p.clone()
                }),
            );
        }
    }
    st.events = (0..8)
        .map(|i| format!("t={i}.0s rule 'dp_imbalance > 1.5 for 10s' fired"))
        .collect();
    st
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let servers = args.first().copied().unwrap_or(8);
    let ranks = args.get(1).copied().unwrap_or(8);
    let rounds = args.get(2).copied().unwrap_or(500);
    // Tall enough for every block: (ranks + 3) rows per server plus the events.
    let height = (servers * (ranks + 3) + 12) as u16;
    let mut term = Terminal::new(TestBackend::new(200, height)).unwrap();
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let st = state(servers, ranks, i as u64);
        let t = Instant::now();
        term.draw(|f| draw(f, &st)).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "watch view redraw, {servers} servers x {ranks} ranks, 200x{height} cells, {rounds} rounds: \
         median {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        at(0.5),
        at(0.99),
        times[times.len() - 1]
    );
}
