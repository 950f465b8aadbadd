//! meshlog-native: meshlog as an Envoy dynamic-module access logger
//! (`envoy.access_loggers.dynamic_modules`), a native `.so` over the same `meshlog-core` as the
//! Wasm module: same configuration JSON, record, redaction, sampling, batching, retries, batch
//! ids, sequence numbers and tallies, without a VM between Envoy and the core.
//!
//! Layers, each a module: [`abi`] (our bindings to Envoy 1.40's C ABI), [`source`] (core's
//! `AttributeSource` over the typed getters), [`logger`] (one per Envoy thread: capture, sample,
//! buffer), [`ship`] (the module's own thread delivering OTLP/HTTP), [`counters`] (Envoy stats)
//! and [`hooks`] (the exported entry points, each behind `catch_unwind`).
//!
//! Built for one Envoy version: the ABI is C structs and prototypes, checked by Envoy only by
//! symbol names. See docs/native.md.

pub mod abi;
pub mod counters;
pub mod hooks;
pub mod logger;
pub mod ship;
pub mod source;
