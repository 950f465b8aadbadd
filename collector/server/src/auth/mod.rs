//! Who may do what: transport security ([`tls`]), the caller's identity ([`identity`]: a SPIFFE
//! id from a verified client certificate, or a bearer token), and principals with roles and
//! tenants ([`roles`]). [`require`] is the layer every protected route goes through: it
//! answers 401 (gRPC UNAUTHENTICATED) when no identity is known, 403 (PERMISSION_DENIED) when
//! the identity lacks the route's role, and otherwise puts the [`Principal`] on the request.
//! A refused request reaches no handler, so nothing of it is stored.

pub mod identity;
pub mod roles;
pub mod tls;

pub use identity::Peer;
pub use roles::{AuthConfig, Principal, Role};

use crate::metrics::Metrics;
use crate::ratelog::RateLimited;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

/// Who is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthPolicy {
    /// No `[auth]`: no identity is asked for. On a loopback-only listener every caller has
    /// every role; otherwise callers may only ingest.
    Open {
        /// Whether every listener is on a loopback address.
        loopback_only: bool,
    },
    /// `[auth]`: only configured principals, with their roles.
    Enforced(AuthConfig),
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No identity (no client certificate with a SPIFFE id, no known bearer token).
    Unauthenticated(String),
    /// An identity without the role.
    Forbidden(String),
}

impl Refusal {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Unauthenticated(_) => "unauthenticated",
            Refusal::Forbidden(_) => "permission_denied",
        }
    }
}

impl AuthPolicy {
    /// The principal for a request from `peer` with `authorization`, if it holds `role`.
    pub fn authorize(
        &self,
        peer: Option<&Peer>,
        authorization: Option<&HeaderValue>,
        role: Role,
    ) -> Result<Principal, Refusal> {
        let cfg = match self {
            AuthPolicy::Open { loopback_only } => {
                if *loopback_only || role == Role::Ingest {
                    return Ok(Principal {
                        id: "anonymous".into(),
                        roles: vec![Role::Admin],
                        tenant: None,
                    });
                }
                return Err(Refusal::Forbidden(format!(
                    "the {} role needs an [auth] section on a listener that is not loopback-only",
                    role.as_str()
                )));
            }
            AuthPolicy::Enforced(cfg) => cfg,
        };
        let token = authorization.and_then(|v| identity::bearer(v.as_bytes()));
        let id = match (peer.and_then(|p| p.spiffe_id.as_deref()), token) {
            (Some(id), _) => id.to_owned(),
            (None, Some(t)) => match cfg.token_id(t) {
                Some(id) => id.to_owned(),
                None => return Err(Refusal::Unauthenticated("unknown bearer token".into())),
            },
            (None, None) => {
                return Err(Refusal::Unauthenticated(
                    "no identity: present a client certificate with a SPIFFE id, or a bearer \
                     token"
                        .into(),
                ));
            }
        };
        match cfg.principal(&id) {
            Some(p) if p.has(role) => Ok(p),
            Some(_) => Err(Refusal::Forbidden(format!(
                "{id} does not have the {} role",
                role.as_str()
            ))),
            None => Err(Refusal::Forbidden(format!(
                "{id} is not a configured principal"
            ))),
        }
    }
}

/// What [`require`] needs: the policy, the route's role, and where refusals are counted.
#[derive(Debug, Clone)]
pub struct Gate {
    /// The policy.
    pub policy: Arc<AuthPolicy>,
    /// The role the routes behind this gate need ([`Role::Metrics`] also admits admin).
    pub role: Role,
    /// Refusals counted here.
    pub metrics: Arc<Metrics>,
    /// Refusals of read endpoints are appended to the audit log.
    pub audit: Option<Arc<crate::audit_log::AuditLog>>,
}

static REFUSAL_LOG: RateLimited = RateLimited::new(Duration::from_secs(10));

/// The middleware: refuses, or puts the [`Principal`] on the request.
pub async fn require(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<Peer>().cloned();
    let authz = req.headers().get(header::AUTHORIZATION).cloned();
    match gate
        .policy
        .authorize(peer.as_ref(), authz.as_ref(), gate.role)
    {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(r) => {
            gate.metrics.refusal(r.reason());
            let path = req.uri().path().to_owned();
            let query = req.uri().query().map(str::to_owned);
            if let Some(suppressed) = REFUSAL_LOG.allow() {
                tracing::warn!(
                    peer = %peer.as_ref().map_or_else(|| "?".to_owned(), |p| p.addr.to_string()),
                    path = %path,
                    suppressed,
                    "refused ({}): {}",
                    r.reason(),
                    match &r {
                        Refusal::Unauthenticated(m) | Refusal::Forbidden(m) => m,
                    }
                );
            }
            if let Some(audit) = &gate.audit
                && gate.role == Role::Read
            {
                audit
                    .refused(peer.as_ref(), &path, query.as_deref(), &r)
                    .await;
            }
            refusal_response(&req, &r)
        }
    }
}

/// 401/403 with a `google.rpc.Status` JSON body, or a gRPC status for gRPC requests.
pub fn refusal_response(req: &Request, r: &Refusal) -> Response {
    let grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let (status, code, message, grpc_status) = match r {
        Refusal::Unauthenticated(m) => (
            StatusCode::UNAUTHORIZED,
            16,
            m.clone(),
            tonic::Status::unauthenticated(m.clone()),
        ),
        Refusal::Forbidden(m) => (
            StatusCode::FORBIDDEN,
            7,
            m.clone(),
            tonic::Status::permission_denied(m.clone()),
        ),
    };
    if grpc {
        return grpc_status.into_http::<axum::body::Body>();
    }
    let body = serde_json::to_vec(&crate::ingest::error::Status { code, message })
        .unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use roles::PrincipalRule;

    fn peer(id: Option<&str>) -> Peer {
        Peer {
            addr: "10.0.0.1:5000".parse().unwrap(),
            tls: true,
            spiffe_id: id.map(str::to_owned),
        }
    }

    #[test]
    fn identities_roles_and_tokens() {
        let policy = AuthPolicy::Enforced(AuthConfig {
            principals: vec![
                PrincipalRule {
                    id: "spiffe://c/ns/*/sa/checkout".into(),
                    roles: vec![Role::Ingest],
                    tenant: Some("shop".into()),
                },
                PrincipalRule {
                    id: "scraper".into(),
                    roles: vec![Role::Metrics],
                    tenant: None,
                },
            ],
            tokens: vec![roles::TokenRule {
                id: "scraper".into(),
                sha256: identity::token_sha256("s3cret"),
            }],
        });
        let p = policy
            .authorize(
                Some(&peer(Some("spiffe://c/ns/a/sa/checkout"))),
                None,
                Role::Ingest,
            )
            .unwrap();
        assert_eq!(p.tenant.as_deref(), Some("shop"));
        assert_eq!(
            policy
                .authorize(
                    Some(&peer(Some("spiffe://c/ns/a/sa/checkout"))),
                    None,
                    Role::Read
                )
                .unwrap_err()
                .reason(),
            "permission_denied"
        );
        assert_eq!(
            policy
                .authorize(Some(&peer(None)), None, Role::Ingest)
                .unwrap_err()
                .reason(),
            "unauthenticated"
        );
        let good = HeaderValue::from_static("Bearer s3cret");
        let p = policy.authorize(None, Some(&good), Role::Metrics).unwrap();
        assert_eq!(p.id, "scraper");
        let bad = HeaderValue::from_static("Bearer s3cre");
        assert_eq!(
            policy
                .authorize(None, Some(&bad), Role::Metrics)
                .unwrap_err(),
            Refusal::Unauthenticated("unknown bearer token".into())
        );
        let open = AuthPolicy::Open {
            loopback_only: false,
        };
        assert!(open.authorize(None, None, Role::Ingest).is_ok());
        assert!(open.authorize(None, None, Role::Metrics).is_err());
        let open = AuthPolicy::Open {
            loopback_only: true,
        };
        assert!(open.authorize(None, None, Role::Metrics).is_ok());
    }
}
