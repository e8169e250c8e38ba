//! `slice --max-size`: where to cut a window into consecutive time ranges whose JSON stays
//! under a size the Perfetto UI loads, planned from the first pass's estimate of each event's
//! written size, and the parts' file names (`out.json.gz` -> `out.part1.json.gz`, ...).

use std::path::{Path, PathBuf};

use crate::error::{Result, TraceError};

/// Buckets of the size histogram over the window: cuts fall on their edges.
const BUCKETS: usize = 8192;
/// What one written event adds besides its strings (keys, numbers, punctuation).
const EVENT_OVERHEAD: u64 = 96;
/// Share of the limit a part is planned to; the estimate is not exact.
const FILL: f64 = 0.9;

/// `--max-size 500MB`: `B`, `KB`, `MB`, `GB` (powers of 1000) or `KiB`, `MiB`, `GiB`.
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => f64::NAN,
    };
    let v: f64 = number.trim().parse().unwrap_or(f64::NAN);
    let bytes = v * scale;
    if !bytes.is_finite() || bytes < 1e5 {
        return Err(TraceError::Usage(format!(
            "--max-size {text}: expected a size of at least 100KB such as 500MB, 2GB or 512MiB"
        )));
    }
    Ok(bytes as u64)
}

/// The first pass's estimate of written bytes over the window `[start, end)`.
pub struct SizeHistogram {
    start: i64,
    width: i64,
    bytes: Vec<u64>,
    /// Metadata events are written into every part.
    pub per_part: u64,
}

impl SizeHistogram {
    pub fn new(start: i64, end: i64) -> SizeHistogram {
        let width = ((end - start) / BUCKETS as i64).max(1);
        SizeHistogram {
            start,
            width,
            bytes: vec![0; BUCKETS + 1],
            per_part: 0,
        }
    }

    pub fn add(&mut self, ts: i64, strings: usize) {
        let b = ((ts - self.start).max(0) / self.width) as usize;
        self.bytes[b.min(BUCKETS)] += strings as u64 + EVENT_OVERHEAD;
    }

    /// Cut points strictly inside the window, so that each part's estimate stays under
    /// `FILL * max`. A bucket larger than that alone cannot be cut further and makes a part
    /// of its own.
    pub fn cuts(&self, max: u64) -> Vec<i64> {
        let budget = ((max as f64 * FILL) as u64)
            .saturating_sub(self.per_part)
            .max(1);
        let mut cuts = Vec::new();
        let mut acc = 0u64;
        for (i, &b) in self.bytes.iter().enumerate() {
            if acc > 0 && acc + b > budget {
                cuts.push(self.start + i as i64 * self.width);
                acc = 0;
            }
            acc += b;
        }
        cuts
    }
}

/// `dir/name.json.gz` -> `dir/name.part<k>.json.gz` (1-based); names without `.json` get the
/// suffix at the end.
pub fn part_path(out: &Path, k: usize) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let named = match name.find(".json") {
        Some(i) => format!("{}.part{k}{}", &name[..i], &name[i..]),
        None => format!("{name}.part{k}"),
    };
    out.with_file_name(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_names() {
        assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert!(parse_size("5").is_err());
        assert!(parse_size("big").is_err());
        assert!(parse_size("3 parsecs").is_err());
        assert_eq!(
            part_path(Path::new("a/b.trace.json.gz"), 2),
            Path::new("a/b.trace.part2.json.gz")
        );
        assert_eq!(part_path(Path::new("x.pb"), 1), Path::new("x.pb.part1"));
    }

    #[test]
    fn cuts_keep_parts_under_the_limit() {
        let mut h = SizeHistogram::new(0, 8192 * 10);
        for t in 0..8192 {
            h.add(t * 10, 1000 - EVENT_OVERHEAD as usize);
        }
        // 1000 bytes per bucket, 8.192 MB in all: 900 KB per part at a 1 MB limit
        let cuts = h.cuts(1_000_000);
        assert_eq!(cuts.len(), 9);
        assert_eq!(cuts[0], 900 * 10);
    }
}
