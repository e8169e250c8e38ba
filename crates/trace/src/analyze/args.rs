//! The `args` members the analyses read (`stream`, `correlation`, `Input Dims`), found in one
//! pass over the event's raw `args` text and shared by the HTA, host and attribution folds.
//!
//! The scan walks the top level of the object only, skipping nested values without building
//! them, and hands out each wanted member's raw text. Where it cannot vouch for giving what
//! serde_json would (a key with escapes, a wanted key twice, text that is not one object), it
//! says so ([`Args::exact`] false) and the caller parses the whole object with serde_json as
//! before, so results never depend on which path ran.

/// The wanted top-level members of one `args` object, as raw JSON text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Args<'a> {
    /// The whole `args` text (`None`: the event has none).
    pub text: Option<&'a str>,
    pub stream: Option<&'a str>,
    pub correlation: Option<&'a str>,
    pub input_dims: Option<&'a str>,
    /// The members above are exactly what serde_json would see; when false they are unset
    /// and callers fall back to parsing `text`.
    pub exact: bool,
}

impl<'a> Args<'a> {
    /// Scans `text` (an event's `args`).
    pub fn scan(text: Option<&'a str>) -> Args<'a> {
        let Some(t) = text else {
            return Args {
                exact: true,
                ..Args::default()
            };
        };
        let mut a = Args {
            text,
            ..Args::default()
        };
        if scan_into(t.as_bytes(), &mut a).is_some() {
            a.exact = true;
        } else {
            a.stream = None;
            a.correlation = None;
            a.input_dims = None;
        }
        a
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

/// Index of the first `"` or `\\` at or after `i`, eight bytes at a time (a vectorised search
/// costs more to set up than it saves on these short strings).
#[inline]
fn quote_or_escape(b: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    while let Some(word) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let q = x ^ (ONES * u64::from(b'"'));
        let e = x ^ (ONES * u64::from(b'\\'));
        // a zero byte of `q` or `e` is a match; the lowest flagged byte is exact
        let hit = (q.wrapping_sub(ONES) & !q | e.wrapping_sub(ONES) & !e) & HIGH;
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while i < b.len() {
        if matches!(b[i], b'"' | b'\\') {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Index just past the string whose opening quote is at `i`.
#[inline]
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        i = quote_or_escape(b, i)?;
        if b[i] == b'"' {
            return Some(i + 1);
        }
        i += 2;
    }
}

/// Index just past the value starting at `i` (not whitespace).
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

fn scan_into<'a>(b: &'a [u8], a: &mut Args<'a>) -> Option<()> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (skip_ws(b, i + 1) == b.len()).then_some(());
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_start = i + 1;
        let key_end = quote_or_escape(b, key_start)?;
        if b[key_end] != b'"' {
            return None; // an escaped key: serde_json's unescaping decides what it names
        }
        i = skip_ws(b, key_end + 1);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let v_start = i;
        i = skip_value(b, i)?;
        let slot = match &b[key_start..key_end] {
            b"stream" => Some(&mut a.stream),
            b"correlation" => Some(&mut a.correlation),
            b"Input Dims" => Some(&mut a.input_dims),
            _ => None,
        };
        if let Some(slot) = slot {
            if slot.is_some() {
                return None; // a repeated member: serde_json's struct parse refuses it
            }
            // SAFETY: `b` is a `str`'s bytes, cut at ASCII bytes: on character boundaries.
            *slot = Some(unsafe { std::str::from_utf8_unchecked(&b[v_start..i]) });
        }
        i = skip_ws(b, i);
        match b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return (skip_ws(b, i + 1) == b.len()).then_some(()),
            _ => return None,
        }
    }
}

/// A JSON integer literal that fits an `i64` (`-12`), else `None`.
/// Python's `int(x)` of an `args` member, as HTA reads `stream` and `correlation`: numbers
/// (a float truncated) and decimal strings; anything else (ROCm's `"0x0"`) is none, which HTA
/// turns into -1.
pub fn int_arg(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn plain_int(raw: &str) -> Option<i64> {
    let b = raw.as_bytes();
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    raw.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_top_level_members_only() {
        let a = Args::scan(Some(
            r#"{"x": {"stream": 9, "s": "a\"b}"}, "grid": [1, [2], {"correlation": 4}], "stream" : 7 , "correlation": -3, "Input Dims": [[32, 4096], []]}"#,
        ));
        assert!(a.exact);
        assert_eq!(a.stream, Some("7"));
        assert_eq!(a.correlation, Some("-3"));
        assert_eq!(a.input_dims, Some("[[32, 4096], []]"));
        let b = Args::scan(Some(
            r#"{"correlation": "12", "b": true, "n": null, "f": 1.5e3}"#,
        ));
        assert!(b.exact);
        assert_eq!((b.stream, b.correlation), (None, Some(r#""12""#)));
        assert_eq!(Args::scan(Some("{}")).stream, None);
        assert!(Args::scan(Some("{}")).exact);
        assert!(Args::scan(None).exact);
    }

    #[test]
    fn refuses_what_serde_would_read_differently() {
        for bad in [
            r#"{"stream": 1, "stream": 2}"#,
            r#"{"str\u0065am": 1}"#,
            r#"{"stream": 1"#,
            r#"{"stream": 1} x"#,
            r#"[1]"#,
            r#"{"a": [1, 2}"#,
            "",
        ] {
            let a = Args::scan(Some(bad));
            assert!(!a.exact, "{bad}");
            assert_eq!(a.stream, None, "{bad}");
        }
    }

    #[test]
    fn strings_end_at_their_closing_quote() {
        for (text, stream) in [
            (r#"{"a": "0123456789abcdef\\\"x", "stream": 1}"#, Some("1")),
            (
                r#"{"long key name over eight bytes": "é\\\\", "stream": "s\"t"}"#,
                Some(r#""s\"t""#),
            ),
            (r#"{"k": "abcdefgh", "stream": 22}"#, Some("22")),
        ] {
            let a = Args::scan(Some(text));
            assert!(a.exact, "{text}");
            assert_eq!(a.stream, stream, "{text}");
        }
    }

    #[test]
    fn plain_ints() {
        assert_eq!(plain_int("7"), Some(7));
        assert_eq!(plain_int("-7"), Some(-7));
        for s in [
            "7.0",
            "1e3",
            "\"7\"",
            "-",
            "",
            "99999999999999999999",
            "null",
        ] {
            assert_eq!(plain_int(s), None, "{s}");
        }
    }
}
