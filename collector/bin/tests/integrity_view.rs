//! What `/api/v1/integrity` and `/ui/integrity` show from a real `serve`: the last result of
//! its periodic verify (`[integrity] verify_interval_s`), intact and then naming a damaged
//! closed segment, the failure raising detection's integrity alert; a real deletion by the retention sweeper with its signed receipt; and that
//! the live verify judges nothing after the newest signed checkpoint.

use super::retention::{otlp_at, write_keys, write_old_segment};
use super::*;
use meshlog_format::receipt::DELETION_EVENT;

/// A GET with a bearer token; status and body.
fn get(addr: SocketAddr, token: Option<&str>, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// `[auth]` with a reader (token `reader-token`), an ingester (`ingester-token`) and a
/// scraper (`scraper-token`).
fn auth_section() -> String {
    let mut auth = String::new();
    for (id, role) in [
        ("ingester", "ingest"),
        ("reader", "read"),
        ("scraper", "metrics"),
    ] {
        auth.push_str(&format!(
            "[[auth.principals]]\nid = {id:?}\nroles = [{role:?}]\n\
             [[auth.tokens]]\nid = {id:?}\nsha256 = {:?}\n",
            sha256_hex(&format!("{id}-token"))
        ));
    }
    auth
}

/// `/api/v1/integrity` as the reader, polled until `pred` holds (15 s).
fn integrity_until(addr: SocketAddr, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = get(addr, Some("reader-token"), "/api/v1/integrity");
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < end, "waiting for {what}: {v:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn serve_verifies_its_store_up_to_the_signed_checkpoint_and_reports_a_damaged_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (signing, _) = write_keys(tmp.path());
    // A closed segment from before (chained, as every frame is), then `serve` on top of it.
    {
        let store = Store::open(&data, StoreOptions::default()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for id in ["old1", "old2", "old3"] {
            let Value::Object(r) = json!({
                "event_name": "meshlog.http.access",
                "observed_time_unix_nano": now_ns(),
                "resource.service.name": "checkout",
                "meshlog.request_id": id,
            }) else {
                unreachable!()
            };
            let frame = meshlog_format::frame::encode_frame([&r]).unwrap();
            rt.block_on(store.handle().append(frame)).unwrap();
        }
        rt.block_on(store.handle().rotate()).unwrap();
        store.close().unwrap();
    }
    let cfg = tmp.path().join("meshlog.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\n{}[integrity]\nsigning_key = {:?}\ncheckpoint_interval_s = 1\n\
             verify_interval_s = 1\n",
            data.to_str().unwrap(),
            auth_section(),
            signing.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut serve = Proc::spawn(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let addr = serve.addr();
    let (status, _) = get(addr, None, "/api/v1/integrity");
    assert_eq!(status, 401, "no token, no integrity view");
    // Traffic while it verifies: whatever is being written, the result stays intact.
    for i in 0..5 {
        let body = otlp_at(&[("billing", &[format!("new{i}").as_str()])], now_ns());
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST /v1/logs HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {JSON}\r\n\
             Authorization: Bearer ingester-token\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(&body).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    }
    let ok = integrity_until(addr, "an intact verify over all 8 frames", |v| {
        v["verify"]["stores"][0]["tree_size"].as_u64() >= Some(8)
    });
    let verify = &ok["verify"];
    assert_eq!(verify["outcome"], "intact", "{ok:#}");
    assert_eq!(verify["findings"], 0, "{ok:#}");
    assert_eq!(verify["stores"][0]["intact"], true, "{ok:#}");
    let (status, html) = get(addr, Some("reader-token"), "/ui/integrity");
    assert_eq!(status, 200);
    assert!(html.contains(r#"data-outcome="intact""#), "{html}");

    let (_, metrics) = get(addr, Some("scraper-token"), "/metrics");
    assert!(
        !metrics.contains(r#"rule="integrity",state="firing""#),
        "no alert while intact: {metrics}"
    );

    // One byte of the closed segment changes: the next verify names it.
    let seg = data.join(SEGMENTS_DIR).join(segment_file_name(1));
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let damaged_at = now_ns();
    let bad = integrity_until(addr, "a verify after the damage", |v| {
        v["verify"]["time_unix_nano"].as_u64() > Some(damaged_at)
    });
    let verify = &bad["verify"];
    assert_eq!(verify["outcome"], "not_intact", "{bad:#}");
    assert!(verify["findings"].as_u64().unwrap() >= 1, "{bad:#}");
    assert_eq!(
        verify["kinds"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["checkpoint_root_mismatch", "modified"],
        "the frame no longer hashes to what the next one chains to, nor the roots signed over it: {bad:#}"
    );
    assert_eq!(verify["stores"][0]["intact"], false, "{bad:#}");
    let (status, html) = get(addr, Some("reader-token"), "/ui/integrity");
    assert_eq!(status, 200);
    assert!(
        html.contains(r#"data-outcome="not_intact""#) && html.contains("NOT INTACT"),
        "{html}"
    );
    serve.wait_line("periodic verify: the store is NOT intact");
    // The failure is fed to detection's integrity rule: an alert fires (counted in /metrics;
    // the alert API reads the store, whose damaged segment it refuses to read past).
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = get(addr, Some("scraper-token"), "/metrics");
        assert_eq!(status, 200, "{body}");
        if body.contains(r#"meshlog_alerts_total{rule="integrity",state="firing"} 1"#) {
            break;
        }
        assert!(Instant::now() < end, "no integrity alert: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(serve.terminate().code(), Some(0));
}

#[test]
fn a_real_deletion_is_listed_with_its_signed_receipt() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (signing, _) = write_keys(tmp.path());
    let cfg = tmp.path().join("meshlog.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\n{}[integrity]\nsigning_key = {:?}\n\
             [retention]\ndefault_days = 400\nsweep_interval_s = 1\nsegment_max_age_s = 60\n\
             [[retention.classes]]\nname = \"short\"\ndays = 1\n\
             match = {{ \"service.name\" = \"checkout\" }}\n",
            data.to_str().unwrap(),
            auth_section(),
            signing.to_str().unwrap()
        ),
    )
    .unwrap();
    // A closed segment of the short class whose one record was observed in 2020: expired.
    write_old_segment(&data, &cfg, "short", "old1", 1_600_000_000 * 1_000_000_000);
    let mut serve = Proc::spawn(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let addr = serve.addr();
    serve.wait_line("deleted an expired segment");
    let v = integrity_until(addr, "the deletion", |v| {
        v["deletions"].as_array().is_some_and(|d| !d.is_empty())
    });
    assert_eq!(v["retention"], true, "{v:#}");
    let d = v["deletions"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{v:#}");
    let d = &d[0];
    assert_eq!(d["event_name"], DELETION_EVENT, "{d:#}");
    assert_eq!(d["meshlog.retention.class"], "short", "{d:#}");
    assert_eq!(
        d["meshlog.retention.segment"],
        segment_file_name(1),
        "{d:#}"
    );
    assert_eq!(d["meshlog.retention.segment.records"], 1, "{d:#}");
    let receipt = d["meshlog.retention.receipt"].as_str().unwrap();
    assert!(
        receipt.starts_with("meshlog.retention.deletion v1")
            && receipt.contains("\n\u{2014} example.com/meshlog "),
        "a signed note: {receipt}"
    );
    let classes: Vec<&str> = v["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["class"].as_str().unwrap())
        .collect();
    assert!(classes.contains(&"short"), "{v:#}");

    // The view shows the same deletion and its receipt (HTML-escaped as text).
    let (status, html) = get(addr, None, "/ui/integrity");
    assert!(status == 401 || status == 303, "unauthenticated: {status}");
    let (status, html_ok) = get(addr, Some("reader-token"), "/ui/integrity");
    assert_eq!(status, 200, "{html}");
    assert!(html_ok.contains("Deletions (1)"), "{html_ok}");
    let row = html_ok
        .split("<table class=\"deletions\">")
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    assert!(
        row.contains(&segment_file_name(1)) && row.contains("<td>short</td>"),
        "{row}"
    );
    assert!(
        row.contains("meshlog.retention.deletion v1")
            && row.contains("\u{2014} example.com/meshlog "),
        "the signed receipt: {row}"
    );
    assert_eq!(serve.terminate().code(), Some(0));
}

#[test]
fn the_live_verify_leaves_out_what_follows_the_newest_signed_checkpoint() {
    use meshlog_audit::verify::{verify_store, verify_store_to};
    use meshlog_store::ledger::IntegrityOptions;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let signer = std::sync::Arc::new(super::retention::signer());
    let opts = StoreOptions {
        integrity: IntegrityOptions {
            signer: Some(signer.clone()),
            checkpoint_interval: Duration::from_secs(3600),
        },
        ..StoreOptions::default()
    };
    let store = Store::open(&data, opts).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut last = Vec::new();
    for id in ["a", "b", "c"] {
        let Value::Object(r) =
            json!({"event_name": "meshlog.http.access", "meshlog.request_id": id})
        else {
            unreachable!()
        };
        let frame = meshlog_format::frame::encode_frame([&r]).unwrap();
        last = frame.bytes().to_vec();
        rt.block_on(store.handle().append(frame)).unwrap();
    }
    store.close().unwrap();
    let size = meshlog_query::complete::newest_checkpoint(&data)
        .expect("a checkpoint signed at close")
        .size;
    assert_eq!(size, 3);
    // A frame being written (half of it on disk) and a segment being created after it.
    let seg = data.join(SEGMENTS_DIR).join(segment_file_name(1));
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&last[..last.len() / 2]);
    std::fs::write(&seg, &bytes).unwrap();
    std::fs::write(data.join(SEGMENTS_DIR).join(segment_file_name(2)), b"MLS").unwrap();
    let keys = [signer.verifier()];
    let full = verify_store(&data, None, &keys, &mut |_, _| {}).unwrap();
    assert!(!full.intact, "the whole store has a torn tail: {full:?}");
    let live = verify_store_to(&data, None, &keys, Some(size), &mut |_, _| {}).unwrap();
    assert!(live.intact, "{:?}", live.findings);
    // Both checkpoints (the empty tree at open, three leaves at close) are checked.
    assert_eq!(
        (live.tree_size, live.checkpoints.verified),
        (3, 2),
        "{live:?}"
    );
    // Up to the checkpoint, a changed byte is still found.
    let at = bytes.len() - last.len() / 2 - 5;
    bytes[at] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let live = verify_store_to(&data, None, &keys, Some(size), &mut |_, _| {}).unwrap();
    assert!(!live.intact, "{live:?}");
}
