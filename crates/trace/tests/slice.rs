//! `slice`: windows by steps and time (with clipping), flows with both ends only, ranks of a
//! merged trace, categories.

mod common;

use std::path::Path;

use common::{data, read_all};
use loupe_trace::export::merge::{CategoryFilter, merge};
use loupe_trace::export::slice::{SliceSpec, Window, slice};
use loupe_trace::import::{Input, ReadOptions};
use loupe_trace::rank::RankFilter;
use loupe_trace::{Id, Phase};

fn cut(file: &Path, out: &Path, spec: SliceSpec) -> loupe_trace::export::slice::SliceReport {
    let input = Input::open(file, None).unwrap();
    slice(&input, out, &spec, &ReadOptions::default()).unwrap()
}

#[test]
fn steps_window_with_clipping() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.json.gz");
    let r = cut(
        &data("sampled_rank-0.json.gz"),
        &out,
        SliceSpec {
            window: Some(Window::parse_steps("552..552").unwrap()),
            ..SliceSpec::default()
        },
    );
    // ProfilerStep#552 starts at 1682725898686653 us; it is the last step, so the window runs
    // to the end of the trace.
    let (a, _) = r.range.unwrap();
    assert_eq!(a, 1_682_725_898_686_653_000);
    let (_, evs) = read_all(&out);
    assert!(evs.iter().any(|e| e.name == "ProfilerStep#552"));
    assert!(!evs.iter().any(|e| e.name == "ProfilerStep#551"));
    // The profiler's whole-run span is clipped to the window.
    let span = evs
        .iter()
        .find(|e| e.name == "PyTorch Profiler (0)")
        .unwrap();
    assert_eq!(span.ts, Some(a));
    for e in evs.iter().filter(|e| e.ph == Phase::COMPLETE) {
        assert!(e.ts.unwrap() >= a, "{} starts before the window", e.name);
    }
    // Metadata is kept whole.
    let (_, orig) = read_all(&data("sampled_rank-0.json.gz"));
    let meta =
        |v: &[loupe_trace::Event<'static>]| v.iter().filter(|e| e.ph == Phase::METADATA).count();
    assert_eq!(meta(&evs), meta(&orig));
}

#[test]
fn time_window_keeps_exactly_the_overlapping_events() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.json");
    let file = data("sglang_Qwen3-8B_decode.json.gz");
    let r = cut(
        &file,
        &out,
        SliceSpec {
            window: Some(Window::parse_time("0.01%..1%").unwrap()),
            categories: CategoryFilter {
                drop: vec![],
                keep: Some(vec!["kernel".into()]),
            },
            ..SliceSpec::default()
        },
    );
    let (a, b) = r.range.unwrap();
    let (_, orig) = read_all(&file);
    let first = orig
        .iter()
        .filter(|e| e.ph != Phase::METADATA)
        .filter_map(|e| e.ts)
        .min()
        .unwrap();
    let last = orig
        .iter()
        .filter(|e| e.ph != Phase::METADATA)
        .map(|e| e.end())
        .max()
        .unwrap();
    assert_eq!(a, first + ((last - first) as f64 * 0.0001).round() as i64);
    let expected: Vec<&str> = orig
        .iter()
        .filter(|e| e.cat == "kernel" && e.ts.unwrap() < b && e.end() > a)
        .map(|e| e.name.as_ref())
        .collect();
    let (_, evs) = read_all(&out);
    let got: Vec<&str> = evs.iter().map(|e| e.name.as_ref()).collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
    assert!(evs.iter().all(|e| e.ts.unwrap() >= a && e.end() <= b));
}

#[test]
fn flows_need_both_ends_inside() {
    let dir = tempfile::tempdir().unwrap();
    let file = data("triton_example.json.gz");
    let (_, orig) = read_all(&file);
    let flows: Vec<_> = orig.iter().filter(|e| e.ph.is_flow()).collect();
    let first = orig
        .iter()
        .filter(|e| e.ph != Phase::METADATA)
        .filter_map(|e| e.ts)
        .min()
        .unwrap();
    // The pair (s at the launch, f at the kernel) and a lone s; a window around all of them
    // keeps the pair and drops the lone start.
    let lo = flows.iter().map(|e| e.ts.unwrap()).min().unwrap() - first;
    let hi = flows.iter().map(|e| e.ts.unwrap()).max().unwrap() - first;
    let out = dir.path().join("f.json");
    let r = cut(
        &file,
        &out,
        SliceSpec {
            window: Some(Window::parse_time(&format!("{}ns..{}ns", lo, hi + 1)).unwrap()),
            ..SliceSpec::default()
        },
    );
    let (_, evs) = read_all(&out);
    let kept: Vec<_> = evs.iter().filter(|e| e.ph.is_flow()).collect();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0].id, kept[1].id);
    assert_eq!(r.flows_dropped, 1);
}

#[test]
fn ranks_of_a_merged_trace() {
    let dir = tempfile::tempdir().unwrap();
    let merged = dir.path().join("m.json");
    let inputs = vec![
        Input::open(&data("sampled_rank-0.json.gz"), None).unwrap(),
        Input::open(&data("sampled_rank-1.json.gz"), None).unwrap(),
    ];
    merge(
        &inputs,
        &merged,
        &ReadOptions::default(),
        &CategoryFilter::default(),
    )
    .unwrap();
    let out = dir.path().join("r1.json");
    cut(
        &merged,
        &out,
        SliceSpec {
            ranks: Some(RankFilter::parse("1").unwrap()),
            ..SliceSpec::default()
        },
    );
    let (_, evs) = read_all(&out);
    let (_, rank1) = read_all(&data("sampled_rank-1.json.gz"));
    assert!(
        evs.iter()
            .all(|e| matches!(&e.pid, Id::Str(s) if s.starts_with("[RANK01] ")))
    );
    let x =
        |v: &[loupe_trace::Event<'static>]| v.iter().filter(|e| e.ph == Phase::COMPLETE).count();
    assert_eq!(x(&evs), x(&rank1));

    // A single-rank file is kept or dropped as a whole.
    let none = dir.path().join("none.json");
    cut(
        &data("sampled_rank-0.json.gz"),
        &none,
        SliceSpec {
            ranks: Some(RankFilter::parse("1").unwrap()),
            ..SliceSpec::default()
        },
    );
    assert!(read_all(&none).1.is_empty());
}

#[test]
fn max_size_cuts_the_window_into_parts_that_fit() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cut.json");
    let whole = dir.path().join("whole.json");
    let input = Input::open(&data("sampled_rank-0.json.gz"), None).unwrap();
    let plain = slice(
        &input,
        &whole,
        &SliceSpec::default(),
        &ReadOptions::default(),
    )
    .unwrap();
    let limit = 400_000u64;
    let r = slice(
        &input,
        &out,
        &SliceSpec {
            max_size: Some(limit),
            ..SliceSpec::default()
        },
        &ReadOptions::default(),
    )
    .unwrap();
    assert!(r.files.len() >= 3, "{:?}", r.files);
    assert!(!out.exists(), "only the parts are written");
    let mut kernel_ns = 0;
    let mut last_end = i64::MIN;
    for (k, f) in r.files.iter().enumerate() {
        assert_eq!(f, &dir.path().join(format!("cut.part{}.json", k + 1)));
        let size = std::fs::metadata(f).unwrap().len();
        assert!(size <= limit, "{}: {size} bytes", f.display());
        let (_, evs) = read_all(f);
        assert!(
            evs.iter().any(|e| e.ph == Phase::METADATA),
            "metadata in every part"
        );
        let timed: Vec<_> = evs.iter().filter(|e| e.ph == Phase::COMPLETE).collect();
        let first = timed.iter().map(|e| e.ts.unwrap()).min().unwrap();
        assert!(first >= last_end, "parts follow each other in time");
        last_end = timed.iter().map(|e| e.end()).max().unwrap();
        kernel_ns += timed
            .iter()
            .filter(|e| e.cat == "kernel")
            .map(|e| e.dur)
            .sum::<i64>();
    }
    // a kernel crossing a cut is clipped into both parts, so nothing is lost or doubled
    let (_, evs) = read_all(&whole);
    let whole_ns: i64 = evs
        .iter()
        .filter(|e| e.cat == "kernel")
        .map(|e| e.dur)
        .sum();
    assert_eq!(kernel_ns, whole_ns);
    assert!(r.events_written >= plain.events_written);
}
