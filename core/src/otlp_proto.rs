//! OTLP/HTTP protobuf encoding of access records and events (`collector.protocol:
//! "http/protobuf"`): the same `ExportLogsServiceRequest` as [`crate::otlp`]'s JSON, field for
//! field, in the binary form. A record is about half the bytes of its JSON (no key names, no
//! quoting, integers as varints), so encoding and gzip touch half as much.
//!
//! Written by hand (a few dozen lines of varints and length prefixes) rather than through
//! generated types: the encoder walks the record as the JSON encoder does, allocating nothing but
//! the output. Each record is one complete `log_records` field (tag, length, message), so a batch
//! is the fragments concatenated inside an envelope whose lengths are known at sealing time.

use crate::record::{AccessRecord, AttrValue, Event};
use crate::schema::MESHLOG_SEQUENCE;

/// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn push_tag(out: &mut Vec<u8>, field: u8, wire: u8) {
    out.push((field << 3) | wire);
}

fn push_bytes_field(out: &mut Vec<u8>, field: u8, a: &[u8], b: &[u8]) {
    push_tag(out, field, LEN);
    push_varint(out, (a.len() + b.len()) as u64);
    out.extend_from_slice(a);
    out.extend_from_slice(b);
}

fn push_fixed64_field(out: &mut Vec<u8>, field: u8, v: u64) {
    push_tag(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

/// Starts a length-delimited field whose length is not known yet: returns where the body
/// starts. [`end_len`] writes the length in front of it.
fn begin_len(out: &mut Vec<u8>, field: u8) -> usize {
    push_tag(out, field, LEN);
    out.len()
}

/// Inserts the varint length of everything after `start` at `start`.
fn end_len(out: &mut Vec<u8>, start: usize) {
    let n = out.len().saturating_sub(start);
    let mut len = Vec::with_capacity(2);
    push_varint(&mut len, n as u64);
    // Short messages (< 128 bytes, a key-value) need one byte: no need to move much.
    out.splice(start..start, len);
}

/// One `KeyValue` (field `field` of its parent), key `prefix` + `name`.
fn push_key_value(out: &mut Vec<u8>, field: u8, prefix: &str, name: &str, value: AttrValue<'_>) {
    let key_len = prefix.len() + name.len();
    // AnyValue's body and its own length: written straight, no back-patching.
    let (any_body_len, any_len) = match value {
        AttrValue::Str(s) => {
            let n = 1 + varint_len(s.len() as u64) + s.len();
            (n, n)
        }
        AttrValue::Int(i) => {
            let n = 1 + varint_len(i as u64);
            (n, n)
        }
        AttrValue::Double(_) => (9, 9),
    };
    let kv_len =
        1 + varint_len(key_len as u64) + key_len + 1 + varint_len(any_len as u64) + any_len;
    push_tag(out, field, LEN);
    push_varint(out, kv_len as u64);
    push_bytes_field(out, 1, prefix.as_bytes(), name.as_bytes());
    push_tag(out, 2, LEN);
    push_varint(out, any_body_len as u64);
    match value {
        AttrValue::Str(s) => push_bytes_field(out, 1, s.as_bytes(), b""),
        AttrValue::Int(i) => {
            push_tag(out, 3, VARINT);
            // int64: two's complement as a 64-bit varint.
            push_varint(out, i as u64);
        }
        AttrValue::Double(d) => push_fixed64_field(out, 4, d.to_bits()),
    }
}

/// Appends `rec` as one `ScopeLogs.log_records` field (tag, length, `LogRecord`).
pub fn encode_log_record(out: &mut Vec<u8>, rec: &AccessRecord) {
    let start = begin_len(out, 2);
    let sev = rec.severity();
    push_fixed64_field(out, 1, rec.start_time_ns.min(i64::MAX as u64));
    push_tag(out, 2, VARINT);
    push_varint(out, sev.number() as u64);
    push_bytes_field(out, 3, sev.text().as_bytes(), b"");
    rec.for_each_attribute(|prefix, name, value| push_key_value(out, 6, prefix, name, value));
    if let Some(t) = &rec.trace_id {
        push_bytes_field(out, 9, t, b"");
    }
    if let Some(s) = &rec.span_id {
        push_bytes_field(out, 10, s, b"");
    }
    push_fixed64_field(out, 11, rec.observed_time_ns.min(i64::MAX as u64));
    push_bytes_field(out, 12, rec.kind.event_name().as_bytes(), b"");
    end_len(out, start);
}

/// Appends `event` written at `now_ns` as one `log_records` field, with `meshlog.sequence`
/// when given (as [`crate::otlp::encode_event_record`]).
pub fn encode_event_record(
    out: &mut Vec<u8>,
    event: &dyn Event,
    sequence: Option<u64>,
    now_ns: u64,
) {
    let start = begin_len(out, 2);
    let sev = event.severity();
    push_fixed64_field(out, 1, event.time_ns(now_ns).min(i64::MAX as u64));
    push_tag(out, 2, VARINT);
    push_varint(out, sev.number() as u64);
    push_bytes_field(out, 3, sev.text().as_bytes(), b"");
    event.visit_attributes(&mut |key, value| push_key_value(out, 6, key, "", value));
    if let Some(seq) = sequence {
        push_key_value(
            out,
            6,
            MESHLOG_SEQUENCE,
            "",
            AttrValue::Int(i64::try_from(seq).unwrap_or(i64::MAX)),
        );
    }
    push_fixed64_field(out, 11, now_ns.min(i64::MAX as u64));
    push_bytes_field(out, 12, event.event_name().as_bytes(), b"");
    end_len(out, start);
}

/// The fixed parts of a batch: the `Resource` and the `InstrumentationScope`, each a complete
/// field, built once per configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoEnvelope {
    /// `ResourceLogs.resource` (field 1).
    resource: Vec<u8>,
    /// `ScopeLogs.scope` (field 1).
    scope: Vec<u8>,
}

impl ProtoEnvelope {
    /// An envelope whose resource carries `resource` as string attributes.
    pub fn new<'a>(
        resource: impl IntoIterator<Item = (&'a str, &'a str)>,
        scope_name: &str,
        scope_version: &str,
    ) -> Self {
        let mut r = Vec::with_capacity(128);
        let start = begin_len(&mut r, 1);
        for (k, v) in resource {
            push_key_value(&mut r, 1, k, "", AttrValue::Str(v));
        }
        end_len(&mut r, start);
        let mut s = Vec::with_capacity(32);
        let start = begin_len(&mut s, 1);
        push_bytes_field(&mut s, 1, scope_name.as_bytes(), b"");
        push_bytes_field(&mut s, 2, scope_version.as_bytes(), b"");
        end_len(&mut s, start);
        ProtoEnvelope {
            resource: r,
            scope: s,
        }
    }

    /// Bytes a batch adds beyond its records (an upper bound: length prefixes at their widest).
    pub fn overhead(&self) -> usize {
        self.resource.len() + self.scope.len() + 2 * (1 + 10)
    }

    /// One `ExportLogsServiceRequest` holding `records` (each a complete `log_records` field).
    pub fn wrap<'a>(&self, records: impl IntoIterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
        let records_len: usize = records.clone().into_iter().map(<[u8]>::len).sum();
        let scope_logs_len = self.scope.len() + records_len;
        let resource_logs_len =
            self.resource.len() + 1 + varint_len(scope_logs_len as u64) + scope_logs_len;
        let mut body = Vec::with_capacity(resource_logs_len + 12);
        push_tag(&mut body, 1, LEN);
        push_varint(&mut body, resource_logs_len as u64);
        body.extend_from_slice(&self.resource);
        push_tag(&mut body, 2, LEN);
        push_varint(&mut body, scope_logs_len as u64);
        body.extend_from_slice(&self.scope);
        for r in records {
            body.extend_from_slice(r);
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use crate::otlp::{Envelope, Protocol};
    use crate::record::{AccessRecord, EndUser, RpcInfo, SamplingMark, TlsInfo};
    use crate::redact::{Kind, Summary};
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use prost014::Message;

    fn full() -> AccessRecord<'static> {
        let mut redactions = Summary::new();
        redactions.add(Kind::Email);
        redactions.add(Kind::Email);
        AccessRecord {
            start_time_ns: 1_764_000_000_123_456_789,
            observed_time_ns: 1_764_000_000_223_456_789,
            duration_ns: Some(1_500_000),
            method: Some("POST".into()),
            scheme: Some("https".into()),
            server_address: Some("shop.example".into()),
            server_port: Some(8443),
            path: Some("/a \"quoted\"\npath/é".into()),
            query: Some("q=[REDACTED:email]".into()),
            protocol_version: Some("2".into()),
            status: Some(503),
            request_body_bytes: Some(12),
            response_body_bytes: Some(u64::MAX),
            user_agent: Some("x".repeat(300).into()),
            request_id: Some("rid".into()),
            response_flags: Some("UF,URX".into()),
            response_flags_mask: 0x41,
            response_code_details: Some("upstream_reset".into()),
            upstream_cluster: Some("app".into()),
            upstream_host: Some("10.0.0.2:80".into()),
            client_address: Some("10.0.0.0".into()),
            client_port: Some(5555),
            downstream_local_address: Some("10.0.0.1:443".into()),
            trace_id: Some([0xab; 16]),
            span_id: Some([0x01; 8]),
            route: Some("/a/{id}".into()),
            request_headers: vec![("x-forwarded-proto".into(), "https".into())],
            response_headers: vec![("content-type".into(), "text/plain".into())],
            request_trailers: vec![("x-t".into(), "1".into())],
            response_trailers: vec![("grpc-message".into(), "".into())],
            rpc: Some(RpcInfo {
                system: "grpc",
                service: Some("pkg.Svc".into()),
                method: Some("Get".into()),
                grpc_status: Some(14),
            }),
            redactions,
            policy_version: Some("0123456789abcdef".into()),
            direction: Some("inbound"),
            tls: Some(TlsInfo {
                version: Some("1.3".into()),
                server_name: Some("shop.example".into()),
                peer_principal: Some("spiffe://x/ns/a/sa/b".into()),
                peer_cert_sha256: Some("AB".repeat(32)),
            }),
            enduser: Some(EndUser {
                id: Some("u-1".into()),
                issuer: Some("https://idp".into()),
                claims: vec![("tenant".into(), "t1".into())],
            }),
            sequence: Some(u64::MAX),
            sampling: Some(SamplingMark {
                adjusted_count: 10.0 / 3.0,
                reason: "sampled",
                policy_version: "fedcba9876543210".into(),
            }),
            ..AccessRecord::default()
        }
    }

    /// The protobuf body decodes to exactly the request the JSON body decodes to: the
    /// collector stores the same records whichever the filter sends.
    #[test]
    fn protobuf_and_json_bodies_are_the_same_request() {
        // A sampling tally with counts, rates and a by-route table.
        let policy = crate::FilterConfig::from_json(br#"{"sampling":{"default_rate":0.25}}"#)
            .unwrap()
            .sampling;
        let mut sampler = crate::sample::Sampler::new(policy, 1_000);
        for status in [200, 200, 503, 404] {
            sampler.decide(
                &crate::sample::RequestFacts {
                    trace_id: Some([status as u8; 16]),
                    path: Some("/a"),
                    route: Some("/a"),
                    status: Some(status),
                    ..crate::sample::RequestFacts::default()
                },
                2_000,
            );
        }
        let tally = sampler.take_tally(5_000);
        let resource = [("service.name", "checkout"), ("meshlog.vm_id", "00ff")];
        let mut decoded = Vec::new();
        for protocol in [Protocol::Json, Protocol::Protobuf] {
            let env = Envelope::with_protocol(protocol, resource);
            let mut frags: Vec<Vec<u8>> = Vec::new();
            for rec in [full(), AccessRecord::default()] {
                let mut b = Vec::new();
                env.encode_record(&mut b, &rec);
                frags.push(b);
            }
            let mut b = Vec::new();
            env.encode_event(&mut b, &tally, Some(42), 9_000);
            frags.push(b);
            let size: usize = frags.iter().map(Vec::len).sum();
            let body = env.wrap(frags.iter().map(Vec::as_slice), size);
            assert!(body.len() <= env.overhead() + size + frags.len());
            let req = match protocol {
                Protocol::Json => serde_json::from_slice::<ExportLogsServiceRequest>(&body)
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body))),
                Protocol::Protobuf => ExportLogsServiceRequest::decode(body.as_slice()).unwrap(),
            };
            decoded.push((req, body.len()));
        }
        let (json, json_len) = &decoded[0];
        let (proto, proto_len) = &decoded[1];
        assert_eq!(json.resource_logs[0].scope_logs[0].log_records.len(), 3);
        assert_eq!(json, proto);
        assert!(proto_len * 3 < json_len * 2, "{proto_len} vs {json_len}");
    }

    #[test]
    fn an_empty_batch_is_a_valid_request() {
        let env = Envelope::with_protocol(Protocol::Protobuf, []);
        let req = ExportLogsServiceRequest::decode(env.wrap([], 0).as_slice()).unwrap();
        assert!(req.resource_logs[0].scope_logs[0].log_records.is_empty());
        assert_eq!(
            req.resource_logs[0].scope_logs[0]
                .scope
                .as_ref()
                .unwrap()
                .name,
            "meshlog"
        );
    }
}
