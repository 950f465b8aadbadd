//! Authenticated encryption of one stored batch: XChaCha20-Poly1305 with a key from the
//! data-encryption key file ([`Keyring`]).
//!
//! [`seal`] encrypts with the keyring's current (last) key and returns that key's id, which
//! the caller stores next to the ciphertext, and `nonce (24 bytes) || ciphertext || tag (16
//! bytes)`. [`open`] takes the stored key id back. The associated data is authenticated but not
//! encrypted: the caller passes what describes the data (its header), so a ciphertext moved
//! under another header, or a header edited in place, fails to open.
//!
//! [`seal_in_place`] and [`open_detached`] are the same construction for a caller that keeps
//! the nonce apart from `ciphertext || tag`: the segment store puts it into the frame header,
//! so that no two frame headers are alike and a sealed payload opens under its own header only.
//!
//! XChaCha20's 192-bit nonce is why nonces can simply be random: the chance of a repeat stays
//! negligible for far more batches than one key will ever seal (unlike the 96-bit nonces of
//! AES-GCM or ChaCha20-Poly1305, where random nonces limit a key to about 2^32 messages).
//! The cipher state holding the key is wiped when dropped.

use crate::keys::{DataKey, Keyring};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{Key, KeyInit, Tag, XChaCha20Poly1305, XNonce};

/// Length of the random nonce at the start of sealed data.
pub const NONCE_LEN: usize = 24;
/// Length of the authentication tag at the end of sealed data.
pub const TAG_LEN: usize = 16;
/// Bytes sealing adds to a plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// A sealed batch: the id of the key that sealed it and `nonce || ciphertext || tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Id of the data-encryption key used (the caller stores it with the data).
    pub key_id: String,
    /// `nonce || ciphertext || tag`.
    pub bytes: Vec<u8>,
}

/// Why a batch could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The operating system's random number generator failed.
    #[error("cannot get a random nonce from the operating system: {0}")]
    Random(String),
    /// More than XChaCha20 can encrypt under one nonce (256 GiB).
    #[error("a batch of {len} bytes is too large to encrypt")]
    TooLarge {
        /// The plaintext length.
        len: usize,
    },
}

/// Why sealed data could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The data names a key the key file does not have (removed, or the wrong key file).
    #[error(
        "no data-encryption key with id {id:?} in the key file (it has {}); was a key removed, \
         or is this the wrong key file?",
        available.join(", ")
    )]
    UnknownKey {
        /// The key id stored with the data.
        id: String,
        /// The ids the key file has.
        available: Vec<String>,
    },
    /// Shorter than a nonce and a tag: truncated.
    #[error("sealed data of {len} bytes is shorter than nonce and tag ({OVERHEAD} bytes)")]
    TooShort {
        /// The length found.
        len: usize,
    },
    /// The tag does not match: the key is not the one that sealed (the key file's key under
    /// this id differs), or the data or its associated data (header) was altered.
    #[error(
        "authentication failed with key {key_id:?}: the key differs from the one that sealed \
         this data, or the data or its header was altered"
    )]
    AuthenticationFailed {
        /// The key id tried.
        key_id: String,
    },
}

/// Seals `plaintext` with the keyring's current key, binding `associated_data`.
pub fn seal(
    keyring: &Keyring,
    plaintext: &[u8],
    associated_data: &[u8],
) -> Result<Sealed, SealError> {
    let key = keyring.current();
    let nonce = random_nonce()?;
    Ok(Sealed {
        key_id: key.id().to_owned(),
        bytes: seal_with_nonce(key, &nonce, plaintext, associated_data)?,
    })
}

/// Opens data sealed with the key `key_id`, checking `associated_data`.
pub fn open(
    keyring: &Keyring,
    key_id: &str,
    sealed: &[u8],
    associated_data: &[u8],
) -> Result<Vec<u8>, OpenError> {
    // The key is looked up first: an unknown key id is reported as such even for short data.
    keyring
        .get(key_id)
        .ok_or_else(|| unknown_key(keyring, key_id))?;
    let (Some((nonce, rest)), true) = (sealed.split_first_chunk(), sealed.len() >= OVERHEAD) else {
        return Err(OpenError::TooShort { len: sealed.len() });
    };
    open_detached(keyring, key_id, nonce, rest, associated_data)
}

/// A fresh random nonce from the operating system, for [`seal_in_place`].
pub fn random_nonce() -> Result<[u8; NONCE_LEN], SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| SealError::Random(e.to_string()))?;
    Ok(nonce)
}

/// Encrypts `buf` in place with the keyring's current key under `nonce`, binding
/// `associated_data`; returns the tag, which the caller stores right after the ciphertext. The
/// caller stores the nonce and the key id (`keyring.current().id()`) itself. The nonce must come
/// from [`random_nonce`]: a nonce used twice under one key breaks the cipher.
pub fn seal_in_place(
    keyring: &Keyring,
    nonce: &[u8; NONCE_LEN],
    associated_data: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN], SealError> {
    let tag = cipher(keyring.current())
        .encrypt_in_place_detached(XNonce::from_slice(nonce), associated_data, buf)
        .map_err(|_| SealError::TooLarge { len: buf.len() })?;
    Ok(tag.into())
}

/// Opens `ciphertext || tag` sealed under `nonce` with the key `key_id` (what
/// [`seal_in_place`] produced), checking `associated_data`.
pub fn open_detached(
    keyring: &Keyring,
    key_id: &str,
    nonce: &[u8; NONCE_LEN],
    sealed: &[u8],
    associated_data: &[u8],
) -> Result<Vec<u8>, OpenError> {
    let key = keyring
        .get(key_id)
        .ok_or_else(|| unknown_key(keyring, key_id))?;
    let Some(split) = sealed.len().checked_sub(TAG_LEN) else {
        // Reported with the nonce counted, as for `open`: the sealed data is too short.
        return Err(OpenError::TooShort {
            len: sealed.len() + NONCE_LEN,
        });
    };
    let (ciphertext, tag) = sealed.split_at(split);
    let mut buf = ciphertext.to_vec();
    cipher(key)
        .decrypt_in_place_detached(
            XNonce::from_slice(nonce),
            associated_data,
            &mut buf,
            Tag::from_slice(tag),
        )
        .map_err(|_| OpenError::AuthenticationFailed {
            key_id: key_id.to_owned(),
        })?;
    Ok(buf)
}

fn unknown_key(keyring: &Keyring, key_id: &str) -> OpenError {
    OpenError::UnknownKey {
        id: key_id.to_owned(),
        available: keyring.ids().map(str::to_owned).collect(),
    }
}

fn cipher(key: &DataKey) -> XChaCha20Poly1305 {
    // Borrowed, not copied: the only copy is inside the cipher, which wipes it on drop.
    XChaCha20Poly1305::new(Key::from_slice(key.bytes()))
}

fn seal_with_nonce(
    key: &DataKey,
    nonce: &[u8; NONCE_LEN],
    plaintext: &[u8],
    associated_data: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher(key)
        .encrypt_in_place_detached(
            XNonce::from_slice(nonce),
            associated_data,
            out.get_mut(NONCE_LEN..).unwrap_or_default(),
        )
        .map_err(|_| SealError::TooLarge {
            len: plaintext.len(),
        })?;
    out.extend_from_slice(&tag);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ring(ids: &[(&str, u8)]) -> Keyring {
        Keyring::new(
            ids.iter()
                .map(|(id, b)| DataKey::new(id, [*b; 32]).unwrap())
                .collect(),
        )
        .unwrap()
    }

    /// draft-irtf-cfrg-xchacha-03 §A.3.1: our layout is nonce || that ciphertext || tag.
    #[test]
    fn known_answer_from_the_xchacha_draft() {
        let key: [u8; 32] = core::array::from_fn(|i| 0x80 + i as u8);
        let nonce: [u8; 24] = core::array::from_fn(|i| 0x40 + i as u8);
        let aad = hex::decode("50515253c0c1c2c3c4c5c6c7").unwrap();
        let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip \
for the future, sunscreen would be it.";
        let ct = concat!(
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb",
            "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452",
            "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9",
            "21f9664c97637da9768812f615c68b13b52e",
            "c0875924c1c7987947deafd8780acf49"
        );
        let k = DataKey::new("kat", key).unwrap();
        let sealed = seal_with_nonce(&k, &nonce, pt, &aad).unwrap();
        assert_eq!(&sealed[..NONCE_LEN], &nonce);
        assert_eq!(hex::encode(&sealed[NONCE_LEN..]), ct);
        let ring = Keyring::new(vec![k]).unwrap();
        assert_eq!(open(&ring, "kat", &sealed, &aad).unwrap(), pt);
    }

    #[test]
    fn seals_with_the_newest_key_and_opens_with_any() {
        let old = ring(&[("k1", 1)]);
        let a = seal(&old, b"batch one", b"header 1").unwrap();
        assert_eq!(a.key_id, "k1");
        assert_eq!(a.bytes.len(), b"batch one".len() + OVERHEAD);
        let rotated = ring(&[("k1", 1), ("k2", 2)]);
        let b = seal(&rotated, b"batch two", b"header 2").unwrap();
        assert_eq!(b.key_id, "k2");
        assert_eq!(
            open(&rotated, &a.key_id, &a.bytes, b"header 1").unwrap(),
            b"batch one"
        );
        assert_eq!(
            open(&rotated, &b.key_id, &b.bytes, b"header 2").unwrap(),
            b"batch two"
        );
        // Empty batches work too.
        let e = seal(&rotated, b"", b"").unwrap();
        assert_eq!(e.bytes.len(), OVERHEAD);
        assert_eq!(open(&rotated, "k2", &e.bytes, b"").unwrap(), b"");
    }

    #[test]
    fn nonces_are_random() {
        let r = ring(&[("k", 1)]);
        let a = seal(&r, b"same", b"same").unwrap();
        let b = seal(&r, b"same", b"same").unwrap();
        assert_ne!(a.bytes[..NONCE_LEN], b.bytes[..NONCE_LEN]);
        assert_ne!(a.bytes, b.bytes);
    }

    #[test]
    fn detached_sealing_is_the_same_construction_with_the_nonce_kept_apart() {
        let r = ring(&[("k1", 1), ("k2", 2)]);
        let nonce = random_nonce().unwrap();
        assert_ne!(nonce, random_nonce().unwrap());
        let mut buf = b"zstd payload".to_vec();
        let tag = seal_in_place(&r, &nonce, b"hdr", &mut buf).unwrap();
        assert_ne!(&buf[..], b"zstd payload");
        buf.extend_from_slice(&tag);
        // Byte for byte what `seal` stores after its nonce.
        let whole = seal_with_nonce(r.current(), &nonce, b"zstd payload", b"hdr").unwrap();
        assert_eq!(&whole[NONCE_LEN..], &buf[..]);
        assert_eq!(
            open_detached(&r, "k2", &nonce, &buf, b"hdr").unwrap(),
            b"zstd payload"
        );
        assert_eq!(open(&r, "k2", &whole, b"hdr").unwrap(), b"zstd payload");
        // Another nonce (a payload moved under another header), other associated data, the
        // other key: all fail authentication; an unknown id says so.
        let mut other = nonce;
        other[0] ^= 1;
        for (n, aad, id) in [
            (&other, &b"hdr"[..], "k2"),
            (&nonce, b"hdR", "k2"),
            (&nonce, b"hdr", "k1"),
        ] {
            assert_eq!(
                open_detached(&r, id, n, &buf, aad),
                Err(OpenError::AuthenticationFailed { key_id: id.into() })
            );
        }
        assert!(matches!(
            open_detached(&r, "k3", &nonce, &buf, b"hdr"),
            Err(OpenError::UnknownKey { .. })
        ));
        assert_eq!(
            open_detached(&r, "k2", &nonce, &buf[..TAG_LEN - 1], b"hdr"),
            Err(OpenError::TooShort {
                len: NONCE_LEN + TAG_LEN - 1
            })
        );
    }

    #[test]
    fn unknown_key_and_failed_authentication_are_told_apart() {
        let r = ring(&[("k1", 1), ("k2", 2)]);
        let s = seal(&r, b"records", b"hdr").unwrap();
        let err = open(&r, "k9", &s.bytes, b"hdr").unwrap_err();
        assert_eq!(
            err,
            OpenError::UnknownKey {
                id: "k9".into(),
                available: vec!["k1".into(), "k2".into()]
            }
        );
        assert!(err.to_string().contains("k1, k2"), "{err}");
        // Another key in the file, or the same id with other bytes: authentication fails.
        let auth = OpenError::AuthenticationFailed {
            key_id: "k1".into(),
        };
        assert_eq!(open(&r, "k1", &s.bytes, b"hdr").unwrap_err(), auth);
        let impostor = ring(&[("k2", 3)]);
        assert!(matches!(
            open(&impostor, "k2", &s.bytes, b"hdr"),
            Err(OpenError::AuthenticationFailed { .. })
        ));
        // Other associated data (a moved or edited header).
        assert!(matches!(
            open(&r, "k2", &s.bytes, b"hdR"),
            Err(OpenError::AuthenticationFailed { .. })
        ));
        assert!(matches!(
            open(&r, "k2", &s.bytes, b""),
            Err(OpenError::AuthenticationFailed { .. })
        ));
        for len in 0..OVERHEAD {
            assert_eq!(
                open(&r, "k2", &s.bytes[..len], b"hdr"),
                Err(OpenError::TooShort { len })
            );
        }
        assert!(matches!(
            open(&r, "k2", &s.bytes[..OVERHEAD], b"hdr"),
            Err(OpenError::AuthenticationFailed { .. })
        ));
    }

    #[test]
    fn every_single_bit_flip_fails_authentication() {
        let r = ring(&[("k", 5)]);
        let s = seal(&r, b"a short batch", b"frame header").unwrap();
        for bit in 0..s.bytes.len() * 8 {
            let mut b = s.bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                open(&r, "k", &b, b"frame header"),
                Err(OpenError::AuthenticationFailed { key_id: "k".into() }),
                "bit {bit}"
            );
        }
        let mut longer = s.bytes.clone();
        longer.push(0);
        assert!(open(&r, "k", &longer, b"frame header").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trips_and_rejects_any_change(
            pt in proptest::collection::vec(any::<u8>(), 0..512),
            aad in proptest::collection::vec(any::<u8>(), 0..64),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let r = ring(&[("a", 1), ("b", 2)]);
            let s = seal(&r, &pt, &aad).unwrap();
            prop_assert_eq!(&open(&r, &s.key_id, &s.bytes, &aad).unwrap(), &pt);
            let mut b = s.bytes.clone();
            let i = at.index(b.len());
            b[i] ^= flip;
            prop_assert!(open(&r, &s.key_id, &b, &aad).is_err());
            let mut other_aad = aad.clone();
            other_aad.push(flip);
            prop_assert!(open(&r, &s.key_id, &s.bytes, &other_aad).is_err());
        }
    }
}
