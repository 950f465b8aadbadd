//! Retention classes as independent stores: `DATA_DIR/classes/<name>/` is a complete
//! [`Store`] (its own lock, segments, writer thread, dedup index, Merkle log and
//! checkpoints), so a class's segments hold only its records and can be deleted whole, and
//! nothing in the store needs to know about retention.
//!
//! [`ClassStores::open`] takes `DATA_DIR/LOCK` (so a `serve` without retention cannot write
//! into the same directory meanwhile) and opens one store per class; [`ClassRoutes`] is what
//! ingest needs: classify a record, reach its class's store.

use crate::policy::{DEFAULT_CLASS, RetentionConfig};
use meshlog_format::reader::{SEGMENTS_DIR, list_segments};
use meshlog_store::{Store, StoreError, StoreHandle, StoreOptions, lock_data_dir};
use serde_json::{Map, Value};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use meshlog_format::layout::{CLASSES_DIR, class_dir, class_dirs, store_dirs};

/// Why the class stores could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ClassesError {
    /// A class store (or the data directory lock) failed.
    #[error("retention class {class:?}: {source}")]
    Store {
        /// The class (`*` for the data directory itself).
        class: String,
        /// The error (boxed: store errors are large).
        source: Box<StoreError>,
    },
    /// Segments written without retention: they would never expire.
    #[error(
        "{} holds {count} segment(s) written without [retention]; they would never expire. \
         Stop meshlog and move that store into the default class first, with its signed \
         checkpoints so that verify keeps checking them across the move: mkdir -p {} && mv {} {}/",
        dir.display(),
        default_dir.display(),
        movable.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" "),
        default_dir.display()
    )]
    Unclassified {
        /// `DATA_DIR/segments`.
        dir: PathBuf,
        /// Segment files in it.
        count: usize,
        /// `DATA_DIR/classes/default`.
        default_dir: PathBuf,
        /// What makes up the store in `DATA_DIR` (segments, checkpoints, tree state,
        /// quarantine), as far as it exists.
        movable: Vec<PathBuf>,
    },
    /// Listing a directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// What ingest needs: the policy to classify records and a handle per class, in the policy's
/// class order (the configured classes, then `default`). Without `[retention]` there is one
/// class, `default`, whose store is the data directory itself: one ingest path either way.
#[derive(Debug)]
pub struct ClassRoutes {
    policy: Option<RetentionConfig>,
    names: Vec<String>,
    handles: Vec<StoreHandle>,
}

impl ClassRoutes {
    /// Routes over already open handles (one per class of `policy`, in its order).
    pub fn new(policy: RetentionConfig, handles: Vec<StoreHandle>) -> Self {
        let names = policy
            .class_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        ClassRoutes {
            policy: Some(policy),
            names,
            handles,
        }
    }

    /// One class, `default`, over one store: the collector without `[retention]`.
    pub fn single(handle: StoreHandle) -> Self {
        ClassRoutes {
            policy: None,
            names: vec![DEFAULT_CLASS.to_owned()],
            handles: vec![handle],
        }
    }

    /// The retention policy, when there is one.
    pub fn policy(&self) -> Option<&RetentionConfig> {
        self.policy.as_ref()
    }

    /// The index of `record`'s class.
    pub fn classify(&self, record: &Map<String, Value>) -> usize {
        self.policy.as_ref().map_or(0, |p| p.classify(record))
    }

    /// Class names, by index.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Store handles, by index.
    pub fn handles(&self) -> &[StoreHandle] {
        &self.handles
    }

    /// The default class's index (the last one).
    pub fn default_index(&self) -> usize {
        self.handles.len().saturating_sub(1)
    }

    /// The default class's handle (the last one).
    pub fn default_handle(&self) -> Option<&StoreHandle> {
        self.handles.last()
    }
}

/// `opts` for the store of class `class`: its checkpoints are signed under the class log's own
/// origin, `<key name>/<class>` (the same key), so a witness keeps each class log apart.
pub fn class_options(opts: &StoreOptions, class: &str) -> StoreOptions {
    let mut o = opts.clone();
    // Class names are checked at config load (a-z 0-9 -), always valid in a key name.
    if let Some(k) = opts
        .integrity
        .signer
        .as_ref()
        .and_then(|k| k.for_class(class).ok())
    {
        o.integrity.signer = Some(Arc::new(k));
    }
    o
}

/// The open class stores.
#[derive(Debug)]
pub struct ClassStores {
    stores: Vec<Store>,
    routes: Arc<ClassRoutes>,
    // The data directory's lock when it is not itself a store (which holds its own).
    _lock: Option<File>,
}

impl ClassStores {
    /// Locks `data_dir`, refuses segments written there without retention, and opens one store
    /// per class of `policy` with `opts`. Class directories on disk that the policy no longer
    /// names are logged (their data is kept, read by `query`, and never expires).
    pub fn open(
        data_dir: &Path,
        policy: &RetentionConfig,
        opts: &StoreOptions,
    ) -> Result<ClassStores, ClassesError> {
        let top = |source| ClassesError::Store {
            class: "*".into(),
            source: Box::new(source),
        };
        std::fs::create_dir_all(data_dir).map_err(|source| {
            top(StoreError::Io {
                context: format!("creating data directory {}", data_dir.display()),
                source,
            })
        })?;
        let lock = lock_data_dir(data_dir).map_err(top)?;
        let plain = data_dir.join(SEGMENTS_DIR);
        match list_segments(&plain) {
            Ok(s) if !s.is_empty() => {
                let movable = [
                    meshlog_format::layout::SEGMENTS_DIR,
                    meshlog_format::layout::CHECKPOINT_LOG_FILE,
                    meshlog_format::layout::TREE_STATE_FILE,
                    meshlog_format::layout::QUARANTINE_DIR,
                ]
                .iter()
                .map(|name| data_dir.join(name))
                .filter(|p| p.exists())
                .collect();
                return Err(ClassesError::Unclassified {
                    dir: plain,
                    count: s.len(),
                    default_dir: class_dir(data_dir, DEFAULT_CLASS),
                    movable,
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ClassesError::Io {
                    path: plain,
                    source,
                });
            }
        }
        let names = policy.class_names();
        let on_disk = class_dirs(data_dir).map_err(|source| ClassesError::Io {
            path: data_dir.join(CLASSES_DIR),
            source,
        })?;
        for (name, dir) in &on_disk {
            if !names.contains(&name.as_str()) {
                tracing::warn!(
                    class = %name,
                    dir = %dir.display(),
                    "a class directory that [retention] no longer names: its data is kept, \
                     read by query, and never expires"
                );
            }
        }
        let mut stores = Vec::with_capacity(names.len());
        for name in &names {
            match Store::open(&class_dir(data_dir, name), class_options(opts, name)) {
                Ok(s) => stores.push(s),
                Err(source) => {
                    // Release what is open before reporting.
                    for s in stores {
                        let _ = s.close();
                    }
                    return Err(ClassesError::Store {
                        class: (*name).to_owned(),
                        source: Box::new(source),
                    });
                }
            }
        }
        let handles = stores.iter().map(Store::handle).collect();
        Ok(ClassStores {
            routes: Arc::new(ClassRoutes::new(policy.clone(), handles)),
            stores,
            _lock: Some(lock),
        })
    }

    /// The store without `[retention]`: the data directory itself, as the one `default` class.
    /// Class directories left from an earlier configuration are logged: they are kept and read
    /// by `query`, but nothing new goes there and nothing in them expires.
    pub fn single(data_dir: &Path, opts: StoreOptions) -> Result<ClassStores, StoreError> {
        if data_dir.join(CLASSES_DIR).is_dir() {
            tracing::warn!(
                data_dir = %data_dir.display(),
                "the data directory holds retention class stores, but the configuration has no \
                 [retention]: new records go to {}/segments and nothing expires (query reads both)",
                data_dir.display()
            );
        }
        let store = Store::open(data_dir, opts)?;
        Ok(ClassStores {
            routes: Arc::new(ClassRoutes::single(store.handle())),
            stores: vec![store],
            _lock: None,
        })
    }

    /// What ingest needs.
    pub fn routes(&self) -> Arc<ClassRoutes> {
        self.routes.clone()
    }

    /// The open stores, by class index.
    pub fn stores(&self) -> &[Store] {
        &self.stores
    }

    /// Closes every store (each finishes its queue), then releases the data directory lock;
    /// the first error is returned. Blocks.
    pub fn close(self) -> Result<(), StoreError> {
        let mut first = Ok(());
        for s in self.stores {
            let r = s.close();
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_store_signs_under_its_own_origin() {
        let key = meshlog_tlog::keys::SignerKey::from_seed("example.com/log", &[4; 32]).unwrap();
        let mut opts = StoreOptions::default();
        opts.integrity.signer = Some(Arc::new(key));
        let short = class_options(&opts, "short");
        let signer = short.integrity.signer.unwrap();
        assert_eq!(signer.name(), "example.com/log/short");
        assert_eq!(signer.parent_verifier().unwrap().name(), "example.com/log");
        assert!(
            class_options(&StoreOptions::default(), "short")
                .integrity
                .signer
                .is_none()
        );
    }
}
