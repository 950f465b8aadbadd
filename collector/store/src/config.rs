//! The store's configuration section, `[integrity]`: whether and how often the Merkle tree's
//! root is signed. Read through core's configuration walker, like every section.

use meshlog_core::config::fields::{FieldError, Fields, Problem};
use std::path::PathBuf;

/// Shortest accepted checkpoint interval, seconds.
pub const MIN_CHECKPOINT_INTERVAL_S: i64 = 1;
/// Longest accepted checkpoint interval, seconds (one day).
pub const MAX_CHECKPOINT_INTERVAL_S: i64 = 86_400;

/// The `[integrity]` table. Every frame is chained and hashed into the Merkle tree whatever
/// this says; it decides whether (and how often) the tree's root is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityConfig {
    /// `signing_key`: the signing key file written by `meshlog keygen --out DIR`
    /// (`DIR/signing.key`; relative to the working directory), read at start. It signs the
    /// checkpoints and retention's deletion receipts. Without it no checkpoint is signed
    /// (`meshlog verify` can check the store's internal consistency only) and retention deletes
    /// nothing. Default: none.
    pub signing_key: Option<PathBuf>,
    /// `checkpoint_interval_s`: seconds between signed checkpoints (written also when no batch
    /// arrived, and at start and shutdown), 1 to 86400. Default 60.
    pub checkpoint_interval_s: u64,
    /// `verify_interval_s`: seconds between `serve`'s own verifies of the store up to its newest
    /// signed checkpoint (a CRC, chain, tree and signature check of every committed frame,
    /// whose last result the dashboard shows), 0 (off) to 604800. Default 3600.
    pub verify_interval_s: u64,
}

/// The longest `verify_interval_s`: a week.
pub const MAX_VERIFY_INTERVAL_S: i64 = 604_800;

impl Default for IntegrityConfig {
    fn default() -> Self {
        IntegrityConfig {
            signing_key: None,
            checkpoint_interval_s: 60,
            verify_interval_s: 3600,
        }
    }
}

impl IntegrityConfig {
    /// Reads the `[integrity]` table, every problem into `errs`.
    pub fn parse(mut t: Fields<'_>, errs: &mut Vec<FieldError>) -> IntegrityConfig {
        let mut cfg = IntegrityConfig {
            signing_key: path_value(&mut t, "signing_key", "a key file path", errs),
            ..IntegrityConfig::default()
        };
        let range = MIN_CHECKPOINT_INTERVAL_S..=MAX_CHECKPOINT_INTERVAL_S;
        if let Some(v) = t.int("checkpoint_interval_s", range, errs) {
            cfg.checkpoint_interval_s = v as u64;
        }
        if let Some(v) = t.int("verify_interval_s", 0..=MAX_VERIFY_INTERVAL_S, errs) {
            cfg.verify_interval_s = v as u64;
        }
        t.finish(errs);
        cfg
    }
}

/// A non-empty path string at `key` (`what` says what it names), or a problem.
pub fn path_value(
    t: &mut Fields<'_>,
    key: &'static str,
    what: &str,
    errs: &mut Vec<FieldError>,
) -> Option<PathBuf> {
    let path = t.child_path(key);
    match t.raw(key)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(PathBuf::from(s)),
        v => {
            errs.push(FieldError::new(
                path,
                Problem::WrongType {
                    expected: format!("a non-empty string ({what})"),
                    got: v.to_string(),
                },
            ));
            None
        }
    }
}
