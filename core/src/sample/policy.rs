//! The compiled [`SamplingPolicy`] and its configuration (`"sampling"` section of the plugin
//! config). See the [module docs](super) for the JSON reference and the decision order.

use super::hash::{self, KEY_SPACE};
use super::pattern::{self, NamePattern, PathPattern};
use super::{Decision, DropReason, KeepReason, RequestFacts};
use crate::config::fields::{ConfigErrors, FieldError, Fields, Problem, kind as json_kind};
use crate::envoy::RESPONSE_FLAGS;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// Bump when the decision procedure changes (key derivation, threshold, precedence, matching):
/// the policy version changes with it, so records say which engine sampled them.
pub(crate) const ENGINE_VERSION: u32 = 1;

/// Statuses kept whatever the rate, by default: the security signal (`always_keep.statuses`).
pub const DEFAULT_KEEP_STATUSES: &[i64] = &[401, 403, 429];
/// gRPC statuses kept whatever the rate, by default: every one but `OK`
/// (`always_keep.grpc_statuses`): a gRPC failure answers HTTP 200, so no status rule sees it.
pub const DEFAULT_KEEP_GRPC_STATUSES: &[u32] =
    &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
/// Health-check paths dropped (and counted), by default (`drop.paths`).
pub const DEFAULT_DROP_PATHS: &[&str] = &["/healthz", "/readyz", "/livez"];
/// Default and highest `always_keep.status_min`: every 5xx is always kept.
pub const DEFAULT_STATUS_MIN: i64 = 500;
/// Most `rules`.
pub const MAX_RULES: usize = 256;
/// Most entries in a list (`statuses`, `methods`, `paths`).
pub const MAX_LIST: usize = 256;
/// Highest `rate_cap.records_per_second`.
pub const MAX_RECORDS_PER_SECOND: u64 = 1_000_000;
/// Highest `rate_cap.burst`.
pub const MAX_BURST: u64 = 10_000_000;
/// Highest `always_keep.latency_ms` (one hour).
pub const MAX_LATENCY_MS: u64 = 3_600_000;

/// A sampling rate and its rejection threshold (see [`hash::threshold`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate {
    pub(crate) value: f64,
    pub(crate) threshold: u64,
}

impl Rate {
    fn new(value: f64) -> Self {
        Rate {
            value,
            threshold: hash::threshold(value),
        }
    }
}

/// One `rules[]` entry.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    route: Option<PathPattern>,
    service: Option<NamePattern>,
    method: Option<String>,
    rate: Rate,
}

/// Precedence key: bigger wins.
type Specificity = (u8, (u8, usize), (u8, usize));

impl Rule {
    /// Which fields are set, weighted route 4, service 2, method 1: the set of fields decides first.
    fn dims(&self) -> u8 {
        (u8::from(self.route.is_some()) << 2)
            | (u8::from(self.service.is_some()) << 1)
            | u8::from(self.method.is_some())
    }

    fn specificity(&self) -> Specificity {
        (
            self.dims(),
            self.route.as_ref().map_or((0, 0), PathPattern::rank),
            self.service.as_ref().map_or((0, 0), NamePattern::rank),
        )
    }

    fn matches(&self, f: &RequestFacts<'_>) -> bool {
        self.route
            .as_ref()
            .is_none_or(|r| r.matches(f.path, f.route))
            && self.service.as_ref().is_none_or(|s| s.matches(f.service))
            && self
                .method
                .as_ref()
                .is_none_or(|m| f.method.is_some_and(|fm| fm.eq_ignore_ascii_case(m)))
    }

    fn same_matchers(&self, o: &Rule) -> bool {
        self.route == o.route && self.service == o.service && self.method == o.method
    }
}

/// `always_keep.response_flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlagMatch {
    /// Any flag set (any bit of the mask).
    Any,
    /// Any of these bits (bit `i` is [`RESPONSE_FLAGS`]`[i]`); `0` never matches.
    Mask(u64),
}

/// The `always_keep` section, compiled.
#[derive(Debug, Clone)]
struct AlwaysKeep {
    status_min: i64,
    statuses: Vec<i64>,
    grpc_statuses: Vec<u32>,
    latency_ms: Option<u64>,
    methods: Vec<String>,
    paths: Vec<PathPattern>,
    flags: FlagMatch,
}

impl Default for AlwaysKeep {
    fn default() -> Self {
        AlwaysKeep {
            status_min: DEFAULT_STATUS_MIN,
            statuses: DEFAULT_KEEP_STATUSES.to_vec(),
            grpc_statuses: DEFAULT_KEEP_GRPC_STATUSES.to_vec(),
            latency_ms: None,
            methods: Vec::new(),
            paths: Vec::new(),
            flags: FlagMatch::Any,
        }
    }
}

/// The per-VM rate cap (`rate_cap`): a token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateCap {
    /// Sustained records per second, 1 to 1000000.
    pub records_per_second: u64,
    /// Bucket size: records that may pass at once after a quiet spell, 1 to 10000000. Default
    /// `records_per_second`.
    pub burst: u64,
}

/// The compiled sampling policy: built once when the filter is configured, then read by every
/// decision. [`Default`] is *no sampling*: every request is kept with adjusted count 1 (an audit
/// trail is complete unless policy says otherwise); [`SamplingPolicy::is_enabled`] is false.
#[derive(Debug, Clone)]
pub struct SamplingPolicy {
    enabled: bool,
    default_rate: Rate,
    /// Most specific first (see the module docs); the first match decides.
    rules: Vec<Rule>,
    always: AlwaysKeep,
    drop_paths: Vec<PathPattern>,
    rate_cap: Option<RateCap>,
    /// How often the VM ships its tally, ms. About shipping, not deciding: not in the version.
    tally_interval_ms: u64,
    version: String,
}

/// Default `sampling.tally_interval_ms`.
pub const DEFAULT_TALLY_INTERVAL_MS: u64 = 10_000;

impl Default for SamplingPolicy {
    fn default() -> Self {
        let mut p = SamplingPolicy {
            enabled: false,
            default_rate: Rate::new(1.0),
            rules: Vec::new(),
            always: AlwaysKeep::default(),
            drop_paths: Vec::new(),
            rate_cap: None,
            tally_interval_ms: DEFAULT_TALLY_INTERVAL_MS,
            version: String::new(),
        };
        p.version = p.compute_version();
        p
    }
}

/// Two policies are equal when they sample the same way: the version covers every setting.
impl PartialEq for SamplingPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
    }
}

impl Eq for SamplingPolicy {}

fn push_str(out: &mut String, s: &str) {
    let _ = write!(out, "{}:{};", s.len(), s);
}

fn sorted_patterns(mut v: Vec<PathPattern>) -> Vec<PathPattern> {
    v.sort_by_key(PathPattern::canonical);
    v.dedup();
    v
}

impl SamplingPolicy {
    /// The policy version: the first 16 hex characters of the SHA-256 of a canonical
    /// serialization of the effective policy (engine version, key derivation, whether sampling is
    /// on, default rate, rules in precedence order, always-keep classes, drop list, rate cap).
    /// Lists that are sets (statuses, methods, paths, flags) are sorted first, so their order in
    /// the config does not change it. Kept records carry it next to their adjusted count.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// `tally_interval_ms`: how often each VM ships its sampling tally record, 100 to 3600000
    /// ms, default 10000.
    pub fn tally_interval_ms(&self) -> u64 {
        self.tally_interval_ms
    }

    /// Whether a `sampling` section is configured. When false every request is kept (adjusted
    /// count 1), health checks included.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// `default_rate`: the rate of requests no rule matches.
    pub fn default_rate(&self) -> f64 {
        self.default_rate.value
    }

    /// `rate_cap`, if configured.
    pub fn rate_cap(&self) -> Option<RateCap> {
        self.rate_cap
    }

    /// The sampling rate that applies to a request: that of the most specific matching rule, else
    /// `default_rate`; 1.0 when sampling is off.
    pub fn rate_for(&self, f: &RequestFacts<'_>) -> f64 {
        self.rate(f).value
    }

    fn rate(&self, f: &RequestFacts<'_>) -> Rate {
        if !self.enabled {
            return Rate::new(1.0);
        }
        self.rules
            .iter()
            .find(|r| r.matches(f))
            .map_or(self.default_rate, |r| r.rate)
    }

    /// The always-keep class of a request, if it is in one (the first that applies, in the
    /// order: error status, listed status, listed gRPC status, response flags, latency, method, path). Sampling off
    /// gives `None`: everything is kept anyway.
    pub fn always_keep(&self, f: &RequestFacts<'_>) -> Option<KeepReason> {
        if !self.enabled {
            return None;
        }
        let a = &self.always;
        if f.status.is_some_and(|s| s >= a.status_min) {
            return Some(KeepReason::ErrorStatus);
        }
        if f.status.is_some_and(|s| a.statuses.contains(&s)) {
            return Some(KeepReason::Status);
        }
        if f.grpc_status.is_some_and(|s| a.grpc_statuses.contains(&s)) {
            return Some(KeepReason::GrpcStatus);
        }
        let flagged = match a.flags {
            FlagMatch::Any => f.response_flags != 0,
            FlagMatch::Mask(m) => f.response_flags & m != 0,
        };
        if flagged {
            return Some(KeepReason::ResponseFlags);
        }
        if let (Some(ms), Some(d)) = (a.latency_ms, f.duration_ns)
            && d > ms.saturating_mul(1_000_000)
        {
            return Some(KeepReason::Latency);
        }
        if let Some(m) = f.method
            && a.methods.iter().any(|x| x.eq_ignore_ascii_case(m))
        {
            return Some(KeepReason::Method);
        }
        if a.paths.iter().any(|p| p.matches(f.path, f.route)) {
            return Some(KeepReason::Path);
        }
        None
    }

    /// Whether the request is on the health-check drop list (path or route). Always-keep classes
    /// are checked first by [`SamplingPolicy::classify`]: a failing health check is kept.
    pub fn is_health_check(&self, f: &RequestFacts<'_>) -> bool {
        self.enabled && self.drop_paths.iter().any(|p| p.matches(f.path, f.route))
    }

    /// The decision for a request, before the per-VM rate cap (which needs state: see
    /// [`super::Sampler`]). A pure function of the policy and the facts: every VM with this
    /// policy decides the same for the same request, and every hop of a trace the same for
    /// requests with the same rate.
    pub fn classify(&self, f: &RequestFacts<'_>) -> Decision {
        if !self.enabled {
            return Decision::Keep {
                adjusted_count: 1.0,
                reason: KeepReason::NotSampled,
            };
        }
        if let Some(reason) = self.always_keep(f) {
            return Decision::Keep {
                adjusted_count: 1.0,
                reason,
            };
        }
        if self.is_health_check(f) {
            return Decision::Drop(DropReason::HealthCheck);
        }
        let rate = self.rate(f);
        if rate.threshold == 0 {
            return Decision::Keep {
                adjusted_count: 1.0,
                reason: KeepReason::Sampled,
            };
        }
        if rate.threshold >= KEY_SPACE {
            return Decision::Drop(DropReason::SampledOut);
        }
        match hash::sampling_key(f.trace_id.as_ref(), f.request_id) {
            None => Decision::Keep {
                adjusted_count: 1.0,
                reason: KeepReason::NoSamplingKey,
            },
            Some(k) if hash::keeps(k, rate.threshold) => Decision::Keep {
                // threshold < 2^56 means rate ≥ 2^-56: finite.
                adjusted_count: 1.0 / rate.value,
                reason: KeepReason::Sampled,
            },
            Some(_) => Decision::Drop(DropReason::SampledOut),
        }
    }

    fn compute_version(&self) -> String {
        let mut c = String::with_capacity(512);
        let _ = writeln!(c, "meshlog-sampling/{ENGINE_VERSION}");
        c.push_str(
            "key=trace:bytes9-15be,request_id:sha256-bytes0-6be;keep=key>=2^56-floor(rate*2^56)\n",
        );
        let _ = writeln!(c, "enabled={}", self.enabled);
        if self.enabled {
            let _ = writeln!(c, "default_rate={:?}", self.default_rate.value);
            for r in &self.rules {
                c.push_str("rule=");
                match &r.route {
                    Some(p) => push_str(&mut c, &p.canonical()),
                    None => c.push('-'),
                }
                c.push('|');
                match &r.service {
                    Some(s) => push_str(&mut c, &s.canonical()),
                    None => c.push('-'),
                }
                c.push('|');
                match &r.method {
                    Some(m) => push_str(&mut c, m),
                    None => c.push('-'),
                }
                let _ = writeln!(c, "|{:?}", r.rate.value);
            }
            let a = &self.always;
            let _ = write!(c, "always.status_min={}\nalways.statuses=", a.status_min);
            for s in &a.statuses {
                let _ = write!(c, "{s},");
            }
            c.push_str("\nalways.grpc_statuses=");
            for s in &a.grpc_statuses {
                let _ = write!(c, "{s},");
            }
            match a.latency_ms {
                Some(ms) => {
                    let _ = write!(c, "\nalways.latency_ms={ms}");
                }
                None => c.push_str("\nalways.latency_ms=-"),
            }
            c.push_str("\nalways.methods=");
            for m in &a.methods {
                push_str(&mut c, m);
            }
            c.push_str("\nalways.paths=");
            for p in &a.paths {
                push_str(&mut c, &p.canonical());
            }
            c.push_str("\nalways.response_flags=");
            match a.flags {
                FlagMatch::Any => c.push_str("any"),
                FlagMatch::Mask(0) => c.push_str("none"),
                FlagMatch::Mask(m) => c.push_str(&crate::envoy::response_flags(m)),
            }
            c.push_str("\ndrop.paths=");
            for p in &self.drop_paths {
                push_str(&mut c, &p.canonical());
            }
            match self.rate_cap {
                Some(cap) => {
                    let _ = writeln!(c, "\nrate_cap={}/{}", cap.records_per_second, cap.burst);
                }
                None => c.push_str("\nrate_cap=-\n"),
            }
        }
        let digest = Sha256::digest(c.as_bytes());
        let mut v = String::with_capacity(16);
        for b in digest.iter().take(8) {
            let _ = write!(v, "{b:02x}");
        }
        v
    }

    /// Parses a `sampling` section given on its own (the object itself, not the whole plugin
    /// config); errors carry paths under `$.sampling`. Empty input (or `null`) means no section:
    /// sampling off. `{}` means sampling on with every default (health checks dropped, all else
    /// kept).
    pub fn from_json(bytes: &[u8]) -> Result<SamplingPolicy, ConfigErrors> {
        let trimmed = bytes.trim_ascii();
        if trimmed.is_empty() {
            return Ok(SamplingPolicy::default());
        }
        let doc: Value = serde_json::from_slice(trimmed).map_err(|e| {
            ConfigErrors(vec![FieldError::new(
                "$.sampling",
                Problem::Syntax(format!("not valid JSON: {e}")),
            )])
        })?;
        let mut errs = Vec::new();
        let p = parse("$.sampling".into(), Some(&doc), &mut errs);
        if errs.is_empty() {
            Ok(p)
        } else {
            Err(ConfigErrors(errs))
        }
    }
}

fn err(errs: &mut Vec<FieldError>, path: String, reason: impl Into<String>) {
    errs.push(FieldError::invalid(path, reason));
}

/// A field that may be absent: `None` absent (or `null`), `Some(None)` present but invalid (the
/// error is recorded), `Some(Some(v))` valid.
type Opt<T> = Option<Option<T>>;

/// An optional string field parsed by `parse`.
fn opt_string<T>(
    f: &mut Fields<'_>,
    key: &'static str,
    errs: &mut Vec<FieldError>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Opt<T> {
    let path = f.child_path(key);
    match f.raw(key)? {
        Value::Null => None,
        Value::String(s) => match parse(s) {
            Ok(v) => Some(Some(v)),
            Err(e) => {
                err(errs, path, e);
                Some(None)
            }
        },
        other => {
            errs.push(FieldError::wrong_type(path, "a string", other));
            Some(None)
        }
    }
}

/// An optional rate: a JSON number from 0.0 to 1.0.
fn opt_rate(f: &mut Fields<'_>, key: &'static str, errs: &mut Vec<FieldError>) -> Opt<Rate> {
    let path = f.child_path(key);
    let v = f.raw(key)?;
    if v.is_null() {
        return None;
    }
    match v.as_f64() {
        Some(r) if (0.0..=1.0).contains(&r) => Some(Some(Rate::new(r))),
        _ => {
            errs.push(FieldError::not_in_range(
                path,
                "a number from 0.0 to 1.0",
                v,
            ));
            Some(None)
        }
    }
}

/// An optional array (`null` = absent) of at most [`MAX_LIST`] elements, each read by `parse`;
/// invalid elements are reported at `key[i]` and left out.
fn opt_list<T>(
    f: &mut Fields<'_>,
    key: &'static str,
    errs: &mut Vec<FieldError>,
    what: &str,
    parse: impl Fn(&Value) -> Result<T, String>,
) -> Option<Vec<T>> {
    let path = f.child_path(key);
    match f.raw(key)? {
        Value::Null => None,
        Value::Array(items) => Some(list_items(&path, items, errs, parse)),
        other => {
            errs.push(FieldError::wrong_type(
                path,
                format!("an array of {what}"),
                other,
            ));
            None
        }
    }
}

/// The elements of an array at `path` (at most [`MAX_LIST`]), each read by `parse`; invalid ones
/// are reported at `path[i]` and left out.
fn list_items<T>(
    path: &str,
    items: &[Value],
    errs: &mut Vec<FieldError>,
    parse: impl Fn(&Value) -> Result<T, String>,
) -> Vec<T> {
    if items.len() > MAX_LIST {
        err(
            errs,
            path.to_owned(),
            format!("at most {MAX_LIST} entries, got {}", items.len()),
        );
    }
    let mut out = Vec::with_capacity(items.len().min(MAX_LIST));
    for (i, it) in items.iter().enumerate().take(MAX_LIST) {
        match parse(it) {
            Ok(v) => out.push(v),
            Err(e) => err(errs, format!("{path}[{i}]"), e),
        }
    }
    out
}

fn string_then<T>(
    parse: impl Fn(&str) -> Result<T, String>,
) -> impl Fn(&Value) -> Result<T, String> {
    move |v| match v.as_str() {
        Some(s) => parse(s),
        None => Err(format!("expected a string, got {}", json_kind(v))),
    }
}

fn flag_code(s: &str) -> Result<u64, String> {
    RESPONSE_FLAGS
        .iter()
        .position(|c| c.eq_ignore_ascii_case(s))
        .map(|bit| 1u64 << bit)
        .ok_or_else(|| {
            format!(
                "unknown Envoy response flag {s:?}; expected one of: {}",
                RESPONSE_FLAGS.join(", ")
            )
        })
}

/// `always_keep.response_flags`: `"any"`, `"none"` or a list of flag codes.
fn read_flags(f: &mut Fields<'_>, errs: &mut Vec<FieldError>) -> FlagMatch {
    let path = f.child_path("response_flags");
    match f.raw("response_flags") {
        None | Some(Value::Null) => FlagMatch::Any,
        Some(Value::String(s)) if s == "any" => FlagMatch::Any,
        Some(Value::String(s)) if s == "none" => FlagMatch::Mask(0),
        Some(Value::Array(items)) => {
            let codes = list_items(&path, items, errs, string_then(flag_code));
            FlagMatch::Mask(codes.iter().fold(0, |m, b| m | b))
        }
        Some(other) => {
            err(
                errs,
                path,
                format!(
                    "expected \"any\", \"none\" or an array of Envoy response flag codes \
                     (\"UF\", \"UH\", …), got {other}"
                ),
            );
            FlagMatch::Any
        }
    }
}

/// `rules`, sorted by precedence (most specific first).
fn read_rules(f: &mut Fields<'_>, errs: &mut Vec<FieldError>) -> Vec<Rule> {
    let path = f.child_path("rules");
    let items = match f.raw("rules") {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            errs.push(FieldError::wrong_type(
                path,
                "an array of {route, service, method, rate} objects",
                other,
            ));
            return Vec::new();
        }
    };
    if items.len() > MAX_RULES {
        err(
            errs,
            path.clone(),
            format!("at most {MAX_RULES} rules, got {}", items.len()),
        );
    }
    let mut rules: Vec<(usize, Rule)> = Vec::with_capacity(items.len().min(MAX_RULES));
    for (i, item) in items.iter().enumerate().take(MAX_RULES) {
        let ipath = format!("{path}[{i}]");
        let Some(rule) = read_rule(&ipath, item, errs) else {
            continue;
        };
        if let Some((j, _)) = rules.iter().find(|(_, o)| o.same_matchers(&rule)) {
            err(
                errs,
                ipath,
                format!("same route, service and method as rules[{j}]: which rate applies?"),
            );
            continue;
        }
        rules.push((i, rule));
    }
    let mut rules: Vec<Rule> = rules.into_iter().map(|(_, r)| r).collect();
    // Stable: equally specific rules keep their config order (the first listed wins).
    rules.sort_by_key(|r| std::cmp::Reverse(r.specificity()));
    rules
}

/// One `rules[i]` entry at `ipath`; `None` when invalid (the errors are recorded).
fn read_rule(ipath: &str, item: &Value, errs: &mut Vec<FieldError>) -> Option<Rule> {
    let mut r = Fields::object(ipath, Some(item), errs);
    let route = opt_string(&mut r, "route", errs, PathPattern::parse);
    let service = opt_string(&mut r, "service", errs, NamePattern::parse);
    let method = opt_string(&mut r, "method", errs, pattern::method);
    let rate_path = r.child_path("rate");
    let rate = opt_rate(&mut r, "rate", errs);
    r.finish(errs);
    if !item.is_object() {
        return None;
    }
    if route.is_none() && service.is_none() && method.is_none() {
        err(
            errs,
            ipath.to_owned(),
            "needs at least one of route, service, method (default_rate is the rate of \
             everything else)",
        );
    }
    if rate.is_none() {
        errs.push(FieldError::missing(rate_path, "a number from 0.0 to 1.0"));
    }
    // Absent matchers are fine, invalid ones (already reported) drop the rule.
    let (Some(rate), Some(route), Some(service), Some(method)) = (
        rate.flatten(),
        route.map_or(Some(None), |o| o.map(Some)),
        service.map_or(Some(None), |o| o.map(Some)),
        method.map_or(Some(None), |o| o.map(Some)),
    ) else {
        return None;
    };
    if route.is_none() && service.is_none() && method.is_none() {
        return None;
    }
    Some(Rule {
        route,
        service,
        method,
        rate,
    })
}

/// `always_keep`: the classes kept whatever the rate.
fn read_always(mut a: Fields<'_>, errs: &mut Vec<FieldError>) -> AlwaysKeep {
    let d = AlwaysKeep::default();
    let status_min = a.int_in("status_min", 500, 100, 500, errs);
    let mut statuses = opt_list(&mut a, "statuses", errs, "status codes", |v| {
        v.as_u64()
            .filter(|n| (100..=599).contains(n))
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(|| format!("expected a status code from 100 to 599, got {v}"))
    })
    .unwrap_or(d.statuses);
    statuses.sort_unstable();
    statuses.dedup();
    let mut grpc_statuses = opt_list(&mut a, "grpc_statuses", errs, "gRPC status codes", |v| {
        let code = match v {
            Value::String(name) => crate::rpc::status_from_name(name),
            _ => v.as_u64().and_then(|n| u32::try_from(n).ok()),
        };
        code.filter(|c| (0..=16).contains(c)).ok_or_else(|| {
            format!(
                "expected a gRPC status code 0 to 16 or its name (\"PERMISSION_DENIED\"), got {v}"
            )
        })
    })
    .unwrap_or(d.grpc_statuses);
    grpc_statuses.sort_unstable();
    grpc_statuses.dedup();

    let lpath = a.child_path("latency_ms");
    let latency_ms = match a.raw("latency_ms") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(ms) if (1..=MAX_LATENCY_MS).contains(&ms) => Some(ms),
            _ => {
                errs.push(FieldError::not_in_range(
                    lpath,
                    format!("an integer from 1 to {MAX_LATENCY_MS} (ms)"),
                    v,
                ));
                None
            }
        },
    };
    let mut methods = opt_list(
        &mut a,
        "methods",
        errs,
        "HTTP methods",
        string_then(pattern::method),
    )
    .unwrap_or_default();
    methods.sort();
    methods.dedup();
    let paths = opt_list(
        &mut a,
        "paths",
        errs,
        "path patterns",
        string_then(PathPattern::parse),
    )
    .unwrap_or_default();
    let flags = read_flags(&mut a, errs);
    a.finish(errs);
    AlwaysKeep {
        status_min: i64::try_from(status_min).unwrap_or(DEFAULT_STATUS_MIN),
        statuses,
        grpc_statuses,
        latency_ms,
        methods,
        paths: sorted_patterns(paths),
        flags,
    }
}

/// `drop`: the health-check paths ([`DEFAULT_DROP_PATHS`] when absent).
fn read_drop(mut d: Fields<'_>, errs: &mut Vec<FieldError>) -> Vec<PathPattern> {
    let paths = opt_list(
        &mut d,
        "paths",
        errs,
        "path patterns",
        string_then(PathPattern::parse),
    )
    .unwrap_or_else(|| {
        DEFAULT_DROP_PATHS
            .iter()
            .filter_map(|p| PathPattern::parse(p).ok())
            .collect()
    });
    d.finish(errs);
    paths
}

/// `rate_cap`: `None` when absent (no cap) or invalid.
fn read_rate_cap(f: &mut Fields<'_>, errs: &mut Vec<FieldError>) -> Option<RateCap> {
    let path = f.child_path("rate_cap");
    let v = f.raw("rate_cap")?;
    if v.is_null() {
        return None;
    }
    let mut c = Fields::object(path, Some(v), errs);
    let rps_path = c.child_path("records_per_second");
    let present = v.get("records_per_second").is_some_and(|x| !x.is_null());
    let rps = c.int_in("records_per_second", 0, 1, MAX_RECORDS_PER_SECOND, errs);
    let burst = c.int_in("burst", rps.max(1), 1, MAX_BURST, errs);
    c.finish(errs);
    if !v.is_object() {
        return None;
    }
    if !present {
        errs.push(FieldError::missing(
            rps_path,
            format!("an integer from 1 to {MAX_RECORDS_PER_SECOND}"),
        ));
        return None;
    }
    Some(RateCap {
        records_per_second: rps.max(1),
        burst: burst.max(1),
    })
}

/// Reads the `sampling` section for `FilterConfig::from_json`:
/// `sample::parse(root.child_path("sampling"), root.raw("sampling"), errs)`. `None` or `null`
/// means no section: sampling off. Every problem goes to `errs` with its JSON path under `path`;
/// the returned policy is only meaningful when there was none.
pub(crate) fn parse(
    path: String,
    section: Option<&Value>,
    errs: &mut Vec<FieldError>,
) -> SamplingPolicy {
    let Some(v) = section.filter(|v| !v.is_null()) else {
        return SamplingPolicy::default();
    };
    let mut f = Fields::object(path, Some(v), errs);
    let default_rate = opt_rate(&mut f, "default_rate", errs)
        .flatten()
        .unwrap_or(Rate::new(1.0));
    let rules = read_rules(&mut f, errs);
    let always = read_always(f.section("always_keep", errs), errs);
    let drop_paths = read_drop(f.section("drop", errs), errs);
    let rate_cap = read_rate_cap(&mut f, errs);
    let tally_interval_ms = f.int_in(
        "tally_interval_ms",
        DEFAULT_TALLY_INTERVAL_MS,
        100,
        3_600_000,
        errs,
    );
    f.finish(errs);
    let mut p = SamplingPolicy {
        enabled: true,
        default_rate,
        rules,
        always,
        drop_paths: sorted_patterns(drop_paths),
        rate_cap,
        tally_interval_ms,
        version: String::new(),
    };
    p.version = p.compute_version();
    p
}
