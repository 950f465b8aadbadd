//! The ingest endpoint's errors and how they are answered.
//!
//! OTLP/HTTP says a failed request gets a `google.rpc.Status` body in the request's own
//! encoding: JSON for JSON requests, protobuf for protobuf requests. Client errors say exactly
//! what was wrong (the exporter's operator reads them); storage errors get a generic message and
//! the details go to the collector's log, since they describe our disks, not the request.
//!
//! The log never carries record content: a decoder's message can quote the offending value
//! (`invalid type: string "…", expected i32`), so a malformed request is logged with quoted
//! spans elided, while the client, who sent the value, gets the message whole.
//!
//! Refusals the client should simply retry (a full ingest queue: 503; a full disk: 507) carry
//! `Retry-After` and are logged by the store once per episode, not here once per request.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use meshlog_store::{StoreError, WriteErrorKind};
use meshlog_tlog::seal::SealError;
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
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const OUT_OF_RANGE: i32 = 11;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
}

/// `Retry-After` (seconds) when the ingest queue is full: it drains at fsync speed.
pub const RETRY_AFTER_BUSY_SECS: u32 = 1;
/// `Retry-After` (seconds) when the disk is full: space comes back when an operator (or a
/// cleanup job) acts, not within a second, so retries are spaced out.
pub const RETRY_AFTER_NO_SPACE_SECS: u32 = 10;

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
    /// 500: the batch could not be stored. Logged, never sent.
    #[error("storage failure: {0}")]
    Storage(#[from] StorageFailure),
    /// 503 with `Retry-After`: not stored now (the ingest queue is full) or not confirmed in
    /// time; the message says which.
    #[error("{message}")]
    Unavailable {
        /// For the client.
        message: String,
        /// Seconds to wait before retrying.
        retry_after: u32,
    },
    /// 507 with `Retry-After`: the disk is full; the batch was not stored.
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
}

/// Why a batch could not be stored, by cause (so failures can be counted by kind).
#[derive(Debug, thiserror::Error)]
pub enum StorageFailure {
    /// The store refused or failed.
    #[error(transparent)]
    Store(StoreError),
    /// A decoding or storing task died.
    #[error("the {what} task failed: {source}")]
    Task {
        /// Which task.
        what: &'static str,
        /// Why.
        source: tokio::task::JoinError,
    },
    /// Compressing a frame failed.
    #[error("compressing a frame: {0}")]
    Compress(#[source] std::io::Error),
    /// Sealing a frame failed.
    #[error(transparent)]
    Seal(SealError),
    /// No retention class store is open (a bug: the router is built with at least one).
    #[error("no retention class {0} is open")]
    NoClass(usize),
}

impl StorageFailure {
    /// A short stable name of the cause, for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            StorageFailure::Store(_) => "store",
            StorageFailure::Task { .. } => "task",
            StorageFailure::Compress(_) => "compress",
            StorageFailure::Seal(_) => "seal",
            StorageFailure::NoClass(_) => "no_class",
        }
    }
}

/// What a client sees for a storage failure.
pub const STORAGE_FAILURE_MESSAGE: &str = "internal error: the batch was not stored; retry later";

/// What a client sees when the disk is full.
pub const NO_SPACE_MESSAGE: &str = "insufficient storage: the collector's disk is full and the \
                                    batch was not stored; retry later";

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy(full) => ApiError::Unavailable {
                message: format!(
                    "the collector is busy: {full}; retry after {RETRY_AFTER_BUSY_SECS} s"
                ),
                retry_after: RETRY_AFTER_BUSY_SECS,
            },
            StoreError::Write(w) if w.kind == WriteErrorKind::NoSpace => {
                ApiError::InsufficientStorage(w.to_string())
            }
            other => ApiError::Storage(StorageFailure::Store(other)),
        }
    }
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Malformed(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
        }
    }

    /// Seconds for `Retry-After`, for refusals a client should retry as they are.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::Unavailable { retry_after, .. } => Some(*retry_after),
            ApiError::InsufficientStorage(_) => Some(RETRY_AFTER_NO_SPACE_SECS),
            _ => None,
        }
    }

    /// The `google.rpc.Status` body.
    pub fn to_status(&self) -> Status {
        let (code, message) = match self {
            ApiError::Malformed(m) => (code::INVALID_ARGUMENT, m.clone()),
            ApiError::TooLarge(m) => (code::OUT_OF_RANGE, m.clone()),
            ApiError::Unsupported(m) => (code::UNIMPLEMENTED, m.clone()),
            ApiError::Storage(_) => (code::INTERNAL, STORAGE_FAILURE_MESSAGE.to_owned()),
            ApiError::Unavailable { message, .. } => (code::UNAVAILABLE, message.clone()),
            ApiError::InsufficientStorage(_) => {
                (code::RESOURCE_EXHAUSTED, NO_SPACE_MESSAGE.to_owned())
            }
        };
        Status { code, message }
    }

    /// The response in `format`, logging as it goes.
    pub fn into_response_as(self, format: WireFormat) -> Response {
        match &self {
            ApiError::Storage(internal) => {
                tracing::error!(error = %internal, cause = internal.kind(), "batch not stored");
            }
            // The store logs these once per episode; a line per request would flood the log.
            ApiError::Unavailable { .. } | ApiError::InsufficientStorage(_) => {
                tracing::debug!(status = %self.status().as_u16(), "refused: {self}");
            }
            ApiError::Malformed(m) => tracing::warn!(
                status = %self.status().as_u16(),
                "rejected: {}",
                elide_quoted(m)
            ),
            other => tracing::warn!(status = %other.status().as_u16(), "rejected: {other}"),
        }
        let retry_after = self.retry_after();
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
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// `msg` with the inside of every `"…"` and `` `…` `` span replaced by `…`: what a decoder
/// quotes is the sender's data (record content), not something to log.
pub fn elide_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut open: Option<char> = None;
    let mut escaped = false;
    for c in msg.chars() {
        match open {
            None => {
                out.push(c);
                if c == '"' || c == '`' {
                    open = Some(c);
                }
            }
            Some(q) if c == q && !escaped => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => escaped = c == '\\' && !escaped,
        }
    }
    if open.is_some() {
        out.push('…');
    }
    out
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
    async fn retryable_refusals_carry_retry_after_and_a_retryable_code() {
        let busy = ApiError::from(StoreError::Busy(meshlog_store::queue::QueueFull {
            queued: 70,
            max: 64,
        }));
        let r = busy.into_response_as(WireFormat::Json);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let v: serde_json::Value = serde_json::from_slice(&body(r).await).unwrap();
        assert_eq!(v["code"], 14);
        assert_eq!(
            v["message"],
            "the collector is busy: the ingest queue is full (70 of 64 bytes waiting to be \
             stored); retry after 1 s"
        );

        let full = ApiError::from(StoreError::Write(meshlog_store::WriteError {
            kind: WriteErrorKind::NoSpace,
            message: "writing a frame".into(),
            source: Some(std::sync::Arc::new(std::io::Error::from_raw_os_error(28))),
        }));
        let r = full.into_response_as(WireFormat::Protobuf);
        assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "10");
        let s = Status::decode(body(r).await.as_slice()).unwrap();
        assert_eq!(s.code, 8);
        assert_eq!(s.message, NO_SPACE_MESSAGE);

        let other = ApiError::from(StoreError::Write(meshlog_store::WriteError {
            kind: WriteErrorKind::Other,
            message: "fsync".into(),
            source: Some(std::sync::Arc::new(std::io::Error::from_raw_os_error(5))),
        }));
        let r = other.into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn quoted_values_are_elided_for_the_log() {
        assert_eq!(
            elide_quoted(
                r#"invalid type: string "4111 1111 \"1111\" 1111", expected i32 at line 1 column 80"#
            ),
            r#"invalid type: string "…", expected i32 at line 1 column 80"#
        );
        assert_eq!(
            elide_quoted("unknown variant `SECRET`, expected `a` or \"b"),
            "unknown variant `…`, expected `…` or \"…"
        );
        assert_eq!(
            elide_quoted("invalid digit found in string at line 1 column 78"),
            "invalid digit found in string at line 1 column 78"
        );
    }

    #[tokio::test]
    async fn storage_details_stay_internal() {
        let r = ApiError::Storage(StorageFailure::Store(StoreError::Io {
            context: "/data/segments".into(),
            source: std::io::Error::other("disk full"),
        }))
        .into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let text = String::from_utf8(body(r).await).unwrap();
        assert!(!text.contains("disk full"), "{text}");
        assert!(text.contains("not stored"), "{text}");
    }
}
