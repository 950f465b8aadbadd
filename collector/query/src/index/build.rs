//! Building the index of a closed segment on its own (a query builds one while it reads, in
//! `scan`): [`index_closed`] is what the collector runs after its writer seals a segment, so a
//! query normally finds every closed segment indexed; a segment it misses (the collector was
//! killed first, a file was damaged) is still indexed by the next query that reads it.

use super::counts::CountsBuilder;
use super::{FrameBuilder, SegmentIndex, file, load_checked_prefix, store};
use crate::filter::Record;
use meshlog_format::layout;
use meshlog_format::reader::{Frame, ReadError, ScanError, SegmentScanner};
use std::io;
use std::path::Path;

/// What [`index_closed`] did in one store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexReport {
    /// Closed segments indexed now, by sequence number.
    pub built: Vec<u64>,
    /// Closed segments whose index was already there and sound.
    pub kept: u64,
    /// Closed segments with sealed (encrypted) frames: never indexed on disk.
    pub sealed: u64,
    /// Index files removed because their segment is gone (retention deleted it).
    pub removed: u64,
    /// The newest closed segment looked at (0 when none): pass it as `after` next time.
    pub newest: u64,
}

/// Why a store could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Reading a segment failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Writing an index (or listing a directory) failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// The index of the closed segment `seq` at `path`, read from the segment; `None` when the
/// segment holds sealed (encrypted) frames, whose index is never written (it would hold record
/// content in the clear).
pub fn build_segment(seq: u64, path: &Path) -> Result<Option<SegmentIndex>, ReadError> {
    build_from(seq, path, None, false)
}

/// The index of segment `seq` at `path`, continuing `prior` (a sound index of its first
/// frames, [`load_checked_prefix`]) with the frames after it. With `active`, a torn last frame
/// (being written) ends the index instead of failing it.
pub fn build_from(
    seq: u64,
    path: &Path,
    prior: Option<SegmentIndex>,
    active: bool,
) -> Result<Option<SegmentIndex>, ReadError> {
    let mut scanner = SegmentScanner::open(path).map_err(|e| e.into_read_error(path))?;
    let (mut frames, mut counts, mut summary) = match prior {
        Some(p) => {
            let counts = p.counts.map(CountsBuilder::from_counts);
            // Step over the frames `prior` already lists (checked against them by the caller).
            for _ in 0..p.frames.len() {
                if scanner
                    .next_frame(false)
                    .map_err(|e| e.into_read_error(path))?
                    .is_none()
                {
                    break;
                }
            }
            (p.frames, counts, p.summary)
        }
        None => (
            Vec::new(),
            Some(CountsBuilder::default()),
            Default::default(),
        ),
    };
    loop {
        let raw = match scanner.next_frame(true) {
            Ok(Some(raw)) => raw,
            Ok(None) => break,
            Err(ScanError::Damage { damage, .. }) if active && damage.is_torn() => break,
            Err(e) => return Err(e.into_read_error(path)),
        };
        if raw.header.extensions.sealing.is_some() {
            return Ok(None);
        }
        let (offset, crc, count) = (raw.offset, raw.header.payload_crc, raw.header.record_count);
        let frame = Frame::from_raw(seq, path.to_owned(), raw, None);
        let mut b = FrameBuilder::default();
        let mut bad = None;
        frame.for_each_line(|line| {
            match serde_json::from_slice::<Record>(line) {
                Ok(r) => {
                    b.add(&r);
                    if let Some(c) = counts.as_mut() {
                        c.add(&r);
                    }
                }
                Err(e) => {
                    bad.get_or_insert(e);
                }
            }
            Ok(())
        })?;
        if let Some(e) = bad {
            return Err(ReadError::BadPayload {
                path: path.to_owned(),
                offset,
                reason: format!("record is not a JSON object: {e}"),
            });
        }
        frames.push(b.finish_into(offset, crc, count, &mut summary));
    }
    Ok(Some(SegmentIndex {
        segment: seq,
        len: scanner.position(),
        frames,
        counts: counts.and_then(CountsBuilder::finish),
        summary,
    }))
}

/// Indexes the first frames of the store's active (newest) segment, continuing the index of
/// them written last time: what lets a query read only the frames written since. Returns the
/// frames now indexed (0 with nothing to do: no segment, nothing new, or sealed frames).
pub fn index_active(store_dir: &Path) -> Result<usize, IndexError> {
    let mut kept = None;
    index_active_kept(store_dir, &mut kept)
}

/// [`index_active`] for a caller that calls it again and again (`serve`'s indexer): `kept`
/// holds the index written last time, so it is continued without reading the file back and
/// walking the frame headers again (it is read from disk when `kept` is of another segment or
/// longer than the segment). The file is replaced without an fsync: it is a cache, checked
/// before every use, and after a crash is rebuilt if torn.
pub fn index_active_kept(
    store_dir: &Path,
    kept: &mut Option<SegmentIndex>,
) -> Result<usize, IndexError> {
    let seg_dir = layout::segments_dir(store_dir);
    let segs = match layout::list_segments(&seg_dir) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(IndexError::Io {
                path: seg_dir,
                source,
            });
        }
    };
    let Some(seg) = segs.last() else {
        return Ok(0);
    };
    let len = std::fs::metadata(&seg.path).map_or(0, |m| m.len());
    let prior = match kept.take() {
        Some(k) if k.segment == seg.seq && k.len <= len => Some(k),
        _ => load_checked_prefix(store_dir, seg.seq, &seg.path),
    };
    if let Some(p) = prior.as_ref().filter(|p| p.len >= len) {
        *kept = Some(p.clone());
        return Ok(0);
    }
    match build_from(seg.seq, &seg.path, prior, true)? {
        Some(idx) if !idx.frames.is_empty() => {
            super::store_quick(store_dir, &idx).map_err(|source| IndexError::Io {
                path: layout::index_path(store_dir, seg.seq),
                source,
            })?;
            let n = idx.frames.len();
            *kept = Some(idx);
            Ok(n)
        }
        _ => Ok(0),
    }
}

/// Indexes every closed segment of the store in `store_dir` (all but the newest) after segment
/// `after` (0: all) that has no sound index yet, and removes index files whose segment is gone.
/// A sound index costs a walk of its segment's frame headers; `after` spares those already
/// handled by an earlier run.
pub fn index_closed(store_dir: &Path, after: u64) -> Result<IndexReport, IndexError> {
    let seg_dir = layout::segments_dir(store_dir);
    let segs = match layout::list_segments(&seg_dir) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(IndexError::Io {
                path: seg_dir,
                source,
            });
        }
    };
    let mut report = IndexReport::default();
    let closed = segs.len().saturating_sub(1);
    for seg in segs.iter().take(closed).filter(|s| s.seq > after) {
        report.newest = seg.seq;
        // The index of its first frames, written while it was active, is continued.
        let prior = load_checked_prefix(store_dir, seg.seq, &seg.path);
        if prior.as_ref().is_some_and(|p| p.len == seg_len(&seg.path)) {
            report.kept += 1;
            continue;
        }
        match build_from(seg.seq, &seg.path, prior, false)? {
            Some(idx) => {
                store(store_dir, &idx).map_err(|source| IndexError::Io {
                    path: layout::index_path(store_dir, seg.seq),
                    source,
                })?;
                report.built.push(seg.seq);
            }
            None => report.sealed += 1,
        }
    }
    let idx_dir = layout::index_dir(store_dir);
    let names = match std::fs::read_dir(&idx_dir) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(source) => {
            return Err(IndexError::Io {
                path: idx_dir,
                source,
            });
        }
    };
    for entry in names.flatten() {
        let Some(seq) = entry.file_name().to_str().and_then(layout::index_seq) else {
            continue;
        };
        if !segs.iter().any(|s| s.seq == seq) && std::fs::remove_file(entry.path()).is_ok() {
            report.removed += 1;
        }
    }
    Ok(report)
}

fn seg_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Whether `bytes` are a sound index file of segment `seq` (for tests and tools; queries use
/// [`load_checked`], which also compares it with the segment).
pub fn reads_back(bytes: &[u8], seq: u64) -> bool {
    file::decode(bytes).is_ok_and(|i| i.segment == seq)
}

#[cfg(test)]
mod tests {
    use super::super::load_checked;
    use super::*;
    use meshlog_format::frame::{encode_frame, segment_header};
    use serde_json::{Value, json};
    use std::io::Write;

    fn segment(dir: &Path, seq: u64, services: &[&str]) {
        std::fs::create_dir_all(layout::segments_dir(dir)).unwrap();
        let mut f = std::fs::File::create(layout::segment_path(dir, seq)).unwrap();
        f.write_all(&segment_header()).unwrap();
        for s in services {
            let Value::Object(r) = json!({"resource.service.name": s, "time_unix_nano": seq})
            else {
                unreachable!()
            };
            f.write_all(encode_frame(&[r]).unwrap().bytes()).unwrap();
        }
    }

    #[test]
    fn sealed_segments_are_never_indexed_on_disk() {
        use meshlog_format::frame::FrameBuilder as Fb;
        use meshlog_tlog::keys::{DataKey, Keyring};
        let d = tempfile::tempdir().unwrap();
        let ring =
            std::sync::Arc::new(Keyring::new(vec![DataKey::new("k1", [7; 32]).unwrap()]).unwrap());
        for seq in [1, 2] {
            std::fs::create_dir_all(layout::segments_dir(d.path())).unwrap();
            let mut f = std::fs::File::create(layout::segment_path(d.path(), seq)).unwrap();
            f.write_all(&segment_header()).unwrap();
            let mut b = Fb::with_encryption(u64::MAX, None, Some(ring.clone())).unwrap();
            let Value::Object(r) = json!({"resource.service.name": "secret"}) else {
                unreachable!()
            };
            b.push(&r).unwrap();
            f.write_all(b.finish().unwrap().bytes()).unwrap();
        }
        let r = index_closed(d.path(), 0).unwrap();
        assert_eq!((r.built.len(), r.sealed), (0, 1));
        assert!(!layout::index_dir(d.path()).exists());
    }

    #[test]
    fn closed_segments_are_indexed_the_active_one_is_not_and_orphans_go() {
        let d = tempfile::tempdir().unwrap();
        segment(d.path(), 1, &["a", "b"]);
        segment(d.path(), 2, &["c"]);
        segment(d.path(), 3, &["d"]);
        let r = index_closed(d.path(), 0).unwrap();
        assert_eq!((r.built.clone(), r.newest), (vec![1, 2], 2));
        assert!(!layout::index_path(d.path(), 3).exists());
        let idx = load_checked(d.path(), 1, &layout::segment_path(d.path(), 1)).unwrap();
        assert_eq!(idx.frames.len(), 2);
        assert!(reads_back(
            &std::fs::read(layout::index_path(d.path(), 2)).unwrap(),
            2
        ));
        // Nothing new: nothing rebuilt; nothing even looked at after segment 2.
        let r = index_closed(d.path(), 0).unwrap();
        assert_eq!((r.built.len(), r.kept), (0, 2));
        let r = index_closed(d.path(), 2).unwrap();
        assert_eq!((r.built.len(), r.kept, r.newest), (0, 0, 0));
        // Segment 3 closes (4 is new), segment 1 is deleted by retention.
        segment(d.path(), 4, &["e"]);
        std::fs::remove_file(layout::segment_path(d.path(), 1)).unwrap();
        let r = index_closed(d.path(), 2).unwrap();
        assert_eq!((r.built.clone(), r.kept, r.removed), (vec![3], 0, 1));
        assert!(!layout::index_path(d.path(), 1).exists());
    }

    #[test]
    fn the_active_index_kept_in_memory_equals_one_built_from_the_file() {
        let d = tempfile::tempdir().unwrap();
        segment(d.path(), 1, &["a", "b"]);
        let mut kept = None;
        assert_eq!(index_active_kept(d.path(), &mut kept).unwrap(), 2);
        assert_eq!(index_active_kept(d.path(), &mut kept).unwrap(), 0);
        // Frames appended to the active segment: continued from memory.
        let path = layout::segment_path(d.path(), 1);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        for s in ["c", "d"] {
            let Value::Object(r) = json!({"resource.service.name": s, "time_unix_nano": 9}) else {
                unreachable!()
            };
            f.write_all(encode_frame(&[r]).unwrap().bytes()).unwrap();
        }
        assert_eq!(index_active_kept(d.path(), &mut kept).unwrap(), 4);
        let on_disk = super::super::load_checked_prefix(d.path(), 1, &path).unwrap();
        assert_eq!(Some(&on_disk), kept.as_ref());
        let fresh = build_segment(1, &path).unwrap().unwrap();
        assert_eq!(on_disk, fresh);
        // A new active segment: the kept index (of segment 1) is not continued.
        segment(d.path(), 2, &["e"]);
        assert_eq!(index_active_kept(d.path(), &mut kept).unwrap(), 1);
        assert_eq!(kept.as_ref().map(|k| k.segment), Some(2));
    }
}
