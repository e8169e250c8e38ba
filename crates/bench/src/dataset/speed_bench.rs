//! bench_serving's `speed-bench`: nvidia/SPEED-Bench rows `{category, turns: [str, ...]}` from
//! `--dataset-path` (JSONL, as its prepare script writes them). `--speed-bench-category`
//! keeps one category; the prompt is the first turn through the chat template; output
//! `--speed-bench-output-len`; rows drawn without replacement, repeated and shuffled when more
//! prompts are asked for than there are rows.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::Value;

use super::lines::{Line, each_json_line, string};
use super::{DatasetConfig, Prompt, PromptInput};
use crate::error::{BenchError, Result};
use crate::tokenizer::BenchTokenizer;

pub const CATEGORIES: [&str; 3] = ["low_entropy", "mixed", "high_entropy"];

fn row(v: &Value) -> std::result::Result<(String, String), String> {
    let category = string(v, "category")?.to_string();
    let first = v
        .get("turns")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .and_then(Value::as_str)
        .ok_or("`turns` is missing, empty or not a list of strings")?;
    Ok((category, first.to_string()))
}

pub fn prompts(
    cfg: &DatasetConfig<'_>,
    tok: Option<&BenchTokenizer>,
    notes: &mut Vec<String>,
) -> Result<Vec<Prompt>> {
    if cfg.path.is_empty() {
        return Err(BenchError::Usage(
            "--dataset-name speed-bench needs --dataset-path (JSONL rows {category, turns}, \
             from nvidia/SPEED-Bench)"
                .into(),
        ));
    }
    let want = cfg.traces.speed_bench_category.as_deref();
    if let Some(c) = want.filter(|c| !CATEGORIES.contains(c)) {
        return Err(BenchError::Usage(format!(
            "--speed-bench-category {c}: use one of {}",
            CATEGORIES.join(", ")
        )));
    }
    let mut texts = Vec::new();
    each_json_line(cfg.path, cfg.traces.skip_bad_lines, notes, |v| {
        let (category, first) = row(&v)?;
        if want.is_none_or(|w| w == category) {
            texts.push(first);
        }
        Ok(Line::Keep)
    })?;
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let output_len = cfg.traces.speed_bench_output_len;
    let template = tok.filter(|t| t.has_chat_template());
    let rows = texts
        .into_iter()
        .map(|t| -> Result<Prompt> {
            let text = match template {
                Some(tk) => tk.chat(&t)?,
                None => t,
            };
            let prompt_len = match tok {
                Some(tk) => tk.encode(&text)?.len(),
                None => 0,
            };
            Ok(Prompt {
                input: PromptInput::Text(text),
                prompt_len,
                output_len,
                routing_key: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut out = Vec::with_capacity(cfg.num);
    while out.len() < cfg.num {
        let mut round = rows.clone();
        round.shuffle(&mut rng);
        out.extend(round.into_iter().take(cfg.num - out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_give_their_category_and_first_turn() {
        let v = json!({"category": "mixed", "turns": ["first", "second"]});
        assert_eq!(row(&v).unwrap(), ("mixed".into(), "first".into()));
        assert!(row(&json!({"category": "mixed", "turns": []})).is_err());
    }
}
