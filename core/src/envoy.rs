//! Decoding of Envoy's attribute values: integers, response-flag bitmasks, socket addresses.
//!
//! Envoy hands every attribute to the VM as bytes: integers and timestamps as 8-byte
//! little-endian, strings raw (not necessarily UTF-8), addresses as `ip:port` text.

/// Envoy's response flags in bit order (`StreamInfo::CoreResponseFlag`); bit i is `FLAGS[i]`.
pub const RESPONSE_FLAGS: &[&str] = &[
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR",
    "UDO",
];

/// An 8-byte little-endian integer attribute; `None` for any other length.
pub fn int_attr(bytes: &[u8]) -> Option<i64> {
    let arr: [u8; 8] = bytes.try_into().ok()?;
    Some(i64::from_le_bytes(arr))
}

/// Short codes of the set bits, comma-joined like Envoy's `%RESPONSE_FLAGS%`; empty for none.
pub fn response_flags(mask: u64) -> String {
    let mut out = String::new();
    for (bit, code) in RESPONSE_FLAGS.iter().enumerate() {
        if mask & (1u64 << bit) != 0 {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(code);
        }
    }
    out
}

/// Splits `ip:port` or `[v6]:port` into the IP text and port; a bare IP gives no port.
pub fn split_socket_address(addr: &str) -> (&str, Option<u16>) {
    if let Some(rest) = addr.strip_prefix('[') {
        if let Some((ip, port)) = rest.split_once("]:") {
            return (ip, port.parse().ok());
        }
        return (rest.trim_end_matches(']'), None);
    }
    // Byte searches (':' is ASCII, so both sides are whole text): the `char` pattern searches
    // cost ~300 instructions here, three times per request.
    let b = addr.as_bytes();
    match b.iter().position(|c| *c == b':') {
        // More than one ':' without brackets is a bare IPv6 address.
        Some(i) if !b.get(i + 1..).unwrap_or_default().contains(&b':') => (
            addr.get(..i).unwrap_or(addr),
            addr.get(i + 1..).and_then(|p| p.parse().ok()),
        ),
        _ => (addr, None),
    }
}

/// Splits an authority into host and explicit port: `Example.com:8443` gives (`example.com`, 8443).
pub fn split_authority(authority: &str) -> (String, Option<u16>) {
    let (host, port) = split_socket_address(authority);
    (host.to_ascii_lowercase(), port)
}

/// The port a scheme implies: 80 for `http`, 443 for `https`.
pub fn default_port(scheme: Option<&str>) -> Option<u16> {
    match scheme {
        Some(s) if s.eq_ignore_ascii_case("http") => Some(80),
        Some(s) if s.eq_ignore_ascii_case("https") => Some(443),
        _ => None,
    }
}

/// `::ffff:10.1.2.3` (an IPv4 client on a dual-stack socket) gives `10.1.2.3`; anything else is
/// returned unchanged, so one client has one spelling.
pub fn unmap_ipv4(ip: &str) -> &str {
    match ip.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("::ffff:") => {
            let rest = ip.get(7..).unwrap_or_default();
            if rest.parse::<std::net::Ipv4Addr>().is_ok() {
                rest
            } else {
                ip
            }
        }
        _ => ip,
    }
}

/// `HTTP/1.1` gives `1.1`; `HTTP/2` gives `2`.
pub fn protocol_version(protocol: &str) -> &str {
    protocol.strip_prefix("HTTP/").unwrap_or(protocol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_decode_in_envoy_order() {
        assert_eq!(response_flags(0), "");
        assert_eq!(response_flags(1 << 5), "UF");
        assert_eq!(response_flags((1 << 5) | (1 << 15)), "UF,URX");
        assert_eq!(response_flags(1 << 8), "NR");
        assert_eq!(response_flags(0x1000_0000), "DR");
        // Unknown high bits are ignored, not misnamed.
        assert_eq!(response_flags(1 << 40), "");
    }

    #[test]
    fn addresses() {
        assert_eq!(
            split_socket_address("10.0.0.1:443"),
            ("10.0.0.1", Some(443))
        );
        assert_eq!(split_socket_address("[::1]:8080"), ("::1", Some(8080)));
        assert_eq!(split_socket_address("::1"), ("::1", None));
        assert_eq!(split_socket_address("host"), ("host", None));
        assert_eq!(split_socket_address("a:b:c"), ("a:b:c", None));
        assert_eq!(split_socket_address("host:"), ("host", None));
        assert_eq!(split_socket_address(":80"), ("", Some(80)));
        assert_eq!(split_socket_address("h:99999"), ("h", None));
        assert_eq!(split_socket_address("[::1"), ("::1", None));
        assert_eq!(split_socket_address(""), ("", None));
        assert_eq!(
            split_authority("Api.Example.com:8443"),
            ("api.example.com".into(), Some(8443))
        );
    }

    #[test]
    fn normalization_helpers() {
        assert_eq!(unmap_ipv4("::ffff:10.1.2.3"), "10.1.2.3");
        assert_eq!(unmap_ipv4("::FFFF:10.1.2.3"), "10.1.2.3");
        assert_eq!(unmap_ipv4("::ffff:abcd"), "::ffff:abcd");
        assert_eq!(unmap_ipv4("2001:db8::1"), "2001:db8::1");
        assert_eq!(default_port(Some("https")), Some(443));
        assert_eq!(default_port(Some("HTTP")), Some(80));
        assert_eq!(default_port(None), None);
    }

    #[test]
    fn ints() {
        assert_eq!(int_attr(&200i64.to_le_bytes()), Some(200));
        assert_eq!(int_attr(b"200"), None);
    }
}
