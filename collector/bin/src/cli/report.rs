//! `meshlog report`: the SOC 2 evidence report for a period (meshlog-report), signed with the
//! collector's `[integrity] signing_key`, its statement appended to the log as a
//! `meshlog.report` record: straight into the store when no `serve` holds the data directory,
//! or through the running collector's OTLP/HTTP endpoint with `--server URL` (the ingest role).
//! The file is written under a temporary name and renamed only once the record is stored, so
//! every report that exists is in the log.

use super::remote::RemoteFlags;
use super::*;
use meshlog_report::model::{CollectorRedaction, PrincipalInForce};
use meshlog_report::settings::{Settings, TlsSettings, rules_in_force};
use meshlog_report::{Format, REPORT_EVENT, Request};
use meshlog_server::ingest::pipeline::DecodedBatch;
use meshlog_server::ingest::pipeline::redact::Scope;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::time::{SystemTime, UNIX_EPOCH};

/// `meshlog report` options.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Start of the period: RFC 3339 (2026-01-01T00:00:00Z), a date (2026-01-01, midnight UTC)
    /// or a duration before now (30d).
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// End of the period (exclusive): RFC 3339, a date (the whole day is included), a duration
    /// before now, or "now".
    #[arg(long, value_name = "DATE")]
    pub to: String,
    /// Only this tenant's records (resource.meshlog.tenant).
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// html (self-contained, prints to PDF) or json (for GRC tools).
    #[arg(long, value_parser = ["html", "json"], default_value = "html")]
    pub format: String,
    /// Where to write the report.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The collector's configuration: data directory, keys, auth, TLS, detection, redaction
    /// and retention settings in force.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory; overrides `data_dir` from the file.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The signing key; overrides `[integrity] signing_key` from the file.
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Append the report's record through the collector running at URL (its POST /v1/logs,
    /// with the ingest role) instead of into the data directory, which `serve` holds locked.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// CA, client certificate or token for `--server`.
    #[command(flatten)]
    pub remote: RemoteFlags,
}

/// Why `meshlog report` or `meshlog verify-report` failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No signing key.
    #[error(
        "no signing key: a report is signed with the collector's checkpoint key; configure \
         [integrity] signing_key or pass --signing-key (meshlog keygen --out DIR makes one)"
    )]
    NoSigningKey,
    /// A bad `--from` / `--to`.
    #[error(
        "--{flag} {value:?}: expected RFC 3339 (2026-01-31T12:00:00Z), a date (2026-01-31) or a duration before now (30d)"
    )]
    BadDate {
        /// The flag.
        flag: &'static str,
        /// As given.
        value: String,
    },
    /// Gathering failed.
    #[error(transparent)]
    Gather(#[from] meshlog_report::GatherError),
    /// Signing failed.
    #[error("signing the report: {0}")]
    Sign(#[from] meshlog_tlog::checkpoint::NoteError),
    /// The record could not be stored.
    #[error(
        "the report's record could not be appended to the log ({0}); the report was not \
         written. If `meshlog serve` holds the data directory, pass --server URL"
    )]
    Append(String),
    /// The report does not verify.
    #[error("the report is NOT valid: {0}")]
    Invalid(#[from] meshlog_report::VerifyError),
}

impl ReportError {
    /// 2 for what the command line got wrong, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            ReportError::NoSigningKey | ReportError::BadDate { .. } => 2,
            _ => 1,
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `--from` / `--to`: a bare date is midnight UTC (for `--to`, the next midnight).
pub fn parse_date(
    flag: &'static str,
    value: &str,
    end: bool,
    now: u64,
) -> Result<u64, ReportError> {
    let bad = || ReportError::BadDate {
        flag,
        value: value.to_owned(),
    };
    let v = value.trim();
    let is_date = v.len() == 10
        && v.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if is_date {
        let t = meshlog_query::filter::parse_time(flag, &format!("{v}T00:00:00Z"), now)
            .map_err(|_| bad())?;
        return Ok(if end { t + 86_400_000_000_000 } else { t });
    }
    meshlog_query::filter::parse_time(flag, v, now).map_err(|_| bad())
}

/// The settings in force, from the configuration.
fn settings(cfg: &Config, file: Option<&Path>) -> Settings {
    let mut listeners = vec![
        (
            "listen (OTLP/HTTP, read API)".to_owned(),
            cfg.listen.to_string(),
        ),
        (
            "grpc_listen (OTLP/gRPC)".to_owned(),
            cfg.grpc_addr().to_string(),
        ),
    ];
    if let Some(m) = cfg.metrics_listen {
        listeners.push(("metrics_listen".into(), m.to_string()));
    }
    let tls = cfg.tls.as_ref().map(|t| {
        // The certificates as the collector would load them; unreadable: expiry unknown.
        let (cert, ca) = meshlog_server::auth::tls::TlsReloader::load(t.clone())
            .map(|r| r.expiry())
            .unwrap_or((None, None));
        TlsSettings {
            cert_file: t.cert_file.clone(),
            client_ca_file: t.client_ca_file.clone(),
            min_version: match t.min_version {
                meshlog_server::auth::tls::MinVersion::Tls12 => "1.2".into(),
                meshlog_server::auth::tls::MinVersion::Tls13 => "1.3".into(),
            },
            reload_interval_s: t.reload_interval_s,
            cert_not_after_unix_s: cert,
            client_ca_not_after_unix_s: ca,
        }
    });
    let (principals, tokens) = match &cfg.auth {
        Some(a) => (
            a.principals
                .iter()
                .map(|p| PrincipalInForce {
                    id: p.id.clone(),
                    roles: p.roles.iter().map(|r| r.as_str().to_owned()).collect(),
                    tenant: p.tenant.clone(),
                })
                .collect(),
            a.tokens.iter().map(|t| t.id.clone()).collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    Settings {
        config_file: file.map(Path::to_owned),
        listeners,
        insecure: cfg.insecure,
        auth_enforced: cfg.auth.is_some(),
        principals,
        tokens,
        tls,
        detection_enabled: cfg.detect.enabled,
        rules: rules_in_force(&cfg.detect),
        collector_redaction: CollectorRedaction {
            enabled: cfg.redaction.enabled,
            scope: match cfg.redaction.scope {
                Scope::Unmarked => "unmarked".into(),
                Scope::All => "all".into(),
            },
            policy_version: cfg.redaction.policy.version().to_owned(),
        },
        retention: cfg.retention.clone(),
    }
}

/// Runs `meshlog report`.
pub(super) fn report(a: ReportArgs) -> Result<(), RunError> {
    let mut cfg = Config::load(a.config.as_deref())?;
    if let Some(d) = &a.data_dir {
        cfg.data_dir = d.clone();
    }
    require_dir(&cfg.data_dir)?;
    let key_path = a
        .signing_key
        .clone()
        .or_else(|| cfg.integrity.signing_key.clone())
        .ok_or(ReportError::NoSigningKey)?;
    let key = keys::read_signer_key(&key_path).map_err(RunError::SigningKey)?;
    let now = now_ns();
    let from_ns = parse_date("from", &a.from, false, now)?;
    let to_ns = parse_date("to", &a.to, true, now)?;
    let data_keys = load_data_keys(cfg.encryption_key_file.as_deref())?;
    let settings = settings(&cfg, a.config.as_deref());
    let verifier = key.verifier();
    let mut report = meshlog_report::gather(&Request {
        data_dir: &cfg.data_dir,
        data_keys: data_keys.as_ref(),
        from_ns,
        to_ns,
        tenant: a.tenant.clone(),
        now_ns: now,
        verifier: &verifier,
        settings: &settings,
    })
    .map_err(ReportError::from)?;
    report.signed_by = Some(format!("{}+{:08x}", key.name(), key.key_id()));
    let (format, body) = match a.format.as_str() {
        "json" => (Format::Json, meshlog_report::sign::json_body(&report)),
        _ => (
            Format::Html,
            meshlog_report::html::render(&report).into_bytes(),
        ),
    };
    let signed =
        meshlog_report::sign::sign(&report, format, body, &key).map_err(ReportError::from)?;
    let tmp = a.out.with_extension("partial");
    std::fs::write(&tmp, &signed.bytes).map_err(io_err(format!("writing {}", tmp.display())))?;
    let record = report_request(&signed, &report, &a.out, now);
    let appended = match &a.server {
        Some(url) => append_remote(url, &a.remote, &record).map_err(RunError::from),
        None => append_local(&cfg, data_keys, key, record),
    };
    if let Err(e) = appended {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &a.out).map_err(io_err(format!("writing {}", a.out.display())))?;
    let r = &report;
    eprintln!(
        "meshlog: wrote the signed {} report {} ({} to {}{}): sha256 {}; {} records, {} reads, \
         {} alerts, {} VMs; store {}; its meshlog.report record is in the log",
        format.as_str(),
        a.out.display(),
        r.period.from,
        r.period.to,
        r.tenant
            .as_deref()
            .map(|t| format!(", tenant {t}"))
            .unwrap_or_default(),
        signed.statement.sha256,
        r.processing.evidence.rows,
        r.access.evidence.rows,
        r.monitoring.fired,
        r.processing.vms.len(),
        if r.integrity.intact {
            "intact"
        } else {
            "NOT intact"
        },
    );
    Ok(())
}

fn kv(key: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// The `meshlog.report` record: the signed statement and its note.
fn report_request(
    signed: &meshlog_report::sign::Signed,
    report: &meshlog_report::Report,
    out: &Path,
    now: u64,
) -> ExportLogsServiceRequest {
    let s = &signed.statement;
    let mut attributes = vec![
        kv("meshlog.report.sha256", s.sha256.as_str()),
        kv("meshlog.report.format", s.format.as_str()),
        kv("meshlog.report.period.from", s.from.as_str()),
        kv("meshlog.report.period.to", s.to.as_str()),
        kv("meshlog.report.generated", s.generated.as_str()),
        kv("meshlog.report.signature", signed.note.as_str()),
        kv(
            "meshlog.report.file",
            out.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
    ];
    if let Some(t) = &report.tenant {
        attributes.push(kv("meshlog.report.tenant", t.as_str()));
    }
    if let Some(k) = &report.signed_by {
        attributes.push(kv("meshlog.report.key", k.as_str()));
    }
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "meshlog-collector")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "meshlog.report".into(),
                    ..Default::default()
                }),
                log_records: vec![LogRecord {
                    time_unix_nano: now,
                    observed_time_unix_nano: now,
                    event_name: REPORT_EVENT.into(),
                    attributes,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Through the running collector: POST /v1/logs (protobuf), answered once stored.
fn append_remote(
    url: &str,
    remote: &RemoteFlags,
    request: &ExportLogsServiceRequest,
) -> Result<(), ReportError> {
    let endpoint = format!("{}/v1/logs", url.trim_end_matches('/'));
    let client = remote
        .client(Some(Duration::from_secs(60)))
        .map_err(|e| ReportError::Append(e.to_string()))?;
    let resp = remote
        .authorize(client.post(&endpoint))
        .header("content-type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .map_err(|e| ReportError::Append(format!("{endpoint}: {e}")))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(ReportError::Append(format!(
            "{endpoint} answered {}",
            resp.status()
        )))
    }
}

/// Straight into the data directory (no `serve` running): the stores opened as `serve` opens
/// them, the record ingested like any batch, the stores closed (which signs a checkpoint).
fn append_local(
    cfg: &Config,
    data_keys: Option<DataKeys>,
    key: SignerKey,
    request: ExportLogsServiceRequest,
) -> Result<(), RunError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("starting the async runtime"))?;
    // The update fills the test hooks when a test build turns them on.
    #[allow(clippy::needless_update)]
    let opts = StoreOptions {
        segment_max_bytes: cfg.segment_max_bytes,
        max_queue_bytes: cfg.max_queue_bytes,
        dedup_window: cfg.dedup_window_batches,
        encryption: data_keys.as_ref().map(|k| k.keyring().clone()),
        integrity: IntegrityOptions {
            signer: Some(Arc::new(key)),
            checkpoint_interval: Duration::from_secs(cfg.integrity.checkpoint_interval_s),
        },
        ..StoreOptions::default()
    };
    let stores = match &cfg.retention {
        Some(policy) => ClassStores::open(&cfg.data_dir, policy, &opts).map_err(|e| e.to_string()),
        None => ClassStores::single(&cfg.data_dir, opts).map_err(|e| e.to_string()),
    }
    .map_err(ReportError::Append)?;
    let pipeline = Pipeline::new(
        stores.routes(),
        Limits {
            max_body_bytes: cfg.max_body_bytes,
            max_decoded_bytes: cfg.max_decoded_bytes,
        },
        Duration::from_millis(cfg.ack_timeout_ms),
    );
    let now = pipeline.now_unix_nano();
    let size = request.encoded_len() as u64;
    let stored = rt.block_on(pipeline.ingest_decoded(DecodedBatch {
        request,
        size,
        batch_id: None,
        received_unix_nano: now,
        tenant: None,
    }));
    drop(pipeline);
    let closed = stores.close();
    stored.map_err(|e| ReportError::Append(e.to_string()))?;
    closed?;
    Ok(())
}

/// `meshlog verify-report` options.
#[derive(Debug, Args)]
pub struct VerifyReportArgs {
    /// The report (HTML or JSON from `meshlog report`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The collector's verifier key (`verifier.pub` from `meshlog keygen --out`).
    #[arg(long, value_name = "FILE")]
    pub public_key: PathBuf,
}

/// Runs `meshlog verify-report`: what was checked on `out`, or why it fails.
pub(super) fn verify_report(a: &VerifyReportArgs, out: &mut impl Write) -> Result<(), RunError> {
    let key = keys::read_verifier_key(&a.public_key)
        .map_err(|e| RunError::Usage(format!("--public-key: {e}")))?;
    let bytes = std::fs::read(&a.file)
        .map_err(|e| RunError::Usage(format!("cannot read {}: {e}", a.file.display())))?;
    let s = meshlog_report::verify_report(&bytes, &key).map_err(ReportError::from)?;
    let w = |e| audit::stdout_err(e);
    writeln!(out, "ok: signature by {}+{:08x}", key.name(), key.key_id()).map_err(w)?;
    writeln!(out, "ok: content SHA-256 {} as signed", s.sha256).map_err(w)?;
    writeln!(
        out,
        "report: {} from {} to {}, tenant {}, generated {}",
        s.format.as_str(),
        s.from,
        s.to,
        s.tenant,
        s.generated
    )
    .map_err(w)?;
    writeln!(out, "VALID").map_err(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_days_times_or_durations_and_a_bad_one_names_its_flag() {
        let day = 86_400_000_000_000u64;
        let jan1 = 1_767_225_600_000_000_000u64; // 2026-01-01T00:00:00Z
        assert_eq!(parse_date("from", "2026-01-01", false, 0).unwrap(), jan1);
        assert_eq!(parse_date("to", "2026-01-01", true, 0).unwrap(), jan1 + day);
        assert_eq!(
            parse_date("to", "2026-01-01T00:00:00Z", true, 0).unwrap(),
            jan1
        );
        assert_eq!(parse_date("from", "1d", false, jan1).unwrap(), jan1 - day);
        assert_eq!(parse_date("to", "now", true, jan1).unwrap(), jan1);
        let e = parse_date("to", "2026-13-01", true, 0).unwrap_err();
        assert!(e.to_string().starts_with("--to \"2026-13-01\""), "{e}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn report_and_verify_report_parse() {
        let c = Cli::try_parse_from([
            "meshlog",
            "report",
            "--from",
            "2026-01-01",
            "--to",
            "2026-02-01",
            "--tenant",
            "shop",
            "--format",
            "json",
            "--out",
            "r.json",
            "--server",
            "http://x",
            "--token",
            "t",
        ])
        .unwrap();
        let Command::Report(r) = c.command else {
            panic!("not report")
        };
        assert_eq!(
            (r.format.as_str(), r.tenant.as_deref()),
            ("json", Some("shop"))
        );
        assert_eq!(r.remote.token.as_deref(), Some("t"));
        for bad in [
            &["meshlog", "report", "--from", "a", "--to", "b"][..],
            &[
                "meshlog", "report", "--from", "a", "--to", "b", "--out", "f", "--format", "pdf",
            ],
            &["meshlog", "verify-report", "f"],
        ] {
            assert_eq!(
                Cli::try_parse_from(bad).unwrap_err().exit_code(),
                2,
                "{bad:?}"
            );
        }
    }
}
