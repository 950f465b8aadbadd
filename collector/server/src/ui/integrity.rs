//! Integrity and retention (`/ui/integrity`): per store its newest signed checkpoint and the
//! leaves since, the retention classes, the legal holds in force, and the deletions with their
//! signed receipts ([`crate::query::integrity`]). What it can check live is whether each
//! store's ledger covers its newest signed checkpoint; the last result of `serve`'s periodic
//! verify up to that checkpoint ([`crate::verifier`]) is shown above it.

use super::{Failure, Shown, field, page, short};
use crate::AppState;
use crate::auth::Principal;
use crate::query::api::scoped;
use axum::http::StatusCode;
use maud::html;
use meshlog_format::time::rfc3339;

super::audited_view!("/ui/integrity");

async fn build(
    state: &AppState,
    principal: &Principal,
    params: &[(String, String)],
) -> Result<Shown, Failure> {
    if let Some((k, _)) = params.first() {
        return Err(Failure {
            status: StatusCode::BAD_REQUEST,
            message: format!("parameter {k}: the integrity view takes no parameters"),
            outcome: "bad_request",
        });
    }
    let source = state.read.clone().ok_or_else(Failure::unavailable)?;
    let ledgers = crate::query::api::ledgers(state);
    let policy = state.pipeline.routes().policy().cloned();
    let now = state.pipeline.now_unix_nano();
    let p = principal.clone();
    let verify = state.verify.get();
    let i = tokio::task::spawn_blocking(move || {
        crate::query::integrity::integrity(
            &source,
            policy.as_ref(),
            &ledgers,
            |q| scoped(q, &p),
            now,
        )
    })
    .await
    .map_err(Failure::internal)?
    .map_err(Failure::internal)?;
    let markup = html! {
        section aria-labelledby="h-verify" {
            h2 id="h-verify" { "Last verify" }
            @match &verify {
                None => p.verify data-outcome="none" { "No verify has run yet (every " code { "[integrity] verify_interval_s" } ", 3600 s by default; needs a signing key)." }
                Some(v) => {
                    p.verify data-outcome=(v.outcome) {
                        @match v.outcome {
                            "intact" => { strong { "Intact" } }
                            "not_intact" => { strong.error { "NOT INTACT" } }
                            _ => { strong { "Unchecked" } " (no signed checkpoint yet)" }
                        }
                        " at " (rfc3339(v.time_unix_nano)) ": " (v.findings) " finding" @if v.findings != 1 { "s" }
                        @for (k, n) in &v.kinds { " · " (k) " " (n) }
                        " (" (format!("{:.2}", v.seconds)) " s)"
                    }
                    div.scroll {
                        table.verify {
                            thead { tr { th { "Class" } th { "Checked up to leaf" } th { "Result" } th { "Findings" } } }
                            tbody {
                                @for s in &v.stores {
                                    tr {
                                        td { (s.class) }
                                        td { @match s.tree_size { Some(n) => { (n) } None => { "no signed checkpoint" } } }
                                        td { @if let Some(e) = &s.error { strong.error { "could not read: " (e) } } @else if s.intact { "intact" } @else { strong.error { "NOT INTACT" } } }
                                        td { (s.findings) }
                                    }
                                }
                            }
                        }
                    }
                    p.muted { "Details: " code { "meshlog verify --data-dir DIR --public-key KEY" } "." }
                }
            }
        }
        section aria-labelledby="h-cp" {
            h2 id="h-cp" { "Signed checkpoints" }
            div.scroll {
                table.stores {
                    thead { tr { th { "Class" } th { "Keeps" } th { "Checkpoint size" } th { "Root" } th { "Key" } th { "Signed" } th { "Leaves now" } th { "Covered" } } }
                    tbody {
                        @for s in &i.stores {
                            tr {
                                td { (s.class) }
                                td { @match s.days { Some(d) => { (d) " days" } None => { "for ever" } } }
                                @match &s.checkpoint {
                                    Some(cp) => {
                                        td data-checkpoint=(cp.size) { (cp.size) }
                                        td { code { (short(&cp.root)) } }
                                        td { (cp.key_id) }
                                        td { (rfc3339(cp.timestamp_unix_ns)) }
                                        td { (s.tree_size) }
                                        td { @if s.tree_size >= cp.size { "yes" } @else { strong.error { "no: fewer leaves than signed; run meshlog verify" } } }
                                    }
                                    None => {
                                        td colspan="4" { "no signed checkpoint yet (needs [integrity] signing_key)" }
                                        td { (s.tree_size) }
                                        td { "–" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p.muted { "Covered: each store's live ledger holds at least the leaves of its newest signed checkpoint." }
        }
        section aria-labelledby="h-ret" {
            h2 id="h-ret" { "Retention" }
            @if !i.retention { p { "No [retention] section: records are kept for ever, nothing is deleted." } }
            h2 { "Legal holds (" (i.holds.len()) ")" }
            div.scroll {
                table.holds {
                    thead { tr { th { "Name" } th { "Reason" } th { "Classes" } th { "From" } th { "Until" } } }
                    tbody {
                        @for h in &i.holds {
                            tr { td { (h.name) } td { (h.reason) } td { (h.classes.join(", ")) }
                                 td { (h.from_unix_nano.map(rfc3339).unwrap_or_default()) }
                                 td { (h.until_unix_nano.map(rfc3339).unwrap_or_default()) } }
                        }
                        @if i.holds.is_empty() { tr { td colspan="5" { "None." } } }
                    }
                }
            }
            h2 { "Deletions (" (i.deletions.len()) ")" }
            @if let Some(e) = &i.deletions_error { p { strong.error { "Not every deletion record could be read: " (e) } } }
            div.scroll {
                table.deletions {
                    thead { tr { th { "Swept" } th { "Class" } th { "Segment" } th { "Records" } th { "Leaves" } th { "Receipt" } } }
                    tbody {
                        @for d in &i.deletions {
                            tr {
                                td { (super::record_time(d)) }
                                td { (field(d, "meshlog.retention.class")) }
                                td { (field(d, "meshlog.retention.segment")) }
                                td { (field(d, "meshlog.retention.segment.records")) }
                                td { (field(d, "meshlog.retention.segment.first_leaf")) "–" (field(d, "meshlog.retention.segment.last_leaf")) }
                                td { details { summary { "Signed receipt" } pre { (field(d, "meshlog.retention.receipt")) } } }
                            }
                        }
                        @if i.deletions.is_empty() { tr { td colspan="6" { "None." } } }
                    }
                }
            }
        }
    };
    Ok(Shown {
        markup: page(
            "Integrity and retention",
            "/ui/integrity",
            Some(principal),
            markup,
        ),
        rows: (i.stores.len() + i.deletions.len()) as u64,
    })
}
