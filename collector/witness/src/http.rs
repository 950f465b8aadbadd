//! The witness over HTTP: C2SP `tlog-witness` `POST /add-checkpoint` (200 with the
//! cosignature line; 400 malformed, 403 bad log signature, 404 unknown log, 409 with
//! `Content-Type: text/x.tlog.size` and the witness's size when the checkpoint is smaller,
//! forked, not provably consistent or `old` is not the witness's size) and `GET
//! /checkpoint/<origin>`: the latest checkpoint the witness cosigned for a log, with its
//! cosignature (404 when it has none), so anyone can compare a log with it.

use crate::{AddError, AddRequest, Witness};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;

/// Largest request body accepted (a checkpoint and a proof are well under 16 KiB).
const MAX_BODY: usize = 64 * 1024;

/// The witness's routes.
pub fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/checkpoint/{*origin}", get(latest))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(witness)
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    let done = tokio::task::spawn_blocking(move || {
        AddRequest::parse(&body).and_then(|req| w.add_checkpoint(&req))
    })
    .await;
    match done {
        Ok(Ok(line)) => text(StatusCode::OK, line),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "add-checkpoint refused");
            match e {
                AddError::Conflict { size, .. } => (
                    StatusCode::CONFLICT,
                    [(header::CONTENT_TYPE, "text/x.tlog.size")],
                    format!("{size}\n"),
                )
                    .into_response(),
                AddError::Malformed(_) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
                AddError::UnknownLog(_) => text(StatusCode::NOT_FOUND, format!("{e}\n")),
                AddError::BadSignature(_) => text(StatusCode::FORBIDDEN, format!("{e}\n")),
                AddError::State { .. } => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "witness state error\n".into(),
                ),
            }
        }
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "witness task failed\n".into(),
        ),
    }
}

async fn latest(State(w): State<Arc<Witness>>, Path(origin): Path<String>) -> Response {
    let found = tokio::task::spawn_blocking(move || w.latest(&origin)).await;
    match found {
        Ok(Ok(Some(l))) => text(StatusCode::OK, l.note),
        Ok(Ok(None)) => text(StatusCode::NOT_FOUND, "no checkpoint of this log\n".into()),
        _ => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "witness state error\n".into(),
        ),
    }
}
