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

    fn render(&self, out: &mut Exposition, name: &str, help: &str, labels: &[(&str, &str)]) {
        out.family(name, help, MetricType::Histogram);
        let bucket = format!("{name}_bucket");
        let mut cum = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cum += c.load(Ordering::Relaxed);
            let le = b.to_string();
            out.sample(&bucket, labels, &[("le", &le)], cum as f64);
        }
        let count = self.count.load(Ordering::Relaxed) as f64;
        out.sample(&bucket, labels, &[("le", "+Inf")], count);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        out.sample(&format!("{name}_sum"), labels, &[], sum);
        out.sample(&format!("{name}_count"), labels, &[], count);
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Gauge,
    Counter,
    Histogram,
}

impl MetricType {
    fn name(self) -> &'static str {
        match self {
            MetricType::Gauge => "gauge",
            MetricType::Counter => "counter",
            MetricType::Histogram => "histogram",
        }
    }
}

/// The Prometheus text exposition format (0.0.4), written one metric family at a time: a
/// `# HELP` and `# TYPE` line, then its samples. Label values and HELP text are escaped as
/// the format requires (label values: backslash, double quote, newline; HELP: backslash,
/// newline), so that no served model name can break a scrape. Metric and label names are
/// loupe's own constants and are written as they are.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Self {
        Exposition {
            out: String::with_capacity(8192),
        }
    }

    /// Start the family `name`.
    pub fn family(&mut self, name: &str, help: &str, kind: MetricType) {
        let out = &mut self.out;
        let _ = write!(out, "# HELP {name} ");
        for c in help.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        let _ = writeln!(out, "\n# TYPE {name} {}", kind.name());
    }

    /// One sample: `name{labels,extra} value`.
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        extra: &[(&str, &str)],
        value: f64,
    ) {
        let out = &mut self.out;
        out.push_str(name);
        let mut sep = '{';
        for (k, v) in labels.iter().chain(extra) {
            out.push(sep);
            sep = ',';
            out.push_str(k);
            out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        if sep == ',' {
            out.push('}');
        }
        out.push(' ');
        // Finite values as Rust prints them (`3`, `0.25`); the format's spellings otherwise.
        match value {
            v if v.is_nan() => out.push_str("NaN"),
            v if v == f64::INFINITY => out.push_str("+Inf"),
            v if v == f64::NEG_INFINITY => out.push_str("-Inf"),
            v => {
                let _ = write!(out, "{v}");
            }
        }
        out.push('\n');
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// One family: a sample per row, labelled with its data-parallel rank when it has one.
fn family(
    out: &mut Exposition,
    name: &str,
    help: &str,
    kind: MetricType,
    labels: &[(&str, &str)],
    rows: &[(Option<String>, f64)],
) {
    out.family(name, help, kind);
    for (dp, v) in rows {
        match dp {
            Some(dp) => out.sample(name, labels, &[("dp_rank", dp)], *v),
            None => out.sample(name, labels, &[], *v),
        }
    }
}

/// Render the whole exposition.
pub fn render(engine: &Engine, http: &HttpMetrics, model_name: &str) -> String {
    let stats = engine.stats();
    let base: &[(&str, &str)] = &[
        ("model_name", model_name),
        ("engine_type", "unified"),
        ("tp_rank", "0"),
        ("pp_rank", "0"),
    ];
    let per_dp = |f: &dyn Fn(&loupe_engine::SchedulerStats) -> f64| -> Vec<(Option<String>, f64)> {
        stats
            .iter()
            .enumerate()
            .map(|(dp, s)| (Some(dp.to_string()), f(s)))
            .collect()
    };
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
    let lu = |a: &std::sync::atomic::AtomicUsize| a.load(Ordering::Relaxed) as f64;
    let mut out = Exposition::new();
    family(
        &mut out,
        "sglang:num_running_reqs",
        "The number of running requests.",
        MetricType::Gauge,
        base,
        &per_dp(&|s| lu(&s.running)),
    );
    family(
        &mut out,
        "sglang:num_queue_reqs",
        "The number of requests in the waiting queue.",
        MetricType::Gauge,
        base,
        &per_dp(&|s| lu(&s.queued)),
    );
    family(
        &mut out,
        "sglang:num_used_tokens",
        "The number of KV cache tokens in use by requests.",
        MetricType::Gauge,
        base,
        &per_dp(&|s| lu(&s.kv_used_tokens)),
    );
    family(
        &mut out,
        "sglang:max_total_num_tokens",
        "KV cache size in tokens.",
        MetricType::Gauge,
        base,
        &per_dp(&|s| lu(&s.kv_total_tokens)),
    );
    family(
        &mut out,
        "sglang:token_usage",
        "The token usage (used / total KV tokens).",
        MetricType::Gauge,
        base,
        &per_dp(&|s| lu(&s.kv_used_tokens) / lu(&s.kv_total_tokens).max(1.0)),
    );
    family(
        &mut out,
        "sglang:cache_hit_rate",
        "The prefix cache hit rate (cached / prompt tokens).",
        MetricType::Gauge,
        base,
        &per_dp(&|s| ld(&s.cached_tokens_total) / ld(&s.prompt_tokens_total).max(1.0)),
    );
    family(
        &mut out,
        "sglang:gen_throughput",
        "The generation throughput (token/s).",
        MetricType::Gauge,
        base,
        &per_dp(&|s| s.gen_throughput()),
    );
    family(
        &mut out,
        "sglang:prompt_tokens_total",
        "Number of prefill tokens processed.",
        MetricType::Counter,
        base,
        &per_dp(&|s| ld(&s.prompt_tokens_total)),
    );
    family(
        &mut out,
        "sglang:generation_tokens_total",
        "Number of generation tokens processed.",
        MetricType::Counter,
        base,
        &per_dp(&|s| ld(&s.generation_tokens_total)),
    );
    family(
        &mut out,
        "sglang:cached_tokens_total",
        "Number of prompt tokens served from the prefix cache.",
        MetricType::Counter,
        base,
        &per_dp(&|s| ld(&s.cached_tokens_total)),
    );
    family(
        &mut out,
        "sglang:num_retractions_total",
        "Number of request retractions.",
        MetricType::Counter,
        base,
        &per_dp(&|s| ld(&s.retractions_total)),
    );
    family(
        &mut out,
        "sglang:forward_steps_total",
        "Number of scheduler steps (batches).",
        MetricType::Counter,
        base,
        &per_dp(&|s| ld(&s.steps_total)),
    );
    family(
        &mut out,
        "sglang:num_requests_total",
        "Number of requests received.",
        MetricType::Counter,
        base,
        &[(None, ld(&http.requests_total))],
    );
    family(
        &mut out,
        "sglang:num_aborted_requests_total",
        "Number of requests aborted.",
        MetricType::Counter,
        base,
        &[(None, ld(&http.aborted_total))],
    );
    http.ttft.render(
        &mut out,
        "sglang:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        base,
    );
    http.itl.render(
        &mut out,
        "sglang:inter_token_latency_seconds",
        "Histogram of inter-token latency in seconds.",
        base,
    );
    http.e2e.render(
        &mut out,
        "sglang:e2e_request_latency_seconds",
        "Histogram of End-to-end request latency in seconds",
        base,
    );
    out.finish()
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
        let mut out = Exposition::new();
        h.render(&mut out, "x", "help", &[("a", "b")]);
        let out = out.finish();
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.1\"} 1"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"1\"} 2"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3"), "{out}");
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut e = Exposition::new();
        e.family("m", "a \\ b\nc \"d\"", MetricType::Gauge);
        e.sample(
            "m",
            &[("model_name", "say \"hi\"\nC:\\x")],
            &[("dp_rank", "0")],
            1.5,
        );
        e.sample("m_total", &[], &[], 3.0);
        assert_eq!(
            e.finish(),
            concat!(
                "# HELP m a \\\\ b\\nc \"d\"\n",
                "# TYPE m gauge\n",
                "m{model_name=\"say \\\"hi\\\"\\nC:\\\\x\",dp_rank=\"0\"} 1.5\n",
                "m_total 3\n",
            )
        );
    }

    #[test]
    fn values_print_as_today_and_non_finite_as_the_format_spells_them() {
        let mut e = Exposition::new();
        for v in [
            0.0,
            3.0,
            0.25,
            1e-7,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            e.sample("v", &[], &[], v);
        }
        assert_eq!(
            e.finish(),
            "v 0\nv 3\nv 0.25\nv 0.0000001\nv NaN\nv +Inf\nv -Inf\n"
        );
    }
}
