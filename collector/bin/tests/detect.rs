//! Detection inside `meshlog serve` (docs/detection.md): a real collector with a low-threshold
//! `[detect.auth_failure_burst]` receives 401s over OTLP/HTTP; the alert is appended to the log
//! as a `meshlog.alert` record, resolves when the failures stop, and a restart while it fires
//! neither loses it nor raises it twice.

use super::*;

/// One access record with `status` from `client` to `service`.
fn access(service: &str, client: &str, status: i64, id: &str) -> Vec<u8> {
    use any_value::Value as V;
    let now = now_ns();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", V::StringValue(service.into()))],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "meshlog".into(),
                    ..InstrumentationScope::default()
                }),
                log_records: vec![LogRecord {
                    time_unix_nano: now,
                    observed_time_unix_nano: now,
                    severity_number: 13,
                    attributes: vec![
                        kv("http.request.method", V::StringValue("POST".into())),
                        kv("http.response.status_code", V::IntValue(status)),
                        kv("client.address", V::StringValue(client.into())),
                        kv("url.path", V::StringValue("/login".into())),
                        kv("meshlog.request_id", V::StringValue(id.into())),
                    ],
                    ..LogRecord::default()
                }],
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
    .encode_to_vec()
}

/// A minimal HTTP/1.1 request; returns status and body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    http_as(addr, None, method, path, JSON, body)
}

/// [`http`] with a bearer token and a content type.
fn http_as(
    addr: SocketAddr,
    token: Option<&str>,
    method: &str,
    path: &str,
    ctype: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ctype}\r\n{auth}\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, buf[head_end + 4..].to_vec())
}

/// `GET /api/v1/alerts`'s alerts.
fn api_alerts(addr: SocketAddr, query: &str) -> Vec<Value> {
    let (status, body) = http(addr, "GET", &format!("/api/v1/alerts{query}"), b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["alerts"].as_array().unwrap().clone()
}

/// The `meshlog.alert` records `meshlog query --where` lists.
fn alerts(dir: &Path) -> Vec<Value> {
    let out = run(&[
        "query",
        "--data-dir",
        dir.to_str().unwrap(),
        "--where",
        "event_name=meshlog.alert",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits until `alerts` holds `n` records.
fn wait_alerts(dir: &Path, n: usize, secs: u64) -> Vec<Value> {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let a = alerts(dir);
        if a.len() >= n || Instant::now() > end {
            return a;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

const CONFIG: &str = r#"
[detect.auth_failure_burst]
threshold = 5
window_s = 10
resolve_after_s = 2
"#;

#[test]
fn auth_failure_burst_fires_is_stored_resolves_and_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let conf = data.path().join("meshlog.toml");
    std::fs::write(&conf, format!("data_dir = {dir:?}\n{CONFIG}")).unwrap();
    let conf = conf.to_str().unwrap();
    let serve_args = ["serve", "--config", conf, "--listen", "127.0.0.1:0"];
    let mut serve = Proc::spawn(&serve_args);
    let addr = serve.addr();
    serve.wait_line("detection on");

    // Below the threshold: nothing.
    for i in 0..4 {
        let body = access("login", "203.0.113.9", 401, &format!("a{i}"));
        assert_eq!(http_post(addr, PROTO, &body).0, 200);
    }
    // Other clients' failures and successes do not count for this one.
    assert_eq!(
        http_post(addr, PROTO, &access("login", "198.51.100.1", 401, "o1")).0,
        200
    );
    assert_eq!(
        http_post(addr, PROTO, &access("login", "203.0.113.9", 200, "ok")).0,
        200
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(alerts(data.path()).is_empty(), "fired below the threshold");

    // The fifth failure fires.
    assert_eq!(
        http_post(addr, PROTO, &access("login", "203.0.113.9", 401, "a4")).0,
        200
    );
    let got = wait_alerts(data.path(), 1, 10);
    assert_eq!(got.len(), 1, "{got:?}");
    let a = &got[0];
    assert_eq!(a["meshlog.alert.rule"], "auth_failure_burst");
    assert_eq!(a["meshlog.alert.state"], "firing");
    // Ingest redaction keeps a client address's /24: the group is what was stored.
    assert_eq!(a["meshlog.alert.group"], "client=203.0.113.0");
    assert_eq!(a["meshlog.alert.count"], 5.0);
    let id = a["meshlog.alert.id"].as_str().unwrap().to_owned();

    // The API lists it as firing; /metrics counts it.
    let listed = api_alerts(addr, "?state=firing");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["rule"], "auth_failure_burst");
    assert_eq!(listed[0]["state"], "firing");
    assert!(api_alerts(addr, "?state=resolved").is_empty());
    let (status, body) = http(addr, "GET", "/api/v1/alerts?state=maybe", b"");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("\"parameter\":\"state\""));
    let (_, metrics) = http(addr, "GET", "/metrics", b"");
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("meshlog_alerts_total{rule=\"auth_failure_burst\",state=\"firing\"} 1"),
        "{metrics}"
    );

    // Acknowledged through the API: stored as a triage record naming the note.
    let path = format!("/api/v1/alerts/{id}/ack");
    let (status, body) = http(addr, "POST", &path, b"{}");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _) = http(
        addr,
        "POST",
        "/api/v1/alerts/0000000000000000/ack",
        br#"{"note":"x"}"#,
    );
    assert_eq!(status, 404);
    let (status, body) = http(addr, "POST", &path, br#"{"note":"looking into it"}"#);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let out = run(&[
        "query",
        "--data-dir",
        dir,
        "--where",
        "event_name=meshlog.alert.triage",
    ]);
    let triage = String::from_utf8(out.stdout).unwrap();
    let t: Value = serde_json::from_str(triage.lines().next().unwrap()).unwrap();
    assert_eq!(t["meshlog.alert.id"], id.as_str());
    assert_eq!(t["meshlog.alert.triage.action"], "acknowledge");
    assert_eq!(t["meshlog.alert.triage.note"], "looking into it");
    let listed = api_alerts(addr, "");
    assert_eq!(listed[0]["triage"][0]["note"], "looking into it");
    assert!(listed[0]["time_to_acknowledge_s"].as_f64().unwrap() > 0.0);

    // `meshlog alerts` lists the same, from the data directory and from the collector.
    let url = format!("http://{addr}");
    for args in [
        vec!["alerts", "--data-dir", dir],
        vec!["alerts", "--server", url.as_str(), "--state", "firing"],
    ] {
        let out = run(&args);
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
        assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
        assert_eq!(lines[0]["id"], id.as_str());
        assert_eq!(lines[0]["triage"][0]["action"], "acknowledge");
    }

    // Restart while it fires: the replay adopts it, nothing is raised again.
    assert_eq!(serve.terminate().code(), Some(0));
    let mut serve = Proc::spawn(&serve_args);
    let addr = serve.addr();
    serve.wait_line("detection on");
    std::thread::sleep(Duration::from_millis(1500));
    let got = alerts(data.path());
    assert_eq!(got.len(), 1, "raised twice after a restart: {got:?}");
    // Still failing after the restart: the same alert, not a new one.
    assert_eq!(
        http_post(addr, PROTO, &access("login", "203.0.113.9", 401, "a5")).0,
        200
    );

    // The failures stop: after the window and resolve_after_s, it resolves with the same id.
    let got = wait_alerts(data.path(), 2, 30);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["meshlog.alert.state"], "resolved");
    assert_eq!(got[1]["meshlog.alert.id"], id.as_str());
    let listed = api_alerts(addr, "");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["state"], "resolved");
    assert_eq!(serve.terminate().code(), Some(0));

    // A restart after the resolution raises nothing.
    let mut serve = Proc::spawn(&serve_args);
    serve.wait_line("detection on");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(alerts(data.path()).len(), 2);
    assert_eq!(serve.terminate().code(), Some(0));
}

#[test]
fn detection_can_be_switched_off() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let conf = data.path().join("meshlog.toml");
    std::fs::write(
        &conf,
        format!("data_dir = {dir:?}\n[detect]\nenabled = false\n{CONFIG}"),
    )
    .unwrap();
    let mut serve = Proc::spawn(&[
        "serve",
        "--config",
        conf.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let addr = serve.addr();
    serve.wait_line("detection off");
    for i in 0..8 {
        let body = access("login", "203.0.113.9", 401, &format!("a{i}"));
        assert_eq!(http_post(addr, PROTO, &body).0, 200);
    }
    std::thread::sleep(Duration::from_millis(2000));
    assert!(alerts(data.path()).is_empty());
    assert_eq!(serve.terminate().code(), Some(0));
}

/// The detection crate's Alertmanager helper, included by path (no crate dependency either way).
#[path = "../../detect/tests/detect/alertmanager.rs"]
mod alertmanager;
use alertmanager::Alertmanager;

fn start_alertmanager() -> Alertmanager {
    Alertmanager::start()
}

/// Alertmanager's alerts of `rule`.
fn am_alerts(am: &Alertmanager, rule: &str) -> Vec<Value> {
    am.alerts()
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == rule)
        .collect()
}

#[test]
fn a_real_alertmanager_receives_the_alert_and_its_resolution() {
    let am = start_alertmanager();
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let conf = data.path().join("meshlog.toml");
    std::fs::write(
        &conf,
        format!(
            "data_dir = {dir:?}\n{}\n[detect.notify]\nalertmanagers = [{:?}]\nresend_s = 1\n",
            // A window long enough to outlast a restart and Alertmanager's expiry.
            CONFIG.replace("window_s = 10", "window_s = 20"),
            am.url
        ),
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    let serve_args = ["serve", "--config", conf, "--listen", "127.0.0.1:0"];
    let mut serve = Proc::spawn(&serve_args);
    let addr = serve.addr();
    serve.wait_line("detection on");
    for i in 0..5 {
        let body = access("login", "203.0.113.9", 401, &format!("a{i}"));
        assert_eq!(http_post(addr, PROTO, &body).0, 200);
    }
    let stored = wait_alerts(data.path(), 1, 10);
    assert_eq!(stored.len(), 1, "{stored:?}");
    let id = stored[0]["meshlog.alert.id"].as_str().unwrap().to_owned();
    let end = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let a = am_alerts(&am, "auth_failure_burst");
        if !a.is_empty() || Instant::now() > end {
            break a;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        got.len(),
        1,
        "the alert did not reach Alertmanager: {got:?}"
    );
    assert_eq!(got[0]["annotations"]["alert_id"], id.as_str());
    assert_eq!(got[0]["labels"]["client"], "203.0.113.0");
    assert_eq!(got[0]["status"]["state"], "active");
    // A restart while it fires: the adopted alert is re-sent, so Alertmanager does not let it
    // expire (it ends 4 resends ahead unless re-sent), and it is not raised twice.
    assert_eq!(serve.terminate().code(), Some(0));
    let mut serve = Proc::spawn(&serve_args);
    serve.wait_line("detection on");
    std::thread::sleep(Duration::from_secs(6));
    let got = am_alerts(&am, "auth_failure_burst");
    assert_eq!(got.len(), 1, "the alert expired after the restart: {got:?}");
    assert_eq!(got[0]["status"]["state"], "active");
    assert_eq!(alerts(data.path()).len(), 1, "raised twice after a restart");
    // The failures stopped: resolved in the log, then gone from Alertmanager.
    let stored = wait_alerts(data.path(), 2, 45);
    assert_eq!(stored[1]["meshlog.alert.state"], "resolved");
    let end = Instant::now() + Duration::from_secs(20);
    while !am_alerts(&am, "auth_failure_burst").is_empty() {
        assert!(
            Instant::now() < end,
            "the resolution did not reach Alertmanager"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(serve.terminate().code(), Some(0));
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

#[test]
fn alerts_are_read_with_the_read_role_and_triaged_with_admin_only() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let conf = data.path().join("meshlog.toml");
    let mut auth = String::new();
    for (id, role) in [
        ("ingester", "ingest"),
        ("reader", "read"),
        ("oncall", "admin"),
    ] {
        auth.push_str(&format!(
            "[[auth.principals]]\nid = {id:?}\nroles = [{role:?}]\n\
             [[auth.tokens]]\nid = {id:?}\nsha256 = {:?}\n",
            sha256_hex(&format!("{id}-token"))
        ));
    }
    std::fs::write(&conf, format!("data_dir = {dir:?}\n{auth}{CONFIG}")).unwrap();
    let mut serve = Proc::spawn(&[
        "serve",
        "--config",
        conf.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let addr = serve.addr();
    serve.wait_line("detection on");
    for i in 0..5 {
        let body = access("login", "203.0.113.9", 401, &format!("a{i}"));
        let (st, _) = http_as(
            addr,
            Some("ingester-token"),
            "POST",
            "/v1/logs",
            PROTO,
            &body,
        );
        assert_eq!(st, 200);
    }
    assert_eq!(wait_alerts(data.path(), 1, 10).len(), 1);

    // Reading needs an identity with the read role.
    assert_eq!(http(addr, "GET", "/api/v1/alerts", b"").0, 401);
    let (st, body) = http_as(
        addr,
        Some("reader-token"),
        "GET",
        "/api/v1/alerts",
        JSON,
        b"",
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    let id = v["alerts"][0]["id"].as_str().unwrap().to_owned();

    // Triage needs admin: a reader is refused and nothing is stored.
    let path = format!("/api/v1/alerts/{id}/resolve");
    let note = br#"{"note":"false positive: load test"}"#;
    let (st, _) = http_as(addr, Some("reader-token"), "POST", &path, JSON, note);
    assert_eq!(st, 403);
    let triage = || {
        let out = run(&[
            "query",
            "--data-dir",
            dir,
            "--where",
            "event_name=meshlog.alert.triage",
        ]);
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    assert!(triage().is_empty());
    let (st, body) = http_as(addr, Some("oncall-token"), "POST", &path, JSON, note);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let t = triage();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0]["meshlog.alert.triage.action"], "resolve");
    assert_eq!(t[0]["meshlog.alert.triage.principal"], "oncall");
    assert_eq!(serve.terminate().code(), Some(0));
}
