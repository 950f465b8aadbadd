//! Who is calling: the SPIFFE id in a client certificate's URI SAN (mutual TLS), or the name of
//! a bearer token from `[[auth.tokens]]`. What the caller claims in headers (X-Forwarded-*,
//! X-Forwarded-Client-Cert) is never an identity.

use sha2::{Digest, Sha256};
use std::net::SocketAddr;

/// What the listener knows about a connection, put on every request it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The TCP peer.
    pub addr: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The first `spiffe://` URI SAN of the verified client certificate, if any.
    pub spiffe_id: Option<String>,
}

/// The first `spiffe://` URI SAN of a DER certificate.
pub fn spiffe_id(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(u) if u.starts_with("spiffe://") => {
            Some((*u).to_owned())
        }
        _ => None,
    })
}

/// SHA-256 of a token, lower-case hex: what `[[auth.tokens]] sha256` holds.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(value: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = s.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_and_their_hashes() {
        assert_eq!(bearer(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer(b"bearer   abc "), Some("abc"));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(
            token_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_spiffe_uri_san_is_the_identity_not_the_common_name() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["checkout.example".to_owned()]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "spiffe://evil/claimed");
        p.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://cluster.local/ns/shop/sa/checkout"
                .try_into()
                .unwrap(),
        ));
        let cert = p.self_signed(&key).unwrap();
        assert_eq!(
            spiffe_id(cert.der()).as_deref(),
            Some("spiffe://cluster.local/ns/shop/sa/checkout")
        );
        let p = rcgen::CertificateParams::new(vec!["x".to_owned()]).unwrap();
        assert_eq!(spiffe_id(p.self_signed(&key).unwrap().der()), None);
    }
}
