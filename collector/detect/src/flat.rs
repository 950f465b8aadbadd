//! A stored record read in place: the flat JSON object's keys and scalar values, borrowed from
//! its line where they need no unescaping. This is what the engine evaluates: parsing a
//! committed record into it allocates one vector, not a map and a string per key and value
//! (the collector feeds detection every record it stores, so that is most of detection's cost).
//!
//! [`Flat::of_map`] gives the same view of an already parsed [`Record`]; every accessor answers
//! as the [`crate::record`] helpers do on the map (a duplicate key: the last one counts, as in
//! the map).

use crate::record::Record;
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

/// A flat record's top-level keys and values, in the line's order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flat<'a> {
    fields: Vec<(Cow<'a, str>, Scalar<'a>)>,
}

impl<'a> Flat<'a> {
    /// Reads one stored record (a JSON object, as the store keeps it).
    pub fn parse(line: &'a [u8]) -> Result<Flat<'a>, serde_json::Error> {
        serde_json::from_slice(line)
    }

    /// The view of a parsed record (borrowing from it).
    pub fn of_map(r: &'a Record) -> Flat<'a> {
        Flat {
            fields: r
                .iter()
                .map(|(k, v)| (Cow::Borrowed(k.as_str()), Scalar::of_value(v)))
                .collect(),
        }
    }

    /// Every key and value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Scalar<'a>)> {
        self.fields.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The value of `key` (the last one, if the line repeats it).
    pub fn get(&self, key: &str) -> Option<&Scalar<'a>> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// True when `key` is present, whatever its value.
    pub fn contains(&self, key: &str) -> bool {
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
        self.int("observed_time_unix_nano")
            .or_else(|| self.int("time_unix_nano"))
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
        Ok(Flat { fields })
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
    fn every_accessor_answers_as_on_the_parsed_map() {
        let line = br#"{"a":"x","e":"","n":-3,"u":18446744073709551615,"f":2.5,"g":1e3,
            "s":"42","b":true,"z":null,"arr":[1,{"k":2}],"o":{"x":[]},"esc":"a\"b\u00e9",
            "k\u00e9y":"v","a":"last"}"#;
        let flat = Flat::parse(line).unwrap();
        let map: Record = serde_json::from_slice(line).unwrap();
        let via_map = Flat::of_map(&map);
        for key in [
            "a", "e", "n", "u", "f", "g", "s", "b", "z", "arr", "o", "esc", "k\u{e9}y", "none",
        ] {
            for f in [&flat, &via_map] {
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
    fn what_is_not_an_object_is_refused() {
        for bad in [&b"[1]"[..], b"\"x\"", b"{\"a\":", b"{\"a\" 1}"] {
            assert!(
                Flat::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
