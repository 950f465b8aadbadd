//! OTLP/JSON read in place into the borrowed [`view`](super::view) of a request: keys and
//! strings point into the body (escaped strings and decoded hex ids go to a per-request arena)
//! instead of being copied into prost's owned structs, so the records are written straight to
//! the frame by [`flatten::write_view_record`](super::flatten::write_view_record).
//!
//! The reader is serde_json driving hand-written visitors that mirror what
//! `opentelemetry-proto`'s derived `Deserialize` impls accept: the same field names, the same
//! types per field (`u64` as number or string, `int_value` as number or string, `f64` from any
//! number), `null` where the derive takes `None`, a field given twice refused, unknown fields
//! skipped (`AnyValue`'s too: its derive is flattened), the last non-null `AnyValue` member
//! winning. What it does not read exactly as that derive does is [`Unsupported`], and so is
//! any error: a struct sent as a JSON array, a hex id that is not plain even-length hex,
//! `bytesValue` (base64 stays the derive's to judge). The caller then decodes with serde into
//! prost's structs, which accepts or refuses the body as before, with its error naming the field.

use super::view::{Kv, RecordView, RequestView, ResourceLogsView, ScopeLogsView, Unsupported, Val};
use bumpalo::Bump;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, KeyValueList, any_value,
};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Reads an OTLP/JSON `ExportLogsServiceRequest`; escaped strings and hex ids live in `arena`.
pub fn request<'a>(bytes: &'a [u8], arena: &'a Bump) -> Result<RequestView<'a>, Unsupported> {
    // One UTF-8 check of the whole body instead of one per string (serde_json's `StrRead`
    // skips its own). Invalid UTF-8 that serde would take (inside an ignored string) is
    // declined here: serde then reads it.
    let text = std::str::from_utf8(bytes).map_err(|_| Unsupported)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let req = Req(arena).deserialize(&mut de).map_err(|_| Unsupported)?;
    // serde_json::from_slice refuses trailing characters: so does the reader.
    de.end().map_err(|_| Unsupported)?;
    Ok(req)
}

/// The index of `key` in `fields`, or `fields.len()` when it is not one of them.
struct Key(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl Visitor<'_> for Key {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        Ok(self.0.iter().position(|k| *k == v).unwrap_or(self.0.len()))
    }
}

/// The derive refuses a field given twice.
fn once<E: de::Error>(seen: &mut u32, field: usize) -> Result<(), E> {
    let bit = 1 << field;
    if *seen & bit != 0 {
        return Err(E::custom("duplicate field"));
    }
    *seen |= bit;
    Ok(())
}

/// A string, borrowed from the body when it has no escapes, else copied to the arena.
#[derive(Clone, Copy)]
struct Str<'a>(&'a Bump);

impl<'de: 'a, 'a> DeserializeSeed<'de> for Str<'a> {
    type Value = &'a str;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'a str, D::Error> {
        d.deserialize_string(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Str<'a> {
    type Value = &'a str;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<&'a str, E> {
        Ok(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<&'a str, E> {
        Ok(self.0.alloc_str(v))
    }
}

/// `Option<T>` as the derive reads it: `null` is `None`.
struct Opt<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Opt<S> {
    type Value = Option<S::Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Opt<S> {
    type Value = Option<S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an optional value")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(d).map(Some)
    }
}

/// A JSON array of `S`, pushed onto `out`.
struct Seq<'v, S, T> {
    seed: S,
    out: &'v mut Vec<T>,
}

impl<'de, S: DeserializeSeed<'de, Value = T> + Copy, T> DeserializeSeed<'de> for Seq<'_, S, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, S: DeserializeSeed<'de, Value = T> + Copy, T> Visitor<'de> for Seq<'_, S, T> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element_seed(self.seed)? {
            self.out.push(v);
        }
        Ok(())
    }
}

/// `u64` as `opentelemetry-proto` reads times: a number, or a string holding one.
struct U64;

impl<'de> DeserializeSeed<'de> for U64 {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for U64 {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a u64 integer or a string containing a u64 integer")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(E::custom)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        v.parse().map_err(E::custom)
    }
}

/// `intValue` as `opentelemetry-proto` reads it (an untagged `i64` or string): an integer
/// that fits `i64`, or a string that parses as one.
struct I64;

impl<'de> DeserializeSeed<'de> for I64 {
    type Value = i64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<i64, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for I64 {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an i64 integer or a string containing one")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(E::custom)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        v.parse().map_err(E::custom)
    }
}

/// A trace or span id: plain even-length hex (no `0x`), decoded into the arena. Anything else
/// is left to the derive's hex decoder.
#[derive(Clone, Copy)]
struct Hex<'a>(&'a Bump);

impl<'a> Hex<'a> {
    fn read<'de, M: MapAccess<'de>>(self, map: &mut M) -> Result<&'a [u8], M::Error> {
        let s: &str = map.next_value_seed(Str(self.0))?;
        let b = s.as_bytes();
        if !b.len().is_multiple_of(2) {
            return Err(de::Error::custom("odd hex"));
        }
        let out = self.0.alloc_slice_fill_copy(b.len() / 2, 0u8);
        for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
            match pair {
                &[h, l] if let (Some(h), Some(l)) = (nibble(h), nibble(l)) => *o = h << 4 | l,
                _ => return Err(de::Error::custom("not plain hex")),
            }
        }
        Ok(out)
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Implements `DeserializeSeed` for an arena-carrying struct seed read from a JSON object.
macro_rules! object_seed {
    ($seed:ident, $value:ty, $what:literal) => {
        impl<'de: 'a, 'a> DeserializeSeed<'de> for $seed<'a> {
            type Value = $value;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<$value, D::Error> {
                d.deserialize_map(self)
            }
        }
        impl<'de: 'a, 'a> Visitor<'de> for $seed<'a> {
            type Value = $value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str($what)
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<$value, M::Error> {
                self.read(map)
            }
        }
    };
}

#[derive(Clone, Copy)]
struct Req<'a>(&'a Bump);
object_seed!(Req, RequestView<'a>, "an ExportLogsServiceRequest");

impl<'a> Req<'a> {
    fn read<'de: 'a, M: MapAccess<'de>>(self, mut map: M) -> Result<RequestView<'a>, M::Error> {
        let mut out = RequestView::default();
        let mut seen = 0;
        while let Some(k) = map.next_key_seed(Key(&["resourceLogs"]))? {
            match k {
                0 => {
                    once(&mut seen, k)?;
                    map.next_value_seed(Seq {
                        seed: ResLogs(self.0),
                        out: &mut out.resource_logs,
                    })?;
                }
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok(out)
    }
}

#[derive(Clone, Copy)]
struct ResLogs<'a>(&'a Bump);
object_seed!(ResLogs, ResourceLogsView<'a>, "a ResourceLogs");

impl<'a> ResLogs<'a> {
    fn read<'de: 'a, M: MapAccess<'de>>(
        self,
        mut map: M,
    ) -> Result<ResourceLogsView<'a>, M::Error> {
        let mut out = ResourceLogsView::default();
        let mut seen = 0;
        while let Some(k) = map.next_key_seed(Key(&["resource", "scopeLogs", "schemaUrl"]))? {
            match k {
                0 => {
                    once(&mut seen, k)?;
                    if let Some(r) = map.next_value_seed(Opt(Resource(self.0)))? {
                        out.resource = r;
                    }
                }
                1 => {
                    once(&mut seen, k)?;
                    map.next_value_seed(Seq {
                        seed: ScopeLogs(self.0),
                        out: &mut out.scope_logs,
                    })?;
                }
                2 => {
                    once(&mut seen, k)?;
                    map.next_value_seed(Str(self.0))?;
                }
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok(out)
    }
}

#[derive(Clone, Copy)]
struct Resource<'a>(&'a Bump);
object_seed!(Resource, Vec<Kv<'a>>, "a Resource");

impl<'a> Resource<'a> {
    fn read<'de: 'a, M: MapAccess<'de>>(self, mut map: M) -> Result<Vec<Kv<'a>>, M::Error> {
        let mut out = Vec::new();
        let mut seen = 0;
        while let Some(k) =
            map.next_key_seed(Key(&["attributes", "droppedAttributesCount", "entityRefs"]))?
        {
            match k {
                0 => {
                    once(&mut seen, k)?;
                    map.next_value_seed(Seq {
                        seed: KeyValue(self.0),
                        out: &mut out,
                    })?;
                }
                1 => {
                    once(&mut seen, k)?;
                    map.next_value::<u32>()?;
                }
                2 => {
                    once(&mut seen, k)?;
                    map.next_value::<Vec<EntityRef>>()?;
                }
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok(out)
    }
}

#[derive(Clone, Copy)]
struct ScopeLogs<'a>(&'a Bump);
object_seed!(ScopeLogs, ScopeLogsView<'a>, "a ScopeLogs");

impl<'a> ScopeLogs<'a> {
    fn read<'de: 'a, M: MapAccess<'de>>(self, mut map: M) -> Result<ScopeLogsView<'a>, M::Error> {
        let mut out = ScopeLogsView::default();
        let mut seen = 0;
        while let Some(k) = map.next_key_seed(Key(&["scope", "logRecords", "schemaUrl"]))? {
            match k {
                0 => {
                    once(&mut seen, k)?;
                    if let Some(s) = map.next_value_seed(Opt(Scope(self.0)))? {
                        (out.name, out.version, out.attributes) = s;
                    }
                }
                1 => {
                    once(&mut seen, k)?;
                    map.next_value_seed(Seq {
                        seed: Record(self.0),
                        out: &mut out.log_records,
                    })?;
                }
                2 => {
                    once(&mut seen, k)?;
                    map.next_value_seed(Str(self.0))?;
                }
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok(out)
    }
}

/// An `InstrumentationScope`: name, version, attributes.
type ScopeParts<'a> = (&'a str, &'a str, Vec<Kv<'a>>);

#[derive(Clone, Copy)]
struct Scope<'a>(&'a Bump);
object_seed!(Scope, ScopeParts<'a>, "an InstrumentationScope");

impl<'a> Scope<'a> {
    fn read<'de: 'a, M: MapAccess<'de>>(self, mut map: M) -> Result<ScopeParts<'a>, M::Error> {
        let (mut name, mut version, mut attributes) = ("", "", Vec::new());
        let mut seen = 0;
        while let Some(k) = map.next_key_seed(Key(&[
            "name",
            "version",
            "attributes",
            "droppedAttributesCount",
        ]))? {
            match k {
                0 => {
                    once(&mut seen, k)?;
                    name = map.next_value_seed(Str(self.0))?;
                }
                1 => {
                    once(&mut seen, k)?;
                    version = map.next_value_seed(Str(self.0))?;
                }
                2 => {
                    once(&mut seen, k)?;
                    map.next_value_seed(Seq {
                        seed: KeyValue(self.0),
                        out: &mut attributes,
                    })?;
                }
                3 => {
                    once(&mut seen, k)?;
                    map.next_value::<u32>()?;
                }
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok((name, version, attributes))
    }
}

#[derive(Clone, Copy)]
struct Record<'a>(&'a Bump);
object_seed!(Record, RecordView<'a>, "a LogRecord");

const RECORD_FIELDS: &[&str] = &[
    "timeUnixNano",
    "observedTimeUnixNano",
    "severityNumber",
    "severityText",
    "body",
    "attributes",
    "droppedAttributesCount",
    "flags",
    "traceId",
    "spanId",
    "eventName",
];

impl<'a> Record<'a> {
    fn read<'de: 'a, M: MapAccess<'de>>(self, mut map: M) -> Result<RecordView<'a>, M::Error> {
        let mut out = RecordView {
            attributes: Vec::with_capacity(32),
            ..RecordView::default()
        };
        let mut seen = 0;
        while let Some(k) = map.next_key_seed(Key(RECORD_FIELDS))? {
            if k < RECORD_FIELDS.len() {
                once(&mut seen, k)?;
            }
            match k {
                0 => out.time_unix_nano = map.next_value_seed(U64)?,
                1 => out.observed_time_unix_nano = map.next_value_seed(U64)?,
                2 => out.severity_number = map.next_value()?,
                3 => out.severity_text = map.next_value_seed(Str(self.0))?,
                4 => out.body = map.next_value_seed(Opt(Any(self.0)))?,
                5 => map.next_value_seed(Seq {
                    seed: KeyValue(self.0),
                    out: &mut out.attributes,
                })?,
                6 => drop(map.next_value::<u32>()?),
                7 => out.flags = map.next_value()?,
                8 => out.trace_id = Hex(self.0).read(&mut map)?,
                9 => out.span_id = Hex(self.0).read(&mut map)?,
                10 => out.event_name = map.next_value_seed(Str(self.0))?,
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok(out)
    }
}

#[derive(Clone, Copy)]
struct KeyValue<'a>(&'a Bump);
object_seed!(KeyValue, Kv<'a>, "a KeyValue");

impl<'a> KeyValue<'a> {
    fn read<'de: 'a, M: MapAccess<'de>>(self, mut map: M) -> Result<Kv<'a>, M::Error> {
        // No `serde(default)` on KeyValue: `key` is required.
        let mut key = None;
        let mut value = Val::Empty;
        let mut seen = 0;
        while let Some(k) = map.next_key_seed(Key(&["key", "value", "keyStrindex"]))? {
            match k {
                0 => {
                    once(&mut seen, k)?;
                    key = Some(map.next_value_seed(Str(self.0))?);
                }
                1 => {
                    once(&mut seen, k)?;
                    if let Some(v) = map.next_value_seed(Opt(Any(self.0)))? {
                        value = v;
                    }
                }
                2 => {
                    once(&mut seen, k)?;
                    map.next_value::<i32>()?;
                }
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        let key = key.ok_or_else(|| de::Error::missing_field("key"))?;
        Ok(Kv { key, value })
    }
}

/// An `AnyValue` (its derive flattens the oneof: unknown keys are skipped, each member may
/// appear any number of times, the last non-null one wins).
#[derive(Clone, Copy)]
struct Any<'a>(&'a Bump);
object_seed!(Any, Val<'a>, "a JSON object for AnyValue");

impl<'a> Any<'a> {
    fn read<'de: 'a, M: MapAccess<'de>>(self, mut map: M) -> Result<Val<'a>, M::Error> {
        let mut value = Val::Empty;
        let nested = |v| Val::Nested(Box::new(AnyValue { value: Some(v) }));
        while let Some(k) = map.next_key_seed(Key(&[
            "stringValue",
            "boolValue",
            "intValue",
            "doubleValue",
            "arrayValue",
            "kvlistValue",
            "bytesValue",
        ]))? {
            let v = match k {
                0 => map.next_value_seed(Opt(Str(self.0)))?.map(Val::Str),
                1 => map.next_value::<Option<bool>>()?.map(Val::Bool),
                2 => map.next_value_seed(Opt(I64))?.map(Val::Int),
                3 => map.next_value::<Option<f64>>()?.map(Val::Double),
                4 => map
                    .next_value::<Option<ArrayValue>>()?
                    .map(|a| nested(any_value::Value::ArrayValue(a))),
                5 => map
                    .next_value::<Option<KeyValueList>>()?
                    .map(|l| nested(any_value::Value::KvlistValue(l))),
                6 => return Err(de::Error::custom("bytesValue is the derive's to decode")),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    None
                }
            };
            if let Some(v) = v {
                value = v;
            }
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use crate::WireFormat;
    use crate::ingest::Limits;
    use crate::ingest::decode::parse;
    use crate::ingest::pipeline::{
        OneClass, Redaction, prepare_json_view, prepare_request, stamp_tenant,
    };
    use meshlog_format::batch_id::BatchId;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// Whether the in-place reader took `body`; when it did, serde into prost's structs takes
    /// it too and the frames are byte for byte the same (with and without a tenant). When
    /// serde refuses it, the reader must have declined.
    fn same_frames(body: &[u8], redaction: &Redaction) -> bool {
        let limits = Limits::default();
        let id = BatchId::parse(b"vm:1-2").ok();
        let mut took = None;
        for tenant in [None, Some("bank")] {
            let viewed = prepare_json_view(body, tenant, limits, 7, id.clone(), None, redaction);
            let decoded = parse(body, WireFormat::Json);
            let Some(viewed) = viewed else {
                took = Some(false);
                continue;
            };
            let mut req = decoded.unwrap_or_else(|e| {
                panic!(
                    "the reader took a body serde refuses ({e}): {}",
                    String::from_utf8_lossy(body)
                )
            });
            stamp_tenant(&mut req, tenant);
            let mapped = prepare_request(&req, limits, 7, id.clone(), None, &OneClass, redaction);
            match (viewed, mapped) {
                (Ok(v), Ok(m)) => {
                    assert_eq!(v.len(), m.len());
                    for ((_, a), (_, b)) in v.iter().zip(&m) {
                        assert_eq!(
                            a.bytes(),
                            b.bytes(),
                            "frames differ: {}",
                            String::from_utf8_lossy(body)
                        );
                    }
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                (v, m) => panic!("reader {:?} vs serde {:?}", v.is_ok(), m.is_ok()),
            }
            took = Some(true);
        }
        took == Some(true)
    }

    fn wrap(records: Value) -> Vec<u8> {
        json!({"resourceLogs": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "shop"}},
                {"key": "meshlog.tenant", "value": {"stringValue": "spoof"}}
            ]},
            "scopeLogs": [{"scope": {"name": "meshlog", "version": "1"}, "logRecords": records}]
        }]})
        .to_string()
        .into_bytes()
    }

    /// The bodies the filter sends (as `meshlog-otlp-load` does) are read in place, with the
    /// collector's default redaction (which skips them: they are marked).
    #[test]
    fn the_filters_batches_are_read_in_place_with_the_same_frames() {
        use meshlog_core::capture::MapSource;
        use meshlog_core::otlp::{Envelope, encode_log_record};
        use meshlog_core::redact::RedactionPolicy;
        let policy = RedactionPolicy::default();
        let frags: Vec<Vec<u8>> = (0..20)
            .map(|i| {
                let src = MapSource::default()
                    .int("request.time", 1_764_000_000_000_000_000 + i)
                    .text("request.method", "GET")
                    .text(
                        "request.url_path",
                        format!("/api/\"orders\"/{i}/é\u{1F600}\t"),
                    )
                    .text("request.query", "page=2&user=jo%40example.com")
                    .int("response.code", if i % 5 == 0 { 503 } else { 200 })
                    .header(
                        "traceparent",
                        format!("00-{:032x}-{:016x}-01", i + 1, i + 1),
                    );
                let rec = meshlog_core::capture_http(&src, &policy, 1_764_000_000_001_000_000);
                let mut b = Vec::new();
                encode_log_record(&mut b, &rec);
                b
            })
            .collect();
        let body = Envelope::new([("service.name", "shop"), ("meshlog.tenant", "spoof")])
            .wrap(frags.iter().map(Vec::as_slice), 0);
        assert!(same_frames(&body, &Redaction::default()));
        assert!(same_frames(&body, &Redaction::off()));
    }

    /// Hand-picked bodies: which the reader takes (same frames), and which it leaves to serde
    /// (always those serde refuses, and a few it reads otherwise).
    #[test]
    fn odd_bodies_are_read_exactly_or_left_to_serde() {
        let off = Redaction::off();
        let rec = |extra: Value| {
            let mut r = json!({
                "timeUnixNano": "1764000000000000000",
                "severityNumber": 9,
                "body": {"stringValue": "hello"},
                "attributes": [{"key": "a", "value": {"intValue": "5"}}]
            });
            if let (Some(r), Some(e)) = (r.as_object_mut(), extra.as_object()) {
                r.extend(e.clone());
            }
            wrap(json!([r]))
        };
        let taken: Vec<Vec<u8>> = vec![
            rec(json!({})),
            // Escapes and unicode, raw and escaped (surrogate pairs too), in keys and values.
           r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"a\"b\\c\/d\u00e9\ud83d\ude00\n\t é😀"},"attributes":[{"key":"k\u00e9\"y","value":{"stringValue":"\u0000"}}]}]}]}]}"#.as_bytes().to_vec(),
            // An escaped field name is the field.
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"time\u0055nixNano":"5"}]}]}]}"#.to_vec(),
            // Numbers in every form the derive takes.
            rec(json!({"observedTimeUnixNano": 17, "flags": 1, "attributes": [
                {"key": "i1", "value": {"intValue": -9_223_372_036_854_775_808_i64}},
                {"key": "i2", "value": {"intValue": "+12"}},
                {"key": "i3", "value": {"intValue": "-0"}},
                {"key": "d1", "value": {"doubleValue": 1}},
                {"key": "d2", "value": {"doubleValue": -0.0}},
                {"key": "d3", "value": {"doubleValue": 1e300}},
                {"key": "d4", "value": {"doubleValue": 0.1}},
                {"key": "d5", "value": {"doubleValue": u64::MAX}},
                {"key": "b", "value": {"boolValue": false}}
            ]})),
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":18446744073709551615,"attributes":[{"key":"d","value":{"doubleValue":1.5E-7}},{"key":"e","value":{"doubleValue":123456789012345678901234567890}}]}]}]}]}"#.to_vec(),
            rec(json!({"timeUnixNano": "+5", "observedTimeUnixNano": "0"})),
            // Missing and empty parts.
            br#"{}"#.to_vec(),
            br#"{"resourceLogs":[]}"#.to_vec(),
            br#"{"resourceLogs":[{}]}"#.to_vec(),
            br#"{"resourceLogs":[{"resource":null,"scopeLogs":[{"scope":null,"logRecords":[{}]}]}]}"#.to_vec(),
            br#"{"resourceLogs":[{"resource":{},"scopeLogs":[{"scope":{},"logRecords":[{"body":null},{"body":{}}]}]}]}"#.to_vec(),
            rec(json!({"attributes": [{"key": "none"}, {"key": "null", "value": null},
                {"key": "empty", "value": {}}, {"key": "", "value": {"stringValue": ""}}]})),
            // Hex ids, either case; empty ones.
            rec(json!({"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "eee19b7ec3c1b174"})),
            rec(json!({"traceId": "", "spanId": ""})),
            // Nested values, and the last non-null member of an AnyValue winning.
            rec(json!({"body": {"kvlistValue": {"values": [
                {"key": "z", "value": {"arrayValue": {"values": [{"intValue": 1}, {}]}}},
                {"key": "a", "value": {"doubleValue": 2.5}}]}}})),
            rec(json!({"body": {"arrayValue": {"values": []}}})),
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"a","intValue":"3","boolValue":null,"other":[1,{"x":2}]}}]}]}]}"#.to_vec(),
            // Unknown fields everywhere, snake_case names among them (unknown to the derive).
            rec(json!({"time_unix_nano": "1", "extra": {"deep": [null, true]},
                "attributes": [{"key": "a", "value": {"stringValue": "x"}, "other": 1}]})),
            br#"{"resourceLogs":[{"schemaUrl":"s","x":1,"resource":{"droppedAttributesCount":2,"entityRefs":[{"schemaUrl":"","type":"t","idKeys":["a"],"descriptionKeys":[]}]},"scopeLogs":[{"schemaUrl":"","scope":{"droppedAttributesCount":0,"attributes":[{"key":"s","value":{"boolValue":true},"keyStrindex":3}]},"logRecords":[{"eventName":"e","severityText":"INFO","droppedAttributesCount":1}]}]}],"more":null}"#.to_vec(),
            // Attribute keys that collide with the record's own fields, and duplicates.
            rec(json!({"attributes": [
                {"key": "body", "value": {"stringValue": "renamed"}},
                {"key": "dup", "value": {"boolValue": false}},
                {"key": "dup", "value": {"boolValue": true}}]})),
            b" \n{\"resourceLogs\":[]}\n\t ".to_vec(),
        ];
        for body in &taken {
            assert!(
                same_frames(body, &off),
                "not taken: {}",
                String::from_utf8_lossy(body)
            );
        }
        // serde refuses these: the reader declines them all (the refusal is serde's).
        let refused: Vec<Vec<u8>> = vec![
            rec(json!({"timeUnixNano": 1.5})),
            rec(json!({"timeUnixNano": -1})),
            rec(json!({"timeUnixNano": "x"})),
            rec(json!({"severityNumber": "SEVERITY_NUMBER_INFO"})),
            rec(json!({"severityNumber": 3_000_000_000_u64})),
            rec(json!({"flags": -1})),
            rec(json!({"traceId": "abc"})),
            rec(json!({"traceId": "zz"})),
            rec(json!({"traceId": null})),
            rec(json!({"severityText": null})),
            rec(json!({"attributes": null})),
            rec(json!({"attributes": [{"value": {"stringValue": "no key"}}]})),
            rec(json!({"attributes": [{"key": 5}]})),
            rec(json!({"body": {"intValue": 1.0}})),
            rec(json!({"body": {"intValue": "1.0"}})),
            rec(json!({"body": {"intValue": u64::MAX}})),
            rec(json!({"body": {"doubleValue": "1"}})),
            rec(json!({"body": {"boolValue": 1}})),
            rec(json!({"body": {"bytesValue": "!!"}})),
            rec(json!({"body": {"arrayValue": {}}})),
            rec(json!({"body": "plain"})),
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"flags":1,"flags":1}]}]}]}"#.to_vec(),
            br#"{"resourceLogs":[],"resourceLogs":[]}"#.to_vec(),
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"attributes":[{"key":"a","key":"b"}]}]}]}]}"#.to_vec(),
            br#"{"resourceLogs":[{"resource":{"entityRefs":[{"idKeys":[1]}]}}]}"#.to_vec(),
            // EntityRef has no `serde(default)`: every field is required.
            br#"{"resourceLogs":[{"resource":{"entityRefs":[{"type":"t","idKeys":["a"]}]}}]}"#.to_vec(),
            br#"{"resourceLogs":null}"#.to_vec(),
            br#"{"resourceLogs":[]} x"#.to_vec(),
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"\ud800"}}]}]}]}"#.to_vec(),
            b"{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{\"severityText\":\"\xff\"}]}]}]}".to_vec(),
            b"".to_vec(),
        ];
        for body in &refused {
            assert!(
                parse(body, WireFormat::Json).is_err(),
                "serde takes {}",
                String::from_utf8_lossy(body)
            );
            assert!(!same_frames(body, &off));
        }
        // serde takes these, the reader leaves them to it: bytes values (base64), structs
        // sent as arrays, invalid UTF-8 where serde does not look.
        for body in [
            rec(json!({"body": {"bytesValue": "AP8="}})),
            br#"{"resourceLogs":[[null,[],""]]}"#.to_vec(),
            b"[]".to_vec(),
            // Invalid UTF-8 in a string serde skips unchecked (an unknown field's).
            b"{\"x\":\"\xff\",\"resourceLogs\":[]}".to_vec(),
        ] {
            assert!(parse(&body, WireFormat::Json).is_ok());
            assert!(!same_frames(&body, &off));
        }
    }

    /// Field names the reader knows (and some it does not), for the random bodies.
    const NAMES: &[&str] = &[
        "resourceLogs",
        "resource",
        "scopeLogs",
        "schemaUrl",
        "attributes",
        "droppedAttributesCount",
        "entityRefs",
        "scope",
        "name",
        "version",
        "logRecords",
        "timeUnixNano",
        "observedTimeUnixNano",
        "severityNumber",
        "severityText",
        "body",
        "flags",
        "traceId",
        "spanId",
        "eventName",
        "key",
        "value",
        "keyStrindex",
        "stringValue",
        "boolValue",
        "intValue",
        "doubleValue",
        "arrayValue",
        "kvlistValue",
        "bytesValue",
        "values",
        "type",
        "idKeys",
        "x",
    ];

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            prop_oneof![
                "[0-9a-fA-F]{0,34}",
                "[+-]?[0-9]{1,21}",
                "\\PC{0,8}",
                Just("NaN".to_owned()),
                Just("AP8=".to_owned()),
            ]
            .prop_map(Value::String),
        ]
    }

    /// Random JSON whose objects mostly use OTLP's field names.
    fn otlp_like() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(6, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(NAMES), inner), 0..6).prop_map(|kvs| {
                    Value::Object(kvs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    /// A random `AnyValue`: mostly well-formed members, sometimes anything.
    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            "\\PC{0,8}".prop_map(|s| json!({"stringValue": s})),
            any::<i64>().prop_map(|i| json!({"intValue": i})),
            any::<i64>().prop_map(|i| json!({"intValue": i.to_string()})),
            any::<f64>().prop_map(|d| json!({"doubleValue": d})),
            any::<bool>().prop_map(|b| json!({"boolValue": b})),
            Just(json!({})),
            otlp_like(),
        ]
    }

    /// A well-formed record with up to two of its fields replaced by random JSON, and random
    /// attributes; sometimes with a field given twice (as raw text: a JSON map cannot).
    fn random_body() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::collection::vec((prop::sample::select(NAMES), otlp_like()), 0..3),
            prop::collection::vec(("[a-c.]{0,3}", any_value()), 0..6),
            any_value(),
            any::<bool>(),
        )
            .prop_map(|(swaps, attrs, body, dup)| {
                let mut rec = json!({
                    "timeUnixNano": "1764000000000000000",
                    "observedTimeUnixNano": 1_764_000_000_000_000_001_u64,
                    "severityNumber": 9,
                    "severityText": "INFO",
                    "body": body,
                    "attributes": attrs.into_iter()
                        .map(|(k, v)| json!({"key": k, "value": v}))
                        .collect::<Vec<_>>(),
                    "flags": 1,
                    "traceId": "5b8efff798038103d269b633813fc60c",
                    "spanId": "EEE19B7EC3C1B174",
                    "eventName": "e",
                });
                if let Some(o) = rec.as_object_mut() {
                    for (k, v) in swaps {
                        o.insert(k.to_owned(), v);
                    }
                }
                let s = String::from_utf8_lossy(&wrap(json!([rec]))).into_owned();
                if dup {
                    s.replacen("\"flags\":1", "\"flags\":1,\"flags\":1", 1)
                        .into_bytes()
                } else {
                    s.into_bytes()
                }
            })
    }

    /// On random OTLP-shaped bodies the reader either makes serde's frames or declines; and
    /// it takes a fair share of them (else the property says little).
    #[test]
    fn random_bodies_make_the_same_frames_or_are_declined() {
        use proptest::test_runner::{Config, TestRunner};
        let taken = std::cell::Cell::new(0);
        let mut runner = TestRunner::new(Config::with_cases(3000));
        runner
            .run(&random_body(), |body| {
                if same_frames(&body, &Redaction::off()) {
                    taken.set(taken.get() + 1);
                }
                Ok(())
            })
            .unwrap();
        assert!(taken.get() > 300, "only {} of 3000 taken", taken.get());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The same on raw random JSON anywhere in the request.
        #[test]
        fn random_requests_make_the_same_frames_or_are_declined(v in otlp_like()) {
            same_frames(v.to_string().as_bytes(), &Redaction::off());
            same_frames(json!({"resourceLogs": [v]}).to_string().as_bytes(), &Redaction::off());
        }
    }
}
