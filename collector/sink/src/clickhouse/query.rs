//! Searching ClickHouse with `meshlog query`'s filters (`meshlog query --clickhouse`): several
//! collectors' exports as one searchable store.
//!
//! The filters mean exactly what they mean on the local store because the same code decides:
//! ClickHouse narrows the rows with what its sort key and columns answer cheaply (time range,
//! service, tenant, trace id), each row is turned back into the stored record's flat form
//! ([`record`]), and [`Filter::matches`] keeps or drops it. Rows are read with `FINAL`, so a
//! copy of a record not merged yet is returned once.
//!
//! Records come in time order (`Timestamp`, then collector, log and position), not in one
//! store's arrival order: across collectors there is no other common order.
//!
//! The completeness statement says what the answer covers: per collector and log, the leaves
//! ClickHouse holds. Records a collector committed after its sink's last acknowledged insert
//! are not there yet; on that collector, `meshlog sink check` counts them as pending.

use super::Error;
use super::config::ClickHouseConfig;
use super::encoder::{Flavor, LegacyRow, LogRow, ModernRow};
use super::schema;
use clickhouse::Client;
use meshlog_query::filter::{Filter, Record};
use serde_json::Value;

/// Oldest or newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By time, ascending.
    Oldest,
    /// By time, descending.
    Newest,
}

/// What ClickHouse holds of one collector's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Covered {
    /// `CollectorId`.
    pub collector_id: String,
    /// `Log` (`""`: a collector without retention classes).
    pub log: String,
    /// Rows (after merging copies; only the search's tenants' when it names tenants).
    pub rows: u64,
    /// Lowest and highest leaf.
    pub leaves: (u64, u64),
}

/// What a search returned besides its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Records given to `emit`.
    pub returned: u64,
    /// Rows ClickHouse sent after its narrowing (before the filter).
    pub examined: u64,
    /// Per collector and log, what the table holds.
    pub covered: Vec<Covered>,
}

/// The record a row was exported from, in the stored flat form (what `meshlog query` prints).
/// Attribute values the exporter wrote as JSON text (numbers, booleans) are numbers and
/// booleans again; `observed_time_unix_nano` is not in the table.
pub fn record(r: &LogRow) -> Record {
    let mut m = Record::new();
    m.insert("time_unix_nano".into(), r.timestamp_ns.into());
    let mut put = |k: &str, v: &str| {
        if !v.is_empty() {
            m.insert(k.to_owned(), Value::String(v.to_owned()));
        }
    };
    put("trace_id", &r.trace_id);
    put("span_id", &r.span_id);
    put("severity_text", &r.severity_text);
    put("body", &r.body);
    put("event_name", &r.event_name);
    put("scope.name", &r.scope_name);
    put("scope.version", &r.scope_version);
    if r.severity_number > 0 {
        m.insert("severity_number".into(), r.severity_number.into());
    }
    if r.trace_flags > 0 {
        m.insert("flags".into(), r.trace_flags.into());
    }
    for (k, v) in &r.resource_attributes {
        m.insert(format!("resource.{k}"), typed(v));
    }
    for (k, v) in &r.log_attributes {
        m.insert(k.clone(), typed(v));
    }
    m
}

fn typed(v: &str) -> Value {
    match serde_json::from_str::<Value>(v) {
        Ok(n @ (Value::Number(_) | Value::Bool(_))) => n,
        _ => Value::String(v.to_owned()),
    }
}

/// Runs `filter` over the table, oldest or newest first, at most `limit` records, each given
/// to `emit`.
pub async fn search(
    cfg: &ClickHouseConfig,
    filter: &Filter,
    order: Order,
    limit: Option<u64>,
    mut emit: impl FnMut(&Record) -> std::io::Result<()>,
) -> Result<Outcome, Error> {
    let client = super::connect(cfg)?;
    let flavor = schema::require_table(&client, &cfg.database, &cfg.table).await?;
    let covered = coverage(&client, &cfg.table, &filter.tenant).await?;
    let (cond, time) = narrowing(filter, flavor);
    let dir = match order {
        Order::Oldest => "ASC",
        Order::Newest => "DESC",
    };
    let sql = format!(
        "SELECT ?fields FROM `{}` FINAL WHERE {cond} ORDER BY Timestamp {dir}, CollectorId {dir}, \
         Log {dir}, LeafIndex {dir}, RecordIndex {dir}",
        cfg.table
    );
    let mut q = client.query(&sql);
    if let Some(since) = time.0 {
        q = q.bind(since);
    }
    if let Some(until) = time.1 {
        q = q.bind(until);
    }
    for list in [&filter.service, &filter.tenant, &filter.trace_id] {
        if !list.is_empty() {
            q = q.bind(list.as_slice());
        }
    }
    let limit = limit.unwrap_or(u64::MAX);
    let mut out = Outcome {
        returned: 0,
        examined: 0,
        covered,
    };
    let mut keep = |row: LogRow, out: &mut Outcome| -> Result<bool, Error> {
        out.examined += 1;
        let rec = record(&row);
        if filter.matches(&rec) {
            emit(&rec).map_err(|source| Error::State {
                path: "stdout".into(),
                source,
            })?;
            out.returned += 1;
        }
        Ok(out.returned < limit)
    };
    match flavor {
        Flavor::Modern => {
            let mut cur = q.fetch::<ModernRow>().map_err(Error::ClickHouse)?;
            while let Some(r) = cur.next().await.map_err(Error::ClickHouse)? {
                if !keep(r.into(), &mut out)? {
                    break;
                }
            }
        }
        Flavor::Legacy => {
            let mut cur = q.fetch::<LegacyRow>().map_err(Error::ClickHouse)?;
            while let Some(r) = cur.next().await.map_err(Error::ClickHouse)? {
                if !keep(r.into(), &mut out)? {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// The SQL condition ClickHouse can answer cheaply, and which time bounds it binds (in this
/// order, then the service, tenant and trace id lists when not empty).
fn narrowing(filter: &Filter, flavor: Flavor) -> (String, (Option<u64>, Option<u64>)) {
    let mut cond = vec!["1".to_owned()];
    let ts = |op: &str| match flavor {
        Flavor::Modern => format!("Timestamp {op} fromUnixTimestamp64Nano(toInt64(?))"),
        Flavor::Legacy => format!("Timestamp {op} ?"),
    };
    if filter.since_ns.is_some() {
        cond.push(ts(">="));
    }
    if filter.until_ns.is_some() {
        cond.push(ts("<"));
    }
    for (list, col) in [
        (&filter.service, "ServiceName"),
        (&filter.tenant, "Tenant"),
        (&filter.trace_id, "TraceId"),
    ] {
        if !list.is_empty() {
            cond.push(format!("has(?, {col})"));
        }
    }
    (cond.join(" AND "), (filter.since_ns, filter.until_ns))
}

/// Per collector and log: the leaf range exported, and its rows (only those of `tenants` when
/// the search is limited to tenants: a tenant's reader learns how far each log is exported,
/// which the local completeness statement tells it too, but not how many rows others have).
async fn coverage(client: &Client, table: &str, tenants: &[String]) -> Result<Vec<Covered>, Error> {
    let count = if tenants.is_empty() {
        "count()"
    } else {
        "countIf(has(?, Tenant))"
    };
    let mut q = client.query(&format!(
        "SELECT CollectorId, Log, {count}, min(LeafIndex), max(LeafIndex) FROM `{table}` FINAL \
         GROUP BY CollectorId, Log ORDER BY CollectorId, Log"
    ));
    if !tenants.is_empty() {
        q = q.bind(tenants);
    }
    let rows = q
        .fetch_all::<(String, String, u64, u64, u64)>()
        .await
        .map_err(Error::ClickHouse)?;
    Ok(rows
        .into_iter()
        .map(|(collector_id, log, rows, lo, hi)| Covered {
            collector_id,
            log,
            rows,
            leaves: (lo, hi),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::clickhouse::encoder::{RowKey, encode};

    #[test]
    fn a_row_turns_back_into_the_record_the_filters_see() {
        let json = br#"{"time_unix_nano":5,"severity_number":9,"severity_text":"INFO","trace_id":"ab","http.response.status_code":503,"url.path":"/a","ok":true,"resource.service.name":"shop","resource.meshlog.tenant":"t1"}"#;
        let row = encode("c", "", RowKey { leaf: 1, record: 0 }, json);
        let rec = record(&row);
        let orig: Record = serde_json::from_slice(json).unwrap();
        assert_eq!(rec, orig);
        let f = Filter::from_params([("status", "5xx"), ("service", "shop")], 10).unwrap();
        assert!(f.matches(&rec));
        let (cond, _) = narrowing(&f, Flavor::Legacy);
        assert_eq!(cond, "1 AND has(?, ServiceName)");
    }
}
