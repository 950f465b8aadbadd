//! What a result is complete against: per store, the newest signed checkpoint (tree size, root,
//! key id) and how many leaves the query covered; per VM, whether its `meshlog.sequence`
//! numbers are gapless, and where not, which gaps its delivery tallies account for (lost data
//! is shown, never hidden).

use crate::index::VmEntry;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use meshlog_format::checkpoint_log::{self, Item};
use meshlog_tlog::checkpoint::Checkpoint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The completeness statement of one result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completeness {
    /// One entry per store read.
    pub stores: Vec<StoreCoverage>,
    /// One entry per VM with records in the queried time range.
    pub vms: Vec<VmCoverage>,
    /// Whether every store covered its checkpoint and every VM's gaps are accounted for.
    pub complete: bool,
}

/// One store's coverage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCoverage {
    /// `.` for the data directory's own store, else the retention class.
    pub store: String,
    /// The newest checkpoint in `checkpoints.log` (none without `[integrity]` signing).
    pub checkpoint: Option<CheckpointRef>,
    /// Leaves of the store's tree the query accounted for: frames read or skipped by the
    /// index, plus the leaves of segments retention deleted (kept in `deleted/`).
    pub leaves: u64,
    /// Of those, frames newer than the checkpoint (not yet covered by a signature).
    pub after_checkpoint: u64,
    /// `leaves >= checkpoint.size`: nothing the checkpoint commits to was missing.
    pub covers_checkpoint: bool,
}

/// A signed checkpoint, by what names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRef {
    /// The log's origin (the signing key's name).
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root hash, base64 as in the note.
    pub root: String,
    /// The signing key's id, 8 hex digits.
    pub key_id: String,
    /// When it was made, Unix ns.
    pub timestamp_unix_ns: u64,
}

/// One VM's sequence accounting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmCoverage {
    /// `resource.meshlog.vm.id`.
    pub vm: String,
    /// Lowest and highest sequence number stored or reported lost.
    pub first: u64,
    /// See `first`.
    pub last: u64,
    /// No number in `[first, last]` is missing from the store.
    pub gapless: bool,
    /// Missing numbers, inclusive ranges.
    pub gaps: Vec<[u64; 2]>,
    /// Of the missing numbers, those a stored delivery tally reports lost.
    pub explained: Vec<[u64; 2]>,
    /// Missing numbers no tally explains.
    pub unexplained: Vec<[u64; 2]>,
    /// The VM's own count of records dropped for buffer overflow (largest tally total).
    pub dropped_overflow_total: u64,
    /// The VM's own count of records the collector refused (largest tally total).
    pub failed_total: u64,
}

/// Sequence accounting for one VM while scanning.
#[derive(Debug, Clone, Default)]
pub struct VmAccount {
    seqs: Ranges,
    lost: Ranges,
    dropped_overflow_total: u64,
    failed_total: u64,
    in_range: bool,
}

/// A set of u64 as disjoint inclusive ranges, start → end.
#[derive(Debug, Clone, Default)]
struct Ranges(BTreeMap<u64, u64>);

impl Ranges {
    fn insert(&mut self, [mut a, mut b]: [u64; 2]) {
        if let Some((&s, &e)) = self.0.range(..=a).next_back()
            && e.saturating_add(1) >= a
        {
            a = s;
            b = b.max(e);
        }
        while let Some((&s, &e)) = self.0.range(a..).next() {
            if s > b.saturating_add(1) {
                break;
            }
            b = b.max(e);
            self.0.remove(&s);
        }
        self.0.insert(a, b);
    }

    fn bounds(&self) -> Option<(u64, u64)> {
        Some((*self.0.keys().next()?, *self.0.values().next_back()?))
    }

    /// Numbers in `[lo, hi]` not in the set.
    fn missing(&self, lo: u64, hi: u64) -> Vec<[u64; 2]> {
        let mut out = Vec::new();
        let mut next = lo;
        for (&s, &e) in self.0.range(..=hi) {
            if e < next {
                continue;
            }
            if s > next {
                out.push([next, s - 1]);
            }
            next = e.saturating_add(1);
            if next > hi {
                return out;
            }
        }
        if next <= hi {
            out.push([next, hi]);
        }
        out
    }

    fn intersect(&self, r: [u64; 2]) -> Vec<[u64; 2]> {
        let mut out = Vec::new();
        for (&s, &e) in &self.0 {
            let (a, b) = (s.max(r[0]), e.min(r[1]));
            if a <= b {
                out.push([a, b]);
            }
        }
        out
    }
}

impl VmAccount {
    /// Folds in one frame's entry for this VM; `in_range` when the frame overlaps the query's
    /// time range.
    pub fn add(&mut self, e: &VmEntry, in_range: bool) {
        for r in &e.seqs {
            self.seqs.insert(*r);
        }
        for r in &e.lost {
            self.lost.insert(*r);
        }
        self.dropped_overflow_total = self.dropped_overflow_total.max(e.dropped_overflow_total);
        self.failed_total = self.failed_total.max(e.failed_total);
        self.in_range |= in_range;
    }

    fn coverage(&self, vm: &str) -> Option<VmCoverage> {
        let (s0, s1) = self.seqs.bounds()?;
        let (first, last) = match self.lost.bounds() {
            Some((l0, l1)) => (s0.min(l0), s1.max(l1)),
            None => (s0, s1),
        };
        let gaps = self.seqs.missing(first, last);
        let mut explained = Vec::new();
        let mut unexplained = Vec::new();
        for g in &gaps {
            let covered = self.lost.intersect(*g);
            let mut rest = Ranges::default();
            for c in &covered {
                rest.insert(*c);
            }
            unexplained.extend(rest.missing(g[0], g[1]));
            explained.extend(covered);
        }
        Some(VmCoverage {
            vm: vm.to_owned(),
            first,
            last,
            gapless: gaps.is_empty(),
            gaps,
            explained,
            unexplained,
            dropped_overflow_total: self.dropped_overflow_total,
            failed_total: self.failed_total,
        })
    }
}

/// The per-VM statements of `accounts` (VMs with records in range only).
pub fn vm_coverage(accounts: &BTreeMap<String, VmAccount>) -> Vec<VmCoverage> {
    accounts
        .iter()
        .filter(|(_, a)| a.in_range)
        .filter_map(|(vm, a)| a.coverage(vm))
        .collect()
}

/// The newest intact checkpoint of `store_dir`'s `checkpoints.log` (its signature is
/// `meshlog verify`'s business; this names it).
pub fn newest_checkpoint(store_dir: &Path) -> Option<CheckpointRef> {
    let bytes = std::fs::read(meshlog_format::layout::checkpoint_log_path(store_dir)).ok()?;
    let note = checkpoint_log::parse(&bytes)
        .into_iter()
        .rev()
        .find_map(|i| match i {
            Item::Entry(e) => Some(e.note),
            Item::Damaged(_) => None,
        })?;
    let note = String::from_utf8(note).ok()?;
    let split = note.rfind("\n\n")?;
    let (text, sigs) = (note.get(..split + 1)?, note.get(split + 2..)?);
    let cp = Checkpoint::parse_body(text).ok()?;
    // `— <name> <base64(key id (4 bytes, big-endian) || signature)>`
    let key_id = sigs.lines().find_map(|l| {
        let (name, b64) = l.strip_prefix("\u{2014} ")?.split_once(' ')?;
        (name == cp.origin).then_some(())?;
        let blob = B64.decode(b64).ok()?;
        let id: [u8; 4] = blob.get(..4)?.try_into().ok()?;
        Some(format!("{:08x}", u32::from_be_bytes(id)))
    })?;
    Some(CheckpointRef {
        origin: cp.origin,
        size: cp.size,
        root: B64.encode(cp.root),
        key_id,
        timestamp_unix_ns: cp.timestamp_unix_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seqs: &[[u64; 2]], lost: &[[u64; 2]], overflow: u64) -> VmEntry {
        VmEntry {
            seqs: seqs.to_vec(),
            lost: lost.to_vec(),
            dropped_overflow_total: overflow,
            failed_total: 0,
            time: None,
        }
    }

    #[test]
    fn gaps_are_listed_and_split_into_explained_and_unexplained() {
        let mut a = VmAccount::default();
        a.add(&entry(&[[0, 3]], &[], 0), true);
        a.add(&entry(&[[10, 12], [20, 20]], &[[4, 7]], 4), false);
        let c = a.coverage("vm").unwrap();
        assert_eq!((c.first, c.last), (0, 20));
        assert!(!c.gapless);
        assert_eq!(c.gaps, [[4, 9], [13, 19]]);
        assert_eq!(c.explained, [[4, 7]]);
        assert_eq!(c.unexplained, [[8, 9], [13, 19]]);
        assert_eq!(c.dropped_overflow_total, 4);
        let mut g = VmAccount::default();
        g.add(&entry(&[[5, 6], [0, 4], [7, 7]], &[], 0), true);
        let c = g.coverage("vm").unwrap();
        assert!(c.gapless && c.gaps.is_empty());
        // Lost after the last stored number still shows.
        let mut t = VmAccount::default();
        t.add(&entry(&[[0, 2]], &[[3, 5]], 3), true);
        let c = t.coverage("vm").unwrap();
        assert_eq!((c.gaps.clone(), c.unexplained.len()), (vec![[3, 5]], 0));
        let out = vm_coverage(&BTreeMap::from([
            ("a".into(), t),
            ("b".into(), VmAccount::default()),
        ]));
        assert_eq!(out.len(), 1);
    }
}
