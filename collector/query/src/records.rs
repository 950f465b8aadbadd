//! Listing matching records: oldest or newest first, at most `limit`, from a cursor, with the
//! cursor of the next page.

use crate::filter::Record;
use crate::params::{Order, QueryParams};
use crate::scan::{self, Flow, Position, QueryError, ScanOptions, ScanOutcome};
use meshlog_format::encryption::DataKeys;
use std::collections::VecDeque;
use std::io;
use std::path::Path;

/// What a listing returned besides its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Records given to `emit`.
    pub returned: u64,
    /// Where the next page starts (pass as `cursor`), when there may be more.
    pub next_cursor: Option<Position>,
    /// What was read, and the completeness statement.
    pub outcome: ScanOutcome,
}

/// Calls `emit` with the records of `data_dir` matching `q`, in `q.order`, at most `q.limit`.
/// Oldest first streams; newest first keeps the last `limit` matches (all without a limit).
pub fn list(
    data_dir: &Path,
    keys: Option<&DataKeys>,
    q: &QueryParams,
    opts: &ScanOptions,
    mut emit: impl FnMut(Position, Record) -> io::Result<()>,
) -> Result<Listing, QueryError> {
    let limit = q.limit.unwrap_or(u64::MAX);
    let mut opts = opts.clone();
    match q.order {
        Order::Oldest => {
            opts.after = q.cursor.or(opts.after);
            let mut returned = 0u64;
            let mut last = None;
            let outcome = scan::scan(data_dir, keys, &q.filter, &opts, |pos, r| {
                emit(pos, r)?;
                returned += 1;
                last = Some(pos);
                Ok(if returned >= limit {
                    Flow::Enough
                } else {
                    Flow::More
                })
            })?;
            Ok(Listing {
                returned,
                next_cursor: last.filter(|_| returned >= limit),
                outcome,
            })
        }
        Order::Newest => {
            opts.before = q.cursor.or(opts.before);
            let mut kept: VecDeque<(Position, Record)> = VecDeque::new();
            let mut evicted = false;
            let outcome = scan::scan(data_dir, keys, &q.filter, &opts, |pos, r| {
                if kept.len() as u64 >= limit {
                    kept.pop_front();
                    evicted = true;
                }
                kept.push_back((pos, r));
                Ok(Flow::More)
            })?;
            let next_cursor = kept.front().map(|(p, _)| *p).filter(|_| evicted);
            let returned = kept.len() as u64;
            for (pos, r) in kept.into_iter().rev() {
                emit(pos, r).map_err(meshlog_format::reader::ReadError::Output)?;
            }
            Ok(Listing {
                returned,
                next_cursor,
                outcome,
            })
        }
    }
}
