//! Real clients against a collector with TLS, mutual TLS and `[auth]`: the OpenTelemetry Python
//! SDK's OTLP/gRPC and OTLP/HTTP exporters, Envoy's own OpenTelemetry access logger over
//! OTLP/gRPC (`envoy-config/otel-grpc-mtls.yaml`), and the meshlog filter sending over mutual TLS
//! (`envoy-config/sidecar-mtls.yaml`). Each presents a client certificate with a SPIFFE id:
//! every record sent by an identity with the ingest role is stored once, with its tenant;
//! refused senders (no role, an untrusted certificate, plain text to the TLS port) store
//! nothing. Certificates are minted per test; everything listens on loopback.

use meshlog_e2e::{Envoy, Proc, Sidecar, Upstream, query, repo_root, send, wait_for};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const UPSTREAM: &str = env!("CARGO_BIN_EXE_meshlog-upstream");
const CHECKOUT: &str = "spiffe://cluster.local/ns/shop/sa/checkout";
const NO_ROLE: &str = "spiffe://cluster.local/ns/ops/sa/reader";

/// A CA, the collector's certificate (DNS meshlog-collector and localhost) and client
/// certificates, as PEM files in a temp dir.
struct Pki {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key).expect("CA");
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("write");
        let pki = Pki {
            issuer: Issuer::new(p, key),
            dir,
        };
        let key = KeyPair::generate().expect("key");
        let p = CertificateParams::new(vec!["meshlog-collector".into(), "localhost".into()])
            .expect("params");
        let cert = p.signed_by(&key, &pki.issuer).expect("server cert");
        pki.write("server", &cert.pem(), &key.serialize_pem());
        pki
    }

    fn write(&self, name: &str, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let c = self.dir.path().join(format!("{name}.pem"));
        let k = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&c, cert).expect("write");
        std::fs::write(&k, key).expect("write");
        (c, k)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// A client certificate for `spiffe_id`, written as NAME.pem and NAME.key.
    fn client(&self, name: &str, spiffe_id: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.subject_alt_names = vec![SanType::URI(spiffe_id.try_into().expect("URI"))];
        let cert = p.signed_by(&key, &self.issuer).expect("client cert");
        self.write(name, &cert.pem(), &key.serialize_pem())
    }
}

/// `meshlog serve` with mutual TLS and `[auth]` on both listeners.
struct Mtls {
    proc: Proc,
    http: SocketAddr,
    grpc: SocketAddr,
    data: tempfile::TempDir,
}

impl Mtls {
    fn start(pki: &Pki, listen: &str, grpc_listen: &str) -> Mtls {
        let data = tempfile::tempdir().expect("tempdir");
        let cfg = data.path().join("meshlog.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"
[tls]
cert_file = "{}"
key_file = "{}"
client_ca_file = "{}"

[[auth.principals]]
id = "spiffe://cluster.local/ns/*/sa/checkout"
roles = ["ingest"]
tenant = "shop"

[[auth.principals]]
id = "{NO_ROLE}"
roles = ["read"]
"#,
                pki.path("server.pem").display(),
                pki.path("server.key").display(),
                pki.path("ca.pem").display()
            ),
        )
        .expect("write config");
        let mut cmd = Command::new(meshlog_e2e::collector_bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(&cfg)
            .arg("--data-dir")
            .arg(data.path().join("store"))
            .arg("--listen")
            .arg(listen)
            .arg("--grpc-listen")
            .arg(grpc_listen)
            .env("RUST_LOG", "info");
        let mut proc = Proc::spawn("collector", cmd);
        let http = proc.listening_addr(Duration::from_secs(20));
        let grpc = wait_for(Duration::from_secs(20), || {
            proc.output()
                .lines()
                .find_map(|l| l.split("OTLP/gRPC on ").nth(1))
                .and_then(|a| a.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no OTLP/gRPC address:\n{}", proc.output()));
        Mtls {
            proc,
            http,
            grpc,
            data,
        }
    }

    fn store(&self) -> PathBuf {
        self.data.path().join("store")
    }

    fn records(&self) -> Vec<Value> {
        query(&self.store())
    }

    /// Waits until `n` records are stored; returns them.
    fn wait_records(&self, n: usize) -> Vec<Value> {
        wait_for(Duration::from_secs(30), || {
            let r = self.records();
            (r.len() >= n).then_some(r)
        })
        .unwrap_or_else(|| {
            panic!(
                "fewer than {n} records stored: {:?}\ncollector:\n{}",
                self.records(),
                self.proc.output()
            )
        })
    }
}

/// Each record's meshlog.request_id, counted.
fn ids(records: &[Value]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in records {
        let id = r["meshlog.request_id"].as_str().unwrap_or("?").to_owned();
        *m.entry(id).or_insert(0) += 1;
    }
    m
}

/// `.venv/bin/python` with the OpenTelemetry SDK and both OTLP exporters, or a failure saying
/// how to install them.
fn otel_python() -> PathBuf {
    let py = repo_root().join(".venv/bin/python");
    let ok = Command::new(&py)
        .args([
            "-c",
            "import opentelemetry.sdk._logs, opentelemetry.exporter.otlp.proto.grpc._log_exporter, \
             opentelemetry.exporter.otlp.proto.http._log_exporter",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the OpenTelemetry Python SDK is not installed in .venv. Run scripts/test (it installs \
         it), or: source scripts/lib.sh && ensure_otel_python"
    );
    py
}

/// Runs the Python SDK client; returns (exit code, output).
fn python_client(
    protocol: &str,
    endpoint: &str,
    pki: &Pki,
    cert: &(PathBuf, PathBuf),
    prefix: &str,
    count: usize,
) -> (i32, String) {
    let out = Command::new(otel_python())
        .arg(repo_root().join("tests/py/otel_sdk_client.py"))
        .args([protocol, endpoint])
        .arg(pki.path("ca.pem"))
        .arg(&cert.0)
        .arg(&cert.1)
        .args([prefix, &count.to_string()])
        // requests lets these override the exporter's own CA file (its session-level verify).
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .output()
        .expect("run python");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_otel_python_sdk_over_mtls_grpc_and_http_is_stored_once_and_refusals_store_nothing() {
    let pki = Pki::new("meshlog e2e CA");
    let c = Mtls::start(&pki, "127.0.0.1:0", "127.0.0.1:0");
    let checkout = pki.client("checkout", CHECKOUT);
    let grpc = format!("https://localhost:{}", c.grpc.port());
    let http = format!("https://localhost:{}/v1/logs", c.http.port());

    let (code, out) = python_client("grpc", &grpc, &pki, &checkout, "py-grpc", 5);
    assert_eq!(code, 0, "{out}");
    let (code, out) = python_client("http", &http, &pki, &checkout, "py-http", 5);
    assert_eq!(code, 0, "{out}");
    let records = c.wait_records(10);
    let got = ids(&records);
    for p in ["py-grpc", "py-http"] {
        for i in 0..5 {
            assert_eq!(got.get(&format!("{p}-{i}")), Some(&1), "{got:?}");
        }
    }
    assert!(
        records
            .iter()
            .all(|r| r["resource.meshlog.tenant"] == "shop"),
        "{records:?}"
    );

    // An identity without the ingest role, a certificate from another CA, plain text to the
    // TLS port: each export fails, nothing is stored.
    let reader = pki.client("reader", NO_ROLE);
    let (code, out) = python_client("grpc", &grpc, &pki, &reader, "denied-grpc", 1);
    assert_eq!(code, 3, "{out}");
    let (code, out) = python_client("http", &http, &pki, &reader, "denied-http", 1);
    assert_eq!(code, 3, "{out}");
    let other = Pki::new("someone else's CA");
    let untrusted = other.client("untrusted", CHECKOUT);
    let (code, out) = python_client("http", &http, &pki, &untrusted, "untrusted", 1);
    assert_eq!(code, 3, "{out}");
    let plain = format!("http://localhost:{}/v1/logs", c.http.port());
    let (code, out) = python_client("http", &plain, &pki, &checkout, "plaintext", 1);
    assert_eq!(code, 3, "{out}");
    assert_eq!(c.records().len(), 10, "{:?}", c.records());
    c.proc.terminate();
}

/// `envoy-config/otel-grpc-mtls.yaml` with this test's ports and certificate files.
fn otel_envoy_yaml(
    app: u16,
    grpc: u16,
    listen: u16,
    admin: u16,
    pki: &Pki,
    client: &str,
) -> String {
    let path = repo_root().join("envoy-config/otel-grpc-mtls.yaml");
    let mut y = std::fs::read_to_string(&path).expect("read bootstrap");
    for (from, to) in [
        (
            "port_value: 10000".to_owned(),
            format!("port_value: {listen}"),
        ),
        ("port_value: 8080".to_owned(), format!("port_value: {app}")),
        ("port_value: 4317".to_owned(), format!("port_value: {grpc}")),
        (
            "port_value: 9901".to_owned(),
            format!("port_value: {admin}"),
        ),
        (
            "/etc/meshlog/tls/client.pem".to_owned(),
            pki.path(&format!("{client}.pem")).display().to_string(),
        ),
        (
            "/etc/meshlog/tls/client.key".to_owned(),
            pki.path(&format!("{client}.key")).display().to_string(),
        ),
        (
            "/etc/meshlog/tls/ca.pem".to_owned(),
            pki.path("ca.pem").display().to_string(),
        ),
    ] {
        assert_eq!(y.matches(&from).count(), 1, "{from} must occur once");
        y = y.replace(&from, &to);
    }
    y
}

/// Polls the collector's log for a refusal counted by reason (the test has no metrics role).
fn wait_refusal(c: &Mtls, needle: &str) {
    let seen = wait_for(Duration::from_secs(30), || {
        c.proc.output().contains(needle).then_some(())
    });
    assert!(
        seen.is_some(),
        "no {needle:?} in the collector's log:\n{}",
        c.proc.output()
    );
}

#[test]
fn envoys_opentelemetry_access_logger_over_mtls_stores_every_request_once() {
    let pki = Pki::new("meshlog e2e CA");
    let c = Mtls::start(&pki, "127.0.0.1:0", "127.0.0.1:0");
    let upstream = Upstream::start(UPSTREAM);
    pki.client("checkout", CHECKOUT);
    // Port 0: Envoy picks both; the harness reads them back.
    let (listen, admin) = (0, 0);
    let yaml = otel_envoy_yaml(
        upstream.addr.port(),
        c.grpc.port(),
        listen,
        admin,
        &pki,
        "checkout",
    );
    let envoy = Envoy::start_yaml(&yaml, 2, &[]);
    for i in 0..20 {
        let id = format!("als-{i}");
        let status = send(
            envoy.listen,
            "GET",
            &format!("/orders/{i}"),
            &[("x-request-id", id.as_bytes())],
            b"",
        );
        assert_eq!(status, 200);
    }
    let records = c.wait_records(20);
    let got = ids(&records);
    for i in 0..20 {
        assert_eq!(got.get(&format!("als-{i}")), Some(&1), "{got:?}");
    }
    let r = &records[0];
    assert_eq!(r["resource.meshlog.tenant"], "shop");
    assert_eq!(r["resource.service.name"], "demo");
    assert_eq!(r["http.request.method"], "GET");
    // Envoy's logger sends no meshlog policy version, so the collector redacts the record as it
    // would the filter: the peer address truncated to its /24, and counted.
    assert!(
        r["source.address"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.0:")),
        "{r:?}"
    );
    assert_eq!(r["meshlog.redacted.ip"], 1, "{r:?}");

    // The same Envoy set-up with an identity that lacks the ingest role: nothing is stored.
    pki.client("reader", NO_ROLE);
    let (listen2, admin2) = (0, 0);
    let yaml = otel_envoy_yaml(
        upstream.addr.port(),
        c.grpc.port(),
        listen2,
        admin2,
        &pki,
        "reader",
    );
    let denied = Envoy::start_yaml(&yaml, 1, &[]);
    for i in 0..3 {
        let id = format!("denied-{i}");
        send(
            denied.listen,
            "GET",
            "/denied",
            &[("x-request-id", id.as_bytes())],
            b"",
        );
    }
    wait_refusal(&c, "refused (permission_denied)");
    assert_eq!(c.records().len(), 20);
    c.proc.terminate();
}

#[test]
fn the_meshlog_filter_sends_over_mtls_with_its_certificates_identity() {
    let pki = Pki::new("meshlog e2e CA");
    let c = Mtls::start(&pki, "127.0.0.1:0", "127.0.0.1:0");
    let upstream = Upstream::start(UPSTREAM);
    pki.client("checkout", CHECKOUT);
    let mut sidecar = Sidecar::new(upstream.addr.port(), c.http.port());
    sidecar.file = "envoy-config/sidecar-mtls.yaml";
    let path = |f: &str| pki.path(f).display().to_string();
    sidecar.replace = vec![
        ("/etc/meshlog/tls/client.pem".into(), path("checkout.pem")),
        ("/etc/meshlog/tls/client.key".into(), path("checkout.key")),
        ("/etc/meshlog/tls/ca.pem".into(), path("ca.pem")),
    ];
    let envoy = Envoy::start(&sidecar, 1);
    for i in 0..10 {
        let id = format!("filter-{i}");
        assert_eq!(
            send(
                envoy.listen,
                "GET",
                &format!("/cart/{i}"),
                &[("x-request-id", id.as_bytes())],
                b""
            ),
            200
        );
    }
    let records: Vec<Value> = wait_for(Duration::from_secs(30), || {
        let r: Vec<Value> = c
            .records()
            .into_iter()
            .filter(|r| {
                r["meshlog.request_id"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("filter-"))
            })
            .collect();
        (r.len() >= 10).then_some(r)
    })
    .unwrap_or_else(|| panic!("records: {:?}\n{}", c.records(), c.proc.output()));
    let got = ids(&records);
    for i in 0..10 {
        assert_eq!(got.get(&format!("filter-{i}")), Some(&1), "{got:?}");
    }
    assert!(
        records
            .iter()
            .all(|r| r["resource.meshlog.tenant"] == "shop")
    );
    c.proc.terminate();
}
