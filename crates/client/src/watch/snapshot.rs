//! One scrape of a server's metrics as per-DP-rank counters and gauges, whatever the engine
//! calls them (../shared/spec/engines-and-metrics.md §2): SGLang labels scheduler metrics
//! with `dp_rank` (absent when dp = 1) and keeps its token counters cluster-wide; vLLM labels
//! every engine metric with `engine` (= DP rank) and suffixes counters with `_total`
//! (single-process vLLM also emits `_created` series, which are dropped); trtllm-serve's
//! `/metrics` is JSON iteration statistics.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::engine::Engine;
use crate::metrics::Sample;

/// What one DP rank reported. `None`: the engine does not report it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RankCounters {
    pub running: f64,
    pub queued: f64,
    /// Fraction 0-1.
    pub kv_usage: Option<f64>,
    /// Generated tokens so far (vLLM: per rank; SGLang: only on the server's totals).
    pub generated_total: Option<f64>,
    /// SGLang's `gen_throughput` gauge, tokens/s.
    pub throughput_gauge: Option<f64>,
    /// SGLang's `cache_hit_rate` gauge (latest prefill batch).
    pub cache_hit_rate: Option<f64>,
    /// vLLM's prefix-cache token counters (queries, hits).
    pub prefix_queries_total: Option<f64>,
    pub prefix_hits_total: Option<f64>,
    /// Retractions (SGLang) or preemptions (vLLM) so far.
    pub preemptions_total: Option<f64>,
}

/// One scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub ranks: BTreeMap<u32, RankCounters>,
    /// Server-wide generated tokens (SGLang's tokenizer-side counter).
    pub generated_total: Option<f64>,
    /// The TTFT histogram's running sum (seconds) and count, over every rank.
    pub ttft_sum: Option<f64>,
    pub ttft_count: Option<f64>,
}

fn add(slot: &mut Option<f64>, v: f64) {
    *slot = Some(slot.unwrap_or(0.0) + v);
}

impl Snapshot {
    /// The engine's samples; series of one name and rank that differ in other labels
    /// (`is_streaming`, `pid`) are summed.
    pub fn from_samples(engine: Engine, samples: &[Sample]) -> Snapshot {
        let mut s = Snapshot::default();
        let (rank_label, p) = match engine {
            Engine::Vllm => ("engine", "vllm:"),
            _ => ("dp_rank", "sglang:"),
        };
        for m in samples {
            let Some(name) = m.name.strip_prefix(p) else {
                continue;
            };
            if name.ends_with("_created") {
                continue;
            }
            let rank = m
                .label(rank_label)
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            let v = m.value;
            if !v.is_finite() {
                continue;
            }
            match name {
                "time_to_first_token_seconds_sum" => add(&mut s.ttft_sum, v),
                "time_to_first_token_seconds_count" => add(&mut s.ttft_count, v),
                "generation_tokens_total" if engine != Engine::Vllm => {
                    add(&mut s.generated_total, v)
                }
                _ => {
                    let r = s.ranks.entry(rank).or_default();
                    match (engine, name) {
                        (Engine::Vllm, "num_requests_running") | (_, "num_running_reqs") => {
                            r.running += v
                        }
                        (Engine::Vllm, "num_requests_waiting") | (_, "num_queue_reqs") => {
                            r.queued += v
                        }
                        (Engine::Vllm, "kv_cache_usage_perc") | (_, "token_usage") => {
                            r.kv_usage = Some(r.kv_usage.unwrap_or(0.0).max(v))
                        }
                        (Engine::Vllm, "generation_tokens_total") => add(&mut r.generated_total, v),
                        (_, "gen_throughput") => add(&mut r.throughput_gauge, v),
                        (_, "cache_hit_rate") => r.cache_hit_rate = Some(v),
                        (_, "prefix_cache_queries_total") => add(&mut r.prefix_queries_total, v),
                        (_, "prefix_cache_hits_total") => add(&mut r.prefix_hits_total, v),
                        (_, "num_preemptions_total")
                        | (_, "num_retracted_requests_total")
                        | (_, "num_retractions_total") => add(&mut r.preemptions_total, v),
                        _ => {}
                    }
                }
            }
        }
        s
    }

    /// trtllm-serve's JSON `/metrics`: a list of iteration statistics, the last one current
    /// (`numActiveRequests`, `numQueuedRequests`, `kvCacheStats.{usedNumBlocks,maxNumBlocks,
    /// cacheHitRate}`; key names from TensorRT-LLM's `IterationStats`, unverified against a
    /// running server).
    ///
    /// trtllm-serve hands out the statistics queued since the last call, so an empty list
    /// means no iteration ran in the interval: an idle engine (no running request).
    pub fn from_trtllm_json(v: &Value) -> Option<Snapshot> {
        let last = match v {
            Value::Array(items) if items.is_empty() => {
                return Some(Snapshot {
                    ranks: BTreeMap::from([(0, RankCounters::default())]),
                    ..Default::default()
                });
            }
            Value::Array(items) => items.last()?,
            Value::Object(_) => v,
            _ => return None,
        };
        let num = |v: &Value| v.as_f64();
        let running = num(&last["numActiveRequests"])?;
        let kv = &last["kvCacheStats"];
        let kv_usage = match (num(&kv["usedNumBlocks"]), num(&kv["maxNumBlocks"])) {
            (Some(u), Some(m)) if m > 0.0 => Some(u / m),
            _ => None,
        };
        let r = RankCounters {
            running,
            queued: num(&last["numQueuedRequests"]).unwrap_or(0.0),
            kv_usage,
            cache_hit_rate: num(&kv["cacheHitRate"]),
            ..Default::default()
        };
        Some(Snapshot {
            ranks: BTreeMap::from([(0, r)]),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::parse;

    #[test]
    fn sglang_ranks_and_server_totals() {
        let text = "sglang:num_running_reqs{model_name=\"m\",dp_rank=\"0\"} 3\n\
                    sglang:num_running_reqs{model_name=\"m\",dp_rank=\"1\"} 1\n\
                    sglang:num_queue_reqs{dp_rank=\"0\"} 5\n\
                    sglang:token_usage{dp_rank=\"1\"} 0.25\n\
                    sglang:gen_throughput{dp_rank=\"0\"} 120.5\n\
                    sglang:generation_tokens_total{is_streaming=\"true\"} 10\n\
                    sglang:generation_tokens_total{is_streaming=\"false\"} 5\n\
                    sglang:time_to_first_token_seconds_sum 2.5\n\
                    sglang:time_to_first_token_seconds_count 10\n\
                    sglang:num_retractions_total{dp_rank=\"1\"} 2\n";
        let s = Snapshot::from_samples(Engine::Sglang, &parse(text).unwrap());
        assert_eq!(s.ranks.len(), 2);
        assert_eq!((s.ranks[&0].running, s.ranks[&0].queued), (3.0, 5.0));
        assert_eq!(s.ranks[&1].kv_usage, Some(0.25));
        assert_eq!(s.ranks[&0].throughput_gauge, Some(120.5));
        assert_eq!(s.ranks[&1].preemptions_total, Some(2.0));
        assert_eq!(s.generated_total, Some(15.0), "summed over is_streaming");
        assert_eq!((s.ttft_sum, s.ttft_count), (Some(2.5), Some(10.0)));
    }

    #[test]
    fn vllm_engines_are_ranks_and_created_series_are_dropped() {
        let text = "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 2.0\n\
                    vllm:num_requests_waiting{engine=\"1\",model_name=\"m\"} 4.0\n\
                    vllm:kv_cache_usage_perc{engine=\"1\",model_name=\"m\"} 0.5\n\
                    vllm:generation_tokens_total{engine=\"0\",model_name=\"m\"} 100.0\n\
                    vllm:generation_tokens_created{engine=\"0\",model_name=\"m\"} 1.7e9\n\
                    vllm:prefix_cache_queries_total{engine=\"0\"} 40\n\
                    vllm:prefix_cache_hits_total{engine=\"0\"} 10\n\
                    vllm:num_preemptions_total{engine=\"1\"} 3\n\
                    vllm:time_to_first_token_seconds_sum{engine=\"0\"} 1.0\n\
                    vllm:time_to_first_token_seconds_sum{engine=\"1\"} 3.0\n\
                    vllm:time_to_first_token_seconds_count{engine=\"0\"} 2\n";
        let s = Snapshot::from_samples(Engine::Vllm, &parse(text).unwrap());
        assert_eq!(s.ranks[&0].running, 2.0);
        assert_eq!(s.ranks[&1].queued, 4.0);
        assert_eq!(s.ranks[&0].generated_total, Some(100.0));
        assert_eq!(s.ranks[&0].prefix_hits_total, Some(10.0));
        assert_eq!(s.ranks[&1].preemptions_total, Some(3.0));
        assert_eq!(s.ttft_sum, Some(4.0));
        assert_eq!(s.generated_total, None);
    }

    #[test]
    fn trtllm_iteration_stats() {
        let v = serde_json::json!([{"numActiveRequests": 1},
            {"numActiveRequests": 4, "numQueuedRequests": 2,
             "kvCacheStats": {"usedNumBlocks": 30, "maxNumBlocks": 120, "cacheHitRate": 0.4}}]);
        let s = Snapshot::from_trtllm_json(&v).unwrap();
        assert_eq!((s.ranks[&0].running, s.ranks[&0].queued), (4.0, 2.0));
        assert_eq!(s.ranks[&0].kv_usage, Some(0.25));
        assert!(Snapshot::from_trtllm_json(&serde_json::json!("x")).is_none());
        assert!(Snapshot::from_trtllm_json(&serde_json::json!([{"iter": 1}])).is_none());
        let idle = Snapshot::from_trtllm_json(&serde_json::json!([])).unwrap();
        assert_eq!(
            idle.ranks[&0].running, 0.0,
            "no iteration since the last scrape"
        );
    }
}
