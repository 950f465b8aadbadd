//! Start-up recovery: make the segment files consistent before the writer appends.
//!
//! A crash can only leave damage at the tail of the newest segment (the writer syncs a segment
//! before creating the next one, and acknowledges only synced frames), so that tail is cut at
//! the end of the last good frame. The cut bytes are first copied to `DATA_DIR/quarantine/` so
//! nothing is destroyed without a trace. Damage anywhere else is not a crash artefact: the
//! collector refuses to start rather than rewrite history.
//!
//! Older segments get a structural walk (every frame header and its CRC, and the chain must end
//! exactly at end of file) rather than a full payload check, so start-up time grows with the
//! number of frames, not the number of bytes; payload CRCs are checked on every read.
//!
//! The same walk rebuilds the index of stored batch ids, oldest first, from the frame headers
//! (no payload is decompressed); frames cut from a torn tail were never acknowledged and are not
//! indexed, so their retries are stored.

use super::StoreError;
use super::dedup::SharedIndex;
use super::writer::{Active, create_segment_in};
use crate::fs::{FileSystem, FsFile, StdFs};
use meshlog_format::frame::{Damage, SEGMENT_HEADER_LEN, segment_header};
use meshlog_format::reader::{
    RawFrame, ScanError, SegmentFile, SegmentScanner, list_segments, segment_file_name,
};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

pub use meshlog_format::layout::QUARANTINE_DIR;

/// What recovery found.
#[derive(Debug)]
pub struct Recovered<F: FileSystem = StdFs> {
    /// The newest segment, open for appending.
    pub active: Active<F>,
    /// Segments on disk (including the active one).
    pub segments: usize,
    /// Bytes cut from the newest segment's tail.
    pub cut_bytes: u64,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Io { context, source }
}

fn damaged(path: &Path, offset: u64, damage: Damage) -> StoreError {
    StoreError::Damaged {
        path: path.to_owned(),
        offset,
        damage,
    }
}

fn scan_err(path: &Path, e: ScanError) -> StoreError {
    match e {
        ScanError::Io(source) => StoreError::Io {
            context: format!("reading {}", path.display()),
            source,
        },
        ScanError::Damage { offset, damage } => damaged(path, offset, damage),
    }
}

/// Checks every segment in `segments_dir`, repairs the newest one's tail, and opens it; adds
/// the batch id of every good frame to `index`, in order.
pub fn recover(
    data_dir: &Path,
    segments_dir: &Path,
    index: &SharedIndex,
) -> Result<Recovered, StoreError> {
    recover_in(&StdFs, data_dir, segments_dir, index)
}

/// [`recover`] on the file system `fs`.
pub fn recover_in<F: FileSystem>(
    fs: &F,
    data_dir: &Path,
    segments_dir: &Path,
    index: &SharedIndex,
) -> Result<Recovered<F>, StoreError> {
    let segments = list_segments(segments_dir)
        .map_err(io_err(format!("listing {}", segments_dir.display())))?;
    let Some((newest, older)) = segments.split_last() else {
        let active = create_segment_in(fs, segments_dir, 1).map_err(io_err(format!(
            "creating the first segment in {}",
            segments_dir.display()
        )))?;
        return Ok(Recovered {
            active,
            segments: 1,
            cut_bytes: 0,
        });
    };
    for seg in older {
        walk_closed_segment(seg, index)?;
    }
    let (active, cut_bytes) = open_newest(fs, data_dir, newest, index)?;
    Ok(Recovered {
        active,
        segments: segments.len(),
        cut_bytes,
    })
}

/// Structural walk of a closed segment: any damage is an error.
fn walk_closed_segment(seg: &SegmentFile, index: &SharedIndex) -> Result<(), StoreError> {
    let walk = || {
        let mut sc = SegmentScanner::open(&seg.path)?;
        while let Some(f) = sc.next_frame(false)? {
            remember(index, &f);
        }
        Ok(())
    };
    walk().map_err(|e| {
        let err = scan_err(&seg.path, e);
        tracing::error!("{err}");
        err
    })
}

/// Verifies the newest segment fully, cuts a torn tail, and returns it open for appending.
fn remember(index: &SharedIndex, frame: &RawFrame) {
    if let Some(id) = &frame.header.extensions.batch_id {
        index.insert([index.key(id)]);
    }
}

fn open_newest<F: FileSystem>(
    fs: &F,
    data_dir: &Path,
    seg: &SegmentFile,
    index: &SharedIndex,
) -> Result<(Active<F>, u64), StoreError> {
    let path = &seg.path;
    let mut file = fs
        .open_rw(path)
        .map_err(io_err(format!("opening {}", path.display())))?;
    let len = file
        .file_len()
        .map_err(io_err(format!("reading {}", path.display())))?;
    // Its own read-only handle: scanning only looks.
    let scanner = SegmentScanner::open(path).map_err(|e| scan_err(path, e));
    let good_end = match scanner {
        Ok(mut sc) => loop {
            match sc.next_frame(true) {
                Ok(Some(f)) => remember(index, &f),
                Ok(None) => break sc.position(),
                Err(ScanError::Damage { offset, damage }) if damage.is_torn() => {
                    cut_tail(fs, data_dir, seg, &mut file, len, offset, &damage)?;
                    break offset;
                }
                Err(e) => return Err(scan_err(path, e)),
            }
        },
        Err(StoreError::Damaged { damage, .. }) if is_torn_creation(&mut file, len, &damage)? => {
            // Created but never written: no frame was ever acknowledged here.
            tracing::warn!(
                segment = %path.display(),
                "segment header incomplete ({damage}); rewriting it"
            );
            rewrite_header(&mut file).map_err(io_err(format!("rewriting {}", path.display())))?;
            SEGMENT_HEADER_LEN
        }
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(good_end))
        .map_err(io_err(format!("seeking in {}", path.display())))?;
    let cut = len.saturating_sub(good_end);
    tracing::info!(
        segment = %path.display(),
        offset = good_end,
        "store recovered; appending to the newest segment"
    );
    Ok((
        Active {
            file,
            seq: seg.seq,
            path: path.clone(),
            len: good_end,
            synced_len: good_end,
        },
        cut,
    ))
}

/// A header that is short, or a file that is all zeros (size reached disk, data did not).
fn is_torn_creation(file: &mut impl FsFile, len: u64, damage: &Damage) -> Result<bool, StoreError> {
    if matches!(damage, Damage::ShortSegmentHeader { .. }) {
        return Ok(true);
    }
    if len > 1 << 20 {
        return Ok(false);
    }
    let mut buf = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut buf))
        .map_err(io_err("reading the newest segment"))?;
    Ok(buf.iter().all(|b| *b == 0))
}

fn rewrite_header(file: &mut impl FsFile) -> io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&segment_header())?;
    file.sync_all()
}

/// Copies `[offset, len)` to the quarantine directory, then truncates the segment at `offset`.
fn cut_tail<F: FileSystem>(
    fs: &F,
    data_dir: &Path,
    seg: &SegmentFile,
    file: &mut F::File,
    len: u64,
    offset: u64,
    damage: &Damage,
) -> Result<(), StoreError> {
    let qdir = data_dir.join(QUARANTINE_DIR);
    let base = format!("{}.{offset}.tail", segment_file_name(seg.seq));
    let mut qpath = qdir.join(&base);
    let saved = (|| {
        fs.create_dir_all(&qdir)?;
        let mut tail = Vec::new();
        file.seek(SeekFrom::Start(offset))?;
        file.read_to_end(&mut tail)?;
        // Never overwrite an earlier cut (two crashes can cut at the same offset).
        let mut n = 0u32;
        let mut q = loop {
            match fs.create_new(&qpath) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 10_000 => {
                    n += 1;
                    qpath = qdir.join(format!("{base}.{n}"));
                }
                other => break other?,
            }
        };
        q.write_all(&tail)?;
        q.sync_all()?;
        fs.sync_dir(&qdir)?;
        fs.sync_dir(data_dir)
    })();
    saved.map_err(io_err(format!(
        "saving the damaged tail of {} to {}",
        seg.path.display(),
        qpath.display()
    )))?;
    file.set_len(offset)
        .and_then(|()| file.sync_all())
        .map_err(io_err(format!("truncating {}", seg.path.display())))?;
    tracing::warn!(
        segment = %seg.path.display(),
        offset,
        bytes_cut = len - offset,
        saved_to = %qpath.display(),
        "cut the torn or corrupt tail of the newest segment ({damage}); \
         every frame before offset {offset} is kept"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlog_format::frame::encode_frame;
    use meshlog_format::reader::{SEGMENTS_DIR, read_all};
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};
    use std::path::PathBuf;

    /// A one-segment store whose frames hold `sizes[i]` records each; returns the frame bounds.
    fn build(data: &Path, sizes: &[usize]) -> (PathBuf, Vec<u8>, Vec<(u64, u64)>) {
        let segs = data.join(SEGMENTS_DIR);
        std::fs::create_dir_all(&segs).unwrap();
        let mut bytes = segment_header().to_vec();
        let mut bounds = Vec::new();
        let mut id = 0u64;
        for n in sizes {
            let recs: Vec<Map<String, Value>> = (0..*n)
                .map(|_| {
                    id += 1;
                    let Value::Object(m) = json!({ "id": id }) else {
                        unreachable!()
                    };
                    m
                })
                .collect();
            let start = bytes.len() as u64;
            bytes.extend_from_slice(encode_frame(&recs).unwrap().bytes());
            bounds.push((start, bytes.len() as u64));
        }
        let path = segs.join(segment_file_name(1));
        (path, bytes, bounds)
    }

    fn stored_count(data: &Path) -> usize {
        read_all(data).unwrap().len()
    }

    fn recover_and_count(data: &Path, path: &Path) -> (u64, usize) {
        let rec = recover(data, &data.join(SEGMENTS_DIR), &SharedIndex::new(100)).unwrap();
        assert_eq!(rec.active.len, std::fs::metadata(path).unwrap().len());
        drop(rec);
        (std::fs::metadata(path).unwrap().len(), stored_count(data))
    }

    #[test]
    fn a_second_cut_at_the_same_offset_does_not_overwrite_the_first() {
        let d = tempfile::tempdir().unwrap();
        let (path, bytes, bounds) = build(d.path(), &[1, 1]);
        let start = bounds[1].0 as usize;
        for tail in [&bytes[start..start + 5], &bytes[start..start + 9]] {
            let mut torn = bytes[..start].to_vec();
            torn.extend_from_slice(tail);
            std::fs::write(&path, &torn).unwrap();
            assert_eq!(recover_and_count(d.path(), &path), (start as u64, 1));
        }
        let q = d.path().join(QUARANTINE_DIR);
        let first = q.join(format!("{}.{start}.tail", segment_file_name(1)));
        assert_eq!(std::fs::read(&first).unwrap(), &bytes[start..start + 5]);
        assert_eq!(
            std::fs::read(q.join(format!("{}.{start}.tail.1", segment_file_name(1)))).unwrap(),
            &bytes[start..start + 9]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        /// Wherever a crash cuts the file, exactly the complete frames before the cut survive.
        #[test]
        fn any_truncation_keeps_exactly_the_complete_frames(
            sizes in prop::collection::vec(1usize..4, 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let d = tempfile::tempdir().unwrap();
            let (path, bytes, bounds) = build(d.path(), &sizes);
            let at = SEGMENT_HEADER_LEN as usize + cut.index(bytes.len() - SEGMENT_HEADER_LEN as usize + 1);
            std::fs::write(&path, &bytes[..at]).unwrap();
            let kept: Vec<usize> = (0..sizes.len()).filter(|i| bounds[*i].1 <= at as u64).collect();
            let want_len = kept.last().map_or(SEGMENT_HEADER_LEN, |i| bounds[*i].1);
            let want_records: usize = kept.iter().map(|i| sizes[*i]).sum();
            prop_assert_eq!(recover_and_count(d.path(), &path), (want_len, want_records));
        }

        /// A flipped bit anywhere in a frame of the newest segment cuts from that frame on, and
        /// the cut bytes are saved unchanged.
        #[test]
        fn any_bit_flip_cuts_from_the_damaged_frame(
            sizes in prop::collection::vec(1usize..4, 1..6),
            pos in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let d = tempfile::tempdir().unwrap();
            let (path, mut bytes, bounds) = build(d.path(), &sizes);
            let at = SEGMENT_HEADER_LEN as usize + pos.index(bytes.len() - SEGMENT_HEADER_LEN as usize);
            bytes[at] ^= 1 << bit;
            std::fs::write(&path, &bytes).unwrap();
            let hit = bounds.iter().position(|(s, e)| (*s..*e).contains(&(at as u64))).unwrap();
            let start = bounds[hit].0;
            let want_records: usize = sizes[..hit].iter().sum();
            prop_assert_eq!(recover_and_count(d.path(), &path), (start, want_records));
            let saved = std::fs::read(
                d.path().join(QUARANTINE_DIR).join(format!("{}.{start}.tail", segment_file_name(1))),
            ).unwrap();
            prop_assert_eq!(&saved[..], &bytes[start as usize..]);
        }
    }
}
