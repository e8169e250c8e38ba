//! Tables of the host and HTA analyses in a summary: CPU self time, torch's key_averages by
//! input shape, and HTA's temporal breakdown, idle-time attribution, overlap, launch
//! statistics and kernel types (CSV columns named as HTA names them, times in µs).

use std::collections::HashMap;

use super::table::{Cell, Table};
use crate::analyze::attribution::{AttributionRow, CaptureMerge};
use crate::analyze::diff::DiffReport;
use crate::analyze::host::{SelfTimeRow, ShapeRow};
use crate::analyze::hta::{Distribution, kernel_type_shares};
use crate::analyze::ranks::RankHta;
use crate::analyze::summary::TraceSummary;

fn us_f(v: Option<f64>) -> Cell {
    v.map_or_else(
        || Cell::text("NaN"),
        |ns| Cell::Fixed {
            value: ns / 1000.0,
            decimals: 3,
        },
    )
}

fn pct(v: f64, decimals: usize) -> Cell {
    if v.is_nan() {
        Cell::text("NaN")
    } else {
        Cell::Fixed { value: v, decimals }
    }
}

/// Self time of host events over all traces, largest first.
pub fn self_time(summaries: &[TraceSummary], top: usize) -> Table {
    let mut map: HashMap<(crate::analyze::host::HostKind, &str), SelfTimeRow> = HashMap::new();
    for s in summaries {
        for r in &s.host.self_time {
            map.entry((r.kind, r.name.as_str()))
                .and_modify(|m| {
                    m.calls += r.calls;
                    m.self_ns += r.self_ns;
                    m.total_ns += r.total_ns;
                })
                .or_insert_with(|| r.clone());
        }
    }
    let mut rows: Vec<SelfTimeRow> = map.into_values().collect();
    rows.sort_by(|a, b| b.self_ns.cmp(&a.self_ns).then_with(|| a.name.cmp(&b.name)));
    let whole: i64 = rows.iter().map(|r| r.self_ns).sum();
    let shown = if top == 0 {
        rows.len()
    } else {
        top.min(rows.len())
    };
    let mut t = Table::new(
        "self_time",
        format!(
            "CPU self time (nested events counted once): top {shown} of {}",
            rows.len()
        ),
        &["kind", "name", "calls", "self ms", "total ms", "self %"],
    );
    t.left = vec![0, 1];
    for r in &rows[..shown] {
        t.row(vec![
            Cell::text(r.kind.name()),
            Cell::text(&r.name),
            Cell::int(r.calls),
            Cell::ms(r.self_ns),
            Cell::ms(r.total_ns),
            Cell::share(r.self_ns, whole),
        ]);
    }
    t
}

/// torch's `key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total")`:
/// its columns and order; percentages of the summed self time, as torch computes them.
pub fn by_shape(summaries: &[TraceSummary], top: usize) -> Table {
    let mut map: HashMap<(&str, &str), ShapeRow> = HashMap::new();
    for s in summaries {
        for r in &s.host.by_shape {
            map.entry((r.name.as_str(), r.input_dims.as_str()))
                .and_modify(|m| {
                    m.calls += r.calls;
                    m.self_ns += r.self_ns;
                    m.total_ns += r.total_ns;
                    m.first_ns = m.first_ns.min(r.first_ns);
                })
                .or_insert_with(|| r.clone());
        }
    }
    let mut rows: Vec<ShapeRow> = map.into_values().collect();
    rows.sort_by(|a, b| {
        b.self_ns
            .cmp(&a.self_ns)
            .then(a.first_ns.cmp(&b.first_ns))
            .then_with(|| a.name.cmp(&b.name))
    });
    let whole: i64 = rows.iter().map(|r| r.self_ns).sum();
    let shown = if top == 0 {
        rows.len()
    } else {
        top.min(rows.len())
    };
    let mut t = Table::new(
        "shapes",
        format!(
            "CPU ops by input shape (torch key_averages, group_by_input_shape): top {shown} of {}; self CPU time total {} ms",
            rows.len(),
            super::table::ms(whole)
        ),
        &[
            "Name",
            "Self CPU %",
            "Self CPU us",
            "CPU total %",
            "CPU total us",
            "CPU time avg us",
            "# of Calls",
            "Input Shapes",
        ],
    );
    t.left = vec![0, 7];
    for r in &rows[..shown] {
        t.row(vec![
            Cell::text(&r.name),
            Cell::share(r.self_ns, whole),
            Cell::us(r.self_ns),
            Cell::share(r.total_ns, whole),
            Cell::us(r.total_ns),
            Cell::us(r.total_ns / r.calls.max(1) as i64),
            Cell::int(r.calls),
            Cell::text(&r.input_dims),
        ]);
    }
    t
}

/// HTA's tables over the traces (one rank each).
pub fn hta(summaries: &[TraceSummary]) -> Vec<Table> {
    let ranks: Vec<RankHta> = summaries.iter().map(RankHta::of).collect();
    hta_ranks(&ranks)
}

/// HTA's tables over ranks.
pub fn hta_ranks(ranks: &[RankHta]) -> Vec<Table> {
    struct View<'a> {
        label: &'a str,
        hta: &'a crate::analyze::hta::HtaReport,
        bound: (usize, usize),
    }
    let mut tables = Vec::new();
    let with_gpu: Vec<View<'_>> = ranks
        .iter()
        .filter(|r| r.report.temporal.kernel_ns > 0)
        .map(|r| View {
            label: &r.label,
            hta: &r.report,
            bound: (r.launch_bound_steps, r.steps),
        })
        .collect();
    if with_gpu.is_empty() {
        return tables;
    }
    let mut t = Table::new(
        "hta_temporal",
        "HTA temporal breakdown (GPU; the last ProfilerStep left out when there are several)",
        &[
            "rank",
            "idle_time(us)",
            "compute_time(us)",
            "non_compute_time(us)",
            "kernel_time(us)",
            "idle_time_pctg",
            "compute_time_pctg",
            "non_compute_time_pctg",
        ],
    );
    for s in &with_gpu {
        let h = &s.hta.temporal;
        t.row(vec![
            Cell::text(s.label),
            Cell::us(h.idle_ns),
            Cell::us(h.compute_ns),
            Cell::us(h.non_compute_ns),
            Cell::us(h.kernel_ns),
            pct(h.idle_pctg.unwrap_or(f64::NAN), 2),
            pct(h.compute_pctg.unwrap_or(f64::NAN), 2),
            pct(h.non_compute_pctg.unwrap_or(f64::NAN), 2),
        ]);
    }
    tables.push(t);

    let mut t = Table::new(
        "hta_idle",
        "HTA idle time per stream: host_wait (launched after the GPU went idle), kernel_wait (gap < 30 us), other",
        &[
            "rank",
            "stream",
            "idle_category",
            "idle_time(us)",
            "idle_time_ratio",
        ],
    );
    for s in &with_gpu {
        for r in &s.hta.idle {
            t.row(vec![
                Cell::text(s.label),
                Cell::int(r.stream),
                Cell::text(r.category.name()),
                Cell::us(r.idle_ns),
                r.ratio.map_or(Cell::text("NaN"), |v| pct(v, 2)),
            ]);
        }
    }
    tables.push(t);

    let mut t = Table::new(
        "hta_overlap",
        "HTA comm/compute overlap (share of communication time under computation)",
        &["rank", "comp_comm_overlap_pctg"],
    );
    for s in &with_gpu {
        t.row(vec![
            Cell::text(s.label),
            s.hta
                .comm_comp_overlap_pctg
                .map_or(Cell::text("NaN"), |v| pct(v, 2)),
        ]);
    }
    tables.push(t);

    let mut header = vec![
        "rank",
        "launches",
        "short_gpu_kernels",
        "runtime_outliers_gt_50us",
        "launch_delay_outliers_gt_100us",
        "launch_bound_steps",
    ];
    let cols = ["cpu_duration", "gpu_duration", "launch_delay"];
    let stats = ["sum", "mean", "min", "p50", "p90", "max"];
    let names: Vec<String> = cols
        .iter()
        .flat_map(|c| stats.iter().map(move |s| format!("{c}_{s}(us)")))
        .collect();
    header.extend(names.iter().map(String::as_str));
    let mut t = Table::new(
        "hta_launches",
        "Kernel launch statistics (launch call vs kernel; short = kernel shorter than its launch)",
        &header,
    );
    for s in &with_gpu {
        let l = &s.hta.launches;
        let mut row = vec![
            Cell::text(s.label),
            Cell::int(l.launches),
            Cell::int(l.short_gpu_kernels),
            Cell::int(l.runtime_outliers),
            Cell::int(l.launch_delay_outliers),
            Cell::text(format!("{}/{}", s.bound.0, s.bound.1)),
        ];
        for d in [&l.cpu, &l.gpu, &l.delay] {
            row.extend(distribution(d));
        }
        t.row(row);
    }
    tables.push(t);

    let mut t = Table::new(
        "hta_kernel_types",
        "HTA kernel-type breakdown over all ranks (time by overlap of kernel types)",
        &["kernel_type", "sum(us)", "percentage"],
    );
    t.left = vec![0];
    for (kind, sum, share) in
        kernel_type_shares(with_gpu.iter().map(|s| s.hta.kernel_types.as_slice()))
    {
        t.row(vec![Cell::text(kind), Cell::int(sum), pct(share, 1)]);
    }
    tables.push(t);

    let mut t = Table::new(
        "hta_top_kernels",
        "HTA kernels per type and rank (the tail past 80% of the time, or past 10 names, as `others`)",
        &[
            "rank",
            "kernel_type",
            "name",
            "sum(us)",
            "max(us)",
            "min(us)",
            "mean(us)",
            "stddev(us)",
        ],
    );
    t.left = vec![0, 1, 2];
    for s in &with_gpu {
        for k in &s.hta.top_kernels {
            t.row(vec![
                Cell::text(s.label),
                Cell::text(k.kernel_type.name()),
                Cell::text(&k.name),
                Cell::us(k.sum_ns),
                Cell::us(k.max_ns),
                Cell::us(k.min_ns),
                us_f(Some(k.mean_ns)),
                us_f(Some(k.std_ns)),
            ]);
        }
    }
    tables.push(t);
    tables
}

fn distribution(d: &Distribution) -> [Cell; 6] {
    [
        us_f(d.sum_ns),
        us_f(d.mean_ns),
        us_f(d.min_ns),
        us_f(d.p50_ns),
        us_f(d.p90_ns),
        us_f(d.max_ns),
    ]
}

/// What GPU time is attributed to in `summary --by`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttributionKey {
    Op,
    Module,
    Layer,
}

/// GPU time by launching op, `nn.Module` path or layer, over all traces.
pub fn attribution(summaries: &[TraceSummary], key: AttributionKey, top: usize) -> Table {
    let mut map: HashMap<&str, AttributionRow> = HashMap::new();
    let mut unattributed = 0;
    for s in summaries {
        let a = &s.attribution;
        unattributed += a.unattributed;
        let rows = match key {
            AttributionKey::Op => &a.by_op,
            AttributionKey::Module => &a.by_module,
            AttributionKey::Layer => &a.by_layer,
        };
        for r in rows {
            map.entry(r.name.as_str())
                .and_modify(|m| {
                    m.launches += r.launches;
                    m.kernels += r.kernels;
                    m.gpu_ns += r.gpu_ns;
                    m.sum_ns += r.sum_ns;
                })
                .or_insert_with(|| r.clone());
        }
    }
    let mut rows: Vec<AttributionRow> = map.into_values().collect();
    rows.sort_by(|a, b| b.gpu_ns.cmp(&a.gpu_ns).then_with(|| a.name.cmp(&b.name)));
    let whole: i64 = rows.iter().map(|r| r.gpu_ns).sum();
    let shown = if top == 0 {
        rows.len()
    } else {
        top.min(rows.len())
    };
    let (id, what) = match key {
        AttributionKey::Op => ("by_op", "launching cpu_op"),
        AttributionKey::Module => ("by_module", "nn.Module path"),
        AttributionKey::Layer => ("by_layer", "layer"),
    };
    let graphs = graph_counts(summaries);
    let graph_note = if graphs.kernels > 0 {
        format!(
            "; {} of {} CUDA-graph kernels attributed through capture traces",
            graphs.captured, graphs.kernels
        )
    } else {
        String::new()
    };
    let mut t = Table::new(
        id,
        format!(
            "GPU time by {what} (union of its kernels): top {shown} of {}; {unattributed} GPU operations with no launch call in the trace{graph_note}",
            rows.len()
        ),
        &[what, "launches", "GPU ops", "GPU ms", "summed ms", "%"],
    );
    for r in &rows[..shown] {
        t.row(vec![
            Cell::text(&r.name),
            Cell::int(r.launches),
            Cell::int(r.kernels),
            Cell::ms(r.gpu_ns),
            Cell::ms(r.sum_ns),
            Cell::share(r.gpu_ns, whole),
        ]);
    }
    t
}

/// Graph-replay figures summed over traces.
#[derive(Default)]
struct GraphCounts {
    launches: u64,
    kernels: u64,
    captured: u64,
    unmatched: u64,
    merge: Option<CaptureMerge>,
}

fn graph_counts(summaries: &[TraceSummary]) -> GraphCounts {
    let mut g = GraphCounts::default();
    for s in summaries {
        let a = &s.attribution;
        g.launches += a.graph_launches;
        g.kernels += a.graph_kernels;
        g.captured += a.graph_kernels_captured;
        g.unmatched += a.graph_kernels_unmatched;
        if let Some(m) = &a.capture {
            let t = g.merge.get_or_insert_with(CaptureMerge::default);
            t.regions = t.regions.max(m.regions);
            t.exact += m.exact;
            t.greedy += m.greedy;
            t.grouped += m.grouped;
            t.unmatched_launches += m.unmatched_launches;
        }
    }
    g
}

/// CUDA-graph launches and how their kernels were attributed (beside `summary --by`); `None`
/// when no trace has a graph launch.
pub fn graph_replays(summaries: &[TraceSummary]) -> Option<Table> {
    let g = graph_counts(summaries);
    if g.launches == 0 {
        return None;
    }
    let how = match &g.merge {
        None => {
            "no capture traces given: every graph kernel is on its graph launch's op".to_string()
        }
        Some(_) if g.captured == 0 => {
            "no graph launch matched a capture: numbers as without capture traces".to_string()
        }
        Some(_) => "the rest stay on their graph launch's op".to_string(),
    };
    let mut t = Table::new(
        "graph_replays",
        format!(
            "CUDA-graph replays: {} of {} graph kernels attributed through capture traces, {} not ({how})",
            g.captured, g.kernels, g.unmatched
        ),
        &[
            "graph launches",
            "graph kernels",
            "via captures",
            "not via captures",
            "capture regions",
            "exact",
            "greedy",
            "grouped",
            "unmatched launches",
        ],
    );
    let m = g.merge.unwrap_or_default();
    t.row(vec![
        Cell::int(g.launches),
        Cell::int(g.kernels),
        Cell::int(g.captured),
        Cell::int(g.unmatched),
        Cell::int(m.regions),
        Cell::int(m.exact),
        Cell::int(m.greedy),
        Cell::int(m.grouped),
        Cell::int(m.unmatched_launches),
    ]);
    Some(t)
}

/// `diff`'s pairing by launching op and position in the step.
pub fn op_diff(d: &DiffReport, top: usize) -> Table {
    let shown = if top == 0 {
        d.by_op.len()
    } else {
        top.min(d.by_op.len())
    };
    let mut t = Table::new(
        "diff_ops",
        format!(
            "GPU time by launching op, paired by position in the step (median over steps): top {shown} of {}",
            d.by_op.len()
        ),
        &[
            "op",
            "change",
            "positions A",
            "positions B",
            "paired",
            "median A ms",
            "median B ms",
            "B - A ms",
            "p90 A ms",
            "p90 B ms",
        ],
    );
    t.left = vec![0, 1];
    let ms = |ns: f64| Cell::ms(ns.round() as i64);
    for r in &d.by_op[..shown] {
        t.row(vec![
            Cell::text(&r.op),
            Cell::text(r.change.name()),
            Cell::int(r.positions_a),
            Cell::int(r.positions_b),
            Cell::int(r.matched),
            ms(r.median_a_ns),
            ms(r.median_b_ns),
            ms(r.delta_ns),
            ms(r.p90_a_ns),
            ms(r.p90_b_ns),
        ]);
    }
    t
}
