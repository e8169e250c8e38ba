//! `/metrics`: Prometheus text exposition with SGLang's metric names (`sglang:` prefix), so
//! existing dashboards read loupe unchanged. Gauges come from the schedulers' live counters;
//! latency histograms are recorded by the HTTP layer as requests stream.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use loupe_engine::Engine;

const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    15.0, 20.0, 25.0, 30.0,
];
const E2E_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 90.0, 120.0, 150.0,
    180.0, 240.0, 300.0,
];
const ITL_BUCKETS: &[f64] = &[
    0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5,
];

/// A cumulative histogram with fixed buckets; lock-free.
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, seconds: f64) {
        if let Some(i) = self.bounds.iter().position(|b| seconds <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cum += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cum}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Latency histograms and request counters kept by the HTTP layer.
pub struct HttpMetrics {
    pub ttft: Histogram,
    pub e2e: Histogram,
    pub itl: Histogram,
    pub requests_total: AtomicU64,
    pub aborted_total: AtomicU64,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            ttft: Histogram::new(TTFT_BUCKETS),
            e2e: Histogram::new(E2E_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            requests_total: AtomicU64::new(0),
            aborted_total: AtomicU64::new(0),
        }
    }
}

fn gauge(out: &mut String, name: &str, help: &str, rows: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, v) in rows {
        let _ = writeln!(out, "{name}{{{labels}}} {v}");
    }
}

fn counter(out: &mut String, name: &str, help: &str, rows: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, v) in rows {
        let _ = writeln!(out, "{name}{{{labels}}} {v}");
    }
}

/// Render the whole exposition.
pub fn render(engine: &Engine, http: &HttpMetrics, model_name: &str) -> String {
    let stats = engine.stats();
    let base =
        format!("model_name=\"{model_name}\",engine_type=\"unified\",tp_rank=\"0\",pp_rank=\"0\"");
    let per_dp = |f: &dyn Fn(&loupe_engine::SchedulerStats) -> f64| -> Vec<(String, f64)> {
        stats
            .iter()
            .enumerate()
            .map(|(dp, s)| (format!("{base},dp_rank=\"{dp}\""), f(s)))
            .collect()
    };
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
    let lu = |a: &std::sync::atomic::AtomicUsize| a.load(Ordering::Relaxed) as f64;
    let mut out = String::with_capacity(8192);
    gauge(
        &mut out,
        "sglang:num_running_reqs",
        "The number of running requests.",
        &per_dp(&|s| lu(&s.running)),
    );
    gauge(
        &mut out,
        "sglang:num_queue_reqs",
        "The number of requests in the waiting queue.",
        &per_dp(&|s| lu(&s.queued)),
    );
    gauge(
        &mut out,
        "sglang:num_used_tokens",
        "The number of KV cache tokens in use by requests.",
        &per_dp(&|s| lu(&s.kv_used_tokens)),
    );
    gauge(
        &mut out,
        "sglang:max_total_num_tokens",
        "KV cache size in tokens.",
        &per_dp(&|s| lu(&s.kv_total_tokens)),
    );
    gauge(
        &mut out,
        "sglang:token_usage",
        "The token usage (used / total KV tokens).",
        &per_dp(&|s| lu(&s.kv_used_tokens) / lu(&s.kv_total_tokens).max(1.0)),
    );
    gauge(
        &mut out,
        "sglang:cache_hit_rate",
        "The prefix cache hit rate (cached / prompt tokens).",
        &per_dp(&|s| ld(&s.cached_tokens_total) / ld(&s.prompt_tokens_total).max(1.0)),
    );
    gauge(
        &mut out,
        "sglang:gen_throughput",
        "The generation throughput (token/s).",
        &per_dp(&|s| s.gen_throughput()),
    );
    counter(
        &mut out,
        "sglang:prompt_tokens_total",
        "Number of prefill tokens processed.",
        &per_dp(&|s| ld(&s.prompt_tokens_total)),
    );
    counter(
        &mut out,
        "sglang:generation_tokens_total",
        "Number of generation tokens processed.",
        &per_dp(&|s| ld(&s.generation_tokens_total)),
    );
    counter(
        &mut out,
        "sglang:cached_tokens_total",
        "Number of prompt tokens served from the prefix cache.",
        &per_dp(&|s| ld(&s.cached_tokens_total)),
    );
    counter(
        &mut out,
        "sglang:num_retractions_total",
        "Number of request retractions.",
        &per_dp(&|s| ld(&s.retractions_total)),
    );
    counter(
        &mut out,
        "sglang:forward_steps_total",
        "Number of scheduler steps (batches).",
        &per_dp(&|s| ld(&s.steps_total)),
    );
    counter(
        &mut out,
        "sglang:num_requests_total",
        "Number of requests received.",
        &[(base.clone(), ld(&http.requests_total))],
    );
    counter(
        &mut out,
        "sglang:num_aborted_requests_total",
        "Number of requests aborted.",
        &[(base.clone(), ld(&http.aborted_total))],
    );
    http.ttft.render(
        &mut out,
        "sglang:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        &base,
    );
    http.itl.render(
        &mut out,
        "sglang:inter_token_latency_seconds",
        "Histogram of inter-token latency in seconds.",
        &base,
    );
    http.e2e.render(
        &mut out,
        "sglang:e2e_request_latency_seconds",
        "Histogram of End-to-end request latency in seconds",
        &base,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        let mut out = String::new();
        h.render(&mut out, "x", "help", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.1\"} 1"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"1\"} 2"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3"), "{out}");
    }
}
