//! The per-VM outbox: every record the VM ships waits here until the collector has it, and
//! whatever cannot wait is dropped oldest first and accounted for by sequence number.
//!
//! A VM (one per Envoy worker) numbers every record it buffers — access records, sampling tallies
//! and its own delivery tallies — with a gapless sequence ([`Outbox::push`]). Records wait *open*
//! until a batch is due (`max_records` waiting, or the oldest `max_age_ms` old); then the batch
//! is *sealed*: wrapped in the OTLP envelope and compressed, once. A sealed batch's bytes never
//! change, and its id (`meshlog-batch-id: <vm id>:<first seq>-<last seq>`) names it, so a retry
//! is the same request again and the collector can drop a duplicate.
//!
//! # Delivery
//!
//! The caller (the filter's root context) asks [`Outbox::next_dispatch`] on every tick and
//! whenever a call completes, hands each [`Dispatch`] to the host, and reports back:
//! [`Outbox::on_sent`] or [`Outbox::on_dispatch_error`], then [`Outbox::on_response`] with the
//! [`Outcome`]. Retries come before new batches, oldest first.
//!
//! - 2xx: delivered. The records count as sent.
//! - No answer, 408, 429, 5xx but 501/505, or the host refusing the call: retry. The whole
//!   outbox pauses — the collector is one — for the answer's `Retry-After` (delta-seconds or
//!   HTTP-date) if it gave one, else an exponential backoff with full jitter
//!   ([`Backoff`]), both capped at `retry_max_ms`. While failures go on, one call at a time
//!   probes the collector; the first success restores `max_in_flight` and clears the backoff
//!   (not a server's `Retry-After`).
//! - Any other status (400, 413, 415, other 4xx, 1xx, 3xx, 501, 505): rejected for good. The
//!   records count as failed; resending the same bytes cannot help.
//!
//! A batch is retried until delivered, rejected or dropped: there is no attempt limit, the byte
//! bound is what ends a hopeless wait.
//!
//! # The byte bound (`max_buffer_bytes`)
//!
//! It covers everything the VM holds for delivery: open records at their encoded size plus one
//! byte each (the separating comma) plus, while any record is open, the envelope's size — what
//! they would take as one uncompressed body — and sealed batches — waiting, in flight or
//! awaiting retry — at their body size *as sent* (compressed; the uncompressed form is not
//! kept, and compression never grows a body). After every change that adds bytes the outbox
//! drops, until it is back under the bound:
//!
//! 1. the oldest sealed batch not in flight, whole (its records are the oldest held);
//! 2. then the oldest open record.
//!
//! A batch in flight is never dropped: the host may be delivering it right now. If in-flight
//! batches alone fill the bound, what is dropped is the newest record. So the bound holds after
//! every call, except while batches in flight alone exceed it (after [`Outbox::flush`], which
//! may split the open records into several bodies, each with its own envelope).
//!
//! # Accounting
//!
//! Every buffered record ends in exactly one of: sent (in a delivered batch), dropped (overflow),
//! failed (rejected), or still held. [`OutboxStats`] counts each (`records_buffered` = `sent` +
//! `dropped` + `failed` + [`Outbox::held_records`]). Dropped and failed records are also noted by
//! sequence number in a [`DeliveryTally`], which goes out as a `meshlog.delivery.tally` record
//! (taking its own sequence number) after the next delivery, when the collector is reachable
//! again; on its own when nothing else is left to send (a refused tally waits `retry_max_ms`
//! before going alone again); and at [`Outbox::flush`]. If that record is itself dropped or rejected, its counts
//! return to the pending tally and travel with the next one; each also carries the VM's running
//! totals. So at the collector, per VM: every sequence number is in a stored batch or in a
//! stored tally, and the largest totals are the exact counts. One ambiguity cannot be avoided: a
//! batch that was stored but whose answer was lost, and which was then dropped, appears both
//! stored and dropped (and, if it held a tally, that tally's ranges are reported again): readers
//! take stored over dropped and the union of ranges.

mod tally;

pub use tally::{
    ATTR_DROPPED_OVERFLOW, ATTR_DROPPED_OVERFLOW_SEQUENCES, ATTR_DROPPED_OVERFLOW_TOTAL,
    ATTR_FAILED, ATTR_FAILED_SEQUENCES, ATTR_FAILED_TOTAL, ATTR_SEQUENCES_APPROXIMATE,
    DELIVERY_TALLY_EVENT_NAME, DeliveryTally, MAX_RANGES, SeqRanges, parse_ranges,
};

use crate::compress::{Compression, compress};
use crate::config::BatchConfig;
use crate::otlp::Envelope;
use crate::record::AccessRecord;
use crate::retry::{Backoff, Outcome};
use crate::sample::Tally;
use std::collections::VecDeque;
use std::fmt;

/// The header that carries a batch's id.
pub const BATCH_ID_HEADER: &str = "meshlog-batch-id";

/// A sealed batch: the sequence numbers of its first and last record. Its records are exactly
/// `first_seq..=last_seq`. With the VM id it names the batch at the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId {
    /// Sequence number of the first record.
    pub first_seq: u64,
    /// Sequence number of the last record.
    pub last_seq: u64,
}

impl BatchId {
    /// Records in the batch.
    pub fn records(&self) -> u64 {
        self.last_seq
            .saturating_sub(self.first_seq)
            .saturating_add(1)
    }

    /// The header value: `<vm id>:<first>-<last>`.
    pub fn header_value(&self, vm_id: &str) -> String {
        format!("{vm_id}:{self}")
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first_seq, self.last_seq)
    }
}

/// A batch to hand to the host now. Report what happened with its `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch<'a> {
    /// The batch.
    pub id: BatchId,
    /// The request body, exactly as on every attempt.
    pub body: &'a [u8],
    /// `content-type`, `content-encoding` (when compressed) and `meshlog-batch-id`. The caller
    /// adds the pseudo-headers (`:method`, `:path`, `:authority`).
    pub headers: Vec<(&'static str, String)>,
    /// Attempts the host accepted before this one (0: first try).
    pub previous_attempts: u32,
}

/// What a report settled, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The batch is delivered; its records count as sent.
    Delivered {
        /// Records in it.
        records: u64,
        /// Its body size as sent.
        bytes: u64,
    },
    /// Rejected for good; its records count as failed.
    Rejected {
        /// Records in it.
        records: u64,
        /// The collector's status.
        status: u16,
    },
    /// It waits for another try.
    Retry {
        /// Records in it.
        records: u64,
        /// Nothing is sent before this many ns from now.
        delay_ns: u64,
        /// Consecutive retryable failures so far.
        failures: u32,
    },
}

/// Counts since the outbox was created. Monotonic; the filter exports them as Envoy counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Records numbered and buffered: access records, sampling tallies and delivery tallies.
    pub records_buffered: u64,
    /// Records in delivered batches (each counted once, however many attempts it took).
    pub records_sent: u64,
    /// Records dropped because the buffer was full (whole sealed batches or open records).
    pub records_dropped: u64,
    /// Records in batches the collector rejected for good.
    pub records_failed: u64,
    /// Batches delivered.
    pub batches_sent: u64,
    /// Batches rejected for good.
    pub batches_failed: u64,
    /// Sealed batches dropped whole for overflow (their records are in `records_dropped`).
    pub batches_dropped: u64,
    /// Attempts the host accepted for a batch it had accepted before: retries on the wire.
    pub batches_retried: u64,
    /// Retryable failures: answers that said "later" and calls the host refused.
    pub retryable_failures: u64,
    /// Body bytes (as sent, compressed) of delivered batches, once each.
    pub bytes_sent: u64,
    /// Body bytes of every attempt the host accepted, retries included.
    pub bytes_dispatched: u64,
    /// `meshlog.delivery.tally` records buffered (included in `records_buffered`).
    pub delivery_tallies: u64,
}

/// A record waiting for its batch.
#[derive(Debug)]
struct Open {
    at_ns: u64,
    seq: u64,
    bytes: Vec<u8>,
    /// For a delivery tally record: what it reports, which goes back to pending if it is lost.
    carries: Option<Box<DeliveryTally>>,
}

#[derive(Debug)]
struct Sealed {
    id: BatchId,
    body: Vec<u8>,
    /// Its `content-type`: the envelope's format when it was sealed.
    content_type: &'static str,
    encoding: Option<&'static str>,
    in_flight: bool,
    attempts: u32,
    /// Delivery tallies inside, merged.
    carries: Option<Box<DeliveryTally>>,
}

/// One VM's records on their way to the collector. See the module documentation.
#[derive(Debug)]
pub struct Outbox {
    vm_id: String,
    envelope: Envelope,
    compression: Compression,
    max_records: usize,
    max_age_ns: u64,
    max_bytes: usize,
    max_in_flight: usize,
    backoff: Backoff,

    open: VecDeque<Open>,
    open_bytes: usize,
    /// Oldest first; retries go in seal order.
    sealed: VecDeque<Sealed>,
    sealed_bytes: usize,
    in_flight: usize,
    next_sequence: u64,
    last_record_len: usize,

    /// Consecutive retryable failures; 0 once a batch is delivered.
    failures: u32,
    /// No dispatch before this (unix ns): our own backoff, cleared by a delivery.
    backoff_until_ns: u64,
    /// No dispatch before this either: the collector's `Retry-After`, which a delivery does not
    /// clear (another batch getting through does not mean the server's pause is over).
    server_pause_until_ns: u64,

    pending: DeliveryTally,
    /// A batch carrying a delivery tally was refused: no tally goes out on its own before this
    /// time (`retry_max_ms` later), or a collector refusing everything would get one per tick.
    tally_refused_until_ns: u64,
    stats: OutboxStats,
}

impl Outbox {
    /// An empty outbox for the VM `vm_id` (16 lower-case hex digits, written into every batch
    /// id), with `batch`'s limits, bodies compressed as `compression` and wrapped in `envelope`.
    pub fn new(
        batch: &BatchConfig,
        compression: Compression,
        envelope: Envelope,
        vm_id: &str,
    ) -> Self {
        let mut o = Outbox {
            vm_id: vm_id.to_owned(),
            envelope,
            compression,
            max_records: 1,
            max_age_ns: 0,
            max_bytes: 0,
            max_in_flight: 1,
            backoff: Backoff::new(0, 0),
            open: VecDeque::new(),
            open_bytes: 0,
            sealed: VecDeque::new(),
            sealed_bytes: 0,
            in_flight: 0,
            next_sequence: 0,
            last_record_len: 1024,
            failures: 0,
            backoff_until_ns: 0,
            server_pause_until_ns: 0,
            pending: DeliveryTally::default(),
            tally_refused_until_ns: 0,
            stats: OutboxStats::default(),
        };
        o.set_limits(batch);
        o
    }

    fn set_limits(&mut self, batch: &BatchConfig) {
        self.max_records = batch.max_records.max(1);
        self.max_age_ns = batch.max_age_ms.saturating_mul(1_000_000);
        self.max_bytes = batch.max_buffer_bytes;
        self.max_in_flight = batch.max_in_flight.max(1);
        self.backoff = Backoff::new(batch.retry_initial_ms, batch.retry_max_ms);
    }

    /// Takes a new configuration without losing anything: open records are sealed first, under
    /// the envelope and compression they were produced with; then the new limits, envelope and
    /// compression apply (and the byte bound, which may drop). Sequence numbers, held batches,
    /// calls in flight, the backoff and the pending tally carry over.
    pub fn reconfigure(
        &mut self,
        batch: &BatchConfig,
        compression: Compression,
        envelope: Envelope,
    ) {
        while self.seal() {}
        self.set_limits(batch);
        self.compression = compression;
        self.envelope = envelope;
        self.make_room();
    }

    /// Numbers `rec` with the VM's next sequence number, encodes and buffers it (which may drop
    /// the oldest held records to stay within the byte bound).
    pub fn push(&mut self, rec: &mut AccessRecord, now_ns: u64) {
        let seq = self.take_sequence();
        rec.sequence = Some(seq);
        // Sized like the last record: records are alike, so this is usually the only allocation.
        let mut buf = Vec::with_capacity(self.last_record_len + 64);
        self.envelope.encode_record(&mut buf, rec);
        self.last_record_len = buf.len();
        self.enqueue(now_ns, seq, buf, None);
    }

    /// Buffers a sampling tally as a `meshlog.sampling.tally` record, numbered like any record:
    /// sequences stay gapless over everything the VM ships, so a gap is a lost record.
    pub fn push_tally(&mut self, tally: &Tally, now_ns: u64) {
        let seq = self.take_sequence();
        let mut buf = Vec::with_capacity(512);
        self.envelope
            .encode_event(&mut buf, tally, Some(seq), now_ns);
        self.enqueue(now_ns, seq, buf, None);
    }

    /// Buffers the pending delivery tally as a record (if anything is pending).
    fn push_delivery_tally(&mut self, now_ns: u64) {
        if self.pending.is_empty() {
            return;
        }
        let mut tally = Box::new(std::mem::take(&mut self.pending));
        tally.dropped_overflow_total = self.stats.records_dropped;
        tally.failed_total = self.stats.records_failed;
        let seq = self.take_sequence();
        let mut buf = Vec::with_capacity(256);
        self.envelope
            .encode_event(&mut buf, &*tally, Some(seq), now_ns);
        self.stats.delivery_tallies += 1;
        self.enqueue(now_ns, seq, buf, Some(tally));
    }

    fn take_sequence(&mut self) -> u64 {
        let s = self.next_sequence;
        self.next_sequence = s.saturating_add(1);
        s
    }

    fn enqueue(
        &mut self,
        at_ns: u64,
        seq: u64,
        bytes: Vec<u8>,
        carries: Option<Box<DeliveryTally>>,
    ) {
        self.open_bytes += bytes.len() + 1;
        self.open.push_back(Open {
            at_ns,
            seq,
            bytes,
            carries,
        });
        self.stats.records_buffered += 1;
        self.make_room();
    }

    /// Drops the oldest droppable until the bound holds again (see the module documentation).
    fn make_room(&mut self) {
        while self.held_bytes() > self.max_bytes {
            if let Some(i) = self.sealed.iter().position(|b| !b.in_flight)
                && let Some(b) = self.sealed.remove(i)
            {
                self.sealed_bytes -= b.body.len();
                self.stats.records_dropped += b.id.records();
                self.stats.batches_dropped += 1;
                self.pending
                    .dropped_overflow
                    .insert(b.id.first_seq, b.id.last_seq);
                if let Some(t) = b.carries {
                    self.pending.merge(&t);
                }
            } else if let Some(r) = self.open.pop_front() {
                self.open_bytes -= r.bytes.len() + 1;
                self.stats.records_dropped += 1;
                self.pending.dropped_overflow.insert(r.seq, r.seq);
                if let Some(t) = r.carries {
                    self.pending.merge(&t);
                }
            } else {
                // Only batches in flight: they are not ours to drop.
                break;
            }
        }
    }

    /// True when open records make a batch: `max_records` of them, or the oldest old enough.
    pub fn is_due(&self, now_ns: u64) -> bool {
        self.open.front().is_some_and(|r| {
            self.open.len() >= self.max_records || now_ns.saturating_sub(r.at_ns) >= self.max_age_ns
        })
    }

    /// Seals up to `max_records` open records, oldest first, into a batch at the back of the
    /// sealed queue. False when nothing is open. Never grows what is held when it seals every
    /// open record; when it leaves some open, their envelope is counted again: the caller makes
    /// room.
    fn seal(&mut self) -> bool {
        let n = self.open.len().min(self.max_records);
        if n == 0 {
            return false;
        }
        let taken: Vec<Open> = self.open.drain(..n).collect();
        let raw_len: usize = taken.iter().map(|r| r.bytes.len() + 1).sum();
        self.open_bytes -= raw_len;
        let (Some(first), Some(last)) = (taken.first(), taken.last()) else {
            return false;
        };
        let id = BatchId {
            first_seq: first.seq,
            last_seq: last.seq,
        };
        let mut carries: Option<Box<DeliveryTally>> = None;
        for t in taken.iter().filter_map(|r| r.carries.as_deref()) {
            carries.get_or_insert_default().merge(t);
        }
        let raw = self
            .envelope
            .wrap(taken.iter().map(|r| r.bytes.as_slice()), raw_len);
        drop(taken);
        let enc = compress(raw, self.compression);
        self.sealed_bytes += enc.body.len();
        self.sealed.push_back(Sealed {
            id,
            body: enc.body,
            content_type: self.envelope.protocol().content_type(),
            encoding: enc.encoding,
            in_flight: false,
            attempts: 0,
            carries,
        });
        true
    }

    /// When the outbox may send again (unix ns): the later of its backoff and the collector's
    /// `Retry-After`.
    pub fn resume_at_ns(&self) -> u64 {
        self.backoff_until_ns.max(self.server_pause_until_ns)
    }

    /// Calls allowed in flight now: `max_in_flight`, or one probe while failures go on.
    fn in_flight_limit(&self) -> usize {
        if self.failures > 0 {
            1
        } else {
            self.max_in_flight
        }
    }

    /// The next batch to send, if one may go now: the oldest waiting for a retry, else a new one
    /// if open records are due; nothing while paused or at the in-flight limit. The batch counts
    /// as in flight until [`Outbox::on_dispatch_error`] or [`Outbox::on_response`].
    pub fn next_dispatch(&mut self, now_ns: u64) -> Option<Dispatch<'_>> {
        if now_ns < self.resume_at_ns() || self.in_flight >= self.in_flight_limit() {
            return None;
        }
        // Losses with nothing left to carry their tally (the last batches were refused or
        // dropped): the tally goes out on its own, as a probe when in backoff, rather than wait
        // for the next traffic.
        if self.open.is_empty()
            && self.sealed.is_empty()
            && !self.pending.is_empty()
            && now_ns >= self.tally_refused_until_ns
        {
            self.push_delivery_tally(now_ns);
        }
        let waiting = self.sealed.iter().find(|b| !b.in_flight).map(|b| b.id);
        let id = match waiting {
            Some(id) => id,
            None if self.is_due(now_ns) && self.seal() => self.sealed.back()?.id,
            None => return None,
        };
        let i = self.sealed.iter().position(|b| b.id == id)?;
        self.sealed.get_mut(i)?.in_flight = true;
        self.in_flight += 1;
        // Records left open now carry an envelope of their own: back under the bound (the batch
        // going out is in flight, so never what is dropped).
        self.make_room();
        let b = self.sealed.iter().find(|b| b.id == id)?;
        Some(dispatch(&self.vm_id, b))
    }

    /// Everything held, for a VM that is stopping: any pending delivery tally is buffered, every
    /// open record sealed (whatever its age), and every batch not in flight handed out at once,
    /// regardless of pause and in-flight limit. Report each like any dispatch.
    pub fn flush(&mut self, now_ns: u64) -> Vec<Dispatch<'_>> {
        self.push_delivery_tally(now_ns);
        while self.seal() {}
        let mut marked = Vec::new();
        for (i, b) in self.sealed.iter_mut().enumerate() {
            if !b.in_flight {
                b.in_flight = true;
                marked.push(i);
            }
        }
        self.in_flight += marked.len();
        marked
            .into_iter()
            .filter_map(|i| self.sealed.get(i))
            .map(|b| dispatch(&self.vm_id, b))
            .collect()
    }

    fn in_flight_index(&self, id: BatchId) -> Option<usize> {
        self.sealed.iter().position(|b| b.id == id && b.in_flight)
    }

    /// The host accepted the call for `id`.
    pub fn on_sent(&mut self, id: BatchId) {
        let Some(b) = self
            .in_flight_index(id)
            .and_then(|i| self.sealed.get_mut(i))
        else {
            return;
        };
        if b.attempts > 0 {
            self.stats.batches_retried += 1;
        }
        b.attempts = b.attempts.saturating_add(1);
        self.stats.bytes_dispatched += b.body.len() as u64;
    }

    /// The host refused the call for `id` (no cluster, bad headers, …): a retryable failure.
    pub fn on_dispatch_error(&mut self, id: BatchId, now_ns: u64, rand: u64) -> Option<Settled> {
        let i = self.in_flight_index(id)?;
        Some(self.retry_later(i, None, now_ns, rand))
    }

    /// The collector answered (or the call ended without an answer) for `id`; `rand` draws the
    /// jitter. `None` when `id` is not in flight (an answer for a call this outbox never made,
    /// or reported twice).
    pub fn on_response(
        &mut self,
        id: BatchId,
        outcome: Outcome,
        now_ns: u64,
        rand: u64,
    ) -> Option<Settled> {
        let i = self.in_flight_index(id)?;
        match outcome {
            Outcome::Retry { after_ns, .. } => Some(self.retry_later(i, after_ns, now_ns, rand)),
            Outcome::Delivered => {
                let b = self.remove_in_flight(i)?;
                let bytes = b.body.len() as u64;
                self.stats.records_sent += id.records();
                self.stats.batches_sent += 1;
                self.stats.bytes_sent += bytes;
                self.failures = 0;
                self.backoff_until_ns = 0;
                self.tally_refused_until_ns = 0;
                // The collector is reachable: tell it what was lost.
                self.push_delivery_tally(now_ns);
                Some(Settled::Delivered {
                    records: id.records(),
                    bytes,
                })
            }
            Outcome::Rejected { status } => {
                let b = self.remove_in_flight(i)?;
                self.stats.records_failed += id.records();
                self.stats.batches_failed += 1;
                self.pending.failed.insert(id.first_seq, id.last_seq);
                if let Some(t) = b.carries {
                    self.pending.merge(&t);
                    self.tally_refused_until_ns = now_ns.saturating_add(self.backoff.max_ns());
                }
                Some(Settled::Rejected {
                    records: id.records(),
                    status,
                })
            }
        }
    }

    fn remove_in_flight(&mut self, i: usize) -> Option<Sealed> {
        let b = self.sealed.remove(i)?;
        self.in_flight = self.in_flight.saturating_sub(1);
        self.sealed_bytes -= b.body.len();
        Some(b)
    }

    fn retry_later(&mut self, i: usize, after_ns: Option<u64>, now_ns: u64, rand: u64) -> Settled {
        let mut records = 0;
        if let Some(b) = self.sealed.get_mut(i) {
            b.in_flight = false;
            records = b.id.records();
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        self.stats.retryable_failures += 1;
        self.failures = self.failures.saturating_add(1);
        let delay_ns = self.backoff.delay_ns(self.failures, after_ns, rand);
        let until = now_ns.saturating_add(delay_ns);
        if after_ns.is_some() {
            self.server_pause_until_ns = self.server_pause_until_ns.max(until);
        } else {
            self.backoff_until_ns = self.backoff_until_ns.max(until);
        }
        Settled::Retry {
            records,
            delay_ns,
            failures: self.failures,
        }
    }

    /// Counters since creation.
    pub fn stats(&self) -> OutboxStats {
        self.stats
    }

    /// Bytes held against `max_buffer_bytes`: open records (+1 each, + the envelope) and sealed
    /// bodies.
    pub fn held_bytes(&self) -> usize {
        let envelope = if self.open.is_empty() {
            0
        } else {
            self.envelope.overhead()
        };
        self.open_bytes + envelope + self.sealed_bytes
    }

    /// Records held: open and in sealed batches (waiting or in flight).
    pub fn held_records(&self) -> u64 {
        self.open.len() as u64 + self.sealed.iter().map(|b| b.id.records()).sum::<u64>()
    }

    /// Batches handed out and not yet settled.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Sealed batches waiting to be sent again (or, after a reconfiguration, for the first time).
    pub fn waiting_batches(&self) -> usize {
        self.sealed.len().saturating_sub(self.in_flight)
    }

    /// Records not yet in a batch.
    pub fn open_records(&self) -> usize {
        self.open.len()
    }

    /// True when nothing is held and nothing is owed to the collector (no pending tally).
    pub fn is_idle(&self) -> bool {
        self.open.is_empty() && self.sealed.is_empty() && self.pending.is_empty()
    }

    /// The sequence number the next record will get (= records numbered so far).
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// What was lost and not yet reported in a tally record.
    pub fn pending_tally(&self) -> &DeliveryTally {
        &self.pending
    }

    /// The VM id in every batch id.
    pub fn vm_id(&self) -> &str {
        &self.vm_id
    }
}

fn dispatch<'a>(vm_id: &str, b: &'a Sealed) -> Dispatch<'a> {
    let mut headers = Vec::with_capacity(3);
    headers.push(("content-type", b.content_type.to_owned()));
    if let Some(e) = b.encoding {
        headers.push(("content-encoding", e.to_owned()));
    }
    headers.push((BATCH_ID_HEADER, b.id.header_value(vm_id)));
    Dispatch {
        id: b.id,
        body: &b.body,
        headers,
        previous_attempts: b.attempts,
    }
}

#[cfg(test)]
mod tests;
