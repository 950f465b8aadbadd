//! `[tls]`: the collector's server certificate, optionally a client CA (mutual TLS), the lowest
//! protocol version, and reloading all of them from disk without a restart.
//!
//! The files are read at start (a bad file stops `serve`) and then checked every
//! `reload_interval_s` and on SIGHUP: when any file's content changed, a new rustls
//! `ServerConfig` is built and used for new connections; connections already open keep theirs.
//! A reload that fails (a half-written file, a key that does not match) keeps the previous
//! configuration and is logged; the next check tries again.

use meshlog_core::config::fields::{FieldError, Fields, Problem};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// The ALPN protocols the server picks from, in its order of preference. gRPC needs `h2`;
/// OTLP/HTTP clients speak either. `istio` lets an Istio sidecar reach the collector directly
/// with `ISTIO_MUTUAL`: for a TCP or HTTP/1.1 cluster it offers only `istio-peer-exchange,
/// istio` (rustls refuses a handshake whose offer shares nothing with this list). The protocol
/// is then told by the first bytes (an HTTP/2 preface or not). `istio-peer-exchange` is never
/// picked: it would make the sidecar start Istio's TCP metadata exchange in the stream.
pub const ALPN_PROTOCOLS: [&[u8]; 3] = [b"h2", b"http/1.1", b"istio"];

/// Default seconds between checks of the certificate files.
pub const DEFAULT_RELOAD_INTERVAL_S: u64 = 60;

/// Lowest TLS version accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3 (the default).
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// The `[tls]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `cert_file`: the server certificate chain, PEM (leaf first). Required.
    pub cert_file: PathBuf,
    /// `key_file`: the server's private key, PEM (PKCS#8, PKCS#1 or SEC1). Required.
    pub key_file: PathBuf,
    /// `client_ca_file`: CA certificates, PEM. When set, every client must present a
    /// certificate that chains to one of them (mutual TLS); its SPIFFE URI SAN is the caller's
    /// identity. Default: none (clients are not asked for a certificate).
    pub client_ca_file: Option<PathBuf>,
    /// `min_version`: "1.2" (default) or "1.3".
    pub min_version: MinVersion,
    /// `reload_interval_s`: seconds between checks of the files for changes, 1 to 86400.
    /// Default 60. SIGHUP checks at once.
    pub reload_interval_s: u64,
}

impl TlsConfig {
    /// Reads the `[tls]` table, every problem into `errs`.
    pub fn parse(mut t: Fields<'_>, errs: &mut Vec<FieldError>) -> Option<TlsConfig> {
        let mut path = |t: &mut Fields<'_>, key: &'static str, required: bool| {
            let p = t.child_path(key);
            match t.raw(key) {
                None if required => {
                    errs.push(FieldError::new(
                        p,
                        Problem::Missing {
                            expected: "a PEM file path".into(),
                        },
                    ));
                    None
                }
                None => None,
                Some(serde_json::Value::String(s)) if !s.is_empty() => Some(PathBuf::from(s)),
                Some(v) => {
                    errs.push(FieldError::new(
                        p,
                        Problem::WrongType {
                            expected: "a non-empty string (a PEM file path)".into(),
                            got: v.to_string(),
                        },
                    ));
                    None
                }
            }
        };
        let cert = path(&mut t, "cert_file", true);
        let key = path(&mut t, "key_file", true);
        let ca = path(&mut t, "client_ca_file", false);
        let mut min_version = MinVersion::Tls12;
        let mv_path = t.child_path("min_version");
        match t.raw("min_version") {
            None => {}
            Some(serde_json::Value::String(s)) if s == "1.2" => {}
            Some(serde_json::Value::String(s)) if s == "1.3" => min_version = MinVersion::Tls13,
            Some(v) => errs.push(FieldError::new(
                mv_path,
                Problem::WrongType {
                    expected: "\"1.2\" or \"1.3\"".into(),
                    got: v.to_string(),
                },
            )),
        }
        let reload_interval_s = t
            .int("reload_interval_s", 1..=86_400, errs)
            .map_or(DEFAULT_RELOAD_INTERVAL_S, |v| v as u64);
        t.finish(errs);
        Some(TlsConfig {
            cert_file: cert?,
            key_file: key?,
            client_ca_file: ca,
            min_version,
            reload_interval_s,
        })
    }
}

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the combination (a key that does not match the certificate, an empty CA).
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_err(path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no CERTIFICATE in the file"));
    }
    Ok(certs)
}

/// `notAfter` of a DER certificate, Unix seconds.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// What one load produced.
struct Loaded {
    config: Arc<ServerConfig>,
    digest: [u8; 32],
    cert_not_after: Option<i64>,
    ca_not_after: Option<i64>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load(cfg: &TlsConfig) -> Result<Loaded, TlsError> {
    let mut digest = Sha256::new();
    let certs = read_certs(&cfg.cert_file)?;
    let key_pem = std::fs::read(&cfg.key_file).map_err(|e| file_err(&cfg.key_file, e))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| file_err(&cfg.key_file, format!("no usable private key: {e}")))?;
    for c in &certs {
        digest.update(c.as_ref());
    }
    digest.update(&key_pem);
    let versions: &[&rustls::SupportedProtocolVersion] = match cfg.min_version {
        MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut ca_not_after = None;
    let builder = match &cfg.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(ca)? {
                digest.update(c.as_ref());
                let na = not_after(c.as_ref());
                ca_not_after = match (ca_not_after, na) {
                    (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
                    (a, b) => a.or(b),
                };
                roots
                    .add(c)
                    .map_err(|e| file_err(ca, format!("not a usable CA certificate: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let cert_not_after = certs.first().and_then(|c| not_after(c.as_ref()));
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(Loaded {
        config: Arc::new(config),
        digest: digest.finalize().into(),
        cert_not_after,
        ca_not_after,
    })
}

/// The current TLS configuration, swapped when the files change.
#[derive(Debug)]
pub struct TlsReloader {
    cfg: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
    state: Mutex<([u8; 32], Option<i64>, Option<i64>)>,
}

impl TlsReloader {
    /// Loads the files named by `cfg`.
    pub fn load(cfg: TlsConfig) -> Result<TlsReloader, TlsError> {
        let l = load(&cfg)?;
        Ok(TlsReloader {
            cfg,
            current: RwLock::new(l.config),
            state: Mutex::new((l.digest, l.cert_not_after, l.ca_not_after)),
        })
    }

    /// The section it was made from.
    pub fn config(&self) -> &TlsConfig {
        &self.cfg
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.cfg.client_ca_file.is_some()
    }

    /// The configuration for a new connection.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// `notAfter` (Unix seconds) of the server certificate and of the earliest-expiring client
    /// CA certificate.
    pub fn expiry(&self) -> (Option<i64>, Option<i64>) {
        let s = match self.state.lock() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        };
        (s.1, s.2)
    }

    /// Re-reads the files; swaps the configuration if their content changed. `Ok(true)` when
    /// it did. On an error the previous configuration stays in use.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let l = load(&self.cfg)?;
        let mut st = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if st.0 == l.digest {
            return Ok(false);
        }
        *st = (l.digest, l.cert_not_after, l.ca_not_after);
        match self.current.write() {
            Ok(mut g) => *g = l.config,
            Err(p) => *p.into_inner() = l.config,
        }
        Ok(true)
    }
}
