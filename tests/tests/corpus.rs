//! The labelled PII corpus through real Envoy running the shipped `sidecar.yaml` (no redaction
//! section: the secure default) to the real collector. Nothing the collector stored may contain a
//! secret in any spelling; benign look-alikes must survive.
//!
//! The corpus is generated (`tests/src/corpus_gen.rs`, fixed seed, 2,000 requests) unless
//! `MESHLOG_CORPUS` names a JSONL file in the same format (`scripts/test` sets it to
//! the shared corpus beside the repository when that exists and runs this test a second time).

use meshlog_core::redact::RedactionPolicy;
use meshlog_e2e::{Collector, Envoy, Sidecar, Upstream, send};
use serde_json::Value;
use std::collections::BTreeMap;

#[path = "../src/corpus_gen.rs"]
mod corpus_gen;

const UPSTREAM: &str = env!("CARGO_BIN_EXE_meshlog-upstream");

/// Whether Envoy removes this request header before any filter sees it: a `Referer` with
/// userinfo or a fragment (both of which RFC 9110 section 10.1.3 forbids) reaches neither the
/// filter nor the upstream (userinfo checked against a raw upstream; fragments found by the
/// generated corpus: their tokens reach no record and no redaction count).
fn envoy_strips(name: &str, value: &str) -> bool {
    name.eq_ignore_ascii_case("referer")
        && (value
            .split_once("://")
            .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
            .is_some_and(|authority| authority.contains('@'))
            || value.contains('#'))
}

/// Whether the policy keeps header `name` but drops the part of it that holds `secret` without
/// counting a redaction: a URL header keeps its origin and path, not its query or fragment.
fn dropped_uncounted(policy: &RedactionPolicy, name: &str, value: &str, secret: &str) -> bool {
    let mut s = meshlog_core::redact::Summary::new();
    match policy.request_header(name, value, &mut s) {
        Some(out) => !out.contains(secret) && s.total() == 0,
        None => true,
    }
}

/// The redaction kinds (`meshlog.redacted.<kind>`) a corpus secret kind may be counted as.
fn redacted_as(corpus_kind: &str) -> &'static [&'static str] {
    match corpus_kind {
        "aws" => &["aws_access_key", "aws_secret_key"],
        "email" => &["email"],
        "card" => &["card"],
        "ssn" => &["ssn"],
        "phone" => &["phone"],
        // In `Authorization: Bearer`, counted as the credential of its scheme.
        "jwt" => &["jwt", "bearer"],
        "github" => &["github_token"],
        "slack" => &["slack_token", "slack_webhook"],
        "stripe" => &["stripe_key"],
        "gapi" => &["google_api_key"],
        "iban" => &["iban"],
        "password" => &["secret_param", "url_credentials"],
        "bearer" => &["bearer", "jwt"],
        "cookie" => &["cookie"],
        "xff" => &["ip"],
        "apikey_header" => &["credential"],
        "basic_url" => &["url_credentials", "basic"],
        // The generated corpus's vendor tokens: a credential of the library, or redacted by
        // where they stand (a sensitive key, an Authorization scheme).
        "vendor" => &[
            "api_key",
            "github_token",
            "gitlab_token",
            "slack_token",
            "slack_webhook",
            "stripe_key",
            "aws_access_key",
            "openai_key",
            "anthropic_key",
            "google_api_key",
            "private_key",
            "secret_param",
            "credential",
            "bearer",
        ],
        // A token in a Referer's query or fragment, under an OAuth key.
        // (40 random base64 characters are also the shape of an AWS secret key.)
        // Without separators under a neutral key: counted as `ssn` whatever the country.
        "national_id" => &["ssn"],
        "referer_token" => &[
            "secret_param",
            "credential",
            "api_key",
            "bearer",
            "high_entropy",
            "aws_secret_key",
        ],
        other => panic!("corpus secret kind {other:?} has no redaction kind here; add it"),
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    secrets: Vec<(String, String)>,
    benign: Vec<String>,
}

/// The corpus and where it came from.
fn corpus() -> (String, Vec<Request>) {
    let path = match std::env::var("MESHLOG_CORPUS") {
        Ok(p) if !p.is_empty() => std::path::PathBuf::from(p),
        _ => {
            let generated = corpus_gen::corpus()
                .into_iter()
                .map(|r| Request {
                    method: r.method,
                    path: r.path,
                    headers: r.headers,
                    secrets: r.secrets,
                    benign: r.benign,
                })
                .collect();
            let source = format!(
                "generated (seed {:#x}, {} requests)",
                corpus_gen::DEFAULT_SEED,
                corpus_gen::DEFAULT_SIZE
            );
            return (source, generated);
        }
    };
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("MESHLOG_CORPUS={}: {e}", path.display()));
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let requests = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("corpus line is JSON");
            Request {
                method: v["method"].as_str().unwrap().to_owned(),
                path: v["path"].as_str().unwrap().to_owned(),
                headers: v["headers"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect(),
                secrets: v["secrets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| {
                        (
                            s["kind"].as_str().unwrap().to_owned(),
                            s["value"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect(),
                benign: strs(&v["benign"]),
            }
        })
        .collect();
    (path.display().to_string(), requests)
}

/// RFC 3986 percent-encoding of everything but unreserved characters; `form` also writes space as `+`.
fn encode(s: &str, form: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' if form => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The spellings of a value that count as a leak (the corpus README's definition).
fn spellings(kind: &str, value: &str) -> Vec<String> {
    let mut v = vec![value.to_owned(), encode(value, false), encode(value, true)];
    if corpus_gen::numeric_kind(kind) {
        v.push(value.chars().filter(char::is_ascii_alphanumeric).collect());
    }
    v.retain(|s| !s.is_empty());
    v.dedup();
    v
}

/// Every string in a stored record, lower-cased percent-escapes included as sent.
fn strings(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            out.push_str(k);
            out.push('\n');
            strings(x, out);
        }),
        _ => {}
    }
}

#[test]
fn the_pii_corpus_leaves_no_secret_in_the_store() {
    corpus_through(Sidecar::new);
}

/// The same corpus through the native dynamic-module access logger (same core, same policy):
/// the same zero leaks and the same redaction counts.
#[test]
fn the_pii_corpus_leaves_no_secret_in_the_store_native() {
    corpus_through(Sidecar::native);
}

/// Sends the corpus through the sidecar `sidecar(app port, collector port)` builds and checks
/// the store.
fn corpus_through(sidecar: fn(u16, u16) -> Sidecar) {
    let (source, corpus) = corpus();
    eprintln!("corpus: {source}");
    assert!(corpus.len() >= 1700, "corpus size {}", corpus.len());
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    let upstream = Upstream::start(UPSTREAM);
    // One worker and sequential requests: start times order the records like the corpus.
    let envoy = Envoy::start(&sidecar(upstream.addr.port(), collector.addr.port()), 1);

    for r in &corpus {
        let headers: Vec<(&str, &[u8])> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        let status = send(envoy.listen, &r.method, &r.path, &headers, b"");
        assert_eq!(status, 200, "{} {}", r.method, r.path);
    }
    // Settled: every stored record answered, so no retry (a would-be duplicate) is pending.
    let mut records = collector.wait_records(corpus.len(), &[&envoy]);
    assert_eq!(records.len(), corpus.len(), "one record per request");
    records.sort_by_key(|r| r["time_unix_nano"].as_u64().unwrap());

    // The whole store as one haystack: a secret may not appear in any record, not only its own.
    let mut store = String::new();
    for r in &records {
        strings(r, &mut store);
    }

    let policy = RedactionPolicy::default();
    let (mut leaks, mut secrets, mut unlogged, mut detected) = (Vec::new(), 0, 0, 0);
    let mut missed = Vec::new();
    let (mut benign_total, mut false_positives) = (0, Vec::new());
    for (req, rec) in corpus.iter().zip(&records) {
        assert_eq!(
            rec["http.request.method"],
            req.method.as_str(),
            "records align with requests"
        );
        // The record's redaction counts by kind; each logged secret takes one of its kind's.
        let mut redacted: BTreeMap<&str, u64> = rec
            .as_object()
            .unwrap()
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("meshlog.redacted.")?, v.as_u64()?)))
            .collect();
        for (kind, value) in &req.secrets {
            secrets += 1;
            if let Some(s) = spellings(kind, value)
                .into_iter()
                .find(|s| store.contains(s.as_str()))
            {
                leaks.push(format!(
                    "{kind} {value:?} as {s:?} (request {} {})",
                    req.method, req.path
                ));
            }
            // A secret only in a header the policy does not log never reaches the record.
            let only_in_unlogged_header = !req.path.contains(value.as_str())
                && !req.path.contains(&encode(value, false))
                && req.headers.iter().all(|(n, v)| {
                    !v.contains(value.as_str())
                        || !policy.logs_request_header(n)
                        || envoy_strips(n, v)
                        || dropped_uncounted(&policy, n, v, value)
                });
            if only_in_unlogged_header {
                unlogged += 1;
            } else if let Some(k) = redacted_as(kind)
                .iter()
                .find(|k| redacted.get(**k).is_some_and(|n| *n > 0))
            {
                *redacted.entry(k).or_default() -= 1;
                detected += 1;
            } else {
                missed.push(format!(
                    "{kind} {value:?} (request {} {}): record counts {redacted:?}",
                    req.method, req.path
                ));
            }
        }
        for b in &req.benign {
            benign_total += 1;
            if !spellings("", b).iter().any(|s| store.contains(s.as_str())) {
                false_positives.push(format!("{b:?} (request {} {})", req.method, req.path));
            }
        }
    }
    let in_logged_fields = secrets - unlogged;
    let recall = detected as f64 / in_logged_fields.max(1) as f64;
    eprintln!(
        "corpus ({source}): {secrets} secrets, {unlogged} only in headers the policy does not log, \
         {detected}/{in_logged_fields} in logged fields redacted (recall {:.2}%), {} leaks; \
         {} of {benign_total} benign values lost (false positives)",
        recall * 100.0,
        leaks.len(),
        false_positives.len()
    );
    assert!(
        leaks.is_empty(),
        "{} secrets leaked into the store:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    assert_eq!(
        detected,
        in_logged_fields,
        "every secret in a logged field is counted as redacted, one count each; missed:\n{}",
        missed.join("\n")
    );
    assert!(
        false_positives.is_empty(),
        "{} benign values were redacted:\n{}",
        false_positives.len(),
        false_positives.join("\n")
    );
    let counted = envoy.stat("wasmcustom.meshlog.redacted.email").unwrap_or(0);
    assert!(
        counted >= 100,
        "Envoy counter meshlog.redacted.email = {counted}"
    );
}
