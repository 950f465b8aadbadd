//! Detection's cost per committed record: the [`Detector`] with every built-in rule on (the
//! default `[detect]`), fed varied normal traffic (six services, thirteen sidecars, workload
//! callers, end users, some 4xx/5xx and redactions) in time order, ticked every second as the
//! collector would; next to the same feed with detection off (`enabled = false`), which is the
//! harness alone. `cargo bench -p meshlog-bench --bench detect`.
//!
//! Each is run two ways: `stored_lines`, the records as the store keeps them (one JSON line
//! each) read in place by [`Detector::observe_json`], which is what the collector does; and
//! `parsed_maps`, each line parsed into a map first and given to [`Detector::observe`], which
//! is what the collector did before (the anchor).

#![allow(missing_docs)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use meshlog_detect::{DetectConfig, Detector, Record};
use serde_json::Value;
use std::hint::black_box;

const S: u64 = 1_000_000_000;
const T0: u64 = 1_796_083_200 * S;
/// Records per run: 500 s of simulated time at 200 records a second, so windows and intervals
/// roll many times.
const N: usize = 100_000;

fn rng(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn records() -> Vec<(u64, Record)> {
    let services = [
        "frontend", "checkout", "payments", "catalog", "users", "search",
    ];
    let callers = [
        "spiffe://cluster.local/ns/edge/sa/ingress-gateway",
        "spiffe://cluster.local/ns/shop/sa/frontend",
        "spiffe://cluster.local/ns/shop/sa/checkout",
        "spiffe://cluster.local/ns/shop/sa/mobile-bff",
    ];
    let mut seq = [0u64; 12];
    let mut st = 42u64;
    (0..N)
        .map(|i| {
            let at = T0 + i as u64 * (S / 200);
            let sc = (rng(&mut st) % 12) as usize;
            let service = services[sc % services.len()];
            let status = match rng(&mut st) % 1000 {
                0..=14 => 404,
                15..=19 => 401,
                20..=24 => 503,
                _ => 200,
            };
            let mut m = Record::new();
            m.insert("time_unix_nano".into(), Value::from(at));
            m.insert("observed_time_unix_nano".into(), Value::from(at));
            m.insert("event_name".into(), Value::from("meshlog.http.access"));
            m.insert("severity_number".into(), Value::from(9));
            m.insert("http.request.method".into(), Value::from("GET"));
            m.insert("http.response.status_code".into(), Value::from(status));
            m.insert("http.route".into(), Value::from("/api/items/{id}"));
            m.insert("url.path".into(), Value::from("/api/items/{id}"));
            m.insert("client.address".into(), Value::from("10.1.2.0"));
            m.insert(
                "client.port".into(),
                Value::from(40000 + (i % 20000) as u64),
            );
            m.insert(
                "meshlog.peer.principal".into(),
                Value::from(callers[(rng(&mut st) % 4) as usize]),
            );
            if rng(&mut st).is_multiple_of(10) {
                m.insert("meshlog.redacted.ip".into(), Value::from(1));
            }
            if rng(&mut st).is_multiple_of(4) {
                m.insert(
                    "enduser.id".into(),
                    Value::from(format!("user{}", rng(&mut st) % 50)),
                );
            }
            m.insert("resource.service.name".into(), Value::from(service));
            m.insert(
                "resource.service.instance.id".into(),
                Value::from(format!("{service}-{sc}")),
            );
            m.insert(
                "resource.meshlog.vm.id".into(),
                Value::from(format!("vm{sc:02}")),
            );
            m.insert("meshlog.sequence".into(), Value::from(seq[sc]));
            seq[sc] += 1;
            (at, m)
        })
        .collect()
}

fn run(d: &mut Detector, recs: &[(u64, Record)]) -> usize {
    let mut n = 0;
    let mut next_tick = T0 + S;
    for (at, r) in recs {
        while *at >= next_tick {
            n += d.tick(next_tick).len();
            next_tick += S;
        }
        n += d.observe(r, *at).len();
    }
    n
}

/// The collector before: each stored line parsed into a map, then observed.
fn run_maps(d: &mut Detector, lines: &[(u64, Vec<u8>)]) -> usize {
    let mut n = 0;
    let mut next_tick = T0 + S;
    for (at, line) in lines {
        while *at >= next_tick {
            n += d.tick(next_tick).len();
            next_tick += S;
        }
        let r: Record = serde_json::from_slice(line).unwrap_or_default();
        n += d.observe(&r, *at).len();
    }
    n
}

/// The collector now: each stored line read in place.
fn run_lines(d: &mut Detector, lines: &[(u64, Vec<u8>)]) -> usize {
    let mut n = 0;
    let mut next_tick = T0 + S;
    for (at, line) in lines {
        while *at >= next_tick {
            n += d.tick(next_tick).len();
            next_tick += S;
        }
        n += d.observe_json(line, *at).map_or(0, |t| t.len());
    }
    n
}

fn bench(c: &mut Criterion) {
    let recs = records();
    let lines: Vec<(u64, Vec<u8>)> = recs
        .iter()
        .map(|(at, r)| (*at, serde_json::to_vec(r).unwrap_or_default()))
        .collect();
    let mut g = c.benchmark_group("detect");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    let on = DetectConfig::default();
    let off = DetectConfig {
        enabled: false,
        ..DetectConfig::default()
    };
    for (name, cfg) in [("all_rules", &on), ("off", &off)] {
        g.bench_function(format!("{name}/records"), |b| {
            b.iter_batched(
                || Detector::new(cfg),
                |mut d| black_box(run(&mut d, &recs)),
                BatchSize::LargeInput,
            )
        });
        g.bench_function(format!("{name}/stored_lines"), |b| {
            b.iter_batched(
                || Detector::new(cfg),
                |mut d| black_box(run_lines(&mut d, &lines)),
                BatchSize::LargeInput,
            )
        });
        g.bench_function(format!("{name}/parsed_maps"), |b| {
            b.iter_batched(
                || Detector::new(cfg),
                |mut d| black_box(run_maps(&mut d, &lines)),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
