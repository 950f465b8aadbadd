//! `meshlog verify` on the real binary, one test per decision no other test produced (issue
//! 11, part 2): checkpoints that shrink or fork (`checkpoint_inconsistent`), a malformed but
//! signed checkpoint (`checkpoint_malformed`), a second receipt for one segment and a receipt
//! for a segment after the newest one, and the class check of receipts without keys. Each
//! starts from the signed, swept class stores of `retention.rs` (`swept`: class `short` with
//! checkpoints #1 to #4, the last over 6 leaves, and receipts for segments 1 and 2, which are
//! deleted) and asserts the exact finding kinds of `--json`.

use super::integrity::{kinds, the, verify_json};
use super::retention::{class_report, copy_of, signer, swept, write_receipts};
use super::*;
use meshlog_format::checkpoint_log::{self, CHECKPOINT_LOG_FILE, encode_entry};
use meshlog_format::receipt::{RECEIPTS_FILE, Receipt, read_log};
use meshlog_retention::classes::class_dir;
use meshlog_tlog::checkpoint::{Checkpoint, sign_note};

/// The notes of a class store's `checkpoints.log`, in order.
fn checkpoint_notes(store: &Path) -> Vec<Vec<u8>> {
    checkpoint_log::parse(&std::fs::read(store.join(CHECKPOINT_LOG_FILE)).unwrap())
        .into_iter()
        .map(|item| match item {
            checkpoint_log::Item::Entry(e) => e.note,
            other => panic!("{other:?}"),
        })
        .collect()
}

/// Appends a checkpoint note to a class store's `checkpoints.log`.
fn append_checkpoint(store: &Path, note: &[u8]) {
    let path = store.join(CHECKPOINT_LOG_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&encode_entry(note));
    std::fs::write(&path, bytes).unwrap();
}

/// `meshlog verify --json` of `data` without a key.
fn verify_json_without_key(data: &Path) -> (i32, Value) {
    let out = run(&["verify", "--json", "--data-dir", data.to_str().unwrap()]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

fn message(f: &Value) -> &str {
    f["message"].as_str().unwrap()
}

#[test]
fn a_checkpoint_smaller_than_the_one_before_it_is_inconsistent() {
    let (dir, _keys, public) = swept();
    let copy = copy_of(dir.path());
    let short = class_dir(copy.path(), "short");
    let notes = checkpoint_notes(&short);
    assert_eq!(notes.len(), 4);
    // Checkpoint #2 (4 leaves, genuine, its root still right) again after #4 (6 leaves).
    append_checkpoint(&short, &notes[1]);
    let (code, report) = verify_json(copy.path(), &public);
    assert_eq!(code, 1, "{report:#}");
    let r = class_report(&report, "short");
    assert_eq!(kinds(r), ["checkpoint_inconsistent"], "{r:#}");
    let f = the(r, "checkpoint_inconsistent");
    assert_eq!(f["checkpoint"], 5);
    assert!(message(f).contains("the log shrank"), "{f:#}");
    assert_eq!(class_report(&report, "default")["intact"], true);
}

#[test]
fn two_checkpoints_with_different_roots_for_one_size_are_a_fork() {
    let (dir, _keys, public) = swept();
    let copy = copy_of(dir.path());
    let short = class_dir(copy.path(), "short");
    // The class store's log is signed under `<origin>/short` by the collector's key.
    let class_key = signer().for_class("short").unwrap();
    let last = Checkpoint::verify(
        checkpoint_notes(&short).last().unwrap(),
        &class_key.verifier(),
    )
    .unwrap();
    assert_eq!(last.size, 6);
    // Signed by the collector's key, the same size, another root: a fork.
    let fork = Checkpoint {
        root: [7; 32],
        timestamp_unix_ns: last.timestamp_unix_ns + 1,
        ..last
    };
    append_checkpoint(&short, fork.sign(&class_key).unwrap().as_bytes());
    let (code, report) = verify_json(copy.path(), &public);
    assert_eq!(code, 1, "{report:#}");
    let r = class_report(&report, "short");
    assert_eq!(
        kinds(r),
        ["checkpoint_inconsistent", "checkpoint_root_mismatch"],
        "{r:#}"
    );
    let f = the(r, "checkpoint_inconsistent");
    assert_eq!(f["checkpoint"], 5);
    assert!(message(f).contains("the log forked"), "{f:#}");
    assert_eq!(the(r, "checkpoint_root_mismatch")["checkpoint"], 5);
}

#[test]
fn a_signed_note_that_is_no_checkpoint_is_malformed() {
    let (dir, _keys, public) = swept();
    let copy = copy_of(dir.path());
    let short = class_dir(copy.path(), "short");
    // Intact as stored and signed by the collector's key, but not a checkpoint.
    let note = sign_note("example.com/meshlog\nnot a size\n", &signer()).unwrap();
    append_checkpoint(&short, note.as_bytes());
    let (code, report) = verify_json(copy.path(), &public);
    assert_eq!(code, 1, "{report:#}");
    let r = class_report(&report, "short");
    assert_eq!(kinds(r), ["checkpoint_malformed"], "{r:#}");
    assert_eq!(the(r, "checkpoint_malformed")["checkpoint"], 5);
    // Without a key its form is still checked.
    let (code, report) = verify_json_without_key(copy.path());
    assert_eq!(code, 1, "{report:#}");
    let r = class_report(&report, "short");
    assert_eq!(kinds(r), ["checkpoint_malformed"], "{r:#}");
}

#[test]
fn a_second_receipt_for_one_segment_is_invalid() {
    let (dir, _keys, public) = swept();
    let copy = copy_of(dir.path());
    let path = class_dir(copy.path(), "short").join(RECEIPTS_FILE);
    let notes: Vec<Vec<u8>> = read_log(&path)
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.note)
        .collect();
    assert_eq!(notes.len(), 2);
    // Segment 1's receipt twice (both genuine).
    write_receipts(
        &path,
        &[notes[0].clone(), notes[1].clone(), notes[0].clone()],
    );
    let (code, report) = verify_json(copy.path(), &public);
    assert_eq!(code, 1, "{report:#}");
    let r = class_report(&report, "short");
    assert_eq!(kinds(r), ["receipt_invalid"], "{r:#}");
    let f = the(r, "receipt_invalid");
    assert!(
        message(f).contains("a second deletion receipt for 0000000000000001.seg"),
        "{f:#}"
    );
    assert_eq!(r["deleted_segments"], 2, "the first receipts still count");
}

#[test]
fn a_receipt_for_a_segment_after_the_newest_one_means_segments_were_removed() {
    let (dir, _keys, public) = swept();
    let copy = copy_of(dir.path());
    let short = class_dir(copy.path(), "short");
    let path = short.join(RECEIPTS_FILE);
    let first = Receipt::verify(
        &read_log(&path).unwrap().entries[0].note,
        &signer().verifier(),
    )
    .unwrap();
    // Signed by the collector's key, for segment 9: the store's newest is segment 4.
    let receipt = Receipt {
        segment: segment_file_name(9),
        ..first
    };
    meshlog_format::receipt::append(&path, &receipt.sign(&signer()).unwrap()).unwrap();
    let (code, report) = verify_json(copy.path(), &public);
    assert_eq!(code, 1, "{report:#}");
    let r = class_report(&report, "short");
    assert_eq!(kinds(r), ["segment_missing"], "{r:#}");
    let f = the(r, "segment_missing");
    assert_eq!(f["file"], "0000000000000009.seg");
    assert!(message(f).contains("no later segment exists"), "{f:#}");
}

#[test]
fn without_keys_a_receipt_in_another_class_s_directory_is_invalid() {
    let (dir, _keys, _public) = swept();
    let copy = copy_of(dir.path());
    let from = class_dir(copy.path(), "short").join(RECEIPTS_FILE);
    let note = read_log(&from).unwrap().entries[0].note.clone();
    // Class short's receipt for segment 1, moved into class default's receipts.log.
    write_receipts(
        &class_dir(copy.path(), "default").join(RECEIPTS_FILE),
        &[note],
    );
    let (code, report) = verify_json_without_key(copy.path());
    assert_eq!(code, 1, "{report:#}");
    let r = class_report(&report, "default");
    assert_eq!(kinds(r), ["receipt_invalid"], "{r:#}");
    let f = the(r, "receipt_invalid");
    assert!(
        message(f).contains("names class \"short\" but is in the directory of class \"default\""),
        "{f:#}"
    );
    assert_eq!(kinds(class_report(&report, "short")), Vec::<String>::new());
}
