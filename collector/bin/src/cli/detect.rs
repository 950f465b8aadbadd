//! `meshlog serve`'s detection task: feeds the committed-record subscription to the
//! [`Detector`](meshlog_detect::Detector) and appends every alert transition to the log
//! (docs/detection.md).
//!
//! At start the last `replay_s` of each store is replayed (oldest first, alert records included)
//! so windows and firing alerts are rebuilt without raising again what the log already holds;
//! then each store's subscription is followed from the end of what was replayed. Each record is
//! observed with the collector's clock, the detector is ticked every second, and a new signed
//! checkpoint (the store's ledger stats) is an integrity event. Each transition is appended
//! through the ingest pipeline as a `meshlog.alert` record and handed to the notifier.

use meshlog_detect::notify::Notifier;
use meshlog_detect::{
    DetectConfig, Detector, Flat, IntegrityEvent, RetentionHold, RetentionPolicy, Transition, alert,
};
use meshlog_retention::policy::{Hold, HoldClasses, RetentionConfig};
use meshlog_server::ingest::pipeline::{DecodedBatch, Pipeline};
use meshlog_server::metrics::{Metrics, Transport};
use meshlog_server::verifier::LastVerify;
use meshlog_store::StoreHandle;
use meshlog_store::tail::{Position, Subscription, TailError, TailEvent, TailRecord};
use meshlog_tlog::keys::VerifierKey;
use prost::Message;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How often the detector is ticked.
const TICK: Duration = Duration::from_secs(1);
/// Committed records a follower hands the detector at once, at most: one channel message and
/// one clock reading per batch rather than per record.
const BATCH: usize = 256;
/// Batches waiting for the detector (the subscriptions wait, reading from disk later): 4096
/// records.
const QUEUE: usize = 16;
/// How often the detector's snapshot is written (and at shutdown).
const SNAPSHOT_EVERY: Duration = Duration::from_secs(60);
/// The snapshot's file in the data directory.
pub(super) const SNAPSHOT_FILE: &str = "detect-state.json";

/// The running detection task.
pub(super) struct Detection {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Detection {
    /// Starts detection over `stores` (none when `[detect] enabled = false`). Without a
    /// checkpoint signing key (`signing` false) no checkpoint is ever signed, which serve
    /// already warns about at start: the `integrity` rule is off rather than firing forever.
    // What serve hands detection, each from a different part of it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        rt: &tokio::runtime::Runtime,
        cfg: &DetectConfig,
        signing: bool,
        stores: Vec<StoreHandle>,
        pipeline: Arc<Pipeline>,
        metrics: Arc<Metrics>,
        verify: Arc<LastVerify>,
        retention: watch::Receiver<RetentionPolicy>,
        snapshot: PathBuf,
    ) -> Option<Detection> {
        if !cfg.enabled {
            tracing::info!("detection off ([detect] enabled = false)");
            return None;
        }
        let notifier = match Notifier::start(&cfg.notify) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::error!(error = %e, "alert notifications off");
                None
            }
        };
        let (stop, stop_rx) = watch::channel(false);
        let mut cfg = cfg.clone();
        if !signing && cfg.integrity.common.enabled {
            tracing::warn!("detection: the integrity rule is off: no checkpoint signing key");
            cfg.integrity.common.enabled = false;
        }
        let task = rt.spawn(async move {
            run(
                cfg, stores, pipeline, metrics, notifier, verify, retention, stop_rx, snapshot,
            )
            .await;
        });
        Some(Detection { stop, task })
    }

    /// Stops the task after the alerts it has found are appended.
    pub(super) fn stop(self, rt: &tokio::runtime::Runtime) {
        let _ = self.stop.send(true);
        let task = self.task;
        let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), task).await });
    }
}

/// The task: replay, then follow.
#[allow(clippy::too_many_arguments)]
async fn run(
    cfg: DetectConfig,
    stores: Vec<StoreHandle>,
    pipeline: Arc<Pipeline>,
    metrics: Arc<Metrics>,
    notifier: Option<Notifier>,
    verify: Arc<LastVerify>,
    mut retention: watch::Receiver<RetentionPolicy>,
    mut stop: watch::Receiver<bool>,
    snapshot: PathBuf,
) {
    let emitter = Emitter {
        pipeline: pipeline.clone(),
        metrics,
        notifier,
    };
    let mut detector = Detector::new(&cfg);
    detector.set_retention_policy(&retention.borrow_and_update());
    let start = pipeline.now_unix_nano();
    load_snapshot(&mut detector, &snapshot, start);
    let from = start.saturating_sub(detector.replay_ns());
    let handles = stores.clone();
    let replayed = tokio::task::spawn_blocking(move || replay(detector, &handles, from));
    let (mut detector, ends) = match replayed.await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "detection stopped: the store's replay failed");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "detection stopped: the replay task failed");
            return;
        }
    };
    let raised = detector.finish_replay(pipeline.now_unix_nano());
    // Alerts adopted from the log are firing but not raised again: the notifier still has to
    // hear of them, or Alertmanager would let them expire.
    if let Some(n) = &emitter.notifier {
        for t in detector.firing() {
            if !raised.iter().any(|r| r.id == t.id) {
                n.send(t);
            }
        }
    }
    emitter.emit(raised).await;
    tracing::info!(
        rules = detector.rule_names().len(),
        replayed_from_unix_ns = from,
        "detection on"
    );

    let (tx, mut rx) = mpsc::channel::<Vec<TailRecord>>(QUEUE);
    let mut followers = tokio::task::JoinSet::new();
    for (handle, end) in stores.iter().zip(ends) {
        followers.spawn(follow(handle.subscribe(end), tx.clone()));
    }
    drop(tx);
    // None at first: the checkpoint each store signed when it opened reaches the rule at the
    // first tick, so an alert for a stall adopted from before a restart resolves then.
    let mut checkpoints: Vec<Option<u64>> = vec![None; stores.len()];
    let max_age_ns = cfg
        .integrity
        .checkpoint_max_age_s
        .saturating_mul(meshlog_detect::NS_PER_S);
    let mut verified: Option<u64> = None;
    let mut tick = tokio::time::interval(TICK);
    let mut save = tokio::time::interval(SNAPSHOT_EVERY);
    save.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            batch = rx.recv() => match batch {
                Some(batch) => {
                    if retention.has_changed().unwrap_or(false) {
                        detector.set_retention_policy(&retention.borrow_and_update());
                    }
                    let now = pipeline.now_unix_nano();
                    for tr in &batch {
                        match detector.observe_indexed(&tr.json, &tr.members, tr.shape, now) {
                            Ok(ts) if ts.is_empty() => {}
                            Ok(ts) => emitter.emit(ts).await,
                            Err(e) => tracing::warn!(
                                position = %tr.position, error = %e, "unreadable record"
                            ),
                        }
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                let now = pipeline.now_unix_nano();
                for (s, last) in stores.iter().zip(checkpoints.iter_mut()) {
                    let signed = s.ledger_stats().last_checkpoint_unix_ns();
                    if signed != *last {
                        *last = signed;
                        // One signed longer ago than the rule allows (at start, a store whose
                        // signing fails) is no sign that checkpoints are written.
                        if signed.is_some_and(|t| now.saturating_sub(t) <= max_age_ns) {
                            let ts = detector.integrity(&IntegrityEvent::Checkpoint, now);
                            emitter.emit(ts).await;
                        }
                    }
                }
                // Each new result of serve's periodic verify is an integrity event.
                if let Some(v) = verify.get().filter(|v| verified != Some(v.time_unix_nano)) {
                    verified = Some(v.time_unix_nano);
                    let ev = match v.outcome {
                        "intact" => Some(IntegrityEvent::VerifyPassed),
                        "not_intact" => Some(IntegrityEvent::VerifyFailed {
                            detail: format!("{} findings {:?}", v.findings, v.kinds),
                        }),
                        _ => None,
                    };
                    if let Some(ev) = ev {
                        emitter.emit(detector.integrity(&ev, now)).await;
                    }
                }
                emitter.emit(detector.tick(now)).await;
            }
            _ = save.tick() => write_snapshot(&detector, &snapshot),
        }
    }
    write_snapshot(&detector, &snapshot);
    followers.abort_all();
    if let Some(n) = emitter.notifier {
        // Joins the notifier's threads: not on the runtime's workers.
        let _ = tokio::task::spawn_blocking(move || n.shutdown()).await;
    }
}

/// The retention policy detection holds deletions to: `[retention]`'s classes and holds (none
/// without it: then nothing may be deleted), and the key receipts are signed with.
pub(super) fn retention_policy(
    cfg: Option<&RetentionConfig>,
    verifier: Option<VerifierKey>,
) -> RetentionPolicy {
    RetentionPolicy {
        classes: cfg
            .map(|c| {
                c.class_names()
                    .into_iter()
                    .enumerate()
                    .map(|(i, n)| (n.to_owned(), c.days(i)))
                    .collect()
            })
            .unwrap_or_default(),
        holds: cfg.map(|c| retention_holds(&c.holds)).unwrap_or_default(),
        verifier,
    }
}

/// The legal holds as detection judges them.
pub(super) fn retention_holds(holds: &[Hold]) -> Vec<RetentionHold> {
    holds
        .iter()
        .map(|h| RetentionHold {
            name: h.name.clone(),
            classes: match &h.classes {
                HoldClasses::All => None,
                HoldClasses::Named(n) => Some(n.clone()),
            },
            from_unix_ns: h.from_unix_ns,
            until_unix_ns: h.until_unix_ns,
        })
        .collect()
}

/// Takes back the snapshot at `path`, if there is one (a missing or unreadable one only
/// means the replay and learning rebuild what they can).
fn load_snapshot(detector: &mut Detector, path: &Path, now: u64) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "detection snapshot not read");
            return;
        }
    };
    match serde_json::from_str(&text) {
        Ok(v) if detector.load_snapshot(&v, now) => {
            tracing::info!(path = %path.display(), "detection history taken from the snapshot");
        }
        Ok(_) => {
            tracing::warn!(path = %path.display(), "detection snapshot of another version: ignored")
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "detection snapshot unreadable: ignored");
        }
    }
}

/// Writes the detector's snapshot to `path` (a temporary file renamed over it, so a crash
/// leaves the old one or the new one).
fn write_snapshot(detector: &Detector, path: &Path) {
    let tmp = path.with_extension("json.tmp");
    let r = std::fs::write(&tmp, detector.snapshot().to_string())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = r {
        tracing::warn!(path = %path.display(), error = %e, "detection snapshot not written");
    }
}

/// Replays the records committed since `from_ns` (stored time) from each store, oldest first,
/// up to the end committed now; returns the detector and where each store's replay ended.
fn replay(
    mut detector: Detector,
    stores: &[StoreHandle],
    from_ns: u64,
) -> Result<(Detector, Vec<Position>), TailError> {
    let mut ends = Vec::new();
    // One store streams in order; several are merged by stored time.
    let mut merged = Vec::new();
    let one = stores.len() == 1;
    for s in stores {
        let end = s.committed_end();
        let mut sub = s.subscribe(Position::default());
        while sub.position() < end {
            match sub.try_next()? {
                Some(TailEvent::Record(tr)) => {
                    let Ok(t) = Flat::parse(&tr.json).map(|f| f.stored_time()) else {
                        continue;
                    };
                    if t < from_ns {
                        continue;
                    }
                    if one {
                        let _ = detector.replay_json(&tr.json);
                    } else {
                        merged.push((t, tr.json));
                    }
                }
                Some(TailEvent::Gap { .. }) => {}
                None => break,
            }
        }
        ends.push(sub.position().max(end));
    }
    merged.sort_by_key(|(t, _)| *t);
    for (_, line) in &merged {
        let _ = detector.replay_json(line);
    }
    Ok((detector, ends))
}

/// Forwards one store's committed records to the detector until the store closes, in batches
/// of what is committed when it looks (at most [`BATCH`]).
async fn follow(mut sub: Subscription, tx: mpsc::Sender<Vec<TailRecord>>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        // Waits for the first record; takes the others committed by then without waiting.
        let mut ev = sub.next().await;
        loop {
            match ev {
                Ok(TailEvent::Record(tr)) => batch.push(tr),
                Ok(TailEvent::Gap { from, to }) => {
                    tracing::warn!(%from, %to, "detection skipped records retention deleted");
                }
                Err(TailError::Closed) => {
                    if !batch.is_empty() {
                        let _ = tx.send(batch).await;
                    }
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "detection stopped following the store");
                    return;
                }
            }
            if batch.len() >= BATCH {
                break;
            }
            ev = match sub.try_next() {
                Ok(Some(ev)) => Ok(ev),
                Ok(None) => break,
                Err(e) => Err(e),
            };
        }
        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
        if tx.send(full).await.is_err() {
            return;
        }
    }
}

/// Appends transitions and hands them to the notifier.
struct Emitter {
    pipeline: Arc<Pipeline>,
    metrics: Arc<Metrics>,
    notifier: Option<Notifier>,
}

impl Emitter {
    async fn emit(&self, ts: Vec<Transition>) {
        for t in ts {
            let request = alert::alert_request(&t);
            let size = request.encoded_len() as u64;
            let r = self
                .pipeline
                .ingest_decoded(DecodedBatch {
                    request,
                    size,
                    batch_id: None,
                    received_unix_nano: self.pipeline.now_unix_nano(),
                    // Stamped on the record's resource: that tenant's readers see it.
                    tenant: t.tenant.clone(),
                })
                .await;
            match r {
                Ok(_) => self.metrics.stored(Transport::Internal, 1),
                Err(e) => tracing::error!(
                    error = %e, id = %t.id, rule = %t.rule, state = t.state.as_str(),
                    "alert record not stored"
                ),
            }
            self.metrics.alert(&t.rule, t.state.as_str());
            tracing::info!(
                id = %t.id, rule = %t.rule, state = t.state.as_str(), summary = %t.summary,
                "alert"
            );
            if let Some(n) = &self.notifier {
                n.send(&t);
            }
        }
    }
}
