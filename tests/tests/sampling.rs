//! End-to-end sampling: two Envoys in a chain (A's `app` is B's listener, B's is the upstream),
//! both sampling at 50% and shipping to one collector. The keep decision is a pure function of
//! the trace id, so both hops keep exactly the traces `meshlog_core::sample` says, errors are
//! kept everywhere, health checks are dropped and counted, and every VM's tally records explain
//! the gaps.

use meshlog_core::FilterConfig;
use meshlog_core::sample::{RequestFacts, Sampler};
use meshlog_e2e::{Collector, Envoy, Sidecar, Upstream, send, wait_for};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

const UPSTREAM: &str = env!("CARGO_BIN_EXE_meshlog-upstream");

const SAMPLED: usize = 200;
const ERRORS: usize = 20;
const HEALTH: usize = 5;
const TOTAL: usize = SAMPLED + ERRORS + HEALTH;

/// The sampling rate, as configured below and assumed by the golden table.
const RATE: f64 = 0.5;

fn plugin_config(hop: &str) -> String {
    format!(
        r#"{{"batch":{{"max_age_ms":100}},"resource":{{"service.name":"{hop}"}},"sampling":{{"default_rate":{RATE},"tally_interval_ms":300}}}}"#
    )
}

/// `tests/data/sampling-golden.txt`: per sampled request index, (trace id hex, kept).
fn golden() -> Vec<(String, bool)> {
    let text = include_str!("data/sampling-golden.txt");
    let rows: Vec<(String, bool)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .enumerate()
        .map(|(n, l)| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 3, "golden line {l:?}");
            assert_eq!(f[0], n.to_string(), "golden line {l:?} out of order");
            (f[1].to_owned(), f[2] == "keep")
        })
        .collect();
    assert_eq!(rows.len(), SAMPLED, "one golden row per sampled request");
    rows
}

/// Random-looking, distinct, reproducible trace ids (splitmix64).
fn trace_id(i: u64) -> [u8; 16] {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&mix(2 * i).to_be_bytes());
    t[8..].copy_from_slice(&mix(2 * i + 1).to_be_bytes());
    t
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn int(r: &Value, k: &str) -> u64 {
    r[k].as_u64()
        .unwrap_or_else(|| panic!("no integer {k} in {r}"))
}

#[test]
fn sampling_keeps_whole_traces_across_a_chain_of_envoys_and_explains_every_drop() {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    let upstream = Upstream::start(UPSTREAM);
    let mut b = Sidecar::new(upstream.addr.port(), collector.addr.port());
    b.plugin_config = Some(plugin_config("hop-b"));
    let envoy_b = Envoy::start(&b, 2);
    // A forwards to B's listener.
    let mut a = Sidecar::new(envoy_b.listen.port(), collector.addr.port());
    a.plugin_config = Some(plugin_config("hop-a"));
    let envoy_a = Envoy::start(&a, 2);

    // What the filter must decide: the checked-in golden decisions, computed independently from
    // the documented hash definition; the engine, run here with the same configuration, must
    // agree with them too (so a change to either shows which one moved).
    let golden = golden();
    let policy = FilterConfig::from_json(plugin_config("x").as_bytes())
        .unwrap()
        .sampling;
    let version = policy.version().to_owned();
    let mut oracle = Sampler::new(policy, 0);

    let mut expected_kept = BTreeSet::new();
    let mut errors = BTreeSet::new();
    let mut health = BTreeSet::new();
    for i in 0..TOTAL as u64 {
        let t = trace_id(i);
        let traceparent = format!("00-{}-{:016x}-01", hex(&t), 0x1000 + i);
        let rid = format!("s-{i}");
        let (path, status) = if i < SAMPLED as u64 {
            (format!("/api/items/{i}"), 200)
        } else if i < (SAMPLED + ERRORS) as u64 {
            ("/status/503".to_owned(), 503)
        } else {
            ("/healthz".to_owned(), 200)
        };
        let headers: [(&str, &[u8]); 2] = [
            ("traceparent", traceparent.as_bytes()),
            ("x-request-id", rid.as_bytes()),
        ];
        assert_eq!(
            send(envoy_a.listen, "GET", &path, &headers, b""),
            status,
            "{path}"
        );
        match status {
            503 => {
                errors.insert(hex(&t));
            }
            _ if path == "/healthz" => {
                health.insert(hex(&t));
            }
            _ => {
                let facts = RequestFacts {
                    trace_id: Some(t),
                    method: Some("GET"),
                    path: Some(&path),
                    status: Some(200),
                    ..RequestFacts::default()
                };
                let (golden_trace, keep) = &golden[i as usize];
                assert_eq!(
                    &hex(&t),
                    golden_trace,
                    "trace id {i} differs from the golden table"
                );
                assert_eq!(
                    oracle.decide(&facts, 0).is_keep(),
                    *keep,
                    "the engine's decision for trace {i} ({golden_trace}) is not the golden one"
                );
                if *keep {
                    expected_kept.insert(hex(&t));
                }
            }
        }
    }
    // The table itself is plausible: the kept count within 5 standard deviations of the
    // binomial mean for SAMPLED draws at RATE.
    let (mean, sd) = (
        SAMPLED as f64 * RATE,
        (SAMPLED as f64 * RATE * (1.0 - RATE)).sqrt(),
    );
    assert!(
        (expected_kept.len() as f64 - mean).abs() <= 5.0 * sd,
        "{} of {SAMPLED} kept at rate {RATE}: more than 5 sd ({sd:.1}) from {mean}",
        expected_kept.len()
    );

    // Wait until every VM's tallies account for every request at both hops.
    let tallied = |recs: &[Value], hop: &str| -> u64 {
        recs.iter()
            .filter(|r| r["event_name"] == "meshlog.sampling.tally")
            .filter(|r| r["resource.service.name"] == hop)
            .map(|r| int(r, "meshlog.sampling.seen"))
            .sum()
    };
    let done = wait_for(Duration::from_secs(30), || {
        let recs = collector.query();
        (tallied(&recs, "hop-a") >= TOTAL as u64 && tallied(&recs, "hop-b") >= TOTAL as u64)
            .then_some(())
    });
    assert!(
        done.is_some(),
        "tallies incomplete: {:?}; collector:\n{}",
        collector.query(),
        collector.proc.output()
    );
    // Settled: every stored record answered, so no retry (a would-be duplicate) is pending.
    let recs = collector.wait_records(0, &[&envoy_a, &envoy_b]);

    for (hop, envoy) in [("hop-a", &envoy_a), ("hop-b", &envoy_b)] {
        let mine: Vec<&Value> = recs
            .iter()
            .filter(|r| r["resource.service.name"] == hop)
            .collect();
        let access: Vec<&Value> = mine
            .iter()
            .copied()
            .filter(|r| r["event_name"] == "meshlog.http.access")
            .collect();
        let tallies: Vec<&Value> = mine
            .iter()
            .copied()
            .filter(|r| r["event_name"] == "meshlog.sampling.tally")
            .collect();
        assert_eq!(
            mine.len(),
            access.len() + tallies.len(),
            "{hop}: only two kinds"
        );

        let mut by_trace: HashMap<String, &Value> = HashMap::new();
        for r in &access {
            let t = r["trace_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{hop}: no trace id in {r}"));
            assert!(
                by_trace.insert(t.to_owned(), r).is_none(),
                "{hop}: trace {t} stored twice"
            );
            assert_eq!(
                r["meshlog.sampling.policy_version"],
                version.as_str(),
                "{r}"
            );
            let count = r["meshlog.sampling.adjusted_count"]
                .as_f64()
                .unwrap_or_else(|| panic!("{hop}: adjusted count is a number: {r}"));
            if errors.contains(t) {
                assert_eq!(count, 1.0, "{r}");
                assert_eq!(r["meshlog.sampling.reason"], "error_status", "{r}");
                assert_eq!(r["http.response.status_code"], 503, "{r}");
            } else {
                assert_eq!(count, 2.0, "{r}");
                assert_eq!(r["meshlog.sampling.reason"], "sampled", "{r}");
            }
        }
        let stored: BTreeSet<String> = by_trace.keys().cloned().collect();
        let sampled_stored: BTreeSet<String> = stored.difference(&errors).cloned().collect();
        // Exactly the traces the engine keeps, at this hop as at the other: trace consistency.
        assert_eq!(sampled_stored, expected_kept, "{hop}: kept traces");
        assert!(
            errors.is_subset(&stored),
            "{hop}: every 503 is kept: missing {:?}",
            errors.difference(&stored).collect::<Vec<_>>()
        );
        assert!(
            health.is_disjoint(&stored),
            "{hop}: health checks are not stored"
        );
        assert_eq!(access.len(), expected_kept.len() + ERRORS, "{hop}");

        // Tallies: per record and per VM, kept + dropped == seen, and the kept count is what the
        // VM stored.
        let mut per_vm: BTreeMap<String, [u64; 6]> = BTreeMap::new();
        for t in &tallies {
            let (seen, kept, sampled, cap, hc) = (
                int(t, "meshlog.sampling.seen"),
                int(t, "meshlog.sampling.kept"),
                int(t, "meshlog.dropped.sampled"),
                int(t, "meshlog.dropped.rate_cap"),
                int(t, "meshlog.dropped.health_check"),
            );
            assert_eq!(kept + sampled + cap + hc, seen, "{t}");
            assert_eq!(
                t["meshlog.sampling.policy_version"],
                version.as_str(),
                "{t}"
            );
            assert!(
                int(t, "meshlog.sampling.interval.start_ns")
                    < int(t, "meshlog.sampling.interval.end_ns"),
                "{t}"
            );
            assert!(
                t.get("trace_id").is_none() && t.get("url.path").is_none(),
                "{t}"
            );
            let vm = t["resource.meshlog.vm.id"].as_str().unwrap().to_owned();
            let e = per_vm.entry(vm).or_default();
            for (slot, v) in e.iter_mut().zip([seen, kept, sampled, cap, hc]) {
                *slot += v;
            }
        }
        for r in &access {
            let vm = r["resource.meshlog.vm.id"].as_str().unwrap();
            per_vm
                .get_mut(vm)
                .unwrap_or_else(|| panic!("{hop}: VM {vm} stored records but no tally"))[5] += 1;
        }
        let mut total = [0u64; 5];
        for (vm, [seen, kept, sampled, cap, hc, stored]) in &per_vm {
            assert_eq!(kept + sampled + cap + hc, *seen, "{hop} VM {vm}");
            assert_eq!(kept, stored, "{hop} VM {vm}: tallied kept == stored");
            for (t, v) in total.iter_mut().zip([*seen, *kept, *sampled, *cap, *hc]) {
                *t += v;
            }
        }
        let dropped_sampled = (SAMPLED - expected_kept.len()) as u64;
        assert_eq!(
            total,
            [
                TOTAL as u64,
                (expected_kept.len() + ERRORS) as u64,
                dropped_sampled,
                0,
                HEALTH as u64
            ],
            "{hop}: [seen, kept, sampled, rate_cap, health_check]"
        );

        // Per VM, sequence numbers run from 0 without a gap over access and tally records.
        let mut seqs: HashMap<&str, Vec<u64>> = HashMap::new();
        for r in &mine {
            seqs.entry(r["resource.meshlog.vm.id"].as_str().unwrap())
                .or_default()
                .push(int(r, "meshlog.sequence"));
        }
        for (vm, mut s) in seqs {
            s.sort_unstable();
            assert_eq!(s, (0..s.len() as u64).collect::<Vec<_>>(), "{hop} VM {vm}");
        }

        // The Envoy counters (summed over VMs) say the same.
        for (name, want) in [
            ("records_sampled_out", dropped_sampled),
            ("records_health_check_dropped", HEALTH as u64),
            ("records_rate_capped", 0),
            ("records_logged", (expected_kept.len() + ERRORS) as u64),
        ] {
            assert_eq!(
                envoy.stat(&format!("wasmcustom.meshlog.{name}")),
                Some(want),
                "{hop}: {name}"
            );
        }
    }
}
