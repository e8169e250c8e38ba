//! What `loupe watch` draws: the live ratatui view (a block per server: its DP ranks' rows,
//! sparklines of throughput and imbalance; the events at the bottom), the plain line per
//! sample, and `--once`'s table. `draw` is public so the redraw benchmark times the real
//! thing.

use std::collections::VecDeque;
use std::io::Stdout;
use std::time::Duration;

use loupe_client::Engine;
use loupe_client::watch::ServerPoint;
use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::prelude::CrosstermBackend;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Sparkline, Table as TuiTable};

use super::push;

/// One server as the view shows it.
#[derive(Debug, Clone, Default)]
pub struct ServerView {
    pub url: String,
    pub engine: Option<Engine>,
    pub last: Option<ServerPoint>,
    pub error: Option<String>,
    pub throughput: VecDeque<u64>,
    /// Imbalance x 100, for the sparkline's integers.
    pub imbalance: VecDeque<u64>,
}

impl ServerView {
    pub fn update(&mut self, url: &str, engine: Option<Engine>, r: &Result<ServerPoint, String>) {
        self.url = url.to_string();
        self.engine = engine;
        match r {
            Ok(p) => {
                push(&mut self.throughput, p.throughput.unwrap_or(0.0));
                push(&mut self.imbalance, p.dp_imbalance * 100.0);
                self.last = Some(p.clone());
                self.error = None;
            }
            Err(e) => self.error = Some(e.clone()),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ViewState {
    pub servers: Vec<ServerView>,
    pub server_imbalance: f64,
    pub capturing: bool,
    pub events: VecDeque<String>,
}

impl ViewState {
    pub fn new(n: usize) -> Self {
        ViewState {
            servers: vec![ServerView::default(); n],
            ..Default::default()
        }
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.2}%", v * 100.0))
}

fn num(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.prec$}"))
}

/// A rank's cells: rank, running, queued, KV, tok/s, hit rate, preemptions.
fn rank_cells(p: &ServerPoint) -> Vec<[String; 7]> {
    p.ranks
        .iter()
        .map(|r| {
            [
                r.rank.to_string(),
                format!("{:.0}", r.running),
                format!("{:.0}", r.queued),
                pct(r.kv_usage),
                num(r.throughput, 1),
                pct(r.cache_hit_rate),
                num(r.preemptions, 0),
            ]
        })
        .collect()
}

const HEADER: [&str; 7] = ["DP", "running", "queued", "KV", "tok/s", "hit", "preempt"];

fn title(s: &ServerView) -> String {
    let engine = s.engine.map_or("?", Engine::name);
    match &s.last {
        Some(p) => format!(
            " {} ({engine}) | imbalance {:.2} | tok/s {} | TTFT {} ",
            s.url,
            p.dp_imbalance,
            num(p.throughput, 1),
            p.ttft
                .map_or("-".into(), |t| format!("{:.1} ms", t * 1000.0))
        ),
        None => format!(" {} ({engine}) ", s.url),
    }
}

/// Draw the whole view into `frame`.
pub fn draw(frame: &mut Frame, state: &ViewState) {
    let area = frame.area();
    let events_h = (state.events.len() as u16 + 2).min(area.height / 3).max(3);
    let outer = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Min(3), Constraint::Length(events_h)])
        .split(area);
    let heights: Vec<Constraint> = state
        .servers
        .iter()
        .map(|s| Constraint::Length(s.last.as_ref().map_or(1, |p| p.ranks.len() as u16) + 3))
        .collect();
    let blocks = Layout::default()
        .direction(Direction::Vertical)
        .constraints(heights)
        .split(outer[0]);
    for (s, rect) in state.servers.iter().zip(blocks.iter()) {
        draw_server(frame, s, *rect);
    }
    let mut lines: Vec<Line> = vec![Line::from(format!(
        "server imbalance {:.2}{}   q: quit",
        state.server_imbalance,
        if state.capturing {
            "   capturing..."
        } else {
            ""
        }
    ))];
    lines.extend(state.events.iter().map(|e| Line::from(e.as_str())));
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::TOP).title(" events ")),
        outer[1],
    );
}

fn draw_server(frame: &mut Frame, s: &ServerView, rect: Rect) {
    let block = Block::default().borders(Borders::ALL).title(title(s));
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    if let Some(e) = &s.error {
        frame.render_widget(Paragraph::new(e.as_str()).fg(Color::Red), inner);
        return;
    }
    let Some(p) = &s.last else { return };
    let cols = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Length(64), Constraint::Min(10)])
        .split(inner);
    let rows = rank_cells(p).into_iter().map(Row::new);
    let widths = [4, 8, 7, 8, 9, 8, 8].map(Constraint::Length);
    let table = TuiTable::new(rows, widths).header(Row::new(HEADER).style(Style::new().bold()));
    frame.render_widget(table, cols[0]);
    let sparks = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)])
        .split(cols[1]);
    let tp: Vec<u64> = s.throughput.iter().copied().collect();
    let im: Vec<u64> = s.imbalance.iter().copied().collect();
    frame.render_widget(
        Sparkline::default()
            .data(&tp)
            .style(Style::new().fg(Color::Green)),
        sparks[0],
    );
    frame.render_widget(
        Sparkline::default()
            .data(&im)
            .style(Style::new().fg(Color::Yellow)),
        sparks[1],
    );
}

/// One sample as a plain line (no terminal, or `--no-view`).
pub fn plain_line(t: f64, url: &str, r: &Result<ServerPoint, String>) -> String {
    match r {
        Err(e) => format!("t={t:.1}s {url}: error: {e}"),
        Ok(p) => {
            let ranks: Vec<String> = p
                .ranks
                .iter()
                .map(|r| format!("dp{}={:.0}+{:.0}", r.rank, r.running, r.queued))
                .collect();
            format!(
                "t={t:.1}s {url}: running {:.0} queued {:.0} KV {} tok/s {} imbalance {:.2} [{}]",
                p.running(),
                p.queued(),
                pct(p.kv_usage()),
                num(p.throughput, 1),
                p.dp_imbalance,
                ranks.join(" ")
            )
        }
    }
}

/// `--once`: every server's ranks in one table.
pub fn once_table(servers: &[ServerView]) -> String {
    let mut header: Vec<String> = ["server", "engine"].map(String::from).into();
    header.extend(HEADER.map(String::from));
    header.extend(["imbalance", "TTFT (ms)"].map(String::from));
    let width = header.len();
    let mut rows = Vec::new();
    for s in servers {
        let engine = s.engine.map_or("?", Engine::name).to_string();
        match (&s.last, &s.error) {
            (_, Some(e)) => {
                let mut row = vec![s.url.clone(), engine, format!("error: {e}")];
                row.resize(width, String::new());
                rows.push(row);
            }
            (Some(p), None) => {
                for cells in rank_cells(p) {
                    let mut row = vec![s.url.clone(), engine.clone()];
                    row.extend(cells);
                    row.extend([
                        format!("{:.2}", p.dp_imbalance),
                        p.ttft.map_or("-".into(), |v| format!("{:.3}", v * 1000.0)),
                    ]);
                    rows.push(row);
                }
            }
            (None, None) => {}
        }
    }
    let mut out = crate::table::terminal_table(header, rows);
    out.push('\n');
    out
}

/// The terminal while the live view runs: raw mode, the alternate screen, key events read
/// on a thread of their own (q, Esc or Ctrl-C end the watch).
pub struct Live {
    terminal: ratatui::Terminal<CrosstermBackend<Stdout>>,
    quit: tokio::sync::mpsc::UnboundedReceiver<()>,
}

impl Live {
    pub fn start() -> anyhow::Result<Live> {
        let terminal = ratatui::try_init()?;
        let (tx, quit) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            use ratatui::crossterm::event::{self, Event, KeyCode, KeyModifiers};
            loop {
                match event::poll(Duration::from_millis(100)) {
                    Ok(true) => {
                        if let Ok(Event::Key(k)) = event::read() {
                            let ctrl_c = k.code == KeyCode::Char('c')
                                && k.modifiers.contains(KeyModifiers::CONTROL);
                            if ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
                                let _ = tx.send(());
                                return;
                            }
                        }
                    }
                    Ok(false) => {
                        if tx.is_closed() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        Ok(Live { terminal, quit })
    }

    pub fn draw(&mut self, state: &ViewState) -> anyhow::Result<()> {
        self.terminal.draw(|f| draw(f, state))?;
        Ok(())
    }

    /// Sleep until `until`; true when the user asked to quit.
    pub async fn wait_for_quit(&mut self, until: tokio::time::Instant) -> bool {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => false,
            _ = self.quit.recv() => true,
        }
    }

    pub fn stop(self) {
        ratatui::restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_client::watch::RankPoint;
    use ratatui::backend::TestBackend;

    fn rank(rank: u32, running: f64, queued: f64) -> RankPoint {
        RankPoint {
            rank,
            running,
            queued,
            kv_usage: Some(0.125 * f64::from(rank + 1)),
            throughput: Some(100.0 + f64::from(rank)),
            cache_hit_rate: Some(0.5),
            preemptions: Some(f64::from(rank)),
        }
    }

    /// A server with two DP ranks, one skewed, sampled three times; a second server whose
    /// last scrape failed.
    fn state() -> ViewState {
        let mut st = ViewState::new(2);
        for (t, tp, skew) in [(1.0, 10.0, 1.0), (2.0, 40.0, 4.0), (3.0, 80.0, 6.0)] {
            let p = ServerPoint {
                t,
                ranks: vec![rank(0, skew, 2.0), rank(1, 1.0, 0.0)],
                throughput: Some(tp),
                ttft: Some(0.0123),
                dp_imbalance: 2.0 * (skew + 2.0) / (skew + 3.0),
            };
            st.servers[0].update("http://a:1", Some(Engine::Vllm), &Ok(p));
        }
        st.servers[1].update(
            "http://b:2",
            Some(Engine::Sglang),
            &Err("http://b:2/metrics: cannot connect".into()),
        );
        st.server_imbalance = 1.75;
        st.capturing = true;
        st.events
            .push_back("t=3.0s http://a:1: rule 'dp_imbalance > 1.5' fired".into());
        st
    }

    fn render(st: &ViewState, w: u16, h: u16) -> ratatui::buffer::Buffer {
        let mut term = ratatui::Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| draw(f, st)).unwrap();
        term.backend().buffer().clone()
    }

    fn rows(b: &ratatui::buffer::Buffer) -> Vec<String> {
        (0..b.area.height)
            .map(|y| {
                (0..b.area.width)
                    .map(|x| b.cell((x, y)).unwrap().symbol())
                    .collect()
            })
            .collect()
    }

    const BARS: &str = "▁▂▃▄▅▆▇█";

    #[test]
    fn the_view_draws_rank_rows_imbalance_sparklines_errors_and_events() {
        let st = state();
        let b = render(&st, 110, 24);
        let lines = rows(&b);
        let text = lines.join("\n");
        // The first server's title: URL, engine, its DP imbalance, throughput, TTFT.
        let title = lines
            .iter()
            .position(|l| l.contains("http://a:1 (vllm)"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            lines[title].contains("imbalance 1.78") && lines[title].contains("tok/s 80.0"),
            "{}",
            lines[title]
        );
        assert!(lines[title].contains("TTFT 12.3 ms"), "{}", lines[title]);
        // The header, then a row per DP rank with its cells.
        let header = &lines[title + 1];
        for h in HEADER {
            assert!(header.contains(h), "{header}");
        }
        let cells = |l: &str| {
            l.trim_matches('│')
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let r0 = cells(&lines[title + 2]);
        let r1 = cells(&lines[title + 3]);
        assert_eq!(
            r0[..7],
            ["0", "6", "2", "12.50%", "100.0", "50.00%", "0"],
            "{}",
            lines[title + 2]
        );
        assert_eq!(
            r1[..7],
            ["1", "1", "0", "25.00%", "101.0", "50.00%", "1"],
            "{}",
            lines[title + 3]
        );
        // Sparklines right of the table: throughput (green) above, imbalance (yellow)
        // below, each with bars of the samples' heights.
        let block_rows = title..title + 5;
        let bars = |color: Color| {
            let mut n = 0;
            for y in block_rows.clone() {
                for x in 64..b.area.width {
                    let c = b.cell((x, y as u16)).unwrap();
                    if c.fg == color && BARS.contains(c.symbol()) && c.symbol() != " " {
                        n += 1;
                    }
                }
            }
            n
        };
        assert!(bars(Color::Green) >= 3, "throughput sparkline:\n{text}");
        assert!(bars(Color::Yellow) >= 3, "imbalance sparkline:\n{text}");
        // The failed server shows its error, in red, in its own block.
        let err = lines
            .iter()
            .position(|l| l.contains("cannot connect"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(lines[err - 1].contains("http://b:2 (sglang)"), "{text}");
        let x = lines[err].find("http").unwrap();
        let col = lines[err][..x].chars().count() as u16;
        assert_eq!(b.cell((col, err as u16)).unwrap().fg, Color::Red);
        // The events: across-server imbalance, the capture, the rule that fired.
        assert!(
            text.contains("server imbalance 1.75") && text.contains("capturing..."),
            "{text}"
        );
        assert!(text.contains("rule 'dp_imbalance > 1.5' fired"), "{text}");
    }

    #[test]
    fn eight_servers_of_eight_ranks_fit_a_tall_terminal() {
        let mut st = ViewState::new(8);
        for (i, s) in st.servers.iter_mut().enumerate() {
            let p = ServerPoint {
                t: 1.0,
                ranks: (0..8).map(|r| rank(r, f64::from(r), 0.0)).collect(),
                throughput: Some(1.0),
                ttft: None,
                dp_imbalance: 1.0,
            };
            s.update(&format!("http://s{i}:1"), Some(Engine::Sglang), &Ok(p));
        }
        let text = rows(&render(&st, 120, 8 * 11 + 4)).join("\n");
        for i in 0..8 {
            assert!(text.contains(&format!("http://s{i}:1 (sglang)")), "{text}");
        }
        // Every server's eight rank rows (the last rank's row holds its 7 running).
        let last_rows = text
            .lines()
            .filter(|l| l.trim_matches('│').split_whitespace().nth(1) == Some("7"))
            .count();
        assert_eq!(last_rows, 8, "{text}");
    }
}
