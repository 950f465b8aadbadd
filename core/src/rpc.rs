//! RPC over HTTP: recognising gRPC, gRPC-Web and Connect calls, naming them, reading their
//! status, and how bad an outcome is.
//!
//! Pure functions over what the proxy already holds (content type, `:path`, `grpc-status`): the
//! capture decides from the request's `content-type` (in the header list it fetched anyway)
//! whether a request is an RPC at all, so plain HTTP pays nothing for this module.
//!
//! Severity follows OpenTelemetry's semantic conventions for gRPC, section "gRPC Status"
//! (`open-telemetry/semantic-conventions`, `docs/rpc/grpc.md`; introduced by
//! opentelemetry-specification#3333, April 2023): for a SERVER span the status is set to
//! `Error` for `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE` and
//! `DATA_LOSS`, and left unset for every other code (the caller's mistakes). A log record has
//! levels where a span has only error/unset, so meshlog writes ERROR for that server-error set,
//! WARN for every other non-`OK` code (like HTTP 4xx, which the HTTP conventions also leave unset
//! on server spans) and INFO for `OK`.

/// The RPC protocol of a request, from its `content-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcSystem {
    /// `application/grpc`, `application/grpc+proto`, `application/grpc+json`, ...
    Grpc,
    /// `application/grpc-web`, `application/grpc-web+proto`, `application/grpc-web-text`, ...
    GrpcWeb,
    /// Connect streaming: `application/connect+proto`, `application/connect+json`, ...
    Connect,
}

impl RpcSystem {
    /// The OpenTelemetry `rpc.system` value: `grpc` (gRPC-Web is gRPC on the wire to the
    /// server), `connect_rpc`.
    pub fn otel_name(self) -> &'static str {
        match self {
            RpcSystem::Grpc | RpcSystem::GrpcWeb => "grpc",
            RpcSystem::Connect => "connect_rpc",
        }
    }

    /// Whether the status travels in `grpc-status` (headers or trailers). Connect puts its
    /// error in the body, which meshlog does not read.
    pub fn has_grpc_status(self) -> bool {
        matches!(self, RpcSystem::Grpc | RpcSystem::GrpcWeb)
    }
}

/// The RPC protocol a `content-type` value names, if any. Case-insensitive on the media type;
/// parameters (`; charset=...`) are ignored.
pub fn system_from_content_type(ct: &[u8]) -> Option<RpcSystem> {
    let end = ct.iter().position(|b| *b == b';').unwrap_or(ct.len());
    let media = ct.get(..end)?.trim_ascii();
    let starts = |prefix: &[u8]| {
        media.len() >= prefix.len()
            && media
                .get(..prefix.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
    };
    let rest_ok = |prefix: &[u8], seps: &[u8]| {
        // After the prefix: nothing, or a `+codec` / `-text` suffix.
        match media.get(prefix.len()) {
            None => true,
            Some(b) => seps.contains(b),
        }
    };
    if starts(b"application/grpc-web") && rest_ok(b"application/grpc-web", b"+-") {
        Some(RpcSystem::GrpcWeb)
    } else if starts(b"application/grpc") && rest_ok(b"application/grpc", b"+") {
        Some(RpcSystem::Grpc)
    } else if starts(b"application/connect+") && media.len() > b"application/connect+".len() {
        Some(RpcSystem::Connect)
    } else {
        None
    }
}

/// `rpc.service` and `rpc.method` from a gRPC `:path`, `/package.Service/Method` (a query, which
/// gRPC never sends, is ignored). `None` unless it has exactly that shape with both parts
/// non-empty.
pub fn service_and_method(path: &str) -> Option<(&str, &str)> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.split_once('/')?;
    if service.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    Some((service, method))
}

/// A `grpc-status` value: a decimal code (surrounding spaces tolerated). Codes above 16 are
/// kept (OpenTelemetry allows custom values); anything else is `None`.
pub fn parse_status(v: &[u8]) -> Option<u32> {
    let t = v.trim_ascii();
    if t.is_empty() || t.len() > 10 || !t.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(t).ok()?.parse().ok()
}

/// gRPC status codes by number, as the gRPC spec names them.
pub const STATUS_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The name of a status code (`PERMISSION_DENIED`), `None` past 16.
pub fn status_name(code: u32) -> Option<&'static str> {
    STATUS_NAMES.get(usize::try_from(code).ok()?).copied()
}

/// A status code from its number or its name (`"7"`, `"PERMISSION_DENIED"`, any case).
pub fn status_from_name(s: &str) -> Option<u32> {
    if let Some(n) = parse_status(s.as_bytes()) {
        return (n <= 16).then_some(n);
    }
    let pos = STATUS_NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(s.trim()))?;
    u32::try_from(pos).ok()
}

/// Whether a code is a server error in OpenTelemetry's gRPC table (span status `Error` on the
/// server side): `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`,
/// `DATA_LOSS`. Unknown codes (above 16) count as server errors too: nothing says they are the
/// caller's fault.
pub fn is_server_error(code: u32) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15) || code > 16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        for (ct, want) in [
            ("application/grpc", Some(RpcSystem::Grpc)),
            ("application/grpc+proto", Some(RpcSystem::Grpc)),
            (
                "Application/GRPC+json; charset=utf-8",
                Some(RpcSystem::Grpc),
            ),
            ("application/grpc-web", Some(RpcSystem::GrpcWeb)),
            ("application/grpc-web+proto", Some(RpcSystem::GrpcWeb)),
            ("application/grpc-web-text", Some(RpcSystem::GrpcWeb)),
            ("application/grpc-web-text+proto", Some(RpcSystem::GrpcWeb)),
            ("application/connect+proto", Some(RpcSystem::Connect)),
            ("application/connect+json", Some(RpcSystem::Connect)),
            ("  application/grpc  ", Some(RpcSystem::Grpc)),
            ("application/grpcx", None),
            ("application/grpc-webx", None),
            ("application/connect", None),
            ("application/connect+", None),
            ("application/json", None),
            ("application/proto", None),
            ("text/plain", None),
            ("", None),
        ] {
            assert_eq!(system_from_content_type(ct.as_bytes()), want, "{ct:?}");
        }
        assert_eq!(system_from_content_type(b"application/grpc\xff"), None);
        assert_eq!(RpcSystem::GrpcWeb.otel_name(), "grpc");
        assert_eq!(RpcSystem::Connect.otel_name(), "connect_rpc");
        assert!(!RpcSystem::Connect.has_grpc_status());
    }

    #[test]
    fn rpc_names_from_the_path() {
        assert_eq!(
            service_and_method("/shop.v1.Orders/Get"),
            Some(("shop.v1.Orders", "Get"))
        );
        assert_eq!(
            service_and_method("/Greeter/SayHello?x=1"),
            Some(("Greeter", "SayHello"))
        );
        for bad in ["", "/", "//", "/svc", "/svc/", "//m", "svc/m", "/a/b/c"] {
            assert_eq!(service_and_method(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn status_values() {
        assert_eq!(parse_status(b"0"), Some(0));
        assert_eq!(parse_status(b" 7 "), Some(7));
        assert_eq!(parse_status(b"16"), Some(16));
        assert_eq!(parse_status(b"42"), Some(42));
        for bad in [&b""[..], b"-1", b"7a", b"OK", b"99999999999", b"\xff"] {
            assert_eq!(parse_status(bad), None, "{bad:?}");
        }
        assert_eq!(status_name(7), Some("PERMISSION_DENIED"));
        assert_eq!(status_name(17), None);
        assert_eq!(status_from_name("permission_denied"), Some(7));
        assert_eq!(status_from_name("16"), Some(16));
        assert_eq!(status_from_name("17"), None);
        assert_eq!(status_from_name("NOPE"), None);
    }

    #[test]
    fn server_errors_follow_the_otel_server_table() {
        let error = [2, 4, 12, 13, 14, 15];
        for code in 0..=16 {
            assert_eq!(
                is_server_error(code),
                error.contains(&code),
                "{:?}",
                status_name(code)
            );
        }
        assert!(!is_server_error(7), "PERMISSION_DENIED is the caller's");
        assert!(
            is_server_error(99),
            "unknown codes are not the caller's fault"
        );
    }
}
