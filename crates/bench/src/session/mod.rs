//! Multi-turn traffic: conversations whose rounds go out in order, each round carrying the
//! whole history so far with the server's real reply to the round before (bench_serving's
//! agentic and generated-shared-prefix replays do the same; its mooncake replay sends a canned
//! reply and every round at once, kept here only as [`History::Canned`] for comparisons).
//!
//! A conversation holds one arrival and one `--max-concurrency` slot for all its rounds; each
//! round is one request record (`session`, `turn`), so bench_serving's flattened metrics come
//! out as upstream's and the per-turn figures (`turns.rs`) from the same records.

mod drive;
mod render;

pub use drive::{SessionWork, run_session};
pub use render::{Rendering, render};

use serde_json::{Map, Value};

/// One chat message, as the OpenAI API sends it (content flattened to text).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Message {
            role: role.to_string(),
            content: content.into(),
        }
    }
}

/// One round: the messages it adds to the history (user, tool or system turns; never the
/// assistant's, which come from the server), and the output it asks for.
#[derive(Debug, Clone)]
pub struct Turn {
    pub messages: Vec<Message>,
    pub output_len: usize,
    /// The round's whole prompt in tokens as the dataset says it should be (None: unknown;
    /// the server's count is used).
    pub prompt_len: Option<usize>,
}

/// One conversation.
#[derive(Debug, Clone, Default)]
pub struct Conversation {
    pub turns: Vec<Turn>,
    /// Seconds after the run's start when it begins (trace timestamps); None: the arrival
    /// process decides.
    pub at: Option<f64>,
    /// Merged into each of its request bodies after `--extra-request-body` (openai's per-line
    /// keys such as `tools`).
    pub extra: Map<String, Value>,
    /// `X-SMG-Routing-Key` for every round.
    pub routing_key: Option<String>,
    /// The conversation's index in the dataset and the index of its first round, as the
    /// records report them (a canned replay sends each round as a conversation of its own).
    pub session: u32,
    pub first_turn: u32,
}

impl Conversation {
    pub fn rounds(&self) -> usize {
        self.turns.len()
    }
}

/// Where the assistant turns of the history come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum History {
    /// The server's reply to the round before (an empty reply after a failure).
    #[default]
    Real,
    /// bench_serving's mooncake replay: `story` repeated output_len times, every round sent at
    /// once without waiting for replies.
    Canned,
}

/// bench_serving's canned mooncake reply.
pub fn canned_reply(output_len: usize) -> String {
    vec!["story"; output_len].join(" ")
}

/// Total rounds over conversations.
pub fn total_rounds(sessions: &[Conversation]) -> usize {
    sessions.iter().map(Conversation::rounds).sum()
}
