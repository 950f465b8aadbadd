//! Retention (placeholder doc, written in full below).

pub mod policy;
pub mod receipt;
