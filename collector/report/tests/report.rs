//! meshlog-report over a data directory built by hand: retention's signed deletion receipts are
//! reported in their period with their notes, a receipt signed by another key is counted as
//! invalid, legal holds and the policy come from the settings, and the HTML shows them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use meshlog_format::receipt::{self, Receipt};
use meshlog_report::settings::Settings;
use meshlog_report::{Request, gather};
use meshlog_retention::policy::{Hold, HoldClasses, RetentionConfig};
use meshlog_tlog::keys::SignerKey;

const DAY: u64 = 86_400_000_000_000;

fn receipt(class: &str, seq: u64, swept: u64) -> Receipt {
    Receipt {
        class: class.into(),
        segment: format!("{seq:016}.seg"),
        bytes: 4096,
        sha256: [seq as u8; 32],
        frames: 3,
        records: 30 + seq,
        leaves_sha256: [1; 32],
        first_leaf: [2; 32],
        last_leaf: [3; 32],
        oldest_observed_unix_ns: swept - 40 * DAY,
        newest_observed_unix_ns: swept - 31 * DAY,
        retention_days: 30,
        swept_unix_ns: swept,
    }
}

#[test]
fn deletions_in_the_period_are_reported_with_their_receipts_and_forged_ones_counted() {
    let dir = tempfile::tempdir().unwrap();
    let key = SignerKey::generate("report.test").unwrap();
    let forger = SignerKey::generate("report.test").unwrap();
    let class = dir.path().join("classes/short");
    std::fs::create_dir_all(&class).unwrap();
    let log = class.join(receipt::RECEIPTS_FILE);
    let from = 1_767_225_600_000_000_000u64; // 2026-01-01
    let to = from + 31 * DAY;
    // Before, inside (twice), after the period; and one forged inside it.
    for (seq, swept, k) in [
        (1, from - DAY, &key),
        (2, from + DAY, &key),
        (3, from + 2 * DAY, &key),
        (4, to + DAY, &key),
        (5, from + 3 * DAY, &forger),
    ] {
        let note = receipt("short", seq, swept).sign(k).unwrap();
        receipt::append(&log, &note).unwrap();
    }
    let settings = Settings {
        retention: Some(RetentionConfig {
            default_days: 365,
            holds: vec![Hold {
                name: "case-42".into(),
                reason: "litigation hold, ticket LEGAL-42".into(),
                classes: HoldClasses::All,
                from_unix_ns: Some(from),
                until_unix_ns: None,
            }],
            ..RetentionConfig::default()
        }),
        ..Settings::default()
    };
    let verifier = key.verifier();
    let r = gather(&Request {
        data_dir: dir.path(),
        data_keys: None,
        from_ns: from,
        to_ns: to,
        tenant: None,
        now_ns: to + 2 * DAY,
        verifier: &verifier,
        settings: &settings,
    })
    .unwrap();
    let ret = &r.retention;
    let segs: Vec<&str> = ret.deletions.iter().map(|d| d.segment.as_str()).collect();
    assert_eq!(segs, ["0000000000000002.seg", "0000000000000003.seg"]);
    assert_eq!(ret.deletions[0].records, 32);
    assert!(
        ret.deletions[0]
            .receipt
            .starts_with("meshlog.retention.deletion v1\n")
    );
    assert_eq!(ret.invalid_receipts, 1, "the forged receipt");
    assert!(!ret.evidence.complete);
    assert_eq!(ret.evidence.rows, 2);
    assert_eq!(ret.holds.len(), 1);
    assert_eq!(ret.holds[0].classes, "all");
    assert_eq!(ret.policy.as_ref().unwrap().default_days, 365);
    let html = meshlog_report::html::render(&r);
    for s in [
        "0000000000000002.seg",
        "case-42",
        "LEGAL-42",
        "1 deletion receipts do NOT verify",
    ] {
        assert!(html.contains(s), "{s} not in the HTML");
    }
    // Not a real class store (receipts without segments or kept leaves): verify says so.
    assert!(!r.integrity.intact && !r.integrity.findings.is_empty());
}
