//! `--search request-rate|max-concurrency`: the highest load whose runs meet the SLOs
//! (`--slo`, a share `--goodput-target` of requests within all of them), found by real
//! runs: bracketing (doubling up from the start while probes meet the SLOs, halving down
//! while they do not) and then bisection until the bracket is narrower than the stated
//! resolution. Every probe is a run of its own in the outcome and the JSONL; when no probe
//! meets the SLOs, the report says so and names the closest one.

/// What is searched over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knob {
    RequestRate,
    MaxConcurrency,
}

impl Knob {
    pub fn name(self) -> &'static str {
        match self {
            Knob::RequestRate => "request-rate",
            Knob::MaxConcurrency => "max-concurrency",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchPlan {
    pub knob: Knob,
    /// The share of requests that must meet every SLO (bench_serving's slo_attainment).
    pub goodput_target: f64,
    /// The first probe (None: --request-rate or --max-concurrency when set, else 1).
    pub start: Option<f64>,
    /// Stop when the bracket [meets, fails] is narrower than this fraction of its lower end
    /// (request rates) or than one (concurrency).
    pub resolution: f64,
    /// At most this many probes.
    pub max_probes: usize,
}

/// One probe's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probe {
    pub value: f64,
    pub attainment: f64,
    pub meets: bool,
}

/// What the search found.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchReport {
    pub knob: Knob,
    pub goodput_target: f64,
    /// In the order they ran.
    pub probes: Vec<Probe>,
    /// The highest probe that met the SLOs.
    pub best: Option<Probe>,
    /// When none did: the probe with the highest attainment.
    pub closest: Option<Probe>,
    /// The last bracket (highest meeting, lowest failing).
    pub bracket: (Option<f64>, Option<f64>),
}

/// The search's next move, given the probes so far (None: done).
pub fn next(plan: &SearchPlan, start: f64, probes: &[Probe]) -> Option<f64> {
    if probes.len() >= plan.max_probes {
        return None;
    }
    let Some(last) = probes.last() else {
        return Some(start);
    };
    let lo = probes
        .iter()
        .filter(|p| p.meets)
        .map(|p| p.value)
        .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
    let hi = probes
        .iter()
        .filter(|p| !p.meets)
        .map(|p| p.value)
        .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.min(v))));
    let integer = plan.knob == Knob::MaxConcurrency;
    match (lo, hi) {
        // Bracketing up.
        (Some(_), None) => Some(last.value * 2.0),
        // Bracketing down, to one request at a time (or 1/1024 of the start, for rates).
        (None, Some(h)) => {
            let down = if integer { (h / 2.0).floor() } else { h / 2.0 };
            let floor = if integer { 1.0 } else { start / 1024.0 };
            (down >= floor && down < h).then_some(down)
        }
        (Some(l), Some(h)) => {
            let narrow = if integer {
                h - l <= 1.0
            } else {
                h <= l * (1.0 + plan.resolution)
            };
            if narrow {
                return None;
            }
            let mid = if integer {
                ((l + h) / 2.0).floor()
            } else {
                (l + h) / 2.0
            };
            (mid > l && mid < h).then_some(mid)
        }
        (None, None) => None,
    }
}

/// The report over every probe.
pub fn report(plan: &SearchPlan, probes: Vec<Probe>) -> SearchReport {
    let best = probes
        .iter()
        .filter(|p| p.meets)
        .copied()
        .max_by(|a, b| a.value.total_cmp(&b.value));
    let closest = if best.is_none() {
        probes
            .iter()
            .copied()
            .max_by(|a, b| a.attainment.total_cmp(&b.attainment))
    } else {
        None
    };
    let hi = probes
        .iter()
        .filter(|p| !p.meets && best.is_none_or(|b| p.value > b.value))
        .map(|p| p.value)
        .min_by(f64::total_cmp);
    SearchReport {
        knob: plan.knob,
        goodput_target: plan.goodput_target,
        best,
        closest,
        bracket: (best.map(|b| b.value), hi),
        probes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(knob: Knob) -> SearchPlan {
        SearchPlan {
            knob,
            goodput_target: 0.9,
            start: None,
            resolution: 0.1,
            max_probes: 20,
        }
    }

    /// Run the search against a server that meets the SLOs up to `capacity`.
    fn search(p: &SearchPlan, start: f64, capacity: f64) -> SearchReport {
        let mut probes = Vec::new();
        while let Some(v) = next(p, start, &probes) {
            let meets = v <= capacity;
            probes.push(Probe {
                value: v,
                attainment: if meets { 1.0 } else { capacity / v },
                meets,
            });
        }
        report(p, probes)
    }

    #[test]
    fn rates_bracket_up_then_bisect_to_the_resolution() {
        let r = search(&plan(Knob::RequestRate), 1.0, 11.0);
        let values: Vec<f64> = r.probes.iter().map(|p| p.value).collect();
        assert_eq!(&values[..5], [1.0, 2.0, 4.0, 8.0, 16.0]);
        let (lo, hi) = r.bracket;
        let (lo, hi) = (lo.unwrap(), hi.unwrap());
        assert!(lo <= 11.0 && hi > 11.0 && hi <= lo * 1.1, "{lo} {hi}");
        assert_eq!(r.best.unwrap().value, lo);
        assert!(r.closest.is_none());
    }

    #[test]
    fn concurrency_brackets_down_and_stops_at_one_apart() {
        let r = search(&plan(Knob::MaxConcurrency), 64.0, 5.0);
        let values: Vec<f64> = r.probes.iter().map(|p| p.value).collect();
        assert_eq!(&values[..5], [64.0, 32.0, 16.0, 8.0, 4.0]);
        assert_eq!(r.bracket, (Some(5.0), Some(6.0)));
        assert!(values.iter().all(|v| v.fract() == 0.0));
    }

    #[test]
    fn no_probe_meets_and_the_closest_is_named() {
        let r = search(&plan(Knob::MaxConcurrency), 4.0, 0.5);
        assert!(r.best.is_none());
        assert_eq!(
            r.closest.unwrap().value,
            1.0,
            "the lowest load attains the most"
        );
        assert_eq!(r.probes.last().unwrap().value, 1.0);
        let capped = SearchPlan {
            max_probes: 3,
            ..plan(Knob::RequestRate)
        };
        assert_eq!(search(&capped, 1.0, 1e9).probes.len(), 3);
    }
}
