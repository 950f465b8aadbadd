//! OTLP/gRPC, `opentelemetry.proto.collector.logs.v1.LogsService/Export`: a thin transport over
//! the [`pipeline`](super::pipeline), like [`http`](super::http).
//!
//! The framework unframes the message (gzip or zstd message compression, at most
//! [`MAX_MESSAGE_BYTES`]) and hands over its protobuf bytes ([`ExportBytes`], no copy); the
//! pipeline decodes them on its blocking pool exactly as it decodes an OTLP/HTTP protobuf body,
//! so decoding never runs on (and never stalls) the connection's async task. OK is answered
//! only after the fsync. Refusals follow the OTLP specification: bad data INVALID_ARGUMENT (not
//! retried), a full queue or an unconfirmed fsync UNAVAILABLE with `google.rpc.RetryInfo`, a
//! full disk RESOURCE_EXHAUSTED with RetryInfo (retryable only with it). The
//! `meshlog-batch-id` metadata key deduplicates exactly as the HTTP header does, and a
//! duplicate is answered OK with `meshlog-duplicate: true` metadata.

use super::decode::BodyEncoding;
use super::error::{ApiError, WireFormat};
use super::pipeline::{Admission, Batch, Outcome, Pipeline};
use super::{BATCH_ID_HEADER, DUPLICATE_HEADER};
use crate::auth::{Peer, Principal};
use crate::metrics::{Metrics, Transport};
use crate::ratelog::RateLimited;
use meshlog_format::batch_id::BatchId;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use prost::Message;
use prost::bytes::Buf;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Bytes, Context, Poll, StdError, http};
use tonic::server::{NamedService, UnaryService};
use tonic::{Code, Request, Response, Status};

/// Largest gRPC message accepted (decompressed), bytes: the OTLP recommendation, 20 MiB.
pub const MAX_MESSAGE_BYTES: usize = 20 << 20;

/// The LogsService implementation.
#[derive(Debug, Clone)]
pub struct GrpcLogs {
    pipeline: Arc<Pipeline>,
    metrics: Arc<Metrics>,
}

static EMPTY_LOG: RateLimited = RateLimited::new(Duration::from_secs(10));

/// Logs (rate-limited) a valid request that held no records.
pub(crate) fn log_empty(transport: &str, peer: Option<&Peer>, principal: Option<&Principal>) {
    if let Some(suppressed) = EMPTY_LOG.allow() {
        tracing::info!(
            transport,
            peer = %peer.map_or_else(|| "?".to_owned(), |p| p.addr.to_string()),
            principal = principal.map_or("-", |p| p.id.as_str()),
            suppressed,
            "a valid OTLP request held no log records; answered success, nothing stored"
        );
    }
}

impl GrpcLogs {
    /// The service over `pipeline`.
    pub fn new(pipeline: Arc<Pipeline>, metrics: Arc<Metrics>) -> Self {
        GrpcLogs { pipeline, metrics }
    }

    /// The routes serving it: gzip and zstd accepted, 20 MiB messages.
    pub fn router(self) -> axum::Router {
        tonic::service::Routes::new(ExportServer(Arc::new(self)))
            .prepare()
            .into_axum_router()
    }

    /// Stores one `Export` request, given as its protobuf bytes.
    async fn export(
        &self,
        req: Request<Bytes>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let received = self.pipeline.now_unix_nano();
        let principal = req.extensions().get::<Principal>().cloned();
        let peer = req.extensions().get::<Peer>().cloned();
        let refuse = |e: ApiError| {
            self.metrics
                .refused_batch(Transport::Grpc, crate::metrics::reason(&e));
            to_status(&e)
        };
        let batch_id = match req
            .metadata()
            .get_all(BATCH_ID_HEADER)
            .iter()
            .collect::<Vec<_>>()[..]
        {
            [] => None,
            [v] => Some(BatchId::parse(v.as_bytes()).map_err(|e| {
                refuse(ApiError::Malformed(format!(
                    "invalid {BATCH_ID_HEADER} metadata: {e}"
                )))
            })?),
            _ => {
                return Err(refuse(ApiError::Malformed(format!(
                    "repeated {BATCH_ID_HEADER} metadata; send exactly one"
                ))));
            }
        };
        let body = req.into_inner();
        self.metrics
            .received_bytes(Transport::Grpc, body.len() as u64);
        if self.pipeline.admit(batch_id.as_ref()).map_err(&refuse)? == Admission::Duplicate {
            self.metrics.duplicate(Transport::Grpc, 0);
            return Ok(ok(true));
        }
        let outcome = self
            .pipeline
            .ingest(Batch {
                body,
                format: WireFormat::Protobuf,
                // The framework already undid the message compression.
                encoding: BodyEncoding::Identity,
                batch_id,
                received_unix_nano: received,
                tenant: principal.as_ref().and_then(|p| p.tenant.clone()),
            })
            .await
            .map_err(|e| {
                log_refusal(&e);
                refuse(e)
            })?;
        Ok(match outcome {
            Outcome::Stored { records } => {
                self.metrics.stored(Transport::Grpc, records);
                ok(false)
            }
            Outcome::Duplicate => {
                self.metrics.duplicate(Transport::Grpc, 0);
                ok(true)
            }
            Outcome::Empty => {
                self.metrics.empty(Transport::Grpc);
                log_empty("grpc", peer.as_ref(), principal.as_ref());
                ok(false)
            }
        })
    }
}

/// The fully qualified `Export` method path.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// The `LogsService` server: like the generated one, but its codec keeps the request as bytes.
#[derive(Debug, Clone)]
struct ExportServer(Arc<GrpcLogs>);

impl NamedService for ExportServer {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
}

impl<B> tonic::codegen::Service<http::Request<B>> for ExportServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let logs = self.0.clone();
        if req.uri().path() != EXPORT_PATH {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ExportCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(MAX_MESSAGE_BYTES);
            Ok(grpc.unary(ExportCall(logs), req).await)
        })
    }
}

/// One `Export` call.
struct ExportCall(Arc<GrpcLogs>);

impl UnaryService<Bytes> for ExportCall {
    type Response = ExportLogsServiceResponse;
    type Future = BoxFuture<Response<ExportLogsServiceResponse>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let logs = self.0.clone();
        Box::pin(async move { logs.export(request).await })
    }
}

/// Requests as their protobuf bytes (decoded later, off the async runtime), responses as
/// protobuf.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportCodec;

/// [`ExportCodec`]'s decoder: takes the message's bytes without copying them.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesDecoder;

/// [`ExportCodec`]'s encoder.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseEncoder;

impl Codec for ExportCodec {
    type Encode = ExportLogsServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> ResponseEncoder {
        ResponseEncoder
    }
    fn decoder(&mut self) -> BytesDecoder {
        BytesDecoder
    }
}

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl Encoder for ResponseEncoder {
    type Item = ExportLogsServiceResponse;
    type Error = Status;

    fn encode(
        &mut self,
        item: ExportLogsServiceResponse,
        dst: &mut EncodeBuf<'_>,
    ) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

fn ok(duplicate: bool) -> Response<ExportLogsServiceResponse> {
    let mut r = Response::new(ExportLogsServiceResponse::default());
    if duplicate {
        r.metadata_mut().insert(
            DUPLICATE_HEADER,
            tonic::metadata::MetadataValue::from_static("true"),
        );
    }
    r
}

fn log_refusal(e: &ApiError) {
    match e {
        ApiError::Storage(internal) => {
            tracing::error!(error = %internal, cause = internal.kind(), "batch not stored");
        }
        ApiError::Malformed(m) => {
            tracing::warn!("rejected (grpc): {}", super::error::elide_quoted(m));
        }
        _ => tracing::debug!("refused (grpc): {e}"),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

/// A status carrying `google.rpc.RetryInfo{retry_delay: secs}`.
fn with_retry(code: Code, message: String, secs: u32) -> Status {
    let info = RetryInfo {
        retry_delay: Some(ProtoDuration {
            seconds: i64::from(secs),
            nanos: 0,
        }),
    };
    let details = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: info.encode_to_vec(),
        }],
    };
    Status::with_details(code, message, details.encode_to_vec().into())
}

/// The gRPC answer for an ingest error.
pub fn to_status(e: &ApiError) -> Status {
    let msg = e.to_status().message;
    match e {
        ApiError::Malformed(_) | ApiError::TooLarge(_) => Status::invalid_argument(msg),
        ApiError::Unsupported(_) => Status::unimplemented(msg),
        ApiError::Storage(_) => Status::internal(msg),
        ApiError::Unavailable { retry_after, .. } => {
            with_retry(Code::Unavailable, msg, *retry_after)
        }
        ApiError::InsufficientStorage(_) => with_retry(
            Code::ResourceExhausted,
            msg,
            e.retry_after()
                .unwrap_or(super::error::RETRY_AFTER_NO_SPACE_SECS),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backpressure_is_unavailable_with_retry_info() {
        let s = to_status(&ApiError::Unavailable {
            message: "busy".into(),
            retry_after: 1,
        });
        assert_eq!(s.code(), Code::Unavailable);
        let details = RpcStatus::decode(s.details()).unwrap();
        assert_eq!(
            details.details[0].type_url,
            "type.googleapis.com/google.rpc.RetryInfo"
        );
        let info = RetryInfo::decode(details.details[0].value.as_slice()).unwrap();
        assert_eq!(info.retry_delay.unwrap().seconds, 1);
        assert_eq!(
            to_status(&ApiError::Malformed("x".into())).code(),
            Code::InvalidArgument
        );
        let full = to_status(&ApiError::InsufficientStorage("full".into()));
        assert_eq!(full.code(), Code::ResourceExhausted);
        assert!(!full.details().is_empty());
    }
}
