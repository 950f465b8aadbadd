//! Trace correlation: the trace and span ids a request carried.
//!
//! W3C `traceparent` first, then B3 (single `b3` header, then `x-b3-traceid` / `x-b3-spanid`).
//! A malformed header is ignored, never an error.

/// Parses `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`) into trace id and parent span id.
/// All-zero ids are invalid per the W3C spec and yield `None`.
pub fn parse_traceparent(v: &[u8]) -> Option<([u8; 16], [u8; 8])> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let mut parts = s.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    if version.len() != 2 || version == "ff" || flags.len() != 2 {
        return None;
    }
    // Version 00 has exactly four fields; later versions may append more.
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let trace: [u8; 16] = decode_hex(trace)?;
    let span: [u8; 8] = decode_hex(span)?;
    if trace == [0; 16] || span == [0; 8] {
        return None;
    }
    Some((trace, span))
}

/// Trace and span ids from request headers (lower-case names), in precedence order: W3C
/// `traceparent`, B3 single (`b3: <trace>-<span>[-<sampled>[-<parent>]]`), B3 multi. B3 64-bit
/// trace ids are left-padded to 128 bits, as the B3 spec says.
pub fn from_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
) -> Option<([u8; 16], [u8; 8])> {
    let get = |name: &str| headers.clone().find(|(n, _)| *n == name).map(|(_, v)| v);
    if let Some(ids) = get("traceparent").and_then(parse_traceparent) {
        return Some(ids);
    }
    if let Some(ids) = get("b3").and_then(parse_b3_single) {
        return Some(ids);
    }
    let trace = b3_trace_id(std::str::from_utf8(get("x-b3-traceid")?).ok()?.trim())?;
    let span: [u8; 8] = decode_hex(std::str::from_utf8(get("x-b3-spanid")?).ok()?.trim())?;
    valid(trace, span)
}

/// Parses the B3 single header; `b3: 0` (a bare sampling decision) carries no ids.
pub fn parse_b3_single(v: &[u8]) -> Option<([u8; 16], [u8; 8])> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let mut parts = s.split('-');
    let trace = b3_trace_id(parts.next()?)?;
    let span: [u8; 8] = decode_hex(parts.next()?)?;
    valid(trace, span)
}

fn b3_trace_id(s: &str) -> Option<[u8; 16]> {
    match s.len() {
        32 => decode_hex(s),
        16 => {
            let low: [u8; 8] = decode_hex(s)?;
            let mut t = [0u8; 16];
            for (slot, b) in t.iter_mut().skip(8).zip(low) {
                *slot = b;
            }
            Some(t)
        }
        _ => None,
    }
}

fn valid(trace: [u8; 16], span: [u8; 8]) -> Option<([u8; 16], [u8; 8])> {
    (trace != [0; 16] && span != [0; 8]).then_some((trace, span))
}

fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let hi = nibble(*pair.first()?)?;
        let lo = nibble(*pair.get(1)?)?;
        *slot = (hi << 4) | lo;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid() {
        let (t, s) =
            parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t[0], 0x4b);
        assert_eq!(s[7], 0xb7);
        assert!(
            parse_traceparent(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none()
        );
        assert!(
            parse_traceparent(b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_none()
        );
        assert!(parse_traceparent(b"garbage").is_none());
        assert!(parse_traceparent(&[0xff, 0xfe]).is_none());
    }

    fn h<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = (&'a str, &'a [u8])> + Clone {
        pairs.iter().map(|(n, v)| (*n, v.as_bytes()))
    }

    #[test]
    fn b3_single_and_multi_with_w3c_precedence() {
        let w3c = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let b3 = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1";
        let (t, s) = from_headers(h(&[("b3", b3)])).unwrap();
        assert_eq!(t[0], 0x80);
        assert_eq!(s[0], 0xe4);
        // traceparent wins over b3.
        let (t, _) = from_headers(h(&[("b3", b3), ("traceparent", w3c)])).unwrap();
        assert_eq!(t[0], 0x4b);
        // Multi-header, 64-bit trace id padded to 128 bits.
        let (t, s) = from_headers(h(&[
            ("x-b3-traceid", "a3ce929d0e0e4736"),
            ("x-b3-spanid", "00f067aa0ba902b7"),
        ]))
        .unwrap();
        assert_eq!(t[..8], [0; 8]);
        assert_eq!(t[8], 0xa3);
        assert_eq!(s[7], 0xb7);
        assert!(from_headers(h(&[("b3", "0")])).is_none());
        assert!(from_headers(h(&[("x-b3-traceid", "a3ce929d0e0e4736")])).is_none());
        assert!(from_headers(h(&[])).is_none());
    }
}
