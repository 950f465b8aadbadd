//! meshlog-witness: a witness for meshlog's checkpoint logs, after C2SP `tlog-witness`.
//!
//! A log sends each new signed checkpoint with the size of the last checkpoint the witness
//! cosigned for it (`old`) and a consistency proof from that size ([`AddRequest`]). The witness
//! ([`Witness::add_checkpoint`]) checks the log's signature with the log's verifier key it was
//! given, that `old` is the size it holds for that log, and that the new checkpoint extends the
//! one it holds (same root at the same size, or a valid RFC 9162 consistency proof); then it
//! writes the new checkpoint to its state directory (durably, before answering) and returns
//! its cosignature ([`meshlog_tlog::cosignature`]). Anything smaller, forked or not provably
//! consistent is refused with the witness's size ([`AddError::Conflict`], HTTP 409), so a log
//! rolled back, forked or deleted whole cannot get cosigned again, and the state directory
//! (`logs/<hex(origin)>.note`, see [`meshlog_format::layout`]) shows what the log had
//! reached to anyone who reads it.
//!
//! A log configured by its verifier key `<name>+…` also covers its retention class logs,
//! origins `<name>/<class>` signed by the same key ([`meshlog_tlog::keys::SignerKey::for_class`]):
//! each is witnessed as a log of its own, with its own state file, so one class rolled back,
//! forked or deleted is refused and shown like any log.
//!
//! [`http`] serves `POST /add-checkpoint` (the C2SP request and answers) and `GET
//! /checkpoint/<origin>` (the latest cosigned checkpoint of a log); [`config`] reads the
//! collector's `[witness]` section.

pub mod config;
pub mod http;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use meshlog_format::fsutil::write_durably;
use meshlog_format::layout::{WITNESS_LOGS_DIR, witness_log_path};
use meshlog_tlog::checkpoint::{Checkpoint, CheckpointError};
use meshlog_tlog::cosignature::{cosign, split_note};
use meshlog_tlog::keys::{SignerKey, VerifierKey};
use meshlog_tlog::merkle::{Hash, empty_root, verify_consistency};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Most proof lines accepted (a proof has at most 2·log2(size) hashes).
const MAX_PROOF_LINES: usize = 128;

/// An `add-checkpoint` request: `old <size>`, proof hashes (base64, one a line), a blank
/// line, the signed checkpoint note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddRequest {
    /// The size the log believes the witness holds for it.
    pub old: u64,
    /// The consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note.
    pub note: Vec<u8>,
}

impl AddRequest {
    /// The request body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old);
        for h in &self.proof {
            out.push_str(&B64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.note);
        out
    }

    /// Parses a request body.
    pub fn parse(body: &[u8]) -> Result<Self, AddError> {
        let bad = |why: &str| AddError::Malformed(why.to_owned());
        let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
        let (head, note) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no blank line between the proof and the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(|n| meshlog_tlog::checkpoint::parse_decimal(n).ok())
            .ok_or_else(|| bad("the first line must be \"old <size>\""))?;
        let mut proof = Vec::new();
        for (i, l) in lines.enumerate() {
            if i >= MAX_PROOF_LINES {
                return Err(bad("too many proof lines"));
            }
            let h = B64
                .decode(l)
                .ok()
                .and_then(|v| Hash::try_from(v).ok())
                .ok_or_else(|| {
                    AddError::Malformed(format!(
                        "proof line {} is not a base64 SHA-256 hash",
                        i + 1
                    ))
                })?;
            proof.push(h);
        }
        Ok(AddRequest {
            old,
            proof,
            note: note.as_bytes().to_vec(),
        })
    }
}

/// Why a checkpoint was not cosigned; each maps to the C2SP HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The request is not one (400).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The witness was not told this log's key (404).
    #[error("unknown log {0:?}: this witness is not configured with its verifier key")]
    UnknownLog(String),
    /// The note is not validly signed by the log's key (403).
    #[error("the checkpoint is not validly signed by the log's key: {0}")]
    BadSignature(CheckpointError),
    /// Not consistent with what the witness holds (409, with the witness's size).
    #[error("refused: {reason} (this witness holds size {size} for the log)")]
    Conflict {
        /// The size the witness holds.
        size: u64,
        /// Why.
        reason: String,
    },
    /// The state could not be read or written (500).
    #[error("witness state {path}: {source}")]
    State {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// What the witness holds for one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The note as stored: the log's checkpoint and the witness's cosignature.
    pub note: String,
}

/// Reads the latest checkpoint a witness state directory holds for `origin` (None when it
/// never cosigned one). The note's body is parsed, not verified: pass it to
/// [`meshlog_tlog::cosignature::verify_cosignature`] with the witness key to check it.
pub fn read_latest(state_dir: &Path, origin: &str) -> Result<Option<Latest>, AddError> {
    let path = witness_log_path(state_dir, origin);
    let note = match std::fs::read_to_string(&path) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(AddError::State { path, source }),
    };
    let bad = |why: String| AddError::State {
        path: path.clone(),
        source: io::Error::new(io::ErrorKind::InvalidData, why),
    };
    let (text, _) = split_note(note.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let checkpoint = Checkpoint::parse_body(text).map_err(|e| bad(e.to_string()))?;
    Ok(Some(Latest { checkpoint, note }))
}

/// The origins a witness state directory holds checkpoints of.
pub fn origins(state_dir: &Path) -> io::Result<Vec<String>> {
    let dir = state_dir.join(WITNESS_LOGS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in entries {
        let name = e?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".note")) else {
            continue;
        };
        if let Some(o) = hex::decode(stem)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        {
            out.push(o);
        }
    }
    out.sort();
    Ok(out)
}

/// A witness: its key, the logs it witnesses, its state directory.
pub struct Witness {
    key: SignerKey,
    logs: HashMap<String, VerifierKey>,
    state_dir: PathBuf,
    /// One add-checkpoint at a time: the check and the write must not interleave.
    lock: Mutex<()>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("name", &self.key.name())
            .field("logs", &self.logs.keys().collect::<Vec<_>>())
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

impl Witness {
    /// A witness signing with `key`, cosigning the logs whose verifier keys are `logs`, keeping
    /// its state in `state_dir` (created if missing).
    pub fn open(
        key: SignerKey,
        logs: Vec<VerifierKey>,
        state_dir: &Path,
    ) -> Result<Self, AddError> {
        let dir = state_dir.join(WITNESS_LOGS_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| AddError::State { path: dir, source })?;
        Ok(Witness {
            key,
            logs: logs.into_iter().map(|k| (k.name().to_owned(), k)).collect(),
            state_dir: state_dir.to_owned(),
            lock: Mutex::new(()),
        })
    }

    /// The witness's public key.
    pub fn verifier(&self) -> VerifierKey {
        self.key.verifier()
    }

    /// The latest checkpoint cosigned for `origin`.
    pub fn latest(&self, origin: &str) -> Result<Option<Latest>, AddError> {
        read_latest(&self.state_dir, origin)
    }

    /// The key of the log `origin`: a configured log's key, or for `<name>/<class>` the class
    /// log key of the configured log `<name>` (a collector with retention classes signs each
    /// class store's log under its own origin with its one key, [`SignerKey::for_class`]; each
    /// is a log of its own here, with its own state).
    fn log_key(&self, origin: &str) -> Option<VerifierKey> {
        if let Some(k) = self.logs.get(origin) {
            return Some(k.clone());
        }
        let (name, class) = origin.rsplit_once('/')?;
        if !meshlog_format::layout::valid_class_name(class) {
            return None;
        }
        self.logs.get(name)?.for_class(class).ok()
    }

    /// Checks `req` against the state, stores the new checkpoint and returns the cosignature
    /// line (ending in a newline).
    pub fn add_checkpoint(&self, req: &AddRequest) -> Result<String, AddError> {
        let (text, _) = split_note(&req.note).map_err(|e| AddError::Malformed(e.to_string()))?;
        let origin = text.split('\n').next().unwrap_or_default().to_owned();
        let log_key = self
            .log_key(&origin)
            .ok_or_else(|| AddError::UnknownLog(origin.clone()))?;
        let cp = Checkpoint::verify(&req.note, &log_key).map_err(AddError::BadSignature)?;
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let (size, root) = match self.latest(&origin)? {
            Some(l) => (l.checkpoint.size, l.checkpoint.root),
            None => (0, empty_root()),
        };
        let conflict = |reason: String| AddError::Conflict { size, reason };
        if req.old != size {
            return Err(conflict(format!(
                "the request's old size {} is not the size this witness holds",
                req.old
            )));
        }
        if cp.size < size {
            return Err(conflict(format!(
                "the checkpoint has {} leaves, fewer than the {size} this witness cosigned: the \
                 log was rolled back",
                cp.size
            )));
        }
        if cp.size == size && cp.root != root {
            return Err(conflict(format!(
                "the checkpoint signs another root for the same {size} leaves: the log forked"
            )));
        }
        verify_consistency(size, cp.size, &root, &cp.root, &req.proof).map_err(|e| {
            conflict(format!(
                "the checkpoint of {} leaves is not consistent with the one of {size} this \
                 witness cosigned (the log forked, or a bad proof): {e}",
                cp.size
            ))
        })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let line = cosign(text, &self.key, now);
        let note = String::from_utf8_lossy(&req.note).into_owned();
        let path = witness_log_path(&self.state_dir, &origin);
        write_durably(&path, format!("{note}{line}").as_bytes())
            .map_err(|source| AddError::State { path, source })?;
        tracing::info!(log = %origin, size = cp.size, "cosigned a checkpoint");
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlog_tlog::cosignature::verify_cosignature;
    use meshlog_tlog::merkle::MerkleTree;

    fn leaves(tag: u8, n: u8) -> Vec<Hash> {
        (0..n).map(|i| [tag ^ i; 32]).collect()
    }

    /// Asks `w` to cosign `key`'s checkpoint of `tree` at `size`, proven from `old`.
    fn grow(
        w: &Witness,
        key: &SignerKey,
        tree: &MerkleTree,
        old: u64,
        size: u64,
    ) -> Result<String, AddError> {
        let proof = if old == 0 || old >= size {
            vec![]
        } else {
            tree.consistency_proof(old, size).unwrap()
        };
        w.add_checkpoint(&AddRequest {
            old,
            proof,
            note: note(key, tree, size),
        })
    }

    fn note(log: &SignerKey, tree: &MerkleTree, size: u64) -> Vec<u8> {
        Checkpoint {
            origin: log.name().into(),
            size,
            root: tree.root_at(size).unwrap(),
            timestamp_unix_ns: size,
        }
        .sign(log)
        .unwrap()
        .into_bytes()
    }

    #[test]
    fn grows_are_cosigned_and_rollbacks_and_forks_are_refused_across_a_restart() {
        let d = tempfile::tempdir().unwrap();
        let log = SignerKey::from_seed("example/log", &[1; 32]).unwrap();
        let wkey = || SignerKey::from_seed("example/witness", &[2; 32]).unwrap();
        let w = Witness::open(wkey(), vec![log.verifier()], d.path()).unwrap();
        let tree = MerkleTree::from_leaf_hashes(leaves(0, 10));
        let add = |w: &Witness, old, size| grow(w, &log, &tree, old, size);
        let line = add(&w, 0, 4).unwrap();
        let cosigned = format!("{}{line}", String::from_utf8(note(&log, &tree, 4)).unwrap());
        assert!(verify_cosignature(cosigned.as_bytes(), &wkey().verifier()).is_ok());
        add(&w, 4, 7).unwrap();
        // A restart keeps the state.
        let w = Witness::open(wkey(), vec![log.verifier()], d.path()).unwrap();
        assert!(matches!(
            add(&w, 4, 9),
            Err(AddError::Conflict { size: 7, .. })
        ));
        assert!(matches!(
            add(&w, 7, 5),
            Err(AddError::Conflict { size: 7, .. })
        ));
        let fork = MerkleTree::from_leaf_hashes(leaves(0x80, 10));
        let forked = |size| AddRequest {
            old: 7,
            proof: fork.consistency_proof(7, size).unwrap_or_default(),
            note: note(&log, &fork, size),
        };
        assert!(matches!(
            w.add_checkpoint(&forked(7)),
            Err(AddError::Conflict { size: 7, .. })
        ));
        assert!(matches!(
            w.add_checkpoint(&forked(9)),
            Err(AddError::Conflict { size: 7, .. })
        ));
        assert_eq!(w.latest("example/log").unwrap().unwrap().checkpoint.size, 7);
        assert_eq!(origins(d.path()).unwrap(), ["example/log"]);
        let stranger = SignerKey::from_seed("example/other", &[3; 32]).unwrap();
        let r = w.add_checkpoint(&AddRequest {
            old: 0,
            proof: vec![],
            note: note(&stranger, &tree, 3),
        });
        assert!(matches!(r, Err(AddError::UnknownLog(_))));
        let req = AddRequest {
            old: 7,
            proof: tree.consistency_proof(7, 10).unwrap(),
            note: note(&log, &tree, 10),
        };
        assert_eq!(AddRequest::parse(&req.encode()).unwrap(), req);
        add(&w, 7, 10).unwrap();
    }

    #[test]
    fn each_class_log_of_a_configured_key_is_witnessed_apart() {
        let d = tempfile::tempdir().unwrap();
        let log = SignerKey::from_seed("example/log", &[1; 32]).unwrap();
        let (short, long) = (
            log.for_class("short").unwrap(),
            log.for_class("long").unwrap(),
        );
        let wkey = SignerKey::from_seed("example/witness", &[2; 32]).unwrap();
        let w = Witness::open(wkey, vec![log.verifier()], d.path()).unwrap();
        let tree = MerkleTree::from_leaf_hashes(leaves(0, 10));
        let add = |key: &SignerKey, old, size| grow(&w, key, &tree, old, size);
        add(&short, 0, 6).unwrap();
        add(&long, 0, 3).unwrap();
        // Each class log has its own state: the short class rolled back to 4 is refused with
        // its own size, the long one goes on.
        assert!(matches!(
            add(&short, 6, 4),
            Err(AddError::Conflict { size: 6, .. })
        ));
        add(&long, 3, 5).unwrap();
        assert_eq!(
            origins(d.path()).unwrap(),
            ["example/log/long", "example/log/short"]
        );
        assert_eq!(
            w.latest("example/log/long")
                .unwrap()
                .unwrap()
                .checkpoint
                .size,
            5
        );
        // A class log name signed by another key, or a name that is no class: refused.
        let forger = SignerKey::from_seed("example/log", &[9; 32]).unwrap();
        assert!(matches!(
            add(&forger.for_class("short").unwrap(), 6, 7),
            Err(AddError::BadSignature(_))
        ));
        let odd = SignerKey::from_seed("example/log/Not_A_Class", &[1; 32]).unwrap();
        assert!(matches!(add(&odd, 0, 2), Err(AddError::UnknownLog(_))));
    }
}
