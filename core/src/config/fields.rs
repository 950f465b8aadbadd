//! A path-tracking reader for configuration documents held as a [`serde_json::Value`]: the
//! filter's JSON plugin config, and any other format converted to a `Value` first (the
//! collector's TOML).
//!
//! Every reader records problems instead of stopping at the first, each a [`FieldError`] with
//! the dotted path of the field (`retention.classes[2].days`, or `$.batch.max_records` under a
//! `$` root) and a typed [`Problem`] saying what was expected, so an operator fixes a config in
//! one round. Keys no reader asked for are reported by [`Fields::finish`]: a typo must not
//! silently fall back to a default. `null` counts as absent. Messages use JSON's words (`an
//! object`, `a number`) whatever the source format.
//!
//! A leaf: it depends on nothing else in this crate, so any config reader may use it.
//!
//! ```
//! use meshlog_core::config::fields::{ConfigErrors, Fields};
//!
//! let doc = serde_json::json!({
//!     "listen": "0.0.0.0:4318",
//!     "retention": { "classes": [ { "name": "audit", "days": 400 } ] },
//! });
//! let mut errs = Vec::new();
//! let mut root = Fields::root(&doc, &mut errs);
//! let listen = root.required_string("listen", &mut errs);
//! let mut retention = root.section("retention", &mut errs);
//! let mut classes = Vec::new();
//! for mut class in retention.tables("classes", &mut errs) {
//!     let name = class.required_string("name", &mut errs);
//!     let days = class.int("days", 1..=3650, &mut errs).unwrap_or(30);
//!     class.finish(&mut errs);
//!     classes.push((name, days));
//! }
//! retention.finish(&mut errs);
//! root.finish(&mut errs);
//! let (listen, classes) = ConfigErrors::check((listen, classes), errs).unwrap();
//! assert_eq!(listen.as_deref(), Some("0.0.0.0:4318"));
//! assert_eq!(classes, [(Some("audit".to_owned()), 400)]);
//! ```

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fmt;
use std::ops::RangeInclusive;

/// What is wrong with one field. Its text (`Display`) is the [`FieldError::reason`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The document could not be parsed at all; the text says why (`not valid JSON: …`).
    Syntax(String),
    /// A key no reader asked for.
    UnknownKey {
        /// The keys that were read at that level, in reading order.
        expected: Vec<&'static str>,
    },
    /// A required field is absent (or `null`).
    Missing {
        /// What should be there (`a string`).
        expected: String,
    },
    /// The value has the wrong type.
    WrongType {
        /// What was expected (`an array of strings`).
        expected: String,
        /// What was found: the value's kind (`a number`) or the value itself.
        got: String,
    },
    /// A number outside its allowed range.
    OutOfRange {
        /// What was expected (`an integer from 1 to 9`).
        expected: String,
        /// The value found.
        got: String,
    },
    /// The value is not acceptable for another reason; the text says why.
    Invalid(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Syntax(s) | Problem::Invalid(s) => f.write_str(s),
            Problem::UnknownKey { expected } => {
                write!(f, "unknown field; expected one of: {}", expected.join(", "))
            }
            Problem::Missing { expected } => write!(f, "required: {expected}"),
            Problem::WrongType { expected, got } | Problem::OutOfRange { expected, got } => {
                write!(f, "expected {expected}, got {got}")
            }
        }
    }
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field (`retention.classes[2].days`; `$` or empty for the document).
    pub path: String,
    /// What is wrong with it, as text: `problem.to_string()`.
    pub reason: String,
    /// What is wrong with it.
    pub problem: Problem,
}

impl FieldError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, problem: Problem) -> Self {
        FieldError {
            path: path.into(),
            reason: problem.to_string(),
            problem,
        }
    }

    /// A [`Problem::WrongType`] at `path`: `expected` (`a string`), got a value of `got`'s kind.
    pub fn wrong_type(path: impl Into<String>, expected: impl Into<String>, got: &Value) -> Self {
        FieldError::new(
            path,
            Problem::WrongType {
                expected: expected.into(),
                got: kind(got).to_owned(),
            },
        )
    }

    /// A number `got` that is not `expected` (`an integer from 1 to 9`): [`Problem::OutOfRange`]
    /// when it is a number, else [`Problem::WrongType`] (the value shown either way).
    pub fn not_in_range(path: impl Into<String>, expected: impl Into<String>, got: &Value) -> Self {
        let (expected, shown) = (expected.into(), got.to_string());
        let problem = if got.is_number() {
            Problem::OutOfRange {
                expected,
                got: shown,
            }
        } else {
            Problem::WrongType {
                expected,
                got: shown,
            }
        };
        FieldError::new(path, problem)
    }

    /// A [`Problem::Missing`] at `path`: `expected` should be there.
    pub fn missing(path: impl Into<String>, expected: impl Into<String>) -> Self {
        FieldError::new(
            path,
            Problem::Missing {
                expected: expected.into(),
            },
        )
    }

    /// A [`Problem::Invalid`] at `path`: the value is unacceptable for `reason`.
    pub fn invalid(path: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError::new(path, Problem::Invalid(reason.into()))
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<FieldError>);

impl ConfigErrors {
    /// `Ok(value)` when `errs` is empty, else every problem: the last step of a read.
    pub fn check<T>(value: T, errs: Vec<FieldError>) -> Result<T, ConfigErrors> {
        if errs.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(errs))
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid meshlog configuration ({} problem", self.0.len())?;
        if self.0.len() != 1 {
            write!(f, "s")?;
        }
        write!(f, "):")?;
        for e in &self.0 {
            write!(f, " {}: {};", e.path, e.reason)?;
        }
        Ok(())
    }
}

/// Reads the fields of one object (a JSON object, a TOML table), collecting errors instead of
/// stopping at the first. Read every key you know, then call [`Fields::finish`].
pub struct Fields<'a> {
    path: String,
    obj: Option<&'a Map<String, Value>>,
    known: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    /// The document's top level, with paths relative to it (`retention.days`).
    pub fn root(doc: &'a Value, errs: &mut Vec<FieldError>) -> Self {
        Fields::object(String::new(), Some(doc), errs)
    }

    /// The object `v` found at `path`. Absent or `null` reads as an empty object; anything but
    /// an object is an error (and reads as empty).
    pub fn object(
        path: impl Into<String>,
        v: Option<&'a Value>,
        errs: &mut Vec<FieldError>,
    ) -> Self {
        let path = path.into();
        let obj = match v {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                errs.push(wrong_type(&path, "an object", other));
                None
            }
        };
        Fields {
            path,
            obj,
            known: Vec::new(),
        }
    }

    /// This object's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path of `key` in this object.
    pub fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{}", self.path, key)
        }
    }

    /// The value at `key` as it is (`Some(Null)` for an explicit `null`), marking `key` known.
    pub fn raw(&mut self, key: &'static str) -> Option<&'a Value> {
        // Readers such as `required_string` look twice; list each key once in errors.
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        self.obj?.get(key)
    }

    /// The value at `key` unless absent or `null`, marking `key` known.
    fn present(&mut self, key: &'static str) -> Option<&'a Value> {
        self.raw(key).filter(|v| !v.is_null())
    }

    /// The nested object at `key`, read like this one; absent reads as empty.
    pub fn section(&mut self, key: &'static str, errs: &mut Vec<FieldError>) -> Fields<'a> {
        let path = self.child_path(key);
        let v = self.raw(key);
        Fields::object(path, v, errs)
    }

    /// The nested object at `key`, or `None` when absent, `null` or not an object (an error).
    pub fn table(&mut self, key: &'static str, errs: &mut Vec<FieldError>) -> Option<Fields<'a>> {
        let path = self.child_path(key);
        let v = self.present(key)?;
        if v.is_object() {
            Some(Fields::object(path, Some(v), errs))
        } else {
            errs.push(wrong_type(&path, "an object", v));
            None
        }
    }

    /// The objects of the array at `key` (`key[0]`, `key[1]`, …); empty when absent. An element
    /// that is not an object, or a value that is not an array, is an error and left out.
    pub fn tables(&mut self, key: &'static str, errs: &mut Vec<FieldError>) -> Vec<Fields<'a>> {
        let path = self.child_path(key);
        match self.present(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, it)| {
                    let ipath = format!("{path}[{i}]");
                    if it.is_object() {
                        Some(Fields::object(ipath, Some(it), errs))
                    } else {
                        errs.push(wrong_type(&ipath, "an object", it));
                        None
                    }
                })
                .collect(),
            Some(other) => {
                errs.push(wrong_type(&path, "an array of objects", other));
                Vec::new()
            }
        }
    }

    /// Records [`Problem::Missing`] unless `key` is present (not `null`); `expected` says what
    /// should be there. True when present.
    pub fn require(
        &mut self,
        key: &'static str,
        expected: &str,
        errs: &mut Vec<FieldError>,
    ) -> bool {
        let path = self.child_path(key);
        let here = self.present(key).is_some();
        if !here {
            errs.push(FieldError::new(
                path,
                Problem::Missing {
                    expected: expected.to_owned(),
                },
            ));
        }
        here
    }

    /// An optional string.
    pub fn string(&mut self, key: &'static str, errs: &mut Vec<FieldError>) -> Option<String> {
        let path = self.child_path(key);
        match self.present(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                errs.push(wrong_type(&path, "a string", other));
                None
            }
        }
    }

    /// A required string: [`Problem::Missing`] when absent.
    pub fn required_string(
        &mut self,
        key: &'static str,
        errs: &mut Vec<FieldError>,
    ) -> Option<String> {
        if self.require(key, "a string", errs) {
            self.string(key, errs)
        } else {
            None
        }
    }

    /// An optional boolean.
    pub fn bool(&mut self, key: &'static str, errs: &mut Vec<FieldError>) -> Option<bool> {
        let path = self.child_path(key);
        match self.present(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                errs.push(wrong_type(&path, "a boolean", other));
                None
            }
        }
    }

    /// An optional integer within `range`.
    pub fn int(
        &mut self,
        key: &'static str,
        range: RangeInclusive<i64>,
        errs: &mut Vec<FieldError>,
    ) -> Option<i64> {
        let path = self.child_path(key);
        let v = self.present(key)?;
        let expected = || format!("an integer from {} to {}", range.start(), range.end());
        match v.as_i64() {
            Some(n) if range.contains(&n) => Some(n),
            n => {
                let got = v.to_string();
                let problem = if n.is_some() || v.is_u64() {
                    Problem::OutOfRange {
                        expected: expected(),
                        got,
                    }
                } else {
                    Problem::WrongType {
                        expected: expected(),
                        got,
                    }
                };
                errs.push(FieldError::new(path, problem));
                None
            }
        }
    }

    /// An optional number (integer or not) within `range`.
    pub fn float(
        &mut self,
        key: &'static str,
        range: RangeInclusive<f64>,
        errs: &mut Vec<FieldError>,
    ) -> Option<f64> {
        let path = self.child_path(key);
        let v = self.present(key)?;
        let expected = || format!("a number from {:?} to {:?}", range.start(), range.end());
        match v.as_f64() {
            Some(x) if range.contains(&x) => Some(x),
            Some(_) => {
                errs.push(FieldError::new(
                    path,
                    Problem::OutOfRange {
                        expected: expected(),
                        got: v.to_string(),
                    },
                ));
                None
            }
            None => {
                errs.push(wrong_type(&path, &expected(), v));
                None
            }
        }
    }

    /// An optional array of strings. Elements that are not strings are reported at `key[i]`
    /// and left out.
    pub fn strings(
        &mut self,
        key: &'static str,
        errs: &mut Vec<FieldError>,
    ) -> Option<Vec<String>> {
        let path = self.child_path(key);
        match self.present(key)? {
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, it)| match it {
                        Value::String(s) => Some(s.clone()),
                        other => {
                            errs.push(wrong_type(&format!("{path}[{i}]"), "a string", other));
                            None
                        }
                    })
                    .collect(),
            ),
            other => {
                errs.push(wrong_type(&path, "an array of strings", other));
                None
            }
        }
    }

    /// Any value serde can read, `default` when absent; on a mismatch serde's message (plus what
    /// was found) as [`Problem::Invalid`], and `default`.
    pub fn get<T: DeserializeOwned>(
        &mut self,
        key: &'static str,
        default: T,
        errs: &mut Vec<FieldError>,
    ) -> T {
        let path = self.child_path(key);
        match self.raw(key) {
            None => default,
            Some(v) => match T::deserialize(v) {
                Ok(t) => t,
                Err(e) => {
                    errs.push(FieldError::invalid(path, format!("{e}, got {}", kind(v))));
                    default
                }
            },
        }
    }

    /// A non-negative integer from `min` to `max`, `default` when absent (or on error).
    pub fn int_in(
        &mut self,
        key: &'static str,
        default: u64,
        min: u64,
        max: u64,
        errs: &mut Vec<FieldError>,
    ) -> u64 {
        let path = self.child_path(key);
        match self.raw(key) {
            None => default,
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => n,
                n => {
                    let expected = format!("an integer from {min} to {max}");
                    let got = v.to_string();
                    let problem = if n.is_some() || v.is_i64() {
                        Problem::OutOfRange { expected, got }
                    } else {
                        Problem::WrongType { expected, got }
                    };
                    errs.push(FieldError::new(path, problem));
                    default
                }
            },
        }
    }

    /// A string, `default` when absent, checked by `check` (`Some(reason)`: invalid; the value
    /// is returned anyway).
    pub fn text(
        &mut self,
        key: &'static str,
        default: &str,
        check: impl Fn(&str) -> Option<&'static str>,
        errs: &mut Vec<FieldError>,
    ) -> String {
        let path = self.child_path(key);
        let s: String = self.get(key, default.to_owned(), errs);
        if let Some(reason) = check(&s) {
            errs.push(FieldError::invalid(path, reason));
        }
        s
    }

    /// Reports every key that no reader asked for.
    pub fn finish(self, errs: &mut Vec<FieldError>) {
        let Some(obj) = self.obj else { return };
        for key in obj.keys() {
            if !self.known.contains(&key.as_str()) {
                let path = if self.path.is_empty() {
                    key.clone()
                } else {
                    format!("{}.{}", self.path, key)
                };
                errs.push(FieldError::new(
                    path,
                    Problem::UnknownKey {
                        expected: self.known.clone(),
                    },
                ));
            }
        }
    }
}

/// What kind of JSON value `v` is, for messages: `a string`, `an array`, …
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(path: &str, expected: &str, got: &Value) -> FieldError {
    FieldError::wrong_type(path, expected, got)
}

/// Parses a JSON document (empty input: `T::default()`) and reads it with `read`, which records
/// every problem in the error list; the result stands only if there was none. `path` names the
/// document in errors (`$`).
pub fn read_json<T: Default>(
    bytes: &[u8],
    path: &str,
    read: impl FnOnce(Fields<'_>, &mut Vec<FieldError>) -> T,
) -> Result<T, ConfigErrors> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| {
        ConfigErrors(vec![FieldError::new(
            path,
            Problem::Syntax(format!("not valid JSON: {e}")),
        )])
    })?;
    let mut errs = Vec::new();
    let fields = Fields::object(path, Some(&doc), &mut errs);
    let t = read(fields, &mut errs);
    ConfigErrors::check(t, errs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `(path, reason)` of every problem.
    fn pairs(errs: &[FieldError]) -> Vec<(&str, &str)> {
        errs.iter()
            .map(|e| (e.path.as_str(), e.reason.as_str()))
            .collect()
    }

    #[test]
    fn reads_every_type() {
        let doc = json!({"s": "x", "b": true, "i": 7, "f": 0.5, "l": ["a", "b"],
                         "t": {"k": "v"}, "ts": [{"n": 1}, {"n": 2}]});
        let mut errs = Vec::new();
        let mut f = Fields::root(&doc, &mut errs);
        assert_eq!(f.required_string("s", &mut errs).as_deref(), Some("x"));
        assert_eq!(f.bool("b", &mut errs), Some(true));
        assert_eq!(f.int("i", 0..=10, &mut errs), Some(7));
        assert_eq!(f.float("f", 0.0..=1.0, &mut errs), Some(0.5));
        assert_eq!(
            f.strings("l", &mut errs),
            Some(vec!["a".into(), "b".into()])
        );
        let mut t = f.table("t", &mut errs).unwrap();
        assert_eq!(t.string("k", &mut errs).as_deref(), Some("v"));
        t.finish(&mut errs);
        let ns: Vec<Option<i64>> = f
            .tables("ts", &mut errs)
            .into_iter()
            .map(|mut t| {
                let n = t.int("n", 1..=2, &mut errs);
                t.finish(&mut errs);
                n
            })
            .collect();
        assert_eq!(ns, [Some(1), Some(2)]);
        assert_eq!(f.string("absent", &mut errs), None);
        assert!(f.table("absent_table", &mut errs).is_none());
        assert!(f.tables("absent_tables", &mut errs).is_empty());
        f.finish(&mut errs);
        assert_eq!(errs, []);
    }

    #[test]
    fn unknown_keys_name_the_known_ones() {
        let doc = json!({"host": "h", "port": 1, "prot": 2});
        let mut errs = Vec::new();
        let mut f = Fields::root(&doc, &mut errs);
        f.required_string("host", &mut errs);
        f.int("port", 1..=65535, &mut errs);
        f.bool("tls", &mut errs);
        f.finish(&mut errs);
        assert_eq!(
            errs,
            [FieldError::new(
                "prot",
                Problem::UnknownKey {
                    expected: vec!["host", "port", "tls"]
                }
            )]
        );
        assert_eq!(
            errs[0].reason,
            "unknown field; expected one of: host, port, tls"
        );
    }

    #[test]
    fn wrong_types_say_what_was_expected() {
        let doc = json!({"s": 1, "b": "yes", "i": "7", "f": [], "l": "a", "t": 3, "ts": {}});
        let mut errs = Vec::new();
        let mut f = Fields::root(&doc, &mut errs);
        f.string("s", &mut errs);
        f.bool("b", &mut errs);
        f.int("i", 0..=9, &mut errs);
        f.float("f", 0.0..=1.0, &mut errs);
        f.strings("l", &mut errs);
        f.table("t", &mut errs);
        f.tables("ts", &mut errs);
        f.finish(&mut errs);
        assert!(
            errs.iter()
                .all(|e| matches!(e.problem, Problem::WrongType { .. })),
            "{errs:?}"
        );
        assert_eq!(
            pairs(&errs),
            [
                ("s", "expected a string, got a number"),
                ("b", "expected a boolean, got a string"),
                ("i", "expected an integer from 0 to 9, got \"7\""),
                ("f", "expected a number from 0.0 to 1.0, got an array"),
                ("l", "expected an array of strings, got a string"),
                ("t", "expected an object, got a number"),
                ("ts", "expected an array of objects, got an object"),
            ]
        );
    }

    #[test]
    fn out_of_range_and_missing() {
        let doc = json!({"i": 11, "neg": -1, "f": 1.5, "big": 18446744073709551615_u64});
        let mut errs = Vec::new();
        let mut f = Fields::root(&doc, &mut errs);
        assert_eq!(f.int("i", 0..=10, &mut errs), None);
        assert_eq!(f.int_in("neg", 5, 0, 10, &mut errs), 5);
        assert_eq!(f.float("f", 0.0..=1.0, &mut errs), None);
        assert_eq!(f.int("big", 0..=10, &mut errs), None);
        assert_eq!(f.required_string("name", &mut errs), None);
        f.finish(&mut errs);
        assert_eq!(
            pairs(&errs),
            [
                ("i", "expected an integer from 0 to 10, got 11"),
                ("neg", "expected an integer from 0 to 10, got -1"),
                ("f", "expected a number from 0.0 to 1.0, got 1.5"),
                (
                    "big",
                    "expected an integer from 0 to 10, got 18446744073709551615"
                ),
                ("name", "required: a string"),
            ]
        );
        assert!(matches!(errs[0].problem, Problem::OutOfRange { .. }));
        assert!(matches!(errs[1].problem, Problem::OutOfRange { .. }));
        assert!(matches!(errs[3].problem, Problem::OutOfRange { .. }));
        assert_eq!(
            errs[4].problem,
            Problem::Missing {
                expected: "a string".into()
            }
        );
    }

    #[test]
    fn nested_paths_and_every_problem_at_once() {
        let doc = json!({
            "retention": {
                "classes": [
                    {"name": "a", "days": 30},
                    "oops",
                    {"name": "c", "days": 0, "dayz": 1, "tags": ["x", 2]}
                ],
                "default_days": "ten"
            },
            "extra": null
        });
        let mut errs = Vec::new();
        let mut root = Fields::root(&doc, &mut errs);
        let mut r = root.section("retention", &mut errs);
        for mut c in r.tables("classes", &mut errs) {
            c.required_string("name", &mut errs);
            c.int("days", 1..=3650, &mut errs);
            c.strings("tags", &mut errs);
            c.finish(&mut errs);
        }
        r.int("default_days", 1..=3650, &mut errs);
        r.finish(&mut errs);
        root.finish(&mut errs);
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "retention.classes[1]",
                "retention.classes[2].days",
                "retention.classes[2].tags[1]",
                "retention.classes[2].dayz",
                "retention.default_days",
                "extra",
            ]
        );
        let e = ConfigErrors::check((), errs).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid meshlog configuration (6 problems):")
        );
    }

    #[test]
    fn a_dollar_root_keeps_json_paths() {
        let e = read_json(br#"{"a": {"b": 0}}"#, "$", |mut f, errs| {
            let mut a = f.section("a", errs);
            a.int_in("b", 1, 1, 2, errs);
            a.finish(errs);
            f.finish(errs);
        })
        .unwrap_err();
        assert_eq!(e.0[0].path, "$.a.b");
        let e = read_json(b"{", "$", |f, errs| f.finish(errs)).unwrap_err();
        assert!(matches!(e.0[0].problem, Problem::Syntax(_)), "{e}");
        assert_eq!(read_json(b" ", "$", |f, errs| f.finish(errs)), Ok(()));
    }
}
