//! The newest committed frames' records, kept in memory for the subscriptions at the live edge.
//!
//! Detection, the live tail and the ClickHouse sink follow the log a few milliseconds behind
//! the writer. Reading back what was just written (a read, a CRC, zstd, the seal) cost them
//! more than evaluating it, so the writer keeps each committed frame's records as the
//! ingest path built them ([`PlainRecords`]) and a subscription takes a frame from here when it
//! is still held, from the segment file otherwise. The two are the same bytes: the frame's
//! payload is those lines compressed.
//!
//! Bounded: frames are held newest first up to `max_bytes` (a quarter of the store's ingest
//! queue budget), and only while some subscription is open; a frame every subscription has
//! taken is let go at once (subscriptions at the live edge keep the held set, and the memory
//! the writer fills next, small and warm). A frame enters only after its fsync succeeded, so
//! nothing here was not acknowledged-durable.

use meshlog_format::frame::PlainRecords;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The held frames; shared by the writer (which adds) and the subscriptions (which read).
#[derive(Debug, Default)]
pub struct Recent {
    inner: Mutex<Held>,
    max_bytes: usize,
    subscribers: AtomicUsize,
}

#[derive(Debug, Default)]
struct Held {
    /// `(leaf, records)`, leaves ascending.
    frames: VecDeque<(u64, Arc<PlainRecords>)>,
    bytes: usize,
    /// Each open subscription's next leaf: it needs no frame below it from here.
    wants: Vec<Arc<AtomicU64>>,
}

impl Recent {
    /// Holds up to `max_bytes` of records (0: nothing is held).
    pub fn new(max_bytes: usize) -> Arc<Recent> {
        Arc::new(Recent {
            max_bytes,
            ..Recent::default()
        })
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        // A panic while holding the lock leaves consistent data (each change is one step).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether frames should be kept: some subscription is open and there is room for any.
    pub fn wanted(&self) -> bool {
        self.max_bytes > 0 && self.subscribers.load(Ordering::Relaxed) > 0
    }

    /// Adds committed frames, oldest first; drops the oldest held past the budget.
    pub(crate) fn extend(&self, frames: impl IntoIterator<Item = (u64, Arc<PlainRecords>)>) {
        let mut h = self.held();
        for (leaf, records) in frames {
            h.bytes += records.bytes();
            h.frames.push_back((leaf, records));
        }
        let taken = h
            .wants
            .iter()
            .map(|w| w.load(Ordering::Relaxed))
            .min()
            .unwrap_or(u64::MAX);
        while h.bytes > self.max_bytes || h.frames.front().is_some_and(|(l, _)| *l < taken) {
            let Some((_, old)) = h.frames.pop_front() else {
                break;
            };
            h.bytes -= old.bytes();
        }
    }

    /// The records of the frame at `leaf`, if held.
    pub(crate) fn get(&self, leaf: u64) -> Option<Arc<PlainRecords>> {
        let h = self.held();
        let (first, _) = h.frames.front()?;
        // Leaves are consecutive unless a frame came without its records: try the direct
        // index first, then search.
        let guess = usize::try_from(leaf.checked_sub(*first)?).ok()?;
        match h.frames.get(guess) {
            Some((l, r)) if *l == leaf => Some(Arc::clone(r)),
            _ => {
                let i = h.frames.binary_search_by_key(&leaf, |(l, _)| *l).ok()?;
                h.frames.get(i).map(|(_, r)| Arc::clone(r))
            }
        }
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> usize {
        self.held().bytes
    }

    /// Counts a subscription for as long as the guard lives.
    pub(crate) fn subscriber(self: &Arc<Self>) -> Subscriber {
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        let wants = Arc::new(AtomicU64::new(0));
        self.held().wants.push(Arc::clone(&wants));
        Subscriber(Arc::clone(self), wants)
    }
}

/// An open subscription's share of [`Recent`]: while one lives, the writer keeps frames, those
/// from its next leaf on at least.
#[derive(Debug)]
pub(crate) struct Subscriber(Arc<Recent>, Arc<AtomicU64>);

impl Subscriber {
    pub(crate) fn recent(&self) -> &Recent {
        &self.0
    }

    /// This subscription needs no frame below `leaf` any more.
    pub(crate) fn taken_below(&self, leaf: u64) {
        self.1.fetch_max(leaf, Ordering::Relaxed);
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let left = self.0.subscribers.fetch_sub(1, Ordering::Relaxed) - 1;
        let mut h = self.0.held();
        h.wants.retain(|w| !Arc::ptr_eq(w, &self.1));
        if left == 0 {
            h.frames.clear();
            h.bytes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlog_format::frame::FrameBuilder;

    fn records(n: usize) -> Arc<PlainRecords> {
        let mut b = FrameBuilder::new(u64::MAX, None).unwrap();
        b.keep_records();
        for i in 0..n {
            b.push_line(format!("{{\"i\":{i}}}\n").as_bytes()).unwrap();
        }
        b.finish().unwrap().take_plain().unwrap()
    }

    #[test]
    fn frames_are_found_by_leaf_and_the_oldest_go_past_the_budget() {
        let one = records(10).bytes();
        let r = Recent::new(one * 3);
        assert!(!r.wanted(), "no subscriber, nothing kept");
        let sub = r.subscriber();
        assert!(r.wanted());
        r.extend((5..10).map(|l| (l, records(10))));
        assert!(r.held_bytes() <= one * 3);
        assert!(r.get(6).is_none(), "dropped: over the budget");
        for l in 7..10 {
            assert_eq!(r.get(l).unwrap().len(), 10);
        }
        assert!(r.get(10).is_none() && r.get(4).is_none());
        // A leaf missing in the middle (a frame that came without its records).
        r.extend([(11, records(2))]);
        assert_eq!(r.get(11).unwrap().len(), 2);
        assert!(r.get(10).is_none());
        drop(sub);
        assert!(!r.wanted());
        assert_eq!(
            r.held_bytes(),
            0,
            "the last subscriber gone: everything let go"
        );
    }

    #[test]
    fn a_frame_every_subscription_has_taken_is_let_go_one_still_wanted_is_kept() {
        let r = Recent::new(usize::MAX);
        let (fast, slow) = (r.subscriber(), r.subscriber());
        r.extend((0..4).map(|l| (l, records(3))));
        fast.taken_below(4);
        slow.taken_below(2);
        // Let go on the next commit: below the slowest subscription's next leaf.
        r.extend([(4, records(3))]);
        assert!(r.get(0).is_none() && r.get(1).is_none());
        for l in 2..5 {
            assert!(r.get(l).is_some(), "{l} is still wanted by the slow one");
        }
        // The slow one gone: what the fast one took goes with the next commit.
        drop(slow);
        r.extend([(5, records(3))]);
        assert!(r.get(3).is_none() && r.get(4).is_some() && r.get(5).is_some());
        assert!(r.held_bytes() <= 2 * records(3).bytes());
    }
}
