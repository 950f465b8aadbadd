//! `meshlog query` with filters over a data directory, and the collector's `GET /api/v1/query`
//! and `/api/v1/aggregate`: each filter returns exactly the records it should (checked against
//! what was sent), indexes make needle queries skip frames, pages follow the cursor, a reader
//! sees only its tenant, bad parameters are refused naming the parameter, every read is
//! audited, and the completeness statement lists a VM's gaps with the tallies that explain
//! them.

use super::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// One sent record, as the test knows it.
#[derive(Debug, Clone)]
struct Sent {
    seq: u64,
    time_ns: u64,
    service: &'static str,
    method: &'static str,
    status: i64,
    route: String,
    path: String,
    principal: String,
    client: String,
    trace_id: String,
    request_id: String,
    enduser: String,
    agent: &'static str,
}

const SERVICES: [&str; 3] = ["checkout", "cart", "payments"];
const STATUSES: [i64; 5] = [200, 201, 404, 500, 503];
const HOUR: u64 = 3600 * 1_000_000_000;

fn hex32(n: u64, salt: &str) -> String {
    hex::encode(&Sha256::digest(format!("{salt}{n}").as_bytes())[..16])
}

/// `n` varied records of VM `vm-a`, one minute apart ending near now, sequences 0.. with
/// `skip` left out (lost on the way).
fn traffic(n: u64, skip: &[u64]) -> Vec<Sent> {
    let now = now_ns();
    (0..n)
        .filter(|i| !skip.contains(i))
        .map(|i| Sent {
            seq: i,
            // Half a minute off the minute: relative times in the tests have slack.
            time_ns: now - (n - i) * 60_000_000_000 + 30_000_000_000,
            service: SERVICES[(i % 3) as usize],
            method: if i % 4 == 0 { "POST" } else { "GET" },
            status: STATUSES[(i % 5) as usize],
            route: format!("/orders/{{id}}/r{}", i % 7),
            path: format!("/orders/{}/r{}", hex32(i, "p"), i % 7),
            principal: format!("spiffe://cluster.local/ns/shop/sa/caller-{}", i % 11),
            client: format!("10.0.{}.0", i % 13),
            trace_id: hex32(i / 2, "t"),
            request_id: format!("req-{}", hex32(i, "r")),
            enduser: format!("user-{}", i % 17),
            agent: if i % 50 == 7 {
                "NeedleBot/1.0"
            } else {
                "curl/8.0"
            },
        })
        .collect()
}

fn attr(k: &str, v: Value) -> Value {
    json!({"key": k, "value": v})
}

fn s(v: &str) -> Value {
    json!({ "stringValue": v })
}

fn otlp(batch: &[Sent], tally: Option<(&str, u64)>) -> Vec<u8> {
    let mut records: Vec<Value> = batch
        .iter()
        .map(|r| {
            json!({
                "timeUnixNano": r.time_ns.to_string(),
                "traceId": r.trace_id,
                "eventName": "meshlog.http.access",
                "attributes": [
                    attr("http.request.method", s(r.method)),
                    attr("http.response.status_code", json!({"intValue": r.status.to_string()})),
                    attr("http.route", s(&r.route)),
                    attr("url.path", s(&r.path)),
                    attr("meshlog.peer.principal", s(&r.principal)),
                    attr("client.address", s(&r.client)),
                    attr("meshlog.request_id", s(&r.request_id)),
                    attr("enduser.id", s(&r.enduser)),
                    attr("user_agent.original", s(r.agent)),
                    attr("meshlog.sequence", json!({"intValue": r.seq.to_string()})),
                ]
            })
        })
        .collect();
    if let Some((ranges, seq)) = tally {
        records.push(json!({
            "timeUnixNano": now_ns().to_string(),
            "eventName": "meshlog.delivery.tally",
            "attributes": [
                attr("meshlog.delivery.dropped_overflow", json!({"intValue": "2"})),
                attr("meshlog.delivery.dropped_overflow.sequences", s(ranges)),
                attr("meshlog.delivery.dropped_overflow.total", json!({"intValue": "2"})),
                attr("meshlog.sequence", json!({"intValue": seq.to_string()})),
            ]
        }));
    }
    // One resource per service (a VM in front of several services, for the test's sake).
    let mut by_service: Vec<(&str, Vec<Value>)> = Vec::new();
    let services = batch
        .iter()
        .map(|r| r.service)
        .chain(tally.map(|_| "sidecar"));
    for (service, record) in services.zip(records) {
        match by_service.iter_mut().find(|(s, _)| *s == service) {
            Some((_, v)) => v.push(record),
            None => by_service.push((service, vec![record])),
        }
    }
    let resource_logs: Vec<Value> = by_service
        .into_iter()
        .map(|(service, records)| {
            json!({
                "resource": {"attributes": [
                    attr("service.name", s(service)),
                    attr("k8s.namespace.name", s("shop")),
                    attr("meshlog.vm.id", s("vm-a")),
                ]},
                "scopeLogs": [{"logRecords": records}]
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "resourceLogs": resource_logs })).unwrap()
}

/// Equal sets, or a short account of the difference.
fn assert_same(got: &BTreeSet<String>, want: &BTreeSet<String>, what: &str) {
    if got != want {
        let extra: Vec<_> = got.difference(want).take(3).collect();
        let missing: Vec<_> = want.difference(got).take(3).collect();
        panic!(
            "{what}: got {} records, want {}; extra e.g. {extra:?}, missing e.g. {missing:?}",
            got.len(),
            want.len()
        );
    }
}

/// One HTTP/1.1 request with headers; returns status and body.
fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[String],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    write!(
        sock,
        "{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    sock.write_all(body).unwrap();
    let mut buf = Vec::new();
    sock.read_to_end(&mut buf).unwrap();
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, buf[head_end + 4..].to_vec())
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

/// Posts `sent` in batches of 50, then the delivery tally alone (service `sidecar`).
fn post_all(addr: SocketAddr, token: Option<&str>, sent: &[Sent], tally: Option<(&str, u64)>) {
    let mut h = vec![format!("Content-Type: {JSON}")];
    h.extend(token.map(bearer));
    let mut bodies: Vec<Vec<u8>> = sent.chunks(50).map(|c| otlp(c, None)).collect();
    if tally.is_some() {
        bodies.push(otlp(&[], tally));
    }
    for b in bodies {
        let (st, body) = http(addr, "POST", "/v1/logs", &h, &b);
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    }
}

fn ids<'a>(it: impl IntoIterator<Item = &'a Sent>) -> BTreeSet<String> {
    it.into_iter().map(|r| r.request_id.clone()).collect()
}

/// `meshlog query --data-dir DIR ARGS…` as NDJSON: the request ids, stderr, exit code.
fn cli(dir: &Path, args: &[&str]) -> (Vec<Value>, String, i32) {
    let mut a = vec![
        "query",
        "--data-dir",
        dir.to_str().unwrap(),
        "--format",
        "ndjson",
    ];
    a.extend_from_slice(args);
    let out = run(&a);
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn request_ids(lines: &[Value]) -> BTreeSet<String> {
    lines
        .iter()
        .filter_map(|r| r["meshlog.request_id"].as_str().map(str::to_owned))
        .collect()
}

fn serve_with(data: &Path, extra: &str) -> Proc {
    let cfg = data.join("meshlog.toml");
    std::fs::write(&cfg, format!("segment_max_bytes = 65536\n{extra}")).unwrap();
    Proc::spawn(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        data.join("store").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ])
}

#[test]
fn every_filter_returns_exactly_the_records_sent_that_match() {
    let dir = tempfile::tempdir().unwrap();
    let sent = traffic(3000, &[1500, 1501, 1502]);
    let mut p = serve_with(dir.path(), "");
    let addr = p.addr();
    post_all(addr, None, &sent, Some(("1500-1501", 3000)));
    assert!(p.terminate().success());
    let store = dir.path().join("store");
    let segments = std::fs::read_dir(store.join(SEGMENTS_DIR)).unwrap().count();
    assert!(
        segments >= 3,
        "only {segments} segments: nothing closed to index"
    );

    let now = now_ns();
    let one = &sent[777];
    let needle: Vec<&Sent> = sent
        .iter()
        .filter(|r| r.agent.starts_with("Needle"))
        .collect();
    assert!(!needle.is_empty());
    let cases: Vec<(Vec<String>, BTreeSet<String>)> = vec![
        (
            vec!["--service".into(), "payments".into()],
            ids(sent.iter().filter(|r| r.service == "payments")),
        ),
        (
            vec![
                "--service".into(),
                "cart".into(),
                "--status".into(),
                "5xx".into(),
            ],
            ids(sent
                .iter()
                .filter(|r| r.service == "cart" && r.status >= 500)),
        ),
        (
            vec!["--status".into(), "404,201".into()],
            ids(sent.iter().filter(|r| r.status == 404 || r.status == 201)),
        ),
        (
            vec![
                "--method".into(),
                "post".into(),
                "--namespace".into(),
                "shop".into(),
            ],
            ids(sent.iter().filter(|r| r.method == "POST")),
        ),
        (
            vec!["--route".into(), one.route.clone()],
            ids(sent.iter().filter(|r| r.route == one.route)),
        ),
        (
            vec!["--principal".into(), one.principal.clone()],
            ids(sent.iter().filter(|r| r.principal == one.principal)),
        ),
        (
            vec!["--client".into(), one.client.clone()],
            ids(sent.iter().filter(|r| r.client == one.client)),
        ),
        (
            vec!["--trace-id".into(), one.trace_id.to_uppercase()],
            ids(sent.iter().filter(|r| r.trace_id == one.trace_id)),
        ),
        (
            vec!["--request-id".into(), one.request_id.clone()],
            ids([one]),
        ),
        (
            vec![
                "--enduser".into(),
                one.enduser.clone(),
                "--method".into(),
                "GET".into(),
            ],
            ids(sent
                .iter()
                .filter(|r| r.enduser == one.enduser && r.method == "GET")),
        ),
        (
            vec!["--text".into(), "needlebot".into()],
            ids(needle.iter().copied()),
        ),
        (
            vec!["--where".into(), format!("url.path={}", one.path)],
            ids([one]),
        ),
        (
            vec!["--since".into(), "30m".into()],
            ids(sent.iter().filter(|r| r.time_ns >= now - HOUR / 2)),
        ),
        (
            vec![
                "--until".into(),
                meshlog_format::time::rfc3339(sent[100].time_ns),
            ],
            ids(sent.iter().filter(|r| r.time_ns < sent[100].time_ns)),
        ),
    ];
    for pass in ["builds the indexes", "uses them"] {
        for (args, want) in &cases {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let (lines, err, code) = cli(&store, &a);
            assert_eq!(code, 0, "{args:?}: {err}");
            let got = request_ids(&lines);
            assert!(!want.is_empty(), "{args:?} expects nothing");
            assert_same(&got, want, &format!("{args:?} ({pass})"));
        }
    }
    assert!(store.join("index").read_dir().unwrap().count() >= 2);
    // A needle query reads few frames once the indexes exist.
    let (_, err, _) = cli(&store, &["--request-id", &one.request_id]);
    let skipped: u64 = err
        .split(" read, ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(skipped > 10, "{err}");
    // Index files are a cache: deleting or garbling them changes no answer.
    let idx = store
        .join("index")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&idx, b"garbage").unwrap();
    let (lines, _, _) = cli(&store, &["--service", "payments"]);
    assert_same(&request_ids(&lines), &cases[0].1, "after garbling an index");
    let (lines, _, _) = cli(&store, &["--service", "payments", "--no-index"]);
    assert_same(&request_ids(&lines), &cases[0].1, "--no-index");

    // Newest first, limited, then the next page from the cursor.
    let (lines, err, _) = cli(
        &store,
        &["--order", "newest", "--limit", "5", "--service", "cart"],
    );
    let carts: Vec<&Sent> = sent.iter().filter(|r| r.service == "cart").collect();
    let want: Vec<String> = carts
        .iter()
        .rev()
        .take(5)
        .map(|r| r.request_id.clone())
        .collect();
    let got: Vec<String> = lines
        .iter()
        .map(|r| r["meshlog.request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, want);
    let cursor = err
        .split("--cursor ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let (lines, _, _) = cli(
        &store,
        &[
            "--order",
            "newest",
            "--limit",
            "5",
            "--service",
            "cart",
            "--cursor",
            cursor,
        ],
    );
    let want: Vec<String> = carts
        .iter()
        .rev()
        .skip(5)
        .take(5)
        .map(|r| r.request_id.clone())
        .collect();
    let got: Vec<String> = lines
        .iter()
        .map(|r| r["meshlog.request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, want);

    // Counts.
    let (lines, _, _) = cli(&store, &["--count", "--status", "5xx"]);
    let fives = sent.iter().filter(|r| r.status >= 500).count() as u64;
    assert_eq!(lines, [json!({"count": fives})]);
    let (lines, _, _) = cli(
        &store,
        &[
            "--group-by",
            "status-class",
            "--where",
            "event_name=meshlog.http.access",
        ],
    );
    let classes: Vec<(String, u64)> = lines
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap().to_owned(),
                g["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let n = |k: i64| sent.iter().filter(|r| r.status / 100 == k).count() as u64;
    assert_eq!(
        classes,
        [
            ("2xx".to_owned(), n(2)),
            ("4xx".to_owned(), n(4)),
            ("5xx".to_owned(), n(5))
        ]
    );
    let (lines, _, _) = cli(
        &store,
        &["--every", "1h", "--since", "3h", "--service", "payments"],
    );
    let total: u64 = lines.iter().map(|g| g["count"].as_u64().unwrap()).sum();
    assert_eq!(
        total,
        sent.iter()
            .filter(|r| r.service == "payments" && r.time_ns >= now - 3 * HOUR)
            .count() as u64
    );
    assert!(
        lines
            .iter()
            .all(|g| g["time"].as_str().unwrap().ends_with(":00:00Z"))
    );
    let out = run(&[
        "query",
        "--data-dir",
        store.to_str().unwrap(),
        "--format",
        "csv",
        "--request-id",
        &one.request_id,
    ]);
    let csv = String::from_utf8(out.stdout).unwrap();
    let mut rows = csv.lines();
    assert!(
        rows.next()
            .unwrap()
            .starts_with("time,service,method,status,route,path")
    );
    assert!(rows.next().unwrap().contains(&one.request_id));
    assert_eq!(rows.next(), None);

    // The completeness statement: the gap, the tally that explains most of it, the rest.
    let (_, err, _) = cli(&store, &["--service", "payments"]);
    assert!(
        err.contains("vm vm-a: sequences 0..3000, missing 1500-1502 (lost per delivery tallies: 1500-1501; unexplained: 1502; the VM counted 2 dropped for overflow"),
        "{err}"
    );

    // Bad flags are usage errors naming the flag; nothing is printed.
    for (args, flag) in [
        (vec!["--status", "6xx"], "--status"),
        (vec!["--since", "yesterday"], "--since"),
        (vec!["--limit", "0"], "--limit"),
        (vec!["--trace-id", "xyz"], "--trace-id"),
        (vec!["--where", "novalue"], "--where"),
    ] {
        let (lines, err, code) = cli(&store, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
        assert!(lines.is_empty());
    }
}

const TOKENS: [(&str, &str, &str); 4] = [
    ("ingest-shop", "ingest", "shop"),
    ("ingest-bank", "ingest", "bank"),
    ("reader-shop", "read", "shop"),
    ("root", "admin", ""),
];

#[test]
fn serve_indexes_each_segment_as_it_closes_and_a_query_without_the_index_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let sent = traffic(3000, &[]);
    let mut p = serve_with(dir.path(), "");
    let addr = p.addr();
    post_all(addr, None, &sent, None);
    let store = dir.path().join("store");
    let closed = || std::fs::read_dir(store.join(SEGMENTS_DIR)).unwrap().count() - 1;
    let indexed = || -> Vec<PathBuf> {
        match std::fs::read_dir(store.join("index")) {
            Ok(d) => {
                let mut v: Vec<PathBuf> = d
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|x| x == "idx"))
                    .collect();
                v.sort();
                v
            }
            Err(_) => Vec::new(),
        }
    };
    // No query has run: the collector indexes each closed segment on its own, and the active
    // one's frames written so far (every 2 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    let snapshot = || -> Vec<(PathBuf, Vec<u8>)> {
        indexed()
            .into_iter()
            .map(|f| {
                let b = std::fs::read(&f).unwrap_or_default();
                (f, b)
            })
            .collect()
    };
    let mut last = snapshot();
    loop {
        assert!(
            Instant::now() < deadline,
            "{} of {} segments indexed",
            indexed().len(),
            closed() + 1
        );
        std::thread::sleep(Duration::from_millis(2500));
        let now = snapshot();
        // Settled: every segment indexed, nothing rewritten for one period of the active index.
        if now.len() == closed() + 1 && now == last {
            break;
        }
        last = now;
    }
    let files: Vec<PathBuf> = last.into_iter().map(|(f, _)| f).collect();
    assert!(closed() >= 2, "only {} closed segments", closed());
    for f in &files {
        let b = std::fs::read(f).unwrap();
        assert_eq!(
            &b[..5],
            b"MLQX\x04",
            "{} is not a binary index",
            f.display()
        );
    }
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    // The first query uses them (skips frames) and rewrites none.
    let one = &sent[1234];
    let (lines, err, code) = cli(&store, &["--request-id", &one.request_id]);
    assert_eq!(code, 0, "{err}");
    assert_same(&request_ids(&lines), &ids([one]), "needle with the indexes");
    let skipped: u64 = err
        .split(" read, ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(skipped > 10, "{err}");
    let after: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert_eq!(before, after, "a query rebuilt an index built at close");
    // Without an index (deleted, or one byte flipped) the answer is the same, and the query
    // builds the index again.
    std::fs::remove_file(&files[0]).unwrap();
    let mut flipped = before[1].clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    std::fs::write(&files[1], &flipped).unwrap();
    let payments = ids(sent.iter().filter(|r| r.service == "payments"));
    let (lines, err, code) = cli(&store, &["--service", "payments"]);
    assert_eq!(code, 0, "{err}");
    assert_same(
        &request_ids(&lines),
        &payments,
        "without the first two indexes",
    );
    assert_eq!(
        std::fs::read(&files[0]).unwrap(),
        before[0],
        "rebuilt as built at close"
    );
    assert_eq!(
        std::fs::read(&files[1]).unwrap(),
        before[1],
        "rebuilt as built at close"
    );
    assert!(p.terminate().success());
}

fn auth_config() -> String {
    let mut c = String::new();
    for (id, role, tenant) in TOKENS {
        c.push_str(&format!(
            "[[auth.principals]]\nid = \"{id}\"\nroles = [\"{role}\"]\n{}\n[[auth.tokens]]\nid = \"{id}\"\nsha256 = \"{}\"\n\n",
            if tenant.is_empty() { String::new() } else { format!("tenant = \"{tenant}\"") },
            hex::encode(Sha256::digest(format!("tok-{id}").as_bytes()))
        ));
    }
    c
}

fn api(addr: SocketAddr, who: &str, target: &str) -> (u16, Value) {
    let (st, body) = http(addr, "GET", target, &[bearer(&format!("tok-{who}"))], b"");
    (st, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[test]
fn the_api_scopes_readers_to_their_tenant_pages_refuses_bad_parameters_and_audits_reads() {
    let dir = tempfile::tempdir().unwrap();
    let sent = traffic(400, &[]);
    let (shop, bank) = sent.split_at(250);
    let mut p = serve_with(dir.path(), &auth_config());
    let addr = p.addr();
    post_all(addr, Some("tok-ingest-shop"), shop, None);
    post_all(addr, Some("tok-ingest-bank"), bank, None);

    // A reader sees its tenant only, whatever it asks.
    let (st, body) = api(
        addr,
        "reader-shop",
        "/api/v1/query?service=cart&limit=10000",
    );
    assert_eq!(st, 200, "{body}");
    let got: BTreeSet<String> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["meshlog.request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_same(
        &got,
        &ids(shop.iter().filter(|r| r.service == "cart")),
        "reader",
    );
    assert!(body["completeness"]["stores"].is_array(), "{body}");
    let (st, body) = api(addr, "reader-shop", "/api/v1/query?tenant=bank");
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["parameter"], "tenant");
    // Admin sees every tenant.
    let (st, body) = api(
        addr,
        "root",
        "/api/v1/aggregate?group-by=tenant&where=event_name%3Dmeshlog.http.access",
    );
    assert_eq!(st, 200, "{body}");
    let groups: Vec<(String, u64)> = body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap().to_owned(),
                g["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("bank".into(), bank.len() as u64),
            ("shop".into(), shop.len() as u64)
        ]
    );
    // An ingest principal may not read.
    let (st, _) = api(addr, "ingest-shop", "/api/v1/query");
    assert_eq!(st, 403);

    // Pages of 7 follow the cursor to the end: every shop record once, in order.
    let mut cursor: Option<String> = None;
    let mut paged = Vec::new();
    loop {
        let target = match &cursor {
            Some(c) => format!("/api/v1/query?limit=7&event_name=x&cursor={c}"),
            None => "/api/v1/query?limit=7&event_name=x".into(),
        };
        // (an unknown parameter is refused before anything is read)
        let (st, body) = api(addr, "reader-shop", &target);
        assert_eq!(st, 400);
        assert_eq!(body["parameter"], "event_name", "{body}");
        let target = target.replace("event_name=x", "where=event_name%3Dmeshlog.http.access");
        let (st, body) = api(addr, "reader-shop", &target);
        assert_eq!(st, 200, "{body}");
        for r in body["records"].as_array().unwrap() {
            paged.push(r["meshlog.request_id"].as_str().unwrap().to_owned());
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    // Store order, as one big page has it; each shop record exactly once.
    let (_, body) = api(
        addr,
        "reader-shop",
        "/api/v1/query?limit=10000&where=event_name%3Dmeshlog.http.access",
    );
    let whole: Vec<String> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["meshlog.request_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(paged == whole, "pages differ from the whole");
    assert_eq!(paged.len(), shop.len());
    assert_same(&paged.into_iter().collect(), &ids(shop), "pages");

    // Bad parameters: a 400 naming each.
    for (q, param) in [
        ("colour=red", "colour"),
        ("since=yesterday", "since"),
        ("status=6xx", "status"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("cursor=nope", "cursor"),
    ] {
        let (st, body) = api(addr, "reader-shop", &format!("/api/v1/query?{q}"));
        assert_eq!(st, 400, "{q}: {body}");
        assert_eq!(body["parameter"], param, "{q}: {body}");
    }
    let (st, body) = api(addr, "reader-shop", "/api/v1/aggregate?every=0s");
    assert_eq!((st, body["parameter"].as_str()), (400, Some("every")));

    // The CLI asks the collector the same question.
    let url = format!("http://{addr}");
    let out = Command::new(BIN)
        .args([
            "query", "--server", &url, "--format", "ndjson", "--status", "5xx",
        ])
        .env("MESHLOG_TOKEN", "tok-reader-shop")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        request_ids(&lines),
        ids(shop.iter().filter(|r| r.status >= 500))
    );
    let out = Command::new(BIN)
        .args([
            "query",
            "--server",
            &url,
            "--status",
            "6xx",
            "--token",
            "tok-reader-shop",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--status"));

    assert!(p.terminate().success());
    // Every read and refusal is in the log, with rows.
    let (lines, _, _) = cli(
        &dir.path().join("store"),
        &["--where", "event_name=meshlog.access"],
    );
    let outcomes: Vec<(&str, &str, u64)> = lines
        .iter()
        .map(|r| {
            (
                r["meshlog.access.endpoint"].as_str().unwrap(),
                r["meshlog.access.outcome"].as_str().unwrap(),
                r["meshlog.access.rows"].as_u64().unwrap(),
            )
        })
        .collect();
    let shop_carts = shop.iter().filter(|r| r.service == "cart").count() as u64;
    assert_eq!(
        outcomes[0],
        ("/api/v1/query", "ok", shop_carts),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1], ("/api/v1/query", "permission_denied", 0));
    assert!(outcomes.iter().any(|o| o.1 == "bad_request"));
    assert!(outcomes.iter().filter(|o| o.1 == "ok").count() >= 5);
}
