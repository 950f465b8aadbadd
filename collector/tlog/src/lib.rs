//! meshlog-tlog: the transparency-log primitives meshlog's store is built on, with no I/O
//! beyond reading and writing key files.
//!
//! - [`merkle`]: RFC 6962 / RFC 9162 hashing, the compact tree the writer keeps, the full tree
//!   that answers inclusion and consistency proofs, and their verification;
//! - [`checkpoint`]: C2SP `tlog-checkpoint` bodies inside C2SP `signed-note`s (Ed25519), the
//!   note format receipts use too;
//! - [`cosignature`]: C2SP `tlog-cosignature` witness cosignatures on checkpoints;
//! - [`keys`]: checkpoint signing and verifier keys, data-encryption key files and keyrings;
//! - [`seal`]: per-batch XChaCha20-Poly1305 sealing of frame payloads.

// Byte-format parsers index slices whose bounds they check first (and fuzz and tamper tests
// cover); the workspace's panic-free lints are kept for the code that runs inside Envoy.
#![allow(clippy::indexing_slicing)]

pub mod checkpoint;
pub mod cosignature;
pub mod keys;
pub mod merkle;
pub mod seal;
