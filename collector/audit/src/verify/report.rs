//! What `meshlog verify` reports: the kinds of findings, a finding and where it is, and the
//! reports of one store ([`Report`]) and of a data directory with classes ([`DataDirReport`]).
//! Plain data: the analysis fills it in, [`super::render`] writes it out. The receipt loader
//! ([`crate::deletions`]) builds its findings from here too.

use serde::Serialize;

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
    /// The latest checkpoint lacks the cosignature of a required witness (`--witness`).
    NotWitnessed,
    /// The store has fewer leaves than a witness cosigned: rolled back or deleted.
    BehindWitness,
    /// The store's tree is not the one a witness cosigned (forked), or the witness state is
    /// unreadable.
    WitnessMismatch,
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
            Kind::NotWitnessed => "not_witnessed",
            Kind::BehindWitness => "behind_witness",
            Kind::WitnessMismatch => "witness_mismatch",
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
    /// For checkpoints grouped under one cause: the first and last checkpoint (numbers in
    /// `checkpoints.log`, inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<[usize; 2]>,
    /// For checkpoints grouped under one cause: their tree sizes, first and last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sizes: Option<[u64; 2]>,
    /// For checkpoints grouped under one cause: how many.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// The finding that explains this one (a frame-level change every later root includes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// What is wrong, in words.
    pub message: String,
}

/// The finding another one follows from, by its place in the report's `findings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    /// Its index in `findings` (from 0).
    pub finding: usize,
    /// Its kind.
    pub kind: Kind,
    /// Its file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Its byte offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Its leaf.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf: Option<u64>,
    /// Its leaves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaves: Option<[u64; 2]>,
}

impl Cause {
    /// Refers to `f`, at `index` in the findings.
    pub(crate) fn of(index: usize, f: &Finding) -> Self {
        Cause {
            finding: index,
            kind: f.kind,
            file: f.file.clone(),
            offset: f.offset,
            leaf: f.leaf,
            leaves: f.leaves,
        }
    }
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
            checkpoints: None,
            sizes: None,
            count: None,
            cause: None,
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

impl DataDirReport {
    /// Findings in every store.
    pub fn findings(&self) -> usize {
        self.stores.iter().map(|r| r.findings.len()).sum()
    }
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
