//! End-to-end delivery: Envoy logs while its collector is down, so batches fail and are retried
//! and the bounded buffer overflows; then the collector comes up on the same port. Every request
//! must be either stored once or counted as dropped — by the Envoy counters and by the VM's
//! `meshlog.delivery.tally` record, whose sequence ranges fill exactly the gaps in the stored
//! sequence numbers.

use meshlog_core::outbox::{
    ATTR_DROPPED_OVERFLOW, ATTR_DROPPED_OVERFLOW_SEQUENCES, ATTR_DROPPED_OVERFLOW_TOTAL,
    DELIVERY_TALLY_EVENT_NAME, parse_ranges,
};
use meshlog_e2e::{
    Collector, Envoy, Proc, Sidecar, Upstream, collector_bin, free_port, send, wait_for,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

const UPSTREAM: &str = env!("CARGO_BIN_EXE_meshlog-upstream");

const REQUESTS: u64 = 200;

fn int(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str()?.parse().ok())
        .unwrap_or_else(|| panic!("not an integer: {v}"))
}

#[test]
fn an_outage_is_retried_through_and_overflow_is_accounted_for() {
    let data = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(UPSTREAM);
    let port = free_port();
    let mut sidecar = Sidecar::new(upstream.addr.port(), port);
    // The smallest buffer, quick retries; one worker, so one VM and one sequence.
    sidecar.plugin_config = Some(
        r#"{"batch":{"max_records":20,"max_age_ms":100,"max_buffer_bytes":65536,
            "retry_initial_ms":50,"retry_max_ms":400},"resource":{"service.name":"outage"}}"#
            .to_owned(),
    );
    let envoy = Envoy::start(&sidecar, 1);

    // The collector is down: nothing listens on its port.
    for i in 0..REQUESTS {
        let path = format!("/api/items/{i}?q={}", "x".repeat(200));
        let rid = format!("outage-{i:04}");
        assert_eq!(
            send(
                envoy.listen,
                "GET",
                &path,
                &[("x-request-id", rid.as_bytes())],
                b""
            ),
            200
        );
    }
    let retried = wait_for(Duration::from_secs(10), || {
        envoy
            .stat("wasmcustom.meshlog.batches_retried")
            .filter(|&n| n >= 2)
    });
    assert!(retried.is_some(), "no retries while the collector is down");
    assert_eq!(envoy.stat("wasmcustom.meshlog.records_sent"), Some(0));
    let dropped = envoy
        .stat("wasmcustom.meshlog.records_dropped")
        .unwrap_or(0);
    assert!(
        dropped > 0,
        "{REQUESTS} records must not fit in 64 KiB uncompressed"
    );

    // The collector comes up where the filter keeps trying.
    let mut cmd = Command::new(collector_bin());
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data.path())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"));
    let mut proc = Proc::spawn("collector", cmd);
    let addr = proc.listening_addr(Duration::from_secs(20));
    let collector = Collector {
        proc,
        addr,
        data_dir: data.path().to_owned(),
    };

    // Everything held arrives: the access records that survived and the tally of the rest.
    let is_access = |r: &&Value| r["event_name"] == "meshlog.http.access";
    let arrived = wait_for(Duration::from_secs(20), || {
        let r = collector.query();
        let access = r.iter().filter(is_access).count() as u64;
        let dropped = envoy.stat("wasmcustom.meshlog.records_dropped")?;
        let tally = r
            .iter()
            .any(|r| r["event_name"] == DELIVERY_TALLY_EVENT_NAME);
        (tally && access + dropped >= REQUESTS).then_some(())
    });
    assert!(
        arrived.is_some(),
        "not everything arrived:\n{}",
        collector.proc.output()
    );
    // Long enough for a duplicate to show.
    std::thread::sleep(Duration::from_millis(700));
    let stored = collector.query();
    let dropped = envoy.stat("wasmcustom.meshlog.records_dropped").unwrap();
    assert_eq!(
        envoy.stat("wasmcustom.meshlog.records_sent"),
        Some(stored.len() as u64)
    );
    assert_eq!(envoy.stat("wasmcustom.meshlog.records_failed"), Some(0));

    let access: Vec<&Value> = stored.iter().filter(is_access).collect();
    let tallies: Vec<&Value> = stored
        .iter()
        .filter(|r| r["event_name"] == DELIVERY_TALLY_EVENT_NAME)
        .collect();
    // Each request stored at most once (a retry is the same batch, not a second copy).
    let rids: BTreeSet<&str> = access
        .iter()
        .map(|r| r["meshlog.request_id"].as_str().unwrap())
        .collect();
    assert_eq!(rids.len(), access.len(), "a request stored twice");
    assert_eq!(
        access.len() as u64 + dropped,
        REQUESTS,
        "stored + dropped = requests (no tally was dropped in this run)"
    );
    // The newest survive: drops are oldest first.
    assert!(rids.contains(format!("outage-{:04}", REQUESTS - 1).as_str()));

    // Sequence numbers: stored ones and the tallies' ranges cover 0..=max exactly once.
    let mut seqs: BTreeSet<u64> = BTreeSet::new();
    for r in &stored {
        assert!(
            seqs.insert(int(&r["meshlog.sequence"])),
            "sequence twice: {r}"
        );
    }
    let mut reported = 0;
    let mut total = 0;
    for t in &tallies {
        reported += int(&t[ATTR_DROPPED_OVERFLOW]);
        total = total.max(int(&t[ATTR_DROPPED_OVERFLOW_TOTAL]));
        for (a, b) in parse_ranges(t[ATTR_DROPPED_OVERFLOW_SEQUENCES].as_str().unwrap()).unwrap() {
            for s in a..=b {
                assert!(seqs.insert(s), "{s} both stored and dropped");
            }
        }
    }
    assert_eq!(reported, dropped, "tallies count every drop");
    assert_eq!(total, dropped);
    let max = *seqs.last().unwrap();
    assert_eq!(seqs, (0..=max).collect(), "no unexplained gap");
}
