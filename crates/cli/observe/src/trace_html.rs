//! `loupe trace summary|ranks|diff --html` and the profile section of `loupe bench --html`:
//! loupe-trace's report structs as report figures. GPU time per rank stacked (TraceLens's
//! breakdown), top kernels and ops with an "other" bar, prefill vs decode, the step x rank
//! heatmap, stragglers, a diff as changed-ops bars; the terminal's tables beside them.

use loupe_report::svg::{self, Bar, Heatmap, Stack};
use loupe_report::{Axis, Block, Chart, Page, Part, Scale, Section, Series, Style, Table};
use loupe_trace::analyze::diff::{Change, DiffReport};
use loupe_trace::analyze::ranks::RanksReport;
use loupe_trace::analyze::summary::{OpStats, TraceSummary, stages};
use loupe_trace::analyze::timeline::Breakdown;
use loupe_trace::model::{GpuClass, kernel_class};
use loupe_trace::report::analyses::AttributionKey;
use loupe_trace::report::{self, ReportFormat, ReportOptions};

/// Bars before "other".
const TOP: usize = 20;
/// Heatmap cells at most; past it, adjacent steps are merged by their maximum.
const MAX_CELLS: usize = 8_192;

const CLASSES: [&str; 4] = ["computation", "communication", "memcpy", "other"];

fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

fn ms_text(v: f64) -> String {
    format!("{v:.3} ms")
}

fn terminal(text: String) -> Block {
    Block::Pre(text)
}

fn table_opts() -> ReportOptions {
    ReportOptions {
        format: ReportFormat::Table,
        top: TOP,
        table: None,
    }
}

fn breakdown_keys() -> Vec<String> {
    ["computation", "exposed comm", "exposed memcpy", "idle"]
        .map(String::from)
        .to_vec()
}

fn breakdown_stack(label: &str, b: &Breakdown) -> Stack {
    Stack {
        label: label.to_string(),
        parts: vec![
            ms(b.computation_ns),
            ms(b.exposed_comm_ns),
            ms(b.exposed_memcpy_ns),
            ms(b.idle_ns),
        ],
    }
}

fn class_of(name: &str) -> usize {
    match kernel_class(name) {
        GpuClass::Compute => 0,
        GpuClass::Comm => 1,
        GpuClass::Memcpy => 2,
    }
}

fn op_bars(ops: &[OpStats], classify: bool) -> Vec<Bar> {
    let bars = ops
        .iter()
        .map(|o| Bar {
            label: o.name.clone(),
            value: ms(o.total_ns),
            class: if classify { class_of(&o.name) } else { 0 },
            tooltip: format!(
                "{} calls, avg {:.3} ms, max {:.3} ms",
                o.calls,
                ms(o.avg_ns()),
                ms(o.max_ns)
            ),
        })
        .collect();
    svg::top_with_other(bars, TOP, 3)
}

/// The summary of one or more traces (ids prefixed by `prefix`).
pub fn summary_sections(summaries: &[TraceSummary], prefix: &str) -> Vec<Section> {
    let classes: Vec<String> = CLASSES.map(String::from).to_vec();
    let rows: Vec<Stack> = summaries
        .iter()
        .map(|s| breakdown_stack(&s.label, &s.timeline))
        .collect();
    let kernels =
        loupe_trace::analyze::summary::combine_ops(summaries.iter().map(|s| &s.kernels[..]));
    let ops = loupe_trace::analyze::summary::combine_ops(summaries.iter().map(|s| &s.ops[..]));
    let mut time = vec![Block::Svg(svg::stacked(
        "GPU time per rank",
        "TraceLens's breakdown: computation, communication and memcpy not hidden behind it, idle",
        &breakdown_keys(),
        &rows,
        ms_text,
    ))];
    let st = stages(summaries);
    if !st.is_empty() {
        time.push(Block::Table(Table {
            caption: "Prefill vs decode".into(),
            header: ["stage", "steps", "mean step ms", "busy %", "exposed comm %"]
                .map(String::from)
                .to_vec(),
            rows: st
                .iter()
                .map(|s| {
                    let span = s.span_ns.max(1) as f64;
                    vec![
                        s.stage.map_or("unstaged", |x| x.name()).to_string(),
                        s.steps.to_string(),
                        format!("{:.3}", ms(s.span_ns) / s.steps.max(1) as f64),
                        format!("{:.2}", 100.0 * s.gpu_busy_ns as f64 / span),
                        format!("{:.2}", 100.0 * s.exposed_comm_ns as f64 / span),
                    ]
                })
                .collect(),
        }));
    }
    if let Some(c) = step_chart(summaries) {
        time.push(Block::Chart(c));
    }
    let sec = |id: &str, title: &str, blocks: Vec<Block>| Section {
        id: format!("{prefix}{id}"),
        title: title.into(),
        blocks,
        ..Default::default()
    };
    vec![
        sec("gpu-time", "Where the GPU time goes", time),
        sec(
            "kernels",
            "Top kernels",
            vec![Block::Svg(svg::bars(
                "Top kernels by total time",
                &format!(
                    "{} of {} kernels, then other; colour = class",
                    TOP.min(kernels.len()),
                    kernels.len()
                ),
                &op_bars(&kernels, true),
                &classes,
                ms_text,
            ))],
        ),
        sec(
            "ops",
            "Top CPU ops",
            vec![Block::Svg(svg::bars(
                "Top ops by total time",
                &format!("{} of {} ops, then other", TOP.min(ops.len()), ops.len()),
                &op_bars(&ops, false),
                &[],
                ms_text,
            ))],
        ),
        sec(
            "tables",
            "Tables",
            vec![terminal(report::summary(summaries, &table_opts()))],
        ),
    ]
}

/// Step duration over time, one series per stage, from every trace's steps.
fn step_chart(summaries: &[TraceSummary]) -> Option<Chart> {
    let base = summaries
        .iter()
        .flat_map(|s| s.steps.iter().map(|st| st.start_ns))
        .min()?;
    let mut names: Vec<&'static str> = Vec::new();
    let mut parts = Vec::new();
    for s in summaries {
        for st in &s.steps {
            let name = st.stage.map_or("steps", |x| x.name());
            let i = names.iter().position(|n| *n == name).unwrap_or_else(|| {
                names.push(name);
                names.len() - 1
            });
            parts.push(Part {
                xs: vec![ms(st.start_ns - base) / 1000.0],
                ys: vec![(i, vec![Some(ms(st.span_ns))])],
            });
        }
    }
    let chart = Chart {
        title: "Step duration over time".into(),
        caption: "every step of every rank, by stage".into(),
        x: Axis {
            label: "s since the first step".into(),
            scale: Scale::Linear,
        },
        y: Axis {
            label: "ms".into(),
            scale: Scale::Log,
        },
        series: names
            .iter()
            .map(|n| Series {
                label: n.to_string(),
                style: Style::Points,
                ys: Vec::new(),
            })
            .collect(),
        ..Default::default()
    };
    Some(chart.aligned(parts))
}

/// Arrays longer than this in an embedded analysis are cut (their full length is kept beside
/// them as `<key>_total`): the page stays within its budget whatever the trace's size, and
/// `--format json` gives the whole analysis.
const RECORD_ROWS: usize = 100;

/// The analysis as JSON for the page's `loupe-record`, its long tables cut to their first
/// (largest) `RECORD_ROWS` rows.
fn record(json: String) -> serde_json::Value {
    fn trim(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                let long: Vec<(String, usize)> = m
                    .iter()
                    .filter_map(|(k, x)| {
                        x.as_array()
                            .filter(|a| a.len() > RECORD_ROWS)
                            .map(|a| (k.clone(), a.len()))
                    })
                    .collect();
                for (k, n) in long {
                    if let Some(serde_json::Value::Array(a)) = m.get_mut(&k) {
                        a.truncate(RECORD_ROWS);
                    }
                    m.insert(format!("{k}_total"), n.into());
                }
                m.values_mut().for_each(trim);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(trim),
            _ => {}
        }
    }
    let mut v = serde_json::from_str(&json).unwrap_or_default();
    trim(&mut v);
    v
}

/// `loupe trace summary --html`.
pub fn summary_page(summaries: &[TraceSummary], command: &str) -> Page {
    Page {
        title: format!("loupe trace summary: {} file(s)", summaries.len()),
        subtitle: command.into(),
        sections: summary_sections(summaries, ""),
        records: vec![record(report::json(summaries))],
    }
}

/// `summary --by op|module|layer --html`: GPU time by what launched it, bars and the table,
/// with the line on CUDA-graph replays.
pub fn attribution_section(summaries: &[TraceSummary], key: AttributionKey) -> Section {
    let mut by_name: std::collections::BTreeMap<&str, (i64, u64, u64)> = Default::default();
    for s in summaries {
        let rows = match key {
            AttributionKey::Op => &s.attribution.by_op,
            AttributionKey::Module => &s.attribution.by_module,
            AttributionKey::Layer => &s.attribution.by_layer,
        };
        for r in rows {
            let e = by_name.entry(&r.name).or_default();
            e.0 += r.gpu_ns;
            e.1 += r.launches;
            e.2 += r.kernels;
        }
    }
    let mut rows: Vec<(&str, (i64, u64, u64))> = by_name.into_iter().collect();
    rows.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    let n = rows.len();
    let bars: Vec<Bar> = rows
        .into_iter()
        .map(|(name, (gpu_ns, launches, kernels))| Bar {
            label: name.to_string(),
            value: ms(gpu_ns),
            class: 0,
            tooltip: format!("{launches} launches, {kernels} GPU operations"),
        })
        .collect();
    let mut blocks = vec![Block::Svg(svg::bars(
        "GPU time by what launched it (union of its kernels)",
        &format!("{} of {n}, then other", TOP.min(n)),
        &svg::top_with_other(bars, TOP, 3),
        &[],
        ms_text,
    ))];
    if let Some(g) = report::analyses::graph_replays(summaries) {
        blocks.push(Block::Text(g.title.clone()));
    }
    blocks.push(terminal(report::attribution(summaries, key, &table_opts())));
    Section {
        id: "attribution".into(),
        title: "GPU time by launching op, module or layer".into(),
        blocks,
        ..Default::default()
    }
}

/// `loupe trace ranks --html`.
pub fn ranks_page(r: &RanksReport, command: &str) -> Page {
    let rows: Vec<Stack> = r
        .ranks
        .iter()
        .map(|x| breakdown_stack(&x.label, &x.gpu))
        .collect();
    let ranks: Vec<String> = r.ranks.iter().map(|x| x.label.clone()).collect();
    let merge = r
        .steps
        .len()
        .saturating_mul(ranks.len().max(1))
        .div_ceil(MAX_CELLS)
        .max(1);
    let mut columns = Vec::new();
    let mut cells: Vec<Vec<Option<f64>>> = vec![Vec::new(); ranks.len()];
    let mut marked = Vec::new();
    for (c, group) in r.steps.chunks(merge).enumerate() {
        columns.push(if merge == 1 {
            group[0].step.clone()
        } else {
            format!("{}..{}", group[0].step, group[group.len() - 1].step)
        });
        for (k, row) in cells.iter_mut().enumerate() {
            row.push(
                group
                    .iter()
                    .filter_map(|s| s.per_rank.get(k).copied().flatten())
                    .map(|cell| ms(cell.computation_ns))
                    .reduce(f64::max),
            );
        }
        if merge == 1
            && let Some(l) = group[0].latecomer
        {
            marked.push((l, c));
        }
    }
    let caption = if merge == 1 {
        "compute ms per step and rank; outlined: the step's latecomer".to_string()
    } else {
        format!("compute ms; {merge} adjacent steps merged by their maximum per cell")
    };
    let heat = svg::heatmap(
        &Heatmap {
            title: "Compute per step and rank",
            caption: &caption,
            rows: &ranks,
            columns: &columns,
            cells: &cells,
            marked: &marked,
        },
        ms_text,
    );
    let imbalance = Chart {
        title: "Compute imbalance per step (max / mean over ranks)".into(),
        x: Axis {
            label: "step (position)".into(),
            scale: Scale::Linear,
        },
        y: Axis {
            label: "max / mean".into(),
            scale: Scale::Linear,
        },
        xs: (0..r.steps.len()).map(|i| i as f64).collect(),
        series: vec![Series {
            label: "imbalance".into(),
            style: Style::Line,
            ys: r.steps.iter().map(|s| s.compute_imbalance).collect(),
        }],
        ..Default::default()
    };
    let mut blocks = vec![
        Block::Svg(svg::stacked(
            "GPU time per rank",
            "computation / exposed comm / exposed memcpy / idle",
            &breakdown_keys(),
            &rows,
            ms_text,
        )),
        Block::Svg(heat),
    ];
    if !r.steps.is_empty() {
        blocks.push(Block::Chart(imbalance));
    }
    blocks.push(Block::Table(Table {
        caption: match &r.straggler {
            Some(s) => format!("Stragglers (most often last: {s})"),
            None => "Stragglers".into(),
        },
        header: vec![
            "rank".into(),
            "late steps".into(),
            "mean lateness ms".into(),
        ],
        rows: r
            .stragglers
            .iter()
            .map(|s| {
                vec![
                    s.label.clone(),
                    s.late_steps.to_string(),
                    format!("{:.3}", ms(s.mean_lateness_ns)),
                ]
            })
            .collect(),
    }));
    // The terminal's tables, but not its row per step: the heatmap and the imbalance chart
    // show the steps, and a long trace has thousands.
    for table in ["ranks", "stragglers", "key_ops"] {
        let opts = ReportOptions {
            table: Some(table.into()),
            ..table_opts()
        };
        blocks.push(terminal(report::ranks(r, &opts)));
    }
    Page {
        title: format!("loupe trace ranks: {} ranks", r.ranks.len()),
        subtitle: command.into(),
        sections: vec![Section {
            id: "ranks".into(),
            title: "Ranks".into(),
            blocks,
            ..Default::default()
        }],
        records: vec![record(report::json(r))],
    }
}

fn file_name(path: &str) -> &str {
    std::path::Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path)
}

/// `loupe trace diff --html`.
pub fn diff_page(d: &DiffReport, command: &str) -> Page {
    let mut changed: Vec<_> = d
        .rows
        .iter()
        .filter(|r| r.change != Change::Unchanged)
        .collect();
    changed.sort_by(|a, b| {
        b.delta_ns
            .abs()
            .cmp(&a.delta_ns.abs())
            .then_with(|| a.name.cmp(&b.name))
    });
    let bars: Vec<Bar> = changed
        .iter()
        .take(TOP)
        .map(|r| Bar {
            label: format!("[{}] {}", r.kind, r.name),
            value: ms(r.delta_ns),
            class: 0,
            tooltip: format!(
                "{}; {:.3} -> {:.3} ms, {} -> {} calls",
                r.change.name(),
                ms(r.total_a_ns),
                ms(r.total_b_ns),
                r.calls_a,
                r.calls_b
            ),
        })
        .collect();
    let blocks = vec![
        Block::Svg(svg::diverging(
            "Largest changes in total time (B - A)",
            &format!("{} of {} changed operations", bars.len(), changed.len()),
            &bars,
            ms_text,
        )),
        Block::Svg(svg::stacked(
            "GPU time, A vs B",
            "",
            &breakdown_keys(),
            &[
                breakdown_stack(&format!("A {}", file_name(&d.a)), &d.timeline_a),
                breakdown_stack(&format!("B {}", file_name(&d.b)), &d.timeline_b),
            ],
            ms_text,
        )),
        Block::Table(Table {
            caption: "Operations by change".into(),
            header: vec!["change".into(), "operations".into()],
            rows: d
                .counts
                .iter()
                .map(|(c, n)| vec![c.name().to_string(), n.to_string()])
                .collect(),
        }),
        terminal(report::diff(d, &table_opts())),
    ];
    Page {
        title: "loupe trace diff".into(),
        subtitle: command.into(),
        sections: vec![Section {
            id: "diff".into(),
            title: format!("A {} -> B {}", file_name(&d.a), file_name(&d.b)),
            blocks,
            ..Default::default()
        }],
        records: vec![record(report::json(d))],
    }
}

/// Render `page` and write it whole (temporary file, then rename).
pub fn write(path: &std::path::Path, page: &Page) -> loupe_trace::Result<()> {
    let bytes = loupe_report::render(page)
        .map_err(|e| loupe_trace::TraceError::Usage(format!("report page: {e}")))?;
    loupe_trace::export::write_atomic(path, |w| std::io::Write::write_all(w, &bytes)).map_err(
        |source| loupe_trace::TraceError::Write {
            path: path.to_path_buf(),
            source,
        },
    )
}
