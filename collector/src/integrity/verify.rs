//! `meshlog verify`: recompute everything from the bytes on disk and name every place where
//! the store is not what the writer wrote and the checkpoints signed.
//!
//! What is checked, in order:
//!
//! 1. **Every byte of every segment** ([`super::scan`]): each frame's header and payload CRC;
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
//! A finding names the file (segment or `checkpoints.log`), the byte offset, the leaf index
//! (or range) and, for a frame, its record count, batch id and the records' ids. Findings are
//! evidence, not repairs: nothing is changed.

use super::checkpoint::{Checkpoint, CheckpointError, NoteError};
use super::checkpoint_log::{self, CHECKPOINT_LOG_FILE, Item as LogItem};
use super::keys::VerifierKey;
use super::merkle::{CompactTree, Hash, empty_root};
use super::scan::{self, Garbage, Item, ScanError, ScannedFrame, SegmentInfo};
use crate::store::format::SEGMENT_HEADER_LEN;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
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
        }
    }
}

/// One problem, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind.
    pub kind: Kind,
    /// The file: a segment file name, or `checkpoints.log`.
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
    fn new(kind: Kind, message: String) -> Self {
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

/// Everything `meshlog verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The data directory.
    pub data_dir: String,
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
    /// Leaves of the recomputed tree (the frames as stored).
    pub tree_size: u64,
    /// Its root, hex.
    pub root: String,
    /// Frames from before the hash chain (no chain entry), covered by checkpoints only.
    pub unchained_frames: u64,
    /// Leaves after the latest verified checkpoint: not signed yet.
    pub unsigned_leaves: u64,
    /// The checkpoints.
    pub checkpoints: CheckpointSummary,
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
/// they are checked. Checkpoint signatures are checked with `keys` (none: not checked).
pub fn verify(
    data_dir: &Path,
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
    let mut v = Verifier {
        data_dir,
        segments: &segments,
        items: &items,
        findings: Vec::new(),
        notes: Vec::new(),
        highest_leaf: None,
    };
    let (cps, log_findings, entries) = read_checkpoints(data_dir, keys)?;
    // The tree of the frames as stored, with its root at every checkpoint's size.
    let sizes: HashSet<u64> = cps.iter().map(|c| c.cp.size).collect();
    let mut roots: HashMap<u64, Hash> = HashMap::new();
    roots.insert(0, empty_root());
    let mut tree = CompactTree::new();
    let mut records = 0u64;
    for f in v.frames() {
        records += u64::from(f.1.records);
        // A slice of frames cannot reach 2^64 leaves.
        let _ = tree.append_leaf_hash(f.1.leaf);
        if sizes.contains(&tree.size()) {
            roots.insert(tree.size(), tree.root());
        }
    }
    let sorted = v.analyse();
    let mut findings = sorted;
    findings.extend(log_findings);
    let highest = v.highest_leaf;
    let mut cp_summary =
        v.check_checkpoints(&cps, keys, &roots, tree.size(), highest, &mut findings);
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
    let unsigned_leaves = tree.size().saturating_sub(latest_size);
    if unsigned_leaves > 0 && !keys.is_empty() {
        v.notes.push(format!(
            "leaves {latest_size}..{} are not covered by a signed checkpoint yet (written after \
             the latest one)",
            tree.size() - 1
        ));
    }
    if keys.is_empty() {
        v.notes.push(
            "checkpoint signatures were not checked (no --public-key): a store rewritten as a \
             whole, checkpoints included, would pass"
                .into(),
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Report {
        data_dir: data_dir.display().to_string(),
        intact: findings.is_empty(),
        signatures_checked: !keys.is_empty(),
        segments: segments.len(),
        frames: v.frames().count() as u64,
        records,
        bytes: total,
        tree_size: tree.size(),
        root: hex::encode(tree.root()),
        unchained_frames: unchained,
        unsigned_leaves,
        checkpoints: cp_summary,
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
}

/// Where things are, for placing missing leaves.
struct Places<'x> {
    /// Item index of each garbage stretch → its finding.
    garbage_at: &'x BTreeMap<usize, usize>,
    /// (segment index after a gap in the numbers, its finding).
    seg_gaps: &'x [(usize, usize)],
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

        // Gaps in the segment numbers.
        let mut seg_gaps: Vec<(usize, usize)> = Vec::new(); // (segment index after the gap, finding)
        let mut expected = 1u64;
        for (i, s) in self.segments.iter().enumerate() {
            if s.seq > expected {
                let names: Vec<String> = (expected..s.seq)
                    .take(5)
                    .map(crate::store::reader::segment_file_name)
                    .collect();
                let more = (s.seq - expected).saturating_sub(5);
                let mut f = Finding::new(
                    Kind::SegmentMissing,
                    format!(
                        "segment file{} {}{} missing: the segment numbers jump from {} to {}",
                        if s.seq - expected > 1 { "s" } else { "" },
                        names.join(", "),
                        if more > 0 {
                            format!(" and {more} more are")
                        } else if s.seq - expected > 1 {
                            " are".into()
                        } else {
                            " is".into()
                        },
                        expected.saturating_sub(1),
                        s.seq
                    ),
                );
                f.file = names.first().cloned();
                let item = self
                    .items
                    .iter()
                    .position(|it| match it {
                        Item::Frame(fr) => fr.segment >= i,
                        Item::Garbage(g) => g.segment >= i,
                    })
                    .unwrap_or(self.items.len());
                let at = self.push(item, f);
                seg_gaps.push((i, at));
            }
            expected = s.seq + 1;
        }

        // Duplicates, claims, unchained frames.
        let unchained_end = frames
            .iter()
            .position(|(_, f)| f.chain.is_some())
            .unwrap_or(n);
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
                    status[k] = Status::Unchained;
                    claim[k] = k as u64;
                    claims.entry(k as u64).or_default().push(k);
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
        // Missing leaves: gaps in the indexes from 0 to the highest.
        let mut gaps: Vec<(u64, u64)> = Vec::new();
        let mut next = 0u64;
        for &c in genuine.keys() {
            if c > next {
                gaps.push((next, c - 1));
            }
            next = c + 1;
        }
        for (s, e) in gaps {
            let before = s.checked_sub(1).and_then(|p| genuine.get(&p)).copied();
            let Some(&after) = genuine.get(&(e + 1)) else {
                continue;
            };
            let places = Places {
                garbage_at: &garbage_at,
                seg_gaps: &seg_gaps,
                seg_bounds: &seg_bounds,
            };
            self.missing(&frames, before, after, (s, e), &places);
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
        // Bytes that are no frame where the leaves should be: that is what became of them.
        let lo = ib.map_or(0, |i| i + 1);
        if lo < ia
            && let Some(&at) = garbage_at.range(lo..ia).next().map(|(_, at)| at)
            && let Some((_, f)) = self.findings.get_mut(at)
        {
            f.leaves = Some([s, e]);
            f.message = format!(
                "{}; {range} missing, these bytes are where they were",
                f.message
            );
            return;
        }
        // A gap in the segment numbers between them.
        let sb = before.map(|b| frames[b].1.segment);
        if let Some(&(_, at)) = seg_gaps
            .iter()
            .find(|(i, _)| *i == fa.segment && sb.is_none_or(|sb| sb < *i))
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
            if last_of_segment && fb.segment + 1 == fa.segment {
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
                None => format!(
                    "{range} missing: the store starts with leaf {} at {}",
                    e + 1,
                    self.loc(fa)
                ),
            },
        );
        x.file = Some(self.seg_name(fa.segment));
        x.offset = Some(fa.offset);
        x.leaves = Some([s, e]);
        self.push(ia, x);
    }

    /// Checkpoint findings (appended to `findings`) and the summary.
    fn check_checkpoints(
        &mut self,
        cps: &[Cp],
        keys: &[VerifierKey],
        roots: &HashMap<u64, Hash>,
        tree_size: u64,
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
        for c in cps {
            let (n, k) = (c.cp.size, c.number);
            if n > tree_size && highest.is_none_or(|h| h + 1 < n) {
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
        writeln!(out, "meshlog verify: {}", self.data_dir)?;
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
