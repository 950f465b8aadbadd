//! `GET /api/v1/summary`: what the dashboard's overview shows besides the aggregate API's
//! counts, in one pass over the matching records: latency percentiles, redactions by kind,
//! sampling (records kept, the requests they stand for, and what the VMs' tallies say was
//! dropped) and the delivery account per VM (the completeness statement's gaps and tallies).
//!
//! The parameters are the query API's filters (`since=1h`, `service=…`); tenant rules and the
//! audit are the query API's ([`super::api`]).

use super::ReadSource;
use meshlog_query::QueryError;
use meshlog_query::complete::Completeness;
use meshlog_query::params::QueryParams;
use meshlog_query::scan::ScanOptions;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The access record event of a request.
const HTTP_EVENT: &str = "meshlog.http.access";
/// A VM's periodic sampling tally.
const TALLY_EVENT: &str = "meshlog.sampling.tally";

/// Latency of the requests, milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Requests with a duration.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Requests per bucket: `(upper bound ms, count)`, the last bound infinite (`None`).
    pub histogram: Vec<(Option<f64>, u64)>,
}

/// Sampling: what was kept and what the VMs' tallies say was dropped.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sampling {
    /// Stored request records.
    pub kept_records: u64,
    /// The requests those records stand for (the sum of `meshlog.sampling.adjusted_count`,
    /// 1 where absent).
    pub adjusted_total: f64,
    /// From the tallies: requests decided.
    pub tally_seen: u64,
    /// From the tallies: kept.
    pub tally_kept: u64,
    /// From the tallies: the requests the VMs saw, estimated (`kept.adjusted` plus
    /// `dropped.rate_cap.adjusted`; health checks excluded).
    pub tally_estimated: u64,
    /// From the tallies: dropped, per reason (`sampled`, `rate_cap`, `health_check`).
    pub tally_dropped: BTreeMap<String, u64>,
}

/// The overview's numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Records matched (any event).
    pub records: u64,
    /// Oldest and newest record time (Unix ns) among them.
    pub first_unix_nano: Option<u64>,
    /// See `first_unix_nano`.
    pub last_unix_nano: Option<u64>,
    /// Request records.
    pub requests: u64,
    /// Latency of the requests.
    pub latency: Latency,
    /// Values redacted, per detector kind (`meshlog.redacted.<kind>` summed).
    pub redactions: BTreeMap<String, u64>,
    /// Sampling.
    pub sampling: Sampling,
    /// The completeness statement (per store and per VM: gaps, tallies).
    pub completeness: Completeness,
}

fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// Upper bounds of the latency histogram, ms.
const BOUNDS_MS: [f64; 8] = [1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0];

/// The summary of the records of `source` matching `q` (already tenant-scoped).
pub fn summarize(source: &ReadSource, q: &QueryParams) -> Result<Summary, QueryError> {
    let mut s = Summary::default();
    let mut durations = Vec::new();
    let mut q = q.clone();
    q.limit = None;
    q.order = meshlog_query::params::Order::Oldest;
    let listing = meshlog_query::records::list(
        &source.data_dir,
        source.keys.as_ref(),
        &q,
        &ScanOptions::default(),
        |_, r| {
            s.records += 1;
            if let Some(t) = r.get("time_unix_nano").and_then(Value::as_u64) {
                s.first_unix_nano = Some(s.first_unix_nano.map_or(t, |f| f.min(t)));
                s.last_unix_nano = Some(s.last_unix_nano.map_or(t, |l| l.max(t)));
            }
            let event = r.get("event_name").and_then(Value::as_str).unwrap_or("");
            for (k, v) in &r {
                if let Some(kind) = k.strip_prefix("meshlog.redacted.") {
                    *s.redactions.entry(kind.to_owned()).or_default() +=
                        num(Some(v)).unwrap_or(0.0) as u64;
                }
            }
            if event == TALLY_EVENT {
                let get = |k: &str| num(r.get(k)).unwrap_or(0.0) as u64;
                s.sampling.tally_seen += get("meshlog.sampling.seen");
                s.sampling.tally_kept += get("meshlog.sampling.kept");
                s.sampling.tally_estimated += get("meshlog.sampling.kept.adjusted")
                    + get("meshlog.dropped.rate_cap.adjusted");
                for reason in ["sampled", "rate_cap", "health_check"] {
                    *s.sampling
                        .tally_dropped
                        .entry(reason.to_owned())
                        .or_default() += get(&format!("meshlog.dropped.{reason}"));
                }
            } else if event == HTTP_EVENT {
                s.requests += 1;
                s.sampling.kept_records += 1;
                s.sampling.adjusted_total +=
                    num(r.get("meshlog.sampling.adjusted_count")).unwrap_or(1.0);
                if let Some(d) = num(r.get("meshlog.duration_ns")) {
                    durations.push(d / 1e6);
                }
            }
            Ok(())
        },
    )?;
    durations.sort_by(f64::total_cmp);
    let mut histogram: Vec<(Option<f64>, u64)> = BOUNDS_MS.iter().map(|b| (Some(*b), 0)).collect();
    histogram.push((None, 0));
    for d in &durations {
        let i = BOUNDS_MS
            .iter()
            .position(|b| d <= b)
            .unwrap_or(BOUNDS_MS.len());
        if let Some(h) = histogram.get_mut(i) {
            h.1 += 1;
        }
    }
    s.latency = Latency {
        count: durations.len() as u64,
        p50_ms: percentile(&durations, 0.5),
        p90_ms: percentile(&durations, 0.9),
        p99_ms: percentile(&durations, 0.99),
        max_ms: durations.last().copied().unwrap_or_default(),
        histogram,
    };
    s.completeness = listing.outcome.completeness;
    Ok(s)
}
