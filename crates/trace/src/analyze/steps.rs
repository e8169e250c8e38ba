//! Steps: the iterations a trace is cut into. PyTorch's profiler marks them `ProfilerStep#N`
//! (on the CPU, and as `gpu_user_annotation` on the GPU streams); SGLang marks each forward
//! `step[EXTEND bs=.. toks=..]` / `step[DECODE bs=..]`; vLLM each worker step
//! `execute_context_<n>(<toks>)_generation_<n>(<toks>)` (`execute_<total>_context_...` when
//! detailed). Traces without markers take the span repeated most often at the top of the host's
//! call trees ([`StepCollector::from_spans`]). GPU time is attributed to a step by
//! time: with GPU-side step annotations exactly, otherwise from one CPU step's start to the
//! next one's (GPU work of a step runs after its launches, before the next step's).

use crate::analyze::timeline::Window;
use crate::model::Event;
use crate::rank::Stage;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepSpan {
    pub start: i64,
    pub end: i64,
    /// `N` of `ProfilerStep#N`; `None` for SGLang step spans (numbered by position).
    pub number: Option<u64>,
    pub stage: Option<Stage>,
    /// The batch size the marker names: SGLang's `bs=N`, vLLM's token count (the sum of the
    /// parenthesised counts, or `execute_<total>_...`'s total), what CUDA graphs are captured
    /// per.
    pub batch_size: Option<u64>,
}

/// The batch size in a step marker's name ([`StepSpan::batch_size`]).
pub fn batch_size(name: &str) -> Option<u64> {
    let digits = |s: &str| -> Option<u64> {
        let n: String = s.chars().take_while(char::is_ascii_digit).collect();
        n.parse().ok()
    };
    if let Some(rest) = name.strip_prefix("execute_") {
        if let Some(total) = digits(rest).filter(|_| rest.contains("_context_")) {
            return Some(total);
        }
        let mut sum = None;
        for part in rest.split('(').skip(1) {
            if let Some(n) = part
                .split_once(')')
                .and_then(|(n, _)| n.parse::<u64>().ok())
            {
                sum = Some(sum.unwrap_or(0) + n);
            }
        }
        return sum;
    }
    let inner = name.strip_prefix("step[")?;
    let at = inner.find("bs=")? + 3;
    digits(&inner[at..])
}

/// What an event says about steps, if it is a step marker: `(number, stage, on_gpu)`.
pub fn step_marker(ev: &Event<'_>) -> Option<(Option<u64>, Option<Stage>, bool)> {
    if ev.ph.0 != b'X' {
        return None;
    }
    let gpu = match ev.cat.as_ref() {
        "user_annotation" | "cpu_op" | "Trace" | "" => false,
        "gpu_user_annotation" => true,
        _ => return None,
    };
    let name = ev.name.as_ref();
    if let Some(n) = name.strip_prefix("ProfilerStep#") {
        return Some((n.trim().parse().ok(), None, gpu));
    }
    if let Some(rest) = name.strip_prefix("execute_")
        && (rest.contains("context_") || rest.contains("generation_"))
    {
        return Some((None, vllm_stage(rest), gpu));
    }
    let inner = name.strip_prefix("step[")?.strip_suffix(']')?;
    let mode = inner.split_whitespace().next().unwrap_or("");
    Some((None, Stage::from_mode(mode), gpu))
}

/// The stage of a vLLM step span: prefill when it has context (prompt) tokens only, decode
/// when it has generation tokens only, none when mixed.
fn vllm_stage(rest: &str) -> Option<Stage> {
    let count = |key: &str| -> Option<u64> {
        let at = rest.find(key)? + key.len();
        let digits: String = rest[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    match (count("context_"), count("generation_")) {
        (Some(c), Some(0) | None) if c > 0 => Some(Stage::Prefill),
        (Some(0) | None, Some(g)) if g > 0 => Some(Stage::Decode),
        _ => None,
    }
}

#[derive(Default)]
pub struct StepCollector {
    cpu: Vec<StepSpan>,
    gpu: Vec<StepSpan>,
    /// vLLM's `execute_*` spans, kept apart: SGLang's ROCm traces carry them too, around the
    /// same forward as its own `step[...]`.
    vllm: Vec<StepSpan>,
}

impl StepCollector {
    pub fn event(&mut self, ev: &Event<'_>) {
        if let Some((number, stage, gpu)) = step_marker(ev) {
            let span = StepSpan {
                start: ev.ts_or_zero(),
                end: ev.end(),
                number,
                stage,
                batch_size: batch_size(&ev.name),
            };
            if gpu {
                self.gpu.push(span);
            } else if ev.name.starts_with("execute_") {
                self.vllm.push(span);
            } else {
                self.cpu.push(span);
            }
        }
    }

    /// Steps from spans `(start, end)` that are not step markers (a repeated top-level span).
    pub fn from_spans(spans: &[(i64, i64)]) -> Vec<(StepSpan, Window)> {
        StepCollector {
            cpu: spans
                .iter()
                .map(|&(start, end)| StepSpan {
                    start,
                    end,
                    number: None,
                    stage: None,
                    batch_size: None,
                })
                .collect(),
            gpu: Vec::new(),
            vllm: Vec::new(),
        }
        .finish()
    }

    pub fn absorb(&mut self, other: StepCollector) {
        self.cpu.extend(other.cpu);
        self.gpu.extend(other.gpu);
        self.vllm.extend(other.vllm);
    }

    /// The steps in time order, each with the window its GPU time is attributed to.
    pub fn finish(mut self) -> Vec<(StepSpan, Window)> {
        // Per-forward spans (SGLang's, else vLLM's) are finer than the profiler's steps.
        if !self.cpu.iter().any(|s| s.number.is_none()) && !self.vllm.is_empty() {
            self.cpu = std::mem::take(&mut self.vllm);
        }
        if self.cpu.iter().any(|s| s.number.is_none()) {
            self.cpu.retain(|s| s.number.is_none());
        }
        self.cpu.sort_by_key(|s| (s.start, s.end));
        // One CPU span per step: nested or repeated markers of the same step collapse.
        self.cpu
            .dedup_by(|b, a| b.number.is_some() && b.number == a.number);
        if !self.gpu.is_empty() && self.cpu.iter().all(|s| s.number.is_some()) {
            return self.gpu_windows();
        }
        let starts: Vec<i64> = self.cpu.iter().map(|s| s.start).skip(1).collect();
        self.cpu
            .into_iter()
            .zip(starts.into_iter().map(Some).chain(std::iter::once(None)))
            .map(|(span, next)| {
                let window = Window {
                    start: span.start,
                    end: next.unwrap_or(i64::MAX),
                };
                (span, window)
            })
            .collect()
    }

    /// GPU-side `ProfilerStep#N` annotations (one per stream) give exact windows: from the
    /// earliest start to the latest end over the streams.
    fn gpu_windows(self) -> Vec<(StepSpan, Window)> {
        let mut out: Vec<(StepSpan, Window)> = Vec::new();
        for cpu in self.cpu {
            let (start, end) = self
                .gpu
                .iter()
                .filter(|g| g.number == cpu.number)
                .fold((i64::MAX, i64::MIN), |(s, e), g| {
                    (s.min(g.start), e.max(g.end))
                });
            if start <= end {
                out.push((cpu, Window { start, end }));
            }
        }
        out.sort_by_key(|(_, w)| w.start);
        // Windows must not overlap for the sweep; a later step starts where the earlier ends.
        for i in 1..out.len() {
            let prev_end = out[i - 1].1.end;
            let w = &mut out[i].1;
            w.start = w.start.max(prev_end);
            w.end = w.end.max(w.start);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Phase;

    fn ev(name: &str, cat: &str, ts: i64, dur: i64) -> Event<'static> {
        Event {
            ph: Phase::COMPLETE,
            name: name.to_string().into(),
            cat: cat.to_string().into(),
            ts: Some(ts),
            dur,
            ..Event::default()
        }
    }

    #[test]
    fn recognises_step_markers() {
        assert_eq!(
            step_marker(&ev("ProfilerStep#551", "user_annotation", 0, 1)),
            Some((Some(551), None, false))
        );
        assert_eq!(
            step_marker(&ev("step[DECODE bs=32]", "user_annotation", 0, 1)),
            Some((None, Some(Stage::Decode), false))
        );
        assert_eq!(
            step_marker(&ev(
                "step[EXTEND bs=2 toks=512]",
                "gpu_user_annotation",
                0,
                1
            )),
            Some((None, Some(Stage::Prefill), true))
        );
        assert_eq!(
            step_marker(&ev(
                "execute_context_0(0)_generation_4(4)",
                "user_annotation",
                0,
                1
            )),
            Some((None, Some(Stage::Decode), false))
        );
        assert_eq!(
            step_marker(&ev(
                "execute_12_context_2(12)_generation_0(0)",
                "user_annotation",
                0,
                1
            )),
            Some((None, Some(Stage::Prefill), false))
        );
        assert_eq!(step_marker(&ev("ProfilerStep#1", "kernel", 0, 1)), None);
        assert_eq!(batch_size("step[DECODE bs=32]"), Some(32));
        assert_eq!(batch_size("step[EXTEND bs=2 toks=512]"), Some(2));
        assert_eq!(
            batch_size("execute_context_1(12)_generation_3(3)"),
            Some(15)
        );
        assert_eq!(
            batch_size("execute_12_context_2(12)_generation_0(0)"),
            Some(12)
        );
        assert_eq!(batch_size("ProfilerStep#4"), None);
        assert_eq!(step_marker(&ev("aten::mm", "cpu_op", 0, 1)), None);
    }

    #[test]
    fn cpu_steps_extend_to_the_next_step() {
        let mut c = StepCollector::default();
        c.event(&ev("step[DECODE bs=1]", "user_annotation", 100, 10));
        c.event(&ev("step[EXTEND bs=1]", "user_annotation", 0, 10));
        let steps = c.finish();
        assert_eq!(steps[0].1, Window { start: 0, end: 100 });
        assert_eq!(steps[0].0.stage, Some(Stage::Prefill));
        assert_eq!(
            steps[1].1,
            Window {
                start: 100,
                end: i64::MAX
            }
        );
    }

    #[test]
    fn gpu_annotations_give_exact_windows() {
        let mut c = StepCollector::default();
        c.event(&ev("ProfilerStep#1", "user_annotation", 0, 50));
        c.event(&ev("ProfilerStep#2", "user_annotation", 50, 50));
        c.event(&ev("ProfilerStep#1", "gpu_user_annotation", 20, 60));
        c.event(&ev("ProfilerStep#1", "gpu_user_annotation", 25, 40));
        c.event(&ev("ProfilerStep#2", "gpu_user_annotation", 85, 30));
        let steps = c.finish();
        assert_eq!(steps[0].1, Window { start: 20, end: 80 });
        assert_eq!(
            steps[1].1,
            Window {
                start: 85,
                end: 115
            }
        );
        assert_eq!(steps[1].0.number, Some(2));
    }
}
