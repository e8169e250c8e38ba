//! Which scheduler steps a profile captures: SGLang's step arithmetic (`start_step`,
//! `num_steps`) and by-stage captures, with the upstream defects fixed. Pure logic: the
//! profiler asks, per step of one data-parallel group, whether to record it and whether a
//! capture has just completed.

use loupe_engine::observer::ForwardMode;

/// A capture stage of `profile_by_stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Extend,
    Decode,
}

impl Stage {
    pub fn of(mode: ForwardMode) -> Stage {
        match mode {
            ForwardMode::Extend => Stage::Extend,
            ForwardMode::Decode => Stage::Decode,
        }
    }

    /// `prefill`/`extend` and `decode`, any case (SGLang V2 uses lowercase, V1 the mode name).
    pub fn parse(s: &str) -> Option<Stage> {
        match s.to_ascii_lowercase().as_str() {
            "prefill" | "extend" => Some(Stage::Extend),
            "decode" => Some(Stage::Decode),
            _ => None,
        }
    }

    /// The file-name suffix: `EXTEND`/`DECODE` (SGLang's default path) or `prefill`/`decode`
    /// (its `SGLANG_PROFILE_V2` path).
    pub fn suffix(self, v2: bool) -> &'static str {
        match (self, v2) {
            (Stage::Extend, false) => "EXTEND",
            (Stage::Decode, false) => "DECODE",
            (Stage::Extend, true) => "prefill",
            (Stage::Decode, true) => "decode",
        }
    }
}

/// What to do with one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepPlan {
    /// A capture of this stage (None: not by stage) ended before this step: export it.
    pub finish_before: Option<Option<Stage>>,
    /// Record this step into the capture of that stage.
    pub record: Option<Option<Stage>>,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Steps `start..end` (absolute), or from `start` on.
    Steps { start: u64, end: Option<u64> },
    ByStage {
        per_stage: u64,
        pending: Vec<Stage>,
        active: Option<(Stage, u64)>,
        decode_min_bs: usize,
    },
}

/// The capture plan of one data-parallel group.
#[derive(Debug, Clone)]
pub struct Window {
    kind: Kind,
    stopped: bool,
}

impl Window {
    /// SGLang's `_init_profile` with `current` = the group's last step: an explicit start step
    /// is absolute but never earlier than the next step; without one capture starts at the
    /// next step. `num_steps` N captures exactly N steps (upstream 0.5.5 captured N-1).
    pub fn steps(current: u64, start_step: Option<u64>, num_steps: Option<u64>) -> Window {
        let start = start_step.map_or(current + 1, |s| s.max(current + 1));
        Window {
            kind: Kind::Steps {
                start,
                end: num_steps.map(|n| start + n),
            },
            stopped: false,
        }
    }

    /// One capture of up to `per_stage` steps for each stage in `stages`.
    pub fn by_stage(per_stage: u64, stages: Vec<Stage>, decode_min_bs: usize) -> Window {
        Window {
            kind: Kind::ByStage {
                per_stage: per_stage.max(1),
                pending: stages,
                active: None,
                decode_min_bs,
            },
            stopped: false,
        }
    }

    /// Called before step `step`'s forward.
    pub fn begin_step(&mut self, step: u64, mode: ForwardMode, batch_size: usize) -> StepPlan {
        let none = StepPlan {
            finish_before: None,
            record: None,
        };
        if self.stopped {
            return none;
        }
        match &mut self.kind {
            Kind::Steps { start, end } => {
                if step >= *start && end.is_none_or(|e| step < e) {
                    StepPlan {
                        finish_before: None,
                        record: Some(None),
                    }
                } else {
                    none
                }
            }
            Kind::ByStage {
                pending,
                active,
                decode_min_bs,
                ..
            } => {
                let stage = Stage::of(mode);
                let mut plan = none;
                if let Some((current, count)) = active {
                    if *current == stage {
                        *count += 1;
                        return StepPlan {
                            finish_before: None,
                            record: Some(Some(stage)),
                        };
                    }
                    if *current == Stage::Decode {
                        // A prefill batch inside the decode capture is recorded (it is on the
                        // timeline) but neither counted nor allowed to end or relabel the
                        // capture: upstream defect 12.
                        return StepPlan {
                            finish_before: None,
                            record: Some(Some(Stage::Decode)),
                        };
                    }
                    // A prefill capture never absorbs decode batches (as upstream): it ends
                    // here, short.
                    plan.finish_before = Some(Some(*current));
                    *active = None;
                }
                let wanted = pending.contains(&stage);
                let big_enough = stage != Stage::Decode || batch_size >= *decode_min_bs;
                if wanted && big_enough {
                    pending.retain(|s| *s != stage);
                    *active = Some((stage, 1));
                    plan.record = Some(Some(stage));
                }
                plan
            }
        }
    }

    /// Called after a recorded step: the stage whose capture just completed, if any.
    pub fn end_step(&mut self, step: u64) -> Option<Option<Stage>> {
        match &mut self.kind {
            Kind::Steps { end, .. } => end.filter(|e| step + 1 >= *e).map(|_| None),
            Kind::ByStage {
                per_stage, active, ..
            } => match active {
                Some((stage, count)) if *count >= *per_stage => {
                    let s = *stage;
                    *active = None;
                    Some(Some(s))
                }
                _ => None,
            },
        }
    }

    /// Nothing more will be captured.
    pub fn finished(&self, last_step: u64) -> bool {
        if self.stopped {
            return true;
        }
        match &self.kind {
            Kind::Steps { end, .. } => end.is_some_and(|e| last_step + 1 >= e),
            Kind::ByStage {
                pending, active, ..
            } => pending.is_empty() && active.is_none(),
        }
    }

    /// Is a capture recording right now (as opposed to armed and waiting)?
    pub fn capturing(&self, last_step: u64) -> bool {
        if self.stopped {
            return false;
        }
        match &self.kind {
            Kind::Steps { start, end } => {
                last_step + 1 > *start && end.is_none_or(|e| last_step + 1 < e)
            }
            Kind::ByStage { active, .. } => active.is_some(),
        }
    }

    /// Stage of the capture in progress (by-stage only).
    pub fn active_stage(&self) -> Option<Stage> {
        match &self.kind {
            Kind::ByStage { active, .. } => active.map(|(s, _)| s),
            Kind::Steps { .. } => None,
        }
    }

    /// Stop now (`/stop_profile`); the profiler exports whatever capture is open.
    pub fn stop(&mut self) {
        self.stopped = true;
        if let Kind::ByStage {
            pending, active, ..
        } = &mut self.kind
        {
            pending.clear();
            *active = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ForwardMode::{Decode as D, Extend as E};

    /// Per step: its number, where it was recorded, and the capture that completed with it.
    type Row = (u64, Option<Option<Stage>>, Option<Option<Stage>>);

    fn run(w: &mut Window, steps: &[(u64, ForwardMode, usize)]) -> Vec<Row> {
        steps
            .iter()
            .map(|&(s, m, bs)| {
                let p = w.begin_step(s, m, bs);
                let done = if p.record.is_some() {
                    w.end_step(s)
                } else {
                    None
                };
                (s, p.record, p.finish_before.or(done))
            })
            .collect()
    }

    #[test]
    fn immediate_num_steps_captures_exactly_n_steps_after_now() {
        let mut w = Window::steps(10, None, Some(3));
        let out = run(&mut w, &[(11, D, 1), (12, D, 1), (13, D, 1), (14, D, 1)]);
        let recorded: Vec<u64> = out.iter().filter(|o| o.1.is_some()).map(|o| o.0).collect();
        assert_eq!(recorded, [11, 12, 13]);
        // Complete at the end of the third step, not at the top of the next one.
        assert_eq!(out[2].2, Some(None));
        assert!(w.finished(13));
    }

    #[test]
    fn start_step_is_absolute_and_clamped_to_the_next_step() {
        // The docs' example: start_step=3, num_steps=10 captures steps 3..=12.
        let w = Window::steps(0, Some(3), Some(10));
        assert!(matches!(
            w.kind,
            Kind::Steps {
                start: 3,
                end: Some(13)
            }
        ));
        // A start step already past: the next step.
        let w = Window::steps(50, Some(3), Some(2));
        assert!(matches!(
            w.kind,
            Kind::Steps {
                start: 51,
                end: Some(53)
            }
        ));
        // No num_steps: open-ended until stopped.
        let mut w = Window::steps(5, None, None);
        assert!(w.begin_step(1000, D, 1).record.is_some());
        assert!(!w.finished(1000));
        w.stop();
        assert!(w.begin_step(1001, D, 1).record.is_none());
    }

    #[test]
    fn by_stage_captures_each_stage_once() {
        let mut w = Window::by_stage(2, vec![Stage::Extend, Stage::Decode], 0);
        let out = run(
            &mut w,
            &[
                (1, E, 1),
                (2, E, 1),
                (3, E, 1),
                (4, D, 1),
                (5, D, 1),
                (6, D, 1),
            ],
        );
        assert_eq!(out[0].1, Some(Some(Stage::Extend)));
        assert_eq!(
            out[1].2,
            Some(Some(Stage::Extend)),
            "EXTEND done after 2 prefill steps"
        );
        assert_eq!(out[2].1, None, "each stage only once");
        assert_eq!(out[3].1, Some(Some(Stage::Decode)));
        assert_eq!(out[4].2, Some(Some(Stage::Decode)));
        assert_eq!(out[5].1, None);
        assert!(w.finished(6));
    }

    #[test]
    fn prefill_inside_decode_capture_neither_ends_nor_relabels_it() {
        let mut w = Window::by_stage(3, vec![Stage::Decode], 0);
        let out = run(
            &mut w,
            &[(1, D, 4), (2, E, 1), (3, D, 4), (4, D, 4), (5, D, 4)],
        );
        assert_eq!(
            out[1].1,
            Some(Some(Stage::Decode)),
            "recorded into the decode capture"
        );
        assert_eq!(out[1].2, None, "not ended");
        assert_eq!(
            out[3].2,
            Some(Some(Stage::Decode)),
            "3 decode steps counted, prefill not"
        );
        assert_eq!(out[4].1, None);
    }

    #[test]
    fn decode_batch_ends_a_short_prefill_capture() {
        let mut w = Window::by_stage(5, vec![Stage::Extend, Stage::Decode], 0);
        let out = run(&mut w, &[(1, E, 1), (2, D, 1)]);
        assert_eq!(out[1].2, Some(Some(Stage::Extend)));
        assert_eq!(out[1].1, Some(Some(Stage::Decode)));
    }

    #[test]
    fn decode_capture_waits_for_the_batch_size() {
        let mut w = Window::by_stage(1, vec![Stage::Decode], 8);
        let out = run(&mut w, &[(1, D, 2), (2, D, 5), (3, D, 8)]);
        assert_eq!(
            out.iter().map(|o| o.1.is_some()).collect::<Vec<_>>(),
            [false, false, true]
        );
    }

    #[test]
    fn stop_ends_every_kind_of_window() {
        let mut w = Window::by_stage(10, vec![Stage::Extend, Stage::Decode], 0);
        w.begin_step(1, E, 1);
        w.stop();
        assert!(w.finished(1) && !w.capturing(1));
        assert!(w.begin_step(2, D, 1).record.is_none());
        // An armed window that never started.
        let mut w = Window::steps(0, Some(100), Some(5));
        w.stop();
        assert!(w.finished(1));
    }
}
