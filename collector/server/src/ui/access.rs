//! Access (`/ui/access`): who read what. The `meshlog.access` records (every read of the API
//! and of this dashboard, and every refusal), newest first, with reads per principal and the
//! refusals apart. Tenant rules as the query API's: a reader with a tenant sees its own tenant's
//! reads.

use super::chart;
use super::{Failure, Shown, field, page, record_time, scoped_query};
use crate::AppState;
use crate::auth::Principal;
use maud::{Markup, html};
use meshlog_query::params::Order;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Access records shown.
const LIMIT: u64 = 500;

super::audited_view!("/ui/access");

fn table(caption: &str, records: &[&Map<String, Value>]) -> Markup {
    html! {
        div.scroll {
            table.access {
                caption { (caption) " (" (records.len()) ")" }
                thead { tr { th { "Time" } th { "Principal" } th { "Tenant" } th { "Endpoint" } th { "Parameters" } th { "Rows" } th { "Outcome" } th { "Peer" } } }
                tbody {
                    @for r in records {
                        tr {
                            td { (record_time(r)) }
                            td { (field(r, "meshlog.access.principal")) }
                            td { (field(r, "meshlog.access.tenant")) }
                            td { (field(r, "meshlog.access.endpoint")) }
                            td { (r.iter().filter_map(|(k, _)| k.strip_prefix("meshlog.access.parameter.").map(|p| format!("{p}={}", field(r, k)))).collect::<Vec<_>>().join(" ")) }
                            td { (field(r, "meshlog.access.rows")) }
                            td { (field(r, "meshlog.access.outcome")) }
                            td { (field(r, "source.address")) }
                        }
                    }
                    @if records.is_empty() { tr { td colspan="8" { "None." } } }
                }
            }
        }
    }
}

async fn build(
    state: &AppState,
    principal: &Principal,
    params: &[(String, String)],
) -> Result<Shown, Failure> {
    let mut q = scoped_query(state, principal, params, &[])?;
    let now = state.pipeline.now_unix_nano();
    q.parse_param("where", "event_name=meshlog.access", now)
        .map_err(|e| Failure::bad(&e))?;
    q.order = Order::Newest;
    q.limit = Some(LIMIT);
    let (records, _) = super::local_records(state, q).await?;
    let mut per: BTreeMap<String, f64> = BTreeMap::new();
    for r in &records {
        *per.entry(field(r, "meshlog.access.principal")).or_default() += 1.0;
    }
    type Rows<'a> = Vec<&'a Map<String, Value>>;
    let (ok, refused): (Rows, Rows) = records
        .iter()
        .partition(|r| matches!(field(r, "meshlog.access.outcome").as_str(), "ok" | "ended"));
    let markup = html! {
        (super::filter_form("/ui/access", params, "Show"))
        section.card aria-labelledby="h-per" {
            h2 id="h-per" { "Reads per principal" }
            (chart::bars("Access records per principal", &per.into_iter().collect::<Vec<_>>()))
        }
        h2 { "Refusals" }
        (table("Refused or failed reads", &refused))
        h2 { "Reads" }
        (table("Reads served", &ok))
    };
    Ok(Shown {
        markup: page("Access", "/ui/access", Some(principal), markup),
        rows: records.len() as u64,
    })
}
