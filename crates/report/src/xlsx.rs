//! Tables as an .xlsx workbook with native charts over their cells (rust_xlsxwriter): a
//! sheet per table, header in bold, numbers as numbers; charts whose series point at ranges
//! of a sheet, so the workbook's charts follow edits of its cells.

use rust_xlsxwriter::{
    Chart, ChartDataLabel, ChartType, Format, FormatAlign, Workbook, Worksheet, XlsxError as Xe,
};

/// Excel's last row (1,048,576 rows, the header included).
pub const MAX_ROWS: usize = 1_048_575;

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Number(f64),
    Text(String),
}

#[derive(Debug, Clone, Default)]
pub struct Sheet {
    pub name: String,
    /// The first row, in bold; empty for a sheet of rows only.
    pub header: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// The first column in bold (a sheet of `name, value` rows).
    pub bold_first_column: bool,
    /// Number format (e.g. `#,##0.00`) for the numbers of every column from `.1` on.
    pub number_format: Option<(String, u16)>,
    /// Text cells of columns from this one on wrap (JSON blocks).
    pub wrap_from: Option<u16>,
    /// Runs of equal cells shown as one: (first data row, last data row, column).
    pub merges: Vec<(u32, u32, u16)>,
    pub charts: Vec<SheetChart>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChartKind {
    /// Points joined by straight lines, a numeric x axis (genai-bench's line plots).
    #[default]
    Lines,
    /// Columns stacked per category (genai-bench's error rates by status).
    StackedColumns,
}

/// A chart placed on its sheet with its top-left corner at (`row`, `col`).
#[derive(Debug, Clone, Default)]
pub struct SheetChart {
    pub kind: ChartKind,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_y: bool,
    pub series: Vec<ChartSeries>,
    pub row: u32,
    pub col: u16,
}

/// A series over data rows `first..=last` (0 = the first row after the header) of `sheet`:
/// x (or the categories) from `x_col`, y from `y_col`; each point labelled with its cell of
/// `label_col` when given.
#[derive(Debug, Clone, Default)]
pub struct ChartSeries {
    pub name: String,
    pub sheet: String,
    pub x_col: u16,
    pub y_col: u16,
    pub first: u32,
    pub last: u32,
    pub label_col: Option<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum XlsxError {
    #[error("sheet {sheet:?}: {rows} rows, more than Excel's {MAX_ROWS}")]
    TooManyRows { sheet: String, rows: usize },
    #[error("sheet {sheet:?}: {source}")]
    Writer { sheet: String, source: Xe },
}

fn write_sheet(ws: &mut Worksheet, s: &Sheet) -> Result<(), Xe> {
    let bold = Format::new().set_bold();
    let wrap = Format::new().set_text_wrap().set_align(FormatAlign::Top);
    let top = Format::new().set_align(FormatAlign::Top);
    ws.set_name(&s.name)?;
    for (c, h) in s.header.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, h, &bold)?;
    }
    let skip = u32::from(!s.header.is_empty());
    let numbers = s
        .number_format
        .as_ref()
        .map(|(f, from)| (Format::new().set_num_format(f), *from));
    for (r, row) in s.rows.iter().enumerate() {
        let r = r as u32 + skip;
        for (c, cell) in row.iter().enumerate() {
            let c = c as u16;
            match cell {
                Cell::Empty => {}
                Cell::Number(x) if x.is_finite() => match &numbers {
                    Some((f, from)) if c >= *from => {
                        ws.write_number_with_format(r, c, *x, f)?;
                    }
                    _ => {
                        ws.write_number(r, c, *x)?;
                    }
                },
                Cell::Number(_) => {
                    ws.write_string(r, c, "N/A")?;
                }
                Cell::Text(t) if c == 0 && s.bold_first_column => {
                    ws.write_string_with_format(r, c, t, &bold)?;
                }
                Cell::Text(t) if s.wrap_from.is_some_and(|w| c >= w) => {
                    ws.write_string_with_format(r, c, t, &wrap)?;
                }
                Cell::Text(t) => {
                    ws.write_string(r, c, t)?;
                }
            };
        }
    }
    for &(first, last, col) in &s.merges {
        if last <= first {
            continue;
        }
        // The merged range shows its first cell, written again over the blank merge.
        let (r, c) = (first + skip, col);
        ws.merge_range(r, c, last + skip, c, "", &top)?;
        match s
            .rows
            .get(first as usize)
            .and_then(|row| row.get(col as usize))
        {
            Some(Cell::Text(t)) => {
                ws.write_string_with_format(r, c, t, &top)?;
            }
            Some(Cell::Number(x)) if x.is_finite() => {
                ws.write_number_with_format(r, c, *x, &top)?;
            }
            _ => {}
        }
    }
    ws.set_autofit_max_width(300);
    ws.autofit();
    for ch in &s.charts {
        ws.insert_chart(ch.row, ch.col, &chart(ch, skip))?;
    }
    Ok(())
}

fn chart(ch: &SheetChart, skip: u32) -> Chart {
    let mut chart = Chart::new(match ch.kind {
        ChartKind::Lines => ChartType::ScatterStraightWithMarkers,
        ChartKind::StackedColumns => ChartType::ColumnStacked,
    });
    chart.title().set_name(&ch.title);
    chart.x_axis().set_name(&ch.x_label);
    chart.y_axis().set_name(&ch.y_label);
    if ch.log_y {
        chart.y_axis().set_log_base(10);
    }
    for se in &ch.series {
        let (a, b) = (se.first + skip, se.last + skip);
        let labels: Vec<ChartDataLabel> = se
            .label_col
            .map(|c| {
                (a..=b)
                    .map(|r| {
                        ChartDataLabel::new()
                            .set_value((se.sheet.as_str(), r, c))
                            .to_custom()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let s = chart
            .add_series()
            .set_name(&se.name)
            .set_categories((se.sheet.as_str(), a, se.x_col, b, se.x_col))
            .set_values((se.sheet.as_str(), a, se.y_col, b, se.y_col));
        if !labels.is_empty() {
            s.set_custom_data_labels(&labels);
        }
    }
    chart
}

/// The workbook's bytes.
pub fn render(sheets: &[Sheet]) -> Result<Vec<u8>, XlsxError> {
    let mut wb = Workbook::new();
    for s in sheets {
        if s.rows.len() > MAX_ROWS {
            return Err(XlsxError::TooManyRows {
                sheet: s.name.clone(),
                rows: s.rows.len(),
            });
        }
        write_sheet(wb.add_worksheet(), s).map_err(|source| XlsxError::Writer {
            sheet: s.name.clone(),
            source,
        })?;
    }
    wb.save_to_buffer().map_err(|source| XlsxError::Writer {
        sheet: String::new(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Every part of the workbook's zip, by name.
    fn parts(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        (0..z.len())
            .map(|i| {
                let mut f = z.by_index(i).unwrap();
                let mut text = String::new();
                f.read_to_string(&mut text).unwrap();
                (f.name().unwrap().to_string(), text)
            })
            .collect()
    }

    #[test]
    fn a_workbook_reads_back_with_its_sheets_cells_and_charts() {
        let data = Sheet {
            name: "Appendix".into(),
            header: vec!["Concurrency".into(), "TTFT (s)".into(), "label".into()],
            rows: vec![
                vec![
                    Cell::Number(1.0),
                    Cell::Number(0.01),
                    Cell::Text("c1".into()),
                ],
                vec![
                    Cell::Number(4.0),
                    Cell::Number(f64::NAN),
                    Cell::Text("c1".into()),
                ],
            ],
            merges: vec![(0, 1, 2)],
            number_format: Some(("#,##0.00".into(), 1)),
            charts: vec![
                SheetChart {
                    title: "TTFT".into(),
                    series: vec![ChartSeries {
                        name: "D(100,100)".into(),
                        sheet: "Appendix".into(),
                        x_col: 0,
                        y_col: 1,
                        first: 0,
                        last: 1,
                        label_col: Some(0),
                    }],
                    log_y: true,
                    row: 4,
                    col: 0,
                    ..Default::default()
                },
                SheetChart {
                    kind: ChartKind::StackedColumns,
                    title: "Errors".into(),
                    series: vec![ChartSeries {
                        name: "500".into(),
                        sheet: "Appendix".into(),
                        x_col: 2,
                        y_col: 1,
                        first: 0,
                        last: 1,
                        label_col: None,
                    }],
                    row: 20,
                    col: 0,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let meta = Sheet {
            name: "Experiment Metadata".into(),
            rows: vec![vec![
                Cell::Text("cmd".into()),
                Cell::Text("loupe bench".into()),
            ]],
            bold_first_column: true,
            ..Default::default()
        };
        let bytes = render(&[data, meta]).unwrap();
        let p = parts(&bytes);
        let book = &p["xl/workbook.xml"];
        assert!(
            book.contains(r#"name="Appendix""#) && book.contains(r#"name="Experiment Metadata""#)
        );
        let strings = &p["xl/sharedStrings.xml"];
        for s in ["Concurrency", "TTFT (s)", "N/A", "cmd", "loupe bench"] {
            assert!(strings.contains(&format!(">{s}<")), "{s}");
        }
        let sheet1 = &p["xl/worksheets/sheet1.xml"];
        assert!(sheet1.contains(r#"<mergeCell ref="C2:C3"/>"#), "{sheet1}");
        assert!(sheet1.contains("<v>0.01</v>"));
        let line = &p["xl/charts/chart1.xml"];
        assert!(line.contains("<c:scatterChart>") && line.contains("<c:logBase val=\"10\"/>"));
        assert!(line.contains("Appendix!$B$2:$B$3") && line.contains("Appendix!$A$2"));
        let bars = &p["xl/charts/chart2.xml"];
        assert!(bars.contains("<c:barChart>") && bars.contains(r#"<c:grouping val="stacked"/>"#));
        assert!(!p.contains_key("xl/charts/chart3.xml"));

        let too_many = Sheet {
            name: "Individual Request Metrics".into(),
            rows: vec![Vec::new(); MAX_ROWS + 1],
            ..Default::default()
        };
        let e = render(&[too_many]).unwrap_err().to_string();
        assert!(e.contains("1048576 rows"), "{e}");
    }
}
