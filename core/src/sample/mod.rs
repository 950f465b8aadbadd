//! Sampling: which access records are kept, decided at the edge, per request, in a way an auditor
//! can check.
//!
//! Opt-in: with no `sampling` section every request is kept (adjusted count 1): an audit trail is
//! complete unless policy says otherwise. When a section is configured, the filter asks a per-VM
//! [`Sampler`] about each finished request ([`Sampler::decide`] with the request's
//! [`RequestFacts`] and the current time) and gets a [`Decision`]:
//!
//! - [`Decision::Keep`] with the record's **adjusted count** (`1/rate` for a sampled record, 1 for
//!   an always-kept one or when sampling is off): the number of requests it stands for. Summing
//!   adjusted counts estimates volumes; errors are never sampled, so they are counted exactly.
//!   The record also carries the policy [`version`](SamplingPolicy::version) (16 hex characters,
//!   like the redaction policy's) — see [`ATTR_ADJUSTED_COUNT`], [`ATTR_POLICY_VERSION`],
//!   [`ATTR_KEEP_REASON`].
//! - [`Decision::Drop`] with its [`DropReason`]: *sampled out*, *rate cap* or *health check*. Drops
//!   are never silent: the sampler counts every decision in a [`Tally`], which the filter takes
//!   periodically ([`Sampler::take_tally`]) and ships as a record of its own
//!   ([`Tally::for_each_attribute`]: `meshlog.dropped.sampled`, `meshlog.dropped.rate_cap`,
//!   `meshlog.dropped.health_check`, the interval, per route), so every gap is explained.
//!
//! Call it *before* building the record: a dropped request then costs no capture, redaction or
//! encoding. Everything here is pure: no clock (time is passed in), no RNG, no panics.
//!
//! # Decision order
//!
//! 1. Sampling off (no section): keep, adjusted count 1 ([`KeepReason::NotSampled`]).
//! 2. **Always keep** (adjusted count 1, never sampled, never capped): status ≥
//!    `always_keep.status_min` (every 5xx at least); a status in `always_keep.statuses` (401, 403,
//!    429 by default); a gRPC status in `always_keep.grpc_statuses` (every one but `OK` by
//!    default); any Envoy response flag (or one of a list); duration above
//!    `always_keep.latency_ms`; a method in `always_keep.methods`; a path in
//!    `always_keep.paths`. Checked first, so a *failing* health check or an error on a route
//!    sampled at 0 is still kept.
//! 3. **Health checks**: a path in `drop.paths` (`/healthz`, `/readyz`, `/livez` by default) is
//!    dropped — even at rate 1.0 — and counted as `health_check`.
//! 4. **Rate**: the most specific matching rule's `rate`, else `default_rate`. The request is kept
//!    when its sampling key passes the rate (below), else dropped as `sampled`.
//! 5. **Rate cap**: a sampled-in record takes a token from the per-VM bucket; with none left it is
//!    dropped as `rate_cap` (the tally keeps the sum of the adjusted counts it dropped, so
//!    estimates stay exact in expectation).
//!
//! # Trace consistency: the sampling key
//!
//! The keep decision for a rate is a pure function of the trace, the same in every Envoy, every VM
//! and every hop: a 56-bit key `R` is taken from the **trace id** (its rightmost 7 bytes,
//! big-endian: the random part per W3C Trace Context Level 2, and where a 64-bit B3 id lives), or,
//! without one, from the **`x-request-id`** (the first 7 bytes of its SHA-256, big-endian). A rate
//! `p` keeps `R ≥ 2^56 − floor(p·2^56)`, integer arithmetic throughout. This is the form of
//! OpenTelemetry's consistent probability sampling (keep when `R ≥ T`), so decisions nest: a trace
//! kept at 1% is kept at 10%, and, when an upstream SDK samples traces the same way at a rate at
//! least ours, every kept log has its trace. See [`sampling_key`] for the exact definition.
//!
//! Requests with neither id cannot be sampled consistently: at a rate strictly between 0 and 1
//! they are *kept* with adjusted count 1 ([`KeepReason::NoSamplingKey`]) rather than dropped on a
//! guess. Hops agree only if they see the same id: Envoy's tracing and request-id generation
//! happen before the filter, and a trace id that appears mid-path switches the key from the
//! request id to the trace id.
//!
//! # Rule precedence
//!
//! Each rule matches on any of `route`, `service`, `method` (all given must match). Among the
//! matching rules the most specific wins, compared in this order:
//!
//! 1. **Which fields are set**, weighted route 4, service 2, method 1 (higher sum wins): route +
//!    service + method > route + service > route + method > route > service + method > service >
//!    method. A route is a part of a service, so any rule naming a route beats any rule that
//!    does not.
//! 2. **How exact the route pattern is**: an exact path beats a template, which beats a prefix;
//!    between two exact paths the longer, two templates the one with more literal segments, two
//!    prefixes the longer.
//! 3. **How exact the service is**: an exact name beats a prefix; longer beats shorter.
//! 4. **Config order**: the rule listed first.
//!
//! Two rules with the same route, service and method are a configuration error. The rules are
//! sorted once at configuration; a decision takes the first match.
//!
//! # Rate cap and always-keep
//!
//! Always-kept records **bypass** the cap: a flood of 5xx, 401s or flagged requests is exactly the
//! security and operations signal an audit log exists for, and dropping it at the edge would be
//! silent loss of what matters most. They do **consume** a token when one is available (never
//! going into debt), so during such a flood the sampled traffic yields first and the total stays
//! near the cap plus the flood itself. Memory is bounded elsewhere: the batcher's byte bound drops
//! the oldest records under overflow, and counts them. The bucket (`records_per_second`, `burst`)
//! is exact integer arithmetic on the caller's clock; a clock stepping backwards mints nothing and
//! blocks nothing.
//!
//! # Configuration reference (`"sampling"`)
//!
//! No section (or `null`): sampling off, every request kept, health checks included. A section,
//! even `{}`, turns sampling on with the defaults below (so `{}` keeps everything but health
//! checks). Every field is optional; unknown fields and invalid values are errors, all reported
//! at once with their JSON path (`$.sampling.rules[2].rate`).
//!
//! ```json
//! "sampling": {
//!   "default_rate": 0.1,
//!   "rules": [ { "route": "/api/v1/search*", "rate": 0.01 },
//!              { "service": "checkout", "method": "GET", "rate": 0.5 } ],
//!   "always_keep": { "status_min": 500, "statuses": [401, 403, 429],
//!                    "grpc_statuses": ["PERMISSION_DENIED", 14], "latency_ms": 2000,
//!                    "methods": ["DELETE"], "paths": ["/admin*"], "response_flags": "any" },
//!   "drop": { "paths": ["/healthz", "/readyz", "/livez"] },
//!   "rate_cap": { "records_per_second": 1000, "burst": 2000 },
//!   "tally_interval_ms": 10000
//! }
//! ```
//!
//! - `default_rate`: number 0.0 to 1.0, default 1.0: the fraction of requests kept when no rule
//!   matches.
//! - `rules`: array (at most 256) of objects with `rate` (required, 0.0 to 1.0) and at least one of:
//!   - `route`: a path pattern (below), matched against the request path and its route
//!     (`http.route`);
//!   - `service`: the service name the filter passes in [`RequestFacts::service`]; exact and
//!     case-sensitive, or a prefix ending in `*` (`"checkout*"`); 1 to 256 bytes, not `"*"`;
//!   - `method`: an HTTP method, case-insensitive.
//!
//!   Precedence as above. A rate of 0.0 drops everything the rule matches except always-kept
//!   classes (counted as `sampled`).
//! - `always_keep`: object.
//!   - `status_min`: integer 100 to 500, default 500: every status at or above is kept. It cannot
//!     exceed 500: 5xx are always kept.
//!   - `statuses`: array of integers 100 to 599, default `[401, 403, 429]` ([`DEFAULT_KEEP_STATUSES`]);
//!     `[]` for none.
//!   - `grpc_statuses`: array of gRPC status codes, numbers 0 to 16 or names
//!     (`"PERMISSION_DENIED"`), default every code but `OK` ([`DEFAULT_KEEP_GRPC_STATUSES`]): a
//!     failed gRPC call answers HTTP 200, so the status rules above never see it; `[]` for none.
//!   - `latency_ms`: integer 1 to 3600000, default none: keep requests whose duration is *above*
//!     this many milliseconds.
//!   - `methods`: array of HTTP methods (case-insensitive), default empty.
//!   - `paths`: array of path patterns, default empty.
//!   - `response_flags`: `"any"` (default: keep every request Envoy flagged — `UF`, `UH`, `NR`,
//!     `RL`, `UAEX`, `DC`, …), `"none"`, or an array of flag codes (`["UF", "UH", "URX"]`, see
//!     [`crate::envoy::RESPONSE_FLAGS`]).
//! - `drop.paths`: array of path patterns dropped as health checks (unless always kept), default
//!   `["/healthz", "/readyz", "/livez"]` ([`DEFAULT_DROP_PATHS`]); `[]` for none.
//! - `rate_cap`: object, default none (no cap). `records_per_second`: integer 1 to 1000000,
//!   required; `burst`: integer 1 to 10000000, default `records_per_second`. Per VM.
//! - `tally_interval_ms`: integer 100 to 3600000, default 10000: how often each VM ships its
//!   tally record. About shipping, not deciding: not part of the policy version.
//!
//! Lists hold at most 256 entries.
//!
//! **Path patterns** start with `/`, are at most 1024 bytes and are one of: an exact path
//! (`/healthz`; one trailing `/` is ignored on both sides, so `/healthz/` matches); a prefix
//! ending in `*` (`/admin*` matches `/admin`, `/admin/x`, `/administrator`; no other `*`); a
//! route template (`/users/{id}/orders/{rest*}`: `{name}` is one non-empty segment, `{name*}` as
//! the last segment one or more). They match the path without its query, byte for byte (no
//! percent-decoding, case-sensitive: rely on Envoy's `normalize_path` / `merge_slashes`), *or*
//! the route: an exact pattern equal to the route, a template matching it (`{id}` is a segment
//! like any other), a prefix of it.

mod bucket;
mod hash;
mod pattern;
mod policy;
mod tally;

use bucket::TokenBucket;
pub use hash::{KEY_SPACE, keeps, sampling_key, threshold};
/// Reads the `sampling` section for `FilterConfig::from_json`:
/// `sample::parse(root.child_path("sampling"), root.raw("sampling"), errs)`.
pub(crate) use policy::parse;
pub use policy::{
    DEFAULT_DROP_PATHS, DEFAULT_KEEP_GRPC_STATUSES, DEFAULT_KEEP_STATUSES, DEFAULT_STATUS_MIN,
    DEFAULT_TALLY_INTERVAL_MS, MAX_BURST, MAX_LATENCY_MS, MAX_LIST, MAX_RECORDS_PER_SECOND,
    MAX_RULES, RateCap, SamplingPolicy,
};
pub use tally::{
    ATTR_BY_ROUTE, ATTR_DROPPED_HEALTH_CHECK, ATTR_DROPPED_RATE_CAP,
    ATTR_DROPPED_RATE_CAP_ADJUSTED, ATTR_DROPPED_SAMPLED, ATTR_END_NS, ATTR_KEPT,
    ATTR_KEPT_ADJUSTED, ATTR_KEPT_ALWAYS, ATTR_SEEN, ATTR_START_NS, MAX_TALLY_ROUTES, NO_ROUTE,
    OTHER_ROUTE, RouteTally, TALLY_EVENT_NAME, Tally,
};

use crate::record::AccessRecord;

/// Suggested record attribute: the kept record's adjusted count (a double: `1/rate`, or 1).
pub use crate::schema::MESHLOG_SAMPLING_ADJUSTED_COUNT as ATTR_ADJUSTED_COUNT;
/// Record (and tally) attribute: the sampling policy version, 16 hex characters. Distinct from
/// `meshlog.policy_version`, the redaction policy's.
pub use crate::schema::MESHLOG_SAMPLING_POLICY_VERSION as ATTR_POLICY_VERSION;
/// Suggested record attribute: why the record was kept ([`KeepReason::name`]).
pub use crate::schema::MESHLOG_SAMPLING_REASON as ATTR_KEEP_REASON;

/// What the sampler needs to know about a finished request. All borrowed; build it from the
/// attributes the filter reads anyway, before capturing the record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestFacts<'a> {
    /// Trace id (W3C or B3, see [`crate::trace`]); the sampling key when present and not all zero.
    pub trace_id: Option<[u8; 16]>,
    /// `x-request-id` as sent: the sampling key when there is no trace id.
    pub request_id: Option<&'a str>,
    /// HTTP method (any case).
    pub method: Option<&'a str>,
    /// Request path as sent (before templating); a query after `?` is ignored.
    pub path: Option<&'a str>,
    /// Low-cardinality route (`http.route`), when known.
    pub route: Option<&'a str>,
    /// The service the request is for, as the filter names it (e.g. the destination workload's
    /// service name); matched by `rules[].service`.
    pub service: Option<&'a str>,
    /// Response status; `None` when no response was sent.
    pub status: Option<i64>,
    /// Duration, nanoseconds.
    pub duration_ns: Option<u64>,
    /// Envoy response flags bitmask (bit `i` is [`crate::envoy::RESPONSE_FLAGS`]`[i]`); 0 = none.
    pub response_flags: u64,
    /// gRPC status (`rpc.grpc.status_code`); `None` for anything but gRPC, or when none was sent.
    pub grpc_status: Option<u32>,
}

impl<'a> RequestFacts<'a> {
    /// Facts from an already-built record (the record's path may be templated; prefer building
    /// facts from raw attributes before capture). `service` is left `None`: set it if rules use
    /// it.
    pub fn from_record(rec: &'a AccessRecord) -> Self {
        RequestFacts {
            trace_id: rec.trace_id,
            request_id: rec.request_id.as_deref(),
            method: rec.method.as_deref(),
            path: rec.path.as_deref(),
            route: rec.route.as_deref(),
            service: None,
            status: rec.status,
            duration_ns: rec.duration_ns,
            response_flags: rec.response_flags.as_deref().map_or(0, flags_from_codes),
            grpc_status: rec.rpc.as_ref().and_then(|r| r.grpc_status),
        }
    }
}

/// The bitmask of comma-separated Envoy response flag codes (`"UF,URX"`), as
/// [`crate::envoy::response_flags`] writes them; unknown codes are ignored.
pub fn flags_from_codes(codes: &str) -> u64 {
    codes
        .split(',')
        .filter_map(|c| {
            crate::envoy::RESPONSE_FLAGS
                .iter()
                .position(|k| *k == c.trim())
        })
        .fold(0, |m, bit| m | (1u64 << bit))
}

/// Why a record is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeepReason {
    /// Sampling is off (no `sampling` section): everything is kept.
    NotSampled,
    /// Status at or above `always_keep.status_min` (every 5xx).
    ErrorStatus,
    /// Status listed in `always_keep.statuses`.
    Status,
    /// gRPC status listed in `always_keep.grpc_statuses` (every one but `OK` by default).
    GrpcStatus,
    /// An Envoy response flag matched `always_keep.response_flags`.
    ResponseFlags,
    /// Duration above `always_keep.latency_ms`.
    Latency,
    /// Method listed in `always_keep.methods`.
    Method,
    /// Path or route matched `always_keep.paths`.
    Path,
    /// Selected by its sampling rate (adjusted count `1/rate`; 1 at rate 1.0).
    Sampled,
    /// No trace id and no request id at a rate strictly between 0 and 1: kept, adjusted count 1,
    /// rather than dropped on a guess.
    NoSamplingKey,
}

impl KeepReason {
    /// Stable name for records and counters.
    pub fn name(self) -> &'static str {
        match self {
            KeepReason::NotSampled => "not_sampled",
            KeepReason::ErrorStatus => "error_status",
            KeepReason::Status => "status",
            KeepReason::GrpcStatus => "grpc_status",
            KeepReason::ResponseFlags => "response_flags",
            KeepReason::Latency => "latency",
            KeepReason::Method => "method",
            KeepReason::Path => "path",
            KeepReason::Sampled => "sampled",
            KeepReason::NoSamplingKey => "no_sampling_key",
        }
    }

    /// Whether this is an always-keep class (never sampled out, never capped).
    pub fn is_always(self) -> bool {
        matches!(
            self,
            KeepReason::ErrorStatus
                | KeepReason::Status
                | KeepReason::GrpcStatus
                | KeepReason::ResponseFlags
                | KeepReason::Latency
                | KeepReason::Method
                | KeepReason::Path
        )
    }
}

/// Why a record is dropped. Every drop is counted in the [`Tally`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DropReason {
    /// Not selected by its sampling rate (`meshlog.dropped.sampled`).
    SampledOut,
    /// Selected, but over the per-VM rate cap (`meshlog.dropped.rate_cap`); carries the adjusted
    /// count the record would have had, which the tally sums.
    RateCap {
        /// `1/rate` of the record dropped.
        adjusted_count: f64,
    },
    /// On the health-check drop list (`meshlog.dropped.health_check`).
    HealthCheck,
}

impl DropReason {
    /// Stable name, the suffix of the tally attribute (`meshlog.dropped.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::SampledOut => "sampled",
            DropReason::RateCap { .. } => "rate_cap",
            DropReason::HealthCheck => "health_check",
        }
    }
}

/// The sampler's verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Build and ship the record.
    Keep {
        /// Requests this record stands for: `1/rate` when sampled, 1 otherwise. Always ≥ 1 and
        /// finite.
        adjusted_count: f64,
        /// Why.
        reason: KeepReason,
    },
    /// Do not build the record (it is counted).
    Drop(DropReason),
}

impl Decision {
    /// Whether the record is kept.
    pub fn is_keep(&self) -> bool {
        matches!(self, Decision::Keep { .. })
    }

    /// The adjusted count of a kept record.
    pub fn adjusted_count(&self) -> Option<f64> {
        match self {
            Decision::Keep { adjusted_count, .. } => Some(*adjusted_count),
            Decision::Drop(_) => None,
        }
    }
}

/// The per-VM sampler: the policy, the rate-cap bucket and the running tally.
#[derive(Debug, Clone)]
pub struct Sampler {
    policy: SamplingPolicy,
    bucket: Option<TokenBucket>,
    tally: Tally,
}

impl Sampler {
    /// A sampler for `policy`, its tally starting at `now_ns` (unix ns) and its bucket full.
    pub fn new(policy: SamplingPolicy, now_ns: u64) -> Self {
        let bucket = policy
            .rate_cap()
            .map(|c| TokenBucket::new(c.records_per_second, c.burst));
        let tally = Tally::new(policy.version(), now_ns);
        Sampler {
            policy,
            bucket,
            tally,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &SamplingPolicy {
        &self.policy
    }

    /// Decides one finished request at `now_ns` (unix ns) and counts the decision.
    pub fn decide(&mut self, facts: &RequestFacts<'_>, now_ns: u64) -> Decision {
        let mut d = self.policy.classify(facts);
        if let (
            Some(bucket),
            Decision::Keep {
                adjusted_count,
                reason,
            },
        ) = (&mut self.bucket, d)
        {
            match reason {
                // Bypass the cap, but use up a token if there is one (see the module docs).
                r if r.is_always() => {
                    let _ = bucket.try_take(now_ns);
                }
                KeepReason::Sampled | KeepReason::NoSamplingKey if !bucket.try_take(now_ns) => {
                    d = Decision::Drop(DropReason::RateCap { adjusted_count });
                }
                _ => {}
            }
        }
        self.tally.count(facts.route, &d);
        d
    }

    /// The tally counted so far (not reset).
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Returns the tally since the last take (or creation), ended at `now_ns`, and starts a new
    /// one. Ship it even when nothing was dropped: it proves that.
    pub fn take_tally(&mut self, now_ns: u64) -> Tally {
        self.tally.take(now_ns)
    }

    /// Switches to a new policy (on reconfiguration) and returns the final tally of the old one,
    /// so no interval mixes two policies. The rate-cap bucket starts full again.
    pub fn replace_policy(&mut self, policy: SamplingPolicy, now_ns: u64) -> Tally {
        let last = self.tally.take(now_ns);
        *self = Sampler::new(policy, now_ns);
        last
    }
}

#[cfg(test)]
mod tests;
