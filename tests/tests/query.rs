//! End-to-end: varied requests through a real Envoy running the meshlog filter, stored by the
//! real collector; then each `meshlog query` filter, and the collector's `GET /api/v1/query`,
//! returns exactly the records it should (checked against what was sent), counts add up, the
//! result says it is complete (per VM gapless), and bad queries get a 400 naming the parameter.
//! (Tenant scoping, pagination and the audit of reads are proven in collector/bin/tests/query.rs.)

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
