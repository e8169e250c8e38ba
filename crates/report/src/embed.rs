//! The page's data as JSON text that is safe inside `<script type="application/json">`, with
//! numbers cut to what a chart needs.

use serde_json::Value;

/// `x` with 4 significant digits but never fewer than 2 decimals, so a value a table prints
/// with two decimals reads the same in the chart (reduction rule R1). The cut goes through
/// the same decimal formatting the tables use, not through `x * 100`, whose product can round
/// a ...5 the other way. Non-finite values become null.
pub(crate) fn number(x: f64) -> Value {
    if !x.is_finite() {
        return Value::Null;
    }
    if x == 0.0 {
        return Value::from(0);
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(2, 15) as usize;
    let cut: f64 = format!("{x:.decimals$}")
        .parse()
        .expect("a formatted f64 parses");
    if cut.fract() == 0.0 && cut.abs() < 9.0e15 {
        Value::from(cut as i64)
    } else {
        Value::from(cut)
    }
}

/// Compact JSON with `<`, `>`, `&` and `'` written as `\u` escapes: no `</script>` can close
/// the element early, and the text is valid in an HTML attribute as well.
pub(crate) fn script_json(v: &Value) -> String {
    let text = serde_json::to_string(v).expect("a serde_json::Value always serializes");
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\'' => out.push_str("\\u0027"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_what_a_two_decimal_table_shows() {
        for x in [1.015, 123.455, 99.995, 0.125, 1234.5678, 1.0049999] {
            let n = number(x).as_f64().unwrap();
            assert_eq!(format!("{n:.2}"), format!("{x:.2}"), "{x}");
        }
        assert_eq!(number(0.00123456), Value::from(0.001235));
        assert_eq!(number(12345.678), Value::from(12345.68));
        assert_eq!(number(7.0), Value::from(7));
        assert_eq!(number(f64::NAN), Value::Null);
        assert_eq!(number(f64::INFINITY), Value::Null);
    }

    #[test]
    fn script_text_cannot_close_the_element() {
        let v = serde_json::json!({"k": "</script><b>&'", "n": [1, 2]});
        let s = script_json(&v);
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&') && !s.contains('\''));
        assert!(s.contains("[1,2]"), "compact: {s}");
        let back: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }
}
