//! Ingest: OTLP log batches in, durable canonical records out.
//!
//! - [`pipeline`]: what every transport shares (admission, decoding, flattening, routing to
//!   retention classes, appending, waiting for the fsync);
//! - [`http`]: OTLP/HTTP `POST /v1/logs`;
//! - [`grpc`]: OTLP/gRPC `LogsService/Export`;
//! - [`decode`]: body decoding under size caps;
//! - [`flatten`]: OTLP records to meshlog's canonical flat records;
//! - [`view`]: a borrowed view of an OTLP/protobuf request (no copy per attribute);
//! - [`json_view`]: the same view read from OTLP/JSON;
//! - [`error`]: why a batch was refused, and how each transport answers it.

pub mod decode;
pub mod error;
pub mod flatten;
pub mod grpc;
pub mod http;
pub mod json_view;
pub mod pipeline;
pub mod view;

use std::time::Duration;

/// The request header carrying a batch's id: `<vm_id>:<first_seq>-<last_seq>` from the filter,
/// but any 1 to 128 visible ASCII characters are accepted.
pub const BATCH_ID_HEADER: &str = "meshlog-batch-id";
/// The response header set (to `true`) when a batch's id was already stored.
pub const DUPLICATE_HEADER: &str = "meshlog-duplicate";
/// How long a batch waits for its fsync by default before it is refused, unacknowledged.
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
