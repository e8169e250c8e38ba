//! `--plot-throughput`: bench_serving's two terminal plots of a run's 1-second buckets
//! ("Output tokens per second", "Concurrent requests per second", x in seconds), drawn here as
//! text in a frame with labelled axes (upstream draws them with termplotlib and gnuplot's
//! dumb terminal).

use std::fmt::Write as _;

/// Plot area in characters (inside the frame).
const WIDTH: usize = 60;
const HEIGHT: usize = 15;

/// One line plot of `ys` (one value per second from 0), framed, with its title above and
/// `xlabel` below.
pub fn plot(title: &str, xlabel: &str, ys: &[usize]) -> String {
    let mut out = String::new();
    let ymax = ys.iter().copied().max().unwrap_or(0).max(1);
    let n = ys.len().max(1);
    let xmax = n.saturating_sub(1).max(1);
    let cols = WIDTH.min(n.max(2) * 4).max(2);
    // Each column shows the value at its second (the nearest bucket).
    let col_value = |c: usize| {
        let x = (c as f64 * xmax as f64 / (cols - 1) as f64).round() as usize;
        ys.get(x).copied().unwrap_or(0)
    };
    let row_of = |v: usize| ((v as f64 / ymax as f64) * (HEIGHT - 1) as f64).round() as usize;
    let mut grid = vec![vec![' '; cols]; HEIGHT];
    let mut prev: Option<usize> = None;
    let rows: Vec<usize> = (0..cols).map(|c| row_of(col_value(c))).collect();
    for (c, &r) in rows.iter().enumerate() {
        // Join consecutive points with a vertical run so the line reads as one.
        if let Some(p) = prev {
            let (lo, hi) = (p.min(r), p.max(r));
            for rr in lo..=hi {
                if grid[HEIGHT - 1 - rr][c] == ' ' {
                    grid[HEIGHT - 1 - rr][c] = '|';
                }
            }
        }
        grid[HEIGHT - 1 - r][c] = '*';
        prev = Some(r);
    }
    let label_w = ymax.to_string().len().max(1);
    let pad = label_w + 1;
    let _ = writeln!(out, "{:pad$}{:^w$}", "", title, pad = pad, w = cols + 2);
    let _ = writeln!(out, "{:pad$}+{}+", "", "-".repeat(cols), pad = pad);
    for (i, row) in grid.iter().enumerate() {
        let level = HEIGHT - 1 - i;
        let label = if level == HEIGHT - 1 {
            ymax.to_string()
        } else if level == 0 {
            "0".to_string()
        } else if level == (HEIGHT - 1) / 2 {
            (ymax as f64 * level as f64 / (HEIGHT - 1) as f64)
                .round()
                .to_string()
        } else {
            String::new()
        };
        let line: String = row.iter().collect();
        let _ = writeln!(out, "{label:>label_w$} |{line}|");
    }
    let _ = writeln!(out, "{:pad$}+{}+", "", "-".repeat(cols), pad = pad);
    let left = "0";
    let right = xmax.to_string();
    let mid = (xmax / 2).to_string();
    let mut axis = vec![' '; cols + 2];
    let put = |axis: &mut Vec<char>, at: usize, s: &str| {
        for (k, ch) in s.chars().enumerate() {
            if let Some(slot) = axis.get_mut(at + k) {
                *slot = ch;
            }
        }
    };
    put(&mut axis, 1, left);
    put(&mut axis, (cols + 2) / 2 - mid.len() / 2, &mid);
    put(&mut axis, (cols + 1).saturating_sub(right.len()), &right);
    let axis: String = axis.into_iter().collect();
    let _ = writeln!(out, "{:pad$}{}", "", axis.trim_end(), pad = pad);
    let _ = writeln!(out, "{:pad$}{:^w$}", "", xlabel, pad = pad, w = cols + 2);
    out
}

/// Both of bench_serving's plots of a run.
pub fn throughput(b: &loupe_bench::metrics::Buckets) -> String {
    if b.tokens.is_empty() {
        return "plot: no request completed, nothing to plot\n".into();
    }
    let mut s = plot("Output tokens per second", "Time (s)", &b.tokens);
    s.push('\n');
    s.push_str(&plot(
        "Concurrent requests per second",
        "Time (s)",
        &b.requests,
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_on_the_top_row_and_zero_on_the_bottom() {
        let p = plot("Output tokens per second", "Time (s)", &[0, 5, 10, 5, 0]);
        let lines: Vec<&str> = p.lines().collect();
        assert!(lines[0].contains("Output tokens per second"));
        // Title, frame, then the top row labelled with the maximum.
        assert!(lines[2].starts_with("10 |"), "{p}");
        assert!(lines[2].contains('*'));
        let bottom = lines[2 + HEIGHT - 1];
        assert!(bottom.starts_with(" 0 |*"), "{p}");
        assert!(lines.last().unwrap().contains("Time (s)"));
        assert!(lines[lines.len() - 2].trim_end().ends_with('4'), "{p}");
        // Every row is as wide as the frame.
        let w = lines[1].len();
        assert!(lines[2..2 + HEIGHT].iter().all(|l| l.len() == w), "{p}");
    }

    #[test]
    fn both_plots_or_a_reason() {
        let b = loupe_bench::metrics::Buckets {
            tokens: vec![3, 4],
            requests: vec![1, 2],
        };
        let s = throughput(&b);
        assert!(s.contains("Output tokens per second") && s.contains("Concurrent requests"));
        let none = throughput(&Default::default());
        assert!(none.contains("nothing to plot"));
    }
}
