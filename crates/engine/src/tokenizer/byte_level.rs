//! The presets' tokenizer, and its export as Hugging Face files.
//!
//! Ids: three specials, the 256 byte values, then pieces of several bytes — U+FFFD's first
//! two bytes, U+FFFD, and synthetic words (" b", " ba", " bab", ...: a space, then
//! consonants and vowels alternating) — as many as the model's vocabulary holds. A model
//! with a vocabulary larger than 259 thus produces readable, non-empty text for every id.
//!
//! What the engine decodes must re-encode to as many tokens as were generated (clients count
//! output tokens by re-tokenizing the text, bench_serving's "retokenized" figures). Hence:
//! - every multi-byte piece is one token when encoded, not its bytes: encoding takes the
//!   longest piece at each position (the export gets the same result from BPE merges);
//! - a byte that is not valid UTF-8 on its own (a random model emits many) decodes to
//!   U+FFFD, as transformers decodes it; U+FFFD is a piece, so it re-encodes to one token;
//! - the pieces are prefix-closed (each piece minus its last byte is a piece with a smaller
//!   id), which is what lets BPE merges, applied in id order, find the longest piece.
//!
//! Specials in text (`<s>`, `</s>`, `<pad>`) encode to their ids, as Hugging Face tokenizers
//! split added tokens out of the text before the model sees it.

use std::path::Path;

use serde_json::{Value, json};

pub const BYTE_BOS: u32 = 0;
pub const BYTE_EOS: u32 = 1;
pub const BYTE_PAD: u32 = 2;
pub(super) const BYTE_OFFSET: u32 = 3;
pub(super) const BYTE_SPECIALS: [&str; 3] = ["<s>", "</s>", "<pad>"];
/// U+FFFD's first two bytes (EF BF): the prefix that U+FFFD's BPE merge builds on.
const REPLACEMENT_HEAD: u32 = BYTE_OFFSET + 256;
/// U+FFFD (EF BF BD), what an invalid byte decodes to.
const REPLACEMENT: u32 = REPLACEMENT_HEAD + 1;
/// The first synthetic word.
const WORD_OFFSET: u32 = REPLACEMENT + 1;
const REPLACEMENT_BYTES: [u8; 3] = [0xEF, 0xBF, 0xBD];
const CONSONANTS: &[u8] = b"bdfgklmnprstvz";
const VOWELS: &[u8] = b"aeiou";

/// The presets' chat template, in the ChatML shape most current models use.
pub(super) const PRESET_CHAT_TEMPLATE: &str = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n\
{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// The letters a synthetic word may hold at `pos` (0 = the letter after the space).
fn letters(pos: usize) -> &'static [u8] {
    if pos.is_multiple_of(2) {
        CONSONANTS
    } else {
        VOWELS
    }
}

/// Synthetic word number `n` (0-based), space included. Words are numbered by length, then
/// by their letters, the first letter varying fastest.
fn word(mut n: u64, out: &mut Vec<u8>) {
    let mut len = 1;
    let mut count = CONSONANTS.len() as u64;
    while n >= count {
        n -= count;
        count *= letters(len).len() as u64;
        len += 1;
    }
    out.push(b' ');
    for pos in 0..len {
        let l = letters(pos);
        out.push(l[(n % l.len() as u64) as usize]);
        n /= l.len() as u64;
    }
}

/// The byte-level vocabulary of `vocab_size` ids.
#[derive(Debug, Clone, Copy)]
pub(super) struct ByteLevel {
    pub vocab_size: usize,
}

impl ByteLevel {
    fn has(&self, id: u32) -> bool {
        (id as usize) < self.vocab_size
    }

    /// The longest synthetic word at the start of `rest` (the bytes after a space): its id
    /// and its number of letters.
    fn longest_word(&self, rest: &[u8]) -> Option<(u32, usize)> {
        let mut best = None;
        // Index within the words of this length, the place value of the next letter, and
        // the number of the first word of this length.
        let (mut index, mut place, mut first) = (0u64, 1u64, 0u64);
        for (pos, b) in rest.iter().enumerate() {
            let l = letters(pos);
            let Some(d) = l.iter().position(|c| c == b) else {
                break;
            };
            index += d as u64 * place;
            place *= l.len() as u64;
            let id = WORD_OFFSET as u64 + first + index;
            if id >= self.vocab_size as u64 {
                // Longer words have larger ids still.
                break;
            }
            best = Some((id as u32, pos + 1));
            first += place;
        }
        best
    }

    pub fn encode(&self, text: &str, add_bos: bool) -> Vec<u32> {
        let bytes = text.as_bytes();
        let mut ids = Vec::with_capacity(bytes.len() + 1);
        if add_bos {
            ids.push(BYTE_BOS);
        }
        let mut i = 0;
        while i < bytes.len() {
            let rest = &bytes[i..];
            let (id, len) = if let Some(s) = BYTE_SPECIALS
                .iter()
                .position(|s| rest.starts_with(s.as_bytes()))
            {
                (s as u32, BYTE_SPECIALS[s].len())
            } else if rest[0] == b' '
                && let Some((id, letters)) = self.longest_word(&rest[1..])
            {
                (id, 1 + letters)
            } else if rest.starts_with(&REPLACEMENT_BYTES) && self.has(REPLACEMENT) {
                (REPLACEMENT, 3)
            } else if rest.starts_with(&REPLACEMENT_BYTES[..2]) && self.has(REPLACEMENT_HEAD) {
                (REPLACEMENT_HEAD, 2)
            } else {
                (rest[0] as u32 + BYTE_OFFSET, 1)
            };
            ids.push(id);
            i += len;
        }
        ids
    }

    /// The bytes of `id` (specials as their text unless skipped).
    pub fn push_bytes(&self, id: u32, skip_special: bool, out: &mut Vec<u8>) {
        match id {
            _ if id < BYTE_OFFSET => {
                if !skip_special {
                    out.extend_from_slice(BYTE_SPECIALS[id as usize].as_bytes());
                }
            }
            _ if id < REPLACEMENT_HEAD => out.push((id - BYTE_OFFSET) as u8),
            REPLACEMENT_HEAD => out.extend_from_slice(&REPLACEMENT_BYTES[..2]),
            REPLACEMENT => out.extend_from_slice(&REPLACEMENT_BYTES),
            _ => word((id - WORD_OFFSET) as u64, out),
        }
    }

    /// Whether the bytes of `ids` end in the first bytes of a UTF-8 character, which more
    /// bytes could complete (and not in a byte that no continuation makes valid).
    pub fn ends_in_partial_char(&self, ids: &[u32], skip_special: bool) -> bool {
        let mut bytes = Vec::new();
        for &id in ids {
            self.push_bytes(id, skip_special, &mut bytes);
        }
        // A character has at most 4 bytes: its start is among the last 3 if it is cut off.
        (bytes.len().saturating_sub(3)..bytes.len()).any(|i| {
            matches!(std::str::from_utf8(&bytes[i..]),
                Err(e) if e.valid_up_to() == 0 && e.error_len().is_none())
        })
    }

    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        let mut bytes = Vec::with_capacity(ids.len());
        for &id in ids {
            self.push_bytes(id, skip_special, &mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// GPT-2's byte-to-unicode table: the printable character that stands for each byte in a
/// byte-level BPE vocabulary.
fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..=255u32 {
        let printable =
            (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        let c = if printable {
            b
        } else {
            extra += 1;
            255 + extra
        };
        table[b as usize] = char::from_u32(c).expect("valid code point");
    }
    table
}

/// The byte-level preset tokenizer as Hugging Face files (`tokenizer.json`,
/// `tokenizer_config.json`) that decode and encode exactly as [`super::Tokenizer::byte_level`],
/// so that Python clients (bench_serving's `AutoTokenizer`) can load a preset's tokenizer.
/// The multi-byte pieces come from BPE merges, one per piece: the piece minus its last byte,
/// plus that byte.
pub fn byte_level_hf_files(vocab_size: usize) -> (Value, Value) {
    let table = bytes_to_unicode();
    let byte_level = ByteLevel { vocab_size };
    let piece = |id: u32| -> String {
        let mut bytes = Vec::new();
        byte_level.push_bytes(id, false, &mut bytes);
        bytes.iter().map(|b| table[*b as usize]).collect()
    };
    let mut vocab = serde_json::Map::new();
    for (i, name) in BYTE_SPECIALS.iter().enumerate() {
        vocab.insert(name.to_string(), json!(i));
    }
    let mut merges = Vec::new();
    for id in BYTE_OFFSET..vocab_size as u32 {
        let p = piece(id);
        let mut chars = p.chars();
        if let Some(last) = chars.next_back()
            && !chars.as_str().is_empty()
        {
            merges.push(json!(format!("{} {last}", chars.as_str())));
        }
        vocab.insert(p, json!(id));
    }
    let added: Vec<Value> = BYTE_SPECIALS
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({"id": i, "content": c, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": true})
        })
        .collect();
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": BYTE_SPECIALS[0], "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": BYTE_SPECIALS[0], "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {BYTE_SPECIALS[0]: {"id": BYTE_SPECIALS[0], "ids": [BYTE_BOS], "tokens": [BYTE_SPECIALS[0]]}}
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges}
    });
    let config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BYTE_SPECIALS[0],
        "eos_token": BYTE_SPECIALS[1],
        "pad_token": BYTE_SPECIALS[2],
        "model_max_length": 1_000_000_000,
        "chat_template": PRESET_CHAT_TEMPLATE,
    });
    (tokenizer, config)
}

/// Write [`byte_level_hf_files`] and `config` into `dir`, each file under a temporary name
/// beside it and persisted (renamed) only once complete, so a client never reads half a file.
pub fn write_byte_level_hf_dir(
    dir: &Path,
    vocab_size: usize,
    config: &Value,
) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let (tok, cfg) = byte_level_hf_files(vocab_size);
    for (name, v) in [
        ("tokenizer.json", &tok),
        ("tokenizer_config.json", &cfg),
        ("config.json", config),
    ] {
        let path = dir.join(name);
        let named =
            |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let mut temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(named)?;
        let bytes = serde_json::to_vec_pretty(v).map_err(std::io::Error::other)?;
        temp.write_all(&bytes).map_err(named)?;
        temp.persist(&path).map_err(|e| named(e.error))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::*;
    use crate::tokenizer::Tokenizer;

    /// The presets' vocabularies: tiny, small.
    const VOCABS: [usize; 2] = [512, 32000];

    fn random_ids(vocab: usize, n: usize, seed: u64) -> Vec<u32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(0..vocab as u32)).collect()
    }

    /// The preset tokenizer as a client loads it: the exported files through `tokenizers`.
    fn exported(vocab: usize) -> (tempfile::TempDir, Tokenizer) {
        let dir = tempfile::tempdir().unwrap();
        write_byte_level_hf_dir(dir.path(), vocab, &json!({"vocab_size": vocab})).unwrap();
        let tok = Tokenizer::from_dir(dir.path()).unwrap();
        (dir, tok)
    }

    /// What a random model generates (ids drawn uniformly, specials included), decoded as the
    /// server decodes it, re-encodes to as many tokens, within 2% — natively and through the
    /// exported files, which agree id for id. (Before the multi-byte pieces encoded as one
    /// token and invalid bytes re-encoded as one, the tiny preset's text re-encoded to
    /// more than 3 times the tokens.)
    #[test]
    fn generated_ids_re_encode_to_as_many_tokens() {
        for vocab in VOCABS {
            let native = Tokenizer::byte_level(vocab);
            let (_dir, hf) = exported(vocab);
            let ids = random_ids(vocab, 20_000, vocab as u64);
            for skip_special in [true, false] {
                let text = native.decode(&ids, skip_special).unwrap();
                let again = native.encode(&text, false).unwrap();
                let ratio = again.len() as f64 / ids.len() as f64;
                assert!(
                    (0.98..=1.02).contains(&ratio),
                    "vocab {vocab}, skip_special {skip_special}: {} ids re-encode to {} ({ratio})",
                    ids.len(),
                    again.len()
                );
                assert_eq!(hf.encode(&text, false).unwrap(), again, "vocab {vocab}");
                assert_eq!(hf.decode(&again, skip_special).unwrap(), text);
            }
        }
    }

    /// Each id decodes to text that encodes back to that one id, except the ids whose bytes
    /// are not UTF-8 on their own: those decode to U+FFFD, one token as well.
    #[test]
    fn every_piece_re_encodes_to_itself() {
        for vocab in VOCABS {
            let t = ByteLevel { vocab_size: vocab };
            let mut seen = std::collections::HashSet::new();
            for id in BYTE_OFFSET..vocab as u32 {
                let mut bytes = Vec::new();
                t.push_bytes(id, false, &mut bytes);
                assert!(seen.insert(bytes.clone()), "id {id}: {bytes:?} twice");
                let want = if std::str::from_utf8(&bytes).is_ok() {
                    id
                } else {
                    REPLACEMENT
                };
                assert_eq!(t.encode(&t.decode(&[id], false), false), [want], "id {id}");
            }
        }
        let tiny = ByteLevel { vocab_size: 512 };
        assert_eq!(tiny.decode(&[WORD_OFFSET, WORD_OFFSET + 14], true), " b ba");
        assert_eq!(
            tiny.encode(" b ba bab", false),
            [WORD_OFFSET, WORD_OFFSET + 14, WORD_OFFSET + 84]
        );
        // Past the vocabulary, longer words fall back to shorter ones and bytes.
        let tiny_last = tiny.decode(&[511], true);
        assert_eq!(tiny.encode(&format!("{tiny_last}a"), false)[0], 511);
    }

    #[test]
    fn specials_and_the_replacement_character_in_text() {
        let t = ByteLevel { vocab_size: 512 };
        let b = |c: u8| c as u32 + BYTE_OFFSET;
        assert_eq!(
            t.encode("<s>x</s><pad>", true),
            [BYTE_BOS, BYTE_BOS, b(b'x'), BYTE_EOS, BYTE_PAD]
        );
        assert_eq!(t.encode("<s", false), [b(b'<'), b(b's')]);
        // U+FFFD is one token; other characters starting EF BF keep their last byte apart.
        assert_eq!(t.encode("\u{FFFD}", false), [REPLACEMENT]);
        assert_eq!(t.encode("\u{FFEE}", false), [REPLACEMENT_HEAD, b(0xAE)]);
        assert_eq!(t.decode(&[REPLACEMENT_HEAD, b(0xAE)], true), "\u{FFEE}");
        // A lone continuation byte and a cut-off sequence decode to U+FFFD.
        assert_eq!(
            t.decode(&[b(b'a'), b(0x80), b(0xE2), b(0x82)], true),
            "a\u{FFFD}\u{FFFD}"
        );
        // With fewer ids than pieces, only the pieces inside the vocabulary exist.
        let bytes_only = ByteLevel { vocab_size: 260 };
        assert_eq!(
            bytes_only.encode("\u{FFFD} ba", false),
            [REPLACEMENT_HEAD, b(0xBD), b(b' '), b(b'b'), b(b'a')]
        );
    }

    /// Every text encodes the same natively and through the exported files: the awkward
    /// cases, random bytes made valid, and vocabularies that cut the pieces short.
    #[test]
    fn exported_files_encode_every_text_as_the_native_tokenizer() {
        let mut rng = StdRng::seed_from_u64(7);
        for vocab in [259, 260, 262, 300, 512, 5000] {
            let native = Tokenizer::byte_level(vocab);
            let (_dir, hf) = exported(vocab);
            let mut texts: Vec<String> = [
                " b ba bab baba babab",
                "  zuzuzu xyz <s> </s><pad>< s>",
                "\u{FFFD}\u{FFFD}\u{FFEE}\u{FFBF}é ✓ 日本",
                "a\nb\tc ",
            ]
            .map(String::from)
            .to_vec();
            for _ in 0..20 {
                let bytes: Vec<u8> = (0..200)
                    .map(|_| match rng.random_range(0..4) {
                        0 => b' ',
                        1 => CONSONANTS[rng.random_range(0..CONSONANTS.len())],
                        2 => VOWELS[rng.random_range(0..VOWELS.len())],
                        _ => rng.random_range(0..=255u8),
                    })
                    .collect();
                texts.push(String::from_utf8_lossy(&bytes).into_owned());
            }
            for text in &texts {
                for special in [true, false] {
                    let ids = native.encode(text, special).unwrap();
                    assert!(ids.iter().all(|&id| (id as usize) < vocab.max(259)));
                    assert_eq!(
                        hf.encode(text, special).unwrap(),
                        ids,
                        "vocab {vocab}: {text:?}"
                    );
                    let bos = if special { "<s>" } else { "" };
                    assert_eq!(native.decode(&ids, false).unwrap(), format!("{bos}{text}"));
                }
            }
        }
    }

    #[test]
    fn writing_the_export_leaves_only_the_three_files() {
        let (dir, tok) = exported(512);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["config.json", "tokenizer.json", "tokenizer_config.json"]
        );
        assert_eq!(tok.vocab_size(), 512);
        // Written again over the first (as each server start does).
        write_byte_level_hf_dir(dir.path(), 512, &json!({})).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }
}
