//! `meshlog-otlp-load`: drives an OTLP/HTTP logs receiver with the batches the filter sends, and
//! reports what it acknowledged: batches/s, records/s, MB/s of request bodies, acknowledgement
//! latency (p50, p99, max) and the receiver's peak RSS. `scripts/bench` runs it against
//! `meshlog serve` (acknowledged = fsync'd) and against rotel (blackhole exporter), same bytes.
//!
//! Usage: `meshlog-otlp-load --url http://127.0.0.1:4318/v1/logs --seconds 10 --connections 16
//! --records 200 [--pid PID] [--encoding gzip|identity]`. Prints one JSON object on stdout.
//! Each connection is a thread with one keep-alive HTTP/1.1 connection, sending a batch and
//! waiting for its answer (as the filter does per in-flight slot). Every batch carries a unique
//! `meshlog-batch-id`, as the filter's do. A non-2xx answer counts as an error, not an ack.

use meshlog_core::capture::MapSource;
use meshlog_core::otlp::{Envelope, encode_log_record};
use meshlog_core::redact::RedactionPolicy;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

struct Args {
    host: String,
    path: String,
    seconds: u64,
    connections: usize,
    records: usize,
    pid: Option<u32>,
    gzip: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        host: "127.0.0.1:4318".into(),
        path: "/v1/logs".into(),
        seconds: 10,
        connections: 16,
        records: 200,
        pid: None,
        gzip: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => {
                let url = val()?;
                let rest = url
                    .strip_prefix("http://")
                    .ok_or("--url must start with http://")?;
                let (host, path) = rest.split_once('/').ok_or("--url needs a path")?;
                a.host = host.to_owned();
                a.path = format!("/{path}");
            }
            "--seconds" => a.seconds = val()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--connections" => {
                a.connections = val()?.parse().map_err(|e| format!("--connections: {e}"))?
            }
            "--records" => a.records = val()?.parse().map_err(|e| format!("--records: {e}"))?,
            "--pid" => a.pid = Some(val()?.parse().map_err(|e| format!("--pid: {e}"))?),
            "--encoding" => {
                a.gzip = match val()?.as_str() {
                    "gzip" => true,
                    "identity" => false,
                    o => return Err(format!("--encoding: gzip or identity, not {o}")),
                }
            }
            o => return Err(format!("unknown argument {o}")),
        }
    }
    if a.connections == 0 || a.records == 0 || a.seconds == 0 {
        return Err("--connections, --records and --seconds must be positive".into());
    }
    Ok(a)
}

/// One batch of `n` realistic records (captured and redacted by core from a typical request).
fn batch(n: usize, salt: usize) -> Vec<u8> {
    let policy = RedactionPolicy::default();
    let frags: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let src = MapSource::default()
                .int("request.time", 1_764_000_000_000_000_000 + i as i64)
                .int("request.duration", 1_234_567)
                .text("request.method", "GET")
                .text("request.scheme", "http")
                .text("request.host", "shop.example")
                .text("request.url_path", format!("/api/orders/{}", salt * n + i))
                .text("request.query", "page=2&user=jo%40example.com")
                .text("request.protocol", "HTTP/1.1")
                .int("response.code", if i % 50 == 0 { 503 } else { 200 })
                .int("response.size", 512)
                .text(
                    "request.useragent",
                    "Mozilla/5.0 (X11; Linux x86_64) bench/1.0",
                )
                .text(
                    "request.id",
                    format!("{salt:08x}-{i:08x}-4f1e-9c1a-3b7d5e2f8a90"),
                )
                .text("xds.cluster_name", "app")
                .text("upstream.address", "10.0.3.7:8080")
                .text("source.address", "10.0.1.23:51234")
                .text("destination.address", "10.0.2.9:8080")
                .header("accept", "application/json")
                .header(
                    "traceparent",
                    format!("00-{:032x}-{:016x}-01", salt * n + i + 1, i + 1),
                )
                .response_header("content-type", "application/json");
            let mut rec = meshlog_core::capture_http(&src, &policy, 1_764_000_000_001_000_000);
            rec.sequence = Some((salt * n + i) as u64);
            let mut b = Vec::new();
            encode_log_record(&mut b, &rec);
            b
        })
        .collect();
    Envelope::new([
        ("service.name", "bench"),
        ("meshlog.vm.id", "0123456789abcdef"),
    ])
    .wrap(frags.iter().map(Vec::as_slice), 0)
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(body);
    e.finish().unwrap_or_default()
}

/// Reads one HTTP/1.1 response; returns its status.
fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<u16> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut len = 0usize;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("connection closed in headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(status)
}

#[derive(Default)]
struct Tally {
    acks: u64,
    errors: u64,
    latencies_us: Vec<u64>,
}

fn worker(a: &Args, conn: usize, bodies: &[Vec<u8>], stop: &AtomicBool) -> Tally {
    let mut t = Tally::default();
    let mut seq = 0usize;
    'outer: while !stop.load(Ordering::Relaxed) {
        let Ok(s) = TcpStream::connect(&a.host) else {
            t.errors += 1;
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let _ = s.set_nodelay(true);
        let Ok(mut w) = s.try_clone() else { continue };
        let mut r = BufReader::new(s);
        while !stop.load(Ordering::Relaxed) {
            let body = &bodies[seq % bodies.len()];
            let first = seq * a.records;
            let head = format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{}meshlog-batch-id: {conn:016x}:{first}-{}\r\nContent-Length: {}\r\n\r\n",
                a.path,
                a.host,
                if a.gzip {
                    "Content-Encoding: gzip\r\n"
                } else {
                    ""
                },
                first + a.records - 1,
                body.len()
            );
            seq += 1;
            let t0 = Instant::now();
            if w.write_all(head.as_bytes()).is_err() || w.write_all(body).is_err() {
                t.errors += 1;
                continue 'outer;
            }
            match read_response(&mut r) {
                Ok(200..=299) => {
                    t.acks += 1;
                    t.latencies_us.push(t0.elapsed().as_micros() as u64);
                }
                Ok(_) => t.errors += 1,
                Err(_) => {
                    t.errors += 1;
                    continue 'outer;
                }
            }
        }
    }
    t
}

/// Peak resident set size of `pid` in KiB (VmHWM), if readable.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn main() {
    let a = match parse_args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("meshlog-otlp-load: {e}");
            std::process::exit(2);
        }
    };
    // 32 distinct batches, rotated: realistic variety without encoding in the measured loop.
    let raw: Vec<Vec<u8>> = (0..32).map(|s| batch(a.records, s)).collect();
    let raw_bytes: usize = raw.iter().map(Vec::len).sum::<usize>() / raw.len();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(if a.gzip {
        raw.iter().map(|b| gzip(b)).collect()
    } else {
        raw
    });
    let wire_bytes: usize = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..a.connections)
        .map(|c| {
            let (a, bodies, stop) = (Arc::clone(&a), Arc::clone(&bodies), Arc::clone(&stop));
            std::thread::spawn(move || worker(&a, c, &bodies, &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(a.seconds));
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::default();
    for h in handles {
        if let Ok(t) = h.join() {
            total.acks += t.acks;
            total.errors += t.errors;
            total.latencies_us.extend(t.latencies_us);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        let l = &total.latencies_us;
        if l.is_empty() {
            return f64::NAN;
        }
        let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
        l[i] as f64 / 1000.0
    };
    let out = serde_json::json!({
        "seconds": secs,
        "connections": a.connections,
        "records_per_batch": a.records,
        "encoding": if a.gzip { "gzip" } else { "identity" },
        "batch_json_bytes": raw_bytes,
        "batch_wire_bytes": wire_bytes,
        "acks": total.acks,
        "errors": total.errors,
        "batches_per_s": total.acks as f64 / secs,
        "records_per_s": (total.acks as f64) * a.records as f64 / secs,
        "json_mb_per_s": (total.acks as f64) * raw_bytes as f64 / secs / 1e6,
        "wire_mb_per_s": (total.acks as f64) * wire_bytes as f64 / secs / 1e6,
        "ack_p50_ms": pct(0.50),
        "ack_p99_ms": pct(0.99),
        "ack_max_ms": pct(1.0),
        "peak_rss_mib": a.pid.and_then(peak_rss_kib).map(|k| k as f64 / 1024.0),
    });
    println!("{out}");
}
