//! End-to-end delivery: Envoy logs while its collector is down, so batches fail and are retried
//! and the bounded buffer overflows; then the collector comes up on the same port. Every request
//! must be either stored once or counted as dropped — by the Envoy counters and by the VM's
//! `meshlog.delivery.tally` record, whose sequence ranges fill exactly the gaps in the stored
//! sequence numbers.

use meshlog_core::outbox::{
    ATTR_DROPPED_OVERFLOW, ATTR_DROPPED_OVERFLOW_SEQUENCES, ATTR_DROPPED_OVERFLOW_TOTAL,
    DELIVERY_TALLY_EVENT_NAME, parse_ranges,
};
use meshlog_e2e::account::{account, settled};
use meshlog_e2e::{Collector, Envoy, Load, PortHold, Sidecar, Upstream, send, wait_for};
use serde_json::Value;
use std::collections::BTreeSet;
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
    // The collector's port, reserved with nothing listening: the collector is down.
    let hold = PortHold::new();
    let mut sidecar = Sidecar::new(upstream.addr.port(), hold.port());
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
    let port = hold.release();
    let collector = Collector::start_at(data.path(), &format!("127.0.0.1:{port}"));

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
    // Settled: everything stored was answered, so no retry (a would-be duplicate) is pending.
    let stored = collector.wait_records(0, &[&envoy]);
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

/// Request ids of stored access records, each at most once.
fn request_ids(stored: &[Value], prefix: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for r in stored
        .iter()
        .filter(|r| r["event_name"] == "meshlog.http.access")
    {
        let id = r["meshlog.request_id"].as_str().unwrap();
        if id.starts_with(prefix) {
            assert!(ids.insert(id.to_owned()), "{id} stored twice");
        }
    }
    ids
}

/// Asserts traffic was unaffected: every request answered 200, none slow.
fn unaffected(sent: &[meshlog_e2e::Sent], what: &str) {
    let failed: Vec<_> = sent.iter().filter(|s| s.status != 200).collect();
    assert!(
        failed.is_empty(),
        "{what}: {} requests failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let slowest = sent.iter().map(|s| s.latency).max().unwrap();
    assert!(
        slowest < Duration::from_secs(1),
        "{what}: a request took {slowest:?}"
    );
}

fn delivery_config(service: &str, buffer: u64) -> String {
    format!(
        r#"{{"batch":{{"max_age_ms":200,"max_buffer_bytes":{buffer},"retry_initial_ms":100,"retry_max_ms":1000}},"resource":{{"service.name":"{service}"}}}}"#
    )
}

#[test]
fn a_collector_down_for_20_s_costs_no_request_and_loses_nothing_it_does_not_count() {
    collector_down_20_s(Sidecar::new);
}

/// The same outage with the native dynamic-module access logger: its counters (the Wasm
/// module's names) and its delivery tallies account for every request alike.
#[test]
fn a_collector_down_for_20_s_costs_no_request_and_loses_nothing_it_does_not_count_native() {
    collector_down_20_s(Sidecar::native);
}

fn collector_down_20_s(sidecar: fn(u16, u16) -> Sidecar) {
    let data = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(UPSTREAM);
    let collector = Collector::start(data.path());
    let port = collector.addr.port();
    // Roomy: 32 MiB holds 20 s of this load. Tight: the smallest buffer, which must overflow.
    let mut roomy = sidecar(upstream.addr.port(), port);
    roomy.plugin_config = Some(delivery_config("roomy", 32 << 20));
    let mut tight = sidecar(upstream.addr.port(), port);
    tight.plugin_config = Some(delivery_config("tight", 65_536));
    let roomy = Envoy::start(&roomy, 2);
    let tight = Envoy::start(&tight, 1);
    let loads = [
        Load::start(roomy.listen, "roomy", Duration::from_millis(10)),
        Load::start(tight.listen, "tight", Duration::from_millis(10)),
    ];

    std::thread::sleep(Duration::from_secs(2));
    // A graceful stop: SIGTERM, and wait until it has exited, so every request it took was
    // answered. Then 20 s with nothing listening on its port, which stays reserved for it.
    let port = collector.stop();
    let hold = PortHold::at(port)
        .unwrap_or_else(|e| panic!("port {port} taken right after the collector stopped: {e}"));
    std::thread::sleep(Duration::from_secs(20));
    let listen = format!("127.0.0.1:{}", hold.release());
    let collector = Collector::start_at(data.path(), &listen);
    std::thread::sleep(Duration::from_secs(3));
    let [roomy_load, tight_load] = loads;
    let (roomy_sent, tight_sent) = (roomy_load.stop(), tight_load.stop());
    unaffected(&roomy_sent, "roomy");
    unaffected(&tight_sent, "tight");

    // Settled: roomy's requests all stored; tight's stored (less the lost answers) plus its
    // drops are every request; and every stored record was answered (sent), but for the
    // batches proven stored-then-dropped by their batch id, whose answer was lost. Then no
    // retry, which could store a duplicate, is pending.
    let n = roomy_sent.len();
    let m = tight_sent.len() as u64;
    let envoy_sent = || {
        roomy.stat("wasmcustom.meshlog.records_sent").unwrap_or(0)
            + tight.stat("wasmcustom.meshlog.records_sent").unwrap_or(0)
    };
    // None while in-flight batches or tallies still leave a gap (see `settled`).
    let tally = |stored: &[Value]| {
        let a = settled(stored, &collector.batch_ids()).ok()?;
        let tight_vm = |vm: &String| {
            stored.iter().any(|r| {
                r["resource.meshlog.vm.id"] == vm.as_str() && r["resource.service.name"] == "tight"
            })
        };
        let t = a
            .iter()
            .filter(|(vm, _)| tight_vm(vm))
            .fold((0, 0, 0), |x, (_, v)| {
                (x.0 + v.access, x.1 + v.dropped, x.2 + v.lost_answer_access)
            });
        let lost_records: u64 = a.values().map(|v| v.lost_answer_records).sum();
        let lost_ids: Vec<String> = a.values().flat_map(|v| v.lost_answers.clone()).collect();
        Some((t, lost_records, lost_ids))
    };
    let outcome = wait_for(Duration::from_secs(40), || {
        let before = envoy_sent();
        let stored = collector.query();
        let ((access, dropped, lost), lost_records, _) = tally(&stored)?;
        let done = request_ids(&stored, "roomy").len() == n
            && access - lost + dropped == m
            && before + lost_records == stored.len() as u64
            && envoy_sent() == before;
        done.then_some(stored)
    });
    let stored = outcome.unwrap_or_else(|| {
        let stored = collector.query();
        account(&stored, &collector.batch_ids()); // panics naming what never settled
        let ((access, dropped, lost), lost_records, _) =
            tally(&stored).expect("accounted just above");
        panic!(
            "not settled: roomy {} of {n} stored; tight {access} stored ({lost} of them in \
             lost answers) + {dropped} dropped, of {m}; {} stored, {} answered + {lost_records} \
             in lost answers",
            request_ids(&stored, "roomy").len(),
            stored.len(),
            envoy_sent()
        )
    });
    let ((access, dropped, lost), _, lost_ids) =
        tally(&stored).unwrap_or_else(|| panic!("{:?}", settled(&stored, &collector.batch_ids())));
    assert_eq!(roomy.stat("wasmcustom.meshlog.records_dropped"), Some(0));
    assert!(
        roomy
            .stat("wasmcustom.meshlog.batches_retried")
            .unwrap_or(0)
            > 0
    );
    assert_eq!(request_ids(&stored, "tight").len() as u64, access);
    assert!(dropped > 0, "tight: 20 s of load must overflow 64 KiB");
    // Envoy counts exactly what the VM's tallies report dropped (a lost answer's batch in both).
    assert_eq!(
        tight.stat("wasmcustom.meshlog.records_dropped"),
        Some(dropped),
        "Envoy's records_dropped is what the tallies count"
    );
    assert_eq!(tight.stat("wasmcustom.meshlog.records_failed"), Some(0));
    eprintln!(
        "collector down 20 s: roomy {n} requests, all stored once; tight {m} requests, {access} \
         stored + {dropped} dropped and counted; lost answers (stored, then dropped): {lost} \
         requests in {lost_ids:?}"
    );
}

#[test]
fn kill_9_of_the_collector_under_load_loses_and_duplicates_nothing() {
    kill_9_under_load(Sidecar::new);
}

/// The same five kills with the native dynamic-module access logger, which ships from its own
/// thread: the same outbox, so the same outcome.
#[test]
fn kill_9_of_the_collector_under_load_loses_and_duplicates_nothing_native() {
    kill_9_under_load(Sidecar::native);
}

fn kill_9_under_load(sidecar: fn(u16, u16) -> Sidecar) {
    let data = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(UPSTREAM);
    let mut collector = Collector::start(data.path());
    let port = collector.addr.port();
    let listen = format!("127.0.0.1:{port}");
    let mut sidecar = sidecar(upstream.addr.port(), port);
    sidecar.plugin_config = Some(delivery_config("kill9", 32 << 20));
    let envoy = Envoy::start(&sidecar, 2);
    let load = Load::start(envoy.listen, "k9", Duration::from_millis(5));

    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(1500));
        collector.proc.kill9();
        // Down for 300 ms, its port reserved meanwhile.
        let hold = PortHold::at(port)
            .unwrap_or_else(|e| panic!("port {port} taken right after kill -9: {e}"));
        std::thread::sleep(Duration::from_millis(300));
        hold.release();
        collector = Collector::start_at(data.path(), &listen);
    }
    std::thread::sleep(Duration::from_secs(1));
    let sent = load.stop();
    unaffected(&sent, "kill -9");

    let n = sent.len();
    let arrived = wait_for(Duration::from_secs(30), || {
        (request_ids(&collector.query(), "k9").len() == n).then_some(())
    });
    assert!(
        arrived.is_some(),
        "{} of {n} stored",
        request_ids(&collector.query(), "k9").len()
    );
    // Settled: every stored record answered, so no retry is pending.
    let stored = collector.wait_records(n, &[&envoy]);
    let ids = request_ids(&stored, "k9");
    let want: BTreeSet<String> = sent.iter().map(|s| s.id.clone()).collect();
    assert_eq!(ids, want);
    // Gapless per VM, nothing dropped: every record produced is stored exactly once.
    let a = account(&stored, &collector.batch_ids());
    assert!(
        a.values()
            .all(|v| v.dropped == 0 && v.lost_answers.is_empty()),
        "{a:?}"
    );
    assert_eq!(envoy.stat("wasmcustom.meshlog.records_dropped"), Some(0));
    assert_eq!(envoy.stat("wasmcustom.meshlog.records_failed"), Some(0));
    eprintln!(
        "5 kill -9 under load: {n} requests, each stored exactly once; {} batches retried",
        envoy
            .stat("wasmcustom.meshlog.batches_retried")
            .unwrap_or(0)
    );
}

/// The outbox's one documented ambiguity, made to happen: the collector stores a batch but its
/// answer is lost (a proxy in front of it closes the connection unanswered), the collector then
/// refuses everything for 5 s while the smallest buffer overflows, so the batch, awaiting its
/// retry, is dropped whole. It is then both stored and reported dropped, and the accounting
/// accepts that for exactly this batch, by its id, and nothing else.
#[test]
fn a_stored_batch_whose_answer_is_lost_then_dropped_is_proven_by_its_batch_id() {
    use meshlog_e2e::fake::{FakeCollector, Reply};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    let data = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(UPSTREAM);
    let collector = Collector::start(data.path());
    let to = collector.addr;
    // (the batch whose answer was lost, the end of the refusals that follow)
    let state: Arc<Mutex<Option<(String, Instant)>>> = Arc::new(Mutex::new(None));
    let s = Arc::clone(&state);
    let proxy = FakeCollector::start(move |_, req| {
        let mut st = s.lock().unwrap_or_else(|p| p.into_inner());
        match &*st {
            None => {
                let id = req.batch_id.clone().unwrap_or_default();
                *st = Some((id, Instant::now() + Duration::from_secs(5)));
                Reply::Forward {
                    to,
                    lose_answer: true,
                }
            }
            Some((_, until)) if Instant::now() < *until => Reply::Status(503, vec![]),
            Some(_) => Reply::Forward {
                to,
                lose_answer: false,
            },
        }
    });
    let mut sidecar = Sidecar::new(upstream.addr.port(), proxy.addr.port());
    sidecar.plugin_config = Some(delivery_config("lost", 65_536));
    let envoy = Envoy::start(&sidecar, 1);
    let load = Load::start(envoy.listen, "lost", Duration::from_millis(10));
    let over = wait_for(Duration::from_secs(30), || {
        let st = state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        st.filter(|(_, until)| Instant::now() > *until + Duration::from_secs(2))
    });
    let sent = load.stop();
    unaffected(&sent, "lost answer");
    let (lost_id, _) = over.expect("the proxy saw a first batch");

    let m = sent.len() as u64;
    let outcome = wait_for(Duration::from_secs(40), || {
        let before = envoy.stat("wasmcustom.meshlog.records_sent").unwrap_or(0);
        let stored = collector.query();
        let a = settled(&stored, &collector.batch_ids()).ok()?;
        let (access, dropped, lost, lost_records) = a.values().fold((0, 0, 0, 0), |x, v| {
            (
                x.0 + v.access,
                x.1 + v.dropped,
                x.2 + v.lost_answer_access,
                x.3 + v.lost_answer_records,
            )
        });
        let done = access - lost + dropped == m && before + lost_records == stored.len() as u64;
        done.then_some((a, access, dropped))
    });
    let (a, access, dropped) = outcome.unwrap_or_else(|| {
        let stored = collector.query();
        account(&stored, &collector.batch_ids()); // panics naming what never settled
        panic!(
            "not settled; stored {}, batch ids {:?}; proxy saw {:?}",
            collector.query().len(),
            collector.batch_ids(),
            proxy
                .received()
                .iter()
                .map(|r| r.batch_id.clone())
                .collect::<Vec<_>>()
        )
    });
    let lost: Vec<String> = a.values().flat_map(|v| v.lost_answers.clone()).collect();
    assert_eq!(
        lost,
        vec![lost_id.clone()],
        "exactly the batch whose answer was lost is both stored and dropped"
    );
    assert!(dropped > 0);
    assert_eq!(
        envoy.stat("wasmcustom.meshlog.records_dropped"),
        Some(dropped),
        "Envoy's records_dropped is what the tallies count, the lost answer's batch included"
    );
    assert_eq!(envoy.stat("wasmcustom.meshlog.records_failed"), Some(0));
    eprintln!("lost answer {lost_id}: {m} requests, {access} stored, {dropped} dropped");
}
