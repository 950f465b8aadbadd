//! The top-level keys of a stored record that the configured rules read, computed once when
//! the [`crate::Detector`] is built: the reader ([`crate::flat::Flat::parse_keys`]) keeps only
//! these and skips every other value without decoding it.
//!
//! A key is kept when it is one of the exact keys, or starts with one of the prefixes (the
//! secrets rule reads every `meshlog.redacted.<kind>`). The exact keys are in an open-addressing
//! table built when a key is added, hashed by the key's length and its first and last eight
//! bytes as two integers (which are the whole key up to 16 bytes): a lookup is two loads, a
//! multiply and usually one slot; only a hit on a longer key compares its bytes.

/// Up to eight bytes as a little-endian integer (zero-padded).
#[inline]
fn word(b: &[u8]) -> u64 {
    match <[u8; 8]>::try_from(b) {
        Ok(w) => u64::from_le_bytes(w),
        Err(_) => {
            let mut w = [0u8; 8];
            for (d, s) in w.iter_mut().zip(b) {
                *d = *s;
            }
            u64::from_le_bytes(w)
        }
    }
}

/// The first and the last (up to) eight bytes of `k`.
#[inline]
fn head_tail(k: &[u8]) -> (u64, u64) {
    let n = k.len().min(8);
    (
        word(k.get(..n).unwrap_or_default()),
        word(k.get(k.len() - n..).unwrap_or_default()),
    )
}

/// One slot of the table: an exact key's length, first and last eight bytes, and its index in
/// `exact` plus one (0: an empty slot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    head: u64,
    tail: u64,
    len: usize,
    index: usize,
}

/// The slot a key's probe starts at.
#[inline]
fn hash(len: usize, head: u64, tail: u64) -> u64 {
    (head ^ tail.rotate_left(29) ^ len as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32
}

/// How a key is kept: as one of the exact keys (its index: the key's text can be borrowed from
/// the set, see [`Keys::exact_str`]), or by a prefix or by keeping all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// The exact key of this index.
    Exact(usize),
    /// By a prefix, or every key is kept.
    Other,
}

/// A set of keys and key prefixes (see the [module](self) docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// Every key is kept.
    all: bool,
    /// The exact keys, as added (a kept key's text is borrowed from here, see [`Kept`]).
    exact: Vec<Box<str>>,
    /// Their table: a power of two of slots, at least four per key (empty without keys).
    table: Vec<Slot>,
    /// Prefixes, each with its first eight bytes (or fewer) as an integer.
    prefixes: Vec<(u64, Box<[u8]>)>,
    /// The shortest prefix's length.
    shortest_prefix: usize,
}

impl Keys {
    /// The empty set.
    pub fn none() -> Keys {
        Keys::default()
    }

    /// The set that keeps every key.
    pub fn all() -> Keys {
        Keys {
            all: true,
            ..Keys::default()
        }
    }

    /// Adds `key`.
    pub fn insert(&mut self, key: &str) {
        if self.exact_keeps(key.as_bytes()) {
            return;
        }
        self.exact.push(key.into());
        let size = (self.exact.len() * 4).next_power_of_two();
        let mut table = vec![Slot::default(); size];
        for (n, k) in self.exact.iter().enumerate() {
            let (head, tail) = head_tail(k.as_bytes());
            let mut i = hash(k.len(), head, tail) as usize;
            while let Some(slot) = table.get_mut(i & (size - 1)) {
                if slot.index == 0 {
                    *slot = Slot {
                        head,
                        tail,
                        len: k.len(),
                        index: n + 1,
                    };
                    break;
                }
                i += 1;
            }
        }
        self.table = table;
    }

    /// Adds every key starting with `prefix`.
    pub fn insert_prefix(&mut self, prefix: &str) {
        let p = prefix.as_bytes();
        if !self.prefixes.iter().any(|(_, q)| **q == *p) {
            let n = p.len().min(8);
            self.shortest_prefix = if self.prefixes.is_empty() {
                p.len()
            } else {
                self.shortest_prefix.min(p.len())
            };
            self.prefixes
                .push((word(p.get(..n).unwrap_or_default()), p.into()));
        }
    }

    /// Adds every key and prefix of `other`.
    pub fn extend(&mut self, other: &Keys) {
        self.all |= other.all;
        for k in &other.exact {
            self.insert(k);
        }
        for (_, p) in &other.prefixes {
            if let Ok(p) = std::str::from_utf8(p) {
                self.insert_prefix(p);
            }
        }
    }

    /// True when `key` (its bytes, unescaped) is kept.
    #[inline]
    pub fn keeps(&self, key: &[u8]) -> bool {
        self.all || self.exact_keeps(key) || self.prefix_keeps(key)
    }

    /// [`Keys::keeps`] for the key `line[start..end]`, its first and last eight bytes read
    /// from the line directly when it has them (a key in a record is followed by at least
    /// `":` and a value).
    #[inline]
    pub(crate) fn keeps_in(&self, line: &[u8], start: usize, end: usize) -> bool {
        self.kept_in(line, start, end).is_some()
    }

    /// [`Keys::keeps_in`], saying how the key is kept.
    #[inline]
    pub(crate) fn kept_in(&self, line: &[u8], start: usize, end: usize) -> Option<Kept> {
        if self.all {
            return Some(Kept::Other);
        }
        let key = line.get(start..end).unwrap_or_default();
        let n = key.len();
        let words = match (n >= 8, line.get(start..start + 8)) {
            (true, Some(h)) => line.get(end - 8..end).map(|t| (word(h), word(t))),
            (false, Some(h)) => {
                let w = word(h) & ((1u64 << (8 * n)) - 1);
                Some((w, w))
            }
            (_, None) => None,
        };
        let (head, tail) = words.unwrap_or_else(|| head_tail(key));
        if let Some(i) = self.exact_index(key, head, tail) {
            return Some(Kept::Exact(i));
        }
        if self.prefixes.is_empty() || n < self.shortest_prefix {
            return None;
        }
        // A prefix of eight bytes or more starts as the key's head word, already read.
        self.prefixes
            .iter()
            .any(|(h, p)| n >= p.len() && (p.len() < 8 || head == *h) && key.starts_with(p))
            .then_some(Kept::Other)
    }

    /// The text of the exact key [`Kept::Exact`] `i` names.
    #[inline]
    pub(crate) fn exact_str(&self, i: usize) -> Option<&str> {
        self.exact.get(i).map(|k| &**k)
    }

    #[inline]
    fn exact_keeps(&self, key: &[u8]) -> bool {
        let (head, tail) = head_tail(key);
        self.exact_index(key, head, tail).is_some()
    }

    /// The index in `exact` of `key` (whose first and last eight bytes are `head`, `tail`).
    #[inline]
    fn exact_index(&self, key: &[u8], head: u64, tail: u64) -> Option<usize> {
        let mask = self.table.len().wrapping_sub(1);
        let mut i = hash(key.len(), head, tail) as usize;
        while let Some(slot) = self.table.get(i & mask) {
            if slot.index == 0 {
                return None;
            }
            if slot.head == head
                && slot.tail == tail
                && slot.len == key.len()
                && (key.len() <= 16
                    || self
                        .exact
                        .get(slot.index - 1)
                        .is_some_and(|k| k.as_bytes() == key))
            {
                return Some(slot.index - 1);
            }
            i += 1;
        }
        None
    }

    #[inline]
    fn prefix_keeps(&self, key: &[u8]) -> bool {
        if self.prefixes.is_empty() || key.len() < self.shortest_prefix {
            return false;
        }
        self.prefixes.iter().any(|(h, p)| {
            if key.len() < p.len() {
                return false;
            }
            // A prefix shorter than eight bytes compares as its own length.
            let n = p.len().min(8);
            word(key.get(..n).unwrap_or_default()) == *h && key.starts_with(p)
        })
    }

    /// True when every key is kept.
    pub fn keeps_all(&self) -> bool {
        self.all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_keys_prefixes_and_long_keys_are_kept_others_not() {
        let mut k = Keys::none();
        k.insert("http.response.status_code");
        k.insert("a");
        let long = "x".repeat(100);
        k.insert(&long);
        k.insert_prefix("meshlog.redacted.");
        for yes in [
            "http.response.status_code",
            "a",
            long.as_str(),
            "meshlog.redacted.ip",
            "meshlog.redacted.",
        ] {
            assert!(k.keeps(yes.as_bytes()), "{yes}");
        }
        for no in [
            "",
            "b",
            "http.response.status_cod",
            "http.response.status_codf",
            // The same length, first and last eight bytes as a kept key.
            "http.resXonse.status_code",
            "meshlog.redacted",
            &"x".repeat(99),
        ] {
            assert!(!k.keeps(no.as_bytes()), "{no}");
        }
        assert!(Keys::all().keeps(b"anything"));
        assert!(!Keys::none().keeps(b""));
        let mut both = Keys::none();
        both.extend(&k);
        assert!(both.keeps(b"meshlog.redacted.jwt") && both.keeps(b"a"));
    }
}
