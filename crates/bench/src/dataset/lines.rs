//! Reading dataset files line by line (JSONL) with every bad line reported by file and line:
//! it stops the run unless the plan says to skip bad lines, in which case each skip is
//! counted in the dataset's notes.

use std::io::BufRead;

use serde_json::Value;

use crate::error::{BenchError, Result};

/// What the caller says about one parsed line.
pub enum Line {
    Keep,
    /// Enough lines were taken: stop reading.
    Stop,
}

/// Feed each non-blank line of `path` to `each` as JSON. A line that is not JSON, or that
/// `each` rejects (`Err(why)`), is an error naming `path:line`, or with `skip_bad` a skip
/// counted in `notes`.
pub fn each_json_line(
    path: &str,
    skip_bad: bool,
    notes: &mut Vec<String>,
    mut each: impl FnMut(Value) -> std::result::Result<Line, String>,
) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| BenchError::io(path, e))?;
    let mut skipped = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| BenchError::io(format!("{path}:{n}"), e))?;
        if line.trim().is_empty() {
            continue;
        }
        let verdict = serde_json::from_str::<Value>(&line)
            .map_err(|e| format!("not JSON ({e})"))
            .and_then(&mut each);
        match verdict {
            Ok(Line::Keep) => {}
            Ok(Line::Stop) => break,
            Err(why) if skip_bad => skipped.push(format!("{n} ({why})")),
            Err(why) => {
                return Err(BenchError::Dataset {
                    path: format!("{path}:{n}"),
                    message: format!("{why} (--skip-bad-lines skips such lines and counts them)"),
                });
            }
        }
    }
    if !skipped.is_empty() {
        let shown: Vec<&str> = skipped.iter().take(5).map(String::as_str).collect();
        notes.push(format!(
            "{path}: skipped {} malformed line{}: {}{}",
            skipped.len(),
            if skipped.len() == 1 { "" } else { "s" },
            shown.join(", "),
            if skipped.len() > 5 { ", ..." } else { "" }
        ));
    }
    Ok(())
}

/// A required non-negative integer field.
pub fn uint(v: &Value, key: &str) -> std::result::Result<usize, String> {
    v.get(key)
        .and_then(Value::as_u64)
        .map(|n| n as usize)
        .ok_or_else(|| format!("`{key}` is missing or not a non-negative integer"))
}

/// A required string field.
pub fn string<'v>(v: &'v Value, key: &str) -> std::result::Result<&'v str, String> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{key}` is missing or not a string"))
}

/// OpenAI message content as text: a string, or the text parts of a list of parts.
pub fn content_text(v: &Value) -> std::result::Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => Ok(parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("")),
        other => Err(format!(
            "message content must be text or parts, got {other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn a_bad_line_is_named_by_file_and_line_or_skipped_when_asked() {
        let f = file("{\"a\": 1}\n\n{oops\n{\"b\": 2}\n");
        let path = f.path().to_str().unwrap();
        let mut notes = Vec::new();
        let err = each_json_line(path, false, &mut notes, |_| Ok(Line::Keep)).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!("{path}:3: not JSON")),
            "{err}"
        );
        let mut kept = 0;
        each_json_line(path, true, &mut notes, |v| {
            uint(&v, "a")?;
            kept += 1;
            Ok(Line::Keep)
        })
        .unwrap();
        assert_eq!(kept, 1);
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("skipped 2 malformed lines: 3 (not JSON"),
            "{}",
            notes[0]
        );
        assert!(notes[0].contains("4 (`a` is missing"), "{}", notes[0]);
    }
}
