//! The end user in the record, end to end: real Envoy's `jwt_authn` verifies ES256 tokens
//! signed per run against a JWKS written per run, the filter reads the verified claims from
//! dynamic metadata (both attachment modes), the collector stores them.
//!
//! What must hold: a valid token names its user (`enduser.id`, issuer, allowlisted claims,
//! an e-mail claim redacted) and the token itself is nowhere in the store; a forged or expired
//! token is Envoy's 401, recorded with no identity; a token in a header Envoy does not verify
//! gives no identity, though the filter sees that header; with `id: hash` one user is one
//! pseudonym across requests and VMs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use meshlog_e2e::{Collector, Envoy, Sidecar, Upstream, send};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

const UPSTREAM: &str = env!("CARGO_BIN_EXE_meshlog-upstream");
const ISSUER: &str = "https://issuer.meshlog.test";
/// The JWKS path in the shipped bootstraps, replaced by this run's file.
const JWKS_PATH: &str = "envoy-config/jwt/jwks.json";

/// An ES256 signing key made for this run.
struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Signer {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Signer { key, rng }
    }

    /// The public key as a JWKS with key id `k1`.
    fn jwks(&self) -> String {
        // Uncompressed point: 0x04 || x || y.
        let p = self.key.public_key().as_ref();
        assert_eq!(p.len(), 65);
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "k1",
            "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..]),
        }]})
        .to_string()
    }

    /// A compact JWS of `claims`, key id `k1`.
    fn token(&self, claims: &Value) -> String {
        let header = B64.encode(json!({"alg": "ES256", "typ": "JWT", "kid": "k1"}).to_string());
        let payload = B64.encode(claims.to_string());
        let input = format!("{header}.{payload}");
        let sig = self.key.sign(&self.rng, input.as_bytes()).unwrap();
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a token for `sub`, valid for an hour (or expired an hour ago).
fn claims(sub: &str, expired: bool) -> Value {
    let now = now_s();
    let exp = if expired { now - 3600 } else { now + 3600 };
    json!({
        "iss": ISSUER, "aud": "shop", "sub": sub, "iat": now - 7200, "exp": exp,
        "scope": "orders:read orders:write", "azp": "web-app", "tenant": "acme",
        "act": {"sub": "support-7"}, "email": format!("{sub}@example.com"),
    })
}

/// One test's world: collector, upstream, Envoy with `bootstrap`, and the JWKS of `signer`.
struct World {
    collector: Collector,
    envoy: Envoy,
    _upstream: Upstream,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn start(bootstrap: &'static str, signer: &Signer, plugin_config: &str, workers: u32) -> World {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let jwks = keys.path().join("jwks.json");
    std::fs::write(&jwks, signer.jwks()).unwrap();
    let collector = Collector::start(data.path());
    let upstream = Upstream::start(UPSTREAM);
    let mut sidecar = Sidecar::new(upstream.addr.port(), collector.addr.port());
    sidecar.file = bootstrap;
    sidecar.plugin_config = Some(plugin_config.to_owned());
    sidecar
        .replace
        .push((JWKS_PATH.to_owned(), jwks.to_string_lossy().into_owned()));
    let envoy = Envoy::start(&sidecar, workers);
    World {
        collector,
        envoy,
        _upstream: upstream,
        _dirs: (data, keys),
    }
}

fn by_request_id(records: &[Value]) -> HashMap<String, Value> {
    records
        .iter()
        .map(|r| {
            let id = r["meshlog.request_id"]
                .as_str()
                .unwrap_or_else(|| panic!("no request id in {r}"));
            (id.to_owned(), r.clone())
        })
        .collect()
}

fn has_identity(r: &Value) -> bool {
    r.as_object()
        .unwrap()
        .keys()
        .any(|k| k.starts_with("enduser."))
}

#[test]
fn a_verified_token_names_the_end_user_in_the_http_filter_mode() {
    verified_identity_only("envoy-config/jwt-authn.yaml");
}

#[test]
fn a_verified_token_names_the_end_user_in_the_access_logger_mode() {
    verified_identity_only("envoy-config/jwt-authn-access-logger.yaml");
}

/// A request: its id, its extra headers, the status Envoy must answer.
type Case = (&'static str, Vec<(&'static str, String)>, u16);

fn verified_identity_only(bootstrap: &'static str) {
    let signer = Signer::new();
    let forger = Signer::new();
    // The filter logs x-user-token (redacted): it sees that header, and must take no identity
    // from it.
    let cfg = r#"{"batch":{"max_records":10,"max_age_ms":200},"resource":{"service.name":"shop"},
        "redaction":{"headers":{"request":["x-user-token","user-agent"]}},
        "enduser":{"key":"payload","claims":["scope","azp","tenant","act.sub","email","missing"]}}"#;
    let w = start(bootstrap, &signer, cfg, 1);

    let valid = signer.token(&claims("alice", false));
    let forged = forger.token(&claims("mallory", false));
    let expired = signer.token(&claims("alice", true));
    let bearer = |t: &str| format!("Bearer {t}");
    let cases: [Case; 5] = [
        ("valid", vec![("authorization", bearer(&valid))], 200),
        ("forged", vec![("authorization", bearer(&forged))], 401),
        ("expired", vec![("authorization", bearer(&expired))], 401),
        ("none", vec![], 200),
        (
            "unverified-header",
            vec![("x-user-token", valid.clone())],
            200,
        ),
    ];
    for (id, headers, status) in &cases {
        let mut h: Vec<(&str, &[u8])> = vec![("x-request-id", id.as_bytes())];
        h.extend(headers.iter().map(|(k, v)| (*k, v.as_bytes())));
        assert_eq!(
            send(w.envoy.listen, "GET", "/api/orders/1", &h, b""),
            *status,
            "{id}"
        );
    }

    let stored = w.collector.wait_records(cases.len(), &[&w.envoy]);
    assert_eq!(stored.len(), cases.len(), "one record per request");
    let by_id = by_request_id(&stored);

    let r = &by_id["valid"];
    assert_eq!(r["enduser.id"], "alice", "{r}");
    assert_eq!(r["enduser.issuer"], ISSUER, "{r}");
    assert_eq!(r["enduser.claim.scope"], "orders:read orders:write", "{r}");
    assert_eq!(r["enduser.claim.azp"], "web-app", "{r}");
    assert_eq!(r["enduser.claim.tenant"], "acme", "{r}");
    assert_eq!(r["enduser.claim.act.sub"], "support-7", "{r}");
    assert_eq!(r["enduser.claim.email"], "[REDACTED:email]", "{r}");
    assert!(r.get("enduser.claim.missing").is_none(), "{r}");
    assert_eq!(r["meshlog.redacted.email"], 1, "{r}");
    assert_eq!(r["http.response.status_code"], 200, "{r}");

    for (id, why) in [
        ("forged", "jwt_authn_access_denied{Jwt_verification_fails}"),
        ("expired", "jwt_authn_access_denied{Jwt_is_expired}"),
    ] {
        let r = &by_id[id];
        assert_eq!(r["meshlog.response_code_details"], why, "{id}: {r}");
        assert_eq!(r["http.response.status_code"], 401, "{id}: {r}");
        assert!(
            !has_identity(r),
            "{id}: no identity from a token Envoy refused: {r}"
        );
    }
    assert!(!has_identity(&by_id["none"]), "{}", by_id["none"]);
    let r = &by_id["unverified-header"];
    assert!(!has_identity(r), "a header is not a verified identity: {r}");
    let seen = r["http.request.header.x-user-token"]
        .as_str()
        .unwrap_or_else(|| panic!("the filter logs the header it saw: {r}"));
    assert_eq!(seen, "[REDACTED:jwt]");

    // No part of any token reached the store: not the signature, not the payload, not whole.
    let all = stored
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    for t in [&valid, &forged, &expired] {
        for part in std::iter::once(t.as_str()).chain(t.split('.').skip(1)) {
            assert!(!all.contains(part), "token part {part} stored:\n{all}");
        }
    }
    assert!(
        !all.contains("mallory"),
        "a forged token's claims are never read"
    );
}

#[test]
fn hashed_ids_map_one_user_to_one_pseudonym_across_requests_and_vms() {
    let signer = Signer::new();
    let cfg = r#"{"batch":{"max_records":10,"max_age_ms":200},"resource":{"service.name":"shop"},
        "redaction":{"hmac_key":"e2e-key-0123456789abcdef0123456789","hmac_key_id":"k1"},
        "enduser":{"id":"hash","claims":["azp"]}}"#;
    let w = start("envoy-config/jwt-authn.yaml", &signer, cfg, 2);
    let users = ["alice", "bob"];
    let tokens: Vec<String> = users
        .iter()
        .map(|u| signer.token(&claims(u, false)))
        .collect();
    let n = 40;
    for i in 0..n {
        let u = i % users.len();
        let rid = format!("{}-{i}", users[u]);
        let auth = format!("Bearer {}", tokens[u]);
        let h: Vec<(&str, &[u8])> = vec![
            ("x-request-id", rid.as_bytes()),
            ("authorization", auth.as_bytes()),
        ];
        assert_eq!(send(w.envoy.listen, "GET", "/api/orders/1", &h, b""), 200);
    }
    let stored = w.collector.wait_records(n, &[&w.envoy]);
    assert_eq!(stored.len(), n);

    let mut pseudonyms: HashMap<&str, HashSet<String>> = HashMap::new();
    let mut vms: HashSet<String> = HashSet::new();
    for r in &stored {
        let rid = r["meshlog.request_id"].as_str().unwrap();
        let user = users.iter().find(|u| rid.starts_with(*u)).unwrap();
        let id = r["enduser.id"]
            .as_str()
            .unwrap_or_else(|| panic!("no enduser.id: {r}"));
        assert!(id.starts_with("hmac:k1:"), "{id}");
        assert_eq!(id.len(), "hmac:k1:".len() + 32, "{id}");
        assert_eq!(r["enduser.claim.azp"], "web-app", "{r}");
        pseudonyms.entry(user).or_default().insert(id.to_owned());
        vms.insert(r["resource.meshlog.vm.id"].as_str().unwrap().to_owned());
    }
    assert_eq!(vms.len(), 2, "two workers, two VMs, both logged: {vms:?}");
    for u in users {
        assert_eq!(pseudonyms[u].len(), 1, "{u}: one pseudonym: {pseudonyms:?}");
    }
    assert_ne!(pseudonyms["alice"], pseudonyms["bob"]);
    let all = stored
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    for u in users {
        assert!(!all.contains(&format!("\"{u}\"")), "{u} stored in clear");
    }
    // The policy version says the ids are hashed: it differs from the same config keeping them.
    let version = stored[0]["meshlog.policy_version"].as_str().unwrap();
    let keep =
        meshlog_core::FilterConfig::from_json(cfg.replace("\"hash\"", "\"keep\"").as_bytes())
            .unwrap();
    assert_ne!(version, keep.redaction.version());
    let same = meshlog_core::FilterConfig::from_json(cfg.as_bytes()).unwrap();
    assert_eq!(version, same.redaction.version());
}
