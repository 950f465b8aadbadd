//! The on-disk format: segment file header, frame header, and frame payload encoding.
//!
//! Kept in one place so the writer, the reader and recovery agree byte for byte. Everything is
//! little-endian and versioned: later work (Merkle tree over frames, encryption, batch ids) will
//! bump the version or add flags, and an old reader must refuse what it does not understand
//! rather than misread it.
//!
//! Segment file: `SEGMENT_HEADER_LEN` (8) bytes, then frames back to back.
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `MLSG` |
//! | 4..6 | segment format version (u16, 1) |
//! | 6..8 | reserved, zero |
//!
//! Frame: `FRAME_HEADER_LEN` (24) bytes of header, then `payload_len` bytes of payload.
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `MLFR` |
//! | 4..6 | frame format version (u16, 1) |
//! | 6..8 | flags (u16); bit 0 = payload is zstd; other bits must be zero in version 1 |
//! | 8..12 | payload length in bytes (u32) |
//! | 12..16 | record count (u32) |
//! | 16..20 | CRC32 (IEEE) of the payload |
//! | 20..24 | CRC32 (IEEE) of header bytes 0..20 |
//!
//! Payload (version 1): zstd-compressed NDJSON, one canonical record per line.

use serde_json::{Map, Value};
use std::io::Write;

/// Magic at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 4] = *b"MLSG";
/// Segment format version this build writes and reads.
pub const SEGMENT_VERSION: u16 = 1;
/// Length of the segment file header in bytes.
pub const SEGMENT_HEADER_LEN: u64 = 8;
/// Magic at the start of every frame.
pub const FRAME_MAGIC: [u8; 4] = *b"MLFR";
/// Frame format version this build writes and reads.
pub const FRAME_VERSION: u16 = 1;
/// Length of a frame header in bytes.
pub const FRAME_HEADER_LEN: usize = 24;
/// Flag bit: the payload is zstd-compressed.
pub const FLAG_ZSTD: u16 = 1;
/// Flags a version-1 reader understands.
const KNOWN_FLAGS: u16 = FLAG_ZSTD;
/// zstd level: level 3 is zstd's default, a good ratio at a cost far below the fsync.
const ZSTD_LEVEL: i32 = 3;

/// The 8 bytes every segment file starts with.
pub fn segment_header() -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4..6].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h
}

/// Checks a segment file header.
pub fn check_segment_header(bytes: &[u8]) -> Result<(), Damage> {
    let Some(h) = bytes.get(..SEGMENT_HEADER_LEN as usize) else {
        return Err(Damage::ShortSegmentHeader {
            available: bytes.len() as u64,
        });
    };
    if h[..4] != SEGMENT_MAGIC {
        return Err(Damage::BadSegmentMagic {
            found: hex::encode(&h[..4]),
        });
    }
    let version = u16::from_le_bytes([h[4], h[5]]);
    if version != SEGMENT_VERSION {
        return Err(Damage::UnsupportedSegmentVersion(version));
    }
    Ok(())
}

/// What is wrong with a segment at some offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// The file is shorter than a segment header.
    #[error("short segment header ({available} of {SEGMENT_HEADER_LEN} bytes)")]
    ShortSegmentHeader {
        /// Bytes present.
        available: u64,
    },
    /// The file does not start with the segment magic.
    #[error("not a meshlog segment (magic {found}, expected 4d4c5347 \"MLSG\")")]
    BadSegmentMagic {
        /// The first 4 bytes, hex.
        found: String,
    },
    /// A segment format this build cannot read.
    #[error("unsupported segment format version {0} (this build reads version {SEGMENT_VERSION})")]
    UnsupportedSegmentVersion(u16),
    /// Fewer bytes than a frame header remain.
    #[error("short frame header ({available} of {FRAME_HEADER_LEN} bytes)")]
    ShortHeader {
        /// Bytes present.
        available: u64,
    },
    /// The frame does not start with the frame magic.
    #[error("bad frame magic {found} (expected 4d4c4652 \"MLFR\")")]
    BadMagic {
        /// The 4 bytes found, hex.
        found: String,
    },
    /// The header's own CRC does not match.
    #[error("frame header CRC mismatch (stored {stored:08x}, computed {computed:08x})")]
    HeaderCrc {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes read.
        computed: u32,
    },
    /// A frame format this build cannot read (the header itself is intact).
    #[error("unsupported frame format version {0} (this build reads version {FRAME_VERSION})")]
    UnsupportedVersion(u16),
    /// Flags this build does not understand (the header itself is intact).
    #[error("unknown frame flags {0:#06x}")]
    UnknownFlags(u16),
    /// The payload length points past the end of the file.
    #[error("payload of {len} bytes runs past end of file ({available} bytes left)")]
    PastEof {
        /// Payload length from the header.
        len: u32,
        /// Bytes left in the file after the header.
        available: u64,
    },
    /// The payload's CRC does not match.
    #[error("payload CRC mismatch (stored {stored:08x}, computed {computed:08x})")]
    PayloadCrc {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes read.
        computed: u32,
    },
}

impl Damage {
    /// True when this is what an interrupted write leaves behind (or bit rot that looks like
    /// it), as opposed to intact data in a format this build does not understand. Only the
    /// former may be cut from the newest segment.
    pub fn is_torn(&self) -> bool {
        !matches!(
            self,
            Damage::UnsupportedVersion(_)
                | Damage::UnknownFlags(_)
                | Damage::BadSegmentMagic { .. }
                | Damage::UnsupportedSegmentVersion(_)
        )
    }
}

/// A decoded, CRC-checked frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Format version.
    pub version: u16,
    /// Flag bits.
    pub flags: u16,
    /// Payload length in bytes.
    pub payload_len: u32,
    /// Records in the payload.
    pub record_count: u32,
    /// CRC32 of the payload.
    pub payload_crc: u32,
}

impl FrameHeader {
    /// The header bytes, with the header CRC filled in.
    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut h = [0u8; FRAME_HEADER_LEN];
        h[0..4].copy_from_slice(&FRAME_MAGIC);
        h[4..6].copy_from_slice(&self.version.to_le_bytes());
        h[6..8].copy_from_slice(&self.flags.to_le_bytes());
        h[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        h[12..16].copy_from_slice(&self.record_count.to_le_bytes());
        h[16..20].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..20]);
        h[20..24].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes and checks magic, header CRC, version and flags, in that order: a damaged
    /// header is reported as damage before its version is believed.
    pub fn decode(h: &[u8; FRAME_HEADER_LEN]) -> Result<Self, Damage> {
        if h[0..4] != FRAME_MAGIC {
            return Err(Damage::BadMagic {
                found: hex::encode(&h[0..4]),
            });
        }
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let stored = u32_at(20);
        let computed = crc32fast::hash(&h[..20]);
        if stored != computed {
            return Err(Damage::HeaderCrc { stored, computed });
        }
        let version = u16::from_le_bytes([h[4], h[5]]);
        if version != FRAME_VERSION {
            return Err(Damage::UnsupportedVersion(version));
        }
        let flags = u16::from_le_bytes([h[6], h[7]]);
        if flags & !KNOWN_FLAGS != 0 || flags & FLAG_ZSTD == 0 {
            return Err(Damage::UnknownFlags(flags));
        }
        Ok(FrameHeader {
            version,
            flags,
            payload_len: u32_at(8),
            record_count: u32_at(12),
            payload_crc: u32_at(16),
        })
    }
}

/// A complete frame (header and payload) ready to append to a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    bytes: Vec<u8>,
    records: u32,
}

impl EncodedFrame {
    /// Header and payload, as written to disk.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Records in the frame.
    pub fn records(&self) -> u32 {
        self.records
    }
}

/// Why a frame could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The uncompressed NDJSON would exceed the limit.
    #[error("the canonical records of this request exceed {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// More records than a frame header can count, or a payload over 4 GiB.
    #[error("the request does not fit in one frame ({0})")]
    Overflow(&'static str),
    /// The compressor failed.
    #[error("compressing the frame payload failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Streams canonical records into a compressed frame, so the uncompressed NDJSON of a large
/// request never sits in memory as a whole.
pub struct FrameBuilder {
    enc: zstd::stream::write::Encoder<'static, Vec<u8>>,
    line: Vec<u8>,
    records: u32,
    raw_bytes: u64,
    max_raw_bytes: u64,
}

impl std::fmt::Debug for FrameBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameBuilder")
            .field("records", &self.records)
            .field("raw_bytes", &self.raw_bytes)
            .finish_non_exhaustive()
    }
}

impl FrameBuilder {
    /// A builder that refuses more than `max_raw_bytes` of uncompressed NDJSON.
    pub fn new(max_raw_bytes: u64) -> Result<Self, BuildError> {
        // Room for the header up front: the payload is compressed in place after it.
        let out = vec![0u8; FRAME_HEADER_LEN];
        Ok(FrameBuilder {
            enc: zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?,
            line: Vec::with_capacity(1024),
            records: 0,
            raw_bytes: 0,
            max_raw_bytes,
        })
    }

    /// Appends one record as an NDJSON line.
    pub fn push(&mut self, record: &Map<String, Value>) -> Result<(), BuildError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, record).map_err(std::io::Error::from)?;
        self.line.push(b'\n');
        self.raw_bytes += self.line.len() as u64;
        if self.raw_bytes > self.max_raw_bytes {
            return Err(BuildError::TooLarge {
                limit: self.max_raw_bytes,
            });
        }
        self.records = self
            .records
            .checked_add(1)
            .ok_or(BuildError::Overflow("more than 4294967295 records"))?;
        self.enc.write_all(&self.line)?;
        Ok(())
    }

    /// Records pushed so far.
    pub fn records(&self) -> u32 {
        self.records
    }

    /// Finishes compression and fills in the header.
    pub fn finish(self) -> Result<EncodedFrame, BuildError> {
        let mut bytes = self.enc.finish()?;
        let payload = bytes.get(FRAME_HEADER_LEN..).unwrap_or_default();
        let payload_len = u32::try_from(payload.len())
            .map_err(|_| BuildError::Overflow("compressed payload over 4 GiB"))?;
        let header = FrameHeader {
            version: FRAME_VERSION,
            flags: FLAG_ZSTD,
            payload_len,
            record_count: self.records,
            payload_crc: crc32fast::hash(payload),
        };
        bytes[..FRAME_HEADER_LEN].copy_from_slice(&header.encode());
        Ok(EncodedFrame {
            bytes,
            records: self.records,
        })
    }
}

/// Builds a frame from records in one go (tests and tools).
pub fn encode_frame<'a>(
    records: impl IntoIterator<Item = &'a Map<String, Value>>,
) -> Result<EncodedFrame, BuildError> {
    let mut b = FrameBuilder::new(u64::MAX)?;
    for r in records {
        b.push(r)?;
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(i: u64) -> Map<String, Value> {
        let Value::Object(m) = json!({"i": i, "s": "x\ny"}) else {
            unreachable!()
        };
        m
    }

    #[test]
    fn header_round_trips_and_every_single_bit_flip_is_detected() {
        let h = FrameHeader {
            version: FRAME_VERSION,
            flags: FLAG_ZSTD,
            payload_len: 1234,
            record_count: 7,
            payload_crc: 0xdead_beef,
        };
        let bytes = h.encode();
        assert_eq!(FrameHeader::decode(&bytes), Ok(h));
        for bit in 0..FRAME_HEADER_LEN * 8 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            let err = FrameHeader::decode(&b).unwrap_err();
            assert!(err.is_torn(), "bit {bit}: {err}");
        }
    }

    #[test]
    fn intact_header_of_a_newer_version_is_unsupported_not_torn() {
        let mut h = FrameHeader {
            version: 2,
            flags: FLAG_ZSTD,
            payload_len: 1,
            record_count: 1,
            payload_crc: 0,
        };
        let err = FrameHeader::decode(&h.encode()).unwrap_err();
        assert_eq!(err, Damage::UnsupportedVersion(2));
        assert!(!err.is_torn());
        h.version = FRAME_VERSION;
        h.flags = FLAG_ZSTD | 0x8000;
        assert_eq!(
            FrameHeader::decode(&h.encode()).unwrap_err(),
            Damage::UnknownFlags(0x8001)
        );
    }

    #[test]
    fn frame_payload_is_zstd_ndjson_with_matching_crc_and_count() {
        let recs: Vec<_> = (0..3).map(rec).collect();
        let f = encode_frame(&recs).unwrap();
        assert_eq!(f.records(), 3);
        let mut h = [0u8; FRAME_HEADER_LEN];
        h.copy_from_slice(&f.bytes()[..FRAME_HEADER_LEN]);
        let h = FrameHeader::decode(&h).unwrap();
        let payload = &f.bytes()[FRAME_HEADER_LEN..];
        assert_eq!(h.payload_len as usize, payload.len());
        assert_eq!(h.payload_crc, crc32fast::hash(payload));
        assert_eq!(h.record_count, 3);
        let text = String::from_utf8(zstd::decode_all(payload).unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2], r#"{"i":2,"s":"x\ny"}"#);
    }

    #[test]
    fn builder_enforces_the_uncompressed_limit() {
        let mut b = FrameBuilder::new(30).unwrap(); // one 19-byte line fits, two do not
        b.push(&rec(1)).unwrap();
        let err = b.push(&rec(2)).unwrap_err();
        assert!(err.to_string().contains("exceed 30 bytes"), "{err}");
    }

    #[test]
    fn segment_header_checks() {
        assert_eq!(check_segment_header(&segment_header()), Ok(()));
        assert!(check_segment_header(b"MLS").unwrap_err().is_torn());
        let err = check_segment_header(b"GARBAGE!").unwrap_err();
        assert!(!err.is_torn(), "{err}");
        let mut v2 = segment_header();
        v2[4] = 2;
        assert_eq!(
            check_segment_header(&v2),
            Err(Damage::UnsupportedSegmentVersion(2))
        );
    }
}
