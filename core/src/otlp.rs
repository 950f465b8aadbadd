//! OTLP/HTTP JSON encoding of access records (`POST /v1/logs`).
//!
//! Written as the OTLP spec writes JSON: lowerCamelCase keys, hex trace and span ids, integer
//! enums, 64-bit integers as strings. Each record is encoded once, at log time, into a fragment;
//! a batch is the fragments joined inside a fixed envelope built once per configuration.
//!
//! Depends on [`crate::record`] and [`crate::schema`] only (plus the [`crate::json`] writers):
//! what the VM reports about itself (tallies) comes in through the [`Event`] trait.

use crate::json::{push_escaped, push_f64, push_hex, push_int, push_int_str, push_str};
use crate::otlp_proto::{self, ProtoEnvelope};
use crate::record::{AccessRecord, AttrValue, Event};
use crate::schema::MESHLOG_SEQUENCE;

/// Instrumentation scope name written on every batch.
pub const SCOPE_NAME: &str = "meshlog";
/// Instrumentation scope version: the filter's version.
pub const SCOPE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Appends one OTLP `LogRecord` JSON object for `rec` to `out`.
pub fn encode_log_record(out: &mut Vec<u8>, rec: &AccessRecord) {
    let sev = rec.severity();
    out.extend_from_slice(b"{\"timeUnixNano\":");
    push_int_str(out, i64::try_from(rec.start_time_ns).unwrap_or(i64::MAX));
    out.extend_from_slice(b",\"observedTimeUnixNano\":");
    push_int_str(out, i64::try_from(rec.observed_time_ns).unwrap_or(i64::MAX));
    out.extend_from_slice(b",\"severityNumber\":");
    push_int(out, i64::from(sev.number()));
    out.extend_from_slice(b",\"severityText\":");
    push_str(out, sev.text());
    out.extend_from_slice(b",\"eventName\":");
    push_str(out, rec.kind.event_name());
    out.extend_from_slice(b",\"attributes\":[");
    let mut first = true;
    rec.for_each_attribute(|prefix, name, value| {
        if !first {
            out.push(b',');
        }
        first = false;
        // Record keys start with one of the schema's constants (`crate::schema`), plain ASCII
        // that needs no escaping (a test checks every one): copied as is.
        push_attribute(out, prefix.as_bytes(), name, value);
    });
    out.push(b']');
    if let Some(t) = &rec.trace_id {
        out.extend_from_slice(b",\"traceId\":");
        push_hex(out, t);
    }
    if let Some(s) = &rec.span_id {
        out.extend_from_slice(b",\"spanId\":");
        push_hex(out, s);
    }
    out.push(b'}');
}

/// Appends one OTLP `LogRecord` JSON object for `event` written at `now_ns`: its name, severity
/// and attributes and, when given, `meshlog.sequence` (events share the VM's sequence with
/// access records, so a gap still means a lost record). No request attributes, no trace.
pub fn encode_event_record(
    out: &mut Vec<u8>,
    event: &dyn Event,
    sequence: Option<u64>,
    now_ns: u64,
) {
    out.extend_from_slice(b"{\"timeUnixNano\":");
    push_int_str(
        out,
        i64::try_from(event.time_ns(now_ns)).unwrap_or(i64::MAX),
    );
    out.extend_from_slice(b",\"observedTimeUnixNano\":");
    push_int_str(out, i64::try_from(now_ns).unwrap_or(i64::MAX));
    let sev = event.severity();
    out.extend_from_slice(b",\"severityNumber\":");
    push_int(out, i64::from(sev.number()));
    out.extend_from_slice(b",\"severityText\":");
    push_str(out, sev.text());
    out.extend_from_slice(b",\"eventName\":");
    push_str(out, event.event_name());
    out.extend_from_slice(b",\"attributes\":[");
    let mut first = true;
    event.visit_attributes(&mut |key, value| {
        if !first {
            out.push(b',');
        }
        first = false;
        push_key_value(out, key, "", value);
    });
    if let Some(seq) = sequence {
        if !first {
            out.push(b',');
        }
        push_key_value(
            out,
            MESHLOG_SEQUENCE,
            "",
            AttrValue::Int(i64::try_from(seq).unwrap_or(i64::MAX)),
        );
    }
    out.extend_from_slice(b"]}");
}

fn push_key_value(out: &mut Vec<u8>, prefix: &str, name: &str, value: AttrValue<'_>) {
    out.extend_from_slice(b"{\"key\":\"");
    push_escaped(out, prefix);
    push_rest(out, name, value);
}

/// [`push_key_value`] for a key whose `plain_prefix` needs no escaping (a schema constant).
fn push_attribute(out: &mut Vec<u8>, plain_prefix: &[u8], name: &str, value: AttrValue<'_>) {
    out.extend_from_slice(b"{\"key\":\"");
    out.extend_from_slice(plain_prefix);
    push_rest(out, name, value);
}

/// The key's variable part (escaped), then the value.
fn push_rest(out: &mut Vec<u8>, name: &str, value: AttrValue<'_>) {
    // The fixed text between the pieces goes out as one slice each (31 attributes a record:
    // the separate quote and brace pushes were a fifth of the encoding's instructions).
    if !name.is_empty() {
        push_escaped(out, name);
    }
    match value {
        AttrValue::Str(s) => {
            out.extend_from_slice(b"\",\"value\":{\"stringValue\":\"");
            push_escaped(out, s);
            out.extend_from_slice(b"\"}}");
        }
        AttrValue::Int(i) => {
            out.extend_from_slice(b"\",\"value\":{\"intValue\":\"");
            push_int(out, i);
            out.extend_from_slice(b"\"}}");
        }
        AttrValue::Double(d) => {
            out.extend_from_slice(b"\",\"value\":{\"doubleValue\":");
            push_f64(out, d);
            out.extend_from_slice(b"}}");
        }
    }
}

/// The OTLP/HTTP body format (`collector.protocol`), named as OpenTelemetry's exporters name
/// theirs (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// `http/json`: OTLP/JSON (the default).
    #[default]
    Json,
    /// `http/protobuf`: the same request as protobuf, about half the bytes
    /// ([`crate::otlp_proto`]).
    Protobuf,
}

impl Protocol {
    /// The `content-type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::Json => "application/json",
            Protocol::Protobuf => "application/x-protobuf",
        }
    }
}

/// The fixed parts around a batch's log records (resource and scope), built once per config,
/// and the format records are written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    form: Form,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Form {
    /// The JSON text before the records.
    Json(Vec<u8>),
    Protobuf(ProtoEnvelope),
}

/// Closes `logRecords`, `scopeLogs` and `resourceLogs`.
const SUFFIX: &[u8] = b"]}]}]}";

impl Envelope {
    /// An OTLP/JSON envelope whose resource carries `resource` as string attributes.
    pub fn new<'a>(resource: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Envelope::with_protocol(Protocol::Json, resource)
    }

    /// An envelope in `protocol` whose resource carries `resource` as string attributes.
    pub fn with_protocol<'a>(
        protocol: Protocol,
        resource: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        if protocol == Protocol::Protobuf {
            return Envelope {
                form: Form::Protobuf(ProtoEnvelope::new(resource, SCOPE_NAME, SCOPE_VERSION)),
            };
        }
        let mut p = Vec::with_capacity(256);
        p.extend_from_slice(b"{\"resourceLogs\":[{\"resource\":{\"attributes\":[");
        for (i, (k, v)) in resource.into_iter().enumerate() {
            if i > 0 {
                p.push(b',');
            }
            push_key_value(&mut p, k, "", AttrValue::Str(v));
        }
        p.extend_from_slice(b"]},\"scopeLogs\":[{\"scope\":{\"name\":");
        push_str(&mut p, SCOPE_NAME);
        p.extend_from_slice(b",\"version\":");
        push_str(&mut p, SCOPE_VERSION);
        p.extend_from_slice(b"},\"logRecords\":[");
        Envelope {
            form: Form::Json(p),
        }
    }

    /// The format of its bodies.
    pub fn protocol(&self) -> Protocol {
        match self.form {
            Form::Json(_) => Protocol::Json,
            Form::Protobuf(_) => Protocol::Protobuf,
        }
    }

    /// Bytes a batch adds beyond its records and their separating commas.
    pub fn overhead(&self) -> usize {
        match &self.form {
            Form::Json(prefix) => prefix.len() + SUFFIX.len(),
            Form::Protobuf(p) => p.overhead(),
        }
    }

    /// Appends `rec` as one record fragment in this envelope's format.
    pub fn encode_record(&self, out: &mut Vec<u8>, rec: &AccessRecord) {
        match self.form {
            Form::Json(_) => encode_log_record(out, rec),
            Form::Protobuf(_) => otlp_proto::encode_log_record(out, rec),
        }
    }

    /// Appends `event` as one record fragment in this envelope's format.
    pub fn encode_event(
        &self,
        out: &mut Vec<u8>,
        event: &dyn Event,
        sequence: Option<u64>,
        now_ns: u64,
    ) {
        match self.form {
            Form::Json(_) => encode_event_record(out, event, sequence, now_ns),
            Form::Protobuf(_) => otlp_proto::encode_event_record(out, event, sequence, now_ns),
        }
    }

    /// Joins record fragments (written by [`Envelope::encode_record`] and
    /// [`Envelope::encode_event`], or the JSON encoders) into one `ExportLogsServiceRequest` body.
    pub fn wrap<'a>(
        &self,
        records: impl IntoIterator<Item = &'a [u8]> + Clone,
        size_hint: usize,
    ) -> Vec<u8> {
        let prefix = match &self.form {
            Form::Json(prefix) => prefix,
            Form::Protobuf(p) => return p.wrap(records),
        };
        let mut body = Vec::with_capacity(self.overhead() + size_hint);
        body.extend_from_slice(prefix);
        for (i, r) in records.into_iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(r);
        }
        body.extend_from_slice(SUFFIX);
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    fn sample() -> AccessRecord<'static> {
        AccessRecord {
            start_time_ns: 1_764_000_000_123_456_789,
            observed_time_ns: 1_764_000_000_223_456_789,
            duration_ns: Some(1_500_000),
            method: Some("GET".into()),
            path: Some("/a \"quoted\"\npath".into()),
            status: Some(503),
            trace_id: Some([0xab; 16]),
            span_id: Some([0x01; 8]),
            ..AccessRecord::default()
        }
    }

    /// `encode_log_record` copies a key's schema prefix without escaping: every string in
    /// `schema.rs` (outside comments) must be printable ASCII without `"` or `\`.
    #[test]
    fn schema_keys_need_no_json_escaping() {
        let src = include_str!("schema.rs");
        let mut literals = 0;
        for line in src.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
            for (i, lit) in line.split('"').enumerate() {
                if i % 2 == 1 {
                    literals += 1;
                    assert!(
                        lit.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\'),
                        "{lit}"
                    );
                }
            }
            assert_eq!(line.matches('"').count() % 2, 0, "{line}");
        }
        assert!(literals > 50, "{literals}");
    }

    #[test]
    fn batch_is_valid_otlp_json_for_the_reference_decoder() {
        let env = Envelope::new([("service.name", "checkout")]);
        let mut a = Vec::new();
        encode_log_record(&mut a, &sample());
        let mut b = Vec::new();
        encode_log_record(&mut b, &AccessRecord::default());
        let body = env.wrap([a.as_slice(), b.as_slice()], a.len() + b.len());
        let req: ExportLogsServiceRequest = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
        let rl = &req.resource_logs[0];
        let res_attr = &rl.resource.as_ref().unwrap().attributes[0];
        assert_eq!(res_attr.key, "service.name");
        let sl = &rl.scope_logs[0];
        assert_eq!(sl.scope.as_ref().unwrap().name, "meshlog");
        assert_eq!(sl.log_records.len(), 2);
        let lr = &sl.log_records[0];
        assert_eq!(lr.time_unix_nano, 1_764_000_000_123_456_789);
        assert_eq!(lr.severity_number, 17);
        assert_eq!(lr.severity_text, "ERROR");
        assert_eq!(lr.trace_id, vec![0xab; 16]);
        assert_eq!(lr.span_id, vec![0x01; 8]);
        let get = |k: &str| {
            lr.attributes
                .iter()
                .find(|kv| kv.key == k)
                .and_then(|kv| kv.value.as_ref()?.value.clone())
        };
        assert_eq!(get("http.response.status_code"), Some(Value::IntValue(503)));
        assert_eq!(
            get("url.path"),
            Some(Value::StringValue("/a \"quoted\"\npath".into()))
        );
        assert_eq!(get("meshlog.duration_ns"), Some(Value::IntValue(1_500_000)));
    }

    #[test]
    fn sampling_attributes_are_typed_for_the_reference_decoder() {
        let mut rec = sample();
        rec.sampling = Some(crate::record::SamplingMark {
            adjusted_count: 10.0 / 3.0,
            reason: "sampled",
            policy_version: "0123456789abcdef".into(),
        });
        let mut a = Vec::new();
        encode_log_record(&mut a, &rec);
        rec.sampling.as_mut().unwrap().adjusted_count = 2.0;
        let mut b = Vec::new();
        encode_log_record(&mut b, &rec);
        let text = String::from_utf8(b.clone()).unwrap();
        assert!(
            text.contains(r#""meshlog.sampling.adjusted_count","value":{"doubleValue":2}"#),
            "{text}"
        );
        let body = Envelope::new([]).wrap([a.as_slice(), b.as_slice()], 0);
        let req: ExportLogsServiceRequest = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
        let lrs = &req.resource_logs[0].scope_logs[0].log_records;
        let get = |i: usize, k: &str| {
            lrs[i]
                .attributes
                .iter()
                .find(|kv| kv.key == k)
                .and_then(|kv| kv.value.as_ref()?.value.clone())
        };
        assert_eq!(
            get(0, "meshlog.sampling.adjusted_count"),
            Some(Value::DoubleValue(10.0 / 3.0))
        );
        assert_eq!(
            get(1, "meshlog.sampling.adjusted_count"),
            Some(Value::DoubleValue(2.0))
        );
        assert_eq!(
            get(0, "meshlog.sampling.reason"),
            Some(Value::StringValue("sampled".into()))
        );
        assert_eq!(
            get(0, "meshlog.sampling.policy_version"),
            Some(Value::StringValue("0123456789abcdef".into()))
        );
        // Unsampled records carry none of them.
        let mut c = Vec::new();
        encode_log_record(&mut c, &sample());
        assert!(!String::from_utf8(c).unwrap().contains("meshlog.sampling."));
    }

    #[test]
    fn ints_are_strings_and_ids_are_hex() {
        let mut a = Vec::new();
        encode_log_record(&mut a, &sample());
        let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(v["timeUnixNano"], "1764000000123456789");
        assert_eq!(v["traceId"], "abababababababababababababababab");
        assert_eq!(v["severityNumber"], 17);
    }
}
