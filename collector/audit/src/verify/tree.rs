//! The Merkle tree recomputed in leaf order: the frames as stored, and where a segment was
//! deleted by policy, the leaf hashes kept of it. Roots are kept at the checkpoints' sizes;
//! after the first deleted segment whose leaves are unknown, none is.

use super::scanned::Scanned;
use crate::deletions::Deleted;
use meshlog_tlog::merkle::{CompactTree, Hash, empty_root};
use std::collections::{HashMap, HashSet};

/// The recomputed tree.
pub(super) struct Recomputed {
    /// Its root at each checkpoint size it reached with known leaves (and at 0).
    pub roots: HashMap<u64, Hash>,
    /// Its size.
    pub size: u64,
    /// Its root (`None`: the leaves of a deleted segment are unknown).
    pub root: Option<Hash>,
    /// The size at which the leaves became unknown.
    pub unknown_from: Option<u64>,
    /// Records the frames hold, per their headers.
    pub records: u64,
}

struct Builder<'s> {
    tree: CompactTree,
    size: u64,
    sizes: &'s HashSet<u64>,
    roots: HashMap<u64, Hash>,
    unknown_from: Option<u64>,
}

impl Builder<'_> {
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
                    self.unknown_from = Some(self.size);
                }
                self.size += d.receipt.frames;
            }
        }
    }
}

/// The tree of the store `s`, with its roots at `sizes`.
pub(super) fn recompute(s: &Scanned<'_>, sizes: &HashSet<u64>) -> Recomputed {
    let mut b = Builder {
        tree: CompactTree::new(),
        size: 0,
        sizes,
        roots: HashMap::from([(0, empty_root())]),
        unknown_from: None,
    };
    let mut pending = s.deleted.values().peekable();
    let mut records = 0u64;
    for (_, f) in &s.frames {
        let seq = s.seq_of(f.segment);
        while let Some(d) = pending.next_if(|d| d.seq < seq) {
            b.deleted(d);
        }
        records += u64::from(f.records);
        b.leaf(f.leaf);
    }
    // Deleted segments after the last frame (before a newest segment still empty).
    pending.for_each(|d| b.deleted(d));
    Recomputed {
        root: b.unknown_from.is_none().then(|| b.tree.root()),
        roots: b.roots,
        size: b.size,
        unknown_from: b.unknown_from,
        records,
    }
}
