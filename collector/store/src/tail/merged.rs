//! One subscription over several stores (the retention classes of a collector): the records of
//! every store in one stream, each store's in its own position order, interleaved as they come.
//!
//! Positions are per store, so where a merged stream stands is a [`Cursor`]: for every store
//! (by name), the next position to deliver, written `NAME=LEAF:RECORD,NAME=LEAF:RECORD`
//! (e.g. `audit=120:0,default=4096:3`). After each event the cursor says exactly where to
//! resume: subscribing again from it continues with no gap and no duplicate in any store, also
//! across a restart. A store the cursor does not name (a class added since) starts at its
//! first record.
//!
//! The stores take turns (round robin), so a busy store cannot starve a quiet one; memory is
//! each store's [`Subscription`] (one open segment, one frame of records).

use super::{BadPosition, Position, Subscription, TailError, TailEvent};
use futures_util::FutureExt;
use std::fmt;
use std::str::FromStr;

/// Where a merged stream stands: per store, the next position to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cursor(pub Vec<(String, Position)>);

impl Cursor {
    /// The position recorded for `store`, if any.
    pub fn get(&self, store: &str) -> Option<Position> {
        self.0.iter().find(|(n, _)| n == store).map(|(_, p)| *p)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, p)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{name}={p}")?;
        }
        Ok(())
    }
}

/// A cursor that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadCursor {
    /// An entry is not `NAME=LEAF:RECORD`.
    #[error("{0:?} is not NAME=LEAF:RECORD")]
    Entry(String),
    /// A position is bad.
    #[error(transparent)]
    Position(#[from] BadPosition),
    /// A store is named twice.
    #[error("{0:?} is named twice")]
    Twice(String),
}

impl FromStr for Cursor {
    type Err = BadCursor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out: Vec<(String, Position)> = Vec::new();
        for entry in s.split(',') {
            let (name, pos) = entry
                .split_once('=')
                .filter(|(n, _)| !n.is_empty())
                .ok_or_else(|| BadCursor::Entry(entry.to_owned()))?;
            if out.iter().any(|(n, _)| n == name) {
                return Err(BadCursor::Twice(name.to_owned()));
            }
            out.push((name.to_owned(), pos.parse()?));
        }
        Ok(Cursor(out))
    }
}

/// One event of a merged stream: which store it is from, and the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedEvent {
    /// The store's index (as given to [`Merged::new`]).
    pub store: usize,
    /// The event.
    pub event: TailEvent,
}

/// The merged subscription. See the [module](self) docs.
#[derive(Debug)]
pub struct Merged {
    subs: Vec<(String, Subscription)>,
    /// Stores whose writer is gone (the collector is stopping).
    closed: Vec<bool>,
    /// The store asked first next time.
    turn: usize,
}

impl Merged {
    /// Merges named subscriptions (each started where the stream should start in that store).
    pub fn new(subs: Vec<(String, Subscription)>) -> Self {
        Merged {
            closed: vec![false; subs.len()],
            subs,
            turn: 0,
        }
    }

    /// The store names, by index.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.subs.iter().map(|(n, _)| n.as_str())
    }

    /// Where the stream stands: where a new merged subscription resumes.
    pub fn cursor(&self) -> Cursor {
        Cursor(
            self.subs
                .iter()
                .map(|(n, s)| (n.clone(), s.position()))
                .collect(),
        )
    }

    /// Committed leaves not yet delivered, over every store.
    pub fn behind(&self) -> u64 {
        self.subs
            .iter()
            .map(|(_, s)| s.behind())
            .fold(0, u64::saturating_add)
    }

    /// Jumps every store to its newest committed position; returns the records skipped.
    pub fn skip_to_live(&mut self) -> Result<u64, TailError> {
        let mut skipped = 0u64;
        for (_, s) in &mut self.subs {
            skipped = skipped.saturating_add(s.skip_to_live()?);
        }
        Ok(skipped)
    }

    /// The next event of any store if one is ready now, without waiting.
    pub fn try_next(&mut self) -> Result<Option<MergedEvent>, TailError> {
        let n = self.subs.len();
        for i in 0..n {
            let k = (self.turn + i) % n;
            let Some((_, sub)) = self.subs.get_mut(k) else {
                continue;
            };
            if let Some(event) = sub.try_next()? {
                self.turn = (k + 1) % n;
                return Ok(Some(MergedEvent { store: k, event }));
            }
        }
        Ok(None)
    }

    /// The next event of any store, waiting for a commit when none is ready. Cancel-safe.
    /// `Err(Closed)` once every store is closed and everything committed was delivered.
    pub async fn next(&mut self) -> Result<MergedEvent, TailError> {
        loop {
            if let Some(ev) = self.try_next()? {
                return Ok(ev);
            }
            let open: Vec<usize> = (0..self.subs.len())
                .filter(|k| !self.closed.get(*k).copied().unwrap_or(true))
                .collect();
            if open.is_empty() {
                return Err(TailError::Closed);
            }
            // Wait until any open store commits (or closes).
            let waits = self
                .subs
                .iter_mut()
                .enumerate()
                .filter(|(k, _)| open.contains(k))
                .map(|(k, (_, s))| s.commits.changed().map(move |r| (k, r.is_ok())).boxed());
            let ((k, still_open), _, _) = futures_util::future::select_all(waits).await;
            if !still_open && let Some(c) = self.closed.get_mut(k) {
                // Closed: what it committed before is still delivered by `try_next`.
                *c = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Appended, Store, StoreHandle, StoreOptions};
    use meshlog_format::frame::encode_frame;
    use serde_json::{Map, Value, json};
    use std::path::Path;
    use std::time::Duration;

    fn open(dir: &Path) -> Store {
        let opts = StoreOptions {
            segment_max_bytes: 150,
            ..StoreOptions::default()
        };
        Store::open(dir, opts).unwrap()
    }

    async fn append(h: &StoreHandle, tag: &str, ids: &[u64]) {
        let recs: Vec<Map<String, Value>> = ids
            .iter()
            .map(|i| {
                let Value::Object(m) = json!({ "id": format!("{tag}{i}") }) else {
                    unreachable!()
                };
                m
            })
            .collect();
        let frame = encode_frame(&recs).unwrap();
        assert!(matches!(
            h.append(frame).await.unwrap(),
            Appended::Stored(_)
        ));
    }

    fn id(ev: &MergedEvent) -> String {
        match &ev.event {
            TailEvent::Record(r) => r.record().unwrap()["id"].as_str().unwrap().to_owned(),
            TailEvent::Gap { .. } => panic!("unexpected gap: {ev:?}"),
        }
    }

    fn merged(handles: &[(&str, &StoreHandle)], from: &Cursor) -> Merged {
        Merged::new(
            handles
                .iter()
                .map(|(n, h)| {
                    let start = from.get(n).unwrap_or(Position::START);
                    ((*n).to_owned(), h.subscribe(start))
                })
                .collect(),
        )
    }

    /// The ids of one store's records, in the order the merged stream gave them.
    fn of(got: &[String], tag: &str) -> Vec<String> {
        got.iter().filter(|i| i.starts_with(tag)).cloned().collect()
    }

    #[test]
    fn every_store_is_delivered_once_in_its_order_and_a_cursor_resumes_without_gap_or_duplicate() {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (sa, sb) = (open(da.path()), open(db.path()));
        let (ha, hb) = (sa.handle(), sb.handle());
        let mut want_a = Vec::new();
        let mut want_b = Vec::new();
        rt.block_on(async {
            for i in 0..20u64 {
                append(&ha, "a", &[2 * i, 2 * i + 1]).await;
                want_a.extend([format!("a{}", 2 * i), format!("a{}", 2 * i + 1)]);
                if i % 4 == 0 {
                    append(&hb, "b", &[i]).await;
                    want_b.push(format!("b{i}"));
                }
            }
        });
        let stores = [("audit", &ha), ("default", &hb)];
        // From the start: everything, each store in order, the quiet one not starved.
        let mut m = merged(&stores, &Cursor::default());
        let mut got = Vec::new();
        let mut cursors = Vec::new();
        while let Some(ev) = m.try_next().unwrap() {
            got.push(id(&ev));
            cursors.push(m.cursor());
        }
        assert_eq!(of(&got, "a"), want_a);
        assert_eq!(of(&got, "b"), want_b);
        let first_b = got.iter().position(|i| i.starts_with('b')).unwrap();
        assert!(first_b <= 2, "store b waited behind a: {got:?}");
        // Resuming from the cursor after any event gives exactly the rest.
        for k in [0, 7, 20, got.len() - 1] {
            let c: Cursor = cursors[k].to_string().parse().unwrap();
            let mut m = merged(&stores, &c);
            let mut rest = Vec::new();
            while let Some(ev) = m.try_next().unwrap() {
                rest.push(id(&ev));
            }
            assert_eq!(of(&rest, "a"), of(&got[k + 1..], "a"), "after {k}");
            assert_eq!(of(&rest, "b"), of(&got[k + 1..], "b"), "after {k}");
        }
        // Live: a waiting stream wakes for a commit in either store.
        let end = m.cursor();
        rt.block_on(async {
            let waiter = tokio::spawn(async move {
                let mut out = Vec::new();
                while out.len() < 2 {
                    out.push(id(&m.next().await.unwrap()));
                }
                (out, m)
            });
            tokio::time::sleep(Duration::from_millis(50)).await;
            append(&hb, "b", &[100]).await;
            append(&ha, "a", &[100]).await;
            let (mut out, _m) = tokio::time::timeout(Duration::from_secs(10), waiter)
                .await
                .unwrap()
                .unwrap();
            out.sort();
            assert_eq!(out, ["a100", "b100"]);
        });
        // Closed stores end the stream once drained.
        let mut m = merged(&stores, &end);
        drop((ha, hb));
        sa.close().unwrap();
        sb.close().unwrap();
        rt.block_on(async {
            let mut n = 0;
            loop {
                match tokio::time::timeout(Duration::from_secs(10), m.next())
                    .await
                    .unwrap()
                {
                    Ok(_) => n += 1,
                    Err(TailError::Closed) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(n, 2, "the two live records, then the end");
        });
    }

    #[test]
    fn cursors_print_and_parse() {
        let c: Cursor = "audit=120:0,default=4096:3".parse().unwrap();
        assert_eq!(c.get("audit"), Some(Position::leaf(120)));
        assert_eq!(
            c.get("default"),
            Some(Position {
                leaf: 4096,
                record: 3
            })
        );
        assert_eq!(c.get("other"), None);
        assert_eq!(c.to_string(), "audit=120:0,default=4096:3");
        for bad in ["", "12:3", "a=12", "=1:2", "a=1:2,a=3:4", "a=1:2,"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?} parsed");
        }
    }
}
