//! `--scrape-metrics [MS]`: the server's `/metrics` polled on a task of its own while a run is
//! measured, every series kept on the run's clock (seconds from its start), then summed up:
//! queue and running requests, KV-cache usage, preemptions (vLLM) or retractions (SGLang), and
//! the prefix-cache hit rate over the run from the counters' deltas. SGLang's and vLLM's names
//! (engines-and-metrics.md section 2); labelled series (per DP rank: vLLM's `engine`,
//! SGLang's `dp_rank`) are kept apart in the series and summed across ranks in the summary.
//!
//! A server with no `/metrics` (SGLang without --enable-metrics answers 404) gets one warning,
//! which names the flag, and the run goes on without the scraper.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use loupe_client::{Sample, Server};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A sample's labels, in the order written.
type Labels = Vec<(String, String)>;

/// Each scrape: when it was taken and what it read.
type Scrapes = Vec<(Instant, Vec<Sample>)>;

/// One series: a metric name and its labels, its values at each scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: Labels,
    /// (seconds from the run's start, value).
    pub points: Vec<(f64, f64)>,
}

/// Mean and maximum of a gauge over the scrapes (summed over ranks at each scrape).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanMax {
    pub mean: f64,
    pub max: f64,
}

/// What the series say about the run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScrapeSummary {
    pub queue: Option<MeanMax>,
    pub running: Option<MeanMax>,
    /// KV-cache usage as a fraction (0-1), the largest rank's at each scrape.
    pub kv_usage: Option<MeanMax>,
    /// Preempted (vLLM) or retracted (SGLang) requests during the run.
    pub preemptions: Option<f64>,
    /// Prefix-cache hits over the run: hit tokens over prompt (or queried) tokens, in percent.
    pub cache_hit_pct: Option<f64>,
}

/// The scraper's results.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scraped {
    pub interval: Duration,
    pub scrapes: usize,
    pub series: Vec<Series>,
    pub summary: ScrapeSummary,
    /// Why scraping stopped, when it did (no /metrics, a parse error).
    pub warning: Option<String>,
}

/// A scraper running beside a measured run.
pub struct Scraper {
    stop: watch::Sender<bool>,
    task: JoinHandle<(Scrapes, Option<String>)>,
    interval: Duration,
}

impl Scraper {
    /// Take the first scrape now (awaited, so the counters' baseline precedes every request of
    /// the run whatever the load), then poll `server`'s /metrics every `interval`.
    pub async fn start(server: Server, interval: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let at = Instant::now();
        let first = server.metrics().await;
        let task = tokio::spawn(async move {
            let mut scrapes = Vec::new();
            let mut tick = tokio::time::interval_at((at + interval).into(), interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut next = Some((at, first));
            loop {
                let (at, got) = match next.take() {
                    Some(first) => first,
                    None => {
                        tokio::select! {
                            _ = tick.tick() => {}
                            _ = stopped.changed() => break,
                        }
                        (Instant::now(), server.metrics().await)
                    }
                };
                match got {
                    Ok(samples) => scrapes.push((at, samples)),
                    Err(e) => {
                        // A 404's message names --enable-metrics (loupe-client's NoMetrics).
                        let why = format!(
                            "--scrape-metrics: {e}; the run goes on without server metrics"
                        );
                        // Said once, in the run's warnings (not also in the log).
                        tracing::debug!("{why}");
                        return (scrapes, Some(why));
                    }
                }
            }
            // One last scrape, so the counters' deltas cover the whole run.
            if let Ok(samples) = server.metrics().await {
                scrapes.push((Instant::now(), samples));
            }
            (scrapes, None)
        });
        Scraper {
            stop,
            task,
            interval,
        }
    }

    /// Stop, and put the scrapes on the clock of a run that started at `t0`.
    pub async fn finish(self, t0: Instant) -> Scraped {
        let _ = self.stop.send(true);
        let (scrapes, warning) = self
            .task
            .await
            .unwrap_or_else(|e| (Vec::new(), Some(format!("--scrape-metrics: {e}"))));
        let timed: Vec<(f64, Vec<Sample>)> = scrapes
            .into_iter()
            .map(|(at, s)| (signed_seconds(at, t0), s))
            .collect();
        Scraped {
            interval: self.interval,
            scrapes: timed.len(),
            summary: summarize(&timed),
            series: series(&timed),
            warning,
        }
    }
}

fn signed_seconds(at: Instant, t0: Instant) -> f64 {
    match at.checked_duration_since(t0) {
        Some(d) => d.as_secs_f64(),
        None => -(t0 - at).as_secs_f64(),
    }
}

/// Every series but the `_created` timestamps single-process vLLM adds.
pub fn series(scrapes: &[(f64, Vec<Sample>)]) -> Vec<Series> {
    let mut by: BTreeMap<(String, Labels), Vec<(f64, f64)>> = BTreeMap::new();
    for (t, samples) in scrapes {
        for s in samples.iter().filter(|s| !s.name.ends_with("_created")) {
            by.entry((s.name.clone(), s.labels.clone()))
                .or_default()
                .push((*t, s.value));
        }
    }
    by.into_iter()
        .map(|((name, labels), points)| Series {
            name,
            labels,
            points,
        })
        .collect()
}

/// The samples of the first of `names` present in a scrape.
fn named<'a>(samples: &'a [Sample], names: &[&str]) -> Vec<&'a Sample> {
    for n in names {
        let found: Vec<&Sample> = samples.iter().filter(|s| s.name == *n).collect();
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

/// A counter's value at one scrape, over its labels: SGLang's `cache_source="total"` when
/// present (the sources add up to it), else the sum.
fn counter(samples: &[Sample], names: &[&str]) -> Option<f64> {
    let s = named(samples, names);
    if s.is_empty() {
        return None;
    }
    if let Some(total) = s.iter().find(|x| x.label("cache_source") == Some("total")) {
        return Some(total.value);
    }
    Some(s.iter().map(|x| x.value).sum())
}

fn gauge(scrapes: &[(f64, Vec<Sample>)], names: &[&str], max_rank: bool) -> Option<MeanMax> {
    let values: Vec<f64> = scrapes
        .iter()
        .filter_map(|(_, s)| {
            let v = named(s, names);
            (!v.is_empty()).then(|| {
                let it = v.iter().map(|x| x.value);
                if max_rank {
                    it.fold(f64::MIN, f64::max)
                } else {
                    it.sum()
                }
            })
        })
        .collect();
    if values.is_empty() {
        return None;
    }
    Some(MeanMax {
        mean: values.iter().sum::<f64>() / values.len() as f64,
        max: values.iter().copied().fold(f64::MIN, f64::max),
    })
}

fn delta(scrapes: &[(f64, Vec<Sample>)], names: &[&str]) -> Option<f64> {
    let first = scrapes.iter().find_map(|(_, s)| counter(s, names))?;
    let last = scrapes.iter().rev().find_map(|(_, s)| counter(s, names))?;
    Some(last - first)
}

/// The gauges a run's page and summary read, SGLang's name first, then vLLM's.
pub const RUNNING: &[&str] = &["sglang:num_running_reqs", "vllm:num_requests_running"];
pub const QUEUE: &[&str] = &["sglang:num_queue_reqs", "vllm:num_requests_waiting"];
pub const KV_USAGE: &[&str] = &["sglang:token_usage", "vllm:kv_cache_usage_perc"];

/// The series (one per label set, e.g. per DP rank) of the first of `names` that was scraped.
pub fn named_series<'a>(series: &'a [Series], names: &[&str]) -> Vec<&'a Series> {
    for n in names {
        let found: Vec<&Series> = series.iter().filter(|s| s.name == *n).collect();
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

impl Scraped {
    /// The scrape back from a JSONL record's `server_metrics` (as `report::record` writes it),
    /// for a page rebuilt from saved outputs. None when the record has none or it is misshapen.
    pub fn from_record(v: &serde_json::Value) -> Option<Scraped> {
        let mm = |m: &serde_json::Value| -> Option<MeanMax> {
            Some(MeanMax {
                mean: m.get("mean")?.as_f64()?,
                max: m.get("max")?.as_f64()?,
            })
        };
        let su = v.get("summary")?;
        let mut series = Vec::new();
        for s in v.get("series")?.as_array()? {
            let labels = s
                .get("labels")?
                .as_object()?
                .iter()
                .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect::<Option<Labels>>()?;
            let t = s.get("t")?.as_array()?;
            let val = s.get("v")?.as_array()?;
            let points = t
                .iter()
                .zip(val)
                .map(|(t, v)| Some((t.as_f64()?, v.as_f64()?)))
                .collect::<Option<Vec<_>>>()?;
            series.push(Series {
                name: s.get("name")?.as_str()?.to_string(),
                labels,
                points,
            });
        }
        Some(Scraped {
            interval: Duration::from_millis(v.get("interval_ms")?.as_u64()?),
            scrapes: v.get("scrapes")?.as_u64()? as usize,
            series,
            summary: ScrapeSummary {
                queue: su.get("queue").and_then(mm),
                running: su.get("running").and_then(mm),
                kv_usage: su.get("kv_usage").and_then(mm),
                preemptions: su.get("preemptions").and_then(serde_json::Value::as_f64),
                cache_hit_pct: su.get("cache_hit_pct").and_then(serde_json::Value::as_f64),
            },
            warning: v
                .get("warning")
                .and_then(|w| w.as_str())
                .map(str::to_string),
        })
    }
}

pub fn summarize(scrapes: &[(f64, Vec<Sample>)]) -> ScrapeSummary {
    let hits = delta(
        scrapes,
        &["sglang:cached_tokens_total", "vllm:prefix_cache_hits_total"],
    );
    let base = delta(
        scrapes,
        &[
            "sglang:prompt_tokens_total",
            "vllm:prefix_cache_queries_total",
        ],
    );
    ScrapeSummary {
        queue: gauge(scrapes, QUEUE, false),
        running: gauge(scrapes, RUNNING, false),
        kv_usage: gauge(scrapes, KV_USAGE, true),
        preemptions: delta(
            scrapes,
            &[
                "vllm:num_preemptions_total",
                "sglang:num_retracted_requests_total",
                "sglang:num_retractions_total",
            ],
        ),
        cache_hit_pct: match (hits, base) {
            (Some(h), Some(b)) if b > 0.0 => Some(100.0 * h / b),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(text: &str) -> Vec<Sample> {
        loupe_client::metrics::parse(text).unwrap()
    }

    #[test]
    fn vllm_series_per_engine_and_their_summary() {
        let a = scrape(
            "vllm:num_requests_waiting{engine=\"0\"} 2\nvllm:num_requests_waiting{engine=\"1\"} 4\n\
             vllm:kv_cache_usage_perc{engine=\"0\"} 0.5\nvllm:kv_cache_usage_perc{engine=\"1\"} 0.25\n\
             vllm:num_preemptions_total{engine=\"0\"} 1\nvllm:prefix_cache_queries_total 100\n\
             vllm:prefix_cache_hits_total 10\nvllm:prompt_tokens_created 1.7e9\n",
        );
        let b = scrape(
            "vllm:num_requests_waiting{engine=\"0\"} 0\nvllm:num_requests_waiting{engine=\"1\"} 0\n\
             vllm:kv_cache_usage_perc{engine=\"0\"} 0.75\nvllm:kv_cache_usage_perc{engine=\"1\"} 0.5\n\
             vllm:num_preemptions_total{engine=\"0\"} 4\nvllm:prefix_cache_queries_total 300\n\
             vllm:prefix_cache_hits_total 110\n",
        );
        let scrapes = vec![(-0.1, a), (1.0, b)];
        let s = summarize(&scrapes);
        assert_eq!(
            s.queue,
            Some(MeanMax {
                mean: 3.0,
                max: 6.0
            })
        );
        assert_eq!(
            s.kv_usage,
            Some(MeanMax {
                mean: 0.625,
                max: 0.75
            })
        );
        assert_eq!(s.preemptions, Some(3.0));
        assert_eq!(s.cache_hit_pct, Some(50.0));
        let series = series(&scrapes);
        assert!(series.iter().all(|x| !x.name.ends_with("_created")));
        let waiting1 = series
            .iter()
            .find(|x| x.name == "vllm:num_requests_waiting" && x.labels[0].1 == "1")
            .unwrap();
        assert_eq!(waiting1.points, [(-0.1, 4.0), (1.0, 0.0)]);
    }

    #[test]
    fn sglang_cache_sources_count_once() {
        let at = |cached: f64, prompt: f64| {
            scrape(&format!(
                "sglang:cached_tokens_total{{cache_source=\"device\"}} {cached}\n\
                 sglang:cached_tokens_total{{cache_source=\"total\"}} {cached}\n\
                 sglang:prompt_tokens_total {prompt}\nsglang:num_queue_reqs 1\n"
            ))
        };
        let s = summarize(&[(0.0, at(0.0, 0.0)), (2.0, at(30.0, 120.0))]);
        assert_eq!(s.cache_hit_pct, Some(25.0));
        assert_eq!(
            s.queue,
            Some(MeanMax {
                mean: 1.0,
                max: 1.0
            })
        );
        assert_eq!(s.preemptions, None);
    }
}
