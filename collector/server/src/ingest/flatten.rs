//! Maps OTLP log records to meshlog's canonical flat records (one JSON object per record).
//!
//! Flat, because an auditor's question is "show every request where `url.path` = X": each
//! attribute sits at the top level under its own name, resource attributes under
//! `resource.<key>`, scope name/version under `scope.name` / `scope.version`, scope attributes
//! under `scope.attributes.<key>`, and the record's own fields under the names in
//! [`meshlog_core::schema::RESERVED`]. A log attribute whose name would land on one of those
//! (a reserved name, or one starting with `resource.` or `scope.`) is stored as `attr.<key>`,
//! and where two values still compete for a key the first one wins: nothing is overwritten.

use super::view::{Kv, RecordView, ScopeLogsView, Val};
use meshlog_core::schema::RESERVED;
use meshlog_format::frame::MEMBER_ESCAPED;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde_json::{Map, Number, Value};
use std::borrow::Cow;

/// One canonical record.
pub type Record = Map<String, Value>;

/// Number of log records in a request.
pub fn record_count(req: &ExportLogsServiceRequest) -> usize {
    req.resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len())
        .sum()
}

/// Calls `emit` with the canonical form of every log record in `req`, in request order.
/// `received_unix_nano` stands in for a zero `observed_time_unix_nano`.
pub fn for_each_record<E>(
    req: &ExportLogsServiceRequest,
    received_unix_nano: u64,
    mut emit: impl FnMut(Record) -> Result<(), E>,
) -> Result<(), E> {
    for rl in &req.resource_logs {
        for sl in &rl.scope_logs {
            // Resource and scope keys are computed once and copied into each record.
            let base = base_map(rl, sl);
            for lr in &sl.log_records {
                emit(canonical_record(&base, lr, received_unix_nano))?;
            }
        }
    }
    Ok(())
}

/// The resource and scope part shared by every canonical record of `sl` under `rl`.
pub fn base_map(
    rl: &opentelemetry_proto::tonic::logs::v1::ResourceLogs,
    sl: &opentelemetry_proto::tonic::logs::v1::ScopeLogs,
) -> Record {
    let mut base = Map::new();
    if let Some(r) = &rl.resource {
        for kv in &r.attributes {
            insert_first(&mut base, format!("resource.{}", kv.key), kv_json(kv));
        }
    }
    if let Some(s) = &sl.scope {
        if !s.name.is_empty() {
            insert_first(&mut base, "scope.name".into(), Value::from(s.name.as_str()));
        }
        if !s.version.is_empty() {
            insert_first(
                &mut base,
                "scope.version".into(),
                Value::from(s.version.as_str()),
            );
        }
        for kv in &s.attributes {
            insert_first(
                &mut base,
                format!("scope.attributes.{}", kv.key),
                kv_json(kv),
            );
        }
    }
    base
}

/// The resource and scope entries every record of one scope shares, first occurrence kept,
/// sorted by key: the `resource.*` / `scope.*` half of a canonical record, ready for
/// [`write_record`] / [`write_view_record`].
#[derive(Debug, Default)]
pub struct Base<'a> {
    entries: Vec<(String, Field<'a>)>,
    /// A keyed hash of the keys ([`shape_of`]).
    shape: u64,
    /// Unique per `Base` made in this process: [`KeyOrder`] checks the keys of a new one once.
    id: u64,
}

/// A keyed hash of `keys` in order, keyed per process (`RandomState`), so that two different
/// key lists cannot be made to share a shape token from outside; one part of a line's shape
/// (see `meshlog_format::frame::PlainRecords`).
fn shape_of<'k>(keys: impl Iterator<Item = &'k str>, salt: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut h = KEYS.get_or_init(Default::default).build_hasher();
    h.write_u64(salt);
    for k in keys {
        // 0xff never occurs in UTF-8: the keys cannot run into each other.
        h.write(k.as_bytes());
        h.write_u8(0xff);
    }
    // 0 means "no shape".
    h.finish().max(1)
}

/// One value of a canonical record, borrowed from the request.
#[derive(Debug, Clone, Copy)]
enum Field<'a> {
    U64(u64),
    I64(i64),
    Str(&'a str),
    Hex(&'a [u8]),
    Null,
    Bool(bool),
    Double(f64),
    /// Arrays and key-value lists: the map path's own conversion.
    Nested(&'a AnyValue),
}

impl<'a> Field<'a> {
    fn of_any(v: Option<&'a AnyValue>) -> Self {
        use any_value::Value as V;
        match v.and_then(|v| v.value.as_ref().map(|x| (v, x))) {
            None | Some((_, V::StringValueStrindex(_))) => Field::Null,
            Some((_, V::StringValue(s))) => Field::Str(s),
            Some((_, V::BoolValue(b))) => Field::Bool(*b),
            Some((_, V::IntValue(i))) => Field::I64(*i),
            Some((_, V::DoubleValue(d))) => Field::Double(*d),
            Some((_, V::BytesValue(b))) => Field::Hex(b),
            Some((a, V::ArrayValue(_) | V::KvlistValue(_))) => Field::Nested(a),
        }
    }

    fn of_view(v: &'a Val<'a>) -> Self {
        match v {
            Val::Empty => Field::Null,
            Val::Str(s) => Field::Str(s),
            Val::Bool(b) => Field::Bool(*b),
            Val::Int(i) => Field::I64(*i),
            Val::Double(d) => Field::Double(*d),
            Val::Bytes(b) => Field::Hex(b),
            Val::Nested(a) => Field::Nested(a),
        }
    }
}

impl<'a> Base<'a> {
    /// The shared entries of `rl`'s resource and `sl`'s scope, exactly as
    /// [`for_each_record`] puts them in each record.
    pub fn new(
        rl: &'a opentelemetry_proto::tonic::logs::v1::ResourceLogs,
        sl: &'a opentelemetry_proto::tonic::logs::v1::ScopeLogs,
    ) -> Self {
        let mut entries: Vec<(String, Field<'a>)> = Vec::new();
        if let Some(r) = &rl.resource {
            for kv in &r.attributes {
                entries.push((
                    format!("resource.{}", kv.key),
                    Field::of_any(kv.value.as_ref()),
                ));
            }
        }
        if let Some(s) = &sl.scope {
            if !s.name.is_empty() {
                entries.push(("scope.name".into(), Field::Str(&s.name)));
            }
            if !s.version.is_empty() {
                entries.push(("scope.version".into(), Field::Str(&s.version)));
            }
            for kv in &s.attributes {
                entries.push((
                    format!("scope.attributes.{}", kv.key),
                    Field::of_any(kv.value.as_ref()),
                ));
            }
        }
        Self::sorted(entries)
    }

    /// The same over a borrowed [`view`](super::view) of the request.
    pub fn of_view(resource: &'a [Kv<'a>], sl: &'a ScopeLogsView<'a>) -> Self {
        let mut entries: Vec<(String, Field<'a>)> = Vec::new();
        for kv in resource {
            entries.push((format!("resource.{}", kv.key), Field::of_view(&kv.value)));
        }
        if !sl.name.is_empty() {
            entries.push(("scope.name".into(), Field::Str(sl.name)));
        }
        if !sl.version.is_empty() {
            entries.push(("scope.version".into(), Field::Str(sl.version)));
        }
        for kv in &sl.attributes {
            entries.push((
                format!("scope.attributes.{}", kv.key),
                Field::of_view(&kv.value),
            ));
        }
        Self::sorted(entries)
    }

    fn sorted(mut entries: Vec<(String, Field<'a>)>) -> Self {
        // Stable: among equal keys the first pushed stays first, and dedup keeps it.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, first| later.0 == first.0);
        let shape = shape_of(entries.iter().map(|(k, _)| k.as_str()), 0);
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Base { entries, shape, id }
    }
}

/// The key order of the last record written: records from one source mostly carry the same
/// keys in the same order, so their sorted order is computed once and reused while the keys
/// match (sorting ~30 keys per record was an eighth of ingest's instructions).
#[derive(Debug, Default)]
pub struct KeyOrder {
    keys: Vec<String>,
    /// Indices into the record's own entries, sorted by key, first occurrence of each key.
    order: Vec<usize>,
    /// A keyed hash of `keys` ([`shape_of`]).
    shape: u64,
    /// The last line's shape: the base's and this order's hashes, and their combination.
    last: (u64, u64, u64),
    /// Counts the changes of `keys`.
    generation: u64,
    /// The members of a line in order, merged from the base's and the record's keys, each
    /// key already written as a JSON string ([`Plan`]); made again when either changes.
    plan: Plan,
}

/// A line's members in order with their keys written as JSON strings: records of one source
/// repeat the same keys, so each key is escaped once rather than once per record.
#[derive(Debug, Default)]
struct Plan {
    /// The base (by [`Base::id`]) and own keys ([`KeyOrder::generation`]) it was made for;
    /// `None` when it must be made.
    base: Option<u64>,
    own: Option<u64>,
    /// The base's keys, to know a new base with the same keys (a plan made for it fits).
    base_keys: Vec<String>,
    /// `"key"` of each member, one after the other.
    keys: Vec<u8>,
    /// Per member: where it comes from (base entry or own entry index), the end of its key in
    /// `keys`, and whether the key was written with an escape.
    members: Vec<(Source, usize, bool)>,
}

#[derive(Debug, Clone, Copy)]
enum Source {
    Base(usize),
    Own(usize),
}

impl KeyOrder {
    /// The output order of `own`'s entries: sorted by key (stable), each key's first entry.
    fn of<'e>(&'e mut self, own: &[(Cow<'_, str>, Field<'_>)]) -> &'e [usize] {
        let same =
            self.keys.len() == own.len() && self.keys.iter().zip(own).all(|(k, (o, _))| k == o);
        if !same {
            self.keys.clear();
            self.keys
                .extend(own.iter().map(|(k, _)| k.as_ref().to_owned()));
            self.order.clear();
            self.order.extend(0..own.len());
            let keys = &self.keys;
            self.order.sort_by(|a, b| keys.get(*a).cmp(&keys.get(*b)));
            self.order
                .dedup_by(|later, first| keys.get(*later) == keys.get(*first));
            self.shape = shape_of(self.keys.iter().map(String::as_str), 1);
            self.generation += 1;
        }
        &self.order
    }

    /// Makes [`KeyOrder::plan`] fit `base` and the own keys last given to [`KeyOrder::of`].
    fn plan_for(&mut self, base: &Base<'_>) {
        let plan = &mut self.plan;
        if plan.base != Some(base.id) {
            // A new base: its keys are compared once (a plan made for the same keys fits).
            let same = plan.base_keys.len() == base.entries.len()
                && plan
                    .base_keys
                    .iter()
                    .zip(&base.entries)
                    .all(|(a, (b, _))| a == b);
            if !same {
                plan.base_keys.clear();
                plan.base_keys
                    .extend(base.entries.iter().map(|(k, _)| k.clone()));
                plan.own = None;
            }
            plan.base = Some(base.id);
        }
        if plan.own != Some(self.generation) {
            plan.own = Some(self.generation);
            // The two sorted runs merged: the record's keys never collide with the base's
            // (`resource.`/`scope.` prefixed names are moved to `attr.`).
            plan.keys.clear();
            plan.members.clear();
            let mut b = plan.base_keys.iter().enumerate().peekable();
            let mut o = self
                .order
                .iter()
                .filter_map(|&i| self.keys.get(i).map(|k| (i, k)))
                .peekable();
            loop {
                let next = match (b.peek(), o.peek()) {
                    (Some(x), Some(y)) if x.1 <= y.1 => b.next().map(|(i, k)| (Source::Base(i), k)),
                    (Some(_), Some(_)) | (None, Some(_)) => {
                        o.next().map(|(i, k)| (Source::Own(i), k))
                    }
                    (Some(_), None) => b.next().map(|(i, k)| (Source::Base(i), k)),
                    (None, None) => None,
                };
                let Some((source, k)) = next else { break };
                let from = plan.keys.len();
                write_str(&mut plan.keys, k);
                let escaped = plan.keys.len() - from > k.len() + 2;
                plan.members.push((source, plan.keys.len(), escaped));
            }
        }
    }

    /// The shape token of a line of `base` with the own keys last given to [`KeyOrder::of`].
    fn shape(&mut self, base: &Base<'_>) -> u64 {
        if self.last.0 != base.shape || self.last.1 != self.shape {
            let both = shape_of(std::iter::empty(), base.shape ^ self.shape.rotate_left(32));
            self.last = (base.shape, self.shape, both);
        }
        self.last.2
    }
}

/// Whether `lr`'s canonical record carries a string `meshlog.policy_version` (the filter
/// redacted it): the first attribute of that name decides, as in the flat record.
pub fn is_marked(lr: &LogRecord, policy_version_key: &str) -> bool {
    lr.attributes
        .iter()
        .find(|kv| kv.key == policy_version_key)
        .is_some_and(|kv| {
            matches!(
                kv.value.as_ref().and_then(|v| v.value.as_ref()),
                Some(any_value::Value::StringValue(_))
            )
        })
}

/// [`is_marked`] for a record of the borrowed view.
pub fn is_view_marked(lr: &RecordView<'_>, policy_version_key: &str) -> bool {
    lr.attributes
        .iter()
        .find(|kv| kv.key == policy_version_key)
        .is_some_and(|kv| matches!(kv.value, Val::Str(_)))
}

/// The record's own fixed fields, as [`canonical_record`] sets them.
#[allow(clippy::too_many_arguments)]
fn own_fields<'a>(
    own: &mut Vec<(Cow<'a, str>, Field<'a>)>,
    time: u64,
    observed: u64,
    received_unix_nano: u64,
    severity_number: i32,
    severity_text: &'a str,
    event_name: &'a str,
    trace_id: &'a [u8],
    span_id: &'a [u8],
    flags: u32,
) {
    own.push(("time_unix_nano".into(), Field::U64(time)));
    let observed = if observed == 0 {
        received_unix_nano
    } else {
        observed
    };
    own.push(("observed_time_unix_nano".into(), Field::U64(observed)));
    own.push((
        "severity_number".into(),
        Field::I64(i64::from(severity_number)),
    ));
    if !severity_text.is_empty() {
        own.push(("severity_text".into(), Field::Str(severity_text)));
    }
    if !event_name.is_empty() {
        own.push(("event_name".into(), Field::Str(event_name)));
    }
    if !trace_id.is_empty() {
        own.push(("trace_id".into(), Field::Hex(trace_id)));
    }
    if !span_id.is_empty() {
        own.push(("span_id".into(), Field::Hex(span_id)));
    }
    if flags != 0 {
        own.push(("flags".into(), Field::U64(u64::from(flags))));
    }
}

/// Appends the canonical record of `lr` under `base` to `out` as compact JSON, byte for byte
/// what serializing [`for_each_record`]'s map gives (keys sorted, first occurrence kept), but
/// without building the map: no per-record key or value allocation. `members` is cleared and
/// gets the line's member index; returns its shape token
/// ([`PlainRecords`](meshlog_format::frame::PlainRecords)).
pub fn write_record(
    out: &mut Vec<u8>,
    members: &mut Vec<u32>,
    base: &Base<'_>,
    lr: &LogRecord,
    received_unix_nano: u64,
    order: &mut KeyOrder,
) -> u64 {
    let mut own: Vec<(Cow<'_, str>, Field<'_>)> = Vec::with_capacity(lr.attributes.len() + 9);
    own_fields(
        &mut own,
        lr.time_unix_nano,
        lr.observed_time_unix_nano,
        received_unix_nano,
        lr.severity_number,
        &lr.severity_text,
        &lr.event_name,
        &lr.trace_id,
        &lr.span_id,
        lr.flags,
    );
    if let Some(body) = lr.body.as_ref().filter(|b| b.value.is_some()) {
        own.push(("body".into(), Field::of_any(Some(body))));
    }
    for kv in &lr.attributes {
        own.push((attribute_key(&kv.key), Field::of_any(kv.value.as_ref())));
    }
    write_entries(out, members, base, &own, order)
}

/// [`write_record`] for a record of the borrowed view.
pub fn write_view_record(
    out: &mut Vec<u8>,
    members: &mut Vec<u32>,
    base: &Base<'_>,
    lr: &RecordView<'_>,
    received_unix_nano: u64,
    order: &mut KeyOrder,
) -> u64 {
    let mut own: Vec<(Cow<'_, str>, Field<'_>)> = Vec::with_capacity(lr.attributes.len() + 9);
    own_fields(
        &mut own,
        lr.time_unix_nano,
        lr.observed_time_unix_nano,
        received_unix_nano,
        lr.severity_number,
        lr.severity_text,
        lr.event_name,
        lr.trace_id,
        lr.span_id,
        lr.flags,
    );
    // A body present but empty counts as absent, as in the map.
    if let Some(body) = lr.body.as_ref().filter(|b| !matches!(b, Val::Empty)) {
        own.push(("body".into(), Field::of_view(body)));
    }
    for kv in &lr.attributes {
        own.push((attribute_key(kv.key), Field::of_view(&kv.value)));
    }
    write_entries(out, members, base, &own, order)
}

/// Writes `base` and the record's `own` entries as one JSON object, keys in order, and their
/// member index (offsets from where the object starts in `out`) to `members`.
fn write_entries(
    out: &mut Vec<u8>,
    members: &mut Vec<u32>,
    base: &Base<'_>,
    own: &[(Cow<'_, str>, Field<'_>)],
    order_of: &mut KeyOrder,
) -> u64 {
    order_of.of(own);
    order_of.plan_for(base);
    let plan = &order_of.plan;
    members.clear();
    let start = out.len();
    // Offsets from the object's start; a line of 2 GiB or more (never: requests are far
    // smaller) gets no index (cleared at the end) rather than a wrong one.
    let at = |from: usize| (from - start) as u32;
    out.push(b'{');
    let mut key_from = 0;
    for &(source, key_end, key_escaped) in &plan.members {
        let key = plan.keys.get(key_from..key_end).unwrap_or_default();
        key_from = key_end;
        let v = match source {
            Source::Base(j) => base.entries.get(j).map(|e| e.1),
            Source::Own(j) => own.get(j).map(|e| e.1),
        };
        let Some(v) = v else { continue };
        if members.last().is_some() {
            out.push(b',');
        }
        members.push(at(out.len()) | if key_escaped { MEMBER_ESCAPED } else { 0 });
        out.extend_from_slice(key);
        out.push(b':');
        let value_at = out.len();
        write_field(out, v);
        // A string written longer than its quoted text has an escape.
        let flag = match v {
            Field::Str(s) if out.len() - value_at > s.len() + 2 => MEMBER_ESCAPED,
            _ => 0,
        };
        members.push(at(value_at) | flag);
    }
    out.push(b'}');
    if out.len() - start >= MEMBER_ESCAPED as usize {
        members.clear();
        return 0;
    }
    order_of.shape(base)
}

/// A JSON string exactly as serde_json escapes it (`\"`, `\\`, the short escapes
/// `\b \t \n \f \r`, other control bytes as `\u00xx`), skipping clean 8-byte words at once.
fn write_str(out: &mut Vec<u8>, s: &str) {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // Whether any byte of `w` is zero (exact as a yes/no).
    let has_zero = |w: u64| w.wrapping_sub(LO) & !w & HI != 0;
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut clean = 0;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let w = u64::from_le_bytes(w);
        // A byte below 0x20, a quote or a backslash ends the clean run.
        if w.wrapping_sub(LO * 0x20) & !w & HI != 0
            || has_zero(w ^ (LO * u64::from(b'"')))
            || has_zero(w ^ (LO * u64::from(b'\\')))
        {
            break;
        }
        clean += 8;
    }
    let (head, tail) = bytes.split_at(clean);
    out.extend_from_slice(head);
    let mut start = 0;
    for (i, &b) in tail.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x09 => b"\\t",
            0x0a => b"\\n",
            0x0c => b"\\f",
            0x0d => b"\\r",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(tail.get(start..i).unwrap_or_default());
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&hex_pair(b));
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(tail.get(start..).unwrap_or_default());
    out.push(b'"');
}

fn write_field(out: &mut Vec<u8>, v: Field<'_>) {
    match v {
        Field::U64(n) => write_int(out, n),
        Field::I64(n) => write_int(out, n),
        Field::Str(s) => write_str(out, s),
        Field::Hex(b) => write_hex(out, b),
        Field::Null => out.extend_from_slice(b"null"),
        Field::Bool(true) => out.extend_from_slice(b"true"),
        Field::Bool(false) => out.extend_from_slice(b"false"),
        Field::Double(d) => {
            let _ = serde_json::to_writer(&mut *out, &double_json(d));
        }
        Field::Nested(a) => {
            let _ = serde_json::to_writer(&mut *out, &any_value_json(a));
        }
    }
}

fn write_int(out: &mut Vec<u8>, n: impl serde::Serialize) {
    let _ = n.serialize(&mut serde_json::Serializer::new(&mut *out));
}

fn write_hex(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'"');
    for &x in b {
        out.extend_from_slice(&hex_pair(x));
    }
    out.push(b'"');
}

/// `b` as two lowercase hex digits.
fn hex_pair(b: u8) -> [u8; 2] {
    let digit = |n: u8| if n < 10 { b'0' + n } else { b'a' + n - 10 };
    [digit(b >> 4), digit(b & 0xf)]
}

/// All canonical records of `req` (convenience for tests and small requests).
pub fn records(req: &ExportLogsServiceRequest, received_unix_nano: u64) -> Vec<Record> {
    let mut out = Vec::with_capacity(record_count(req));
    let done: Result<(), std::convert::Infallible> =
        for_each_record(req, received_unix_nano, |r| {
            out.push(r);
            Ok(())
        });
    match done {
        Ok(()) => out,
        Err(never) => match never {},
    }
}

/// The canonical record of `lr` over its [`base_map`].
pub fn canonical_record(base: &Record, lr: &LogRecord, received_unix_nano: u64) -> Record {
    let mut m = base.clone();
    m.insert("time_unix_nano".into(), Value::from(lr.time_unix_nano));
    let observed = if lr.observed_time_unix_nano == 0 {
        received_unix_nano
    } else {
        lr.observed_time_unix_nano
    };
    m.insert("observed_time_unix_nano".into(), Value::from(observed));
    m.insert("severity_number".into(), Value::from(lr.severity_number));
    if !lr.severity_text.is_empty() {
        m.insert(
            "severity_text".into(),
            Value::from(lr.severity_text.as_str()),
        );
    }
    if !lr.event_name.is_empty() {
        m.insert("event_name".into(), Value::from(lr.event_name.as_str()));
    }
    if !lr.trace_id.is_empty() {
        m.insert("trace_id".into(), Value::from(hex::encode(&lr.trace_id)));
    }
    if !lr.span_id.is_empty() {
        m.insert("span_id".into(), Value::from(hex::encode(&lr.span_id)));
    }
    if lr.flags != 0 {
        m.insert("flags".into(), Value::from(lr.flags));
    }
    if let Some(body) = lr.body.as_ref().filter(|b| b.value.is_some()) {
        m.insert("body".into(), any_value_json(body));
    }
    for kv in &lr.attributes {
        let key = match attribute_key(&kv.key) {
            Cow::Borrowed(k) => k.to_owned(),
            Cow::Owned(k) => k,
        };
        insert_first(&mut m, key, kv_json(kv));
    }
    m
}

/// The top-level key for a log attribute: its own name unless that would collide.
pub fn attribute_key(key: &str) -> Cow<'_, str> {
    if RESERVED.contains(&key) || key.starts_with("resource.") || key.starts_with("scope.") {
        Cow::Owned(format!("attr.{key}"))
    } else {
        Cow::Borrowed(key)
    }
}

fn insert_first(m: &mut Record, key: String, value: Value) {
    if let serde_json::map::Entry::Vacant(e) = m.entry(key) {
        e.insert(value);
    }
}

fn kv_json(kv: &KeyValue) -> Value {
    kv.value.as_ref().map_or(Value::Null, any_value_json)
}

/// An OTLP `AnyValue` as JSON. An empty value is `null`.
pub fn any_value_json(v: &AnyValue) -> Value {
    use any_value::Value as V;
    match &v.value {
        None => Value::Null,
        Some(V::StringValue(s)) => Value::from(s.as_str()),
        Some(V::BoolValue(b)) => Value::Bool(*b),
        Some(V::IntValue(i)) => Value::from(*i),
        Some(V::DoubleValue(d)) => double_json(*d),
        Some(V::BytesValue(b)) => Value::from(hex::encode(b)),
        Some(V::ArrayValue(a)) => Value::Array(a.values.iter().map(any_value_json).collect()),
        Some(V::KvlistValue(kvs)) => {
            let mut m = Map::new();
            for kv in &kvs.values {
                insert_first(&mut m, kv.key.clone(), kv_json(kv));
            }
            Value::Object(m)
        }
        // A profiling-only string-table reference: OTLP says to treat it as absent in logs.
        Some(V::StringValueStrindex(_)) => Value::Null,
    }
}

/// JSON has no NaN or infinities: those become the strings OTLP/JSON uses for them.
fn double_json(d: f64) -> Value {
    match Number::from_f64(d) {
        Some(n) => Value::Number(n),
        None if d.is_nan() => Value::from("NaN"),
        None if d > 0.0 => Value::from("Infinity"),
        None => Value::from("-Infinity"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use any_value::Value as V;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use serde_json::json;

    fn kv(key: &str, v: V) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..KeyValue::default()
        }
    }

    fn request(
        resource: Vec<KeyValue>,
        scope: Option<InstrumentationScope>,
        lr: LogRecord,
    ) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: resource,
                    ..Resource::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope,
                    log_records: vec![lr],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        }
    }

    /// Every record of `req` written straight from the request is byte for byte its map's
    /// serialization.
    fn assert_direct_matches_map(req: &ExportLogsServiceRequest) {
        let maps = records(req, 42);
        let mut i = 0;
        // Each line's shape with its keys: equal shapes exactly for equal key lists.
        let mut shapes: Vec<(u64, Vec<String>)> = Vec::new();
        // One for the whole request, as the pipeline has it: its plan follows every change
        // of base or keys.
        let mut order = KeyOrder::default();
        for rl in &req.resource_logs {
            for sl in &rl.scope_logs {
                let base = Base::new(rl, sl);
                for lr in &sl.log_records {
                    // Written after a previous line: the index counts from the object.
                    let mut out = b"{}\n".to_vec();
                    let mut members = vec![7];
                    let shape = write_record(&mut out, &mut members, &base, lr, 42, &mut order);
                    assert_ne!(shape, 0);
                    shapes.push((shape, maps[i].keys().cloned().collect()));
                    let line = &out[3..];
                    assert_eq!(
                        std::str::from_utf8(line).unwrap(),
                        serde_json::to_string(&maps[i]).unwrap()
                    );
                    assert_members(line, &members, &maps[i]);
                    i += 1;
                }
            }
        }
        assert_eq!(i, maps.len());
        for (a, ka) in &shapes {
            for (b, kb) in &shapes {
                assert_eq!(a == b, ka == kb, "{ka:?} {kb:?}");
            }
        }
    }

    /// `members` are `line`'s member index: each pair points at a key's opening quote and at
    /// its value, every member of `map` once, in the line's order.
    fn assert_members(line: &[u8], members: &[u32], map: &Record) {
        assert_eq!(members.len(), map.len() * 2, "a pair per member");
        let mut last = 0;
        for pair in members.chunks(2) {
            let flag = |m: u32| m & MEMBER_ESCAPED != 0;
            let (k, v) = (
                (pair[0] & !MEMBER_ESCAPED) as usize,
                (pair[1] & !MEMBER_ESCAPED) as usize,
            );
            assert!(k > last && v > k, "ascending: {members:?}");
            last = v;
            assert_eq!(line[v - 1], b':');
            let key: String = serde_json::from_slice(&line[k..v - 1]).unwrap();
            let value: Value = serde_json::Deserializer::from_slice(&line[v..])
                .into_iter()
                .next()
                .unwrap()
                .unwrap();
            assert_eq!(Some(&value), map.get(&key), "{key}");
            // Flagged exactly when written with an escape.
            assert_eq!(flag(pair[0]), line[k + 1..v - 2].contains(&b'\\'), "{key}");
            let raw_value = &line[v..v + serde_json::to_vec(&value).unwrap().len()];
            assert_eq!(
                flag(pair[1]),
                value.is_string() && raw_value.contains(&b'\\'),
                "{key}"
            );
        }
    }

    fn one(req: &ExportLogsServiceRequest) -> Value {
        assert_direct_matches_map(req);
        let mut r = records(req, 42);
        assert_eq!(r.len(), 1);
        Value::Object(r.remove(0))
    }

    #[test]
    fn every_field_and_value_type_maps_as_specified() {
        let lr = LogRecord {
            time_unix_nano: 1_764_000_000_123_456_789,
            observed_time_unix_nano: 1_764_000_000_223_456_789,
            severity_number: 17,
            severity_text: "ERROR".into(),
            event_name: "meshlog.http.access".into(),
            trace_id: vec![0xAB; 16],
            span_id: vec![0x01; 8],
            flags: 1,
            body: Some(AnyValue {
                value: Some(V::StringValue("hello".into())),
            }),
            attributes: vec![
                kv("http.request.method", V::StringValue("GET".into())),
                kv("http.response.status_code", V::IntValue(503)),
                kv("ok", V::BoolValue(true)),
                kv("ratio", V::DoubleValue(0.5)),
                kv("nan", V::DoubleValue(f64::NAN)),
                kv("inf", V::DoubleValue(f64::INFINITY)),
                kv("ninf", V::DoubleValue(f64::NEG_INFINITY)),
                kv("raw", V::BytesValue(vec![0xDE, 0xAD])),
                kv(
                    "list",
                    V::ArrayValue(ArrayValue {
                        values: vec![
                            AnyValue {
                                value: Some(V::IntValue(1)),
                            },
                            AnyValue { value: None },
                        ],
                    }),
                ),
                kv(
                    "map",
                    V::KvlistValue(KeyValueList {
                        values: vec![kv("a", V::StringValue("b".into()))],
                    }),
                ),
            ],
            ..LogRecord::default()
        };
        let scope = InstrumentationScope {
            name: "meshlog".into(),
            version: "0.1.0".into(),
            attributes: vec![kv("lib", V::StringValue("x".into()))],
            ..InstrumentationScope::default()
        };
        let r = one(&request(
            vec![kv("service.name", V::StringValue("checkout".into()))],
            Some(scope),
            lr,
        ));
        assert_eq!(
            r,
            json!({
                "time_unix_nano": 1_764_000_000_123_456_789u64,
                "observed_time_unix_nano": 1_764_000_000_223_456_789u64,
                "severity_number": 17,
                "severity_text": "ERROR",
                "event_name": "meshlog.http.access",
                "trace_id": "abababababababababababababababab",
                "span_id": "0101010101010101",
                "flags": 1,
                "body": "hello",
                "http.request.method": "GET",
                "http.response.status_code": 503,
                "ok": true,
                "ratio": 0.5,
                "nan": "NaN",
                "inf": "Infinity",
                "ninf": "-Infinity",
                "raw": "dead",
                "list": [1, null],
                "map": {"a": "b"},
                "resource.service.name": "checkout",
                "scope.name": "meshlog",
                "scope.version": "0.1.0",
                "scope.attributes.lib": "x",
            })
        );
    }

    #[test]
    fn empty_fields_are_omitted_and_zero_observed_time_uses_receive_time() {
        let r = one(&request(vec![], None, LogRecord::default()));
        assert_eq!(
            r,
            json!({"time_unix_nano": 0, "observed_time_unix_nano": 42, "severity_number": 0})
        );
        // A body that is present but empty counts as absent.
        let lr = LogRecord {
            body: Some(AnyValue { value: None }),
            ..LogRecord::default()
        };
        assert!(one(&request(vec![], None, lr)).get("body").is_none());
    }

    #[test]
    fn colliding_attributes_are_kept_under_attr_and_nothing_is_overwritten() {
        let lr = LogRecord {
            severity_number: 9,
            attributes: vec![
                kv("severity_number", V::StringValue("spoofed".into())),
                kv("body", V::StringValue("b".into())),
                kv("scope.name", V::StringValue("s".into())),
                kv("resource.service.name", V::StringValue("fake".into())),
                kv("dup", V::IntValue(1)),
                kv("dup", V::IntValue(2)),
            ],
            ..LogRecord::default()
        };
        let scope = InstrumentationScope {
            name: "real".into(),
            ..InstrumentationScope::default()
        };
        let r = one(&request(
            vec![kv("service.name", V::StringValue("real".into()))],
            Some(scope),
            lr,
        ));
        assert_eq!(r["severity_number"], 9);
        assert_eq!(r["attr.severity_number"], "spoofed");
        assert_eq!(r["attr.body"], "b");
        assert!(r.get("body").is_none());
        assert_eq!(r["scope.name"], "real");
        assert_eq!(r["attr.scope.name"], "s");
        assert_eq!(r["resource.service.name"], "real");
        assert_eq!(r["attr.resource.service.name"], "fake");
        assert_eq!(r["dup"], 1, "first value wins");
        for k in RESERVED {
            assert_eq!(attribute_key(k), format!("attr.{k}"));
        }
        assert_eq!(attribute_key("url.path"), "url.path");
    }

    #[test]
    fn records_keep_request_order_across_resources_and_scopes() {
        let mut req = request(
            vec![],
            None,
            LogRecord {
                time_unix_nano: 1,
                ..LogRecord::default()
            },
        );
        let mut second = req.resource_logs[0].clone();
        second.scope_logs[0].log_records = vec![
            LogRecord {
                time_unix_nano: 2,
                ..LogRecord::default()
            },
            LogRecord {
                time_unix_nano: 3,
                ..LogRecord::default()
            },
        ];
        req.resource_logs.push(second);
        assert_eq!(record_count(&req), 3);
        let times: Vec<u64> = records(&req, 0)
            .iter()
            .map(|r| r["time_unix_nano"].as_u64().unwrap())
            .collect();
        assert_eq!(times, vec![1, 2, 3]);
    }

    #[test]
    fn keys_written_once_per_shape_follow_every_change_of_resource_and_attributes() {
        // Resources with other keys, then the same keys again; records whose own keys repeat,
        // change, vanish and come back: every line as the map writes it.
        let s = |x: &str| V::StringValue(x.into());
        let rec = |attrs: Vec<KeyValue>| LogRecord {
            time_unix_nano: 5,
            attributes: attrs,
            ..LogRecord::default()
        };
        let records = || {
            vec![
                rec(vec![kv("http.route", s("/a")), kv("z", s("1"))]),
                rec(vec![kv("http.route", s("/b")), kv("z", s("2"))]),
                rec(vec![]),
                rec(vec![kv("a\"q", s("x")), kv("http.route", s("/c"))]),
                rec(vec![kv("http.route", s("/d")), kv("z", s("3"))]),
            ]
        };
        let mut req = request(vec![kv("service.name", s("one"))], None, rec(vec![]));
        req.resource_logs[0].scope_logs[0].log_records = records();
        for res in [
            vec![kv("service.name", s("two")), kv("k8s.pod.name", s("p"))],
            vec![kv("service.name", s("three"))],
            vec![],
        ] {
            let mut more = request(res, None, rec(vec![]));
            more.resource_logs[0].scope_logs[0].log_records = records();
            req.resource_logs.extend(more.resource_logs);
        }
        assert_direct_matches_map(&req);
    }

    #[test]
    fn direct_writing_matches_the_map_on_collisions_escapes_and_duplicates() {
        let s = |x: &str| V::StringValue(x.into());
        let lr = LogRecord {
            time_unix_nano: u64::MAX,
            severity_number: -3,
            trace_id: vec![0, 1, 0xfe],
            body: Some(AnyValue {
                value: Some(V::KvlistValue(KeyValueList {
                    values: vec![
                        kv("z", s("1")),
                        kv("a", V::DoubleValue(1e300)),
                        kv("z", s("2")),
                    ],
                })),
            }),
            attributes: vec![
                kv("attr.body", s("literal first")),
                kv("body", s("renamed second")),
                kv("quote\"and\\slash\u{1}", s("tab\tnewline\n\u{7f}é😀")),
                kv("scope.x", V::IntValue(i64::MIN)),
                kv("a", V::DoubleValue(-0.0)),
                kv("b", V::DoubleValue(f64::NAN)),
                kv("meshlog.policy_version", V::IntValue(1)),
                kv("meshlog.policy_version", s("0123")),
                kv("", s("empty key")),
                KeyValue {
                    key: "none".into(),
                    value: None,
                    ..KeyValue::default()
                },
                kv("strindex", V::StringValueStrindex(3)),
                kv("dup", V::BoolValue(false)),
                kv("dup", V::BoolValue(true)),
            ],
            ..LogRecord::default()
        };
        let scope = InstrumentationScope {
            name: "n".into(),
            attributes: vec![kv("k", s("1")), kv("k", s("2"))],
            ..InstrumentationScope::default()
        };
        let req = request(
            vec![
                kv("service.name", s("first")),
                kv("service.name", s("second")),
                kv("", V::BytesValue(vec![9])),
            ],
            Some(scope),
            lr.clone(),
        );
        assert_direct_matches_map(&req);
        // The first `meshlog.policy_version` decides, as in the map: an integer is no mark.
        assert!(!is_marked(&lr, "meshlog.policy_version"));
        let mut marked = lr;
        marked.attributes.swap(6, 7);
        assert!(is_marked(&marked, "meshlog.policy_version"));
        assert!(!is_marked(&LogRecord::default(), "meshlog.policy_version"));
        // No resource, no scope, several scopes and resources.
        let mut req = request(vec![], None, marked);
        let mut second = req.resource_logs[0].clone();
        second.resource = None;
        second.scope_logs.push(second.scope_logs[0].clone());
        req.resource_logs.push(second);
        assert_direct_matches_map(&req);
    }

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_does() {
        for c in (0u8..=0x7f).map(char::from).chain(['é', '😀', '\u{2028}']) {
            for at in 0..20 {
                for len in [at, at + 1, 24, 40] {
                    let mut s: String = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"
                        .chars()
                        .take(len.max(at))
                        .collect();
                    s.insert(at.min(s.len()), c);
                    let mut out = Vec::new();
                    write_str(&mut out, &s);
                    assert_eq!(
                        String::from_utf8(out).unwrap(),
                        serde_json::to_string(&s).unwrap(),
                        "{s:?}"
                    );
                }
            }
        }
    }
}
