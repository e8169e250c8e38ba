//! bench_serving's JSONL record (same keys in the same order, so scripts and dashboards keep
//! working), followed by loupe's additions under names of their own, and bench_serving's
//! auto-named output file. (The terminal table is the front end's view of the same outcome.)

use std::io::Write;

use serde_json::{Map, Value, json};

use crate::metrics::Dist;
use crate::outcome::RunOutcome;

/// A rate as JSON. bench_serving writes Python's `Infinity`, which strict JSON readers
/// reject (and serde_json would write null); loupe writes "inf", which Python's float() reads
/// the same.
fn rate_json(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        json!("inf")
    }
}

fn dist_keys(m: &mut Map<String, Value>, name: &str, d: &Dist) {
    m.insert(format!("mean_{name}_ms"), json!(d.mean));
    m.insert(format!("median_{name}_ms"), json!(d.median));
    m.insert(format!("p99_{name}_ms"), json!(d.p99));
}

/// One JSONL record: bench_serving's keys in its order, then loupe's.
pub fn record(r: &RunOutcome, details: bool) -> Value {
    let (info, s, b) = (&r.info, &r.summary, &r.beyond);
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("tag", json!(info.tag));
    put("backend", json!(info.backend));
    put("dataset_name", json!(info.dataset_name));
    // bench_serving writes "trace" for a replay of the dataset's timestamps.
    if info.rate_label == "trace" {
        put("request_rate", json!("trace"));
    } else {
        put("request_rate", rate_json(info.request_rate));
    }
    put("max_concurrency", json!(info.max_concurrency));
    put("sharegpt_output_len", json!(info.sharegpt_output_len));
    put("random_input_len", json!(info.random_input_len));
    put("random_output_len", json!(info.random_output_len));
    put("random_range_ratio", json!(info.random_range_ratio));
    put("server_info", info.server_info.clone());
    put("duration", json!(s.duration));
    put("completed", json!(s.completed));
    put("total_input_tokens", json!(s.total_input_tokens));
    put("total_input_text_tokens", json!(s.total_input_text_tokens));
    put(
        "total_input_vision_tokens",
        json!(s.total_input_vision_tokens),
    );
    put("total_output_tokens", json!(s.total_output_tokens));
    put(
        "total_output_tokens_retokenized",
        json!(s.total_output_tokens_retokenized),
    );
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
    put("concurrency", json!(s.concurrency));
    put("accept_length", json!(info.accept_length));
    put("max_output_tokens_per_s", json!(s.max_output_tokens_per_s));
    put("max_concurrent_requests", json!(s.max_concurrent_requests));
    if info.cache_report {
        // loupe servers (and SGLang without tier details) report one tier: the device's.
        let c = &b.cache;
        let cached = c.cached_tokens.unwrap_or(0);
        put(
            "cache_report",
            json!({"total_prompt_tokens": c.prompt_tokens, "total_cached_tokens": cached,
                   "cache_hit_rate_pct": (c.hit_pct().unwrap_or(0.0) * 100.0).round() / 100.0,
                   "device_cached_tokens": cached, "host_cached_tokens": null,
                   "storage_cached_tokens": null, "storage_backend": null}),
        );
    }
    if let Some(g) = &b.goodput {
        let slos: Map<String, Value> = g
            .slos_ms
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let by: Map<String, Value> = g
            .by_metric
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        put("goodput_slos_ms", Value::Object(slos));
        put("request_goodput", json!(g.request_goodput));
        put("slo_attainment", json!(g.slo_attainment));
        put("slo_attainment_by_metric", Value::Object(by));
    }
    // loupe's keys.
    put("failed", json!(s.failed));
    put("max_itl_ms", json!(s.itl.max));
    put("burstiness", rate_json(info.burstiness));
    put("request_rate_label", json!(info.rate_label));
    put("traffic_scenario", json!(info.traffic_scenario));
    dist_keys(&mut m, "itl_token", &b.itl_token);
    dist_keys(&mut m, "client_queue", &b.client_queue);
    dist_keys(&mut m, "e2e_latency_incl_queue", &b.e2e_incl_queue);
    dist_keys(&mut m, "schedule_lag", &b.schedule_lag);
    m.insert("max_schedule_lag_ms".into(), json!(b.schedule_lag.max));
    let hdr: Map<String, Value> = b
        .hdr
        .iter()
        .map(|h| {
            let mut o = Map::new();
            o.insert("count".into(), json!(h.count));
            o.insert("mean".into(), json!(h.mean));
            for (p, v) in &h.at {
                o.insert(format!("p{p}"), json!(v));
            }
            o.insert("max".into(), json!(h.max));
            (h.name.to_string(), Value::Object(o))
        })
        .collect();
    m.insert("hdr_percentiles_ms".into(), Value::Object(hdr));
    m.insert("output_len_assumed".into(), json!(b.output_len_assumed));
    m.insert("cached_tokens_total".into(), json!(b.cache.cached_tokens));
    m.insert("cache_hit_rate_pct".into(), json!(b.cache.hit_pct()));
    let check = &b.prompt_len_check;
    m.insert(
        "prompt_len_check".into(),
        json!({"checked": check.checked, "off_by_more_than_5pct": check.off,
               "mean_server_over_intended": check.mean_ratio}),
    );
    let window = |w: &crate::windows::WindowFigures| {
        json!({"start_s": w.start, "end_s": w.end, "completed": w.completed, "failed": w.failed,
               "request_throughput": w.request_throughput,
               "output_throughput": w.output_throughput,
               "mean_ttft_ms": w.ttft.mean, "p99_ttft_ms": w.ttft.p99,
               "mean_tpot_ms": w.tpot.mean, "p99_tpot_ms": w.tpot.p99,
               "mean_e2e_latency_ms": w.e2e.mean, "p99_e2e_latency_ms": w.e2e.p99})
    };
    if let Some(sm) = &info.server_metrics {
        let series: Vec<Value> = sm
            .series
            .iter()
            .map(|s| {
                let labels: Map<String, Value> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                json!({"name": s.name, "labels": labels,
                       "t": s.points.iter().map(|p| p.0).collect::<Vec<_>>(),
                       "v": s.points.iter().map(|p| p.1).collect::<Vec<_>>()})
            })
            .collect();
        let mm =
            |m: Option<crate::scrape::MeanMax>| m.map(|m| json!({"mean": m.mean, "max": m.max}));
        let su = &sm.summary;
        m.insert(
            "server_metrics".into(),
            json!({"interval_ms": sm.interval.as_millis() as u64, "scrapes": sm.scrapes,
                   "summary": {"queue": mm(su.queue), "running": mm(su.running),
                               "kv_usage": mm(su.kv_usage), "preemptions": su.preemptions,
                               "cache_hit_pct": su.cache_hit_pct},
                   "warning": sm.warning, "series": series}),
        );
    }
    if let Some(w) = &b.steady {
        m.insert("steady_state".into(), window(w));
    }
    if !b.slices.is_empty() {
        m.insert(
            "slices".into(),
            json!(b.slices.iter().map(window).collect::<Vec<_>>()),
        );
    }
    if !b.turns.is_empty() {
        let turns: Vec<Value> = b
            .turns
            .iter()
            .map(|t| {
                json!({"turn": t.turn, "requests": t.requests, "completed": t.completed,
                       "mean_ttft_ms": t.ttft.mean, "median_ttft_ms": t.ttft.median,
                       "p99_ttft_ms": t.ttft.p99, "mean_tpot_ms": t.tpot.mean,
                       "median_tpot_ms": t.tpot.median, "p99_tpot_ms": t.tpot.p99,
                       "prompt_tokens": t.prompt_tokens, "cached_tokens": t.cached_tokens,
                       "cache_hit_rate_pct": t.cache_hit_pct()})
            })
            .collect();
        m.insert("per_turn".into(), json!(turns));
    }
    if let Some(c) = &info.cpu {
        m.insert("client_cpu_seconds".into(), json!(c.seconds));
        m.insert(
            "client_cpu_includes_server".into(),
            json!(c.includes_server),
        );
    }
    m.insert("client_warnings".into(), json!(info.warnings));
    if let Some(p) = &info.profile {
        m.insert(
            "profile_traces".into(),
            json!({"engine": p.engine, "profile_id": p.profile_id, "output_dir": p.output_dir, "files": p.files,
                   "complete": p.complete, "errors": p.errors, "notes": p.notes, "summary": p.summary}),
        );
    }
    if details {
        let recs = &r.records;
        m.insert(
            "input_lens".into(),
            json!(
                recs.iter()
                    .map(|x| x.server_prompt_len.unwrap_or(x.prompt_len))
                    .collect::<Vec<_>>()
            ),
        );
        m.insert(
            "output_lens".into(),
            json!(
                recs.iter()
                    .map(|x| if x.ok { x.output_len } else { 0 })
                    .collect::<Vec<_>>()
            ),
        );
        m.insert(
            "ttfts".into(),
            json!(recs.iter().map(|x| x.ttft).collect::<Vec<_>>()),
        );
        let itls: Vec<Vec<f64>> = recs
            .iter()
            .map(|x| {
                let mut v = Vec::new();
                x.sglang_itl(r.native, &mut v);
                v
            })
            .collect();
        m.insert("itls".into(), json!(itls));
        m.insert(
            "generated_texts".into(),
            json!(recs.iter().map(|x| &x.generated_text).collect::<Vec<_>>()),
        );
        m.insert(
            "errors".into(),
            json!(recs.iter().map(|x| &x.error).collect::<Vec<_>>()),
        );
        m.insert(
            "cached_tokens".into(),
            json!(recs.iter().map(|x| x.cached_tokens).collect::<Vec<_>>()),
        );
        if recs.iter().any(|x| x.session.is_some()) {
            m.insert(
                "sessions".into(),
                json!(recs.iter().map(|x| x.session).collect::<Vec<_>>()),
            );
            m.insert(
                "turns".into(),
                json!(recs.iter().map(|x| x.turn).collect::<Vec<_>>()),
            );
        }
        if let Some(rt) = &r.retokenized {
            m.insert("output_lens_retokenized".into(), json!(rt));
        }
    }
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

/// Today's `MMDD` in local time, for bench_serving's auto-named output file. The local zone
/// comes from TZ or /etc/localtime; where neither names a zone, jiff uses UTC's date.
pub fn month_day() -> String {
    jiff::Zoned::now().strftime("%m%d").to_string()
}

/// bench_serving's default output file name for `--dataset-name image`.
pub fn default_image_output_file(
    backend: &str,
    num: usize,
    input_len: usize,
    output_len: usize,
    image_count: usize,
    resolution: &str,
) -> String {
    let mmdd = month_day();
    format!("{backend}_{mmdd}_{num}_{input_len}_{output_len}_{image_count}imgs_{resolution}.jsonl")
}

/// bench_serving's default output file name.
pub fn default_output_file(
    backend: &str,
    dataset: &str,
    num: usize,
    input_len: usize,
    output_len: usize,
) -> String {
    let mmdd = month_day();
    if dataset.starts_with("random") {
        format!("{backend}_{mmdd}_{num}_{input_len}_{output_len}.jsonl")
    } else {
        format!("{backend}_{mmdd}_{num}_{dataset}.jsonl")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_names_follow_bench_serving() {
        let a = default_output_file("sglang", "random-ids", 200, 256, 128);
        assert!(
            a.starts_with("sglang_") && a.ends_with("_200_256_128.jsonl"),
            "{a}"
        );
        let b = default_output_file("vllm", "sharegpt", 1000, 1024, 1024);
        assert!(b.ends_with("_1000_sharegpt.jsonl"), "{b}");
        let c = default_image_output_file("sglang-oai-chat", 10, 64, 8, 2, "720p");
        assert!(c.ends_with("_10_64_8_2imgs_720p.jsonl"), "{c}");
        assert_eq!(month_day().len(), 4);
    }
}
