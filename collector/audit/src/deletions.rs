//! The receipt side of `meshlog verify` in a retention class store: which missing segments were
//! deleted by policy, and the leaf hashes kept of them.
//!
//! Retention (`meshlog_retention`) deletes whole segments of a class store, each after a signed
//! receipt is durable in the class's `receipts.log` and the segment's leaf hashes are kept in
//! `deleted/<seq>.leaves`. [`load`] reads both and decides, per receipt:
//!
//! - **invalid** (a finding): it does not verify with the given keys (altered, or signed by
//!   another key), is malformed, names another class, is not a deletion by policy (its newest
//!   record plus the class's days is not before the sweep), or is a second receipt for the same
//!   segment (the sweeper writes one per segment). Its segment, if missing, is then missing
//!   like any other;
//! - **pending** (a note): its segment is still there, a deletion interrupted between receipt
//!   and unlink, which the next sweep finishes;
//! - **deleted**: its segment is gone. Its leaves file must hash to the receipt's
//!   `leaves_sha256`, hold `frames` hashes and start and end with `first_leaf` and `last_leaf`;
//!   otherwise it is a finding and its leaves are unknown (the checkpoints over them cannot be
//!   checked). A receipt for a segment after the newest one is a finding too: retention never
//!   deletes the newest (active) segment, so the segments after it were removed.
//!
//! What the deletion must look like in the log (where the deleted leaves sit, the chain across
//! the gap, the deletion record) is checked by [`crate::verify`], which knows the frames.
//!
//! Without verifier keys nothing here can be authenticated: receipts are accepted on their form
//! alone (every other check still applies), each deletion is marked as not authenticated, and
//! the report says so: whoever can write the data directory can then forge a deletion.

use crate::scan::ScanError;
use crate::verify::report::{Finding, Kind};
use meshlog_format::receipt::{
    DELETED_DIR, LoggedNote, RECEIPTS_FILE, Receipt, ReceiptError, leaves_file_name,
    read_log_to_damage, verify_logged,
};
use meshlog_tlog::checkpoint::NoteError;
use meshlog_tlog::keys::VerifierKey;
use meshlog_tlog::merkle::Hash;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

/// A segment deleted under a valid receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// The segment's sequence number.
    pub seq: u64,
    /// The receipt.
    pub receipt: Receipt,
    /// The signed note, as logged (the deletion record must carry the same).
    pub note: String,
    /// Offset of its entry in `receipts.log`.
    pub offset: u64,
    /// Its signature was checked with a given key (false: no keys were given).
    pub authenticated: bool,
    /// The kept leaf hashes, when they match the receipt (`None`: missing or altered, a
    /// finding says which).
    pub leaves: Option<Vec<Hash>>,
}

/// What the class store's receipts say.
#[derive(Debug, Clone, Default)]
pub struct Receipts {
    /// Deleted segments by sequence number.
    pub deleted: BTreeMap<u64, Deleted>,
    /// Intact entries in `receipts.log`.
    pub entries: usize,
    /// Of which valid.
    pub valid: usize,
    /// Valid receipts whose segment is still there.
    pub pending: Vec<String>,
    /// Problems.
    pub findings: Vec<Finding>,
    /// Remarks that are not problems.
    pub notes: Vec<String>,
}

/// The text of a signed note (without its signatures), unverified.
fn note_text(note: &[u8]) -> Result<&str, ReceiptError> {
    let s = std::str::from_utf8(note).map_err(|_| NoteError::NotUtf8)?;
    let split = s.rfind("\n\n").ok_or(NoteError::NoSignatures)?;
    s.get(..split + 1)
        .ok_or(ReceiptError::Note(NoteError::NoSignatures))
}

/// One entry checked: with keys, its signature by one of them (another key may be the one after
/// a rotation); without, its form only. The receipt and whether it was authenticated.
fn check_entry(
    entry: &LoggedNote,
    class: &str,
    keys: &[VerifierKey],
) -> Result<(Receipt, bool), ReceiptError> {
    if keys.is_empty() {
        let r = Receipt::parse_body(note_text(&entry.note)?)?;
        if r.class != class {
            return Err(ReceiptError::Inconsistent(format!(
                "names class {:?} but is in the directory of class {class:?}",
                r.class
            )));
        }
        return Ok((r, false));
    }
    let mut result = Err(ReceiptError::Note(NoteError::NoSignatures));
    for k in keys {
        result = verify_logged(entry, Some(class), k);
        if !matches!(
            result,
            Err(ReceiptError::Note(NoteError::UnknownKey { .. }))
        ) {
            break;
        }
    }
    result.map(|r| (r, true))
}

/// Why a receipt is invalid, in words an auditor can act on.
fn why_invalid(e: &ReceiptError, keys: usize) -> String {
    match e {
        ReceiptError::Note(NoteError::UnknownKey { found, .. }) => format!(
            "it is not signed by the given key{}: it is signed by {} (forged, or signed with a \
             key that is not the collector's)",
            if keys == 1 { "" } else { "s" },
            if found.is_empty() {
                "no key".to_owned()
            } else {
                found.join(", ")
            }
        ),
        ReceiptError::Note(NoteError::BadSignature { key, .. }) => format!(
            "its signature by {key} does not verify: the receipt was altered after it was \
             signed, or forged"
        ),
        other => other.to_string(),
    }
}

/// Reads and checks the receipts of the class store in `store_dir` (class `class`), whose
/// segment files present are `present` (sequence numbers).
pub fn load(
    store_dir: &Path,
    class: &str,
    keys: &[VerifierKey],
    present: &BTreeSet<u64>,
) -> Result<Receipts, ScanError> {
    let path = store_dir.join(RECEIPTS_FILE);
    let (log, damage) = read_log_to_damage(&path)?;
    let mut out = Receipts {
        entries: log.entries.len(),
        ..Receipts::default()
    };
    if let Some((offset, reason)) = damage {
        out.findings.push(at(
            Kind::ReceiptLogDamaged,
            offset,
            format!(
                "{RECEIPTS_FILE} is damaged at offset {offset} ({reason}): not a torn append (a \
                 crash only leaves an incomplete last entry); the receipts after it cannot be \
                 read, so the segments they name count as missing"
            ),
        ));
    }
    if log.torn_bytes > 0 {
        out.notes.push(format!(
            "the last {} bytes of {RECEIPTS_FILE} (offset {}) are a receipt torn by a crash: its \
             segment was not deleted, and the next sweep cuts them",
            log.torn_bytes, log.good_len
        ));
    }
    let mut first_for: BTreeMap<String, u64> = BTreeMap::new();
    for entry in &log.entries {
        match valid_receipt(entry, class, keys, &mut first_for) {
            Ok((receipt, authenticated)) => {
                out.valid += 1;
                accept(store_dir, entry, receipt, authenticated, present, &mut out);
            }
            Err(f) => out.findings.push(*f),
        }
    }
    if !out.pending.is_empty() {
        out.notes.push(format!(
            "{} ha{} a deletion receipt but {} still there: a deletion interrupted after its \
             receipt, which the next sweep finishes",
            out.pending.join(", "),
            if out.pending.len() == 1 { "s" } else { "ve" },
            if out.pending.len() == 1 { "is" } else { "are" }
        ));
    }
    Ok(out)
}

/// A finding at `offset` in `receipts.log`.
fn at(kind: Kind, offset: u64, message: String) -> Finding {
    let mut f = Finding::new(kind, message);
    f.file = Some(RECEIPTS_FILE.into());
    f.offset = Some(offset);
    f
}

/// The entry's receipt and whether it was authenticated, if it is valid and the first for its
/// segment (`first_for`: segment → offset of its first valid receipt); else its finding.
fn valid_receipt(
    entry: &LoggedNote,
    class: &str,
    keys: &[VerifierKey],
    first_for: &mut BTreeMap<String, u64>,
) -> Result<(Receipt, bool), Box<Finding>> {
    let (receipt, authenticated) = check_entry(entry, class, keys).map_err(|e| {
        Box::new(at(
            Kind::ReceiptInvalid,
            entry.offset,
            format!(
                "the deletion receipt at offset {} is not valid: {}; the segment it names is \
                 not accepted as deleted by policy",
                entry.offset,
                why_invalid(&e, keys.len())
            ),
        ))
    })?;
    if let Some(first) = first_for.get(&receipt.segment) {
        return Err(Box::new(at(
            Kind::ReceiptInvalid,
            entry.offset,
            format!(
                "a second deletion receipt for {} (the first is at offset {first}): the sweeper \
                 writes one receipt per segment",
                receipt.segment
            ),
        )));
    }
    first_for.insert(receipt.segment.clone(), entry.offset);
    Ok((receipt, authenticated))
}

/// A valid receipt: its segment is still there (pending), after the newest one (a finding:
/// the segments after it were removed), or deleted by policy (with its kept leaves checked).
fn accept(
    store_dir: &Path,
    entry: &LoggedNote,
    receipt: Receipt,
    authenticated: bool,
    present: &BTreeSet<u64>,
    out: &mut Receipts,
) {
    let Some(seq) = receipt.segment_seq() else {
        return;
    };
    if present.contains(&seq) {
        out.pending.push(receipt.segment.clone());
        return;
    }
    if present.last().is_none_or(|&n| seq > n) {
        let mut f = Finding::new(
            Kind::SegmentMissing,
            format!(
                "{} has a deletion receipt ({RECEIPTS_FILE} offset {}), but no later segment \
                 exists: retention never deletes the newest segment, so the segments after it \
                 were removed",
                receipt.segment, entry.offset
            ),
        );
        f.file = Some(receipt.segment.clone());
        out.findings.push(f);
        return;
    }
    let leaves = check_leaves(store_dir, &receipt, &mut out.findings);
    out.deleted.insert(
        seq,
        Deleted {
            seq,
            note: String::from_utf8_lossy(&entry.note).into_owned(),
            receipt,
            offset: entry.offset,
            authenticated,
            leaves,
        },
    );
}

/// The kept leaf hashes of a deleted segment, if they are what its receipt says (else a finding).
fn check_leaves(store_dir: &Path, r: &Receipt, findings: &mut Vec<Finding>) -> Option<Vec<Hash>> {
    let name = format!("{DELETED_DIR}/{}", leaves_file_name(&r.segment));
    let path = store_dir.join(&name);
    let mut bad = |message: String| {
        let mut f = Finding::new(Kind::DeletedLeaves, message);
        f.file = Some(name.clone());
        findings.push(f);
        None
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return bad(format!(
                "{name} is missing: the leaf hashes of the {} frames of deleted segment {} are \
                 gone, so the checkpoints over them cannot be checked",
                r.frames, r.segment
            ));
        }
        Err(e) => return bad(format!("{name} cannot be read: {e}")),
    };
    let sha: Hash = Sha256::digest(&bytes).into();
    if sha != r.leaves_sha256 {
        return bad(format!(
            "{name} was altered: its SHA-256 is {}, the receipt of {} says {} (the leaf hashes \
             of the deleted frames are unknown, so the checkpoints over them cannot be checked)",
            hex::encode(sha),
            r.segment,
            hex::encode(r.leaves_sha256)
        ));
    }
    let count = bytes.len() / 32;
    if bytes.len() % 32 != 0 || count as u64 != r.frames {
        return bad(format!(
            "{name} is {} bytes, the receipt of {} says {} frames ({} bytes of leaf hashes)",
            bytes.len(),
            r.segment,
            r.frames,
            r.frames.saturating_mul(32)
        ));
    }
    let leaves: Vec<Hash> = bytes
        .chunks_exact(32)
        .filter_map(|c| Hash::try_from(c).ok())
        .collect();
    if leaves.first() != Some(&r.first_leaf) || leaves.last() != Some(&r.last_leaf) {
        return bad(format!(
            "{name} does not start with the receipt's first_leaf and end with its last_leaf"
        ));
    }
    Some(leaves)
}
