//! Search (`/ui/search`): the query API's filters as a form, the matching records as a table
//! (newest first, up to `limit`, default 100) each with its full detail, and the completeness
//! statement of the query. With `[sink.clickhouse]` configured, its *Source* field reads the
//! fleet's ClickHouse table instead (`source=clickhouse`), with the statement per collector.

use super::{Failure, Shown, field, page, record_detail, record_time, scoped_query};
use crate::AppState;
use crate::auth::Principal;
use crate::query::fleet::{self, FleetCompleteness, Source};
use axum::http::StatusCode;
use maud::{Markup, html};
use meshlog_query::params::Order;

/// Rows when no `limit` is given.
const DEFAULT_LIMIT: u64 = 100;

super::audited_view!("/ui/search");

async fn build(
    state: &AppState,
    principal: &Principal,
    params: &[(String, String)],
) -> Result<Shown, Failure> {
    let src = fleet::source(params, state.fleet.as_deref()).map_err(|e| Failure::bad(&e))?;
    let mut q = scoped_query(state, principal, params, &[fleet::SOURCE_PARAM])?;
    if q.limit.is_none() {
        q.limit = Some(DEFAULT_LIMIT);
    }
    if !params.iter().any(|(k, _)| k == "order") {
        q.order = Order::Newest;
    }
    let (records, more, statement) = match src {
        Source::Local => {
            let (records, listing) = super::local_records(state, q).await?;
            let more = listing.next_cursor.is_some();
            (
                records,
                more,
                super::completeness(&listing.outcome.completeness),
            )
        }
        Source::ClickHouse => {
            let f = state.fleet.clone().ok_or_else(Failure::unavailable)?;
            let found = fleet::search(&f, &q, &crate::query::api::ledgers(state))
                .await
                .map_err(|e| Failure {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: e.to_string(),
                    outcome: "unavailable",
                })?;
            let more = found.completeness.limit_reached;
            (found.records, more, fleet_completeness(&found.completeness))
        }
    };
    let picker = state.fleet.as_ref().map(|f| {
        let chosen = src == Source::ClickHouse;
        html! {
            label {
                span { "Source" }
                select name=(fleet::SOURCE_PARAM) {
                    option value="local" selected[!chosen] { "This collector" }
                    option value="clickhouse" selected[chosen] {
                        "Fleet (ClickHouse " (f.clickhouse.database) "." (f.clickhouse.table) ")"
                    }
                }
            }
        }
    });
    let markup = html! {
        (super::filter_form_with("/ui/search", params, "Search", html! { @if let Some(p) = picker { (p) } }))
        p.muted role="status" {
            (records.len()) " records"
            @if src == Source::ClickHouse { " from the fleet's ClickHouse table" }
            @if more { " (more match: narrow the filters)" } "."
        }
        div.scroll {
            table.results {
                caption { "Matching records, newest first" }
                thead { tr { th { "Time" } th { "Service" } th { "Tenant" } th { "Method" } th { "Status" } th { "Path" } th { "Client" } th { "Request id" } th { "Detail" } } }
                tbody {
                    @for r in &records {
                        tr data-request-id=(field(r, "meshlog.request_id")) {
                            td { (record_time(r)) }
                            td { (field(r, "resource.service.name")) }
                            td { (field(r, "resource.meshlog.tenant")) }
                            td { (field(r, "http.request.method")) }
                            td { (field(r, "http.response.status_code")) }
                            td { (field(r, "url.path")) }
                            td { (field(r, "client.address")) }
                            td { (field(r, "meshlog.request_id")) }
                            td { details { summary { "Record" } (record_detail(r)) } }
                        }
                    }
                }
            }
        }
        (statement)
    };
    Ok(Shown {
        markup: page("Search", "/ui/search", Some(principal), markup),
        rows: records.len() as u64,
    })
}

/// The completeness statement of a search over ClickHouse: per collector and log, the leaves
/// the table holds, and this collector's leaves not exported yet.
fn fleet_completeness(c: &FleetCompleteness) -> Markup {
    html! {
        section.completeness aria-label="Completeness" {
            h2 { "Completeness" }
            p.verdict data-complete="false" {
                "From ClickHouse " code { (c.table) } ": complete for the leaves each collector's \
                 sink has exported, listed below; records a collector committed after its \
                 sink's last insert are not included (meshlog sink check on that collector \
                 counts them)."
            }
            div.scroll {
                table.collectors {
                    caption { "Exported per collector and log" }
                    thead { tr { th { "Collector" } th { "Log" } th { "Leaves exported" } th { "Rows" } th { "Not exported yet" } } }
                    tbody {
                        @for s in &c.collectors {
                            tr data-collector=(s.collector_id) {
                                td { (s.collector_id) @if s.this_collector { " (this collector)" } }
                                td { @if s.log.is_empty() { "default" } @else { (s.log) } }
                                td { (s.leaves[0]) "–" (s.leaves[1]) }
                                td { (s.rows) }
                                td {
                                    @match s.not_exported_leaves {
                                        Some(n) => { (n) " of " (s.committed_leaves.unwrap_or_default()) " leaves" }
                                        None => { "unknown here (ask that collector)" }
                                    }
                                }
                            }
                        }
                        @if c.collectors.is_empty() { tr { td colspan="5" { "The table holds no rows." } } }
                    }
                }
            }
        }
    }
}
