//! Helpers shared by the integration tests: fixture paths, reading a whole trace into owned
//! events, writing generated traces (plain or gzip).

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use loupe_trace::import::{Input, ReadOptions};
use loupe_trace::{Event, Result, TraceInfo};

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn read_all_with(path: &Path, opts: ReadOptions) -> Result<(TraceInfo, Vec<Event<'static>>)> {
    let input = Input::open(path, None)?;
    let mut events = Vec::new();
    let info = input.read(&opts, &mut |ev: &Event<'_>| {
        events.push(ev.to_owned_event());
        Ok(())
    })?;
    Ok((info, events))
}

pub fn read_all(path: &Path) -> (TraceInfo, Vec<Event<'static>>) {
    read_all_with(path, ReadOptions::default()).unwrap()
}

pub fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap()),
        &mut out,
    )
    .unwrap();
    out
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

pub mod graphs;

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Writes `bytes` gzipped to `dir/name`.
pub fn write_gz(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    write(dir, name, &gz.finish().unwrap())
}

/// Files in `dir` (to check that nothing partial was left behind).
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
