//! Reading the store: list segments, walk their frames in order, verify CRCs, decode payloads.
//!
//! Used by `meshlog query` and by recovery. The reader takes no lock and opens files read-only,
//! so it runs next to a live writer: it snapshots each file's length when it opens it, and a
//! damaged tail of the newest segment (a frame still being written) is treated as the end of
//! the data, not as an error. Damage anywhere else is an error naming the segment and offset.
//!
//! Sealed frames (encryption at rest) are walked like any other: CRCs cover the stored bytes,
//! so listing frames and recovery need no key. Only a frame's records need one: opening its
//! payload takes the keys given with [`Frames::with_keys`], and an error says which key, which
//! key file, which segment and offset.

use super::encryption::DataKeys;
use crate::batch_id::BatchId;
use crate::frame::{
    Damage, FRAME_HEADER_PREFIX_LEN, FrameHeader, SEGMENT_HEADER_LEN, check_segment_header,
    frame_header_len,
};
pub use crate::layout::{SEGMENTS_DIR, SegmentFile, list_segments, segment_file_name};
use meshlog_tlog::seal::OpenError;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Why reading failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The data directory does not exist.
    #[error("data directory {0} does not exist")]
    NoDataDir(PathBuf),
    /// An I/O error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A frame failed its checks.
    #[error("segment {path} is damaged at offset {offset}: {damage}")]
    Damaged {
        /// The segment.
        path: PathBuf,
        /// Byte offset of the damaged frame (or header) in the segment.
        offset: u64,
        /// What is wrong.
        damage: Damage,
    },
    /// Writing what was read failed (e.g. stdout closed).
    #[error("writing output: {0}")]
    Output(io::Error),
    /// A sealed frame, and no key file was given.
    #[error(
        "segment {}, frame at offset {offset} is encrypted with data-encryption key {key_id:?}, \
         and no key file was given (--key-file FILE, or [encryption] key_file in the \
         configuration)",
        path.display()
    )]
    NoKeyFile {
        /// The segment.
        path: PathBuf,
        /// Byte offset of the frame.
        offset: u64,
        /// The key id in the frame header.
        key_id: String,
    },
    /// A sealed frame names a key that the key file does not have.
    #[error(
        "segment {}, frame at offset {offset} is encrypted with data-encryption key {key_id:?}, \
         which the key file {} does not have (it has {}); was a key removed, or is this the \
         wrong key file?",
        path.display(),
        key_file.display(),
        available.join(", ")
    )]
    UnknownKey {
        /// The segment.
        path: PathBuf,
        /// Byte offset of the frame.
        offset: u64,
        /// The key id in the frame header.
        key_id: String,
        /// The key file.
        key_file: PathBuf,
        /// The ids it has.
        available: Vec<String>,
    },
    /// A sealed frame failed authentication.
    #[error(
        "segment {}, frame at offset {offset}: authentication failed with data-encryption key \
         {key_id:?} from {}: wrong key (the key file's key with this id is not the one that \
         sealed the frame) or tampered data (the frame was altered after it was written)",
        path.display(),
        key_file.display()
    )]
    Authentication {
        /// The segment.
        path: PathBuf,
        /// Byte offset of the frame.
        offset: u64,
        /// The key id in the frame header.
        key_id: String,
        /// The key file.
        key_file: PathBuf,
    },
    /// A frame passed its CRCs but its payload does not decode as promised.
    #[error("segment {path}, frame at offset {offset}: {reason}")]
    BadPayload {
        /// The segment.
        path: PathBuf,
        /// Byte offset of the frame.
        offset: u64,
        /// What failed.
        reason: String,
    },
}

/// A scan that stopped at damage or failed on I/O.
#[derive(Debug)]
pub enum ScanError {
    /// I/O error.
    Io(io::Error),
    /// Damage at `offset`.
    Damage {
        /// Byte offset in the segment.
        offset: u64,
        /// What is wrong.
        damage: Damage,
    },
}

impl From<io::Error> for ScanError {
    fn from(e: io::Error) -> Self {
        ScanError::Io(e)
    }
}

impl ScanError {
    /// Attaches the segment path.
    pub fn into_read_error(self, path: &Path) -> ReadError {
        match self {
            ScanError::Io(source) => ReadError::Io {
                path: path.to_owned(),
                source,
            },
            ScanError::Damage { offset, damage } => ReadError::Damaged {
                path: path.to_owned(),
                offset,
                damage,
            },
        }
    }
}

/// One frame as found in a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// Byte offset of the frame header in the segment.
    pub offset: u64,
    /// Length of the header on disk (24 for version 1; 26 plus extensions for version 2).
    pub header_len: u32,
    /// The decoded header.
    pub header: FrameHeader,
    /// The CRC-checked payload, when the scan reads payloads.
    pub payload: Option<Vec<u8>>,
}

impl RawFrame {
    /// Byte offset just past the frame.
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.header_len) + u64::from(self.header.payload_len)
    }
}

/// Walks the frames of one segment file from the start.
#[derive(Debug)]
pub struct SegmentScanner {
    file: BufReader<File>,
    len: u64,
    pos: u64,
    header: Vec<u8>,
}

impl SegmentScanner {
    /// Opens `path` read-only, snapshots its length and checks the segment header.
    pub fn open(path: &Path) -> Result<Self, ScanError> {
        let file = File::open(path)?;
        Self::from_file(file)
    }

    /// Like [`open`](Self::open), on an already open file positioned at its start.
    pub fn from_file(file: File) -> Result<Self, ScanError> {
        let len = file.metadata()?.len();
        let mut file = BufReader::with_capacity(64 * 1024, file);
        let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
        let n = read_up_to(&mut file, &mut header)?;
        check_segment_header(header.get(..n).unwrap_or_default())
            .map_err(|damage| ScanError::Damage { offset: 0, damage })?;
        Ok(SegmentScanner {
            file,
            len,
            pos: SEGMENT_HEADER_LEN,
            header: Vec::new(),
        })
    }

    /// File length when opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the file held no more than its header when opened.
    pub fn is_empty(&self) -> bool {
        self.len <= SEGMENT_HEADER_LEN
    }

    /// Offset just past the last frame returned (where the next frame starts).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The header bytes, exactly as on disk, of the last frame returned (for hashing it).
    pub fn header_bytes(&self) -> &[u8] {
        &self.header
    }

    /// The next frame, `None` at a clean end of file. With `read_payload` false the payload is
    /// skipped without being read or CRC-checked (a cheap structural walk).
    pub fn next_frame(&mut self, read_payload: bool) -> Result<Option<RawFrame>, ScanError> {
        let offset = self.pos;
        let available = self.len.saturating_sub(offset);
        if available == 0 {
            return Ok(None);
        }
        let damage = |damage| ScanError::Damage { offset, damage };
        let short = |needed: usize| {
            damage(Damage::ShortHeader {
                available,
                needed: needed as u64,
            })
        };
        if available < FRAME_HEADER_PREFIX_LEN as u64 {
            return Err(short(FRAME_HEADER_PREFIX_LEN));
        }
        let mut prefix = [0u8; FRAME_HEADER_PREFIX_LEN];
        if read_up_to(&mut self.file, &mut prefix)? < FRAME_HEADER_PREFIX_LEN {
            // The file shrank under us (a writer rolled back a failed write).
            return Err(short(FRAME_HEADER_PREFIX_LEN));
        }
        let header_len = frame_header_len(&prefix).map_err(damage)?;
        if header_len as u64 > available {
            return Err(short(header_len));
        }
        self.header.clear();
        self.header.extend_from_slice(&prefix);
        self.header.resize(header_len, 0);
        let rest = self
            .header
            .get_mut(FRAME_HEADER_PREFIX_LEN..)
            .unwrap_or_default();
        if read_up_to(&mut self.file, rest)? < rest.len() {
            return Err(short(header_len));
        }
        let header = FrameHeader::decode(&self.header).map_err(damage)?;
        let after_header = available - header_len as u64;
        if u64::from(header.payload_len) > after_header {
            return Err(damage(Damage::PastEof {
                len: header.payload_len,
                available: after_header,
            }));
        }
        let payload = if read_payload {
            let mut p = vec![0u8; header.payload_len as usize];
            if read_up_to(&mut self.file, &mut p)? < p.len() {
                return Err(damage(Damage::PastEof {
                    len: header.payload_len,
                    available: after_header,
                }));
            }
            let computed = crc32fast::hash(&p);
            if computed != header.payload_crc {
                return Err(damage(Damage::PayloadCrc {
                    stored: header.payload_crc,
                    computed,
                }));
            }
            Some(p)
        } else {
            self.file.seek_relative(i64::from(header.payload_len))?;
            None
        };
        let frame = RawFrame {
            offset,
            // At most 26 + 65535.
            header_len: header_len as u32,
            header,
            payload,
        };
        self.pos = frame.end();
        Ok(Some(frame))
    }
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A verified frame with its position.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Segment sequence number.
    pub segment: u64,
    /// Segment path.
    pub path: PathBuf,
    /// Byte offset of the frame in the segment.
    pub offset: u64,
    /// Records the header promises.
    pub record_count: u32,
    /// The batch id the frame was stored with (none for version-1 frames and plain OTLP).
    pub batch_id: Option<BatchId>,
    /// Compressed payload (CRC already checked); sealed when `header` says so.
    payload: Vec<u8>,
    header: FrameHeader,
    keys: Option<DataKeys>,
}

impl Frame {
    /// The frame `raw` (read with its payload) of segment `segment` at `path`, to be opened
    /// with `keys` (for readers that walk a [`SegmentScanner`] themselves, e.g. to skip frames
    /// an index rules out).
    pub fn from_raw(segment: u64, path: PathBuf, raw: RawFrame, keys: Option<DataKeys>) -> Frame {
        Frame {
            segment,
            path,
            offset: raw.offset,
            record_count: raw.header.record_count,
            batch_id: raw.header.extensions.batch_id.clone(),
            payload: raw.payload.unwrap_or_default(),
            header: raw.header,
            keys,
        }
    }

    /// The id of the data-encryption key that sealed the payload; `None` when it is plain.
    pub fn key_id(&self) -> Option<&str> {
        self.header
            .extensions
            .sealing
            .as_ref()
            .map(|s| s.key_id.as_str())
    }

    /// The zstd payload: as stored, or opened with the keys when sealed.
    fn plain_payload(&self) -> Result<Cow<'_, [u8]>, ReadError> {
        let Some(key_id) = self.key_id().map(str::to_owned) else {
            return Ok(Cow::Borrowed(&self.payload));
        };
        let (path, offset) = (self.path.clone(), self.offset);
        let Some(keys) = &self.keys else {
            return Err(ReadError::NoKeyFile {
                path,
                offset,
                key_id,
            });
        };
        let key_file = keys.path().to_owned();
        match self.header.open_payload(keys.keyring(), &self.payload) {
            Some(Ok(plain)) => Ok(Cow::Owned(plain)),
            None => Ok(Cow::Borrowed(&self.payload)),
            Some(Err(OpenError::UnknownKey { available, .. })) => Err(ReadError::UnknownKey {
                path,
                offset,
                key_id,
                key_file,
                available,
            }),
            Some(Err(OpenError::AuthenticationFailed { .. })) => Err(ReadError::Authentication {
                path,
                offset,
                key_id,
                key_file,
            }),
            Some(Err(e @ OpenError::TooShort { .. })) => Err(self.bad(e.to_string())),
        }
    }

    fn bad(&self, reason: String) -> ReadError {
        ReadError::BadPayload {
            path: self.path.clone(),
            offset: self.offset,
            reason,
        }
    }

    /// Calls `f` with each NDJSON line (without the newline), streaming the decompression so a
    /// large frame is never held uncompressed. Checks the line count against the header.
    pub fn for_each_line(
        &self,
        mut f: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(), ReadError> {
        let payload = self.plain_payload()?;
        let dec = zstd::stream::read::Decoder::new(payload.as_ref())
            .map_err(|e| self.bad(format!("zstd: {e}")))?;
        let mut dec = BufReader::new(dec);
        let mut line = Vec::with_capacity(1024);
        let mut n: u64 = 0;
        loop {
            line.clear();
            let k = dec
                .read_until(b'\n', &mut line)
                .map_err(|e| self.bad(format!("zstd: {e}")))?;
            if k == 0 {
                break;
            }
            if line.pop() != Some(b'\n') {
                return Err(self.bad("last NDJSON line has no newline".into()));
            }
            n += 1;
            f(&line).map_err(ReadError::Output)?;
        }
        if n != u64::from(self.record_count) {
            return Err(self.bad(format!(
                "header promises {} records, payload has {n}",
                self.record_count
            )));
        }
        Ok(())
    }

    /// The records, parsed.
    pub fn records(&self) -> Result<Vec<Map<String, Value>>, ReadError> {
        let mut out = Vec::with_capacity(self.record_count as usize);
        let mut bad = None;
        self.for_each_line(|l| {
            match serde_json::from_slice::<Map<String, Value>>(l) {
                Ok(m) => out.push(m),
                Err(e) => {
                    bad.get_or_insert(e);
                }
            }
            Ok(())
        })?;
        match bad {
            Some(e) => Err(self.bad(format!("record is not a JSON object: {e}"))),
            None => Ok(out),
        }
    }
}

/// Every frame of a data directory, oldest first.
#[derive(Debug)]
pub struct Frames {
    pending: VecDeque<SegmentFile>,
    current: Option<(SegmentFile, SegmentScanner, bool)>,
    failed: bool,
    keys: Option<DataKeys>,
}

impl Frames {
    /// Opens sealed frames with `keys` (without keys, reading a sealed frame's records fails).
    pub fn with_keys(mut self, keys: Option<DataKeys>) -> Self {
        self.keys = keys;
        self
    }
}

/// Opens the store in `data_dir` for reading. A data directory without a `segments` directory
/// holds no records yet.
pub fn frames(data_dir: &Path) -> Result<Frames, ReadError> {
    if !data_dir.is_dir() {
        return Err(ReadError::NoDataDir(data_dir.to_owned()));
    }
    let dir = data_dir.join(SEGMENTS_DIR);
    let pending = match list_segments(&dir) {
        Ok(s) => s.into(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => VecDeque::new(),
        Err(source) => return Err(ReadError::Io { path: dir, source }),
    };
    Ok(Frames {
        pending,
        current: None,
        failed: false,
        keys: None,
    })
}

impl Iterator for Frames {
    type Item = Result<Frame, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            let (seg, scanner, newest) = match &mut self.current {
                Some(c) => (&c.0, &mut c.1, c.2),
                None => {
                    let seg = self.pending.pop_front()?;
                    let newest = self.pending.is_empty();
                    match SegmentScanner::open(&seg.path) {
                        Ok(s) => self.current = Some((seg, s, newest)),
                        // A segment being created right now has no complete header yet.
                        Err(ScanError::Damage { damage, .. }) if newest && damage.is_torn() => {
                            return None;
                        }
                        Err(e) => {
                            self.failed = true;
                            return Some(Err(e.into_read_error(&seg.path)));
                        }
                    }
                    continue;
                }
            };
            match scanner.next_frame(true) {
                Ok(Some(raw)) => {
                    return Some(Ok(Frame {
                        segment: seg.seq,
                        path: seg.path.clone(),
                        offset: raw.offset,
                        record_count: raw.header.record_count,
                        batch_id: raw.header.extensions.batch_id.clone(),
                        payload: raw.payload.unwrap_or_default(),
                        header: raw.header,
                        keys: self.keys.clone(),
                    }));
                }
                Ok(None) => self.current = None,
                // The newest segment's tail may be a frame still being written: not yet visible.
                Err(ScanError::Damage { damage, offset }) if newest && damage.is_torn() => {
                    tracing::debug!(
                        segment = %seg.path.display(),
                        offset,
                        %damage,
                        "stopping at the incomplete tail of the newest segment"
                    );
                    self.current = None;
                    return None;
                }
                Err(e) => {
                    self.failed = true;
                    let path = seg.path.clone();
                    return Some(Err(e.into_read_error(&path)));
                }
            }
        }
    }
}

/// Every stored record, oldest first (tests and small tools; `query` streams instead).
pub fn read_all(data_dir: &Path) -> Result<Vec<Map<String, Value>>, ReadError> {
    let mut out = Vec::new();
    for f in frames(data_dir)? {
        out.extend(f?.records()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{encode_frame, segment_header};
    use serde_json::json;
    use std::io::Write;

    fn rec(i: u64) -> Map<String, Value> {
        let Value::Object(m) = json!({ "i": i }) else {
            unreachable!()
        };
        m
    }

    fn write_segment(dir: &Path, seq: u64, frames: &[Vec<u64>]) -> PathBuf {
        let path = dir.join(segment_file_name(seq));
        let mut f = File::create(&path).unwrap();
        f.write_all(&segment_header()).unwrap();
        for fr in frames {
            let recs: Vec<_> = fr.iter().map(|i| rec(*i)).collect();
            f.write_all(encode_frame(&recs).unwrap().bytes()).unwrap();
        }
        path
    }

    fn ids(data: &Path) -> Vec<u64> {
        read_all(data)
            .unwrap()
            .iter()
            .map(|r| r["i"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn names_parse_strictly() {
        assert_eq!(crate::layout::segment_seq("0000000000000042.seg"), Some(42));
        assert_eq!(crate::layout::segment_seq(&segment_file_name(7)), Some(7));
        assert_eq!(crate::layout::segment_seq("42.seg"), None);
        assert_eq!(crate::layout::segment_seq("000000000000004x.seg"), None);
        assert_eq!(crate::layout::segment_seq("0000000000000042.seg.tmp"), None);
    }

    #[test]
    fn reads_across_segments_in_order_and_ignores_other_files() {
        let d = tempfile::tempdir().unwrap();
        let segs = d.path().join(SEGMENTS_DIR);
        std::fs::create_dir(&segs).unwrap();
        write_segment(&segs, 10, &[vec![3, 4]]);
        write_segment(&segs, 2, &[vec![0], vec![1, 2]]);
        std::fs::write(segs.join("notes.txt"), b"hello").unwrap();
        assert_eq!(ids(d.path()), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn torn_tail_of_newest_is_invisible_but_damage_in_older_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let segs = d.path().join(SEGMENTS_DIR);
        std::fs::create_dir(&segs).unwrap();
        let old = write_segment(&segs, 1, &[vec![0], vec![1]]);
        let new = write_segment(&segs, 2, &[vec![2], vec![3]]);
        // Half a frame at the end of the newest: a write in progress.
        let len = std::fs::metadata(&new).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&new)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        assert_eq!(ids(d.path()), vec![0, 1, 2]);
        // The same damage in an older segment is reported, naming it.
        let len = std::fs::metadata(&old).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&old)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        let err = read_all(d.path()).unwrap_err().to_string();
        assert!(err.contains("0000000000000001.seg"), "{err}");
        assert!(err.contains("runs past end of file"), "{err}");
    }

    #[test]
    fn sealed_frames_need_the_key_they_name_and_plain_frames_need_none() {
        use crate::frame::FrameBuilder;
        use meshlog_tlog::keys::{DataKey, Keyring};
        let ring = |keys: &[(&str, u8)]| {
            let keys = keys
                .iter()
                .map(|(id, b)| DataKey::new(id, [*b; 32]).unwrap());
            Keyring::new(keys.collect()).unwrap()
        };
        let d = tempfile::tempdir().unwrap();
        let segs = d.path().join(SEGMENTS_DIR);
        std::fs::create_dir(&segs).unwrap();
        let path = write_segment(&segs, 1, &[vec![0]]);
        let sealed_offset = std::fs::metadata(&path).unwrap().len();
        let keys = DataKeys::new(ring(&[("k1", 1)]), "data.keys".into());
        let mut b =
            FrameBuilder::with_encryption(u64::MAX, None, Some(keys.keyring().clone())).unwrap();
        b.push(&rec(1)).unwrap();
        let frame = b.finish().unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(frame.bytes()).unwrap();

        let read = |keys: Option<DataKeys>| -> Result<Vec<u64>, ReadError> {
            let mut out = Vec::new();
            for f in frames(d.path()).unwrap().with_keys(keys) {
                out.extend(f?.records()?.iter().map(|r| r["i"].as_u64().unwrap()));
            }
            Ok(out)
        };
        assert_eq!(read(Some(keys.clone())).unwrap(), vec![0, 1]);
        // Listing needs no key; the key id is in the header.
        let ids: Vec<_> = frames(d.path())
            .unwrap()
            .map(|f| f.unwrap().key_id().map(str::to_owned))
            .collect();
        assert_eq!(ids, [None, Some("k1".to_owned())]);
        let seg = path.display().to_string();
        let err = read(None).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "segment {seg}, frame at offset {sealed_offset} is encrypted with \
                 data-encryption key \"k1\", and no key file was given (--key-file FILE, or \
                 [encryption] key_file in the configuration)"
            )
        );
        let other = DataKeys::new(ring(&[("k0", 1), ("k2", 2)]), "other.keys".into());
        let err = read(Some(other)).unwrap_err().to_string();
        assert!(
            err.contains("key \"k1\", which the key file other.keys does not have (it has k0, k2)"),
            "{err}"
        );
        let wrong = DataKeys::new(ring(&[("k1", 7)]), "wrong.keys".into());
        let err = read(Some(wrong)).unwrap_err();
        assert!(matches!(err, ReadError::Authentication { .. }), "{err}");
        let err = err.to_string();
        for needle in [
            format!("segment {seg}, frame at offset {sealed_offset}: authentication failed"),
            "key \"k1\" from wrong.keys: wrong key".into(),
            "or tampered data".into(),
        ] {
            assert!(err.contains(&needle), "{err} lacks {needle}");
        }
    }

    #[test]
    fn missing_data_dir_is_an_error_and_empty_store_reads_nothing() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_all(&d.path().join("nope")),
            Err(ReadError::NoDataDir(_))
        ));
        assert!(read_all(d.path()).unwrap().is_empty());
    }
}
