//! The reader of one stored record: a scanner over its JSON object that accepts exactly what
//! `serde_json` reading a [`Flat`](crate::flat::Flat) accepts (the whole line is validated),
//! but decodes only the values of the keys it is asked to keep ([`Keys`]). Every other value
//! is skipped: a string by searching for its closing quote eight bytes at a time (a word's
//! quotes, backslashes and control characters found with bit tricks), a number or literal by
//! its grammar, an array or object by a depth-aware walk that honours strings. That is most of
//! what detection spent per record: tokenizing and decoding each of a record's 20 to 40 values
//! when the rules read a dozen.
//!
//! A line as the store writes it (UTF-8, compact, no backslash or control character: checked
//! in one pass) is read by one loop (`compact`) that finds each string's end by its next
//! quote, matches keys straight from the line's bytes (`Keys::keeps_in`) and reads plain
//! integers itself; at anything else it gives up and the general reader below reads the line
//! from the start, so every refusal is the general reader's.
//!
//! The line is checked to be UTF-8 once, whole (the store writes UTF-8: this is the fast
//! path); then every string in it is, and a kept one is sliced from it as it is. Only a line
//! that is not UTF-8 as a whole has its strings checked one by one (`serde_json` accepts
//! invalid bytes where it ignores them, deep inside nested values).
//!
//! `serde_json`'s rules it follows (the property test in `flat::tests` compares the two on
//! arbitrary bytes): keys and top-level string values are UTF-8 checked and their escapes
//! decoded (escaped strings are rare: they are handed to `serde_json` itself), as are the keys
//! of an object one level down; strings deeper down (what `serde_json` ignores) are only
//! checked for control characters and well-formed escapes. Numbers that are not small
//! non-negative integers are read by `serde_json` too (floats, negatives, overflow).

use crate::bytes::same;
use crate::flat::{NOT_HERE, Placed, Scalar};
use crate::keys::{Kept, Keys};
use crate::record::{VIEW_KEYS, view_code};
use meshlog_format::frame::member;
use std::borrow::Cow;
use std::ops::Range;

/// Why a line is not a readable record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a readable record: {what} at byte {offset}")]
pub struct ScanError {
    /// Where the scanner stopped.
    pub offset: usize,
    /// What it found wrong.
    pub what: &'static str,
}

/// One kept key and its value.
pub(crate) type Field<'a> = (Cow<'a, str>, Scalar<'a>);

/// Scans `line`, pushing every kept key and its value onto `out` in the line's order.
pub(crate) fn scan<'a>(
    line: &'a [u8],
    keys: &Keys,
    out: &mut Vec<Field<'a>>,
) -> Result<(), ScanError> {
    let text = std::str::from_utf8(line).ok();
    let plain = text.is_some() && plain(line);
    if let (Some(text), true) = (text, plain) {
        let kept = out.len();
        if compact(line, text, keys, out) {
            return Ok(());
        }
        out.truncate(kept);
    }
    let mut s = Scan {
        b: line,
        text,
        plain,
        i: 0,
    };
    s.ws();
    if s.peek() != Some(b'{') {
        return s.err("expected a JSON object");
    }
    s.i += 1;
    s.ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            if s.peek() != Some(b'"') {
                return s.err("expected a key");
            }
            let key = s.strict_str()?;
            s.ws();
            s.expect(b':', "expected `:`")?;
            s.ws();
            if keys.keeps(key.as_bytes()) {
                let v = s.value()?;
                out.push((key, v));
            } else {
                s.skip_value()?;
            }
            s.ws();
            match s.peek() {
                Some(b',') => {
                    s.i += 1;
                    s.ws();
                }
                Some(b'}') => {
                    s.i += 1;
                    break;
                }
                _ => return s.err("expected `,` or `}`"),
            }
        }
    }
    s.ws();
    if s.i != line.len() {
        return s.err("trailing characters");
    }
    Ok(())
}

/// Reads the kept keys of a line by its member index (the writer's offsets of each key's
/// opening quote and value, see `meshlog_format::frame::PlainRecords`), without scanning the
/// rest: what the collector hands detection for records it just wrote. The line is checked to
/// be UTF-8 but not read whole (its writer, this process, is trusted to have written JSON);
/// kept values are read as [`scan`] reads them. An index that does not fit the line (offsets
/// out of order or not at a quoted key and `:`), a key written with an escape, or a value that
/// does not end where the next member starts sends the line to [`scan`] instead.
///
/// `memo` remembers which of the previous line's keys were kept: a collector's records come in
/// runs of one shape (the same keys in the same order), so most keys are compared with the
/// previous line's key at the same place rather than looked up.
///
/// A line whose shape token (see the same type) is the previous line's has the same keys in the
/// same places: only its kept members are read, each key's length checked, its text taken from
/// `keys`, and only the kept strings checked to be UTF-8.
pub(crate) fn scan_indexed<'a>(
    line: &'a [u8],
    members: &[u32],
    shape: u64,
    keys: &'a Keys,
    memo: &'a mut KeyMemo,
    out: &mut Vec<Field<'a>>,
) -> Result<Option<Placed>, ScanError> {
    let kept = out.len();
    if !members.is_empty() {
        if shape != 0 && shape == memo.shape && same_shape(line, members, keys, memo, out) {
            // Moved, not reborrowed: the fields borrow the memo from here on.
            let read = memo;
            let read: &'a KeyMemo = read;
            strings_from_memo(read, kept, out);
            return Ok((kept == 0).then_some(read.placed));
        }
        out.truncate(kept);
        memo.shape = 0;
        if indexed(line, members, keys, memo, out) {
            memo.shape = shape;
            return Ok((kept == 0).then_some(memo.placed));
        }
    }
    out.truncate(kept);
    scan(line, keys, out).map(|()| None)
}

/// The kept members of a line shaped like the memo's last one: the writer's shape token says
/// its keys are the memo's, so each kept member is read at its offsets with its key's text
/// taken from `keys` (exact keys) and only its value checked; a key whose length differs, or
/// a member that does not fit its offsets, sends the line to the full reading.
///
/// A plain string value equal to the previous line's (a run of records from one source repeats
/// its service, instance, VM, event) is not checked again: it is read from the memo, which
/// keeps the previous line's strings; the others are checked and kept. This pushes a
/// placeholder for each string; [`strings_from_memo`] fills them in.
fn same_shape<'a>(
    line: &'a [u8],
    members: &[u32],
    keys: &'a Keys,
    memo: &mut KeyMemo,
    out: &mut Vec<Field<'a>>,
) -> bool {
    if members.len() != memo.keys.len() * 2 || line.last() != Some(&b'}') {
        return false;
    }
    let KeyMemo {
        plan,
        strings,
        other_keys,
        ..
    } = memo;
    if strings.len() != plan.len() || other_keys.len() != plan.len() {
        return false;
    }
    for (p, string) in plan.iter().zip(strings.iter_mut()) {
        let Some(m) = member(line, members, p.member).filter(|m| !m.key_escaped) else {
            return false;
        };
        if m.key.len() != p.key_len {
            return false;
        }
        // A key kept by a prefix is filled in from the memo with the strings.
        let key = match p.kept {
            Kept::Exact(e) => keys.exact_str(e),
            Kept::Other => Some(""),
        };
        let Some(key) = key else {
            return false;
        };
        let (v, end) = (m.value.start, m.value.end);
        let raw = plain_string(line, v, end, m.value_escaped).and_then(|r| line.get(r));
        string.0 = raw.is_some();
        let value = match raw {
            Some(raw) => {
                if !same(string.1.as_bytes(), raw) {
                    let Ok(s) = std::str::from_utf8(raw) else {
                        return false;
                    };
                    string.1.clear();
                    string.1.push_str(s);
                }
                Scalar::Other
            }
            None => match other_value(line, v, end) {
                Some(value) => value,
                None => return false,
            },
        };
        out.push((Cow::Borrowed(key), value));
    }
    true
}

/// Fills in the string values and the keys kept by a prefix [`same_shape`] left as
/// placeholders (the fields from `from` on), borrowed from the memo.
fn strings_from_memo<'a>(memo: &'a KeyMemo, from: usize, out: &mut [Field<'a>]) {
    let fields = out.get_mut(from..).unwrap_or_default();
    let remembered = memo.strings.iter().zip(&memo.other_keys);
    for ((key, value), ((string, text), other)) in fields.iter_mut().zip(remembered) {
        if *string {
            *value = Scalar::Str(Cow::Borrowed(text));
        }
        if !other.is_empty() {
            *key = Cow::Borrowed(other);
        }
    }
}

/// Where the content of the value `line[v..end]` is when it is a string written without an
/// escape (its bytes are then the string's).
#[inline]
fn plain_string(line: &[u8], v: usize, end: usize, escaped: bool) -> Option<Range<usize>> {
    let quoted = end >= v + 2 && line.get(v) == Some(&b'"') && line.get(end - 1) == Some(&b'"');
    (quoted && !escaped).then(|| v + 1..end - 1)
}

/// The value `line[v..end]` when it is not a plain string: a plain integer, else the general
/// reader.
#[inline]
fn other_value(line: &[u8], v: usize, end: usize) -> Option<Scalar<'_>> {
    line.get(v..end)
        .and_then(plain_uint)
        .or_else(|| general_value(line, v, end))
}

/// Escapes, floats, negatives, containers: the general reader, for `line[v..end]`.
fn general_value(line: &[u8], v: usize, end: usize) -> Option<Scalar<'_>> {
    let mut s = Scan {
        b: line.get(..end).unwrap_or_default(),
        text: None,
        plain: false,
        i: v,
    };
    match s.value() {
        Ok(value) if s.i == end => Some(value),
        _ => None,
    }
}

/// The value `line[v..end]` of a kept member (`escaped`: a string written with an escape), a
/// plain string sliced from `text` (the line, known to be UTF-8).
#[inline]
fn member_value<'a>(
    line: &'a [u8],
    text: &'a str,
    v: usize,
    end: usize,
    escaped: bool,
) -> Option<Scalar<'a>> {
    match plain_string(line, v, end, escaped).and_then(|r| text.get(r)) {
        Some(s) => Some(Scalar::Str(Cow::Borrowed(s))),
        None => other_value(line, v, end),
    }
}

/// The previous line's keys and whether each was kept (see [`scan_indexed`]). One memo
/// serves one [`Keys`]: what it learned is only true of the keys it was taught with.
#[derive(Debug, Clone, Default)]
pub struct KeyMemo {
    bytes: Vec<u8>,
    /// Per member: end of its key in `bytes`, and how it is kept (`None`: not kept).
    keys: Vec<(usize, Option<Kept>)>,
    /// The shape token of the line `keys` describe whole (0: none).
    shape: u64,
    /// How to read that line's kept members (what a line of the same shape is read by).
    plan: Vec<Planned>,
    /// Where the view keys and the keys kept by a prefix are among the fields `plan` reads.
    placed: Placed,
    /// Per planned member: whether the last line's value was a plain string, and that string.
    strings: Vec<(bool, String)>,
    /// Per planned member kept by a prefix: its key (a line of the shape has the same keys).
    other_keys: Vec<String>,
}

/// One kept member of the memo's shape.
#[derive(Debug, Clone, Copy)]
struct Planned {
    /// Its place among the line's members.
    member: usize,
    /// Its key's length.
    key_len: usize,
    /// How its key is kept.
    kept: Kept,
}

impl KeyMemo {
    /// Whether the key `line[start..end]`, the `i`th of its line, is kept.
    #[inline]
    fn keeps(
        &mut self,
        keys: &Keys,
        i: usize,
        line: &[u8],
        start: usize,
        end: usize,
    ) -> Option<Kept> {
        let key = line.get(start..end).unwrap_or_default();
        let from = match i.checked_sub(1) {
            Some(p) => self.keys.get(p).map_or(usize::MAX, |k| k.0),
            None => 0,
        };
        if let Some(&(to, kept)) = self.keys.get(i)
            && self.bytes.get(from..to) == Some(key)
        {
            return kept;
        }
        // A new shape from here on.
        let kept = keys.kept_in(line, start, end);
        if from <= self.bytes.len() {
            self.keys.truncate(i);
            self.bytes.truncate(from);
            self.bytes.extend_from_slice(key);
            self.keys.push((self.bytes.len(), kept));
        }
        kept
    }
}

pub(crate) fn indexed<'a>(
    line: &'a [u8],
    members: &[u32],
    keys: &Keys,
    memo: &mut KeyMemo,
    out: &mut Vec<Field<'a>>,
) -> bool {
    let (Some(b'{'), Some(b'}')) = (line.first(), line.last()) else {
        return false;
    };
    if !members.len().is_multiple_of(2) {
        return false;
    }
    // One check of the whole line (cheaper than one per kept string); keys and values are
    // then sliced from it.
    let Ok(text) = std::str::from_utf8(line) else {
        return false;
    };
    let pairs = members.len() / 2;
    // Where the first key must start: right after `{`; each next one right after `,`.
    let mut expect = 1usize;
    for i in 0..pairs {
        let Some(m) = member(line, members, i) else {
            return false;
        };
        if m.key.start != expect + 1 {
            return false;
        }
        expect = m.value.end + 1;
        // An escaped key is decoded by the scanner: its raw bytes are not the key.
        if m.key_escaped {
            return false;
        }
        if memo.keeps(keys, i, line, m.key.start, m.key.end).is_none() {
            continue;
        }
        let Some(key) = text.get(m.key) else {
            return false;
        };
        match member_value(line, text, m.value.start, m.value.end, m.value_escaped) {
            Some(value) => out.push((Cow::Borrowed(key), value)),
            None => return false,
        }
    }
    if expect != line.len() {
        return false;
    }
    // The memo now describes this line whole.
    memo.keys.truncate(pairs);
    memo.plan.clear();
    memo.placed = Placed {
        view: [NOT_HERE; VIEW_KEYS.len()],
        prefixed: Some(0),
    };
    let mut from = 0;
    for (member, &(to, kept)) in memo.keys.iter().enumerate() {
        if let Some(kept) = kept {
            let code = match kept {
                Kept::Exact(e) => keys.exact_str(e).and_then(view_code),
                Kept::Other => None,
            };
            let at = memo.plan.len();
            if let (Some(slot), Ok(at)) = (
                code.and_then(|c| memo.placed.view.get_mut(c)),
                u16::try_from(at),
            ) {
                *slot = at;
            }
            if kept == Kept::Other {
                memo.placed.prefixed = memo.placed.prefixed.and_then(|m| {
                    // Past 64 fields the mask cannot say: readers then look at every field.
                    1u64.checked_shl(at as u32).map(|bit| m | bit)
                });
            }
            memo.plan.push(Planned {
                member,
                key_len: to.saturating_sub(from),
                kept,
            });
        }
        from = to;
    }
    // A new shape: no value is known yet; the keys kept by a prefix are known by their text
    // (the line was checked whole above).
    memo.strings.clear();
    memo.other_keys.clear();
    for p in &memo.plan {
        memo.strings.push((false, String::new()));
        let key = match p.kept {
            Kept::Other => member(line, members, p.member)
                .and_then(|m| text.get(m.key))
                .unwrap_or_default(),
            Kept::Exact(_) => "",
        };
        memo.other_keys.push(key.to_owned());
    }
    memo.keys.len() == pairs && memo.plan.len() < usize::from(NOT_HERE)
}

/// A plain non-negative integer of up to 19 digits; `None` for any other value.
#[inline]
fn plain_uint(v: &[u8]) -> Option<Scalar<'_>> {
    match v {
        [b'0'] => Some(Scalar::UInt(0)),
        [b'1'..=b'9', ..] if v.len() <= 19 => {
            let mut n = 0u64;
            for &d in v {
                if !d.is_ascii_digit() {
                    return None;
                }
                n = n * 10 + u64::from(d - b'0');
            }
            Some(Scalar::UInt(n))
        }
        _ => None,
    }
}

/// A string's content: `b[start..end]`, with or without escapes, ASCII or not (`ascii` is
/// only known when the line is not UTF-8 as a whole).
struct Span {
    start: usize,
    end: usize,
    escaped: bool,
    ascii: bool,
}

struct Scan<'a> {
    b: &'a [u8],
    /// The line, when it is UTF-8 as a whole.
    text: Option<&'a str>,
    /// The line is UTF-8 and has no backslash and no control character (what the store
    /// writes): every string ends at the next quote.
    plain: bool,
    i: usize,
}

/// True when `line` has no backslash and no byte below 0x20. One branch-free pass (the
/// compiler vectorises it), so that strings need no per-string check but their closing quote.
fn plain(line: &[u8]) -> bool {
    // Two minimum reductions (what vectorises best): of the bytes, and of the bytes xor `\`.
    let (low, backslash) = line.iter().fold((u8::MAX, u8::MAX), |(low, bs), &x| {
        (low.min(x), bs.min(x ^ b'\\'))
    });
    low >= 0x20 && backslash != 0
}

/// Each byte's lowest bit.
const LO: u64 = 0x0101_0101_0101_0101;
/// Each byte's highest bit.
const HI: u64 = 0x8080_8080_8080_8080;

/// The first quote at or after `from`, eight bytes at a time (see [`plain_end`]): inline,
/// since most strings of a record are shorter than 24 bytes.
#[inline(always)]
fn quote(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(Ok(w)) = b.get(i..i + 8).map(<[u8; 8]>::try_from) {
        let q = u64::from_le_bytes(w) ^ (LO * u64::from(b'"'));
        let m = q.wrapping_sub(LO) & !q & HI;
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?.iter().position(|&c| c == b'"').map(|k| i + k)
}

/// The first byte at or after `from` that ends a run of plain string content: a quote, a
/// backslash, a control character, or (`high`) a byte of 0x80 or more. Eight bytes at a time:
/// a byte equal to `c` is a zero byte of `x ^ c`, found by the borrow trick (`(v - LO) & !v &
/// HI` flags a zero byte exactly, and above it only bytes after a flagged one), so the lowest
/// flag of the union is the first such byte.
#[inline]
fn plain_end(b: &[u8], from: usize, high: bool) -> Option<usize> {
    let mut i = from;
    while let Some(Ok(w)) = b.get(i..i + 8).map(<[u8; 8]>::try_from) {
        let x = u64::from_le_bytes(w);
        let q = x ^ (LO * u64::from(b'"'));
        let s = x ^ (LO * u64::from(b'\\'));
        let mut t = (q.wrapping_sub(LO) & !q)
            | (s.wrapping_sub(LO) & !s)
            | (x.wrapping_sub(LO * 0x20) & !x);
        if high {
            t |= x;
        }
        let m = t & HI;
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20 || (high && c >= 0x80))
        .map(|k| i + k)
}

impl<'a> Scan<'a> {
    fn err<T>(&self, what: &'static str) -> Result<T, ScanError> {
        Err(ScanError {
            offset: self.i,
            what,
        })
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), ScanError> {
        if self.peek() != Some(c) {
            return self.err(what);
        }
        self.i += 1;
        Ok(())
    }

    /// The string whose opening quote is at `i`: finds its end (escapes well-formed as
    /// `serde_json` checks them everywhere), refuses control characters, leaves `i` after it.
    #[inline]
    fn span(&mut self) -> Result<Span, ScanError> {
        let start = self.i + 1;
        if self.plain {
            let Some(end) = quote(self.b, start) else {
                self.i = self.b.len();
                return self.err("unterminated string");
            };
            self.i = end + 1;
            return Ok(Span {
                start,
                end,
                escaped: false,
                ascii: true,
            });
        }
        let mut at = start;
        let mut escaped = false;
        let mut ascii = true;
        let high = self.text.is_none();
        loop {
            let Some(k) = plain_end(self.b, at, high) else {
                self.i = self.b.len();
                return self.err("unterminated string");
            };
            at = k;
            match self.b.get(at) {
                Some(b'"') => break,
                Some(b'\\') => {}
                Some(&c) if c >= 0x80 => {
                    ascii = false;
                    at += 1;
                    continue;
                }
                _ => {
                    self.i = at;
                    return self.err("control character in a string");
                }
            }
            escaped = true;
            match self.b.get(at + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => at += 2,
                Some(b'u') => {
                    let hex = self.b.get(at + 2..at + 6);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        self.i = at;
                        return self.err("invalid \\u escape");
                    }
                    at += 6;
                }
                _ => {
                    self.i = at;
                    return self.err("invalid escape");
                }
            }
        }
        self.i = at + 1;
        Ok(Span {
            start,
            end: at,
            escaped,
            ascii,
        })
    }

    /// A string read as `serde_json` reads keys and values it decodes: UTF-8 checked, escapes
    /// decoded (by `serde_json`, which also judges surrogates).
    #[inline]
    fn strict_str(&mut self) -> Result<Cow<'a, str>, ScanError> {
        let quote = self.i;
        let sp = self.span()?;
        let bad = ScanError {
            offset: quote,
            what: "invalid string",
        };
        if sp.escaped {
            let quoted = self.b.get(quote..=sp.end).unwrap_or_default();
            return serde_json::from_slice::<String>(quoted)
                .map(Cow::Owned)
                .map_err(|_| bad);
        }
        if let Some(text) = self.text {
            // Quotes are ASCII: the content of a string of a UTF-8 line is UTF-8.
            return text.get(sp.start..sp.end).map(Cow::Borrowed).ok_or(bad);
        }
        let body = self.b.get(sp.start..sp.end).unwrap_or_default();
        std::str::from_utf8(body)
            .map(Cow::Borrowed)
            .map_err(|_| bad)
    }

    /// [`Scan::strict_str`] without keeping the string.
    #[inline]
    fn skip_strict_str(&mut self) -> Result<(), ScanError> {
        let quote = self.i;
        let sp = self.span()?;
        if sp.escaped || !sp.ascii {
            let bad = ScanError {
                offset: quote,
                what: "invalid string",
            };
            if sp.escaped {
                let quoted = self.b.get(quote..=sp.end).unwrap_or_default();
                serde_json::from_slice::<String>(quoted).map_err(|_| bad)?;
            } else {
                let body = self.b.get(sp.start..sp.end).unwrap_or_default();
                std::str::from_utf8(body).map_err(|_| bad)?;
            }
        }
        Ok(())
    }

    /// A number's extent: true when it is a small non-negative integer (at most 19 digits,
    /// no fraction or exponent), which this reads itself.
    #[inline]
    fn number(&mut self) -> Result<(usize, bool), ScanError> {
        let start = self.i;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.i += 1;
        }
        let int_start = self.i;
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.i += 1;
                self.digits();
            }
            _ => return self.err("invalid number"),
        }
        let int_len = self.i - int_start;
        let mut plain = true;
        if self.peek() == Some(b'.') {
            self.i += 1;
            plain = false;
            if self.digits() == 0 {
                return self.err("invalid number");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            plain = false;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return self.err("invalid number");
            }
        }
        Ok((start, !neg && plain && int_len <= 19))
    }

    #[inline]
    fn digits(&mut self) -> usize {
        let from = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - from
    }

    /// A number `serde_json` reads (at the top level it refuses floats out of range).
    fn serde_number(&self, start: usize) -> Result<Scalar<'a>, ScanError> {
        let text = self.b.get(start..self.i).unwrap_or_default();
        serde_json::from_slice::<Scalar<'_>>(text).map_err(|_| ScanError {
            offset: start,
            what: "invalid number",
        })
    }

    fn literal(&mut self, lit: &'static [u8]) -> Result<(), ScanError> {
        if self.b.get(self.i..self.i + lit.len()) != Some(lit) {
            return self.err("invalid literal");
        }
        self.i += lit.len();
        Ok(())
    }

    /// The value of a kept key.
    #[inline]
    fn value(&mut self) -> Result<Scalar<'a>, ScanError> {
        match self.peek() {
            Some(b'"') => self.strict_str().map(Scalar::Str),
            Some(b'-' | b'0'..=b'9') => {
                let (start, small) = self.number()?;
                if small {
                    let n = self
                        .b
                        .get(start..self.i)
                        .unwrap_or_default()
                        .iter()
                        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
                    Ok(Scalar::UInt(n))
                } else {
                    self.serde_number(start)
                }
            }
            Some(b't') => self.literal(b"true").map(|()| Scalar::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|()| Scalar::Bool(false)),
            Some(b'n') => self.literal(b"null").map(|()| Scalar::Other),
            Some(b'[' | b'{') => self.skip_container().map(|()| Scalar::Other),
            _ => self.err("expected a value"),
        }
    }

    /// Skips the value of a key not kept, checking it as [`Scan::value`] would.
    #[inline]
    fn skip_value(&mut self) -> Result<(), ScanError> {
        match self.peek() {
            Some(b'"') => self.skip_strict_str(),
            Some(b'-' | b'0'..=b'9') => {
                let (start, small) = self.number()?;
                if !small {
                    self.serde_number(start)?;
                }
                Ok(())
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'[' | b'{') => self.skip_container(),
            _ => self.err("expected a value"),
        }
    }

    /// A value nested in a skipped container: what `serde_json` ignores (no UTF-8 check, no
    /// float range); the grammar still holds.
    fn skip_nested_scalar(&mut self) -> Result<(), ScanError> {
        match self.peek() {
            Some(b'"') => self.span().map(drop),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            _ => self.err("expected a value"),
        }
    }

    /// An object key inside a skipped container, then its colon. One level below the record
    /// (`strict`) `serde_json` decodes keys; deeper it ignores them.
    fn nested_key(&mut self, strict: bool) -> Result<(), ScanError> {
        if self.peek() != Some(b'"') {
            return self.err("expected a key");
        }
        if strict {
            self.skip_strict_str()?;
        } else {
            self.span()?;
        }
        self.ws();
        self.expect(b':', "expected `:`")
    }

    /// The array or object at `i` (the value of a top-level key), however deep, without
    /// recursion: the open containers are kept on a stack.
    fn skip_container(&mut self) -> Result<(), ScanError> {
        let mut open = Open::default();
        'value: loop {
            self.ws();
            match self.peek() {
                Some(c @ (b'[' | b'{')) => {
                    self.i += 1;
                    self.ws();
                    let close = if c == b'[' { b']' } else { b'}' };
                    if self.peek() == Some(close) {
                        self.i += 1;
                    } else {
                        open.push(c == b'{');
                        if c == b'{' {
                            self.nested_key(open.depth == 1)?;
                        }
                        continue 'value;
                    }
                }
                _ => self.skip_nested_scalar()?,
            }
            // After a value: a comma and the next, or the close of its container.
            loop {
                let Some(object) = open.last() else {
                    return Ok(());
                };
                self.ws();
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        if object {
                            self.ws();
                            self.nested_key(open.depth == 1)?;
                        }
                        continue 'value;
                    }
                    Some(b']') if !object => {
                        self.i += 1;
                        open.pop();
                    }
                    Some(b'}') if object => {
                        self.i += 1;
                        open.pop();
                    }
                    _ => return self.err("expected `,` or the end of an array or object"),
                }
            }
        }
    }
}

/// The kinds of a skipped value's open containers, one bit each (set: an object), 64 to a
/// word: no allocation unless nested deeper than 64.
#[derive(Default)]
struct Open {
    depth: usize,
    top: u64,
    below: Vec<u64>,
}

impl Open {
    #[inline]
    fn push(&mut self, object: bool) {
        if self.depth > 0 && self.depth.is_multiple_of(64) {
            self.below.push(self.top);
            self.top = 0;
        }
        self.top = (self.top << 1) | u64::from(object);
        self.depth += 1;
    }

    #[inline]
    fn pop(&mut self) {
        self.top >>= 1;
        self.depth -= 1;
        if self.depth > 0 && self.depth.is_multiple_of(64) {
            self.top = self.below.pop().unwrap_or_default();
        }
    }

    /// Whether the innermost open container is an object.
    #[inline]
    fn last(&self) -> Option<bool> {
        (self.depth > 0).then_some(self.top & 1 == 1)
    }
}

/// Reads a plain line written compactly (no whitespace between tokens), as the store writes
/// it: false, with `out` partly filled, at anything else (whitespace, an error, a trailing
/// byte), which the general reader then reads or refuses. Keys are matched straight from the
/// line's bytes and unkept strings skipped by their next quote, with no call per string.
fn compact<'a>(b: &'a [u8], text: &'a str, keys: &Keys, out: &mut Vec<Field<'a>>) -> bool {
    let mut s = Scan {
        b,
        text: Some(text),
        plain: true,
        i: 1,
    };
    if b.first() != Some(&b'{') {
        return false;
    }
    if b.get(1) == Some(&b'}') {
        return b.len() == 2;
    }
    loop {
        if s.peek() != Some(b'"') {
            return false;
        }
        let start = s.i + 1;
        let Some(end) = quote(b, start) else {
            return false;
        };
        if b.get(end + 1) != Some(&b':') {
            return false;
        }
        s.i = end + 2;
        let kept = keys.keeps_in(b, start, end);
        let first = s.peek();
        if first == Some(b'"') {
            let from = s.i + 1;
            let Some(close) = quote(b, from) else {
                return false;
            };
            s.i = close + 1;
            if kept {
                let (Some(key), Some(v)) = (text.get(start..end), text.get(from..close)) else {
                    return false;
                };
                out.push((Cow::Borrowed(key), Scalar::Str(Cow::Borrowed(v))));
            }
        } else if let Some(b'1'..=b'9') = first {
            // A plain integer of up to 19 digits (no overflow) is read in one loop; anything
            // else is the general reader's.
            let from = s.i;
            let mut n = 0u64;
            while let Some(&d @ b'0'..=b'9') = b.get(s.i) {
                n = n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                s.i += 1;
            }
            if s.i - from > 19 || matches!(s.peek(), Some(b'.' | b'e' | b'E')) {
                return false;
            }
            if kept {
                let Some(key) = text.get(start..end) else {
                    return false;
                };
                out.push((Cow::Borrowed(key), Scalar::UInt(n)));
            }
        } else if kept {
            let (Some(key), Ok(v)) = (text.get(start..end), s.value()) else {
                return false;
            };
            out.push((Cow::Borrowed(key), v));
        } else if s.skip_value().is_err() {
            return false;
        }
        match s.peek() {
            Some(b',') => s.i += 1,
            Some(b'}') => return s.i + 1 == b.len(),
            _ => return false,
        }
    }
}
