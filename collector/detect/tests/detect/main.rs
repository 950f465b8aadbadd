//! meshlog-detect's integration tests: one binary, one module per concern.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod alertmanager;
mod alerts;
mod baseline;
mod config;
mod notify;
mod replay;
mod retention;
mod rules;
pub mod scenarios;
mod traffic;
