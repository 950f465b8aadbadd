//! Retention deletions as detection input: the `integrity` rule judges each
//! `meshlog.retention.deletion` record (as the sweeper appends it, with its signed receipt)
//! against the retention policy, and fires only for one outside it.

use crate::traffic::*;
use meshlog_detect::{Detector, RetentionHold, RetentionPolicy, State, Transition};
use meshlog_format::receipt::Receipt;
use meshlog_tlog::checkpoint::sign_note;
use meshlog_tlog::keys::SignerKey;

const DAY: u64 = 86_400 * S;

fn key() -> SignerKey {
    SignerKey::from_seed("detect.test", &[7; 32]).unwrap()
}

fn receipt(class: &str, newest: u64, days: u32, swept: u64) -> Receipt {
    Receipt {
        class: class.into(),
        segment: "0000000000000003.seg".into(),
        bytes: 4096,
        sha256: [1; 32],
        frames: 2,
        records: 40,
        leaves_sha256: [2; 32],
        first_leaf: [3; 32],
        last_leaf: [4; 32],
        oldest_observed_unix_ns: newest - 3600 * S,
        newest_observed_unix_ns: newest,
        retention_days: days,
        swept_unix_ns: swept,
    }
}

/// The record the sweeper appends for `r`, signed with `key` (the body signed as it is, even
/// when it is not a deletion by policy, as a faulty sweeper would).
fn deletion(r: &Receipt, key: &SignerKey) -> meshlog_detect::Record {
    r.record(&sign_note(&r.body(), key).unwrap())
}

fn policy(verify: bool) -> RetentionPolicy {
    RetentionPolicy {
        classes: vec![("short".into(), 7), ("default".into(), 30)],
        holds: vec![RetentionHold {
            name: "case-42".into(),
            classes: Some(vec!["default".into()]),
            from_unix_ns: Some(T0 - 100 * DAY),
            until_unix_ns: Some(T0 - 90 * DAY),
        }],
        verifier: verify.then(|| key().verifier()),
    }
}

/// Feeds `rec` at `at` to a detector with only `integrity` and `policy`; the transitions.
fn judge(policy: Option<&RetentionPolicy>, rec: &meshlog_detect::Record) -> Vec<Transition> {
    let mut d = Detector::new(&only(&["integrity"]));
    if let Some(p) = policy {
        d.set_retention_policy(p);
    }
    let _ = d.tick(T0);
    let mut out = d.observe(rec, T0 + S);
    // The same record as the store keeps it, read in place: the same answer.
    let mut d2 = Detector::new(&only(&["integrity"]));
    if let Some(p) = policy {
        d2.set_retention_policy(p);
    }
    let _ = d2.tick(T0);
    let line = serde_json::to_vec(rec).unwrap();
    let out2 = d2.observe_json(&line, T0 + S).unwrap();
    assert_eq!(out, out2);
    out.retain(|t| t.state == State::Firing);
    out
}

#[test]
fn a_deletion_by_policy_raises_nothing() {
    let k = key();
    // Expired in its class (7 days), outside the hold's range: fine, verified or not.
    let ok = deletion(&receipt("short", T0 - 10 * DAY, 7, T0), &k);
    for verify in [false, true] {
        assert!(judge(Some(&policy(verify)), &ok).is_empty(), "{verify}");
    }
    // Not judged before the collector sets a policy.
    let young = deletion(&receipt("default", T0 - DAY, 1, T0), &k);
    assert!(judge(None, &young).is_empty());
}

#[test]
fn a_deletion_of_records_younger_than_the_class_keeps_fires_integrity() {
    let k = key();
    // 10 days old in a class that keeps 30 (the sweeper believed 7).
    let young = deletion(&receipt("default", T0 - 10 * DAY, 7, T0), &k);
    for verify in [false, true] {
        let ts = judge(Some(&policy(verify)), &young);
        assert_eq!(ts.len(), 1, "{ts:?}");
        assert_eq!(ts[0].rule, "integrity");
        assert_eq!(ts[0].group.get("check"), Some("retention"));
        assert!(ts[0].summary.contains("keeps 30 days"), "{}", ts[0].summary);
        assert!(
            ts[0].summary.contains("0000000000000003.seg"),
            "{}",
            ts[0].summary
        );
        assert!(
            ts[0]
                .query_command()
                .contains("--where event_name=meshlog.retention.deletion"),
            "{}",
            ts[0].query_command()
        );
    }
    // Signed, but before it expired by its own days: the receipt says so.
    let early = deletion(&receipt("short", T0 - DAY, 7, T0), &k);
    let ts = judge(Some(&policy(true)), &early);
    assert_eq!(ts.len(), 1, "{ts:?}");
    assert!(
        ts[0].summary.contains("no deletion by policy"),
        "{}",
        ts[0].summary
    );
}

#[test]
fn a_deletion_under_a_legal_hold_or_of_an_unknown_class_fires_integrity() {
    let k = key();
    let held = deletion(&receipt("default", T0 - 95 * DAY, 30, T0), &k);
    let ts = judge(Some(&policy(true)), &held);
    assert_eq!(ts.len(), 1, "{ts:?}");
    assert!(
        ts[0].summary.contains("legal hold case-42"),
        "{}",
        ts[0].summary
    );
    // The hold names `default` only: the same range in `short` is not held.
    let other = deletion(&receipt("short", T0 - 95 * DAY, 7, T0), &k);
    assert!(judge(Some(&policy(true)), &other).is_empty());
    let unknown = deletion(&receipt("audit", T0 - 95 * DAY, 7, T0), &k);
    let ts = judge(Some(&policy(true)), &unknown);
    assert_eq!(ts.len(), 1, "{ts:?}");
    assert!(
        ts[0].summary.contains("no class audit"),
        "{}",
        ts[0].summary
    );
}

#[test]
fn a_deletion_record_not_signed_with_the_collectors_key_is_not_judged() {
    let stranger = SignerKey::from_seed("detect.test", &[9; 32]).unwrap();
    let forged = deletion(&receipt("default", T0 - DAY, 7, T0), &stranger);
    assert!(judge(Some(&policy(true)), &forged).is_empty());
    let mut unsigned = forged.clone();
    unsigned.remove("meshlog.retention.receipt");
    assert!(judge(Some(&policy(true)), &unsigned).is_empty());
    // Without a key (a collector that cannot check), the record's own fields are judged.
    assert_eq!(judge(Some(&policy(false)), &unsigned).len(), 1);
}

#[test]
fn a_retention_alert_resolves_after_resolve_after_s_without_another() {
    let mut cfg = only(&["integrity"]);
    cfg.integrity.common.resolve_after_s = 600;
    let mut d = Detector::new(&cfg);
    d.set_retention_policy(&policy(true));
    let _ = d.tick(T0);
    let young = deletion(&receipt("default", T0 - 10 * DAY, 7, T0), &key());
    assert_eq!(d.observe(&young, T0 + S).len(), 1);
    // A second one while firing raises nothing new and restarts the delay.
    assert!(d.observe(&young, T0 + 300 * S).is_empty());
    let mut ts = Vec::new();
    for s in 1..=1000 {
        ts.extend(
            d.tick(T0 + s * S)
                .into_iter()
                .filter(|t| t.group.get("check") == Some("retention")),
        );
    }
    assert_eq!(ts.len(), 1, "{ts:?}");
    assert_eq!(ts[0].state, State::Resolved);
    assert_eq!(ts[0].at_ns, T0 + 900 * S);
}
