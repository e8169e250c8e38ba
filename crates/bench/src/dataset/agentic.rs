//! bench_serving's `agentic-trace` (sglang PR #29215): one JSON document
//! `{"metadata": ..., "conversations": [[{"messages": [...], "prompt_tokens": N}, ...], ...]}`
//! of agent sessions (OpenHands/SWE-smith style). Each turn holds the messages it adds (tool
//! results, user and system turns; the assistant's come from the server); `prompt_tokens` is
//! the turn's length in the original run. `--dataset-offset` rotates the conversations before
//! `--num-prompts` are taken, `--agentic-max-turns` caps the turns, empty turns are dropped.

use serde_json::Value;

use super::DatasetConfig;
use super::lines::content_text;
use crate::error::{BenchError, Result};
use crate::session::{Conversation, Message, Turn};

/// bench_serving's output length per turn without --sharegpt-output-len.
const OUTPUT_LEN: usize = 220;

fn turn(v: &Value, output_len: usize) -> std::result::Result<Option<Turn>, String> {
    let messages = v
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("`messages` is missing or not a list")?;
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or("a message has no `role`")?;
        if role == "assistant" {
            continue;
        }
        out.push(Message::new(
            role,
            content_text(m.get("content").unwrap_or(&Value::Null))?,
        ));
    }
    if out.is_empty() {
        return Ok(None);
    }
    Ok(Some(Turn {
        messages: out,
        output_len,
        prompt_len: v
            .get("prompt_tokens")
            .and_then(Value::as_u64)
            .map(|n| n as usize),
    }))
}

pub fn sessions(cfg: &DatasetConfig<'_>, notes: &mut Vec<String>) -> Result<Vec<Conversation>> {
    let path = cfg.path;
    if path.is_empty() {
        return Err(BenchError::Usage(
            "--dataset-name agentic-trace needs --dataset-path (a JSON file of conversations)"
                .into(),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| BenchError::Dataset {
        path: format!("{path}:{}:{}", e.line(), e.column()),
        message: format!("not JSON: {e}"),
    })?;
    let convs = doc
        .get("conversations")
        .and_then(Value::as_array)
        .ok_or_else(|| BenchError::Dataset {
            path: path.to_string(),
            message: "no `conversations` list at the top level".into(),
        })?;
    let output_len = cfg.sharegpt_output_len.unwrap_or(OUTPUT_LEN);
    let max_turns = cfg.traces.agentic_max_turns.unwrap_or(usize::MAX);
    let n = convs.len();
    let offset = if n == 0 {
        0
    } else {
        cfg.traces.dataset_offset % n
    };
    let mut out = Vec::new();
    let mut skipped = 0;
    for i in (0..n).map(|k| (k + offset) % n) {
        if out.len() >= cfg.num {
            break;
        }
        let parsed = convs[i]
            .as_array()
            .ok_or_else(|| "not a list of turns".to_string())
            .and_then(|turns| {
                turns
                    .iter()
                    .enumerate()
                    .map(|(j, t)| turn(t, output_len).map_err(|e| format!("turn {j}: {e}")))
                    .filter_map(|t| t.transpose())
                    .take(max_turns)
                    .collect::<std::result::Result<Vec<Turn>, String>>()
            });
        match parsed {
            Ok(turns) if turns.is_empty() => skipped += 1,
            Ok(turns) => out.push(Conversation {
                turns,
                session: out.len() as u32,
                ..Default::default()
            }),
            Err(e) if cfg.traces.skip_bad_lines => {
                skipped += 1;
                tracing::debug!("{path}: conversations[{i}]: {e}");
            }
            Err(e) => {
                return Err(BenchError::Dataset {
                    path: path.to_string(),
                    message: format!(
                        "conversations[{i}]: {e} (--skip-bad-lines skips such conversations)"
                    ),
                });
            }
        }
    }
    if skipped > 0 {
        notes.push(format!(
            "{path}: skipped {skipped} empty or malformed conversation{}",
            if skipped == 1 { "" } else { "s" }
        ));
    }
    Ok(out)
}
