//! bench_serving's `longbench_v2`: THUDM/LongBench-v2 rows `{context, question, choice_A ..
//! choice_D}` from `--dataset-path` (the repo's `data.json` array, or JSONL), or the Hugging
//! Face cache's copy. Prompt `{context}\n\nQuestion: {question}\nA. ..\nB. ..\nC. ..\nD. ..\n
//! Answer:` without a template; output `--sharegpt-output-len` or 10; rows longer than
//! `--sharegpt-context-len` dropped; shuffled.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::Value;

use super::lines::{Line, each_json_line, string};
use super::{DatasetConfig, Prompt, PromptInput};
use crate::error::{BenchError, Result};
use crate::tokenizer::{BenchTokenizer, hf_cached_file};

const OUTPUT_LEN: usize = 10;

fn prompt_text(v: &Value) -> std::result::Result<String, String> {
    let mut p = format!(
        "{}\n\nQuestion: {}",
        string(v, "context")?,
        string(v, "question")?
    );
    for c in ['A', 'B', 'C', 'D'] {
        p.push_str(&format!("\n{c}. {}", string(v, &format!("choice_{c}"))?));
    }
    p.push_str("\nAnswer:");
    Ok(p)
}

fn rows(cfg: &DatasetConfig<'_>, notes: &mut Vec<String>) -> Result<(String, Vec<String>)> {
    let path = if cfg.path.is_empty() {
        hf_cached_file("datasets", "THUDM/LongBench-v2", "data.json")
            .map(|p| p.display().to_string())
            .ok_or_else(|| {
                BenchError::Usage(
                    "--dataset-name longbench_v2: THUDM/LongBench-v2 is not in the Hugging Face \
                     cache and loupe does not download; pass --dataset-path (data.json or JSONL)"
                        .into(),
                )
            })?
    } else {
        cfg.path.to_string()
    };
    if path.ends_with(".parquet") {
        return Err(BenchError::Dataset {
            path,
            message: "parquet is not read by loupe; convert it to JSONL".into(),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(|e| BenchError::io(&path, e))?;
    let mut out = Vec::new();
    if text.trim_start().starts_with('[') {
        let doc: Vec<Value> = serde_json::from_str(&text).map_err(|e| BenchError::Dataset {
            path: format!("{path}:{}:{}", e.line(), e.column()),
            message: format!("not a JSON list of rows: {e}"),
        })?;
        for (i, v) in doc.iter().enumerate() {
            match prompt_text(v) {
                Ok(p) => out.push(p),
                Err(e) if cfg.traces.skip_bad_lines => {
                    notes.push(format!("{path}: row {i} skipped ({e})"));
                }
                Err(e) => {
                    return Err(BenchError::Dataset {
                        path,
                        message: format!("row {i}: {e} (--skip-bad-lines skips such rows)"),
                    });
                }
            }
        }
    } else {
        each_json_line(&path, cfg.traces.skip_bad_lines, notes, |v| {
            out.push(prompt_text(&v)?);
            Ok(Line::Keep)
        })?;
    }
    Ok((path, out))
}

pub fn prompts(
    cfg: &DatasetConfig<'_>,
    tok: Option<&BenchTokenizer>,
    notes: &mut Vec<String>,
) -> Result<Vec<Prompt>> {
    let (_, texts) = rows(cfg, notes)?;
    let output_len = cfg.sharegpt_output_len.unwrap_or(OUTPUT_LEN);
    let mut out: Vec<Prompt> = Vec::with_capacity(texts.len());
    for text in texts {
        let prompt_len = match tok {
            Some(t) => t.encode(&text)?.len(),
            None => 0,
        };
        if cfg
            .sharegpt_context_len
            .is_some_and(|max| prompt_len + output_len > max)
        {
            continue;
        }
        out.push(Prompt {
            input: PromptInput::Text(text),
            prompt_len,
            output_len,
            routing_key: None,
        });
    }
    out.shuffle(&mut StdRng::seed_from_u64(cfg.seed));
    out.truncate(cfg.num);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_prompt_is_context_question_and_choices() {
        let row = json!({"context": "C", "question": "Q?", "choice_A": "a", "choice_B": "b",
                         "choice_C": "c", "choice_D": "d"});
        assert_eq!(
            prompt_text(&row).unwrap(),
            "C\n\nQuestion: Q?\nA. a\nB. b\nC. c\nD. d\nAnswer:"
        );
        let missing = json!({"context": "C", "question": "Q?"});
        assert_eq!(
            prompt_text(&missing).unwrap_err(),
            "`choice_A` is missing or not a string"
        );
    }
}
