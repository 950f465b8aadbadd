//! End-to-end gRPC: a real grpcio server behind a real Envoy (HTTP/2 upstream), called by a real
//! grpcio client (`tests/grpc/probe.py`), every call stored by the real collector. Each record
//! must carry the call's names, its gRPC status (from the trailers, or the headers of a
//! trailers-only answer), a severity from that status, the bytes each way and a duration; a
//! cancelled call and a deadline must be recorded as such, in both HTTP modes; sampling at 10%
//! must keep every failed call; and a WebSocket, the other long-lived request, is one record too.
//!
//! grpcio comes from PyPI into `.venv` (`scripts/test` runs `ensure_grpcio` from
//! `scripts/lib.sh`); without it these tests fail and say how to install it.

use meshlog_core::FilterConfig;
use meshlog_core::sample::{RequestFacts, Sampler};
use meshlog_e2e::{Collector, Envoy, Proc, Sidecar, repo_root, wait_for};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const SERVICE: &str = "meshlog.test.v1.Probe";

/// Python with grpcio: `$MESHLOG_PYTHON`, else `.venv/bin/python`; checked to have grpcio.
fn python() -> PathBuf {
    let py = std::env::var_os("MESHLOG_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    let ok = Command::new(&py)
        // Not a bare `import grpc`: run from tests/, that finds the tests/grpc folder.
        .args(["-c", "from grpc import insecure_channel"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "grpcio not found for {}. Run scripts/test (it installs it into .venv), or \
         `source scripts/lib.sh && ensure_grpcio`, or `.venv/bin/pip install grpcio`, or set \
         MESHLOG_PYTHON to a python that has grpcio.",
        py.display()
    );
    py
}

fn probe_script() -> PathBuf {
    repo_root().join("tests/grpc/probe.py")
}

/// The grpcio server, on a free port it reports.
fn start_server() -> (Proc, SocketAddr) {
    start_probe("serve")
}

/// `probe.py <mode>` (a server), on the free port it reports.
fn start_probe(mode: &str) -> (Proc, SocketAddr) {
    let mut cmd = Command::new(python());
    cmd.arg(probe_script()).arg(mode);
    let mut proc = Proc::spawn("probe server", cmd);
    let addr = proc.listening_addr(Duration::from_secs(20));
    (proc, addr)
}

/// Runs `(case, request id)` client calls through `addr`, in order; what the client saw, by
/// request id.
fn call(addr: SocketAddr, calls: &[(&str, String)]) -> HashMap<String, Value> {
    let out = Command::new(python())
        .arg(probe_script())
        .arg("call")
        .arg(addr.to_string())
        .args(calls.iter().map(|(case, rid)| format!("{case}:{rid}")))
        .output()
        .expect("run the gRPC client");
    assert!(
        out.status.success(),
        "gRPC client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: HashMap<String, Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
            (v["rid"].as_str().unwrap_or_default().to_owned(), v)
        })
        .collect();
    assert_eq!(seen.len(), calls.len(), "one answer per call: {seen:?}");
    seen
}

/// `bootstrap` with the `app` cluster speaking HTTP/2 to `grpc` and the route honouring the
/// client's `grpc-timeout` less one second (so Envoy, not the client, ends a call that overruns
/// its deadline, and says so in the record).
fn grpc_sidecar(bootstrap: &'static str, grpc: SocketAddr, collector: SocketAddr) -> Sidecar {
    let mut s = Sidecar::new(grpc.port(), collector.port());
    s.file = bootstrap;
    s.replace = vec![
        (
            "      connect_timeout: 1s\n      load_assignment:\n        cluster_name: app".into(),
            "      connect_timeout: 1s\n      typed_extension_protocol_options:\n        \
             envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n          \
             \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n          \
             explicit_http_config:\n            http2_protocol_options: {}\n      \
             load_assignment:\n        cluster_name: app"
                .into(),
        ),
        (
            "route: { cluster: app }".into(),
            "route: { cluster: app, max_stream_duration: { grpc_timeout_header_max: 0s, \
             grpc_timeout_header_offset: 1s } }"
                .into(),
        ),
    ];
    s
}

/// Access records (not tallies) by request id, each stored once.
fn access_by_id(records: &[Value]) -> HashMap<String, Value> {
    let mut m = HashMap::new();
    for r in records
        .iter()
        .filter(|r| r["event_name"] == "meshlog.http.access")
    {
        let id = r["meshlog.request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no request id in {r}"))
            .to_owned();
        assert!(m.insert(id.clone(), r.clone()).is_none(), "{id} twice");
    }
    m
}

fn int(r: &Value, k: &str) -> u64 {
    r[k].as_u64()
        .unwrap_or_else(|| panic!("no integer {k} in {r}"))
}

/// gRPC frames a message with 5 bytes (flag, length): the body bytes of `n` messages of `size`.
fn framed(n: u64, size: u64) -> u64 {
    n * (size + 5)
}

const CASES: &[&str] = &[
    "unary",
    "deny",
    "fail_after_message",
    "server_stream",
    "client_stream",
    "bidi",
    "cancel",
    "deadline",
];

#[test]
fn grpc_calls_are_first_class_records_in_the_http_filter() {
    every_case_is_recorded("envoy-config/sidecar.yaml", "filter");
}

#[test]
fn grpc_calls_are_first_class_records_in_the_access_logger() {
    every_case_is_recorded("envoy-config/access-logger.yaml", "logger");
}

fn every_case_is_recorded(bootstrap: &'static str, tag: &str) {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    let (_server, grpc) = start_server();
    let envoy = Envoy::start(&grpc_sidecar(bootstrap, grpc, collector.addr), 2);

    let calls: Vec<(&str, String)> = CASES.iter().map(|c| (*c, format!("{tag}-{c}"))).collect();
    let seen = call(envoy.listen, &calls);
    // What the client saw: the cases did what they say.
    for (case, code, messages) in [
        ("unary", "OK", 1),
        ("deny", "PERMISSION_DENIED", 0),
        ("fail_after_message", "INTERNAL", 1),
        ("server_stream", "OK", 50),
        ("client_stream", "OK", 1),
        ("bidi", "OK", 10),
        ("cancel", "CANCELLED", 2),
        ("deadline", "DEADLINE_EXCEEDED", 0),
    ] {
        let s = &seen[&format!("{tag}-{case}")];
        assert_eq!(s["code"], code, "{s}");
        assert_eq!(s["messages"], messages, "{s}");
    }

    let stored = collector.wait_records(CASES.len(), &[&envoy]);
    let by_id = access_by_id(&stored);
    assert_eq!(by_id.len(), CASES.len(), "one record per call: {stored:?}");
    let rec = |case: &str| &by_id[&format!("{tag}-{case}")];

    // Every call: named from its :path, over HTTP/2, POST, with a duration.
    for (case, method) in [
        ("unary", "Echo"),
        ("deny", "Deny"),
        ("fail_after_message", "FailAfterMessage"),
        ("server_stream", "Stream"),
        ("client_stream", "Upload"),
        ("bidi", "Chat"),
        ("cancel", "Stream"),
        ("deadline", "Slow"),
    ] {
        let r = rec(case);
        assert_eq!(r["rpc.system"], "grpc", "{r}");
        assert_eq!(r["rpc.service"], SERVICE, "{r}");
        assert_eq!(r["rpc.method"], method, "{r}");
        assert_eq!(r["http.request.method"], "POST", "{r}");
        assert_eq!(r["network.protocol.version"], "2", "{r}");
        assert_eq!(r["http.response.status_code"], 200, "gRPC answers 200: {r}");
        assert!(int(r, "meshlog.duration_ns") > 0, "{r}");
        // Default deny: no trailer but the gRPC status and message is ever logged.
        for k in r.as_object().unwrap().keys() {
            if let Some(t) = k.strip_prefix("meshlog.response.trailer.") {
                assert!(["grpc-status", "grpc-message"].contains(&t), "{k} in {r}");
            }
        }
    }

    // Unary OK: status 0 from the trailers, INFO, bytes each way.
    let r = rec("unary");
    assert_eq!(r["rpc.grpc.status_code"], 0, "{r}");
    assert_eq!(r["meshlog.response.trailer.grpc-status"], "0", "{r}");
    assert_eq!(r["severity_text"], "INFO", "{r}");
    assert_eq!(int(r, "http.request.body.size"), framed(1, 100), "{r}");
    assert_eq!(int(r, "http.response.body.size"), framed(1, 1000), "{r}");

    // Trailers-only denial: the status is in the headers; WARN (the caller's error); the
    // message redacted like any header value.
    let r = rec("deny");
    assert_eq!(r["rpc.grpc.status_code"], 7, "{r}");
    assert_eq!(r["severity_text"], "WARN", "{r}");
    assert_eq!(r["severity_number"], 13, "{r}");
    assert_eq!(r["http.response.header.grpc-status"], "7", "{r}");
    let msg = r["http.response.header.grpc-message"].as_str().unwrap();
    assert!(
        msg.contains("[REDACTED:email]") && !msg.contains("jo.doe"),
        "{r}"
    );
    assert!(
        r.get("meshlog.response.trailer.grpc-status").is_none(),
        "{r}"
    );
    assert_eq!(int(r, "http.response.body.size"), 0, "{r}");

    // A status after a message: only in the trailers; INTERNAL is a server error.
    let r = rec("fail_after_message");
    assert_eq!(r["rpc.grpc.status_code"], 13, "{r}");
    assert_eq!(r["severity_text"], "ERROR", "{r}");
    assert_eq!(r["severity_number"], 17, "{r}");
    assert_eq!(r["meshlog.response.trailer.grpc-status"], "13", "{r}");
    assert_eq!(
        r["meshlog.response.trailer.grpc-message"], "backend lost its state",
        "{r}"
    );
    assert!(r.get("http.response.header.grpc-status").is_none(), "{r}");
    assert_eq!(int(r, "http.response.body.size"), framed(1, 100), "{r}");
    // The server sent another trailer (the client saw it): default deny kept it out.
    let client_trailers = &seen[&format!("{tag}-fail_after_message")]["trailers"];
    assert!(
        client_trailers
            .as_array()
            .is_some_and(|t| t.iter().any(|n| n == "x-backend-secret")),
        "{client_trailers}"
    );
    assert!(!r.to_string().contains("s3cr3t-trailer"), "{r}");

    // Streams: one record at the end, every message's bytes counted each way.
    let r = rec("server_stream");
    assert_eq!(r["rpc.grpc.status_code"], 0, "{r}");
    assert_eq!(int(r, "http.request.body.size"), framed(1, 8), "{r}");
    assert_eq!(int(r, "http.response.body.size"), framed(50, 200), "{r}");
    // The server sleeps 5 ms after each of its 50 messages: the record spans all of them.
    assert!(int(r, "meshlog.duration_ns") >= 250_000_000, "{r}");
    let r = rec("client_stream");
    assert_eq!(r["rpc.grpc.status_code"], 0, "{r}");
    assert_eq!(int(r, "http.request.body.size"), framed(20, 100), "{r}");
    assert_eq!(int(r, "http.response.body.size"), framed(1, 8), "{r}");
    let r = rec("bidi");
    assert_eq!(r["rpc.grpc.status_code"], 0, "{r}");
    assert_eq!(int(r, "http.request.body.size"), framed(10, 50), "{r}");
    assert_eq!(int(r, "http.response.body.size"), framed(10, 50), "{r}");

    // The client cancelled a stream after two messages: Envoy saw its RST_STREAM (DR), no
    // status was ever sent, and the abandoned call is a warning.
    let r = rec("cancel");
    let flags = r["meshlog.response_flags"].as_str().unwrap_or_default();
    assert!(flags.split(',').any(|f| f == "DR"), "{r}");
    assert!(r.get("rpc.grpc.status_code").is_none(), "{r}");
    assert_eq!(r["severity_text"], "WARN", "{r}");
    assert!(int(r, "http.response.body.size") >= framed(2, 200), "{r}");

    // The deadline: at the client's grpc-timeout less Envoy's offset, Envoy (its stream
    // duration timer) or the server (which Envoy passes the shortened grpc-timeout) ends the
    // call with DEADLINE_EXCEEDED, before the client's own deadline: a server-side error.
    let r = rec("deadline");
    assert_eq!(r["rpc.grpc.status_code"], 4, "{r}");
    assert_eq!(r["severity_text"], "ERROR", "{r}");
    assert_eq!(r["http.response.header.grpc-status"], "4", "{r}");
    let details = r["meshlog.response_code_details"]
        .as_str()
        .unwrap_or_default();
    assert!(
        ["max_duration_timeout", "via_upstream"].contains(&details),
        "{r}"
    );
}

#[test]
fn sampling_at_ten_percent_keeps_every_failed_grpc_call() {
    let cfg = r#"{"batch":{"max_age_ms":100},"resource":{"service.name":"grpc"},"sampling":{"default_rate":0.1,"tally_interval_ms":300}}"#;
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    let (_server, grpc) = start_server();
    let mut sidecar = grpc_sidecar("envoy-config/sidecar.yaml", grpc, collector.addr);
    sidecar.plugin_config = Some(cfg.to_owned());
    let envoy = Envoy::start(&sidecar, 2);

    // What the filter must keep of the OK calls, by the same engine: no trace id, so the
    // request id is the sampling key.
    let mut oracle = Sampler::new(FilterConfig::from_json(cfg.as_bytes()).unwrap().sampling, 0);
    const OK: usize = 60;
    let mut calls: Vec<(&str, String)> = Vec::new();
    let mut expected_ok = BTreeSet::new();
    let echo = format!("/{SERVICE}/Echo");
    for i in 0..OK {
        let rid = format!("ok-{i}");
        let facts = RequestFacts {
            request_id: Some(&rid),
            method: Some("POST"),
            path: Some(&echo),
            status: Some(200),
            grpc_status: Some(0),
            ..RequestFacts::default()
        };
        if oracle.decide(&facts, 0).is_keep() {
            expected_ok.insert(rid.clone());
        }
        calls.push(("unary", rid));
    }
    assert!(
        !expected_ok.is_empty() && expected_ok.len() < OK / 2,
        "a 10% sample of {OK}: {expected_ok:?}"
    );
    let failed: Vec<(&str, String)> = [
        "deny",
        "deny",
        "deny",
        "fail_after_message",
        "fail_after_message",
        "cancel",
        "deadline",
    ]
    .iter()
    .enumerate()
    .map(|(i, c)| (*c, format!("failed-{c}-{i}")))
    .collect();
    calls.extend(failed.iter().cloned());
    call(envoy.listen, &calls);

    let total = calls.len() as u64;
    let want = expected_ok.len() + failed.len();
    // The tallies account for every call; by then every kept record is stored.
    let seen = wait_for(Duration::from_secs(30), || {
        let seen: u64 = collector
            .query()
            .iter()
            .filter(|r| r["event_name"] == "meshlog.sampling.tally")
            .map(|r| int(r, "meshlog.sampling.seen"))
            .sum();
        (seen == total).then_some(seen)
    });
    assert_eq!(seen, Some(total), "tallies: {:?}", collector.query());
    let by_id = access_by_id(&collector.wait_records(want, &[&envoy]));
    assert_eq!(by_id.len(), want, "{:?}", by_id.keys());
    for (case, rid) in &failed {
        let r = by_id
            .get(rid)
            .unwrap_or_else(|| panic!("failed call {rid} not kept"));
        let reason = if *case == "cancel" {
            "response_flags"
        } else {
            "grpc_status"
        };
        assert_eq!(r["meshlog.sampling.reason"], reason, "{r}");
        assert_eq!(r["meshlog.sampling.adjusted_count"], 1.0, "{r}");
        assert_ne!(r["severity_text"], "INFO", "{r}");
    }
    let kept_ok: BTreeSet<String> = by_id
        .keys()
        .filter(|k| k.starts_with("ok-"))
        .cloned()
        .collect();
    assert_eq!(
        kept_ok, expected_ok,
        "the OK calls kept are the sampled ones"
    );
    for id in &kept_ok {
        let r = &by_id[id];
        assert_eq!(r["meshlog.sampling.reason"], "sampled", "{r}");
        assert_eq!(r["meshlog.sampling.adjusted_count"], 10.0, "{r}");
    }
}

#[test]
fn a_websocket_is_one_record_at_its_close_with_the_bytes_each_way() {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    let (_server, ws) = start_probe("ws-serve");
    let mut sidecar = Sidecar::new(ws.port(), collector.addr.port());
    sidecar.replace = vec![(
        "generate_request_id: true".into(),
        "generate_request_id: true\n                upgrade_configs: [{ upgrade_type: websocket }]"
            .into(),
    )];
    let envoy = Envoy::start(&sidecar, 1);

    let mut s = TcpStream::connect(envoy.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: shop.example\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\nx-request-id: ws-1\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // Two exchanges through the tunnel, echoed back whole.
    for n in [1000usize, 500] {
        s.write_all(&vec![b'w'; n]).unwrap();
        let mut back = vec![0u8; n];
        s.read_exact(&mut back).unwrap();
        assert!(back.iter().all(|b| *b == b'w'));
    }
    // Nothing is logged while it is open; the close ends the request.
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    drop(s);

    let by_id = access_by_id(&collector.wait_records(1, &[&envoy]));
    assert_eq!(by_id.len(), 1, "one record per WebSocket: {by_id:?}");
    let r = &by_id["ws-1"];
    assert_eq!(r["http.response.status_code"], 101, "{r}");
    assert_eq!(r["severity_text"], "INFO", "{r}");
    assert!(r.get("rpc.system").is_none(), "{r}");
    assert_eq!(int(r, "http.request.body.size"), 1500, "{r}");
    assert_eq!(int(r, "http.response.body.size"), 1500, "{r}");
    assert!(int(r, "meshlog.duration_ns") > 0, "{r}");
}
