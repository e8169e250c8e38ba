//! Reading Kineto / Chrome JSON: every real fixture, every layout variant, exact times.

mod common;

use common::{data, gunzip, gzip, read_all, read_all_with, write};
use loupe_trace::import::ReadOptions;
use loupe_trace::{Id, Phase};

#[test]
fn reads_every_fixture_completely() {
    // Event counts from Python's json.load of the same files.
    for (file, events) in [
        ("sampled_rank-0.json.gz", 4855),
        ("sampled_rank-1.json.gz", 4720),
        ("triton_example.json.gz", 71),
        ("mi250_minitoy_train_ROCm6_2_kineto.json.gz", 220),
        ("sglang_Qwen3-8B_decode.json.gz", 2058),
    ] {
        let (info, evs) = read_all(&data(file));
        assert_eq!(evs.len(), events, "{file}");
        assert_eq!(info.events, events as u64, "{file}");
    }
}

#[test]
fn base_time_after_the_events_is_found() {
    let (info, evs) = read_all(&data("triton_example.json.gz"));
    assert_eq!(info.base_ns, Some(1_727_743_122_000_000_000));
    // INFO and traceName follow the events and are kept.
    let keys: Vec<&str> = info.other.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys.contains(&"INFO") && keys.contains(&"traceName"),
        "{keys:?}"
    );
    assert_eq!(
        info.device_properties
            .as_deref()
            .map(|d| d.contains("A100")),
        Some(true)
    );
    let min_ts = evs
        .iter()
        .filter(|e| e.ph != Phase::METADATA)
        .filter_map(|e| e.ts)
        .min();
    assert_eq!(min_ts, Some(2_413_668_742_269_099));
    let flows = evs.iter().filter(|e| e.ph.is_flow()).count();
    assert_eq!(flows, 3);
}

#[test]
fn absolute_microseconds_and_distributed_info() {
    let (info, evs) = read_all(&data("sampled_rank-1.json.gz"));
    assert_eq!(info.base_ns, None);
    let d = info.distributed.unwrap();
    assert_eq!((d.rank, d.world_size), (Some(1), Some(128)));
    let step = evs.iter().find(|e| e.name == "ProfilerStep#551").unwrap();
    assert_eq!(step.ts, Some(1_682_725_898_079_484_000));
    assert_eq!(step.dur, 607_904_000);
    assert!(evs.iter().any(|e| e.pid == Id::Str("Spans".into())));
}

#[test]
fn rocm_string_args_and_pids() {
    let (_, evs) = read_all(&data("mi250_minitoy_train_ROCm6_2_kineto.json.gz"));
    let copy = evs
        .iter()
        .find(|e| e.name == "Memcpy HtoD (Host -> Device)")
        .unwrap();
    assert_eq!(copy.cat, "gpu_memcpy");
    assert!(evs.iter().any(|e| e.pid == Id::Str("Traces".into())));
    assert!(
        evs.iter()
            .any(|e| e.name.starts_with("hip") && e.cat == "cuda_runtime")
    );
}

#[test]
fn plain_gzip_and_multi_member_gzip_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let json = gunzip(&data("triton_example.json.gz"));
    let plain = write(dir.path(), "t.json", &json);
    // Two gzip members back to back are one valid gzip stream.
    let (a, b) = json.split_at(json.len() / 2);
    let mut two = gzip(a);
    two.extend(gzip(b));
    let multi = write(dir.path(), "t.json.gz", &two);
    let (_, x) = read_all(&data("triton_example.json.gz"));
    let (_, y) = read_all(&plain);
    let (_, z) = read_all(&multi);
    let key = |v: &[loupe_trace::Event<'static>]| {
        v.iter().map(|e| format!("{:?}", e)).collect::<Vec<_>>()
    };
    assert_eq!(key(&x), key(&y));
    assert_eq!(key(&x), key(&z));
}

#[test]
fn any_key_order_and_bare_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let events = r#"[{"ph": "X", "cat": "kernel", "name": "k", "pid": 0, "tid": 7, "ts": "5.5", "dur": 2},
                     {"ph": "i", "name": "mark", "pid": "Traces", "tid": "x", "ts": 9, "s": "g"}]"#;
    let before = format!(r#"{{"baseTimeNanoseconds": 1000, "traceEvents": {events}}}"#);
    let after = format!(
        r#"{{"traceEvents": {events}, "INFO": ["a"], "baseTimeNanoseconds": 1000, "extra": {{"x": [1, 2]}}}}"#
    );
    let bare = events.to_string();
    let mut seen = Vec::new();
    for (i, text) in [before, after, bare].iter().enumerate() {
        let p = write(dir.path(), &format!("{i}.json"), text.as_bytes());
        let (info, evs) = read_all(&p);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].ts, Some(5_500));
        assert_eq!(evs[0].dur, 2_000);
        assert_eq!(evs[1].scope.as_deref(), Some("g"));
        seen.push(info.base_ns);
    }
    assert_eq!(seen, vec![Some(1000), Some(1000), None]);
}

#[test]
fn lenient_mode_repairs_what_broken_writers_produce() {
    let dir = tempfile::tempdir().unwrap();
    // A raw tab and newline inside a name (pytorch/pytorch#130622), a trailing comma, and an
    // array cut off by a crash.
    let text = "{\"traceEvents\": [{\"ph\": \"X\", \"name\": \"a\tb\nc\", \"pid\": 1, \"tid\": 1, \"ts\": 1, \"dur\": 1},\n{\"ph\": \"X\", \"name\": \"ok\", \"pid\": 1, \"tid\": 1, \"ts\": 2, \"dur\": 1},\n{\"ph\": \"X\", \"name\": \"cut";
    let p = write(dir.path(), "broken.json", text.as_bytes());
    let strict = read_all_with(&p, ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(strict.contains("control character"), "{strict}");
    assert!(strict.contains("--lenient"), "{strict}");
    let (info, evs) = read_all_with(&p, ReadOptions { lenient: true }).unwrap();
    assert!(info.truncated);
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0].name, "a\tb\nc");

    let trailing = write(
        dir.path(),
        "trailing.json",
        br#"{"traceEvents": [{"ph": "i", "name": "x", "ts": 1},]}"#,
    );
    assert!(read_all_with(&trailing, ReadOptions::default()).is_err());
    let (_, evs) = read_all_with(&trailing, ReadOptions { lenient: true }).unwrap();
    assert_eq!(evs.len(), 1);
}

#[test]
fn events_split_across_chunks_anywhere() {
    // Numbers cut right after the decimal point are "invalid" to serde_json until the next
    // chunk arrives; pad so that every byte offset of an event meets a 1 MiB chunk boundary.
    let dir = tempfile::tempdir().unwrap();
    let event = r#"{"ph": "X", "cat": "kernel", "name": "k\"q", "pid": 0, "tid": 7, "ts": 3132978.706, "dur": 17.985, "args": {"a": [1.5, "x"]}}"#;
    let mut text = String::from("{\"traceEvents\": [");
    let mut n = 0;
    while text.len() < (1 << 20) + 4 * event.len() {
        if n > 0 {
            text.push_str(if n % 7 == 0 { ",\n " } else { "," });
        }
        text.push_str(event);
        n += 1;
    }
    text.push_str("]}");
    for shift in 0..event.len() {
        let padded = format!("{}{text}", " ".repeat(shift));
        let p = write(dir.path(), "t.json", padded.as_bytes());
        let (_, evs) = read_all(&p);
        assert_eq!(evs.len(), n, "shift {shift}");
        assert!(
            evs.iter()
                .all(|e| e.ts == Some(3_132_978_706) && e.name == "k\"q")
        );
    }
}
