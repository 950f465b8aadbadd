//! The append-only segment store in the data directory.
//!
//! Layout: see `meshlog_format::layout` (`LOCK` held by the running `serve`, `segments/<seq>.seg`
//! oldest first, `quarantine/` only after a repair). One accepted request is one frame; see
//! `meshlog_format::frame` for the bytes. [`Store::open`] locks the directory, runs [`recovery`] (which
//! also rebuilds the [`dedup`] index of stored batch ids from the frame headers) and starts the
//! [`writer`] thread; handlers talk to it through a cloneable [`StoreHandle`], which admits
//! frames only while the [`queue`]'s byte budget allows.
//!
//! With encryption at rest on ([`StoreOptions::encryption`], see `meshlog_format::encryption`) every frame is
//! sealed as it is built, and the handle refuses a plain one, so no code path can store records
//! in clear by forgetting to seal them.
//!
//! The writer and recovery change segment files through the [`fs::FileSystem`] trait
//! ([`fs::StdFs`], plain `std::fs`, unless a test passes another to [`Store::open_in`]). The
//! unit tests in `crash_tests.rs` run them on a simulated disk that loses whatever was not
//! fsync'd at a random operation (power loss, not process death) and check that every
//! acknowledged batch survives exactly once and the store still verifies.

pub mod config;
pub mod dedup;
pub mod fs;
pub mod ledger;
pub mod queue;
pub mod recovery;
pub mod tail;
pub mod writer;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod sim;

use crate::fs::{FileSystem, StdFs};
use crate::ledger::{IntegrityError, IntegrityOptions, LeafLog};
use dedup::{BatchId, SharedIndex};
use meshlog_format::frame::{Damage, EncodedFrame};
use meshlog_tlog::keys::Keyring;
use queue::{IngestQueue, QueueFull, Reservation};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
pub use writer::{Appended, FrameLocation, WriteError, WriteErrorKind, WriterPause};

pub use meshlog_format::layout::LOCK_FILE;

/// Store settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Start a new segment rather than grow the active one past this many bytes.
    pub segment_max_bytes: u64,
    /// Bytes of accepted but unanswered batches the store holds (see [`queue`]); past it new
    /// batches are refused at once.
    pub max_queue_bytes: u64,
    /// How many distinct batch ids are remembered for deduplication (see [`dedup`]).
    pub dedup_window: usize,
    /// Test hook (feature `test-hooks`): stalls the writer before each fsync while held.
    #[cfg(any(test, feature = "test-hooks"))]
    pub pause: Option<WriterPause>,
    /// Encryption at rest: when set, every frame is sealed with the keyring's current key
    /// ([`StoreHandle::keyring`] for whoever builds frames) and plain frames are refused.
    pub encryption: Option<Arc<Keyring>>,
    /// Checkpoint signing key and interval.
    pub integrity: IntegrityOptions,
}

/// The newest committed frames' records are kept in memory for the subscriptions
/// ([`tail::recent`]) up to this fraction of [`StoreOptions::max_queue_bytes`] (16 MiB of the
/// default 64).
pub const RECENT_SHARE_OF_QUEUE: u64 = 4;

/// Default [`StoreOptions::dedup_window`]: at 10,000 batches a minute, 3 h 20 min of retries;
/// about 100 MiB when full.
pub const DEFAULT_DEDUP_WINDOW: usize = 2_000_000;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            segment_max_bytes: 64 << 20,
            max_queue_bytes: 64 << 20,
            dedup_window: DEFAULT_DEDUP_WINDOW,
            #[cfg(any(test, feature = "test-hooks"))]
            pause: None,
            encryption: None,
            integrity: IntegrityOptions::default(),
        }
    }
}

/// Why the store could not open or store something.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// Another process holds the data directory.
    #[error(
        "data directory {} is in use by another meshlog serve{} (lock file {} is held)",
        dir.display(),
        holder.as_deref().map(|p| format!(" (pid {p})")).unwrap_or_default(),
        lock.display()
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// The pid written by the holder, if readable.
        holder: Option<String>,
    },
    /// Damage recovery must not repair.
    #[error(
        "segment {} is damaged at offset {offset}: {damage}; only a torn tail of the newest \
         segment is repaired automatically, so meshlog refuses to start (inspect or move the \
         file aside)",
        path.display()
    )]
    Damaged {
        /// The segment.
        path: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        damage: Damage,
    },
    /// The writer thread has stopped.
    #[error("the store writer has stopped")]
    Closed,
    /// The ingest queue's byte budget is used up: try again shortly.
    #[error(transparent)]
    Busy(#[from] QueueFull),
    /// The writer could not store a frame.
    #[error("storing a frame failed: {0}")]
    Write(#[from] WriteError),
    /// A plain frame offered to a store with encryption at rest on (a bug: refused, not stored).
    #[error("refusing to store a frame in plain: encryption at rest is on")]
    NotSealed,
    /// The Merkle log could not be opened (checkpoint log, tree rebuild).
    #[error(transparent)]
    Integrity(#[from] IntegrityError),
}

/// The open store: owns the writer thread.
#[derive(Debug)]
pub struct Store {
    handle: StoreHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    data_dir: PathBuf,
    /// Dropping it stops the checkpoint ticker.
    ticker_stop: Option<std::sync::mpsc::Sender<()>>,
}

/// A cheap, cloneable way to append frames.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    // Unbounded as a channel: the queue's byte budget bounds it.
    tx: mpsc::UnboundedSender<writer::Msg>,
    queue: Arc<IngestQueue>,
    dedup: Arc<SharedIndex>,
    encryption: Option<Arc<Keyring>>,
    ledger: Arc<ledger::LedgerStats>,
    /// The committed leaf count, published by the writer ([`tail`]).
    commits: tokio::sync::watch::Receiver<u64>,
    /// Committed frames' records held for the subscriptions ([`tail::recent`]).
    recent: Arc<tail::recent::Recent>,
    /// The newest closed segment, published by the writer.
    closed: tokio::sync::watch::Receiver<u64>,
    store_dir: PathBuf,
    segments_dir: PathBuf,
}

impl StoreHandle {
    /// A subscription to committed records from `from` on (see [`tail`]): older positions are
    /// read from the segments, then new ones follow as their batches are fsync'd.
    pub fn subscribe(&self, from: tail::Position) -> tail::Subscription {
        tail::Subscription::new(
            self.segments_dir.clone(),
            self.encryption.clone(),
            self.commits.clone(),
            from,
        )
        .with_recent(&self.recent)
    }

    /// Whether frames built for this store should keep their records uncompressed
    /// ([`FrameBuilder::keep_records`](meshlog_format::frame::FrameBuilder::keep_records)):
    /// some subscription is open to take them from memory ([`tail::recent`]).
    pub fn keeps_records(&self) -> bool {
        self.recent.wanted()
    }

    /// The position the next committed frame will have: subscribing from it follows only new
    /// records.
    pub fn committed_end(&self) -> tail::Position {
        tail::Position::leaf(*self.commits.borrow())
    }

    /// The newest closed segment's sequence number (0 when none), changed each time the writer
    /// closes a segment (it is then synced and never written again): the signal to build its
    /// query index.
    pub fn closed_segments(&self) -> tokio::sync::watch::Receiver<u64> {
        self.closed.clone()
    }

    /// The store's directory (the data directory, or a retention class's directory).
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The keys frames for this store must be sealed with; `None` when encryption is off.
    pub fn keyring(&self) -> Option<&Arc<Keyring>> {
        self.encryption.as_ref()
    }

    /// True when a batch with this id is durably stored (and still in the dedup window). A
    /// `false` is not final: the writer checks again, and also catches copies in flight.
    pub fn is_stored(&self, id: &BatchId) -> bool {
        self.dedup.contains(self.dedup.key(id))
    }

    /// Refuses (`Busy`) when the ingest queue is full, without reserving anything.
    pub fn check_room(&self) -> Result<(), StoreError> {
        Ok(self.queue.check_room()?)
    }

    /// Reserves `bytes` of the ingest queue for a batch being prepared; `Busy` when full.
    pub fn reserve(&self, bytes: u64) -> Result<Reservation, StoreError> {
        Ok(self.queue.reserve(bytes)?)
    }

    /// Bytes of the ingest queue in use.
    pub fn queued_bytes(&self) -> u64 {
        self.queue.used()
    }

    /// The Merkle log's size and last signed checkpoint, as the writer last published them.
    pub fn ledger_stats(&self) -> &ledger::LedgerStats {
        &self.ledger
    }

    /// Appends `frame`, reserving its room in the queue first (`Busy` when full); returns once
    /// it is on disk, or once a frame with its batch id is.
    pub async fn append(&self, frame: EncodedFrame) -> Result<Appended, StoreError> {
        let reservation = self.reserve(frame.bytes().len() as u64)?;
        self.append_reserved(frame, reservation).await
    }

    /// Like [`append`](Self::append) with room already reserved (resized to the frame). The
    /// frame is written even if this future is dropped before the answer.
    pub async fn append_reserved(
        &self,
        frame: EncodedFrame,
        mut reservation: Reservation,
    ) -> Result<Appended, StoreError> {
        if self.encryption.is_some() && frame.key_id().is_none() {
            return Err(StoreError::NotSealed);
        }
        let mut frame = frame;
        let mut size = frame.bytes().len() as u64;
        // Records kept for the subscriptions count against the queue until written; without
        // a subscriber or room for them they are let go (the frame is what is stored).
        let kept = frame.plain().map_or(0, |p| p.bytes() as u64);
        if kept > 0 && self.recent.wanted() && self.queue.has_room(size + kept) {
            size += kept;
        } else {
            drop(frame.take_plain());
        }
        reservation.resize(size);
        let (ack, rx) = oneshot::channel();
        self.tx
            .send(writer::Msg::Write {
                frame,
                ack,
                reservation,
            })
            .map_err(|_| StoreError::Closed)?;
        Ok(rx.await.map_err(|_| StoreError::Closed)??)
    }

    /// Closes the active segment once every frame queued before this call is written, if it
    /// holds any, and starts the next one; returns the closed segment's sequence number (`None`
    /// when the active segment was empty). Retention uses it so a quiet store's data can expire
    /// whole.
    pub async fn rotate(&self) -> Result<Option<u64>, StoreError> {
        let (ack, rx) = oneshot::channel();
        self.tx
            .send(writer::Msg::Rotate(ack))
            .map_err(|_| StoreError::Closed)?;
        Ok(rx.await.map_err(|_| StoreError::Closed)??)
    }
}

impl Store {
    /// Creates the data directory if needed, takes its lock, recovers the segments and starts
    /// the writer thread.
    pub fn open(data_dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        Store::open_in(StdFs, data_dir, opts)
    }

    /// [`Store::open`] with the segment files on `fs` (tests use a simulated file system).
    pub fn open_in<F: FileSystem>(
        fs: F,
        data_dir: &Path,
        opts: StoreOptions,
    ) -> Result<Store, StoreError> {
        let (w, dedup, ledger) = prepare_writer(fs, data_dir, &opts)?;
        let commits = w.commits();
        let closed = w.closed_segments();
        let recent = w.recent();
        let (tx, rx) = mpsc::unbounded_channel();
        let ticker_stop = start_ticker(tx.clone(), opts.integrity.checkpoint_interval)?;
        let thread = std::thread::Builder::new()
            .name("meshlog-writer".into())
            .spawn(move || w.run(rx))
            .map_err(|source| StoreError::Io {
                context: "starting the writer thread".into(),
                source,
            })?;
        Ok(Store {
            handle: StoreHandle {
                tx,
                queue: IngestQueue::new(opts.max_queue_bytes),
                dedup,
                encryption: opts.encryption,
                ledger,
                commits,
                recent,
                closed,
                store_dir: data_dir.to_owned(),
                segments_dir: data_dir.join(meshlog_format::layout::SEGMENTS_DIR),
            },
            thread: Some(thread),
            data_dir: data_dir.to_owned(),
            ticker_stop: Some(ticker_stop),
        })
    }

    /// A handle for appending.
    pub fn handle(&self) -> StoreHandle {
        self.handle.clone()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Finishes every queued write, stops the writer and releases the lock. Blocks: call it
    /// outside async code (or via `spawn_blocking`).
    pub fn close(mut self) -> Result<(), StoreError> {
        drop(self.ticker_stop.take());
        // If the writer is already gone the send fails; joining still reports a panic.
        let _ = self.handle.tx.send(writer::Msg::Close);
        match self.thread.take().map(|t| t.join()) {
            Some(Err(_)) => Err(StoreError::Closed),
            _ => Ok(()),
        }
    }
}

/// Everything [`Store::open`] does before the writer thread starts: creates the data directory
/// if needed, takes its lock, recovers the segments and opens the Merkle log; returns the writer
/// (not running yet), the dedup index it shares with the handles, and the Merkle log's stats.
#[allow(clippy::type_complexity)]
pub(crate) fn prepare_writer<F: FileSystem>(
    fs: F,
    data_dir: &Path,
    opts: &StoreOptions,
) -> Result<
    (
        writer::Writer<F>,
        Arc<SharedIndex>,
        Arc<ledger::LedgerStats>,
    ),
    StoreError,
> {
    let ctx = |what: &str, p: &Path| format!("{what} {}", p.display());
    std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
        context: ctx("creating data directory", data_dir),
        source,
    })?;
    let lock = lock_data_dir(data_dir)?;
    let segments_dir = data_dir.join(meshlog_format::layout::SEGMENTS_DIR);
    fs.create_dir_all(&segments_dir)
        .and_then(|()| fs.sync_dir(data_dir))
        .map_err(|source| StoreError::Io {
            context: ctx("creating", &segments_dir),
            source,
        })?;
    let dedup = Arc::new(SharedIndex::new(opts.dedup_window));
    let rec = recovery::recover_in(&fs, data_dir, &segments_dir, &dedup)?;
    tracing::info!(
        data_dir = %data_dir.display(),
        segments = rec.segments,
        bytes_cut = rec.cut_bytes,
        batch_ids = dedup.len(),
        dedup_window = opts.dedup_window,
        max_queue_bytes = opts.max_queue_bytes,
        "store open"
    );
    let leaves = LeafLog::open(data_dir, &segments_dir, &opts.integrity)?;
    let stats = leaves.stats();
    #[cfg(any(test, feature = "test-hooks"))]
    let pause = opts.pause.clone();
    #[cfg(not(any(test, feature = "test-hooks")))]
    let pause = None;
    let w = writer::Writer::new_in(
        fs,
        segments_dir,
        opts.segment_max_bytes,
        rec.active,
        lock,
        dedup.clone(),
        pause,
    )
    .with_integrity(leaves)
    .keep_recent(usize::try_from(opts.max_queue_bytes / RECENT_SHARE_OF_QUEUE).unwrap_or(0));
    Ok((w, dedup, stats))
}

/// Starts the thread that asks the writer for a checkpoint every `interval`; it stops when the
/// returned sender is dropped (or the writer is gone).
fn start_ticker(
    tx: mpsc::UnboundedSender<writer::Msg>,
    interval: std::time::Duration,
) -> Result<std::sync::mpsc::Sender<()>, StoreError> {
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("meshlog-checkpoints".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stop_rx.recv_timeout(interval)
            {
                if tx.send(writer::Msg::Checkpoint).is_err() {
                    break;
                }
            }
        })
        .map_err(|source| StoreError::Io {
            context: "starting the checkpoint thread".into(),
            source,
        })?;
    Ok(stop_tx)
}

/// Takes the exclusive lock on `DATA_DIR/LOCK` and writes our pid into it; held while the
/// returned file is open.
pub fn lock_data_dir(data_dir: &Path) -> Result<File, StoreError> {
    let path = data_dir.join(LOCK_FILE);
    let io = |what: &str| {
        let context = format!("{what} {}", path.display());
        move |source| StoreError::Io { context, source }
    };
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io("opening lock file"))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut s = String::new();
            let holder = f
                .read_to_string(&mut s)
                .ok()
                .map(|_| s.trim().to_owned())
                .filter(|s| !s.is_empty());
            return Err(StoreError::Locked {
                dir: data_dir.to_owned(),
                lock: path,
                holder,
            });
        }
        Err(TryLockError::Error(e)) => return Err(io("locking")(e)),
    }
    // The pid is only a hint for the error above; the lock is what counts. Overwritten in place
    // (then cut to length) so a restart on a full disk needs no new block, and a failure to
    // write it does not stop the collector.
    let pid = format!("{}\n", std::process::id());
    let written = f
        .seek(SeekFrom::Start(0))
        .and_then(|_| f.write_all(pid.as_bytes()))
        .and_then(|()| f.set_len(pid.len() as u64));
    if let Err(e) = written {
        tracing::warn!(lock = %path.display(), error = %e, "cannot write our pid into the lock file");
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlog_format::frame::{
        FRAME_HEADER_PREFIX_LEN, SEGMENT_HEADER_LEN, encode_frame, encode_frame_with_id,
    };
    use meshlog_format::reader::{self, SEGMENTS_DIR, read_all, segment_file_name};
    use serde_json::{Map, Value, json};

    fn frame(ids: &[u64]) -> EncodedFrame {
        let recs: Vec<Map<String, Value>> = ids
            .iter()
            .map(|i| {
                let Value::Object(m) = json!({ "i": i }) else {
                    unreachable!()
                };
                m
            })
            .collect();
        encode_frame(&recs).unwrap()
    }

    fn ids(data: &Path) -> Vec<u64> {
        read_all(data)
            .unwrap()
            .iter()
            .map(|r| r["i"].as_u64().unwrap())
            .collect()
    }

    /// Opens the store, appends one frame per entry of `frames`, closes it.
    fn write(data: &Path, frames: &[&[u64]], segment_max_bytes: u64) -> Vec<FrameLocation> {
        let store = Store::open(
            data,
            StoreOptions {
                segment_max_bytes,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let h = store.handle();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let locs = frames
            .iter()
            .map(|f| match rt.block_on(h.append(frame(f))).unwrap() {
                Appended::Stored(loc) => loc,
                Appended::Duplicate => panic!("a frame without batch id is never a duplicate"),
            })
            .collect();
        store.close().unwrap();
        locs
    }

    fn seg(data: &Path, seq: u64) -> PathBuf {
        data.join(SEGMENTS_DIR).join(segment_file_name(seq))
    }

    #[test]
    fn second_open_is_refused_while_the_first_runs_and_allowed_after() {
        let d = tempfile::tempdir().unwrap();
        let first = Store::open(d.path(), StoreOptions::default()).unwrap();
        let err = Store::open(d.path(), StoreOptions::default()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Locked { .. }), "{msg}");
        assert!(msg.contains("in use by another meshlog serve"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        first.close().unwrap();
        Store::open(d.path(), StoreOptions::default())
            .unwrap()
            .close()
            .unwrap();
    }

    #[test]
    fn reopening_continues_the_newest_segment_and_keeps_everything() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), &[&[0, 1], &[2]], 1 << 20);
        let locs = write(d.path(), &[&[3]], 1 << 20);
        assert_eq!(locs[0].segment, 1);
        assert!(locs[0].offset > SEGMENT_HEADER_LEN);
        assert_eq!(ids(d.path()), vec![0, 1, 2, 3]);
    }

    #[test]
    fn rotation_survives_reopen_and_sequence_continues() {
        let d = tempfile::tempdir().unwrap();
        // Every frame is larger than 10 bytes: each one gets its own segment.
        let locs = write(d.path(), &[&[0], &[1], &[2]], 10);
        assert_eq!(
            locs.iter().map(|l| l.segment).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        let locs = write(d.path(), &[&[3]], 10);
        assert_eq!(locs[0].segment, 4);
        assert_eq!(ids(d.path()), vec![0, 1, 2, 3]);
    }

    #[test]
    fn damage_in_an_older_segment_refuses_to_start_and_changes_nothing() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), &[&[0], &[1], &[2]], 10);
        let old = seg(d.path(), 2);
        let mut bytes = std::fs::read(&old).unwrap();
        bytes[SEGMENT_HEADER_LEN as usize + 9] ^= 0x40; // inside the frame header
        std::fs::write(&old, &bytes).unwrap();
        let err = Store::open(d.path(), StoreOptions::default()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("0000000000000002.seg"), "{msg}");
        assert!(
            msg.contains(&format!("offset {SEGMENT_HEADER_LEN}")),
            "{msg}"
        );
        assert!(msg.contains("refuses to start"), "{msg}");
        assert_eq!(
            std::fs::read(&old).unwrap(),
            bytes,
            "older segment untouched"
        );
    }

    #[test]
    fn a_newer_frame_version_in_the_newest_segment_is_refused_not_cut() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), &[&[0], &[1]], 1 << 20);
        let p = seg(d.path(), 1);
        let mut bytes = std::fs::read(&p).unwrap();
        // Rewrite the second frame's header as version 3 with a valid header CRC.
        let header_len = |at: usize| {
            meshlog_format::frame::frame_header_len(
                &bytes[at..at + FRAME_HEADER_PREFIX_LEN].try_into().unwrap(),
            )
            .unwrap()
        };
        let first_len = {
            let start = SEGMENT_HEADER_LEN as usize;
            let hlen = header_len(start);
            let h = &bytes[start..start + hlen];
            hlen + meshlog_format::frame::FrameHeader::decode(h)
                .unwrap()
                .payload_len as usize
        };
        let at = SEGMENT_HEADER_LEN as usize + first_len;
        let hlen = header_len(at);
        bytes[at + 4] = 3;
        let crc = crc32fast::hash(&bytes[at..at + hlen - 4]);
        bytes[at + hlen - 4..at + hlen].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&p, &bytes).unwrap();
        let msg = Store::open(d.path(), StoreOptions::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("unsupported frame format version 3"), "{msg}");
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "nothing cut");
    }

    fn with_id(i: u64, id: &str) -> EncodedFrame {
        let Value::Object(m) = json!({ "i": i }) else {
            unreachable!()
        };
        encode_frame_with_id([&m], Some(BatchId::parse(id.as_bytes()).unwrap())).unwrap()
    }

    #[test]
    fn batch_ids_survive_a_reopen_and_the_window_bounds_what_is_remembered() {
        let d = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let open = || {
            Store::open(
                d.path(),
                StoreOptions {
                    dedup_window: 2,
                    ..StoreOptions::default()
                },
            )
            .unwrap()
        };
        let store = open();
        let h = store.handle();
        let a = BatchId::parse(b"a").unwrap();
        assert!(!h.is_stored(&a));
        assert!(matches!(
            rt.block_on(h.append(with_id(0, "a"))).unwrap(),
            Appended::Stored(_)
        ));
        assert!(h.is_stored(&a));
        assert_eq!(
            rt.block_on(h.append(with_id(1, "a"))).unwrap(),
            Appended::Duplicate
        );
        store.close().unwrap();

        // Rebuilt from the frame headers.
        let store = open();
        let h = store.handle();
        assert!(h.is_stored(&a));
        assert_eq!(
            rt.block_on(h.append(with_id(2, "a"))).unwrap(),
            Appended::Duplicate
        );
        for (i, id) in [(3, "b"), (4, "c")] {
            assert!(matches!(
                rt.block_on(h.append(with_id(i, id))).unwrap(),
                Appended::Stored(_)
            ));
        }
        // Two newer ids pushed "a" out of a window of 2: a retry this late is stored again.
        assert!(!h.is_stored(&a));
        assert!(matches!(
            rt.block_on(h.append(with_id(5, "a"))).unwrap(),
            Appended::Stored(_)
        ));
        assert_eq!(h.queued_bytes(), 0);
        store.close().unwrap();
        assert_eq!(ids(d.path()), vec![0, 3, 4, 5]);
        let stored_ids: Vec<String> = reader::frames(d.path())
            .unwrap()
            .map(|f| f.unwrap().batch_id.unwrap().to_string())
            .collect();
        assert_eq!(stored_ids, ["a", "b", "c", "a"]);
    }

    #[test]
    fn a_full_queue_refuses_at_once_and_frees_up_after_the_fsync() {
        let d = tempfile::tempdir().unwrap();
        let pause = WriterPause::new();
        let store = Store::open(
            d.path(),
            StoreOptions {
                max_queue_bytes: 1,
                pause: Some(pause.clone()),
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let h = store.handle();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        pause.hold();
        let first = rt.spawn({
            let h = h.clone();
            async move { h.append(frame(&[1])).await }
        });
        assert!(pause.wait_until_paused(std::time::Duration::from_secs(10)));
        // A lone batch larger than the budget got in; the next one does not.
        let err = rt.block_on(h.append(frame(&[2]))).unwrap_err();
        assert!(matches!(err, StoreError::Busy(_)), "{err}");
        assert!(h.check_room().is_err());
        pause.release();
        assert!(matches!(
            rt.block_on(first).unwrap().unwrap(),
            Appended::Stored(_)
        ));
        assert_eq!(h.queued_bytes(), 0);
        assert!(matches!(
            rt.block_on(h.append(frame(&[2]))).unwrap(),
            Appended::Stored(_)
        ));
        store.close().unwrap();
        assert_eq!(ids(d.path()), vec![1, 2]);
    }

    #[test]
    fn an_encrypted_store_refuses_plain_frames_and_recovers_without_the_key() {
        use meshlog_format::frame::FrameBuilder;
        use meshlog_tlog::keys::{DataKey, Keyring};
        let d = tempfile::tempdir().unwrap();
        let keyring = Arc::new(Keyring::new(vec![DataKey::new("k", [3; 32]).unwrap()]).unwrap());
        let opts = StoreOptions {
            encryption: Some(keyring.clone()),
            ..StoreOptions::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let store = Store::open(d.path(), opts).unwrap();
        let h = store.handle();
        assert!(Arc::ptr_eq(h.keyring().unwrap(), &keyring));
        let err = rt.block_on(h.append(frame(&[1]))).unwrap_err();
        assert!(matches!(err, StoreError::NotSealed), "{err}");
        let sealed = |i: u64, id: &str| {
            let id = BatchId::parse(id.as_bytes()).unwrap();
            let mut b =
                FrameBuilder::with_encryption(u64::MAX, Some(id), h.keyring().cloned()).unwrap();
            let Value::Object(m) = json!({ "i": i }) else {
                unreachable!()
            };
            b.push(&m).unwrap();
            b.finish().unwrap()
        };
        assert!(matches!(
            rt.block_on(h.append(sealed(2, "b-1"))).unwrap(),
            Appended::Stored(_)
        ));
        store.close().unwrap();
        // Recovery and the dedup index work from headers alone: no key needed.
        let store = Store::open(d.path(), StoreOptions::default()).unwrap();
        let h2 = store.handle();
        assert!(h2.is_stored(&BatchId::parse(b"b-1").unwrap()));
        store.close().unwrap();
        let keys = meshlog_format::encryption::DataKeys::new(
            Keyring::new(vec![DataKey::new("k", [3; 32]).unwrap()]).unwrap(),
            "k.keys".into(),
        );
        let records: Vec<u64> = reader::frames(d.path())
            .unwrap()
            .with_keys(Some(keys))
            .flat_map(|f| f.unwrap().records().unwrap())
            .map(|r| r["i"].as_u64().unwrap())
            .collect();
        assert_eq!(records, [2], "the plain frame was not stored");
    }

    #[test]
    fn rotate_closes_a_segment_with_frames_and_keeps_an_empty_one() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path(), StoreOptions::default()).unwrap();
        let h = store.handle();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(
            rt.block_on(h.rotate()).unwrap(),
            None,
            "empty: nothing to close"
        );
        let stored = |i| match rt.block_on(h.append(frame(&[i]))).unwrap() {
            Appended::Stored(loc) => loc.segment,
            Appended::Duplicate => panic!("no batch id"),
        };
        let closed = h.closed_segments();
        assert_eq!(*closed.borrow(), 0, "nothing closed yet");
        assert_eq!(stored(0), 1);
        assert_eq!(rt.block_on(h.rotate()).unwrap(), Some(1));
        assert_eq!(*closed.borrow(), 1, "the close is published");
        assert_eq!(rt.block_on(h.rotate()).unwrap(), None);
        assert_eq!(stored(1), 2);
        assert_eq!(h.store_dir(), d.path());
        store.close().unwrap();
        // Reopened: every segment before the active one is closed.
        let store = Store::open(d.path(), StoreOptions::default()).unwrap();
        assert_eq!(*store.handle().closed_segments().borrow(), 1);
        store.close().unwrap();
        let segs = reader::list_segments(&d.path().join(SEGMENTS_DIR)).unwrap();
        assert_eq!(segs.iter().map(|s| s.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(ids(d.path()), vec![0, 1]);
    }

    #[test]
    fn a_torn_segment_header_in_the_newest_segment_is_rewritten() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), &[&[0]], 10);
        // A crash during rotation: segment 2 exists with half a header.
        std::fs::write(seg(d.path(), 2), b"MLS").unwrap();
        let locs = write(d.path(), &[&[1]], 1 << 20);
        assert_eq!(
            locs[0],
            FrameLocation {
                segment: 2,
                offset: SEGMENT_HEADER_LEN
            }
        );
        assert_eq!(ids(d.path()), vec![0, 1]);
    }

    #[test]
    fn a_foreign_file_as_newest_segment_is_refused() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), &[&[0]], 1 << 20);
        std::fs::write(seg(d.path(), 2), b"this is not a segment").unwrap();
        let msg = Store::open(d.path(), StoreOptions::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("not a meshlog segment"), "{msg}");
    }
}
