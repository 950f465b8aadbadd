//! The `[retention]` section: retention classes (which records, how many days), legal holds,
//! and how often the sweeper runs; parsed key by key so every problem is reported at once
//! (through the same `bad(key, reason)` sink as the rest of the configuration).
//!
//! Also the two decisions that follow from it and need no I/O: which class a record belongs to
//! ([`RetentionConfig::classify`]) and which holds cover a segment ([`Hold::covers`]), so both
//! are tested on their own.

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

const KNOWN_KEYS: &str = "classes, default_days, holds, segment_max_age_s, sweep_interval_s";
const KNOWN_CLASS_KEYS: &str = "days, match, name";
const KNOWN_HOLD_KEYS: &str = "classes, from, name, reason, until";

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

/// Reads a `[retention]` value, reporting every problem through `bad` (keys as
/// `retention.<key>`, `retention.classes[<i>].<key>`, `retention.holds[<i>].<key>`).
pub fn parse(value: &toml::Value, bad: &mut impl FnMut(&str, String)) -> Option<RetentionConfig> {
    let Some(table) = value.as_table() else {
        bad(
            "retention",
            expected("a table ([retention] with default_days)", value),
        );
        return None;
    };
    let mut count = 0usize;
    let mut note = |key: &str, reason: String| {
        count += 1;
        bad(key, reason)
    };
    let mut cfg = RetentionConfig::default();
    let mut classes_value = None;
    let mut holds_value = None;
    for (key, v) in table {
        let full = format!("retention.{key}");
        match key.as_str() {
            "default_days" => match int_in(v, MIN_DAYS, MAX_DAYS) {
                Ok(d) => cfg.default_days = d as u32,
                Err(r) => note(&full, r),
            },
            "sweep_interval_s" => match int_in(v, MIN_SWEEP_INTERVAL_S, MAX_SWEEP_INTERVAL_S) {
                Ok(s) => cfg.sweep_interval_s = s as u64,
                Err(r) => note(&full, r),
            },
            "segment_max_age_s" => match int_in(v, MIN_SEGMENT_MAX_AGE_S, MAX_SEGMENT_MAX_AGE_S) {
                Ok(s) => cfg.segment_max_age_s = s as u64,
                Err(r) => note(&full, r),
            },
            "classes" => classes_value = Some(v),
            "holds" => holds_value = Some(v),
            _ => note(&full, format!("unknown key (known: {KNOWN_KEYS})")),
        }
    }
    if !table.contains_key("default_days") {
        note(
            "retention.default_days",
            "missing: how many days the default class (records no class matches) keeps \
             records; nothing is deleted on an implicit default"
                .into(),
        );
    }
    // Holds are checked against every class named, valid or not: one mistake, one problem.
    let mut declared = Vec::new();
    if let Some(v) = classes_value {
        let (rules, names) = classes(v, &mut note);
        cfg.classes = rules;
        declared = names;
    }
    declared.push(DEFAULT_CLASS.to_owned());
    if let Some(v) = holds_value {
        cfg.holds = holds(v, &declared, &mut note);
    }
    (count == 0).then_some(cfg)
}

/// The valid classes, and the name of every class that has one.
fn classes(
    value: &toml::Value,
    bad: &mut impl FnMut(&str, String),
) -> (Vec<ClassRule>, Vec<String>) {
    let mut seen: Vec<String> = Vec::new();
    let Some(items) = value.as_array() else {
        bad(
            "retention.classes",
            expected("an array of tables ([[retention.classes]])", value),
        );
        return (Vec::new(), seen);
    };
    if items.len() > MAX_CLASSES {
        bad(
            "retention.classes",
            format!("{} classes, at most {MAX_CLASSES} are allowed", items.len()),
        );
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = |key: &str| format!("retention.classes[{i}].{key}");
        let Some(t) = item.as_table() else {
            bad(
                &format!("retention.classes[{i}]"),
                expected("a table with name, days and match", item),
            );
            continue;
        };
        let mut ok = true;
        let mut rule = ClassRule {
            name: String::new(),
            days: 0,
            matches: Vec::new(),
        };
        for (key, v) in t {
            match key.as_str() {
                "name" => match v.as_str() {
                    Some(DEFAULT_CLASS) => {
                        ok = false;
                        bad(
                            &at(key),
                            format!(
                                "\"{DEFAULT_CLASS}\" is the class of records no class matches; \
                                 set its days with retention.default_days"
                            ),
                        );
                    }
                    Some(s) if valid_class_name(s) => {
                        if seen.iter().any(|n| n == s) {
                            ok = false;
                            bad(&at(key), format!("duplicate class name {s:?}"));
                        } else {
                            seen.push(s.to_owned());
                        }
                        rule.name = s.to_owned();
                    }
                    _ => {
                        if let Some(s) = v.as_str() {
                            seen.push(s.to_owned());
                        }
                        ok = false;
                        bad(
                            &at(key),
                            expected(&format!("1 to {MAX_CLASS_NAME_LEN} of a-z, 0-9 and -"), v),
                        );
                    }
                },
                "days" => match int_in(v, MIN_DAYS, MAX_DAYS) {
                    Ok(d) => rule.days = d as u32,
                    Err(r) => {
                        ok = false;
                        bad(&at(key), r);
                    }
                },
                "match" => match matches(v, &at(key), bad) {
                    Some(m) => rule.matches = m,
                    None => ok = false,
                },
                _ => {
                    ok = false;
                    bad(&at(key), format!("unknown key (known: {KNOWN_CLASS_KEYS})"));
                }
            }
        }
        for required in ["name", "days", "match"] {
            if !t.contains_key(required) {
                ok = false;
                bad(&at(required), "missing".into());
            }
        }
        if ok {
            out.push(rule);
        }
    }
    (out, seen)
}

fn matches(
    value: &toml::Value,
    key: &str,
    bad: &mut impl FnMut(&str, String),
) -> Option<Vec<AttributeMatch>> {
    let what =
        "a table of resource attribute = [values], e.g. { \"service.name\" = [\"checkout\"] }";
    let Some(t) = value.as_table().filter(|t| !t.is_empty()) else {
        bad(key, expected(what, value));
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (attr, v) in t {
        let attr_key = format!("{key}.{attr:?}");
        let name = attr.strip_prefix("resource.").unwrap_or(attr);
        if name.is_empty() {
            ok = false;
            bad(&attr_key, "an empty attribute name".into());
            continue;
        }
        let values: Option<Vec<String>> = match v {
            toml::Value::String(s) => Some(vec![s.clone()]),
            toml::Value::Array(a) if !a.is_empty() => {
                a.iter().map(|x| x.as_str().map(str::to_owned)).collect()
            }
            _ => None,
        };
        match values {
            Some(values) => out.push(AttributeMatch {
                key: format!("resource.{name}"),
                values,
            }),
            None => {
                ok = false;
                bad(
                    &attr_key,
                    expected("a string or a non-empty array of strings", v),
                );
            }
        }
    }
    ok.then_some(out)
}

fn holds(value: &toml::Value, classes: &[String], bad: &mut impl FnMut(&str, String)) -> Vec<Hold> {
    let mut seen: Vec<&str> = Vec::new();
    let Some(items) = value.as_array() else {
        bad(
            "retention.holds",
            expected("an array of tables ([[retention.holds]])", value),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = |key: &str| format!("retention.holds[{i}].{key}");
        let Some(t) = item.as_table() else {
            bad(
                &format!("retention.holds[{i}]"),
                expected("a table with name and reason", item),
            );
            continue;
        };
        let mut ok = true;
        let mut hold = Hold {
            name: String::new(),
            reason: String::new(),
            classes: HoldClasses::All,
            from_unix_ns: None,
            until_unix_ns: None,
        };
        for (key, v) in t {
            let mut fail = |reason: String| {
                ok = false;
                bad(&at(key), reason);
            };
            match key.as_str() {
                "name" => match v.as_str() {
                    Some(s) if valid_hold_name(s) => {
                        if seen.contains(&s) {
                            fail(format!("duplicate hold name {s:?}"));
                        }
                        seen.push(s);
                        hold.name = s.to_owned();
                    }
                    _ => fail(expected(
                        &format!("1 to {MAX_HOLD_NAME_LEN} of A-Z, a-z, 0-9, '.', '_' and '-'"),
                        v,
                    )),
                },
                "reason" => match v.as_str() {
                    Some(s) if !s.trim().is_empty() => hold.reason = s.to_owned(),
                    _ => fail(expected("a non-empty string (why data is held)", v)),
                },
                "classes" => match hold_classes(v, classes) {
                    Ok(c) => hold.classes = c,
                    Err(r) => fail(r),
                },
                "from" => match instant(v) {
                    Ok(ns) => hold.from_unix_ns = Some(ns),
                    Err(r) => fail(r),
                },
                "until" => match instant(v) {
                    Ok(ns) => hold.until_unix_ns = Some(ns),
                    Err(r) => fail(r),
                },
                _ => fail(format!("unknown key (known: {KNOWN_HOLD_KEYS})")),
            }
        }
        for required in ["name", "reason"] {
            if !t.contains_key(required) {
                ok = false;
                bad(&at(required), "missing".into());
            }
        }
        if let (Some(from), Some(until)) = (hold.from_unix_ns, hold.until_unix_ns)
            && from > until
        {
            ok = false;
            bad(&at("until"), "is before from".into());
        }
        if ok {
            out.push(hold);
        }
    }
    out
}

fn valid_hold_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_HOLD_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn hold_classes(v: &toml::Value, classes: &[String]) -> Result<HoldClasses, String> {
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
fn instant(v: &toml::Value) -> Result<u64, String> {
    let what = "an RFC 3339 date-time with an offset (2025-01-31T00:00:00Z) or a date (2025-01-31)";
    let dt: toml::value::Datetime = match v {
        toml::Value::Datetime(d) => *d,
        toml::Value::String(s) => s.parse().map_err(|_| expected(what, v))?,
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

/// An integer in `min..=max`, or why not (shared by the `[retention]` parser).
pub fn int_in(v: &toml::Value, min: i64, max: i64) -> Result<i64, String> {
    let what = format!("an integer from {min} to {max}");
    match v.as_integer() {
        Some(i) if (min..=max).contains(&i) => Ok(i),
        Some(i) => Err(format!("expected {what}, got {i}")),
        None => Err(expected(&what, v)),
    }
}

/// "expected WHAT, got …" naming the value or its type.
pub fn expected(what: &str, got: &toml::Value) -> String {
    let got = match got {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(i) => format!("the integer {i}"),
        other => {
            let t = other.type_str();
            let article = if t.starts_with(['a', 'i']) { "an" } else { "a" };
            format!("{article} {t}")
        }
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
        let mut problems = Vec::new();
        let got = parse(&toml::Value::Table(table), &mut |k: &str, r: String| {
            problems.push(format!("{k}: {r}"))
        });
        match got {
            Some(c) if problems.is_empty() => Ok(c),
            _ => Err(problems),
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
                "retention.bogus: unknown key (known: classes, default_days, holds, \
                 segment_max_age_s, sweep_interval_s)",
                "retention.sweep_interval_s: expected an integer from 1 to 86400, got 0",
                "retention.default_days: missing: how many days the default class (records no \
                 class matches) keeps records; nothing is deleted on an implicit default",
                "retention.classes[0].days: expected an integer from 1 to 36500, got 0",
                "retention.classes[0].match.\"service.name\": expected a string or a non-empty \
                 array of strings, got an array",
                "retention.classes[0].name: expected 1 to 32 of a-z, 0-9 and -, got \"Bad Name\"",
                "retention.classes[2].match: expected a table of resource attribute = [values], \
                 e.g. { \"service.name\" = [\"checkout\"] }, got a table",
                "retention.classes[2].name: duplicate class name \"dup\"",
                "retention.classes[3].name: \"default\" is the class of records no class \
                 matches; set its days with retention.default_days",
                "retention.classes[3].match: missing",
                "retention.holds[0].classes: unknown class \"nope\" (classes: Bad Name, dup, \
                 default)",
                "retention.holds[0].from: 2025-01-01T00:00:00: a date-time needs an offset (Z \
                 or +hh:mm): which time zone is meant?",
                "retention.holds[0].reason: expected a non-empty string (why data is held), got \
                 \"\"",
                "retention.holds[1].name: duplicate hold name \"h\"",
                "retention.holds[1].until: is before from",
            ]
        );
    }

    #[test]
    fn instants_with_offsets_convert_to_utc() {
        let ns = |s: &str| instant(&toml::Value::String(s.into()));
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
        assert!(
            instant(&toml::Value::Integer(5))
                .unwrap_err()
                .contains("got the integer 5")
        );
    }
}
