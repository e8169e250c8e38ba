//! Where the elements of the event array end, found 64 bytes at a time: the first stage of
//! simdjson (Langdale and Lemire, "Parsing Gigabytes of JSON per Second"), reduced to what
//! cutting the array needs. Quotes, backslashes and brackets become bit masks (AVX2 where the
//! CPU has it), escaped quotes are removed with carry arithmetic, a prefix XOR gives the bytes
//! inside strings, and only the brackets outside strings are walked one by one.
//!
//! Nothing here validates JSON: the parser does that for each element. Invalid text can only
//! make this scan cut in the wrong place, which the parser then reports.

/// Scan state carried from one 64-byte unit to the next.
#[derive(Default)]
pub struct Structure {
    /// 1 when the previous unit ended in an odd run of backslashes (its next byte is escaped).
    prev_escaped: u64,
    /// All ones when the previous unit ended inside a string.
    prev_in_string: u64,
    /// Bracket depth relative to the inside of the array.
    depth: i64,
}

/// What one call to [`Structure::scan`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Bytes scanned: whole 64-byte units, or everything when the input was the last.
    pub consumed: usize,
    /// Just past the last `}`/`]` that closed an element (depth back to 0).
    pub last_end: Option<usize>,
    /// A `}`/`]` outside strings at depth 0: the array's own end (or a stray bracket). The
    /// scan stops there; `consumed` is not meaningful.
    pub exit: Option<usize>,
}

struct Masks {
    quote: u64,
    backslash: u64,
    open: u64,
    close: u64,
}

impl Structure {
    /// Scans `bytes`. Unless `last`, a trailing part shorter than 64 bytes is left for the
    /// next call (with more bytes after it), so escapes and strings carry over exactly.
    pub fn scan(&mut self, bytes: &[u8], last: bool) -> Scan {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { self.scan_avx2(bytes, last) };
        }
        self.scan_with(bytes, last, masks_scalar)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn scan_avx2(&mut self, bytes: &[u8], last: bool) -> Scan {
        self.scan_with(bytes, last, |unit| masks_avx2(unit))
    }

    #[inline(always)]
    fn scan_with(&mut self, bytes: &[u8], last: bool, masks: impl Fn(&[u8; 64]) -> Masks) -> Scan {
        let mut scan = Scan::default();
        let mut units = bytes.chunks_exact(64);
        let mut base = 0;
        for unit in &mut units {
            let unit: &[u8; 64] = unit.try_into().expect("64 bytes");
            if self.unit(&masks(unit), base, &mut scan) {
                return scan;
            }
            base += 64;
        }
        let tail = units.remainder();
        if last && !tail.is_empty() {
            // Padding with spaces changes nothing: they are neither quotes nor brackets, and
            // an escape carried into them has nothing after it to affect.
            let mut unit = [b' '; 64];
            unit[..tail.len()].copy_from_slice(tail);
            if self.unit(&masks(&unit), base, &mut scan) {
                return scan;
            }
            base += tail.len();
        }
        scan.consumed = base;
        scan
    }

    /// One unit at `base`; `true` when it holds the exit.
    #[inline(always)]
    fn unit(&mut self, m: &Masks, base: usize, scan: &mut Scan) -> bool {
        let escaped = self.escaped(m.backslash);
        let quotes = m.quote & !escaped;
        let in_string = prefix_xor(quotes) ^ self.prev_in_string;
        self.prev_in_string = ((in_string as i64) >> 63) as u64;
        let open = m.open & !in_string;
        let close = m.close & !in_string;
        // Most units cannot bring the depth to zero: count instead of walking them.
        if self.depth > i64::from(close.count_ones()) {
            self.depth += i64::from(open.count_ones()) - i64::from(close.count_ones());
            return false;
        }
        let mut brackets = open | close;
        while brackets != 0 {
            let i = brackets.trailing_zeros() as usize;
            brackets &= brackets - 1;
            if open >> i & 1 == 1 {
                self.depth += 1;
            } else {
                self.depth -= 1;
                if self.depth == 0 {
                    scan.last_end = Some(base + i + 1);
                } else if self.depth < 0 {
                    scan.exit = Some(base + i);
                    return true;
                }
            }
        }
        false
    }

    /// The bytes escaped by a backslash (simdjson's `find_escaped_branchless`).
    #[inline(always)]
    fn escaped(&mut self, backslash: u64) -> u64 {
        const EVEN: u64 = 0x5555_5555_5555_5555;
        let backslash = backslash & !self.prev_escaped;
        let follows_escape = (backslash << 1) | self.prev_escaped;
        let odd_starts = backslash & !EVEN & !follows_escape;
        let (even_starts, overflow) = odd_starts.overflowing_add(backslash);
        self.prev_escaped = u64::from(overflow);
        (EVEN ^ (even_starts << 1)) & follows_escape
    }
}

/// Bit i set when an odd number of bits at or below i are set: inside a string, counting its
/// opening quote but not its closing one.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

#[inline(always)]
fn masks_scalar(unit: &[u8; 64]) -> Masks {
    let mut m = Masks {
        quote: 0,
        backslash: 0,
        open: 0,
        close: 0,
    };
    for (i, &b) in unit.iter().enumerate() {
        let bit = 1u64 << i;
        match b {
            b'"' => m.quote |= bit,
            b'\\' => m.backslash |= bit,
            b'{' | b'[' => m.open |= bit,
            b'}' | b']' => m.close |= bit,
            _ => {}
        }
    }
    m
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn masks_avx2(unit: &[u8; 64]) -> Masks {
    use std::arch::x86_64::*;
    // SAFETY: two unaligned 32-byte loads inside the 64-byte array.
    let (lo, hi) = unsafe {
        (
            _mm256_loadu_si256(unit.as_ptr().cast()),
            _mm256_loadu_si256(unit.as_ptr().add(32).cast()),
        )
    };
    // `{` and `[` differ only in bit 0x20, as do `}` and `]`: OR it in and compare once.
    let case = _mm256_set1_epi8(0x20);
    let (lo_c, hi_c) = (_mm256_or_si256(lo, case), _mm256_or_si256(hi, case));
    macro_rules! bits {
        ($l:expr, $h:expr) => {
            u64::from(_mm256_movemask_epi8($l) as u32)
                | (u64::from(_mm256_movemask_epi8($h) as u32) << 32)
        };
    }
    let (quote, backslash) = (_mm256_set1_epi8(b'"' as i8), _mm256_set1_epi8(b'\\' as i8));
    let (open, close) = (_mm256_set1_epi8(b'{' as i8), _mm256_set1_epi8(b'}' as i8));
    Masks {
        quote: bits!(_mm256_cmpeq_epi8(lo, quote), _mm256_cmpeq_epi8(hi, quote)),
        backslash: bits!(
            _mm256_cmpeq_epi8(lo, backslash),
            _mm256_cmpeq_epi8(hi, backslash)
        ),
        open: bits!(_mm256_cmpeq_epi8(lo_c, open), _mm256_cmpeq_epi8(hi_c, open)),
        close: bits!(
            _mm256_cmpeq_epi8(lo_c, close),
            _mm256_cmpeq_epi8(hi_c, close)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Element ends and the exit by a byte-at-a-time reference.
    fn reference(bytes: &[u8]) -> (Vec<usize>, Option<usize>) {
        let (mut depth, mut in_str, mut esc) = (0i64, false, false);
        let mut ends = Vec::new();
        for (i, &b) in bytes.iter().enumerate() {
            if in_str {
                if esc {
                    esc = false;
                } else if b == b'\\' {
                    esc = true;
                } else if b == b'"' {
                    in_str = false;
                }
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        ends.push(i + 1);
                    } else if depth < 0 {
                        return (ends, Some(i));
                    }
                }
                _ => {}
            }
        }
        (ends, None)
    }

    /// Feeds `bytes` in pieces of `piece` bytes (as the splitter does) with both mask
    /// implementations and checks the last element end and the exit against the reference.
    fn check(bytes: &[u8], piece: usize) {
        let (ends, exit) = reference(bytes);
        for scalar in [false, true] {
            let mut st = Structure::default();
            let (mut at, mut last_end, mut got_exit) = (0, None, None);
            let mut avail = 0;
            loop {
                avail = (avail + piece).min(bytes.len());
                let last = avail == bytes.len();
                let s = if scalar {
                    st.scan_with(&bytes[at..avail], last, masks_scalar)
                } else {
                    st.scan(&bytes[at..avail], last)
                };
                if let Some(e) = s.last_end {
                    last_end = Some(at + e);
                }
                if let Some(x) = s.exit {
                    got_exit = Some(at + x);
                    break;
                }
                at += s.consumed;
                if last {
                    break;
                }
            }
            let want_last = match exit {
                Some(x) => ends.iter().copied().rfind(|&e| e <= x),
                None => ends.last().copied(),
            };
            assert_eq!(got_exit, exit, "exit, scalar {scalar}, piece {piece}");
            assert_eq!(
                last_end, want_last,
                "last end, scalar {scalar}, piece {piece}"
            );
        }
    }

    #[test]
    fn agrees_with_a_byte_at_a_time_scan() {
        let event = r#"{"ph": "X", "name": "a\"}]{[\\", "args": {"s": "\\\"", "t": [1, {"u": "\\\\\"x"}]}}"#;
        let mut text = String::new();
        for i in 0..40 {
            if i > 0 {
                text.push_str(if i % 3 == 0 { ",\n  " } else { "," });
            }
            text.push_str(event);
            // Runs of backslashes of every length, across unit boundaries.
            text.push_str(&format!(r#", {{"k": "{}"}}"#, "\\\\".repeat(i % 7)));
        }
        let closed = format!("{text}\n], \"after\": {{\"x\": 1}}}}");
        for piece in [1, 7, 63, 64, 65, 200, 4096] {
            check(text.as_bytes(), piece);
            check(closed.as_bytes(), piece);
        }
        for shift in 0..64 {
            let shifted = format!("{}{closed}", " ".repeat(shift));
            check(shifted.as_bytes(), 100);
        }
    }

    #[test]
    fn an_open_string_hides_brackets_until_it_closes() {
        let mut st = Structure::default();
        let s = st.scan(br#"{"a": "}}]]"#, false);
        assert_eq!(s.consumed, 0, "less than a unit waits for more");
        let text = format!(r#"{{"a": "}}]]{}"}}]"#, " ".repeat(64));
        let s = st.scan(text.as_bytes(), true);
        assert_eq!(s.last_end, Some(text.len() - 1));
        assert_eq!(s.exit, Some(text.len() - 1));
    }
}
