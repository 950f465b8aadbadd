//! `POST /v1/logs`: decode an OTLP/HTTP logs request, store it as one frame, answer.
//!
//! Order of checks: content type and encoding first (415), then the `meshlog-batch-id` header
//! (400), all without reading the body; then a batch whose id is already stored is answered
//! 200 with `meshlog-duplicate: true` at once (a retry: its body is not even decoded), and a
//! full ingest queue is answered 503 with `Retry-After` (before the body is buffered); then the
//! body size (413), then decoding (400), all before anything touches the store, so a bad request
//! stores nothing. Decoding, canonicalisation, compression and (with encryption at rest on)
//! sealing are CPU work and run on the blocking pool, under a reservation of the body's size in
//! the ingest queue; the handler then waits for the writer's ack, so a 200 always means
//! "fsync'd". If that takes longer than the ack timeout the answer is 503: not acknowledged,
//! though the frame may still be stored, so a retry with the same batch id is then answered as
//! a duplicate rather than stored twice.
//!
//! With retention classes ([`ClassedState`], see [`crate::retention`]) the same checks run, then
//! the request's records are split by class (by their resource attributes) into one frame per
//! class, each with the request's batch id, appended to the class's store in parallel; the
//! answer is 200 only once every one of them is durable (`meshlog-duplicate: true` when every
//! one was already stored), else the first class's error. A retry splits identically, so the
//! classes that already stored their part answer it as a duplicate. The duplicate shortcut
//! before decoding applies only when every class has the batch id. The queue budget
//! (`max_queue_bytes`) is per class: the body is reserved in the default class's queue while it
//! is decoded, each class's frame in its own.

use crate::canonical;
use crate::error::{ApiError, RETRY_AFTER_BUSY_SECS, WireFormat};
use crate::integrity::keys::Keyring;
use crate::retention::classes::ClassRoutes;
use crate::store::dedup::BatchId;
use crate::store::format::{BuildError, EncodedFrame, FrameBuilder};
use crate::store::{Appended, StoreHandle};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use prost::Message;
use std::borrow::Cow;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// The request header carrying a batch's id: `<vm_id>:<first_seq>-<last_seq>` from the filter,
/// but any 1 to 128 visible ASCII characters are accepted.
pub const BATCH_ID_HEADER: &str = "meshlog-batch-id";
/// The response header set (to `true`) when a batch's id was already stored.
pub const DUPLICATE_HEADER: &str = "meshlog-duplicate";
/// Default [`AppState::ack_timeout`].
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(15);

/// Canonical NDJSON of one request may be at most this many times `max_decoded_bytes`
/// (resource attributes are repeated on every record, so the flat form can be larger).
pub const CANONICAL_EXPANSION_LIMIT: u64 = 4;

/// Size limits for requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body as received, bytes.
    pub max_body_bytes: usize,
    /// Largest body after gzip or zstd decoding, bytes.
    pub max_decoded_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 << 20,
            max_decoded_bytes: 64 << 20,
        }
    }
}

/// What the HTTP handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Where frames go.
    pub store: StoreHandle,
    /// Request limits.
    pub limits: Limits,
    /// How long a request waits for its fsync before it is answered 503 (unacknowledged).
    pub ack_timeout: Duration,
}

/// What the HTTP handlers share when records are split into retention classes.
#[derive(Debug, Clone)]
pub struct ClassedState {
    /// The class stores and how records are sorted into them.
    pub routes: Arc<ClassRoutes>,
    /// Request limits.
    pub limits: Limits,
    /// How long a request waits for every class's fsync before it is answered 503.
    pub ack_timeout: Duration,
}

/// `Content-Encoding` values we decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    /// No encoding.
    Identity,
    /// gzip.
    Gzip,
    /// zstd (what the meshlog filter may send).
    Zstd,
}

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

/// Reads a decoder to the end, refusing to produce more than `limit` bytes.
fn inflate(dec: impl Read, what: &str, body_len: usize, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(body_len.saturating_mul(4).min(limit));
    // One byte more than allowed tells "exactly at the limit" from "over it".
    let cap = (limit as u64).saturating_add(1);
    dec.take(cap)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::Malformed(format!("invalid {what} body: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::TooLarge(format!(
            "{what}-decoded body exceeds max_decoded_bytes ({limit} bytes)"
        )));
    }
    Ok(out)
}

/// Gunzips `body`, refusing to produce more than `limit` bytes.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    inflate(
        flate2::read::MultiGzDecoder::new(body),
        "gzip",
        body.len(),
        limit,
    )
}

/// Decompresses a zstd `body` (one or more frames), refusing to produce more than `limit`
/// bytes. The decoder's window is capped near the limit too: a frame header cannot make it
/// allocate more than a body may decode to, with an 8 MiB floor (the window zstd picks for a
/// stream of unknown size at any level up to 19).
pub fn unzstd(body: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let bad = |e: std::io::Error| ApiError::Malformed(format!("invalid zstd body: {e}"));
    let mut dec = zstd::stream::read::Decoder::new(body).map_err(bad)?;
    let window_log = usize::BITS - limit.saturating_sub(1).leading_zeros();
    dec.window_log_max(window_log.clamp(23, 31)).map_err(bad)?;
    inflate(dec, "zstd", body.len(), limit)
}

/// Decodes a body into an OTLP request.
pub fn decode(
    body: &[u8],
    format: WireFormat,
    encoding: BodyEncoding,
    limits: Limits,
) -> Result<ExportLogsServiceRequest, ApiError> {
    let bytes: Cow<'_, [u8]> = match encoding {
        BodyEncoding::Identity => Cow::Borrowed(body),
        BodyEncoding::Gzip => Cow::Owned(gunzip(body, limits.max_decoded_bytes)?),
        BodyEncoding::Zstd => Cow::Owned(unzstd(body, limits.max_decoded_bytes)?),
    };
    match format {
        WireFormat::Json => serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::Malformed(format!("invalid OTLP/JSON ExportLogsServiceRequest: {e}"))
        }),
        WireFormat::Protobuf => ExportLogsServiceRequest::decode(bytes.as_ref()).map_err(|e| {
            ApiError::Malformed(format!(
                "invalid OTLP protobuf ExportLogsServiceRequest: {e}"
            ))
        }),
    }
}

/// Decodes and encodes one request into a frame (with `batch_id` in its header, sealed with
/// `keyring`'s current key when given); `None` when it holds no log records.
pub fn prepare(
    body: &[u8],
    format: WireFormat,
    encoding: BodyEncoding,
    limits: Limits,
    received_unix_nano: u64,
    batch_id: Option<BatchId>,
    keyring: Option<Arc<Keyring>>,
) -> Result<Option<EncodedFrame>, ApiError> {
    let req = decode(body, format, encoding, limits)?;
    if canonical::record_count(&req) == 0 {
        return Ok(None);
    }
    let max_raw = max_raw_bytes(limits);
    let mut builder =
        FrameBuilder::with_encryption(max_raw, batch_id, keyring).map_err(too_large)?;
    canonical::for_each_record(&req, received_unix_nano, |r| builder.push(&r))
        .map_err(too_large)?;
    builder.finish().map(Some).map_err(too_large)
}

/// The most canonical NDJSON one request may produce.
fn max_raw_bytes(limits: Limits) -> u64 {
    (limits.max_decoded_bytes as u64).saturating_mul(CANONICAL_EXPANSION_LIMIT)
}

fn too_large(e: BuildError) -> ApiError {
    match e {
        BuildError::TooLarge { limit } => ApiError::TooLarge(format!(
            "the canonical records of this request exceed {limit} bytes \
             ({CANONICAL_EXPANSION_LIMIT} × max_decoded_bytes); send smaller batches"
        )),
        BuildError::Overflow(what) => {
            ApiError::TooLarge(format!("the request does not fit in one frame: {what}"))
        }
        BuildError::Io(e) => ApiError::Storage(format!("compressing a frame: {e}")),
        BuildError::Seal(e) => ApiError::Storage(e.to_string()),
    }
}

/// Counts bytes written to it (the NDJSON size of a record, without keeping it).
struct Counter(u64);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Like [`prepare`], split by retention class: one frame per class that has records, as
/// `(class index, frame)` in class order, each with `batch_id` and sealed when the class
/// stores seal (they share one keyring). The canonical size limit applies to the request as a
/// whole, as without classes.
pub fn prepare_classes(
    body: &[u8],
    format: WireFormat,
    encoding: BodyEncoding,
    limits: Limits,
    received_unix_nano: u64,
    batch_id: Option<BatchId>,
    routes: &ClassRoutes,
) -> Result<Vec<(usize, EncodedFrame)>, ApiError> {
    let keyring = routes.default_handle().and_then(|h| h.keyring().cloned());
    let req = decode(body, format, encoding, limits)?;
    let max_raw = max_raw_bytes(limits);
    let mut builders: Vec<Option<FrameBuilder>> = Vec::new();
    builders.resize_with(routes.names().len(), || None);
    let mut raw = Counter(0);
    canonical::for_each_record(&req, received_unix_nano, |r| {
        serde_json::to_writer(&mut raw, &r).map_err(|e| BuildError::Io(e.into()))?;
        raw.0 += 1; // the newline
        if raw.0 > max_raw {
            return Err(BuildError::TooLarge { limit: max_raw });
        }
        let slot = builders
            .get_mut(routes.classify(&r))
            .ok_or(BuildError::Overflow("no such retention class"))?;
        let builder = match slot {
            Some(b) => b,
            None => slot.insert(FrameBuilder::with_encryption(
                max_raw,
                batch_id.clone(),
                keyring.clone(),
            )?),
        };
        builder.push(&r)
    })
    .map_err(too_large)?;
    let mut frames = Vec::new();
    for (i, b) in builders.into_iter().enumerate() {
        if let Some(b) = b {
            frames.push((i, b.finish().map_err(too_large)?));
        }
    }
    Ok(frames)
}

fn now_unix_nano() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
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
    let received = now_unix_nano();
    let format = match wire_format(req.headers()) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    match handle(state, req, format, received).await {
        Ok(resp) => resp,
        Err(e) => e.into_response_as(format),
    }
}

/// Reads the whole body (the router's body limit applies).
async fn read_body(req: Request, limits: Limits) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, &()).await.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::TooLarge(format!(
                "request body exceeds max_body_bytes ({} bytes)",
                limits.max_body_bytes
            ))
        }
        other => ApiError::Malformed(format!("cannot read the request body: {other}")),
    })
}

/// The 503 for a batch not confirmed within the ack timeout.
fn not_confirmed(ack_timeout: Duration, batch_id: Option<&BatchId>) -> ApiError {
    ApiError::Unavailable {
        message: format!(
            "the batch was not confirmed on disk within {} ms and is not acknowledged; it may \
             still be stored: retry it{}",
            ack_timeout.as_millis(),
            if batch_id.is_some() {
                " with the same meshlog-batch-id"
            } else {
                ""
            }
        ),
        retry_after: RETRY_AFTER_BUSY_SECS,
    }
}

async fn handle(
    state: AppState,
    req: Request,
    format: WireFormat,
    received: u64,
) -> Result<Response, ApiError> {
    let encoding = body_encoding(req.headers())?;
    let batch_id = batch_id(req.headers())?;
    if let Some(id) = &batch_id
        && state.store.is_stored(id)
    {
        tracing::debug!(batch_id = %id, "batch already stored; answering as a duplicate");
        return Ok(success(format, true));
    }
    // Before buffering the body: a full queue refuses at once.
    state.store.check_room()?;
    let limits = state.limits;
    let body = read_body(req, limits).await?;
    let reservation = state.store.reserve(body.len() as u64)?;
    let id = batch_id.clone();
    let keyring = state.store.keyring().cloned();
    let frame = tokio::task::spawn_blocking(move || {
        prepare(&body, format, encoding, limits, received, id, keyring)
    })
    .await
    .map_err(|e| ApiError::Storage(format!("decoding task failed: {e}")))??;
    let Some(frame) = frame else {
        return Ok(success(format, false));
    };
    let records = frame.records();
    let appended = tokio::time::timeout(
        state.ack_timeout,
        state.store.append_reserved(frame, reservation),
    )
    .await
    .map_err(|_| not_confirmed(state.ack_timeout, batch_id.as_ref()))??;
    match appended {
        Appended::Stored(loc) => {
            tracing::debug!(
                records,
                segment = loc.segment,
                offset = loc.offset,
                batch_id = batch_id.as_ref().map(BatchId::as_str),
                "batch stored"
            );
            Ok(success(format, false))
        }
        Appended::Duplicate => {
            tracing::debug!(
                batch_id = batch_id.as_ref().map(BatchId::as_str),
                "batch id stored meanwhile; answering as a duplicate"
            );
            Ok(success(format, true))
        }
    }
}

/// The `POST /v1/logs` handler with retention classes.
pub async fn export_logs_classed(State(state): State<ClassedState>, req: Request) -> Response {
    let received = now_unix_nano();
    let format = match wire_format(req.headers()) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    match handle_classed(state, req, format, received).await {
        Ok(resp) => resp,
        Err(e) => e.into_response_as(format),
    }
}

async fn handle_classed(
    state: ClassedState,
    req: Request,
    format: WireFormat,
    received: u64,
) -> Result<Response, ApiError> {
    let encoding = body_encoding(req.headers())?;
    let batch_id = batch_id(req.headers())?;
    let handles = state.routes.handles();
    let Some(default) = state.routes.default_handle() else {
        return Err(ApiError::Storage("no retention class is open".into()));
    };
    if let Some(id) = &batch_id
        && handles.iter().all(|h| h.is_stored(id))
    {
        tracing::debug!(batch_id = %id, "batch already stored; answering as a duplicate");
        return Ok(success(format, true));
    }
    for h in handles {
        h.check_room()?;
    }
    let limits = state.limits;
    let body = read_body(req, limits).await?;
    let reservation = default.reserve(body.len() as u64)?;
    let id = batch_id.clone();
    let routes = state.routes.clone();
    let frames = tokio::task::spawn_blocking(move || {
        prepare_classes(&body, format, encoding, limits, received, id, &routes)
    })
    .await
    .map_err(|e| ApiError::Storage(format!("decoding task failed: {e}")))??;
    drop(reservation);
    if frames.is_empty() {
        return Ok(success(format, false));
    }
    // Every class's frame goes to its writer at once: one fsync wait, not one per class.
    let mut pending = Vec::with_capacity(frames.len());
    for (class, frame) in frames {
        let Some(h) = handles.get(class).cloned() else {
            return Err(ApiError::Storage(format!("no retention class {class}")));
        };
        let records = frame.records();
        pending.push((
            class,
            records,
            tokio::spawn(async move { h.append(frame).await }),
        ));
    }
    let results = tokio::time::timeout(state.ack_timeout, async {
        let mut out = Vec::with_capacity(pending.len());
        for (class, records, task) in pending {
            let r = task
                .await
                .map_err(|e| ApiError::Storage(format!("storing task failed: {e}")))?;
            out.push((class, records, r));
        }
        Ok::<_, ApiError>(out)
    })
    .await
    .map_err(|_| not_confirmed(state.ack_timeout, batch_id.as_ref()))??;
    let mut all_duplicate = true;
    for (class, records, r) in results {
        let class = state.routes.names().get(class).map_or("?", String::as_str);
        match r? {
            Appended::Stored(loc) => {
                all_duplicate = false;
                tracing::debug!(
                    class,
                    records,
                    segment = loc.segment,
                    offset = loc.offset,
                    batch_id = batch_id.as_ref().map(BatchId::as_str),
                    "batch part stored"
                );
            }
            Appended::Duplicate => tracing::debug!(
                class,
                batch_id = batch_id.as_ref().map(BatchId::as_str),
                "batch part already stored"
            ),
        }
    }
    Ok(success(format, all_duplicate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
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
    fn gunzip_stops_at_the_limit() {
        let data = vec![b'a'; 10_000];
        assert_eq!(gunzip(&gz(&data), 10_000).unwrap(), data);
        let e = gunzip(&gz(&data), 9_999).unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            e.to_string().contains("max_decoded_bytes (9999 bytes)"),
            "{e}"
        );
        let e = gunzip(b"not gzip at all", 100).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().starts_with("invalid gzip body"), "{e}");
    }

    #[test]
    fn unzstd_stops_at_the_limit_and_reads_concatenated_frames() {
        let data = vec![b'z'; 10_000];
        let z = zstd::encode_all(data.as_slice(), 3).unwrap();
        assert_eq!(unzstd(&z, 10_000).unwrap(), data);
        let mut two = z.clone();
        two.extend_from_slice(&zstd::encode_all(&b"tail"[..], 3).unwrap());
        assert_eq!(unzstd(&two, 20_000).unwrap().len(), 10_004);
        let e = unzstd(&z, 9_999).unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            e.to_string(),
            "zstd-decoded body exceeds max_decoded_bytes (9999 bytes)"
        );
        let e = unzstd(b"not zstd at all", 100).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().starts_with("invalid zstd body"), "{e}");
    }

    #[test]
    fn a_zstd_frame_asking_for_a_huge_window_is_refused_not_allocated() {
        // Streamed (no content size), with a 128 MiB window: more than a 1 MiB limit allows.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.window_log(27).unwrap();
        enc.include_contentsize(false).unwrap();
        enc.write_all(&[b'w'; 1000]).unwrap();
        let z = enc.finish().unwrap();
        assert_eq!(unzstd(&z, 200 << 20).unwrap().len(), 1000);
        let e = unzstd(&z, 1 << 20).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("invalid zstd body"), "{e}");
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

    #[test]
    fn empty_protobuf_is_an_empty_request_and_prepares_no_frame() {
        let f = prepare(
            b"",
            WireFormat::Protobuf,
            BodyEncoding::Identity,
            Limits::default(),
            1,
            None,
            None,
        );
        assert_eq!(f.unwrap(), None);
        let f = prepare(
            br#"{"resourceLogs":[]}"#,
            WireFormat::Json,
            BodyEncoding::Identity,
            Limits::default(),
            1,
            None,
            None,
        );
        assert_eq!(f.unwrap(), None);
    }

    #[test]
    fn resource_amplification_is_capped() {
        // 3000 records each repeating a 2 KB resource attribute: ~6 MB canonical from ~11 KB.
        let big = "r".repeat(2000);
        let recs = vec!["{}"; 3000].join(",");
        let body = format!(
            r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"k","value":{{"stringValue":"{big}"}}}}]}},"scopeLogs":[{{"logRecords":[{recs}]}}]}}]}}"#
        );
        let limits = Limits {
            max_body_bytes: 1 << 20,
            max_decoded_bytes: 1 << 20,
        };
        let e = prepare(
            body.as_bytes(),
            WireFormat::Json,
            BodyEncoding::Identity,
            limits,
            1,
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(e.to_string().contains("exceed 4194304 bytes"), "{e}");
    }
}
