//! Reads over the fleet: with `[sink.clickhouse]` configured, `GET /api/v1/query?source=clickhouse`
//! and the dashboard's search (its *Source* field) read the ClickHouse table every collector
//! exports into, so N collectors are one searchable store. The filters, the tenant scoping and
//! the access record are the local query's; the records are the rows turned back into stored
//! records and kept by the same `Filter::matches` (meshlog-sink's `clickhouse::query`).
//!
//! The completeness statement is per collector and log: which leaves ClickHouse holds, how
//! many of them match the reader's tenant, and for the collector answering, how many leaves it
//! committed that its sink has not exported yet.

use super::integrity::Ledgers;
use meshlog_query::FilterError;
use meshlog_query::params::{Order, QueryParams};
use meshlog_sink::clickhouse::config::ClickHouseConfig;
use meshlog_sink::clickhouse::query::{self as chq, Covered};
use serde::Serialize;
use serde_json::{Map, Value};

/// The parameter choosing what a search reads.
pub const SOURCE_PARAM: &str = "source";

/// What `source=clickhouse` reads: the sink's table, and this collector's id in it.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// `[sink.clickhouse]`.
    pub clickhouse: ClickHouseConfig,
    /// This collector's `CollectorId`.
    pub collector_id: String,
}

/// What a search reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This collector's store (the default).
    Local,
    /// The ClickHouse sink's table: every collector exporting there.
    ClickHouse,
}

/// The `source` parameter of `params` (`local`, the default, or `clickhouse`); `clickhouse`
/// without a configured sink is an error naming the parameter.
pub fn source(params: &[(String, String)], fleet: Option<&Fleet>) -> Result<Source, FilterError> {
    let Some((_, v)) = params.iter().rev().find(|(k, _)| k == SOURCE_PARAM) else {
        return Ok(Source::Local);
    };
    let bad = |expected| FilterError::BadValue {
        param: SOURCE_PARAM.into(),
        value: v.clone(),
        expected,
    };
    match v.as_str() {
        "" | "local" => Ok(Source::Local),
        "clickhouse" if fleet.is_some() => Ok(Source::ClickHouse),
        "clickhouse" => Err(bad(
            "local (this collector has no [sink.clickhouse] to read the fleet from)",
        )),
        _ => Err(bad("local or clickhouse")),
    }
}

/// The completeness statement of a search over ClickHouse.
#[derive(Debug, Clone, Serialize)]
pub struct FleetCompleteness {
    /// `"clickhouse"`.
    pub source: &'static str,
    /// `database.table`.
    pub table: String,
    /// Per collector and log, what the table holds.
    pub collectors: Vec<CollectorCoverage>,
    /// Whether the answer stopped at `limit` (more rows may match: narrow the filters).
    pub limit_reached: bool,
}

/// What ClickHouse holds of one collector's log.
#[derive(Debug, Clone, Serialize)]
pub struct CollectorCoverage {
    /// `CollectorId`.
    pub collector_id: String,
    /// The log (retention class; `""` without classes).
    pub log: String,
    /// Rows of the reader's scope (its tenant's, or all).
    pub rows: u64,
    /// Lowest and highest leaf exported.
    pub leaves: [u64; 2],
    /// Whether this is the collector answering.
    pub this_collector: bool,
    /// This collector only: the leaves its log has committed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committed_leaves: Option<u64>,
    /// This collector only: committed leaves past the highest exported one (its sink's lag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_exported_leaves: Option<u64>,
}

/// A search's records and its completeness statement.
#[derive(Debug, Clone)]
pub struct Found {
    /// The records, in the stored flat form.
    pub records: Vec<Map<String, Value>>,
    /// Rows ClickHouse sent before the filter.
    pub examined: u64,
    /// What the answer covers.
    pub completeness: FleetCompleteness,
}

/// Searches the fleet's table with `q` (already scoped to the reader's tenant); `ledgers` are
/// this collector's logs and their committed leaves.
pub async fn search(
    fleet: &Fleet,
    q: &QueryParams,
    ledgers: &Ledgers,
) -> Result<Found, meshlog_sink::clickhouse::Error> {
    let order = match q.order {
        Order::Oldest => chq::Order::Oldest,
        Order::Newest => chq::Order::Newest,
    };
    let mut records = Vec::new();
    let outcome = chq::search(&fleet.clickhouse, &q.filter, order, q.limit, |r| {
        records.push(r.clone());
        Ok(())
    })
    .await?;
    let collectors = outcome
        .covered
        .iter()
        .map(|c| coverage(c, fleet, ledgers))
        .collect();
    Ok(Found {
        records,
        examined: outcome.examined,
        completeness: FleetCompleteness {
            source: "clickhouse",
            table: format!("{}.{}", fleet.clickhouse.database, fleet.clickhouse.table),
            collectors,
            limit_reached: q.limit.is_some_and(|l| outcome.returned >= l),
        },
    })
}

fn coverage(c: &Covered, fleet: &Fleet, ledgers: &Ledgers) -> CollectorCoverage {
    let this = c.collector_id == fleet.collector_id;
    // Without retention classes the one log is exported as "".
    let committed = this
        .then(|| match ledgers.as_slice() {
            [(_, size)] if c.log.is_empty() => Some(*size),
            _ => ledgers.iter().find(|(n, _)| *n == c.log).map(|(_, s)| *s),
        })
        .flatten();
    CollectorCoverage {
        collector_id: c.collector_id.clone(),
        log: c.log.clone(),
        rows: c.rows,
        leaves: [c.leaves.0, c.leaves.1],
        this_collector: this,
        committed_leaves: committed,
        not_exported_leaves: committed.map(|n| n.saturating_sub(c.leaves.1 + 1)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fleet() -> Fleet {
        Fleet {
            clickhouse: ClickHouseConfig::new("http://127.0.0.1:1"),
            collector_id: "a".into(),
        }
    }

    fn p(v: &str) -> Vec<(String, String)> {
        vec![("service".into(), "x".into()), ("source".into(), v.into())]
    }

    #[test]
    fn the_source_parameter_is_local_by_default_and_clickhouse_only_with_a_sink() {
        let f = fleet();
        assert_eq!(source(&[], None).unwrap(), Source::Local);
        assert_eq!(source(&p("local"), Some(&f)).unwrap(), Source::Local);
        assert_eq!(
            source(&p("clickhouse"), Some(&f)).unwrap(),
            Source::ClickHouse
        );
        let e = source(&p("clickhouse"), None).unwrap_err();
        assert_eq!(e.parameter(), "source");
        assert!(e.to_string().contains("[sink.clickhouse]"), "{e}");
        assert_eq!(
            source(&p("s3"), Some(&f)).unwrap_err().parameter(),
            "source"
        );
    }

    #[test]
    fn this_collectors_unexported_leaves_are_stated() {
        let f = fleet();
        let c = |id: &str, log: &str| Covered {
            collector_id: id.into(),
            log: log.into(),
            rows: 7,
            leaves: (0, 9),
        };
        let one = vec![("default".to_owned(), 14)];
        let here = coverage(&c("a", ""), &f, &one);
        assert_eq!(
            (here.committed_leaves, here.not_exported_leaves),
            (Some(14), Some(4))
        );
        let other = coverage(&c("b", ""), &f, &one);
        assert!(!other.this_collector);
        assert_eq!(other.committed_leaves, None);
        let classes = vec![("audit".to_owned(), 10), ("debug".to_owned(), 30)];
        let here = coverage(&c("a", "debug"), &f, &classes);
        assert_eq!(here.not_exported_leaves, Some(20));
    }
}
