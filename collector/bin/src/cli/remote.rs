//! What `meshlog query` and `meshlog tail` share: the filter flags (each also the name of the
//! API's query parameter, docs/query.md) and the flags that connect to a running collector
//! (its CA, a client certificate for mutual TLS, or a bearer token).

use super::RunError;
use clap::Args;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The record filters.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Filters")]
pub struct FilterFlags {
    /// Records at or after TIME: RFC 3339 (2026-01-31T12:00:00Z) or a duration before now
    /// (90s, 15m, 1h, 2d, 1w).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Records before TIME (as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// resource.service.name (repeat for any of several).
    #[arg(long, value_name = "NAME")]
    pub service: Vec<String>,
    /// resource.service.namespace or resource.k8s.namespace.name.
    #[arg(long, value_name = "NAME")]
    pub namespace: Vec<String>,
    /// resource.meshlog.tenant.
    #[arg(long, value_name = "NAME")]
    pub tenant: Vec<String>,
    /// http.response.status_code: 503, 5xx, or a list (4xx,5xx).
    #[arg(long, value_name = "CODES")]
    pub status: Vec<String>,
    /// http.request.method (GET, or GET,POST).
    #[arg(long, value_name = "METHOD")]
    pub method: Vec<String>,
    /// http.route (/users/{id}).
    #[arg(long, value_name = "ROUTE")]
    pub route: Vec<String>,
    /// meshlog.peer.principal (the caller's SPIFFE id).
    #[arg(long, value_name = "ID")]
    pub principal: Vec<String>,
    /// client.address.
    #[arg(long, value_name = "ADDRESS")]
    pub client: Vec<String>,
    /// trace_id (32 hex digits).
    #[arg(long, value_name = "ID")]
    pub trace_id: Vec<String>,
    /// meshlog.request_id (x-request-id).
    #[arg(long, value_name = "ID")]
    pub request_id: Vec<String>,
    /// enduser.id (the authenticated end user).
    #[arg(long, value_name = "ID")]
    pub enduser: Vec<String>,
    /// A substring of any value, ASCII case-insensitive (repeat: all must occur).
    #[arg(long, value_name = "TEXT")]
    pub text: Vec<String>,
    /// Any attribute equal to a value, e.g. url.path=/orders (repeat: all must hold).
    #[arg(long = "where", value_name = "KEY=VALUE")]
    pub where_: Vec<String>,
}

impl FilterFlags {
    /// The filters as `(parameter, value)` pairs, as the API takes them.
    pub fn params(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, v) in [("since", &self.since), ("until", &self.until)] {
            if let Some(v) = v {
                out.push((name.to_owned(), v.clone()));
            }
        }
        for (name, values) in [
            ("service", &self.service),
            ("namespace", &self.namespace),
            ("tenant", &self.tenant),
            ("status", &self.status),
            ("method", &self.method),
            ("route", &self.route),
            ("principal", &self.principal),
            ("client", &self.client),
            ("trace-id", &self.trace_id),
            ("request-id", &self.request_id),
            ("enduser", &self.enduser),
            ("text", &self.text),
            ("where", &self.where_),
        ] {
            out.extend(values.iter().map(|v| (name.to_owned(), v.clone())));
        }
        out
    }
}

/// How to reach a collector over TLS, and who asks.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Remote")]
pub struct RemoteFlags {
    /// CA certificate (PEM) that signed the collector's certificate.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS: its SPIFFE id is who reads.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// A bearer token ([[auth.tokens]]) instead of a client certificate.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MESHLOG_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

fn usage(flag: &str, p: &Path, e: impl std::fmt::Display) -> RunError {
    RunError::Usage(format!("--{flag} {}: {e}", p.display()))
}

impl RemoteFlags {
    /// An HTTP client trusting `--ca` (or the system's roots) and presenting `--cert`/`--key`;
    /// `timeout` bounds a whole request (none for a stream).
    pub fn client(&self, timeout: Option<Duration>) -> Result<reqwest::blocking::Client, RunError> {
        let remote = |e: &dyn std::fmt::Display| RunError::Remote(e.to_string());
        let mut b = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(timeout);
        if self.ca.is_some() || self.cert.is_some() {
            let mut roots = rustls::RootCertStore::empty();
            if let Some(ca) = &self.ca {
                for c in CertificateDer::pem_file_iter(ca).map_err(|e| usage("ca", ca, e))? {
                    roots
                        .add(c.map_err(|e| usage("ca", ca, e))?)
                        .map_err(|e| usage("ca", ca, e))?;
                }
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let cb = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| remote(&e))?
                .with_root_certificates(roots);
            let config = match (&self.cert, &self.key) {
                (Some(cert), Some(key)) => {
                    let chain = CertificateDer::pem_file_iter(cert)
                        .map_err(|e| usage("cert", cert, e))?
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| usage("cert", cert, e))?;
                    let k = PrivateKeyDer::from_pem_file(key).map_err(|e| usage("key", key, e))?;
                    cb.with_client_auth_cert(chain, k)
                        .map_err(|e| usage("cert", cert, e))?
                }
                _ => cb.with_no_client_auth(),
            };
            b = b.use_preconfigured_tls(config);
        }
        b.build().map_err(|e| remote(&e))
    }

    /// `req` with the bearer token, when there is one.
    pub fn authorize(
        &self,
        req: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }
}
