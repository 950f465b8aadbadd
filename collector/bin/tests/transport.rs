//! Who may reach the collector and how: TLS and mutual TLS on every listener, SPIFFE identities
//! and bearer tokens mapped to roles and tenants, OTLP/gRPC through the same pipeline, and
//! `/metrics`. Every test runs the real binary on loopback with certificates minted per test.

use super::*;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::sync::Arc;

/// A CA and certificates it issues, written as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
}

/// A client certificate (or a server's), with its key.
#[derive(Clone)]
struct Cert {
    der: CertificateDer<'static>,
    key: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        Pki {
            ca_der: cert.der().clone(),
            issuer: Issuer::new(p, key),
            dir,
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate for `localhost` and 127.0.0.1, valid until `not_after_year`.
    fn server(&self, not_after_year: i32) -> Cert {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        p.not_after = rcgen::date_time_ymd(not_after_year, 1, 1);
        let c = p.signed_by(&key, &self.issuer).unwrap();
        Cert {
            der: c.der().clone(),
            key: key.serialize_der(),
            cert_pem: c.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A client certificate whose URI SAN is `spiffe_id`.
    fn client(&self, spiffe_id: &str) -> Cert {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = vec![SanType::URI(spiffe_id.try_into().unwrap())];
        let c = p.signed_by(&key, &self.issuer).unwrap();
        Cert {
            der: c.der().clone(),
            key: key.serialize_der(),
            cert_pem: c.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes `cert` as the server's files; returns (cert_file, key_file).
    fn write_server(&self, cert: &Cert) -> (PathBuf, PathBuf) {
        let (c, k) = (
            self.dir.path().join("server.pem"),
            self.dir.path().join("server.key"),
        );
        // Written aside and renamed, as a certificate manager does.
        std::fs::write(self.dir.path().join("server.key.new"), &cert.key_pem).unwrap();
        std::fs::write(self.dir.path().join("server.pem.new"), &cert.cert_pem).unwrap();
        std::fs::rename(self.dir.path().join("server.key.new"), &k).unwrap();
        std::fs::rename(self.dir.path().join("server.pem.new"), &c).unwrap();
        (c, k)
    }

    fn client_config(&self, client: Option<&Cert>) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let b = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        match client {
            Some(c) => b
                .with_client_auth_cert(
                    vec![c.der.clone()],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key.clone())),
                )
                .unwrap(),
            None => b.with_no_client_auth(),
        }
    }
}

/// One HTTPS request; returns status, body and the server's certificate. An error means the
/// handshake or the connection failed.
fn https(
    addr: SocketAddr,
    pki: &Pki,
    client: Option<&Cert>,
    request: &str,
    headers: &[&str],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>, CertificateDer<'static>)> {
    https_with(addr, pki.client_config(client), request, headers, body)
        .map(|(s, b, c, _)| (s, b, c))
}

/// [`https`] with a client configuration of the caller's; also returns the ALPN protocol the
/// server picked.
#[allow(clippy::type_complexity)]
fn https_with(
    addr: SocketAddr,
    config: rustls::ClientConfig,
    request: &str,
    headers: &[&str],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>, CertificateDer<'static>, Option<Vec<u8>>)> {
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .map_err(std::io::Error::other)?;
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut head = format!("{request} HTTP/1.1\r\nHost: localhost\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    write!(
        tls,
        "{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    tls.write_all(body)?;
    let mut buf = Vec::new();
    match tls.read_to_end(&mut buf) {
        Ok(_) => {}
        // Some servers close without close_notify; what was read is the answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => {}
        Err(e) => return Err(e),
    }
    let server_cert = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first().cloned())
        .ok_or_else(|| std::io::Error::other("no server certificate"))?;
    let alpn = tls.conn.alpn_protocol().map(<[u8]>::to_vec);
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP answer"))?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Ok((status, buf[head_end + 4..].to_vec(), server_cert, alpn))
}

const POST: &str = "POST /v1/logs";
const CT: &str = "Content-Type: application/json";

/// OTLP/JSON with one record and a client-claimed tenant.
fn claimed_tenant_json(id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "checkout"}},
            {"key": "meshlog.tenant", "value": {"stringValue": "claimed-by-client"}}]},
        "scopeLogs": [{"logRecords": [{"attributes": [
            {"key": "meshlog.request_id", "value": {"stringValue": id}}]}]}]}]}))
    .unwrap()
}

const CHECKOUT: &str = "spiffe://cluster.local/ns/shop/sa/checkout";
const READER: &str = "spiffe://cluster.local/ns/ops/sa/reader";

/// A `serve` with `[tls]` (mutual when `mutual`) and `[auth]`.
fn serve_tls(pki: &Pki, data: &Path, mutual: bool, extra: &str) -> (Proc, PathBuf) {
    let (cert, key) = pki.write_server(&pki.server(2040));
    let ca = if mutual {
        format!("client_ca_file = \"{}\"\n", pki.ca().display())
    } else {
        String::new()
    };
    let cfg = data.join("meshlog.toml");
    std::fs::write(
        &cfg,
        format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n{ca}\n{extra}",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let proc = Proc::spawn(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        data.join("store").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    (proc, cfg)
}

const AUTH: &str = r#"
[[auth.principals]]
id = "spiffe://cluster.local/ns/*/sa/checkout"
roles = ["ingest"]
tenant = "shop"

[[auth.principals]]
id = "spiffe://cluster.local/ns/ops/sa/reader"
roles = ["read"]

[[auth.principals]]
id = "scraper"
roles = ["metrics"]

[[auth.tokens]]
id = "scraper"
sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
"#;

fn stored(data: &Path) -> Vec<Value> {
    query_lines(&data.join("store"))
}

#[test]
fn serve_refuses_a_non_loopback_address_without_tls_unless_insecure() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let out = run(&["serve", "--data-dir", dir, "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "refusing to listen on 0.0.0.0:0 (listen), 0.0.0.0:0 (grpc_listen) without TLS"
        ) && err.contains("--insecure"),
        "{err}"
    );
    let mut p = Proc::spawn(&[
        "serve",
        "--data-dir",
        dir,
        "--listen",
        "0.0.0.0:0",
        "--insecure",
    ]);
    p.wait_line("--insecure: serving 0.0.0.0:0 (listen), 0.0.0.0:0 (grpc_listen) without TLS");
    let addr = p.addr();
    assert_eq!(addr.ip().to_string(), "0.0.0.0");
    assert!(p.terminate().success());
    // The same, said in the configuration file (a collector whose sidecar terminates mTLS).
    let cfg = data.path().join("m.toml");
    std::fs::write(&cfg, "insecure = true\nlisten = \"0.0.0.0:0\"\n").unwrap();
    let mut p = Proc::spawn(&[
        "serve",
        "--data-dir",
        dir,
        "--config",
        cfg.to_str().unwrap(),
    ]);
    p.wait_line("--insecure: serving 0.0.0.0:0 (listen)");
    p.addr(); // bound, with its signal handlers
    assert!(p.terminate().success());
    let out = run(&["validate", "--config", cfg.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn mtls_identities_get_their_roles_and_tenants_and_refusals_store_nothing() {
    let pki = Pki::new("meshlog test CA");
    let data = tempfile::tempdir().unwrap();
    // The tenant stamped on records picks their retention class.
    let retention = "\n[retention]\ndefault_days = 400\n[[retention.classes]]\nname = \"shop\"\n\
                     days = 30\nmatch = { \"meshlog.tenant\" = \"shop\" }\n";
    let (mut p, _) = serve_tls(&pki, data.path(), true, &format!("{AUTH}{retention}"));
    let addr = p.addr();
    p.wait_line("client certificates required");

    // An ingest principal (by glob): stored, with its tenant, not the one it claimed.
    let checkout = pki.client(CHECKOUT);
    let (status, body, _) = https(
        addr,
        &pki,
        Some(&checkout),
        POST,
        &[CT],
        &claimed_tenant_json("ok-1"),
    )
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    // A known identity without the ingest role: 403.
    let reader = pki.client(READER);
    let (status, body, _) = https(
        addr,
        &pki,
        Some(&reader),
        POST,
        &[CT],
        &claimed_tenant_json("denied"),
    )
    .unwrap();
    assert_eq!(status, 403);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], 7);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("does not have the ingest role"),
        "{v}"
    );

    // An identity no principal matches: 403.
    let stranger = pki.client("spiffe://cluster.local/ns/shop/sa/cart");
    let (status, _, _) = https(
        addr,
        &pki,
        Some(&stranger),
        POST,
        &[CT],
        &claimed_tenant_json("stranger"),
    )
    .unwrap();
    assert_eq!(status, 403);

    // A certificate from another CA, and no certificate at all: no TLS session, no answer.
    let other = Pki::new("someone else's CA");
    let untrusted = other.client(CHECKOUT);
    assert!(
        https(
            addr,
            &pki,
            Some(&untrusted),
            POST,
            &[CT],
            &claimed_tenant_json("untrusted")
        )
        .is_err()
    );
    assert!(https(addr, &pki, None, POST, &[CT], &claimed_tenant_json("anon")).is_err());

    // Plain HTTP to the TLS port: no answer that stores anything.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = claimed_tenant_json("plaintext");
    let _ = write!(
        s,
        "POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(&body);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(!buf.starts_with(b"HTTP/1.1 200"), "{buf:?}");

    assert!(p.terminate().success());
    let records = stored(data.path());
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["meshlog.request_id"], "ok-1");
    assert_eq!(records[0]["resource.meshlog.tenant"], "shop");
    let in_class = reader::read_all(&data.path().join("store/classes/shop")).unwrap();
    assert_eq!(in_class.len(), 1, "the record is in the tenant's class");
    assert_eq!(in_class[0]["meshlog.request_id"], "ok-1");
}

#[test]
fn tokens_are_checked_by_hash_and_metrics_need_the_role() {
    let pki = Pki::new("meshlog test CA");
    let data = tempfile::tempdir().unwrap();
    let (mut p, _) = serve_tls(&pki, data.path(), false, AUTH);
    let addr = p.addr();
    // No identity at all: 401.
    let (status, _, _) = https(addr, &pki, None, "GET /metrics", &[], b"").unwrap();
    assert_eq!(status, 401);
    // A wrong token: 401; nothing stored for a wrong token on ingest either.
    let (status, _, _) = https(
        addr,
        &pki,
        None,
        "GET /metrics",
        &["Authorization: Bearer abd"],
        b"",
    )
    .unwrap();
    assert_eq!(status, 401);
    let (status, _, _) = https(
        addr,
        &pki,
        None,
        POST,
        &[CT, "Authorization: Bearer wrong"],
        &claimed_tenant_json("bad-token"),
    )
    .unwrap();
    assert_eq!(status, 401);
    // The scraper's token (sha256 of "abc" in the config): metrics, but not ingest.
    let (status, _, _) = https(
        addr,
        &pki,
        None,
        POST,
        &[CT, "Authorization: Bearer abc"],
        &claimed_tenant_json("scraper"),
    )
    .unwrap();
    assert_eq!(status, 403);
    let (status, body, _) = https(
        addr,
        &pki,
        None,
        "GET /metrics",
        &[
            "Authorization: Bearer abc",
            "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        ],
        b"",
    )
    .unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    for needle in [
        "meshlog_refusals_total{reason=\"unauthenticated\"} 3",
        "meshlog_refusals_total{reason=\"permission_denied\"} 1",
        "meshlog_tls_cert_expiry_timestamp_seconds{cert=\"server\"} 2208988800",
        "meshlog_build_info{version=\"",
        "# EOF",
    ] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
    assert!(!text.contains("scraper"), "no principal in labels");
    assert!(p.terminate().success());
    assert_eq!(stored(data.path()).len(), 0);
}

#[test]
fn certificates_are_reloaded_on_sighup_without_a_restart() {
    let pki = Pki::new("meshlog test CA");
    let data = tempfile::tempdir().unwrap();
    let (mut p, _) = serve_tls(&pki, data.path(), false, "");
    let addr = p.addr();
    let (_, _, first) = https(addr, &pki, None, "GET /healthz", &[], b"").unwrap();
    let renewed = pki.server(2041);
    pki.write_server(&renewed);
    let ok = Command::new("kill")
        .args(["-HUP", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    p.wait_line("TLS certificate files changed");
    let (status, body, second) = https(addr, &pki, None, "GET /healthz", &[], b"").unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
    assert_ne!(first, second);
    assert_eq!(second, renewed.der);
    // A broken file is not taken: the renewed certificate stays in use.
    std::fs::write(pki.dir.path().join("server.pem"), "not a certificate").unwrap();
    let ok = Command::new("kill")
        .args(["-HUP", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    p.wait_line("not reloaded, the previous ones stay in use");
    let (_, _, third) = https(addr, &pki, None, "GET /healthz", &[], b"").unwrap();
    assert_eq!(third, renewed.der);
    assert!(p.terminate().success());
}

fn grpc_request(id: &str) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest::decode(otlp_proto("grpc-svc", id, 200).as_slice()).unwrap()
}

fn grpc_addr(p: &mut Proc) -> SocketAddr {
    let line = p.wait_line("OTLP/gRPC on ");
    line.split("OTLP/gRPC on ")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_stores_after_fsync_deduplicates_and_decompresses() {
    use tonic::codec::CompressionEncoding;
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap().to_owned();
    let mut p = Proc::spawn(&["serve", "--data-dir", &dir, "--listen", "127.0.0.1:0"]);
    let http = p.addr();
    let addr = grpc_addr(&mut p);
    let mut client = LogsServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    // With a batch id, twice: stored once, the second answered as a duplicate.
    for round in 0..2 {
        let mut req = tonic::Request::new(grpc_request("g1"));
        req.metadata_mut()
            .insert("meshlog-batch-id", "vm-1:1-1".parse().unwrap());
        let resp = client.export(req).await.unwrap();
        assert_eq!(
            resp.metadata().get("meshlog-duplicate").is_some(),
            round == 1
        );
    }
    // gzip and zstd.
    for (enc, id) in [
        (CompressionEncoding::Gzip, "g-gzip"),
        (CompressionEncoding::Zstd, "g-zstd"),
    ] {
        let mut c = client.clone().send_compressed(enc);
        c.export(grpc_request(id)).await.unwrap();
    }
    // An empty request: OK, nothing stored, counted.
    client
        .export(ExportLogsServiceRequest::default())
        .await
        .unwrap();
    // A bad batch id: INVALID_ARGUMENT.
    let mut req = tonic::Request::new(grpc_request("bad"));
    req.metadata_mut()
        .insert("meshlog-batch-id", "a b".parse().unwrap());
    let e = client.export(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // Over 20 MiB: refused by the framework, nothing stored.
    let mut big = grpc_request("big");
    big.resource_logs[0].scope_logs[0].log_records[0].body = Some(AnyValue {
        value: Some(any_value::Value::StringValue("x".repeat(21 << 20))),
    });
    let e = client.export(big).await.unwrap_err();
    assert_ne!(e.code(), tonic::Code::Ok);

    let (status, body) = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(http).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        (buf.starts_with("HTTP/1.1 200"), buf)
    })
    .await
    .unwrap();
    assert!(status, "{body}");
    for needle in [
        "meshlog_ingest_records_total{transport=\"grpc\",outcome=\"stored\"} 3",
        "meshlog_ingest_batches_total{transport=\"grpc\",outcome=\"duplicate\"} 1",
        "meshlog_ingest_batches_total{transport=\"grpc\",outcome=\"empty\"} 1",
        "meshlog_ingest_duplicate_batches_total{transport=\"grpc\"} 1",
        "meshlog_ingest_fsync_wait_seconds_count 3",
    ] {
        assert!(body.contains(needle), "{needle} not in\n{body}");
    }
    p.wait_line("held no log records");
    assert!(p.terminate().success());
    let mut ids = query_ids(data.path());
    ids.sort();
    assert_eq!(ids, ["g-gzip", "g-zstd", "g1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_over_mtls_takes_the_certificates_identity() {
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
    let pki = Pki::new("meshlog test CA");
    let data = tempfile::tempdir().unwrap();
    let (mut p, _) = serve_tls(&pki, data.path(), true, AUTH);
    let addr = grpc_addr(&mut p);
    let ca = std::fs::read_to_string(pki.ca()).unwrap();
    let channel = |cert: Cert| {
        let ca = ca.clone();
        async move {
            Channel::from_shared(format!("https://localhost:{}", addr.port()))
                .unwrap()
                .tls_config(
                    ClientTlsConfig::new()
                        .ca_certificate(Certificate::from_pem(ca))
                        .identity(Identity::from_pem(cert.cert_pem, cert.key_pem))
                        .domain_name("localhost"),
                )
                .unwrap()
                .connect()
                .await
                .unwrap()
        }
    };
    let mut checkout = LogsServiceClient::new(channel(pki.client(CHECKOUT)).await);
    checkout.export(grpc_request("mtls-1")).await.unwrap();
    let mut reader = LogsServiceClient::new(channel(pki.client(READER)).await);
    let e = reader.export(grpc_request("denied")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(p.terminate().success());
    let records = stored(data.path());
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["meshlog.request_id"], "mtls-1");
    assert_eq!(records[0]["resource.meshlog.tenant"], "shop");
}

/// The ALPN lists an Istio sidecar offers upstream with `ISTIO_MUTUAL` (istio/istio,
/// pilot/pkg/networking/util: `ALPNInMesh`, `ALPNInMeshWithMxc`, `ALPNInMeshH2WithMxc` on the
/// cluster; the `istio.alpn` HTTP filter's overrides per downstream protocol).
const ISTIO_ALPN_OFFERS: [&[&str]; 6] = [
    &["istio-peer-exchange", "istio"],
    &["istio-peer-exchange", "istio", "h2"],
    &["istio"],
    &["istio-http/1.0", "istio", "http/1.0"],
    &["istio-http/1.1", "istio", "http/1.1"],
    &["istio-h2", "istio", "h2"],
];

/// What the collector picks from an offer: h2, else http/1.1, else istio; never
/// istio-peer-exchange (the sidecar would start its TCP metadata exchange in the stream).
fn istio_pick(offer: &[&str]) -> &'static str {
    ["h2", "http/1.1", "istio"]
        .into_iter()
        .find(|p| offer.contains(p))
        .unwrap()
}

/// A client that offers what an Istio sidecar offers with `ISTIO_MUTUAL`, and presents a
/// SPIFFE certificate, is accepted over mTLS on both listeners: OTLP/HTTP and OTLP/gRPC, its
/// identity's role and tenant applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_mutual_alpn_offers_with_a_spiffe_certificate_are_accepted_over_http_and_grpc() {
    use hyper_util::rt::TokioIo;
    use tonic::transport::Endpoint;
    let pki = Arc::new(Pki::new("istio-like mesh CA"));
    let data = tempfile::tempdir().unwrap();
    let (mut p, _) = serve_tls(&pki, data.path(), true, AUTH);
    let http = p.addr();
    let grpc = grpc_addr(&mut p);
    let checkout = pki.client(CHECKOUT);
    let mut want = Vec::new();
    for (i, offer) in ISTIO_ALPN_OFFERS.iter().enumerate() {
        let mut config = pki.client_config(Some(&checkout));
        config.alpn_protocols = offer.iter().map(|p| p.as_bytes().to_vec()).collect();
        let picked = istio_pick(offer).as_bytes().to_vec();

        // OTLP/HTTP (HTTP/1.1 on the wire).
        let id = format!("istio-http-{i}");
        want.push(id.clone());
        let c = config.clone();
        let (status, body, _, alpn) = tokio::task::spawn_blocking(move || {
            https_with(http, c, POST, &[CT], &claimed_tenant_json(&id))
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{offer:?} refused over HTTP: {e}"));
        assert_eq!(status, 200, "{offer:?}: {}", String::from_utf8_lossy(&body));
        assert_eq!(alpn.as_deref(), Some(&picked[..]), "{offer:?}");

        // OTLP/gRPC (HTTP/2 with prior knowledge, as Envoy's gRPC client speaks it).
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let negotiated = Arc::new(std::sync::Mutex::new(None));
        let seen = negotiated.clone();
        let channel = Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_| {
                let (connector, seen) = (connector.clone(), seen.clone());
                async move {
                    let tcp = tokio::net::TcpStream::connect(grpc).await?;
                    let tls = connector
                        .connect(ServerName::try_from("localhost").unwrap(), tcp)
                        .await?;
                    *seen.lock().unwrap() = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                    Ok::<_, std::io::Error>(TokioIo::new(tls))
                }
            }))
            .await
            .unwrap_or_else(|e| panic!("{offer:?} refused over gRPC: {e:?}"));
        let id = format!("istio-grpc-{i}");
        want.push(id.clone());
        LogsServiceClient::new(channel)
            .export(grpc_request(&id))
            .await
            .unwrap_or_else(|e| panic!("{offer:?}: {e:?}"));
        assert_eq!(
            negotiated.lock().unwrap().as_deref(),
            Some(&picked[..]),
            "{offer:?}"
        );
    }
    assert!(p.terminate().success());
    let records = stored(data.path());
    let mut ids: Vec<String> = records
        .iter()
        .map(|r| r["meshlog.request_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    want.sort();
    assert_eq!(ids, want);
    assert!(
        records
            .iter()
            .all(|r| r["resource.meshlog.tenant"] == "shop"),
        "{records:?}"
    );
}

/// Slow clients hold connections open by sending half a request; they are capped per peer
/// address and cut by the header timeout, while well-behaved clients' batches keep being
/// stored. Loopback only and bounded: 12 slow connections, 20 batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_keep_well_behaved_ingest_from_flowing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let data = tempfile::tempdir().unwrap();
    let cfg = data.path().join("meshlog.toml");
    std::fs::write(
        &cfg,
        "[connections]\nmax_connections_per_peer = 4\nheader_read_timeout_ms = 1000\n",
    )
    .unwrap();
    let store = data.path().join("store");
    let mut p = Proc::spawn(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        store.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let addr = p.addr();
    // The slow clients come from another loopback address, 127.0.0.2.
    let mut slow = Vec::new();
    for _ in 0..12 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut s = sock.connect(addr).await.unwrap();
        let _ = s
            .write_all(b"POST /v1/logs HTTP/1.1\r\nHost: slow\r\nContent-Ty")
            .await;
        slow.push(s);
    }
    // Meanwhile the well-behaved client's batches are all stored.
    let good = tokio::task::spawn_blocking(move || {
        (0..20)
            .map(|i| {
                http_post(
                    addr,
                    JSON,
                    &otlp_json("good", &[format!("good-{i}").as_str()]),
                )
                .0
            })
            .collect::<Vec<u16>>()
    })
    .await
    .unwrap();
    assert_eq!(good, vec![200; 20]);
    // Every slow connection is closed by the collector (over the cap at once, the others at
    // the header timeout), none answered with a success.
    for mut s in slow {
        let mut buf = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
        assert!(r.is_ok(), "a slow connection was never closed");
        assert!(!buf.starts_with(b"HTTP/1.1 200"), "{buf:?}");
    }
    let metrics = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        buf
    })
    .await
    .unwrap();
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("meshlog_refusals_total{reason=\"peer_connection_limit\"} "))
        .unwrap_or_else(|| panic!("no peer_connection_limit refusals in\n{metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(
        refused >= 8,
        "{refused} refused; 12 opened against a cap of 4"
    );
    assert!(p.terminate().success());
    assert_eq!(query_lines(&store).len(), 20);
}

/// The mechanism for auditing reads: an access record goes through the pipeline into the
/// tamper-evident log, with who, what, how much and the outcome; a refused read is recorded
/// too (there are no read endpoints yet, so a stand-in route is gated with the read role).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_refused_reads_are_appended_to_the_log_as_access_records() {
    use meshlog_server::audit_log::AccessEvent;
    use meshlog_server::auth::{AuthConfig, AuthPolicy, Gate, Role, require};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let state = meshlog_server::AppState::new(Pipeline::single(
        store.handle(),
        Limits::default(),
        meshlog_server::ingest::DEFAULT_ACK_TIMEOUT,
    ));
    state
        .audit
        .record(&AccessEvent {
            principal: READER.into(),
            role: "read".into(),
            tenant: Some("ops".into()),
            peer: Some("10.0.0.5:40000".into()),
            endpoint: "/v1/query".into(),
            parameters: vec![("service".into(), "checkout".into())],
            rows: 12,
            bytes: 3456,
            outcome: "ok".into(),
        })
        .await
        .unwrap();
    let gate = Gate {
        policy: Arc::new(AuthPolicy::Enforced(AuthConfig::default())),
        role: Role::Read,
        metrics: state.metrics.clone(),
        audit: Some(state.audit.clone()),
    };
    let app = Router::new()
        .route("/v1/query", axum::routing::get(|| async { "rows" }))
        .route_layer(axum::middleware::from_fn_with_state(gate, require));
    let resp = app
        .oneshot(
            Request::get("/v1/query?service=x")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    store.close().unwrap();
    let records = reader::read_all(dir.path()).unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    let ok = &records[0];
    assert_eq!(ok["event_name"], "meshlog.access");
    assert_eq!(ok["meshlog.access.principal"], READER);
    assert_eq!(ok["meshlog.access.role"], "read");
    assert_eq!(ok["resource.meshlog.tenant"], "ops");
    assert_eq!(ok["meshlog.access.endpoint"], "/v1/query");
    assert_eq!(ok["meshlog.access.parameter.service"], "checkout");
    assert_eq!(ok["meshlog.access.rows"], 12);
    assert_eq!(ok["meshlog.access.bytes"], 3456);
    assert_eq!(ok["meshlog.access.outcome"], "ok");
    let refused = &records[1];
    assert_eq!(refused["meshlog.access.outcome"], "unauthenticated");
    assert_eq!(refused["meshlog.access.endpoint"], "/v1/query");
    assert_eq!(refused["meshlog.access.principal"], "-");
    assert_eq!(refused["meshlog.access.parameter.service"], "x");
}

/// `/metrics` in the text format passes Prometheus' own linter, `promtool check metrics`
/// (Debian package `prometheus`; scripts/test installs it).
#[test]
fn metrics_pass_promtool_check_metrics() {
    let promtool = Command::new("promtool").arg("--version").output();
    assert!(
        promtool.is_ok_and(|o| o.status.success()),
        "promtool not found: apt-get install -y prometheus (or: source scripts/lib.sh && \
         ensure_promtool)"
    );
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let mut p = Proc::spawn(&["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"]);
    let addr = p.addr();
    assert_eq!(http_post(addr, JSON, &otlp_json("m", &["m-1"])).0, 200);
    assert_eq!(http_post(addr, JSON, b"{").0, 400);
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    assert!(
        body.contains("meshlog_ingest_records_total{transport=\"http\",outcome=\"stored\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("meshlog_refusals_total{reason=\"malformed\"} 1"),
        "{body}"
    );
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(p.terminate().success());
}

/// `validate` loads the TLS files as `serve` would, and names addresses `serve` refuses
/// without TLS.
#[test]
fn validate_checks_the_tls_files_and_plain_text_beyond_loopback() {
    let pki = Pki::new("meshlog test CA");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("m.toml");
    let (cert, key) = pki.write_server(&pki.server(2040));
    std::fs::write(
        &cfg,
        format!(
            "[tls]\ncert_file = {:?}\nkey_file = {:?}\nclient_ca_file = {:?}\n",
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            tmp.path().join("missing-ca.pem").to_str().unwrap()
        ),
    )
    .unwrap();
    let out = run(&["validate", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("problem: tls: ") && text.contains("missing-ca.pem"),
        "{text}"
    );
    std::fs::write(&cfg, "listen = \"0.0.0.0:4318\"\n").unwrap();
    let out = run(&["validate", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(
            "problem: listen: 0.0.0.0:4318 is not a loopback address and there is no [tls]"
        ) && text.contains("problem: grpc_listen: 0.0.0.0:4317"),
        "{text}"
    );
    std::fs::write(
        &cfg,
        format!(
            "listen = \"0.0.0.0:4318\"\n[tls]\ncert_file = {:?}\nkey_file = {:?}\nclient_ca_file = {:?}\n",
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            pki.ca().to_str().unwrap()
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
}

/// A client that opens a TLS port and never says hello is cut at the handshake timeout, and
/// counted.
#[test]
fn a_silent_client_is_cut_at_the_tls_handshake_timeout() {
    let pki = Pki::new("meshlog test CA");
    let data = tempfile::tempdir().unwrap();
    let extra = format!("[connections]\nhandshake_timeout_ms = 200\n{AUTH}");
    let (mut p, _) = serve_tls(&pki, data.path(), false, &extra);
    let addr = p.addr();
    let mut silent = TcpStream::connect(addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = Vec::new();
    // EOF (or a reset): the collector closed it; a read timeout would be an error here.
    match silent.read_to_end(&mut buf) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    assert!(buf.is_empty(), "{buf:?}");
    let (status, body, _) = https(
        addr,
        &pki,
        None,
        "GET /metrics",
        &["Authorization: Bearer abc"],
        b"",
    )
    .unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("meshlog_refusals_total{reason=\"tls_handshake_timeout\"} 1"),
        "{text}"
    );
    assert!(p.terminate().success());
}

/// OTLP/gRPC backpressure: with the writer held at its fsync and the ingest queue nearly full,
/// a second batch is refused at once as UNAVAILABLE with `google.rpc.RetryInfo`, nothing of it
/// stored; the first is answered OK only once its fsync is let through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_backpressure_is_unavailable_with_retry_info() {
    use meshlog_server::net::{ConnLimits, Listener};
    let pause = meshlog_store::WriterPause::new();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            pause: Some(pause.clone()),
            max_queue_bytes: 65_536,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    // Redaction off: the collector would redact the random body below as a secret, and the
    // frame it queues would be too small to fill the queue.
    let state = meshlog_server::AppState::new(
        Pipeline::single(
            store.handle(),
            Limits::default(),
            meshlog_server::ingest::DEFAULT_ACK_TIMEOUT,
        )
        .with_redaction(meshlog_server::ingest::pipeline::Redaction::off()),
    );
    let metrics = state.metrics.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(meshlog_server::net::serve(
        listener,
        Listener {
            router: meshlog_server::grpc_app(state),
            tls: None,
            limits: ConnLimits::default(),
            metrics: metrics.clone(),
        },
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(5),
    ));
    let client = LogsServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    // About 50 KB each, of letters zstd cannot shrink much (the queue holds a batch's frame as
    // compressed): one fits the 64 KiB queue, two do not.
    let big = |id: &str| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let noise: String = (0..50_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect();
        let mut r = grpc_request(id);
        r.resource_logs[0].scope_logs[0].log_records[0].body = Some(AnyValue {
            value: Some(any_value::Value::StringValue(noise)),
        });
        r
    };
    pause.hold();
    let first = tokio::spawn({
        let mut c = client.clone();
        let r = big("bp-1");
        async move { c.export(r).await }
    });
    let p = pause.clone();
    let paused = tokio::task::spawn_blocking(move || p.wait_until_paused(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(paused, "the writer never reached its fsync");
    let e = client.clone().export(big("bp-2")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    let details = e.details();
    assert!(
        details
            .windows(b"google.rpc.RetryInfo".len())
            .any(|w| w == b"google.rpc.RetryInfo"),
        "no RetryInfo in {details:?}"
    );
    if first.is_finished() {
        panic!("answered before its fsync: {:?}", first.await);
    }
    pause.release();
    first.await.unwrap().unwrap();
    assert!(
        metrics
            .encode()
            .contains("meshlog_refusals_total{reason=\"busy\"} 1")
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    store.close().unwrap();
    let records = reader::read_all(dir.path()).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["meshlog.request_id"], "bp-1");
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let status = buf.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, buf)
}

/// With `metrics_listen`, /metrics is served there and not on the OTLP/HTTP listener.
#[test]
fn metrics_listen_moves_metrics_to_a_listener_of_their_own() {
    let data = tempfile::tempdir().unwrap();
    let cfg = data.path().join("m.toml");
    std::fs::write(&cfg, "metrics_listen = \"127.0.0.1:0\"\n").unwrap();
    let mut p = Proc::spawn(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        data.path().join("store").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let http = p.addr();
    let line = p.wait_line("/metrics on ");
    let metrics: SocketAddr = line
        .split("/metrics on ")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(metrics, http);
    let (status, body) = get(metrics, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("meshlog_build_info{version="), "{body}");
    assert_eq!(get(http, "/metrics").0, 404);
    assert_eq!(get(http, "/healthz").0, 200);
    assert!(p.terminate().success());
}
