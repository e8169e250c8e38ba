//! The tables each command prints, built from the analyses' results.

use crate::analyze::diff::DiffReport;
use crate::analyze::ranks::RanksReport;
use crate::analyze::summary::{OpStats, TraceSummary, combine_categories, combine_ops, stages};
use crate::analyze::timeline::Breakdown;
use crate::cli::ReportArgs;
use crate::import::rpd::TopRow;
use crate::report::{Table, ms, percent, ratio, us};

/// Rank columns shown in a terminal before the per-step table switches to min/mean/max.
const MAX_RANK_COLUMNS: usize = 16;

pub fn summary(summaries: &[TraceSummary], args: &ReportArgs) -> Vec<Table> {
    let mut tables = Vec::new();
    for s in summaries {
        tables.push(timeline(s, summaries.len() > 1));
    }
    let kernels = combine_ops(summaries.iter().map(|s| s.kernels.as_slice()));
    let ops = combine_ops(summaries.iter().map(|s| s.ops.as_slice()));
    tables.push(op_table(
        "kernels",
        "GPU kernels, memcpy and memset",
        &kernels,
        args.top,
    ));
    tables.push(op_table(
        "ops",
        "CPU ops (cpu_op, inclusive time)",
        &ops,
        args.top,
    ));

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
        t.row(vec![name, c.events.to_string(), ms(c.total_ns)]);
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
            st.stage.map_or("(unknown)", |s| s.name()).to_string(),
            st.steps.to_string(),
            ms(st.span_ns),
            ms(st.gpu_busy_ns),
            ms(st.computation_ns),
            ms(st.exposed_comm_ns),
            st.gpu_ops.to_string(),
        ]);
    }
    tables.push(t);
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
            row.push(s.file.clone());
        }
        row.push(name.to_string());
        row.push(format_ms_full(ns));
        row.push(if b.total_ns == 0 {
            "0.0".into()
        } else {
            python_float(ns as f64 * 100.0 / b.total_ns as f64)
        });
        t.row(row);
    }
    t
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

/// Milliseconds at full nanosecond precision, without trailing zeros (`9.75975`).
fn format_ms_full(ns: i64) -> String {
    let s = format!("{:.6}", ns as f64 / 1e6);
    let s = s.trim_end_matches('0');
    if s.ends_with('.') {
        format!("{s}0")
    } else {
        s.to_string()
    }
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
            o.name.clone(),
            o.calls.to_string(),
            ms(o.total_ns),
            us(o.avg_ns()),
            us(o.min_ns),
            us(o.max_ns),
            percent(o.total_ns, total),
        ]);
    }
    t
}

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
        ],
    );
    for row in &r.ranks {
        t.row(vec![
            row.label.clone(),
            row.events.to_string(),
            row.steps.to_string(),
            ms(row.mean_step_ns),
            ms(row.gpu.busy_ns),
            ms(row.gpu.computation_ns),
            ms(row.gpu.exposed_comm_ns),
            ms(row.gpu.total_comm_ns),
            ms(row.gpu.idle_ns),
        ]);
    }
    tables.push(t);

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
        "GPU computation time per step and rank (load imbalance = max / mean)",
        &[],
    );
    t.header = header;
    t.left = vec![0, 1];
    for s in &r.steps {
        let mut row = vec![s.step.clone(), s.stage.map_or("", |x| x.name()).to_string()];
        let values: Vec<Option<i64>> = s
            .per_rank
            .iter()
            .map(|c| c.map(|c| c.computation_ns))
            .collect();
        if wide {
            row.extend(values.iter().map(|v| v.map_or("-".into(), ms)));
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
            row.push(ms(min));
            row.push(ms(mean));
            row.push(ms(max.map_or(0, |m| m.1)));
            row.push(max.map_or("-".into(), |m| r.ranks[m.0].label.clone()));
        }
        row.push(ratio(s.compute_imbalance));
        row.push(ratio(s.span_imbalance));
        row.push(s.latecomer.map_or("-".into(), |i| r.ranks[i].label.clone()));
        row.push(s.lateness_ns.map_or("-".into(), us));
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
            s.label.clone(),
            s.late_steps.to_string(),
            us(s.mean_lateness_ns),
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
        let mut row = vec![k.name.clone()];
        if wide_ops {
            row.extend(k.total_ns.iter().map(|&v| ms(v)));
        }
        row.push(format!("{:.3}", k.imbalance));
        t.row(row);
    }
    tables.push(t);
    tables
}

pub fn diff(d: &DiffReport, args: &ReportArgs) -> Vec<Table> {
    let mut t = Table::new(
        "timeline",
        format!("GPU timeline: A = {}, B = {}", d.a, d.b),
        &["type", "A ms", "B ms", "B - A ms"],
    );
    for ((name, a), (_, b)) in d.timeline_a.rows().into_iter().zip(d.timeline_b.rows()) {
        t.row(vec![name.to_string(), ms(a), ms(b), ms(b - a)]);
    }
    let counts: Vec<String> = d
        .counts
        .iter()
        .map(|(c, n)| format!("{n} {}", c.name()))
        .collect();
    let shown = if args.top == 0 {
        d.rows.len()
    } else {
        args.top.min(d.rows.len())
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
            r.name.clone(),
            r.kind.to_string(),
            r.change.name().to_string(),
            r.calls_a.to_string(),
            r.calls_b.to_string(),
            ms(r.total_a_ns),
            ms(r.total_b_ns),
            ms(r.delta_ns),
        ]);
    }
    vec![t, ops]
}

pub fn top(rows: &[TopRow], args: &ReportArgs) -> Vec<Table> {
    let shown = if args.top == 0 {
        rows.len()
    } else {
        args.top.min(rows.len())
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
            r.name.clone(),
            r.calls.to_string(),
            r.total_us.to_string(),
            format!("{:.3}", r.avg_us),
            format!("{:.4}", r.percent),
        ]);
    }
    vec![t]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_precision_milliseconds() {
        assert_eq!(format_ms_full(9_759_750), "9.75975");
        assert_eq!(format_ms_full(0), "0.0");
        assert_eq!(format_ms_full(473_749_943), "473.749943");
        assert_eq!(python_float(100.0), "100.0");
        assert_eq!(python_float(2.5), "2.5");
    }
}
