//! `meshlog sink check`: what ClickHouse holds for this collector, compared row by row with
//! the log it was exported from.
//!
//! For each log (retention class) the store is read from its first leaf with the store's
//! subscription, leaf range by leaf range, and each record is encoded exactly as the exporter
//! encodes it; ClickHouse's rows of the same range (without `FINAL`, so every copy counts) are
//! matched by `(LeafIndex, RecordIndex)`. Every difference is named:
//!
//! - **missing**: a record below the sink's cursor (acknowledged as exported) that ClickHouse
//!   does not have. Records at or after the cursor are *pending* (not yet exported), not missing;
//! - **extra**: a row with no record in the log (a leaf or record index the log does not have,
//!   or a log name this collector does not write);
//! - **altered**: a row whose columns differ from the record's encoding (the differing columns
//!   are named; `RecordHash` is the SHA-256 of the stored record, so a row rewritten together
//!   with its hash still differs in the rewritten column);
//! - **duplicate**: a record present more than once. A `ReplacingMergeTree` merges copies of one
//!   record eventually (`OPTIMIZE TABLE … FINAL` does it now); until then `count()` overcounts.
//!
//! ClickHouse is read before the store for each range: anything ClickHouse holds was committed
//! before, so a collector writing while the check runs cannot make a row look extra. Rows of
//! leaves retention has deleted cannot be compared and are counted as unchecked. Rows of other
//! collector ids are listed with their counts; their own collectors check them.

use super::Error;
use super::config::ClickHouseConfig;
use super::cursor::{self, Cursor};
use super::encoder::{self, Flavor, LegacyRow, LogRow, ModernRow, RowKey};
use super::schema;
use clickhouse::Client;
use meshlog_store::tail::{Position, Subscription, TailError, TailEvent, TailRecord};
use meshlog_tlog::keys::Keyring;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Leaves compared per round trip.
const CHUNK_LEAVES: u64 = 4096;

/// What is wrong with one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// In the log (below the cursor), not in ClickHouse.
    Missing,
    /// In ClickHouse, not in the log.
    Extra {
        /// Why it has no record.
        why: &'static str,
    },
    /// In both, with these columns different.
    Altered {
        /// Column names.
        columns: Vec<&'static str>,
    },
    /// In ClickHouse this many times.
    Duplicate {
        /// Copies.
        copies: usize,
    },
}

/// One row found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The log.
    pub log: String,
    /// Where.
    pub key: RowKey,
    /// The record's VM id and sequence (from the log, else from the row).
    pub vm_seq: Option<(String, u64)>,
    /// What.
    pub problem: Problem,
}

/// One log's comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogReport {
    /// The log (`""`: a store without classes).
    pub log: String,
    /// The sink's cursor: leaves below it were acknowledged as exported.
    pub cursor: u64,
    /// First and end leaf of the log that was compared.
    pub leaves: Option<(u64, u64)>,
    /// Records read from the log.
    pub records: u64,
    /// Rows read from ClickHouse (every copy).
    pub rows: u64,
    /// Records at or after the cursor that ClickHouse does not have yet.
    pub pending: u64,
    /// Rows in leaves retention deleted from the log, which cannot be compared.
    pub unchecked: u64,
    /// Leaves retention deleted before the check could read them.
    pub deleted_leaves: u64,
    /// Where the log could not be read past (a frame being written, or damage).
    pub store_end_note: Option<String>,
    /// Every row found wrong.
    pub findings: Vec<Finding>,
}

/// The whole check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// This collector's id.
    pub collector_id: String,
    /// `url/database.table`.
    pub target: String,
    /// The table's flavor name.
    pub flavor: String,
    /// Per log.
    pub logs: Vec<LogReport>,
    /// Rows of this collector under log names it does not have: `(log, rows)`.
    pub unknown_logs: Vec<(String, u64)>,
    /// Rows of other collectors: `(collector id, rows)`.
    pub other_collectors: Vec<(String, u64)>,
}

/// Tallies of findings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Missing rows.
    pub missing: u64,
    /// Extra rows (including those under unknown log names).
    pub extra: u64,
    /// Altered rows.
    pub altered: u64,
    /// Duplicated records.
    pub duplicate: u64,
}

impl Report {
    /// The tallies.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for f in self.logs.iter().flat_map(|l| &l.findings) {
            match f.problem {
                Problem::Missing => c.missing += 1,
                Problem::Extra { .. } => c.extra += 1,
                Problem::Altered { .. } => c.altered += 1,
                Problem::Duplicate { .. } => c.duplicate += 1,
            }
        }
        c.extra += self.unknown_logs.iter().map(|(_, n)| n).sum::<u64>();
        c
    }

    /// True when ClickHouse matches the log.
    pub fn matches(&self) -> bool {
        self.counts() == Counts::default()
    }

    /// The report as text, one line per finding.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "meshlog sink check: collector {} against {} ({})",
            self.collector_id, self.target, self.flavor
        )?;
        for l in &self.logs {
            let name = log_name(&l.log);
            let range = l.leaves.map_or_else(
                || "no leaves".to_owned(),
                |(a, b)| format!("leaves {a}..{b}"),
            );
            writeln!(
                out,
                "log {name}: {range}, sink cursor {}: {} records in the log, {} rows in ClickHouse, \
                 {} pending export",
                l.cursor, l.records, l.rows, l.pending
            )?;
            if l.deleted_leaves > 0 || l.unchecked > 0 {
                writeln!(
                    out,
                    "  {} leaves deleted by retention; {} rows of those leaves not checkable",
                    l.deleted_leaves, l.unchecked
                )?;
            }
            if let Some(n) = &l.store_end_note {
                writeln!(out, "  note: {n}")?;
            }
            for f in &l.findings {
                let at = format!(
                    "log {name} leaf {} record {}{}",
                    f.key.leaf,
                    f.key.record,
                    f.vm_seq
                        .as_ref()
                        .map(|(vm, seq)| format!(" (vm {vm} seq {seq})"))
                        .unwrap_or_default()
                );
                match &f.problem {
                    Problem::Missing => writeln!(
                        out,
                        "  MISSING   {at}: in the log and acknowledged as exported, not in ClickHouse"
                    )?,
                    Problem::Extra { why } => writeln!(out, "  EXTRA     {at}: {why}")?,
                    Problem::Altered { columns } => writeln!(
                        out,
                        "  ALTERED   {at}: {} differ{} from the log",
                        columns.join(", "),
                        if columns.len() == 1 { "s" } else { "" }
                    )?,
                    Problem::Duplicate { copies } => writeln!(
                        out,
                        "  DUPLICATE {at}: {copies} copies in ClickHouse (OPTIMIZE TABLE … FINAL \
                         merges copies of one record)"
                    )?,
                }
            }
        }
        for (log, n) in &self.unknown_logs {
            writeln!(
                out,
                "EXTRA     {n} rows under log {}: this collector has no such log",
                log_name(log)
            )?;
        }
        for (id, n) in &self.other_collectors {
            writeln!(
                out,
                "other collector {id}: {n} rows (not checked here: run `meshlog sink check` there)"
            )?;
        }
        let c = self.counts();
        if self.matches() {
            let rows: u64 = self.logs.iter().map(|l| l.rows).sum();
            writeln!(
                out,
                "RESULT: MATCH: every one of {rows} rows matches the log, none missing, extra, \
                 altered or duplicated"
            )
        } else {
            writeln!(
                out,
                "RESULT: MISMATCH: {} missing, {} extra, {} altered, {} duplicated",
                c.missing, c.extra, c.altered, c.duplicate
            )
        }
    }
}

fn log_name(log: &str) -> &str {
    if log.is_empty() { "default" } else { log }
}

/// One log to check: its name and store directory.
#[derive(Debug, Clone)]
pub struct LogDir {
    /// The retention class, `""` for the data directory itself.
    pub log: String,
    /// The store directory.
    pub dir: PathBuf,
}

/// Checks every log in `logs` against ClickHouse.
pub async fn check(
    cfg: &ClickHouseConfig,
    collector_id: &str,
    sink_dir: &Path,
    logs: &[LogDir],
    keyring: Option<Arc<Keyring>>,
) -> Result<Report, Error> {
    let client = super::connect(cfg)?;
    let flavor = schema::require_table(&client, &cfg.database, &cfg.table).await?;
    let target = cursor::target(&cfg.url, &cfg.database, &cfg.table);
    let mut report = Report {
        collector_id: collector_id.to_owned(),
        target: target.clone(),
        flavor: flavor.name().to_owned(),
        ..Report::default()
    };
    let groups = client
        .query(&format!(
            "SELECT CollectorId, Log, count() FROM `{}` GROUP BY CollectorId, Log ORDER BY CollectorId, Log",
            cfg.table
        ))
        .fetch_all::<(String, String, u64)>()
        .await
        .map_err(Error::ClickHouse)?;
    let mut others: BTreeMap<String, u64> = BTreeMap::new();
    for (id, log, n) in groups {
        if id != collector_id {
            *others.entry(id).or_default() += n;
        } else if !logs.iter().any(|l| l.log == log) {
            report.unknown_logs.push((log, n));
        }
    }
    report.other_collectors = others.into_iter().collect();
    for l in logs {
        let cursor = match Cursor::read(sink_dir, &l.log)? {
            Some(c) if c.target == target && c.collector_id == collector_id => c.next_leaf,
            _ => 0,
        };
        let checker = LogCheck {
            client: &client,
            table: &cfg.table,
            flavor,
            collector_id,
            log: &l.log,
            cursor,
        };
        report
            .logs
            .push(checker.run(&l.dir, keyring.clone()).await?);
    }
    Ok(report)
}

struct LogCheck<'a> {
    client: &'a Client,
    table: &'a str,
    flavor: Flavor,
    collector_id: &'a str,
    log: &'a str,
    cursor: u64,
}

impl LogCheck<'_> {
    async fn run(&self, dir: &Path, keyring: Option<Arc<Keyring>>) -> Result<LogReport, Error> {
        let mut rep = LogReport {
            log: self.log.to_owned(),
            cursor: self.cursor,
            ..LogReport::default()
        };
        let (ch_max, ch_rows) = self.summary().await?;
        // Read the log as far as anything claims it goes: the cursor, or ClickHouse's rows.
        let bound = if ch_rows > 0 {
            self.cursor.max(ch_max.saturating_add(1))
        } else {
            self.cursor
        };
        let mut sub = Subscription::at_rest(dir, keyring, bound, Position::START);
        let mut carry: Option<TailEvent> = None;
        let mut store_done = false;
        let mut first_leaf: Option<u64> = None;
        let mut end_leaf = 0u64;
        let mut next = 0u64;
        while next < bound {
            // Skip empty stretches: the next leaf either side has.
            let store_next = match &carry {
                Some(TailEvent::Record(r)) => Some(r.position.leaf),
                Some(TailEvent::Gap { from, .. }) => Some(from.leaf),
                None if store_done => None,
                None => match self.next_event(&mut sub, &mut rep)? {
                    Some(ev) => {
                        let leaf = match &ev {
                            TailEvent::Record(r) => r.position.leaf,
                            TailEvent::Gap { from, .. } => from.leaf,
                        };
                        carry = Some(ev);
                        Some(leaf)
                    }
                    None => {
                        store_done = true;
                        None
                    }
                },
            };
            let ch_next = self.next_row_leaf(next).await?;
            let Some(a) = [store_next, ch_next].into_iter().flatten().min() else {
                break;
            };
            if a >= bound {
                break;
            }
            let b = a.saturating_add(CHUNK_LEAVES).min(bound);
            // ClickHouse first: what it holds was committed to the log before.
            let mut held = self.rows(a, b).await?;
            rep.rows += held.values().map(|v| v.len() as u64).sum::<u64>();
            let mut gaps: Vec<(u64, u64)> = Vec::new();
            loop {
                let ev = match carry.take() {
                    Some(ev) => ev,
                    None if store_done => break,
                    None => match self.next_event(&mut sub, &mut rep)? {
                        Some(ev) => ev,
                        None => {
                            store_done = true;
                            break;
                        }
                    },
                };
                match ev {
                    TailEvent::Record(r) if r.position.leaf >= b => {
                        carry = Some(TailEvent::Record(r));
                        break;
                    }
                    TailEvent::Record(r) => {
                        first_leaf.get_or_insert(r.position.leaf);
                        end_leaf = end_leaf.max(r.position.leaf + 1);
                        rep.records += 1;
                        self.compare(&r, &mut held, &mut rep);
                    }
                    TailEvent::Gap { from, to } => {
                        if to.leaf >= bound {
                            // Nothing stored from here on: the log ends.
                            store_done = true;
                            break;
                        }
                        rep.deleted_leaves += to.leaf.saturating_sub(from.leaf);
                        gaps.push((from.leaf, to.leaf));
                        if to.leaf >= b {
                            // Resume after the gap in the next round.
                            carry = None;
                            break;
                        }
                    }
                }
            }
            // What is left in ClickHouse has no record in the log.
            for (key, copies) in held {
                if gaps.iter().any(|(g0, g1)| (*g0..*g1).contains(&key.leaf)) {
                    rep.unchecked += copies.len() as u64;
                    continue;
                }
                let row = copies.first();
                rep.findings.push(Finding {
                    log: self.log.to_owned(),
                    key: key.clone(),
                    vm_seq: row.and_then(|r| r.sequence.map(|s| (r.vm_id.clone(), s))),
                    problem: Problem::Extra {
                        why: if key.leaf >= end_leaf.max(self.cursor) && store_done {
                            "in ClickHouse, but the log has no such leaf"
                        } else {
                            "in ClickHouse, but the log has no such record"
                        },
                    },
                });
            }
            next = b;
        }
        // Records the log has past the bound are pending export.
        if !store_done {
            let mut rest = Subscription::at_rest(dir, None, u64::MAX, Position::leaf(bound));
            rep.pending += rest.skip_to_live().unwrap_or(0);
        }
        rep.leaves = first_leaf.map(|f| (f, end_leaf));
        rep.findings.sort_by(|x, y| x.key.cmp(&y.key));
        Ok(rep)
    }

    /// The next event of the log; `None` at its end (a damaged or half-written frame also ends
    /// it, with a note).
    fn next_event(
        &self,
        sub: &mut Subscription,
        rep: &mut LogReport,
    ) -> Result<Option<TailEvent>, Error> {
        match sub.try_next() {
            Ok(ev) => Ok(ev),
            Err(TailError::Damaged {
                path,
                offset,
                reason,
            }) => {
                rep.store_end_note = Some(format!(
                    "the log reads only to leaf {}: {} at offset {offset}: {reason} (a frame being \
                     written, or damage: `meshlog verify` tells)",
                    sub.position().leaf,
                    path.display()
                ));
                Ok(None)
            }
            Err(TailError::Closed) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn compare(
        &self,
        r: &TailRecord,
        held: &mut BTreeMap<RowKey, Vec<LogRow>>,
        rep: &mut LogReport,
    ) {
        let key = RowKey {
            leaf: r.position.leaf,
            record: r.position.record,
        };
        let want = encoder::encode(self.collector_id, self.log, key.clone(), &r.json);
        let vm_seq = want.sequence.map(|s| (want.vm_id.clone(), s));
        let finding = |problem| Finding {
            log: self.log.to_owned(),
            key: key.clone(),
            vm_seq: vm_seq.clone(),
            problem,
        };
        match held.remove(&key) {
            None if key.leaf < self.cursor => rep.findings.push(finding(Problem::Missing)),
            None => rep.pending += 1,
            Some(copies) => {
                if copies.len() > 1 {
                    rep.findings.push(finding(Problem::Duplicate {
                        copies: copies.len(),
                    }));
                }
                let mut columns: Vec<&'static str> = Vec::new();
                for c in &copies {
                    for col in c.differences(&want) {
                        if !columns.contains(&col) {
                            columns.push(col);
                        }
                    }
                }
                if !columns.is_empty() {
                    rep.findings.push(finding(Problem::Altered { columns }));
                }
            }
        }
    }

    fn filter(&self) -> String {
        format!("FROM `{}` WHERE CollectorId = ? AND Log = ?", self.table)
    }

    /// ClickHouse's highest leaf and row count for this log.
    async fn summary(&self) -> Result<(u64, u64), Error> {
        let (max, n) = self
            .client
            .query(&format!("SELECT max(LeafIndex), count() {}", self.filter()))
            .bind(self.collector_id)
            .bind(self.log)
            .fetch_one::<(u64, u64)>()
            .await
            .map_err(Error::ClickHouse)?;
        Ok((max, n))
    }

    /// ClickHouse's first leaf at or after `from`.
    async fn next_row_leaf(&self, from: u64) -> Result<Option<u64>, Error> {
        let (min, n) = self
            .client
            .query(&format!(
                "SELECT min(LeafIndex), count() {} AND LeafIndex >= ?",
                self.filter()
            ))
            .bind(self.collector_id)
            .bind(self.log)
            .bind(from)
            .fetch_one::<(u64, u64)>()
            .await
            .map_err(Error::ClickHouse)?;
        Ok((n > 0).then_some(min))
    }

    /// ClickHouse's rows of leaves `from..to`, every copy, by key.
    async fn rows(&self, from: u64, to: u64) -> Result<BTreeMap<RowKey, Vec<LogRow>>, Error> {
        let sql = format!(
            "SELECT ?fields {} AND LeafIndex >= ? AND LeafIndex < ?",
            self.filter()
        );
        let q = || {
            self.client
                .query(&sql)
                .bind(self.collector_id)
                .bind(self.log)
                .bind(from)
                .bind(to)
        };
        let rows: Vec<LogRow> = match self.flavor {
            Flavor::Modern => q()
                .fetch_all::<ModernRow>()
                .await
                .map_err(Error::ClickHouse)?
                .into_iter()
                .map(LogRow::from)
                .collect(),
            Flavor::Legacy => q()
                .fetch_all::<LegacyRow>()
                .await
                .map_err(Error::ClickHouse)?
                .into_iter()
                .map(LogRow::from)
                .collect(),
        };
        let mut by_key: BTreeMap<RowKey, Vec<LogRow>> = BTreeMap::new();
        for r in rows {
            by_key.entry(r.key()).or_default().push(r);
        }
        Ok(by_key)
    }
}
