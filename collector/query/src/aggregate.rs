//! `--count` and `--group-by KEY [--every 1m]`: counts of the matching records, per value of
//! a key and per time bucket (what the dashboard's charts need).

use crate::filter::{Record, field, value_str};
use crate::index::SegmentIndex;
use crate::index::counts;
use crate::params::QueryParams;
use crate::scan::{self, Flow, QueryError, ScanOptions, ScanOutcome, time_of};
use meshlog_format::encryption::DataKeys;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Start of the time bucket (with `every`), RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The same, Unix ns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_unix_nano: Option<u64>,
    /// The value of the group-by key (`null` when a record has none; absent without
    /// `group-by`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub key: Option<Option<String>>,
    /// Matching records.
    pub count: u64,
}

/// A present `key` (even `null`) is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// An aggregate's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Aggregate {
    /// The group-by key, as asked.
    pub group_by: Option<String>,
    /// The bucket length, ns.
    pub every_ns: Option<u64>,
    /// All matching records.
    pub total: u64,
    /// Counts, by time then key.
    pub groups: Vec<Group>,
    /// What was read, and the completeness statement.
    #[serde(flatten)]
    pub outcome: ScanOutcome,
}

/// The value a group-by `key` takes in `record`: the filter names (`service`, `namespace`,
/// `tenant`, `status`, `status-class`, `method`, `route`, `principal`, `client`, `trace-id`,
/// `request-id`, `enduser`) or any attribute.
pub fn group_value(record: &Record, key: &str) -> Option<String> {
    let get = |k: &str| record.get(k).map(|v| value_str(v).into_owned());
    match key.replace('_', "-").as_str() {
        "service" => get(field::SERVICE),
        "namespace" => get(field::NAMESPACE).or_else(|| get(field::K8S_NAMESPACE)),
        "tenant" => get(field::TENANT),
        "status" => get(field::STATUS),
        "status-class" => record
            .get(field::STATUS)
            .and_then(Value::as_i64)
            .map(|c| format!("{}xx", c / 100)),
        "method" => get(field::METHOD),
        "route" => get(field::ROUTE),
        "principal" => get(field::PRINCIPAL),
        "client" => get(field::CLIENT),
        "trace-id" => get(field::TRACE_ID),
        "request-id" => get(field::REQUEST_ID),
        "enduser" => get(field::ENDUSER),
        _ => get(key),
    }
}

/// Counts the records of `data_dir` matching `q`.
pub fn aggregate(
    data_dir: &Path,
    keys: Option<&DataKeys>,
    q: &QueryParams,
    opts: &ScanOptions,
) -> Result<Aggregate, QueryError> {
    let mut counts: BTreeMap<(Option<u64>, Option<String>), u64> = BTreeMap::new();
    let mut total = 0u64;
    // What the indexes' counts answer (the minutes the time range covers whole, when the
    // filter and group-by use only what they hold); the scan reads the rest.
    let plan = if opts.no_index { None } else { counts::plan(q) };
    let mut from_index: BTreeMap<(Option<u64>, Option<String>), u64> = BTreeMap::new();
    let mut counted = |idx: &SegmentIndex| {
        let covered = plan?;
        let mut rows = Vec::new();
        idx.counts
            .as_ref()?
            .each_match(&q.filter, q, covered, |b, k, n| rows.push((b, k, n)))?;
        for (b, k, n) in rows {
            *from_index.entry((b, k)).or_default() += n;
        }
        Some(covered)
    };
    let outcome = scan::scan_counted(data_dir, keys, &q.filter, opts, &mut counted, |_, r| {
        let bucket = q.every_ns.map(|e| time_of(&r) / e * e);
        let key = q.group_by.as_deref().and_then(|k| group_value(&r, k));
        *counts.entry((bucket, key)).or_default() += 1;
        total += 1;
        Ok(Flow::More)
    })?;
    for (k, n) in from_index {
        *counts.entry(k).or_default() += n;
        total += n;
    }
    let groups = counts
        .into_iter()
        .map(|((bucket, key), count)| Group {
            time: bucket.map(meshlog_format::time::rfc3339),
            time_unix_nano: bucket,
            key: q.group_by.as_ref().map(|_| key),
            count,
        })
        .collect();
    Ok(Aggregate {
        group_by: q.group_by.clone(),
        every_ns: q.every_ns,
        total,
        groups,
        outcome,
    })
}
