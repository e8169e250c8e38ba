//! Mooncake trace replay (`--dataset-name mooncake`): one session per trace line
//! `{"timestamp": ms, "input_length", "output_length", "hash_ids": [...]}`, starting at its
//! timestamp (times `--mooncake-slowdown-factor`) with `--mooncake-num-rounds` rounds.
//!
//! A hash_id names one KV block of `--mooncake-block-tokens` tokens (512, Mooncake's
//! convention): equal leading ids are a shared prefix. With a client tokenizer loupe builds
//! each block from token ids seeded by the id, so a session's prompt is `input_length` tokens
//! long and shares exactly the trace's blocks with the others. bench_serving instead writes
//! `str(id)` and 128 `hi` per block (about a quarter of the trace's length) and sends a canned
//! reply between rounds, every round at once (`History::Canned` keeps that, for comparisons).
//! The trace files are published by kvcache-ai/Mooncake (FAST25-release); loupe does not
//! download them.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;

use super::lines::{Line, each_json_line, uint};
use super::{DatasetConfig, Prompt, PromptInput};
use crate::error::{BenchError, Result};
use crate::session::{Conversation, History, Message, Turn, canned_reply};
use crate::tokenizer::BenchTokenizer;

/// Where bench_serving downloads each workload's trace from.
pub fn trace_url(workload: &str) -> Option<String> {
    let base = "https://raw.githubusercontent.com/kvcache-ai/Mooncake/main/FAST25-release";
    match workload {
        "mooncake" => Some(format!("{base}/arxiv-trace/mooncake_trace.jsonl")),
        "conversation" | "synthetic" | "toolagent" => {
            Some(format!("{base}/traces/{workload}_trace.jsonl"))
        }
        _ => None,
    }
}

/// One trace line.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    timestamp: f64,
    input_length: usize,
    output_length: usize,
    hash_ids: Vec<u64>,
}

fn entry(v: &Value) -> std::result::Result<Entry, String> {
    let timestamp = v
        .get("timestamp")
        .and_then(Value::as_f64)
        .ok_or("`timestamp` (ms) is missing or not a number")?;
    let hash_ids = v
        .get("hash_ids")
        .and_then(Value::as_array)
        .ok_or("`hash_ids` is missing or not a list")?
        .iter()
        .map(|h| {
            h.as_u64()
                .ok_or(format!("hash_id {h} is not a non-negative integer"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if hash_ids.is_empty() {
        return Err("`hash_ids` is empty".into());
    }
    Ok(Entry {
        timestamp,
        input_length: uint(v, "input_length").unwrap_or(0),
        output_length: uint(v, "output_length").unwrap_or(256),
        hash_ids,
    })
}

/// The trace file: `--dataset-path`, else bench_serving's cache name in the temporary directory.
fn trace_path(cfg: &DatasetConfig<'_>) -> Result<String> {
    if !cfg.path.is_empty() {
        return Ok(cfg.path.to_string());
    }
    let w = &cfg.mooncake.workload;
    let url = trace_url(w).ok_or_else(|| {
        BenchError::Usage(format!(
            "--mooncake-workload {w}: use conversation, mooncake, synthetic or toolagent"
        ))
    })?;
    let cached = std::env::temp_dir().join(format!("{w}_trace.jsonl"));
    if cached.is_file() {
        return Ok(cached.display().to_string());
    }
    Err(BenchError::Usage(format!(
        "--dataset-name mooncake: no trace at {} and loupe does not download; fetch {url} and \
         pass it with --dataset-path",
        cached.display()
    )))
}

/// bench_serving's text for a block: the id, then `n` times `hi`.
fn upstream_block(id: u64, n: usize) -> String {
    let mut s = id.to_string();
    for i in 0..n {
        s.push_str(if i == 0 { "hi" } else { " hi" });
    }
    s
}

const CLOSING: &str = "Tell me a story based on this context.";

/// bench_serving's warmup request for a mooncake run: the earliest line's blocks as `str(id)`
/// and 512 `hi` each, another closing sentence, raw text (no chat template), that line's
/// output length (not capped at 32 as other warmups are).
fn upstream_warmup(e: &Entry) -> Prompt {
    let blocks: String = e
        .hash_ids
        .iter()
        .map(|&id| upstream_block(id, 512))
        .collect();
    let text = format!("{blocks}Can you tell me a detailed story in 1000 words?");
    Prompt {
        prompt_len: 0,
        output_len: e.output_length,
        input: PromptInput::Text(text),
        routing_key: None,
    }
}

/// A mooncake run's conversations, and the warmup request bench_serving sends before them
/// when the history is canned (its upstream-compatible mode); `None`: warm up with the first
/// conversation.
pub struct Sessions {
    pub sessions: Vec<Conversation>,
    pub warmup: Option<Prompt>,
}

/// The context of one session: token-exact blocks through `tok`, else upstream's text.
fn context(e: &Entry, block: usize, tok: Option<(&BenchTokenizer, usize)>) -> Result<String> {
    let Some((t, vocab)) = tok else {
        let blocks: String = e
            .hash_ids
            .iter()
            .map(|&id| upstream_block(id, 128))
            .collect();
        return Ok(format!("{blocks}{CLOSING}"));
    };
    let want = if e.input_length > 0 {
        e.input_length.min(block * e.hash_ids.len())
    } else {
        block * e.hash_ids.len()
    };
    let mut ids = Vec::with_capacity(want);
    for &h in &e.hash_ids {
        // The block's tokens depend on its id alone: every session with this id shares them.
        let mut rng = StdRng::seed_from_u64(h ^ 0x000B_10C5);
        ids.extend((0..block).map(|_| rng.random_range(0..vocab) as u32));
    }
    ids.truncate(want.saturating_sub(t.special_tokens()).max(1));
    t.decode(&ids)
}

pub fn sessions(
    cfg: &DatasetConfig<'_>,
    tok: Option<&BenchTokenizer>,
    server_vocab: Option<usize>,
    notes: &mut Vec<String>,
) -> Result<Sessions> {
    let m = cfg.mooncake;
    let path = trace_path(cfg)?;
    let mut entries = Vec::new();
    each_json_line(&path, cfg.traces.skip_bad_lines, notes, |v| {
        entries.push(entry(&v)?);
        Ok(if entries.len() >= cfg.num {
            Line::Stop
        } else {
            Line::Keep
        })
    })?;
    // First --num-prompts lines, then by time (a stable sort keeps equal stamps in file order).
    entries.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
    let exact = match (m.history, tok) {
        (History::Real, Some(t)) => {
            let vocab = server_vocab.map_or(t.vocab_size(), |v| v.min(t.vocab_size()));
            Some((t, vocab.max(1)))
        }
        (History::Real, None) => {
            notes.push(
                "mooncake without a client tokenizer: blocks are bench_serving's `hi` text, \
                 about a quarter of the trace's lengths"
                    .into(),
            );
            None
        }
        (History::Canned, _) => None,
    };
    let t0 = entries.first().map_or(0.0, |e| e.timestamp);
    let mut out = Vec::new();
    for (s, e) in entries.iter().enumerate() {
        let text = context(e, m.block_tokens, exact)?;
        let at = (e.timestamp - t0) / 1000.0 * m.slowdown_factor;
        let round = |i: usize| Message::new("user", format!("Round {}: {text}", i + 1));
        let intended = exact.map(|_| e.input_length);
        match m.history {
            History::Real => out.push(Conversation {
                turns: (0..m.num_rounds)
                    .map(|i| Turn {
                        messages: vec![round(i)],
                        output_len: e.output_length,
                        prompt_len: if i == 0 { intended } else { None },
                    })
                    .collect(),
                at: Some(at),
                session: s as u32,
                ..Default::default()
            }),
            History::Canned => {
                // Each round is a request of its own, sent at the session's start, its
                // history holding canned replies.
                let mut history = Vec::new();
                for i in 0..m.num_rounds {
                    if i > 0 {
                        history.push(Message::new("assistant", canned_reply(e.output_length)));
                    }
                    history.push(round(i));
                    out.push(Conversation {
                        turns: vec![Turn {
                            messages: history.clone(),
                            output_len: e.output_length,
                            prompt_len: None,
                        }],
                        at: Some(at),
                        session: s as u32,
                        first_turn: i as u32,
                        ..Default::default()
                    });
                }
            }
        }
    }
    let warmup = match m.history {
        History::Canned => entries.first().map(upstream_warmup),
        History::Real => None,
    };
    Ok(Sessions {
        sessions: out,
        warmup,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_need_a_timestamp_and_hash_ids() {
        let v: Value = serde_json::from_str(
            r#"{"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47]}"#,
        )
        .unwrap();
        assert_eq!(
            entry(&v).unwrap(),
            Entry {
                timestamp: 27482.0,
                input_length: 6955,
                output_length: 52,
                hash_ids: vec![46, 47]
            }
        );
        let no_ids: Value = serde_json::from_str(r#"{"timestamp": 1, "hash_ids": []}"#).unwrap();
        assert_eq!(entry(&no_ids).unwrap_err(), "`hash_ids` is empty");
        let no_ts: Value = serde_json::from_str(r#"{"hash_ids": [1]}"#).unwrap();
        assert!(entry(&no_ts).unwrap_err().contains("timestamp"));
    }

    #[test]
    fn upstream_blocks_are_the_id_then_hi() {
        assert_eq!(upstream_block(7, 3), "7hi hi hi");
        let e = Entry {
            timestamp: 0.0,
            input_length: 0,
            output_length: 1,
            hash_ids: vec![1, 2],
        };
        let text = context(&e, 512, None).unwrap();
        assert!(text.starts_with("1hi hi") && text.ends_with(CLOSING));
        assert_eq!(text.trim_end_matches(CLOSING).matches("hi").count(), 256);
        // bench_serving's warmup: 512 `hi` a block, its own closing sentence, the line's
        // output length
        let w = upstream_warmup(&Entry {
            output_length: 300,
            ..e
        });
        let PromptInput::Text(text) = &w.input else {
            panic!("a text prompt")
        };
        assert!(text.starts_with("1hi hi") && text.contains(" hi2hi hi"));
        assert!(text.ends_with("hiCan you tell me a detailed story in 1000 words?"));
        assert_eq!(text.matches("hi").count(), 1024);
        assert_eq!(w.output_len, 300);
    }
}
