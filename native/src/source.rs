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
/// fetched once.
pub struct LogSource {
    view: LogView,
    timing: OnceCell<TimingInfo>,
    bytes: OnceCell<BytesInfo>,
}

impl LogSource {
    /// The request `view` shows.
    pub fn new(view: LogView) -> Self {
        LogSource {
            view,
            timing: OnceCell::new(),
            bytes: OnceCell::new(),
        }
    }

    fn timing(&self) -> TimingInfo {
        *self.timing.get_or_init(|| self.view.timing())
    }

    fn bytes(&self) -> BytesInfo {
        *self.bytes.get_or_init(|| self.view.bytes())
    }
}

fn int(v: i64) -> Cow<'static, [u8]> {
    Cow::Owned(v.to_le_bytes().to_vec())
}

/// `ip:port` as Envoy prints a socket address (`[v6]:port`), written into one buffer (no
/// `format!`: three of these per request).
fn socket(addr: Option<(Vec<u8>, u32)>) -> Option<Vec<u8>> {
    let (ip, port) = addr?;
    if ip.is_empty() {
        return None;
    }
    let v6 = ip.contains(&b':');
    let mut out = Vec::with_capacity(ip.len() + 8);
    if v6 {
        out.push(b'[');
    }
    out.extend_from_slice(&ip);
    if v6 {
        out.push(b']');
    }
    out.push(b':');
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
    out.extend_from_slice(digits.get(i..).unwrap_or_default());
    // Envoy's addresses are ASCII; anything else is decoded lossily by core, as before.
    Some(out)
}

impl AttributeSource for LogSource {
    fn property(&self, path: &[&str]) -> Option<Cow<'_, [u8]>> {
        let v = &self.view;
        match path {
            ["request", "duration"] => {
                let d = self.timing().request_complete_duration_ns;
                (d >= 0).then(|| int(d))
            }
            ["request", "time"] => {
                let t = self.timing().start_time_unix_ns;
                (t > 0).then(|| int(t))
            }
            ["request", "size"] => Some(int(
                i64::try_from(self.bytes().bytes_received).unwrap_or(i64::MAX)
            )),
            ["response", "size"] => Some(int(
                i64::try_from(self.bytes().bytes_sent).unwrap_or(i64::MAX)
            )),
            ["response", "code"] => match v.response_code() {
                0 => None,
                c => Some(int(i64::from(c))),
            },
            ["response", "flags"] => {
                Some(int(i64::try_from(v.response_flags()).unwrap_or(i64::MAX)))
            }
            ["response", "code_details"] => v.response_code_details().map(Cow::Borrowed),
            ["request", "protocol"] => v.protocol().map(Cow::Borrowed),
            ["request", "id"] => v.request_id().map(Cow::Borrowed),
            ["source", "address"] => socket(v.source()).map(Cow::Owned),
            ["destination", "address"] => socket(v.destination()).map(Cow::Owned),
            ["upstream", "address"] => socket(v.upstream()).map(Cow::Owned),
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
    use super::socket;

    #[test]
    fn socket_addresses_print_as_envoy_prints_them() {
        assert_eq!(
            socket(Some((b"10.0.0.1".to_vec(), 443))).as_deref(),
            Some(&b"10.0.0.1:443"[..])
        );
        assert_eq!(
            socket(Some((b"::1".to_vec(), 80))).as_deref(),
            Some(&b"[::1]:80"[..])
        );
        assert_eq!(
            socket(Some((b"10.0.0.1".to_vec(), 0))).as_deref(),
            Some(&b"10.0.0.1:0"[..])
        );
        assert_eq!(
            socket(Some((b"fe80::1".to_vec(), 4_294_967_295))).as_deref(),
            Some(&b"[fe80::1]:4294967295"[..])
        );
        assert_eq!(socket(Some((Vec::new(), 1))), None);
        assert_eq!(socket(None), None);
    }
}
