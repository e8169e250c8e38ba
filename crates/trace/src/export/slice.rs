//! Cutting a window out of a trace, small enough for the Perfetto UI: by time (offsets from the
//! first event, or percentages of the span), by steps, by rank (labels of a merged trace, or
//! the file's own rank) and by category.
//!
//! Complete events that cross the window's edges are clipped to it. Flow arrows are kept only
//! when both ends fall inside (a dangling half draws nothing useful); they are held until the
//! end of the pass, so memory grows with the flows inside the window, not with the trace.
//!
//! With a size limit the window is cut into consecutive time ranges, one file each
//! (`out.part1.json`, ...), planned from a pass that estimates every event's written size
//! ([`parts`](super::parts)); each part has the metadata events, events crossing a cut are
//! clipped into both parts, and flows stay only where both ends are in one part.

use std::collections::HashMap;
use std::path::Path;

use crate::analyze::steps::step_marker;
use crate::error::{Result, TraceError};
use crate::export::json::{JsonTraceWriter, Rewrite, metadata_members};
use crate::export::merge::CategoryFilter;
use crate::export::output::ensure_not_an_input;
use crate::export::parts::{SizeHistogram, part_path};
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
    /// Cut the window into files of at most about this many bytes of JSON (before gzip).
    pub max_size: Option<u64>,
}

/// What [`slice()`] wrote.
#[derive(Clone, Debug)]
pub struct SliceReport {
    /// The window on the trace's clock, when one was asked for.
    pub range: Option<(i64, i64)>,
    pub events_written: u64,
    pub flows_dropped: u64,
    /// The files written: `out` itself, or its parts in time order.
    pub files: Vec<std::path::PathBuf>,
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
    let keep = |ev: &Event<'_>| -> bool {
        if let Some(f) = &spec.ranks {
            let ok = match &ev.pid {
                Id::Str(s) if s.starts_with('[') => f.matches_label(s),
                _ => file_rank_ok,
            };
            if !ok {
                return false;
            }
        }
        ev.ph == Phase::METADATA || spec.categories.passes(&ev.cat)
    };

    // With a size limit: one more pass to plan the cuts (over the whole span when no window).
    let cuts = match spec.max_size {
        None => Vec::new(),
        Some(max) => {
            let (a, b) = match range {
                Some(r) => r,
                None => {
                    let mut scan = WindowScan::default();
                    input.read(opts, &mut scan)?;
                    scan.range(&Window::All).unwrap_or((0, 0))
                }
            };
            let mut h = SizeHistogram::new(a, b.max(a + 1));
            input.read(opts, &mut |ev: &Event<'_>| {
                if !keep(ev) {
                    return Ok(());
                }
                let strings = ev.name.len() + ev.cat.len() + ev.args.as_deref().map_or(0, str::len);
                match ev.ts {
                    _ if ev.ph == Phase::METADATA => h.per_part += strings as u64 + 96,
                    Some(ts) if ts < b && ev.end() >= a => h.add(ts.max(a), strings),
                    _ => {}
                }
                Ok(())
            })?;
            h.cuts(max)
        }
    };
    let files: Vec<std::path::PathBuf> = if cuts.is_empty() {
        vec![out.to_path_buf()]
    } else {
        (1..=cuts.len() + 1).map(|k| part_path(out, k)).collect()
    };
    for f in &files {
        ensure_not_an_input(f, [input.path.as_path()])?;
    }
    let mut writers = files
        .iter()
        .map(|f| JsonTraceWriter::create(f, &header(&info)))
        .collect::<Result<Vec<_>>>()?;
    // part k covers [bounds[k], bounds[k + 1])
    let part_of = |t: i64| cuts.partition_point(|&c| c <= t);
    let bounds = |k: usize| -> (i64, i64) {
        (
            if k == 0 { i64::MIN } else { cuts[k - 1] },
            cuts.get(k).copied().unwrap_or(i64::MAX),
        )
    };
    let mut flows: Vec<(usize, Event<'static>)> = Vec::new();
    let mut flow_ends: HashMap<(usize, FlowKey), u8> = HashMap::new();
    input.read(opts, &mut |ev: &Event<'_>| {
        if !keep(ev) {
            return Ok(());
        }
        if ev.ph == Phase::METADATA {
            for w in &mut writers {
                w.write(ev, &Rewrite::default())?;
            }
            return Ok(());
        }
        let (a, b) = range.unwrap_or((i64::MIN, i64::MAX));
        let Some(ts) = ev.ts else {
            return writers[0].write(ev, &Rewrite::default());
        };
        if ev.ph == Phase::COMPLETE {
            let end = ev.end();
            if range.is_some() && (ts >= b || end < a || (end == a && ev.dur > 0)) {
                return Ok(());
            }
            let (from, to) = (ts.max(a), end.min(b));
            let (first, last) = (part_of(from), part_of((to - 1).max(from)));
            for (k, w) in writers.iter_mut().enumerate().take(last + 1).skip(first) {
                let (pa, pb) = bounds(k);
                let (s, e) = (from.max(pa), to.min(pb));
                if (s, e) == (ts, end) {
                    w.write(ev, &Rewrite::default())?;
                } else {
                    let mut clipped = ev.clone();
                    clipped.ts = Some(s);
                    clipped.dur = e - s;
                    w.write(&clipped, &Rewrite::default())?;
                }
            }
            return Ok(());
        }
        if ts < a || ts > b {
            return Ok(());
        }
        let k = part_of(ts);
        if ev.ph.is_flow() {
            *flow_ends.entry((k, FlowKey::of(ev))).or_default() |= flow_bit(ev.ph);
            flows.push((k, ev.to_owned_event()));
            return Ok(());
        }
        writers[k].write(ev, &Rewrite::default())
    })?;
    let mut dropped = 0;
    for (k, ev) in flows {
        if flow_ends[&(k, FlowKey::of(&ev))] & 0b101 == 0b101 {
            writers[k].write(&ev, &Rewrite::default())?;
        } else {
            dropped += 1;
        }
    }
    let mut events_written = 0;
    for w in writers {
        events_written += w.finish(&[])?;
    }
    Ok(SliceReport {
        range,
        events_written,
        flows_dropped: dropped,
        files,
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
