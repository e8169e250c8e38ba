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

/// `n` small events joined by `,\n`: 3 MiB of them span several parsing blocks (about
/// 1 MiB each), so what follows them lands in a block other than the first.
fn many_events(bytes: usize) -> String {
    let ev =
        r#"{"ph": "X", "cat": "kernel", "name": "k", "pid": 1, "tid": 7, "ts": 1.5, "dur": 2}"#;
    let mut s = String::new();
    while s.len() < bytes {
        s.push_str(ev);
        s.push_str(",\n");
    }
    s
}

/// The offset of a JSON error, read sequentially and with the parallel summary.
fn error_offsets(path: &std::path::Path) -> (u64, u64, String) {
    let offset = |e: TraceError| match e {
        TraceError::Json {
            offset, message, ..
        } => (offset, message),
        e => panic!("not a JSON error: {e}"),
    };
    let (seq, message) = offset(read_err(path));
    let input = Input::open(path, None).unwrap();
    let (par, _) =
        offset(loupe_trace::analyze::summarize(&input, &ReadOptions::default(), 0).unwrap_err());
    (seq, par, message)
}

#[test]
fn separators_between_events_are_checked_in_every_block() {
    let dir = tempfile::tempdir().unwrap();
    let ev = r#"{"ph": "i", "name": "m", "ts": 3}"#;
    for bulk in [0, 3 << 20] {
        let head = format!("{{\"traceEvents\": [{}", many_events(bulk));
        // (text after the bulk, where the error is relative to it, what it says)
        let cases = [
            (format!("{ev} {ev}]}}"), ev.len() + 1, "expected `,` or `]`"),
            (format!("{ev},, {ev}]}}"), ev.len() + 1, "expected value"),
            (format!("{ev}}}]}}"), ev.len(), "expected `,` or `]`"),
            // serde_json reads an array as a struct's fields in order, and reports its
            // length at its end.
            (
                format!("{ev}, [1, 2]]}}"),
                ev.len() + 2 + 5,
                "invalid length 2",
            ),
        ];
        for (i, (tail, at, says)) in cases.iter().enumerate() {
            let p = write(
                dir.path(),
                &format!("sep{bulk}-{i}.json"),
                format!("{head}{tail}").as_bytes(),
            );
            let (seq, par, message) = error_offsets(&p);
            assert_eq!(seq as usize, head.len() + at, "case {i}: {message}");
            assert_eq!(par, seq, "case {i}");
            assert!(message.contains(says), "case {i}: {message}");
        }
    }
    let p = write(dir.path(), "leading.json", format!("[, {ev}]").as_bytes());
    assert_eq!(error_offsets(&p).0, 1);
}

#[test]
fn the_first_error_in_the_file_is_the_one_reported() {
    // A bad event in the first block and a cut-off end several blocks later: however the
    // threads finish, the error is the bad event's.
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"traceEvents": [{"ph": "X", "name": "a", "ts": 1, "dur": 1}, "#;
    let text = format!(
        r#"{good}{{"ph": "X", "name": oops}}, {}{{"ph": "X", "na"#,
        many_events(4 << 20)
    );
    let p = write(dir.path(), "two-errors.json", text.as_bytes());
    let (seq, par, message) = error_offsets(&p);
    assert_eq!(seq as usize, good.len() + 20, "{message}");
    assert_eq!(par, seq);
}

#[test]
fn an_unterminated_string_is_an_error_not_a_read_to_the_end() {
    // The quote never closes: everything after it is string to the scanner. The error says
    // where the broken event starts.
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"traceEvents": [{"ph": "i", "name": "a", "ts": 1}, "#;
    let text = format!(
        r#"{good}{{"ph": "i", "name": "never closed, "ts": 2}}, {}]}}"#,
        many_events(2 << 20)
    );
    let p = write(dir.path(), "open-string.json", text.as_bytes());
    let (seq, par, message) = error_offsets(&p);
    assert!(message.contains("cut off"), "{message}");
    assert_eq!(seq as usize, good.len());
    assert_eq!(par, seq);
}
