//! Which records a query wants: a [`Filter`] built from `(name, value)` parameter pairs (the
//! CLI's flags and the HTTP API's query parameters use the same names), and
//! [`Filter::matches`] on one stored record.
//!
//! Different parameters are ANDed; repeating one (or, for `status` and `method`, listing values
//! separated by commas) ORs its values. `text` and `where` are ANDed when repeated: each must
//! hold. A bad value is a [`FilterError`] that names the parameter.

use serde_json::{Map, Value};
use std::borrow::Cow;

/// One stored record (the flat JSON object the collector writes).
pub type Record = Map<String, Value>;

/// The stored attribute names the named filters look at.
pub mod field {
    /// `--service`.
    pub const SERVICE: &str = "resource.service.name";
    /// `--namespace` (either of the two).
    pub const NAMESPACE: &str = "resource.service.namespace";
    /// `--namespace` (either of the two).
    pub const K8S_NAMESPACE: &str = "resource.k8s.namespace.name";
    /// `--tenant`: stamped by the collector from the ingest principal.
    pub const TENANT: &str = "resource.meshlog.tenant";
    /// `--status`.
    pub const STATUS: &str = "http.response.status_code";
    /// `--method`.
    pub const METHOD: &str = "http.request.method";
    /// `--route`.
    pub const ROUTE: &str = "http.route";
    /// `--principal`.
    pub const PRINCIPAL: &str = "meshlog.peer.principal";
    /// `--client`.
    pub const CLIENT: &str = "client.address";
    /// `--trace-id`.
    pub const TRACE_ID: &str = "trace_id";
    /// `--request-id`.
    pub const REQUEST_ID: &str = "meshlog.request_id";
    /// `--enduser`.
    pub const ENDUSER: &str = "enduser.id";
    /// A record's time (when the request happened).
    pub const TIME: &str = "time_unix_nano";
    /// Stands in for a zero or missing `time_unix_nano`.
    pub const OBSERVED_TIME: &str = "observed_time_unix_nano";
    /// The VM a record's sequence number belongs to.
    pub const VM_ID: &str = "resource.meshlog.vm.id";
    /// The per-VM sequence number.
    pub const SEQUENCE: &str = "meshlog.sequence";
}

/// Every parameter [`Filter::parse_param`] knows, as written on the command line (without
/// `--`) and in a URL query string (`trace_id` and `request_id` are accepted too).
pub const FILTER_PARAMS: &[&str] = &[
    "since",
    "until",
    "service",
    "namespace",
    "tenant",
    "status",
    "method",
    "route",
    "principal",
    "client",
    "trace-id",
    "request-id",
    "enduser",
    "text",
    "where",
];

/// A parameter that could not be turned into a filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// No such parameter.
    #[error("unknown parameter {name:?} (known: {known})")]
    UnknownParameter {
        /// The name as given.
        name: String,
        /// The names that would have been accepted, comma-separated.
        known: String,
    },
    /// Neither an RFC 3339 time nor a relative duration.
    #[error(
        "parameter {param}: bad time {value:?}: expected RFC 3339 (2026-01-31T12:00:00Z), a \
         duration before now (90s, 15m, 1h, 2d, 1w) or \"now\""
    )]
    BadTime {
        /// `since` or `until`.
        param: String,
        /// The value as given.
        value: String,
    },
    /// Not a status code or class.
    #[error(
        "parameter status: bad status {value:?}: expected a code from 100 to 599 (503), a class \
         1xx to 5xx (5xx), or several separated by commas (4xx,5xx)"
    )]
    BadStatus {
        /// The value as given.
        value: String,
    },
    /// Any other value of the wrong shape.
    #[error("parameter {param}: bad value {value:?}: expected {expected}")]
    BadValue {
        /// The parameter.
        param: String,
        /// The value as given.
        value: String,
        /// What it should look like.
        expected: &'static str,
    },
}

impl FilterError {
    /// The parameter at fault, as the caller spelled it.
    pub fn parameter(&self) -> &str {
        match self {
            FilterError::UnknownParameter { name, .. } => name,
            FilterError::BadTime { param, .. } | FilterError::BadValue { param, .. } => param,
            FilterError::BadStatus { .. } => "status",
        }
    }
}

/// One `status` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusMatch {
    /// Exactly this code.
    Code(u16),
    /// Any code of this class: 5 for `5xx`.
    Class(u8),
}

impl StatusMatch {
    /// Whether `code` is matched.
    pub fn matches(self, code: i64) -> bool {
        match self {
            StatusMatch::Code(c) => code == i64::from(c),
            StatusMatch::Class(k) => code / 100 == i64::from(k) && (100..600).contains(&code),
        }
    }

    fn parse(value: &str) -> Result<Vec<StatusMatch>, FilterError> {
        let bad = || FilterError::BadStatus {
            value: value.to_owned(),
        };
        let mut out = Vec::new();
        for part in value.split(',').map(str::trim) {
            let lower = part.to_ascii_lowercase();
            if let Some(digit) = lower.strip_suffix("xx") {
                match digit.parse::<u8>() {
                    Ok(k @ 1..=5) if digit.len() == 1 => out.push(StatusMatch::Class(k)),
                    _ => return Err(bad()),
                }
            } else {
                match part.parse::<u16>() {
                    Ok(c @ 100..=599) => out.push(StatusMatch::Code(c)),
                    _ => return Err(bad()),
                }
            }
        }
        Ok(out)
    }
}

/// Which records a query wants. Empty lists match everything; see the module documentation
/// for how values combine. Fields are public so the index can plan which segments and frames
/// to skip.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `since`: record time at or after, Unix ns.
    pub since_ns: Option<u64>,
    /// `until`: record time before, Unix ns.
    pub until_ns: Option<u64>,
    /// `service`: `resource.service.name`.
    pub service: Vec<String>,
    /// `namespace`: `resource.service.namespace` or `resource.k8s.namespace.name`.
    pub namespace: Vec<String>,
    /// `tenant`: `resource.meshlog.tenant`.
    pub tenant: Vec<String>,
    /// `status`: `http.response.status_code`.
    pub status: Vec<StatusMatch>,
    /// `method`: `http.request.method`, upper case.
    pub method: Vec<String>,
    /// `route`: `http.route`.
    pub route: Vec<String>,
    /// `principal`: `meshlog.peer.principal`.
    pub principal: Vec<String>,
    /// `client`: `client.address`.
    pub client: Vec<String>,
    /// `trace-id`: `trace_id`, 32 lower-case hex digits.
    pub trace_id: Vec<String>,
    /// `request-id`: `meshlog.request_id`.
    pub request_id: Vec<String>,
    /// `enduser`: `enduser.id`.
    pub enduser: Vec<String>,
    /// `text`: each must occur in some value of the record (ASCII case-insensitive); stored
    /// lower case.
    pub text: Vec<String>,
    /// `where KEY=VALUE`: each attribute must have that value (numbers by their decimal form).
    pub wheres: Vec<(String, String)>,
}

impl Filter {
    /// A filter from parameter pairs; an unknown name is an error. `now_ns` anchors relative
    /// times (`since=1h`).
    pub fn from_params<K, V>(
        params: impl IntoIterator<Item = (K, V)>,
        now_ns: u64,
    ) -> Result<Filter, FilterError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut f = Filter::default();
        for (k, v) in params {
            if !f.parse_param(k.as_ref(), v.as_ref(), now_ns)? {
                return Err(unknown_parameter(k.as_ref(), &[]));
            }
        }
        Ok(f)
    }

    /// Adds one parameter. `Ok(false)` when `name` is not a filter parameter (callers with
    /// parameters of their own, such as `limit`, handle those and reject the rest with
    /// [`unknown_parameter`]).
    pub fn parse_param(
        &mut self,
        name: &str,
        value: &str,
        now_ns: u64,
    ) -> Result<bool, FilterError> {
        let bad = |expected| FilterError::BadValue {
            param: name.to_owned(),
            value: value.to_owned(),
            expected,
        };
        let non_empty = |v: &str| {
            if v.is_empty() {
                Err(bad("a non-empty value"))
            } else {
                Ok(v.to_owned())
            }
        };
        match canonical_name(name).as_ref() {
            "since" => self.since_ns = Some(parse_time(name, value, now_ns)?),
            "until" => self.until_ns = Some(parse_time(name, value, now_ns)?),
            "service" => self.service.push(non_empty(value)?),
            "namespace" => self.namespace.push(non_empty(value)?),
            "tenant" => self.tenant.push(non_empty(value)?),
            "status" => self.status.extend(StatusMatch::parse(value)?),
            "method" => {
                for m in value.split(',').map(str::trim) {
                    if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                        return Err(bad("an HTTP method (GET), or several separated by commas"));
                    }
                    self.method.push(m.to_ascii_uppercase());
                }
            }
            "route" => self.route.push(non_empty(value)?),
            "principal" => self.principal.push(non_empty(value)?),
            "client" => self.client.push(non_empty(value)?),
            "trace-id" => {
                if value.len() != 32 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("a trace id: 32 hex digits"));
                }
                self.trace_id.push(value.to_ascii_lowercase());
            }
            "request-id" => self.request_id.push(non_empty(value)?),
            "enduser" => self.enduser.push(non_empty(value)?),
            "text" => self.text.push(non_empty(value)?.to_ascii_lowercase()),
            "where" => match value.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    self.wheres.push((k.trim().to_owned(), v.to_owned()));
                }
                _ => return Err(bad("KEY=VALUE, KEY an attribute name (url.path=/x)")),
            },
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Whether nothing is filtered.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether `record` is wanted.
    pub fn matches(&self, record: &Record) -> bool {
        if self.since_ns.is_some() || self.until_ns.is_some() {
            let Some(t) = record_time_ns(record) else {
                return false;
            };
            if self.since_ns.is_some_and(|s| t < s) || self.until_ns.is_some_and(|u| t >= u) {
                return false;
            }
        }
        let str_in = |key: &str, wanted: &[String]| {
            wanted.is_empty()
                || record
                    .get(key)
                    .is_some_and(|v| wanted.iter().any(|w| value_str(v) == w.as_str()))
        };
        if !(str_in(field::SERVICE, &self.service)
            && (str_in(field::NAMESPACE, &self.namespace)
                || str_in(field::K8S_NAMESPACE, &self.namespace))
            && str_in(field::TENANT, &self.tenant)
            && str_in(field::ROUTE, &self.route)
            && str_in(field::PRINCIPAL, &self.principal)
            && str_in(field::CLIENT, &self.client)
            && str_in(field::REQUEST_ID, &self.request_id)
            && str_in(field::ENDUSER, &self.enduser))
        {
            return false;
        }
        if !self.method.is_empty()
            && !record
                .get(field::METHOD)
                .and_then(Value::as_str)
                .is_some_and(|m| self.method.iter().any(|w| w.eq_ignore_ascii_case(m)))
        {
            return false;
        }
        if !self.trace_id.is_empty()
            && !record
                .get(field::TRACE_ID)
                .and_then(Value::as_str)
                .is_some_and(|t| self.trace_id.iter().any(|w| w.eq_ignore_ascii_case(t)))
        {
            return false;
        }
        if !self.status.is_empty()
            && !record
                .get(field::STATUS)
                .and_then(Value::as_i64)
                .is_some_and(|c| self.status.iter().any(|s| s.matches(c)))
        {
            return false;
        }
        if !self.wheres.iter().all(|(k, v)| {
            record
                .get(k)
                .is_some_and(|got| value_str(got) == v.as_str())
        }) {
            return false;
        }
        self.text.iter().all(|needle| {
            record
                .values()
                .any(|v| contains_ignore_ascii_case(&value_str(v), needle))
        })
    }
}

impl Filter {
    /// A cheap test on a record's raw JSON line, before it is parsed: false when the line
    /// cannot hold a matching record (a wanted value does not occur in it at all). True is
    /// "maybe"; [`Filter::matches`] decides. Values JSON would escape are not looked for.
    pub fn line_may_match(&self, line: &[u8]) -> bool {
        use memchr::memmem::find;
        let plain = |v: &str| !v.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
        let any_of = |wanted: &[String]| {
            wanted.is_empty()
                || wanted
                    .iter()
                    .any(|w| !plain(w) || find(line, w.as_bytes()).is_some())
        };
        if !(any_of(&self.service)
            && any_of(&self.namespace)
            && any_of(&self.tenant)
            && any_of(&self.route)
            && any_of(&self.principal)
            && any_of(&self.client)
            && any_of(&self.request_id)
            && any_of(&self.enduser)
            && self
                .wheres
                .iter()
                .all(|(_, v)| !plain(v) || find(line, v.as_bytes()).is_some()))
        {
            return false;
        }
        if self.trace_id.is_empty() && self.text.is_empty() && self.method.is_empty() {
            return true;
        }
        // Case-insensitive needles: against the line in lower case.
        let lower = line.to_ascii_lowercase();
        let any_ci = |wanted: &[String]| {
            wanted.is_empty()
                || wanted
                    .iter()
                    .any(|w| !plain(w) || find(&lower, w.to_ascii_lowercase().as_bytes()).is_some())
        };
        any_ci(&self.trace_id)
            && any_ci(&self.method)
            && self
                .text
                .iter()
                .all(|t| !plain(t) || find(&lower, t.as_bytes()).is_some())
    }
}

/// The error for a parameter neither [`Filter::parse_param`] nor the caller knows; `extra`
/// lists the caller's own names for the message.
pub fn unknown_parameter(name: &str, extra: &[&str]) -> FilterError {
    let known: Vec<&str> = FILTER_PARAMS.iter().chain(extra).copied().collect();
    FilterError::UnknownParameter {
        name: name.to_owned(),
        known: known.join(", "),
    }
}

/// `trace_id` → `trace-id`: URL-style spellings of the CLI's names.
fn canonical_name(name: &str) -> Cow<'_, str> {
    if name.contains('_') {
        Cow::Owned(name.replace('_', "-"))
    } else {
        Cow::Borrowed(name)
    }
}

/// When a record happened: `time_unix_nano`, else (zero or absent) `observed_time_unix_nano`.
pub fn record_time_ns(record: &Record) -> Option<u64> {
    record
        .get(field::TIME)
        .and_then(Value::as_u64)
        .filter(|t| *t != 0)
        .or_else(|| record.get(field::OBSERVED_TIME).and_then(Value::as_u64))
}

/// A value as text: strings as they are, numbers in decimal, anything else as JSON.
pub fn value_str(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

/// ASCII case-insensitive substring test; `needle` is lower case.
pub fn contains_ignore_ascii_case(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.is_empty()
        || h.windows(n.len())
            .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
}

/// `since`/`until`: RFC 3339, `now`, or a duration before `now_ns` (`90s`, `15m`, `1h`, `2d`,
/// `1w`).
pub fn parse_time(param: &str, value: &str, now_ns: u64) -> Result<u64, FilterError> {
    let bad = || FilterError::BadTime {
        param: param.to_owned(),
        value: value.to_owned(),
    };
    let v = value.trim();
    if v == "now" {
        return Ok(now_ns);
    }
    if let Ok(ts) = v.parse::<jiff::Timestamp>() {
        return u64::try_from(ts.as_nanosecond()).map_err(|_| bad());
    }
    let ago = parse_duration_ns(v).ok_or_else(bad)?;
    Ok(now_ns.saturating_sub(ago))
}

/// A duration written as a whole number and a unit (`90s`, `15m`, `1h`, `2d`, `1w`), in ns.
pub fn parse_duration_ns(value: &str) -> Option<u64> {
    let split = value.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = value.split_at(split);
    let n: u64 = n.parse().ok()?;
    let unit_s: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(unit_s)?.checked_mul(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

    fn rec(v: Value) -> Record {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn sample() -> Record {
        rec(json!({
            "time_unix_nano": NOW - 30 * 60 * 1_000_000_000,
            "observed_time_unix_nano": NOW,
            "resource.service.name": "checkout",
            "resource.k8s.namespace.name": "shop",
            "resource.meshlog.tenant": "acme",
            "http.response.status_code": 503,
            "http.request.method": "POST",
            "http.route": "/orders/{id}",
            "url.path": "/orders/42",
            "meshlog.peer.principal": "spiffe://cluster.local/ns/shop/sa/frontend",
            "client.address": "10.0.0.0",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "meshlog.request_id": "req-1",
            "enduser.id": "alice",
            "user_agent.original": "Mozilla/5.0 PaymentsBot",
        }))
    }

    fn f(params: &[(&str, &str)]) -> Filter {
        Filter::from_params(params.iter().copied(), NOW).unwrap()
    }

    #[test]
    fn each_named_filter_matches_its_field_and_rejects_others() {
        let r = sample();
        let cases: &[(&str, &str, &str)] = &[
            ("service", "checkout", "cart"),
            ("namespace", "shop", "default"),
            ("tenant", "acme", "globex"),
            ("status", "503", "500"),
            ("status", "5xx", "4xx"),
            ("status", "4xx,5xx", "2xx,3xx"),
            ("method", "post", "GET"),
            ("route", "/orders/{id}", "/orders"),
            (
                "principal",
                "spiffe://cluster.local/ns/shop/sa/frontend",
                "spiffe://x",
            ),
            ("client", "10.0.0.0", "10.0.0.1"),
            (
                "trace-id",
                "4BF92F3577B34DA6A3CE929D0E0E4736",
                "00000000000000000000000000000001",
            ),
            (
                "trace_id",
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00000000000000000000000000000001",
            ),
            ("request-id", "req-1", "req-2"),
            ("enduser", "alice", "bob"),
            ("text", "paymentsbot", "refund"),
            ("text", "orders/4", "orders/5"),
            ("where", "url.path=/orders/42", "url.path=/orders/43"),
            (
                "where",
                "http.response.status_code=503",
                "http.response.status_code=500",
            ),
            ("since", "1h", "10m"),
            ("until", "10m", "1h"),
            ("since", "2025-12-31T23:00:00Z", "2025-12-31T23:45:00Z"),
        ];
        for (name, yes, no) in cases {
            assert!(f(&[(name, yes)]).matches(&r), "{name}={yes} should match");
            assert!(
                !f(&[(name, no)]).matches(&r),
                "{name}={no} should not match"
            );
            // Repeating a parameter ORs its values.
            if !["where", "text", "since", "until"].contains(name) {
                assert!(f(&[(name, no), (name, yes)]).matches(&r), "{name}");
            }
        }
        assert!(Filter::default().matches(&r));
        assert!(Filter::default().is_empty());
    }

    #[test]
    fn parameters_combine_with_and_and_where_and_text_all_hold() {
        let r = sample();
        assert!(f(&[("service", "checkout"), ("status", "5xx")]).matches(&r));
        assert!(!f(&[("service", "checkout"), ("status", "2xx")]).matches(&r));
        assert!(!f(&[("text", "paymentsbot"), ("text", "refund")]).matches(&r));
        assert!(!f(&[("where", "url.path=/orders/42"), ("where", "http.route=/x")]).matches(&r));
        // A missing attribute never matches a filter on it.
        assert!(!f(&[("where", "nope=1")]).matches(&r));
        let mut no_time = sample();
        no_time.remove("time_unix_nano");
        no_time.remove("observed_time_unix_nano");
        assert!(!f(&[("since", "1h")]).matches(&no_time));
        // A zero time falls back to the observed time.
        let mut zero = sample();
        zero.insert("time_unix_nano".into(), json!(0));
        assert!(f(&[("since", "1m")]).matches(&zero));
    }

    #[test]
    fn bad_values_name_their_parameter() {
        let err = |name: &str, value: &str| Filter::from_params([(name, value)], NOW).unwrap_err();
        for (name, value) in [
            ("since", "yesterday"),
            ("until", "5y"),
            ("since", "2026-13-01T00:00:00Z"),
        ] {
            let e = err(name, value);
            assert!(matches!(e, FilterError::BadTime { .. }), "{e}");
            assert_eq!(e.parameter(), name);
            assert!(
                e.to_string()
                    .starts_with(&format!("parameter {name}: bad time")),
                "{e}"
            );
        }
        for value in ["6xx", "0xx", "55x", "600", "99", "abc", "5xx,"] {
            let e = err("status", value);
            assert!(matches!(e, FilterError::BadStatus { .. }), "{value}: {e}");
            assert_eq!(e.parameter(), "status");
        }
        for (name, value) in [
            ("trace-id", "xyz"),
            ("method", "GE T"),
            ("where", "novalue"),
            ("where", "=x"),
            ("service", ""),
        ] {
            let e = err(name, value);
            assert!(matches!(e, FilterError::BadValue { .. }), "{e}");
            assert_eq!(e.parameter(), name);
        }
        let e = err("colour", "red");
        assert_eq!(e.parameter(), "colour");
        assert!(
            e.to_string().contains("unknown parameter \"colour\""),
            "{e}"
        );
        let e = unknown_parameter("colour", &["limit"]);
        assert!(e.to_string().ends_with("where, limit)"), "{e}");
    }

    #[test]
    fn parse_param_leaves_foreign_names_to_the_caller() {
        let mut f = Filter::default();
        assert!(!f.parse_param("limit", "10", NOW).unwrap());
        assert!(f.parse_param("service", "a", NOW).unwrap());
        assert_eq!(f.service, ["a"]);
    }

    #[test]
    fn times_parse_absolute_relative_and_now() {
        assert_eq!(parse_time("since", "now", NOW).unwrap(), NOW);
        assert_eq!(
            parse_time("since", "90s", NOW).unwrap(),
            NOW - 90_000_000_000
        );
        assert_eq!(
            parse_time("since", "1w", NOW).unwrap(),
            NOW - 7 * 86_400_000_000_000
        );
        assert_eq!(parse_time("since", "2026-01-01T00:00:00Z", 0).unwrap(), NOW);
        assert_eq!(
            parse_time("since", "2026-01-01T01:00:00.5+01:00", 0).unwrap(),
            NOW + 500_000_000
        );
    }

    #[test]
    fn the_line_test_never_rejects_a_match() {
        let r = sample();
        let line = serde_json::to_vec(&r).unwrap();
        for (name, yes, no) in [
            ("service", "checkout", "cart"),
            (
                "trace-id",
                "4BF92F3577B34DA6A3CE929D0E0E4736",
                "00000000000000000000000000000001",
            ),
            ("request-id", "req-1", "req-2"),
            ("text", "PAYMENTSBOT", "refund"),
            ("method", "post", "put"),
            ("where", "url.path=/orders/42", "url.path=/orders/43"),
        ] {
            assert!(f(&[(name, yes)]).line_may_match(&line), "{name}={yes}");
            assert!(!f(&[(name, no)]).line_may_match(&line), "{name}={no}");
        }
        // Only a "maybe": matches() still decides.
        assert!(f(&[("status", "404")]).line_may_match(&line));
        assert!(f(&[("text", "a\"b")]).line_may_match(&line));
    }

    #[test]
    fn status_classes_cover_exactly_their_hundred() {
        let five = StatusMatch::Class(5);
        assert!(five.matches(500) && five.matches(599));
        assert!(!five.matches(499) && !five.matches(600));
    }
}
