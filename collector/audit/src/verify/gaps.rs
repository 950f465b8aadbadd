//! What is not there: bytes that are no frame ([`garbage_findings`]), segment files missing
//! from the numbering ([`segment_gap_findings`]), and leaf indexes no frame holds
//! ([`gap_findings`]). A missing leaf is reported where it went: into bytes that are no frame,
//! with a missing segment file, cut from a segment's end, or removed.

use super::chain::Claims;
use super::deletions::Placement;
use super::report::{Finding, Kind};
use super::scanned::{Located, Scanned};
use crate::scan::{Garbage, Item};
use meshlog_format::frame::SEGMENT_HEADER_LEN;
use meshlog_format::reader::segment_file_name;
use std::collections::{BTreeMap, HashMap};

/// A run of missing segment files that no receipt explains.
pub(super) struct SegGap {
    /// Its first and last sequence numbers.
    pub first: u64,
    pub last: u64,
    /// Its finding (index in the findings so far).
    pub finding: usize,
}

/// Where things are, for placing missing leaves.
#[derive(Default)]
pub(super) struct Places {
    /// Item index of each garbage stretch → its finding.
    pub garbage_at: BTreeMap<usize, usize>,
    /// Runs of missing segment files.
    pub seg_gaps: Vec<SegGap>,
    /// Segment index → item indexes of its first and last frame.
    pub seg_bounds: HashMap<usize, (usize, usize)>,
}

/// Garbage and missing segment files, appended to `found`; where they are, for
/// [`gap_findings`].
pub(super) fn structure_findings(s: &Scanned<'_>, found: &mut Vec<Located>) -> Places {
    let mut places = Places::default();
    for x in garbage_findings(s) {
        places.garbage_at.insert(x.item, found.len());
        found.push(x);
    }
    for (first, last, x) in segment_gap_findings(s) {
        places.seg_gaps.push(SegGap {
            first,
            last,
            finding: found.len(),
        });
        found.push(x);
    }
    for (item, f) in &s.frames {
        let e = places.seg_bounds.entry(f.segment).or_insert((*item, *item));
        e.1 = *item;
    }
    places
}

/// One finding per stretch of bytes that is no frame.
pub(super) fn garbage_findings(s: &Scanned<'_>) -> Vec<Located> {
    let last_seg = s.segments.len().saturating_sub(1);
    s.items
        .iter()
        .enumerate()
        .filter_map(|(i, it)| match it {
            Item::Garbage(g) => Some(Located::new(
                i,
                garbage_finding(s, g, g.segment == last_seg),
            )),
            Item::Frame(_) => None,
        })
        .collect()
}

fn garbage_finding(s: &Scanned<'_>, g: &Garbage, newest: bool) -> Finding {
    let seg_len = s.segments.get(g.segment).map_or(0, |s| s.len);
    let n = g.end - g.offset;
    let (kind, what) = if g.offset == 0 && newest && seg_len < SEGMENT_HEADER_LEN {
        (
            Kind::TornTail,
            format!(
                "the newest segment is {seg_len} bytes, shorter than a segment header: a crash \
                 while it was created (serve rewrites it at its next start)"
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
                 interrupted write not yet cut (serve cuts it at its next start; it was never \
                 acknowledged), or a damaged last frame",
                g.reason
            ),
        )
    } else if g.end == seg_len {
        (
            Kind::Truncated,
            format!(
                "the segment ends inside a frame ({}): it was cut short; {n} bytes belong to \
                 no frame",
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
    f.file = Some(s.seg_name(g.segment));
    f.offset = Some(g.offset);
    f.end = Some(g.end);
    f
}

/// Gaps in the segment numbers that no receipt explains, as runs of missing files: (first,
/// last, finding at the next segment's first item).
pub(super) fn segment_gap_findings(s: &Scanned<'_>) -> Vec<(u64, u64, Located)> {
    let mut out = Vec::new();
    let mut expected = 1u64;
    for (i, sg) in s.segments.iter().enumerate() {
        let mut run: Option<(u64, u64)> = None;
        let mut runs = Vec::new();
        for seq in expected..sg.seq {
            if s.deleted.contains_key(&seq) {
                runs.extend(run.take());
            } else {
                run = Some(run.map_or((seq, seq), |(a, _)| (a, seq)));
            }
        }
        runs.extend(run);
        let item = s
            .items
            .iter()
            .position(|it| match it {
                Item::Frame(fr) => fr.segment >= i,
                Item::Garbage(g) => g.segment >= i,
            })
            .unwrap_or(s.items.len());
        for (first, last) in runs {
            out.push((
                first,
                last,
                Located::new(item, segments_missing(s, first, last)),
            ));
        }
        expected = sg.seq + 1;
    }
    out
}

/// The finding for segment files `first..=last`, missing without a receipt.
fn segments_missing(s: &Scanned<'_>, first: u64, last: u64) -> Finding {
    let count = last - first + 1;
    let names: Vec<String> = (first..=last).take(5).map(segment_file_name).collect();
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
            match (s.class_store, count > 1) {
                (true, true) => " and no valid deletion receipt names them",
                (true, false) => " and no valid deletion receipt names it",
                (false, _) => "",
            },
            first - 1,
            last + 1
        ),
    );
    f.file = names.first().cloned();
    f
}

/// What comes after a run of missing leaves.
#[derive(Clone, Copy)]
enum After {
    /// A frame (its position).
    Frame(usize),
    /// The leaves of a segment deleted by policy (its sequence number).
    Deleted(u64),
}

/// Missing leaves: gaps in the indexes from 0 to the highest, the leaves of segments deleted
/// by policy counting as there. Each is folded into the finding that explains it, or reported.
pub(super) fn gap_findings(
    s: &Scanned<'_>,
    c: &Claims,
    placement: &Placement,
    places: &Places,
    found: &mut Vec<Located>,
) {
    let mut known: Vec<(u64, u64)> = c.genuine.keys().map(|&l| (l, l)).collect();
    known.extend(placement.covered.iter().map(|(&a, &(b, _))| (a, b)));
    known.sort_unstable();
    let mut gaps: Vec<(u64, u64)> = Vec::new();
    let mut next = 0u64;
    for (a, b) in known {
        if a > next {
            gaps.push((next, a - 1));
        }
        next = next.max(b.saturating_add(1));
    }
    let mut g = Gaps {
        s,
        placement,
        places,
        found,
    };
    for (first, last) in gaps {
        let before = first
            .checked_sub(1)
            .and_then(|p| c.genuine.get(&p))
            .copied();
        let after = match c.genuine.get(&(last + 1)) {
            Some(&k) => After::Frame(k),
            None => match placement.deleted_at(last + 1) {
                Some(seq) => After::Deleted(seq),
                None => continue,
            },
        };
        g.missing(before, after, [first, last]);
    }
}

/// The context for reporting missing leaves.
struct Gaps<'x, 's> {
    s: &'x Scanned<'s>,
    placement: &'x Placement,
    places: &'x Places,
    found: &'x mut Vec<Located>,
}

impl Gaps<'_, '_> {
    /// Reports leaves `first..=last`, missing between frame `before` (a position) and `after`.
    fn missing(&mut self, before: Option<usize>, after: After, leaves: [u64; 2]) {
        let s = self.s;
        let [first, last] = leaves;
        let count = last - first + 1;
        let range = if first == last {
            format!("leaf {first} is")
        } else {
            format!("leaves {first}..{last} ({count}) are")
        };
        // Leaves right after a segment deleted by policy: the frames after it.
        let deleted_before = match before {
            None => first
                .checked_sub(1)
                .and_then(|p| self.placement.deleted_at(p)),
            Some(_) => None,
        };
        let lo = match (before, deleted_before) {
            (Some(b), _) => s.frames[b].0 + 1,
            (None, Some(seq)) => s.first_item_after(seq),
            (None, None) => 0,
        };
        let (hi, seq_after) = match after {
            After::Frame(a) => (s.frames[a].0, s.seq_of(s.frame(a).segment)),
            After::Deleted(seq) => (s.first_item_after(seq), seq),
        };
        // Bytes that are no frame where the leaves should be: that is what became of them.
        if self.fold_into_garbage(lo..hi, leaves, &range) {
            return;
        }
        // A gap in the segment numbers between them.
        let seq_before = before
            .map(|b| s.seq_of(s.frame(b).segment))
            .or(deleted_before);
        if self.fold_into_segment_gap(seq_before, seq_after, leaves, &range) {
            return;
        }
        let x = match after {
            After::Frame(a) => match self.cut_from_segment_end(before, a, leaves, &range) {
                Some(x) => x,
                None => self.removed(before, a, deleted_before, leaves, &range),
            },
            After::Deleted(seq) => self.removed_before_deleted(before, seq, lo, leaves, &range),
        };
        self.found.push(x);
    }

    /// When bytes that are no frame lie between `items` (a garbage finding), the missing
    /// leaves are what became of them: says so in that finding, and returns true.
    fn fold_into_garbage(
        &mut self,
        items: std::ops::Range<usize>,
        leaves: [u64; 2],
        range: &str,
    ) -> bool {
        if items.is_empty() {
            return false;
        }
        let Some(&at) = self.places.garbage_at.range(items).next().map(|(_, at)| at) else {
            return false;
        };
        let Some(x) = self.found.get_mut(at) else {
            return false;
        };
        x.finding.leaves = Some(leaves);
        x.finding.message = format!(
            "{}; {range} missing, these bytes are where they were",
            x.finding.message
        );
        true
    }

    /// When segment files are missing between `seq_before` and `seq_after`, the leaves went
    /// with them: says so in that finding, and returns true.
    fn fold_into_segment_gap(
        &mut self,
        seq_before: Option<u64>,
        seq_after: u64,
        leaves: [u64; 2],
        range: &str,
    ) -> bool {
        let Some(at) = self
            .places
            .seg_gaps
            .iter()
            .find(|g| g.last < seq_after && seq_before.is_none_or(|sb| sb < g.first))
            .map(|g| g.finding)
        else {
            return false;
        };
        let Some(x) = self.found.get_mut(at) else {
            return false;
        };
        x.finding.leaves = Some(leaves);
        x.finding.message = format!("{}; {range} missing with it", x.finding.message);
        true
    }

    /// The leaves are missing from the end of the segment before `after`'s (a segment cut at
    /// a frame boundary).
    fn cut_from_segment_end(
        &self,
        before: Option<usize>,
        after: usize,
        [first, last]: [u64; 2],
        range: &str,
    ) -> Option<Located> {
        let s = self.s;
        let b = before?;
        let (ia, fa) = s.frames[after];
        let (ib, fb) = s.frames[b];
        let bounds = &self.places.seg_bounds;
        let first_of_segment = bounds.get(&fa.segment).map(|b| b.0) == Some(ia);
        let last_of_segment = bounds.get(&fb.segment).map(|b| b.1) == Some(ib);
        if !(first_of_segment
            && last_of_segment
            && s.seq_of(fb.segment) + 1 == s.seq_of(fa.segment))
        {
            return None;
        }
        let mut x = Finding::new(
            Kind::Truncated,
            format!(
                "the segment ends after leaf {} at offset {}; {range} missing from its end: it \
                 was cut short (leaf {} starts {})",
                first - 1,
                fb.offset + fb.len,
                last + 1,
                s.seg_name(fa.segment)
            ),
        );
        x.file = Some(s.seg_name(fb.segment));
        x.offset = Some(fb.offset + fb.len);
        x.leaves = Some([first, last]);
        Some(Located::new(ib, x))
    }

    /// The leaves were removed from between `before` and frame `after`.
    fn removed(
        &self,
        before: Option<usize>,
        after: usize,
        deleted_before: Option<u64>,
        [first, last]: [u64; 2],
        range: &str,
    ) -> Located {
        let s = self.s;
        let count = last - first + 1;
        let were = if count == 1 { " was" } else { "s were" };
        let (ia, fa) = s.frames[after];
        let message = match (before, deleted_before) {
            (Some(b), _) => format!(
                "{range} missing: leaf {} is at {}, leaf {} at {}; {count} frame{were} removed",
                first - 1,
                s.loc(s.frame(b)),
                last + 1,
                s.loc(fa),
            ),
            (None, Some(seq)) => format!(
                "{range} missing: they come after {}, deleted by policy (its leaves end at {}), \
                 and leaf {} is at {}; {count} frame{were} removed",
                segment_file_name(seq),
                first - 1,
                last + 1,
                s.loc(fa),
            ),
            (None, None) => format!(
                "{range} missing: the store starts with leaf {} at {}",
                last + 1,
                s.loc(fa)
            ),
        };
        let mut x = Finding::new(Kind::Removed, message);
        x.file = Some(s.seg_name(fa.segment));
        x.offset = Some(fa.offset);
        x.leaves = Some([first, last]);
        Located::new(ia, x)
    }

    /// The leaves are missing between `before` and the leaves of segment `seq`, deleted by
    /// policy; reported at item `lo`.
    fn removed_before_deleted(
        &self,
        before: Option<usize>,
        seq: u64,
        lo: usize,
        [first, last]: [u64; 2],
        range: &str,
    ) -> Located {
        let s = self.s;
        let name = segment_file_name(seq);
        let mut x = Finding::new(
            Kind::Removed,
            format!(
                "{range} missing before {name}, deleted by policy (its leaves start at {}): \
                 frames were cut {}, or the receipts' frame counts do not fit the log",
                last + 1,
                match before {
                    Some(b) => format!("after leaf {} ({})", first - 1, s.loc(s.frame(b))),
                    None => "from the start of the log".into(),
                }
            ),
        );
        match before {
            Some(b) => {
                let fb = s.frame(b);
                x.file = Some(s.seg_name(fb.segment));
                x.offset = Some(fb.offset + fb.len);
            }
            None => x.file = Some(name),
        }
        x.leaves = Some([first, last]);
        Located::new(lo, x)
    }
}

#[cfg(test)]
mod tests {
    use super::super::scanned::synthetic::{chain, kinds, leaf, segment};
    use super::*;
    use crate::scan::Garbage;

    fn run(segs: &[crate::scan::SegmentInfo], items: &[Item]) -> Vec<Located> {
        let deleted = BTreeMap::new();
        let s = Scanned::new(segs, items, &deleted, false);
        let mut found = Vec::new();
        let places = structure_findings(&s, &mut found);
        let c = Claims::build(&s);
        gap_findings(&s, &c, &Placement::default(), &places, &mut found);
        found
    }

    #[test]
    fn a_missing_index_is_one_removed_finding_at_the_next_leaf() {
        let mut items = chain(6);
        items.remove(3);
        let found = run(&[segment(1)], &items);
        assert_eq!(kinds(&found), [Kind::Removed]);
        let f = &found[0].finding;
        assert_eq!(f.leaves, Some([3, 3]));
        assert_eq!(f.offset, Some(8 + 100 * 4), "where leaf 4 is");
        assert_eq!(found[0].item, 3);
        assert!(f.message.contains("1 frame was removed"), "{}", f.message);
    }

    #[test]
    fn leaves_where_bytes_are_no_frame_are_folded_into_that_finding() {
        let mut items = chain(5);
        items[2] = Item::Garbage(Garbage {
            segment: 0,
            offset: 208,
            end: 308,
            reason: "header CRC mismatch".into(),
        });
        let found = run(&[segment(1)], &items);
        assert_eq!(kinds(&found), [Kind::Damaged]);
        assert_eq!(found[0].finding.leaves, Some([2, 2]));
        assert!(found[0].finding.message.contains("leaf 2 is missing"));
    }

    #[test]
    fn leaves_with_a_missing_segment_file_are_folded_into_it() {
        // Segments 1 and 3; segment 2 (leaves 2 and 3) is gone.
        let mut items: Vec<Item> = (0..2).map(|i| Item::Frame(leaf(0, i))).collect();
        items.extend((4..6).map(|i| Item::Frame(leaf(1, i))));
        let found = run(&[segment(1), segment(3)], &items);
        assert_eq!(kinds(&found), [Kind::SegmentMissing]);
        assert_eq!(found[0].finding.leaves, Some([2, 3]));
        assert_eq!(
            found[0].finding.file.as_deref(),
            Some("0000000000000002.seg")
        );
        assert_eq!(found[0].item, 2, "at the next segment's first item");
    }

    #[test]
    fn leaves_cut_from_a_segment_end_are_truncated() {
        // Segment 1 held leaves 0..3; leaf 2 cut from its end at a frame boundary.
        let mut items: Vec<Item> = (0..2).map(|i| Item::Frame(leaf(0, i))).collect();
        items.extend((3..5).map(|i| Item::Frame(leaf(1, i))));
        let found = run(&[segment(1), segment(2)], &items);
        assert_eq!(kinds(&found), [Kind::Truncated]);
        let f = &found[0].finding;
        assert_eq!(f.file.as_deref(), Some("0000000000000001.seg"));
        assert_eq!(f.offset, Some(8 + 100 * 2));
        assert_eq!(f.leaves, Some([2, 2]));
    }

    #[test]
    fn a_torn_tail_has_no_leaves() {
        let mut items = chain(3);
        items.push(Item::Garbage(Garbage {
            segment: 0,
            offset: 308,
            end: 1_000_000,
            reason: "short frame".into(),
        }));
        let found = run(&[segment(1)], &items);
        assert_eq!(kinds(&found), [Kind::TornTail]);
        assert_eq!(found[0].finding.leaves, None);
    }
}
