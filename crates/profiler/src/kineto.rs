//! One rank's capture as a Kineto-compatible Chrome trace (`.trace.json.gz`): the top-level
//! keys PyTorch's profiler writes (schemaVersion, deviceProperties, distributedInfo,
//! baseTimeNanoseconds with `ts` relative to it in microseconds with three decimals, `M`
//! names and sort indices, traceName), so Perfetto, HTA, TraceLens and `loupe trace` read it
//! as they read a GPU server's trace.
//!
//! Lanes, labelled for what they are: the host process (pid = the server's pid) with the
//! scheduler thread (its phases and one `step[...]` span per batch, SGLang's names) and the
//! tokenizer; and the rank's compute lane (pid = the TP rank, "rank N compute (CPU)",
//! stream 7) with one `kernel` event per op, linked to the host-side op by an `ac2g` flow
//! whose id is unique within the rank.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use loupe_engine::observer::{ForwardMode, OpEvent, OpKind};

use crate::capture::{Capture, ExportSpec};
use crate::request::Activity;

/// Kineto's base-time interval (`ChromeTraceBaseTime`): 7,889,238 s, about three months.
const BASE_INTERVAL_NS: i64 = 7_889_238 * 1_000_000_000;
const DEVICE_STREAM: u64 = 7;
const HOST_SCHEDULER_TID: u64 = 1;
const HOST_TOKENIZER_TID: u64 = 2;

/// `floor(t / interval) * interval`, as Kineto picks `baseTimeNanoseconds`.
pub fn base_time_ns(any_ns: i64) -> i64 {
    any_ns.div_euclid(BASE_INTERVAL_NS) * BASE_INTERVAL_NS
}

/// Where in loupe's source each op and phase runs (`with_stack`).
fn op_source(kind: OpKind) -> &'static str {
    match kind {
        OpKind::AllReduce | OpKind::AllGather => "crates/engine/src/collective.rs (Collective)",
        OpKind::Attention => "crates/engine/src/attention.rs (attend_row)",
        OpKind::Sampling => "crates/engine/src/scheduler.rs (Scheduler::sample)",
        k if k.is_projection() => "crates/engine/src/matmul.rs (matmul)",
        _ => "crates/engine/src/model.rs (RankModel::forward)",
    }
}

/// `Input Dims` as PyTorch records them for the op's inputs.
fn input_dims(op: &OpEvent) -> String {
    let [m, k, n] = op.dims;
    if op.kind.is_projection() {
        format!("[[{m}, {k}], [{n}, {k}]]")
    } else {
        format!("[[{m}, {k}]]")
    }
}

/// The compute-lane name of an op. Collectives carry "nccl" so that trace analyses (HTA,
/// TraceLens) class them as communication, while saying what they really are.
fn device_name(kind: OpKind) -> &'static str {
    match kind {
        OpKind::AllReduce => "all_reduce [nccl-equivalent CPU collective]",
        OpKind::AllGather => "all_gather [nccl-equivalent CPU collective]",
        k => k.name(),
    }
}

fn step_name(info: &loupe_engine::observer::StepInfo) -> String {
    match info.mode {
        ForwardMode::Extend => format!(
            "step[EXTEND bs={} toks={}]",
            info.batch_size, info.num_tokens
        ),
        ForwardMode::Decode => format!("step[DECODE bs={}]", info.batch_size),
    }
}

struct Events<W: Write> {
    out: W,
    base: i64,
    first: bool,
}

impl<W: Write> Events<W> {
    /// `ts` relative to the base, microseconds with three decimals (Kineto's `fmtTs`).
    fn ts(&self, abs_ns: i64) -> String {
        let rel = (abs_ns - self.base).max(0);
        format!("{}.{:03}", rel / 1000, rel % 1000)
    }

    fn dur(ns: i64) -> String {
        let ns = ns.max(0);
        format!("{}.{:03}", ns / 1000, ns % 1000)
    }

    fn sep(&mut self) -> io::Result<()> {
        if self.first {
            self.first = false;
            self.out.write_all(b"\n  ")
        } else {
            self.out.write_all(b",\n  ")
        }
    }

    fn meta(&mut self, name: &str, pid: u64, tid: u64, arg: serde_json::Value) -> io::Result<()> {
        self.sep()?;
        let key = if name.ends_with("sort_index") {
            "sort_index"
        } else if name == "process_labels" {
            "labels"
        } else {
            "name"
        };
        write!(
            self.out,
            r#"{{"name": "{name}", "ph": "M", "ts": 0, "pid": {pid}, "tid": {tid}, "args": {{"{key}": {arg}}}}}"#
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn complete(
        &mut self,
        name: &str,
        cat: &str,
        pid: u64,
        tid: u64,
        start: i64,
        end: i64,
        args: &str,
    ) -> io::Result<()> {
        self.sep()?;
        let ts = self.ts(start);
        write!(self.out, r#"{{"ph": "X", "cat": "{cat}", "name": "#)?;
        serde_json::to_writer(&mut self.out, name)?;
        write!(
            self.out,
            r#", "pid": {pid}, "tid": {tid}, "ts": {ts}, "dur": {}, "args": {{{args}}}}}"#,
            Self::dur(end - start)
        )
    }

    fn flow(&mut self, ph: char, id: u64, pid: u64, tid: u64, at: i64) -> io::Result<()> {
        self.sep()?;
        let ts = self.ts(at);
        let bp = if ph == 'f' { r#", "bp": "e""# } else { "" };
        write!(
            self.out,
            r#"{{"ph": "{ph}", "id": {id}, "pid": {pid}, "tid": {tid}, "ts": {ts}, "cat": "ac2g", "name": "ac2g"{bp}}}"#
        )
    }

    fn counter(&mut self, name: &str, pid: u64, at: i64, args: &str) -> io::Result<()> {
        self.sep()?;
        let ts = self.ts(at);
        write!(
            self.out,
            r#"{{"ph": "C", "name": "{name}", "pid": {pid}, "tid": 0, "ts": {ts}, "args": {{{args}}}}}"#
        )
    }
}

/// The earliest instant anything in the capture happened.
fn earliest(capture: &Capture) -> std::time::Instant {
    let steps = capture.steps.iter().flat_map(|s| {
        s.phases
            .iter()
            .map(|p| p.1)
            .chain(s.rank_ops.iter().flatten().map(|o| o.start))
    });
    let spans = capture.host_spans.iter().map(|h| h.start);
    steps.chain(spans).min().unwrap_or(capture.started)
}

/// Write rank `tp`'s share of `capture`, gzip-compressed, into `sink` (the caller's
/// temporary file, renamed to `final_path` when complete; the trace records that path as its
/// `traceName`). Returns the number of events.
pub fn write_rank<W: Write>(
    sink: W,
    final_path: &Path,
    spec: &ExportSpec,
    capture: &Capture,
    tp: usize,
) -> io::Result<usize> {
    let gz = GzEncoder::new(sink, Compression::new(3));
    let mut out = BufWriter::with_capacity(1 << 20, gz);
    let base = base_time_ns(spec.clock.unix_ns(earliest(capture)));
    let req = &spec.request;
    let world = spec.tp_size * spec.dp_size;
    let global_rank = capture.dp_rank * spec.tp_size + tp;
    let group: Vec<usize> = (0..spec.tp_size)
        .map(|r| capture.dp_rank * spec.tp_size + r)
        .collect();
    let header = serde_json::json!({
        "schemaVersion": 1,
        "deviceProperties": [{
            "id": tp, "name": format!("loupe reference engine, rank {tp} (CPU, {} threads)", spec.threads_per_rank),
            "totalGlobalMem": 0, "computeMajor": 0, "computeMinor": 0, "maxThreadsPerBlock": 0,
            "maxThreadsPerMultiprocessor": 0, "regsPerBlock": 0, "warpSize": 0, "sharedMemPerBlock": 0,
            "numSms": spec.threads_per_rank, "regsPerMultiprocessor": 0, "sharedMemPerBlockOptin": 0,
            "sharedMemPerMultiprocessor": 0,
        }],
        "distributedInfo": {
            "backend": "loupe", "rank": global_rank, "world_size": world, "pg_count": 1,
            "pg_config": [{"pg_name": "0", "pg_desc": "tp", "backend_config": "cpu:loupe", "pg_size": spec.tp_size, "ranks": group}],
            "nccl_version": null,
        },
        "record_shapes": req.record_shapes as u8,
        "with_stack": req.with_stack as u8,
        "profile_memory": req.has(Activity::Mem) as u8,
        "trace_id": spec.profile_id,
        "displayTimeUnit": "ms",
        "baseTimeNanoseconds": base,
    });
    // The header's keys, then the events array, then traceName: Kineto's layout, with its
    // `"key": value` spacing (HTA finds the rank with a regex that expects the space).
    let header_text = serde_json::to_string_pretty(&header).map_err(io::Error::other)?;
    let open = header_text
        .trim_end()
        .strip_suffix('}')
        .unwrap_or(&header_text)
        .trim_end();
    out.write_all(open.as_bytes())?;
    out.write_all(b",\n  \"traceEvents\": [")?;
    let mut ev = Events {
        out,
        base,
        first: true,
    };
    let host_pid = std::process::id() as u64;
    let dev_pid = tp as u64;
    let cpu = req.has(Activity::Cpu);
    let gpu = req.has(Activity::Gpu);
    let mem = req.has(Activity::Mem);
    ev.meta(
        "process_name",
        host_pid,
        0,
        serde_json::json!(format!("loupe serve (TP {tp}, DP {})", capture.dp_rank)),
    )?;
    ev.meta("process_labels", host_pid, 0, serde_json::json!("CPU"))?;
    ev.meta(
        "process_sort_index",
        host_pid,
        0,
        serde_json::json!(host_pid),
    )?;
    let host_thread = if tp == 0 {
        "scheduler"
    } else {
        "tensor-parallel rank"
    };
    ev.meta(
        "thread_name",
        host_pid,
        HOST_SCHEDULER_TID,
        serde_json::json!(format!(
            "thread {HOST_SCHEDULER_TID} ({host_thread} tp{tp})"
        )),
    )?;
    ev.meta(
        "thread_sort_index",
        host_pid,
        HOST_SCHEDULER_TID,
        serde_json::json!(HOST_SCHEDULER_TID),
    )?;
    if tp == 0 && cpu && !capture.host_spans.is_empty() {
        ev.meta(
            "thread_name",
            host_pid,
            HOST_TOKENIZER_TID,
            serde_json::json!("thread 2 (HTTP tokenizer)"),
        )?;
        ev.meta(
            "thread_sort_index",
            host_pid,
            HOST_TOKENIZER_TID,
            serde_json::json!(HOST_TOKENIZER_TID),
        )?;
    }
    if gpu {
        ev.meta(
            "process_name",
            dev_pid,
            0,
            serde_json::json!(format!("rank {tp} compute (CPU)")),
        )?;
        ev.meta(
            "process_labels",
            dev_pid,
            0,
            serde_json::json!(format!("compute (CPU) {tp}")),
        )?;
        ev.meta(
            "process_sort_index",
            dev_pid,
            0,
            serde_json::json!(5_000_000 + tp),
        )?;
        ev.meta(
            "thread_name",
            dev_pid,
            DEVICE_STREAM,
            serde_json::json!("stream 7 (compute)"),
        )?;
    }
    let mut correlation = 0u64;
    let mut count = 0usize;
    for step in &capture.steps {
        let info = &step.info;
        let run = step
            .phases
            .iter()
            .find(|p| p.0 == loupe_engine::observer::SchedulerPhase::RunBatch);
        if cpu {
            if tp == 0 {
                for (phase, s, e) in &step.phases {
                    let args = if req.with_stack {
                        r#""Source": "crates/engine/src/scheduler.rs (Scheduler::run)""#
                    } else {
                        ""
                    };
                    ev.complete(
                        phase.name(),
                        "user_annotation",
                        host_pid,
                        HOST_SCHEDULER_TID,
                        spec.clock.unix_ns(*s),
                        spec.clock.unix_ns(*e),
                        args,
                    )?;
                    count += 1;
                }
            }
            if let Some((_, s, e)) = run {
                let args = format!(
                    r#""forward_id": {}, "batch_size": {}, "tokens": {}, "cached_tokens": {}"#,
                    info.step, info.batch_size, info.num_tokens, info.cached_tokens
                );
                ev.complete(
                    &step_name(info),
                    "user_annotation",
                    host_pid,
                    HOST_SCHEDULER_TID,
                    spec.clock.unix_ns(*s),
                    spec.clock.unix_ns(*e),
                    &args,
                )?;
                count += 1;
            }
        }
        if mem && tp == 0 {
            let at = spec.clock.unix_ns(
                step.phases
                    .first()
                    .map_or_else(std::time::Instant::now, |p| p.1),
            );
            ev.counter(
                "KV cache (tokens)",
                host_pid,
                at,
                &format!(
                    r#""used": {}, "total": {}"#,
                    info.kv_used_tokens, info.kv_total_tokens
                ),
            )?;
            ev.counter(
                "requests",
                host_pid,
                at,
                &format!(
                    r#""running": {}, "queued": {}"#,
                    info.running_requests, info.queued_requests
                ),
            )?;
            count += 2;
        }
        let Some(ops) = step.rank_ops.get(tp) else {
            continue;
        };
        for op in ops {
            let (s, e) = (spec.clock.unix_ns(op.start), spec.clock.unix_ns(op.end));
            correlation += 1;
            let mut args = String::new();
            if let Some(l) = op.layer {
                args.push_str(&format!(r#""layer": {l}, "#));
            }
            if req.record_shapes {
                args.push_str(&format!(r#""Input Dims": {}, "#, input_dims(op)));
            }
            if req.with_stack {
                args.push_str(&format!(r#""Source": "{}", "#, op_source(op.kind)));
            }
            args.push_str(&format!(
                r#""External id": {correlation}, "correlation": {correlation}"#
            ));
            if cpu {
                ev.complete(
                    &format!("loupe::{}", op.kind.name()),
                    "cpu_op",
                    host_pid,
                    HOST_SCHEDULER_TID,
                    s,
                    e,
                    &args,
                )?;
                count += 1;
            }
            if gpu {
                let dev_args = format!(r#"{args}, "device": {tp}, "stream": {DEVICE_STREAM}"#);
                ev.complete(
                    device_name(op.kind),
                    "kernel",
                    dev_pid,
                    DEVICE_STREAM,
                    s,
                    e,
                    &dev_args,
                )?;
                count += 1;
                if cpu {
                    ev.flow('s', correlation, host_pid, HOST_SCHEDULER_TID, s)?;
                    ev.flow('f', correlation, dev_pid, DEVICE_STREAM, s)?;
                    count += 2;
                }
            }
        }
    }
    if tp == 0 && cpu {
        for span in &capture.host_spans {
            let args = format!(r#""tokens": {}"#, span.tokens);
            ev.complete(
                span.name,
                "user_annotation",
                host_pid,
                HOST_TOKENIZER_TID,
                spec.clock.unix_ns(span.start),
                spec.clock.unix_ns(span.end),
                &args,
            )?;
            count += 1;
        }
    }
    let mut out = ev.out;
    out.write_all(b"\n], \"traceName\": ")?;
    serde_json::to_writer(&mut out, &final_path.display().to_string())?;
    out.write_all(b"}\n")?;
    let gz = out.into_inner().map_err(|e| e.into_error())?;
    gz.finish()?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_time_is_floored_to_kineto_intervals() {
        // 1727743122000000000 = 219 intervals (the spec's example).
        assert_eq!(
            base_time_ns(1_727_743_122_000_000_000 + 2_413_669_000_000_000),
            1_727_743_122_000_000_000
        );
    }

    #[test]
    fn timestamps_have_three_decimals() {
        let ev = Events {
            out: Vec::new(),
            base: 1_000_000,
            first: true,
        };
        assert_eq!(ev.ts(1_000_000 + 1_234_567), "1234.567");
        assert_eq!(ev.ts(1_000_000 + 5), "0.005");
        assert_eq!(Events::<Vec<u8>>::dur(2_000), "2.000");
    }
}
