//! Retention: records kept for a set time per tenant or service, then deleted whole segments at
//! a time, each deletion proven by a signed receipt; legal holds stop deletion.
//!
//! An audit log must keep records exactly as long as policy says, and an auditor must be able
//! to tell a deletion by policy from any other missing data. So deletion is coarse (whole
//! segment files, never an edit inside one), happens only after a receipt is durable, and the
//! receipt is itself logged where the tamper-evident log covers it.
//!
//! # Classes
//!
//! Off unless the configuration has `[retention]` ([`policy`]); then every record belongs to
//! one class: the first `[[retention.classes]]` whose `match` its resource attributes satisfy,
//! else `default` (`default_days`). Each class is an independent store ([`classes`]):
//!
//! ```text
//! DATA_DIR/LOCK                          held by serve (so a serve without retention cannot
//!                                        write here meanwhile)
//! DATA_DIR/classes/<class>/              a complete store: LOCK, segments/, quarantine/,
//!                                        its own tree.state and checkpoints.log
//!                         receipts.log   signed deletion receipts, append-only
//!                         deleted/<seq>.leaves   leaf hashes of each deleted segment's frames
//!                         retention.cache        time ranges of closed segments (a cache)
//!                         retention.clock        the retention clock (monotonic time counted
//!                                                by the sweeper), when each segment closed
//! ```
//!
//! Ingest splits a request's records by class and appends one frame per class, each with the
//! request's batch id (dedup is per class; a retry splits identically); the answer is 200 once
//! every class's frame is durable ([`meshlog_server::ingest`]). `meshlog query` reads `DATA_DIR`'s own
//! store (data written without retention), then each class directory by name, each in store
//! order. Without `[retention]` nothing changes: one store in `DATA_DIR`, nothing expires; with
//! it, segments already in `DATA_DIR/segments` are refused at start (they would never expire;
//! the error says how to move them into `classes/default`).
//!
//! # Expiry
//!
//! Retention runs on the collector's own receive time, never on the sender's: ingest writes
//! when it received each batch into its frame's header (the non-critical `received` entry,
//! [`meshlog_format::frame::EXT_RECEIVED`]), and a record's `observed_time_unix_nano` is data
//! (legal holds match it as well). A frame written before that entry existed falls back to its
//! records' observed times. A **closed** segment (not the newest, the one being written)
//! expires when its **newest** receive time is more than the class's days old (at exactly
//! `days` it is kept) and, against clocks that jump, it has been closed for at least `days` by
//! the sweeper's monotonic retention clock ([`sweep`] module docs); the active segment never
//! does, so the sweeper closes it (a rotation, [`meshlog_store::StoreHandle::rotate`]) once its
//! first frame was received `segment_max_age_s` ago. A record is thus deleted between `days`
//! and `days` + `segment_max_age_s` + `sweep_interval_s` after it was received (later if held,
//! if the collector was stopped, or if a late batch shares its segment with newer records).
//!
//! # Deletion and receipts
//!
//! [`sweep`] runs at start and every `sweep_interval_s`, with an injectable clock. For each
//! expired segment that no hold covers: re-read the file (length, SHA-256, frames, records,
//! observed-time range, every frame's leaf hash), write the leaf hashes to `deleted/`, sign a
//! [`receipt::Receipt`] with `[integrity] signing_key` and append it to `receipts.log`
//! (fsync), append it as a `meshlog.retention.deletion` record to the class's own store (and
//! wait for its fsync), and only then delete the file and fsync the directory. A crash between
//! receipt and unlink is finished by the next pass, as if it were a new deletion: the receipt
//! must verify with the signing key and name its class and segment, the bytes must still match
//! it, and the segment must still be expired and unheld; then it is deleted without a second
//! receipt, and its record is stored once (it has a fixed batch id). Without a signing key nothing is deleted and each pass logs
//! an error: every deletion must be provable. The records a deletion adds are themselves
//! expired and deleted like any other, each time with a new receipt.
//!
//! # Legal holds
//!
//! A `[[retention.holds]]` entry keeps every segment of its classes (all by default) whose
//! observed-time or receive-time range overlaps `from`..`until` (both optional). `serve` re-reads the holds
//! from the configuration file before every pass, so adding or lifting a hold needs no
//! restart; a file that no longer loads skips the pass (nothing is deleted while the holds are
//! unknown). Each pass logs, per class, how many expired segments holds keep and which.
//!
//! # Verification
//!
//! [`receipt::receipts`] reads and verifies a class's receipts with the verifier key; `meshlog
//! receipts` lists them (exit 1 if any is invalid). A valid receipt is signed by the key, names
//! its own class, and shows a deletion by policy: its newest record plus the class's days is
//! before the sweep time (its `*_observed_unix_ns` fields hold the retention-time range: receive
//! times, or observed times for frames without one). `meshlog verify` (`meshlog_audit::verify`,
//! `meshlog_audit::deletions`) checks every class store of a data directory and accepts a
//! missing segment of a class exactly when a valid receipt in that class's `receipts.log` names
//! it, flagging every other gap: the first frame after the gap must name the receipt's
//! `last_leaf` as its predecessor and its leaf index must skip exactly the receipts' `frames`;
//! checkpoints over deleted frames are recomputed from the kept `deleted/<seq>.leaves`
//! (checked against `leaves_sha256`); and each receipt's note must also be in the store as a
//! `meshlog.retention.deletion` record (or in a segment deleted under a receipt of its own), a
//! finding when it is not. The writer's tree rebuild at start
//! ([`meshlog_store::ledger`]) takes the deleted segments' leaves from the same files.

pub mod classes;
pub mod policy;
pub use meshlog_format::receipt;
pub mod sweep;
