//! The query benchmark (`scripts/bench`, QUERY=1): builds a store of `QUERY_RECORDS` records
//! (default 10 000 000) spread over one day, then asks meshlog-query the questions — one
//! trace id, one request id, the 5xx of one service in one hour, counts per status per minute
//! over the day, a text search — with its index and as a full scan (`--no-index`), and, when
//! `CLICKHOUSE_CLIENT` and `CLICKHOUSE_PORT` name a running server, ClickHouse holding the same
//! records (`CLICKHOUSE_TABLE`, loaded from `<dir>/records.tsv` by scripts/bench). Prints a
//! Markdown table of median latencies and ratios, and the peak RSS of this process.
//!
//! Usage: `meshlog-query-bench <dir>` (the store is made in `<dir>/store` unless it exists;
//! segments of `QUERY_SEGMENT_MB`, default 64, the newest being the active one, always scanned).

use meshlog_format::frame::{FrameBuilder, segment_header};
use meshlog_format::layout;
use meshlog_query::params::QueryParams;
use meshlog_query::scan::ScanOptions;
use serde_json::{Map, Value, json};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const DAY_START_NS: u64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z
const DAY_NS: u64 = 86_400_000_000_000;
const FRAME_RECORDS: u64 = 200;
/// Segment size: `QUERY_SEGMENT_MB` (default 64, the collector's default).
fn segment_bytes() -> u64 {
    std::env::var("QUERY_SEGMENT_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(64)
        << 20
}

/// A small deterministic generator (xorshift64*), so both stores hold the same records.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn record(i: u64, n: u64, rng: &mut Rng) -> Map<String, Value> {
    let r = rng.next();
    let status = match r % 100 {
        0..=1 => 500 + (r >> 8) % 4,
        2..=6 => 400 + (r >> 8) % 5,
        _ => 200,
    };
    let service = format!("svc-{}", (r >> 16) % 20);
    let vm = format!("vm-{:02}", i % 8);
    let agent = if i % 100_000 == 50_000 {
        "Mozilla/5.0 NeedleBot/1.0"
    } else {
        "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0"
    };
    let Value::Object(m) = json!({
        "time_unix_nano": DAY_START_NS + i * (DAY_NS / n.max(1)),
        "observed_time_unix_nano": DAY_START_NS + i * (DAY_NS / n.max(1)) + 1_000_000,
        "severity_number": if status >= 500 { 17 } else if status >= 400 { 13 } else { 9 },
        "event_name": "meshlog.http.access",
        "trace_id": format!("{:016x}{:016x}", i / 4, (i / 4).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        "span_id": format!("{:016x}", r),
        "resource.service.name": service,
        "resource.k8s.namespace.name": format!("ns-{}", (r >> 16) % 5),
        "resource.meshlog.vm.id": vm,
        "http.request.method": if r.is_multiple_of(7) { "POST" } else { "GET" },
        "http.response.status_code": status,
        "http.route": format!("/api/v1/items{}/{{id}}", (r >> 24) % 50),
        "url.path": format!("/api/v1/items{}/{}", (r >> 24) % 50, (r >> 32) % 100_000),
        "client.address": format!("10.{}.{}.0", (r >> 40) % 16, (r >> 44) % 256),
        "meshlog.peer.principal": format!("spiffe://cluster.local/ns/shop/sa/caller-{}", (r >> 52) % 30),
        "meshlog.request_id": format!("{:08x}-{:04x}-4000-8000-{:012x}", i, r & 0xffff, i ^ (r >> 16)),
        "meshlog.sequence": i / 8,
        "meshlog.duration_ns": 1_000_000 + (r >> 20) % 50_000_000,
        "user_agent.original": agent,
    }) else {
        unreachable!()
    };
    m
}

/// The ClickHouse row: otel_logs' columns, attributes as parallel key/value arrays.
fn tsv_row(m: &Map<String, Value>, out: &mut impl Write) -> std::io::Result<()> {
    let s = |k: &str| {
        m.get(k)
            .map(|v| meshlog_query::filter::value_str(v).into_owned())
            .unwrap_or_default()
    };
    let t = m.get("time_unix_nano").and_then(Value::as_u64).unwrap_or(0);
    let (res_k, res_v): (Vec<String>, Vec<String>) = m
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("resource.").map(|k| {
                (
                    k.to_owned(),
                    meshlog_query::filter::value_str(v).into_owned(),
                )
            })
        })
        .unzip();
    let (log_k, log_v): (Vec<String>, Vec<String>) = m
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("resource.")
                && !matches!(
                    k.as_str(),
                    "time_unix_nano"
                        | "observed_time_unix_nano"
                        | "severity_number"
                        | "trace_id"
                        | "span_id"
                        | "event_name"
                )
        })
        .map(|(k, v)| (k.clone(), meshlog_query::filter::value_str(v).into_owned()))
        .unzip();
    let arr = |v: &[String]| {
        let items: Vec<String> = v
            .iter()
            .map(|x| format!("'{}'", x.replace('\'', "\\'")))
            .collect();
        format!("[{}]", items.join(","))
    };
    writeln!(
        out,
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        t / 1_000_000_000,
        t,
        s("trace_id"),
        s("span_id"),
        s("severity_number"),
        s("resource.service.name"),
        s("event_name"),
        arr(&res_k),
        arr(&res_v),
        arr(&log_k),
        arr(&log_v)
    )
}

/// Writes `n` records into `store/segments` (and `records.tsv` for ClickHouse).
fn build(dir: &Path, n: u64) -> std::io::Result<()> {
    let store = dir.join("store");
    std::fs::create_dir_all(layout::segments_dir(&store))?;
    let mut tsv = BufWriter::new(std::fs::File::create(dir.join("records.tsv"))?);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut seq = 1u64;
    let mut seg = BufWriter::new(std::fs::File::create(layout::segment_path(&store, seq))?);
    seg.write_all(&segment_header())?;
    let mut seg_len = 8u64;
    let mut i = 0;
    let max = segment_bytes();
    while i < n {
        let mut b = FrameBuilder::new(u64::MAX, None).map_err(std::io::Error::other)?;
        for _ in 0..FRAME_RECORDS.min(n - i) {
            let r = record(i, n, &mut rng);
            tsv_row(&r, &mut tsv)?;
            b.push(&r).map_err(std::io::Error::other)?;
            i += 1;
        }
        let f = b.finish().map_err(std::io::Error::other)?;
        if seg_len + f.bytes().len() as u64 > max {
            seg.flush()?;
            seq += 1;
            seg = BufWriter::new(std::fs::File::create(layout::segment_path(&store, seq))?);
            seg.write_all(&segment_header())?;
            seg_len = 8;
        }
        seg.write_all(f.bytes())?;
        seg_len += f.bytes().len() as u64;
    }
    seg.flush()?;
    tsv.flush()
}

/// One question, in both systems' words.
struct Question {
    name: &'static str,
    params: Vec<(&'static str, String)>,
    clickhouse: String,
}

fn questions(n: u64) -> Vec<Question> {
    let i = n / 2 + 3;
    let trace = format!(
        "{:016x}{:016x}",
        i / 4,
        (i / 4).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    );
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut rid = String::new();
    for k in 0..=i {
        let r = record(k, n, &mut rng);
        if k == i {
            rid = r["meshlog.request_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        }
    }
    let hour = DAY_START_NS + 12 * 3_600_000_000_000;
    let rfc = meshlog_format::time::rfc3339;
    let attr = |k: &str| format!("LogAttributes.value[indexOf(LogAttributes.key, '{k}')]");
    vec![
        Question {
            name: "one trace id",
            params: vec![("trace-id", trace.clone())],
            clickhouse: format!("SELECT * FROM otel_logs WHERE TraceId = '{trace}'"),
        },
        Question {
            name: "one request id",
            params: vec![("request-id", rid.clone())],
            clickhouse: format!(
                "SELECT * FROM otel_logs WHERE {} = '{rid}'",
                attr("meshlog.request_id")
            ),
        },
        Question {
            name: "5xx of one service in one hour",
            params: vec![
                ("service", "svc-3".into()),
                ("status", "5xx".into()),
                ("since", rfc(hour)),
                ("until", rfc(hour + 3_600_000_000_000)),
                ("count", "true".into()),
            ],
            clickhouse: format!(
                "SELECT count() FROM otel_logs WHERE ServiceName = 'svc-3' AND Timestamp >= {} \
                 AND Timestamp < {} AND {} LIKE '5%'",
                hour / 1_000_000_000,
                hour / 1_000_000_000 + 3600,
                attr("http.response.status_code")
            ),
        },
        Question {
            name: "counts per status per minute, one day",
            params: vec![("group-by", "status".into()), ("every", "1m".into())],
            clickhouse: format!(
                "SELECT toStartOfMinute(toDateTime(Timestamp)) AS m, {} AS s, count() FROM \
                 otel_logs GROUP BY m, s",
                attr("http.response.status_code")
            ),
        },
        Question {
            name: "text search (\" NeedleBot/\")",
            params: vec![("text", " NeedleBot/".into())],
            clickhouse: "SELECT * FROM otel_logs WHERE arrayExists(v -> \
                         positionCaseInsensitive(v, ' NeedleBot/') > 0, LogAttributes.value)"
                .into(),
        },
    ]
}

/// Runs `q` against the store; returns (ms, rows).
fn meshlog(store: &Path, q: &Question, no_index: bool) -> (f64, u64) {
    let params = QueryParams::from_params(q.params.iter().map(|(k, v)| (*k, v.as_str())), 0)
        .unwrap_or_else(|e| panic!("{}: {e}", q.name));
    let opts = ScanOptions {
        no_index,
        ..ScanOptions::default()
    };
    let t = Instant::now();
    let rows = if params.is_aggregate() {
        match meshlog_query::aggregate::aggregate(store, None, &params, &opts) {
            Ok(a) => a.total,
            Err(e) => panic!("{}: {e}", q.name),
        }
    } else {
        let mut rows = 0u64;
        if let Err(e) = meshlog_query::records::list(store, None, &params, &opts, |_, _| {
            rows += 1;
            Ok(())
        }) {
            panic!("{}: {e}", q.name);
        }
        rows
    };
    (t.elapsed().as_secs_f64() * 1000.0, rows)
}

fn clickhouse(q: &Question) -> Option<f64> {
    let client = std::env::var("CLICKHOUSE_CLIENT").ok()?;
    let port = std::env::var("CLICKHOUSE_PORT").ok()?;
    let t = Instant::now();
    let out = Command::new(client)
        .args([
            "--port",
            &port,
            "--query",
            &format!("{} FORMAT Null", q.clickhouse),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "clickhouse: {}: {}",
            q.name,
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(t.elapsed().as_secs_f64() * 1000.0)
}

/// Total size of the files in `dir`, MiB.
fn dir_mib(dir: &Path) -> f64 {
    let bytes: u64 = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    bytes as f64 / (1 << 20) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Resets this process's peak RSS (VmHWM) to its current RSS (Linux `clear_refs` 5).
fn reset_peak_rss() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("peak RSS not reset: {e}");
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> std::io::Result<()> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("bench/runs/query"));
    let n: u64 = std::env::var("QUERY_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let store = dir.join("store");
    if !store.exists() || std::env::var_os("QUERY_ONLY_BUILD").is_some() {
        let t = Instant::now();
        build(&dir, n)?;
        eprintln!("built {n} records in {:.1} s", t.elapsed().as_secs_f64());
        if std::env::var_os("QUERY_ONLY_BUILD").is_some() {
            return Ok(());
        }
    }
    // `QUERY_ONLY=trace`: only the questions whose name holds that (for profiling one).
    let only = std::env::var("QUERY_ONLY").unwrap_or_default();
    let qs: Vec<Question> = questions(n)
        .into_iter()
        .filter(|q| q.name.contains(only.as_str()))
        .collect();
    // The closed segments' indexes, as `serve` builds them when each segment closes (timed on
    // their own; already there when the store was built by an earlier run).
    let t = Instant::now();
    match meshlog_query::index::build::index_closed(&store, 0) {
        Ok(r) => eprintln!(
            "indexes: {} built, {} kept, in {:.1} s; index files {:.1} MiB",
            r.built.len(),
            r.kept,
            t.elapsed().as_secs_f64(),
            dir_mib(&layout::index_dir(&store))
        ),
        Err(e) => return Err(std::io::Error::other(format!("building the indexes: {e}"))),
    }
    // And the active segment's frames written so far, as `serve` indexes them every 2 s.
    let t = Instant::now();
    match meshlog_query::index::build::index_active(&store) {
        Ok(n) => eprintln!(
            "active segment: {n} frames indexed in {:.1} s",
            t.elapsed().as_secs_f64()
        ),
        Err(e) => {
            return Err(std::io::Error::other(format!(
                "indexing the active segment: {e}"
            )));
        }
    }
    let rss_before = peak_rss_mib();
    println!(
        "| question ({n} records) | meshlog, ms | full scan, ms | index speedup | ClickHouse, ms | meshlog / ClickHouse | rows |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut day_rss = f64::NAN;
    for q in &qs {
        let mut ms = Vec::new();
        let mut rows = 0;
        // The peak RSS of the day-long aggregate alone: the high-water mark is reset first.
        let day = q.params.iter().any(|(k, _)| *k == "every");
        if day {
            reset_peak_rss();
        }
        for _ in 0..rounds {
            let (m, r) = meshlog(&store, q, false);
            ms.push(m);
            rows = r;
        }
        if day {
            day_rss = peak_rss_mib();
        }
        let fast = median(ms);
        // `QUERY_NO_SCAN=1` (profiling): no full scan.
        let scan = if std::env::var_os("QUERY_NO_SCAN").is_some() {
            f64::NAN
        } else {
            let (scan, scan_rows) = meshlog(&store, q, true);
            assert_eq!(rows, scan_rows, "{}: the index changed the answer", q.name);
            scan
        };
        let ch: Vec<f64> = (0..rounds).filter_map(|_| clickhouse(q)).collect();
        let (ch_ms, ratio) = if ch.is_empty() {
            ("n/a".to_owned(), "n/a".to_owned())
        } else {
            let c = median(ch);
            (format!("{c:.1}"), format!("{:.2}", fast / c))
        };
        println!(
            "| {} | {fast:.1} | {scan:.1} | {:.1}× | {ch_ms} | {ratio} | {rows} |",
            q.name,
            scan / fast
        );
    }
    println!(
        "\nPeak RSS during the day-long aggregate (with the index): {day_rss:.0} MiB (goal < 256). \
         Peak RSS of the query process over all runs, full scans included: {:.0} MiB (after \
         building the indexes: {rss_before:.0} MiB).",
        peak_rss_mib()
    );
    Ok(())
}
