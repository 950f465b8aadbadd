//! Tamper evidence and encryption at rest (placeholder docs, completed below).

pub mod merkle;
