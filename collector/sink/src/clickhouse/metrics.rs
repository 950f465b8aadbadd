//! The sink's Prometheus metrics, registered into the collector's registry (served at
//! `/metrics` with the others), labelled by retention class (`class`, `default` for a store
//! without classes):
//!
//! - `meshlog_sink_lag_records`: committed records not yet acknowledged by ClickHouse. Flat
//!   when the sink keeps up; grows during an outage (the alert in
//!   `deploy/prometheus/meshlog-sink.rules.yml` fires on it).
//! - `meshlog_sink_exported_records_total`: rows ClickHouse acknowledged.
//! - `meshlog_sink_insert_failures_total`: inserts that failed (each is retried).
//! - `meshlog_sink_skipped_leaves_total`: frames retention deleted before they were exported.
//! - `meshlog_sink_cursor_leaf`: the first leaf not yet acknowledged.
//! - `meshlog_sink_last_export_timestamp_seconds`: when ClickHouse last acknowledged an insert.
//! - `meshlog_sink_insert_duration_seconds`: how long acknowledged inserts took.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: String,
}

/// The sink's metrics.
#[derive(Debug)]
pub struct SinkMetrics {
    lag: Family<ClassLabel, Gauge>,
    exported: Family<ClassLabel, Counter>,
    failures: Family<ClassLabel, Counter>,
    skipped: Family<ClassLabel, Counter>,
    cursor: Family<ClassLabel, Gauge>,
    last_export: Family<ClassLabel, Gauge<f64, AtomicU64>>,
    duration: Family<ClassLabel, Histogram, fn() -> Histogram>,
}

fn label(log: &str) -> ClassLabel {
    ClassLabel {
        class: if log.is_empty() {
            "default".to_owned()
        } else {
            log.to_owned()
        },
    }
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl SinkMetrics {
    /// New metrics, registered into `registry`.
    pub fn register(registry: &mut Registry) -> SinkMetrics {
        fn buckets() -> Histogram {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        }
        let m = SinkMetrics {
            lag: Family::default(),
            exported: Family::default(),
            failures: Family::default(),
            skipped: Family::default(),
            cursor: Family::default(),
            last_export: Family::default(),
            duration: Family::new_with_constructor(buckets as fn() -> Histogram),
        };
        registry.register(
            "meshlog_sink_lag_records",
            "Committed records not yet acknowledged by ClickHouse",
            m.lag.clone(),
        );
        registry.register(
            "meshlog_sink_exported_records",
            "Rows ClickHouse acknowledged",
            m.exported.clone(),
        );
        registry.register(
            "meshlog_sink_insert_failures",
            "ClickHouse inserts that failed (each is retried)",
            m.failures.clone(),
        );
        registry.register(
            "meshlog_sink_skipped_leaves",
            "Frames retention deleted before the sink exported them",
            m.skipped.clone(),
        );
        registry.register(
            "meshlog_sink_cursor_leaf",
            "The first leaf not yet acknowledged by ClickHouse",
            m.cursor.clone(),
        );
        registry.register_with_unit(
            "meshlog_sink_last_export_timestamp",
            "When ClickHouse last acknowledged an insert (Unix time)",
            Unit::Seconds,
            m.last_export.clone(),
        );
        registry.register_with_unit(
            "meshlog_sink_insert_duration",
            "How long acknowledged ClickHouse inserts took",
            Unit::Seconds,
            m.duration.clone(),
        );
        m
    }

    /// The lag of `log` now.
    pub fn set_lag(&self, log: &str, records: u64) {
        self.lag
            .get_or_create(&label(log))
            .set(gauge_value(records));
    }

    /// Where `log`'s cursor is.
    pub fn set_cursor(&self, log: &str, leaf: u64) {
        self.cursor
            .get_or_create(&label(log))
            .set(gauge_value(leaf));
    }

    /// An insert of `rows` rows acknowledged after `took`.
    pub fn exported(&self, log: &str, rows: u64, took: Duration) {
        let l = label(log);
        self.exported.get_or_create(&l).inc_by(rows);
        self.duration.get_or_create(&l).observe(took.as_secs_f64());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.last_export
            .get_or_create(&l)
            .set((now.as_millis() as f64) / 1000.0);
    }

    /// An insert failed.
    pub fn failed(&self, log: &str) {
        self.failures.get_or_create(&label(log)).inc();
    }

    /// Frames deleted before export.
    pub fn skipped(&self, log: &str, leaves: u64) {
        self.skipped.get_or_create(&label(log)).inc_by(leaves);
    }

    /// Makes every series of `log` exist (at zero) from the start.
    pub fn touch(&self, log: &str) {
        let l = label(log);
        let _ = self.lag.get_or_create(&l);
        let _ = self.exported.get_or_create(&l);
        let _ = self.failures.get_or_create(&l);
        let _ = self.skipped.get_or_create(&l);
    }
}
