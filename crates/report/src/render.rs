//! A [`Page`] into HTML bytes: the template (`assets/report.html.j2`, auto-escaped), the
//! charts' data as one JSON blob, uPlot and the glue script inline.

use std::collections::BTreeSet;

use minijinja::{Environment, Value as J, context};
use serde_json::{Map, Value, json};

use crate::embed::{number, script_json};
use crate::page::{Block, Chart, Page, Scale, Section, Style};

const TEMPLATE: &str = include_str!("../assets/report.html.j2");
const GLUE: &str = include_str!("../assets/report.js");
const STYLE: &str = include_str!("../assets/report.css");

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("chart {chart:?}: series {series:?} has {len} values for {xs} x values")]
    Misaligned {
        chart: String,
        series: String,
        len: usize,
        xs: usize,
    },
    #[error("chart {chart:?}: band ({0}, {1}) names a series it does not have", band.0, band.1)]
    Band { chart: String, band: (usize, usize) },
    #[error("section id {0:?} is used twice on the page")]
    DuplicateId(String),
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
}

/// The page as one self-contained HTML document. Same page, same bytes.
pub fn render(page: &Page) -> Result<Vec<u8>, RenderError> {
    let mut ids = BTreeSet::new();
    let mut charts = Vec::new();
    let sections = page
        .sections
        .iter()
        .map(|s| section(s, &mut ids, &mut charts))
        .collect::<Result<Vec<_>, _>>()?;
    let data = json!({ "charts": charts });
    let records = Value::Array(page.records.clone());
    let mut env = Environment::new();
    env.add_template("report.html.j2", TEMPLATE)?;
    let html = env.get_template("report.html.j2")?.render(context! {
        title => &page.title,
        subtitle => &page.subtitle,
        sections => sections,
        csp => J::from_safe_string(crate::CSP.to_string()),
        uplot_js => J::from_safe_string(crate::UPLOT_JS.to_string()),
        uplot_css => J::from_safe_string(crate::UPLOT_CSS.to_string()),
        uplot_license => J::from_safe_string(crate::UPLOT_LICENSE.replace("*/", "* /")),
        glue => J::from_safe_string(GLUE.to_string()),
        style => J::from_safe_string(STYLE.to_string()),
        data => J::from_safe_string(script_json(&data)),
        records => J::from_safe_string(script_json(&records)),
    })?;
    Ok(html.into_bytes())
}

fn section(
    s: &Section,
    ids: &mut BTreeSet<String>,
    charts: &mut Vec<Value>,
) -> Result<J, RenderError> {
    if !ids.insert(s.id.clone()) {
        return Err(RenderError::DuplicateId(s.id.clone()));
    }
    let mut blocks = Vec::new();
    for b in &s.blocks {
        blocks.push(match b {
            Block::Text(t) => context! { kind => "text", text => t },
            Block::Pre(t) => context! { kind => "pre", text => t },
            Block::Table(t) => context! {
                kind => "table", caption => &t.caption, header => &t.header, rows => &t.rows,
            },
            Block::Chart(c) => {
                charts.push(chart(c)?);
                context! {
                    kind => "chart", index => charts.len() - 1, title => &c.title,
                    caption => &c.caption,
                }
            }
            Block::Svg(f) => context! {
                kind => "svg", title => &f.title, caption => &f.caption,
                markup => J::from_safe_string(f.markup.clone()),
            },
        });
    }
    let children = s
        .children
        .iter()
        .map(|c| section(c, ids, charts))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(context! {
        id => &s.id, title => &s.title, blocks => blocks, children => children,
        collapsed => s.collapsed,
    })
}

/// A series' values, or, when most are gaps (failures, per-bin lines beside a scatter),
/// `{"at": [indices], "v": [values]}` that the page expands: a gap costs 5 bytes as `null,`.
fn column(values: Vec<Value>) -> Value {
    let filled = values.iter().filter(|v| !v.is_null()).count();
    if filled * 2 >= values.len() {
        return Value::Array(values);
    }
    let (at, v): (Vec<Value>, Vec<Value>) = values
        .into_iter()
        .enumerate()
        .filter(|(_, v)| !v.is_null())
        .map(|(i, v)| (Value::from(i), v))
        .unzip();
    json!({"at": at, "v": v})
}

fn scale_name(s: Scale) -> &'static str {
    match s {
        Scale::Linear => "linear",
        Scale::Log => "log",
        Scale::Nines => "nines",
    }
}

fn style_name(s: Style) -> &'static str {
    match s {
        Style::Line => "line",
        Style::Points => "points",
        Style::Cross => "cross",
        Style::Band => "band",
        Style::Steps => "steps",
    }
}

/// One chart's JSON: columnar data, numbers cut by `embed::number`, values a log axis cannot
/// show (zero, negative) as gaps.
fn chart(c: &Chart) -> Result<Value, RenderError> {
    for s in &c.series {
        if s.ys.len() != c.xs.len() {
            return Err(RenderError::Misaligned {
                chart: c.title.clone(),
                series: s.label.clone(),
                len: s.ys.len(),
                xs: c.xs.len(),
            });
        }
    }
    if let Some(&band) = c
        .bands
        .iter()
        .find(|(a, b)| *a >= c.series.len() || *b >= c.series.len())
    {
        return Err(RenderError::Band {
            chart: c.title.clone(),
            band,
        });
    }
    let log_y = c.y.scale == Scale::Log;
    let mut data = vec![Value::Array(c.xs.iter().map(|&x| number(x)).collect())];
    for s in &c.series {
        let values: Vec<Value> =
            s.ys.iter()
                .map(|y| match *y {
                    Some(y) if !(log_y && y <= 0.0) => number(y),
                    _ => Value::Null,
                })
                .collect();
        data.push(column(values));
    }
    let mut m = Map::new();
    m.insert("title".into(), json!(c.title));
    m.insert(
        "x".into(),
        json!({"label": c.x.label, "scale": scale_name(c.x.scale)}),
    );
    m.insert(
        "y".into(),
        json!({"label": c.y.label, "scale": scale_name(c.y.scale)}),
    );
    m.insert(
        "series".into(),
        Value::Array(
            c.series
                .iter()
                .map(|s| json!({"label": s.label, "style": style_name(s.style)}))
                .collect(),
        ),
    );
    m.insert("data".into(), Value::Array(data));
    m.insert(
        "rules".into(),
        Value::Array(
            c.rules
                .iter()
                .map(|r| json!({"label": r.label, "y": number(r.y)}))
                .collect(),
        ),
    );
    m.insert(
        "x_rules".into(),
        Value::Array(
            c.x_rules
                .iter()
                .map(|r| json!({"label": r.label, "x": number(r.y)}))
                .collect(),
        ),
    );
    m.insert("bands".into(), json!(c.bands));
    Ok(Value::Object(m))
}
