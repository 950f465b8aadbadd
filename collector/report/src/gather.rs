//! Gathering a period's evidence from a data directory: one scan of the period's records with
//! meshlog-query (the same reader, filters and completeness statement as `meshlog query`),
//! each record counted into the section whose population it belongs to; the alerts folded with
//! meshlog-detect's history; deletion receipts and checkpoints read and verified with the
//! collector's key; and `meshlog verify` (meshlog-audit) over every store.
//!
//! Each section's population is a filter of the query API, applied to the same scan, so the
//! command printed as its population query returns exactly the rows counted.

use crate::model::*;
use crate::settings::Settings;
use meshlog_detect::history::AlertHistory;
use meshlog_detect::{ALERT_EVENT, TRIAGE_EVENT};
use meshlog_format::checkpoint_log::{self, Item};
use meshlog_format::encryption::DataKeys;
use meshlog_format::receipt;
use meshlog_format::time::rfc3339;
use meshlog_query::filter::{Filter, Record, field, value_str};
use meshlog_query::scan::{self, Flow, ScanOptions, ScanOutcome, time_of};
use meshlog_query::{FilterError, QueryError};
use meshlog_tlog::checkpoint::Checkpoint;
use meshlog_tlog::keys::VerifierKey;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The event name of access records (meshlog-server's audit log).
pub const ACCESS_EVENT: &str = "meshlog.access";
/// The event name of delivery tally records.
pub const DELIVERY_TALLY_EVENT: &str = "meshlog.delivery.tally";
/// The event name of sampling tally records.
pub const SAMPLING_TALLY_EVENT: &str = "meshlog.sampling.tally";
/// Prefix of the per-kind redaction counts.
pub const REDACTED_PREFIX: &str = "meshlog.redacted.";

/// Chart bucket lengths, seconds: the shortest that gives at most [`MAX_BUCKETS`] over the period.
const BUCKETS_S: [u64; 7] = [60, 300, 900, 3600, 6 * 3600, 86_400, 7 * 86_400];
/// Most columns in the volume chart.
const MAX_BUCKETS: u64 = 120;

/// The volume chart's bucket for a period of `len_ns`, ns.
pub fn bucket_ns(len_ns: u64) -> u64 {
    let s = BUCKETS_S
        .iter()
        .copied()
        .find(|b| len_ns / (b * 1_000_000_000) <= MAX_BUCKETS)
        .unwrap_or(30 * 86_400);
    s * 1_000_000_000
}

/// What to report on.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The data directory.
    pub data_dir: &'a Path,
    /// Keys for sealed frames.
    pub data_keys: Option<&'a DataKeys>,
    /// Period start, Unix ns.
    pub from_ns: u64,
    /// Period end (exclusive), Unix ns.
    pub to_ns: u64,
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Now, Unix ns (the generation time).
    pub now_ns: u64,
    /// The verifier key of the collector's signing key: checkpoints and receipts are checked
    /// with it.
    pub verifier: &'a VerifierKey,
    /// The settings in force.
    pub settings: &'a Settings,
}

/// Why a report could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    /// The period is empty or reversed.
    #[error("--from must be before --to (period {from} to {to})")]
    EmptyPeriod {
        /// Start.
        from: String,
        /// End.
        to: String,
    },
    /// A filter parameter was rejected.
    #[error(transparent)]
    Param(#[from] FilterError),
    /// Reading the records failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// `meshlog verify` could not read the store.
    #[error("verifying the store: {0}")]
    Verify(#[from] meshlog_audit::scan::ScanError),
    /// A directory could not be listed.
    #[error("listing {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Tallies made while scanning.
#[derive(Default)]
struct Tally {
    total: u64,
    access: u64,
    alert_records: u64,
    by_event: BTreeMap<String, u64>,
    vms: BTreeMap<String, (Option<String>, u64)>,
    principals: BTreeMap<String, PrincipalReads>,
    refusals: Vec<AccessEntry>,
    refusals_total: u64,
    alerts: AlertHistory,
    delivery_tallies: u64,
    sampling: BTreeMap<String, SamplingRow>,
    bucket_ns: u64,
    per_bucket: BTreeMap<u64, u64>,
    policy_versions: BTreeMap<String, u64>,
    collector_policy_versions: BTreeMap<String, u64>,
    redacted: BTreeMap<String, u64>,
    records_redacted: u64,
}

fn int(r: &Record, key: &str) -> u64 {
    match r.get(key) {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().map(|f| f.max(0.0).round() as u64))
            .unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn text(r: &Record, key: &str) -> Option<String> {
    r.get(key).map(|v| value_str(v).into_owned())
}

impl Tally {
    fn add(&mut self, r: &Record, access_filter: &Filter, alert_filters: &[Filter; 2]) {
        self.total += 1;
        let event = text(r, "event_name").unwrap_or_else(|| "(none)".into());
        *self.by_event.entry(event.clone()).or_default() += 1;
        *self
            .per_bucket
            .entry(time_of(r) / self.bucket_ns * self.bucket_ns)
            .or_default() += 1;
        if let Some(vm) = text(r, field::VM_ID) {
            let e = self.vms.entry(vm).or_default();
            e.1 += 1;
            if e.0.is_none() {
                e.0 = text(r, field::SERVICE);
            }
        }
        if access_filter.matches(r) {
            self.access += 1;
            self.add_access(r);
        }
        if alert_filters.iter().any(|f| f.matches(r)) {
            self.alert_records += 1;
            self.alerts.add(r);
        }
        match event.as_str() {
            DELIVERY_TALLY_EVENT => self.delivery_tallies += 1,
            SAMPLING_TALLY_EVENT => {
                let v = text(r, "meshlog.sampling.policy_version").unwrap_or_else(|| "-".into());
                let s = self.sampling.entry(v.clone()).or_default();
                s.policy_version = v;
                s.tallies += 1;
                s.seen += int(r, "meshlog.sampling.seen");
                s.kept += int(r, "meshlog.sampling.kept");
                s.kept_adjusted += int(r, "meshlog.sampling.kept.adjusted");
                s.dropped_sampled += int(r, "meshlog.dropped.sampled");
                s.dropped_rate_cap += int(r, "meshlog.dropped.rate_cap");
                s.dropped_health_check += int(r, "meshlog.dropped.health_check");
            }
            _ => {}
        }
        if let Some(v) = text(r, "meshlog.policy_version") {
            *self.policy_versions.entry(v).or_default() += 1;
        }
        if let Some(v) = text(r, "meshlog.collector.policy_version") {
            *self.collector_policy_versions.entry(v).or_default() += 1;
        }
        let mut any = false;
        for (k, v) in r {
            if let Some(kind) = k.strip_prefix(REDACTED_PREFIX) {
                let n = match v {
                    Value::Number(n) => n.as_u64().unwrap_or(0),
                    Value::String(s) => s.parse().unwrap_or(0),
                    _ => 0,
                };
                if n > 0 {
                    *self.redacted.entry(kind.to_owned()).or_default() += n;
                    any = true;
                }
            }
        }
        self.records_redacted += u64::from(any);
    }

    fn add_access(&mut self, r: &Record) {
        let principal = text(r, "meshlog.access.principal").unwrap_or_else(|| "-".into());
        let outcome = text(r, "meshlog.access.outcome").unwrap_or_else(|| "-".into());
        let endpoint = text(r, "meshlog.access.endpoint").unwrap_or_else(|| "-".into());
        let p = self.principals.entry(principal.clone()).or_default();
        p.principal = principal.clone();
        *p.endpoints.entry(endpoint.clone()).or_default() += 1;
        if outcome == "ok" {
            p.reads += 1;
            p.rows += int(r, "meshlog.access.rows");
            p.bytes += int(r, "meshlog.access.bytes");
        } else {
            p.refused += 1;
            self.refusals_total += 1;
            if self.refusals.len() < MAX_LISTED {
                self.refusals.push(AccessEntry {
                    time: rfc3339(time_of(r)),
                    principal,
                    endpoint,
                    outcome,
                    peer: text(r, "source.address"),
                });
            }
        }
    }
}

/// The filter parameters of the whole period.
fn period_params(req: &Request<'_>) -> Vec<(String, String)> {
    let mut p = vec![
        ("since".to_owned(), rfc3339(req.from_ns)),
        ("until".to_owned(), rfc3339(req.to_ns)),
    ];
    if let Some(t) = &req.tenant {
        p.push(("tenant".into(), t.clone()));
    }
    p
}

fn with(mut p: Vec<(String, String)>, k: &str, v: &str) -> Vec<(String, String)> {
    p.push((k.to_owned(), v.to_owned()));
    p
}

/// `meshlog query --data-dir D --since ... --where ...`: the command that lists a population.
fn command(data_dir: &Path, params: &[(String, String)]) -> String {
    let mut s = format!("meshlog query --data-dir {}", data_dir.display());
    for (k, v) in params {
        s.push_str(&format!(" --{k} {}", meshlog_detect::rules::shell_quote(v)));
    }
    s
}

fn filter_of(params: &[(String, String)]) -> Result<Filter, FilterError> {
    Filter::from_params(params.iter().map(|(k, v)| (k.as_str(), v.as_str())), 0)
}

/// Gathers the report for `req` (unsigned; see [`crate::sign`]).
pub fn gather(req: &Request<'_>) -> Result<Report, GatherError> {
    if req.from_ns >= req.to_ns {
        return Err(GatherError::EmptyPeriod {
            from: rfc3339(req.from_ns),
            to: rfc3339(req.to_ns),
        });
    }
    let generated_at = rfc3339(req.now_ns);
    let period = period_params(req);
    let access_params = with(
        period.clone(),
        "where",
        &format!("event_name={ACCESS_EVENT}"),
    );
    let alert_params = [
        with(
            period.clone(),
            "where",
            &format!("event_name={ALERT_EVENT}"),
        ),
        with(
            period.clone(),
            "where",
            &format!("event_name={TRIAGE_EVENT}"),
        ),
    ];
    let all = filter_of(&period)?;
    let access_filter = filter_of(&access_params)?;
    let alert_filters = [filter_of(&alert_params[0])?, filter_of(&alert_params[1])?];

    let mut tally = Tally {
        bucket_ns: bucket_ns(req.to_ns - req.from_ns),
        ..Tally::default()
    };
    let opts = ScanOptions {
        no_write_index: true,
        ..ScanOptions::default()
    };
    let outcome = scan::scan(req.data_dir, req.data_keys, &all, &opts, |_, r| {
        tally.add(&r, &access_filter, &alert_filters);
        Ok(Flow::More)
    })?;

    let evidence = |criteria: &[&str], params: &[(String, String)], rows: u64| Evidence {
        criteria: criteria.iter().map(|c| (*c).to_owned()).collect(),
        population_query: command(req.data_dir, params),
        parameters: params.to_vec(),
        generated_at: generated_at.clone(),
        rows,
        checkpoints: store_checkpoints(&outcome),
        complete: outcome.completeness.complete,
    };
    let settings_evidence = |criteria: &[&str], rows: u64| Evidence {
        criteria: criteria.iter().map(|c| (*c).to_owned()).collect(),
        population_query: match &req.settings.config_file {
            Some(f) => format!("the settings in force: {}", f.display()),
            None => "the settings in force: defaults (no configuration file)".into(),
        },
        parameters: Vec::new(),
        generated_at: generated_at.clone(),
        rows,
        checkpoints: store_checkpoints(&outcome),
        complete: true,
    };

    let access = AccessSection {
        evidence: evidence(&["CC6.1", "CC6.3"], &access_params, tally.access),
        auth_enforced: req.settings.auth_enforced,
        principals: req.settings.principals.clone(),
        tokens: req.settings.tokens.clone(),
        by_principal: tally.principals.values().cloned().collect(),
        refusals: std::mem::take(&mut tally.refusals),
        refusals_total: tally.refusals_total,
    };
    let transmission = TransmissionSection {
        evidence: settings_evidence(&["CC6.7", "CC6.1"], req.settings.listeners.len() as u64),
        listeners: req.settings.listeners.clone(),
        insecure: req.settings.insecure,
        tls: req.settings.tls.as_ref().map(|t| t.in_force(req.now_ns)),
    };
    let monitoring = monitoring(req, &tally, &alert_params, &evidence);
    let processing = processing(
        &tally,
        &outcome,
        evidence(&["PI1.1", "PI1.2", "PI1.3", "PI1.4"], &period, tally.total),
    );
    let confidentiality = ConfidentialitySection {
        evidence: evidence(&["C1.1", "P4.1", "CC6.1"], &period, tally.total),
        policy_versions: tally.policy_versions.clone(),
        collector_policy_versions: tally.collector_policy_versions.clone(),
        redactions_by_kind: tally.redacted.clone(),
        records_redacted: tally.records_redacted,
        collector_side: req.settings.collector_redaction.clone(),
    };
    let retention = retention(req, &generated_at, &outcome)?;
    let integrity = integrity(req, &generated_at, &outcome)?;
    Ok(Report {
        format: FORMAT.into(),
        generated_at: generated_at.clone(),
        generated_unix_ns: req.now_ns,
        period: Period {
            from: rfc3339(req.from_ns),
            to: rfc3339(req.to_ns),
            from_unix_ns: req.from_ns,
            to_unix_ns: req.to_ns,
        },
        tenant: req.tenant.clone(),
        data_dir: req.data_dir.display().to_string(),
        config_file: req
            .settings
            .config_file
            .as_ref()
            .map(|f| f.display().to_string()),
        signed_by: None,
        access,
        transmission,
        monitoring,
        processing,
        confidentiality,
        retention,
        integrity,
    })
}

fn store_checkpoints(outcome: &ScanOutcome) -> Vec<StoreCheckpoint> {
    outcome
        .completeness
        .stores
        .iter()
        .map(|s| StoreCheckpoint {
            store: s.store.clone(),
            checkpoint: s.checkpoint.clone(),
            leaves: s.leaves,
            after_checkpoint: s.after_checkpoint,
        })
        .collect()
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let hi = *v.get(n / 2)?;
    Some(if n % 2 == 1 {
        hi
    } else {
        (*v.get(n / 2 - 1)? + hi) / 2.0
    })
}

/// Makes a section's [`Evidence`] from its criteria, parameters and row count.
type EvidenceFn<'a> = dyn Fn(&[&str], &[(String, String)], u64) -> Evidence + 'a;

fn monitoring(
    req: &Request<'_>,
    tally: &Tally,
    alert_params: &[Vec<(String, String)>; 2],
    evidence: &EvidenceFn<'_>,
) -> MonitoringSection {
    let alerts: Vec<AlertRow> = tally
        .alerts
        .alerts()
        .into_iter()
        .map(|e| {
            let ack = e.acknowledged();
            // Resolved by the detector, or by a person's `resolve` triage step.
            let resolved_ns = e.resolved_ns.or_else(|| {
                e.triage
                    .iter()
                    .find(|t| t.action == "resolve")
                    .map(|t| t.at_ns)
            });
            AlertRow {
                id: e.firing.id.clone(),
                rule: e.firing.rule.clone(),
                severity: e.firing.severity.as_str().to_owned(),
                group: e.firing.group.to_string(),
                summary: e.firing.summary.clone(),
                fired_at: rfc3339(e.firing.at_ns),
                resolved_at: resolved_ns.map(rfc3339),
                acknowledged_by: ack.map(|t| t.principal.clone()),
                note: ack.map(|t| t.note.clone()).filter(|n| !n.is_empty()),
                ack_s: e.time_to_acknowledge_ns().map(secs),
                resolve_s: resolved_ns.map(|r| secs(r.saturating_sub(e.firing.at_ns))),
            }
        })
        .collect();
    let acks: Vec<f64> = alerts.iter().filter_map(|a| a.ack_s).collect();
    let resolves: Vec<f64> = alerts.iter().filter_map(|a| a.resolve_s).collect();
    let mut ev = evidence(&["CC7.2", "CC7.3"], &alert_params[0], tally.alert_records);
    // Two populations: the alerts and their triage; the second's query is listed too.
    ev.population_query = format!(
        "{}\n{}",
        command(req.data_dir, &alert_params[0]),
        command(req.data_dir, &alert_params[1])
    );
    MonitoringSection {
        evidence: ev,
        detection_enabled: req.settings.detection_enabled,
        rules: req.settings.rules.clone(),
        fired: alerts.len() as u64,
        resolved: resolves.len() as u64,
        acknowledged: acks.len() as u64,
        max_ack_s: acks.iter().copied().reduce(f64::max),
        median_ack_s: median(acks),
        median_resolve_s: median(resolves),
        alerts,
    }
}

fn processing(tally: &Tally, outcome: &ScanOutcome, evidence: Evidence) -> ProcessingSection {
    let coverage: BTreeMap<&str, _> = outcome
        .completeness
        .vms
        .iter()
        .map(|c| (c.vm.as_str(), c))
        .collect();
    let vms = tally
        .vms
        .iter()
        .map(|(vm, (service, records))| VmRow {
            vm: vm.clone(),
            service: service.clone(),
            records: *records,
            coverage: coverage.get(vm.as_str()).map(|c| (*c).clone()),
        })
        .collect();
    ProcessingSection {
        evidence,
        by_event: tally.by_event.clone(),
        vms,
        delivery_tallies: tally.delivery_tallies,
        sampling: tally.sampling.values().cloned().collect(),
        bucket_ns: tally.bucket_ns,
        per_bucket: tally.per_bucket.iter().map(|(k, v)| (*k, *v)).collect(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GatherError + '_ {
    move |source| GatherError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn retention(
    req: &Request<'_>,
    generated_at: &str,
    outcome: &ScanOutcome,
) -> Result<RetentionSection, GatherError> {
    let mut deletions = Vec::new();
    let mut invalid = 0u64;
    let classes = meshlog_format::layout::class_dirs(req.data_dir).map_err(io_err(req.data_dir))?;
    for (class, dir) in &classes {
        let log = match receipt::read_log(&dir.join(receipt::RECEIPTS_FILE)) {
            Ok(l) => l,
            Err(_) => {
                invalid += 1;
                continue;
            }
        };
        for entry in &log.entries {
            match receipt::verify_logged(entry, Some(class), req.verifier) {
                Ok(r) if (req.from_ns..req.to_ns).contains(&r.swept_unix_ns) => {
                    deletions.push(DeletionRow {
                        class: r.class.clone(),
                        segment: r.segment.clone(),
                        records: r.records,
                        frames: r.frames,
                        sha256: hex::encode(r.sha256),
                        retention_days: r.retention_days,
                        swept_at: rfc3339(r.swept_unix_ns),
                        receipt: String::from_utf8_lossy(&entry.note).into_owned(),
                    })
                }
                Ok(_) => {}
                Err(_) => invalid += 1,
            }
        }
    }
    let policy = req.settings.retention.as_ref().map(|p| RetentionPolicy {
        default_days: p.default_days,
        classes: p
            .classes
            .iter()
            .map(|c| {
                let m: Vec<String> = c
                    .matches
                    .iter()
                    .map(|m| format!("{} in [{}]", m.key, m.values.join(", ")))
                    .collect();
                (c.name.clone(), c.days, m.join(" and "))
            })
            .collect(),
        sweep_interval_s: p.sweep_interval_s,
    });
    let holds = req
        .settings
        .retention
        .as_ref()
        .map(|p| {
            p.holds
                .iter()
                .map(|h| HoldRow {
                    name: h.name.clone(),
                    reason: h.reason.clone(),
                    classes: match &h.classes {
                        meshlog_retention::policy::HoldClasses::All => "all".into(),
                        meshlog_retention::policy::HoldClasses::Named(n) => n.join(", "),
                    },
                    from: h.from_unix_ns.map(rfc3339),
                    until: h.until_unix_ns.map(rfc3339),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(RetentionSection {
        evidence: Evidence {
            criteria: vec!["CC6.5".into(), "C1.2".into(), "P4.2".into()],
            population_query: format!(
                "meshlog receipts --data-dir {} --public-key VERIFIER_KEY (receipts swept from {} to {})",
                req.data_dir.display(),
                rfc3339(req.from_ns),
                rfc3339(req.to_ns)
            ),
            parameters: period_params(req),
            generated_at: generated_at.to_owned(),
            rows: deletions.len() as u64,
            checkpoints: store_checkpoints(outcome),
            complete: invalid == 0,
        },
        policy,
        deletions,
        invalid_receipts: invalid,
        holds,
    })
}

fn integrity(
    req: &Request<'_>,
    generated_at: &str,
    outcome: &ScanOutcome,
) -> Result<IntegritySection, GatherError> {
    let keys = [req.verifier.clone()];
    let verified = meshlog_audit::verify::verify_data_dir(req.data_dir, &keys, &mut |_, _| {})?;
    let mut findings = Vec::new();
    let stores: Vec<StoreIntegrity> = verified
        .stores
        .iter()
        .map(|s| {
            findings.extend(
                s.findings
                    .iter()
                    .filter_map(|f| serde_json::to_value(f).ok()),
            );
            StoreIntegrity {
                store: s.class.clone().unwrap_or_else(|| ".".into()),
                intact: s.intact,
                tree_size: s.tree_size,
                root: s.root.clone(),
                frames: s.frames,
                records: s.records,
                checkpoints: s.checkpoints.entries,
                checkpoints_verified: s.checkpoints.verified,
                unsigned_leaves: s.unsigned_leaves,
                findings: s.findings.len(),
            }
        })
        .collect();
    let mut in_period = Vec::new();
    let dirs = meshlog_format::layout::store_dirs(req.data_dir).map_err(io_err(req.data_dir))?;
    for (i, dir) in dirs.iter().enumerate() {
        let store = if i == 0 {
            ".".to_owned()
        } else {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let Ok(bytes) = std::fs::read(meshlog_format::layout::checkpoint_log_path(dir)) else {
            continue;
        };
        // A class store's log is signed under `<origin>/<class>` (before that, `<origin>`).
        let class_key = (i > 0)
            .then(|| req.verifier.for_class(&store).ok())
            .flatten();
        for item in checkpoint_log::parse(&bytes) {
            let Item::Entry(e) = item else { continue };
            let verified = class_key
                .iter()
                .chain(std::iter::once(req.verifier))
                .find_map(|k| Some((Checkpoint::verify(&e.note, k).ok()?, k.key_id())));
            let Some((cp, key_id)) = verified else {
                continue;
            };
            if (req.from_ns..req.to_ns).contains(&cp.timestamp_unix_ns) {
                in_period.push(StoreCheckpoint {
                    store: store.clone(),
                    checkpoint: Some(meshlog_query::complete::CheckpointRef {
                        origin: cp.origin.clone(),
                        size: cp.size,
                        root: base64_of(&cp.root),
                        key_id: format!("{key_id:08x}"),
                        timestamp_unix_ns: cp.timestamp_unix_ns,
                    }),
                    leaves: cp.size,
                    after_checkpoint: 0,
                });
            }
        }
    }
    let total = in_period.len();
    // The first and the newest ones matter most: keep both ends when there are very many.
    if total > MAX_LISTED {
        let tail = in_period.split_off(total - MAX_LISTED / 2);
        in_period.truncate(MAX_LISTED / 2);
        in_period.extend(tail);
    }
    let tree: u64 = stores.iter().map(|s| s.tree_size).sum();
    Ok(IntegritySection {
        evidence: Evidence {
            criteria: vec!["CC7.1".into(), "PI1.5".into(), "CC8.1".into()],
            population_query: format!(
                "meshlog verify --data-dir {} --public-key VERIFIER_KEY",
                req.data_dir.display()
            ),
            parameters: Vec::new(),
            generated_at: generated_at.to_owned(),
            rows: tree,
            checkpoints: store_checkpoints(outcome),
            complete: verified.intact,
        },
        intact: verified.intact,
        signatures_checked: verified.signatures_checked,
        stores,
        findings,
        checkpoints_in_period: in_period,
        checkpoints_in_period_total: total as u64,
    })
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}
