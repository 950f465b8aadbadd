//! `meshlog-tail-latency`: how long after its acknowledgement a record shows up in the live
//! tail, at the collector bench's load.
//!
//! Usage: `meshlog-tail-latency --url http://127.0.0.1:4318 --seconds 10 --connections 8
//! --records 200 [--rate RECORDS_PER_S] [--pid PID]`. Prints one JSON object on stdout.
//!
//! With `--rate`, the load is open-loop: batches are sent on a fixed schedule adding up to that
//! many records per second (spread over the connections; a connection still waiting for its
//! previous answer sends as soon as it has it, and `late_batches` counts those). Without it,
//! each connection sends its next batch as soon as the previous one is answered, which
//! saturates the collector by construction (the tail then measures the backlog, not the tail).
//!
//! It opens `GET /api/v1/tail` first, then drives `POST /v1/logs` like `meshlog-otlp-load`: each
//! connection a thread with one keep-alive connection and one batch of realistic records (the
//! filter's encoding) in flight; every batch carries a unique marker in a resource attribute. For
//! each acknowledged batch the latency is the time from reading its 200 to reading the first of
//! its records from the tail, both on this process's monotonic clock (negative when the tail was
//! faster than the answer: the writer wakes subscribers before it acknowledges).

use meshlog_e2e::load::{self, peak_rss_kib, read_response};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Stands in for the batch number in the template body (16 hex digits).
const MARK: &str = "MARKMARKMARKMARK";
const MARK_KEY: &str = "\"resource.bench.batch\":\"";

struct Args {
    host: String,
    seconds: u64,
    connections: usize,
    records: usize,
    /// Records per second in total (open loop), or as fast as answered.
    rate: Option<f64>,
    pid: Option<u32>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        host: String::new(),
        seconds: 10,
        connections: 8,
        records: 200,
        rate: None,
        pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => {
                let url = val()?;
                a.host = url
                    .strip_prefix("http://")
                    .ok_or("--url must start with http://")?
                    .trim_end_matches('/')
                    .to_owned();
            }
            "--seconds" => a.seconds = val()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--connections" => {
                a.connections = val()?.parse().map_err(|e| format!("--connections: {e}"))?
            }
            "--records" => a.records = val()?.parse().map_err(|e| format!("--records: {e}"))?,
            "--rate" => {
                let r: f64 = val()?.parse().map_err(|e| format!("--rate: {e}"))?;
                if !(r.is_finite() && r > 0.0) {
                    return Err("--rate must be a positive number of records per second".into());
                }
                a.rate = Some(r);
            }
            "--pid" => a.pid = Some(val()?.parse().map_err(|e| format!("--pid: {e}"))?),
            o => return Err(format!("unknown flag {o}")),
        }
    }
    if a.host.is_empty() || a.seconds == 0 || a.connections == 0 || a.records == 0 {
        return Err("--url is needed; --seconds, --connections, --records positive".into());
    }
    Ok(a)
}

/// A batch of `n` records like `meshlog-otlp-load`'s with the resource attribute `bench.batch` =
/// [`MARK`].
fn template(n: usize) -> Vec<u8> {
    load::batch(n, 0, &[("service.name", "bench"), ("bench.batch", MARK)])
}

type Times = Arc<Mutex<HashMap<u64, Instant>>>;

/// What one connection did: errors, and batches sent after their scheduled time.
#[derive(Default)]
struct WorkerOut {
    errors: u64,
    late: u64,
}

#[allow(clippy::too_many_arguments)]
fn worker(
    a: &Args,
    template: &[u8],
    at: usize,
    me: usize,
    t0: Instant,
    next: &AtomicU64,
    stop: &AtomicBool,
    acks: &Times,
) -> WorkerOut {
    let mut errors = 0;
    let mut late = 0;
    let mut sent = 0u64;
    // Open loop: this connection's k-th batch is due at t0 + (k + me / C) * interval.
    let interval = a
        .rate
        .map(|r| Duration::from_secs_f64(a.connections as f64 * a.records as f64 / r));
    let due =
        |k: u64| interval.map(|i| t0 + i.mul_f64(k as f64 + me as f64 / a.connections as f64));
    let mut body = template.to_vec();
    'outer: while !stop.load(Ordering::Relaxed) {
        let Ok(s) = TcpStream::connect(&a.host) else {
            errors += 1;
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let _ = s.set_nodelay(true);
        let Ok(mut w) = s.try_clone() else { continue };
        let mut r = BufReader::new(s);
        while !stop.load(Ordering::Relaxed) {
            if let Some(due) = due(sent) {
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                } else if now - due > Duration::from_millis(1) {
                    late += 1;
                }
                if stop.load(Ordering::Relaxed) {
                    break 'outer;
                }
            }
            sent += 1;
            let n = next.fetch_add(1, Ordering::Relaxed);
            body[at..at + 16].copy_from_slice(format!("{n:016x}").as_bytes());
            let head = format!(
                "POST /v1/logs HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nmeshlog-batch-id: tail-{n}\r\nContent-Length: {}\r\n\r\n",
                a.host,
                body.len()
            );
            if w.write_all(head.as_bytes()).is_err() || w.write_all(&body).is_err() {
                errors += 1;
                continue 'outer;
            }
            match read_response(&mut r) {
                Ok(200..=299) => {
                    let t = Instant::now();
                    acks.lock().unwrap_or_else(|p| p.into_inner()).insert(n, t);
                }
                Ok(_) => errors += 1,
                Err(_) => {
                    errors += 1;
                    continue 'outer;
                }
            }
        }
    }
    WorkerOut { errors, late }
}

/// Reads the tail, noting when the first record of each batch arrives.
fn tail_reader(
    host: String,
    seen: Times,
    records: Arc<AtomicU64>,
    ready: std::sync::mpsc::Sender<()>,
) {
    let Ok(mut s) = TcpStream::connect(&host) else {
        return;
    };
    let _ = write!(
        s,
        "GET /api/v1/tail HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
    );
    let mut r = BufReader::with_capacity(1 << 20, s);
    let mut line = String::new();
    let mut in_headers = true;
    while r.read_line(&mut line).is_ok_and(|n| n > 0) {
        if in_headers {
            if line == "\r\n" {
                in_headers = false;
                let _ = ready.send(());
            }
        } else if let Some(data) = line.strip_prefix("data: ") {
            records.fetch_add(1, Ordering::Relaxed);
            if let Some(i) = data.find(MARK_KEY)
                && let Some(hex) = data.get(i + MARK_KEY.len()..i + MARK_KEY.len() + 16)
                && let Ok(n) = u64::from_str_radix(hex, 16)
            {
                let now = Instant::now();
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(n)
                    .or_insert(now);
            }
        }
        line.clear();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("meshlog-tail-latency: {e}");
            std::process::exit(2);
        }
    };
    let template = template(a.records);
    let at = template
        .windows(MARK.len())
        .position(|w| w == MARK.as_bytes())
        .expect("the marker is in the template");
    let acks: Times = Arc::default();
    let seen: Times = Arc::default();
    let tail_records = Arc::new(AtomicU64::new(0));
    let (ready_tx, ready) = std::sync::mpsc::channel();
    {
        let (host, seen, recs) = (a.host.clone(), seen.clone(), tail_records.clone());
        std::thread::spawn(move || tail_reader(host, seen, recs, ready_tx));
    }
    if ready.recv_timeout(Duration::from_secs(10)).is_err() {
        eprintln!("meshlog-tail-latency: the tail did not open");
        std::process::exit(1);
    }
    let stop = AtomicBool::new(false);
    let next = AtomicU64::new(0);
    let t0 = Instant::now();
    let outs: Vec<WorkerOut> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..a.connections)
            .map(|me| {
                let (a, template, next, stop, acks) = (&a, &template, &next, &stop, &acks);
                s.spawn(move || worker(a, template, at, me, t0, next, stop, acks))
            })
            .collect();
        std::thread::sleep(Duration::from_secs(a.seconds));
        stop.store(true, Ordering::Relaxed);
        hs.into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let errors: u64 = outs.iter().map(|o| o.errors).sum();
    let late: u64 = outs.iter().map(|o| o.late).sum();
    let elapsed = t0.elapsed().as_secs_f64();
    let acks = acks.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // Let the tail catch up with the last acknowledgements.
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let n = seen.lock().unwrap_or_else(|p| p.into_inner()).len();
        if acks.keys().all(|k| {
            seen.lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(k)
        }) || n >= acks.len()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut lat: Vec<f64> = Vec::with_capacity(acks.len());
    let mut missing = 0u64;
    for (n, acked) in &acks {
        match seen.get(n) {
            Some(t) if t >= acked => lat.push(t.duration_since(*acked).as_secs_f64() * 1e3),
            Some(t) => lat.push(-(acked.duration_since(*t).as_secs_f64() * 1e3)),
            None => missing += 1,
        }
    }
    lat.sort_by(f64::total_cmp);
    let out = serde_json::json!({
        "seconds": elapsed,
        "connections": a.connections,
        "records_per_batch": a.records,
        "batches_acked": acks.len(),
        "records_per_s": (acks.len() * a.records) as f64 / elapsed,
        "rate": a.rate,
        "late_batches": late,
        "tail_records": tail_records.load(Ordering::Relaxed),
        "missing_batches": missing,
        "errors": errors,
        "tail_p50_ms": percentile(&lat, 0.50),
        "tail_p99_ms": percentile(&lat, 0.99),
        "tail_max_ms": lat.last().copied().unwrap_or(f64::NAN),
        "peak_rss_mib": a.pid.and_then(peak_rss_kib).map(|k| k as f64 / 1024.0),
    });
    println!("{out}");
}
