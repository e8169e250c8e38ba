//! torch's `prof.key_averages(group_by_input_shape=True)` over a written trace: host events
//! (`cpu_op`, `user_annotation`) grouped by name and `Input Dims`, with self time (own
//! duration minus the events nested directly inside it on the same thread), total time,
//! calls, and the device time of the kernels each op launched (matched by `External id`;
//! a parent's device total includes its children's). Rows are sorted by the self time that
//! upstream's one_batch sorts by.

use std::collections::HashMap;
use std::path::Path;

use loupe_trace::import::{Input, ReadOptions};
use loupe_trace::{Event, Phase};
use serde_json::Value;

use crate::OfflineError;

/// The column rows are sorted by: `self_cuda_time_total` when the GPU activity was recorded,
/// else `self_cpu_time_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    SelfCpuTime,
    SelfDeviceTime,
}

/// One (name, input shapes) group. Times in nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAverage {
    pub name: String,
    pub input_shapes: String,
    pub calls: u64,
    pub self_cpu_ns: i64,
    pub cpu_total_ns: i64,
    pub self_device_ns: i64,
    pub device_total_ns: i64,
}

/// The table's rows, sorted, and whether the trace had device events at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAverages {
    pub rows: Vec<KeyAverage>,
    pub has_device: bool,
    pub sort_by: SortBy,
}

impl KeyAverages {
    pub fn self_cpu_total_ns(&self) -> i64 {
        self.rows.iter().map(|r| r.self_cpu_ns).sum()
    }

    pub fn self_device_total_ns(&self) -> i64 {
        self.rows.iter().map(|r| r.self_device_ns).sum()
    }
}

struct HostEvent {
    thread: (String, String),
    ts: i64,
    dur: i64,
    key: usize,
    device_ns: i64,
}

/// `[[1, 128], [384, 128]]`, torch's spelling of input shapes.
fn shapes_text(v: &Value) -> String {
    match v {
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(shapes_text).collect();
            format!("[{}]", inner.join(", "))
        }
        other => other.to_string(),
    }
}

fn external_id(ev: &Event<'_>) -> Option<i64> {
    ev.arg("External id").and_then(|v| v.as_i64())
}

/// Read `path` (any format loupe reads) and fold it into key_averages rows.
pub fn read(path: &Path, sort_by: SortBy) -> Result<KeyAverages, OfflineError> {
    let input = Input::open(path, None)?;
    let mut keys: HashMap<(String, String), usize> = HashMap::new();
    let mut names: Vec<(String, String)> = Vec::new();
    let mut host: Vec<HostEvent> = Vec::new();
    let mut device_by_id: HashMap<i64, i64> = HashMap::new();
    let mut has_device = false;
    input.read(&ReadOptions::default(), &mut |ev: &Event<'_>| {
        if ev.ph != Phase::COMPLETE {
            return Ok(());
        }
        match ev.cat.as_ref() {
            "kernel" | "gpu_memcpy" | "gpu_memset" => {
                has_device = true;
                if let Some(id) = external_id(ev) {
                    *device_by_id.entry(id).or_default() += ev.dur;
                }
            }
            "cpu_op" | "user_annotation" | "python_function" => {
                let shapes = ev
                    .arg("Input Dims")
                    .map(|v| shapes_text(&v))
                    .unwrap_or_default();
                let k = (ev.name.to_string(), shapes);
                let next = names.len();
                let key = *keys.entry(k.clone()).or_insert_with(|| {
                    names.push(k);
                    next
                });
                host.push(HostEvent {
                    thread: (ev.pid.to_string(), ev.tid.to_string()),
                    ts: ev.ts_or_zero(),
                    dur: ev.dur,
                    key,
                    device_ns: external_id(ev).map_or(0, |id| -id - 1),
                });
            }
            _ => {}
        }
        Ok(())
    })?;
    // Ids were parked as negative markers until every kernel was read.
    for h in &mut host {
        h.device_ns = if h.device_ns < 0 {
            device_by_id.get(&(-h.device_ns - 1)).copied().unwrap_or(0)
        } else {
            0
        };
    }
    let mut rows: Vec<KeyAverage> = names
        .into_iter()
        .map(|(name, input_shapes)| KeyAverage {
            name,
            input_shapes,
            calls: 0,
            self_cpu_ns: 0,
            cpu_total_ns: 0,
            self_device_ns: 0,
            device_total_ns: 0,
        })
        .collect();
    host.sort_by(|a, b| {
        a.thread
            .cmp(&b.thread)
            .then(a.ts.cmp(&b.ts))
            .then(b.dur.cmp(&a.dur))
    });
    fold_nesting(&host, &mut rows);
    rows.sort_by(|a, b| {
        let k = |r: &KeyAverage| match sort_by {
            SortBy::SelfCpuTime => r.self_cpu_ns,
            SortBy::SelfDeviceTime => r.self_device_ns,
        };
        k(b).cmp(&k(a)).then_with(|| a.name.cmp(&b.name))
    });
    Ok(KeyAverages {
        rows,
        has_device,
        sort_by,
    })
}

/// Walk each thread's events in start order with a stack of open ones: an event's self time
/// is its duration minus its direct children's; device totals add up towards the root.
fn fold_nesting(host: &[HostEvent], rows: &mut [KeyAverage]) {
    struct Open {
        end: i64,
        key: usize,
        dur: i64,
        children_ns: i64,
        device_total: i64,
        device_self: i64,
    }
    fn close(o: Open, rows: &mut [KeyAverage], parent: Option<&mut Open>) {
        let r = &mut rows[o.key];
        r.calls += 1;
        r.cpu_total_ns += o.dur;
        r.self_cpu_ns += (o.dur - o.children_ns).max(0);
        r.self_device_ns += o.device_self;
        r.device_total_ns += o.device_total;
        if let Some(p) = parent {
            p.children_ns += o.dur;
            p.device_total += o.device_total;
        }
    }
    let mut stack: Vec<Open> = Vec::new();
    let mut thread: Option<&(String, String)> = None;
    for h in host {
        if thread != Some(&h.thread) {
            while let Some(o) = stack.pop() {
                close(o, rows, stack.last_mut());
            }
            thread = Some(&h.thread);
        }
        while stack.last().is_some_and(|o| o.end <= h.ts) {
            let o = stack.pop().expect("non-empty");
            close(o, rows, stack.last_mut());
        }
        stack.push(Open {
            end: h.ts + h.dur,
            key: h.key,
            dur: h.dur,
            children_ns: 0,
            device_total: h.device_ns,
            device_self: h.device_ns,
        });
    }
    while let Some(o) = stack.pop() {
        close(o, rows, stack.last_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_time_excludes_children_and_device_time_follows_external_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let trace = serde_json::json!({"traceEvents": [
            {"ph": "X", "cat": "user_annotation", "name": "step", "pid": 1, "tid": 1, "ts": 0, "dur": 100},
            {"ph": "X", "cat": "cpu_op", "name": "mm", "pid": 1, "tid": 1, "ts": 10, "dur": 30,
             "args": {"Input Dims": [[1, 4], [8, 4]], "External id": 1}},
            {"ph": "X", "cat": "cpu_op", "name": "mm", "pid": 1, "tid": 1, "ts": 50, "dur": 20,
             "args": {"Input Dims": [[1, 4], [8, 4]], "External id": 2}},
            {"ph": "X", "cat": "cpu_op", "name": "mm", "pid": 1, "tid": 1, "ts": 80, "dur": 10,
             "args": {"Input Dims": [[2, 4], [8, 4]], "External id": 3}},
            {"ph": "X", "cat": "kernel", "name": "k", "pid": 0, "tid": 7, "ts": 11, "dur": 25,
             "args": {"External id": 1}},
            {"ph": "X", "cat": "kernel", "name": "k", "pid": 0, "tid": 7, "ts": 51, "dur": 15,
             "args": {"External id": 2}}
        ]});
        std::fs::write(&path, trace.to_string()).unwrap();
        let t = read(&path, SortBy::SelfCpuTime).unwrap();
        assert!(t.has_device);
        let row = |n: &str, s: &str| {
            t.rows
                .iter()
                .find(|r| r.name == n && r.input_shapes == s)
                .cloned()
                .unwrap()
        };
        let step = row("step", "");
        assert_eq!(
            (step.calls, step.cpu_total_ns, step.self_cpu_ns),
            (1, 100_000, 40_000)
        );
        assert_eq!((step.self_device_ns, step.device_total_ns), (0, 40_000));
        let mm = row("mm", "[[1, 4], [8, 4]]");
        assert_eq!(
            (mm.calls, mm.self_cpu_ns, mm.self_device_ns),
            (2, 50_000, 40_000)
        );
        assert_eq!(row("mm", "[[2, 4], [8, 4]]").calls, 1);
        assert_eq!(t.rows[0].name, "mm", "sorted by self CPU time");
        assert_eq!(t.self_cpu_total_ns(), 100_000);
    }
}
