//! The store as scanned, which every analysis phase reads: its segments, the items found in
//! them (frames and bytes that are no frame), the frames alone, and the segments deleted by
//! policy; and how to name a place in it.

use super::report::{Finding, Kind};
use crate::deletions::Deleted;
use crate::scan::{Item, ScannedFrame, SegmentInfo};
use std::collections::BTreeMap;

/// A finding, the item (index in [`Scanned::items`]) it is reported at, and the tree positions
/// it concerns when it is a frame-level change (what later checkpoint mismatches follow from).
#[derive(Debug, Clone)]
pub(super) struct Located {
    pub item: usize,
    pub finding: Finding,
    pub span: Option<[u64; 2]>,
}

impl Located {
    pub fn new(item: usize, finding: Finding) -> Self {
        Located {
            item,
            finding,
            span: None,
        }
    }
}

/// The store as scanned.
pub(super) struct Scanned<'a> {
    pub segments: &'a [SegmentInfo],
    pub items: &'a [Item],
    /// (item index, frame) for every frame, in store order; a frame's place in this list is
    /// its position (`k`) in every phase.
    pub frames: Vec<(usize, &'a ScannedFrame)>,
    /// Segments deleted by policy, by sequence number.
    pub deleted: &'a BTreeMap<u64, Deleted>,
    /// A retention class store (missing segments may have receipts).
    pub class_store: bool,
    /// Per segment index: the frames of the segments deleted before it.
    del_before: Vec<u64>,
}

impl<'a> Scanned<'a> {
    pub fn new(
        segments: &'a [SegmentInfo],
        items: &'a [Item],
        deleted: &'a BTreeMap<u64, Deleted>,
        class_store: bool,
    ) -> Self {
        let frames = items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| match it {
                Item::Frame(f) => Some((i, f)),
                Item::Garbage(_) => None,
            })
            .collect();
        let del_before = segments
            .iter()
            .map(|sg| deleted.range(..sg.seq).map(|(_, d)| d.receipt.frames).sum())
            .collect();
        Scanned {
            segments,
            items,
            frames,
            deleted,
            class_store,
            del_before,
        }
    }

    /// Frames from before the hash chain (no chain entry), at the start of the store.
    pub fn unchained(&self) -> u64 {
        self.frames
            .iter()
            .take_while(|(_, f)| f.chain.is_none())
            .count() as u64
    }

    /// Frame `k`.
    pub fn frame(&self, k: usize) -> &'a ScannedFrame {
        self.frames[k].1
    }

    /// Frame `k`'s place in the recomputed tree: its position among frames, the leaves of the
    /// segments deleted before its own included.
    pub fn position(&self, k: usize) -> u64 {
        k as u64
            + self
                .del_before
                .get(self.frame(k).segment)
                .copied()
                .unwrap_or(0)
    }

    pub fn seg_name(&self, seg: usize) -> String {
        self.segments
            .get(seg)
            .map_or_else(|| "?".into(), |s| s.name.clone())
    }

    /// `<segment> offset <n>`.
    pub fn loc(&self, f: &ScannedFrame) -> String {
        format!("{} offset {}", self.seg_name(f.segment), f.offset)
    }

    /// The sequence number of segment index `i`.
    pub fn seq_of(&self, i: usize) -> u64 {
        self.segments.get(i).map_or(0, |s| s.seq)
    }

    /// The index of the first item in a segment after sequence number `seq`.
    pub fn first_item_after(&self, seq: u64) -> usize {
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

    /// A finding about frame `k`, which holds `leaf` (when it is one of the log's leaves),
    /// spanning its tree position and that leaf.
    pub fn frame_finding(
        &self,
        kind: Kind,
        k: usize,
        leaf: Option<u64>,
        message: String,
    ) -> Located {
        let (item, f) = self.frames[k];
        let mut x = Finding::new(kind, message);
        x.file = Some(self.seg_name(f.segment));
        x.offset = Some(f.offset);
        x.end = Some(f.offset + f.len);
        x.leaf = leaf;
        x.records = Some(f.records);
        x.batch_id = f.batch_id.clone();
        let p = self.position(k);
        let l = leaf.unwrap_or(p);
        Located {
            item,
            finding: x,
            span: Some([p.min(l), p.max(l)]),
        }
    }
}

#[cfg(test)]
pub(super) mod synthetic {
    //! Synthetic stores for the phases' unit tests: frames chained as the writer chains them,
    //! then edited the way an attacker would.

    use super::*;
    use meshlog_format::frame::Chain;
    use meshlog_tlog::merkle::Hash;
    use std::path::PathBuf;

    /// A distinct leaf hash per `n`.
    pub fn hash(n: u64) -> Hash {
        let mut h = [0xa5; 32];
        h[..8].copy_from_slice(&n.to_be_bytes());
        h
    }

    /// Segment `seq` (its name and a path that does not exist).
    pub fn segment(seq: u64) -> SegmentInfo {
        let name = meshlog_format::reader::segment_file_name(seq);
        SegmentInfo {
            seq,
            path: PathBuf::from("/nonexistent").join(&name),
            name,
            len: 1_000_000,
        }
    }

    /// Leaf `i` as written: at offset `8 + 100 * i` of segment index `segment`, chained to
    /// leaf `i - 1`.
    pub fn leaf(segment: usize, i: u64) -> ScannedFrame {
        ScannedFrame {
            segment,
            offset: 8 + 100 * i,
            len: 100,
            header_len: 40,
            records: 2,
            batch_id: None,
            chain: Some(Chain {
                leaf_index: i,
                prev_leaf: if i == 0 { [0; 32] } else { hash(i - 1) },
            }),
            leaf: hash(i),
            damage: None,
            opaque: false,
        }
    }

    /// Leaves `0..n`, in one segment (index 0), as items.
    pub fn chain(n: u64) -> Vec<Item> {
        (0..n).map(|i| Item::Frame(leaf(0, i))).collect()
    }

    /// The frame of item `i` (panics on garbage).
    pub fn frame_mut(items: &mut [Item], i: usize) -> &mut ScannedFrame {
        match &mut items[i] {
            Item::Frame(f) => f,
            Item::Garbage(_) => panic!("item {i} is no frame"),
        }
    }

    /// The kinds of `found`, in order.
    pub fn kinds(found: &[Located]) -> Vec<Kind> {
        found.iter().map(|l| l.finding.kind).collect()
    }
}
