//! `meshlog report` and `meshlog verify-report` with the real binary: traffic with gaps (one
//! explained by a delivery tally, one not), secrets the collector redacts, reads and refused
//! reads, an alert acknowledged with a note; the report's numbers are checked against what the
//! test sent, the HTML prints to PDF in headless Chromium, the report's record is in the log
//! (through the running collector and straight into the store), and one changed byte fails
//! `verify-report`.

use super::*;
use sha2::{Digest, Sha256};

fn attr(k: &str, v: Value) -> Value {
    json!({"key": k, "value": v})
}

fn sv(v: &str) -> Value {
    json!({ "stringValue": v })
}

fn iv(v: u64) -> Value {
    json!({ "intValue": v.to_string() })
}

const EMAIL: &str = "jane.doe@example.com";
const GITHUB: &str = "ghp_bciOx9gy1CJdObOIRpFqaDZeV7G5IfQHeVVE";

/// One VM's batch: records with sequences `seqs` (every third carries an e-mail address,
/// every fifth a GitHub token, unredacted: the collector redacts them), plus an optional
/// delivery tally reporting `lost` dropped, numbered `tally_seq`.
fn batch(vm: &str, service: &str, seqs: &[u64], lost: Option<(&str, u64)>) -> Vec<u8> {
    let now = now_ns();
    let mut records: Vec<Value> = seqs
        .iter()
        .map(|&i| {
            let mut attrs = vec![
                attr("http.request.method", sv("GET")),
                attr("http.response.status_code", iv(200)),
                attr("url.path", sv(&format!("/orders/{i}"))),
                attr("meshlog.request_id", sv(&format!("{vm}-{i}"))),
                attr("meshlog.sequence", iv(i)),
            ];
            if i % 3 == 0 {
                attrs.push(attr("app.contact", sv(&format!("write to {EMAIL}"))));
            }
            if i % 5 == 0 {
                attrs.push(attr("app.debug", sv(&format!("token {GITHUB}"))));
            }
            json!({
                "timeUnixNano": (now - 60_000_000_000 + i * 1_000_000).to_string(),
                "eventName": "meshlog.http.access",
                "attributes": attrs,
            })
        })
        .collect();
    if let Some((ranges, seq)) = lost {
        let n: u64 = ranges
            .split(',')
            .map(|r| {
                let (a, b) = r.split_once('-').unwrap();
                b.parse::<u64>().unwrap() - a.parse::<u64>().unwrap() + 1
            })
            .sum();
        records.push(json!({
            "timeUnixNano": now.to_string(),
            "eventName": "meshlog.delivery.tally",
            "attributes": [
                attr("meshlog.delivery.dropped_overflow", iv(n)),
                attr("meshlog.delivery.dropped_overflow.sequences", sv(ranges)),
                attr("meshlog.delivery.dropped_overflow.total", iv(n)),
                attr("meshlog.sequence", iv(seq)),
            ]
        }));
    }
    serde_json::to_vec(&json!({"resourceLogs": [{
        "resource": {"attributes": [
            attr("service.name", sv(service)),
            attr("meshlog.vm.id", sv(vm)),
        ]},
        "scopeLogs": [{"logRecords": records}]
    }]}))
    .unwrap()
}

/// A sampling tally of VM `vm`, numbered `seq`: 40 seen, 12 kept (30 adjusted), 25 not
/// selected, 1 over the rate cap, 2 health checks.
fn sampling_tally(vm: &str, service: &str, seq: u64) -> Vec<u8> {
    let now = now_ns();
    serde_json::to_vec(&json!({"resourceLogs": [{
        "resource": {"attributes": [attr("service.name", sv(service)), attr("meshlog.vm.id", sv(vm))]},
        "scopeLogs": [{"logRecords": [{
            "timeUnixNano": now.to_string(),
            "eventName": "meshlog.sampling.tally",
            "attributes": [
                attr("meshlog.sampling.interval.start_ns", iv(now - 10_000_000_000)),
                attr("meshlog.sampling.interval.end_ns", iv(now)),
                attr("meshlog.sampling.policy_version", sv("pv-demo")),
                attr("meshlog.sampling.seen", iv(40)),
                attr("meshlog.sampling.kept", iv(12)),
                attr("meshlog.sampling.kept.always", iv(4)),
                attr("meshlog.sampling.kept.adjusted", iv(30)),
                attr("meshlog.dropped.sampled", iv(25)),
                attr("meshlog.dropped.rate_cap", iv(1)),
                attr("meshlog.dropped.rate_cap.adjusted", iv(2)),
                attr("meshlog.dropped.health_check", iv(2)),
                attr("meshlog.sequence", iv(seq)),
            ]
        }]}]
    }]}))
    .unwrap()
}

/// One HTTP/1.1 request; returns status and body.
fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {JSON}\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
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

const TOKENS: [(&str, &str); 3] = [("ingest", "ingest"), ("reader", "read"), ("root", "admin")];

fn config(keys: &Path) -> String {
    let mut c = format!(
        "segment_max_bytes = 65536\n\n[integrity]\nsigning_key = \"{}\"\ncheckpoint_interval_s = 1\n\n\
         [detect.delivery_loss]\ngap_grace_s = 3600\n\n",
        keys.join("signing.key").display()
    );
    for (id, role) in TOKENS {
        c.push_str(&format!(
            "[[auth.principals]]\nid = \"{id}\"\nroles = [\"{role}\"]\n\n[[auth.tokens]]\nid = \"{id}\"\nsha256 = \"{}\"\n\n",
            hex::encode(Sha256::digest(format!("tok-{id}").as_bytes()))
        ));
    }
    c
}

/// The `chromium` to print with: `$CHROMIUM_BIN`, else /usr/bin/chromium.
fn chromium() -> PathBuf {
    let bin = std::env::var_os("CHROMIUM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        bin.exists(),
        "headless Chromium is needed to print the report to PDF: install it with \
         `source scripts/lib.sh && ensure_chromium` (Debian package chromium), or set CHROMIUM_BIN"
    );
    bin
}

/// The statement of a signed report: its `sha256` line.
fn signed_sha256(file: &Path) -> String {
    let out = run(&[
        "verify-report",
        file.to_str().unwrap(),
        "--public-key",
        file.parent()
            .unwrap()
            .join("keys/verifier.pub")
            .to_str()
            .unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("VALID"),
        "a report as written must verify: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("ok: content SHA-256 "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned()
}

#[test]
fn report_numbers_match_what_was_sent_it_prints_to_pdf_is_logged_and_one_changed_byte_fails() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let out = run(&["keygen", "--out", keys.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = dir.path().join("meshlog.toml");
    std::fs::write(&cfg, config(&keys)).unwrap();
    let data = dir.path().join("data");
    let cfg_s = cfg.to_str().unwrap();
    let data_s = data.to_str().unwrap();
    let from = meshlog_format::time::rfc3339(now_ns() - 3_600_000_000_000);
    let mut p = Proc::spawn(&[
        "serve",
        "--config",
        cfg_s,
        "--data-dir",
        data_s,
        "--listen",
        "127.0.0.1:0",
    ]);
    let addr = p.addr();

    // vm-a: 0..=29 without 10 and 11, which its delivery tally (sequence 30) reports dropped;
    // vm-b: 0..=19 without 15, which nothing explains.
    let a_seqs: Vec<u64> = (0..30).filter(|i| *i != 10 && *i != 11).collect();
    let b_seqs: Vec<u64> = (0..20).filter(|i| *i != 15).collect();
    for body in [
        batch("vm-a", "checkout", &a_seqs, None),
        batch("vm-a", "checkout", &[], Some(("10-11", 30))),
        batch("vm-b", "cart", &b_seqs, None),
        sampling_tally("vm-b", "cart", 20),
    ] {
        let (st, b) = http(addr, "POST", "/v1/logs", Some("tok-ingest"), &body);
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
    }
    // What the test knows it sent.
    let emails = a_seqs.iter().chain(&b_seqs).filter(|i| *i % 3 == 0).count() as u64;
    let tokens = a_seqs.iter().chain(&b_seqs).filter(|i| *i % 5 == 0).count() as u64;
    let with_secret = a_seqs
        .iter()
        .chain(&b_seqs)
        .filter(|i| *i % 3 == 0 || *i % 5 == 0)
        .count() as u64;

    // Reads: three by the reader, one without a token, one by the ingest principal (no read role).
    for q in ["service=checkout", "service=cart", "status=2xx"] {
        let (st, b) = http(
            addr,
            "GET",
            &format!("/api/v1/query?{q}"),
            Some("tok-reader"),
            b"",
        );
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
    }
    assert_eq!(http(addr, "GET", "/api/v1/query", None, b"").0, 401);
    assert_eq!(
        http(addr, "GET", "/api/v1/query", Some("tok-ingest"), b"").0,
        403
    );

    // The tally's loss fires delivery_loss; root acknowledges it with a note.
    let end = Instant::now() + Duration::from_secs(20);
    let alerts = loop {
        let (st, b) = http(addr, "GET", "/api/v1/alerts", Some("tok-root"), b"");
        assert_eq!(st, 200);
        let v: Value = serde_json::from_slice(&b).unwrap();
        let list = v["alerts"].as_array().unwrap().clone();
        if list.iter().any(|a| a["rule"] == "delivery_loss") {
            break list;
        }
        assert!(Instant::now() < end, "no delivery_loss alert: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let id = alerts
        .iter()
        .find(|a| a["rule"] == "delivery_loss")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_millis(1100));
    let (st, b) = http(
        addr,
        "POST",
        &format!("/api/v1/alerts/{id}/ack"),
        Some("tok-root"),
        br#"{"note":"sidecar buffer too small, raised"}"#,
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));

    // The HTML report, while serve runs: its record goes through the collector.
    let html_file = dir.path().join("report.html");
    let out = run(&[
        "report",
        "--config",
        cfg_s,
        "--data-dir",
        data_s,
        "--from",
        &from,
        "--to",
        "now",
        "--format",
        "html",
        "--out",
        html_file.to_str().unwrap(),
        "--server",
        &format!("http://{addr}"),
        "--token",
        "tok-ingest",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without --server the data directory is locked: refused, nothing written.
    let refused_file = dir.path().join("refused.json");
    let out = run(&[
        "report",
        "--config",
        cfg_s,
        "--data-dir",
        data_s,
        "--from",
        &from,
        "--to",
        "now",
        "--format",
        "json",
        "--out",
        refused_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--server"), "{err}");
    assert!(!refused_file.exists() && !dir.path().join("refused.partial").exists());
    assert!(p.terminate().success());

    // The JSON report, serve stopped: its record goes straight into the store.
    let json_file = dir.path().join("report.json");
    let out = run(&[
        "report",
        "--config",
        cfg_s,
        "--data-dir",
        data_s,
        "--from",
        &from,
        "--to",
        "now",
        "--format",
        "json",
        "--out",
        json_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let doc: Value = serde_json::from_slice(&std::fs::read(&json_file).unwrap()).unwrap();
    let r = &doc["report"];
    assert!(
        doc["signature"]
            .as_str()
            .unwrap()
            .starts_with("meshlog.report v1\n")
    );

    // Records per VM, with the gaps: one explained by the tally, one not.
    let vms = r["processing"]["vms"].as_array().unwrap();
    let vm = |name: &str| vms.iter().find(|v| v["vm"] == name).unwrap().clone();
    let (a, b) = (vm("vm-a"), vm("vm-b"));
    assert_eq!(vms.len(), 2, "{vms:?}");
    assert_eq!(
        a["records"],
        a_seqs.len() as u64 + 1,
        "vm-a records and its tally"
    );
    assert_eq!(
        b["records"],
        b_seqs.len() as u64 + 1,
        "vm-b records and its tally"
    );
    assert_eq!(b["coverage"]["last"], 20);
    let sampling = &r["processing"]["sampling"];
    assert_eq!(
        sampling,
        &json!([{"policy_version": "pv-demo", "tallies": 1, "seen": 40, "kept": 12,
                 "kept_adjusted": 30, "dropped_sampled": 25, "dropped_rate_cap": 1,
                 "dropped_health_check": 2}])
    );
    assert_eq!(a["coverage"]["gaps"], json!([[10, 11]]));
    assert_eq!(a["coverage"]["explained"], json!([[10, 11]]));
    assert_eq!(a["coverage"]["unexplained"], json!([]));
    assert_eq!(a["coverage"]["dropped_overflow_total"], 2);
    assert_eq!(b["coverage"]["gaps"], json!([[15, 15]]));
    assert_eq!(b["coverage"]["unexplained"], json!([[15, 15]]));
    assert_eq!(r["processing"]["delivery_tallies"], 1);
    assert_eq!(
        r["processing"]["evidence"]["complete"], false,
        "an unexplained gap makes the population incomplete"
    );
    let cp = &r["processing"]["evidence"]["checkpoints"][0]["checkpoint"];
    assert!(
        cp["size"].as_u64().unwrap() > 0 && cp["key_id"].is_string(),
        "{cp}"
    );

    // Redactions by kind, as sent.
    let red = &r["confidentiality"];
    assert_eq!(red["redactions_by_kind"]["email"], emails, "{red}");
    assert_eq!(red["redactions_by_kind"]["github_token"], tokens, "{red}");
    // The store says the same, kind by kind (access records also carry the caller's address,
    // which is redacted as `ip`).
    let stored: Vec<Value> = query_lines(&data)
        .into_iter()
        // Everything before the JSON report's own record (the HTML report's is in its period).
        .filter(|x| x["meshlog.report.format"] != "json")
        .collect();
    let mut by_kind = serde_json::Map::new();
    let mut redacted_records = 0u64;
    for x in &stored {
        let mut any = false;
        for (k, v) in x.as_object().unwrap() {
            if let Some(kind) = k.strip_prefix("meshlog.redacted.") {
                let n = by_kind.get(kind).and_then(Value::as_u64).unwrap_or(0);
                by_kind.insert(kind.to_owned(), json!(n + v.as_u64().unwrap()));
                any = true;
            }
        }
        redacted_records += u64::from(any);
    }
    assert_eq!(red["redactions_by_kind"], Value::Object(by_kind), "{red}");
    assert_eq!(red["records_redacted"], redacted_records, "{red}");
    assert!(redacted_records >= with_secret);
    assert_eq!(red["evidence"]["rows"], stored.len() as u64);
    assert_eq!(red["collector_side"]["enabled"], true);
    let versioned: u64 = ["policy_versions", "collector_policy_versions"]
        .iter()
        .filter_map(|k| red[*k].as_object())
        .flat_map(|m| m.values().filter_map(Value::as_u64))
        .sum();
    assert!(
        versioned >= with_secret,
        "every redacted record names its policy: {red}"
    );

    // Reads by principal and refusals.
    let acc = &r["access"];
    assert_eq!(acc["auth_enforced"], true);
    assert_eq!(acc["principals"].as_array().unwrap().len(), 3);
    let reader = acc["by_principal"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["principal"] == "reader")
        .unwrap_or_else(|| panic!("no reader in {acc}"));
    assert_eq!(reader["reads"], 3, "{reader}");
    assert_eq!(reader["refused"], 0);
    assert_eq!(acc["refusals_total"], 2, "{acc}");
    let outcomes: Vec<&str> = acc["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.contains(&"unauthenticated"), "{outcomes:?}");

    // The alert, acknowledged by root with the note, after at least a second.
    let mon = &r["monitoring"];
    assert_eq!(mon["fired"], alerts.len() as u64, "{mon}");
    let row = mon["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id.as_str())
        .unwrap();
    assert_eq!(row["rule"], "delivery_loss");
    assert_eq!(row["acknowledged_by"], "root");
    assert_eq!(row["note"], "sidecar buffer too small, raised");
    assert!(row["ack_s"].as_f64().unwrap() >= 1.0, "{row}");
    assert_eq!(mon["acknowledged"], 1);
    assert!(
        mon["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "delivery_loss")
    );

    // Integrity: verify passes, checkpoints were signed in the period.
    assert_eq!(r["integrity"]["intact"], true, "{}", r["integrity"]);
    assert!(
        r["integrity"]["checkpoints_in_period_total"]
            .as_u64()
            .unwrap()
            >= 1
    );

    // A tenant's report holds only that tenant's records: none here.
    let tenant_file = dir.path().join("tenant.json");
    let out = run(&[
        "report",
        "--config",
        cfg_s,
        "--data-dir",
        data_s,
        "--from",
        &from,
        "--to",
        "now",
        "--tenant",
        "nobody",
        "--format",
        "json",
        "--out",
        tenant_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: Value = serde_json::from_slice(&std::fs::read(&tenant_file).unwrap()).unwrap();
    assert_eq!(t["report"]["tenant"], "nobody");
    assert_eq!(t["report"]["processing"]["evidence"]["rows"], 0);
    assert_eq!(t["report"]["access"]["evidence"]["rows"], 0);
    assert!(
        t["report"]["access"]["evidence"]["population_query"]
            .as_str()
            .unwrap()
            .contains("--tenant nobody")
    );

    // Every report is in the log, with the hash its signature carries.
    let logged: Vec<String> = query_lines(&data)
        .into_iter()
        .filter(|x| x["event_name"] == "meshlog.report")
        .map(|x| x["meshlog.report.sha256"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        logged,
        [
            signed_sha256(&html_file),
            signed_sha256(&json_file),
            signed_sha256(&tenant_file)
        ]
    );
    let out = run(&[
        "verify",
        "--data-dir",
        data_s,
        "--public-key",
        keys.join("verifier.pub").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The HTML prints to a PDF in headless Chromium.
    let html = std::fs::read_to_string(&html_file).unwrap();
    for section in [
        "CC6.1",
        "CC6.7",
        "CC7.2",
        "Processing integrity",
        "Confidentiality",
        "Retention",
        "Integrity of the log",
        "<svg",
    ] {
        assert!(html.contains(section), "no {section} in the HTML");
    }
    assert!(
        !html.contains(EMAIL) && !html.contains(GITHUB),
        "a secret in the report"
    );
    let pdf = dir.path().join("report.pdf");
    let st = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
            &format!("--user-data-dir={}", dir.path().join("chromium").display()),
            &format!("--print-to-pdf={}", pdf.display()),
            &format!("file://{}", html_file.display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "chromium failed: {st}");
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF-"), "not a PDF");
    assert!(bytes.len() > 20_000, "PDF of {} bytes: blank?", bytes.len());

    // One changed byte, in the body or in the signature, fails verify-report.
    let public = keys.join("verifier.pub");
    let verify = |f: &Path| {
        let out = run(&[
            "verify-report",
            f.to_str().unwrap(),
            "--public-key",
            public.to_str().unwrap(),
        ]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (file, at) in [
        (&html_file, html.find("Records per VM").unwrap()),
        (&html_file, html.rfind("\u{2014} ").unwrap() + 20),
        (&json_file, 40),
    ] {
        let mut b = std::fs::read(file).unwrap();
        b[at] ^= 0x01;
        let bad = dir.path().join("tampered");
        std::fs::write(&bad, &b).unwrap();
        let (code, err) = verify(&bad);
        assert_eq!(
            code,
            Some(1),
            "a changed byte at {at} of {}: {err}",
            file.display()
        );
        assert!(err.contains("NOT valid"), "{err}");
    }
    // Another key: refused, naming the key.
    let other = dir.path().join("other");
    assert!(
        run(&["keygen", "--out", other.to_str().unwrap()])
            .status
            .success()
    );
    let out = run(&[
        "verify-report",
        html_file.to_str().unwrap(),
        "--public-key",
        other.join("verifier.pub").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    // No signing key: a usage error.
    std::fs::write(&cfg, "").unwrap();
    let out = run(&[
        "report",
        "--config",
        cfg_s,
        "--data-dir",
        data_s,
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-02",
        "--out",
        dir.path().join("x.html").to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("signing_key"));
}

#[test]
fn the_transmission_section_states_the_tls_in_force_and_when_certificates_expire() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    assert!(
        run(&["keygen", "--out", keys.to_str().unwrap()])
            .status
            .success()
    );
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.not_after = rcgen::date_time_ymd(2031, 6, 1);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    p.not_after = rcgen::date_time_ymd(2030, 1, 1);
    let cert = p.signed_by(&key, &rcgen::Issuer::new(ca, ca_key)).unwrap();
    let file = |name: &str, pem: String| {
        let f = dir.path().join(name);
        std::fs::write(&f, pem).unwrap();
        f
    };
    let (c, k, a) = (
        file("server.pem", cert.pem()),
        file("server.key", key.serialize_pem()),
        file("ca.pem", ca_cert.pem()),
    );
    let cfg = dir.path().join("meshlog.toml");
    std::fs::write(
        &cfg,
        format!(
            "[integrity]\nsigning_key = \"{}\"\n\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
             client_ca_file = \"{}\"\nmin_version = \"1.3\"\n",
            keys.join("signing.key").display(),
            c.display(),
            k.display(),
            a.display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let out_file = dir.path().join("r.json");
    let out = run(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--from",
        "1d",
        "--to",
        "now",
        "--format",
        "json",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    let t = &doc["report"]["transmission"];
    assert_eq!(t["tls"]["mutual"], true, "{t}");
    assert_eq!(t["tls"]["min_version"], "1.3");
    assert_eq!(t["tls"]["cert_expiry"]["not_after"], "2030-01-01T00:00:00Z");
    assert_eq!(
        t["tls"]["client_ca_expiry"]["not_after"],
        "2031-06-01T00:00:00Z"
    );
    let days = (1_893_456_000 - (now_ns() / 1_000_000_000) as i64).div_euclid(86_400);
    let got = t["tls"]["cert_expiry"]["days_left"].as_i64().unwrap();
    assert!((got - days).abs() <= 1, "{got} days left, want {days}");
    assert_eq!(t["listeners"].as_array().unwrap().len(), 2);
}
