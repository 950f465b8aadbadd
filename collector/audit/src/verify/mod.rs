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
//!
//! A consequence is reported under its cause: the checkpoints whose roots differ because of a
//! frame-level finding (a frame changed, removed, inserted, ...) are one finding after it, with
//! their count and the first and last (`causes`), not one per checkpoint.
//!
//! The modules: [`report`] (the findings and reports), `scanned` (the store as scanned),
//! `chain` and `gaps` (the frame-level analysis), `deletions` (deletions by policy),
//! `tree` and `checkpoints` (the signed roots), `causes`, `records` (what a frame
//! holds), and [`render`] (text and JSON).

mod causes;
mod chain;
mod checkpoints;
mod deletions;
mod gaps;
mod records;
pub mod render;
pub mod report;
mod scanned;
mod tree;
mod witnessed;

pub use report::{
    Cause, CheckpointInfo, CheckpointSummary, DataDirReport, Deletion, Finding, Kind,
    ReceiptSummary, Report, format_time,
};

pub use witnessed::{WitnessCheck, witness_state};

use crate::scan::{self, Item, ScanError, SegmentInfo};
use chain::Claims;
use checkpoints::{Checked, CheckpointLog, Tree, check_checkpoints, read_checkpoints};
use deletions::Placement;
use meshlog_format::checkpoint_log::CHECKPOINT_LOG_FILE;
use meshlog_format::receipt::{DELETED_DIR, RECEIPTS_FILE};
use meshlog_tlog::keys::VerifierKey;
use scanned::{Located, Scanned};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    verify_with(data_dir, keys, &WitnessCheck::default(), progress)
}

/// [`verify`], also checking the witnesses' cosignatures and a witness's state
/// ([`WitnessCheck`]).
pub fn verify_with(
    data_dir: &Path,
    keys: &[VerifierKey],
    witness: &WitnessCheck,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, ScanError> {
    let class = (data_dir.join(RECEIPTS_FILE).exists() || data_dir.join(DELETED_DIR).exists())
        .then(|| data_dir.file_name().and_then(|n| n.to_str()))
        .flatten();
    verify_store_with(data_dir, class, keys, witness, progress)
}

/// Reads every segment: the segments, what they hold, and their total length.
fn scan_store(
    data_dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(Vec<SegmentInfo>, Vec<Item>, u64), ScanError> {
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
    Ok((segments, items, total))
}

/// The frame-level analysis.
struct Analysis {
    /// Findings in store order.
    found: Vec<Located>,
    /// The highest leaf index the store holds.
    highest: Option<u64>,
    /// Where the deleted segments' leaves sit.
    placement: Placement,
}

/// Segments, garbage, the chain and the deletions by policy, phase by phase.
fn analyse(s: &Scanned<'_>) -> Analysis {
    let mut found = Vec::new();
    let places = gaps::structure_findings(s, &mut found);
    let claims = Claims::build(s);
    found.extend(chain::frame_findings(s, &claims));
    found.extend(chain::order_findings(s, &claims));
    let placement = deletions::place_deletions(s, &claims, &mut found);
    gaps::gap_findings(s, &claims, &placement, &places, &mut found);
    found.extend(chain::chain_findings(s, &claims));
    found.sort_by_key(|l| l.item);
    Analysis {
        found,
        highest: claims.highest(),
        placement,
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
    verify_store_with(data_dir, class, keys, &WitnessCheck::default(), progress)
}

/// [`verify_store`] of the leaves below `up_to` only (none: all): what a live collector checks
/// (`serve`'s periodic verify) with `up_to` its newest signed checkpoint's size, so a frame
/// being written (a torn tail now, whole in a moment) and checkpoints signed after it are never
/// judged. Everything after the frame holding leaf `up_to - 1` is left out (frames without a
/// chain entry cannot be placed, so a store of those alone is checked whole).
pub fn verify_store_to(
    data_dir: &Path,
    class: Option<&str>,
    keys: &[VerifierKey],
    up_to: Option<u64>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, ScanError> {
    verify_bounded(
        data_dir,
        class,
        keys,
        &WitnessCheck::default(),
        up_to,
        false,
        progress,
    )
}

/// The log's origin for a witness state: the verifier key's name (a class store's: its class
/// log key's, see [`store_keys`]), else the checkpoints', else the one log the state holds (for
/// a class store, the one ending in `/<class>`).
fn origin_of(
    keys: &[VerifierKey],
    log: &CheckpointLog,
    state_dir: &Path,
    class: Option<&str>,
) -> Option<String> {
    keys.first()
        .map(|k| k.name().to_owned())
        .or_else(|| log.cps.last().map(|c| c.cp.origin.clone()))
        .or_else(|| {
            let suffix = class.map(|c| format!("/{c}"));
            let names: Vec<String> = state_origins(state_dir)
                .into_iter()
                .filter(|n| suffix.as_ref().is_none_or(|s| n.ends_with(s.as_str())))
                .collect();
            (names.len() == 1)
                .then(|| names.into_iter().next())
                .flatten()
        })
}

/// The origins of the logs a witness state directory holds (`logs/<hex(origin)>.note`).
fn state_origins(state_dir: &Path) -> Vec<String> {
    let dir = state_dir.join(meshlog_format::layout::WITNESS_LOGS_DIR);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().to_str().map(str::to_owned))
        .filter_map(|n| {
            let bytes = hex::decode(n.strip_suffix(".note")?).ok()?;
            String::from_utf8(bytes).ok()
        })
        .collect();
    out.sort();
    out
}

/// The retention class whose log a store is: the class it is verified as, or the directory
/// name of a `classes/<name>/` store (one with no receipts yet is verified as a plain store).
fn log_class<'a>(data_dir: &'a Path, class: Option<&'a str>) -> Option<&'a str> {
    class.or_else(|| {
        let parent = data_dir.parent()?.file_name()?;
        (parent == meshlog_format::layout::CLASSES_DIR)
            .then(|| data_dir.file_name()?.to_str())
            .flatten()
            .filter(|c| meshlog_format::layout::valid_class_name(c))
    })
}

/// The keys a store's checkpoints are checked with: for a class store, each key's class log
/// key first (`<name>/<class>`, the origin its checkpoints are signed under, and the witness's
/// name for its log), then the keys themselves (its checkpoints from before class logs had
/// origins of their own, and its deletion receipts).
fn store_keys(keys: &[VerifierKey], class: Option<&str>) -> Vec<VerifierKey> {
    let mut out: Vec<VerifierKey> = class
        .map(|c| keys.iter().filter_map(|k| k.for_class(c).ok()).collect())
        .unwrap_or_default();
    out.extend(keys.iter().cloned());
    out
}

/// [`verify_store`], also checking what [`WitnessCheck`] asks.
pub fn verify_store_with(
    data_dir: &Path,
    class: Option<&str>,
    keys: &[VerifierKey],
    witness: &WitnessCheck,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, ScanError> {
    verify_bounded(data_dir, class, keys, witness, None, false, progress)
}

/// [`verify_store_with`] up to `up_to` leaves ([`verify_store_to`]). `gone`: the store's
/// directory is missing and a witness state holds its log (a class log deleted whole): it is
/// checked as an empty store, so the witness's state names what it had reached.
#[allow(clippy::too_many_arguments)]
fn verify_bounded(
    data_dir: &Path,
    class: Option<&str>,
    keys: &[VerifierKey],
    witness: &WitnessCheck,
    up_to: Option<u64>,
    gone: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, ScanError> {
    let started = Instant::now();
    let log_class = log_class(data_dir, class);
    let keys = &store_keys(keys, log_class)[..];
    let (mut segments, mut items, total) = if gone && !data_dir.exists() {
        (Vec::new(), Vec::new(), 0)
    } else {
        scan_store(data_dir, progress)?
    };
    if let Some(n) = up_to {
        cut_at(&mut segments, &mut items, n);
    }
    let receipts = match class {
        Some(c) => {
            let present: BTreeSet<u64> = segments.iter().map(|s| s.seq).collect();
            Some(crate::deletions::load(data_dir, c, keys, &present)?)
        }
        None => None,
    };
    let no_deletions = BTreeMap::new();
    let deleted = receipts.as_ref().map_or(&no_deletions, |r| &r.deleted);
    let s = Scanned::new(&segments, &items, deleted, class.is_some());
    let mut log = read_checkpoints(data_dir, keys)?;
    if let Some(n) = up_to {
        log.cps.retain(|c| c.cp.size <= n);
    }
    let mut sizes: HashSet<u64> = log.cps.iter().map(|c| c.cp.size).collect();
    let state = witness
        .state_dir
        .as_deref()
        .map(|d| (d, origin_of(keys, &log, d, log_class)));
    if let Some((d, Some(origin))) = &state {
        sizes.extend(witnessed::wanted_size(d, origin));
    }
    let tree = tree::recompute(&s, &sizes);
    let analysis = analyse(&s);
    let recorded = deletions::deletion_records(&s, &analysis.placement);
    let checked = check_tree(data_dir, keys, &log, &tree, analysis.highest);
    let mut witness_notes = Vec::new();
    let latest = log.cps.last().map(|c| (c.cp.size, c.cp.root));
    // tree.state speaks only when no signed checkpoint already says the end is missing, and
    // not in a bounded verify: it may have been saved after the checkpoint the bound is.
    let cut = up_to.is_some() || checked.findings.iter().any(|f| f.kind == Kind::Truncated);
    let ends_at = analysis.highest.map_or(0, |h| h + 1).max(tree.size);
    let mut witness_findings: Vec<Finding> = (!cut)
        .then(|| witnessed::tree_state_finding(data_dir, ends_at))
        .flatten()
        .into_iter()
        .collect();
    witness_findings.extend(witnessed::cosignature_findings(
        data_dir,
        log_class,
        &witness.keys,
        latest,
        &mut witness_notes,
    ));
    match &state {
        Some((d, Some(origin))) => witness_findings.extend(witnessed::state_findings(
            d,
            origin,
            log_class,
            &witness.keys,
            tree.size,
            &tree.roots,
            &mut witness_notes,
        )),
        Some((d, None)) => witness_notes.push(format!(
            "the witness state {} was not compared: cannot tell which of its logs this store \
             is (give --public-key)",
            d.display()
        )),
        None => {}
    }
    let receipt_findings = receipts.as_ref().map(|r| r.findings.clone());
    let mut findings = in_report_order(
        analysis.found,
        (recorded.findings.into_iter())
            .chain(receipt_findings.into_iter().flatten())
            .chain(log.findings)
            .chain(checked.findings)
            .chain(witness_findings),
    );
    records::describe_records(&s, &mut findings);
    let mut notes = recorded.notes;
    notes.extend(receipts.iter().flat_map(|r| r.notes.iter().cloned()));
    notes.extend(checked.notes);
    notes.extend(witness_notes);
    let unchained = s.unchained();
    let latest_size = checked.summary.latest.as_ref().map_or(0, |c| c.size);
    let unsigned_leaves = tree.size.saturating_sub(latest_size);
    notes.extend(closing_notes(
        unchained,
        (unsigned_leaves > 0).then_some((latest_size, tree.size)),
        keys.is_empty(),
        recorded.deletions.len(),
    ));
    let seconds = started.elapsed().as_secs_f64();
    Ok(Report {
        data_dir: data_dir.display().to_string(),
        class: class.map(str::to_owned),
        intact: findings.is_empty(),
        signatures_checked: !keys.is_empty(),
        segments: segments.len(),
        frames: s.frames.len() as u64,
        records: tree.records,
        bytes: total,
        tree_size: tree.size,
        root: tree.root.map_or_else(|| "unknown".into(), hex::encode),
        deleted_segments: deleted.len(),
        deleted_frames: deleted.values().map(|d| d.receipt.frames).sum(),
        unchained_frames: unchained,
        unsigned_leaves,
        checkpoints: checked.summary,
        receipts: receipts.as_ref().map(|r| ReceiptSummary {
            entries: r.entries,
            valid: r.valid,
            authenticated: !keys.is_empty(),
        }),
        deletions: recorded.deletions,
        findings,
        notes,
        seconds,
        mb_per_s: if seconds > 0.0 {
            total as f64 / 1e6 / seconds
        } else {
            0.0
        },
    })
}

/// Leaves out what follows the frame holding leaf `up_to - 1` (see [`verify_store_to`]).
fn cut_at(segments: &mut Vec<SegmentInfo>, items: &mut Vec<Item>, up_to: u64) {
    let last = items.iter().rposition(
        |it| matches!(it, Item::Frame(f) if f.chain.is_some_and(|c| c.leaf_index < up_to)),
    );
    if !items
        .iter()
        .any(|it| matches!(it, Item::Frame(f) if f.chain.is_some()))
    {
        return;
    }
    match last.map(|i| (i, &items[i])) {
        Some((i, Item::Frame(f))) => {
            let (seg, end) = (f.segment, f.offset + f.len);
            items.truncate(i + 1);
            segments.truncate(seg + 1);
            if let Some(s) = segments.get_mut(seg) {
                s.len = end;
            }
        }
        _ => {
            items.clear();
            segments.clear();
        }
    }
}

/// The checkpoints in `log` against the recomputed `tree`.
fn check_tree(
    data_dir: &Path,
    keys: &[VerifierKey],
    log: &CheckpointLog,
    tree: &tree::Recomputed,
    highest: Option<u64>,
) -> Checked {
    let recomputed = Tree {
        roots: &tree.roots,
        size: tree.size,
        unknown_from: tree.unknown_from,
        highest,
    };
    let log_present = data_dir.join(CHECKPOINT_LOG_FILE).exists();
    let mut checked = check_checkpoints(&log.cps, keys, &recomputed, log_present);
    checked.summary.entries = log.entries;
    checked
}

/// The findings in report order: the frame-level analysis's (in store order), then `rest`;
/// the consequences of a frame-level finding grouped under it (`causes`).
fn in_report_order(found: Vec<Located>, rest: impl Iterator<Item = Finding>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut causes = Vec::new();
    for l in found {
        if let Some(span) = l.span.or(l.finding.leaves) {
            causes.push((findings.len(), span));
        }
        findings.push(l.finding);
    }
    findings.extend(rest);
    causes::group_under_causes(findings, &causes)
}

/// The notes after the checks: frames from before the chain, leaves not signed yet (from the
/// latest checkpoint's size to the tree's), and what is not checked without keys.
fn closing_notes(
    unchained: u64,
    unsigned: Option<(u64, u64)>,
    no_keys: bool,
    deletions: usize,
) -> Vec<String> {
    let mut notes = Vec::new();
    if unchained > 0 {
        notes.push(format!(
            "the first {unchained} frames were written before the hash chain (no leaf index): \
             they are covered by the checkpoints only"
        ));
    }
    if let (Some((from, size)), false) = (unsigned, no_keys) {
        notes.push(format!(
            "leaves {from}..{} are not covered by a signed checkpoint yet (written after the \
             latest one)",
            size - 1
        ));
    }
    if no_keys {
        notes.push(
            "checkpoint signatures were not checked (no --public-key): a store rewritten as a \
             whole, checkpoints included, would pass"
                .into(),
        );
        if deletions > 0 {
            notes.push(format!(
                "{deletions} deletion{} accepted on the receipts' form alone: receipt \
                 signatures were not checked (no --public-key), so these deletions are NOT \
                 authenticated (whoever can write the data directory could forge a receipt)",
                if deletions == 1 { " was" } else { "s were" }
            ));
        }
    }
    notes
}

/// Verifies every store of a data directory with retention classes: its own store when it has
/// segments (written without retention), then `classes/<name>/` for each class directory, each
/// a class store with its receipts. `progress(done, total)` counts the bytes of all of them.
pub fn verify_data_dir(
    data_dir: &Path,
    keys: &[VerifierKey],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<DataDirReport, ScanError> {
    verify_data_dir_with(data_dir, keys, &WitnessCheck::default(), progress)
}

/// [`verify_data_dir`], each store also checked as [`WitnessCheck`] asks.
pub fn verify_data_dir_with(
    data_dir: &Path,
    keys: &[VerifierKey],
    witness: &WitnessCheck,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<DataDirReport, ScanError> {
    let started = Instant::now();
    let (stores, notes) = stores_of(data_dir)?;
    let mut total = 0u64;
    for (dir, _) in &stores {
        total += scan::segments(dir)?.iter().map(|s| s.len).sum::<u64>();
    }
    let gone = gone_classes(data_dir, keys, witness, &stores);
    let mut base = 0u64;
    let mut reports = Vec::with_capacity(stores.len() + gone.len());
    let all = (stores.iter().map(|s| (s, false))).chain(gone.iter().map(|s| (s, true)));
    for ((dir, class), gone) in all {
        let r = verify_bounded(
            dir,
            class.as_deref(),
            keys,
            witness,
            None,
            gone,
            &mut |done, _| progress(base + done, total.max(base + done)),
        )?;
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

/// Stores to check: (directory, class name for a class store).
type Stores = Vec<(PathBuf, Option<String>)>;

/// Class logs the witness state holds (`<key name>/<class>` for a given key) whose class
/// directory is gone: deleted whole, each still checked against what the witness cosigned.
fn gone_classes(
    data_dir: &Path,
    keys: &[VerifierKey],
    witness: &WitnessCheck,
    stores: &Stores,
) -> Stores {
    let Some(state_dir) = &witness.state_dir else {
        return Vec::new();
    };
    let mut out: Stores = Vec::new();
    for origin in state_origins(state_dir) {
        let class = keys.iter().find_map(|k| {
            let c = origin.strip_prefix(k.name())?.strip_prefix('/')?;
            meshlog_format::layout::valid_class_name(c).then_some(c)
        });
        let Some(class) = class else { continue };
        let known = stores
            .iter()
            .chain(out.iter())
            .any(|(_, c)| c.as_deref() == Some(class));
        if !known {
            out.push((
                meshlog_format::layout::class_dir(data_dir, class),
                Some(class.to_owned()),
            ));
        }
    }
    out
}

/// The stores of a data directory (directory, class), and a note when its own store was left
/// with checkpoints but no segments.
fn stores_of(data_dir: &Path) -> Result<(Stores, Vec<String>), ScanError> {
    let classes = meshlog_format::layout::class_dirs(data_dir).map_err(|source| ScanError::Io {
        path: data_dir.join(meshlog_format::layout::CLASSES_DIR),
        source,
    })?;
    let mut stores: Stores = Vec::new();
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
    Ok((stores, notes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlog_format::layout::{class_dir, witness_log_path};
    use meshlog_tlog::keys::SignerKey;

    fn key() -> VerifierKey {
        SignerKey::from_seed("example.com/log", &[5; 32])
            .unwrap()
            .verifier()
    }

    #[test]
    fn a_class_store_is_checked_with_its_class_log_key_first() {
        let d = tempfile::tempdir().unwrap();
        let short = class_dir(d.path(), "short");
        assert_eq!(log_class(&short, None), Some("short"));
        assert_eq!(log_class(d.path(), None), None);
        assert_eq!(log_class(d.path(), Some("long")), Some("long"));
        let keys = store_keys(&[key()], Some("short"));
        let names: Vec<&str> = keys.iter().map(|k| k.name()).collect();
        assert_eq!(names, ["example.com/log/short", "example.com/log"]);
        assert_eq!(store_keys(&[key()], None), [key()]);
        assert!(store_keys(&[], Some("short")).is_empty());
    }

    #[test]
    fn a_class_log_the_witness_holds_without_its_directory_is_checked_as_gone() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("state");
        std::fs::create_dir_all(state.join(meshlog_format::layout::WITNESS_LOGS_DIR)).unwrap();
        for origin in [
            "example.com/log",
            "example.com/log/short",
            "example.com/log/default",
            "other.example/log/short",
        ] {
            std::fs::write(witness_log_path(&state, origin), b"").unwrap();
        }
        let data = d.path().join("data");
        let stores: Stores = vec![(class_dir(&data, "default"), Some("default".into()))];
        let check = WitnessCheck {
            keys: Vec::new(),
            state_dir: Some(state),
        };
        // Only the given key's class logs; the present class is not added twice.
        assert_eq!(
            gone_classes(&data, &[key()], &check, &stores),
            [(class_dir(&data, "short"), Some("short".to_owned()))]
        );
        assert!(gone_classes(&data, &[], &check, &stores).is_empty());
        assert!(gone_classes(&data, &[key()], &WitnessCheck::default(), &stores).is_empty());
    }
}
