//! Redaction throughput on the labelled PII corpus: meshlog vs. Vector's VRL `redact`.
//!
//! Group `redact_corpus`, one iteration = the whole corpus (path, query and every header value of
//! each request), throughput in bytes of that input:
//! - `meshlog/default`: `RedactionPolicy::default()` applied as the filter applies it (path,
//!   query, allowlisted headers by class);
//! - `meshlog/text`: `RedactionPolicy::text` on each string (the generic detector path);
//! - `vrl/redact`: a compiled VRL program calling the stdlib `redact` with regex filters for the
//!   corpus' secret kinds, run on each string.
//!
//! Before timing, each engine's leaks and destroyed benign values on the corpus are printed to
//! stderr (`redact-quality engine=… secrets=… leaks=…`), so the speeds are read next to what each
//! engine catches. After criterion's groups, `meshlog/default` and `vrl/redact` are timed once
//! more in alternating rounds (one corpus iteration each, so both see the same machine load) and
//! the line `redact-ratio meshlog/default ÷ vrl/redact …` gives both engines' MB/s and the
//! ratio. `cargo bench -p meshlog-bench --bench redact -- --noplot`.

use criterion::{Criterion, Throughput, criterion_group};
use meshlog_bench::{
    VrlRedact, http_inputs, load_corpus, meshlog_default, quality_meshlog_default,
    quality_meshlog_text, quality_vrl, total_bytes,
};
use meshlog_core::redact::{RedactionPolicy, Summary};
use std::hint::black_box;
use std::time::Instant;
use vrl::compiler::TargetValue;

fn redact_corpus(c: &mut Criterion) {
    let corpus = load_corpus();
    let inputs = http_inputs(&corpus);
    let bytes = total_bytes(&inputs);
    let policy = RedactionPolicy::default();
    let mut vrl = VrlRedact::new();

    eprintln!(
        "corpus: {} requests, {} input bytes per iteration (path + query + header values)",
        corpus.len(),
        bytes
    );
    eprintln!(
        "redact-quality engine=meshlog/default {}",
        quality_meshlog_default(&policy, &corpus)
    );
    eprintln!(
        "redact-quality engine=meshlog/text {}",
        quality_meshlog_text(&policy, &corpus)
    );
    eprintln!(
        "redact-quality engine=vrl/redact {}",
        quality_vrl(&mut vrl, &corpus)
    );

    // VRL events, built once: the program reads `.s` and does not modify the event.
    let mut targets: Vec<TargetValue> = inputs
        .iter()
        .flat_map(|i| i.fields().map(VrlRedact::target).collect::<Vec<_>>())
        .collect();

    let mut group = c.benchmark_group("redact_corpus");
    group.throughput(Throughput::BytesDecimal(bytes));
    group.bench_function("meshlog/default", |b| {
        b.iter(|| {
            for input in &inputs {
                black_box(meshlog_default(&policy, black_box(input)));
            }
        })
    });
    group.bench_function("meshlog/text", |b| {
        b.iter(|| {
            for input in &inputs {
                let mut summary = Summary::new();
                for field in input.fields() {
                    black_box(policy.text(black_box(field), &mut summary));
                }
                black_box(summary);
            }
        })
    });
    group.bench_function("vrl/redact", |b| {
        b.iter(|| {
            for target in targets.iter_mut() {
                black_box(vrl.run(black_box(target)));
            }
        })
    });
    group.finish();
}

/// Rounds of the side-by-side comparison (each: one meshlog and one VRL corpus iteration).
const RATIO_ROUNDS: usize = 30;

/// Whether the side-by-side comparison runs: under `cargo bench` (criterion's `--bench` flag),
/// unless a name filter excludes both engines.
fn ratio_wanted() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        return false;
    }
    // Criterion's options that take a value: what follows them is not a filter.
    const WITH_VALUE: [&str; 14] = [
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--profile-time",
        "--output-format",
        "--color",
    ];
    let mut filter = None;
    let mut skip = false;
    for a in &args {
        if skip {
            skip = false;
        } else if WITH_VALUE.contains(&a.as_str()) {
            skip = true;
        } else if !a.starts_with('-') {
            filter = Some(a.as_str());
        }
    }
    filter.is_none_or(|f| {
        "redact_corpus/meshlog/default".contains(f) || "redact_corpus/vrl/redact".contains(f)
    })
}

/// `meshlog/default` and `vrl/redact` in alternating rounds: the median of each engine's MB/s and
/// the median of the per-round ratio (robust to load that changes between rounds).
fn side_by_side() {
    let corpus = load_corpus();
    let inputs = http_inputs(&corpus);
    let bytes = total_bytes(&inputs) as f64;
    let policy = RedactionPolicy::default();
    let mut vrl = VrlRedact::new();
    let mut targets: Vec<TargetValue> = inputs
        .iter()
        .flat_map(|i| i.fields().map(VrlRedact::target).collect::<Vec<_>>())
        .collect();
    let (mut m, mut v, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RATIO_ROUNDS {
        let t = Instant::now();
        for input in &inputs {
            black_box(meshlog_default(&policy, black_box(input)));
        }
        let tm = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for target in targets.iter_mut() {
            black_box(vrl.run(black_box(target)));
        }
        let tv = t.elapsed().as_secs_f64();
        m.push(bytes / tm / 1e6);
        v.push(bytes / tv / 1e6);
        r.push(tv / tm);
    }
    let median = |x: &mut Vec<f64>| {
        x.sort_by(f64::total_cmp);
        x.get(x.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!(
        "redact-ratio meshlog/default ÷ vrl/redact = {:.2} (median of {RATIO_ROUNDS} alternating rounds; \
         meshlog/default {:.1} MB/s, vrl/redact {:.1} MB/s; load average {})",
        median(&mut r),
        median(&mut m),
        median(&mut v),
        load.join(" ")
    );
}

criterion_group!(benches, redact_corpus);

fn main() {
    benches();
    if ratio_wanted() {
        side_by_side();
    }
    Criterion::default().configure_from_args().final_summary();
}
