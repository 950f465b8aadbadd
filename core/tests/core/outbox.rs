//! The outbox against a simulated lossy collector: random pushes, ticks, host refusals, answers
//! (2xx, 429/503 with and without Retry-After, 5xx, 4xx, no answer, and an answer lost after the
//! batch was stored), reconfigurations and shutdown flushes, driven by a seeded RNG. Then the
//! collector heals and everything drains, and the accounting must be exact:
//!
//! - every sequence number the VM produced is in a stored batch, or named as dropped or failed
//!   by a stored `meshlog.delivery.tally`, and counts match the ranges;
//! - no sequence number is stored under two batch ids, and a batch id stored twice (a retry)
//!   carries identical bytes;
//! - a number is both stored and reported dropped only when the answer to its batch was lost;
//!   without lost answers, stored + dropped + failed = produced, exactly;
//! - the outbox's own counters agree: buffered = sent + dropped + failed;
//! - the byte bound holds whenever anything droppable is held.

use crate::util::SplitMix;
use flate2::read::GzDecoder;
use meshlog_core::AccessRecord;
use meshlog_core::compress::Compression;
use meshlog_core::config::BatchConfig;
use meshlog_core::otlp::Envelope;
use meshlog_core::outbox::{
    ATTR_DROPPED_OVERFLOW, ATTR_DROPPED_OVERFLOW_SEQUENCES, ATTR_DROPPED_OVERFLOW_TOTAL,
    ATTR_FAILED, ATTR_FAILED_SEQUENCES, ATTR_FAILED_TOTAL, ATTR_SEQUENCES_APPROXIMATE, BatchId,
    DELIVERY_TALLY_EVENT_NAME, Dispatch, Outbox, OutboxStats, parse_ranges,
};
use meshlog_core::retry::Outcome;
use meshlog_core::sample::Tally;
use proptest::prelude::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * S;
const VM: &str = "0123456789abcdef";

/// The simulation's generator.
type Rng = SplitMix;

/// A call the host accepted: what it sent, kept until it is answered.
struct Call {
    id: BatchId,
    header: String,
    encoding: Option<String>,
    body: Vec<u8>,
}

impl Call {
    fn of(d: &Dispatch<'_>) -> Call {
        let h = |name: &str| {
            d.headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        };
        Call {
            id: d.id,
            header: h("meshlog-batch-id").unwrap(),
            encoding: h("content-encoding"),
            body: d.body.to_vec(),
        }
    }
}

/// The collector: stores batches once per id, reads delivery tallies.
#[derive(Default)]
struct Collector {
    /// Batch id header -> body as received.
    batches: BTreeMap<String, Vec<u8>>,
    /// Sequence -> the batch id that stored it.
    stored: BTreeMap<u64, String>,
    dropped: BTreeSet<u64>,
    failed: BTreeSet<u64>,
    /// Sums of the per-record counts: exact unless a tally was repeated.
    dropped_counted: u64,
    failed_counted: u64,
    /// The largest running totals: always exact.
    dropped_total: u64,
    failed_total: u64,
    /// Set when answers may be lost: a tally may then be repeated.
    repeats_allowed: bool,
    /// Batch ids whose answer was lost after they were stored.
    lost_answers: BTreeSet<String>,
}

impl Collector {
    fn has(&self, c: &Call) -> bool {
        self.batches.contains_key(&c.header)
    }

    fn store(&mut self, c: &Call) {
        assert_eq!(
            c.header,
            format!("{VM}:{}-{}", c.id.first_seq, c.id.last_seq)
        );
        if let Some(prev) = self.batches.get(&c.header) {
            assert_eq!(prev, &c.body, "a retry of {} changed its bytes", c.header);
            return;
        }
        self.batches.insert(c.header.clone(), c.body.clone());
        let json = match c.encoding.as_deref() {
            Some("gzip") => {
                let mut out = Vec::new();
                GzDecoder::new(c.body.as_slice())
                    .read_to_end(&mut out)
                    .unwrap();
                out
            }
            None => c.body.clone(),
            Some(other) => panic!("unexpected encoding {other}"),
        };
        let v: Value = serde_json::from_slice(&json).unwrap();
        let records = v["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
            .as_array()
            .unwrap();
        let seqs: Vec<u64> = records.iter().map(|r| int(r, "meshlog.sequence")).collect();
        assert_eq!(
            seqs,
            (c.id.first_seq..=c.id.last_seq).collect::<Vec<_>>(),
            "a batch holds exactly its id's range"
        );
        for r in records {
            let seq = int(r, "meshlog.sequence");
            if let Some(other) = self.stored.insert(seq, c.header.clone()) {
                panic!("sequence {seq} stored by {other} and again by {}", c.header);
            }
            if r["eventName"] == DELIVERY_TALLY_EVENT_NAME {
                assert!(attr(r, ATTR_SEQUENCES_APPROXIMATE).is_none());
                self.dropped_counted += int(r, ATTR_DROPPED_OVERFLOW);
                self.failed_counted += int(r, ATTR_FAILED);
                self.dropped_total = self.dropped_total.max(int(r, ATTR_DROPPED_OVERFLOW_TOTAL));
                self.failed_total = self.failed_total.max(int(r, ATTR_FAILED_TOTAL));
                for (key, set) in [
                    (ATTR_DROPPED_OVERFLOW_SEQUENCES, &mut self.dropped),
                    (ATTR_FAILED_SEQUENCES, &mut self.failed),
                ] {
                    let Some(v) = attr(r, key) else { continue };
                    for (a, b) in parse_ranges(v["stringValue"].as_str().unwrap()).unwrap() {
                        for s in a..=b {
                            let new = set.insert(s);
                            assert!(
                                new || self.repeats_allowed,
                                "{s} reported twice under {key}"
                            );
                        }
                    }
                }
            }
        }
    }
}

fn attr<'a>(r: &'a Value, key: &str) -> Option<&'a Value> {
    r["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

fn int(r: &Value, key: &str) -> u64 {
    attr(r, key).unwrap()["intValue"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[derive(Debug, Clone)]
struct Params {
    seed: u64,
    steps: usize,
    max_records: usize,
    max_buffer_bytes: usize,
    max_in_flight: usize,
    gzip: bool,
    lost_answers: bool,
}

fn batch_cfg(p: &Params, rng: &mut Rng) -> BatchConfig {
    BatchConfig {
        max_records: p.max_records,
        max_age_ms: 50 + rng.below(500),
        max_buffer_bytes: p.max_buffer_bytes,
        max_in_flight: p.max_in_flight,
        retry_initial_ms: 10 + rng.below(200),
        retry_max_ms: 2_000,
    }
}

fn compression(p: &Params) -> Compression {
    if p.gzip {
        Compression::default()
    } else {
        Compression::None
    }
}

/// Hands every batch that may go now to the "host", which sometimes refuses.
fn tick(o: &mut Outbox, rng: &mut Rng, now: u64, calls: &mut Vec<Call>) {
    while let Some(d) = o.next_dispatch(now) {
        let call = Call::of(&d);
        if rng.chance(5) {
            o.on_dispatch_error(call.id, now, rng.next()).unwrap();
            // The outbox is paused now or the refusal repeats: stop for this tick.
            break;
        }
        o.on_sent(call.id);
        calls.push(call);
    }
}

fn answer(o: &mut Outbox, c: &Call, outcome: Outcome, now: u64, rng: &mut Rng) {
    o.on_response(c.id, outcome, now, rng.next())
        .unwrap_or_else(|| panic!("{} was in flight", c.header));
}

fn check_bound(o: &Outbox, max: usize) {
    if o.open_records() > 0 || o.waiting_batches() > 0 {
        assert!(
            o.held_bytes() <= max,
            "held {} > {max} with something droppable",
            o.held_bytes()
        );
    }
}

fn simulate(p: &Params) -> OutboxStats {
    let mut rng = SplitMix(p.seed);
    let mut o = Outbox::new(
        &batch_cfg(p, &mut rng),
        compression(p),
        Envelope::new([("service.name", "sim")]),
        VM,
    );
    let mut col = Collector {
        repeats_allowed: p.lost_answers,
        ..Collector::default()
    };
    let mut calls: Vec<Call> = Vec::new();
    let mut now = T0;
    let mut produced = 0u64;

    for _ in 0..p.steps {
        now += rng.below(200) * MS;
        match rng.below(100) {
            0..=39 => {
                for _ in 0..rng.below(6) {
                    let mut r = AccessRecord {
                        start_time_ns: now,
                        path: Some(
                            format!("/r/{produced}/{}", "x".repeat(rng.below(300) as usize)).into(),
                        ),
                        ..AccessRecord::default()
                    };
                    let next = o.next_sequence();
                    o.push(&mut r, now);
                    assert_eq!(r.sequence, Some(next));
                    produced += 1;
                }
            }
            40..=41 => {
                let mut t = Tally::new("0123456789abcdef", now);
                o.push_tally(&t.take(now), now);
            }
            42 => o.reconfigure(
                &batch_cfg(p, &mut rng),
                compression(p),
                Envelope::new([("service.name", "sim2")]),
            ),
            43..=64 => tick(&mut o, &mut rng, now, &mut calls),
            _ => {
                if calls.is_empty() {
                    continue;
                }
                let c = calls.swap_remove(rng.below(calls.len() as u64) as usize);
                let stored = col.has(&c);
                let roll = rng.below(100);
                let outcome = match roll {
                    0..=44 => {
                        col.store(&c);
                        Outcome::Delivered
                    }
                    45..=54 => Outcome::classify(Some(503), None, now),
                    55..=59 => Outcome::classify(
                        Some(429),
                        Some(format!("{}", rng.below(3)).as_bytes()),
                        now,
                    ),
                    60..=62 => {
                        Outcome::classify(Some(503), Some(b"Thu, 01 Jan 1970 00:00:00 GMT"), now)
                    }
                    63..=64 => {
                        Outcome::classify(Some(503), Some(b"Fri, 31 Dec 9999 23:59:59 GMT"), now)
                    }
                    65..=69 => Outcome::classify(Some(500), None, now),
                    70..=79 => Outcome::classify(None, None, now),
                    80..=87 if p.lost_answers => {
                        // Stored, but the answer never arrived.
                        col.store(&c);
                        col.lost_answers.insert(c.header.clone());
                        Outcome::classify(None, None, now)
                    }
                    // A collector that stored a batch does not reject the same bytes later.
                    88..=99 if !stored => {
                        Outcome::classify(Some(if roll < 94 { 400 } else { 413 }), None, now)
                    }
                    _ => Outcome::classify(Some(504), None, now),
                };
                answer(&mut o, &c, outcome, now, &mut rng);
            }
        }
        check_bound(&o, p.max_buffer_bytes);
        let s = o.stats();
        assert_eq!(
            s.records_buffered,
            s.records_sent + s.records_dropped + s.records_failed + o.held_records()
        );
    }

    // The collector heals. Sometimes the VM stops (flush), always everything drains.
    if rng.chance(50) {
        for d in o.flush(now) {
            let c = Call::of(&d);
            calls.push(c);
        }
        for c in &calls {
            o.on_sent(c.id);
        }
    }
    let mut rounds = 0;
    while !(o.is_idle() && calls.is_empty()) {
        rounds += 1;
        assert!(
            rounds < 10_000,
            "does not drain: {o:?} calls {}",
            calls.len()
        );
        now += 3 * S;
        for c in std::mem::take(&mut calls) {
            col.store(&c);
            answer(&mut o, &c, Outcome::Delivered, now, &mut rng);
        }
        while let Some(d) = o.next_dispatch(now) {
            let c = Call::of(&d);
            o.on_sent(c.id);
            calls.push(c);
        }
    }

    // The accounting.
    let n = o.next_sequence();
    let s = o.stats();
    assert_eq!(s.records_buffered, n);
    assert_eq!(o.held_records(), 0);
    assert_eq!(
        s.records_sent + s.records_dropped + s.records_failed,
        n,
        "{s:?}"
    );
    assert_eq!(col.dropped_total, s.records_dropped);
    assert_eq!(col.dropped.len() as u64, s.records_dropped);
    assert_eq!(col.failed_total, s.records_failed);
    assert_eq!(col.failed.len() as u64, s.records_failed);
    assert!(col.dropped.is_disjoint(&col.failed));
    let stored: BTreeSet<u64> = col.stored.keys().copied().collect();
    assert!(stored.is_disjoint(&col.failed));
    let all: BTreeSet<u64> = (0..n).collect();
    let covered: BTreeSet<u64> = stored
        .iter()
        .chain(&col.dropped)
        .chain(&col.failed)
        .copied()
        .collect();
    assert_eq!(covered, all, "every sequence stored or explained");
    let both: Vec<u64> = stored.intersection(&col.dropped).copied().collect();
    for seq in &both {
        assert!(
            col.lost_answers.contains(&col.stored[seq]),
            "{seq} stored and reported dropped, yet its answer was not lost"
        );
    }
    assert_eq!(stored.len() as u64, s.records_sent + both.len() as u64);
    if !p.lost_answers {
        assert!(both.is_empty());
        assert_eq!(col.dropped_counted, s.records_dropped);
        assert_eq!(col.failed_counted, s.records_failed);
        assert_eq!(
            stored.len() as u64 + col.dropped_counted + col.failed_counted,
            n,
            "stored + dropped + failed = produced"
        );
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn lossy_collector_exact_accounting(
        seed in any::<u64>(),
        steps in 50usize..400,
        max_records in 1usize..20,
        max_buffer_bytes in prop_oneof![Just(6_000usize), Just(12_000), Just(40_000), Just(1 << 20)],
        max_in_flight in 1usize..5,
        gzip in any::<bool>(),
        lost_answers in any::<bool>(),
    ) {
        simulate(&Params { seed, steps, max_records, max_buffer_bytes, max_in_flight, gzip, lost_answers });
    }
}

/// The runs above must actually exercise drops, failures, retries and tallies.
#[test]
fn the_simulation_reaches_every_case() {
    let mut total = OutboxStats::default();
    for seed in 0..24 {
        let p = Params {
            seed,
            steps: 300,
            max_records: 1 + (seed as usize % 10),
            max_buffer_bytes: 6_000,
            max_in_flight: 1 + (seed as usize % 4),
            gzip: seed % 2 == 0,
            lost_answers: seed % 3 == 0,
        };
        let s = simulate(&p);
        total.records_dropped += s.records_dropped;
        total.batches_dropped += s.batches_dropped;
        total.records_failed += s.records_failed;
        total.batches_retried += s.batches_retried;
        total.delivery_tallies += s.delivery_tallies;
        total.records_sent += s.records_sent;
    }
    assert!(total.records_dropped > 0, "{total:?}");
    assert!(total.batches_dropped > 0, "{total:?}");
    assert!(total.records_failed > 0, "{total:?}");
    assert!(total.batches_retried > 0, "{total:?}");
    assert!(total.delivery_tallies > 0, "{total:?}");
    assert!(total.records_sent > 0, "{total:?}");
}
