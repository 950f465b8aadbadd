//! A restart mid-scenario: the new detector replays the recent log (alerts included) and neither
//! loses an alert nor raises one twice.

use crate::scenarios::{credential_stuffing, outage};
use crate::traffic::*;
use meshlog_detect::{DetectConfig, Detector, State};

#[test]
fn restart_while_firing_raises_nothing_again() {
    let cfg = DetectConfig::default();
    let mut sim = Sim::new(&cfg);
    let mut tr = Traffic::new(21);
    sim.normal(&mut tr, 60);
    credential_stuffing(&mut sim, &mut tr, 2);
    assert_eq!(sim.fired().get("auth_failure_burst"), Some(&1));
    let ts = sim.restart(&cfg);
    assert!(ts.is_empty(), "replay raised {ts:?}");
    // The attack goes on after the restart, then stops: one alert, one resolution.
    credential_stuffing(&mut sim, &mut tr, 2);
    sim.normal(&mut tr, 10);
    assert_eq!(sim.fired().get("auth_failure_burst"), Some(&1));
    assert_eq!(sim.fired().len(), 1, "{:?}", sim.fired());
    sim.assert_paired(true);
}

#[test]
fn restart_that_lost_the_alert_record_raises_it_once() {
    let cfg = DetectConfig::default();
    let mut sim = Sim::new(&cfg);
    let mut tr = Traffic::new(22);
    sim.normal(&mut tr, 60);
    credential_stuffing(&mut sim, &mut tr, 2);
    // The crash came between the detection and the append: the alert never reached the log.
    let pos = sim
        .log
        .iter()
        .rposition(|r| r.get("event_name").and_then(|v| v.as_str()) == Some("meshlog.alert"))
        .unwrap();
    sim.log.remove(pos);
    let lost = sim.transitions.pop().unwrap();
    let ts = sim.restart(&cfg);
    assert_eq!(ts.len(), 1, "{ts:?}");
    assert_eq!(
        (ts[0].rule.as_str(), ts[0].state),
        ("auth_failure_burst", State::Firing)
    );
    assert_eq!(ts[0].group, lost.group);
    assert_eq!(
        ts[0].since_ns, lost.since_ns,
        "raised with its original start"
    );
    assert_eq!(ts[0].id, lost.id, "and its original id");
    assert_eq!(ts[0].at_ns, sim.now, "raised at the restart");
    credential_stuffing(&mut sim, &mut tr, 1);
    sim.normal(&mut tr, 10);
    sim.assert_paired(true);
    assert_eq!(sim.fired().get("auth_failure_burst"), Some(&1));
}

#[test]
fn restart_after_the_cause_stopped_resolves_once() {
    let cfg = DetectConfig::default();
    let mut sim = Sim::new(&cfg);
    let mut tr = Traffic::new(23);
    sim.normal(&mut tr, 60);
    credential_stuffing(&mut sim, &mut tr, 2);
    let id = sim.transitions.last().unwrap().id.clone();
    // Down for 5 minutes (no ticks, no records): the attack ended meanwhile.
    let mut down = Traffic::new(99);
    down.minute = tr.minute;
    tr.minute += 5;
    sim.now = T0 + tr.minute * MIN;
    let ts = sim.restart(&cfg);
    assert_eq!(ts.len(), 1, "{ts:?}");
    assert_eq!(
        (ts[0].state, ts[0].id.as_str()),
        (State::Resolved, id.as_str())
    );
    sim.normal(&mut tr, 10);
    sim.assert_paired(true);
}

#[test]
fn restart_keeps_history_alerts_and_delivery_losses() {
    let cfg = DetectConfig::default();
    let mut sim = Sim::new(&cfg);
    let mut tr = Traffic::new(24);
    sim.normal(&mut tr, 60);
    // A new caller (an event alert, resolved an hour later) and a delivery loss.
    let r = Rec::new(sim.now + S, "payments", 200)
        .principal(&spiffe("debug-pod"))
        .0;
    sim.feed(r);
    outage(&mut sim, &mut tr, 2);
    let before: Vec<_> = sim
        .transitions
        .iter()
        .map(|t| (t.rule.clone(), t.state))
        .collect();
    assert!(before.iter().any(|(r, _)| r == "new_caller"));
    assert!(before.iter().any(|(r, _)| r == "delivery_loss"));
    let ts = sim.restart(&cfg);
    assert!(ts.is_empty(), "{ts:?}");
    assert!(sim.det.firing().iter().any(|t| t.rule == "new_caller"));
    sim.normal(&mut tr, 70);
    sim.assert_paired(true);
    assert_eq!(sim.fired().get("new_caller"), Some(&1));
}

/// What a replay cannot rebuild survives a restart through the snapshot: an edge last seen
/// two hours before the restart (the replay covers one) is still known afterwards, learning
/// does not start over, and a really new edge still fires at once.
#[test]
fn a_snapshot_keeps_history_older_than_the_replay_window() {
    let mut cfg = only(&["new_caller", "rare_hour"]);
    cfg.learning_s = 600;
    cfg.replay_s = 3600;
    let call = |at: u64, who: &str| Rec::new(at, "payments", 200).principal(&spiffe(who)).0;
    let mut d = Detector::new(&cfg);
    assert!(d.observe(&call(T0, "checkout"), T0).is_empty());
    let t = T0 + HOUR;
    assert!(d.tick(t).is_empty());
    let snap = d.snapshot();
    // Written and read back as the collector does: JSON text.
    let snap: serde_json::Value = serde_json::from_str(&snap.to_string()).unwrap();

    // Restarted two hours after the edge was last seen: the replay window holds nothing.
    let restart = T0 + 2 * HOUR;
    let mut fresh = Detector::new(&cfg);
    assert!(fresh.load_snapshot(&snap, restart));
    assert!(fresh.finish_replay(restart).is_empty());
    let at = restart + S;
    assert!(
        fresh.observe(&call(at, "checkout"), at).is_empty(),
        "a known edge"
    );
    let ts = fresh.observe(&call(at + S, "intruder"), at + S);
    assert_eq!(
        ts.len(),
        1,
        "a new edge fires, learning not started over: {ts:?}"
    );
    assert_eq!(ts[0].rule, "new_caller");
    assert_eq!(
        ts[0].group.get("principal"),
        Some(spiffe("intruder").as_str())
    );

    // Without the snapshot the old edge is forgotten: learning starts over and it is learned
    // silently, so the snapshot is what keeps the intruder from going unnoticed.
    let mut cold = Detector::new(&cfg);
    assert!(cold.finish_replay(restart).is_empty());
    assert!(cold.observe(&call(at + S, "intruder"), at + S).is_empty());

    // Another version's snapshot is ignored.
    let mut other = snap.clone();
    other["version"] = 99.into();
    assert!(!Detector::new(&cfg).load_snapshot(&other, restart));
}
