//! Cutting a window out of a trace, small enough for the Perfetto UI: by time (offsets from the
//! first event, or percentages of the span), by steps, by rank (labels of a merged trace, or
//! the file's own rank) and by category.
//!
//! Complete events that cross the window's edges are clipped to it. Flow arrows are kept only
//! when both ends fall inside (a dangling half draws nothing useful); they are held until the
//! end of the pass, so memory grows with the flows inside the window, not with the trace.

use std::collections::HashMap;
use std::path::Path;

use crate::analyze::steps::step_marker;
use crate::error::{Result, TraceError};
use crate::export::json::{JsonTraceWriter, Rewrite, metadata_members};
use crate::export::merge::CategoryFilter;
use crate::export::output::ensure_not_an_input;
use crate::import::{Input, ReadOptions};
use crate::model::{Event, Id, Phase, TraceInfo};
use crate::rank::RankFilter;
use crate::time::parse_duration_ns;

/// One end of a `--time` range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// Nanoseconds after the trace's first event.
    Offset(i64),
    /// Percent of the trace's span.
    Percent(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Window {
    All,
    Time(Option<Bound>, Option<Bound>),
    /// Steps `first..=last`: `ProfilerStep` numbers, or positions of SGLang's `step[...]`.
    Steps(u64, u64),
}

impl Window {
    /// `A..B` with either end optional: `1.5s..2s`, `200ms..`, `..10%`, `25%..75%`.
    pub fn parse_time(text: &str) -> Result<Window> {
        let (a, b) = split_range(text, "--time")?;
        let bound = |s: &str| -> Result<Option<Bound>> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            if let Some(p) = s.strip_suffix('%') {
                let v: f64 = p.trim().parse().map_err(|_| bad_time(text))?;
                return Ok(Some(Bound::Percent(v)));
            }
            parse_duration_ns(s)
                .map(|ns| Some(Bound::Offset(ns)))
                .ok_or_else(|| bad_time(text))
        };
        Ok(Window::Time(bound(a)?, bound(b)?))
    }

    /// `N..M` (inclusive) or a single `N`.
    pub fn parse_steps(text: &str) -> Result<Window> {
        let (a, b) = if text.contains("..") {
            split_range(text, "--steps")?
        } else {
            (text, text)
        };
        let num = |s: &str| {
            s.trim().parse::<u64>().map_err(|_| {
                TraceError::Usage(format!("--steps {text}: expected N..M with step numbers"))
            })
        };
        let (a, b) = (num(a)?, num(b)?);
        if b < a {
            return Err(TraceError::Usage(format!(
                "--steps {text}: the range is empty"
            )));
        }
        Ok(Window::Steps(a, b))
    }
}

fn split_range<'a>(text: &'a str, flag: &str) -> Result<(&'a str, &'a str)> {
    text.split_once("..")
        .ok_or_else(|| TraceError::Usage(format!("{flag} {text}: expected A..B")))
}

fn bad_time(text: &str) -> TraceError {
    TraceError::Usage(format!(
        "--time {text}: expected A..B with durations after the first event (1.5s, 200ms, 30us, 10ns; bare numbers are us) or percentages (10%..20%)"
    ))
}

/// What [`slice()`] keeps: a window (time or steps; none: the whole trace), ranks, categories.
#[derive(Clone, Debug, Default)]
pub struct SliceSpec {
    pub window: Option<Window>,
    pub ranks: Option<RankFilter>,
    pub categories: CategoryFilter,
}

/// What [`slice()`] wrote.
#[derive(Clone, Debug)]
pub struct SliceReport {
    /// The window on the trace's clock, when one was asked for.
    pub range: Option<(i64, i64)>,
    pub events_written: u64,
    pub flows_dropped: u64,
}

/// Writes the part of `input` that `spec` selects to `out`: events clipped to the window, flows
/// kept only when both ends are inside.
pub fn slice(
    input: &Input,
    out: &Path,
    spec: &SliceSpec,
    opts: &ReadOptions,
) -> Result<SliceReport> {
    ensure_not_an_input(out, [input.path.as_path()])?;
    let window = spec.window.clone().unwrap_or(Window::All);
    let (info, range) = match window {
        Window::All => (input.probe(opts)?, None),
        _ => {
            let mut scan = WindowScan::default();
            let info = input.read(opts, &mut scan)?;
            let range = scan.range(&window).ok_or_else(|| {
                TraceError::Usage(format!(
                    "{}: the trace has no {}",
                    input.path.display(),
                    match window {
                        Window::Steps(..) =>
                            "such steps (no ProfilerStep#N or step[...] spans in that range)",
                        _ => "events in that time range",
                    }
                ))
            })?;
            (info, Some(range))
        }
    };
    let file_rank_ok = match &spec.ranks {
        Some(f) => f.matches(&input.rank_with(&info)),
        None => true,
    };

    let mut w = JsonTraceWriter::create(out, &header(&info))?;
    let mut flows: Vec<Event<'static>> = Vec::new();
    let mut flow_ends: HashMap<FlowKey, u8> = HashMap::new();
    input.read(opts, &mut |ev: &Event<'_>| {
        if let Some(f) = &spec.ranks {
            let ok = match &ev.pid {
                Id::Str(s) if s.starts_with('[') => f.matches_label(s),
                _ => file_rank_ok,
            };
            if !ok {
                return Ok(());
            }
        }
        if ev.ph == Phase::METADATA {
            return w.write(ev, &Rewrite::default());
        }
        if !spec.categories.passes(&ev.cat) {
            return Ok(());
        }
        let Some((a, b)) = range else {
            return w.write(ev, &Rewrite::default());
        };
        let Some(ts) = ev.ts else {
            return w.write(ev, &Rewrite::default());
        };
        if ev.ph == Phase::COMPLETE {
            let end = ev.end();
            if ts >= b || end < a || (end == a && ev.dur > 0) {
                return Ok(());
            }
            if ts < a || end > b {
                let mut clipped = ev.clone();
                clipped.ts = Some(ts.max(a));
                clipped.dur = end.min(b) - ts.max(a);
                return w.write(&clipped, &Rewrite::default());
            }
            return w.write(ev, &Rewrite::default());
        }
        if ts < a || ts > b {
            return Ok(());
        }
        if ev.ph.is_flow() {
            let key = FlowKey::of(ev);
            *flow_ends.entry(key).or_default() |= flow_bit(ev.ph);
            flows.push(ev.to_owned_event());
            return Ok(());
        }
        w.write(ev, &Rewrite::default())
    })?;
    let mut dropped = 0;
    for ev in &flows {
        if flow_ends[&FlowKey::of(ev)] & 0b101 == 0b101 {
            w.write(ev, &Rewrite::default())?;
        } else {
            dropped += 1;
        }
    }
    let events_written = w.finish(&[])?;
    Ok(SliceReport {
        range,
        events_written,
        flows_dropped: dropped,
    })
}

fn header(info: &TraceInfo) -> Vec<(&str, String)> {
    let mut h = vec![("schemaVersion", "1".to_string())];
    h.extend(metadata_members(info));
    h
}

/// Perfetto's flow identity: `(cat, name, id)`.
#[derive(Hash, PartialEq, Eq)]
struct FlowKey(String, String, Id<'static>);

impl FlowKey {
    fn of(ev: &Event<'_>) -> FlowKey {
        FlowKey(
            ev.cat.to_string(),
            ev.name.to_string(),
            ev.id.as_ref().map(Id::to_owned_id).unwrap_or_default(),
        )
    }
}

fn flow_bit(ph: Phase) -> u8 {
    match ph.0 {
        b's' => 0b001,
        b't' => 0b010,
        _ => 0b100,
    }
}

/// First pass: the trace's time span and its step spans.
#[derive(Default)]
struct WindowScan {
    first: Option<i64>,
    last: i64,
    /// `(number, start, end)` of CPU-side step spans.
    steps: Vec<(Option<u64>, i64, i64)>,
}

impl crate::model::EventSink for WindowScan {
    fn event(&mut self, ev: &Event<'_>) -> Result<()> {
        if ev.ph == Phase::METADATA {
            return Ok(());
        }
        if let Some(ts) = ev.ts {
            self.first = Some(self.first.map_or(ts, |f| f.min(ts)));
            self.last = self.last.max(ev.end());
        }
        if let Some((number, _, false)) = step_marker(ev) {
            self.steps.push((number, ev.ts_or_zero(), ev.end()));
        }
        Ok(())
    }
}

impl WindowScan {
    /// The window on the trace's clock, `None` when it selects nothing.
    fn range(&mut self, window: &Window) -> Option<(i64, i64)> {
        let first = self.first?;
        let span = self.last - first;
        match *window {
            Window::All => Some((first, self.last)),
            Window::Time(a, b) => {
                let at = |b: Bound| match b {
                    Bound::Offset(ns) => first + ns,
                    Bound::Percent(p) => first + (span as f64 * p / 100.0).round() as i64,
                };
                let (a, b) = (a.map_or(first, at), b.map_or(self.last, at));
                (a < b && a <= self.last && b >= first).then_some((a, b))
            }
            Window::Steps(lo, hi) => {
                // SGLang's spans carry no number: number them by position.
                if self.steps.iter().any(|s| s.0.is_none()) {
                    self.steps.retain(|s| s.0.is_none());
                    self.steps.sort_by_key(|s| s.1);
                    for (i, s) in self.steps.iter_mut().enumerate() {
                        s.0 = Some(i as u64);
                    }
                }
                let chosen = self
                    .steps
                    .iter()
                    .filter(|s| (lo..=hi).contains(&s.0.unwrap_or(0)));
                let start = chosen.clone().map(|s| s.1).min()?;
                let span_end = chosen.map(|s| s.2).max()?;
                // GPU work of the last chosen step runs until the next step starts.
                let next = self
                    .steps
                    .iter()
                    .filter(|s| s.0.is_some_and(|n| n > hi))
                    .map(|s| s.1)
                    .min();
                Some((start, next.unwrap_or(self.last).max(span_end)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_windows() {
        assert_eq!(
            Window::parse_time("1.5s..2s").unwrap(),
            Window::Time(
                Some(Bound::Offset(1_500_000_000)),
                Some(Bound::Offset(2_000_000_000))
            )
        );
        assert_eq!(
            Window::parse_time("..10%").unwrap(),
            Window::Time(None, Some(Bound::Percent(10.0)))
        );
        assert!(Window::parse_time("soon..later").is_err());
        assert!(Window::parse_time("5ms").is_err());
        assert_eq!(
            Window::parse_steps("551..552").unwrap(),
            Window::Steps(551, 552)
        );
        assert_eq!(Window::parse_steps("3").unwrap(), Window::Steps(3, 3));
        assert!(Window::parse_steps("5..2").is_err());
    }

    #[test]
    fn step_windows_run_to_the_next_step() {
        let mut s = WindowScan {
            first: Some(0),
            last: 1000,
            steps: vec![(None, 100, 150), (None, 0, 50), (None, 300, 350)],
        };
        assert_eq!(s.range(&Window::Steps(1, 1)), Some((100, 300)));
        assert_eq!(s.range(&Window::Steps(2, 9)), Some((300, 1000)));
        assert_eq!(s.range(&Window::Steps(7, 9)), None);
        assert_eq!(
            s.range(&Window::Time(Some(Bound::Percent(50.0)), None)),
            Some((500, 1000))
        );
    }
}
