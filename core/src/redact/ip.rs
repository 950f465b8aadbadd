//! Client IP addresses: parsing (with ports and brackets) and truncation to a network prefix.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Parses a bare IPv4 or IPv6 address (no port, no brackets).
pub(crate) fn parse_addr(b: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(b).ok()?;
    s.parse::<IpAddr>().ok()
}

/// Finds the address inside one address element: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`,
/// `[2001:db8::1]:443`, `"[2001:db8::1]"`. Returns the byte range of the address and the address.
pub(crate) fn parse_element(s: &str) -> Option<(usize, usize, IpAddr)> {
    let lead = s.len() - s.trim_start().len();
    let t = s.trim();
    let mut start = lead;
    let mut t = t;
    if let Some(inner) = t.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        t = inner;
        start += 1;
    }
    if let Ok(a) = t.parse::<IpAddr>() {
        return Some((start, start + t.len(), a));
    }
    if let Some(rest) = t.strip_prefix('[') {
        let close = rest.find(']')?;
        let inner = rest.get(..close)?;
        let after = rest.get(close + 1..)?;
        if !(after.is_empty() || is_port(after)) {
            return None;
        }
        let a = inner.parse::<Ipv6Addr>().ok()?;
        return Some((start + 1, start + 1 + inner.len(), IpAddr::V6(a)));
    }
    let (host, port) = t.rsplit_once(':')?;
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let a = host.parse::<Ipv4Addr>().ok()?;
    Some((start, start + host.len(), IpAddr::V4(a)))
}

fn is_port(s: &str) -> bool {
    match s.strip_prefix(':') {
        Some(p) => !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Keeps the first `v4` (IPv4) or `v6` (IPv6) bits; IPv4-mapped IPv6 is treated as IPv4.
pub(crate) fn truncate(addr: IpAddr, v4: u8, v6: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4(truncate4(a, v4)),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(m) => IpAddr::V4(truncate4(m, v4)),
            None => {
                let bits = u128::from(a);
                let mask = if v6 == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(v6.min(128)))
                };
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
        },
    }
}

/// `truncate4(a, v4)` as dotted-quad text, written digit by digit (`Ipv4Addr`'s `Display`
/// goes through the formatter four times: a third of a request's IP redaction).
pub(crate) fn truncated_v4_text(a: Ipv4Addr, v4: u8) -> String {
    let mut out = String::with_capacity(15);
    for (i, o) in truncate4(a, v4).octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if o >= 100 {
            out.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            out.push(char::from(b'0' + o / 10 % 10));
        }
        out.push(char::from(b'0' + o % 10));
    }
    out
}

fn truncate4(a: Ipv4Addr, v4: u8) -> Ipv4Addr {
    let bits = u32::from(a);
    let mask = if v4 == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(v4.min(32)))
    };
    Ipv4Addr::from(bits & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements() {
        fn e(s: &str) -> Option<(&str, String)> {
            parse_element(s).map(|(a, b, ip)| (&s[a..b], ip.to_string()))
        }
        assert_eq!(
            e("45.229.133.199"),
            Some(("45.229.133.199", "45.229.133.199".into()))
        );
        assert_eq!(e(" 10.0.0.1:8080 "), Some(("10.0.0.1", "10.0.0.1".into())));
        assert_eq!(
            e("[2001:db8::1]:443"),
            Some(("2001:db8::1", "2001:db8::1".into()))
        );
        assert_eq!(
            e("\"[2001:db8::1]\""),
            Some(("2001:db8::1", "2001:db8::1".into()))
        );
        assert_eq!(
            e("2001:db8::1"),
            Some(("2001:db8::1", "2001:db8::1".into()))
        );
        assert_eq!(e("unknown"), None);
        assert_eq!(e("_hidden"), None);
        assert_eq!(e("1.2.3.4:"), None);
        assert_eq!(e("1.2.3.4:123456"), None);
        assert_eq!(e("[::1"), None);
        assert_eq!(e(""), None);
    }

    #[test]
    fn truncated_v4_text_is_display_of_the_truncation() {
        for (ip, bits) in [
            ("45.229.133.199", 24),
            ("0.0.0.0", 32),
            ("255.255.255.255", 32),
            ("10.100.9.99", 32),
            ("127.0.0.1", 8),
            ("45.229.133.199", 0),
            ("1.20.200.3", 31),
        ] {
            let a: Ipv4Addr = ip.parse().unwrap();
            assert_eq!(
                truncated_v4_text(a, bits),
                truncate4(a, bits).to_string(),
                "{ip}/{bits}"
            );
        }
        for n in (0u32..=u32::MAX).step_by(65_521) {
            let a = Ipv4Addr::from(n);
            assert_eq!(truncated_v4_text(a, 32), a.to_string());
        }
    }

    #[test]
    fn truncation() {
        let t = |s: &str, a, b| truncate(s.parse().unwrap(), a, b).to_string();
        assert_eq!(t("45.229.133.199", 24, 48), "45.229.133.0");
        assert_eq!(t("45.229.133.199", 16, 48), "45.229.0.0");
        assert_eq!(t("45.229.133.199", 0, 48), "0.0.0.0");
        assert_eq!(t("45.229.133.199", 32, 48), "45.229.133.199");
        assert_eq!(
            t("2001:db8:1c7f:a189:2da3:9640:1920:a66a", 24, 48),
            "2001:db8:1c7f::"
        );
        assert_eq!(t("2001:db8:1c7f:a189::1", 24, 0), "::");
        assert_eq!(t("2001:db8:1c7f:a189::1", 24, 128), "2001:db8:1c7f:a189::1");
        assert_eq!(t("::ffff:45.229.133.199", 24, 48), "45.229.133.0");
    }
}
