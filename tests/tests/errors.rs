//! The filter's error paths in real Envoy, against a misbehaving collector
//! ([`meshlog_e2e::fake::FakeCollector`]): a 4xx fails a batch for good (the failed counter), a
//! `Retry-After` on 503 and 507 is waited out, a collector that never answers times the call out
//! and the batch is retried, a collector cluster Envoy does not have makes `dispatch_http_call`
//! fail (also at shutdown), `compression: none` sends plain JSON, and the sampling rate cap
//! drops and counts in Envoy. Time appears only as lower bounds the filter must respect (a
//! retry may come later on a slow machine, never sooner) and as the measured duration that
//! bounds what a token bucket may let through.

use meshlog_e2e::fake::{FakeCollector, Received, Reply};
use meshlog_e2e::{Collector, Envoy, PortHold, Sidecar, Upstream, send, wait_for};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const UPSTREAM: &str = env!("CARGO_BIN_EXE_meshlog-upstream");

/// Batches of at most `max_records`, shipped within 100 ms, quick retries; plain JSON bodies.
fn config(cluster: &str, timeout_ms: u64, max_records: u64) -> String {
    format!(
        r#"{{"collector":{{"cluster":"{cluster}","timeout_ms":{timeout_ms},"compression":"none"}},"batch":{{"max_records":{max_records},"max_age_ms":100,"retry_initial_ms":50,"retry_max_ms":10000}},"resource":{{"service.name":"errors"}}}}"#
    )
}

fn stat(envoy: &Envoy, name: &str) -> u64 {
    envoy
        .stat(&format!("wasmcustom.meshlog.{name}"))
        .unwrap_or_else(|| panic!("Envoy has no counter wasmcustom.meshlog.{name}"))
}

/// The log records in an uncompressed OTLP/JSON body.
fn log_records(r: &Received) -> Vec<Value> {
    assert_eq!(r.encoding, None, "compression none: no content-encoding");
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| {
        panic!(
            "compression none: the body is plain JSON ({e}): {:?}",
            String::from_utf8_lossy(&r.body[..r.body.len().min(64)])
        )
    });
    let mut out = Vec::new();
    for rl in v["resourceLogs"].as_array().into_iter().flatten() {
        for sl in rl["scopeLogs"].as_array().into_iter().flatten() {
            out.extend(sl["logRecords"].as_array().into_iter().flatten().cloned());
        }
    }
    out
}

fn get(envoy: &Envoy, n: usize, prefix: &str) {
    for i in 0..n {
        let rid = format!("{prefix}-{i}");
        let status = send(
            envoy.listen,
            "GET",
            &format!("/e/{i}"),
            &[("x-request-id", rid.as_bytes())],
            b"",
        );
        assert_eq!(status, 200, "traffic is unaffected by the collector");
    }
}

#[test]
fn a_collector_4xx_fails_each_batch_once_and_counts_its_records_failed() {
    let upstream = Upstream::start(UPSTREAM);
    let fake = FakeCollector::start(|_, _| Reply::Status(400, vec![]));
    let mut sidecar = Sidecar::new(upstream.addr.port(), fake.addr.port());
    sidecar.plugin_config = Some(config("meshlog_collector", 5000, 5));
    let envoy = Envoy::start(&sidecar, 1);
    let n = 12;
    get(&envoy, n, "bad");

    // Settled: every record the fake refused is counted failed, and nothing else is.
    let settled = wait_for(Duration::from_secs(20), || {
        let before = stat(&envoy, "records_failed");
        let refused: usize = fake.received().iter().map(|r| log_records(r).len()).sum();
        (before >= n as u64 && before == refused as u64 && stat(&envoy, "records_failed") == before)
            .then_some(before)
    });
    let failed = settled.unwrap_or_else(|| {
        panic!(
            "records_failed {} never matched the {} records refused; envoy:\n{}",
            stat(&envoy, "records_failed"),
            fake.received()
                .iter()
                .map(|r| log_records(r).len())
                .sum::<usize>(),
            envoy.proc.output()
        )
    });
    let got = fake.received();
    // A 4xx is final: no batch id twice, nothing retried, nothing sent.
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for r in &got {
        let id = r
            .batch_id
            .clone()
            .expect("every batch has a meshlog-batch-id");
        *ids.entry(id).or_default() += 1;
    }
    assert!(
        ids.values().all(|c| *c == 1),
        "a refused batch was resent: {ids:?}"
    );
    assert_eq!(stat(&envoy, "batches_retried"), 0);
    assert_eq!(stat(&envoy, "records_sent"), 0);
    assert_eq!(stat(&envoy, "batches_failed"), got.len() as u64);
    // Every request's record was among them.
    let access = got
        .iter()
        .flat_map(log_records)
        .filter(|r| r.to_string().contains("meshlog.http.access"))
        .count();
    assert_eq!(access, n, "{failed} records failed");
}

#[test]
fn retry_after_on_503_and_507_is_waited_out_and_the_same_batch_resent() {
    let upstream = Upstream::start(UPSTREAM);
    let fake = FakeCollector::start(|n, _| match n {
        0 => Reply::Status(503, vec![("retry-after", "2".to_owned())]),
        1 => Reply::Status(507, vec![("retry-after", "1".to_owned())]),
        _ => Reply::Status(200, vec![]),
    });
    let mut sidecar = Sidecar::new(upstream.addr.port(), fake.addr.port());
    sidecar.plugin_config = Some(config("meshlog_collector", 5000, 100));
    let envoy = Envoy::start(&sidecar, 1);
    get(&envoy, 1, "ra");

    let done = wait_for(Duration::from_secs(20), || {
        (stat(&envoy, "records_sent") == 1).then_some(())
    });
    assert!(done.is_some(), "never delivered:\n{}", envoy.proc.output());
    let got = fake.received();
    assert_eq!(got.len(), 3, "503, 507, then 200: {got:?}");
    assert!(
        got.iter()
            .all(|r| r.batch_id == got[0].batch_id && r.body == got[0].body),
        "a retry is the same batch, byte for byte"
    );
    // Backoff alone would retry within retry_initial_ms (50 ms) and then 100 ms.
    let gaps = [got[1].at - got[0].at, got[2].at - got[1].at];
    assert!(
        gaps[0] >= Duration::from_secs(2),
        "retried {:?} after a 503 with Retry-After: 2",
        gaps[0]
    );
    assert!(
        gaps[1] >= Duration::from_secs(1),
        "retried {:?} after a 507 with Retry-After: 1",
        gaps[1]
    );
    assert_eq!(stat(&envoy, "batches_retried"), 2);
    assert_eq!(stat(&envoy, "records_failed"), 0);
}

#[test]
fn a_collector_that_never_answers_times_the_call_out_and_the_batch_is_retried() {
    let upstream = Upstream::start(UPSTREAM);
    let fake = FakeCollector::start(|n, _| {
        if n == 0 {
            Reply::Hang
        } else {
            Reply::Status(200, vec![])
        }
    });
    let mut sidecar = Sidecar::new(upstream.addr.port(), fake.addr.port());
    sidecar.plugin_config = Some(config("meshlog_collector", 700, 100));
    let envoy = Envoy::start(&sidecar, 1);
    get(&envoy, 1, "hang");

    let done = wait_for(Duration::from_secs(20), || {
        (stat(&envoy, "records_sent") == 1).then_some(())
    });
    assert!(done.is_some(), "never delivered:\n{}", envoy.proc.output());
    let got = fake.received();
    assert_eq!(got.len(), 2, "the hung call, then its retry: {got:?}");
    assert_eq!(got[0].batch_id, got[1].batch_id);
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(700),
        "retried {:?} into a 700 ms call timeout",
        got[1].at - got[0].at
    );
    assert_eq!(stat(&envoy, "batches_retried"), 1);
    // Envoy ends a timed-out call with its own 504, which the filter logs with the body.
    let out = envoy.proc.output();
    assert!(
        out.lines().any(|l| l.contains("collector answered 504")
            && l.contains("kept for retry")
            && l.contains("upstream request timeout")),
        "the timeout is logged:\n{out}"
    );
}

#[test]
fn a_collector_cluster_envoy_lacks_fails_every_dispatch_without_harm_also_at_shutdown() {
    let upstream = Upstream::start(UPSTREAM);
    let nothing = PortHold::new();
    let mut sidecar = Sidecar::new(upstream.addr.port(), nothing.port());
    sidecar.plugin_config = Some(config("no_such_cluster", 5000, 2));
    let mut envoy = Envoy::start(&sidecar, 1);
    get(&envoy, 6, "nocluster");

    let refused = "cannot call collector cluster 'no_such_cluster'";
    let seen = wait_for(Duration::from_secs(20), || {
        envoy.proc.output().contains(refused).then_some(())
    });
    assert!(
        seen.is_some(),
        "no dispatch failure logged:\n{}",
        envoy.proc.output()
    );
    assert_eq!(stat(&envoy, "records_sent"), 0);
    assert_eq!(
        stat(&envoy, "records_failed"),
        0,
        "a refused dispatch is retried, not failed"
    );
    assert_eq!(stat(&envoy, "records_logged"), 6);

    // Shutdown: on_done ships everything held, every dispatch fails; Envoy must still exit
    // cleanly, without a trap in the filter.
    let before = envoy.proc.output().matches(refused).count();
    let st = envoy.proc.stop();
    let out = envoy.proc.output();
    assert!(st.success(), "envoy exited with {st}:\n{out}");
    for bad in ["panicked", "wasm trap", "Function: proxy_on_done failed"] {
        assert!(!out.contains(bad), "{bad:?} at shutdown:\n{out}");
    }
    // on_done flushes everything held, whatever the pause: each batch's dispatch fails again.
    let after = out.matches(refused).count();
    assert!(
        after > before,
        "on_done tried no dispatch ({before} failures before the stop, {after} after):\n{out}"
    );
}

#[test]
fn the_rate_cap_drops_and_counts_in_envoy() {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    let upstream = Upstream::start(UPSTREAM);
    let mut sidecar = Sidecar::new(upstream.addr.port(), collector.addr.port());
    let (rps, burst) = (1u64, 2u64);
    sidecar.plugin_config = Some(format!(
        r#"{{"batch":{{"max_age_ms":100}},"resource":{{"service.name":"capped"}},"sampling":{{"default_rate":1.0,"tally_interval_ms":300,"rate_cap":{{"records_per_second":{rps},"burst":{burst}}}}}}}"#
    ));
    let envoy = Envoy::start(&sidecar, 1);
    let n = 20u64;
    let t0 = Instant::now();
    get(&envoy, n as usize, "cap");
    let elapsed = t0.elapsed();

    // A token bucket lets through at most its burst plus what refills while the requests ran
    // (their decisions fall inside the measured span; one second of slack for its edges).
    let bound = burst + rps * (elapsed.as_secs() + 1);
    let settled = wait_for(Duration::from_secs(20), || {
        let (logged, capped) = (
            stat(&envoy, "records_logged"),
            stat(&envoy, "records_rate_capped"),
        );
        (logged + capped == n).then_some((logged, capped))
    });
    let (logged, capped) = settled.unwrap_or_else(|| {
        panic!(
            "logged {} + rate capped {} != {n}",
            stat(&envoy, "records_logged"),
            stat(&envoy, "records_rate_capped")
        )
    });
    assert!(
        logged <= bound,
        "{logged} of {n} passed a cap of {rps}/s (burst {burst}) in {elapsed:?}: at most {bound}"
    );
    assert!(capped > 0, "{capped}");
    // The tallies at the collector say the same.
    let tallied = wait_for(Duration::from_secs(20), || {
        let recs = collector.query();
        let sum = |k: &str| -> u64 {
            recs.iter()
                .filter(|r| r["event_name"] == "meshlog.sampling.tally")
                .map(|r| r[k].as_u64().unwrap_or(0))
                .sum()
        };
        (sum("meshlog.sampling.seen") == n).then(|| sum("meshlog.dropped.rate_cap"))
    });
    assert_eq!(tallied, Some(capped), "tallied rate_cap drops");
}
