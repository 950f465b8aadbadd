//! The subscription to committed records: one backbone for the live tail (`GET /api/v1/tail`),
//! detection and the ClickHouse sink.
//!
//! A record's [`Position`] is its frame's leaf index in the store's Merkle log (frames counted
//! from the first ever written, the number stamped into every frame header) and its index among
//! the frame's records. Positions are assigned once, by the writer, and survive restarts,
//! retention and reopening: the same position names the same record for the life of the log.
//!
//! [`StoreHandle::subscribe`](crate::StoreHandle::subscribe) starts a [`Subscription`] at any
//! position. It reads older positions from the segment files, then follows new ones: the writer
//! publishes its committed leaf count after each successful fsync and before it answers the
//! batches of that fsync, and the subscription only ever reads frames below that count.
//!
//! What a consumer may rely on:
//! - **Only acknowledged data.** Every record delivered was fsync'd; a batch that failed is never
//!   seen. Subscribers are woken for a batch before its client gets the answer.
//! - **In order, once.** Records come in position order, each exactly once per subscription;
//!   subscribing again from the position after the last one handled (also after a collector
//!   restart, from a new [`Store`](crate::Store) on the same directory) continues with no gap and
//!   no duplicate.
//! - **Gaps are said.** Leaves no longer in the store (retention deleted their segment) are
//!   reported as one [`TailEvent::Gap`], never skipped silently.
//! - **Bounded memory.** A subscription holds one open segment file and the records of one
//!   frame; nothing is queued per subscriber. One that falls behind simply reads from disk when it
//!   next asks; [`Subscription::behind`] says by how many leaves, and
//!   [`Subscription::skip_to_live`] jumps to the newest committed position, returning how many
//!   records it skipped (what the live tail tells a consumer too slow to keep up).
//! - **Encrypted stores** are read with the store's data keys (the handle's keyring).
//!
//! The subscription reads small frames from the page cache with ordinary blocking reads inside
//! [`Subscription::next`]; a frame is at most a batch, so each call blocks only briefly.
//!
//! [`merged`] follows several stores (the retention classes) as one stream.

pub mod merged;
pub mod recent;

use crate::writer::WriteError;
use bytes::Bytes;
use meshlog_format::frame::PlainRecords;
use meshlog_format::frame::{
    Damage, FRAME_HEADER_PREFIX_LEN, FrameHeader, SEGMENT_HEADER_LEN, frame_header_len,
};
use meshlog_format::reader::list_segments;
use meshlog_tlog::keys::Keyring;
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use tokio::sync::watch;

/// A record's place in the log: its frame's leaf index and its index among the frame's records.
/// Written `LEAF:RECORD` (e.g. `1042:3`); ordered by leaf, then record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// Leaf index of the frame (frames counted from the first ever written, from 0).
    pub leaf: u64,
    /// Index of the record in the frame, from 0.
    pub record: u32,
}

impl Position {
    /// The first position of the log.
    pub const START: Position = Position { leaf: 0, record: 0 };

    /// The first record of leaf `leaf`.
    pub fn leaf(leaf: u64) -> Position {
        Position { leaf, record: 0 }
    }

    /// The position just after this one (the next record of the same frame; a frame with fewer
    /// records simply continues with the next leaf). Resuming after the last position handled
    /// is `subscribe(last.after())`.
    pub fn after(self) -> Position {
        match self.record.checked_add(1) {
            Some(record) => Position {
                leaf: self.leaf,
                record,
            },
            None => Position::leaf(self.leaf.saturating_add(1)),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.leaf, self.record)
    }
}

/// A position that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a log position (LEAF:RECORD, two non-negative integers, e.g. 1042:3)")]
pub struct BadPosition(pub String);

impl FromStr for Position {
    type Err = BadPosition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPosition(s.to_owned());
        let (leaf, record) = s.split_once(':').ok_or_else(bad)?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(leaf) || !digits(record) {
            return Err(bad());
        }
        Ok(Position {
            leaf: leaf.parse().map_err(|_| bad())?,
            record: record.parse().map_err(|_| bad())?,
        })
    }
}

/// One committed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailRecord {
    /// Where it is in the log.
    pub position: Position,
    /// The record as stored: one JSON object, no newline (shared with its frame when it came
    /// from memory).
    pub json: Bytes,
    /// Its member index when the record came from memory with one (see
    /// [`PlainRecords`]); empty otherwise.
    pub members: Members,
    /// Its shape token with the member index (0: none).
    pub shape: u64,
}

/// A record's member index ([`PlainRecords`]), shared with its frame: reads as `[u32]`, empty
/// when not known.
#[derive(Clone, Default)]
pub struct Members {
    frame: Option<Arc<PlainRecords>>,
    range: std::ops::Range<usize>,
}

impl std::ops::Deref for Members {
    type Target = [u32];

    fn deref(&self) -> &[u32] {
        match &self.frame {
            Some(f) => f.members_of(self.range.clone()),
            None => &[],
        }
    }
}

impl fmt::Debug for Members {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Members {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Members {}

impl TailRecord {
    /// The record parsed.
    pub fn record(&self) -> Result<Map<String, Value>, serde_json::Error> {
        serde_json::from_slice(&self.json)
    }
}

/// What a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailEvent {
    /// The next committed record.
    Record(TailRecord),
    /// Leaves `from.leaf .. to.leaf` are no longer in the store (retention deleted their
    /// segments, keeping only their leaf hashes); the next record is at `to` or later.
    Gap {
        /// The first position that was asked for and is gone.
        from: Position,
        /// The first position still stored.
        to: Position,
    },
}

/// Why a subscription cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// The store was closed (the collector is stopping).
    #[error("the store was closed")]
    Closed,
    /// Reading a segment failed.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The segment or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A committed frame does not read back as written.
    #[error("segment {} is damaged at offset {offset}: {reason}", path.display())]
    Damaged {
        /// The segment.
        path: PathBuf,
        /// Byte offset of the frame.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

impl From<WriteError> for TailError {
    fn from(e: WriteError) -> Self {
        TailError::Io {
            path: PathBuf::new(),
            source: io::Error::other(e.to_string()),
        }
    }
}

/// The open segment a subscription reads.
#[derive(Debug)]
struct Cursor {
    seq: u64,
    path: PathBuf,
    file: File,
    /// Offset of the next frame to read.
    offset: u64,
    /// Leaf index the next frame is expected to have (frames without a chain stamp, written
    /// before there was one, are counted).
    next_leaf: Option<u64>,
}

/// A frame header read at a cursor.
struct RawHeader {
    header: FrameHeader,
    header_len: u64,
    leaf: u64,
}

/// A subscription to committed records from a position on. See the [module](self) docs.
#[derive(Debug)]
pub struct Subscription {
    segments_dir: PathBuf,
    keyring: Option<Arc<Keyring>>,
    commits: watch::Receiver<u64>,
    /// The next position to deliver.
    next: Position,
    cursor: Option<Cursor>,
    /// Records of the frame at `next.leaf` from `next.record` on, read from its segment.
    buffered: VecDeque<Vec<u8>>,
    /// The frame at `next.leaf` taken from memory, when it was (read from `next.record`).
    held: Option<Arc<PlainRecords>>,
    /// Whether `buffered` or `held` holds the frame at `next.leaf`.
    loaded: bool,
    /// The writer's newest committed frames, read before the segment files.
    recent: Option<recent::Subscriber>,
    /// Frames taken from memory and from the files, in that order.
    frames_read: (u64, u64),
}

impl Subscription {
    pub(crate) fn new(
        segments_dir: PathBuf,
        keyring: Option<Arc<Keyring>>,
        commits: watch::Receiver<u64>,
        from: Position,
    ) -> Self {
        Subscription {
            segments_dir,
            keyring,
            commits,
            next: from,
            cursor: None,
            buffered: VecDeque::new(),
            held: None,
            loaded: false,
            recent: None,
            frames_read: (0, 0),
        }
    }

    /// Takes frames the writer still holds from memory ([`recent`]) rather than the files.
    pub(crate) fn with_recent(mut self, held: &Arc<recent::Recent>) -> Self {
        self.recent = Some(held.subscriber());
        self
    }

    /// A subscription over a store directory this process does not write (`meshlog sink
    /// check` reading a collector's store while it runs): it delivers frames below `committed`
    /// leaves, then ends with [`TailError::Closed`]. A frame still being written past the last
    /// one the caller knows committed reads as short, i.e. as damage at the end: pick
    /// `committed` from what is known durable (a checkpoint, what a sink exported).
    pub fn at_rest(
        store_dir: &Path,
        keyring: Option<Arc<Keyring>>,
        committed: u64,
        from: Position,
    ) -> Self {
        let (tx, rx) = watch::channel(committed);
        drop(tx);
        Subscription::new(
            meshlog_format::layout::segments_dir(store_dir),
            keyring,
            rx,
            from,
        )
    }

    /// The next position this subscription will deliver (where a new subscription resumes).
    pub fn position(&self) -> Position {
        self.next
    }

    /// Frames durably written so far: the position `leaf:0` of the next frame to commit.
    pub fn committed_end(&self) -> Position {
        Position::leaf(*self.commits.borrow())
    }

    /// Frames delivered so far taken from memory ([`recent`]) and read from the segment
    /// files, in that order.
    pub fn frames_read(&self) -> (u64, u64) {
        self.frames_read
    }

    /// How many committed leaves (frames) lie at or after [`position`](Self::position).
    pub fn behind(&self) -> u64 {
        self.commits.borrow().saturating_sub(self.next.leaf)
    }

    /// The next committed record (or gap), waiting for one when there is none yet. Cancel-safe:
    /// dropping the future loses nothing. `Err(Closed)` once the store is closed and every
    /// committed record has been delivered.
    pub async fn next(&mut self) -> Result<TailEvent, TailError> {
        loop {
            if let Some(ev) = self.try_next()? {
                return Ok(ev);
            }
            // `changed` also returns when a commit happened since the last look.
            if self.commits.changed().await.is_err() {
                // Closed: deliver what was committed before it.
                return match self.try_next()? {
                    Some(ev) => Ok(ev),
                    None => Err(TailError::Closed),
                };
            }
        }
    }

    /// The next committed record (or gap) if there is one now, without waiting.
    pub fn try_next(&mut self) -> Result<Option<TailEvent>, TailError> {
        loop {
            let committed = *self.commits.borrow_and_update();
            if self.loaded {
                let record =
                    match &self.held {
                        Some(frame) => frame.line_bytes(self.next.record as usize).map(
                            |(json, range, shape)| TailRecord {
                                position: self.next,
                                json,
                                members: Members {
                                    frame: Some(Arc::clone(frame)),
                                    range,
                                },
                                shape,
                            },
                        ),
                        None => self.buffered.pop_front().map(|json| TailRecord {
                            position: self.next,
                            json: Bytes::from(json),
                            members: Members::default(),
                            shape: 0,
                        }),
                    };
                if let Some(record) = record {
                    self.next = self.next.after();
                    return Ok(Some(TailEvent::Record(record)));
                }
                self.held = None;
                // The frame is done: on to the next leaf.
                self.loaded = false;
                self.next = Position::leaf(self.next.leaf.saturating_add(1));
            }
            if self.next.leaf >= committed {
                return Ok(None);
            }
            if let Some(gap) = self.load(committed)? {
                return Ok(Some(gap));
            }
        }
    }

    /// Jumps to the newest committed position, skipping what lies between; returns how many
    /// records were skipped (frames in deleted segments are not counted: their record counts
    /// are gone with them).
    pub fn skip_to_live(&mut self) -> Result<u64, TailError> {
        let committed = *self.commits.borrow_and_update();
        let mut skipped = 0u64;
        if self.loaded {
            skipped += match self.held.take() {
                Some(frame) => (frame.len() as u64).saturating_sub(u64::from(self.next.record)),
                None => self.buffered.len() as u64,
            };
            self.buffered.clear();
            self.loaded = false;
            self.next = Position::leaf(self.next.leaf.saturating_add(1));
        }
        if self.next.leaf < committed {
            if self.next.record > 0 {
                // Part of this frame was delivered: count only the rest.
                if let Some(h) = self.seek(self.next.leaf)? {
                    skipped += u64::from(h.header.record_count)
                        .saturating_sub(u64::from(self.next.record));
                    self.advance(&h);
                }
                self.next = Position::leaf(self.next.leaf.saturating_add(1));
            }
            while self.next.leaf < committed {
                match self.seek(self.next.leaf)? {
                    // A frame at or past the committed end may still be being written.
                    Some(h) if h.leaf >= committed => break,
                    Some(h) => {
                        skipped += u64::from(h.header.record_count);
                        self.next = Position::leaf(h.leaf.saturating_add(1));
                        self.advance(&h);
                    }
                    None => break,
                }
            }
        }
        self.next = Position::leaf(committed.max(self.next.leaf));
        Ok(skipped)
    }

    /// Loads the frame at `next.leaf` into `buffered` (or reports a gap before it).
    fn load(&mut self, committed: u64) -> Result<Option<TailEvent>, TailError> {
        let want = self.next.leaf;
        if let Some(sub) = &self.recent {
            // What this subscription passed the writer may let go.
            sub.taken_below(want);
        }
        if let Some(held) = self.recent.as_ref().and_then(|r| r.recent().get(want)) {
            self.buffered.clear();
            self.held = Some(held);
            self.loaded = true;
            self.frames_read.0 += 1;
            // The file cursor did not move with it: a later read from the files finds its
            // segment again.
            self.cursor = None;
            return Ok(None);
        }
        let Some(h) = self.seek(want)? else {
            // Nothing stored from `want` to the committed end: retention took it all.
            let from = self.next;
            self.next = Position::leaf(committed);
            return Ok(Some(TailEvent::Gap {
                from,
                to: self.next,
            }));
        };
        if h.leaf > want {
            let from = self.next;
            self.next = Position::leaf(h.leaf);
            return Ok(Some(TailEvent::Gap {
                from,
                to: self.next,
            }));
        }
        let lines = self.read_records(&h)?;
        self.frames_read.1 += 1;
        self.advance(&h);
        let skip = (self.next.record as usize).min(lines.len());
        self.held = None;
        self.buffered = lines.into_iter().skip(skip).collect();
        self.loaded = true;
        Ok(None)
    }

    /// Moves the cursor past the frame `h` (whose header it points at).
    fn advance(&mut self, h: &RawHeader) {
        if let Some(c) = &mut self.cursor {
            c.offset += h.header_len + u64::from(h.header.payload_len);
            c.next_leaf = Some(h.leaf.saturating_add(1));
        }
    }

    /// Points the cursor at the first stored frame with leaf index `>= leaf` and returns its
    /// header; `None` when no stored frame is at or after it.
    fn seek(&mut self, leaf: u64) -> Result<Option<RawHeader>, TailError> {
        if self
            .cursor
            .as_ref()
            .is_none_or(|c| c.next_leaf.is_some_and(|n| n > leaf))
        {
            self.cursor = self.locate(leaf)?;
        }
        loop {
            let Some(c) = &mut self.cursor else {
                return Ok(None);
            };
            match read_header(c)? {
                Some(h) if h.leaf < leaf => {
                    c.offset += h.header_len + u64::from(h.header.payload_len);
                    c.next_leaf = Some(h.leaf.saturating_add(1));
                }
                Some(h) => return Ok(Some(h)),
                None => {
                    // End of this segment: the next one (by sequence number) continues.
                    let seq = c.seq;
                    let next_leaf = c.next_leaf;
                    self.cursor = self.open_after(seq)?;
                    if let Some(n) = &mut self.cursor {
                        n.next_leaf = n.next_leaf.or(next_leaf);
                    }
                }
            }
        }
    }

    /// The segment holding `leaf` (the last one whose first frame is at or before it), or the
    /// first one when every stored frame comes after it.
    fn locate(&self, leaf: u64) -> Result<Option<Cursor>, TailError> {
        let dir = &self.segments_dir;
        let segs = list_segments(dir).map_err(|source| TailError::Io {
            path: dir.clone(),
            source,
        })?;
        // First leaf of each segment, `u64::MAX` for one without frames (only the newest).
        let first = |i: usize| -> Result<u64, TailError> {
            let Some(s) = segs.get(i) else {
                return Ok(u64::MAX);
            };
            let Some(mut c) = open_cursor(s.seq, &s.path)? else {
                return Ok(u64::MAX);
            };
            Ok(read_header(&mut c)?.map_or(u64::MAX, |h| h.leaf))
        };
        // Binary search for the last segment whose first leaf is <= leaf.
        let (mut lo, mut hi) = (0usize, segs.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if first(mid)? <= leaf {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let pick = lo.saturating_sub(1);
        match segs.get(pick) {
            Some(s) => open_cursor(s.seq, &s.path),
            None => Ok(None),
        }
    }

    /// The first segment after `seq`, at its first frame.
    fn open_after(&self, seq: u64) -> Result<Option<Cursor>, TailError> {
        let dir = &self.segments_dir;
        let segs = list_segments(dir).map_err(|source| TailError::Io {
            path: dir.clone(),
            source,
        })?;
        match segs.iter().find(|s| s.seq > seq) {
            Some(s) => open_cursor(s.seq, &s.path),
            None => Ok(None),
        }
    }

    /// The records of the frame whose header the cursor points at, as JSON lines.
    fn read_records(&mut self, h: &RawHeader) -> Result<Vec<Vec<u8>>, TailError> {
        let Some(c) = &mut self.cursor else {
            return Ok(Vec::new());
        };
        let at = c.offset + h.header_len;
        let damaged = |reason: String| TailError::Damaged {
            path: c.path.clone(),
            offset: c.offset,
            reason,
        };
        let mut payload = vec![0u8; h.header.payload_len as usize];
        c.file
            .seek(SeekFrom::Start(at))
            .and_then(|_| c.file.read_exact(&mut payload))
            .map_err(|e| damaged(format!("reading the payload: {e}")))?;
        let computed = crc32fast::hash(&payload);
        if computed != h.header.payload_crc {
            return Err(damaged(
                Damage::PayloadCrc {
                    stored: h.header.payload_crc,
                    computed,
                }
                .to_string(),
            ));
        }
        let plain = match (&self.keyring, h.header.extensions.sealing.is_some()) {
            (_, false) => payload,
            (Some(ring), true) => match h.header.open_payload(ring, &payload) {
                Some(Ok(p)) => p,
                Some(Err(e)) => return Err(damaged(format!("opening the sealed payload: {e}"))),
                None => payload,
            },
            (None, true) => {
                return Err(damaged(
                    "the frame is sealed and the store has no data keys".into(),
                ));
            }
        };
        let dec = zstd::stream::read::Decoder::new(plain.as_slice())
            .map_err(|e| damaged(format!("zstd: {e}")))?;
        let mut out = Vec::with_capacity(h.header.record_count as usize);
        for line in BufReader::new(dec).split(b'\n') {
            out.push(line.map_err(|e| damaged(format!("zstd: {e}")))?);
        }
        if out.len() != h.header.record_count as usize {
            return Err(damaged(format!(
                "header promises {} records, payload has {}",
                h.header.record_count,
                out.len()
            )));
        }
        Ok(out)
    }
}

/// Opens segment `seq` at its first frame; `None` if it vanished (retention) or is a segment
/// being created whose header is not complete.
fn open_cursor(seq: u64, path: &Path) -> Result<Option<Cursor>, TailError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TailError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let len = file
        .metadata()
        .map_err(|source| TailError::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    if len < SEGMENT_HEADER_LEN {
        return Ok(None);
    }
    Ok(Some(Cursor {
        seq,
        path: path.to_owned(),
        file,
        offset: SEGMENT_HEADER_LEN,
        next_leaf: None,
    }))
}

/// The frame header at the cursor; `None` at the end of the segment's complete frames.
fn read_header(c: &mut Cursor) -> Result<Option<RawHeader>, TailError> {
    let io_err = |source| TailError::Io {
        path: c.path.clone(),
        source,
    };
    c.file.seek(SeekFrom::Start(c.offset)).map_err(io_err)?;
    let mut prefix = [0u8; FRAME_HEADER_PREFIX_LEN];
    if read_up_to(&mut c.file, &mut prefix).map_err(io_err)? < FRAME_HEADER_PREFIX_LEN {
        // The end, or a frame being written that is not committed yet.
        return Ok(None);
    }
    let damaged = |reason: String| TailError::Damaged {
        path: c.path.clone(),
        offset: c.offset,
        reason,
    };
    let header_len = frame_header_len(&prefix).map_err(|d| damaged(d.to_string()))?;
    let mut bytes = prefix.to_vec();
    bytes.resize(header_len, 0);
    let rest = bytes.get_mut(FRAME_HEADER_PREFIX_LEN..).unwrap_or_default();
    if read_up_to(&mut c.file, rest).map_err(io_err)? < rest.len() {
        return Ok(None);
    }
    let header = FrameHeader::decode(&bytes).map_err(|d| damaged(d.to_string()))?;
    let leaf = header
        .extensions
        .chain
        .as_ref()
        .map(|ch| ch.leaf_index)
        .or(c.next_leaf)
        .unwrap_or(0);
    Ok(Some(RawHeader {
        header,
        header_len: header_len as u64,
        leaf,
    }))
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while let Some(rest) = buf.get_mut(n..).filter(|b| !b.is_empty()) {
        match r.read(rest) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Appended, Store, StoreHandle, StoreOptions};
    use meshlog_format::frame::{EncodedFrame, FrameBuilder, encode_frame};
    use serde_json::json;
    use std::time::Duration;

    /// A frame as ingest builds it: its records kept for the subscriptions ([`recent`]).
    fn frame(ids: &[u64]) -> EncodedFrame {
        let mut b = FrameBuilder::new(u64::MAX, None).unwrap();
        b.keep_records();
        for i in ids {
            let Value::Object(m) = json!({ "i": i }) else {
                unreachable!()
            };
            b.push(&m).unwrap();
        }
        b.finish().unwrap()
    }

    /// A frame without its records kept: subscriptions read it from the segment file.
    fn file_only_frame(ids: &[u64]) -> EncodedFrame {
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

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    fn open(dir: &Path, segment_max_bytes: u64) -> Store {
        Store::open(
            dir,
            StoreOptions {
                segment_max_bytes,
                ..StoreOptions::default()
            },
        )
        .unwrap()
    }

    async fn append(h: &StoreHandle, ids: &[u64]) {
        assert!(matches!(
            h.append(frame(ids)).await.unwrap(),
            Appended::Stored(_)
        ));
    }

    fn id(ev: &TailEvent) -> (Position, u64) {
        match ev {
            TailEvent::Record(r) => (r.position, r.record().unwrap()["i"].as_u64().unwrap()),
            TailEvent::Gap { .. } => panic!("unexpected gap: {ev:?}"),
        }
    }

    /// Everything available now, without waiting.
    fn drain(sub: &mut Subscription) -> Vec<(Position, u64)> {
        let mut out = Vec::new();
        while let Some(ev) = sub.try_next().unwrap() {
            out.push(id(&ev));
        }
        out
    }

    /// Frames of 1..=3 records over several small segments: (position, id) of every record.
    fn small_log(dir: &Path, rt: &tokio::runtime::Runtime) -> Vec<(Position, u64)> {
        let store = open(dir, 120);
        let h = store.handle();
        let mut expect = Vec::new();
        let mut next = 0u64;
        for leaf in 0..12u64 {
            let n = leaf % 3 + 1;
            let ids: Vec<u64> = (next..next + n).collect();
            rt.block_on(append(&h, &ids));
            for (r, i) in ids.iter().enumerate() {
                expect.push((
                    Position {
                        leaf,
                        record: r as u32,
                    },
                    *i,
                ));
            }
            next += n;
        }
        store.close().unwrap();
        expect
    }

    #[test]
    fn positions_parse_and_print_as_leaf_colon_record() {
        let p: Position = "1042:3".parse().unwrap();
        assert_eq!(
            p,
            Position {
                leaf: 1042,
                record: 3
            }
        );
        assert_eq!(p.to_string(), "1042:3");
        assert_eq!(p.after().to_string(), "1042:4");
        for bad in [
            "",
            "1",
            "1:",
            ":2",
            "-1:0",
            "1:2:3",
            "a:b",
            " 1:2",
            "1:99999999999",
        ] {
            let err = bad.parse::<Position>().unwrap_err().to_string();
            assert!(err.contains("LEAF:RECORD"), "{bad}: {err}");
        }
    }

    #[test]
    fn resuming_from_every_position_continues_with_no_gap_and_no_duplicate() {
        let d = tempfile::tempdir().unwrap();
        let rt = rt();
        let expect = small_log(d.path(), &rt);
        let segs = list_segments(&d.path().join("segments")).unwrap();
        assert!(segs.len() >= 4, "several segments: {segs:?}");
        let store = open(d.path(), 120);
        let h = store.handle();
        assert_eq!(h.committed_end(), Position::leaf(12));
        for (k, (pos, _)) in expect.iter().enumerate() {
            let mut sub = h.subscribe(*pos);
            assert_eq!(drain(&mut sub), expect[k..], "from {pos}");
            // Resuming after the last one seen (what a client does).
            let mut sub = h.subscribe(pos.after());
            assert_eq!(drain(&mut sub), expect[k + 1..], "after {pos}");
            assert_eq!(sub.behind(), 0);
        }
        // A record index past the frame's records continues with the next leaf.
        let mut sub = h.subscribe(Position { leaf: 0, record: 7 });
        assert_eq!(drain(&mut sub), expect[1..]);
        // The end: nothing yet, then whatever comes.
        let mut sub = h.subscribe(h.committed_end());
        assert!(drain(&mut sub).is_empty());
        rt.block_on(append(&h, &[1000]));
        assert_eq!(drain(&mut sub), [(Position::leaf(12), 1000)]);
        store.close().unwrap();
    }

    #[test]
    fn a_subscriber_follows_live_appends_and_resumes_after_a_restart() {
        let d = tempfile::tempdir().unwrap();
        let rt = rt();
        let store = open(d.path(), 4096);
        let h = store.handle();
        let mut sub = h.subscribe(Position::START);
        let writer = rt.spawn({
            let h = h.clone();
            async move {
                for i in 0..200u64 {
                    append(&h, &[2 * i, 2 * i + 1]).await;
                }
            }
        });
        let mut seen = Vec::new();
        // Half live, then the collector stops.
        rt.block_on(async {
            while seen.len() < 150 {
                let ev = tokio::time::timeout(Duration::from_secs(20), sub.next())
                    .await
                    .expect("a committed record within 20 s")
                    .unwrap();
                seen.push(id(&ev));
            }
        });
        rt.block_on(writer).unwrap();
        store.close().unwrap();
        // Once closed, what was committed is still delivered, then Closed.
        rt.block_on(async {
            loop {
                match sub.next().await {
                    Ok(ev) => seen.push(id(&ev)),
                    Err(TailError::Closed) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        });
        assert_eq!(seen.len(), 400);
        // A client that had handled 300 records resumes after a restart, while new batches
        // arrive.
        seen.truncate(300);
        let last = seen.last().unwrap().0;
        let store = open(d.path(), 4096);
        let h = store.handle();
        let mut sub = h.subscribe(last.after());
        rt.block_on(async {
            for i in 200..250u64 {
                append(&h, &[2 * i, 2 * i + 1]).await;
            }
            while seen.len() < 500 {
                let ev = tokio::time::timeout(Duration::from_secs(20), sub.next())
                    .await
                    .expect("a committed record within 20 s")
                    .unwrap();
                seen.push(id(&ev));
            }
        });
        let ids: Vec<u64> = seen.iter().map(|s| s.1).collect();
        assert_eq!(ids, (0..500).collect::<Vec<_>>(), "no gap, no duplicate");
        assert!(sub.try_next().unwrap().is_none());
        store.close().unwrap();
    }

    #[test]
    fn many_subscribers_each_see_every_record_once_in_order() {
        let d = tempfile::tempdir().unwrap();
        let rt = rt();
        let store = open(d.path(), 16 << 10);
        let h = store.handle();
        let start = h.committed_end();
        let readers: Vec<_> = (0..100)
            .map(|_| {
                let mut sub = h.subscribe(start);
                rt.spawn(async move {
                    let mut ids = Vec::new();
                    while ids.len() < 600 {
                        let ev = tokio::time::timeout(Duration::from_secs(60), sub.next())
                            .await
                            .expect("a record within 60 s")
                            .unwrap();
                        ids.push(id(&ev).1);
                    }
                    ids
                })
            })
            .collect();
        let writers: Vec<_> = (0..4u64)
            .map(|w| {
                let h = h.clone();
                rt.spawn(async move {
                    for i in 0..50u64 {
                        let base = w * 1000 + i * 3;
                        append(&h, &[base, base + 1, base + 2]).await;
                    }
                })
            })
            .collect();
        for w in writers {
            rt.block_on(w).unwrap();
        }
        // The order every reader must see is the log's.
        let mut all = h.subscribe(start);
        let order: Vec<u64> = drain(&mut all).into_iter().map(|r| r.1).collect();
        assert_eq!(order.len(), 600);
        for r in readers {
            assert_eq!(rt.block_on(r).unwrap(), order);
        }
        store.close().unwrap();
    }

    #[test]
    fn a_slow_subscriber_falls_behind_reads_from_disk_or_skips_with_a_count() {
        let d = tempfile::tempdir().unwrap();
        let rt = rt();
        let store = open(d.path(), 300);
        let h = store.handle();
        let mut slow = h.subscribe(h.committed_end());
        let mut skipper = h.subscribe(h.committed_end());
        for i in 0..40u64 {
            rt.block_on(append(&h, &[3 * i, 3 * i + 1, 3 * i + 2]));
        }
        assert_eq!(slow.behind(), 40);
        // Nothing was queued for it: it reads everything back from the segments.
        let ids: Vec<u64> = drain(&mut slow).into_iter().map(|r| r.1).collect();
        assert_eq!(ids, (0..120).collect::<Vec<_>>());
        // The other takes one record, then jumps to live and is told what it missed.
        assert_eq!(id(&skipper.try_next().unwrap().unwrap()).1, 0);
        assert_eq!(skipper.skip_to_live().unwrap(), 119);
        assert_eq!(skipper.position(), Position::leaf(40));
        assert_eq!(skipper.behind(), 0);
        rt.block_on(append(&h, &[500]));
        assert_eq!(drain(&mut skipper), [(Position::leaf(40), 500)]);
        store.close().unwrap();
    }

    #[test]
    fn memory_and_files_take_turns_with_no_gap_and_no_duplicate() {
        // A budget of a few frames: a subscriber that falls behind reads the older frames
        // from the files and the newest from memory; frames that came without their records
        // are read from the files in between.
        let d = tempfile::tempdir().unwrap();
        let rt = rt();
        let store = Store::open(
            d.path(),
            StoreOptions {
                segment_max_bytes: 400,
                max_queue_bytes: 4 * 1024,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let h = store.handle();
        let mut live = h.subscribe(Position::START);
        let mut slow = h.subscribe(Position::START);
        let mut expect = Vec::new();
        let mut live_seen = Vec::new();
        for i in 0..60u64 {
            let ids = [3 * i, 3 * i + 1, 3 * i + 2];
            let f = if i % 7 == 3 {
                file_only_frame(&ids)
            } else {
                frame(&ids)
            };
            assert!(matches!(
                rt.block_on(h.append(f)).unwrap(),
                Appended::Stored(_)
            ));
            expect.extend(ids);
            live_seen.extend(drain(&mut live).into_iter().map(|r| r.1));
            if i % 30 == 29 {
                // The slow one catches up now and then, from where it stood.
                let got: Vec<u64> = drain(&mut slow).into_iter().map(|r| r.1).collect();
                assert_eq!(got, expect[expect.len() - got.len()..]);
            }
        }
        assert!(
            h.recent.held_bytes() <= 1024,
            "within a quarter of the queue budget"
        );
        assert_eq!(
            live_seen, expect,
            "the live subscriber: memory and files in order"
        );
        let (memory, files) = live.frames_read();
        assert_eq!(
            (memory, files),
            (60 - 9, 9),
            "files only for the frames without records"
        );
        let (memory, files) = slow.frames_read();
        assert!(
            memory > 0 && files > 9,
            "the slow one: both ({memory}, {files})"
        );
        // Resuming in the middle of a held frame delivers only its rest.
        let mut mid = h.subscribe(Position {
            leaf: 59,
            record: 1,
        });
        assert_eq!(
            drain(&mut mid),
            [
                (
                    Position {
                        leaf: 59,
                        record: 1
                    },
                    178
                ),
                (
                    Position {
                        leaf: 59,
                        record: 2
                    },
                    179
                )
            ]
        );
        drop((live, slow, mid));
        assert_eq!(h.recent.held_bytes(), 0, "no subscriber: nothing held");
        store.close().unwrap();
    }

    #[test]
    fn member_indexes_and_shapes_come_with_records_from_memory_only() {
        let d = tempfile::tempdir().unwrap();
        let rt = rt();
        let store = open(d.path(), 1 << 20);
        let h = store.handle();
        let mut sub = h.subscribe(Position::START);
        let mut b = FrameBuilder::new(u64::MAX, None).unwrap();
        b.keep_records();
        b.push_indexed(b"{\"i\":0}\n", &[1, 5], 77).unwrap();
        b.push_indexed(b"{\"i\":1}\n", &[], 0).unwrap();
        rt.block_on(h.append(b.finish().unwrap())).unwrap();
        let got: Vec<_> = std::iter::from_fn(|| sub.try_next().unwrap())
            .map(|ev| match ev {
                TailEvent::Record(r) => (r.json.to_vec(), r.members.to_vec(), r.shape),
                TailEvent::Gap { .. } => panic!("gap"),
            })
            .collect();
        assert_eq!(
            got,
            [
                (b"{\"i\":0}".to_vec(), vec![1, 5], 77),
                (b"{\"i\":1}".to_vec(), vec![], 0)
            ]
        );
        // From the file: the same records, no index.
        let mut again = Subscription::at_rest(d.path(), None, 1, Position::START);
        let TailEvent::Record(r) = again.try_next().unwrap().unwrap() else {
            panic!("gap")
        };
        assert_eq!(
            (&r.json[..], r.members.len(), r.shape),
            (&b"{\"i\":0}"[..], 0, 0)
        );
        store.close().unwrap();
    }

    #[test]
    fn deleted_segments_are_reported_as_a_gap() {
        let d = tempfile::tempdir().unwrap();
        let rt = rt();
        let expect = small_log(d.path(), &rt);
        let store = open(d.path(), 120);
        let segs = list_segments(&d.path().join("segments")).unwrap();
        // What retention does, while the collector runs: the oldest segment goes.
        std::fs::remove_file(&segs[0].path).unwrap();
        let h = store.handle();
        let mut sub = h.subscribe(Position::START);
        let TailEvent::Gap { from, to } = sub.try_next().unwrap().unwrap() else {
            panic!("expected a gap first");
        };
        assert_eq!(from, Position::START);
        assert!(to.leaf > 0 && to.record == 0, "{to}");
        let rest = drain(&mut sub);
        let k = expect.iter().position(|e| e.0 == to).unwrap();
        assert_eq!(rest, expect[k..]);
        store.close().unwrap();
    }

    #[test]
    fn an_encrypted_store_is_read_with_its_data_keys() {
        use meshlog_tlog::keys::{DataKey, Keyring};
        let d = tempfile::tempdir().unwrap();
        let rt = rt();
        let ring = Arc::new(Keyring::new(vec![DataKey::new("k", [9; 32]).unwrap()]).unwrap());
        let store = Store::open(
            d.path(),
            StoreOptions {
                encryption: Some(ring.clone()),
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let h = store.handle();
        let mut sub = h.subscribe(Position::START);
        for i in 0..3u64 {
            let mut b = FrameBuilder::with_encryption(u64::MAX, None, Some(ring.clone())).unwrap();
            let Value::Object(m) = json!({ "i": i }) else {
                unreachable!()
            };
            b.push(&m).unwrap();
            assert!(matches!(
                rt.block_on(h.append(b.finish().unwrap())).unwrap(),
                Appended::Stored(_)
            ));
        }
        let ids: Vec<u64> = drain(&mut sub).into_iter().map(|r| r.1).collect();
        assert_eq!(ids, [0, 1, 2]);
        store.close().unwrap();
    }
}
