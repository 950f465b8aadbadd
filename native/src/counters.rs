//! The Wasm module's counters, under the same names (`meshlog.records_logged`, ...,
//! `meshlog.redacted.<kind>`), defined on Envoy's access-log configuration. Envoy shows them
//! under the access logger's stats scope instead of `wasmcustom.` (docs/native.md).
//!
//! Counting goes through a [`Live`] guard: the shipping thread may outlive Envoy's configuration
//! object by a few moments, and must not touch it once `config_destroy` has returned.

use crate::abi::ConfigHandle;
use meshlog_core::OutboxStats;
use meshlog_core::redact::{Kind, Summary};
use std::sync::RwLock;

/// Which counter.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    /// Records captured and buffered.
    RecordsLogged,
    /// Records in batches the collector acknowledged.
    RecordsSent,
    /// Records dropped because the buffer was full.
    RecordsDropped,
    /// Records in batches refused for good.
    RecordsFailed,
    /// Batches acknowledged.
    BatchesSent,
    /// Batches refused for good.
    BatchesFailed,
    /// Retries on the wire.
    BatchesRetried,
    /// Compressed body bytes acknowledged.
    BytesSent,
    /// Requests sampling dropped by rate.
    RecordsSampledOut,
    /// Requests sampling dropped over the rate cap.
    RecordsRateCapped,
    /// Requests sampling dropped as health checks.
    RecordsHealthCheckDropped,
}

const NAMES: [&str; 11] = [
    "meshlog.records_logged",
    "meshlog.records_sent",
    "meshlog.records_dropped",
    "meshlog.records_failed",
    "meshlog.batches_sent",
    "meshlog.batches_failed",
    "meshlog.batches_retried",
    "meshlog.bytes_sent",
    "meshlog.records_sampled_out",
    "meshlog.records_rate_capped",
    "meshlog.records_health_check_dropped",
];

/// Counter ids on one configuration.
#[derive(Debug)]
struct Ids {
    config: ConfigHandle,
    fixed: Vec<Option<usize>>,
    redacted: Vec<Option<usize>>,
}

/// The counters, while Envoy's configuration lives.
#[derive(Debug)]
pub struct Live(RwLock<Option<Ids>>);

impl Live {
    /// Defines every counter on `config` (during `config_new`).
    pub fn define(config: ConfigHandle) -> Self {
        let fixed = NAMES.iter().map(|n| config.define_counter(n)).collect();
        let redacted = Kind::ALL
            .iter()
            .map(|k| config.define_counter(&format!("meshlog.redacted.{}", k.name())))
            .collect();
        Live(RwLock::new(Some(Ids {
            config,
            fixed,
            redacted,
        })))
    }

    /// Adds `by` to `which` (nothing once [`Live::retire`] ran).
    pub fn add(&self, which: Counter, by: u64) {
        if by == 0 {
            return;
        }
        if let Ok(g) = self.0.read()
            && let Some(ids) = g.as_ref()
            && let Some(Some(id)) = ids.fixed.get(which as usize)
        {
            ids.config.add(*id, by);
        }
    }

    /// Adds a record's redactions per kind.
    pub fn redacted(&self, summary: &Summary) {
        if let Ok(g) = self.0.read()
            && let Some(ids) = g.as_ref()
        {
            for (kind, n) in summary.iter() {
                if let Some(Some(id)) = ids.redacted.get(kind.index()) {
                    ids.config.add(*id, u64::from(n));
                }
            }
        }
    }

    /// Adds what an outbox counted since `was`.
    pub fn outbox(&self, now: &OutboxStats, was: &OutboxStats) {
        for (c, is, was) in [
            (Counter::RecordsSent, now.records_sent, was.records_sent),
            (
                Counter::RecordsDropped,
                now.records_dropped,
                was.records_dropped,
            ),
            (
                Counter::RecordsFailed,
                now.records_failed,
                was.records_failed,
            ),
            (Counter::BatchesSent, now.batches_sent, was.batches_sent),
            (
                Counter::BatchesFailed,
                now.batches_failed,
                was.batches_failed,
            ),
            (
                Counter::BatchesRetried,
                now.batches_retried,
                was.batches_retried,
            ),
            (Counter::BytesSent, now.bytes_sent, was.bytes_sent),
        ] {
            self.add(c, is.saturating_sub(was));
        }
    }

    /// Envoy is destroying the configuration: no counting from here on. Waits only for a count
    /// in progress.
    pub fn retire(&self) {
        if let Ok(mut g) = self.0.write() {
            *g = None;
        }
    }
}
