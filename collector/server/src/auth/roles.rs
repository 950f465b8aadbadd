//! `[auth]`: principals (an identity, exact or a glob, with roles and a tenant) and bearer
//! tokens (stored as SHA-256), and how an identity becomes a [`Principal`].

use meshlog_core::config::fields::{FieldError, Fields, Problem};
use serde_json::Value;

/// What a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Send records (`POST /v1/logs`, OTLP/gRPC Export).
    Ingest,
    /// Read records (the query endpoints).
    Read,
    /// Everything, /metrics included.
    Admin,
    /// Scrape /metrics.
    Metrics,
}

impl Role {
    /// The name in the configuration and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
            Role::Metrics => "metrics",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "ingest" => Role::Ingest,
            "read" => Role::Read,
            "admin" => Role::Admin,
            "metrics" => Role::Metrics,
            _ => return None,
        })
    }
}

/// One `[[auth.principals]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRule {
    /// `id`: a SPIFFE id or token id, exact, or a glob where `*` stands for any characters but
    /// `/` (one path segment) and `**` for any characters.
    pub id: String,
    /// `roles`: any of "ingest", "read", "admin", "metrics".
    pub roles: Vec<Role>,
    /// `tenant`: stamped on an ingest principal's records as `meshlog.tenant`.
    pub tenant: Option<String>,
}

/// One `[[auth.tokens]]` entry: a bearer token known by its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRule {
    /// `id`: the identity a caller with this token has (matched against principals).
    pub id: String,
    /// `sha256`: the token's SHA-256, 64 hex digits (`printf %s "$TOKEN" | sha256sum`).
    pub sha256: String,
}

/// The `[auth]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// `[[auth.principals]]`, first exact match, else first glob match.
    pub principals: Vec<PrincipalRule>,
    /// `[[auth.tokens]]`.
    pub tokens: Vec<TokenRule>,
}

/// An authenticated caller with what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The identity (SPIFFE id, token id, or `anonymous` without `[auth]`).
    pub id: String,
    /// Its roles.
    pub roles: Vec<Role>,
    /// Its tenant.
    pub tenant: Option<String>,
}

impl Principal {
    /// Whether it holds `role` (admin holds every role).
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || self.roles.contains(&Role::Admin)
    }
}

/// Whether `text` matches `pattern` (`*`: any characters but `/`; `**`: any characters).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p {
            [] => t.is_empty(),
            [b'*', b'*', rest @ ..] => {
                (0..=t.len()).any(|i| t.get(i..).is_some_and(|s| go(rest, s)))
            }
            [b'*', rest @ ..] => {
                let seg = t.iter().position(|&c| c == b'/').unwrap_or(t.len());
                (0..=seg).any(|i| t.get(i..).is_some_and(|s| go(rest, s)))
            }
            [c, rest @ ..] => t.first() == Some(c) && t.get(1..).is_some_and(|s| go(rest, s)),
        }
    }
    go(p, t)
}

impl AuthConfig {
    /// Reads the `[auth]` table, every problem into `errs`.
    pub fn parse(mut t: Fields<'_>, errs: &mut Vec<FieldError>) -> AuthConfig {
        let mut cfg = AuthConfig::default();
        for mut p in t.tables("principals", errs) {
            let id = p.required_string("id", errs);
            let roles_path = p.child_path("roles");
            let mut roles = Vec::new();
            match p.raw("roles") {
                Some(Value::Array(items)) if !items.is_empty() => {
                    for it in items {
                        match it.as_str().and_then(Role::parse) {
                            Some(r) => roles.push(r),
                            None => errs.push(FieldError::new(
                                roles_path.clone(),
                                Problem::WrongType {
                                    expected: "roles from \"ingest\", \"read\", \"admin\", \
                                               \"metrics\""
                                        .into(),
                                    got: it.to_string(),
                                },
                            )),
                        }
                    }
                }
                None => errs.push(FieldError::new(
                    roles_path,
                    Problem::Missing {
                        expected: "a list of roles (\"ingest\", \"read\", \"admin\", \"metrics\")"
                            .into(),
                    },
                )),
                Some(v) => errs.push(FieldError::new(
                    roles_path,
                    Problem::WrongType {
                        expected: "a non-empty list of roles".into(),
                        got: v.to_string(),
                    },
                )),
            }
            let tenant = p.string("tenant", errs);
            p.finish(errs);
            if let Some(id) = id {
                cfg.principals.push(PrincipalRule { id, roles, tenant });
            }
        }
        for mut tok in t.tables("tokens", errs) {
            let id = tok.required_string("id", errs);
            let hpath = tok.child_path("sha256");
            let sha = tok.required_string("sha256", errs);
            let sha = match sha {
                Some(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Some(s.to_ascii_lowercase())
                }
                Some(s) => {
                    errs.push(FieldError::new(
                        hpath,
                        Problem::WrongType {
                            expected: "64 hex digits (the token's SHA-256, never the token)".into(),
                            got: format!("{} characters", s.len()),
                        },
                    ));
                    None
                }
                None => None,
            };
            tok.finish(errs);
            if let (Some(id), Some(sha256)) = (id, sha) {
                cfg.tokens.push(TokenRule { id, sha256 });
            }
        }
        t.finish(errs);
        cfg
    }

    /// The identity a bearer token stands for.
    pub fn token_id(&self, token: &str) -> Option<&str> {
        let h = super::identity::token_sha256(token);
        self.tokens
            .iter()
            .find(|t| t.sha256 == h)
            .map(|t| t.id.as_str())
    }

    /// The principal for `id`: the first exact entry, else the first glob that matches.
    pub fn principal(&self, id: &str) -> Option<Principal> {
        let rule = self
            .principals
            .iter()
            .find(|p| p.id == id)
            .or_else(|| self.principals.iter().find(|p| glob_match(&p.id, id)))?;
        Some(Principal {
            id: id.to_owned(),
            roles: rule.roles.clone(),
            tenant: rule.tenant.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_one_segment_per_star() {
        let p = "spiffe://cluster.local/ns/*/sa/checkout";
        assert!(glob_match(p, "spiffe://cluster.local/ns/shop/sa/checkout"));
        assert!(!glob_match(p, "spiffe://cluster.local/ns/a/b/sa/checkout"));
        assert!(!glob_match(p, "spiffe://cluster.local/ns/shop/sa/cart"));
        assert!(glob_match(
            "spiffe://cluster.local/**",
            "spiffe://cluster.local/ns/a/sa/b"
        ));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exact2"));
    }

    #[test]
    fn exact_entries_win_over_globs() {
        let cfg = AuthConfig {
            principals: vec![
                PrincipalRule {
                    id: "spiffe://c/ns/*/sa/x".into(),
                    roles: vec![Role::Ingest],
                    tenant: Some("glob".into()),
                },
                PrincipalRule {
                    id: "spiffe://c/ns/a/sa/x".into(),
                    roles: vec![Role::Read],
                    tenant: Some("exact".into()),
                },
            ],
            tokens: vec![],
        };
        let p = cfg.principal("spiffe://c/ns/a/sa/x").unwrap();
        assert_eq!(p.tenant.as_deref(), Some("exact"));
        assert!(p.has(Role::Read) && !p.has(Role::Ingest));
        assert_eq!(
            cfg.principal("spiffe://c/ns/b/sa/x")
                .unwrap()
                .tenant
                .as_deref(),
            Some("glob")
        );
        assert_eq!(cfg.principal("spiffe://c/ns/b/sa/y"), None);
    }
}
