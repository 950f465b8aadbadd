//! The sampling key: 56 bits of randomness per request, the same at every hop of a trace.
//!
//! - With a trace id: its rightmost 7 bytes (bytes 9 to 15) as a big-endian integer. That is the
//!   part W3C Trace Context Level 2 declares random and OpenTelemetry's consistent probability
//!   sampling reads as its randomness value `R`. It also holds the whole id of a 64-bit B3 trace
//!   (left-padded with zeros to 128 bits), whose leftmost bytes are all zero: a key taken from the
//!   *first* bytes would keep every such trace.
//! - Otherwise, with an `x-request-id`: the first 7 bytes of SHA-256 of its exact bytes (no
//!   trimming, no case folding), big-endian. Anyone can recompute it:
//!   `printf %s "$id" | sha256sum | cut -c1-14`.
//! - Neither (or an all-zero trace id and no request id): no key.
//!
//! A rate `p` (0 to 1) becomes the rejection threshold `T = 2^56 − floor(p · 2^56)`; a request is
//! kept when `R ≥ T`. The arithmetic is exact (scaling an `f64` by a power of two, then `floor`),
//! so every VM on every platform draws the same line: `p = 1` keeps every key, `p = 0` none, and
//! a trace kept at rate `p` is kept at every rate above `p` (decisions nest).

use sha2::{Digest, Sha256};

/// `2^56`: the number of distinct keys.
pub const KEY_SPACE: u64 = 1 << 56;

/// The sampling key of a request (`0 ≤ key < 2^56`): from the trace id when there is one (and it
/// is not all zero), else from the request id; `None` when there is neither (or it is empty).
pub fn sampling_key(trace_id: Option<&[u8; 16]>, request_id: Option<&str>) -> Option<u64> {
    if let Some(t) = trace_id
        && t.iter().any(|b| *b != 0)
    {
        return Some(be56(t.iter().skip(9)));
    }
    let id = request_id.filter(|id| !id.is_empty())?;
    let digest = Sha256::digest(id.as_bytes());
    Some(be56(digest.iter().take(7)))
}

/// Big-endian integer of (up to) 7 bytes.
fn be56<'a>(bytes: impl Iterator<Item = &'a u8>) -> u64 {
    bytes
        .take(7)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// The rejection threshold for rate `p`: `2^56 − floor(p · 2^56)`; `0` for `p ≥ 1` (keep all),
/// `2^56` for `p ≤ 0` or NaN (keep none).
pub fn threshold(rate: f64) -> u64 {
    if rate.is_nan() || rate <= 0.0 {
        return KEY_SPACE;
    }
    if rate >= 1.0 {
        return 0;
    }
    // Exact: multiplying by a power of two only changes the exponent; the result is < 2^56.
    let kept = (rate * KEY_SPACE as f64).floor();
    // `as` saturates; `kept` is in [0, 2^56) here.
    KEY_SPACE.saturating_sub(kept as u64)
}

/// Whether a request with sampling key `key` is kept under rejection threshold `threshold`.
pub fn keeps(key: u64, threshold: u64) -> bool {
    key >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex16(s: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// Golden values: a change of key derivation or threshold arithmetic must show up here (and
    /// then bump `ENGINE_VERSION`, since it changes which traces every VM keeps).
    #[test]
    fn golden_keys_and_decisions() {
        let t = hex16("4bf92f3577b34da6a3ce929d0e0e4736");
        let k = sampling_key(Some(&t), Some("ignored when a trace id exists")).unwrap();
        assert_eq!(k, 0x00ce_929d_0e0e_4736);
        assert!(!keeps(k, threshold(0.1)));
        assert!(keeps(k, threshold(0.25)));
        assert!(keeps(k, threshold(0.5)));

        // A 64-bit B3 trace id, left-padded: the key is still random.
        let b3 = hex16("0000000000000000a3ce929d0e0e4736");
        assert_eq!(sampling_key(Some(&b3), None), Some(0x00ce_929d_0e0e_4736));

        // sha256("f81d4fae-7dec-11d0-a765-00a0c91e6bf6"), first 7 bytes.
        let r = sampling_key(None, Some("f81d4fae-7dec-11d0-a765-00a0c91e6bf6")).unwrap();
        assert_eq!(format!("{r:014x}"), GOLDEN_REQUEST_ID_KEY);
        // sha256("abc") = ba7816bf8f01cfea…
        assert_eq!(sampling_key(None, Some("abc")), Some(0x00ba_7816_bf8f_01cf));
        // An all-zero trace id is no trace id.
        assert_eq!(
            sampling_key(Some(&[0; 16]), Some("abc")),
            sampling_key(None, Some("abc"))
        );
        assert_eq!(sampling_key(None, None), None);
        assert_eq!(sampling_key(None, Some("")), None);
    }

    const GOLDEN_REQUEST_ID_KEY: &str = "30a5154b77ab8b";

    #[test]
    fn thresholds_are_exact() {
        assert_eq!(threshold(1.0), 0);
        assert_eq!(threshold(0.0), KEY_SPACE);
        assert_eq!(threshold(-0.0), KEY_SPACE);
        assert_eq!(threshold(f64::NAN), KEY_SPACE);
        assert_eq!(threshold(0.5), 1 << 55);
        assert_eq!(threshold(0.25), 3 << 54);
        assert_eq!(threshold(0.1), KEY_SPACE - 7_205_759_403_792_794);
        // The smallest positive rate keeps nothing below 2^-56 resolution.
        assert_eq!(threshold(f64::MIN_POSITIVE), KEY_SPACE);
        // Every key below 2^56 is kept at 1.0, none at 0.0.
        assert!(keeps(0, threshold(1.0)));
        assert!(!keeps(KEY_SPACE - 1, threshold(0.0)));
        assert!(keeps(KEY_SPACE - 1, threshold(1e-9)));
    }

    #[test]
    fn decisions_nest_across_rates() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = x >> 8;
            let mut prev = false;
            for r in [0.001, 0.01, 0.1, 0.3, 0.5, 0.9, 1.0] {
                let now = keeps(k, threshold(r));
                assert!(!prev || now, "kept at a lower rate, dropped at {r}");
                prev = now;
            }
        }
    }
}
