//! What others hold about this log: the writer's own `tree.state`, the witnesses' cosignatures
//! in `cosigned.log` (`--witness KEY`), and a witness's state directory (`--witness-state
//! DIR`).
//!
//! - `tree.state` names the size the writer had committed; a store with fewer leaves lost
//!   some (a deleted segment, even the only one), whether or not anything was signed.
//! - Each `--witness` key must have cosigned the store's latest checkpoint (the same size and
//!   root, checked against the recomputed tree): a witness that did not, or cosigned only an
//!   older one, is a finding naming it.
//! - A witness's state holds the latest checkpoint it cosigned for this log. A store with
//!   fewer leaves than that was rolled back or deleted (even whole: the witness still knows
//!   the log's size), one whose first leaves hash to another root forked.

use super::report::{Finding, Kind};
use meshlog_format::checkpoint_log::{self, Item as LogItem};
use meshlog_format::layout::{
    COSIGNED_LOG_FILE, TREE_STATE_FILE, cosigned_log_path, witness_log_path,
};
use meshlog_tlog::checkpoint::Checkpoint;
use meshlog_tlog::cosignature::{split_note, verify_cosignature, witness_id};
use meshlog_tlog::keys::VerifierKey;
use meshlog_tlog::merkle::Hash;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What `verify` checks beyond the store and its own checkpoints.
#[derive(Debug, Clone, Default)]
pub struct WitnessCheck {
    /// Witness verifier keys whose cosignatures the latest checkpoint must carry.
    pub keys: Vec<VerifierKey>,
    /// A witness's state directory to compare the store with.
    pub state_dir: Option<PathBuf>,
}

/// The size `tree.state` says the writer committed (None: no readable file).
pub(super) fn tree_state_size(store_dir: &Path) -> Option<u64> {
    let text = std::fs::read(store_dir.join(TREE_STATE_FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    v.get("size")?.as_u64()
}

/// Leaves missing from the store's end that `tree.state` says the writer committed: `ends_at`
/// is the number of leaves up to the store's highest leaf index. Leaves missing from the
/// middle are named by the chain, so only the end is checked here.
pub(super) fn tree_state_finding(store_dir: &Path, ends_at: u64) -> Option<Finding> {
    let saved = tree_state_size(store_dir)?;
    (saved > ends_at).then(|| {
        let mut f = Finding::new(
            Kind::Truncated,
            format!(
                "{TREE_STATE_FILE} says the writer committed {saved} leaves; the store ends \
                 after {ends_at}: leaves {ends_at}..{} are missing from its end (segments \
                 deleted or cut)",
                saved - 1
            ),
        );
        f.file = Some(TREE_STATE_FILE.into());
        f.leaves = Some([ends_at, saved - 1]);
        f
    })
}

/// The witness's latest checkpoint for `origin` in `state_dir` (its cosignature checked with a
/// `--witness` key of the same name when one is given).
pub fn witness_state(
    state_dir: &Path,
    origin: &str,
    keys: &[VerifierKey],
) -> Result<Option<Checkpoint>, String> {
    let path = witness_log_path(state_dir, origin);
    let note = match std::fs::read(&path) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let bad = |e: String| format!("{} is not a cosigned checkpoint: {e}", path.display());
    let (text, lines) = split_note(&note).map_err(|e| bad(e.to_string()))?;
    let cp = Checkpoint::parse_body(text).map_err(|e| bad(e.to_string()))?;
    for k in keys {
        let named = lines.iter().any(|l| l.split(' ').nth(1) == Some(k.name()));
        if named {
            verify_cosignature(&note, k).map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok(Some(cp))
}

/// The store against a witness's state: `roots` holds the recomputed roots at the sizes asked
/// for ([`wanted_size`] adds the witness's), `size` the store's tree size.
pub(super) fn state_findings(
    state_dir: &Path,
    origin: &str,
    class: Option<&str>,
    keys: &[VerifierKey],
    size: u64,
    roots: &HashMap<u64, Hash>,
    notes: &mut Vec<String>,
) -> Vec<Finding> {
    let dir = state_dir.display();
    // A class store's log is named with its class, so each finding says which class it is.
    let origin = &match class {
        Some(c) => format!("{origin} (retention class {c})"),
        None => origin.to_owned(),
    };
    let cp = match witness_state(state_dir, origin_name(origin), keys) {
        Ok(Some(cp)) => cp,
        Ok(None) => {
            notes.push(format!(
                "the witness state {dir} holds no checkpoint of log {origin}: nothing to compare"
            ));
            return Vec::new();
        }
        Err(e) => {
            let mut f = Finding::new(Kind::WitnessMismatch, e);
            f.file = Some(dir.to_string());
            return vec![f];
        }
    };
    let w = cp.size;
    let mut out = Vec::new();
    if size < w {
        let mut f = Finding::new(
            Kind::BehindWitness,
            format!(
                "the witness ({dir}) cosigned {w} leaves of log {origin}; this store has \
                 {size}: the log was rolled back or deleted (leaves {size}..{} are gone)",
                w - 1
            ),
        );
        f.leaves = Some([size, w - 1]);
        out.push(f);
    } else if let Some(root) = roots.get(&w)
        && *root != cp.root
    {
        let mut f = Finding::new(
            Kind::WitnessMismatch,
            format!(
                "the witness ({dir}) cosigned root {} for the first {w} leaves of log \
                 {origin}; this store's first {w} leaves hash to {}: the log forked or was \
                 rewritten",
                hex::encode(cp.root),
                hex::encode(root)
            ),
        );
        f.leaves = Some([0, w - 1]);
        out.push(f);
    } else if roots.contains_key(&w) {
        notes.push(format!(
            "the witness state {dir} holds {w} leaves of log {origin}: this store extends it"
        ));
    }
    out
}

/// The origin in a log's label (`<origin> (retention class <c>)`).
fn origin_name(label: &str) -> &str {
    label.split(' ').next().unwrap_or(label)
}

/// The size to compute a root at for the witness state's checkpoint.
pub(super) fn wanted_size(state_dir: &Path, origin: &str) -> Option<u64> {
    witness_state(state_dir, origin, &[])
        .ok()
        .flatten()
        .map(|c| c.size)
}

/// Every witness key must have cosigned the latest checkpoint `(size, root)`.
pub(super) fn cosignature_findings(
    store_dir: &Path,
    class: Option<&str>,
    keys: &[VerifierKey],
    latest: Option<(u64, Hash)>,
    notes: &mut Vec<String>,
) -> Vec<Finding> {
    if keys.is_empty() {
        return Vec::new();
    }
    // Per witness: the largest (size, root) it validly cosigned.
    let mut best: HashMap<String, (u64, Hash)> = HashMap::new();
    let bytes = std::fs::read(cosigned_log_path(store_dir)).unwrap_or_default();
    for item in checkpoint_log::parse(&bytes) {
        let LogItem::Entry(e) = item else { continue };
        let Some(cp) = split_note(&e.note)
            .ok()
            .and_then(|(text, _)| Checkpoint::parse_body(text).ok())
        else {
            continue;
        };
        for k in keys {
            if verify_cosignature(&e.note, k).is_ok() {
                let b = best.entry(witness_id(k)).or_insert((cp.size, cp.root));
                if cp.size >= b.0 {
                    *b = (cp.size, cp.root);
                }
            }
        }
    }
    let mut out = Vec::new();
    let latest_cp = match class {
        Some(c) => format!("the latest checkpoint of retention class {c}"),
        None => "the latest checkpoint".to_owned(),
    };
    for k in keys {
        let id = witness_id(k);
        let got = best.get(&id);
        let missing = match (latest, got) {
            (None, _) => Some("the store has no checkpoint to cosign".to_owned()),
            (Some(_), None) => Some(format!("no valid cosignature by it in {COSIGNED_LOG_FILE}")),
            (Some((n, r)), Some((m, s))) if (n, r) != (*m, *s) => Some(format!(
                "its latest cosignature is on {m} leaves{}, the latest checkpoint has {n}",
                if *m == n { " with another root" } else { "" }
            )),
            _ => None,
        };
        match missing {
            Some(why) => {
                let mut f = Finding::new(
                    Kind::NotWitnessed,
                    format!("{latest_cp} is not cosigned by witness {id}: {why}"),
                );
                f.file = Some(COSIGNED_LOG_FILE.into());
                out.push(f);
            }
            None => notes.push(format!("{latest_cp} is cosigned by witness {id}")),
        }
    }
    out
}
