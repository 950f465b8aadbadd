//! meshlog-query: the read path over a data directory, shared by `meshlog query` and the
//! collector's query API.
//!
//! - [`filter`]: which records a query wants, from CLI flags or URL query parameters;
//! - [`params`]: the rest of a query (limit, order, cursor, count, group by, buckets);
//! - [`index`]: the per-segment sidecar index that lets a scan skip frames (never evidence);
//! - [`scan`]: walking the stores, skipping what the index rules out, matching records;
//! - [`records`]: listing matches, oldest or newest first, with cursor pagination;
//! - [`aggregate`]: counts per key and time bucket;
//! - [`complete`]: the checkpoint a result is complete against, and per-VM gaps.

pub mod aggregate;
pub mod complete;
pub mod filter;
pub mod index;
pub mod params;
pub mod records;
pub mod scan;

pub use filter::{Filter, FilterError, Record};
pub use params::{Order, QueryParams};
pub use scan::{Position, QueryError, ScanOptions};
