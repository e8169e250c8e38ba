//! One conversation on the wire: its rounds in order, each sent when the round before ended
//! (no think time, as bench_serving), its history growing with the server's real replies.
//! Bodies are rendered and serialized between rounds, in the conversation's own task; the
//! timestamps of every stream are still taken as bytes arrive (`client.rs`).

use std::time::Instant;

use super::{Conversation, Message, Rendering, render};
use crate::client::{BodyOptions, Target};
use crate::dataset::Prompt;
use crate::record::RequestRecord;

/// What every conversation of a run shares.
pub struct SessionWork {
    pub sessions: Vec<Conversation>,
    pub body: BodyOptions,
    pub rendering: Rendering,
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
        let prepared = render(&work.rendering, &history).and_then(|input| {
            let prompt = Prompt {
                input,
                prompt_len: turn.prompt_len.unwrap_or(0),
                output_len: turn.output_len,
                routing_key: conv.routing_key.clone(),
            };
            work.body
                .prepare_with(&prompt, turn.output_len, Some(&conv.extra))
        });
        let rec = match prepared {
            Ok(p) => target.send(&p, t0, rec).await,
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
