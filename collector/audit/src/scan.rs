//! Reading a store byte for byte for `meshlog verify` and `meshlog prove`: every segment, every
//! frame with its leaf hash, and every stretch of bytes that is not a verified frame.
//!
//! Unlike the store's reader (which stops at the first damage, as `query` must), this scanner
//! goes on: after bytes that do not parse it looks for the next intact frame (magic, header
//! CRC, payload CRC) and reports the bytes in between as [`Garbage`]. A frame whose header is
//! intact but whose payload fails its CRC is still a frame (its extent is known), marked
//! damaged. A frame with a critical header entry this build does not understand (say, a key id
//! of encryption at rest it does not know) is still hashed and chained: integrity never needs
//! to read a payload.
//!
//! One segment is held in memory at a time (a segment is `segment_max_bytes`, 64 MiB by
//! default, or one larger frame).

use meshlog_format::frame::{
    Chain, Damage, EXT_BATCH_ID, EXT_CHAIN, FRAME_HEADER_PREFIX_LEN, FRAME_V2_FIXED_LEN,
    FrameHeader, SEGMENT_HEADER_LEN, check_segment_header, find_entry, frame_header_len,
};
use meshlog_format::reader::{SEGMENTS_DIR, list_segments, segment_file_name};
use meshlog_tlog::merkle::{Hash, leaf_hash};
use std::io;
use std::path::{Path, PathBuf};

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Sequence number.
    pub seq: u64,
    /// File name (`0000000000000001.seg`).
    pub name: String,
    /// Path.
    pub path: PathBuf,
    /// Length in bytes.
    pub len: u64,
}

/// A frame whose header is intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFrame {
    /// Index of its segment in the scan's segment list.
    pub segment: usize,
    /// Byte offset in the segment.
    pub offset: u64,
    /// Header and payload length.
    pub len: u64,
    /// Header length.
    pub header_len: u32,
    /// Records the header promises.
    pub records: u32,
    /// The batch id, if any.
    pub batch_id: Option<String>,
    /// The chain entry, if any.
    pub chain: Option<Chain>,
    /// RFC 6962 leaf hash of the frame's bytes.
    pub leaf: Hash,
    /// What is wrong with the payload (CRC), if anything.
    pub damage: Option<String>,
    /// The header has a critical entry this build does not know: the payload cannot be read.
    pub opaque: bool,
}

/// Bytes of a segment that belong to no intact frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Garbage {
    /// Index of its segment in the scan's segment list.
    pub segment: usize,
    /// Where the bytes start.
    pub offset: u64,
    /// Where the next intact frame (or the file's end) starts.
    pub end: u64,
    /// What is wrong at `offset`.
    pub reason: String,
}

/// What a segment holds, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A frame.
    Frame(ScannedFrame),
    /// Bytes that are not one.
    Garbage(Garbage),
}

/// Why a store could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The data directory does not exist.
    #[error("data directory {0} does not exist")]
    NoDataDir(PathBuf),
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A receipt log could not be read.
    #[error(transparent)]
    Receipts(#[from] meshlog_format::receipt::ReceiptLogError),
}

/// The segments of the store in `data_dir`, oldest first (none without a segments directory).
pub fn segments(data_dir: &Path) -> Result<Vec<SegmentInfo>, ScanError> {
    if !data_dir.is_dir() {
        return Err(ScanError::NoDataDir(data_dir.to_owned()));
    }
    let dir = data_dir.join(SEGMENTS_DIR);
    let list = match list_segments(&dir) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(ScanError::Io { path: dir, source }),
    };
    list.into_iter()
        .map(|s| {
            let len = std::fs::metadata(&s.path)
                .map_err(|source| ScanError::Io {
                    path: s.path.clone(),
                    source,
                })?
                .len();
            Ok(SegmentInfo {
                seq: s.seq,
                name: segment_file_name(s.seq),
                path: s.path,
                len,
            })
        })
        .collect()
}

/// Reads a segment file whole.
pub fn read_segment(seg: &SegmentInfo) -> Result<Vec<u8>, ScanError> {
    let mut buf = Vec::new();
    read_segment_into(seg, &mut buf)?;
    Ok(buf)
}

/// Reads a segment file whole into `buf`, reusing its memory (a fresh 64 MiB buffer per
/// segment costs as much in page faults as hashing it).
pub fn read_segment_into(seg: &SegmentInfo, buf: &mut Vec<u8>) -> Result<(), ScanError> {
    use std::io::Read;
    buf.clear();
    std::fs::File::open(&seg.path)
        .and_then(|mut f| f.read_to_end(buf))
        .map(|_| ())
        .map_err(|source| ScanError::Io {
            path: seg.path.clone(),
            source,
        })
}

/// A frame at the start of `b` whose header CRC matched.
fn parse_frame(b: &[u8], segment: usize, offset: u64) -> Result<ScannedFrame, String> {
    let short = |needed: usize| {
        Damage::ShortHeader {
            available: b.len() as u64,
            needed: needed as u64,
        }
        .to_string()
    };
    let prefix: &[u8; FRAME_HEADER_PREFIX_LEN] = b
        .get(..FRAME_HEADER_PREFIX_LEN)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| short(FRAME_HEADER_PREFIX_LEN))?;
    let hlen = frame_header_len(prefix).map_err(|d| d.to_string())?;
    let h = b.get(..hlen).ok_or_else(|| short(hlen))?;
    let (records, payload_len, payload_crc, batch_id, chain, opaque) = match FrameHeader::decode(h)
    {
        Ok(hdr) => (
            hdr.record_count,
            hdr.payload_len,
            hdr.payload_crc,
            hdr.extensions.batch_id.map(|b| b.to_string()),
            hdr.extensions.chain,
            false,
        ),
        // Intact (the CRC matched first) but not fully understood: still a frame of this log.
        Err(Damage::UnknownExtension(_)) => {
            let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
            let area = h.get(FRAME_V2_FIXED_LEN - 4..hlen - 4).unwrap_or_default();
            let entry = |ty| find_entry(area, ty).and_then(|r| area.get(r));
            (
                u32_at(12),
                u32_at(8),
                u32_at(16),
                entry(EXT_BATCH_ID).map(|v| String::from_utf8_lossy(v).into_owned()),
                entry(EXT_CHAIN).and_then(Chain::decode),
                true,
            )
        }
        Err(d) => return Err(d.to_string()),
    };
    let end = hlen + payload_len as usize;
    let Some(frame) = b.get(..end) else {
        return Err(Damage::PastEof {
            len: payload_len,
            available: (b.len() - hlen) as u64,
        }
        .to_string());
    };
    let computed = crc32fast::hash(frame.get(hlen..).unwrap_or_default());
    let damage = (computed != payload_crc).then(|| {
        Damage::PayloadCrc {
            stored: payload_crc,
            computed,
        }
        .to_string()
    });
    Ok(ScannedFrame {
        segment,
        offset,
        len: end as u64,
        header_len: hlen as u32,
        records,
        batch_id,
        chain,
        leaf: leaf_hash(frame),
        damage,
        opaque,
    })
}

/// The offset of the next fully intact frame at or after `from`, or the end of `bytes`.
fn resync(bytes: &[u8], from: usize, segment: usize) -> usize {
    let magic = meshlog_format::frame::FRAME_MAGIC;
    let mut at = from;
    while let Some(i) = bytes
        .get(at..)
        .and_then(|rest| rest.windows(magic.len()).position(|w| w == magic))
    {
        let cand = at + i;
        let rest = bytes.get(cand..).unwrap_or_default();
        if matches!(parse_frame(rest, segment, cand as u64), Ok(f) if f.damage.is_none()) {
            return cand;
        }
        at = cand + 1;
    }
    bytes.len()
}

/// Every frame and garbage stretch of one segment's bytes; `progress` is called with the bytes
/// accounted for as the scan goes.
pub fn parse_segment(bytes: &[u8], segment: usize, progress: &mut dyn FnMut(u64)) -> Vec<Item> {
    let mut items = Vec::new();
    if let Err(d) = check_segment_header(bytes) {
        items.push(Item::Garbage(Garbage {
            segment,
            offset: 0,
            end: bytes.len() as u64,
            reason: d.to_string(),
        }));
        progress(bytes.len() as u64);
        return items;
    }
    progress(SEGMENT_HEADER_LEN);
    let mut pos = SEGMENT_HEADER_LEN as usize;
    while pos < bytes.len() {
        let rest = bytes.get(pos..).unwrap_or_default();
        match parse_frame(rest, segment, pos as u64) {
            Ok(f) => {
                progress(f.len);
                pos += f.len as usize;
                items.push(Item::Frame(f));
            }
            Err(reason) => {
                let next = resync(bytes, pos + 1, segment);
                progress((next - pos) as u64);
                items.push(Item::Garbage(Garbage {
                    segment,
                    offset: pos as u64,
                    end: next as u64,
                    reason,
                }));
                pos = next;
            }
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlog_format::frame::{encode_frame, segment_header};
    use serde_json::{Map, Value, json};

    fn frame(i: u64) -> Vec<u8> {
        let Value::Object(m) = json!({ "i": i, "pad": "some text to compress" }) else {
            unreachable!()
        };
        let r: Map<String, Value> = m;
        encode_frame([&r]).unwrap().bytes().to_vec()
    }

    fn kinds(items: &[Item]) -> Vec<(char, u64, u64)> {
        items
            .iter()
            .map(|i| match i {
                Item::Frame(f) if f.damage.is_some() => ('d', f.offset, f.offset + f.len),
                Item::Frame(f) => ('f', f.offset, f.offset + f.len),
                Item::Garbage(g) => ('g', g.offset, g.end),
            })
            .collect()
    }

    #[test]
    fn every_byte_is_a_frame_or_garbage_and_the_scan_resyncs() {
        let frames: Vec<Vec<u8>> = (0..4).map(frame).collect();
        let mut seg = segment_header().to_vec();
        let mut bounds = Vec::new();
        for f in &frames {
            bounds.push((seg.len() as u64, (seg.len() + f.len()) as u64));
            seg.extend_from_slice(f);
        }
        let mut seen = 0;
        let items = parse_segment(&seg, 0, &mut |n| seen += n);
        assert_eq!(seen, seg.len() as u64, "progress covers every byte");
        assert_eq!(
            kinds(&items),
            bounds
                .iter()
                .map(|(s, e)| ('f', *s, *e))
                .collect::<Vec<_>>()
        );
        if let Item::Frame(f) = &items[2] {
            assert_eq!(f.leaf, leaf_hash(&frames[2]));
            assert_eq!(f.records, 1);
        }

        // A flipped header bit: that frame becomes garbage, the next one is found.
        let mut hdr = seg.clone();
        hdr[bounds[1].0 as usize + 13] ^= 4;
        let k = kinds(&parse_segment(&hdr, 0, &mut |_| {}));
        assert_eq!(k[1], ('g', bounds[1].0, bounds[1].1));
        assert_eq!(k[2], ('f', bounds[2].0, bounds[2].1));
        // A flipped payload bit: still a frame, damaged.
        let mut pay = seg.clone();
        pay[bounds[1].1 as usize - 3] ^= 4;
        let k = kinds(&parse_segment(&pay, 0, &mut |_| {}));
        assert_eq!(k[1], ('d', bounds[1].0, bounds[1].1));
        // Junk inserted between frames, and a torn tail.
        let mut junk = seg[..bounds[2].0 as usize].to_vec();
        junk.extend_from_slice(b"MLFR and then nothing sensible");
        junk.extend_from_slice(&seg[bounds[2].0 as usize..bounds[3].1 as usize - 5]);
        let k = kinds(&parse_segment(&junk, 0, &mut |_| {}));
        let j = bounds[2].0;
        assert_eq!(k[2], ('g', j, j + 30));
        assert_eq!(k[3], ('f', j + 30, bounds[2].1 + 30));
        assert_eq!(k[4], ('g', bounds[3].0 + 30, junk.len() as u64));
        // Not a segment at all.
        let k = kinds(&parse_segment(b"hello", 0, &mut |_| {}));
        assert_eq!(k, [('g', 0, 5)]);
    }
}
