//! Trigger rules: `METRIC OP VALUE [for DURATION]`, e.g. `dp_imbalance > 1.5 for 10s`,
//! `queue >= 32`, `kv_usage > 90%`, `throughput_drop > 50% for 30s`, `ttft > 2`. A rule fires
//! when its condition has held on every sample of one server for the duration (at once
//! without `for`). [`Watcher`] holds every rule's state and the capture rules: never a
//! second capture while one runs, none within the cool-down after the last one fired.

use std::fmt;

use super::point::ServerPoint;

/// What a rule measures, on one server's point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// max/mean load (running + queued) across the server's DP ranks.
    DpImbalance,
    /// max/mean load across the watched servers (the same value on each).
    ServerImbalance,
    /// Queued requests, all ranks.
    Queue,
    /// Running requests, all ranks.
    Running,
    /// The fullest rank's KV usage, 0-1.
    KvUsage,
    /// Generated tokens/s.
    Throughput,
    /// 1 - throughput / baseline, the baseline being the server's mean throughput over the
    /// watch's first `baseline_s` seconds.
    ThroughputDrop,
    /// Mean TTFT (s) of the interval, from the server's histogram.
    Ttft,
}

impl Metric {
    const NAMES: [(&str, Metric); 8] = [
        ("dp_imbalance", Metric::DpImbalance),
        ("server_imbalance", Metric::ServerImbalance),
        ("queue", Metric::Queue),
        ("running", Metric::Running),
        ("kv_usage", Metric::KvUsage),
        ("throughput", Metric::Throughput),
        ("throughput_drop", Metric::ThroughputDrop),
        ("ttft", Metric::Ttft),
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, m)| *m == self)
            .expect("named")
            .0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
        }
    }
    fn text(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

/// A parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub metric: Metric,
    pub op: Op,
    pub threshold: f64,
    /// Seconds the condition must hold.
    pub hold_s: f64,
    /// The rule as the user wrote it.
    pub text: String,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.metric.name(),
            self.op.text(),
            self.threshold
        )?;
        if self.hold_s > 0.0 {
            write!(f, " for {}s", self.hold_s)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--trigger {rule:?}: {message}")]
pub struct RuleError {
    pub rule: String,
    pub message: String,
}

/// `90%` -> 0.9, `500ms` -> 0.5 (for TTFT), plain numbers as they are.
fn number(s: &str) -> Option<f64> {
    let (n, scale) = if let Some(n) = s.strip_suffix('%') {
        (n, 0.01)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = n.parse().ok()?;
    v.is_finite().then_some(v * scale)
}

fn duration(s: &str) -> Option<f64> {
    let (n, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = n.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * scale)
}

impl std::str::FromStr for Rule {
    type Err = RuleError;
    fn from_str(text: &str) -> Result<Self, RuleError> {
        let bad = |message: String| RuleError {
            rule: text.to_string(),
            message,
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let (metric, op, value, rest) = match words.as_slice() {
            [m, o, v, rest @ ..] => (*m, *o, *v, rest),
            _ => return Err(bad("expected METRIC OP VALUE [for DURATION]".into())),
        };
        let metric = Metric::NAMES
            .iter()
            .find(|(n, _)| *n == metric)
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                let names: Vec<&str> = Metric::NAMES.iter().map(|(n, _)| *n).collect();
                bad(format!(
                    "unknown metric {metric:?} (one of {})",
                    names.join(", ")
                ))
            })?;
        let op = match op {
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            _ => return Err(bad(format!("unknown comparison {op:?} (>, >=, <, <=)"))),
        };
        let threshold = number(value).ok_or_else(|| bad(format!("{value:?} is not a number")))?;
        let hold_s = match rest {
            [] => 0.0,
            ["for", d] => duration(d)
                .ok_or_else(|| bad(format!("{d:?} is not a duration (10s, 500ms, 2m)")))?,
            _ => {
                return Err(bad(format!(
                    "unexpected {:?} after the value (for DURATION)",
                    rest.join(" ")
                )));
            }
        };
        Ok(Rule {
            metric,
            op,
            threshold,
            hold_s,
            text: text.to_string(),
        })
    }
}

/// A rule fired on a server.
#[derive(Debug, Clone, PartialEq)]
pub struct Fire {
    /// The rule's index and text.
    pub rule: usize,
    pub text: String,
    pub server: usize,
    pub t: f64,
    /// The metric's value when it fired.
    pub value: f64,
}

/// Every rule on every server, and whether a capture runs.
#[derive(Debug, Clone)]
pub struct Watcher {
    rules: Vec<Rule>,
    cooldown_s: f64,
    baseline_s: f64,
    /// Per (rule, server): since when the condition has held.
    held_since: Vec<Vec<Option<f64>>>,
    /// Per server: throughput sum and count of the baseline window.
    baseline: Vec<(f64, usize)>,
    capturing: bool,
    last_fire: Option<f64>,
}

impl Watcher {
    pub fn new(rules: Vec<Rule>, servers: usize, cooldown_s: f64, baseline_s: f64) -> Self {
        Watcher {
            held_since: vec![vec![None; servers]; rules.len()],
            baseline: vec![(0.0, 0); servers],
            rules,
            cooldown_s,
            baseline_s,
            capturing: false,
            last_fire: None,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn capturing(&self) -> bool {
        self.capturing
    }

    /// The capture a fire started has ended (files written, or it failed).
    pub fn capture_finished(&mut self) {
        self.capturing = false;
    }

    /// The mean throughput of the baseline window, once it has samples.
    pub fn baseline(&self, server: usize) -> Option<f64> {
        let (sum, n) = self.baseline[server];
        (n > 0).then(|| sum / n as f64)
    }

    fn value(&self, m: Metric, server: usize, p: &ServerPoint, servers: f64) -> Option<f64> {
        Some(match m {
            Metric::DpImbalance => p.dp_imbalance,
            Metric::ServerImbalance => servers,
            Metric::Queue => p.queued(),
            Metric::Running => p.running(),
            Metric::KvUsage => p.kv_usage()?,
            Metric::Throughput => p.throughput?,
            Metric::ThroughputDrop => {
                let base = self.baseline(server).filter(|b| *b > 0.0)?;
                (p.t >= self.baseline_s).then(|| 1.0 - p.throughput.unwrap_or(0.0) / base)?
            }
            Metric::Ttft => p.ttft?,
        })
    }

    /// One server's point (`server_imbalance`: the imbalance across all servers at the
    /// same round). Returns the fire, if a rule fired and a capture may start.
    pub fn observe(
        &mut self,
        server: usize,
        p: &ServerPoint,
        server_imbalance: f64,
    ) -> Option<Fire> {
        if p.t < self.baseline_s
            && let Some(tp) = p.throughput
        {
            let b = &mut self.baseline[server];
            b.0 += tp;
            b.1 += 1;
        }
        let mut fire = None;
        for i in 0..self.rules.len() {
            let rule = &self.rules[i];
            let value = self.value(rule.metric, server, p, server_imbalance);
            let holds = value.is_some_and(|v| rule.op.holds(v, rule.threshold));
            let since = &mut self.held_since[i][server];
            if !holds {
                *since = None;
                continue;
            }
            let start = *since.get_or_insert(p.t);
            let cooled = self.last_fire.is_none_or(|t| p.t - t >= self.cooldown_s);
            if fire.is_none() && !self.capturing && cooled && p.t - start >= rule.hold_s {
                fire = Some(Fire {
                    rule: i,
                    text: rule.text.clone(),
                    server,
                    t: p.t,
                    value: value.expect("holds"),
                });
            }
        }
        if fire.is_some() {
            self.capturing = true;
            self.last_fire = Some(p.t);
            // A rule starts holding afresh after a capture it caused.
            for per_server in &mut self.held_since {
                per_server[server] = None;
            }
        }
        fire
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::point::RankPoint;

    fn point(t: f64, loads: &[f64], throughput: Option<f64>) -> ServerPoint {
        let ranks: Vec<RankPoint> = loads
            .iter()
            .enumerate()
            .map(|(i, &l)| RankPoint {
                rank: i as u32,
                running: l,
                queued: 0.0,
                kv_usage: Some(l / 10.0),
                throughput: None,
                cache_hit_rate: None,
                preemptions: None,
            })
            .collect();
        let dp_imbalance = crate::watch::point::imbalance(loads.iter().copied());
        ServerPoint {
            t,
            ranks,
            throughput,
            ttft: None,
            dp_imbalance,
        }
    }

    #[test]
    fn rules_parse_with_units_and_say_what_is_wrong() {
        let r: Rule = "dp_imbalance > 1.5 for 10s".parse().unwrap();
        assert_eq!(
            (r.metric, r.op, r.threshold, r.hold_s),
            (Metric::DpImbalance, Op::Gt, 1.5, 10.0)
        );
        let r: Rule = "kv_usage >= 90%".parse().unwrap();
        assert!((r.threshold - 0.9).abs() < 1e-12 && r.hold_s == 0.0);
        let r: Rule = "ttft > 500ms for 2m".parse().unwrap();
        assert_eq!((r.threshold, r.hold_s), (0.5, 120.0));
        for (bad, says) in [
            ("imbalance > 2", "unknown metric"),
            ("queue = 3", "unknown comparison"),
            ("queue > many", "not a number"),
            ("queue > 3 for ever", "not a duration"),
            ("queue > 3 during 5s", "unexpected"),
            ("queue >", "expected METRIC OP VALUE"),
        ] {
            let e = bad.parse::<Rule>().unwrap_err().to_string();
            assert!(e.contains(says) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn a_rule_fires_after_holding_and_never_during_a_capture_or_the_cooldown() {
        let rule: Rule = "dp_imbalance > 1.5 for 10s".parse().unwrap();
        let mut w = Watcher::new(vec![rule], 1, 60.0, 0.0);
        let skew = [4.0, 0.0];
        assert_eq!(w.observe(0, &point(0.0, &skew, None), 1.0), None);
        assert_eq!(
            w.observe(0, &point(5.0, &skew, None), 1.0),
            None,
            "held 5 s of 10"
        );
        assert_eq!(
            w.observe(0, &point(6.0, &[1.0, 1.0], None), 1.0),
            None,
            "balanced: reset"
        );
        assert_eq!(w.observe(0, &point(7.0, &skew, None), 1.0), None);
        let f = w
            .observe(0, &point(17.0, &skew, None), 1.0)
            .expect("held 10 s");
        assert_eq!(
            (f.t, f.value, f.text.as_str()),
            (17.0, 2.0, "dp_imbalance > 1.5 for 10s")
        );
        assert!(w.capturing());
        for t in [30.0, 40.0, 100.0] {
            assert_eq!(
                w.observe(0, &point(t, &skew, None), 1.0),
                None,
                "capturing at {t}"
            );
        }
        w.capture_finished();
        assert_eq!(
            w.observe(0, &point(70.0, &skew, None), 1.0),
            None,
            "cool-down from 17 s: held anew"
        );
        assert_eq!(
            w.observe(0, &point(76.0, &skew, None), 1.0),
            None,
            "held 6 s"
        );
        assert!(
            w.observe(0, &point(80.0, &skew, None), 1.0).is_some(),
            "held 10 s, cooled"
        );
    }

    #[test]
    fn throughput_drop_against_the_baseline_window() {
        let rule: Rule = "throughput_drop > 50%".parse().unwrap();
        let mut w = Watcher::new(vec![rule], 1, 0.0, 10.0);
        for t in [0.0, 5.0] {
            assert_eq!(w.observe(0, &point(t, &[1.0], Some(100.0)), 1.0), None);
        }
        assert_eq!(w.baseline(0), Some(100.0));
        assert_eq!(
            w.observe(0, &point(12.0, &[1.0], Some(60.0)), 1.0),
            None,
            "a 40% drop"
        );
        let f = w.observe(0, &point(13.0, &[1.0], Some(30.0)), 1.0).unwrap();
        assert!((f.value - 0.7).abs() < 1e-12);
    }

    #[test]
    fn one_capture_at_a_time_across_servers() {
        let rule: Rule = "queue > 0".parse().unwrap();
        let mut w = Watcher::new(vec![rule], 2, 0.0, 0.0);
        let mut p = point(1.0, &[1.0], None);
        p.ranks[0].queued = 3.0;
        assert!(w.observe(0, &p, 1.0).is_some());
        assert_eq!(
            w.observe(1, &p, 1.0),
            None,
            "the other server waits for the capture"
        );
        w.capture_finished();
        assert_eq!(w.observe(1, &p, 1.0).map(|f| f.server), Some(1));
    }
}
