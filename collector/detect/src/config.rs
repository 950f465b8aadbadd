//! The `[detect]` section: every built-in rule (on by default, each switched and tuned in its own
//! table), user rules (`[[detect.rules]]`), and where alerts go (`[detect.notify]`). Read with
//! core's [`Fields`] walker so every problem is reported at once, each naming its path
//! (`detect.error_spike.factor`, `detect.rules[2].condition`).

use crate::NS_PER_S;
use meshlog_core::config::fields::{FieldError, Fields};
use meshlog_core::redact::Kind;
use serde_json::Value;
use std::fmt;

/// Largest group cap a rule accepts.
pub const MAX_GROUPS: i64 = 10_000_000;
/// Longest window or delay accepted, seconds (90 days).
pub const MAX_SECONDS: i64 = 90 * 86_400;

/// How urgent a rule's alerts are (the Alertmanager `severity` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// For the record.
    Info,
    /// Someone should look.
    Warning,
    /// Someone should look now.
    Critical,
}

impl Severity {
    /// The config and label spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// The spelling back.
    pub fn from_name(s: &str) -> Option<Severity> {
        [Severity::Info, Severity::Warning, Severity::Critical]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings every rule has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Common {
    /// `enabled`: default true for built-in and user rules.
    pub enabled: bool,
    /// `severity`: `info`, `warning` or `critical`.
    pub severity: Severity,
    /// `resolve_after_s`: a firing group resolves once its condition has been false this long.
    pub resolve_after_s: u64,
    /// `suppress_s`: after a group's alert, a new one for the same group starting within this
    /// many seconds of the last one's start is not raised but counted (`suppressed`). 0: off.
    pub suppress_s: u64,
    /// `max_groups`: most groups the rule tracks (memory bound); more are evicted and counted.
    pub max_groups: usize,
}

impl Common {
    fn new(severity: Severity, resolve_after_s: u64) -> Self {
        Common {
            enabled: true,
            severity,
            resolve_after_s,
            suppress_s: 0,
            max_groups: 10_000,
        }
    }

    /// `resolve_after_s` in nanoseconds.
    pub fn resolve_after_ns(&self) -> u64 {
        self.resolve_after_s.saturating_mul(NS_PER_S)
    }
}

/// `[detect.auth_failure_burst]`: many 401/403 answers to one caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailureBurst {
    /// Shared settings (resolve_after_s default 60).
    pub common: Common,
    /// `window_s`: sliding window, seconds. Default 60.
    pub window_s: u64,
    /// `threshold`: failures in the window that fire. Default 20.
    pub threshold: u64,
    /// `statuses`: the failure statuses. Default `[401, 403]`.
    pub statuses: Vec<i64>,
}

/// `[detect.error_spike]`: a service's 5xx ratio far above its own baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorSpike {
    /// Shared settings (resolve_after_s default 60).
    pub common: Common,
    /// `interval_s`: the baseline's sample interval, seconds. Default 60.
    pub interval_s: u64,
    /// `min_volume`: requests in the interval before the ratio counts. Default 20.
    pub min_volume: u64,
    /// `min_ratio`: 5xx share that may fire, 0 to 1. Default 0.2.
    pub min_ratio: f64,
    /// `factor`: how many times the baseline ratio fires. Default 3.
    pub factor: f64,
    /// `alpha`: the baseline's EWMA weight, 0 to 1. Default 0.1.
    pub alpha: f64,
}

/// `[detect.new_caller]`: a (caller principal → service) edge not seen in the history window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCaller {
    /// Shared settings (resolve_after_s default 3600; max_groups = edges remembered, 100000).
    pub common: Common,
    /// `history_s`: how long an edge stays known without traffic, seconds. Default 604800 (7 d).
    pub history_s: u64,
    /// `services`: only these destination services (sensitive ones). Default `[]`: all.
    pub services: Vec<String>,
}

/// `[detect.rare_hour]`: a principal active at an hour it is not normally active at.
#[derive(Debug, Clone, PartialEq)]
pub struct RareHour {
    /// Shared settings (resolve_after_s default 3600).
    pub common: Common,
    /// `min_requests`: a principal's learned requests before its hours count. Default 200.
    pub min_requests: u64,
    /// `min_history_s`: how long a principal must have been seen before its hours count,
    /// seconds. Default 86400.
    pub min_history_s: u64,
    /// `rare_ratio`: an hour with less than this share of the principal's requests is rare.
    /// Default 0.01.
    pub rare_ratio: f64,
    /// `utc_offset_minutes`: the offset of the local day the hours are counted in. Default 0.
    pub utc_offset_minutes: i64,
    /// `business_hours`: `[start, end)` hours; when set, any request outside them is rare
    /// (a configured calendar instead of learned hours). Default: none (learned).
    pub business_hours: Option<(u8, u8)>,
}

/// How the secrets rule groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsGroup {
    /// Per caller (principal, else client address).
    Client,
    /// Per route.
    Route,
}

/// `[detect.secrets]`: secrets redacted from a client's (or route's) records jumping above baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Secrets {
    /// Shared settings (resolve_after_s default 120).
    pub common: Common,
    /// `interval_s`: sample interval, seconds. Default 60.
    pub interval_s: u64,
    /// `min_count`: secrets in the interval that may fire. Default 3.
    pub min_count: u64,
    /// `factor`: how many times the baseline fires. Default 3.
    pub factor: f64,
    /// `sigmas`: plus this many times the baseline's Poisson noise (√baseline). Default 3.
    pub sigmas: f64,
    /// `alpha`: the baseline's EWMA weight. Default 0.1.
    pub alpha: f64,
    /// `kinds`: the `meshlog.redacted.<kind>` counts that are secrets. Default: credentials and
    /// tokens (not PII, cookies or high-entropy strings).
    pub kinds: Vec<String>,
    /// `group_by`: `client` or `route`. Default `client`.
    pub group_by: SecretsGroup,
}

/// `[detect.delivery_loss]`: lost records (sequence gaps, drop tallies) and silent sidecars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLoss {
    /// Shared settings (resolve_after_s default 300).
    pub common: Common,
    /// `gap_grace_s`: a sequence gap not filled within this many seconds is a loss. Default 30.
    pub gap_grace_s: u64,
    /// `silent_s`: an instance that sent nothing this long while its service's other instances
    /// did is silent. Default 120.
    pub silent_s: u64,
    /// `forget_s`: an instance silent this long is forgotten (scaled down). Default 3600.
    pub forget_s: u64,
}

/// `[detect.integrity]`: checkpoints, verify runs and retention, as events the collector feeds in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integrity {
    /// Shared settings (resolve_after_s default 3600: how long a retention alert stays).
    pub common: Common,
    /// `checkpoint_max_age_s`: no signed checkpoint for longer fires. Default 300 (five
    /// default checkpoint intervals).
    pub checkpoint_max_age_s: u64,
}

/// `[detect.volume]`: a service's request volume far above its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// Shared settings (resolve_after_s default 60).
    pub common: Common,
    /// `interval_s`: sample interval, seconds. Default 60.
    pub interval_s: u64,
    /// `min_count`: requests in the interval that may fire. Default 100.
    pub min_count: u64,
    /// `factor`: how many times the baseline mean fires. Default 3.
    pub factor: f64,
    /// `sigmas`: and how many standard deviations above it. Default 4.
    pub sigmas: f64,
    /// `alpha`: the baseline's EWMA weight. Default 0.1.
    pub alpha: f64,
    /// `warmup_intervals`: intervals a service needs before it can fire. Default 10.
    pub warmup_intervals: u32,
}

/// A Sigma correlation type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Correlation {
    /// `event_count`: matching records per group in the timespan.
    EventCount,
    /// `value_count`: distinct values of `field` per group in the timespan.
    ValueCount {
        /// `field`.
        field: String,
    },
    /// `new_terms`: a combination of `fields` not seen within `history`.
    NewTerms {
        /// `fields` (1 to 3).
        fields: Vec<String>,
        /// `history`, nanoseconds.
        history_ns: u64,
    },
}

/// A comparison of a user rule's `condition`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// `gt`.
    Gt,
    /// `gte`.
    Gte,
}

/// One `where` condition: the attribute has one of the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The stored attribute (`http.route`, `resource.service.name`).
    pub key: String,
    /// Accepted values; `5xx`-style classes match integer status codes.
    pub values: Vec<String>,
}

/// One `[[detect.rules]]` entry: a Sigma-style correlation rule.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRule {
    /// `name`: unique, not a built-in's.
    pub name: String,
    /// `type` and its fields.
    pub correlation: Correlation,
    /// `where`: attribute conditions, all must hold.
    pub wheres: Vec<Match>,
    /// `group_by`: up to 3 attributes.
    pub group_by: Vec<String>,
    /// `timespan` (Sigma `90m`, `30s`, `1h`, `7d`), nanoseconds. Default 5m.
    pub timespan_ns: u64,
    /// `condition`: `{ gte = 10 }` or `{ gt = 10 }`.
    pub condition: (Op, f64),
    /// Shared settings (resolve_after_s defaults to the timespan).
    pub common: Common,
}

/// Alertmanager and webhook delivery (`[detect.notify]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// `alertmanagers`: Alertmanager base URLs (`http://am:9093`); alerts go to `/api/v2/alerts`.
    pub alertmanagers: Vec<String>,
    /// `webhooks`: URLs that get Alertmanager's webhook JSON for each transition.
    pub webhooks: Vec<String>,
    /// `queue`: transitions waiting per target; more are dropped and counted. Default 1000.
    pub queue: usize,
    /// `max_attempts`: tries per delivery. Default 10.
    pub max_attempts: u32,
    /// `initial_backoff_ms`: first retry delay bound. Default 500.
    pub initial_backoff_ms: u64,
    /// `max_backoff_ms`: largest retry delay. Default 30000.
    pub max_backoff_ms: u64,
    /// `timeout_ms`: per request. Default 5000.
    pub timeout_ms: u64,
    /// `resend_s`: firing alerts are re-sent to Alertmanager this often (it expires alerts not
    /// re-sent). Default 60.
    pub resend_s: u64,
    /// `external_url`: the collector's URL for `generatorURL` links. Default none.
    pub external_url: Option<String>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            alertmanagers: Vec::new(),
            webhooks: Vec::new(),
            queue: 1000,
            max_attempts: 10,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            timeout_ms: 5000,
            resend_s: 60,
            external_url: None,
        }
    }
}

/// The `[detect]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectConfig {
    /// `enabled`: detection at all. Default true.
    pub enabled: bool,
    /// `replay_s`: how much of the store is replayed at start to rebuild state, seconds.
    /// Default 3600.
    pub replay_s: u64,
    /// `learning_s`: after the first record (or replay), baseline and history rules learn
    /// this long before they may fire, seconds. Default 900.
    pub learning_s: u64,
    /// `[detect.auth_failure_burst]`.
    pub auth_failure_burst: AuthFailureBurst,
    /// `[detect.error_spike]`.
    pub error_spike: ErrorSpike,
    /// `[detect.new_caller]`.
    pub new_caller: NewCaller,
    /// `[detect.rare_hour]`.
    pub rare_hour: RareHour,
    /// `[detect.secrets]`.
    pub secrets: Secrets,
    /// `[detect.delivery_loss]`.
    pub delivery_loss: DeliveryLoss,
    /// `[detect.integrity]`.
    pub integrity: Integrity,
    /// `[detect.volume]`.
    pub volume: Volume,
    /// `[[detect.rules]]`.
    pub rules: Vec<UserRule>,
    /// `[detect.notify]`.
    pub notify: NotifyConfig,
}

/// The built-in rules' names, which are also their table names.
pub const BUILT_IN: [&str; 8] = [
    "auth_failure_burst",
    "error_spike",
    "new_caller",
    "rare_hour",
    "secrets",
    "delivery_loss",
    "integrity",
    "volume",
];

/// The default secret kinds: credentials and tokens.
pub fn default_secret_kinds() -> Vec<String> {
    use Kind::*;
    [
        Jwt,
        Bearer,
        Basic,
        UrlCredentials,
        AwsAccessKey,
        AwsSecretKey,
        GithubToken,
        GitlabToken,
        SlackToken,
        SlackWebhook,
        StripeKey,
        GoogleApiKey,
        OpenaiKey,
        AnthropicKey,
        ApiKey,
        PrivateKey,
        SecretParam,
        Credential,
    ]
    .iter()
    .map(|k| k.name().to_owned())
    .collect()
}

impl Default for DetectConfig {
    fn default() -> Self {
        use Severity::*;
        DetectConfig {
            enabled: true,
            replay_s: 3600,
            learning_s: 900,
            auth_failure_burst: AuthFailureBurst {
                common: Common::new(Warning, 60),
                window_s: 60,
                threshold: 20,
                statuses: vec![401, 403],
            },
            error_spike: ErrorSpike {
                common: Common::new(Critical, 60),
                interval_s: 60,
                min_volume: 20,
                min_ratio: 0.2,
                factor: 3.0,
                alpha: 0.1,
            },
            new_caller: NewCaller {
                common: Common {
                    max_groups: 100_000,
                    ..Common::new(Warning, 3600)
                },
                history_s: 7 * 86_400,
                services: Vec::new(),
            },
            rare_hour: RareHour {
                common: Common::new(Warning, 3600),
                min_requests: 200,
                min_history_s: 86_400,
                rare_ratio: 0.01,
                utc_offset_minutes: 0,
                business_hours: None,
            },
            secrets: Secrets {
                common: Common::new(Critical, 120),
                interval_s: 60,
                min_count: 3,
                factor: 3.0,
                sigmas: 3.0,
                alpha: 0.1,
                kinds: default_secret_kinds(),
                group_by: SecretsGroup::Client,
            },
            delivery_loss: DeliveryLoss {
                common: Common::new(Critical, 300),
                gap_grace_s: 30,
                silent_s: 120,
                forget_s: 3600,
            },
            integrity: Integrity {
                common: Common::new(Critical, 3600),
                checkpoint_max_age_s: 300,
            },
            volume: Volume {
                common: Common::new(Warning, 60),
                interval_s: 60,
                min_count: 100,
                factor: 3.0,
                sigmas: 4.0,
                alpha: 0.1,
                warmup_intervals: 10,
            },
            rules: Vec::new(),
            notify: NotifyConfig::default(),
        }
    }
}

fn secs(t: &mut Fields<'_>, key: &'static str, slot: &mut u64, errs: &mut Vec<FieldError>) {
    if let Some(v) = t.int(key, 1..=MAX_SECONDS, errs) {
        *slot = v as u64;
    }
}

fn count(t: &mut Fields<'_>, key: &'static str, slot: &mut u64, errs: &mut Vec<FieldError>) {
    if let Some(v) = t.int(key, 1..=i64::from(u32::MAX), errs) {
        *slot = v as u64;
    }
}

fn ratio(t: &mut Fields<'_>, key: &'static str, slot: &mut f64, errs: &mut Vec<FieldError>) {
    if let Some(v) = t.float(key, 0.0..=1.0, errs) {
        *slot = v;
    }
}

fn factor(t: &mut Fields<'_>, key: &'static str, slot: &mut f64, errs: &mut Vec<FieldError>) {
    if let Some(v) = t.float(key, 1.0..=1e6, errs) {
        *slot = v;
    }
}

/// The keys the baseline rules `secrets` and `volume` share: `interval_s`, `min_count`,
/// `factor`, `sigmas`, `alpha`.
fn baseline(
    t: &mut Fields<'_>,
    (interval_s, min_count, fac, sigmas, alpha): (&mut u64, &mut u64, &mut f64, &mut f64, &mut f64),
    errs: &mut Vec<FieldError>,
) {
    secs(t, "interval_s", interval_s, errs);
    count(t, "min_count", min_count, errs);
    factor(t, "factor", fac, errs);
    if let Some(v) = t.float("sigmas", 0.0..=100.0, errs) {
        *sigmas = v;
    }
    ratio(t, "alpha", alpha, errs);
}

fn common(t: &mut Fields<'_>, c: &mut Common, errs: &mut Vec<FieldError>) {
    if let Some(b) = t.bool("enabled", errs) {
        c.enabled = b;
    }
    let sev_path = t.child_path("severity");
    if let Some(s) = t.string("severity", errs) {
        match Severity::from_name(&s) {
            Some(v) => c.severity = v,
            None => errs.push(FieldError::invalid(
                sev_path,
                format!("expected info, warning or critical, got {s:?}"),
            )),
        }
    }
    if let Some(v) = t.int("resolve_after_s", 0..=MAX_SECONDS, errs) {
        c.resolve_after_s = v as u64;
    }
    if let Some(v) = t.int("suppress_s", 0..=MAX_SECONDS, errs) {
        c.suppress_s = v as u64;
    }
    if let Some(v) = t.int("max_groups", 1..=MAX_GROUPS, errs) {
        c.max_groups = v as usize;
    }
}

/// Reads the `[detect]` section (`fields`, at path `detect`), reporting every problem into
/// `errs`; `None` when anything in it is wrong. An absent section reads as all defaults.
pub fn parse(mut f: Fields<'_>, errs: &mut Vec<FieldError>) -> Option<DetectConfig> {
    let before = errs.len();
    let mut cfg = DetectConfig::default();
    if let Some(b) = f.bool("enabled", errs) {
        cfg.enabled = b;
    }
    secs(&mut f, "replay_s", &mut cfg.replay_s, errs);
    if let Some(v) = f.int("learning_s", 0..=MAX_SECONDS, errs) {
        cfg.learning_s = v as u64;
    }

    let mut t = f.section("auth_failure_burst", errs);
    let c = &mut cfg.auth_failure_burst;
    common(&mut t, &mut c.common, errs);
    secs(&mut t, "window_s", &mut c.window_s, errs);
    count(&mut t, "threshold", &mut c.threshold, errs);
    let path = t.child_path("statuses");
    if let Some(v) = t.raw("statuses").filter(|v| !v.is_null()) {
        match v.as_array().map(|a| {
            a.iter()
                .map(|x| x.as_i64().filter(|n| (100..=599).contains(n)))
                .collect::<Option<Vec<_>>>()
        }) {
            Some(Some(s)) if !s.is_empty() => c.statuses = s,
            _ => errs.push(FieldError::wrong_type(
                path,
                "a non-empty array of HTTP status codes (100 to 599)",
                v,
            )),
        }
    }
    t.finish(errs);

    let mut t = f.section("error_spike", errs);
    let c = &mut cfg.error_spike;
    common(&mut t, &mut c.common, errs);
    secs(&mut t, "interval_s", &mut c.interval_s, errs);
    count(&mut t, "min_volume", &mut c.min_volume, errs);
    ratio(&mut t, "min_ratio", &mut c.min_ratio, errs);
    factor(&mut t, "factor", &mut c.factor, errs);
    ratio(&mut t, "alpha", &mut c.alpha, errs);
    t.finish(errs);

    let mut t = f.section("new_caller", errs);
    let c = &mut cfg.new_caller;
    common(&mut t, &mut c.common, errs);
    secs(&mut t, "history_s", &mut c.history_s, errs);
    if let Some(s) = t.strings("services", errs) {
        c.services = s;
    }
    t.finish(errs);

    let mut t = f.section("rare_hour", errs);
    let c = &mut cfg.rare_hour;
    common(&mut t, &mut c.common, errs);
    count(&mut t, "min_requests", &mut c.min_requests, errs);
    secs(&mut t, "min_history_s", &mut c.min_history_s, errs);
    ratio(&mut t, "rare_ratio", &mut c.rare_ratio, errs);
    if let Some(v) = t.int("utc_offset_minutes", -14 * 60..=14 * 60, errs) {
        c.utc_offset_minutes = v;
    }
    let path = t.child_path("business_hours");
    if let Some(v) = t.raw("business_hours").filter(|v| !v.is_null()) {
        let hours = v.as_array().and_then(|a| match a.as_slice() {
            [s, e] => Some((s.as_u64()?, e.as_u64()?)),
            _ => None,
        });
        match hours {
            Some((s, e)) if s < e && e <= 24 => c.business_hours = Some((s as u8, e as u8)),
            _ => errs.push(FieldError::invalid(
                path,
                format!("expected [start, end) hours with 0 <= start < end <= 24, got {v}"),
            )),
        }
    }
    t.finish(errs);

    let mut t = f.section("secrets", errs);
    let c = &mut cfg.secrets;
    common(&mut t, &mut c.common, errs);
    baseline(
        &mut t,
        (
            &mut c.interval_s,
            &mut c.min_count,
            &mut c.factor,
            &mut c.sigmas,
            &mut c.alpha,
        ),
        errs,
    );
    let path = t.child_path("kinds");
    if let Some(kinds) = t.strings("kinds", errs) {
        let bad: Vec<&String> = kinds
            .iter()
            .filter(|k| Kind::from_name(k).is_none())
            .collect();
        if bad.is_empty() && !kinds.is_empty() {
            c.kinds = kinds;
        } else {
            errs.push(FieldError::invalid(
                path,
                format!("expected redaction kinds (docs/redaction.md), got unknown {bad:?}"),
            ));
        }
    }
    let path = t.child_path("group_by");
    if let Some(s) = t.string("group_by", errs) {
        match s.as_str() {
            "client" => c.group_by = SecretsGroup::Client,
            "route" => c.group_by = SecretsGroup::Route,
            _ => errs.push(FieldError::invalid(
                path,
                format!("expected client or route, got {s:?}"),
            )),
        }
    }
    t.finish(errs);

    let mut t = f.section("delivery_loss", errs);
    let c = &mut cfg.delivery_loss;
    common(&mut t, &mut c.common, errs);
    secs(&mut t, "gap_grace_s", &mut c.gap_grace_s, errs);
    secs(&mut t, "silent_s", &mut c.silent_s, errs);
    secs(&mut t, "forget_s", &mut c.forget_s, errs);
    t.finish(errs);

    let mut t = f.section("integrity", errs);
    let c = &mut cfg.integrity;
    common(&mut t, &mut c.common, errs);
    secs(
        &mut t,
        "checkpoint_max_age_s",
        &mut c.checkpoint_max_age_s,
        errs,
    );
    t.finish(errs);

    let mut t = f.section("volume", errs);
    let c = &mut cfg.volume;
    common(&mut t, &mut c.common, errs);
    baseline(
        &mut t,
        (
            &mut c.interval_s,
            &mut c.min_count,
            &mut c.factor,
            &mut c.sigmas,
            &mut c.alpha,
        ),
        errs,
    );
    if let Some(v) = t.int("warmup_intervals", 0..=10_000, errs) {
        c.warmup_intervals = v as u32;
    }
    t.finish(errs);

    let mut names: Vec<String> = BUILT_IN.iter().map(|s| (*s).to_owned()).collect();
    for t in f.tables("rules", errs) {
        if let Some(r) = user_rule(t, &mut names, errs) {
            cfg.rules.push(r);
        }
    }

    let mut t = f.section("notify", errs);
    let n = &mut cfg.notify;
    for (key, slot) in [
        ("alertmanagers", &mut n.alertmanagers),
        ("webhooks", &mut n.webhooks),
    ] {
        let path = t.child_path(key);
        if let Some(urls) = t.strings(key, errs) {
            for (i, u) in urls.iter().enumerate() {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    errs.push(FieldError::invalid(
                        format!("{path}[{i}]"),
                        format!("expected an http:// or https:// URL, got {u:?}"),
                    ));
                }
            }
            *slot = urls;
        }
    }
    if let Some(v) = t.int("queue", 1..=1_000_000, errs) {
        n.queue = v as usize;
    }
    if let Some(v) = t.int("max_attempts", 1..=1000, errs) {
        n.max_attempts = v as u32;
    }
    if let Some(v) = t.int("initial_backoff_ms", 1..=600_000, errs) {
        n.initial_backoff_ms = v as u64;
    }
    if let Some(v) = t.int("max_backoff_ms", 1..=3_600_000, errs) {
        n.max_backoff_ms = v as u64;
    }
    if let Some(v) = t.int("timeout_ms", 1..=600_000, errs) {
        n.timeout_ms = v as u64;
    }
    secs(&mut t, "resend_s", &mut n.resend_s, errs);
    n.external_url = t.string("external_url", errs);
    t.finish(errs);

    f.finish(errs);
    (errs.len() == before).then_some(cfg)
}

/// A Sigma timespan: a number and one of `s`, `m`, `h`, `d`.
pub fn duration_ns(s: &str) -> Option<u64> {
    let unit = match s.chars().last()? {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let n: u64 = s.get(..s.len() - 1)?.parse().ok()?;
    let secs = n.checked_mul(unit)?;
    (1..=MAX_SECONDS as u64)
        .contains(&secs)
        .then(|| secs * NS_PER_S)
}

fn timespan(t: &mut Fields<'_>, key: &'static str, errs: &mut Vec<FieldError>) -> Option<u64> {
    let path = t.child_path(key);
    let s = t.string(key, errs)?;
    let ns = duration_ns(&s);
    if ns.is_none() {
        errs.push(FieldError::invalid(
            path,
            format!("expected a duration like 30s, 5m, 1h or 7d (at most 90d), got {s:?}"),
        ));
    }
    ns
}

fn attribute_list(
    t: &mut Fields<'_>,
    key: &'static str,
    max: usize,
    errs: &mut Vec<FieldError>,
) -> Vec<String> {
    let path = t.child_path(key);
    let v = t.strings(key, errs).unwrap_or_default();
    if v.len() > max || v.iter().any(String::is_empty) {
        errs.push(FieldError::invalid(
            path,
            format!("expected up to {max} attribute names, got {v:?}"),
        ));
    }
    v
}

fn user_rule(
    mut t: Fields<'_>,
    names: &mut Vec<String>,
    errs: &mut Vec<FieldError>,
) -> Option<UserRule> {
    let before = errs.len();
    let name_path = t.child_path("name");
    let name = t.required_string("name", errs).unwrap_or_default();
    if !name.is_empty() {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ok {
            errs.push(FieldError::invalid(
                &name_path,
                format!("expected 1 to 64 of A-Z a-z 0-9 _ - ., got {name:?}"),
            ));
        } else if names.contains(&name) {
            errs.push(FieldError::invalid(
                &name_path,
                format!(
                    "duplicate rule name {name:?} (built-in rules are tuned in their own table)"
                ),
            ));
        }
        names.push(name.clone());
    }
    let group_by = attribute_list(&mut t, "group_by", 3, errs);
    let timespan_ns = if t.raw("timespan").is_some() {
        timespan(&mut t, "timespan", errs).unwrap_or(0)
    } else {
        300 * NS_PER_S
    };
    let type_path = t.child_path("type");
    let kind = t.required_string("type", errs).unwrap_or_default();
    let correlation = match kind.as_str() {
        "event_count" => Correlation::EventCount,
        "value_count" => {
            let field = t.required_string("field", errs).unwrap_or_default();
            Correlation::ValueCount { field }
        }
        "new_terms" => {
            let fields_path = t.child_path("fields");
            let fields = attribute_list(&mut t, "fields", 3, errs);
            if fields.is_empty() {
                errs.push(FieldError::missing(fields_path, "1 to 3 attribute names"));
            }
            let history_ns = if t.raw("history").is_some() {
                timespan(&mut t, "history", errs).unwrap_or(0)
            } else {
                7 * 86_400 * NS_PER_S
            };
            Correlation::NewTerms { fields, history_ns }
        }
        "" => Correlation::EventCount,
        other => {
            errs.push(FieldError::invalid(
                &type_path,
                format!(
                    "expected event_count, value_count or new_terms (temporal correlations are \
                     not supported), got {other:?}"
                ),
            ));
            Correlation::EventCount
        }
    };
    let cond_path = t.child_path("condition");
    let mut condition = (Op::Gte, 1.0);
    match t.raw("condition") {
        None | Some(Value::Null) if matches!(correlation, Correlation::NewTerms { .. }) => {}
        None | Some(Value::Null) => errs.push(FieldError::missing(
            &cond_path,
            "a condition, { gte = N } or { gt = N }",
        )),
        Some(Value::Object(m)) if m.len() == 1 => {
            let (op, v) = m
                .iter()
                .next()
                .map(|(k, v)| (k.as_str(), v))
                .unwrap_or(("", v_null()));
            let op = match op {
                "gte" => Some(Op::Gte),
                "gt" => Some(Op::Gt),
                _ => None,
            };
            match (op, v.as_f64()) {
                (Some(op), Some(n)) if n >= 0.0 => condition = (op, n),
                _ => errs.push(FieldError::invalid(
                    &cond_path,
                    "expected { gte = N } or { gt = N } with N >= 0 (lt, lte and eq cannot fire \
                     on a stream)",
                )),
            }
        }
        Some(v) => errs.push(FieldError::wrong_type(
            &cond_path,
            "a table with one of gte, gt",
            v,
        )),
    }
    let where_path = t.child_path("where");
    let mut wheres = Vec::new();
    match t.raw("where") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let values: Option<Vec<String>> = match v {
                    Value::String(s) => Some(vec![s.clone()]),
                    Value::Number(n) => Some(vec![n.to_string()]),
                    Value::Bool(b) => Some(vec![b.to_string()]),
                    Value::Array(a) if !a.is_empty() => a
                        .iter()
                        .map(|x| match x {
                            Value::String(s) => Some(s.clone()),
                            Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        })
                        .collect(),
                    _ => None,
                };
                match values {
                    Some(values) if !k.is_empty() => wheres.push(Match {
                        key: k.clone(),
                        values,
                    }),
                    _ => errs.push(FieldError::wrong_type(
                        format!("{where_path}.{k:?}"),
                        "a string, number or non-empty array of them",
                        v,
                    )),
                }
            }
        }
        Some(v) => errs.push(FieldError::wrong_type(
            &where_path,
            "a table of attribute = value(s)",
            v,
        )),
    }
    let mut c = Common::new(Severity::Warning, timespan_ns / NS_PER_S);
    common(&mut t, &mut c, errs);
    t.finish(errs);
    (errs.len() == before).then_some(UserRule {
        name,
        correlation,
        wheres,
        group_by,
        timespan_ns,
        condition,
        common: c,
    })
}

fn v_null() -> &'static Value {
    &Value::Null
}
