//! The top-level keys of a stored record that the configured rules read, computed once when
//! the [`crate::Detector`] is built: the reader ([`crate::flat::Flat::parse_keys`]) keeps only
//! these and skips every other value without decoding it.
//!
//! A key is kept when it is one of the exact keys, or starts with one of the prefixes (the
//! secrets rule reads every `meshlog.redacted.<kind>`). Lookups are by length first, then a
//! comparison with the few keys of that length: a record's 20 to 40 keys cost a few
//! nanoseconds each.

/// Keys longer than this are looked up in one list rather than by length.
const BY_LEN: usize = 64;

/// A set of keys and key prefixes (see the [module](self) docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// Every key is kept.
    all: bool,
    /// Exact keys shorter than [`BY_LEN`], by length.
    by_len: Vec<Vec<Box<[u8]>>>,
    /// Exact keys of [`BY_LEN`] bytes or more.
    long: Vec<Box<[u8]>>,
    /// Prefixes.
    prefixes: Vec<Box<[u8]>>,
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
        let k: Box<[u8]> = key.as_bytes().into();
        let list = match key.len() {
            n if n < BY_LEN => {
                if self.by_len.len() <= n {
                    self.by_len.resize_with(n + 1, Vec::new);
                }
                self.by_len.get_mut(n)
            }
            _ => Some(&mut self.long),
        };
        if let Some(list) = list
            && !list.contains(&k)
        {
            list.push(k);
        }
    }

    /// Adds every key starting with `prefix`.
    pub fn insert_prefix(&mut self, prefix: &str) {
        let p: Box<[u8]> = prefix.as_bytes().into();
        if !self.prefixes.contains(&p) {
            self.prefixes.push(p);
        }
    }

    /// Adds every key and prefix of `other`.
    pub fn extend(&mut self, other: &Keys) {
        self.all |= other.all;
        for k in other.by_len.iter().flatten().chain(&other.long) {
            if let Ok(k) = std::str::from_utf8(k) {
                self.insert(k);
            }
        }
        for p in &other.prefixes {
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
            self.by_len
                .get(key.len())
                .is_some_and(|l| l.iter().any(|k| **k == *key))
        } else {
            self.long.iter().any(|k| **k == *key)
        };
        exact || self.prefixes.iter().any(|p| key.starts_with(p))
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
