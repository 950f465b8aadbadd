//! A stored record read in place: the flat JSON object's keys and scalar values, borrowed from
//! its line where they need no unescaping. This is what the engine evaluates: parsing a
//! committed record into it allocates one vector, not a map and a string per key and value
//! (the collector feeds detection every record it stores, so that is most of detection's cost).
//! [`Flat::parse_keys`] keeps only the keys the rules read ([`Keys`]) and skips the other
//! values undecoded ([`crate::scan`]); [`Flat::parse`] keeps every key.
//!
//! [`Flat::of_map`] gives the same view of an already parsed [`Record`]; every accessor answers
//! as the [`crate::record`] helpers do on the map (a duplicate key: the last one counts, as in
//! the map). The `serde` reader ([`Flat::parse_with_serde`]) is the reference the scanner is
//! tested against.

use crate::keys::Keys;
use crate::record::Record;
use crate::scan::{self, Field, KeyMemo, ScanError};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// One top-level value of a flat record.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// A string.
    Str(Cow<'a, str>),
    /// A negative integer.
    Int(i64),
    /// A non-negative integer.
    UInt(u64),
    /// A number with a fraction or exponent.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`, an array or an object: nothing a rule reads.
    Other,
}

impl<'a> Scalar<'a> {
    /// The value as [`serde_json::Value`] holds it in a parsed record.
    fn of_value(v: &'a Value) -> Scalar<'a> {
        match v {
            Value::String(s) => Scalar::Str(Cow::Borrowed(s)),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Scalar::UInt(u)
                } else if let Some(i) = n.as_i64() {
                    Scalar::Int(i)
                } else {
                    n.as_f64().map_or(Scalar::Other, Scalar::Float)
                }
            }
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Null | Value::Array(_) | Value::Object(_) => Scalar::Other,
        }
    }

    /// A non-empty string ([`crate::record::str_of`]).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// An integer ([`crate::record::int_of`]): a number (a fraction cut off), or a decimal
    /// string, as OTLP JSON writes 64-bit integers.
    pub fn int(&self) -> Option<i64> {
        match self {
            Scalar::Int(i) => Some(*i),
            Scalar::UInt(u) => i64::try_from(*u).ok().or(Some(*u as f64 as i64)),
            Scalar::Float(f) => Some(*f as i64),
            Scalar::Str(s) => s.parse().ok(),
            Scalar::Bool(_) | Scalar::Other => None,
        }
    }

    /// An integral number that fits an `i64` ([`serde_json::Value::as_i64`]): no strings, no
    /// fractions.
    pub fn json_i64(&self) -> Option<i64> {
        match self {
            Scalar::Int(i) => Some(*i),
            Scalar::UInt(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    /// Any number as a float ([`serde_json::Value::as_f64`]).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Int(i) => Some(*i as f64),
            Scalar::UInt(u) => Some(*u as f64),
            Scalar::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as text for grouping and matching ([`crate::record::text_of`]): a non-empty
    /// string as it is, a number or boolean in its JSON spelling.
    pub fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Scalar::Str(s) if !s.is_empty() => Some(Cow::Borrowed(s)),
            Scalar::Str(_) | Scalar::Other => None,
            Scalar::Int(i) => Some(Cow::Owned(i.to_string())),
            Scalar::UInt(u) => Some(Cow::Owned(u.to_string())),
            Scalar::Float(f) => serde_json::Number::from_f64(*f).map(|n| Cow::Owned(n.to_string())),
            Scalar::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        }
    }
}

/// Where each view key is among a record's fields ([`Flat::view_at`]).
pub(crate) type ViewAt = [u16; crate::record::VIEW_KEYS.len()];

/// Where a reader put what the engine looks for among a record's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    /// The view keys' places.
    pub(crate) view: ViewAt,
    /// Bit `i`: field `i` was kept by a prefix (`None`: past 64 fields, not known).
    pub(crate) prefixed: Option<u64>,
}

impl Default for Placed {
    fn default() -> Self {
        Placed {
            view: [NOT_HERE; crate::record::VIEW_KEYS.len()],
            prefixed: None,
        }
    }
}

/// In a [`ViewAt`]: the key is not in the record (or past 65,534 fields).
pub(crate) const NOT_HERE: u16 = u16::MAX;

/// `v` emptied, as a vector of fields that may borrow from another line: the same allocation
/// (collecting a vector's own iterator into elements of the same layout reuses it in place).
pub(crate) fn recycle<'b>(mut v: Vec<Field<'_>>) -> Vec<Field<'b>> {
    v.clear();
    // `filter_map`, not `filter`: the element type changes (its lifetime), the layout not.
    #[allow(clippy::unnecessary_filter_map)]
    v.into_iter().filter_map(|_| None).collect()
}

/// Why a stored line could not be observed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The line is not a JSON object.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// One of the detector's own alert records did not read as a map.
    #[error("an alert record: {0}")]
    Alert(#[from] serde_json::Error),
}

/// A flat record's top-level keys and values, in the line's order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flat<'a> {
    fields: Vec<Field<'a>>,
    /// Where the view keys and the keys kept by a prefix are among `fields`, when the reader
    /// knew it from the line's shape; otherwise found by name when asked.
    placed: Option<Placed>,
    /// The keys it was read with, when not all: reading another one is a bug (debug builds
    /// check).
    keys: Option<&'a Keys>,
}

impl<'a> Flat<'a> {
    /// Reads one stored record (a JSON object, as the store keeps it), every key.
    pub fn parse(line: &'a [u8]) -> Result<Flat<'a>, ScanError> {
        let mut fields = Vec::with_capacity(40);
        scan::scan(line, &Keys::all(), &mut fields)?;
        Ok(Flat {
            fields,
            keys: None,
            placed: None,
        })
    }

    /// Reads one stored record keeping only `keys`: the line is checked whole (what is not a
    /// JSON object is refused, as [`Flat::parse`] refuses it), the other values are skipped.
    pub fn parse_keys(line: &'a [u8], keys: &'a Keys) -> Result<Flat<'a>, ScanError> {
        let mut fields = Vec::with_capacity(24);
        scan::scan(line, keys, &mut fields)?;
        let keys = (!keys.keeps_all()).then_some(keys);
        Ok(Flat {
            fields,
            keys,
            placed: None,
        })
    }

    /// [`Flat::parse_keys`] for a line with its member index (the offsets its writer gave, see
    /// `meshlog_format::frame::PlainRecords`): the kept values are found by the index, the rest
    /// of the line is not read. An empty or unfitting index reads the line as
    /// [`Flat::parse_keys`] does.
    /// `memo` carries what the previous line taught (see [`KeyMemo`]); one per reader. A string
    /// value may be borrowed from it (equal to the previous line's).
    pub fn parse_indexed(
        line: &'a [u8],
        members: &[u32],
        shape: u64,
        keys: &'a Keys,
        memo: &'a mut KeyMemo,
    ) -> Result<Flat<'a>, ScanError> {
        Flat::parse_indexed_into(line, members, shape, keys, memo, Vec::with_capacity(24))
    }

    /// [`Flat::parse_indexed`] into `fields` (emptied first): a reader of many lines passes the
    /// vector the previous one gave back ([`Flat::into_spare`]) and allocates nothing.
    pub(crate) fn parse_indexed_into(
        line: &'a [u8],
        members: &[u32],
        shape: u64,
        keys: &'a Keys,
        memo: &'a mut KeyMemo,
        mut fields: Vec<Field<'a>>,
    ) -> Result<Flat<'a>, ScanError> {
        fields.clear();
        let placed = scan::scan_indexed(line, members, shape, keys, memo, &mut fields)?;
        let keys = (!keys.keeps_all()).then_some(keys);
        Ok(Flat {
            fields,
            keys,
            placed,
        })
    }

    /// The emptied vector of fields, with its allocation, for the next line.
    pub(crate) fn into_spare<'b>(self) -> Vec<Field<'b>> {
        recycle(self.fields)
    }

    /// Reads one stored record with `serde_json` (the reference [`Flat::parse`] is tested
    /// against: the same records and answers).
    pub fn parse_with_serde(line: &'a [u8]) -> Result<Flat<'a>, serde_json::Error> {
        serde_json::from_slice(line)
    }

    /// The view of a parsed record (borrowing from it).
    pub fn of_map(r: &'a Record) -> Flat<'a> {
        Flat {
            fields: r
                .iter()
                .map(|(k, v)| (Cow::Borrowed(k.as_str()), Scalar::of_value(v)))
                .collect(),
            keys: None,
            placed: None,
        }
    }

    /// Debug builds: `key` must be one the record was read with.
    #[inline]
    fn check_kept(&self, key: &str) {
        debug_assert!(
            self.keys.is_none_or(|k| k.keeps(key.as_bytes())),
            "{key:?} is read but no rule declared it (Rule::keys)"
        );
    }

    /// Where each of [`crate::record::VIEW_KEYS`] is among the fields (the last one of a
    /// repeated key), as the reader found it or else by name.
    pub(crate) fn view_at(&self) -> ViewAt {
        if let Some(p) = self.placed {
            return p.view;
        }
        let mut at = [NOT_HERE; crate::record::VIEW_KEYS.len()];
        for (i, (k, _)) in self.fields.iter().enumerate() {
            if let Some(slot) = crate::record::view_code(k).and_then(|c| at.get_mut(c)) {
                *slot = u16::try_from(i).unwrap_or(NOT_HERE);
            }
        }
        at
    }

    /// The value of the field at `i` (see [`Flat::view_at`]).
    #[inline]
    pub(crate) fn value_at(&self, i: u16) -> Option<&Scalar<'a>> {
        self.fields.get(usize::from(i)).map(|(_, v)| v)
    }

    /// The fields that may have been kept by a key prefix ([`Keys::insert_prefix`]): those the
    /// reader placed so, else every field (a caller still checks the key).
    pub fn by_prefix(&self) -> impl Iterator<Item = (&str, &Scalar<'a>)> {
        let mask = self.placed.and_then(|p| p.prefixed);
        // Placed: the set bits' fields only; otherwise every field.
        let (mut bits, mut rest) = match mask {
            Some(m) => (m, self.fields.len()..self.fields.len()),
            None => (0, 0..self.fields.len()),
        };
        std::iter::from_fn(move || {
            let i = if bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                i
            } else {
                rest.next()?
            };
            self.fields.get(i).map(|(k, v)| (k.as_ref(), v))
        })
    }

    /// Every key and value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Scalar<'a>)> {
        self.fields.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The value of `key` (the last one, if the line repeats it).
    pub fn get(&self, key: &str) -> Option<&Scalar<'a>> {
        self.check_kept(key);
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// True when `key` is present, whatever its value.
    pub fn contains(&self, key: &str) -> bool {
        self.check_kept(key);
        self.fields.iter().any(|(k, _)| k == key)
    }

    /// A non-empty string attribute.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Scalar::as_str)
    }

    /// An integer attribute ([`Scalar::int`]).
    pub fn int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Scalar::int)
    }

    /// An attribute as text ([`Scalar::text`]).
    pub fn text(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key).and_then(Scalar::text)
    }

    /// When the collector received the record, else when it happened
    /// ([`crate::record::stored_time`]).
    pub fn stored_time(&self) -> u64 {
        self.int(crate::record::OBSERVED_TIME)
            .or_else(|| self.int(crate::record::TIME))
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(0)
    }
}

impl<'de> Deserialize<'de> for Flat<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FlatVisitor)
    }
}

struct FlatVisitor;

impl<'de> Visitor<'de> for FlatVisitor {
    type Value = Flat<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a flat record (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Flat<'de>, A::Error> {
        // Stored access records have 20 to 40 keys.
        let mut fields = Vec::with_capacity(m.size_hint().unwrap_or(40));
        while let Some(Key(k)) = m.next_key()? {
            fields.push((k, m.next_value()?));
        }
        Ok(Flat {
            fields,
            keys: None,
            placed: None,
        })
    }
}

/// A key, borrowed unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(s)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(s)))
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Scalar<'de>, E> {
        // As serde_json's own value: a non-negative integer is unsigned.
        Ok(u64::try_from(i).map_or(Scalar::Int(i), Scalar::UInt))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::UInt(u))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Float(f))
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(s)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }

    fn visit_none<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Scalar<'de>, A::Error> {
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Scalar<'de>, A::Error> {
        while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record;

    #[test]
    fn a_recycled_vector_of_fields_keeps_its_allocation() {
        let line = br#"{"a":"x","b":1}"#.to_vec();
        let mut v: Vec<Field<'_>> = Vec::with_capacity(24);
        scan::scan(&line, &Keys::all(), &mut v).unwrap();
        assert_eq!(v.len(), 2);
        let (at, cap) = (v.as_ptr() as usize, v.capacity());
        let again: Vec<Field<'static>> = recycle(v);
        assert!(again.is_empty());
        assert_eq!((again.as_ptr() as usize, again.capacity()), (at, cap));
    }

    #[test]
    fn every_accessor_answers_as_on_the_parsed_map() {
        let line = br#"{"a":"x","e":"","n":-3,"u":18446744073709551615,"f":2.5,"g":1e3,
            "s":"42","b":true,"z":null,"arr":[1,{"k":2}],"o":{"x":[]},"esc":"a\"b\u00e9",
            "k\u00e9y":"v","a":"last"}"#;
        let flat = Flat::parse(line).unwrap();
        let serde = Flat::parse_with_serde(line).unwrap();
        let map: Record = serde_json::from_slice(line).unwrap();
        let via_map = Flat::of_map(&map);
        let keys = [
            "a", "e", "n", "u", "f", "g", "s", "b", "z", "arr", "o", "esc", "k\u{e9}y", "none",
        ];
        let mut kept = Keys::none();
        keys.iter().for_each(|k| kept.insert(k));
        let only = Flat::parse_keys(line, &kept).unwrap();
        assert_eq!(flat.fields, serde.fields);
        for key in keys {
            for f in [&flat, &serde, &via_map, &only] {
                assert_eq!(f.str(key), record::str_of(&map, key), "{key}");
                assert_eq!(f.int(key), record::int_of(&map, key), "{key}");
                assert_eq!(
                    f.text(key).map(Cow::into_owned),
                    record::text_of(&map, key),
                    "{key}"
                );
                assert_eq!(
                    f.get(key).and_then(Scalar::json_i64),
                    map.get(key).and_then(Value::as_i64),
                    "{key}"
                );
                assert_eq!(
                    f.get(key).and_then(Scalar::as_f64),
                    map.get(key).and_then(Value::as_f64),
                    "{key}"
                );
                assert_eq!(f.contains(key), map.contains_key(key), "{key}");
            }
        }
        assert_eq!(flat.str("a"), Some("last"));
    }

    #[test]
    fn plain_keys_and_strings_are_borrowed() {
        let line = br#"{"service":"checkout","esc":"a\nb"}"#;
        let flat = Flat::parse(line).unwrap();
        let kinds: Vec<bool> = flat
            .fields
            .iter()
            .map(|(k, v)| {
                matches!(k, Cow::Borrowed(_)) && matches!(v, Scalar::Str(Cow::Borrowed(_)))
            })
            .collect();
        assert_eq!(kinds, [true, false]);
        assert_eq!(flat.str("esc"), Some("a\nb"));
    }

    #[test]
    fn compact_plain_lines_read_as_spaced_or_escaped_ones() {
        // The compact reader (no whitespace, no backslash: what the store writes) and the
        // general one give the same fields; what the compact one cannot read it hands over.
        let mut keys = Keys::none();
        for k in ["a", "k\u{e9}y", "long.key.of.twenty.b"] {
            keys.insert(k);
        }
        keys.insert_prefix("meshlog.redacted.");
        let compact = "{\"a\":\"x\",\"skip\":[1,{\"k\":\"v\"}],\"k\u{e9}y\":-2.5,\
            \"long.key.of.twenty.b\":18446744073709551615,\"meshlog.redacted.ip\":1,\"n\":null}";
        let spaced = compact.replace(',', " , ");
        let escaped = compact.replace("\"x\"", "\"\\u0078\"");
        let want = Flat::parse_keys(compact.as_bytes(), &keys).unwrap();
        assert_eq!(want.fields.len(), 4);
        for other in [&spaced, &escaped] {
            assert_eq!(
                Flat::parse_keys(other.as_bytes(), &keys).unwrap().fields,
                want.fields
            );
        }
        for bad in [
            &compact[..compact.len() - 1],
            &compact.replace("-2.5", "-2."),
            &compact.replace("[1,", "[1,,"),
            &format!("{compact}x"),
        ] {
            assert!(Flat::parse_keys(bad.as_bytes(), &keys).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_is_not_an_object_is_refused() {
        let none = Keys::none();
        for bad in [
            &b"[1]"[..],
            b"\"x\"",
            b"{\"a\":",
            b"{\"a\" 1}",
            b"",
            b"{",
            b"{}x",
            b"{\"a\":1,}",
            b"{\"a\":01}",
            b"{\"a\":1e400}",
            b"{\"a\":\"\x01\"}",
            b"{\"a\":\"\xff\"}",
            b"{\"\xff\":1}",
            b"{\"a\":\"\\x\"}",
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":[1,]}",
            b"{\"a\":{\"\xff\":1}}",
            b"{\"a\":[\"\x01\"]}",
            b"{\"a\":[}",
            b"{\"a\":tru}",
            b"{\"a\":-}",
            b"{\"a\":1.}",
        ] {
            let shown = String::from_utf8_lossy(bad);
            assert!(Flat::parse_with_serde(bad).is_err(), "serde: {shown}");
            assert!(Flat::parse(bad).is_err(), "{shown}");
            assert!(
                Flat::parse_keys(bad, &none).is_err(),
                "keeping none: {shown}"
            );
        }
        // What serde_json ignores inside nested values it does not check, nor does the scanner
        // (nor does it limit their depth).
        let deep = [&b"{\"a\":"[..], &[b'['; 300], &[b']'; 300], b"}"].concat();
        // Objects in arrays, deeper than one word of the skipper's stack.
        let mixed = format!("{{\"a\":{}1{}}}", "[{\"k\":".repeat(100), "}]".repeat(100));
        for lax in [
            &b"{\"a\":[\"\xff\"]}"[..],
            b"{\"a\":{\"k\":[1e400]}}",
            deep.as_slice(),
            mixed.as_bytes(),
        ] {
            let shown = String::from_utf8_lossy(lax);
            assert!(Flat::parse_with_serde(lax).is_ok(), "serde: {shown}");
            assert!(Flat::parse(lax).is_ok(), "{shown}");
        }
    }

    /// The scanner's answer for `line` is `serde_json`'s: the same refusals, the same fields
    /// (only the kept ones when reading with `keys`).
    fn same_as_serde(line: &[u8], keys: &Keys) -> Result<(), proptest::test_runner::TestCaseError> {
        let want = Flat::parse_with_serde(line);
        let all = Flat::parse(line);
        let only = Flat::parse_keys(line, keys);
        let shown = String::from_utf8_lossy(line);
        proptest::prop_assert_eq!(want.is_ok(), all.is_ok(), "{} {:?}", shown, all);
        proptest::prop_assert_eq!(want.is_ok(), only.is_ok(), "{}", shown);
        if let (Ok(want), Ok(all), Ok(only)) = (want, all, only) {
            proptest::prop_assert_eq!(&want.fields, &all.fields, "{}", shown);
            let kept: Vec<_> = want
                .fields
                .iter()
                .filter(|(k, _)| keys.keeps(k.as_bytes()))
                .cloned()
                .collect();
            proptest::prop_assert_eq!(kept, only.fields, "{}", shown);
        }
        Ok(())
    }

    fn some_keys() -> Keys {
        let mut k = Keys::none();
        for key in [
            "a",
            "b",
            "k\u{e9}y",
            "http.response.status_code",
            "x\"y",
            "event_name",
            "resource.service.name",
        ] {
            k.insert(key);
        }
        k.insert_prefix("meshlog.redacted.");
        k
    }

    mod property {
        use super::*;
        use proptest::prelude::*;

        /// JSON values with the awkward parts: escapes, non-ASCII, big and odd numbers.
        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(Value::from),
                "[a-z\"\\\u{0}-\u{1f}\u{e9}\u{1f600}/]{0,40}".prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                    prop::collection::btree_map("[a-c\u{e9}\"]{0,3}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn record() -> impl Strategy<Value = Vec<u8>> {
            let key = record_key();
            prop::collection::vec((key, value(), any::<bool>()), 0..8).prop_map(|kvs| {
                // Written by hand (not through a map) so that keys repeat and whitespace varies.
                let mut out = b"{".to_vec();
                for (i, (k, v, ws)) in kvs.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(if *ws { b" ,\n" } else { b"," });
                    }
                    out.extend(serde_json::to_vec(k).unwrap_or_default());
                    out.extend_from_slice(if *ws { b" : " } else { b":" });
                    out.extend(serde_json::to_vec(v).unwrap_or_default());
                }
                out.push(b'}');
                out
            })
        }

        /// Keys a rule may keep (plain, non-ASCII, escaped, a prefix) and others.
        fn record_key() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("a".to_owned()),
                Just("b".to_owned()),
                Just("k\u{e9}y".to_owned()),
                Just("x\"y".to_owned()),
                Just("meshlog.redacted.jwt".to_owned()),
                Just("http.response.status_code".to_owned()),
                Just("event_name".to_owned()),
                Just("resource.service.name".to_owned()),
                "[a-z.\u{e9}]{0,8}",
            ]
        }

        /// `kvs` written as the collector writes a record: compact, with its member index and
        /// a shape token (here a plain hash of the keys).
        fn write_indexed(kvs: &[(String, Value)]) -> (Vec<u8>, Vec<u32>, u64) {
            use std::hash::{Hash, Hasher};
            let (mut out, mut members) = (b"{".to_vec(), Vec::new());
            let mut shape = std::collections::hash_map::DefaultHasher::new();
            for (i, (k, v)) in kvs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                k.hash(&mut shape);
                // Flagged as the collector's writer flags them: written with an escape.
                let flag = |b: &[u8]| if b.contains(&b'\\') { 1 << 31 } else { 0 };
                let key = serde_json::to_vec(k).unwrap_or_default();
                members.push(out.len() as u32 | flag(&key));
                out.extend(&key);
                out.push(b':');
                let value = serde_json::to_vec(v).unwrap_or_default();
                members.push(out.len() as u32 | if v.is_string() { flag(&value) } else { 0 });
                out.extend(&value);
            }
            out.push(b'}');
            (out, members, shape.finish().max(1))
        }

        #[test]
        fn a_string_equal_to_the_previous_lines_is_read_from_the_memo_a_changed_one_from_its_line()
        {
            use serde_json::json;
            let keys = some_keys();
            let mut memo = KeyMemo::default();
            // Repeated, changed, repeated, not ASCII, then a number where a string was.
            for (service, event) in [
                (json!("checkout"), "GET"),
                (json!("checkout"), "GET"),
                (json!("cart"), "GET"),
                (json!("cart"), "GET"),
                (json!("caf\u{e9}"), "PUT"),
                (json!(7), "PUT"),
                (json!("cart"), "GET"),
            ] {
                let kvs = vec![
                    ("resource.service.name".to_owned(), service),
                    ("event_name".to_owned(), json!(event)),
                    ("a".to_owned(), json!(1)),
                ];
                let (line, members, shape) = write_indexed(&kvs);
                let by_index =
                    Flat::parse_indexed(&line, &members, shape, &keys, &mut memo).unwrap();
                let scanned = Flat::parse_keys(&line, &keys).unwrap();
                assert_eq!(
                    by_index.fields,
                    scanned.fields,
                    "{}",
                    String::from_utf8_lossy(&line)
                );
                assert_eq!(by_index.view_at(), scanned.view_at());
            }
        }

        /// A compact record as the collector writes one, with its member index and shape.
        fn indexed_record() -> impl Strategy<Value = (Vec<u8>, Vec<u32>, u64)> {
            prop::collection::vec((record_key(), value()), 0..8).prop_map(|kvs| write_indexed(&kvs))
        }

        /// A record with a few bytes changed, inserted or removed.
        fn mutated() -> impl Strategy<Value = Vec<u8>> {
            let edit = (
                any::<prop::sample::Index>(),
                0u8..3,
                any::<u8>(),
                prop::sample::select(
                    b"{}[]\":,\\ u0123456789abcdefABCDEF.eE+-tfnrl\x00\x1f\x7f\x80\xc3\xa9\xed\xff"
                        .to_vec(),
                ),
                any::<bool>(),
            );
            (record(), prop::collection::vec(edit, 1..4)).prop_map(|(mut line, edits)| {
                for (at, op, raw, pick, use_raw) in edits {
                    let b = if use_raw { raw } else { pick };
                    let i = at.index(line.len() + 1);
                    match op {
                        0 => line.insert(i, b),
                        1 if i < line.len() => line[i] = b,
                        _ if i < line.len() => {
                            line.remove(i);
                        }
                        _ => line.push(b),
                    }
                }
                line
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]

            #[test]
            fn valid_records_read_as_serde_reads_them(line in record()) {
                prop_assert!(Flat::parse_with_serde(&line).is_ok());
                same_as_serde(&line, &some_keys())?;
            }

            #[test]
            fn records_read_by_their_member_index_read_as_scanned(
                (line, members, shape) in indexed_record()
            ) {
                // Only an escaped key (`x"y`) sends the line to the scanner.
                let escaped_key = members.iter().any(|m| m & (1 << 31) != 0);
                for keys in [some_keys(), Keys::all(), Keys::none()] {
                    let used = crate::scan::indexed(
                        &line, &members, &keys, &mut KeyMemo::default(), &mut Vec::new());
                    prop_assert!(used || members.is_empty() || escaped_key);
                    let mut memo = KeyMemo::default();
                    let by_index =
                        Flat::parse_indexed(&line, &members, shape, &keys, &mut memo).unwrap();
                    let scanned = Flat::parse_keys(&line, &keys).unwrap();
                    prop_assert_eq!(by_index.fields, scanned.fields);
                }
            }

            #[test]
            fn lines_of_few_shapes_read_through_one_memo_read_as_scanned(
                shapes in prop::collection::vec(
                    prop::collection::vec(record_key(), 0..8), 1..4),
                lines in prop::collection::vec(
                    (any::<prop::sample::Index>(), prop::collection::vec(value(), 8)), 1..16)
            ) {
                // Runs of lines with the same keys and other values, as a collector writes
                // them: most take the shape path, the changes the full one.
                let keys = some_keys();
                let mut memo = KeyMemo::default();
                for (pick, values) in lines {
                    let kvs: Vec<(String, Value)> =
                        pick.get(&shapes).iter().cloned().zip(values).collect();
                    let (line, members, shape) = write_indexed(&kvs);
                    let by_index =
                        Flat::parse_indexed(&line, &members, shape, &keys, &mut memo).unwrap();
                    let scanned = Flat::parse_keys(&line, &keys).unwrap();
                    // What the reader placed is where the names say.
                    prop_assert_eq!(by_index.view_at(), scanned.view_at());
                    let redacted = |f: &Flat<'_>| -> Vec<String> {
                        f.by_prefix()
                            .filter(|(k, _)| k.starts_with("meshlog.redacted."))
                            .map(|(k, v)| format!("{k}={v:?}"))
                            .collect()
                    };
                    prop_assert_eq!(redacted(&by_index), redacted(&scanned));
                    prop_assert_eq!(by_index.fields, scanned.fields);
                }
            }

            #[test]
            fn a_damaged_member_index_never_fails_a_valid_line(
                (line, mut members, shape) in indexed_record(),
                edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u32>(), 0u8..3), 1..3)
            ) {
                let keys = some_keys();
                let mut memo = KeyMemo::default();
                // Read once whole (the memo learns the shape), then damaged under that shape.
                prop_assert!(Flat::parse_indexed(&line, &members, shape, &keys, &mut memo).is_ok());
                for (at, n, op) in edits {
                    let i = at.index(members.len() + 1);
                    match op {
                        0 => members.insert(i, n % (line.len() as u32 + 2)),
                        1 if i < members.len() => members[i] = n,
                        _ if i < members.len() => { members.remove(i); }
                        _ => members.push(n),
                    }
                }
                // The index is trusted (the collector's own writer gave it): a wrong one may
                // hide a member inside another's value, but never fails a valid line.
                prop_assert!(Flat::parse_indexed(&line, &members, shape, &keys, &mut memo).is_ok());
            }

            #[test]
            fn damaged_records_are_refused_or_read_as_serde_reads_them(line in mutated()) {
                same_as_serde(&line, &some_keys())?;
            }

            #[test]
            fn arbitrary_bytes_are_refused_or_read_as_serde_reads_them(
                line in prop::collection::vec(prop::sample::select(
                    b"{}[]\":,\\ ua0e1.-+tfnrl\x00\xc3\xa9\xff".to_vec()), 0..24)
            ) {
                same_as_serde(&line, &some_keys())?;
                same_as_serde(&line, &Keys::none())?;
            }
        }
    }
}
