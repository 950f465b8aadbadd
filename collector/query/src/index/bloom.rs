//! A Bloom filter with a stable, documented hash (FNV-1a 64 with two offset bases, combined
//! by double hashing), so an index written by one build is read the same by the next.

use serde::{Deserialize, Serialize};

/// Bits per expected item (about 1% false positives with [`HASHES`] hashes).
const BITS_PER_ITEM: usize = 10;
/// Hash functions per item.
pub const HASHES: u32 = 7;

/// The filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bloom {
    /// Number of hash functions.
    pub k: u32,
    /// The bit array, bit `i` is `bits[i / 8] >> (i % 8) & 1` (written as one byte string:
    /// the same postcard bytes as a sequence of `u8`, read in one copy).
    #[serde(with = "bytes")]
    pub bits: Vec<u8>,
}

/// A byte vector as serde bytes (postcard: a varint length then the bytes, exactly what a
/// `Vec<u8>` sequence is on the wire, but decoded with one copy instead of byte by byte).
pub(crate) mod bytes {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(a.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = a.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

impl Bloom {
    /// A filter sized for `items` items.
    pub fn with_items(items: usize) -> Bloom {
        let bytes = (items.max(8) * BITS_PER_ITEM).div_ceil(8);
        Bloom {
            k: HASHES,
            bits: vec![0; bytes],
        }
    }

    /// A filter of `bits_per_item` bits per expected item and `k` hashes, for `items` items.
    pub fn sized(items: usize, bits_per_item: usize, k: u32) -> Bloom {
        Bloom {
            k,
            bits: vec![0; (items.max(8) * bits_per_item).div_ceil(8)],
        }
    }

    fn positions(&self, item: &[u8]) -> impl Iterator<Item = usize> + use<> {
        let m = (self.bits.len() * 8) as u64;
        let h1 = fnv1a(item, 0xcbf2_9ce4_8422_2325);
        let h2 = fnv1a(item, 0x8422_2325_cbf2_9ce4) | 1;
        (0..u64::from(self.k))
            .map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m.max(1)) as usize)
    }

    /// Adds `item`.
    pub fn insert(&mut self, item: &[u8]) {
        for p in self.positions(item).collect::<Vec<_>>() {
            if let Some(b) = self.bits.get_mut(p / 8) {
                *b |= 1 << (p % 8);
            }
        }
    }

    /// False when `item` was certainly never added.
    pub fn may_contain(&self, item: &[u8]) -> bool {
        !self.bits.is_empty()
            && self
                .positions(item)
                .all(|p| self.bits.get(p / 8).is_some_and(|b| b >> (p % 8) & 1 == 1))
    }
}

/// FNV-1a, 64 bits, from `basis`.
fn fnv1a(bytes: &[u8], basis: u64) -> u64 {
    bytes.iter().fold(basis, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_items_are_found_and_most_others_are_not() {
        let mut b = Bloom::with_items(1000);
        for i in 0..1000 {
            b.insert(format!("t:{i}").as_bytes());
        }
        assert!((0..1000).all(|i| b.may_contain(format!("t:{i}").as_bytes())));
        let false_pos = (1000..11_000)
            .filter(|i| b.may_contain(format!("t:{i}").as_bytes()))
            .count();
        assert!(false_pos < 300, "{false_pos} false positives in 10000");
        let bytes = postcard::to_allocvec(&b).unwrap();
        let back: Bloom = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, b);
        // The bits as bytes are the same wire bytes as a sequence of u8.
        #[derive(serde::Serialize)]
        struct Seq {
            k: u32,
            bits: Vec<u8>,
        }
        let seq = Seq {
            k: b.k,
            bits: b.bits.clone(),
        };
        assert_eq!(postcard::to_allocvec(&seq).unwrap(), bytes);
    }

    #[test]
    fn the_hash_is_stable() {
        // Written indexes depend on these values: changing them needs a new index version.
        assert_eq!(fnv1a(b"", 0xcbf2_9ce4_8422_2325), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a", 0xcbf2_9ce4_8422_2325), 0xaf63_dc4c_8601_ec8c);
    }
}
