//! The canonical attribute names, shared by the filter (which writes them) and the collector
//! (which stores and queries them).
//!
//! The dictionary of every attribute and event name meshlog writes (docs/schema.md mirrors it).
//! A leaf: it imports nothing, so any module may name attributes without depending on the
//! module that produces them.
//!
//! OpenTelemetry semantic-convention names where one exists, `meshlog.*` for the rest. The
//! collector's stored record is flat: these keys sit at the top level next to the reserved keys in
//! [`RESERVED`]; resource attributes are prefixed with `resource.`.

/// HTTP method, upper case (`GET`).
pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
/// Response status code (integer).
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
/// Request body size in bytes (integer).
pub const HTTP_REQUEST_BODY_SIZE: &str = "http.request.body.size";
/// Response body size in bytes (integer).
pub const HTTP_RESPONSE_BODY_SIZE: &str = "http.response.body.size";
/// URL scheme (`http`, `https`).
pub const URL_SCHEME: &str = "url.scheme";
/// Path without the query string.
pub const URL_PATH: &str = "url.path";
/// Query string without the leading `?`, after redaction.
pub const URL_QUERY: &str = "url.query";
/// Low-cardinality route template: `/users/{id}/orders/{uuid}`.
pub const HTTP_ROUTE: &str = "http.route";
/// Prefix of logged request headers: `http.request.header.content-type`. One string per header
/// (repeated headers comma-joined), unlike OTel's string array, so the stored record stays flat.
pub const HTTP_REQUEST_HEADER_PREFIX: &str = "http.request.header.";
/// Prefix of logged response headers.
pub const HTTP_RESPONSE_HEADER_PREFIX: &str = "http.response.header.";
/// Prefix of per-kind redaction counts: `meshlog.redacted.email` (integer).
pub const MESHLOG_REDACTED_PREFIX: &str = "meshlog.redacted.";
/// Version (16 hex chars) of the redaction policy the record was produced under.
pub const MESHLOG_POLICY_VERSION: &str = "meshlog.policy_version";
/// Host of the `:authority` / `Host` header.
pub const SERVER_ADDRESS: &str = "server.address";
/// Port of the `:authority` header when one was given (integer).
pub const SERVER_PORT: &str = "server.port";
/// Downstream peer IP address.
pub const CLIENT_ADDRESS: &str = "client.address";
/// Downstream peer port (integer).
pub const CLIENT_PORT: &str = "client.port";
/// `http` for HTTP traffic.
pub const NETWORK_PROTOCOL_NAME: &str = "network.protocol.name";
/// `1.0`, `1.1`, `2`, `3`.
pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
/// The `User-Agent` header as sent.
pub const USER_AGENT_ORIGINAL: &str = "user_agent.original";
/// Request duration from first byte received to last byte sent, in nanoseconds (integer).
pub const MESHLOG_DURATION_NS: &str = "meshlog.duration_ns";
/// The `x-request-id` header.
pub const MESHLOG_REQUEST_ID: &str = "meshlog.request_id";
/// Envoy response flags as short codes (`UF,URX`), empty when none.
pub const MESHLOG_RESPONSE_FLAGS: &str = "meshlog.response_flags";
/// Traffic direction of the listener: `inbound` or `outbound` (absent when unspecified).
pub const MESHLOG_DIRECTION: &str = "meshlog.direction";
/// Per-VM sequence number (integer, from 0, no gaps): a gap is a record lost between the VM and
/// the store; the VM id (resource attribute `meshlog.vm.id`) says which sequence.
pub const MESHLOG_SEQUENCE: &str = "meshlog.sequence";
/// Envoy's response code details (`via_upstream`, `route_not_found`).
pub const MESHLOG_RESPONSE_CODE_DETAILS: &str = "meshlog.response_code_details";
/// Upstream cluster name.
pub const MESHLOG_UPSTREAM_CLUSTER: &str = "meshlog.upstream.cluster";
/// Upstream host address (`ip:port`).
pub const MESHLOG_UPSTREAM_HOST: &str = "meshlog.upstream.host";
/// Downstream local address (`ip:port`): where the request arrived.
pub const MESHLOG_DOWNSTREAM_LOCAL_ADDRESS: &str = "meshlog.downstream.local_address";
/// Sampling only (absent when no `sampling` section is configured, meaning unsampled: adjusted
/// count 1): the requests this kept record stands for, `1/rate` or 1 (double).
pub const MESHLOG_SAMPLING_ADJUSTED_COUNT: &str = "meshlog.sampling.adjusted_count";
/// Sampling only: why the record was kept (`sampled`, `error_status`, `status`, …).
pub const MESHLOG_SAMPLING_REASON: &str = "meshlog.sampling.reason";
/// Sampling only (and sampling tallies): version (16 hex chars) of the sampling policy that kept
/// the record. Distinct from [`MESHLOG_POLICY_VERSION`], the redaction policy's.
pub const MESHLOG_SAMPLING_POLICY_VERSION: &str = "meshlog.sampling.policy_version";

/// TLS only: `tls` when the downstream connection was TLS (absent for plaintext).
pub const TLS_PROTOCOL_NAME: &str = "tls.protocol.name";
/// TLS only: the negotiated version, `1.2` or `1.3` (Envoy's `TLSv1.3` without the prefix).
pub const TLS_PROTOCOL_VERSION: &str = "tls.protocol.version";
/// TLS only: the SNI the client asked for.
pub const TLS_CLIENT_SERVER_NAME: &str = "tls.client.server_name";
/// mTLS only: SHA-256 of the client certificate, upper-case hex (OTel's form).
pub const TLS_CLIENT_HASH_SHA256: &str = "tls.client.hash.sha256";
/// mTLS only: the peer principal, the client certificate's first URI SAN: in a mesh its SPIFFE
/// id (`spiffe://cluster.local/ns/shop/sa/frontend`), which names the calling workload.
pub const MESHLOG_PEER_PRINCIPAL: &str = "meshlog.peer.principal";
/// The end user, from claims Envoy verified (`enduser` section): the id claim (`sub` by
/// default), kept (redacted like any text), keyed-hashed (`hmac:<key id>:<32 hex>`) or dropped.
/// Absent without a verified token.
pub const ENDUSER_ID: &str = "enduser.id";
/// The verified token's issuer (`iss`).
pub const ENDUSER_ISSUER: &str = "enduser.issuer";
/// Prefix of the allowlisted further claims, redacted: `enduser.claim.scope`,
/// `enduser.claim.act.sub`.
pub const ENDUSER_CLAIM_PREFIX: &str = "enduser.claim.";
/// Connection records only: `tcp`.
pub const NETWORK_TRANSPORT: &str = "network.transport";
/// Connection records only: bytes received from the downstream peer (integer).
pub const MESHLOG_CONNECTION_BYTES_RECEIVED: &str = "meshlog.connection.bytes_received";
/// Connection records only: bytes sent to the downstream peer (integer).
pub const MESHLOG_CONNECTION_BYTES_SENT: &str = "meshlog.connection.bytes_sent";

/// RPC only (a request whose `content-type` is gRPC, gRPC-Web or Connect): `grpc` (gRPC and
/// gRPC-Web) or `connect_rpc`.
pub const RPC_SYSTEM: &str = "rpc.system";
/// RPC only: the full service name from the `:path` `/package.Service/Method`:
/// `package.Service`.
pub const RPC_SERVICE: &str = "rpc.service";
/// RPC only: the method name from the `:path`: `Method`.
pub const RPC_METHOD: &str = "rpc.method";
/// gRPC and gRPC-Web only: the status code (integer, 0 `OK` to 16 `UNAUTHENTICATED`), from the
/// response trailers, else the response headers (a trailers-only answer). Absent when no status
/// was sent (e.g. the client cancelled first).
pub const RPC_GRPC_STATUS_CODE: &str = "rpc.grpc.status_code";
/// Prefix of logged request trailers (allowlisted, redacted like headers):
/// `meshlog.request.trailer.grpc-status`. OpenTelemetry names no trailer attribute.
pub const MESHLOG_REQUEST_TRAILER_PREFIX: &str = "meshlog.request.trailer.";
/// Prefix of logged response trailers: `meshlog.response.trailer.grpc-message`.
pub const MESHLOG_RESPONSE_TRAILER_PREFIX: &str = "meshlog.response.trailer.";

/// The OTLP `eventName` of every HTTP access record.
pub const EVENT_NAME: &str = "meshlog.http.access";
/// The OTLP `eventName` of every connection record (network-filter mode).
pub const TCP_EVENT_NAME: &str = "meshlog.tcp.connection";

/// The OTLP `eventName` of a sampling tally record (`sample::Tally`).
pub const SAMPLING_TALLY_EVENT_NAME: &str = "meshlog.sampling.tally";
/// The OTLP `eventName` of a delivery tally record (`outbox::DeliveryTally`).
pub const DELIVERY_TALLY_EVENT_NAME: &str = "meshlog.delivery.tally";

// Sampling tally records (`meshlog.sampling.tally`): what the sampler saw, kept and dropped in
// one interval. They also carry `MESHLOG_SAMPLING_POLICY_VERSION` and `MESHLOG_SEQUENCE`.

/// Sampling tally: interval start, unix ns (integer).
pub const MESHLOG_SAMPLING_INTERVAL_START_NS: &str = "meshlog.sampling.interval.start_ns";
/// Sampling tally: interval end, unix ns (integer).
pub const MESHLOG_SAMPLING_INTERVAL_END_NS: &str = "meshlog.sampling.interval.end_ns";
/// Sampling tally: requests decided (integer).
pub const MESHLOG_SAMPLING_SEEN: &str = "meshlog.sampling.seen";
/// Sampling tally: records kept, whatever the reason (integer).
pub const MESHLOG_SAMPLING_KEPT: &str = "meshlog.sampling.kept";
/// Sampling tally: of those, kept by an always-keep rule (integer).
pub const MESHLOG_SAMPLING_KEPT_ALWAYS: &str = "meshlog.sampling.kept.always";
/// Sampling tally: sum of the kept records' adjusted counts, rounded (integer).
pub const MESHLOG_SAMPLING_KEPT_ADJUSTED: &str = "meshlog.sampling.kept.adjusted";
/// Sampling tally: requests not selected by their sampling rate (integer).
pub const MESHLOG_DROPPED_SAMPLED: &str = "meshlog.dropped.sampled";
/// Sampling tally: records selected by sampling but dropped by the per-VM rate cap (integer).
pub const MESHLOG_DROPPED_RATE_CAP: &str = "meshlog.dropped.rate_cap";
/// Sampling tally: sum of the adjusted counts of the records the rate cap dropped, rounded
/// (integer): the requests they stood for.
pub const MESHLOG_DROPPED_RATE_CAP_ADJUSTED: &str = "meshlog.dropped.rate_cap.adjusted";
/// Sampling tally: requests dropped by the health-check drop list (integer).
pub const MESHLOG_DROPPED_HEALTH_CHECK: &str = "meshlog.dropped.health_check";
/// Sampling tally: per-route counts as a JSON object string:
/// `{"/api/{id}":{"seen":10,"sampled":8,"rate_cap":0,"health_check":0}}`. Absent when empty.
pub const MESHLOG_SAMPLING_BY_ROUTE: &str = "meshlog.sampling.by_route";

// Delivery tally records (`meshlog.delivery.tally`): what the outbox lost, by sequence number.
// They also carry `MESHLOG_SEQUENCE`.

/// Delivery tally: records dropped because the VM's buffer was full, listed in this record
/// (integer).
pub const MESHLOG_DELIVERY_DROPPED_OVERFLOW: &str = "meshlog.delivery.dropped_overflow";
/// Delivery tally: records dropped for overflow since the VM started, as of this record
/// (integer). Monotonic: the largest value among a VM's tally records is its exact total.
pub const MESHLOG_DELIVERY_DROPPED_OVERFLOW_TOTAL: &str = "meshlog.delivery.dropped_overflow.total";
/// Delivery tally: their sequence numbers (string): inclusive ranges, `"3-9,15-15"`.
pub const MESHLOG_DELIVERY_DROPPED_OVERFLOW_SEQUENCES: &str =
    "meshlog.delivery.dropped_overflow.sequences";
/// Delivery tally: records in batches the collector refused for good, listed in this record
/// (integer).
pub const MESHLOG_DELIVERY_FAILED: &str = "meshlog.delivery.failed";
/// Delivery tally: records refused since the VM started, as of this record (integer), like
/// [`MESHLOG_DELIVERY_DROPPED_OVERFLOW_TOTAL`].
pub const MESHLOG_DELIVERY_FAILED_TOTAL: &str = "meshlog.delivery.failed.total";
/// Delivery tally: their sequence numbers (string), as for overflow.
pub const MESHLOG_DELIVERY_FAILED_SEQUENCES: &str = "meshlog.delivery.failed.sequences";
/// Delivery tally: present (integer 1) only when a range list outgrew its bound and
/// neighbouring ranges were joined, so the ranges over-cover (the counts stay exact).
pub const MESHLOG_DELIVERY_SEQUENCES_APPROXIMATE: &str = "meshlog.delivery.sequences.approximate";

/// Top-level keys of a stored record that are not attributes.
pub const RESERVED: &[&str] = &[
    "time_unix_nano",
    "observed_time_unix_nano",
    "severity_number",
    "severity_text",
    "event_name",
    "trace_id",
    "span_id",
    "flags",
    "body",
    "scope.name",
    "scope.version",
];
