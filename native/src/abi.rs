//! Our own bindings to the part of Envoy's dynamic-module C ABI an access logger uses
//! (`source/extensions/dynamic_modules/abi/abi.h` and the access logger's `abi_impl.cc` in
//! Envoy 1.40). Only what this crate calls is declared; each declaration mirrors the C prototype
//! exactly. The callbacks are resolved from the Envoy binary when it `dlopen`s the module, so a
//! missing one fails the load, not a request.
//!
//! Pointers Envoy hands out (`EnvoyBuffer`) point into Envoy's memory and are valid only during
//! the hook that obtained them: [`LogView`] copies what it keeps, or lends it no longer than the
//! view is borrowed (the header lists).

#![allow(unsafe_code)]

use std::borrow::Cow;
use std::ffi::c_void;
use std::os::raw::c_char;

/// The ABI version string Envoy 1.40 expects (`ENVOY_DYNAMIC_MODULES_ABI_VERSION`; 1.40 logs
/// "Dynamic module ABI version v0.2.0 matched."). Envoy only warns on a mismatch; the real gate
/// is symbol resolution and, silently, struct layouts: build for the Envoy version you run
/// (docs/native.md).
pub const ABI_VERSION: &[u8] = b"v0.2.0\0";

/// `envoy_dynamic_module_type_envoy_buffer`: bytes owned by Envoy.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyBuffer {
    /// Start; null when absent.
    pub ptr: *const c_char,
    /// Length in bytes.
    pub length: usize,
}

/// `length` bytes at `ptr` as a slice of lifetime `'a` (empty for a null pointer).
///
/// # Safety
/// Envoy guarantees `length` readable bytes at `ptr` for the current hook; `'a` must not
/// outlive it.
unsafe fn lent<'a>(ptr: *const c_char, length: usize) -> &'a [u8] {
    if ptr.is_null() || length == 0 {
        return &[];
    }
    // SAFETY: as the function's contract says.
    unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), length) }
}

impl EnvoyBuffer {
    /// An empty buffer for Envoy to fill.
    pub const EMPTY: EnvoyBuffer = EnvoyBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };

    /// The bytes, copied. Empty for a null pointer.
    pub fn to_vec(self) -> Vec<u8> {
        if self.ptr.is_null() || self.length == 0 {
            return Vec::new();
        }
        // SAFETY: Envoy guarantees `length` readable bytes at `ptr` for the current hook.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.length) }.to_vec()
    }
}

/// `envoy_dynamic_module_type_module_buffer`: bytes owned by the module, lent to Envoy.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleBuffer {
    /// Start.
    pub ptr: *const c_char,
    /// Length in bytes.
    pub length: usize,
}

impl ModuleBuffer {
    /// Lends `s` for the duration of one call.
    pub fn of(s: &[u8]) -> Self {
        ModuleBuffer {
            ptr: s.as_ptr().cast(),
            length: s.len(),
        }
    }
}

/// `envoy_dynamic_module_type_envoy_http_header`: one header, both halves owned by Envoy.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyHttpHeader {
    key_ptr: *const c_char,
    key_length: usize,
    value_ptr: *const c_char,
    value_length: usize,
}

/// `envoy_dynamic_module_type_http_header_type`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub enum HeaderType {
    /// Request headers.
    RequestHeader = 0,
    /// Request trailers (an access logger has none).
    RequestTrailer = 1,
    /// Response headers.
    ResponseHeader = 2,
    /// Response trailers.
    ResponseTrailer = 3,
}

/// `envoy_dynamic_module_type_timing_info`: nanoseconds; -1 for a time that did not happen.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TimingInfo {
    /// Request start, unix ns.
    pub start_time_unix_ns: i64,
    /// From start to the request's completion.
    pub request_complete_duration_ns: i64,
    first_upstream_tx_byte_sent_ns: i64,
    last_upstream_tx_byte_sent_ns: i64,
    first_upstream_rx_byte_received_ns: i64,
    last_upstream_rx_byte_received_ns: i64,
    first_downstream_tx_byte_sent_ns: i64,
    last_downstream_tx_byte_sent_ns: i64,
}

/// `envoy_dynamic_module_type_bytes_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesInfo {
    /// Body bytes received from downstream (Envoy's `request.size`).
    pub bytes_received: u64,
    /// Body bytes sent downstream (`response.size`).
    pub bytes_sent: u64,
    wire_bytes_received: u64,
    wire_bytes_sent: u64,
}

/// `envoy_dynamic_module_type_log_level`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(dead_code)]
pub enum LogLevel {
    /// trace
    Trace = 0,
    /// debug
    Debug = 1,
    /// info
    Info = 2,
    /// warning
    Warn = 3,
    /// error
    Error = 4,
}

unsafe extern "C" {
    fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer);
    fn envoy_dynamic_module_callback_log_enabled(level: LogLevel) -> bool;

    fn envoy_dynamic_module_callback_access_logger_config_define_counter(
        config_envoy_ptr: *mut c_void,
        name: ModuleBuffer,
        counter_id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_access_logger_increment_counter(
        config_envoy_ptr: *mut c_void,
        id: usize,
        value: u64,
    ) -> u32;

    fn envoy_dynamic_module_callback_access_logger_get_headers_size(
        logger_envoy_ptr: *mut c_void,
        header_type: HeaderType,
    ) -> usize;
    fn envoy_dynamic_module_callback_access_logger_get_headers(
        logger_envoy_ptr: *mut c_void,
        header_type: HeaderType,
        result_headers: *mut EnvoyHttpHeader,
    ) -> bool;
    fn envoy_dynamic_module_callback_access_logger_get_response_code(
        logger_envoy_ptr: *mut c_void,
    ) -> u32;
    fn envoy_dynamic_module_callback_access_logger_get_response_code_details(
        logger_envoy_ptr: *mut c_void,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_access_logger_get_response_flags(
        logger_envoy_ptr: *mut c_void,
    ) -> u64;
    fn envoy_dynamic_module_callback_access_logger_get_timing_info(
        logger_envoy_ptr: *mut c_void,
        timing_out: *mut TimingInfo,
    );
    fn envoy_dynamic_module_callback_access_logger_get_bytes_info(
        logger_envoy_ptr: *mut c_void,
        bytes_out: *mut BytesInfo,
    );
    fn envoy_dynamic_module_callback_access_logger_get_downstream_remote_address(
        logger_envoy_ptr: *mut c_void,
        address_out: *mut EnvoyBuffer,
        port_out: *mut u32,
    ) -> bool;
    fn envoy_dynamic_module_callback_access_logger_get_downstream_local_address(
        logger_envoy_ptr: *mut c_void,
        address_out: *mut EnvoyBuffer,
        port_out: *mut u32,
    ) -> bool;
    fn envoy_dynamic_module_callback_access_logger_get_upstream_remote_address(
        logger_envoy_ptr: *mut c_void,
        address_out: *mut EnvoyBuffer,
        port_out: *mut u32,
    ) -> bool;
    fn envoy_dynamic_module_callback_access_logger_get_upstream_cluster(
        logger_envoy_ptr: *mut c_void,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_access_logger_get_protocol(
        logger_envoy_ptr: *mut c_void,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_access_logger_get_request_id(
        logger_envoy_ptr: *mut c_void,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_access_logger_get_requested_server_name(
        logger_envoy_ptr: *mut c_void,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_access_logger_get_downstream_tls_version(
        logger_envoy_ptr: *mut c_void,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_access_logger_get_downstream_peer_cert_digest(
        logger_envoy_ptr: *mut c_void,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_access_logger_get_downstream_peer_uri_san_size(
        logger_envoy_ptr: *mut c_void,
    ) -> usize;
    fn envoy_dynamic_module_callback_access_logger_get_downstream_peer_uri_san(
        logger_envoy_ptr: *mut c_void,
        sans_out: *mut EnvoyBuffer,
    ) -> bool;
}

/// Logs `msg` to Envoy's `dynamic_modules` logger, if `level` is enabled.
pub fn log(level: LogLevel, msg: &str) {
    // SAFETY: plain calls with a buffer lent for their duration.
    unsafe {
        if envoy_dynamic_module_callback_log_enabled(level) {
            envoy_dynamic_module_callback_log(level, ModuleBuffer::of(msg.as_bytes()));
        }
    }
}

/// Envoy's access-log configuration object: where counters are defined and counted. Valid from
/// `on_access_logger_config_new` until its `config_destroy` returns; the counters behind it are
/// Envoy stats (atomic), so any thread may count while it is valid.
#[derive(Debug, Clone, Copy)]
pub struct ConfigHandle(pub *mut c_void);

// SAFETY: Envoy's counters are thread-safe; validity is managed by the owner (see `ship`).
unsafe impl Send for ConfigHandle {}
unsafe impl Sync for ConfigHandle {}

impl ConfigHandle {
    /// Defines counter `name`; `None` when Envoy refuses (stats frozen).
    pub fn define_counter(self, name: &str) -> Option<usize> {
        let mut id = 0usize;
        // SAFETY: `self.0` is Envoy's live config pointer (config_new is running).
        let r = unsafe {
            envoy_dynamic_module_callback_access_logger_config_define_counter(
                self.0,
                ModuleBuffer::of(name.as_bytes()),
                &mut id,
            )
        };
        (r == 0).then_some(id)
    }

    /// Adds `by` to counter `id`.
    pub fn add(self, id: usize, by: u64) {
        // SAFETY: callers hold the handle only while the config is alive.
        unsafe {
            envoy_dynamic_module_callback_access_logger_increment_counter(self.0, id, by);
        }
    }
}

/// The stream being logged, valid for one `on_access_logger_log` call.
#[derive(Debug, Clone, Copy)]
pub struct LogView(pub *mut c_void);

/// The buffer Envoy fills, lent for `'a`: the callers tie `'a` to a borrow of the view, which
/// is only held within the hook (the buffers live through it).
fn buffer<'a>(f: impl FnOnce(*mut EnvoyBuffer) -> bool) -> Option<&'a [u8]> {
    let mut b = EnvoyBuffer::EMPTY;
    // SAFETY: Envoy guarantees `length` readable bytes at `ptr` for the current hook.
    f(&mut b).then(|| unsafe { lent(b.ptr, b.length) })
}

impl LogView {
    /// Every header of `kind`, names as Envoy holds them (lower case), lent in place (no copy)
    /// for as long as the view is borrowed: Envoy's header map lives through the hook, and a
    /// view is only held within it (what every getter here relies on).
    pub fn headers(&self, kind: HeaderType) -> Vec<(Cow<'_, str>, Cow<'_, [u8]>)> {
        // SAFETY: the view is live; Envoy writes exactly `size` entries; the slices are read
        // only while `self` is borrowed, within the hook.
        unsafe {
            let n = envoy_dynamic_module_callback_access_logger_get_headers_size(self.0, kind);
            if n == 0 {
                return Vec::new();
            }
            let mut raw = vec![
                EnvoyHttpHeader {
                    key_ptr: std::ptr::null(),
                    key_length: 0,
                    value_ptr: std::ptr::null(),
                    value_length: 0,
                };
                n
            ];
            if !envoy_dynamic_module_callback_access_logger_get_headers(
                self.0,
                kind,
                raw.as_mut_ptr(),
            ) {
                return Vec::new();
            }
            raw.iter()
                .map(|h| {
                    let k = lent(h.key_ptr, h.key_length);
                    let v = lent(h.value_ptr, h.value_length);
                    // A valid name (always, from Envoy) is lent as is, checked by
                    // `from_utf8`'s fast path; anything else is decoded lossily, as core
                    // decodes values.
                    let name = match std::str::from_utf8(k) {
                        Ok(n) => Cow::Borrowed(n),
                        Err(_) => String::from_utf8_lossy(k),
                    };
                    (name, Cow::Borrowed(v))
                })
                .collect()
        }
    }

    /// HTTP status; 0 when none was sent.
    pub fn response_code(self) -> u32 {
        // SAFETY: the view is live.
        unsafe { envoy_dynamic_module_callback_access_logger_get_response_code(self.0) }
    }

    /// `%RESPONSE_CODE_DETAILS%`.
    pub fn response_code_details(&self) -> Option<&[u8]> {
        // SAFETY: the view is live; Envoy fills the buffer.
        buffer(|b| unsafe {
            envoy_dynamic_module_callback_access_logger_get_response_code_details(self.0, b)
        })
    }

    /// Envoy's legacy response-flag bitmask (what the Wasm host serves as `response.flags`).
    pub fn response_flags(self) -> u64 {
        // SAFETY: the view is live.
        unsafe { envoy_dynamic_module_callback_access_logger_get_response_flags(self.0) }
    }

    /// Start time and durations.
    pub fn timing(self) -> TimingInfo {
        let mut t = TimingInfo {
            start_time_unix_ns: 0,
            request_complete_duration_ns: -1,
            first_upstream_tx_byte_sent_ns: -1,
            last_upstream_tx_byte_sent_ns: -1,
            first_upstream_rx_byte_received_ns: -1,
            last_upstream_rx_byte_received_ns: -1,
            first_downstream_tx_byte_sent_ns: -1,
            last_downstream_tx_byte_sent_ns: -1,
        };
        // SAFETY: the view is live; Envoy fills every field.
        unsafe { envoy_dynamic_module_callback_access_logger_get_timing_info(self.0, &mut t) };
        t
    }

    /// Body byte counts.
    pub fn bytes(self) -> BytesInfo {
        let mut b = BytesInfo::default();
        // SAFETY: the view is live; Envoy fills every field.
        unsafe { envoy_dynamic_module_callback_access_logger_get_bytes_info(self.0, &mut b) };
        b
    }

    /// An address's IP text, lent: Envoy points at the address's own cached string
    /// (`Ip::addressAsString()`), which the stream info holds through the hook.
    fn address(
        &self,
        f: unsafe extern "C" fn(*mut c_void, *mut EnvoyBuffer, *mut u32) -> bool,
    ) -> Option<(&[u8], u32)> {
        let mut b = EnvoyBuffer::EMPTY;
        let mut port = 0u32;
        // SAFETY: the view is live; `f` is one of the address getters above; the bytes are
        // read only while `self` is borrowed, within the hook.
        unsafe { f(self.0, &mut b, &mut port) }.then(|| (unsafe { lent(b.ptr, b.length) }, port))
    }

    /// The downstream peer (`source.address`), IP and port.
    pub fn source(&self) -> Option<(&[u8], u32)> {
        self.address(envoy_dynamic_module_callback_access_logger_get_downstream_remote_address)
    }

    /// The address the request arrived on (`destination.address`).
    pub fn destination(&self) -> Option<(&[u8], u32)> {
        self.address(envoy_dynamic_module_callback_access_logger_get_downstream_local_address)
    }

    /// The upstream host (`upstream.address`).
    pub fn upstream(&self) -> Option<(&[u8], u32)> {
        self.address(envoy_dynamic_module_callback_access_logger_get_upstream_remote_address)
    }

    /// The upstream cluster's name (`xds.cluster_name`).
    pub fn upstream_cluster(&self) -> Option<&[u8]> {
        // SAFETY: the view is live; Envoy fills the buffer.
        buffer(|b| unsafe {
            envoy_dynamic_module_callback_access_logger_get_upstream_cluster(self.0, b)
        })
    }

    /// `HTTP/1.1`, `HTTP/2`, ...
    pub fn protocol(&self) -> Option<&[u8]> {
        // SAFETY: the view is live; Envoy fills the buffer.
        buffer(|b| unsafe { envoy_dynamic_module_callback_access_logger_get_protocol(self.0, b) })
    }

    /// The stream id (`x-request-id`).
    pub fn request_id(&self) -> Option<&[u8]> {
        // SAFETY: the view is live; Envoy fills the buffer.
        buffer(|b| unsafe { envoy_dynamic_module_callback_access_logger_get_request_id(self.0, b) })
    }

    /// SNI.
    pub fn requested_server_name(&self) -> Option<&[u8]> {
        // SAFETY: the view is live; Envoy fills the buffer.
        buffer(|b| unsafe {
            envoy_dynamic_module_callback_access_logger_get_requested_server_name(self.0, b)
        })
    }

    /// Downstream TLS version (`TLSv1.3`); none on plaintext.
    pub fn tls_version(&self) -> Option<&[u8]> {
        // SAFETY: the view is live; Envoy fills the buffer.
        buffer(|b| unsafe {
            envoy_dynamic_module_callback_access_logger_get_downstream_tls_version(self.0, b)
        })
    }

    /// SHA-256 of the peer certificate, hex.
    pub fn peer_cert_digest(&self) -> Option<&[u8]> {
        // SAFETY: the view is live; Envoy fills the buffer.
        buffer(|b| unsafe {
            envoy_dynamic_module_callback_access_logger_get_downstream_peer_cert_digest(self.0, b)
        })
    }

    /// The peer certificate's first URI SAN (a SPIFFE id in a mesh).
    pub fn peer_uri_san(self) -> Option<Vec<u8>> {
        // SAFETY: the view is live; Envoy writes exactly `n` buffers.
        unsafe {
            let n = envoy_dynamic_module_callback_access_logger_get_downstream_peer_uri_san_size(
                self.0,
            );
            if n == 0 {
                return None;
            }
            let mut out = vec![EnvoyBuffer::EMPTY; n];
            if !envoy_dynamic_module_callback_access_logger_get_downstream_peer_uri_san(
                self.0,
                out.as_mut_ptr(),
            ) {
                return None;
            }
            out.first().map(|b| b.to_vec())
        }
    }
}
