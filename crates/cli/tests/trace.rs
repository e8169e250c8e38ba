//! `loupe trace` through the binary: exit codes, stdout reports, no partial outputs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../trace/tests/data")
        .join(name)
}

fn loupe(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loupe"))
        .arg("trace")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn summary_prints_tracelens_csv() {
    let trace = data("sglang_Qwen3-8B_decode.json.gz");
    let out = loupe(&[
        "summary",
        trace.to_str().unwrap(),
        "--format",
        "csv",
        "--table",
        "timeline",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "type,time ms,percent");
    assert_eq!(lines[1], "computation_time,9.759749,2.060105577680249");
    assert_eq!(lines[6], "total_time,473.749943,100.0");
    assert_eq!(lines.len(), 9);
}

#[test]
fn bad_input_exits_2_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(data("sampled_rank-1.json.gz")).unwrap();
    let cut = dir.path().join("rank-1.json.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let merged = dir.path().join("merged.json.gz");
    let out = loupe(&[
        "merge",
        data("sampled_rank-0.json.gz").to_str().unwrap(),
        cut.to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("rank-1.json.gz") && err.contains("gzip"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "only the input remains");

    let out = loupe(&["summary", dir.path().join("absent.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.json: cannot read"));
}

#[test]
fn merge_writes_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let merged = dir.path().join("merged.json");
    let out = loupe(&[
        "merge",
        data("sampled_rank-0.json.gz").to_str().unwrap(),
        data("sampled_rank-1.json.gz").to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
        "--drop-cat",
        "cuda_runtime",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&merged).unwrap();
    assert!(text.contains("\"pid\": \"[RANK01] 4045\""));
    assert!(!text.contains("\"cat\": \"cuda_runtime\""));
}
