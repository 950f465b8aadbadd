//! meshlog-core: everything the Envoy filter decides, as plain Rust.
//!
//! The filter crate only implements [`capture::AttributeSource`] with hostcalls and moves bytes;
//! all logic lives here so it is tested natively and runs unchanged in the Wasm VM. Nothing in this
//! crate reads a clock, draws randomness or touches I/O: callers pass time (and random draws) in.
//!
//! Modules import only modules below them, never in a cycle: [`schema`] (every attribute name),
//! [`json`] and [`config::fields`] (the config walker) are leaves; [`record`] builds on
//! `schema` (and redaction's `Summary`); [`otlp`] encodes records and [`record::Event`]s
//! knowing nothing else; [`rpc`] (gRPC, gRPC-Web and Connect recognition, names,
//! status, severity) builds on `record`; [`enduser`] (verified claims to `enduser.*`) builds on
//! `capture`, `record` and `redact`; the policies ([`redact`], [`sample`]) read their sections through
//! `config::fields`; [`config`] assembles them and [`outbox`] ships what the others produce.

pub mod capture;
pub mod compress;
pub mod config;
pub mod counters;
pub mod enduser;
pub mod envoy;
pub mod httpdate;
pub mod json;
pub mod otlp;
pub mod otlp_proto;
pub mod outbox;
pub mod record;
pub mod redact;
pub mod resource;
pub mod retry;
pub(crate) mod route;
pub mod rpc;
pub mod sample;
pub mod schema;
pub mod trace;

pub use capture::{
    AttributeSource, ConnectionCounts, Header, RequestView, SamplingFacts, capture_http,
    capture_tcp,
};
pub use config::{ConfigErrors, FieldError, FilterConfig};
pub use outbox::{BatchId, Dispatch, Outbox, OutboxStats, Settled};
pub use record::AccessRecord;
