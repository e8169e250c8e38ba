//! Comparing ranks: per-rank GPU totals, a per-step x per-rank table of compute time (load
//! imbalance = max / mean per step), key GPU operations side by side, and straggler detection.
//!
//! A straggler arrives late at collectives: in a synchronous collective every rank's
//! communication kernel ends at about the same time, but the late rank's starts last (the
//! others sit in the kernel waiting). Per step, the rank whose last communication kernel starts
//! latest (on the shared Unix clock, `baseTimeNanoseconds` + ts) is the step's latecomer; its
//! lateness is measured against the median rank. Communication kernels are recognised by name
//! for every NCCL era (`ncclKernel_*`, `ncclDevKernel_*`), RCCL, HCCL and custom all-reduce
//! (HTA matches only `ncclKernel` and finds none in modern traces, HTA#360).
//!
//! CPU-only traces (gloo jobs, CPU inference backends) compare the same way on the host: per
//! step, CPU compute (outermost ops outside collectives) and time in collectives (c10d, gloo),
//! and the latecomer is the rank whose last collective of the step starts latest; the ranks
//! that wait for it show it as collective time.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::analyze::hta::HtaReport;
use crate::analyze::summary::{OpStats, TraceSummary, combine_ops};
use crate::analyze::timeline::Breakdown;
use crate::rank::Stage;

#[derive(Clone, Debug, Serialize)]
pub struct RanksReport {
    pub ranks: Vec<RankRow>,
    pub steps: Vec<StepRow>,
    pub stragglers: Vec<StragglerRow>,
    /// The label of the rank that is the latecomer in more than half of the steps that have
    /// communication, when there is one.
    pub straggler: Option<String>,
    pub key_ops: Vec<KeyOpRow>,
    /// HTA's analyses of each rank, in the order of `ranks`.
    pub hta: Vec<RankHta>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RankHta {
    pub label: String,
    pub report: HtaReport,
    /// Steps whose launch calls take longer than the GPU work they launch, of `steps`.
    pub launch_bound_steps: usize,
    pub steps: usize,
}

impl RankHta {
    pub fn of(s: &TraceSummary) -> RankHta {
        RankHta {
            label: s.label.clone(),
            report: s.hta.clone(),
            launch_bound_steps: s
                .attribution
                .steps
                .iter()
                .filter(|t| t.launch_bound)
                .count(),
            steps: s.attribution.steps.len(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RankRow {
    pub label: String,
    pub file: String,
    pub events: u64,
    pub steps: usize,
    pub mean_step_ns: i64,
    pub gpu: Breakdown,
    /// CPU compute over the steps (outermost ops outside collectives).
    #[serde(default)]
    pub cpu_compute_ns: i64,
    /// Time in host-side collectives over the steps (mostly waiting for the other ranks).
    #[serde(default)]
    pub collective_ns: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepRow {
    /// `ProfilerStep` number when every rank numbers its steps, else the position (`#0`...).
    pub step: String,
    pub stage: Option<Stage>,
    /// One cell per rank, in the order of `ranks` (`None` when a rank lacks the step).
    pub per_rank: Vec<Option<StepCell>>,
    /// max / mean of GPU computation time over the ranks that have the step.
    pub compute_imbalance: Option<f64>,
    /// max / mean of the step span.
    pub span_imbalance: Option<f64>,
    /// max / mean of CPU compute time.
    #[serde(default)]
    pub cpu_compute_imbalance: Option<f64>,
    /// Index (into `ranks`) of the rank whose last communication kernel starts latest (the
    /// last host collective for steps without communication kernels).
    pub latecomer: Option<usize>,
    /// How much later than the median rank it starts it.
    pub lateness_ns: Option<i64>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct StepCell {
    pub span_ns: i64,
    pub busy_ns: i64,
    pub computation_ns: i64,
    pub comm_ns: i64,
    /// Unix-clock start of the step's last communication kernel.
    pub last_comm_start_ns: Option<i64>,
    #[serde(default)]
    pub cpu_compute_ns: i64,
    #[serde(default)]
    pub collective_ns: i64,
    /// Unix-clock start of the step's last host collective.
    #[serde(default)]
    pub last_collective_start_ns: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StragglerRow {
    pub label: String,
    /// Steps in which this rank was the latecomer.
    pub late_steps: usize,
    pub mean_lateness_ns: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct KeyOpRow {
    pub name: String,
    pub total_ns: Vec<i64>,
    pub calls: Vec<u64>,
    /// max / mean of the total over ranks.
    pub imbalance: f64,
}

pub fn compare(summaries: &[TraceSummary], key_ops: usize) -> RanksReport {
    let ranks: Vec<RankRow> = summaries
        .iter()
        .map(|s| RankRow {
            label: s.label.clone(),
            file: s.file.clone(),
            events: s.events,
            steps: s.steps.len(),
            mean_step_ns: if s.steps.is_empty() {
                0
            } else {
                s.steps.iter().map(|t| t.span_ns).sum::<i64>() / s.steps.len() as i64
            },
            gpu: s.timeline,
            cpu_compute_ns: s.steps.iter().map(|t| t.cpu.compute_ns).sum(),
            collective_ns: s.steps.iter().map(|t| t.cpu.collective_ns).sum(),
        })
        .collect();

    let numbered = summaries
        .iter()
        .all(|s| s.steps.iter().all(|t| t.number.is_some()));
    let key = |index: usize, number: Option<u64>| {
        if numbered {
            number.unwrap_or(0)
        } else {
            index as u64
        }
    };
    let keys: BTreeSet<u64> = summaries
        .iter()
        .flat_map(|s| s.steps.iter().map(|t| key(t.index, t.number)))
        .collect();

    let mut steps = Vec::new();
    for k in keys {
        let mut stage = None;
        let per_rank: Vec<Option<StepCell>> = summaries
            .iter()
            .map(|s| {
                let t = s.steps.iter().find(|t| key(t.index, t.number) == k)?;
                stage = stage.or(t.stage);
                Some(StepCell {
                    span_ns: t.span_ns,
                    busy_ns: t.gpu.busy_ns,
                    computation_ns: t.gpu.computation_ns,
                    comm_ns: t.gpu.comm_ns,
                    last_comm_start_ns: t.gpu.last_comm_start.map(|c| c + s.base_ns.unwrap_or(0)),
                    cpu_compute_ns: t.cpu.compute_ns,
                    collective_ns: t.cpu.collective_ns,
                    last_collective_start_ns: t
                        .cpu
                        .last_collective_start
                        .map(|c| c + s.base_ns.unwrap_or(0)),
                })
            })
            .collect();
        let (latecomer, lateness_ns) = latecomer(&per_rank);
        steps.push(StepRow {
            step: if numbered {
                k.to_string()
            } else {
                format!("#{k}")
            },
            stage,
            compute_imbalance: imbalance(per_rank.iter().flatten().map(|c| c.computation_ns)),
            span_imbalance: imbalance(per_rank.iter().flatten().map(|c| c.span_ns)),
            cpu_compute_imbalance: imbalance(per_rank.iter().flatten().map(|c| c.cpu_compute_ns)),
            per_rank,
            latecomer,
            lateness_ns,
        });
    }

    let mut stragglers: Vec<StragglerRow> = ranks
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let late: Vec<i64> = steps
                .iter()
                .filter(|s| s.latecomer == Some(i))
                .filter_map(|s| s.lateness_ns)
                .collect();
            StragglerRow {
                label: r.label.clone(),
                late_steps: late.len(),
                mean_lateness_ns: if late.is_empty() {
                    0
                } else {
                    late.iter().sum::<i64>() / late.len() as i64
                },
            }
        })
        .collect();
    stragglers.sort_by(|a, b| {
        b.late_steps
            .cmp(&a.late_steps)
            .then(b.mean_lateness_ns.cmp(&a.mean_lateness_ns))
    });
    let with_comm = steps.iter().filter(|s| s.latecomer.is_some()).count();
    let straggler = stragglers
        .first()
        .filter(|s| ranks.len() > 1 && with_comm > 0 && s.late_steps * 2 > with_comm)
        .map(|s| s.label.clone());

    let all = combine_ops(summaries.iter().map(|s| s.kernels.as_slice()));
    let key_ops = all
        .iter()
        .take(key_ops)
        .map(|op| {
            let per: Vec<Option<&OpStats>> = summaries
                .iter()
                .map(|s| s.kernels.iter().find(|k| k.name == op.name))
                .collect();
            let total_ns: Vec<i64> = per.iter().map(|p| p.map_or(0, |k| k.total_ns)).collect();
            KeyOpRow {
                name: op.name.clone(),
                calls: per.iter().map(|p| p.map_or(0, |k| k.calls)).collect(),
                imbalance: imbalance(total_ns.iter().copied()).unwrap_or(1.0),
                total_ns,
            }
        })
        .collect();

    RanksReport {
        ranks,
        steps,
        stragglers,
        straggler,
        key_ops,
        hta: summaries.iter().map(RankHta::of).collect(),
    }
}

/// max / mean, `None` without values or when everything is zero.
pub fn imbalance(values: impl Iterator<Item = i64>) -> Option<f64> {
    let (mut n, mut sum, mut max) = (0i64, 0i128, i64::MIN);
    for v in values {
        n += 1;
        sum += i128::from(v);
        max = max.max(v);
    }
    if n == 0 || sum <= 0 {
        return None;
    }
    Some(max as f64 / (sum as f64 / n as f64))
}

/// The rank whose last communication kernel starts latest, and by how much after the median
/// (the lower middle, so with two ranks the lateness is their whole gap). Without
/// communication kernels, the same over the last host collectives.
fn latecomer(cells: &[Option<StepCell>]) -> (Option<usize>, Option<i64>) {
    let starts_of = |pick: fn(&StepCell) -> Option<i64>| -> Vec<(i64, usize)> {
        cells
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((pick(c.as_ref()?)?, i)))
            .collect()
    };
    let mut starts = starts_of(|c| c.last_comm_start_ns);
    if starts.len() < 2 {
        starts = starts_of(|c| c.last_collective_start_ns);
    }
    if starts.len() < 2 {
        return (None, None);
    }
    starts.sort();
    let median = starts[(starts.len() - 1) / 2].0;
    let (last, rank) = *starts.last().expect("two or more");
    (Some(rank), Some(last - median))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(compute: i64, comm_start: Option<i64>) -> Option<StepCell> {
        Some(StepCell {
            span_ns: 100,
            busy_ns: compute,
            computation_ns: compute,
            comm_ns: 0,
            last_comm_start_ns: comm_start,
            cpu_compute_ns: 0,
            collective_ns: 0,
            last_collective_start_ns: None,
        })
    }

    #[test]
    fn imbalance_is_max_over_mean() {
        assert_eq!(imbalance([10, 10, 10, 30].into_iter()), Some(2.0));
        assert_eq!(imbalance(std::iter::empty()), None);
        assert_eq!(imbalance([0, 0].into_iter()), None);
    }

    #[test]
    fn latecomer_is_measured_against_the_median() {
        let cells = [
            cell(1, Some(1_000)),
            cell(1, Some(1_010)),
            cell(1, Some(5_000)),
            cell(1, Some(1_005)),
            None,
        ];
        assert_eq!(latecomer(&cells), (Some(2), Some(5_000 - 1_005)));
        assert_eq!(latecomer(&[cell(1, Some(7)), cell(1, None)]), (None, None));
        assert_eq!(
            latecomer(&[cell(1, Some(7)), cell(1, Some(2))]),
            (Some(0), Some(5))
        );
    }
}
