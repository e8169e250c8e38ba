//! Tables as an .xlsx workbook with native charts over their cells (rust_xlsxwriter): a
//! sheet per table, header in bold, numbers as numbers; scatter charts whose series point at
//! ranges of a sheet, so the workbook's charts follow edits of its cells.

use rust_xlsxwriter::{Chart, ChartType, Format, Workbook};

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
    pub header: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    pub charts: Vec<SheetChart>,
}

/// A scatter chart placed on its sheet with its top-left corner at (`row`, `col`).
#[derive(Debug, Clone, Default)]
pub struct SheetChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_y: bool,
    pub series: Vec<ChartSeries>,
    pub row: u32,
    pub col: u16,
}

/// A series over data rows `first..=last` (0 = the first row after the header) of `sheet`.
#[derive(Debug, Clone, Default)]
pub struct ChartSeries {
    pub name: String,
    pub sheet: String,
    pub x_col: u16,
    pub y_col: u16,
    pub first: u32,
    pub last: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum XlsxError {
    #[error("sheet {sheet:?}: {rows} rows, more than Excel's {MAX_ROWS}")]
    TooManyRows { sheet: String, rows: usize },
    #[error("sheet {sheet:?}: {source}")]
    Writer {
        sheet: String,
        source: rust_xlsxwriter::XlsxError,
    },
}

/// The workbook's bytes.
pub fn render(sheets: &[Sheet]) -> Result<Vec<u8>, XlsxError> {
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    for s in sheets {
        let err = |source| XlsxError::Writer {
            sheet: s.name.clone(),
            source,
        };
        if s.rows.len() > MAX_ROWS {
            return Err(XlsxError::TooManyRows {
                sheet: s.name.clone(),
                rows: s.rows.len(),
            });
        }
        let ws = wb.add_worksheet();
        ws.set_name(&s.name).map_err(err)?;
        for (c, h) in s.header.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, h, &bold)
                .map_err(err)?;
        }
        for (r, row) in s.rows.iter().enumerate() {
            let r = r as u32 + 1;
            for (c, cell) in row.iter().enumerate() {
                let c = c as u16;
                match cell {
                    Cell::Empty => {}
                    Cell::Number(x) if x.is_finite() => {
                        ws.write_number(r, c, *x).map_err(err)?;
                    }
                    Cell::Number(_) => {
                        ws.write_string(r, c, "N/A").map_err(err)?;
                    }
                    Cell::Text(t) => {
                        ws.write_string(r, c, t).map_err(err)?;
                    }
                };
            }
        }
        for ch in &s.charts {
            let mut chart = Chart::new(ChartType::ScatterStraightWithMarkers);
            chart.title().set_name(&ch.title);
            chart.x_axis().set_name(&ch.x_label);
            chart.y_axis().set_name(&ch.y_label);
            if ch.log_y {
                chart.y_axis().set_log_base(10);
            }
            for se in &ch.series {
                chart
                    .add_series()
                    .set_name(&se.name)
                    .set_categories((
                        se.sheet.as_str(),
                        se.first + 1,
                        se.x_col,
                        se.last + 1,
                        se.x_col,
                    ))
                    .set_values((
                        se.sheet.as_str(),
                        se.first + 1,
                        se.y_col,
                        se.last + 1,
                        se.y_col,
                    ));
            }
            ws.insert_chart(ch.row, ch.col, &chart).map_err(err)?;
        }
    }
    wb.save_to_buffer().map_err(|source| XlsxError::Writer {
        sheet: String::new(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workbook_is_a_zip_with_its_sheets_and_chart() {
        let data = Sheet {
            name: "Appendix".into(),
            header: vec!["Concurrency".into(), "TTFT (s)".into()],
            rows: vec![
                vec![Cell::Number(1.0), Cell::Number(0.01)],
                vec![Cell::Number(4.0), Cell::Number(f64::NAN)],
            ],
            charts: vec![SheetChart {
                title: "TTFT".into(),
                series: vec![ChartSeries {
                    name: "D(100,100)".into(),
                    sheet: "Appendix".into(),
                    x_col: 0,
                    y_col: 1,
                    first: 0,
                    last: 1,
                }],
                log_y: true,
                row: 4,
                col: 0,
                ..Default::default()
            }],
        };
        let bytes = render(&[data]).unwrap();
        assert_eq!(&bytes[..2], b"PK");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("xl/charts/chart1.xml"), "one native chart");
        assert!(text.contains("xl/worksheets/sheet1.xml"));
        let too_many = Sheet {
            name: "Individual Request Metrics".into(),
            rows: vec![Vec::new(); MAX_ROWS + 1],
            ..Default::default()
        };
        let e = render(&[too_many]).unwrap_err().to_string();
        assert!(e.contains("1048576 rows"), "{e}");
    }
}
