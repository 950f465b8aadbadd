//! Verify's side of deletions by policy, once the receipts are loaded ([`crate::deletions`]):
//! where the deleted segments' leaves sit in the log and whether the frames around them fit
//! their receipts ([`place_deletions`]), and where each deletion's own record is
//! ([`deletion_records`]).

use super::chain::Claims;
use super::records::deletion_notes;
use super::report::{Deletion, Finding, Kind, format_time};
use super::scanned::{Located, Scanned};
use crate::deletions::Deleted;
use crate::scan::ScannedFrame;
use meshlog_format::reader::segment_file_name;
use meshlog_format::receipt::{DELETION_EVENT, RECEIPTS_FILE};
use std::collections::{BTreeMap, HashMap};

/// Where the leaves of the segments deleted by policy sit.
#[derive(Debug, Default)]
pub(super) struct Placement {
    /// Sequence number → first and last leaf.
    pub placed: BTreeMap<u64, [u64; 2]>,
    /// The same by first leaf: first leaf → (last leaf, sequence number).
    pub covered: BTreeMap<u64, (u64, u64)>,
}

impl Placement {
    /// The segment deleted by policy whose leaves include `leaf`.
    pub fn deleted_at(&self, leaf: u64) -> Option<u64> {
        self.covered
            .range(..=leaf)
            .next_back()
            .filter(|(_, (last, _))| leaf <= *last)
            .map(|(_, (_, seq))| *seq)
    }
}

/// A run of consecutive deleted segments, as its receipts describe it.
struct Run<'a> {
    /// Their sequence numbers.
    seqs: Vec<u64>,
    /// The last one's receipt.
    last: &'a Deleted,
    /// Frames the receipts say were deleted.
    total: u64,
    /// `<segment>` or `<first>..<last>`.
    names: String,
}

/// Places the leaves of the segments deleted by policy, one run of consecutive sequence
/// numbers at a time, and checks the frames around each run against its receipts: the first
/// frame after it must name the last deleted leaf as its predecessor, and the leaf indexes
/// must skip exactly the deleted frames (from the frame before it, or from leaf 0 when the run
/// starts the log). Findings are appended to `found`.
pub(super) fn place_deletions(s: &Scanned<'_>, c: &Claims, found: &mut Vec<Located>) -> Placement {
    let mut placement = Placement::default();
    // Per segment index, the positions (among frames) of its leaves.
    let mut by_segment: HashMap<usize, Vec<usize>> = HashMap::new();
    for (k, (_, f)) in s.frames.iter().enumerate() {
        if c.status[k].is_leaf() {
            by_segment.entry(f.segment).or_default().push(k);
        }
    }
    let index_of: HashMap<u64, usize> = s
        .segments
        .iter()
        .enumerate()
        .map(|(i, sg)| (sg.seq, i))
        .collect();
    let leaves_of = |seq: u64| index_of.get(&seq).and_then(|i| by_segment.get(i));
    for run in runs(s.deleted) {
        let (Some(&a), Some(&b)) = (run.seqs.first(), run.seqs.last()) else {
            continue;
        };
        // The frame chained to the last deleted leaf, normally the next segment's first.
        let anchor = leaves_of(b + 1).and_then(|ks| {
            ks.iter().copied().find(|&k| {
                s.frame(k)
                    .chain
                    .is_some_and(|ch| ch.prev_leaf == run.last.receipt.last_leaf)
            })
        });
        if anchor.is_none()
            && let Some(&i) = index_of.get(&(b + 1))
        {
            let first = leaves_of(b + 1).and_then(|ks| ks.first()).copied();
            found.push(unchained_after(s, c, &run, i, first, b));
        }
        // Where the run must start, from the frames before it.
        let from_before: Option<(u64, Option<usize>)> = if a == 1 {
            Some((0, None))
        } else {
            leaves_of(a - 1)
                .and_then(|ks| ks.last())
                .map(|&k| (c.claim[k] + 1, Some(k)))
        };
        let from_after = anchor.map(|k| (c.claim[k].checked_sub(run.total), k));
        found.extend(skip_mismatch(s, c, &run, from_after, from_before));
        let start = match from_after {
            Some((start, _)) => start,
            None => from_before.map(|(s, _)| s),
        };
        let Some(mut at) = start else { continue };
        for seq in &run.seqs {
            let Some(d) = s.deleted.get(seq) else {
                continue;
            };
            let range = [at, at + d.receipt.frames - 1];
            placement.placed.insert(*seq, range);
            placement.covered.insert(range[0], (range[1], *seq));
            at += d.receipt.frames;
        }
    }
    placement
}

/// The deleted segments as runs of consecutive sequence numbers.
fn runs(deleted: &BTreeMap<u64, Deleted>) -> Vec<Run<'_>> {
    let mut seqs: Vec<Vec<u64>> = Vec::new();
    for &seq in deleted.keys() {
        match seqs.last_mut() {
            Some(run) if run.last().is_some_and(|l| l + 1 == seq) => run.push(seq),
            _ => seqs.push(vec![seq]),
        }
    }
    seqs.into_iter()
        .filter_map(|seqs| {
            let (&a, &b) = (seqs.first()?, seqs.last()?);
            let last = deleted.get(&b)?;
            let total = seqs
                .iter()
                .filter_map(|s| deleted.get(s))
                .map(|d| d.receipt.frames)
                .sum();
            let names = if a == b {
                last.receipt.segment.clone()
            } else {
                format!("{}..{}", segment_file_name(a), last.receipt.segment)
            };
            Some(Run {
                seqs,
                last,
                total,
                names,
            })
        })
        .collect()
}

/// No frame of the segment after the run (index `i`, first leaf `first`) chains to its last
/// deleted leaf.
fn unchained_after(
    s: &Scanned<'_>,
    c: &Claims,
    run: &Run<'_>,
    i: usize,
    first: Option<usize>,
    last_seq: u64,
) -> Located {
    let r = &run.last.receipt;
    let what = format!(
        "no frame of {} names the last leaf of {} ({}, from its receipt) as its predecessor: \
         the frames after the deletion were removed, altered or replaced",
        s.seg_name(i),
        r.segment,
        hex::encode(r.last_leaf)
    );
    match first {
        Some(k) => {
            let message = match s.frame(k).chain {
                Some(ch) => format!(
                    "{what}; its first frame, leaf {}, names {}",
                    ch.leaf_index,
                    hex::encode(ch.prev_leaf)
                ),
                None => format!("{what}; its first frame has no chain entry"),
            };
            s.frame_finding(Kind::DeletionMismatch, k, Some(c.claim[k]), message)
        }
        None => {
            let mut x = Finding::new(Kind::DeletionMismatch, what);
            x.file = Some(s.seg_name(i));
            Located::new(s.first_item_after(last_seq), x)
        }
    }
}

/// The leaf indexes around the run skip fewer leaves than its receipts say were deleted.
/// `from_after`: where the run starts counted back from the frame chained to it (`None`: before
/// leaf 0); `from_before`: where it must start, from the frame before it.
fn skip_mismatch(
    s: &Scanned<'_>,
    c: &Claims,
    run: &Run<'_>,
    from_after: Option<(Option<u64>, usize)>,
    from_before: Option<(u64, Option<usize>)>,
) -> Option<Located> {
    let (names, total) = (&run.names, run.total);
    match (from_after, from_before) {
        (Some((None, k)), _) => Some(s.frame_finding(
            Kind::DeletionMismatch,
            k,
            Some(c.claim[k]),
            format!(
                "leaf {} follows {names}, whose receipts say {total} frames were deleted: more \
                 than there are leaves before it",
                c.claim[k]
            ),
        )),
        (Some((Some(start), k)), Some((expected, kb))) if start < expected => {
            let before = match kb {
                Some(kb) => format!("leaf {} ({})", expected - 1, s.loc(s.frame(kb))),
                None => "the start of the log".into(),
            };
            Some(s.frame_finding(
                Kind::DeletionMismatch,
                k,
                Some(c.claim[k]),
                format!(
                    "the receipts of {names} say {total} frames were deleted, but the leaf \
                     indexes skip only {} between {before} and leaf {}: the receipts do not fit \
                     the log",
                    c.claim[k] - expected,
                    c.claim[k]
                ),
            ))
        }
        // Skipping more than the receipts say leaves leaves unaccounted for: the gap detection
        // reports them.
        _ => None,
    }
}

/// The deletions for the report, where each one's `meshlog.retention.deletion` record is (a
/// finding when nowhere), and a note when records were matched by batch id only.
pub(super) struct Records {
    pub deletions: Vec<Deletion>,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
}

/// Finds each deletion's record: in a frame of the store with its batch id (and, when the
/// payload can be read, the same receipt), or in a segment deleted later whose records'
/// observed times cover the sweep.
pub(super) fn deletion_records(s: &Scanned<'_>, placement: &Placement) -> Records {
    let mut by_batch: HashMap<&str, Vec<&ScannedFrame>> = HashMap::new();
    for (_, f) in &s.frames {
        if let Some(id) = f.batch_id.as_deref()
            && id.starts_with(DELETION_EVENT)
        {
            by_batch.entry(id).or_default().push(f);
        }
    }
    let mut out = Records {
        deletions: Vec::new(),
        findings: Vec::new(),
        notes: Vec::new(),
    };
    let mut sealed = 0usize;
    for d in s.deleted.values() {
        let candidates = by_batch.get(d.receipt.batch_id().as_str());
        let (mut record, other_note, was_sealed) =
            record_in_store(s, d, candidates.map_or(&[][..], Vec::as_slice));
        sealed += usize::from(was_sealed);
        if record.is_none() {
            record = record_in_later_deletion(s.deleted, d);
        }
        let leaves = placement.placed.get(&d.seq).copied();
        if record.is_none() {
            out.findings
                .push(record_missing(d, other_note.as_deref(), leaves));
        }
        out.deletions.push(deletion(d, leaves, record));
    }
    if sealed > 0 {
        out.notes.push(format!(
            "{sealed} deletion record{} matched by batch id only: {} sealed (verify never \
             opens payloads; `meshlog query` with the data keys shows {})",
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

/// The record among the frames with its batch id: (where, where one with another receipt is,
/// matched by batch id because sealed).
fn record_in_store(
    s: &Scanned<'_>,
    d: &Deleted,
    candidates: &[&ScannedFrame],
) -> (Option<String>, Option<String>, bool) {
    let mut other_note = None;
    for f in candidates {
        let Some(seg) = s.segments.get(f.segment) else {
            continue;
        };
        let place = format!(
            "{}{}",
            f.chain
                .map_or(String::new(), |c| format!("leaf {}, ", c.leaf_index)),
            s.loc(f)
        );
        match deletion_notes(&seg.path, f) {
            Ok(Some(notes)) if notes.contains(&d.note) => return (Some(place), None, false),
            Ok(Some(_)) => other_note = Some(place),
            // Sealed (not plain zstd): matched by its batch id only.
            Ok(None) => {
                let at = format!("{place} (matched by batch id: payload sealed)");
                return (Some(at), None, true);
            }
            Err(e) => {
                let at = format!("{place} (matched by batch id: payload unreadable: {e})");
                return (Some(at), None, false);
            }
        }
    }
    (None, other_note, false)
}

/// Or the record was in a segment deleted after this one: a record is observed at its sweep
/// time, and that segment's receipt says it held records observed then.
fn record_in_later_deletion(deleted: &BTreeMap<u64, Deleted>, d: &Deleted) -> Option<String> {
    let swept = d.receipt.swept_unix_ns;
    deleted
        .range(d.seq + 1..)
        .find(|(_, e)| {
            e.receipt.oldest_observed_unix_ns <= swept && swept <= e.receipt.newest_observed_unix_ns
        })
        .map(|(_, e)| format!("in {}, deleted by policy too", e.receipt.segment))
}

/// No record of deletion `d`: `other_note` is where one with another receipt is.
fn record_missing(d: &Deleted, other_note: Option<&str>, leaves: Option<[u64; 2]>) -> Finding {
    let r = &d.receipt;
    let mut x = Finding::new(
        Kind::DeletionRecordMissing,
        match other_note {
            Some(place) => format!(
                "the deletion record of {} ({place}) carries another receipt than the one in \
                 {RECEIPTS_FILE} at offset {}; the deletion is still accepted (its receipt is \
                 valid)",
                r.segment, d.offset
            ),
            None => format!(
                "no {DELETION_EVENT} record for the deletion of {} (batch id {}): the store \
                 should hold it, or a segment deleted later should have; the deletion is still \
                 accepted (its receipt is valid), but the record was removed",
                r.segment,
                r.batch_id()
            ),
        },
    );
    x.file = Some(RECEIPTS_FILE.into());
    x.offset = Some(d.offset);
    x.leaves = leaves;
    x
}

/// Deletion `d` for the report.
fn deletion(d: &Deleted, leaves: Option<[u64; 2]>, record: Option<String>) -> Deletion {
    use meshlog_format::time::rfc3339;
    let r = &d.receipt;
    Deletion {
        class: r.class.clone(),
        segment: r.segment.clone(),
        leaves,
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
    }
}

#[cfg(test)]
mod tests {
    use super::super::scanned::synthetic::{hash, kinds, leaf, segment};
    use super::*;
    use crate::scan::Item;
    use meshlog_format::receipt::Receipt;

    /// Segment `seq`, deleted by policy, which held `frames` frames, the last with leaf hash
    /// `last`.
    fn deleted(seq: u64, frames: u64, last: u64) -> Deleted {
        Deleted {
            seq,
            receipt: Receipt {
                class: "short".into(),
                segment: segment_file_name(seq),
                bytes: 1000,
                sha256: [0; 32],
                frames,
                records: frames,
                leaves_sha256: [0; 32],
                first_leaf: hash(last + 1 - frames),
                last_leaf: hash(last),
                oldest_observed_unix_ns: 0,
                newest_observed_unix_ns: 0,
                retention_days: 30,
                swept_unix_ns: 0,
            },
            note: String::new(),
            offset: 0,
            authenticated: true,
            leaves: None,
        }
    }

    /// Segments 1 and 2 deleted (leaves 0..2 and 3..4), segment 3 holding leaves 5..7.
    fn place(items: &[Item], receipts: [(u64, u64); 2]) -> (Placement, Vec<Located>) {
        let segs = [segment(3)];
        let del: BTreeMap<u64, Deleted> = [
            (1, deleted(1, receipts[0].0, receipts[0].1)),
            (2, deleted(2, receipts[1].0, receipts[1].1)),
        ]
        .into();
        let s = Scanned::new(&segs, items, &del, true);
        let c = Claims::build(&s);
        let mut found = Vec::new();
        let p = place_deletions(&s, &c, &mut found);
        (p, found)
    }

    fn after_the_deletions() -> Vec<Item> {
        (5..8).map(|i| Item::Frame(leaf(0, i))).collect()
    }

    #[test]
    fn deleted_segments_take_the_leaves_their_receipts_say() {
        let (p, found) = place(&after_the_deletions(), [(3, 2), (2, 4)]);
        assert!(found.is_empty());
        assert_eq!(p.placed, [(1, [0, 2]), (2, [3, 4])].into());
        assert_eq!(p.deleted_at(4), Some(2));
        assert_eq!(p.deleted_at(5), None);
    }

    #[test]
    fn a_frame_after_the_deletions_chained_elsewhere_is_a_mismatch() {
        // The last receipt names leaf hash 9 as its last leaf: leaf 5 names hash(4).
        let (_, found) = place(&after_the_deletions(), [(3, 2), (2, 9)]);
        assert_eq!(kinds(&found), [Kind::DeletionMismatch]);
        assert_eq!(found[0].finding.leaf, Some(5));
        assert!(found[0].finding.message.contains("no frame of"));
    }

    #[test]
    fn receipts_counting_more_frames_than_leaves_before_are_a_mismatch() {
        let (_, found) = place(&after_the_deletions(), [(4, 3), (2, 4)]);
        assert_eq!(kinds(&found), [Kind::DeletionMismatch]);
        assert!(
            found[0]
                .finding
                .message
                .contains("more than there are leaves before it"),
            "{}",
            found[0].finding.message
        );
    }
}
