//! Plain tables for the terminal and CSV; JSON output serialises the analysis structs instead.

use std::fmt::Write as _;

/// Output format of a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    #[default]
    Table,
    Csv,
    Json,
}

pub struct Table {
    /// A stable identifier (`--table` selects by it) and the human title.
    pub id: &'static str,
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Columns aligned left (text); the others align right (numbers).
    pub left: Vec<usize>,
}

impl Table {
    pub fn new(id: &'static str, title: impl Into<String>, header: &[&str]) -> Table {
        Table {
            id,
            title: title.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            left: vec![0],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders for a terminal; cells of left-aligned columns longer than `max_cell` are cut.
    pub fn text(&self, out: &mut String, max_cell: usize) {
        let cut = |s: &str, col: usize| -> String {
            if self.left.contains(&col) && s.chars().count() > max_cell {
                let mut t: String = s.chars().take(max_cell.saturating_sub(1)).collect();
                t.push('…');
                t
            } else {
                s.to_string()
            }
        };
        let cells: Vec<Vec<String>> = std::iter::once(&self.header)
            .chain(&self.rows)
            .map(|r| r.iter().enumerate().map(|(i, c)| cut(c, i)).collect())
            .collect();
        let ncol = self.header.len();
        let widths: Vec<usize> = (0..ncol)
            .map(|i| {
                cells
                    .iter()
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let _ = writeln!(out, "{}", self.title);
        for (n, r) in cells.iter().enumerate() {
            let mut line = String::new();
            for (i, w) in widths.iter().enumerate() {
                let c = r.get(i).map_or("", String::as_str);
                let pad = w - c.chars().count();
                if i > 0 {
                    line.push_str("  ");
                }
                if self.left.contains(&i) {
                    line.push_str(c);
                    if i + 1 < ncol {
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                } else {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(c);
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
            if n == 0 {
                let total: usize = widths.iter().sum::<usize>() + 2 * ncol.saturating_sub(1);
                let _ = writeln!(out, "{}", "-".repeat(total));
            }
        }
        if self.rows.is_empty() {
            let _ = writeln!(out, "(none)");
        }
    }

    pub fn csv(&self, out: &mut String) {
        let line = |cells: &[String], out: &mut String| {
            let parts: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
            let _ = writeln!(out, "{}", parts.join(","));
        };
        line(&self.header, out);
        for r in &self.rows {
            line(r, out);
        }
    }
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Renders tables in `format` (`Table` or `Csv`). `only` keeps the table with that id.
pub fn render(tables: &[Table], format: ReportFormat, only: Option<&str>) -> String {
    let mut out = String::new();
    let chosen: Vec<&Table> = tables
        .iter()
        .filter(|t| only.is_none_or(|id| t.id == id))
        .collect();
    for (i, t) in chosen.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match format {
            ReportFormat::Csv if only.is_some() => t.csv(&mut out),
            ReportFormat::Csv => {
                let _ = writeln!(out, "# {}", t.id);
                t.csv(&mut out);
            }
            _ => t.text(&mut out, 90),
        }
    }
    out
}

/// Milliseconds with three decimals (microsecond resolution) for tables.
pub fn ms(ns: i64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// Microseconds with three decimals (nanosecond resolution).
pub fn us(ns: i64) -> String {
    format!("{:.3}", ns as f64 / 1e3)
}

pub fn percent(part: i64, whole: i64) -> String {
    if whole == 0 {
        "0.00".into()
    } else {
        format!("{:.2}", part as f64 * 100.0 / whole as f64)
    }
}

pub fn ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.3}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aligned_text_and_quoted_csv() {
        let mut t = Table::new("k", "Kernels", &["name", "calls"]);
        t.row(vec!["void f<int, 2>(int)".into(), "12".into()]);
        t.row(vec!["g".into(), "3".into()]);
        let text = render(std::slice::from_ref(&t), ReportFormat::Table, None);
        assert_eq!(
            text,
            "Kernels\nname                 calls\n--------------------------\nvoid f<int, 2>(int)     12\ng                        3\n"
        );
        let csv = render(&[t], ReportFormat::Csv, Some("k"));
        assert_eq!(csv, "name,calls\n\"void f<int, 2>(int)\",12\ng,3\n");
    }
}
