//! Minimal JSON writing for the hot path: append escaped strings and integers to a byte buffer.
//!
//! The filter encodes one record per request; going through `serde_json::Value` would allocate a
//! tree per record. These helpers write straight into the batch buffer and cannot fail.

/// Appends `s` as a JSON string literal (with quotes), escaping per RFC 8259.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_escaped(out, s);
    out.push(b'"');
}

/// True when any byte of `w` (eight bytes, little-endian) needs escaping: a control byte
/// (< 0x20), `"`, `\` or DEL. Bit tricks on a whole word ("SWAR"): a record is ~2 KB of mostly
/// plain text, and testing eight bytes per step took JSON escaping from ~12 instructions per
/// byte to ~2 (bench/README.md, the edge lever table).
#[inline]
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero iff the high bit of its byte in `zero(x)` is set (exact for the
    // lowest zero byte, and any flagged byte means at least one is zero: enough for "any").
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    // Bytes below 0x20: `w - 0x20` borrows into the high bit of exactly those bytes that are
    // < 0x20 and had it clear (the lowest such byte is exact, which is all "any" needs).
    let below = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    below
        | zero(w ^ (ONES * u64::from(b'"')))
        | zero(w ^ (ONES * u64::from(b'\\')))
        | zero(w ^ (ONES * 0x7f))
        != 0
}

/// Appends `s` escaped, without quotes (the caller writes them with its fixed text).
pub fn push_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Plain words go out without a look at each byte; the first word with something to escape
    // (and everything after it) goes through the byte loop. The short tail is tested as one
    // word padded with spaces: most keys and values are short and need nothing.
    let mut plain = 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in chunks.by_ref() {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        if word_needs_escape(u64::from_le_bytes(w)) {
            break;
        }
        plain += 8;
    }
    let tail = chunks.remainder();
    if plain + tail.len() == bytes.len() {
        let mut w = [b' '; 8];
        if let Some(head) = w.get_mut(..tail.len()) {
            head.copy_from_slice(tail);
        }
        if !word_needs_escape(u64::from_le_bytes(w)) {
            out.extend_from_slice(bytes);
            return;
        }
    }
    out.extend_from_slice(bytes.get(..plain).unwrap_or_default());
    push_escaped_bytes(out, bytes.get(plain..).unwrap_or_default());
}

fn push_escaped_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b));
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
}

/// Lower-case hex digit of the low nibble of `n`.
fn hex_digit(n: u8) -> u8 {
    let n = n & 0xf;
    if n < 10 { b'0' + n } else { b'a' + n - 10 }
}

/// Appends an integer as a quoted decimal string, as OTLP/JSON writes 64-bit integers.
pub fn push_int_str(out: &mut Vec<u8>, v: i64) {
    out.push(b'"');
    push_int(out, v);
    out.push(b'"');
}

/// Appends an integer as a bare JSON number.
pub fn push_int(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

/// Appends a double as OTLP/JSON writes it: a finite value as a bare JSON number in its shortest
/// round-trip form (`1`, `2`, `0.5`, `3.3333333333333335`; Rust's `Display` never writes an
/// exponent, `NaN` or `inf` for a finite value), a non-finite one as the proto3 JSON strings
/// `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub fn push_f64(out: &mut Vec<u8>, v: f64) {
    use std::io::Write as _;
    if v.is_finite() {
        // Writing to a Vec cannot fail.
        let _ = write!(out, "{v}");
    } else if v.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if v > 0.0 {
        out.extend_from_slice(b"\"Infinity\"");
    } else {
        out.extend_from_slice(b"\"-Infinity\"");
    }
}

/// Appends lower-case hex of `bytes` inside quotes.
pub fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for &b in bytes {
        out.push(hex_digit(b >> 4));
        out.push(hex_digit(b));
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(v: &str) -> String {
        let mut out = Vec::new();
        push_str(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_specials() {
        assert_eq!(s("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
        assert_eq!(s("é"), "\"é\"");
    }

    #[test]
    fn the_word_test_flags_exactly_the_bytes_the_byte_loop_escapes() {
        for b in 0u8..=255 {
            let escaped = matches!(b, b'"' | b'\\' | 0..=0x1f | 0x7f);
            for at in 0..8 {
                let mut w = [b'a'; 8];
                w[at] = b;
                assert_eq!(
                    word_needs_escape(u64::from_le_bytes(w)),
                    escaped,
                    "byte {b:#04x} at {at}"
                );
            }
        }
        // Long strings: plain words, then an escape in the middle of a later word, then more.
        let long = format!(
            "{}\"{}\u{1}é{}",
            "x".repeat(21),
            "y".repeat(13),
            "z".repeat(9)
        );
        let back: String = serde_json::from_str(&s(&long)).unwrap();
        assert_eq!(back, long);
    }

    #[test]
    fn ints() {
        for v in [0i64, 7, -7, 1234567890, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            push_int(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }

    fn f(v: f64) -> String {
        let mut out = Vec::new();
        push_f64(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn doubles() {
        assert_eq!(f(1.0), "1");
        assert_eq!(f(10.0), "10");
        assert_eq!(f(2.5), "2.5");
        assert_eq!(f(10.0 / 3.0), "3.3333333333333335");
        assert_eq!(f(f64::NAN), "\"NaN\"");
        assert_eq!(f(f64::INFINITY), "\"Infinity\"");
        assert_eq!(f(f64::NEG_INFINITY), "\"-Infinity\"");
    }

    proptest! {
        #[test]
        fn any_finite_double_is_a_json_number_that_round_trips(v in any::<f64>()) {
            prop_assume!(v.is_finite());
            let text = f(v);
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            prop_assert!(back.is_number(), "{}", text);
            // std's parser is exact (serde_json's default one may be off by an ulp on long input).
            prop_assert_eq!(text.parse::<f64>().unwrap(), v);
        }

        #[test]
        fn any_string_round_trips_through_serde(v in any::<String>()) {
            let back: String = serde_json::from_str(&s(&v)).unwrap();
            prop_assert_eq!(back, v);
        }

        #[test]
        fn any_int_round_trips(v in any::<i64>()) {
            let mut out = Vec::new();
            push_int(&mut out, v);
            prop_assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }
}
