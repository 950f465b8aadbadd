//! A borrowed view of an OTLP/protobuf `ExportLogsServiceRequest`: keys, strings and bytes point
//! into the message instead of being copied into prost's owned structs, so a record the
//! collector writes as it is ([`flatten::write_entries`](super::flatten)) costs no allocation per
//! attribute.
//!
//! The view only accepts what it fully understands, and then exactly as prost would read it
//! (last scalar wins, unknown fields skipped, UTF-8 checked). Anything else (a singular message
//! field sent twice, which prost merges; groups; a wire type that does not match the field;
//! malformed bytes) is [`Unsupported`]: the caller then decodes with prost, which accepts or
//! refuses the message as before, with its error. Nested values (arrays, key-value lists) are
//! decoded by prost on the spot.

use opentelemetry_proto::tonic::common::v1::AnyValue;
use prost::Message;

/// The message is not one the view reads; decode it with prost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported;

type R<T> = Result<T, Unsupported>;

/// The request.
#[derive(Debug, Default)]
pub struct RequestView<'a> {
    /// `resource_logs`.
    pub resource_logs: Vec<ResourceLogsView<'a>>,
}

/// One `ResourceLogs`.
#[derive(Debug, Default)]
pub struct ResourceLogsView<'a> {
    /// The resource's attributes.
    pub resource: Vec<Kv<'a>>,
    /// `scope_logs`.
    pub scope_logs: Vec<ScopeLogsView<'a>>,
}

/// One `ScopeLogs`.
#[derive(Debug, Default)]
pub struct ScopeLogsView<'a> {
    /// The scope's name (empty: none).
    pub name: &'a str,
    /// The scope's version (empty: none).
    pub version: &'a str,
    /// The scope's attributes.
    pub attributes: Vec<Kv<'a>>,
    /// `log_records`.
    pub log_records: Vec<RecordView<'a>>,
}

/// One `LogRecord`.
#[derive(Debug, Default)]
pub struct RecordView<'a> {
    /// `time_unix_nano`.
    pub time_unix_nano: u64,
    /// `observed_time_unix_nano`.
    pub observed_time_unix_nano: u64,
    /// `severity_number`.
    pub severity_number: i32,
    /// `severity_text`.
    pub severity_text: &'a str,
    /// `event_name`.
    pub event_name: &'a str,
    /// `trace_id`.
    pub trace_id: &'a [u8],
    /// `span_id`.
    pub span_id: &'a [u8],
    /// `flags`.
    pub flags: u32,
    /// `body`, when present (it may still hold no value).
    pub body: Option<Val<'a>>,
    /// `attributes`.
    pub attributes: Vec<Kv<'a>>,
}

/// One `KeyValue`.
#[derive(Debug)]
pub struct Kv<'a> {
    /// The key.
    pub key: &'a str,
    /// The value (`Val::Empty` when absent).
    pub value: Val<'a>,
}

/// An `AnyValue`.
#[derive(Debug)]
pub enum Val<'a> {
    /// No value (absent, empty, or a profiling-only string-table index).
    Empty,
    /// `string_value`.
    Str(&'a str),
    /// `bool_value`.
    Bool(bool),
    /// `int_value`.
    Int(i64),
    /// `double_value`.
    Double(f64),
    /// `bytes_value`.
    Bytes(&'a [u8]),
    /// An array or key-value list, decoded by prost.
    Nested(Box<AnyValue>),
}

/// A protobuf reader over one message's bytes.
struct Rd<'a> {
    buf: &'a [u8],
}

/// A field: its number and its payload.
enum F<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

impl<'a> Rd<'a> {
    fn varint(&mut self) -> R<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or(Unsupported)?;
            self.buf = rest;
            if i == 9 && b > 1 {
                return Err(Unsupported);
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Unsupported)
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if n > self.buf.len() {
            return Err(Unsupported);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    /// The next field, or `None` at the end.
    fn next(&mut self) -> R<Option<(u32, F<'a>)>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        // prost refuses tag 0 and tags past 2^29 - 1.
        let tag = u32::try_from(key >> 3).map_err(|_| Unsupported)?;
        if tag == 0 || tag > (1 << 29) - 1 {
            return Err(Unsupported);
        }
        let f = match key & 7 {
            0 => F::Varint(self.varint()?),
            1 => F::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().map_err(|_| Unsupported)?,
            )),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| Unsupported)?;
                F::Bytes(self.take(n)?)
            }
            5 => F::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().map_err(|_| Unsupported)?,
            )),
            // Groups (3, 4) and invalid wire types: prost's business.
            _ => return Err(Unsupported),
        };
        Ok(Some((tag, f)))
    }
}

fn msg(f: F<'_>) -> R<Rd<'_>> {
    match f {
        F::Bytes(buf) => Ok(Rd { buf }),
        _ => Err(Unsupported),
    }
}

fn string(f: F<'_>) -> R<&str> {
    match f {
        F::Bytes(b) => std::str::from_utf8(b).map_err(|_| Unsupported),
        _ => Err(Unsupported),
    }
}

fn bytes(f: F<'_>) -> R<&[u8]> {
    match f {
        F::Bytes(b) => Ok(b),
        _ => Err(Unsupported),
    }
}

fn varint(f: F<'_>) -> R<u64> {
    match f {
        F::Varint(v) => Ok(v),
        _ => Err(Unsupported),
    }
}

/// A singular message field seen a second time would be merged by prost: not ours.
fn once(seen: &mut bool) -> R<()> {
    if std::mem::replace(seen, true) {
        Err(Unsupported)
    } else {
        Ok(())
    }
}

/// A field the view does not use, checked as prost checks it when skipping (nothing: any
/// well-formed field is skipped), or refused when it is a known field of the wrong kind.
fn skip(_f: F<'_>) -> R<()> {
    Ok(())
}

/// Reads an `ExportLogsServiceRequest`.
pub fn request(buf: &[u8]) -> R<RequestView<'_>> {
    let mut rd = Rd { buf };
    let mut out = RequestView::default();
    while let Some((tag, f)) = rd.next()? {
        match tag {
            1 => out.resource_logs.push(resource_logs(msg(f)?)?),
            _ => skip(f)?,
        }
    }
    Ok(out)
}

fn resource_logs(mut rd: Rd<'_>) -> R<ResourceLogsView<'_>> {
    let mut out = ResourceLogsView::default();
    let mut seen = false;
    while let Some((tag, f)) = rd.next()? {
        match tag {
            1 => {
                once(&mut seen)?;
                let mut r = msg(f)?;
                while let Some((tag, f)) = r.next()? {
                    match tag {
                        1 => out.resource.push(kv(msg(f)?)?),
                        2 => drop(varint(f)?),
                        // entity_refs: validated by prost only.
                        3 => return Err(Unsupported),
                        _ => skip(f)?,
                    }
                }
            }
            2 => out.scope_logs.push(scope_logs(msg(f)?)?),
            3 => drop(string(f)?),
            _ => skip(f)?,
        }
    }
    Ok(out)
}

fn scope_logs(mut rd: Rd<'_>) -> R<ScopeLogsView<'_>> {
    let mut out = ScopeLogsView::default();
    let mut seen = false;
    while let Some((tag, f)) = rd.next()? {
        match tag {
            1 => {
                once(&mut seen)?;
                let mut s = msg(f)?;
                while let Some((tag, f)) = s.next()? {
                    match tag {
                        1 => out.name = string(f)?,
                        2 => out.version = string(f)?,
                        3 => out.attributes.push(kv(msg(f)?)?),
                        4 => drop(varint(f)?),
                        _ => skip(f)?,
                    }
                }
            }
            2 => out.log_records.push(record(msg(f)?)?),
            3 => drop(string(f)?),
            _ => skip(f)?,
        }
    }
    Ok(out)
}

fn record(mut rd: Rd<'_>) -> R<RecordView<'_>> {
    let mut out = RecordView {
        attributes: Vec::with_capacity(32),
        ..RecordView::default()
    };
    let mut seen_body = false;
    while let Some((tag, f)) = rd.next()? {
        match (tag, f) {
            (1, F::Fixed64(v)) => out.time_unix_nano = v,
            (11, F::Fixed64(v)) => out.observed_time_unix_nano = v,
            // int32 and enums take the varint's low 32 bits, as prost does.
            (2, F::Varint(v)) => out.severity_number = v as i32,
            (3, f) => out.severity_text = string(f)?,
            (5, f) => {
                once(&mut seen_body)?;
                out.body = Some(any(msg(f)?)?);
            }
            (6, f) => out.attributes.push(kv(msg(f)?)?),
            (7, F::Varint(_)) => {}
            (8, F::Fixed32(v)) => out.flags = v,
            (9, f) => out.trace_id = bytes(f)?,
            (10, f) => out.span_id = bytes(f)?,
            (12, f) => out.event_name = string(f)?,
            (1..=12, _) => return Err(Unsupported),
            (_, f) => skip(f)?,
        }
    }
    Ok(out)
}

fn kv(mut rd: Rd<'_>) -> R<Kv<'_>> {
    let mut key = "";
    let mut value = Val::Empty;
    let mut seen = false;
    while let Some((tag, f)) = rd.next()? {
        match tag {
            1 => key = string(f)?,
            2 => {
                once(&mut seen)?;
                value = any(msg(f)?)?;
            }
            3 => drop(varint(f)?),
            _ => skip(f)?,
        }
    }
    Ok(Kv { key, value })
}

fn any(rd: Rd<'_>) -> R<Val<'_>> {
    let whole = rd.buf;
    let mut rd = rd;
    let mut value = Val::Empty;
    let mut fields = 0;
    while let Some((tag, f)) = rd.next()? {
        fields += 1;
        // One oneof member at most (prost's last-wins and merging stay prost's).
        if fields > 1 {
            return Err(Unsupported);
        }
        value = match (tag, f) {
            (1, f) => Val::Str(string(f)?),
            (2, F::Varint(v)) => Val::Bool(v != 0),
            (3, F::Varint(v)) => Val::Int(v as i64),
            (4, F::Fixed64(v)) => Val::Double(f64::from_bits(v)),
            (5 | 6, F::Bytes(_)) => {
                let v = AnyValue::decode(whole).map_err(|_| Unsupported)?;
                // Decoded alone, prost's recursion limit starts afresh; inside the request
                // it has used a few levels: deep nesting stays prost's to judge.
                if depth(&v) > MAX_NESTING {
                    return Err(Unsupported);
                }
                Val::Nested(Box::new(v))
            }
            (7, f) => Val::Bytes(bytes(f)?),
            (8, F::Varint(_)) => Val::Empty,
            (1..=8, _) => return Err(Unsupported),
            (_, f) => {
                skip(f)?;
                fields -= 1;
                continue;
            }
        };
    }
    Ok(value)
}

/// Nesting of a value the view takes; prost's limit is 100 levels from the request.
const MAX_NESTING: usize = 64;

fn depth(v: &AnyValue) -> usize {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    1 + match &v.value {
        Some(V::ArrayValue(a)) => a.values.iter().map(depth).max().unwrap_or(0),
        Some(V::KvlistValue(l)) => l
            .values
            .iter()
            .filter_map(|kv| kv.value.as_ref())
            .map(depth)
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

    #[test]
    fn a_truncated_or_odd_message_is_left_to_prost() {
        assert!(request(b"").unwrap().resource_logs.is_empty());
        // Field 1, length 5, 2 bytes: truncated.
        assert_eq!(request(&[0x0a, 0x05, 0x00, 0x00]).unwrap_err(), Unsupported);
        assert!(ExportLogsServiceRequest::decode(&[0x0a, 0x05, 0x00, 0x00][..]).is_err());
        // Field 1 as a varint: the wrong wire type.
        assert_eq!(request(&[0x08, 0x01]).unwrap_err(), Unsupported);
        // An unknown varint field is skipped, as prost does.
        assert!(request(&[0x10, 0x01]).unwrap().resource_logs.is_empty());
        // A group.
        assert_eq!(request(&[0x0b, 0x0c]).unwrap_err(), Unsupported);
        // An eleven-byte varint.
        assert_eq!(
            request(&[
                0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ])
            .unwrap_err(),
            Unsupported
        );
    }
}
