//! Builds the query index of each segment when its store's writer closes it, so queries find
//! closed segments indexed rather than building the index on the first read.
//!
//! One task per store (the data directory's own, or each retention class's): it indexes what
//! is closed and unindexed when the collector starts (segments closed before a crash), then
//! the newly closed ones each time the writer publishes a close
//! ([`StoreHandle::closed_segments`]). Every [`ACTIVE_EVERY`] it also extends the index of the
//! active segment's first frames ([`index_active`]), so a query reads only the frames written
//! since. The work runs on the blocking pool; the index is a cache, so a failure is logged and
//! the next query builds what is missing.

use meshlog_query::index::build::{index_active, index_closed};
use meshlog_store::StoreHandle;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// Starts one indexing task per store on `rt`; each ends when its store closes.
pub fn spawn(rt: &Handle, handles: &[StoreHandle]) -> Vec<JoinHandle<()>> {
    handles
        .iter()
        .map(|h| {
            let closed = h.closed_segments();
            let dir = h.store_dir().to_owned();
            // The task keeps no handle: it must not hold the store's channels open.
            rt.spawn(run(closed, dir))
        })
        .collect()
}

/// How often the active segment's index is extended.
pub const ACTIVE_EVERY: Duration = Duration::from_secs(2);

async fn run(mut closed: tokio::sync::watch::Receiver<u64>, dir: std::path::PathBuf) {
    let mut after = 0;
    let mut tick = tokio::time::interval(ACTIVE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        closed.borrow_and_update();
        let d = dir.clone();
        match tokio::task::spawn_blocking(move || index_closed(&d, after)).await {
            Ok(Ok(r)) => {
                after = after.max(r.newest);
                if !r.built.is_empty() || r.removed > 0 {
                    tracing::debug!(
                        store = %dir.display(),
                        built = ?r.built,
                        removed = r.removed,
                        "query indexes built"
                    );
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(store = %dir.display(), error = %e, "building query indexes failed; queries build them when they read");
            }
            Err(e) => {
                tracing::warn!(store = %dir.display(), error = %e, "the query index task failed");
            }
        }
        loop {
            tokio::select! {
                changed = closed.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                _ = tick.tick() => {
                    let d = dir.clone();
                    match tokio::task::spawn_blocking(move || index_active(&d)).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::debug!(store = %dir.display(), error = %e, "indexing the active segment failed; queries read it"),
                        Err(e) => tracing::warn!(store = %dir.display(), error = %e, "the query index task failed"),
                    }
                }
            }
        }
    }
}
