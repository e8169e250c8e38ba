//! The GPU-timeline breakdown with TraceLens's definitions
//! (`TraceLens/TreePerf/gpu_event_analyser.py`, `compute_metrics_dict`):
//!
//! - computation: union of compute intervals (kernels that are neither communication nor
//!   memcpy, and memsets);
//! - exposed communication: communication not overlapped by computation;
//! - exposed memcpy: memcpy overlapped by neither computation nor communication;
//! - busy: union of all GPU intervals; total: first start to last end; idle: total - busy.
//!
//! TraceLens merges sorted interval lists in memory. Here intervals go through an external
//! sort and one sweep over their start/end points, so memory is bounded; the same sweep
//! attributes time to step windows for the per-step tables.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read};

use serde::{Deserialize, Serialize};

use crate::external_sort::{ExternalSorter, Record, read_exact_or_end};
use crate::model::GpuClass;

/// In-memory budget for unsorted intervals before they spill to disk (24 bytes each), shared
/// by the parsing threads.
pub const SORT_BUDGET: usize = 48 << 20;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakdown {
    pub computation_ns: i64,
    pub exposed_comm_ns: i64,
    pub exposed_memcpy_ns: i64,
    pub busy_ns: i64,
    pub idle_ns: i64,
    pub total_ns: i64,
    pub total_comm_ns: i64,
    pub total_memcpy_ns: i64,
}

impl Breakdown {
    /// TraceLens's `gpu_timeline` rows: `(type, ns)`, in its order.
    pub fn rows(&self) -> [(&'static str, i64); 8] {
        [
            ("computation_time", self.computation_ns),
            ("exposed_comm_time", self.exposed_comm_ns),
            ("exposed_memcpy_time", self.exposed_memcpy_ns),
            ("busy_time", self.busy_ns),
            ("idle_time", self.idle_ns),
            ("total_time", self.total_ns),
            ("total_comm_time", self.total_comm_ns),
            ("total_memcpy_time", self.total_memcpy_ns),
        ]
    }

    pub fn add(&mut self, o: &Breakdown) {
        self.computation_ns += o.computation_ns;
        self.exposed_comm_ns += o.exposed_comm_ns;
        self.exposed_memcpy_ns += o.exposed_memcpy_ns;
        self.busy_ns += o.busy_ns;
        self.idle_ns += o.idle_ns;
        self.total_ns += o.total_ns;
        self.total_comm_ns += o.total_comm_ns;
        self.total_memcpy_ns += o.total_memcpy_ns;
    }
}

/// A half-open time window `[start, end)` that GPU time is attributed to (a step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

/// The index of the window of `windows` (sorted and disjoint) that holds `t` (a search;
/// [`window_from`] walks instead, for times that only increase).
pub fn window_of(windows: &[Window], t: i64) -> Option<usize> {
    let i = windows.partition_point(|w| w.end <= t);
    windows.get(i).filter(|w| w.start <= t).map(|_| i)
}

/// GPU activity inside one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowStats {
    pub busy_ns: i64,
    pub computation_ns: i64,
    pub exposed_comm_ns: i64,
    pub comm_ns: i64,
    /// GPU operations that start in the window.
    pub ops: u64,
    /// Start of the last communication kernel that starts in the window (`None` if none).
    pub last_comm_start: Option<i64>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Interval {
    start: i64,
    end: i64,
    class: u8,
}

impl Record for Interval {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.start.to_le_bytes());
        out.extend_from_slice(&self.end.to_le_bytes());
        out.push(self.class);
    }

    fn decode(input: &mut impl Read) -> io::Result<Option<Self>> {
        let mut b = [0u8; 17];
        if !read_exact_or_end(input, &mut b)? {
            return Ok(None);
        }
        Ok(Some(Interval {
            start: i64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            end: i64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
            class: b[16],
        }))
    }

    fn mem_size(&self) -> usize {
        std::mem::size_of::<Interval>()
    }
}

pub struct TimelineBuilder {
    sorter: ExternalSorter<Interval>,
}

impl Default for TimelineBuilder {
    fn default() -> Self {
        TimelineBuilder::with_budget(SORT_BUDGET)
    }
}

impl TimelineBuilder {
    pub fn with_budget(bytes: usize) -> Self {
        TimelineBuilder {
            sorter: ExternalSorter::new(bytes),
        }
    }

    pub fn add(&mut self, start: i64, end: i64, class: GpuClass) -> io::Result<()> {
        self.sorter.push(Interval {
            start,
            // Negative durations exist in the wild (TraceLens#669); treat them as empty.
            end: end.max(start),
            class: class as u8,
        })
    }

    /// Takes over the intervals another builder (another parsing thread) collected.
    pub fn absorb(&mut self, other: TimelineBuilder) -> io::Result<()> {
        self.sorter.absorb(other.sorter)
    }

    /// Sweeps all intervals. `windows` must be sorted by start and not overlap.
    pub fn finish(self, windows: &[Window]) -> io::Result<(Breakdown, Vec<WindowStats>)> {
        let mut sweep = Sweep::new(windows);
        for iv in self.sorter.finish()? {
            sweep.interval(iv?);
        }
        Ok(sweep.finish())
    }
}

struct Sweep<'w> {
    windows: &'w [Window],
    stats: Vec<WindowStats>,
    out: Breakdown,
    first: Option<i64>,
    last_end: i64,
    t: i64,
    /// Active intervals per class.
    active: [u32; 3],
    ends: BinaryHeap<Reverse<(i64, u8)>>,
    /// Window cursors for attributing time and for attributing interval starts.
    time_w: usize,
    start_w: usize,
}

impl<'w> Sweep<'w> {
    fn new(windows: &'w [Window]) -> Self {
        Sweep {
            windows,
            stats: vec![WindowStats::default(); windows.len()],
            out: Breakdown::default(),
            first: None,
            last_end: i64::MIN,
            t: i64::MIN,
            active: [0; 3],
            ends: BinaryHeap::new(),
            time_w: 0,
            start_w: 0,
        }
    }

    fn interval(&mut self, iv: Interval) {
        if self.first.is_none() {
            self.first = Some(iv.start);
            self.t = iv.start;
        }
        self.advance(iv.start);
        self.active[iv.class as usize] += 1;
        self.ends.push(Reverse((iv.end, iv.class)));
        self.last_end = self.last_end.max(iv.end);
        if let Some(w) = window_from(self.windows, &mut self.start_w, iv.start) {
            let s = &mut self.stats[w];
            s.ops += 1;
            if iv.class == GpuClass::Comm as u8 {
                s.last_comm_start = Some(iv.start);
            }
        }
    }

    /// Moves the sweep to `to`, closing intervals that end on the way.
    fn advance(&mut self, to: i64) {
        while let Some(&Reverse((end, class))) = self.ends.peek() {
            if end > to {
                break;
            }
            self.ends.pop();
            self.attribute(end);
            self.active[class as usize] -= 1;
        }
        self.attribute(to);
    }

    /// Attributes `[t, to)` under the current activity, then sets `t = to`.
    fn attribute(&mut self, to: i64) {
        if to <= self.t {
            return;
        }
        let [comp, comm, mem] = self.active.map(|n| n > 0);
        if !(comp || comm || mem) {
            self.t = to;
            return;
        }
        let len = to - self.t;
        let o = &mut self.out;
        o.busy_ns += len;
        if comp {
            o.computation_ns += len;
        } else if comm {
            o.exposed_comm_ns += len;
        } else {
            o.exposed_memcpy_ns += len;
        }
        if comm {
            o.total_comm_ns += len;
        }
        if mem {
            o.total_memcpy_ns += len;
        }
        // split the segment over the windows it crosses
        let mut a = self.t;
        while a < to {
            let idx = window_from(self.windows, &mut self.time_w, a);
            let b = match idx {
                Some(w) => to.min(self.windows[w].end),
                None => self
                    .windows
                    .get(self.time_w)
                    .map_or(to, |w| to.min(w.start.max(a + 1))),
            };
            if let Some(w) = idx {
                let s = &mut self.stats[w];
                let len = b - a;
                s.busy_ns += len;
                if comp {
                    s.computation_ns += len;
                } else if comm {
                    s.exposed_comm_ns += len;
                }
                if comm {
                    s.comm_ns += len;
                }
            }
            a = b;
        }
        self.t = to;
    }

    fn finish(mut self) -> (Breakdown, Vec<WindowStats>) {
        self.advance(i64::MAX);
        if let Some(first) = self.first {
            self.out.total_ns = self.last_end - first;
            self.out.idle_ns = self.out.total_ns - self.out.busy_ns;
        }
        (self.out, self.stats)
    }
}

/// The window containing `t`, moving `cursor` forward (times only increase).
pub(crate) fn window_from(windows: &[Window], cursor: &mut usize, t: i64) -> Option<usize> {
    while *cursor < windows.len() && windows[*cursor].end <= t {
        *cursor += 1;
    }
    match windows.get(*cursor) {
        Some(w) if w.start <= t => Some(*cursor),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use GpuClass::*;

    fn run(ivs: &[(i64, i64, GpuClass)], windows: &[Window]) -> (Breakdown, Vec<WindowStats>) {
        let mut b = TimelineBuilder::with_budget(24 * 2);
        for &(s, e, c) in ivs {
            b.add(s, e, c).unwrap();
        }
        b.finish(windows).unwrap()
    }

    #[test]
    fn matches_the_tracelens_definitions() {
        // compute [0,10) and [5,15); comm [12,20) (3 exposed) and [30,40) (all exposed);
        // memcpy [18,25) (2 under comm, 5 exposed) and [35,36) (under comm).
        let (b, _) = run(
            &[
                (30, 40, Comm),
                (0, 10, Compute),
                (12, 20, Comm),
                (5, 15, Compute),
                (18, 25, Memcpy),
                (35, 36, Memcpy),
            ],
            &[],
        );
        assert_eq!(
            b,
            Breakdown {
                computation_ns: 15,
                exposed_comm_ns: 5 + 10,
                exposed_memcpy_ns: 5,
                busy_ns: 25 + 10,
                idle_ns: 40 - 35,
                total_ns: 40,
                total_comm_ns: 18,
                total_memcpy_ns: 8,
            }
        );
        assert_eq!(
            b.computation_ns + b.exposed_comm_ns + b.exposed_memcpy_ns + b.idle_ns,
            b.total_ns
        );
    }

    #[test]
    fn attributes_time_to_windows() {
        let windows = [Window { start: 0, end: 10 }, Window { start: 20, end: 40 }];
        let (_, w) = run(
            &[
                (5, 25, Compute),
                (30, 32, Comm),
                (34, 50, Comm),
                (12, 14, Compute),
            ],
            &windows,
        );
        assert_eq!(w[0].busy_ns, 5);
        assert_eq!(w[0].ops, 1);
        assert_eq!(w[1].busy_ns, 5 + 2 + 6);
        assert_eq!(w[1].computation_ns, 5);
        assert_eq!(w[1].comm_ns, 8);
        assert_eq!(w[1].ops, 2);
        assert_eq!(w[1].last_comm_start, Some(34));
    }
}
