//! Tabular outputs: one row per run (`--summary-csv`, and the summary table the front end
//! prints after sweeps and scenario lists) and one row per request (`--output-csv`). The CSVs
//! keep every figure at full precision; rounding is for terminal tables only.

use std::path::Path;

use crate::outcome::{RunOutcome, RunRow};

/// The columns of a summary row: the label, `completed`, `failed`, [`RunRow::figures`], the
/// goodput.
pub const SUMMARY_HEADER: [&str; 14] = [
    "run",
    "completed",
    "failed",
    "duration_s",
    "req_per_s",
    "output_tok_per_s",
    "mean_ttft_ms",
    "p99_ttft_ms",
    "mean_tpot_ms",
    "p99_tpot_ms",
    "mean_itl_ms",
    "p99_e2e_ms",
    "p99_e2e_incl_queue_ms",
    "goodput_req_per_s",
];

/// A CSV number: Rust's shortest representation that reads back to the same f64.
fn full(x: f64) -> String {
    x.to_string()
}

/// Write `rows` under `header` to `path`, whole or not at all.
fn write_csv(
    path: &Path,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> std::io::Result<()> {
    loupe_trace::export::write_atomic(path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(header)?;
        for r in rows {
            csv.write_record(&r)?;
        }
        csv.flush()
    })
}

/// `--summary-csv`: one row per run.
pub fn write_summary_csv(path: &Path, rows: &[RunRow]) -> std::io::Result<()> {
    let rows = rows.iter().map(|r| {
        let mut v = vec![
            r.label.clone(),
            r.completed.to_string(),
            r.failed.to_string(),
        ];
        v.extend(r.figures().into_iter().map(full));
        v.push(r.request_goodput.map_or(String::new(), full));
        v
    });
    write_csv(path, &SUMMARY_HEADER, rows)
}

const REQUEST_HEADER: [&str; 17] = [
    "run",
    "index",
    "ok",
    "prompt_len",
    "output_len",
    "intended_s",
    "dispatched_s",
    "start_s",
    "ttft_ms",
    "e2e_ms",
    "tpot_ms",
    "client_queue_ms",
    "schedule_lag_ms",
    "chunks",
    "error",
    "session",
    "turn",
];

/// `--output-csv`: one row per request of every run.
pub fn write_request_csv(path: &Path, runs: &[RunOutcome]) -> std::io::Result<()> {
    let rows = runs.iter().flat_map(|run| {
        run.records.iter().enumerate().map(|(i, r)| {
            vec![
                run.label.clone(),
                i.to_string(),
                r.ok.to_string(),
                r.prompt_len.to_string(),
                r.output_len.to_string(),
                full(r.intended),
                full(r.dispatched),
                full(r.start),
                full(r.ttft * 1e3),
                full(r.latency * 1e3),
                r.tpot().map_or(String::new(), |t| full(t * 1e3)),
                full(r.client_queue() * 1e3),
                full(r.schedule_lag() * 1e3),
                (r.gaps.len() + usize::from(r.ttft > 0.0)).to_string(),
                r.error.clone(),
                r.session.map_or(String::new(), |s| s.to_string()),
                r.turn.to_string(),
            ]
        })
    });
    write_csv(path, &REQUEST_HEADER, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beyond::Beyond;
    use crate::metrics::Summary;
    use crate::outcome::RunInfo;
    use crate::record::RequestRecord;

    fn run(label: &str, records: Vec<RequestRecord>) -> RunOutcome {
        RunOutcome {
            label: label.into(),
            info: RunInfo {
                backend: "sglang".into(),
                dataset_name: "random-ids".into(),
                request_rate: f64::INFINITY,
                rate_label: "inf".into(),
                burstiness: 1.0,
                max_concurrency: None,
                sharegpt_output_len: None,
                random_input_len: 1,
                random_output_len: 1,
                random_range_ratio: 0.0,
                tag: None,
                cache_report: false,
                traffic_scenario: None,
                server_info: serde_json::Value::Null,
                accept_length: None,
                cpu: None,
                profile: None,
                server_metrics: None,
                warnings: Vec::new(),
            },
            summary: Summary::default(),
            beyond: Beyond::default(),
            records,
            retokenized: None,
            native: true,
        }
    }

    #[test]
    fn request_csv_quotes_what_needs_quoting_and_keeps_full_precision() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        let failed = RequestRecord {
            ok: false,
            error: "HTTP 500: boom, \"again\"".into(),
            ..Default::default()
        };
        let ok = RequestRecord {
            ok: true,
            output_len: 3,
            intended: 1.0 / 3.0,
            dispatched: 0.5,
            start: 0.5,
            ttft: 0.0123456789,
            latency: 0.1,
            gaps: vec![0.04, 0.05],
            ..Default::default()
        };
        write_request_csv(&p, &[run("run1", vec![failed, ok])]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], REQUEST_HEADER.join(","));
        assert!(
            lines[1].starts_with("run1,0,false,")
                && lines[1].ends_with(",\"HTTP 500: boom, \"\"again\"\"\",,0"),
            "{text}"
        );
        let f: Vec<&str> = lines[2].split(',').collect();
        assert_eq!(f[5], "0.3333333333333333", "intended_s at full precision");
        assert_eq!(f[8].parse::<f64>().unwrap(), 0.0123456789 * 1e3);
        assert_eq!(f[13], "3", "first token and two gaps");
        assert_eq!(f[14], "", "no error");
        assert_eq!((f[15], f[16]), ("", "0"), "not a conversation's round");
        // Written whole: no temporary file left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn summary_csv_has_a_row_per_run_at_full_precision() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        let mut s = Summary {
            completed: 7,
            duration: 2.0 / 3.0,
            ..Default::default()
        };
        s.ttft.mean = 12.749490816227759;
        let row = RunRow::new("concurrency 4".into(), &s, &Beyond::default());
        let rows = [
            row.clone(),
            RunRow {
                label: "D(1,2) concurrency 8".into(),
                request_goodput: Some(1.5),
                ..row
            },
        ];
        write_summary_csv(&p, &rows).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], SUMMARY_HEADER.join(","));
        assert!(
            lines[1].starts_with("concurrency 4,7,0,0.6666666666666666,"),
            "{text}"
        );
        assert!(
            lines[1].contains(",12.749490816227759,") && lines[1].ends_with(','),
            "{text}"
        );
        assert!(lines[2].starts_with("\"D(1,2) concurrency 8\",") && lines[2].ends_with(",1.5"));
    }
}
