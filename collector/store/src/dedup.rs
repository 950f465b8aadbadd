//! Batch ids, and the bounded index of those already stored, so a retried batch is stored once.
//!
//! The filter sends every batch with a `meshlog-batch-id` header and resends the identical body
//! with the identical id when it did not get a 200 (timeout, collector restart, full disk). The
//! id is stored in the frame header (see `meshlog_format::frame`), so after a restart the index is
//! rebuilt from frame headers alone, without decompressing a payload.
//!
//! The index remembers the last `window` distinct ids stored (a count, not a time: it is what
//! bounds memory). Each id is kept as a 128-bit keyed SipHash of its bytes rather than as text:
//! about 52 bytes per id whatever its length (measured: 1,000,000 ids take 49 MiB, 2,000,000
//! take 100 MiB; memory grows with the ids actually seen, up to the window), and with a
//! per-process random key nobody can craft two ids that collide. A retry whose id has
//! left the window is stored again, as a second copy; the filter stops retrying a batch long
//! before (its buffer is bounded), so that takes a client retrying for hours.

pub use meshlog_format::batch_id::{BatchId, BatchIdError, MAX_BATCH_ID_LEN};
use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A batch id as the index keeps it: a 128-bit keyed hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchKey(u128);

/// Turns batch ids into [`BatchKey`]s with this process's random keys. Cheap to clone; every
/// clone gives the same keys.
#[derive(Debug, Clone)]
pub struct Keyer {
    // Two independently keyed SipHash-1-3 instances: 128 bits, collision-free in practice.
    lo: RandomState,
    hi: RandomState,
}

impl Default for Keyer {
    fn default() -> Self {
        Keyer {
            lo: RandomState::new(),
            hi: RandomState::new(),
        }
    }
}

impl Keyer {
    /// The key of `id`.
    pub fn key(&self, id: &BatchId) -> BatchKey {
        let lo = self.lo.hash_one(id.as_bytes());
        let hi = self.hi.hash_one(id.as_bytes());
        BatchKey(u128::from(hi) << 64 | u128::from(lo))
    }
}

/// The last `window` distinct batch keys stored, oldest evicted first.
#[derive(Debug)]
pub struct DedupIndex {
    window: usize,
    order: VecDeque<BatchKey>,
    set: HashSet<BatchKey>,
}

impl DedupIndex {
    /// An empty index remembering at most `window` ids (at least 1).
    pub fn new(window: usize) -> Self {
        DedupIndex {
            window: window.max(1),
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    /// True when `key` was stored and is still in the window.
    pub fn contains(&self, key: BatchKey) -> bool {
        self.set.contains(&key)
    }

    /// Records `key` as stored, evicting the oldest key when the window is full.
    pub fn insert(&mut self, key: BatchKey) {
        if !self.set.insert(key) {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > self.window {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The window size.
    pub fn window(&self) -> usize {
        self.window
    }
}

/// The index as the HTTP handlers (an early answer for a retry, before decoding its body) and
/// the writer thread (the authoritative check, and the inserts after each fsync) share it.
#[derive(Debug)]
pub struct SharedIndex {
    keyer: Keyer,
    index: Mutex<DedupIndex>,
}

impl SharedIndex {
    /// An empty index remembering at most `window` ids.
    pub fn new(window: usize) -> Self {
        SharedIndex {
            keyer: Keyer::default(),
            index: Mutex::new(DedupIndex::new(window)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, DedupIndex> {
        // The index stays consistent whatever a panicking holder did: each call is one step.
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key of `id`.
    pub fn key(&self, id: &BatchId) -> BatchKey {
        self.keyer.key(id)
    }

    /// True when a batch with this key is durably stored (and still in the window).
    pub fn contains(&self, key: BatchKey) -> bool {
        self.lock().contains(key)
    }

    /// Records keys as durably stored, in order.
    pub fn insert(&self, keys: impl IntoIterator<Item = BatchKey>) {
        let mut ix = self.lock();
        for k in keys {
            ix.insert(k);
        }
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> BatchId {
        BatchId::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn batch_ids_are_one_to_128_visible_ascii_bytes() {
        assert_eq!(
            id("0123456789abcdef:1-500").as_str(),
            "0123456789abcdef:1-500"
        );
        assert_eq!(id("!").as_str(), "!");
        assert_eq!(id(&"~".repeat(128)).as_bytes().len(), 128);
        assert_eq!(BatchId::parse(b""), Err(BatchIdError::Empty));
        assert_eq!(
            BatchId::parse("x".repeat(129).as_bytes()),
            Err(BatchIdError::TooLong(129))
        );
        for (bytes, byte, at) in [
            (&b"a b"[..], b' ', 1),
            (b"ab\t", b'\t', 2),
            (b"\x7f", 0x7f, 0),
            ("é".as_bytes(), 0xc3, 0),
        ] {
            assert_eq!(
                BatchId::parse(bytes),
                Err(BatchIdError::NotVisibleAscii { byte, at }),
                "{bytes:?}"
            );
        }
        assert_eq!(
            BatchId::parse(b"a b").unwrap_err().to_string(),
            "has byte 0x20 at position 1; only visible ASCII (0x21 to 0x7e) is allowed"
        );
    }

    #[test]
    fn keys_are_stable_per_keyer_and_distinct_per_id() {
        let k = Keyer::default();
        assert_eq!(k.key(&id("a:1-2")), k.clone().key(&id("a:1-2")));
        assert_ne!(k.key(&id("a:1-2")), k.key(&id("a:1-3")));
        // Another process (keyer) hashes differently: keys never leave the process.
        assert_ne!(k.key(&id("a:1-2")), Keyer::default().key(&id("a:1-2")));
    }

    #[test]
    fn the_window_keeps_the_last_n_distinct_ids() {
        let k = Keyer::default();
        let mut ix = DedupIndex::new(3);
        for s in ["a", "b", "c", "b"] {
            ix.insert(k.key(&id(s)));
        }
        assert_eq!(ix.len(), 3, "re-inserting b changes nothing");
        ix.insert(k.key(&id("d")));
        assert!(!ix.contains(k.key(&id("a"))), "oldest evicted");
        for s in ["b", "c", "d"] {
            assert!(ix.contains(k.key(&id(s))), "{s}");
        }
        assert_eq!(ix.len(), 3);
    }

    /// Memory follows the window, not the number of ids that went through it.
    #[test]
    fn memory_per_id_is_bounded() {
        let k = Keyer::default();
        let mut ix = DedupIndex::new(10_000);
        for i in 0..25_000u64 {
            ix.insert(k.key(&id(&format!("0123456789abcdef:{i}-{}", i + 499))));
        }
        assert_eq!(ix.len(), 10_000);
        // Capacity stays near the window however many ids went through.
        assert!(ix.set.capacity() < 2 * 10_000 + 64, "{}", ix.set.capacity());
        assert!(
            ix.order.capacity() < 2 * 10_000 + 64,
            "{}",
            ix.order.capacity()
        );
    }
}
