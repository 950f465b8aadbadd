//! `GET /api/v1/integrity`: the state of the store's evidence, for the dashboard's integrity
//! and retention view: per store (the root and each retention class) its newest signed
//! checkpoint and the leaves written since; the classes and their retention; the legal holds in
//! force; and the deletions, each with its signed receipt (the `meshlog.retention.deletion`
//! records, tenant-scoped like any record); and the last periodic verify
//! ([`crate::verifier`]). Audited like the query API.

use super::ReadSource;
use meshlog_query::QueryError;
use meshlog_query::complete::{CheckpointRef, newest_checkpoint};
use meshlog_query::params::QueryParams;
use meshlog_query::scan::ScanOptions;
use meshlog_retention::policy::{HoldClasses, RetentionConfig};
use serde::Serialize;
use serde_json::{Map, Value};

/// One store's evidence.
#[derive(Debug, Clone, Serialize)]
pub struct StoreState {
    /// The class (`-` for the root store without retention).
    pub class: String,
    /// Days the class keeps records (none without retention).
    pub days: Option<u32>,
    /// The newest signed checkpoint in its checkpoint log.
    pub checkpoint: Option<CheckpointRef>,
    /// Leaves in the live ledger now.
    pub tree_size: u64,
}

/// One legal hold.
#[derive(Debug, Clone, Serialize)]
pub struct HoldState {
    /// Its name.
    pub name: String,
    /// Why.
    pub reason: String,
    /// The classes it covers (`all`).
    pub classes: Vec<String>,
    /// Its time range, Unix ns.
    pub from_unix_nano: Option<u64>,
    /// See `from_unix_nano`.
    pub until_unix_nano: Option<u64>,
}

/// The integrity and retention view.
#[derive(Debug, Clone, Serialize)]
pub struct Integrity {
    /// Per store.
    pub stores: Vec<StoreState>,
    /// Whether retention is configured.
    pub retention: bool,
    /// Legal holds.
    pub holds: Vec<HoldState>,
    /// Deletions, newest first (the stored `meshlog.retention.deletion` records).
    pub deletions: Vec<Map<String, Value>>,
    /// Why the deletion records could not all be read (a damaged segment, say): the view
    /// still answers, as it is where damage is shown.
    pub deletions_error: Option<String>,
    /// The last periodic verify (none: not run yet, or off: `[integrity] verify_interval_s = 0`
    /// or no signing key); set by the caller from [`crate::verifier::LastVerify`].
    pub verify: Option<crate::verifier::VerifyResult>,
}

/// What the live stores say (from the collector's ledgers): `(class, tree size)`.
pub type Ledgers = Vec<(String, u64)>;

/// The state of `source`, with the retention `policy` in force and the live `ledgers`;
/// deletions scoped by `scope` (false: none may be read).
pub fn integrity(
    source: &ReadSource,
    policy: Option<&RetentionConfig>,
    ledgers: &Ledgers,
    scope: impl Fn(&mut QueryParams) -> bool,
    now_ns: u64,
) -> Result<Integrity, QueryError> {
    let classes = meshlog_format::layout::class_dirs(&source.data_dir).unwrap_or_default();
    let mut stores = Vec::new();
    let size = |class: &str| {
        ledgers
            .iter()
            .find(|(c, _)| c == class)
            .map_or(0, |(_, s)| *s)
    };
    if classes.is_empty() {
        stores.push(StoreState {
            class: "-".into(),
            days: None,
            checkpoint: newest_checkpoint(&source.data_dir),
            tree_size: ledgers.first().map_or(0, |(_, s)| *s),
        });
    }
    for (name, dir) in &classes {
        let days = policy.and_then(|p| {
            p.class_names()
                .iter()
                .position(|n| n == name)
                .map(|i| p.days(i))
        });
        stores.push(StoreState {
            class: name.clone(),
            days,
            checkpoint: newest_checkpoint(dir),
            tree_size: size(name),
        });
    }
    let holds = policy
        .map(|p| {
            p.holds
                .iter()
                .map(|h| HoldState {
                    name: h.name.clone(),
                    reason: h.reason.clone(),
                    classes: match &h.classes {
                        HoldClasses::All => vec!["all".into()],
                        HoldClasses::Named(n) => n.clone(),
                    },
                    from_unix_nano: h.from_unix_ns,
                    until_unix_nano: h.until_unix_ns,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut deletions = Vec::new();
    let mut q = QueryParams::from_params(
        [(
            "where",
            format!("event_name={}", meshlog_format::receipt::DELETION_EVENT),
        )],
        now_ns,
    )
    .map_err(QueryError::Param)?;
    q.order = meshlog_query::params::Order::Newest;
    q.limit = Some(200);
    let mut deletions_error = None;
    if scope(&mut q)
        && let Err(e) = meshlog_query::records::list(
            &source.data_dir,
            source.keys.as_ref(),
            &q,
            &ScanOptions::default(),
            |_, r| {
                deletions.push(r);
                Ok(())
            },
        )
    {
        deletions_error = Some(e.to_string());
    }
    Ok(Integrity {
        stores,
        retention: policy.is_some(),
        holds,
        deletions,
        deletions_error,
        verify: None,
    })
}
