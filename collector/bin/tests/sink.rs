//! The ClickHouse sink against a real ClickHouse (the Debian `clickhouse-server`, started here
//! on free ports in its own directory): exactly once through a ClickHouse restart and through
//! a `kill -9` of the collector mid-export, and `meshlog sink check` naming a deleted, a
//! duplicated and an altered row.

use super::{Proc, http_post, otlp_json, run};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL: &str = "clickhouse-server not found: the ClickHouse sink tests start a real \
     ClickHouse. Install it with `source scripts/lib.sh && ensure_clickhouse` (Debian: apt-get \
     install clickhouse-server clickhouse-client), or run scripts/test, which does";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A ClickHouse server of our own: its directory, ports and process.
struct ClickHouse {
    dir: PathBuf,
    http_port: u16,
    child: Option<Child>,
}

impl ClickHouse {
    fn start(dir: &Path) -> ClickHouse {
        let found = Command::new("sh")
            .args(["-c", "command -v clickhouse-server"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(found, "{INSTALL}");
        let dir = dir.join("clickhouse");
        for d in ["data", "tmp", "user_files"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let http_port = free_port();
        let d = dir.display();
        std::fs::write(
            dir.join("users.xml"),
            "<yandex><profiles><default/></profiles><users><default><password></password>\
             <networks><ip>127.0.0.1</ip></networks><profile>default</profile>\
             <quota>default</quota></default></users><quotas><default/></quotas></yandex>",
        )
        .unwrap();
        std::fs::write(
            dir.join("config.xml"),
            format!(
                "<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/server.err.log</errorlog></logger>
  <tcp_port>{tcp}</tcp_port>
  <http_port>{http_port}</http_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
</yandex>",
                tcp = free_port(),
            ),
        )
        .unwrap();
        let mut ch = ClickHouse {
            dir,
            http_port,
            child: None,
        };
        ch.spawn();
        ch
    }

    fn spawn(&mut self) {
        let child = Command::new("clickhouse-server")
            .arg(format!(
                "--config-file={}",
                self.dir.join("config.xml").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(INSTALL);
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(60);
        while self.try_query("SELECT 1").is_none() {
            assert!(
                Instant::now() < end,
                "ClickHouse did not start in 60 s: {}",
                std::fs::read_to_string(self.dir.join("server.err.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (SIGTERM, then waits); its data stays for [`ClickHouse::spawn`].
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let end = Instant::now() + Duration::from_secs(30);
            while c.try_wait().unwrap().is_none() {
                if Instant::now() > end {
                    let _ = c.kill();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn try_query(&self, sql: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: ch\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{sql}",
            sql.len()
        )
        .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        if !head.starts_with("HTTP/1.1 200") {
            return None;
        }
        // Chunked bodies: keep the chunk contents only.
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            let mut out = String::new();
            let mut rest = body;
            while let Some((size, tail)) = rest.split_once("\r\n") {
                let n = usize::from_str_radix(size.trim(), 16).ok()?;
                if n == 0 {
                    break;
                }
                out.push_str(tail.get(..n)?);
                rest = tail.get(n + 2..)?;
            }
            return Some(out);
        }
        Some(body.to_owned())
    }

    fn query(&self, sql: &str) -> String {
        self.try_query(sql)
            .unwrap_or_else(|| panic!("ClickHouse refused {sql}"))
            .trim()
            .to_owned()
    }

    fn count(&self, sql_where: &str) -> u64 {
        self.query(&format!(
            "SELECT count() FROM meshlog.otel_logs {sql_where}"
        ))
        .parse()
        .unwrap()
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A configuration with the sink, its data directory beside it.
fn config(dir: &Path, ch: &ClickHouse, batch: u32) -> PathBuf {
    let path = dir.join("meshlog.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = \"{}\"\n[sink.clickhouse]\nurl = \"{}\"\ndatabase = \"meshlog\"\n\
             table = \"otel_logs\"\ncollector_id = \"c1\"\nbatch_max_records = {batch}\n\
             flush_interval_ms = 20\ntimeout_ms = 5000\n",
            dir.join("data").display(),
            ch.url()
        ),
    )
    .unwrap();
    path
}

fn sink_cmd(what: &str, config: &Path) -> (bool, String) {
    let out = run(&["sink", what, "--config", config.to_str().unwrap()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => (true, text),
        Some(1) => (false, text),
        other => panic!("sink {what}: exit {other:?}: {text}"),
    }
}

fn serve(config: &Path) -> (Proc, SocketAddr) {
    let mut p = Proc::spawn(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let addr = p.addr();
    (p, addr)
}

/// Posts `batches` batches of `per` records (batch `b`'s ids `pfx-b-i`); each is one leaf.
fn ingest(addr: SocketAddr, pfx: &str, batches: usize, per: usize) {
    for b in 0..batches {
        let ids: Vec<String> = (0..per).map(|i| format!("{pfx}-{b}-{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (status, body) = http_post(addr, "application/json", &otlp_json("shop", &refs));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let mut s = TcpStream::connect(addr).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: m\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .find(|l| l.starts_with(name) && l.contains("class=\"default\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Rows per leaf in ClickHouse, and the store's records per leaf (what `meshlog query` lists
/// can't say: the leaves are the frames, one per batch posted).
fn per_leaf(ch: &ClickHouse) -> Vec<(u64, u64)> {
    ch.query(
        "SELECT LeafIndex, count() FROM meshlog.otel_logs GROUP BY LeafIndex ORDER BY LeafIndex \
         FORMAT TSV",
    )
    .lines()
    .map(|l| {
        let (a, b) = l.split_once('\t').unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    })
    .collect()
}

/// No key twice, even before merges (no `FINAL`), and the same after `OPTIMIZE … FINAL`.
fn assert_once(ch: &ClickHouse, leaves: u64, per: u64) {
    let expect: Vec<(u64, u64)> = (0..leaves).map(|l| (l, per)).collect();
    assert_eq!(per_leaf(ch), expect, "rows per leaf = records per frame");
    let keys = ch.query("SELECT uniqExact(LeafIndex, RecordIndex) FROM meshlog.otel_logs");
    assert_eq!(keys, (leaves * per).to_string());
    assert_eq!(
        ch.count(""),
        leaves * per,
        "no duplicates, even before merges"
    );
    ch.query("OPTIMIZE TABLE meshlog.otel_logs FINAL");
    assert_eq!(ch.count("FINAL"), leaves * per);
    assert_eq!(ch.count(""), leaves * per);
}

#[test]
fn sink_exports_exactly_once_through_a_clickhouse_restart() {
    let d = tempfile::tempdir().unwrap();
    let mut ch = ClickHouse::start(d.path());
    let cfg = config(d.path(), &ch, 1000);
    let (ok, out) = sink_cmd("init", &cfg);
    assert!(
        ok && out.contains("created table meshlog.otel_logs on ClickHouse"),
        "{out}"
    );
    let (mut p, addr) = serve(&cfg);
    ingest(addr, "a", 20, 5);
    wait_for("100 rows in ClickHouse", 60, || ch.count("") == 100);
    wait_for("lag 0", 30, || {
        metric(addr, "meshlog_sink_lag_records") == Some(0.0)
    });

    // ClickHouse goes away: ingest goes on, the lag grows, nothing is lost.
    ch.stop();
    ingest(addr, "b", 20, 5);
    wait_for("lag 100 during the outage", 30, || {
        metric(addr, "meshlog_sink_lag_records") == Some(100.0)
    });
    wait_for("failed inserts counted", 30, || {
        metric(addr, "meshlog_sink_insert_failures_total").is_some_and(|n| n >= 1.0)
    });
    let q = run(&["query", "--config", cfg.to_str().unwrap(), "--count"]);
    assert!(
        String::from_utf8_lossy(&q.stdout).contains("{\"count\":200}"),
        "the local store keeps serving: {}",
        String::from_utf8_lossy(&q.stdout)
    );

    ch.spawn();
    wait_for("200 rows after the restart", 90, || ch.count("") == 200);
    wait_for("lag back to 0", 30, || {
        metric(addr, "meshlog_sink_lag_records") == Some(0.0)
    });
    assert_once(&ch, 40, 5);
    let (ok, out) = sink_cmd("check", &cfg);
    assert!(ok, "{out}");
    assert!(
        out.contains("RESULT: MATCH: every one of 200 rows"),
        "{out}"
    );
    assert!(p.terminate().success());
}

#[test]
fn sink_exports_exactly_once_through_a_collector_kill_mid_export() {
    let d = tempfile::tempdir().unwrap();
    let ch = ClickHouse::start(d.path());
    // Small batches: many inserts, so the kill lands between some of them.
    let cfg = config(d.path(), &ch, 7);
    assert!(sink_cmd("init", &cfg).0);
    // The records are stored first, by a collector without the sink, so the export is one
    // backlog of a frame per insert that the kill lands in (exporting while ingesting, the sink
    // keeps pace and may finish before any kill).
    let (leaves, per) = (300u64, 4u64);
    let plain = d.path().join("plain.toml");
    std::fs::write(
        &plain,
        format!("data_dir = \"{}\"\n", d.path().join("data").display()),
    )
    .unwrap();
    let (mut p0, addr0) = serve(&plain);
    ingest(addr0, "k", leaves as usize, per as usize);
    assert!(p0.terminate().success());
    let (mut p, _) = serve(&cfg);
    wait_for("part of the export", 60, || ch.count("") > 0);
    // kill -9 mid-export: nothing is flushed, the cursor is whatever was last fsync'd.
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    let at_kill = ch.count("");
    assert!(
        at_kill < leaves * per,
        "killed before the export finished: {at_kill}"
    );

    // What a crash between ClickHouse's acknowledgement and the cursor's fsync leaves: a
    // cursor behind what ClickHouse holds. Rewind it to the start (a kill before the first
    // cursor write leaves none: the same start).
    let cursor = d.path().join("data/sink/clickhouse.cursor");
    if let Ok(bytes) = std::fs::read(&cursor) {
        let mut c: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        c["next_leaf"] = 0.into();
        std::fs::write(&cursor, serde_json::to_vec(&c).unwrap()).unwrap();
    }

    let (mut p, addr) = serve(&cfg);
    wait_for("every row after the restart", 90, || {
        ch.count("") >= leaves * per
    });
    wait_for("lag 0", 30, || {
        metric(addr, "meshlog_sink_lag_records") == Some(0.0)
    });
    p.wait_line("already holds part of this batch");
    assert_once(&ch, leaves, per);
    let (ok, out) = sink_cmd("check", &cfg);
    assert!(ok, "{out}");
    assert!(p.terminate().success());
}

#[test]
fn sink_check_names_a_deleted_a_duplicated_and_an_altered_row_and_query_reads_clickhouse() {
    let d = tempfile::tempdir().unwrap();
    let ch = ClickHouse::start(d.path());
    let cfg = config(d.path(), &ch, 1000);
    assert!(sink_cmd("init", &cfg).0);
    let (mut p, addr) = serve(&cfg);
    ingest(addr, "c", 10, 3);
    wait_for("30 rows", 60, || ch.count("") == 30);
    assert!(p.terminate().success());
    let (ok, out) = sink_cmd("check", &cfg);
    assert!(ok, "a clean export matches: {out}");
    assert!(
        out.contains("log default: leaves 0..10, sink cursor 10: 30 records"),
        "{out}"
    );

    // The same filters over ClickHouse answer what they answer over the store.
    for filter in [
        &["--where", "url.path=/items/2"][..],
        &["--request-id", "c-3-1"],
        &["--service", "shop", "--status", "2xx"],
        &["--text", "ITEMS/1", "--method", "GET"],
        &["--service", "nope"],
    ] {
        let ids = |extra: &[&str]| -> Vec<String> {
            let mut args = vec![
                "query",
                "--config",
                cfg.to_str().unwrap(),
                "--format",
                "ndjson",
            ];
            args.extend_from_slice(extra);
            args.extend_from_slice(filter);
            let out = run(&args);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let mut ids: Vec<String> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v["meshlog.request_id"].as_str().unwrap().to_owned()
                })
                .collect();
            ids.sort();
            ids
        };
        let local = ids(&[]);
        let remote = ids(&["--clickhouse"]);
        assert_eq!(remote, local, "{filter:?}");
        if filter != ["--service", "nope"] {
            assert!(!local.is_empty(), "{filter:?}");
        }
    }
    // Over ClickHouse the order is time, then position: the newest 4 are the last records of
    // the last 4 batches (every batch has the same times).
    let out = run(&[
        "query",
        "--config",
        cfg.to_str().unwrap(),
        "--clickhouse",
        "--format",
        "ndjson",
        "--order",
        "newest",
        "--limit",
        "4",
    ]);
    let newest: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["meshlog.request_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(newest, ["c-9-2", "c-8-2", "c-7-2", "c-6-2"]);
    let out = run(&["query", "--config", cfg.to_str().unwrap(), "--clickhouse"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("collector c1 log default: complete for leaves 0..=9 as exported (30 rows)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let t = "meshlog.otel_logs";
    ch.query(&format!(
        "ALTER TABLE {t} DELETE WHERE LeafIndex = 2 AND RecordIndex = 1"
    ));
    ch.query(&format!(
        "INSERT INTO {t} SELECT * FROM {t} WHERE LeafIndex = 5 AND RecordIndex = 0"
    ));
    ch.query(&format!(
        "ALTER TABLE {t} UPDATE Body = 'forged' WHERE LeafIndex = 7 AND RecordIndex = 2"
    ));
    // Mutations run in the background: wait until they show.
    wait_for("the mutations", 30, || {
        ch.count("WHERE Body = 'forged'") == 1 && ch.count("") == 30
    });
    let (ok, out) = sink_cmd("check", &cfg);
    assert!(!ok, "exit 1: {out}");
    assert!(
        out.contains("MISSING   log default leaf 2 record 1:"),
        "deleted row named: {out}"
    );
    assert!(
        out.contains("DUPLICATE log default leaf 5 record 0: 2 copies"),
        "duplicated row named: {out}"
    );
    assert!(
        out.contains("ALTERED   log default leaf 7 record 2: Body differs"),
        "altered row named: {out}"
    );
    assert!(
        out.contains("RESULT: MISMATCH: 1 missing, 0 extra, 1 altered, 1 duplicated"),
        "{out}"
    );
    // A row the log never had.
    ch.query(&format!(
        "INSERT INTO {t} (Timestamp, CollectorId, Log, LeafIndex, RecordIndex) \
         VALUES (1764000000000000000, 'c1', '', 3, 9)"
    ));
    let (ok, out) = sink_cmd("check", &cfg);
    assert!(!ok);
    assert!(
        out.contains(
            "EXTRA     log default leaf 3 record 9: in ClickHouse, but the log has no such record"
        ),
        "{out}"
    );
}

/// The shipped alert rules load, and fire on a stalled sink but not on one that keeps up
/// (`promtool test rules` over deploy/prometheus/meshlog-sink.rules.test.yml).
#[test]
fn sink_alert_rules_fire_on_a_stalled_sink_and_only_then() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus");
    let out = Command::new("promtool")
        .args(["test", "rules", "meshlog-sink.rules.test.yml"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "promtool not found ({e}): apt-get install -y prometheus (or: source \
                 scripts/lib.sh && ensure_promtool)"
            )
        });
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS"));
}

/// Principals of the fleet test: (id, role, tenant); each one's token is `tok-<id>`.
const FLEET_PRINCIPALS: [(&str, &str, &str); 4] = [
    ("ingest-shop", "ingest", "shop"),
    ("ingest-bank", "ingest", "bank"),
    ("reader-shop", "read", "shop"),
    ("root", "admin", ""),
];

/// A collector `id` of the fleet: its own data directory, the shared table, the principals.
fn fleet_config(dir: &Path, ch: &ClickHouse, id: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let path = dir.join(format!("{id}.toml"));
    let mut c = format!(
        "data_dir = \"{}\"\n[sink.clickhouse]\nurl = \"{}\"\ndatabase = \"meshlog\"\n\
         table = \"otel_logs\"\ncollector_id = \"{id}\"\nflush_interval_ms = 20\n\
         timeout_ms = 5000\n\n",
        dir.join(id).display(),
        ch.url()
    );
    for (who, role, tenant) in FLEET_PRINCIPALS {
        c.push_str(&format!(
            "[[auth.principals]]\nid = \"{who}\"\nroles = [\"{role}\"]\n{}\n[[auth.tokens]]\n\
             id = \"{who}\"\nsha256 = \"{}\"\n\n",
            if tenant.is_empty() {
                String::new()
            } else {
                format!("tenant = \"{tenant}\"")
            },
            hex::encode(Sha256::digest(format!("tok-{who}").as_bytes()))
        ));
    }
    std::fs::write(&path, c).unwrap();
    path
}

/// A request as `who` (bearer `tok-<who>`): status and body.
fn request_as(
    addr: SocketAddr,
    who: &str,
    method: &str,
    target: &str,
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer tok-{who}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    // Chunked bodies: the tests only look for substrings and parse JSON bodies, which axum
    // sends with a length.
    (status, body.to_owned())
}

/// `GET target` as `who`, the body as JSON.
fn api_as(addr: SocketAddr, who: &str, target: &str) -> (u16, serde_json::Value) {
    let (st, body) = request_as(addr, who, "GET", target, b"");
    (
        st,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// The request ids of an API answer's records, sorted.
fn request_ids(body: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = body["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records: {body}"))
        .iter()
        .map(|r| r["meshlog.request_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Ids `pfx-b-i` for `batches` × `per`, sorted.
fn expected_ids(pfxs: &[&str], batches: usize, per: usize) -> Vec<String> {
    let mut v: Vec<String> = pfxs
        .iter()
        .flat_map(|p| (0..batches).flat_map(move |b| (0..per).map(move |i| format!("{p}-{b}-{i}"))))
        .collect();
    v.sort();
    v
}

#[test]
fn the_query_api_and_dashboard_of_one_collector_search_the_fleet_in_clickhouse_per_tenant() {
    let d = tempfile::tempdir().unwrap();
    let ch = ClickHouse::start(d.path());
    let cfg1 = fleet_config(d.path(), &ch, "c1");
    let cfg2 = fleet_config(d.path(), &ch, "c2");
    assert!(sink_cmd("init", &cfg1).0);
    let (mut p1, a1) = serve(&cfg1);
    let (mut p2, a2) = serve(&cfg2);
    // Each collector stores shop and bank records (the tenant comes from the ingest token).
    for (addr, c) in [(a1, "c1"), (a2, "c2")] {
        for (who, t) in [("ingest-shop", "shop"), ("ingest-bank", "bank")] {
            for b in 0..3 {
                let ids: Vec<String> = (0..4).map(|i| format!("{c}{t}-{b}-{i}")).collect();
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                let (st, body) =
                    request_as(addr, who, "POST", "/v1/logs", &otlp_json("shop", &refs));
                assert_eq!(st, 200, "{body}");
            }
        }
    }
    let records = "ServiceName = 'shop'";
    wait_for("48 shop rows", 60, || {
        ch.count(&format!("WHERE {records}")) == 48
    });

    let fleet = "/api/v1/query?source=clickhouse&service=shop&limit=1000";
    // Admin through c1 sees both collectors' records of every tenant.
    let (st, body) = api_as(a1, "root", fleet);
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        request_ids(&body),
        expected_ids(&["c1shop", "c1bank", "c2shop", "c2bank"], 3, 4)
    );
    let collectors = body["completeness"]["collectors"].as_array().unwrap();
    let ids: Vec<&str> = collectors
        .iter()
        .map(|c| c["collector_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c1", "c2"], "{body}");
    assert_eq!(body["completeness"]["source"], "clickhouse");
    assert_eq!(collectors[0]["this_collector"], true);
    assert!(
        collectors[0]["committed_leaves"].as_u64().unwrap() >= 6,
        "{body}"
    );
    assert_eq!(collectors[1]["this_collector"], false);
    assert!(collectors[1].get("committed_leaves").is_none(), "{body}");

    // The shop reader, through either collector, sees the shop records of both, and only them.
    for addr in [a1, a2] {
        let (st, body) = api_as(addr, "reader-shop", fleet);
        assert_eq!(st, 200, "{body}");
        assert_eq!(
            request_ids(&body),
            expected_ids(&["c1shop", "c2shop"], 3, 4)
        );
        let rows: u64 = body["completeness"]["collectors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["rows"].as_u64().unwrap())
            .sum();
        // The counts are the shop tenant's rows (its 24 records and the access records of
        // its reads), never the bank's 24.
        assert!(rows >= 24 && rows <= ch.count("") - 24, "{body}");
    }
    // Its own collector alone holds half of them.
    let (st, body) = api_as(a1, "reader-shop", "/api/v1/query?service=shop&limit=1000");
    assert_eq!(st, 200, "{body}");
    assert_eq!(request_ids(&body), expected_ids(&["c1shop"], 3, 4));
    // Another tenant is refused, as on the local store; so are the fleet's unknown parts.
    let (st, body) = api_as(a1, "reader-shop", &format!("{fleet}&tenant=bank"));
    assert_eq!(
        (st, body["parameter"].as_str()),
        (403, Some("tenant")),
        "{body}"
    );
    let (st, body) = api_as(a1, "root", "/api/v1/aggregate?source=clickhouse&count=true");
    assert_eq!(
        (st, body["parameter"].as_str()),
        (400, Some("source")),
        "{body}"
    );
    let (st, body) = api_as(a1, "root", "/api/v1/query?source=elsewhere");
    assert_eq!(
        (st, body["parameter"].as_str()),
        (400, Some("source")),
        "{body}"
    );
    let (st, _) = api_as(a1, "ingest-shop", fleet);
    assert_eq!(st, 403, "an ingest principal may not read");

    // The dashboard's search: the source picker, both collectors' shop rows, no bank row.
    let (st, html) = request_as(
        a2,
        "reader-shop",
        "GET",
        "/ui/search?source=clickhouse&service=shop&limit=1000",
        b"",
    );
    assert_eq!(st, 200, "{html}");
    assert!(
        html.contains("<option value=\"clickhouse\" selected"),
        "{html}"
    );
    assert!(
        html.contains("Fleet (ClickHouse meshlog.otel_logs)"),
        "{html}"
    );
    for id in ["c1shop-0-0", "c2shop-2-3"] {
        assert!(html.contains(&format!("data-request-id=\"{id}\"")), "{id}");
    }
    assert!(!html.contains("bank-"), "no other tenant's row");
    assert!(html.contains("data-collector=\"c1\"") && html.contains("data-collector=\"c2\""));
    assert!(html.contains("(this collector)"), "{html}");
    // Without source it is this collector's store, as before.
    let (st, html) = request_as(a2, "reader-shop", "GET", "/ui/search?service=shop", b"");
    assert_eq!(st, 200);
    assert!(html.contains("data-request-id=\"c2shop-0-0\"") && !html.contains("c1shop-"));

    // Every fleet read was audited on the collector that answered it, with its rows.
    let (st, body) = api_as(
        a1,
        "root",
        "/api/v1/query?limit=1000&where=event_name%3Dmeshlog.access\
         &where=meshlog.access.parameter.source%3Dclickhouse",
    );
    assert_eq!(st, 200, "{body}");
    let reads: Vec<(String, String, String, u64)> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["meshlog.access.principal"].as_str().unwrap().to_owned(),
                r["meshlog.access.endpoint"].as_str().unwrap().to_owned(),
                r["meshlog.access.outcome"].as_str().unwrap().to_owned(),
                r["meshlog.access.rows"].as_u64().unwrap(),
            )
        })
        .collect();
    for want in [
        ("root".into(), "/api/v1/query".into(), "ok".into(), 48),
        (
            "reader-shop".into(),
            "/api/v1/query".into(),
            "ok".into(),
            24,
        ),
        (
            "reader-shop".into(),
            "/api/v1/query".into(),
            "permission_denied".into(),
            0,
        ),
        (
            "root".into(),
            "/api/v1/aggregate".into(),
            "bad_request".into(),
            0,
        ),
        // A principal without the read role is refused before it is named.
        (
            "-".into(),
            "/api/v1/query".into(),
            "permission_denied".into(),
            0,
        ),
    ] {
        assert!(reads.contains(&want), "{want:?} in {reads:?}");
    }
    assert!(p1.terminate().success());
    assert!(p2.terminate().success());
}
