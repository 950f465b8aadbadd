//! `GET /api/v1/tail` against the real binary: many concurrent tails, the lag event for a
//! reader that cannot keep up, `Last-Event-ID` across a collector killed and restarted under
//! load, tenant scope, and refusals on the audit log.

use super::{Proc, query_lines};
use meshlog_server::ingest::BATCH_ID_HEADER;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// OTLP/JSON: one record per id, each with attribute `n` = its id (and `pad` bytes of padding).
fn batch(service: &str, ids: std::ops::Range<u64>, pad: usize) -> Vec<u8> {
    let records: Vec<Value> = ids
        .map(|i| {
            json!({"timeUnixNano": "1764000000000000000", "attributes": [
                {"key": "n", "value": {"intValue": i.to_string()}},
                {"key": "pad", "value": {"stringValue": "x".repeat(pad)}},
            ]})
        })
        .collect();
    serde_json::to_vec(&json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeLogs": [{"scope": {"name": "t"}, "logRecords": records}]
    }]}))
    .unwrap()
}

/// POSTs a batch; the status, or `None` when the collector could not be reached or answered.
fn post(addr: SocketAddr, body: &[u8], batch_id: &str, token: Option<&str>) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}\
         {BATCH_ID_HEADER}: {batch_id}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .ok()?;
    s.write_all(body).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// One server-sent event.
#[derive(Debug, Default, Clone)]
struct Ev {
    event: String,
    id: Option<String>,
    data: String,
}

/// A tail connection read by hand (so a test can stop reading).
struct Tail {
    status: u16,
    body: BufReader<TcpStream>,
}

impl Tail {
    fn open(addr: SocketAddr, query: &str, last_id: Option<&str>, token: Option<&str>) -> Tail {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut extra = String::new();
        if let Some(id) = last_id {
            extra.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        if let Some(t) = token {
            extra.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        write!(
            s,
            "GET /api/v1/tail?{query} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{extra}\r\n"
        )
        .unwrap();
        let mut body = BufReader::new(s);
        let mut line = String::new();
        body.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        loop {
            line.clear();
            body.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        Tail { status, body }
    }

    /// The rest of a short (error) answer.
    fn text(mut self) -> String {
        let mut s = String::new();
        let _ = self.body.read_to_string(&mut s);
        s
    }

    /// The next event; `None` when the stream ends. Chunked transfer framing is skipped: a
    /// chunk-size line is never a field of ours.
    fn next(&mut self) -> Option<Ev> {
        let mut ev = Ev::default();
        let mut line = String::new();
        loop {
            line.clear();
            if self.body.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if !ev.data.is_empty() {
                    return Some(ev);
                }
                continue;
            }
            match l.split_once(':') {
                Some(("event", v)) => ev.event = v.trim_start().to_owned(),
                Some(("id", v)) => ev.id = Some(v.trim_start().to_owned()),
                Some(("data", v)) => ev.data = v.trim_start().to_owned(),
                _ => {} // keep-alive comments, chunk sizes
            }
        }
    }

    /// The next record event: (id, attribute `n`); lag and gap events are returned as `Err`.
    fn record(&mut self) -> Option<Result<(String, u64), Ev>> {
        let ev = self.next()?;
        if !ev.event.is_empty() && ev.event != "message" {
            return Some(Err(ev));
        }
        let rec: Value = serde_json::from_str(&ev.data).unwrap();
        Some(Ok((ev.id.unwrap(), rec["n"].as_u64().unwrap())))
    }
}

fn serve(data: &Path, extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec![
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let mut p = Proc::spawn(&args);
    let addr = p.addr();
    (p, addr)
}

fn pos(id: &str) -> (u64, u32) {
    let (l, r) = id.split_once(':').unwrap();
    (l.parse().unwrap(), r.parse().unwrap())
}

#[test]
fn a_hundred_concurrent_tails_each_get_every_record_once_in_order() {
    let data = tempfile::tempdir().unwrap();
    let (_p, addr) = serve(data.path(), &[]);
    let tails: Vec<Tail> = (0..100)
        .map(|_| {
            let t = Tail::open(addr, "service=tail-many", None, None);
            assert_eq!(t.status, 200);
            t
        })
        .collect();
    let readers: Vec<_> = tails
        .into_iter()
        .map(|mut t| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < 400 {
                    match t.record().expect("the stream ended early") {
                        Ok(r) => got.push(r),
                        Err(ev) => panic!("unexpected {ev:?}"),
                    }
                }
                got
            })
        })
        .collect();
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            std::thread::spawn(move || {
                for b in 0..25u64 {
                    let first = w * 100 + b * 4;
                    let body = batch("tail-many", first..first + 4, 10);
                    let status = post(addr, &body, &format!("m-{w}-{b}"), None);
                    assert_eq!(status, Some(200));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let mut first: Option<Vec<(String, u64)>> = None;
    for r in readers {
        let got = r.join().unwrap();
        let mut ns: Vec<u64> = got.iter().map(|g| g.1).collect();
        assert!(
            got.windows(2).all(|w| pos(&w[0].0) < pos(&w[1].0)),
            "ids increase"
        );
        ns.sort_unstable();
        assert_eq!(ns, (0..400).collect::<Vec<_>>(), "each record once");
        match &first {
            None => first = Some(got),
            Some(f) => assert_eq!(&got, f, "every tail sees the log's order"),
        }
    }
}

#[test]
fn a_tail_too_slow_to_keep_up_gets_a_lag_event_and_resumes_from_its_last_id() {
    let data = tempfile::tempdir().unwrap();
    let (_p, addr) = serve(data.path(), &[]);
    let mut t = Tail::open(addr, "service=tail-lag&max_lag=5", None, None);
    assert_eq!(t.status, 200);
    // 200 batches of 50 records of 2 KiB: 20 MiB, far more than the socket buffers, while
    // this reader reads nothing.
    let total = 200 * 50;
    for b in 0..200u64 {
        let body = batch("tail-lag", b * 50..(b + 1) * 50, 2048);
        assert_eq!(post(addr, &body, &format!("l-{b}"), None), Some(200));
    }
    let mut before = Vec::new();
    let lag = loop {
        match t.record().expect("the stream ended before a lag event") {
            Ok(r) => before.push(r),
            Err(ev) if ev.event == "lag" => break ev,
            Err(ev) => panic!("unexpected {ev:?}"),
        }
    };
    let lag: Value = serde_json::from_str(&lag.data).unwrap();
    let skipped = lag["skipped"].as_u64().unwrap();
    assert!(skipped > 0, "{lag}");
    assert!(
        before.len() as u64 + skipped <= total,
        "{} sent + {skipped} skipped",
        before.len()
    );
    // The lag event says where the skip started: right after the last record sent.
    let last = before.last().map(|b| b.0.clone());
    if let Some(last) = &last {
        let (l, r) = pos(last);
        let from = pos(lag["from"].as_str().unwrap());
        assert!(
            from == (l, r + 1) || from == (l + 1, 0),
            "{lag} after {last}"
        );
    }
    drop(t);
    // Resuming from the last id seen sends everything after it, once.
    let query = "service=tail-lag&max_lag=10000000";
    let mut t = match &last {
        Some(id) => Tail::open(addr, query, Some(id), None),
        None => Tail::open(addr, &format!("{query}&from=start"), None, None),
    };
    assert_eq!(t.status, 200);
    let mut all: Vec<u64> = before.iter().map(|b| b.1).collect();
    while (all.len() as u64) < total {
        match t.record().expect("the stream ended early") {
            Ok(r) => all.push(r.1),
            Err(ev) => panic!("unexpected {ev:?}"),
        }
    }
    assert_eq!(all, (0..total).collect::<Vec<_>>(), "no gap, no duplicate");
}

/// A port free now (for a collector that must come back on the same address).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn last_event_id_resumes_across_a_collector_killed_and_restarted_under_load() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let start = |data: &Path| {
        let mut p = Proc::spawn(&[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &listen,
        ]);
        let addr = p.addr();
        (p, addr)
    };
    let (mut p, addr) = start(data.path());
    // The load: batches of 5 records, each retried with its batch id until acknowledged.
    let batches = 300u64;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, acked) = (stop.clone(), acked.clone());
        std::thread::spawn(move || {
            for b in 0..batches {
                let body = batch("tail-restart", b * 5..(b + 1) * 5, 10);
                while post(addr, &body, &format!("r-{b}"), None) != Some(200) {
                    assert!(
                        !stop.load(Ordering::Relaxed),
                        "batch {b} never acknowledged"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
                acked.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let seen = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));
    let mut t = Tail::open(addr, "service=tail-restart&from=start", None, None);
    assert_eq!(t.status, 200);
    // Read a part, then kill the collector in the middle of the load.
    while seen.lock().unwrap().len() < 300 {
        match t.record().expect("stream ended early") {
            Ok(r) => seen.lock().unwrap().push(r),
            Err(ev) => panic!("unexpected {ev:?}"),
        }
    }
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    // Whatever was still in flight on the connection before the kill.
    while let Some(r) = t.record() {
        seen.lock().unwrap().push(r.unwrap());
    }
    assert!(
        acked.load(Ordering::Relaxed) < batches,
        "the load outlasted the kill"
    );
    let (_p2, addr2) = start(data.path());
    assert_eq!(addr2, addr);
    let last = seen.lock().unwrap().last().unwrap().0.clone();
    let mut t = Tail::open(addr, "service=tail-restart", Some(&last), None);
    assert_eq!(t.status, 200);
    while seen.lock().unwrap().len() < (batches * 5) as usize {
        match t.record().expect("stream ended early") {
            Ok(r) => seen.lock().unwrap().push(r),
            Err(ev) => panic!("unexpected {ev:?}"),
        }
    }
    writer.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let seen = seen.lock().unwrap();
    let ns: Vec<u64> = seen.iter().map(|s| s.1).collect();
    let mut sorted = ns.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..batches * 5).collect::<Vec<_>>(),
        "every acknowledged record once"
    );
    assert!(seen.windows(2).all(|w| pos(&w[0].0) < pos(&w[1].0)));
}

const AUTH: &str = r#"
[[auth.principals]]
id = "shop-ingest"
roles = ["ingest"]
tenant = "shop"

[[auth.principals]]
id = "bank-ingest"
roles = ["ingest"]
tenant = "bank"

[[auth.principals]]
id = "shop-reader"
roles = ["read"]
tenant = "shop"

[[auth.principals]]
id = "root"
roles = ["admin"]

[[auth.tokens]]
id = "shop-ingest"
sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

[[auth.tokens]]
id = "bank-ingest"
sha256 = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"

[[auth.tokens]]
id = "shop-reader"
sha256 = "2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6"

[[auth.tokens]]
id = "root"
sha256 = "18ac3e7343f016890c510e93f935261169d9e3f565436429830faf0934f4f8e4"
"#;
// Tokens: shop-ingest "abc", bank-ingest "b", shop-reader "c", root "d".

#[test]
fn tenants_tail_only_their_own_and_every_access_and_refusal_is_audited() {
    let data = tempfile::tempdir().unwrap();
    let cfg = data.path().join("meshlog.toml");
    std::fs::write(&cfg, AUTH).unwrap();
    let store = data.path().join("store");
    let (_p, addr) = serve(&store, &["--config", cfg.to_str().unwrap()]);
    let body = batch("tail-tenant", 0..3, 1);
    assert_eq!(post(addr, &body, "s-1", Some("abc")), Some(200));
    let body = batch("tail-tenant", 100..102, 1);
    assert_eq!(post(addr, &body, "b-1", Some("b")), Some(200));

    let records = |token: &str, n: usize| -> Vec<u64> {
        let mut t = Tail::open(addr, "service=tail-tenant&from=start", None, Some(token));
        assert_eq!(t.status, 200);
        (0..n).map(|_| t.record().unwrap().unwrap().1).collect()
    };
    assert_eq!(
        records("c", 3),
        [0, 1, 2],
        "the shop reader sees shop's records"
    );
    assert_eq!(records("d", 5), [0, 1, 2, 100, 101], "admin sees all");
    // The shop reader's tail holds nothing of bank's: after bank posts again, the next event
    // is shop's.
    let mut t = Tail::open(addr, "service=tail-tenant", None, Some("c"));
    assert_eq!(
        post(addr, &batch("tail-tenant", 102..103, 1), "b-2", Some("b")),
        Some(200)
    );
    assert_eq!(
        post(addr, &batch("tail-tenant", 3..4, 1), "s-2", Some("abc")),
        Some(200)
    );
    assert_eq!(t.record().unwrap().unwrap().1, 3);
    drop(t);

    let unauth = Tail::open(addr, "service=tail-tenant", None, None);
    assert_eq!(unauth.status, 401);
    let forbidden = Tail::open(addr, "service=tail-tenant", None, Some("abc"));
    assert_eq!(forbidden.status, 403);
    let bad = Tail::open(addr, "status=6xx", None, Some("c"));
    assert_eq!(bad.status, 400);
    let text = bad.text();
    assert!(text.contains("\"parameter\":\"status\""), "{text}");
    let bad = Tail::open(addr, "", Some("yesterday"), Some("c"));
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("Last-Event-ID"));

    // The access records are in the log (read next to the running collector).
    let outcomes = || -> Vec<(String, String)> {
        query_lines(&store)
            .into_iter()
            .filter(|r| r["meshlog.access.endpoint"] == "/api/v1/tail")
            .map(|r| {
                (
                    r["meshlog.access.principal"].as_str().unwrap().to_owned(),
                    r["meshlog.access.outcome"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let want = [
        ("shop-reader", "ok"),
        ("root", "ok"),
        ("-", "unauthenticated"),
        ("-", "permission_denied"),
        ("shop-reader", "bad_request"),
        ("shop-reader", "ended"),
    ];
    let end = std::time::Instant::now() + Duration::from_secs(20);
    for k in 0.. {
        // The closed tail's end is noticed when the collector next writes to it.
        let body = batch("tail-tenant", 10 + k..11 + k, 1);
        assert_eq!(
            post(addr, &body, &format!("s-x{k}"), Some("abc")),
            Some(200)
        );
        let got = outcomes();
        let missing: Vec<_> = want
            .iter()
            .filter(|(p, o)| !got.iter().any(|g| g.0 == *p && g.1 == *o))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "missing access records {missing:?} in {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn one_tail_over_every_retention_class_keeps_each_class_in_order_and_resumes_by_its_id() {
    let data = tempfile::tempdir().unwrap();
    let cfg = data.path().join("meshlog.toml");
    std::fs::write(
        &cfg,
        "segment_max_bytes = 65536\n[retention]\ndefault_days = 400\n\
         [[retention.classes]]\nname = \"short\"\ndays = 30\n\
         match = { \"service.name\" = \"tail-short\" }\n",
    )
    .unwrap();
    let store = data.path().join("store");
    let (_p, addr) = serve(&store, &["--config", cfg.to_str().unwrap()]);
    // Records of both classes, interleaved: `n` < 1000 in "short", >= 1000 in "default".
    let post_both = |from: u64, to: u64| {
        for b in from..to {
            let short = batch("tail-short", b * 3..b * 3 + 3, 40);
            assert_eq!(post(addr, &short, &format!("s-{b}"), None), Some(200));
            if b % 2 == 0 {
                let long = batch("tail-long", 1000 + b..1000 + b + 1, 40);
                assert_eq!(post(addr, &long, &format!("l-{b}"), None), Some(200));
            }
        }
    };
    post_both(0, 40);
    let want_short: Vec<u64> = (0..120).collect();
    let want_long: Vec<u64> = (0..40).filter(|b| b % 2 == 0).map(|b| 1000 + b).collect();
    // The records of one class, in stream order.
    let short = |got: &[(String, u64)]| {
        got.iter()
            .map(|g| g.1)
            .filter(|n| *n < 1000)
            .collect::<Vec<_>>()
    };
    let long = |got: &[(String, u64)]| {
        got.iter()
            .map(|g| g.1)
            .filter(|n| *n >= 1000)
            .collect::<Vec<_>>()
    };

    let mut t = Tail::open(
        addr,
        "class=all&from=start&service=tail-short&service=tail-long",
        None,
        None,
    );
    assert_eq!(t.status, 200);
    let mut got = Vec::new();
    while got.len() < 140 {
        match t.record().expect("stream ended early") {
            Ok(r) => got.push(r),
            Err(ev) => panic!("unexpected {ev:?}"),
        }
    }
    assert_eq!(
        short(&got),
        want_short,
        "short: every record once, in order"
    );
    assert_eq!(
        long(&got),
        want_long,
        "default: every record once, in order"
    );
    // The ids are cursors over both classes.
    let id = &got[57].0;
    assert!(id.contains("short=") && id.contains("default="), "{id}");
    drop(t);

    // Resuming from any id gives exactly the rest, in both classes, then live records.
    let mut t = Tail::open(
        addr,
        "class=all&service=tail-short&service=tail-long",
        Some(id),
        None,
    );
    assert_eq!(t.status, 200);
    post_both(40, 50);
    let rest_short: Vec<u64> = short(&got[58..]).into_iter().chain(120..150).collect();
    let rest_long: Vec<u64> = long(&got[58..])
        .into_iter()
        .chain((40..50).filter(|b| b % 2 == 0).map(|b| 1000 + b))
        .collect();
    let mut rest = Vec::new();
    while rest.len() < rest_short.len() + rest_long.len() {
        match t.record().expect("stream ended early") {
            Ok(r) => rest.push(r),
            Err(ev) => panic!("unexpected {ev:?}"),
        }
    }
    assert_eq!(short(&rest), rest_short);
    assert_eq!(long(&rest), rest_long);

    // A one-class id is not a cursor: 400 naming the header.
    let bad = Tail::open(addr, "class=all", Some("12:0"), None);
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("Last-Event-ID"));
    let bad = Tail::open(addr, "class=nope", None, None);
    assert_eq!(bad.status, 400);
}
