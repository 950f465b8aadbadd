//! Tamper evidence and encryption at rest (placeholder docs, completed below).

pub mod checkpoint;
pub mod keys;
pub mod merkle;
pub mod seal;
