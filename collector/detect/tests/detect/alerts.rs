//! Alerts and triage as records: the stored form, the OTLP form, and reading an alert back.

use crate::traffic::*;
use meshlog_detect::alert::{
    self, Triage, TriageAction, alert_record, alert_request, parse_alert, triage_record,
    triage_request,
};
use meshlog_detect::{Detector, State};
use opentelemetry_proto::tonic::common::v1::any_value;
use serde_json::Value;

fn burst() -> Vec<meshlog_detect::Transition> {
    let mut cfg = only(&["auth_failure_burst"]);
    cfg.auth_failure_burst.threshold = 2;
    let mut d = Detector::new(&cfg);
    let mut ts = Vec::new();
    for i in 0..2 {
        let r = Rec::new(T0 + i * S, "frontend", 401)
            .principal("spiffe://x/sa/o'brien")
            .0;
        ts.extend(d.observe(&r, T0 + i * S));
    }
    for s in 2..200 {
        ts.extend(d.tick(T0 + s * S));
    }
    ts
}

#[test]
fn alert_record_carries_rule_group_counts_window_threshold_state_and_query() {
    let ts = burst();
    assert_eq!(ts.len(), 2);
    let r = alert_record(&ts[0]);
    let s = |k: &str| {
        r.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(s("event_name"), "meshlog.alert");
    assert_eq!(s("resource.service.name"), "meshlog-collector");
    assert_eq!(s(alert::RULE), "auth_failure_burst");
    assert_eq!(s(alert::STATE), "firing");
    assert_eq!(s(alert::GROUP), "principal=spiffe://x/sa/o'brien");
    assert_eq!(s("meshlog.alert.group.principal"), "spiffe://x/sa/o'brien");
    assert_eq!(r[alert::COUNT], 2.0);
    assert_eq!(r[alert::THRESHOLD], 2.0);
    assert_eq!(r[alert::WINDOW_S], 60);
    assert_eq!(r["severity_number"], 13);
    assert_eq!(
        s(alert::QUERY),
        "meshlog query --since 2026-11-30T23:59:01Z --until 2026-12-01T00:00:01Z --status 401,403 \
         --principal 'spiffe://x/sa/o'\\''brien'"
    );
    let resolved = alert_record(&ts[1]);
    assert_eq!(resolved[alert::STATE], "resolved");
    assert_eq!(resolved[alert::ID], r[alert::ID]);
    assert_eq!(resolved["severity_number"], 9);
}

#[test]
fn alert_reads_back_as_it_was_written() {
    for t in burst() {
        let back = parse_alert(&alert_record(&t)).unwrap().transition;
        assert_eq!(back, t);
    }
    let access = Rec::new(T0, "frontend", 200).0;
    assert!(parse_alert(&access).is_none());
}

#[test]
fn otlp_request_is_one_record_like_the_stored_form() {
    let t = &burst()[0];
    let req = alert_request(t);
    let rl = &req.resource_logs[0];
    let lr = &rl.scope_logs[0].log_records[0];
    assert_eq!(lr.event_name, "meshlog.alert");
    assert_eq!(lr.time_unix_nano, t.at_ns);
    assert_eq!(
        rl.scope_logs[0].scope.as_ref().unwrap().name,
        "meshlog.detect"
    );
    let flat = alert_record(t);
    assert_eq!(
        lr.attributes.len(),
        flat.keys()
            .filter(|k| k.starts_with("meshlog.alert"))
            .count()
    );
    for kv in &lr.attributes {
        let v = match kv.value.as_ref().unwrap().value.as_ref().unwrap() {
            any_value::Value::StringValue(s) => Value::from(s.as_str()),
            any_value::Value::IntValue(i) => Value::from(*i),
            any_value::Value::DoubleValue(d) => Value::from(*d),
            other => panic!("{other:?}"),
        };
        assert_eq!(flat[&kv.key], v, "{}", kv.key);
    }
}

#[test]
fn triage_records_name_the_alert_principal_and_note() {
    let t = &burst()[0];
    let tr = Triage {
        alert_id: t.id.clone(),
        rule: t.rule.clone(),
        group: t.group.clone(),
        action: TriageAction::Acknowledge,
        principal: "spiffe://cluster.local/ns/sec/sa/oncall".into(),
        note: "password spraying from one partner; blocked at the edge".into(),
        at_ns: T0 + 300 * S,
    };
    let r = triage_record(&tr);
    assert_eq!(r["event_name"], "meshlog.alert.triage");
    assert_eq!(r[alert::ID], Value::from(t.id.as_str()));
    assert_eq!(r[alert::TRIAGE_ACTION], "acknowledge");
    assert_eq!(
        r[alert::TRIAGE_PRINCIPAL],
        "spiffe://cluster.local/ns/sec/sa/oncall"
    );
    assert!(r[alert::TRIAGE_NOTE].as_str().unwrap().contains("blocked"));
    let req = triage_request(&tr);
    assert_eq!(
        req.resource_logs[0].scope_logs[0].log_records[0].event_name,
        "meshlog.alert.triage"
    );
    // Neither alerts nor triage records are evaluated by the rules or read as alerts.
    assert!(parse_alert(&r).is_none());
    let mut d = Detector::new(&meshlog_detect::DetectConfig::default());
    assert!(d.observe(&r, T0).is_empty());
    assert!(d.observe(&alert_record(t), T0).is_empty());
    assert_eq!(t.state, State::Firing);
}

#[test]
fn history_folds_alerts_and_triage_with_time_to_acknowledge() {
    use meshlog_detect::history::AlertHistory;
    let ts = burst();
    let t = &ts[0];
    let ack = Triage {
        alert_id: t.id.clone(),
        rule: t.rule.clone(),
        group: t.group.clone(),
        action: TriageAction::Acknowledge,
        principal: "oncall".into(),
        note: "looking".into(),
        at_ns: t.at_ns + 90 * S,
    };
    let mut h = AlertHistory::new();
    h.add(&Rec::new(T0, "frontend", 200).0);
    h.add(&alert_record(t));
    assert!(h.alerts()[0].is_firing());
    h.add(&triage_record(&ack));
    h.add(&alert_record(&ts[1]));
    let mut stray = ack.clone();
    stray.alert_id = "ffffffffffffffff".into();
    h.add(&triage_record(&stray));
    let a = h.alerts();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].firing.id, t.id);
    assert_eq!(a[0].resolved_ns, Some(ts[1].at_ns));
    assert!(!a[0].is_firing());
    assert_eq!(a[0].acknowledged().unwrap().principal, "oncall");
    assert_eq!(a[0].time_to_acknowledge_ns(), Some(90 * S));
    assert_eq!(h.orphan_triage().len(), 1);
}
