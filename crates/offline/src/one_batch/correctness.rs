//! `--correctness-test`: prompts (the file's first `batch_size` lines, else upstream's three
//! built-in ones) extended in two parts when `cut_len > 0` (the first `cut_len` tokens, then
//! the rest on top of that KV), greedily decoded for `output_len - 1` steps; the logits of
//! each extend and the decoded texts are what a user compares with a reference run.

use loupe_engine::ModelRunner;
use loupe_engine::model::{ForwardBatch, SeqInput};
use loupe_engine::sampling::argmax;

use crate::OfflineError;

/// Upstream's built-in prompts.
const PROMPTS: [&str; 3] = [
    "The capital of France is",
    "The capital of the United Kindom is",
    "Today is a sunny day and I like",
];

/// What the test shows.
#[derive(Debug, Clone)]
pub struct CorrectnessOutput {
    pub input_ids: Vec<Vec<u32>>,
    /// Last-token logits of the first extend (`cut_len > 0` only), one row per prompt.
    pub first_half_logits: Option<Vec<Vec<f32>>>,
    pub final_logits: Vec<Vec<f32>>,
    /// Prompt followed by the generated tokens, decoded.
    pub texts: Vec<String>,
}

pub(super) fn run(
    runner: &mut ModelRunner,
    file_prompts: Option<Vec<String>>,
    batch_size: usize,
    cut_len: usize,
    output_len: usize,
) -> Result<CorrectnessOutput, OfflineError> {
    let tok = runner.tokenizer().cloned().ok_or_else(|| {
        OfflineError::Flag(
            "--correctness-test needs a tokenizer; drop --skip-tokenizer-init".into(),
        )
    })?;
    let prompts: Vec<String> = match file_prompts {
        Some(p) => p.into_iter().take(batch_size).collect(),
        None => PROMPTS.iter().map(|s| s.to_string()).collect(),
    };
    let input_ids: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| tok.encode(p, true))
        .collect::<Result<_, _>>()
        .map_err(|e| OfflineError::Flag(format!("cannot tokenize a prompt: {e}")))?;
    for (i, ids) in input_ids.iter().enumerate() {
        if ids.len() <= cut_len {
            return Err(OfflineError::Flag(format!(
                "--cut-len {cut_len}: prompt {i} has only {} tokens; every prompt must be longer \
                 than --cut-len",
                ids.len()
            )));
        }
    }
    let per_seq = input_ids.iter().map(Vec::len).max().unwrap_or(0) + output_len;
    if input_ids.len() * per_seq > runner.max_total_tokens() || per_seq > runner.context_length() {
        return Err(OfflineError::Flag(format!(
            "--output-len {output_len}: {} prompts of up to {per_seq} tokens do not fit in the KV \
             pool (max_total_num_tokens={}) or the context ({} tokens)",
            input_ids.len(),
            runner.max_total_tokens(),
            runner.context_length()
        )));
    }
    let vocab = runner.config().vocab_size;
    let slots = |b: usize, len: usize| -> Vec<u32> {
        ((b * per_seq) as u32..(b * per_seq + len) as u32).collect()
    };
    let extend = |runner: &mut ModelRunner, from: usize| -> Vec<Vec<f32>> {
        let batch = ForwardBatch {
            seqs: input_ids
                .iter()
                .enumerate()
                .map(|(b, ids)| {
                    let end = if from == 0 && cut_len > 0 {
                        cut_len
                    } else {
                        ids.len()
                    };
                    SeqInput {
                        tokens: ids[from..end].to_vec(),
                        start_pos: from,
                        slots: slots(b, end),
                        want_logits: true,
                    }
                })
                .collect(),
            record_ops: false,
            all_logits: false,
        };
        let logits = runner.forward(batch).logits.unwrap_or_default();
        logits.chunks(vocab).map(<[f32]>::to_vec).collect()
    };
    let first_half_logits = (cut_len > 0).then(|| extend(runner, 0));
    let final_logits = extend(runner, cut_len);
    let mut outputs: Vec<Vec<u32>> = input_ids.clone();
    let mut next: Vec<u32> = final_logits.iter().map(|l| argmax(l)).collect();
    for (o, &t) in outputs.iter_mut().zip(&next) {
        o.push(t);
    }
    for _ in 0..output_len.saturating_sub(1) {
        let batch = ForwardBatch {
            seqs: next
                .iter()
                .enumerate()
                .map(|(b, &t)| {
                    let pos = outputs[b].len() - 1;
                    SeqInput {
                        tokens: vec![t],
                        start_pos: pos,
                        slots: slots(b, pos + 1),
                        want_logits: true,
                    }
                })
                .collect(),
            record_ops: false,
            all_logits: false,
        };
        let logits = runner.forward(batch).logits.unwrap_or_default();
        next = logits.chunks(vocab).map(argmax).collect();
        for (o, &t) in outputs.iter_mut().zip(&next) {
            o.push(t);
        }
    }
    let texts = outputs
        .iter()
        .map(|ids| tok.decode(ids, true))
        .collect::<Result<_, _>>()
        .map_err(|e| OfflineError::Flag(format!("cannot decode the output: {e}")))?;
    Ok(CorrectnessOutput {
        input_ids,
        first_half_logits,
        final_logits,
        texts,
    })
}
