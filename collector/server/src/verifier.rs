//! `serve`'s own periodic verify (`[integrity] verify_interval_s`): every store of the data
//! directory (the root, or each retention class) is checked with meshlog-audit's verifier up
//! to its newest signed checkpoint only ([`meshlog_audit::verify::verify_store_to`]), so the
//! frame being written is never judged; the last result is kept for `/api/v1/integrity` and
//! the dashboard, and a store found not intact is logged as an error.

use meshlog_audit::verify::verify_store_to;
use meshlog_query::complete::newest_checkpoint;
use meshlog_tlog::keys::VerifierKey;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One store's part of a verify.
#[derive(Debug, Clone, Serialize)]
pub struct StoreVerify {
    /// The class (`-` for the root store without retention).
    pub class: String,
    /// Leaves checked: the newest signed checkpoint's size (none: nothing signed yet, the store
    /// was not checked).
    pub tree_size: Option<u64>,
    /// Whether nothing was found (false also when it could not be read).
    pub intact: bool,
    /// Findings.
    pub findings: usize,
    /// Why it could not be checked, if it could not.
    pub error: Option<String>,
}

/// The result of one verify of the whole data directory.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyResult {
    /// When it finished, Unix ns.
    pub time_unix_nano: u64,
    /// `intact`, `not_intact` (findings or a store that could not be read) or `unchecked` (no
    /// store has a signed checkpoint yet).
    pub outcome: &'static str,
    /// Findings over all stores.
    pub findings: usize,
    /// Findings by kind (`damaged`, `modified`, `removed`, ...).
    pub kinds: BTreeMap<String, usize>,
    /// Per store.
    pub stores: Vec<StoreVerify>,
    /// Seconds it took.
    pub seconds: f64,
}

/// The last result, shared with the read endpoints.
#[derive(Debug, Default)]
pub struct LastVerify(Mutex<Option<VerifyResult>>);

impl LastVerify {
    /// The last result (none before the first verify ends, or with the verify off).
    pub fn get(&self) -> Option<VerifyResult> {
        self.0.lock().map(|g| g.clone()).unwrap_or(None)
    }

    fn set(&self, r: VerifyResult) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(r);
        }
    }
}

/// Verifies every store of `data_dir` up to its newest signed checkpoint with `keys`.
pub fn verify_once(data_dir: &Path, keys: &[VerifierKey], now_ns: u64) -> VerifyResult {
    let started = std::time::Instant::now();
    let classes = meshlog_format::layout::class_dirs(data_dir).unwrap_or_default();
    let stores: Vec<(String, PathBuf, Option<String>)> = if classes.is_empty() {
        vec![("-".into(), data_dir.to_owned(), None)]
    } else {
        classes
            .into_iter()
            .map(|(n, d)| (n.clone(), d, Some(n)))
            .collect()
    };
    let mut kinds = BTreeMap::new();
    let mut out = Vec::new();
    for (name, dir, class) in stores {
        let Some(size) = newest_checkpoint(&dir).map(|c| c.size) else {
            out.push(StoreVerify {
                class: name,
                tree_size: None,
                intact: true,
                findings: 0,
                error: None,
            });
            continue;
        };
        let s = match verify_store_to(&dir, class.as_deref(), keys, Some(size), &mut |_, _| {}) {
            Ok(r) => {
                for f in &r.findings {
                    *kinds.entry(f.kind.name().to_owned()).or_insert(0) += 1;
                }
                StoreVerify {
                    class: name,
                    tree_size: Some(size),
                    intact: r.intact,
                    findings: r.findings.len(),
                    error: None,
                }
            }
            Err(e) => StoreVerify {
                class: name,
                tree_size: Some(size),
                intact: false,
                findings: 0,
                error: Some(e.to_string()),
            },
        };
        out.push(s);
    }
    let findings = out.iter().map(|s| s.findings).sum();
    let outcome = if out.iter().any(|s| !s.intact) {
        "not_intact"
    } else if out.iter().all(|s| s.tree_size.is_none()) {
        "unchecked"
    } else {
        "intact"
    };
    VerifyResult {
        time_unix_nano: now_ns,
        outcome,
        findings,
        kinds,
        stores: out,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Verifies `data_dir` now and every `interval` on `rt`'s blocking pool, keeping the result in
/// `last`; `now_ns` is the clock. Ends with the runtime.
pub fn spawn(
    rt: &tokio::runtime::Handle,
    data_dir: PathBuf,
    keys: Vec<VerifierKey>,
    interval: Duration,
    last: Arc<LastVerify>,
    now_ns: Arc<dyn Fn() -> u64 + Send + Sync>,
) -> tokio::task::JoinHandle<()> {
    let keys = Arc::new(keys);
    rt.spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (dir, keys, now) = (data_dir.clone(), keys.clone(), now_ns.clone());
            let r = tokio::task::spawn_blocking(move || verify_once(&dir, &keys, now())).await;
            let Ok(r) = r else { continue };
            if r.outcome == "not_intact" {
                tracing::error!(
                    findings = r.findings,
                    kinds = ?r.kinds,
                    "periodic verify: the store is NOT intact; run meshlog verify for the details"
                );
            } else {
                tracing::info!(outcome = r.outcome, seconds = r.seconds, "periodic verify");
            }
            last.set(r);
        }
    })
}
