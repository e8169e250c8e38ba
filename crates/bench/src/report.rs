//! SGLang's terminal table and JSONL record (same keys, so dashboards keep working), plus
//! loupe's additions under their own names.

use std::io::Write;

use serde_json::{Map, Value, json};

use crate::metrics::{Dist, Summary};

/// The run's settings as bench_serving records them.
pub struct RunInfo<'a> {
    pub backend: &'a str,
    pub dataset_name: &'a str,
    pub request_rate: f64,
    pub max_concurrency: Option<usize>,
    pub random_input_len: usize,
    pub random_output_len: usize,
    pub random_range_ratio: f64,
    pub tag: Option<&'a str>,
    pub server_info: Value,
}

fn line(out: &mut String, label: &str, value: impl std::fmt::Display) {
    out.push_str(&format!("{label:<40} {value:<10}\n"));
}

pub fn rate(r: f64) -> String {
    if r.is_finite() {
        format!("{r}")
    } else {
        "inf".into()
    }
}

/// Today's `MMDD` in UTC, for bench_serving's auto-named output file.
pub fn month_day() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    // Civil-from-days (proleptic Gregorian), Howard Hinnant's algorithm.
    let z = secs.div_euclid(86_400) + 719_468;
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{month:02}{day:02}")
}

pub fn table(info: &RunInfo<'_>, s: &Summary) -> String {
    let mut o = String::new();
    o.push_str(&format!("\n{:=^50}\n", " Serving Benchmark Result "));
    line(&mut o, "Backend:", info.backend);
    line(&mut o, "Traffic request rate:", rate(info.request_rate));
    line(
        &mut o,
        "Max request concurrency:",
        info.max_concurrency
            .map_or("not set".into(), |c| c.to_string()),
    );
    line(&mut o, "Successful requests:", s.completed);
    if s.failed > 0 {
        line(&mut o, "Failed requests:", s.failed);
    }
    line(
        &mut o,
        "Benchmark duration (s):",
        format!("{:.2}", s.duration),
    );
    line(&mut o, "Total input tokens:", s.total_input_tokens);
    line(&mut o, "Total generated tokens:", s.total_output_tokens);
    line(
        &mut o,
        "Request throughput (req/s):",
        format!("{:.2}", s.request_throughput),
    );
    line(
        &mut o,
        "Input token throughput (tok/s):",
        format!("{:.2}", s.input_throughput),
    );
    line(
        &mut o,
        "Output token throughput (tok/s):",
        format!("{:.2}", s.output_throughput),
    );
    line(
        &mut o,
        "Peak output token throughput (tok/s):",
        format!("{:.2}", s.max_output_tokens_per_s),
    );
    line(
        &mut o,
        "Peak concurrent requests:",
        s.max_concurrent_requests,
    );
    line(
        &mut o,
        "Total token throughput (tok/s):",
        format!("{:.2}", s.total_throughput),
    );
    line(&mut o, "Concurrency:", format!("{:.2}", s.concurrency));
    let block = |o: &mut String, title: &str, name: &str, d: &Dist, with_max: bool| {
        o.push_str(&format!("{:-^50}\n", title));
        line(o, &format!("Mean {name} (ms):"), format!("{:.2}", d.mean));
        line(
            o,
            &format!("Median {name} (ms):"),
            format!("{:.2}", d.median),
        );
        line(o, &format!("P90 {name} (ms):"), format!("{:.2}", d.p90));
        line(o, &format!("P99 {name} (ms):"), format!("{:.2}", d.p99));
        if with_max {
            line(o, &format!("Max {name} (ms):"), format!("{:.2}", d.max));
        }
    };
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
    block(
        &mut o,
        "Client schedule lag (loupe)",
        "lag",
        &s.schedule_lag,
        true,
    );
    o.push_str(&format!("{:=^50}\n", ""));
    o
}

/// One JSONL record with bench_serving's keys.
pub fn record(info: &RunInfo<'_>, s: &Summary) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("tag", json!(info.tag));
    put("backend", json!(info.backend));
    put("dataset_name", json!(info.dataset_name));
    put(
        "request_rate",
        if info.request_rate.is_finite() {
            json!(info.request_rate)
        } else {
            json!("inf")
        },
    );
    put("max_concurrency", json!(info.max_concurrency));
    put("sharegpt_output_len", Value::Null);
    put("random_input_len", json!(info.random_input_len));
    put("random_output_len", json!(info.random_output_len));
    put("random_range_ratio", json!(info.random_range_ratio));
    put("server_info", info.server_info.clone());
    put("duration", json!(s.duration));
    put("completed", json!(s.completed));
    put("total_input_tokens", json!(s.total_input_tokens));
    put("total_input_text_tokens", json!(s.total_input_tokens));
    put("total_input_vision_tokens", json!(0));
    put("total_output_tokens", json!(s.total_output_tokens));
    // No client tokenizer yet: the server's count is the only count.
    put("total_output_tokens_retokenized", Value::Null);
    put("request_throughput", json!(s.request_throughput));
    put("input_throughput", json!(s.input_throughput));
    put("output_throughput", json!(s.output_throughput));
    put("total_throughput", json!(s.total_throughput));
    for (name, d) in [
        ("e2e_latency", &s.e2e),
        ("ttft", &s.ttft),
        ("tpot", &s.tpot),
        ("itl", &s.itl),
    ] {
        put(&format!("mean_{name}_ms"), json!(d.mean));
        put(&format!("median_{name}_ms"), json!(d.median));
        put(&format!("std_{name}_ms"), json!(d.std));
        put(&format!("p90_{name}_ms"), json!(d.p90));
        put(&format!("p95_{name}_ms"), json!(d.p95));
        put(&format!("p99_{name}_ms"), json!(d.p99));
    }
    put("max_itl_ms", json!(s.itl.max));
    put("concurrency", json!(s.concurrency));
    put("accept_length", Value::Null);
    put("max_output_tokens_per_s", json!(s.max_output_tokens_per_s));
    put("max_concurrent_requests", json!(s.max_concurrent_requests));
    put("failed", json!(s.failed));
    put("mean_schedule_lag_ms", json!(s.schedule_lag.mean));
    put("p99_schedule_lag_ms", json!(s.schedule_lag.p99));
    put(
        "mean_e2e_latency_from_schedule_ms",
        json!(s.e2e_from_schedule.mean),
    );
    put(
        "p99_e2e_latency_from_schedule_ms",
        json!(s.e2e_from_schedule.p99),
    );
    Value::Object(m)
}

/// Append one line to `path` (bench_serving appends too).
pub fn append_jsonl(path: &std::path::Path, v: &Value) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut line = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    line.push(b'\n');
    // One write call: a line is never half-appended by this process.
    f.write_all(&line)
}
