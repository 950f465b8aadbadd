//! One stored record → one row of the `otel_logs`-shaped table, in the two shapes the schema
//! has ([`Flavor`]): `Map`/`DateTime64(9)` columns on current ClickHouse, `Nested` key/value
//! arrays and `UInt64` nanoseconds on old servers (Debian's 18.16).
//!
//! The mapping follows the OpenTelemetry exporter: `Timestamp` from `time_unix_nano` (or
//! `observed_time_unix_nano` when that is zero or missing), `TraceId`, `SpanId`, `TraceFlags`,
//! `SeverityText`, `SeverityNumber`, `ServiceName` (`resource.service.name`), `Body`,
//! `ResourceAttributes` (every `resource.*` key, prefix removed), `ScopeName`, `ScopeVersion`,
//! `LogAttributes` (every other attribute), `EventName`. Values that are not strings are
//! written as their JSON text (`200`, `true`, `2.5`). meshlog adds where the row comes from and
//! what it was: `CollectorId`, `Log` (the retention class, `""` for a store without classes),
//! `LeafIndex` and `RecordIndex` (its position in that log), `VmId`, `Sequence`, `Tenant`, and
//! `RecordHash` (SHA-256 of the record exactly as stored, hex). The encoding is deterministic,
//! so `sink check` re-encodes the store and compares column by column.

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Which column types the table uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// ClickHouse ≥ 22.8: `DateTime64(9)`, `Map(LowCardinality(String), String)`,
    /// `LowCardinality(String)`, skipping indexes, insert deduplication tokens.
    Modern,
    /// Older servers (18.16 in Debian): `UInt64` nanoseconds, `Nested(key, value)`, `String`.
    Legacy,
}

impl Flavor {
    /// The flavor for a server of this version (`SELECT version()`, e.g. `18.16.1`).
    pub fn for_version(version: &str) -> Flavor {
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let major = parts.next().unwrap_or(0);
        let minor = parts.next().unwrap_or(0);
        if (major, minor) >= (22, 8) {
            Flavor::Modern
        } else {
            Flavor::Legacy
        }
    }

    /// Its name in messages and docs.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Modern => "modern (Map, DateTime64(9), LowCardinality)",
            Flavor::Legacy => "legacy (Nested key/value arrays, UInt64 nanoseconds)",
        }
    }
}

/// Where a record is: the collector, its log, and its position there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey {
    /// Leaf index of the record's frame.
    pub leaf: u64,
    /// Index of the record in its frame.
    pub record: u32,
}

/// One row, independent of the table's flavor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    /// Unix nanoseconds.
    pub timestamp_ns: u64,
    /// `TraceId`.
    pub trace_id: String,
    /// `SpanId`.
    pub span_id: String,
    /// `TraceFlags`.
    pub trace_flags: u8,
    /// `SeverityText`.
    pub severity_text: String,
    /// `SeverityNumber`.
    pub severity_number: u8,
    /// `ServiceName`.
    pub service_name: String,
    /// `Body`.
    pub body: String,
    /// `ResourceAttributes`, sorted by key.
    pub resource_attributes: Vec<(String, String)>,
    /// `ScopeName`.
    pub scope_name: String,
    /// `ScopeVersion`.
    pub scope_version: String,
    /// `LogAttributes`, sorted by key.
    pub log_attributes: Vec<(String, String)>,
    /// `EventName`.
    pub event_name: String,
    /// `CollectorId`.
    pub collector_id: String,
    /// `Log`.
    pub log: String,
    /// `LeafIndex`.
    pub leaf_index: u64,
    /// `RecordIndex`.
    pub record_index: u32,
    /// `VmId`.
    pub vm_id: String,
    /// `Sequence` (`meshlog.sequence`), when the record has one.
    pub sequence: Option<u64>,
    /// `Tenant`.
    pub tenant: String,
    /// `RecordHash`: SHA-256 of the stored JSON, hex.
    pub record_hash: String,
}

/// Keys that are columns of their own rather than log attributes.
const RESERVED: &[&str] = &[
    "time_unix_nano",
    "observed_time_unix_nano",
    "severity_number",
    "severity_text",
    "event_name",
    "trace_id",
    "span_id",
    "flags",
    "body",
    "scope.name",
    "scope.version",
];

/// The hash in `RecordHash`: SHA-256 of the record's stored bytes, lower-case hex.
pub fn record_hash(json: &[u8]) -> String {
    hex::encode(Sha256::digest(json))
}

/// The row for the record stored as `json` at `key` in `log` of `collector_id`. A record
/// that is not a JSON object (never written by meshlog) gets an empty row with its hash.
pub fn encode(collector_id: &str, log: &str, key: RowKey, json: &[u8]) -> LogRow {
    let rec: Map<String, Value> = serde_json::from_slice(json).unwrap_or_default();
    let u64_of = |k: &str| rec.get(k).and_then(Value::as_u64);
    let str_of = |k: &str| rec.get(k).map(text).unwrap_or_default();
    let time = u64_of("time_unix_nano")
        .filter(|t| *t > 0)
        .or_else(|| u64_of("observed_time_unix_nano"))
        .unwrap_or(0);
    let mut resource = Vec::new();
    let mut attrs = Vec::new();
    for (k, v) in &rec {
        if let Some(r) = k.strip_prefix("resource.") {
            resource.push((r.to_owned(), text(v)));
        } else if !RESERVED.contains(&k.as_str()) && !k.starts_with("scope.") {
            attrs.push((k.clone(), text(v)));
        }
    }
    resource.sort();
    attrs.sort();
    LogRow {
        timestamp_ns: time,
        trace_id: str_of("trace_id"),
        span_id: str_of("span_id"),
        trace_flags: u64_of("flags").map_or(0, |f| (f & 0xff) as u8),
        severity_text: str_of("severity_text"),
        severity_number: u64_of("severity_number").map_or(0, |n| n.min(255) as u8),
        service_name: str_of("resource.service.name"),
        body: str_of("body"),
        resource_attributes: resource,
        scope_name: str_of("scope.name"),
        scope_version: str_of("scope.version"),
        log_attributes: attrs,
        event_name: str_of("event_name"),
        collector_id: collector_id.to_owned(),
        log: log.to_owned(),
        leaf_index: key.leaf,
        record_index: key.record,
        vm_id: str_of("resource.meshlog.vm.id"),
        sequence: u64_of("meshlog.sequence"),
        tenant: str_of("resource.meshlog.tenant"),
        record_hash: record_hash(json),
    }
}

/// [`encode`] for a record that may come with its member index (`members`, see
/// [`PlainRecords`](meshlog_format::frame::PlainRecords)): read by the index when there is
/// one it fits ([`indexed`](super::indexed)), parsed whole otherwise; the row is the same.
pub fn encode_indexed(
    collector_id: &str,
    log: &str,
    key: RowKey,
    json: &[u8],
    members: &[u32],
) -> LogRow {
    match super::indexed::encode(collector_id, log, key.clone(), json, members) {
        Some(row) => row,
        None => encode(collector_id, log, key, json),
    }
}

/// A value as the table holds it: strings as they are, anything else as JSON text.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl LogRow {
    /// Where the row is.
    pub fn key(&self) -> RowKey {
        RowKey {
            leaf: self.leaf_index,
            record: self.record_index,
        }
    }

    /// The columns whose values differ from `other`'s (empty when the rows are equal).
    pub fn differences(&self, other: &LogRow) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut cmp = |name, same: bool| {
            if !same {
                out.push(name);
            }
        };
        cmp("Timestamp", self.timestamp_ns == other.timestamp_ns);
        cmp("TraceId", self.trace_id == other.trace_id);
        cmp("SpanId", self.span_id == other.span_id);
        cmp("TraceFlags", self.trace_flags == other.trace_flags);
        cmp("SeverityText", self.severity_text == other.severity_text);
        cmp(
            "SeverityNumber",
            self.severity_number == other.severity_number,
        );
        cmp("ServiceName", self.service_name == other.service_name);
        cmp("Body", self.body == other.body);
        cmp(
            "ResourceAttributes",
            sorted(&self.resource_attributes) == sorted(&other.resource_attributes),
        );
        cmp("ScopeName", self.scope_name == other.scope_name);
        cmp("ScopeVersion", self.scope_version == other.scope_version);
        cmp(
            "LogAttributes",
            sorted(&self.log_attributes) == sorted(&other.log_attributes),
        );
        cmp("EventName", self.event_name == other.event_name);
        cmp("CollectorId", self.collector_id == other.collector_id);
        cmp("Log", self.log == other.log);
        cmp("VmId", self.vm_id == other.vm_id);
        cmp("Sequence", self.sequence == other.sequence);
        cmp("Tenant", self.tenant == other.tenant);
        cmp("RecordHash", self.record_hash == other.record_hash);
        out
    }
}

fn sorted(v: &[(String, String)]) -> Vec<(String, String)> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// A row of the modern table (RowBinary: `DateTime64(9)` is an `Int64` of nanoseconds, a `Map`
/// a list of pairs, `LowCardinality(String)` a string).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
#[allow(non_snake_case, missing_docs)]
pub struct ModernRow {
    pub Timestamp: i64,
    pub TraceId: String,
    pub SpanId: String,
    pub TraceFlags: u8,
    pub SeverityText: String,
    pub SeverityNumber: u8,
    pub ServiceName: String,
    pub Body: String,
    pub ResourceAttributes: Vec<(String, String)>,
    pub ScopeName: String,
    pub ScopeVersion: String,
    pub LogAttributes: Vec<(String, String)>,
    pub EventName: String,
    pub CollectorId: String,
    pub Log: String,
    pub LeafIndex: u64,
    pub RecordIndex: u32,
    pub VmId: String,
    pub Sequence: Option<u64>,
    pub Tenant: String,
    pub RecordHash: String,
}

/// A row of the legacy table: `Nested` columns are two arrays each.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
#[allow(non_snake_case, missing_docs)]
pub struct LegacyRow {
    pub Timestamp: u64,
    pub TraceId: String,
    pub SpanId: String,
    pub TraceFlags: u8,
    pub SeverityText: String,
    pub SeverityNumber: u8,
    pub ServiceName: String,
    pub Body: String,
    #[serde(rename = "ResourceAttributes.key")]
    pub ResourceAttributesKey: Vec<String>,
    #[serde(rename = "ResourceAttributes.value")]
    pub ResourceAttributesValue: Vec<String>,
    pub ScopeName: String,
    pub ScopeVersion: String,
    #[serde(rename = "LogAttributes.key")]
    pub LogAttributesKey: Vec<String>,
    #[serde(rename = "LogAttributes.value")]
    pub LogAttributesValue: Vec<String>,
    pub EventName: String,
    pub CollectorId: String,
    pub Log: String,
    pub LeafIndex: u64,
    pub RecordIndex: u32,
    pub VmId: String,
    pub Sequence: Option<u64>,
    pub Tenant: String,
    pub RecordHash: String,
}

impl From<LogRow> for ModernRow {
    fn from(r: LogRow) -> Self {
        ModernRow {
            Timestamp: i64::try_from(r.timestamp_ns).unwrap_or(i64::MAX),
            TraceId: r.trace_id,
            SpanId: r.span_id,
            TraceFlags: r.trace_flags,
            SeverityText: r.severity_text,
            SeverityNumber: r.severity_number,
            ServiceName: r.service_name,
            Body: r.body,
            ResourceAttributes: r.resource_attributes,
            ScopeName: r.scope_name,
            ScopeVersion: r.scope_version,
            LogAttributes: r.log_attributes,
            EventName: r.event_name,
            CollectorId: r.collector_id,
            Log: r.log,
            LeafIndex: r.leaf_index,
            RecordIndex: r.record_index,
            VmId: r.vm_id,
            Sequence: r.sequence,
            Tenant: r.tenant,
            RecordHash: r.record_hash,
        }
    }
}

impl From<ModernRow> for LogRow {
    fn from(r: ModernRow) -> Self {
        LogRow {
            timestamp_ns: u64::try_from(r.Timestamp).unwrap_or(0),
            trace_id: r.TraceId,
            span_id: r.SpanId,
            trace_flags: r.TraceFlags,
            severity_text: r.SeverityText,
            severity_number: r.SeverityNumber,
            service_name: r.ServiceName,
            body: r.Body,
            resource_attributes: r.ResourceAttributes,
            scope_name: r.ScopeName,
            scope_version: r.ScopeVersion,
            log_attributes: r.LogAttributes,
            event_name: r.EventName,
            collector_id: r.CollectorId,
            log: r.Log,
            leaf_index: r.LeafIndex,
            record_index: r.RecordIndex,
            vm_id: r.VmId,
            sequence: r.Sequence,
            tenant: r.Tenant,
            record_hash: r.RecordHash,
        }
    }
}

fn split(pairs: Vec<(String, String)>) -> (Vec<String>, Vec<String>) {
    pairs.into_iter().unzip()
}

fn zip(keys: Vec<String>, values: Vec<String>) -> Vec<(String, String)> {
    // Arrays of different lengths (an edited row) keep the extra keys with empty values.
    let n = keys.len().max(values.len());
    let mut values = values.into_iter();
    let mut keys = keys.into_iter();
    (0..n)
        .map(|_| {
            (
                keys.next().unwrap_or_default(),
                values.next().unwrap_or_default(),
            )
        })
        .collect()
}

impl From<LogRow> for LegacyRow {
    fn from(r: LogRow) -> Self {
        let (rk, rv) = split(r.resource_attributes);
        let (lk, lv) = split(r.log_attributes);
        LegacyRow {
            Timestamp: r.timestamp_ns,
            TraceId: r.trace_id,
            SpanId: r.span_id,
            TraceFlags: r.trace_flags,
            SeverityText: r.severity_text,
            SeverityNumber: r.severity_number,
            ServiceName: r.service_name,
            Body: r.body,
            ResourceAttributesKey: rk,
            ResourceAttributesValue: rv,
            ScopeName: r.scope_name,
            ScopeVersion: r.scope_version,
            LogAttributesKey: lk,
            LogAttributesValue: lv,
            EventName: r.event_name,
            CollectorId: r.collector_id,
            Log: r.log,
            LeafIndex: r.leaf_index,
            RecordIndex: r.record_index,
            VmId: r.vm_id,
            Sequence: r.sequence,
            Tenant: r.tenant,
            RecordHash: r.record_hash,
        }
    }
}

impl From<LegacyRow> for LogRow {
    fn from(r: LegacyRow) -> Self {
        LogRow {
            timestamp_ns: r.Timestamp,
            trace_id: r.TraceId,
            span_id: r.SpanId,
            trace_flags: r.TraceFlags,
            severity_text: r.SeverityText,
            severity_number: r.SeverityNumber,
            service_name: r.ServiceName,
            body: r.Body,
            resource_attributes: zip(r.ResourceAttributesKey, r.ResourceAttributesValue),
            scope_name: r.ScopeName,
            scope_version: r.ScopeVersion,
            log_attributes: zip(r.LogAttributesKey, r.LogAttributesValue),
            event_name: r.EventName,
            collector_id: r.CollectorId,
            log: r.Log,
            leaf_index: r.LeafIndex,
            record_index: r.RecordIndex,
            vm_id: r.VmId,
            sequence: r.Sequence,
            tenant: r.Tenant,
            record_hash: r.RecordHash,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const REC: &str = r#"{"time_unix_nano":1795641196675003000,"observed_time_unix_nano":1,"severity_number":9,"severity_text":"INFO","event_name":"meshlog.http.access","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","http.response.status_code":200,"meshlog.sequence":7,"resource.service.name":"demo","resource.meshlog.vm.id":"44bd","resource.meshlog.tenant":"shop","scope.name":"meshlog","scope.version":"0.1.0"}"#;

    #[test]
    fn a_record_maps_to_the_otel_columns_plus_meshlogs() {
        let r = encode("c1", "", RowKey { leaf: 4, record: 2 }, REC.as_bytes());
        assert_eq!(r.timestamp_ns, 1_795_641_196_675_003_000);
        assert_eq!((r.severity_number, r.severity_text.as_str()), (9, "INFO"));
        assert_eq!(r.service_name, "demo");
        assert_eq!(r.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            r.log_attributes,
            [
                ("http.response.status_code".to_owned(), "200".to_owned()),
                ("meshlog.sequence".to_owned(), "7".to_owned())
            ]
        );
        assert_eq!(r.resource_attributes.len(), 3);
        assert_eq!((r.vm_id.as_str(), r.sequence), ("44bd", Some(7)));
        assert_eq!(r.tenant, "shop");
        assert_eq!((r.leaf_index, r.record_index), (4, 2));
        assert_eq!(r.record_hash, record_hash(REC.as_bytes()));
        assert_eq!(r.record_hash.len(), 64);
        // Both table shapes carry the same row.
        assert_eq!(LogRow::from(ModernRow::from(r.clone())), r);
        assert_eq!(LogRow::from(LegacyRow::from(r.clone())), r);
        let mut altered = r.clone();
        altered.body = "x".into();
        altered.tenant = "other".into();
        assert_eq!(altered.differences(&r), ["Body", "Tenant"]);
    }

    #[test]
    fn versions_pick_the_flavor() {
        assert_eq!(Flavor::for_version("18.16.1"), Flavor::Legacy);
        assert_eq!(Flavor::for_version("22.3.2.1"), Flavor::Legacy);
        assert_eq!(Flavor::for_version("22.8.1"), Flavor::Modern);
        assert_eq!(Flavor::for_version("25.10.2.65"), Flavor::Modern);
    }
}
