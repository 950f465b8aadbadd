//! Redaction at the collector: the filter's engine (`meshlog_core::redact`) applied in ingest to
//! records that arrive without a meshlog redaction policy, before anything is written.
//!
//! Records from the filter carry `meshlog.policy_version`: they were redacted at the edge and are
//! left alone (unless `scope = "all"`). Anything else (an application's OpenTelemetry SDK, a
//! collector forwarding logs) goes through the same detectors: every string in the record,
//! attributes, resource and scope attributes, the body and values nested in it, each treated by
//! its key ([`RedactionPolicy::attribute`]). The record then carries the counts
//! (`meshlog.redacted.<kind>`) and the policy version (`meshlog.policy_version`, or
//! `meshlog.collector.policy_version` when the filter's is already there), like the filter's.
//!
//! On by default with the secure default policy. `[redaction]` in the collector's TOML takes the
//! fields of the filter's `redaction` JSON section, plus `enabled` (default `true`) and `scope`
//! (`"unmarked"`, the default, or `"all"`).

use meshlog_core::config::fields::{FieldError, Fields};
use meshlog_core::redact::{Kind, RedactionPolicy, Summary};
use serde_json::{Map, Value};

/// The attribute the filter (and this module) stamps with the redaction policy version.
pub const POLICY_VERSION: &str = "meshlog.policy_version";
/// Where this module puts its version when a record already carries the filter's.
pub const COLLECTOR_POLICY_VERSION: &str = "meshlog.collector.policy_version";
/// Prefix of the per-kind counts.
pub const REDACTED_PREFIX: &str = "meshlog.redacted.";

/// Which records the collector redacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// Records without `meshlog.policy_version` (not redacted by a filter).
    #[default]
    Unmarked,
    /// Every record.
    All,
}

/// The collector's redaction settings, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    /// `false`: records are stored as received.
    pub enabled: bool,
    /// Which records.
    pub scope: Scope,
    /// The engine's policy.
    pub policy: RedactionPolicy,
}

impl Default for Redaction {
    fn default() -> Self {
        Redaction {
            enabled: true,
            scope: Scope::Unmarked,
            policy: RedactionPolicy::default(),
        }
    }
}

/// Keys never rewritten: the record's own structure and meshlog's bookkeeping.
fn structural(key: &str) -> bool {
    key.starts_with("meshlog.")
        || matches!(
            key,
            "trace_id" | "span_id" | "event_name" | "severity_text" | "time_unix_nano"
        )
}

impl Redaction {
    /// Off: records are stored as received.
    pub fn off() -> Self {
        Redaction {
            enabled: false,
            ..Redaction::default()
        }
    }

    /// Reads the `[redaction]` table: `enabled`, `scope`, then the filter's fields, every
    /// problem into `errs`.
    pub fn parse_section(mut t: Fields<'_>, errs: &mut Vec<FieldError>) -> Redaction {
        let enabled = t.bool("enabled", errs).unwrap_or(true);
        let scope_path = t.child_path("scope");
        let scope = match t.raw("scope") {
            None | Some(Value::Null) => Scope::Unmarked,
            Some(Value::String(s)) if s == "unmarked" => Scope::Unmarked,
            Some(Value::String(s)) if s == "all" => Scope::All,
            Some(v) => {
                errs.push(FieldError::wrong_type(
                    scope_path,
                    "\"unmarked\" (records without a meshlog policy version) or \"all\"",
                    v,
                ));
                Scope::Unmarked
            }
        };
        let policy = RedactionPolicy::parse_section(t, errs);
        Redaction {
            enabled,
            scope,
            policy,
        }
    }

    /// Whether [`apply`](Self::apply) leaves `lr`'s canonical record as it is (redaction off,
    /// or the filter already redacted it and the scope is `unmarked`), decided on the OTLP
    /// record before it is flattened.
    pub fn skips(&self, lr: &opentelemetry_proto::tonic::logs::v1::LogRecord) -> bool {
        !self.enabled
            || (self.scope == Scope::Unmarked && super::flatten::is_marked(lr, POLICY_VERSION))
    }

    /// [`skips`](Self::skips) for a record of the borrowed protobuf view.
    pub fn skips_view(&self, lr: &super::view::RecordView<'_>) -> bool {
        !self.enabled
            || (self.scope == Scope::Unmarked && super::flatten::is_view_marked(lr, POLICY_VERSION))
    }

    /// Redacts `record` in place when it is in scope; returns what was redacted.
    pub fn apply(&self, record: &mut Map<String, Value>) -> Summary {
        let mut s = Summary::new();
        if !self.enabled {
            return s;
        }
        let marked = record.get(POLICY_VERSION).is_some_and(Value::is_string);
        if marked && self.scope == Scope::Unmarked {
            return s;
        }
        let mut dropped = Vec::new();
        for (k, v) in record.iter_mut() {
            if structural(k) {
                continue;
            }
            if !self.value(k, v, &mut s) {
                dropped.push(k.clone());
            }
        }
        for k in dropped {
            record.remove(&k);
        }
        for (kind, n) in s.iter() {
            let key = format!("{REDACTED_PREFIX}{}", kind.name());
            let before = record.get(&key).and_then(Value::as_u64).unwrap_or(0);
            record.insert(key, Value::from(before + u64::from(n)));
        }
        let version_key = if marked {
            COLLECTOR_POLICY_VERSION
        } else {
            POLICY_VERSION
        };
        record.insert(version_key.into(), Value::from(self.policy.version()));
        s
    }

    /// Redacts `v` found under `key`; `false` when it is to be dropped.
    fn value(&self, key: &str, v: &mut Value, s: &mut Summary) -> bool {
        match v {
            Value::String(text) => match self.policy.attribute(key, text, s) {
                None => false,
                Some(std::borrow::Cow::Borrowed(_)) => true,
                Some(std::borrow::Cow::Owned(t)) => {
                    *text = t;
                    true
                }
            },
            Value::Array(items) => {
                for it in items.iter_mut() {
                    if !self.value(key, it, s) {
                        *it = Value::String(format!("[REDACTED:{}]", Kind::Custom.name()));
                    }
                }
                true
            }
            Value::Object(m) => {
                let mut dropped = Vec::new();
                for (k, x) in m.iter_mut() {
                    if !self.value(k, x, s) {
                        dropped.push(k.clone());
                    }
                }
                for k in dropped {
                    m.remove(&k);
                }
                true
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn unmarked_records_lose_their_secrets_everywhere() {
        let r = Redaction::default();
        let mut m = rec(json!({
            "event_name": "app.login",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "user.email": "jane.doe@example.com",
            "app.password": "hunter2!",
            "url.query": "page=2&token=abc123",
            "http.request.header.authorization": "Bearer abcdefghijklmnop",
            "resource.service.name": "checkout",
            "body": {"msg": "charged card 4111 1111 1111 1111", "nested": ["ghp_bciOx9gy1CJdObOIRpFqaDZeV7G5IfQHeVVE"]},
            "count": 3
        }));
        let s = r.apply(&mut m);
        let text = serde_json::to_string(&m).unwrap();
        for secret in [
            "jane.doe@example.com",
            "hunter2!",
            "abc123",
            "abcdefghijklmnop",
            "4111 1111 1111 1111",
            "ghp_bciOx9",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(m["resource.service.name"], "checkout");
        assert_eq!(m["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(!m.contains_key("page"), "nothing invented");
        assert!(text.contains("page=2&token="), "{text}");
        assert_eq!(m["meshlog.redacted.email"], 1);
        assert_eq!(m["meshlog.redacted.card"], 1);
        assert_eq!(m["meshlog.redacted.github_token"], 1);
        assert_eq!(m[POLICY_VERSION], r.policy.version());
        assert_eq!(s.total(), 6, "{s:?}");
    }

    #[test]
    fn filter_records_are_left_alone_unless_scope_is_all() {
        let mut m =
            rec(json!({"meshlog.policy_version": "0123456789abcdef", "note": "jo@example.com"}));
        let before = m.clone();
        assert!(Redaction::default().apply(&mut m).is_empty());
        assert_eq!(m, before);
        let all = Redaction {
            scope: Scope::All,
            ..Redaction::default()
        };
        assert_eq!(all.apply(&mut m).get(Kind::Email), 1);
        assert_eq!(m["meshlog.policy_version"], "0123456789abcdef");
        assert_eq!(m[COLLECTOR_POLICY_VERSION], all.policy.version());
        let mut m = rec(json!({"note": "jo@example.com"}));
        assert!(Redaction::off().apply(&mut m).is_empty());
        assert_eq!(m["note"], "jo@example.com");
    }

    #[test]
    fn the_section_takes_the_filter_fields_and_reports_problems() {
        let doc = json!({"enabled": false, "scope": "all", "detectors": {"email": "partial"}});
        let mut errs = Vec::new();
        let r = Redaction::parse_section(Fields::root(&doc, &mut errs), &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        assert!(!r.enabled);
        assert_eq!(r.scope, Scope::All);
        assert_ne!(r.policy.version(), RedactionPolicy::default().version());
        let doc = json!({"scope": "some", "detectors": {"emial": "mask"}, "bogus": 1});
        let mut errs = Vec::new();
        let _ = Redaction::parse_section(Fields::root(&doc, &mut errs), &mut errs);
        let paths: Vec<String> = errs.iter().map(|e| e.path.clone()).collect();
        assert_eq!(errs.len(), 3, "{paths:?}");
    }
}
