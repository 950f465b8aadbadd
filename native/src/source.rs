//! Core's [`AttributeSource`] over the access logger's typed getters: each Envoy attribute path
//! core asks for is answered by the getter that holds it, encoded as the Wasm host encodes it
//! (integers as 8 little-endian bytes, addresses as `ip:port`), so `meshlog-core` builds the same
//! record from either host.
//!
//! Not available to an access-logger module in Envoy 1.40, so answered as absent: `xds.node`
//! (the resource then comes from the configuration's `resource` and the VM id alone) and
//! `xds.listener_direction` (records carry no `meshlog.direction`). Request trailers do not
//! exist in an access logger, as in the Wasm access logger.

use crate::abi::{BytesInfo, HeaderType, LogView, TimingInfo};
use meshlog_core::{AttributeSource, Header};
use std::borrow::Cow;
use std::cell::OnceCell;

/// The request being logged. Timing and byte counts are one getter each for two attributes:
/// fetched once. Integers and addresses are written into the source's own cells and lent from
/// there, so answering them allocates nothing.
pub struct LogSource {
    view: LogView,
    timing: OnceCell<TimingInfo>,
    bytes: OnceCell<BytesInfo>,
    ints: [OnceCell<[u8; 8]>; Int::COUNT],
    addresses: [OnceCell<SocketText>; 3],
}

/// The integer attributes, each with its cell.
#[derive(Clone, Copy)]
enum Int {
    Duration,
    Time,
    RequestSize,
    ResponseSize,
    Code,
    Flags,
}

impl Int {
    const COUNT: usize = 6;
}

/// `ip:port` written in place; an address too long for it (none Envoy prints) goes on the heap.
struct SocketText {
    buf: [u8; 80],
    len: usize,
}

impl LogSource {
    /// The request `view` shows.
    pub fn new(view: LogView) -> Self {
        LogSource {
            view,
            timing: OnceCell::new(),
            bytes: OnceCell::new(),
            ints: Default::default(),
            addresses: Default::default(),
        }
    }

    /// `v` as 8 little-endian bytes, lent from the cell of `which`.
    fn int(&self, which: Int, v: i64) -> Cow<'_, [u8]> {
        match self.ints.get(which as usize) {
            Some(cell) => Cow::Borrowed(cell.get_or_init(|| v.to_le_bytes())),
            None => Cow::Owned(v.to_le_bytes().to_vec()),
        }
    }

    /// The address in cell `i` as `ip:port`, written once; one too long for the cell (none
    /// Envoy prints) is answered from the heap.
    fn address(&self, i: usize, addr: Option<(&[u8], u32)>) -> Option<Cow<'_, [u8]>> {
        let cell = self.addresses.get(i)?;
        if cell.get().is_none() {
            let mut t = SocketText {
                buf: [0; 80],
                len: 0,
            };
            let mut w = SliceWriter(&mut t.buf, 0);
            if !write_socket(addr?, &mut w) {
                return socket(addr).map(Cow::Owned);
            }
            t.len = w.1;
            let _ = cell.set(t);
        }
        cell.get()
            .and_then(|t| t.buf.get(..t.len))
            .map(Cow::Borrowed)
    }

    fn timing(&self) -> TimingInfo {
        *self.timing.get_or_init(|| self.view.timing())
    }

    fn bytes(&self) -> BytesInfo {
        *self.bytes.get_or_init(|| self.view.bytes())
    }
}

/// Where `write_socket` writes: a fixed buffer (false when full) or a `Vec`.
trait Sink {
    fn put(&mut self, b: &[u8]) -> bool;
}

struct SliceWriter<'a>(&'a mut [u8], usize);

impl Sink for SliceWriter<'_> {
    fn put(&mut self, b: &[u8]) -> bool {
        let end = self.1 + b.len();
        match self.0.get_mut(self.1..end) {
            Some(dst) => {
                dst.copy_from_slice(b);
                self.1 = end;
                true
            }
            None => false,
        }
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, b: &[u8]) -> bool {
        self.extend_from_slice(b);
        true
    }
}

/// `ip:port` as Envoy prints a socket address (`[v6]:port`); false for an empty IP or a full
/// sink. Envoy's addresses are ASCII; anything else is decoded lossily by core, as before.
fn write_socket((ip, port): (&[u8], u32), out: &mut impl Sink) -> bool {
    if ip.is_empty() {
        return false;
    }
    let v6 = ip.contains(&b':');
    let mut digits = [0u8; 10];
    let mut n = port;
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    let port = digits.get(i..).unwrap_or_default();
    if v6 {
        out.put(b"[") && out.put(ip) && out.put(b"]:") && out.put(port)
    } else {
        out.put(ip) && out.put(b":") && out.put(port)
    }
}

/// `ip:port` on the heap (an address longer than [`SocketText`] holds).
fn socket(addr: Option<(&[u8], u32)>) -> Option<Vec<u8>> {
    let addr = addr?;
    let mut out = Vec::with_capacity(addr.0.len() + 8);
    write_socket(addr, &mut out).then_some(out)
}

impl AttributeSource for LogSource {
    fn property(&self, path: &[&str]) -> Option<Cow<'_, [u8]>> {
        let v = &self.view;
        match path {
            ["request", "duration"] => {
                let d = self.timing().request_complete_duration_ns;
                (d >= 0).then(|| self.int(Int::Duration, d))
            }
            ["request", "time"] => {
                let t = self.timing().start_time_unix_ns;
                (t > 0).then(|| self.int(Int::Time, t))
            }
            ["request", "size"] => Some(self.int(
                Int::RequestSize,
                i64::try_from(self.bytes().bytes_received).unwrap_or(i64::MAX),
            )),
            ["response", "size"] => Some(self.int(
                Int::ResponseSize,
                i64::try_from(self.bytes().bytes_sent).unwrap_or(i64::MAX),
            )),
            ["response", "code"] => match v.response_code() {
                0 => None,
                c => Some(self.int(Int::Code, i64::from(c))),
            },
            ["response", "flags"] => Some(self.int(
                Int::Flags,
                i64::try_from(v.response_flags()).unwrap_or(i64::MAX),
            )),
            ["response", "code_details"] => v.response_code_details().map(Cow::Borrowed),
            ["request", "protocol"] => v.protocol().map(Cow::Borrowed),
            ["request", "id"] => v.request_id().map(Cow::Borrowed),
            ["source", "address"] => self.address(0, v.source()),
            ["destination", "address"] => self.address(1, v.destination()),
            ["upstream", "address"] => self.address(2, v.upstream()),
            ["xds", "cluster_name"] => v.upstream_cluster().map(Cow::Borrowed),
            ["connection", "tls_version"] => v.tls_version().map(Cow::Borrowed),
            ["connection", "requested_server_name"] => v.requested_server_name().map(Cow::Borrowed),
            ["connection", "uri_san_peer_certificate"] => v.peer_uri_san().map(Cow::Owned),
            ["connection", "sha256_peer_certificate_digest"] => {
                v.peer_cert_digest().map(Cow::Borrowed)
            }
            // Method, path, scheme, host and user agent come from the request headers, which
            // core reads first; node and listener direction are not offered (module docs).
            _ => None,
        }
    }

    // Lent from Envoy's header maps: a `LogSource` lives within the hook that gave its view
    // (`Logger::log` builds it and drops it before returning), and the lists borrow it.
    fn request_headers(&self) -> Vec<Header<'_>> {
        self.view.headers(HeaderType::RequestHeader)
    }

    fn response_headers(&self) -> Vec<Header<'_>> {
        self.view.headers(HeaderType::ResponseHeader)
    }

    fn response_trailers(&self) -> Vec<Header<'_>> {
        self.view.headers(HeaderType::ResponseTrailer)
    }
}

/// Nothing: the resource's node attributes when no request is at hand (configuration time).
pub struct NoNode;

impl AttributeSource for NoNode {
    fn property(&self, _path: &[&str]) -> Option<Cow<'_, [u8]>> {
        None
    }

    fn request_headers(&self) -> Vec<Header<'_>> {
        Vec::new()
    }

    fn response_headers(&self) -> Vec<Header<'_>> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::{SliceWriter, socket, write_socket};

    #[test]
    fn socket_addresses_print_as_envoy_prints_them() {
        assert_eq!(
            socket(Some((b"10.0.0.1", 443))).as_deref(),
            Some(&b"10.0.0.1:443"[..])
        );
        assert_eq!(
            socket(Some((b"::1", 80))).as_deref(),
            Some(&b"[::1]:80"[..])
        );
        assert_eq!(
            socket(Some((b"10.0.0.1", 0))).as_deref(),
            Some(&b"10.0.0.1:0"[..])
        );
        assert_eq!(
            socket(Some((b"fe80::1", 4_294_967_295))).as_deref(),
            Some(&b"[fe80::1]:4294967295"[..])
        );
        assert_eq!(socket(Some((b"", 1))), None);
        assert_eq!(socket(None), None);
    }

    #[test]
    fn the_fixed_buffer_writes_what_the_heap_writes_or_says_it_is_full() {
        let long = [b'a'; 79];
        for (ip, port) in [
            (&b"10.0.0.1"[..], 443u32),
            (b"2001:db8::ff00:42:8329", 65_535),
            (b"fe80::1%eth0", 4_294_967_295),
            (&long[..], 1),
        ] {
            let mut buf = [0u8; 80];
            let mut w = SliceWriter(&mut buf, 0);
            let fits = write_socket((ip, port), &mut w);
            let len = w.1;
            let heap = socket(Some((ip, port))).unwrap_or_default();
            if fits {
                assert_eq!(&buf[..len], &heap[..]);
            } else {
                assert!(
                    heap.len() > 80,
                    "only a longer address overflows: {}",
                    heap.len()
                );
            }
        }
        let mut small = [0u8; 4];
        assert!(!write_socket(
            (b"10.0.0.1", 1),
            &mut SliceWriter(&mut small, 0)
        ));
    }
}
