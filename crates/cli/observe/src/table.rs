//! The one terminal-table renderer of the command layer (comfy-table): bench's report
//! tables, `loupe watch --once` and the other commands' tables all draw through `grid`.

use comfy_table::{Cell, CellAlignment, ColumnConstraint, Table, TableStyle, Width, presets};

/// How a table is drawn: its style, and each column's least width with no padding (None: as
/// wide as its content, padded by a space each side).
pub struct Layout {
    pub style: TableStyle,
    pub widths: Option<(u16, u16)>,
}

/// The one table renderer: the first column left-aligned, the others right-aligned.
pub fn grid(layout: Layout, header: Vec<String>, rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(layout.style);
    let columns = header.len();
    t.set_header(header.into_iter().map(Cell::new));
    for r in rows {
        t.add_row(r.into_iter().map(Cell::new));
    }
    for i in 0..columns {
        let c = t.column_mut(i).expect("a column per header cell");
        if i > 0 {
            c.set_cell_alignment(CellAlignment::Right);
        }
        if let Some((first, rest)) = layout.widths {
            c.set_padding((0, 0));
            let w = if i == 0 { first } else { rest };
            c.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(w)));
        }
    }
    t.to_string()
}

/// Other commands' terminal tables (`loupe watch --once`), through the same renderer.
pub fn terminal_table(header: Vec<String>, rows: Vec<Vec<String>>) -> String {
    let layout = Layout {
        style: presets::UTF8_FULL_CONDENSED,
        widths: None,
    };
    grid(layout, header, rows)
}
