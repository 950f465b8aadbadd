//! meshlog-server: the collector's network surface. [`app`] is the HTTP router (`POST
//! /v1/logs`, `GET /healthz`); [`ingest`] is the pipeline every transport shares (decode,
//! flatten, route to a retention class, append, wait for the fsync) and its OTLP/HTTP
//! transport.

pub mod ingest;

pub use ingest::Limits;
pub use ingest::error::{ApiError, WireFormat};
pub use ingest::pipeline::Pipeline;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::sync::Arc;

/// What the routes share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The ingest pipeline.
    pub pipeline: Arc<Pipeline>,
}

impl AppState {
    /// State over `pipeline`.
    pub fn new(pipeline: Pipeline) -> Self {
        AppState {
            pipeline: Arc::new(pipeline),
        }
    }
}

/// The collector's HTTP routes: `POST /v1/logs` (OTLP/HTTP logs) and `GET /healthz` (200 "ok").
pub fn app(state: AppState) -> Router {
    let limit = state.pipeline.limits().max_body_bytes;
    Router::new()
        .route("/v1/logs", post(ingest::http::export_logs))
        .with_state(state.pipeline)
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(limit))
}
