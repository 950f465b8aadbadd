//! `DATA_DIR/checkpoints.log`: the append-only file of signed checkpoints the collector writes.
//!
//! Each entry is a header line and the signed note ([`meshlog_tlog::checkpoint`]) it announces:
//!
//! ```text
//! MLCP <note length in bytes, decimal> <CRC32 of the note, 8 lowercase hex digits>\n
//! <the signed note, ending in a newline>
//! ```
//!
//! The length and CRC make a torn write (a crash in the middle of an append) recognisable as
//! such, apart from an edit (which the signature catches), and let a reader find the next
//! entry after damage. The file stays readable with `cat`.
//!
//! At `serve` start ([`CheckpointLog::open`]) a torn or corrupt last entry is cut, the cut bytes
//! first kept in `DATA_DIR/quarantine/`, like a segment's torn tail; damage before the last
//! entry is not a crash artefact and the collector refuses to start rather than rewrite the
//! evidence. `meshlog verify` reads the file with [`parse`], which reports damage and goes on.

use crate::fsutil::sync_dir;
pub use crate::layout::CHECKPOINT_LOG_FILE;
use crate::layout::QUARANTINE_DIR;
use meshlog_tlog::checkpoint::MAX_NOTE_BYTES;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Start of every entry's header line.
const MAGIC: &[u8] = b"MLCP ";
/// Longest header line: magic, 5 digits of length, space, 8 hex digits, newline.
const MAX_HEADER_LINE: usize = 32;

/// One intact entry (its CRC matched; the signature is checked elsewhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based position among the intact entries of the file.
    pub number: usize,
    /// Byte offset of the entry's header line.
    pub offset: u64,
    /// The signed note.
    pub note: Vec<u8>,
}

/// Bytes that are not an intact entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    /// Where they start.
    pub offset: u64,
    /// Where the next intact entry (or the file) starts.
    pub end: u64,
    /// What is wrong at `offset`.
    pub reason: String,
}

/// What a checkpoint log holds, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An intact entry.
    Entry(Entry),
    /// Damaged or foreign bytes.
    Damaged(Damaged),
}

/// The bytes of one entry for `note`.
pub fn encode_entry(note: &[u8]) -> Vec<u8> {
    let mut out = format!("MLCP {} {:08x}\n", note.len(), crc32fast::hash(note)).into_bytes();
    out.extend_from_slice(note);
    out
}

/// Appends one entry for `note` to the log file at `path` (created if missing) and fsyncs it:
/// for `cosigned.log`, which only the witness client appends to.
pub fn append_entry(path: &Path, note: &[u8]) -> io::Result<()> {
    let existed = path.exists();
    let mut f = OpenOptions::new().append(true).create(true).open(path)?;
    f.write_all(&encode_entry(note))?;
    f.sync_data()?;
    if !existed && let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Parses the entry at the start of `bytes`: its length in bytes and the note.
fn parse_one(bytes: &[u8]) -> Result<(usize, &[u8]), String> {
    let window = bytes
        .get(..MAX_HEADER_LINE.min(bytes.len()))
        .unwrap_or(bytes);
    if !window.starts_with(MAGIC) && !MAGIC.starts_with(window) {
        return Err("not an entry header (expected \"MLCP <length> <crc>\")".into());
    }
    let Some(nl) = window.iter().position(|b| *b == b'\n') else {
        return Err(if bytes.len() < MAX_HEADER_LINE {
            "the file ends inside an entry header (torn write)".into()
        } else {
            "malformed entry header (no newline)".into()
        });
    };
    let line = std::str::from_utf8(window.get(MAGIC.len()..nl).unwrap_or_default())
        .map_err(|_| "malformed entry header (not text)".to_owned())?;
    let (len, crc) = line
        .split_once(' ')
        .ok_or_else(|| "malformed entry header (expected length and CRC)".to_owned())?;
    let len: usize = len
        .parse()
        .ok()
        .filter(|l| *l <= MAX_NOTE_BYTES && !len.starts_with('+'))
        .ok_or_else(|| format!("malformed entry header (length {len:?})"))?;
    let crc = (crc.len() == 8)
        .then(|| u32::from_str_radix(crc, 16).ok())
        .flatten()
        .ok_or_else(|| format!("malformed entry header (CRC {crc:?})"))?;
    let start = nl + 1;
    let Some(note) = bytes.get(start..start + len) else {
        return Err(format!(
            "the file ends inside an entry ({len}-byte note, {} bytes present; torn write)",
            bytes.len() - start
        ));
    };
    let computed = crc32fast::hash(note);
    if computed != crc {
        return Err(format!(
            "entry CRC mismatch (stored {crc:08x}, computed {computed:08x})"
        ));
    }
    Ok((start + len, note))
}

/// Every entry and every damaged stretch of a checkpoint log's bytes, in order. After damage
/// the next intact entry is searched for at every later line start.
pub fn parse(bytes: &[u8]) -> Vec<Item> {
    let mut items = Vec::new();
    let mut at = 0usize;
    let mut number = 0;
    while at < bytes.len() {
        let rest = bytes.get(at..).unwrap_or_default();
        match parse_one(rest) {
            Ok((len, note)) => {
                number += 1;
                items.push(Item::Entry(Entry {
                    number,
                    offset: at as u64,
                    note: note.to_vec(),
                }));
                at += len;
            }
            Err(reason) => {
                // The next line start where an intact entry begins.
                let next = (1..rest.len())
                    .filter(|i| rest.get(i - 1) == Some(&b'\n') && rest[*i..].starts_with(MAGIC))
                    .find(|i| parse_one(&rest[*i..]).is_ok())
                    .unwrap_or(rest.len());
                items.push(Item::Damaged(Damaged {
                    offset: at as u64,
                    end: (at + next) as u64,
                    reason,
                }));
                at += next;
            }
        }
    }
    items
}

/// Why the checkpoint log could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointLogError {
    /// An I/O error.
    #[error("{}: {context}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// The error.
        source: io::Error,
    },
    /// Damage before the last entry.
    #[error(
        "{} is damaged at offset {offset}: {reason}; only a torn last entry is cut \
         automatically, so meshlog refuses to start (run `meshlog verify`, then move the file \
         aside)",
        path.display()
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

/// The checkpoint log, open for appending.
#[derive(Debug)]
pub struct CheckpointLog {
    file: File,
    path: PathBuf,
    len: u64,
}

impl CheckpointLog {
    /// Opens (or creates) `DATA_DIR/checkpoints.log`, cutting a torn last entry; returns the
    /// log and the last intact note, if any.
    pub fn open(data_dir: &Path) -> Result<(CheckpointLog, Option<Vec<u8>>), CheckpointLogError> {
        let path = data_dir.join(CHECKPOINT_LOG_FILE);
        let io = |context: &'static str| {
            let path = path.clone();
            move |source| CheckpointLogError::Io {
                path,
                context,
                source,
            }
        };
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io("opening"))?;
        if !existed {
            sync_dir(data_dir).map_err(io("syncing the data directory"))?;
        }
        let bytes = std::fs::read(&path).map_err(io("reading"))?;
        let items = parse(&bytes);
        let mut len = bytes.len() as u64;
        let mut last = None;
        for (i, item) in items.iter().enumerate() {
            match item {
                Item::Entry(e) => last = Some(e.note.clone()),
                Item::Damaged(d) if i + 1 == items.len() => {
                    // A crash while appending: keep the bytes aside, then cut them.
                    let tail = bytes.get(d.offset as usize..).unwrap_or_default();
                    let saved =
                        quarantine(data_dir, d.offset, tail).map_err(io("saving a torn tail"))?;
                    file.set_len(d.offset)
                        .and_then(|()| file.sync_all())
                        .map_err(io("truncating"))?;
                    len = d.offset;
                    tracing::warn!(
                        file = %path.display(),
                        offset = d.offset,
                        bytes_cut = bytes.len() as u64 - d.offset,
                        saved_to = %saved.display(),
                        "cut the torn last entry of the checkpoint log ({})",
                        d.reason
                    );
                }
                Item::Damaged(d) => {
                    return Err(CheckpointLogError::Damaged {
                        path,
                        offset: d.offset,
                        reason: d.reason.clone(),
                    });
                }
            }
        }
        // In append mode, writes go to the end, also after a cut.
        Ok((CheckpointLog { file, path, len }, last))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one signed note durably (`fdatasync`). A failed append is cut back, so the
    /// file never holds half an entry that a later one follows.
    pub fn append(&mut self, note: &str) -> io::Result<()> {
        let entry = encode_entry(note.as_bytes());
        let done = self
            .file
            .write_all(&entry)
            .and_then(|()| self.file.sync_data());
        match done {
            Ok(()) => {
                self.len += entry.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }
}

/// Copies `tail` to `DATA_DIR/quarantine/checkpoints.log.<offset>.tail` (never over an earlier
/// one); returns the path.
fn quarantine(data_dir: &Path, offset: u64, tail: &[u8]) -> io::Result<PathBuf> {
    let qdir = data_dir.join(QUARANTINE_DIR);
    std::fs::create_dir_all(&qdir)?;
    let base = format!("{CHECKPOINT_LOG_FILE}.{offset}.tail");
    let mut n = 0u32;
    loop {
        let p = if n == 0 {
            qdir.join(&base)
        } else {
            qdir.join(format!("{base}.{n}"))
        };
        match OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(mut f) => {
                f.write_all(tail)?;
                f.sync_all()?;
                sync_dir(&qdir)?;
                return Ok(p);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 10_000 => n += 1,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(i: usize) -> String {
        format!("meshlog\n{i}\nAAAA\ntimestamp_unix_ns {i}\n\n\u{2014} meshlog sig{i}\n")
    }

    fn file_of(notes: &[String]) -> Vec<u8> {
        notes
            .iter()
            .flat_map(|n| encode_entry(n.as_bytes()))
            .collect()
    }

    fn entries(items: &[Item]) -> Vec<(usize, u64)> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Entry(e) => Some((e.number, e.offset)),
                Item::Damaged(_) => None,
            })
            .collect()
    }

    #[test]
    fn entries_round_trip_with_offsets() {
        let notes: Vec<String> = (0..3).map(note).collect();
        let bytes = file_of(&notes);
        assert!(bytes.starts_with(b"MLCP "));
        let items = parse(&bytes);
        assert_eq!(items.len(), 3);
        let e1 = encode_entry(notes[0].as_bytes()).len() as u64;
        assert_eq!(entries(&items)[1], (2, e1));
        match &items[2] {
            Item::Entry(e) => assert_eq!(e.note, notes[2].as_bytes()),
            other => panic!("{other:?}"),
        }
        assert!(parse(b"").is_empty());
    }

    #[test]
    fn damage_is_reported_and_the_next_entry_found() {
        let notes: Vec<String> = (0..3).map(note).collect();
        let mut bytes = file_of(&notes);
        let second = encode_entry(notes[0].as_bytes()).len();
        bytes[second + 20] ^= 0x01; // inside the second note
        let items = parse(&bytes);
        assert_eq!(entries(&items).len(), 2);
        match &items[1] {
            Item::Damaged(d) => {
                assert_eq!(d.offset, second as u64);
                assert!(d.reason.contains("CRC mismatch"), "{}", d.reason);
                let third = second + encode_entry(notes[1].as_bytes()).len();
                assert_eq!(d.end, third as u64);
            }
            other => panic!("{other:?}"),
        }
        // Garbage in front, then intact entries.
        let mut g = b"garbage\n".to_vec();
        g.extend_from_slice(&file_of(&notes));
        let items = parse(&g);
        assert!(
            matches!(&items[0], Item::Damaged(d) if d.offset == 0 && d.end == 8 && d.reason.contains("not an entry header"))
        );
        assert_eq!(entries(&items).len(), 3);
    }

    #[test]
    fn a_cut_anywhere_is_a_torn_last_item() {
        let notes: Vec<String> = (0..2).map(note).collect();
        let bytes = file_of(&notes);
        let first = encode_entry(notes[0].as_bytes()).len();
        for cut in first + 1..bytes.len() {
            let items = parse(&bytes[..cut]);
            assert_eq!(items.len(), 2, "cut at {cut}");
            match &items[1] {
                Item::Damaged(d) => {
                    assert_eq!((d.offset, d.end), (first as u64, cut as u64));
                    assert!(
                        d.reason.contains("torn") || d.reason.contains("malformed"),
                        "{cut}: {}",
                        d.reason
                    );
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn open_cuts_a_torn_tail_into_quarantine_and_refuses_damage_before_it() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(CHECKPOINT_LOG_FILE);
        {
            let (mut log, last) = CheckpointLog::open(d.path()).unwrap();
            assert_eq!(last, None);
            log.append(&note(1)).unwrap();
            log.append(&note(2)).unwrap();
        }
        let good = std::fs::read(&path).unwrap();
        let mut torn = good.clone();
        torn.extend_from_slice(&encode_entry(note(3).as_bytes())[..30]);
        std::fs::write(&path, &torn).unwrap();
        let (mut log, last) = CheckpointLog::open(d.path()).unwrap();
        assert_eq!(last.unwrap(), note(2).as_bytes());
        assert_eq!(std::fs::read(&path).unwrap(), good, "cut at the last entry");
        let q = d
            .path()
            .join(QUARANTINE_DIR)
            .join(format!("{CHECKPOINT_LOG_FILE}.{}.tail", good.len()));
        assert_eq!(std::fs::read(q).unwrap(), &torn[good.len()..]);
        // Appending after the cut continues the file cleanly.
        log.append(&note(4)).unwrap();
        drop(log);
        let items = parse(&std::fs::read(&path).unwrap());
        assert_eq!(entries(&items).len(), 3);

        // Damage before the last entry: refused, file untouched.
        let mut bad = std::fs::read(&path).unwrap();
        bad[10] ^= 0x20;
        std::fs::write(&path, &bad).unwrap();
        let err = CheckpointLog::open(d.path()).unwrap_err();
        assert!(
            matches!(err, CheckpointLogError::Damaged { offset: 0, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("refuses to start"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), bad);
    }
}
