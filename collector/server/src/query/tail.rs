//! `GET /api/v1/tail`: committed records as server-sent events, as they are fsync'd.
//!
//! Each record is one `message` event whose `id` is the record's position in the log
//! (`LEAF:RECORD`, see `meshlog_store::tail`) and whose `data` is the stored JSON record. A client
//! that reconnects with `Last-Event-ID` (or `from=ID`) gets the records after that position:
//! older ones read back from the segments, then live ones, with no gap and no duplicate, also
//! after a collector restart. Without either the tail starts at the newest committed position;
//! `from=start` starts at the oldest stored one.
//!
//! Other events carry no id (so a reconnect resumes from the last record seen):
//! - `lag`: the client fell more than `max_lag` batches (log leaves) behind the newest
//!   committed one; the tail jumped to live. `data` is `{"skipped": N, "from": ID, "to": ID}`:
//!   the N records from `from` up to `to` were not sent; reconnecting with the last id seen
//!   (`Last-Event-ID`) sends them.
//! - `gap`: `{"from": ID, "to": ID}`, positions retention has deleted.
//!
//! Every tail holds one store subscription (one open segment, one batch of records) and whatever
//! the connection buffers: the stream is only read as fast as the client takes it, so nothing
//! queues up per client. At most [`MAX_TAILS`] run at once; more are answered 503.
//!
//! The route is behind the `read` role. A principal with a tenant (and not admin) sees only
//! records of its tenant (`resource.meshlog.tenant`). Every opened tail is appended to the
//! audit log (`meshlog.access`, outcome `ok`) before the first event, and again when it ends
//! (outcome `ended`, with the rows and bytes sent); refused and bad requests are appended too.
//!
//! Filters are the query API's ([`TailFilter`] wraps `meshlog_query::Filter`): the same
//! parameters, the same meaning.
//!
//! `class=NAME` follows one retention class (default: the default class); `class=all` follows
//! every class in one stream ([`meshlog_store::tail::merged`]): each class's records in their
//! order, the classes interleaved as records come. Its event ids are cursors,
//! `NAME=LEAF:RECORD,…`: per class, the position the stream continues from after this event,
//! so `Last-Event-ID` (or `from=`) resumes every class with no gap and no duplicate. `gap`
//! events then also name the `class`, and `lag` events carry cursors.

use crate::AppState;
use crate::audit_log::AccessEvent;
use crate::auth::{Peer, Principal, Role};
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use meshlog_store::StoreHandle;
use meshlog_store::tail::merged::{Cursor, Merged};
use meshlog_store::tail::{Position, Subscription, TailError, TailEvent};
use serde_json::{Map, Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The endpoint.
pub const TAIL_PATH: &str = "/api/v1/tail";
/// Tails served at once; more are answered 503.
pub const MAX_TAILS: usize = 1024;
/// Default `max_lag`: batches (log leaves) a client may fall behind before a `lag` event.
pub const DEFAULT_MAX_LAG: u64 = 10_000;
/// Largest `max_lag` a client may ask for.
pub const MAX_MAX_LAG: u64 = 10_000_000;

/// Why a tail request is refused.
#[derive(Debug, thiserror::Error)]
pub enum TailRequestError {
    /// A query parameter (or `Last-Event-ID`) is wrong: 400 naming it.
    #[error("parameter {name}: {message}")]
    BadParameter {
        /// The parameter.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// [`MAX_TAILS`] tails are open: 503.
    #[error("too many tails are open (at most {MAX_TAILS}); retry later")]
    TooMany,
    /// The access record could not be stored, so the read is not served: 503.
    #[error("the access record could not be stored; retry later")]
    AuditUnavailable,
}

impl TailRequestError {
    fn bad(name: &str, message: impl Into<String>) -> Self {
        TailRequestError::BadParameter {
            name: name.to_owned(),
            message: message.into(),
        }
    }

    fn outcome(&self) -> &'static str {
        match self {
            TailRequestError::BadParameter { .. } => "bad_request",
            TailRequestError::TooMany => "too_many_tails",
            TailRequestError::AuditUnavailable => "unavailable",
        }
    }
}

impl IntoResponse for TailRequestError {
    fn into_response(self) -> Response {
        let (status, parameter) = match &self {
            TailRequestError::BadParameter { name, .. } => {
                (StatusCode::BAD_REQUEST, Some(name.clone()))
            }
            TailRequestError::TooMany | TailRequestError::AuditUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, None)
            }
        };
        let body = json!({ "error": self.to_string(), "parameter": parameter });
        let mut r = (status, axum::Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

/// The record filter of the tail: the query API's [`Filter`](meshlog_query::Filter), with the
/// same parameters (`service`, `status`, `trace-id`, `where`, ...).
#[derive(Debug, Clone, Default)]
pub struct TailFilter(meshlog_query::Filter);

impl TailFilter {
    /// The filter from the request's filter parameters (those the tail itself does not take);
    /// `now_ns` anchors relative times (`since=1h`).
    pub fn parse(params: &[(String, String)], now_ns: u64) -> Result<Self, TailRequestError> {
        let mut f = meshlog_query::Filter::default();
        for (k, v) in params {
            let known = f
                .parse_param(k, v, now_ns)
                .map_err(|e| TailRequestError::bad(k, e.to_string()))?;
            if !known {
                let e = meshlog_query::filter::unknown_parameter(k, &OWN_PARAMS);
                return Err(TailRequestError::bad(k, e.to_string()));
            }
        }
        Ok(TailFilter(f))
    }

    /// Whether `record` passes.
    pub fn matches(&self, record: &Map<String, Value>) -> bool {
        self.0.matches(record)
    }

    /// Whether every record passes (then records need not be parsed).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where a tail starts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Start {
    /// At the newest committed position (only new records).
    End,
    /// At the oldest stored position.
    Beginning,
    /// Just after this record (`from=ID`, `Last-Event-ID` of a one-class tail).
    After(String),
}

/// The `class` value that follows every class (as `classes = "all"` of a legal hold).
pub const ALL_CLASSES: &str = "all";

impl Start {
    /// Where a one-class tail starts (`name` is the parameter, for errors).
    fn position(&self, handle: &StoreHandle, name: &str) -> Result<Position, TailRequestError> {
        Ok(match self {
            Start::End => handle.committed_end(),
            Start::Beginning => Position::START,
            Start::After(id) => id
                .parse::<Position>()
                .map_err(|e| TailRequestError::bad(name, format!("{e}; or start, or end")))?
                .after(),
        })
    }

    /// Where a `class=all` tail starts in each class: a cursor names the position to continue
    /// from in each class; a class it does not name starts at its oldest record.
    fn cursor(&self, name: &str) -> Result<Option<Cursor>, TailRequestError> {
        match self {
            Start::End | Start::Beginning => Ok(None),
            Start::After(id) => id.parse::<Cursor>().map(Some).map_err(|e| {
                TailRequestError::bad(
                    name,
                    format!(
                        "{e}: with class=all an id is a cursor NAME=LEAF:RECORD,…; or start, or end"
                    ),
                )
            }),
        }
    }
}

/// A parsed tail request.
#[derive(Debug)]
struct TailRequest {
    start: Start,
    /// The parameter (or header) `start` came from, for errors.
    start_from: &'static str,
    class: Option<String>,
    max_lag: u64,
    filter: TailFilter,
}

/// The parameters the tail takes itself; the others are the filter's.
const OWN_PARAMS: [&str; 3] = ["from", "class", "max_lag"];

fn parse_request(
    params: &[(String, String)],
    last_event_id: Option<&HeaderValue>,
    now_ns: u64,
) -> Result<TailRequest, TailRequestError> {
    let mut start = Start::End;
    let mut start_from = "from";
    let mut class = None;
    let mut max_lag = DEFAULT_MAX_LAG;
    let mut rest = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "from" => {
                start = match v.as_str() {
                    "start" => Start::Beginning,
                    "end" => Start::End,
                    id => Start::After(id.to_owned()),
                }
            }
            "class" => class = Some(v.clone()),
            "max_lag" => {
                max_lag = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=MAX_MAX_LAG).contains(n))
                    .ok_or_else(|| {
                        TailRequestError::bad(
                            "max_lag",
                            format!("{v:?} is not a number of batches from 1 to {MAX_MAX_LAG}"),
                        )
                    })?;
            }
            _ => rest.push((k.clone(), v.clone())),
        }
    }
    debug_assert!(rest.iter().all(|(k, _)| !OWN_PARAMS.contains(&k.as_str())));
    // A reconnecting EventSource sends the URL it started with plus the id it saw last: the
    // header wins.
    if let Some(v) = last_event_id {
        let id = v
            .to_str()
            .map_err(|_| TailRequestError::bad("Last-Event-ID", "not ASCII"))?
            .trim();
        if !id.is_empty() {
            start = Start::After(id.to_owned());
            start_from = "Last-Event-ID";
        }
    }
    // The id's form depends on the class: checked now, so a bad one is a 400.
    if class.as_deref() == Some(ALL_CLASSES) {
        start.cursor(start_from)?;
    } else if let Start::After(id) = &start {
        id.parse::<Position>()
            .map_err(|e| TailRequestError::bad(start_from, format!("{e}; or start, or end")))?;
    }
    Ok(TailRequest {
        start,
        start_from,
        class,
        max_lag,
        filter: TailFilter::parse(&rest, now_ns)?,
    })
}

/// The open tails, and the signal that stops them when the collector shuts down (an open
/// stream would otherwise hold the graceful drain until its timeout).
#[derive(Debug)]
pub struct Tails {
    open: AtomicUsize,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Default for Tails {
    fn default() -> Self {
        Tails {
            open: AtomicUsize::new(0),
            stop: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl Tails {
    /// Ends every open tail (they end their streams; clients resume after a restart).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Tails open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// One slot of [`MAX_TAILS`], freed on drop.
struct Slot(Arc<Tails>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn query_pairs(q: Option<&str>) -> Result<Vec<(String, String)>, TailRequestError> {
    let Some(q) = q else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for p in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        let dec = |s: &str| {
            percent_decode(s).ok_or_else(|| TailRequestError::bad(k, "bad percent-encoding"))
        };
        out.push((dec(k)?, dec(v)?));
    }
    Ok(out)
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space); `None` on bad escapes.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = char::from(bytes.next()?).to_digit(16)?;
                let lo = char::from(bytes.next()?).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// What the handler needs from the request, for the audit record.
struct Caller {
    principal: Principal,
    peer: Option<Peer>,
    params: Vec<(String, String)>,
}

impl Caller {
    fn event(&self, outcome: &str, rows: u64, bytes: u64) -> AccessEvent {
        AccessEvent {
            principal: self.principal.id.clone(),
            role: Role::Read.as_str().into(),
            tenant: self.principal.tenant.clone(),
            peer: self.peer.as_ref().map(|p| p.addr.to_string()),
            endpoint: TAIL_PATH.into(),
            parameters: self.params.clone(),
            rows,
            bytes,
            outcome: outcome.into(),
        }
    }
}

/// The handler.
pub async fn tail(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut caller = Caller {
        principal,
        peer: peer.map(|Extension(p)| p),
        params: Vec::new(),
    };
    match open(&state, &mut caller, &headers, query.as_deref()).await {
        Ok(r) => r,
        Err(e) => {
            let _ = state.audit.record(&caller.event(e.outcome(), 0, 0)).await;
            e.into_response()
        }
    }
}

async fn open(
    state: &AppState,
    caller: &mut Caller,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Response, TailRequestError> {
    let params = query_pairs(query)?;
    caller.params = params.clone();
    if let Some(id) = headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        caller.params.push(("Last-Event-ID".into(), id.to_owned()));
    }
    let req = parse_request(
        &params,
        headers.get("last-event-id"),
        state.pipeline.now_unix_nano(),
    )?;
    let routes = state.pipeline.routes();
    let all = req.class.as_deref() == Some(ALL_CLASSES);
    let handle: Option<StoreHandle> = match &req.class {
        None => routes.default_handle().cloned(),
        Some(_) if all => None,
        Some(name) => routes
            .names()
            .iter()
            .position(|n| n == name)
            .and_then(|i| routes.handles().get(i).cloned()),
    };
    if handle.is_none() && !all {
        return Err(TailRequestError::bad(
            "class",
            format!(
                "no retention class {:?} (classes: {}; or {ALL_CLASSES} for all of them)",
                req.class.as_deref().unwrap_or_default(),
                routes.names().join(", ")
            ),
        ));
    }
    let tails = state.tails.clone();
    if tails.open.fetch_add(1, Ordering::Relaxed) >= MAX_TAILS {
        tails.open.fetch_sub(1, Ordering::Relaxed);
        return Err(TailRequestError::TooMany);
    }
    let slot = Slot(tails.clone());
    // The access is on record before anything is sent.
    state
        .audit
        .record(&caller.event("ok", 0, 0))
        .await
        .map_err(|_| TailRequestError::AuditUnavailable)?;
    // Started after the access record, so a tail from the end does not show its own.
    let source = match &handle {
        Some(h) => Source::One(h.subscribe(req.start.position(h, req.start_from)?)),
        None => {
            let cursor = req.start.cursor(req.start_from)?;
            let subs = routes
                .names()
                .iter()
                .zip(routes.handles())
                .map(|(name, h)| {
                    let from = match (&req.start, &cursor) {
                        (Start::End, _) => h.committed_end(),
                        (_, Some(c)) => c.get(name).unwrap_or(Position::START),
                        _ => Position::START,
                    };
                    (name.clone(), h.subscribe(from))
                })
                .collect();
            Source::All(Merged::new(subs))
        }
    };
    let tenant = if caller.principal.roles.contains(&Role::Admin) {
        None
    } else {
        caller.principal.tenant.clone()
    };
    let stream = TailStream {
        source,
        filter: req.filter,
        tenant,
        max_lag: req.max_lag,
        stop: tails.stop.subscribe(),
        ended: false,
        done: Done {
            audit: state.audit.clone(),
            event: Some(caller.event("ended", 0, 0)),
            _slot: slot,
        },
    };
    let events = futures_util::stream::unfold(stream, |mut s| async move {
        let ev = s.next_event().await?;
        Some((Ok::<_, Infallible>(ev), s))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// Appends the `ended` access record (with what was sent) when the stream is dropped.
struct Done {
    audit: Arc<crate::audit_log::AuditLog>,
    event: Option<AccessEvent>,
    _slot: Slot,
}

impl Drop for Done {
    fn drop(&mut self) {
        let (Some(e), Ok(rt)) = (self.event.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let audit = self.audit.clone();
        rt.spawn(async move {
            let _ = audit.record(&e).await;
        });
    }
}

/// What a tail reads: one class's subscription, or every class's merged.
enum Source {
    One(Subscription),
    All(Merged),
}

impl Source {
    fn behind(&self) -> u64 {
        match self {
            Source::One(s) => s.behind(),
            Source::All(m) => m.behind(),
        }
    }

    /// Where the stream stands, as an id (`LEAF:RECORD` of the next record, or a cursor).
    fn here(&self) -> String {
        match self {
            Source::One(s) => s.position().to_string(),
            Source::All(m) => m.cursor().to_string(),
        }
    }

    fn skip_to_live(&mut self) -> Result<u64, TailError> {
        match self {
            Source::One(s) => s.skip_to_live(),
            Source::All(m) => m.skip_to_live(),
        }
    }

    /// The next event and, for `class=all`, its class's name.
    async fn next(&mut self) -> Result<(TailEvent, Option<String>), TailError> {
        match self {
            Source::One(s) => Ok((s.next().await?, None)),
            Source::All(m) => {
                let ev = m.next().await?;
                let name = m.names().nth(ev.store).map(str::to_owned);
                Ok((ev.event, name))
            }
        }
    }

    /// The id of a record just delivered at `position`: the position itself for one class
    /// (resumed after it), the cursor after it for all classes (resumed at it).
    fn record_id(&self, position: Position) -> String {
        match self {
            Source::One(_) => position.to_string(),
            Source::All(m) => m.cursor().to_string(),
        }
    }
}

struct TailStream {
    source: Source,
    filter: TailFilter,
    tenant: Option<String>,
    max_lag: u64,
    stop: tokio::sync::watch::Receiver<bool>,
    ended: bool,
    done: Done,
}

impl TailStream {
    fn count(&mut self, bytes: usize) {
        if let Some(e) = &mut self.done.event {
            e.rows += 1;
            e.bytes += bytes as u64;
        }
    }

    /// The next event to send; `None` ends the stream.
    async fn next_event(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        loop {
            // A filter that passes little can read far without sending: let other tasks run.
            tokio::task::consume_budget().await;
            if self.source.behind() > self.max_lag {
                let from = self.source.here();
                return match self.source.skip_to_live() {
                    Ok(skipped) => {
                        let to = self.source.here();
                        Some(
                            Event::default().event("lag").data(
                                json!({"skipped": skipped, "from": from, "to": to}).to_string(),
                            ),
                        )
                    }
                    Err(e) => Some(self.fail(&e)),
                };
            }
            let next = tokio::select! {
                ev = self.source.next() => ev,
                _ = self.stop.wait_for(|s| *s) => {
                    self.ended = true;
                    return None;
                }
            };
            match next {
                Ok((TailEvent::Record(r), _)) => {
                    // Parsed only when something looks into it.
                    if self.tenant.is_some() || !self.filter.is_empty() {
                        let Ok(record) = r.record() else {
                            tracing::warn!(position = %r.position, "a stored record is not a JSON object; not sent to the tail");
                            continue;
                        };
                        if let Some(t) = &self.tenant
                            && record
                                .get(meshlog_query::filter::field::TENANT)
                                .and_then(Value::as_str)
                                != Some(t)
                        {
                            continue;
                        }
                        if !self.filter.matches(&record) {
                            continue;
                        }
                    }
                    // Copied once, into the event (stored records are UTF-8 JSON).
                    let data = String::from_utf8_lossy(&r.json);
                    self.count(data.len());
                    let id = self.source.record_id(r.position);
                    return Some(Event::default().id(id).data(data));
                }
                Ok((TailEvent::Gap { from, to }, class)) => {
                    let mut data = Map::new();
                    data.insert("from".into(), from.to_string().into());
                    data.insert("to".into(), to.to_string().into());
                    if let Some(c) = class {
                        data.insert("class".into(), c.into());
                    }
                    let data = Value::Object(data).to_string();
                    return Some(Event::default().event("gap").data(data));
                }
                Err(TailError::Closed) => {
                    self.ended = true;
                    return None;
                }
                Err(e) => return Some(self.fail(&e)),
            }
        }
    }

    /// An `error` event, then the end of the stream.
    fn fail(&mut self, e: &TailError) -> Event {
        tracing::error!(error = %e, "tail stopped");
        self.ended = true;
        if let Some(ev) = &mut self.done.event {
            ev.outcome = "error".into();
        }
        Event::default()
            .event("error")
            .data(json!({"error": e.to_string()}).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        query_pairs(Some(q)).unwrap()
    }

    #[test]
    fn from_and_last_event_id_resume_after_the_id_and_the_header_wins() {
        let r = parse_request(&pairs("from=7:2"), None, 0).unwrap();
        assert_eq!(r.start, Start::After("7:2".into()));
        let r = parse_request(&pairs("from=start"), None, 0).unwrap();
        assert_eq!(r.start, Start::Beginning);
        let r = parse_request(&[], None, 0).unwrap();
        assert_eq!(r.start, Start::End);
        let h = HeaderValue::from_static("9:0");
        let r = parse_request(&pairs("from=7:2"), Some(&h), 0).unwrap();
        assert_eq!(
            (r.start, r.start_from),
            (Start::After("9:0".into()), "Last-Event-ID")
        );
        // All classes: the id is a cursor, resumed at (not after) each position.
        let h = HeaderValue::from_static("audit=3:1,default=9:0");
        let r = parse_request(&pairs("class=all"), Some(&h), 0).unwrap();
        let c = r.start.cursor("Last-Event-ID").unwrap().unwrap();
        assert_eq!(c.get("audit"), Some(Position { leaf: 3, record: 1 }));
        assert_eq!(c.get("default"), Some(Position::leaf(9)));
    }

    #[test]
    fn bad_parameters_are_named() {
        for (q, header, name) in [
            ("from=yesterday", None, "from"),
            ("max_lag=0", None, "max_lag"),
            ("max_lag=x", None, "max_lag"),
            ("colour=blue", None, "colour"),
            ("status=6xx", None, "status"),
            ("trace_id=xyz", None, "trace_id"),
            ("", Some("12"), "Last-Event-ID"),
            ("class=all", Some("12:0"), "Last-Event-ID"),
            ("class=all&from=12:0", None, "from"),
            ("from=default=12:0", None, "from"),
        ] {
            let h = header.map(HeaderValue::from_static);
            match parse_request(&pairs(q), h.as_ref(), 0) {
                Err(TailRequestError::BadParameter { name: n, .. }) => assert_eq!(n, name, "{q}"),
                other => panic!("{q}: {other:?}"),
            }
        }
    }

    #[test]
    fn filters_are_the_query_apis() {
        let r = parse_request(&pairs("status=5xx&service=checkout"), None, 0).unwrap();
        let rec = |status: i64, service: &str| {
            let Value::Object(m) = json!({
                "http.response.status_code": status,
                "resource.service.name": service,
            }) else {
                unreachable!()
            };
            m
        };
        assert!(r.filter.matches(&rec(503, "checkout")));
        assert!(!r.filter.matches(&rec(200, "checkout")));
        assert!(!r.filter.matches(&rec(503, "cart")));
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(
            pairs("a=%3A1+2&b"),
            [("a".into(), ":1 2".into()), ("b".into(), String::new())]
        );
        assert!(query_pairs(Some("a=%zz")).is_err());
    }
}
