//! The read endpoints over the collector's own data directory: [`api`] serves `GET
//! /api/v1/query` and `GET /api/v1/aggregate` (meshlog-query's filters as URL parameters),
//! under the `read` role, tenant-scoped, each read and each refusal audited; [`tail`] serves
//! `GET /api/v1/tail`, the live tail as server-sent events; [`alerts`] serves `/api/v1/alerts`;
//! [`summary`] (`GET /api/v1/summary`) and [`integrity`] (`GET /api/v1/integrity`) are what the
//! dashboard's overview and integrity views show beyond the aggregate API; [`indexer`] builds the
//! query index of each segment as it closes.

pub mod alerts;
pub mod api;
pub mod fleet;
pub mod indexer;
pub mod integrity;
pub mod summary;
pub mod tail;

use meshlog_format::encryption::DataKeys;
use std::path::PathBuf;

/// What the read endpoints read: the data directory and the key that opens sealed frames.
#[derive(Debug, Clone)]
pub struct ReadSource {
    /// The collector's data directory (with `classes/` when retention is on).
    pub data_dir: PathBuf,
    /// The data-encryption keys, when the store is encrypted.
    pub keys: Option<DataKeys>,
}
