//! A proxy-wasm host for native tests of `meshlog-filter`: defines the `proxy_*` functions the
//! SDK imports, answering from a thread-local [`Host`] a test scripts and inspects (plugin
//! configuration, clock, whether `dispatch_http_call` succeeds, the answer to a call) and
//! recording what the filter did (calls dispatched, metrics, tick period, `proxy_done`).
//!
//! Buffers handed to the SDK are allocated with the global allocator as boxed slices, which the
//! SDK frees with `Vec::from_raw_parts(ptr, len, len)`.

use std::cell::RefCell;

/// `proxy_wasm::types::Status` values.
pub mod status {
    /// Ok.
    pub const OK: u32 = 0;
    /// Not found.
    pub const NOT_FOUND: u32 = 1;
    /// Bad argument (e.g. an unknown cluster for a call).
    pub const BAD_ARGUMENT: u32 = 2;
    /// Internal failure.
    pub const INTERNAL_FAILURE: u32 = 10;
}

/// One `dispatch_http_call` the host took.
#[derive(Debug, Clone)]
pub struct Call {
    /// Its token.
    pub token: u32,
    /// The cluster.
    pub cluster: String,
    /// The headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The timeout, ms.
    pub timeout_ms: u32,
}

/// The host's state.
#[derive(Debug, Default)]
pub struct Host {
    /// The plugin configuration.
    pub config: Vec<u8>,
    /// The clock, unix ns.
    pub now_ns: u64,
    /// What `proxy_http_call` answers: [`status::OK`] or a failure.
    pub dispatch_status: u32,
    /// Every call taken.
    pub calls: Vec<Call>,
    /// Calls refused (dispatch failed).
    pub refused: u32,
    /// The headers of the call response being delivered (`:status`, `retry-after`).
    pub response_headers: Vec<(String, String)>,
    /// Its body.
    pub response_body: Vec<u8>,
    /// Metrics by id: (name, value).
    pub metrics: Vec<(String, i64)>,
    /// The tick period last set, ms.
    pub tick_ms: u32,
    /// How often `proxy_done` was called.
    pub done: u32,
    /// Properties `proxy_get_property` answers, by path; any other path is not found.
    pub properties: Vec<(Vec<String>, Vec<u8>)>,
}

thread_local! {
    static HOST: RefCell<Host> = RefCell::new(Host::default());
}

/// Runs `f` on this thread's host.
pub fn with<R>(f: impl FnOnce(&mut Host) -> R) -> R {
    HOST.with(|h| f(&mut h.borrow_mut()))
}

/// Resets this thread's host.
pub fn reset() {
    with(|h| *h = Host::default());
}

/// A metric's value by name (0 if never defined).
pub fn metric(name: &str) -> i64 {
    with(|h| {
        h.metrics
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .sum()
    })
}

fn serialize_map(map: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(map.len() as u32).to_le_bytes());
    for (k, v) in map {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in map {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

fn deserialize_map(b: &[u8]) -> Vec<(String, String)> {
    let u32_at = |i: usize| -> usize {
        b.get(i..i + 4)
            .and_then(|s| s.try_into().ok())
            .map_or(0, |a| u32::from_le_bytes(a) as usize)
    };
    let n = u32_at(0);
    let mut at = 4 + n * 8;
    let mut out = Vec::new();
    for i in 0..n {
        let (kl, vl) = (u32_at(4 + i * 8), u32_at(8 + i * 8));
        let k = String::from_utf8_lossy(b.get(at..at + kl).unwrap_or_default()).into_owned();
        at += kl + 1;
        let v = String::from_utf8_lossy(b.get(at..at + vl).unwrap_or_default()).into_owned();
        at += vl + 1;
        out.push((k, v));
    }
    out
}

/// Hands `data` to the SDK as a buffer it frees.
unsafe fn give(data: &[u8], ptr: *mut *mut u8, len: *mut usize) {
    unsafe {
        if data.is_empty() {
            *ptr = std::ptr::null_mut();
            *len = 0;
            return;
        }
        let boxed: Box<[u8]> = data.to_vec().into_boxed_slice();
        *len = boxed.len();
        *ptr = Box::into_raw(boxed).cast::<u8>();
    }
}

unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

// The SDK's MapType and BufferType values used here.
const MAP_HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
const BUFFER_HTTP_CALL_RESPONSE_BODY: u32 = 4;
const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;

/// Log lines go to stderr (the test harness captures them per test): the SDK's panic hook
/// reports a panic's message only through here.
#[unsafe(no_mangle)]
extern "C" fn proxy_log(level: u32, data: *const u8, size: usize) -> u32 {
    let msg = String::from_utf8_lossy(unsafe { bytes(data, size) }).into_owned();
    eprintln!("[proxy_log {level}] {msg}");
    status::OK
}

#[unsafe(no_mangle)]
extern "C" fn proxy_get_log_level(level: *mut u32) -> u32 {
    unsafe { *level = 2 };
    status::OK
}

#[unsafe(no_mangle)]
extern "C" fn proxy_get_current_time_nanoseconds(t: *mut u64) -> u32 {
    unsafe { *t = with(|h| h.now_ns) };
    status::OK
}

#[unsafe(no_mangle)]
extern "C" fn proxy_set_tick_period_milliseconds(ms: u32) -> u32 {
    with(|h| h.tick_ms = ms);
    status::OK
}

#[unsafe(no_mangle)]
extern "C" fn proxy_get_buffer_bytes(
    kind: u32,
    start: usize,
    max: usize,
    ptr: *mut *mut u8,
    len: *mut usize,
) -> u32 {
    let data = with(|h| match kind {
        BUFFER_PLUGIN_CONFIGURATION => Some(h.config.clone()),
        BUFFER_HTTP_CALL_RESPONSE_BODY => Some(h.response_body.clone()),
        _ => None,
    });
    let Some(data) = data else {
        return status::NOT_FOUND;
    };
    let end = start.saturating_add(max).min(data.len());
    unsafe { give(data.get(start.min(end)..end).unwrap_or_default(), ptr, len) };
    status::OK
}

#[unsafe(no_mangle)]
extern "C" fn proxy_get_header_map_pairs(kind: u32, ptr: *mut *mut u8, len: *mut usize) -> u32 {
    let map = with(|h| {
        if kind == MAP_HTTP_CALL_RESPONSE_HEADERS {
            h.response_headers.clone()
        } else {
            Vec::new()
        }
    });
    unsafe { give(&serialize_map(&map), ptr, len) };
    status::OK
}

#[unsafe(no_mangle)]
extern "C" fn proxy_get_header_map_value(
    kind: u32,
    key: *const u8,
    key_len: usize,
    ptr: *mut *mut u8,
    len: *mut usize,
) -> u32 {
    let key = String::from_utf8_lossy(unsafe { bytes(key, key_len) }).into_owned();
    let v = with(|h| {
        (kind == MAP_HTTP_CALL_RESPONSE_HEADERS)
            .then(|| {
                h.response_headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&key))
                    .map(|(_, v)| v.clone())
            })
            .flatten()
    });
    match v {
        Some(v) => {
            unsafe { give(v.as_bytes(), ptr, len) };
            status::OK
        }
        None => status::NOT_FOUND,
    }
}

#[unsafe(no_mangle)]
extern "C" fn proxy_get_property(
    path: *const u8,
    path_len: usize,
    ptr: *mut *mut u8,
    len: *mut usize,
) -> u32 {
    // The SDK joins the path's segments with NULs.
    let path: Vec<String> = unsafe { bytes(path, path_len) }
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let v = with(|h| {
        h.properties
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, v)| v.clone())
    });
    match v {
        Some(v) => {
            unsafe { give(&v, ptr, len) };
            status::OK
        }
        None => status::NOT_FOUND,
    }
}

#[allow(clippy::too_many_arguments)]
#[unsafe(no_mangle)]
extern "C" fn proxy_http_call(
    upstream: *const u8,
    upstream_len: usize,
    headers: *const u8,
    headers_len: usize,
    body: *const u8,
    body_len: usize,
    _trailers: *const u8,
    _trailers_len: usize,
    timeout_ms: u32,
    token: *mut u32,
) -> u32 {
    let cluster = String::from_utf8_lossy(unsafe { bytes(upstream, upstream_len) }).into_owned();
    let headers = deserialize_map(unsafe { bytes(headers, headers_len) });
    let body = unsafe { bytes(body, body_len) }.to_vec();
    with(|h| {
        if h.dispatch_status != status::OK {
            h.refused += 1;
            return h.dispatch_status;
        }
        // Unique across the thread's lifetime: the SDK's dispatcher keeps tokens.
        let t = 1 + h.calls.len() as u32 + 1000 * h.refused;
        h.calls.push(Call {
            token: t,
            cluster,
            headers,
            body,
            timeout_ms,
        });
        unsafe { *token = t };
        status::OK
    })
}

#[unsafe(no_mangle)]
extern "C" fn proxy_define_metric(_kind: u32, name: *const u8, len: usize, id: *mut u32) -> u32 {
    let name = String::from_utf8_lossy(unsafe { bytes(name, len) }).into_owned();
    with(|h| {
        h.metrics.push((name, 0));
        unsafe { *id = (h.metrics.len() - 1) as u32 };
    });
    status::OK
}

#[unsafe(no_mangle)]
extern "C" fn proxy_increment_metric(id: u32, offset: i64) -> u32 {
    with(|h| match h.metrics.get_mut(id as usize) {
        Some(m) => {
            m.1 += offset;
            status::OK
        }
        None => status::NOT_FOUND,
    })
}

#[unsafe(no_mangle)]
extern "C" fn proxy_done() -> u32 {
    with(|h| h.done += 1);
    status::OK
}

/// Hostcalls the SDK links (its traits' default methods use them) that the filter never makes:
/// they answer `InternalFailure`. Declared without parameters: never called, only linked.
macro_rules! unsupported {
    ($($name:ident),* $(,)?) => {$(
        #[unsafe(no_mangle)]
        extern "C" fn $name() -> u32 {
            status::INTERNAL_FAILURE
        }
    )*};
}

unsupported!(
    proxy_add_header_map_value,
    proxy_call_foreign_function,
    proxy_close_stream,
    proxy_continue_stream,
    proxy_dequeue_shared_queue,
    proxy_enqueue_shared_queue,
    proxy_get_shared_data,
    proxy_get_status,
    proxy_grpc_call,
    proxy_grpc_cancel,
    proxy_grpc_close,
    proxy_grpc_stream,
    proxy_remove_header_map_value,
    proxy_replace_header_map_value,
    proxy_resolve_shared_queue,
    proxy_send_local_response,
    proxy_set_buffer_bytes,
    proxy_set_header_map_pairs,
    proxy_set_property,
    proxy_set_shared_data,
    proxy_get_metric,
    proxy_grpc_send,
    proxy_record_metric,
    proxy_register_shared_queue,
    proxy_set_effective_context,
);
