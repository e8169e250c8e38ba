//! One report table and its renderings: a terminal table (comfy-table), Markdown (comfy-table's
//! Markdown style) and CSV (the `csv` crate). Cells are typed, so each rendering chooses its
//! own precision: terminal and Markdown tables round (two decimals for percentages, three for
//! milliseconds and microseconds); CSV keeps what scripts compare against (TraceLens's exact
//! `gpu_timeline` numbers, RPD's four-decimal percentages).

use std::fmt::Write as _;

use comfy_table::presets::ASCII_MARKDOWN;
use comfy_table::{CellAlignment, LineStyle, TableStyle};

/// Left-aligned cells longer than this are cut (with `…`) in terminal tables: kernel names run
/// to hundreds of characters.
pub const MAX_TERMINAL_CELL: usize = 90;

/// Columns two spaces apart, a dashed line under the header, nothing else.
const PLAIN: TableStyle = TableStyle::new().header_separator(LineStyle::none().fill('-'));

/// How [`render_tables`] writes tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TableFormat {
    /// Aligned columns for a terminal, each table under its title.
    #[default]
    Text,
    /// GitHub-flavoured Markdown tables, each under its title in bold.
    Markdown,
    /// CSV at full precision; several tables are each preceded by a `# <id>` line.
    Csv,
}

/// One table cell. The value is kept, not its text, so that each rendering rounds it its own
/// way.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Text, as is: names, labels, counts, `-` for a missing value.
    Text(String),
    /// A duration in nanoseconds, shown in milliseconds with three decimals. With `exact`, CSV
    /// writes every nanosecond without trailing zeros (`9.759749`, TraceLens's form).
    Ms { ns: i64, exact: bool },
    /// A duration in nanoseconds, shown in microseconds with three decimals.
    Us(i64),
    /// A percentage: two decimals in terminal and Markdown tables; in CSV `csv_decimals`
    /// decimals, or with `None` the shortest text that reads back as the same `f64` (with
    /// Python's `.0` on integral values, as TraceLens writes).
    Percent {
        value: f64,
        csv_decimals: Option<usize>,
    },
    /// A number with `decimals` decimals everywhere (imbalance ratios, RPD's `Ave_us`).
    Fixed { value: f64, decimals: usize },
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    /// A count or any other value shown by its `Display` form.
    pub fn int(n: impl std::fmt::Display) -> Cell {
        Cell::Text(n.to_string())
    }

    /// `ns` in milliseconds, three decimals everywhere.
    pub fn ms(ns: i64) -> Cell {
        Cell::Ms { ns, exact: false }
    }

    /// `ns` in milliseconds: three decimals in a terminal, every nanosecond in CSV.
    pub fn ms_exact(ns: i64) -> Cell {
        Cell::Ms { ns, exact: true }
    }

    pub fn us(ns: i64) -> Cell {
        Cell::Us(ns)
    }

    /// `part` as a percentage of `whole` (0 when `whole` is 0), two decimals everywhere.
    pub fn share(part: i64, whole: i64) -> Cell {
        Cell::Percent {
            value: if whole == 0 {
                0.0
            } else {
                part as f64 * 100.0 / whole as f64
            },
            csv_decimals: Some(2),
        }
    }

    /// A ratio with three decimals, `-` when there is none.
    pub fn ratio(v: Option<f64>) -> Cell {
        v.map_or_else(
            || Cell::text("-"),
            |value| Cell::Fixed { value, decimals: 3 },
        )
    }

    /// The cell as a terminal (or Markdown) table shows it.
    pub fn terminal(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Ms { ns, .. } => ms(*ns),
            Cell::Us(ns) => us(*ns),
            Cell::Percent { value, .. } => percent(*value),
            Cell::Fixed { value, decimals } => format!("{value:.decimals$}"),
        }
    }

    /// The cell as CSV writes it (before quoting).
    pub fn csv(&self) -> String {
        match self {
            Cell::Ms { ns, exact: true } => ms_full(*ns),
            Cell::Percent {
                value,
                csv_decimals: None,
            } => python_float(*value),
            Cell::Percent {
                value,
                csv_decimals: Some(d),
            } => format!("{value:.d$}"),
            other => other.terminal(),
        }
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_string())
    }
}

/// Milliseconds with three decimals (microsecond resolution): how tables and messages show a
/// duration.
pub fn ms(ns: i64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// Microseconds with three decimals (nanosecond resolution).
pub fn us(ns: i64) -> String {
    format!("{:.3}", ns as f64 / 1e3)
}

/// A percentage with two decimals.
pub fn percent(value: f64) -> String {
    format!("{value:.2}")
}

/// Milliseconds at full nanosecond precision, without trailing zeros (`9.75975`).
fn ms_full(ns: i64) -> String {
    let s = format!("{:.6}", ns as f64 / 1e6);
    let s = s.trim_end_matches('0');
    if s.ends_with('.') {
        format!("{s}0")
    } else {
        s.to_string()
    }
}

/// Shortest round-trip form with Python's `.0` on integral values, as TraceLens writes.
fn python_float(x: f64) -> String {
    let s = format!("{x}");
    if s.contains(['.', 'e', 'i', 'N']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// A titled table of typed cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// A stable identifier (`--table` selects by it).
    pub id: &'static str,
    /// The human title, printed above the table.
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Columns aligned left (text); the others align right (numbers).
    pub left: Vec<usize>,
}

impl Table {
    /// An empty table whose first column is text.
    pub fn new(id: &'static str, title: impl Into<String>, header: &[&str]) -> Table {
        Table {
            id,
            title: title.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            left: vec![0],
        }
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    /// The title, then the table for a terminal (`(none)` under the header when it has no
    /// rows); left-aligned cells longer than `max_cell` characters are cut.
    pub fn text(&self, max_cell: usize) -> String {
        let cut = |s: String, col: usize| -> String {
            if self.left.contains(&col) && s.chars().count() > max_cell {
                let mut t: String = s.chars().take(max_cell.saturating_sub(1)).collect();
                t.push('…');
                t
            } else {
                s
            }
        };
        let mut t = self.comfy(PLAIN, |i, c| cut(c.terminal(), i));
        for (i, col) in t.column_iter_mut().enumerate() {
            col.set_padding((if i == 0 { 0 } else { 2 }, 0));
        }
        let mut out = format!("{}\n{}\n", self.title, t.trim_fmt());
        if self.rows.is_empty() {
            out.push_str("(none)\n");
        }
        out
    }

    /// The title in bold, then a Markdown table (`|` in cells escaped, line breaks as spaces).
    pub fn markdown(&self) -> String {
        let t = self.comfy(ASCII_MARKDOWN, |_, c| {
            c.terminal().replace('|', "\\|").replace(['\r', '\n'], " ")
        });
        let mut out = format!("**{}**\n\n{}\n", self.title, t.trim_fmt());
        if self.rows.is_empty() {
            out.push_str("\n(none)\n");
        }
        out
    }

    /// The header and rows as CSV: fields with commas, quotes or line breaks are quoted.
    pub fn write_csv(&self, out: impl std::io::Write) -> csv::Result<()> {
        let mut w = csv::WriterBuilder::new().flexible(true).from_writer(out);
        w.write_record(&self.header)?;
        for r in &self.rows {
            w.write_record(r.iter().map(Cell::csv))?;
        }
        w.flush()?;
        Ok(())
    }

    /// [`Table::write_csv`] into a `String`.
    pub fn csv(&self) -> String {
        let mut out = Vec::new();
        self.write_csv(&mut out)
            .expect("writing CSV into memory cannot fail");
        String::from_utf8(out).expect("CSV of UTF-8 cells is UTF-8")
    }

    fn comfy(
        &self,
        style: TableStyle,
        cell: impl Fn(usize, &Cell) -> String,
    ) -> comfy_table::Table {
        let mut t = comfy_table::Table::new();
        t.load_style(style);
        t.set_header(self.header.clone());
        for r in &self.rows {
            t.add_row(
                r.iter()
                    .enumerate()
                    .map(|(i, c)| cell(i, c))
                    .collect::<Vec<_>>(),
            );
        }
        for (i, col) in t.column_iter_mut().enumerate() {
            col.set_cell_alignment(if self.left.contains(&i) {
                CellAlignment::Left
            } else {
                CellAlignment::Right
            });
        }
        t
    }
}

/// Renders `tables` in `format`, blank lines between them; `only` keeps the table with that id
/// (then CSV has no `# <id>` line).
pub fn render_tables(tables: &[Table], format: TableFormat, only: Option<&str>) -> String {
    let mut out = String::new();
    let chosen = tables.iter().filter(|t| only.is_none_or(|id| t.id == id));
    for (i, t) in chosen.enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match format {
            TableFormat::Text => out.push_str(&t.text(MAX_TERMINAL_CELL)),
            TableFormat::Markdown => out.push_str(&t.markdown()),
            TableFormat::Csv => {
                if only.is_none() {
                    let _ = writeln!(out, "# {}", t.id);
                }
                out.push_str(&t.csv());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernels() -> Table {
        let mut t = Table::new("k", "Kernels", &["name", "calls", "total ms", "%"]);
        t.row(vec![
            Cell::text("void f<int, 2>(int)"),
            Cell::int(12),
            Cell::ms_exact(9_759_749),
            Cell::Percent {
                value: 12.749490816227759,
                csv_decimals: None,
            },
        ]);
        t.row(vec![
            Cell::text("say \"hi\"\nthen go"),
            Cell::int(3),
            Cell::ms(1_500_000),
            Cell::share(1, 3),
        ]);
        t
    }

    #[test]
    fn terminal_tables_align_and_round() {
        let text = render_tables(&[kernels()], TableFormat::Text, None);
        assert_eq!(
            text,
            "Kernels\n\
             name                 calls  total ms      %\n\
             -------------------------------------------\n\
             void f<int, 2>(int)     12     9.760  12.75\n\
             say \"hi\"                 3     1.500  33.33\n\
             then go\n"
        );
    }

    #[test]
    fn long_names_are_cut_in_terminal_tables_only() {
        let mut t = Table::new("k", "K", &["name", "calls"]);
        t.row(vec![Cell::text("x".repeat(200)), Cell::int(1)]);
        let text = t.text(10);
        assert!(text.contains(&format!("{}…  ", "x".repeat(9))), "{text}");
        assert!(t.csv().contains(&"x".repeat(200)));
    }

    #[test]
    fn csv_keeps_full_precision_and_quotes() {
        let csv = render_tables(&[kernels()], TableFormat::Csv, Some("k"));
        assert_eq!(
            csv,
            "name,calls,total ms,%\n\
             \"void f<int, 2>(int)\",12,9.759749,12.749490816227759\n\
             \"say \"\"hi\"\"\nthen go\",3,1.500,33.33\n"
        );
        let all = render_tables(&[kernels(), kernels()], TableFormat::Csv, None);
        assert!(all.starts_with("# k\nname,calls"), "{all}");
        assert!(all.contains("33.33\n\n# k\nname,"), "{all}");
    }

    #[test]
    fn markdown_tables() {
        let mut t = Table::new("k", "Kernels", &["name", "%"]);
        t.row(vec![Cell::text("a|b"), Cell::share(1, 8)]);
        assert_eq!(
            render_tables(&[t], TableFormat::Markdown, None),
            "**Kernels**\n\n| name |     % |\n|------|-------|\n| a\\|b | 12.50 |\n"
        );
    }

    #[test]
    fn empty_tables_say_none() {
        let t = Table::new("s", "Stragglers", &["rank", "steps"]);
        assert_eq!(t.text(90), "Stragglers\nrank  steps\n-----------\n(none)\n");
    }

    #[test]
    fn number_forms() {
        assert_eq!(ms_full(9_759_750), "9.75975");
        assert_eq!(ms_full(0), "0.0");
        assert_eq!(ms_full(473_749_943), "473.749943");
        assert_eq!(python_float(100.0), "100.0");
        assert_eq!(python_float(2.5), "2.5");
        assert_eq!(Cell::share(0, 0).terminal(), "0.00");
        assert_eq!(Cell::ratio(None).csv(), "-");
        assert_eq!(Cell::ratio(Some(1.23456)).csv(), "1.235");
        let p = Cell::Percent {
            value: 0.0,
            csv_decimals: None,
        };
        assert_eq!((p.terminal(), p.csv()), ("0.00".into(), "0.0".into()));
    }
}
