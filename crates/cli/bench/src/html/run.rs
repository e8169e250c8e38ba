//! One bench run as report sections: the terminal's figures, latency by percentile and as
//! histograms (with SLO lines), per-request latency over run time, ITL, throughput and
//! concurrency over time, errors by reason, goodput. Every percentile comes from all values
//! through bench_serving's percentile function (`loupe_bench::metrics::percentile`), the one
//! the tables use.

use loupe_bench::RunOutcome;
use loupe_bench::metrics::{Dist, percentile};
use loupe_report::reduce::{self, CURVE_POINTS};
use loupe_report::svg::{self, Bar};
use loupe_report::{Axis, Block, Chart, Part, Rule, Scale, Section, Series, Style, Table};

/// What one run's charts may hold: a page of one run has the spec's budgets; a page of `n`
/// runs gives each a share, so a 16-run sweep stays under 1 MB whatever the runs' sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Above this many requests the over-time scatter is binned (R2).
    pub exact: usize,
    /// Requests above the run's p99 kept as points beside the bins (the slowest first).
    pub tail: usize,
    /// Points of each percentile curve (R1: always with the table's percentiles).
    pub curve_points: usize,
    /// Most time bins of the latency and ITL charts over the run.
    pub bins: usize,
    /// Most time bins of the throughput and concurrency charts.
    pub rate_bins: usize,
}

impl Budget {
    /// A page of one run.
    pub const ONE_RUN: Budget = Budget {
        exact: 20_000,
        tail: 5_000,
        curve_points: CURVE_POINTS,
        bins: 1_000,
        rate_bins: 2_000,
    };

    /// Each of `n` runs on one page (a sweep, a `loupe run`'s benchmarks): 5,000 requests
    /// drawn exactly and 200-point curves for a few runs, down to 500 requests, 100-point
    /// curves and 100 bins at 16 runs, and no lower than 200, 50 and 50 beyond.
    pub fn per_run(n: usize) -> Budget {
        if n <= 1 {
            return Budget::ONE_RUN;
        }
        let share = |total: usize, lo: usize, hi: usize| (total / n).clamp(lo, hi);
        Budget {
            exact: share(8_000, 200, 5_000),
            tail: share(8_000, 200, 5_000),
            curve_points: share(1_600, 50, 200),
            bins: share(1_600, 50, 1_000),
            rate_bins: share(1_600, 50, 2_000),
        }
    }
}

fn ms_axis(label: &str) -> Axis {
    Axis {
        label: label.into(),
        scale: Scale::Log,
    }
}

fn time_axis() -> Axis {
    Axis {
        label: "s since the run started".into(),
        scale: Scale::Linear,
    }
}

fn series(label: &str, style: Style) -> Series {
    Series {
        label: label.into(),
        style,
        ys: Vec::new(),
    }
}

fn f2(v: f64) -> String {
    format!("{v:.2}")
}

/// A latency metric of the run: its table figures and every value (ms).
struct Metric {
    name: &'static str,
    dist: Dist,
    sorted: Vec<f64>,
    slo: Option<f64>,
}

fn metrics(r: &RunOutcome) -> Vec<Metric> {
    let ok: Vec<_> = r.records.iter().filter(|x| x.ok).collect();
    let slo = |key: &str| {
        r.beyond
            .goodput
            .as_ref()
            .and_then(|g| g.slos_ms.iter().find(|(k, _)| k == key).map(|(_, v)| *v))
    };
    let mut itl = Vec::new();
    for x in &ok {
        x.token_itl(&mut itl);
    }
    let ms = |v: Vec<f64>| {
        let mut v: Vec<f64> = v.into_iter().map(|x| x * 1000.0).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (s, b) = (&r.summary, &r.beyond);
    vec![
        Metric {
            name: "TTFT",
            dist: s.ttft,
            sorted: ms(ok.iter().map(|x| x.ttft).collect()),
            slo: slo("ttft"),
        },
        Metric {
            name: "TPOT",
            dist: s.tpot,
            sorted: ms(ok.iter().filter_map(|x| x.tpot()).collect()),
            slo: slo("tpot"),
        },
        Metric {
            name: "ITL per token",
            dist: b.itl_token,
            sorted: ms(itl),
            slo: None,
        },
        Metric {
            name: "E2E",
            dist: s.e2e,
            sorted: ms(ok.iter().map(|x| x.latency).collect()),
            slo: slo("e2el"),
        },
        Metric {
            name: "E2E incl. client queue",
            dist: b.e2e_incl_queue,
            sorted: ms(ok.iter().map(|x| x.e2e_incl_queue()).collect()),
            slo: None,
        },
    ]
}

fn rules(m: &Metric) -> Vec<Rule> {
    m.slo
        .map(|y| Rule {
            label: format!("SLO {y} ms"),
            y,
        })
        .into_iter()
        .collect()
}

/// The percentile table: the terminal's figures (two decimals), the ones the curves hold.
fn percentile_table(ms: &[Metric]) -> Table {
    Table {
        caption: "Latency percentiles (ms), as the terminal prints them".into(),
        header: ["metric", "count", "mean", "p50", "p90", "p95", "p99", "max"]
            .map(String::from)
            .to_vec(),
        rows: ms
            .iter()
            .map(|m| {
                let d = &m.dist;
                vec![
                    m.name.to_string(),
                    m.sorted.len().to_string(),
                    f2(d.mean),
                    f2(d.median),
                    f2(d.p90),
                    f2(d.p95),
                    f2(d.p99),
                    f2(d.max),
                ]
            })
            .collect(),
    }
}

fn curve(m: &Metric, points: usize) -> Chart {
    let (xs, ys) = reduce::percentile_curve(&m.sorted, points, percentile);
    Chart {
        title: format!("{} by percentile", m.name),
        caption: format!(
            "all {} values; p50/p90/p95/p99 and the maximum (at 1 - 1/n) are the table's",
            m.sorted.len()
        ),
        x: Axis {
            label: "percentile".into(),
            scale: Scale::Nines,
        },
        y: ms_axis("ms"),
        xs,
        series: vec![Series {
            label: m.name.into(),
            style: Style::Line,
            ys: ys.into_iter().map(Some).collect(),
        }],
        rules: rules(m),
        ..Default::default()
    }
}

fn histogram(name: &str, unit: &str, values: &[f64], rules: Vec<Rule>) -> Chart {
    let h = reduce::log_histogram(values);
    let mut ys: Vec<Option<f64>> = h.counts.iter().map(|&c| Some(c as f64)).collect();
    // The step line holds each count until the next edge; the last edge closes it.
    ys.extend(h.counts.last().map(|&c| Some(c as f64)));
    let mut caption = format!(
        "{} values in {} log-spaced bins (10 a decade), exact counts",
        values.len(),
        h.counts.len()
    );
    if h.nonpositive > 0 {
        caption.push_str(&format!("; {} zero values not shown", h.nonpositive));
    }
    Chart {
        title: format!("{name} histogram"),
        caption,
        x: Axis {
            label: unit.into(),
            scale: Scale::Log,
        },
        y: Axis {
            label: "count".into(),
            scale: Scale::Linear,
        },
        xs: h.edges,
        series: vec![Series {
            label: name.into(),
            style: Style::Steps,
            ys,
        }],
        x_rules: rules,
        ..Default::default()
    }
}

/// The onset of degradation on the over-time chart (`reduce::onset`'s rule, on TTFT in the
/// chart's time bins) and, with a TTFT SLO, where its p90 crossed it: the vertical markers
/// and the sentence that states the rule and what it found.
fn onset(r: &RunOutcome, width: f64) -> (Vec<Rule>, String) {
    let pts: Vec<(f64, f64)> = r
        .records
        .iter()
        .filter(|x| x.ok)
        .map(|x| (x.start, x.ttft * 1000.0))
        .collect();
    let k = reduce::ONSET_FACTOR;
    let share = reduce::ONSET_BASELINE_SHARE * 100.0;
    let min = reduce::ONSET_MIN_REQUESTS;
    let rule = format!(
        "the start of the first of two consecutive {width} s bins (each of at least {min} \
         requests, by send time) whose p90 TTFT both exceed {k}x the p90 TTFT of the first \
         {share}% of the requests"
    );
    let mut marks = Vec::new();
    let mut text = match reduce::onset(&pts, width, percentile) {
        (None, _) => format!(
            "Onset of degradation (a heuristic: {rule}): too few completed requests to tell."
        ),
        (Some(base), None) => format!(
            "Onset of degradation (a heuristic: {rule}): none found; the baseline p90 TTFT is \
             {base:.2} ms, and no two consecutive bins after it were above {:.2} ms.",
            k * base
        ),
        (Some(base), Some(c)) => {
            marks.push(Rule {
                label: "onset (heuristic)".into(),
                y: c.at,
            });
            format!(
                "Onset of degradation (a heuristic: {rule}), marked on the chart: at {} s, \
                 where the bin's p90 TTFT is {:.2} ms against a baseline of {base:.2} ms \
                 (threshold {:.2} ms).",
                c.at, c.p90, c.threshold
            )
        }
    };
    let slo = r
        .beyond
        .goodput
        .as_ref()
        .and_then(|g| g.slos_ms.iter().find(|(k, _)| k == "ttft").map(|(_, v)| *v));
    if let Some(slo) = slo {
        match reduce::first_bin_above(&pts, width, f64::NEG_INFINITY, slo, percentile) {
            Some(c) => {
                marks.push(Rule {
                    label: "TTFT p90 > SLO".into(),
                    y: c.at,
                });
                text.push_str(&format!(
                    " The p90 TTFT crossed the {slo} ms SLO at {} s (the same two-bin rule; \
                     {:.2} ms there).",
                    c.at, c.p90
                ));
            }
            None => text.push_str(&format!(
                " The p90 TTFT never exceeded the {slo} ms SLO for two consecutive bins."
            )),
        }
    }
    (marks, text)
}

/// TTFT, TPOT and E2E against each request's start: exact up to `exact` requests, binned
/// beyond (min-max band, p50, p99 per bin, every point above the run's p99 and every
/// failure); the onset marker on it, and the sentence saying its rule.
fn over_time(r: &RunOutcome, budget: Budget) -> (Chart, String) {
    let base = Chart {
        title: "Latency of each request by when it was sent".into(),
        x: time_axis(),
        y: ms_axis("ms"),
        ..Default::default()
    };
    let failed: Vec<_> = r.records.iter().filter(|x| !x.ok).collect();
    let fail_part = Part {
        xs: failed.iter().map(|x| x.start).collect(),
        ys: vec![(
            3,
            failed
                .iter()
                .map(|x| Some((x.latency * 1000.0).max(1.0)))
                .collect(),
        )],
    };
    let ok: Vec<_> = r.records.iter().filter(|x| x.ok).collect();
    let n = r.records.len();
    let span = r.records.iter().map(|x| x.start).fold(0.0, f64::max);
    let width = reduce::bin_width(span, 1.0, budget.bins);
    if n <= budget.exact {
        let (x_rules, onset_text) = onset(r, width);
        let mut chart = Chart {
            caption: format!(
                "{} of {n} requests; {} failed shown as x (at their time to failure)",
                ok.len() + failed.len(),
                failed.len()
            ),
            series: vec![
                series("TTFT", Style::Points),
                series("TPOT", Style::Points),
                series("E2E", Style::Points),
                series("failed", Style::Cross),
                series(&format!("TTFT p99 per {width} s"), Style::Line),
            ],
            x_rules,
            ..base
        };
        let ttft_pts: Vec<(f64, f64)> = ok.iter().map(|x| (x.start, x.ttft * 1000.0)).collect();
        let bins = reduce::time_bins(&ttft_pts, width, percentile);
        chart = chart.aligned(vec![
            Part {
                xs: ok.iter().map(|x| x.start).collect(),
                ys: vec![
                    (0, ok.iter().map(|x| Some(x.ttft * 1000.0)).collect()),
                    (1, ok.iter().map(|x| x.tpot().map(|t| t * 1000.0)).collect()),
                    (2, ok.iter().map(|x| Some(x.latency * 1000.0)).collect()),
                ],
            },
            fail_part,
            Part {
                xs: bins.iter().map(|b| b.start + width / 2.0).collect(),
                ys: vec![(4, bins.iter().map(|b| Some(b.p99)).collect())],
            },
        ]);
        return (chart, onset_text);
    }
    let (x_rules, onset_text) = onset(r, width);
    let e2e: Vec<(f64, f64)> = ok.iter().map(|x| (x.start, x.latency * 1000.0)).collect();
    let bins = reduce::time_bins(&e2e, width, percentile);
    let p99 = r.summary.e2e.p99;
    let mut tail: Vec<(f64, f64)> = e2e.iter().copied().filter(|p| p.1 > p99).collect();
    tail.sort_by(|a, b| b.1.total_cmp(&a.1));
    let kept = tail.len().min(budget.tail);
    tail.truncate(kept);
    tail.sort_by(|a, b| a.0.total_cmp(&b.0));
    let chart = Chart {
        caption: format!(
            "E2E of {n} requests binned {width} s by start; band = min-max, lines = p50 and p99 \
             per bin; the {kept} slowest above the run's p99 ({p99:.2} ms) as dots; {} failed \
             as x",
            failed.len()
        ),
        series: vec![
            series("E2E max", Style::Band),
            series("E2E min", Style::Band),
            series("E2E p50", Style::Line),
            series("failed", Style::Cross),
            series("E2E p99", Style::Line),
            series("above p99", Style::Points),
        ],
        bands: vec![(0, 1)],
        x_rules,
        ..base
    };
    let centre = |b: &reduce::Bin| b.start + width / 2.0;
    let chart = chart.aligned(vec![
        Part {
            xs: bins.iter().map(centre).collect(),
            ys: vec![
                (0, bins.iter().map(|b| Some(b.max)).collect()),
                (1, bins.iter().map(|b| Some(b.min)).collect()),
                (2, bins.iter().map(|b| Some(b.p50)).collect()),
                (4, bins.iter().map(|b| Some(b.p99)).collect()),
            ],
        },
        fail_part,
        Part {
            xs: tail.iter().map(|p| p.0).collect(),
            ys: vec![(5, tail.iter().map(|p| Some(p.1)).collect())],
        },
    ]);
    (chart, onset_text)
}

/// The end of the run's last request (s since start), at least 1 s.
fn run_end(r: &RunOutcome) -> f64 {
    r.records
        .iter()
        .map(|x| x.start + x.latency)
        .fold(1.0, f64::max)
}

/// Per-token ITL in time bins: p50, p99 and max of the tokens that arrived in each.
fn itl_over_time(r: &RunOutcome, budget: Budget) -> Chart {
    let mut pts = Vec::new();
    for x in r.records.iter().filter(|x| x.ok) {
        let mut t = x.start + x.ttft;
        for (g, &k) in x.gaps.iter().zip(&x.gap_tokens) {
            t += g;
            if k > 0 {
                pts.extend(std::iter::repeat_n((t, g / k as f64 * 1000.0), k as usize));
            }
        }
    }
    let width = reduce::bin_width(run_end(r), 1.0, budget.bins);
    let bins = reduce::time_bins(&pts, width, percentile);
    let xs: Vec<f64> = bins.iter().map(|b| b.start + width / 2.0).collect();
    let col = |f: fn(&reduce::Bin) -> f64| bins.iter().map(|b| Some(f(b))).collect();
    Chart {
        title: "Per-token ITL over time".into(),
        caption: format!(
            "{} token gaps by arrival, {width} s bins, exact per bin",
            pts.len()
        ),
        x: time_axis(),
        y: ms_axis("ms"),
        xs,
        series: vec![
            Series {
                label: "p50".into(),
                style: Style::Line,
                ys: col(|b| b.p50),
            },
            Series {
                label: "p99".into(),
                style: Style::Line,
                ys: col(|b| b.p99),
            },
            Series {
                label: "max".into(),
                style: Style::Line,
                ys: col(|b| b.max),
            },
        ],
        ..Default::default()
    }
}

fn counts_per_s(times: impl Iterator<Item = (f64, f64)>, width: f64, bins: usize) -> Vec<f64> {
    let mut c = vec![0.0; bins];
    for (t, n) in times {
        if let Some(b) = c.get_mut((t / width).floor().max(0.0) as usize) {
            *b += n / width;
        }
    }
    c
}

/// Output tokens, completions and offered arrivals per second, and requests in flight and
/// waiting for a slot (per bin: the most at once and the time-weighted mean).
fn throughput_and_concurrency(r: &RunOutcome, budget: Budget) -> [Chart; 2] {
    let end = run_end(r);
    let width = reduce::bin_width(end, 1.0, budget.rate_bins);
    let bins = (end / width).floor() as usize + 1;
    let xs: Vec<f64> = (0..bins).map(|b| b as f64 * width).collect();
    let tokens = counts_per_s(
        r.records.iter().filter(|x| x.ok).flat_map(|x| {
            let mut t = x.start + x.ttft;
            let first = (t, f64::from(x.first_tokens.max(1)));
            std::iter::once(first).chain(x.gaps.iter().zip(&x.gap_tokens).map(move |(g, &k)| {
                t += g;
                (t, f64::from(k.max(1)))
            }))
        }),
        width,
        bins,
    );
    let done = counts_per_s(
        r.records
            .iter()
            .filter(|x| x.ok)
            .map(|x| (x.start + x.latency, 1.0)),
        width,
        bins,
    );
    let offered = counts_per_s(r.records.iter().map(|x| (x.intended, 1.0)), width, bins);
    let some = |v: Vec<f64>| v.into_iter().map(Some).collect();
    let thr = Chart {
        title: "Throughput over time".into(),
        caption: format!(
            "per {width} s bin; tokens counted when their chunk arrived (unknown counts as 1)"
        ),
        x: time_axis(),
        y: Axis {
            label: "per s".into(),
            scale: Scale::Linear,
        },
        xs: xs.clone(),
        series: vec![
            Series {
                label: "output tok/s".into(),
                style: Style::Steps,
                ys: some(tokens),
            },
            Series {
                label: "completions/s".into(),
                style: Style::Steps,
                ys: some(done),
            },
            Series {
                label: "offered arrivals/s".into(),
                style: Style::Steps,
                ys: some(offered),
            },
        ],
        ..Default::default()
    };
    let flight: Vec<(f64, f64)> = r
        .records
        .iter()
        .map(|x| (x.start, x.start + x.latency))
        .collect();
    let waiting: Vec<(f64, f64)> = r.records.iter().map(|x| (x.dispatched, x.start)).collect();
    let f = reduce::occupancy(&flight, width, bins);
    let w = reduce::occupancy(&waiting, width, bins);
    let conc = Chart {
        title: "Concurrency over time".into(),
        caption: format!("per {width} s bin: the most at once and the time-weighted mean"),
        x: time_axis(),
        y: Axis {
            label: "requests".into(),
            scale: Scale::Linear,
        },
        xs,
        series: vec![
            Series {
                label: "in flight (max)".into(),
                style: Style::Steps,
                ys: f.iter().map(|o| Some(f64::from(o.0))).collect(),
            },
            Series {
                label: "in flight (mean)".into(),
                style: Style::Steps,
                ys: f.iter().map(|o| Some(o.1)).collect(),
            },
            Series {
                label: "waiting for a slot (max)".into(),
                style: Style::Steps,
                ys: w.iter().map(|o| Some(f64::from(o.0))).collect(),
            },
        ],
        ..Default::default()
    };
    [thr, conc]
}

/// Failed requests grouped by their reason, most frequent first.
pub fn errors_by_reason(r: &RunOutcome) -> Vec<(String, usize)> {
    let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
    for x in r.records.iter().filter(|x| !x.ok) {
        *by.entry(x.error.as_str()).or_default() += 1;
    }
    let mut v: Vec<(String, usize)> = by.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// The sections of one run; ids start with `prefix`; `budget` bounds what its charts hold.
pub fn sections(r: &RunOutcome, prefix: &str, budget: Budget) -> Vec<Section> {
    let ms = metrics(r);
    let mut latency = vec![Block::Table(percentile_table(&ms))];
    latency.extend(
        ms.iter()
            .filter(|m| !m.sorted.is_empty())
            .map(|m| Block::Chart(curve(m, budget.curve_points))),
    );
    let mut hist: Vec<Block> = ms
        .iter()
        .filter(|m| !m.sorted.is_empty() && m.name != "E2E incl. client queue")
        .map(|m| Block::Chart(histogram(m.name, "ms", &m.sorted, rules(m))))
        .collect();
    let ok: Vec<_> = r.records.iter().filter(|x| x.ok).collect();
    let lens = |f: fn(&loupe_bench::record::RequestRecord) -> usize| -> Vec<f64> {
        ok.iter().map(|x| f(x) as f64).collect()
    };
    let images = r.summary.total_input_vision_tokens > 0;
    if !ok.is_empty() {
        hist.push(Block::Chart(histogram(
            if images {
                "Input length (text only)"
            } else {
                "Input length"
            },
            "tokens",
            &lens(|x| x.prompt_len),
            Vec::new(),
        )));
        // Image runs: the dataset counted the text only; the server's prompt tokens hold
        // each image's placeholder tokens too (how `count_images` counts vision tokens).
        if images {
            hist.push(Block::Chart(histogram(
                "Input length with image tokens (server-reported)",
                "tokens",
                &lens(|x| x.server_prompt_len.unwrap_or(x.prompt_len)),
                Vec::new(),
            )));
        }
        hist.push(Block::Chart(histogram(
            "Output length",
            "tokens",
            &lens(|x| x.output_len),
            Vec::new(),
        )));
    } else {
        hist.push(Block::Text(
            "No request completed: nothing to histogram.".into(),
        ));
    }
    let [thr, conc] = throughput_and_concurrency(r, budget);
    let (over, onset_text) = over_time(r, budget);
    let mut time = vec![Block::Chart(over), Block::Text(onset_text)];
    if !ok.is_empty() {
        time.push(Block::Chart(itl_over_time(r, budget)));
    }
    time.push(Block::Chart(thr));
    time.push(Block::Chart(conc));
    time.extend(super::server_metrics::blocks(r));
    let errors = errors_by_reason(r);
    let error_blocks = if errors.is_empty() {
        vec![Block::Text("No request failed.".into())]
    } else {
        let bars: Vec<Bar> = errors
            .iter()
            .map(|(reason, n)| Bar {
                label: reason.clone(),
                value: *n as f64,
                class: 4,
                tooltip: String::new(),
            })
            .collect();
        vec![
            Block::Svg(svg::bars(
                "Failed requests by reason",
                &format!(
                    "{} of {} requests failed",
                    r.summary.failed,
                    r.records.len()
                ),
                &svg::top_with_other(bars, 20, 3),
                &[],
                |v| format!("{v:.0}"),
            )),
            Block::Table(Table {
                caption: "Failed requests by reason".into(),
                header: vec!["reason".into(), "requests".into()],
                rows: errors
                    .iter()
                    .map(|(k, n)| vec![k.clone(), n.to_string()])
                    .collect(),
            }),
        ]
    };
    let mut summary = vec![Block::Pre(crate::table::run_report(r))];
    if let Some(g) = &r.beyond.goodput {
        summary.push(Block::Table(Table {
            caption: "Goodput: share of requests meeting each SLO".into(),
            header: vec!["SLO".into(), "ms".into(), "attainment %".into()],
            rows: g
                .slos_ms
                .iter()
                .zip(&g.by_metric)
                .map(|((k, v), (_, a))| vec![k.clone(), v.to_string(), f2(a * 100.0)])
                .chain([vec![
                    "all".into(),
                    String::new(),
                    f2(g.slo_attainment * 100.0),
                ]])
                .collect(),
        }));
    }
    for w in &r.info.warnings {
        summary.push(Block::Text(format!("Warning: {w}")));
    }
    let sec = |id: &str, title: &str, blocks: Vec<Block>| Section {
        id: format!("{prefix}{id}"),
        title: title.into(),
        blocks,
        ..Default::default()
    };
    vec![
        sec("figures", "Figures", summary),
        sec("latency", "Latency by percentile", latency),
        sec("histograms", "Histograms", hist),
        sec("over-time", "Over the run", time),
        sec("errors", "Errors", error_blocks),
    ]
}
