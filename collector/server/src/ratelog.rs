//! Log lines that a client can cause once per request (refusals, empty batches) are written at
//! most once per interval per kind, with the number suppressed since the last one, so a
//! misbehaving or hostile client cannot flood the collector's log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One kind of line, written at most once per `interval`.
#[derive(Debug)]
pub struct RateLimited {
    interval: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimited {
    /// At most one line per `interval`.
    pub const fn new(interval: Duration) -> Self {
        RateLimited {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(n)` when a line may be written now (`n` lines were suppressed since the last),
    /// `None` when this one is suppressed.
    pub fn allow(&self) -> Option<u64> {
        let mut st = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let now = Instant::now();
        match st.0 {
            Some(last) if now.duration_since(last) < self.interval => {
                st.1 += 1;
                None
            }
            _ => {
                let n = st.1;
                *st = (Some(now), 0);
                Some(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_one_line_and_a_count() {
        let r = RateLimited::new(Duration::from_secs(3600));
        assert_eq!(r.allow(), Some(0));
        for _ in 0..5 {
            assert_eq!(r.allow(), None);
        }
        let r = RateLimited::new(Duration::ZERO);
        assert_eq!(r.allow(), Some(0));
        assert_eq!(r.allow(), Some(0));
    }
}
