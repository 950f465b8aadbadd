//! Every redaction entry point on arbitrary input (lossy UTF-8), with the default policy and with
//! policies using every action. The engine runs inside Envoy's Wasm VM: any panic is an outage.
//! Also feeds the input as a `redaction` config section.

#![no_main]

use libfuzzer_sys::fuzz_target;
use meshlog_core::redact::{Kind, RedactionPolicy, Summary};
use std::borrow::Cow;
use std::sync::OnceLock;

/// Attribute keys of records redacted at the collector (`RedactionPolicy::attribute`), one per
/// treatment.
const ATTRIBUTE_KEYS: &[&str] = &[
    "note",
    "url.query",
    "url.full",
    "http.request.header.referer",
    "http.request.header.authorization",
    "http.response.header.set-cookie",
    "client.address",
    "app.password",
];

/// Credential-library anchors glued to the input: reaches the row validators at once.
const ANCHORS: &[&str] = &["ghp_", "npm_", "sk-ant-", "xoxb-", "AKIA", "SG.", "dop_v1_", "hooks.slack.com/services/"];

const HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-forwarded-for",
    "forwarded",
    "referer",
    "location",
    "user-agent",
    "x-request-id",
];

fn policies() -> &'static [RedactionPolicy] {
    static P: OnceLock<Vec<RedactionPolicy>> = OnceLock::new();
    P.get_or_init(|| {
        let all_headers = r#""headers": {"request": ["*"], "response": ["*"]}"#;
        let key = r#""hmac_key": "fuzzing-key-0123456789abcdef", "hmac_key_id": "fz""#;
        let configs = [
            String::new(),
            // every action that partial is defined for, hash elsewhere, one drop, custom patterns,
            // templates, raw paths, tiny size limit
            format!(
                r#"{{{all_headers}, {key},
                  "detectors": {{"card": "partial", "ssn": "partial", "phone": "partial", "iban": "partial",
                    "email": "partial", "ip": "partial", "url_credentials": "partial",
                    "aws_access_key": "partial", "github_token": "partial", "gitlab_token": "partial",
                    "slack_token": "partial", "stripe_key": "partial", "google_api_key": "partial",
                    "openai_key": "partial", "anthropic_key": "partial", "api_key": "partial",
                    "jwt": "hash", "bearer": "hash", "basic": "hash", "aws_secret_key": "hash",
                    "slack_webhook": "hash", "private_key": "drop", "high_entropy": "hash",
                    "secret_param": "hash", "cookie": "hash", "credential": "hash", "oversize": "hash"}},
                  "custom": [{{"name": "emp", "pattern": "EMP-[0-9]{{3,6}}", "action": "hash"}},
                             {{"name": "anyx", "pattern": "x+y", "action": "mask"}}],
                  "path": {{"templates": ["/api/v1/users/{{user}}/orders/{{order}}", "/s/{{rest*}}", "/"],
                            "keep_raw_path": true}},
                  "ip": {{"ipv4_prefix": 13, "ipv6_prefix": 67}},
                  "max_value_bytes": 512}}"#
            ),
            // mask everything, ip hashed, drop on cards, no templating
            format!(
                r#"{{{all_headers}, {key}, "detectors": {{"ip": "hash", "card": "drop", "email": "drop"}},
                   "path": {{"template_ids": false}}}}"#
            ),
            // everything that can be off is off
            format!(
                r#"{{"detectors": {{{}}}}}"#,
                Kind::ALL
                    .iter()
                    .filter(|k| !matches!(k, Kind::Cookie | Kind::Credential))
                    .map(|k| format!(r#""{}": "off""#, k.name()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ];
        configs
            .iter()
            .map(|c| match RedactionPolicy::from_json(c.as_bytes()) {
                Ok(p) => p,
                Err(e) => panic!("fuzz policy does not parse: {e}"),
            })
            .collect()
    })
}

fn check(out: &Option<Cow<'_, str>>, input: &str) {
    // Borrowed output is the input itself.
    if let Some(Cow::Borrowed(b)) = out {
        assert_eq!(*b, input);
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() <= 4096 {
        let _ = RedactionPolicy::from_json(data);
    }
    let s = String::from_utf8_lossy(data);
    let s: &str = &s;
    for p in policies() {
        let mut sum = Summary::new();
        check(&p.text(s, &mut sum), s);
        check(&p.query(s, &mut sum), s);
        check(&p.url(s, &mut sum), s);
        check(&p.client_ip(s, &mut sum), s);
        let rp = p.path(s, &mut sum);
        check(&rp.path, s.split(['?', '#']).next().unwrap_or(s));
        for h in HEADERS {
            check(&p.request_header(h, s, &mut sum), s);
            check(&p.response_header(h, s, &mut sum), s);
            let _ = p.header_class(h);
        }
        for k in ATTRIBUTE_KEYS {
            check(&p.attribute(k, s, &mut sum), s);
        }
        for a in ANCHORS {
            let glued = format!("{a}{s}");
            check(&p.text(&glued, &mut sum), &glued);
        }
        let _ = sum.iter().count();
        assert!(sum.total() as usize <= 64 * (s.len() + 1) * 64);
    }
});
