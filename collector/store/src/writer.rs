//! The single writer thread: owns the active segment, appends frames, group-commits with one
//! `sync_data` per batch of queued requests, and only then acknowledges.
//!
//! One thread, because appends to one file are serial anyway and a plain thread keeps blocking
//! file I/O off the async runtime. Group commit, because fsync dominates the cost of a write:
//! N concurrent requests cost one fsync, not N. Invariants:
//! - an `Ok` ack means the frame is on disk (the file's data was synced after it was written);
//! - a batch id is stored at most once: the writer is the one place that decides, since it sees
//!   every frame in order. An id already durable is answered [`Appended::Duplicate`] without
//!   writing; an id written in the current group but not yet synced makes the later copy wait
//!   for that fsync and share its outcome. Ids enter the index after the fsync, before the ack;
//! - a failed write is rolled back (the file is cut to where the frame began) so nothing after
//!   it lands behind garbage. A full disk (ENOSPC, EDQUOT) is not a fault of the store: the
//!   batch is refused, and the next one simply tries again. If the rollback itself fails for
//!   lack of space it is retried before the next write, which waits for it; if it fails for
//!   any other reason the writer refuses all further writes (poisoned) rather than append
//!   behind bytes it cannot account for;
//! - a segment is synced before the next one is created, so only the newest can have a torn
//!   tail, which is what recovery relies on;
//! - every frame is stamped with its leaf index and its predecessor's leaf hash just before it
//!   is written, and becomes a leaf of the Merkle tree ([`LeafLog`]); checkpoints cover only
//!   synced frames, and a failed fsync rolls the tree back with the file.

use super::dedup::{BatchKey, SharedIndex};
use super::queue::Reservation;
use crate::fs::{FileSystem, FsFile, StdFs};
use crate::ledger::LeafLog;
use crate::tail::recent::Recent;
use meshlog_format::frame::{EncodedFrame, PlainRecords, SEGMENT_HEADER_LEN, segment_header};
pub use meshlog_format::fsutil::sync_dir;
use meshlog_format::reader::segment_file_name;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// At most this many requests share one fsync, so a flood cannot delay the first ack forever.
const MAX_GROUP_FRAMES: usize = 256;
/// At most this many frame bytes share one fsync.
const MAX_GROUP_BYTES: usize = 64 << 20;

/// Where an acknowledged frame was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLocation {
    /// Segment sequence number.
    pub segment: u64,
    /// Byte offset of the frame in the segment.
    pub offset: u64,
}

/// What became of an acknowledged frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Written and synced here.
    Stored(FrameLocation),
    /// Its batch id was already stored (or was being stored and that fsync succeeded): not
    /// written again.
    Duplicate,
}

/// Why a frame was not stored, broadly: decides what the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteErrorKind {
    /// The filesystem is full (ENOSPC) or a quota is used up (EDQUOT): retry later.
    NoSpace,
    /// Anything else.
    Other,
}

/// Why a frame was not stored. For logs, not for clients.
#[derive(Debug, Clone, thiserror::Error)]
pub struct WriteError {
    /// The broad cause.
    pub kind: WriteErrorKind,
    /// What failed (`fsync`, `writing a frame`, `store is unusable: …`).
    pub message: String,
    /// The OS error behind it, if any: shared by every batch of a failed group commit.
    #[source]
    pub source: Option<Arc<io::Error>>,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(e) => write!(f, "{}: {e}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl WriteError {
    fn io(what: &str, e: io::Error) -> Self {
        WriteError {
            kind: if is_no_space(&e) {
                WriteErrorKind::NoSpace
            } else {
                WriteErrorKind::Other
            },
            message: what.to_owned(),
            source: Some(Arc::new(e)),
        }
    }

    fn other(message: String) -> Self {
        WriteError {
            kind: WriteErrorKind::Other,
            message,
            source: None,
        }
    }
}

/// True for "no space left on device" and "disk quota exceeded".
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// The answer to one write request.
pub type Ack = oneshot::Sender<Result<Appended, WriteError>>;

/// A message to the writer thread.
#[derive(Debug)]
pub enum Msg {
    /// Append a frame and acknowledge once durable.
    Write {
        /// The frame.
        frame: EncodedFrame,
        /// Where the answer goes.
        ack: Ack,
        /// The frame's share of the ingest queue, released once it is answered.
        reservation: Reservation,
    },
    /// Finish everything queued before this message, then stop.
    Close,
    /// Finish everything queued before this message, then close the active segment if it holds
    /// a frame and start the next one (retention expires closed segments only). Answers with
    /// the closed segment's sequence number, `None` when the active one was empty.
    Rotate(oneshot::Sender<Result<Option<u64>, WriteError>>),
    /// Sign a checkpoint of what is synced (sent every checkpoint interval).
    Checkpoint,
}

/// The segment being appended to.
#[derive(Debug)]
pub struct Active<F: FileSystem = StdFs> {
    /// Open for writing, positioned at `len`.
    pub file: F::File,
    /// Sequence number.
    pub seq: u64,
    /// Path, for messages.
    pub path: PathBuf,
    /// Bytes of header and complete frames written.
    pub len: u64,
    /// Bytes known to be on disk.
    pub synced_len: u64,
}

/// Creates segment `seq` with its header, durably (file and directory entry).
pub fn create_segment(dir: &Path, seq: u64) -> io::Result<Active> {
    create_segment_in(&StdFs, dir, seq)
}

/// [`create_segment`] on the file system `fs`.
pub fn create_segment_in<F: FileSystem>(fs: &F, dir: &Path, seq: u64) -> io::Result<Active<F>> {
    let path = dir.join(segment_file_name(seq));
    let made = (|| {
        // Truncate, not create_new: a file with this name can only be the remains of our own
        // failed rotation (we hold the lock and `seq` is past the newest segment at start).
        let mut f = fs.create(&path)?;
        f.write_all(&segment_header())?;
        f.sync_all()?;
        fs.sync_dir(dir)?;
        Ok::<_, io::Error>(f)
    })();
    match made {
        Ok(file) => Ok(Active {
            file,
            seq,
            path,
            len: SEGMENT_HEADER_LEN,
            synced_len: SEGMENT_HEADER_LEN,
        }),
        Err(e) => {
            let _ = fs.remove_file(&path);
            Err(e)
        }
    }
}

/// Test hook: while held, the writer thread waits just before each fsync, so a test can keep
/// batches in flight as long as it needs (a full ingest queue, a slow disk) without sleeping.
/// Only tests set one: `StoreOptions::pause` exists with the `test-hooks` feature alone.
#[derive(Debug, Clone, Default)]
pub struct WriterPause(Arc<(Mutex<PauseState>, Condvar)>);

#[derive(Debug, Default)]
struct PauseState {
    held: bool,
    waiting: bool,
}

impl WriterPause {
    /// A pause, not held.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, PauseState> {
        self.0.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// From now on the writer stops before its next fsync.
    pub fn hold(&self) {
        self.state().held = true;
    }

    /// Lets the writer go on.
    pub fn release(&self) {
        self.state().held = false;
        self.0.1.notify_all();
    }

    /// Blocks until the writer waits at the pause, at most `timeout`; true if it does.
    pub fn wait_until_paused(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut st = self.state();
        while !st.waiting {
            let Some(left) = end.checked_duration_since(Instant::now()) else {
                return false;
            };
            st = self
                .0
                .1
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    fn wait_here(&self) {
        let mut st = self.state();
        if !st.held {
            return;
        }
        st.waiting = true;
        self.0.1.notify_all();
        while st.held {
            st = self.0.1.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        st.waiting = false;
    }
}

/// A frame written but not yet synced, and who waits for it.
#[derive(Debug)]
struct Pending {
    ack: Ack,
    loc: FrameLocation,
    key: Option<BatchKey>,
    /// Later copies of the same batch id: answered `Duplicate` once this one is durable.
    followers: Vec<Ack>,
    reservation: Reservation,
    /// The frame's leaf and records, for the subscriptions once it is durable ([`Recent`]).
    plain: Option<(u64, Arc<PlainRecords>)>,
}

/// Frees the batch's queue bytes, then answers: a client that sends its next batch as soon as
/// it has the answer must find the room.
fn answer(ack: Ack, reservation: Reservation, result: Result<Appended, WriteError>) {
    drop(reservation);
    let _ = ack.send(result);
}

/// A full-disk episode, logged once when it starts and once when it ends.
#[derive(Debug, Default)]
struct DiskFull {
    since: Option<Instant>,
    refused: u64,
}

/// The writer thread's state.
#[derive(Debug)]
pub struct Writer<F: FileSystem = StdFs> {
    fs: F,
    segments_dir: PathBuf,
    segment_max_bytes: u64,
    active: Active<F>,
    pending: Vec<Pending>,
    /// Index into `pending` by batch key.
    pending_keys: HashMap<BatchKey, usize>,
    dedup: Arc<SharedIndex>,
    poisoned: Option<String>,
    /// A rollback that failed for lack of space: the file must be cut to this length before
    /// anything else is written.
    unfinished_rollback: Option<u64>,
    disk_full: DiskFull,
    pause: Option<WriterPause>,
    integrity: LeafLog,
    /// The committed leaf count, published after every successful fsync (before the acks) to
    /// the [`crate::tail`] subscriptions.
    commits: watch::Sender<u64>,
    /// The newest closed (sealed, fsync'd, never written again) segment's sequence number, 0
    /// when none: what builds the query indexes watches.
    closed: watch::Sender<u64>,
    /// Committed frames' records for the subscriptions at the live edge.
    recent: Arc<Recent>,
    // Held for the life of the writer: the data directory is ours while it runs.
    _lock: File,
}

impl Writer {
    /// A writer appending to `active`, deduplicating against `dedup`.
    pub fn new(
        segments_dir: PathBuf,
        segment_max_bytes: u64,
        active: Active,
        lock: File,
        dedup: Arc<SharedIndex>,
        pause: Option<WriterPause>,
    ) -> Self {
        Writer::new_in(
            StdFs,
            segments_dir,
            segment_max_bytes,
            active,
            lock,
            dedup,
            pause,
        )
    }
}

impl<F: FileSystem> Writer<F> {
    /// [`Writer::new`] on the file system `fs`.
    pub fn new_in(
        fs: F,
        segments_dir: PathBuf,
        segment_max_bytes: u64,
        active: Active<F>,
        lock: File,
        dedup: Arc<SharedIndex>,
        pause: Option<WriterPause>,
    ) -> Self {
        // Every segment before the active one is closed.
        let closed = watch::Sender::new(active.seq.saturating_sub(1));
        Writer {
            fs,
            segments_dir,
            segment_max_bytes,
            active,
            pending: Vec::new(),
            pending_keys: HashMap::new(),
            dedup,
            poisoned: None,
            unfinished_rollback: None,
            disk_full: DiskFull::default(),
            pause,
            integrity: LeafLog::detached(),
            commits: watch::Sender::new(0),
            closed,
            recent: Recent::new(0),
            _lock: lock,
        }
    }

    /// The Merkle log to chain frames into (a detached one, saving and signing nothing, by
    /// default).
    pub fn with_integrity(mut self, integrity: LeafLog) -> Self {
        self.commits.send_replace(integrity.committed_size());
        self.integrity = integrity;
        self
    }

    /// Keeps up to `max_bytes` of the newest committed frames' records in memory for the
    /// subscriptions (when the frames carry them and a subscription is open; see [`Recent`]).
    pub fn keep_recent(mut self, max_bytes: usize) -> Self {
        self.recent = Recent::new(max_bytes);
        self
    }

    /// The committed frames kept in memory ([`Writer::keep_recent`]).
    pub fn recent(&self) -> Arc<Recent> {
        Arc::clone(&self.recent)
    }

    /// The committed leaf count (frames durably written, counted from the first ever), updated
    /// after each successful fsync before any of its batches is acknowledged.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// The newest closed segment's sequence number (0 when none), updated each time the writer
    /// closes one: every segment up to it is complete and synced, and only the segments after
    /// it are written to.
    pub fn closed_segments(&self) -> watch::Receiver<u64> {
        self.closed.subscribe()
    }

    /// Serves `rx` until a `Close` message or until every sender is gone.
    pub fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        // What recovery left is the start of this run's log.
        self.integrity.checkpoint("start");
        while let Some(first) = rx.blocking_recv() {
            let mut close = false;
            let mut rotate = None;
            let mut checkpoint = false;
            let mut group = Vec::new();
            let mut bytes = 0;
            match first {
                Msg::Close => close = true,
                Msg::Rotate(ack) => rotate = Some(ack),
                Msg::Checkpoint => checkpoint = true,
                Msg::Write {
                    frame,
                    ack,
                    reservation,
                } => {
                    bytes += frame.bytes().len();
                    group.push((frame, ack, reservation));
                }
            }
            while !close
                && rotate.is_none()
                && group.len() < MAX_GROUP_FRAMES
                && bytes < MAX_GROUP_BYTES
            {
                match rx.try_recv() {
                    Ok(Msg::Write {
                        frame,
                        ack,
                        reservation,
                    }) => {
                        bytes += frame.bytes().len();
                        group.push((frame, ack, reservation));
                    }
                    Ok(Msg::Close) => close = true,
                    Ok(Msg::Rotate(ack)) => rotate = Some(ack),
                    Ok(Msg::Checkpoint) => checkpoint = true,
                    Err(_) => break,
                }
            }
            for (frame, ack, reservation) in group {
                self.write_one(frame, ack, reservation);
            }
            self.commit();
            if let Some(ack) = rotate {
                let _ = ack.send(self.rotate());
            }
            if checkpoint && !close {
                self.integrity.checkpoint("periodic");
            }
            if close {
                break;
            }
        }
        self.integrity.checkpoint("shutdown");
        tracing::debug!(segment = %self.active.path.display(), len = self.active.len, "writer stopped");
    }

    fn write_one(&mut self, mut frame: EncodedFrame, ack: Ack, reservation: Reservation) {
        if let Some(why) = &self.poisoned {
            let why = format!("store is unusable: {why}");
            return answer(ack, reservation, Err(WriteError::other(why)));
        }
        let key = frame.batch_id().map(|id| self.dedup.key(id));
        if let Some(key) = key {
            if self.dedup.contains(key) {
                return answer(ack, reservation, Ok(Appended::Duplicate));
            }
            if let Some(first) = self
                .pending_keys
                .get(&key)
                .and_then(|i| self.pending.get_mut(*i))
            {
                // Its bytes are not needed: only the first copy is written.
                drop(reservation);
                first.followers.push(ack);
                return;
            }
        }
        if let Err(e) = self.finish_rollback() {
            return answer(ack, reservation, Err(e));
        }
        let size = frame.bytes().len() as u64;
        if self.active.len > SEGMENT_HEADER_LEN
            && self.active.len.saturating_add(size) > self.segment_max_bytes
        {
            // Seal the full segment first: only the newest may ever have an unsynced tail.
            self.commit();
            if let Some(why) = &self.poisoned {
                let why = format!("store is unusable: {why}");
                return answer(ack, reservation, Err(WriteError::other(why)));
            }
            if let Err(e) = self.finish_rollback() {
                return answer(ack, reservation, Err(e));
            }
            match create_segment_in(&self.fs, &self.segments_dir, self.active.seq + 1) {
                Ok(next) => {
                    tracing::info!(segment = %next.path.display(), "rotated to a new segment");
                    let closed = std::mem::replace(&mut self.active, next);
                    self.closed.send_replace(closed.seq);
                }
                Err(e) => {
                    // Keep appending to the current segment; the next write tries again.
                    let err = WriteError::io("creating a segment", e);
                    if err.kind == WriteErrorKind::NoSpace {
                        self.note_disk_full(&err, 1);
                    } else {
                        tracing::error!(error = %err, "cannot create segment {}", self.active.seq + 1);
                    }
                    return answer(ack, reservation, Err(err));
                }
            }
        }
        let offset = self.active.len;
        let plain = frame
            .take_plain()
            .filter(|_| self.recent.wanted())
            .map(|p| (self.integrity.size(), p));
        self.integrity.stamp(&mut frame);
        match self.active.file.write_all(frame.bytes()) {
            Ok(()) => {
                // A frame that fits ends a full-disk episode (not the fsync of frames written
                // before the failure, which can come after it in the same group).
                self.note_space_back();
                self.integrity.append(&frame);
                self.active.len += size;
                let loc = FrameLocation {
                    segment: self.active.seq,
                    offset,
                };
                if let Some(key) = key {
                    self.pending_keys.insert(key, self.pending.len());
                }
                self.pending.push(Pending {
                    ack,
                    loc,
                    key,
                    followers: Vec::new(),
                    reservation,
                    plain,
                });
            }
            Err(e) => {
                let err = WriteError::io("writing a frame", e);
                if err.kind == WriteErrorKind::NoSpace {
                    self.note_disk_full(&err, 1);
                } else {
                    tracing::error!(
                        segment = %self.active.path.display(),
                        offset,
                        error = %err,
                        "writing a frame failed; rolling it back"
                    );
                }
                // Cut first, answer after: a client told "not stored" finds the segment as
                // it was (the full-disk test reads its length right after the 507).
                self.roll_back(offset);
                answer(ack, reservation, Err(err));
            }
        }
    }

    /// Closes the active segment if it holds a frame and starts the next one; called right
    /// after a commit, so the closed segment is synced (only the newest may have a torn tail).
    fn rotate(&mut self) -> Result<Option<u64>, WriteError> {
        if let Some(why) = &self.poisoned {
            return Err(WriteError::other(format!("store is unusable: {why}")));
        }
        self.finish_rollback()?;
        if self.active.len <= SEGMENT_HEADER_LEN {
            return Ok(None);
        }
        let next = create_segment_in(&self.fs, &self.segments_dir, self.active.seq + 1)
            .map_err(|e| WriteError::io("creating a segment", e))?;
        tracing::info!(segment = %next.path.display(), "rotated to a new segment on request");
        let closed = std::mem::replace(&mut self.active, next);
        self.closed.send_replace(closed.seq);
        Ok(Some(closed.seq))
    }

    /// Makes everything written durable and answers the waiting requests.
    fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Some(p) = &self.pause {
            p.wait_here();
        }
        let result = self.active.file.sync_data();
        let mut pending = std::mem::take(&mut self.pending);
        self.pending_keys.clear();
        match result {
            Ok(()) => {
                self.active.synced_len = self.active.len;
                self.integrity.commit();
                self.recent
                    .extend(pending.iter_mut().filter_map(|p| p.plain.take()));
                // Subscribers are woken no later than the clients are answered.
                self.commits.send_replace(self.integrity.committed_size());
                // Into the index before any ack: a retry sent after the 200 must find it.
                self.dedup.insert(pending.iter().filter_map(|p| p.key));
                for p in pending {
                    // A requester that went away (client disconnected) is fine: it is stored.
                    answer(p.ack, p.reservation, Ok(Appended::Stored(p.loc)));
                    for f in p.followers {
                        let _ = f.send(Ok(Appended::Duplicate));
                    }
                }
            }
            Err(e) => {
                let err = WriteError::io("fsync", e);
                let frames = pending.len();
                if err.kind == WriteErrorKind::NoSpace {
                    self.note_disk_full(&err, frames as u64);
                } else {
                    tracing::error!(
                        segment = %self.active.path.display(),
                        error = %err,
                        frames,
                        "fsync failed; none of these frames is acknowledged"
                    );
                }
                // After a failed fsync the page cache no longer tells what is on disk: cut back
                // to what an earlier fsync confirmed (the tree too), then answer.
                self.integrity.roll_back();
                let synced = self.active.synced_len;
                self.roll_back(synced);
                for p in pending {
                    answer(p.ack, p.reservation, Err(err.clone()));
                    for f in p.followers {
                        let _ = f.send(Err(err.clone()));
                    }
                }
            }
        }
    }

    /// Cuts the active segment back to `len` and syncs. Lack of space leaves it to be retried
    /// before the next write; any other failure poisons the writer.
    fn roll_back(&mut self, len: u64) {
        let f = &mut self.active.file;
        let result = f
            .set_len(len)
            .and_then(|()| f.seek(SeekFrom::Start(len)).map(|_| ()))
            .and_then(|()| f.sync_data());
        match result {
            Ok(()) => {
                self.active.len = len;
                self.active.synced_len = self.active.synced_len.min(len);
                self.unfinished_rollback = None;
            }
            Err(e) if is_no_space(&e) => {
                tracing::warn!(
                    segment = %self.active.path.display(),
                    len,
                    error = %e,
                    "cannot cut a failed write yet (disk full); retrying before the next write"
                );
                self.active.len = len;
                self.active.synced_len = self.active.synced_len.min(len);
                self.unfinished_rollback = Some(len);
            }
            Err(e) => {
                let why = format!(
                    "cannot roll back {} to {len} bytes after a failed write: {e}",
                    self.active.path.display()
                );
                tracing::error!("{why}; refusing all further writes until restart");
                self.poisoned = Some(why);
            }
        }
    }

    /// Retries a rollback that failed for lack of space; the write waits for it.
    fn finish_rollback(&mut self) -> Result<(), WriteError> {
        let Some(len) = self.unfinished_rollback else {
            return Ok(());
        };
        self.roll_back(len);
        if let Some(why) = &self.poisoned {
            return Err(WriteError::other(format!("store is unusable: {why}")));
        }
        if self.unfinished_rollback.is_some() {
            self.disk_full.refused += 1;
            return Err(WriteError {
                kind: WriteErrorKind::NoSpace,
                message: "disk full: a failed write is not cut yet".into(),
                source: None,
            });
        }
        Ok(())
    }

    fn note_disk_full(&mut self, e: &WriteError, frames: u64) {
        self.disk_full.refused += frames;
        if self.disk_full.since.is_none() {
            self.disk_full.since = Some(Instant::now());
            tracing::error!(
                segment = %self.active.path.display(),
                error = %e,
                "disk full: batches are refused with 507 until space returns; the store is \
                 intact and the next batch tries again (logged once per episode)"
            );
        }
    }

    fn note_space_back(&mut self) {
        if let Some(since) = self.disk_full.since.take() {
            tracing::info!(
                after_ms = since.elapsed().as_millis() as u64,
                batches_refused = self.disk_full.refused,
                "disk space available again: storing batches"
            );
            self.disk_full.refused = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::IngestQueue;
    use meshlog_format::batch_id::BatchId;
    use meshlog_format::frame::{encode_frame, encode_frame_with_id};
    use meshlog_format::reader::{SegmentScanner, list_segments};
    use serde_json::{Map, Value, json};

    /// Letters from a xorshift generator: zstd cannot shrink them much.
    fn noise(seed: u64, n: usize) -> String {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect()
    }

    fn rec(i: u64, pad: usize) -> Map<String, Value> {
        let Value::Object(m) = json!({ "i": i, "pad": noise(i, pad) }) else {
            unreachable!()
        };
        m
    }

    fn frame(i: u64, pad: usize) -> EncodedFrame {
        encode_frame(&[rec(i, pad)]).unwrap()
    }

    fn frame_with_id(i: u64, id: &str) -> EncodedFrame {
        encode_frame_with_id(&[rec(i, 10)], Some(BatchId::parse(id.as_bytes()).unwrap())).unwrap()
    }

    struct Started {
        tx: mpsc::UnboundedSender<Msg>,
        rx: Option<mpsc::UnboundedReceiver<Msg>>,
        writer: Option<Writer>,
        queue: Arc<IngestQueue>,
        dedup: Arc<SharedIndex>,
    }

    impl Started {
        /// A writer on a fresh segment 1, not running yet (messages queue up).
        fn new(dir: &Path, max: u64, pause: Option<WriterPause>) -> Self {
            let active = create_segment(dir, 1).unwrap();
            let lock = File::create(dir.join("LOCK")).unwrap();
            let dedup = Arc::new(SharedIndex::new(1000));
            let writer = Writer::new(dir.to_owned(), max, active, lock, dedup.clone(), pause);
            let (tx, rx) = mpsc::unbounded_channel();
            Started {
                tx,
                rx: Some(rx),
                writer: Some(writer),
                queue: IngestQueue::new(1 << 30),
                dedup,
            }
        }

        fn send(&self, frame: EncodedFrame) -> oneshot::Receiver<Result<Appended, WriteError>> {
            let (ack, rx) = oneshot::channel();
            let reservation = self.queue.reserve(frame.bytes().len() as u64).unwrap();
            self.tx
                .send(Msg::Write {
                    frame,
                    ack,
                    reservation,
                })
                .unwrap();
            rx
        }

        fn run(&mut self) -> std::thread::JoinHandle<()> {
            let (w, rx) = (self.writer.take().unwrap(), self.rx.take().unwrap());
            std::thread::spawn(move || w.run(rx))
        }
    }

    fn frames_on_disk(dir: &Path) -> Vec<(u64, Option<String>)> {
        let mut out = Vec::new();
        for s in list_segments(dir).unwrap() {
            let mut sc = SegmentScanner::open(&s.path).unwrap();
            while let Some(f) = sc.next_frame(true).unwrap() {
                let id = f.header.extensions.batch_id.map(|b| b.to_string());
                out.push((f.offset, id));
            }
        }
        out
    }

    #[test]
    fn acks_carry_locations_and_segments_rotate_past_the_limit() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Started::new(d.path(), 600, None);
        let closed = w.writer.as_ref().unwrap().closed_segments();
        let th = w.run();
        let mut locs = Vec::new();
        for i in 0..6 {
            let rx = w.send(frame(i, 200 + i as usize));
            match rx.blocking_recv().unwrap().unwrap() {
                Appended::Stored(loc) => locs.push(loc),
                other => panic!("{other:?}"),
            }
        }
        w.tx.send(Msg::Close).unwrap();
        th.join().unwrap();
        assert_eq!(w.queue.used(), 0, "every reservation released");
        assert_eq!(
            locs[0],
            FrameLocation {
                segment: 1,
                offset: SEGMENT_HEADER_LEN
            }
        );
        let segs = list_segments(d.path()).unwrap();
        assert!(segs.len() >= 2, "no rotation: {segs:?}");
        let mut seen = 0;
        for s in &segs {
            let len = std::fs::metadata(&s.path).unwrap().len();
            let mut sc = SegmentScanner::open(&s.path).unwrap();
            let mut n = 0;
            while let Some(f) = sc.next_frame(true).unwrap() {
                assert_eq!(
                    locs[seen],
                    FrameLocation {
                        segment: s.seq,
                        offset: f.offset
                    }
                );
                seen += 1;
                n += 1;
            }
            // Never past the limit unless a lone frame is larger than it.
            assert!(
                len <= 600 || n == 1,
                "{} is {len} bytes with {n} frames",
                s.path.display()
            );
        }
        assert_eq!(seen, 6);
        // Every rotation past the limit published the segment it closed.
        assert_eq!(*closed.borrow(), segs[segs.len() - 2].seq);
    }

    #[test]
    fn dropping_every_sender_stops_the_writer_after_finishing_the_queue() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Started::new(d.path(), 1 << 20, None);
        let th = w.run();
        let rx = w.send(frame(1, 1));
        drop(w.tx);
        th.join().unwrap();
        assert!(matches!(
            rx.blocking_recv().unwrap(),
            Ok(Appended::Stored(_))
        ));
    }

    #[test]
    fn copies_of_a_batch_id_in_one_group_are_written_once_and_share_its_fsync() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Started::new(d.path(), 1 << 20, None);
        // Queued before the writer runs: one group.
        let acks: Vec<_> = [
            frame_with_id(1, "k"),
            frame_with_id(2, "k"),
            frame_with_id(3, "l"),
            frame(4, 10),
            frame_with_id(5, "k"),
            frame(6, 10),
        ]
        .into_iter()
        .map(|f| w.send(f))
        .collect();
        let th = w.run();
        let got: Vec<_> = acks
            .into_iter()
            .map(|rx| rx.blocking_recv().unwrap().unwrap())
            .collect();
        let stored: Vec<bool> = got
            .iter()
            .map(|a| matches!(a, Appended::Stored(_)))
            .collect();
        assert_eq!(stored, [true, false, true, true, false, true], "{got:?}");
        assert_eq!(got[1], Appended::Duplicate);
        let ids: Vec<Option<String>> = frames_on_disk(d.path()).into_iter().map(|f| f.1).collect();
        assert_eq!(
            ids,
            [Some("k".into()), Some("l".into()), None, None],
            "records without an id are never deduplicated"
        );
        assert_eq!(w.dedup.len(), 2);

        // A later group: k is durable now, so it is answered without writing.
        let again = w.send(frame_with_id(7, "k"));
        assert!(matches!(
            again.blocking_recv().unwrap(),
            Ok(Appended::Duplicate)
        ));
        assert_eq!(frames_on_disk(d.path()).len(), 4);
        w.tx.send(Msg::Close).unwrap();
        th.join().unwrap();
        assert_eq!(w.queue.used(), 0);
    }

    #[test]
    fn a_held_pause_keeps_the_ack_until_released() {
        let d = tempfile::tempdir().unwrap();
        let pause = WriterPause::new();
        pause.hold();
        let mut w = Started::new(d.path(), 1 << 20, Some(pause.clone()));
        let th = w.run();
        let mut rx = w.send(frame_with_id(1, "p"));
        assert!(pause.wait_until_paused(Duration::from_secs(10)));
        assert!(rx.try_recv().is_err(), "acknowledged before its fsync");
        assert!(w.queue.used() > 0, "still holds its queue bytes");
        pause.release();
        assert!(matches!(
            rx.blocking_recv().unwrap(),
            Ok(Appended::Stored(_))
        ));
        drop(w.tx);
        th.join().unwrap();
        assert_eq!(w.queue.used(), 0);
    }

    #[test]
    fn enospc_and_edquot_are_no_space_others_are_not() {
        for (errno, no_space) in [(28, true), (122, true), (5, false), (13, false)] {
            let e = io::Error::from_raw_os_error(errno);
            assert_eq!(is_no_space(&e), no_space, "{e}");
            let kind = WriteError::io("writing", io::Error::from_raw_os_error(errno)).kind;
            assert_eq!(kind == WriteErrorKind::NoSpace, no_space, "{e}");
        }
    }
}
