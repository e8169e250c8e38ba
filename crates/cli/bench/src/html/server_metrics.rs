//! The server's own gauges during a run (`--scrape-metrics`): running and queued requests and
//! KV-cache usage, one line per label set (per DP rank where the server labels them), on the
//! run's clock. Every scrape is drawn: a run scraped every 100 ms for an hour is 36,000
//! points a line, which uPlot draws without thinning.

use loupe_bench::RunOutcome;
use loupe_bench::scrape::{self, Scraped};
use loupe_report::{Axis, Block, Chart, Scale, Series, Style};

/// The blocks of the "Over the run" section that show the server's side.
pub fn blocks(r: &RunOutcome) -> Vec<Block> {
    let Some(sm) = &r.info.server_metrics else {
        return vec![Block::Text(
            "Server metrics over time were not collected: run with --scrape-metrics [MS] to \
             poll the server's /metrics during the run."
                .into(),
        )];
    };
    let mut out = Vec::new();
    if let Some(w) = &sm.warning {
        out.push(Block::Text(format!("Server metrics: {w}")));
    }
    let families = [
        ("Running requests (server)", scrape::RUNNING, "requests"),
        ("Queued requests (server)", scrape::QUEUE, "requests"),
        (
            "KV cache usage (server)",
            scrape::KV_USAGE,
            "fraction of the pool",
        ),
    ];
    for (title, names, unit) in families {
        if let Some(c) = chart(sm, title, names, unit) {
            out.push(Block::Chart(c));
        }
    }
    if out.is_empty() {
        out.push(Block::Text(format!(
            "Server metrics: {} scrapes, none with running, queued or KV usage gauges.",
            sm.scrapes
        )));
    }
    out
}

fn chart(sm: &Scraped, title: &str, names: &[&str], unit: &str) -> Option<Chart> {
    let found = scrape::named_series(&sm.series, names);
    if found.is_empty() {
        return None;
    }
    let mut xs: Vec<f64> = found
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let series = found
        .iter()
        .map(|s| {
            let mut ys = vec![None; xs.len()];
            for (t, v) in &s.points {
                if let Ok(i) = xs.binary_search_by(|x| x.total_cmp(t)) {
                    ys[i] = Some(*v);
                }
            }
            Series {
                label: label(&s.name, &s.labels),
                style: Style::Steps,
                ys,
            }
        })
        .collect();
    Some(Chart {
        title: title.into(),
        caption: format!(
            "{} as scraped every {} ms ({} scrapes), every scrape drawn",
            found[0].name,
            sm.interval.as_millis(),
            sm.scrapes
        ),
        x: Axis {
            label: "run time (s)".into(),
            scale: Scale::Linear,
        },
        y: Axis {
            label: unit.into(),
            scale: Scale::Linear,
        },
        xs,
        series,
        ..Default::default()
    })
}

/// `name{k="v",...}` without the labels every line shares nothing by (model names).
fn label(name: &str, labels: &[(String, String)]) -> String {
    let shown: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k != "model_name")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if shown.is_empty() {
        name.to_string()
    } else {
        format!("{name} {{{}}}", shown.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_bench::scrape::{ScrapeSummary, Series as Scraped1};
    use std::time::Duration;

    #[test]
    fn one_line_per_rank_and_missing_scrapes_stay_gaps() {
        let s = |rank: &str, points: Vec<(f64, f64)>| Scraped1 {
            name: "sglang:num_running_reqs".into(),
            labels: vec![
                ("model_name".into(), "tiny".into()),
                ("dp_rank".into(), rank.into()),
            ],
            points,
        };
        let sm = Scraped {
            interval: Duration::from_millis(100),
            scrapes: 3,
            series: vec![
                s("0", vec![(0.0, 1.0), (0.1, 2.0), (0.2, 3.0)]),
                s("1", vec![(0.0, 4.0), (0.2, 5.0)]),
            ],
            summary: ScrapeSummary::default(),
            warning: None,
        };
        let c = chart(&sm, "t", scrape::RUNNING, "requests").unwrap();
        assert_eq!(c.xs, vec![0.0, 0.1, 0.2]);
        assert_eq!(c.series.len(), 2);
        assert_eq!(c.series[0].label, "sglang:num_running_reqs {dp_rank=0}");
        assert_eq!(c.series[1].ys, vec![Some(4.0), None, Some(5.0)]);
        assert!(chart(&sm, "q", scrape::QUEUE, "requests").is_none());
    }
}
