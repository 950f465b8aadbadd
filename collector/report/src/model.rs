//! The report's content: one value, serialised as the JSON format for GRC tools and rendered
//! as HTML for people ([`crate::html`]). Every section carries its [`Evidence`]: the criteria it
//! supports, the population query that produced it (as a `meshlog query` command line and as
//! parameters), when it ran, how many rows it found, and the signed checkpoint the population
//! is complete against (AICPA AT-C 205.36: examine the query and its parameters, check for gaps
//! in sequence or timing).

use meshlog_query::complete::{CheckpointRef, VmCoverage};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `format` field of every report this build writes.
pub const FORMAT: &str = "meshlog.soc2-evidence/v1";

/// A whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`FORMAT`].
    pub format: String,
    /// When it was generated, RFC 3339 (UTC).
    pub generated_at: String,
    /// The same, Unix ns.
    pub generated_unix_ns: u64,
    /// The period covered.
    pub period: Period,
    /// Only this tenant's records (`--tenant`); none: all.
    pub tenant: Option<String>,
    /// The data directory read.
    pub data_dir: String,
    /// The configuration file whose settings are reported as "in force".
    pub config_file: Option<String>,
    /// The key the report is signed with (`<name>+<key id>`), none when unsigned.
    pub signed_by: Option<String>,
    /// CC6.1 / CC6.3.
    pub access: AccessSection,
    /// CC6.7.
    pub transmission: TransmissionSection,
    /// CC7.2 / CC7.3.
    pub monitoring: MonitoringSection,
    /// PI1: processing integrity and completeness.
    pub processing: ProcessingSection,
    /// C1 / P: confidentiality and privacy.
    pub confidentiality: ConfidentialitySection,
    /// Retention (CC6.5, C1.2).
    pub retention: RetentionSection,
    /// CC7.1 / PI1: integrity of the log.
    pub integrity: IntegritySection,
}

/// `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// Start, RFC 3339.
    pub from: String,
    /// End (exclusive), RFC 3339.
    pub to: String,
    /// Start, Unix ns.
    pub from_unix_ns: u64,
    /// End (exclusive), Unix ns.
    pub to_unix_ns: u64,
}

/// What every section states about how it was produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The criteria (`CC6.1`, ...).
    pub criteria: Vec<String>,
    /// The population query as a command an auditor can re-run (`meshlog query ...`), or
    /// where the settings were read from.
    pub population_query: String,
    /// Its parameters, as `(name, value)` pairs of the query API.
    pub parameters: Vec<(String, String)>,
    /// When the query ran, RFC 3339.
    pub generated_at: String,
    /// Rows in the population.
    pub rows: u64,
    /// The newest signed checkpoint of each store read: the population is complete against it.
    pub checkpoints: Vec<StoreCheckpoint>,
    /// Every store covered its checkpoint and every VM's sequence gaps are accounted for.
    pub complete: bool,
}

/// A store's newest checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCheckpoint {
    /// `.` for the data directory's own store, else the retention class.
    pub store: String,
    /// The checkpoint (none: the store has no signed checkpoint).
    pub checkpoint: Option<CheckpointRef>,
    /// Leaves the scan accounted for.
    pub leaves: u64,
    /// Of those, leaves newer than the checkpoint.
    pub after_checkpoint: u64,
}

/// CC6.1 / CC6.3: who may do what, who read, who was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessSection {
    /// How produced.
    pub evidence: Evidence,
    /// `[auth]` is configured: every endpoint checks roles.
    pub auth_enforced: bool,
    /// `[[auth.principals]]` in force.
    pub principals: Vec<PrincipalInForce>,
    /// `[[auth.tokens]]` ids (never the hashes).
    pub tokens: Vec<String>,
    /// Reads and refusals per principal.
    pub by_principal: Vec<PrincipalReads>,
    /// Every refusal (at most [`MAX_LISTED`]; `refusals_total` counts all).
    pub refusals: Vec<AccessEntry>,
    /// All refusals.
    pub refusals_total: u64,
}

/// Longest list of individual rows a section carries (counts are always complete).
pub const MAX_LISTED: usize = 500;

/// One principal rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalInForce {
    /// SPIFFE id, token id or glob.
    pub id: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Tenant.
    pub tenant: Option<String>,
}

/// One principal's reads in the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalReads {
    /// The principal (`-` when none was established).
    pub principal: String,
    /// Reads answered (`outcome` ok).
    pub reads: u64,
    /// Reads refused or failed.
    pub refused: u64,
    /// Rows returned.
    pub rows: u64,
    /// Bytes returned.
    pub bytes: u64,
    /// Reads per endpoint.
    pub endpoints: BTreeMap<String, u64>,
}

/// One access record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// When, RFC 3339.
    pub time: String,
    /// Who.
    pub principal: String,
    /// The endpoint.
    pub endpoint: String,
    /// The outcome (`unauthenticated`, `permission_denied`, ...).
    pub outcome: String,
    /// The TCP peer.
    pub peer: Option<String>,
}

/// CC6.7: transmission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransmissionSection {
    /// How produced.
    pub evidence: Evidence,
    /// Listeners: `(name, address)`.
    pub listeners: Vec<(String, String)>,
    /// Plain TCP beyond loopback is allowed (`insecure`).
    pub insecure: bool,
    /// `[tls]`; none: plain TCP (loopback only unless `insecure`).
    pub tls: Option<TlsInForce>,
}

/// The `[tls]` settings in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInForce {
    /// The server certificate file.
    pub cert_file: String,
    /// The client CA file (mutual TLS), if any.
    pub client_ca_file: Option<String>,
    /// Client certificates are required.
    pub mutual: bool,
    /// Lowest TLS version accepted.
    pub min_version: String,
    /// Reload interval, seconds.
    pub reload_interval_s: u64,
    /// The server certificate's expiry.
    pub cert_expiry: Option<Expiry>,
    /// The client CA certificate's expiry.
    pub client_ca_expiry: Option<Expiry>,
}

/// When a certificate expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    /// `notAfter`, RFC 3339.
    pub not_after: String,
    /// Days from the report's generation to expiry (negative: expired).
    pub days_left: i64,
}

/// CC7.2 / CC7.3: monitoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitoringSection {
    /// How produced.
    pub evidence: Evidence,
    /// `[detect] enabled`.
    pub detection_enabled: bool,
    /// The rules in force, by name.
    pub rules: Vec<String>,
    /// Alerts that fired in the period.
    pub alerts: Vec<AlertRow>,
    /// Alerts fired.
    pub fired: u64,
    /// Of those, resolved.
    pub resolved: u64,
    /// Of those, acknowledged (a triage step).
    pub acknowledged: u64,
    /// Median time to acknowledge, seconds.
    pub median_ack_s: Option<f64>,
    /// Longest time to acknowledge, seconds.
    pub max_ack_s: Option<f64>,
    /// Median time to resolve, seconds.
    pub median_resolve_s: Option<f64>,
}

/// One alert's life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRow {
    /// Alert id.
    pub id: String,
    /// Rule.
    pub rule: String,
    /// Severity.
    pub severity: String,
    /// Group key.
    pub group: String,
    /// One line for people.
    pub summary: String,
    /// When it fired, RFC 3339.
    pub fired_at: String,
    /// When it resolved.
    pub resolved_at: Option<String>,
    /// Who acknowledged it first (or resolved it by triage).
    pub acknowledged_by: Option<String>,
    /// Their note.
    pub note: Option<String>,
    /// Seconds from firing to the first triage step.
    pub ack_s: Option<f64>,
    /// Seconds from firing to resolution.
    pub resolve_s: Option<f64>,
}

/// PI1: completeness of processing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessingSection {
    /// How produced.
    pub evidence: Evidence,
    /// Records per event name.
    pub by_event: BTreeMap<String, u64>,
    /// Per VM: records and the sequence accounting.
    pub vms: Vec<VmRow>,
    /// Delivery tally records in the period.
    pub delivery_tallies: u64,
    /// Sampling per policy version.
    pub sampling: Vec<SamplingRow>,
    /// The volume chart's bucket length, ns (a minute to a week, by the period's length).
    pub bucket_ns: u64,
    /// Records per bucket (start Unix ns, count), for the chart.
    pub per_bucket: Vec<(u64, u64)>,
}

/// One VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRow {
    /// `resource.meshlog.vm.id`.
    pub vm: String,
    /// Its `resource.service.name`.
    pub service: Option<String>,
    /// Records stored in the period.
    pub records: u64,
    /// Sequence accounting (first, last, gaps; which gaps delivery tallies explain).
    pub coverage: Option<VmCoverage>,
}

/// One sampling policy version's tallies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplingRow {
    /// `meshlog.sampling.policy_version`.
    pub policy_version: String,
    /// Tally records.
    pub tallies: u64,
    /// Requests decided.
    pub seen: u64,
    /// Kept.
    pub kept: u64,
    /// Sum of the kept records' adjusted counts.
    pub kept_adjusted: u64,
    /// Not selected by their rate.
    pub dropped_sampled: u64,
    /// Over the rate cap.
    pub dropped_rate_cap: u64,
    /// On the health-check drop list.
    pub dropped_health_check: u64,
}

/// C1 / P: confidentiality and privacy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfidentialitySection {
    /// How produced.
    pub evidence: Evidence,
    /// Records per redaction policy version (`meshlog.policy_version`).
    pub policy_versions: BTreeMap<String, u64>,
    /// Records per collector redaction policy version (`meshlog.collector.policy_version`).
    pub collector_policy_versions: BTreeMap<String, u64>,
    /// Values redacted, per kind (`meshlog.redacted.<kind>`).
    pub redactions_by_kind: BTreeMap<String, u64>,
    /// Records with at least one redaction.
    pub records_redacted: u64,
    /// The collector-side redaction in force.
    pub collector_side: CollectorRedaction,
}

/// `[redaction]` in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectorRedaction {
    /// Records arriving unredacted are redacted at ingest.
    pub enabled: bool,
    /// `unmarked` or `all`.
    pub scope: String,
    /// The policy's version.
    pub policy_version: String,
}

/// Retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionSection {
    /// How produced.
    pub evidence: Evidence,
    /// The policy; none: nothing is ever deleted.
    pub policy: Option<RetentionPolicy>,
    /// Segments deleted in the period, each with its receipt.
    pub deletions: Vec<DeletionRow>,
    /// Receipts that did not verify (any period).
    pub invalid_receipts: u64,
    /// Legal holds in force.
    pub holds: Vec<HoldRow>,
}

/// `[retention]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Days for records no class matches.
    pub default_days: u32,
    /// Classes: name, days, what they match.
    pub classes: Vec<(String, u32, String)>,
    /// Sweep interval, seconds.
    pub sweep_interval_s: u64,
}

/// One deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionRow {
    /// Class.
    pub class: String,
    /// Segment file.
    pub segment: String,
    /// Records.
    pub records: u64,
    /// Frames (Merkle leaves).
    pub frames: u64,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Retention days applied.
    pub retention_days: u32,
    /// When swept, RFC 3339.
    pub swept_at: String,
    /// The signed receipt (a C2SP signed note).
    pub receipt: String,
}

/// One legal hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRow {
    /// Name.
    pub name: String,
    /// Reason.
    pub reason: String,
    /// `all` or class names.
    pub classes: String,
    /// From, RFC 3339.
    pub from: Option<String>,
    /// Until, RFC 3339.
    pub until: Option<String>,
}

/// Integrity of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegritySection {
    /// How produced.
    pub evidence: Evidence,
    /// `meshlog verify` found nothing.
    pub intact: bool,
    /// Signatures were checked (the report was generated with a signing key).
    pub signatures_checked: bool,
    /// Per store.
    pub stores: Vec<StoreIntegrity>,
    /// The findings, as `meshlog verify --json` names them.
    pub findings: Vec<serde_json::Value>,
    /// Signed checkpoints made in the period.
    pub checkpoints_in_period: Vec<StoreCheckpoint>,
    /// All signed checkpoints made in the period (the list keeps both ends when there are more
    /// than [`MAX_LISTED`]).
    pub checkpoints_in_period_total: u64,
}

/// One store's verify result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreIntegrity {
    /// `.` or the class.
    pub store: String,
    /// Intact.
    pub intact: bool,
    /// Leaves of the recomputed tree.
    pub tree_size: u64,
    /// Its root, hex.
    pub root: String,
    /// Frames.
    pub frames: u64,
    /// Records.
    pub records: u64,
    /// Checkpoints in `checkpoints.log`.
    pub checkpoints: usize,
    /// Of those, verified with the key.
    pub checkpoints_verified: usize,
    /// Leaves not yet under a signed checkpoint.
    pub unsigned_leaves: u64,
    /// Findings.
    pub findings: usize,
}
