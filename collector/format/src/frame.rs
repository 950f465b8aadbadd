//! The on-disk format: segment file header, frame header with its extension area, and frame
//! payload encoding.
//!
//! Kept in one place so the writer, the reader and recovery agree byte for byte. Everything is
//! little-endian and versioned, and an old reader refuses what it does not understand rather
//! than misread it.
//!
//! Segment file: `SEGMENT_HEADER_LEN` (8) bytes, then frames back to back.
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `MLSG` |
//! | 4..6 | segment format version (u16, 1) |
//! | 6..8 | reserved, zero |
//!
//! Frame, version 2 (what this build writes): a header of `26 + E` bytes, then `payload_len`
//! bytes of payload.
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `MLFR` |
//! | 4..6 | frame format version (u16, 2) |
//! | 6..8 | flags (u16); bit 0 = payload is zstd (always set); bit 1 = payload is sealed (encryption at rest, below); other bits must be zero |
//! | 8..12 | payload length in bytes (u32) |
//! | 12..16 | record count (u32) |
//! | 16..20 | CRC32 (IEEE) of the payload |
//! | 20..22 | extension area length `E` in bytes (u16, 0 to 65535) |
//! | 22..22+E | extension entries (TLV), back to back |
//! | 22+E..26+E | CRC32 (IEEE) of header bytes 0..22+E (the extensions included) |
//!
//! Extension entry: type (u16), value length `L` (u16), `L` bytes of value. Bit 15 of the type
//! marks a **critical** entry: a reader that does not know a critical type refuses the frame
//! (for what changes how the payload is read, e.g. an encryption key id); it skips an unknown
//! non-critical entry (for what only adds to it, e.g. a Merkle leaf index). A type appears at
//! most once. New metadata is a new entry type, not a new version; bytes 0..22 and the
//! CRC-after-extensions rule hold for every version from 2 on, so even a newer version's header
//! is CRC-checked before it is refused as unsupported (never mistaken for a torn write).
//!
//! | type | name | value |
//! |---|---|---|
//! | `0x0001` | batch id | the sender's `meshlog-batch-id`: 1 to 128 bytes of visible ASCII |
//! | `0x8002` | data key (critical) | a sealed payload's 24-byte XChaCha20 nonce, then the id of the data-encryption key that sealed it (1 to 32 of `A-Z a-z 0-9 . _ -`) |
//! | `0x0010` | chain | 40 bytes: the frame's Merkle leaf index (u64) and the leaf hash of the frame before it (32 bytes; zeros for leaf 0) |
//! | `0x0011` | received | 8 bytes: when the collector received the frame's batch, nanoseconds since the Unix epoch (u64), by its own clock; what retention runs on. Frames written before it have none |
//!
//! The chain entry (see `integrity/mod.rs`) is reserved by [`FrameBuilder`] with a zero value
//! and filled in by the writer, which alone knows the frame's place in the log
//! ([`EncodedFrame::stamp_chain`]); the header CRC is recomputed then. Its length never changes,
//! so stamping moves no byte of the payload.
//!
//! Frame, version 1 (written before batch ids; still read): a 24-byte header, bytes 0..20 as
//! above with version 1, then 20..24 the CRC32 of bytes 0..20. No extensions.
//!
//! Payload (both versions): zstd-compressed NDJSON, one canonical record per line.
//!
//! Sealed payload (encryption at rest, version 2 only): flag bit 1 set **and** a data key entry
//! (`0x8002`), always both or neither (anything else is refused as malformed). The payload is
//! then `ciphertext || 16-byte tag`: the zstd payload above, sealed with XChaCha20-Poly1305
//! under the named key and the entry's nonce ([`meshlog_tlog::seal`]). The payload length and
//! CRC are those of the stored (sealed) bytes, so recovery and torn-tail detection need no key.
//! The associated data ([`FrameHeader::associated_data`]) is, byte for byte as written:
//!
//! ```text
//! header bytes 0..16 (magic, version, flags, payload length, record count)
//! || the batch id entry (type, length, value), if the frame has one
//! || the data key entry (type, length, nonce, key id)
//! ```
//!
//! So the flags, the record count, the batch id, the key id and the nonce cannot be changed, and
//! since every header has its own random nonce, a sealed payload opens under its own header
//! only. Left out are what is unknown when sealing (the payload CRC and the header CRC, which
//! cover the ciphertext) and the other extension entries: they say where a frame sits, not how
//! its payload reads (e.g. a Merkle leaf index, which the writer can add once the frame's place
//! in the log is known), and the Merkle leaf over the frame's bytes covers them. An entry type
//! that changes how a payload reads must be critical and join this list. Whole frames moved,
//! dropped or repeated are not caught by the seal; that is the Merkle log's job.

use crate::batch_id::{BatchId, BatchIdError};
use bytes::Bytes;
use meshlog_tlog::keys::{Keyring, check_data_key_id};
use meshlog_tlog::seal::{self, NONCE_LEN, OpenError, SealError, TAG_LEN};
use serde_json::{Map, Value};
use std::io::Write;
use std::sync::Arc;

/// Magic at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 4] = *b"MLSG";
/// Segment format version this build writes and reads.
pub const SEGMENT_VERSION: u16 = 1;
/// Length of the segment file header in bytes.
pub const SEGMENT_HEADER_LEN: u64 = 8;
/// Magic at the start of every frame.
pub const FRAME_MAGIC: [u8; 4] = *b"MLFR";
/// Frame format version this build writes.
pub const FRAME_VERSION: u16 = 2;
/// The version-1 frame format, still read.
pub const FRAME_VERSION_1: u16 = 1;
/// Length of a version-1 frame header in bytes.
pub const FRAME_V1_HEADER_LEN: usize = 24;
/// Length of a version-2 frame header without extensions, in bytes.
pub const FRAME_V2_FIXED_LEN: usize = 26;
/// Bytes of a frame header that tell its full length (every header is at least this long).
pub const FRAME_HEADER_PREFIX_LEN: usize = 24;
/// Flag bit: the payload is zstd-compressed.
pub const FLAG_ZSTD: u16 = 1;
/// Flag bit: the payload is sealed (encrypted at rest); the data key entry says with what.
pub const FLAG_SEALED: u16 = 2;
/// Flags this build understands.
const KNOWN_FLAGS: u16 = FLAG_ZSTD | FLAG_SEALED;
/// Extension type bit: a reader that does not know the type must refuse the frame.
pub const EXT_CRITICAL: u16 = 0x8000;
/// Extension type: the batch id.
pub const EXT_BATCH_ID: u16 = 0x0001;
/// Extension type (critical): nonce and key id of a sealed payload.
pub const EXT_DATA_KEY: u16 = EXT_CRITICAL | 0x0002;
/// Extension type: the hash chain (leaf index and previous leaf hash), not critical.
pub const EXT_CHAIN: u16 = 0x0010;
/// Length of the chain entry's value: leaf index (8) and previous leaf hash (32).
pub const CHAIN_VALUE_LEN: usize = 40;
/// Extension type: when the collector received the frame's batch (u64 nanoseconds since the
/// Unix epoch, its own clock), not critical: an older reader skips it.
pub const EXT_RECEIVED: u16 = 0x0011;
/// Length of the received entry's value.
pub const RECEIVED_VALUE_LEN: usize = 8;
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
    /// Fewer bytes remain than the frame header needs.
    #[error("short frame header ({available} of {needed} bytes)")]
    ShortHeader {
        /// Bytes present.
        available: u64,
        /// Bytes the header needs (as far as its first bytes tell).
        needed: u64,
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
    #[error(
        "unsupported frame format version {0} (this build reads versions {FRAME_VERSION_1} \
         and {FRAME_VERSION})"
    )]
    UnsupportedVersion(u16),
    /// Flags this build does not understand (the header itself is intact).
    #[error("unknown frame flags {0:#06x}")]
    UnknownFlags(u16),
    /// A critical extension this build does not understand (the header itself is intact).
    #[error("unknown critical frame extension {0:#06x}")]
    UnknownExtension(u16),
    /// The extension area is malformed although the header CRC matches: written that way.
    #[error("malformed frame extensions: {0}")]
    BadExtensions(String),
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
                | Damage::UnknownExtension(_)
                | Damage::BadExtensions(_)
                | Damage::BadSegmentMagic { .. }
                | Damage::UnsupportedSegmentVersion(_)
        )
    }
}

/// What a frame header's extension area says. Every field is optional; a frame without
/// extensions has them all `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// The batch id the frame was sent with (`meshlog-batch-id`).
    pub batch_id: Option<BatchId>,
    /// How the payload is sealed, when it is (the data key entry).
    pub sealing: Option<Sealing>,
    /// The frame's place in the hash chain (frames written before the chain have none).
    pub chain: Option<Chain>,
    /// When the collector received the frame's batch, by its own clock (nanoseconds since the
    /// Unix epoch); frames written before this entry existed have none.
    pub received_unix_ns: Option<u64>,
}

/// The data key entry of a sealed frame: which key sealed the payload, under which nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealing {
    /// Id of the data-encryption key (in the key file) that sealed the payload.
    pub key_id: String,
    /// The XChaCha20 nonce, random per frame.
    pub nonce: [u8; NONCE_LEN],
}

impl Sealing {
    /// The entry's value: `nonce || key id`.
    fn value(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(NONCE_LEN + self.key_id.len());
        v.extend_from_slice(&self.nonce);
        v.extend_from_slice(self.key_id.as_bytes());
        v
    }

    fn parse(value: &[u8]) -> Result<Sealing, String> {
        let Some((nonce, id)) = value.split_first_chunk::<NONCE_LEN>() else {
            return Err(format!(
                "data key entry of {} bytes is shorter than its {NONCE_LEN}-byte nonce",
                value.len()
            ));
        };
        let key_id = std::str::from_utf8(id)
            .ok()
            .filter(|id| check_data_key_id(id).is_ok())
            .ok_or_else(|| {
                format!(
                    "data key entry has an invalid key id (hex {})",
                    hex::encode(id)
                )
            })?;
        Ok(Sealing {
            key_id: key_id.to_owned(),
            nonce: *nonce,
        })
    }
}

/// A frame's link in the store's hash chain: its Merkle leaf index and the leaf hash
/// (RFC 6962, `SHA-256(0x00 || frame bytes)`) of the frame written just before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Chain {
    /// Leaf index: frames counted from the first ever written, from 0.
    pub leaf_index: u64,
    /// Leaf hash of the previous frame; all zeros for leaf 0.
    pub prev_leaf: [u8; 32],
}

impl Chain {
    /// The value a frame carries until the writer stamps it.
    pub const PLACEHOLDER: Chain = Chain {
        leaf_index: 0,
        prev_leaf: [0; 32],
    };

    /// The entry's value bytes.
    pub fn encode(&self) -> [u8; CHAIN_VALUE_LEN] {
        let mut v = [0u8; CHAIN_VALUE_LEN];
        v[..8].copy_from_slice(&self.leaf_index.to_le_bytes());
        v[8..].copy_from_slice(&self.prev_leaf);
        v
    }

    /// Parses an entry's value; `None` unless it is exactly [`CHAIN_VALUE_LEN`] bytes.
    pub fn decode(value: &[u8]) -> Option<Chain> {
        let v: &[u8; CHAIN_VALUE_LEN] = value.try_into().ok()?;
        let (index, prev) = v.split_at(8);
        Some(Chain {
            leaf_index: u64::from_le_bytes(index.try_into().ok()?),
            prev_leaf: prev.try_into().ok()?,
        })
    }
}

/// Finds the entry of type `ty` in an extension area: the byte range of its value within
/// `area`. Walks entries generically (unknown and critical ones included), so it works on any
/// header whose CRC matched, also one this build cannot fully decode.
pub fn find_entry(area: &[u8], ty: u16) -> Option<std::ops::Range<usize>> {
    let mut at = 0usize;
    while let (Some(t), Some(l)) = (area.get(at..at + 2), area.get(at + 2..at + 4)) {
        let len = usize::from(u16::from_le_bytes([l[0], l[1]]));
        let value = at + 4..at + 4 + len;
        area.get(value.clone())?;
        if u16::from_le_bytes([t[0], t[1]]) == ty {
            return Some(value);
        }
        at = value.end;
    }
    None
}

impl Extensions {
    /// The extension area's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(id) = &self.batch_id {
            push_entry(&mut out, EXT_BATCH_ID, id.as_bytes());
        }
        if let Some(s) = &self.sealing {
            push_entry(&mut out, EXT_DATA_KEY, &s.value());
        }
        if let Some(chain) = &self.chain {
            push_entry(&mut out, EXT_CHAIN, &chain.encode());
        }
        if let Some(t) = self.received_unix_ns {
            push_entry(&mut out, EXT_RECEIVED, &t.to_le_bytes());
        }
        out
    }

    /// Parses an extension area whose header CRC already matched.
    pub fn decode(mut area: &[u8]) -> Result<Extensions, Damage> {
        let bad = |m: String| Damage::BadExtensions(m);
        let mut ext = Extensions::default();
        let mut seen = Vec::new();
        while !area.is_empty() {
            let (Some(t), Some(l)) = (area.get(0..2), area.get(2..4)) else {
                return Err(bad(format!(
                    "{} stray bytes after the last entry",
                    area.len()
                )));
            };
            let ty = u16::from_le_bytes([t[0], t[1]]);
            let len = usize::from(u16::from_le_bytes([l[0], l[1]]));
            let Some(value) = area.get(4..4 + len) else {
                return Err(bad(format!(
                    "entry {ty:#06x} claims {len} bytes, {} left",
                    area.len() - 4
                )));
            };
            if seen.contains(&ty) {
                return Err(bad(format!("entry {ty:#06x} appears twice")));
            }
            seen.push(ty);
            match ty {
                EXT_BATCH_ID => {
                    let id = BatchId::parse(value)
                        .map_err(|e: BatchIdError| bad(format!("batch id {e}")))?;
                    ext.batch_id = Some(id);
                }
                EXT_DATA_KEY => ext.sealing = Some(Sealing::parse(value).map_err(bad)?),
                EXT_CHAIN => {
                    let chain = Chain::decode(value).ok_or_else(|| {
                        bad(format!(
                            "chain entry is {len} bytes, expected {CHAIN_VALUE_LEN}"
                        ))
                    })?;
                    ext.chain = Some(chain);
                }
                EXT_RECEIVED => {
                    let v: [u8; RECEIVED_VALUE_LEN] = value.try_into().map_err(|_| {
                        bad(format!(
                            "received entry is {len} bytes, expected {RECEIVED_VALUE_LEN}"
                        ))
                    })?;
                    ext.received_unix_ns = Some(u64::from_le_bytes(v));
                }
                t if t & EXT_CRITICAL != 0 => return Err(Damage::UnknownExtension(t)),
                // Unknown and not critical: written by a newer build, safe to ignore.
                _ => {}
            }
            area = area.get(4 + len..).unwrap_or_default();
        }
        Ok(ext)
    }
}

fn push_entry(out: &mut Vec<u8>, ty: u16, value: &[u8]) {
    // Values are bounded by their own rules (a batch id is at most 128 bytes), far below u16.
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(value.get(..usize::from(len)).unwrap_or(value));
}

/// The full length of a frame header from its first [`FRAME_HEADER_PREFIX_LEN`] bytes. Only the
/// magic is checked; the length read here is confirmed by the header CRC in
/// [`FrameHeader::decode`].
pub fn frame_header_len(prefix: &[u8; FRAME_HEADER_PREFIX_LEN]) -> Result<usize, Damage> {
    if prefix[0..4] != FRAME_MAGIC {
        return Err(Damage::BadMagic {
            found: hex::encode(&prefix[0..4]),
        });
    }
    let version = u16::from_le_bytes([prefix[4], prefix[5]]);
    Ok(if version <= FRAME_VERSION_1 {
        FRAME_V1_HEADER_LEN
    } else {
        FRAME_V2_FIXED_LEN + usize::from(u16::from_le_bytes([prefix[20], prefix[21]]))
    })
}

/// A decoded, CRC-checked frame header.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// What the extension area says (nothing for version 1).
    pub extensions: Extensions,
}

impl FrameHeader {
    /// The header bytes in the current format (version 2), CRC filled in.
    pub fn encode(&self) -> Vec<u8> {
        let area = self.extensions.encode();
        let area_len = u16::try_from(area.len()).unwrap_or(u16::MAX);
        let mut h = Vec::with_capacity(FRAME_V2_FIXED_LEN + area.len());
        h.extend_from_slice(&FRAME_MAGIC);
        h.extend_from_slice(&self.version.to_le_bytes());
        h.extend_from_slice(&self.flags.to_le_bytes());
        h.extend_from_slice(&self.payload_len.to_le_bytes());
        h.extend_from_slice(&self.record_count.to_le_bytes());
        h.extend_from_slice(&self.payload_crc.to_le_bytes());
        h.extend_from_slice(&area_len.to_le_bytes());
        h.extend_from_slice(area.get(..usize::from(area_len)).unwrap_or(&area));
        let crc = crc32fast::hash(&h);
        h.extend_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes a whole header (`h` is exactly [`frame_header_len`] bytes) and checks magic,
    /// header CRC, version, flags and extensions, in that order: a damaged header is reported
    /// as damage before its version is believed.
    pub fn decode(h: &[u8]) -> Result<Self, Damage> {
        let prefix: &[u8; FRAME_HEADER_PREFIX_LEN] = h
            .get(..FRAME_HEADER_PREFIX_LEN)
            .and_then(|p| p.try_into().ok())
            .ok_or(Damage::ShortHeader {
                available: h.len() as u64,
                needed: FRAME_HEADER_PREFIX_LEN as u64,
            })?;
        let len = frame_header_len(prefix)?;
        let Some(h) = h.get(..len) else {
            return Err(Damage::ShortHeader {
                available: h.len() as u64,
                needed: len as u64,
            });
        };
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let crc_at = len - 4;
        let stored = u32_at(crc_at);
        let computed = crc32fast::hash(&h[..crc_at]);
        if stored != computed {
            return Err(Damage::HeaderCrc { stored, computed });
        }
        let version = u16::from_le_bytes([h[4], h[5]]);
        if version != FRAME_VERSION_1 && version != FRAME_VERSION {
            return Err(Damage::UnsupportedVersion(version));
        }
        let flags = u16::from_le_bytes([h[6], h[7]]);
        // Version 1 predates sealing: its only flag is zstd.
        let known = if version == FRAME_VERSION_1 {
            FLAG_ZSTD
        } else {
            KNOWN_FLAGS
        };
        if flags & !known != 0 || flags & FLAG_ZSTD == 0 {
            return Err(Damage::UnknownFlags(flags));
        }
        let extensions = if version == FRAME_VERSION {
            Extensions::decode(&h[FRAME_V2_FIXED_LEN - 4..crc_at])?
        } else {
            Extensions::default()
        };
        check_sealing(flags, &extensions)?;
        Ok(FrameHeader {
            version,
            flags,
            payload_len: u32_at(8),
            record_count: u32_at(12),
            payload_crc: u32_at(16),
            extensions,
        })
    }
}

/// The sealed flag and the data key entry come together or not at all.
fn check_sealing(flags: u16, ext: &Extensions) -> Result<(), Damage> {
    match (flags & FLAG_SEALED != 0, ext.sealing.is_some()) {
        (true, false) => Err(Damage::BadExtensions(
            "the sealed flag is set but there is no data key entry".into(),
        )),
        (false, true) => Err(Damage::BadExtensions(
            "a data key entry on a frame not flagged sealed".into(),
        )),
        _ => Ok(()),
    }
}

impl FrameHeader {
    /// The associated data a sealed payload is bound to (see the module docs): header bytes
    /// 0..16, then the batch id entry if any, then the data key entry, as written.
    pub fn associated_data(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(16 + 4 + 128 + 4 + NONCE_LEN + 32);
        aad.extend_from_slice(&FRAME_MAGIC);
        aad.extend_from_slice(&self.version.to_le_bytes());
        aad.extend_from_slice(&self.flags.to_le_bytes());
        aad.extend_from_slice(&self.payload_len.to_le_bytes());
        aad.extend_from_slice(&self.record_count.to_le_bytes());
        if let Some(id) = &self.extensions.batch_id {
            push_entry(&mut aad, EXT_BATCH_ID, id.as_bytes());
        }
        if let Some(s) = &self.extensions.sealing {
            push_entry(&mut aad, EXT_DATA_KEY, &s.value());
        }
        aad
    }

    /// The zstd payload of a sealed frame, opened with `keyring`; `payload` is the stored
    /// (CRC-checked) `ciphertext || tag`. `None` when the frame is not sealed.
    pub fn open_payload(
        &self,
        keyring: &Keyring,
        payload: &[u8],
    ) -> Option<Result<Vec<u8>, OpenError>> {
        let s = self.extensions.sealing.as_ref()?;
        Some(seal::open_detached(
            keyring,
            &s.key_id,
            &s.nonce,
            payload,
            &self.associated_data(),
        ))
    }
}

/// A complete frame (header and payload) ready to append to a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    bytes: Vec<u8>,
    header_len: usize,
    records: u32,
    batch_id: Option<BatchId>,
    key_id: Option<String>,
    /// The records uncompressed, when the builder was asked to keep them
    /// ([`FrameBuilder::keep_records`]).
    plain: Option<Arc<PlainRecords>>,
}

/// Set on a member index offset (see [`PlainRecords`]) whose key or string value has an escape;
/// offsets themselves stay below it (a longer line gets no index).
pub const MEMBER_ESCAPED: u32 = 1 << 31;

/// One member of a line, found by the line's member index ([`PlainRecords`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The key's text between its quotes.
    pub key: std::ops::Range<usize>,
    /// The value's JSON text.
    pub value: std::ops::Range<usize>,
    /// The key was written with an escape.
    pub key_escaped: bool,
    /// The value is a string written with an escape.
    pub value_escaped: bool,
}

/// Member `i` of `line` by its member index `members`, when the offsets land on `"key":value`
/// ended by a `,` or the closing `}`; `None` when the index does not fit the line there.
pub fn member(line: &[u8], members: &[u32], i: usize) -> Option<Member> {
    let at = |j: usize| {
        members
            .get(j)
            .map(|&m| ((m & !MEMBER_ESCAPED) as usize, m & MEMBER_ESCAPED != 0))
    };
    let (k, key_escaped) = at(2 * i)?;
    let (v, value_escaped) = at(2 * i + 1)?;
    // The value ends where the next member's `,` is, the last one at the closing `}`.
    let end = match at(2 * i + 2) {
        Some((next, _)) => next.checked_sub(1)?,
        None => line.len().checked_sub(1)?,
    };
    let fits = v >= k + 3
        && end >= v
        && line.get(k) == Some(&b'"')
        && line.get(v - 2) == Some(&b'"')
        && line.get(v - 1) == Some(&b':')
        && matches!(line.get(end), Some(b',' | b'}'));
    // Lazily: the ranges are only sound once the offsets fit.
    fits.then(|| Member {
        key: k + 1..v - 2,
        value: v..end,
        key_escaped,
        value_escaped,
    })
}

/// A frame's records as the NDJSON it was built from, kept beside the compressed frame so the
/// store can hand freshly committed records to its subscribers without reading, checking and
/// decompressing what it just wrote.
///
/// A line may come with its **member index**: for each top-level member of the JSON object, the
/// offset of its key's opening quote and of its value's first byte, as the serializer wrote
/// them, and the line's **shape**: a token equal for two lines only when they have the same keys
/// in the same order (0: not known). A reader that trusts the serializer (the same process)
/// finds a key's value without scanning the line, and a line shaped like the previous one
/// without looking at its other keys; an empty index means none was given. An offset of a key or string value
/// written with an escape has [`MEMBER_ESCAPED`] set (the reader then decodes it), so the others
/// can be taken as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlainRecords {
    /// The lines, shared: a record handed out is a slice of it ([`PlainRecords::line_bytes`]).
    ndjson: Bytes,
    /// End of each line (its newline excluded) in `ndjson`.
    ends: Vec<usize>,
    /// Every line's member index, `(key, value)` offset pairs flattened.
    members: Vec<u32>,
    /// End of each line's pairs in `members`.
    member_ends: Vec<usize>,
    /// Each line's shape token.
    shapes: Vec<u64>,
}

impl PlainRecords {
    /// The records, each one JSON object without its newline, in frame order.
    pub fn lines(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.records().map(|(line, _, _)| line)
    }

    /// The records with their member indexes (empty when not given) and shapes, in frame
    /// order.
    pub fn records(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u32], u64)> + '_ {
        let (mut start, mut m) = (0, 0);
        self.ends
            .iter()
            .zip(&self.member_ends)
            .zip(&self.shapes)
            .map(move |((&end, &m_end), &shape)| {
                let line = self.ndjson.get(start..end).unwrap_or_default();
                let members = self.members.get(m..m_end).unwrap_or_default();
                start = end + 1;
                m = m_end;
                (line, members, shape)
            })
    }

    /// Record `i` as a shared slice of the frame's lines (no copy), with its member index
    /// range in [`PlainRecords::members_of`] and its shape.
    pub fn line_bytes(&self, i: usize) -> Option<(Bytes, std::ops::Range<usize>, u64)> {
        let end = *self.ends.get(i)?;
        let start = match i.checked_sub(1) {
            Some(p) => self.ends.get(p)? + 1,
            None => 0,
        };
        let m_end = *self.member_ends.get(i)?;
        let m_start = match i.checked_sub(1) {
            Some(p) => *self.member_ends.get(p)?,
            None => 0,
        };
        let line = self.ndjson.slice(start..end);
        Some((
            line,
            m_start..m_end,
            self.shapes.get(i).copied().unwrap_or(0),
        ))
    }

    /// The member index entries `range` (from [`PlainRecords::line_bytes`]).
    pub fn members_of(&self, range: std::ops::Range<usize>) -> &[u32] {
        self.members.get(range).unwrap_or_default()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.ndjson.len()
            + (self.ends.len() + self.member_ends.len() + self.shapes.len()) * 8
            + self.members.len() * 4
    }
}

/// [`PlainRecords`] being built.
#[derive(Debug, Default)]
struct PlainBuilder {
    ndjson: Vec<u8>,
    plain: PlainRecords,
}

impl PlainBuilder {
    fn push(&mut self, line: &[u8], members: &[u32], shape: u64) {
        let p = &mut self.plain;
        p.shapes.push(shape);
        p.members.extend_from_slice(members);
        p.member_ends.push(p.members.len());
        self.ndjson.extend_from_slice(line);
        // The line ends with its newline (`push_line`'s contract); one without is kept whole.
        let end = match line.last() {
            Some(b'\n') => self.ndjson.len() - 1,
            _ => {
                self.ndjson.push(b'\n');
                self.ndjson.len() - 1
            }
        };
        p.ends.push(end);
    }

    fn finish(self) -> PlainRecords {
        PlainRecords {
            ndjson: Bytes::from(self.ndjson),
            ..self.plain
        }
    }
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

    /// The batch id in the frame's header, if any.
    pub fn batch_id(&self) -> Option<&BatchId> {
        self.batch_id.as_ref()
    }

    /// The id of the data-encryption key that sealed the payload; `None` when it is plain.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// The records uncompressed, if the builder kept them ([`FrameBuilder::keep_records`]).
    pub fn plain(&self) -> Option<&Arc<PlainRecords>> {
        self.plain.as_ref()
    }

    /// Takes the kept records out (the writer hands them to the subscriptions).
    pub fn take_plain(&mut self) -> Option<Arc<PlainRecords>> {
        self.plain.take()
    }

    /// Writes `chain` into the frame's reserved chain entry and recomputes the header CRC (the
    /// writer's job: only it knows the frame's place in the log). False, changing nothing, if
    /// the frame has no chain entry.
    pub fn stamp_chain(&mut self, chain: Chain) -> bool {
        let crc_at = self.header_len.saturating_sub(4);
        let Some(area) = self.bytes.get_mut(FRAME_V2_FIXED_LEN - 4..crc_at) else {
            return false;
        };
        let Some(value) = find_entry(area, EXT_CHAIN).and_then(|r| area.get_mut(r)) else {
            return false;
        };
        if value.len() != CHAIN_VALUE_LEN {
            return false;
        }
        value.copy_from_slice(&chain.encode());
        let crc = crc32fast::hash(self.bytes.get(..crc_at).unwrap_or_default());
        if let Some(c) = self.bytes.get_mut(crc_at..self.header_len) {
            c.copy_from_slice(&crc.to_le_bytes());
        }
        true
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
    /// Encrypting the payload failed.
    #[error("sealing the frame payload failed: {0}")]
    Seal(#[from] SealError),
}

/// Streams canonical records into a compressed frame, so the uncompressed NDJSON of a large
/// request never sits in memory as a whole; or, when the records are kept anyway
/// ([`FrameBuilder::keep_records`]), compresses them in one go at the end with the thread's
/// reused compressor (a new zstd context per frame cost about as much as compressing it).
pub struct FrameBuilder {
    /// The streaming compressor, with the header's room already in its output; `None` when
    /// the records are kept and compressed at the end.
    enc: Option<zstd::stream::write::Encoder<'static, Vec<u8>>>,
    header_len: usize,
    extensions: Extensions,
    /// Seals the payload with its current key when set (the key id and nonce are in
    /// `extensions.sealing`).
    keyring: Option<Arc<Keyring>>,
    line: Vec<u8>,
    records: u32,
    raw_bytes: u64,
    max_raw_bytes: u64,
    plain: Option<PlainBuilder>,
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
    /// A builder that refuses more than `max_raw_bytes` of uncompressed NDJSON and writes
    /// `batch_id` into the frame header.
    pub fn new(max_raw_bytes: u64, batch_id: Option<BatchId>) -> Result<Self, BuildError> {
        Self::with_encryption(max_raw_bytes, batch_id, None)
    }

    /// Like [`new`](Self::new); with a keyring, the payload is sealed with its current key and
    /// a fresh random nonce (encryption at rest).
    pub fn with_encryption(
        max_raw_bytes: u64,
        batch_id: Option<BatchId>,
        keyring: Option<Arc<Keyring>>,
    ) -> Result<Self, BuildError> {
        Self::with_received(max_raw_bytes, batch_id, keyring, None)
    }

    /// Like [`with_encryption`](Self::with_encryption), with the collector's receive time of
    /// the batch in the header's received entry ([`EXT_RECEIVED`]), when given.
    pub fn with_received(
        max_raw_bytes: u64,
        batch_id: Option<BatchId>,
        keyring: Option<Arc<Keyring>>,
        received_unix_ns: Option<u64>,
    ) -> Result<Self, BuildError> {
        let sealing = match &keyring {
            Some(k) => Some(Sealing {
                key_id: k.current().id().to_owned(),
                nonce: seal::random_nonce()?,
            }),
            None => None,
        };
        // The chain entry is reserved now and stamped by the writer.
        let extensions = Extensions {
            batch_id,
            sealing,
            chain: Some(Chain::PLACEHOLDER),
            received_unix_ns,
        };
        let header_len = FRAME_V2_FIXED_LEN + extensions.encode().len();
        // Room for the header up front: the payload is compressed in place after it.
        let out = vec![0u8; header_len];
        Ok(FrameBuilder {
            enc: Some(zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?),
            header_len,
            extensions,
            keyring,
            line: Vec::with_capacity(1024),
            records: 0,
            raw_bytes: 0,
            max_raw_bytes,
            plain: None,
        })
    }

    /// Appends one record as an NDJSON line.
    pub fn push(&mut self, record: &Map<String, Value>) -> Result<(), BuildError> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        serde_json::to_writer(&mut line, record).map_err(std::io::Error::from)?;
        line.push(b'\n');
        let pushed = self.push_line(&line);
        self.line = line;
        pushed
    }

    /// Appends one record already serialized as its NDJSON line (`serde_json::to_writer` of
    /// the record, then `\n`), for a caller that needed those bytes anyway.
    pub fn push_line(&mut self, line: &[u8]) -> Result<(), BuildError> {
        self.push_indexed(line, &[], 0)
    }

    /// [`push_line`](Self::push_line) with the line's member index and shape (see
    /// [`PlainRecords`]), kept with the records when they are kept.
    pub fn push_indexed(
        &mut self,
        line: &[u8],
        members: &[u32],
        shape: u64,
    ) -> Result<(), BuildError> {
        self.raw_bytes += line.len() as u64;
        if self.raw_bytes > self.max_raw_bytes {
            return Err(BuildError::TooLarge {
                limit: self.max_raw_bytes,
            });
        }
        self.records = self
            .records
            .checked_add(1)
            .ok_or(BuildError::Overflow("more than 4294967295 records"))?;
        if let Some(enc) = &mut self.enc {
            enc.write_all(line)?;
        }
        if let Some(p) = &mut self.plain {
            p.push(line, members, shape);
        }
        Ok(())
    }

    /// Keeps a copy of the records uncompressed in the finished frame
    /// ([`EncodedFrame::plain`]); call before the first push.
    pub fn keep_records(&mut self) {
        if self.records == 0 {
            self.plain.get_or_insert_with(PlainBuilder::default);
            self.enc = None;
        }
    }

    /// Records pushed so far.
    pub fn records(&self) -> u32 {
        self.records
    }

    /// Finishes compression, seals the payload if asked to, and fills in the header.
    pub fn finish(self) -> Result<EncodedFrame, BuildError> {
        let mut bytes = match self.enc {
            Some(enc) => enc.finish()?,
            None => {
                let mut out = vec![0u8; self.header_len];
                let ndjson = self.plain.as_ref().map_or(&[][..], |p| &p.ndjson[..]);
                compress_into(&mut out, ndjson)?;
                out
            }
        };
        let sealed = self.keyring.is_some();
        let tag_len = if sealed { TAG_LEN } else { 0 };
        let payload_len = u32::try_from(bytes.len() - self.header_len + tag_len)
            .map_err(|_| BuildError::Overflow("compressed payload over 4 GiB"))?;
        let mut header = FrameHeader {
            version: FRAME_VERSION,
            flags: if sealed {
                FLAG_ZSTD | FLAG_SEALED
            } else {
                FLAG_ZSTD
            },
            payload_len,
            record_count: self.records,
            payload_crc: 0,
            extensions: self.extensions,
        };
        if let (Some(keyring), Some(s)) = (&self.keyring, &header.extensions.sealing) {
            let payload = bytes.get_mut(self.header_len..).unwrap_or_default();
            let tag = seal::seal_in_place(keyring, &s.nonce, &header.associated_data(), payload)?;
            bytes.extend_from_slice(&tag);
        }
        // Over the bytes as stored (the ciphertext when sealed): checking needs no key.
        header.payload_crc = crc32fast::hash(bytes.get(self.header_len..).unwrap_or_default());
        let encoded = header.encode();
        if let Some(room) = bytes.get_mut(..self.header_len) {
            room.copy_from_slice(&encoded);
        }
        Ok(EncodedFrame {
            bytes,
            header_len: self.header_len,
            records: self.records,
            key_id: header.extensions.sealing.map(|s| s.key_id),
            batch_id: header.extensions.batch_id,
            plain: self.plain.map(|p| Arc::new(p.finish())),
        })
    }
}

/// Appends `src` compressed as one zstd frame to `out`, with this thread's compressor (made
/// once per thread, its context reused).
fn compress_into(out: &mut Vec<u8>, src: &[u8]) -> std::io::Result<()> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        let compressor = match &mut *c {
            Some(comp) => comp,
            None => c.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
        };
        out.extend_from_slice(&compressor.compress(src)?);
        Ok(())
    })
}

/// Builds a frame from records in one go (tests and tools).
pub fn encode_frame<'a>(
    records: impl IntoIterator<Item = &'a Map<String, Value>>,
) -> Result<EncodedFrame, BuildError> {
    encode_frame_with_id(records, None)
}

/// Like [`encode_frame`], with a batch id in the header.
pub fn encode_frame_with_id<'a>(
    records: impl IntoIterator<Item = &'a Map<String, Value>>,
    batch_id: Option<BatchId>,
) -> Result<EncodedFrame, BuildError> {
    let mut b = FrameBuilder::new(u64::MAX, batch_id)?;
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

    fn id(s: &str) -> BatchId {
        BatchId::parse(s.as_bytes()).unwrap()
    }

    fn header(batch_id: Option<BatchId>) -> FrameHeader {
        FrameHeader {
            version: FRAME_VERSION,
            flags: FLAG_ZSTD,
            payload_len: 1234,
            record_count: 7,
            payload_crc: 0xdead_beef,
            extensions: Extensions {
                batch_id,
                ..Extensions::default()
            },
        }
    }

    /// A header in an arbitrary version-2-style layout: fields, extension area, CRC.
    fn raw_v2(version: u16, flags: u16, area: &[u8]) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&FRAME_MAGIC);
        h.extend_from_slice(&version.to_le_bytes());
        h.extend_from_slice(&flags.to_le_bytes());
        h.extend_from_slice(&[0; 12]);
        h.extend_from_slice(&(area.len() as u16).to_le_bytes());
        h.extend_from_slice(area);
        let crc = crc32fast::hash(&h);
        h.extend_from_slice(&crc.to_le_bytes());
        h
    }

    /// A version-1 header, as the version-1 writer laid it out.
    fn raw_v1(payload_len: u32, record_count: u32, payload_crc: u32) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&FRAME_MAGIC);
        h.extend_from_slice(&FRAME_VERSION_1.to_le_bytes());
        h.extend_from_slice(&FLAG_ZSTD.to_le_bytes());
        h.extend_from_slice(&payload_len.to_le_bytes());
        h.extend_from_slice(&record_count.to_le_bytes());
        h.extend_from_slice(&payload_crc.to_le_bytes());
        let crc = crc32fast::hash(&h);
        h.extend_from_slice(&crc.to_le_bytes());
        h
    }

    fn decode(bytes: &[u8]) -> Result<FrameHeader, Damage> {
        FrameHeader::decode(bytes)
    }

    #[test]
    fn header_round_trips_and_every_single_bit_flip_is_detected() {
        for batch_id in [None, Some(id("0123456789abcdef:1-500"))] {
            let h = header(batch_id);
            let bytes = h.encode();
            let prefix: [u8; FRAME_HEADER_PREFIX_LEN] =
                bytes[..FRAME_HEADER_PREFIX_LEN].try_into().unwrap();
            assert_eq!(frame_header_len(&prefix), Ok(bytes.len()));
            assert_eq!(decode(&bytes), Ok(h.clone()));
            for bit in 0..bytes.len() * 8 {
                let mut b = bytes.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                let err = decode(&b).unwrap_err();
                assert!(err.is_torn(), "bit {bit}: {err}");
            }
        }
    }

    #[test]
    fn the_batch_id_is_a_tlv_covered_by_the_header_crc() {
        let h = header(Some(id("vm:7-9"))).encode();
        assert_eq!(h.len(), FRAME_V2_FIXED_LEN + 4 + 6);
        assert_eq!(&h[20..22], &10u16.to_le_bytes(), "extension length");
        assert_eq!(&h[22..24], &EXT_BATCH_ID.to_le_bytes(), "type");
        assert_eq!(&h[24..26], &6u16.to_le_bytes(), "value length");
        assert_eq!(&h[26..32], b"vm:7-9");
        assert_eq!(&h[32..], &crc32fast::hash(&h[..32]).to_le_bytes());
        let plain = header(None).encode();
        assert_eq!(plain.len(), FRAME_V2_FIXED_LEN);
        assert_eq!(decode(&plain).unwrap().extensions, Extensions::default());
    }

    #[test]
    fn the_received_entry_round_trips_is_not_critical_and_has_a_fixed_length() {
        let t = 1_700_000_000_123_456_789u64;
        let mut area = Vec::new();
        push_entry(&mut area, EXT_RECEIVED, &t.to_le_bytes());
        let h = decode(&raw_v2(FRAME_VERSION, FLAG_ZSTD, &area)).unwrap();
        assert_eq!(h.extensions.received_unix_ns, Some(t));
        assert_eq!(EXT_RECEIVED & EXT_CRITICAL, 0, "older builds skip it");
        let mut short = Vec::new();
        push_entry(&mut short, EXT_RECEIVED, &[1, 2, 3]);
        assert!(matches!(
            decode(&raw_v2(FRAME_VERSION, FLAG_ZSTD, &short)),
            Err(Damage::BadExtensions(_))
        ));
        // The builder writes it, and the writer's chain stamp leaves it alone.
        let mut f = FrameBuilder::with_received(u64::MAX, None, None, Some(t))
            .unwrap()
            .finish()
            .unwrap();
        assert!(f.stamp_chain(Chain {
            leaf_index: 3,
            prev_leaf: [5; 32]
        }));
        let h = decode(&f.bytes()[..f.header_len]).unwrap();
        assert_eq!(h.extensions.received_unix_ns, Some(t));
        assert_eq!(h.extensions.chain.unwrap().leaf_index, 3);
        let plain = encode_frame([&rec(1)]).unwrap();
        let h = decode(&plain.bytes()[..plain.header_len]).unwrap();
        assert_eq!(h.extensions.received_unix_ns, None);
    }

    #[test]
    fn version_1_headers_are_still_read() {
        let h = decode(&raw_v1(5, 2, 0xabcd)).unwrap();
        assert_eq!(
            h,
            FrameHeader {
                version: FRAME_VERSION_1,
                flags: FLAG_ZSTD,
                payload_len: 5,
                record_count: 2,
                payload_crc: 0xabcd,
                extensions: Extensions::default(),
            }
        );
        let mut torn = raw_v1(5, 2, 0xabcd);
        torn[9] ^= 1;
        assert!(decode(&torn).unwrap_err().is_torn());
    }

    #[test]
    fn unknown_extensions_are_skipped_unless_critical() {
        let mut area = Vec::new();
        push_entry(&mut area, 0x0042, b"a later, optional thing");
        push_entry(&mut area, EXT_BATCH_ID, b"b-1");
        let h = decode(&raw_v2(FRAME_VERSION, FLAG_ZSTD, &area)).unwrap();
        assert_eq!(h.extensions.batch_id, Some(id("b-1")));

        let mut area = Vec::new();
        push_entry(&mut area, EXT_CRITICAL | 0x0042, b"key-7");
        let err = decode(&raw_v2(FRAME_VERSION, FLAG_ZSTD, &area)).unwrap_err();
        assert_eq!(err, Damage::UnknownExtension(0x8042));
        assert!(!err.is_torn(), "intact, just not understood");
        // Also next to a data key entry this build knows.
        let mut area = Vec::new();
        push_entry(
            &mut area,
            EXT_DATA_KEY,
            &[[7u8; NONCE_LEN].as_slice(), b"k1"].concat(),
        );
        push_entry(&mut area, EXT_CRITICAL | 0x0042, b"");
        let err = decode(&raw_v2(FRAME_VERSION, FLAG_ZSTD | FLAG_SEALED, &area)).unwrap_err();
        assert_eq!(err, Damage::UnknownExtension(0x8042));
    }

    #[test]
    fn malformed_extensions_with_a_good_crc_are_refused_not_cut() {
        let mut twice = Vec::new();
        push_entry(&mut twice, EXT_BATCH_ID, b"a");
        push_entry(&mut twice, EXT_BATCH_ID, b"b");
        let mut overrun = Vec::new();
        push_entry(&mut overrun, 0x0042, b"abc");
        overrun[2] = 9; // claims 9 bytes, 3 follow
        let mut bad_id = Vec::new();
        push_entry(&mut bad_id, EXT_BATCH_ID, b"has space");
        for (area, needle) in [
            (twice, "entry 0x0001 appears twice"),
            (overrun, "entry 0x0042 claims 9 bytes, 3 left"),
            (bad_id, "batch id has byte 0x20 at position 3"),
            (vec![1, 0, 0], "3 stray bytes after the last entry"),
        ] {
            let err = decode(&raw_v2(FRAME_VERSION, FLAG_ZSTD, &area)).unwrap_err();
            assert!(!err.is_torn(), "{err}");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn intact_header_of_a_newer_version_is_unsupported_not_torn() {
        let err = decode(&raw_v2(3, FLAG_ZSTD, b"whatever v3 puts here")).unwrap_err();
        assert_eq!(err, Damage::UnsupportedVersion(3));
        assert!(!err.is_torn());
        assert!(err.to_string().contains("reads versions 1 and 2"), "{err}");
        let err = decode(&raw_v2(FRAME_VERSION, FLAG_ZSTD | 0x8000, &[])).unwrap_err();
        assert_eq!(err, Damage::UnknownFlags(0x8001));
        assert!(!err.is_torn());
    }

    #[test]
    fn a_header_cut_short_is_torn() {
        let h = header(Some(id("abc"))).encode();
        let err = decode(&h[..h.len() - 1]).unwrap_err();
        assert_eq!(
            err,
            Damage::ShortHeader {
                available: h.len() as u64 - 1,
                needed: h.len() as u64
            }
        );
        assert!(err.is_torn());
    }

    #[test]
    fn frame_payload_is_zstd_ndjson_with_matching_crc_and_count() {
        let recs: Vec<_> = (0..3).map(rec).collect();
        for batch_id in [None, Some(id("x:1-3"))] {
            let f = encode_frame_with_id(&recs, batch_id.clone()).unwrap();
            assert_eq!(f.records(), 3);
            assert_eq!(f.batch_id(), batch_id.as_ref());
            let prefix: [u8; FRAME_HEADER_PREFIX_LEN] =
                f.bytes()[..FRAME_HEADER_PREFIX_LEN].try_into().unwrap();
            let hlen = frame_header_len(&prefix).unwrap();
            let h = decode(&f.bytes()[..hlen]).unwrap();
            assert_eq!(h.extensions.batch_id, batch_id);
            let payload = &f.bytes()[hlen..];
            assert_eq!(h.payload_len as usize, payload.len());
            assert_eq!(h.payload_crc, crc32fast::hash(payload));
            assert_eq!(h.record_count, 3);
            let text = String::from_utf8(zstd::decode_all(payload).unwrap()).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 3);
            assert_eq!(lines[2], r#"{"i":2,"s":"x\ny"}"#);
        }
    }

    fn keyring(keys: &[(&str, u8)]) -> Arc<Keyring> {
        use meshlog_tlog::keys::DataKey;
        let keys = keys
            .iter()
            .map(|(id, b)| DataKey::new(id, [*b; 32]).unwrap());
        Arc::new(Keyring::new(keys.collect()).unwrap())
    }

    fn sealed_frame(recs: &[Map<String, Value>], id: Option<BatchId>, k: &Arc<Keyring>) -> Vec<u8> {
        let mut b = FrameBuilder::with_encryption(u64::MAX, id, Some(k.clone())).unwrap();
        for r in recs {
            b.push(r).unwrap();
        }
        let f = b.finish().unwrap();
        assert_eq!(f.key_id(), Some(k.current().id()));
        f.bytes().to_vec()
    }

    /// Header and payload of a whole frame.
    fn split(frame: &[u8]) -> (FrameHeader, &[u8], &[u8]) {
        let prefix: [u8; FRAME_HEADER_PREFIX_LEN] =
            frame[..FRAME_HEADER_PREFIX_LEN].try_into().unwrap();
        let hlen = frame_header_len(&prefix).unwrap();
        (
            decode(&frame[..hlen]).unwrap(),
            &frame[..hlen],
            &frame[hlen..],
        )
    }

    #[test]
    fn a_sealed_frame_has_flag_and_data_key_entry_and_opens_to_the_zstd_payload() {
        let k = keyring(&[("old", 1), ("new", 2)]);
        let recs: Vec<_> = (0..3).map(rec).collect();
        let frame = sealed_frame(&recs, Some(id("vm:1-3")), &k);
        let (h, hbytes, payload) = split(&frame);
        assert_eq!(h.flags, FLAG_ZSTD | FLAG_SEALED);
        let s = h.extensions.sealing.clone().unwrap();
        assert_eq!(s.key_id, "new", "the last key seals");
        assert_eq!(h.extensions.batch_id, Some(id("vm:1-3")));
        // The data key entry follows the batch id: type, length, nonce, key id.
        let entry = [
            &EXT_DATA_KEY.to_le_bytes()[..],
            &(NONCE_LEN as u16 + 3).to_le_bytes(),
            &s.nonce,
            b"new",
        ]
        .concat();
        // Then the chain entry (type, length, 40 bytes), stamped by the writer after sealing.
        let chain_at = hbytes.len() - 4 - (4 + CHAIN_VALUE_LEN);
        assert_eq!(&hbytes[32..chain_at], &entry[..]);
        assert_eq!(&hbytes[chain_at..chain_at + 2], &EXT_CHAIN.to_le_bytes());
        // Length and CRC are those of the stored bytes; the payload is no zstd frame.
        assert_eq!(h.payload_len as usize, payload.len());
        assert_eq!(h.payload_crc, crc32fast::hash(payload));
        assert!(zstd::decode_all(payload).is_err());
        let plain = h.open_payload(&k, payload).unwrap().unwrap();
        assert_eq!(plain.len() + TAG_LEN, payload.len());
        let text = String::from_utf8(zstd::decode_all(plain.as_slice()).unwrap()).unwrap();
        assert_eq!(text.lines().nth(2), Some(r#"{"i":2,"s":"x\ny"}"#));
        // The associated data: header bytes 0..16, the batch id entry, the data key entry.
        let aad = h.associated_data();
        assert_eq!(aad, [&hbytes[..16], &hbytes[22..chain_at]].concat());
        // A plain frame has no associated data use and nothing to open.
        let plain_frame = encode_frame(&recs).unwrap();
        let (plain_h, _, plain_payload) = split(plain_frame.bytes());
        assert_eq!(plain_h.extensions.sealing, None);
        assert!(plain_h.open_payload(&k, plain_payload).is_none());
        // Nonces are random per frame.
        let again = sealed_frame(&recs, Some(id("vm:1-3")), &k);
        assert_ne!(split(&again).0.extensions.sealing.unwrap().nonce, s.nonce);
    }

    #[test]
    fn a_sealed_payload_opens_under_its_own_header_only() {
        let k = keyring(&[("k", 9)]);
        // Same records, no batch id: the headers differ only in nonce and CRCs.
        let a = sealed_frame(&[rec(1)], None, &k);
        let b = sealed_frame(&[rec(1)], None, &k);
        let (ha, _, pa) = split(&a);
        let (hb, _, pb) = split(&b);
        assert_eq!(pa.len(), pb.len());
        assert!(ha.open_payload(&k, pa).unwrap().is_ok());
        assert_eq!(
            ha.open_payload(&k, pb).unwrap(),
            Err(OpenError::AuthenticationFailed { key_id: "k".into() })
        );
        assert!(hb.open_payload(&k, pa).unwrap().is_err());
        // Any edit of a header byte the seal covers (CRC made to match again) is refused or
        // fails to open. Not covered: the payload CRC (16..20), which the payload read checks,
        // the extension length (20..22), which frames the entries, and the chain entry, stamped
        // after sealing and covered by the header CRC, the chain and the signed roots.
        let frame = sealed_frame(&[rec(2)], Some(id("b-9")), &k);
        let (_, hbytes, payload) = split(&frame);
        let crc_at = hbytes.len() - 4;
        let chain = crc_at - (4 + CHAIN_VALUE_LEN)..crc_at;
        let mut parsed = 0;
        for i in (0..crc_at).filter(|i| !(16..22).contains(i) && !chain.contains(i)) {
            for bit in 0..8 {
                let mut h = hbytes.to_vec();
                h[i] ^= 1 << bit;
                let crc = crc32fast::hash(&h[..crc_at]);
                h[crc_at..].copy_from_slice(&crc.to_le_bytes());
                let Ok(edited) = decode(&h) else { continue };
                parsed += 1;
                let opened = edited.open_payload(&k, payload);
                assert!(
                    !matches!(opened, Some(Ok(_))),
                    "byte {i} bit {bit}: edited header still opens"
                );
            }
        }
        // Length, record count, batch id and nonce edits parse: the seal alone refuses them.
        assert!(parsed >= 8 * (8 + NONCE_LEN), "{parsed}");
        // Another key under the same id, or a key file without the id.
        let impostor = keyring(&[("k", 10)]);
        let (h, _, p) = split(&frame);
        assert!(matches!(
            h.open_payload(&impostor, p),
            Some(Err(OpenError::AuthenticationFailed { .. }))
        ));
        assert!(matches!(
            h.open_payload(&keyring(&[("other", 9)]), p),
            Some(Err(OpenError::UnknownKey { .. }))
        ));
    }

    #[test]
    fn sealed_flag_and_data_key_entry_come_together_and_are_checked() {
        let entry = |value: &[u8]| {
            let mut area = Vec::new();
            push_entry(&mut area, EXT_DATA_KEY, value);
            area
        };
        let good = entry(&[[1u8; NONCE_LEN].as_slice(), b"dk-0a1b2c3d"].concat());
        let h = decode(&raw_v2(FRAME_VERSION, FLAG_ZSTD | FLAG_SEALED, &good)).unwrap();
        assert_eq!(
            h.extensions.sealing,
            Some(Sealing {
                key_id: "dk-0a1b2c3d".into(),
                nonce: [1; NONCE_LEN]
            })
        );
        for (flags, area, needle) in [
            (
                FLAG_ZSTD | FLAG_SEALED,
                vec![],
                "sealed flag is set but there is no data key",
            ),
            (
                FLAG_ZSTD,
                good.clone(),
                "a data key entry on a frame not flagged sealed",
            ),
            (
                FLAG_ZSTD | FLAG_SEALED,
                entry(&[0; NONCE_LEN]),
                "data key entry has an invalid key id (hex )",
            ),
            (
                FLAG_ZSTD | FLAG_SEALED,
                entry(&[[0u8; NONCE_LEN].as_slice(), b"a b"].concat()),
                "invalid key id (hex 612062)",
            ),
            (
                FLAG_ZSTD | FLAG_SEALED,
                entry(&[0; 5]),
                "data key entry of 5 bytes is shorter than its 24-byte nonce",
            ),
        ] {
            let err = decode(&raw_v2(FRAME_VERSION, flags, &area)).unwrap_err();
            assert!(!err.is_torn(), "{err}");
            assert!(err.to_string().contains(needle), "{err}");
        }
        // Version 1 predates sealing.
        let mut v1 = raw_v1(5, 2, 0xabcd);
        v1[6..8].copy_from_slice(&(FLAG_ZSTD | FLAG_SEALED).to_le_bytes());
        let crc = crc32fast::hash(&v1[..20]);
        v1[20..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&v1), Err(Damage::UnknownFlags(3)));
    }

    #[test]
    fn the_writer_stamps_the_reserved_chain_entry_in_place() {
        let recs: Vec<_> = (0..2).map(rec).collect();
        let mut f = encode_frame_with_id(&recs, Some(id("vm:1-2"))).unwrap();
        let before = f.bytes().to_vec();
        let prefix: [u8; FRAME_HEADER_PREFIX_LEN] =
            before[..FRAME_HEADER_PREFIX_LEN].try_into().unwrap();
        let hlen = frame_header_len(&prefix).unwrap();
        assert_eq!(hlen, FRAME_V2_FIXED_LEN + (4 + 6) + (4 + CHAIN_VALUE_LEN));
        let h = decode(&before[..hlen]).unwrap();
        assert_eq!(
            h.extensions.chain,
            Some(Chain::PLACEHOLDER),
            "reserved, zero"
        );
        let chain = Chain {
            leaf_index: 0x0102_0304_0506_0708,
            prev_leaf: [0xab; 32],
        };
        assert!(f.stamp_chain(chain));
        let after = f.bytes();
        assert_eq!(after.len(), before.len(), "same length: nothing moved");
        assert_eq!(&after[hlen..], &before[hlen..], "payload untouched");
        let h2 = decode(&after[..hlen]).unwrap();
        assert_eq!(h2.extensions.chain, Some(chain));
        assert_eq!(h2.extensions.batch_id, Some(id("vm:1-2")));
        assert_eq!(
            h2.payload_crc, h.payload_crc,
            "only the chain and the header CRC change"
        );
        let area = &after[FRAME_V2_FIXED_LEN - 4..hlen - 4];
        let r = find_entry(area, EXT_CHAIN).unwrap();
        assert_eq!(&area[r.start..r.start + 8], &chain.leaf_index.to_le_bytes());
        assert_eq!(find_entry(area, 0x7777), None);
        // A frame without the entry (built by hand) is left alone.
        let mut plain = EncodedFrame {
            bytes: header(None).encode(),
            header_len: FRAME_V2_FIXED_LEN,
            records: 0,
            batch_id: None,
            key_id: None,
            plain: None,
        };
        let copy = plain.bytes.clone();
        assert!(!plain.stamp_chain(chain));
        assert_eq!(plain.bytes, copy);
    }

    #[test]
    fn a_chain_entry_of_the_wrong_length_is_malformed() {
        let mut area = Vec::new();
        push_entry(&mut area, EXT_CHAIN, &[0; 39]);
        let err = decode(&raw_v2(FRAME_VERSION, FLAG_ZSTD, &area)).unwrap_err();
        assert!(!err.is_torn(), "{err}");
        assert!(
            err.to_string()
                .contains("chain entry is 39 bytes, expected 40"),
            "{err}"
        );
    }

    #[test]
    fn builder_enforces_the_uncompressed_limit() {
        let mut b = FrameBuilder::new(30, None).unwrap(); // one 19-byte line fits, two do not
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

    #[test]
    fn kept_records_are_the_lines_pushed_and_leave_the_frame_as_it_was() {
        let recs = [rec(1), rec(2), rec(3)];
        let mut b = FrameBuilder::new(u64::MAX, None).unwrap();
        b.keep_records();
        for r in &recs {
            b.push(r).unwrap();
        }
        let kept = b.finish().unwrap();
        let plain = kept.plain().unwrap();
        assert_eq!(plain.len(), 3);
        let want: Vec<Vec<u8>> = recs
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap())
            .collect();
        let got: Vec<&[u8]> = plain.lines().collect();
        assert_eq!(got, want.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert!(plain.bytes() >= want.iter().map(Vec::len).sum::<usize>());
        let not_kept = encode_frame(&recs).unwrap();
        assert!(not_kept.plain().is_none());
        // Compressed in one go rather than streamed: other bytes, the same records.
        let payload = |f: &EncodedFrame| {
            let b = f.bytes();
            let prefix: [u8; FRAME_HEADER_PREFIX_LEN] =
                b[..FRAME_HEADER_PREFIX_LEN].try_into().unwrap();
            zstd::decode_all(&b[frame_header_len(&prefix).unwrap()..]).unwrap()
        };
        assert_eq!(
            payload(&kept),
            payload(&not_kept),
            "the same records stored"
        );
        assert_eq!(kept.records(), not_kept.records());
    }

    #[test]
    fn a_member_is_found_by_its_offsets_and_an_index_that_does_not_fit_is_not() {
        let line = br#"{"a":1,"b\"c":"x\ny"}"#;
        let members = [1, 5, 7 | MEMBER_ESCAPED, 14 | MEMBER_ESCAPED];
        let a = member(line, &members, 0).unwrap();
        assert_eq!(
            (&line[a.key.clone()], &line[a.value.clone()]),
            (&b"a"[..], &b"1"[..])
        );
        assert!(!a.key_escaped && !a.value_escaped);
        let b = member(line, &members, 1).unwrap();
        assert_eq!(&line[b.key.clone()], br#"b\"c"#);
        assert_eq!(&line[b.value.clone()], br#""x\ny""#);
        assert!(b.key_escaped && b.value_escaped);
        assert_eq!(member(line, &members, 2), None, "no such member");
        assert_eq!(member(line, &[1, 4], 0), None, "value not after `\":`");
        assert_eq!(member(line, &[0, 5, 7, 14], 0), None, "key not at a quote");
        assert_eq!(
            member(line, &[1, 5, 8, 14], 0),
            None,
            "value not ended by `,`"
        );
        assert_eq!(member(line, &[0, 1], 0), None, "offsets too close");
    }
}
