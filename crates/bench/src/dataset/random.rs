//! bench_serving's `random-ids` (arithmetic token ids, no corpus) and `random` (ShareGPT
//! prompts' tokens repeated or truncated to the drawn length).

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use super::{DatasetConfig, Prompt, PromptInput, draw_len, sharegpt};
use crate::error::{BenchError, Result};
use crate::tokenizer::BenchTokenizer;

/// Token ids `(offset + i + j) % vocab`, lengths from `lens`; text when a tokenizer can decode
/// them and --tokenize-prompt is off (bench_serving's default), ids otherwise.
pub fn random_ids(
    cfg: &DatasetConfig<'_>,
    tok: Option<&BenchTokenizer>,
    server_vocab: Option<usize>,
    notes: &mut Vec<String>,
    mut lens: impl FnMut(&mut StdRng) -> (usize, usize),
) -> Result<Vec<Prompt>> {
    // A model's embedding table may be padded past the tokenizer's vocabulary: stay inside both.
    let vocab = match (tok.map(BenchTokenizer::vocab_size), server_vocab) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).ok_or_else(|| {
            BenchError::Usage(
                "random-ids needs the vocabulary size: the server's /model_info has no \
                 vocab_size; pass --tokenizer"
                    .into(),
            )
        })?,
    };
    if vocab == 0 {
        return Err(BenchError::Usage(
            "random-ids: the vocabulary is empty".into(),
        ));
    }
    let text_tok = tok.filter(|_| !cfg.tokenize_prompt);
    if tok.is_none() && !cfg.tokenize_prompt {
        notes.push(
            "no client tokenizer: prompts are sent as token ids (as with --tokenize-prompt)".into(),
        );
    }
    let special = text_tok.map_or(0, BenchTokenizer::special_tokens);
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    (0..cfg.num)
        .map(|i| {
            let (n_in, n_out) = lens(&mut rng);
            // The server adds its special tokens to text prompts (bench_serving's correction).
            let n_in = if text_tok.is_some() {
                n_in.saturating_sub(special).max(1)
            } else {
                n_in
            };
            let offset = rng.random_range(0..vocab);
            let ids: Vec<u32> = (0..n_in)
                .map(|j| ((offset + i + j) % vocab) as u32)
                .collect();
            let input = match text_tok {
                Some(t) => PromptInput::Text(t.decode(&ids)?),
                None => PromptInput::Ids(ids),
            };
            Ok(Prompt {
                input,
                prompt_len: n_in,
                output_len: n_out,
                routing_key: None,
            })
        })
        .collect()
}

/// ShareGPT prompts, tokenized, repeated or truncated to each drawn input length.
pub fn random_from_sharegpt(
    cfg: &DatasetConfig<'_>,
    tok: &BenchTokenizer,
    notes: &mut Vec<String>,
) -> Result<Vec<Prompt>> {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let draw = |rng: &mut StdRng, l| {
        (0..cfg.num)
            .map(|_| draw_len(rng, l, cfg.range_ratio, cfg.semantics))
            .collect::<Vec<usize>>()
    };
    let mut input_lens = draw(&mut rng, cfg.input_len);
    let output_lens = draw(&mut rng, cfg.output_len);
    let text = !cfg.tokenize_prompt;
    if text {
        for l in &mut input_lens {
            *l = l.saturating_sub(tok.special_tokens()).max(1);
        }
    }
    let path = sharegpt::sharegpt_path(cfg.path)?;
    let mut convs = sharegpt::load_conversations(&path, false, notes)?;
    convs.shuffle(&mut rng);
    let mut out = Vec::with_capacity(cfg.num);
    for (prompt, _) in convs {
        let i = out.len();
        if i == cfg.num {
            break;
        }
        let ids = tok.encode(&prompt)?;
        if ids.is_empty() {
            continue;
        }
        let want = input_lens[i];
        let ids: Vec<u32> = ids.iter().copied().cycle().take(want).collect();
        let input = if text {
            PromptInput::Text(tok.decode(&ids)?)
        } else {
            PromptInput::Ids(ids)
        };
        out.push(Prompt {
            input,
            prompt_len: want,
            output_len: output_lens[i],
            routing_key: None,
        });
    }
    if out.len() < cfg.num {
        notes.push(format!(
            "{} has only {} usable conversations: {} prompts instead of {}",
            path.display(),
            out.len(),
            out.len(),
            cfg.num
        ));
    }
    Ok(out)
}
