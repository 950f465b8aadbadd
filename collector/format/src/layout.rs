//! Every path of a data directory, named once (as Tessera's `api/layout` does for its log).
//!
//! ```text
//! DATA_DIR/
//!   LOCK                      flock'd by the one process that writes here
//!   segments/<seq:016>.seg    the store: frames, appended; the newest is the active segment
//!   quarantine/               tails cut by recovery (damaged or torn), kept for inspection
//!   checkpoints.log           signed checkpoints, framed entries
//!   cosigned.log              checkpoints with the witnesses' cosignatures, framed entries
//!   tree.state                the writer's Merkle state (a cache: rebuilt from segments)
//!   deleted/<seq:016>.leaves  leaf hashes of segments deleted by retention (class stores)
//!   receipts.log              signed deletion receipts (class stores)
//!   retention.cache           per-segment time ranges (a cache: rebuilt from segments)
//!   index/<seq:016>.idx       a closed segment's query index (a cache: rebuilt from segments)
//!   classes/<class>/          with [retention]: one complete store per class, laid out as above
//! ```
//!
//! Beside (never inside) the data directory, `serve` keeps the signing key it made itself when
//! none is configured (whoever can rewrite the store should not find the key next to it, and
//! deleting the data directory must not delete the key):
//!
//! ```text
//! DATA_DIR-keys/              default_keys_dir(DATA_DIR), mode 0700
//!   signing.key               the checkpoint signing key (private, 0600)
//!   verifier.pub              its verifier key (public: copy it somewhere else)
//! ```
//!
//! A witness (`meshlog witness`, or `serve` with `[witness] listen`) keeps its own state
//! directory:
//!
//! ```text
//! STATE_DIR/
//!   logs/<hex(origin)>.note   per log: the latest checkpoint it cosigned, with its cosignature
//! ```
//!
//! A store directory is the data directory itself (no `[retention]`) or one class directory;
//! every builder below takes a store directory unless it says otherwise.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// The lock file, in the data directory and in each class store.
pub const LOCK_FILE: &str = "LOCK";
/// Directory holding segment files.
pub const SEGMENTS_DIR: &str = "segments";
/// Directory where recovery keeps the tails it cut.
pub const QUARANTINE_DIR: &str = "quarantine";
/// The signed checkpoints.
pub const CHECKPOINT_LOG_FILE: &str = "checkpoints.log";
/// The writer's saved Merkle state.
pub const TREE_STATE_FILE: &str = "tree.state";
/// The checkpoints witnesses cosigned.
pub const COSIGNED_LOG_FILE: &str = "cosigned.log";
/// Suffix of the default keys directory beside a data directory (not `.keys`, a name people
/// give data-encryption key files).
pub const KEYS_DIR_SUFFIX: &str = "-keys";
/// Directory in a witness's state directory with one file per log.
pub const WITNESS_LOGS_DIR: &str = "logs";
/// Directory keeping the leaf hashes of deleted segments.
pub const DELETED_DIR: &str = "deleted";
/// The signed deletion receipts of a class store.
pub const RECEIPTS_FILE: &str = "receipts.log";
/// The sweeper's per-segment summary cache.
pub const RETENTION_CACHE_FILE: &str = "retention.cache";
/// Directory of the query's per-segment sidecar indexes (meshlog-query; never evidence).
pub const INDEX_DIR: &str = "index";
/// Directory (in the data directory) holding one store directory per retention class.
pub const CLASSES_DIR: &str = "classes";
/// The class of records no rule matches, and the one class without `[retention]`.
pub const DEFAULT_CLASS: &str = "default";
/// Longest class name.
pub const MAX_CLASS_NAME_LEN: usize = 32;

/// `segments/` of a store.
pub fn segments_dir(store_dir: &Path) -> PathBuf {
    store_dir.join(SEGMENTS_DIR)
}

/// `0000000000000042.seg`
pub fn segment_file_name(seq: u64) -> String {
    format!("{seq:016}.seg")
}

/// The sequence number of a segment file name, if it is one.
pub fn segment_seq(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `segments/<seq>.seg` of a store.
pub fn segment_path(store_dir: &Path, seq: u64) -> PathBuf {
    segments_dir(store_dir).join(segment_file_name(seq))
}

/// `quarantine/` of a store.
pub fn quarantine_dir(store_dir: &Path) -> PathBuf {
    store_dir.join(QUARANTINE_DIR)
}

/// `checkpoints.log` of a store.
pub fn checkpoint_log_path(store_dir: &Path) -> PathBuf {
    store_dir.join(CHECKPOINT_LOG_FILE)
}

/// `cosigned.log` of a store.
pub fn cosigned_log_path(store_dir: &Path) -> PathBuf {
    store_dir.join(COSIGNED_LOG_FILE)
}

/// `DATA_DIR-keys/`: where `serve` keeps the signing key it made (beside the data directory,
/// never inside). `/var/lib/meshlog` → `/var/lib/meshlog-keys`.
pub fn default_keys_dir(data_dir: &Path) -> PathBuf {
    let name = data_dir.file_name().map_or_else(
        || "meshlog-data".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let parent = data_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parent.join(format!("{name}{KEYS_DIR_SUFFIX}"))
}

/// `logs/<hex(origin)>.note` of a witness state directory: the latest checkpoint of log
/// `origin` the witness cosigned.
pub fn witness_log_path(state_dir: &Path, origin: &str) -> PathBuf {
    state_dir
        .join(WITNESS_LOGS_DIR)
        .join(format!("{}.note", hex::encode(origin.as_bytes())))
}

/// `tree.state` of a store.
pub fn tree_state_path(store_dir: &Path) -> PathBuf {
    store_dir.join(TREE_STATE_FILE)
}

/// `deleted/` of a store.
pub fn deleted_dir(store_dir: &Path) -> PathBuf {
    store_dir.join(DELETED_DIR)
}

/// The name of the file in `deleted/` that keeps the leaf hashes of `segment`
/// (`0000000000000003.seg` → `0000000000000003.leaves`).
pub fn leaves_file_name(segment: &str) -> String {
    format!("{}.leaves", segment.strip_suffix(".seg").unwrap_or(segment))
}

/// `deleted/<seq>.leaves` of a store, for segment file name `segment`.
pub fn deleted_leaves_path(store_dir: &Path, segment: &str) -> PathBuf {
    deleted_dir(store_dir).join(leaves_file_name(segment))
}

/// `receipts.log` of a store.
pub fn receipts_path(store_dir: &Path) -> PathBuf {
    store_dir.join(RECEIPTS_FILE)
}

/// `retention.cache` of a store.
pub fn retention_cache_path(store_dir: &Path) -> PathBuf {
    store_dir.join(RETENTION_CACHE_FILE)
}

/// `index/` of a store.
pub fn index_dir(store_dir: &Path) -> PathBuf {
    store_dir.join(INDEX_DIR)
}

/// `index/<seq>.idx` of a store: the query index of segment `seq`.
pub fn index_path(store_dir: &Path, seq: u64) -> PathBuf {
    index_dir(store_dir).join(format!("{seq:016}.idx"))
}

/// The segment sequence number of an index file name (`<seq:016>.idx`), if it is one.
pub fn index_seq(file_name: &str) -> Option<u64> {
    let digits = file_name.strip_suffix(".idx")?;
    (digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// `LOCK` of a data or store directory.
pub fn lock_path(dir: &Path) -> PathBuf {
    dir.join(LOCK_FILE)
}

/// `classes/` of a data directory.
pub fn classes_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(CLASSES_DIR)
}

/// `classes/<name>/` of a data directory.
pub fn class_dir(data_dir: &Path, name: &str) -> PathBuf {
    classes_dir(data_dir).join(name)
}

/// Whether `name` can name a class (and so a directory): 1 to 32 of `a-z`, `0-9`, `-`.
pub fn valid_class_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CLASS_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// Sequence number from the file name.
    pub seq: u64,
    /// Full path.
    pub path: PathBuf,
}

/// Segment files in `segments_dir`, oldest first. Other files are ignored.
pub fn list_segments(segments_dir: &Path) -> io::Result<Vec<SegmentFile>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(segments_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(seq) = name.to_str().and_then(segment_seq) else {
            continue;
        };
        if entry.file_type()?.is_file() {
            out.push(SegmentFile {
                seq,
                path: entry.path(),
            });
        }
    }
    out.sort_by_key(|s| s.seq);
    Ok(out)
}

/// The class directories found in `data_dir`, by name (configured or not).
pub fn class_dirs(data_dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(classes_dir(data_dir)) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if valid_class_name(&name) && entry.file_type()?.is_dir() {
            out.push((name, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Every store directory of a data directory, in reading order: `data_dir` itself (the store
/// without retention), then each class directory by name.
pub fn store_dirs(data_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut dirs = vec![data_dir.to_owned()];
    dirs.extend(class_dirs(data_dir)?.into_iter().map(|(_, p)| p));
    Ok(dirs)
}

/// The `deleted/<seq>.leaves` files of a store directory, by segment sequence number (none
/// without the directory). Other names (a `.tmp` left by a crash) are not listed.
pub fn deleted_leaves_files(store_dir: &Path) -> io::Result<BTreeMap<u64, PathBuf>> {
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(deleted_dir(store_dir)) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(seq) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(".leaves"))
            .and_then(|stem| segment_seq(&format!("{stem}.seg")))
        else {
            continue;
        };
        if entry.file_type()?.is_file() {
            out.insert(seq, entry.path());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_reject_look_alikes() {
        assert_eq!(segment_file_name(42), "0000000000000042.seg");
        assert_eq!(segment_seq("0000000000000042.seg"), Some(42));
        for bad in [
            "42.seg",
            "000000000000004x.seg",
            "0000000000000042.leaves",
            "",
        ] {
            assert_eq!(segment_seq(bad), None, "{bad}");
        }
        assert_eq!(
            leaves_file_name("0000000000000003.seg"),
            "0000000000000003.leaves"
        );
    }

    #[test]
    fn the_keys_directory_is_beside_the_data_directory() {
        assert_eq!(
            default_keys_dir(Path::new("/var/lib/meshlog")),
            Path::new("/var/lib/meshlog-keys")
        );
        assert_eq!(
            default_keys_dir(Path::new("meshlog-data")),
            Path::new("./meshlog-data-keys")
        );
        assert_eq!(
            witness_log_path(Path::new("/w"), "a/b"),
            Path::new("/w/logs/612f62.note")
        );
    }

    #[test]
    fn class_names_are_short_lowercase_words() {
        assert!(valid_class_name("pci-7"));
        assert!(!valid_class_name("PCI"));
        assert!(!valid_class_name(""));
        assert!(!valid_class_name(&"a".repeat(MAX_CLASS_NAME_LEN + 1)));
        assert!(!valid_class_name("../x"));
    }

    #[test]
    fn listings_skip_foreign_files() {
        let d = tempfile::tempdir().unwrap();
        let seg = segments_dir(d.path());
        std::fs::create_dir_all(&seg).unwrap();
        for n in ["0000000000000002.seg", "0000000000000001.seg", "notes.txt"] {
            std::fs::write(seg.join(n), b"").unwrap();
        }
        let seqs: Vec<u64> = list_segments(&seg).unwrap().iter().map(|s| s.seq).collect();
        assert_eq!(seqs, [1, 2]);
        std::fs::create_dir_all(deleted_dir(d.path())).unwrap();
        std::fs::write(deleted_leaves_path(d.path(), "0000000000000001.seg"), b"").unwrap();
        std::fs::write(deleted_dir(d.path()).join("x.leaves.tmp"), b"").unwrap();
        assert_eq!(
            deleted_leaves_files(d.path())
                .unwrap()
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            [1]
        );
        std::fs::create_dir_all(class_dir(d.path(), "short")).unwrap();
        std::fs::create_dir_all(class_dir(d.path(), "Bad Name")).unwrap();
        assert_eq!(
            store_dirs(d.path()).unwrap(),
            [d.path().to_owned(), class_dir(d.path(), "short")]
        );
    }
}
