//! Reads what the query output does not show: the batch id of every frame in a collector's
//! store, from the frame headers (the on-disk format documented in
//! `collector/src/store/format.rs`; only the header fields needed to walk frames and find the
//! batch id entry). The filter names each batch `<vm id>:<first seq>-<last seq>`, so a frame's
//! batch id says which records it was stored as.

use std::path::Path;

const SEGMENT_HEADER_LEN: usize = 8;
const FRAME_MAGIC: &[u8; 4] = b"MLFR";
const FRAME_V1_HEADER_LEN: usize = 24;
const FRAME_V2_FIXED_LEN: usize = 26;
const EXT_BATCH_ID: u16 = 0x0001;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The batch ids of the frames in one segment file's bytes (frames without one are skipped),
/// up to a torn tail.
pub fn segment_batch_ids(seg: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    while let Some(h) = seg.get(at..) {
        if h.len() < FRAME_V1_HEADER_LEN || &h[..4] != FRAME_MAGIC {
            break;
        }
        let (Some(version), Some(payload)) = (u16_at(h, 4), u32_at(h, 8)) else {
            break;
        };
        let header = match version {
            1 => FRAME_V1_HEADER_LEN,
            _ => {
                let Some(e) = u16_at(h, 20) else { break };
                let e = usize::from(e);
                let Some(mut area) = h.get(22..22 + e) else {
                    break;
                };
                while let (Some(t), Some(l)) = (u16_at(area, 0), u16_at(area, 2)) {
                    let Some(v) = area.get(4..4 + usize::from(l)) else {
                        break;
                    };
                    if t == EXT_BATCH_ID {
                        out.push(String::from_utf8_lossy(v).into_owned());
                    }
                    area = &area[4 + usize::from(l)..];
                }
                FRAME_V2_FIXED_LEN + e
            }
        };
        at += header + payload as usize;
    }
    out
}

/// The batch ids of every frame in `DATA_DIR/segments/*.seg`, in store order.
pub fn batch_ids(data_dir: &Path) -> Vec<String> {
    let dir = data_dir.join("segments");
    let mut segs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|d| d.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.iter()
        .flat_map(|p| {
            let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            segment_batch_ids(&b)
        })
        .collect()
}

/// A filter batch id split into (VM id, first sequence, last sequence).
pub fn parse_batch_id(id: &str) -> Option<(&str, u64, u64)> {
    let (vm, range) = id.rsplit_once(':')?;
    let (a, b) = range.split_once('-')?;
    Some((vm, a.parse().ok()?, b.parse().ok()?))
}
