//! An audit of every read: each access to a read endpoint (and each refusal of one) is appended
//! to the tamper-evident log itself, through the ingest pipeline, as one record with event name
//! `meshlog.access`: who (principal, role, tenant), what (endpoint, parameters), how much (rows,
//! bytes) and the outcome. It is stored, fsync'd, chained and checkpointed like any record, and
//! kept in the tenant's retention class. `/metrics` is exempt.

use crate::auth::{Peer, Refusal};
use crate::ingest::pipeline::{DecodedBatch, Pipeline};
use crate::metrics::{Metrics, Transport};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::sync::Arc;

/// The event name of access records.
pub const ACCESS_EVENT: &str = "meshlog.access";

/// One access to a read endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessEvent {
    /// The caller's identity (or `-` when none was established).
    pub principal: String,
    /// The role the endpoint needs.
    pub role: String,
    /// The caller's tenant.
    pub tenant: Option<String>,
    /// The TCP peer.
    pub peer: Option<String>,
    /// The endpoint (path).
    pub endpoint: String,
    /// The request's parameters, as given.
    pub parameters: Vec<(String, String)>,
    /// Rows returned.
    pub rows: u64,
    /// Bytes returned.
    pub bytes: u64,
    /// `ok`, `unauthenticated`, `permission_denied`, or an error kind.
    pub outcome: String,
}

/// Appends access records.
#[derive(Debug, Clone)]
pub struct AuditLog {
    pipeline: Arc<Pipeline>,
    metrics: Arc<Metrics>,
}

fn s(key: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn i(key: &str, v: u64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(
                i64::try_from(v).unwrap_or(i64::MAX),
            )),
        }),
        ..Default::default()
    }
}

/// The OTLP request holding `e` as one record.
pub fn access_request(e: &AccessEvent, now_unix_nano: u64) -> ExportLogsServiceRequest {
    let mut attributes = vec![
        s("meshlog.access.principal", e.principal.as_str()),
        s("meshlog.access.role", e.role.as_str()),
        s("meshlog.access.endpoint", e.endpoint.as_str()),
        i("meshlog.access.rows", e.rows),
        i("meshlog.access.bytes", e.bytes),
        s("meshlog.access.outcome", e.outcome.as_str()),
    ];
    if let Some(t) = &e.tenant {
        attributes.push(s("meshlog.access.tenant", t.as_str()));
    }
    if let Some(p) = &e.peer {
        attributes.push(s("source.address", p.as_str()));
    }
    for (k, v) in &e.parameters {
        attributes.push(s(&format!("meshlog.access.parameter.{k}"), v.as_str()));
    }
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![s("service.name", "meshlog-collector")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "meshlog.audit".into(),
                    ..Default::default()
                }),
                log_records: vec![LogRecord {
                    time_unix_nano: now_unix_nano,
                    observed_time_unix_nano: now_unix_nano,
                    event_name: ACCESS_EVENT.into(),
                    attributes,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

impl AuditLog {
    /// Access records go through `pipeline`.
    pub fn new(pipeline: Arc<Pipeline>, metrics: Arc<Metrics>) -> Self {
        AuditLog { pipeline, metrics }
    }

    /// Appends `e` and waits for its fsync. A read must not be answered when its access
    /// record could not be stored: callers answer 503 on an error.
    pub async fn record(&self, e: &AccessEvent) -> Result<(), crate::ApiError> {
        let now = self.pipeline.now_unix_nano();
        let request = access_request(e, now);
        let size = request.encoded_len() as u64;
        let r = self
            .pipeline
            .ingest_decoded(DecodedBatch {
                request,
                size,
                batch_id: None,
                received_unix_nano: now,
                tenant: e.tenant.clone(),
            })
            .await;
        match &r {
            Ok(_) => self.metrics.stored(Transport::Internal, 1),
            Err(err) => {
                tracing::error!(error = %err, endpoint = %e.endpoint, "access record not stored");
            }
        }
        r.map(|_| ())
    }

    /// Appends the record of a refused read, with the request's query parameters as given.
    pub async fn refused(
        &self,
        peer: Option<&Peer>,
        endpoint: &str,
        query: Option<&str>,
        r: &Refusal,
    ) {
        let e = AccessEvent {
            principal: peer
                .and_then(|p| p.spiffe_id.clone())
                .unwrap_or_else(|| "-".into()),
            role: "read".into(),
            tenant: None,
            peer: peer.map(|p| p.addr.to_string()),
            endpoint: endpoint.to_owned(),
            parameters: query.map(query_pairs).unwrap_or_default(),
            rows: 0,
            bytes: 0,
            outcome: r.reason().into(),
        };
        let _ = self.record(&e).await;
    }
}

/// `a=1&b=x` as pairs; a pair without `=` has an empty value. Values stay as sent
/// (percent-encoded): the record shows what was asked.
fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (p.to_owned(), String::new()),
        })
        .collect()
}
