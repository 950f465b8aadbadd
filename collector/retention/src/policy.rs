//! The `[retention]` section: retention classes (which records, how many days), legal holds,
//! and how often the sweeper runs; parsed key by key so every problem is reported at once
//! (through the same `bad(key, reason)` sink as the rest of the configuration).
//!
//! Also the two decisions that follow from it and need no I/O: which class a record belongs to
//! ([`RetentionConfig::classify`]) and which holds cover a segment ([`Hold::covers`]), so both
//! are tested on their own.

use meshlog_core::config::fields::{FieldError, Fields, kind};
pub use meshlog_format::layout::{DEFAULT_CLASS, MAX_CLASS_NAME_LEN, valid_class_name};
use meshlog_format::time::days_from_civil;
pub use meshlog_format::time::{days_ns, rfc3339};
use serde_json::{Map, Value};
use std::fmt;

/// Smallest accepted retention, days.
pub const MIN_DAYS: i64 = 1;
/// Largest accepted retention, days (100 years).
pub const MAX_DAYS: i64 = 36_500;
/// Shortest accepted sweep interval, seconds.
pub const MIN_SWEEP_INTERVAL_S: i64 = 1;
/// Longest accepted sweep interval, seconds (one day).
pub const MAX_SWEEP_INTERVAL_S: i64 = 86_400;
/// Youngest age at which a segment may be closed, seconds.
pub const MIN_SEGMENT_MAX_AGE_S: i64 = 60;
/// Oldest age a segment may reach before it is closed, seconds (30 days).
pub const MAX_SEGMENT_MAX_AGE_S: i64 = 30 * 86_400;
/// Most classes accepted (each is a store with its own writer thread and files).
pub const MAX_CLASSES: usize = 64;
/// Longest hold name, bytes.
pub const MAX_HOLD_NAME_LEN: usize = 64;

/// The `[retention]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// `default_days`: how many days the `default` class (records no class matches) keeps
    /// records, 1 to 36500. Required: no data is deleted on an implicit default.
    pub default_days: u32,
    /// `sweep_interval_s`: seconds between sweeps (one also runs at start), 1 to 86400.
    /// Default 3600.
    pub sweep_interval_s: u64,
    /// `segment_max_age_s`: a sweep closes a class's active segment once its first frame was
    /// received this long ago, seconds, 60 to 2592000, so a quiet class's data can expire
    /// whole. Default 86400. A record is deleted at most `days` + `segment_max_age_s` +
    /// `sweep_interval_s` after it was received (later if held, or the collector was stopped).
    pub segment_max_age_s: u64,
    /// `[[retention.classes]]`: the configured classes, in file order (the first match wins).
    pub classes: Vec<ClassRule>,
    /// `[[retention.holds]]`: legal holds.
    pub holds: Vec<Hold>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            default_days: 400,
            sweep_interval_s: 3600,
            segment_max_age_s: 86_400,
            classes: Vec::new(),
            holds: Vec::new(),
        }
    }
}

/// One `[[retention.classes]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassRule {
    /// `name`: 1 to 32 of `a-z 0-9 -`, unique, not `default`; also the directory name.
    pub name: String,
    /// `days`: how long records of this class are kept, 1 to 36500.
    pub days: u32,
    /// `match`: resource attribute → accepted values. A record matches when every listed
    /// attribute has one of its values (`{"service.name" = ["checkout", "cart"]}`).
    pub matches: Vec<AttributeMatch>,
}

/// One attribute condition of a class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeMatch {
    /// The resource attribute as stored in a canonical record: `resource.<attribute>`.
    pub key: String,
    /// Accepted values (one is enough).
    pub values: Vec<String>,
}

/// Which classes a hold covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldClasses {
    /// Every class, `default` included.
    All,
    /// These classes.
    Named(Vec<String>),
}

/// One `[[retention.holds]]` entry: a legal hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// `name`: 1 to 64 of `A-Z a-z 0-9 . _ -`, unique; named in the sweeper's log.
    pub name: String,
    /// `reason`: why (a ticket, a case); required, logged with the held segments.
    pub reason: String,
    /// `classes`: `"all"` or a list of class names (`default` included). Default `"all"`.
    pub classes: HoldClasses,
    /// `from`: only segments with records observed (or received) at or after this instant
    /// (RFC 3339 with an offset, or a date meaning midnight UTC), nanoseconds since the Unix
    /// epoch.
    pub from_unix_ns: Option<u64>,
    /// `until`: only segments with records observed (or received) at or before this instant.
    pub until_unix_ns: Option<u64>,
}

impl Hold {
    /// True when the hold keeps a segment of `class` whose records span `oldest_ns` to
    /// `newest_ns` (inclusive; the sweeper asks with both the observed-time and the
    /// receive-time range, and either is enough): the class is named (or all are) and the
    /// time ranges overlap.
    pub fn covers(&self, class: &str, oldest_ns: u64, newest_ns: u64) -> bool {
        let class_ok = match &self.classes {
            HoldClasses::All => true,
            HoldClasses::Named(names) => names.iter().any(|n| n == class),
        };
        class_ok
            && self.from_unix_ns.is_none_or(|from| newest_ns >= from)
            && self.until_unix_ns.is_none_or(|until| oldest_ns <= until)
    }
}

impl RetentionConfig {
    /// Every class name in index order: the configured ones, then `default`.
    pub fn class_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.classes.iter().map(|c| c.name.as_str()).collect();
        v.push(DEFAULT_CLASS);
        v
    }

    /// Days kept for the class at `index` (see [`class_names`](Self::class_names)).
    pub fn days(&self, index: usize) -> u32 {
        self.classes
            .get(index)
            .map_or(self.default_days, |c| c.days)
    }

    /// The index (see [`class_names`](Self::class_names)) of the class `record` belongs to:
    /// the first configured class whose every condition holds, else `default`.
    pub fn classify(&self, record: &Map<String, Value>) -> usize {
        self.classes
            .iter()
            .position(|c| c.matches.iter().all(|m| m.matches(record)))
            .unwrap_or(self.classes.len())
    }
}

impl AttributeMatch {
    fn matches(&self, record: &Map<String, Value>) -> bool {
        let value = match record.get(&self.key) {
            Some(Value::String(s)) => std::borrow::Cow::Borrowed(s.as_str()),
            // An integer or boolean attribute matches its decimal or `true`/`false` spelling.
            Some(v @ (Value::Number(_) | Value::Bool(_))) => std::borrow::Cow::Owned(v.to_string()),
            _ => return false,
        };
        self.values.iter().any(|v| *v == value)
    }
}

/// Reads the `[retention]` section (`fields`, at path `retention`), reporting every problem
/// into `errs` (paths `retention.<key>`, `retention.classes[<i>].<key>`,
/// `retention.holds[<i>].<key>`); `None` when anything in it is wrong.
pub fn parse(mut fields: Fields<'_>, errs: &mut Vec<FieldError>) -> Option<RetentionConfig> {
    let before = errs.len();
    let mut cfg = RetentionConfig::default();
    if fields.require(
        "default_days",
        "how many days the default class (records no class matches) keeps records; nothing \
         is deleted on an implicit default",
        errs,
    ) && let Some(d) = fields.int("default_days", MIN_DAYS..=MAX_DAYS, errs)
    {
        cfg.default_days = d as u32;
    }
    if let Some(s) = fields.int(
        "sweep_interval_s",
        MIN_SWEEP_INTERVAL_S..=MAX_SWEEP_INTERVAL_S,
        errs,
    ) {
        cfg.sweep_interval_s = s as u64;
    }
    if let Some(s) = fields.int(
        "segment_max_age_s",
        MIN_SEGMENT_MAX_AGE_S..=MAX_SEGMENT_MAX_AGE_S,
        errs,
    ) {
        cfg.segment_max_age_s = s as u64;
    }
    let classes_path = fields.child_path("classes");
    let class_items = array(fields.raw("classes"), &classes_path, errs);
    if class_items.len() > MAX_CLASSES {
        errs.push(FieldError::invalid(
            &classes_path,
            format!(
                "{} classes, at most {MAX_CLASSES} are allowed",
                class_items.len()
            ),
        ));
    }
    // Holds are checked against every class named, valid or not: one mistake, one problem.
    let mut declared = Vec::new();
    for (i, item) in class_items.iter().enumerate() {
        let item = Fields::object(format!("{classes_path}[{i}]"), Some(item), errs);
        if let Some(rule) = class(item, &mut declared, errs) {
            cfg.classes.push(rule);
        }
    }
    declared.push(DEFAULT_CLASS.to_owned());
    let holds_path = fields.child_path("holds");
    let mut seen = Vec::new();
    for (i, item) in array(fields.raw("holds"), &holds_path, errs)
        .iter()
        .enumerate()
    {
        let item = Fields::object(format!("{holds_path}[{i}]"), Some(item), errs);
        if let Some(h) = hold(item, &declared, &mut seen, errs) {
            cfg.holds.push(h);
        }
    }
    fields.finish(errs);
    (errs.len() == before).then_some(cfg)
}

/// The items of an optional array at `path` (none when absent; a problem when not an array).
fn array<'a>(v: Option<&'a Value>, path: &str, errs: &mut Vec<FieldError>) -> &'a [Value] {
    match v {
        None | Some(Value::Null) => &[],
        Some(Value::Array(a)) => a,
        Some(other) => {
            errs.push(FieldError::wrong_type(path, "an array of tables", other));
            &[]
        }
    }
}

/// One `[[retention.classes]]` entry; its name (valid or not) is added to `declared`.
fn class(
    mut t: Fields<'_>,
    declared: &mut Vec<String>,
    errs: &mut Vec<FieldError>,
) -> Option<ClassRule> {
    let before = errs.len();
    let name_path = t.child_path("name");
    let mut name = String::new();
    if t.require("name", "a class name", errs)
        && let Some(s) = t.string("name", errs)
    {
        if s == DEFAULT_CLASS {
            errs.push(FieldError::invalid(
                &name_path,
                format!(
                    "\"{DEFAULT_CLASS}\" is the class of records no class matches; set its days \
                     with retention.default_days"
                ),
            ));
        } else if !valid_class_name(&s) {
            errs.push(FieldError::invalid(
                &name_path,
                format!("expected 1 to {MAX_CLASS_NAME_LEN} of a-z, 0-9 and -, got {s:?}"),
            ));
            declared.push(s.clone());
        } else if declared.contains(&s) {
            errs.push(FieldError::invalid(
                &name_path,
                format!("duplicate class name {s:?}"),
            ));
        } else {
            declared.push(s.clone());
        }
        name = s;
    }
    let mut days = 0;
    if t.require("days", "how many days this class keeps records", errs)
        && let Some(d) = t.int("days", MIN_DAYS..=MAX_DAYS, errs)
    {
        days = d as u32;
    }
    let match_path = t.child_path("match");
    let mut matches = Vec::new();
    if t.require("match", "resource attributes to match", errs) {
        matches = attribute_matches(t.raw("match"), &match_path, errs);
    }
    t.finish(errs);
    (errs.len() == before).then_some(ClassRule {
        name,
        days,
        matches,
    })
}

fn attribute_matches(
    value: Option<&Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Vec<AttributeMatch> {
    let what =
        "a table of resource attribute = [values], e.g. { \"service.name\" = [\"checkout\"] }";
    let Some(t) = value.and_then(Value::as_object).filter(|t| !t.is_empty()) else {
        if let Some(v) = value {
            errs.push(FieldError::wrong_type(path, what, v));
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    for (attr, v) in t {
        let attr_path = format!("{path}.{attr:?}");
        let name = attr.strip_prefix("resource.").unwrap_or(attr);
        if name.is_empty() {
            errs.push(FieldError::invalid(&attr_path, "an empty attribute name"));
            continue;
        }
        let values: Option<Vec<String>> = match v {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(a) if !a.is_empty() => {
                a.iter().map(|x| x.as_str().map(str::to_owned)).collect()
            }
            _ => None,
        };
        match values {
            Some(values) => out.push(AttributeMatch {
                key: format!("resource.{name}"),
                values,
            }),
            None => errs.push(FieldError::wrong_type(
                &attr_path,
                "a string or a non-empty array of strings",
                v,
            )),
        }
    }
    out
}

/// One `[[retention.holds]]` entry, its classes checked against `classes`.
fn hold(
    mut t: Fields<'_>,
    classes: &[String],
    seen: &mut Vec<String>,
    errs: &mut Vec<FieldError>,
) -> Option<Hold> {
    let before = errs.len();
    let mut hold = Hold {
        name: String::new(),
        reason: String::new(),
        classes: HoldClasses::All,
        from_unix_ns: None,
        until_unix_ns: None,
    };
    let name_path = t.child_path("name");
    if t.require("name", "a hold name", errs)
        && let Some(s) = t.string("name", errs)
    {
        if !valid_hold_name(&s) {
            errs.push(FieldError::invalid(
                &name_path,
                format!(
                    "expected 1 to {MAX_HOLD_NAME_LEN} of A-Z, a-z, 0-9, '.', '_' and '-', got {s:?}"
                ),
            ));
        } else if seen.contains(&s) {
            errs.push(FieldError::invalid(
                &name_path,
                format!("duplicate hold name {s:?}"),
            ));
        }
        seen.push(s.clone());
        hold.name = s;
    }
    let reason_path = t.child_path("reason");
    if t.require("reason", "why data is held", errs)
        && let Some(s) = t.string("reason", errs)
    {
        if s.trim().is_empty() {
            errs.push(FieldError::invalid(
                &reason_path,
                format!("expected a non-empty string (why data is held), got {s:?}"),
            ));
        }
        hold.reason = s;
    }
    let classes_path = t.child_path("classes");
    if let Some(v) = t.raw("classes") {
        match hold_classes(v, classes) {
            Ok(c) => hold.classes = c,
            Err(r) => errs.push(FieldError::invalid(&classes_path, r)),
        }
    }
    for (key, slot) in [
        ("from", &mut hold.from_unix_ns),
        ("until", &mut hold.until_unix_ns),
    ] {
        let path = t.child_path(key);
        if let Some(v) = t.raw(key) {
            match instant(v) {
                Ok(ns) => *slot = Some(ns),
                Err(r) => errs.push(FieldError::invalid(&path, r)),
            }
        }
    }
    if let (Some(from), Some(until)) = (hold.from_unix_ns, hold.until_unix_ns)
        && from > until
    {
        errs.push(FieldError::invalid(t.child_path("until"), "is before from"));
    }
    t.finish(errs);
    (errs.len() == before).then_some(hold)
}

fn valid_hold_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_HOLD_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn hold_classes(v: &Value, classes: &[String]) -> Result<HoldClasses, String> {
    if v.as_str() == Some("all") {
        return Ok(HoldClasses::All);
    }
    let what = "\"all\" or a non-empty array of class names";
    let names = v
        .as_array()
        .filter(|a| !a.is_empty())
        .and_then(|a| {
            a.iter()
                .map(|x| x.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| expected(what, v))?;
    let unknown: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !classes.iter().any(|c| c == n))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "unknown class{} {} (classes: {})",
            if unknown.len() == 1 { "" } else { "es" },
            unknown
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            classes.join(", ")
        ));
    }
    Ok(HoldClasses::Named(names))
}

/// An RFC 3339 instant (TOML offset date-time, or a string holding one; a date alone means
/// midnight UTC) as nanoseconds since the Unix epoch.
fn instant(v: &Value) -> Result<u64, String> {
    let what = "an RFC 3339 date-time with an offset (2025-01-31T00:00:00Z) or a date (2025-01-31)";
    // A TOML date-time reaches here as its RFC 3339 text (see the collector's config reader).
    let dt: toml::value::Datetime = match v {
        Value::String(s) => s.parse().map_err(|_| expected(what, v))?,
        _ => return Err(expected(what, v)),
    };
    let Some(date) = dt.date else {
        return Err(expected(what, v));
    };
    let (secs_of_day, nanos, offset_min) = match (dt.time, dt.offset) {
        (None, None) => (0, 0, 0),
        (Some(t), Some(off)) => {
            let offset_min = match off {
                toml::value::Offset::Z => 0,
                toml::value::Offset::Custom { minutes } => i64::from(minutes),
            };
            let secs = i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second);
            (secs, i64::from(t.nanosecond), offset_min)
        }
        (Some(_), None) => {
            return Err(format!(
                "{v}: a date-time needs an offset (Z or +hh:mm): which time zone is meant?"
            ));
        }
        (None, Some(_)) => return Err(expected(what, v)),
    };
    let days = days_from_civil(
        i64::from(date.year),
        i64::from(date.month),
        i64::from(date.day),
    );
    let secs = days * 86_400 + secs_of_day - offset_min * 60;
    if secs < 0 {
        return Err(format!("{v} is before 1970"));
    }
    u64::try_from(secs)
        .ok()
        .and_then(|s| s.checked_mul(1_000_000_000))
        .and_then(|ns| ns.checked_add(nanos as u64))
        .ok_or_else(|| format!("{v} is too far in the future"))
}

/// A TOML value as the configuration walker reads it: the same tree in JSON, date-times as
/// their RFC 3339 text (which [`Hold`]'s `from` and `until` parse).
pub fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// "expected WHAT, got …" showing the value (or, for a table or an array, its kind).
fn expected(what: &str, got: &Value) -> String {
    let got = match got {
        Value::Object(_) | Value::Array(_) => kind(got).to_owned(),
        other => other.to_string(),
    };
    format!("expected {what}, got {got}")
}

impl fmt::Display for HoldClasses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HoldClasses::All => f.write_str("all"),
            HoldClasses::Named(n) => f.write_str(&n.join(", ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_text(text: &str) -> Result<RetentionConfig, Vec<String>> {
        let table: toml::Table = text.parse().unwrap();
        let doc = toml_to_json(&toml::Value::Table(table));
        let mut errs = Vec::new();
        let got = parse(
            Fields::object("retention", Some(&doc), &mut errs),
            &mut errs,
        );
        errs.sort_by(|a, b| a.path.cmp(&b.path));
        match got {
            Some(c) if errs.is_empty() => Ok(c),
            _ => Err(errs.iter().map(ToString::to_string).collect()),
        }
    }

    fn rec(v: Value) -> Map<String, Value> {
        let Value::Object(m) = v else { unreachable!() };
        m
    }

    const FULL: &str = r#"
        default_days = 400
        sweep_interval_s = 600
        segment_max_age_s = 3600
        [[classes]]
        name = "short"
        days = 30
        match = { "service.name" = ["checkout", "cart"] }
        [[classes]]
        name = "ns-audit"
        days = 2000
        match = { "resource.k8s.namespace.name" = "audit", "service.name" = ["api"] }
        [[holds]]
        name = "case-4711"
        reason = "litigation hold, ticket LEGAL-4711"
        classes = ["short"]
        from = 2025-01-01T00:00:00Z
        until = "2025-02-01"
        [[holds]]
        name = "everything"
        reason = "regulator request"
    "#;

    #[test]
    fn every_key_is_read_and_classes_keep_file_order() {
        let c = parse_text(FULL).unwrap();
        assert_eq!(c.default_days, 400);
        assert_eq!(c.sweep_interval_s, 600);
        assert_eq!(c.segment_max_age_s, 3600);
        assert_eq!(c.class_names(), ["short", "ns-audit", "default"]);
        assert_eq!(
            c.classes[1].matches,
            [
                AttributeMatch {
                    key: "resource.k8s.namespace.name".into(),
                    values: vec!["audit".into()]
                },
                AttributeMatch {
                    key: "resource.service.name".into(),
                    values: vec!["api".into()]
                },
            ]
        );
        assert_eq!((c.days(0), c.days(1), c.days(2)), (30, 2000, 400));
        let h = &c.holds[0];
        assert_eq!(h.classes, HoldClasses::Named(vec!["short".into()]));
        assert_eq!(h.from_unix_ns, Some(1_735_689_600_000_000_000));
        assert_eq!(h.until_unix_ns, Some(1_738_368_000_000_000_000));
        assert_eq!(c.holds[1].classes, HoldClasses::All);
        let d = parse_text("default_days = 7").unwrap();
        assert_eq!((d.sweep_interval_s, d.segment_max_age_s), (3600, 86_400));
    }

    #[test]
    fn the_first_matching_class_wins_and_unmatched_records_are_default() {
        let c = parse_text(FULL).unwrap();
        let class = |v: Value| c.class_names()[c.classify(&rec(v))];
        assert_eq!(class(json!({"resource.service.name": "cart"})), "short");
        assert_eq!(
            class(json!({"resource.service.name": "api", "resource.k8s.namespace.name": "audit"})),
            "ns-audit"
        );
        // Every condition must hold.
        assert_eq!(class(json!({"resource.service.name": "api"})), "default");
        // A log attribute of the same name is not a resource attribute.
        assert_eq!(class(json!({"service.name": "cart"})), "default");
        assert_eq!(class(json!({})), "default");
        let n = parse_text(
            "default_days = 1\n[[classes]]\nname = \"n\"\ndays = 1\nmatch = { port = \"8080\" }\n",
        )
        .unwrap();
        assert_eq!(n.classify(&rec(json!({"resource.port": 8080}))), 0);
        assert_eq!(n.classify(&rec(json!({"resource.port": "8081"}))), 1);
    }

    #[test]
    fn a_hold_covers_its_classes_and_overlapping_time_ranges() {
        let c = parse_text(FULL).unwrap();
        let h = &c.holds[0];
        let jan = 1_736_000_000_000_000_000; // 2025-01-04
        let dec = 1_733_000_000_000_000_000; // 2024-11-30
        let mar = 1_741_000_000_000_000_000; // 2025-03-03
        assert!(h.covers("short", jan, jan));
        assert!(h.covers("short", dec, jan), "overlaps the start");
        assert!(h.covers("short", dec, mar), "spans the range");
        assert!(!h.covers("short", dec, dec), "before from");
        assert!(!h.covers("short", mar, mar), "after until");
        assert!(!h.covers("default", jan, jan), "another class");
        assert!(c.holds[1].covers("default", 0, 0));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let p = parse_text(
            r#"
            sweep_interval_s = 0
            bogus = 1
            [[classes]]
            name = "Bad Name"
            days = 0
            match = { "service.name" = [] }
            [[classes]]
            name = "dup"
            days = 1
            match = { "service.name" = "a" }
            [[classes]]
            name = "dup"
            days = 1
            match = {}
            [[classes]]
            name = "default"
            days = 3
            [[holds]]
            name = "h"
            reason = ""
            classes = ["nope", "dup"]
            from = 2025-01-01T00:00:00
            [[holds]]
            name = "h"
            reason = "r"
            from = "2025-02-01"
            until = "2025-01-01"
            "#,
        )
        .unwrap_err();
        assert_eq!(
            p,
            [
                "retention.bogus: unknown field; expected one of: default_days, \
                 sweep_interval_s, segment_max_age_s, classes, holds",
                "retention.classes[0].days: expected an integer from 1 to 36500, got 0",
                "retention.classes[0].match.\"service.name\": expected a string or a non-empty \
                 array of strings, got an array",
                "retention.classes[0].name: expected 1 to 32 of a-z, 0-9 and -, got \"Bad Name\"",
                "retention.classes[2].match: expected a table of resource attribute = [values], \
                 e.g. { \"service.name\" = [\"checkout\"] }, got an object",
                "retention.classes[2].name: duplicate class name \"dup\"",
                "retention.classes[3].match: required: resource attributes to match",
                "retention.classes[3].name: \"default\" is the class of records no class \
                 matches; set its days with retention.default_days",
                "retention.default_days: required: how many days the default class (records no \
                 class matches) keeps records; nothing is deleted on an implicit default",
                "retention.holds[0].classes: unknown class \"nope\" (classes: Bad Name, dup, \
                 default)",
                "retention.holds[0].from: \"2025-01-01T00:00:00\": a date-time needs an offset \
                 (Z or +hh:mm): which time zone is meant?",
                "retention.holds[0].reason: expected a non-empty string (why data is held), got \
                 \"\"",
                "retention.holds[1].name: duplicate hold name \"h\"",
                "retention.holds[1].until: is before from",
                "retention.sweep_interval_s: expected an integer from 1 to 86400, got 0",
            ]
        );
    }

    #[test]
    fn instants_with_offsets_convert_to_utc() {
        let ns = |s: &str| instant(&Value::String(s.into()));
        assert_eq!(ns("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(ns("1970-01-01"), Ok(0));
        assert_eq!(ns("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(ns("2000-03-01T00:00:00.5Z"), Ok(951_868_800_500_000_000));
        assert!(
            ns("1969-12-31T23:59:59Z")
                .unwrap_err()
                .contains("before 1970")
        );
        assert!(ns("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(instant(&Value::from(5)).unwrap_err().contains("got 5"));
    }
}
