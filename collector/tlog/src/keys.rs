//! Keys and key files: the Ed25519 checkpoint signing key and its public verifier key (in the
//! C2SP signed-note key formats), and the data-encryption key file for encryption at rest.
//!
//! Signing keys use the text forms of Go's `golang.org/x/mod/sumdb/note`, so the verifier key
//! can be handed to any signed-note tool:
//!
//! - signer: `PRIVATE+KEY+<name>+<key id, 8 hex>+<base64(0x01 || 32-byte Ed25519 seed)>`
//! - verifier: `<name>+<key id, 8 hex>+<base64(0x01 || 32-byte Ed25519 public key)>`
//!
//! where the key id is `SHA-256(name || 0x0A || 0x01 || public key)[:4]` (big-endian) and the
//! name is the log's origin. A key file holds one key on one line.
//!
//! The data-encryption key file holds several 32-byte keys, one per line as
//! `<key-id> <base64 of 32 bytes>`, with `#` comment lines and blank lines allowed. Rotation
//! is by adding a key: **the last key in the file encrypts** new data, every key in the file
//! decrypts. Removing a key makes the data sealed with it unreadable, so the file only grows.
//! Key ids are 1 to 32 characters of `A-Z a-z 0-9 . _ -`; generated ones are `dk-` and 8
//! random hex digits.
//!
//! Files with private keys are created with mode 0600 and never overwritten. Everything read
//! from a file is untrusted: malformed content is an error naming the file and line, never a
//! panic, and no error message contains key material. Key bytes are wiped from memory when
//! dropped (`zeroize`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The signed-note signature type byte for Ed25519.
pub const ALG_ED25519: u8 = 0x01;
/// Length of an Ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;
/// Length of a data-encryption key in bytes.
pub const DATA_KEY_LEN: usize = 32;
/// Longest data-encryption key id.
pub const MAX_KEY_ID_LEN: usize = 32;
/// Key files larger than this are refused unread (a key file is a few hundred bytes; a data
/// key file grows by ~60 bytes per rotation).
pub const MAX_KEY_FILE_BYTES: u64 = 1 << 20;

/// File name of the checkpoint signing key that `meshlog keygen --out DIR` writes (private).
pub const SIGNING_KEY_FILE: &str = "signing.key";
/// File name of the verifier key that `meshlog keygen --out DIR` writes (public).
pub const VERIFIER_KEY_FILE: &str = "verifier.pub";

const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";
/// The comment a new data-encryption key file starts with.
const DATA_KEY_FILE_HEADER: &str = "\
# meshlog data-encryption keys: one per line, <key-id> <base64 of 32 bytes>.
# The last key encrypts new data; every key here decrypts. Add keys with
# `meshlog keygen --data-key FILE`; never remove a key while data sealed with it is kept.
";

/// What is wrong with a key or key text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A key name (log origin) that signed notes cannot carry.
    #[error(
        "invalid key name {0:?}: it must be non-empty, with no spaces, '+' or control characters"
    )]
    InvalidName(String),
    /// Not a signer key (`PRIVATE+KEY+...`).
    #[error("not a signing key: expected PRIVATE+KEY+<name>+<key id>+<key>")]
    NotASignerKey,
    /// A signer key where a verifier key was expected: refused so it is not published.
    #[error("this is a private signing key, not a public verifier key; do not share it")]
    PrivateKeyGiven,
    /// Not `<name>+<key id>+<key>`.
    #[error("malformed verifier key: expected <name>+<key id>+<key>")]
    MalformedVerifierKey,
    /// The key id is not 8 hex digits.
    #[error("malformed key id {0:?}: expected 8 hex digits")]
    BadKeyId(String),
    /// The key part is not standard base64.
    #[error("the key is not valid base64")]
    BadBase64,
    /// A signature type other than Ed25519.
    #[error("unsupported key type {0:#04x} (only Ed25519, 0x01, is supported)")]
    UnsupportedAlgorithm(u8),
    /// The key has the wrong length.
    #[error("the key is {got} bytes; expected {expected}")]
    BadKeyLength {
        /// Bytes expected.
        expected: usize,
        /// Bytes found.
        got: usize,
    },
    /// The stated key id does not belong to this name and key.
    #[error("key id {stated:08x} does not match the key (computed {computed:08x})")]
    KeyIdMismatch {
        /// The id in the text.
        stated: u32,
        /// The id computed from name and key.
        computed: u32,
    },
    /// 32 bytes that are not an Ed25519 public key.
    #[error("not a valid Ed25519 public key")]
    InvalidPublicKey,
    /// The operating system's random number generator failed.
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(String),
}

/// What is wrong with a data-encryption key file's content. Lines count from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// A line that is neither a comment nor `<key-id> <base64 key>`.
    #[error("line {line}: expected `<key-id> <base64 of 32 bytes>` (or a # comment)")]
    MalformedLine {
        /// The line number.
        line: usize,
    },
    /// A key id with characters or a length not allowed.
    #[error("invalid key id {0:?}: 1 to {MAX_KEY_ID_LEN} characters of A-Z a-z 0-9 . _ -")]
    InvalidId(String),
    /// A key id with characters or a length not allowed, in a file.
    #[error(
        "line {line}: invalid key id {id:?}: 1 to {MAX_KEY_ID_LEN} characters of A-Z a-z 0-9 . _ -"
    )]
    BadKeyId {
        /// The line number.
        line: usize,
        /// The id.
        id: String,
    },
    /// The key is not standard base64.
    #[error("line {line}: key {id:?} is not valid base64")]
    BadBase64 {
        /// The line number.
        line: usize,
        /// Its key id.
        id: String,
    },
    /// The key is not 32 bytes.
    #[error("line {line}: key {id:?} is {got} bytes; expected {DATA_KEY_LEN}")]
    BadKeyLength {
        /// The line number.
        line: usize,
        /// Its key id.
        id: String,
        /// Bytes found.
        got: usize,
    },
    /// The same id twice: which key would decrypt would be ambiguous.
    #[error("line {line}: key id {id:?} already used on line {first}")]
    DuplicateId {
        /// The line number of the repeat.
        line: usize,
        /// The id.
        id: String,
        /// The line where it first appears.
        first: usize,
    },
    /// No key at all.
    #[error("no keys (add one with `meshlog keygen --data-key FILE`)")]
    NoKeys,
}

/// A key file that could not be read, written or understood.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// An I/O error.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The file exists and keys are never overwritten.
    #[error("{} already exists; refusing to overwrite a key file (move it away first)", path.display())]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// Too large to be a key file.
    #[error("{} is {len} bytes, too large for a key file (limit {MAX_KEY_FILE_BYTES})", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The file is not UTF-8 text.
    #[error("{}: not a key file (not UTF-8 text)", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// A single-key file without exactly one non-empty line.
    #[error("{}: expected exactly one line with one key", path.display())]
    NotOneLine {
        /// The file.
        path: PathBuf,
    },
    /// The key in a signing or verifier key file is bad.
    #[error("{}: {source}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: KeyError,
    },
    /// The data-encryption key file is bad.
    #[error("data-encryption key file {}: {source}", path.display())]
    Keyring {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: KeyringError,
    },
}

/// The signed-note key id: `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, big-endian.
pub fn note_key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Checks a key name (also a checkpoint's origin): non-empty, no Unicode spaces, no `+`, no
/// control characters (signed notes allow none).
pub fn check_key_name(name: &str) -> Result<(), KeyError> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || c == '+';
    if name.is_empty() || name.chars().any(bad) {
        return Err(KeyError::InvalidName(name.to_owned()));
    }
    Ok(())
}

fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, KeyError> {
    let mut b = Zeroizing::new([0u8; N]);
    getrandom::fill(b.as_mut_slice()).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(b)
}

fn parse_key_id(s: &str) -> Result<u32, KeyError> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KeyError::BadKeyId(s.to_owned()));
    }
    u32::from_str_radix(s, 16).map_err(|_| KeyError::BadKeyId(s.to_owned()))
}

/// Decodes `base64(0x01 || 32 bytes)`.
fn decode_typed_key(b64: &str) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let raw = Zeroizing::new(B64.decode(b64).map_err(|_| KeyError::BadBase64)?);
    let Some((&alg, key)) = raw.split_first() else {
        return Err(KeyError::BadKeyLength {
            expected: 33,
            got: 0,
        });
    };
    if alg != ALG_ED25519 {
        return Err(KeyError::UnsupportedAlgorithm(alg));
    }
    let mut out = Zeroizing::new([0u8; 32]);
    if key.len() != 32 {
        return Err(KeyError::BadKeyLength {
            expected: 33,
            got: raw.len(),
        });
    }
    out.copy_from_slice(key);
    Ok(out)
}

fn encode_typed_key(key: &[u8; 32]) -> Zeroizing<String> {
    let mut raw = Zeroizing::new([0u8; 33]);
    raw[0] = ALG_ED25519;
    raw[1..].copy_from_slice(key);
    Zeroizing::new(B64.encode(raw.as_slice()))
}

/// The name of a retention class's log: `<name>/<class>`. A checkpoint's origin is its key's
/// name, and a witness keeps one state per origin, so each class store's Merkle log is signed
/// under its own origin by the same Ed25519 key ([`SignerKey::for_class`]).
pub fn class_log_name(name: &str, class: &str) -> String {
    format!("{name}/{class}")
}

/// The private checkpoint signing key, with its name (the log's origin).
pub struct SignerKey {
    name: String,
    key_id: u32,
    /// For a class log's key ([`SignerKey::for_class`]): the name it was made from, whose
    /// checkpoints (signed before class logs had origins of their own) its store still holds.
    parent: Option<String>,
    // Wiped on drop (ed25519-dalek's `zeroize` feature).
    key: SigningKey,
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerKey")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl SignerKey {
    /// A new random key named `<prefix>/<8 random hex digits>`: a name no other generated key
    /// is likely to share (witnesses tell logs apart by name).
    pub fn generate_unique(prefix: &str) -> Result<Self, KeyError> {
        let tag = random_bytes::<4>()?;
        Self::generate(&format!("{prefix}/{}", hex::encode(tag.as_slice())))
    }

    /// A new random key named `name`.
    pub fn generate(name: &str) -> Result<Self, KeyError> {
        let seed = random_bytes::<32>()?;
        Self::from_seed(name, &seed)
    }

    /// The key with this Ed25519 seed (RFC 8032 private key).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, KeyError> {
        check_key_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let key_id = note_key_id(name, key.verifying_key().as_bytes());
        Ok(SignerKey {
            name: name.to_owned(),
            key_id,
            key,
            parent: None,
        })
    }

    /// The same Ed25519 key named `<name>/<class>` ([`class_log_name`]): the signer of a
    /// retention class store's log.
    pub fn for_class(&self, class: &str) -> Result<Self, KeyError> {
        let name = class_log_name(&self.name, class);
        check_key_name(&name)?;
        let key_id = note_key_id(&name, self.key.verifying_key().as_bytes());
        Ok(SignerKey {
            name,
            key_id,
            key: self.key.clone(),
            parent: Some(self.name.clone()),
        })
    }

    /// For a key made by [`SignerKey::for_class`]: the verifier key of the key it was made
    /// from (its store's older checkpoints are signed under that name).
    pub fn parent_verifier(&self) -> Option<VerifierKey> {
        let name = self.parent.as_ref()?;
        let key = self.key.verifying_key();
        Some(VerifierKey {
            key_id: note_key_id(name, key.as_bytes()),
            name: name.clone(),
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<key id>+<base64>`, checking the key id.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let rest = text
            .strip_prefix(PRIVATE_PREFIX)
            .ok_or(KeyError::NotASignerKey)?;
        // The name cannot contain '+', base64 can: split off name and id only.
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(KeyError::NotASignerKey);
        };
        check_key_name(name)?;
        let stated = parse_key_id(id)?;
        let seed = decode_typed_key(b64)?;
        let key = Self::from_seed(name, &seed)?;
        if key.key_id != stated {
            return Err(KeyError::KeyIdMismatch {
                stated,
                computed: key.key_id,
            });
        }
        Ok(key)
    }

    /// The text form, `PRIVATE+KEY+<name>+<key id>+<base64>`. Secret: wiped when dropped.
    pub fn to_text(&self) -> Zeroizing<String> {
        let seed = Zeroizing::new(self.key.to_bytes());
        let b64 = encode_typed_key(&seed);
        let mut s = Zeroizing::new(String::with_capacity(
            PRIVATE_PREFIX.len() + self.name.len() + 10 + b64.len(),
        ));
        s.push_str(PRIVATE_PREFIX);
        s.push_str(&self.name);
        s.push('+');
        s.push_str(&format!("{:08x}", self.key_id));
        s.push('+');
        s.push_str(&b64);
        s
    }

    /// The key's name (the log's origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signed-note key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching public verifier key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// An Ed25519 signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.key.sign(msg).to_bytes()
    }
}

/// The public key that verifies checkpoints, with its name (the log's origin).
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

impl fmt::Display for VerifierKey {
    /// The text form, `<name>+<key id>+<base64>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b64 = encode_typed_key(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.key_id, b64.as_str())
    }
}

impl VerifierKey {
    /// Parses `<name>+<key id>+<base64>`, checking the key id and the point.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        if text.starts_with(PRIVATE_PREFIX) {
            return Err(KeyError::PrivateKeyGiven);
        }
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(KeyError::MalformedVerifierKey);
        };
        check_key_name(name)?;
        let stated = parse_key_id(id)?;
        let bytes = decode_typed_key(b64)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::InvalidPublicKey)?;
        let computed = note_key_id(name, &bytes);
        if computed != stated {
            return Err(KeyError::KeyIdMismatch { stated, computed });
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            key_id: stated,
            key,
        })
    }

    /// The key's name (the log's origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signed-note key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The raw Ed25519 public key.
    pub fn public_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The same public key named `<name>/<class>`: the verifier of a retention class store's
    /// log ([`SignerKey::for_class`]).
    pub fn for_class(&self, class: &str) -> Result<Self, KeyError> {
        let name = class_log_name(&self.name, class);
        check_key_name(&name)?;
        Ok(VerifierKey {
            key_id: note_key_id(&name, self.key.as_bytes()),
            name,
            key: self.key,
        })
    }

    /// True when `signature` is this key's Ed25519 signature of `msg`. Strict verification:
    /// non-canonical signatures and weak keys are refused.
    pub fn verify(&self, msg: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature)
            .map(|s| self.key.verify_strict(msg, &s).is_ok())
            .unwrap_or(false)
    }
}

// ---------------------------------------------------------------------------------------------
// Data-encryption keys

/// Checks a data-encryption key id: 1 to 32 characters of `A-Z a-z 0-9 . _ -`.
pub fn check_data_key_id(id: &str) -> Result<(), KeyringError> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if id.is_empty() || id.len() > MAX_KEY_ID_LEN || !id.bytes().all(ok) {
        return Err(KeyringError::InvalidId(id.to_owned()));
    }
    Ok(())
}

/// One data-encryption key and its id.
pub struct DataKey {
    id: String,
    key: Zeroizing<[u8; DATA_KEY_LEN]>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl DataKey {
    /// A key with these bytes.
    pub fn new(id: &str, key: [u8; DATA_KEY_LEN]) -> Result<Self, KeyringError> {
        // Moved into the wiped box; the caller's copy is theirs to wipe.
        let key = Zeroizing::new(key);
        check_data_key_id(id)?;
        Ok(DataKey {
            id: id.to_owned(),
            key,
        })
    }

    /// The key id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key bytes (for the AEAD).
    pub fn bytes(&self) -> &[u8; DATA_KEY_LEN] {
        &self.key
    }

    /// The file line, `<id> <base64>` without newline. Secret: wiped when dropped.
    fn to_line(&self) -> Zeroizing<String> {
        let b64 = Zeroizing::new(B64.encode(self.key.as_slice()));
        let mut s = Zeroizing::new(String::with_capacity(self.id.len() + 1 + b64.len()));
        s.push_str(&self.id);
        s.push(' ');
        s.push_str(&b64);
        s
    }
}

/// The data-encryption keys of a key file, in file order. Never empty; the last key encrypts.
pub struct Keyring {
    keys: Vec<DataKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// A keyring of these keys (the last encrypts): at least one, ids unique.
    pub fn new(keys: Vec<DataKey>) -> Result<Self, KeyringError> {
        for (i, k) in keys.iter().enumerate() {
            if let Some(first) = keys[..i].iter().position(|o| o.id == k.id) {
                return Err(KeyringError::DuplicateId {
                    line: i + 1,
                    id: k.id.clone(),
                    first: first + 1,
                });
            }
        }
        if keys.is_empty() {
            return Err(KeyringError::NoKeys);
        }
        Ok(Keyring { keys })
    }

    /// Parses a data-encryption key file's content.
    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let mut keys: Vec<(usize, DataKey)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let mut fields = trimmed.split_whitespace();
            let (Some(id), Some(b64), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(KeyringError::MalformedLine { line });
            };
            check_data_key_id(id).map_err(|_| KeyringError::BadKeyId {
                line,
                id: id.to_owned(),
            })?;
            if let Some((first, _)) = keys.iter().find(|(_, k)| k.id == id) {
                return Err(KeyringError::DuplicateId {
                    line,
                    id: id.to_owned(),
                    first: *first,
                });
            }
            let raw_key = Zeroizing::new(B64.decode(b64).map_err(|_| KeyringError::BadBase64 {
                line,
                id: id.to_owned(),
            })?);
            let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
            if raw_key.len() != DATA_KEY_LEN {
                return Err(KeyringError::BadKeyLength {
                    line,
                    id: id.to_owned(),
                    got: raw_key.len(),
                });
            }
            key.copy_from_slice(&raw_key);
            keys.push((
                line,
                DataKey {
                    id: id.to_owned(),
                    key,
                },
            ));
        }
        if keys.is_empty() {
            return Err(KeyringError::NoKeys);
        }
        Ok(Keyring {
            keys: keys.into_iter().map(|(_, k)| k).collect(),
        })
    }

    /// Reads and parses a data-encryption key file.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let text = read_small(path)?;
        Keyring::parse(&text).map_err(|source| KeyFileError::Keyring {
            path: path.to_owned(),
            source,
        })
    }

    /// The key that encrypts: the last one.
    pub fn current(&self) -> &DataKey {
        // Never empty: both constructors refuse an empty list.
        &self.keys[self.keys.len() - 1]
    }

    /// The key with this id.
    pub fn get(&self, id: &str) -> Option<&DataKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Every key id, in file order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// The number of keys (at least 1).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a keyring has at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Appends a new random data-encryption key to the key file at `path`, creating it (mode
/// 0600) if missing; the new key becomes the one that encrypts. An existing file must parse
/// (a damaged key file is not extended). Returns the new key's id.
pub fn append_data_key(path: &Path) -> Result<String, KeyFileError> {
    let existing = match read_small(path) {
        Ok(text) => Some(text),
        Err(KeyFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let keyring = match &existing {
        Some(text) => Some(
            Keyring::parse(text).map_err(|source| KeyFileError::Keyring {
                path: path.to_owned(),
                source,
            })?,
        ),
        None => None,
    };
    let id = loop {
        let r = random_bytes::<4>().map_err(|source| KeyFileError::Key {
            path: path.to_owned(),
            source,
        })?;
        let id = format!("dk-{}", hex::encode(*r));
        // 2^32 ids: a clash is unlikely, but would make the new key unusable.
        if keyring.as_ref().and_then(|k| k.get(&id)).is_none() {
            break id;
        }
    };
    let key = DataKey {
        id: id.clone(),
        key: random_bytes::<DATA_KEY_LEN>().map_err(|source| KeyFileError::Key {
            path: path.to_owned(),
            source,
        })?,
    };
    let mut out = Zeroizing::new(String::new());
    let mut file = match &existing {
        None => {
            out.push_str(DATA_KEY_FILE_HEADER);
            create_private(path)?
        }
        Some(text) => {
            if !text.is_empty() && !text.ends_with('\n') {
                out.push('\n');
            }
            OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(io_err(path, "opening to append"))?
        }
    };
    out.push_str(&key.to_line());
    out.push('\n');
    file.write_all(out.as_bytes())
        .map_err(io_err(path, "writing"))?;
    // A key that is lost after its first use makes that data unreadable: make it durable.
    file.sync_all().map_err(io_err(path, "syncing"))?;
    if existing.is_none() {
        sync_parent(path)?;
    }
    Ok(id)
}

// ---------------------------------------------------------------------------------------------
// Signing and verifier key files

/// Writes a signing key to a new file with mode 0600; refuses an existing file.
pub fn write_signer_key(path: &Path, key: &SignerKey) -> Result<(), KeyFileError> {
    let mut text = key.to_text();
    text.push('\n');
    write_new(path, create_private(path)?, text.as_bytes())
}

/// Writes a verifier key to a new file (mode 0644: it is public); refuses an existing file.
pub fn write_verifier_key(path: &Path, key: &VerifierKey) -> Result<(), KeyFileError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(create_err(path))?;
    write_new(path, file, format!("{key}\n").as_bytes())
}

/// Reads a signing key file.
pub fn read_signer_key(path: &Path) -> Result<SignerKey, KeyFileError> {
    let text = read_small(path)?;
    SignerKey::parse(one_line(path, &text)?).map_err(|source| KeyFileError::Key {
        path: path.to_owned(),
        source,
    })
}

/// Reads a verifier key file.
pub fn read_verifier_key(path: &Path) -> Result<VerifierKey, KeyFileError> {
    let text = read_small(path)?;
    VerifierKey::parse(one_line(path, &text)?).map_err(|source| KeyFileError::Key {
        path: path.to_owned(),
        source,
    })
}

fn io_err(path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> KeyFileError {
    let path = path.to_owned();
    move |source| KeyFileError::Io { path, what, source }
}

fn create_err(path: &Path) -> impl FnOnce(io::Error) -> KeyFileError {
    let path = path.to_owned();
    move |source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            KeyFileError::AlreadyExists { path }
        } else {
            KeyFileError::Io {
                path,
                what: "creating",
                source,
            }
        }
    }
}

/// A new file only its owner can read; never an existing one.
fn create_private(path: &Path) -> Result<File, KeyFileError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(create_err(path))
}

fn write_new(path: &Path, mut file: File, bytes: &[u8]) -> Result<(), KeyFileError> {
    file.write_all(bytes).map_err(io_err(path, "writing"))?;
    file.sync_all().map_err(io_err(path, "syncing"))?;
    sync_parent(path)
}

/// Makes a new file's directory entry durable.
fn sync_parent(path: &Path) -> Result<(), KeyFileError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "syncing the directory"))
}

/// Reads a key file of at most [`MAX_KEY_FILE_BYTES`] into memory that is wiped on drop.
fn read_small(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    let file = File::open(path).map_err(io_err(path, "opening"))?;
    let len = file
        .metadata()
        .map_err(io_err(path, "reading metadata"))?
        .len();
    if len > MAX_KEY_FILE_BYTES {
        return Err(KeyFileError::TooLarge {
            path: path.to_owned(),
            len,
        });
    }
    // Sized up front so the buffer is not reallocated, which would leave copies behind.
    let mut bytes = Zeroizing::new(Vec::with_capacity(len as usize + 1));
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path, "reading"))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyFileError::TooLarge {
            path: path.to_owned(),
            len: bytes.len() as u64,
        });
    }
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(s) => Ok(Zeroizing::new(s)),
        Err(e) => {
            // Wipe the bytes the error hands back.
            drop(Zeroizing::new(e.into_bytes()));
            Err(KeyFileError::NotUtf8 {
                path: path.to_owned(),
            })
        }
    }
}

/// The single non-empty line of a one-key file.
fn one_line<'a>(path: &Path, text: &'a str) -> Result<&'a str, KeyFileError> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    match (lines.next(), lines.next()) {
        (Some(line), None) => Ok(line),
        _ => Err(KeyFileError::NotOneLine {
            path: path.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    // Known answer from golang.org/x/mod/sumdb/note (its documentation example).
    const GO_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_class_log_key_is_the_same_key_under_its_own_name() {
        let k = SignerKey::from_seed("example.com/log", &[7; 32]).unwrap();
        let c = k.for_class("short").unwrap();
        assert_eq!(c.name(), "example.com/log/short");
        assert_ne!(c.key_id(), k.key_id());
        // The verifier's derivation matches the signer's, so a verifier holding only the
        // collector's verifier key checks every class log.
        assert_eq!(k.verifier().for_class("short").unwrap(), c.verifier());
        assert_eq!(c.verifier().public_bytes(), k.verifier().public_bytes());
        assert_eq!(c.parent_verifier(), Some(k.verifier()));
        assert_eq!(k.parent_verifier(), None);
        let sig = c.sign(b"m");
        assert!(k.verifier().verify(b"m", &sig));
        assert!(matches!(
            k.for_class("bad class"),
            Err(KeyError::InvalidName(_))
        ));
    }

    #[test]
    fn go_reference_keys_parse_and_round_trip() {
        let s = SignerKey::parse(GO_SKEY).unwrap();
        assert_eq!(s.name(), "PeterNeumann");
        assert_eq!(s.key_id(), 0xc74f20a3);
        assert_eq!(s.to_text().as_str(), GO_SKEY);
        assert_eq!(s.verifier().to_string(), GO_VKEY);
        let v = VerifierKey::parse(GO_VKEY).unwrap();
        assert_eq!(v, s.verifier());
        assert_eq!(v.key_id(), 0xc74f20a3);
        let sig = s.sign(b"hello\n");
        assert!(v.verify(b"hello\n", &sig));
        assert!(!v.verify(b"hello!\n", &sig));
        assert!(!v.verify(b"hello\n", &sig[..63]));
        // Debug output names the key but shows no secret.
        let dbg = format!("{s:?}");
        assert!(
            dbg.contains("PeterNeumann") && !dbg.contains("AYEKFALV"),
            "{dbg}"
        );
    }

    #[test]
    fn generated_keys_are_distinct_and_round_trip() {
        let a = SignerKey::generate("example.com/log").unwrap();
        let b = SignerKey::generate("example.com/log").unwrap();
        assert_ne!(a.key_id(), b.key_id());
        let a2 = SignerKey::parse(&a.to_text()).unwrap();
        assert_eq!(a2.verifier(), a.verifier());
        let v = VerifierKey::parse(&a.verifier().to_string()).unwrap();
        assert!(v.verify(b"m", &a.sign(b"m")));
        assert!(!v.verify(b"m", &b.sign(b"m")));
    }

    #[test]
    fn malformed_keys_are_refused_precisely() {
        use KeyError::*;
        let go = SignerKey::parse(GO_SKEY).unwrap();
        let renamed = note_key_id("PeterNeumanm", go.verifier().key.as_bytes());
        let cases: &[(&str, KeyError)] = &[
            ("PRIVATE+KEY+", NotASignerKey),
            ("PRIVATE+KEY++c74f20a3+AAAA", InvalidName(String::new())),
            ("PRIVATE+KEY+a b+c74f20a3+AAAA", InvalidName("a b".into())),
            ("PRIVATE+KEY+PeterNeumann", NotASignerKey),
            ("private+key+x+00000000+AA==", NotASignerKey),
            (
                "PRIVATE+KEY+PeterNeumann+c74f20a+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
                BadKeyId("c74f20a".into()),
            ),
            (
                "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDF",
                BadBase64,
            ),
            (
                "PRIVATE+KEY+PeterNeumann+c74f20a3+AgEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
                UnsupportedAlgorithm(2),
            ),
            (
                "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXH",
                BadKeyLength {
                    expected: 33,
                    got: 30,
                },
            ),
            (
                "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
                KeyIdMismatch {
                    stated: 0xc74f20a4,
                    computed: 0xc74f20a3,
                },
            ),
            // The right key under another name: the id binds the name.
            (
                "PRIVATE+KEY+PeterNeumanm+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
                KeyIdMismatch {
                    stated: 0xc74f20a3,
                    computed: renamed,
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(SignerKey::parse(text).unwrap_err(), *want, "{text}");
        }
        let other = SignerKey::from_seed("PeterNeumann", &[7; 32]).unwrap();
        let other_b64 = other.verifier().to_string();
        let swapped = format!(
            "PeterNeumann+c74f20a3+{}",
            other_b64.splitn(3, '+').nth(2).unwrap()
        );
        let vcases: &[(&str, KeyError)] = &[
            (GO_SKEY, PrivateKeyGiven),
            ("PeterNeumann", MalformedVerifierKey),
            ("PeterNeumann+c74f20a3", MalformedVerifierKey),
            (
                "Peter\u{0}Neumann+c74f20a3+AA==",
                InvalidName("Peter\0Neumann".into()),
            ),
            (
                "PeterNeumann+zz4f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                BadKeyId("zz4f20a3".into()),
            ),
            (
                "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW=",
                BadBase64,
            ),
            // Another valid key under Peter's id.
            (
                &swapped,
                KeyIdMismatch {
                    stated: 0xc74f20a3,
                    computed: other.key_id(),
                },
            ),
        ];
        for (text, want) in vcases {
            assert_eq!(VerifierKey::parse(text).unwrap_err(), *want, "{text}");
        }
        // A point that is not on the curve (y = 2 has no x): refused before any use.
        let mut raw = vec![ALG_ED25519, 2];
        raw.extend_from_slice(&[0; 31]);
        let bad = format!(
            "n+{:08x}+{}",
            note_key_id("n", &raw[1..].try_into().unwrap()),
            B64.encode(&raw)
        );
        assert_eq!(VerifierKey::parse(&bad).unwrap_err(), InvalidPublicKey);
        for name in ["", "a+b", "a b", "a\tb", "a\nb", "a\u{2003}b"] {
            assert!(SignerKey::generate(name).is_err(), "{name:?}");
        }
        assert!(check_key_name("example.com/log-1").is_ok());
    }

    #[test]
    fn key_files_are_private_never_overwritten_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let sk = SignerKey::generate("example.com/log").unwrap();
        let sp = dir.path().join("signing.key");
        let vp = dir.path().join("verifier.pub");
        write_signer_key(&sp, &sk).unwrap();
        write_verifier_key(&vp, &sk.verifier()).unwrap();
        assert_eq!(mode(&sp), 0o600);
        assert_eq!(mode(&vp), 0o644);
        let before = std::fs::read(&sp).unwrap();
        let other = SignerKey::generate("example.com/log").unwrap();
        let err = write_signer_key(&sp, &other).unwrap_err();
        assert!(matches!(err, KeyFileError::AlreadyExists { .. }), "{err}");
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert!(matches!(
            write_verifier_key(&vp, &other.verifier()),
            Err(KeyFileError::AlreadyExists { .. })
        ));
        assert_eq!(std::fs::read(&sp).unwrap(), before);
        assert_eq!(read_signer_key(&sp).unwrap().verifier(), sk.verifier());
        assert_eq!(read_verifier_key(&vp).unwrap(), sk.verifier());

        // Wrong file kinds and content, each with the file named.
        let err = read_verifier_key(&sp).unwrap_err();
        assert!(
            matches!(
                &err,
                KeyFileError::Key {
                    source: KeyError::PrivateKeyGiven,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("signing.key"), "{err}");
        let two = dir.path().join("two");
        std::fs::write(&two, format!("{}\n{}\n", sk.verifier(), sk.verifier())).unwrap();
        assert!(matches!(
            read_verifier_key(&two),
            Err(KeyFileError::NotOneLine { .. })
        ));
        let missing = dir.path().join("missing");
        let err = read_signer_key(&missing).unwrap_err();
        assert!(matches!(err, KeyFileError::Io { .. }), "{err}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; MAX_KEY_FILE_BYTES as usize + 1]).unwrap();
        assert!(matches!(
            read_signer_key(&big),
            Err(KeyFileError::TooLarge { .. })
        ));
        let binary = dir.path().join("binary");
        std::fs::write(&binary, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_signer_key(&binary),
            Err(KeyFileError::NotUtf8 { .. })
        ));
    }

    #[test]
    fn keyring_parses_comments_and_picks_the_last_key() {
        let k = |b: u8| B64.encode([b; 32]);
        let text = format!("# header\n\n  dk-1 {}\n# rotated\nk2\t{}  \r\n", k(1), k(2));
        let ring = Keyring::parse(&text).unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["dk-1", "k2"]);
        assert_eq!(ring.len(), 2);
        assert!(!ring.is_empty());
        assert_eq!(ring.current().id(), "k2");
        assert_eq!(ring.current().bytes(), &[2; 32]);
        assert_eq!(ring.get("dk-1").unwrap().bytes(), &[1; 32]);
        assert!(ring.get("dk-3").is_none());
        // Debug shows ids only.
        let dbg = format!("{ring:?}");
        assert!(dbg.contains("dk-1") && !dbg.contains(&k(1)), "{dbg}");
    }

    #[test]
    fn keyring_errors_name_the_line_and_never_the_key() {
        let k = B64.encode([7u8; 32]);
        let short = B64.encode([7u8; 16]);
        let cases: Vec<(String, KeyringError)> = vec![
            ("".into(), KeyringError::NoKeys),
            ("# only a comment\n".into(), KeyringError::NoKeys),
            (
                format!("a {k}\nb\n"),
                KeyringError::MalformedLine { line: 2 },
            ),
            (
                format!("a {k} extra\n"),
                KeyringError::MalformedLine { line: 1 },
            ),
            (
                format!("# c\nbad/id {k}\n"),
                KeyringError::BadKeyId {
                    line: 2,
                    id: "bad/id".into(),
                },
            ),
            (
                format!("{} {k}\n", "x".repeat(33)),
                KeyringError::BadKeyId {
                    line: 1,
                    id: "x".repeat(33),
                },
            ),
            (
                "a not*base64\n".into(),
                KeyringError::BadBase64 {
                    line: 1,
                    id: "a".into(),
                },
            ),
            (
                format!("a {short}\n"),
                KeyringError::BadKeyLength {
                    line: 1,
                    id: "a".into(),
                    got: 16,
                },
            ),
            (
                format!("a {k}\n\nb {k}\na {k}\n"),
                KeyringError::DuplicateId {
                    line: 4,
                    id: "a".into(),
                    first: 1,
                },
            ),
        ];
        for (text, want) in cases {
            let err = Keyring::parse(&text).unwrap_err();
            assert_eq!(err, want, "{text:?}");
            assert!(!err.to_string().contains(&k), "{err}");
        }
        assert!(matches!(Keyring::new(vec![]), Err(KeyringError::NoKeys)));
        let dup = vec![
            DataKey::new("a", [1; 32]).unwrap(),
            DataKey::new("a", [2; 32]).unwrap(),
        ];
        assert!(matches!(
            Keyring::new(dup),
            Err(KeyringError::DuplicateId {
                line: 2,
                first: 1,
                ..
            })
        ));
        assert!(DataKey::new("", [0; 32]).is_err());
        assert!(DataKey::new("has space", [0; 32]).is_err());
    }

    #[test]
    fn appending_data_keys_creates_a_private_file_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.keys");
        let first = append_data_key(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert!(first.starts_with("dk-") && first.len() == 11, "{first}");
        let ring = Keyring::load(&path).unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), [first.as_str()]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# meshlog data-encryption keys"), "{text}");

        let second = append_data_key(&path).unwrap();
        assert_ne!(first, second);
        let ring = Keyring::load(&path).unwrap();
        assert_eq!(ring.len(), 2);
        assert_eq!(ring.current().id(), second);
        assert_ne!(
            ring.get(&first).unwrap().bytes(),
            ring.get(&second).unwrap().bytes()
        );
        // The old key is untouched by the rotation.
        assert!(std::fs::read_to_string(&path).unwrap().starts_with(&text));

        // A file without a final newline still gets its own line for the new key.
        let hand = dir.path().join("hand.keys");
        std::fs::write(&hand, format!("mine {}", B64.encode([9u8; 32]))).unwrap();
        let id = append_data_key(&hand).unwrap();
        let ring = Keyring::load(&hand).unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["mine", id.as_str()]);

        // A damaged file is not extended.
        let broken = dir.path().join("broken.keys");
        std::fs::write(&broken, "mine AAAA\n").unwrap();
        let err = append_data_key(&broken).unwrap_err();
        assert!(
            matches!(
                &err,
                KeyFileError::Keyring {
                    source: KeyringError::BadKeyLength { line: 1, .. },
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&broken).unwrap(), "mine AAAA\n");
        assert!(matches!(
            append_data_key(&dir.path().join("no/such/dir/keys")),
            Err(KeyFileError::Io { .. })
        ));
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn id() -> impl Strategy<Value = String> {
            "[A-Za-z0-9._-]{1,32}"
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Any keys written as a file (with comments and blank lines between) parse back
            /// in order, the last one current.
            #[test]
            fn keyring_files_round_trip(
                entries in proptest::collection::btree_map(id(), any::<[u8; 32]>(), 1..8),
                comments in proptest::collection::vec(any::<bool>(), 8),
            ) {
                let mut text = String::new();
                for (i, (id, key)) in entries.iter().enumerate() {
                    if comments[i] {
                        text.push_str("# a comment\n\n");
                    }
                    text.push_str(&format!("{id} {}\n", B64.encode(key)));
                }
                let ring = Keyring::parse(&text).unwrap();
                let ids: Vec<&str> = ring.ids().collect();
                let want: Vec<&str> = entries.keys().map(String::as_str).collect();
                prop_assert_eq!(&ids, &want);
                for (id, key) in &entries {
                    prop_assert_eq!(ring.get(id).unwrap().bytes(), key);
                }
                prop_assert_eq!(ring.current().id(), *want.last().unwrap());
            }

            /// Arbitrary text is an error or a keyring, never a panic; same for key texts.
            #[test]
            fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
                let _ = Keyring::parse(&text);
                let _ = SignerKey::parse(&text);
                let _ = VerifierKey::parse(&text);
                let priv_text = format!("PRIVATE+KEY+{text}");
                prop_assert!(SignerKey::parse(&priv_text).is_err());
            }
        }
    }
}
