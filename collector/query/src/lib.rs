//! meshlog-query: the read path over a data directory.
//!
//! - [`filter`]: which records a query wants, from CLI flags or URL query parameters.

pub mod filter;

pub use filter::{Filter, FilterError, Record};
