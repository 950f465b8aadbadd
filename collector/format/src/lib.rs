//! meshlog-format: how a data directory looks on disk, and how to read it, with no async
//! runtime, so the writer, the sweeper and the auditor's tools share one definition.
//!
//! - [`layout`]: every path of a data directory, named once;
//! - [`fsutil`]: directory fsync, durable replacement, the deleted-leaves codec;
//! - [`frame`]: the segment and frame codec (CRC-checked, zstd, optionally sealed, chained);
//! - [`batch_id`]: the batch ids frames carry;
//! - [`reader`]: segment scanning and reading records back (opening sealed frames with
//!   [`encryption::DataKeys`]);
//! - [`checkpoint_log`]: the framing of `checkpoints.log`;
//! - [`receipt`]: signed deletion receipts and the framing of `receipts.log`;
//! - [`time`]: the timestamps and retention arithmetic receipts and reports print.

// Byte-format parsers index slices whose bounds they check first (and fuzz and tamper tests
// cover); the workspace's panic-free lints are kept for the code that runs inside Envoy.
#![allow(clippy::indexing_slicing)]

pub mod batch_id;
pub mod checkpoint_log;
pub mod encryption;
pub mod frame;
pub mod fsutil;
pub mod layout;
pub mod reader;
pub mod receipt;
pub mod time;
