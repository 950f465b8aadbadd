//! The dashboard at `/ui`: server-rendered HTML (maud) over the read API's own functions, one
//! module per view: [`overview`], [`search`], [`tail`], [`alerts`], [`integrity`], [`access`].
//! Charts are server-side SVG ([`chart`]); the stylesheet and the tail's script are embedded in
//! the binary ([`assets`]): nothing is fetched from elsewhere, so it works offline.
//!
//! Every view is behind the `read` role (triage behind `admin`), with the read API's identities
//! (a client certificate's SPIFFE id or a bearer token) and its tenant rules; each view served
//! and each refusal is appended to the log as a `meshlog.access` record (endpoint `/ui/…`), and a
//! view whose access record cannot be stored is not shown. A browser that cannot send a bearer
//! header signs in at `/ui/login`: the token is kept in an HttpOnly, SameSite=Strict cookie
//! scoped to `/ui` and sent on as the bearer token ([`session`]).

/// `pub async fn view`, the `GET` handler of one view: `build` (the view module's) renders the
/// page for the caller, [`audited`] records the read (or the refusal) and answers.
macro_rules! audited_view {
    ($endpoint:literal) => {
        #[doc = concat!("`GET ", $endpoint, "`.")]
        pub async fn view(
            axum::extract::State(state): axum::extract::State<crate::AppState>,
            axum::Extension(principal): axum::Extension<crate::auth::Principal>,
            peer: Option<axum::Extension<crate::auth::Peer>>,
            axum::extract::Query(params): axum::extract::Query<Vec<(String, String)>>,
        ) -> axum::response::Response {
            let shown = build(&state, &principal, &params).await;
            super::audited(
                &state,
                &principal,
                peer.map(|p| p.0),
                $endpoint,
                &params,
                shown,
            )
            .await
        }
    };
}
use audited_view;

pub mod access;
pub mod alerts;
pub mod assets;
pub mod chart;
pub mod integrity;
pub mod overview;
pub mod search;
pub mod session;
pub mod tail;

use crate::AppState;
use crate::audit_log::AccessEvent;
use crate::auth::{Peer, Principal, Role};
use axum::Router;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use meshlog_query::complete::Completeness;
use meshlog_query::params::QueryParams;
use meshlog_query::records::Listing;
use meshlog_query::scan::ScanOptions;
use serde_json::{Map, Value};

/// The dashboard's routes: the views (read), triage (admin), the sign-in page and the assets
/// (open).
pub fn routes(state: AppState) -> Router {
    let read = Router::new()
        .route("/ui", get(overview::view))
        .route("/ui/", get(overview::view))
        .route("/ui/search", get(search::view))
        .route("/ui/tail", get(tail::view))
        .route("/ui/tail/events", get(crate::query::tail::tail))
        .route("/ui/alerts", get(alerts::view))
        .route("/ui/integrity", get(integrity::view))
        .route("/ui/access", get(access::view))
        .route_layer(from_fn_with_state(
            state.gate(Role::Read),
            crate::auth::require,
        ))
        .with_state(state.clone());
    let admin = Router::new()
        .route("/ui/alerts/{id}/{action}", post(alerts::triage))
        .route_layer(from_fn_with_state(
            state.gate(Role::Admin),
            crate::auth::require,
        ))
        .with_state(state.clone());
    let open = Router::new()
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/assets/{file}", get(assets::serve))
        .with_state(state);
    read.merge(admin)
        .layer(from_fn(session::bearer_from_cookie))
        .merge(open)
}

/// The views, in the navigation's order: (path, label).
const VIEWS: [(&str, &str); 6] = [
    ("/ui", "Overview"),
    ("/ui/search", "Search"),
    ("/ui/tail", "Live tail"),
    ("/ui/alerts", "Alerts"),
    ("/ui/integrity", "Integrity"),
    ("/ui/access", "Access"),
];

/// The page around a view's `body`.
pub fn page(title: &str, active: &str, who: Option<&Principal>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · meshlog" }
                link rel="stylesheet" href="/ui/assets/style.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    span.brand { "meshlog" }
                    nav aria-label="Views" {
                        ul {
                            @for (path, label) in VIEWS {
                                li {
                                    @if path == active {
                                        a href=(path) aria-current="page" { (label) }
                                    } @else {
                                        a href=(path) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(p) = who {
                        span.who {
                            (p.id)
                            @if let Some(t) = &p.tenant { " · tenant " (t) }
                        }
                        form.signout method="post" action="/ui/logout" {
                            button.secondary type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
                script src="/ui/assets/tail.js" defer {}
            }
        }
    }
}

/// A view's outcome: its HTML, and the rows and bytes its access record counts.
pub struct Shown {
    /// The page.
    pub markup: Markup,
    /// Rows shown.
    pub rows: u64,
}

/// Appends the access record of a view and answers it, or answers 503 when the record cannot
/// be stored (a read must not be served unrecorded).
pub async fn audited(
    state: &AppState,
    principal: &Principal,
    peer: Option<Peer>,
    endpoint: &str,
    params: &[(String, String)],
    shown: Result<Shown, Failure>,
) -> Response {
    let mut event = AccessEvent {
        principal: principal.id.clone(),
        role: Role::Read.as_str().into(),
        tenant: principal.tenant.clone(),
        peer: peer.map(|p| p.addr.to_string()),
        endpoint: endpoint.into(),
        parameters: params.to_vec(),
        rows: 0,
        bytes: 0,
        outcome: "ok".into(),
    };
    let response = match shown {
        Ok(s) => {
            let body = s.markup.into_string();
            event.rows = s.rows;
            event.bytes = body.len() as u64;
            (StatusCode::OK, maud::PreEscaped(body)).into_response()
        }
        Err(f) => {
            event.outcome = f.outcome.into();
            f.into_response()
        }
    };
    match state.audit.record(&event).await {
        Ok(()) => response,
        Err(_) if event.outcome != "ok" => response,
        Err(e) => Failure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("the access record of this view could not be stored: {e}"),
            outcome: "unavailable",
        }
        .into_response(),
    }
}

/// Why a view is not shown.
#[derive(Debug)]
pub struct Failure {
    /// The status.
    pub status: StatusCode,
    /// What to tell the reader.
    pub message: String,
    /// The access record's outcome.
    pub outcome: &'static str,
}

impl Failure {
    /// A bad filter (400, naming the parameter).
    pub fn bad(e: &meshlog_query::FilterError) -> Failure {
        Failure {
            status: StatusCode::BAD_REQUEST,
            message: format!("parameter {}: {e}", e.parameter()),
            outcome: "bad_request",
        }
    }

    /// A failed read (500).
    pub fn internal(e: impl std::fmt::Display) -> Failure {
        tracing::error!(error = %e, "dashboard view failed");
        Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: e.to_string(),
            outcome: "error",
        }
    }

    /// No data directory to read.
    pub fn unavailable() -> Failure {
        Failure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "this collector serves no data directory for reading".into(),
            outcome: "unavailable",
        }
    }

    /// Another tenant's data (403).
    pub fn forbidden(p: &Principal) -> Failure {
        Failure {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "{} reads tenant {:?} only",
                p.id,
                p.tenant.as_deref().unwrap_or("")
            ),
            outcome: "permission_denied",
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = page(
            "Not shown",
            "",
            None,
            html! { p.error role="alert" { (self.message) } },
        );
        (self.status, body).into_response()
    }
}

/// The query the view's filter parameters ask for, scoped to `p`'s tenant as the query API
/// scopes it. Parameters with an empty value (a blank form field) are left out.
pub fn scoped_query(
    state: &AppState,
    p: &Principal,
    params: &[(String, String)],
    own: &[&str],
) -> Result<QueryParams, Failure> {
    let now = state.pipeline.now_unix_nano();
    let filters = params
        .iter()
        .filter(|(k, v)| !v.is_empty() && !own.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()));
    let mut q = QueryParams::from_params(filters, now).map_err(|e| Failure::bad(&e))?;
    if !crate::query::api::scoped(&mut q, p) {
        return Err(Failure::forbidden(p));
    }
    Ok(q)
}

/// The filter fields every record view shows: (parameter, label, placeholder).
const FILTERS: [(&str, &str, &str); 9] = [
    ("since", "Since", "1h"),
    ("until", "Until", "RFC 3339 or 10m"),
    ("service", "Service", "checkout"),
    ("status", "Status", "5xx or 404"),
    ("method", "Method", "GET"),
    ("route", "Route", "/api/orders/{id}"),
    ("request-id", "Request id", ""),
    ("text", "Text", "any text"),
    ("where", "Where", "url.path=/x"),
];

/// The filter form (GET to `action`), filled in from `params`.
pub fn filter_form(action: &str, params: &[(String, String)], submit: &str) -> Markup {
    filter_form_with(action, params, submit, html! {})
}

/// The filter form with a view's own `extra` fields before the submit button.
pub fn filter_form_with(
    action: &str,
    params: &[(String, String)],
    submit: &str,
    extra: Markup,
) -> Markup {
    let value = |k: &str| {
        params
            .iter()
            .find(|(p, _)| p == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    html! {
        form.filters method="get" action=(action) role="search" {
            @for (name, label, hint) in FILTERS {
                label {
                    span { (label) }
                    input type="text" name=(name) value=(value(name)) placeholder=(hint);
                }
            }
            (extra)
            button type="submit" { (submit) }
        }
    }
}

/// The records of this collector's store that `q` selects, read on the blocking pool (the
/// search and access views).
pub async fn local_records(
    state: &AppState,
    q: QueryParams,
) -> Result<(Vec<Map<String, Value>>, Listing), Failure> {
    let source = state.read.clone().ok_or_else(Failure::unavailable)?;
    tokio::task::spawn_blocking(move || {
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
    })
}

/// A record's time, RFC 3339.
pub fn record_time(r: &Map<String, Value>) -> String {
    r.get("time_unix_nano")
        .and_then(Value::as_u64)
        .map(meshlog_format::time::rfc3339)
        .unwrap_or_default()
}

/// A field of a record as text (empty when absent).
pub fn field(r: &Map<String, Value>, k: &str) -> String {
    match r.get(k) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// Every field of a record, as a definition list.
pub fn record_detail(r: &Map<String, Value>) -> Markup {
    html! {
        dl.record {
            @for (k, _) in r {
                dt { (k) }
                dd { (field(r, k)) }
            }
        }
    }
}

fn ranges(r: &[[u64; 2]]) -> String {
    if r.is_empty() {
        return "none".into();
    }
    r.iter()
        .map(|[a, b]| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The completeness statement the query API returns, as sentences and a table per VM.
pub fn completeness(c: &Completeness) -> Markup {
    html! {
        section.completeness aria-label="Completeness" {
            h2 { "Completeness" }
            p.verdict data-complete=(c.complete) {
                @if c.complete {
                    "Complete: every store covers its newest signed checkpoint and every VM's \
                     sequence numbers are gapless."
                } @else {
                    "Not shown to be complete: see the gaps and checkpoints below."
                }
            }
            ul {
                @for s in &c.stores {
                    li {
                        "Store " code { (s.store) } ": "
                        @match &s.checkpoint {
                            Some(cp) => {
                                "checkpoint " (cp.size) " leaves, root " code { (short(&cp.root)) }
                                ", key " (cp.key_id) ", signed " (meshlog_format::time::rfc3339(cp.timestamp_unix_ns))
                                "; " (s.leaves) " leaves read"
                                @if s.after_checkpoint > 0 { ", " (s.after_checkpoint) " newer than the checkpoint" }
                                @if !s.covers_checkpoint { strong { "; fewer leaves than the checkpoint: run meshlog verify" } }
                            }
                            None => { "no signed checkpoint (" (s.leaves) " leaves read)" }
                        }
                    }
                }
            }
            (vm_table(c))
        }
    }
}

/// Delivery per VM: its sequence range, gaps, and what its tallies explain.
pub fn vm_table(c: &Completeness) -> Markup {
    html! {
        div.scroll {
            table.vms {
                caption { "Delivery per VM" }
                thead { tr { th { "VM" } th { "Sequences" } th { "Gapless" } th { "Missing" } th { "Lost per tallies" } th { "Unexplained" } th { "Dropped (overflow)" } th { "Refused" } } }
                tbody {
                    @for v in &c.vms {
                        tr {
                            td { (v.vm) }
                            td { (v.first) "–" (v.last) }
                            td { @if v.gapless { "yes" } @else { strong { "no" } } }
                            td { (ranges(&v.gaps)) }
                            td { (ranges(&v.explained)) }
                            td { (ranges(&v.unexplained)) }
                            td { (v.dropped_overflow_total) }
                            td { (v.failed_total) }
                        }
                    }
                    @if c.vms.is_empty() { tr { td colspan="8" { "No VM in the range." } } }
                }
            }
        }
    }
}

/// The first 16 hex digits of a hash.
pub fn short(h: &str) -> &str {
    h.get(..16).unwrap_or(h)
}
