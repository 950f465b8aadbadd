//! The host side of core's traits: Envoy attributes and headers through `_bytes` hostcalls, the
//! answers to our calls, randomness, time and counters.
//!
//! The SDK's string getters unwrap UTF-8 and would trap the VM on a bad header; every read here
//! returns raw bytes and core decodes them lossily.

use meshlog_core::capture::owned_headers;
pub use meshlog_core::counters::Counter;
use meshlog_core::redact::{Kind, Summary};
use meshlog_core::{AttributeSource, Header};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, MetricType};
use std::borrow::Cow;
use std::time::UNIX_EPOCH;

/// Attributes of the stream whose callback is running.
pub struct EnvoyAttributes;

impl AttributeSource for EnvoyAttributes {
    fn property(&self, path: &[&str]) -> Option<Cow<'_, [u8]>> {
        hostcalls::get_property(path.to_vec())
            .ok()
            .flatten()
            .map(Cow::Owned)
    }

    fn request_headers(&self) -> Vec<Header<'_>> {
        owned_headers(hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default())
    }

    fn response_headers(&self) -> Vec<Header<'_>> {
        owned_headers(hostcalls::get_map_bytes(MapType::HttpResponseHeaders).unwrap_or_default())
    }

    /// Core asks only for gRPC requests. Envoy answers none in the access logger (no request
    /// trailers there) and when the request had none.
    fn request_trailers(&self) -> Vec<Header<'_>> {
        owned_headers(hostcalls::get_map_bytes(MapType::HttpRequestTrailers).unwrap_or_default())
    }

    fn response_trailers(&self) -> Vec<Header<'_>> {
        owned_headers(hostcalls::get_map_bytes(MapType::HttpResponseTrailers).unwrap_or_default())
    }
}

/// One Envoy counter per redaction kind: `wasmcustom.meshlog.redacted.<kind>`.
#[derive(Debug, Clone)]
pub struct RedactionCounters(Vec<Option<u32>>);

impl RedactionCounters {
    /// Defines a counter per [`Kind`].
    pub fn define() -> Self {
        RedactionCounters(
            Kind::ALL
                .iter()
                .map(|k| {
                    let name = format!("meshlog.redacted.{}", k.name());
                    hostcalls::define_metric(MetricType::Counter, &name).ok()
                })
                .collect(),
        )
    }

    /// Adds a record's redactions.
    pub fn add(&self, summary: &Summary) {
        for (kind, n) in summary.iter() {
            if let Some(Some(id)) = self.0.get(kind.index()) {
                let _ = hostcalls::increment_metric(*id, i64::from(n));
            }
        }
    }
}

/// A header of the answer to a call (`:status`, `retry-after`) in `on_http_call_response`.
/// The SDK's own getter unwraps the hostcall's result; this one cannot trap.
pub fn call_response_header(name: &str) -> Option<Vec<u8>> {
    hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name)
        .ok()
        .flatten()
}

/// Up to `max` bytes of the answer's body, for a log line.
pub fn call_response_body(max: usize) -> Vec<u8> {
    hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, max)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// A random draw for retry jitter (WASI `random_get`, which Envoy implements); the clock if the
/// host has none: jitter only has to differ between VMs, not be secret.
pub fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| now_ns().rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15)
}

/// Host time in unix nanoseconds; 0 if the host cannot tell (records then carry 0, not a trap).
pub fn now_ns() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Envoy counters, exported as `wasmcustom.meshlog.*` and aggregated across VMs; one id per
/// [`Counter`], by its index.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters([Option<u32>; Counter::ALL.len()]);

impl Counters {
    /// Defines the counters; a host that refuses one just leaves it unexported.
    pub fn define() -> Self {
        Counters(Counter::ALL.map(|c| hostcalls::define_metric(MetricType::Counter, c.name()).ok()))
    }

    /// Adds `by` to a counter.
    pub fn add(&self, which: Counter, by: u64) {
        if let (Some(Some(id)), Ok(by)) = (self.0.get(which as usize), i64::try_from(by))
            && by > 0
        {
            let _ = hostcalls::increment_metric(*id, by);
        }
    }
}
