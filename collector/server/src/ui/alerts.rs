//! Alerts (`/ui/alerts`): firing and resolved, as the alerts API lists them (the log's
//! `meshlog.alert` and `meshlog.alert.triage` records, tenant-scoped), each with its triage; a
//! principal with the admin role acknowledges or resolves one with a note (the alerts API's
//! triage, appended to the log as a `meshlog.alert.triage` record).

use super::{Failure, Shown, page};
use crate::AppState;
use crate::auth::{Principal, Role};
use crate::query::api::scoped;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, body::Bytes};
use maud::html;
use serde_json::{Value, json};
use std::collections::HashMap;

super::audited_view!("/ui/alerts");

fn time(v: &Value) -> String {
    v.as_u64()
        .map(meshlog_format::time::rfc3339)
        .unwrap_or_default()
}

async fn build(
    state: &AppState,
    principal: &Principal,
    params: &[(String, String)],
) -> Result<Shown, Failure> {
    if let Some((k, _)) = params.first() {
        return Err(Failure {
            status: StatusCode::BAD_REQUEST,
            message: format!("parameter {k}: the alerts view takes no parameters"),
            outcome: "bad_request",
        });
    }
    let source = state.read.clone().ok_or_else(Failure::unavailable)?;
    let now = state.pipeline.now_unix_nano();
    let p = principal.clone();
    let history = tokio::task::spawn_blocking(move || {
        crate::query::alerts::load(&source, |q| scoped(q, &p), now)
    })
    .await
    .map_err(Failure::internal)?
    .map_err(Failure::internal)?;
    let alerts: Vec<Value> = history
        .alerts()
        .into_iter()
        .map(crate::query::alerts::entry_json)
        .collect();
    let (firing, resolved): (Vec<&Value>, Vec<&Value>) =
        alerts.iter().partition(|a| a["state"] == "firing");
    let admin = principal.roles.contains(&Role::Admin);
    let table = |title: &str, list: &[&Value]| {
        html! {
            div.scroll {
                table.alerts {
                    caption { (title) " (" (list.len()) ")" }
                    thead { tr { th { "Rule" } th { "Group" } th { "Severity" } th { "State" } th { "Fired" } th { "Resolved" } th { "Summary" } th { "Triage" } } }
                    tbody {
                        @for a in list {
                            tr data-alert-id=(a["id"].as_str().unwrap_or("")) {
                                td { (a["rule"].as_str().unwrap_or("")) }
                                td { (a["group"].as_str().unwrap_or("")) }
                                td { (a["severity"].as_str().unwrap_or("")) }
                                td class=(a["state"].as_str().unwrap_or("")) { (a["state"].as_str().unwrap_or("")) }
                                td { (time(&a["fired_unix_nano"])) }
                                td { (time(&a["resolved_unix_nano"])) }
                                td { (a["summary"].as_str().unwrap_or("")) br; code { (a["query"].as_str().unwrap_or("")) } }
                                td {
                                    ul {
                                        @for t in a["triage"].as_array().into_iter().flatten() {
                                            li.triage-step { (t["action"].as_str().unwrap_or("")) " by " (t["principal"].as_str().unwrap_or("")) " at " (time(&t["at_unix_nano"])) ": " q { (t["note"].as_str().unwrap_or("")) } }
                                        }
                                    }
                                    @if admin {
                                        @let id = a["id"].as_str().unwrap_or("");
                                        form.triage method="post" action=(format!("/ui/alerts/{id}/ack")) {
                                            label { span { "Note" } textarea name="note" rows="2" required {} }
                                            button type="submit" formaction=(format!("/ui/alerts/{id}/ack")) { "Acknowledge" }
                                            button.secondary type="submit" formaction=(format!("/ui/alerts/{id}/resolve")) { "Resolve" }
                                        }
                                    }
                                }
                            }
                        }
                        @if list.is_empty() { tr { td colspan="8" { "None." } } }
                    }
                }
            }
        }
    };
    let markup = html! {
        @if !admin { p.muted { "Acknowledging and resolving needs the admin role." } }
        (table("Firing", &firing))
        (table("Resolved", &resolved))
    };
    Ok(Shown {
        markup: page("Alerts", "/ui/alerts", Some(principal), markup),
        rows: alerts.len() as u64,
    })
}

/// `POST /ui/alerts/{id}/{ack|resolve}` with `note=…` (admin): the alerts API's triage, then
/// back to the alerts.
pub async fn triage(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let note = form.get("note").cloned().unwrap_or_default();
    let body = Bytes::from(json!({ "note": note }).to_string());
    let r = match action.as_str() {
        "ack" => {
            crate::query::alerts::ack(State(state), Extension(principal), Path(id), body).await
        }
        "resolve" => {
            crate::query::alerts::resolve(State(state), Extension(principal), Path(id), body).await
        }
        other => {
            return Failure {
                status: StatusCode::NOT_FOUND,
                message: format!("no triage action {other:?} (ack, resolve)"),
                outcome: "bad_request",
            }
            .into_response();
        }
    };
    if r.status().is_success() {
        return Redirect::to("/ui/alerts").into_response();
    }
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "triage failed".into());
    Failure {
        status,
        message,
        outcome: "error",
    }
    .into_response()
}
