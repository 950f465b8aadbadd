//! The end user behind a request, from the claims Envoy verified: `enduser.*`.
//!
//! Identity is taken only from Envoy's dynamic metadata, which only filters write: `jwt_authn`
//! with `payload_in_metadata` (namespace `envoy.filters.http.jwt_authn`), Istio's `istio_authn`
//! (`request.auth.claims`, each claim a list of strings), or any namespace and key an operator
//! names. A token in a header is never decoded here: a header is what the client sent, the
//! metadata is what Envoy checked.
//!
//! The filter reads the property `metadata` with one `get_property`: Envoy (1.40, checked by
//! `tests/tests/enduser.rs`) answers with the stream's `envoy.config.core.v3.Metadata` message
//! serialized as protobuf, decoded here with `prost` ([`Metadata`]). A deeper path
//! (`metadata.filter_metadata.<namespace>`) is a map, which Envoy answers in proxy-wasm's pair
//! encoding with untyped leaves (strings raw, numbers as 8 native-endian bytes, nested objects as
//! nested pairs): a string and a number cannot be told apart there, so it is not used.
//!
//! Every value then goes through the redaction policy like any other text (an e-mail claim is
//! masked, or keyed-hashed, as any e-mail); `enduser.id` is kept, replaced by its keyed hash, or
//! dropped, as configured.
//!
//! # Configuration reference (`"enduser"`)
//!
//! Absent (or `null`): off, nothing read. An object turns it on; every field is optional.
//!
//! ```json
//! {
//!   "source": "jwt_authn" | "istio_authn" | "metadata",
//!   "namespace": "envoy.filters.http.jwt_authn",
//!   "key": "payload",
//!   "id_claim": "sub",
//!   "claims": ["scope", "azp", "tenant", "act.sub"],
//!   "id": "keep" | "hash" | "drop"
//! }
//! ```
//!
//! - `source`: default `jwt_authn`. Picks the default `namespace` (`envoy.filters.http.jwt_authn`,
//!   `istio_authn`; `metadata` has none, so `namespace` is required) and `key`.
//! - `namespace`: the dynamic-metadata namespace (filter name) holding the claims.
//! - `key`: the field of that namespace holding the claims (`jwt_authn`'s `payload_in_metadata`;
//!   default for `istio_authn`: `request.auth.claims`). Absent: the namespace itself when it
//!   holds `id_claim`, else its first field (by name) that is an object holding `id_claim`, so
//!   several `jwt_authn` providers with their own `payload_in_metadata` names all work.
//! - `id_claim`: the claim recorded as `enduser.id`, default `sub`.
//! - `claims`: further claims recorded as `enduser.claim.<name>` (at most 32; names of 1 to 64
//!   characters of `A-Z a-z 0-9 _ - . :`). A dotted name (`act.sub`) is a claim of that name,
//!   else a path into nested objects. Lists are joined with spaces (`scope` as an array).
//! - `id`: `keep` (default; redacted like any text), `hash` (`hmac:<key id>:<32 hex>` under
//!   `redaction.hmac_key`, which is then required: the same user maps to the same value in
//!   every VM and proxy sharing the key) or `drop`.
//!
//! The whole section is folded into the redaction policy version (`meshlog.policy_version`):
//! records made under different `enduser` settings never share a version.

use crate::capture::AttributeSource;
use crate::config::fields::{FieldError, Fields};
use crate::record::EndUser;
use crate::redact::{RedactionPolicy, Summary};
use prost::Message as _;
use prost_types::value::Kind as V;
use prost_types::{Struct, Value};
use serde_json::Value as Json;

/// `jwt_authn`'s dynamic-metadata namespace.
pub const JWT_AUTHN_NAMESPACE: &str = "envoy.filters.http.jwt_authn";
/// Istio's authentication filter's dynamic-metadata namespace.
pub const ISTIO_AUTHN_NAMESPACE: &str = "istio_authn";
/// Where `istio_authn` keeps the verified claims (claim name to a list of strings).
pub const ISTIO_CLAIMS_KEY: &str = "request.auth.claims";
/// `envoy.config.core.v3.Metadata` as Envoy serializes the `metadata` property: the
/// `filter_metadata` map (field 1); `typed_filter_metadata` (field 2) is skipped.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    /// Namespace (filter name) to its metadata.
    #[prost(btree_map = "string, message", tag = "1")]
    pub filter_metadata: std::collections::BTreeMap<String, Struct>,
}

/// The label of `enduser.id`'s keyed hash.
const ID_HASH_LABEL: &str = "enduser.id";
/// Most further claims.
const MAX_CLAIMS: usize = 32;

/// Which filter verified the claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Envoy's `jwt_authn` with `payload_in_metadata`.
    JwtAuthn,
    /// Istio's `istio_authn` (what a `RequestAuthentication` sets up).
    IstioAuthn,
    /// A namespace (and key) the operator names.
    Metadata,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::JwtAuthn => "jwt_authn",
            Source::IstioAuthn => "istio_authn",
            Source::Metadata => "metadata",
        }
    }
}

/// What becomes of `enduser.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdMode {
    /// Recorded, through the text detectors.
    Keep,
    /// Replaced by its keyed hash (`hmac:<key id>:<hex>`): pseudonymous but joinable.
    Hash,
    /// Left out; issuer and claims are still recorded.
    Drop,
}

impl IdMode {
    fn name(self) -> &'static str {
        match self {
            IdMode::Keep => "keep",
            IdMode::Hash => "hash",
            IdMode::Drop => "drop",
        }
    }
}

/// The `enduser` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndUserConfig {
    /// Which filter verified the claims.
    pub source: Source,
    /// The dynamic-metadata namespace read.
    pub namespace: String,
    /// The field of the namespace holding the claims; `None`: looked for.
    pub key: Option<String>,
    /// The claim recorded as `enduser.id`.
    pub id_claim: String,
    /// Further claims recorded as `enduser.claim.<name>`.
    pub claims: Vec<String>,
    /// What becomes of `enduser.id`.
    pub id: IdMode,
}

impl EndUserConfig {
    /// The property the filter reads: `metadata`, the stream's whole dynamic metadata.
    pub const PROPERTY: [&'static str; 1] = ["metadata"];

    /// The settings as one line, folded into the redaction policy version.
    pub fn canonical(&self) -> String {
        let mut c = format!(
            "enduser;source={};namespace={}:{};key={};id_claim={}:{};id={};claims=",
            self.source.name(),
            self.namespace.len(),
            self.namespace,
            self.key
                .as_deref()
                .map_or_else(|| "-".to_owned(), |k| format!("{}:{k}", k.len())),
            self.id_claim.len(),
            self.id_claim,
            self.id.name(),
        );
        for n in &self.claims {
            c.push_str(&format!("{}:{n};", n.len()));
        }
        c
    }
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

const NAME_RULE: &str = "must be 1 to 64 characters of a-z, A-Z, 0-9, '_', '-', '.', ':'";

/// Reads the `enduser` section at `path` (`section` as found; absent or `null`: off). A `hash`
/// id needs `redaction.hmac_key`: `policy` is the redaction policy already read.
pub(crate) fn parse(
    path: String,
    section: Option<&Json>,
    policy: &RedactionPolicy,
    errs: &mut Vec<FieldError>,
) -> Option<EndUserConfig> {
    let v = section.filter(|v| !v.is_null())?;
    let mut f = Fields::object(path, Some(v), errs);
    let source = f.get("source", Source::JwtAuthn, errs);
    let ns_path = f.child_path("namespace");
    let namespace = match (f.string("namespace", errs), source) {
        (Some(n), _) => Some(n),
        (None, Source::JwtAuthn) => Some(JWT_AUTHN_NAMESPACE.to_owned()),
        (None, Source::IstioAuthn) => Some(ISTIO_AUTHN_NAMESPACE.to_owned()),
        (None, Source::Metadata) => {
            errs.push(FieldError::invalid(
                ns_path.clone(),
                "required when source is \"metadata\"",
            ));
            None
        }
    };
    if let Some(n) = &namespace
        && n.is_empty()
    {
        errs.push(FieldError::invalid(ns_path, "must not be empty"));
    }
    let key_path = f.child_path("key");
    let key = f.string("key", errs).or_else(|| {
        (source == Source::IstioAuthn && namespace.as_deref() == Some(ISTIO_AUTHN_NAMESPACE))
            .then(|| ISTIO_CLAIMS_KEY.to_owned())
    });
    if key.as_deref() == Some("") {
        errs.push(FieldError::invalid(key_path, "must not be empty"));
    }
    let id_claim = f.text(
        "id_claim",
        "sub",
        |s| (!valid_name(s)).then_some(NAME_RULE),
        errs,
    );
    let claims_path = f.child_path("claims");
    let claims = f.strings("claims", errs).unwrap_or_default();
    if claims.len() > MAX_CLAIMS {
        errs.push(FieldError::invalid(
            claims_path.clone(),
            format!("at most {MAX_CLAIMS} claims, got {}", claims.len()),
        ));
    }
    for (i, c) in claims.iter().enumerate() {
        if !valid_name(c) {
            errs.push(FieldError::invalid(
                format!("{claims_path}[{i}]"),
                NAME_RULE,
            ));
        } else if claims.get(..i).is_some_and(|before| before.contains(c)) {
            errs.push(FieldError::invalid(
                format!("{claims_path}[{i}]"),
                format!("{c:?} is listed twice"),
            ));
        }
    }
    let id_path = f.child_path("id");
    let id = f.get("id", IdMode::Keep, errs);
    if id == IdMode::Hash && !policy.has_hmac_key() {
        errs.push(FieldError::invalid(
            id_path,
            "\"hash\" needs redaction.hmac_key (and hmac_key_id names it in every hash)",
        ));
    }
    f.finish(errs);
    Some(EndUserConfig {
        source,
        namespace: namespace.unwrap_or_default(),
        key,
        id_claim,
        claims,
        id,
    })
}

/// Reads the verified claims from `src` and maps them to `enduser.*` under `policy`; `None`
/// when the request carries none (no token, or a token Envoy did not verify), or the metadata
/// cannot be read: identity is never guessed.
pub fn capture(
    src: &impl AttributeSource,
    cfg: &EndUserConfig,
    policy: &RedactionPolicy,
    sum: &mut Summary,
) -> Option<EndUser> {
    let raw = src.property(&EndUserConfig::PROPERTY)?;
    let md = decode(&raw)?;
    map_claims(md.filter_metadata.get(&cfg.namespace)?, cfg, policy, sum)
}

/// The `metadata` property as Envoy serializes it; `None` when it is not that message.
pub fn decode(raw: &[u8]) -> Option<Metadata> {
    Metadata::decode(raw).ok()
}

/// The claims in namespace `ns` mapped to `enduser.*` (see the module docs).
pub fn map_claims(
    ns: &Struct,
    cfg: &EndUserConfig,
    policy: &RedactionPolicy,
    sum: &mut Summary,
) -> Option<EndUser> {
    let payload = payload(ns, cfg)?;
    let raw_id = claim(payload, &cfg.id_claim)?;
    let id = match cfg.id {
        IdMode::Keep => policy.text(&raw_id, sum).map(|c| c.into_owned()),
        IdMode::Hash => policy.keyed_hash(ID_HASH_LABEL, raw_id.as_bytes()),
        IdMode::Drop => None,
    };
    let issuer = claim(payload, "iss").and_then(|v| policy.text(&v, sum).map(|c| c.into_owned()));
    let claims = cfg
        .claims
        .iter()
        .filter_map(|name| {
            let v = claim(payload, name)?;
            let v = policy.text(&v, sum)?.into_owned();
            Some((name.clone(), v))
        })
        .collect();
    Some(EndUser { id, issuer, claims })
}

/// The object holding the claims: `key` if configured, else the namespace itself when it holds
/// the id claim, else its first object field holding it.
fn payload<'a>(ns: &'a Struct, cfg: &EndUserConfig) -> Option<&'a Struct> {
    let as_struct = |v: &'a Value| match &v.kind {
        Some(V::StructValue(s)) => Some(s),
        _ => None,
    };
    if let Some(k) = &cfg.key {
        return ns.fields.get(k).and_then(as_struct);
    }
    if claim(ns, &cfg.id_claim).is_some() {
        return Some(ns);
    }
    ns.fields
        .values()
        .filter_map(as_struct)
        .find(|s| claim(s, &cfg.id_claim).is_some())
}

/// Claim `name` as text: the field of that name, else (a dotted name) a path into nested
/// objects. `None` when absent, empty, null or an object.
fn claim(payload: &Struct, name: &str) -> Option<String> {
    if let Some(v) = payload.fields.get(name) {
        return scalar(v);
    }
    let (head, rest) = name.split_once('.')?;
    match &payload.fields.get(head)?.kind {
        Some(V::StructValue(s)) => claim(s, rest),
        _ => None,
    }
}

/// A value as text: strings as they are, whole numbers without a fraction, lists (Istio's
/// claims, an array `scope`) joined with spaces.
fn scalar(v: &Value) -> Option<String> {
    let s = match &v.kind {
        Some(V::StringValue(s)) => s.clone(),
        Some(V::NumberValue(n)) => number(*n),
        Some(V::BoolValue(b)) => b.to_string(),
        Some(V::ListValue(l)) => l
            .values
            .iter()
            .filter_map(scalar)
            .collect::<Vec<_>>()
            .join(" "),
        Some(V::NullValue(_) | V::StructValue(_)) | None => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// JSON numbers arrive as doubles: `1700000000` not `1700000000.0`.
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        format!("{n:.0}")
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FilterConfig;
    use prost_types::ListValue;
    use std::collections::BTreeMap;

    fn s(v: &str) -> Value {
        Value {
            kind: Some(V::StringValue(v.to_owned())),
        }
    }

    fn obj(fields: Vec<(&str, Value)>) -> Struct {
        Struct {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn nested(fields: Vec<(&str, Value)>) -> Value {
        Value {
            kind: Some(V::StructValue(obj(fields))),
        }
    }

    fn list(items: &[&str]) -> Value {
        Value {
            kind: Some(V::ListValue(ListValue {
                values: items.iter().map(|i| s(i)).collect(),
            })),
        }
    }

    fn cfg(json: &str) -> FilterConfig {
        FilterConfig::from_json(json.as_bytes()).unwrap()
    }

    fn enduser(c: &FilterConfig) -> &EndUserConfig {
        c.enduser.as_ref().unwrap()
    }

    /// `jwt_authn`'s metadata: the payload under the provider's `payload_in_metadata` name.
    fn jwt_ns() -> Struct {
        obj(vec![(
            "payload",
            nested(vec![
                ("iss", s("https://issuer.example")),
                ("sub", s("user-42")),
                ("scope", s("read write")),
                ("azp", s("web-app")),
                (
                    "exp",
                    Value {
                        kind: Some(V::NumberValue(1_700_000_000.0)),
                    },
                ),
                ("email", s("alice@example.com")),
                ("act", nested(vec![("sub", s("admin-7"))])),
                ("tenant", list(&["acme", "beta"])),
            ]),
        )])
    }

    #[test]
    fn off_unless_configured() {
        assert_eq!(FilterConfig::default().enduser, None);
        assert_eq!(cfg(r#"{"enduser":null}"#).enduser, None);
        let c = cfg(r#"{"enduser":{}}"#);
        let e = enduser(&c);
        assert_eq!(e.source, Source::JwtAuthn);
        assert_eq!(e.namespace, JWT_AUTHN_NAMESPACE);
        assert_eq!(e.key, None);
        assert_eq!(e.id_claim, "sub");
        assert_eq!(e.id, IdMode::Keep);
    }

    #[test]
    fn maps_id_issuer_and_allowlisted_claims_through_redaction() {
        let c = cfg(
            r#"{"enduser":{"claims":["scope","azp","tenant","act.sub","email","exp","missing"]}}"#,
        );
        let mut sum = Summary::new();
        let u = map_claims(&jwt_ns(), enduser(&c), &c.redaction, &mut sum).unwrap();
        assert_eq!(u.id.as_deref(), Some("user-42"));
        assert_eq!(u.issuer.as_deref(), Some("https://issuer.example"));
        let claims: Vec<(&str, &str)> = u
            .claims
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            claims,
            [
                ("scope", "read write"),
                ("azp", "web-app"),
                ("tenant", "acme beta"),
                ("act.sub", "admin-7"),
                ("email", "[REDACTED:email]"),
                ("exp", "1700000000"),
            ]
        );
        assert_eq!(
            sum.iter().map(|(k, n)| (k.name(), n)).collect::<Vec<_>>(),
            [("email", 1)]
        );
    }

    #[test]
    fn an_email_id_is_masked_or_hashed_like_any_email() {
        let ns = obj(vec![("p", nested(vec![("sub", s("bob@example.com"))]))]);
        let c = cfg(r#"{"enduser":{}}"#);
        let mut sum = Summary::new();
        let u = map_claims(&ns, enduser(&c), &c.redaction, &mut sum).unwrap();
        assert_eq!(u.id.as_deref(), Some("[REDACTED:email]"));
        assert_eq!(u.issuer, None);
        let c = cfg(
            r#"{"redaction":{"hmac_key":"0123456789abcdef0123456789abcdef","detectors":{"email":"hash"}},"enduser":{}}"#,
        );
        let u = map_claims(&ns, enduser(&c), &c.redaction, &mut sum).unwrap();
        assert!(u.id.unwrap().starts_with("hmac:k1:"));
    }

    #[test]
    fn id_kept_hashed_or_dropped() {
        const KEY: &str = r#""hmac_key":"0123456789abcdef0123456789abcdef","hmac_key_id":"k7""#;
        let hashed = cfg(&format!(
            r#"{{"redaction":{{{KEY}}},"enduser":{{"id":"hash","claims":["azp"]}}}}"#
        ));
        let mut sum = Summary::new();
        let a = map_claims(&jwt_ns(), enduser(&hashed), &hashed.redaction, &mut sum).unwrap();
        let id = a.id.clone().unwrap();
        assert!(id.starts_with("hmac:k7:"), "{id}");
        assert_eq!(id.len(), "hmac:k7:".len() + 32);
        assert!(!id.contains("user-42"));
        let b = map_claims(&jwt_ns(), enduser(&hashed), &hashed.redaction, &mut sum).unwrap();
        assert_eq!(a, b, "same user, same pseudonym");
        let other = obj(vec![("p", nested(vec![("sub", s("user-43"))]))]);
        let o = map_claims(&other, enduser(&hashed), &hashed.redaction, &mut sum).unwrap();
        assert_ne!(o.id, a.id);
        assert_eq!(a.claims, [("azp".to_owned(), "web-app".to_owned())]);

        let dropped = cfg(r#"{"enduser":{"id":"drop"}}"#);
        let d = map_claims(&jwt_ns(), enduser(&dropped), &dropped.redaction, &mut sum).unwrap();
        assert_eq!(d.id, None);
        assert_eq!(d.issuer.as_deref(), Some("https://issuer.example"));

        let keep = cfg(r#"{"enduser":{}}"#);
        let none = FilterConfig::default();
        let versions = [
            keep.redaction.version(),
            dropped.redaction.version(),
            hashed.redaction.version(),
            none.redaction.version(),
        ];
        for (i, v) in versions.iter().enumerate() {
            for w in versions.iter().skip(i + 1) {
                assert_ne!(v, w, "the policy version follows the enduser section");
            }
        }
        assert_eq!(
            cfg(r#"{"enduser":{"id":"keep"}}"#).redaction.version(),
            keep.redaction.version()
        );
    }

    #[test]
    fn istio_claims_are_lists_under_request_auth_claims() {
        let ns = obj(vec![
            (
                "request.auth.principal",
                s("https://issuer.example/user-42"),
            ),
            (
                ISTIO_CLAIMS_KEY,
                nested(vec![
                    ("iss", list(&["https://issuer.example"])),
                    ("sub", list(&["user-42"])),
                    ("scope", list(&["read", "write"])),
                ]),
            ),
        ]);
        let c = cfg(r#"{"enduser":{"source":"istio_authn","claims":["scope"]}}"#);
        assert_eq!(enduser(&c).namespace, ISTIO_AUTHN_NAMESPACE);
        assert_eq!(enduser(&c).key.as_deref(), Some(ISTIO_CLAIMS_KEY));
        let mut sum = Summary::new();
        let u = map_claims(&ns, enduser(&c), &c.redaction, &mut sum).unwrap();
        assert_eq!(u.id.as_deref(), Some("user-42"));
        assert_eq!(u.issuer.as_deref(), Some("https://issuer.example"));
        assert_eq!(u.claims, [("scope".to_owned(), "read write".to_owned())]);
    }

    #[test]
    fn a_configured_namespace_and_key_or_a_flat_namespace() {
        let flat = obj(vec![("user", s("u1")), ("iss", s("corp"))]);
        let c =
            cfg(r#"{"enduser":{"source":"metadata","namespace":"corp.auth","id_claim":"user"}}"#);
        assert_eq!(enduser(&c).namespace, "corp.auth");
        let mut sum = Summary::new();
        let u = map_claims(&flat, enduser(&c), &c.redaction, &mut sum).unwrap();
        assert_eq!(u.id.as_deref(), Some("u1"));
        let keyed = cfg(r#"{"enduser":{"key":"other"}}"#);
        assert_eq!(
            map_claims(&jwt_ns(), enduser(&keyed), &keyed.redaction, &mut sum),
            None,
            "a configured key that is absent: no identity"
        );
        let keyed = cfg(r#"{"enduser":{"key":"payload"}}"#);
        assert!(map_claims(&jwt_ns(), enduser(&keyed), &keyed.redaction, &mut sum).is_some());
    }

    #[test]
    fn no_id_claim_no_identity() {
        let c = cfg(r#"{"enduser":{"claims":["azp"]}}"#);
        let ns = obj(vec![("p", nested(vec![("azp", s("x")), ("iss", s("i"))]))]);
        let mut sum = Summary::new();
        assert_eq!(map_claims(&ns, enduser(&c), &c.redaction, &mut sum), None);
        assert_eq!(
            map_claims(&Struct::default(), enduser(&c), &c.redaction, &mut sum),
            None
        );
    }

    /// The `metadata` property as Envoy 1.40 answered it in `tests/tests/enduser.rs` (a token
    /// with `sub` `alice`, `jwt_authn` with `payload_in_metadata: payload`): field 1 map
    /// entries, each a key and a `google.protobuf.Struct`.
    const ENVOY_METADATA: &str = concat!(
        "0aa2020a1c656e766f792e66696c746572732e687474702e6a77745f617574686e1281020afe010a",
        "077061796c6f616412f2012aef010a100a0674656e616e7412061a0461636d650a1c0a05656d6169",
        "6c12131a11616c696365406578616d706c652e636f6d0a0d0a0361756412061a0473686f700a0e0a",
        "0373756212071a05616c6963650a100a03657870120911000040ac3cc5da410a230a0573636f7065",
        "121a1a186f72646572733a72656164206f72646572733a77726974650a100a03617a7012091a0777",
        "65622d6170700a240a03697373121d1a1b68747470733a2f2f6973737565722e6d6573686c6f672e",
        "746573740a100a036961741209110000402032c5da410a1d0a0361637412162a140a120a03737562",
        "120b1a09737570706f72742d37",
    );

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn decodes_envoys_metadata_message_and_rejects_garbage() {
        let md = decode(&unhex(ENVOY_METADATA)).unwrap();
        let ns = &md.filter_metadata[JWT_AUTHN_NAMESPACE];
        let c = cfg(r#"{"enduser":{"claims":["exp","act.sub"]}}"#);
        let mut sum = Summary::new();
        let u = map_claims(ns, enduser(&c), &c.redaction, &mut sum).unwrap();
        assert_eq!(u.id.as_deref(), Some("alice"));
        assert_eq!(
            u.claims,
            [
                ("exp".to_owned(), "1796534961".to_owned()),
                ("act.sub".to_owned(), "support-7".to_owned())
            ]
        );
        let mut md = Metadata::default();
        md.filter_metadata.insert("x".into(), jwt_ns());
        assert_eq!(decode(&md.encode_to_vec()), Some(md));
        assert_eq!(decode(&[0xff, 0xff, 0xff]), None);
        assert_eq!(decode(b""), Some(Metadata::default()));
    }

    #[test]
    fn config_errors_name_their_paths() {
        let e = FilterConfig::from_json(
            br#"{"enduser":{"source":"header","id":"hash","id_claim":"","claims":["ok","bad name","ok"],"extra":1}}"#,
        )
        .unwrap_err();
        let got: Vec<(&str, &str)> =
            e.0.iter()
                .map(|f| (f.path.as_str(), f.reason.as_str()))
                .collect();
        let paths: Vec<&str> = got.iter().map(|g| g.0).collect();
        assert_eq!(
            paths,
            [
                "$.enduser.source",
                "$.enduser.id_claim",
                "$.enduser.claims[1]",
                "$.enduser.claims[2]",
                "$.enduser.id",
                "$.enduser.extra"
            ],
            "{got:?}"
        );
        assert!(got[0].1.contains("unknown variant `header`"), "{got:?}");
        assert!(got[4].1.contains("redaction.hmac_key"), "{got:?}");
        let e = FilterConfig::from_json(br#"{"enduser":{"source":"metadata"}}"#).unwrap_err();
        assert_eq!(e.0[0].path, "$.enduser.namespace");
        let e = FilterConfig::from_json(br#"{"enduser":5}"#).unwrap_err();
        assert_eq!(e.0[0].path, "$.enduser");
    }
}
