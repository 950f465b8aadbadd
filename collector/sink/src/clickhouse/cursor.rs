//! The sink's cursor: per log, the leaf after the last one ClickHouse acknowledged, for one
//! target (url, database, table) and collector id. Kept in `<data_dir>/sink/` as a small JSON
//! file, replaced durably (temporary file, fsync, rename, directory fsync) after each
//! acknowledged insert, so a crash leaves the old cursor or the new one. A cursor for another
//! target or collector id does not apply: the sink then starts that target from the first leaf
//! (and its first batch asks ClickHouse what it already holds).

use super::Error;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// The saved state of one log's export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// `url/database.table` the rows went to.
    pub target: String,
    /// The collector id they were written under.
    pub collector_id: String,
    /// The log (retention class; `""` for a store without classes).
    pub log: String,
    /// The first leaf not yet acknowledged by ClickHouse.
    pub next_leaf: u64,
}

/// The cursor file of `log` in `sink_dir`.
pub fn path(sink_dir: &Path, log: &str) -> PathBuf {
    let name = if log.is_empty() {
        "clickhouse.cursor".to_owned()
    } else {
        format!("clickhouse.{log}.cursor")
    };
    sink_dir.join(name)
}

/// The target string saved in cursors.
pub fn target(url: &str, database: &str, table: &str) -> String {
    format!("{url}/{database}.{table}")
}

impl Cursor {
    /// The saved cursor of `log` for this target and collector, or a fresh one at leaf 0 when
    /// there is none or it is for another target or collector.
    pub fn load(
        sink_dir: &Path,
        log: &str,
        target: &str,
        collector_id: &str,
    ) -> Result<Cursor, Error> {
        let fresh = Cursor {
            target: target.to_owned(),
            collector_id: collector_id.to_owned(),
            log: log.to_owned(),
            next_leaf: 0,
        };
        match Cursor::read(sink_dir, log)? {
            Some(c) if c.target == target && c.collector_id == collector_id => Ok(c),
            Some(c) => {
                tracing::warn!(
                    log,
                    old_target = %c.target,
                    old_collector_id = %c.collector_id,
                    "the sink's cursor is for another target or collector id: exporting from \
                     the first leaf"
                );
                Ok(fresh)
            }
            None => Ok(fresh),
        }
    }

    /// The saved cursor of `log`, if any.
    pub fn read(sink_dir: &Path, log: &str) -> Result<Option<Cursor>, Error> {
        let p = path(sink_dir, log);
        match std::fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::State {
                    path: p,
                    source: io::Error::new(io::ErrorKind::InvalidData, e),
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::State { path: p, source }),
        }
    }

    /// Saves the cursor durably.
    pub fn save(&self, sink_dir: &Path) -> Result<(), Error> {
        let p = path(sink_dir, &self.log);
        let state = |source| Error::State {
            path: p.clone(),
            source,
        };
        std::fs::create_dir_all(sink_dir).map_err(state)?;
        let bytes = serde_json::to_vec(self).map_err(|e| state(io::Error::other(e)))?;
        meshlog_format::fsutil::write_durably(&p, &bytes).map_err(state)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn saved_cursors_apply_only_to_their_target_and_collector() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("sink");
        let c = Cursor::load(&dir, "short", "t1", "c1").unwrap();
        assert_eq!(c.next_leaf, 0);
        Cursor { next_leaf: 42, ..c }.save(&dir).unwrap();
        assert_eq!(
            Cursor::load(&dir, "short", "t1", "c1").unwrap().next_leaf,
            42
        );
        assert_eq!(
            Cursor::load(&dir, "short", "t2", "c1").unwrap().next_leaf,
            0
        );
        assert_eq!(
            Cursor::load(&dir, "short", "t1", "c2").unwrap().next_leaf,
            0
        );
        assert_eq!(Cursor::load(&dir, "", "t1", "c1").unwrap().next_leaf, 0);
        std::fs::write(path(&dir, ""), b"{").unwrap();
        let e = Cursor::load(&dir, "", "t1", "c1").unwrap_err().to_string();
        assert!(e.contains("clickhouse.cursor"), "{e}");
    }
}
