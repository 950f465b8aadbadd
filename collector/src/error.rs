//! The ingest endpoint's errors and how they are answered.
//!
//! OTLP/HTTP says a failed request gets a `google.rpc.Status` body in the request's own
//! encoding: JSON for JSON requests, protobuf for protobuf requests. Client errors say exactly
//! what was wrong (the exporter's operator reads them); storage errors get a generic message and
//! the details go to the collector's log, since they describe our disks, not the request.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;

/// The payload encoding of a request (and so of its response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// `application/json` (OTLP/JSON).
    Json,
    /// `application/x-protobuf`.
    Protobuf,
}

impl WireFormat {
    /// The response `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            WireFormat::Json => "application/json",
            WireFormat::Protobuf => "application/x-protobuf",
        }
    }
}

/// `google.rpc.Status`, the OTLP/HTTP error body (without `details`, which we never send).
#[derive(Clone, PartialEq, Eq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// A message for the client's operator.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// `google.rpc.Code` values used here.
mod code {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const OUT_OF_RANGE: i32 = 11;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
}

/// Why `POST /v1/logs` was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body did not decode; the message says what failed.
    #[error("{0}")]
    Malformed(String),
    /// 413: a size limit was exceeded; the message says which and its value.
    #[error("{0}")]
    TooLarge(String),
    /// 415: content type or encoding not supported; the message says what is accepted.
    #[error("{0}")]
    Unsupported(String),
    /// 500: the batch could not be stored. The text is logged, never sent.
    #[error("storage failure: {0}")]
    Storage(String),
}

/// What a client sees for a storage failure.
pub const STORAGE_FAILURE_MESSAGE: &str = "internal error: the batch was not stored; retry later";

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Malformed(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `google.rpc.Status` body.
    pub fn to_status(&self) -> Status {
        let (code, message) = match self {
            ApiError::Malformed(m) => (code::INVALID_ARGUMENT, m.clone()),
            ApiError::TooLarge(m) => (code::OUT_OF_RANGE, m.clone()),
            ApiError::Unsupported(m) => (code::UNIMPLEMENTED, m.clone()),
            ApiError::Storage(_) => (code::INTERNAL, STORAGE_FAILURE_MESSAGE.to_owned()),
        };
        Status { code, message }
    }

    /// The response in `format`, logging as it goes.
    pub fn into_response_as(self, format: WireFormat) -> Response {
        match &self {
            ApiError::Storage(internal) => {
                tracing::error!(error = %internal, "batch not stored");
            }
            other => tracing::warn!(status = %other.status().as_u16(), "rejected: {other}"),
        }
        let status = self.to_status();
        let body = match format {
            WireFormat::Json => serde_json::to_vec(&status).unwrap_or_else(|_| b"{}".to_vec()),
            WireFormat::Protobuf => status.encode_to_vec(),
        };
        let mut resp = (self.status(), body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        resp
    }
}

/// Without a known request format the answer is JSON (e.g. an unsupported `Content-Type`).
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_as(WireFormat::Json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> Vec<u8> {
        axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec()
    }

    #[tokio::test]
    async fn json_and_protobuf_bodies_carry_code_and_message() {
        let r = ApiError::Malformed("bad thing".into()).into_response_as(WireFormat::Json);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let v: serde_json::Value = serde_json::from_slice(&body(r).await).unwrap();
        assert_eq!(v, serde_json::json!({"code": 3, "message": "bad thing"}));

        let r = ApiError::TooLarge("too big".into()).into_response_as(WireFormat::Protobuf);
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/x-protobuf");
        let s = Status::decode(body(r).await.as_slice()).unwrap();
        assert_eq!(
            s,
            Status {
                code: 11,
                message: "too big".into()
            }
        );
    }

    #[tokio::test]
    async fn storage_details_stay_internal() {
        let r = ApiError::Storage("/data/segments: disk full".into()).into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let text = String::from_utf8(body(r).await).unwrap();
        assert!(!text.contains("disk full"), "{text}");
        assert!(text.contains("not stored"), "{text}");
    }
}
