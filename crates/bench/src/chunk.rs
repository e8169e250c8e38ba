//! What each streamed chunk means, per API: when content arrives (TTFT and the chunk gaps),
//! how many tokens it carries, the generated text, and the server's token counts. Only the
//! fields that matter are parsed (text pieces borrowed from the network buffer, everything
//! else skipped), because this runs once per chunk of every stream.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, SeqAccess, Visitor};

use crate::plan::Api;
use crate::record::RequestRecord;

/// Per-stream parsing state.
#[derive(Debug, Default)]
pub struct StreamState {
    /// Time (s from send) of the last content chunk.
    last: Option<f64>,
    /// Tokens the server has reported so far (native meta_info, or continuous usage).
    counted: usize,
    /// The native route's latest chunk (its text is cumulative: only the last one matters);
    /// the whole body of an embeddings response.
    last_native: Vec<u8>,
}

#[derive(Deserialize)]
struct TrtChunk<'a> {
    #[serde(borrow, default)]
    text_output: Option<Cow<'a, str>>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct EmbeddingBody {
    #[serde(default)]
    data: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    usage: Option<Usage>,
}

/// A string field read only for whether it is empty (no copy, no allocation).
#[derive(Default)]
struct NonEmpty(bool);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NonEmpty;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or null")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NonEmpty, E> {
                Ok(NonEmpty(!v.is_empty()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<NonEmpty, E> {
                Ok(NonEmpty(false))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct NativeChunk {
    #[serde(default)]
    text: NonEmpty,
    #[serde(default)]
    meta_info: Option<NativeMeta>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Debug, PartialEq, Deserialize)]
struct NativeMeta {
    #[serde(default)]
    completion_tokens: Option<usize>,
    #[serde(default)]
    prompt_tokens: Option<usize>,
    #[serde(default)]
    cached_tokens: Option<usize>,
}

#[derive(Deserialize)]
struct NativeText<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct OaiChunk<'a> {
    #[serde(borrow, default)]
    choices: FirstChoice<'a>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<IgnoredAny>,
    /// `"error"` on SGLang's flat OpenAI error shape.
    #[serde(borrow, default)]
    object: Option<Cow<'a, str>>,
}

/// `choices[0]`, without allocating a vector for the usual single choice.
#[derive(Default)]
struct FirstChoice<'a>(Option<Choice<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstChoice<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = FirstChoice<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of choices")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(FirstChoice(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let first = seq.next_element::<Choice<'a>>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstChoice(first))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    /// A non-streamed chat response's message (same fields as a delta).
    #[serde(borrow, default)]
    message: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    completion_tokens: Option<usize>,
    #[serde(default)]
    prompt_tokens: Option<usize>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

/// OpenAI's `usage.prompt_tokens_details` (SGLang and vLLM fill `cached_tokens` with the
/// prefix-cache hit).
#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<usize>,
}

/// The message of a chunk that is an error, or garbage.
fn bad_chunk(bytes: &[u8], e: Option<serde_json::Error>) -> String {
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]);
    match (serde_json::from_slice::<serde_json::Value>(bytes), e) {
        (Ok(v), _) if v.get("error").is_some() => format!("error in stream: {}", v["error"]),
        (Ok(v), _) if v["object"] == "error" => format!("error in stream: {}", v["message"]),
        (_, Some(e)) => format!("unexpected chunk ({e}): {shown}"),
        (_, None) => format!("unexpected chunk: {shown}"),
    }
}

/// What the native route's fast path reads from a chunk: is `text` a non-empty string, the
/// two counts of `meta_info` (None: no meta_info or null), is there a non-null `error`.
#[derive(Debug, PartialEq)]
struct NativeScan {
    text: bool,
    meta: Option<NativeMeta>,
    error: bool,
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// Bytes a string is scanned one by one before a SIMD search takes over: keys and most values
/// are short, and a search call costs more than it saves on them.
const SHORT_STRING: usize = 24;

/// `b[i]` opens a string: the index after its closing quote.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    let short = b.len().min(j + SHORT_STRING);
    while j < short {
        match b[j] {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
    loop {
        let k = j + memchr::memchr2(b'"', b'\\', b.get(j..)?)?;
        if b[k] == b'"' {
            return Some(k + 1);
        }
        j = k + 2;
    }
}

/// The index after the JSON value starting at `b[i]` (not validated, only delimited).
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            // Jump from one quote or closer to the next (SIMD searches), counting the openers
            // passed on the way.
            let (mut depth, mut j) = (0usize, i);
            loop {
                let rest = b.get(j..)?;
                let k = memchr::memchr3(b'"', b'}', b']', rest)?;
                if let Some(o) = memchr::memchr2(b'{', b'[', &rest[..k]) {
                    depth += 1;
                    j += o + 1;
                    continue;
                }
                j += k;
                if rest[k] == b'"' {
                    j = skip_string(b, j)?;
                } else {
                    depth = depth.checked_sub(1)?;
                    j += 1;
                    if depth == 0 {
                        return Some(j);
                    }
                }
            }
        }
        _ => {
            let rest = b.get(i..)?;
            let end = rest
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']') || c.is_ascii_whitespace())
                .unwrap_or(rest.len());
            (end > 0).then_some(i + end)
        }
    }
}

/// Walk the object opening at `b[i]`: `on(key, start)` gets each member's raw key and the
/// index its value starts at, and returns the index after that value (None stops the walk).
/// The index after the object's `}`; None for anything but a well-delimited object.
fn members_at(
    b: &[u8],
    i: usize,
    mut on: impl FnMut(&[u8], usize) -> Option<usize>,
) -> Option<usize> {
    if *b.get(i)? != b'{' {
        return None;
    }
    let mut i = skip_ws(b, i + 1);
    if *b.get(i)? == b'}' {
        return Some(i + 1);
    }
    loop {
        if *b.get(i)? != b'"' {
            return None;
        }
        let key_end = skip_string(b, i)?;
        let key = &b[i + 1..key_end - 1];
        i = skip_ws(b, key_end);
        if *b.get(i)? != b':' {
            return None;
        }
        let end = on(key, skip_ws(b, i + 1))?;
        i = skip_ws(b, end);
        match *b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// A native chunk read in one pass (meta_info's members in place); None for anything but a
/// well-delimited object of the expected shape (serde then decides).
fn scan_native(b: &[u8]) -> Option<NativeScan> {
    let mut out = NativeScan {
        text: false,
        meta: None,
        error: false,
    };
    let end = members_at(b, skip_ws(b, 0), |key, start| match key {
        b"text" => {
            let end = skip_value(b, start)?;
            out.text = end - start > 2 && b[start] == b'"';
            Some(end)
        }
        b"meta_info" => {
            let (meta, end) = scan_meta(b, start)?;
            out.meta = meta;
            Some(end)
        }
        b"error" => {
            let end = skip_value(b, start)?;
            out.error = &b[start..end] != b"null";
            Some(end)
        }
        _ => skip_value(b, start),
    })?;
    (skip_ws(b, end) == b.len()).then_some(out)
}

/// A plain non-negative JSON integer, or null; None for anything else.
fn count(v: &[u8]) -> Option<Option<usize>> {
    if v == b"null" {
        return Some(None);
    }
    if v.is_empty()
        || v.len() > 18
        || !v.iter().all(u8::is_ascii_digit)
        || (v.len() > 1 && v[0] == b'0')
    {
        return None;
    }
    Some(Some(
        v.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0')),
    ))
}

/// The two counts of a native `meta_info` (an object or null) starting at `b[i]`, and the
/// index after it, without serde; None where the value is anything the fast path does not
/// expect (serde then decides).
fn scan_meta(b: &[u8], i: usize) -> Option<(Option<NativeMeta>, usize)> {
    if b.get(i..i + 4) == Some(b"null") {
        return Some((None, i + 4));
    }
    let mut meta = NativeMeta {
        completion_tokens: None,
        prompt_tokens: None,
        cached_tokens: None,
    };
    let end = members_at(b, i, |key, start| {
        let end = skip_value(b, start)?;
        let slot = match key {
            b"completion_tokens" => &mut meta.completion_tokens,
            b"prompt_tokens" => &mut meta.prompt_tokens,
            b"cached_tokens" => &mut meta.cached_tokens,
            _ => return Some(end),
        };
        *slot = count(&b[start..end])?;
        Some(end)
    })?;
    Some((Some(meta), end))
}

impl StreamState {
    /// One event's JSON, received `t` seconds after the request was sent.
    pub fn on_event(
        &mut self,
        api: Api,
        bytes: &[u8],
        t: f64,
        rec: &mut RequestRecord,
    ) -> Result<(), String> {
        match api {
            Api::Native => self.on_native(bytes, t, rec),
            Api::Completions | Api::Chat | Api::Truss => self.on_openai(bytes, t, rec),
            Api::Trt => self.on_trt(bytes, t, rec),
            // Not a stream: `body` collects it.
            Api::Embeddings => Ok(()),
        }
    }

    /// bench_serving's Triton parsing: every event's `text_output` is appended; the output
    /// length stays the requested one (Triton reports no count).
    fn on_trt(&mut self, bytes: &[u8], t: f64, rec: &mut RequestRecord) -> Result<(), String> {
        let c: TrtChunk = serde_json::from_slice(bytes).map_err(|e| bad_chunk(bytes, Some(e)))?;
        if c.error.is_some() {
            return Err(bad_chunk(bytes, None));
        }
        if let Some(text) = c.text_output.filter(|t| !t.is_empty()) {
            rec.generated_text.push_str(&text);
            self.content(t, 0, rec);
            rec.text_ends.push(rec.generated_text.len() as u32);
        }
        Ok(())
    }

    /// A non-streamed generation response, read whole, as one event at its latency.
    pub fn whole_response(&mut self, api: Api, rec: &mut RequestRecord) -> Result<(), String> {
        let body = std::mem::take(&mut self.last_native);
        let t = rec.latency;
        self.on_event(api, &body, t, rec)
    }

    /// Bytes of a non-streamed response body.
    pub fn body(&mut self, bytes: &[u8]) {
        self.last_native.extend_from_slice(bytes);
    }

    /// The embeddings response, read whole: a `data` list, else the failure it is. No output
    /// tokens (bench_serving: TTFT and ITL 0).
    pub fn embedding(&mut self, rec: &mut RequestRecord) -> Result<(), String> {
        let b = &self.last_native;
        let body: EmbeddingBody = serde_json::from_slice(b).map_err(|e| bad_chunk(b, Some(e)))?;
        if body.data.is_none() {
            return Err(bad_chunk(b, None));
        }
        if let Some(p) = body.usage.and_then(|u| u.prompt_tokens).filter(|p| *p > 0) {
            rec.server_prompt_len = Some(p);
        }
        rec.output_len = 0;
        rec.output_len_reported = true;
        Ok(())
    }

    fn content(&mut self, t: f64, tokens: u32, rec: &mut RequestRecord) {
        match self.last {
            None => {
                rec.ttft = t;
                rec.first_tokens = tokens;
            }
            Some(prev) => {
                rec.gaps.push(t - prev);
                rec.gap_tokens.push(tokens);
            }
        }
        self.last = Some(t);
    }

    fn on_native(&mut self, bytes: &[u8], t: f64, rec: &mut RequestRecord) -> Result<(), String> {
        // The fast path reads three keys and skips the rest (the cumulative text and
        // output_ids grow with every chunk); anything it does not expect goes through serde.
        let (text, meta) = match scan_native(bytes) {
            Some(NativeScan {
                text,
                meta,
                error: false,
            }) => (text, meta),
            _ => {
                let c: NativeChunk =
                    serde_json::from_slice(bytes).map_err(|e| bad_chunk(bytes, Some(e)))?;
                if c.error.is_some() {
                    return Err(bad_chunk(bytes, None));
                }
                (c.text.0, c.meta_info)
            }
        };
        let meta = meta.unwrap_or(NativeMeta {
            completion_tokens: None,
            prompt_tokens: None,
            cached_tokens: None,
        });
        if let Some(p) = meta.prompt_tokens.filter(|p| *p > 0) {
            rec.server_prompt_len = Some(p);
        }
        if meta.cached_tokens.is_some() {
            rec.cached_tokens = meta.cached_tokens;
        }
        if let Some(n) = meta.completion_tokens {
            rec.output_len = n;
            rec.output_len_reported = true;
        }
        if text {
            let total = meta.completion_tokens.unwrap_or(self.counted + 1);
            let new = total.saturating_sub(self.counted);
            // bench_serving skips a chunk that brings no new token (its gap joins the next).
            if new == 0 && self.last.is_some() {
                return Ok(());
            }
            self.content(t, new as u32, rec);
            self.counted = total;
            self.last_native.clear();
            self.last_native.extend_from_slice(bytes);
        }
        Ok(())
    }

    fn on_openai(&mut self, bytes: &[u8], t: f64, rec: &mut RequestRecord) -> Result<(), String> {
        let c: OaiChunk = serde_json::from_slice(bytes).map_err(|e| bad_chunk(bytes, Some(e)))?;
        if c.error.is_some() || c.object.as_deref() == Some("error") {
            return Err(bad_chunk(bytes, None));
        }
        let mut new_tokens = 0;
        if let Some(u) = &c.usage {
            if let Some(p) = u.prompt_tokens.filter(|p| *p > 0) {
                rec.server_prompt_len = Some(p);
            }
            if let Some(c) = u
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
            {
                rec.cached_tokens = Some(c);
            }
            if let Some(n) = u.completion_tokens {
                new_tokens = n.saturating_sub(self.counted);
                self.counted = self.counted.max(n);
                rec.output_len = n;
                rec.output_len_reported = true;
            }
        }
        let Some(choice) = c.choices.0 else {
            return Ok(());
        };
        let before = rec.generated_text.len();
        if let Some(text) = &choice.text {
            rec.generated_text.push_str(text);
        }
        if let Some(d) = choice.delta.as_ref().or(choice.message.as_ref()) {
            // As bench_serving: reasoning counts as output; prefer the standard field.
            if let Some(r) = d.reasoning_content.as_ref().or(d.reasoning.as_ref()) {
                rec.generated_text.push_str(r);
            }
            if let Some(s) = &d.content {
                rec.generated_text.push_str(s);
            }
        }
        if rec.generated_text.len() > before {
            self.content(t, new_tokens as u32, rec);
            rec.text_ends.push(rec.generated_text.len() as u32);
        }
        Ok(())
    }

    /// After the stream: the native route's generated text is its last chunk's.
    pub fn finish(&mut self, api: Api, rec: &mut RequestRecord) {
        if api == Api::Native && !self.last_native.is_empty() {
            let parsed: Result<NativeText, _> = serde_json::from_slice(&self.last_native);
            if let Ok(NativeText { text: Some(text) }) = parsed {
                rec.generated_text = text.into_owned();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(api: Api, events: &[(&str, f64)]) -> RequestRecord {
        let mut st = StreamState::default();
        let mut rec = RequestRecord::default();
        for (e, t) in events {
            st.on_event(api, e.as_bytes(), *t, &mut rec).unwrap();
        }
        st.finish(api, &mut rec);
        rec
    }

    #[test]
    fn native_counts_tokens_per_chunk_and_keeps_the_last_text() {
        let rec = feed(
            Api::Native,
            &[
                (
                    r#"{"text":"a","meta_info":{"completion_tokens":1,"prompt_tokens":7}}"#,
                    0.1,
                ),
                (r#"{"text":"abc","meta_info":{"completion_tokens":3}}"#, 0.3),
                (
                    r#"{"text":"abc","meta_info":{"completion_tokens":3}}"#,
                    0.35,
                ),
                (
                    r#"{"text":"abc\"d","meta_info":{"completion_tokens":4}}"#,
                    0.4,
                ),
            ],
        );
        assert_eq!(rec.ttft, 0.1);
        assert_eq!(rec.gap_tokens, [2, 1]);
        assert!((rec.gaps[0] - 0.2).abs() < 1e-12 && (rec.gaps[1] - 0.1).abs() < 1e-12);
        assert_eq!((rec.output_len, rec.server_prompt_len), (4, Some(7)));
        assert_eq!(rec.generated_text, "abc\"d");
    }

    #[test]
    fn the_native_fast_path_agrees_with_serde() {
        let chunks = [
            r#"{"text":"a\"b}","output_ids":[1,[2],{"x":"]"}],"meta_info":{"completion_tokens":3,"prompt_tokens":7,"finish_reason":{"type":"length"}}}"#,
            r#" { "meta_info" : null , "text" : "" } "#,
            r#"{"text":null,"error":null,"meta_info":{"completion_tokens":1}}"#,
            r#"{"text":"x","output_ids":[[1,2],{"a":[3,"]}"]}],"meta_info":{"id":"q","prompt_tokens":null,"completion_tokens":12,"finish_reason":null}}"#,
            r#"{"text":"x","meta_info":{ }}"#,
            r#"{"error":{"message":"boom"},"text":"x"}"#,
            r#"{}"#,
        ];
        for c in chunks {
            let fast = scan_native(c.as_bytes()).unwrap_or_else(|| panic!("{c}"));
            let slow: NativeChunk = serde_json::from_str(c).unwrap();
            assert_eq!(fast.text, slow.text.0, "{c}");
            assert_eq!(fast.error, slow.error.is_some(), "{c}");
            assert_eq!(fast.meta, slow.meta_info, "{c}");
        }
        // What the fast path does not expect goes to serde.
        for odd in [
            &br#"{"completion_tokens":1.0}"#[..],
            br#"{"completion_tokens":-1}"#,
            br#"{"prompt_tokens":"7"}"#,
            br#"{"completion_tokens":012}"#,
        ] {
            assert!(scan_meta(odd, 0).is_none());
            let chunk = [&br#"{"text":"x","meta_info":"#[..], odd, b"}"].concat();
            assert_eq!(scan_native(&chunk), None);
        }
        for bad in [
            r#"{"text":"a""#,
            r#"{"text" "a"}"#,
            r#"{"a":1} x"#,
            "[1]",
            r#"{"a":1,}"#,
        ] {
            assert_eq!(scan_native(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn openai_content_reasoning_and_usage() {
        let rec = feed(
            Api::Chat,
            &[
                (r#"{"choices":[{"delta":{"role":"assistant"}}]}"#, 0.05),
                (
                    r#"{"choices":[{"delta":{"reasoning_content":"hm"}}],"usage":null}"#,
                    0.1,
                ),
                (r#"{"choices":[{"delta":{"content":"Hi \u00e9"}}]}"#, 0.2),
                (
                    r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3}}"#,
                    0.25,
                ),
            ],
        );
        assert_eq!(rec.ttft, 0.1);
        assert_eq!(rec.generated_text, "hmHi é");
        assert_eq!(rec.text_ends, [2, 7]);
        assert_eq!(
            rec.gap_tokens,
            [0],
            "tokens per chunk unknown without continuous usage"
        );
        assert_eq!((rec.output_len, rec.server_prompt_len), (3, Some(5)));
    }

    #[test]
    fn continuous_usage_gives_tokens_per_chunk() {
        let rec = feed(
            Api::Completions,
            &[
                (
                    r#"{"choices":[{"text":"a"}],"usage":{"completion_tokens":1}}"#,
                    0.1,
                ),
                (
                    r#"{"choices":[{"text":"bc"}],"usage":{"completion_tokens":3}}"#,
                    0.2,
                ),
            ],
        );
        assert_eq!((rec.first_tokens, rec.gap_tokens.clone()), (1, vec![2]));
    }

    #[test]
    fn errors_in_the_stream_are_reported() {
        let mut st = StreamState::default();
        let mut rec = RequestRecord::default();
        let e = st
            .on_event(
                Api::Completions,
                br#"{"error":{"message":"boom"}}"#,
                0.1,
                &mut rec,
            )
            .unwrap_err();
        assert!(e.contains("boom"), "{e}");
        let e = st
            .on_event(
                Api::Chat,
                br#"{"object":"error","message":"too long"}"#,
                0.1,
                &mut rec,
            )
            .unwrap_err();
        assert!(e.contains("too long"), "{e}");
        let e = st
            .on_event(Api::Native, b"not json", 0.1, &mut rec)
            .unwrap_err();
        assert!(e.contains("unexpected chunk"), "{e}");
    }
}
