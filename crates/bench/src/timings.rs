//! The request-timings sidecar: every run's JSONL record and every request's raw timings
//! (start, TTFT, each chunk gap and its tokens), so a report's over-time charts can be rebuilt
//! later without re-running (`loupe report`). One JSON object a line: a run line
//! (`{"loupe_timings": 1, "label": ..., "record": {...}}`) followed by one line per request.
//!
//! A rebuilt run must have the same bits as the live one to give the same page. Times are
//! written as Rust's shortest round-trip decimals inside strings and read back with
//! `str::parse`, which is exact; the record's own numbers (the rate, the scraped /metrics
//! series) are read by serde_json with its `float_roundtrip` feature (this crate turns it
//! on), also exact, where its default parser may be one bit off.

use std::io::{BufRead, Write};
use std::path::Path;

use serde_json::{Value, json};

use crate::beyond::{self, ClientCpu};
use crate::metrics;
use crate::outcome::{RunInfo, RunOutcome};
use crate::plan::Slos;
use crate::profile::bench::ProfileReport;
use crate::record::RequestRecord;

/// The format's version, the key that tells a sidecar from a plain JSONL file.
pub const VERSION: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum TimingsError {
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Bad {
        path: String,
        line: usize,
        message: String,
    },
}

fn floats(xs: impl IntoIterator<Item = f64>) -> String {
    let mut s = String::new();
    for (i, x) in xs.into_iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&x.to_string());
    }
    s
}

fn request_line(r: &RequestRecord, retokenized: Option<usize>) -> Value {
    json!({
        "ok": r.ok,
        "error": r.error,
        "prompt_len": r.prompt_len,
        "server_prompt_len": r.server_prompt_len,
        "output_len": r.output_len,
        "output_len_reported": r.output_len_reported,
        "retokenized": retokenized,
        "times": floats([r.intended, r.dispatched, r.start, r.ttft, r.latency]),
        "first_tokens": r.first_tokens,
        "gaps": floats(r.gaps.iter().copied()),
        "gap_tokens": r.gap_tokens,
        "cached_tokens": r.cached_tokens,
        "session": r.session,
        "turn": r.turn,
    })
}

/// Write every run's record and requests to `path`, whole or not at all. `record` is each
/// run's JSONL record (`report::record`).
pub fn write(
    path: &Path,
    runs: &[RunOutcome],
    record: impl Fn(&RunOutcome) -> Value,
) -> std::io::Result<()> {
    loupe_trace::export::write_atomic(path, |w| {
        let mut line = |v: &Value| -> std::io::Result<()> {
            serde_json::to_writer(&mut *w, v).map_err(std::io::Error::other)?;
            w.write_all(b"\n")
        };
        for run in runs {
            let cpu = run.info.cpu.map(|c| {
                json!({"seconds": c.seconds.to_string(), "wall": c.wall.to_string(),
                       "cores": c.cores, "includes_server": c.includes_server})
            });
            line(&json!({
                "loupe_timings": VERSION,
                "label": run.label,
                "native": run.native,
                "requests": run.records.len(),
                "duration": run.summary.duration.to_string(),
                "percentiles": run.beyond.hdr.first().map(|h| h.at.iter().map(|(p, _)| *p).collect::<Vec<_>>()),
                "cpu": cpu,
                "record": record(run),
            }))?;
            for (i, r) in run.records.iter().enumerate() {
                line(&request_line(
                    r,
                    run.retokenized.as_ref().and_then(|v| v.get(i).copied()),
                ))?;
            }
        }
        Ok(())
    })
}

/// Whether `first_line` starts a timings sidecar.
pub fn is_timings(first_line: &str) -> bool {
    serde_json::from_str::<Value>(first_line)
        .ok()
        .is_some_and(|v| v.get("loupe_timings").is_some())
}

struct Reader<'a> {
    path: &'a str,
    line: usize,
}

impl Reader<'_> {
    fn bad(&self, message: impl Into<String>) -> TimingsError {
        TimingsError::Bad {
            path: self.path.to_string(),
            line: self.line,
            message: message.into(),
        }
    }

    fn field<'v>(&self, v: &'v Value, key: &str) -> Result<&'v Value, TimingsError> {
        v.get(key)
            .ok_or_else(|| self.bad(format!("missing key {key:?}")))
    }

    fn uint(&self, v: &Value, key: &str) -> Result<usize, TimingsError> {
        self.field(v, key)?
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| self.bad(format!("{key:?} is not a non-negative integer")))
    }

    fn boolean(&self, v: &Value, key: &str) -> Result<bool, TimingsError> {
        self.field(v, key)?
            .as_bool()
            .ok_or_else(|| self.bad(format!("{key:?} is not true or false")))
    }

    fn floats(&self, v: &Value, key: &str) -> Result<Vec<f64>, TimingsError> {
        let s = self
            .field(v, key)?
            .as_str()
            .ok_or_else(|| self.bad(format!("{key:?} is not a string of numbers")))?;
        s.split_ascii_whitespace()
            .map(|t| {
                t.parse::<f64>()
                    .map_err(|_| self.bad(format!("{key:?}: {t:?} is not a number")))
            })
            .collect()
    }

    fn float(&self, v: &Value, key: &str) -> Result<f64, TimingsError> {
        match self.floats(v, key)?.as_slice() {
            [x] => Ok(*x),
            _ => Err(self.bad(format!("{key:?} is not one number"))),
        }
    }

    fn request(&self, v: &Value) -> Result<(RequestRecord, Option<usize>), TimingsError> {
        let times = self.floats(v, "times")?;
        let [intended, dispatched, start, ttft, latency] = times[..] else {
            return Err(self.bad("\"times\" must hold 5 numbers"));
        };
        let gaps = self.floats(v, "gaps")?;
        let gap_tokens: Vec<u32> = self
            .field(v, "gap_tokens")?
            .as_array()
            .ok_or_else(|| self.bad("\"gap_tokens\" is not an array"))?
            .iter()
            .map(|k| k.as_u64().map(|k| k as u32))
            .collect::<Option<_>>()
            .ok_or_else(|| self.bad("\"gap_tokens\" holds a non-integer"))?;
        if gap_tokens.len() != gaps.len() {
            return Err(self.bad(format!(
                "{} gaps but {} gap token counts",
                gaps.len(),
                gap_tokens.len()
            )));
        }
        let opt = |k: &str| v.get(k).and_then(Value::as_u64).map(|n| n as usize);
        Ok((
            RequestRecord {
                ok: self.boolean(v, "ok")?,
                error: self
                    .field(v, "error")?
                    .as_str()
                    .ok_or_else(|| self.bad("\"error\" is not a string"))?
                    .to_string(),
                prompt_len: self.uint(v, "prompt_len")?,
                server_prompt_len: opt("server_prompt_len"),
                output_len: self.uint(v, "output_len")?,
                output_len_reported: self.boolean(v, "output_len_reported")?,
                intended,
                dispatched,
                start,
                ttft,
                latency,
                first_tokens: self.uint(v, "first_tokens")? as u32,
                gaps,
                gap_tokens,
                text_ends: Vec::new(),
                generated_text: String::new(),
                cached_tokens: opt("cached_tokens"),
                session: v.get("session").and_then(Value::as_u64).map(|n| n as u32),
                turn: v.get("turn").and_then(Value::as_u64).unwrap_or(0) as u32,
            },
            opt("retokenized"),
        ))
    }
}

/// A run's settings back from its JSONL record.
fn info(record: &Value, cpu: Option<ClientCpu>) -> RunInfo {
    let s = |k: &str| record.get(k).and_then(Value::as_str).map(str::to_string);
    let u = |k: &str| record.get(k).and_then(Value::as_u64).map(|n| n as usize);
    let f = |k: &str| match record.get(k) {
        Some(Value::String(t)) if t == "inf" => Some(f64::INFINITY),
        Some(v) => v.as_f64(),
        None => None,
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let profile = record.get("profile_traces").map(|p| ProfileReport {
        engine: p["engine"].as_str().unwrap_or_default().to_string(),
        profile_id: p["profile_id"].as_str().unwrap_or_default().to_string(),
        output_dir: p["output_dir"].as_str().unwrap_or_default().to_string(),
        files: strings(p.get("files")),
        complete: p["complete"].as_bool().unwrap_or(false),
        errors: strings(p.get("errors")),
        notes: strings(p.get("notes")),
        summary: p["summary"].as_str().map(str::to_string),
    });
    RunInfo {
        backend: s("backend").unwrap_or_default(),
        dataset_name: s("dataset_name").unwrap_or_default(),
        request_rate: f("request_rate").unwrap_or(f64::INFINITY),
        rate_label: s("request_rate_label").unwrap_or_default(),
        burstiness: f("burstiness").unwrap_or(1.0),
        max_concurrency: u("max_concurrency"),
        sharegpt_output_len: u("sharegpt_output_len"),
        random_input_len: u("random_input_len").unwrap_or(0),
        random_output_len: u("random_output_len").unwrap_or(0),
        random_range_ratio: f("random_range_ratio").unwrap_or(0.0),
        tag: s("tag"),
        cache_report: record.get("cache_report").is_some(),
        traffic_scenario: s("traffic_scenario"),
        server_info: record.get("server_info").cloned().unwrap_or(Value::Null),
        accept_length: f("accept_length"),
        cpu,
        profile,
        warnings: strings(record.get("client_warnings")),
        server_metrics: record
            .get("server_metrics")
            .and_then(crate::scrape::Scraped::from_record),
    }
}

/// Every run back from a sidecar, its metrics recomputed from the requests with the same
/// functions as the live run (so a rebuilt report shows the same figures).
pub fn read(path: &Path) -> Result<Vec<RunOutcome>, TimingsError> {
    let name = path.display().to_string();
    let io = |err| TimingsError::Io {
        path: name.clone(),
        err,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut rd = Reader {
        path: &name,
        line: 0,
    };
    let mut runs: Vec<(RunOutcome, usize, Vec<f64>, Slos)> = Vec::new();
    for text in std::io::BufReader::new(file).lines() {
        let text = text.map_err(io)?;
        rd.line += 1;
        if text.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| rd.bad(e.to_string()))?;
        if v.get("loupe_timings").is_some() {
            if v["loupe_timings"].as_u64() != Some(VERSION) {
                return Err(rd.bad(format!(
                    "version {} (this loupe reads {VERSION})",
                    v["loupe_timings"]
                )));
            }
            let cpu = match v.get("cpu") {
                Some(c) if !c.is_null() => Some(ClientCpu {
                    seconds: rd.float(c, "seconds")?,
                    wall: rd.float(c, "wall")?,
                    cores: rd.uint(c, "cores")?,
                    includes_server: rd.boolean(c, "includes_server")?,
                }),
                _ => None,
            };
            let record = rd.field(&v, "record")?.clone();
            let percentiles = v
                .get("percentiles")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();
            let run = RunOutcome {
                label: rd
                    .field(&v, "label")?
                    .as_str()
                    .ok_or_else(|| rd.bad("\"label\" is not a string"))?
                    .to_string(),
                info: info(&record, cpu),
                summary: metrics::Summary {
                    duration: rd.float(&v, "duration")?,
                    ..Default::default()
                },
                beyond: Default::default(),
                records: Vec::with_capacity(rd.uint(&v, "requests")?),
                retokenized: None,
                native: rd.boolean(&v, "native")?,
            };
            // The SLOs in the order the user gave them (the record keeps its key order).
            let slos = record
                .get("goodput_slos_ms")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                        .collect()
                })
                .unwrap_or_default();
            runs.push((run, rd.uint(&v, "requests")?, percentiles, slos));
            continue;
        }
        let Some((run, ..)) = runs.last_mut() else {
            return Err(rd.bad("a request line before any run line"));
        };
        let (r, retok) = rd.request(&v)?;
        run.records.push(r);
        if let Some(n) = retok {
            run.retokenized.get_or_insert_with(Vec::new).push(n);
        }
    }
    if runs.is_empty() {
        return Err(rd.bad("no run line: not a loupe request-timings file"));
    }
    runs.into_iter()
        .map(|(mut run, expected, percentiles, slos)| {
            if run.records.len() != expected {
                return Err(TimingsError::Bad {
                    path: name.clone(),
                    line: rd.line,
                    message: format!(
                        "run {:?}: {} of its {expected} requests (the file is cut off)",
                        run.label,
                        run.records.len()
                    ),
                });
            }
            if run
                .retokenized
                .as_ref()
                .is_some_and(|v| v.len() != expected)
            {
                run.retokenized = None;
            }
            let duration = run.summary.duration;
            run.summary = metrics::summarize(
                &run.records,
                duration,
                run.native,
                run.retokenized.as_deref(),
            );
            run.beyond = beyond::summarize(&run.records, duration, &percentiles, &slos);
            if run.info.has_images() {
                crate::point::count_images(&mut run.summary, &mut run.beyond, &run.records);
            }
            Ok(run)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(label: &str, records: Vec<RequestRecord>) -> RunOutcome {
        let info = info(
            &json!({"backend": "sglang", "request_rate": "inf", "request_rate_label": "inf"}),
            None,
        );
        RunOutcome {
            label: label.into(),
            info,
            summary: Default::default(),
            beyond: Default::default(),
            records,
            retokenized: None,
            native: false,
        }
    }

    fn records() -> Vec<RequestRecord> {
        vec![
            RequestRecord {
                ok: true,
                prompt_len: 7,
                server_prompt_len: Some(8),
                output_len: 3,
                output_len_reported: true,
                intended: 0.1 + 0.2,
                dispatched: 1.0 / 3.0,
                start: std::f64::consts::PI,
                ttft: 1e-7,
                latency: 0.123456789012345,
                first_tokens: 1,
                gaps: vec![0.1, 2.0f64.sqrt()],
                gap_tokens: vec![1, 1],
                ..Default::default()
            },
            RequestRecord {
                ok: false,
                error: "HTTP 500: \"boom\"\nsecond line".into(),
                ..Default::default()
            },
        ]
    }

    #[test]
    fn an_image_runs_vision_tokens_are_counted_again_when_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img.requests.jsonl");
        let mut recs = records();
        // The server counted 40 image placeholder tokens beyond the client's 7 text tokens.
        recs[0].server_prompt_len = Some(47);
        let mut run = run_with("run", recs);
        run.info.dataset_name = "image".into();
        run.summary = metrics::summarize(&run.records, 2.5, false, None);
        run.beyond = beyond::summarize(&run.records, 2.5, &[50.0], &Vec::new());
        crate::point::count_images(&mut run.summary, &mut run.beyond, &run.records);
        assert_eq!(run.summary.total_input_vision_tokens, 40);
        write(&path, std::slice::from_ref(&run), |r| {
            crate::report::record(r, false)
        })
        .unwrap();
        let back = read(&path).unwrap();
        let s = &back[0].summary;
        assert_eq!(
            (
                s.total_input_tokens,
                s.total_input_text_tokens,
                s.total_input_vision_tokens
            ),
            (47, 7, 40)
        );
        assert_eq!(s.input_throughput, run.summary.input_throughput);
        assert!(back[0].beyond.prompt_len_check.warning().is_none());
        // A text run keeps the client's count: the same file relabelled reads 0 vision tokens.
        let text = std::fs::read_to_string(&path).unwrap().replacen(
            "\"dataset_name\":\"image\"",
            "\"dataset_name\":\"random\"",
            1,
        );
        std::fs::write(&path, text).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back[0].summary.total_input_vision_tokens, 0);
        assert_eq!(back[0].summary.total_input_tokens, 7);
    }

    #[test]
    fn runs_read_back_to_the_same_bits_and_figures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.requests.jsonl");
        let mut run = run_with("concurrency 4", records());
        run.summary = metrics::summarize(&run.records, 2.5, false, None);
        run.beyond = beyond::summarize(&run.records, 2.5, &[50.0, 99.9], &Vec::new());
        write(&path, std::slice::from_ref(&run), |r| {
            crate::report::record(r, false)
        })
        .unwrap();
        assert!(is_timings(
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .next()
                .unwrap()
        ));
        let back = read(&path).unwrap();
        assert_eq!(back.len(), 1);
        let (a, b) = (&run.records[0], &back[0].records[0]);
        for (x, y) in [
            (a.intended, b.intended),
            (a.dispatched, b.dispatched),
            (a.start, b.start),
            (a.ttft, b.ttft),
            (a.latency, b.latency),
            (a.gaps[1], b.gaps[1]),
        ] {
            assert_eq!(x.to_bits(), y.to_bits());
        }
        assert_eq!(back[0].records[1].error, run.records[1].error);
        assert_eq!(back[0].summary.ttft, run.summary.ttft);
        assert_eq!(back[0].beyond.hdr, run.beyond.hdr);
        assert_eq!(back[0].label, "concurrency 4");
    }

    #[test]
    fn bad_files_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, "{\"ok\": true}\n").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(
            e.ends_with("bad.jsonl:1: a request line before any run line"),
            "{e}"
        );
        std::fs::write(
            &path,
            "{\"loupe_timings\": 1, \"label\": \"run\", \"native\": false, \"requests\": 1, \
             \"duration\": \"1\", \"record\": {}}\n{\"ok\": true, \"times\": \"1 2 x\"}\n",
        )
        .unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(
            e.contains("bad.jsonl:2: \"times\": \"x\" is not a number"),
            "{e}"
        );
    }
}
