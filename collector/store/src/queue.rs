//! The ingest queue's byte budget: what the collector holds for batches it has accepted but not
//! yet answered, so memory stays bounded however fast clients send and however slow the disk is.
//!
//! A handler reserves the size of the request body as soon as it has read it (decoding happens
//! under that reservation), then resizes it to the encoded frame, which travels to the writer
//! thread with it; the reservation is released when the writer has answered (after the fsync, or
//! on failure). When the budget is used up new batches are refused at once (503 with
//! Retry-After) instead of waiting in memory. A lone batch larger than the whole budget is still
//! admitted into an empty queue, so no valid batch is refused forever. Every reservation also
//! counts [`OVERHEAD_BYTES`] for what a queued batch costs besides its bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bytes charged per reservation on top of its size (channel slot, acknowledgement, buffers).
pub const OVERHEAD_BYTES: u64 = 256;

/// The budget is used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ingest queue is full ({queued} of {max} bytes waiting to be stored)")]
pub struct QueueFull {
    /// Bytes reserved when the request was refused.
    pub queued: u64,
    /// The budget.
    pub max: u64,
}

/// The shared byte budget.
#[derive(Debug)]
pub struct IngestQueue {
    used: AtomicU64,
    max: u64,
    // Only for logging once per episode; admission looks at `used` alone.
    refusing: AtomicBool,
}

impl IngestQueue {
    /// A budget of `max` bytes (at least 1).
    pub fn new(max: u64) -> Arc<IngestQueue> {
        Arc::new(IngestQueue {
            used: AtomicU64::new(0),
            max: max.max(1),
            refusing: AtomicBool::new(false),
        })
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// The budget in bytes.
    pub fn max(&self) -> u64 {
        self.max
    }

    fn full(&self, queued: u64) -> QueueFull {
        if !self.refusing.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                queued_bytes = queued,
                max_queue_bytes = self.max,
                "ingest queue full: answering 503 to new batches until the writer catches up \
                 (logged once per episode)"
            );
        }
        QueueFull {
            queued,
            max: self.max,
        }
    }

    /// Refuses when the budget is used up, without reserving (a cheap check before reading a
    /// request body).
    pub fn check_room(&self) -> Result<(), QueueFull> {
        let used = self.used();
        if used >= self.max {
            return Err(self.full(used));
        }
        Ok(())
    }

    /// Reserves `bytes` (plus [`OVERHEAD_BYTES`]) unless that would exceed the budget of a
    /// non-empty queue.
    pub fn reserve(self: &Arc<Self>, bytes: u64) -> Result<Reservation, QueueFull> {
        let want = bytes.saturating_add(OVERHEAD_BYTES);
        let mut cur = self.used();
        loop {
            if cur > 0 && cur.saturating_add(want) > self.max {
                return Err(self.full(cur));
            }
            match self.used.compare_exchange_weak(
                cur,
                cur.saturating_add(want),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(Reservation {
                        queue: Arc::clone(self),
                        bytes: want,
                    });
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Whether `bytes` more would stay within the budget now (for what is optional to hold).
    pub fn has_room(&self, bytes: u64) -> bool {
        self.used().saturating_add(bytes) <= self.max
    }

    fn release(&self, bytes: u64) {
        let before = self.used.fetch_sub(bytes, Ordering::AcqRel);
        let now = before.saturating_sub(bytes);
        // Half empty before saying so, so a queue hovering at the limit logs one episode.
        if now <= self.max / 2 && self.refusing.swap(false, Ordering::AcqRel) {
            tracing::info!(
                queued_bytes = now,
                "ingest queue has room again; accepting batches"
            );
        }
    }
}

/// Bytes held in the queue; released on drop.
#[derive(Debug)]
pub struct Reservation {
    queue: Arc<IngestQueue>,
    bytes: u64,
}

impl Reservation {
    /// Changes the reservation to `bytes` (plus [`OVERHEAD_BYTES`]), e.g. from the request body
    /// to the encoded frame. Never refused: the batch is already admitted.
    pub fn resize(&mut self, bytes: u64) {
        let want = bytes.saturating_add(OVERHEAD_BYTES);
        if want > self.bytes {
            self.queue
                .used
                .fetch_add(want - self.bytes, Ordering::AcqRel);
        } else {
            self.queue.release(self.bytes - want);
        }
        self.bytes = want;
    }

    /// Bytes held, overhead included.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.queue.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_bounded_and_released_on_drop() {
        let q = IngestQueue::new(3 * OVERHEAD_BYTES + 300);
        let a = q.reserve(100).unwrap();
        let b = q.reserve(100).unwrap();
        assert_eq!(q.used(), 2 * (100 + OVERHEAD_BYTES));
        assert!(q.check_room().is_ok());
        let full = q.reserve(101).unwrap_err();
        assert_eq!(
            full,
            QueueFull {
                queued: 2 * (100 + OVERHEAD_BYTES),
                max: 3 * OVERHEAD_BYTES + 300
            }
        );
        let c = q.reserve(100).unwrap();
        assert_eq!(q.check_room().unwrap_err().queued, q.max());
        drop((a, b, c));
        assert_eq!(q.used(), 0);
    }

    #[test]
    fn a_batch_larger_than_the_budget_fits_an_empty_queue_only() {
        let q = IngestQueue::new(1000);
        let big = q.reserve(5000).unwrap();
        assert!(q.reserve(1).is_err());
        assert!(q.check_room().is_err());
        drop(big);
        assert!(q.reserve(1).is_ok());
    }

    #[test]
    fn resizing_moves_the_reservation() {
        let q = IngestQueue::new(1 << 20);
        let mut r = q.reserve(1000).unwrap();
        r.resize(10);
        assert_eq!(q.used(), 10 + OVERHEAD_BYTES);
        r.resize(5000);
        assert_eq!(q.used(), 5000 + OVERHEAD_BYTES);
        assert_eq!(r.bytes(), 5000 + OVERHEAD_BYTES);
        drop(r);
        assert_eq!(q.used(), 0);
    }
}
