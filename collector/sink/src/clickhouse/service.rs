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
use std::sync::Arc;
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

/// A batch: the rows of leaves `from..to` (whole frames).
struct Batch {
    rows: Vec<LogRow>,
    from: u64,
    to: u64,
    skipped: u64,
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

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps `d` unless stopped first; false when stopped.
    async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => !self.stopping(),
            _ = self.stop.changed() => false,
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
        let mut lag = Lag {
            counter: self.handle.subscribe(start),
            committed: 0,
            exported: 0,
        };
        let metrics = self.sink.metrics.clone();
        metrics.touch(&self.log);
        metrics.set_cursor(&self.log, cur.next_leaf);
        lag.update(&metrics, &self.log);
        tracing::info!(
            log = %self.log,
            collector_id = %self.sink.collector_id,
            target = %target,
            from_leaf = cur.next_leaf,
            "ClickHouse sink started"
        );
        let flavor = match self.flavor(&mut lag).await {
            Some(f) => f,
            None => return Ok(()),
        };
        let mut carry: Option<TailRecord> = None;
        // After a start the collector may have died mid-insert: ask what is there first.
        let mut verify = true;
        loop {
            let Some(batch) = self.collect(&mut sub, &mut carry, &mut lag).await? else {
                return Ok(());
            };
            if batch.skipped > 0 {
                metrics.skipped(&self.log, batch.skipped);
                tracing::error!(
                    log = %self.log,
                    leaves = batch.skipped,
                    "sink: retention deleted frames before they were exported; they are not \
                     in ClickHouse (`meshlog sink check` lists them)"
                );
            }
            let mut backoff = FIRST_BACKOFF;
            loop {
                let began = Instant::now();
                match self.insert(flavor, &batch, verify).await {
                    Ok(n) => {
                        metrics.exported(&self.log, n, began.elapsed());
                        break;
                    }
                    Err(e) => {
                        metrics.failed(&self.log);
                        lag.update(&metrics, &self.log);
                        tracing::warn!(
                            log = %self.log,
                            leaves = %format_args!("{}..{}", batch.from, batch.to),
                            rows = batch.rows.len(),
                            retry_in_ms = backoff.as_millis() as u64,
                            error = %e,
                            "sink: ClickHouse insert failed; retrying (nothing is lost: the \
                             cursor stays until ClickHouse acknowledges)"
                        );
                        verify = true;
                        if !self.pause(backoff).await {
                            return Ok(());
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            verify = false;
            cur.next_leaf = batch.to;
            cur.save(&self.sink.sink_dir)?;
            lag.exported = lag.exported.saturating_add(batch.rows.len() as u64);
            metrics.set_cursor(&self.log, cur.next_leaf);
            lag.update(&metrics, &self.log);
        }
    }

    /// The table's flavor, waiting (with backoff) while ClickHouse is unreachable or the table
    /// is missing; `None` when stopped first.
    async fn flavor(&mut self, lag: &mut Lag) -> Option<Flavor> {
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
                    lag.update(&self.sink.metrics, &self.log);
                    tracing::warn!(log = %self.log, error = %e, "sink: ClickHouse not ready; retrying");
                }
            }
            if !self.pause(backoff).await {
                return None;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// The next batch of whole frames; `None` when stopped (or the store closed) with nothing
    /// gathered.
    async fn collect(
        &mut self,
        sub: &mut Subscription,
        carry: &mut Option<TailRecord>,
        lag: &mut Lag,
    ) -> Result<Option<Batch>, Error> {
        let max = usize::try_from(self.sink.cfg.batch_max_records).unwrap_or(usize::MAX);
        let flush = Duration::from_millis(self.sink.cfg.flush_interval_ms);
        let from = carry
            .as_ref()
            .map_or(sub.position().leaf, |c| c.position.leaf);
        let mut rows: Vec<LogRow> = Vec::new();
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
                    let leaf_done = rows.last().is_some_and(|l| l.leaf_index != r.position.leaf);
                    if rows.len() >= max && leaf_done {
                        *carry = Some(r);
                        break;
                    }
                    first_at.get_or_insert_with(Instant::now);
                    rows.push(encoder::encode(
                        &self.sink.collector_id,
                        &self.log,
                        RowKey {
                            leaf: r.position.leaf,
                            record: r.position.record,
                        },
                        &r.json,
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
                        () = tokio::time::sleep(wait) => lag.update(&self.sink.metrics, &self.log),
                        _ = self.stop.changed() => done = true,
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
    async fn insert(&self, flavor: Flavor, batch: &Batch, verify: bool) -> Result<u64, Error> {
        if batch.rows.is_empty() {
            return Ok(0);
        }
        let mut rows: Vec<&LogRow> = batch.rows.iter().collect();
        if verify {
            let secs = |ns: u64| ns / 1_000_000_000;
            let lo = rows.iter().map(|r| secs(r.timestamp_ns)).min().unwrap_or(0);
            let hi = rows.iter().map(|r| secs(r.timestamp_ns)).max().unwrap_or(0);
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
        let token = format!(
            "{}/{}/{}:{}-{}:{}/{}",
            self.sink.collector_id,
            self.log,
            first.leaf_index,
            first.record_index,
            last.leaf_index,
            last.record_index,
            rows.len()
        );
        let timeout = Some(Duration::from_millis(self.sink.cfg.timeout_ms));
        let table = self.sink.cfg.table.as_str();
        match flavor {
            Flavor::Modern => {
                let mut ins = self
                    .client
                    .insert::<ModernRow>(table)
                    .await
                    .map_err(Error::ClickHouse)?
                    .with_setting("insert_deduplication_token", token)
                    .with_timeouts(timeout, timeout);
                for r in &rows {
                    ins.write(&ModernRow::from((*r).clone()))
                        .await
                        .map_err(Error::ClickHouse)?;
                }
                ins.end().await.map_err(Error::ClickHouse)?;
            }
            Flavor::Legacy => {
                let mut ins = self
                    .client
                    .insert::<LegacyRow>(table)
                    .await
                    .map_err(Error::ClickHouse)?
                    .with_timeouts(timeout, timeout);
                for r in &rows {
                    ins.write(&LegacyRow::from((*r).clone()))
                        .await
                        .map_err(Error::ClickHouse)?;
                }
                ins.end().await.map_err(Error::ClickHouse)?;
            }
        }
        Ok(rows.len() as u64)
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
