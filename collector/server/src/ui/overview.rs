//! The overview (`/ui`): records per second, requests by service and by status class over time
//! (the aggregate API's counts, drawn as SVG), latency, redactions by kind, sampling kept and
//! dropped with the adjusted totals, and the delivery account per VM ([`crate::query::summary`]).
//! `since` defaults to 15 minutes; every filter of the query API applies.

use super::chart::{self, Series};
use super::{Failure, Shown, page, scoped_query};
use crate::AppState;
use crate::auth::Principal;
use maud::html;
use meshlog_query::aggregate::{Aggregate, aggregate};
use meshlog_query::params::QueryParams;
use meshlog_query::scan::ScanOptions;
use std::collections::BTreeMap;

/// The overview's range when none is given.
const DEFAULT_SINCE: &str = "15m";
/// Buckets across the range.
const BUCKETS: u64 = 30;
const SECOND: u64 = 1_000_000_000;

super::audited_view!("/ui");

/// Counts per bucket for each group: (bucket starts, series).
fn series(a: &Aggregate, starts: &[u64]) -> Vec<Series> {
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for g in &a.groups {
        let key = g
            .key
            .clone()
            .flatten()
            .unwrap_or_else(|| "(none)".to_owned());
        let row = by.entry(key).or_insert_with(|| vec![0.0; starts.len()]);
        if let Some(i) = g
            .time_unix_nano
            .and_then(|t| starts.iter().position(|s| *s == t))
            && let Some(v) = row.get_mut(i)
        {
            *v += g.count as f64;
        }
    }
    by.into_iter()
        .map(|(name, values)| Series { name, values })
        .collect()
}

async fn build(
    state: &AppState,
    principal: &Principal,
    params: &[(String, String)],
) -> Result<Shown, Failure> {
    let mut params = params.to_vec();
    if !params.iter().any(|(k, v)| k == "since" && !v.is_empty()) {
        params.retain(|(k, _)| k != "since");
        params.push(("since".into(), DEFAULT_SINCE.into()));
    }
    let q = scoped_query(state, principal, &params, &[])?;
    let source = state.read.clone().ok_or_else(Failure::unavailable)?;
    let now = state.pipeline.now_unix_nano();
    let until = q.filter.until_ns.unwrap_or(now).min(now);
    let since = q
        .filter
        .since_ns
        .unwrap_or(until.saturating_sub(900 * SECOND));
    let window = until.saturating_sub(since).max(SECOND);
    let every = (window / BUCKETS).div_ceil(SECOND).max(1) * SECOND;
    let first = since / every * every;
    let starts: Vec<u64> = (0..)
        .map(|i| first + i * every)
        .take_while(|t| *t <= until)
        .collect();
    let requests = |group: &str| -> Result<QueryParams, Failure> {
        let mut r = q.clone();
        r.parse_param("where", "event_name=meshlog.http.access", now)
            .map_err(|e| Failure::bad(&e))?;
        r.parse_param("every", &format!("{}s", every / SECOND), now)
            .map_err(|e| Failure::bad(&e))?;
        r.group_by = Some(group.to_owned());
        Ok(r)
    };
    let by_service = requests("service")?;
    let by_status = requests("status-class")?;
    let mut all = q.clone();
    all.every_ns = Some(every);
    let src = source.clone();
    let computed = tokio::task::spawn_blocking(move || {
        let opts = ScanOptions::default();
        let keys = src.keys.as_ref();
        Ok::<_, meshlog_query::QueryError>((
            aggregate(&src.data_dir, keys, &all, &opts)?,
            aggregate(&src.data_dir, keys, &by_service, &opts)?,
            aggregate(&src.data_dir, keys, &by_status, &opts)?,
            crate::query::summary::summarize(&src, &q)?,
        ))
    })
    .await
    .map_err(Failure::internal)?
    .map_err(|e| match e {
        meshlog_query::QueryError::Param(p) => Failure::bad(&p),
        other => Failure::internal(other),
    })?;
    let (all, svc, status, summary) = computed;
    let labels: Vec<String> = starts
        .iter()
        .map(|t| {
            let s = meshlog_format::time::rfc3339(*t);
            s.get(11..19).map(str::to_owned).unwrap_or(s)
        })
        .collect();
    let mut per_second = series(&all, &starts);
    for s in &mut per_second {
        s.name = "records/s".into();
        for v in &mut s.values {
            *v /= (every / SECOND) as f64;
        }
    }
    let rate = all.total as f64 / (window as f64 / SECOND as f64);
    let l = &summary.latency;
    let sampling = &summary.sampling;
    let dropped: u64 = sampling.tally_dropped.values().sum();
    let markup = html! {
        (super::filter_form("/ui", &params, "Show"))
        p.muted { "From " (meshlog_format::time::rfc3339(since)) " to " (meshlog_format::time::rfc3339(until)) ", buckets of " (every / SECOND) " s." }
        div.grid {
            section.card aria-labelledby="h-rate" {
                h2 id="h-rate" { "Records per second" }
                p.stat data-metric="records" { (format!("{rate:.2}")) }
                p.muted { (all.total) " records in the range, " (summary.requests) " of them requests." }
                (chart::lines("Records per second", &labels, &per_second))
            }
            section.card aria-labelledby="h-svc" {
                h2 id="h-svc" { "Requests by service" }
                (chart::lines("Requests by service", &labels, &series(&svc, &starts)))
            }
            section.card aria-labelledby="h-status" {
                h2 id="h-status" { "Requests by status" }
                (chart::lines("Requests by status class", &labels, &series(&status, &starts)))
            }
            section.card aria-labelledby="h-lat" {
                h2 id="h-lat" { "Latency" }
                p.stat { "p50 " (format!("{:.1}", l.p50_ms)) " ms" }
                p.muted { "p90 " (format!("{:.1}", l.p90_ms)) " ms · p99 " (format!("{:.1}", l.p99_ms)) " ms · max " (format!("{:.1}", l.max_ms)) " ms · " (l.count) " requests" }
                (chart::bars("Requests by latency", &l.histogram.iter().map(|(b, n)| (match b { Some(b) => format!("≤ {b} ms"), None => "slower".into() }, *n as f64)).collect::<Vec<_>>()))
            }
            section.card aria-labelledby="h-red" {
                h2 id="h-red" { "Redactions by kind" }
                p.stat data-metric="redactions" { (summary.redactions.values().sum::<u64>()) }
                (chart::bars("Values redacted by kind", &summary.redactions.iter().map(|(k, v)| (k.clone(), *v as f64)).collect::<Vec<_>>()))
            }
            section.card aria-labelledby="h-samp" {
                h2 id="h-samp" { "Sampling" }
                table {
                    tbody {
                        tr { th { "Request records kept" } td data-metric="kept" { (sampling.kept_records) } }
                        tr { th { "Requests they stand for (adjusted)" } td data-metric="adjusted" { (format!("{:.0}", sampling.adjusted_total)) } }
                        tr { th { "Decided (VM tallies)" } td { (sampling.tally_seen) } }
                        tr { th { "Kept (VM tallies)" } td { (sampling.tally_kept) } }
                        tr { th { "Dropped (VM tallies)" } td data-metric="dropped" { (dropped) } }
                        tr { th { "Requests seen, estimated (VM tallies)" } td { (sampling.tally_estimated) } }
                        @for (reason, n) in &sampling.tally_dropped {
                            tr { th { "… " (reason) } td { (n) } }
                        }
                    }
                }
                @if sampling.tally_seen == 0 { p.muted { "No sampling tallies in the range: sampling is off, so every request is kept." } }
            }
        }
        h2 { "Delivery losses per VM" }
        (super::vm_table(&summary.completeness))
    };
    Ok(Shown {
        markup: page("Overview", "/ui", Some(principal), markup),
        rows: all.total,
    })
}
