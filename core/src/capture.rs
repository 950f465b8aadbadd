//! Building an [`AccessRecord`] from what the proxy knows about a finished request.
//!
//! The proxy is abstracted as an [`AttributeSource`]: the Wasm filter implements it with
//! `get_property` / `get_map_value_bytes` hostcalls, tests implement it with a map. Values are raw
//! bytes all the way in; invalid UTF-8 becomes U+FFFD here, so no header can trap the VM.

use crate::envoy::{
    int_attr, protocol_version, response_flags, split_authority, split_socket_address,
};
use crate::record::AccessRecord;
use crate::trace::parse_traceparent;

/// Read access to the proxy's view of the current request.
pub trait AttributeSource {
    /// The Envoy attribute at `path` (e.g. `["request", "method"]`), as raw bytes.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// The first value of request header `name` (lower case), as raw bytes.
    fn request_header(&self, name: &str) -> Option<Vec<u8>>;
}

fn text(src: &impl AttributeSource, path: &[&str]) -> Option<String> {
    let raw = src.property(path)?;
    if raw.is_empty() {
        return None;
    }
    Some(match String::from_utf8(raw) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

fn int(src: &impl AttributeSource, path: &[&str]) -> Option<i64> {
    int_attr(&src.property(path)?)
}

fn unsigned(src: &impl AttributeSource, path: &[&str]) -> Option<u64> {
    int(src, path).and_then(|v| u64::try_from(v).ok())
}

/// Captures one HTTP request. `now_ns` is the log time (unix nanoseconds), passed in because
/// core reads no clock.
pub fn capture_http(src: &impl AttributeSource, now_ns: u64) -> AccessRecord {
    let (server_address, server_port) = match text(src, &["request", "host"]) {
        Some(a) => {
            let (h, p) = split_authority(&a);
            (Some(h), p)
        }
        None => (None, None),
    };
    let (path, query) = match text(src, &["request", "url_path"]) {
        Some(p) => (Some(p), text(src, &["request", "query"])),
        None => match text(src, &["request", "path"]) {
            Some(full) => match full.split_once('?') {
                Some((p, q)) => (
                    Some(p.to_owned()),
                    Some(q.to_owned()).filter(|q| !q.is_empty()),
                ),
                None => (Some(full), None),
            },
            None => (None, None),
        },
    };
    let (client_address, client_port) = match text(src, &["source", "address"]) {
        Some(a) => {
            let (ip, port) = split_socket_address(&a);
            (Some(ip.to_owned()), port)
        }
        None => (None, None),
    };
    let trace = src
        .request_header("traceparent")
        .and_then(|v| parse_traceparent(&v));
    AccessRecord {
        start_time_ns: unsigned(src, &["request", "time"]).unwrap_or(now_ns),
        observed_time_ns: now_ns,
        duration_ns: unsigned(src, &["request", "duration"]),
        method: text(src, &["request", "method"]),
        scheme: text(src, &["request", "scheme"]),
        server_address,
        server_port,
        path,
        query,
        protocol_version: text(src, &["request", "protocol"])
            .map(|p| protocol_version(&p).to_owned()),
        status: int(src, &["response", "code"]).filter(|c| *c > 0),
        request_body_bytes: unsigned(src, &["request", "size"]),
        response_body_bytes: unsigned(src, &["response", "size"]),
        user_agent: text(src, &["request", "useragent"]),
        request_id: text(src, &["request", "id"]),
        response_flags: unsigned(src, &["response", "flags"])
            .filter(|m| *m != 0)
            .map(response_flags),
        response_code_details: text(src, &["response", "code_details"]),
        upstream_cluster: text(src, &["xds", "cluster_name"]),
        upstream_host: text(src, &["upstream", "address"]),
        client_address,
        client_port,
        downstream_local_address: text(src, &["destination", "address"]),
        trace_id: trace.map(|t| t.0),
        span_id: trace.map(|t| t.1),
    }
}

/// An [`AttributeSource`] over fixed maps, for tests and benchmarks.
#[derive(Debug, Default, Clone)]
pub struct MapSource {
    /// Attributes keyed by dotted path (`request.method`).
    pub properties: std::collections::HashMap<String, Vec<u8>>,
    /// Request headers keyed by lower-case name.
    pub headers: std::collections::HashMap<String, Vec<u8>>,
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
    /// Sets a request header.
    pub fn header(mut self, name: &str, v: impl AsRef<[u8]>) -> Self {
        self.headers.insert(name.to_owned(), v.as_ref().to_vec());
        self
    }
}

impl AttributeSource for MapSource {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.properties.get(&path.join(".")).cloned()
    }
    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        self.headers.get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let r = capture_http(&src, 9_000);
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
        assert_eq!(r.client_address.as_deref(), Some("10.1.2.3"));
        assert_eq!(r.client_port, Some(5555));
        assert_eq!(r.trace_id.map(|t| t[0]), Some(0x4b));
    }

    #[test]
    fn falls_back_to_full_path_and_tolerates_missing_attributes() {
        let src = MapSource::default().text("request.path", "/p?q=1");
        let r = capture_http(&src, 5);
        assert_eq!(r.path.as_deref(), Some("/p"));
        assert_eq!(r.query.as_deref(), Some("q=1"));
        assert_eq!(r.start_time_ns, 5);
        assert_eq!(r.status, None);
    }
}
