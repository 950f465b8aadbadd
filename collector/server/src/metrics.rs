//! Prometheus metrics, served as OpenMetrics text at `/metrics`. One [`Metrics`] handle is made
//! at start and passed to where events happen (transports, the pipeline, the listener); there
//! is no global registry. Names follow Prometheus practice: the `meshlog_` prefix, base units
//! (`_seconds`, `_bytes`), counters ending `_total`; no label carries a principal, a trace id or
//! anything else of unbounded cardinality.

use meshlog_retention::sweep::{SweepObserver, SweepReport};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The `Content-Type` of `/metrics` in OpenMetrics (what Prometheus asks for).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The `Content-Type` of `/metrics` in the Prometheus text format 0.0.4 (for clients that do not
/// ask for OpenMetrics, e.g. curl piped into `promtool check metrics`).
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How a batch arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// OTLP/HTTP.
    Http,
    /// OTLP/gRPC.
    Grpc,
    /// Written by the collector itself (access records of reads).
    Internal,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Grpc => "grpc",
            Transport::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    transport: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabel {
    cert: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SweepErrorLabel {
    class: String,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabel {
    rule: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Version {
    version: &'static str,
}

/// The collector's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    records: Family<Outcome, Counter>,
    batches: Family<Outcome, Counter>,
    bytes: Family<TransportLabel, Counter>,
    duplicates: Family<TransportLabel, Counter>,
    refusals: Family<Reason, Counter>,
    fsync: Histogram,
    queue_bytes: Gauge,
    cert_expiry: Family<CertLabel, Gauge>,
    connections: Gauge,
    disk_full_episodes: Counter,
    tree_size: Family<ClassLabel, Gauge>,
    checkpoint_time: Family<ClassLabel, Gauge<f64, AtomicU64>>,
    deleted_segments: Family<ClassLabel, Counter>,
    deleted_records: Family<ClassLabel, Counter>,
    sweep_errors: Family<SweepErrorLabel, Counter>,
    alerts: Family<AlertLabel, Counter>,
    disk_full: AtomicBool,
    stored_total: AtomicU64,
    empty_total: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric registered, at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let alerts = Family::<AlertLabel, Counter>::default();
        registry.register(
            "meshlog_alerts",
            "Alert transitions detected, by rule and state (firing, resolved)",
            alerts.clone(),
        );
        let records = Family::<Outcome, Counter>::default();
        registry.register(
            "meshlog_ingest_records",
            "Log records received, by transport and outcome (stored, duplicate)",
            records.clone(),
        );
        let batches = Family::<Outcome, Counter>::default();
        registry.register(
            "meshlog_ingest_batches",
            "Batches (requests) received, by transport and outcome (stored, duplicate, empty, \
             refused)",
            batches.clone(),
        );
        let bytes = Family::<TransportLabel, Counter>::default();
        registry.register_with_unit(
            "meshlog_ingest_received",
            "Request body bytes received as sent (before decompression)",
            Unit::Bytes,
            bytes.clone(),
        );
        let duplicates = Family::<TransportLabel, Counter>::default();
        registry.register(
            "meshlog_ingest_duplicate_batches",
            "Batches whose meshlog-batch-id was already stored (answered success, stored once)",
            duplicates.clone(),
        );
        let refusals = Family::<Reason, Counter>::default();
        registry.register(
            "meshlog_refusals",
            "Requests and connections refused, by reason",
            refusals.clone(),
        );
        let fsync = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register_with_unit(
            "meshlog_ingest_fsync_wait",
            "Time from handing a batch's frames to the writer until they are fsync'd",
            Unit::Seconds,
            fsync.clone(),
        );
        let queue_bytes = Gauge::default();
        registry.register_with_unit(
            "meshlog_ingest_queue",
            "Bytes of accepted batches waiting to be stored, all classes",
            Unit::Bytes,
            queue_bytes.clone(),
        );
        let cert_expiry = Family::<CertLabel, Gauge>::default();
        registry.register_with_unit(
            "meshlog_tls_cert_expiry_timestamp",
            "notAfter of the server certificate and of the earliest-expiring client CA, Unix time",
            Unit::Seconds,
            cert_expiry.clone(),
        );
        let disk_full_episodes = Counter::default();
        registry.register(
            "meshlog_disk_full_episodes",
            "Times batches began to be refused for a full disk (a first refusal after a batch \
             was stored, or since start)",
            disk_full_episodes.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "meshlog_open_connections",
            "Connections open on the collector's listeners",
            connections.clone(),
        );
        // Read from each class store's Merkle log on scrape (see `set_ledger`).
        let tree_size = Family::<ClassLabel, Gauge>::default();
        registry.register(
            "meshlog_tree_size",
            "Leaves (frames) in the class store's Merkle tree, durably written",
            tree_size.clone(),
        );
        let checkpoint_time = Family::<ClassLabel, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "meshlog_last_checkpoint_timestamp",
            "Time in the class store's last signed checkpoint, Unix time (absent before the \
             first, and without a signing key)",
            Unit::Seconds,
            checkpoint_time.clone(),
        );
        // Counted as the sweeper reports its passes (`SweepObserver`).
        let deleted_segments = Family::<ClassLabel, Counter>::default();
        registry.register(
            "meshlog_retention_deleted_segments",
            "Expired segments deleted by retention, each under a signed receipt",
            deleted_segments.clone(),
        );
        let deleted_records = Family::<ClassLabel, Counter>::default();
        registry.register(
            "meshlog_retention_deleted_records",
            "Records in the segments deleted by retention",
            deleted_records.clone(),
        );
        let sweep_errors = Family::<SweepErrorLabel, Counter>::default();
        registry.register(
            "meshlog_retention_errors",
            "Retention sweep failures by class and kind (the segments concerned are kept)",
            sweep_errors.clone(),
        );
        // A gauge at 1 rather than the OpenMetrics info type: Prometheus' own tools
        // (promtool check metrics) read it either way.
        let build = Family::<Version, Gauge>::default();
        build
            .get_or_create(&Version {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("meshlog_build_info", "The collector's version", build);
        Metrics {
            registry,
            records,
            batches,
            bytes,
            duplicates,
            refusals,
            fsync,
            queue_bytes,
            cert_expiry,
            connections,
            disk_full_episodes,
            tree_size,
            checkpoint_time,
            deleted_segments,
            deleted_records,
            sweep_errors,
            alerts,
            disk_full: AtomicBool::new(false),
            stored_total: AtomicU64::new(0),
            empty_total: AtomicU64::new(0),
        }
    }

    /// The registry, for components with metrics of their own (the ClickHouse sink) to
    /// register into before the metrics are shared.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// An alert of `rule` changed to `state` (`firing`, `resolved`).
    pub fn alert(&self, rule: &str, state: &'static str) {
        self.alerts
            .get_or_create(&AlertLabel {
                rule: rule.to_owned(),
                state,
            })
            .inc();
    }

    /// A batch stored with `records` new records.
    pub fn stored(&self, t: Transport, records: u64) {
        let l = |outcome| Outcome {
            transport: t.as_str(),
            outcome,
        };
        self.batches.get_or_create(&l("stored")).inc();
        self.records.get_or_create(&l("stored")).inc_by(records);
        self.stored_total.fetch_add(records, Ordering::Relaxed);
        self.disk_full.store(false, Ordering::Relaxed);
    }

    /// A batch answered as a duplicate.
    pub fn duplicate(&self, t: Transport, records: u64) {
        let l = |outcome| Outcome {
            transport: t.as_str(),
            outcome,
        };
        self.batches.get_or_create(&l("duplicate")).inc();
        self.records.get_or_create(&l("duplicate")).inc_by(records);
        self.duplicates
            .get_or_create(&TransportLabel {
                transport: t.as_str(),
            })
            .inc();
    }

    /// A valid batch with no records.
    pub fn empty(&self, t: Transport) {
        self.batches
            .get_or_create(&Outcome {
                transport: t.as_str(),
                outcome: "empty",
            })
            .inc();
        self.empty_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A batch refused for `reason`.
    pub fn refused_batch(&self, t: Transport, reason: &'static str) {
        self.batches
            .get_or_create(&Outcome {
                transport: t.as_str(),
                outcome: "refused",
            })
            .inc();
        if reason == "disk_full" && !self.disk_full.swap(true, Ordering::Relaxed) {
            self.disk_full_episodes.inc();
        }
        self.refusal(reason);
    }

    /// A refusal (request or connection) for `reason`.
    pub fn refusal(&self, reason: &'static str) {
        self.refusals.get_or_create(&Reason { reason }).inc();
    }

    /// Body bytes received.
    pub fn received_bytes(&self, t: Transport, n: u64) {
        self.bytes
            .get_or_create(&TransportLabel {
                transport: t.as_str(),
            })
            .inc_by(n);
    }

    /// How long a batch waited for its fsync.
    pub fn fsync_wait(&self, d: Duration) {
        self.fsync.observe(d.as_secs_f64());
    }

    /// The ingest queue's size now.
    pub fn set_queue_bytes(&self, n: u64) {
        self.queue_bytes.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Certificate expiry times (Unix seconds).
    pub fn set_cert_expiry(&self, server: Option<i64>, client_ca: Option<i64>) {
        for (cert, v) in [("server", server), ("client_ca", client_ca)] {
            if let Some(v) = v {
                self.cert_expiry.get_or_create(&CertLabel { cert }).set(v);
            }
        }
    }

    /// A class store's Merkle tree size and last signed checkpoint time (Unix nanoseconds).
    pub fn set_ledger(&self, class: &str, tree_size: u64, last_checkpoint_unix_ns: Option<u64>) {
        let label = ClassLabel {
            class: class.to_owned(),
        };
        self.tree_size
            .get_or_create(&label)
            .set(i64::try_from(tree_size).unwrap_or(i64::MAX));
        if let Some(ns) = last_checkpoint_unix_ns {
            // Whole milliseconds: exact in an f64, and finer than a checkpoint interval.
            let ms = ns / 1_000_000;
            self.checkpoint_time
                .get_or_create(&label)
                .set(ms as f64 / 1000.0);
        }
    }

    /// A connection opened (+1) or closed (-1).
    pub fn connection(&self, delta: i64) {
        self.connections.inc_by(delta);
    }

    /// Records stored and empty batches so far (for the periodic rate log line).
    pub fn totals(&self) -> (u64, u64) {
        (
            self.stored_total.load(Ordering::Relaxed),
            self.empty_total.load(Ordering::Relaxed),
        )
    }

    /// The Prometheus text format 0.0.4: the OpenMetrics text with counters' `HELP` and `TYPE`
    /// named as their samples (`_total`), without `# UNIT` and `# EOF`.
    pub fn encode_text(&self) -> String {
        let om = self.encode();
        let counters: std::collections::HashSet<&str> = om
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.strip_suffix(" counter"))
            .collect();
        let mut out = String::with_capacity(om.len());
        for line in om.lines() {
            if line.starts_with("# UNIT ") || line == "# EOF" {
                continue;
            }
            let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
                let rest = line.strip_prefix(p)?;
                let (name, tail) = rest.split_once(' ')?;
                counters
                    .contains(name)
                    .then(|| format!("{p}{name}_total {tail}"))
            });
            out.push_str(renamed.as_deref().unwrap_or(line));
            out.push('\n');
        }
        out
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl SweepObserver for Metrics {
    fn swept(&self, report: &SweepReport) {
        for c in &report.classes {
            let label = ClassLabel {
                class: c.class.clone(),
            };
            let segments = (c.deleted.len() + c.completed.len()) as u64;
            // Touched even at zero, so the series exist from the first pass.
            self.deleted_segments.get_or_create(&label).inc_by(segments);
            self.deleted_records
                .get_or_create(&label)
                .inc_by(c.records_deleted);
            for e in &c.errors {
                self.sweep_errors
                    .get_or_create(&SweepErrorLabel {
                        class: c.class.clone(),
                        kind: e.kind(),
                    })
                    .inc();
            }
        }
    }
}

/// The refusal reason of an ingest error, for `meshlog_refusals_total`.
pub fn reason(e: &crate::ApiError) -> &'static str {
    use crate::ApiError as E;
    match e {
        E::Malformed(_) => "malformed",
        E::TooLarge(_) => "too_large",
        E::Unsupported(_) => "unsupported",
        E::Storage(_) => "storage_failure",
        E::Unavailable { .. } => "busy",
        E::InsufficientStorage(_) => "disk_full",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let m = Metrics::new();
        m.stored(Transport::Grpc, 3);
        m.refusal("unauthenticated");
        m.fsync_wait(Duration::from_millis(2));
        m.set_cert_expiry(Some(1_900_000_000), None);
        for _ in 0..3 {
            m.refused_batch(Transport::Http, "disk_full");
        }
        m.stored(Transport::Http, 1);
        m.refused_batch(Transport::Http, "disk_full");
        m.set_ledger("default", 7, Some(1_800_000_000_123_456_789));
        m.set_ledger("short", 0, None);
        let text = m.encode();
        for needle in [
            "meshlog_ingest_records_total{transport=\"grpc\",outcome=\"stored\"} 3",
            "meshlog_ingest_batches_total{transport=\"grpc\",outcome=\"stored\"} 1",
            "meshlog_refusals_total{reason=\"unauthenticated\"} 1",
            "meshlog_ingest_fsync_wait_seconds_count 1",
            "meshlog_tls_cert_expiry_timestamp_seconds{cert=\"server\"} 1900000000",
            "meshlog_build_info{version=",
            "meshlog_disk_full_episodes_total 2",
            "meshlog_tree_size{class=\"default\"} 7",
            "meshlog_tree_size{class=\"short\"} 0",
            "meshlog_last_checkpoint_timestamp_seconds{class=\"default\"} 1800000000.123",
            "# EOF",
        ] {
            assert!(text.contains(needle), "{needle} not in\n{text}");
        }
        assert!(
            !text.contains("meshlog_last_checkpoint_timestamp_seconds{class=\"short\"}"),
            "no checkpoint yet: no sample\n{text}"
        );
        let plain = m.encode_text();
        assert!(
            plain.contains("# TYPE meshlog_refusals_total counter"),
            "{plain}"
        );
        assert!(plain.contains("# HELP meshlog_refusals_total "), "{plain}");
        assert!(
            !plain.contains("# EOF") && !plain.contains("# UNIT"),
            "{plain}"
        );
        assert!(plain.contains("# TYPE meshlog_ingest_fsync_wait_seconds histogram"));
    }
}
