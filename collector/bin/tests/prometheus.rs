//! A real Prometheus (Debian `prometheus`; scripts/test installs it) scrapes a real `meshlog
//! serve`, and PromQL through Prometheus' HTTP API answers what was sent: the records stored,
//! the Merkle tree's leaves, the last signed checkpoint.

use super::*;
use std::net::TcpListener;

/// A Prometheus server scraping `target` every second, in its own directory and port.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        let version = Command::new("prometheus").arg("--version").output();
        assert!(
            version.is_ok_and(|o| o.status.success()),
            "prometheus not found: apt-get install -y prometheus (or: source scripts/lib.sh && \
             ensure_prometheus)"
        );
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: meshlog\n    metrics_path: /metrics\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        // Prometheus does not say which port it got for :0, so one is picked free here.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Prometheus { child, addr, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant PromQL query through `/api/v1/query`: the result's samples as (labels,
    /// value), or `None` while Prometheus is not answering yet.
    fn query(&self, promql: &str) -> Option<Vec<(Value, String)>> {
        let mut s = TcpStream::connect(self.addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // HTTP/1.0: the answer comes whole, never chunked.
        write!(
            s,
            "GET /api/v1/query?query={} HTTP/1.0\r\nHost: {}\r\n\r\n",
            percent_encode(promql),
            self.addr
        )
        .ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        let (head, body) = buf.split_once("\r\n\r\n")?;
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{buf}"
        );
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["status"], "success", "{body}");
        Some(
            v["data"]["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["metric"].clone(),
                        r["value"][1].as_str().unwrap().to_owned(),
                    )
                })
                .collect(),
        )
    }

    /// Polls `promql` until its one sample's value is `want` (Prometheus scrapes every second).
    fn wait_for(&self, promql: &str, want: &str) -> Value {
        let end = Instant::now() + Duration::from_secs(60);
        let mut last = None;
        while Instant::now() < end {
            match self.query(promql) {
                Some(r) if r.len() == 1 && r[0].1 == want => return r[0].0.clone(),
                got => last = got,
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "{promql}: wanted {want}, last answer {last:?}\nprometheus log:\n{}",
            self.log()
        );
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_serve_and_promql_counts_the_records_sent() {
    let data = tempfile::tempdir().unwrap();
    let keys = data.path().join("keys");
    let out = run(&[
        "keygen",
        "--name",
        "prom.test",
        "--out",
        keys.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stdout_of(&out));
    let key = keys.join(meshlog_tlog::keys::SIGNING_KEY_FILE);
    let cfg = data.path().join("m.toml");
    std::fs::write(
        &cfg,
        format!("[integrity]\nsigning_key = {:?}\n", key.to_str().unwrap()),
    )
    .unwrap();
    let store = data.path().join("store");
    let mut p = Proc::spawn(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        store.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let addr = p.addr();
    // Three batches of 2, 3 and 5 records, and one refused.
    let batches: [&[&str]; 3] = [
        &["p1", "p2"],
        &["p3", "p4", "p5"],
        &["p6", "p7", "p8", "p9", "p10"],
    ];
    for ids in batches {
        assert_eq!(http_post(addr, JSON, &otlp_json("prom", ids)).0, 200);
    }
    assert_eq!(http_post(addr, JSON, b"{").0, 400);

    let prom = Prometheus::start(addr);
    prom.wait_for("up{job=\"meshlog\"}", "1");
    let labels = prom.wait_for(
        "sum by (transport) (meshlog_ingest_records_total{outcome=\"stored\"})",
        "10",
    );
    assert_eq!(labels["transport"], "http");
    prom.wait_for(
        "meshlog_ingest_batches_total{transport=\"http\",outcome=\"stored\"}",
        "3",
    );
    prom.wait_for("meshlog_refusals_total{reason=\"malformed\"}", "1");
    // One leaf per batch.
    prom.wait_for("meshlog_tree_size{class=\"default\"}", "3");
    // The store signed a checkpoint at start: within the last ten minutes.
    prom.wait_for(
        "time() - meshlog_last_checkpoint_timestamp_seconds{class=\"default\"} < bool 600",
        "1",
    );

    // More records arrive; the next scrapes see them.
    assert_eq!(http_post(addr, JSON, &otlp_json("prom", &["p11"])).0, 200);
    prom.wait_for(
        "sum(meshlog_ingest_records_total{outcome=\"stored\"})",
        "11",
    );
    drop(prom);
    assert!(p.terminate().success());
    assert_eq!(query_ids(&store).len(), 11);
}
