//! meshlog-audit: the readers behind `meshlog verify` ([`scan`], [`verify`], and [`deletions`]
//! for retention's receipts) and `meshlog prove` / `meshlog verify-proof` ([`proof`]). It
//! depends on the on-disk format and the log primitives only (`meshlog_format`,
//! `meshlog_tlog`: hashing, proofs, signatures, keys, AEAD), never on the writer, an async
//! runtime or an HTTP stack, so an auditor can build the verifier alone:
//! `cargo build -p meshlog-audit`. The writer's side of the Merkle log is
//! `meshlog_store::ledger`; the checkpoint file's framing `meshlog_format::checkpoint_log`.
//!
//! What follows is the design of tamper evidence and encryption at rest as a whole.
//!
//! An audit log must show that nothing was removed, reordered or altered after it was
//! acknowledged, to someone who does not trust the machine it lives on. CRC32 frames catch
//! bit rot, not edits; so every stored frame is also a leaf of a Merkle tree whose root is
//! signed from time to time, and carries a link to the frame before it.
//!
//! # Leaves
//!
//! One leaf per stored frame, in store order (segment sequence, then offset), leaf index =
//! frame ordinal counted from the first frame ever written. The leaf data is **the frame's
//! bytes exactly as written** (header and payload; when encrypted, the payload is the
//! ciphertext), so integrity can be checked without the data keys and any edit to a header,
//! including its key id, changes the leaf. The tree is RFC 6962 / RFC 9162 (`meshlog_tlog::merkle`):
//! the writer keeps a `meshlog_tlog::merkle::CompactTree` (O(log n) state) for the current root;
//! `meshlog_tlog::merkle::MerkleTree` (every level, ~64 bytes per frame) produces inclusion proofs ("this
//! frame is leaf i of the tree of size n") and consistency proofs ("the tree of size m is a
//! prefix of the tree of size n", i.e. nothing before m changed). Retention deletes old
//! segments of a class store whole but keeps their leaf hashes (`deleted/<seq>.leaves`): the
//! deleted frames stay leaves of the tree, so the writer's rebuild at start, proofs over the
//! remaining frames and the checkpoints signed before a deletion all still work.
//!
//! # The hash chain
//!
//! The tree alone says *that* something changed (a root no longer matches), not *where*. So
//! each frame's header carries a non-critical **chain** entry (type `0x0010`, 40 bytes: the
//! leaf index as a u64 and the leaf hash of the previous frame; zeros for leaf 0). The frame
//! builder reserves it; the writer thread stamps it just before writing (`meshlog_store::ledger::LeafLog`),
//! as only it knows the frame's place. Because every frame names its index and its
//! predecessor, `meshlog verify` can put the frames back in order without trusting the file
//! order and name the exact frame that was modified (even with its CRCs recomputed: it no
//! longer hashes to what the next frame recorded), removed (an index missing), duplicated
//! (identical bytes twice), swapped (indexes out of order) or inserted (no chain entry, or an
//! index another frame holds that the next frame does not refer to). What the chain cannot
//! catch, an attacker re-chaining everything after the frame they changed, the signed roots
//! do. Frames written before the chain existed (version-1 frames, early version-2 ones) have
//! no entry: they are leaves like any other, covered by checkpoints only.
//!
//! # Checkpoints
//!
//! A checkpoint (`meshlog_tlog::checkpoint`) is the C2SP `tlog-checkpoint` body inside a C2SP
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
//! `serve` signs one with `[integrity] signing_key` (see `config.rs`): after recovery at start,
//! every `checkpoint_interval_s` (60 by default; also when no batch arrived: same size, a new
//! time, which shows the log was alive and had not grown), and at graceful shutdown. A
//! checkpoint covers only fsync'd frames. They are appended to `DATA_DIR/checkpoints.log`
//! (`meshlog_format::checkpoint_log`): each entry a header line `MLCP <length> <crc32>` and the note, so a
//! torn append is told apart from an edit (which the signature catches); a torn last entry is
//! cut at the next start (into `quarantine/`), damage before it stops `serve` from starting.
//!
//! The writer keeps the tree as a `meshlog_tlog::merkle::CompactTree`, rolled back with the segment when
//! an fsync fails. To avoid hashing the whole store at every start (recovery only walks
//! headers), the committed tree is saved to `DATA_DIR/tree.state` at every checkpoint tick and
//! at shutdown, and the next start hashes only the frames after it (checking the saved last
//! leaf against the store first; anything odd and it hashes everything). At start the tree is
//! also compared with the last checkpoint; a store changed while the collector was down is
//! logged as an error (the collector keeps running: the evidence stays for `verify`).
//!
//! **Without a configured signing key** `serve` makes one beside the data directory
//! (`<data_dir>-keys/`) on first start and signs with it. `verify` without `--public-key` checks
//! the store's internal consistency (CRCs, chain, indexes) and that it holds as many leaves as
//! its checkpoints and `tree.state` say, which catches a careless edit or deletion but not
//! someone who rewrites the store, checkpoints included.
//!
//! # Witnesses
//!
//! A witness (`meshlog_witness`) cosigns each checkpoint after checking it consistent with the
//! last one it cosigned, and keeps that one; the log keeps the cosignatures in `cosigned.log`.
//! `verify --witness KEY` requires each witness's cosignature on the latest checkpoint;
//! `verify --witness-state DIR` compares the store with what a witness holds, which catches a
//! log rolled back, forked or deleted whole by someone holding the disk and the signing key
//! (`verify::WitnessCheck`).
//!
//! # Verifying
//!
//! `meshlog verify --data-dir DIR --public-key verifier.pub [--json]` ([`verify`]) reads every
//! byte of every segment ([`scan`]: after bytes that are no intact frame it resynchronises on
//! the next one), checks CRCs and the chain, recomputes the tree, and checks every checkpoint:
//! its signature, its root against the recomputed root at its size, that the store still holds
//! as many leaves, and that checkpoints never shrink or fork. Findings name the file, byte
//! offset, leaf index (or range), checkpoint number and the records the frame holds (VM id and
//! sequence numbers, batch id). Exit 0 intact, 1 not, 2 usage errors. The verifier key is only
//! ever taken from `--public-key`, never from the data directory: whoever can rewrite the store
//! can also replace a key stored next to it. Without `--public-key` signatures are not checked
//! (the report says so). Several `--public-key` flags cover a key rotation.
//!
//! A data directory with retention classes (`classes/`) is checked store by store: its own
//! store if it has segments, then every class store, each reported on its own (text and
//! `--json`: `{intact, stores: [...]}`), exit 1 if any is not intact. In a class store a missing
//! segment is accepted exactly when a valid deletion receipt names it, the frame after it
//! chains to the receipt's `last_leaf` and the leaf indexes skip its frames; its kept leaf
//! hashes keep the checkpoints over it checkable ([`verify`], [`deletions`]). Without
//! `--public-key` the receipts are checked for form only and the deletions reported as not
//! authenticated.
//!
//! # Proofs
//!
//! `meshlog prove --data-dir DIR VM_ID:SEQUENCE` (or `LEAF/LINE`) prints a self-contained JSON
//! inclusion proof (frame bytes, record line, leaf index, audit path, signed checkpoint);
//! `meshlog prove --consistency OLD NEW` a consistency proof between the checkpoints of those
//! sizes; `meshlog verify-proof --public-key verifier.pub PROOF.json` checks either with the
//! public key alone ([`proof`]).
//!
//! # Keys
//!
//! (`meshlog_tlog::keys`) The signing key and verifier key use the signed-note key formats of Go's
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
//! (`meshlog_tlog::seal`) Each batch (a frame's compressed payload) is sealed with XChaCha20-Poly1305
//! under the current key and a random 192-bit nonce. The nonce and the key id go into the
//! frame header (a critical extension entry, next to a "sealed" flag) and the payload is
//! `ciphertext || tag`; the associated data is the frame header's fixed fields, its batch id
//! and that entry (exact bytes in `meshlog_format::frame`), so a payload cannot be moved under another
//! header (every header has its own nonce) nor those fields edited without the open failing.
//! Opening tells "no key with this id in the key file" apart from "authentication failed"
//! (wrong key bytes, or altered data or header). Sizes are not hidden: a frame's length still
//! reveals how well its batch compressed. The store side is `meshlog_format::encryption`.
//!
//! The hash chain's entry is not in the associated data: the writer stamps it after the frame
//! is built and sealed, and it needs no AEAD protection (the header CRC, the chain itself and
//! the signed roots cover it). Integrity never opens a payload, so `verify` and `prove` work
//! without the data keys; `verify-proof` then proves the frame's inclusion and says the
//! record's content could not be checked.

// Byte-format parsers index slices whose bounds they check first (and fuzz and tamper tests
// cover); the workspace's panic-free lints are kept for the code that runs inside Envoy.
#![allow(clippy::indexing_slicing)]

pub mod deletions;
pub mod proof;
pub mod scan;
pub mod verify;
