//! End-to-end live tail: requests through real Envoy and the filter into a real collector, read
//! live by `meshlog tail`; the tail is killed (SIGKILL) under load and started again from the
//! last id it printed. Together the two runs print every stored record of the service exactly
//! once: nothing missed, nothing repeated.

use meshlog_e2e::{Collector, Envoy, Load, Proc, Sidecar, Upstream, collector_bin, wait_for};
use serde_json::Value;
use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

const UPSTREAM: &str = env!("CARGO_BIN_EXE_meshlog-upstream");

fn tail(server: &str, from: &str) -> Proc {
    let mut cmd = Command::new(collector_bin());
    cmd.args([
        "tail",
        "--server",
        server,
        "--service",
        "tailed",
        "--from",
        from,
        "--ids",
    ]);
    Proc::spawn("meshlog tail", cmd)
}

/// The records a tail printed (its stdout lines; stderr lines do not start with `{`). A last
/// line cut by SIGKILL does not parse and counts as not printed.
fn printed(p: &Proc) -> Vec<Value> {
    p.output()
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn position(r: &Value) -> (u64, u32) {
    let id = r["meshlog.position"]
        .as_str()
        .expect("--ids adds the position");
    let (l, k) = id.split_once(':').unwrap();
    (l.parse().unwrap(), k.parse().unwrap())
}

#[test]
fn a_tail_killed_and_resumed_under_load_misses_and_repeats_nothing() {
    let data = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(UPSTREAM);
    let collector = Collector::start(data.path());
    let mut sidecar = Sidecar::new(upstream.addr.port(), collector.addr.port());
    sidecar.plugin_config = Some(
        r#"{"batch":{"max_records":10,"max_age_ms":50},"resource":{"service.name":"tailed"}}"#
            .to_owned(),
    );
    let envoy = Envoy::start(&sidecar, 2);
    let server = format!("http://{}", collector.addr);
    let load = Load::start(envoy.listen, "tail", Duration::from_millis(4));

    let mut first = tail(&server, "start");
    let got = wait_for(Duration::from_secs(30), || {
        (printed(&first).len() >= 150).then_some(())
    });
    assert!(
        got.is_some(),
        "the tail printed {} records in 30 s; its output:\n{}\ncollector:\n{}",
        printed(&first).len(),
        first.output(),
        collector.proc.output()
    );
    first.kill9();
    // Let its reader threads take what was in the pipe.
    std::thread::sleep(Duration::from_millis(300));
    let before = printed(&first);
    // The load goes on with no tail running.
    std::thread::sleep(Duration::from_millis(500));
    let last = before.last().unwrap()["meshlog.position"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = tail(&server, &last);
    std::thread::sleep(Duration::from_millis(1500));
    let sent = load.stop();
    let ok = sent.iter().filter(|s| s.status == 200).count();
    assert!(ok > 300, "only {ok} requests answered 200");
    // Settled: what Envoy counts as sent is what is stored (the store also holds the tails'
    // own access records, of another service).
    let tailed_stored = || -> Vec<Value> {
        collector
            .query()
            .into_iter()
            .filter(|r| r["resource.service.name"] == "tailed")
            .collect()
    };
    let stored = wait_for(Duration::from_secs(30), || {
        let sent = envoy.stat("wasmcustom.meshlog.records_sent").unwrap_or(0);
        let stored = tailed_stored();
        (stored.len() >= ok && stored.len() as u64 == sent).then_some(stored)
    })
    .unwrap_or_else(|| {
        panic!(
            "not settled: {} stored, Envoy counts {:?} sent, {ok} answered",
            tailed_stored().len(),
            envoy.stat("wasmcustom.meshlog.records_sent")
        )
    });
    let after = wait_for(Duration::from_secs(30), || {
        let a = printed(&second);
        (before.len() + a.len() >= stored.len()).then_some(a)
    })
    .unwrap_or_else(|| {
        panic!(
            "the resumed tail printed {} records, {} stored; its output:\n{}",
            printed(&second).len(),
            stored.len(),
            second.output()
        )
    });
    // Nothing more arrives than was stored.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        printed(&second).len(),
        after.len(),
        "more printed than stored"
    );

    let all: Vec<&Value> = before.iter().chain(&after).collect();
    assert_eq!(all.len(), stored.len());
    assert!(
        all.windows(2).all(|w| position(w[0]) < position(w[1])),
        "positions strictly increase across the kill: nothing repeated"
    );
    // Compare with the store, record by record (without the added position).
    for (t, s) in all.iter().zip(&stored) {
        let mut t = (*t).clone();
        t.as_object_mut().unwrap().remove("meshlog.position");
        assert_eq!(&t, s, "printed and stored records differ");
    }
    // And with what the load was answered: every request answered 200 was tailed.
    let tailed: HashSet<&str> = all
        .iter()
        .filter_map(|r| r["meshlog.request_id"].as_str())
        .collect();
    for s in sent.iter().filter(|s| s.status == 200) {
        assert!(
            tailed.contains(s.id.as_str()),
            "request {} not tailed",
            s.id
        );
    }
}
