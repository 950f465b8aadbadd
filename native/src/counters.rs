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

pub use meshlog_core::counters::Counter;

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
        let fixed = Counter::ALL
            .iter()
            .map(|c| config.define_counter(c.name()))
            .collect();
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
        for (c, by) in meshlog_core::counters::outbox_deltas(now, was) {
            self.add(c, by);
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
