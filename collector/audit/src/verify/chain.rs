//! The hash chain: each frame names its leaf index and its predecessor's leaf hash, so the
//! frames can be put in order without trusting the file order. The phases, over one
//! [`Claims`] value: [`Claims::build`] ([`claim_leaves`], then [`pick_genuine`]: which frame
//! is each leaf), then [`frame_findings`] (damaged, duplicated, inserted frames),
//! [`order_findings`] (leaves out of order) and [`chain_findings`] (a leaf that no longer
//! hashes to what the next one recorded). Missing leaves are [`super::gaps`]'s.

use super::report::Kind;
use super::scanned::{Located, Scanned};
use meshlog_tlog::merkle::Hash;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What the chain analysis decided about a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Status {
    /// One of the log's leaves, at its claimed index.
    Genuine,
    /// From before the chain: its leaf index is its position.
    Unchained,
    /// The same bytes as an earlier frame (its position among frames).
    Duplicate(usize),
    /// Not one of the log's leaves; why.
    Inserted(String),
}

impl Status {
    /// One of the log's leaves (chained or not).
    pub fn is_leaf(&self) -> bool {
        matches!(self, Status::Genuine | Status::Unchained)
    }
}

/// Which leaf each frame claims to be, and which frame each leaf is.
#[derive(Debug, Clone)]
pub(super) struct Claims {
    /// Per frame position `k`.
    pub status: Vec<Status>,
    /// Per frame: the leaf index it claims (a duplicate: its original's).
    pub claim: Vec<u64>,
    /// Leaf index → the frames (positions) claiming it, duplicates aside.
    pub claimants: BTreeMap<u64, Vec<usize>>,
    /// Leaf index → the frame that is that leaf.
    pub genuine: BTreeMap<u64, usize>,
}

impl Claims {
    /// [`claim_leaves`], then [`pick_genuine`].
    pub fn build(s: &Scanned<'_>) -> Self {
        let mut c = claim_leaves(s);
        pick_genuine(s, &mut c);
        c
    }

    /// The highest leaf index the store holds.
    pub fn highest(&self) -> Option<u64> {
        self.genuine.keys().next_back().copied()
    }
}

/// Each frame's claim: its chain entry's leaf index; before the chain began, its position; a
/// second copy of the same bytes, a duplicate; a frame without an entry after the chain began,
/// inserted.
pub(super) fn claim_leaves(s: &Scanned<'_>) -> Claims {
    let n = s.frames.len();
    let unchained_end = s
        .frames
        .iter()
        .position(|(_, f)| f.chain.is_some())
        .unwrap_or(n);
    let mut c = Claims {
        status: vec![Status::Genuine; n],
        claim: vec![0; n],
        claimants: BTreeMap::new(),
        genuine: BTreeMap::new(),
    };
    let mut by_hash: HashMap<Hash, usize> = HashMap::with_capacity(n);
    for (k, (_, f)) in s.frames.iter().enumerate() {
        if let Some(&j) = by_hash.get(&f.leaf) {
            c.status[k] = Status::Duplicate(j);
            c.claim[k] = c.claim[j];
            continue;
        }
        by_hash.insert(f.leaf, k);
        let claim = match f.chain {
            Some(ch) => ch.leaf_index,
            None if k < unchained_end => {
                c.status[k] = Status::Unchained;
                s.position(k)
            }
            None => {
                c.status[k] = Status::Inserted(
                    "it has no chain entry (leaf index), so the log's writer did not write it: \
                     frames after the chain began all have one"
                        .into(),
                );
                continue;
            }
        };
        c.claim[k] = claim;
        c.claimants.entry(claim).or_default().push(k);
    }
    c
}

/// One frame per leaf index: the one the next leaf refers to, else the one chained to the
/// previous leaf, else the first stored. The others claiming it are inserted.
pub(super) fn pick_genuine(s: &Scanned<'_>, c: &mut Claims) {
    let mut inserted = Vec::new();
    for (&leaf, ks) in &c.claimants {
        let Some(&first) = ks.first() else { continue };
        if ks.len() == 1 {
            c.genuine.insert(leaf, first);
            continue;
        }
        let refs: HashSet<Hash> = c
            .claimants
            .get(&(leaf + 1))
            .into_iter()
            .flatten()
            .filter_map(|&j| s.frame(j).chain.map(|ch| ch.prev_leaf))
            .collect();
        let referenced: Vec<usize> = ks
            .iter()
            .copied()
            .filter(|&k| refs.contains(&s.frame(k).leaf))
            .collect();
        let preds: HashSet<Hash> = match leaf.checked_sub(1) {
            Some(p) => c
                .claimants
                .get(&p)
                .into_iter()
                .flatten()
                .map(|&j| s.frame(j).leaf)
                .collect(),
            None => HashSet::from([[0u8; 32]]),
        };
        let pick = match referenced.as_slice() {
            [one] => *one,
            _ => ks
                .iter()
                .copied()
                .find(|&k| {
                    s.frame(k)
                        .chain
                        .is_some_and(|ch| preds.contains(&ch.prev_leaf))
                })
                .unwrap_or(first),
        };
        c.genuine.insert(leaf, pick);
        for &k in ks.iter().filter(|&&k| k != pick) {
            let why = format!(
                "it claims leaf {leaf}, which the frame at {} holds{}",
                s.loc(s.frame(pick)),
                if referenced.len() == 1 {
                    " (the one the next leaf refers to)"
                } else {
                    ""
                }
            );
            inserted.push((k, why));
        }
    }
    for (k, why) in inserted {
        c.status[k] = Status::Inserted(why);
    }
}

/// Per frame: a payload that fails its CRC, a second copy, a frame that is no leaf.
pub(super) fn frame_findings(s: &Scanned<'_>, c: &Claims) -> Vec<Located> {
    let mut out = Vec::new();
    for (k, (_, f)) in s.frames.iter().enumerate() {
        if let Some(d) = &f.damage {
            let leaf = Some(c.claim[k]).filter(|_| !matches!(c.status[k], Status::Inserted(_)));
            out.push(s.frame_finding(
                Kind::Modified,
                k,
                leaf,
                format!("{d}: the payload was changed (or rotted) after it was written"),
            ));
        }
        match &c.status[k] {
            Status::Duplicate(j) => out.push(s.frame_finding(
                Kind::Duplicated,
                k,
                Some(c.claim[k]),
                format!(
                    "the same bytes as leaf {} at {}: the frame is stored twice",
                    c.claim[*j],
                    s.loc(s.frame(*j))
                ),
            )),
            Status::Inserted(why) => out.push(s.frame_finding(
                Kind::Inserted,
                k,
                f.chain.map(|ch| ch.leaf_index),
                format!("this frame is not one of the log's leaves: {why}"),
            )),
            Status::Genuine | Status::Unchained => {}
        }
    }
    out
}

/// Consecutive leaves in the store must have increasing indexes.
pub(super) fn order_findings(s: &Scanned<'_>, c: &Claims) -> Vec<Located> {
    let mut out = Vec::new();
    let mut prev: Option<usize> = None;
    for k in 0..s.frames.len() {
        if !c.status[k].is_leaf() {
            continue;
        }
        if let Some(p) = prev
            && c.claim[k] < c.claim[p]
        {
            let mut x = s.frame_finding(
                Kind::Reordered,
                k,
                Some(c.claim[k]),
                format!(
                    "leaf {} is stored after leaf {} ({}): frames were moved out of order",
                    c.claim[k],
                    c.claim[p],
                    s.loc(s.frame(p))
                ),
            );
            // The tree changes from where the later leaf was stored.
            x.span = x.span.map(|[a, b]| [a.min(s.position(p)), b]);
            out.push(x);
        }
        prev = Some(k);
    }
    out
}

/// Each leaf must hash to what the next leaf recorded (leaf 0 records zeros).
pub(super) fn chain_findings(s: &Scanned<'_>, c: &Claims) -> Vec<Located> {
    let mut out = Vec::new();
    for (&leaf, &b) in &c.genuine {
        if c.status[b] == Status::Unchained {
            continue;
        }
        let Some(chain) = s.frame(b).chain else {
            continue;
        };
        if leaf == 0 {
            if chain.prev_leaf != [0; 32] {
                out.push(s.frame_finding(
                    Kind::Modified,
                    b,
                    Some(0),
                    "leaf 0 names a previous leaf: its header was changed".into(),
                ));
            }
            continue;
        }
        let Some(&a) = c.genuine.get(&(leaf - 1)) else {
            continue;
        };
        let fa = s.frame(a);
        if fa.damage.is_some() || chain.prev_leaf == fa.leaf {
            continue;
        }
        let mut x = s.frame_finding(
            Kind::Modified,
            a,
            Some(leaf - 1),
            format!(
                "leaf {} was changed after it was written: it no longer hashes to what leaf \
                 {leaf} ({}) recorded (or that record in leaf {leaf}'s header was changed)",
                leaf - 1,
                s.loc(s.frame(b))
            ),
        );
        // Either frame may be the one changed.
        x.span = x.span.map(|[lo, hi]| [lo, hi.max(s.position(b))]);
        out.push(x);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::scanned::synthetic::{chain, frame_mut, hash, kinds};
    use super::*;
    use crate::scan::Item;
    use std::collections::BTreeMap;

    fn with<T>(items: &[Item], f: impl FnOnce(&Scanned<'_>) -> T) -> T {
        let segs = [super::super::scanned::synthetic::segment(1)];
        let deleted = BTreeMap::new();
        f(&Scanned::new(&segs, items, &deleted, false))
    }

    #[test]
    fn an_intact_chain_claims_every_leaf_once_and_has_no_findings() {
        let items = chain(5);
        with(&items, |s| {
            let c = Claims::build(s);
            assert_eq!(c.genuine, (0..5).map(|i| (i, i as usize)).collect());
            assert!(c.status.iter().all(|st| *st == Status::Genuine));
            assert_eq!(c.highest(), Some(4));
            assert!(frame_findings(s, &c).is_empty());
            assert!(order_findings(s, &c).is_empty());
            assert!(chain_findings(s, &c).is_empty());
        });
    }

    #[test]
    fn claim_leaves_records_every_claim_and_pick_genuine_keeps_the_one_chained() {
        let mut items = chain(4);
        // A forged leaf 2 stored after the real one: the real one is chained to leaf 1 and
        // referred to by leaf 3; the forgery names some other predecessor.
        let mut forged = frame_mut(&mut items, 2).clone();
        forged.leaf = hash(98);
        forged.chain.as_mut().unwrap().prev_leaf = hash(97);
        items.insert(3, Item::Frame(forged));
        with(&items, |s| {
            let mut c = claim_leaves(s);
            assert_eq!(c.claimants.get(&2), Some(&vec![2, 3]));
            assert!(c.status.iter().all(|st| *st == Status::Genuine));
            assert!(c.genuine.is_empty(), "not decided yet");
            pick_genuine(s, &mut c);
            assert_eq!(c.genuine.get(&2), Some(&2));
            assert_eq!(c.genuine.get(&3), Some(&4));
            assert!(matches!(&c.status[3], Status::Inserted(why) if why.contains("claims leaf 2")));
        });
    }

    #[test]
    fn a_second_copy_is_a_duplicate_of_its_leaf() {
        let mut items = chain(4);
        items.insert(3, items[2].clone());
        with(&items, |s| {
            let c = Claims::build(s);
            assert_eq!(c.status[3], Status::Duplicate(2));
            assert_eq!(c.claim[3], 2);
            assert_eq!(c.genuine.get(&3), Some(&4));
            let found = frame_findings(s, &c);
            assert_eq!(kinds(&found), [Kind::Duplicated]);
            assert_eq!(found[0].item, 3);
            assert_eq!(found[0].finding.leaf, Some(2));
            assert_eq!(found[0].span, Some([2, 3]));
            // Not out of order, and the chain still holds.
            assert!(order_findings(s, &c).is_empty());
            assert!(chain_findings(s, &c).is_empty());
        });
    }

    #[test]
    fn a_frame_claiming_a_held_leaf_is_inserted_and_the_referenced_one_kept() {
        let mut items = chain(4);
        // A forged leaf 2 stored before the real one; leaf 3 refers to the real one.
        let mut forged = frame_mut(&mut items, 2).clone();
        forged.leaf = hash(99);
        items.insert(2, Item::Frame(forged));
        with(&items, |s| {
            let c = Claims::build(s);
            assert_eq!(c.genuine.get(&2), Some(&3));
            assert!(matches!(c.status[2], Status::Inserted(_)));
            let found = frame_findings(s, &c);
            assert_eq!(kinds(&found), [Kind::Inserted]);
            assert_eq!(found[0].finding.leaf, Some(2));
            assert!(
                found[0]
                    .finding
                    .message
                    .contains("(the one the next leaf refers to)"),
                "{}",
                found[0].finding.message
            );
        });
    }

    #[test]
    fn a_frame_without_a_chain_entry_after_the_chain_began_is_inserted() {
        let mut items = chain(3);
        let mut forged = frame_mut(&mut items, 1).clone();
        forged.chain = None;
        forged.leaf = hash(77);
        items.insert(1, Item::Frame(forged));
        with(&items, |s| {
            let c = Claims::build(s);
            let found = frame_findings(s, &c);
            assert_eq!(kinds(&found), [Kind::Inserted]);
            assert_eq!(found[0].finding.leaf, None);
            assert_eq!(found[0].span, Some([1, 1]), "its place in the tree");
        });
    }

    #[test]
    fn a_swapped_pair_is_one_reordered_leaf() {
        let mut items = chain(5);
        items.swap(2, 3);
        with(&items, |s| {
            let c = Claims::build(s);
            let found = order_findings(s, &c);
            assert_eq!(kinds(&found), [Kind::Reordered]);
            assert_eq!(found[0].item, 3);
            assert_eq!(found[0].finding.leaf, Some(2));
            assert!(found[0].finding.message.contains("stored after leaf 3"));
            assert_eq!(found[0].span, Some([2, 3]));
            assert!(chain_findings(s, &c).is_empty(), "each still chains");
        });
    }

    #[test]
    fn a_predecessor_hash_that_does_not_match_names_the_earlier_leaf() {
        let mut items = chain(5);
        // Leaf 2 rewritten, CRCs and all: it no longer hashes to what leaf 3 recorded.
        frame_mut(&mut items, 2).leaf = hash(1000);
        with(&items, |s| {
            let c = Claims::build(s);
            assert!(frame_findings(s, &c).is_empty(), "its CRCs are fine");
            let found = chain_findings(s, &c);
            assert_eq!(kinds(&found), [Kind::Modified]);
            assert_eq!(found[0].item, 2);
            assert_eq!(found[0].finding.leaf, Some(2));
            assert!(found[0].finding.message.contains("what leaf 3"));
            assert_eq!(found[0].span, Some([2, 3]));
        });
    }

    #[test]
    fn a_payload_crc_mismatch_is_modified_once() {
        let mut items = chain(3);
        frame_mut(&mut items, 1).damage = Some("payload CRC mismatch".into());
        frame_mut(&mut items, 1).leaf = hash(500);
        with(&items, |s| {
            let c = Claims::build(s);
            let found = frame_findings(s, &c);
            assert_eq!(kinds(&found), [Kind::Modified]);
            assert_eq!(found[0].finding.leaf, Some(1));
            assert!(chain_findings(s, &c).is_empty(), "not reported twice");
        });
    }

    #[test]
    fn leaf_zero_naming_a_predecessor_is_modified() {
        let mut items = chain(2);
        frame_mut(&mut items, 0).chain.as_mut().unwrap().prev_leaf = [1; 32];
        with(&items, |s| {
            let found = chain_findings(s, &Claims::build(s));
            assert_eq!(kinds(&found), [Kind::Modified]);
            assert_eq!(found[0].finding.leaf, Some(0));
        });
    }

    #[test]
    fn frames_from_before_the_chain_claim_their_position() {
        let mut items = chain(4);
        for i in 0..2 {
            frame_mut(&mut items, i).chain = None;
        }
        with(&items, |s| {
            let c = Claims::build(s);
            assert_eq!(c.status[..2], [Status::Unchained, Status::Unchained]);
            assert_eq!(c.claim, [0, 1, 2, 3]);
            assert!(chain_findings(s, &c).is_empty());
        });
    }
}
