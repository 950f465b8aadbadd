//! The scenarios on generated traffic (one hour of normal traffic first, then the
//! cause, then normal traffic again), each in its own test: each fires exactly its rule within
//! a stated time of the cause and resolves within a stated time of its end. Each prints its
//! row of the scenario table.

use crate::traffic::*;
use meshlog_detect::{DetectConfig, State, Transition};
use serde_json::Value;

/// The cause starts at this minute.
const START: u64 = 60;

struct Outcome {
    fired_after_s: u64,
    resolved_after_end_s: u64,
}

/// Checks that only `rule` fired, at least once, all within `fire_within_s` of the cause's
/// start; that each resolved within `resolve_within_s` of its end; prints the table row.
fn check(
    sim: &Sim,
    name: &str,
    rule: &str,
    end: u64,
    fire_within_s: u64,
    resolve_within_s: u64,
) -> Vec<Transition> {
    let start = T0 + START * MIN;
    let firing: Vec<&Transition> = sim
        .transitions
        .iter()
        .filter(|t| t.state == State::Firing)
        .collect();
    assert!(!firing.is_empty(), "{name}: nothing fired");
    for t in &firing {
        assert_eq!(t.rule, rule, "{name}: an unexpected rule fired: {t:?}");
        assert!(t.at_ns >= start, "{name}: fired before the cause: {t:?}");
    }
    for t in sim
        .transitions
        .iter()
        .filter(|t| t.state == State::Resolved)
    {
        assert!(
            t.at_ns >= end,
            "{name}: resolved while the cause went on: {t:?}"
        );
    }
    let first = firing.iter().map(|t| t.at_ns).min().unwrap();
    let o = Outcome {
        fired_after_s: (first - start) / S,
        resolved_after_end_s: sim
            .transitions
            .iter()
            .filter(|t| t.state == State::Resolved)
            .map(|t| t.at_ns.saturating_sub(end) / S)
            .max()
            .unwrap_or(u64::MAX),
    };
    assert!(
        o.fired_after_s <= fire_within_s,
        "{name}: fired after {}s",
        o.fired_after_s
    );
    assert!(
        o.resolved_after_end_s <= resolve_within_s,
        "{name}: resolved {}s after the cause stopped",
        o.resolved_after_end_s
    );
    sim.assert_paired(true);
    println!(
        "| {name} | {rule} | {} alert(s) | fired {}s after the start (bound {fire_within_s}s) | resolved {}s after the end (bound {resolve_within_s}s) |",
        firing.len(),
        o.fired_after_s,
        o.resolved_after_end_s
    );
    firing.into_iter().cloned().collect()
}

/// Credential stuffing: one client tries passwords against /login every 2 s for 5 minutes.
pub fn credential_stuffing(sim: &mut Sim, traffic: &mut Traffic, minutes: u64) {
    sim.run_with(traffic, minutes, |start, tr, m| {
        for k in 0..30 {
            let i = tr.sidecar_of("frontend");
            let r = Rec::new(0, "frontend", 401)
                .client("203.0.113.0")
                .route("/login")
                .set("http.request.method", "POST");
            m.push((start + k * 2 * S + S / 2, i, r));
        }
        stamp(m);
    });
}

fn stamp(m: &mut [(u64, usize, Rec)]) {
    for (at, _, r) in m.iter_mut() {
        r.0.insert("time_unix_nano".into(), Value::from(*at));
        r.0.insert("observed_time_unix_nano".into(), Value::from(*at));
    }
}

#[test]
fn scenario_credential_stuffing() {
    let mut sim = Sim::new(&DetectConfig::default());
    let mut tr = Traffic::new(11);
    sim.normal(&mut tr, START);
    credential_stuffing(&mut sim, &mut tr, 5);
    let end = sim.now;
    sim.normal(&mut tr, 10);
    let f = check(
        &sim,
        "credential stuffing",
        "auth_failure_burst",
        end,
        60,
        180,
    );
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].group.get("client"), Some("203.0.113.0"));
    assert!(
        f[0].query_command()
            .contains("--status 401,403 --client 203.0.113.0")
    );
}

#[test]
fn scenario_5xx_storm() {
    let mut sim = Sim::new(&DetectConfig::default());
    let mut tr = Traffic::new(12);
    sim.normal(&mut tr, START);
    sim.run_with(&mut tr, 4, |_, tr, m| {
        for (_, i, r) in m.iter_mut() {
            if tr.sidecars[*i].service == "checkout" && tr.rng.chance(0.7) {
                r.0.insert("http.response.status_code".into(), Value::from(503));
                r.0.insert("meshlog.response_flags".into(), Value::from("UF"));
            }
        }
    });
    let end = sim.now;
    sim.normal(&mut tr, 10);
    let f = check(&sim, "5xx storm", "error_spike", end, 60, 180);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].group.get("service"), Some("checkout"));
}

#[test]
fn scenario_new_workload_calls_sensitive_service() {
    let mut sim = Sim::new(&DetectConfig::default());
    let mut tr = Traffic::new(13);
    sim.normal(&mut tr, START);
    sim.run_with(&mut tr, 5, |start, tr, m| {
        for k in 0..3 {
            let i = tr.sidecar_of("payments");
            let r = Rec::new(0, "payments", 200)
                .principal(&spiffe("debug-pod"))
                .client("10.1.9.0")
                .route("/api/refunds");
            m.push((start + k * 20 * S + 3 * S, i, r));
        }
        stamp(m);
    });
    let end = sim.now;
    // The alert is an event: it resolves resolve_after_s (3600) after it fired.
    sim.normal(&mut tr, 60);
    let f = check(
        &sim,
        "new workload calls payments",
        "new_caller",
        end,
        5,
        3600,
    );
    assert_eq!(f.len(), 1);
    assert_eq!(
        f[0].group.get("principal"),
        Some(spiffe("debug-pod").as_str())
    );
    assert_eq!(f[0].group.get("service"), Some("payments"));
}

#[test]
fn scenario_client_leaks_tokens_in_query_strings() {
    let mut sim = Sim::new(&DetectConfig::default());
    let mut tr = Traffic::new(14);
    sim.normal(&mut tr, START);
    sim.run_with(&mut tr, 5, |_, _, m| {
        for (_, _, r) in m.iter_mut() {
            if r.0.get("meshlog.peer.principal").and_then(Value::as_str)
                == Some(&spiffe("mobile-bff"))
            {
                r.0.insert("meshlog.redacted.jwt".into(), Value::from(1));
                r.0.insert(
                    "url.query".into(),
                    Value::from("access_token=[REDACTED:jwt]"),
                );
            }
        }
    });
    let end = sim.now;
    sim.normal(&mut tr, 10);
    let f = check(&sim, "client leaks tokens", "secrets", end, 60, 200);
    assert_eq!(f.len(), 1);
    assert_eq!(
        f[0].group.get("principal"),
        Some(spiffe("mobile-bff").as_str())
    );
}

/// A collector outage of `minutes` with a tiny filter buffer: each VM keeps only its last 3
/// records, delivered when the collector is back, drops the rest and ships a delivery tally.
pub fn outage(sim: &mut Sim, tr: &mut Traffic, minutes: u64) {
    let mut kept: Vec<Vec<meshlog_detect::Record>> = vec![Vec::new(); tr.sidecars.len()];
    let mut dropped: Vec<Vec<u64>> = vec![Vec::new(); tr.sidecars.len()];
    for _ in 0..minutes {
        let m = tr.minute();
        let idx: Vec<usize> = m.iter().map(|(_, i, _)| *i).collect();
        for (i, r) in idx.into_iter().zip(tr.number(m)) {
            kept[i].push(r);
            if kept[i].len() > 3 {
                let old = kept[i].remove(0);
                dropped[i].push(old.get("meshlog.sequence").and_then(Value::as_u64).unwrap());
            }
        }
    }
    let back = T0 + tr.minute * MIN;
    sim.advance(back);
    for (i, recs) in kept.into_iter().enumerate() {
        for mut r in recs {
            r.insert("observed_time_unix_nano".into(), Value::from(back));
            sim.feed(r);
        }
        let d = &dropped[i];
        if d.is_empty() {
            continue;
        }
        let sc = tr.sidecars[i].clone();
        let mut t = Rec::new(back, sc.service, 0)
            .vm(sc.service, &sc.instance, &sc.vm, sc.seq)
            .set("event_name", "meshlog.delivery.tally")
            .set("severity_number", 13)
            .set("meshlog.delivery.dropped_overflow", d.len() as u64)
            .set("meshlog.delivery.dropped_overflow.total", d.len() as u64)
            .set(
                "meshlog.delivery.dropped_overflow.sequences",
                format!("{}-{}", d[0], d[d.len() - 1]),
            );
        for k in [
            "http.response.status_code",
            "http.route",
            "url.path",
            "http.request.method",
        ] {
            t.0.remove(k);
        }
        tr.sidecars[i].seq += 1;
        sim.feed(t.0);
    }
}

#[test]
fn scenario_collector_outage_with_tiny_buffer() {
    let mut sim = Sim::new(&DetectConfig::default());
    let mut tr = Traffic::new(15);
    sim.normal(&mut tr, START);
    outage(&mut sim, &mut tr, 3);
    let end = sim.now;
    sim.normal(&mut tr, 10);
    let f = check(
        &sim,
        "collector outage, tiny buffer",
        "delivery_loss",
        end,
        3 * 60 + 5,
        330,
    );
    // One alert per VM that lost records, each counting exactly what its tally reported.
    assert_eq!(f.len(), tr.sidecars.len());
    assert!(
        f.iter()
            .all(|t| t.group.get("cause") == Some("loss") && t.value > 0.0)
    );
}

#[test]
fn scenario_stalled_checkpoint() {
    let mut sim = Sim::new(&DetectConfig::default());
    let mut tr = Traffic::new(16);
    sim.normal(&mut tr, START);
    sim.checkpoints = false;
    sim.normal(&mut tr, 10);
    let end = sim.now;
    sim.checkpoints = true;
    sim.normal(&mut tr, 5);
    // The last checkpoint was at most a minute before the stall; it fires past 300 s.
    let f = check(&sim, "stalled checkpoint", "integrity", end, 301, 1);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].group.get("check"), Some("checkpoint"));
}
