//! The bytes of an index file (docs/query.md#index-file-format):
//!
//! | bytes | what |
//! |---|---|
//! | 4 | magic `MLQX` |
//! | 1 | format version, [`VERSION`] |
//! | 4 | `s`, the summary section's length, little-endian |
//! | s | the segment number, its indexed length and its [`Summary`], in the [postcard](https://postcard.jamesmunns.com/wire-format) wire format (varint integers, length-prefixed strings, bytes and sequences) |
//! | 4 | CRC-32 (IEEE) of every byte before it, little-endian |
//! | n | the [`SegmentIndex`] (without its summary) in postcard |
//! | 4 | CRC-32 (IEEE) of every byte before it, little-endian |
//!
//! The summary is read alone first ([`read_summary`]: the first `13 + s` bytes); the rest only
//! when a record of the segment may match. A file that is too short, has another magic or
//! version, fails a checksum, does not decode, or has bytes after the body is refused with the
//! reason; the caller rebuilds the index.

use super::SegmentIndex;
use super::summary::Summary;
use std::io::Read;
use std::path::Path;

/// The first four bytes of an index file.
pub const MAGIC: [u8; 4] = *b"MLQX";
/// The index format version this build writes and reads (1 was JSON, 2 had no counts, 3 no
/// summary).
pub const VERSION: u8 = 4;
/// Magic, version and the summary's length.
const HEAD_LEN: usize = MAGIC.len() + 1 + 4;
/// The trailing checksum.
const CRC_LEN: usize = 4;

/// Why index bytes are not used.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the header and checksum.
    #[error("index file too short ({0} bytes)")]
    TooShort(usize),
    /// Not an index file (or one from before the binary format).
    #[error("not a meshlog index file (bad magic)")]
    Magic,
    /// Another format version.
    #[error("index format version {0}, this build reads {VERSION}")]
    Version(u8),
    /// The bytes changed after they were written.
    #[error("index checksum mismatch: stored {stored:08x}, computed {computed:08x}")]
    Checksum {
        /// The CRC in the file.
        stored: u32,
        /// The CRC of the bytes read.
        computed: u32,
    },
    /// The checksum holds but the body does not decode (a bug, or a forged file).
    #[error("index body does not decode: {0}")]
    Body(#[from] postcard::Error),
    /// Bytes left after the body.
    #[error("{0} bytes after the index body")]
    Trailing(usize),
    /// The summary section names another segment or length than the body.
    #[error("the summary and the body of the index disagree")]
    Mismatch,
    /// The file could not be read.
    #[error("index file not read: {0}")]
    Io(#[from] std::io::Error),
}

/// The file's bytes for `idx`.
pub fn encode(idx: &SegmentIndex) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_LEN + 64 * idx.frames.len() + 2 * CRC_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&[0; 4]);
    // Serializing plain structs, maps and vectors into a Vec cannot fail; were it to, the
    // section is left short, which `decode` refuses (the index is then rebuilt, never misread).
    out = postcard::to_extend(&(idx.segment, idx.len, &idx.summary), out).unwrap_or_default();
    let s_len = u32::try_from(out.len().saturating_sub(HEAD_LEN)).unwrap_or(u32::MAX);
    if let Some(l) = out.get_mut(HEAD_LEN - 4..HEAD_LEN) {
        l.copy_from_slice(&s_len.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out = postcard::to_extend(idx, out).unwrap_or_default();
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The magic, version and summary length of `head`, checked.
fn summary_len(head: &[u8]) -> Result<usize, DecodeError> {
    let too_short = || DecodeError::TooShort(head.len());
    let head = head.get(..HEAD_LEN).ok_or_else(too_short)?;
    let (magic, rest) = head.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(DecodeError::Magic);
    }
    let (version, len) = rest.split_at(1);
    if version != [VERSION] {
        return Err(DecodeError::Version(version.first().copied().unwrap_or(0)));
    }
    Ok(u32::from_le_bytes(len.try_into().map_err(|_| too_short())?) as usize)
}

/// Checks the CRC at the end of `signed_and_crc` over the bytes before it.
fn check(signed_and_crc: &[u8]) -> Result<&[u8], DecodeError> {
    let too_short = || DecodeError::TooShort(signed_and_crc.len());
    let cut = signed_and_crc
        .len()
        .checked_sub(CRC_LEN)
        .ok_or_else(too_short)?;
    let (signed, crc) = signed_and_crc.split_at(cut);
    let stored = u32::from_le_bytes(crc.try_into().map_err(|_| too_short())?);
    let computed = crc32fast::hash(signed);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    Ok(signed)
}

/// The summary section of `bytes` (at least its first `13 + s` bytes): segment number, indexed
/// length and summary, checked.
pub fn decode_summary(bytes: &[u8]) -> Result<(u64, u64, Summary), DecodeError> {
    let s_len = summary_len(bytes)?;
    let end = HEAD_LEN
        .checked_add(s_len)
        .and_then(|e| e.checked_add(CRC_LEN))
        .ok_or(DecodeError::TooShort(bytes.len()))?;
    let section = bytes.get(..end).ok_or(DecodeError::TooShort(bytes.len()))?;
    let signed = check(section)?;
    let body = signed.get(HEAD_LEN..).unwrap_or_default();
    let (s, rest) = postcard::take_from_bytes::<(u64, u64, Summary)>(body)?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing(rest.len()));
    }
    Ok(s)
}

/// Reads only the summary section of the index file at `path` ([`decode_summary`]).
pub fn read_summary(path: &Path) -> Result<(u64, u64, Summary), DecodeError> {
    let mut f = std::fs::File::open(path)?;
    let mut head = [0u8; HEAD_LEN];
    f.read_exact(&mut head)?;
    let s_len = summary_len(&head)?;
    let mut bytes = Vec::with_capacity(HEAD_LEN + s_len + CRC_LEN);
    bytes.extend_from_slice(&head);
    f.take((s_len + CRC_LEN) as u64).read_to_end(&mut bytes)?;
    decode_summary(&bytes)
}

/// The index in `bytes`, checked (both sections).
pub fn decode(bytes: &[u8]) -> Result<SegmentIndex, DecodeError> {
    let (segment, len, summary) = decode_summary(bytes)?;
    let s_end = HEAD_LEN + summary_len(bytes)? + CRC_LEN;
    let signed = check(bytes)?;
    let body = signed
        .get(s_end..)
        .ok_or(DecodeError::TooShort(bytes.len()))?;
    let (mut idx, rest) = postcard::take_from_bytes::<SegmentIndex>(body)?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing(rest.len()));
    }
    if idx.segment != segment || idx.len != len {
        return Err(DecodeError::Mismatch);
    }
    idx.summary = summary;
    Ok(idx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::FrameBuilder;
    use serde_json::{Value, json};

    fn index() -> SegmentIndex {
        let mut frames = Vec::new();
        let mut summary = Summary::default();
        for f in 0..3u64 {
            let mut b = FrameBuilder::default();
            for i in 0..20u64 {
                let Value::Object(r) = json!({
                    "time_unix_nano": 1_000 + f * 100 + i,
                    "resource.service.name": format!("svc-{}", i % 3),
                    "resource.meshlog.vm.id": "vm1",
                    "meshlog.sequence": f * 20 + i,
                    "http.response.status_code": 200 + i,
                    "trace_id": format!("{:032x}", f * 20 + i),
                    "url.path": format!("/api/items/{i}"),
                }) else {
                    unreachable!()
                };
                b.add(&r);
            }
            frames.push(b.finish_into(8 + f * 1000, 0xdead_0000 + f as u32, 20, &mut summary));
        }
        SegmentIndex {
            segment: 7,
            len: 3008,
            frames,
            counts: None,
            summary,
        }
    }

    #[test]
    fn an_index_round_trips_and_is_smaller_than_its_json() {
        let idx = index();
        let bytes = encode(&idx);
        assert_eq!(&bytes[..4], b"MLQX");
        assert_eq!(bytes[4], VERSION);
        assert_eq!(decode(&bytes).unwrap(), idx);
        // The summary reads back from the file's first bytes alone.
        let s_end = HEAD_LEN + summary_len(&bytes).unwrap() + CRC_LEN;
        let (seg, len, sum) = decode_summary(&bytes[..s_end]).unwrap();
        assert_eq!((seg, len, &sum), (7, 3008, &idx.summary));
        assert_eq!(sum.frames, 3);
        assert!(decode_summary(&bytes[..s_end - 1]).is_err());
        let json = serde_json::to_vec(&(&idx, &idx.summary)).unwrap();
        assert!(
            bytes.len() * 2 < json.len(),
            "binary {} bytes, JSON {} bytes",
            bytes.len(),
            json.len()
        );
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_refused() {
        let bytes = encode(&index());
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= bit;
                assert!(
                    decode(&b).is_err(),
                    "byte {i} bit {bit:#x} flipped: accepted"
                );
            }
        }
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "cut to {n} bytes: accepted");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        assert!(matches!(
            decode(b"{\"version\":1}"),
            Err(DecodeError::Magic)
        ));
        let mut v1 = bytes.clone();
        v1[4] = 1;
        assert!(matches!(decode(&v1), Err(DecodeError::Version(1))));
    }
}
