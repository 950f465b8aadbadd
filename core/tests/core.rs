//! core's integration tests, one binary (one link, one Wasm module under WASI): each module is
//! one area.

// Test helpers outside `#[test]` functions: the crate's no-panic lints are for production code.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

/// The labelled corpus generator, shared with the end-to-end and collector tests.
#[path = "../../tests/src/corpus_gen.rs"]
mod corpus_gen;
#[path = "core/creds.rs"]
mod creds;
#[path = "core/outbox.rs"]
mod outbox;
#[path = "core/redact.rs"]
mod redact;
#[path = "core/sample.rs"]
mod sample;
