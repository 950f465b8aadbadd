//! Each rule on its own: fires exactly at its threshold and not below, resolves when the cause
//! stops, suppression per group, and the memory cap.

use crate::traffic::*;
use meshlog_detect::config::{Correlation, Match, Op, UserRule};
use meshlog_detect::{Detector, IntegrityEvent, State, Transition};

fn fail(at: u64, client: &str) -> meshlog_detect::Record {
    Rec::new(at, "frontend", 401)
        .client(client)
        .route("/login")
        .0
}

fn firing(ts: &[Transition]) -> usize {
    ts.iter().filter(|t| t.state == State::Firing).count()
}

#[test]
fn auth_burst_fires_at_threshold_not_below_and_resolves() {
    let mut cfg = only(&["auth_failure_burst"]);
    cfg.auth_failure_burst.threshold = 5;
    cfg.auth_failure_burst.window_s = 60;
    let mut d = Detector::new(&cfg);
    for i in 0..4 {
        assert!(
            d.observe(&fail(T0 + i * S, "203.0.113.0"), T0 + i * S)
                .is_empty()
        );
    }
    // A 200 and another client's failure do not count.
    assert!(
        d.observe(
            &Rec::new(T0 + 4 * S, "frontend", 200)
                .client("203.0.113.0")
                .0,
            T0 + 4 * S
        )
        .is_empty()
    );
    assert!(
        d.observe(&fail(T0 + 4 * S, "198.51.100.0"), T0 + 4 * S)
            .is_empty()
    );
    let ts = d.observe(&fail(T0 + 5 * S, "203.0.113.0"), T0 + 5 * S);
    assert_eq!(ts.len(), 1, "{ts:?}");
    let t = &ts[0];
    assert_eq!(
        (t.rule.as_str(), t.state),
        ("auth_failure_burst", State::Firing)
    );
    assert_eq!(t.group.get("client"), Some("203.0.113.0"));
    assert_eq!((t.value, t.threshold), (5.0, 5.0));
    assert!(
        t.query_command()
            .contains("--status 401,403 --client 203.0.113.0"),
        "{}",
        t.query_command()
    );
    // More failures: still one alert.
    assert!(
        d.observe(&fail(T0 + 6 * S, "203.0.113.0"), T0 + 6 * S)
            .is_empty()
    );
    // The window empties 60 s later and the alert resolves after resolve_after_s (60) more.
    let mut resolved = Vec::new();
    for s in 7..200 {
        resolved.extend(d.tick(T0 + s * S));
    }
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert_eq!(resolved[0].state, State::Resolved);
    assert_eq!(resolved[0].id, t.id);
    let at = (resolved[0].at_ns - T0) / S;
    assert!((60..=130).contains(&at), "resolved at {at}s");
}

#[test]
fn auth_burst_groups_by_end_user_then_principal() {
    let mut cfg = only(&["auth_failure_burst"]);
    cfg.auth_failure_burst.threshold = 3;
    let mut d = Detector::new(&cfg);
    let gw = "spiffe://cluster.local/ns/edge/sa/ingress-gateway";
    let mut ts = Vec::new();
    for (i, user) in ["alice", "bob", "alice", "carol", "alice"]
        .iter()
        .enumerate()
    {
        let r = Rec::new(T0 + i as u64 * S, "frontend", 403)
            .principal(gw)
            .user(user)
            .0;
        ts.extend(d.observe(&r, T0 + i as u64 * S));
    }
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0].group.get("enduser"), Some("alice"));
    assert!(ts[0].query_command().contains("--where enduser.id=alice"));
    // Without an end user the principal is the caller.
    for i in 0..3 {
        let r = Rec::new(T0 + 10 * S + i * S, "frontend", 401)
            .principal(gw)
            .0;
        ts.extend(d.observe(&r, T0 + 10 * S + i * S));
    }
    assert_eq!(ts.len(), 2);
    assert_eq!(ts[1].group.get("principal"), Some(gw));
}

#[test]
fn auth_burst_memory_is_capped_and_evictions_counted() {
    let mut cfg = only(&["auth_failure_burst"]);
    cfg.auth_failure_burst.threshold = 3;
    cfg.auth_failure_burst.common.max_groups = 100;
    let mut d = Detector::new(&cfg);
    // One client bursts and fires; then 10,000 distinct clients fail once each.
    for i in 0..3 {
        d.observe(&fail(T0 + i, "203.0.113.0"), T0 + i);
    }
    for i in 0..10_000u64 {
        let c = format!("10.{}.{}.0", i / 256, i % 256);
        assert!(d.observe(&fail(T0 + S + i, &c), T0 + S + i).is_empty());
    }
    let st = d
        .stats()
        .into_iter()
        .find(|s| s.rule == "auth_failure_burst")
        .unwrap();
    assert!(st.groups <= 100, "{st:?}");
    assert!(st.evicted >= 9_900, "{st:?}");
    // The firing group survived eviction and still resolves.
    assert_eq!(st.firing, 1);
    let mut out = Vec::new();
    for s in 2..300 {
        out.extend(d.tick(T0 + s * S));
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].group.get("client"), Some("203.0.113.0"));
}

#[test]
fn suppression_per_group() {
    let mut cfg = only(&["auth_failure_burst"]);
    cfg.auth_failure_burst.threshold = 2;
    cfg.auth_failure_burst.window_s = 12;
    cfg.auth_failure_burst.common.resolve_after_s = 1;
    cfg.auth_failure_burst.common.suppress_s = 600;
    let mut d = Detector::new(&cfg);
    let mut all = Vec::new();
    // Three bursts 100 s apart from one client, one from another.
    for burst in 0..3u64 {
        let t = T0 + burst * 100 * S;
        for i in 0..2 {
            all.extend(d.observe(&fail(t + i * S, "203.0.113.0"), t + i * S));
        }
        for s in 2..60 {
            all.extend(d.tick(t + s * S));
        }
    }
    for i in 0..2 {
        all.extend(d.observe(
            &fail(T0 + 250 * S + i * S, "198.51.100.0"),
            T0 + 250 * S + i * S,
        ));
    }
    let fired: Vec<_> = all.iter().filter(|t| t.state == State::Firing).collect();
    assert_eq!(fired.len(), 2, "{fired:?}");
    assert_eq!(fired[0].group.get("client"), Some("203.0.113.0"));
    assert_eq!(fired[1].group.get("client"), Some("198.51.100.0"));
    let st = d
        .stats()
        .into_iter()
        .find(|s| s.rule == "auth_failure_burst")
        .unwrap();
    assert_eq!(st.suppressed, 2);
    // After the suppression window the next burst is raised, carrying the suppressed count.
    let t = T0 + 700 * S;
    let mut later = Vec::new();
    for i in 0..2 {
        later.extend(d.observe(&fail(t + i * S, "203.0.113.0"), t + i * S));
    }
    assert_eq!(firing(&later), 1);
    assert_eq!(later[0].suppressed, 2);
}

#[test]
fn error_spike_needs_volume_ratio_and_baseline() {
    let mut cfg = only(&["error_spike"]);
    cfg.error_spike.min_volume = 20;
    let mut d = Detector::new(&cfg);
    let mut ts = Vec::new();
    // Five quiet minutes: 40 requests, 1 error each (2.5%).
    for m in 0..5u64 {
        for i in 0..40u64 {
            let at = T0 + m * MIN + i * S;
            let st = if i == 0 { 503 } else { 200 };
            ts.extend(d.observe(&Rec::new(at, "checkout", st).0, at));
        }
    }
    assert!(ts.is_empty(), "{ts:?}");
    // Minute 5: errors only, but the first 19 requests are below the minimum volume.
    let m5 = T0 + 5 * MIN;
    for i in 0..19u64 {
        assert!(
            d.observe(&Rec::new(m5 + i * S, "checkout", 500).0, m5 + i * S)
                .is_empty()
        );
    }
    let ts = d.observe(&Rec::new(m5 + 19 * S, "checkout", 500).0, m5 + 19 * S);
    assert_eq!(ts.len(), 1, "fires at the 20th request");
    assert_eq!(ts[0].group.get("service"), Some("checkout"));
    assert!(ts[0].baseline.unwrap() < 0.05);
    assert!(
        ts[0]
            .query_command()
            .contains("--service checkout --status 5xx")
    );
    // Healthy again from minute 6: resolves within two intervals.
    let mut out = Vec::new();
    for m in 6..9u64 {
        for i in 0..40u64 {
            let at = T0 + m * MIN + i * S;
            out.extend(d.observe(&Rec::new(at, "checkout", 200).0, at));
        }
        out.extend(d.tick(T0 + (m + 1) * MIN));
    }
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].state, State::Resolved);
    assert!(out[0].at_ns <= T0 + 8 * MIN);
}

#[test]
fn error_spike_ignores_a_service_whose_baseline_is_already_bad() {
    let mut cfg = only(&["error_spike"]);
    cfg.error_spike.min_ratio = 0.2;
    let mut d = Detector::new(&cfg);
    let mut ts = Vec::new();
    // A service that always answers 25% 5xx: its own baseline, three times of which is 75%.
    for m in 0..30u64 {
        for i in 0..40u64 {
            let at = T0 + m * MIN + i * S;
            let st = if i % 4 == 0 { 500 } else { 200 };
            ts.extend(d.observe(&Rec::new(at, "legacy", st).0, at));
        }
    }
    let after_warmup: Vec<_> = ts.iter().filter(|t| t.at_ns > T0 + 10 * MIN).collect();
    assert!(after_warmup.is_empty(), "{after_warmup:?}");
}

#[test]
fn new_caller_fires_once_per_new_edge_after_learning() {
    let mut cfg = only(&["new_caller"]);
    cfg.learning_s = 600;
    cfg.new_caller.common.resolve_after_s = 300;
    let mut d = Detector::new(&cfg);
    let call = |p: &str, s: &str, at: u64| Rec::new(at, s, 200).principal(&spiffe(p)).0;
    assert!(d.observe(&call("frontend", "checkout", T0), T0).is_empty());
    // Learning: a new edge is learned silently.
    assert!(
        d.observe(&call("frontend", "users", T0 + 60 * S), T0 + 60 * S)
            .is_empty()
    );
    let t1 = T0 + 700 * S;
    assert!(
        d.observe(&call("frontend", "users", t1), t1).is_empty(),
        "learned edge"
    );
    let ts = d.observe(&call("debug-pod", "payments", t1 + S), t1 + S);
    assert_eq!(ts.len(), 1);
    assert_eq!(
        ts[0].group.get("principal"),
        Some(spiffe("debug-pod").as_str())
    );
    assert_eq!(ts[0].group.get("service"), Some("payments"));
    assert!(
        d.observe(&call("debug-pod", "payments", t1 + 2 * S), t1 + 2 * S)
            .is_empty()
    );
    let mut out = Vec::new();
    for s in 3..400 {
        out.extend(d.tick(t1 + s * S));
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].state, State::Resolved);
    assert_eq!((out[0].at_ns - (t1 + S)) / S, 300);
}

#[test]
fn new_caller_only_watches_configured_services() {
    let mut cfg = only(&["new_caller"]);
    cfg.learning_s = 0;
    cfg.new_caller.services = vec!["payments".into()];
    let mut d = Detector::new(&cfg);
    let r = Rec::new(T0, "catalog", 200).principal(&spiffe("x")).0;
    assert!(d.observe(&r, T0).is_empty());
    let r = Rec::new(T0, "payments", 200).principal(&spiffe("x")).0;
    assert_eq!(d.observe(&r, T0).len(), 1);
}

#[test]
fn rare_hour_learned_and_calendar() {
    let mut cfg = only(&["rare_hour"]);
    cfg.learning_s = 0;
    cfg.rare_hour.min_requests = 100;
    cfg.rare_hour.common.resolve_after_s = 600;
    let mut d = Detector::new(&cfg);
    // Two days of alice between 09:00 and 17:00.
    let mut ts = Vec::new();
    for day in 0..2u64 {
        for h in 9..17u64 {
            for i in 0..10u64 {
                let at = T0 + day * 24 * HOUR + h * HOUR + i * MIN;
                ts.extend(d.observe(&Rec::new(at, "frontend", 200).user("alice").0, at));
            }
        }
    }
    assert!(ts.is_empty());
    // 03:00 on day 3 is rare; 10:00 is not.
    let at = T0 + 2 * 24 * HOUR + 10 * HOUR;
    assert!(
        d.observe(&Rec::new(at, "frontend", 200).user("alice").0, at)
            .is_empty()
    );
    let at = T0 + 2 * 24 * HOUR + 3 * HOUR;
    let ts = d.observe(&Rec::new(at, "frontend", 200).user("alice").0, at);
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0].group.get("enduser"), Some("alice"));
    let mut out = Vec::new();
    for s in 1..700 {
        out.extend(d.tick(at + s * S));
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].state, State::Resolved);

    // Calendar: anything outside 08-18 fires at once, no learning needed.
    let mut cfg = only(&["rare_hour"]);
    cfg.learning_s = 0;
    cfg.rare_hour.business_hours = Some((8, 18));
    let mut d = Detector::new(&cfg);
    let at = T0 + 12 * HOUR;
    assert!(
        d.observe(&Rec::new(at, "frontend", 200).principal("p").0, at)
            .is_empty()
    );
    let at = T0 + 18 * HOUR;
    assert_eq!(
        d.observe(&Rec::new(at, "frontend", 200).principal("p").0, at)
            .len(),
        1
    );
}

#[test]
fn secrets_fire_at_min_count_against_baseline() {
    let mut cfg = only(&["secrets"]);
    cfg.learning_s = 0;
    cfg.secrets.min_count = 3;
    let mut d = Detector::new(&cfg);
    let leak = |at: u64, who: &str, n: i64| {
        Rec::new(at, "catalog", 200)
            .principal(who)
            .set("meshlog.redacted.jwt", n)
            .set("meshlog.redacted.email", 5)
            .0
    };
    // PII does not count: emails only.
    let r = Rec::new(T0, "catalog", 200)
        .principal("a")
        .set("meshlog.redacted.email", 9)
        .0;
    assert!(d.observe(&r, T0).is_empty());
    assert!(d.observe(&leak(T0 + S, "a", 1), T0 + S).is_empty());
    assert!(d.observe(&leak(T0 + 2 * S, "a", 1), T0 + 2 * S).is_empty());
    let ts = d.observe(&leak(T0 + 3 * S, "a", 1), T0 + 3 * S);
    assert_eq!(ts.len(), 1, "the third secret in the interval fires");
    assert_eq!(ts[0].group.get("principal"), Some("a"));
    assert!(
        ts[0]
            .query_command()
            .contains("--service catalog --principal a")
    );
    let mut out = Vec::new();
    for s in 4..400 {
        out.extend(d.tick(T0 + s * S));
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].state, State::Resolved);

    // A client that always sends 4 a minute has that as its baseline: 4 does not fire; its
    // threshold is 3 x 4 + 3 x 2 = 18.
    cfg.learning_s = 3600;
    let mut d = Detector::new(&cfg);
    let mut ts = Vec::new();
    for m in 0..70u64 {
        for i in 0..4u64 {
            let at = T0 + m * MIN + i * S;
            ts.extend(d.observe(&leak(at, "b", 1), at));
        }
    }
    assert!(ts.is_empty(), "{ts:?}");
    let mut ts = Vec::new();
    for i in 0..17u64 {
        let at = T0 + 70 * MIN + i * S;
        assert!(d.observe(&leak(at, "b", 1), at).is_empty());
    }
    for i in 17..18u64 {
        let at = T0 + 70 * MIN + i * S;
        ts.extend(d.observe(&leak(at, "b", 1), at));
    }
    assert_eq!(firing(&ts), 1);
    assert!(
        ts[0].value >= ts[0].threshold && (17.9..=18.0).contains(&ts[0].threshold),
        "{:?}",
        ts[0]
    );
}

#[test]
fn delivery_loss_gaps_tallies_and_silence() {
    let mut cfg = only(&["delivery_loss"]);
    cfg.delivery_loss.gap_grace_s = 30;
    cfg.delivery_loss.common.resolve_after_s = 120;
    let mut d = Detector::new(&cfg);
    let rec = |at: u64, inst: &str, vm: &str, seq: u64| {
        Rec::new(at, "checkout", 200)
            .vm("checkout", inst, vm, seq)
            .0
    };
    // A gap filled late (a retried batch) is not a loss.
    let mut ts = Vec::new();
    for (i, seq) in [0u64, 1, 2, 5, 6, 3, 4, 7].iter().enumerate() {
        ts.extend(d.observe(
            &rec(T0 + i as u64 * S, "c-0", "vm0", *seq),
            T0 + i as u64 * S,
        ));
    }
    for s in 8..60 {
        ts.extend(d.tick(T0 + s * S));
    }
    assert!(ts.is_empty(), "{ts:?}");
    // A gap never filled fires after the grace: 8..=19 lost.
    ts.extend(d.observe(&rec(T0 + 60 * S, "c-0", "vm0", 20), T0 + 60 * S));
    for s in 61..89 {
        assert!(d.tick(T0 + s * S).is_empty(), "within the grace");
    }
    ts.extend(d.tick(T0 + 90 * S));
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0].group.get("cause"), Some("loss"));
    assert_eq!(ts[0].group.get("vm"), Some("vm0"));
    assert_eq!(ts[0].value, 12.0);
    // A delivery tally with drops fires for another VM at once.
    let tally = Rec::new(T0 + 91 * S, "checkout", 200)
        .vm("checkout", "c-1", "vm1", 0)
        .set("event_name", "meshlog.delivery.tally")
        .set("meshlog.delivery.dropped_overflow", 7)
        .set("meshlog.delivery.dropped_overflow.sequences", "0-6");
    let mut t2 = d.observe(&tally.0, T0 + 91 * S);
    assert_eq!(t2.len(), 1);
    assert_eq!(t2[0].group.get("vm"), Some("vm1"));
    // Both resolve 120 s after their last loss.
    let mut out = Vec::new();
    for s in 92..400 {
        out.extend(d.tick(T0 + s * S));
    }
    t2.clear();
    // c-0 also went quiet at 60 s while c-1 sent at 91 s: a silence, its own group.
    out.retain(|t| t.group.get("cause") == Some("loss"));
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out.iter().all(|t| t.state == State::Resolved));

    // Silence: c-0 stops while c-1 keeps sending.
    let mut d = Detector::new(&cfg);
    let mut out = Vec::new();
    for s in 0..400u64 {
        let at = T0 + s * S;
        if s < 100 {
            out.extend(d.observe(&rec(at, "c-0", "vm0", s), at));
        }
        out.extend(d.observe(&rec(at, "c-1", "vm1", s), at));
        out.extend(d.tick(at));
    }
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].group.get("cause"), Some("silent"));
    assert_eq!(out[0].group.get("instance"), Some("c-0"));
    assert_eq!((out[0].at_ns - T0) / S, 99 + 120);
    // It comes back: resolved.
    let at = T0 + 400 * S;
    let back = d.observe(&rec(at, "c-0", "vm0", 100), at);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].state, State::Resolved);
}

#[test]
fn integrity_events() {
    let cfg = only(&["integrity"]);
    let mut d = Detector::new(&cfg);
    assert!(d.tick(T0).is_empty());
    assert!(
        d.integrity(&IntegrityEvent::Checkpoint, T0 + 10 * S)
            .is_empty()
    );
    assert!(
        d.tick(T0 + 310 * S).is_empty(),
        "300 s after the checkpoint is not late"
    );
    let ts = d.tick(T0 + 311 * S);
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0].group.get("check"), Some("checkpoint"));
    let ts = d.integrity(&IntegrityEvent::Checkpoint, T0 + 320 * S);
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0].state, State::Resolved);

    let ts = d.integrity(
        &IntegrityEvent::VerifyFailed {
            detail: "leaf 7".into(),
        },
        T0 + 330 * S,
    );
    assert_eq!(ts.len(), 1);
    assert!(ts[0].summary.contains("leaf 7"));
    assert!(
        d.integrity(
            &IntegrityEvent::VerifyFailed {
                detail: "again".into()
            },
            T0 + 331 * S
        )
        .is_empty()
    );
    let ts = d.integrity(&IntegrityEvent::VerifyPassed, T0 + 340 * S);
    assert_eq!(ts[0].state, State::Resolved);

    let ts = d.integrity(
        &IntegrityEvent::RetentionOutsidePolicy {
            detail: "segment 3 of class audit".into(),
        },
        T0 + 350 * S,
    );
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0].group.get("check"), Some("retention"));
    let _ = d.integrity(&IntegrityEvent::Checkpoint, T0 + 3900 * S);
    let ts = d.tick(T0 + 3950 * S);
    assert_eq!(ts.len(), 1, "{ts:?}");
    assert_eq!(ts[0].state, State::Resolved);
}

#[test]
fn volume_fires_above_its_baseline_after_warmup() {
    let mut cfg = only(&["volume"]);
    cfg.learning_s = 0;
    let mut d = Detector::new(&cfg);
    let mut ts = Vec::new();
    // A burst before warm-up does not fire.
    let mut cold = Detector::new(&cfg);
    for i in 0..1000u64 {
        let at = T0 + i * 50_000_000;
        ts.extend(cold.observe(&Rec::new(at, "search", 200).0, at));
    }
    assert!(ts.is_empty());
    for m in 0..20u64 {
        for i in 0..50u64 {
            let at = T0 + m * MIN + i * S;
            ts.extend(d.observe(&Rec::new(at, "search", 200).0, at));
        }
    }
    assert!(ts.is_empty(), "{ts:?}");
    // Baseline 50: threshold is the largest of 100, 3x mean, mean + 4 sd.
    let m = T0 + 20 * MIN;
    let mut n = 0;
    while ts.is_empty() {
        let at = m + n * 100_000_000;
        ts.extend(d.observe(&Rec::new(at, "search", 200).0, at));
        n += 1;
        assert!(n < 5000);
    }
    assert_eq!(ts[0].rule, "volume");
    assert!((ts[0].value - ts[0].threshold).abs() < 1.0, "{:?}", ts[0]);
    assert!(ts[0].value >= 100.0);
}

fn user_rule(name: &str, correlation: Correlation, cond: f64) -> UserRule {
    UserRule {
        name: name.into(),
        correlation,
        wheres: vec![Match {
            key: "http.request.method".into(),
            values: vec!["DELETE".into()],
        }],
        group_by: vec!["meshlog.peer.principal".into()],
        timespan_ns: 60 * S,
        condition: (Op::Gte, cond),
        common: meshlog_detect::config::DetectConfig::default()
            .auth_failure_burst
            .common,
    }
}

#[test]
fn user_event_count_value_count_and_new_terms() {
    let mut cfg = only(&[]);
    cfg.learning_s = 0;
    cfg.rules
        .push(user_rule("many-deletes", Correlation::EventCount, 3.0));
    cfg.rules.push(user_rule(
        "wide-deletes",
        Correlation::ValueCount {
            field: "url.path".into(),
        },
        3.0,
    ));
    let del = |at: u64, who: &str, path: &str| {
        Rec::new(at, "catalog", 204)
            .principal(who)
            .set("http.request.method", "DELETE")
            .set("url.path", path)
            .0
    };
    let mut d = Detector::new(&cfg);
    let mut ts = Vec::new();
    ts.extend(d.observe(&del(T0, "a", "/x/1"), T0));
    ts.extend(d.observe(&del(T0 + S, "a", "/x/1"), T0 + S));
    // GETs do not match the where filter.
    ts.extend(d.observe(&Rec::new(T0 + S, "catalog", 200).principal("a").0, T0 + S));
    assert!(ts.is_empty());
    ts.extend(d.observe(&del(T0 + 2 * S, "a", "/x/2"), T0 + 2 * S));
    assert_eq!(
        ts.len(),
        1,
        "third DELETE: event_count fires, 2 distinct paths do not"
    );
    assert_eq!(ts[0].rule, "many-deletes");
    assert!(
        ts[0]
            .query_command()
            .contains("--principal a --where http.request.method=DELETE")
            || ts[0]
                .query_command()
                .contains("--where http.request.method=DELETE")
    );
    ts.extend(d.observe(&del(T0 + 3 * S, "a", "/x/3"), T0 + 3 * S));
    assert_eq!(ts.len(), 2);
    assert_eq!(ts[1].rule, "wide-deletes");
    assert_eq!(ts[1].value, 3.0);
    let mut out = Vec::new();
    for s in 4..200 {
        out.extend(d.tick(T0 + s * S));
    }
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|t| t.state == State::Resolved));

    let mut cfg = only(&[]);
    cfg.learning_s = 100;
    let mut r = user_rule(
        "new-route-for-caller",
        Correlation::NewTerms {
            fields: vec!["http.route".into()],
            history_ns: 3600 * S,
        },
        1.0,
    );
    r.wheres.clear();
    cfg.rules.push(r);
    let mut d = Detector::new(&cfg);
    let get = |at: u64, route: &str| Rec::new(at, "catalog", 200).principal("a").route(route).0;
    assert!(d.observe(&get(T0, "/a"), T0).is_empty());
    assert!(d.observe(&get(T0 + 200 * S, "/a"), T0 + 200 * S).is_empty());
    let ts = d.observe(&get(T0 + 201 * S, "/admin"), T0 + 201 * S);
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0].group.get("http.route"), Some("/admin"));
    assert!(
        d.observe(&get(T0 + 202 * S, "/admin"), T0 + 202 * S)
            .is_empty()
    );
}

#[test]
fn disabled_rules_and_detection_off() {
    let mut cfg = meshlog_detect::DetectConfig::default();
    cfg.volume.common.enabled = false;
    let d = Detector::new(&cfg);
    assert!(!d.rule_names().contains(&"volume"));
    assert_eq!(d.rule_names().len(), 7);
    cfg.enabled = false;
    assert!(Detector::new(&cfg).rule_names().is_empty());
}

#[test]
fn secrets_keep_firing_while_a_leak_goes_on() {
    let mut cfg = only(&["secrets"]);
    cfg.learning_s = 0;
    let mut d = Detector::new(&cfg);
    let mut ts = Vec::new();
    for s in 0..600u64 {
        let at = T0 + s * S;
        if s % 2 == 0 {
            let r = Rec::new(at, "catalog", 200)
                .principal("m")
                .set("meshlog.redacted.jwt", 1)
                .0;
            ts.extend(d.observe(&r, at));
        }
        ts.extend(d.tick(at));
    }
    assert_eq!(ts.len(), 1, "{ts:#?}");
}

/// An alert raised by a tenant's record carries that tenant (so the tenant's readers see it),
/// and reads back from its record with it; one raised by time passing carries none.
#[test]
fn alerts_carry_the_tenant_of_the_record_that_raised_them() {
    let mut cfg = only(&["auth_failure_burst", "integrity"]);
    cfg.auth_failure_burst.threshold = 2;
    cfg.integrity.checkpoint_max_age_s = 10;
    let mut d = Detector::new(&cfg);
    let tenant_fail = |at| {
        Rec::new(at, "frontend", 401)
            .client("203.0.113.0")
            .set("resource.meshlog.tenant", "acme")
            .0
    };
    assert!(d.tick(T0).is_empty());
    assert!(d.observe(&tenant_fail(T0), T0).is_empty());
    let ts = d.observe(&tenant_fail(T0 + S), T0 + S);
    assert_eq!(ts.len(), 1, "{ts:?}");
    assert_eq!(ts[0].tenant.as_deref(), Some("acme"));
    // The stored record, as the collector stamps it, reads back with the tenant.
    let mut rec = meshlog_detect::alert::alert_record(&ts[0]);
    rec.insert("resource.meshlog.tenant".into(), "acme".into());
    let back = meshlog_detect::alert::parse_alert(&rec).unwrap();
    assert_eq!(back.transition.tenant.as_deref(), Some("acme"));
    // A stalled checkpoint is the operators': no tenant, even after a tenant's record.
    let ts = d.tick(T0 + 20 * S);
    let stall: Vec<_> = ts.iter().filter(|t| t.rule == "integrity").collect();
    assert_eq!(stall.len(), 1, "{ts:?}");
    assert_eq!(stall[0].tenant, None);
}

#[test]
fn secrets_grouped_by_route_read_the_route_from_stored_lines() {
    // The route is read only when a rule asks for it: grouped by route, the secrets rule
    // must find it in a stored line as in a parsed record.
    let mut cfg = only(&["secrets"]);
    cfg.learning_s = 0;
    cfg.secrets.min_count = 2;
    cfg.secrets.group_by = meshlog_detect::config::SecretsGroup::Route;
    let (mut by_map, mut by_line) = (Detector::new(&cfg), Detector::new(&cfg));
    let leak = |at: u64| {
        Rec::new(at, "catalog", 200)
            .principal("a")
            .set("http.route", "/login")
            .set("meshlog.redacted.jwt", 1)
            .0
    };
    let mut fired = (Vec::new(), Vec::new());
    for s in 1..=2 {
        let (r, at) = (leak(T0 + s * S), T0 + s * S);
        fired.0.extend(by_map.observe(&r, at));
        let line = serde_json::to_vec(&r).unwrap();
        fired.1.extend(by_line.observe_json(&line, at).unwrap());
    }
    assert_eq!(fired.1.len(), 1, "the second secret on /login fires");
    assert_eq!(fired.1[0].group.get("route"), Some("/login"));
    assert_eq!(fired.0.len(), 1);
    assert_eq!(fired.0[0].group, fired.1[0].group);
}
