//! Search (`/ui/search`): the query API's filters as a form, the matching records as a table
//! (newest first, up to `limit`, default 100) each with its full detail, and the completeness
//! statement of the query.

use super::{Failure, Shown, field, page, record_detail, record_time, scoped_query};
use crate::AppState;
use crate::auth::Principal;
use maud::html;
use meshlog_query::params::Order;
use meshlog_query::scan::ScanOptions;
use serde_json::{Map, Value};

/// Rows when no `limit` is given.
const DEFAULT_LIMIT: u64 = 100;

super::audited_view!("/ui/search");

async fn build(
    state: &AppState,
    principal: &Principal,
    params: &[(String, String)],
) -> Result<Shown, Failure> {
    let mut q = scoped_query(state, principal, params, &[])?;
    if q.limit.is_none() {
        q.limit = Some(DEFAULT_LIMIT);
    }
    if !params.iter().any(|(k, _)| k == "order") {
        q.order = Order::Newest;
    }
    let source = state.read.clone().ok_or_else(Failure::unavailable)?;
    let (records, listing) = tokio::task::spawn_blocking(move || {
        let mut records: Vec<Map<String, Value>> = Vec::new();
        meshlog_query::records::list(
            &source.data_dir,
            source.keys.as_ref(),
            &q,
            &ScanOptions::default(),
            |_, r| {
                records.push(r);
                Ok(())
            },
        )
        .map(|l| (records, l))
    })
    .await
    .map_err(Failure::internal)?
    .map_err(|e| match e {
        meshlog_query::QueryError::Param(p) => Failure::bad(&p),
        other => Failure::internal(other),
    })?;
    let markup = html! {
        (super::filter_form("/ui/search", params, "Search"))
        p.muted role="status" { (records.len()) " records" @if listing.next_cursor.is_some() { " (more match: narrow the filters)" } "." }
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
        (super::completeness(&listing.outcome.completeness))
    };
    Ok(Shown {
        markup: page("Search", "/ui/search", Some(principal), markup),
        rows: records.len() as u64,
    })
}
