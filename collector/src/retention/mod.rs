//! Retention (placeholder doc, written in full below).

pub mod classes;
pub mod policy;
pub mod receipt;
pub mod sweep;
