//! The redaction engine end to end: API behaviour per field, the labelled PII corpus (generated,
//! or MESHLOG_CORPUS; zero leaks, false positives counted), and a property test planting secrets
//! anywhere in a record.

use crate::corpus_gen;
use meshlog_core::redact::{Action, HeaderClass, Kind, RedactionPolicy, Summary};
use proptest::prelude::*;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// An upper bound on one redaction marker's length: `[REDACTED:<kind>]`, a partial form such as
/// `[REDACTED:github_token:ghp_]`, or `hmac:<key id>:<32 hex>`.
const MAX_MARKER: usize = 64;

const KEY: &str = r#""hmac_key": "0123456789abcdef0123456789abcdef""#;

fn policy(json: &str) -> RedactionPolicy {
    from_json!(RedactionPolicy, json)
}

fn text(p: &RedactionPolicy, v: &str) -> String {
    p.text(v, &mut Summary::new())
        .map_or("<dropped>".into(), Cow::into_owned)
}

fn query(p: &RedactionPolicy, v: &str) -> String {
    p.query(v, &mut Summary::new())
        .map_or("<dropped>".into(), Cow::into_owned)
}

fn req_header(p: &RedactionPolicy, n: &str, v: &str) -> Option<String> {
    p.request_header(n, v, &mut Summary::new())
        .map(Cow::into_owned)
}

fn path(p: &RedactionPolicy, v: &str) -> (Option<String>, Option<String>) {
    let r = p.path(v, &mut Summary::new());
    (r.path.map(Cow::into_owned), r.route)
}

// ---------------------------------------------------------------------------------------------
// Leak checking: a secret leaks if it appears as is, percent-encoded, form-encoded, or (numeric
// kinds) as its bare digit/letter sequence. The output is also checked after decoding, so a
// partially encoded spelling (`tom.popescu%2Bbilling@…`) counts too.

fn pct_encode(s: &str, form: bool) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                o.push(char::from(b))
            }
            b' ' if form => o.push('+'),
            _ => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

fn pct_decode(s: &str, form: bool) -> String {
    let b = s.as_bytes();
    let mut o = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            o.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        o.push(if form && b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&o).into_owned()
}

fn alnum(s: &str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).collect()
}

fn numeric_kind(kind: &str) -> bool {
    matches!(kind, "card" | "ssn" | "phone" | "iban")
}

/// Whether `secret` (of `kind`) leaks in `out`.
fn leaks(out: &str, kind: &str, secret: &str) -> bool {
    let views = [
        out.to_string(),
        pct_decode(out, false),
        pct_decode(out, true),
    ];
    let spellings = [
        secret.to_string(),
        pct_encode(secret, false),
        pct_encode(secret, true),
    ];
    for v in &views {
        if spellings.iter().any(|s| v.contains(s.as_str())) {
            return true;
        }
        if numeric_kind(kind) && alnum(v).contains(&alnum(secret)) {
            return true;
        }
    }
    false
}

#[test]
fn leak_checker_catches_spellings() {
    assert!(leaks(
        "x tom.popescu%2Bbilling@example.com",
        "email",
        "tom.popescu+billing@example.com"
    ));
    assert!(leaks(
        "n=4111-1111-1111-1111",
        "card",
        "4111 1111 1111 1111"
    ));
    assert!(leaks("a%2B1-485-340-7053", "phone", "+1-485-340-7053"));
    assert!(leaks("q=QUy1xvCkgafr%21", "password", "QUy1xvCkgafr!"));
    assert!(!leaks(
        "[REDACTED:card:1111]",
        "card",
        "4111 1111 1111 1111"
    ));
}

// ---------------------------------------------------------------------------------------------
// Headers

#[test]
fn headers_are_default_deny() {
    let p = RedactionPolicy::default();
    assert_eq!(req_header(&p, "x-internal-thing", "v"), None);
    assert_eq!(req_header(&p, "cookie", "a=b"), None);
    assert!(p.logs_request_header("user-agent"));
    assert!(p.logs_request_header("User-Agent"));
    assert!(!p.logs_request_header("x-api-key"));
    assert!(p.logs_response_header("content-type"));
    assert_eq!(
        p.response_header("content-type", "application/json", &mut Summary::new()),
        Some(Cow::Borrowed("application/json"))
    );
    assert_eq!(
        p.response_header("set-cookie", "a=b", &mut Summary::new()),
        None
    );
    let p = policy(r#"{"headers": {"request": ["*"]}}"#);
    assert!(p.logs_request_header("anything"));
    assert_eq!(
        req_header(&p, "cookie", "a=b").unwrap(),
        "a=[REDACTED:cookie]"
    );
    let p = policy(r#"{"headers": {"request": ["x-b3-*", "x-custom"]}}"#);
    assert!(p.logs_request_header("x-b3-traceid"));
    assert!(p.logs_request_header("x-custom"));
    assert!(!p.logs_request_header("user-agent"));
}

#[test]
fn ordinary_headers_survive() {
    let p = policy(r#"{"headers": {"request": ["*"], "response": ["*"]}}"#);
    for (n, v) in [
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.85 Safari/537.36",
        ),
        (
            "user-agent",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Version/4.0 Chrome/120.0.0.0 Mobile Safari/537.36",
        ),
        ("user-agent", "python-requests/2.32.3"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
        (
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        ),
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-request-id", "f91624a8-940f-4f83-af99-eee3692f09e2"),
        ("x-request-id", "2026-07-21T01:04:52Z"),
        ("accept-language", "en-US,en;q=0.9,de;q=0.8"),
        ("accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
        (
            "content-type",
            "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
        ),
        ("content-type", "application/json; charset=utf-8"),
        ("content-length", "348"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "api.example.com:8443"),
        ("x-envoy-attempt-count", "1"),
        ("if-none-match", "W/\"5e15153d-120f\""),
        ("date", "Tue, 15 Nov 1994 08:12:31 GMT"),
        ("grpc-message", "deadline exceeded after 4.999s"),
        (
            "www-authenticate",
            "Bearer realm=\"example\", error=\"invalid_token\"",
        ),
        ("origin", "https://app.example.com"),
        (
            "referer",
            "https://app.example.com/docs/getting-started?tab=install#step-2",
        ),
    ] {
        assert_eq!(req_header(&p, n, v).as_deref(), Some(v), "{n}");
    }
}

#[test]
fn authorization_keeps_the_scheme_only() {
    let p = RedactionPolicy::default();
    let h = |v: &str| req_header(&p, "authorization", v).unwrap();
    assert_eq!(
        h("Bearer TEmxI6CmuxV5EbOApZOXzcycDeZ6dqmV"),
        "Bearer [REDACTED:bearer]"
    );
    assert_eq!(
        h("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"),
        "Bearer [REDACTED:bearer]"
    );
    assert_eq!(h("Basic dXNlcjpwYXNzd29yZA=="), "Basic [REDACTED:basic]");
    assert_eq!(
        h("token ghp_bciOx9gy1CJdObOIRpFqaDZeV7G5IfQHeVVE"),
        "token [REDACTED:github_token]"
    );
    assert_eq!(
        h("ghp_bciOx9gy1CJdObOIRpFqaDZeV7G5IfQHeVVE"),
        "[REDACTED:github_token]"
    );
    assert_eq!(
        h("fe513214825007e2e756aa04ab220315"),
        "[REDACTED:credential]"
    );
    // An unknown first word is not a scheme: it may be the secret itself.
    assert_eq!(h("hunter2 and more"), "[REDACTED:credential]");
    assert_eq!(
        h("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/2013/s3, Signature=abc"),
        "AWS4-HMAC-SHA256 [REDACTED:credential]"
    );
    assert_eq!(h(""), "");
    // Switching the bearer detector off does not log bearer tokens in clear.
    let p = policy(r#"{"detectors": {"bearer": "off"}}"#);
    assert_eq!(
        req_header(&p, "authorization", "Bearer abcdefgh12345678").unwrap(),
        "Bearer [REDACTED:bearer]"
    );
}

#[test]
fn cookies_keep_names_lose_values() {
    let p = policy(r#"{"headers": {"request": ["cookie"], "response": ["set-cookie"]}}"#);
    assert_eq!(
        req_header(
            &p,
            "cookie",
            "session=FTCloiADN5RpVI2XQWhX1ssrKrxqVqmCplppjs46; theme=dark;lang="
        )
        .unwrap(),
        "session=[REDACTED:cookie]; theme=[REDACTED:cookie]; lang="
    );
    assert_eq!(
        p.response_header(
            "set-cookie",
            "id=a3fWa; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Secure; HttpOnly",
            &mut Summary::new()
        )
        .unwrap(),
        "id=[REDACTED:cookie]; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Secure; HttpOnly"
    );
    let mut s = Summary::new();
    p.request_header("cookie", "a=1; b=2; c=3", &mut s);
    assert_eq!(s.get(Kind::Cookie), 3);
}

#[test]
fn credential_headers_by_name() {
    let p = policy(
        r#"{"headers": {"request": ["x-api-key", "x-my-secret-thing", "x-tenant", "x-special"],
                        "credential": ["x-special"]}}"#,
    );
    assert_eq!(p.header_class("x-api-key"), HeaderClass::Credential);
    assert_eq!(p.header_class("x-my-secret-thing"), HeaderClass::Credential);
    assert_eq!(p.header_class("x-special"), HeaderClass::Credential);
    assert_eq!(p.header_class("x-csrf-token"), HeaderClass::Credential);
    assert_eq!(p.header_class("x-tenant"), HeaderClass::Text);
    assert_eq!(p.header_class("x-forwarded-for"), HeaderClass::Ip);
    assert_eq!(p.header_class("referer"), HeaderClass::Url);
    assert_eq!(p.header_class("keyboard-layout"), HeaderClass::Text);
    assert_eq!(
        req_header(&p, "x-api-key", "abc").unwrap(),
        "[REDACTED:credential]"
    );
    assert_eq!(
        req_header(&p, "x-my-secret-thing", "abc").unwrap(),
        "[REDACTED:credential]"
    );
    assert_eq!(
        req_header(&p, "x-special", "abc").unwrap(),
        "[REDACTED:credential]"
    );
    assert_eq!(req_header(&p, "x-tenant", "acme").unwrap(), "acme");
}

#[test]
fn client_addresses_are_truncated() {
    let p = RedactionPolicy::default();
    assert_eq!(
        req_header(
            &p,
            "x-forwarded-for",
            "45.229.133.199, 10.0.0.1:8080,[2001:db8:1c7f:a189::1]:443, unknown"
        )
        .unwrap(),
        "45.229.133.0, 10.0.0.0:8080,[2001:db8:1c7f::]:443, unknown"
    );
    assert_eq!(
        req_header(
            &p,
            "forwarded",
            "for=192.0.2.60;proto=http;by=203.0.113.43, for=\"[2001:db8:cafe::17]:4711\""
        )
        .unwrap(),
        "for=192.0.2.0;proto=http;by=203.0.113.0, for=\"[2001:db8:cafe::]:4711\""
    );
    let mut s = Summary::new();
    assert_eq!(
        p.client_ip("45.229.133.199", &mut s).unwrap(),
        "45.229.133.0"
    );
    assert_eq!(
        p.client_ip("2001:db8:1c7f:a189:2da3:9640:1920:a66a", &mut s)
            .unwrap(),
        "2001:db8:1c7f::"
    );
    assert_eq!(
        p.client_ip("::ffff:45.229.133.199", &mut s).unwrap(),
        "45.229.133.0"
    );
    assert_eq!(p.client_ip("not an ip", &mut s).unwrap(), "not an ip");
    assert_eq!(s.get(Kind::Ip), 3);

    let p = policy(&format!(r#"{{"detectors": {{"ip": "hash"}}, {KEY}}}"#));
    let a = p
        .client_ip("45.229.133.199", &mut Summary::new())
        .unwrap()
        .into_owned();
    let b = p
        .client_ip("45.229.133.199:1234", &mut Summary::new())
        .unwrap()
        .into_owned();
    assert!(a.starts_with("hmac:k1:") && a.len() == 40, "{a}");
    assert_eq!(b, format!("{a}:1234"));
    let p = policy(r#"{"ip": {"ipv4_prefix": 16, "ipv6_prefix": 32}}"#);
    assert_eq!(
        p.client_ip("45.229.133.199", &mut Summary::new()).unwrap(),
        "45.229.0.0"
    );
    assert_eq!(
        p.client_ip("2001:db8:1c7f::1", &mut Summary::new())
            .unwrap(),
        "2001:db8::"
    );
    let p = policy(r#"{"detectors": {"ip": "off"}}"#);
    assert_eq!(
        p.client_ip("45.229.133.199", &mut Summary::new()).unwrap(),
        "45.229.133.199"
    );
    let p = policy(r#"{"detectors": {"ip": "drop"}}"#);
    assert_eq!(p.client_ip("45.229.133.199", &mut Summary::new()), None);
}

#[test]
fn referer_is_treated_as_a_url() {
    let p = RedactionPolicy::default();
    let r = |v: &str| req_header(&p, "referer", v).unwrap();
    assert_eq!(
        r("https://maria:CWNX0D1lZEzg@app.example.com/login"),
        "https://[REDACTED:url_credentials]@app.example.com/login"
    );
    assert_eq!(
        r(
            "https://app.example.com/users/12345/profile?tab=security&token=abc&email=jo%40example.com"
        ),
        "https://app.example.com/users/{id}/profile?tab=security&token=[REDACTED:secret_param]&email=[REDACTED:email]"
    );
    assert_eq!(
        r(
            "https://app.example.com/cb#access_token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln&state=xyz"
        ),
        "https://app.example.com/cb#access_token=[REDACTED:jwt]&state=[REDACTED:secret_param]"
    );
    assert_eq!(r("https://example.com/"), "https://example.com/");
    assert_eq!(r("android-app://com.example"), "android-app://com.example");
    assert_eq!(r("/relative/path?q=1"), "/relative/path?q=1");
    assert_eq!(r("about:blank"), "about:blank");
    let p = policy(r#"{"detectors": {"url_credentials": "partial"}}"#);
    assert_eq!(
        req_header(&p, "referer", "https://maria:pw@app.example.com/").unwrap(),
        "https://maria:[REDACTED:url_credentials]@app.example.com/"
    );
}

#[test]
fn national_ids_without_separators_under_neutral_keys() {
    let p = RedactionPolicy::default();
    let mut rng = corpus_gen::Rng::new(0x55e);
    let mut caught = 0;
    let mut kept = 0;
    for _ in 0..1000 {
        let ssn = corpus_gen::ssn(&mut rng).replace(['-', ' '], "");
        // Caught as the whole value of a neutral query key, in a Referer's query, in a JSON field.
        for out in [
            query(&p, &format!("ref={ssn}&lang=en")),
            req_header(&p, "referer", &format!("https://app.example.com/a?s={ssn}")).unwrap(),
            text(&p, &format!(r#"{{"ref": "{ssn}", "n": 2}}"#)),
            text(&p, &format!(r#"{{"member":{ssn}}}"#)),
        ] {
            assert!(!out.contains(&ssn), "{ssn} leaked: {out}");
            assert!(out.contains("[REDACTED:ssn]"), "{out}");
            caught += 1;
        }
        // Not under keys naming another number, not inside longer text.
        for (inp, out) in [
            (
                format!("order_id={ssn}"),
                query(&p, &format!("order_id={ssn}")),
            ),
            (format!("page={ssn}"), query(&p, &format!("page={ssn}"))),
            (format!("ref={ssn}x"), query(&p, &format!("ref={ssn}x"))),
            (format!("ref {ssn} ok"), text(&p, &format!("ref {ssn} ok"))),
            (
                format!(r#"{{"trackingNumber": "{ssn}"}}"#),
                text(&p, &format!(r#"{{"trackingNumber": "{ssn}"}}"#)),
            ),
        ] {
            assert_eq!(out, inp);
            kept += 1;
        }
    }
    for id in [
        "046454286",
        "AB123456C",
        "12345678Z",
        "X1234567L",
        "52998224725",
        "184067512345641",
        "11010519491231002X",
        "RSSMRA85T10A562S",
    ] {
        assert_eq!(query(&p, &format!("q={id}")), "q=[REDACTED:ssn]", "{id}");
        assert_eq!(query(&p, &format!("invoice={id}")), format!("invoice={id}"));
    }
    // An attribute of a record redacted at the collector.
    let mut s = Summary::new();
    assert_eq!(
        p.attribute("app.ref", "078051121", &mut s).as_deref(),
        Some("[REDACTED:ssn]")
    );
    assert_eq!(
        p.attribute("order.id", "078051121", &mut s).as_deref(),
        Some("078051121")
    );
    // Switched off with the ssn detector.
    let off = policy(r#"{"detectors": {"ssn": "off"}}"#);
    assert_eq!(query(&off, "ref=078051121"), "ref=078051121");
    eprintln!("national ids: {caught} caught, {kept} look-alike placements kept");
}

#[test]
fn url_headers_origin_only() {
    let p = policy(
        r#"{"headers": {"request": ["referer", "origin", "x-original-url", "user-agent"],
                        "response": ["location"], "url_origin_only": true}}"#,
    );
    let mut s = Summary::new();
    let mut r = |n: &str, v: &str| {
        p.request_header(n, v, &mut s)
            .map_or("<dropped>".into(), Cow::into_owned)
    };
    assert_eq!(
        r(
            "referer",
            "https://app.example.com:8443/users/12345?ref=078051120&q=x#frag"
        ),
        "https://app.example.com:8443"
    );
    assert_eq!(
        r(
            "referer",
            "https://maria:CWNX0D1lZEzg@app.example.com/login"
        ),
        "https://app.example.com"
    );
    assert_eq!(
        r("origin", "https://shop.example.com"),
        "https://shop.example.com"
    );
    assert_eq!(r("origin", "null"), "null");
    assert_eq!(r("x-original-url", "/admin?token=abc"), "<dropped>");
    // The host still goes through the detectors.
    assert_eq!(
        r("referer", "http://10.1.2.3:8080/x"),
        "http://10.1.2.0:8080"
    );
    // Not a URL header: untouched by the option.
    assert_eq!(
        r("user-agent", "curl/8.0 (https://a.example/x)"),
        "curl/8.0 (https://a.example/x)"
    );
    assert_eq!(s.total(), 2); // the userinfo and the address
    assert_eq!(
        p.response_header(
            "location",
            "https://id.example.com/cb?code=xyz",
            &mut Summary::new()
        )
        .as_deref(),
        Some("https://id.example.com")
    );
    // An unchanged origin is borrowed; the default policy keeps the path (and its version).
    assert!(matches!(
        p.request_header("origin", "https://a.example.com", &mut Summary::new()),
        Some(Cow::Borrowed(_))
    ));
    let d = RedactionPolicy::default();
    assert_eq!(
        req_header(&d, "referer", "https://app.example.com/a?q=1").unwrap(),
        "https://app.example.com/a?q=1"
    );
    assert_ne!(p.version(), policy(r#"{"headers": {"request": ["referer", "origin", "x-original-url", "user-agent"], "response": ["location"]}}"#).version());
    let e = RedactionPolicy::from_json(br#"{"headers": {"url_origin_only": "yes"}}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("headers.url_origin_only"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Query

#[test]
fn query_keys_stay_values_go() {
    let p = RedactionPolicy::default();
    assert_eq!(
        query(&p, "build=v7.28.3&password=QUy1xvCkgafr%21&sort=2025-06-01"),
        "build=v7.28.3&password=[REDACTED:secret_param]&sort=2025-06-01"
    );
    assert_eq!(
        query(
            &p,
            "aws_secret_access_key=hkWKFLf6xuI5aHUQPFeNBTxaQWk8JzFalHlsZfYc&AWSAccessKeyId=AKIAZTNOVMIZWDIAEQ3K&X-Amz-Signature=abc&Expires=1700000000"
        ),
        "aws_secret_access_key=[REDACTED:aws_secret_key]&AWSAccessKeyId=[REDACTED:aws_access_key]&X-Amz-Signature=[REDACTED:secret_param]&Expires=1700000000"
    );
    // Look-alike keys are not sensitive.
    assert_eq!(
        query(&p, "keyboard=qwerty&monkey=george&turkey=1&zip_code=94107"),
        "keyboard=qwerty&monkey=george&turkey=1&zip_code=94107"
    );
    for k in [
        "token",
        "access_token",
        "id_token",
        "refresh_token",
        "code",
        "state",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "api_key",
        "apikey",
        "KEY",
        "sig",
        "session",
        "ssn",
        "email",
        "card",
        "card_number",
        "cc",
        "Signature",
        "apiKey",
    ] {
        assert_eq!(
            query(&p, &format!("{k}=v1")),
            format!("{k}=[REDACTED:secret_param]"),
            "{k}"
        );
    }
    // Empty values and valueless keys stay.
    assert_eq!(query(&p, "token=&flag&&x=1"), "token=&flag&&x=1");
}

#[test]
fn query_values_are_scanned_decoded() {
    let p = RedactionPolicy::default();
    assert_eq!(
        query(&p, "u=jo%40example.com&page=2"),
        "u=[REDACTED:email]&page=2"
    );
    assert_eq!(query(&p, "to=%2B1-485-340-7053"), "to=[REDACTED:phone]");
    assert_eq!(query(&p, "to=+14155550134"), "to=[REDACTED:phone]");
    assert_eq!(
        query(&p, "q=call+%28415%29+555-0134+now"),
        "q=call+[REDACTED:phone]+now"
    );
    assert_eq!(
        query(&p, "n=4111+1111+1111+1111&x=%41"),
        "n=[REDACTED:card]&x=%41"
    );
    assert_eq!(
        query(&p, "q=hello+world&since=2025-06-01"),
        "q=hello+world&since=2025-06-01"
    );
    // double-encoded, and percent-escapes in plain text
    assert_eq!(query(&p, "u=jo%2540example.com"), "u=[REDACTED:email]");
    assert_eq!(text(&p, "note jo%40example.com"), "note [REDACTED:email]");
    // keys are scanned too
    assert_eq!(query(&p, "jo@example.com"), "[REDACTED:email]");
    // a URL inside a value: its own token and userinfo
    assert_eq!(
        query(
            &p,
            "redirect=https%3A%2F%2Fu%3Apw%40app.example.com%2Fcb%3Ftoken%3Dabc"
        ),
        "redirect=https%3A%2F%2F[REDACTED:url_credentials]%40app.example.com%2Fcb%3Ftoken%3D[REDACTED:secret_param]"
    );
    // allow_keys exempts the key rule, not the detectors
    let p = policy(r#"{"query": {"allow_keys": ["state"], "sensitive_keys": ["member_no"]}}"#);
    assert_eq!(
        query(&p, "state=CA&member_no=1234"),
        "state=CA&member_no=[REDACTED:secret_param]"
    );
    assert_eq!(query(&p, "state=jo@example.com"), "state=[REDACTED:email]");
    let p = policy(r#"{"detectors": {"secret_param": "off"}}"#);
    assert_eq!(
        query(&p, "token=abc&e=jo@example.com"),
        "token=abc&e=[REDACTED:email]"
    );
}

#[test]
fn unchanged_values_are_borrowed() {
    let p = RedactionPolicy::default();
    let mut s = Summary::new();
    assert!(matches!(
        p.query("a=1&b=two&since=2025-06-01", &mut s),
        Some(Cow::Borrowed(_))
    ));
    assert!(matches!(
        p.text("curl/8.5.0", &mut s),
        Some(Cow::Borrowed(_))
    ));
    assert!(matches!(
        p.path("/api/v1/orders", &mut s).path,
        Some(Cow::Borrowed(_))
    ));
    assert!(matches!(
        p.request_header("user-agent", "okhttp/4.12.0", &mut s),
        Some(Cow::Borrowed(_))
    ));
    assert!(matches!(
        p.request_header("referer", "https://x.example.com/a?b=c", &mut s),
        Some(Cow::Borrowed(_))
    ));
    assert!(s.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Paths

#[test]
fn paths_are_templated() {
    let p = RedactionPolicy::default();
    assert_eq!(
        path(
            &p,
            "/api/v1/users/12345/orders/fec94dbc-a3a0-4ac3-a098-b2cc2bd81831"
        ),
        (
            Some("/api/v1/users/{id}/orders/{uuid}".into()),
            Some("/api/v1/users/{id}/orders/{uuid}".into())
        )
    );
    assert_eq!(
        path(&p, "/api/v2/search/3732%20319487%2057497"),
        (
            Some("/api/v2/search/[REDACTED:card]".into()),
            Some("/api/v2/search/{card}".into())
        )
    );
    assert_eq!(
        path(&p, "/api/v1/orders/tom.popescu%2Bbilling@example.com"),
        (
            Some("/api/v1/orders/[REDACTED:email]".into()),
            Some("/api/v1/orders/{email}".into())
        )
    );
    assert_eq!(
        path(&p, "/api/v1/orders"),
        (Some("/api/v1/orders".into()), None)
    );
    assert_eq!(path(&p, "/"), (Some("/".into()), None));
    assert_eq!(path(&p, ""), (Some("".into()), None));
    assert_eq!(
        path(&p, "/shop;jsessionid=1A2B3C4D5E6F/items/42?x=1"),
        (
            Some("/shop;jsessionid=[REDACTED:secret_param]/items/{id}".into()),
            Some("/shop/items/{id}".into())
        )
    );
    let raw = policy(r#"{"path": {"keep_raw_path": true}}"#);
    assert_eq!(
        path(&raw, "/users/12345/mail/jo@example.com"),
        (
            Some("/users/12345/mail/[REDACTED:email]".into()),
            Some("/users/{id}/mail/{email}".into())
        )
    );
    // long paths spill past the on-stack segment list
    let long: String = (0..40).map(|i| format!("/s{i}/{i}")).collect();
    let want: String = (0..40).map(|i| format!("/s{i}/{{id}}")).collect();
    assert_eq!(path(&p, &long), (Some(want.clone()), Some(want)));
    let off = policy(r#"{"path": {"template_ids": false}}"#);
    assert_eq!(
        path(&off, "/users/12345"),
        (Some("/users/12345".into()), None)
    );
}

#[test]
fn configured_templates_take_precedence() {
    let p = policy(
        r#"{"path": {"templates": ["/api/v1/users/{user}/orders/{order}", "/api/v1/users/{user}/{rest*}",
                                   "/api/v1/{a}/{b}/orders/{c}", "/static/{file*}"]}}"#,
    );
    assert_eq!(
        path(&p, "/api/v1/users/alice/orders/ORD-7"),
        (
            Some("/api/v1/users/{user}/orders/{order}".into()),
            Some("/api/v1/users/{user}/orders/{order}".into())
        )
    );
    assert_eq!(
        path(&p, "/api/v1/users/alice/settings/theme").1.as_deref(),
        Some("/api/v1/users/{user}/{rest*}")
    );
    assert_eq!(
        path(&p, "/static/css/app.css").1.as_deref(),
        Some("/static/{file*}")
    );
    // no template: identifier templating
    assert_eq!(
        path(&p, "/api/v2/users/42").1.as_deref(),
        Some("/api/v2/users/{id}")
    );
    // the secret in a templated segment is counted but never logged
    let mut s = Summary::new();
    let r = p.path("/api/v1/users/jo@example.com/orders/1", &mut s);
    assert_eq!(
        r.path.as_deref(),
        Some("/api/v1/users/{user}/orders/{order}")
    );
    assert_eq!(s.get(Kind::Email), 1);
}

// ---------------------------------------------------------------------------------------------
// Actions

#[test]
fn actions_mask_hash_partial_drop() {
    let p = policy(&format!(
        r#"{{"detectors": {{"card": "partial", "email": "partial", "phone": "hash", "ssn": "drop",
                            "iban": "partial", "github_token": "partial"}}, {KEY}}}"#
    ));
    assert_eq!(
        text(&p, "card 4111 1111 1111 1111 ok"),
        "card [REDACTED:card:1111] ok"
    );
    assert_eq!(
        text(&p, "to jo@example.com"),
        "to [REDACTED:email]@example.com"
    );
    assert_eq!(
        text(&p, "DE89 3704 0044 0532 0130 00"),
        "[REDACTED:iban:DE..3000]"
    );
    assert_eq!(
        text(&p, "ghp_bciOx9gy1CJdObOIRpFqaDZeV7G5IfQHeVVE"),
        "[REDACTED:github_token:ghp_]"
    );
    // hashes join across spellings of the same number
    let a = text(&p, "+1-415-555-0134");
    let b = text(&p, "+1 (415) 555-0134");
    assert!(
        a.starts_with("hmac:k1:") && a.len() == "hmac:k1:".len() + 32,
        "{a}"
    );
    assert_eq!(a, b);
    assert_ne!(a, text(&p, "+1-415-555-0135"));
    // drop drops the whole field
    assert_eq!(p.text("ssn 663-74-7302", &mut Summary::new()), None);
    assert_eq!(p.query("a=1&b=663-74-7302", &mut Summary::new()), None);
    assert_eq!(p.path("/x/663-74-7302", &mut Summary::new()).path, None);
    assert_eq!(
        p.path("/x/663-74-7302", &mut Summary::new())
            .route
            .as_deref(),
        Some("/x/{ssn}")
    );
    assert_eq!(
        p.request_header("user-agent", "ssn 663-74-7302", &mut Summary::new()),
        None
    );
    // a different key gives different hashes; the key id is in the output
    let q = policy(
        r#"{"detectors": {"phone": "hash"}, "hmac_key": "another key of enough length", "hmac_key_id": "k2"}"#,
    );
    let c = text(&q, "+1-415-555-0134");
    assert!(c.starts_with("hmac:k2:"), "{c}");
    assert_ne!(a[8..], c[8..]);
}

#[test]
fn custom_patterns() {
    let p = policy(&format!(
        r#"{{"custom": [{{"name": "employee_id", "pattern": "EMP-[0-9]{{6}}"}},
                        {{"name": "ticket", "pattern": "TCK[0-9]+", "action": "hash"}}], {KEY}}}"#
    ));
    assert_eq!(
        text(&p, "by EMP-123456 today"),
        "by [REDACTED:employee_id] today"
    );
    let t = text(&p, "see TCK42");
    assert!(t.starts_with("see hmac:k1:"), "{t}");
    assert_eq!(
        path(&p, "/emp/EMP-123456").1.as_deref(),
        Some("/emp/{employee_id}")
    );
    assert_eq!(
        query(&p, "e=EMP-123456&x=EMP-1"),
        "e=[REDACTED:employee_id]&x=EMP-1"
    );
    let mut s = Summary::new();
    p.text("EMP-000001 EMP-000002", &mut s);
    assert_eq!(s.get(Kind::Custom), 2);
}

#[test]
fn detectors_switch_off() {
    for k in Kind::ALL {
        if matches!(k, Kind::Cookie | Kind::Credential) {
            continue;
        }
        policy(&format!(r#"{{"detectors": {{"{}": "off"}}}}"#, k.name()));
    }
    let p = policy(r#"{"detectors": {"email": "off", "card": "off"}}"#);
    assert_eq!(
        text(&p, "jo@example.com 4111111111111111"),
        "jo@example.com 4111111111111111"
    );
    let p = policy(r#"{"detectors": {"high_entropy": "off"}}"#);
    assert_eq!(
        text(&p, "TEmxI6CmuxV5EbOApZOXzcycDeZ6dqmV"),
        "TEmxI6CmuxV5EbOApZOXzcycDeZ6dqmV"
    );
}

#[test]
fn oversize_values_are_replaced_unscanned() {
    let p = policy(r#"{"max_value_bytes": 256}"#);
    let big = "a".repeat(300);
    assert_eq!(text(&p, &big), "[REDACTED:oversize]");
    assert_eq!(query(&p, &format!("q={big}")), "[REDACTED:oversize]");
    assert_eq!(
        query(&p, &format!("q={}&b=1", "a".repeat(200))),
        format!("q={}&b=1", "a".repeat(200))
    );
    let p = policy(r#"{"max_value_bytes": 256, "detectors": {"oversize": "drop"}}"#);
    assert_eq!(p.text(&big, &mut Summary::new()), None);
    let p = policy(r#"{"max_value_bytes": 256, "detectors": {"oversize": "off"}}"#);
    assert_eq!(text(&p, &big), big);
}

#[test]
fn summary_and_kinds() {
    let mut names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(names.len(), Kind::COUNT);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), Kind::COUNT, "kind names are unique");
    for (i, k) in Kind::ALL.iter().enumerate() {
        assert_eq!(k.index(), i);
        assert_eq!(Kind::from_name(k.name()), Some(*k));
        assert!(
            k.name()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
        );
    }
    let p = RedactionPolicy::default();
    let mut s = Summary::new();
    p.text(
        "jo@example.com and ann@example.org, 4111111111111111",
        &mut s,
    );
    p.query("token=x", &mut s);
    assert_eq!(
        s.iter().collect::<Vec<_>>(),
        [(Kind::Email, 2), (Kind::Card, 1), (Kind::SecretParam, 1)]
    );
    assert_eq!(s.total(), 4);
    let mut t = Summary::new();
    t.merge(&s);
    t.merge(&s);
    assert_eq!(t.get(Kind::Email), 4);
    assert_eq!(Action::from_name("partial"), Some(Action::Partial));
}

#[test]
fn version_is_stable_and_tracks_the_policy() {
    let a = RedactionPolicy::default();
    let b = RedactionPolicy::default();
    assert_eq!(a.version(), b.version());
    assert_eq!(a.version().len(), 16);
    assert_ne!(
        a.version(),
        policy(r#"{"detectors": {"email": "drop"}}"#).version()
    );
}

// ---------------------------------------------------------------------------------------------
// The labelled corpus

struct Req {
    id: String,
    path: String,
    headers: Vec<(String, String)>,
    secrets: Vec<(String, String)>,
    benign: Vec<String>,
}

/// The corpus: `MESHLOG_CORPUS` (a JSONL file in the shared corpus's format) when set, else the
/// generated one (`tests/src/corpus_gen.rs`), so the test stands on a bare clone.
fn load_corpus() -> (String, Vec<Req>) {
    match std::env::var("MESHLOG_CORPUS") {
        Ok(path) if !path.is_empty() => {
            let text = std::fs::read_to_string(PathBuf::from(&path))
                .unwrap_or_else(|e| panic!("MESHLOG_CORPUS={path}: {e}"));
            (path, parse_jsonl(&text))
        }
        _ => (
            format!(
                "generated (seed {:#x}, {} requests)",
                corpus_gen::DEFAULT_SEED,
                corpus_gen::DEFAULT_SIZE
            ),
            corpus_gen::corpus()
                .into_iter()
                .map(|r| Req {
                    id: r.id,
                    path: r.path,
                    headers: r.headers,
                    secrets: r.secrets,
                    benign: r.benign,
                })
                .collect(),
        ),
    }
}

fn parse_jsonl(text: &str) -> Vec<Req> {
    let s = |v: &Value| v.as_str().unwrap().to_string();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Req {
                id: s(&v["id"]),
                path: s(&v["path"]),
                headers: v["headers"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, x)| (k.clone(), s(x)))
                    .collect(),
                secrets: v["secrets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| (s(&x["kind"]), s(&x["value"])))
                    .collect(),
                benign: v["benign"].as_array().unwrap().iter().map(s).collect(),
            }
        })
        .collect()
}

#[test]
fn generated_corpus_is_deterministic_and_valid() {
    let a = corpus_gen::generate(7, 200);
    assert_eq!(a, corpus_gen::generate(7, 200), "same seed, same corpus");
    assert_ne!(
        a,
        corpus_gen::generate(8, 200),
        "another seed, another corpus"
    );
    let kinds: std::collections::BTreeSet<&str> = a
        .iter()
        .flat_map(|r| r.secrets.iter().map(|(k, _)| k.as_str()))
        .collect();
    assert_eq!(kinds.len(), corpus_gen::KINDS.len(), "{kinds:?}");
    for r in &a {
        // The JSONL form reads back to the same request.
        let back = &parse_jsonl(&corpus_gen::to_jsonl(r))[0];
        let mut headers = r.headers.clone();
        headers.sort();
        assert_eq!((&back.path, &back.headers), (&r.path, &headers));
        for (k, v) in &r.secrets {
            let digits: Vec<u8> = v.bytes().filter(u8::is_ascii_digit).collect();
            match k.as_str() {
                "card" => assert!(corpus_gen::luhn_valid(&digits), "{v}"),
                "github" => {
                    let body = &v[4..34];
                    assert_eq!(
                        &v[34..],
                        corpus_gen::base62(corpus_gen::crc32(body.as_bytes()), 6)
                    );
                }
                _ => {}
            }
        }
    }
    // Published check values: CRC-32 of "123456789", an IBAN from the registry's examples.
    assert_eq!(corpus_gen::crc32(b"123456789"), 0xcbf4_3926);
    assert_eq!(
        corpus_gen::iban("GB", "WEST12345698765432"),
        "GB82WEST12345698765432"
    );
    // National-id check digits on published examples: a CPF, a Chinese resident id, a codice
    // fiscale, a BSN.
    assert_eq!(corpus_gen::cpf_digit(&[5, 2, 9, 9, 8, 2, 2, 4, 7]), 2);
    assert_eq!(corpus_gen::cpf_digit(&[5, 2, 9, 9, 8, 2, 2, 4, 7, 2]), 5);
    assert_eq!(corpus_gen::ric_check("11010519491231002"), 'X');
    assert_eq!(corpus_gen::cf_check("RSSMRA85T10A562"), 'S');
    assert!(corpus_gen::elf_proef("111222333") && !corpus_gen::elf_proef("111222334"));
}

/// Everything the record would carry for `r`, as one text.
fn record_text(p: &RedactionPolicy, r: &Req, s: &mut Summary) -> String {
    let (path, query) = match r.path.split_once('?') {
        Some((a, b)) => (a, Some(b)),
        None => (r.path.as_str(), None),
    };
    let rp = p.path(path, s);
    let mut out = format!(
        "path={}\nroute={}\n",
        rp.path.as_deref().unwrap_or("<dropped>"),
        rp.route.as_deref().unwrap_or("-")
    );
    if let Some(q) = query {
        out.push_str(&format!(
            "query={}\n",
            p.query(q, s).as_deref().unwrap_or("<dropped>")
        ));
    }
    for (n, v) in &r.headers {
        if let Some(v) = p.request_header(n, v, s) {
            out.push_str(&format!("{n}: {v}\n"));
        }
    }
    out
}

/// The engine's kinds a corpus kind may be redacted as.
fn expected_kinds(corpus_kind: &str) -> &'static [Kind] {
    match corpus_kind {
        "email" => &[Kind::Email],
        "card" => &[Kind::Card],
        "ssn" => &[Kind::Ssn],
        "phone" => &[Kind::Phone],
        "iban" => &[Kind::Iban],
        "jwt" => &[Kind::Jwt, Kind::Bearer],
        "aws" => &[Kind::AwsAccessKey, Kind::AwsSecretKey],
        "github" => &[Kind::GithubToken],
        "slack" => &[Kind::SlackToken],
        "stripe" => &[Kind::StripeKey],
        "gapi" => &[Kind::GoogleApiKey],
        "password" => &[Kind::SecretParam],
        "bearer" => &[Kind::Bearer],
        "cookie" => &[Kind::Cookie],
        "xff" => &[Kind::Ip],
        "apikey_header" => &[Kind::Credential],
        "basic_url" => &[Kind::UrlCredentials],
        "vendor" => &[
            Kind::ApiKey,
            Kind::GitlabToken,
            Kind::AnthropicKey,
            Kind::OpenaiKey,
            Kind::SlackToken,
            Kind::Credential,
        ],
        "referer_token" => &[Kind::SecretParam, Kind::HighEntropy, Kind::AwsSecretKey],
        "national_id" => &[Kind::Ssn],
        _ => &[],
    }
}

struct CorpusResult {
    /// Secrets whose request counted a redaction of an expected kind (one count per secret).
    detected: usize,
    secrets: usize,
    leaks: Vec<String>,
    benign: usize,
    false_positives: Vec<String>,
    request_ids_changed: usize,
    summary: Summary,
    /// Secrets not counted as their kind: `id kind value`.
    undetected: Vec<String>,
}

fn run_corpus(p: &RedactionPolicy, corpus: &[Req]) -> CorpusResult {
    let mut res = CorpusResult {
        detected: 0,
        secrets: 0,
        leaks: Vec::new(),
        benign: 0,
        false_positives: Vec::new(),
        request_ids_changed: 0,
        summary: Summary::new(),
        undetected: Vec::new(),
    };
    for r in corpus {
        let mut s = Summary::new();
        let out = record_text(p, r, &mut s);
        res.summary.merge(&s);
        // counts of this request not yet attributed to a secret
        let mut budget: BTreeMap<Kind, u32> = s.iter().collect();
        for (kind, v) in &r.secrets {
            res.secrets += 1;
            if let Some(k) = expected_kinds(kind)
                .iter()
                .find(|k| budget.get(k).is_some_and(|n| *n > 0))
                && let Some(n) = budget.get_mut(k)
            {
                *n -= 1;
                res.detected += 1;
            } else {
                res.undetected
                    .push(format!("{} {kind} {v:?} ({s:?})", r.id));
            }
            if leaks(&out, kind, v) {
                res.leaks.push(format!("{} {kind} {v:?} in:\n{out}", r.id));
            }
        }
        for b in &r.benign {
            res.benign += 1;
            if !out.contains(b.as_str()) {
                res.false_positives
                    .push(format!("{} {b:?} in:\n{out}", r.id));
            }
        }
        if let Some((_, rid)) = r.headers.iter().find(|(n, _)| n == "x-request-id")
            && p.logs_request_header("x-request-id")
            && !out.contains(&format!("x-request-id: {rid}\n"))
        {
            res.request_ids_changed += 1;
        }
    }
    res
}

/// Every request of the corpus through three policies: the default; one that logs every header
/// of the corpus and keeps raw paths (so detectors, not templating, must catch path secrets);
/// one with hash and partial actions. Zero leaks, zero false positives.
#[test]
fn corpus_has_no_leaks_and_no_false_positives() {
    let (source, corpus) = load_corpus();
    eprintln!("corpus: {source}");
    assert!(corpus.len() >= 1700, "corpus has {} requests", corpus.len());
    let mut headers: Vec<&str> = corpus
        .iter()
        .flat_map(|r| r.headers.iter().map(|(n, _)| n.as_str()))
        .collect();
    headers.sort();
    headers.dedup();
    let all_headers = serde_json::to_string(&headers).unwrap();
    let policies = [
        ("default", RedactionPolicy::default()),
        (
            "all headers, raw paths",
            policy(&format!(
                r#"{{"headers": {{"request": {all_headers}}}, "path": {{"keep_raw_path": true, "template_ids": false}}}}"#
            )),
        ),
        (
            "hash + partial",
            policy(&format!(
                r#"{{"headers": {{"request": {all_headers}}}, "path": {{"keep_raw_path": true}}, {KEY},
                    "detectors": {{"card": "partial", "ssn": "partial", "phone": "partial", "iban": "partial",
                                   "email": "partial", "url_credentials": "partial", "github_token": "partial",
                                   "stripe_key": "partial", "google_api_key": "partial", "slack_token": "partial",
                                   "aws_access_key": "partial", "jwt": "hash", "bearer": "hash", "cookie": "hash",
                                   "credential": "hash", "secret_param": "hash", "aws_secret_key": "hash",
                                   "ip": "hash"}}}}"#
            )),
        ),
    ];
    for (name, p) in &policies {
        let r = run_corpus(p, &corpus);
        let by_kind: BTreeMap<&str, usize> = corpus
            .iter()
            .flat_map(|q| q.secrets.iter().map(|(k, _)| k.as_str()))
            .fold(BTreeMap::new(), |mut m, k| {
                *m.entry(k).or_default() += 1;
                m
            });
        let protected = 1.0 - r.leaks.len() as f64 / r.secrets as f64;
        let recall = r.detected as f64 / r.secrets as f64;
        eprintln!(
            "corpus [{name}]: {} requests, {} secrets ({by_kind:?}), leaks {}, protected {:.4}, \
             detected as their kind {:.4}; benign {}, false positives {}; request ids changed {}; \
             redactions {} {:?}",
            corpus.len(),
            r.secrets,
            r.leaks.len(),
            protected,
            recall,
            r.benign,
            r.false_positives.len(),
            r.request_ids_changed,
            r.summary.total(),
            r.summary
                .iter()
                .map(|(k, n)| format!("{}={n}", k.name()))
                .collect::<Vec<_>>()
        );
        if std::env::var("MESHLOG_CORPUS_DEBUG").is_ok() {
            for l in r
                .leaks
                .iter()
                .chain(&r.false_positives)
                .chain(&r.undetected)
            {
                eprintln!("DEBUG [{name}] {}", l.lines().next().unwrap_or(""));
            }
        }
        assert!(
            r.leaks.is_empty(),
            "[{name}] {} leaks, first:\n{}",
            r.leaks.len(),
            r.leaks[0]
        );
        // Every benign look-alike survives (order numbers failing Luhn, dates, versions, UUIDs,
        // hashes, SKUs): the detectors are structural and checksummed, so there is no reason to
        // accept any false positive on this corpus.
        assert!(
            r.false_positives.is_empty(),
            "[{name}] {} false positives, first:\n{}",
            r.false_positives.len(),
            r.false_positives[0]
        );
        assert_eq!(
            r.request_ids_changed, 0,
            "[{name}] request ids must survive"
        );
        if *name != "default" {
            // With every header logged and raw paths, each secret is caught by its own detector.
            assert_eq!(
                r.detected,
                r.secrets,
                "[{name}] detection recall; first undetected: {:?}",
                r.undetected.first()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Property: planted secrets never survive, in any spelling.

fn luhn_digit(body: &[u8]) -> u8 {
    let mut sum = 0u32;
    for (i, d) in body.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    ((10 - sum % 10) % 10) as u8
}

fn card() -> impl Strategy<Value = (&'static str, String)> {
    (
        prop::sample::select(vec![3u8, 4, 5, 6]),
        prop::collection::vec(0u8..10, 14),
        0..3usize,
    )
        .prop_map(|(first, rest, style)| {
            let mut d = vec![first];
            d.extend(rest);
            d.push(luhn_digit(&d));
            let s: String = d.iter().map(|x| char::from(b'0' + x)).collect();
            let grouped = |sep: &str| {
                s.as_bytes()
                    .chunks(4)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
                    .join(sep)
            };
            let v = match style {
                0 => s.clone(),
                1 => grouped(" "),
                _ => grouped("-"),
            };
            ("card", v)
        })
}

fn ssn() -> impl Strategy<Value = (&'static str, String)> {
    (1u32..900, 1u32..100, 1u32..10000, any::<bool>())
        .prop_filter("issued", |(a, _, _, _)| *a != 666)
        .prop_map(|(a, g, s, dash)| {
            let sep = if dash { "-" } else { " " };
            ("ssn", format!("{a:03}{sep}{g:02}{sep}{s:04}"))
        })
}

fn phone() -> impl Strategy<Value = (&'static str, String)> {
    (
        2u32..10,
        0u32..100,
        2u32..10,
        0u32..100,
        0u32..10000,
        0..6usize,
    )
        .prop_map(|(a1, a2, e1, e2, l, style)| {
            let (a, e) = (a1 * 100 + a2, e1 * 100 + e2);
            let v = match style {
                0 => format!("+1-{a:03}-{e:03}-{l:04}"),
                1 => format!("({a:03}) {e:03}-{l:04}"),
                2 => format!("{a:03}.{e:03}.{l:04}"),
                3 => format!("+1 {a:03} {e:03} {l:04}"),
                4 => format!("+44 20 {e:03}{l:04}"),
                _ => format!("+1{a:03}{e:03}{l:04}"),
            };
            ("phone", v)
        })
}

fn iban() -> impl Strategy<Value = (&'static str, String)> {
    (prop::collection::vec(0u8..10, 18), any::<bool>()).prop_map(|(bban, grouped)| {
        let bban: String = bban.iter().map(|x| char::from(b'0' + x)).collect();
        // check digits: 98 - (bban + "DE00" as digits) mod 97
        let rearranged = format!("{bban}131400");
        let r = rearranged
            .bytes()
            .fold(0u32, |r, b| (r * 10 + u32::from(b - b'0')) % 97);
        let compact = format!("DE{:02}{bban}", 98 - r);
        let v = if grouped {
            compact
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            compact
        };
        ("iban", v)
    })
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut o = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..=c.len() {
            o.push(char::from(A[((n >> (18 - 6 * k)) & 63) as usize]));
        }
    }
    o
}

fn jwt() -> impl Strategy<Value = (&'static str, String)> {
    (
        "[a-z0-9.@]{1,20}",
        prop::collection::vec(any::<u8>(), 16..64),
    )
        .prop_map(|(sub, sig)| {
            let h = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
            let p = b64url(format!(r#"{{"sub":"{sub}"}}"#).as_bytes());
            ("jwt", format!("{h}.{p}.{}", b64url(&sig)))
        })
}

fn random_looking(s: &str) -> bool {
    // The detector's contract for context-free AWS secrets (see token.rs): mixed case, a digit,
    // '/' or '+', entropy >= 4.0 bits, class transitions >= 0.3.
    let b = s.as_bytes();
    let mut counts = [0u32; 256];
    for x in b {
        counts[*x as usize] += 1;
    }
    let n = b.len() as f64;
    let h: f64 = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum();
    let class = |c: u8| {
        if c.is_ascii_uppercase() {
            0
        } else if c.is_ascii_lowercase() {
            1
        } else if c.is_ascii_digit() {
            2
        } else {
            3
        }
    };
    let t = b.windows(2).filter(|w| class(w[0]) != class(w[1])).count() as f64 / (n - 1.0);
    b.iter().any(u8::is_ascii_uppercase)
        && b.iter().any(u8::is_ascii_lowercase)
        && b.iter()
            .any(|c| c.is_ascii_digit() || *c == b'/' || *c == b'+')
        && h >= 4.0
        && t >= 0.3
}

fn token() -> impl Strategy<Value = (&'static str, String)> {
    prop_oneof![
        "AKIA[A-Z0-9]{16}".prop_map(|v| ("aws", v)),
        "[A-Za-z0-9/+]{40}"
            .prop_filter("random-looking", |v| random_looking(v))
            .prop_map(|v| ("aws", v)),
        "gh[pousr]_[A-Za-z0-9]{36}".prop_map(|v| ("github", v)),
        "github_pat_[A-Za-z0-9_]{60,82}".prop_map(|v| ("github", v)),
        "glpat-[A-Za-z0-9_-]{20}".prop_map(|v| ("gitlab", v)),
        "xox[bpars]-[0-9]{10,12}-[0-9]{10,12}-[A-Za-z0-9]{24}".prop_map(|v| ("slack", v)),
        "(sk|rk)_(live|test)_[A-Za-z0-9]{24,40}".prop_map(|v| ("stripe", v)),
        "AIza[A-Za-z0-9_-]{35}".prop_map(|v| ("gapi", v)),
        "sk-proj-[A-Za-z0-9]{20}[0-9][A-Z][A-Za-z0-9_-]{20,60}".prop_map(|v| ("openai", v)),
        "sk-ant-api03-[A-Za-z0-9_-]{40,90}".prop_map(|v| ("anthropic", v)),
        "[a-z]{1,10}(\\.[a-z]{1,8})?(\\+[a-z0-9]{1,5})?@[a-z]{2,10}\\.(com|org|net|io|co\\.uk)"
            .prop_map(|v| ("email", v)),
    ]
}

fn secret() -> impl Strategy<Value = (&'static str, String)> {
    prop_oneof![card(), ssn(), phone(), iban(), jwt(), token(), token()]
}

/// Words around a secret, and separators that cannot merge with it.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z]{0,6}",
        // words that trigger other rules: sensitive keys, auth schemes, URL pieces
        1 => prop::sample::select(vec![
            "key", "token", "pin", "pass", "ip", "code", "card", "ssn", "email", "Bearer", "basic",
            "tel", "sig", "password", "https://", "state", "AKIA", "eyJ", "DE", "sk", "x",
        ])
        .prop_map(String::from),
    ]
}

fn sep() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        " ", ",", ";", "|", "(", ")", "\"", "'", "<", ">", ": ", "\t", "=", "-", ".", "_", "&",
        ":", "/", "\n", "[", "]", "{", "}", "*", "!",
    ])
}

#[derive(Debug, Clone)]
struct Planted {
    kind: &'static str,
    secret: String,
    text: String,
    place: usize,
    encode: usize,
}

fn planted() -> impl Strategy<Value = Planted> {
    (secret(), word(), sep(), sep(), word(), 0..8usize, 0..3usize)
        // A 40-byte AWS secret glued to '/' is a longer base64 run (documented limitation).
        .prop_filter(
            "aws secret next to '/'",
            |((kind, secret), _, s1, s2, _, _, _)| {
                !(*kind == "aws" && secret.len() == 40 && (*s1 == "/" || *s2 == "/"))
            },
        )
        .prop_map(|((kind, secret), a, s1, s2, b, place, encode)| {
            let text = format!("{a}{s1}{secret}{s2}{b}");
            Planted {
                kind,
                secret,
                text,
                place,
                encode,
            }
        })
}

fn encode(s: &str, how: usize, form: bool) -> String {
    match how {
        // everything but unreserved
        0 => pct_encode(s, form),
        // only what would break the structure
        _ => {
            let mut o = String::new();
            for c in s.chars() {
                match c {
                    '/' | '?' | '#' | '%' | '&' | '=' | '+' | ';' => {
                        o.push_str(&format!("%{:02X}", c as u32))
                    }
                    ' ' if form => o.push('+'),
                    ' ' => o.push_str("%20"),
                    '\t' => o.push_str("%09"),
                    '"' => o.push_str("%22"),
                    _ => o.push(c),
                }
            }
            o
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES overrides, for long local runs
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(384),
        ..ProptestConfig::default()
    })]

    #[test]
    fn planted_secrets_never_leak(
        items in prop::collection::vec(planted(), 1..5),
        filler in "[a-z]{1,8}",
        keep_raw in any::<bool>(),
    ) {
        let p = if keep_raw {
            policy(r#"{"path": {"keep_raw_path": true, "template_ids": false},
                       "headers": {"request": ["user-agent", "x-request-id", "referer", "x-custom", "cookie", "authorization"]}}"#)
        } else {
            RedactionPolicy::default()
        };
        let mut segs = vec!["api".to_string(), filler.clone()];
        let mut params = vec![format!("page=2&sort={filler}")];
        let mut headers: Vec<(&str, String)> = vec![("user-agent", "curl/8.5.0".into())];
        for (i, it) in items.iter().enumerate() {
            match it.place {
                0 => segs.push(encode(&it.text, it.encode, false)),
                1 => params.push(format!("{}={}", ["q", "note", "ref", "x", "n"][i % 5], encode(&it.text, it.encode, true))),
                2 => headers.push(("user-agent", it.text.clone())),
                3 => headers.push(("x-request-id", it.text.clone())),
                4 => headers.push(("referer", format!("https://app.example.com/{}/{}?q={}", filler,
                        encode(&it.text, it.encode, false), encode(&it.text, it.encode, true)))),
                5 => headers.push(("cookie", format!("theme=dark; c{i}={}", it.text))),
                6 => headers.push(("authorization", format!("Bearer {}", it.text))),
                _ => headers.push(("x-custom", it.text.clone())),
            }
        }
        let raw_path = format!("/{}", segs.join("/"));
        let raw_query = params.join("&");
        let mut s = Summary::new();
        let rp = p.path(&raw_path, &mut s);
        let mut out = format!("{}\n{}\n", rp.path.as_deref().unwrap_or(""), rp.route.as_deref().unwrap_or(""));
        out.push_str(p.query(&raw_query, &mut s).as_deref().unwrap_or(""));
        for (n, v) in &headers {
            if let Some(v) = p.request_header(n, v, &mut s) {
                out.push_str(&format!("\n{n}: {v}"));
            }
        }
        for it in &items {
            prop_assert!(!leaks(&out, it.kind, &it.secret), "{} {:?} leaked in:\n{out}", it.kind, it.secret);
        }
    }

    /// Arbitrary input never panics and never grows without bound (see [`growth_within_bound`]).
    #[test]
    fn arbitrary_input_is_safe(v in ".{0,300}") {
        growth_within_bound(&v)?;
    }

    /// The same bound on input dense with values every detector redacts, so the markers'
    /// share of the bound is exercised, not only the encoding's.
    #[test]
    fn secret_dense_input_grows_within_the_bound(parts in prop::collection::vec(prop_oneof![
        ".{0,12}",
        Just(" jo@example.com ".to_owned()),
        Just(" 4111 1111 1111 1111 ".to_owned()),
        Just(" 203.0.113.7 ".to_owned()),
        Just(" 2001:db8::1 ".to_owned()),
        Just("&token=s3cr3tVALUE&".to_owned()),
        Just(" Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl ".to_owned()),
        Just(" ghp_0123456789abcdefghijklmnopqrstuvwxyz ".to_owned()),
        Just(" https://maria:pw@host.example/ ".to_owned()),
        Just(" DE89370400440532013000 ".to_owned()),
        Just("/users/12345/".to_owned()),
    ], 0..24)) {
        growth_within_bound(&parts.concat())?;
    }
}

/// Each output is at most the input plus, per value the call reports redacted, one marker
/// ([`MAX_MARKER`] bytes); for what is percent-encoded (query, path, route, URL, referer), three
/// bytes for each of those.
fn growth_within_bound(v: &str) -> Result<(), TestCaseError> {
    let p = RedactionPolicy::default();
    let mut outs: Vec<(&str, usize, u32)> = Vec::new();
    let mut check = |what: &'static str, f: &dyn Fn(&mut Summary) -> Option<usize>| {
        let mut s = Summary::new();
        if let Some(len) = f(&mut s) {
            outs.push((what, len, s.total()));
        }
    };
    let encoded = |what: &str| matches!(what, "query" | "path" | "route" | "url" | "referer");
    check("text", &|s| p.text(v, s).map(|o| o.len()));
    check("query", &|s| p.query(v, s).map(|o| o.len()));
    check("path", &|s| p.path(v, s).path.map(|o| o.len()));
    check("route", &|s| p.path(v, s).route.map(|o| o.len()));
    check("url", &|s| p.url(v, s).map(|o| o.len()));
    check("client_ip", &|s| p.client_ip(v, s).map(|o| o.len()));
    for h in [
        "authorization",
        "cookie",
        "x-forwarded-for",
        "referer",
        "user-agent",
    ] {
        check(h, &|s| p.header_value(h, v, s).map(|o| o.len()));
    }
    // A route template may turn a short all-digit segment (`/7/`) into `{id}`: up to 4 bytes
    // per segment that no redaction counts.
    let segments = v.matches('/').count() + 1;
    for (what, len, redacted) in outs {
        let per_byte = if encoded(what) { 3 } else { 1 };
        let templated = if matches!(what, "path" | "route") {
            4 * segments
        } else {
            0
        };
        let bound = per_byte * (v.len() + MAX_MARKER * redacted as usize) + templated;
        prop_assert!(
            len <= bound,
            "{what}: {} bytes in, {len} out with {redacted} redactions (bound {bound}): {v:?}",
            v.len()
        );
    }
    Ok(())
}

/// What the default policy costs in benign values, per look-alike type: 1,000 of each under a
/// neutral query key, as free text and in a logged text header. The measured cost is zero and
/// must stay zero.
#[test]
fn benign_look_alikes_survive_per_type() {
    let p = RedactionPolicy::default();
    let mut rng = corpus_gen::Rng::new(0xbe9e);
    let mut report = Vec::new();
    for (t, name) in corpus_gen::BENIGN_TYPES.iter().enumerate() {
        let mut harmed = 0;
        for _ in 0..1000 {
            let (key, v) = corpus_gen::benign_of(&mut rng, t);
            let q = query(&p, &format!("{key}={}", corpus_gen::pct(&v)));
            let txt = text(&p, &format!("ref {v} ok"));
            let h = req_header(&p, "x-request-id", &v);
            if !q.contains(&corpus_gen::pct(&v)) || !txt.contains(&v) || h.as_deref() != Some(&v) {
                harmed += 1;
                eprintln!("harmed {name}: {v:?} -> {q:?} {txt:?} {h:?}");
            }
        }
        report.push(format!("{name}: {harmed}/1000"));
        assert_eq!(harmed, 0, "{name}: {harmed} of 1000 harmed");
    }
    eprintln!("benign cost of the default policy: {}", report.join(", "));
}

/// The per-thread memo of clean header values (and of repeated free text: user agent, host,
/// SNI) gives what the full pass gives, every time, per policy: the second and third sight of a
/// value return the same text and count the same kinds as the first, and a value one policy
/// leaves clean is still redacted under another policy on the same thread.
#[test]
fn memoized_header_values_redact_as_the_first_pass() {
    let plain = policy("{}");
    let strict = policy(
        r#"{"custom": [{"name": "proxy_name", "pattern": "envoy"}, {"name": "bench_ua", "pattern": "bench"}]}"#,
    );
    let values = [
        ("server", "envoy"),
        ("content-type", "text/plain; charset=utf-8"),
        ("x-forwarded-proto", "http"),
        ("content-length", "2"),
        ("user-agent", "meshlog-bench/1.0"),
        ("user-agent", "mail jo@example.com"),
        ("x-forwarded-for", "10.1.2.3"),
        ("authorization", "Bearer abc.def.ghi"),
        ("cookie", "session=abcdef0123456789abcdef"),
        (
            "referer",
            "https://shop.example.com/cart?card=4111111111111111",
        ),
    ];
    for p in [&plain, &strict, &plain, &strict] {
        for (name, value) in values {
            let mut first = Summary::new();
            let a = p.header_value(name, value, &mut first).map(Cow::into_owned);
            for _ in 0..2 {
                let mut again = Summary::new();
                let b = p.header_value(name, value, &mut again).map(Cow::into_owned);
                assert_eq!(a, b, "{name}: {value}");
                assert_eq!(first, again, "{name}: {value}");
            }
            let mut t1 = Summary::new();
            let x = p.repeated_text(value, &mut t1).map(Cow::into_owned);
            let mut t2 = Summary::new();
            let y = p.text(value, &mut t2).map(Cow::into_owned);
            let mut t3 = Summary::new();
            let z = p.repeated_text(value, &mut t3).map(Cow::into_owned);
            assert_eq!((&x, &t1), (&y, &t2), "{value}");
            assert_eq!((&x, &t1), (&z, &t3), "{value}");
        }
    }
    // Clean under the default policy, redacted under the strict one, in either order.
    let mut s = Summary::new();
    assert_eq!(
        strict.header_value("server", "envoy", &mut s).as_deref(),
        Some("[REDACTED:proxy_name]")
    );
    assert_eq!(s.get(Kind::Custom), 1);
    assert_eq!(
        plain
            .header_value("server", "envoy", &mut Summary::new())
            .as_deref(),
        Some("envoy")
    );
    assert_eq!(
        text(&strict, "meshlog-bench/1.0"),
        "meshlog-[REDACTED:bench_ua]/1.0"
    );
}

/// The memo also skips the detector pass for a path segment and a query key seen clean before
/// (the route's fixed words, `user` in `?user=`): the second and third sight give the same path,
/// route, query and counts as the first, and a segment or key one policy leaves clean is still
/// redacted (or treated as sensitive) under another policy on the same thread.
#[test]
fn memoized_path_segments_and_query_keys_redact_as_the_first_pass() {
    let plain = policy("{}");
    let strict = policy(
        r#"{"custom": [{"name": "orders_word", "pattern": "orders"}],
            "query": {"sensitive_keys": ["user"]}}"#,
    );
    let paths = [
        "/api/orders/12345",
        "/api/orders/jo@example.com/items",
        "/api;jsessionid=abc/orders/4111111111111111",
        "/users/fec94dbc-a3a0-4ac3-a098-b2cc2bd81831/orders",
    ];
    let queries = [
        "user=jo%40example.com",
        "user=bob&page=2",
        "page=2&token=abc",
        "jo%40example.com=1&user",
    ];
    for p in [&plain, &strict, &plain, &strict] {
        for raw in paths {
            let mut first = Summary::new();
            let a = p.path(raw, &mut first);
            let a = (a.path.map(Cow::into_owned), a.route);
            for _ in 0..2 {
                let mut again = Summary::new();
                let b = p.path(raw, &mut again);
                assert_eq!(a, (b.path.map(Cow::into_owned), b.route), "{raw}");
                assert_eq!(first, again, "{raw}");
            }
        }
        for raw in queries {
            let mut first = Summary::new();
            let a = p.query(raw, &mut first).map(Cow::into_owned);
            for _ in 0..2 {
                let mut again = Summary::new();
                assert_eq!(a, p.query(raw, &mut again).map(Cow::into_owned), "{raw}");
                assert_eq!(first, again, "{raw}");
            }
        }
    }
    // Clean under the default policy, redacted under the strict one, in either order.
    for _ in 0..2 {
        let r = plain.path("/api/orders/12345", &mut Summary::new());
        assert_eq!(r.route.as_deref(), Some("/api/orders/{id}"));
        let r = strict.path("/api/orders/12345", &mut Summary::new());
        assert_eq!(r.route.as_deref(), Some("/api/{orders_word}/{id}"));
        assert_eq!(query(&plain, "user=bob"), "user=bob");
        assert_eq!(query(&strict, "user=bob"), "user=[REDACTED:secret_param]");
    }
}
