//! Case-insensitive lookup of header names: every logged header is looked up in the allowlist
//! and in the table of precomputed classes, so a lookup hashes the name once (lower-cased on the
//! fly) and compares it with the one or two entries in its slot, instead of comparing it with
//! every entry of the list.

/// Lower-case names, each with a value, in an open-addressing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameTable<V> {
    entries: Vec<(String, V)>,
    /// Index + 1 of the entry in each slot, 0 when empty; a power of two at least twice the
    /// entries, so a probe sequence is short and always reaches an empty slot.
    slots: Vec<u16>,
}

impl<V> Default for NameTable<V> {
    fn default() -> Self {
        NameTable {
            entries: Vec::new(),
            slots: Vec::new(),
        }
    }
}

/// A hash of `name` that is the same in any case: its length and three of its bytes, each
/// with the ASCII case bit set (`A` and `a` hash alike; other bytes that differ only in that bit
/// only share a slot). Constant work per lookup, whatever the name's length.
fn hash(name: &[u8]) -> u32 {
    let n = name.len();
    let b = |k: usize| u32::from(name.get(k).copied().unwrap_or(0) | 0x20);
    let x = (n as u32) << 24 | b(0) << 16 | b(n / 2) << 8 | b(n.wrapping_sub(1));
    x.wrapping_mul(0x9E37_79B1) >> 16
}

/// Whether `a` (lower case) is `b` in any case: exact bytes first (names usually arrive in lower
/// case, HTTP/2 requires it), then ignoring case.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a == b || a.eq_ignore_ascii_case(b))
}

impl<V> NameTable<V> {
    /// The table of `entries` (names lower-case, distinct; more than 32,767 are not indexed and
    /// are found by comparing each).
    pub(crate) fn new(entries: Vec<(String, V)>) -> Self {
        let mut t = NameTable {
            slots: Vec::new(),
            entries,
        };
        if t.entries.len() >= usize::from(u16::MAX / 2) {
            return t;
        }
        let size = (t.entries.len() * 2).next_power_of_two().max(8);
        t.slots = vec![0; size];
        let mask = size - 1;
        for (k, (name, _)) in t.entries.iter().enumerate() {
            let mut s = hash(name.as_bytes()) as usize & mask;
            while t.slots.get(s).is_some_and(|x| *x != 0) {
                s = (s + 1) & mask;
            }
            if let (Some(slot), Ok(v)) = (t.slots.get_mut(s), u16::try_from(k + 1)) {
                *slot = v;
            }
        }
        t
    }

    /// The value of `name` (any case).
    pub(crate) fn get(&self, name: &str) -> Option<&V> {
        if self.slots.is_empty() {
            return self
                .entries
                .iter()
                .find(|(n, _)| same(n, name))
                .map(|(_, v)| v);
        }
        let mask = self.slots.len() - 1;
        let mut s = hash(name.as_bytes()) as usize & mask;
        loop {
            let k = usize::from(*self.slots.get(s)?);
            let (n, v) = self.entries.get(k.checked_sub(1)?)?;
            if same(n, name) {
                return Some(v);
            }
            s = (s + 1) & mask;
        }
    }

    /// Every entry, in the order given.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(String, V)> {
        self.entries.iter()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_name_in_any_case_and_nothing_else() {
        for n in [0usize, 1, 3, 8, 37, 200] {
            let names: Vec<(String, usize)> =
                (0..n).map(|k| (format!("x-header-{k}"), k)).collect();
            let t = NameTable::new(names.clone());
            for (name, k) in &names {
                assert_eq!(t.get(name), Some(k));
                assert_eq!(t.get(&name.to_ascii_uppercase()), Some(k));
            }
            for miss in [
                "",
                "x-header-",
                "x-header-1000",
                "y-header-1",
                "x-header-1 ",
            ] {
                assert_eq!(t.get(miss), None, "{miss} in {n}");
            }
            assert_eq!(t.iter().count(), n);
        }
    }
}
