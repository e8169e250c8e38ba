//! TensorRT-LLM's side of profiling over HTTP (`trtllm-serve`, PR #13872: `/start_profile`
//! with `output_dir`, `num_steps`, `start_step`, `activities`; `/stop_profile`). The names of
//! the files it writes are unverified upstream (../shared/spec/engines-and-metrics.md §4.1):
//! loupe sends a fresh `output_dir` per capture, so every trace-like file that appears there
//! is the capture's. torch's `export_chrome_trace` writes the name it is given (the
//! `TLLM_TORCH_PROFILE_TRACE` path is `<base>-rank-<global rank><ext>`).

/// A file a capture writes: a Chrome/Kineto JSON trace (plain or gzip) or an Nsight
/// Systems report; hidden and temporary names never count.
pub fn is_output(name: &str) -> bool {
    !name.starts_with('.')
        && [".json", ".json.gz", ".nsys-rep", ".qdrep"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// A per-rank trace among them (a JSON trace that is no memory snapshot or merged file).
pub fn is_rank_trace(name: &str) -> bool {
    is_output(name)
        && (name.ends_with(".json") || name.ends_with(".json.gz"))
        && !name.contains("memory")
        && !name.starts_with("merged-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert!(is_output("trace-rank-0.json"));
        assert!(is_output("1764-TP-0.trace.json.gz"));
        assert!(is_output("run.nsys-rep"));
        assert!(!is_output(".trace-rank-0.json.tmp"));
        assert!(!is_output("trace-rank-0.json.tmp"));
        assert!(!is_output("server.log"));
        assert!(is_rank_trace("trace-rank-1.json.gz"));
        assert!(!is_rank_trace("run.nsys-rep"));
        assert!(!is_rank_trace("x-TP-0-memory.json"));
    }
}
