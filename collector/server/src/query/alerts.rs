//! `GET /api/v1/alerts` (the read role) and `POST /api/v1/alerts/{id}/ack` and
//! `/api/v1/alerts/{id}/resolve` (the admin role): alerts as the log tells them
//! (docs/detection.md).
//!
//! The listing folds the stored `meshlog.alert` and `meshlog.alert.triage` records through
//! [`AlertHistory`]: one entry per alert id, firing or resolved, with its triage. Tenant rules
//! are the query API's: a reader with a tenant sees only that tenant's records (an alert raised
//! by a tenant's record carries that tenant, as does its triage; alerts raised by time passing
//! carry none), admin sees all. Triage appends a `meshlog.alert.triage`
//! record naming the principal and the note, and answers once it is stored. Each read and each
//! triage is appended as an access record, as the query API's are.

use super::ReadSource;
use super::api::scoped;
use crate::AppState;
use crate::audit_log::AccessEvent;
use crate::auth::{Peer, Principal, Role};
use crate::ingest::pipeline::DecodedBatch;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use meshlog_detect::alert::{Triage, TriageAction, triage_request};
use meshlog_detect::history::{AlertEntry, AlertHistory};
use meshlog_detect::{ALERT_EVENT, TRIAGE_EVENT};
use meshlog_query::QueryError;
use meshlog_query::params::QueryParams;
use meshlog_query::scan::ScanOptions;
use prost::Message;
use serde_json::{Value, json};

/// The listing's path.
pub const ALERTS_PATH: &str = "/api/v1/alerts";

fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = (status, bytes).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, code: i32, message: String, parameter: Option<&str>) -> Response {
    let body = match parameter {
        Some(p) => json!({"code": code, "message": message, "parameter": p}),
        None => json!({"code": code, "message": message}),
    };
    json_response(status, &body)
}

/// Every alert in the data directory `source` (scoped to `principal`'s tenant), folded.
pub fn load(
    source: &ReadSource,
    scope: impl Fn(&mut QueryParams) -> bool,
    now_ns: u64,
) -> Result<AlertHistory, QueryError> {
    let mut history = AlertHistory::new();
    // Alerts first, then triage: a triage step always follows its alert's firing record.
    for event in [ALERT_EVENT, TRIAGE_EVENT] {
        let mut q = QueryParams::from_params([("where", format!("event_name={event}"))], now_ns)
            .map_err(QueryError::Param)?;
        if !scope(&mut q) {
            continue;
        }
        meshlog_query::records::list(
            &source.data_dir,
            source.keys.as_ref(),
            &q,
            &ScanOptions::default(),
            |_, r| {
                history.add(&r);
                Ok(())
            },
        )?;
    }
    Ok(history)
}

/// One alert as the API shows it.
pub fn entry_json(e: &AlertEntry) -> Value {
    let f = &e.firing;
    let triage: Vec<Value> = e
        .triage
        .iter()
        .map(|t| {
            json!({"action": t.action, "principal": t.principal, "note": t.note,
                   "at_unix_nano": t.at_ns})
        })
        .collect();
    json!({
        "id": f.id,
        "rule": f.rule,
        "group": f.group.to_string(),
        "state": if e.is_firing() { "firing" } else { "resolved" },
        "severity": f.severity.as_str(),
        "started_unix_nano": f.since_ns,
        "fired_unix_nano": f.at_ns,
        "resolved_unix_nano": e.resolved_ns,
        "count": f.value,
        "threshold": f.threshold,
        "window_s": f.window_ns / 1_000_000_000,
        "summary": f.summary,
        "query": f.query_command(),
        "triage": triage,
        "time_to_acknowledge_s": e.time_to_acknowledge_ns().map(|n| n as f64 / 1e9),
    })
}

fn access(principal: &Principal, role: Role, peer: Option<Peer>, endpoint: String) -> AccessEvent {
    AccessEvent {
        principal: principal.id.clone(),
        role: role.as_str().into(),
        tenant: principal.tenant.clone(),
        peer: peer.map(|p| p.addr.to_string()),
        endpoint,
        parameters: Vec::new(),
        rows: 0,
        bytes: 0,
        outcome: "ok".into(),
    }
}

async fn history(state: &AppState, principal: &Principal) -> Result<AlertHistory, Response> {
    let Some(source) = state.read.clone() else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            "this collector serves no data directory for reading".into(),
            None,
        ));
    };
    let now = state.pipeline.now_unix_nano();
    let p = principal.clone();
    let loaded = tokio::task::spawn_blocking(move || load(&source, |q| scoped(q, &p), now)).await;
    match loaded {
        Ok(Ok(h)) => Ok(h),
        Ok(Err(e)) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            13,
            e.to_string(),
            None,
        )),
        Err(e) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            13,
            e.to_string(),
            None,
        )),
    }
}

/// `GET /api/v1/alerts[?state=firing|resolved]`.
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    peer: Option<Extension<Peer>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let mut event = access(
        &principal,
        Role::Read,
        peer.map(|p| p.0),
        ALERTS_PATH.into(),
    );
    event.parameters = params.clone();
    let mut only = None;
    for (k, v) in &params {
        match (k.as_str(), v.as_str()) {
            ("state", "firing") => only = Some(true),
            ("state", "resolved") => only = Some(false),
            ("state", _) => {
                event.outcome = "bad_request".into();
                let _ = state.audit.record(&event).await;
                return error(
                    StatusCode::BAD_REQUEST,
                    3,
                    format!("state: expected firing or resolved, got {v:?}"),
                    Some("state"),
                );
            }
            _ => {
                event.outcome = "bad_request".into();
                let _ = state.audit.record(&event).await;
                return error(
                    StatusCode::BAD_REQUEST,
                    3,
                    format!("unknown parameter {k:?} (state)"),
                    Some(k),
                );
            }
        }
    }
    let h = match history(&state, &principal).await {
        Ok(h) => h,
        Err(r) => {
            event.outcome = "error".into();
            let _ = state.audit.record(&event).await;
            return r;
        }
    };
    let alerts: Vec<Value> = h
        .alerts()
        .into_iter()
        .filter(|e| only.is_none_or(|f| e.is_firing() == f))
        .map(entry_json)
        .collect();
    event.rows = alerts.len() as u64;
    let body = json!({ "alerts": alerts });
    event.bytes = serde_json::to_vec(&body).map_or(0, |b| b.len() as u64);
    match state.audit.record(&event).await {
        Ok(()) => json_response(StatusCode::OK, &body),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            format!("the access record of this read could not be stored: {e}"),
            None,
        ),
    }
}

/// `POST /api/v1/alerts/{id}/ack`.
pub async fn ack(
    state: State<AppState>,
    principal: Extension<Principal>,
    id: Path<String>,
    body: axum::body::Bytes,
) -> Response {
    triage(state, principal, id, body, TriageAction::Acknowledge).await
}

/// `POST /api/v1/alerts/{id}/resolve`.
pub async fn resolve(
    state: State<AppState>,
    principal: Extension<Principal>,
    id: Path<String>,
    body: axum::body::Bytes,
) -> Response {
    triage(state, principal, id, body, TriageAction::Resolve).await
}

/// Appends a triage record for alert `id`; the body is `{"note": "…"}`.
async fn triage(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
    action: TriageAction,
) -> Response {
    let note = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => match v.get("note").and_then(Value::as_str) {
            Some(n) if !n.trim().is_empty() => n.to_owned(),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    3,
                    "note: expected a non-empty string".into(),
                    Some("note"),
                );
            }
        },
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                3,
                format!("body: expected JSON {{\"note\": \"…\"}}: {e}"),
                Some("note"),
            );
        }
    };
    let h = match history(&state, &principal).await {
        Ok(h) => h,
        Err(r) => return r,
    };
    let Some(entry) = h.get(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            5,
            format!("no alert with id {id:?}"),
            Some("id"),
        );
    };
    let now = state.pipeline.now_unix_nano();
    let t = Triage {
        alert_id: id.clone(),
        rule: entry.firing.rule.clone(),
        group: entry.firing.group.clone(),
        action,
        principal: principal.id.clone(),
        note,
        at_ns: now,
    };
    let request = triage_request(&t);
    let size = request.encoded_len() as u64;
    let stored = state
        .pipeline
        .ingest_decoded(DecodedBatch {
            request,
            size,
            batch_id: None,
            received_unix_nano: now,
            // The alert's tenant: its readers see the triage with the alert.
            tenant: entry.firing.tenant.clone(),
        })
        .await;
    match stored {
        Ok(_) => {
            state.metrics.stored(crate::metrics::Transport::Internal, 1);
            let mut entry = entry.clone();
            entry.triage.push(meshlog_detect::history::TriageStep {
                action: action.as_str().into(),
                principal: t.principal,
                note: t.note,
                at_ns: now,
            });
            json_response(StatusCode::OK, &entry_json(&entry))
        }
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            format!("the triage record could not be stored: {e}"),
            None,
        ),
    }
}

/// The routes: the listing under the read role, triage under admin.
pub fn routes(state: AppState) -> axum::Router {
    use axum::routing::{get, post};
    let read = axum::Router::new()
        .route(ALERTS_PATH, get(list))
        .route_layer(axum::middleware::from_fn_with_state(
            state.gate(Role::Read),
            crate::auth::require,
        ))
        .with_state(state.clone());
    let admin = axum::Router::new()
        .route("/api/v1/alerts/{id}/ack", post(ack))
        .route("/api/v1/alerts/{id}/resolve", post(resolve))
        .route_layer(axum::middleware::from_fn_with_state(
            state.gate(Role::Admin),
            crate::auth::require,
        ))
        .with_state(state);
    read.merge(admin)
}
