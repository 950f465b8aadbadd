//! The scanner's cost per stored record, for counting instructions: reads one access record
//! shaped like the ones `meshlog-otlp-load` stores (about 1.3 KB, 38 keys, 62 strings, the
//! default rules keeping 15) `N` times with the default detector's keys.
//! `valgrind --tool=callgrind target/release/examples/scan_cost 20000`, then divide
//! `scan::scan`'s inclusive instructions by `N`.

use meshlog_detect::{DetectConfig, Detector, Flat};
use serde_json::{Value, json};
use std::hint::black_box;

fn line() -> Vec<u8> {
    let hdr = |v: &str| json!([v]);
    let r = json!({
        "time_unix_nano": 1_764_000_000_000_001_234u64,
        "observed_time_unix_nano": 1_764_000_000_000_101_234u64,
        "severity_number": 9,
        "severity_text": "INFO",
        "event_name": "meshlog.http.access",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "http.request.method": "GET",
        "url.scheme": "http",
        "server.address": "shop.example",
        "url.path": "/api/orders/123456",
        "url.query": "page=2&user=REDACTED",
        "network.protocol.version": "1.1",
        "http.response.status_code": 200,
        "http.response.body.size": 512,
        "http.server.request.duration": 1_234_567,
        "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
        "http.request.id": "0b6c4c57-3c55-4a4e-9f0e-6c1f0b1a2c3d",
        "envoy.cluster.name": "app",
        "upstream.address": "10.0.3.7:8080",
        "client.address": "10.0.1.23",
        "client.port": 51234,
        "destination.address": "10.0.2.9:8080",
        "http.request.header.accept": hdr("application/json"),
        "http.request.header.traceparent": hdr("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        "http.request.header.x-forwarded-for": json!(["10.0.0.1", "10.0.0.2"]),
        "http.response.header.content-type": hdr("application/json"),
        "meshlog.peer.principal": "spiffe://cluster.local/ns/shop/sa/frontend",
        "meshlog.redacted.email": 1,
        "meshlog.sequence": 123_456,
        "meshlog.sampled": true,
        "meshlog.schema": "meshlog.access.v1",
        "resource.service.name": "checkout",
        "resource.service.instance.id": "checkout-7d9f8b6c5-x2x9z",
        "resource.meshlog.vm.id": "vm07",
        "resource.k8s.namespace.name": "shop",
        "resource.k8s.pod.name": "checkout-7d9f8b6c5-x2x9z",
        "resource.meshlog.proxy.version": "1.34.1",
    });
    serde_json::to_vec(&r).unwrap_or_default()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let line = line();
    let d = Detector::new(&DetectConfig::default());
    let keys = d.keys();
    let probe = Flat::parse_keys(&line, keys).map(|f| f.iter().count());
    let all: Value = serde_json::from_slice(&line).unwrap_or_default();
    eprintln!(
        "{} bytes, {} keys, {probe:?} kept",
        line.len(),
        all.as_object().map_or(0, |m| m.len())
    );
    // `indexed` as the second argument: read by the member index the collector's writer gives
    // (what `serve` feeds detection for records it just wrote), as `Flat::parse_indexed`.
    let indexed = std::env::args().nth(2).as_deref() == Some("indexed");
    let members = member_index(&line);
    // `observe`: the whole of detection per record (reading it by its index and every
    // built-in rule), as `serve` runs it.
    if std::env::args().nth(2).as_deref() == Some("observe") {
        let mut d = Detector::new(&DetectConfig::default());
        let mut fired = 0;
        for i in 0..n {
            let now = 1_764_000_000_000_000_000 + i as u64 * 10_000;
            fired += d
                .observe_indexed(black_box(&line), black_box(&members), 7, now)
                .map_or(0, |t| t.len());
        }
        println!("{fired}");
        return;
    }
    let mut memo = meshlog_detect::scan::KeyMemo::default();
    let mut kept = 0;
    for _ in 0..n {
        let flat = if indexed {
            Flat::parse_indexed(black_box(&line), black_box(&members), 7, keys, &mut memo)
        } else {
            Flat::parse_keys(black_box(&line), keys)
        };
        kept += flat.map_or(0, |f| f.iter().count());
    }
    println!("{kept}");
}

/// The member index of a line `serde_json` wrote from a map: each key's quote and value offset.
fn member_index(line: &[u8]) -> Vec<u32> {
    let map: serde_json::Map<String, Value> = serde_json::from_slice(line).unwrap_or_default();
    let (mut at, mut out) = (1usize, Vec::new());
    for (k, v) in &map {
        out.push(at as u32);
        at += serde_json::to_vec(k).map_or(0, |b| b.len()) + 1;
        out.push(at as u32);
        at += serde_json::to_vec(v).map_or(0, |b| b.len()) + 1;
    }
    out
}
