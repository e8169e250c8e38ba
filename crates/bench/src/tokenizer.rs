//! The client-side tokenizer: found from `--tokenizer` or the server's `/model_info`, loaded
//! with loupe-engine's `tokenizer.json` reader. Used before the run (prompt lengths) and after
//! it (retokenized output counts, per-token ITL); never while streams are timed.

use std::path::{Path, PathBuf};

use loupe_engine::{ChatMessage, Tokenizer};

use crate::error::{BenchError, Result};

pub struct BenchTokenizer {
    inner: Tokenizer,
    /// Where it came from, for the report.
    pub source: PathBuf,
    special_tokens: usize,
    /// `bos_token` of tokenizer_config.json, removed from chat-templated prompts.
    bos: Option<String>,
}

/// The local Hugging Face hub cache (HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub).
pub fn hf_hub_cache() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return Some(PathBuf::from(p).join("hub"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
}

/// A file in the newest snapshot of a cached Hugging Face repo (`kind` is models or datasets).
pub fn hf_cached_file(kind: &str, repo: &str, file: &str) -> Option<PathBuf> {
    let dir = hf_hub_cache()?
        .join(format!("{kind}--{}", repo.replace('/', "--")))
        .join("snapshots");
    let mut snaps: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(file))
        .filter(|p| p.is_file())
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    snaps.sort();
    snaps.pop().map(|(_, p)| p)
}

/// The directory holding `tokenizer.json` for `spec`: a file, a directory, or a cached repo id.
pub fn locate(spec: &str) -> Option<PathBuf> {
    let p = Path::new(spec);
    if p.is_file() && p.file_name().is_some_and(|n| n == "tokenizer.json") {
        return p.parent().map(Path::to_path_buf);
    }
    if p.join("tokenizer.json").is_file() {
        return Some(p.to_path_buf());
    }
    if !spec.starts_with('/') && spec.matches('/').count() == 1 {
        return hf_cached_file("models", spec, "tokenizer.json")
            .and_then(|f| f.parent().map(Path::to_path_buf));
    }
    None
}

impl BenchTokenizer {
    pub fn load(dir: &Path) -> Result<Self> {
        let inner = Tokenizer::from_dir(dir).map_err(|e| BenchError::Tokenizer(e.to_string()))?;
        let with = inner.encode("", true).map_or(0, |v| v.len());
        let without = inner.encode("", false).map_or(0, |v| v.len());
        let bos = std::fs::read_to_string(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|cfg| match &cfg["bos_token"] {
                serde_json::Value::String(s) => Some(s.clone()),
                v => v["content"].as_str().map(str::to_string),
            });
        Ok(BenchTokenizer {
            inner,
            source: dir.to_path_buf(),
            special_tokens: with.saturating_sub(without),
            bos,
        })
    }

    /// `--tokenizer` when given (an error if it cannot be found), else the server's
    /// `tokenizer_path` or `model_path` (None if neither is readable here).
    pub fn resolve(
        spec: Option<&str>,
        model_info: Option<&serde_json::Value>,
    ) -> Result<Option<Self>> {
        if let Some(s) = spec {
            let dir = locate(s).ok_or_else(|| {
                BenchError::Tokenizer(format!(
                    "--tokenizer {s}: not a tokenizer.json, a directory holding one, or a Hugging \
                     Face repo in the local cache ({}); loupe does not download",
                    hf_hub_cache().map_or("unknown".into(), |p| p.display().to_string())
                ))
            })?;
            return Self::load(&dir).map(Some);
        }
        let candidates = ["tokenizer_path", "model_path"]
            .iter()
            .filter_map(|k| model_info?.get(*k)?.as_str());
        for c in candidates {
            if let Some(dir) = locate(c) {
                return Self::load(&dir).map(Some);
            }
        }
        Ok(None)
    }

    /// As `tokenizer.encode(text)` in transformers: with special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.inner
            .encode(text, true)
            .map_err(|e| BenchError::Tokenizer(e.to_string()))
    }

    /// Token count of generated text (`add_special_tokens=False`).
    pub fn count_plain(&self, text: &str) -> usize {
        self.inner.encode(text, false).map_or(0, |v| v.len())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| BenchError::Tokenizer(e.to_string()))
    }

    /// Text of `ids` with special tokens left out (random prompt text).
    pub fn decode_plain(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| BenchError::Tokenizer(e.to_string()))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    /// transformers' `num_special_tokens_to_add()`: what the server adds when it encodes text.
    pub fn special_tokens(&self) -> usize {
        self.special_tokens
    }

    pub fn has_chat_template(&self) -> bool {
        self.inner.has_chat_template()
    }

    /// A whole conversation through the chat template, generation prompt added, BOS removed
    /// (the server adds it again).
    pub fn chat_history(&self, messages: &[crate::session::Message]) -> Result<String> {
        let messages: Vec<ChatMessage> = messages
            .iter()
            .map(|m| ChatMessage {
                role: m.role.clone(),
                content: m.content.clone(),
            })
            .collect();
        let text = self
            .inner
            .apply_chat_template(&messages, true)
            .map_err(|e| BenchError::Tokenizer(e.to_string()))?;
        Ok(match &self.bos {
            Some(b) if !b.is_empty() => text.replace(b.as_str(), ""),
            _ => text,
        })
    }

    /// Tokens of one user turn through the chat template as a chat server counts them (the
    /// template's own special tokens, nothing added); without a template, of the text with
    /// the tokenizer's special tokens.
    pub fn chat_len(&self, prompt: &str) -> Result<usize> {
        if !self.has_chat_template() {
            return Ok(self.encode(prompt)?.len());
        }
        let msg = ChatMessage {
            role: "user".into(),
            content: prompt.to_string(),
        };
        let text = self
            .inner
            .apply_chat_template(&[msg], true)
            .map_err(|e| BenchError::Tokenizer(e.to_string()))?;
        Ok(self.count_plain(&text))
    }

    /// bench_serving's `--apply-chat-template`: one user turn, generation prompt, BOS removed
    /// (the server adds it again).
    pub fn chat(&self, prompt: &str) -> Result<String> {
        let msg = ChatMessage {
            role: "user".into(),
            content: prompt.to_string(),
        };
        let text = self
            .inner
            .apply_chat_template(&[msg], true)
            .map_err(|e| BenchError::Tokenizer(e.to_string()))?;
        Ok(match &self.bos {
            Some(b) if !b.is_empty() => text.replace(b.as_str(), ""),
            _ => text,
        })
    }
}
