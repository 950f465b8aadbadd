//! Percent- and form-decoding that remembers where each decoded byte came from, so a finding in
//! the decoded value maps back to a byte range of the raw value and everything around it is kept
//! exactly as it was sent.

use std::borrow::Cow;

/// How a raw value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enc {
    /// Plain text (header values, other fields).
    Plain,
    /// Percent-encoded (path segments): `%XX` decodes, `+` is a plus.
    Percent,
    /// Form-encoded (query keys and values): `%XX` decodes, `+` is a space.
    Form,
}

/// A decoded value: `bytes`, and for each decoded byte the raw offset it starts at
/// (`map[bytes.len()]` is the raw length).
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) map: Vec<usize>,
}

impl Decoded {
    /// Raw range of decoded range `[s, e)`.
    pub(crate) fn raw_span(&self, s: usize, e: usize) -> Option<(usize, usize)> {
        Some((*self.map.get(s)?, *self.map.get(e)?))
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn escape_at(raw: &[u8], i: usize) -> Option<u8> {
    if raw.get(i) != Some(&b'%') {
        return None;
    }
    let h = hex(*raw.get(i + 1)?)?;
    let l = hex(*raw.get(i + 2)?)?;
    Some(h << 4 | l)
}

/// Whether decoding `raw` under `plus_is_space` would change it.
pub(crate) fn needs_decode(raw: &[u8], plus_is_space: bool) -> bool {
    raw.iter()
        .any(|b| *b == b'%' || (plus_is_space && *b == b'+'))
}

/// Decodes `raw`. Invalid escapes (`%zz`, a trailing `%`) stay as they are.
pub(crate) fn decode(raw: &[u8], plus_is_space: bool) -> Decoded {
    let mut map = Vec::with_capacity(raw.len() + 1);
    let bytes = decode_with(raw, plus_is_space, Some(&mut map));
    map.push(raw.len());
    Decoded { bytes, map }
}

/// Decodes `raw` under `enc` without keeping the offset map; borrows when nothing changes.
pub(crate) fn decode_value(raw: &[u8], enc: Enc) -> Cow<'_, [u8]> {
    let plus = enc == Enc::Form;
    if enc == Enc::Plain || !needs_decode(raw, plus) {
        return Cow::Borrowed(raw);
    }
    Cow::Owned(decode_bytes(raw, plus))
}

/// The bytes [`decode`] gives, without the offset map: a value decoded only to be looked at (a
/// finding's text, a query key) costs one buffer, not two.
fn decode_bytes(raw: &[u8], plus_is_space: bool) -> Vec<u8> {
    decode_with(raw, plus_is_space, None)
}

/// The decoding loop: the bytes, and into `map` (when given) each output byte's offset in `raw`.
fn decode_with(raw: &[u8], plus_is_space: bool, mut map: Option<&mut Vec<usize>>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if let Some(m) = map.as_deref_mut() {
            m.push(i);
        }
        if let Some(d) = escape_at(raw, i) {
            bytes.push(d);
            i += 3;
        } else {
            bytes.push(if plus_is_space && b == b'+' { b' ' } else { b });
            i += 1;
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_without_the_map_gives_the_same_bytes() {
        let samples: [&[u8]; 9] = [
            b"jo%40example.com+x%2B1%zz%",
            b"%",
            b"%4",
            b"%41%42+",
            b"a+b+%2b",
            b"%%41",
            b"\xff%C3%A9",
            b"",
            b"plain",
        ];
        for raw in samples {
            for plus in [false, true] {
                assert_eq!(decode_bytes(raw, plus), decode(raw, plus).bytes, "{raw:?}");
            }
        }
    }

    #[test]
    fn decodes_and_maps() {
        let d = decode(b"jo%40example.com+x%2B1%zz%", true);
        assert_eq!(d.bytes, b"jo@example.com x+1%zz%");
        // "@" came from raw 2..5
        assert_eq!(d.raw_span(2, 3), Some((2, 5)));
        // whole value
        assert_eq!(d.raw_span(0, d.bytes.len()), Some((0, 26)));
        assert_eq!(d.raw_span(0, 99), None);
        let d = decode(b"a+b", false);
        assert_eq!(d.bytes, b"a+b");
    }

    #[test]
    fn decode_value_borrows_when_clean() {
        assert!(matches!(decode_value(b"abc", Enc::Form), Cow::Borrowed(_)));
        assert!(matches!(
            decode_value(b"a%20c", Enc::Plain),
            Cow::Borrowed(_)
        ));
        assert_eq!(&*decode_value(b"a+%41", Enc::Form), b"a A");
        assert_eq!(&*decode_value(b"a+%41", Enc::Percent), b"a+A");
    }
}
