//! Builds the query index of each segment when its store's writer closes it, so queries find
//! closed segments indexed rather than building the index on the first read.
//!
//! One thread per store (the data directory's own, or each retention class's): it indexes what
//! is closed and unindexed when the collector starts (segments closed before a crash), then
//! the newly closed ones each time the writer publishes a close
//! ([`StoreHandle::closed_segments`]). Every [`ACTIVE_EVERY`] it also extends the index of the
//! active segment's first frames ([`index_active_kept`], continued in memory), so a query reads
//! only the frames written since. The thread runs at the lowest CPU priority (nice 19): the
//! index is a cache, and under load ingest, acknowledgements and live tails come first (a
//! query reads whatever is not indexed yet). A failure is logged and the next query builds
//! what is missing.

use meshlog_query::index::build::{index_active_kept, index_closed};
use meshlog_store::StoreHandle;
use std::time::Duration;
use tokio::runtime::Handle;

/// Starts one indexing thread per store; each ends when its store closes.
pub fn spawn(rt: &Handle, handles: &[StoreHandle]) -> Vec<std::thread::JoinHandle<()>> {
    handles
        .iter()
        .filter_map(|h| {
            let closed = h.closed_segments();
            let dir = h.store_dir().to_owned();
            let rt = rt.clone();
            // The thread keeps no handle: it must not hold the store's channels open.
            std::thread::Builder::new()
                .name("meshlog-indexer".into())
                .spawn(move || run(&rt, closed, &dir))
                .map_err(|e| tracing::warn!(error = %e, "the query indexer did not start; queries build indexes when they read"))
                .ok()
        })
        .collect()
}

/// How often the active segment's index is extended.
pub const ACTIVE_EVERY: Duration = Duration::from_secs(2);

/// Lowers the calling thread's CPU priority to nice 19 (Linux: per thread).
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
        tracing::debug!(error = %e, "the query indexer runs at normal priority");
    }
}

fn run(rt: &Handle, mut closed: tokio::sync::watch::Receiver<u64>, dir: &std::path::Path) {
    lowest_priority();
    let mut after = 0;
    let mut active = None;
    loop {
        closed.borrow_and_update();
        match index_closed(dir, after) {
            Ok(r) => {
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
            Err(e) => {
                tracing::warn!(store = %dir.display(), error = %e, "building query indexes failed; queries build them when they read");
            }
        }
        loop {
            // The timer is made inside the runtime (a tokio timer needs its context).
            let next =
                rt.block_on(async { tokio::time::timeout(ACTIVE_EVERY, closed.changed()).await });
            match next {
                Ok(Ok(())) => break,
                Ok(Err(_)) => return,
                Err(_) => {
                    if let Err(e) = index_active_kept(dir, &mut active) {
                        tracing::debug!(store = %dir.display(), error = %e, "indexing the active segment failed; queries read it");
                    }
                }
            }
        }
    }
}
