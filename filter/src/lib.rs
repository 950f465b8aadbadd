//! meshlog-filter: the proxy-wasm module Envoy loads.
//!
//! Thin glue over `meshlog-core`: the root context (one per VM, i.e. per worker thread) parses
//! the configuration once, owns the batch buffer and ships batches with `dispatch_http_call` from
//! `on_tick` (calls made from a stream context are cancelled when the stream ends). The HTTP
//! context (or, in network-filter mode, the connection context in `tcp`) only captures a record
//! in `on_log` and hands it to the root. Nothing here may panic:
//! a trap kills the VM, and with it logging for every request on that worker.

// The exported entry points are the proxy-wasm ABI, documented by the spec, not here.
#![allow(missing_docs)]

mod floor;
mod host;
mod root;
mod tcp;
#[cfg(test)]
mod tests;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::Root::default()) });
}}
