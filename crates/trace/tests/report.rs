//! Reports of real traces: terminal tables round (two decimals for percentages, three for
//! milliseconds), CSV and JSON keep full precision, CSV quotes kernel names with commas, and the
//! embedded summary picks the per-rank traces out of a profile's files.

mod common;

use common::data;
use loupe_trace::analyze::ranks::compare;
use loupe_trace::analyze::summarize_all;
use loupe_trace::analyze::summary::TraceSummary;
use loupe_trace::files::rank_traces;
use loupe_trace::import::{ReadOptions, open_all};
use loupe_trace::report::{self, ReportFormat, ReportOptions};

fn summaries(files: &[&str]) -> Vec<TraceSummary> {
    let paths: Vec<_> = files.iter().map(|f| data(f)).collect();
    summarize_all(&open_all(&paths, None).unwrap(), &ReadOptions::default()).unwrap()
}

fn opts(format: ReportFormat, top: usize, table: Option<&str>) -> ReportOptions {
    ReportOptions {
        format,
        top,
        table: table.map(str::to_string),
    }
}

#[test]
fn terminal_tables_round_percentages_and_times() {
    let s = summaries(&["sglang_Qwen3-8B_decode.json.gz"]);
    let text = report::summary(&s, &opts(ReportFormat::Table, 20, Some("timeline")));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "type                 time ms  percent");
    assert_eq!(lines[3], "computation_time       9.760     2.06");
    assert_eq!(lines[5], "exposed_memcpy_time    0.013     0.00");
    assert_eq!(lines[8], "total_time           473.750   100.00");
    assert!(!text.contains("2.060105577680249"), "{text}");

    let text = report::summary(&s, &opts(ReportFormat::Table, 3, Some("kernels")));
    let row = text.lines().nth(3).unwrap();
    assert!(row.starts_with("Cijk_Alik_Bljk_BBS_BH_Bias_HA_S_SAV_UserArgs_MT256x32x64"));
    assert!(
        row.ends_with("…     36     2.418  67.157  64.736  73.629  24.72"),
        "{row}"
    );
}

#[test]
fn csv_keeps_full_precision_and_round_trips_kernel_names() {
    let s = summaries(&["sglang_Qwen3-8B_decode.json.gz"]);
    let csv = report::summary(&s, &opts(ReportFormat::Csv, 20, Some("timeline")));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "type,time ms,percent");
    assert_eq!(lines[1], "computation_time,9.759749,2.060105577680249");
    assert_eq!(
        lines[3],
        "exposed_memcpy_time,0.013177,0.002781425136762497"
    );
    assert_eq!(lines[6], "total_time,473.749943,100.0");

    // Every kernel name, commas, quotes and `<...>` included, reads back from the CSV.
    let s = summaries(&["sampled_rank-0.json.gz"]);
    let csv = report::summary(&s, &opts(ReportFormat::Csv, 0, Some("kernels")));
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), s[0].kernels.len());
    let mut with_commas = 0;
    for (row, k) in rows.iter().zip(&s[0].kernels) {
        assert_eq!(&row[0], k.name);
        assert_eq!(row[1].parse::<u64>().unwrap(), k.calls);
        with_commas += k.name.contains(',') as usize;
    }
    assert!(with_commas > 10, "the fixture has kernel names with commas");
}

#[test]
fn json_is_the_analysis_at_full_precision() {
    let s = summaries(&["sampled_rank-0.json.gz", "sampled_rank-1.json.gz"]);
    let r = compare(&s, 10);
    let v: serde_json::Value =
        serde_json::from_str(&report::ranks(&r, &opts(ReportFormat::Json, 20, None))).unwrap();
    assert_eq!(v["ranks"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["ranks"][0]["gpu"]["busy_ns"].as_i64().unwrap(),
        r.ranks[0].gpu.busy_ns
    );
    let imbalance = v["steps"][0]["compute_imbalance"].as_f64().unwrap();
    assert_eq!(Some(imbalance), r.steps[0].compute_imbalance);
}

#[test]
fn markdown_tables_have_titles_and_pipes() {
    let s = summaries(&["sglang_Qwen3-8B_decode.json.gz"]);
    let md = report::summary(&s, &opts(ReportFormat::Markdown, 5, Some("timeline")));
    let lines: Vec<&str> = md.lines().collect();
    assert!(lines[0].starts_with("**GPU timeline: [RANK00] "), "{md}");
    assert_eq!(lines[2], "| type                | time ms | percent |");
    assert_eq!(lines[4], "| computation_time    |   9.760 |    2.06 |");
}

#[test]
fn summary_text_of_a_profile_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (from, to) in [
        ("sampled_rank-0.json.gz", "1-TP-0.trace.json.gz"),
        ("sampled_rank-1.json.gz", "1-TP-1.trace.json.gz"),
        ("sampled_rank-0.json.gz", "merged-1.trace.json.gz"),
    ] {
        let path = dir.path().join(to);
        std::fs::copy(data(from), &path).unwrap();
        files.push(path);
    }
    files.push(dir.path().join("1-TP-0-memory.pickle"));
    let traces = rank_traces(&files);
    assert_eq!(traces, files[..2]);
    let text = report::summary_text(&traces, 5).unwrap();
    assert_eq!(text.matches("GPU timeline: ").count(), 2, "{text}");
    assert!(text.contains("top 5 of"), "{text}");
    assert!(
        text.contains("\nRanks\n"),
        "the ranks tables follow: {text}"
    );
    assert!(text.contains("[TP00]") && text.contains("[TP01]"), "{text}");
    let one = report::summary_text(&traces[..1], 5).unwrap();
    assert!(!one.contains("\nRanks\n"), "{one}");
}
