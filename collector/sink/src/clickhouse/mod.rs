//! The ClickHouse sink (Vector's layout: [`config`], [`encoder`], [`service`]), its table
//! ([`schema`]), its persisted [`cursor`], its [`metrics`] and the reconciliation ([`check`]).
//!
//! **Exactly once.** Each retention class's log (or the one store) is read with the store's
//! subscription from the cursor, the leaf after the last one ClickHouse acknowledged, kept in
//! `<data_dir>/sink/` and fsync'd only after the acknowledgement. A batch is whole frames, so
//! the cursor is always a frame boundary. A batch that failed, or the first after a start (the
//! collector may have died mid-insert), is retried as *only the rows ClickHouse lacks*: the sink
//! asks which `(LeafIndex, RecordIndex)` of the batch's leaf range the table already holds. On
//! current ClickHouse the insert also carries an `insert_deduplication_token` (the table keeps a
//! deduplication window), and on every version the table is a `ReplacingMergeTree` whose sort
//! key ends with `(CollectorId, Log, LeafIndex, RecordIndex)`: a copy that slips through every
//! other guard (an insert still running on the server when the collector restarted) is one row
//! after the next merge and under `FINAL`.
//!
//! **Outages.** A failed insert is retried with backoff forever; the cursor stays put, the lag
//! metric grows, and ingest, query and tail keep working from the local store.

pub mod check;
pub mod config;
pub mod cursor;
pub mod encoder;
pub mod indexed;
pub mod metrics;
pub mod query;
pub mod schema;
pub mod service;

use clickhouse::Client;
use config::ClickHouseConfig;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Directory of the sink's state, in the data directory.
pub const SINK_DIR: &str = "sink";
/// The file holding this collector's id when `collector_id` is not configured.
pub const COLLECTOR_ID_FILE: &str = "collector-id";

/// What went wrong talking to ClickHouse or keeping the sink's state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// ClickHouse refused or could not be reached.
    #[error("ClickHouse: {0}")]
    ClickHouse(#[source] clickhouse::error::Error),
    /// The table is missing.
    #[error(
        "ClickHouse has no table {database}.{table}: create it with `meshlog sink init --config FILE`"
    )]
    NoTable {
        /// The database.
        database: String,
        /// The table.
        table: String,
    },
    /// The table is not one the sink can write.
    #[error("{0}")]
    Schema(String),
    /// The TLS settings could not be used.
    #[error("[sink.clickhouse] ca_file {}: {reason}", path.display())]
    Tls {
        /// The CA file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The sink's state on disk.
    #[error("{}: {source}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Reading the store.
    #[error("reading the store: {0}")]
    Tail(#[from] meshlog_store::tail::TailError),
}

/// A client for `cfg`: HTTP(S), `RowBinary` without schema validation (18.16 has no
/// `RowBinaryWithNamesAndTypes`), LZ4-compressed inserts.
pub fn connect(cfg: &ClickHouseConfig) -> Result<Client, Error> {
    let mut client = if cfg.url.starts_with("https://") {
        Client::with_http_client(https_client(cfg.ca_file.as_deref())?)
    } else {
        Client::default()
    };
    client = client
        .with_url(&cfg.url)
        .with_database(&cfg.database)
        .with_validation(false);
    if let Some(u) = &cfg.user {
        client = client.with_user(u);
    }
    if let Some(p) = &cfg.password {
        client = client.with_password(p);
    }
    Ok(client)
}

/// An HTTPS client trusting the PEM CA certificates in `ca_file` (or, without one, the WebPKI
/// roots); the body type is the clickhouse client's own (inferred where it is used).
fn https_client<B>(
    ca_file: Option<&Path>,
) -> Result<
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        B,
    >,
    Error,
>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
{
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match ca_file {
        None => builder.with_webpki_roots(),
        Some(path) => {
            let tls_err = |reason: String| Error::Tls {
                path: path.to_owned(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| tls_err(e.to_string()))?;
            let mut roots = rustls::RootCertStore::empty();
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| tls_err(format!("not PEM certificates: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| tls_err(format!("a certificate is not usable: {e}")))?;
            }
            if roots.is_empty() {
                return Err(tls_err("no certificate in the file".into()));
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            builder.with_tls_config(config)
        }
    };
    let connector = builder.https_or_http().enable_http1().wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    )
}

/// This collector's id: `collector_id` when configured, else the one kept in
/// `<data_dir>/sink/collector-id`, written on first use from the host name (so the id, and the
/// rows already exported under it, survive restarts).
pub fn collector_id(cfg: &ClickHouseConfig, data_dir: &Path) -> Result<String, Error> {
    if let Some(id) = &cfg.collector_id {
        return Ok(id.clone());
    }
    let path = data_dir.join(SINK_DIR).join(COLLECTOR_ID_FILE);
    let state = |source| Error::State {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if config::check_collector_id(s.trim()).is_none() => return Ok(s.trim().to_owned()),
        Ok(_) => {
            return Err(state(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a collector id (1 to 128 visible ASCII characters); fix it or set                  [sink.clickhouse] collector_id",
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(state(e)),
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| config::check_collector_id(h).is_none())
        .unwrap_or_else(|| "meshlog".to_owned());
    std::fs::create_dir_all(data_dir.join(SINK_DIR)).map_err(state)?;
    meshlog_format::fsutil::write_durably(&path, format!("{host}\n").as_bytes()).map_err(state)?;
    Ok(host)
}
