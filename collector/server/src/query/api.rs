//! `GET /api/v1/query` and `GET /api/v1/aggregate`.
//!
//! The parameters are `meshlog query`'s flags without the dashes (`service=checkout`,
//! `status=5xx`, `since=1h`, `where=url.path%3D/x`, repeatable), plus `limit` (1 to 10000,
//! default 100), `order`, `cursor` for `query` and `count`, `group-by`, `every` for
//! `aggregate`. A bad parameter is a 400 whose JSON body names it (`{"code":3,"message":…,
//! "parameter":"status"}`). A reader with a tenant sees only that tenant's records (asking for
//! another tenant is refused with 403); admin sees all. Each answer and each refusal is
//! appended to the log as an access record with its rows and bytes; a read whose access
//! record cannot be stored is not answered (503). `source=clickhouse` on `query` reads the
//! ClickHouse sink's table, every collector exporting there ([`super::fleet`]).

use super::ReadSource;
use super::fleet::{self, Source};
use crate::AppState;
use crate::audit_log::AccessEvent;
use crate::auth::{Peer, Principal, Role};
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use meshlog_query::params::QueryParams;
use meshlog_query::scan::ScanOptions;
use meshlog_query::{FilterError, QueryError};
use serde::Serialize;
use serde_json::{Value, json};

/// `limit` when none is given.
pub const DEFAULT_LIMIT: u64 = 100;

/// Which endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Query,
    Aggregate,
    Summary,
    Integrity,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Query => "/api/v1/query",
            Kind::Aggregate => "/api/v1/aggregate",
            Kind::Summary => "/api/v1/summary",
            Kind::Integrity => "/api/v1/integrity",
        }
    }
}

/// An error answer: the status, and a body `{"code", "message", "parameter"?}`.
#[derive(Debug, Serialize)]
struct ErrorBody {
    code: i32,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<String>,
}

/// A refusal or failure, with what the access record says.
struct Failure {
    status: StatusCode,
    body: ErrorBody,
    outcome: &'static str,
}

impl Failure {
    fn bad_parameter(e: &FilterError) -> Failure {
        Failure {
            status: StatusCode::BAD_REQUEST,
            body: ErrorBody {
                code: 3,
                message: e.to_string(),
                parameter: Some(e.parameter().to_owned()),
            },
            outcome: "bad_request",
        }
    }

    fn response(&self) -> Response {
        json_response(self.status, &self.body)
    }
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = (status, bytes).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `GET /api/v1/query`.
pub async fn query(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    peer: Option<Extension<Peer>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    serve(state, principal, peer.map(|p| p.0), params, Kind::Query).await
}

/// `GET /api/v1/summary` ([`super::summary`]).
pub async fn summary(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    peer: Option<Extension<Peer>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    serve(state, principal, peer.map(|p| p.0), params, Kind::Summary).await
}

/// `GET /api/v1/integrity` ([`super::integrity`]; no parameters).
pub async fn integrity(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    peer: Option<Extension<Peer>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    serve(state, principal, peer.map(|p| p.0), params, Kind::Integrity).await
}

/// `GET /api/v1/aggregate`.
pub async fn aggregate(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    peer: Option<Extension<Peer>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    serve(state, principal, peer.map(|p| p.0), params, Kind::Aggregate).await
}

async fn serve(
    state: AppState,
    principal: Principal,
    peer: Option<Peer>,
    params: Vec<(String, String)>,
    kind: Kind,
) -> Response {
    let mut event = AccessEvent {
        principal: principal.id.clone(),
        role: Role::Read.as_str().into(),
        tenant: principal.tenant.clone(),
        peer: peer.map(|p| p.addr.to_string()),
        endpoint: kind.path().into(),
        parameters: params.clone(),
        rows: 0,
        bytes: 0,
        outcome: "ok".into(),
    };
    let answer = match fleet::source(&params, state.fleet.as_deref()) {
        Err(e) => Err(Failure::bad_parameter(&e)),
        Ok(src) => {
            let params = params
                .into_iter()
                .filter(|(k, _)| k != fleet::SOURCE_PARAM)
                .collect();
            answer(&state, src, &principal, params, kind).await
        }
    };
    let (response, rows) = match answer {
        Ok((body, rows)) => {
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            event.bytes = bytes.len() as u64;
            event.rows = rows;
            let mut r = (StatusCode::OK, bytes).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            (r, rows)
        }
        Err(f) => {
            event.outcome = f.outcome.into();
            (f.response(), 0)
        }
    };
    tracing::debug!(endpoint = kind.path(), rows, outcome = %event.outcome, "read");
    match state.audit.record(&event).await {
        Ok(()) => response,
        Err(_) if event.outcome != "ok" => response,
        Err(e) => Failure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: ErrorBody {
                code: 14,
                message: format!("the access record of this read could not be stored: {e}"),
                parameter: None,
            },
            outcome: "unavailable",
        }
        .response(),
    }
}

/// The answer body and its rows, or why not.
async fn answer(
    state: &AppState,
    src: Source,
    principal: &Principal,
    params: Vec<(String, String)>,
    kind: Kind,
) -> Result<(Value, u64), Failure> {
    if src == Source::ClickHouse && kind != Kind::Query {
        return Err(Failure::bad_parameter(&FilterError::BadValue {
            param: fleet::SOURCE_PARAM.into(),
            value: "clickhouse".into(),
            expected: "local (only /api/v1/query reads ClickHouse; ask it aggregates in SQL)",
        }));
    }
    let read = state.read.clone();
    let now = state.pipeline.now_unix_nano();
    let mut q = QueryParams::from_params(params.iter().map(|(k, v)| (k, v)), now)
        .map_err(|e| Failure::bad_parameter(&e))?;
    let aggregate_only = ["count", "group-by", "group_by", "every"];
    let query_only = ["limit", "order", "cursor"];
    let foreign = match kind {
        Kind::Query => params
            .iter()
            .find(|(k, _)| aggregate_only.contains(&k.as_str())),
        Kind::Aggregate => params
            .iter()
            .find(|(k, _)| query_only.contains(&k.as_str())),
        Kind::Summary => params.iter().find(|(k, _)| {
            query_only.contains(&k.as_str()) || aggregate_only.contains(&k.as_str())
        }),
        Kind::Integrity => params.first(),
    };
    if let Some((k, _)) = foreign {
        return Err(Failure::bad_parameter(&FilterError::BadValue {
            param: k.clone(),
            value: String::new(),
            expected: if kind == Kind::Integrity {
                "no parameter (integrity takes none)"
            } else {
                "a parameter of another endpoint (query: limit, order, cursor; \
                 aggregate: count, group-by, every)"
            },
        }));
    }
    if src == Source::ClickHouse && q.cursor.is_some() {
        return Err(Failure::bad_parameter(&FilterError::BadValue {
            param: "cursor".into(),
            value: String::new(),
            expected: "no cursor with source=clickhouse (narrow the time range with since and until)",
        }));
    }
    let source = match (src, read) {
        (Source::ClickHouse, _) => None,
        (Source::Local, Some(r)) => Some(r),
        (Source::Local, None) => return Err(no_data_dir()),
    };
    if kind == Kind::Integrity {
        let source = source.ok_or_else(no_data_dir)?;
        let ledgers = ledgers(state);
        let policy = state.pipeline.routes().policy().cloned();
        let p = principal.clone();
        let result = tokio::task::spawn_blocking(move || {
            super::integrity::integrity(&source, policy.as_ref(), &ledgers, |q| scoped(q, &p), now)
        })
        .await
        .map_err(|e| internal(e.to_string()))?;
        let mut i = result.map_err(|e| internal(e.to_string()))?;
        i.verify = state.verify.get();
        let rows = i.deletions.len() as u64;
        return Ok((serde_json::to_value(&i).unwrap_or_default(), rows));
    }
    scope_to_tenant(&mut q, principal)?;
    if kind == Kind::Query && q.limit.is_none() {
        q.limit = Some(DEFAULT_LIMIT);
    }
    let Some(source) = source else {
        return search_fleet(state, &q).await;
    };
    let result = tokio::task::spawn_blocking(move || run(&source, &q, kind))
        .await
        .map_err(|e| internal(e.to_string()))?;
    result.map_err(|e| match e {
        QueryError::Param(p) => Failure::bad_parameter(&p),
        QueryError::Read(r) => internal(r.to_string()),
    })
}

/// `source=clickhouse`: the query over the sink's table, with its completeness statement per
/// collector and log.
async fn search_fleet(state: &AppState, q: &QueryParams) -> Result<(Value, u64), Failure> {
    let Some(f) = state.fleet.clone() else {
        return Err(no_data_dir());
    };
    let found = fleet::search(&f, q, &ledgers(state))
        .await
        .map_err(|e| Failure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: ErrorBody {
                code: 14,
                message: e.to_string(),
                parameter: None,
            },
            outcome: "unavailable",
        })?;
    let rows = found.records.len() as u64;
    Ok((
        json!({
            "records": found.records,
            "next_cursor": null,
            "completeness": found.completeness,
            "stats": {"examined": found.examined},
        }),
        rows,
    ))
}

fn no_data_dir() -> Failure {
    Failure {
        status: StatusCode::SERVICE_UNAVAILABLE,
        body: ErrorBody {
            code: 14,
            message: "this collector serves no data directory for reading".into(),
            parameter: None,
        },
        outcome: "unavailable",
    }
}

/// Each class's live ledger size, by class name.
pub(crate) fn ledgers(state: &AppState) -> super::integrity::Ledgers {
    let routes = state.pipeline.routes();
    routes
        .names()
        .iter()
        .zip(routes.handles())
        .map(|(n, h)| (n.clone(), h.ledger_stats().tree_size()))
        .collect()
}

fn internal(message: String) -> Failure {
    tracing::error!(error = %message, "query failed");
    Failure {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        body: ErrorBody {
            code: 13,
            message,
            parameter: None,
        },
        outcome: "error",
    }
}

/// Scopes `q` as the query API does; false when `p` may not read it (another tenant).
pub(crate) fn scoped(q: &mut QueryParams, p: &Principal) -> bool {
    scope_to_tenant(q, p).is_ok()
}

/// A reader with a tenant reads only that tenant; admin (and a reader without a tenant) all.
fn scope_to_tenant(q: &mut QueryParams, p: &Principal) -> Result<(), Failure> {
    if p.roles.contains(&Role::Admin) {
        return Ok(());
    }
    let Some(own) = &p.tenant else {
        return Ok(());
    };
    if let Some(other) = q.filter.tenant.iter().find(|t| *t != own) {
        return Err(Failure {
            status: StatusCode::FORBIDDEN,
            body: ErrorBody {
                code: 7,
                message: format!("{} reads tenant {own:?} only, not {other:?}", p.id),
                parameter: Some("tenant".into()),
            },
            outcome: "permission_denied",
        });
    }
    q.filter.tenant = vec![own.clone()];
    Ok(())
}

fn run(source: &ReadSource, q: &QueryParams, kind: Kind) -> Result<(Value, u64), QueryError> {
    let opts = ScanOptions::default();
    match kind {
        Kind::Query => {
            let mut records = Vec::new();
            let listing = meshlog_query::records::list(
                &source.data_dir,
                source.keys.as_ref(),
                q,
                &opts,
                |_, r| {
                    records.push(Value::Object(r));
                    Ok(())
                },
            )?;
            let rows = records.len() as u64;
            Ok((
                json!({
                    "records": records,
                    "next_cursor": listing.next_cursor.map(|c| c.to_string()),
                    "completeness": listing.outcome.completeness,
                    "stats": listing.outcome.stats,
                }),
                rows,
            ))
        }
        Kind::Summary => {
            let s = super::summary::summarize(source, q)?;
            Ok((serde_json::to_value(&s).unwrap_or_default(), s.records))
        }
        Kind::Integrity => Ok((Value::Null, 0)),
        Kind::Aggregate => {
            let a = meshlog_query::aggregate::aggregate(
                &source.data_dir,
                source.keys.as_ref(),
                q,
                &opts,
            )?;
            let rows = a.groups.len() as u64;
            Ok((serde_json::to_value(&a).unwrap_or_default(), rows))
        }
    }
}
