//! Network-filter mode (`envoy.filters.network.wasm`): one record per TCP connection.
//!
//! The stream context only counts: the accept time and the bytes each way, from the data
//! callbacks Envoy makes anyway. At close Envoy calls `on_log`, and the record is captured and
//! buffered like an HTTP one (peers, upstream, duration, TLS identity, response flags). Data is
//! never read or held: the filter returns `Continue` at once and traffic flows unchanged.

use crate::host::{Counters, now_ns};
use crate::root::{Shared, log_connection};
use meshlog_core::ConnectionCounts;
use proxy_wasm::traits::{Context, StreamContext};
use proxy_wasm::types::Action;

/// Per-connection context.
pub struct ConnectionLogger {
    pub shared: Shared,
    pub counters: Counters,
    pub counts: ConnectionCounts,
}

impl Context for ConnectionLogger {}

impl StreamContext for ConnectionLogger {
    fn on_new_connection(&mut self) -> Action {
        self.counts.start_ns = now_ns();
        Action::Continue
    }

    fn on_downstream_data(&mut self, data_size: usize, _end_of_stream: bool) -> Action {
        self.counts.bytes_received = self.counts.bytes_received.saturating_add(data_size as u64);
        Action::Continue
    }

    fn on_upstream_data(&mut self, data_size: usize, _end_of_stream: bool) -> Action {
        self.counts.bytes_sent = self.counts.bytes_sent.saturating_add(data_size as u64);
        Action::Continue
    }

    fn on_log(&mut self) {
        log_connection(&self.shared, &self.counters, self.counts);
    }
}
