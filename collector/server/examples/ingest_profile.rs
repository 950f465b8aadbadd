//! The OTLP/HTTP ingest bench's CPU work for one request, without sockets or disks: gunzip,
//! decode, flatten and frame (compress, hash) the bench's batch, `N` times. For instruction
//! counts under callgrind (`valgrind --tool=callgrind target/release/examples/ingest_profile`):
//! the wall-clock bench is `scripts/bench-ingest`.
//!
//! `ingest_profile [N] [json|prost]`: `json` (the default) runs the served path (the in-place
//! JSON reader when it reads the batch), `prost` the serde-into-prost path it replaces.
//! The batch is `meshlog-otlp-load`'s (tests/src/load.rs): 200 records captured and redacted by
//! core as the filter does, under the bench's resource.

use meshlog_core::capture::MapSource;
use meshlog_core::otlp::{Envelope, encode_log_record};
use meshlog_core::redact::RedactionPolicy;
use meshlog_server::WireFormat;
use meshlog_server::ingest::Limits;
use meshlog_server::ingest::decode::{BodyEncoding, decompress, parse};
use meshlog_server::ingest::pipeline::{OneClass, Redaction, prepare_json_view, prepare_request};
use sha2::Digest;
use std::io::Write;

/// tests/src/load.rs's `batch`, salt 0.
fn batch(n: usize) -> Vec<u8> {
    let policy = RedactionPolicy::default();
    let frags: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let src = MapSource::default()
                .int("request.time", 1_764_000_000_000_000_000 + i as i64)
                .int("request.duration", 1_234_567)
                .text("request.method", "GET")
                .text("request.scheme", "http")
                .text("request.host", "shop.example")
                .text("request.url_path", format!("/api/orders/{i}"))
                .text("request.query", "page=2&user=jo%40example.com")
                .text("request.protocol", "HTTP/1.1")
                .int("response.code", if i % 50 == 0 { 503 } else { 200 })
                .int("response.size", 512)
                .text(
                    "request.useragent",
                    "Mozilla/5.0 (X11; Linux x86_64) bench/1.0",
                )
                .text(
                    "request.id",
                    format!("00000000-{i:08x}-4f1e-9c1a-3b7d5e2f8a90"),
                )
                .text("xds.cluster_name", "app")
                .text("upstream.address", "10.0.3.7:8080")
                .text("source.address", "10.0.1.23:51234")
                .text("destination.address", "10.0.2.9:8080")
                .header("accept", "application/json")
                .header(
                    "traceparent",
                    format!("00-{:032x}-{:016x}-01", i + 1, i + 1),
                )
                .response_header("content-type", "application/json");
            let mut rec = meshlog_core::capture_http(&src, &policy, 1_764_000_000_001_000_000);
            rec.sequence = Some(i as u64);
            let mut b = Vec::new();
            encode_log_record(&mut b, &rec);
            b
        })
        .collect();
    let resource = [
        ("service.name", "bench"),
        ("meshlog.vm.id", "0123456789abcdef"),
    ];
    Envelope::new(resource.iter().copied()).wrap(frags.iter().map(Vec::as_slice), 0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let path = args.next().unwrap_or_else(|| "json".into());
    let raw = batch(200);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw)?;
    let body = gz.finish()?;
    let limits = Limits::default();
    let off = Redaction::off();
    let mut stored = 0usize;
    let mut hashed = 0u8;
    for _ in 0..n {
        let bytes = decompress(&body, BodyEncoding::Gzip, limits)?;
        let frames = match path.as_str() {
            "prost" => {
                let req = parse(&bytes, WireFormat::Json)?;
                prepare_request(&req, limits, 7, None, None, &OneClass, &off)
            }
            _ => prepare_json_view(&bytes, None, limits, 7, None, None, &off)
                .ok_or("the in-place reader declined the bench's batch")?,
        }?;
        for (_, f) in &frames {
            stored += f.records() as usize;
            // What the store then hashes for the frame's Merkle leaf (SHA-256 over the frame).
            hashed ^= sha2::Sha256::digest(f.bytes())
                .first()
                .copied()
                .unwrap_or(0);
        }
    }
    println!(
        "{n} requests of {} bytes JSON ({} gzip'd): {stored} records ({hashed:02x})",
        raw.len(),
        body.len()
    );
    Ok(())
}
