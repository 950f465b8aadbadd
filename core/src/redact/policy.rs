//! The compiled [`RedactionPolicy`] and its configuration (`"redaction"` section of the plugin
//! config). See the [module docs](super) for the JSON reference.

use super::Kind;
use super::action::{Action, Hasher, partial_defined};
use super::keys;
use super::names::NameTable;
use super::path::Template;
use super::scan::Detectors;
use crate::config::fields::{ConfigErrors, FieldError, Fields};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// Bump when a detector's behavior changes: the policy version changes with it.
pub(crate) const ENGINE_VERSION: u32 = 2;

/// Request headers logged by default (lower case). Credential-bearing ones among them are redacted.
pub const DEFAULT_REQUEST_HEADERS: &[&str] = &[
    "user-agent",
    "referer",
    "origin",
    "content-type",
    "content-length",
    "accept",
    "accept-encoding",
    "accept-language",
    "authorization",
    "x-request-id",
    "x-correlation-id",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "forwarded",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-envoy-attempt-count",
];

/// Response headers logged by default (lower case).
pub const DEFAULT_RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "cache-control",
    "server",
    "location",
    "retry-after",
    "x-request-id",
    "x-envoy-upstream-service-time",
    "grpc-status",
    "grpc-message",
    "www-authenticate",
];

/// Trailers logged by default, request and response alike (lower case): the gRPC status and
/// message. Every other trailer is default-deny, like headers.
pub const DEFAULT_TRAILERS: &[&str] = &["grpc-status", "grpc-message"];

/// Headers always treated as credential-bearing (besides any name with a credential word such as
/// `token`, `secret`, `key`, `password`, `session`, `auth`, `signature`, and `headers.credential`).
pub const BUILTIN_CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "apikey",
    "x-auth-token",
    "x-access-token",
    "x-amz-security-token",
    "x-goog-api-key",
    "x-csrf-token",
    "x-xsrf-token",
    "x-vault-token",
    "private-token",
    "x-gitlab-token",
    "x-hub-signature",
    "x-hub-signature-256",
    "x-slack-signature",
    "stripe-signature",
    "x-shopify-access-token",
];

/// A set of lower-case header names; an entry ending in `*` matches by prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NameSet {
    exact: Vec<String>,
    prefixes: Vec<String>,
    /// `exact`, hashed: a lookup compares one or two entries.
    index: NameTable<()>,
}

impl NameSet {
    fn new<S: AsRef<str>>(names: &[S]) -> Self {
        let mut s = NameSet::default();
        for n in names {
            let n = n.as_ref().to_ascii_lowercase();
            match n.strip_suffix('*') {
                Some(p) => s.prefixes.push(p.to_owned()),
                None => s.exact.push(n),
            }
        }
        s.exact.sort();
        s.exact.dedup();
        s.prefixes.sort();
        s.prefixes.dedup();
        s.index = NameTable::new(s.exact.iter().map(|e| (e.clone(), ())).collect());
        s
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.index.get(name).is_some()
            || self.prefixes.iter().any(|p| {
                name.len() >= p.len()
                    && name
                        .as_bytes()
                        .get(..p.len())
                        .is_some_and(|h| h.eq_ignore_ascii_case(p.as_bytes()))
            })
    }

    fn canonical(&self, out: &mut String) {
        for e in &self.exact {
            push_str(out, e);
        }
        out.push('|');
        for p in &self.prefixes {
            push_str(out, p);
        }
    }
}

/// A named custom pattern.
#[derive(Debug, Clone)]
pub(crate) struct CustomPattern {
    pub(crate) name: String,
    pub(crate) source: String,
    pub(crate) re: regex_lite::Regex,
    pub(crate) action: Action,
}

/// The compiled redaction policy: built once when the filter is configured, then shared read-only
/// by every request. [`Default`] is the secure default: every detector on with `mask`, client IPs
/// truncated to /24 (IPv4) and /48 (IPv6), default header allowlists, path identifiers templated.
#[derive(Debug, Clone)]
pub struct RedactionPolicy {
    pub(crate) actions: [Action; Kind::COUNT],
    pub(crate) det: Detectors,
    pub(crate) hasher: Option<Hasher>,
    pub(crate) custom: Vec<CustomPattern>,
    pub(crate) request_headers: NameSet,
    pub(crate) response_headers: NameSet,
    pub(crate) credential_headers: NameSet,
    /// `headers.url_origin_only`: URL headers keep only `scheme://host[:port]`.
    pub(crate) url_origin_only: bool,
    pub(crate) request_trailers: NameSet,
    pub(crate) response_trailers: NameSet,
    pub(crate) templates: Vec<Template>,
    pub(crate) keep_raw_path: bool,
    pub(crate) template_ids: bool,
    pub(crate) ipv4_prefix: u8,
    pub(crate) ipv6_prefix: u8,
    pub(crate) max_value_bytes: usize,
    /// Settings of other sections that decide what a record holds (the `enduser` section's
    /// canonical form); empty when none. Part of the version.
    extension: String,
    /// The class of every exactly allowlisted header and trailer name, judged once when the
    /// policy is compiled: the per-request lookup hashes the name and compares one or two.
    pub(crate) classes: NameTable<super::HeaderClass>,
    version: String,
    /// Which compiled policy this is, for the per-thread memo of clean header values
    /// ([`super::memo`]); a clone is the same policy.
    pub(crate) memo_id: u64,
}

impl Default for RedactionPolicy {
    fn default() -> Self {
        Settings::default().compile()
    }
}

/// Two policies are equal when they redact the same way: same version (which covers every
/// setting but the HMAC key) and the same HMAC key.
impl PartialEq for RedactionPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
            && self.hasher.as_ref().map(|h| &h.key_digest)
                == other.hasher.as_ref().map(|h| &h.key_digest)
    }
}

impl Eq for RedactionPolicy {}

/// Default `max_value_bytes`.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 16 * 1024;

/// Plain configuration values, before compiling.
struct Settings {
    actions: [Action; Kind::COUNT],
    hmac: Option<(Vec<u8>, String)>,
    custom: Vec<CustomPattern>,
    request_headers: NameSet,
    response_headers: NameSet,
    credential_headers: NameSet,
    url_origin_only: bool,
    request_trailers: NameSet,
    response_trailers: NameSet,
    sensitive_keys: Vec<String>,
    allow_keys: Vec<String>,
    templates: Vec<Template>,
    keep_raw_path: bool,
    template_ids: bool,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    max_value_bytes: usize,
}

fn default_action(k: Kind) -> Action {
    match k {
        Kind::Ip => Action::Partial,
        _ => Action::Mask,
    }
}

impl Default for Settings {
    fn default() -> Self {
        let mut actions = [Action::Mask; Kind::COUNT];
        for k in Kind::ALL {
            if let Some(a) = actions.get_mut(k.index()) {
                *a = default_action(k);
            }
        }
        Settings {
            actions,
            hmac: None,
            custom: Vec::new(),
            request_headers: NameSet::new(DEFAULT_REQUEST_HEADERS),
            response_headers: NameSet::new(DEFAULT_RESPONSE_HEADERS),
            credential_headers: NameSet::default(),
            url_origin_only: false,
            request_trailers: NameSet::new(DEFAULT_TRAILERS),
            response_trailers: NameSet::new(DEFAULT_TRAILERS),
            sensitive_keys: Vec::new(),
            allow_keys: Vec::new(),
            templates: Vec::new(),
            keep_raw_path: false,
            template_ids: true,
            ipv4_prefix: 24,
            ipv6_prefix: 48,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

impl Settings {
    fn compile(self) -> RedactionPolicy {
        // The credential library's automaton: built once, now, not on the first request.
        super::creds::warm();
        let mut on = [false; Kind::COUNT];
        for (o, a) in on.iter_mut().zip(self.actions.iter()) {
            *o = *a != Action::Off;
        }
        let hasher = self
            .hmac
            .as_ref()
            .and_then(|(key, id)| Hasher::new(key, id));
        let mut p = RedactionPolicy {
            actions: self.actions,
            det: Detectors {
                on,
                extra_keys: self.sensitive_keys,
                allow_keys: self.allow_keys,
            },
            hasher,
            custom: self.custom,
            request_headers: self.request_headers,
            response_headers: self.response_headers,
            credential_headers: self.credential_headers,
            url_origin_only: self.url_origin_only,
            request_trailers: self.request_trailers,
            response_trailers: self.response_trailers,
            templates: self.templates,
            keep_raw_path: self.keep_raw_path,
            template_ids: self.template_ids,
            ipv4_prefix: self.ipv4_prefix,
            ipv6_prefix: self.ipv6_prefix,
            max_value_bytes: self.max_value_bytes,
            extension: String::new(),
            classes: NameTable::default(),
            version: String::new(),
            memo_id: super::memo::next_policy_id(),
        };
        let mut names: Vec<String> = [
            &p.request_headers,
            &p.response_headers,
            &p.request_trailers,
            &p.response_trailers,
        ]
        .iter()
        .flat_map(|set| set.exact.iter().cloned())
        .collect();
        names.sort();
        names.dedup();
        p.classes = NameTable::new(
            names
                .into_iter()
                .map(|n| {
                    let c = p.judge_header(&n);
                    (n, c)
                })
                .collect(),
        );
        p.version = p.compute_version();
        p
    }
}

fn push_str(out: &mut String, s: &str) {
    let _ = write!(out, "{}:{};", s.len(), s);
}

impl RedactionPolicy {
    /// The policy version: the first 16 hex characters of the SHA-256 of a canonical serialization
    /// of the compiled policy (engine version, every action, HMAC key *id* (never the key), custom
    /// patterns, header sets, key lists, templates, path and IP settings, size limit). Records
    /// carry it so an auditor can tell which rules produced them.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// This policy with `canonical` (another section's settings that decide what a record
    /// holds, e.g. the `enduser` section's) folded into its version: the version changes
    /// whenever they do. Empty `canonical` leaves the version as it was.
    pub fn with_extension(mut self, canonical: &str) -> RedactionPolicy {
        self.extension = canonical.to_owned();
        self.version = self.compute_version();
        self
    }

    /// True when `hmac_key` is set, so [`RedactionPolicy::keyed_hash`] answers.
    pub fn has_hmac_key(&self) -> bool {
        self.hasher.is_some()
    }

    /// `hmac:<key id>:<32 hex>`, the HMAC-SHA256 under `hmac_key` of `label` `:` `value`, the
    /// form every `hash` action writes; `None` without a key.
    pub fn keyed_hash(&self, label: &str, value: &[u8]) -> Option<String> {
        self.hasher.as_ref().map(|h| h.hash(label, value))
    }

    /// The action for `kind`.
    pub fn action(&self, kind: Kind) -> Action {
        self.actions
            .get(kind.index())
            .copied()
            .unwrap_or(Action::Mask)
    }

    fn compute_version(&self) -> String {
        let mut c = String::with_capacity(1024);
        let _ = writeln!(c, "meshlog-redaction/{ENGINE_VERSION}");
        for k in Kind::ALL {
            let _ = write!(c, "{}={};", k.name(), self.action(k).name());
        }
        c.push_str("\nhmac_key_id=");
        match &self.hasher {
            Some(h) => push_str(&mut c, &h.key_id),
            None => c.push('-'),
        }
        c.push_str("\ncustom=");
        for p in &self.custom {
            push_str(&mut c, &p.name);
            push_str(&mut c, p.action.name());
            push_str(&mut c, &p.source);
        }
        c.push_str("\nrequest_headers=");
        self.request_headers.canonical(&mut c);
        c.push_str("\nresponse_headers=");
        self.response_headers.canonical(&mut c);
        c.push_str("\ncredential_headers=");
        self.credential_headers.canonical(&mut c);
        // Only when set: the default policy's version stays what it was.
        if self.url_origin_only {
            c.push_str("\nurl_origin_only=true");
        }
        c.push_str("\nrequest_trailers=");
        self.request_trailers.canonical(&mut c);
        c.push_str("\nresponse_trailers=");
        self.response_trailers.canonical(&mut c);
        c.push_str("\nsensitive_keys=");
        for k in &self.det.extra_keys {
            push_str(&mut c, k);
        }
        c.push_str("\nallow_keys=");
        for k in &self.det.allow_keys {
            push_str(&mut c, k);
        }
        c.push_str("\ntemplates=");
        for t in &self.templates {
            push_str(&mut c, t.source());
        }
        let _ = write!(
            c,
            "\nkeep_raw_path={}\ntemplate_ids={}\nipv4_prefix={}\nipv6_prefix={}\nmax_value_bytes={}\n",
            self.keep_raw_path,
            self.template_ids,
            self.ipv4_prefix,
            self.ipv6_prefix,
            self.max_value_bytes
        );
        // Only when set, so a policy without one keeps the version it always had.
        if !self.extension.is_empty() {
            c.push_str("extension=");
            push_str(&mut c, &self.extension);
            c.push('\n');
        }
        let digest = Sha256::digest(c.as_bytes());
        let mut v = String::with_capacity(16);
        for b in digest.iter().take(8) {
            let _ = write!(v, "{b:02x}");
        }
        v
    }

    /// Parses a `redaction` section given on its own (the object itself, not the whole plugin
    /// config); errors carry paths under `$.redaction`. Empty input means the default policy.
    pub fn from_json(bytes: &[u8]) -> Result<RedactionPolicy, ConfigErrors> {
        crate::config::fields::read_json(bytes, "$.redaction", parse)
    }
}

fn err(errs: &mut Vec<FieldError>, path: String, reason: impl Into<String>) {
    errs.push(FieldError::invalid(path, reason));
}

/// Reads an optional array of strings; each element is checked by `check`. `None` when absent.
fn string_list(
    f: &mut Fields<'_>,
    key: &'static str,
    errs: &mut Vec<FieldError>,
    check: impl Fn(&str) -> Option<String>,
) -> Option<Vec<String>> {
    indexed_string_list(f, key, errs, check).map(|v| v.into_iter().map(|(_, s)| s).collect())
}

/// Like [`string_list`], with each element's index in the array.
fn indexed_string_list(
    f: &mut Fields<'_>,
    key: &'static str,
    errs: &mut Vec<FieldError>,
    check: impl Fn(&str) -> Option<String>,
) -> Option<Vec<(usize, String)>> {
    let path = f.child_path(key);
    match f.raw(key)? {
        Value::Null => None,
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, it) in items.iter().enumerate() {
                match it.as_str() {
                    Some(s) => match check(s) {
                        Some(reason) => err(errs, format!("{path}[{i}]"), reason),
                        None => out.push((i, s.to_owned())),
                    },
                    None => errs.push(FieldError::wrong_type(
                        format!("{path}[{i}]"),
                        "a string",
                        it,
                    )),
                }
            }
            Some(out)
        }
        other => {
            errs.push(FieldError::wrong_type(path, "an array of strings", other));
            None
        }
    }
}

fn check_header_name(s: &str) -> Option<String> {
    if s == "*" {
        return None;
    }
    let name = s.strip_suffix('*').unwrap_or(s);
    if name.is_empty() {
        return Some("must be a header name (optionally ending in '*'), got an empty name".into());
    }
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && !name.contains('*');
    (!ok).then(|| format!("not a valid header name: {s:?}"))
}

fn check_key(s: &str) -> Option<String> {
    if keys::compact_string(s).is_empty() {
        Some(format!("must contain a letter or digit, got {s:?}"))
    } else {
        None
    }
}

fn check_custom_name(s: &str) -> Option<&'static str> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 32
        && b.first().is_some_and(u8::is_ascii_lowercase)
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_');
    (!ok).then_some("must be 1 to 32 characters: a lower-case letter, then a-z, 0-9 or '_'")
}

/// Longest custom pattern, characters.
const MAX_PATTERN_LEN: usize = 1024;
/// Most custom patterns.
const MAX_CUSTOM: usize = 64;
/// Most route templates.
const MAX_TEMPLATES: usize = 1024;

fn parse_action(s: &str) -> Result<Action, String> {
    Action::from_name(s).ok_or_else(|| {
        format!("unknown action {s:?}; expected one of: mask, hash, partial, drop, off")
    })
}

/// Reads the `redaction` section. Every problem goes to `errs` with its JSON path; the returned
/// policy is then only meaningful when no error was added. One reader per JSON section, called
/// in the section order of the reference (which is also the order of the errors and of the
/// known-field list in an unknown-field error).
pub(crate) fn parse(mut f: Fields<'_>, errs: &mut Vec<FieldError>) -> RedactionPolicy {
    let mut s = Settings::default();
    let detector_hash_user = read_detectors(f.section("detectors", errs), &mut s.actions, errs);
    let key = read_hmac(&mut f, errs);
    let (custom, custom_hash_user) = read_custom(&mut f, errs);
    s.custom = custom;
    // The key is checked against every `hash` user, so after `custom`.
    s.hmac = require_hmac(key, detector_hash_user.or(custom_hash_user), errs);
    read_headers(f.section("headers", errs), &mut s, errs);
    read_trailers(f.section("trailers", errs), &mut s, errs);
    read_query(f.section("query", errs), &mut s, errs);
    read_path(f.section("path", errs), &mut s, errs);
    read_ip(f.section("ip", errs), &mut s, errs);
    s.max_value_bytes = usize::try_from(f.int_in(
        "max_value_bytes",
        DEFAULT_MAX_VALUE_BYTES as u64,
        256,
        1 << 20,
        errs,
    ))
    .unwrap_or(DEFAULT_MAX_VALUE_BYTES);
    f.finish(errs);
    s.compile()
}

/// `detectors`: an action per kind. Returns the first kind using `hash` (`detectors.<kind>`),
/// which makes `hmac_key` required.
fn read_detectors(
    mut d: Fields<'_>,
    actions: &mut [Action; Kind::COUNT],
    errs: &mut Vec<FieldError>,
) -> Option<String> {
    let mut hash_user = None;
    for k in Kind::ALL {
        let path = d.child_path(k.name());
        let Some(v) = d.raw(k.name()) else { continue };
        let Some(a) = detector_action(k, v, &path, errs) else {
            continue;
        };
        if a == Action::Hash && hash_user.is_none() {
            hash_user = Some(format!("detectors.{}", k.name()));
        }
        if let Some(slot) = actions.get_mut(k.index()) {
            *slot = a;
        }
    }
    d.finish(errs);
    hash_user
}

/// The action `v` names for kind `k`, if it is one `k` allows.
fn detector_action(k: Kind, v: &Value, path: &str, errs: &mut Vec<FieldError>) -> Option<Action> {
    let Some(name) = v.as_str() else {
        errs.push(FieldError::wrong_type(
            path,
            "an action string (mask, hash, partial, drop, off)",
            v,
        ));
        return None;
    };
    let a = match parse_action(name) {
        Ok(a) => a,
        Err(e) => {
            err(errs, path.to_owned(), e);
            return None;
        }
    };
    if a == Action::Off && matches!(k, Kind::Cookie | Kind::Credential) {
        err(
            errs,
            path.to_owned(),
            "credential headers are always redacted and cannot be switched off; remove the header from headers.request/headers.response instead",
        );
        return None;
    }
    if a == Action::Partial && !partial_defined(k) {
        err(
            errs,
            path.to_owned(),
            format!(
                "partial is not defined for {}; use mask, hash or drop",
                k.name()
            ),
        );
        return None;
    }
    Some(a)
}

/// `hmac_key` as given (checked against `hash` users later) and `hmac_key_id`.
struct HmacKey {
    key: Option<String>,
    key_id: String,
    key_path: String,
}

/// `hmac_key` and `hmac_key_id`.
fn read_hmac(f: &mut Fields<'_>, errs: &mut Vec<FieldError>) -> HmacKey {
    let key_path = f.child_path("hmac_key");
    let key: Option<String> = f.get("hmac_key", None, errs);
    let key_id = f.text(
        "hmac_key_id",
        "k1",
        |id| {
            let ok = !id.is_empty()
                && id.len() <= 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            (!ok).then_some("must be 1 to 32 characters of a-z, A-Z, 0-9, '_', '-', '.'")
        },
        errs,
    );
    if let Some(k) = &key
        && !(16..=1024).contains(&k.len())
    {
        err(
            errs,
            key_path.clone(),
            format!(
                "must be 16 to 1024 bytes (use 32+ random characters), got {} bytes",
                k.len()
            ),
        );
    }
    HmacKey {
        key,
        key_id,
        key_path,
    }
}

/// The key for [`Settings::hmac`]; an error when `hash_user` (the first field using `hash`)
/// needs one and none was given.
fn require_hmac(
    h: HmacKey,
    hash_user: Option<String>,
    errs: &mut Vec<FieldError>,
) -> Option<(Vec<u8>, String)> {
    match (h.key, hash_user) {
        (None, Some(user)) => {
            err(
                errs,
                h.key_path,
                format!("required because {user} uses the \"hash\" action"),
            );
            None
        }
        (Some(k), _) => Some((k.into_bytes(), h.key_id)),
        (None, None) => None,
    }
}

/// `custom`: the patterns to apply (those not `off`), and the first one using `hash`
/// (`custom[i]`).
fn read_custom(
    f: &mut Fields<'_>,
    errs: &mut Vec<FieldError>,
) -> (Vec<CustomPattern>, Option<String>) {
    let mut custom = Vec::new();
    let mut hash_user = None;
    let custom_path = f.child_path("custom");
    match f.raw("custom") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            if items.len() > MAX_CUSTOM {
                err(
                    errs,
                    custom_path.clone(),
                    format!("at most {MAX_CUSTOM} custom patterns, got {}", items.len()),
                );
            }
            for (i, item) in items.iter().enumerate().take(MAX_CUSTOM) {
                let ipath = format!("{custom_path}[{i}]");
                let Some(p) = read_custom_pattern(ipath, item, &custom, errs) else {
                    continue;
                };
                if p.action == Action::Hash && hash_user.is_none() {
                    hash_user = Some(format!("custom[{i}]"));
                }
                if p.action != Action::Off {
                    custom.push(p);
                }
            }
        }
        Some(other) => errs.push(FieldError::wrong_type(
            custom_path,
            "an array of {name, pattern, action} objects",
            other,
        )),
    }
    (custom, hash_user)
}

/// One `custom[i]` entry at `ipath`, compiled; `None` when invalid (the errors are recorded).
/// Names must differ from the built-in kinds and from those in `earlier`.
fn read_custom_pattern(
    ipath: String,
    item: &Value,
    earlier: &[CustomPattern],
    errs: &mut Vec<FieldError>,
) -> Option<CustomPattern> {
    let mut c = Fields::object(ipath.clone(), Some(item), errs);
    let name = c.text("name", "", check_custom_name, errs);
    let pat_path = c.child_path("pattern");
    let pattern = c.text(
        "pattern",
        "",
        |p| {
            if p.is_empty() {
                Some("required: a regular expression (regex-lite syntax)")
            } else if p.len() > MAX_PATTERN_LEN {
                Some("longer than 1024 characters")
            } else {
                None
            }
        },
        errs,
    );
    let act_path = c.child_path("action");
    let act_name = c.text("action", "mask", |_| None, errs);
    c.finish(errs);
    let action = match parse_action(&act_name) {
        Ok(Action::Partial) => {
            err(
                errs,
                act_path,
                "partial is not defined for custom patterns; use mask, hash, drop or off",
            );
            return None;
        }
        Ok(a) => a,
        Err(e) => {
            err(errs, act_path, e);
            return None;
        }
    };
    if Kind::from_name(&name).is_some() {
        err(
            errs,
            format!("{ipath}.name"),
            format!("{name:?} is a built-in kind; choose another name"),
        );
        return None;
    }
    if earlier.iter().any(|p| p.name == name) {
        err(
            errs,
            format!("{ipath}.name"),
            format!("duplicate custom pattern name {name:?}"),
        );
        return None;
    }
    if pattern.is_empty() || pattern.len() > MAX_PATTERN_LEN || name.is_empty() {
        return None;
    }
    match regex_lite::RegexBuilder::new(&pattern)
        .size_limit(1 << 20)
        .nest_limit(64)
        .build()
    {
        Ok(re) if re.is_match("") => {
            err(errs, pat_path, "must not match the empty string");
            None
        }
        Ok(re) => Some(CustomPattern {
            name,
            source: pattern,
            re,
            action,
        }),
        Err(e) => {
            err(errs, pat_path, format!("invalid regular expression: {e}"));
            None
        }
    }
}

/// `headers`: the request and response allowlists and the extra credential headers.
fn read_headers(mut h: Fields<'_>, s: &mut Settings, errs: &mut Vec<FieldError>) {
    if let Some(v) = string_list(&mut h, "request", errs, check_header_name) {
        s.request_headers = NameSet::new(&v);
    }
    if let Some(v) = string_list(&mut h, "response", errs, check_header_name) {
        s.response_headers = NameSet::new(&v);
    }
    if let Some(v) = string_list(&mut h, "credential", errs, check_header_name) {
        s.credential_headers = NameSet::new(&v);
    }
    s.url_origin_only = h.get("url_origin_only", false, errs);
    h.finish(errs);
}

/// `trailers`: the request and response trailer allowlists (gRPC status and message by default).
fn read_trailers(mut t: Fields<'_>, s: &mut Settings, errs: &mut Vec<FieldError>) {
    if let Some(v) = string_list(&mut t, "request", errs, check_header_name) {
        s.request_trailers = NameSet::new(&v);
    }
    if let Some(v) = string_list(&mut t, "response", errs, check_header_name) {
        s.response_trailers = NameSet::new(&v);
    }
    t.finish(errs);
}

/// `query`: extra sensitive keys and exempt keys, in compact form.
fn read_query(mut q: Fields<'_>, s: &mut Settings, errs: &mut Vec<FieldError>) {
    let compact = |v: Vec<String>| {
        let mut v: Vec<String> = v.iter().map(|k| keys::compact_string(k)).collect();
        v.sort();
        v.dedup();
        v
    };
    if let Some(v) = string_list(&mut q, "sensitive_keys", errs, check_key) {
        s.sensitive_keys = compact(v);
    }
    if let Some(v) = string_list(&mut q, "allow_keys", errs, check_key) {
        s.allow_keys = compact(v);
    }
    q.finish(errs);
}

/// `path`: route templates (unique, at most [`MAX_TEMPLATES`]) and the two switches.
fn read_path(mut p: Fields<'_>, s: &mut Settings, errs: &mut Vec<FieldError>) {
    let tpath = p.child_path("templates");
    if let Some(v) = indexed_string_list(&mut p, "templates", errs, |t| Template::parse(t).err()) {
        if v.len() > MAX_TEMPLATES {
            err(
                errs,
                tpath.clone(),
                format!("at most {MAX_TEMPLATES} templates, got {}", v.len()),
            );
        }
        for (n, (i, t)) in v.iter().enumerate() {
            if v.get(..n)
                .is_some_and(|prev| prev.iter().any(|(_, p)| p == t))
            {
                err(
                    errs,
                    format!("{tpath}[{i}]"),
                    format!("duplicate template {t:?}"),
                );
            }
        }
        s.templates = v
            .iter()
            .filter_map(|(_, t)| Template::parse(t).ok())
            .collect();
    }
    s.keep_raw_path = p.get("keep_raw_path", false, errs);
    s.template_ids = p.get("template_ids", true, errs);
    p.finish(errs);
}

/// `ip`: prefix lengths kept by `partial`.
fn read_ip(mut ip: Fields<'_>, s: &mut Settings, errs: &mut Vec<FieldError>) {
    s.ipv4_prefix = u8::try_from(ip.int_in("ipv4_prefix", 24, 0, 32, errs)).unwrap_or(24);
    s.ipv6_prefix = u8::try_from(ip.int_in("ipv6_prefix", 48, 0, 128, errs)).unwrap_or(48);
    ip.finish(errs);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(json: &str) -> Vec<(String, String)> {
        match RedactionPolicy::from_json(json.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().map(|f| (f.path, f.reason)).collect(),
        }
    }

    #[test]
    fn default_is_secure() {
        let p = RedactionPolicy::default();
        for k in Kind::ALL {
            let want = if k == Kind::Ip {
                Action::Partial
            } else {
                Action::Mask
            };
            assert_eq!(p.action(k), want, "{k:?}");
        }
        assert!(!p.keep_raw_path);
        assert!(p.template_ids);
        assert_eq!((p.ipv4_prefix, p.ipv6_prefix), (24, 48));
        assert_eq!(p.version().len(), 16);
        assert!(p.version().bytes().all(|b| b.is_ascii_hexdigit()));
        let empty = RedactionPolicy::from_json(b"{}").unwrap();
        assert_eq!(empty.version(), p.version());
        assert_eq!(
            RedactionPolicy::from_json(b"  ").unwrap().version(),
            p.version()
        );
    }

    #[test]
    fn reads_every_field() {
        let p = RedactionPolicy::from_json(
            br#"{
              "detectors": {"card": "partial", "email": "hash", "phone": "drop", "iban": "off"},
              "hmac_key": "0123456789abcdef0123456789abcdef", "hmac_key_id": "k2",
              "custom": [{"name": "employee_id", "pattern": "EMP-[0-9]{6}", "action": "mask"},
                         {"name": "ticket", "pattern": "TCK[0-9]+"}],
              "headers": {"request": ["user-agent", "x-b3-*"], "response": ["server"],
                          "credential": ["x-my-cred"]},
              "query": {"sensitive_keys": ["member_no"], "allow_keys": ["state"]},
              "path": {"templates": ["/api/v1/users/{user}/orders/{order}"],
                       "keep_raw_path": true, "template_ids": false},
              "ip": {"ipv4_prefix": 16, "ipv6_prefix": 32},
              "max_value_bytes": 4096
            }"#,
        )
        .unwrap();
        assert_eq!(p.action(Kind::Card), Action::Partial);
        assert_eq!(p.action(Kind::Email), Action::Hash);
        assert_eq!(p.action(Kind::Iban), Action::Off);
        assert!(!p.det.on(Kind::Iban));
        assert_eq!(p.hasher.as_ref().unwrap().key_id, "k2");
        assert_eq!(p.custom.len(), 2);
        assert_eq!(p.custom[1].action, Action::Mask);
        assert!(p.request_headers.contains("x-b3-traceid"));
        assert!(p.request_headers.contains("User-Agent"));
        assert!(!p.request_headers.contains("referer"));
        assert!(p.response_headers.contains("server"));
        assert!(p.credential_headers.contains("x-my-cred"));
        assert_eq!(p.det.extra_keys, ["memberno"]);
        assert_eq!(p.det.allow_keys, ["state"]);
        assert_eq!(p.templates.len(), 1);
        assert!(p.keep_raw_path);
        assert!(!p.template_ids);
        assert_eq!((p.ipv4_prefix, p.ipv6_prefix), (16, 32));
        assert_eq!(p.max_value_bytes, 4096);
        assert_ne!(p.version(), RedactionPolicy::default().version());
    }

    #[test]
    fn version_tracks_the_policy_not_the_key() {
        let v = |j: &str| {
            RedactionPolicy::from_json(j.as_bytes())
                .unwrap()
                .version()
                .to_owned()
        };
        let a = v(r#"{"hmac_key": "0123456789abcdef0123456789abcdef"}"#);
        let b = v(r#"{"hmac_key": "fedcba9876543210fedcba9876543210"}"#);
        assert_eq!(a, b, "the key itself never enters the version");
        let pa = RedactionPolicy::from_json(br#"{"hmac_key": "0123456789abcdef0123456789abcdef"}"#);
        let pb = RedactionPolicy::from_json(br#"{"hmac_key": "fedcba9876543210fedcba9876543210"}"#);
        assert_ne!(pa.unwrap(), pb.unwrap(), "but it makes the policies differ");
        assert_eq!(
            RedactionPolicy::default(),
            RedactionPolicy::from_json(b"{}").unwrap()
        );
        let c = v(r#"{"hmac_key": "0123456789abcdef0123456789abcdef", "hmac_key_id": "k2"}"#);
        assert_ne!(a, c);
        assert_ne!(v(r#"{"detectors": {"card": "partial"}}"#), v("{}"));
        assert_ne!(v(r#"{"ip": {"ipv4_prefix": 16}}"#), v("{}"));
        assert_ne!(v(r#"{"query": {"allow_keys": ["state"]}}"#), v("{}"));
        assert_ne!(v(r#"{"path": {"templates": ["/a/{b}"]}}"#), v("{}"));
        // order of header names does not matter, their set does
        assert_eq!(
            v(r#"{"headers": {"request": ["a", "b"]}}"#),
            v(r#"{"headers": {"request": ["b", "a"]}}"#)
        );
    }

    #[test]
    fn trailers_are_default_deny_with_the_grpc_status_and_message_allowed() {
        let d = RedactionPolicy::default();
        for name in ["grpc-status", "GRPC-Message"] {
            assert!(
                d.logs_response_trailer(name) && d.logs_request_trailer(name),
                "{name}"
            );
        }
        assert!(!d.logs_response_trailer("x-backend-secret"));
        assert!(!d.logs_request_trailer("x-anything"));
        let mut sum = crate::redact::Summary::new();
        assert_eq!(
            d.response_trailer("grpc-message", "no user jo@example.com", &mut sum)
                .as_deref(),
            Some("no user [REDACTED:email]"),
            "redacted like any header value"
        );
        assert_eq!(d.response_trailer("x-backend-secret", "v", &mut sum), None);
        // Configured like the header allowlists, and part of the policy version.
        let p = RedactionPolicy::from_json(
            br#"{"trailers": {"request": [], "response": ["grpc-status", "x-cost-*"]}}"#,
        )
        .unwrap();
        assert!(p.logs_response_trailer("x-cost-cpu"));
        assert!(!p.logs_response_trailer("grpc-message"));
        assert!(!p.logs_request_trailer("grpc-status"));
        assert_ne!(p.version(), d.version());
        // A credential-looking trailer, once allowlisted, is still redacted whole.
        let star = RedactionPolicy::from_json(br#"{"trailers": {"response": ["*"]}}"#).unwrap();
        let v = star.response_trailer("x-auth-token", "abc123secretvalue", &mut sum);
        assert!(v.is_some_and(|v| !v.contains("abc123")));
        let e = errors(r#"{"trailers": {"response": ["bad name"], "responses": []}}"#);
        let paths: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "$.redaction.trailers.response[0]",
                "$.redaction.trailers.responses"
            ]
        );
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let e = errors(
            r#"{
              "detectors": {"card": "blur", "cookie": "off", "jwt": "partial", "emial": "mask", "ssn": 3,
                            "email": "hash"},
              "hmac_key_id": "bad id!",
              "custom": [{"name": "Bad", "pattern": "("}, {"name": "email", "pattern": "x"},
                         {"name": "ok", "pattern": "a*"}, {"name": "ok2", "pattern": "b", "extra": 1},
                         {"name": "ok3", "pattern": "c", "action": "partial"}],
              "headers": {"request": ["user agent", 5], "resp": []},
              "query": {"sensitive_keys": "token", "allow_keys": ["--"]},
              "path": {"templates": ["no-slash", "/a/{b*}/c", "/x/{y}", "/x/{y}"], "keep_raw_path": "yes"},
              "ip": {"ipv4_prefix": 33, "ipv6_prefix": -1},
              "max_value_bytes": 10,
              "bogus": true
            }"#,
        );
        let paths: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
        for want in [
            "$.redaction.detectors.card",
            "$.redaction.detectors.cookie",
            "$.redaction.detectors.jwt",
            "$.redaction.detectors.ssn",
            "$.redaction.detectors.emial",
            "$.redaction.hmac_key_id",
            "$.redaction.custom[0].name",
            "$.redaction.custom[0].pattern",
            "$.redaction.custom[1].name",
            "$.redaction.custom[2].pattern",
            "$.redaction.custom[3].extra",
            "$.redaction.custom[4].action",
            "$.redaction.hmac_key",
            "$.redaction.headers.request[0]",
            "$.redaction.headers.request[1]",
            "$.redaction.headers.resp",
            "$.redaction.query.sensitive_keys",
            "$.redaction.query.allow_keys[0]",
            "$.redaction.path.templates[0]",
            "$.redaction.path.templates[1]",
            "$.redaction.path.templates[3]",
            "$.redaction.path.keep_raw_path",
            "$.redaction.ip.ipv4_prefix",
            "$.redaction.ip.ipv6_prefix",
            "$.redaction.max_value_bytes",
            "$.redaction.bogus",
        ] {
            assert!(paths.contains(&want), "missing {want} in {e:#?}");
        }
        let reason = |p: &str| e.iter().find(|(x, _)| x == p).unwrap().1.clone();
        assert!(
            reason("$.redaction.hmac_key").contains("detectors.email uses the \"hash\" action")
        );
        assert!(reason("$.redaction.detectors.emial").starts_with("unknown field"));
        assert!(reason("$.redaction.custom[0].pattern").contains("invalid regular expression"));
        assert!(reason("$.redaction.detectors.jwt").contains("partial is not defined for jwt"));
    }

    #[test]
    fn short_key_and_wrong_shapes() {
        let e = errors(r#"{"hmac_key": "short"}"#);
        assert_eq!(e[0].0, "$.redaction.hmac_key");
        let e = errors(r#"{"custom": {"name": "x"}}"#);
        assert_eq!(e[0].0, "$.redaction.custom");
        let e = errors(r#"{"detectors": []}"#);
        assert_eq!(e[0].0, "$.redaction.detectors");
        let e = errors("[1]");
        assert_eq!(e[0].0, "$.redaction");
        let e = errors("{nope");
        assert!(e[0].1.starts_with("not valid JSON"));
        let e = errors(r#"{"custom": [{"name": "c", "pattern": "x", "action": "hash"}]}"#);
        assert_eq!(e[0].0, "$.redaction.hmac_key");
        assert!(e[0].1.contains("custom[0]"));
    }
}
