//! Alerts as evidence: each [`Transition`] becomes one OTLP log record with event name
//! `meshlog.alert`, appended to the log like the server's `meshlog.access` records (so it is
//! stored, chained and checkpointed with the data it is about); triage (acknowledge, resolve,
//! with a note, by a principal) becomes a `meshlog.alert.triage` record. [`parse_alert`] reads
//! a stored alert back, which is how a restart knows what is firing.

use crate::NS_PER_S;
use crate::config::Severity;
use crate::engine::{State, Transition};
use crate::record::{self, Record};
use crate::rules::{Group, Query};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::{Map, Value};

/// The event name of alert records.
pub const ALERT_EVENT: &str = "meshlog.alert";
/// The event name of triage records.
pub const TRIAGE_EVENT: &str = "meshlog.alert.triage";
/// The `service.name` of the collector's own records.
pub const COLLECTOR_SERVICE: &str = "meshlog-collector";
/// The scope of detection records.
pub const SCOPE: &str = "meshlog.detect";

/// Alert attribute: the alert's id, the same in its firing and resolved records.
pub const ID: &str = "meshlog.alert.id";
/// Alert attribute: the rule.
pub const RULE: &str = "meshlog.alert.rule";
/// Alert attribute: `firing` or `resolved`.
pub const STATE: &str = "meshlog.alert.state";
/// Alert attribute: the group as `k=v, k=v`.
pub const GROUP: &str = "meshlog.alert.group";
/// Alert attribute prefix: each group label on its own (`meshlog.alert.group.service`).
pub const GROUP_PREFIX: &str = "meshlog.alert.group.";
/// Alert attribute: the group labels in order, as a JSON array of `[label, value]`.
pub const LABELS: &str = "meshlog.alert.labels";
/// Alert attribute: `info`, `warning`, `critical`.
pub const SEVERITY: &str = "meshlog.alert.severity";
/// Alert attribute: when the alert started firing, unix ns.
pub const STARTED: &str = "meshlog.alert.started_unix_nano";
/// Alert attribute: the measured value (count, ratio, distinct count).
pub const COUNT: &str = "meshlog.alert.count";
/// Alert attribute: the threshold.
pub const THRESHOLD: &str = "meshlog.alert.threshold";
/// Alert attribute: the baseline, for baseline rules.
pub const BASELINE: &str = "meshlog.alert.baseline";
/// Alert attribute: the window, seconds.
pub const WINDOW_S: &str = "meshlog.alert.window_s";
/// Alert attribute: one line for people.
pub const SUMMARY: &str = "meshlog.alert.summary";
/// Alert attribute: the `meshlog query` command listing the records behind it.
pub const QUERY: &str = "meshlog.alert.query";
/// Alert attribute: the query's filters as JSON (what the command says, for programs).
pub const QUERY_FILTERS: &str = "meshlog.alert.query.filters";
/// Alert attribute: alerts of this group suppressed since the last one raised.
pub const SUPPRESSED: &str = "meshlog.alert.suppressed";
/// Triage attribute: `acknowledge` or `resolve`.
pub const TRIAGE_ACTION: &str = "meshlog.alert.triage.action";
/// Triage attribute: who.
pub const TRIAGE_PRINCIPAL: &str = "meshlog.alert.triage.principal";
/// Triage attribute: their note.
pub const TRIAGE_NOTE: &str = "meshlog.alert.triage.note";

/// A record's attributes before they become OTLP or stored JSON.
#[derive(Debug, Clone, PartialEq)]
enum V {
    S(String),
    I(i64),
    D(f64),
}

fn attributes(t: &Transition) -> Vec<(String, V)> {
    let mut a = vec![
        (ID.to_owned(), V::S(t.id.clone())),
        (RULE.to_owned(), V::S(t.rule.clone())),
        (STATE.to_owned(), V::S(t.state.as_str().to_owned())),
        (GROUP.to_owned(), V::S(t.group.to_string())),
        (LABELS.to_owned(), V::S(labels_json(&t.group))),
        (SEVERITY.to_owned(), V::S(t.severity.as_str().to_owned())),
        (STARTED.to_owned(), V::I(t.since_ns as i64)),
        (COUNT.to_owned(), V::D(t.value)),
        (THRESHOLD.to_owned(), V::D(t.threshold)),
        (WINDOW_S.to_owned(), V::I((t.window_ns / NS_PER_S) as i64)),
        (SUMMARY.to_owned(), V::S(t.summary.clone())),
        (QUERY.to_owned(), V::S(t.query_command())),
        (
            QUERY_FILTERS.to_owned(),
            V::S(serde_json::to_string(&t.query).unwrap_or_default()),
        ),
        (SUPPRESSED.to_owned(), V::I(t.suppressed as i64)),
    ];
    if let Some(b) = t.baseline {
        a.push((BASELINE.to_owned(), V::D(b)));
    }
    for (k, v) in &t.group.labels {
        a.push((format!("{GROUP_PREFIX}{k}"), V::S(v.clone())));
    }
    a
}

fn labels_json(g: &Group) -> String {
    Value::Array(
        g.labels
            .iter()
            .map(|(k, v)| Value::Array(vec![Value::from(k.as_str()), Value::from(v.as_str())]))
            .collect(),
    )
    .to_string()
}

fn severity_number(t: &Transition) -> (i32, &'static str) {
    match (t.state, t.severity) {
        (State::Resolved, _) | (State::Firing, Severity::Info) => (9, "INFO"),
        (State::Firing, Severity::Warning) => (13, "WARN"),
        (State::Firing, Severity::Critical) => (17, "ERROR"),
    }
}

fn kv(key: String, v: V) -> KeyValue {
    let value = match v {
        V::S(s) => any_value::Value::StringValue(s),
        V::I(i) => any_value::Value::IntValue(i),
        V::D(d) => any_value::Value::DoubleValue(d),
    };
    KeyValue {
        key,
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn request(
    event: &str,
    at_ns: u64,
    sev: (i32, &str),
    body: &str,
    attrs: Vec<(String, V)>,
) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name".into(), V::S(COLLECTOR_SERVICE.into()))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: SCOPE.into(),
                    ..Default::default()
                }),
                log_records: vec![LogRecord {
                    time_unix_nano: at_ns,
                    observed_time_unix_nano: at_ns,
                    severity_number: sev.0,
                    severity_text: sev.1.into(),
                    event_name: event.into(),
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(body.into())),
                    }),
                    attributes: attrs.into_iter().map(|(k, v)| kv(k, v)).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn flat(event: &str, at_ns: u64, sev: (i32, &str), body: &str, attrs: Vec<(String, V)>) -> Record {
    let mut m = Map::new();
    m.insert("time_unix_nano".into(), Value::from(at_ns));
    m.insert("observed_time_unix_nano".into(), Value::from(at_ns));
    m.insert("severity_number".into(), Value::from(sev.0));
    m.insert("severity_text".into(), Value::from(sev.1));
    m.insert("event_name".into(), Value::from(event));
    m.insert("body".into(), Value::from(body));
    m.insert(
        "resource.service.name".into(),
        Value::from(COLLECTOR_SERVICE),
    );
    m.insert("scope.name".into(), Value::from(SCOPE));
    for (k, v) in attrs {
        let v = match v {
            V::S(s) => Value::from(s),
            V::I(i) => Value::from(i),
            V::D(d) => serde_json::Number::from_f64(d).map_or(Value::Null, Value::Number),
        };
        m.insert(k, v);
    }
    m
}

/// The OTLP request holding `t` as one `meshlog.alert` record (for the ingest pipeline).
pub fn alert_request(t: &Transition) -> ExportLogsServiceRequest {
    request(
        ALERT_EVENT,
        t.at_ns,
        severity_number(t),
        &t.summary,
        attributes(t),
    )
}

/// `t` as the collector stores it (the flat form [`alert_request`] becomes).
pub fn alert_record(t: &Transition) -> Record {
    flat(
        ALERT_EVENT,
        t.at_ns,
        severity_number(t),
        &t.summary,
        attributes(t),
    )
}

/// An alert read back from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedAlert {
    /// The transition as recorded.
    pub transition: Transition,
}

/// Reads a stored `meshlog.alert` record back; `None` for any other record.
pub fn parse_alert(r: &Record) -> Option<LoggedAlert> {
    if record::event(r) != Some(ALERT_EVENT) {
        return None;
    }
    let s = |k: &str| record::str_of(r, k).map(str::to_owned);
    let f = |k: &str| r.get(k).and_then(Value::as_f64);
    let state = match record::str_of(r, STATE)? {
        "firing" => State::Firing,
        "resolved" => State::Resolved,
        _ => return None,
    };
    let labels: Vec<(String, String)> = serde_json::from_str(record::str_of(r, LABELS)?).ok()?;
    let at_ns = u64::try_from(record::int_of(r, "time_unix_nano")?).ok()?;
    Some(LoggedAlert {
        transition: Transition {
            id: s(ID)?,
            rule: s(RULE)?,
            group: Group { labels },
            state,
            at_ns,
            since_ns: record::int_of(r, STARTED)
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(at_ns),
            value: f(COUNT).unwrap_or(0.0),
            threshold: f(THRESHOLD).unwrap_or(0.0),
            window_ns: record::int_of(r, WINDOW_S).unwrap_or(0).max(0) as u64 * NS_PER_S,
            baseline: f(BASELINE),
            severity: record::str_of(r, SEVERITY)
                .and_then(Severity::from_name)
                .unwrap_or(Severity::Warning),
            summary: s(SUMMARY).unwrap_or_default(),
            query: record::str_of(r, QUERY_FILTERS)
                .and_then(|q| serde_json::from_str::<Query>(q).ok())
                .unwrap_or_default(),
            suppressed: record::int_of(r, SUPPRESSED).unwrap_or(0).max(0) as u64,
            tenant: s(record::TENANT),
        },
    })
}

/// What a person did with an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriageAction {
    /// Seen, being handled.
    Acknowledge,
    /// Handled (whatever the detector still measures).
    Resolve,
}

impl TriageAction {
    /// `acknowledge` or `resolve`.
    pub fn as_str(self) -> &'static str {
        match self {
            TriageAction::Acknowledge => "acknowledge",
            TriageAction::Resolve => "resolve",
        }
    }
}

/// One triage step, by a principal with the role to triage.
#[derive(Debug, Clone, PartialEq)]
pub struct Triage {
    /// The alert's id.
    pub alert_id: String,
    /// Its rule.
    pub rule: String,
    /// Its group.
    pub group: Group,
    /// What was done.
    pub action: TriageAction,
    /// Who did it.
    pub principal: String,
    /// Their note.
    pub note: String,
    /// When, unix ns.
    pub at_ns: u64,
}

fn triage_attributes(t: &Triage) -> Vec<(String, V)> {
    vec![
        (ID.to_owned(), V::S(t.alert_id.clone())),
        (RULE.to_owned(), V::S(t.rule.clone())),
        (GROUP.to_owned(), V::S(t.group.to_string())),
        (LABELS.to_owned(), V::S(labels_json(&t.group))),
        (TRIAGE_ACTION.to_owned(), V::S(t.action.as_str().to_owned())),
        (TRIAGE_PRINCIPAL.to_owned(), V::S(t.principal.clone())),
        (TRIAGE_NOTE.to_owned(), V::S(t.note.clone())),
    ]
}

fn triage_body(t: &Triage) -> String {
    format!(
        "{} {} alert {} ({}): {}",
        t.principal,
        match t.action {
            TriageAction::Acknowledge => "acknowledged",
            TriageAction::Resolve => "resolved",
        },
        t.alert_id,
        t.rule,
        t.note
    )
}

/// The OTLP request holding `t` as one `meshlog.alert.triage` record.
pub fn triage_request(t: &Triage) -> ExportLogsServiceRequest {
    request(
        TRIAGE_EVENT,
        t.at_ns,
        (9, "INFO"),
        &triage_body(t),
        triage_attributes(t),
    )
}

/// `t` as the collector stores it.
pub fn triage_record(t: &Triage) -> Record {
    flat(
        TRIAGE_EVENT,
        t.at_ns,
        (9, "INFO"),
        &triage_body(t),
        triage_attributes(t),
    )
}
