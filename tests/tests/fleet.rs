//! Several collectors (issue 20 item 4): two Envoys with the filter (three workers, so three VMs
//! each) in front of three `meshlog serve` processes through the shipped
//! `envoy-config/fleet.yaml`: the filter calls an internal listener whose route retries a failed
//! connection on the next host, into the `meshlog_collector` cluster, a ring hashed on the VM id
//! (from `meshlog-batch-id`) that always holds every collector, health-checked. Under load one
//! collector is killed with SIGKILL:
//!
//! - before the kill, every VM's batches (at least 5 each) went to one collector;
//! - after it, the dead collector's VMs continue on one other collector each, every other VM
//!   stays where it was (only the dead one's share moves), and the health checks report the
//!   dead collector, and only it, down;
//! - restarted on its port and data directory, the killed collector gets its VMs back;
//! - nothing answered is lost: every request is stored, each VM's sequence is gapless across
//!   the fleet, and the Envoys' `records_sent` equals the distinct records stored;
//! - every record is stored once across the fleet, except a batch the dead collector stored but
//!   could not answer, which the filter then retried to another: each such copy is proved by its
//!   batch id (the same id in both stores, among the dead VM's last batches, same records);
//! - `meshlog verify` passes on each collector's store, the killed and restarted one's too.

use meshlog_e2e::store::parse_batch_id;
use meshlog_e2e::{Collector, Envoy, Load, Sent, Sidecar, Upstream, collector_bin, wait_for};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const UPSTREAM: &str = env!("CARGO_BIN_EXE_meshlog-upstream");

/// Envoys, and workers (VMs) in each.
const ENVOYS: usize = 2;
const WORKERS: u32 = 3;

fn int(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str()?.parse().ok())
        .unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// The shipped fleet bootstrap with the three collectors' ports. Small, quick batches and short
/// retry backoff, so a short run has many batches per VM and a moved VM resumes soon.
fn fleet_sidecar(app: u16, collectors: &[Collector]) -> Sidecar {
    let mut s = Sidecar::new(app, collectors[0].addr.port());
    s.file = "envoy-config/fleet.yaml";
    s.replace = vec![
        (
            "port_value: 4319".to_owned(),
            format!("port_value: {}", collectors[1].addr.port()),
        ),
        (
            "port_value: 4320".to_owned(),
            format!("port_value: {}", collectors[2].addr.port()),
        ),
    ];
    s.plugin_config = Some(
        r#"{"collector":{"cluster":"meshlog_collector_router"},
            "batch":{"max_records":10,"max_age_ms":100,"retry_initial_ms":100,"retry_max_ms":1000},
            "resource":{"service.name":"fleet"}}"#
            .to_owned(),
    );
    s
}

/// One stored record: (VM id, sequence).
type Key = (String, u64);

/// A store's records by (VM id, sequence), each at most once in one store.
fn records(data_dir: &Path) -> BTreeMap<Key, Value> {
    let mut out = BTreeMap::new();
    for r in meshlog_e2e::query(data_dir) {
        let vm = r["resource.meshlog.vm.id"]
            .as_str()
            .unwrap_or_else(|| panic!("no VM id: {r}"))
            .to_owned();
        let key = (vm, int(&r["meshlog.sequence"]));
        if let Some(old) = out.insert(key.clone(), r) {
            panic!("{key:?} stored twice in {}: {old}", data_dir.display());
        }
    }
    out
}

/// VM ids with batches in a store, and how many batches each.
fn vms(data_dir: &Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for id in meshlog_e2e::store::batch_ids(data_dir) {
        let (vm, _, _) = parse_batch_id(&id).unwrap_or_else(|| panic!("bad batch id {id}"));
        *out.entry(vm.to_owned()).or_default() += 1;
    }
    out
}

/// Which collectors (by index) hold batches of each VM.
fn placement(collectors: &[&Path]) -> BTreeMap<String, BTreeSet<usize>> {
    let mut out: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (i, d) in collectors.iter().enumerate() {
        for vm in vms(d).into_keys() {
            out.entry(vm).or_default().insert(i);
        }
    }
    out
}

/// The `meshlog_collector` lines of Envoy's `/clusters` (hosts, health, request counts), for
/// failure messages.
fn cluster_status(envoy: &Envoy) -> String {
    let r = meshlog_e2e::http_request(
        envoy.admin,
        b"GET /clusters HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
    );
    r.map(|r| {
        String::from_utf8_lossy(&r.body)
            .lines()
            .filter(|l| l.starts_with("meshlog_collector::"))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_else(|e| format!("GET /clusters: {e}"))
}

fn verify(data_dir: &Path) {
    let out = Command::new(collector_bin())
        .arg("verify")
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run meshlog verify");
    assert!(
        out.status.success(),
        "meshlog verify {} failed ({}):\n{}{}",
        data_dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_collector_killed_under_load_moves_its_vms_and_loses_nothing() {
    let upstream = Upstream::start(UPSTREAM);
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut collectors: Vec<Collector> = dirs.iter().map(|d| Collector::start(d.path())).collect();
    let paths: Vec<&Path> = dirs.iter().map(|d| d.path()).collect();
    let sidecar = fleet_sidecar(upstream.addr.port(), &collectors);
    let envoys: Vec<Envoy> = (0..ENVOYS)
        .map(|_| Envoy::start(&sidecar, WORKERS))
        .collect();
    let sent_total = || -> u64 {
        envoys
            .iter()
            .map(|e| e.stat("wasmcustom.meshlog.records_sent").unwrap_or(0))
            .sum()
    };
    let loads: Vec<Load> = envoys
        .iter()
        .enumerate()
        .map(|(i, e)| Load::start(e.listen, &format!("fleet{i}"), Duration::from_millis(8)))
        .collect();

    // Before the kill: every VM has several batches stored, all on one collector.
    let before = wait_for(Duration::from_secs(20), || {
        let p = placement(&paths);
        let counts: Vec<BTreeMap<String, usize>> = paths.iter().map(|d| vms(d)).collect();
        let busy = p
            .keys()
            .filter(|vm| {
                counts
                    .iter()
                    .map(|c| c.get(*vm).unwrap_or(&0))
                    .sum::<usize>()
                    >= 5
            })
            .count();
        (busy == ENVOYS * WORKERS as usize).then_some(p)
    })
    .unwrap_or_else(|| {
        panic!(
            "not every VM got 5 batches stored within 20 s: {:?}\n{}\nenvoy:\n{}",
            placement(&paths),
            cluster_status(&envoys[0]),
            envoys[0].proc.output()
        )
    });
    for (vm, on) in &before {
        assert_eq!(
            on.len(),
            1,
            "VM {vm}'s batches went to collectors {on:?}: the hash on the VM id did not hold \
             (placement {before:?})"
        );
    }
    // Kill the collector with the most VMs.
    let dead = (0..3)
        .max_by_key(|i| before.values().filter(|on| on.contains(i)).count())
        .unwrap();
    let dead_vms: BTreeSet<String> = before
        .iter()
        .filter(|(_, on)| on.contains(&dead))
        .map(|(vm, _)| vm.clone())
        .collect();
    let dead_port = collectors[dead].addr.port();
    collectors[dead].proc.kill9();
    eprintln!("killed collector {dead} holding VMs {dead_vms:?} (placement {before:?})");

    // Load goes on until every moved VM has batches on a survivor and every Envoy's health
    // checks report the dead collector (only it) down.
    let down = |e: &Envoy| {
        let st = cluster_status(e);
        collectors.iter().all(|c| {
            let port = c.addr.port();
            let flags = format!("meshlog_collector::127.0.0.1:{port}::health_flags::");
            let healthy = st.contains(&format!("{flags}healthy"));
            if port == dead_port {
                !healthy && st.contains(&flags)
            } else {
                healthy
            }
        })
    };
    let moved = wait_for(Duration::from_secs(20), || {
        let p = placement(&paths);
        (dead_vms
            .iter()
            .all(|vm| p.get(vm).is_some_and(|on| on.len() > 1))
            && envoys.iter().all(down))
        .then_some(())
    });
    assert!(
        moved.is_some(),
        "the dead collector's VMs {dead_vms:?} did not move, or its health checks did not \
         fail, within 20 s: {:?}\n{}",
        placement(&paths),
        cluster_status(&envoys[0])
    );

    // The killed collector restarts on its port and data directory (recovering what the kill
    // left): the ring never dropped it, so its VMs come back to it.
    let killed_ids = meshlog_e2e::store::batch_ids(paths[dead]);
    let killed_counts = vms(paths[dead]);
    collectors[dead] = Collector::start_at(paths[dead], &format!("127.0.0.1:{dead_port}"));
    let back = wait_for(Duration::from_secs(20), || {
        let now = vms(paths[dead]);
        dead_vms
            .iter()
            .all(|vm| now.get(vm) > killed_counts.get(vm))
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let sent: Vec<Sent> = loads.into_iter().flat_map(Load::stop).collect();
    assert!(
        back.is_some(),
        "the restarted collector's VMs {dead_vms:?} did not come back within 20 s: {:?}",
        placement(&paths)
    );
    let failed: Vec<&Sent> = sent.iter().filter(|s| s.status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        sent.len(),
        &failed[..failed.len().min(5)]
    );

    // Settled: what the Envoys count as sent is exactly the distinct records stored, and stays.
    let stores = wait_for(Duration::from_secs(30), || {
        let a = sent_total();
        let stores: Vec<BTreeMap<Key, Value>> = paths.iter().map(|d| records(d)).collect();
        let distinct: BTreeSet<&Key> = stores.iter().flat_map(|s| s.keys()).collect();
        let b = sent_total();
        (a == b && a == distinct.len() as u64 && a > 0).then_some(stores)
    })
    .unwrap_or_else(|| {
        let distinct: BTreeSet<Key> = paths.iter().flat_map(|d| records(d).into_keys()).collect();
        panic!(
            "not settled: Envoys count {} records sent, the fleet stores {} distinct",
            sent_total(),
            distinct.len()
        )
    });
    for e in &envoys {
        for c in ["records_dropped", "records_failed"] {
            assert_eq!(
                e.stat(&format!("wasmcustom.meshlog.{c}")),
                Some(0),
                "{c}:\n{}",
                e.proc.output()
            );
        }
    }

    // Placement after: moved VMs on the dead one plus exactly one survivor; the rest unmoved.
    let after = placement(&paths);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (vm, on) in &after {
        if dead_vms.contains(vm) {
            assert_eq!(on.len(), 2, "moved VM {vm} is on {on:?}");
            assert!(on.contains(&dead));
        } else {
            assert_eq!(on, &before[vm], "VM {vm} moved though its collector lived");
        }
    }

    // Every request answered is stored (exactly once: a request's record has one sequence).
    let mut by_key: BTreeMap<&Key, Vec<usize>> = BTreeMap::new();
    for (i, s) in stores.iter().enumerate() {
        for k in s.keys() {
            by_key.entry(k).or_default().push(i);
        }
    }
    let mut request_ids: BTreeMap<&str, &Key> = BTreeMap::new();
    for (k, on) in &by_key {
        let r = &stores[on[0]][*k];
        if r["event_name"] == "meshlog.http.access"
            && let Some(id) = r["meshlog.request_id"].as_str()
            && let Some(other) = request_ids.insert(id, k)
        {
            panic!("request {id} stored as {other:?} and {k:?}");
        }
    }
    let missing: Vec<&str> = sent
        .iter()
        .map(|s| s.id.as_str())
        .filter(|id| !request_ids.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests not stored anywhere: {:?}",
        missing.len(),
        sent.len(),
        &missing[..missing.len().min(5)]
    );

    // Each VM's sequence is gapless across the fleet.
    let mut seqs: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for (vm, seq) in by_key.keys() {
        seqs.entry(vm.as_str()).or_default().insert(*seq);
    }
    for (vm, s) in &seqs {
        let max = *s.last().unwrap();
        assert_eq!(s.len() as u64, max + 1, "VM {vm}: gap in 0..={max}");
    }

    // Stored twice only as a batch the dead collector stored but did not answer: the same batch
    // id in its store and in the survivor's, among the VM's last batches on the dead one when it
    // was killed (at most max_in_flight, 4, were in flight), holding the same records.
    let ids: Vec<Vec<String>> = paths
        .iter()
        .map(|d| meshlog_e2e::store::batch_ids(d))
        .collect();
    let batch_of = |i: usize, (vm, seq): &Key| -> String {
        ids[i]
            .iter()
            .find(|id| parse_batch_id(id).is_some_and(|(v, a, b)| v == vm && (a..=b).contains(seq)))
            .unwrap_or_else(|| panic!("no batch of {vm}:{seq} in collector {i}"))
            .clone()
    };
    let mut twice = BTreeSet::new();
    for (k, on) in &by_key {
        if on.len() == 1 {
            continue;
        }
        assert_eq!(on.len(), 2, "{k:?} stored on {on:?}");
        assert!(
            on.contains(&dead),
            "{k:?} stored on two live collectors {on:?}"
        );
        let live = on.iter().copied().find(|&i| i != dead).unwrap();
        let id = batch_of(dead, k);
        assert_eq!(
            batch_of(live, k),
            id,
            "{k:?} is in different batches on the dead and the live collector"
        );
        let last: Vec<&String> = killed_ids
            .iter()
            .filter(|b| parse_batch_id(b).is_some_and(|(v, _, _)| v == k.0))
            .rev()
            .take(4)
            .collect();
        assert!(
            last.contains(&&id),
            "{k:?}: batch {id} is on both but not among the VM's last on the collector killed"
        );
        assert_eq!(stores[dead][*k], stores[live][*k], "{k:?} differs");
        twice.insert(id);
    }
    eprintln!(
        "{} requests; {} records in {} VMs; stored per collector {:?}; batches stored on the \
         dead collector and retried to another: {twice:?}",
        sent.len(),
        by_key.len(),
        seqs.len(),
        stores.iter().map(BTreeMap::len).collect::<Vec<_>>()
    );

    // Each collector's log verifies, the killed one's as it was left.
    for d in &paths {
        verify(d);
    }
}
