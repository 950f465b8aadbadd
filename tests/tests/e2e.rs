//! End-to-end: requests through a real Envoy running the meshlog filter, stored by the real
//! collector, read back with `meshlog query`.

use meshlog_core::redact::RedactionPolicy;
use meshlog_e2e::{Collector, Envoy, PortHold, Sidecar, Upstream, send, wait_for};
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const UPSTREAM: &str = env!("CARGO_BIN_EXE_meshlog-upstream");

fn by_request_id(records: &[Value]) -> HashMap<String, Value> {
    let mut m = HashMap::new();
    for r in records {
        let id = r["meshlog.request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no request id in {r}"));
        assert!(
            m.insert(id.to_owned(), r.clone()).is_none(),
            "request id {id} stored twice"
        );
    }
    m
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn every_request_through_envoy_is_stored_once_with_its_fields() {
    every_request_is_stored_once("envoy-config/sidecar.yaml", false);
}

#[test]
fn the_access_logger_mode_stores_every_request_once_with_its_fields() {
    every_request_is_stored_once("envoy-config/access-logger.yaml", false);
}

/// `collector.protocol: "http/protobuf"`: the same records, sent as OTLP protobuf.
#[test]
fn the_access_logger_sending_protobuf_stores_the_same_records() {
    every_request_is_stored_once("envoy-config/access-logger.yaml", true);
}

#[test]
fn the_native_access_logger_sending_protobuf_stores_the_same_records() {
    every_request_is_stored_once(NATIVE, true);
}

/// The native dynamic-module access logger: the same fields from the same core, but for what
/// Envoy does not show an access-logger module (the node, the listener direction).
#[test]
fn the_native_access_logger_stores_every_request_once_with_its_fields() {
    every_request_is_stored_once(NATIVE, false);
}

const NATIVE: &str = "envoy-config/native-access-logger.yaml";

/// Varied requests through Envoy with the module attached as `bootstrap` says; every one must be
/// stored exactly once with every field right; `protobuf`: the shipped plugin configuration
/// with `collector.protocol: "http/protobuf"`.
fn every_request_is_stored_once(bootstrap: &'static str, protobuf: bool) {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    let upstream = Upstream::start(UPSTREAM);
    let native = bootstrap == NATIVE;
    let mut sidecar = if native {
        Sidecar::native(upstream.addr.port(), collector.addr.port())
    } else {
        Sidecar::new(upstream.addr.port(), collector.addr.port())
    };
    sidecar.file = bootstrap;
    if protobuf {
        let yaml = std::fs::read_to_string(meshlog_e2e::repo_root().join(bootstrap)).unwrap();
        let shipped = yaml
            .lines()
            .find_map(|l| l.trim().strip_prefix("value: '")?.strip_suffix('\''))
            .expect("the shipped plugin configuration");
        let mut cfg: Value = serde_json::from_str(shipped).unwrap();
        cfg["collector"]["protocol"] = "http/protobuf".into();
        if native {
            // The sidecar dials the test's collector (Sidecar::native fills it in when absent).
            cfg["collector"]
                .as_object_mut()
                .unwrap()
                .remove("authority");
        }
        sidecar.plugin_config = Some(cfg.to_string());
    }
    // Two workers: two VMs, each with its own buffer, both must deliver.
    let envoy = Envoy::start(&sidecar, 2);

    let t0 = now_ns();
    let n = 60;
    let mut expected = Vec::new();
    for i in 0..n {
        // (method, path sent, status, path logged: identifiers templated by the default policy)
        let (method, path, status, logged) = match i % 4 {
            0 => (
                "GET",
                format!("/api/orders/{i}?page={i}"),
                200,
                "/api/orders/{id}",
            ),
            1 => ("POST", format!("/api/carts/{i}"), 200, "/api/carts/{id}"),
            2 => ("GET", "/status/404".to_owned(), 404, "/status/{id}"),
            _ => ("DELETE", "/status/503".to_owned(), 503, "/status/{id}"),
        };
        let rid = format!("req-{i:04}");
        let (trace_id, span_id) = (
            format!("{:032x}", 0xabc000 + i),
            format!("{:016x}", 0x5000 + i),
        );
        // Even requests carry W3C traceparent, every fourth odd one B3, the rest none.
        let trace = match i % 4 {
            0 | 2 => Some(("traceparent", format!("00-{trace_id}-{span_id}-01"))),
            1 => Some(("b3", format!("{trace_id}-{span_id}-1"))),
            _ => None,
        };
        let mut headers: Vec<(&str, &[u8])> = vec![
            ("x-request-id", rid.as_bytes()),
            ("user-agent", b"e2e/1.0"),
            ("referer", b"https://shop.example/cart?step=2"),
        ];
        if let Some((name, value)) = &trace {
            headers.push((name, value.as_bytes()));
        }
        let body: &[u8] = if method == "POST" {
            b"{\"item\":42}"
        } else {
            b""
        };
        assert_eq!(
            send(envoy.listen, method, &path, &headers, body),
            status,
            "{method} {path}"
        );
        expected.push((
            rid,
            method,
            path,
            logged,
            status,
            trace.map(|_| (trace_id, span_id)),
            body.len(),
        ));
    }
    let t1 = now_ns();

    let stored = collector.wait_records(n as usize, &[&envoy]);
    assert_eq!(stored.len(), n as usize, "exactly one record per request");
    let by_id = by_request_id(&stored);
    for (rid, method, path, logged, status, trace, body_len) in expected {
        let r = &by_id[&rid];
        let q = path.split_once('?').map(|(_, q)| q);
        assert_eq!(r["http.request.method"], method, "{r}");
        assert_eq!(r["url.path"], logged, "{r}");
        assert_eq!(r["http.route"], logged, "{r}");
        assert_eq!(r.get("url.query").and_then(Value::as_str), q, "{r}");
        assert_eq!(r["http.response.status_code"], status, "{r}");
        assert_eq!(r["server.address"], "shop.example");
        assert_eq!(r["url.scheme"], "http");
        assert!(r.get("tls.protocol.name").is_none(), "plaintext: {r}");
        assert_eq!(r["network.protocol.version"], "1.1");
        assert_eq!(r["user_agent.original"], "e2e/1.0");
        assert_eq!(r["http.request.body.size"], body_len as u64, "{r}");
        assert!(r["http.response.body.size"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["meshlog.upstream.cluster"], "app");
        assert_eq!(r["meshlog.upstream.host"], upstream.addr.to_string());
        if native {
            // Not shown to an access-logger module (docs/native.md).
            assert!(r.get("meshlog.direction").is_none(), "{r}");
            assert!(r.get("resource.service.instance.id").is_none(), "{r}");
        } else {
            assert_eq!(r["meshlog.direction"], "inbound", "{r}");
            assert_eq!(
                r["resource.service.instance.id"], "demo-sidecar",
                "from the node: {r}"
            );
        }
        // Client addresses are personal data: /24 by default.
        assert_eq!(r["client.address"], "127.0.0.0");
        assert_eq!(
            r["meshlog.policy_version"],
            RedactionPolicy::default().version(),
            "{r}"
        );
        // Allowlisted headers are logged once, under their own names.
        assert_eq!(
            r["http.request.header.referer"], "https://shop.example/cart?step=2",
            "{r}"
        );
        assert!(r.get("http.request.header.x-request-id").is_none(), "{r}");
        assert!(r["client.port"].as_u64().unwrap() > 0);
        assert_eq!(
            r["meshlog.downstream.local_address"],
            envoy.listen.to_string()
        );
        assert_eq!(r["resource.service.name"], "demo");
        assert_eq!(r["scope.name"], "meshlog");
        assert_eq!(r["event_name"], "meshlog.http.access");
        let start = r["time_unix_nano"].as_u64().unwrap();
        assert!(
            start >= t0 && start <= t1,
            "start {start} outside [{t0}, {t1}]"
        );
        let dur = r["meshlog.duration_ns"].as_u64().unwrap();
        assert!(dur > 0 && dur < 10_000_000_000, "duration {dur}");
        let sev = match status {
            500.. => 17,
            400.. => 13,
            _ => 9,
        };
        assert_eq!(r["severity_number"], sev, "{r}");
        assert!(
            r.get("meshlog.response_flags").is_none(),
            "no flags on a clean request: {r}"
        );
        match trace {
            Some((t, s)) => {
                assert_eq!(r["trace_id"], t, "{r}");
                assert_eq!(r["span_id"], s, "{r}");
            }
            None => assert!(r.get("trace_id").is_none(), "{r}"),
        }
    }
    // Per VM (worker), sequence numbers run from 0 without a gap: nothing was lost on the way.
    let mut by_vm: HashMap<String, Vec<u64>> = HashMap::new();
    for r in &stored {
        let vm = r["resource.meshlog.vm.id"]
            .as_str()
            .unwrap_or_else(|| panic!("no vm id: {r}"));
        assert_eq!(vm.len(), 16, "vm id {vm}");
        by_vm
            .entry(vm.to_owned())
            .or_default()
            .push(r["meshlog.sequence"].as_u64().unwrap());
    }
    for (vm, mut seqs) in by_vm {
        seqs.sort_unstable();
        assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "VM {vm}");
    }
    let sent = wait_for(Duration::from_secs(5), || {
        envoy
            .stat("wasmcustom.meshlog.records_sent")
            .filter(|s| *s == n as u64)
    });
    assert_eq!(sent, Some(n as u64), "Envoy counter records_sent");
    assert_eq!(envoy.stat("wasmcustom.meshlog.records_failed"), Some(0));
}

#[test]
fn an_invalid_filter_configuration_is_refused_naming_every_bad_field() {
    invalid_configuration_is_refused(Sidecar::new);
}

/// The native module parses with the same code: Envoy refuses the listener with the same errors.
#[test]
fn an_invalid_configuration_is_refused_by_the_native_module_naming_every_bad_field() {
    invalid_configuration_is_refused(Sidecar::native);
}

fn invalid_configuration_is_refused(sidecar: fn(u16, u16) -> Sidecar) {
    // Ports reserved with nothing listening: Envoy refuses before it would use them.
    let (app, collector) = (PortHold::new(), PortHold::new());
    let mut sidecar = sidecar(app.port(), collector.port());
    sidecar.plugin_config = Some(
        r#"{"batch":{"max_records":0,"max_age_ms":"soon"},"collector":{"pathh":"/v1/logs"}}"#
            .into(),
    );
    let out = Envoy::expect_refusal(&sidecar);
    for needle in [
        "invalid meshlog configuration (3 problems)",
        "$.batch.max_records: expected an integer from 1 to 100000, got 0",
        "$.batch.max_age_ms",
        "$.collector.pathh: unknown field",
    ] {
        assert!(
            out.contains(needle),
            "envoy output lacks {needle:?}:\n{out}"
        );
    }
}

#[test]
fn a_non_utf8_header_is_proxied_and_logged() {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    let upstream = Upstream::start(UPSTREAM);
    let envoy = Envoy::start(
        &Sidecar::new(upstream.addr.port(), collector.addr.port()),
        1,
    );

    let bad: &[u8] = b"agent-\xff\xfe-\xc3";
    assert_eq!(
        send(
            envoy.listen,
            "GET",
            "/latin1",
            &[("x-request-id", b"bad-1"), ("user-agent", bad)],
            b""
        ),
        200
    );
    // The VM survived: the next request is served and logged too.
    assert_eq!(
        send(
            envoy.listen,
            "GET",
            "/after",
            &[("x-request-id", b"good-1")],
            b""
        ),
        200
    );

    let by_id = by_request_id(&collector.wait_records(2, &[&envoy]));
    let ua = by_id["bad-1"]["user_agent.original"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        ua.starts_with("agent-") && ua.contains('\u{fffd}'),
        "lossy UTF-8 expected, got {ua:?}"
    );
    assert_eq!(by_id["good-1"]["url.path"], "/after");
    assert_eq!(by_id["bad-1"]["url.path"], "/latin1");
    assert_eq!(
        envoy.stat("wasm.meshlog.vm_reload"),
        Some(0),
        "the VM never trapped"
    );
}

#[test]
fn an_unreachable_upstream_is_logged_with_envoy_response_flags() {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    // Nothing listens on the app port: Envoy answers 503 with UF (upstream connection failure).
    let app = PortHold::new();
    let envoy = Envoy::start(&Sidecar::new(app.port(), collector.addr.port()), 1);
    assert_eq!(
        send(
            envoy.listen,
            "GET",
            "/down",
            &[("x-request-id", b"down-1")],
            b""
        ),
        503
    );
    let by_id = by_request_id(&collector.wait_records(1, &[&envoy]));
    let r = &by_id["down-1"];
    assert_eq!(r["http.response.status_code"], 503);
    assert_eq!(r["meshlog.response_flags"], "UF", "{r}");
    assert_eq!(r["severity_text"], "ERROR");
}

#[test]
fn istio_node_metadata_becomes_resource_attributes() {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    let upstream = Upstream::start(UPSTREAM);
    let mut sidecar = Sidecar::new(upstream.addr.port(), collector.addr.port());
    // What istio-agent writes into the node; no resource in the plugin configuration.
    sidecar.replace.push((
        "  cluster: demo-cluster\n".into(),
        "  cluster: checkout.shop\n  metadata:\n    NAMESPACE: shop\n    NAME: checkout-7d9f\n    \
         WORKLOAD_NAME: checkout\n    CLUSTER_ID: Kubernetes\n    MESH_ID: cluster.local\n    \
         LABELS:\n      app: checkout-app\n      service.istio.io/canonical-name: checkout-svc\n"
            .into(),
    ));
    sidecar.plugin_config = Some(r#"{"batch":{"max_age_ms":100}}"#.into());
    let envoy = Envoy::start(&sidecar, 1);
    assert_eq!(
        send(
            envoy.listen,
            "GET",
            "/",
            &[("x-request-id", b"istio-1")],
            b""
        ),
        200
    );
    let by_id = by_request_id(&collector.wait_records(1, &[&envoy]));
    let r = &by_id["istio-1"];
    for (key, want) in [
        ("resource.service.name", "checkout-svc"),
        ("resource.service.namespace", "shop"),
        ("resource.k8s.namespace.name", "shop"),
        ("resource.k8s.pod.name", "checkout-7d9f"),
        ("resource.k8s.cluster.name", "Kubernetes"),
        ("resource.meshlog.mesh.id", "cluster.local"),
        ("resource.meshlog.workload.name", "checkout"),
        ("resource.service.instance.id", "demo-sidecar"),
    ] {
        assert_eq!(r[key], want, "{key} in {r}");
    }
}

#[test]
fn an_mtls_request_record_names_the_calling_workload() {
    let pki =
        meshlog_e2e::tls::Pki::new("shop.example", "spiffe://cluster.local/ns/shop/sa/checkout");
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    let upstream = Upstream::start(UPSTREAM);
    let mut sidecar = Sidecar::new(upstream.addr.port(), collector.addr.port());
    sidecar.replace.extend(pki.on_filter_chain());
    let envoy = Envoy::start(&sidecar, 1);

    for i in 0..2 {
        use std::io::{Read, Write};
        let mut s = pki.connect(envoy.listen).expect("TLS connect");
        write!(
            s,
            "GET /orders/{i} HTTP/1.1\r\nHost: shop.example\r\nx-request-id: mtls-{i}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(
            buf.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf)
        );
    }
    let by_id = by_request_id(&collector.wait_records(2, &[&envoy]));
    assert_eq!(by_id.len(), 2);
    for r in by_id.values() {
        assert_eq!(r["event_name"], "meshlog.http.access", "{r}");
        assert_eq!(r["url.scheme"], "https", "{r}");
        assert_eq!(r["meshlog.peer.principal"], pki.client_spiffe_id, "{r}");
        assert_eq!(r["tls.protocol.version"], "1.3", "{r}");
        assert_eq!(r["tls.client.server_name"], "shop.example", "{r}");
        assert_eq!(r["tls.client.hash.sha256"], pki.client_cert_sha256(), "{r}");
    }
}
