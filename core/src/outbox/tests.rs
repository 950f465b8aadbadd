//! Unit tests of the outbox: batching, the byte bound, retries and delivery accounting.

use super::*;
use flate2::read::GzDecoder;
use serde_json::Value;
use std::io::Read;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * S;
const VM: &str = "00112233445566aa";

fn cfg(max_records: usize, max_buffer_bytes: usize, max_in_flight: usize) -> BatchConfig {
    BatchConfig {
        max_records,
        max_age_ms: 1000,
        max_buffer_bytes,
        max_in_flight,
        retry_initial_ms: 200,
        retry_max_ms: 30_000,
    }
}

fn outbox(max_records: usize, max_buffer_bytes: usize, max_in_flight: usize) -> Outbox {
    Outbox::new(
        &cfg(max_records, max_buffer_bytes, max_in_flight),
        Compression::default(),
        Envelope::new([("service.name", "t")]),
        VM,
    )
}

fn rec(i: u64) -> AccessRecord<'static> {
    AccessRecord {
        start_time_ns: T0 + i,
        path: Some(format!("/r/{i}").into()),
        ..AccessRecord::default()
    }
}

fn push_n(o: &mut Outbox, n: u64, now: u64) {
    for i in 0..n {
        o.push(&mut rec(i), now);
    }
}

fn header<'a>(d: &'a Dispatch<'_>, name: &str) -> Option<&'a str> {
    d.headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

/// The log records of a body, gunzipped when it says so.
fn records(d: &Dispatch<'_>) -> Vec<Value> {
    let json = if header(d, "content-encoding") == Some("gzip") {
        let mut out = Vec::new();
        GzDecoder::new(d.body).read_to_end(&mut out).unwrap();
        out
    } else {
        d.body.to_vec()
    };
    let v: Value = serde_json::from_slice(&json).unwrap();
    v["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
        .as_array()
        .unwrap()
        .clone()
}

fn attr<'a>(r: &'a Value, key: &str) -> Option<&'a Value> {
    r["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

fn seq(r: &Value) -> u64 {
    attr(r, "meshlog.sequence").unwrap()["intValue"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn ok() -> Outcome {
    Outcome::Delivered
}

fn unavailable() -> Outcome {
    Outcome::classify(Some(503), None, 0)
}

fn check_accounting(o: &Outbox) {
    let s = o.stats();
    assert_eq!(
        s.records_buffered,
        s.records_sent + s.records_dropped + s.records_failed + o.held_records(),
        "{s:?}"
    );
    assert_eq!(s.records_buffered, o.next_sequence());
}

#[test]
fn a_batch_carries_its_id_and_gzip_body() {
    let mut o = outbox(3, 1 << 20, 4);
    push_n(&mut o, 2, T0);
    assert!(o.next_dispatch(T0).is_none(), "not due: 2 of 3, young");
    o.push(&mut rec(2), T0);
    let d = o.next_dispatch(T0).unwrap();
    assert_eq!(
        d.id,
        BatchId {
            first_seq: 0,
            last_seq: 2
        }
    );
    assert_eq!(d.previous_attempts, 0);
    assert_eq!(header(&d, "meshlog-batch-id"), Some("00112233445566aa:0-2"));
    assert_eq!(header(&d, "content-type"), Some("application/json"));
    assert_eq!(header(&d, "content-encoding"), Some("gzip"));
    let rs = records(&d);
    assert_eq!(rs.iter().map(seq).collect::<Vec<_>>(), [0, 1, 2]);
    let id = d.id;
    o.on_sent(id);
    assert_eq!(o.in_flight(), 1);
    assert_eq!(
        o.on_response(id, ok(), T0, 0),
        Some(Settled::Delivered {
            records: 3,
            bytes: o.stats().bytes_sent
        })
    );
    assert_eq!(o.on_response(id, ok(), T0, 0), None, "settled once");
    let s = o.stats();
    assert_eq!((s.records_sent, s.batches_sent), (3, 1));
    assert_eq!(s.bytes_sent, s.bytes_dispatched);
    assert!(o.is_idle());
    check_accounting(&o);
}

#[test]
fn ships_on_age_and_without_compression_when_configured() {
    let mut o = Outbox::new(
        &cfg(100, 1 << 20, 4),
        Compression::None,
        Envelope::new([]),
        VM,
    );
    o.push(&mut rec(0), T0);
    assert!(o.next_dispatch(T0 + 999 * MS).is_none());
    let d = o.next_dispatch(T0 + 1000 * MS).unwrap();
    assert_eq!(header(&d, "content-encoding"), None);
    assert_eq!(records(&d).len(), 1);
    assert!(d.body.starts_with(b"{\"resourceLogs\""));
}

#[test]
fn a_retry_resends_the_same_bytes_under_the_same_id() {
    let mut o = outbox(2, 1 << 20, 4);
    push_n(&mut o, 2, T0);
    let d = o.next_dispatch(T0).unwrap();
    let (id, body, headers) = (d.id, d.body.to_vec(), d.headers.clone());
    o.on_sent(id);
    let Some(Settled::Retry {
        records: 2,
        delay_ns,
        failures: 1,
    }) = o.on_response(id, unavailable(), T0, u64::MAX)
    else {
        panic!("retry expected")
    };
    assert_eq!(
        delay_ns,
        200 * MS,
        "rand MAX draws the top of the first bound"
    );
    assert_eq!(o.resume_at_ns(), T0 + 200 * MS);
    // Records pushed meanwhile do not change the sealed batch.
    push_n(&mut o, 3, T0 + MS);
    assert!(o.next_dispatch(T0 + 199 * MS).is_none(), "paused");
    let d = o.next_dispatch(T0 + 200 * MS).unwrap();
    assert_eq!((d.id, d.body, &d.headers), (id, body.as_slice(), &headers));
    assert_eq!(d.previous_attempts, 1);
    o.on_sent(id);
    assert!(
        o.next_dispatch(T0 + 200 * MS).is_none(),
        "one probe at a time while failing"
    );
    o.on_response(id, ok(), T0 + 300 * MS, 0).unwrap();
    let s = o.stats();
    assert_eq!(s.batches_retried, 1);
    assert_eq!(s.retryable_failures, 1);
    assert_eq!(s.bytes_dispatched, 2 * body.len() as u64);
    assert_eq!(s.bytes_sent, body.len() as u64);
    // Recovered: full concurrency for what queued meanwhile (3 open records, max 2 per batch).
    let a = o.next_dispatch(T0 + 300 * MS).unwrap().id;
    let b = o.next_dispatch(T0 + 1300 * MS).unwrap().id;
    assert_eq!(
        (a.first_seq, a.last_seq, b.first_seq, b.last_seq),
        (2, 3, 4, 4)
    );
    assert_eq!(o.in_flight(), 2);
    check_accounting(&o);
}

#[test]
fn backoff_grows_with_consecutive_failures_and_a_delivery_resets_it() {
    let mut o = outbox(1, 1 << 20, 4);
    push_n(&mut o, 1, T0);
    let mut now = T0;
    let mut delays = Vec::new();
    for _ in 0..10 {
        let id = o.next_dispatch(now).unwrap().id;
        o.on_sent(id);
        let Some(Settled::Retry { delay_ns, .. }) = o.on_response(id, unavailable(), now, u64::MAX)
        else {
            panic!()
        };
        delays.push(delay_ns / MS);
        now = o.resume_at_ns();
    }
    assert_eq!(
        delays,
        [
            200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000
        ]
    );
    let id = o.next_dispatch(now).unwrap().id;
    o.on_response(id, ok(), now, 0).unwrap();
    push_n(&mut o, 1, now);
    let id = o.next_dispatch(now).unwrap().id;
    let Some(Settled::Retry {
        delay_ns,
        failures: 1,
        ..
    }) = o.on_response(id, unavailable(), now, u64::MAX)
    else {
        panic!()
    };
    assert_eq!(delay_ns, 200 * MS, "back to the first bound");
}

#[test]
fn retry_after_takes_precedence_is_capped_and_outlives_a_delivery() {
    let mut o = outbox(1, 1 << 20, 4);
    push_n(&mut o, 3, T0);
    let a = o.next_dispatch(T0).unwrap().id;
    let b = o.next_dispatch(T0).unwrap().id;
    let c = o.next_dispatch(T0).unwrap().id;
    // 429 with a date 10 s ahead.
    let date = b"Tue, 14 Nov 2023 22:13:30 GMT"; // T0 + 10 s
    let outcome = Outcome::classify(Some(429), Some(date), T0);
    assert_eq!(
        outcome,
        Outcome::Retry {
            status: Some(429),
            after_ns: Some(10 * S)
        }
    );
    let r = o.on_response(a, outcome, T0, 0).unwrap();
    assert!(
        matches!(r, Settled::Retry { delay_ns, .. } if delay_ns == 10 * S),
        "{r:?}: the server's pause, not the (zero) jitter"
    );
    // An hour is capped at retry_max_ms.
    let r = o
        .on_response(b, Outcome::classify(Some(503), Some(b"3600"), T0), T0, 0)
        .unwrap();
    assert!(matches!(r, Settled::Retry { delay_ns, .. } if delay_ns == 30 * S));
    assert_eq!(o.resume_at_ns(), T0 + 30 * S);
    // Another batch getting through does not end the server's pause.
    o.on_response(c, ok(), T0 + S, 0).unwrap();
    assert!(o.next_dispatch(T0 + 29 * S).is_none());
    assert_eq!(o.next_dispatch(T0 + 30 * S).unwrap().id, a, "oldest first");
}

#[test]
fn dispatch_errors_are_retried_with_backoff() {
    let mut o = outbox(1, 1 << 20, 4);
    push_n(&mut o, 1, T0);
    let id = o.next_dispatch(T0).unwrap().id;
    let r = o.on_dispatch_error(id, T0, u64::MAX).unwrap();
    assert_eq!(
        r,
        Settled::Retry {
            records: 1,
            delay_ns: 200 * MS,
            failures: 1
        }
    );
    assert_eq!(o.in_flight(), 0);
    assert!(o.next_dispatch(T0 + 100 * MS).is_none());
    let d = o.next_dispatch(T0 + 200 * MS).unwrap();
    assert_eq!(
        d.previous_attempts, 0,
        "the host never took it: not a retry on the wire"
    );
    o.on_sent(id);
    assert_eq!(o.stats().batches_retried, 0);
    assert_eq!(o.stats().retryable_failures, 1);
}

#[test]
fn rejected_batches_are_failed_not_retried_and_reported_after_the_next_delivery() {
    let mut o = outbox(2, 1 << 20, 4);
    push_n(&mut o, 4, T0);
    let a = o.next_dispatch(T0).unwrap().id;
    let b = o.next_dispatch(T0).unwrap().id;
    let r = o.on_response(a, Outcome::classify(Some(413), None, T0), T0, 0);
    assert_eq!(
        r,
        Some(Settled::Rejected {
            records: 2,
            status: 413
        })
    );
    assert_eq!(o.pending_tally().failed.ranges(), [(0, 1)]);
    assert!(
        o.next_dispatch(T0).is_none(),
        "not retried, and nothing new is due"
    );
    o.on_response(b, ok(), T0, 0).unwrap();
    // The tally went into the buffer with the next sequence number.
    assert!(o.pending_tally().is_empty());
    assert_eq!(o.stats().delivery_tallies, 1);
    let d = o.next_dispatch(T0 + S).unwrap();
    let rs = records(&d);
    assert_eq!(rs.len(), 1);
    let t = &rs[0];
    assert_eq!(t["eventName"], DELIVERY_TALLY_EVENT_NAME);
    assert_eq!(t["severityText"], "WARN");
    assert_eq!(seq(t), 4);
    assert_eq!(attr(t, ATTR_FAILED).unwrap()["intValue"], "2");
    assert_eq!(
        attr(t, ATTR_FAILED_SEQUENCES).unwrap()["stringValue"],
        "0-1"
    );
    assert_eq!(attr(t, ATTR_DROPPED_OVERFLOW).unwrap()["intValue"], "0");
    assert!(attr(t, ATTR_DROPPED_OVERFLOW_SEQUENCES).is_none());
    let s = o.stats();
    assert_eq!((s.records_failed, s.batches_failed), (2, 1));
    check_accounting(&o);
}

#[test]
fn the_bound_covers_sealed_batches_and_drops_waiting_ones_whole_first() {
    // Uncompressed, so sizes are easy to reason about.
    let mut o = Outbox::new(&cfg(10, 8_000, 4), Compression::None, Envelope::new([]), VM);
    push_n(&mut o, 10, T0);
    let a = o.next_dispatch(T0).unwrap().id; // 0-9, in flight
    push_n(&mut o, 10, T0);
    let b = o.next_dispatch(T0).unwrap().id; // 10-19
    o.on_response(b, unavailable(), T0, 0).unwrap(); // waiting for a retry
    assert_eq!(o.held_records(), 20);
    // Push until something must go: the waiting batch goes whole, the in-flight one stays.
    let mut n = 0;
    while o.stats().records_dropped == 0 {
        o.push(&mut rec(100 + n), T0);
        n += 1;
        assert!(n < 1000);
    }
    assert!(o.held_bytes() <= 8_000);
    let s = o.stats();
    assert_eq!((s.records_dropped, s.batches_dropped), (10, 1));
    assert_eq!(o.pending_tally().dropped_overflow.ranges(), [(10, 19)]);
    // Keep pushing: now the oldest open records go, one by one; `a` is never touched.
    for i in 0..200 {
        o.push(&mut rec(1000 + i), T0);
        assert!(o.held_bytes() <= 8_000);
    }
    let dropped = o.pending_tally().dropped_overflow.clone();
    assert_eq!(dropped.ranges().len(), 1, "{:?}", dropped.ranges());
    assert_eq!(dropped.ranges()[0].0, 10);
    assert_eq!(dropped.count(), o.stats().records_dropped);
    check_accounting(&o);
    // `a` delivered: the collector is reachable, the drops are reported.
    o.on_response(a, ok(), T0, 0).unwrap();
    assert!(o.pending_tally().is_empty());
    let mut tallies = Vec::new();
    for d in o.flush(T0) {
        for r in records(&d) {
            if r["eventName"] == DELIVERY_TALLY_EVENT_NAME {
                tallies.push(r);
            }
        }
    }
    assert_eq!(tallies.len(), 1);
    let t = &tallies[0];
    assert_eq!(
        attr(t, ATTR_DROPPED_OVERFLOW).unwrap()["intValue"],
        dropped.count().to_string()
    );
    assert_eq!(
        attr(t, ATTR_DROPPED_OVERFLOW_SEQUENCES).unwrap()["stringValue"],
        dropped.to_text()
    );
}

#[test]
fn in_flight_batches_alone_over_the_bound_drop_the_newest() {
    let mut o = Outbox::new(
        &cfg(100, 4_000, 4),
        Compression::None,
        Envelope::new([]),
        VM,
    );
    let mut n = 0;
    while o.stats().records_dropped == 0 {
        o.push(&mut rec(n), T0);
        n += 1;
    }
    // Everything held goes in flight in one batch.
    let d = o.flush(T0);
    assert_eq!(d.len(), 1);
    let id = d[0].id;
    let before = o.stats().records_dropped;
    let mut r = rec(9999);
    o.push(&mut r, T0);
    let last = r.sequence.unwrap();
    // The batch holds about the whole bound: no room for one more, and it is not droppable.
    assert_eq!(o.stats().records_dropped, before + 1);
    assert_eq!(o.held_records(), id.records());
    assert!(
        o.pending_tally()
            .dropped_overflow
            .ranges()
            .contains(&(last, last))
    );
    check_accounting(&o);
}

#[test]
fn a_lost_delivery_tally_returns_its_counts() {
    let mut o = Outbox::new(
        &cfg(1, 1 << 20, 4),
        Compression::None,
        Envelope::new([]),
        VM,
    );
    push_n(&mut o, 2, T0);
    let a = o.next_dispatch(T0).unwrap().id; // 0
    let b = o.next_dispatch(T0).unwrap().id; // 1
    o.on_response(a, Outcome::classify(Some(400), None, T0), T0, 0);
    o.on_response(b, ok(), T0, 0); // tally record 2: failed 0-0
    let t = o.next_dispatch(T0).unwrap().id;
    assert_eq!(t.first_seq, 2);
    // The tally's own batch is rejected: its counts come back, plus itself.
    o.on_response(t, Outcome::classify(Some(400), None, T0), T0, 0);
    assert_eq!(o.pending_tally().failed.ranges(), [(0, 0), (2, 2)]);
    assert_eq!(o.pending_tally().failed.count(), 2);
    push_n(&mut o, 1, T0);
    let c = o.next_dispatch(T0).unwrap().id; // 3
    o.on_response(c, ok(), T0, 0); // tally record 4
    let d = o.next_dispatch(T0).unwrap();
    let r = &records(&d)[0];
    assert_eq!(seq(r), 4);
    assert_eq!(
        attr(r, ATTR_FAILED_SEQUENCES).unwrap()["stringValue"],
        "0-0,2-2"
    );
    check_accounting(&o);
}

#[test]
fn flush_hands_out_everything_at_once() {
    let mut o = outbox(2, 1 << 20, 1);
    push_n(&mut o, 2, T0);
    let a = o.next_dispatch(T0).unwrap().id;
    o.on_response(a, unavailable(), T0, u64::MAX).unwrap(); // paused 200 ms
    push_n(&mut o, 3, T0);
    assert!(o.next_dispatch(T0).is_none());
    let ds = o.flush(T0);
    let ids: Vec<String> = ds.iter().map(|d| d.id.to_string()).collect();
    assert_eq!(ids, ["0-1", "2-3", "4-4"], "paused, limit 1: all the same");
    assert!(o.flush(T0).is_empty(), "nothing twice");
    assert_eq!(o.in_flight(), 3);
    for id in [
        a,
        BatchId {
            first_seq: 2,
            last_seq: 3,
        },
    ] {
        o.on_response(id, ok(), T0, 0).unwrap();
    }
    o.on_dispatch_error(
        BatchId {
            first_seq: 4,
            last_seq: 4,
        },
        T0,
        0,
    );
    assert_eq!(o.held_records(), 1);
    check_accounting(&o);
}

#[test]
fn reconfigure_keeps_numbering_and_seals_under_the_old_envelope() {
    let mut o = outbox(100, 1 << 20, 4);
    push_n(&mut o, 3, T0);
    o.reconfigure(
        &cfg(1, 1 << 20, 4),
        Compression::None,
        Envelope::new([("service.name", "new")]),
    );
    o.push(&mut rec(3), T0);
    let d = o.next_dispatch(T0).unwrap();
    assert_eq!(d.id.to_string(), "0-2");
    assert_eq!(
        header(&d, "content-encoding"),
        Some("gzip"),
        "old compression"
    );
    let d = o.next_dispatch(T0).unwrap();
    assert_eq!(d.id.to_string(), "3-3");
    assert_eq!(header(&d, "content-encoding"), None);
    let v: Value = serde_json::from_slice(d.body).unwrap();
    assert_eq!(
        v["resourceLogs"][0]["resource"]["attributes"][0]["value"]["stringValue"],
        "new"
    );
}

#[test]
fn tallies_share_the_sequence() {
    let mut o = outbox(10, 1 << 20, 4);
    o.push(&mut rec(0), T0);
    let mut t = Tally::new("0123456789abcdef", T0);
    t = t.take(T0 + 5);
    o.push_tally(&t, T0 + 5);
    o.push(&mut rec(1), T0 + 6);
    let d = o.flush(T0 + 7);
    let rs = records(&d[0]);
    let names: Vec<&str> = rs
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
    assert_eq!(rs.iter().map(seq).collect::<Vec<_>>(), [0, 1, 2]);
}

#[test]
fn unknown_ids_are_ignored() {
    let mut o = outbox(1, 1 << 20, 4);
    let id = BatchId {
        first_seq: 7,
        last_seq: 9,
    };
    assert_eq!(o.on_response(id, ok(), T0, 0), None);
    assert_eq!(o.on_dispatch_error(id, T0, 0), None);
    o.on_sent(id);
    assert_eq!(o.stats(), OutboxStats::default());
}
