//! The MEM activity's snapshot file: the KV pool and the request queues over the captured
//! steps, per rank. SGLang dumps a PyTorch CUDA-allocator pickle here; a CPU engine has no
//! CUDA allocator, so loupe writes what its memory actually is, as JSON
//! (`{id}-TP-{tp}-memory[-STAGE].json`). The same numbers are counter tracks in the trace.

use std::io::Write;

use serde_json::json;

use crate::capture::{Capture, ExportSpec};

pub fn write_snapshot<W: Write>(
    mut out: W,
    spec: &ExportSpec,
    capture: &Capture,
    tp: usize,
) -> std::io::Result<()> {
    let samples: Vec<serde_json::Value> = capture
        .steps
        .iter()
        .map(|s| {
            let at = s.phases.first().map(|p| p.1).unwrap_or(capture.started);
            json!({
                "step": s.info.step,
                "unix_ns": spec.clock.unix_ns(at),
                "mode": s.info.mode.name(),
                "kv_used_tokens": s.info.kv_used_tokens,
                "running_requests": s.info.running_requests,
                "queued_requests": s.info.queued_requests,
            })
        })
        .collect();
    let total = capture.steps.first().map_or(0, |s| s.info.kv_total_tokens);
    let peak = capture
        .steps
        .iter()
        .map(|s| s.info.kv_used_tokens)
        .max()
        .unwrap_or(0);
    let doc = json!({
        "profile_id": spec.profile_id,
        "tp_rank": tp,
        "dp_rank": capture.dp_rank,
        "stage": capture.stage.map(|s| s.suffix(spec.v2)),
        "model": spec.model_name,
        "kv_cache": {"total_tokens": total, "peak_used_tokens": peak, "samples": samples},
    });
    serde_json::to_writer_pretty(&mut out, &doc).map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}
