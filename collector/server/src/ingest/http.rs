//! OTLP/HTTP, `POST /v1/logs`: a thin transport over the [`pipeline`](super::pipeline).
//!
//! Order of checks: content type and encoding first (415), then the `meshlog-batch-id` header
//! (400), all without reading the body; then the pipeline's admission (a batch whose id is
//! already stored is answered 200 with `meshlog-duplicate: true` at once, a full ingest queue
//! 503 with `Retry-After`, both before the body is buffered); then the body size (413), then
//! the pipeline (decoding: 400; storing). A 200 always means "fsync'd". Errors are answered in
//! the request's own encoding (see [`super::error`]).

use super::decode::BodyEncoding;
use super::error::{ApiError, WireFormat};
use super::pipeline::{Admission, Batch, Outcome, Pipeline};
use super::{BATCH_ID_HEADER, DUPLICATE_HEADER, Limits};
use crate::AppState;
use crate::auth::{Peer, Principal};
use crate::metrics::Transport;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use meshlog_format::batch_id::BatchId;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use prost::Message;

const ACCEPTED_TYPES: &str = "application/json, application/x-protobuf";
const ACCEPTED_ENCODINGS: &str = "gzip, zstd, identity";

/// The request's payload format from `Content-Type` (parameters such as `charset` ignored).
pub fn wire_format(headers: &HeaderMap) -> Result<WireFormat, ApiError> {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return Err(ApiError::Unsupported(format!(
            "missing or repeated Content-Type; accepted: {ACCEPTED_TYPES}"
        )));
    };
    let text = String::from_utf8_lossy(v.as_bytes());
    let essence = text.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(WireFormat::Json)
    } else if essence.eq_ignore_ascii_case("application/x-protobuf") {
        Ok(WireFormat::Protobuf)
    } else {
        Err(ApiError::Unsupported(format!(
            "unsupported Content-Type {text:?}; accepted: {ACCEPTED_TYPES}"
        )))
    }
}

/// The body's encoding from `Content-Encoding`; absent means identity.
pub fn body_encoding(headers: &HeaderMap) -> Result<BodyEncoding, ApiError> {
    let mut values = headers.get_all(header::CONTENT_ENCODING).iter();
    let v = match (values.next(), values.next()) {
        (None, _) => return Ok(BodyEncoding::Identity),
        (Some(v), None) => v,
        (Some(_), Some(_)) => {
            return Err(ApiError::Unsupported(format!(
                "repeated Content-Encoding; accepted: one of {ACCEPTED_ENCODINGS}"
            )));
        }
    };
    let text = String::from_utf8_lossy(v.as_bytes());
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(BodyEncoding::Identity),
        "gzip" | "x-gzip" => Ok(BodyEncoding::Gzip),
        "zstd" => Ok(BodyEncoding::Zstd),
        _ => Err(ApiError::Unsupported(format!(
            "unsupported Content-Encoding {text:?}; accepted: {ACCEPTED_ENCODINGS}"
        ))),
    }
}

/// The `meshlog-batch-id` header, if present and valid.
pub fn batch_id(headers: &HeaderMap) -> Result<Option<BatchId>, ApiError> {
    let mut values = headers.get_all(BATCH_ID_HEADER).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => BatchId::parse(v.as_bytes())
            .map(Some)
            .map_err(|e| ApiError::Malformed(format!("invalid {BATCH_ID_HEADER} header: {e}"))),
        (Some(_), Some(_)) => Err(ApiError::Malformed(format!(
            "repeated {BATCH_ID_HEADER} header; send exactly one"
        ))),
    }
}

/// Reads the whole body (the router's body limit applies) within `timeout`.
async fn read_body(
    req: Request,
    limits: Limits,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let read = tokio::time::timeout(timeout, Bytes::from_request(req, &()))
        .await
        .map_err(|_| {
            ApiError::Malformed(format!(
                "the request body was not received within {} ms",
                timeout.as_millis()
            ))
        })?;
    read.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::TooLarge(format!(
                "request body exceeds max_body_bytes ({} bytes)",
                limits.max_body_bytes
            ))
        }
        other => ApiError::Malformed(format!("cannot read the request body: {other}")),
    })
}

fn success(format: WireFormat, duplicate: bool) -> Response {
    let body = match format {
        WireFormat::Json => b"{}".to_vec(),
        WireFormat::Protobuf => ExportLogsServiceResponse::default().encode_to_vec(),
    };
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if duplicate {
        resp.headers_mut()
            .insert(DUPLICATE_HEADER, HeaderValue::from_static("true"));
    }
    resp
}

/// The `POST /v1/logs` handler.
pub async fn export_logs(State(state): State<AppState>, req: Request) -> Response {
    let received = state.pipeline.now_unix_nano();
    let metrics = state.metrics.clone();
    let format = match wire_format(req.headers()) {
        Ok(f) => f,
        Err(e) => {
            metrics.refused_batch(Transport::Http, crate::metrics::reason(&e));
            return e.into_response();
        }
    };
    match handle(&state, req, format, received).await {
        Ok(resp) => resp,
        Err(e) => {
            metrics.refused_batch(Transport::Http, crate::metrics::reason(&e));
            e.into_response_as(format)
        }
    }
}

async fn handle(
    state: &AppState,
    req: Request,
    format: WireFormat,
    received_unix_nano: u64,
) -> Result<Response, ApiError> {
    let pipeline: &Pipeline = &state.pipeline;
    let principal = req.extensions().get::<Principal>().cloned();
    let peer = req.extensions().get::<Peer>().cloned();
    let encoding = body_encoding(req.headers())?;
    let batch_id = batch_id(req.headers())?;
    if pipeline.admit(batch_id.as_ref())? == Admission::Duplicate {
        state.metrics.duplicate(Transport::Http, 0);
        return Ok(success(format, true));
    }
    let body = read_body(req, pipeline.limits(), state.body_read_timeout).await?;
    state
        .metrics
        .received_bytes(Transport::Http, body.len() as u64);
    let outcome = pipeline
        .ingest(Batch {
            body,
            format,
            encoding,
            batch_id,
            received_unix_nano,
            tenant: principal.as_ref().and_then(|p| p.tenant.clone()),
        })
        .await?;
    match outcome {
        Outcome::Stored { records } => state.metrics.stored(Transport::Http, records),
        Outcome::Duplicate => state.metrics.duplicate(Transport::Http, 0),
        Outcome::Empty => {
            state.metrics.empty(Transport::Http);
            super::grpc::log_empty("http", peer.as_ref(), principal.as_ref());
        }
    }
    Ok(success(format, outcome == Outcome::Duplicate))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn content_type_accepts_parameters_and_case() {
        for (v, f) in [
            ("application/json", WireFormat::Json),
            ("application/json; charset=utf-8", WireFormat::Json),
            ("Application/JSON;charset=UTF-8", WireFormat::Json),
            ("application/x-protobuf", WireFormat::Protobuf),
        ] {
            assert_eq!(
                wire_format(&headers(&[("content-type", v)])).unwrap(),
                f,
                "{v}"
            );
        }
        let e = wire_format(&headers(&[("content-type", "text/plain")])).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            e.to_string()
                .contains("accepted: application/json, application/x-protobuf")
        );
        assert!(
            wire_format(&HeaderMap::new())
                .unwrap_err()
                .to_string()
                .contains("missing")
        );
    }

    #[test]
    fn content_encoding_accepts_gzip_zstd_and_identity_only() {
        assert_eq!(
            body_encoding(&HeaderMap::new()).unwrap(),
            BodyEncoding::Identity
        );
        assert_eq!(
            body_encoding(&headers(&[("content-encoding", "identity")])).unwrap(),
            BodyEncoding::Identity
        );
        assert_eq!(
            body_encoding(&headers(&[("content-encoding", "GZIP")])).unwrap(),
            BodyEncoding::Gzip
        );
        assert_eq!(
            body_encoding(&headers(&[("content-encoding", "zstd")])).unwrap(),
            BodyEncoding::Zstd
        );
        let e = body_encoding(&headers(&[("content-encoding", "br")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported Content-Encoding \"br\"; accepted: gzip, zstd, identity"
        );
        let e = body_encoding(&headers(&[
            ("content-encoding", "gzip"),
            ("content-encoding", "br"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("repeated"), "{e}");
    }

    #[test]
    fn the_batch_id_header_is_optional_single_and_visible_ascii() {
        assert_eq!(batch_id(&HeaderMap::new()).unwrap(), None);
        let ok = batch_id(&headers(&[(BATCH_ID_HEADER, "00ff00ff00ff00ff:1-500")])).unwrap();
        assert_eq!(ok.unwrap().as_str(), "00ff00ff00ff00ff:1-500");
        for (value, message) in [
            (
                "a b",
                "invalid meshlog-batch-id header: has byte 0x20 at position 1; only visible \
                 ASCII (0x21 to 0x7e) is allowed",
            ),
            (
                "",
                "invalid meshlog-batch-id header: is empty; expected 1 to 128 visible ASCII \
                 characters",
            ),
        ] {
            let mut h = HeaderMap::new();
            h.insert(BATCH_ID_HEADER, HeaderValue::from_str(value).unwrap());
            let e = batch_id(&h).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            assert_eq!(e.to_string(), message);
        }
        let mut h = HeaderMap::new();
        h.insert(
            BATCH_ID_HEADER,
            HeaderValue::from_str(&"x".repeat(129)).unwrap(),
        );
        assert_eq!(
            batch_id(&h).unwrap_err().to_string(),
            "invalid meshlog-batch-id header: is 129 bytes long; at most 128 are allowed"
        );
        let e = batch_id(&headers(&[(BATCH_ID_HEADER, "a"), (BATCH_ID_HEADER, "b")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "repeated meshlog-batch-id header; send exactly one"
        );
    }
}
