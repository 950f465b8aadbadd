//! The writer's side of the Merkle log: stamps each frame with its place in the hash chain,
//! keeps the tree's compact state, and signs checkpoints into `DATA_DIR/checkpoints.log`.
//!
//! The writer thread owns one [`LeafLog`]. For every frame it writes it calls
//! [`LeafLog::stamp`] (leaf index = frames so far, previous leaf hash) and, once the bytes are
//! in the file, [`LeafLog::append`]; after a successful fsync [`LeafLog::commit`], after a
//! failed one [`LeafLog::roll_back`] (the segment is cut back to its last synced length, so the
//! tree goes back to the last commit too). Checkpoints and the saved tree state only ever
//! describe committed (fsync'd) frames.
//!
//! Rebuilding the tree at start would mean hashing every byte of the store, while recovery
//! only walks frame headers. So the committed tree is saved to `DATA_DIR/tree.state` (size,
//! frontier, last leaf hash; JSON) at every checkpoint tick and at shutdown, and [`LeafLog::open`]
//! hashes only the frames after it, after checking the saved last leaf against the store. The
//! file is a cache: if it is missing, unreadable or does not match, the whole store is hashed
//! (and a warning says why). `meshlog verify` reads only its size: a store with fewer leaves
//! than the writer committed lost some, signed or not.
//!
//! At start the rebuilt tree is also compared with the last checkpoint in the log, when its
//! size is reached while hashing: a store changed while the collector was down is logged as an
//! error (the collector keeps running; `meshlog verify` names the damage).
//!
//! Retention deletes whole segments of a class store (`meshlog_retention`) but keeps their
//! frames' leaf hashes in `deleted/<seq>.leaves`: the tree still has those leaves (the
//! checkpoints signed before a deletion cover them, and leaf indexes go on after them), so the
//! rebuild walks the segments by sequence number and takes a missing segment's leaves from its
//! file. The file is not checked against its receipt here (that needs the verifier key): a
//! wrong or missing one makes the tree differ from the last checkpoint, which is logged as
//! above, and `meshlog verify` names the file.

use meshlog_format::checkpoint_log::{CheckpointLog, CheckpointLogError};
use meshlog_format::frame::{Chain, EncodedFrame};
use meshlog_format::reader::{ReadError, SegmentScanner, list_segments};
use meshlog_tlog::checkpoint::Checkpoint;
use meshlog_tlog::keys::SignerKey;
use meshlog_tlog::merkle::{CompactTree, Hash, MerkleError};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// File name of the saved tree state in the data directory.
pub const TREE_STATE_FILE: &str = "tree.state";
/// Default time between checkpoints.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

/// Integrity settings of a store.
#[derive(Debug, Clone)]
pub struct IntegrityOptions {
    /// The checkpoint signing key; without one, frames are still chained and the tree kept, but
    /// no checkpoint is signed.
    pub signer: Option<Arc<SignerKey>>,
    /// Time between checkpoints (and tree state saves).
    pub checkpoint_interval: Duration,
}

impl Default for IntegrityOptions {
    fn default() -> Self {
        IntegrityOptions {
            signer: None,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
        }
    }
}

/// Why the Merkle log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    /// The checkpoint log is damaged or unreadable.
    #[error(transparent)]
    CheckpointLog(#[from] CheckpointLogError),
    /// A segment could not be read while rebuilding the tree.
    #[error("rebuilding the Merkle tree: {0}")]
    Read(#[from] ReadError),
}

/// The RFC 6962 leaf hash of a frame given as header and payload.
pub fn frame_leaf_hash(header: &[u8], payload: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(header);
    h.update(payload);
    h.finalize().into()
}

/// The saved tree state (`tree.state`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct StateFile {
    version: u32,
    size: u64,
    last_leaf: String,
    frontier: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TreeState {
    tree: CompactTree,
    last_leaf: Hash,
}

fn hash_from_hex(s: &str) -> Option<Hash> {
    hex::decode(s).ok()?.try_into().ok()
}

fn read_state(path: &Path) -> Result<Option<TreeState>, String> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let f: StateFile = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    if f.version != 1 {
        return Err(format!("unknown version {}", f.version));
    }
    let frontier = f
        .frontier
        .iter()
        .map(|h| hash_from_hex(h))
        .collect::<Option<Vec<_>>>()
        .ok_or("a frontier hash is not 64 hex digits")?;
    let last_leaf = hash_from_hex(&f.last_leaf).ok_or("last_leaf is not 64 hex digits")?;
    let tree = CompactTree::from_frontier(f.size, frontier).map_err(|e| e.to_string())?;
    Ok(Some(TreeState { tree, last_leaf }))
}

fn write_state(path: &Path, state: &TreeState) -> std::io::Result<()> {
    let f = StateFile {
        version: 1,
        size: state.tree.size(),
        last_leaf: hex::encode(state.last_leaf),
        frontier: state.tree.frontier().iter().map(hex::encode).collect(),
    };
    let tmp = path.with_extension("state.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&serde_json::to_vec(&f).map_err(std::io::Error::other)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// What the log looks like now, for readers outside the writer thread (metrics, read on
/// scrape): updated by the writer at each commit, roll-back and signed checkpoint.
#[derive(Debug, Default)]
pub struct LedgerStats {
    tree_size: AtomicU64,
    checkpoint_unix_ns: AtomicU64,
}

impl LedgerStats {
    /// Leaves durably written (the committed tree's size).
    pub fn tree_size(&self) -> u64 {
        self.tree_size.load(Ordering::Relaxed)
    }

    /// The time in the last signed checkpoint (read from the log at start, then each one
    /// written), nanoseconds since the Unix epoch; `None` before the first.
    pub fn last_checkpoint_unix_ns(&self) -> Option<u64> {
        Some(self.checkpoint_unix_ns.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }
}

/// The writer's Merkle log state.
#[derive(Debug)]
pub struct LeafLog {
    /// Everything written, synced or not.
    current: TreeState,
    /// As of the last successful fsync.
    committed: TreeState,
    /// Where `tree.state` goes; `None` for a detached log (unit tests).
    state_path: Option<PathBuf>,
    /// The size last saved to `tree.state`.
    saved_size: Option<u64>,
    signer: Option<Arc<SignerKey>>,
    checkpoints: Option<CheckpointLog>,
    last_timestamp: u64,
    /// A checkpoint failed and has not succeeded since: log once per episode.
    failing: bool,
    stats: Arc<LedgerStats>,
}

/// Why resuming from the saved state did not work (the caller hashes everything instead).
enum Rebuild {
    Stale(String),
    Fail(IntegrityError),
}

impl From<ReadError> for Rebuild {
    fn from(e: ReadError) -> Self {
        Rebuild::Fail(e.into())
    }
}

/// The store's last checkpoint verified with its signing key: under the key's name, or for a
/// class log's key under the name it was made from (signed before class logs had their own
/// origins, [`SignerKey::for_class`]).
fn verify_own(
    note: &[u8],
    key: &SignerKey,
) -> Result<Checkpoint, meshlog_tlog::checkpoint::CheckpointError> {
    use meshlog_tlog::checkpoint::{CheckpointError, NoteError};
    match (
        Checkpoint::verify(note, &key.verifier()),
        key.parent_verifier(),
    ) {
        (Err(CheckpointError::Note(NoteError::UnknownKey { .. })), Some(parent)) => {
            Checkpoint::verify(note, &parent)
        }
        (r, _) => r,
    }
}

impl LeafLog {
    /// A log with an empty tree that saves and signs nothing (tests of the writer alone).
    pub fn detached() -> Self {
        let empty = TreeState {
            tree: CompactTree::new(),
            last_leaf: [0; 32],
        };
        LeafLog {
            current: empty.clone(),
            committed: empty,
            state_path: None,
            saved_size: None,
            signer: None,
            checkpoints: None,
            last_timestamp: 0,
            failing: false,
            stats: Arc::default(),
        }
    }

    /// Opens the log of the store in `data_dir` after recovery: repairs the checkpoint log's
    /// tail (with a signing key), and rebuilds the tree from the saved state and the frames
    /// after it (or from every frame).
    pub fn open(
        data_dir: &Path,
        segments_dir: &Path,
        opts: &IntegrityOptions,
    ) -> Result<Self, IntegrityError> {
        let (checkpoints, last_note) = match &opts.signer {
            Some(_) => {
                let (log, last) = CheckpointLog::open(data_dir)?;
                (Some(log), last)
            }
            None => {
                if data_dir
                    .join(meshlog_format::checkpoint_log::CHECKPOINT_LOG_FILE)
                    .exists()
                {
                    tracing::warn!(
                        "this store has signed checkpoints but no signing key is configured \
                         ([integrity] signing_key): no new checkpoint will be signed"
                    );
                }
                (None, None)
            }
        };
        let expect = match (&opts.signer, last_note) {
            (Some(key), Some(note)) => match verify_own(&note, key) {
                Ok(cp) => Some(cp),
                Err(e) => {
                    tracing::warn!(
                        "the last checkpoint in the log does not verify with the configured \
                         key ({e}); was the key changed?"
                    );
                    None
                }
            },
            _ => None,
        };
        let state_path = data_dir.join(TREE_STATE_FILE);
        let saved = read_state(&state_path).unwrap_or_else(|why| {
            tracing::warn!(file = %state_path.display(), "ignoring the saved tree state ({why})");
            None
        });
        let started = Instant::now();
        let saved_size = saved.as_ref().map(|s| s.tree.size());
        let (state, hashed, bytes) = match saved {
            Some(s) => match rebuild(data_dir, segments_dir, Some(&s), expect.as_ref()) {
                Ok(r) => r,
                Err(Rebuild::Stale(why)) => {
                    tracing::warn!(
                        "the saved tree state does not match the store ({why}); hashing every \
                         frame"
                    );
                    rebuild_all(data_dir, segments_dir, expect.as_ref())?
                }
                Err(Rebuild::Fail(e)) => return Err(e),
            },
            None => rebuild_all(data_dir, segments_dir, expect.as_ref())?,
        };
        tracing::info!(
            leaves = state.tree.size(),
            frames_hashed = hashed,
            bytes_hashed = bytes,
            ms = started.elapsed().as_millis() as u64,
            signing_key = opts.signer.as_ref().map_or("none".to_owned(), |k| format!(
                "{}+{:08x}",
                k.name(),
                k.key_id()
            )),
            "Merkle tree ready"
        );
        // Nothing to save again until the tree grows past what the file holds.
        let saved_size = saved_size.filter(|n| *n == state.tree.size());
        Ok(LeafLog {
            current: state.clone(),
            committed: state,
            state_path: Some(state_path),
            saved_size,
            signer: opts.signer.clone(),
            checkpoints,
            last_timestamp: expect.map_or(0, |cp| cp.timestamp_unix_ns),
            failing: false,
            stats: Arc::default(),
        }
        .published())
    }

    /// The log's state for readers outside the writer thread.
    pub fn stats(&self) -> Arc<LedgerStats> {
        self.stats.clone()
    }

    fn published(self) -> Self {
        self.stats
            .tree_size
            .store(self.committed.tree.size(), Ordering::Relaxed);
        self.stats
            .checkpoint_unix_ns
            .store(self.last_timestamp, Ordering::Relaxed);
        self
    }

    /// Leaves written (synced or not).
    pub fn size(&self) -> u64 {
        self.current.tree.size()
    }

    /// Leaves durably written.
    pub fn committed_size(&self) -> u64 {
        self.committed.tree.size()
    }

    /// The root of the committed tree.
    pub fn committed_root(&self) -> Hash {
        self.committed.tree.root()
    }

    /// Writes the frame's place in the chain into it: the next leaf index and the hash of the
    /// last leaf.
    pub fn stamp(&self, frame: &mut EncodedFrame) {
        frame.stamp_chain(Chain {
            leaf_index: self.current.tree.size(),
            prev_leaf: self.current.last_leaf,
        });
    }

    /// Adds a frame written to the file as the next leaf.
    pub fn append(&mut self, frame: &EncodedFrame) {
        match self.current.tree.append(frame.bytes()) {
            Ok(leaf) => self.current.last_leaf = leaf,
            Err(MerkleError::TreeFull | _) => {
                tracing::error!("the Merkle tree is full (2^64 - 1 leaves); frame not added");
            }
        }
    }

    /// Everything appended is durable now.
    pub fn commit(&mut self) {
        self.committed = self.current.clone();
        self.stats
            .tree_size
            .store(self.committed.tree.size(), Ordering::Relaxed);
    }

    /// The file was cut back to its last synced length: so is the tree.
    pub fn roll_back(&mut self) {
        self.current = self.committed.clone();
    }

    /// Saves the committed tree state and, with a signing key, appends a signed checkpoint of
    /// it (also when nothing was written since the last one: a new time says the log was
    /// alive and had not grown). A failure is logged, once per episode; the next call retries.
    pub fn checkpoint(&mut self, reason: &'static str) {
        self.save_state();
        let (Some(signer), Some(log)) = (&self.signer, &mut self.checkpoints) else {
            return;
        };
        // Never older than the previous checkpoint, even if the clock steps back.
        let ts = now_ns().max(self.last_timestamp);
        let cp = Checkpoint {
            origin: signer.name().to_owned(),
            size: self.committed.tree.size(),
            root: self.committed.tree.root(),
            timestamp_unix_ns: ts,
        };
        let done = cp
            .sign(signer)
            .map_err(|e| e.to_string())
            .and_then(|note| log.append(&note).map_err(|e| e.to_string()));
        match done {
            Ok(()) => {
                self.last_timestamp = ts;
                self.stats.checkpoint_unix_ns.store(ts, Ordering::Relaxed);
                if std::mem::take(&mut self.failing) {
                    tracing::info!("checkpoints are written again");
                }
                if reason == "periodic" {
                    tracing::debug!(size = cp.size, reason, "signed a checkpoint");
                } else {
                    tracing::info!(size = cp.size, reason, "signed a checkpoint");
                }
            }
            Err(e) => {
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::error!(
                        file = %log.path().display(),
                        error = %e,
                        "cannot write a checkpoint; retrying at the next one (logged once)"
                    );
                }
            }
        }
    }

    fn save_state(&mut self) {
        let Some(path) = &self.state_path else {
            return;
        };
        let size = self.committed.tree.size();
        if self.saved_size == Some(size) {
            return;
        }
        match write_state(path, &self.committed) {
            Ok(()) => self.saved_size = Some(size),
            // Only a cache: the next start hashes more frames.
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot save the tree state")
            }
        }
    }
}

fn rebuild_all(
    data_dir: &Path,
    segments_dir: &Path,
    expect: Option<&Checkpoint>,
) -> Result<(TreeState, u64, u64), IntegrityError> {
    match rebuild(data_dir, segments_dir, None, expect) {
        Ok(r) => Ok(r),
        Err(Rebuild::Fail(e)) => Err(e),
        // Without a saved state there is nothing to be stale.
        Err(Rebuild::Stale(why)) => Err(IntegrityError::Read(ReadError::BadPayload {
            path: segments_dir.to_owned(),
            offset: 0,
            reason: why,
        })),
    }
}

/// Where the tree's leaves come from, in leaf order (segment sequence order).
enum Source {
    /// A segment file: its frames.
    Segment(PathBuf),
    /// A segment retention deleted: the leaf hashes it kept (`deleted/<seq>.leaves`).
    Deleted(PathBuf),
}

/// The segment files and, for segments that are gone, the leaf hashes retention kept of them,
/// by sequence number. Only gaps before the newest segment are filled: retention never deletes
/// the newest (active) segment.
fn sources(data_dir: &Path, segments_dir: &Path) -> Result<Vec<Source>, ReadError> {
    let segments = list_segments(segments_dir).map_err(|source| ReadError::Io {
        path: segments_dir.to_owned(),
        source,
    })?;
    let deleted = meshlog_format::receipt::deleted_leaves_files(data_dir).map_err(|source| {
        ReadError::Io {
            path: data_dir.join(meshlog_format::receipt::DELETED_DIR),
            source,
        }
    })?;
    let newest = segments.last().map_or(0, |s| s.seq);
    let mut by_seq: std::collections::BTreeMap<u64, Source> = deleted
        .into_iter()
        .filter(|(seq, _)| *seq < newest)
        .map(|(seq, p)| (seq, Source::Deleted(p)))
        .collect();
    // A segment still there wins over its leaves file (a deletion not finished yet).
    for s in segments {
        by_seq.insert(s.seq, Source::Segment(s.path));
    }
    Ok(by_seq.into_values().collect())
}

/// The walk over every leaf of the store, hashing only those after the saved state.
struct Walk<'a> {
    state: TreeState,
    /// Leaves in the saved state.
    skip: u64,
    /// Leaves walked so far.
    ordinal: u64,
    hashed: u64,
    bytes: u64,
    expect: Option<&'a Checkpoint>,
}

impl Walk<'_> {
    /// The next leaf needs its hash: the state's last leaf (checked) or one after it.
    fn wants_hash(&self) -> bool {
        self.ordinal + 1 >= self.skip
    }

    /// Takes the next leaf (`leaf` is only looked at when [`Walk::wants_hash`]).
    fn leaf(&mut self, leaf: Hash, len: u64, place: &dyn Fn() -> String) -> Result<(), Rebuild> {
        if self.ordinal + 1 == self.skip {
            // The state's last leaf is hashed again to check the state belongs to this store.
            if leaf != self.state.last_leaf {
                return Err(Rebuild::Stale(format!(
                    "leaf {} in {} has another hash",
                    self.ordinal,
                    place()
                )));
            }
        } else if self.ordinal + 1 > self.skip {
            self.state
                .tree
                .append_leaf_hash(leaf)
                .map_err(|e| Rebuild::Stale(e.to_string()))?;
            self.state.last_leaf = leaf;
            self.hashed += 1;
            self.bytes += len;
            self.check();
        }
        self.ordinal += 1;
        Ok(())
    }

    /// Logs an error when the tree reaches the last checkpoint's size with another root.
    fn check(&self) {
        if let Some(cp) = self.expect
            && self.state.tree.size() == cp.size
            && self.state.tree.root() != cp.root
        {
            tracing::error!(
                size = cp.size,
                "the store does not match the last signed checkpoint: frames it covers were \
                 changed, removed or reordered while the collector was down; run `meshlog \
                 verify` to find them"
            );
        }
    }
}

/// Hashes the frames after `saved` (all of them without it) into the tree, taking the leaves of
/// segments retention deleted from the hashes it kept in `deleted/` (so the tree still matches
/// the checkpoints signed before a deletion); returns the state, leaves hashed (or taken from
/// `deleted/`) and bytes hashed.
fn rebuild(
    data_dir: &Path,
    segments_dir: &Path,
    saved: Option<&TreeState>,
    expect: Option<&Checkpoint>,
) -> Result<(TreeState, u64, u64), Rebuild> {
    let state = saved.cloned().unwrap_or(TreeState {
        tree: CompactTree::new(),
        last_leaf: [0; 32],
    });
    let mut walk = Walk {
        skip: state.tree.size(),
        state,
        ordinal: 0,
        hashed: 0,
        bytes: 0,
        expect,
    };
    walk.check();
    for source in sources(data_dir, segments_dir)? {
        match source {
            Source::Deleted(path) => match meshlog_format::receipt::read_leaves(&path) {
                Ok(leaves) => {
                    let place = || path.display().to_string();
                    for leaf in leaves {
                        walk.leaf(leaf, 0, &place)?;
                    }
                }
                // Without them the tree cannot match the checkpoints over the deleted frames:
                // the comparison below says so, and `meshlog verify` names the file.
                Err(e) => tracing::error!(
                    file = %path.display(),
                    error = %e,
                    "cannot read the leaf hashes of a deleted segment; the Merkle tree will not \
                     match the checkpoints signed before the deletion"
                ),
            },
            Source::Segment(path) => {
                let mut sc = SegmentScanner::open(&path).map_err(|e| e.into_read_error(&path))?;
                loop {
                    let hash_it = walk.wants_hash();
                    let Some(f) = sc
                        .next_frame(hash_it)
                        .map_err(|e| e.into_read_error(&path))?
                    else {
                        break;
                    };
                    let leaf = if hash_it {
                        let payload = f.payload.as_deref().unwrap_or_default();
                        frame_leaf_hash(sc.header_bytes(), payload)
                    } else {
                        [0; 32]
                    };
                    walk.leaf(leaf, f.end() - f.offset, &|| path.display().to_string())?;
                }
            }
        }
    }
    if walk.ordinal < walk.skip {
        return Err(Rebuild::Stale(format!(
            "the store has {} frames, the state {}",
            walk.ordinal, walk.skip
        )));
    }
    if let Some(cp) = expect
        && cp.size > walk.state.tree.size()
    {
        tracing::error!(
            checkpoint_size = cp.size,
            store_size = walk.state.tree.size(),
            "the store has fewer frames than the last signed checkpoint: frames were removed or \
             cut while the collector was down; run `meshlog verify`"
        );
    }
    Ok((walk.state, walk.hashed, walk.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlog_format::frame::{SEGMENT_HEADER_LEN, encode_frame, segment_header};
    use meshlog_format::reader::{SEGMENTS_DIR, segment_file_name};
    use meshlog_tlog::merkle;
    use serde_json::{Map, Value, json};

    #[test]
    fn a_class_log_key_accepts_its_stores_checkpoints_signed_under_the_collector_origin() {
        let key = SignerKey::from_seed("example.com/log", &[3; 32]).unwrap();
        let class = key.for_class("short").unwrap();
        let cp = |origin: &str| Checkpoint {
            origin: origin.into(),
            size: 2,
            root: [1; 32],
            timestamp_unix_ns: 9,
        };
        let old = cp("example.com/log").sign(&key).unwrap();
        let new = cp("example.com/log/short").sign(&class).unwrap();
        assert_eq!(verify_own(old.as_bytes(), &class).unwrap().size, 2);
        assert_eq!(verify_own(new.as_bytes(), &class).unwrap().size, 2);
        // Only the class log's own parent: the collector key accepts no class log's note.
        assert!(verify_own(new.as_bytes(), &key).is_err());
        let other = SignerKey::from_seed("example.com/other", &[3; 32]).unwrap();
        let foreign = cp("example.com/other").sign(&other).unwrap();
        assert!(verify_own(foreign.as_bytes(), &class).is_err());
    }

    fn frame(i: u64) -> EncodedFrame {
        let Value::Object(m) = json!({ "i": i }) else {
            unreachable!()
        };
        let r: Map<String, Value> = m;
        encode_frame([&r]).unwrap()
    }

    /// Writes `n` frames through a log (as the writer does) into segment 1 of `data`; returns
    /// the log and the frames' bytes.
    fn write(data: &Path, log: &mut LeafLog, n: u64) -> Vec<Vec<u8>> {
        write_to(data, 1, log, n)
    }

    /// The same into segment `seq`.
    fn write_to(data: &Path, seq: u64, log: &mut LeafLog, n: u64) -> Vec<Vec<u8>> {
        let segs = data.join(SEGMENTS_DIR);
        std::fs::create_dir_all(&segs).unwrap();
        let path = segs.join(segment_file_name(seq));
        let mut bytes = std::fs::read(&path).unwrap_or_else(|_| segment_header().to_vec());
        let mut out = Vec::new();
        for i in 0..n {
            let mut f = frame(log.size() * 100 + i);
            log.stamp(&mut f);
            bytes.extend_from_slice(f.bytes());
            log.append(&f);
            out.push(f.bytes().to_vec());
        }
        log.commit();
        std::fs::write(&path, &bytes).unwrap();
        out
    }

    fn open(data: &Path) -> LeafLog {
        LeafLog::open(data, &data.join(SEGMENTS_DIR), &IntegrityOptions::default()).unwrap()
    }

    #[test]
    fn stats_follow_commits_and_signed_checkpoints_and_survive_a_reopen() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join(SEGMENTS_DIR)).unwrap();
        let opts = IntegrityOptions {
            signer: Some(Arc::new(SignerKey::generate("stats.test").unwrap())),
            ..IntegrityOptions::default()
        };
        let mut log = LeafLog::open(d.path(), &d.path().join(SEGMENTS_DIR), &opts).unwrap();
        let stats = log.stats();
        assert_eq!(
            (stats.tree_size(), stats.last_checkpoint_unix_ns()),
            (0, None)
        );
        write(d.path(), &mut log, 3);
        assert_eq!(stats.tree_size(), 3);
        // Appended but not committed: not counted.
        let mut f = frame(99);
        log.stamp(&mut f);
        log.append(&f);
        assert_eq!(stats.tree_size(), 3);
        log.roll_back();
        let before = now_ns();
        log.checkpoint("test");
        let at = stats.last_checkpoint_unix_ns().unwrap();
        assert!(at >= before && at <= now_ns(), "{at}");
        drop(log);
        let log = LeafLog::open(d.path(), &d.path().join(SEGMENTS_DIR), &opts).unwrap();
        assert_eq!(log.stats().tree_size(), 3);
        assert_eq!(log.stats().last_checkpoint_unix_ns(), Some(at));
    }

    #[test]
    fn frames_are_chained_and_the_tree_is_rebuilt_with_or_without_the_saved_state() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join(SEGMENTS_DIR)).unwrap();
        let mut log = open(d.path());
        let frames = write(d.path(), &mut log, 5);
        // Each frame names its index and its predecessor's leaf hash.
        let mut prev = [0u8; 32];
        for (i, f) in frames.iter().enumerate() {
            let hlen = meshlog_format::frame::frame_header_len(
                &f[..meshlog_format::frame::FRAME_HEADER_PREFIX_LEN]
                    .try_into()
                    .unwrap(),
            )
            .unwrap();
            let h = meshlog_format::frame::FrameHeader::decode(&f[..hlen]).unwrap();
            assert_eq!(
                h.extensions.chain,
                Some(Chain {
                    leaf_index: i as u64,
                    prev_leaf: prev
                })
            );
            prev = merkle::leaf_hash(f);
        }
        let leaves: Vec<Hash> = frames.iter().map(|f| merkle::leaf_hash(f)).collect();
        assert_eq!(log.committed_root(), merkle::root(&leaves));
        log.checkpoint("shutdown");
        assert!(d.path().join(TREE_STATE_FILE).exists());

        // Resumed from the state: the same tree, and the chain goes on.
        let mut again = open(d.path());
        assert_eq!(again.committed_root(), merkle::root(&leaves));
        let more = write(d.path(), &mut again, 2);
        let all: Vec<Hash> = frames
            .iter()
            .chain(&more)
            .map(|f| merkle::leaf_hash(f))
            .collect();
        assert_eq!(again.committed_root(), merkle::root(&all));

        // A stale state (older than the store) resumes too; a wrong one is ignored.
        let stale = open(d.path());
        assert_eq!(stale.committed_root(), merkle::root(&all));
        let mut wrong = std::fs::read_to_string(d.path().join(TREE_STATE_FILE)).unwrap();
        wrong = wrong.replacen("\"last_leaf\":\"", "\"last_leaf\":\"00", 1);
        std::fs::write(d.path().join(TREE_STATE_FILE), &wrong).unwrap();
        assert_eq!(open(d.path()).committed_root(), merkle::root(&all));
        let mut other = TreeState {
            tree: CompactTree::new(),
            last_leaf: [7; 32],
        };
        other.tree.append(b"x").unwrap();
        write_state(&d.path().join(TREE_STATE_FILE), &other).unwrap();
        assert_eq!(open(d.path()).committed_root(), merkle::root(&all));
        let seg = d.path().join(SEGMENTS_DIR).join(segment_file_name(1));
        assert!(std::fs::metadata(seg).unwrap().len() > SEGMENT_HEADER_LEN);
    }

    #[test]
    fn the_leaves_of_deleted_segments_are_taken_from_deleted_with_or_without_the_saved_state() {
        use meshlog_format::receipt::{DELETED_DIR, leaves_file_name};
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join(SEGMENTS_DIR)).unwrap();
        let mut log = open(d.path());
        // Segments 1 and 2 will be deleted, 3 and 4 stay.
        let mut all = Vec::new();
        for (seq, n) in [(1, 2), (2, 3), (3, 2), (4, 1)] {
            all.extend(write_to(d.path(), seq, &mut log, n));
        }
        let leaves: Vec<Hash> = all.iter().map(|f| merkle::leaf_hash(f)).collect();
        let root = merkle::root(&leaves);
        assert_eq!(log.committed_root(), root);
        log.checkpoint("shutdown");
        // What the sweeper does: keep the leaf hashes, then delete the segment.
        std::fs::create_dir_all(d.path().join(DELETED_DIR)).unwrap();
        for (seq, range) in [(1u64, 0..2), (2, 2..5)] {
            let name = segment_file_name(seq);
            let bytes: Vec<u8> = leaves[range].iter().flatten().copied().collect();
            std::fs::write(
                d.path().join(DELETED_DIR).join(leaves_file_name(&name)),
                bytes,
            )
            .unwrap();
            std::fs::remove_file(d.path().join(SEGMENTS_DIR).join(name)).unwrap();
        }
        // With the saved state (its last leaf is in segment 4), and without it.
        let resumed = open(d.path());
        assert_eq!(
            (resumed.committed_size(), resumed.committed_root()),
            (8, root)
        );
        std::fs::remove_file(d.path().join(TREE_STATE_FILE)).unwrap();
        let mut rebuilt = open(d.path());
        assert_eq!(
            (rebuilt.committed_size(), rebuilt.committed_root()),
            (8, root)
        );
        // The next frame is leaf 8, chained to leaf 7.
        let more = write_to(d.path(), 4, &mut rebuilt, 1);
        let mut with_more = leaves.clone();
        with_more.push(merkle::leaf_hash(&more[0]));
        assert_eq!(rebuilt.committed_root(), merkle::root(&with_more));

        // Without the leaves of segment 1 the tree cannot be the signed one (logged at start).
        std::fs::remove_file(
            d.path()
                .join(DELETED_DIR)
                .join(leaves_file_name(&segment_file_name(1))),
        )
        .unwrap();
        std::fs::remove_file(d.path().join(TREE_STATE_FILE)).ok();
        let short = open(d.path());
        assert_eq!(short.committed_size(), 7);
        assert_eq!(short.committed_root(), merkle::root(&with_more[2..]));
    }

    #[test]
    fn a_rollback_returns_to_the_last_commit() {
        let mut log = LeafLog::detached();
        let mut a = frame(1);
        log.stamp(&mut a);
        log.append(&a);
        log.commit();
        let root = log.committed_root();
        let mut b = frame(2);
        log.stamp(&mut b);
        log.append(&b);
        assert_eq!((log.size(), log.committed_size()), (2, 1));
        log.roll_back();
        assert_eq!(log.size(), 1);
        // The next frame takes index 1 again, chained to `a`.
        let mut c = frame(3);
        log.stamp(&mut c);
        log.append(&c);
        log.commit();
        assert_eq!(
            log.committed_root(),
            merkle::root(&[merkle::leaf_hash(a.bytes()), merkle::leaf_hash(c.bytes())])
        );
        assert_ne!(log.committed_root(), root);
    }
}
