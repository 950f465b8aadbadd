//! Core's per-request work at the edge, for the bench's request: capture (both header lists
//! and the attributes the filter reads), redaction, the record, its OTLP encoding and the
//! outbox's batching and gzip, as the access logger does it per request. No hostcalls: the
//! attribute source is a map holding what Envoy shows the access logger for
//! `GET /api/orders/12345?user=jo%40example.com` (scripts/bench's URL).
//!
//! Natively it is the deterministic half of `scripts/bench`'s number: count its instructions
//! with callgrind (the lever table in bench/README.md does):
//!
//! ```text
//! cargo build --release -p meshlog-core --example edge_request
//! valgrind --tool=callgrind --callgrind-out-file=cg.out target/release/examples/edge_request 5000
//! valgrind --tool=callgrind --callgrind-out-file=cg.pb.out target/release/examples/edge_request 5000 http/protobuf
//! valgrind --tool=callgrind --callgrind-out-file=cg.zstd.out target/release/examples/edge_request 5000 http/json zstd
//! callgrind_annotate --inclusive=yes cg.out | head -60
//! ```
//!
//! Built for wasm32-wasip1 and run under `scripts/wasi-run` it measures the same loop in V8.
//! Prints ns per request (wall clock: noisy on a loaded machine) and the bytes per record.

use meshlog_core::capture::MapSource;
use meshlog_core::compress::Compression;
use meshlog_core::otlp::{Envelope, Protocol};
use meshlog_core::retry::Outcome;
use meshlog_core::{FilterConfig, Outbox, RequestView};
use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

/// What Envoy 1.40 shows an access logger for the bench's request: the request headers after
/// the router (wrk's, plus Envoy's `x-forwarded-proto`, `x-request-id`, timeout), the
/// upstream's response headers, and the attributes the filter reads.
fn bench_request() -> MapSource {
    MapSource::default()
        .header(":authority", "127.0.0.1:10000")
        .header(":path", "/api/orders/12345?user=jo%40example.com")
        .header(":method", "GET")
        .header(":scheme", "http")
        .header("user-agent", "meshlog-bench/1.0")
        .header("x-forwarded-proto", "http")
        .header("x-request-id", "0d7f4a4e-8c1d-4f51-9a35-2b1f5d2f0b7e")
        .header("x-envoy-expected-rq-timeout-ms", "15000")
        .response_header(":status", "200")
        .response_header("content-type", "text/plain; charset=utf-8")
        .response_header("content-length", "2")
        .response_header("date", "Sun, 06 Dec 2026 10:00:00 GMT")
        .response_header("x-envoy-upstream-service-time", "0")
        .response_header("server", "envoy")
        .int("request.time", 1_764_000_000_000_000_000)
        .int("request.duration", 180_000)
        .text("request.protocol", "HTTP/1.1")
        .int("request.size", 0)
        .int("response.size", 2)
        .int("response.flags", 0)
        .text("response.code_details", "via_upstream")
        .text("xds.cluster_name", "app")
        .text("upstream.address", "127.0.0.1:10001")
        .text("source.address", "127.0.0.1:40312")
        .text("destination.address", "127.0.0.1:10000")
        .int("xds.listener_direction", 1)
}

/// The bench's configuration (envoy-config/bench/meshlog-al.yaml).
const CONFIG: &[u8] =
    br#"{"collector":{"cluster":"meshlog_collector"},"resource":{"service.name":"bench"}}"#;

fn main() -> ExitCode {
    let n: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 20_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: edge_request [REQUESTS] [http/json|http/protobuf] [gzip|zstd|none]");
            return ExitCode::from(2);
        }
    };
    let protocol = match std::env::args().nth(2).as_deref() {
        None | Some("http/json") => Protocol::Json,
        Some("http/protobuf") => Protocol::Protobuf,
        Some(other) => {
            eprintln!("unknown protocol {other}: expected http/json or http/protobuf");
            return ExitCode::from(2);
        }
    };
    let mut cfg = match FilterConfig::from_json(CONFIG) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    // The body's compression: the Wasm module's gzip by default, the native module's zstd.
    cfg.collector.compression = match std::env::args().nth(3).as_deref() {
        None | Some("gzip") => cfg.collector.compression,
        Some("zstd") if Compression::ZSTD => Compression::zstd(1),
        Some("none") => Compression::None,
        Some(other) => {
            eprintln!("unknown compression {other}: expected gzip, none or (natively) zstd");
            return ExitCode::from(2);
        }
    };
    let src = bench_request();
    let envelope = Envelope::with_protocol(
        protocol,
        [
            ("service.name", "bench"),
            ("meshlog.vm_id", "0123456789abcdef"),
        ],
    );
    let mut outbox = Outbox::new(
        &cfg.batch,
        cfg.collector.compression,
        envelope,
        "0123456789abcdef",
    );
    let mut now: u64 = 1_764_000_000_000_000_000;
    let (mut bodies, mut body_bytes) = (0u64, 0u64);
    let start = Instant::now();
    for _ in 0..n {
        now += 50_000;
        let view = RequestView::fetch(&src);
        let mut rec = view.record(&cfg.redaction, now);
        outbox.push(&mut rec, now);
        black_box(&rec);
        // What the tick does: a due batch is sealed (gzip), sent, and answered 200.
        if outbox.is_due(now) {
            let Some(d) = outbox.next_dispatch(now) else {
                continue;
            };
            let id = d.id;
            bodies += 1;
            body_bytes += d.body.len() as u64;
            outbox.on_sent(id);
            let _ = outbox.on_response(id, Outcome::Delivered, now, 7);
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    let stats = outbox.stats();
    println!(
        "{n} requests: {ns:.0} ns/request; {bodies} batches, {:.0} body bytes/record, {} records sent",
        body_bytes as f64 / stats.records_sent.max(1) as f64,
        stats.records_sent
    );
    ExitCode::SUCCESS
}
