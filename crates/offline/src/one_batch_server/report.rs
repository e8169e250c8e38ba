//! One case's figures under one_batch_server's definitions, its JSONL record (upstream's keys,
//! order and rounding) and its `--pydantic-result-filename` entry.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::stream::BatchRecorder;

/// One measured case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    pub run_name: String,
    pub batch_size: usize,
    pub input_len: usize,
    pub output_len: usize,
    pub latency: f64,
    pub input_throughput: f64,
    pub output_throughput: f64,
    pub overall_throughput: f64,
    pub last_ttft: f64,
    /// `-1` when the server reports none.
    pub last_gen_throughput: f64,
    /// `-1` when the server reports none (no speculative decoding).
    pub acc_length: f64,
    pub total_output_tokens: u64,
    pub num_early_stopped: usize,
    pub steady_state_output_throughput: Option<f64>,
    pub steady_state_window_s: Option<f64>,
    pub cache_hit_rate: Option<f64>,
    /// The profile directory (profiled runs, and plain runs after the profiled pass).
    pub profile_link: Option<PathBuf>,
}

/// Python's `round(x, n)` for the values these records hold.
fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// The last non-null `internal_states[*].key`, else -1.
fn last_state(info: &Value, key: &str) -> f64 {
    info["internal_states"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .find_map(|s| s[key].as_f64())
        .unwrap_or(-1.0)
}

impl CaseResult {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn measure(
        run_name: &str,
        (bs, il, ol): (usize, usize, usize),
        replay_input: Option<usize>,
        ignore_eos: bool,
        latency: f64,
        rec: &BatchRecorder,
        server_info: &Value,
        cache_before: Option<(f64, f64)>,
        cache_after: Option<(f64, f64)>,
    ) -> CaseResult {
        let last_ttft = rec.last_ttft().unwrap_or(latency);
        let total_output = rec.total_output_tokens();
        // Under ignore_eos upstream divides every output token by the decode window (the
        // number its CI floors are calibrated to); otherwise only the window's own tokens.
        // Replay datasets always count the window's own tokens, and their real prompt tokens.
        let decode_tokens = if ignore_eos && replay_input.is_none() {
            total_output as f64
        } else {
            total_output as f64 - rec.tokens_before_all_started()
        };
        let total_input = replay_input.unwrap_or(bs * il) as f64;
        let steady = rec.steady_state();
        let cache_hit_rate = match (cache_before, cache_after) {
            (Some(b), Some(a)) if a.1 - b.1 > 0.0 => Some((a.0 - b.0) / (a.1 - b.1)),
            _ => None,
        };
        CaseResult {
            run_name: run_name.to_string(),
            batch_size: bs,
            input_len: il,
            output_len: ol,
            latency,
            input_throughput: total_input / last_ttft,
            output_throughput: decode_tokens / (latency - last_ttft),
            overall_throughput: (total_input + total_output as f64) / latency,
            last_ttft,
            last_gen_throughput: last_state(server_info, "last_gen_throughput"),
            acc_length: last_state(server_info, "avg_spec_accept_length"),
            total_output_tokens: total_output,
            num_early_stopped: rec.num_early_stopped(),
            steady_state_output_throughput: steady.map(|s| s.output_throughput()),
            steady_state_window_s: steady.map(|s| s.duration_s),
            cache_hit_rate,
            profile_link: None,
        }
    }

    /// The result-file line, upstream's `dump_to_jsonl`.
    pub fn to_json(&self) -> Value {
        json!({
            "run_name": self.run_name,
            "batch_size": self.batch_size,
            "input_len": self.input_len,
            "output_len": self.output_len,
            "latency": round(self.latency, 4),
            "input_throughput": round(self.input_throughput, 2),
            "output_throughput": round(self.output_throughput, 2),
            "overall_throughput": round(self.overall_throughput, 2),
            "last_ttft": round(self.last_ttft, 4),
            "last_gen_throughput": round(self.last_gen_throughput, 2),
            "acc_length": round(self.acc_length, 2),
            "total_output_tokens": self.total_output_tokens,
            "num_early_stopped": self.num_early_stopped,
            "steady_state_output_throughput": self.steady_state_output_throughput.map(|v| round(v, 2)),
            "steady_state_window_s": self.steady_state_window_s.map(|v| round(v, 4)),
            "cache_hit_rate": self.cache_hit_rate.map(|v| round(v, 4)),
        })
    }
}

/// The first sorted trace in `dir` whose name contains one of `marks`.
fn first_trace(dir: &std::path::Path, marks: &[&str]) -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".trace.json.gz") && marks.iter().any(|m| n.contains(m)))
        .collect();
    names.sort();
    names
        .into_iter()
        .next()
        .map(|n| dir.join(n).display().to_string())
}

/// One entry of the `--pydantic-result-filename` array (`nightly_bench_utils`' model).
pub fn pydantic_record(r: &CaseResult, model_path: &str, server_args: Option<&[String]>) -> Value {
    let link = |marks: &[&str]| {
        r.profile_link
            .as_deref()
            .and_then(|d| first_trace(d, marks))
    };
    json!({
        "model_path": model_path,
        "run_name": r.run_name,
        "batch_size": r.batch_size,
        "input_len": r.input_len,
        "output_len": r.output_len,
        "latency": r.latency,
        "input_throughput": r.input_throughput,
        "output_throughput": r.output_throughput,
        "overall_throughput": r.overall_throughput,
        "last_ttft": r.last_ttft,
        "last_gen_throughput": r.last_gen_throughput,
        "acc_length": r.acc_length,
        "profile_link_extend": link(&["extend", "EXTEND", "prefill"]),
        "profile_link_decode": link(&["decode", "DECODE"]),
        "server_args": server_args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_as_upstream_and_keep_its_key_order() {
        let mut rec = BatchRecorder::new(2);
        rec.chunk(0, 1, None, 0.5);
        rec.chunk(1, 1, None, 1.0);
        rec.chunk(0, 4, Some("length"), 2.0);
        rec.chunk(1, 4, Some("length"), 2.0);
        let info = json!({"internal_states": [{"last_gen_throughput": 12.345, "avg_spec_accept_length": null}]});
        let r = CaseResult::measure(
            "default",
            (2, 10, 4),
            None,
            true,
            2.123456,
            &rec,
            &info,
            Some((0.0, 0.0)),
            Some((5.0, 20.0)),
        );
        let v = r.to_json();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "run_name",
                "batch_size",
                "input_len",
                "output_len",
                "latency",
                "input_throughput",
                "output_throughput",
                "overall_throughput",
                "last_ttft",
                "last_gen_throughput",
                "acc_length",
                "total_output_tokens",
                "num_early_stopped",
                "steady_state_output_throughput",
                "steady_state_window_s",
                "cache_hit_rate"
            ]
        );
        assert_eq!(v["latency"], 2.1235);
        assert_eq!(v["last_ttft"], 1.0);
        assert_eq!(v["input_throughput"], 20.0);
        // 8 output tokens over the 1.123456 s after the last first token.
        assert_eq!(v["output_throughput"], 7.12);
        assert_eq!(v["last_gen_throughput"], 12.35);
        assert_eq!(v["acc_length"], -1.0);
        assert_eq!(v["cache_hit_rate"], 0.25);
        assert_eq!(v["total_output_tokens"], 8);
    }
}
