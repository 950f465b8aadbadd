//! The checkpoints in `checkpoints.log`: reading them and checking their signatures with the
//! given keys ([`read_checkpoints`]), then each root against the recomputed tree, the store's
//! length against each size, and successive checkpoints against each other
//! ([`check_checkpoints`]).

use super::report::{CheckpointInfo, CheckpointSummary, Finding, Kind, format_time};
use crate::scan::ScanError;
use meshlog_format::checkpoint_log::{self, CHECKPOINT_LOG_FILE, Entry, Item as LogItem};
use meshlog_tlog::checkpoint::{Checkpoint, CheckpointError, NoteError};
use meshlog_tlog::keys::VerifierKey;
use meshlog_tlog::merkle::Hash;
use std::collections::HashMap;
use std::io;
use std::path::Path;

/// A checkpoint read from the log.
pub(super) struct Cp {
    pub number: usize,
    pub offset: u64,
    pub end: u64,
    pub cp: Checkpoint,
    /// Its signature verified with a given key.
    pub verified: bool,
}

/// What `checkpoints.log` holds.
pub(super) struct CheckpointLog {
    /// The checkpoints that parsed (and verified, with keys), in log order.
    pub cps: Vec<Cp>,
    /// Damaged entries, bad signatures, malformed checkpoints.
    pub findings: Vec<Finding>,
    /// Intact entries.
    pub entries: usize,
}

/// A finding about `checkpoints.log` bytes `offset..end`.
fn log_finding(
    kind: Kind,
    (offset, end): (u64, u64),
    number: Option<usize>,
    message: String,
) -> Finding {
    let mut f = Finding::new(kind, message);
    f.file = Some(CHECKPOINT_LOG_FILE.into());
    f.offset = Some(offset);
    f.end = Some(end);
    f.checkpoint = number;
    f
}

/// The text of a signed note (without its signatures), unverified.
fn note_text(note: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(note).ok()?;
    let split = s.rfind("\n\n")?;
    s.get(..split + 1)
}

/// Reads `checkpoints.log` and checks the signatures (none without keys: form only).
pub(super) fn read_checkpoints(
    data_dir: &Path,
    keys: &[VerifierKey],
) -> Result<CheckpointLog, ScanError> {
    let path = data_dir.join(CHECKPOINT_LOG_FILE);
    let mut log = CheckpointLog {
        cps: Vec::new(),
        findings: Vec::new(),
        entries: 0,
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(log),
        Err(source) => return Err(ScanError::Io { path, source }),
    };
    let items = checkpoint_log::parse(&bytes);
    for (i, item) in items.iter().enumerate() {
        match item {
            LogItem::Damaged(d) => {
                let tail = if i + 1 == items.len() {
                    " (the end of the file: a torn append not yet cut, or a cut entry)"
                } else {
                    ""
                };
                log.findings.push(log_finding(
                    Kind::CheckpointLogDamaged,
                    (d.offset, d.end),
                    None,
                    format!(
                        "{} bytes are no intact checkpoint entry: {}{tail}",
                        d.end - d.offset,
                        d.reason
                    ),
                ));
            }
            LogItem::Entry(e) => {
                log.entries += 1;
                match read_entry(e, keys) {
                    Ok(cp) => log.cps.push(cp),
                    Err(f) => log.findings.push(*f),
                }
            }
        }
    }
    Ok(log)
}

/// One entry: its checkpoint, verified with `keys` (parsed only without), or a finding.
fn read_entry(e: &Entry, keys: &[VerifierKey]) -> Result<Cp, Box<Finding>> {
    let end = e.offset + checkpoint_log::encode_entry(&e.note).len() as u64;
    let finding =
        |kind, message| Box::new(log_finding(kind, (e.offset, end), Some(e.number), message));
    let cp = |cp, verified| Cp {
        number: e.number,
        offset: e.offset,
        end,
        cp,
        verified,
    };
    if keys.is_empty() {
        return note_text(&e.note)
            .ok_or_else(|| "not a signed note".to_owned())
            .and_then(|t| Checkpoint::parse_body(t).map_err(|e| e.to_string()))
            .map(|c| cp(c, false))
            .map_err(|why| {
                finding(
                    Kind::CheckpointMalformed,
                    format!("checkpoint #{}: {why}", e.number),
                )
            });
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
        Ok(c) => Ok(cp(c, true)),
        Err(CheckpointError::Note(NoteError::UnknownKey { found, .. })) => Err(finding(
            Kind::CheckpointWrongKey,
            format!(
                "checkpoint #{} is not signed by the given key{}: it is signed by {} (a \
                 swapped or forged key)",
                e.number,
                if keys.len() == 1 { "" } else { "s" },
                if found.is_empty() {
                    "no key".to_owned()
                } else {
                    found.join(", ")
                }
            ),
        )),
        Err(CheckpointError::Note(NoteError::BadSignature { key, .. })) => Err(finding(
            Kind::CheckpointBadSignature,
            format!(
                "checkpoint #{}: the signature by {key} does not verify: the checkpoint was \
                 altered after signing, or forged",
                e.number
            ),
        )),
        Err(other) => Err(finding(
            Kind::CheckpointMalformed,
            format!("checkpoint #{}: {other}", e.number),
        )),
    }
}

/// The recomputed tree, as the checkpoints are checked against it.
pub(super) struct Tree<'r> {
    /// Its root at every checkpoint's size it reached (while its leaves were known).
    pub roots: &'r HashMap<u64, Hash>,
    /// Its size.
    pub size: u64,
    /// The size from which the leaves of a deleted segment are unknown.
    pub unknown_from: Option<u64>,
    /// The highest leaf index the store holds.
    pub highest: Option<u64>,
}

/// What the checkpoints say about the store.
pub(super) struct Checked {
    pub summary: CheckpointSummary,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
}

/// Checks every checkpoint against `tree` and its predecessor; `log_present`: whether
/// `checkpoints.log` exists (for the message when nothing verifies).
pub(super) fn check_checkpoints(
    cps: &[Cp],
    keys: &[VerifierKey],
    tree: &Tree<'_>,
    log_present: bool,
) -> Checked {
    let mut out = Checked {
        summary: summary(cps, keys),
        findings: Vec::new(),
        notes: Vec::new(),
    };
    let good = matching(cps, tree.roots);
    let mut unchecked = Vec::new();
    let mut prev: Option<&Cp> = None;
    for c in cps {
        let n = c.cp.size;
        if n <= tree.size && tree.unknown_from.is_some_and(|u| n > u) {
            // Its root covers deleted leaves whose hashes are unknown (a finding says why).
            unchecked.push(c.number);
        } else {
            out.findings.extend(check_root(c, tree, &good));
        }
        if let Some(p) = prev {
            out.findings.extend(check_successor(p, c));
            if c.cp.timestamp_unix_ns < p.cp.timestamp_unix_ns {
                out.notes.push(format!(
                    "checkpoint #{} is dated before checkpoint #{} (clock stepped back?)",
                    c.number, p.number
                ));
            }
        }
        prev = Some(c);
    }
    if !unchecked.is_empty() {
        let list: Vec<String> = unchecked.iter().map(|k| format!("#{k}")).collect();
        out.notes.push(format!(
            "the roots of checkpoint{} {} were not checked: they cover leaves of a deleted \
             segment whose kept leaf hashes are missing or altered (see the findings)",
            if list.len() == 1 { "" } else { "s" },
            list.join(", ")
        ));
    }
    if !keys.is_empty() && out.summary.verified == 0 {
        out.findings.push(no_checkpoints(keys, log_present));
    }
    out
}

/// The summary: counts, keys, the latest checkpoint.
fn summary(cps: &[Cp], keys: &[VerifierKey]) -> CheckpointSummary {
    CheckpointSummary {
        entries: cps.len(),
        verified: cps.iter().filter(|c| c.verified).count(),
        keys: keys
            .iter()
            .map(|k| format!("{}+{:08x}", k.name(), k.key_id()))
            .collect(),
        latest: cps.last().map(|c| CheckpointInfo {
            number: c.number,
            offset: c.offset,
            size: c.cp.size,
            root: hex::encode(c.cp.root),
            timestamp_unix_ns: c.cp.timestamp_unix_ns,
            time: format_time(c.cp.timestamp_unix_ns),
        }),
    }
}

/// (size, number) of the checkpoints whose root matches the tree, by size.
fn matching(cps: &[Cp], roots: &HashMap<u64, Hash>) -> Vec<(u64, usize)> {
    let mut good: Vec<(u64, usize)> = cps
        .iter()
        .filter(|c| roots.get(&c.cp.size) == Some(&c.cp.root))
        .map(|c| (c.cp.size, c.number))
        .collect();
    good.sort_unstable();
    good
}

fn at(c: &Cp, kind: Kind, message: String) -> Finding {
    log_finding(kind, (c.offset, c.end), Some(c.number), message)
}

/// Checkpoint `c` against the tree: more leaves signed than the store has (cut from its end,
/// or from the middle), or another root. `good`: the checkpoints that match, by size.
fn check_root(c: &Cp, tree: &Tree<'_>, good: &[(u64, usize)]) -> Option<Finding> {
    let (n, k) = (c.cp.size, c.number);
    if n > tree.size && tree.highest.is_none_or(|h| h + 1 < n) {
        let from = tree.highest.map_or(0, |h| h + 1);
        let mut f = at(
            c,
            Kind::Truncated,
            format!(
                "checkpoint #{k} signed {n} leaves; the store ends with leaf {}: leaves \
                 {from}..{} are missing from its end (frames cut from the newest segment, or \
                 the newest segments removed)",
                tree.highest.map_or("none".into(), |h| h.to_string()),
                n - 1
            ),
        );
        f.leaves = Some([from, n - 1]);
        Some(f)
    } else if n > tree.size {
        let mut f = at(
            c,
            Kind::CheckpointRootMismatch,
            format!(
                "checkpoint #{k} signed {n} leaves; the store's tree has only {}, so its root \
                 cannot match: leaves are missing from the middle (see the other findings)",
                tree.size
            ),
        );
        f.leaves = Some([0, n - 1]);
        Some(f)
    } else if tree.roots.get(&n) != Some(&c.cp.root) {
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
                "checkpoint #{k} signed root {} for the first {n} leaves; the store's first \
                 {n} leaves hash to {}: {why}, so leaves {m}..{} were changed, removed, \
                 inserted or reordered after it was signed",
                hex::encode(c.cp.root),
                tree.roots.get(&n).map_or("?".into(), hex::encode),
                n - 1
            ),
        );
        f.leaves = Some([m, n - 1]);
        Some(f)
    } else {
        None
    }
}

/// `c` against the checkpoint before it: the log must not shrink nor fork.
fn check_successor(p: &Cp, c: &Cp) -> Option<Finding> {
    let (n, k) = (c.cp.size, c.number);
    if n < p.cp.size {
        Some(at(
            c,
            Kind::CheckpointInconsistent,
            format!(
                "checkpoint #{k} ({n} leaves) is smaller than checkpoint #{} before it ({} \
                 leaves): the log shrank",
                p.number, p.cp.size
            ),
        ))
    } else if n == p.cp.size && c.cp.root != p.cp.root {
        Some(at(
            c,
            Kind::CheckpointInconsistent,
            format!(
                "checkpoint #{k} and checkpoint #{} sign different roots for the same {n} \
                 leaves: the log forked",
                p.number
            ),
        ))
    } else {
        None
    }
}

/// Keys were given and no checkpoint verifies with them.
fn no_checkpoints(keys: &[VerifierKey], log_present: bool) -> Finding {
    let mut f = Finding::new(
        Kind::NoCheckpoints,
        format!(
            "no checkpoint verifies with the given key{}: nothing in this store is signed{}",
            if keys.len() == 1 { "" } else { "s" },
            if log_present {
                ""
            } else {
                " (checkpoints.log is missing: deleted, or serve never had a signing key)"
            }
        ),
    );
    f.file = Some(CHECKPOINT_LOG_FILE.into());
    f
}
