//! A round's history as what the backend takes: the messages themselves for chat routes; for
//! /generate and /v1/completions one text, through the tokenizer's chat template (BOS left to
//! the server), else bench_serving's fallback of `role: content` lines.

use std::sync::Arc;

use super::Message;
use crate::dataset::PromptInput;
use crate::plan::Api;
use crate::tokenizer::BenchTokenizer;

/// How histories become prompts for one run.
#[derive(Clone)]
pub struct Rendering {
    pub api: Api,
    /// The chat template's owner (None, or no template: plain lines).
    pub tokenizer: Option<Arc<BenchTokenizer>>,
}

/// The prompt for `history` (which ends with the round's own messages).
pub fn render(r: &Rendering, history: &[Message]) -> Result<PromptInput, String> {
    if r.api == Api::Chat {
        return Ok(PromptInput::Messages(history.to_vec()));
    }
    if let Some(t) = r.tokenizer.as_deref().filter(|t| t.has_chat_template()) {
        return t
            .chat_history(history)
            .map(PromptInput::Text)
            .map_err(|e| e.to_string());
    }
    let mut text = String::new();
    for m in history {
        text.push_str(&m.role);
        text.push_str(": ");
        text.push_str(&m.content);
        text.push('\n');
    }
    text.push_str("assistant:");
    Ok(PromptInput::Text(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn chat_keeps_messages_and_text_routes_get_lines_without_a_template() {
        let h = [
            msg("user", "hi"),
            msg("assistant", "yo"),
            msg("user", "again"),
        ];
        let chat = Rendering {
            api: Api::Chat,
            tokenizer: None,
        };
        match render(&chat, &h).unwrap() {
            PromptInput::Messages(m) => assert_eq!(m.len(), 3),
            other => panic!("{other:?}"),
        }
        let plain = Rendering {
            api: Api::Completions,
            tokenizer: None,
        };
        assert_eq!(
            render(&plain, &h).unwrap(),
            PromptInput::Text("user: hi\nassistant: yo\nuser: again\nassistant:".into())
        );
    }
}
