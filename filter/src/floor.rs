//! Measurement builds only, never shipped: what the access logger costs before core does any
//! work (bench/README.md, "Floors of the Wasm module"). Built with `MESHLOG_FLOOR` set at
//! compile time, `on_log` stops early:
//! - `empty`: returns at once (the VM entry and Envoy's side of the access logger);
//! - `maps`: reads both header maps and drops them;
//! - `reads`: reads what a plaintext request's record reads (the time, both header maps,
//!   thirteen attributes) and drops it;
//! - `reads-cel`: the same, but eleven of the attributes (all but the first two) in one
//!   evaluation of a CEL list (Envoy's `expr_create` / `expr_evaluate` foreign functions)
//!   instead of one `get_property` each: the lever bench/README.md weighs and leaves.
//!
//! Side by side with `meshlog-al` in scripts/bench-edge-instr they split the module's cost into
//! the entry, the reads and core's work. An ordinary build has no `MESHLOG_FLOOR`: `probe` is
//! then a constant `false`.

use crate::host::{EnvoyAttributes, now_ns};
use meshlog_core::AttributeSource;

/// The attributes a plaintext request's record reads, in capture's order
/// (bench/README.md, "Hostcalls per request").
const READ: &[&[&str]] = &[
    &["request", "duration"],
    &["response", "flags"],
    &["source", "address"],
    &["request", "time"],
    &["request", "protocol"],
    &["request", "size"],
    &["response", "size"],
    &["response", "code_details"],
    &["xds", "cluster_name"],
    &["upstream", "address"],
    &["destination", "address"],
    &["connection", "tls_version"],
    &["xds", "listener_direction"],
];

/// Runs the probe this build was made for; true if it did (the record is then not built).
pub fn probe() -> bool {
    let src = EnvoyAttributes;
    let n = match option_env!("MESHLOG_FLOOR") {
        None => return false,
        Some("maps") => src.request_headers().len() + src.response_headers().len(),
        Some("reads") => {
            let mut n = usize::from(now_ns() > 0);
            n += src.request_headers().len() + src.response_headers().len();
            for path in READ {
                n += src.property(path).map_or(0, |v| v.len());
            }
            n
        }
        Some("reads-cel") => {
            let mut n = usize::from(now_ns() > 0);
            n += src.request_headers().len() + src.response_headers().len();
            for path in READ.iter().take(2) {
                n += src.property(path).map_or(0, |v| v.len());
            }
            n + evaluate_rest()
        }
        Some(_) => 0,
    };
    std::hint::black_box(n);
    true
}

thread_local! {
    /// The compiled expression of `reads-cel`, per VM.
    static TOKEN: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// `reads-cel`: the attributes after the first two as one CEL list of strings (an absent one as
/// `""`: a missing key would fail the whole list); the answer's length.
fn evaluate_rest() -> usize {
    use proxy_wasm::hostcalls::call_foreign_function;
    let token = TOKEN.with(|t| {
        if t.get().is_none() {
            let items: Vec<String> = READ
                .iter()
                .skip(2)
                .map(|p| {
                    let sel = p.join(".");
                    format!("has({sel}) ? string({sel}) : \"\"")
                })
                .collect();
            let expr = format!("[{}]", items.join(", "));
            let token = call_foreign_function("expr_create", Some(expr.as_bytes()))
                .ok()
                .flatten()
                .and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
                .map(u32::from_le_bytes);
            t.set(token);
        }
        t.get()
    });
    token
        .and_then(|t| call_foreign_function("expr_evaluate", Some(&t.to_le_bytes())).ok())
        .flatten()
        .map_or(0, |b| b.len())
}
