//! What the load drivers (`meshlog-otlp-load`, `meshlog-tail-latency`) share: the OTLP batch they
//! send (realistic records, captured and redacted by core as the filter does), reading one
//! HTTP/1.1 answer, and the receiver's peak RSS.

use meshlog_core::capture::MapSource;
use meshlog_core::otlp::{Envelope, encode_log_record};
use meshlog_core::redact::RedactionPolicy;
use std::io::BufRead;

/// One batch of `n` realistic records (captured and redacted by core from a typical request),
/// under the resource attributes `resource`. `salt` makes request ids, paths, trace ids and
/// sequence numbers differ between batches.
pub fn batch(n: usize, salt: usize, resource: &[(&str, &str)]) -> Vec<u8> {
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
    Envelope::new(resource.iter().copied()).wrap(frags.iter().map(Vec::as_slice), 0)
}

/// Reads one HTTP/1.1 response (status line, headers, a `content-length` body); returns its
/// status.
pub fn read_response(r: &mut impl BufRead) -> std::io::Result<u16> {
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

/// CPU time (user and system) process `pid` has used so far, in seconds, if readable.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) in parentheses: utime and stime are
    // the 12th and 13th, in USER_HZ ticks (100 per second on Linux).
    let rest = s.get(s.rfind(')')? + 2..)?;
    let mut f = rest.split(' ').skip(11);
    let user: u64 = f.next()?.parse().ok()?;
    let sys: u64 = f.next()?.parse().ok()?;
    Some((user + sys) as f64 / 100.0)
}

/// Peak resident set size of process `pid` in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
