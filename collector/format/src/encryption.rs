//! Encryption at rest for the store: the data-encryption keys a store seals with and a reader
//! opens with, kept together with the key file they came from so every error can name it.
//!
//! Off unless configured (`[encryption] key_file`). When on, each frame's payload (the zstd
//! NDJSON of one batch) is sealed as the frame is built, with the key file's last key and a
//! random nonce; the byte layout and exactly what the seal authenticates are in
//! [`mod@crate::frame`]. Keys are loaded once at start: rotation is `meshlog keygen --data-key
//! FILE` and a restart. Frames written before encryption was turned on, or with older keys,
//! stay readable: a reader needs only the key each sealed frame names.
//!
//! What stays readable without a key, on purpose: frame headers (sizes, record counts, the key
//! id and nonce) and batch ids. Batch ids are sender-chosen tokens (`<vm id>:<first seq>-<last
//! seq>` from the filter), metadata rather than record content, and recovery and deduplication
//! must work from headers alone. Nothing else in the data directory holds record bytes: `LOCK`
//! holds a pid, `quarantine/` holds cut tails exactly as they were on disk (so sealed), the
//! dedup index lives in memory, and nothing is staged in temporary files. The collector's log
//! never prints record content (only batch ids, counts and positions).

use meshlog_core::config::fields::{FieldError, Fields, Problem};
use meshlog_tlog::keys::{KeyFileError, Keyring};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A data-encryption keyring and the key file it was read from.
#[derive(Debug, Clone)]
pub struct DataKeys {
    keyring: Arc<Keyring>,
    path: PathBuf,
}

impl DataKeys {
    /// Keys read from somewhere other than a file (tests); `path` is what messages call it.
    pub fn new(keyring: Keyring, path: PathBuf) -> Self {
        DataKeys {
            keyring: Arc::new(keyring),
            path,
        }
    }

    /// Reads the key file at `path`; errors name the file and line, never key material. A file
    /// that others than its owner may read is used, with a warning.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let keyring = Keyring::load(path)?;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                key_file = %path.display(),
                mode = format_args!("{:04o}", meta.permissions().mode() & 0o7777),
                "the data-encryption key file is readable by others than its owner; \
                 `chmod 600` it"
            );
        }
        Ok(DataKeys {
            keyring: Arc::new(keyring),
            path: path.to_owned(),
        })
    }

    /// The keys.
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// The key file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads the `[encryption]` table: its `key_file` (required once the section is there), every
/// problem into `errs`.
pub fn parse_section(mut t: Fields<'_>, errs: &mut Vec<FieldError>) -> Option<PathBuf> {
    let path = t.child_path("key_file");
    let key_file = match t.raw("key_file") {
        None => {
            errs.push(FieldError::new(
                path,
                Problem::Missing {
                    expected: "the data-encryption key file (without the section, batches are \
                               stored in plain)"
                        .into(),
                },
            ));
            None
        }
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(PathBuf::from(s)),
        Some(v) => {
            errs.push(FieldError::new(
                path,
                Problem::WrongType {
                    expected: "a non-empty string (a key file path)".into(),
                    got: v.to_string(),
                },
            ));
            None
        }
    };
    t.finish(errs);
    key_file
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlog_tlog::keys::append_data_key;

    #[test]
    fn loads_a_key_file_and_remembers_where_it_came_from() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("data.keys");
        let first = append_data_key(&path).unwrap();
        let second = append_data_key(&path).unwrap();
        let keys = DataKeys::load(&path).unwrap();
        assert_eq!(keys.path(), path);
        assert_eq!(keys.keyring().current().id(), second);
        assert!(keys.keyring().get(&first).is_some());
        let err = DataKeys::load(&d.path().join("missing.keys")).unwrap_err();
        assert!(err.to_string().contains("missing.keys"), "{err}");
    }
}
