//! Timestamps: Chrome-trace microseconds as decimal text <-> integer nanoseconds.
//!
//! Absolute Unix microseconds with three decimals exceed 2^53 nanoseconds, so going through
//! `f64` loses the sub-microsecond digits; these functions work on the digits instead.

/// Parses a JSON number or numeric string (`123`, `-4.5`, `"8306017670485"`, `1.5e3`) in
/// microseconds into nanoseconds, rounding digits below a nanosecond half away from zero.
/// Returns `None` for anything that is not a finite number in range.
pub fn parse_us_to_ns(text: &str) -> Option<i64> {
    let t = text.trim();
    let t = t
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .map(str::trim)
        .unwrap_or(t);
    let bytes = t.as_bytes();
    let (negative, bytes) = match bytes.first()? {
        b'-' => (true, &bytes[1..]),
        b'+' => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    // digits (integer and fraction, without the point) and the decimal exponent applied to them
    let mut digits: i128 = 0;
    let mut scale: i32 = 0;
    let mut seen_digit = false;
    let mut after_point = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b @ b'0'..=b'9' => {
                seen_digit = true;
                // Beyond 30 significant digits extra digits cannot change the nanoseconds of
                // any representable timestamp; drop them but keep the scale right.
                if digits < 10i128.pow(30) {
                    digits = digits * 10 + i128::from(b - b'0');
                    if after_point {
                        scale -= 1;
                    }
                } else if !after_point {
                    scale += 1;
                }
            }
            b'.' if !after_point => after_point = true,
            b'e' | b'E' => break,
            _ => return None,
        }
        i += 1;
    }
    if !seen_digit {
        return None;
    }
    if i < bytes.len() {
        let exp: i32 = bytes[i + 1..]
            .iter()
            .map(|&b| b as char)
            .collect::<String>()
            .parse()
            .ok()?;
        scale = scale.checked_add(exp)?;
    }
    // value = digits * 10^scale microseconds = digits * 10^(scale + 3) nanoseconds
    let shift = scale + 3;
    let ns = if shift >= 0 {
        digits.checked_mul(10i128.checked_pow(shift as u32)?)?
    } else if shift < -38 {
        0
    } else {
        let div = 10i128.pow((-shift) as u32);
        let q = digits / div;
        if (digits % div) * 2 >= div { q + 1 } else { q }
    };
    let ns = if negative { -ns } else { ns };
    i64::try_from(ns).ok()
}

/// Appends `ns` as microseconds in the shortest exact decimal form (`1500` -> `1.5`).
pub fn write_ns_as_us(out: &mut Vec<u8>, ns: i64) {
    let mut buf = itoa::Buffer::new();
    if ns < 0 {
        out.push(b'-');
    }
    let abs = ns.unsigned_abs();
    out.extend_from_slice(buf.format(abs / 1000).as_bytes());
    let frac = abs % 1000;
    if frac != 0 {
        let digits = [
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        let len = if frac.is_multiple_of(100) {
            1
        } else if frac.is_multiple_of(10) {
            2
        } else {
            3
        };
        out.push(b'.');
        out.extend_from_slice(&digits[..len]);
    }
}

/// `ns` as microseconds text, for messages and tables.
pub fn ns_to_us_string(ns: i64) -> String {
    let mut out = Vec::new();
    write_ns_as_us(&mut out, ns);
    String::from_utf8(out).expect("digits are ASCII")
}

/// Parses a duration or offset with a unit (`1.5s`, `200ms`, `30us`, `10ns`; a bare number is
/// microseconds, the trace format's unit) into nanoseconds.
pub fn parse_duration_ns(text: &str) -> Option<i64> {
    let t = text.trim();
    let (num, mult_ns) = if let Some(n) = t.strip_suffix("ns") {
        (n, 0)
    } else if let Some(n) = t.strip_suffix("us") {
        (n, 3)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 6)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 9)
    } else {
        (t, 3)
    };
    // parse_us_to_ns multiplies by 10^3; express the unit as an exponent on top of that
    let exp = mult_ns - 3;
    parse_us_to_ns(&format!("{}e{exp}", num.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kineto_timestamps_exactly() {
        // 2^53 ns is about 104 days; absolute Unix microseconds with decimals are far beyond it.
        assert_eq!(
            parse_us_to_ns("1682725898236567.123"),
            Some(1_682_725_898_236_567_123)
        );
        assert_eq!(
            parse_us_to_ns("4909914679584.875"),
            Some(4_909_914_679_584_875)
        );
        assert_eq!(
            parse_us_to_ns("\"8306017670485\""),
            Some(8_306_017_670_485_000)
        );
        assert_eq!(parse_us_to_ns("68.0"), Some(68_000));
        assert_eq!(parse_us_to_ns("-2.5"), Some(-2_500));
        assert_eq!(parse_us_to_ns("1.5e3"), Some(1_500_000));
        assert_eq!(parse_us_to_ns("1e-3"), Some(1));
        assert_eq!(parse_us_to_ns("0.0004"), Some(0));
        assert_eq!(parse_us_to_ns("0.0005"), Some(1));
        assert_eq!(parse_us_to_ns("abc"), None);
        assert_eq!(parse_us_to_ns(""), None);
        assert_eq!(parse_us_to_ns("1e400"), None);
    }

    #[test]
    fn formats_shortest_exact_microseconds() {
        let f = |ns| ns_to_us_string(ns);
        assert_eq!(f(1_500), "1.5");
        assert_eq!(f(1_000), "1");
        assert_eq!(f(1_230), "1.23");
        assert_eq!(f(4_909_914_679_584_875), "4909914679584.875");
        assert_eq!(f(-2_005), "-2.005");
        assert_eq!(f(7), "0.007");
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration_ns("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration_ns("200ms"), Some(200_000_000));
        assert_eq!(parse_duration_ns("30us"), Some(30_000));
        assert_eq!(parse_duration_ns("10ns"), Some(10));
        assert_eq!(parse_duration_ns("12"), Some(12_000));
        assert_eq!(parse_duration_ns("x1s"), None);
    }
}
