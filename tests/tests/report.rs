//! End-to-end: the SOC 2 evidence report from real Envoy traffic. Requests through a real Envoy
//! running the meshlog filter (some carrying secrets), a collector outage in the middle (the
//! filter retries), then `meshlog report`: the records per VM, the sequence accounting and the
//! redactions match what was sent and what the store holds, no secret is in the report, and
//! `meshlog verify-report` accepts it. (The numbers for reads, refusals, alerts and gaps, the
//! PDF and tampering are proven in collector/bin/tests/report.rs.)

use meshlog_e2e::{Collector, Envoy, Proc, Sidecar, Upstream, collector_bin, send};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const UPSTREAM: &str = env!("CARGO_BIN_EXE_meshlog-upstream");
const GITHUB: &str = "ghp_bciOx9gy1CJdObOIRpFqaDZeV7G5IfQHeVVE";

fn serve(config: &Path, data: &Path, listen: &str) -> Collector {
    let mut cmd = Command::new(collector_bin());
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .arg("--listen")
        .arg(listen);
    let mut proc = Proc::spawn("collector", cmd);
    let addr = proc.listening_addr(Duration::from_secs(20));
    Collector {
        proc,
        addr,
        data_dir: data.to_owned(),
    }
}

fn meshlog(args: &[&str]) -> std::process::Output {
    Command::new(collector_bin()).args(args).output().unwrap()
}

#[test]
fn the_report_from_envoy_traffic_counts_every_request_redaction_and_stays_gapless_over_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let out = meshlog(&["keygen", "--out", keys.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.path().join("meshlog.toml");
    std::fs::write(
        &config,
        format!(
            "[integrity]\nsigning_key = \"{}\"\ncheckpoint_interval_s = 1\n",
            keys.join("signing.key").display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let from = meshlog_format::time::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            - 60_000_000_000,
    );

    let upstream = Upstream::start(UPSTREAM);
    let collector = serve(&config, &data, "127.0.0.1:0");
    let port = collector.addr.port();
    let envoy = Envoy::start(&Sidecar::new(upstream.addr.port(), port), 1);

    // Ten plain requests and five carrying a GitHub token in the query.
    let mut sent = 0;
    for i in 0..10 {
        assert_eq!(
            send(envoy.listen, "GET", &format!("/orders/{i}"), &[], b""),
            200
        );
        sent += 1;
    }
    for i in 0..5 {
        let path = format!("/login?user={i}&token={GITHUB}");
        assert_eq!(send(envoy.listen, "GET", &path, &[], b""), 200);
        sent += 1;
    }
    collector.wait_records(sent, &[&envoy]);

    // An outage: five requests while the collector is down; the filter retries them.
    collector.stop();
    for i in 0..5 {
        assert_eq!(
            send(envoy.listen, "GET", &format!("/outage/{i}"), &[], b""),
            200
        );
        sent += 1;
    }
    std::thread::sleep(Duration::from_secs(1));
    let collector = serve(&config, &data, &format!("127.0.0.1:{port}"));
    let stored = collector.wait_records(sent, &[&envoy]);
    collector.stop();

    let file = dir.path().join("report.json");
    let out = meshlog(&[
        "report",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--from",
        &from,
        "--to",
        "now",
        "--format",
        "json",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(GITHUB), "a secret in the report");
    let doc: Value = serde_json::from_str(&text).unwrap();
    let r = &doc["report"];

    // One VM (concurrency 1): every request sent, sequences 0..sent-1 with no gap.
    let vms = r["processing"]["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 1, "{vms:?}");
    let vm = &vms[0];
    let requests = stored
        .iter()
        .filter(|x| x["event_name"] == "meshlog.http.access")
        .count();
    assert_eq!(requests, sent);
    assert_eq!(vm["records"], sent as u64, "{vm}");
    assert_eq!(vm["coverage"]["first"], 0);
    assert_eq!(vm["coverage"]["last"], sent as u64 - 1);
    assert_eq!(vm["coverage"]["gapless"], true, "{vm}");
    assert_eq!(r["processing"]["evidence"]["complete"], true);
    assert_eq!(
        r["processing"]["by_event"]["meshlog.http.access"],
        sent as u64
    );

    // Redactions: as the store holds them, and at least the five tokens sent.
    let mut by_kind = serde_json::Map::new();
    for x in &stored {
        for (k, v) in x.as_object().unwrap() {
            if let Some(kind) = k.strip_prefix("meshlog.redacted.") {
                let n = by_kind.get(kind).and_then(Value::as_u64).unwrap_or(0);
                by_kind.insert(kind.to_owned(), (n + v.as_u64().unwrap()).into());
            }
        }
    }
    let red = &r["confidentiality"];
    assert_eq!(red["redactions_by_kind"], Value::Object(by_kind), "{red}");
    let secret_records = stored
        .iter()
        .filter(|x| x["url.path"].as_str().is_some_and(|p| p == "/login"))
        .filter(|x| {
            x.as_object()
                .unwrap()
                .keys()
                .any(|k| k.starts_with("meshlog.redacted.") && k != "meshlog.redacted.ip")
        })
        .count();
    assert_eq!(
        secret_records, 5,
        "each token request names what it redacted"
    );
    assert_eq!(
        red["policy_versions"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(Value::as_u64)
            .sum::<u64>(),
        sent as u64,
        "every request record names the filter's redaction policy: {red}"
    );
    assert_eq!(r["integrity"]["intact"], true);

    let out = meshlog(&[
        "verify-report",
        file.to_str().unwrap(),
        "--public-key",
        keys.join("verifier.pub").to_str().unwrap(),
    ]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("VALID"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(envoy);
}
