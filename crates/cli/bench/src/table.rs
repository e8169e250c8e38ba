//! `loupe bench`'s terminal tables, from the run's outcome: bench_serving's result block line
//! for line (same labels, same widths, so eyes and scripts used to it keep working), loupe's
//! section after it, and the summary table after a sweep. Tables go through one renderer
//! (comfy-table, [`grid`]); times print at a fixed precision (ms to two decimals, schedule lag
//! to three), percentages to two decimals; the JSONL and CSVs keep full precision.

use comfy_table::presets;
use loupe_bench::RunOutcome;
use loupe_bench::beyond::HdrSummary;
use loupe_bench::metrics::Dist;
use loupe_bench::outcome::RunRow;
use loupe_bench::search::SearchReport;
use loupe_bench::summary::SUMMARY_HEADER;
use loupe_bench::turns::TurnFigures;
use loupe_bench::windows::WindowFigures;
use loupe_cli_observe::table::{Layout, grid};

fn line(out: &mut String, label: &str, value: impl std::fmt::Display) {
    out.push_str(&format!("{label:<40} {value:<10}\n"));
}

fn ms(out: &mut String, label: &str, v: f64) {
    line(out, label, format!("{v:.2}"));
}

fn block(o: &mut String, title: &str, name: &str, d: &Dist, with_max: bool) {
    o.push_str(&format!("{title:-^50}\n"));
    ms(o, &format!("Mean {name} (ms):"), d.mean);
    ms(o, &format!("Median {name} (ms):"), d.median);
    ms(o, &format!("P90 {name} (ms):"), d.p90);
    ms(o, &format!("P95 {name} (ms):"), d.p95);
    ms(o, &format!("P99 {name} (ms):"), d.p99);
    if with_max {
        ms(o, &format!("Max {name} (ms):"), d.max);
    }
}

/// The terminal report of one run: bench_serving's table, then loupe's section.
pub fn run_report(r: &RunOutcome) -> String {
    let (info, s, b) = (&r.info, &r.summary, &r.beyond);
    let mut o = String::new();
    o.push_str(&format!("\n{:=^50}\n", " Serving Benchmark Result "));
    line(&mut o, "Backend:", &info.backend);
    line(&mut o, "Traffic request rate:", &info.rate_label);
    line(
        &mut o,
        "Max request concurrency:",
        info.max_concurrency
            .map_or("not set".into(), |c| c.to_string()),
    );
    line(&mut o, "Successful requests:", s.completed);
    ms(&mut o, "Benchmark duration (s):", s.duration);
    line(&mut o, "Total input tokens:", s.total_input_tokens);
    line(
        &mut o,
        "Total input text tokens:",
        s.total_input_text_tokens,
    );
    if info.has_images() {
        line(
            &mut o,
            "Total input vision tokens:",
            s.total_input_vision_tokens,
        );
    }
    line(&mut o, "Total generated tokens:", s.total_output_tokens);
    line(
        &mut o,
        "Total generated tokens (retokenized):",
        s.total_output_tokens_retokenized
            .map_or("n/a".into(), |n| n.to_string()),
    );
    ms(&mut o, "Request throughput (req/s):", s.request_throughput);
    ms(
        &mut o,
        "Input token throughput (tok/s):",
        s.input_throughput,
    );
    ms(
        &mut o,
        "Output token throughput (tok/s):",
        s.output_throughput,
    );
    ms(
        &mut o,
        "Peak output token throughput (tok/s):",
        s.max_output_tokens_per_s,
    );
    line(
        &mut o,
        "Peak concurrent requests:",
        s.max_concurrent_requests,
    );
    ms(
        &mut o,
        "Total token throughput (tok/s):",
        s.total_throughput,
    );
    ms(&mut o, "Concurrency:", s.concurrency);
    if let Some(a) = info.accept_length.filter(|a| *a > 0.0) {
        ms(&mut o, "Accept length:", a);
    }
    if let Some(g) = &b.goodput {
        o.push_str(&format!("{:-^50}\n", "Goodput"));
        let slos: Vec<String> = g.slos_ms.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        line(&mut o, "SLOs (ms):", slos.join(" "));
        ms(&mut o, "Request goodput (req/s):", g.request_goodput);
        ms(&mut o, "SLO attainment (%):", g.slo_attainment * 100.0);
        for (k, a) in &g.by_metric {
            ms(
                &mut o,
                &format!("{} SLO attainment (%):", k.to_uppercase()),
                a * 100.0,
            );
        }
    }
    block(&mut o, "End-to-End Latency", "E2E Latency", &s.e2e, false);
    block(&mut o, "Time to First Token", "TTFT", &s.ttft, false);
    block(
        &mut o,
        "Time per Output Token (excl. 1st token)",
        "TPOT",
        &s.tpot,
        false,
    );
    block(&mut o, "Inter-Token Latency", "ITL", &s.itl, true);
    o.push_str(&format!("{:=^50}\n", ""));
    o.push_str(&loupe_section(r));
    o
}

/// loupe's additions, labelled so nobody mistakes them for bench_serving's figures.
/// bench_serving's `Cache Hit Details` block (--cache-report).
fn cache_section(r: &RunOutcome) -> String {
    let c = &r.beyond.cache;
    let mut o = format!("{:-^50}\n", "Cache Hit Details");
    line(&mut o, "Total prompt tokens:", c.prompt_tokens);
    line(&mut o, "Total cached tokens:", c.cached_tokens.unwrap_or(0));
    line(
        &mut o,
        "Cache hit rate:",
        format!("{:.2}%", c.hit_pct().unwrap_or(0.0)),
    );
    o
}

fn loupe_section(r: &RunOutcome) -> String {
    let (info, s, b) = (&r.info, &r.summary, &r.beyond);
    let mut o = String::new();
    if info.cache_report {
        o.push_str(&cache_section(r));
    }
    o.push_str(&format!("{:-^50}\n", " loupe: beyond bench_serving "));
    if s.failed > 0 {
        line(&mut o, "Failed requests:", s.failed);
    }
    if let Some(sc) = &info.traffic_scenario {
        line(&mut o, "Traffic scenario:", sc);
    }
    let pair = |d: &Dist| format!("{:.2} / {:.2}", d.mean, d.p99);
    line(&mut o, "Per-token ITL mean / p99 (ms):", pair(&b.itl_token));
    if b.itl_token_unknown > 0 {
        line(
            &mut o,
            "  requests without token counts:",
            b.itl_token_unknown,
        );
    }
    if !r.native {
        line(&mut o, "Chunk-gap ITL mean / p99 (ms):", pair(&s.itl));
    }
    line(
        &mut o,
        "Client queue time mean / p99 (ms):",
        pair(&b.client_queue),
    );
    line(
        &mut o,
        "E2E incl. client queue mean / p99 (ms):",
        pair(&b.e2e_incl_queue),
    );
    line(
        &mut o,
        "Schedule lag p50 / p99 / max (ms):",
        format!(
            "{:.3} / {:.3} / {:.3}{}",
            b.schedule_lag.median,
            b.schedule_lag.p99,
            b.schedule_lag.max,
            // Everything due at t=0: this is task start-up, not lag behind a schedule.
            if info.rate_label == "inf" {
                " (all due at once)"
            } else {
                ""
            }
        ),
    );
    if b.output_len_assumed > 0 {
        line(
            &mut o,
            "Output lengths assumed (no usage):",
            b.output_len_assumed,
        );
    }
    if let Some(c) = &info.cpu {
        line(
            &mut o,
            "Client CPU (s, % of all cores):",
            format!(
                "{:.2}, {:.0}%{}",
                c.seconds,
                100.0 * c.utilisation(),
                if c.includes_server {
                    " (incl. embedded server)"
                } else {
                    ""
                }
            ),
        );
    }
    if let Some(pct) = b.cache.hit_pct() {
        line(
            &mut o,
            "Prefix-cache hits (tokens, %):",
            format!(
                "{} of {}, {pct:.2}%",
                b.cache.cached_tokens.unwrap_or(0),
                b.cache.prompt_tokens
            ),
        );
    }
    if !b.hdr.is_empty() {
        o.push_str(&hdr_table(&b.hdr));
        o.push('\n');
    }
    if !b.turns.is_empty() {
        o.push_str(&turn_table(&b.turns));
        o.push('\n');
    }
    if let Some(sm) = &info.server_metrics {
        let su = &sm.summary;
        let mm = |m: Option<loupe_bench::scrape::MeanMax>, scale: f64| {
            m.map_or("-".into(), |m| {
                format!("{:.2} / {:.2}", m.mean * scale, m.max * scale)
            })
        };
        line(&mut o, "Server /metrics scrapes:", sm.scrapes);
        line(&mut o, "  queued mean / max:", mm(su.queue, 1.0));
        line(&mut o, "  running mean / max:", mm(su.running, 1.0));
        line(&mut o, "  KV usage mean / max (%):", mm(su.kv_usage, 100.0));
        line(
            &mut o,
            "  preemptions / retractions:",
            su.preemptions.map_or("-".into(), |p| format!("{p:.0}")),
        );
        line(
            &mut o,
            "  prefix-cache hits (%):",
            su.cache_hit_pct.map_or("-".into(), |p| format!("{p:.2}")),
        );
    }
    if let Some(w) = &b.steady {
        line(
            &mut o,
            &format!("Steady state {:.1}-{:.1} s:", w.start, w.end),
            format!(
                "{} done, {:.2} req/s, {:.1} tok/s",
                w.completed, w.request_throughput, w.output_throughput
            ),
        );
        line(
            &mut o,
            "  TTFT / TPOT mean (ms):",
            format!("{:.2} / {:.2}", w.ttft.mean, w.tpot.mean),
        );
    }
    if !b.slices.is_empty() {
        o.push_str(&slice_table(&b.slices));
        o.push('\n');
    }
    if let Some(p) = &info.profile {
        o.push_str(&format!("{:-^50}\n", " Profile "));
        line(&mut o, "Engine:", &p.engine);
        line(&mut o, "Profile id:", &p.profile_id);
        line(&mut o, "Output dir:", &p.output_dir);
        line(
            &mut o,
            "Trace files:",
            format!(
                "{}{}",
                p.files.len(),
                if p.complete { "" } else { " (incomplete)" }
            ),
        );
        for f in &p.files {
            o.push_str(&format!("  {f}\n"));
        }
        for n in p.notes.iter().chain(&p.errors) {
            o.push_str(&format!("  note: {n}\n"));
        }
        if let Some(sum) = &p.summary {
            o.push_str(sum);
        }
    }
    for w in &info.warnings {
        o.push_str(&format!("WARNING: {w}\n"));
    }
    o.push_str(&format!("{:=^50}\n", ""));
    o
}

/// loupe's HdrHistogram percentiles: a row per metric, in ms.
fn hdr_table(hdr: &[HdrSummary]) -> String {
    let mut header = vec!["HdrHistogram (ms)".to_string(), "mean".into()];
    if let Some(first) = hdr.first() {
        header.extend(first.at.iter().map(|(p, _)| format!("p{p}")));
    }
    header.push("max".into());
    let rows = hdr
        .iter()
        .map(|h| {
            let mut row = vec![h.name.to_string(), format!("{:.2}", h.mean)];
            row.extend(h.at.iter().map(|(_, v)| format!("{v:.2}")));
            row.push(format!("{:.2}", h.max));
            row
        })
        .collect();
    let layout = Layout {
        style: presets::NOTHING,
        widths: Some((24, 9)),
    };
    grid(layout, header, rows)
}

/// Multi-turn runs: a row per round index.
fn turn_table(turns: &[TurnFigures]) -> String {
    let header = [
        "Turn",
        "done",
        "TTFT mean",
        "TTFT p99",
        "TPOT mean",
        "TPOT p99",
        "prompt tok",
        "cached %",
    ]
    .map(String::from)
    .to_vec();
    let rows = turns
        .iter()
        .map(|t| {
            vec![
                (t.turn + 1).to_string(),
                format!("{}/{}", t.completed, t.requests),
                format!("{:.2}", t.ttft.mean),
                format!("{:.2}", t.ttft.p99),
                format!("{:.2}", t.tpot.mean),
                format!("{:.2}", t.tpot.p99),
                t.prompt_tokens.to_string(),
                t.cache_hit_pct().map_or("-".into(), |p| format!("{p:.1}")),
            ]
        })
        .collect();
    let layout = Layout {
        style: presets::NOTHING,
        widths: Some((6, 11)),
    };
    grid(layout, header, rows)
}

/// --slice-duration: a row per slice of the run's clock.
fn slice_table(slices: &[WindowFigures]) -> String {
    let header = [
        "Slice (s)",
        "done",
        "failed",
        "req/s",
        "tok/s",
        "TTFT mean",
        "TPOT mean",
    ]
    .map(String::from)
    .to_vec();
    let rows = slices
        .iter()
        .map(|w| {
            vec![
                format!("{:.1}-{:.1}", w.start, w.end),
                w.completed.to_string(),
                w.failed.to_string(),
                format!("{:.2}", w.request_throughput),
                format!("{:.1}", w.output_throughput),
                format!("{:.2}", w.ttft.mean),
                format!("{:.2}", w.tpot.mean),
            ]
        })
        .collect();
    let layout = Layout {
        style: presets::NOTHING,
        widths: Some((12, 10)),
    };
    grid(layout, header, rows)
}

/// What a --search found: every probe, then the answer (or the closest probe).
pub fn search_report(scenario: Option<&str>, r: &SearchReport) -> String {
    let knob = r.knob.name();
    let header = [knob, "SLO attainment", "meets"].map(String::from).to_vec();
    let rows = r
        .probes
        .iter()
        .map(|p| {
            vec![
                format!("{}", p.value),
                format!("{:.1}%", 100.0 * p.attainment),
                if p.meets { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    let layout = Layout {
        style: presets::NOTHING,
        widths: Some((16, 16)),
    };
    let mut o = format!(
        "{:-^50}\n",
        match scenario {
            Some(s) => format!(" Search {knob}: {s} "),
            None => format!(" Search {knob} "),
        }
    );
    o.push_str(&grid(layout, header, rows));
    o.push('\n');
    let target = 100.0 * r.goodput_target;
    match (r.best, r.closest) {
        (Some(b), _) => o.push_str(&format!(
            "Highest {knob} meeting the SLOs ({target:.0}% of requests): {}{}\n",
            b.value,
            r.bracket
                .1
                .map_or(String::new(), |h| format!(" (fails at {h})"))
        )),
        (None, Some(c)) => o.push_str(&format!(
            "No probe met the SLOs ({target:.0}% of requests); the closest: {knob} {} with \
             {:.1}%\n",
            c.value,
            100.0 * c.attainment
        )),
        (None, None) => o.push_str("No probe ran.\n"),
    }
    o
}

/// The summary table printed after several runs.
pub fn summary(rows: &[RunRow]) -> String {
    let header = SUMMARY_HEADER.iter().map(|h| h.replace('_', " ")).collect();
    let rows = rows
        .iter()
        .map(|r| {
            vec![
                r.label.clone(),
                r.completed.to_string(),
                r.failed.to_string(),
                format!("{:.2}", r.duration),
                format!("{:.2}", r.request_throughput),
                format!("{:.1}", r.output_throughput),
                format!("{:.2}", r.mean_ttft_ms),
                format!("{:.2}", r.p99_ttft_ms),
                format!("{:.2}", r.mean_tpot_ms),
                format!("{:.2}", r.p99_tpot_ms),
                format!("{:.2}", r.mean_itl_ms),
                format!("{:.2}", r.p99_e2e_ms),
                format!("{:.2}", r.p99_e2e_incl_queue_ms),
                r.request_goodput
                    .map_or(String::new(), |g| format!("{g:.2}")),
            ]
        })
        .collect();
    let layout = Layout {
        style: presets::ASCII_MARKDOWN,
        widths: None,
    };
    grid(layout, header, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_bench::beyond::{Beyond, Goodput};
    use loupe_bench::metrics::Summary;
    use loupe_bench::outcome::RunInfo;

    fn run() -> RunOutcome {
        let mut summary = Summary {
            completed: 12,
            duration: 1.234567,
            ..Default::default()
        };
        summary.ttft.mean = 12.749490816227759;
        let beyond = Beyond {
            hdr: vec![
                HdrSummary {
                    name: "ttft",
                    count: 12,
                    mean: 12.749490816227759,
                    max: 1234.5678,
                    at: vec![(50.0, 10.0), (99.9, 20.25)],
                },
                HdrSummary {
                    name: "e2e_latency_incl_queue",
                    count: 12,
                    mean: 3.0,
                    max: 4.0,
                    at: vec![(50.0, 3.5), (99.9, 3.9)],
                },
            ],
            goodput: Some(Goodput {
                slos_ms: vec![("ttft".into(), 500.0)],
                request_goodput: 9.8765,
                slo_attainment: 0.127_494_908_162_277_6,
                by_metric: vec![("ttft".into(), 0.875)],
            }),
            ..Default::default()
        };
        RunOutcome {
            label: "run".into(),
            info: RunInfo {
                backend: "sglang".into(),
                dataset_name: "random-ids".into(),
                request_rate: f64::INFINITY,
                rate_label: "inf".into(),
                burstiness: 1.0,
                max_concurrency: None,
                sharegpt_output_len: None,
                random_input_len: 256,
                random_output_len: 128,
                random_range_ratio: 0.0,
                tag: None,
                cache_report: false,
                traffic_scenario: None,
                server_info: serde_json::Value::Null,
                accept_length: None,
                cpu: None,
                profile: None,
                server_metrics: None,
                warnings: vec!["careful".into()],
            },
            summary,
            beyond,
            records: Vec::new(),
            retokenized: None,
            native: true,
        }
    }

    #[test]
    fn bench_serving_lines_keep_their_widths_and_figures_their_precision() {
        let t = run_report(&run());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[1],
            "============ Serving Benchmark Result ============"
        );
        assert!(lines.contains(&"Backend:                                 sglang    "));
        assert!(lines.contains(&"Successful requests:                     12        "));
        assert!(lines.contains(&"Benchmark duration (s):                  1.23      "));
        assert!(lines.contains(&"Mean TTFT (ms):                          12.75     "));
        // Percentages to two decimals.
        assert!(
            lines.contains(&"SLO attainment (%):                      12.75     "),
            "{t}"
        );
        assert!(lines.contains(&"TTFT SLO attainment (%):                 87.50     "));
        assert!(lines.contains(&"WARNING: careful"));
        assert!(
            !t.contains("12.7494"),
            "no full-precision figure on the terminal: {t}"
        );
    }

    #[test]
    fn the_hdr_table_is_a_fixed_width_grid() {
        let t = hdr_table(&run().beyond.hdr);
        // 24 columns for the name, at least 9 for each figure, right-aligned.
        let want = [
            format!(
                "{:<24}{:>9}{:>9}{:>9}{:>9}",
                "HdrHistogram (ms)", "mean", "p50", "p99.9", "max"
            ),
            format!(
                "{:<24}{:>9}{:>9}{:>9}{:>9}",
                "ttft", "12.75", "10.00", "20.25", "1234.57"
            ),
            format!(
                "{:<24}{:>9}{:>9}{:>9}{:>9}",
                "e2e_latency_incl_queue", "3.00", "3.50", "3.90", "4.00"
            ),
        ]
        .join("\n");
        assert_eq!(t, want);
    }

    #[test]
    fn summary_table_has_a_row_per_run() {
        let row = run().row();
        let t = summary(&[
            row.clone(),
            RunRow {
                label: "concurrency 8".into(),
                ..row
            },
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "header, separator, two rows: {t}");
        assert!(lines[0].contains("mean ttft ms") && lines[0].starts_with("| run"));
        assert!(
            lines[2].starts_with("| run ") && lines[2].contains(" 12.75 |"),
            "{t}"
        );
        assert!(lines[3].starts_with("| concurrency 8 "));
        assert!(
            lines[3].trim_end().ends_with("9.88 |"),
            "goodput to two decimals: {t}"
        );
    }
}
