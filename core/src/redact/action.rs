//! What happens to a detected value: [`Action`], keyed hashing and partial rendering.

use super::Kind;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use std::fmt::Write as _;

/// What the policy does with a value of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Replace with `[REDACTED:<kind>]`.
    Mask,
    /// Replace with `hmac:<key id>:<32 hex>`: HMAC-SHA256 (keyed by `hmac_key`) of the kind and the
    /// normalized value, truncated to 16 bytes. Equal values join across records; the value is not
    /// readable. Numeric kinds are hashed on their digits only, IBANs on their compact upper-case
    /// form, e-mails lower-cased, IPs in canonical form.
    Hash,
    /// Keep a harmless part (see [`Kind`] and the module docs): the last 4 digits of a card, SSN or
    /// phone (`[REDACTED:card:1234]`), the country and last 4 of an IBAN (`[REDACTED:iban:DE..0565]`),
    /// the domain of an e-mail (`[REDACTED:email]@example.com`), the network prefix of an IP
    /// (`45.229.133.0`), the user of URL credentials (`maria:[REDACTED:url_credentials]`), the
    /// public prefix of a vendor token (`[REDACTED:github_token:ghp_]`).
    Partial,
    /// Drop the whole field (header, path, query, text field) from the record.
    Drop,
    /// Do not detect this kind at all (not allowed for `cookie` and `credential`).
    Off,
}

impl Action {
    /// Every action, in config spelling order.
    pub const ALL: [Action; 5] = [
        Action::Mask,
        Action::Hash,
        Action::Partial,
        Action::Drop,
        Action::Off,
    ];

    /// The config spelling: `mask`, `hash`, `partial`, `drop`, `off`.
    pub const fn name(self) -> &'static str {
        match self {
            Action::Mask => "mask",
            Action::Hash => "hash",
            Action::Partial => "partial",
            Action::Drop => "drop",
            Action::Off => "off",
        }
    }

    /// Parses the config spelling.
    pub fn from_name(s: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.name() == s)
    }
}

/// Whether `partial` means something for `kind`.
pub(crate) const fn partial_defined(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Card
            | Kind::Ssn
            | Kind::Phone
            | Kind::Iban
            | Kind::Email
            | Kind::Ip
            | Kind::UrlCredentials
            | Kind::AwsAccessKey
            | Kind::GithubToken
            | Kind::GitlabToken
            | Kind::SlackToken
            | Kind::StripeKey
            | Kind::GoogleApiKey
            | Kind::OpenaiKey
            | Kind::AnthropicKey
            | Kind::ApiKey
    )
}

/// HMAC-SHA256 keyed once at configure time; cloned per value (no re-keying).
#[derive(Clone)]
pub(crate) struct Hasher {
    mac: Hmac<Sha256>,
    pub(crate) key_id: String,
    /// SHA-256 of the key, only to tell two policies apart (never logged, never in the version).
    pub(crate) key_digest: Vec<u8>,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Hasher {
    pub(crate) fn new(key: &[u8], key_id: &str) -> Option<Hasher> {
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
        Some(Hasher {
            mac,
            key_id: key_id.to_owned(),
            key_digest: <Sha256 as sha2::Digest>::digest(key).to_vec(),
        })
    }

    /// `hmac:<key id>:<32 hex>` of `label` `:` `canonical`.
    pub(crate) fn hash(&self, label: &str, canonical: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(label.as_bytes());
        mac.update(b":");
        mac.update(canonical);
        let tag = mac.finalize().into_bytes();
        let mut out = String::with_capacity(6 + self.key_id.len() + 32);
        out.push_str("hmac:");
        out.push_str(&self.key_id);
        out.push(':');
        for b in tag.iter().take(16) {
            let _ = write!(out, "{b:02x}");
        }
        out
    }
}

/// The normalized bytes a value of `kind` is hashed on.
pub(crate) fn canonical(kind: Kind, value: &[u8]) -> Vec<u8> {
    if kind.numeric() {
        return value.iter().copied().filter(u8::is_ascii_digit).collect();
    }
    match kind {
        Kind::Iban => value
            .iter()
            .copied()
            .filter(u8::is_ascii_alphanumeric)
            .map(|b| b.to_ascii_uppercase())
            .collect(),
        Kind::Email => value.to_ascii_lowercase(),
        Kind::Ip => match super::ip::parse_addr(value) {
            Some(a) => a.to_string().into_bytes(),
            None => value.to_vec(),
        },
        _ => value.to_vec(),
    }
}

/// `[REDACTED:<label>]`
pub(crate) fn mask(label: &str) -> String {
    let mut s = String::with_capacity(11 + label.len());
    s.push_str("[REDACTED:");
    s.push_str(label);
    s.push(']');
    s
}

fn mask_with(label: &str, kept: &str) -> String {
    let mut s = String::with_capacity(12 + label.len() + kept.len());
    s.push_str("[REDACTED:");
    s.push_str(label);
    s.push(':');
    s.push_str(kept);
    s.push(']');
    s
}

/// Public prefixes of vendor tokens, longest first within a vendor.
const TOKEN_PREFIXES: &[&str] = &[
    "github_pat_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "glpat-",
    "glptt-",
    "glrt-",
    "gldt-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxr-",
    "xoxs-",
    "xoxe-",
    "xoxo-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "pk_live_",
    "pk_test_",
    "whsec_",
    "sk-ant-",
    "sk-proj-",
    "sk-svcacct-",
    "sk-admin-",
    "sk-",
    "AKIA",
    "ASIA",
    "ABIA",
    "ACCA",
    "AIza",
];

/// The `partial` rendering of `value`, or `None` when partial is not defined for `kind`.
pub(crate) fn partial(kind: Kind, value: &[u8], ip: (u8, u8)) -> Option<String> {
    let name = kind.name();
    match kind {
        Kind::Card | Kind::Ssn | Kind::Phone => {
            let digits: Vec<u8> = value.iter().copied().filter(u8::is_ascii_digit).collect();
            let keep = digits.len().saturating_sub(4);
            let last = String::from_utf8_lossy(digits.get(keep..).unwrap_or_default());
            Some(mask_with(name, &last))
        }
        Kind::Iban => {
            let compact = canonical(Kind::Iban, value);
            let cc = String::from_utf8_lossy(compact.get(..2).unwrap_or_default()).into_owned();
            let keep = compact.len().saturating_sub(4);
            let last = String::from_utf8_lossy(compact.get(keep..).unwrap_or_default());
            Some(mask_with(name, &format!("{cc}..{last}")))
        }
        Kind::Email => {
            let at = value.iter().rposition(|b| *b == b'@')?;
            let domain = String::from_utf8_lossy(value.get(at..).unwrap_or_default());
            Some(format!("{}{}", mask(name), domain))
        }
        Kind::Ip => {
            let addr = super::ip::parse_addr(value)?;
            Some(super::ip::truncate(addr, ip.0, ip.1).to_string())
        }
        Kind::UrlCredentials => {
            let colon = value.iter().position(|b| *b == b':')?;
            let user = String::from_utf8_lossy(value.get(..colon).unwrap_or_default());
            Some(format!("{user}:{}", mask(name)))
        }
        Kind::AwsAccessKey
        | Kind::GithubToken
        | Kind::GitlabToken
        | Kind::SlackToken
        | Kind::StripeKey
        | Kind::GoogleApiKey
        | Kind::OpenaiKey
        | Kind::AnthropicKey
        | Kind::ApiKey => {
            let prefix = super::creds::prefix_of(kind, value).or_else(|| {
                TOKEN_PREFIXES
                    .iter()
                    .find(|p| value.starts_with(p.as_bytes()))
                    .copied()
            })?;
            Some(mask_with(name, prefix))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_round_trip() {
        for a in Action::ALL {
            assert_eq!(Action::from_name(a.name()), Some(a));
        }
        assert_eq!(Action::from_name("Mask"), None);
    }

    #[test]
    fn hmac_is_keyed_truncated_and_stable() {
        let h = Hasher::new(b"0123456789abcdef0123456789abcdef", "k1").unwrap();
        let a = h.hash("card", b"4111111111111111");
        assert!(a.starts_with("hmac:k1:"), "{a}");
        assert_eq!(a.len(), "hmac:k1:".len() + 32);
        assert_eq!(a, h.hash("card", b"4111111111111111"));
        assert_ne!(a, h.hash("card", b"4111111111111112"));
        assert_ne!(a, h.hash("phone", b"4111111111111111"));
        let other = Hasher::new(b"another key, also long enough!!", "k1").unwrap();
        assert_ne!(a, other.hash("card", b"4111111111111111"));
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?" (full tag)
        let h = Hasher::new(b"Jefe", "t").unwrap();
        let mut mac = h.mac.clone();
        mac.update(b"what do ya want for nothing?");
        let full = mac.finalize().into_bytes();
        assert_eq!(
            full.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn canonical_forms_join_spellings() {
        assert_eq!(
            canonical(Kind::Card, b"4111 1111-1111 1111"),
            b"4111111111111111"
        );
        assert_eq!(
            canonical(Kind::Iban, b"de89 3704 0044 0532 0130 00"),
            b"DE89370400440532013000"
        );
        assert_eq!(canonical(Kind::Email, b"Jo@Example.COM"), b"jo@example.com");
        assert_eq!(canonical(Kind::Ip, b"2001:0db8::0001"), b"2001:db8::1");
    }

    #[test]
    fn partial_renderings() {
        let ip = (24, 48);
        assert_eq!(
            partial(Kind::Card, b"4111 1111 1111 1234", ip).unwrap(),
            "[REDACTED:card:1234]"
        );
        assert_eq!(
            partial(Kind::Iban, b"DE89 3704 0044 0532 0130 00", ip).unwrap(),
            "[REDACTED:iban:DE..3000]"
        );
        assert_eq!(
            partial(Kind::Email, b"jo@example.com", ip).unwrap(),
            "[REDACTED:email]@example.com"
        );
        assert_eq!(
            partial(Kind::Ip, b"45.229.133.199", ip).unwrap(),
            "45.229.133.0"
        );
        assert_eq!(
            partial(Kind::Ip, b"2001:db8:1c7f:a189:2da3:9640:1920:a66a", ip).unwrap(),
            "2001:db8:1c7f::"
        );
        assert_eq!(
            partial(Kind::UrlCredentials, b"maria:pw", ip).unwrap(),
            "maria:[REDACTED:url_credentials]"
        );
        assert_eq!(
            partial(
                Kind::GithubToken,
                b"ghp_abcdefabcdefabcdefabcdefabcdefabcdef",
                ip
            )
            .unwrap(),
            "[REDACTED:github_token:ghp_]"
        );
        assert_eq!(
            partial(Kind::StripeKey, b"sk_live_abcdefabcdef", ip).unwrap(),
            "[REDACTED:stripe_key:sk_live_]"
        );
        assert_eq!(partial(Kind::Jwt, b"eyJ", ip), None);
        for k in Kind::ALL {
            if !partial_defined(k) {
                assert_eq!(partial(k, b"x", ip), None, "{k:?}");
            }
        }
    }
}
