//! The live tail (`/ui/tail`): the search filters, and the records committed from now on that
//! match them, newest first. The page's script reads `/ui/tail/events` (the `/api/v1/tail`
//! handler under the dashboard's sign-in: the same filters, tenant rules and audit); Pause closes
//! the stream and Resume reopens it from the last event id seen.

use super::{Shown, audited, page, scoped_query};
use crate::AppState;
use crate::auth::{Peer, Principal};
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;

/// `GET /ui/tail`.
pub async fn view(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    peer: Option<Extension<Peer>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    // The filters are checked here too, so a bad one is shown on the page, not in the stream.
    let filters: Vec<(String, String)> = params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .cloned()
        .collect();
    let shown = scoped_query(&state, &principal, &filters, &[]).map(|_| {
        let query = filters
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let src = if query.is_empty() {
            "/ui/tail/events".to_owned()
        } else {
            format!("/ui/tail/events?{query}")
        };
        let markup = html! {
            (super::filter_form("/ui/tail", &params, "Tail"))
            div id="tail" data-src=(src) data-state="opening" {
                div.tailbar {
                    button id="tail-toggle" type="button" aria-controls="tail-rows" { "Pause" }
                    span id="tail-state" role="status" aria-live="polite" { "Connecting…" }
                }
                div.scroll {
                    table {
                        caption { "Records as they are committed, newest first" }
                        thead { tr { th { "Time" } th { "Service" } th { "Method" } th { "Status" } th { "Path" } th { "Request id" } th { "Event id" } } }
                        tbody id="tail-rows" {}
                    }
                }
            }
            noscript { p.error { "The live tail needs JavaScript; the other views do not." } }
        };
        Shown {
            markup: page("Live tail", "/ui/tail", Some(&principal), markup),
            rows: 0,
        }
    });
    audited(
        &state,
        &principal,
        peer.map(|p| p.0),
        "/ui/tail",
        &params,
        shown,
    )
    .await
}

/// Percent-encodes a query component.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
