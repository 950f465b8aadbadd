//! Per-VM batching: encoded records wait here until a count or an age says ship.
//!
//! Records are encoded at log time, so the buffer bound is exact in bytes. Past the bound the
//! oldest records are dropped and counted: memory in a Wasm VM never shrinks, and a slow
//! collector must not grow it without limit. Time is passed in by the caller.

use crate::config::BatchConfig;
use crate::otlp::{Envelope, encode_log_record, encode_tally_record};
use crate::record::AccessRecord;
use crate::sample::Tally;
use std::collections::VecDeque;

/// A request body ready to POST, and how many records it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// OTLP/HTTP JSON `ExportLogsServiceRequest`.
    pub body: Vec<u8>,
    /// Records in `body`.
    pub records: usize,
}

/// Counts since the VM started. Monotonic; exported as Envoy counters by the filter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Records accepted into the buffer (access records and sampling tally records).
    pub records_buffered: u64,
    /// Records dropped because the buffer was full (oldest first).
    pub records_dropped_overflow: u64,
    /// Records handed out in batches.
    pub records_batched: u64,
}

/// The buffer of encoded records for one VM.
#[derive(Debug)]
pub struct Batcher {
    envelope: Envelope,
    max_records: usize,
    max_age_ns: u64,
    max_bytes: usize,
    queue: VecDeque<(u64, Vec<u8>)>,
    queued_bytes: usize,
    stats: BatchStats,
    next_sequence: u64,
    last_record_len: usize,
}

impl Batcher {
    /// A batcher with the given limits; `envelope` wraps every batch.
    pub fn new(cfg: &BatchConfig, envelope: Envelope) -> Self {
        Batcher {
            envelope,
            max_records: cfg.max_records.max(1),
            max_age_ns: cfg.max_age_ms.saturating_mul(1_000_000),
            max_bytes: cfg.max_buffer_bytes,
            queue: VecDeque::new(),
            queued_bytes: 0,
            stats: BatchStats::default(),
            next_sequence: 0,
            last_record_len: 1024,
        }
    }

    /// Numbers `rec` with the VM's next sequence number, encodes and buffers it, dropping the
    /// oldest records if the byte bound is exceeded.
    pub fn push(&mut self, rec: &mut AccessRecord, now_ns: u64) {
        rec.sequence = Some(self.next_sequence);
        self.next_sequence += 1;
        // Sized like the last record: records are alike, so this is usually the only allocation.
        let mut buf = Vec::with_capacity(self.last_record_len + 64);
        encode_log_record(&mut buf, rec);
        self.last_record_len = buf.len();
        self.buffer(buf, now_ns);
    }

    /// Encodes a sampling tally as a `meshlog.sampling.tally` record and buffers it like an
    /// access record. It takes the VM's next sequence number too: sequences stay gapless over
    /// every record the VM ships, so a gap is still a lost record, whichever kind.
    pub fn push_tally(&mut self, tally: &Tally, now_ns: u64) {
        let seq = self.next_sequence;
        self.next_sequence += 1;
        let mut buf = Vec::with_capacity(512);
        encode_tally_record(&mut buf, tally, Some(seq), now_ns);
        self.buffer(buf, now_ns);
    }

    fn buffer(&mut self, buf: Vec<u8>, now_ns: u64) {
        self.queued_bytes += buf.len() + 1;
        self.queue.push_back((now_ns, buf));
        self.stats.records_buffered += 1;
        while self.queued_bytes > self.max_bytes {
            let Some((_, old)) = self.queue.pop_front() else {
                break;
            };
            self.queued_bytes -= old.len() + 1;
            self.stats.records_dropped_overflow += 1;
        }
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Encoded bytes waiting.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Counters since start.
    pub fn stats(&self) -> BatchStats {
        self.stats
    }

    /// True when a batch should ship now: enough records, or the oldest is old enough.
    pub fn is_due(&self, now_ns: u64) -> bool {
        match self.queue.front() {
            None => false,
            Some((t, _)) => {
                self.queue.len() >= self.max_records || now_ns.saturating_sub(*t) >= self.max_age_ns
            }
        }
    }

    /// Takes the next batch (up to `max_records`, oldest first) if one is due.
    pub fn take_due(&mut self, now_ns: u64) -> Option<Batch> {
        if !self.is_due(now_ns) {
            return None;
        }
        self.take_any()
    }

    /// Takes up to `max_records` regardless of age (for a final flush).
    pub fn take_any(&mut self) -> Option<Batch> {
        if self.queue.is_empty() {
            return None;
        }
        let n = self.queue.len().min(self.max_records);
        let taken: Vec<(u64, Vec<u8>)> = self.queue.drain(..n).collect();
        let bytes: usize = taken.iter().map(|(_, b)| b.len() + 1).sum();
        self.queued_bytes -= bytes;
        self.stats.records_batched += n as u64;
        let body = self
            .envelope
            .wrap(taken.iter().map(|(_, b)| b.as_slice()), bytes);
        Some(Batch { body, records: n })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_records: usize, max_age_ms: u64, max_buffer_bytes: usize) -> BatchConfig {
        BatchConfig {
            max_records,
            max_age_ms,
            max_buffer_bytes,
            max_in_flight: 1,
            retry_initial_ms: 200,
            retry_max_ms: 30_000,
        }
    }

    fn rec(i: u64) -> AccessRecord {
        AccessRecord {
            start_time_ns: i,
            path: Some(format!("/r/{i}")),
            ..AccessRecord::default()
        }
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn ships_on_count() {
        let mut b = Batcher::new(&cfg(3, 1000, 1 << 20), Envelope::new([]));
        b.push(&mut rec(1), 0);
        b.push(&mut rec(2), 0);
        assert!(b.take_due(0).is_none());
        b.push(&mut rec(3), 0);
        let batch = b.take_due(0).unwrap();
        assert_eq!(batch.records, 3);
        assert!(b.is_empty());
        assert_eq!(b.queued_bytes(), 0);
        let v: serde_json::Value = serde_json::from_slice(&batch.body).unwrap();
        assert_eq!(
            v["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn ships_on_age_and_splits_by_count() {
        let mut b = Batcher::new(&cfg(2, 100, 1 << 20), Envelope::new([]));
        b.push(&mut rec(1), 0);
        assert!(b.take_due(99 * MS).is_none());
        assert_eq!(b.take_due(100 * MS).unwrap().records, 1);
        for i in 0..5 {
            b.push(&mut rec(i), 200 * MS);
        }
        assert_eq!(b.take_due(200 * MS).unwrap().records, 2);
        assert_eq!(b.take_due(200 * MS).unwrap().records, 2);
        // One left, not old enough yet.
        assert!(b.take_due(200 * MS).is_none());
        assert_eq!(b.take_any().unwrap().records, 1);
        assert_eq!(b.stats().records_batched, 6);
    }

    #[test]
    fn overflow_drops_oldest_and_counts_exactly() {
        let mut b = Batcher::new(&cfg(1000, 1000, 2_000), Envelope::new([]));
        for i in 0..100 {
            b.push(&mut rec(i), 0);
        }
        let s = b.stats();
        assert!(b.queued_bytes() <= 2_000);
        assert_eq!(s.records_buffered, 100);
        assert_eq!(s.records_dropped_overflow + b.len() as u64, 100);
        assert!(s.records_dropped_overflow > 0);
        // The newest survive.
        let body = b.take_any().unwrap().body;
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("/r/99"));
        // Sequence numbers run on without reuse: the dropped ones are gaps.
        assert!(text.contains(r#""meshlog.sequence","value":{"intValue":"99"}"#));
        assert!(!text.contains("\"/r/0\""));
    }

    #[test]
    fn tallies_share_the_record_stream_and_its_sequence() {
        let mut b = Batcher::new(&cfg(10, 1000, 1 << 20), Envelope::new([]));
        b.push(&mut rec(1), 0);
        let mut t = Tally::new("0123456789abcdef", 0);
        t = t.take(5);
        b.push_tally(&t, 5);
        b.push(&mut rec(2), 6);
        assert_eq!(b.len(), 3);
        assert_eq!(b.stats().records_buffered, 3);
        let v: serde_json::Value = serde_json::from_slice(&b.take_any().unwrap().body).unwrap();
        let lrs = v["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
            .as_array()
            .unwrap();
        let names: Vec<&str> = lrs
            .iter()
            .map(|r| r["eventName"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "meshlog.http.access",
                "meshlog.sampling.tally",
                "meshlog.http.access"
            ]
        );
        let seq = |r: &serde_json::Value| {
            r["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == "meshlog.sequence")
                .unwrap()["value"]["intValue"]
                .clone()
        };
        let seqs: Vec<serde_json::Value> = lrs.iter().map(seq).collect();
        assert_eq!(seqs, ["0", "1", "2"]);
    }
}
