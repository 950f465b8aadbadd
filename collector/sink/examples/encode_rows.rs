//! The sink's per-record encoding on bench-shaped records, for `valgrind --tool=callgrind`
//! (instructions per record): `encode_rows [whole|indexed] [N]` encodes N records (default
//! 20000) into the modern table's rows, parsing each line whole or reading it by its member
//! index as the subscription hands freshly committed records.

use meshlog_sink::clickhouse::encoder::{self, ModernRow, RowKey};
use std::hint::black_box;

/// One stored line shaped like the bench's (keys sorted, as the collector writes them) and its
/// member index.
fn line(i: u64) -> (Vec<u8>, Vec<u32>) {
    let members: Vec<(&str, String)> = vec![
        ("body", format!("\"GET /api/orders/{i} HTTP/1.1\"")),
        ("client.address", "\"10.0.1.23\"".into()),
        ("client.port", "51234".into()),
        ("destination.address", "\"10.0.2.9\"".into()),
        ("destination.port", "8080".into()),
        ("event_name", "\"meshlog.http.access\"".into()),
        ("flags", "1".into()),
        ("http.request.header.accept", "\"application/json\"".into()),
        (
            "http.request.header.traceparent",
            format!("\"00-{:032x}-{:016x}-01\"", i + 1, i + 1),
        ),
        (
            "http.request.id",
            format!("\"00000000-{i:08x}-4f1e-9c1a-3b7d5e2f8a90\""),
        ),
        ("http.request.method", "\"GET\"".into()),
        ("http.response.body.size", "512".into()),
        (
            "http.response.header.content-type",
            "\"application/json\"".into(),
        ),
        (
            "http.response.status_code",
            if i.is_multiple_of(50) { "503" } else { "200" }.into(),
        ),
        ("http.server.request.duration", "0.001234567".into()),
        ("meshlog.sequence", format!("{i}")),
        ("meshlog.upstream.cluster", "\"app\"".into()),
        ("network.protocol.name", "\"http\"".into()),
        ("network.protocol.version", "\"1.1\"".into()),
        ("observed_time_unix_nano", "1764000000001000000".into()),
        ("resource.meshlog.vm.id", "\"0123456789abcdef\"".into()),
        ("resource.service.name", "\"bench\"".into()),
        ("scope.name", "\"meshlog\"".into()),
        ("scope.version", "\"0.1.0\"".into()),
        ("server.address", "\"shop.example\"".into()),
        ("severity_number", "9".into()),
        ("severity_text", "\"INFO\"".into()),
        ("span_id", format!("\"{:016x}\"", i + 1)),
        (
            "time_unix_nano",
            format!("{}", 1_764_000_000_000_000_000 + i),
        ),
        ("trace_id", format!("\"{:032x}\"", i + 1)),
        ("url.path", format!("\"/api/orders/{i}\"")),
        ("url.query", "\"page=2&user=[REDACTED]\"".into()),
        ("url.scheme", "\"http\"".into()),
        (
            "user_agent.original",
            "\"Mozilla/5.0 (X11; Linux x86_64) bench/1.0\"".into(),
        ),
    ];
    let (mut out, mut index) = (b"{".to_vec(), Vec::new());
    for (j, (k, v)) in members.iter().enumerate() {
        if j > 0 {
            out.push(b',');
        }
        index.push(out.len() as u32);
        out.extend_from_slice(format!("\"{k}\":").as_bytes());
        index.push(out.len() as u32);
        out.extend_from_slice(v.as_bytes());
    }
    out.push(b'}');
    (out, index)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "indexed".into());
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let lines: Vec<_> = (0..n).map(line).collect();
    let mut rows: Vec<ModernRow> = Vec::with_capacity(lines.len());
    for (i, (json, members)) in lines.iter().enumerate() {
        let key = RowKey {
            leaf: i as u64 / 200,
            record: (i % 200) as u32,
        };
        let row = match mode.as_str() {
            "whole" => encoder::encode("bench", "", key, json),
            _ => encoder::encode_indexed("bench", "", key, json, members),
        };
        rows.push(row.into());
    }
    black_box(&rows);
    println!("{mode}: {} rows", rows.len());
}
