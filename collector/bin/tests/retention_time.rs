//! Retention that senders and damage cannot steer (issue 11, part 3): expiry runs on the
//! collector's receive time, not the sender's observed time; a wall clock that jumps does not
//! delete early; an interrupted deletion is completed only under a receipt that verifies and
//! only while the segment is still expired and unheld; an unreadable configuration skips the
//! sweep; a damaged segment is never deleted. In-process with the injected clocks of
//! `retention.rs` (receive times through the pipeline's clock, sweeps at a given time), and the
//! real binary for the configuration.

use super::retention::{
    Classed, DAY, HOUR, T0, four_segments, hold, only_leaf, otlp_at, signer, write_keys,
    write_old_segment,
};
use super::*;
use meshlog_format::receipt::{RECEIPTS_FILE, Receipt, read_log, receipts};
use meshlog_retention::classes::class_dir;
use meshlog_retention::policy::HoldClasses;
use meshlog_tlog::keys::SignerKey;
use sha2::{Digest, Sha256};

fn seg_name(seq: u64) -> String {
    segment_file_name(seq)
}

/// A receipt for the one-frame, one-record segment `seq` of class `short`, its newest record at
/// `newest`, swept at `swept`, signed with `key`: well-formed, and true to the file's bytes.
fn receipt_for(c: &Classed, seq: u64, newest: u64, swept: u64, key: &SignerKey) -> String {
    let bytes = std::fs::read(c.seg_path("short", seq)).unwrap();
    let leaf = only_leaf(&bytes);
    let receipt = Receipt {
        class: "short".into(),
        segment: seg_name(seq),
        bytes: bytes.len() as u64,
        sha256: Sha256::digest(&bytes).into(),
        frames: 1,
        records: 1,
        leaves_sha256: Sha256::digest(leaf).into(),
        first_leaf: leaf,
        last_leaf: leaf,
        oldest_observed_unix_ns: newest,
        newest_observed_unix_ns: newest,
        retention_days: 30,
        swept_unix_ns: swept,
    };
    receipt.sign(key).unwrap()
}

fn append_receipt(c: &Classed, note: &str) {
    meshlog_format::receipt::append(&c.class("short").join(RECEIPTS_FILE), note).unwrap();
}

#[test]
fn a_hold_added_after_an_interrupted_deletion_blocks_completing_it() {
    let mut c = four_segments(true);
    let seg1 = c.seg_path("short", 1);
    let bytes = std::fs::read(&seg1).unwrap();
    let r = c.sweep(T0 + 30 * DAY + 12 * HOUR, &[]);
    assert_eq!(r.class("short").unwrap().deleted, [seg_name(1)]);
    // A crash after the receipt was durable but before the unlink: the segment is back.
    std::fs::write(&seg1, &bytes).unwrap();
    // Meanwhile a legal hold covers it: the interrupted deletion is not completed.
    let holds = [hold(
        "case-9",
        HoldClasses::Named(vec!["short".into()]),
        Some(T0 - HOUR),
        Some(T0 + HOUR),
    )];
    let r = c.sweep(T0 + 31 * DAY + 12 * HOUR, &holds);
    let short = r.class("short").unwrap();
    assert!(short.completed.is_empty(), "{short:?}");
    assert_eq!(short.held, [(seg_name(1), vec!["case-9".to_owned()])]);
    assert_eq!(short.deleted, [seg_name(2)], "segment 2 is not held");
    assert!(seg1.exists(), "held: kept");
    // Lifted: the next pass completes it, without a second receipt.
    let r = c.sweep(T0 + 31 * DAY + 13 * HOUR, &[]);
    assert_eq!(r.class("short").unwrap().completed, [seg_name(1)]);
    assert!(!seg1.exists());
    let got = receipts(&c.class("short"), &signer().verifier()).unwrap();
    assert_eq!(got.len(), 2, "one receipt each for segments 1 and 2");
    c.close();
}

#[test]
fn a_receipt_that_does_not_verify_or_names_an_unexpired_segment_is_not_acted_on() {
    let mut c = four_segments(true);
    let seg3 = c.seg_path("short", 3);
    // Segment 3 (newest record T0 + 10 d) is not expired at T0 + 31.5 d. A receipt for it,
    // true to its bytes and well-formed, but signed by another key: a forgery.
    let forger = SignerKey::from_seed("example.com/meshlog", &[7; 32]).unwrap();
    append_receipt(&c, &receipt_for(&c, 3, T0, T0 + 100 * DAY, &forger));
    let r = c.sweep(T0 + 31 * DAY + 12 * HOUR, &[]);
    let short = r.class("short").unwrap();
    assert!(short.completed.is_empty(), "{short:?}");
    assert_eq!(short.deleted, [seg_name(1), seg_name(2)], "{short:?}");
    assert_eq!(short.errors.len(), 1, "{short:?}");
    assert!(
        short.errors[0].to_string().contains("0000000000000003.seg")
            && short.errors[0].to_string().contains("is not valid"),
        "{short:?}"
    );
    assert!(seg3.exists(), "a forged receipt deletes nothing");
    c.close();

    // Signed by the real key, but the segment's own records say it is not expired (the
    // receipt claims an older newest record): the fresh read decides, and it is kept.
    let mut c = four_segments(true);
    append_receipt(&c, &receipt_for(&c, 3, T0, T0 + 100 * DAY, &signer()));
    let r = c.sweep(T0 + 31 * DAY + 12 * HOUR, &[]);
    let short = r.class("short").unwrap();
    assert!(short.completed.is_empty(), "{short:?}");
    assert!(
        short
            .errors
            .iter()
            .any(|e| e.to_string().contains("not expired now")),
        "{short:?}"
    );
    assert!(c.seg_path("short", 3).exists());
    c.close();
}

#[test]
fn a_segment_expires_one_nanosecond_after_exactly_days_past_its_newest_receive_time() {
    let mut c = Classed::new(true);
    c.post_one("checkout", &["x1"], T0);
    assert_eq!(
        c.sweep(T0 + 2 * HOUR, &[]).class("short").unwrap().rotated,
        Some(1)
    );
    // Exactly 30 days after it was received: kept.
    let r = c.sweep(T0 + 30 * DAY, &[]);
    let short = r.class("short").unwrap();
    assert!(short.deleted.is_empty(), "{short:?}");
    assert_eq!(short.kept, 1);
    // One nanosecond later: deleted.
    let r = c.sweep(T0 + 30 * DAY + 1, &[]);
    assert_eq!(r.class("short").unwrap().deleted, [seg_name(1)]);
    c.close();
}

#[test]
fn a_sender_s_past_or_future_observed_times_do_not_change_when_its_records_expire() {
    let mut c = Classed::new(true);
    // Received at T0, observed (says the sender) a year earlier.
    c.clock.set(T0);
    c.post(None, otlp_at(&[("checkout", &["past1"])], T0 - 365 * DAY));
    assert_eq!(
        c.sweep(T0 + 2 * HOUR, &[]).class("short").unwrap().rotated,
        Some(1)
    );
    // Received at T0 + 3 h, observed (says the sender) ten years later.
    c.clock.set(T0 + 3 * HOUR);
    c.post(
        None,
        otlp_at(&[("checkout", &["future1"])], T0 + 3650 * DAY),
    );
    let r = c.sweep(T0 + 5 * HOUR, &[]);
    let short = r.class("short").unwrap();
    assert_eq!(short.rotated, Some(2));
    assert!(short.deleted.is_empty(), "{short:?}");
    // A day later: by the observed times segment 1 would be long expired; it is not.
    let r = c.sweep(T0 + DAY, &[]);
    let short = r.class("short").unwrap();
    assert!(short.deleted.is_empty(), "{short:?}");
    assert_eq!(short.kept, 2);
    // 30 days after each was received, each goes, the future one too.
    let r = c.sweep(T0 + 30 * DAY + 2 * HOUR, &[]);
    assert_eq!(r.class("short").unwrap().deleted, [seg_name(1)]);
    let r = c.sweep(T0 + 30 * DAY + 4 * HOUR, &[]);
    assert_eq!(r.class("short").unwrap().deleted, [seg_name(2)]);
    assert!(c.ids("short").is_empty());
    // The receipts' time range is the receive times the expiry ran on.
    let got = receipts(&c.class("short"), &signer().verifier()).unwrap();
    let ranges: Vec<(u64, u64)> = got
        .iter()
        .map(|r| (r.oldest_observed_unix_ns, r.newest_observed_unix_ns))
        .collect();
    assert_eq!(ranges, [(T0, T0), (T0 + 3 * HOUR, T0 + 3 * HOUR)]);
    c.close();
}

#[test]
fn a_wall_clock_that_jumps_forward_does_not_delete_before_days_of_monotonic_time() {
    let mut c = Classed::new(true);
    c.post_one("checkout", &["x1"], T0);
    // Wall clock and monotonic clock (an arbitrary origin) agree: closed at T0 + 2 h.
    let m0 = 5 * DAY;
    let r = c.sweeper.sweep_at(T0 + 2 * HOUR, Some(m0 + 2 * HOUR), &[]);
    assert_eq!(r.class("short").unwrap().rotated, Some(1));
    // The wall clock jumps ten years ahead, one hour later by the monotonic clock.
    let jump = 3650 * DAY;
    let r = c
        .sweeper
        .sweep_at(T0 + jump + 3 * HOUR, Some(m0 + 3 * HOUR), &[]);
    let short = r.class("short").unwrap();
    assert!(short.deleted.is_empty(), "{short:?}");
    assert_eq!(short.kept, 1);
    // The jump stays; 29 days pass on the monotonic clock: still kept.
    let r = c
        .sweeper
        .sweep_at(T0 + jump + 29 * DAY, Some(m0 + 29 * DAY), &[]);
    assert!(r.class("short").unwrap().deleted.is_empty(), "{r:?}");
    // 30 days and an hour after it was received, by the monotonic clock: deleted.
    let r = c
        .sweeper
        .sweep_at(T0 + jump + 30 * DAY + HOUR, Some(m0 + 30 * DAY + HOUR), &[]);
    assert_eq!(r.class("short").unwrap().deleted, [seg_name(1)], "{r:?}");
    c.close();
}

#[test]
fn a_damaged_segment_is_never_deleted() {
    let mut c = Classed::new(true);
    // Segments 1 and 2 of two frames each, closed; 3 active.
    for (seq, day, ids) in [(1, 0, ["a1", "a2"]), (2, 1, ["b1", "b2"])] {
        c.post_one("checkout", &ids[..1], T0 + day * DAY);
        c.post_one("checkout", &ids[1..], T0 + day * DAY + 60_000_000_000);
        let r = c.sweep(T0 + day * DAY + 2 * HOUR, &[]);
        assert_eq!(r.class("short").unwrap().rotated, Some(seq));
    }
    c.post_one("checkout", &["c1"], T0 + 40 * DAY);
    // Segment 1: a flipped byte in its second frame's payload; segment 2: its last bytes cut
    // (a torn tail, which in a closed segment is damage too). Both are expired from T0 + 31 d;
    // their first frames are intact.
    let seg1 = c.seg_path("short", 1);
    let mut b = std::fs::read(&seg1).unwrap();
    let last = b.len() - 1;
    b[last] ^= 0x40;
    std::fs::write(&seg1, &b).unwrap();
    let seg2 = c.seg_path("short", 2);
    let b = std::fs::read(&seg2).unwrap();
    std::fs::write(&seg2, &b[..b.len() - 3]).unwrap();
    for now in [T0 + 31 * DAY + 12 * HOUR, T0 + 400 * DAY] {
        let r = c.sweep(now, &[]);
        let short = r.class("short").unwrap();
        assert!(
            !short
                .deleted
                .iter()
                .any(|s| *s == seg_name(1) || *s == seg_name(2)),
            "{short:?}"
        );
        assert!(seg1.exists() && seg2.exists());
        assert!(short.errors.len() >= 2, "{short:?}");
    }
    let got = receipts(&c.class("short"), &signer().verifier()).unwrap();
    assert!(
        got.iter()
            .all(|r| r.segment != seg_name(1) && r.segment != seg_name(2)),
        "no receipt for a damaged segment"
    );
    c.close();
}

#[test]
fn an_unreadable_configuration_skips_the_sweep_and_deletes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (signing, _) = write_keys(tmp.path());
    let cfg = tmp.path().join("meshlog.toml");
    let text = format!(
        "data_dir = {:?}\n[integrity]\nsigning_key = {:?}\n\
         [retention]\ndefault_days = 400\nsweep_interval_s = 1\nsegment_max_age_s = 60\n\
         [[retention.classes]]\nname = \"short\"\ndays = 1\n\
         match = {{ \"service.name\" = \"checkout\" }}\n",
        data.to_str().unwrap(),
        signing.to_str().unwrap()
    );
    let held = format!(
        "{text}[[retention.holds]]\nname = \"case-1\"\nreason = \"litigation\"\n\
         classes = [\"short\"]\n"
    );
    std::fs::write(&cfg, &held).unwrap();
    // Expired the moment serve starts (dated 2020, written before receive times).
    write_old_segment(&data, &cfg, "short", "old1", 1_600_000_000 * 1_000_000_000);
    let seg1 = class_dir(&data, "short")
        .join(SEGMENTS_DIR)
        .join(segment_file_name(1));
    let mut serve = Proc::spawn(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    serve.wait_line("legal holds keep expired segments");
    // The file no longer loads (the hold would be lifted, if it did): passes are skipped.
    std::fs::write(
        &cfg,
        format!("{text}[[retention.holds]\nname = \"case-1\"\n"),
    )
    .unwrap();
    serve.wait_line("retention sweep skipped");
    // A few more one-second intervals.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        seg1.exists(),
        "nothing is deleted while the holds are unknown"
    );
    assert!(!class_dir(&data, "short").join(RECEIPTS_FILE).exists());
    // Readable again, without the hold: the next pass deletes it.
    std::fs::write(&cfg, &text).unwrap();
    serve.wait_line("deleted an expired segment");
    assert!(!seg1.exists());
    assert_eq!(serve.terminate().code(), Some(0));
    let log = read_log(&class_dir(&data, "short").join(RECEIPTS_FILE)).unwrap();
    assert_eq!(log.entries.len(), 1);
}

#[test]
fn an_unreadable_retention_clock_stops_deletion_in_its_class() {
    use meshlog_retention::sweep::CLOCK_FILE;
    let mut c = four_segments(true);
    // Read at start (a running sweeper keeps its clock in memory and rewrites the file).
    std::fs::write(c.class("short").join(CLOCK_FILE), b"{not json").unwrap();
    c.restart();
    let r = c.sweep(T0 + 31 * DAY + 12 * HOUR, &[]);
    let short = r.class("short").unwrap();
    assert!(short.deleted.is_empty(), "{short:?}");
    assert!(
        short.errors[0]
            .to_string()
            .contains("nothing is deleted in this class until it is fixed"),
        "{short:?}"
    );
    assert_eq!(c.segments("short"), [1, 2, 3, 4]);
    // Removed (and started again): the next pass believes the wall clock once, and deletes
    // what is expired.
    std::fs::remove_file(c.class("short").join(CLOCK_FILE)).unwrap();
    c.restart();
    let r = c.sweep(T0 + 31 * DAY + 13 * HOUR, &[]);
    assert_eq!(
        r.class("short").unwrap().deleted,
        [seg_name(1), seg_name(2)]
    );
    c.close();
}
