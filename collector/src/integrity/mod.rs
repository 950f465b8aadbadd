//! Tamper evidence and encryption at rest for the segment store: the pure building blocks
//! (hashing, proofs, signatures, keys, AEAD). Nothing here touches the store; the writer, a
//! `verify` command and retention are wired to it separately.
//!
//! An audit log must show that nothing was removed, reordered or altered after it was
//! acknowledged, to someone who does not trust the machine it lives on. CRC32 frames catch
//! bit rot, not edits; so every stored frame is also a leaf of a Merkle tree whose root is
//! signed from time to time.
//!
//! # Leaves
//!
//! One leaf per stored frame, in store order (segment sequence, then offset), leaf index =
//! frame ordinal counted from the first frame ever written. The leaf data is **the frame's
//! bytes exactly as written** (header and payload; when encrypted, the payload is the
//! ciphertext), so integrity can be checked without the data keys and any edit to a header,
//! including its key id, changes the leaf. The tree is RFC 6962 / RFC 9162 ([`merkle`]):
//! the writer keeps a [`merkle::CompactTree`] (O(log n) state) for the current root;
//! [`merkle::MerkleTree`] (every level, ~64 bytes per frame) produces inclusion proofs ("this
//! frame is leaf i of the tree of size n") and consistency proofs ("the tree of size m is a
//! prefix of the tree of size n", i.e. nothing before m changed). Retention that deletes old
//! segments must keep their leaf hashes (or the full-subtree hashes covering them) for proofs
//! over the remaining frames to stay possible.
//!
//! # Checkpoints
//!
//! A checkpoint ([`checkpoint`]) is the C2SP `tlog-checkpoint` body inside a C2SP
//! `signed-note`, signed with Ed25519:
//!
//! ```text
//! <origin>
//! <tree size, decimal>
//! <root hash, base64>
//! timestamp_unix_ns <nanoseconds since the Unix epoch>
//!
//! — <origin> <base64(4-byte key id || 64-byte Ed25519 signature)>
//! ```
//!
//! The origin names the log and is the signing key's name. Verifying needs only the public
//! verifier key; a run of checkpoints with valid consistency proofs between them shows the
//! store only ever grew.
//!
//! # Keys
//!
//! ([`keys`]) The signing key and verifier key use the signed-note key formats of Go's
//! `sumdb/note`, so other tools accept them:
//!
//! ```text
//! PRIVATE+KEY+<origin>+<key id, 8 hex>+<base64(0x01 || 32-byte seed)>     signing.key, mode 0600
//! <origin>+<key id, 8 hex>+<base64(0x01 || 32-byte public key)>           verifier.pub
//! ```
//!
//! with key id = `SHA-256(origin || "\n" || 0x01 || public key)[:4]`. `meshlog keygen --out
//! DIR [--name ORIGIN]` writes both, never over existing files.
//!
//! The data-encryption key file (`meshlog keygen --data-key FILE`, mode 0600) holds one key
//! per line, `<key-id> <base64 of 32 bytes>`, with `#` comments and blank lines. Rotation is by
//! appending: **the last key encrypts**, every key decrypts, and a key must stay in the file
//! as long as data sealed with it is kept.
//!
//! # Encryption at rest
//!
//! ([`seal`]) Each batch (a frame's compressed payload) is sealed with XChaCha20-Poly1305
//! under the current key and a random 192-bit nonce, stored as `nonce || ciphertext || tag`;
//! the key id goes into the frame header (its extension area), and the frame header is the
//! associated data, so a payload cannot be moved under another header nor a header edited
//! without the open failing. Opening tells "no key with this id in the key file" apart from
//! "authentication failed" (wrong key bytes, or altered data or header). Sizes are not
//! hidden: a frame's length still reveals how well its batch compressed.

pub mod checkpoint;
pub mod checkpoint_log;
pub mod keys;
pub mod leaves;
pub mod merkle;
pub mod proof;
pub mod scan;
pub mod seal;
pub mod verify;
