//! The single writer thread: owns the active segment, appends frames, group-commits with one
//! `sync_data` per batch of queued requests, and only then acknowledges.
//!
//! One thread, because appends to one file are serial anyway and a plain thread keeps blocking
//! file I/O off the async runtime. Group commit, because fsync dominates the cost of a write:
//! N concurrent requests cost one fsync, not N. Invariants:
//! - an `Ok` ack means the frame is on disk (the file's data was synced after it was written);
//! - a failed write is rolled back (the file is cut to where the frame began) so nothing after
//!   it lands behind garbage; if the rollback itself fails the writer refuses all further writes
//!   (poisoned) rather than append behind bytes it cannot account for;
//! - a segment is synced before the next one is created, so only the newest can have a torn
//!   tail, which is what recovery relies on.

use super::format::{EncodedFrame, SEGMENT_HEADER_LEN, segment_header};
use super::reader::segment_file_name;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot};

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

/// Why a frame was not stored. The text is for logs, not for clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WriteError(pub String);

/// The answer to one write request.
pub type Ack = oneshot::Sender<Result<FrameLocation, WriteError>>;

/// A message to the writer thread.
#[derive(Debug)]
pub enum Msg {
    /// Append a frame and acknowledge once durable.
    Write {
        /// The frame.
        frame: EncodedFrame,
        /// Where the answer goes.
        ack: Ack,
    },
    /// Finish everything queued before this message, then stop.
    Close,
}

/// The segment being appended to.
#[derive(Debug)]
pub struct Active {
    /// Open for writing, positioned at `len`.
    pub file: File,
    /// Sequence number.
    pub seq: u64,
    /// Path, for messages.
    pub path: PathBuf,
    /// Bytes of header and complete frames written.
    pub len: u64,
    /// Bytes known to be on disk.
    pub synced_len: u64,
}

/// fsyncs a directory so a file created or renamed in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates segment `seq` with its header, durably (file and directory entry).
pub fn create_segment(dir: &Path, seq: u64) -> io::Result<Active> {
    let path = dir.join(segment_file_name(seq));
    let made = (|| {
        // Truncate, not create_new: a file with this name can only be the remains of our own
        // failed rotation (we hold the lock and `seq` is past the newest segment at start).
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        f.write_all(&segment_header())?;
        f.sync_all()?;
        sync_dir(dir)?;
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
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

/// The writer thread's state.
#[derive(Debug)]
pub struct Writer {
    segments_dir: PathBuf,
    segment_max_bytes: u64,
    active: Active,
    pending: Vec<(Ack, FrameLocation)>,
    poisoned: Option<String>,
    // Held for the life of the writer: the data directory is ours while it runs.
    _lock: File,
}

impl Writer {
    /// A writer appending to `active`.
    pub fn new(segments_dir: PathBuf, segment_max_bytes: u64, active: Active, lock: File) -> Self {
        Writer {
            segments_dir,
            segment_max_bytes,
            active,
            pending: Vec::new(),
            poisoned: None,
            _lock: lock,
        }
    }

    /// Serves `rx` until a `Close` message or until every sender is gone.
    pub fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(first) = rx.blocking_recv() {
            let mut close = false;
            let mut group = Vec::new();
            let mut bytes = 0;
            match first {
                Msg::Close => close = true,
                Msg::Write { frame, ack } => {
                    bytes += frame.bytes().len();
                    group.push((frame, ack));
                }
            }
            while !close && group.len() < MAX_GROUP_FRAMES && bytes < MAX_GROUP_BYTES {
                match rx.try_recv() {
                    Ok(Msg::Write { frame, ack }) => {
                        bytes += frame.bytes().len();
                        group.push((frame, ack));
                    }
                    Ok(Msg::Close) => close = true,
                    Err(_) => break,
                }
            }
            for (frame, ack) in group {
                self.write_one(&frame, ack);
            }
            self.commit();
            if close {
                break;
            }
        }
        tracing::debug!(segment = %self.active.path.display(), len = self.active.len, "writer stopped");
    }

    fn write_one(&mut self, frame: &EncodedFrame, ack: Ack) {
        if let Some(why) = &self.poisoned {
            let _ = ack.send(Err(WriteError(format!("store is unusable: {why}"))));
            return;
        }
        let size = frame.bytes().len() as u64;
        if self.active.len > SEGMENT_HEADER_LEN
            && self.active.len.saturating_add(size) > self.segment_max_bytes
        {
            // Seal the full segment first: only the newest may ever have an unsynced tail.
            self.commit();
            if let Some(why) = &self.poisoned {
                let _ = ack.send(Err(WriteError(format!("store is unusable: {why}"))));
                return;
            }
            match create_segment(&self.segments_dir, self.active.seq + 1) {
                Ok(next) => {
                    tracing::info!(segment = %next.path.display(), "rotated to a new segment");
                    self.active = next;
                }
                Err(e) => {
                    // Keep appending to the current segment; the next write tries again.
                    tracing::error!(error = %e, "cannot create segment {}", self.active.seq + 1);
                    let _ = ack.send(Err(WriteError(format!("creating a segment: {e}"))));
                    return;
                }
            }
        }
        let offset = self.active.len;
        match self.active.file.write_all(frame.bytes()) {
            Ok(()) => {
                self.active.len += size;
                let loc = FrameLocation {
                    segment: self.active.seq,
                    offset,
                };
                self.pending.push((ack, loc));
            }
            Err(e) => {
                tracing::error!(
                    segment = %self.active.path.display(),
                    offset,
                    error = %e,
                    "writing a frame failed; rolling it back"
                );
                let _ = ack.send(Err(WriteError(format!("writing a frame: {e}"))));
                self.roll_back(offset);
            }
        }
    }

    /// Makes everything written durable and answers the waiting requests.
    fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let result = self.active.file.sync_data();
        let pending = std::mem::take(&mut self.pending);
        match result {
            Ok(()) => {
                self.active.synced_len = self.active.len;
                for (ack, loc) in pending {
                    // A requester that went away (client disconnected) is fine: it is stored.
                    let _ = ack.send(Ok(loc));
                }
            }
            Err(e) => {
                tracing::error!(
                    segment = %self.active.path.display(),
                    error = %e,
                    frames = pending.len(),
                    "fsync failed; none of these frames is acknowledged"
                );
                for (ack, _) in pending {
                    let _ = ack.send(Err(WriteError(format!("fsync: {e}"))));
                }
                // After a failed fsync the page cache no longer tells what is on disk: cut back
                // to what an earlier fsync confirmed.
                let synced = self.active.synced_len;
                self.roll_back(synced);
            }
        }
    }

    /// Cuts the active segment back to `len` and syncs; poisons the writer if that fails.
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::format::encode_frame;
    use crate::store::reader::{SegmentScanner, list_segments};
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

    fn frame(i: u64, pad: usize) -> EncodedFrame {
        let Value::Object(m) = json!({ "i": i, "pad": noise(i, pad) }) else {
            unreachable!()
        };
        let recs: Vec<Map<String, Value>> = vec![m];
        encode_frame(&recs).unwrap()
    }

    fn start(dir: &Path, max: u64) -> (mpsc::Sender<Msg>, std::thread::JoinHandle<()>) {
        let active = create_segment(dir, 1).unwrap();
        let lock = File::create(dir.join("LOCK")).unwrap();
        let w = Writer::new(dir.to_owned(), max, active, lock);
        let (tx, rx) = mpsc::channel(16);
        (tx, std::thread::spawn(move || w.run(rx)))
    }

    #[test]
    fn acks_carry_locations_and_segments_rotate_past_the_limit() {
        let d = tempfile::tempdir().unwrap();
        let (tx, th) = start(d.path(), 600);
        let mut locs = Vec::new();
        for i in 0..6 {
            let (ack, rx) = oneshot::channel();
            tx.blocking_send(Msg::Write {
                frame: frame(i, 200 + i as usize),
                ack,
            })
            .unwrap();
            locs.push(rx.blocking_recv().unwrap().unwrap());
        }
        tx.blocking_send(Msg::Close).unwrap();
        th.join().unwrap();
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
    }

    #[test]
    fn dropping_every_sender_stops_the_writer_after_finishing_the_queue() {
        let d = tempfile::tempdir().unwrap();
        let (tx, th) = start(d.path(), 1 << 20);
        let (ack, rx) = oneshot::channel();
        tx.blocking_send(Msg::Write {
            frame: frame(1, 1),
            ack,
        })
        .unwrap();
        drop(tx);
        th.join().unwrap();
        assert!(rx.blocking_recv().unwrap().is_ok());
    }
}
