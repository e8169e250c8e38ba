//! The tables of each analysis, built from its result: what `loupe trace summary|ranks|diff|top`
//! print, and what a report that embeds an analysis shows. `top` is the number of rows of each
//! operation table (0: all).

use super::analyses;
use super::table::{Cell, Table};
use crate::analyze::diff::DiffReport;
use crate::analyze::ranks::RanksReport;
use crate::analyze::summary::{OpStats, TraceSummary, combine_categories, combine_ops, stages};
use crate::analyze::timeline::Breakdown;
use crate::import::rpd::TopRow;

/// Rank columns shown in a terminal before the per-step table switches to min/mean/max.
const MAX_RANK_COLUMNS: usize = 16;

/// `summary`'s tables: the GPU timeline of each trace, then GPU kernels, CPU ops, categories
/// and stages over all of them.
pub fn summary(summaries: &[TraceSummary], top: usize) -> Vec<Table> {
    let mut tables = Vec::new();
    for s in summaries {
        // A CPU-only trace has no GPU timeline to show (its CPU view is `self_time`).
        if s.timeline.total_ns > 0 || s.kernels.is_empty() && s.host.self_time.is_empty() {
            tables.push(timeline(s, summaries.len() > 1));
        }
    }
    let kernels = combine_ops(summaries.iter().map(|s| s.kernels.as_slice()));
    let ops = combine_ops(summaries.iter().map(|s| s.ops.as_slice()));
    tables.push(op_table(
        "kernels",
        "GPU kernels, memcpy and memset",
        &kernels,
        top,
    ));
    tables.push(op_table(
        "ops",
        "CPU ops (cpu_op, inclusive time)",
        &ops,
        top,
    ));
    if summaries.iter().any(|s| !s.host.self_time.is_empty()) {
        tables.push(analyses::self_time(summaries, top));
    }

    let mut t = Table::new(
        "categories",
        "Categories",
        &["category", "events", "total ms (complete events)"],
    );
    for c in combine_categories(summaries) {
        let name = if c.category.is_empty() {
            "(none)".to_string()
        } else {
            c.category
        };
        t.row(vec![
            Cell::text(name),
            Cell::int(c.events),
            Cell::ms(c.total_ns),
        ]);
    }
    tables.push(t);

    let mut t = Table::new(
        "stages",
        "Stages (from step markers or SGLang's -EXTEND/-DECODE file names)",
        &[
            "stage",
            "steps",
            "step time ms",
            "GPU busy ms",
            "computation ms",
            "exposed comm ms",
            "GPU ops",
        ],
    );
    for st in stages(summaries) {
        t.row(vec![
            Cell::text(st.stage.map_or("(unknown)", |s| s.name())),
            Cell::int(st.steps),
            Cell::ms(st.span_ns),
            Cell::ms(st.gpu_busy_ns),
            Cell::ms(st.computation_ns),
            Cell::ms(st.exposed_comm_ns),
            Cell::int(st.gpu_ops),
        ]);
    }
    tables.push(t);
    tables.extend(analyses::hta(summaries));
    tables
}

/// TraceLens's `gpu_timeline` sheet (`type,time ms,percent`), with a file column when there
/// are several traces.
fn timeline(s: &TraceSummary, with_file: bool) -> Table {
    let title = format!(
        "GPU timeline: {} {} ({} events{})",
        s.label,
        s.file,
        s.events,
        if s.truncated { ", cut off" } else { "" }
    );
    let header: &[&str] = if with_file {
        &["file", "type", "time ms", "percent"]
    } else {
        &["type", "time ms", "percent"]
    };
    let mut t = Table::new("timeline", title, header);
    if with_file {
        t.left = vec![0, 1];
    }
    let b: &Breakdown = &s.timeline;
    for (name, ns) in b.rows() {
        let mut row = Vec::new();
        if with_file {
            row.push(Cell::text(&s.file));
        }
        row.push(Cell::text(name));
        row.push(Cell::ms_exact(ns));
        row.push(Cell::Percent {
            value: if b.total_ns == 0 {
                0.0
            } else {
                ns as f64 * 100.0 / b.total_ns as f64
            },
            csv_decimals: None,
        });
        t.row(row);
    }
    t
}

fn op_table(id: &'static str, what: &str, ops: &[OpStats], top: usize) -> Table {
    let total: i64 = ops.iter().map(|o| o.total_ns).sum();
    let shown = if top == 0 {
        ops.len()
    } else {
        top.min(ops.len())
    };
    let mut t = Table::new(
        id,
        format!("{what}: top {shown} of {} by total time", ops.len()),
        &[
            "name", "calls", "total ms", "avg us", "min us", "max us", "%",
        ],
    );
    for o in &ops[..shown] {
        t.row(vec![
            Cell::text(&o.name),
            Cell::int(o.calls),
            Cell::ms(o.total_ns),
            Cell::us(o.avg_ns()),
            Cell::us(o.min_ns),
            Cell::us(o.max_ns),
            Cell::share(o.total_ns, total),
        ]);
    }
    t
}

/// `ranks`' tables: per-rank totals, the per-step x per-rank table, stragglers and key kernels.
pub fn ranks(r: &RanksReport) -> Vec<Table> {
    let mut tables = Vec::new();
    let mut t = Table::new(
        "ranks",
        "Ranks",
        &[
            "rank",
            "events",
            "steps",
            "mean step ms",
            "GPU busy ms",
            "computation ms",
            "exposed comm ms",
            "total comm ms",
            "idle ms",
            "CPU compute ms",
            "collectives ms",
        ],
    );
    for row in &r.ranks {
        t.row(vec![
            Cell::text(&row.label),
            Cell::int(row.events),
            Cell::int(row.steps),
            Cell::ms(row.mean_step_ns),
            Cell::ms(row.gpu.busy_ns),
            Cell::ms(row.gpu.computation_ns),
            Cell::ms(row.gpu.exposed_comm_ns),
            Cell::ms(row.gpu.total_comm_ns),
            Cell::ms(row.gpu.idle_ns),
            Cell::ms(row.cpu_compute_ns),
            Cell::ms(row.collective_ns),
        ]);
    }
    tables.push(t);

    // CPU-only traces (gloo jobs, CPU backends) compare CPU compute instead.
    let on_cpu = r
        .steps
        .iter()
        .flat_map(|s| s.per_rank.iter().flatten())
        .all(|c| c.computation_ns == 0)
        && r.ranks.iter().any(|x| x.cpu_compute_ns > 0);
    let wide = r.ranks.len() <= MAX_RANK_COLUMNS;
    let mut header: Vec<String> = vec!["step".into(), "stage".into()];
    if wide {
        header.extend(r.ranks.iter().map(|x| format!("{} ms", x.label)));
    } else {
        header.extend(["min ms", "mean ms", "max ms", "max rank"].map(String::from));
    }
    header.extend(
        [
            "compute max/mean",
            "span max/mean",
            "last to comm",
            "late by us",
        ]
        .map(String::from),
    );
    let mut t = Table::new(
        "steps",
        if on_cpu {
            "CPU compute time per step and rank (outside collectives; load imbalance = max / mean)"
        } else {
            "GPU computation time per step and rank (load imbalance = max / mean)"
        },
        &[],
    );
    t.header = header;
    t.left = vec![0, 1];
    for s in &r.steps {
        let mut row = vec![
            Cell::text(&s.step),
            Cell::text(s.stage.map_or("", |x| x.name())),
        ];
        let values: Vec<Option<i64>> = s
            .per_rank
            .iter()
            .map(|c| {
                c.map(|c| {
                    if on_cpu {
                        c.cpu_compute_ns
                    } else {
                        c.computation_ns
                    }
                })
            })
            .collect();
        if wide {
            row.extend(values.iter().map(|v| v.map_or(Cell::text("-"), Cell::ms)));
        } else {
            let present: Vec<(usize, i64)> = values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| Some((i, (*v)?)))
                .collect();
            let min = present.iter().map(|p| p.1).min().unwrap_or(0);
            let max = present.iter().max_by_key(|p| p.1).copied();
            let mean = if present.is_empty() {
                0
            } else {
                present.iter().map(|p| p.1).sum::<i64>() / present.len() as i64
            };
            row.push(Cell::ms(min));
            row.push(Cell::ms(mean));
            row.push(Cell::ms(max.map_or(0, |m| m.1)));
            row.push(Cell::text(max.map_or("-", |m| r.ranks[m.0].label.as_str())));
        }
        row.push(Cell::ratio(if on_cpu {
            s.cpu_compute_imbalance
        } else {
            s.compute_imbalance
        }));
        row.push(Cell::ratio(s.span_imbalance));
        row.push(Cell::text(
            s.latecomer.map_or("-", |i| r.ranks[i].label.as_str()),
        ));
        row.push(s.lateness_ns.map_or(Cell::text("-"), Cell::us));
        t.row(row);
    }
    tables.push(t);

    let title = match &r.straggler {
        Some(l) => format!("Stragglers: {l} starts its last collective latest in most steps"),
        None => "Stragglers: no rank is the latecomer in most steps".to_string(),
    };
    let mut t = Table::new(
        "stragglers",
        title,
        &["rank", "steps last to comm", "mean lateness us"],
    );
    for s in &r.stragglers {
        t.row(vec![
            Cell::text(&s.label),
            Cell::int(s.late_steps),
            Cell::us(s.mean_lateness_ns),
        ]);
    }
    tables.push(t);

    let mut header: Vec<String> = vec!["kernel".into()];
    let wide_ops = r.ranks.len() <= MAX_RANK_COLUMNS;
    if wide_ops {
        header.extend(r.ranks.iter().map(|x| format!("{} ms", x.label)));
    }
    header.push("max/mean".into());
    let mut t = Table::new("key_ops", "Key GPU kernels per rank (total time)", &[]);
    t.header = header;
    for k in &r.key_ops {
        let mut row = vec![Cell::text(&k.name)];
        if wide_ops {
            row.extend(k.total_ns.iter().map(|&v| Cell::ms(v)));
        }
        row.push(Cell::ratio(Some(k.imbalance)));
        t.row(row);
    }
    tables.push(t);
    tables.extend(analyses::hta_ranks(&r.hta));
    tables
}

/// `diff`'s tables: the two GPU timelines side by side, then the changed operations.
pub fn diff(d: &DiffReport, top: usize) -> Vec<Table> {
    let mut t = Table::new(
        "timeline",
        format!("GPU timeline: A = {}, B = {}", d.a, d.b),
        &["type", "A ms", "B ms", "B - A ms"],
    );
    for ((name, a), (_, b)) in d.timeline_a.rows().into_iter().zip(d.timeline_b.rows()) {
        t.row(vec![
            Cell::text(name),
            Cell::ms(a),
            Cell::ms(b),
            Cell::ms(b - a),
        ]);
    }
    let counts: Vec<String> = d
        .counts
        .iter()
        .map(|(c, n)| format!("{n} {}", c.name()))
        .collect();
    let shown = if top == 0 {
        d.rows.len()
    } else {
        top.min(d.rows.len())
    };
    let mut ops = Table::new(
        "diff",
        format!(
            "Operations: {} (top {shown} changes by time)",
            counts.join(", ")
        ),
        &[
            "name",
            "kind",
            "change",
            "calls A",
            "calls B",
            "total A ms",
            "total B ms",
            "B - A ms",
        ],
    );
    ops.left = vec![0, 1, 2];
    for r in &d.rows[..shown] {
        ops.row(vec![
            Cell::text(&r.name),
            Cell::text(r.kind),
            Cell::text(r.change.name()),
            Cell::int(r.calls_a),
            Cell::int(r.calls_b),
            Cell::ms(r.total_a_ns),
            Cell::ms(r.total_b_ns),
            Cell::ms(r.delta_ns),
        ]);
    }
    let mut tables = vec![t, ops];
    if !d.by_op.is_empty() {
        tables.push(analyses::op_diff(d, top));
    }
    tables
}

/// `top`'s table: GPU operations by total time, RPD's columns.
pub fn top(rows: &[TopRow], top: usize) -> Vec<Table> {
    let shown = if top == 0 {
        rows.len()
    } else {
        top.min(rows.len())
    };
    let mut t = Table::new(
        "top",
        format!("GPU operations (top {shown} of {})", rows.len()),
        &[
            "Name",
            "TotalCalls",
            "TotalDuration_us",
            "Ave_us",
            "Percentage",
        ],
    );
    for r in &rows[..shown] {
        t.row(vec![
            Cell::text(&r.name),
            Cell::int(r.calls),
            Cell::int(r.total_us),
            Cell::Fixed {
                value: r.avg_us,
                decimals: 3,
            },
            Cell::Percent {
                value: r.percent,
                csv_decimals: Some(4),
            },
        ]);
    }
    vec![t]
}
