//! The per-VM rate cap: a token bucket in exact integer arithmetic, clocked by the caller.

const NANOS: u128 = 1_000_000_000;

/// A token bucket holding up to `burst` tokens, refilled at `rate` tokens per second. Tokens are
/// kept in nano-tokens (`u128`), so refills of a few nanoseconds are not lost to rounding and no
/// float is involved. The bucket starts full.
///
/// Time is the caller's unix-nanosecond clock. A clock that goes backwards (a wall-clock step)
/// refills nothing and re-bases the bucket on the new time: it can neither mint tokens nor block
/// until the old time comes round again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenBucket {
    rate: u64,
    capacity: u128,
    nano_tokens: u128,
    last_ns: Option<u64>,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `rate` per second.
    pub(crate) fn new(rate: u64, burst: u64) -> Self {
        let capacity = u128::from(burst).saturating_mul(NANOS);
        TokenBucket {
            rate,
            capacity,
            nano_tokens: capacity,
            last_ns: None,
        }
    }

    fn refill(&mut self, now_ns: u64) {
        match self.last_ns {
            Some(last) if now_ns > last => {
                let add = u128::from(now_ns - last).saturating_mul(u128::from(self.rate));
                self.nano_tokens = self.nano_tokens.saturating_add(add).min(self.capacity);
            }
            _ => {}
        }
        self.last_ns = Some(now_ns);
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, now_ns: u64) -> bool {
        self.refill(now_ns);
        if self.nano_tokens >= NANOS {
            self.nano_tokens -= NANOS;
            true
        } else {
            false
        }
    }

    /// Whole tokens available at `now_ns` (refills first).
    #[cfg(test)]
    pub(crate) fn available(&mut self, now_ns: u64) -> u64 {
        self.refill(now_ns);
        u64::try_from(self.nano_tokens / NANOS).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;
    const T0: u64 = 1_700_000_000 * S;

    #[test]
    fn starts_full_then_refills_at_the_rate() {
        let mut b = TokenBucket::new(10, 20);
        let taken = (0..100).filter(|_| b.try_take(T0)).count();
        assert_eq!(taken, 20, "the burst");
        assert!(!b.try_take(T0 + 99 * MS), "0.99 tokens after 99 ms");
        assert!(b.try_take(T0 + 100 * MS), "one token per 100 ms");
        assert!(!b.try_take(T0 + 100 * MS));
        // A long pause refills to the burst, not beyond.
        assert_eq!(b.available(T0 + 3600 * S), 20);
    }

    #[test]
    fn sustained_rate_over_a_simulated_minute() {
        let mut b = TokenBucket::new(100, 50);
        // 1000 offers per second for 60 s, every millisecond.
        let mut kept = 0u64;
        for i in 0..60_000u64 {
            if b.try_take(T0 + i * MS) {
                kept += 1;
            }
        }
        // The burst, then 100 per second for the 59.999 s that follow.
        assert_eq!(kept, 50 + 5_999);
    }

    #[test]
    fn tiny_steps_accumulate() {
        // 3 per second, offered every microsecond: no rounding loss. (A burst of 2 so the
        // fraction left over after each take is not clipped by the capacity.)
        let mut b = TokenBucket::new(3, 2);
        assert!(b.try_take(T0) && b.try_take(T0));
        let mut kept = 0;
        for i in 1..=1_000_000u64 {
            if b.try_take(T0 + i * 1_000) {
                kept += 1;
            }
        }
        assert_eq!(kept, 3, "exactly 3 tokens in one second");
    }

    #[test]
    fn clock_going_backwards_neither_mints_nor_blocks() {
        let mut b = TokenBucket::new(1, 1);
        assert!(b.try_take(T0));
        // Step back one hour: no refill...
        assert!(!b.try_take(T0 - 3600 * S));
        // ...and one second after the new time, a token, as if the clock had always been there.
        assert!(b.try_take(T0 - 3599 * S));
        // Extreme values do not overflow.
        let mut b = TokenBucket::new(1_000_000, 10_000_000);
        assert!(b.try_take(0));
        assert!(b.try_take(u64::MAX));
        assert_eq!(b.available(u64::MAX), 10_000_000 - 1);
    }
}
