//! Consequences grouped under their cause. One changed frame changes the root of every tree
//! that includes it, so every later checkpoint's root differs (about 1,440 a day at the
//! default interval): [`group_under_causes`] reports those as one finding right after the
//! frame-level finding that explains them, with the count and the first and last checkpoint.
//! A checkpoint whose root differs with no frame-level cause in its range (a tail rewritten,
//! chain and all) stays a finding of its own.

use super::report::{Cause, Finding, Kind};
use std::collections::BTreeMap;

/// The frame-level finding (index, tree positions `[lo, hi]`) that explains a checkpoint whose
/// root differs somewhere in leaves `[m, e]`: the earliest whose positions meet that range.
fn cause_of(causes: &[(usize, [u64; 2])], [m, e]: [u64; 2]) -> Option<usize> {
    causes
        .iter()
        .filter(|(_, [lo, hi])| *lo <= e && *hi >= m)
        .min_by_key(|(i, [lo, _])| (*lo, *i))
        .map(|(i, _)| *i)
}

/// Replaces the checkpoint root mismatches that one of `causes` (index in `findings`, tree
/// positions it changed) explains by one finding per cause, placed right after it.
pub(super) fn group_under_causes(
    findings: Vec<Finding>,
    causes: &[(usize, [u64; 2])],
) -> Vec<Finding> {
    let mut groups: BTreeMap<usize, Vec<Finding>> = BTreeMap::new();
    let mut kept: Vec<(usize, Finding)> = Vec::with_capacity(findings.len());
    for (i, f) in findings.into_iter().enumerate() {
        let cause = match (f.kind, f.leaves, &f.cause) {
            (Kind::CheckpointRootMismatch, Some(range), None) => cause_of(causes, range),
            _ => None,
        };
        match cause {
            Some(c) => groups.entry(c).or_default().push(f),
            None => kept.push((i, f)),
        }
    }
    let mut out = Vec::with_capacity(kept.len() + groups.len());
    for (i, f) in kept {
        let at = out.len();
        out.push(f);
        if let Some(g) = groups
            .remove(&i)
            .and_then(|group| grouped(&out[at], at, &group))
        {
            out.push(g);
        }
    }
    out
}

/// Where a finding is, briefly: its leaves and file.
fn place(f: &Finding) -> String {
    let leaves = match (f.leaf, f.leaves) {
        (Some(l), _) => format!("leaf {l}"),
        (None, Some([a, b])) if a == b => format!("leaf {a}"),
        (None, Some([a, b])) => format!("leaves {a}..{b}"),
        (None, None) => "a frame that is no leaf".into(),
    };
    match (&f.file, f.offset) {
        (Some(file), Some(o)) => format!("{leaves} ({file} offset {o})"),
        (Some(file), None) => format!("{leaves} ({file})"),
        _ => leaves,
    }
}

/// The one finding for the checkpoint root mismatches `group` (in log order), explained by
/// `cause` at index `at`.
fn grouped(cause: &Finding, at: usize, group: &[Finding]) -> Option<Finding> {
    let (first, last) = (group.first()?, group.last()?);
    let size = |f: &Finding| f.leaves.map_or(0, |[_, e]| e + 1);
    let sizes = [
        group.iter().map(size).min().unwrap_or(0),
        group.iter().map(size).max().unwrap_or(0),
    ];
    let number = |f: &Finding| f.checkpoint.map_or("?".into(), |n| format!("#{n}"));
    let because = format!(
        "explained by the {} finding at {}: every tree that includes it hashes differently \
         from what was signed",
        cause.kind.name(),
        place(cause)
    );
    let mut x = Finding::new(
        Kind::CheckpointRootMismatch,
        if group.len() == 1 {
            format!(
                "checkpoint {} ({} leaves) does not match the store; {because}",
                number(first),
                sizes[0]
            )
        } else {
            format!(
                "{} checkpoints from size {} to size {} do not match the store; {because}; \
                 first {} ({} leaves), last {} ({} leaves)",
                group.len(),
                sizes[0],
                sizes[1],
                number(first),
                size(first),
                number(last),
                size(last)
            )
        },
    );
    x.file = first.file.clone();
    x.offset = first.offset;
    x.end = last.end;
    x.checkpoint = first.checkpoint;
    x.checkpoints = first.checkpoint.zip(last.checkpoint).map(|(a, b)| [a, b]);
    x.sizes = Some(sizes);
    x.count = Some(group.len());
    x.leaves = group
        .iter()
        .filter_map(|f| f.leaves)
        .reduce(|[a, b], [c, d]| [a.min(c), b.max(d)]);
    x.cause = Some(Cause::of(at, cause));
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mismatch(number: usize, from: u64, size: u64) -> Finding {
        let mut f = Finding::new(Kind::CheckpointRootMismatch, format!("#{number}"));
        f.file = Some("checkpoints.log".into());
        f.offset = Some(100 * number as u64);
        f.end = Some(100 * number as u64 + 90);
        f.checkpoint = Some(number);
        f.leaves = Some([from, size - 1]);
        f
    }

    fn modified(leaf: u64) -> Finding {
        let mut f = Finding::new(Kind::Modified, "payload CRC mismatch".into());
        f.file = Some("0000000000000001.seg".into());
        f.offset = Some(8);
        f.leaf = Some(leaf);
        f
    }

    #[test]
    fn every_mismatch_over_a_changed_leaf_becomes_one_finding_after_it() {
        // Leaf 4 changed; checkpoints #1 (3 leaves) matches, #2..#1441 (5.. leaves) do not.
        let mut findings = vec![modified(4)];
        findings.extend((2..=1441).map(|n| mismatch(n, 3, n as u64 + 3)));
        let out = group_under_causes(findings, &[(0, [4, 4])]);
        assert_eq!(out.len(), 2);
        let g = &out[1];
        assert_eq!(g.kind, Kind::CheckpointRootMismatch);
        assert_eq!(g.count, Some(1440));
        assert_eq!(g.checkpoints, Some([2, 1441]));
        assert_eq!(g.sizes, Some([5, 1444]));
        assert_eq!(g.leaves, Some([3, 1443]));
        assert_eq!((g.offset, g.end), (Some(200), Some(144_190)));
        let cause = g.cause.as_ref().unwrap();
        assert_eq!(
            (cause.finding, cause.kind, cause.leaf),
            (0, Kind::Modified, Some(4))
        );
        assert!(
            g.message.starts_with(
                "1440 checkpoints from size 5 to size 1444 do not match the store; explained \
                 by the modified finding at leaf 4 (0000000000000001.seg offset 8)"
            ),
            "{}",
            g.message
        );
    }

    #[test]
    fn a_mismatch_without_a_cause_in_its_range_stays_on_its_own() {
        // Leaf 2 changed, but checkpoint #3 still matches up to 6 leaves: the mismatch of #4
        // over leaves 6..11 is something else (a tail rewritten, chain and all).
        let findings = vec![modified(2), mismatch(2, 0, 6), mismatch(4, 6, 12)];
        let out = group_under_causes(findings, &[(0, [2, 2])]);
        let kinds: Vec<_> = out.iter().map(|f| (f.kind, f.count)).collect();
        assert_eq!(
            kinds,
            [
                (Kind::Modified, None),
                (Kind::CheckpointRootMismatch, Some(1)),
                (Kind::CheckpointRootMismatch, None),
            ]
        );
        assert_eq!(out[2].checkpoint, Some(4));
        assert!(out[2].cause.is_none());
        assert!(
            out[1]
                .message
                .starts_with("checkpoint #2 (6 leaves) does not match")
        );
    }

    #[test]
    fn the_earliest_cause_in_range_explains_and_indexes_follow_the_groups() {
        let mut torn = Finding::new(Kind::TornTail, "torn".into());
        torn.file = Some("0000000000000002.seg".into());
        let findings = vec![
            modified(1),
            modified(7),
            torn,
            mismatch(2, 0, 4),
            mismatch(3, 0, 12),
        ];
        let out = group_under_causes(findings, &[(0, [1, 1]), (1, [7, 8])]);
        let kinds: Vec<_> = out.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Modified,
                Kind::CheckpointRootMismatch,
                Kind::Modified,
                Kind::TornTail
            ]
        );
        assert_eq!(out[1].count, Some(2));
        assert_eq!(out[1].cause.as_ref().map(|c| c.finding), Some(0));
    }
}
