//! The bytes of an index file (docs/query.md#index-file-format):
//!
//! | bytes | what |
//! |---|---|
//! | 4 | magic `MLQX` |
//! | 1 | format version, [`VERSION`] |
//! | n | the [`SegmentIndex`] in the [postcard](https://postcard.jamesmunns.com/wire-format) wire format (varint integers, length-prefixed strings and sequences) |
//! | 4 | CRC-32 (IEEE) of every byte before it, little-endian |
//!
//! A file that is too short, has another magic or version, fails its checksum, does not decode,
//! or has bytes after the body is refused with the reason; the caller rebuilds the index.

use super::SegmentIndex;

/// The first four bytes of an index file.
pub const MAGIC: [u8; 4] = *b"MLQX";
/// The index format version this build writes and reads (1 was JSON, 2 had no counts).
pub const VERSION: u8 = 3;
/// Magic and version.
const HEAD_LEN: usize = MAGIC.len() + 1;
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
}

/// The file's bytes for `idx`.
pub fn encode(idx: &SegmentIndex) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_LEN + 64 * idx.frames.len() + CRC_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    // Serializing plain structs, maps and vectors into a Vec cannot fail; were it to, the body
    // is left empty, which `decode` refuses (the index is then rebuilt, never misread).
    out = postcard::to_extend(idx, out).unwrap_or_else(|_| {
        let mut v = MAGIC.to_vec();
        v.push(VERSION);
        v
    });
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The index in `bytes`, checked.
pub fn decode(bytes: &[u8]) -> Result<SegmentIndex, DecodeError> {
    let too_short = || DecodeError::TooShort(bytes.len());
    let (signed, crc) = bytes
        .split_at_checked(bytes.len().checked_sub(CRC_LEN).ok_or_else(too_short)?)
        .ok_or_else(too_short)?;
    let (head, body) = signed.split_at_checked(HEAD_LEN).ok_or_else(too_short)?;
    let (magic, version) = head.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(DecodeError::Magic);
    }
    if version != [VERSION] {
        return Err(DecodeError::Version(version.first().copied().unwrap_or(0)));
    }
    let stored = u32::from_le_bytes(crc.try_into().map_err(|_| too_short())?);
    let computed = crc32fast::hash(signed);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    let (idx, rest) = postcard::take_from_bytes::<SegmentIndex>(body)?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing(rest.len()));
    }
    Ok(idx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::FrameBuilder;
    use serde_json::{Value, json};

    fn index() -> SegmentIndex {
        let mut frames = Vec::new();
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
            frames.push(b.finish(8 + f * 1000, 0xdead_0000 + f as u32, 20));
        }
        SegmentIndex {
            segment: 7,
            len: 3008,
            frames,
            counts: None,
        }
    }

    #[test]
    fn an_index_round_trips_and_is_smaller_than_its_json() {
        let idx = index();
        let bytes = encode(&idx);
        assert_eq!(&bytes[..4], b"MLQX");
        assert_eq!(bytes[4], VERSION);
        assert_eq!(decode(&bytes).unwrap(), idx);
        let json = serde_json::to_vec(&idx).unwrap();
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
