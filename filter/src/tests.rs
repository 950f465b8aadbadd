//! The glue's error paths, natively, against the in-process host of `meshlog-mock-host`: what
//! Envoy cannot be made to do on demand (a second `on_configure` on the same root context, an
//! exact clock around `Retry-After`, a call answered with no headers at all) or does only at
//! shutdown (`on_done` while every dispatch fails).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::root::Root;
use meshlog_mock_host as host;
use proxy_wasm::traits::{Context, RootContext};

const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

fn config(service: &str) -> Vec<u8> {
    format!(
        r#"{{"collector":{{"compression":"none"}},"batch":{{"max_records":1,"max_age_ms":100,"retry_initial_ms":50,"retry_max_ms":10000}},"resource":{{"service.name":"{service}"}}}}"#
    )
    .into_bytes()
}

/// A root configured with `service`, on a fresh host at `T0`.
fn root(service: &str) -> Root {
    // The SDK installs its logger on the first `set_log_level` (on_configure makes one), with
    // no guard against two threads doing it at once, as a Wasm VM never would: once, first.
    static LOGGER: std::sync::Once = std::sync::Once::new();
    LOGGER.call_once(|| proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info));
    host::reset();
    host::with(|h| {
        h.config = config(service);
        h.now_ns = T0;
    });
    let mut root = Root::default();
    assert!(root.on_configure(0), "configuration refused");
    root
}

/// One request logged through an HTTP context of `root`.
fn log_one(root: &Root) {
    let ctx = root.create_http_context(1);
    assert!(ctx.is_some(), "an HTTP context");
    if let Some(mut ctx) = ctx {
        ctx.on_log();
    }
}

fn advance(ms: u64) {
    host::with(|h| h.now_ns += ms * MS);
}

fn calls() -> Vec<host::Call> {
    host::with(|h| h.calls.clone())
}

fn batch_id(c: &host::Call) -> String {
    let id = c
        .headers
        .iter()
        .find(|(k, _)| k == "meshlog-batch-id")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(!id.is_empty(), "a batch id header: {:?}", c.headers);
    id
}

/// Call `i` the host took.
fn call(i: usize) -> host::Call {
    let c = calls().get(i).cloned();
    assert!(c.is_some(), "no call {i}: {:?}", calls());
    c.unwrap_or_else(|| host::Call {
        token: 0,
        cluster: String::new(),
        headers: Vec::new(),
        body: Vec::new(),
        timeout_ms: 0,
    })
}

/// Delivers the answer to call `token`: these headers (none: a reset or timeout).
fn answer(root: &mut Root, token: u32, headers: &[(&str, &str)]) {
    host::with(|h| {
        h.response_headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        h.response_body = Vec::new();
    });
    root.on_http_call_response(token, headers.len(), 0, 0);
}

fn body(c: &host::Call) -> String {
    let b = String::from_utf8(c.body.clone());
    assert!(b.is_ok(), "compression none: a plain JSON body");
    b.unwrap_or_default()
}

#[test]
fn a_second_on_configure_on_the_same_root_keeps_vm_sequence_and_calls_in_flight() {
    let mut root = root("before");
    log_one(&root);
    root.on_tick();
    assert_eq!(calls().len(), 1, "one record, max_records 1: one call");
    let first = call(0);
    let id1 = batch_id(&first);
    let (vm, range) = id1.rsplit_once(':').unwrap_or_default();
    assert_eq!(range, "0-0");
    assert!(body(&first).contains(r#""before""#));

    // Reconfigured while that call is in flight.
    host::with(|h| h.config = config("after"));
    assert!(root.on_configure(0), "second configuration refused");
    answer(&mut root, first.token, &[(":status", "200")]);
    assert_eq!(
        host::metric("meshlog.records_sent"),
        1,
        "the old call's answer counts"
    );

    log_one(&root);
    root.on_tick();
    assert_eq!(calls().len(), 2);
    let second = call(1);
    // Same VM id, the sequence goes on, the new resource applies.
    assert_eq!(batch_id(&second), format!("{vm}:1-1"));
    assert!(body(&second).contains(r#""after""#));
    answer(&mut root, second.token, &[(":status", "200")]);
    assert_eq!(host::metric("meshlog.records_sent"), 2);
    assert_eq!(host::metric("meshlog.records_logged"), 2);
    assert_eq!(host::with(|h| h.tick_ms), 100);
}

#[test]
fn retry_after_holds_the_retry_until_it_has_passed() {
    let mut root = root("ra");
    log_one(&root);
    root.on_tick();
    let c = calls();
    answer(
        &mut root,
        c[0].token,
        &[(":status", "503"), ("retry-after", "2")],
    );
    advance(1_990);
    root.on_tick();
    assert_eq!(calls().len(), 1, "retried before Retry-After: 2 passed");
    advance(20);
    root.on_tick();
    assert_eq!(calls().len(), 2, "retried once Retry-After passed");
    assert_eq!(batch_id(&call(1)), batch_id(&call(0)));
    assert_eq!(call(1).body, call(0).body, "the same bytes");
    assert_eq!(host::metric("meshlog.batches_retried"), 1);
}

#[test]
fn a_call_answered_with_no_headers_is_retried_not_failed() {
    let mut root = root("timeout");
    log_one(&root);
    root.on_tick();
    // A reset or a timeout: the host delivers the callback with no headers at all.
    answer(&mut root, call(0).token, &[]);
    assert_eq!(host::metric("meshlog.records_failed"), 0);
    advance(10_000);
    root.on_tick();
    assert_eq!(calls().len(), 2);
    assert_eq!(batch_id(&call(1)), batch_id(&call(0)));
    answer(&mut root, call(1).token, &[(":status", "200")]);
    assert_eq!(host::metric("meshlog.records_sent"), 1);
}

#[test]
fn a_4xx_fails_the_batch_and_a_tally_reports_it() {
    let mut root = root("rejected");
    log_one(&root);
    root.on_tick();
    answer(&mut root, call(0).token, &[(":status", "400")]);
    assert_eq!(host::metric("meshlog.records_failed"), 1);
    assert_eq!(host::metric("meshlog.batches_failed"), 1);
    advance(60_000);
    root.on_tick();
    let c = calls();
    assert!(
        c.iter().skip(1).all(|x| batch_id(x) != batch_id(&c[0])),
        "a rejected batch is never resent"
    );
    let tally = c
        .iter()
        .skip(1)
        .find(|x| body(x).contains("meshlog.delivery.tally"));
    let tally = tally.expect("a delivery tally reports the failed record");
    assert!(
        body(tally).contains("meshlog.delivery.failed.sequences"),
        "{}",
        body(tally)
    );
}

#[test]
fn a_refused_dispatch_is_retried_later_and_on_done_flushes_into_refusals_without_harm() {
    let mut root = root("refused");
    host::with(|h| h.dispatch_status = host::status::BAD_ARGUMENT);
    log_one(&root);
    root.on_tick();
    assert_eq!(host::with(|h| h.refused), 1, "the dispatch was tried");
    assert!(calls().is_empty());

    // Shutdown while every dispatch fails: everything held is tried at once, nothing is in
    // flight, so the context may go at once (true) and proxy_done is not needed.
    log_one(&root);
    assert!(root.on_done(), "nothing in flight: done at once");
    assert!(
        host::with(|h| h.refused) > 1,
        "on_done flushed into the failing host"
    );
    assert_eq!(host::with(|h| h.done), 0);
    assert_eq!(host::metric("meshlog.records_sent"), 0);
    assert_eq!(host::metric("meshlog.records_failed"), 0);
    assert_eq!(host::metric("meshlog.records_logged"), 2);

    // The host recovers: a dispatch goes through on a later tick.
    host::with(|h| h.dispatch_status = host::status::OK);
    let mut root2 = root;
    advance(60_000);
    root2.on_tick();
    assert!(
        !calls().is_empty(),
        "after the pause, the held batches go out"
    );
}

/// The `metadata` property with `jwt_authn`'s payload of a verified token of `sub`, serialized
/// as Envoy hands it over.
fn jwt_metadata(sub: &str) -> Vec<u8> {
    use prost::Message as _;
    use prost_types::value::Kind;
    use prost_types::{Struct, Value};
    let s = |v: &str| Value {
        kind: Some(Kind::StringValue(v.to_owned())),
    };
    let payload = Struct {
        fields: [
            ("sub".to_owned(), s(sub)),
            ("iss".to_owned(), s("https://issuer.test")),
            ("azp".to_owned(), s("web")),
        ]
        .into_iter()
        .collect(),
    };
    let ns = Struct {
        fields: [(
            "payload".to_owned(),
            Value {
                kind: Some(Kind::StructValue(payload)),
            },
        )]
        .into_iter()
        .collect(),
    };
    let mut md = meshlog_core::enduser::Metadata::default();
    md.filter_metadata
        .insert("envoy.filters.http.jwt_authn".to_owned(), ns);
    md.encode_to_vec()
}

fn metadata_path() -> Vec<String> {
    vec!["metadata".to_owned()]
}

/// A root with the `enduser` section on, ids hashed.
fn enduser_root() -> Root {
    let _ = root("x");
    host::with(|h| {
        h.config = br#"{"collector":{"compression":"none"},"batch":{"max_records":1},
            "redaction":{"hmac_key":"0123456789abcdef0123456789abcdef","hmac_key_id":"k9"},
            "enduser":{"id":"hash","claims":["azp"]}}"#
            .to_vec();
    });
    let mut root = Root::default();
    assert!(root.on_configure(0), "configuration refused");
    root
}

#[test]
fn the_end_user_comes_from_verified_metadata_hashed_and_absent_metadata_is_no_identity() {
    let root = enduser_root();
    host::with(|h| h.properties = vec![(metadata_path(), jwt_metadata("user-42"))]);
    log_one(&root);
    let mut root = root;
    root.on_tick();
    let b = body(&call(0));
    assert!(b.contains("enduser.id"), "{b}");
    assert!(b.contains("hmac:k9:"), "{b}");
    assert!(!b.contains("user-42"), "the id is pseudonymous: {b}");
    assert!(
        b.contains("https://issuer.test") && b.contains("enduser.claim.azp"),
        "{b}"
    );

    // The access-logger mode logs through the root context: the same pseudonym.
    root.on_log();
    root.on_tick();
    assert_eq!(id_of(&body(&call(1))), id_of(&b));

    // No metadata (no verified token), then metadata that is not a message: the request is
    // still logged, with no identity, and nothing traps.
    host::with(|h| h.properties.clear());
    log_one(&root);
    root.on_tick();
    host::with(|h| h.properties = vec![(metadata_path(), vec![0xff, 0xff, 0xff])]);
    log_one(&root);
    root.on_tick();
    assert_eq!(calls().len(), 4);
    for i in [2, 3] {
        let b = body(&call(i));
        assert!(!b.contains("enduser."), "{b}");
        assert!(b.contains("meshlog.policy_version"), "{b}");
    }
    assert_eq!(host::metric("meshlog.records_logged"), 4);
}

/// The `hmac:k9:…` value in a JSON batch body.
fn id_of(body: &str) -> String {
    let at = body.find("hmac:k9:");
    assert!(at.is_some(), "{body}");
    body[at.unwrap_or(0)..]
        .chars()
        .take("hmac:k9:".len() + 32)
        .collect()
}

/// `collector.protocol: "http/protobuf"`: the batch goes out as OTLP protobuf, labelled so.
#[test]
fn a_protobuf_configuration_ships_protobuf_batches() {
    let mut root = root("svc");
    host::with(|h| {
        h.config = br#"{"collector":{"compression":"none","protocol":"http/protobuf"},"batch":{"max_records":1},"resource":{"service.name":"svc"}}"#.to_vec();
    });
    assert!(root.on_configure(0), "configuration refused");
    log_one(&root);
    advance(10);
    root.on_tick();
    let c = call(0);
    let header = |name: &str| {
        c.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("content-type").as_deref(),
        Some("application/x-protobuf")
    );
    // ExportLogsServiceRequest: field 1 (resource_logs), length-delimited.
    assert_eq!(c.body.first(), Some(&0x0a), "{:?}", c.body);
    let has = |needle: &[u8]| c.body.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"meshlog.http.access") && has(b"svc"), "{:?}", c.body);
    assert!(!batch_id(&c).is_empty());
}
