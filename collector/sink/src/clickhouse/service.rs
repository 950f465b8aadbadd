//! The export loop: one task per log (retention class), each reading the store's subscription
//! from its [`Cursor`], cutting batches of whole frames (at most `batch_max_records` rows, or
//! what `flush_interval_ms` gathered), inserting them, and saving the cursor once ClickHouse
//! acknowledged. See the [parent module](super) for why that is exactly once.

use super::config::ClickHouseConfig;
use super::cursor::{self, Cursor};
use super::encoder::{self, Flavor, LegacyRow, LogRow, ModernRow, RowKey};
use super::metrics::SinkMetrics;
use super::{Error, schema};
use clickhouse::Client;
use meshlog_store::StoreHandle;
use meshlog_store::tail::{Position, Subscription, TailError, TailEvent, TailRecord};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Longest wait between retries of a failed insert.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// First wait after a failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// How often the lag is recomputed while the sink waits.
const LAG_TICK: Duration = Duration::from_secs(1);

/// One log to export: its name in the `Log` column and its store.
#[derive(Debug, Clone)]
pub struct Source {
    /// The retention class, `""` for a store without classes.
    pub log: String,
    /// The store.
    pub handle: StoreHandle,
}

/// What every export task shares.
#[derive(Debug, Clone)]
pub struct Sink {
    /// The section.
    pub cfg: ClickHouseConfig,
    /// The collector id written in `CollectorId`.
    pub collector_id: String,
    /// Where cursors are kept (`<data_dir>/sink`).
    pub sink_dir: PathBuf,
    /// The metrics.
    pub metrics: Arc<SinkMetrics>,
}

/// The running export tasks.
#[derive(Debug)]
pub struct Running {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Asks every task to stop (an insert under way is abandoned; its rows are sent again
    /// after the next start, as only those ClickHouse lacks) and waits up to `grace`.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let all = futures_join(self.tasks);
        let _ = tokio::time::timeout(grace, all).await;
    }
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

/// Starts one export task per source on the current runtime.
pub fn start(sink: Sink, sources: Vec<Source>) -> Result<Running, Error> {
    let client = super::connect(&sink.cfg)?;
    let (stop, stop_rx) = watch::channel(false);
    let tasks = sources
        .into_iter()
        .map(|src| {
            let task = Task {
                sink: sink.clone(),
                client: client.clone(),
                log: src.log,
                handle: src.handle,
                stop: stop_rx.clone(),
            };
            tokio::spawn(task.run())
        })
        .collect();
    Ok(Running { stop, tasks })
}

/// One log's export.
struct Task {
    sink: Sink,
    client: Client,
    log: String,
    handle: StoreHandle,
    stop: watch::Receiver<bool>,
}

/// A batch: the rows of leaves `from..to` (whole frames), already in the table's shape, so
/// a retry sends them again without re-encoding or copying.
struct Batch {
    rows: Rows,
    from: u64,
    to: u64,
    skipped: u64,
}

/// Rows in one of the table's shapes.
enum Rows {
    Modern(Vec<ModernRow>),
    Legacy(Vec<LegacyRow>),
}

impl Rows {
    fn new(flavor: Flavor) -> Rows {
        match flavor {
            Flavor::Modern => Rows::Modern(Vec::new()),
            Flavor::Legacy => Rows::Legacy(Vec::new()),
        }
    }

    fn push(&mut self, row: LogRow) {
        match self {
            Rows::Modern(v) => v.push(row.into()),
            Rows::Legacy(v) => v.push(row.into()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Rows::Modern(v) => v.len(),
            Rows::Legacy(v) => v.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn last_leaf(&self) -> Option<u64> {
        match self {
            Rows::Modern(v) => v.last().map(|r| r.LeafIndex),
            Rows::Legacy(v) => v.last().map(|r| r.LeafIndex),
        }
    }
}

/// What the insert needs of a row besides its columns: its key and second.
trait Keyed {
    fn key(&self) -> RowKey;
    fn second(&self) -> u64;
}

impl Keyed for ModernRow {
    fn key(&self) -> RowKey {
        RowKey {
            leaf: self.LeafIndex,
            record: self.RecordIndex,
        }
    }
    fn second(&self) -> u64 {
        u64::try_from(self.Timestamp).unwrap_or(0) / 1_000_000_000
    }
}

impl Keyed for LegacyRow {
    fn key(&self) -> RowKey {
        RowKey {
            leaf: self.LeafIndex,
            record: self.RecordIndex,
        }
    }
    fn second(&self) -> u64 {
        self.Timestamp / 1_000_000_000
    }
}

/// Records committed since the start position and records acknowledged since then: their
/// difference is the lag.
struct Lag {
    counter: Subscription,
    committed: u64,
    exported: u64,
}

impl Lag {
    fn update(&mut self, metrics: &SinkMetrics, log: &str) {
        match self.counter.skip_to_live() {
            Ok(n) => self.committed = self.committed.saturating_add(n),
            Err(e) => tracing::debug!(log, error = %e, "sink: counting committed records"),
        }
        metrics.set_lag(log, self.committed.saturating_sub(self.exported));
    }
}

impl Task {
    async fn run(mut self) {
        let log = self.log.clone();
        match self.export().await {
            Ok(()) => tracing::info!(log, "ClickHouse sink stopped"),
            Err(e) => tracing::error!(
                log,
                error = %e,
                "ClickHouse sink stopped: records are kept in the store; restart to resume"
            ),
        }
    }

    async fn export(&mut self) -> Result<(), Error> {
        let cfg = &self.sink.cfg;
        let target = cursor::target(&cfg.url, &cfg.database, &cfg.table);
        let mut cur = Cursor::load(
            &self.sink.sink_dir,
            &self.log,
            &target,
            &self.sink.collector_id,
        )?;
        let start = Position::leaf(cur.next_leaf);
        let mut sub = self.handle.subscribe(start);
        let lag = Mutex::new(Lag {
            counter: self.handle.subscribe(start),
            committed: 0,
            exported: 0,
        });
        let metrics = self.sink.metrics.clone();
        metrics.touch(&self.log);
        metrics.set_cursor(&self.log, cur.next_leaf);
        lag.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .update(&metrics, &self.log);
        tracing::info!(
            log = %self.log,
            collector_id = %self.sink.collector_id,
            target = %target,
            from_leaf = cur.next_leaf,
            "ClickHouse sink started"
        );
        let mut stop = self.stop.clone();
        let flavor = match self.flavor(&lag, &mut stop).await {
            Some(f) => f,
            None => return Ok(()),
        };
        let mut carry: Option<TailRecord> = None;
        let mut reading = self.stop.clone();
        // After a start the collector may have died mid-insert: ask what is there first.
        let mut verify = true;
        let mut next = self
            .collect(flavor, &mut sub, &mut carry, &lag, &mut reading)
            .await?;
        // The next batch is read and encoded while this one is inserted; inserts stay one at
        // a time, in leaf order, each acknowledged and its cursor saved before the next.
        while let Some(batch) = next {
            if batch.skipped > 0 {
                metrics.skipped(&self.log, batch.skipped);
                tracing::error!(
                    log = %self.log,
                    leaves = batch.skipped,
                    "sink: retention deleted frames before they were exported; they are not \
                     in ClickHouse (`meshlog sink check` lists them)"
                );
            }
            // The cursor is saved as soon as ClickHouse acknowledges, not when the next batch
            // is ready (it may wait for records a long time).
            let acknowledged = async {
                if !self
                    .insert_until_acknowledged(&batch, &mut verify, &lag, &mut stop)
                    .await
                {
                    return Ok(false);
                }
                cur.next_leaf = batch.to;
                cur.save(&self.sink.sink_dir)?;
                let mut lag = lag.lock().unwrap_or_else(PoisonError::into_inner);
                lag.exported = lag.exported.saturating_add(batch.rows.len() as u64);
                metrics.set_cursor(&self.log, cur.next_leaf);
                lag.update(&metrics, &self.log);
                Ok::<bool, Error>(true)
            };
            let (sent, following) = tokio::join!(
                acknowledged,
                self.collect(flavor, &mut sub, &mut carry, &lag, &mut reading)
            );
            if !sent? {
                return Ok(());
            }
            next = following?;
        }
        Ok(())
    }

    /// Inserts `batch` until ClickHouse acknowledges it, retrying with backoff; false when
    /// stopped first.
    async fn insert_until_acknowledged(
        &self,
        batch: &Batch,
        verify: &mut bool,
        lag: &Mutex<Lag>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let metrics = &self.sink.metrics;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let began = Instant::now();
            match self.insert(batch, *verify).await {
                Ok(n) => {
                    metrics.exported(&self.log, n, began.elapsed());
                    *verify = false;
                    return true;
                }
                Err(e) => {
                    metrics.failed(&self.log);
                    lag.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .update(metrics, &self.log);
                    tracing::warn!(
                        log = %self.log,
                        leaves = %format_args!("{}..{}", batch.from, batch.to),
                        rows = batch.rows.len(),
                        retry_in_ms = backoff.as_millis() as u64,
                        error = %e,
                        "sink: ClickHouse insert failed; retrying (nothing is lost: the \
                         cursor stays until ClickHouse acknowledges)"
                    );
                    *verify = true;
                    if !pause(stop, backoff).await {
                        return false;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// The table's flavor, waiting (with backoff) while ClickHouse is unreachable or the table
    /// is missing; `None` when stopped first.
    async fn flavor(&self, lag: &Mutex<Lag>, stop: &mut watch::Receiver<bool>) -> Option<Flavor> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let cfg = &self.sink.cfg;
            match schema::require_table(&self.client, &cfg.database, &cfg.table).await {
                Ok(f) => {
                    tracing::info!(log = %self.log, flavor = f.name(), "sink: ClickHouse table found");
                    return Some(f);
                }
                Err(e) => {
                    self.sink.metrics.failed(&self.log);
                    lag.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .update(&self.sink.metrics, &self.log);
                    tracing::warn!(log = %self.log, error = %e, "sink: ClickHouse not ready; retrying");
                }
            }
            if !pause(stop, backoff).await {
                return None;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// The next batch of whole frames; `None` when stopped (or the store closed) with nothing
    /// gathered.
    async fn collect(
        &self,
        flavor: Flavor,
        sub: &mut Subscription,
        carry: &mut Option<TailRecord>,
        lag: &Mutex<Lag>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<Batch>, Error> {
        if *stop.borrow() {
            return Ok(None);
        }
        let max = usize::try_from(self.sink.cfg.batch_max_records).unwrap_or(usize::MAX);
        let flush = Duration::from_millis(self.sink.cfg.flush_interval_ms);
        let from = carry
            .as_ref()
            .map_or(sub.position().leaf, |c| c.position.leaf);
        let mut rows = Rows::new(flavor);
        let mut skipped = 0u64;
        let mut first_at: Option<Instant> = None;
        let mut pending: Option<TailEvent> = carry.take().map(TailEvent::Record);
        let mut done = false;
        loop {
            let ev = match pending.take() {
                Some(ev) => Some(ev),
                None => sub.try_next()?,
            };
            match ev {
                Some(TailEvent::Record(r)) => {
                    let leaf_done = rows.last_leaf().is_some_and(|l| l != r.position.leaf);
                    if rows.len() >= max && leaf_done {
                        *carry = Some(r);
                        break;
                    }
                    first_at.get_or_insert_with(Instant::now);
                    rows.push(encoder::encode_indexed(
                        &self.sink.collector_id,
                        &self.log,
                        RowKey {
                            leaf: r.position.leaf,
                            record: r.position.record,
                        },
                        &r.json,
                        &r.members,
                    ));
                }
                Some(TailEvent::Gap { from: g0, to: g1 }) => {
                    skipped += g1.leaf.saturating_sub(g0.leaf);
                }
                None => {
                    // Every committed frame is read: the last one is whole.
                    let full = rows.len() >= max;
                    let due = first_at.is_some_and(|t| t.elapsed() >= flush);
                    if full || due || done || (rows.is_empty() && skipped > 0) {
                        break;
                    }
                    let wait = match first_at {
                        Some(t) => flush.saturating_sub(t.elapsed()).min(LAG_TICK),
                        None => LAG_TICK,
                    };
                    tokio::select! {
                        next = sub.next() => match next {
                            Ok(ev) => pending = Some(ev),
                            Err(TailError::Closed) => done = true,
                            Err(e) => return Err(e.into()),
                        },
                        () = tokio::time::sleep(wait) => {
                            lag.lock().unwrap_or_else(PoisonError::into_inner).update(&self.sink.metrics, &self.log);
                        }
                        _ = stop.changed() => done = true,
                    }
                    if done && rows.is_empty() {
                        return Ok(None);
                    }
                }
            }
        }
        let to = carry
            .as_ref()
            .map_or(sub.position().leaf, |c| c.position.leaf);
        Ok(Some(Batch {
            rows,
            from,
            to,
            skipped,
        }))
    }

    /// Inserts the batch (with `verify`, only the rows ClickHouse does not hold yet); returns
    /// the rows sent.
    async fn insert(&self, batch: &Batch, verify: bool) -> Result<u64, Error> {
        match &batch.rows {
            Rows::Modern(rows) => self.send(rows, batch, verify, true).await,
            Rows::Legacy(rows) => self.send(rows, batch, verify, false).await,
        }
    }

    /// [`Self::insert`] for one table shape; `token`: whether the server takes an
    /// `insert_deduplication_token` (≥ 22.8).
    async fn send<T>(
        &self,
        all: &[T],
        batch: &Batch,
        verify: bool,
        token: bool,
    ) -> Result<u64, Error>
    where
        T: Keyed + clickhouse::RowWrite + for<'a> clickhouse::Row<Value<'a> = T>,
    {
        let mut rows: Vec<&T> = all.iter().collect();
        if rows.is_empty() {
            return Ok(0);
        }
        if verify {
            let lo = rows.iter().map(|r| r.second()).min().unwrap_or(0);
            let hi = rows.iter().map(|r| r.second()).max().unwrap_or(0);
            let held = existing_keys(
                &self.client,
                &self.sink.cfg.table,
                &self.sink.collector_id,
                &self.log,
                (batch.from, batch.to),
                (lo, hi),
            )
            .await?;
            if !held.is_empty() {
                tracing::info!(
                    log = %self.log,
                    held = held.len(),
                    of = rows.len(),
                    "sink: ClickHouse already holds part of this batch (an insert before a \
                     restart or a failure); sending only the rest"
                );
            }
            rows.retain(|r| !held.contains(&r.key()));
        }
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(0);
        };
        let (first, last) = (first.key(), last.key());
        let timeout = Some(Duration::from_millis(self.sink.cfg.timeout_ms));
        let mut ins = self
            .client
            .insert::<T>(&self.sink.cfg.table)
            .await
            .map_err(Error::ClickHouse)?
            .with_timeouts(timeout, timeout);
        if token {
            ins = ins.with_setting(
                "insert_deduplication_token",
                format!(
                    "{}/{}/{}:{}-{}:{}/{}",
                    self.sink.collector_id,
                    self.log,
                    first.leaf,
                    first.record,
                    last.leaf,
                    last.record,
                    rows.len()
                ),
            );
        }
        for r in &rows {
            ins.write(r).await.map_err(Error::ClickHouse)?;
        }
        ins.end().await.map_err(Error::ClickHouse)?;
        Ok(rows.len() as u64)
    }
}

/// Sleeps `d` unless stopped first; false when stopped.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => !*stop.borrow(),
        _ = stop.changed() => false,
    }
}

/// The `(LeafIndex, RecordIndex)` pairs of `collector_id`'s `log` in leaves `leaves.0..leaves.1`
/// that the table holds; `secs` (the batch's first and last second) lets ClickHouse read only
/// the partitions and granules of those times.
pub async fn existing_keys(
    client: &Client,
    table: &str,
    collector_id: &str,
    log: &str,
    leaves: (u64, u64),
    secs: (u64, u64),
) -> Result<HashSet<RowKey>, Error> {
    let sql = format!(
        "SELECT LeafIndex, RecordIndex FROM `{table}` WHERE CollectorId = ? AND Log = ? \
         AND LeafIndex >= ? AND LeafIndex < ? \
         AND TimestampTime >= toDateTime(?) AND TimestampTime <= toDateTime(?)"
    );
    let keys = client
        .query(&sql)
        .bind(collector_id)
        .bind(log)
        .bind(leaves.0)
        .bind(leaves.1)
        .bind(secs.0)
        .bind(secs.1)
        .fetch_all::<(u64, u32)>()
        .await
        .map_err(Error::ClickHouse)?;
    Ok(keys
        .into_iter()
        .map(|(leaf, record)| RowKey { leaf, record })
        .collect())
}
