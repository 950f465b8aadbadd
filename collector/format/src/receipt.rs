//! Deletion receipts: what retention deleted, why and when, signed so an auditor can tell a
//! deletion by policy from any other gap; and `receipts.log`, the append-only file that keeps
//! them in each class directory.
//!
//! A receipt is a C2SP signed note ([`meshlog_tlog::checkpoint::sign_note`], Ed25519, the
//! key from `meshlog keygen --out`) whose text is one `key value` line per field, in this order
//! (parsed strictly: a missing, reordered or unknown line is refused, the receipt is evidence):
//!
//! ```text
//! meshlog.retention.deletion v1
//! class short                                  retention class (its directory name)
//! segment 0000000000000003.seg                 the deleted segment file
//! bytes 1048576                                its length
//! sha256 <64 hex>                              SHA-256 of the whole file (as `sha256sum` prints)
//! frames 212                                   frames (Merkle leaves) it held
//! records 5300                                 records it held
//! leaves_sha256 <64 hex>                       SHA-256 of its leaf hashes (the kept leaves file)
//! first_leaf <64 hex>                          RFC 6962 leaf hash of its first frame
//! last_leaf <64 hex>                           ... and of its last frame
//! oldest_observed_unix_ns 1735689600000000000  its retention-time range: the collector's
//!                                              receive times (observed times for frames
//!                                              written before the received entry)
//! newest_observed_unix_ns 1735775999000000000
//! retention_days 30                            the rule: the class's days when it was deleted
//! swept_unix_ns 1738368000000000000            when the sweep deleted it
//!
//! — <key name> <base64(key id || signature)>
//! ```
//!
//! A receipt is valid when the signature verifies and it is a deletion by policy: every line
//! well-formed, at least one frame and record, `oldest <= newest`, and `newest_observed_unix_ns`
//! plus `retention_days` before `swept_unix_ns`.
//!
//! A leaf hash is `SHA-256(0x00 || frame bytes as written)`, the Merkle log's leaf (see
//! [`meshlog_audit`]): with `last_leaf`, a verifier checks that the frame after the gap
//! names the deleted frame as its predecessor, and with `frames` that the leaf indexes skip
//! exactly the deleted ones. The leaf hashes of every deleted frame are kept in
//! `deleted/<segment>.leaves` (32 bytes each, in order), so proofs over the remaining frames
//! stay possible; `leaves_sha256` binds that file to the receipt.
//!
//! `receipts.log` entries are framed so a torn tail is detectable: a header line
//! `MLRC <note length> <CRC32 of the note, 8 hex>` and the note's bytes. An incomplete last
//! entry (a header line cut short, or fewer note bytes than it announces) is a crash during an
//! append, which deleted nothing (the receipt is made durable first): readers skip it and the
//! next append cuts it. Anything else that is not an intact entry, last or not, is damage: an
//! error, never repaired (a receipt that no longer reads is evidence someone must look at).

pub use crate::fsutil::read_leaves;
pub use crate::layout::{
    DELETED_DIR, RECEIPTS_FILE, deleted_leaves_files, leaves_file_name,
    segment_file_name as segment_name, segment_seq,
};
use meshlog_tlog::checkpoint::{NoteError, open_note, parse_decimal, sign_note};
use meshlog_tlog::keys::{SignerKey, VerifierKey};
use meshlog_tlog::merkle::Hash;
use serde_json::{Map, Value};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// `event_name` of the record a deletion adds to its class's store.
pub const DELETION_EVENT: &str = "meshlog.retention.deletion";
/// First line of a receipt's text.
const HEADER_LINE: &str = "meshlog.retention.deletion v1";
/// Magic at the start of each `receipts.log` entry.
const ENTRY_MAGIC: &str = "MLRC";
/// Longest entry header line, newline included.
const MAX_ENTRY_HEADER: usize = 32;

/// What a receipt says about one deleted segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The retention class.
    pub class: String,
    /// The segment file name (`<16 digits>.seg`).
    pub segment: String,
    /// The file's length, bytes.
    pub bytes: u64,
    /// SHA-256 of the file.
    pub sha256: Hash,
    /// Frames in the segment.
    pub frames: u64,
    /// Records in the segment.
    pub records: u64,
    /// SHA-256 of the concatenated leaf hashes (the `deleted/<segment>.leaves` file).
    pub leaves_sha256: Hash,
    /// Leaf hash of the first frame.
    pub first_leaf: Hash,
    /// Leaf hash of the last frame.
    pub last_leaf: Hash,
    /// Oldest retention time of the segment: the collector's receive time of its frames (the
    /// frame header's received entry), or for a frame without one, its records'
    /// `observed_time_unix_nano` (the field keeps its v1 name: every receipt verifies as before).
    pub oldest_observed_unix_ns: u64,
    /// Newest retention time of the segment (as `oldest_observed_unix_ns`): what expiry ran on.
    pub newest_observed_unix_ns: u64,
    /// The class's retention when the segment was deleted, days.
    pub retention_days: u32,
    /// When the sweep deleted it, nanoseconds since the Unix epoch.
    pub swept_unix_ns: u64,
}

/// Why a receipt is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The signed-note layer failed: form, size, or the signature (altered, or another key).
    #[error(transparent)]
    Note(#[from] NoteError),
    /// A line that is present but wrong.
    #[error("line {line}: malformed {what}: {reason}")]
    Malformed {
        /// The line, counted from 1.
        line: usize,
        /// The field expected there.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The text ends before this field.
    #[error("line {line}: missing {what}")]
    Missing {
        /// The line.
        line: usize,
        /// The field.
        what: &'static str,
    },
    /// More lines than the format has.
    #[error("line {line}: unexpected line (a v1 receipt has {FIELDS} lines)")]
    Unexpected {
        /// The line.
        line: usize,
    },
    /// Fields that cannot all be true (a receipt made by this code never has them).
    #[error("inconsistent receipt: {0}")]
    Inconsistent(String),
}

/// Lines in a v1 receipt's text, the header line included.
const FIELDS: usize = 14;

impl Receipt {
    /// The note text (what is signed).
    pub fn body(&self) -> String {
        format!(
            "{HEADER_LINE}\nclass {}\nsegment {}\nbytes {}\nsha256 {}\nframes {}\nrecords {}\n\
             leaves_sha256 {}\nfirst_leaf {}\nlast_leaf {}\noldest_observed_unix_ns {}\n\
             newest_observed_unix_ns {}\nretention_days {}\nswept_unix_ns {}\n",
            self.class,
            self.segment,
            self.bytes,
            hex::encode(self.sha256),
            self.frames,
            self.records,
            hex::encode(self.leaves_sha256),
            hex::encode(self.first_leaf),
            hex::encode(self.last_leaf),
            self.oldest_observed_unix_ns,
            self.newest_observed_unix_ns,
            self.retention_days,
            self.swept_unix_ns,
        )
    }

    /// The signed receipt note.
    pub fn sign(&self, key: &SignerKey) -> Result<String, ReceiptError> {
        self.check()?;
        Ok(sign_note(&self.body(), key)?)
    }

    /// Checks the signature with `key` and parses the text.
    pub fn verify(note: &[u8], key: &VerifierKey) -> Result<Receipt, ReceiptError> {
        Receipt::parse_body(open_note(note, key)?)
    }

    /// The sequence number of the deleted segment.
    pub fn segment_seq(&self) -> Option<u64> {
        segment_seq(&self.segment)
    }

    /// Parses a receipt's text (unverified: use [`Receipt::verify`] for what comes from a file).
    pub fn parse_body(text: &str) -> Result<Receipt, ReceiptError> {
        let mut lines = text.strip_suffix('\n').unwrap_or(text).split('\n');
        let mut n = 0;
        let mut field = |what: &'static str| -> Result<(usize, &str), ReceiptError> {
            n += 1;
            let line = lines
                .next()
                .ok_or(ReceiptError::Missing { line: n, what })?;
            let value = line
                .strip_prefix(what)
                .and_then(|r| r.strip_prefix(' '))
                .ok_or_else(|| ReceiptError::Malformed {
                    line: n,
                    what,
                    reason: format!("expected `{what} <value>`"),
                })?;
            Ok((n, value))
        };
        let bad = |line: usize, what: &'static str, reason: &str| ReceiptError::Malformed {
            line,
            what,
            reason: reason.to_owned(),
        };
        let dec = |(line, v): (usize, &str), what| parse_decimal(v).map_err(|r| bad(line, what, r));
        let hash = |(line, v): (usize, &str), what| parse_hash(v).map_err(|r| bad(line, what, r));

        let (line, version) = field("meshlog.retention.deletion")?;
        if version != "v1" {
            return Err(bad(line, "meshlog.retention.deletion", "unknown version"));
        }
        let (line, class) = field("class")?;
        if !crate::layout::valid_class_name(class) {
            return Err(bad(line, "class", "not a class name"));
        }
        let (line, segment) = field("segment")?;
        if segment_seq(segment).is_none() {
            return Err(bad(line, "segment", "not a segment file name"));
        }
        let r = Receipt {
            class: class.to_owned(),
            segment: segment.to_owned(),
            bytes: dec(field("bytes")?, "bytes")?,
            sha256: hash(field("sha256")?, "sha256")?,
            frames: dec(field("frames")?, "frames")?,
            records: dec(field("records")?, "records")?,
            leaves_sha256: hash(field("leaves_sha256")?, "leaves_sha256")?,
            first_leaf: hash(field("first_leaf")?, "first_leaf")?,
            last_leaf: hash(field("last_leaf")?, "last_leaf")?,
            oldest_observed_unix_ns: dec(
                field("oldest_observed_unix_ns")?,
                "oldest_observed_unix_ns",
            )?,
            newest_observed_unix_ns: dec(
                field("newest_observed_unix_ns")?,
                "newest_observed_unix_ns",
            )?,
            retention_days: {
                let (line, v) = field("retention_days")?;
                u32::try_from(parse_decimal(v).map_err(|r| bad(line, "retention_days", r))?)
                    .map_err(|_| bad(line, "retention_days", "out of range"))?
            },
            swept_unix_ns: dec(field("swept_unix_ns")?, "swept_unix_ns")?,
        };
        if lines.next().is_some() {
            return Err(ReceiptError::Unexpected { line: FIELDS + 1 });
        }
        r.check()?;
        Ok(r)
    }

    fn check(&self) -> Result<(), ReceiptError> {
        let bad = |why: &str| Err(ReceiptError::Inconsistent(why.to_owned()));
        if self.frames == 0 || self.records == 0 {
            return bad("a deleted segment has at least one frame and one record");
        }
        if self.oldest_observed_unix_ns > self.newest_observed_unix_ns {
            return bad("oldest_observed_unix_ns is after newest_observed_unix_ns");
        }
        if self.retention_days == 0 {
            return bad("retention_days is 0");
        }
        // By policy only: the newest record was more than the class's days old at the sweep.
        let expired_at = self
            .newest_observed_unix_ns
            .saturating_add(crate::time::days_ns(self.retention_days));
        if expired_at >= self.swept_unix_ns {
            return bad(
                "deleted before it expired (newest_observed_unix_ns + retention_days is \
                 not before swept_unix_ns)",
            );
        }
        Ok(())
    }

    /// The batch id of the record this receipt adds to its class's store: the same for every
    /// attempt, so a retried sweep stores it once (within the dedup window).
    pub fn batch_id(&self) -> String {
        format!("{DELETION_EVENT}:{}:{}", self.class, self.segment)
    }

    /// The canonical record a deletion adds to its class's store: the receipt's fields and the
    /// signed note itself, so the tamper-evident log covers every deletion.
    pub fn record(&self, note: &str) -> Map<String, Value> {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_owned(), v);
        };
        put("time_unix_nano", self.swept_unix_ns.into());
        put("observed_time_unix_nano", self.swept_unix_ns.into());
        put("severity_number", 9.into());
        put("severity_text", "INFO".into());
        put("event_name", DELETION_EVENT.into());
        put("resource.service.name", "meshlog-collector".into());
        put("meshlog.retention.class", self.class.as_str().into());
        put("meshlog.retention.segment", self.segment.as_str().into());
        put("meshlog.retention.segment.bytes", self.bytes.into());
        put(
            "meshlog.retention.segment.sha256",
            hex::encode(self.sha256).into(),
        );
        put("meshlog.retention.segment.frames", self.frames.into());
        put("meshlog.retention.segment.records", self.records.into());
        put(
            "meshlog.retention.segment.leaves_sha256",
            hex::encode(self.leaves_sha256).into(),
        );
        put(
            "meshlog.retention.segment.first_leaf",
            hex::encode(self.first_leaf).into(),
        );
        put(
            "meshlog.retention.segment.last_leaf",
            hex::encode(self.last_leaf).into(),
        );
        put(
            "meshlog.retention.segment.oldest_observed_unix_nano",
            self.oldest_observed_unix_ns.into(),
        );
        put(
            "meshlog.retention.segment.newest_observed_unix_nano",
            self.newest_observed_unix_ns.into(),
        );
        put("meshlog.retention.days", self.retention_days.into());
        put(
            "meshlog.retention.swept_unix_nano",
            self.swept_unix_ns.into(),
        );
        put("meshlog.retention.receipt", note.into());
        m
    }
}

fn parse_hash(s: &str) -> Result<Hash, &'static str> {
    if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err("expected 64 lower-case hex digits");
    }
    let mut h = [0u8; 32];
    hex::decode_to_slice(s, &mut h).map_err(|_| "expected 64 lower-case hex digits")?;
    Ok(h)
}

// ---------------------------------------------------------------------------------------------
// receipts.log

/// One entry of `receipts.log`, unverified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedNote {
    /// Byte offset of the entry header.
    pub offset: u64,
    /// The signed note.
    pub note: Vec<u8>,
}

/// What `receipts.log` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiptLog {
    /// The intact entries, in order.
    pub entries: Vec<LoggedNote>,
    /// Where the intact entries end.
    pub good_len: u64,
    /// Bytes after them: an append torn by a crash (nothing was deleted for it).
    pub torn_bytes: u64,
}

/// Why `receipts.log` could not be read or appended to.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptLogError {
    /// An I/O error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Bytes that are no intact entry and not an append cut short: not a crash artefact.
    #[error(
        "{} is damaged at offset {offset}: {reason}; only an incomplete last entry is repaired",
        path.display()
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The entry's offset.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

/// Reads `path` (a missing file holds no receipts).
pub fn read_log(path: &Path) -> Result<ReceiptLog, ReceiptLogError> {
    let (log, damage) = read_log_to_damage(path)?;
    match damage {
        Some((offset, reason)) => Err(ReceiptLogError::Damaged {
            path: path.to_owned(),
            offset,
            reason,
        }),
        None => Ok(log),
    }
}

/// Like [`read_log`], but damage does not discard what comes before it: the intact entries up
/// to the first damage, and where and what that damage is. `meshlog verify` reports the damage
/// and still checks the receipts before it (each is signed on its own).
pub fn read_log_to_damage(
    path: &Path,
) -> Result<(ReceiptLog, Option<(u64, String)>), ReceiptLogError> {
    let io_err = |source| ReceiptLogError::Io {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => f.read_to_end(&mut bytes).map_err(io_err)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((ReceiptLog::default(), None)),
        Err(e) => return Err(io_err(e)),
    };
    let mut log = ReceiptLog::default();
    let mut at = 0usize;
    let mut damage = None;
    while at < bytes.len() {
        let rest = bytes.get(at..).unwrap_or_default();
        match parse_entry(rest) {
            Ok((note, used)) => {
                log.entries.push(LoggedNote {
                    offset: at as u64,
                    note: note.to_vec(),
                });
                at += used;
            }
            Err(EntryError::Torn) => break,
            Err(EntryError::Bad(reason)) => {
                damage = Some((at as u64, reason));
                break;
            }
        }
    }
    log.good_len = at as u64;
    log.torn_bytes = if damage.is_some() {
        0
    } else {
        (bytes.len() - at) as u64
    };
    Ok((log, damage))
}

enum EntryError {
    /// Ends before the entry does.
    Torn,
    /// Complete but wrong.
    Bad(String),
}

/// One entry at the start of `b`: the note and the entry's length.
fn parse_entry(b: &[u8]) -> Result<(&[u8], usize), EntryError> {
    let Some(nl) = b.iter().take(MAX_ENTRY_HEADER).position(|&c| c == b'\n') else {
        // A header cut short is the start of one: the magic (or its beginning), then digits,
        // spaces and hex.
        let magic = ENTRY_MAGIC.as_bytes();
        let prefix = b.len() < MAX_ENTRY_HEADER
            && magic.starts_with(b.get(..b.len().min(magic.len())).unwrap_or_default())
            && b.iter()
                .skip(magic.len())
                .all(|c| c.is_ascii_hexdigit() || *c == b' ');
        return Err(if prefix {
            EntryError::Torn
        } else {
            EntryError::Bad("no entry header line".into())
        });
    };
    let header = std::str::from_utf8(b.get(..nl).unwrap_or_default())
        .map_err(|_| EntryError::Bad("entry header is not text".into()))?;
    let mut parts = header.split(' ');
    let (Some(ENTRY_MAGIC), Some(len), Some(crc), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(EntryError::Bad(format!(
            "expected `{ENTRY_MAGIC} <length> <crc32>`"
        )));
    };
    let len: usize = len
        .parse()
        .map_err(|_| EntryError::Bad("bad entry length".into()))?;
    let crc = u32::from_str_radix(crc, 16).map_err(|_| EntryError::Bad("bad entry CRC".into()))?;
    let start = nl + 1;
    let Some(note) = b.get(start..start + len) else {
        return Err(EntryError::Torn);
    };
    if crc32fast::hash(note) != crc {
        return Err(EntryError::Bad("entry CRC mismatch".into()));
    }
    Ok((note, start + len))
}

/// Appends `note` as one entry and makes it durable (file and, when created, directory).
/// Cuts a torn last entry first (logged): it never led to a deletion.
pub fn append(path: &Path, note: &str) -> Result<(), ReceiptLogError> {
    let io_err = |source| ReceiptLogError::Io {
        path: path.to_owned(),
        source,
    };
    let log = read_log(path)?;
    let created = !path.exists();
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err)?;
    if log.torn_bytes > 0 {
        tracing::warn!(
            receipts = %path.display(),
            offset = log.good_len,
            bytes_cut = log.torn_bytes,
            "cutting a torn receipt left by a crash (its segment was not deleted)"
        );
        f.set_len(log.good_len).map_err(io_err)?;
    }
    f.seek(SeekFrom::Start(log.good_len)).map_err(io_err)?;
    let entry = format!(
        "{ENTRY_MAGIC} {} {:08x}\n{note}",
        note.len(),
        crc32fast::hash(note.as_bytes())
    );
    f.write_all(entry.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io_err)?;
    if created && let Some(dir) = path.parent() {
        crate::fsutil::sync_dir(dir).map_err(io_err)?;
    }
    Ok(())
}

/// Why the receipts of a class directory do not all verify.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptsError {
    /// The log could not be read.
    #[error(transparent)]
    Log(#[from] ReceiptLogError),
    /// One receipt is not valid.
    #[error("{}, receipt at offset {offset}: {source}", path.display())]
    Invalid {
        /// `receipts.log`.
        path: PathBuf,
        /// The entry's offset.
        offset: u64,
        /// Why.
        source: ReceiptError,
    },
}

/// Checks one logged note: signature by `key`, form, and that it names the class whose
/// directory holds it (a receipt copied from another class is not valid here).
pub fn verify_logged(
    entry: &LoggedNote,
    class: Option<&str>,
    key: &VerifierKey,
) -> Result<Receipt, ReceiptError> {
    let r = Receipt::verify(&entry.note, key)?;
    if let Some(class) = class
        && r.class != class
    {
        return Err(ReceiptError::Inconsistent(format!(
            "names class {:?} but is in the directory of class {class:?}",
            r.class
        )));
    }
    Ok(r)
}

/// Every receipt in `class_dir/receipts.log`, each checked with `key`: what `meshlog verify`
/// needs to accept a missing segment exactly when a valid receipt names it. A torn last entry
/// (a crash during an append, which deleted nothing) is skipped; any invalid receipt is an
/// error naming its offset.
pub fn receipts(class_dir: &Path, key: &VerifierKey) -> Result<Vec<Receipt>, ReceiptsError> {
    let path = class_dir.join(RECEIPTS_FILE);
    let class = class_dir.file_name().and_then(|n| n.to_str());
    read_log(&path)?
        .entries
        .iter()
        .map(|e| {
            verify_logged(e, class, key).map_err(|source| ReceiptsError::Invalid {
                path: path.clone(),
                offset: e.offset,
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SignerKey {
        SignerKey::from_seed("example.com/meshlog", &[7; 32]).unwrap()
    }

    pub(crate) fn sample() -> Receipt {
        Receipt {
            class: "short".into(),
            segment: segment_name(3),
            bytes: 1_048_576,
            sha256: [0xab; 32],
            frames: 212,
            records: 5300,
            leaves_sha256: [1; 32],
            first_leaf: [2; 32],
            last_leaf: [3; 32],
            oldest_observed_unix_ns: 1_735_689_600_000_000_000,
            newest_observed_unix_ns: 1_735_775_999_000_000_000,
            retention_days: 30,
            swept_unix_ns: 1_738_368_000_000_000_000,
        }
    }

    #[test]
    fn a_receipt_signs_verifies_and_round_trips_in_the_documented_layout() {
        let r = sample();
        let note = r.sign(&key()).unwrap();
        let ab = "ab".repeat(32);
        assert!(note.starts_with(&format!(
            "meshlog.retention.deletion v1\nclass short\nsegment 0000000000000003.seg\n\
             bytes 1048576\nsha256 {ab}\nframes 212\nrecords 5300\n"
        )));
        assert!(note.contains("\nretention_days 30\nswept_unix_ns 1738368000000000000\n\n\u{2014} example.com/meshlog "));
        assert_eq!(
            Receipt::verify(note.as_bytes(), &key().verifier()),
            Ok(r.clone())
        );
        assert_eq!(r.segment_seq(), Some(3));
        assert_eq!(
            r.batch_id(),
            "meshlog.retention.deletion:short:0000000000000003.seg"
        );
        let rec = r.record(&note);
        assert_eq!(rec["event_name"], DELETION_EVENT);
        assert_eq!(rec["meshlog.retention.receipt"], note.as_str());
        assert_eq!(rec["meshlog.retention.segment.sha256"], ab.as_str());
        assert_eq!(rec["observed_time_unix_nano"], r.swept_unix_ns);
    }

    #[test]
    fn another_key_or_any_flipped_byte_fails() {
        let note = sample().sign(&key()).unwrap();
        let other = SignerKey::from_seed("example.com/meshlog", &[8; 32]).unwrap();
        let e = Receipt::verify(note.as_bytes(), &other.verifier()).unwrap_err();
        assert!(
            matches!(e, ReceiptError::Note(NoteError::UnknownKey { .. })),
            "{e}"
        );
        let text_len = sample().body().len();
        // Every third byte (each check costs a signature verification): every line is hit.
        for i in (0..note.len()).step_by(3) {
            let mut b = note.clone().into_bytes();
            b[i] ^= 0x01;
            let got = Receipt::verify(&b, &key().verifier());
            assert!(got.is_err(), "flip at {i} verified");
            if i < text_len && !matches!(b[i], b'\n') {
                // Inside the text: the signature no longer matches (or the form is broken).
                assert!(matches!(got, Err(ReceiptError::Note(_))), "{i}: {got:?}");
            }
        }
    }

    #[test]
    fn bodies_are_parsed_strictly() {
        let body = sample().body();
        let err = |text: &str| Receipt::parse_body(text).unwrap_err().to_string();
        assert_eq!(
            err(&body.replace("frames 212", "frames 0212")),
            "line 6: malformed frames: leading zeros are not allowed"
        );
        assert_eq!(
            err(&body.replace("class short", "klass short")),
            "line 2: malformed class: expected `class <value>`"
        );
        assert_eq!(
            err(&body.replace("segment 0000000000000003.seg", "segment ../x")),
            "line 3: malformed segment: not a segment file name"
        );
        assert_eq!(
            err(&format!("{body}extra 1\n")),
            "line 15: unexpected line (a v1 receipt has 14 lines)"
        );
        assert_eq!(
            err(&body.replace("v1", "v2")),
            "line 1: malformed meshlog.retention.deletion: unknown version"
        );
        let cut: String = body.lines().take(5).map(|l| format!("{l}\n")).collect();
        assert_eq!(err(&cut), "line 6: missing frames");
        assert_eq!(
            err(&body.replace(&"ab".repeat(32), &"AB".repeat(32))),
            "line 5: malformed sha256: expected 64 lower-case hex digits"
        );
        let mut r = sample();
        r.oldest_observed_unix_ns = r.newest_observed_unix_ns + 1;
        assert!(matches!(r.sign(&key()), Err(ReceiptError::Inconsistent(_))));
        // A deletion before the records expired is not by policy, even when signed.
        let mut early = sample();
        early.retention_days = 31;
        let e = early.sign(&key()).unwrap_err().to_string();
        assert!(e.contains("deleted before it expired"), "{e}");
        let note = sign_note(&early.body(), &key()).unwrap();
        let e = Receipt::verify(note.as_bytes(), &key().verifier()).unwrap_err();
        assert!(e.to_string().contains("deleted before it expired"), "{e}");
    }

    #[test]
    fn the_log_keeps_entries_cuts_a_torn_tail_and_refuses_damage_before_the_end() {
        let d = tempfile::tempdir().unwrap();
        let class_dir = d.path().join("short");
        std::fs::create_dir(&class_dir).unwrap();
        let path = class_dir.join(RECEIPTS_FILE);
        let k = key();
        let mut first = sample();
        first.segment = segment_name(1);
        let notes = [first.sign(&k).unwrap(), sample().sign(&k).unwrap()];
        for n in &notes {
            append(&path, n).unwrap();
        }
        let got = receipts(&class_dir, &k.verifier()).unwrap();
        assert_eq!(got, [first.clone(), sample()]);
        let good_len = std::fs::metadata(&path).unwrap().len();

        // A torn append: skipped by readers, cut by the next append.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"MLRC 400 0000").unwrap();
        drop(f);
        let log = read_log(&path).unwrap();
        assert_eq!(
            (log.entries.len(), log.good_len, log.torn_bytes),
            (2, good_len, 13)
        );
        assert_eq!(receipts(&class_dir, &k.verifier()).unwrap().len(), 2);
        append(&path, &notes[0]).unwrap();
        let log = read_log(&path).unwrap();
        assert_eq!((log.entries.len(), log.torn_bytes), (3, 0));
        assert_eq!(log.entries[2].offset, good_len);

        // A flipped byte in the last, complete entry is damage too, not a torn tail.
        let intact = std::fs::read(&path).unwrap();
        let mut bytes = intact.clone();
        let last = bytes.len() - 10;
        bytes[last] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let e = read_log(&path).unwrap_err().to_string();
        assert!(
            e.contains(&format!("damaged at offset {good_len}: entry CRC mismatch")),
            "{e}"
        );
        assert!(append(&path, &notes[0]).is_err(), "no append behind damage");
        std::fs::write(&path, &intact).unwrap();

        // A flipped byte in the first note: its CRC fails and entries follow: damage.
        let entries = read_log(&path).unwrap().entries;
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[40] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let e = read_log(&path).unwrap_err().to_string();
        assert!(e.contains("damaged at offset 0: entry CRC mismatch"), "{e}");
        // The same flip with the CRC recomputed: the signature catches it.
        let entry = |note: &[u8]| {
            let mut b = format!("MLRC {} {:08x}\n", note.len(), crc32fast::hash(note)).into_bytes();
            b.extend_from_slice(note);
            b
        };
        let mut flipped = entries[0].note.clone();
        let header_len = entry(&flipped).len() - flipped.len();
        flipped[40 - header_len] ^= 0x01;
        let mut forged = entry(&flipped);
        for e in &entries[1..] {
            forged.extend_from_slice(&entry(&e.note));
        }
        std::fs::write(&path, &forged).unwrap();
        assert_eq!(read_log(&path).unwrap().entries.len(), 3);
        let e = receipts(&class_dir, &k.verifier()).unwrap_err().to_string();
        assert!(e.contains("receipt at offset 0: line"), "{e}");
        assert!(e.contains("does not verify"), "{e}");

        // A receipt of another class copied in.
        std::fs::write(&path, b"").unwrap();
        let mut other = sample();
        other.class = "long".into();
        append(&path, &other.sign(&k).unwrap()).unwrap();
        let e = receipts(&class_dir, &k.verifier()).unwrap_err().to_string();
        assert!(
            e.contains("names class \"long\" but is in the directory of class \"short\""),
            "{e}"
        );
    }
}
