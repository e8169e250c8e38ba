//! The settings a benchmark runs at: one point per value of a sweep (or the one point), each
//! point's label, and when each item of a point is due (`schedule`).

use crate::arrival::{Arrivals, py_float};
use crate::dataset::Scenario;
use crate::driver::{Schedule, Work};
use crate::error::{BenchError, PlanError, Result};
use crate::plan::{BenchPlan, Sweep};

/// One setting of a sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub max_concurrency: Option<usize>,
    pub rate: f64,
}

pub fn points(plan: &BenchPlan) -> Vec<Point> {
    let a = &plan.arrivals;
    match &plan.sweep {
        Some(Sweep::MaxConcurrency(c)) => c
            .iter()
            .map(|&c| Point {
                max_concurrency: Some(c),
                rate: a.request_rate,
            })
            .collect(),
        Some(Sweep::RequestRate(r)) => r
            .iter()
            .map(|&r| Point {
                max_concurrency: a.max_concurrency,
                rate: r,
            })
            .collect(),
        None => vec![Point {
            max_concurrency: a.max_concurrency,
            rate: a.request_rate,
        }],
    }
}

pub fn point_label(sweep: Option<&Sweep>, p: &Point, scenario: Option<&Scenario>) -> String {
    let mut parts = Vec::new();
    if let Some(s) = scenario {
        parts.push(s.label());
    }
    match sweep {
        Some(Sweep::MaxConcurrency(_)) => {
            parts.push(format!("concurrency {}", p.max_concurrency.unwrap_or(0)));
        }
        Some(Sweep::RequestRate(_)) => parts.push(format!("rate {}", py_float(p.rate))),
        None => {}
    }
    if parts.is_empty() {
        parts.push("run".into());
    }
    parts.join(" ")
}

/// When each item of a point is due: the trace's times, the arrival process's (for as many
/// requests as `--max-requests-per-run` asks, or as fit in `--duration`), or a closed loop of
/// `--max-concurrency` workers for a time-based run at an infinite rate.
pub fn schedule(
    plan: &BenchPlan,
    work: &Work,
    trace_offsets: Option<&[f64]>,
    arrivals: &Arrivals,
    max_concurrency: Option<usize>,
) -> Result<Schedule> {
    let t = &plan.time;
    let duration = t.duration.map(|d| d.as_secs_f64());
    let seed = plan.dataset.seed;
    if let Some(trace) = trace_offsets {
        let within = trace
            .iter()
            .copied()
            .filter(|&at| duration.is_none_or(|d| at < d));
        return Ok(Schedule::At(
            within.take(t.max_requests.unwrap_or(usize::MAX)).collect(),
        ));
    }
    let unbounded = arrivals.ramp.is_none() && !arrivals.rate.is_finite();
    let Some(d) = duration else {
        let n = t.max_requests.unwrap_or(work.len());
        return Ok(Schedule::At(arrivals.offsets(n, seed)));
    };
    if unbounded {
        let slots = max_concurrency.ok_or(BenchError::Plan(PlanError::DurationAtInfiniteRate))?;
        return Ok(Schedule::ClosedLoop {
            slots,
            max_items: t.max_requests.unwrap_or(usize::MAX),
        });
    }
    // Enough due times to pass the deadline at the highest rate, then cut there.
    let peak = match arrivals.ramp {
        Some((_, a, b)) => a.max(b),
        None => arrivals.rate,
    };
    let supply = ((peak * d * 2.0).ceil() as usize + 64).min(t.max_requests.unwrap_or(usize::MAX));
    let mut offsets = arrivals.offsets(supply, seed);
    offsets.retain(|&at| at < d);
    Ok(Schedule::At(offsets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::plan;

    #[test]
    fn sweep_points_and_their_labels() {
        let mut p = plan();
        p.arrivals.max_concurrency = Some(3);
        assert_eq!(
            points(&p),
            [Point {
                max_concurrency: Some(3),
                rate: f64::INFINITY
            }]
        );
        assert_eq!(point_label(None, &points(&p)[0], None), "run");

        p.sweep = Some(Sweep::MaxConcurrency(vec![1, 4]));
        let pts = points(&p);
        assert_eq!(
            pts.iter().map(|x| x.max_concurrency).collect::<Vec<_>>(),
            [Some(1), Some(4)]
        );
        assert_eq!(
            point_label(p.sweep.as_ref(), &pts[1], None),
            "concurrency 4"
        );
        let sc = Scenario::parse("D(128,96)").unwrap();
        assert_eq!(
            point_label(p.sweep.as_ref(), &pts[0], Some(&sc)),
            "D(128,96) concurrency 1"
        );

        p.sweep = Some(Sweep::RequestRate(vec![40.0, f64::INFINITY]));
        let pts = points(&p);
        assert!(pts.iter().all(|x| x.max_concurrency == Some(3)));
        let labels: Vec<String> = pts
            .iter()
            .map(|x| point_label(p.sweep.as_ref(), x, None))
            .collect();
        assert_eq!(labels, ["rate 40.0", "rate inf"]);
        assert_eq!(point_label(None, &pts[0], Some(&sc)), "D(128,96)");
    }
}
