//! The access record the filter builds for each completed request.
//!
//! A typed struct rather than a map: every field is named once, here, and the OTLP encoder walks
//! it without allocating keys. `None` fields are simply not emitted.

use crate::redact::Summary;
use crate::schema as k;
use std::borrow::Cow;

/// A record's text: borrowed from the request being logged (a header value the policy left
/// whole, the policy's version) or owned (redacted, built, or copied out of the host). A record
/// is encoded as soon as it is built, so borrowing saves an allocation and a free per field.
pub type Text<'a> = Cow<'a, str>;

/// One completed HTTP request, or one closed TCP connection, as seen by the sidecar.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessRecord<'a> {
    /// A request or a connection: picks the OTLP event name.
    pub kind: RecordKind,
    /// When the first request byte arrived, unix nanoseconds.
    pub start_time_ns: u64,
    /// When the record was built (log time), unix nanoseconds.
    pub observed_time_ns: u64,
    /// Request duration, nanoseconds.
    pub duration_ns: Option<u64>,
    /// HTTP method.
    pub method: Option<Text<'a>>,
    /// URL scheme.
    pub scheme: Option<Text<'a>>,
    /// Host part of the authority.
    pub server_address: Option<Text<'a>>,
    /// Port of the authority, when given.
    pub server_port: Option<u16>,
    /// Path without the query.
    pub path: Option<Text<'a>>,
    /// Query string without `?`.
    pub query: Option<Text<'a>>,
    /// Protocol version (`1.1`, `2`).
    pub protocol_version: Option<Text<'a>>,
    /// Response status code.
    pub status: Option<i64>,
    /// Request body bytes.
    pub request_body_bytes: Option<u64>,
    /// Response body bytes.
    pub response_body_bytes: Option<u64>,
    /// User-Agent header.
    pub user_agent: Option<Text<'a>>,
    /// x-request-id header.
    pub request_id: Option<Text<'a>>,
    /// Envoy response flags as short codes.
    pub response_flags: Option<Text<'a>>,
    /// Envoy response code details.
    pub response_code_details: Option<Text<'a>>,
    /// Upstream cluster name.
    pub upstream_cluster: Option<Text<'a>>,
    /// Upstream host `ip:port`.
    pub upstream_host: Option<Text<'a>>,
    /// Downstream peer IP.
    pub client_address: Option<Text<'a>>,
    /// Downstream peer port.
    pub client_port: Option<u16>,
    /// Downstream local address `ip:port`.
    pub downstream_local_address: Option<Text<'a>>,
    /// W3C trace id, when the request carried a valid `traceparent`.
    pub trace_id: Option<[u8; 16]>,
    /// W3C parent span id from `traceparent`.
    pub span_id: Option<[u8; 8]>,
    /// Low-cardinality route template (`/users/{id}`).
    pub route: Option<Text<'a>>,
    /// Logged request headers (allowlisted, redacted), lower-case names.
    pub request_headers: Vec<(Text<'a>, Text<'a>)>,
    /// Logged response headers (allowlisted, redacted), lower-case names.
    pub response_headers: Vec<(Text<'a>, Text<'a>)>,
    /// Logged request trailers (allowlisted, redacted), lower-case names. Read for RPCs only.
    pub request_trailers: Vec<(Text<'a>, Text<'a>)>,
    /// Logged response trailers (allowlisted, redacted), lower-case names. Read for RPCs only.
    pub response_trailers: Vec<(Text<'a>, Text<'a>)>,
    /// The RPC, when the request was gRPC, gRPC-Web or Connect.
    pub rpc: Option<RpcInfo>,
    /// Envoy's response flags as a bitmask (what [`AccessRecord::response_flags`] spells out):
    /// severity reads it. Not an attribute of its own.
    pub response_flags_mask: u64,
    /// What redaction replaced in this record, per kind.
    pub redactions: Summary,
    /// Version (hash) of the policy that produced this record.
    pub policy_version: Option<Text<'a>>,
    /// Listener direction (`inbound`, `outbound`).
    pub direction: Option<&'static str>,
    /// The downstream connection's TLS, when it was TLS.
    pub tls: Option<TlsInfo>,
    /// The end user, from claims Envoy verified; `None` without a verified token (or with the
    /// `enduser` section off).
    pub enduser: Option<EndUser>,
    /// Connection records: bytes received from the downstream peer.
    pub bytes_received: Option<u64>,
    /// Connection records: bytes sent to the downstream peer.
    pub bytes_sent: Option<u64>,
    /// Per-VM sequence number, set when the record enters the VM's buffer.
    pub sequence: Option<u64>,
    /// Why sampling kept this record, set only when a `sampling` section is configured. `None`
    /// (no `meshlog.sampling.*` attributes): unsampled, the record stands for itself (adjusted
    /// count 1).
    pub sampling: Option<SamplingMark>,
}

/// What a record describes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecordKind {
    /// One HTTP request (HTTP-filter and access-logger modes): `meshlog.http.access`.
    #[default]
    Http,
    /// One TCP connection, from open to close (network-filter mode): `meshlog.tcp.connection`.
    Tcp,
}

impl RecordKind {
    /// The OTLP `eventName`.
    pub fn event_name(self) -> &'static str {
        match self {
            RecordKind::Http => k::EVENT_NAME,
            RecordKind::Tcp => k::TCP_EVENT_NAME,
        }
    }
}

/// An RPC carried by the request: `rpc.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpcInfo {
    /// `rpc.system`: `grpc` or `connect_rpc`.
    pub system: &'static str,
    /// `rpc.service`: `package.Service` (redacted like any client-supplied text).
    pub service: Option<String>,
    /// `rpc.method`: `Method`.
    pub method: Option<String>,
    /// `rpc.grpc.status_code`, from the trailers or a trailers-only answer's headers.
    pub grpc_status: Option<u32>,
}

/// The end user behind a request, from the claims Envoy verified: `enduser.*`. Every value is
/// already redacted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndUser {
    /// `enduser.id`: kept, keyed-hashed, or `None` (dropped by policy).
    pub id: Option<String>,
    /// `enduser.issuer`.
    pub issuer: Option<String>,
    /// `enduser.claim.<name>`: the allowlisted claims present, in configured order.
    pub claims: Vec<(String, String)>,
}

/// The downstream connection's TLS: who the peer proved to be, and how.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// `1.2`, `1.3`.
    pub version: Option<String>,
    /// SNI.
    pub server_name: Option<String>,
    /// First URI SAN of the peer certificate (SPIFFE id), mTLS only.
    pub peer_principal: Option<String>,
    /// SHA-256 of the peer certificate, upper-case hex, mTLS only.
    pub peer_cert_sha256: Option<String>,
}

/// The sampling attributes of a kept record (see [`crate::sample`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingMark {
    /// Requests this record stands for (`1/rate`, or 1 when always kept): `meshlog.sampling.adjusted_count`.
    pub adjusted_count: f64,
    /// Why it was kept ([`crate::sample::KeepReason::name`]): `meshlog.sampling.reason`.
    pub reason: &'static str,
    /// The sampling policy version (16 hex): `meshlog.sampling.policy_version`.
    pub policy_version: String,
}

/// A typed attribute value as OTLP carries it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttrValue<'a> {
    /// `stringValue`
    Str(&'a str),
    /// `intValue` (a JSON string in OTLP/JSON)
    Int(i64),
    /// `doubleValue` (a JSON number in OTLP/JSON)
    Double(f64),
}

/// A record the VM writes about itself (a sampling or delivery tally): a name, a severity, a time
/// and flat attributes; no request attributes, no trace. The OTLP encoder writes any `Event`, so
/// it needs no knowledge of the modules that count them.
pub trait Event {
    /// The OTLP `eventName`, one of the `*_EVENT_NAME` constants of [`crate::schema`].
    fn event_name(&self) -> &'static str;
    /// Severity of the record.
    fn severity(&self) -> Severity;
    /// `timeUnixNano` of the record when written at `now_ns`: when what it reports happened.
    fn time_ns(&self, now_ns: u64) -> u64;
    /// Calls `f(key, value)` for every attribute, in a fixed order.
    fn visit_attributes(&self, f: &mut dyn FnMut(&str, AttrValue<'_>));
}

/// OTLP severity numbers used for access records and events.
/// Ordered: `Info < Warn < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// 2xx/3xx, gRPC `OK`, or no status.
    Info,
    /// 4xx; a gRPC status that is the caller's (`PERMISSION_DENIED`, `CANCELLED`, ...); a
    /// request the client abandoned (Envoy flags `DR`, `DC`).
    Warn,
    /// 5xx; a gRPC server error (`UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`,
    /// `UNAVAILABLE`, `DATA_LOSS`).
    Error,
}

impl Severity {
    /// OTLP `SeverityNumber`.
    pub fn number(self) -> i32 {
        match self {
            Severity::Info => 9,
            Severity::Warn => 13,
            Severity::Error => 17,
        }
    }
    /// OTLP `severityText`.
    pub fn text(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
        }
    }
}

impl AccessRecord<'_> {
    /// Severity from the outcome, so errors stand out in any OTLP backend: a gRPC status when
    /// one was sent (OK INFO, [`crate::rpc::is_server_error`] ERROR by OpenTelemetry's server-side
    /// table, any other code WARN), else the HTTP
    /// status (5xx ERROR, 4xx WARN); a request the client abandoned (Envoy's `DR`, downstream
    /// remote reset, e.g. an HTTP/2 `RST_STREAM`, or `DC`, downstream connection termination)
    /// is at least WARN, except a WebSocket (101), whose end is always a connection closing.
    pub fn severity(&self) -> Severity {
        let grpc = self.rpc.as_ref().and_then(|r| r.grpc_status);
        let outcome = match (grpc, self.status) {
            (Some(0), _) => Severity::Info,
            (Some(code), _) if crate::rpc::is_server_error(code) => Severity::Error,
            (Some(_), _) => Severity::Warn,
            (None, Some(500..=599)) => Severity::Error,
            (None, Some(400..=499)) => Severity::Warn,
            _ => Severity::Info,
        };
        if self.response_flags_mask & ABANDONED_FLAGS != 0 && self.status != Some(101) {
            outcome.max(Severity::Warn)
        } else {
            outcome
        }
    }

    /// Calls `f(prefix, name, value)` for every present attribute, in schema order. The key is
    /// `prefix` followed by `name`: fixed keys come whole in `prefix` with an empty `name`;
    /// headers come as `http.request.header.` + name, so no key is allocated.
    pub fn for_each_attribute(&self, mut f: impl FnMut(&str, &str, AttrValue<'_>)) {
        let mut s = |key, v: &Option<Text<'_>>| {
            if let Some(v) = v {
                f(key, "", AttrValue::Str(v));
            }
        };
        s(k::HTTP_REQUEST_METHOD, &self.method);
        s(k::URL_SCHEME, &self.scheme);
        s(k::SERVER_ADDRESS, &self.server_address);
        s(k::URL_PATH, &self.path);
        s(k::URL_QUERY, &self.query);
        s(k::HTTP_ROUTE, &self.route);
        s(k::USER_AGENT_ORIGINAL, &self.user_agent);
        s(k::MESHLOG_REQUEST_ID, &self.request_id);
        s(k::MESHLOG_RESPONSE_FLAGS, &self.response_flags);
        s(
            k::MESHLOG_RESPONSE_CODE_DETAILS,
            &self.response_code_details,
        );
        s(k::MESHLOG_UPSTREAM_CLUSTER, &self.upstream_cluster);
        s(k::MESHLOG_UPSTREAM_HOST, &self.upstream_host);
        s(k::CLIENT_ADDRESS, &self.client_address);
        s(
            k::MESHLOG_DOWNSTREAM_LOCAL_ADDRESS,
            &self.downstream_local_address,
        );
        s(k::MESHLOG_POLICY_VERSION, &self.policy_version);
        if let Some(r) = &self.rpc {
            f(k::RPC_SYSTEM, "", AttrValue::Str(r.system));
            if let Some(v) = &r.service {
                f(k::RPC_SERVICE, "", AttrValue::Str(v));
            }
            if let Some(v) = &r.method {
                f(k::RPC_METHOD, "", AttrValue::Str(v));
            }
        }
        if let Some(d) = self.direction {
            f(k::MESHLOG_DIRECTION, "", AttrValue::Str(d));
        }
        if let Some(m) = &self.sampling {
            f(k::MESHLOG_SAMPLING_REASON, "", AttrValue::Str(m.reason));
            f(
                k::MESHLOG_SAMPLING_POLICY_VERSION,
                "",
                AttrValue::Str(&m.policy_version),
            );
        }
        if let Some(v) = &self.protocol_version {
            f(k::NETWORK_PROTOCOL_NAME, "", AttrValue::Str("http"));
            f(k::NETWORK_PROTOCOL_VERSION, "", AttrValue::Str(v));
        }
        if self.kind == RecordKind::Tcp {
            f(k::NETWORK_TRANSPORT, "", AttrValue::Str("tcp"));
        }
        if let Some(t) = &self.tls {
            f(k::TLS_PROTOCOL_NAME, "", AttrValue::Str("tls"));
            let mut s = |key, v: &Option<String>| {
                if let Some(v) = v {
                    f(key, "", AttrValue::Str(v));
                }
            };
            s(k::TLS_PROTOCOL_VERSION, &t.version);
            s(k::TLS_CLIENT_SERVER_NAME, &t.server_name);
            s(k::MESHLOG_PEER_PRINCIPAL, &t.peer_principal);
            s(k::TLS_CLIENT_HASH_SHA256, &t.peer_cert_sha256);
        }
        if let Some(u) = &self.enduser {
            if let Some(v) = &u.id {
                f(k::ENDUSER_ID, "", AttrValue::Str(v));
            }
            if let Some(v) = &u.issuer {
                f(k::ENDUSER_ISSUER, "", AttrValue::Str(v));
            }
            for (name, value) in &u.claims {
                f(k::ENDUSER_CLAIM_PREFIX, name, AttrValue::Str(value));
            }
        }
        for (name, value) in &self.request_headers {
            f(k::HTTP_REQUEST_HEADER_PREFIX, name, AttrValue::Str(value));
        }
        for (name, value) in &self.response_headers {
            f(k::HTTP_RESPONSE_HEADER_PREFIX, name, AttrValue::Str(value));
        }
        for (name, value) in &self.request_trailers {
            f(
                k::MESHLOG_REQUEST_TRAILER_PREFIX,
                name,
                AttrValue::Str(value),
            );
        }
        for (name, value) in &self.response_trailers {
            f(
                k::MESHLOG_RESPONSE_TRAILER_PREFIX,
                name,
                AttrValue::Str(value),
            );
        }
        for (kind, n) in self.redactions.iter() {
            f(
                k::MESHLOG_REDACTED_PREFIX,
                kind.name(),
                AttrValue::Int(i64::from(n)),
            );
        }
        let mut i = |key, v: Option<i64>| {
            if let Some(v) = v {
                f(key, "", AttrValue::Int(v));
            }
        };
        i(k::SERVER_PORT, self.server_port.map(i64::from));
        i(k::HTTP_RESPONSE_STATUS_CODE, self.status);
        i(
            k::RPC_GRPC_STATUS_CODE,
            self.rpc.as_ref().and_then(|r| r.grpc_status).map(i64::from),
        );
        i(
            k::HTTP_REQUEST_BODY_SIZE,
            self.request_body_bytes.map(sat_i64),
        );
        i(
            k::HTTP_RESPONSE_BODY_SIZE,
            self.response_body_bytes.map(sat_i64),
        );
        i(k::MESHLOG_DURATION_NS, self.duration_ns.map(sat_i64));
        i(k::CLIENT_PORT, self.client_port.map(i64::from));
        i(
            k::MESHLOG_CONNECTION_BYTES_RECEIVED,
            self.bytes_received.map(sat_i64),
        );
        i(
            k::MESHLOG_CONNECTION_BYTES_SENT,
            self.bytes_sent.map(sat_i64),
        );
        i(k::MESHLOG_SEQUENCE, self.sequence.map(sat_i64));
        if let Some(m) = &self.sampling {
            f(
                k::MESHLOG_SAMPLING_ADJUSTED_COUNT,
                "",
                AttrValue::Double(m.adjusted_count),
            );
        }
    }
}

/// Envoy's `DC` (downstream connection termination, bit 14) and `DR` (downstream remote reset,
/// bit 28): the client went away before the answer was complete.
pub const ABANDONED_FLAGS: u64 = (1 << 14) | (1 << 28);

fn sat_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_follows_the_grpc_status_over_http_and_abandonment_raises_it() {
        let grpc = |code| AccessRecord {
            status: Some(200),
            rpc: Some(RpcInfo {
                system: "grpc",
                grpc_status: Some(code),
                ..RpcInfo::default()
            }),
            ..AccessRecord::default()
        };
        let server_errors = [2, 4, 12, 13, 14, 15];
        for code in 0..=16 {
            let want = match code {
                0 => Severity::Info,
                c if server_errors.contains(&c) => Severity::Error,
                _ => Severity::Warn,
            };
            assert_eq!(grpc(code).severity(), want, "grpc-status {code}");
        }
        let http = |status| AccessRecord {
            status: Some(status),
            ..AccessRecord::default()
        };
        assert_eq!(http(200).severity(), Severity::Info);
        assert_eq!(http(404).severity(), Severity::Warn);
        assert_eq!(http(503).severity(), Severity::Error);
    }
}
