//! Building an [`AccessRecord`] from what the proxy knows about a finished request.
//!
//! The proxy is abstracted as an [`AttributeSource`]: the Wasm filter implements it with
//! `get_property` / `get_map_value_bytes` hostcalls, tests implement it with a map. Values are raw
//! bytes all the way in; invalid UTF-8 becomes U+FFFD here, so no header can trap the VM.
//!
//! Redaction happens here, field by field, as values are read: a raw value never reaches the
//! record, so nothing downstream (batching, encoding, retries) can leak it.

use crate::envoy::{
    default_port, int_attr, protocol_version, response_flags, split_socket_address, unmap_ipv4,
};
use crate::record::{AccessRecord, RecordKind, RpcInfo, Text, TlsInfo};
use crate::redact::{RedactionPolicy, Summary};
use crate::rpc::{self, RpcSystem};
use crate::trace;
use std::borrow::Cow;

/// One header: its lower-case name and raw value, borrowed from the host when it can lend
/// them for as long as the source is borrowed (the native module reads Envoy's header map in
/// place), owned when the host had to copy them out (Wasm hostcalls). Only the headers the
/// record logs are copied into it.
pub type Header<'a> = (Cow<'a, str>, Cow<'a, [u8]>);

/// Read access to the proxy's view of the current request.
pub trait AttributeSource {
    /// The Envoy attribute at `path` (e.g. `["request", "method"]`), as raw bytes: lent when
    /// the host can lend them for as long as the source is borrowed, else owned.
    fn property(&self, path: &[&str]) -> Option<Cow<'_, [u8]>>;
    /// Every request header (lower-case names), as raw values.
    fn request_headers(&self) -> Vec<Header<'_>>;
    /// Every response header (lower-case names), as raw values.
    fn response_headers(&self) -> Vec<Header<'_>>;
    /// Every request trailer (lower-case names). Asked for RPCs only; a host that cannot tell
    /// (Envoy's access logger) answers none.
    fn request_trailers(&self) -> Vec<Header<'_>> {
        Vec::new()
    }
    /// Every response trailer (lower-case names). Asked for RPCs only.
    fn response_trailers(&self) -> Vec<Header<'_>> {
        Vec::new()
    }
}

/// Headers the host copied out, as [`Header`]s (the Wasm host's lists).
pub fn owned_headers(list: Vec<(String, Vec<u8>)>) -> Vec<Header<'static>> {
    list.into_iter()
        .map(|(n, v)| (Cow::Owned(n), Cow::Owned(v)))
        .collect()
}

/// Headers held by the caller, lent as [`Header`]s (no copy).
pub fn borrowed_headers(list: &[(String, Vec<u8>)]) -> Vec<Header<'_>> {
    list.iter()
        .map(|(n, v)| (Cow::Borrowed(n.as_str()), Cow::Borrowed(v.as_slice())))
        .collect()
}

/// Headers already logged under their own attribute (or pseudo-headers, which are the request
/// line): never repeated as `http.request.header.*`.
const SKIP_HEADERS: &[&str] = &["user-agent", "x-request-id", "host"];

fn lossy(raw: Vec<u8>) -> String {
    match String::from_utf8(raw) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// A header value as text: borrowed when it is lent and UTF-8, else decoded lossily (an owned
/// value without a copy when it is UTF-8).
fn value_text(raw: Cow<'_, [u8]>) -> Cow<'_, str> {
    match raw {
        Cow::Borrowed(b) => utf8_lossy(b),
        Cow::Owned(o) => Cow::Owned(lossy(o)),
    }
}

/// `String::from_utf8_lossy`, with valid UTF-8 (every header Envoy ever showed us) checked by
/// `from_utf8`'s fast path instead of walking it chunk by chunk.
fn utf8_lossy(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}

/// `v` after a redaction `f` of it, with `v`'s lifetime: `v` itself or a slice of it (lent
/// when `v` is lent, moved when it is owned and whole) when `f` left it or trimmed it, the new
/// text when `f` changed it, `None` when `f` dropped it. Exact whatever `f` returns: a borrowed
/// answer that does not lie inside `v` is copied.
fn keep<'s>(
    v: Cow<'s, str>,
    f: impl for<'a> FnOnce(&'a str) -> Option<Cow<'a, str>>,
) -> Option<Cow<'s, str>> {
    let range = match f(&v)? {
        Cow::Owned(o) => return Some(Cow::Owned(o)),
        Cow::Borrowed(b) => {
            let off = (b.as_ptr() as usize).wrapping_sub(v.as_ptr() as usize);
            let range = off..off.wrapping_add(b.len());
            if v.get(range.clone())
                .is_none_or(|x| x.as_ptr() != b.as_ptr())
            {
                return Some(Cow::Owned(b.to_owned()));
            }
            range
        }
    };
    Some(match v {
        Cow::Borrowed(w) => Cow::Borrowed(w.get(range).unwrap_or_default()),
        Cow::Owned(o) if range.start == 0 && range.end == o.len() => Cow::Owned(o),
        Cow::Owned(o) => Cow::Owned(o.get(range).unwrap_or_default().to_owned()),
    })
}

/// Allowlisted headers, redacted; repeated names are comma-joined as HTTP allows.
fn headers<'s>(
    raw: Vec<Header<'s>>,
    allowed: impl Fn(&str) -> bool,
    redact: impl for<'a> Fn(&str, &'a str, &mut Summary) -> Option<Cow<'a, str>>,
    summary: &mut Summary,
) -> Vec<(Text<'s>, Text<'s>)> {
    let mut out: Vec<(Text<'s>, Text<'s>)> = Vec::new();
    for (name, value) in raw {
        if name.starts_with(':') || SKIP_HEADERS.contains(&name.as_ref()) || !allowed(&name) {
            continue;
        }
        let Some(v) = keep(value_text(value), |v| redact(&name, v, summary)) else {
            continue;
        };
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, joined)) => {
                let joined = joined.to_mut();
                joined.push(',');
                joined.push_str(&v);
            }
            None => out.push((name, v)),
        }
    }
    out
}

/// The first value of header `name` in a fetched list (lower-case names), decoded lossily
/// (borrowed when it is UTF-8); an empty value counts as absent, like an empty attribute.
fn first<'l>(list: &'l [Header<'_>], name: &str) -> Option<Cow<'l, str>> {
    first_raw(list, name)
        .filter(|v| !v.is_empty())
        .map(utf8_lossy)
}

/// The first value of header `name`, taken out of the list with the list's lifetime (lent when
/// the host lent it, moved when it is owned): for the headers the record logs under their own
/// attributes, which [`headers`] skips. An empty value counts as absent, as in [`first`].
fn take<'s>(list: &mut [Header<'s>], name: &str) -> Option<Cow<'s, str>> {
    let (_, v) = list.iter_mut().find(|(n, _)| n == name)?;
    if v.is_empty() {
        return None;
    }
    Some(value_text(std::mem::take(v)))
}

/// `:path` split into path and query, each borrowed from it when it is borrowed.
fn split_target(full: Cow<'_, str>) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
    match full {
        Cow::Borrowed(f) => match f.split_once('?') {
            Some((p, q)) => (
                Some(Cow::Borrowed(p)),
                Some(Cow::Borrowed(q)).filter(|q| !q.is_empty()),
            ),
            None => (Some(Cow::Borrowed(f)), None),
        },
        Cow::Owned(f) => match f.split_once('?') {
            Some((p, q)) => (
                Some(Cow::Owned(p.to_owned())),
                Some(q)
                    .filter(|q| !q.is_empty())
                    .map(|q| Cow::Owned(q.to_owned())),
            ),
            None => (Some(Cow::Owned(f)), None),
        },
    }
}

/// The protocol version as logged (`HTTP/1.1` gives `1.1`); the usual ones without a copy.
fn protocol_text(p: Cow<'_, str>) -> Text<'static> {
    match protocol_version(&p) {
        "1.1" => Cow::Borrowed("1.1"),
        "2" => Cow::Borrowed("2"),
        "1.0" => Cow::Borrowed("1.0"),
        "3" => Cow::Borrowed("3"),
        v => Cow::Owned(v.to_owned()),
    }
}

/// The first raw value of header `name`, borrowed.
fn first_raw<'l>(list: &'l [Header<'_>], name: &str) -> Option<&'l [u8]> {
    list.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_ref())
}

fn owned(c: Option<Cow<'_, str>>) -> Option<String> {
    c.map(Cow::into_owned)
}

fn text(src: &impl AttributeSource, path: &[&str]) -> Option<String> {
    text_cow(src, path).map(Cow::into_owned)
}

/// The attribute at `path` as text, lent when the host lent it and it is UTF-8; an empty
/// value counts as absent.
fn text_cow<'s, S: AttributeSource>(src: &'s S, path: &[&str]) -> Option<Cow<'s, str>> {
    let raw = src.property(path)?;
    if raw.is_empty() {
        return None;
    }
    Some(value_text(raw))
}

fn int(src: &impl AttributeSource, path: &[&str]) -> Option<i64> {
    int_attr(&src.property(path)?)
}

fn unsigned(src: &impl AttributeSource, path: &[&str]) -> Option<u64> {
    int(src, path).and_then(|v| u64::try_from(v).ok())
}

/// Captures one HTTP request, redacted under `policy`. `now_ns` is the log time (unix
/// nanoseconds), passed in because core reads no clock.
pub fn capture_http<'r, S: AttributeSource>(
    src: &'r S,
    policy: &'r RedactionPolicy,
    now_ns: u64,
) -> AccessRecord<'r> {
    RequestView::fetch(src).record(policy, now_ns)
}

/// A finished request as the proxy shows it, nothing redacted yet: both header lists (fetched
/// once, one hostcall each) and the few attributes sampling needs. Sampling decides from
/// [`RequestView::facts`] before anything else is read or redacted, so a dropped request costs
/// four hostcalls (five for an RPC: its response trailers, which hold its status);
/// [`RequestView::record`] then builds a kept request's record from the same view. The raw
/// values never leave it: the record holds only redacted ones.
pub struct RequestView<'s, S: AttributeSource> {
    src: &'s S,
    request: Vec<Header<'s>>,
    response: Vec<Header<'s>>,
    /// The RPC protocol, from the request's `content-type` (no hostcall: the list is fetched).
    rpc: Option<RpcSystem>,
    /// Response trailers, fetched for gRPC and gRPC-Web only.
    trailers: Vec<Header<'s>>,
    /// `grpc-status` from the trailers, else the headers (trailers-only answer).
    grpc_status: Option<u32>,
    duration_ns: Option<u64>,
    flags: u64,
    /// The path redacted (path to log, route, what was replaced), computed once: sampling needs
    /// the route and a kept request's record the rest, and templating runs the detectors.
    redacted_path: std::cell::OnceCell<RedactedTarget>,
}

/// The path as logged, its route, and what redacting it replaced.
type RedactedTarget = (Option<String>, Option<String>, Summary);

/// What sampling needs to know of a request ([`crate::sample::RequestFacts`] borrows from it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SamplingFacts {
    /// Trace id (W3C, else B3), from the request headers.
    pub trace_id: Option<[u8; 16]>,
    /// `x-request-id` as sent.
    pub request_id: Option<String>,
    /// Method, upper case.
    pub method: Option<String>,
    /// Path as sent, without the query.
    pub path: Option<String>,
    /// The route template the redaction policy gives the path (the path itself when none).
    pub route: Option<String>,
    /// Response status.
    pub status: Option<i64>,
    /// Duration, nanoseconds.
    pub duration_ns: Option<u64>,
    /// Envoy response flags bitmask.
    pub response_flags: u64,
    /// gRPC status (trailers, else a trailers-only answer's headers); `None` for other requests.
    pub grpc_status: Option<u32>,
}

impl SamplingFacts {
    /// The facts as the sampler takes them, for `service`.
    pub fn as_request_facts<'a>(
        &'a self,
        service: Option<&'a str>,
    ) -> crate::sample::RequestFacts<'a> {
        crate::sample::RequestFacts {
            trace_id: self.trace_id,
            request_id: self.request_id.as_deref(),
            method: self.method.as_deref(),
            path: self.path.as_deref(),
            route: self.route.as_deref(),
            service,
            status: self.status,
            duration_ns: self.duration_ns,
            response_flags: self.response_flags,
            grpc_status: self.grpc_status,
        }
    }
}

impl<'s, S: AttributeSource> RequestView<'s, S> {
    /// Fetches the header lists, duration and flags; for an RPC (by the request's
    /// `content-type`) the response trailers too, and its gRPC status.
    pub fn fetch(src: &'s S) -> Self {
        let request = src.request_headers();
        let response = src.response_headers();
        let rpc = first_raw(&request, "content-type").and_then(rpc::system_from_content_type);
        // Connect carries its status in the body, not in trailers: nothing to read for it.
        let trailers = if rpc.is_some_and(RpcSystem::has_grpc_status) {
            src.response_trailers()
        } else {
            Vec::new()
        };
        let grpc_status = rpc.filter(|s| s.has_grpc_status()).and_then(|_| {
            first_raw(&trailers, "grpc-status")
                .or_else(|| first_raw(&response, "grpc-status"))
                .and_then(rpc::parse_status)
        });
        RequestView {
            src,
            request,
            response,
            rpc,
            trailers,
            grpc_status,
            duration_ns: unsigned(src, &["request", "duration"]),
            flags: unsigned(src, &["response", "flags"]).unwrap_or(0),
            redacted_path: std::cell::OnceCell::new(),
        }
    }

    /// The path redacted under `policy` (the policy of the first call: a view serves one
    /// request under one policy).
    fn redacted_path(&self, policy: &RedactionPolicy) -> &RedactedTarget {
        self.redacted_path.get_or_init(|| {
            let mut sum = Summary::new();
            let (raw, _) = self.target();
            let (path, route) = match raw.as_deref() {
                Some(p) => {
                    let r = policy.path(p, &mut sum);
                    let path = owned(r.path);
                    // Every record carries a route to group by; untemplated, it is the path.
                    let route = r.route.or_else(|| path.clone());
                    (path, route)
                }
                None => (None, None),
            };
            (path, route, sum)
        })
    }

    /// A request header's first value, else the attribute at `path`. What the header lists hold
    /// is read from them, each an attribute read (a hostcall) saved; the attribute stays the
    /// fallback for a host whose list lacks the pseudo-header.
    fn req(&self, name: &str, path: &[&str]) -> Option<Cow<'_, str>> {
        first(&self.request, name).or_else(|| text(self.src, path).map(Cow::Owned))
    }

    fn status(&self) -> Option<i64> {
        first(&self.response, ":status")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .or_else(|| int(self.src, &["response", "code"]))
            .filter(|c| *c > 0)
    }

    /// Path and query as sent, borrowed from the request's `:path` when it has one.
    fn target(&self) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
        match first(&self.request, ":path") {
            Some(full) => split_target(full),
            None => self.target_attributes(),
        }
    }

    /// Path and query as sent, taken out of the request's `:path` (the record's last use).
    fn take_target(&mut self) -> (Option<Cow<'s, str>>, Option<Cow<'s, str>>) {
        match take(&mut self.request, ":path") {
            Some(full) => split_target(full),
            None => self.target_attributes(),
        }
    }

    /// Path and query from the attributes, for a host whose list lacks `:path`.
    fn target_attributes<'x>(&self) -> (Option<Cow<'x, str>>, Option<Cow<'x, str>>) {
        match text(self.src, &["request", "url_path"]) {
            Some(p) => (
                Some(Cow::Owned(p)),
                text(self.src, &["request", "query"]).map(Cow::Owned),
            ),
            None => match text(self.src, &["request", "path"]) {
                Some(full) => split_target(Cow::Owned(full)),
                None => (None, None),
            },
        }
    }

    /// A request header's first value taken out of the list, else the attribute at `path`
    /// (the record's last use of the header).
    fn take_req(&mut self, name: &str, path: &[&str]) -> Option<Cow<'s, str>> {
        take(&mut self.request, name).or_else(|| text(self.src, path).map(Cow::Owned))
    }

    fn trace(&self) -> Option<([u8; 16], [u8; 8])> {
        trace::from_headers(self.request.iter().map(|(n, v)| (n.as_ref(), v.as_ref())))
    }

    /// What sampling decides on. Raw values (unredacted) but for the route, which is the
    /// template `policy` gives the path.
    pub fn facts(&self, policy: &RedactionPolicy) -> SamplingFacts {
        let path = self.target().0.map(Cow::into_owned);
        let route = self.redacted_path(policy).1.clone();
        SamplingFacts {
            trace_id: self.trace().map(|t| t.0),
            request_id: self
                .req("x-request-id", &["request", "id"])
                .map(Cow::into_owned),
            method: self
                .req(":method", &["request", "method"])
                .map(|m| m.to_ascii_uppercase()),
            path,
            route,
            status: self.status(),
            duration_ns: self.duration_ns,
            response_flags: self.flags,
            grpc_status: self.grpc_status,
        }
    }

    /// The record, redacted under `policy`. It borrows what it can from the request (header
    /// values the policy left whole, lent by the host) and from `policy` (its version): it is
    /// encoded as soon as it is built.
    pub fn record<'r>(mut self, policy: &'r RedactionPolicy, now_ns: u64) -> AccessRecord<'r>
    where
        's: 'r,
    {
        let src = self.src;
        let mut sum = Summary::new();
        let scheme = self.take_req(":scheme", &["request", "scheme"]);
        let (server_address, server_port) = match self.take_req(":authority", &["request", "host"])
        {
            Some(a) => {
                let (h, p) = split_socket_address(&a);
                // A port the scheme implies is noise: `shop:443` and `shop` are one server.
                let p = p.filter(|p| default_port(scheme.as_deref()) != Some(*p));
                let lower = !h.bytes().any(|b| b.is_ascii_uppercase());
                let h = if lower {
                    keep(a, |a| Some(Cow::Borrowed(split_socket_address(a).0)))
                } else {
                    Some(Cow::Owned(h.to_ascii_lowercase()))
                };
                // An IP literal here is the server's own address, not personal data: the IP detector
                // (meant for clients) must not truncate it. Any other host is client-supplied text.
                let host = h.and_then(|h| {
                    if h.parse::<std::net::IpAddr>().is_ok() {
                        Some(h)
                    } else {
                        keep(h, |h| policy.repeated_text(h, &mut sum))
                    }
                });
                (host, p)
            }
            None => (None, None),
        };
        // The path as sampling saw it redacted (when it asked), else redacted now.
        let cached = self.redacted_path.take();
        let (raw_path, raw_query) = self.take_target();
        let rpc = self.rpc.map(|system| {
            let (service, method) = raw_path
                .as_deref()
                .and_then(|p| {
                    let (svc, m) = rpc::service_and_method(p)?;
                    // Client-chosen text: through the detectors like any other.
                    Some((
                        owned(policy.repeated_text(svc, &mut sum)),
                        owned(policy.repeated_text(m, &mut sum)),
                    ))
                })
                .unwrap_or((None, None));
            RpcInfo {
                system: system.otel_name(),
                service,
                method,
                grpc_status: self.grpc_status,
            }
        });
        let (path, route) = match cached {
            Some((path, route, path_sum)) => {
                sum.merge(&path_sum);
                (path.map(Cow::Owned), route.map(Cow::Owned))
            }
            None => match raw_path {
                Some(p) => {
                    let mut route = None;
                    let path = keep(p, |p| {
                        let r = policy.path(p, &mut sum);
                        route = r.route;
                        r.path
                    });
                    // Every record carries a route to group by; untemplated, it is the path.
                    let route = route.map(Cow::Owned).or_else(|| path.clone());
                    (path, route)
                }
                None => (None, None),
            },
        };
        let query = raw_query.and_then(|q| keep(q, |q| policy.query(q, &mut sum)));
        let (client_address, client_port) = match text_cow(src, &["source", "address"]) {
            Some(a) => {
                let (ip, port) = split_socket_address(&a);
                (owned(policy.client_ip(unmap_ipv4(ip), &mut sum)), port)
            }
            None => (None, None),
        };
        let user_agent = self
            .take_req("user-agent", &["request", "useragent"])
            .and_then(|v| keep(v, |v| policy.repeated_text(v, &mut sum)));
        let request_id = self
            .take_req("x-request-id", &["request", "id"])
            .and_then(|v| keep(v, |v| policy.text(v, &mut sum)));
        let method = self.take_req(":method", &["request", "method"]).map(|m| {
            match m.bytes().any(|b| b.is_ascii_lowercase()) {
                true => Cow::Owned(m.to_ascii_uppercase()),
                false => m,
            }
        });
        let status = self.status();
        let duration_ns = self.duration_ns;
        let flags = self.flags;
        // Trace ids come from the header list already fetched: no extra hostcall per header.
        let trace = self.trace();
        let request_headers = headers(
            self.request,
            |n| policy.logs_request_header(n),
            |n, v, s| policy.header_value(n, v, s),
            &mut sum,
        );
        let response_headers = headers(
            self.response,
            |n| policy.logs_response_header(n),
            |n, v, s| policy.header_value(n, v, s),
            &mut sum,
        );
        // Trailers are read for gRPC only: plain HTTP pays no hostcall for them.
        let (request_trailers, response_trailers) =
            if self.rpc.is_some_and(RpcSystem::has_grpc_status) {
                (
                    headers(
                        src.request_trailers(),
                        |n| policy.logs_request_trailer(n),
                        |n, v, s| policy.header_value(n, v, s),
                        &mut sum,
                    ),
                    headers(
                        std::mem::take(&mut self.trailers),
                        |n| policy.logs_response_trailer(n),
                        |n, v, s| policy.header_value(n, v, s),
                        &mut sum,
                    ),
                )
            } else {
                (Vec::new(), Vec::new())
            };
        AccessRecord {
            start_time_ns: unsigned(src, &["request", "time"]).unwrap_or(now_ns),
            observed_time_ns: now_ns,
            duration_ns,
            method,
            scheme,
            server_address,
            server_port,
            path,
            query,
            protocol_version: text_cow(src, &["request", "protocol"]).map(protocol_text),
            status,
            request_body_bytes: unsigned(src, &["request", "size"]),
            response_body_bytes: unsigned(src, &["response", "size"]),
            user_agent,
            request_id,
            response_flags: (flags != 0).then(|| Cow::Owned(response_flags(flags))),
            response_code_details: text_cow(src, &["response", "code_details"]),
            upstream_cluster: text_cow(src, &["xds", "cluster_name"]),
            upstream_host: text_cow(src, &["upstream", "address"]),
            client_address: client_address.map(Cow::Owned),
            client_port,
            downstream_local_address: text_cow(src, &["destination", "address"]),
            trace_id: trace.map(|t| t.0),
            span_id: trace.map(|t| t.1),
            route,
            request_headers,
            response_headers,
            request_trailers,
            response_trailers,
            rpc,
            response_flags_mask: flags,
            tls: tls(src, policy, &mut sum),
            redactions: sum,
            policy_version: Some(Cow::Borrowed(policy.version())),
            direction: direction(src),
            ..AccessRecord::default()
        }
    }
}

fn direction(src: &impl AttributeSource) -> Option<&'static str> {
    match int(src, &["xds", "listener_direction"]) {
        Some(1) => Some("inbound"),
        Some(2) => Some("outbound"),
        _ => None,
    }
}

/// The downstream connection's TLS. One read when the connection is plaintext: the version is
/// asked first and the rest only if there is one.
fn tls(src: &impl AttributeSource, policy: &RedactionPolicy, sum: &mut Summary) -> Option<TlsInfo> {
    let version = text(src, &["connection", "tls_version"])?;
    let version = version
        .strip_prefix("TLSv")
        .map_or(version.clone(), str::to_owned);
    // Client-chosen text (SNI) and certificate names go through the text detectors like any
    // other value; a SPIFFE id or a host name passes unchanged.
    let server_name = text(src, &["connection", "requested_server_name"])
        .and_then(|v| owned(policy.repeated_text(&v, sum)));
    let peer_principal = text(src, &["connection", "uri_san_peer_certificate"])
        .and_then(|v| owned(policy.repeated_text(&v, sum)));
    let peer_cert_sha256 = text(src, &["connection", "sha256_peer_certificate_digest"])
        .map(|d| d.to_ascii_uppercase());
    Some(TlsInfo {
        version: Some(version),
        server_name,
        peer_principal,
        peer_cert_sha256,
    })
}

/// What the network filter counted over one connection's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    /// When the connection was accepted, unix nanoseconds.
    pub start_ns: u64,
    /// Bytes received from the downstream peer.
    pub bytes_received: u64,
    /// Bytes sent to the downstream peer.
    pub bytes_sent: u64,
}

/// Captures one closed TCP connection (network-filter mode), redacted under `policy`: peers,
/// upstream, bytes each way, duration from accept to `now_ns`, TLS identity, response flags.
/// There is no request: Envoy has no HTTP attributes on a TCP connection.
pub fn capture_tcp<'r>(
    src: &impl AttributeSource,
    policy: &'r RedactionPolicy,
    counts: ConnectionCounts,
    now_ns: u64,
) -> AccessRecord<'r> {
    let mut sum = Summary::new();
    let (client_address, client_port) = match text(src, &["source", "address"]) {
        Some(a) => {
            let (ip, port) = split_socket_address(&a);
            (owned(policy.client_ip(unmap_ipv4(ip), &mut sum)), port)
        }
        None => (None, None),
    };
    AccessRecord {
        kind: RecordKind::Tcp,
        start_time_ns: counts.start_ns,
        observed_time_ns: now_ns,
        duration_ns: Some(now_ns.saturating_sub(counts.start_ns)),
        response_flags: unsigned(src, &["response", "flags"])
            .filter(|m| *m != 0)
            .map(|m| Cow::Owned(response_flags(m))),
        upstream_cluster: text(src, &["xds", "cluster_name"]).map(Cow::Owned),
        upstream_host: text(src, &["upstream", "address"]).map(Cow::Owned),
        client_address: client_address.map(Cow::Owned),
        client_port,
        downstream_local_address: text(src, &["destination", "address"]).map(Cow::Owned),
        tls: tls(src, policy, &mut sum),
        bytes_received: Some(counts.bytes_received),
        bytes_sent: Some(counts.bytes_sent),
        redactions: sum,
        policy_version: Some(Cow::Borrowed(policy.version())),
        direction: direction(src),
        ..AccessRecord::default()
    }
}

/// An [`AttributeSource`] over fixed maps, for tests and benchmarks.
#[derive(Debug, Default, Clone)]
pub struct MapSource {
    /// Attributes keyed by dotted path (`request.method`).
    pub properties: std::collections::HashMap<String, Vec<u8>>,
    /// Request headers in order, lower-case names.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Response headers in order, lower-case names.
    pub response: Vec<(String, Vec<u8>)>,
    /// Request trailers in order, lower-case names.
    pub request_trailers: Vec<(String, Vec<u8>)>,
    /// Response trailers in order, lower-case names.
    pub response_trailers: Vec<(String, Vec<u8>)>,
}

impl MapSource {
    /// Sets a string attribute.
    pub fn text(mut self, path: &str, v: impl AsRef<[u8]>) -> Self {
        self.properties.insert(path.to_owned(), v.as_ref().to_vec());
        self
    }
    /// Sets an integer attribute, encoded as Envoy does.
    pub fn int(mut self, path: &str, v: i64) -> Self {
        self.properties
            .insert(path.to_owned(), v.to_le_bytes().to_vec());
        self
    }
    /// Adds a request header.
    pub fn header(mut self, name: &str, v: impl AsRef<[u8]>) -> Self {
        self.headers.push((name.to_owned(), v.as_ref().to_vec()));
        self
    }
    /// Adds a response header.
    pub fn response_header(mut self, name: &str, v: impl AsRef<[u8]>) -> Self {
        self.response.push((name.to_owned(), v.as_ref().to_vec()));
        self
    }
    /// Adds a request trailer.
    pub fn request_trailer(mut self, name: &str, v: impl AsRef<[u8]>) -> Self {
        self.request_trailers
            .push((name.to_owned(), v.as_ref().to_vec()));
        self
    }
    /// Adds a response trailer.
    pub fn response_trailer(mut self, name: &str, v: impl AsRef<[u8]>) -> Self {
        self.response_trailers
            .push((name.to_owned(), v.as_ref().to_vec()));
        self
    }
}

/// Headers are lent, as the native module lends Envoy's.
impl AttributeSource for MapSource {
    fn property(&self, path: &[&str]) -> Option<Cow<'_, [u8]>> {
        self.properties
            .get(&path.join("."))
            .map(|v| Cow::Borrowed(v.as_slice()))
    }
    fn request_headers(&self) -> Vec<Header<'_>> {
        borrowed_headers(&self.headers)
    }
    fn response_headers(&self) -> Vec<Header<'_>> {
        borrowed_headers(&self.response)
    }
    fn request_trailers(&self) -> Vec<Header<'_>> {
        borrowed_headers(&self.request_trailers)
    }
    fn response_trailers(&self) -> Vec<Header<'_>> {
        borrowed_headers(&self.response_trailers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Severity;

    /// The default policy, for as long as a test's records borrow it (its version).
    fn default_policy() -> &'static RedactionPolicy {
        static P: std::sync::OnceLock<RedactionPolicy> = std::sync::OnceLock::new();
        P.get_or_init(RedactionPolicy::default)
    }

    /// Remembers which attributes were asked for: each one is a hostcall in Envoy.
    struct Recording(MapSource, std::cell::RefCell<Vec<String>>);
    impl AttributeSource for Recording {
        fn property(&self, path: &[&str]) -> Option<Cow<'_, [u8]>> {
            self.1.borrow_mut().push(path.join("."));
            self.0.property(path)
        }
        fn request_trailers(&self) -> Vec<Header<'_>> {
            self.1.borrow_mut().push("trailers.request".into());
            self.0.request_trailers()
        }
        fn response_trailers(&self) -> Vec<Header<'_>> {
            self.1.borrow_mut().push("trailers.response".into());
            self.0.response_trailers()
        }
        fn request_headers(&self) -> Vec<Header<'_>> {
            self.0.request_headers()
        }
        fn response_headers(&self) -> Vec<Header<'_>> {
            self.0.response_headers()
        }
    }

    #[test]
    fn captures_every_field() {
        let src = MapSource::default()
            .int("request.time", 1_000)
            .int("request.duration", 2_500_000)
            .text("request.method", "POST")
            .text("request.scheme", "http")
            .text("request.host", "Shop.Example:8080")
            .text("request.url_path", "/cart/items")
            .text("request.query", "x=1")
            .text("request.protocol", "HTTP/1.1")
            .int("response.code", 201)
            .int("request.size", 12)
            .int("response.size", 34)
            .text("request.useragent", b"agent\xff")
            .text("request.id", "rid-1")
            .int("response.flags", 1 << 5)
            .text("response.code_details", "via_upstream")
            .text("xds.cluster_name", "app")
            .text("upstream.address", "127.0.0.1:8080")
            .text("source.address", "10.1.2.3:5555")
            .text("destination.address", "127.0.0.1:10000")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            );
        let r = capture_http(&src, default_policy(), 9_000);
        assert_eq!(r.start_time_ns, 1_000);
        assert_eq!(r.observed_time_ns, 9_000);
        assert_eq!(r.duration_ns, Some(2_500_000));
        assert_eq!(r.method.as_deref(), Some("POST"));
        assert_eq!(r.server_address.as_deref(), Some("shop.example"));
        assert_eq!(r.server_port, Some(8080));
        assert_eq!(r.path.as_deref(), Some("/cart/items"));
        assert_eq!(r.query.as_deref(), Some("x=1"));
        assert_eq!(r.protocol_version.as_deref(), Some("1.1"));
        assert_eq!(r.status, Some(201));
        assert_eq!(r.request_body_bytes, Some(12));
        assert_eq!(r.response_body_bytes, Some(34));
        assert_eq!(r.user_agent.as_deref(), Some("agent\u{fffd}"));
        assert_eq!(r.response_flags.as_deref(), Some("UF"));
        // Client IPs are personal data: truncated to /24 by default.
        assert_eq!(r.client_address.as_deref(), Some("10.1.2.0"));
        assert_eq!(r.route.as_deref(), Some("/cart/items"));
        assert_eq!(
            r.policy_version.as_deref(),
            Some(RedactionPolicy::default().version())
        );
        assert_eq!(r.client_port, Some(5555));
        assert_eq!(r.trace_id.map(|t| t[0]), Some(0x4b));
    }

    #[test]
    fn plaintext_has_no_tls_and_reads_no_tls_attribute_past_the_version() {
        let src = Recording(MapSource::default(), Default::default());
        let r = capture_http(&src, default_policy(), 1);
        assert_eq!(r.tls, None);
        assert_eq!(r.kind, RecordKind::Http);
        let tls_reads: Vec<String> = src
            .1
            .take()
            .into_iter()
            .filter(|p| p.starts_with("connection."))
            .collect();
        assert_eq!(tls_reads, ["connection.tls_version"]);
    }

    #[test]
    fn what_the_header_lists_hold_costs_no_attribute_read() {
        let src = Recording(
            MapSource::default()
                .header(":method", "get")
                .header(":scheme", "https")
                .header(":authority", "Shop.Example:443")
                .header(":path", "/a/b?x=1")
                .header("user-agent", "ua/1")
                .header("x-request-id", "rid-9")
                .response_header(":status", "418"),
            Default::default(),
        );
        let r = capture_http(&src, default_policy(), 1);
        assert_eq!(r.method.as_deref(), Some("GET"));
        assert_eq!(r.scheme.as_deref(), Some("https"));
        assert_eq!(r.server_address.as_deref(), Some("shop.example"));
        assert_eq!(r.server_port, None, "443 is https's own port");
        assert_eq!(r.path.as_deref(), Some("/a/b"));
        assert_eq!(r.query.as_deref(), Some("x=1"));
        assert_eq!(r.user_agent.as_deref(), Some("ua/1"));
        assert_eq!(r.request_id.as_deref(), Some("rid-9"));
        assert_eq!(r.status, Some(418));
        let read = src.1.take();
        for attr in [
            "request.method",
            "request.scheme",
            "request.host",
            "request.url_path",
            "request.query",
            "request.path",
            "request.useragent",
            "request.id",
            "response.code",
        ] {
            assert!(!read.iter().any(|p| p == attr), "{attr} read: {read:?}");
        }
        // What no header list holds is still read: duration, sizes, flags, peers, ...
        assert!(read.len() <= 13, "{} attribute reads: {read:?}", read.len());
    }

    #[test]
    fn sampling_decides_on_four_hostcalls_and_the_record_comes_from_the_same_view() {
        let map = MapSource::default()
            .header(":method", "post")
            .header(":path", "/users/48213?email=jo%40example.com")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .header("x-request-id", "rid-5")
            .response_header(":status", "503")
            .int("request.duration", 7_000)
            .int("response.flags", 1 << 5)
            .text("source.address", "10.0.0.9:1234");
        let src = Recording(map.clone(), Default::default());
        let view = RequestView::fetch(&src);
        let policy = RedactionPolicy::default();
        let f = view.facts(&policy);
        assert_eq!(f.trace_id.map(|t| t[0]), Some(0x4b));
        assert_eq!(f.request_id.as_deref(), Some("rid-5"));
        assert_eq!(f.method.as_deref(), Some("POST"));
        assert_eq!(f.path.as_deref(), Some("/users/48213"));
        assert_eq!(f.route.as_deref(), Some("/users/{id}"));
        assert_eq!(f.status, Some(503));
        assert_eq!(f.duration_ns, Some(7_000));
        assert_eq!(f.response_flags, 1 << 5);
        // Two header lists plus these two attributes: all a dropped request costs.
        assert_eq!(src.1.take(), ["request.duration", "response.flags"]);
        // A kept request's record: as capture_http makes it, raw values redacted.
        let rec = view.record(&policy, 9);
        assert_eq!(rec, capture_http(&map, &policy, 9));
        assert_eq!(rec.path.as_deref(), Some("/users/{id}"));
        assert!(!format!("{rec:?}").contains("jo%40example.com"));
    }

    #[test]
    fn mtls_identity_is_captured_in_otel_form() {
        let src = MapSource::default()
            .text("connection.tls_version", "TLSv1.3")
            .text("connection.requested_server_name", "shop.example")
            .text(
                "connection.uri_san_peer_certificate",
                "spiffe://cluster.local/ns/shop/sa/frontend",
            )
            .text("connection.sha256_peer_certificate_digest", "ab01ff");
        let r = capture_http(&src, default_policy(), 1);
        let t = r.tls.unwrap();
        assert_eq!(t.version.as_deref(), Some("1.3"));
        assert_eq!(t.server_name.as_deref(), Some("shop.example"));
        assert_eq!(
            t.peer_principal.as_deref(),
            Some("spiffe://cluster.local/ns/shop/sa/frontend")
        );
        assert_eq!(t.peer_cert_sha256.as_deref(), Some("AB01FF"));
        // An odd version string is kept as Envoy gave it.
        let odd = MapSource::default().text("connection.tls_version", "SSLv3");
        let r = capture_http(&odd, default_policy(), 1);
        assert_eq!(r.tls.unwrap().version.as_deref(), Some("SSLv3"));
    }

    #[test]
    fn a_secret_in_the_sni_is_redacted() {
        let src = MapSource::default()
            .text("connection.tls_version", "TLSv1.2")
            .text("connection.requested_server_name", "jo.doe@example.com");
        let r = capture_http(&src, default_policy(), 1);
        let sni = r.tls.unwrap().server_name.unwrap();
        assert!(!sni.contains("jo.doe"), "{sni}");
        assert_eq!(r.redactions.total(), 1);
    }

    #[test]
    fn a_connection_record_has_peers_bytes_duration_and_identity() {
        let src = MapSource::default()
            .text("source.address", "[::ffff:10.9.8.7]:41000")
            .text("destination.address", "10.0.0.1:9000")
            .text("upstream.address", "10.0.0.2:5432")
            .text("xds.cluster_name", "db")
            .int("xds.listener_direction", 1)
            .int("response.flags", 1 << 5)
            .text("connection.tls_version", "TLSv1.3")
            .text(
                "connection.uri_san_peer_certificate",
                "spiffe://cluster.local/ns/shop/sa/api",
            )
            // HTTP attributes, were any present, are not a connection's.
            .text("request.method", "GET");
        let counts = ConnectionCounts {
            start_ns: 1_000,
            bytes_received: 300,
            bytes_sent: 4_000,
        };
        let r = capture_tcp(&src, default_policy(), counts, 51_000);
        assert_eq!(r.kind, RecordKind::Tcp);
        assert_eq!(r.start_time_ns, 1_000);
        assert_eq!(r.duration_ns, Some(50_000));
        assert_eq!(r.bytes_received, Some(300));
        assert_eq!(r.bytes_sent, Some(4_000));
        assert_eq!(r.client_address.as_deref(), Some("10.9.8.0"));
        assert_eq!(r.client_port, Some(41000));
        assert_eq!(r.downstream_local_address.as_deref(), Some("10.0.0.1:9000"));
        assert_eq!(r.upstream_host.as_deref(), Some("10.0.0.2:5432"));
        assert_eq!(r.upstream_cluster.as_deref(), Some("db"));
        assert_eq!(r.direction, Some("inbound"));
        assert_eq!(r.response_flags.as_deref(), Some("UF"));
        assert_eq!(r.method, None);
        assert_eq!(
            r.tls.as_ref().and_then(|t| t.peer_principal.as_deref()),
            Some("spiffe://cluster.local/ns/shop/sa/api")
        );
        let mut keys = Vec::new();
        let mut buf = Vec::new();
        crate::otlp::encode_log_record(&mut buf, &r);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["eventName"], "meshlog.tcp.connection");
        for a in v["attributes"].as_array().unwrap() {
            keys.push(a["key"].as_str().unwrap().to_owned());
        }
        for k in [
            "network.transport",
            "meshlog.connection.bytes_received",
            "meshlog.connection.bytes_sent",
            "tls.protocol.name",
            "tls.protocol.version",
            "meshlog.peer.principal",
            "meshlog.duration_ns",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
    }

    #[test]
    fn redacts_every_field_as_it_is_read() {
        let src = MapSource::default()
            .text(
                "request.url_path",
                "/users/48213/cards/4111%201111%201111%201111",
            )
            .text("request.query", "email=jo%40example.com&page=2")
            .text(
                "request.useragent",
                "bot token=ghp_bciOx9gy1CJdObOIRpFqaDZeV7G5IfQHeVVE",
            )
            .text("request.id", "rid-7")
            .text("source.address", "203.0.113.77:4444")
            .header(
                ":path",
                "/users/48213/cards/4111%201111%201111%201111?email=jo%40example.com&page=2",
            )
            .header("authorization", "Bearer abc.def.ghi")
            .header("x-forwarded-for", "198.51.100.23")
            .header("accept", "text/html")
            .header("accept", "application/json")
            .header("x-not-allowlisted", "secret")
            .response_header("set-cookie", "sid=s3cr3t; Path=/")
            .response_header("content-type", "text/plain");
        let r = capture_http(&src, default_policy(), 1);
        let text = format!("{r:?}");
        for secret in [
            "4111",
            "jo%40example.com",
            "jo@example",
            "ghp_bci",
            "203.0.113.77",
            "198.51.100.23",
            "abc.def",
            "s3cr3t",
            "48213",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(r.query.as_deref(), Some("email=[REDACTED:email]&page=2"));
        assert_eq!(r.route.as_deref(), Some("/users/{id}/cards/{card}"));
        let h: Vec<(&str, &str)> = r
            .request_headers
            .iter()
            .map(|(n, v)| (n.as_ref(), v.as_ref()))
            .collect();
        assert!(
            h.contains(&("authorization", "Bearer [REDACTED:bearer]")),
            "{h:?}"
        );
        assert!(
            h.contains(&("accept", "text/html,application/json")),
            "{h:?}"
        );
        assert!(
            !h.iter()
                .any(|(n, _)| n.starts_with(':') || *n == "x-not-allowlisted"),
            "{h:?}"
        );
        assert!(
            r.response_headers
                .iter()
                .any(|(n, v)| n == "content-type" && v == "text/plain")
        );
        assert!(r.redactions.total() >= 6, "{:?}", r.redactions);
    }

    #[test]
    fn normalizes_method_authority_and_mapped_addresses() {
        let src = MapSource::default()
            .text("request.method", "get")
            .text("request.scheme", "https")
            .text("request.host", "Shop.Example:443")
            .text("source.address", "[::ffff:198.51.100.23]:5555")
            .header("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1");
        let r = capture_http(&src, default_policy(), 1);
        assert_eq!(r.method.as_deref(), Some("GET"));
        assert_eq!(r.server_address.as_deref(), Some("shop.example"));
        assert_eq!(r.server_port, None, "443 is implied by https");
        let by_ip = MapSource::default().text("request.host", "10.0.0.7:8443");
        let r2 = capture_http(&by_ip, default_policy(), 1);
        assert_eq!(
            r2.server_address.as_deref(),
            Some("10.0.0.7"),
            "the server's IP is kept"
        );
        assert!(r2.redactions.is_empty());
        // Unmapped first, then truncated as an IPv4 address.
        assert_eq!(r.client_address.as_deref(), Some("198.51.100.0"));
        assert_eq!(r.trace_id.map(|t| t[0]), Some(0x80));
        let other = MapSource::default()
            .text("request.scheme", "http")
            .text("request.host", "shop:8080");
        assert_eq!(
            capture_http(&other, default_policy(), 1).server_port,
            Some(8080)
        );
    }

    #[test]
    fn falls_back_to_full_path_and_tolerates_missing_attributes() {
        let src = MapSource::default().text("request.path", "/p?q=1");
        let r = capture_http(&src, default_policy(), 5);
        assert_eq!(r.path.as_deref(), Some("/p"));
        assert_eq!(r.query.as_deref(), Some("q=1"));
        assert_eq!(r.start_time_ns, 5);
        assert_eq!(r.status, None);
    }

    fn grpc_call(path: &str) -> MapSource {
        MapSource::default()
            .header(":method", "POST")
            .header(":path", path)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .response_header(":status", "200")
            .response_header("content-type", "application/grpc")
            .int("request.size", 12)
            .int("response.size", 2_000)
            .int("request.duration", 3_000_000)
    }

    #[test]
    fn a_grpc_status_in_trailers_names_the_call_and_sets_the_severity() {
        let src = grpc_call("/shop.v1.Orders/Get")
            .response_trailer("grpc-status", "7")
            .response_trailer("grpc-message", "denied for jo.doe@example.com")
            .response_trailer("x-backend-secret", "s3cr3t");
        let r = capture_http(&src, default_policy(), 1);
        let rpc = r.rpc.clone().unwrap();
        assert_eq!(rpc.system, "grpc");
        assert_eq!(rpc.service.as_deref(), Some("shop.v1.Orders"));
        assert_eq!(rpc.method.as_deref(), Some("Get"));
        assert_eq!(rpc.grpc_status, Some(7));
        assert_eq!(r.status, Some(200));
        assert_eq!(
            r.severity(),
            Severity::Warn,
            "PERMISSION_DENIED answers HTTP 200"
        );
        assert_eq!(r.request_body_bytes, Some(12));
        assert_eq!(r.response_body_bytes, Some(2_000));
        let t: Vec<(&str, &str)> = r
            .response_trailers
            .iter()
            .map(|(n, v)| (n.as_ref(), v.as_ref()))
            .collect();
        assert_eq!(
            t,
            [
                ("grpc-status", "7"),
                ("grpc-message", "denied for [REDACTED:email]")
            ],
            "default deny: only the gRPC status and message, redacted like headers"
        );
        assert_eq!(r.redactions.total(), 1);
        // In OTLP: the rpc.* attributes and the trailers under their own prefix.
        let mut buf = Vec::new();
        crate::otlp::encode_log_record(&mut buf, &r);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["severityText"], "WARN");
        let attr = |k: &str| {
            v["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == k)
                .map(|a| a["value"].clone())
        };
        assert_eq!(attr("rpc.system").unwrap()["stringValue"], "grpc");
        assert_eq!(
            attr("rpc.service").unwrap()["stringValue"],
            "shop.v1.Orders"
        );
        assert_eq!(attr("rpc.method").unwrap()["stringValue"], "Get");
        assert_eq!(attr("rpc.grpc.status_code").unwrap()["intValue"], "7");
        assert_eq!(
            attr("meshlog.response.trailer.grpc-status").unwrap()["stringValue"],
            "7"
        );
        assert!(attr("meshlog.response.trailer.x-backend-secret").is_none());
    }

    #[test]
    fn a_trailers_only_answer_has_its_status_in_the_headers() {
        let src = grpc_call("/shop.v1.Orders/Get")
            .response_header("grpc-status", "14")
            .response_header("grpc-message", "no backend");
        let r = capture_http(&src, default_policy(), 1);
        assert_eq!(r.rpc.as_ref().and_then(|x| x.grpc_status), Some(14));
        assert_eq!(
            r.severity(),
            Severity::Error,
            "UNAVAILABLE is a server error"
        );
        assert!(r.response_trailers.is_empty());
        // A status in the trailers wins over one in the headers.
        let both = grpc_call("/a.B/C")
            .response_header("grpc-status", "0")
            .response_trailer("grpc-status", "13");
        let r = capture_http(&both, default_policy(), 1);
        assert_eq!(r.rpc.and_then(|x| x.grpc_status), Some(13));
        // OK is INFO; no status at all (nothing sent) leaves it absent.
        let ok = grpc_call("/a.B/C").response_trailer("grpc-status", "0");
        assert_eq!(
            capture_http(&ok, default_policy(), 1).severity(),
            Severity::Info
        );
        let call = grpc_call("/a.B/C");
        let none = capture_http(&call, default_policy(), 1);
        assert_eq!(none.rpc.and_then(|x| x.grpc_status), None);
    }

    #[test]
    fn a_cancelled_call_is_at_least_a_warning_a_websocket_is_not() {
        // The client reset the stream mid-answer: Envoy's DR flag, status 200, no grpc-status.
        let src = grpc_call("/a.B/Stream").int("response.flags", 1 << 28);
        let r = capture_http(&src, default_policy(), 1);
        assert_eq!(r.response_flags.as_deref(), Some("DR"));
        assert_eq!(r.rpc.as_ref().and_then(|x| x.grpc_status), None);
        assert_eq!(r.severity(), Severity::Warn);
        // Plain HTTP abandoned (DC) alike.
        let http = MapSource::default()
            .response_header(":status", "200")
            .int("response.flags", 1 << 14);
        assert_eq!(
            capture_http(&http, default_policy(), 1).severity(),
            Severity::Warn
        );
        // A WebSocket always ends with a connection closing: its 101 stays INFO.
        let ws = MapSource::default()
            .response_header(":status", "101")
            .int("response.flags", 1 << 14)
            .int("request.size", 300)
            .int("response.size", 4_000);
        let r = capture_http(&ws, default_policy(), 1);
        assert_eq!(r.severity(), Severity::Info);
        assert_eq!(
            (r.request_body_bytes, r.response_body_bytes),
            (Some(300), Some(4_000))
        );
    }

    #[test]
    fn grpc_web_and_connect_are_rpcs_plain_http_reads_no_trailers() {
        let web = grpc_call("/a.B/C")
            .header("content-type", "application/grpc-web-text")
            .response_trailer("grpc-status", "16");
        // The first content-type counts: here application/grpc from grpc_call.
        let r = capture_http(&web, default_policy(), 1);
        assert_eq!(r.rpc.map(|x| x.system), Some("grpc"));
        let web = MapSource::default()
            .header(":path", "/a.B/C")
            .header("content-type", "application/grpc-web+proto")
            .response_header("grpc-status", "16");
        let r = capture_http(&web, default_policy(), 1);
        assert_eq!(r.rpc.as_ref().map(|x| x.system), Some("grpc"));
        assert_eq!(r.rpc.as_ref().and_then(|x| x.grpc_status), Some(16));
        assert_eq!(r.severity(), Severity::Warn);
        // Connect: named, no grpc-status (it is in the body), no trailer read.
        let connect = Recording(
            MapSource::default()
                .header(":path", "/a.B/C")
                .header("content-type", "application/connect+proto")
                .response_trailer("grpc-status", "2"),
            Default::default(),
        );
        let r = capture_http(&connect, default_policy(), 1);
        let rpc = r.rpc.unwrap();
        assert_eq!(
            (rpc.system, rpc.method.as_deref()),
            ("connect_rpc", Some("C"))
        );
        assert_eq!(rpc.grpc_status, None);
        assert!(!connect.1.take().iter().any(|p| p.starts_with("trailers.")));
        // Plain HTTP: no rpc, and not one trailer hostcall.
        let plain = Recording(
            MapSource::default()
                .header(":path", "/a.B/C")
                .header("content-type", "application/json")
                .response_trailer("grpc-status", "2"),
            Default::default(),
        );
        let r = capture_http(&plain, default_policy(), 1);
        assert_eq!(r.rpc, None);
        assert!(r.response_trailers.is_empty());
        assert!(!plain.1.take().iter().any(|p| p.starts_with("trailers.")));
    }

    #[test]
    fn sampling_sees_the_grpc_status_for_one_more_hostcall() {
        let map = grpc_call("/a.B/C")
            .header("x-request-id", "rid-1")
            .response_trailer("grpc-status", "16")
            .request_trailer("grpc-status", "0");
        let src = Recording(map.clone(), Default::default());
        let view = RequestView::fetch(&src);
        let f = view.facts(default_policy());
        assert_eq!(f.grpc_status, Some(16));
        assert_eq!(f.as_request_facts(None).grpc_status, Some(16));
        assert_eq!(
            src.1.take(),
            ["trailers.response", "request.duration", "response.flags"]
        );
        let rec = view.record(default_policy(), 9);
        assert_eq!(rec, capture_http(&map, default_policy(), 9));
        assert_eq!(
            rec.request_trailers,
            [(Cow::Borrowed("grpc-status"), Cow::Borrowed("0"))]
        );
    }

    #[test]
    fn rpc_names_pass_the_detectors() {
        let src = grpc_call("/jo.doe@example.com/Get");
        let r = capture_http(&src, default_policy(), 1);
        let svc = r.rpc.unwrap().service.unwrap();
        assert!(!svc.contains("jo.doe"), "{svc}");
        // A path that is not /Service/Method names nothing, but is still gRPC.
        let health = grpc_call("/health");
        let odd = capture_http(&health, default_policy(), 1);
        let rpc = odd.rpc.unwrap();
        assert_eq!((rpc.service, rpc.method), (None, None));
    }

    /// A host that copies its header lists out (the Wasm module's hostcalls), over a map.
    struct Copied(MapSource);
    impl AttributeSource for Copied {
        fn property(&self, path: &[&str]) -> Option<Cow<'_, [u8]>> {
            self.0.property(path)
        }
        fn request_headers(&self) -> Vec<Header<'_>> {
            owned_headers(self.0.headers.clone())
        }
        fn response_headers(&self) -> Vec<Header<'_>> {
            owned_headers(self.0.response.clone())
        }
        fn request_trailers(&self) -> Vec<Header<'_>> {
            owned_headers(self.0.request_trailers.clone())
        }
        fn response_trailers(&self) -> Vec<Header<'_>> {
            owned_headers(self.0.response_trailers.clone())
        }
    }

    /// The record borrows what the host lends and owns what it copied: either way, the same
    /// record, with or without sampling's look at the path first, under either policy.
    #[test]
    fn lent_and_copied_header_lists_give_the_same_record() {
        let strict = RedactionPolicy::from_json(
            br#"{"custom": [{"name": "orders_word", "pattern": "orders"}],
                 "headers": {"request": ["x-tenant", "accept"]}}"#,
        )
        .unwrap();
        let requests = [
            MapSource::default()
                .header(":authority", "Shop.Example.com:443")
                .header(":scheme", "https")
                .header(":method", "get")
                .header(":path", "/api/orders/12345?user=jo%40example.com&page=2")
                .header("user-agent", "curl/8.5 jo@example.com")
                .header("x-request-id", "0d7f4a4e-8c1d-4f51-9a35-2b1f5d2f0b7e")
                .header("x-tenant", "acme")
                .header("x-tenant", "card 4111 1111 1111 1111")
                .header("accept", b"text/\xff")
                .response_header(":status", "200")
                .response_header("content-type", "text/plain")
                .text("source.address", "10.1.2.3:5555")
                .text("request.protocol", "HTTP/1.1"),
            MapSource::default()
                .header(":authority", "127.0.0.1:10000")
                .header(":method", "POST")
                .header(":path", "/users/jo@example.com")
                .header("x-request-id", "")
                .text("request.protocol", "HTTP/2")
                .int("response.flags", 1 << 5),
            MapSource::default()
                .header(":path", "/?")
                .header(":method", "DELETE")
                .text("request.protocol", "QUIC/9"),
            grpc_call("/shop.v1.Orders/Get").response_trailer("grpc-status", "0"),
            MapSource::default()
                .text("request.url_path", "/a/b")
                .text("request.query", "token=abc")
                .text("request.host", "h"),
        ];
        for policy in [default_policy(), &strict] {
            for src in &requests {
                let lent = capture_http(src, policy, 7);
                let copied = Copied(src.clone());
                assert_eq!(lent, capture_http(&copied, policy, 7));
                // Sampling redacts the path first; the record takes it from there.
                let view = RequestView::fetch(&copied);
                let _ = view.facts(policy);
                assert_eq!(lent, view.record(policy, 7));
            }
        }
        let r = capture_http(&requests[0], &strict, 7);
        assert_eq!(r.server_address.as_deref(), Some("shop.example.com"));
        assert_eq!(r.method.as_deref(), Some("GET"));
        assert_eq!(r.route.as_deref(), Some("/api/{orders_word}/{id}"));
        assert_eq!(r.query.as_deref(), Some("user=[REDACTED:email]&page=2"));
        assert_eq!(r.protocol_version.as_deref(), Some("1.1"));
        assert_eq!(
            r.request_headers,
            [
                (
                    Cow::Borrowed("x-tenant"),
                    Cow::Borrowed("acme,card [REDACTED:card]")
                ),
                (Cow::Borrowed("accept"), Cow::Borrowed("text/\u{fffd}"))
            ]
        );
        let r = capture_http(&requests[2], &strict, 7);
        assert_eq!(r.protocol_version.as_deref(), Some("QUIC/9"));
        assert_eq!(r.query, None);
    }

    /// `keep` lends a slice of a lent value, moves a whole owned one, copies anything else.
    #[test]
    fn keep_is_exact_whatever_the_redaction_returns() {
        let lent = Cow::Borrowed("  abc  ");
        let k = keep(lent.clone(), |v| Some(Cow::Borrowed(v.trim()))).unwrap();
        assert!(matches!(k, Cow::Borrowed("abc")));
        let k = keep(Cow::Owned("  abc  ".to_owned()), |v| {
            Some(Cow::Borrowed(v.trim()))
        });
        assert_eq!(k.as_deref(), Some("abc"));
        let k = keep(Cow::Owned("abc".to_owned()), |v| Some(Cow::Borrowed(v))).unwrap();
        assert!(matches!(k, Cow::Owned(ref o) if o == "abc"));
        let k = keep(lent.clone(), |_| Some(Cow::Borrowed("elsewhere"))).unwrap();
        assert!(matches!(k, Cow::Owned(ref o) if o == "elsewhere"));
        let k = keep(lent.clone(), |_| Some(Cow::Owned("new".to_owned())));
        assert_eq!(k.as_deref(), Some("new"));
        assert_eq!(keep(lent, |_| None), None);
    }
}
