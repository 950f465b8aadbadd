//! Collector integration tests: the HTTP app in-process against a real store in a temp dir, and
//! the real `meshlog` binary for serve / query / signals / exit codes. One test binary: this
//! file holds the shared helpers and the ingest/store basics; [`durability`] holds "nothing
//! acknowledged is ever lost": batch ids, backpressure, full disk, old frames, kill -9;
//! [`encryption`] holds encryption at rest: nothing in plain on disk, key errors, rotation;
//! [`retention`] holds retention classes, the sweeper, deletion receipts and legal holds;
//! [`integrity`] holds the tamper matrix for `meshlog verify`, signed checkpoints and proofs;
//! [`transport`] holds TLS and mTLS, identities, roles and tenants, OTLP/gRPC and /metrics;
//! [`prometheus`] has a real Prometheus scrape `serve` and answer PromQL.
//! [`query`] holds filtered queries, the query API, its tenants, audit and completeness.
//! [`witness`] holds witnessed checkpoints (`meshlog witness`, a collector witnessing its peer,
//! `verify --witness`) and the signing key `serve` makes when none is configured.
//! [`report`] holds `meshlog report` and `verify-report`: numbers, PDF, signature, the log record.

// Test helpers outside `#[test]` fns: a failed unwrap is a failed test, which is what we want.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod detect;
mod durability;
mod encryption;
mod integrity;
mod integrity_view;
mod prometheus;
mod query;
mod report;
mod retention;
mod retention_time;
mod sink;
mod tail;
mod transport;
mod verify_findings;
mod witness;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use flate2::Compression;
use flate2::write::GzEncoder;
use meshlog_core::AccessRecord;
use meshlog_core::otlp::{Envelope, encode_log_record};
use meshlog_core::record::{EndUser, RecordKind, RpcInfo, SamplingMark, TlsInfo};
use meshlog_core::redact::{Kind, Summary};
use meshlog_format::reader::{self, SEGMENTS_DIR, segment_file_name};
use meshlog_server::ingest::error::Status;
use meshlog_server::{AppState, Limits, Pipeline, app};
use meshlog_store::{Store, StoreOptions};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::{Map, Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const BIN: &str = env!("CARGO_BIN_EXE_meshlog");
const JSON: &str = "application/json";
const PROTO: &str = "application/x-protobuf";

// ---------------------------------------------------------------------------------------------
// In-process helpers

/// A store in a temp dir and the app in front of it.
struct Harness {
    dir: tempfile::TempDir,
    store: Option<Store>,
    app: Router,
}

impl Harness {
    fn new(limits: Limits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::open(dir, limits)
    }

    fn open(dir: tempfile::TempDir, limits: Limits) -> Self {
        Self::open_with(
            dir,
            StoreOptions::default(),
            limits,
            meshlog_server::ingest::DEFAULT_ACK_TIMEOUT,
        )
    }

    fn open_with(
        dir: tempfile::TempDir,
        opts: StoreOptions,
        limits: Limits,
        ack_timeout: Duration,
    ) -> Self {
        // A reopen can find the lock still held for a moment: a `meshlog` child that another
        // test is spawning right now holds a copy of every open descriptor (ours included)
        // between its fork and its exec.
        let end = Instant::now() + Duration::from_secs(5);
        let store = loop {
            match Store::open(dir.path(), opts.clone()) {
                Err(meshlog_store::StoreError::Locked { .. }) if Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => break other.unwrap(),
            }
        };
        let app = app(AppState::new(Pipeline::single(
            store.handle(),
            limits,
            ack_timeout,
        )));
        Harness {
            dir,
            store: Some(store),
            app,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Every stored record, via the reader.
    fn stored(&self) -> Vec<Map<String, Value>> {
        reader::read_all(self.path()).unwrap()
    }

    /// POSTs `body` to /v1/logs; returns status, response content type and body.
    async fn post(&self, ctype: &str, encoding: Option<&str>, body: Vec<u8>) -> Reply {
        self.post_with(ctype, encoding, None, body).await
    }

    /// Like `post`, with a `meshlog-batch-id` header when `batch_id` is given.
    async fn post_with(
        &self,
        ctype: &str,
        encoding: Option<&str>,
        batch_id: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        post_to(&self.app, ctype, encoding, batch_id, body).await
    }

    /// Stops the writer (blocking work, so off the async thread) and hands back the directory.
    async fn close(mut self) -> tempfile::TempDir {
        let store = self.store.take().unwrap();
        tokio::task::spawn_blocking(move || store.close())
            .await
            .unwrap()
            .unwrap();
        self.dir
    }
}

/// POSTs `body` to /v1/logs of `app`; returns status, response content type, headers and body.
async fn post_to(
    app: &Router,
    ctype: &str,
    encoding: Option<&str>,
    batch_id: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let mut req = Request::post("/v1/logs").header(header::CONTENT_TYPE, ctype);
    if let Some(e) = encoding {
        req = req.header(header::CONTENT_ENCODING, e);
    }
    if let Some(id) = batch_id {
        req = req.header(meshlog_server::ingest::BATCH_ID_HEADER, id);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        ctype,
        headers,
        body,
    }
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    ctype: String,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    /// The OTLP error message, decoded per the response content type.
    fn message(&self) -> String {
        if self.ctype == PROTO {
            Status::decode(self.body.as_slice()).unwrap().message
        } else {
            let v: Value = serde_json::from_slice(&self.body).unwrap();
            v["message"].as_str().unwrap().to_owned()
        }
    }
}

/// OTLP/JSON as the spec writes it: hex ids, int64 as strings, lowerCamelCase.
fn otlp_json(service: &str, ids: &[&str]) -> Vec<u8> {
    let records: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({
                "timeUnixNano": format!("{}", 1_764_000_000_000_000_000u64 + i as u64),
                "observedTimeUnixNano": "0",
                "severityNumber": 9,
                "severityText": "INFO",
                "eventName": "meshlog.http.access",
                "traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": "eee19b7ec3c1b174",
                "attributes": [
                    {"key": "http.request.method", "value": {"stringValue": "GET"}},
                    {"key": "http.response.status_code", "value": {"intValue": "200"}},
                    {"key": "url.path", "value": {"stringValue": format!("/items/{i}")}},
                    {"key": "meshlog.request_id", "value": {"stringValue": id}},
                ]
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeLogs": [{"scope": {"name": "meshlog", "version": "0.1.0"}, "logRecords": records}]
        }]
    }))
    .unwrap()
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..KeyValue::default()
    }
}

fn otlp_proto(service: &str, id: &str, status: i64) -> Vec<u8> {
    use any_value::Value as V;
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", V::StringValue(service.into()))],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "meshlog".into(),
                    ..InstrumentationScope::default()
                }),
                log_records: vec![LogRecord {
                    time_unix_nano: 7,
                    observed_time_unix_nano: 8,
                    severity_number: 13,
                    trace_id: vec![0xAB; 16],
                    attributes: vec![
                        kv("http.request.method", V::StringValue("POST".into())),
                        kv("http.response.status_code", V::IntValue(status)),
                        kv("meshlog.request_id", V::StringValue(id.into())),
                    ],
                    ..LogRecord::default()
                }],
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
    .encode_to_vec()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

fn by_id(records: &[Map<String, Value>]) -> std::collections::HashMap<String, Map<String, Value>> {
    let mut m = std::collections::HashMap::new();
    for r in records {
        let id = r["meshlog.request_id"].as_str().unwrap().to_owned();
        assert!(
            m.insert(id.clone(), r.clone()).is_none(),
            "{id} stored twice"
        );
    }
    m
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

// ---------------------------------------------------------------------------------------------
// In-process tests

#[tokio::test]
async fn json_protobuf_gzip_and_zstd_bodies_are_stored_as_canonical_records() {
    let h = Harness::new(Limits::default());
    let before = now_ns();

    let r = h
        .post(JSON, None, otlp_json("checkout", &["j1", "j2"]))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.ctype, JSON);
    assert_eq!(r.body, b"{}");

    let r = h.post(PROTO, None, otlp_proto("cart", "p1", 503)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.ctype, PROTO);
    assert_eq!(
        ExportLogsServiceResponse::decode(r.body.as_slice()).unwrap(),
        ExportLogsServiceResponse::default()
    );

    let r = h
        .post(
            "application/json; charset=utf-8",
            Some("gzip"),
            gzip(&otlp_json("gz", &["g1"])),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    let r = h
        .post(PROTO, Some("zstd"), zstd(&otlp_proto("zs", "z1", 201)))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    let stored = h.stored();
    // Arrival order is kept.
    let ids: Vec<&str> = stored
        .iter()
        .map(|r| r["meshlog.request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["j1", "j2", "p1", "g1", "z1"]);
    let m = by_id(&stored);

    let j = &m["j2"];
    assert_eq!(j["http.request.method"], "GET");
    assert_eq!(
        j["http.response.status_code"], 200,
        "intValue string becomes a number"
    );
    assert_eq!(j["url.path"], "/items/1");
    assert_eq!(j["resource.service.name"], "checkout");
    assert_eq!(j["scope.name"], "meshlog");
    assert_eq!(j["scope.version"], "0.1.0");
    assert_eq!(j["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(j["span_id"], "eee19b7ec3c1b174");
    assert_eq!(j["time_unix_nano"], 1_764_000_000_000_000_001u64);
    assert_eq!(j["severity_number"], 9);
    assert_eq!(j["severity_text"], "INFO");
    assert_eq!(j["event_name"], "meshlog.http.access");
    let observed = j["observed_time_unix_nano"].as_u64().unwrap();
    assert!(
        observed >= before && observed <= now_ns(),
        "receive time stands in for 0"
    );

    let p = &m["p1"];
    assert_eq!(p["http.request.method"], "POST");
    assert_eq!(p["http.response.status_code"], 503);
    assert_eq!(p["resource.service.name"], "cart");
    assert_eq!(p["trace_id"], "ab".repeat(16));
    assert_eq!(p["observed_time_unix_nano"], 8);
    assert_eq!(p["severity_number"], 13);
    assert!(p.get("span_id").is_none() && p.get("severity_text").is_none());

    assert_eq!(m["g1"]["resource.service.name"], "gz");
    assert_eq!(m["z1"]["resource.service.name"], "zs");
    assert_eq!(m["z1"]["http.response.status_code"], 201);
    h.close().await;
}

#[tokio::test]
async fn records_from_the_filter_encoder_round_trip_field_for_field() {
    let h = Harness::new(Limits::default());
    let recs = [
        AccessRecord {
            start_time_ns: 1_764_000_000_123_456_789,
            observed_time_ns: 1_764_000_000_223_456_789,
            duration_ns: Some(1_500_000),
            method: Some("GET".into()),
            scheme: Some("https".into()),
            server_address: Some("shop.example".into()),
            server_port: Some(8443),
            path: Some("/a \"quoted\"\npath".into()),
            query: Some("page=2".into()),
            protocol_version: Some("1.1".into()),
            status: Some(503),
            request_body_bytes: Some(11),
            response_body_bytes: Some(2048),
            user_agent: Some("curl/8".into()),
            request_id: Some("f-1".into()),
            response_flags: Some("UF,URX".into()),
            response_code_details: Some("upstream_reset".into()),
            upstream_cluster: Some("app".into()),
            upstream_host: Some("10.0.0.7:8080".into()),
            client_address: Some("10.0.0.1".into()),
            client_port: Some(55123),
            downstream_local_address: Some("10.0.0.2:10000".into()),
            trace_id: Some([0x4b; 16]),
            span_id: Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]),
            route: Some("/a/{id}".into()),
            request_headers: vec![("referer".into(), "https://x.example/".into())],
            response_headers: vec![("content-type".into(), "text/plain".into())],
            redactions: {
                let mut s = Summary::new();
                s.add(Kind::Email);
                s.add(Kind::Email);
                s.add(Kind::Ip);
                s
            },
            policy_version: Some("0123456789abcdef".into()),
            direction: Some("outbound"),
            sequence: Some(41),
            sampling: Some(SamplingMark {
                adjusted_count: 10.0 / 3.0,
                reason: "sampled",
                policy_version: "fedcba9876543210".into(),
            }),
            kind: RecordKind::Http,
            tls: Some(TlsInfo {
                version: Some("1.3".into()),
                server_name: Some("shop.example".into()),
                peer_principal: Some("spiffe://cluster.local/ns/shop/sa/web".into()),
                peer_cert_sha256: Some("AB12".into()),
            }),
            bytes_received: None,
            bytes_sent: None,
            rpc: Some(RpcInfo {
                system: "grpc",
                service: Some("shop.v1.Orders".into()),
                method: Some("Get".into()),
                grpc_status: Some(14),
            }),
            request_trailers: vec![("x-checksum".into(), "1".into())],
            response_trailers: vec![("grpc-message".into(), "no \"backend\"".into())],
            response_flags_mask: (1 << 5) | (1 << 15),
            enduser: Some(EndUser {
                id: Some("hmac:k1:00112233445566778899aabbccddeeff".into()),
                issuer: Some("https://issuer.example".into()),
                claims: vec![
                    ("scope".into(), "orders:read".into()),
                    ("act.sub".into(), "support-7".into()),
                ],
            }),
        },
        AccessRecord {
            start_time_ns: 5,
            observed_time_ns: 6,
            request_id: Some("f-2".into()),
            ..AccessRecord::default()
        },
        AccessRecord {
            start_time_ns: 7,
            observed_time_ns: 8,
            request_id: Some("f-3".into()),
            sampling: Some(SamplingMark {
                adjusted_count: 2.0,
                reason: "sampled",
                policy_version: "fedcba9876543210".into(),
            }),
            ..AccessRecord::default()
        },
    ];
    let env = Envelope::new([("service.name", "demo"), ("k8s.namespace.name", "shop")]);
    let frags: Vec<Vec<u8>> = recs
        .iter()
        .map(|r| {
            let mut b = Vec::new();
            encode_log_record(&mut b, r);
            b
        })
        .collect();
    let body = env.wrap(frags.iter().map(Vec::as_slice), 0);
    let r = h.post(JSON, None, body).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    let m = by_id(&h.stored());
    let mut got = Value::Object(m["f-1"].clone());
    // The sampling and TLS attributes (json! would exceed its recursion limit with them inline).
    for (k, want) in [
        ("tls.protocol.name", json!("tls")),
        ("tls.protocol.version", json!("1.3")),
        ("tls.client.server_name", json!("shop.example")),
        (
            "meshlog.peer.principal",
            json!("spiffe://cluster.local/ns/shop/sa/web"),
        ),
        ("tls.client.hash.sha256", json!("AB12")),
        (
            "enduser.id",
            json!("hmac:k1:00112233445566778899aabbccddeeff"),
        ),
        ("enduser.issuer", json!("https://issuer.example")),
        ("enduser.claim.scope", json!("orders:read")),
        ("enduser.claim.act.sub", json!("support-7")),
        ("meshlog.sampling.reason", json!("sampled")),
        ("meshlog.sampling.policy_version", json!("fedcba9876543210")),
        ("meshlog.sampling.adjusted_count", json!(10.0 / 3.0)),
        ("rpc.system", json!("grpc")),
        ("rpc.service", json!("shop.v1.Orders")),
        ("rpc.method", json!("Get")),
        ("rpc.grpc.status_code", json!(14)),
        ("meshlog.request.trailer.x-checksum", json!("1")),
        (
            "meshlog.response.trailer.grpc-message",
            json!("no \"backend\""),
        ),
    ] {
        let v = got.as_object_mut().unwrap().remove(k);
        assert_eq!(v, Some(want), "{k}");
    }
    assert_eq!(
        got,
        json!({
            "time_unix_nano": 1_764_000_000_123_456_789u64,
            "observed_time_unix_nano": 1_764_000_000_223_456_789u64,
            "severity_number": 17,
            "severity_text": "ERROR",
            "event_name": "meshlog.http.access",
            "trace_id": "4b".repeat(16),
            "span_id": "00f067aa0ba902b7",
            "http.request.method": "GET",
            "url.scheme": "https",
            "server.address": "shop.example",
            "server.port": 8443,
            "url.path": "/a \"quoted\"\npath",
            "url.query": "page=2",
            "http.route": "/a/{id}",
            "http.request.header.referer": "https://x.example/",
            "http.response.header.content-type": "text/plain",
            "meshlog.redacted.email": 2,
            "meshlog.redacted.ip": 1,
            "meshlog.policy_version": "0123456789abcdef",
            "meshlog.direction": "outbound",
            "meshlog.sequence": 41,
            "network.protocol.name": "http",
            "network.protocol.version": "1.1",
            "http.response.status_code": 503,
            "http.request.body.size": 11,
            "http.response.body.size": 2048,
            "user_agent.original": "curl/8",
            "meshlog.request_id": "f-1",
            "meshlog.duration_ns": 1_500_000,
            "meshlog.response_flags": "UF,URX",
            "meshlog.response_code_details": "upstream_reset",
            "meshlog.upstream.cluster": "app",
            "meshlog.upstream.host": "10.0.0.7:8080",
            "client.address": "10.0.0.1",
            "client.port": 55123,
            "meshlog.downstream.local_address": "10.0.0.2:10000",
            "resource.service.name": "demo",
            "resource.k8s.namespace.name": "shop",
            "scope.name": "meshlog",
            "scope.version": meshlog_core::otlp::SCOPE_VERSION,
        })
    );
    let minimal = &m["f-2"];
    assert_eq!(minimal["time_unix_nano"], 5);
    assert_eq!(minimal["severity_number"], 9);
    assert!(minimal.get("trace_id").is_none() && minimal.get("url.path").is_none());
    assert!(minimal.get("meshlog.sampling.adjusted_count").is_none());
    // OTLP doubleValue is stored as a JSON number, an integral one too.
    let count = &m["f-3"]["meshlog.sampling.adjusted_count"];
    assert!(count.is_number(), "{count}");
    assert_eq!(count.as_f64(), Some(2.0));
    h.close().await;
}

/// POSTs a bad request and checks status, error-body encoding and message.
macro_rules! refused {
    ($h:expr, $ctype:expr, $enc:expr, $body:expr => $status:ident, $needle:expr) => {{
        let (ctype, enc, needle): (&str, Option<&str>, &str) = ($ctype, $enc, $needle);
        let r = $h.post(ctype, enc, $body).await;
        let what = format!("{ctype} {enc:?}");
        let body = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, StatusCode::$status, "{what}: {body}");
        let expected_ctype = if ctype == PROTO { PROTO } else { JSON };
        assert_eq!(
            r.ctype, expected_ctype,
            "{what}: error body in the request's encoding"
        );
        let msg = r.message();
        assert!(msg.contains(needle), "{what}: {msg:?} lacks {needle:?}");
    }};
}

#[tokio::test]
async fn bad_requests_are_refused_precisely_and_store_nothing() {
    let limits = Limits {
        max_body_bytes: 16 * 1024,
        max_decoded_bytes: 64 * 1024,
    };
    let h = Harness::new(limits);
    let big = otlp_json("x", &vec!["id"; 200]);
    assert!(big.len() > 16 * 1024);
    let bomb = gzip(&vec![0u8; 10 << 20]);
    assert!(
        bomb.len() < 16 * 1024,
        "the bomb itself fits the body limit"
    );
    refused!(h, JSON, None, b"{not json".to_vec() => BAD_REQUEST,
        "invalid OTLP/JSON ExportLogsServiceRequest: key must be a string at line 1 column 2");
    refused!(h, JSON, None,
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"soon"}]}]}]}"#.to_vec()
        => BAD_REQUEST, "invalid OTLP/JSON ExportLogsServiceRequest");
    refused!(h, PROTO, None, b"\x0a\x05abc".to_vec() => BAD_REQUEST,
        "invalid OTLP protobuf ExportLogsServiceRequest: failed to decode Protobuf message");
    refused!(h, JSON, Some("gzip"), b"plain, not gzip".to_vec() => BAD_REQUEST,
        "invalid gzip body");
    refused!(h, JSON, None, big => PAYLOAD_TOO_LARGE,
        "request body exceeds max_body_bytes (16384 bytes)");
    refused!(h, JSON, Some("gzip"), bomb.clone() => PAYLOAD_TOO_LARGE,
        "gzip-decoded body exceeds max_decoded_bytes (65536 bytes)");
    refused!(h, PROTO, Some("gzip"), bomb => PAYLOAD_TOO_LARGE,
        "gzip-decoded body exceeds max_decoded_bytes (65536 bytes)");
    let zbomb = zstd(&vec![0u8; 10 << 20]);
    assert!(zbomb.len() < 16 * 1024);
    refused!(h, JSON, Some("zstd"), zbomb => PAYLOAD_TOO_LARGE,
        "zstd-decoded body exceeds max_decoded_bytes (65536 bytes)");
    refused!(h, PROTO, Some("zstd"), gzip(b"gzip is not zstd") => BAD_REQUEST,
        "invalid zstd body: ");
    refused!(h, "text/plain", None, otlp_json("x", &["a"]) => UNSUPPORTED_MEDIA_TYPE,
        "unsupported Content-Type \"text/plain\"; accepted: application/json, application/x-protobuf");
    refused!(h, JSON, Some("br"), otlp_json("x", &["a"]) => UNSUPPORTED_MEDIA_TYPE,
        "unsupported Content-Encoding \"br\"; accepted: gzip, zstd, identity");
    assert!(h.stored().is_empty());
    // Not even an empty frame: the segment is still just its header.
    let seg = h.path().join(SEGMENTS_DIR).join(segment_file_name(1));
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), 8);
    h.close().await;
}

#[tokio::test]
async fn a_request_without_log_records_is_ok_and_stores_nothing() {
    let h = Harness::new(Limits::default());
    let r = h
        .post(
            JSON,
            None,
            br#"{"resourceLogs":[{"scopeLogs":[{}]}]}"#.to_vec(),
        )
        .await;
    assert_eq!((r.status, r.body.as_slice()), (StatusCode::OK, &b"{}"[..]));
    let r = h.post(PROTO, None, Vec::new()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(h.stored().is_empty());
    let seg = h.path().join(SEGMENTS_DIR).join(segment_file_name(1));
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), 8);
    // And the health check answers.
    let resp = h
        .app
        .clone()
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        &axum::body::to_bytes(resp.into_body(), 64).await.unwrap()[..],
        b"ok"
    );
    h.close().await;
}

/// Writes five one-record batches and returns the directory and each frame's (offset, end).
async fn five_frames() -> (tempfile::TempDir, Vec<(u64, u64)>) {
    let h = Harness::new(Limits::default());
    for i in 0..5 {
        let r = h
            .post(JSON, None, otlp_json("s", &[&format!("b{i}")]))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let dir = h.close().await;
    let offsets: Vec<u64> = reader::frames(dir.path())
        .unwrap()
        .map(|f| f.unwrap().offset)
        .collect();
    let len = std::fs::metadata(seg1(dir.path())).unwrap().len();
    let ends = offsets.iter().skip(1).copied().chain([len]);
    (dir, offsets.iter().copied().zip(ends).collect())
}

fn seg1(dir: &Path) -> PathBuf {
    dir.join(SEGMENTS_DIR).join(segment_file_name(1))
}

fn ids(dir: &Path) -> Vec<String> {
    reader::read_all(dir)
        .unwrap()
        .iter()
        .map(|r| r["meshlog.request_id"].as_str().unwrap().to_owned())
        .collect()
}

fn quarantined(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("quarantine"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_torn_tail_is_cut_at_the_last_good_frame_and_writing_continues() {
    let (dir, frames) = five_frames().await;
    let seg = seg1(dir.path());
    let full = std::fs::read(&seg).unwrap();
    let (last_start, last_end) = frames[4];
    // The crash left the last frame 3 bytes short.
    std::fs::write(&seg, &full[..last_end as usize - 3]).unwrap();

    let h = Harness::open(dir, Limits::default());
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        last_start,
        "cut at the 4th frame's end"
    );
    assert_eq!(ids(h.path()), ["b0", "b1", "b2", "b3"]);
    assert_eq!(
        quarantined(h.path()),
        vec![(
            format!("0000000000000001.seg.{last_start}.tail"),
            full[last_start as usize..last_end as usize - 3].to_vec()
        )],
        "the cut bytes are kept aside"
    );
    let r = h.post(JSON, None, otlp_json("s", &["after"])).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(ids(h.path()), ["b0", "b1", "b2", "b3", "after"]);
    h.close().await;
}

#[tokio::test]
async fn a_flipped_byte_in_the_last_frame_is_cut_and_earlier_frames_survive() {
    for what in ["payload", "header"] {
        let (dir, frames) = five_frames().await;
        let seg = seg1(dir.path());
        let mut bytes = std::fs::read(&seg).unwrap();
        let (last_start, last_end) = frames[4];
        // 5 bytes before its end is inside the payload; byte 9 is the payload length.
        let at = if what == "payload" {
            last_end - 5
        } else {
            last_start + 9
        };
        bytes[at as usize] ^= 0x01;
        std::fs::write(&seg, &bytes).unwrap();
        // The reader already refuses to show the damaged frame...
        assert_eq!(ids(dir.path()), ["b0", "b1", "b2", "b3"], "{what}");
        // ...and recovery cuts exactly it.
        let h = Harness::open(dir, Limits::default());
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), last_start, "{what}");
        assert_eq!(ids(h.path()), ["b0", "b1", "b2", "b3"], "{what}");
        h.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_posts_are_all_acknowledged_and_stored_exactly_once() {
    let h = Harness::new(Limits::default());
    let mut tasks = Vec::new();
    for i in 0..50 {
        let app = h.app.clone();
        tasks.push(tokio::spawn(async move {
            let ids: Vec<String> = (0..3).map(|k| format!("c{i}-{k}")).collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let (ctype, body) = if i % 2 == 0 {
                (JSON, otlp_json("conc", &refs))
            } else {
                (PROTO, otlp_proto("conc", &ids[0], 200))
            };
            let req = Request::post("/v1/logs")
                .header(header::CONTENT_TYPE, ctype)
                .body(Body::from(body))
                .unwrap();
            app.oneshot(req).await.unwrap().status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let stored = h.stored();
    let m = by_id(&stored); // panics on any duplicate
    assert_eq!(stored.len(), 25 * 3 + 25);
    for i in 0..50 {
        assert!(m.contains_key(&format!("c{i}-0")), "c{i}-0 missing");
        if i % 2 == 0 {
            assert!(m.contains_key(&format!("c{i}-2")), "c{i}-2 missing");
        }
    }
    // One frame per request, however the writer grouped them.
    assert_eq!(reader::frames(h.path()).unwrap().count(), 50);
    h.close().await;
}

// ---------------------------------------------------------------------------------------------
// The real binary

/// A child `meshlog` process, killed on drop, with stderr lines collected.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_line(&mut self, needle: &str) -> String {
        let end = Instant::now() + Duration::from_secs(15);
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no stderr line with {needle:?}; got:\n{}",
            self.seen.join("\n")
        );
    }

    fn addr(&mut self) -> SocketAddr {
        let line = self.wait_line("listening on ");
        line.split("listening on ")
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        self.sigterm();
        self.wait_exit()
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < end, "serve did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 POST; returns status and body.
fn http_post(addr: SocketAddr, ctype: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /v1/logs HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ctype}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, buf[head_end + 4..].to_vec())
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn query_lines(dir: &Path) -> Vec<Value> {
    let out = run(&["query", "--data-dir", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn query_ids(dir: &Path) -> Vec<String> {
    query_lines(dir)
        .iter()
        .map(|r| r["meshlog.request_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn serve_query_sigterm_and_recovery_with_the_real_binary() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let mut serve = Proc::spawn(&["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"]);
    let addr = serve.addr();
    assert_ne!(addr.port(), 0);

    for (i, ids) in [vec!["q1", "q2"], vec!["q3"], vec!["q4", "q5", "q6"]]
        .iter()
        .enumerate()
    {
        let (status, body) = if i == 1 {
            http_post(addr, PROTO, &otlp_proto("bin", ids[0], 404))
        } else {
            http_post(addr, JSON, &otlp_json("bin", ids))
        };
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }

    // A second serve on the same directory is refused while the first runs.
    let second = run(&["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"]);
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("is in use by another meshlog serve"), "{err}");

    // query runs next to the live writer.
    let lines = query_lines(data.path());
    let ids: Vec<&str> = lines
        .iter()
        .map(|r| r["meshlog.request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["q1", "q2", "q3", "q4", "q5", "q6"]);
    assert_eq!(lines[2]["http.response.status_code"], 404);
    assert_eq!(lines[0]["resource.service.name"], "bin");
    assert_eq!(lines[5]["url.path"], "/items/2");

    let st = serve.terminate();
    assert_eq!(st.code(), Some(0), "serve exit status after SIGTERM");
    serve.wait_line("SIGTERM received");
    assert_eq!(query_ids(data.path()).len(), 6);

    // A torn tail is cut on the next start, with a warning naming segment, offset and size.
    let seg = seg1(data.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 2)
        .unwrap();
    let mut serve = Proc::spawn(&["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"]);
    let warn = serve.wait_line("cut the torn or corrupt tail");
    assert!(warn.contains("WARN"), "{warn}");
    assert!(warn.contains("0000000000000001.seg"), "{warn}");
    assert!(warn.contains("bytes_cut="), "{warn}");
    assert!(warn.contains("offset="), "{warn}");
    let addr = serve.addr();
    assert_eq!(query_ids(data.path()), ["q1", "q2", "q3"]);
    assert_eq!(http_post(addr, JSON, &otlp_json("bin", &["q7"])).0, 200);
    assert_eq!(query_ids(data.path()), ["q1", "q2", "q3", "q7"]);
    assert_eq!(serve.terminate().code(), Some(0));
}

#[test]
fn flags_override_the_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let from_file = tmp.path().join("from-file");
    let from_flag = tmp.path().join("from-flag");
    let cfg = tmp.path().join("meshlog.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:1\"\nsegment_max_bytes = 65536\n",
            from_file.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut serve = Proc::spawn(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        from_flag.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let addr = serve.addr();
    assert_ne!(addr.port(), 1, "--listen wins over the file");
    assert!(
        from_flag.join(SEGMENTS_DIR).is_dir(),
        "--data-dir wins over the file"
    );
    assert!(!from_file.exists());
    assert_eq!(serve.terminate().code(), Some(0));
}

#[test]
fn usage_config_and_damage_errors_have_distinct_exit_codes() {
    // Bad usage: clap's message, exit 2.
    for args in [
        &["serve", "--listen", "not-an-addr"][..],
        &["frobnicate"],
        &["query", "--bogus"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("error: ") && err.contains("--help"),
            "{args:?}: {err}"
        );
    }

    // Every config problem at once: exit 1.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "listen = 4318\nmax_body_bytes = \"big\"\ncolour = \"blue\"\n",
    )
    .unwrap();
    let out = run(&["serve", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "(3 problems)",
        "colour: unknown field; expected one of: data_dir,",
        "listen: expected a socket address such as \"127.0.0.1:4318\", got 4318",
        "max_body_bytes: expected an integer from 1024 to 1073741824, got \"big\"",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }

    // query on a missing directory: exit 2, as verify and prove.
    let missing = tmp.path().join("nope");
    let out = run(&["query", "--data-dir", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));

    // Damage in a closed segment: serve refuses to start, naming segment and offset.
    let data = tmp.path().join("data");
    let segs = data.join(SEGMENTS_DIR);
    std::fs::create_dir_all(&segs).unwrap();
    let rec: Map<String, Value> = serde_json::from_str(r#"{"meshlog.request_id":"x"}"#).unwrap();
    let frame = meshlog_format::frame::encode_frame([&rec]).unwrap();
    for seq in [1, 2] {
        let mut bytes = meshlog_format::frame::segment_header().to_vec();
        bytes.extend_from_slice(frame.bytes());
        bytes.extend_from_slice(frame.bytes());
        if seq == 1 {
            let at = 8 + 2 * frame.bytes().len() - 5;
            bytes[at] ^= 0xff; // payload of the second frame
        }
        std::fs::write(segs.join(segment_file_name(seq)), bytes).unwrap();
    }
    // The structural start-up walk does not read payloads; the reader does.
    let out = run(&["query", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let offset = 8 + frame.bytes().len();
    assert!(
        err.contains(&format!(
            "0000000000000001.seg is damaged at offset {offset}: payload CRC"
        )),
        "{err}"
    );
    // Now break the header of the second frame in segment 1: serve refuses to start.
    let p = segs.join(segment_file_name(1));
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[offset + 12] ^= 0xff;
    std::fs::write(&p, &bytes).unwrap();
    let out = run(&[
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "0000000000000001.seg is damaged at offset {offset}"
        )),
        "{err}"
    );
    assert!(err.contains("refuses to start"), "{err}");
    assert_eq!(
        std::fs::read(&p).unwrap(),
        bytes,
        "a closed segment is never rewritten"
    );
}

#[test]
fn sigterm_stops_accepting_but_finishes_the_request_in_flight() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let mut serve = Proc::spawn(&["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"]);
    let addr = serve.addr();

    // Headers and half the body are in when the signal arrives.
    let body = otlp_json("inflight", &["late"]);
    let (first, rest) = body.split_at(body.len() / 2);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: {JSON}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(first).unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    serve.sigterm();
    serve.wait_line("SIGTERM received");

    // No new connections...
    let refused = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        TcpStream::connect(addr).is_err()
    });
    assert!(refused, "still accepting after SIGTERM");
    // ...but the request in flight completes, durably, before the process exits.
    assert!(
        serve.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );
    s.write_all(rest).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    assert_eq!(serve.wait_exit().code(), Some(0));
    assert_eq!(query_ids(data.path()), ["late"]);
}

// ---------------------------------------------------------------------------------------------
// keygen with the real binary

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn stdout_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn keygen_writes_a_private_signing_key_that_signs_checkpoints_its_public_key_verifies() {
    use meshlog_tlog::checkpoint::Checkpoint;
    use meshlog_tlog::keys::{SIGNING_KEY_FILE, VERIFIER_KEY_FILE, VerifierKey, read_signer_key};
    use meshlog_tlog::merkle;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys"); // created by keygen
    let d = dir.to_str().unwrap();
    let out = run(&["keygen", "--out", d, "--name", "example.com/meshlog"]);
    let printed = stdout_of(&out);
    let signing = dir.join(SIGNING_KEY_FILE);
    let verifier = dir.join(VERIFIER_KEY_FILE);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&signing), 0o600);
    assert_eq!(mode(&verifier), 0o644);
    let signing_text = std::fs::read_to_string(&signing).unwrap();
    assert!(signing_text.starts_with("PRIVATE+KEY+example.com/meshlog+"));
    // stdout is exactly the verifier key file, and carries no secret.
    assert_eq!(printed, std::fs::read_to_string(&verifier).unwrap());
    assert!(printed.starts_with("example.com/meshlog+"), "{printed}");
    // PRIVATE+KEY+<name>+<key hash>+<base64 key>: base64 may itself hold '+', so split from the left.
    let secret = signing_text
        .trim()
        .strip_prefix("PRIVATE+KEY+example.com/meshlog+")
        .and_then(|rest| rest.split_once('+'))
        .unwrap()
        .1;
    assert!(secret.len() >= 40, "{secret}");
    assert!(!printed.contains(secret));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("signing.key") && err.contains("verifier.pub"),
        "{err}"
    );

    // A checkpoint signed with the private key verifies with the printed public key only.
    let vkey = VerifierKey::parse(printed.trim()).unwrap();
    let skey = read_signer_key(&signing).unwrap();
    let leaves: Vec<_> = (0..3u8).map(|i| merkle::leaf_hash(&[i])).collect();
    let cp = Checkpoint {
        origin: "example.com/meshlog".into(),
        size: 3,
        root: merkle::root(&leaves),
        timestamp_unix_ns: now_ns(),
    };
    let note = cp.sign(&skey).unwrap();
    assert_eq!(Checkpoint::verify(note.as_bytes(), &vkey), Ok(cp.clone()));
    let tampered = note.replacen("\n3\n", "\n4\n", 1);
    assert!(Checkpoint::verify(tampered.as_bytes(), &vkey).is_err());

    // A second keygen into the same directory refuses and changes nothing.
    let again = run(&["keygen", "--out", d, "--name", "example.com/meshlog"]);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("signing.key already exists; refusing to overwrite"),
        "{err}"
    );
    assert!(again.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&signing).unwrap(), signing_text);
    // Also when only the public half is left: no new private key appears beside it.
    std::fs::remove_file(&signing).unwrap();
    let again = run(&["keygen", "--out", d]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("verifier.pub already exists"));
    assert!(!signing.exists());

    // Without --name the origin is "meshlog".
    let other = tmp.path().join("default");
    let printed = stdout_of(&run(&["keygen", "--out", other.to_str().unwrap()]));
    assert!(printed.starts_with("meshlog+"), "{printed}");

    // Usage errors: exit 2, and nothing written.
    let k = tmp.path().join("k");
    let k = k.to_str().unwrap();
    let fresh = tmp.path().join("fresh");
    let fresh = fresh.to_str().unwrap();
    for args in [
        &["keygen"][..],
        &["keygen", "--name", "n"],
        &["keygen", "--out", fresh, "--data-key", k],
        &["keygen", "--out", fresh, "--name", "has space"],
        &["keygen", "--data-key", k, "--name", "n"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("error: "),
            "{args:?}"
        );
    }
    assert!(!Path::new(k).exists() && !Path::new(fresh).exists());
}

#[test]
fn keygen_data_key_creates_a_private_key_file_and_rotation_keeps_old_data_readable() {
    use meshlog_tlog::keys::Keyring;
    use meshlog_tlog::seal;

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("data.keys");
    let f = file.to_str().unwrap();
    let first = stdout_of(&run(&["keygen", "--data-key", f]))
        .trim()
        .to_owned();
    assert_eq!(mode(&file), 0o600);
    let ring = Keyring::load(&file).unwrap();
    assert_eq!(ring.current().id(), first);
    let old = seal::seal(&ring, b"batch sealed before rotation", b"hdr").unwrap();
    assert_eq!(old.key_id, first);

    let second = stdout_of(&run(&["keygen", "--data-key", f]))
        .trim()
        .to_owned();
    assert_ne!(first, second);
    assert_eq!(mode(&file), 0o600);
    let ring = Keyring::load(&file).unwrap();
    assert_eq!(ring.ids().collect::<Vec<_>>(), [&first, &second]);
    assert_eq!(ring.current().id(), second);
    assert_eq!(seal::seal(&ring, b"new", b"").unwrap().key_id, second);
    assert_eq!(
        seal::open(&ring, &old.key_id, &old.bytes, b"hdr").unwrap(),
        b"batch sealed before rotation"
    );

    // A damaged key file is not extended: exit 2 (a key file that is not a key file is a
    // usage error, as for every command), naming file and line.
    let broken = tmp.path().join("broken.keys");
    std::fs::write(&broken, "# keys\nk1 not-base64!\n").unwrap();
    let out = run(&["keygen", "--data-key", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.keys") && err.contains("line 2: key \"k1\" is not valid base64"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&broken).unwrap(),
        "# keys\nk1 not-base64!\n"
    );
}

#[test]
fn validate_reports_every_problem_at_once_including_key_files_and_accepts_a_good_config() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("m.toml");
    let missing_key = tmp.path().join("nope/signing.key");
    std::fs::write(
        &cfg,
        format!(
            "listen = 4318\ncolour = \"blue\"\n[integrity]\nsigning_key = {:?}\n",
            missing_key.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = run(&["validate", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for needle in [
        "problem: colour: unknown field",
        "problem: listen: expected a socket address",
    ] {
        assert!(text.contains(needle), "{text} lacks {needle:?}");
    }
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 problems"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Once the keys are the only problem, they are reported by the setting that names them.
    std::fs::write(
        &cfg,
        format!(
            "[integrity]\nsigning_key = {:?}\n[encryption]\nkey_file = {:?}\n",
            missing_key.to_str().unwrap(),
            tmp.path().join("data.keys").to_str().unwrap()
        ),
    )
    .unwrap();
    let out = run(&["validate", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("problem: integrity.signing_key: "), "{text}");
    assert!(text.contains("problem: encryption.key_file: "), "{text}");
    // A good one.
    let keys = tmp.path().join("keys");
    assert!(
        run(&["keygen", "--out", keys.to_str().unwrap()])
            .status
            .success()
    );
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\n[integrity]\nsigning_key = {:?}\n",
            tmp.path().join("data").to_str().unwrap(),
            keys.join("signing.key").to_str().unwrap()
        ),
    )
    .unwrap();
    let out = run(&["validate", "--config", cfg.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stdout_of(&out).starts_with("valid: "));
}

#[test]
fn log_lines_can_be_json_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut p = Proc::spawn(&[
        "--log-format",
        "json",
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    p.wait_line("listening on 127.0.0.1:");
    assert_eq!(p.terminate().code(), Some(0));
    let mut all = p.seen.clone();
    all.extend(p.lines.try_iter());
    let lines: Vec<&str> = all.iter().map(String::as_str).collect();
    assert!(lines.len() >= 3, "{lines:?}");
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{l}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("listening on 127.0.0.1:")),
        "{lines:?}"
    );
}
