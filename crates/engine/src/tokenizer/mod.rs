//! Tokenizers: Hugging Face `tokenizer.json` (through the `tokenizers` crate, chat template
//! from `tokenizer_config.json` rendered with minijinja) and the byte-level tokenizer the
//! presets use. Also the incremental detokenizer that turns generated ids into text deltas
//! without splitting a UTF-8 character or a word-piece boundary.

use std::path::Path;
use std::sync::OnceLock;

use minijinja::Environment;
use serde_json::Value;

use crate::error::EngineError;

mod byte_level;

pub use byte_level::{BYTE_BOS, BYTE_EOS, BYTE_PAD, byte_level_hf_files, write_byte_level_hf_dir};
use byte_level::{BYTE_SPECIALS, ByteLevel, PRESET_CHAT_TEMPLATE};

/// One chat message as the OpenAI API sends it (content already flattened to text).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

enum Kind {
    /// The presets' byte-level vocabulary (`byte_level.rs`).
    Byte(ByteLevel),
    Hf(Box<tokenizers::Tokenizer>),
}

pub struct Tokenizer {
    kind: Kind,
    chat_template: Option<String>,
    /// `chat_template` parsed and compiled once, at the first chat request (a template that
    /// does not compile is that request's error, and every later one's), instead of per
    /// request.
    chat_env: OnceLock<Result<Environment<'static>, String>>,
    bos_token: Option<String>,
    eos_token: Option<String>,
    /// Ids that end generation unless `ignore_eos` (the model's eos ids plus the tokenizer's).
    pub eos_token_ids: Vec<u32>,
}

fn special_token_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o
            .get("content")
            .and_then(|c| c.as_str())
            .map(str::to_string),
        _ => None,
    }
}

impl Tokenizer {
    /// The presets' tokenizer: bytes, with `vocab_size` ids in all.
    pub fn byte_level(vocab_size: usize) -> Self {
        Tokenizer {
            kind: Kind::Byte(ByteLevel { vocab_size }),
            chat_template: Some(PRESET_CHAT_TEMPLATE.to_string()),
            chat_env: OnceLock::new(),
            bos_token: Some(BYTE_SPECIALS[0].into()),
            eos_token: Some(BYTE_SPECIALS[1].into()),
            eos_token_ids: vec![BYTE_EOS],
        }
    }

    /// Load `dir/tokenizer.json` (and `tokenizer_config.json` when present).
    pub fn from_dir(dir: &Path) -> Result<Self, EngineError> {
        let path = dir.join("tokenizer.json");
        let tok = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| EngineError::Tokenizer(format!("{}: {e}", path.display())))?;
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: Value = match std::fs::read_to_string(&cfg_path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                EngineError::Tokenizer(format!("{}: invalid JSON: {e}", cfg_path.display()))
            })?,
            Err(_) => Value::Null,
        };
        // `chat_template` is a string, or a list of {name, template} (the "default" one wins).
        let mut chat_template = match cfg.get("chat_template") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .or_else(|| list.first())
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .map(str::to_string),
            _ => None,
        };
        if chat_template.is_none()
            && let Ok(t) = std::fs::read_to_string(dir.join("chat_template.jinja"))
        {
            chat_template = Some(t);
        }
        let bos_token = cfg.get("bos_token").and_then(special_token_text);
        let eos_token = cfg.get("eos_token").and_then(special_token_text);
        let eos_token_ids = eos_token
            .as_deref()
            .and_then(|t| tok.token_to_id(t))
            .into_iter()
            .collect();
        Ok(Tokenizer {
            kind: Kind::Hf(Box::new(tok)),
            chat_template,
            chat_env: OnceLock::new(),
            bos_token,
            eos_token,
            eos_token_ids,
        })
    }

    pub fn is_byte_level(&self) -> bool {
        matches!(self.kind, Kind::Byte(_))
    }

    pub fn vocab_size(&self) -> usize {
        match &self.kind {
            Kind::Byte(b) => b.vocab_size,
            Kind::Hf(t) => t.get_vocab_size(true),
        }
    }

    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, EngineError> {
        match &self.kind {
            Kind::Byte(b) => Ok(b.encode(text, add_special_tokens)),
            Kind::Hf(t) => t
                .encode(text, add_special_tokens)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| EngineError::Tokenizer(e.to_string())),
        }
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, EngineError> {
        match &self.kind {
            Kind::Byte(b) => Ok(b.decode(ids, skip_special_tokens)),
            Kind::Hf(t) => t
                .decode(ids, skip_special_tokens)
                .map_err(|e| EngineError::Tokenizer(e.to_string())),
        }
    }

    /// Whether the text of `ids` (whose decode ends in U+FFFD) may end in the first bytes of a
    /// character that later ids complete, so that a streamed delta should wait for them.
    /// The byte-level tokenizer knows: a byte that no continuation can make valid (a random
    /// model emits many) is U+FFFD for good and streams at once. Of a Hugging Face tokenizer
    /// only the text is known, and a trailing U+FFFD waits (SGLang's rule).
    fn may_complete_a_char(&self, ids: &[u32], skip_special_tokens: bool) -> bool {
        match &self.kind {
            Kind::Byte(b) => b.ends_in_partial_char(ids, skip_special_tokens),
            Kind::Hf(_) => true,
        }
    }

    pub fn has_chat_template(&self) -> bool {
        self.chat_template.is_some()
    }

    /// Render the chat template the way transformers' `apply_chat_template` does.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, EngineError> {
        let Some(template) = &self.chat_template else {
            return Err(EngineError::ChatTemplate(
                "the tokenizer has no chat_template; use /v1/completions or /generate".into(),
            ));
        };
        let env = self
            .chat_env
            .get_or_init(|| chat_environment(template.clone()))
            .as_ref()
            .map_err(|e| EngineError::ChatTemplate(e.clone()))?;
        let tmpl = env
            .get_template("chat")
            .expect("added when the environment was built");
        tmpl.render(minijinja::context! {
            messages => minijinja::Value::from(minijinja::value::Serde(messages)),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.clone().unwrap_or_default(),
            eos_token => self.eos_token.clone().unwrap_or_default(),
        })
        .map_err(|e| EngineError::ChatTemplate(e.to_string()))
    }
}

/// The environment chat templates render in: transformers' globals (`raise_exception`) and
/// Python's string and dict methods (minijinja-contrib's pycompat), with the template compiled
/// as `chat`. `Tokenizer` builds it once and keeps it; the chat-template benchmark builds one
/// per render to show what that saves.
pub fn chat_environment(template: String) -> Result<Environment<'static>, String> {
    let mut env = Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |msg: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
    env.add_template_owned("chat", template)
        .map_err(|e| e.to_string())?;
    Ok(env)
}

/// Turns a growing list of generated ids into text deltas. Decodes a small window so that
/// tokenizers which drop a leading space at the start of a decode (SentencePiece) and
/// characters split over several byte tokens both come out right: a delta is released only
/// when it no longer ends in an incomplete character (U+FFFD that later ids may complete).
#[derive(Debug, Default, Clone)]
pub struct IncrementalDetokenizer {
    ids: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
}

impl IncrementalDetokenizer {
    /// Seed with the prompt's last few ids so the first output token decodes in context.
    pub fn new(prompt_tail: &[u32]) -> Self {
        let tail = &prompt_tail[prompt_tail.len().saturating_sub(5)..];
        IncrementalDetokenizer {
            ids: tail.to_vec(),
            prefix_offset: 0,
            read_offset: tail.len(),
        }
    }

    /// Append one id; returns the text it completes (possibly empty).
    pub fn push(
        &mut self,
        tok: &Tokenizer,
        id: u32,
        skip_special: bool,
    ) -> Result<String, EngineError> {
        self.ids.push(id);
        let prefix = tok.decode(
            &self.ids[self.prefix_offset..self.read_offset],
            skip_special,
        )?;
        let window = &self.ids[self.prefix_offset..];
        let full = tok.decode(window, skip_special)?;
        let partial = full.ends_with('\u{FFFD}') && tok.may_complete_a_char(window, skip_special);
        if full.len() > prefix.len() && !partial && full.starts_with(&prefix) {
            let delta = full[prefix.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            // Keep the window small: drop ids no longer needed for context.
            if self.prefix_offset > 64 {
                self.ids.drain(..self.prefix_offset);
                self.read_offset -= self.prefix_offset;
                self.prefix_offset = 0;
            }
            Ok(delta)
        } else {
            Ok(String::new())
        }
    }

    /// At the end of generation: whatever is held back (an incomplete character decodes as
    /// U+FFFD, as transformers would print it).
    pub fn flush(&mut self, tok: &Tokenizer, skip_special: bool) -> Result<String, EngineError> {
        if self.read_offset == self.ids.len() {
            return Ok(String::new());
        }
        let prefix = tok.decode(
            &self.ids[self.prefix_offset..self.read_offset],
            skip_special,
        )?;
        let full = tok.decode(&self.ids[self.prefix_offset..], skip_special)?;
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        Ok(full.get(prefix.len()..).unwrap_or_default().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::byte_level::BYTE_OFFSET;
    use super::*;

    #[test]
    fn byte_tokenizer_round_trips_utf8() {
        let t = Tokenizer::byte_level(512);
        let text = "héllo, wörld ✓";
        let ids = t.encode(text, true).unwrap();
        assert_eq!(ids[0], BYTE_BOS);
        assert_eq!(ids.len(), text.len() + 1);
        assert_eq!(t.decode(&ids, true).unwrap(), text);
        assert_eq!(t.decode(&ids, false).unwrap(), format!("<s>{text}"));
    }

    #[test]
    fn ids_past_the_byte_range_decode_to_words() {
        let t = Tokenizer::byte_level(32000);
        let a = t.decode(&[300], true).unwrap();
        let b = t.decode(&[31999], true).unwrap();
        assert!(a.starts_with(' ') && a.len() >= 3, "{a:?}");
        assert_ne!(a, b);
    }

    #[test]
    fn incremental_detokenizer_holds_back_split_characters() {
        let t = Tokenizer::byte_level(512);
        let ids = t.encode("a✓b", false).unwrap();
        let mut d = IncrementalDetokenizer::new(&[]);
        let deltas: Vec<String> = ids.iter().map(|&i| d.push(&t, i, true).unwrap()).collect();
        assert_eq!(deltas, ["a", "", "", "✓", "b"]);
        assert_eq!(d.flush(&t, true).unwrap(), "");
        let mut d = IncrementalDetokenizer::new(&[]);
        assert_eq!(d.push(&t, 0xE2 + BYTE_OFFSET, true).unwrap(), "");
        assert_eq!(d.flush(&t, true).unwrap(), "\u{FFFD}");
    }

    /// A byte that no continuation can make valid streams as U+FFFD at once, instead of
    /// holding back every delta after it until the end (a random model emits many).
    #[test]
    fn incremental_detokenizer_streams_invalid_bytes_at_once() {
        let t = Tokenizer::byte_level(512);
        let b = |c: u8| c as u32 + BYTE_OFFSET;
        let mut d = IncrementalDetokenizer::new(&[]);
        let deltas: Vec<String> = [
            b(0x80),
            b(0x80),
            b(0xE2),
            b(b'A'),
            b(0xC3),
            b(0xA9),
            b(0xFF),
        ]
        .iter()
        .map(|&i| d.push(&t, i, true).unwrap())
        .collect();
        assert_eq!(
            deltas,
            ["\u{FFFD}", "\u{FFFD}", "", "\u{FFFD}A", "", "é", "\u{FFFD}"]
        );
        assert_eq!(d.flush(&t, true).unwrap(), "");
    }

    /// Streamed deltas add up to the whole decode, whatever the ids.
    #[test]
    fn incremental_deltas_add_up_to_the_decode() {
        use rand::{RngExt, SeedableRng};
        let t = Tokenizer::byte_level(512);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..50 {
            // Mostly bytes, so that split and invalid characters are common.
            let ids: Vec<u32> = (0..200).map(|_| rng.random_range(0..300)).collect();
            let mut d = IncrementalDetokenizer::new(&[]);
            let mut text: String = ids.iter().map(|&i| d.push(&t, i, true).unwrap()).collect();
            text.push_str(&d.flush(&t, true).unwrap());
            assert_eq!(text, t.decode(&ids, true).unwrap());
        }
    }

    #[test]
    fn exported_hf_files_match_the_native_byte_tokenizer() {
        let vocab = 700;
        let (tok_json, cfg) = byte_level_hf_files(vocab);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), tok_json.to_string()).unwrap();
        std::fs::write(dir.path().join("tokenizer_config.json"), cfg.to_string()).unwrap();
        let hf = Tokenizer::from_dir(dir.path()).unwrap();
        let native = Tokenizer::byte_level(vocab);
        assert_eq!(hf.vocab_size(), vocab);
        for text in ["hello world", " leading space\n\ttabs", "naïve ✓ 日本", ""] {
            assert_eq!(
                hf.encode(text, true).unwrap(),
                native.encode(text, true).unwrap(),
                "{text:?}"
            );
            assert_eq!(
                hf.encode(text, false).unwrap(),
                native.encode(text, false).unwrap(),
                "{text:?}"
            );
        }
        let ids: Vec<u32> = (0..vocab as u32).collect();
        assert_eq!(
            hf.decode(&ids, true).unwrap(),
            native.decode(&ids, true).unwrap()
        );
        assert_eq!(
            hf.decode(&ids, false).unwrap(),
            native.decode(&ids, false).unwrap()
        );
        assert_eq!(hf.eos_token_ids, [BYTE_EOS]);
    }

    #[test]
    fn preset_chat_template_renders() {
        let t = Tokenizer::byte_level(512);
        let out = t
            .apply_chat_template(
                &[ChatMessage {
                    role: "user".into(),
                    content: "hi".into(),
                }],
                true,
            )
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    /// A small word-level tokenizer.json written by hand, loaded through the `tokenizers` crate,
    /// with a Llama-3-style chat template that uses Python string methods.
    fn hf_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let tokenizer = serde_json::json!({
            "version": "1.0",
            "truncation": null, "padding": null,
            "added_tokens": [
                {"id": 0, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
                {"id": 1, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
            ],
            "normalizer": null,
            "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": null,
            "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": false},
            "model": {"type": "WordLevel", "vocab": {"<s>": 0, "</s>": 1, "<unk>": 2, "hello": 3, "world": 4, "!": 5}, "unk_token": "<unk>"}
        });
        std::fs::write(dir.path().join("tokenizer.json"), tokenizer.to_string()).unwrap();
        let cfg = serde_json::json!({
            "bos_token": {"content": "<s>"},
            "eos_token": "</s>",
            "chat_template": "{{ bos_token }}{% for m in messages %}[{{ m.role | upper }}] {{ m.content.strip() }} {% endfor %}{% if add_generation_prompt %}[ASSISTANT]{% endif %}"
        });
        std::fs::write(dir.path().join("tokenizer_config.json"), cfg.to_string()).unwrap();
        dir
    }

    #[test]
    fn hf_tokenizer_encodes_decodes_and_renders_template() {
        let dir = hf_dir();
        let t = Tokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(t.encode("hello world !", false).unwrap(), [3, 4, 5]);
        assert_eq!(t.decode(&[3, 4, 5], true).unwrap(), "hello world !");
        assert_eq!(t.eos_token_ids, [1]);
        let out = t
            .apply_chat_template(
                &[ChatMessage {
                    role: "user".into(),
                    content: "  hello  ".into(),
                }],
                true,
            )
            .unwrap();
        assert_eq!(out, "<s>[USER] hello [ASSISTANT]");
        // The compiled template is reused: the next request renders from it, with its own
        // messages.
        let out = t
            .apply_chat_template(
                &[
                    ChatMessage {
                        role: "system".into(),
                        content: "world".into(),
                    },
                    ChatMessage {
                        role: "user".into(),
                        content: "hello".into(),
                    },
                ],
                false,
            )
            .unwrap();
        assert_eq!(out, "<s>[SYSTEM] world [USER] hello ");
    }

    #[test]
    fn a_template_that_does_not_compile_fails_every_chat_request_with_its_error() {
        let dir = hf_dir();
        let cfg = serde_json::json!({"chat_template": "{% for m in messages %}{{ m.content }}"});
        std::fs::write(dir.path().join("tokenizer_config.json"), cfg.to_string()).unwrap();
        let t = Tokenizer::from_dir(dir.path()).unwrap();
        let msg = [ChatMessage {
            role: "user".into(),
            content: "hello".into(),
        }];
        for _ in 0..2 {
            let err = t.apply_chat_template(&msg, true).unwrap_err().to_string();
            assert!(err.contains("syntax error"), "{err}");
        }
        // Text requests do not need the template.
        assert_eq!(t.encode("hello", false).unwrap(), [3]);
    }

    #[test]
    fn missing_tokenizer_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = Tokenizer::from_dir(dir.path()).err().unwrap().to_string();
        assert!(err.contains("tokenizer.json"), "{err}");
    }
}
