//! Categorical figures as SVG markup, drawn here so they need no script, print, and are the
//! same bytes for the same input: horizontal bars (top-k with "other"), stacked bars (time
//! per rank), a heatmap (step x rank), diverging bars (a diff). Every label is escaped and
//! carries a `<title>` tooltip with its full text.

use std::fmt::Write;

use crate::page::Svg;

const WIDTH: f64 = 960.0;
const LABEL_W: f64 = 330.0;
const VALUE_W: f64 = 110.0;
const ROW_H: f64 = 18.0;
const LABEL_CHARS: usize = 52;

/// Fill colours for classes and stack parts, in order.
pub const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#bab0ac", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
];

/// Text escaped for element content and attribute values alike.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // XML 1.0 forbids most control characters even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn short(s: &str) -> String {
    if s.chars().count() <= LABEL_CHARS {
        s.to_string()
    } else {
        let head: String = s.chars().take(LABEL_CHARS - 1).collect();
        format!("{head}…")
    }
}

/// One bar: `class` picks its colour from [`PALETTE`]; `tooltip` is added to its title.
#[derive(Debug, Clone, Default)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub class: usize,
    pub tooltip: String,
}

fn open(height: f64, title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" \
         width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"{}\">",
        escape(title)
    )
}

fn legend(out: &mut String, y: f64, names: &[String]) {
    let mut x = LABEL_W;
    for (i, n) in names.iter().enumerate() {
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            y - 9.0,
            PALETTE[i % PALETTE.len()],
            x + 14.0,
            y,
            escape(n)
        );
        x += 24.0 + 7.0 * n.chars().count() as f64;
    }
}

/// Horizontal bars, longest scale first as given, `value_text` printing each value;
/// `classes` names the colours used (shown as a legend when more than one).
pub fn bars(
    title: &str,
    caption: &str,
    items: &[Bar],
    classes: &[String],
    value_text: impl Fn(f64) -> String,
) -> Svg {
    let top = if classes.len() > 1 { 22.0 } else { 4.0 };
    let height = top + ROW_H * items.len() as f64 + 4.0;
    let mut o = open(height, title);
    if classes.len() > 1 {
        legend(&mut o, 14.0, classes);
    }
    let max = items.iter().map(|b| b.value).fold(0.0f64, f64::max);
    let span = WIDTH - LABEL_W - VALUE_W;
    for (i, b) in items.iter().enumerate() {
        let y = top + ROW_H * i as f64;
        let w = if max > 0.0 { span * b.value / max } else { 0.0 };
        let tip = if b.tooltip.is_empty() {
            format!("{}: {}", b.label, value_text(b.value))
        } else {
            format!("{}: {} ({})", b.label, value_text(b.value), b.tooltip)
        };
        let _ = write!(
            o,
            "<g><title>{}</title><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{LABEL_W}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{}\">{}</text></g>",
            escape(&tip),
            LABEL_W - 6.0,
            y + 13.0,
            escape(&short(&b.label)),
            y + 2.0,
            w,
            ROW_H - 4.0,
            PALETTE[b.class % PALETTE.len()],
            LABEL_W + w + 4.0,
            y + 13.0,
            escape(&value_text(b.value)),
        );
    }
    o.push_str("</svg>");
    Svg {
        title: title.to_string(),
        caption: caption.to_string(),
        markup: o,
    }
}

/// One stacked bar: `parts[i]` is the size of part `keys[i]`.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    pub label: String,
    pub parts: Vec<f64>,
}

/// Horizontal stacked bars on one scale (the longest total spans the width).
pub fn stacked(
    title: &str,
    caption: &str,
    keys: &[String],
    rows: &[Stack],
    value_text: impl Fn(f64) -> String,
) -> Svg {
    let top = 22.0;
    let height = top + ROW_H * rows.len() as f64 + 4.0;
    let mut o = open(height, title);
    legend(&mut o, 14.0, keys);
    let max = rows
        .iter()
        .map(|r| r.parts.iter().sum::<f64>())
        .fold(0.0f64, f64::max);
    let span = WIDTH - LABEL_W - VALUE_W;
    for (i, r) in rows.iter().enumerate() {
        let y = top + ROW_H * i as f64;
        let total: f64 = r.parts.iter().sum();
        let _ = write!(
            o,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\"><title>{}</title>{}</text>",
            LABEL_W - 6.0,
            y + 13.0,
            escape(&r.label),
            escape(&short(&r.label))
        );
        let mut x = LABEL_W;
        for (k, &v) in r.parts.iter().enumerate() {
            let w = if max > 0.0 { span * v / max } else { 0.0 };
            let share = if total > 0.0 { 100.0 * v / total } else { 0.0 };
            let _ = write!(
                o,
                "<rect x=\"{x:.1}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\">\
                 <title>{}: {} {} ({share:.2}%)</title></rect>",
                y + 2.0,
                ROW_H - 4.0,
                PALETTE[k % PALETTE.len()],
                escape(&r.label),
                escape(keys.get(k).map_or("", String::as_str)),
                escape(&value_text(v)),
            );
            x += w;
        }
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{}\">{}</text>",
            x + 4.0,
            y + 13.0,
            escape(&value_text(total))
        );
    }
    o.push_str("</svg>");
    Svg {
        title: title.to_string(),
        caption: caption.to_string(),
        markup: o,
    }
}

/// Signed bars around a centre line: growth to the right in red, shrinkage to the left in
/// blue; `tooltip` carries tags such as "added".
pub fn diverging(
    title: &str,
    caption: &str,
    items: &[Bar],
    value_text: impl Fn(f64) -> String,
) -> Svg {
    let height = 4.0 + ROW_H * items.len() as f64 + 4.0;
    let mut o = open(height, title);
    let max = items.iter().map(|b| b.value.abs()).fold(0.0f64, f64::max);
    let half = (WIDTH - LABEL_W - 2.0 * VALUE_W) / 2.0;
    let mid = LABEL_W + VALUE_W + half;
    let _ = write!(
        o,
        "<line x1=\"{mid}\" y1=\"0\" x2=\"{mid}\" y2=\"{height}\" stroke=\"#888\"/>"
    );
    for (i, b) in items.iter().enumerate() {
        let y = 4.0 + ROW_H * i as f64;
        let w = if max > 0.0 {
            half * b.value.abs() / max
        } else {
            0.0
        };
        let (x, fill, tx, anchor) = if b.value >= 0.0 {
            (mid, "#e15759", mid + w + 4.0, "start")
        } else {
            (mid - w, "#4e79a7", mid - w - 4.0, "end")
        };
        let tip = if b.tooltip.is_empty() {
            format!("{}: {}", b.label, value_text(b.value))
        } else {
            format!("{}: {} ({})", b.label, value_text(b.value), b.tooltip)
        };
        let _ = write!(
            o,
            "<g><title>{}</title><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{x:.1}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" fill=\"{fill}\"/>\
             <text x=\"{tx:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text></g>",
            escape(&tip),
            LABEL_W - 6.0,
            y + 13.0,
            escape(&short(&b.label)),
            y + 2.0,
            ROW_H - 4.0,
            y + 13.0,
            escape(&value_text(b.value)),
        );
    }
    o.push_str("</svg>");
    Svg {
        title: title.to_string(),
        caption: caption.to_string(),
        markup: o,
    }
}

/// A grid of cells (rows x columns), darker for larger values; `marked` cells get a black
/// outline (e.g. the step's latecomer rank). `None` cells stay blank.
pub struct Heatmap<'a> {
    pub title: &'a str,
    pub caption: &'a str,
    pub rows: &'a [String],
    pub columns: &'a [String],
    pub cells: &'a [Vec<Option<f64>>],
    pub marked: &'a [(usize, usize)],
}

pub fn heatmap(h: &Heatmap<'_>, value_text: impl Fn(f64) -> String) -> Svg {
    let label_w = 110.0;
    let cols = h.columns.len().max(1) as f64;
    let cell_w = ((WIDTH - label_w - 10.0) / cols).max(1.0);
    let cell_h = if h.rows.len() > 32 { 8.0 } else { 16.0 };
    let top = 16.0;
    let height = top + cell_h * h.rows.len() as f64 + 4.0;
    let mut o = open(height, h.title);
    let max = h
        .cells
        .iter()
        .flatten()
        .flatten()
        .copied()
        .fold(0.0f64, f64::max);
    let tick_every = (h.columns.len() / 12).max(1);
    for (c, name) in h.columns.iter().enumerate().step_by(tick_every) {
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"11\">{}</text>",
            label_w + cell_w * c as f64,
            escape(name)
        );
    }
    // Cells are shaded in SHADES steps and a row's neighbours of one shade are drawn as one
    // rectangle whose tooltip gives their columns and largest value: a row of thousands of
    // steps stays a few hundred elements.
    const SHADES: f64 = 16.0;
    let level = |v: f64| {
        if max > 0.0 {
            (v / max * SHADES).round() / SHADES
        } else {
            0.0
        }
    };
    for (r, name) in h.rows.iter().enumerate() {
        let y = top + cell_h * r as f64;
        let _ = write!(
            o,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            label_w - 6.0,
            y + cell_h - 3.0,
            escape(name)
        );
        let row = h.cells.get(r).map_or(&[][..], Vec::as_slice);
        let mut c = 0;
        while c < row.len() {
            let Some(v) = row[c] else {
                c += 1;
                continue;
            };
            let t = level(v);
            let (mut end, mut top_value) = (c + 1, v);
            while let Some(Some(w)) = row.get(end) {
                if level(*w) != t {
                    break;
                }
                top_value = top_value.max(*w);
                end += 1;
            }
            // White to dark blue.
            let shade = |from: f64, to: f64| (from + (to - from) * t).round() as u8;
            let fill = format!(
                "#{:02x}{:02x}{:02x}",
                shade(247.0, 8.0),
                shade(251.0, 48.0),
                shade(255.0, 107.0)
            );
            let col = |i: usize| escape(h.columns.get(i).map_or("", String::as_str));
            let span = if end - c == 1 {
                col(c)
            } else {
                format!("{}..{}", col(c), col(end - 1))
            };
            let _ = write!(
                o,
                "<rect x=\"{:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"{cell_h}\" fill=\"{fill}\">\
                 <title>{} {span}: {}{}</title></rect>",
                label_w + cell_w * c as f64,
                cell_w * (end - c) as f64,
                escape(name),
                if end - c == 1 { "" } else { "max " },
                escape(&value_text(top_value)),
            );
            c = end;
        }
    }
    for &(r, c) in h.marked {
        let _ = write!(
            o,
            "<rect x=\"{:.2}\" y=\"{}\" width=\"{:.2}\" height=\"{cell_h}\" fill=\"none\" \
             stroke=\"#000\" stroke-width=\"1\"/>",
            label_w + cell_w * c as f64,
            top + cell_h * r as f64,
            cell_w
        );
    }
    o.push_str("</svg>");
    Svg {
        title: h.title.to_string(),
        caption: h.caption.to_string(),
        markup: o,
    }
}

/// The first `k` of `items` (already sorted, largest first) and one "other" bar holding the
/// rest (R5), so the shares add up to the total.
pub fn top_with_other(mut items: Vec<Bar>, k: usize, other_class: usize) -> Vec<Bar> {
    if items.len() <= k {
        return items;
    }
    let rest: Vec<Bar> = items.split_off(k);
    items.push(Bar {
        label: format!("other ({} more)", rest.len()),
        value: rest.iter().map(|b| b.value).sum(),
        class: other_class,
        tooltip: String::new(),
    });
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_are_escaped_everywhere() {
        let name =
            "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>\"&'";
        let bar = Bar {
            label: name.into(),
            value: 2.0,
            ..Default::default()
        };
        let svg = bars("Top <kernels>", "", &[bar], &[], |v| format!("{v} ms"));
        assert!(!svg.markup.contains("<4") && !svg.markup.contains("<float>"));
        assert!(
            svg.markup
                .contains("FillFunctor&lt;float&gt;&gt;&quot;&amp;&#39;")
        );
        assert!(svg.markup.contains("aria-label=\"Top &lt;kernels&gt;\""));
        assert_eq!(escape("a\u{1}b"), "a\u{fffd}b");
    }

    #[test]
    fn other_holds_the_rest() {
        let items: Vec<Bar> = (0..5)
            .map(|i| Bar {
                label: format!("k{i}"),
                value: 10.0 - i as f64,
                ..Default::default()
            })
            .collect();
        let top = top_with_other(items, 2, 3);
        assert_eq!(top.len(), 3);
        assert_eq!(top[2].label, "other (3 more)");
        assert_eq!(top.iter().map(|b| b.value).sum::<f64>(), 40.0);
    }

    #[test]
    fn figures_are_deterministic_and_well_formed() {
        let rows = [Stack {
            label: "TP0".into(),
            parts: vec![3.0, 1.0],
        }];
        let keys = ["compute".to_string(), "idle".to_string()];
        let a = stacked("t", "", &keys, &rows, |v| format!("{v:.1}"));
        let b = stacked("t", "", &keys, &rows, |v| format!("{v:.1}"));
        assert_eq!(a.markup, b.markup);
        assert!(a.markup.contains("(75.00%)"), "{}", a.markup);
        assert_eq!(
            a.markup.matches("<svg").count(),
            a.markup.matches("</svg>").count()
        );
        let cells = vec![vec![Some(1.0), None], vec![Some(4.0), Some(2.0)]];
        let names = ["TP0".to_string(), "TP1".to_string()];
        let steps = ["1".to_string(), "2".to_string()];
        let h = heatmap(
            &Heatmap {
                title: "h",
                caption: "",
                rows: &names,
                columns: &steps,
                cells: &cells,
                marked: &[(1, 0)],
            },
            |v| format!("{v}"),
        );
        assert_eq!(
            h.markup.matches("<title>").count(),
            3,
            "one per run of a shade"
        );
        assert!(
            h.markup.contains("fill=\"#08306b\""),
            "the maximum is darkest"
        );
        // Neighbours of one shade are one rectangle: a long, even row stays small.
        let even = vec![vec![Some(5.0); 4000]];
        let cols: Vec<String> = (0..4000).map(|i| i.to_string()).collect();
        let h = heatmap(
            &Heatmap {
                title: "h",
                caption: "",
                rows: &names[..1],
                columns: &cols,
                cells: &even,
                marked: &[],
            },
            |v| format!("{v}"),
        );
        assert_eq!(h.markup.matches("<rect").count(), 1);
        assert!(h.markup.contains("<title>TP0 0..3999: max 5</title>"));
    }
}
