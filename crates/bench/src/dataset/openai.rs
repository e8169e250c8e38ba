//! bench_serving's `openai` dataset: a JSONL file of chat requests, one per line. `messages`
//! is sent as is; `max_tokens` (else `max_completion_tokens`, else 256) is the output length
//! unless --sharegpt-output-len; every other key except `model` (`tools`, `temperature`, ...)
//! goes into that request's body, over --extra-request-body. The first --num-prompts valid
//! lines are taken, in order.

use serde_json::Value;

use super::DatasetConfig;
use super::lines::{Line, content_text, each_json_line};
use crate::error::{BenchError, Result};
use crate::session::{Conversation, Message, Turn};
use crate::tokenizer::BenchTokenizer;

const OUTPUT_LEN: usize = 256;

fn request(
    v: Value,
    sharegpt_output_len: Option<usize>,
    tok: Option<&BenchTokenizer>,
) -> std::result::Result<Conversation, String> {
    let Value::Object(mut obj) = v else {
        return Err("a line must be a JSON object".into());
    };
    let messages = match obj.shift_remove("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        _ => return Err("`messages` is missing or not a non-empty list".into()),
    };
    let messages = messages
        .iter()
        .map(|m| {
            let role = m
                .get("role")
                .and_then(Value::as_str)
                .ok_or("a message has no `role`")?;
            Ok(Message::new(
                role,
                content_text(m.get("content").unwrap_or(&Value::Null))?,
            ))
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    let asked = [
        obj.shift_remove("max_tokens"),
        obj.shift_remove("max_completion_tokens"),
    ]
    .into_iter()
    .flatten()
    .find_map(|v| v.as_u64());
    obj.shift_remove("model");
    let output_len = sharegpt_output_len.unwrap_or(asked.map_or(OUTPUT_LEN, |n| n as usize));
    // bench_serving: chat-template tokens plus the tokens of the tools' JSON.
    let prompt_len = tok.filter(|t| t.has_chat_template()).and_then(|t| {
        let text = t.chat_history(&messages).ok()?;
        let tools = obj
            .get("tools")
            .map_or(0, |tools| t.count_plain(&tools.to_string()));
        Some(t.count_plain(&text) + tools)
    });
    Ok(Conversation {
        turns: vec![Turn {
            messages,
            output_len,
            prompt_len,
        }],
        extra: obj,
        ..Default::default()
    })
}

pub fn requests(
    cfg: &DatasetConfig<'_>,
    tok: Option<&BenchTokenizer>,
    notes: &mut Vec<String>,
) -> Result<Vec<Conversation>> {
    if cfg.path.is_empty() {
        return Err(BenchError::Usage(
            "--dataset-name openai needs --dataset-path (a JSONL file of chat requests)".into(),
        ));
    }
    let mut out = Vec::new();
    each_json_line(cfg.path, cfg.traces.skip_bad_lines, notes, |v| {
        let mut c = request(v, cfg.sharegpt_output_len, tok)?;
        c.session = out.len() as u32;
        out.push(c);
        Ok(if out.len() >= cfg.num {
            Line::Stop
        } else {
            Line::Keep
        })
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_keys_go_to_the_request_and_lengths_follow_upstream() {
        let line = json!({
            "messages": [{"role": "system", "content": "be brief"},
                         {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "max_tokens": 12, "model": "x", "tools": [{"type": "function"}], "temperature": 0.5
        });
        let c = request(line.clone(), None, None).unwrap();
        assert_eq!(c.turns[0].output_len, 12);
        assert_eq!(c.turns[0].messages[1].content, "hi");
        assert_eq!(c.extra.keys().collect::<Vec<_>>(), ["tools", "temperature"]);
        assert_eq!(request(line, Some(5), None).unwrap().turns[0].output_len, 5);
        let bare = json!({"messages": [{"role": "user", "content": "x"}]});
        assert_eq!(request(bare, None, None).unwrap().turns[0].output_len, 256);
        assert!(request(json!({"messages": []}), None, None).is_err());
        assert!(request(json!([1]), None, None).is_err());
    }
}
