//! Who called, not who claims: a client-supplied `X-Forwarded-For` must not become the record's
//! `client.address`. Envoy's `source.address` is the XFF-derived address when the HTTP
//! connection manager has `use_remote_address: false`; the shipped bootstraps set it to true, so
//! the record carries the TCP peer, and the claimed chain stays in its header attribute.

use meshlog_e2e::{Collector, Envoy, Sidecar, Upstream, send};

const UPSTREAM: &str = env!("CARGO_BIN_EXE_meshlog-upstream");

#[test]
fn a_claimed_forwarded_for_address_is_not_the_client_address() {
    let data = tempfile::tempdir().expect("tempdir");
    let collector = Collector::start(data.path());
    let upstream = Upstream::start(UPSTREAM);
    let sidecar = Sidecar::new(upstream.addr.port(), collector.addr.port());
    let envoy = Envoy::start(&sidecar, 1);
    let status = send(
        envoy.listen,
        "GET",
        "/whoami",
        &[
            ("x-forwarded-for", b"203.0.113.9".as_slice()),
            ("x-request-id", b"xff-1".as_slice()),
        ],
        b"",
    );
    assert_eq!(status, 200);
    let records = collector.wait_records(1, &[&envoy]);
    let r = &records[0];
    // The TCP peer (loopback, truncated to /24 as client addresses are), with its real port.
    assert_eq!(r["client.address"], "127.0.0.0", "{r}");
    assert_ne!(r["client.port"], 0, "{r}");
    // The claimed address is kept apart, in the header's own attribute (redacted to /24 too).
    let claimed = r["http.request.header.x-forwarded-for"]
        .as_str()
        .unwrap_or_else(|| panic!("no x-forwarded-for attribute: {r}"));
    assert!(claimed.starts_with("203.0.113.0"), "{r}");
}
