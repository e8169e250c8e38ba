//! One conversation on the wire: its rounds in order, each sent when the round before ended
//! (no think time, as bench_serving), its history growing with the server's real replies.
//! First rounds are rendered and serialized before the run (`SessionWork::new`): in an arrival
//! burst, conversations whose tasks each rendered their first body before sending queued
//! behind one another, which showed as schedule lag (docs/PERFORMANCE.md). Later rounds are
//! rendered between rounds, in the conversation's own task, once the reply they carry is known;
//! the timestamps of every stream are still taken as bytes arrive (`client.rs`).

use std::time::Instant;

use super::{Conversation, Message, Rendering, render};
use crate::client::{BodyOptions, Prepared, Target};
use crate::dataset::Prompt;
use crate::record::RequestRecord;

/// What every conversation of a run shares.
pub struct SessionWork {
    pub sessions: Vec<Conversation>,
    pub body: BodyOptions,
    pub rendering: Rendering,
    /// Each conversation's first round, rendered and serialized ahead of the run.
    first: Vec<Result<Prepared, String>>,
}

impl SessionWork {
    /// The work of `sessions`, with every first round prepared now.
    pub fn new(sessions: Vec<Conversation>, body: BodyOptions, rendering: Rendering) -> Self {
        let first = sessions
            .iter()
            .map(|conv| match conv.turns.first() {
                Some(turn) => prepare_round(&body, &rendering, conv, turn, &turn.messages),
                None => Err("a conversation without rounds".to_string()),
            })
            .collect();
        SessionWork {
            sessions,
            body,
            rendering,
            first,
        }
    }
}

/// Round `turn` of `conv` with `history` (which ends with the round's own messages) as a body.
fn prepare_round(
    body: &BodyOptions,
    rendering: &Rendering,
    conv: &Conversation,
    turn: &super::Turn,
    history: &[Message],
) -> Result<Prepared, String> {
    render(rendering, history).and_then(|input| {
        let prompt = Prompt {
            input,
            prompt_len: turn.prompt_len.unwrap_or(0),
            output_len: turn.output_len,
            routing_key: conv.routing_key.clone(),
        };
        body.prepare_with(&prompt, turn.output_len, Some(&conv.extra))
    })
}

/// Run conversation `i`: one record per round, in order. `intended` and `dispatched` are the
/// first round's schedule times; later rounds are due when the round before ends.
pub async fn run_session(
    work: &SessionWork,
    target: &Target,
    i: usize,
    t0: Instant,
    intended: f64,
    dispatched: f64,
) -> Vec<RequestRecord> {
    let conv = &work.sessions[i];
    let mut history: Vec<Message> = Vec::new();
    let mut records = Vec::with_capacity(conv.turns.len());
    let mut due = (intended, dispatched);
    for (k, turn) in conv.turns.iter().enumerate() {
        history.extend(turn.messages.iter().cloned());
        let mut rec = RequestRecord {
            intended: due.0,
            dispatched: due.1,
            session: Some(conv.session),
            turn: conv.first_turn + k as u32,
            ..Default::default()
        };
        let later;
        let prepared = if k == 0 {
            work.first[i].as_ref()
        } else {
            later = prepare_round(&work.body, &work.rendering, conv, turn, &history);
            later.as_ref()
        };
        let rec = match prepared {
            Ok(p) => target.send(p, t0, rec).await,
            Err(e) => {
                rec.error = format!("round {k}: {e}");
                rec
            }
        };
        // The conversation goes on after a failure with an empty reply, as bench_serving's.
        let reply = if rec.ok {
            rec.generated_text.clone()
        } else {
            String::new()
        };
        history.push(Message::new("assistant", reply));
        let now = (Instant::now() - t0).as_secs_f64();
        due = (now, now);
        records.push(rec);
    }
    records
}
