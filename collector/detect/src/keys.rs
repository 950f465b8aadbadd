//! The top-level keys of a stored record that the configured rules read, computed once when
//! the [`crate::Detector`] is built: the reader ([`crate::flat::Flat::parse_keys`]) keeps only
//! these and skips every other value without decoding it.
//!
//! A key is kept when it is one of the exact keys, or starts with one of the prefixes (the
//! secrets rule reads every `meshlog.redacted.<kind>`). Lookups are by length first, then by
//! the key's first and last eight bytes as two integers (which is the whole key up to 16
//! bytes): a record's 20 to 40 keys cost a few nanoseconds each.

/// Keys longer than this are looked up in one list rather than by length.
const BY_LEN: usize = 64;

/// A key with its first and last eight bytes as integers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    head: u64,
    tail: u64,
    bytes: Box<[u8]>,
}

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

impl Key {
    fn new(k: &[u8]) -> Key {
        let (head, tail) = head_tail(k);
        Key {
            head,
            tail,
            bytes: k.into(),
        }
    }
}

/// A set of keys and key prefixes (see the [module](self) docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// Every key is kept.
    all: bool,
    /// Exact keys shorter than [`BY_LEN`], by length.
    by_len: Vec<Vec<Key>>,
    /// Exact keys of [`BY_LEN`] bytes or more.
    long: Vec<Box<[u8]>>,
    /// Prefixes, each with its first eight bytes (or fewer) as an integer.
    prefixes: Vec<(u64, Box<[u8]>)>,
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
        if self.keeps(key.as_bytes()) {
            return;
        }
        let n = key.len();
        if n < BY_LEN {
            if self.by_len.len() <= n {
                self.by_len.resize_with(n + 1, Vec::new);
            }
            if let Some(list) = self.by_len.get_mut(n) {
                list.push(Key::new(key.as_bytes()));
            }
        } else {
            self.long.push(key.as_bytes().into());
        }
    }

    /// Adds every key starting with `prefix`.
    pub fn insert_prefix(&mut self, prefix: &str) {
        let p = prefix.as_bytes();
        if !self.prefixes.iter().any(|(_, q)| **q == *p) {
            let n = p.len().min(8);
            self.prefixes
                .push((word(p.get(..n).unwrap_or_default()), p.into()));
        }
    }

    /// Adds every key and prefix of `other`.
    pub fn extend(&mut self, other: &Keys) {
        self.all |= other.all;
        let exact = other.by_len.iter().flatten().map(|k| &k.bytes);
        for k in exact.chain(&other.long) {
            if let Ok(k) = std::str::from_utf8(k) {
                self.insert(k);
            }
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
        if self.all {
            return true;
        }
        let exact = if key.len() < BY_LEN {
            match self.by_len.get(key.len()) {
                Some(list) if !list.is_empty() => {
                    let (head, tail) = head_tail(key);
                    list.iter().any(|k| {
                        k.head == head && k.tail == tail && (key.len() <= 16 || *k.bytes == *key)
                    })
                }
                _ => false,
            }
        } else {
            self.long.iter().any(|k| **k == *key)
        };
        exact || self.prefix_keeps(key)
    }

    #[inline]
    fn prefix_keeps(&self, key: &[u8]) -> bool {
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
