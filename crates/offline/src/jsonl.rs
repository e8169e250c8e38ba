//! Result files that SGLang's tools append to, one JSON object per line.

use std::io::Write;
use std::path::Path;

use serde_json::Value;

use crate::OfflineError;

/// Append `records` to `path` (created if absent), one line each, in one write so that a
/// failure leaves no partial line behind.
pub fn append(path: &Path, records: &[Value]) -> Result<(), OfflineError> {
    let mut text = String::new();
    for r in records {
        text.push_str(&r.to_string());
        text.push('\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| OfflineError::file(path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| OfflineError::file(path, e))
}
