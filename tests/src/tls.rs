//! Certificates and a TLS client for tests of mTLS identity: a throwaway CA, a server certificate
//! for Envoy's listener, and a client certificate whose URI SAN is a SPIFFE id, as Istio issues.
//! Made fresh for every test (rcgen), so nothing secret or expiring lives in the repository.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use sha2::{Digest, Sha256};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A CA, a server certificate for `server_name`, and a client certificate for `client_spiffe_id`.
pub struct Pki {
    _dir: tempfile::TempDir,
    /// The CA certificate, PEM file.
    pub ca: PathBuf,
    /// The server certificate chain, PEM file.
    pub server_cert: PathBuf,
    /// The server key, PEM file.
    pub server_key: PathBuf,
    /// The DNS name in the server certificate (and the SNI the client sends).
    pub server_name: String,
    /// The client's URI SAN.
    pub client_spiffe_id: String,
    client_cert: CertificateDer<'static>,
    client_key: Vec<u8>,
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// Another client certificate from the same CA (a second workload), for [`Pki::connect_as`].
pub struct ClientId {
    /// Its URI SAN.
    pub spiffe_id: String,
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

impl Pki {
    /// Makes the certificates and writes Envoy's files into a temporary directory.
    pub fn new(server_name: &str, client_spiffe_id: &str) -> Self {
        Pki::with_names(&[server_name], client_spiffe_id)
    }

    /// [`Pki::new`] with a server certificate for several DNS names (the first is the
    /// [`server_name`](Self::server_name)).
    pub fn with_names(server_names: &[&str], client_spiffe_id: &str) -> Self {
        let server_name = server_names.first().copied().unwrap_or("localhost");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "meshlog test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("server key");
        let server_params = CertificateParams::new(
            server_names
                .iter()
                .map(|n| (*n).to_owned())
                .collect::<Vec<_>>(),
        )
        .expect("server params");
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("server cert");

        let (client_cert, client_key) = client_cert(&issuer, client_spiffe_id);

        let write = |name: &str, pem: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, pem).expect("write PEM");
            p
        };
        Pki {
            ca: write("ca.pem", ca_cert.pem()),
            server_cert: write("server.pem", server_cert.pem()),
            server_key: write("server.key", server_key.serialize_pem()),
            server_name: server_name.to_owned(),
            client_spiffe_id: client_spiffe_id.to_owned(),
            client_cert,
            client_key,
            ca_der: ca_cert.der().clone(),
            issuer,
            _dir: dir,
        }
    }

    /// Another client certificate from the same CA, for `spiffe_id`, written as `NAME.pem` and
    /// `NAME.key`: (certificate, key).
    pub fn client_files(&self, name: &str, spiffe_id: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![SanType::URI(
            spiffe_id.try_into().expect("SPIFFE id as URI SAN"),
        )];
        let cert = params.signed_by(&key, &self.issuer).expect("client cert");
        let (c, k) = (
            self._dir.path().join(format!("{name}.pem")),
            self._dir.path().join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).expect("write PEM");
        std::fs::write(&k, key.serialize_pem()).expect("write PEM");
        (c, k)
    }

    /// A second client certificate from this CA, for `spiffe_id`.
    pub fn other_client(&self, spiffe_id: &str) -> ClientId {
        let (cert, key) = client_cert(&self.issuer, spiffe_id);
        ClientId {
            spiffe_id: spiffe_id.to_owned(),
            cert,
            key,
        }
    }

    /// SHA-256 of the client certificate (DER), upper-case hex: what the record should carry.
    pub fn client_cert_sha256(&self) -> String {
        hex::encode_upper(Sha256::digest(self.client_cert.as_ref()))
    }

    /// A `transport_socket` for an Envoy filter chain that terminates TLS and requires a client
    /// certificate from this CA, as one YAML flow mapping (no indentation to get wrong).
    pub fn downstream_transport_socket(&self) -> String {
        format!(
            r#"{{"name": "envoy.transport_sockets.tls", "typed_config": {{"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext", "require_client_certificate": true, "common_tls_context": {{"tls_certificates": [{{"certificate_chain": {{"filename": "{}"}}, "private_key": {{"filename": "{}"}}}}], "validation_context": {{"trusted_ca": {{"filename": "{}"}}}}}}}}}}"#,
            self.server_cert.display(),
            self.server_key.display(),
            self.ca.display()
        )
    }

    /// The substitutions that put [`Self::downstream_transport_socket`] on the first filter
    /// chain of a bootstrap whose chain starts `        - filters:` (as envoy-config's files do),
    /// and add the TLS inspector, which is what records the SNI (Istio always has it).
    pub fn on_filter_chain(&self) -> [(String, String); 2] {
        [
            (
                "      filter_chains:".to_owned(),
                "      listener_filters: [{\"name\": \"envoy.filters.listener.tls_inspector\", \"typed_config\": {\"@type\": \"type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector\"}}]\n      filter_chains:".to_owned(),
            ),
            (
                "        - filters:".to_owned(),
                format!(
                    "        - transport_socket: {}\n          filters:",
                    self.downstream_transport_socket()
                ),
            ),
        ]
    }

    /// A TLS connection to `addr` presenting the client certificate, SNI = the server name.
    pub fn connect(
        &self,
        addr: SocketAddr,
    ) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
        self.connect_with(addr, &self.client_cert, &self.client_key)
    }

    /// [`Pki::connect`] presenting `client` (from [`Pki::other_client`]) instead.
    pub fn connect_as(
        &self,
        addr: SocketAddr,
        client: &ClientId,
    ) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
        self.connect_with(addr, &client.cert, &client.key)
    }

    fn connect_with(
        &self,
        addr: SocketAddr,
        cert: &CertificateDer<'static>,
        key: &[u8],
    ) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca_der.clone())
            .map_err(std::io::Error::other)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![cert.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec())),
            )
            .map_err(std::io::Error::other)?;
        let name = ServerName::try_from(self.server_name.clone()).map_err(std::io::Error::other)?;
        let conn =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
        let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(rustls::StreamOwned::new(conn, sock))
    }
}

/// A client certificate whose URI SAN is `spiffe_id`, signed by `issuer`: DER and PKCS#8 key.
fn client_cert(
    issuer: &Issuer<'static, KeyPair>,
    spiffe_id: &str,
) -> (CertificateDer<'static>, Vec<u8>) {
    let key = KeyPair::generate().expect("client key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.subject_alt_names = vec![SanType::URI(
        spiffe_id.try_into().expect("SPIFFE id as URI SAN"),
    )];
    let cert = params.signed_by(&key, issuer).expect("client cert");
    (cert.der().clone(), key.serialize_der())
}
