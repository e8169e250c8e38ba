//! `/metrics` scraping: Prometheus' text exposition format (version 0.0.4, which SGLang and
//! vLLM serve) read into samples. Label values keep their escapes' meaning (`\\`, `\"`,
//! `\n`); `# HELP`/`# TYPE` and other comment lines are skipped; values may be `NaN`,
//! `+Inf`/`-Inf` or any float; an optional integer timestamp (ms) follows.

/// One sample line: `name{label="value",...} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// In the order written.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Milliseconds since the epoch, when the exposition gives one.
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The value of the first sample named `name` whose labels include every pair of `labels`.
pub fn value_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
}

/// A line that is not valid exposition text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("/metrics line {line}: {message}")]
pub struct MetricsError {
    /// 1-based.
    pub line: usize,
    pub message: String,
}

/// Parse a whole exposition.
pub fn parse(text: &str) -> Result<Vec<Sample>, MetricsError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(parse_line(line).map_err(|message| MetricsError {
            line: i + 1,
            message,
        })?);
    }
    Ok(out)
}

struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*` (colons only in metric names).
    fn name(&mut self, colons: bool) -> Option<String> {
        let start = self.at;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphabetic()
                || c == b'_'
                || (colons && c == b':')
                || (self.at > start && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.at += 1;
        }
        (self.at > start).then(|| String::from_utf8_lossy(&self.s[start..self.at]).into_owned())
    }

    fn token(&mut self) -> &str {
        let start = self.at;
        while self.peek().is_some_and(|c| c != b' ' && c != b'\t') {
            self.at += 1;
        }
        std::str::from_utf8(&self.s[start..self.at]).unwrap_or("")
    }

    /// A quoted label value, the opening quote already consumed.
    fn label_value(&mut self) -> Result<String, String> {
        let mut v = Vec::new();
        loop {
            match self.peek() {
                None => return Err("a label value is not closed".into()),
                Some(b'"') => {
                    self.at += 1;
                    break;
                }
                Some(b'\\') => {
                    self.at += 1;
                    match self.peek() {
                        Some(b'\\') => v.push(b'\\'),
                        Some(b'"') => v.push(b'"'),
                        Some(b'n') => v.push(b'\n'),
                        Some(c) => return Err(format!("unknown escape \\{}", c as char)),
                        None => return Err("a label value is not closed".into()),
                    }
                    self.at += 1;
                }
                Some(c) => {
                    v.push(c);
                    self.at += 1;
                }
            }
        }
        // The input is a str and escapes only remove ASCII: still UTF-8.
        Ok(String::from_utf8(v).expect("valid UTF-8"))
    }

    fn labels(&mut self) -> Result<Vec<(String, String)>, String> {
        let mut labels = Vec::new();
        loop {
            self.skip_blanks();
            if self.peek() == Some(b'}') {
                self.at += 1;
                return Ok(labels);
            }
            let name = self.name(false).ok_or("expected a label name")?;
            self.skip_blanks();
            if self.peek() != Some(b'=') {
                return Err(format!("expected '=' after label {name}"));
            }
            self.at += 1;
            self.skip_blanks();
            if self.peek() != Some(b'"') {
                return Err(format!("the value of label {name} is not quoted"));
            }
            self.at += 1;
            let value = self.label_value()?;
            labels.push((name, value));
            self.skip_blanks();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {}
                _ => return Err("expected ',' or '}' after a label".into()),
            }
        }
    }
}

fn parse_value(t: &str) -> Result<f64, String> {
    match t {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "" => Err("the sample has no value".into()),
        _ => t
            .parse::<f64>()
            .map_err(|_| format!("'{t}' is not a sample value")),
    }
}

fn parse_line(line: &str) -> Result<Sample, String> {
    let mut c = Cursor {
        s: line.as_bytes(),
        at: 0,
    };
    let name = c.name(true).ok_or("expected a metric name")?;
    c.skip_blanks();
    let labels = if c.peek() == Some(b'{') {
        c.at += 1;
        c.labels()?
    } else {
        Vec::new()
    };
    c.skip_blanks();
    let value = parse_value(c.token())?;
    c.skip_blanks();
    let timestamp_ms = match c.token() {
        "" => None,
        t => Some(
            t.parse::<i64>()
                .map_err(|_| format!("'{t}' is not a timestamp"))?,
        ),
    };
    c.skip_blanks();
    if c.peek().is_some() {
        return Err("unexpected text after the sample".into());
    }
    Ok(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sglang_style_exposition() {
        let text = "# HELP sglang:num_running_reqs The number of running requests.\n\
                    # TYPE sglang:num_running_reqs gauge\n\
                    sglang:num_running_reqs{model_name=\"tiny\",engine_type=\"unified\"} 3.0\n\
                    \n\
                    sglang:e2e_request_latency_seconds_bucket{le=\"+Inf\",model_name=\"tiny\"} 12\n\
                    sglang:e2e_request_latency_seconds_sum{model_name=\"tiny\"} 1.5e-01\n\
                    process_start_time_seconds 1.7e9 1700000000123\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].name, "sglang:num_running_reqs");
        assert_eq!(
            s[0].labels,
            [
                ("model_name".to_string(), "tiny".to_string()),
                ("engine_type".to_string(), "unified".to_string())
            ]
        );
        assert_eq!(s[0].value, 3.0);
        assert_eq!(s[1].label("le"), Some("+Inf"));
        assert_eq!(s[2].value, 0.15);
        assert_eq!(
            (s[3].value, s[3].timestamp_ms),
            (1.7e9, Some(1_700_000_000_123))
        );
        assert_eq!(
            value_of(
                &s,
                "sglang:e2e_request_latency_seconds_bucket",
                &[("le", "+Inf")]
            ),
            Some(12.0)
        );
        assert_eq!(
            value_of(&s, "sglang:num_running_reqs", &[("model_name", "x")]),
            None
        );
    }

    #[test]
    fn label_values_unescape() {
        let s = parse(r#"m{path="C:\\dir\\f",msg="say \"hi\"\nbye", empty="" , utf="é,}{"} 1"#)
            .unwrap();
        assert_eq!(s[0].label("path"), Some(r"C:\dir\f"));
        assert_eq!(s[0].label("msg"), Some("say \"hi\"\nbye"));
        assert_eq!(s[0].label("empty"), Some(""));
        assert_eq!(
            s[0].label("utf"),
            Some("é,}{"),
            "quoted braces and commas are text"
        );
        // A trailing comma and blanks around the braces are allowed.
        let s = parse("m { a=\"1\", } -Inf\nn{} NaN\n").unwrap();
        assert_eq!(s[0].value, f64::NEG_INFINITY);
        assert_eq!(s[0].label("a"), Some("1"));
        assert!(s[1].value.is_nan() && s[1].labels.is_empty());
    }

    #[test]
    fn broken_lines_are_errors_with_their_line() {
        for (text, line, needle) in [
            ("ok 1\nm{a=\"x} 1\n", 2, "not closed"),
            ("m{a=x} 1", 1, "not quoted"),
            ("m{a=\"\\t\"} 1", 1, "unknown escape"),
            ("m 1 2 3", 1, "after the sample"),
            ("m one", 1, "'one' is not a sample value"),
            ("m 1 soon", 1, "not a timestamp"),
            ("m", 1, "no value"),
            ("{a=\"1\"} 1", 1, "metric name"),
            ("m{a=\"1\" b=\"2\"} 1", 1, "expected ','"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text}");
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
    }
}
