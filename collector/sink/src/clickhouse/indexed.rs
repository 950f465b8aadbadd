//! The row of a record read by its member index (see
//! [`PlainRecords`](meshlog_format::frame::PlainRecords)) instead of parsing the line whole:
//! the subscription hands freshly committed records with the writer's offsets of every key and
//! value, so each value is sliced out where it is and only what needs decoding (a string
//! written with an escape, a number that is not a plain unsigned integer, an object or array)
//! goes through `serde_json`. The result is exactly [`encode`](super::encoder::encode)'s; a line
//! whose index does not fit it (a repeated key, an escaped key, offsets that do not land on
//! `"key":value`) gets `None` and the caller parses it whole.

use super::encoder::{LogRow, RowKey, record_hash};
use meshlog_format::frame::member;
use serde_json::Value;
use std::borrow::Cow;

/// A member's value as the row needs it.
enum Val<'a> {
    /// A string, unescaped.
    Str(Cow<'a, str>),
    /// A plain unsigned integer and its text (what `serde_json` would print for it).
    Uint(u64, &'a str),
    /// Anything else, parsed.
    Other(Value),
}

impl<'a> Val<'a> {
    /// The value whose JSON text is `raw` (`escaped`: a string written with an escape).
    fn of(raw: &'a str, escaped: bool) -> Option<Val<'a>> {
        let b = raw.as_bytes();
        match b.first()? {
            b'"' => {
                if escaped {
                    serde_json::from_str::<String>(raw)
                        .ok()
                        .map(|s| Val::Str(Cow::Owned(s)))
                } else if b.len() >= 2 && b.last() == Some(&b'"') {
                    raw.get(1..raw.len() - 1)
                        .map(|s| Val::Str(Cow::Borrowed(s)))
                } else {
                    None
                }
            }
            b'1'..=b'9' if b.iter().all(u8::is_ascii_digit) => match raw.parse() {
                Ok(n) => Some(Val::Uint(n, raw)),
                // Past u64: serde_json reads it as a float.
                Err(_) => serde_json::from_str(raw).ok().map(Val::Other),
            },
            b'0' if b.len() == 1 => Some(Val::Uint(0, raw)),
            _ => serde_json::from_str(raw).ok().map(Val::Other),
        }
    }

    /// [`Value::as_u64`].
    fn as_u64(&self) -> Option<u64> {
        match self {
            Val::Uint(n, _) => Some(*n),
            Val::Str(_) => None,
            Val::Other(v) => v.as_u64(),
        }
    }

    /// The text the table holds: strings as they are, anything else as JSON text.
    fn text(&self) -> String {
        match self {
            Val::Str(s) => s.clone().into_owned(),
            Val::Uint(_, raw) => (*raw).to_owned(),
            Val::Other(Value::String(s)) => s.clone(),
            Val::Other(v) => v.to_string(),
        }
    }
}

/// The columns a key fills besides (or instead of) the attribute maps; the bit it has in the
/// set of those seen (a repeated one sends the line to the whole parse, which keeps the last).
#[derive(Clone, Copy)]
enum Column {
    Time = 0,
    Observed,
    SeverityNumber,
    SeverityText,
    EventName,
    TraceId,
    SpanId,
    Flags,
    Body,
    ScopeName,
    ScopeVersion,
    Service,
    Vm,
    Tenant,
    Sequence,
}

/// The column of a key, if it has one.
fn column(key: &str) -> Option<Column> {
    Some(match key {
        "time_unix_nano" => Column::Time,
        "observed_time_unix_nano" => Column::Observed,
        "severity_number" => Column::SeverityNumber,
        "severity_text" => Column::SeverityText,
        "event_name" => Column::EventName,
        "trace_id" => Column::TraceId,
        "span_id" => Column::SpanId,
        "flags" => Column::Flags,
        "body" => Column::Body,
        "scope.name" => Column::ScopeName,
        "scope.version" => Column::ScopeVersion,
        "resource.service.name" => Column::Service,
        "resource.meshlog.vm.id" => Column::Vm,
        "resource.meshlog.tenant" => Column::Tenant,
        "meshlog.sequence" => Column::Sequence,
        _ => return None,
    })
}

/// The row for the record `line` at `key` whose member index is `members`; `None` when the
/// index cannot be used (the caller then parses the line whole).
pub fn encode(
    collector_id: &str,
    log: &str,
    key: RowKey,
    line: &[u8],
    members: &[u32],
) -> Option<LogRow> {
    if members.is_empty()
        || !members.len().is_multiple_of(2)
        || line.first() != Some(&b'{')
        || line.last() != Some(&b'}')
    {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    let mut row = LogRow {
        timestamp_ns: 0,
        trace_id: String::new(),
        span_id: String::new(),
        trace_flags: 0,
        severity_text: String::new(),
        severity_number: 0,
        service_name: String::new(),
        body: String::new(),
        // Sized once: growing them member by member was a third of the allocator's work.
        resource_attributes: Vec::with_capacity(4),
        scope_name: String::new(),
        scope_version: String::new(),
        log_attributes: Vec::with_capacity(members.len() / 2),
        event_name: String::new(),
        collector_id: collector_id.to_owned(),
        log: log.to_owned(),
        leaf_index: key.leaf,
        record_index: key.record,
        vm_id: String::new(),
        sequence: None,
        tenant: String::new(),
        record_hash: record_hash(line),
    };
    let (mut time, mut observed) = (None, None);
    let mut seen = 0u32;
    let n = members.len() / 2;
    for i in 0..n {
        let m = member(line, members, i)?;
        if m.key_escaped {
            return None;
        }
        let name = text.get(m.key)?;
        let val = Val::of(text.get(m.value)?, m.value_escaped)?;
        let col = column(name);
        if let Some(c) = col {
            let bit = 1u32 << c as u32;
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            match c {
                Column::Time => time = val.as_u64(),
                Column::Observed => observed = val.as_u64(),
                Column::SeverityNumber => {
                    row.severity_number = val.as_u64().map_or(0, |n| n.min(255) as u8)
                }
                Column::SeverityText => row.severity_text = val.text(),
                Column::EventName => row.event_name = val.text(),
                Column::TraceId => row.trace_id = val.text(),
                Column::SpanId => row.span_id = val.text(),
                Column::Flags => row.trace_flags = val.as_u64().map_or(0, |f| (f & 0xff) as u8),
                Column::Body => row.body = val.text(),
                Column::ScopeName => row.scope_name = val.text(),
                Column::ScopeVersion => row.scope_version = val.text(),
                Column::Service => row.service_name = val.text(),
                Column::Vm => row.vm_id = val.text(),
                Column::Tenant => row.tenant = val.text(),
                Column::Sequence => row.sequence = val.as_u64(),
            }
        }
        if let Some(r) = name.strip_prefix("resource.") {
            row.resource_attributes.push((r.to_owned(), val.text()));
        } else if !name.starts_with("scope.")
            && !matches!(
                col,
                Some(
                    Column::Time
                        | Column::Observed
                        | Column::SeverityNumber
                        | Column::SeverityText
                        | Column::EventName
                        | Column::TraceId
                        | Column::SpanId
                        | Column::Flags
                        | Column::Body
                )
            )
        {
            row.log_attributes.push((name.to_owned(), val.text()));
        }
    }
    row.timestamp_ns = time.filter(|t| *t > 0).or(observed).unwrap_or(0);
    if !sorted_unique(&mut row.resource_attributes) || !sorted_unique(&mut row.log_attributes) {
        return None;
    }
    Some(row)
}

/// Sorts `pairs` by key (the writer's lines usually are already); false when a key repeats.
fn sorted_unique(pairs: &mut [(String, String)]) -> bool {
    let ordered = |p: &[(String, String)], strict: bool| {
        p.iter()
            .zip(p.iter().skip(1))
            .all(|(a, b)| if strict { a.0 < b.0 } else { a.0 != b.0 })
    };
    if !ordered(pairs, true) {
        pairs.sort();
        return ordered(pairs, false);
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::clickhouse::encoder::{encode as parse_whole, encode_indexed};
    use meshlog_format::frame::MEMBER_ESCAPED;
    use serde_json::json;

    /// A line and its member index written the way the collector's writer writes them.
    fn write(members: &[(&str, Value)]) -> (Vec<u8>, Vec<u32>) {
        let (mut line, mut index) = (b"{".to_vec(), Vec::new());
        for (i, (k, v)) in members.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            let key = serde_json::to_string(k).unwrap();
            let flag = |written: usize, len: usize| {
                if written > len + 2 { MEMBER_ESCAPED } else { 0 }
            };
            index.push(line.len() as u32 | flag(key.len(), k.len()));
            line.extend_from_slice(key.as_bytes());
            line.push(b':');
            let value = serde_json::to_string(v).unwrap();
            let vflag = match v {
                Value::String(s) => flag(value.len(), s.len()),
                _ => 0,
            };
            index.push(line.len() as u32 | vflag);
            line.extend_from_slice(value.as_bytes());
        }
        line.push(b'}');
        (line, index)
    }

    const KEY: RowKey = RowKey { leaf: 9, record: 3 };

    /// A record as the bench stores it (keys sorted, as the writer orders them).
    fn access() -> Vec<(&'static str, Value)> {
        let mut m = vec![
            ("body", json!("GET /api/orders/17 200")),
            ("client.address", json!("10.0.1.23")),
            ("client.port", json!(51234)),
            ("event_name", json!("meshlog.http.access")),
            ("flags", json!(1)),
            ("http.request.header.accept", json!("application/json")),
            ("http.request.method", json!("GET")),
            ("http.response.status_code", json!(200)),
            ("http.server.request.duration", json!(0.001234567)),
            ("meshlog.sequence", json!(17)),
            (
                "observed_time_unix_nano",
                json!(1_764_000_000_001_000_000u64),
            ),
            ("resource.meshlog.tenant", json!("shop")),
            ("resource.meshlog.vm.id", json!("0123456789abcdef")),
            ("resource.service.name", json!("bench")),
            ("scope.name", json!("meshlog")),
            ("scope.version", json!("0.1.0")),
            ("severity_number", json!(9)),
            ("severity_text", json!("INFO")),
            ("span_id", json!("00f067aa0ba902b7")),
            ("time_unix_nano", json!(1_764_000_000_000_000_017u64)),
            ("trace_id", json!("4bf92f3577b34da6a3ce929d0e0e4736")),
            ("url.path", json!("/api/orders/17")),
        ];
        m.sort_by_key(|(k, _)| *k);
        m
    }

    /// The row read by the index, asserted equal to the whole parse's.
    fn same_row(members: &[(&str, Value)]) -> LogRow {
        let (line, index) = write(members);
        let text = String::from_utf8_lossy(&line).into_owned();
        let indexed = encode("c1", "audit", KEY, &line, &index);
        assert!(indexed.is_some(), "index not used for {text}");
        let indexed = indexed.unwrap();
        assert_eq!(indexed, parse_whole("c1", "audit", KEY, &line), "{text}");
        indexed
    }

    #[test]
    fn a_record_read_by_its_index_is_the_row_of_the_whole_parse() {
        let row = same_row(&access());
        assert_eq!(row.timestamp_ns, 1_764_000_000_000_000_017);
        assert_eq!(
            (row.vm_id.as_str(), row.sequence),
            ("0123456789abcdef", Some(17))
        );
        assert_eq!(row.service_name, "bench");
        assert_eq!(row.trace_flags, 1);
        assert_eq!(row.resource_attributes.len(), 3);
        assert_eq!(row.log_attributes.len(), 8);
        assert!(
            row.log_attributes
                .contains(&("http.server.request.duration".into(), "0.001234567".into()))
        );
    }

    #[test]
    fn escapes_numbers_and_nested_values_read_by_the_index_match_the_whole_parse() {
        let mut m = access();
        m.retain(|(k, _)| !matches!(*k, "time_unix_nano" | "body" | "severity_text"));
        m.extend([
            ("time_unix_nano", json!(0)),
            ("body", json!("line \"one\"\n\ttwo \u{1} é ✓")),
            ("severity_text", json!(7)),
            ("a.float", json!(2.5)),
            ("a.exp", serde_json::from_str::<Value>("1e3").unwrap()),
            ("a.neg", json!(-7)),
            (
                "a.big",
                serde_json::from_str::<Value>("18446744073709551616").unwrap(),
            ),
            ("a.true", json!(true)),
            ("a.null", Value::Null),
            ("a.nested", json!({"b": 1, "a": [1, "x\\y", {"z": null}]})),
            ("a.empty", json!("")),
            ("resource.k8s.pod.name", json!("pod \"7\"")),
        ]);
        m.sort_by_key(|(k, _)| *k);
        let row = same_row(&m);
        // time_unix_nano 0: the observed time.
        assert_eq!(row.timestamp_ns, 1_764_000_000_001_000_000);
        assert_eq!(row.body, "line \"one\"\n\ttwo \u{1} é ✓");
        assert_eq!(row.severity_text, "7");
        // Keys out of order are sorted as the whole parse sorts them.
        m.reverse();
        same_row(&m);
        // Numbers written as they came (not as serde_json would print them).
        for raw in [
            "-0",
            "1.0",
            "1E+2",
            "0.5e-3",
            "-9223372036854775809",
            "123456789012345678901234567890",
        ] {
            let (mut line, mut index) = write(&access());
            line.pop();
            line.push(b',');
            index.push(line.len() as u32);
            line.extend_from_slice(b"\"z.raw\":");
            index.push(line.len() as u32);
            line.extend_from_slice(raw.as_bytes());
            line.push(b'}');
            let row = encode("c1", "", KEY, &line, &index);
            assert!(row.is_some(), "{raw}");
            assert_eq!(row, Some(parse_whole("c1", "", KEY, &line)), "{raw}");
        }
    }

    #[test]
    fn an_index_that_does_not_fit_falls_back_to_the_whole_parse() {
        let (line, index) = write(&access());
        // No index, an odd one, offsets off by one.
        let shifted: Vec<u32> = index.iter().map(|m| m + 1).collect();
        for bad in [&[][..], &index[..3], &shifted[..]] {
            assert_eq!(encode("c1", "", KEY, &line, bad), None);
            assert_eq!(
                encode_indexed("c1", "", KEY, &line, bad),
                parse_whole("c1", "", KEY, &line)
            );
        }
        // A repeated attribute or column (the whole parse keeps the last), an escaped key.
        for extra in [
            ("url.path", json!("/other")),
            ("trace_id", json!("ffff")),
            ("we\"ird", json!(1)),
        ] {
            let mut m = access();
            m.push(extra.clone());
            let (line, index) = write(&m);
            assert_eq!(encode("c1", "", KEY, &line, &index), None, "{extra:?}");
            let row = encode_indexed("c1", "", KEY, &line, &index);
            assert_eq!(row, parse_whole("c1", "", KEY, &line));
        }
        // Not an object.
        assert_eq!(encode("c1", "", KEY, b"[1]", &[1, 2]), None);
    }
}
