//! Network-filter mode end to end: TCP connections through a real Envoy (`envoy-config/tcp.yaml`,
//! the module as `envoy.filters.network.wasm` in front of tcp_proxy) give one record each, with
//! the bytes the client really sent and received, its address and port, the upstream, and, when
//! the listener terminates mTLS, the client's SPIFFE id, TLS version, SNI and certificate hash.

use meshlog_e2e::tls::Pki;
use meshlog_e2e::{Collector, Envoy, Sidecar, Upstream};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const UPSTREAM: &str = env!("CARGO_BIN_EXE_meshlog-upstream");

/// What the client saw of one connection.
struct Conn {
    port: u16,
    sent: usize,
    received: usize,
}

/// An HTTP/1.1 request with `Connection: close`, padded so each connection's size differs.
fn request(i: usize) -> Vec<u8> {
    format!(
        "GET /tcp/{i} HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(i * 37)
    )
    .into_bytes()
}

/// Writes the request and reads to EOF, counting both ways.
fn exchange(stream: &mut impl ReadWrite, raw: &[u8]) -> usize {
    stream.write_all(raw).expect("write");
    stream.flush().expect("flush");
    let mut buf = Vec::new();
    // A TLS peer may close without close_notify after Connection: close; what arrived counts.
    let _ = stream.read_to_end(&mut buf);
    assert!(
        buf.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
    buf.len()
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Connection `i` over `stream` (whose local port is `port`).
fn connection(mut stream: impl ReadWrite, port: u16, i: usize) -> Conn {
    let raw = request(i);
    let received = exchange(&mut stream, &raw);
    Conn {
        port,
        sent: raw.len(),
        received,
    }
}

fn plain(addr: SocketAddr, i: usize) -> Conn {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let port = s.local_addr().unwrap().port();
    connection(s, port, i)
}

fn by_client_port(records: &[Value]) -> HashMap<u64, Value> {
    let mut m = HashMap::new();
    for r in records {
        assert_eq!(r["event_name"], "meshlog.tcp.connection", "{r}");
        let port = r["client.port"].as_u64().unwrap_or_else(|| panic!("{r}"));
        assert!(m.insert(port, r.clone()).is_none(), "port {port} twice");
    }
    m
}

/// The fields every connection record must have right.
fn check(r: &Value, c: &Conn, upstream: SocketAddr, listen: SocketAddr, elapsed: Duration) {
    assert_eq!(r["meshlog.connection.bytes_received"], c.sent as u64, "{r}");
    assert_eq!(r["meshlog.connection.bytes_sent"], c.received as u64, "{r}");
    assert_eq!(r["network.transport"], "tcp", "{r}");
    // Client IPs are personal data: truncated to /24 by default.
    assert_eq!(r["client.address"], "127.0.0.0", "{r}");
    assert_eq!(
        r["meshlog.downstream.local_address"],
        listen.to_string(),
        "{r}"
    );
    assert_eq!(r["meshlog.upstream.host"], upstream.to_string(), "{r}");
    assert_eq!(r["meshlog.upstream.cluster"], "app", "{r}");
    assert_eq!(r["meshlog.direction"], "inbound", "{r}");
    assert_eq!(r["resource.service.name"], "demo-tcp", "{r}");
    let d = r["meshlog.duration_ns"].as_u64().unwrap();
    assert!(d > 0 && d < elapsed.as_nanos() as u64, "duration {d} ns");
    assert!(r.get("http.request.method").is_none(), "{r}");
}

#[test]
fn each_tcp_connection_is_one_record_with_bytes_peers_and_duration() {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    let upstream = Upstream::start(UPSTREAM);
    let mut sidecar = Sidecar::new(upstream.addr.port(), collector.addr.port());
    sidecar.file = "envoy-config/tcp.yaml";
    // Two workers: connections land on both VMs.
    let envoy = Envoy::start(&sidecar, 2);

    let t0 = Instant::now();
    let conns: Vec<Conn> = (0..16).map(|i| plain(envoy.listen, i)).collect();
    let elapsed = t0.elapsed();

    let stored = by_client_port(&collector.wait_records(conns.len(), &[&envoy]));
    assert_eq!(stored.len(), conns.len(), "one record per connection");
    for c in &conns {
        let r = &stored[&u64::from(c.port)];
        check(r, c, upstream.addr, envoy.listen, elapsed);
        assert!(r.get("tls.protocol.name").is_none(), "plaintext: {r}");
    }
    assert_eq!(envoy.stat("wasmcustom.meshlog.records_logged"), Some(16));
}

#[test]
fn an_mtls_connection_record_names_the_calling_workload() {
    let pki = Pki::new(
        "orders-db.shop.svc.cluster.local",
        "spiffe://cluster.local/ns/shop/sa/frontend",
    );
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    let upstream = Upstream::start(UPSTREAM);
    let mut sidecar = Sidecar::new(upstream.addr.port(), collector.addr.port());
    sidecar.file = "envoy-config/tcp.yaml";
    sidecar.replace.extend(pki.on_filter_chain());
    let envoy = Envoy::start(&sidecar, 1);

    let t0 = Instant::now();
    let conns: Vec<Conn> = (0..3)
        .map(|i| {
            let s = pki.connect(envoy.listen).expect("TLS connect");
            let port = s.sock.local_addr().unwrap().port();
            connection(s, port, i)
        })
        .collect();
    let elapsed = t0.elapsed();

    let stored = by_client_port(&collector.wait_records(conns.len(), &[&envoy]));
    assert_eq!(stored.len(), conns.len());
    for c in &conns {
        let r = &stored[&u64::from(c.port)];
        // The network filter sits after TLS: it counts the plaintext the client exchanged.
        check(r, c, upstream.addr, envoy.listen, elapsed);
        assert_eq!(r["tls.protocol.name"], "tls", "{r}");
        assert_eq!(r["tls.protocol.version"], "1.3", "{r}");
        assert_eq!(r["tls.client.server_name"], pki.server_name, "{r}");
        assert_eq!(r["meshlog.peer.principal"], pki.client_spiffe_id, "{r}");
        assert_eq!(r["tls.client.hash.sha256"], pki.client_cert_sha256(), "{r}");
    }
}

/// A TCP upstream that echoes each read back at once and, when the client half-closes, sends
/// `bye` and closes: one connection.
fn echo_upstream() -> (SocketAddr, std::thread::JoinHandle<usize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut echoed = 0;
        loop {
            match s.read(&mut buf).unwrap() {
                0 => break,
                n => {
                    s.write_all(&buf[..n]).unwrap();
                    echoed += n;
                }
            }
        }
        s.write_all(b"bye").unwrap();
        echoed + 3
    });
    (addr, h)
}

#[test]
fn a_long_lived_connection_counts_bytes_over_many_callbacks_through_a_half_close() {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    let (upstream, echo) = echo_upstream();
    let mut sidecar = Sidecar::new(upstream.port(), collector.addr.port());
    sidecar.file = "envoy-config/tcp.yaml";
    let envoy = Envoy::start(&sidecar, 1);

    let t0 = Instant::now();
    let mut s = TcpStream::connect_timeout(&envoy.listen, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let port = s.local_addr().unwrap().port();
    // Ten round trips, each waiting for its echo: ten data callbacks each way at least, over
    // more than a second, while batches ship every 100 ms.
    let (mut sent, mut received) = (0, 0);
    for i in 0..10 {
        let chunk = format!("chunk {i}: {}\n", "x".repeat(100 * i));
        s.write_all(chunk.as_bytes()).unwrap();
        sent += chunk.len();
        let mut got = vec![0; chunk.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, chunk.as_bytes());
        received += got.len();
        std::thread::sleep(Duration::from_millis(120));
    }
    // Open connections have no record yet: it is written at close.
    let early = collector.query();
    assert!(
        early.iter().all(|r| r["client.port"] != u64::from(port)),
        "a record before the close: {early:?}"
    );
    // Half-close: the client is done sending; the upstream still answers, then closes.
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut tail = Vec::new();
    s.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, b"bye");
    received += tail.len();
    let held = t0.elapsed();
    assert_eq!(
        echo.join().unwrap(),
        received,
        "what the upstream wrote arrived"
    );

    let stored = by_client_port(&collector.wait_records(1, &[&envoy]));
    let r = &stored[&u64::from(port)];
    assert_eq!(r["meshlog.connection.bytes_received"], sent as u64, "{r}");
    assert_eq!(r["meshlog.connection.bytes_sent"], received as u64, "{r}");
    let d = r["meshlog.duration_ns"].as_u64().unwrap();
    assert!(
        d >= 10 * 120_000_000,
        "duration {d} ns: the connection lasted over 1.2 s ({held:?} at the client)"
    );
}

#[test]
fn a_connection_the_upstream_refuses_is_logged_with_its_flags() {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    // The app port is reserved with nothing listening: connecting to it is refused.
    let app = meshlog_e2e::PortHold::new();
    let mut sidecar = Sidecar::new(app.port(), collector.addr.port());
    sidecar.file = "envoy-config/tcp.yaml";
    let envoy = Envoy::start(&sidecar, 1);

    let mut s = TcpStream::connect_timeout(&envoy.listen, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let port = s.local_addr().unwrap().port();
    let _ = s.write_all(b"hello");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(buf.is_empty(), "nothing comes back: {buf:?}");

    let stored = by_client_port(&collector.wait_records(1, &[&envoy]));
    let r = &stored[&u64::from(port)];
    assert_eq!(r["meshlog.connection.bytes_sent"], 0, "{r}");
    let flags = r["meshlog.response_flags"].as_str().unwrap_or_default();
    assert!(
        flags.split(',').any(|f| f == "UF"),
        "upstream connection failure flagged: {r}"
    );
    assert_eq!(
        r["meshlog.upstream.host"],
        format!("127.0.0.1:{}", app.port()),
        "{r}"
    );
}
