//! A frame entry's part kept in its postcard bytes until asked for ([`Lazy::get`]): a query
//! decodes only the parts it needs (the low-cardinality sets when its filter names such a
//! field; the per-VM map only when the segment's summary cannot account for the VMs), so
//! reading an index costs a copy of those bytes rather than building maps of strings.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::marker::PhantomData;

/// A `T` as its postcard bytes (written as one byte string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lazy<T> {
    bytes: Vec<u8>,
    of: PhantomData<T>,
}

impl<T: Serialize + DeserializeOwned> Lazy<T> {
    /// `v`, encoded.
    pub fn new(v: &T) -> Self {
        Lazy {
            // Encoding maps and vectors into a Vec cannot fail; were it to, `get` refuses the
            // empty bytes and the caller treats the part as unknown.
            bytes: postcard::to_allocvec(v).unwrap_or_default(),
            of: PhantomData,
        }
    }

    /// Raw bytes, for tests of what a forged index does.
    #[cfg(test)]
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Lazy {
            bytes,
            of: PhantomData,
        }
    }

    /// The value; `None` when the bytes do not decode (a forged index: the caller assumes
    /// nothing from it).
    pub fn get(&self) -> Option<T> {
        match postcard::take_from_bytes::<T>(&self.bytes) {
            Ok((v, [])) => Some(v),
            _ => None,
        }
    }
}

impl<T> Serialize for Lazy<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::bloom::bytes::serialize(&self.bytes, s)
    }
}

impl<'de, T> Deserialize<'de> for Lazy<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Lazy {
            bytes: super::bloom::bytes::deserialize(d)?,
            of: PhantomData,
        })
    }
}
