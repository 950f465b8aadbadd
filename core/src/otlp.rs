//! OTLP/HTTP JSON encoding of access records (`POST /v1/logs`).
//!
//! Written as the OTLP spec writes JSON: lowerCamelCase keys, hex trace and span ids, integer
//! enums, 64-bit integers as strings. Each record is encoded once, at log time, into a fragment;
//! a batch is the fragments joined inside a fixed envelope built once per configuration.

use crate::json::{push_f64, push_hex, push_int, push_int_str, push_str, push_str2};
use crate::outbox::{DELIVERY_TALLY_EVENT_NAME, DeliveryTally};
use crate::record::{AccessRecord, AttrValue, Severity};
use crate::sample::{TALLY_EVENT_NAME, Tally};

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
        push_key_value(out, prefix, name, value);
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

/// Appends one OTLP `LogRecord` JSON object for a sampling [`Tally`] taken at `now_ns`: event
/// `meshlog.sampling.tally`, severity INFO, time the end of the interval, the tally's attributes
/// ([`Tally::for_each_attribute`]) and, when given, `meshlog.sequence` (tallies share the VM's
/// sequence with access records, so a gap still means a lost record). No request attributes,
/// no trace.
pub fn encode_tally_record(out: &mut Vec<u8>, tally: &Tally, sequence: Option<u64>, now_ns: u64) {
    encode_event_record(
        out,
        TALLY_EVENT_NAME,
        Severity::Info,
        tally.end_ns,
        now_ns,
        |f| tally.for_each_attribute(f),
        sequence,
    );
}

/// Appends one OTLP `LogRecord` JSON object for a [`DeliveryTally`] at `now_ns`: event
/// `meshlog.delivery.tally`, severity WARN (records were lost), the counts and sequence ranges
/// of [`DeliveryTally::for_each_attribute`] and the record's own `meshlog.sequence`.
pub fn encode_delivery_tally_record(
    out: &mut Vec<u8>,
    tally: &DeliveryTally,
    sequence: u64,
    now_ns: u64,
) {
    encode_event_record(
        out,
        DELIVERY_TALLY_EVENT_NAME,
        Severity::Warn,
        now_ns,
        now_ns,
        |f| tally.for_each_attribute(f),
        Some(sequence),
    );
}

/// A record the VM writes about itself: no request attributes, no trace.
fn encode_event_record(
    out: &mut Vec<u8>,
    event_name: &str,
    sev: Severity,
    time_ns: u64,
    observed_ns: u64,
    attributes: impl FnOnce(&mut dyn FnMut(&str, AttrValue<'_>)),
    sequence: Option<u64>,
) {
    out.extend_from_slice(b"{\"timeUnixNano\":");
    push_int_str(out, i64::try_from(time_ns).unwrap_or(i64::MAX));
    out.extend_from_slice(b",\"observedTimeUnixNano\":");
    push_int_str(out, i64::try_from(observed_ns).unwrap_or(i64::MAX));
    out.extend_from_slice(b",\"severityNumber\":");
    push_int(out, i64::from(sev.number()));
    out.extend_from_slice(b",\"severityText\":");
    push_str(out, sev.text());
    out.extend_from_slice(b",\"eventName\":");
    push_str(out, event_name);
    out.extend_from_slice(b",\"attributes\":[");
    let mut first = true;
    attributes(&mut |key, value| {
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
            crate::schema::MESHLOG_SEQUENCE,
            "",
            AttrValue::Int(i64::try_from(seq).unwrap_or(i64::MAX)),
        );
    }
    out.extend_from_slice(b"]}");
}

fn push_key_value(out: &mut Vec<u8>, prefix: &str, name: &str, value: AttrValue<'_>) {
    out.extend_from_slice(b"{\"key\":");
    push_str2(out, prefix, name);
    match value {
        AttrValue::Str(s) => {
            out.extend_from_slice(b",\"value\":{\"stringValue\":");
            push_str(out, s);
        }
        AttrValue::Int(i) => {
            out.extend_from_slice(b",\"value\":{\"intValue\":");
            push_int_str(out, i);
        }
        AttrValue::Double(d) => {
            out.extend_from_slice(b",\"value\":{\"doubleValue\":");
            push_f64(out, d);
        }
    }
    out.extend_from_slice(b"}}");
}

/// The fixed text around a batch's log records: resource and scope, built once per config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    prefix: Vec<u8>,
}

/// Closes `logRecords`, `scopeLogs` and `resourceLogs`.
const SUFFIX: &[u8] = b"]}]}]}";

impl Envelope {
    /// An envelope whose resource carries `resource` as string attributes.
    pub fn new<'a>(resource: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
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
        Envelope { prefix: p }
    }

    /// Bytes a batch adds beyond its records and their separating commas.
    pub fn overhead(&self) -> usize {
        self.prefix.len() + SUFFIX.len()
    }

    /// Joins encoded log-record fragments into one `ExportLogsServiceRequest` body.
    pub fn wrap<'a>(
        &self,
        records: impl IntoIterator<Item = &'a [u8]>,
        size_hint: usize,
    ) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.overhead() + size_hint);
        body.extend_from_slice(&self.prefix);
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

    fn sample() -> AccessRecord {
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
    fn a_tally_record_decodes_with_every_count() {
        use crate::sample::{RequestFacts, Sampler};
        let policy = crate::FilterConfig::from_json(br#"{"sampling":{"default_rate":0.0}}"#)
            .unwrap()
            .sampling;
        let mut s = Sampler::new(policy.clone(), 1_000);
        let ok = RequestFacts {
            trace_id: Some([7; 16]),
            path: Some("/a"),
            route: Some("/a"),
            status: Some(200),
            ..RequestFacts::default()
        };
        let err = RequestFacts {
            status: Some(503),
            ..ok
        };
        let hc = RequestFacts {
            path: Some("/healthz"),
            route: None,
            ..ok
        };
        for f in [ok, ok, err, hc] {
            s.decide(&f, 2_000);
        }
        let t = s.take_tally(5_000);
        let mut a = Vec::new();
        encode_tally_record(&mut a, &t, Some(7), 6_000);
        let body = Envelope::new([("service.name", "x")]).wrap([a.as_slice()], a.len());
        let req: ExportLogsServiceRequest = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
        let lr = &req.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(lr.event_name, "meshlog.sampling.tally");
        assert_eq!(lr.time_unix_nano, 5_000);
        assert_eq!(lr.observed_time_unix_nano, 6_000);
        assert_eq!(lr.severity_number, 9);
        assert!(lr.trace_id.is_empty());
        let get = |k: &str| {
            lr.attributes
                .iter()
                .find(|kv| kv.key == k)
                .and_then(|kv| kv.value.as_ref()?.value.clone())
                .unwrap_or_else(|| panic!("no {k} in {lr:?}"))
        };
        assert_eq!(get("meshlog.sampling.seen"), Value::IntValue(4));
        assert_eq!(get("meshlog.sampling.kept"), Value::IntValue(1));
        assert_eq!(get("meshlog.sampling.kept.always"), Value::IntValue(1));
        assert_eq!(get("meshlog.dropped.sampled"), Value::IntValue(2));
        assert_eq!(get("meshlog.dropped.health_check"), Value::IntValue(1));
        assert_eq!(get("meshlog.dropped.rate_cap"), Value::IntValue(0));
        assert_eq!(
            get("meshlog.sampling.interval.start_ns"),
            Value::IntValue(1_000)
        );
        assert_eq!(
            get("meshlog.sampling.interval.end_ns"),
            Value::IntValue(5_000)
        );
        assert_eq!(
            get("meshlog.sampling.policy_version"),
            Value::StringValue(policy.version().into())
        );
        assert_eq!(get("meshlog.sequence"), Value::IntValue(7));
        let Value::StringValue(by_route) = get("meshlog.sampling.by_route") else {
            panic!("by_route is a string")
        };
        let v: serde_json::Value = serde_json::from_str(&by_route).unwrap();
        assert_eq!(v["/a"]["sampled"], 2);
        // Without a sequence, the attribute list stays valid JSON.
        let mut b = Vec::new();
        encode_tally_record(&mut b, &Tally::default(), None, 0);
        let _: serde_json::Value = serde_json::from_slice(&b).unwrap();
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
