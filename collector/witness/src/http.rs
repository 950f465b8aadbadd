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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use meshlog_tlog::checkpoint::Checkpoint;
    use meshlog_tlog::keys::SignerKey;
    use meshlog_tlog::merkle::empty_root;
    use tower::ServiceExt;

    async fn call(
        app: &Router,
        method: &str,
        uri: &str,
        body: Vec<u8>,
    ) -> (StatusCode, String, String) {
        let resp = app
            .clone()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, ctype, String::from_utf8_lossy(&body).into_owned())
    }

    fn request(key: &SignerKey, old: u64, size: u64) -> Vec<u8> {
        let note = Checkpoint {
            origin: key.name().into(),
            size,
            root: if size == 0 {
                empty_root()
            } else {
                [size as u8; 32]
            },
            timestamp_unix_ns: 1,
        }
        .sign(key)
        .unwrap();
        format!("old {old}\n\n{note}").into_bytes()
    }

    #[tokio::test]
    async fn each_refusal_has_its_c2sp_status() {
        let d = tempfile::tempdir().unwrap();
        let log = SignerKey::from_seed("example/log", &[1; 32]).unwrap();
        let w = SignerKey::from_seed("example/witness", &[2; 32]).unwrap();
        let app = router(Arc::new(
            Witness::open(w, vec![log.verifier()], d.path()).unwrap(),
        ));
        // The first checkpoint of a log is cosigned from size 0 without a proof.
        let (status, _, body) = call(&app, "POST", "/add-checkpoint", request(&log, 0, 3)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.starts_with("\u{2014} example/witness "), "{body}");
        let (status, _, body) = call(&app, "GET", "/checkpoint/example/log", vec![]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.starts_with("example/log\n3\n"), "{body}");
        // Smaller: 409 with the size.
        let (status, ctype, body) =
            call(&app, "POST", "/add-checkpoint", request(&log, 3, 2)).await;
        assert_eq!(
            (status, ctype.as_str(), body.as_str()),
            (StatusCode::CONFLICT, "text/x.tlog.size", "3\n")
        );
        // Another key with the log's name: 403. An unknown log: 404. Garbage: 400.
        let forger = SignerKey::from_seed("example/log", &[9; 32]).unwrap();
        let (status, _, _) = call(&app, "POST", "/add-checkpoint", request(&forger, 3, 4)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let stranger = SignerKey::from_seed("example/other", &[3; 32]).unwrap();
        let (status, _, _) = call(&app, "POST", "/add-checkpoint", request(&stranger, 0, 1)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = call(&app, "POST", "/add-checkpoint", b"hello".to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, _) = call(&app, "GET", "/checkpoint/example/other", vec![]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Nothing refused changed the state.
        let (_, _, body) = call(&app, "GET", "/checkpoint/example/log", vec![]).await;
        assert!(body.starts_with("example/log\n3\n"), "{body}");
    }
}
