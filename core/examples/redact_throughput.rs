//! Redaction throughput of the default policy on a JSONL corpus, applied as the filter applies it
//! (path, query, request headers by class: `meshlog/default` of `bench/benches/redact.rs`). Built
//! for wasm32-wasip1 it measures the engine inside a Wasm VM; natively, the same loop without one:
//!
//! ```text
//! cargo build --release --target wasm32-wasip1 -p meshlog-core --example redact_throughput
//! scripts/wasi-run target/wasm32-wasip1/release/examples/redact_throughput.wasm CORPUS.jsonl 30
//! cargo run --release -p meshlog-core --example redact_throughput -- CORPUS.jsonl 30
//! ```
//!
//! Prints the median and best MB/s (10^6 bytes of path, query and header values per second).

use meshlog_core::redact::{RedactionPolicy, Summary};
use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

struct Input {
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
}

fn load(file: &str) -> Result<Vec<Input>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    let mut out = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{file}:{}: {e}", n + 1))?;
        let full = v.get("path").and_then(|p| p.as_str()).unwrap_or_default();
        let (path, query) = match full.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned()).filter(|q| !q.is_empty())),
            None => (full.to_owned(), None),
        };
        let mut headers: Vec<(String, String)> = v
            .get("headers")
            .and_then(|h| h.as_object())
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        headers.sort();
        out.push(Input {
            path,
            query,
            headers,
        });
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(file) = args.get(1) else {
        eprintln!("usage: redact_throughput CORPUS.jsonl [ITERATIONS]");
        return ExitCode::from(2);
    };
    let iterations: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(20);
    let inputs = match load(file) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let bytes: usize = inputs
        .iter()
        .map(|i| {
            i.path.len()
                + i.query.as_ref().map_or(0, String::len)
                + i.headers.iter().map(|(_, v)| v.len()).sum::<usize>()
        })
        .sum();
    let policy = RedactionPolicy::default();
    let mut secs = Vec::with_capacity(iterations);
    for _ in 0..iterations.max(1) {
        let t = Instant::now();
        for i in &inputs {
            let mut s = Summary::new();
            black_box(policy.path(black_box(&i.path), &mut s));
            if let Some(q) = &i.query {
                black_box(policy.query(q, &mut s));
            }
            for (n, v) in &i.headers {
                black_box(policy.request_header(n, v, &mut s));
            }
            black_box(s);
        }
        secs.push(t.elapsed().as_secs_f64());
    }
    secs.sort_by(f64::total_cmp);
    let mbs = |s: f64| bytes as f64 / s / 1e6;
    let median = secs.get(secs.len() / 2).copied().unwrap_or(f64::NAN);
    let best = secs.first().copied().unwrap_or(f64::NAN);
    println!(
        "redact-throughput target={} requests={} bytes={} iterations={} median_mb_s={:.1} best_mb_s={:.1}",
        std::env::consts::ARCH,
        inputs.len(),
        bytes,
        secs.len(),
        mbs(median),
        mbs(best)
    );
    ExitCode::SUCCESS
}
