//! The sidecar's own counters, named once for both builds: the Wasm filter exports them as
//! Envoy stats (`wasmcustom.meshlog.*`), the native access logger on its configuration's scope.
//! Only names and arithmetic live here; defining and bumping a counter is the host's job.

use crate::outbox::OutboxStats;
use crate::sample::DropReason;

/// Which counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Access records captured and buffered (kept by sampling, when it is on).
    RecordsLogged,
    /// Records in batches the collector acknowledged (2xx), once each however many attempts.
    RecordsSent,
    /// Records dropped because the buffer (`batch.max_buffer_bytes`) was full.
    RecordsDropped,
    /// Records in batches the collector refused for good (4xx and the like).
    RecordsFailed,
    /// Batches acknowledged.
    BatchesSent,
    /// Batches refused for good.
    BatchesFailed,
    /// Attempts to send a batch the host had already sent once: retries on the wire.
    BatchesRetried,
    /// Request body bytes (as sent, compressed) of acknowledged batches.
    BytesSent,
    /// Requests sampling dropped: not selected by their rate.
    RecordsSampledOut,
    /// Requests sampling dropped: selected, but over the per-VM rate cap.
    RecordsRateCapped,
    /// Requests sampling dropped: on the health-check drop list.
    RecordsHealthCheckDropped,
}

impl Counter {
    /// Every counter, in the order of its index (`as usize`).
    pub const ALL: [Counter; 11] = [
        Counter::RecordsLogged,
        Counter::RecordsSent,
        Counter::RecordsDropped,
        Counter::RecordsFailed,
        Counter::BatchesSent,
        Counter::BatchesFailed,
        Counter::BatchesRetried,
        Counter::BytesSent,
        Counter::RecordsSampledOut,
        Counter::RecordsRateCapped,
        Counter::RecordsHealthCheckDropped,
    ];

    /// The stat's name (docs/filter-config.md lists them).
    pub const fn name(self) -> &'static str {
        match self {
            Counter::RecordsLogged => "meshlog.records_logged",
            Counter::RecordsSent => "meshlog.records_sent",
            Counter::RecordsDropped => "meshlog.records_dropped",
            Counter::RecordsFailed => "meshlog.records_failed",
            Counter::BatchesSent => "meshlog.batches_sent",
            Counter::BatchesFailed => "meshlog.batches_failed",
            Counter::BatchesRetried => "meshlog.batches_retried",
            Counter::BytesSent => "meshlog.bytes_sent",
            Counter::RecordsSampledOut => "meshlog.records_sampled_out",
            Counter::RecordsRateCapped => "meshlog.records_rate_capped",
            Counter::RecordsHealthCheckDropped => "meshlog.records_health_check_dropped",
        }
    }

    /// The counter a sampling drop bumps.
    pub const fn dropped(why: &DropReason) -> Counter {
        match why {
            DropReason::SampledOut => Counter::RecordsSampledOut,
            DropReason::RateCap { .. } => Counter::RecordsRateCapped,
            DropReason::HealthCheck => Counter::RecordsHealthCheckDropped,
        }
    }
}

/// What an outbox counted between `was` and `now`, per delivery counter (hosts export the
/// difference, since Envoy's counters only go up).
pub fn outbox_deltas(now: &OutboxStats, was: &OutboxStats) -> [(Counter, u64); 7] {
    let d = |is: u64, was: u64| is.saturating_sub(was);
    [
        (Counter::RecordsSent, d(now.records_sent, was.records_sent)),
        (
            Counter::RecordsDropped,
            d(now.records_dropped, was.records_dropped),
        ),
        (
            Counter::RecordsFailed,
            d(now.records_failed, was.records_failed),
        ),
        (Counter::BatchesSent, d(now.batches_sent, was.batches_sent)),
        (
            Counter::BatchesFailed,
            d(now.batches_failed, was.batches_failed),
        ),
        (
            Counter::BatchesRetried,
            d(now.batches_retried, was.batches_retried),
        ),
        (Counter::BytesSent, d(now.bytes_sent, was.bytes_sent)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_and_names_are_distinct() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
        let mut names: Vec<_> = Counter::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Counter::ALL.len());
    }

    #[test]
    fn deltas_are_the_growth_since_the_last_export_and_never_negative() {
        let was = OutboxStats {
            records_sent: 5,
            bytes_sent: 100,
            ..OutboxStats::default()
        };
        let now = OutboxStats {
            records_sent: 8,
            records_dropped: 2,
            bytes_sent: 90,
            ..OutboxStats::default()
        };
        let d = outbox_deltas(&now, &was);
        assert!(d.contains(&(Counter::RecordsSent, 3)));
        assert!(d.contains(&(Counter::RecordsDropped, 2)));
        assert!(d.contains(&(Counter::BytesSent, 0)));
    }
}
