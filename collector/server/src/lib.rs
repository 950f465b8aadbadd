//! meshlog-server: the collector's network surface. [`app`] is the HTTP router (`POST
//! /v1/logs`, `GET /metrics`, `GET /healthz`), [`grpc_app`] the OTLP/gRPC one; [`net`] serves
//! either on a listener, plain or TLS; [`auth`] decides who may call which route; [`ingest`] is
//! the pipeline every transport shares (decode, flatten, route to a retention class, append,
//! wait for the fsync) and its transports; [`metrics`] the Prometheus metrics; [`audit_log`]
//! the access records of reads.

pub mod audit_log;
pub mod auth;
pub mod ingest;
pub mod metrics;
pub mod net;
pub mod query;
pub mod ratelog;
pub mod ui;
pub mod verifier;

pub use ingest::Limits;
pub use ingest::error::{ApiError, WireFormat};
pub use ingest::pipeline::Pipeline;

use auth::{AuthPolicy, Gate, Role};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;

/// What the routes share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The ingest pipeline.
    pub pipeline: Arc<Pipeline>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Who may call what.
    pub auth: Arc<AuthPolicy>,
    /// Access records of reads.
    pub audit: Arc<audit_log::AuditLog>,
    /// Whether [`app`] serves `/metrics` (false when it has a listener of its own).
    pub serve_metrics: bool,
    /// Time for a request body once its headers are in.
    pub body_read_timeout: Duration,
    /// What `GET /api/v1/query` and `/api/v1/aggregate` read (none: they answer 503).
    pub read: Option<Arc<query::ReadSource>>,
    /// The ClickHouse table searches read with `source=clickhouse` (none: no `[sink.clickhouse]`).
    pub fleet: Option<Arc<query::fleet::Fleet>>,
    /// The open live tails (`GET /api/v1/tail`).
    pub tails: Arc<query::tail::Tails>,
    /// The last periodic verify ([`verifier`]).
    pub verify: Arc<verifier::LastVerify>,
}

impl AppState {
    /// State over `pipeline`, no `[auth]` on a loopback-only listener, fresh metrics.
    pub fn new(pipeline: Pipeline) -> Self {
        Self::with(
            pipeline,
            Arc::new(Metrics::new()),
            AuthPolicy::Open {
                loopback_only: true,
            },
        )
    }

    /// State over `pipeline` with `metrics` and `auth`.
    pub fn with(pipeline: Pipeline, metrics: Arc<Metrics>, auth: AuthPolicy) -> Self {
        let pipeline = Arc::new(pipeline.with_metrics(metrics.clone()));
        AppState {
            audit: Arc::new(audit_log::AuditLog::new(pipeline.clone(), metrics.clone())),
            pipeline,
            metrics,
            auth: Arc::new(auth),
            serve_metrics: true,
            body_read_timeout: net::ConnLimits::default().body_read_timeout,
            read: None,
            fleet: None,
            tails: Arc::new(query::tail::Tails::default()),
            verify: Arc::default(),
        }
    }

    fn gate(&self, role: Role) -> Gate {
        Gate {
            policy: self.auth.clone(),
            role,
            metrics: self.metrics.clone(),
            audit: Some(self.audit.clone()),
        }
    }
}

/// The collector's HTTP routes: `POST /v1/logs` (OTLP/HTTP logs; the ingest role), `GET
/// /api/v1/query` and `/api/v1/aggregate` (the read role; see [`query::api`]), `GET
/// /metrics` (the metrics or admin role; unless served on a listener of its own) and `GET
/// /healthz` (200 "ok", open).
pub fn app(state: AppState) -> Router {
    let limit = state.pipeline.limits().max_body_bytes;
    let mut r = Router::new()
        .route("/v1/logs", post(ingest::http::export_logs))
        .route_layer(from_fn_with_state(state.gate(Role::Ingest), auth::require))
        .with_state(state.clone());
    r = r.merge(read_app(state.clone()));
    r = r.merge(query::alerts::routes(state.clone()));
    if state.serve_metrics {
        r = r.merge(metrics_app(state));
    }
    r.route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(limit))
}

/// The read endpoints (the read role): `GET /api/v1/query`, `/api/v1/aggregate`,
/// `/api/v1/summary`, `/api/v1/integrity`, `/api/v1/tail`, and the dashboard at `/ui`
/// ([`ui`]).
pub fn read_app(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/query", get(query::api::query))
        .route("/api/v1/aggregate", get(query::api::aggregate))
        .route("/api/v1/summary", get(query::api::summary))
        .route("/api/v1/integrity", get(query::api::integrity))
        .route(query::tail::TAIL_PATH, get(query::tail::tail))
        .route_layer(from_fn_with_state(state.gate(Role::Read), auth::require))
        .with_state(state.clone())
        .merge(ui::routes(state))
}

/// `GET /metrics` alone (for `metrics_listen`).
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route_layer(from_fn_with_state(state.gate(Role::Metrics), auth::require))
        .with_state(state)
}

/// The OTLP/gRPC routes (the ingest role).
pub fn grpc_app(state: AppState) -> Router {
    ingest::grpc::GrpcLogs::new(state.pipeline.clone(), state.metrics.clone())
        .router()
        .layer(from_fn_with_state(state.gate(Role::Ingest), auth::require))
}

async fn serve_metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let routes = state.pipeline.routes();
    let queued: u64 = routes.handles().iter().map(|h| h.queued_bytes()).sum();
    state.metrics.set_queue_bytes(queued);
    for (class, h) in routes.names().iter().zip(routes.handles()) {
        let ledger = h.ledger_stats();
        state
            .metrics
            .set_ledger(class, ledger.tree_size(), ledger.last_checkpoint_unix_ns());
    }
    // OpenMetrics for who asks for it (Prometheus does), else the 0.0.4 text format.
    let openmetrics = headers.get_all(header::ACCEPT).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.contains("application/openmetrics-text"))
    });
    let (body, ctype) = if openmetrics {
        (state.metrics.encode(), metrics::CONTENT_TYPE)
    } else {
        (state.metrics.encode_text(), metrics::CONTENT_TYPE_TEXT)
    };
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp
}
