//! Bad input gives an error naming the file and the byte offset, and leaves no output behind.

mod common;

use common::{data, gunzip, gzip, listing, read_all_with, write};
use loupe_trace::TraceError;
use loupe_trace::export::merge::{CategoryFilter, merge};
use loupe_trace::import::{Input, ReadOptions};

fn read_err(path: &std::path::Path) -> TraceError {
    read_all_with(path, ReadOptions::default()).unwrap_err()
}

#[test]
fn invalid_json_reports_the_byte_offset() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"traceEvents": [{"ph": "X", "name": "a", "ts": 1, "dur": 1}, "#;
    let text = format!(r#"{good}{{"ph": "X", "name": oops}}]}}"#);
    let p = write(dir.path(), "bad.json", text.as_bytes());
    match read_err(&p) {
        TraceError::Json {
            offset, compressed, ..
        } => {
            // `oops` starts 20 bytes into the second event.
            assert_eq!(offset as usize, good.len() + 20);
            assert!(!compressed);
        }
        e => panic!("{e}"),
    }
    let msg = read_err(&p).to_string();
    assert!(msg.starts_with(&p.display().to_string()), "{msg}");
    assert!(msg.contains("invalid JSON at byte"), "{msg}");
    assert_eq!(read_err(&p).exit_code(), 2);

    // The same content gzipped: the offset counts decompressed bytes, and says so.
    let gz = write(dir.path(), "bad.json.gz", &gzip(text.as_bytes()));
    let msg = read_err(&gz).to_string();
    assert!(
        msg.contains(&format!(
            "byte {} of the decompressed stream",
            good.len() + 20
        )),
        "{msg}"
    );
}

#[test]
fn truncated_gzip_is_a_gzip_error() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(data("sampled_rank-0.json.gz")).unwrap();
    let p = write(dir.path(), "cut.json.gz", &bytes[..bytes.len() / 2]);
    let e = read_err(&p);
    assert!(matches!(e, TraceError::Gzip { .. }), "{e}");
    assert!(e.to_string().contains("corrupt or truncated gzip"), "{e}");
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn truncated_json_and_other_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let json = gunzip(&data("triton_example.json.gz"));
    let cut = write(dir.path(), "cut.json", &json[..json.len() / 3]);
    let msg = read_err(&cut).to_string();
    assert!(msg.contains("ends early"), "{msg}");

    let empty = write(dir.path(), "empty.json", b"");
    assert!(read_err(&empty).to_string().contains("empty"));
    let text = write(dir.path(), "notes.txt", b"hello");
    let msg = read_err(&text).to_string();
    assert!(msg.contains("expected `{` or `[`"), "{msg}");
    let missing = dir.path().join("missing.json");
    let e = Input::open(&missing, None).unwrap_err();
    assert!(matches!(e, TraceError::Read { .. }));
    assert!(e.to_string().contains("missing.json"));
}

#[test]
fn a_failed_merge_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = data("sampled_rank-0.json.gz");
    let bytes = std::fs::read(data("sampled_rank-1.json.gz")).unwrap();
    let bad = write(dir.path(), "rank-1.json.gz", &bytes[..bytes.len() - 100]);
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("merged.json.gz");
    let inputs = vec![
        Input::open(&good, None).unwrap(),
        Input::open(&bad, None).unwrap(),
    ];
    let e = merge(
        &inputs,
        &out,
        &ReadOptions::default(),
        &CategoryFilter::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("rank-1.json.gz"), "{e}");
    assert!(
        listing(out_dir.path()).is_empty(),
        "{:?}",
        listing(out_dir.path())
    );
}
