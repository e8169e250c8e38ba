//! Tabular outputs: one row per run (the summary table printed after sweeps and scenario
//! lists, and `--summary-csv`) and one row per request (`--output-csv`).

use std::io::Write;
use std::path::Path;

use comfy_table::{Cell, CellAlignment, Table, presets::ASCII_MARKDOWN};

use crate::beyond::Beyond;
use crate::metrics::Summary;
use crate::record::RequestRecord;

/// One run of a sweep, condensed.
#[derive(Debug, Clone)]
pub struct RunRow {
    /// What varied: e.g. "concurrency 64", "rate 16.0", "D(128,96) concurrency 8".
    pub label: String,
    pub completed: usize,
    pub failed: usize,
    pub duration: f64,
    pub request_throughput: f64,
    pub output_throughput: f64,
    pub mean_ttft_ms: f64,
    pub p99_ttft_ms: f64,
    pub mean_tpot_ms: f64,
    pub p99_tpot_ms: f64,
    pub mean_itl_ms: f64,
    pub p99_e2e_ms: f64,
    pub p99_e2e_incl_queue_ms: f64,
    pub request_goodput: Option<f64>,
}

impl RunRow {
    pub fn new(label: String, s: &Summary, b: &Beyond) -> Self {
        RunRow {
            label,
            completed: s.completed,
            failed: s.failed,
            duration: s.duration,
            request_throughput: s.request_throughput,
            output_throughput: s.output_throughput,
            mean_ttft_ms: s.ttft.mean,
            p99_ttft_ms: s.ttft.p99,
            mean_tpot_ms: s.tpot.mean,
            p99_tpot_ms: s.tpot.p99,
            mean_itl_ms: s.itl.mean,
            p99_e2e_ms: s.e2e.p99,
            p99_e2e_incl_queue_ms: b.e2e_incl_queue.p99,
            request_goodput: b.goodput.as_ref().map(|g| g.request_goodput),
        }
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.label.clone(),
            self.completed.to_string(),
            self.failed.to_string(),
            format!("{:.2}", self.duration),
            format!("{:.2}", self.request_throughput),
            format!("{:.1}", self.output_throughput),
            format!("{:.2}", self.mean_ttft_ms),
            format!("{:.2}", self.p99_ttft_ms),
            format!("{:.2}", self.mean_tpot_ms),
            format!("{:.2}", self.p99_tpot_ms),
            format!("{:.2}", self.mean_itl_ms),
            format!("{:.2}", self.p99_e2e_ms),
            format!("{:.2}", self.p99_e2e_incl_queue_ms),
            self.request_goodput
                .map_or(String::new(), |g| format!("{g:.2}")),
        ]
    }
}

const HEADER: [&str; 14] = [
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

/// The summary table printed after several runs.
pub fn table(rows: &[RunRow]) -> String {
    let mut t = Table::new();
    t.load_style(ASCII_MARKDOWN);
    t.set_header(HEADER.iter().map(|h| Cell::new(h.replace('_', " "))));
    for r in rows {
        t.add_row(r.cells().into_iter().enumerate().map(|(i, c)| {
            let cell = Cell::new(c);
            if i == 0 {
                cell
            } else {
                cell.set_alignment(CellAlignment::Right)
            }
        }));
    }
    t.to_string()
}

/// A CSV field, quoted when it needs to be.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn write_rows(
    path: &Path,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> std::io::Result<()> {
    let mut out = String::new();
    out.push_str(&header.join(","));
    out.push('\n');
    for r in rows {
        let fields: Vec<String> = r.iter().map(|f| field(f)).collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    let tmp = path.with_extension("csv.tmp");
    std::fs::File::create(&tmp)?.write_all(out.as_bytes())?;
    std::fs::rename(&tmp, path)
}

/// `--summary-csv`: one row per run.
pub fn write_summary_csv(path: &Path, rows: &[RunRow]) -> std::io::Result<()> {
    write_rows(path, &HEADER, rows.iter().map(RunRow::cells))
}

const REQUEST_HEADER: [&str; 15] = [
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
];

/// `--output-csv`: one row per request of every run.
pub fn write_request_csv(
    path: &Path,
    runs: &[(String, Vec<RequestRecord>)],
) -> std::io::Result<()> {
    let rows = runs.iter().flat_map(|(label, recs)| {
        recs.iter().enumerate().map(move |(i, r)| {
            vec![
                label.clone(),
                i.to_string(),
                r.ok.to_string(),
                r.prompt_len.to_string(),
                r.output_len.to_string(),
                format!("{:.6}", r.intended),
                format!("{:.6}", r.dispatched),
                format!("{:.6}", r.start),
                format!("{:.3}", r.ttft * 1e3),
                format!("{:.3}", r.latency * 1e3),
                r.tpot()
                    .map_or(String::new(), |t| format!("{:.3}", t * 1e3)),
                format!("{:.3}", r.client_queue() * 1e3),
                format!("{:.3}", r.schedule_lag() * 1e3),
                (r.gaps.len() + usize::from(r.ttft > 0.0)).to_string(),
                r.error.clone(),
            ]
        })
    });
    write_rows(path, &REQUEST_HEADER, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        let rec = RequestRecord {
            ok: false,
            error: "HTTP 500: boom, again".into(),
            ..Default::default()
        };
        write_request_csv(&p, &[("run1".into(), vec![rec])]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("run,index,ok,"));
        assert!(
            text.contains("run1,0,false,") && text.ends_with("\"HTTP 500: boom, again\"\n"),
            "{text}"
        );
    }

    #[test]
    fn summary_table_has_a_row_per_run() {
        let row = RunRow::new(
            "concurrency 4".into(),
            &Summary::default(),
            &Beyond::default(),
        );
        let t = table(&[
            row.clone(),
            RunRow {
                label: "concurrency 8".into(),
                ..row
            },
        ]);
        assert!(
            t.contains("concurrency 4") && t.contains("concurrency 8"),
            "{t}"
        );
        assert!(t.contains("mean ttft ms"));
    }
}
