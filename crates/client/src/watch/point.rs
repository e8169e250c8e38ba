//! Two scrapes of one server, `dt` seconds apart, as what the view shows and the rules test:
//! per rank the load, KV usage, throughput, cache hit rate and preemptions in the interval;
//! for the server the TTFT of the requests that got their first token in the interval (from
//! the histogram's sum and count) and the imbalance across its DP ranks.

use serde::Serialize;

use super::snapshot::{RankCounters, Snapshot};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankPoint {
    pub rank: u32,
    pub running: f64,
    pub queued: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_usage: Option<f64>,
    /// Generated tokens/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_hit_rate: Option<f64>,
    /// Retractions/preemptions in the interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preemptions: Option<f64>,
}

impl RankPoint {
    /// What a rank has to do: running plus queued requests.
    pub fn load(&self) -> f64 {
        self.running + self.queued
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerPoint {
    /// Seconds since the watch began.
    pub t: f64,
    pub ranks: Vec<RankPoint>,
    /// Generated tokens/s over every rank.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput: Option<f64>,
    /// Mean TTFT (s) of the interval's first tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft: Option<f64>,
    /// max/mean of the ranks' load; 1 when idle or with one rank.
    pub dp_imbalance: f64,
}

impl ServerPoint {
    pub fn running(&self) -> f64 {
        self.ranks.iter().map(|r| r.running).sum()
    }
    pub fn queued(&self) -> f64 {
        self.ranks.iter().map(|r| r.queued).sum()
    }
    pub fn load(&self) -> f64 {
        self.running() + self.queued()
    }
    /// The fullest rank's KV usage.
    pub fn kv_usage(&self) -> Option<f64> {
        self.ranks
            .iter()
            .filter_map(|r| r.kv_usage)
            .reduce(f64::max)
    }
}

/// max/mean of `loads`; 1 when they are all zero (nothing to balance) or there is one.
pub fn imbalance(loads: impl Iterator<Item = f64> + Clone) -> f64 {
    let n = loads.clone().count();
    let sum: f64 = loads.clone().sum();
    if n < 2 || sum <= 0.0 {
        return 1.0;
    }
    loads.fold(0.0, f64::max) / (sum / n as f64)
}

/// The imbalance across servers (max/mean of their load).
pub fn server_imbalance(points: &[&ServerPoint]) -> f64 {
    imbalance(points.iter().map(|p| p.load()))
}

/// A counter's increase per second; a counter that went down (a restarted server) is no rate.
fn rate(prev: Option<f64>, now: Option<f64>, dt: f64) -> Option<f64> {
    let d = now? - prev?;
    (d >= 0.0 && dt > 0.0).then(|| d / dt)
}

fn delta(prev: Option<f64>, now: Option<f64>) -> Option<f64> {
    let d = now? - prev?;
    (d >= 0.0).then_some(d)
}

impl ServerPoint {
    /// The point at `t` from the scrape before (`prev`, `dt` seconds earlier; `None` for the
    /// first scrape, which has no rates) and this one.
    pub fn between(t: f64, prev: Option<&Snapshot>, now: &Snapshot, dt: f64) -> ServerPoint {
        let empty = RankCounters::default();
        let ranks: Vec<RankPoint> = now
            .ranks
            .iter()
            .map(|(&rank, r)| {
                let p = prev.and_then(|p| p.ranks.get(&rank)).unwrap_or(&empty);
                let had = prev.is_some();
                let queries = delta(p.prefix_queries_total, r.prefix_queries_total);
                let hits = delta(p.prefix_hits_total, r.prefix_hits_total);
                let hit_rate = match (queries, hits) {
                    (Some(q), Some(h)) if q > 0.0 => Some(h / q),
                    _ => r.cache_hit_rate,
                };
                RankPoint {
                    rank,
                    running: r.running,
                    queued: r.queued,
                    kv_usage: r.kv_usage,
                    throughput: r.throughput_gauge.or(if had {
                        rate(p.generated_total, r.generated_total, dt)
                    } else {
                        None
                    }),
                    cache_hit_rate: hit_rate,
                    preemptions: if had {
                        delta(p.preemptions_total, r.preemptions_total)
                    } else {
                        None
                    },
                }
            })
            .collect();
        let per_rank: Vec<f64> = ranks.iter().filter_map(|r| r.throughput).collect();
        let throughput = if !per_rank.is_empty() {
            Some(per_rank.iter().sum())
        } else {
            prev.and_then(|p| rate(p.generated_total, now.generated_total, dt))
        };
        let ttft = prev.and_then(|p| {
            let n = delta(p.ttft_count, now.ttft_count)?;
            let s = delta(p.ttft_sum, now.ttft_sum)?;
            (n > 0.0).then(|| s / n)
        });
        let dp_imbalance = imbalance(ranks.iter().map(RankPoint::load));
        ServerPoint {
            t,
            ranks,
            throughput,
            ttft,
            dp_imbalance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn snap(loads: &[(f64, f64)], generated: f64, ttft: (f64, f64)) -> Snapshot {
        Snapshot {
            ranks: loads
                .iter()
                .enumerate()
                .map(|(i, &(running, queued))| {
                    (
                        i as u32,
                        RankCounters {
                            running,
                            queued,
                            generated_total: Some(generated * (i + 1) as f64),
                            ..Default::default()
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
            ttft_sum: Some(ttft.0),
            ttft_count: Some(ttft.1),
            ..Default::default()
        }
    }

    #[test]
    fn rates_ttft_and_imbalance_between_two_scrapes() {
        let a = snap(&[(1.0, 0.0), (1.0, 0.0)], 100.0, (1.0, 4.0));
        let b = snap(&[(4.0, 2.0), (0.0, 0.0)], 150.0, (4.0, 10.0));
        let first = ServerPoint::between(0.0, None, &a, 0.0);
        assert_eq!(
            (first.throughput, first.ttft, first.dp_imbalance),
            (None, None, 1.0)
        );
        let p = ServerPoint::between(2.0, Some(&a), &b, 2.0);
        assert_eq!(p.ranks[0].throughput, Some(25.0));
        assert_eq!(p.ranks[1].throughput, Some(50.0));
        assert_eq!(p.throughput, Some(75.0));
        assert_eq!(p.ttft, Some(0.5), "3 s over 6 first tokens");
        assert_eq!(p.dp_imbalance, 2.0, "6 vs mean 3");
        assert_eq!(imbalance([0.0, 0.0].into_iter()), 1.0);
        assert_eq!(server_imbalance(&[&p, &first]), 6.0 / 4.0);
    }

    #[test]
    fn a_counter_that_went_down_is_no_rate() {
        let a = snap(&[(0.0, 0.0)], 100.0, (1.0, 1.0));
        let b = snap(&[(0.0, 0.0)], 10.0, (0.0, 0.0));
        let p = ServerPoint::between(1.0, Some(&a), &b, 1.0);
        assert_eq!((p.throughput, p.ttft), (None, None));
    }
}
