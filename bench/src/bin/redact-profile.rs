//! Runs one redaction engine over the corpus a given number of times, for profilers whose
//! instruction counts are stable on a loaded machine (callgrind):
//!
//! `valgrind --tool=callgrind target/release/redact-profile meshlog/default 3`
//!
//! Engines: `meshlog/default`, `meshlog/text`, `vrl/redact` (as in `benches/redact.rs`). Running
//! with N and N+k iterations and subtracting gives the instructions of k iterations without the
//! setup (corpus loading, VRL compilation).

use meshlog_bench::{VrlRedact, http_inputs, load_corpus, meshlog_default, total_bytes};
use meshlog_core::redact::{RedactionPolicy, Summary};
use std::hint::black_box;
use std::process::ExitCode;
use vrl::compiler::TargetValue;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(engine), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u32>().ok()))
    else {
        eprintln!("usage: redact-profile meshlog/default|meshlog/text|vrl/redact ITERATIONS");
        return ExitCode::from(2);
    };
    let corpus = load_corpus();
    let inputs = http_inputs(&corpus);
    eprintln!("{} input bytes per iteration", total_bytes(&inputs));
    let policy = RedactionPolicy::default();
    match engine.as_str() {
        "meshlog/default" => {
            for _ in 0..n {
                for input in &inputs {
                    black_box(meshlog_default(&policy, black_box(input)));
                }
            }
        }
        "meshlog/text" => {
            for _ in 0..n {
                for input in &inputs {
                    let mut summary = Summary::new();
                    for field in input.fields() {
                        black_box(policy.text(black_box(field), &mut summary));
                    }
                }
            }
        }
        "vrl/redact" => {
            let mut vrl = VrlRedact::new();
            let mut targets: Vec<TargetValue> = inputs
                .iter()
                .flat_map(|i| i.fields().map(VrlRedact::target).collect::<Vec<_>>())
                .collect();
            for _ in 0..n {
                for t in targets.iter_mut() {
                    black_box(vrl.run(black_box(t)));
                }
            }
        }
        other => {
            eprintln!("unknown engine {other}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
