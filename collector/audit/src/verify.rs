//! `meshlog verify`: recompute everything from the bytes on disk and name every place where
//! the store is not what the writer wrote and the checkpoints signed.
//!
//! What is checked, in order:
//!
//! 1. **Every byte of every segment** ([`crate::scan`]): each frame's header and payload CRC;
//!    bytes that are no intact frame are reported (damaged, a torn tail, a segment cut inside
//!    a frame), with the leaves that should have been there.
//! 2. **The hash chain**: each frame names its leaf index and its predecessor's leaf hash, so
//!    the frames can be put in order without trusting the file order. From that: frames
//!    missing (removed, a segment cut at a frame boundary or a segment file gone: the
//!    segment numbers have a gap), stored twice (identical bytes), out of order, inserted (no
//!    chain entry, or a leaf index another frame holds and the next leaf does not refer to), and
//!    modified (the frame no longer hashes to what the next leaf recorded, even with its CRCs
//!    recomputed).
//! 3. **The Merkle tree** of the frames as stored, and **every checkpoint** in
//!    `checkpoints.log`: its signature (with the verifier keys given: never a key from the data
//!    directory, which whoever could edit the store could also replace), its root against the
//!    recomputed root at its size (a rewritten tail, chain and all, shows here), whether the
//!    store still has as many leaves as it signed (a truncated store), and that successive
//!    checkpoints never shrink or fork (same size, another root). When every root matches the
//!    recomputed tree, successive checkpoints are consistent by construction (each is a prefix
//!    of the same tree).
//!
//! 4. **Deletions by policy**, in a retention class store ([`verify_store`] with a class;
//!    [`verify_data_dir`] checks the data directory's own store, if it has segments, and every
//!    `classes/<name>/`). A missing segment is accepted exactly when a valid receipt in the
//!    class's `receipts.log` names it ([`crate::deletions`]: signed by a given key, well-formed,
//!    its own class, a deletion by policy, one per segment); every other missing segment is
//!    flagged as before. For each run of consecutive deleted segments: the first frame after it
//!    must name the last receipt's `last_leaf` as its predecessor, and its leaf index must skip
//!    exactly the receipts' `frames` (counted from the frame before the run, or from leaf 0
//!    when the run starts the log). The kept `deleted/<seq>.leaves` (checked against
//!    `leaves_sha256`) take the deleted segments' place in the recomputed tree, so checkpoints
//!    signed before a deletion still verify; when a leaves file is missing or altered, the roots
//!    of the checkpoints over it are not checked (a note lists them) and the file is a finding.
//!    Each deletion's receipt must also be in the store as a `meshlog.retention.deletion`
//!    record (found by its fixed batch id; when the payload can be read, with the same note;
//!    a sealed payload is matched by batch id, as verify never opens payloads), or have been in
//!    a segment deleted later, whose receipt's observed-time range covers the sweep time. A
//!    missing record is a finding (the store is not intact: the sweeper stores it before it
//!    deletes), but not fatal to the deletion itself: the receipt alone shows the deletion was
//!    by policy, so the segment is not reported missing as well. Without verifier keys receipts
//!    are checked for form only: the deletions are accepted, each marked not authenticated, and
//!    a note says so. The report lists every deletion: class, segment, leaves, counts, rule.
//!
//! A finding names the file (segment, `checkpoints.log`, `receipts.log` or
//! `deleted/<seq>.leaves`), the byte offset, the leaf index (or range) and, for a frame, its
//! record count, batch id and the records' ids. Findings are evidence, not repairs: nothing is
//! changed.

use crate::deletions::{self, Deleted};
use crate::scan::{self, Garbage, Item, ScanError, ScannedFrame, SegmentInfo};
use meshlog_format::checkpoint_log::{self, CHECKPOINT_LOG_FILE, Item as LogItem};
use meshlog_format::frame::SEGMENT_HEADER_LEN;
use meshlog_format::receipt::{DELETED_DIR, DELETION_EVENT, RECEIPTS_FILE};
use meshlog_tlog::checkpoint::{Checkpoint, CheckpointError, NoteError};
use meshlog_tlog::keys::VerifierKey;
use meshlog_tlog::merkle::{CompactTree, Hash, empty_root};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

/// What kind of problem a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A frame changed after it was written (CRC mismatch, or its hash is not what the next
    /// leaf recorded).
    Modified,
    /// Bytes inside a segment that are no intact frame (e.g. a damaged frame header).
    Damaged,
    /// Leaves missing from the middle of the log.
    Removed,
    /// A frame stored twice.
    Duplicated,
    /// Frames stored out of leaf order.
    Reordered,
    /// A frame that is not one of the log's leaves.
    Inserted,
    /// A segment cut short (inside a frame or at a frame boundary), or fewer leaves than a
    /// checkpoint signed.
    Truncated,
    /// A segment file is missing (a gap in the segment numbers).
    SegmentMissing,
    /// An incomplete frame at the end of the newest segment: a crash tail not yet cut.
    TornTail,
    /// The checkpoint log has bytes that are no intact entry.
    CheckpointLogDamaged,
    /// A checkpoint that is not a well-formed signed checkpoint.
    CheckpointMalformed,
    /// A checkpoint whose signature by the given key does not verify: altered or forged.
    CheckpointBadSignature,
    /// A checkpoint signed by none of the given keys.
    CheckpointWrongKey,
    /// A checkpoint whose root is not the recomputed root at its size.
    CheckpointRootMismatch,
    /// Two checkpoints that cannot both be true: the log shrank, or forked.
    CheckpointInconsistent,
    /// Verifier keys were given but the store has no checkpoint they verify.
    NoCheckpoints,
    /// `receipts.log` has bytes that are no intact entry (not a torn last append).
    ReceiptLogDamaged,
    /// A deletion receipt that is not valid: altered, signed by another key, malformed, for
    /// another class, not a deletion by policy, or a second one for a segment.
    ReceiptInvalid,
    /// The kept leaf hashes of a deleted segment (`deleted/<seq>.leaves`) are missing or not
    /// what its receipt says.
    DeletedLeaves,
    /// The frames around deleted segments do not fit their receipts: the frame after the gap
    /// does not name the last deleted leaf, or the leaf indexes do not skip the deleted frames.
    DeletionMismatch,
    /// A deletion whose receipt is not also stored as a `meshlog.retention.deletion` record.
    DeletionRecordMissing,
}

impl Kind {
    /// The name used in both outputs.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Modified => "modified",
            Kind::Damaged => "damaged",
            Kind::Removed => "removed",
            Kind::Duplicated => "duplicated",
            Kind::Reordered => "reordered",
            Kind::Inserted => "inserted",
            Kind::Truncated => "truncated",
            Kind::SegmentMissing => "segment_missing",
            Kind::TornTail => "torn_tail",
            Kind::CheckpointLogDamaged => "checkpoint_log_damaged",
            Kind::CheckpointMalformed => "checkpoint_malformed",
            Kind::CheckpointBadSignature => "checkpoint_bad_signature",
            Kind::CheckpointWrongKey => "checkpoint_wrong_key",
            Kind::CheckpointRootMismatch => "checkpoint_root_mismatch",
            Kind::CheckpointInconsistent => "checkpoint_inconsistent",
            Kind::NoCheckpoints => "no_checkpoints",
            Kind::ReceiptLogDamaged => "receipt_log_damaged",
            Kind::ReceiptInvalid => "receipt_invalid",
            Kind::DeletedLeaves => "deleted_leaves",
            Kind::DeletionMismatch => "deletion_mismatch",
            Kind::DeletionRecordMissing => "deletion_record_missing",
        }
    }
}

/// One problem, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind.
    pub kind: Kind,
    /// The file, relative to the store directory: a segment file name, `checkpoints.log`,
    /// `receipts.log` or `deleted/<seq>.leaves`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Byte offset in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// End of the byte range concerned (exclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<u64>,
    /// The leaf index of the frame concerned (as its chain entry says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf: Option<u64>,
    /// The leaves concerned, first and last (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaves: Option<[u64; 2]>,
    /// The checkpoint concerned: its number in `checkpoints.log`, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<usize>,
    /// Records in the frame concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<u32>,
    /// The frame's batch id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Which records the frame holds (VM id and sequence numbers, or request ids), when its
    /// payload can be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_ids: Option<String>,
    /// What is wrong, in words.
    pub message: String,
}

impl Finding {
    /// A finding with only its kind and message.
    pub(crate) fn new(kind: Kind, message: String) -> Self {
        Finding {
            kind,
            file: None,
            offset: None,
            end: None,
            leaf: None,
            leaves: None,
            checkpoint: None,
            records: None,
            batch_id: None,
            record_ids: None,
            message,
        }
    }
}

/// A checkpoint, for the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointInfo {
    /// Its number in `checkpoints.log`, from 1.
    pub number: usize,
    /// Byte offset of its entry.
    pub offset: u64,
    /// Tree size.
    pub size: u64,
    /// Root hash, hex.
    pub root: String,
    /// When it was made, nanoseconds since the Unix epoch.
    pub timestamp_unix_ns: u64,
    /// The same, as RFC 3339 UTC.
    pub time: String,
}

/// The checkpoint part of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointSummary {
    /// Intact entries in `checkpoints.log`.
    pub entries: usize,
    /// Entries whose signature verified with a given key (0 without keys).
    pub verified: usize,
    /// The verifier keys used (`<name>+<key id>`); empty: signatures not checked.
    pub keys: Vec<String>,
    /// The last checkpoint (verified one, when keys were given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest: Option<CheckpointInfo>,
}

/// A segment deleted by policy: what its receipt says and where its leaves sat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deletion {
    /// The retention class.
    pub class: String,
    /// The deleted segment file.
    pub segment: String,
    /// Its leaves, first and last (inclusive); absent when they could not be placed (a finding
    /// says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaves: Option<[u64; 2]>,
    /// Frames it held.
    pub frames: u64,
    /// Records it held.
    pub records: u64,
    /// Its length.
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Observed time of its oldest record, RFC 3339 UTC.
    pub oldest_observed: String,
    /// Observed time of its newest record.
    pub newest_observed: String,
    /// The class's retention when it was deleted, days.
    pub retention_days: u32,
    /// When the sweep deleted it.
    pub swept: String,
    /// The rule it was deleted by, in words.
    pub rule: String,
    /// Offset of its receipt in `receipts.log`.
    pub receipt_offset: u64,
    /// The receipt's signature was checked with a given key (false: no `--public-key`, the
    /// deletion is accepted on the receipt's form alone).
    pub authenticated: bool,
    /// Where its `meshlog.retention.deletion` record is.
    pub record: String,
}

/// The receipt part of a class store's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiptSummary {
    /// Intact entries in `receipts.log`.
    pub entries: usize,
    /// Of which valid.
    pub valid: usize,
    /// Signatures were checked (verifier keys given).
    pub authenticated: bool,
}

/// Everything `meshlog verify` found in one store.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The store's directory (the data directory, or a class directory in it).
    pub data_dir: String,
    /// The retention class, for a class store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// No findings.
    pub intact: bool,
    /// Checkpoint signatures were checked (verifier keys given).
    pub signatures_checked: bool,
    /// Segment files.
    pub segments: usize,
    /// Intact frames (headers) found.
    pub frames: u64,
    /// Records those frames hold, per their headers.
    pub records: u64,
    /// Bytes of segment files.
    pub bytes: u64,
    /// Leaves of the recomputed tree (the frames as stored, and the leaves kept of segments
    /// deleted by policy).
    pub tree_size: u64,
    /// Its root, hex (`unknown` when the leaves of a deleted segment are).
    pub root: String,
    /// Segments deleted by policy (valid receipts, files gone).
    pub deleted_segments: usize,
    /// Frames they held: leaves of the tree no segment holds any more.
    pub deleted_frames: u64,
    /// Frames from before the hash chain (no chain entry), covered by checkpoints only.
    pub unchained_frames: u64,
    /// Leaves after the latest verified checkpoint: not signed yet.
    pub unsigned_leaves: u64,
    /// The checkpoints.
    pub checkpoints: CheckpointSummary,
    /// The deletion receipts (class stores only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipts: Option<ReceiptSummary>,
    /// The segments deleted by policy, by sequence number.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deletions: Vec<Deletion>,
    /// The problems.
    pub findings: Vec<Finding>,
    /// Remarks that are not problems.
    pub notes: Vec<String>,
    /// Time taken.
    pub seconds: f64,
    /// Segment bytes verified per second, in MB (10^6 bytes).
    pub mb_per_s: f64,
}

/// `ns` since the Unix epoch as RFC 3339 UTC with milliseconds.
pub fn format_time(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let ms = (ns / 1_000_000) % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// A checkpoint read from the log.
struct Cp {
    number: usize,
    offset: u64,
    end: u64,
    cp: Checkpoint,
    /// Its signature verified with a given key.
    verified: bool,
}

/// The text of a signed note (without its signatures), unverified.
fn note_text(note: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(note).ok()?;
    let split = s.rfind("\n\n")?;
    s.get(..split + 1)
}

/// Verifies the store in `data_dir`; `progress(done, total)` is called with segment bytes as
/// they are checked. Checkpoint (and receipt) signatures are checked with `keys` (none: not
/// checked). A directory with a `receipts.log` or `deleted/` is taken for a retention class
/// store named by the directory (`meshlog verify --data-dir DATA_DIR/classes/<class>`); see
/// [`verify_store`].
pub fn verify(
    data_dir: &Path,
    keys: &[VerifierKey],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, ScanError> {
    let class = (data_dir.join(RECEIPTS_FILE).exists() || data_dir.join(DELETED_DIR).exists())
        .then(|| data_dir.file_name().and_then(|n| n.to_str()))
        .flatten();
    verify_store(data_dir, class, keys, progress)
}

/// Builds the tree in leaf order: the frames as stored, and where a segment was deleted by
/// policy, the leaf hashes kept of it. Roots are kept at the checkpoints' sizes; after the
/// first deleted segment whose leaves are unknown, none is.
struct Recompute<'s> {
    tree: CompactTree,
    size: u64,
    sizes: &'s HashSet<u64>,
    roots: HashMap<u64, Hash>,
    /// The tree size at which the leaves became unknown, and the deleted segment.
    unknown_from: Option<(u64, String)>,
}

impl Recompute<'_> {
    fn leaf(&mut self, leaf: Hash) {
        self.size += 1;
        if self.unknown_from.is_none() {
            // A slice of frames cannot reach 2^64 leaves.
            let _ = self.tree.append_leaf_hash(leaf);
            if self.sizes.contains(&self.size) {
                self.roots.insert(self.size, self.tree.root());
            }
        }
    }

    fn deleted(&mut self, d: &Deleted) {
        match &d.leaves {
            Some(leaves) => leaves.iter().for_each(|l| self.leaf(*l)),
            None => {
                if self.unknown_from.is_none() {
                    self.unknown_from = Some((self.size, d.receipt.segment.clone()));
                }
                self.size += d.receipt.frames;
            }
        }
    }
}

/// Verifies one store; `class` names a retention class store, whose missing segments are
/// checked against the receipts in its `receipts.log` ([`crate::deletions`]): a segment a valid
/// receipt names is deleted by policy, its kept leaves take its place in the tree, and the
/// frame after it must chain to it.
pub fn verify_store(
    data_dir: &Path,
    class: Option<&str>,
    keys: &[VerifierKey],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, ScanError> {
    let started = Instant::now();
    let segments = scan::segments(data_dir)?;
    let total: u64 = segments.iter().map(|s| s.len).sum();
    let mut done = 0u64;
    let mut items = Vec::new();
    let mut bytes = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        scan::read_segment_into(seg, &mut bytes)?;
        items.extend(scan::parse_segment(&bytes, i, &mut |n| {
            done += n;
            progress(done, total);
        }));
    }
    let present: BTreeSet<u64> = segments.iter().map(|s| s.seq).collect();
    let receipts = match class {
        Some(c) => Some(deletions::load(data_dir, c, keys, &present)?),
        None => None,
    };
    let no_deletions = BTreeMap::new();
    let deleted = receipts.as_ref().map_or(&no_deletions, |r| &r.deleted);
    let mut v = Verifier {
        data_dir,
        segments: &segments,
        items: &items,
        findings: Vec::new(),
        notes: Vec::new(),
        highest_leaf: None,
        class_store: class.is_some(),
        deleted,
        placed: BTreeMap::new(),
        covered: BTreeMap::new(),
    };
    let (cps, log_findings, entries) = read_checkpoints(data_dir, keys)?;
    // The tree in leaf order, with its root at every checkpoint's size.
    let sizes: HashSet<u64> = cps.iter().map(|c| c.cp.size).collect();
    let mut tree = Recompute {
        tree: CompactTree::new(),
        size: 0,
        sizes: &sizes,
        roots: HashMap::from([(0, empty_root())]),
        unknown_from: None,
    };
    let mut pending = deleted.values().peekable();
    let mut records = 0u64;
    for (_, f) in v.frames() {
        let seq = segments.get(f.segment).map_or(0, |s| s.seq);
        while let Some(d) = pending.next_if(|d| d.seq < seq) {
            tree.deleted(d);
        }
        records += u64::from(f.records);
        tree.leaf(f.leaf);
    }
    // Deleted segments after the last frame (before a newest segment still empty).
    pending.for_each(|d| tree.deleted(d));
    let mut findings = v.analyse();
    let deletions = v.deletion_records(&mut findings);
    if let Some(r) = &receipts {
        findings.extend(r.findings.iter().cloned());
        v.notes.extend(r.notes.iter().cloned());
    }
    findings.extend(log_findings);
    let highest = v.highest_leaf;
    let unknown_from = tree.unknown_from.as_ref().map(|u| u.0);
    let mut cp_summary = v.check_checkpoints(
        &cps,
        keys,
        &tree.roots,
        (tree.size, unknown_from),
        highest,
        &mut findings,
    );
    cp_summary.entries = entries;
    v.describe_records(&mut findings);
    let unchained = v.frames().take_while(|(_, f)| f.chain.is_none()).count() as u64;
    if unchained > 0 {
        v.notes.push(format!(
            "the first {unchained} frames were written before the hash chain (no leaf index): \
             they are covered by the checkpoints only"
        ));
    }
    let latest_size = cp_summary.latest.as_ref().map_or(0, |c| c.size);
    let unsigned_leaves = tree.size.saturating_sub(latest_size);
    if unsigned_leaves > 0 && !keys.is_empty() {
        v.notes.push(format!(
            "leaves {latest_size}..{} are not covered by a signed checkpoint yet (written after \
             the latest one)",
            tree.size - 1
        ));
    }
    if keys.is_empty() {
        v.notes.push(
            "checkpoint signatures were not checked (no --public-key): a store rewritten as a \
             whole, checkpoints included, would pass"
                .into(),
        );
        if !deletions.is_empty() {
            v.notes.push(format!(
                "{} deletion{} accepted on the receipts' form alone: receipt signatures were \
                 not checked (no --public-key), so these deletions are NOT authenticated \
                 (whoever can write the data directory could forge a receipt)",
                deletions.len(),
                if deletions.len() == 1 {
                    " was"
                } else {
                    "s were"
                }
            ));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Report {
        data_dir: data_dir.display().to_string(),
        class: class.map(str::to_owned),
        intact: findings.is_empty(),
        signatures_checked: !keys.is_empty(),
        segments: segments.len(),
        frames: v.frames().count() as u64,
        records,
        bytes: total,
        tree_size: tree.size,
        root: match &tree.unknown_from {
            None => hex::encode(tree.tree.root()),
            Some(_) => "unknown".into(),
        },
        deleted_segments: deleted.len(),
        deleted_frames: deleted.values().map(|d| d.receipt.frames).sum(),
        unchained_frames: unchained,
        unsigned_leaves,
        checkpoints: cp_summary,
        receipts: receipts.as_ref().map(|r| ReceiptSummary {
            entries: r.entries,
            valid: r.valid,
            authenticated: !keys.is_empty(),
        }),
        deletions,
        findings,
        notes: v.notes,
        seconds,
        mb_per_s: if seconds > 0.0 {
            total as f64 / 1e6 / seconds
        } else {
            0.0
        },
    })
}

/// Reads `checkpoints.log` and checks the signatures: the checkpoints that passed, findings,
/// and the number of intact entries.
fn read_checkpoints(
    data_dir: &Path,
    keys: &[VerifierKey],
) -> Result<(Vec<Cp>, Vec<Finding>, usize), ScanError> {
    let path = data_dir.join(CHECKPOINT_LOG_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new(), 0)),
        Err(source) => return Err(ScanError::Io { path, source }),
    };
    let mut cps = Vec::new();
    let mut findings = Vec::new();
    let items = checkpoint_log::parse(&bytes);
    let at = |kind, offset: u64, end: u64, number: Option<usize>, message: String| {
        let mut f = Finding::new(kind, message);
        f.file = Some(CHECKPOINT_LOG_FILE.into());
        f.offset = Some(offset);
        f.end = Some(end);
        f.checkpoint = number;
        f
    };
    for (i, item) in items.iter().enumerate() {
        let e = match item {
            LogItem::Damaged(d) => {
                let tail = if i + 1 == items.len() {
                    " (the end of the file: a torn append not yet cut, or a cut entry)"
                } else {
                    ""
                };
                findings.push(at(
                    Kind::CheckpointLogDamaged,
                    d.offset,
                    d.end,
                    None,
                    format!(
                        "{} bytes are no intact checkpoint entry: {}{tail}",
                        d.end - d.offset,
                        d.reason
                    ),
                ));
                continue;
            }
            LogItem::Entry(e) => e,
        };
        let end = e.offset + checkpoint_log::encode_entry(&e.note).len() as u64;
        let finding = |kind, message| at(kind, e.offset, end, Some(e.number), message);
        if keys.is_empty() {
            match note_text(&e.note)
                .ok_or_else(|| "not a signed note".to_owned())
                .and_then(|t| Checkpoint::parse_body(t).map_err(|e| e.to_string()))
            {
                Ok(cp) => cps.push(Cp {
                    number: e.number,
                    offset: e.offset,
                    end,
                    cp,
                    verified: false,
                }),
                Err(why) => findings.push(finding(
                    Kind::CheckpointMalformed,
                    format!("checkpoint #{}: {why}", e.number),
                )),
            }
            continue;
        }
        let mut result = Err(CheckpointError::Note(NoteError::NoSignatures));
        for k in keys {
            result = Checkpoint::verify(&e.note, k);
            // Another key may be the one (after a key rotation): keep trying on "unknown key".
            if !matches!(
                result,
                Err(CheckpointError::Note(NoteError::UnknownKey { .. }))
            ) {
                break;
            }
        }
        match result {
            Ok(cp) => cps.push(Cp {
                number: e.number,
                offset: e.offset,
                end,
                cp,
                verified: true,
            }),
            Err(CheckpointError::Note(NoteError::UnknownKey { found, .. })) => {
                findings.push(finding(
                    Kind::CheckpointWrongKey,
                    format!(
                        "checkpoint #{} is not signed by the given key{}: it is signed by {} \
                         (a swapped or forged key)",
                        e.number,
                        if keys.len() == 1 { "" } else { "s" },
                        if found.is_empty() {
                            "no key".to_owned()
                        } else {
                            found.join(", ")
                        }
                    ),
                ))
            }
            Err(CheckpointError::Note(NoteError::BadSignature { key, .. })) => {
                findings.push(finding(
                    Kind::CheckpointBadSignature,
                    format!(
                        "checkpoint #{}: the signature by {key} does not verify: the checkpoint \
                         was altered after signing, or forged",
                        e.number
                    ),
                ))
            }
            Err(other) => findings.push(finding(
                Kind::CheckpointMalformed,
                format!("checkpoint #{}: {other}", e.number),
            )),
        }
    }
    let entries = items
        .iter()
        .filter(|i| matches!(i, LogItem::Entry(_)))
        .count();
    Ok((cps, findings, entries))
}

struct Verifier<'a> {
    data_dir: &'a Path,
    segments: &'a [SegmentInfo],
    items: &'a [Item],
    findings: Vec<(usize, Finding)>,
    notes: Vec<String>,
    /// The highest leaf index the store holds (set by `analyse`).
    highest_leaf: Option<u64>,
    /// A retention class store (missing segments may have receipts).
    class_store: bool,
    /// Segments deleted by policy, by sequence number.
    deleted: &'a BTreeMap<u64, Deleted>,
    /// Where their leaves sit: sequence number → first and last leaf (set by `analyse`).
    placed: BTreeMap<u64, [u64; 2]>,
    /// The same by first leaf: first leaf → (last leaf, sequence number).
    covered: BTreeMap<u64, (u64, u64)>,
}

/// A run of missing segment files that no receipt explains.
struct SegGap {
    /// Its first and last sequence numbers.
    first: u64,
    last: u64,
    /// Its finding.
    finding: usize,
}

/// Where things are, for placing missing leaves.
struct Places<'x> {
    /// Item index of each garbage stretch → its finding.
    garbage_at: &'x BTreeMap<usize, usize>,
    /// Runs of missing segment files.
    seg_gaps: &'x [SegGap],
    /// Segment index → item indexes of its first and last frame.
    seg_bounds: &'x HashMap<usize, (usize, usize)>,
}

/// What the chain analysis decided about a frame.
#[derive(Debug, Clone)]
enum Status {
    /// One of the log's leaves, at its claimed index.
    Genuine,
    /// From before the chain: its leaf index is its position.
    Unchained,
    /// The same bytes as an earlier frame (its position among frames).
    Duplicate(usize),
    /// Not one of the log's leaves; why.
    Inserted(String),
}

impl<'a> Verifier<'a> {
    /// (item index, frame) for every frame, in store order.
    fn frames(&self) -> impl Iterator<Item = (usize, &'a ScannedFrame)> + 'a {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| match it {
                Item::Frame(f) => Some((i, f)),
                Item::Garbage(_) => None,
            })
    }

    fn seg_name(&self, seg: usize) -> String {
        self.segments
            .get(seg)
            .map_or_else(|| "?".into(), |s| s.name.clone())
    }

    fn loc(&self, f: &ScannedFrame) -> String {
        format!("{} offset {}", self.seg_name(f.segment), f.offset)
    }

    fn frame_finding(
        &self,
        kind: Kind,
        f: &ScannedFrame,
        leaf: Option<u64>,
        message: String,
    ) -> Finding {
        let mut x = Finding::new(kind, message);
        x.file = Some(self.seg_name(f.segment));
        x.offset = Some(f.offset);
        x.end = Some(f.offset + f.len);
        x.leaf = leaf;
        x.records = Some(f.records);
        x.batch_id = f.batch_id.clone();
        x
    }

    fn push(&mut self, item: usize, f: Finding) -> usize {
        self.findings.push((item, f));
        self.findings.len() - 1
    }

    /// Segments, garbage and the chain; returns the findings in store order.
    fn analyse(&mut self) -> Vec<Finding> {
        let frames: Vec<(usize, &ScannedFrame)> = self.frames().collect();
        let n = frames.len();

        // Bytes that are no frame.
        let mut garbage_at: BTreeMap<usize, usize> = BTreeMap::new();
        let last_seg = self.segments.len().saturating_sub(1);
        for (i, it) in self.items.iter().enumerate() {
            let Item::Garbage(g) = it else { continue };
            let f = self.garbage_finding(g, g.segment == last_seg);
            let at = self.push(i, f);
            garbage_at.insert(i, at);
        }

        // First and last frame (item index) of each segment.
        let mut seg_bounds: HashMap<usize, (usize, usize)> = HashMap::new();
        for (item, f) in &frames {
            let e = seg_bounds.entry(f.segment).or_insert((*item, *item));
            e.1 = *item;
        }

        // Gaps in the segment numbers that no receipt explains, as runs of missing files.
        let mut seg_gaps: Vec<SegGap> = Vec::new();
        let mut expected = 1u64;
        for (i, s) in self.segments.iter().enumerate() {
            let mut run: Option<(u64, u64)> = None;
            let mut runs = Vec::new();
            for seq in expected..s.seq {
                if self.deleted.contains_key(&seq) {
                    runs.extend(run.take());
                } else {
                    run = Some(run.map_or((seq, seq), |(a, _)| (a, seq)));
                }
            }
            runs.extend(run);
            let item = self
                .items
                .iter()
                .position(|it| match it {
                    Item::Frame(fr) => fr.segment >= i,
                    Item::Garbage(g) => g.segment >= i,
                })
                .unwrap_or(self.items.len());
            for (first, last) in runs {
                let f = self.segments_missing(first, last);
                let at = self.push(item, f);
                seg_gaps.push(SegGap {
                    first,
                    last,
                    finding: at,
                });
            }
            expected = s.seq + 1;
        }

        // Duplicates, claims, unchained frames.
        let unchained_end = frames
            .iter()
            .position(|(_, f)| f.chain.is_some())
            .unwrap_or(n);
        // Per segment: the frames of segments deleted before it.
        let del_before: Vec<u64> = self
            .segments
            .iter()
            .map(|sg| {
                self.deleted
                    .range(..sg.seq)
                    .map(|(_, d)| d.receipt.frames)
                    .sum()
            })
            .collect();
        let mut status = vec![Status::Genuine; n];
        let mut claim = vec![0u64; n];
        let mut by_hash: HashMap<Hash, usize> = HashMap::with_capacity(n);
        let mut claims: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (k, (_, f)) in frames.iter().enumerate() {
            if let Some(&j) = by_hash.get(&f.leaf) {
                status[k] = Status::Duplicate(j);
                claim[k] = claim[j];
                continue;
            }
            by_hash.insert(f.leaf, k);
            match f.chain {
                Some(c) => {
                    claim[k] = c.leaf_index;
                    claims.entry(c.leaf_index).or_default().push(k);
                }
                None if k < unchained_end => {
                    // Its position among the leaves, the leaves of deleted segments included.
                    let c = k as u64 + del_before.get(f.segment).copied().unwrap_or(0);
                    status[k] = Status::Unchained;
                    claim[k] = c;
                    claims.entry(c).or_default().push(k);
                }
                None => {
                    status[k] = Status::Inserted(
                        "it has no chain entry (leaf index), so the log's writer did not write \
                         it: frames after the chain began all have one"
                            .into(),
                    )
                }
            }
        }

        // One frame per leaf index: the one the next leaf refers to, else the one chained to
        // the previous leaf, else the first stored.
        let mut genuine: BTreeMap<u64, usize> = BTreeMap::new();
        for (&c, ks) in &claims {
            let Some(&first) = ks.first() else { continue };
            if ks.len() == 1 {
                genuine.insert(c, first);
                continue;
            }
            let refs: HashSet<Hash> = claims
                .get(&(c + 1))
                .into_iter()
                .flatten()
                .filter_map(|&j| frames[j].1.chain.map(|ch| ch.prev_leaf))
                .collect();
            let referenced: Vec<usize> = ks
                .iter()
                .copied()
                .filter(|&k| refs.contains(&frames[k].1.leaf))
                .collect();
            let preds: HashSet<Hash> = match c.checked_sub(1) {
                Some(p) => claims
                    .get(&p)
                    .into_iter()
                    .flatten()
                    .map(|&j| frames[j].1.leaf)
                    .collect(),
                None => HashSet::from([[0u8; 32]]),
            };
            let pick = match referenced.as_slice() {
                [one] => *one,
                _ => ks
                    .iter()
                    .copied()
                    .find(|&k| {
                        frames[k]
                            .1
                            .chain
                            .is_some_and(|ch| preds.contains(&ch.prev_leaf))
                    })
                    .unwrap_or(first),
            };
            genuine.insert(c, pick);
            for &k in ks.iter().filter(|&&k| k != pick) {
                status[k] = Status::Inserted(format!(
                    "it claims leaf {c}, which the frame at {} holds{}",
                    self.loc(frames[pick].1),
                    if referenced.len() == 1 {
                        " (the one the next leaf refers to)"
                    } else {
                        ""
                    }
                ));
            }
        }

        // Per-frame findings: damage, duplicates, insertions.
        for (k, (item, f)) in frames.iter().enumerate() {
            if let Some(d) = &f.damage {
                let x = self.frame_finding(
                    Kind::Modified,
                    f,
                    Some(claim[k]).filter(|_| !matches!(status[k], Status::Inserted(_))),
                    format!("{d}: the payload was changed (or rotted) after it was written"),
                );
                self.push(*item, x);
            }
            match &status[k] {
                Status::Duplicate(j) => {
                    let x = self.frame_finding(
                        Kind::Duplicated,
                        f,
                        Some(claim[k]),
                        format!(
                            "the same bytes as leaf {} at {}: the frame is stored twice",
                            claim[*j],
                            self.loc(frames[*j].1)
                        ),
                    );
                    self.push(*item, x);
                }
                Status::Inserted(why) => {
                    let leaf = f.chain.map(|c| c.leaf_index);
                    let x = self.frame_finding(
                        Kind::Inserted,
                        f,
                        leaf,
                        format!("this frame is not one of the log's leaves: {why}"),
                    );
                    self.push(*item, x);
                }
                Status::Genuine | Status::Unchained => {}
            }
        }

        // Order: consecutive leaves in the store must have increasing indexes.
        let mut prev: Option<usize> = None;
        for k in 0..n {
            if !matches!(status[k], Status::Genuine | Status::Unchained) {
                continue;
            }
            if let Some(p) = prev
                && claim[k] < claim[p]
            {
                let x = self.frame_finding(
                    Kind::Reordered,
                    frames[k].1,
                    Some(claim[k]),
                    format!(
                        "leaf {} is stored after leaf {} ({}): frames were moved out of order",
                        claim[k],
                        claim[p],
                        self.loc(frames[p].1)
                    ),
                );
                self.push(frames[k].0, x);
            }
            prev = Some(k);
        }

        self.highest_leaf = genuine.keys().next_back().copied();
        self.place_deletions(&frames, &status, &claim);

        // Missing leaves: gaps in the indexes from 0 to the highest, the leaves of segments
        // deleted by policy counting as there.
        let mut known: Vec<(u64, u64)> = genuine.keys().map(|&c| (c, c)).collect();
        known.extend(self.covered.iter().map(|(&a, &(b, _))| (a, b)));
        known.sort_unstable();
        let mut gaps: Vec<(u64, u64)> = Vec::new();
        let mut next = 0u64;
        for (a, b) in known {
            if a > next {
                gaps.push((next, a - 1));
            }
            next = next.max(b.saturating_add(1));
        }
        for (s, e) in gaps {
            let before = s.checked_sub(1).and_then(|p| genuine.get(&p)).copied();
            let places = Places {
                garbage_at: &garbage_at,
                seg_gaps: &seg_gaps,
                seg_bounds: &seg_bounds,
            };
            match genuine.get(&(e + 1)) {
                Some(&after) => self.missing(&frames, before, after, (s, e), &places),
                None => {
                    if let Some(seq) = self.deleted_at(e + 1) {
                        self.missing_before_deleted(&frames, before, seq, (s, e), &places);
                    }
                }
            }
        }

        // Modification: each leaf must hash to what the next leaf recorded.
        for (&c, &b) in &genuine {
            if matches!(status[b], Status::Unchained) {
                continue;
            }
            let Some(chain) = frames[b].1.chain else {
                continue;
            };
            if c == 0 {
                if chain.prev_leaf != [0; 32] {
                    let x = self.frame_finding(
                        Kind::Modified,
                        frames[b].1,
                        Some(0),
                        "leaf 0 names a previous leaf: its header was changed".into(),
                    );
                    self.push(frames[b].0, x);
                }
                continue;
            }
            let Some(&a) = genuine.get(&(c - 1)) else {
                continue;
            };
            let fa = frames[a].1;
            if fa.damage.is_some() || chain.prev_leaf == fa.leaf {
                continue;
            }
            let x = self.frame_finding(
                Kind::Modified,
                fa,
                Some(c - 1),
                format!(
                    "leaf {} was changed after it was written: it no longer hashes to what leaf \
                     {c} ({}) recorded (or that record in leaf {c}'s header was changed)",
                    c - 1,
                    self.loc(frames[b].1)
                ),
            );
            self.push(frames[a].0, x);
        }

        let mut out = std::mem::take(&mut self.findings);
        out.sort_by_key(|(item, _)| *item);
        out.into_iter().map(|(_, f)| f).collect()
    }

    /// The finding for segment files `first..=last`, missing without a receipt.
    fn segments_missing(&self, first: u64, last: u64) -> Finding {
        let count = last - first + 1;
        let names: Vec<String> = (first..=last)
            .take(5)
            .map(meshlog_format::reader::segment_file_name)
            .collect();
        let more = count.saturating_sub(5);
        let mut f = Finding::new(
            Kind::SegmentMissing,
            format!(
                "segment file{} {}{} missing{}: the segment numbers jump from {} to {}",
                if count > 1 { "s" } else { "" },
                names.join(", "),
                if more > 0 {
                    format!(" and {more} more are")
                } else if count > 1 {
                    " are".into()
                } else {
                    " is".into()
                },
                if self.class_store {
                    if count > 1 {
                        " and no valid deletion receipt names them"
                    } else {
                        " and no valid deletion receipt names it"
                    }
                } else {
                    ""
                },
                first - 1,
                last + 1
            ),
        );
        f.file = names.first().cloned();
        f
    }

    fn garbage_finding(&self, g: &Garbage, newest: bool) -> Finding {
        let seg_len = self.segments.get(g.segment).map_or(0, |s| s.len);
        let n = g.end - g.offset;
        let (kind, what) = if g.offset == 0 && newest && seg_len < SEGMENT_HEADER_LEN {
            (
                Kind::TornTail,
                format!(
                    "the newest segment is {seg_len} bytes, shorter than a segment header: a \
                     crash while it was created (serve rewrites it at its next start)"
                ),
            )
        } else if g.offset == 0 {
            (
                Kind::Damaged,
                format!(
                    "not a readable segment ({}): none of its {n} bytes is checked",
                    g.reason
                ),
            )
        } else if g.end == seg_len && newest {
            (
                Kind::TornTail,
                format!(
                    "the last {n} bytes of the newest segment are no intact frame ({}): an \
                     interrupted write not yet cut (serve cuts it at its next start; it was \
                     never acknowledged), or a damaged last frame",
                    g.reason
                ),
            )
        } else if g.end == seg_len {
            (
                Kind::Truncated,
                format!(
                    "the segment ends inside a frame ({}): it was cut short; {n} bytes belong \
                     to no frame",
                    g.reason
                ),
            )
        } else {
            (
                Kind::Damaged,
                format!(
                    "{n} bytes belong to no intact frame ({}): a frame header was changed, or \
                     bytes were inserted",
                    g.reason
                ),
            )
        };
        let mut f = Finding::new(kind, what);
        f.file = Some(self.seg_name(g.segment));
        f.offset = Some(g.offset);
        f.end = Some(g.end);
        f
    }

    /// When bytes that are no frame lie between items `items` (a garbage finding), the missing
    /// `leaves` are what became of them: says so in that finding, and returns true.
    fn fold_into_garbage(
        &mut self,
        garbage_at: &BTreeMap<usize, usize>,
        items: std::ops::Range<usize>,
        leaves: [u64; 2],
        range: &str,
    ) -> bool {
        if items.is_empty() {
            return false;
        }
        let Some(&at) = garbage_at.range(items).next().map(|(_, at)| at) else {
            return false;
        };
        let Some((_, f)) = self.findings.get_mut(at) else {
            return false;
        };
        f.leaves = Some(leaves);
        f.message = format!(
            "{}; {range} missing, these bytes are where they were",
            f.message
        );
        true
    }

    /// Reports leaves `s..=e`, missing between `before` and `after` (positions among frames).
    fn missing(
        &mut self,
        frames: &[(usize, &ScannedFrame)],
        before: Option<usize>,
        after: usize,
        (s, e): (u64, u64),
        places: &Places<'_>,
    ) {
        let Places {
            garbage_at,
            seg_gaps,
            seg_bounds,
        } = places;
        let count = e - s + 1;
        let range = if s == e {
            format!("leaf {s} is")
        } else {
            format!("leaves {s}..{e} ({count}) are")
        };
        let (ia, fa) = frames[after];
        let ib = before.map(|b| frames[b].0);
        // Leaves right after a segment deleted by policy: the frames after it.
        let deleted_before = match before {
            None => s.checked_sub(1).and_then(|p| self.deleted_at(p)),
            Some(_) => None,
        };
        // Bytes that are no frame where the leaves should be: that is what became of them.
        let lo = match (ib, deleted_before) {
            (Some(i), _) => i + 1,
            (None, Some(seq)) => self.first_item_after(seq),
            (None, None) => 0,
        };
        if self.fold_into_garbage(garbage_at, lo..ia, [s, e], &range) {
            return;
        }
        // A gap in the segment numbers between them.
        let seq_before = before
            .map(|b| self.seq_of(frames[b].1.segment))
            .or(deleted_before);
        let seq_after = self.seq_of(fa.segment);
        if let Some(at) = seg_gaps
            .iter()
            .find(|g| g.last < seq_after && seq_before.is_none_or(|sb| sb < g.first))
            .map(|g| g.finding)
            && let Some((_, f)) = self.findings.get_mut(at)
        {
            f.leaves = Some([s, e]);
            f.message = format!("{}; {range} missing with it", f.message);
            return;
        }
        let first_of_segment = seg_bounds.get(&fa.segment).map(|b| b.0) == Some(ia);
        if let (Some(b), true) = (before, first_of_segment) {
            let fb = frames[b].1;
            let last_of_segment = seg_bounds.get(&fb.segment).map(|b| b.1) == Some(frames[b].0);
            if last_of_segment && self.seq_of(fb.segment) + 1 == seq_after {
                let mut x = Finding::new(
                    Kind::Truncated,
                    format!(
                        "the segment ends after leaf {} at offset {}; {range} missing from its \
                         end: it was cut short (leaf {} starts {})",
                        s - 1,
                        fb.offset + fb.len,
                        e + 1,
                        self.seg_name(fa.segment)
                    ),
                );
                x.file = Some(self.seg_name(fb.segment));
                x.offset = Some(fb.offset + fb.len);
                x.leaves = Some([s, e]);
                self.push(frames[b].0, x);
                return;
            }
        }
        let mut x = Finding::new(
            Kind::Removed,
            match before {
                Some(b) => format!(
                    "{range} missing: leaf {} is at {}, leaf {} at {}; {count} frame{} removed",
                    s - 1,
                    self.loc(frames[b].1),
                    e + 1,
                    self.loc(fa),
                    if count == 1 { " was" } else { "s were" }
                ),
                None => match deleted_before {
                    Some(seq) => format!(
                        "{range} missing: they come after {}, deleted by policy (its leaves end \
                         at {}), and leaf {} is at {}; {count} frame{} removed",
                        meshlog_format::reader::segment_file_name(seq),
                        s - 1,
                        e + 1,
                        self.loc(fa),
                        if count == 1 { " was" } else { "s were" }
                    ),
                    None => format!(
                        "{range} missing: the store starts with leaf {} at {}",
                        e + 1,
                        self.loc(fa)
                    ),
                },
            },
        );
        x.file = Some(self.seg_name(fa.segment));
        x.offset = Some(fa.offset);
        x.leaves = Some([s, e]);
        self.push(ia, x);
    }

    /// Reports leaves `s..=e`, missing between `before` (a position among frames) and the
    /// leaves of segment `seq`, deleted by policy.
    fn missing_before_deleted(
        &mut self,
        frames: &[(usize, &ScannedFrame)],
        before: Option<usize>,
        seq: u64,
        (s, e): (u64, u64),
        places: &Places<'_>,
    ) {
        let count = e - s + 1;
        let range = if s == e {
            format!("leaf {s} is")
        } else {
            format!("leaves {s}..{e} ({count}) are")
        };
        let deleted_before = match before {
            None => s.checked_sub(1).and_then(|p| self.deleted_at(p)),
            Some(_) => None,
        };
        let lo = match (before, deleted_before) {
            (Some(b), _) => frames[b].0 + 1,
            (None, Some(d)) => self.first_item_after(d),
            (None, None) => 0,
        };
        let hi = self.first_item_after(seq);
        if self.fold_into_garbage(places.garbage_at, lo..hi, [s, e], &range) {
            return;
        }
        let seq_before = before
            .map(|b| self.seq_of(frames[b].1.segment))
            .or(deleted_before);
        if let Some(at) = places
            .seg_gaps
            .iter()
            .find(|g| g.last < seq && seq_before.is_none_or(|sb| sb < g.first))
            .map(|g| g.finding)
            && let Some((_, f)) = self.findings.get_mut(at)
        {
            f.leaves = Some([s, e]);
            f.message = format!("{}; {range} missing with it", f.message);
            return;
        }
        let name = meshlog_format::reader::segment_file_name(seq);
        let mut x = Finding::new(
            Kind::Removed,
            format!(
                "{range} missing before {name}, deleted by policy (its leaves start at {}): \
                 frames were cut {}, or the receipts' frame counts do not fit the log",
                e + 1,
                match before {
                    Some(b) => format!("after leaf {} ({})", s - 1, self.loc(frames[b].1)),
                    None => "from the start of the log".into(),
                }
            ),
        );
        match before {
            Some(b) => {
                let fb = frames[b].1;
                x.file = Some(self.seg_name(fb.segment));
                x.offset = Some(fb.offset + fb.len);
            }
            None => x.file = Some(name),
        }
        x.leaves = Some([s, e]);
        self.push(lo, x);
    }

    /// The sequence number of segment index `i`.
    fn seq_of(&self, i: usize) -> u64 {
        self.segments.get(i).map_or(0, |s| s.seq)
    }

    /// The segment deleted by policy whose leaves include `leaf`.
    fn deleted_at(&self, leaf: u64) -> Option<u64> {
        self.covered
            .range(..=leaf)
            .next_back()
            .filter(|(_, (last, _))| leaf <= *last)
            .map(|(_, (_, seq))| *seq)
    }

    /// The index of the first item in a segment after sequence number `seq`.
    fn first_item_after(&self, seq: u64) -> usize {
        self.items
            .iter()
            .position(|it| {
                let seg = match it {
                    Item::Frame(f) => f.segment,
                    Item::Garbage(g) => g.segment,
                };
                self.seq_of(seg) > seq
            })
            .unwrap_or(self.items.len())
    }

    /// Places the leaves of the segments deleted by policy, one run of consecutive sequence
    /// numbers at a time, and checks the frames around each run against its receipts: the
    /// first frame after it must name the last deleted leaf as its predecessor, and the leaf
    /// indexes must skip exactly the deleted frames (from the frame before it, or from leaf 0
    /// when the run starts the log).
    fn place_deletions(
        &mut self,
        frames: &[(usize, &ScannedFrame)],
        status: &[Status],
        claim: &[u64],
    ) {
        let deleted = self.deleted;
        // Per segment index, the positions (among frames) of its leaves.
        let mut by_segment: HashMap<usize, Vec<usize>> = HashMap::new();
        for (k, (_, f)) in frames.iter().enumerate() {
            if matches!(status[k], Status::Genuine | Status::Unchained) {
                by_segment.entry(f.segment).or_default().push(k);
            }
        }
        let index_of: HashMap<u64, usize> = self
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| (s.seq, i))
            .collect();
        let mut runs: Vec<Vec<u64>> = Vec::new();
        for &seq in deleted.keys() {
            match runs.last_mut() {
                Some(run) if run.last().is_some_and(|l| l + 1 == seq) => run.push(seq),
                _ => runs.push(vec![seq]),
            }
        }
        for run in runs {
            let (Some(&a), Some(&b)) = (run.first(), run.last()) else {
                continue;
            };
            let total: u64 = run
                .iter()
                .filter_map(|s| deleted.get(s))
                .map(|d| d.receipt.frames)
                .sum();
            let Some(last) = deleted.get(&b) else {
                continue;
            };
            let names = if a == b {
                last.receipt.segment.clone()
            } else {
                format!(
                    "{}..{}",
                    meshlog_format::reader::segment_file_name(a),
                    last.receipt.segment
                )
            };
            let next = index_of.get(&(b + 1)).copied();
            let next_frames = next.and_then(|i| by_segment.get(&i));
            // The frame chained to the last deleted leaf, normally the next segment's first.
            let anchor = next_frames.and_then(|ks| {
                ks.iter().copied().find(|&k| {
                    frames[k]
                        .1
                        .chain
                        .is_some_and(|c| c.prev_leaf == last.receipt.last_leaf)
                })
            });
            // Where the run must start, from the frames before it.
            let from_before: Option<(u64, Option<usize>)> = if a == 1 {
                Some((0, None))
            } else {
                index_of
                    .get(&(a - 1))
                    .and_then(|i| by_segment.get(i))
                    .and_then(|ks| ks.last())
                    .map(|&k| (claim[k] + 1, Some(k)))
            };
            if let (Some(i), None) = (next, anchor) {
                let first = next_frames.and_then(|ks| ks.first()).copied();
                let what = format!(
                    "no frame of {} names the last leaf of {} ({}, from its receipt) as its \
                     predecessor: the frames after the deletion were removed, altered or \
                     replaced",
                    self.seg_name(i),
                    last.receipt.segment,
                    hex::encode(last.receipt.last_leaf)
                );
                match first {
                    Some(k) => {
                        let (item, f) = frames[k];
                        let message = match f.chain {
                            Some(c) => format!(
                                "{what}; its first frame, leaf {}, names {}",
                                c.leaf_index,
                                hex::encode(c.prev_leaf)
                            ),
                            None => format!("{what}; its first frame has no chain entry"),
                        };
                        let x =
                            self.frame_finding(Kind::DeletionMismatch, f, Some(claim[k]), message);
                        self.push(item, x);
                    }
                    None => {
                        let mut x = Finding::new(Kind::DeletionMismatch, what);
                        x.file = Some(self.seg_name(i));
                        let item = self.first_item_after(b);
                        self.push(item, x);
                    }
                }
            }
            let from_after = anchor.map(|k| (claim[k].checked_sub(total), k));
            match (from_after, from_before) {
                (Some((None, k)), _) => {
                    let (item, f) = frames[k];
                    let x = self.frame_finding(
                        Kind::DeletionMismatch,
                        f,
                        Some(claim[k]),
                        format!(
                            "leaf {} follows {names}, whose receipts say {total} frames were \
                             deleted: more than there are leaves before it",
                            claim[k]
                        ),
                    );
                    self.push(item, x);
                }
                (Some((Some(start), k)), Some((expected, kb))) if start < expected => {
                    let (item, f) = frames[k];
                    let before = match kb {
                        Some(kb) => format!("leaf {} ({})", expected - 1, self.loc(frames[kb].1)),
                        None => "the start of the log".into(),
                    };
                    let x = self.frame_finding(
                        Kind::DeletionMismatch,
                        f,
                        Some(claim[k]),
                        format!(
                            "the receipts of {names} say {total} frames were deleted, but the \
                             leaf indexes skip only {} between {before} and leaf {}: the \
                             receipts do not fit the log",
                            claim[k] - expected,
                            claim[k]
                        ),
                    );
                    self.push(item, x);
                }
                // Skipping more than the receipts say leaves leaves unaccounted for: the gap
                // detection reports them.
                _ => {}
            }
            let start = match from_after {
                Some((start, _)) => start,
                None => from_before.map(|(s, _)| s),
            };
            let Some(mut at) = start else { continue };
            for seq in &run {
                let Some(d) = deleted.get(seq) else { continue };
                let range = [at, at + d.receipt.frames - 1];
                self.placed.insert(*seq, range);
                self.covered.insert(range[0], (range[1], *seq));
                at += d.receipt.frames;
            }
        }
    }

    /// Where each deletion's `meshlog.retention.deletion` record is (a finding when nowhere),
    /// and the deletions for the report.
    fn deletion_records(&mut self, findings: &mut Vec<Finding>) -> Vec<Deletion> {
        use meshlog_format::time::rfc3339;
        let mut by_batch: HashMap<&str, Vec<&ScannedFrame>> = HashMap::new();
        for (_, f) in self.frames() {
            if let Some(id) = f.batch_id.as_deref()
                && id.starts_with(DELETION_EVENT)
            {
                by_batch.entry(id).or_default().push(f);
            }
        }
        let mut sealed = 0usize;
        let mut out = Vec::new();
        for d in self.deleted.values() {
            let r = &d.receipt;
            let id = r.batch_id();
            let mut record = None;
            let mut other_note = None;
            for f in by_batch.get(id.as_str()).into_iter().flatten() {
                let Some(seg) = self.segments.get(f.segment) else {
                    continue;
                };
                let place = format!(
                    "{}{}",
                    f.chain
                        .map_or(String::new(), |c| format!("leaf {}, ", c.leaf_index)),
                    self.loc(f)
                );
                match deletion_notes(&seg.path, f) {
                    Ok(Some(notes)) if notes.contains(&d.note) => {
                        record = Some(place);
                        break;
                    }
                    Ok(Some(_)) => other_note = Some(place),
                    // Sealed (not plain zstd): matched by its batch id only.
                    Ok(None) => {
                        sealed += 1;
                        record = Some(format!("{place} (matched by batch id: payload sealed)"));
                        break;
                    }
                    Err(e) => {
                        record = Some(format!(
                            "{place} (matched by batch id: payload unreadable: {e})"
                        ));
                        break;
                    }
                }
            }
            // Or it was in a segment deleted after this one: a record is observed at its sweep
            // time, and that segment's receipt says it held records observed then.
            if record.is_none() {
                record = self
                    .deleted
                    .range(d.seq + 1..)
                    .find(|(_, e)| {
                        e.receipt.oldest_observed_unix_ns <= r.swept_unix_ns
                            && r.swept_unix_ns <= e.receipt.newest_observed_unix_ns
                    })
                    .map(|(_, e)| format!("in {}, deleted by policy too", e.receipt.segment));
            }
            if record.is_none() {
                let mut x = Finding::new(
                    Kind::DeletionRecordMissing,
                    match &other_note {
                        Some(place) => format!(
                            "the deletion record of {} ({place}) carries another receipt than \
                             the one in {RECEIPTS_FILE} at offset {}; the deletion is still \
                             accepted (its receipt is valid)",
                            r.segment, d.offset
                        ),
                        None => format!(
                            "no {DELETION_EVENT} record for the deletion of {} (batch id {id}): \
                             the store should hold it, or a segment deleted later should have; \
                             the deletion is still accepted (its receipt is valid), but the \
                             record was removed",
                            r.segment
                        ),
                    },
                );
                x.file = Some(RECEIPTS_FILE.into());
                x.offset = Some(d.offset);
                x.leaves = self.placed.get(&d.seq).copied();
                findings.push(x);
            }
            out.push(Deletion {
                class: r.class.clone(),
                segment: r.segment.clone(),
                leaves: self.placed.get(&d.seq).copied(),
                frames: r.frames,
                records: r.records,
                bytes: r.bytes,
                sha256: hex::encode(r.sha256),
                oldest_observed: format_time(r.oldest_observed_unix_ns),
                newest_observed: format_time(r.newest_observed_unix_ns),
                retention_days: r.retention_days,
                swept: format_time(r.swept_unix_ns),
                rule: format!(
                    "newest record observed {} + {} days is before the sweep at {}",
                    rfc3339(r.newest_observed_unix_ns),
                    r.retention_days,
                    rfc3339(r.swept_unix_ns)
                ),
                receipt_offset: d.offset,
                authenticated: d.authenticated,
                record: record.unwrap_or_else(|| "missing".into()),
            });
        }
        if sealed > 0 {
            self.notes.push(format!(
                "{sealed} deletion record{} matched by batch id only: {} sealed \
                 (verify never opens payloads; `meshlog query` with the data keys shows {})",
                if sealed == 1 { " was" } else { "s were" },
                if sealed == 1 {
                    "its frame is"
                } else {
                    "their frames are"
                },
                if sealed == 1 { "it" } else { "them" }
            ));
        }
        out
    }

    /// Checkpoint findings (appended to `findings`) and the summary.
    fn check_checkpoints(
        &mut self,
        cps: &[Cp],
        keys: &[VerifierKey],
        roots: &HashMap<u64, Hash>,
        (tree_size, unknown_from): (u64, Option<u64>),
        highest: Option<u64>,
        findings: &mut Vec<Finding>,
    ) -> CheckpointSummary {
        let at = |c: &Cp, kind, message| {
            let mut f = Finding::new(kind, message);
            f.file = Some(CHECKPOINT_LOG_FILE.into());
            f.offset = Some(c.offset);
            f.end = Some(c.end);
            f.checkpoint = Some(c.number);
            f
        };
        let matches = |c: &Cp| roots.get(&c.cp.size) == Some(&c.cp.root);
        // (size, number) of the checkpoints that match the store, by size.
        let mut good: Vec<(u64, usize)> = cps
            .iter()
            .filter(|c| matches(c))
            .map(|c| (c.cp.size, c.number))
            .collect();
        good.sort_unstable();
        let mut prev: Option<&Cp> = None;
        let mut unchecked = Vec::new();
        for c in cps {
            let (n, k) = (c.cp.size, c.number);
            if n <= tree_size && unknown_from.is_some_and(|u| n > u) {
                // Its root covers deleted leaves whose hashes are unknown (a finding says why).
                unchecked.push(k);
            } else if n > tree_size && highest.is_none_or(|h| h + 1 < n) {
                let from = highest.map_or(0, |h| h + 1);
                let mut f = at(
                    c,
                    Kind::Truncated,
                    format!(
                        "checkpoint #{k} signed {n} leaves; the store ends with leaf {}: leaves \
                         {from}..{} are missing from its end (frames cut from the newest \
                         segment, or the newest segments removed)",
                        highest.map_or("none".into(), |h| h.to_string()),
                        n - 1
                    ),
                );
                f.leaves = Some([from, n - 1]);
                findings.push(f);
            } else if n > tree_size {
                let mut f = at(
                    c,
                    Kind::CheckpointRootMismatch,
                    format!(
                        "checkpoint #{k} signed {n} leaves; the store's tree has only \
                         {tree_size}, so its root cannot match: leaves are missing from the \
                         middle (see the other findings)"
                    ),
                );
                f.leaves = Some([0, n - 1]);
                findings.push(f);
            } else if !matches(c) {
                // The largest smaller checkpoint that still matches bounds where the change is.
                let below = good.partition_point(|(size, _)| *size < n);
                let (m, why) = match below.checked_sub(1).and_then(|i| good.get(i)).copied() {
                    Some((m, j)) => (m, format!("checkpoint #{j} ({m} leaves) still matches")),
                    None => (0, "no smaller checkpoint matches".into()),
                };
                let mut f = at(
                    c,
                    Kind::CheckpointRootMismatch,
                    format!(
                        "checkpoint #{k} signed root {} for the first {n} leaves; the store's \
                         first {n} leaves hash to {}: {why}, so leaves {m}..{} were changed, \
                         removed, inserted or reordered after it was signed",
                        hex::encode(c.cp.root),
                        roots.get(&n).map_or("?".into(), hex::encode),
                        n - 1
                    ),
                );
                f.leaves = Some([m, n - 1]);
                findings.push(f);
            }
            if let Some(p) = prev {
                if n < p.cp.size {
                    findings.push(at(
                        c,
                        Kind::CheckpointInconsistent,
                        format!(
                            "checkpoint #{k} ({n} leaves) is smaller than checkpoint #{} before \
                             it ({} leaves): the log shrank",
                            p.number, p.cp.size
                        ),
                    ));
                } else if n == p.cp.size && c.cp.root != p.cp.root {
                    findings.push(at(
                        c,
                        Kind::CheckpointInconsistent,
                        format!(
                            "checkpoint #{k} and checkpoint #{} sign different roots for the \
                             same {n} leaves: the log forked",
                            p.number
                        ),
                    ));
                }
                if c.cp.timestamp_unix_ns < p.cp.timestamp_unix_ns {
                    self.notes.push(format!(
                        "checkpoint #{k} is dated before checkpoint #{} (clock stepped back?)",
                        p.number
                    ));
                }
            }
            prev = Some(c);
        }
        if !unchecked.is_empty() {
            let list: Vec<String> = unchecked.iter().map(|k| format!("#{k}")).collect();
            self.notes.push(format!(
                "the roots of checkpoint{} {} were not checked: they cover leaves of a deleted \
                 segment whose kept leaf hashes are missing or altered (see the findings)",
                if list.len() == 1 { "" } else { "s" },
                list.join(", ")
            ));
        }
        let verified = cps.iter().filter(|c| c.verified).count();
        if !keys.is_empty() && verified == 0 {
            let mut f = Finding::new(
                Kind::NoCheckpoints,
                format!(
                    "no checkpoint verifies with the given key{}: nothing in this store is \
                     signed{}",
                    if keys.len() == 1 { "" } else { "s" },
                    if self.data_dir.join(CHECKPOINT_LOG_FILE).exists() {
                        ""
                    } else {
                        " (checkpoints.log is missing: deleted, or serve never had a signing key)"
                    }
                ),
            );
            f.file = Some(CHECKPOINT_LOG_FILE.into());
            findings.push(f);
        }
        let latest = cps.last().map(|c| CheckpointInfo {
            number: c.number,
            offset: c.offset,
            size: c.cp.size,
            root: hex::encode(c.cp.root),
            timestamp_unix_ns: c.cp.timestamp_unix_ns,
            time: format_time(c.cp.timestamp_unix_ns),
        });
        CheckpointSummary {
            entries: cps.len(),
            verified,
            keys: keys
                .iter()
                .map(|k| format!("{}+{:08x}", k.name(), k.key_id()))
                .collect(),
            latest,
        }
    }

    /// Fills in which records the frames named in findings hold (bounded: a store broken
    /// everywhere need not be decompressed whole for the report).
    fn describe_records(&self, findings: &mut [Finding]) {
        let wanted: HashSet<(String, u64)> = findings
            .iter()
            .filter(|f| f.records.is_some())
            .take(1000)
            .filter_map(|f| Some((f.file.clone()?, f.offset?)))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let mut by_place: HashMap<(String, u64), &ScannedFrame> = HashMap::new();
        for (_, fr) in self.frames() {
            let key = (self.seg_name(fr.segment), fr.offset);
            if wanted.contains(&key) {
                by_place.insert(key, fr);
            }
        }
        for f in findings
            .iter_mut()
            .filter(|f| f.records.is_some())
            .take(1000)
        {
            let (Some(name), Some(offset), Some(end)) = (&f.file, f.offset, f.end) else {
                continue;
            };
            let Some(fr) = by_place.get(&(name.clone(), offset)).copied() else {
                continue;
            };
            if fr.opaque || end != fr.offset + fr.len {
                continue;
            }
            let Some(seg) = self.segments.get(fr.segment) else {
                continue;
            };
            f.record_ids = record_ids(&seg.path, fr).ok().flatten();
        }
    }
}

/// The receipts carried by the deletion records in a frame (`None`: the payload is not plain
/// zstd NDJSON, i.e. sealed).
fn deletion_notes(path: &Path, f: &ScannedFrame) -> io::Result<Option<Vec<String>>> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(f.offset + u64::from(f.header_len)))?;
    let mut payload = vec![0u8; (f.len - u64::from(f.header_len)) as usize];
    file.read_exact(&mut payload)?;
    let Ok(text) = zstd::decode_all(payload.as_slice()) else {
        return Ok(None);
    };
    Ok(Some(
        text.split(|b| *b == b'\n')
            .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
            .filter(|v| v.get("event_name").and_then(|e| e.as_str()) == Some(DELETION_EVENT))
            .filter_map(|v| {
                v.get("meshlog.retention.receipt")
                    .and_then(|n| n.as_str())
                    .map(str::to_owned)
            })
            .collect(),
    ))
}

/// Which records a frame holds: `vm <id> sequence <a>-<b>` per VM, else request ids.
fn record_ids(path: &Path, f: &ScannedFrame) -> io::Result<Option<String>> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(f.offset + u64::from(f.header_len)))?;
    let mut payload = vec![0u8; (f.len - u64::from(f.header_len)) as usize];
    file.read_exact(&mut payload)?;
    let Ok(text) = zstd::decode_all(payload.as_slice()) else {
        return Ok(None);
    };
    let mut vms: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut ids = Vec::new();
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if let (Some(vm), Some(seq)) = (
            v.get("resource.meshlog.vm.id").and_then(|x| x.as_str()),
            v.get("meshlog.sequence").and_then(|x| x.as_u64()),
        ) {
            let e = vms.entry(vm.to_owned()).or_insert((seq, seq));
            e.0 = e.0.min(seq);
            e.1 = e.1.max(seq);
        } else if let Some(id) = v.get("meshlog.request_id").and_then(|x| x.as_str()) {
            ids.push(id.to_owned());
        }
    }
    let mut parts: Vec<String> = vms
        .iter()
        .map(|(vm, (a, b))| format!("vm {vm} sequence {a}-{b}"))
        .collect();
    if !ids.is_empty() {
        let shown: Vec<&str> = ids.iter().take(5).map(String::as_str).collect();
        parts.push(format!(
            "request ids {}{}",
            shown.join(", "),
            if ids.len() > 5 {
                format!(" and {} more", ids.len() - 5)
            } else {
                String::new()
            }
        ));
    }
    Ok((!parts.is_empty()).then(|| parts.join("; ")))
}

impl Report {
    /// The human-readable report.
    pub fn write_text(&self, out: &mut impl Write) -> io::Result<()> {
        match &self.class {
            Some(class) => writeln!(
                out,
                "meshlog verify: {} (retention class {class})",
                self.data_dir
            )?,
            None => writeln!(out, "meshlog verify: {}", self.data_dir)?,
        }
        writeln!(
            out,
            "  store: {} segment{}, {} frames, {} records, {:.1} MB",
            self.segments,
            if self.segments == 1 { "" } else { "s" },
            self.frames,
            self.records,
            self.bytes as f64 / 1e6
        )?;
        writeln!(
            out,
            "  Merkle tree: {} leaves, root {}",
            self.tree_size, self.root
        )?;
        let c = &self.checkpoints;
        let keys = if self.signatures_checked {
            format!("{} verified with {}", c.verified, c.keys.join(", "))
        } else {
            "signatures NOT checked (no --public-key)".into()
        };
        write!(
            out,
            "  checkpoints: {} in {CHECKPOINT_LOG_FILE}, {keys}",
            c.entries
        )?;
        match &c.latest {
            Some(l) => writeln!(
                out,
                "; latest #{}: {} leaves at {}",
                l.number, l.size, l.time
            )?,
            None => writeln!(out)?,
        }
        if let Some(r) = &self.receipts {
            writeln!(
                out,
                "  deletion receipts: {} in {RECEIPTS_FILE}, {} valid{}",
                r.entries,
                r.valid,
                if r.authenticated {
                    ""
                } else {
                    " in form only: signatures NOT checked (no --public-key)"
                }
            )?;
        }
        if !self.deletions.is_empty() {
            writeln!(
                out,
                "  deleted by policy: {} segment{}, {} leaves{}",
                self.deleted_segments,
                if self.deleted_segments == 1 { "" } else { "s" },
                self.deleted_frames,
                if self.signatures_checked {
                    " (receipts verified)"
                } else {
                    " (NOT authenticated: no --public-key)"
                }
            )?;
            for d in &self.deletions {
                let leaves = match d.leaves {
                    Some([a, b]) if a == b => format!("leaf {a}"),
                    Some([a, b]) => format!("leaves {a}..{b}"),
                    None => "leaves not placed".into(),
                };
                writeln!(
                    out,
                    "    {} {}: {leaves}, {} frame{}, {} record{}; {}; receipt at offset {}; \
                     record: {}",
                    d.class,
                    d.segment,
                    d.frames,
                    if d.frames == 1 { "" } else { "s" },
                    d.records,
                    if d.records == 1 { "" } else { "s" },
                    d.rule,
                    d.receipt_offset,
                    d.record
                )?;
            }
        }
        writeln!(
            out,
            "  checked in {:.2} s ({:.1} MB/s)",
            self.seconds, self.mb_per_s
        )?;
        for n in &self.notes {
            writeln!(out, "  note: {n}")?;
        }
        if self.intact {
            writeln!(out, "INTACT")?;
            return Ok(());
        }
        writeln!(
            out,
            "NOT INTACT: {} finding{}",
            self.findings.len(),
            if self.findings.len() == 1 { "" } else { "s" }
        )?;
        let mut shown: HashMap<Kind, usize> = HashMap::new();
        for f in &self.findings {
            let n = shown.entry(f.kind).or_default();
            *n += 1;
            if *n > 50 {
                continue;
            }
            writeln!(out, "  [{}] {}", f.kind.name(), finding_place(f))?;
            writeln!(out, "      {}", f.message)?;
        }
        for (kind, n) in shown.iter().filter(|(_, n)| **n > 50) {
            writeln!(
                out,
                "  ... and {} more [{}] findings (see --json)",
                n - 50,
                kind.name()
            )?;
        }
        Ok(())
    }
}

/// What `meshlog verify` found in a data directory with retention classes: every store in it.
#[derive(Debug, Clone, Serialize)]
pub struct DataDirReport {
    /// The data directory.
    pub data_dir: String,
    /// No store has findings.
    pub intact: bool,
    /// Signatures (checkpoints and receipts) were checked.
    pub signatures_checked: bool,
    /// One report per store: the data directory's own store when it has segments, then each
    /// class store by name.
    pub stores: Vec<Report>,
    /// Remarks that are not problems.
    pub notes: Vec<String>,
    /// Time taken.
    pub seconds: f64,
}

/// Verifies every store of a data directory with retention classes: its own store when it has
/// segments (written without retention), then `classes/<name>/` for each class directory, each
/// a class store with its receipts. `progress(done, total)` counts the bytes of all of them.
pub fn verify_data_dir(
    data_dir: &Path,
    keys: &[VerifierKey],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<DataDirReport, ScanError> {
    let started = Instant::now();
    let classes = meshlog_format::layout::class_dirs(data_dir).map_err(|source| ScanError::Io {
        path: data_dir.join(meshlog_format::layout::CLASSES_DIR),
        source,
    })?;
    let mut stores: Vec<(std::path::PathBuf, Option<String>)> = Vec::new();
    let mut notes = Vec::new();
    if !scan::segments(data_dir)?.is_empty() {
        stores.push((data_dir.to_owned(), None));
    } else if data_dir.join(CHECKPOINT_LOG_FILE).exists() {
        // Left behind when the segments written without retention were moved into a class.
        notes.push(format!(
            "{} has a {CHECKPOINT_LOG_FILE} but no segments: not checked (its segments were \
             moved into a class when retention was turned on?); check it with `meshlog verify \
             --data-dir` on a copy holding them",
            data_dir.display()
        ));
    }
    stores.extend(classes.into_iter().map(|(name, dir)| (dir, Some(name))));
    let mut total = 0u64;
    for (dir, _) in &stores {
        total += scan::segments(dir)?.iter().map(|s| s.len).sum::<u64>();
    }
    let mut base = 0u64;
    let mut reports = Vec::with_capacity(stores.len());
    for (dir, class) in &stores {
        let r = verify_store(dir, class.as_deref(), keys, &mut |done, _| {
            progress(base + done, total.max(base + done))
        })?;
        base += r.bytes;
        reports.push(r);
    }
    Ok(DataDirReport {
        data_dir: data_dir.display().to_string(),
        intact: reports.iter().all(|r| r.intact),
        signatures_checked: !keys.is_empty(),
        stores: reports,
        notes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl DataDirReport {
    /// Findings in every store.
    pub fn findings(&self) -> usize {
        self.stores.iter().map(|r| r.findings.len()).sum()
    }

    /// The human-readable report: each store's, then a line per store and the verdict.
    pub fn write_text(&self, out: &mut impl Write) -> io::Result<()> {
        let name = |r: &Report| match &r.class {
            Some(c) => format!("class {c}"),
            None => "the store without retention".to_owned(),
        };
        writeln!(
            out,
            "meshlog verify: {}: {} store{} ({})",
            self.data_dir,
            self.stores.len(),
            if self.stores.len() == 1 { "" } else { "s" },
            self.stores.iter().map(name).collect::<Vec<_>>().join(", ")
        )?;
        for r in &self.stores {
            writeln!(out)?;
            r.write_text(out)?;
        }
        writeln!(out)?;
        for n in &self.notes {
            writeln!(out, "note: {n}")?;
        }
        for r in &self.stores {
            let n = r.findings.len();
            if r.intact {
                writeln!(
                    out,
                    "  {}: INTACT ({} segment{}, {} deleted by policy)",
                    name(r),
                    r.segments,
                    if r.segments == 1 { "" } else { "s" },
                    r.deleted_segments
                )?;
            } else {
                writeln!(
                    out,
                    "  {}: NOT INTACT ({n} finding{})",
                    name(r),
                    if n == 1 { "" } else { "s" }
                )?;
            }
        }
        if self.intact {
            writeln!(out, "INTACT")
        } else {
            let bad: Vec<String> = self.stores.iter().filter(|r| !r.intact).map(name).collect();
            writeln!(out, "NOT INTACT: {}", bad.join(", "))
        }
    }
}

/// Where a finding is, in words: file, offset, leaves, checkpoint, records.
fn finding_place(f: &Finding) -> String {
    let mut parts = Vec::new();
    if let Some(file) = &f.file {
        parts.push(match f.offset {
            Some(o) => format!("{file} offset {o}"),
            None => file.clone(),
        });
    }
    if let Some(c) = f.checkpoint {
        parts.push(format!("checkpoint #{c}"));
    }
    if let Some(l) = f.leaf {
        parts.push(format!("leaf {l}"));
    }
    if let Some([a, b]) = f.leaves {
        parts.push(if a == b {
            format!("leaf {a}")
        } else {
            format!("leaves {a}..{b}")
        });
    }
    if let Some(r) = f.records {
        let mut s = format!("{r} record{}", if r == 1 { "" } else { "s" });
        if let Some(b) = &f.batch_id {
            s.push_str(&format!(", batch id {b}"));
        }
        if let Some(ids) = &f.record_ids {
            s.push_str(&format!(", {ids}"));
        }
        parts.push(s);
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_time(1_764_000_000_123_456_789),
            "2025-11-24T16:00:00.123Z"
        );
        assert_eq!(
            format_time(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
