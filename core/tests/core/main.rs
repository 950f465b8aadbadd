//! core's integration tests, one test binary (one link, one run, natively and under
//! `cargo test-wasm`): the outbox against a simulated lossy collector (`outbox`), the redaction
//! engine (`redact`) and its credential library (`creds`), and the sampling engine (`sample`), with shared helpers in `util`.
//!
//! Proptest keeps its regression seeds beside this directory: a module `core/tests/core/X.rs`
//! reads and writes `core/tests/proptest-regressions/X.txt` (its default `SourceParallel`
//! persistence, which goes up to the directory holding `main.rs`).

// Test helpers outside `#[test]` functions: the crate's no-panic lints are for production code.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

#[macro_use]
mod util;

/// The labelled corpus generator, shared with the end-to-end and collector tests.
#[path = "../../../tests/src/corpus_gen.rs"]
mod corpus_gen;
mod creds;
mod outbox;
mod redact;
mod sample;
