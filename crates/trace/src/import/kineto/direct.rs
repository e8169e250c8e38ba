//! One event parsed straight from the block's bytes, for the shapes real traces have: an
//! object whose keys and text members (`ph`, `name`, `cat`, `bp`, `s`) have no escapes, and
//! whose other members are any valid JSON. It accepts exactly what serde_json would (same
//! grammar checks as `serde_json::de::Deserializer::ignore_value`) and gives the same
//! [`RawEvent`]; anything else (escapes in those places, `null`s, a repeated member, arrays as
//! events, invalid JSON) returns `None` and the caller parses the event with serde_json, which
//! then also produces the error message. The block must be valid UTF-8 (checked once per
//! block), so no string is validated again.
//!
//! Why: serde_json's derive visits every member through generic visitors and validates each
//! string's UTF-8 separately; on event-dense traces this parser is about twice as fast.

use std::borrow::Cow;

use super::Text;
use super::event::{Raw, RawEvent};
use crate::analyze::args::Args;

/// The event starting at `bytes[start]` (a `{`), and the index just past it.
#[cfg(test)]
pub fn parse(bytes: &[u8], start: usize) -> Option<(RawEvent<'_>, usize)> {
    let mut ev = RawEvent::default();
    parse_into(bytes, start, &mut ev).map(|end| (ev, end))
}

/// [`parse`] into `ev` (a default one), so an event of some 300 bytes is not moved from
/// frame to frame on its way to the sink; `None` leaves `ev` partly filled.
pub fn parse_into<'a>(bytes: &'a [u8], start: usize, ev: &mut RawEvent<'a>) -> Option<usize> {
    let mut c = Cursor { b: bytes, i: start };
    c.eat(b'{')?;
    c.ws();
    if c.peek() == Some(b'}') {
        return Some(c.i + 1);
    }
    loop {
        let key = c.plain_string()?;
        c.ws();
        c.eat(b':')?;
        c.ws();
        match key {
            "ph" => c.text(&mut ev.ph)?,
            "name" => c.text(&mut ev.name)?,
            "cat" => c.text(&mut ev.cat)?,
            "bp" => c.text(&mut ev.bp)?,
            "s" => c.text(&mut ev.s)?,
            "pid" => c.raw(&mut ev.pid)?,
            "tid" => c.raw(&mut ev.tid)?,
            "ts" => c.raw(&mut ev.ts)?,
            "dur" => c.raw(&mut ev.dur)?,
            "id" => c.raw(&mut ev.id)?,
            "args" => c.args(&mut ev.args, &mut ev.scanned)?,
            _ => c.value()?,
        }
        c.ws();
        match c.next()? {
            b',' => c.ws(),
            b'}' => {
                if ev.args.is_none() {
                    ev.scanned = Some(Args::scan(None));
                }
                return Some(c.i);
            }
            _ => return None,
        }
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    #[inline]
    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    /// A string without escapes (at its opening quote): its text.
    #[inline]
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let end = find_special(self.b, start);
        if self.b.get(end) != Some(&b'"') {
            return None;
        }
        self.i = end + 1;
        // SAFETY: the block is valid UTF-8 (the caller checked) and both ends sit at ASCII
        // quotes, so they are character boundaries.
        Some(unsafe { std::str::from_utf8_unchecked(&self.b[start..end]) })
    }

    /// Any valid string (at its opening quote), skipped; serde_json's `ignore_str`.
    fn string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            self.i = find_special(self.b, self.i);
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        let hex = self.b.get(self.i..self.i + 4)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        self.i += 4;
                    }
                    _ => return None,
                },
                // A control character.
                _ => return None,
            }
        }
    }

    /// A number, skipped; serde_json's `ignore_integer`/`ignore_decimal`/`ignore_exponent`.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next()? {
            b'0' => {
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return None;
                }
            }
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            let from = self.i;
            self.digits();
            if self.i == from {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            let from = self.i;
            self.digits();
            if self.i == from {
                return None;
            }
        }
        Some(())
    }

    #[inline]
    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + word.len())? != word {
            return None;
        }
        self.i += word.len();
        Some(())
    }

    /// Any valid JSON value, skipped (iteratively: nesting costs a bit per level).
    fn value(&mut self) -> Option<()> {
        self.value_within(u128::BITS)
    }

    /// [`Cursor::value`] nested at most `limit` levels (a member of an object being walked
    /// gets one level less, so the whole event keeps the same limit).
    fn value_within(&mut self, limit: u32) -> Option<()> {
        // Bit n of `objects`: whether nesting level n + 1 is an object (else an array).
        let mut objects: u128 = 0;
        let mut depth = 0u32;
        loop {
            // A value starts here.
            match self.peek()? {
                b'"' => self.string()?,
                b'-' | b'0'..=b'9' => self.number()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                open @ (b'{' | b'[') => {
                    if depth == limit {
                        return None;
                    }
                    self.i += 1;
                    self.ws();
                    let object = open == b'{';
                    let close = if object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.i += 1;
                    } else {
                        objects = (objects & !(1 << depth)) | (u128::from(object) << depth);
                        depth += 1;
                        if object {
                            self.member_name()?;
                        }
                        self.ws();
                        continue;
                    }
                }
                _ => return None,
            }
            // After a value: close levels until one continues with a comma.
            loop {
                if depth == 0 {
                    return Some(());
                }
                let object = objects >> (depth - 1) & 1 == 1;
                self.ws();
                match self.next()? {
                    b',' => {
                        self.ws();
                        if object {
                            self.member_name()?;
                        }
                        self.ws();
                        break;
                    }
                    b'}' if object => depth -= 1,
                    b']' if !object => depth -= 1,
                    _ => return None,
                }
            }
        }
    }

    /// `"name" :` inside an object being skipped.
    fn member_name(&mut self) -> Option<()> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.string()?;
        self.ws();
        self.eat(b':')?;
        self.ws();
        Some(())
    }

    /// A text member: a string without escapes, given once.
    #[inline]
    fn text(&mut self, slot: &mut Option<Text<'a>>) -> Option<()> {
        if slot.is_some() || self.peek() != Some(b'"') {
            return None;
        }
        *slot = Some(Text(Cow::Borrowed(self.plain_string()?)));
        Some(())
    }

    /// `args`: kept as JSON text like [`Cursor::raw`], and, while its top level is walked
    /// anyway, the members [`Args`] wants (what [`Args::scan`] would find, in the same pass).
    /// `scanned` stays `None` where the scan could not vouch for them (an escaped key, a
    /// wanted key twice, not an object); the consumer then scans the text itself.
    fn args(&mut self, slot: &mut Option<Raw<'a>>, scanned: &mut Option<Args<'a>>) -> Option<()> {
        if slot.is_some() || self.peek() != Some(b'{') {
            return self.raw(slot);
        }
        let start = self.i;
        let mut found = Args {
            exact: true,
            ..Args::default()
        };
        self.i += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
        } else {
            loop {
                if self.peek() != Some(b'"') {
                    return None;
                }
                let key_start = self.i + 1;
                let key_end = find_special(self.b, key_start);
                let key = if self.b.get(key_end) == Some(&b'"') {
                    self.i = key_end + 1;
                    Some(&self.b[key_start..key_end])
                } else {
                    // escapes (or a control character): checked the slow way, and the
                    // consumer's own scan decides what it names
                    self.string()?;
                    found.exact = false;
                    None
                };
                self.ws();
                self.eat(b':')?;
                self.ws();
                let v_start = self.i;
                self.value_within(u128::BITS - 1)?;
                let member = match key {
                    Some(b"stream") => Some(&mut found.stream),
                    Some(b"correlation") => Some(&mut found.correlation),
                    Some(b"Input Dims") => Some(&mut found.input_dims),
                    _ => None,
                };
                if let Some(member) = member {
                    if member.is_some() {
                        found.exact = false;
                    }
                    // SAFETY: as in `plain_string`: a valid UTF-8 block cut at ASCII bytes.
                    *member =
                        Some(unsafe { std::str::from_utf8_unchecked(&self.b[v_start..self.i]) });
                }
                self.ws();
                match self.next()? {
                    b',' => self.ws(),
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        // SAFETY: as above.
        let text = unsafe { std::str::from_utf8_unchecked(&self.b[start..self.i]) };
        *slot = Some(Raw(text));
        if found.exact {
            found.text = Some(text);
            *scanned = Some(found);
        }
        Some(())
    }

    /// A member kept as JSON text: any value but `null` (serde reads that as absent), given
    /// once.
    #[inline]
    fn raw(&mut self, slot: &mut Option<Raw<'a>>) -> Option<()> {
        if slot.is_some() || self.peek() == Some(b'n') {
            return None;
        }
        let start = self.i;
        self.value()?;
        // SAFETY: as in `plain_string`: a valid UTF-8 block cut at the value's first and
        // one-past-last bytes, both ASCII.
        *slot = Some(Raw(unsafe {
            std::str::from_utf8_unchecked(&self.b[start..self.i])
        }));
        Some(())
    }
}

/// Index of the first `"`, `\` or control character at or after `i` (or `b.len()`), eight
/// bytes at a time (serde_json's `skip_to_escape` does the same).
#[inline]
fn find_special(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    while let Some(word) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let control = x.wrapping_sub(ONES * 0x20) & !x;
        let q = x ^ (ONES * u64::from(b'"'));
        let quote = q.wrapping_sub(ONES) & !q;
        let s = x ^ (ONES * u64::from(b'\\'));
        let backslash = s.wrapping_sub(ONES) & !s;
        let found = (control | quote | backslash) & HIGH;
        if found != 0 {
            return i + found.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    while i < b.len() && !matches!(b[i], b'"' | b'\\' | 0..=0x1f) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json makes of `text` as an event: the members and the length, or `None`.
    fn by_serde(text: &str) -> Option<(String, usize)> {
        let mut it = serde_json::Deserializer::from_str(text).into_iter::<RawEvent>();
        let ev = it.next()?.ok()?;
        Some((describe(&ev), it.byte_offset()))
    }

    fn by_direct(text: &str) -> Option<(String, usize)> {
        parse(text.as_bytes(), 0).map(|(ev, end)| (describe(&ev), end))
    }

    fn describe(ev: &RawEvent<'_>) -> String {
        let t = |x: &Option<Text<'_>>| format!("{:?}", x.as_ref().map(|t| t.0.as_ref()));
        let r = |x: &Option<Raw<'_>>| format!("{:?}", x.map(|r| r.0));
        [
            t(&ev.ph),
            t(&ev.name),
            t(&ev.cat),
            t(&ev.bp),
            t(&ev.s),
            r(&ev.pid),
            r(&ev.tid),
            r(&ev.ts),
            r(&ev.dur),
            r(&ev.id),
            r(&ev.args),
        ]
        .join("|")
    }

    /// Where the direct parser answers, it answers as serde_json does; and it answers for
    /// the shapes profilers write.
    fn agree(text: &str, direct_must_answer: bool) {
        let direct = by_direct(text);
        if direct_must_answer {
            assert!(direct.is_some(), "direct parser gave up on {text}");
        }
        if let Some(d) = direct {
            assert_eq!(Some(d), by_serde(text), "{text}");
        }
        // The `args` members found in the parse are the ones a separate scan finds.
        if let Some((ev, _)) = parse(text.as_bytes(), 0)
            && let Some(found) = ev.scanned
        {
            assert_eq!(found, Args::scan(ev.args.map(|r| r.0)), "{text}");
        }
    }

    /// What the parse found of `args` (`None`: left to the consumer's scan).
    fn scanned(text: &str) -> Option<Args<'_>> {
        parse(text.as_bytes(), 0).expect("parses").0.scanned
    }

    #[test]
    fn args_members_are_found_in_the_same_pass() {
        let text = r#"{"ph": "X", "args": {"x": {"stream": 9}, "stream": 7, "correlation" : "12", "Input Dims": [[32, 4096], []], "grid": [1, [2]]}, "cat": "kernel"}"#;
        let a = scanned(text).expect("vouched for");
        assert!(a.exact);
        assert_eq!(
            (a.stream, a.correlation, a.input_dims),
            (Some("7"), Some(r#""12""#), Some("[[32, 4096], []]"))
        );
        assert_eq!(a.text, Some(&text[20..125]));
        let none = scanned(r#"{"ph": "X", "name": "k"}"#).expect("no args: nothing to find");
        assert_eq!(none, Args::scan(None));
        assert!(scanned(r#"{"ph": "X", "args": {}}"#).is_some_and(|a| a.exact));
        // Escaped keys, a repeated wanted key, args that are not an object: the consumer's
        // scan (and serde_json behind it) decides.
        for text in [
            r#"{"ph": "X", "args": {"str\u0065am": 1}}"#,
            r#"{"ph": "X", "args": {"stream": 1, "stream": 2}}"#,
            r#"{"ph": "X", "args": [1]}"#,
            r#"{"ph": "X", "args": 3}"#,
        ] {
            assert_eq!(scanned(text), None, "{text}");
            agree(text, true);
        }
    }

    #[test]
    fn common_events_parse_as_serde_does() {
        for text in [
            r#"{"ph": "X", "cat": "kernel", "name": "void k<1, 2>(float*)", "pid": 0, "tid": 7, "ts": 4909914679584.875, "dur": 6.649, "args": {"External id": 12, "grid": [132, 1, 1], "stream": 7, "est. achieved occupancy %": 9, "x": -1.5e-3, "b": true, "n": null, "e": {}, "a": []}}"#,
            r#"{"ph":"f","id":5,"pid":"Spans","tid":"PyTorch Profiler","ts":"12","cat":"ac2g","name":"ac2g","bp":"e"}"#,
            r#"{ "ph" : "i" , "s" : "g" , "name" : "mark" , "ts" : 0 , "args" : { "k" : "a\"b\\c\u00e9\n" } }"#,
            r#"{"ph": "C", "name": "é ünï", "pid": 1, "ts": 1, "args": {"v": [[1, [2, {"z": [3]}]], "s"]}, "unknown": {"deep": [[[[1]]]]}}"#,
            "{}",
            "{ }",
            r#"{"ph": "M", "name": "process_name", "pid": 4, "args": {"name": "python3"}}trailing"#,
        ] {
            agree(text, true);
        }
    }

    #[test]
    fn the_rest_is_left_to_serde() {
        // Escapes where a borrowed text is kept, nulls, repeats, arrays, numbers as names:
        // serde_json decides (and these are all valid, so it answers).
        for text in [
            r#"{"ph": "X", "name": "a\"b"}"#,
            r#"{"p\u0068": "X"}"#,
            r#"{"ph": "X", "pid": null}"#,
            r#"{"ph": "X", "name": 42}"#,
            r#"["X", "name", "cat", 1, 2, 3, 4, null, null, null, {}]"#,
        ] {
            assert!(by_direct(text).is_none(), "{text}");
            assert!(by_serde(text).is_some(), "{text}");
        }
        assert!(by_direct(r#"{"ph": "X", "ph": "B"}"#).is_none());
        // Invalid JSON: neither accepts it.
        for text in [
            r#"{"ph": "X",}"#,
            r#"{"ph": "X" "name": "a"}"#,
            r#"{"ph": "X", "args": {"a": 01}}"#,
            r#"{"ph": "X", "args": {"a": 1.}}"#,
            r#"{"ph": "X", "args": {"a": 1e}}"#,
            r#"{"ph": "X", "args": {"a": -}}"#,
            r#"{"ph": "X", "args": {"a": [1, 2,]}}"#,
            r#"{"ph": "X", "args": {"a": [1 2]}}"#,
            r#"{"ph": "X", "args": {"a": "\x"}}"#,
            r#"{"ph": "X", "args": {"a": "\u12g4"}}"#,
            r#"{"ph": "X", "args": {"a" 1}}"#,
            r#"{"ph": "X", "args": {1: 1}}"#,
            r#"{"ph": "X", "args": {"a": tru}}"#,
            r#"{"ph": "X", "args": {"a": [}]}}"#,
            "{\"ph\": \"X\", \"args\": {\"a\": \"tab\there\"}}",
            r#"{"ph": "X", "args": {"a": [1]"#,
            r#"{"ph": "X""#,
        ] {
            assert!(by_direct(text).is_none(), "{text}");
            assert!(by_serde(text).is_none(), "{text}");
        }
    }

    #[test]
    fn random_mutations_never_make_it_disagree() {
        // Cut, duplicate and swap bytes of valid events: wherever the direct parser still
        // answers, serde_json must answer the same.
        let seeds = [
            r#"{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1000, "tid": "7", "ts": 1.5, "dur": 2e3, "args": {"Input Dims": [[32, 4096], []], "s": "a\\b\"c", "u": "\u00e9", "f": false, "n": null}}"#,
            r#"{"ph": "s", "id": -12, "pid": 0, "tid": 0, "ts": 0.001, "cat": "ac2g", "name": "ac2g", "bp": "e", "s": "t"}"#,
            r#"{"ph": "X", "cat": "kernel", "args": {"stream": 7, "correlation": 12, "s\u0074ream": 1, "Input Dims": [[1], []], "x": {"stream": 2}}, "dur": 1}"#,
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let alphabet = b"{}[]\",:\\ -.0123456789eEuntrfalsx";
        for seed in seeds {
            for _ in 0..20_000 {
                let mut b = seed.as_bytes().to_vec();
                for _ in 0..1 + rand(3) {
                    let at = rand(b.len());
                    match rand(3) {
                        0 => b[at] = alphabet[rand(alphabet.len())],
                        1 => {
                            b.remove(at);
                        }
                        _ => b.insert(at, alphabet[rand(alphabet.len())]),
                    }
                }
                if let Ok(text) = std::str::from_utf8(&b) {
                    agree(text, false);
                }
            }
        }
    }
}
