//! meshlog-collector: receives OTLP/HTTP log batches from the meshlog Envoy filter, stores them
//! durably as canonical flat records, and reads them back.
//!
//! [`app`] is the HTTP surface (`POST /v1/logs`, `GET /healthz`); [`ingest`] decodes requests,
//! [`canonical`] flattens OTLP records, [`store`] appends them as CRC-checked zstd frames with
//! group-committed fsyncs (each batch id stored once, memory bounded by a byte-budgeted queue, a
//! full disk refused without damage, payloads sealed when encryption at rest is configured),
//! and [`cli`] wires it into the `meshlog` binary. [`integrity`] makes the store tamper-evident
//! (every frame a chained leaf of a Merkle tree, signed checkpoints, `meshlog verify`, inclusion
//! and consistency proofs) and holds the building blocks of encryption at rest (key files,
//! per-batch AEAD). [`retention`] splits records into retention classes (one store each),
//! deletes expired segments with a signed receipt, and honours legal holds.

pub mod canonical;
pub mod cli;
pub mod config;
pub mod error;
pub mod ingest;
pub mod integrity;
pub mod retention;
pub mod store;

pub use config::Config;
pub use error::{ApiError, WireFormat};
pub use ingest::{AppState, ClassedState, Limits};
pub use store::{Store, StoreError, StoreHandle, StoreOptions};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

/// The collector's HTTP routes: `POST /v1/logs` (OTLP/HTTP logs) and `GET /healthz` (200 "ok").
pub fn app(state: AppState) -> Router {
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route("/v1/logs", post(ingest::export_logs))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Like [`app`], with each request's records split into retention classes, one store each.
pub fn classed_app(state: ClassedState) -> Router {
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route("/v1/logs", post(ingest::export_logs_classed))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
