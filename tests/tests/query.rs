//! End-to-end: varied requests through a real Envoy running the meshlog filter, stored by the
//! real collector; then each `meshlog query` filter, and the collector's `GET /api/v1/query`,
//! returns exactly the records it should (checked against what was sent), counts add up, the
//! result says it is complete (per VM gapless), and bad queries get a 400 naming the parameter.
//! Two sidecars of different tenants over mutual TLS: a reader scoped to one sees nothing of the
//! other through `/api/v1/query`, `/api/v1/aggregate` and `/api/v1/tail`. (Pagination and the
//! audit of reads are proven in collector/bin/tests/query.rs.)

use meshlog_e2e::{
    Collector, Envoy, PortHold, Sidecar, Upstream, collector_bin, http_request, send, wait_for,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const UPSTREAM: &str = env!("CARGO_BIN_EXE_meshlog-upstream");

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// One request sent.
struct Req {
    id: String,
    method: &'static str,
    status: u16,
    route: &'static str,
    trace: Option<String>,
    agent: &'static str,
    second_half: bool,
}

/// `meshlog query --data-dir DIR --format ndjson ARGS…`: request ids, stderr, exit code.
fn query(dir: &Path, args: &[&str]) -> (BTreeSet<String>, Vec<Value>, String, i32) {
    let out = Command::new(collector_bin())
        .args(["query", "--data-dir"])
        .arg(dir)
        .args(["--format", "ndjson"])
        .args(args)
        .output()
        .unwrap();
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids = lines
        .iter()
        .filter_map(|r| r["meshlog.request_id"].as_str().map(str::to_owned))
        .collect();
    (
        ids,
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn get(addr: SocketAddr, target: &str) -> (u16, Value) {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = http_request(addr, raw.as_bytes()).unwrap();
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

fn ids<'a>(reqs: impl IntoIterator<Item = &'a Req>) -> BTreeSet<String> {
    reqs.into_iter().map(|r| r.id.clone()).collect()
}

#[test]
fn each_filter_returns_exactly_the_requests_that_went_through_envoy() {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    let upstream = Upstream::start(UPSTREAM);
    let sidecar = Sidecar::new(upstream.addr.port(), collector.addr.port());
    let envoy = Envoy::start(&sidecar, 2);

    let n = 48;
    let mut sent = Vec::new();
    let mut mid = 0;
    for i in 0..n {
        if i == n / 2 {
            mid = now_ns();
        }
        let (method, path, status, route) = match i % 4 {
            0 => ("GET", format!("/api/orders/{i}"), 200, "/api/orders/{id}"),
            1 => ("POST", format!("/api/carts/{i}"), 200, "/api/carts/{id}"),
            2 => ("GET", "/status/404".to_owned(), 404, "/status/{id}"),
            _ => ("DELETE", "/status/503".to_owned(), 503, "/status/{id}"),
        };
        let id = format!("q-{i:04}");
        let trace = (i % 3 == 0).then(|| format!("{:032x}", 0x7ace_0000 + i / 6));
        let agent = if i % 10 == 3 {
            "NeedleAgent/2.0"
        } else {
            "e2e/1.0"
        };
        let tp = trace
            .as_ref()
            .map(|t| format!("00-{t}-{:016x}-01", 0x5000 + i));
        let mut headers: Vec<(&str, &[u8])> = vec![
            ("x-request-id", id.as_bytes()),
            ("user-agent", agent.as_bytes()),
        ];
        if let Some(tp) = &tp {
            headers.push(("traceparent", tp.as_bytes()));
        }
        let body: &[u8] = if method == "POST" { b"{}" } else { b"" };
        assert_eq!(send(envoy.listen, method, &path, &headers, body), status);
        sent.push(Req {
            id,
            method,
            status,
            route,
            trace,
            agent,
            second_half: i >= n / 2,
        });
    }
    let stored = collector.wait_records(n as usize, &[&envoy]);
    assert_eq!(stored.len(), n as usize);
    let dir = collector.data_dir.clone();

    let a_trace = sent[6].trace.clone().unwrap();
    let until = meshlog_format::time::rfc3339(mid);
    let cases: Vec<(Vec<&str>, BTreeSet<String>)> = vec![
        (
            vec!["--status", "5xx"],
            ids(sent.iter().filter(|r| r.status >= 500)),
        ),
        (
            vec!["--status", "404,200"],
            ids(sent.iter().filter(|r| r.status == 404 || r.status == 200)),
        ),
        (
            vec!["--method", "POST"],
            ids(sent.iter().filter(|r| r.method == "POST")),
        ),
        (
            vec!["--route", "/api/orders/{id}"],
            ids(sent.iter().filter(|r| r.route == "/api/orders/{id}")),
        ),
        (
            vec!["--trace-id", &a_trace],
            ids(sent.iter().filter(|r| r.trace.as_ref() == Some(&a_trace))),
        ),
        (
            vec!["--request-id", "q-0007"],
            ids(sent.iter().filter(|r| r.id == "q-0007")),
        ),
        (
            vec!["--text", "needleagent"],
            ids(sent.iter().filter(|r| r.agent.starts_with("Needle"))),
        ),
        (
            vec!["--where", "url.path=/status/{id}", "--method", "GET"],
            ids(sent.iter().filter(|r| r.status == 404)),
        ),
        (
            vec!["--service", "demo", "--client", "127.0.0.0"],
            ids(&sent),
        ),
        (
            vec!["--until", &until],
            ids(sent.iter().filter(|r| !r.second_half)),
        ),
        (
            vec!["--since", &until],
            ids(sent.iter().filter(|r| r.second_half)),
        ),
    ];
    for (args, want) in &cases {
        assert!(!want.is_empty(), "{args:?} expects nothing");
        let (got, _, err, code) = query(&dir, args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert_eq!(&got, want, "{args:?}");
        // Complete, and saying so: both VMs' sequences are gapless.
        assert!(err.contains("gapless"), "{args:?}: {err}");
        assert!(!err.contains("missing"), "{args:?}: {err}");
    }
    // The requests only: detection is on, and this traffic may fire a rule (its alert record
    // has no status).
    let (_, lines, _, _) = query(
        &dir,
        &[
            "--group-by",
            "status-class",
            "--where",
            "event_name=meshlog.http.access",
        ],
    );
    let counts: Vec<(String, u64)> = lines
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap().to_owned(),
                g["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let n_of = |k: u16| sent.iter().filter(|r| r.status / 100 == k).count() as u64;
    assert_eq!(
        counts,
        [
            ("2xx".into(), n_of(2)),
            ("4xx".into(), n_of(4)),
            ("5xx".into(), n_of(5))
        ]
    );

    // The query API answers the same questions (loopback without [auth]: every local caller).
    for (args, want) in &cases[..4] {
        let qs: Vec<String> = args
            .chunks(2)
            .map(|kv| {
                format!(
                    "{}={}",
                    kv[0].trim_start_matches("--"),
                    kv[1]
                        .replace('{', "%7B")
                        .replace('}', "%7D")
                        .replace(',', "%2C")
                )
            })
            .collect();
        let (st, body) = get(
            collector.addr,
            &format!("/api/v1/query?limit=1000&{}", qs.join("&")),
        );
        assert_eq!(st, 200, "{args:?}: {body}");
        let got: BTreeSet<String> = body["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["meshlog.request_id"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(&got, want, "{args:?}");
        assert!(
            body["completeness"]["vms"]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v["gapless"] == true),
            "{body}"
        );
    }
    let (st, body) = get(collector.addr, "/api/v1/aggregate?count=true&status=5xx");
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["total"], n_of(5));

    // Bad queries: a 400 naming the parameter.
    for (q, param) in [
        ("colour=red", "colour"),
        ("since=last%20tuesday", "since"),
        ("status=7xx", "status"),
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
    ] {
        let (st, body) = get(collector.addr, &format!("/api/v1/query?{q}"));
        assert_eq!(st, 400, "{q}: {body}");
        assert_eq!(body["parameter"], param, "{q}: {body}");
        assert!(body["message"].as_str().unwrap().contains(param), "{body}");
    }
    drop(envoy);
    collector.stop();
}

/// A collector outage with a tiny buffer: the filter drops the oldest records and says so in a
/// delivery tally. The query's completeness statement shows the gap and that the tally explains
/// all of it, with the VM's own count; the same statement comes from the API.
#[test]
fn gaps_from_an_outage_are_reported_with_the_tallies_that_explain_them() {
    let data = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(UPSTREAM);
    let hold = PortHold::new();
    let mut sidecar = Sidecar::new(upstream.addr.port(), hold.port());
    sidecar.plugin_config = Some(
        r#"{"batch":{"max_records":20,"max_age_ms":100,"max_buffer_bytes":65536,
            "retry_initial_ms":50,"retry_max_ms":400},"resource":{"service.name":"outage"}}"#
            .to_owned(),
    );
    let envoy = Envoy::start(&sidecar, 1);
    let requests = 200;
    for i in 0..requests {
        let path = format!("/api/items/{i}?q={}", "x".repeat(200));
        let rid = format!("gap-{i:04}");
        assert_eq!(
            send(
                envoy.listen,
                "GET",
                &path,
                &[("x-request-id", rid.as_bytes())],
                b""
            ),
            200
        );
    }
    wait_for(Duration::from_secs(10), || {
        envoy
            .stat("wasmcustom.meshlog.records_dropped")
            .filter(|&n| n > 0)
    })
    .expect("200 records must not fit in 64 KiB");
    let port = hold.release();
    let collector = Collector::start_at(data.path(), &format!("127.0.0.1:{port}"));
    let arrived = wait_for(Duration::from_secs(20), || {
        let r = collector.query();
        let access = r
            .iter()
            .filter(|r| r["event_name"] == "meshlog.http.access")
            .count() as u64;
        let tally = r
            .iter()
            .any(|r| r["event_name"] == "meshlog.delivery.tally");
        let dropped = envoy.stat("wasmcustom.meshlog.records_dropped")?;
        (tally && access + dropped >= requests).then_some(())
    });
    assert!(arrived.is_some(), "{}", collector.proc.output());
    let _ = collector.wait_records(0, &[&envoy]);
    let dropped = envoy.stat("wasmcustom.meshlog.records_dropped").unwrap();

    // The records that did arrive, with the statement of what did not.
    let (got, _, err, code) = query(&collector.data_dir, &["--service", "outage"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(got.len() as u64 + dropped, requests, "{err}");
    let vm_line = err
        .lines()
        .find(|l| l.contains(": sequences "))
        .unwrap_or_else(|| panic!("no VM line: {err}"));
    assert!(
        vm_line.contains(", missing 0-"),
        "the oldest were dropped: {vm_line}"
    );
    assert!(vm_line.contains("unexplained: none"), "{vm_line}");
    assert!(
        vm_line.contains(&format!("the VM counted {dropped} dropped for overflow")),
        "{vm_line}"
    );
    let (st, body) = get(collector.addr, "/api/v1/query?service=outage&limit=1");
    assert_eq!(st, 200, "{body}");
    let vms = body["completeness"]["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 1, "{body}");
    let vm = &vms[0];
    assert_eq!(vm["gapless"], false);
    assert_eq!(vm["unexplained"], serde_json::json!([]));
    assert_eq!(vm["gaps"], vm["explained"]);
    let missing: u64 = vm["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g[1].as_u64().unwrap() - g[0].as_u64().unwrap() + 1)
        .sum();
    assert_eq!(missing, dropped);
    assert_eq!(vm["dropped_overflow_total"], dropped);
    assert_eq!(body["completeness"]["complete"], true);
    drop(envoy);
    collector.stop();
}

/// `meshlog query|tail --server https://localhost:PORT` as the reader of tenant `shop`.
fn as_reader(pki: &meshlog_e2e::tls::Pki, cert: &Path, key: &Path, port: u16) -> Vec<String> {
    vec![
        "--server".into(),
        format!("https://localhost:{port}"),
        "--ca".into(),
        pki.ca.display().to_string(),
        "--cert".into(),
        cert.display().to_string(),
        "--key".into(),
        key.display().to_string(),
    ]
}

/// Two sidecars over mutual TLS, each with the SPIFFE id of another tenant, send real traffic
/// through Envoy; a reader scoped to tenant `shop` asks `GET /api/v1/query`, `/aggregate` and
/// `/tail` (through `meshlog query|tail --server`): it gets exactly shop's requests, counts
/// only shop's, tails only shop's (history and live), and asking for bank is refused.
#[test]
fn a_reader_of_one_tenant_sees_nothing_of_another_through_query_aggregate_and_tail() {
    const SHOP: &str = "spiffe://cluster.local/ns/shop/sa/checkout";
    const BANK: &str = "spiffe://cluster.local/ns/bank/sa/ledger";
    const READER: &str = "spiffe://cluster.local/ns/shop/sa/oncall";
    let pki = meshlog_e2e::tls::Pki::with_names(&["meshlog-collector", "localhost"], READER);
    let shop_files = pki.client_files("shop", SHOP);
    let bank_files = pki.client_files("bank", BANK);
    let reader = pki.client_files("reader", READER);
    let data = tempfile::tempdir().unwrap();
    let cfg = data.path().join("meshlog.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[tls]
cert_file = "{}"
key_file = "{}"
client_ca_file = "{}"

[[auth.principals]]
id = "{SHOP}"
roles = ["ingest"]
tenant = "shop"

[[auth.principals]]
id = "{BANK}"
roles = ["ingest"]
tenant = "bank"

[[auth.principals]]
id = "{READER}"
roles = ["read"]
tenant = "shop"
"#,
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.ca.display()
        ),
    )
    .unwrap();
    let store = data.path().join("store");
    let mut cmd = Command::new(collector_bin());
    cmd.arg("serve")
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(&store)
        .args(["--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"]);
    let mut collector = meshlog_e2e::Proc::spawn("collector", cmd);
    let addr = collector.listening_addr(Duration::from_secs(20));
    let upstream = Upstream::start(UPSTREAM);
    let sidecar = |files: &(std::path::PathBuf, std::path::PathBuf)| {
        let mut s = Sidecar::new(upstream.addr.port(), addr.port());
        s.file = "envoy-config/sidecar-mtls.yaml";
        s.replace = vec![
            (
                "/etc/meshlog/tls/client.pem".into(),
                files.0.display().to_string(),
            ),
            (
                "/etc/meshlog/tls/client.key".into(),
                files.1.display().to_string(),
            ),
            (
                "/etc/meshlog/tls/ca.pem".into(),
                pki.ca.display().to_string(),
            ),
        ];
        Envoy::start(&s, 1)
    };
    let (shop, bank) = (sidecar(&shop_files), sidecar(&bank_files));
    // Each tenant's requests, some failing; the bank's carry "bank" in their paths and ids.
    let traffic = |envoy: &Envoy, tenant: &str, from: usize, to: usize| -> Vec<(String, u16)> {
        (from..to)
            .map(|i| {
                let id = format!("{tenant}-{i:03}");
                let (path, status) = if i % 4 == 3 {
                    ("/status/503".to_owned(), 503)
                } else {
                    (format!("/{tenant}/items/{i}"), 200)
                };
                let got = send(
                    envoy.listen,
                    "GET",
                    &path,
                    &[("x-request-id", id.as_bytes())],
                    b"",
                );
                assert_eq!(got, status, "{id}");
                (id, status)
            })
            .collect()
    };
    let mut shop_sent = traffic(&shop, "shop", 0, 16);
    let mut bank_sent = traffic(&bank, "bank", 0, 12);
    let stored = |n: usize| {
        wait_for(Duration::from_secs(30), || {
            let r: Vec<Value> = meshlog_e2e::query(&store)
                .into_iter()
                .filter(|r| r["event_name"] == "meshlog.http.access")
                .collect();
            (r.len() >= n).then_some(r)
        })
        .unwrap_or_else(|| panic!("fewer than {n} records stored:\n{}", collector.output()))
    };
    let all = stored(28);
    // The collector stamped each sender's tenant (what the reader's scope relies on).
    for r in &all {
        let id = r["meshlog.request_id"].as_str().unwrap();
        let tenant = id.split('-').next().unwrap();
        assert_eq!(r["resource.meshlog.tenant"], tenant, "{r}");
    }
    let ids_of = |sent: &[(String, u16)]| -> BTreeSet<String> {
        sent.iter().map(|(id, _)| id.clone()).collect()
    };
    let remote = as_reader(&pki, &reader.0, &reader.1, addr.port());
    let ask = |args: &[&str]| -> (Vec<Value>, String, i32) {
        let out = Command::new(collector_bin())
            .arg("query")
            .args(&remote)
            .args(["--format", "ndjson"])
            .args(args)
            .output()
            .unwrap();
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
    };
    let request_ids = |lines: &[Value]| -> BTreeSet<String> {
        lines
            .iter()
            .filter_map(|r| r["meshlog.request_id"].as_str().map(str::to_owned))
            .collect()
    };

    // /api/v1/query: exactly shop's requests, and nothing the reader asks for finds bank's.
    let (lines, err, code) = ask(&["--limit", "1000"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(request_ids(&lines), ids_of(&shop_sent), "{err}");
    assert!(
        lines.iter().all(|r| r["resource.meshlog.tenant"] == "shop"),
        "{lines:?}"
    );
    for needle in [
        vec!["--text", "bank"],
        vec!["--principal", BANK],
        vec!["--request-id", "bank-001"],
        vec!["--where", "resource.meshlog.tenant=bank"],
    ] {
        let (lines, err, code) = ask(&needle);
        assert_eq!(code, 0, "{needle:?}: {err}");
        assert!(lines.is_empty(), "{needle:?} found {lines:?}");
    }
    let (_, err, code) = ask(&["--tenant", "bank"]);
    assert_ne!(code, 0, "asking for another tenant is refused");
    assert!(err.contains("tenant"), "{err}");

    // /api/v1/aggregate: counts of shop's requests only.
    let (groups, err, code) = ask(&[
        "--group-by",
        "tenant",
        "--where",
        "event_name=meshlog.http.access",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["key"], "shop");
    assert_eq!(groups[0]["count"], shop_sent.len() as u64);
    let (groups, err, code) = ask(&[
        "--count",
        "--status",
        "5xx",
        "--where",
        "event_name=meshlog.http.access",
    ]);
    assert_eq!(code, 0, "{err}");
    let shop_5xx = shop_sent.iter().filter(|(_, s)| *s >= 500).count() as u64;
    assert_eq!(groups[0]["count"], shop_5xx, "{groups:?}");

    // /api/v1/tail: history from the start, then live traffic of both tenants.
    let mut tail_cmd = Command::new(collector_bin());
    tail_cmd.arg("tail").args(&remote).args([
        "--from",
        "start",
        "--where",
        "event_name=meshlog.http.access",
    ]);
    let tail = meshlog_e2e::Proc::spawn("meshlog tail", tail_cmd);
    let tailed = |want: usize| {
        wait_for(Duration::from_secs(30), || {
            let lines: Vec<Value> = tail
                .output()
                .lines()
                .filter(|l| l.starts_with('{'))
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            (lines.len() >= want).then_some(lines)
        })
        .unwrap_or_else(|| panic!("tail got fewer than {want}:\n{}", tail.output()))
    };
    tailed(shop_sent.len());
    bank_sent.extend(traffic(&bank, "bank", 12, 20));
    stored(36);
    // Bank's live records are stored (before this marker): a tail that leaked them would have
    // printed them before it.
    shop_sent.extend(traffic(&shop, "shop", 16, 20));
    let lines = tailed(shop_sent.len());
    assert_eq!(request_ids(&lines), ids_of(&shop_sent), "{}", tail.output());
    assert_eq!(lines.len(), shop_sent.len(), "each once: {}", tail.output());
    assert!(
        lines.iter().all(|r| r["resource.meshlog.tenant"] == "shop"),
        "{}",
        tail.output()
    );
    assert!(!tail.output().contains("bank-"), "{}", tail.output());
    assert_eq!(bank_sent.len(), 20);
    drop(tail);
    drop((shop, bank));
    assert!(collector.stop().success(), "{}", collector.output());
}
