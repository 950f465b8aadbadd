//! What a collector's answer means for a batch, and how long to wait before trying again.
//!
//! [`Outcome::classify`] turns a status (or its absence) and `Retry-After` into delivered, retry
//! or rejected; [`Backoff`] turns consecutive failures into a delay: exponential, with full
//! jitter (a uniform draw from zero to the exponential bound) so that the VMs of a fleet that
//! lost the collector together do not come back in lockstep. The random draw and the time are
//! passed in.

use crate::httpdate::parse_http_date;

const NS_PER_MS: u64 = 1_000_000;
const NS_PER_S: u64 = 1_000_000_000;

/// What became of one attempt to deliver a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the collector has the batch.
    Delivered,
    /// Worth trying again: no answer at all (reset, timeout, no route: `status` is `None`), or a
    /// status that says "later" (408, 429, 500, 502, 503, 504, 507 and other 5xx but 501 and 505).
    Retry {
        /// The status, if there was an answer.
        status: Option<u16>,
        /// `Retry-After`, as nanoseconds from now, when the answer carried a valid one.
        after_ns: Option<u64>,
    },
    /// The collector will never take this batch (400, 413, 415, other 4xx, 1xx, 3xx, 501, 505):
    /// sending the same bytes again cannot help.
    Rejected {
        /// The status.
        status: u16,
    },
}

impl Outcome {
    /// Classifies an answer: its `:status` (`None` when the call failed without one) and its
    /// `Retry-After` header value, read against `now_ns` (unix ns) when it is an HTTP-date.
    pub fn classify(status: Option<u16>, retry_after: Option<&[u8]>, now_ns: u64) -> Outcome {
        let Some(code) = status else {
            return Outcome::Retry {
                status: None,
                after_ns: None,
            };
        };
        match code {
            200..=299 => Outcome::Delivered,
            408 | 429 | 500..=599 if code != 501 && code != 505 => Outcome::Retry {
                status: Some(code),
                after_ns: retry_after.and_then(|v| retry_after_ns(v, now_ns)),
            },
            _ => Outcome::Rejected { status: code },
        }
    }

    /// True for [`Outcome::Retry`].
    pub fn is_retry(&self) -> bool {
        matches!(self, Outcome::Retry { .. })
    }
}

/// A `Retry-After` value as nanoseconds from `now_ns`: delay-seconds (`120`) or an HTTP-date
/// (a date in the past means now: 0). `None` when it is neither.
pub fn retry_after_ns(value: &[u8], now_ns: u64) -> Option<u64> {
    let v = value.trim_ascii();
    if !v.is_empty() && v.iter().all(u8::is_ascii_digit) {
        // Too many digits for a u64 is still "a very long time": saturate, the cap applies later.
        let secs = v.iter().fold(0u64, |n, &b| {
            n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
        });
        return Some(secs.saturating_mul(NS_PER_S));
    }
    let at = parse_http_date(v)?.saturating_mul(NS_PER_S);
    Some(at.saturating_sub(now_ns))
}

/// Exponential backoff with full jitter, bounded by a maximum that also caps `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial_ns: u64,
    max_ns: u64,
}

impl Backoff {
    /// Delays start at up to `initial_ms`, double per consecutive failure, and never exceed
    /// `max_ms` (which is raised to `initial_ms` if below it).
    pub fn new(initial_ms: u64, max_ms: u64) -> Self {
        let initial_ns = initial_ms.saturating_mul(NS_PER_MS).max(1);
        Backoff {
            initial_ns,
            max_ns: max_ms.saturating_mul(NS_PER_MS).max(initial_ns),
        }
    }

    /// The upper bound of the delay after the `failures`-th consecutive failure (1 for the
    /// first): `min(max, initial · 2^(failures−1))`.
    pub fn bound_ns(&self, failures: u32) -> u64 {
        let doublings = failures.saturating_sub(1);
        let bound = if doublings >= 64 {
            u64::MAX
        } else {
            self.initial_ns.saturating_mul(1u64 << doublings)
        };
        bound.min(self.max_ns)
    }

    /// How long to wait after the `failures`-th consecutive failure: the server's `Retry-After`
    /// when it gave one (it knows its load better than we do), capped at the maximum; otherwise
    /// a uniform draw from `[0, bound_ns(failures)]` using `rand`.
    pub fn delay_ns(&self, failures: u32, retry_after_ns: Option<u64>, rand: u64) -> u64 {
        if let Some(after) = retry_after_ns {
            return after.min(self.max_ns);
        }
        let bound = self.bound_ns(failures);
        // Multiply-shift maps a uniform u64 onto [0, bound] without modulo bias worth the name.
        let scaled = (u128::from(rand) * (u128::from(bound) + 1)) >> 64;
        u64::try_from(scaled).unwrap_or(bound)
    }

    /// The cap on any delay, ns.
    pub fn max_ns(&self) -> u64 {
        self.max_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = NS_PER_MS;
    const S: u64 = NS_PER_S;

    #[test]
    fn classification() {
        let retry = |s| Outcome::classify(Some(s), None, 0);
        for s in [200, 201, 204, 299] {
            assert_eq!(retry(s), Outcome::Delivered, "{s}");
        }
        for s in [408, 429, 500, 502, 503, 504, 507, 508, 599] {
            assert!(retry(s).is_retry(), "{s}");
        }
        for s in [
            100, 301, 304, 400, 401, 403, 404, 409, 413, 415, 422, 501, 505,
        ] {
            assert_eq!(retry(s), Outcome::Rejected { status: s }, "{s}");
        }
        assert_eq!(
            Outcome::classify(None, Some(b"5"), 0),
            Outcome::Retry {
                status: None,
                after_ns: None
            },
            "no response: retry; a Retry-After without a status means nothing"
        );
        assert_eq!(
            Outcome::classify(Some(503), Some(b"7"), 0),
            Outcome::Retry {
                status: Some(503),
                after_ns: Some(7 * S)
            }
        );
        assert_eq!(
            Outcome::classify(Some(400), Some(b"7"), 0),
            Outcome::Rejected { status: 400 },
            "Retry-After does not make a 4xx retryable"
        );
    }

    #[test]
    fn retry_after_forms() {
        let now = 784_111_777 * S; // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after_ns(b"0", now), Some(0));
        assert_eq!(retry_after_ns(b" 120 ", now), Some(120 * S));
        assert_eq!(
            retry_after_ns(b"99999999999999999999999", now),
            Some(u64::MAX)
        );
        assert_eq!(
            retry_after_ns(b"Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(30 * S)
        );
        assert_eq!(
            retry_after_ns(b"Sun, 06 Nov 1994 08:50:07 GMT", now + 500 * MS),
            Some(29_500 * MS),
            "against the passed-in now, to the nanosecond"
        );
        assert_eq!(
            retry_after_ns(b"Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(0),
            "a date in the past: now"
        );
        for bad in [&b""[..], b"-1", b"1.5", b"soon", b"12s"] {
            assert_eq!(retry_after_ns(bad, now), None);
        }
    }

    #[test]
    fn bound_doubles_up_to_the_max() {
        let b = Backoff::new(200, 30_000);
        let bounds: Vec<u64> = (1..=10).map(|f| b.bound_ns(f) / MS).collect();
        assert_eq!(
            bounds,
            [
                200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000
            ]
        );
        assert_eq!(b.bound_ns(0), 200 * MS, "0 failures: as for the first");
        assert_eq!(b.bound_ns(u32::MAX), 30_000 * MS);
        assert_eq!(Backoff::new(500, 100).max_ns(), 500 * MS, "max >= initial");
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        let b = Backoff::new(200, 30_000);
        assert_eq!(b.delay_ns(1, Some(5 * S), u64::MAX), 5 * S);
        assert_eq!(b.delay_ns(9, Some(0), u64::MAX), 0, "even when shorter");
        assert_eq!(b.delay_ns(1, Some(3600 * S), 0), 30 * S, "capped");
        assert_eq!(b.delay_ns(1, Some(u64::MAX), 0), 30 * S);
    }

    #[test]
    fn jitter_spans_the_whole_range() {
        let b = Backoff::new(200, 30_000);
        assert_eq!(b.delay_ns(1, None, 0), 0);
        assert_eq!(b.delay_ns(1, None, u64::MAX), 200 * MS);
        let mid = b.delay_ns(1, None, u64::MAX / 2);
        assert!((99 * MS..=101 * MS).contains(&mid), "{mid}");
    }

    proptest! {
        #[test]
        fn jitter_stays_within_bounds(
            initial in 1u64..=60_000,
            max in 1u64..=3_600_000,
            failures in 0u32..200,
            rand in any::<u64>(),
        ) {
            let b = Backoff::new(initial, max);
            let d = b.delay_ns(failures, None, rand);
            prop_assert!(d <= b.bound_ns(failures));
            prop_assert!(b.bound_ns(failures) <= b.max_ns());
            prop_assert!(b.bound_ns(failures) <= b.bound_ns(failures.saturating_add(1)));
        }
    }
}
