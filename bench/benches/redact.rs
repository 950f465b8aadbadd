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
//! engine catches. `cargo bench -p meshlog-bench --bench redact -- --noplot`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use meshlog_bench::{
    VrlRedact, http_inputs, load_corpus, meshlog_default, quality_meshlog_default,
    quality_meshlog_text, quality_vrl, total_bytes,
};
use meshlog_core::redact::{RedactionPolicy, Summary};
use std::hint::black_box;
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

criterion_group!(benches, redact_corpus);
criterion_main!(benches);
