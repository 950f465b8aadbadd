//! `meshlog prove` and `meshlog verify-proof`: self-contained proofs that a record is in the
//! signed log, and that one signed tree is a prefix of another.
//!
//! An **inclusion proof** is a JSON object carrying everything needed to check it with the
//! verifier key alone, without the store:
//!
//! ```json
//! {
//!   "format": "meshlog-inclusion-proof/1",
//!   "record": { "vm_id": "44bdb26d86b232dd", "sequence": 17, "line": 3, "text": "{...}" },
//!   "leaf_index": 12,
//!   "tree_size": 40,
//!   "frame": "<base64 of the frame's bytes: header and payload, as stored>",
//!   "inclusion_path": ["<base64 hash>", "..."],
//!   "checkpoint": "<the signed checkpoint note of the tree of size tree_size>"
//! }
//! ```
//!
//! [`verify_proof`] checks: the checkpoint's signature (and that its size is `tree_size`); the
//! frame's leaf hash with the path leads to the checkpoint's root at `leaf_index` (RFC 9162);
//! the frame is intact (header and payload CRC, its chain entry names `leaf_index`); and the
//! record is line `line` of the frame's payload, the same text, with the VM id and sequence
//! claimed. A frame whose payload cannot be read by this build (a critical header entry it does
//! not know, e.g. encryption at rest: reading needs the data key) still has its inclusion
//! proven; the report says the record's content could not be checked.
//!
//! A **consistency proof** (`meshlog-consistency-proof/1`) holds two signed checkpoints and the
//! RFC 9162 consistency proof between their trees: checked, it shows the older tree is a prefix
//! of the newer one, i.e. nothing signed before was changed afterwards.
//!
//! In a retention class store (`--data-dir DATA_DIR/classes/<class>`) the leaves of segments
//! deleted by policy are taken from `deleted/<seq>.leaves`, so records kept after a deletion
//! still get proofs against checkpoints signed before or after it (a wrong leaves file only
//! makes the roots differ, which the signed checkpoint catches; `meshlog verify` names it).
//!
//! A record is named as `VM_ID:SEQUENCE` (the `resource.meshlog.vm.id` and `meshlog.sequence`
//! fields `meshlog query` prints; every record the filter sends has both) or `LEAF/LINE` (the
//! line, from 1, of the frame that is leaf `LEAF`, for records without them).

use crate::scan::{self, Item, ScanError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use meshlog_format::checkpoint_log::{self, CHECKPOINT_LOG_FILE, Item as LogItem};
use meshlog_format::frame::{Damage, FRAME_HEADER_PREFIX_LEN, FrameHeader, frame_header_len};
use meshlog_tlog::checkpoint::{Checkpoint, CheckpointError, NoteError};
use meshlog_tlog::keys::{Keyring, VerifierKey};
use meshlog_tlog::merkle::{self, Hash, MerkleTree, leaf_hash};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::str::FromStr;

/// `format` of an inclusion proof.
pub const INCLUSION_FORMAT: &str = "meshlog-inclusion-proof/1";
/// `format` of a consistency proof.
pub const CONSISTENCY_FORMAT: &str = "meshlog-consistency-proof/1";

/// The record an inclusion proof is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordRef {
    /// `resource.meshlog.vm.id`, when the proof was asked for by VM id and sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_id: Option<String>,
    /// `meshlog.sequence`, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// Line of the frame's NDJSON payload, from 1.
    pub line: u64,
    /// The line's text (the record as stored, canonical JSON).
    pub text: String,
}

/// A proof that a record is in the log signed by a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// [`INCLUSION_FORMAT`].
    pub format: String,
    /// The record.
    pub record: RecordRef,
    /// The frame's leaf index.
    pub leaf_index: u64,
    /// The signed tree's size.
    pub tree_size: u64,
    /// The frame's bytes as stored, base64.
    pub frame: String,
    /// The audit path, leaf's sibling first, base64 hashes.
    pub inclusion_path: Vec<String>,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

/// A proof that one signed tree is a prefix of another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// [`CONSISTENCY_FORMAT`].
    pub format: String,
    /// The older signed checkpoint note.
    pub old_checkpoint: String,
    /// The newer signed checkpoint note.
    pub new_checkpoint: String,
    /// The consistency proof, base64 hashes.
    pub proof: Vec<String>,
}

/// How a record is named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordSel {
    /// `VM_ID:SEQUENCE`.
    VmSeq {
        /// `resource.meshlog.vm.id`.
        vm: String,
        /// `meshlog.sequence`.
        seq: u64,
    },
    /// `LEAF/LINE`.
    LeafLine {
        /// Leaf index.
        leaf: u64,
        /// Line, from 1.
        line: u64,
    },
}

impl FromStr for RecordSel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let num = |v: &str, what: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{what} {v:?} is not a non-negative integer"))
        };
        if let Some((leaf, line)) = s.split_once('/') {
            let line = num(line, "line")?;
            if line == 0 {
                return Err("lines count from 1".into());
            }
            return Ok(RecordSel::LeafLine {
                leaf: num(leaf, "leaf")?,
                line,
            });
        }
        match s.rsplit_once(':') {
            Some((vm, seq)) if !vm.is_empty() => Ok(RecordSel::VmSeq {
                vm: vm.to_owned(),
                seq: num(seq, "sequence")?,
            }),
            _ => Err(format!(
                "{s:?}: expected VM_ID:SEQUENCE (resource.meshlog.vm.id and meshlog.sequence of \
                 a record, as `meshlog query` prints them) or LEAF/LINE"
            )),
        }
    }
}

/// Why a proof could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// The store could not be read.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// The store is damaged: a proof from it would be worthless.
    #[error("{file} is damaged at offset {offset} ({reason}); run `meshlog verify` before proving")]
    Damaged {
        /// The segment.
        file: String,
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// No such record.
    #[error("no record {0} in the store")]
    NotFound(String),
    /// The record may be in a sealed frame and no data key was given to open it.
    #[error(
        "no record {record} in the frames prove could read: {sealed} frame(s) that may hold it \
         are sealed (encryption at rest; the first is leaf {first_leaf}); give the data-encryption \
         keys with --key-file FILE or --config FILE"
    )]
    Sealed {
        /// The record asked for.
        record: String,
        /// Sealed frames that could hold it.
        sealed: usize,
        /// The first of them.
        first_leaf: u64,
    },
    /// A sealed frame could not be opened with the keys given.
    #[error("leaf {leaf} is sealed and cannot be opened with the keys given: {source}")]
    Open {
        /// The frame's leaf index.
        leaf: u64,
        /// Why.
        source: meshlog_tlog::seal::OpenError,
    },
    /// Nothing signed covers the record (or the sizes asked for).
    #[error("{0}")]
    NoCheckpoint(String),
    /// The store does not match a checkpoint.
    #[error(
        "the store's first {size} leaves do not hash to the root checkpoint #{number} signed; \
         run `meshlog verify`"
    )]
    Mismatch {
        /// Tree size.
        size: u64,
        /// The checkpoint's number in the log.
        number: usize,
    },
}

/// Why a proof does not verify.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// Not a proof.
    #[error("not a meshlog proof: {0}")]
    Malformed(String),
    /// The checkpoint is not signed by the key.
    #[error("the checkpoint{which} does not verify: {source}")]
    Checkpoint {
        /// Which one (consistency proofs have two).
        which: &'static str,
        /// Why.
        source: CheckpointError,
    },
    /// The claimed tree size is not the checkpoint's.
    #[error("the proof is for a tree of {claimed} leaves, the checkpoint signs {signed}")]
    SizeMismatch {
        /// In the proof.
        claimed: u64,
        /// In the checkpoint.
        signed: u64,
    },
    /// The path does not lead to the signed root.
    #[error("the frame is not leaf {index} of the signed tree: {source}")]
    Inclusion {
        /// The claimed leaf index.
        index: u64,
        /// Why.
        source: merkle::VerifyError,
    },
    /// The frame's own structure is broken.
    #[error("the frame is damaged: {0}")]
    Frame(String),
    /// The record is not what the frame holds.
    #[error("the record is not in the frame: {0}")]
    Record(String),
    /// The trees are not consistent.
    #[error("the old tree is not a prefix of the new one: {0}")]
    Consistency(merkle::VerifyError),
}

/// The intact checkpoint entries of the store's log, parsed (signatures are not checked: the
/// proof's reader does that).
fn checkpoints(data_dir: &Path) -> Result<Vec<(usize, Checkpoint, String)>, ProveError> {
    let path = data_dir.join(CHECKPOINT_LOG_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(ScanError::Io { path, source }.into()),
    };
    Ok(checkpoint_log::parse(&bytes)
        .into_iter()
        .filter_map(|i| match i {
            LogItem::Entry(e) => {
                let note = String::from_utf8(e.note).ok()?;
                let text = note.get(..note.rfind("\n\n")? + 1)?;
                let cp = Checkpoint::parse_body(text).ok()?;
                Some((e.number, cp, note))
            }
            LogItem::Damaged(_) => None,
        })
        .collect())
}

/// What a store scan for a proof found.
struct Found {
    leaf: u64,
    frame: Vec<u8>,
    line: u64,
    text: String,
}

/// Leaf hashes of the whole store, in order, and the frame holding `want` (if given).
/// What a scan for a record found.
type Scanned = (Vec<Hash>, Option<Found>, Vec<u64>);

/// The store's leaves, the frame holding `want` if found, and the leaves of sealed frames that
/// could hold it but could not be read (no `keys`).
fn scan_store(
    data_dir: &Path,
    want: Option<&RecordSel>,
    keys: Option<&Keyring>,
) -> Result<Scanned, ProveError> {
    let mut leaves = Vec::new();
    let mut found = None;
    let mut sealed = Vec::new();
    let segments = scan::segments(data_dir)?;
    // Segments retention deleted keep their leaf hashes: their leaves stay in the tree.
    let newest = segments.last().map_or(0, |s| s.seq);
    let deleted = meshlog_format::receipt::deleted_leaves_files(data_dir).map_err(|source| {
        ScanError::Io {
            path: data_dir.join(meshlog_format::receipt::DELETED_DIR),
            source,
        }
    })?;
    let present: std::collections::HashSet<u64> = segments.iter().map(|s| s.seq).collect();
    let mut deleted = deleted
        .into_iter()
        .filter(|(seq, _)| *seq < newest && !present.contains(seq))
        .peekable();
    for (i, seg) in segments.iter().enumerate() {
        while let Some((_, path)) = deleted.next_if(|(seq, _)| *seq < seg.seq) {
            let kept = meshlog_format::receipt::read_leaves(&path)
                .map_err(|source| ScanError::Io { path, source })?;
            leaves.extend(kept);
        }
        let bytes = scan::read_segment(seg)?;
        for item in scan::parse_segment(&bytes, i, &mut |_| {}) {
            let f = match item {
                Item::Frame(f) if f.damage.is_none() => f,
                Item::Frame(f) => {
                    return Err(ProveError::Damaged {
                        file: seg.name.clone(),
                        offset: f.offset,
                        reason: f.damage.unwrap_or_default(),
                    });
                }
                Item::Garbage(g) => {
                    return Err(ProveError::Damaged {
                        file: seg.name.clone(),
                        offset: g.offset,
                        reason: g.reason,
                    });
                }
            };
            let index = leaves.len() as u64;
            if f.chain.is_some_and(|c| c.leaf_index != index) {
                return Err(ProveError::Damaged {
                    file: seg.name.clone(),
                    offset: f.offset,
                    reason: format!("frame claims another leaf index than its position {index}"),
                });
            }
            leaves.push(f.leaf);
            if found.is_some() || f.opaque {
                continue;
            }
            let frame = bytes
                .get(f.offset as usize..(f.offset + f.len) as usize)
                .unwrap_or_default();
            let (vm_seq, leaf_line) = match want {
                Some(RecordSel::VmSeq { vm, seq }) => {
                    // The filter's batch id is `<vm>:<first>-<last>`: skip frames it rules out.
                    if let Some((bvm, range)) =
                        f.batch_id.as_deref().and_then(|b| b.rsplit_once(':'))
                        && let Some((a, b)) = range.split_once('-')
                        && let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>())
                        && (bvm != vm || !(a..=b).contains(seq))
                    {
                        continue;
                    }
                    (Some((vm.as_str(), *seq)), None)
                }
                Some(RecordSel::LeafLine { leaf, line }) if *leaf == index => (None, Some(*line)),
                _ => continue,
            };
            let payload = frame.get(f.header_len as usize..).unwrap_or_default();
            // Sealed (encryption at rest): open with the keys, or note that it may hold it.
            let header = frame.get(..f.header_len as usize).unwrap_or_default();
            let header = FrameHeader::decode(header).ok();
            let sealed_frame = header
                .as_ref()
                .is_some_and(|h| h.extensions.sealing.is_some());
            let payload = match (sealed_frame, keys, &header) {
                (true, Some(keys), Some(h)) => match h.open_payload(keys, payload) {
                    Some(Ok(plain)) => std::borrow::Cow::Owned(plain),
                    Some(Err(source)) => {
                        return Err(ProveError::Open {
                            leaf: index,
                            source,
                        });
                    }
                    None => std::borrow::Cow::Borrowed(payload),
                },
                (true, _, _) => {
                    sealed.push(index);
                    continue;
                }
                (false, _, _) => std::borrow::Cow::Borrowed(payload),
            };
            let Ok(text) = zstd::decode_all(payload.as_ref()) else {
                continue;
            };
            for (n, line) in text.split(|b| *b == b'\n').enumerate() {
                let n = n as u64 + 1;
                let hit = match (vm_seq, leaf_line) {
                    (_, Some(l)) => l == n,
                    (Some((vm, seq)), None) => serde_json::from_slice::<serde_json::Value>(line)
                        .is_ok_and(|v| {
                            v.get("resource.meshlog.vm.id").and_then(|x| x.as_str()) == Some(vm)
                                && v.get("meshlog.sequence").and_then(|x| x.as_u64()) == Some(seq)
                        }),
                    (None, None) => false,
                };
                if hit && !line.is_empty() {
                    found = Some(Found {
                        leaf: index,
                        frame: frame.to_vec(),
                        line: n,
                        text: String::from_utf8_lossy(line).into_owned(),
                    });
                    break;
                }
            }
        }
    }
    Ok((leaves, found, sealed))
}

/// An inclusion proof for the record `sel`, against the latest checkpoint that covers it.
///
/// Sealed frames (encryption at rest) are opened with `keys` when given; without them a record
/// that may sit in a sealed frame is reported as such, not as missing.
pub fn prove_record(
    data_dir: &Path,
    sel: &RecordSel,
    keys: Option<&Keyring>,
) -> Result<InclusionProof, ProveError> {
    let cps = checkpoints(data_dir)?;
    let (leaves, found, sealed) = scan_store(data_dir, Some(sel), keys)?;
    let name = match sel {
        RecordSel::VmSeq { vm, seq } => format!("{vm}:{seq}"),
        RecordSel::LeafLine { leaf, line } => format!("{leaf}/{line}"),
    };
    let found = match (found, sealed.first()) {
        (Some(f), _) => f,
        (None, Some(&first_leaf)) => {
            return Err(ProveError::Sealed {
                record: name,
                sealed: sealed.len(),
                first_leaf,
            });
        }
        (None, None) => return Err(ProveError::NotFound(name)),
    };
    let n = leaves.len() as u64;
    // The latest checkpoint that covers the leaf and matches the store (an entry that does not
    // match, e.g. a forged one appended, must not make every proof impossible).
    let covering: Vec<&(usize, Checkpoint, String)> = cps
        .iter()
        .filter(|(_, cp, _)| cp.size > found.leaf && cp.size <= n)
        .collect();
    let tree = MerkleTree::from_leaf_hashes(leaves.iter().copied());
    let (_, cp, note) = match covering
        .iter()
        .rev()
        .find(|(_, cp, _)| tree.root_at(cp.size).ok() == Some(cp.root))
    {
        Some(c) => (*c).clone(),
        None => {
            return Err(match covering.last() {
                Some((number, cp, _)) => ProveError::Mismatch {
                    size: cp.size,
                    number: *number,
                },
                None => ProveError::NoCheckpoint(format!(
                    "no signed checkpoint covers leaf {} yet (the next one will: serve signs \
                     one every checkpoint_interval_s and at shutdown)",
                    found.leaf
                )),
            });
        }
    };
    let path = tree
        .inclusion_proof(found.leaf, cp.size)
        .map_err(|e| ProveError::NoCheckpoint(e.to_string()))?;
    let (vm_id, sequence) = match sel {
        RecordSel::VmSeq { vm, seq } => (Some(vm.clone()), Some(*seq)),
        RecordSel::LeafLine { .. } => (None, None),
    };
    Ok(InclusionProof {
        format: INCLUSION_FORMAT.into(),
        record: RecordRef {
            vm_id,
            sequence,
            line: found.line,
            text: found.text,
        },
        leaf_index: found.leaf,
        tree_size: cp.size,
        frame: B64.encode(&found.frame),
        inclusion_path: path.iter().map(|h| B64.encode(h)).collect(),
        checkpoint: note,
    })
}

/// A consistency proof between the (latest) checkpoints of sizes `old` and `new`.
pub fn prove_consistency(
    data_dir: &Path,
    old: u64,
    new: u64,
) -> Result<ConsistencyProof, ProveError> {
    let cps = checkpoints(data_dir)?;
    let pick = |size: u64| {
        cps.iter()
            .rfind(|(_, cp, _)| cp.size == size)
            .cloned()
            .ok_or_else(|| {
                let mut sizes: Vec<u64> = cps.iter().map(|(_, cp, _)| cp.size).collect();
                sizes.dedup();
                ProveError::NoCheckpoint(format!(
                    "no checkpoint of size {size} in {CHECKPOINT_LOG_FILE} (sizes signed: {})",
                    if sizes.is_empty() {
                        "none".to_owned()
                    } else {
                        sizes
                            .iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ))
            })
    };
    if old > new {
        return Err(ProveError::NoCheckpoint(format!(
            "the old size {old} is larger than the new size {new}"
        )));
    }
    let (leaves, _, _) = scan_store(data_dir, None, None)?;
    let tree = MerkleTree::from_leaf_hashes(leaves.iter().copied().take(new as usize));
    // Among entries of a size, prefer one that matches the store.
    let pick = |size: u64| {
        let any = pick(size)?;
        Ok::<_, ProveError>(
            cps.iter()
                .rev()
                .find(|(_, cp, _)| cp.size == size && tree.root_at(size).ok() == Some(cp.root))
                .cloned()
                .unwrap_or(any),
        )
    };
    let (on, ocp, onote) = pick(old)?;
    let (nn, ncp, nnote) = pick(new)?;
    if (leaves.len() as u64) < new {
        return Err(ProveError::NoCheckpoint(format!(
            "the store has {} leaves, fewer than checkpoint #{nn} signed ({new}); run `meshlog \
             verify`",
            leaves.len()
        )));
    }
    for (size, number, cp) in [(old, on, &ocp), (new, nn, &ncp)] {
        if tree.root_at(size).ok() != Some(cp.root) {
            return Err(ProveError::Mismatch { size, number });
        }
    }
    let proof = tree
        .consistency_proof(old, new)
        .map_err(|e| ProveError::NoCheckpoint(e.to_string()))?;
    Ok(ConsistencyProof {
        format: CONSISTENCY_FORMAT.into(),
        old_checkpoint: onote,
        new_checkpoint: nnote,
        proof: proof.iter().map(|h| B64.encode(h)).collect(),
    })
}

fn verify_note(
    note: &str,
    keys: &[VerifierKey],
    which: &'static str,
) -> Result<Checkpoint, ProofError> {
    let mut result = Err(CheckpointError::Note(NoteError::NoSignatures));
    // A retention class store's checkpoint is signed under `<key name>/<class>` by the same
    // key: each key's class log key for the note's origin is tried too.
    let origin = note.split('\n').next().unwrap_or_default();
    let class_keys: Vec<VerifierKey> = keys
        .iter()
        .filter_map(|k| {
            let class = origin.strip_prefix(k.name())?.strip_prefix('/')?;
            meshlog_format::layout::valid_class_name(class)
                .then(|| k.for_class(class).ok())
                .flatten()
        })
        .collect();
    for k in keys.iter().chain(&class_keys) {
        result = Checkpoint::verify(note.as_bytes(), k);
        if !matches!(
            result,
            Err(CheckpointError::Note(NoteError::UnknownKey { .. }))
        ) {
            break;
        }
    }
    result.map_err(|source| ProofError::Checkpoint { which, source })
}

fn hashes(list: &[String], what: &str) -> Result<Vec<Hash>, ProofError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            B64.decode(s)
                .ok()
                .and_then(|v| Hash::try_from(v).ok())
                .ok_or_else(|| {
                    ProofError::Malformed(format!("{what}[{i}] is not a base64 SHA-256 hash"))
                })
        })
        .collect()
}

/// Checks a proof (either format) with the verifier keys alone; returns what was checked, one
/// line each.
pub fn verify_proof(json: &[u8], keys: &[VerifierKey]) -> Result<Vec<String>, ProofError> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| ProofError::Malformed(e.to_string()))?;
    match v.get("format").and_then(|f| f.as_str()) {
        Some(INCLUSION_FORMAT) => {
            let p: InclusionProof =
                serde_json::from_value(v).map_err(|e| ProofError::Malformed(e.to_string()))?;
            verify_inclusion_proof(&p, keys)
        }
        Some(CONSISTENCY_FORMAT) => {
            let p: ConsistencyProof =
                serde_json::from_value(v).map_err(|e| ProofError::Malformed(e.to_string()))?;
            verify_consistency_proof(&p, keys)
        }
        other => Err(ProofError::Malformed(format!(
            "unknown format {other:?} (expected {INCLUSION_FORMAT} or {CONSISTENCY_FORMAT})"
        ))),
    }
}

fn checkpoint_line(cp: &Checkpoint) -> String {
    format!(
        "checkpoint signed by {}: {} leaves, root {}, at {}",
        cp.origin,
        cp.size,
        hex::encode(cp.root),
        crate::verify::format_time(cp.timestamp_unix_ns)
    )
}

fn verify_inclusion_proof(
    p: &InclusionProof,
    keys: &[VerifierKey],
) -> Result<Vec<String>, ProofError> {
    let mut ok = Vec::new();
    let cp = verify_note(&p.checkpoint, keys, "")?;
    ok.push(checkpoint_line(&cp));
    if p.tree_size != cp.size {
        return Err(ProofError::SizeMismatch {
            claimed: p.tree_size,
            signed: cp.size,
        });
    }
    let frame = B64
        .decode(&p.frame)
        .map_err(|_| ProofError::Malformed("frame is not base64".into()))?;
    let path = hashes(&p.inclusion_path, "inclusion_path")?;
    merkle::verify_inclusion(&leaf_hash(&frame), p.leaf_index, cp.size, &path, &cp.root).map_err(
        |source| ProofError::Inclusion {
            index: p.leaf_index,
            source,
        },
    )?;
    ok.push(format!(
        "the frame ({} bytes) is leaf {} of that tree ({} path hashes)",
        frame.len(),
        p.leaf_index,
        path.len()
    ));
    let prefix: &[u8; FRAME_HEADER_PREFIX_LEN] = frame
        .get(..FRAME_HEADER_PREFIX_LEN)
        .and_then(|x| x.try_into().ok())
        .ok_or_else(|| ProofError::Frame("shorter than a frame header".into()))?;
    let hlen = frame_header_len(prefix).map_err(|d| ProofError::Frame(d.to_string()))?;
    let header = frame
        .get(..hlen)
        .ok_or_else(|| ProofError::Frame("shorter than its header".into()))?;
    let h = match FrameHeader::decode(header) {
        Ok(h) => h,
        Err(Damage::UnknownExtension(t)) => {
            ok.push(format!(
                "the record's content could NOT be checked: the frame's header has critical \
                 entry {t:#06x} this build does not read (an encrypted payload needs its data \
                 key); the frame's inclusion is proven"
            ));
            return Ok(ok);
        }
        Err(d) => return Err(ProofError::Frame(d.to_string())),
    };
    if let Some(c) = h.extensions.chain
        && c.leaf_index != p.leaf_index
    {
        return Err(ProofError::Frame(format!(
            "its chain entry says leaf {}, the proof {}",
            c.leaf_index, p.leaf_index
        )));
    }
    let payload = frame.get(hlen..).unwrap_or_default();
    if payload.len() != h.payload_len as usize || crc32fast::hash(payload) != h.payload_crc {
        return Err(ProofError::Frame("payload length or CRC mismatch".into()));
    }
    if let Some(sealing) = &h.extensions.sealing {
        ok.push(format!(
            "the record's content could NOT be checked: the payload is sealed with \
             data-encryption key {:?} (encryption at rest); the frame's inclusion is proven",
            sealing.key_id
        ));
        return Ok(ok);
    }
    let text = zstd::decode_all(payload).map_err(|e| ProofError::Frame(format!("zstd: {e}")))?;
    let line = usize::try_from(p.record.line)
        .ok()
        .and_then(|l| l.checked_sub(1))
        .and_then(|i| text.split(|b| *b == b'\n').nth(i))
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            ProofError::Record(format!(
                "the frame has no line {} ({} records)",
                p.record.line, h.record_count
            ))
        })?;
    if line != p.record.text.as_bytes() {
        return Err(ProofError::Record(format!(
            "line {} of the frame is not the record's text",
            p.record.line
        )));
    }
    let rec: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| ProofError::Record(format!("line {} is not JSON: {e}", p.record.line)))?;
    if let Some(vm) = &p.record.vm_id
        && rec.get("resource.meshlog.vm.id").and_then(|x| x.as_str()) != Some(vm)
    {
        return Err(ProofError::Record(format!(
            "the record's VM id is not {vm}"
        )));
    }
    if let Some(seq) = p.record.sequence
        && rec.get("meshlog.sequence").and_then(|x| x.as_u64()) != Some(seq)
    {
        return Err(ProofError::Record(format!(
            "the record's sequence is not {seq}"
        )));
    }
    ok.push(format!(
        "the record is line {} of the frame{}",
        p.record.line,
        match (&p.record.vm_id, p.record.sequence) {
            (Some(vm), Some(seq)) => format!(" (vm {vm}, sequence {seq})"),
            _ => String::new(),
        }
    ));
    Ok(ok)
}

fn verify_consistency_proof(
    p: &ConsistencyProof,
    keys: &[VerifierKey],
) -> Result<Vec<String>, ProofError> {
    let old = verify_note(&p.old_checkpoint, keys, " (old)")?;
    let new = verify_note(&p.new_checkpoint, keys, " (new)")?;
    let proof = hashes(&p.proof, "proof")?;
    merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &proof)
        .map_err(ProofError::Consistency)?;
    Ok(vec![
        format!("old {}", checkpoint_line(&old)),
        format!("new {}", checkpoint_line(&new)),
        format!(
            "the tree of {} leaves is a prefix of the tree of {} ({} proof hashes)",
            old.size,
            new.size,
            proof.len()
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_named_by_vm_and_sequence_or_leaf_and_line() {
        assert_eq!(
            "44bdb26d86b232dd:17".parse(),
            Ok(RecordSel::VmSeq {
                vm: "44bdb26d86b232dd".into(),
                seq: 17
            })
        );
        assert_eq!(
            "12/3".parse(),
            Ok(RecordSel::LeafLine { leaf: 12, line: 3 })
        );
        for bad in ["", "abc", ":3", "vm:x", "1/0", "a/1", "vm:-1"] {
            assert!(bad.parse::<RecordSel>().is_err(), "{bad}");
        }
    }
}
