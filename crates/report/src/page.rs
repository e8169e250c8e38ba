//! What a page is made of, as plain values. Strings are text, never markup: the renderer
//! escapes them all. Numbers in tables are strings the front end formatted, so a table can
//! reproduce the terminal's figures digit for digit.

/// One report page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub title: String,
    /// One line under the title (what was measured, when, by which command).
    pub subtitle: String,
    pub sections: Vec<Section>,
    /// The caller's machine-readable records (e.g. the JSONL lines), embedded verbatim.
    pub records: Vec<serde_json::Value>,
}

/// A titled part of the page; `collapsed` ones are `<details>` closed until opened.
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// The anchor (`#id`); unique on the page.
    pub id: String,
    pub title: String,
    pub blocks: Vec<Block>,
    pub children: Vec<Section>,
    pub collapsed: bool,
}

#[derive(Debug, Clone)]
pub enum Block {
    /// A paragraph.
    Text(String),
    /// Preformatted text (a terminal table, as the terminal showed it).
    Pre(String),
    Table(Table),
    Chart(Chart),
    Svg(Svg),
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub caption: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// A numeric chart drawn by uPlot: one x column shared by every series (uPlot's aligned
/// data), `None` where a series has no point at that x.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    pub title: String,
    /// Says how the data was reduced, if it was (reduction rule R4).
    pub caption: String,
    pub x: Axis,
    pub y: Axis,
    pub xs: Vec<f64>,
    pub series: Vec<Series>,
    /// Horizontal reference lines (SLOs on a latency axis).
    pub rules: Vec<Rule>,
    /// Vertical reference lines (SLOs on a histogram's latency axis).
    pub x_rules: Vec<Rule>,
    /// Pairs of series indices (upper, lower) whose gap is filled: min-max bands.
    pub bands: Vec<(usize, usize)>,
}

#[derive(Debug, Clone, Default)]
pub struct Axis {
    pub label: String,
    pub scale: Scale,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scale {
    #[default]
    Linear,
    Log,
    /// Percentiles as "nines": x = -log10(1 - p), labelled 50%, 90%, 99%, 99.9%...
    Nines,
}

#[derive(Debug, Clone, Default)]
pub struct Series {
    pub label: String,
    pub style: Style,
    pub ys: Vec<Option<f64>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Style {
    #[default]
    Line,
    /// Dots, no line (a scatter).
    Points,
    /// A cross per point, no line (failures).
    Cross,
    /// A thin line bounding a band.
    Band,
    /// A step line (values hold until the next x).
    Steps,
}

/// A reference line at `y` (for `x_rules`, the line's x).
#[derive(Debug, Clone, Default)]
pub struct Rule {
    pub label: String,
    pub y: f64,
}

/// A figure drawn here as SVG markup (built by the svg module), with its caption.
#[derive(Debug, Clone, Default)]
pub struct Svg {
    pub title: String,
    pub caption: String,
    /// Markup from the svg module only: it escapes every string it writes.
    pub(crate) markup: String,
}

impl Svg {
    pub fn markup(&self) -> &str {
        &self.markup
    }
}

impl Page {
    /// Every chart on the page, in page order (sections, then their children).
    pub fn charts(&self) -> Vec<&Chart> {
        fn walk<'a>(s: &'a Section, out: &mut Vec<&'a Chart>) {
            for b in &s.blocks {
                if let Block::Chart(c) = b {
                    out.push(c);
                }
            }
            for c in &s.children {
                walk(c, out);
            }
        }
        let mut out = Vec::new();
        for s in &self.sections {
            walk(s, &mut out);
        }
        out
    }

    /// Every SVG figure on the page, in page order.
    pub fn figures(&self) -> usize {
        fn walk(s: &Section) -> usize {
            s.blocks
                .iter()
                .filter(|b| matches!(b, Block::Svg(_)))
                .count()
                + s.children.iter().map(walk).sum::<usize>()
        }
        self.sections.iter().map(walk).sum()
    }
}

/// Points of some of a chart's series at x values of their own, for [`Chart::aligned`].
#[derive(Debug, Clone, Default)]
pub struct Part {
    pub xs: Vec<f64>,
    /// (series index, a value per x of this part).
    pub ys: Vec<(usize, Vec<Option<f64>>)>,
}

impl Chart {
    /// Lay `parts` out on one x column sorted ascending (as uPlot wants): each part's points
    /// keep their own x, so points sharing an x are never merged. Fills `xs` and every
    /// series' `ys` (`series` must already hold the series, their `ys` empty).
    pub fn aligned(mut self, parts: Vec<Part>) -> Chart {
        let mut order: Vec<(f64, usize, usize)> = parts
            .iter()
            .enumerate()
            .flat_map(|(p, part)| part.xs.iter().enumerate().map(move |(i, &x)| (x, p, i)))
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        self.xs = order.iter().map(|o| o.0).collect();
        for s in &mut self.series {
            s.ys = vec![None; order.len()];
        }
        for (col, &(_, p, i)) in order.iter().enumerate() {
            for (s, ys) in &parts[p].ys {
                if let Some(series) = self.series.get_mut(*s) {
                    series.ys[col] = ys.get(i).copied().flatten();
                }
            }
        }
        self
    }
}
