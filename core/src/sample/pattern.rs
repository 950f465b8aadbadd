//! Path and name patterns of the `sampling` section: exact paths, prefixes (`/admin*`) and route
//! templates (`/users/{id}/orders/{order*}`) for paths and routes; exact names and prefixes for
//! services.

/// Longest pattern, bytes.
pub(crate) const MAX_PATTERN_LEN: usize = 1024;

/// A path pattern. Matched against the request path (query removed) and against the route
/// (`http.route`); either matching is a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathPattern {
    /// `/healthz`: the whole path; one trailing `/` on either side is ignored.
    Exact(String),
    /// `/admin*`: every path starting with `/admin` (bytes, case-sensitive).
    Prefix(String),
    /// `/users/{id}`: a route template; `{name}` is one non-empty segment, `{name*}` (last only)
    /// one or more segments. A trailing `/` on the path is ignored.
    Template(RouteTemplate),
}

use crate::route::{RouteTemplate, trim_slash};

impl PathPattern {
    /// Parses a pattern: starts with `/`, at most 1024 bytes; a final `*` makes a prefix (no other
    /// `*`, no placeholders then); `{name}` / `{name*}` segments make a template (names 1 to 32 of
    /// `A-Z a-z 0-9 _`); anything else is an exact path.
    pub(crate) fn parse(s: &str) -> Result<PathPattern, String> {
        if s.len() > MAX_PATTERN_LEN {
            return Err(format!("longer than {MAX_PATTERN_LEN} bytes"));
        }
        if !s.starts_with('/') {
            return Err(format!("must start with '/', got {s:?}"));
        }
        if s.contains('?') || s.contains('#') {
            return Err(format!(
                "a path pattern matches the path without the query: remove '?'/'#' from {s:?}"
            ));
        }
        if let Some(prefix) = s.strip_suffix('*') {
            if prefix.contains(['*', '{', '}']) {
                return Err(format!(
                    "a prefix pattern (ending in '*') has no other '*' and no placeholders: {s:?}"
                ));
            }
            return Ok(PathPattern::Prefix(prefix.to_owned()));
        }
        if s.contains('*') && !s.contains('{') {
            return Err(format!(
                "'*' is only allowed at the end (a prefix) or in a {{name*}} placeholder: {s:?}"
            ));
        }
        if !s.contains(['{', '}']) {
            return Ok(PathPattern::Exact(trim_slash(s).to_owned()));
        }
        RouteTemplate::parse(s).map(PathPattern::Template)
    }

    /// The pattern in canonical form (exact paths without a trailing `/`, prefixes with their `*`).
    pub(crate) fn canonical(&self) -> String {
        match self {
            PathPattern::Exact(p) => p.clone(),
            PathPattern::Prefix(p) => format!("{p}*"),
            PathPattern::Template(t) => t.source().to_owned(),
        }
    }

    /// How specific the pattern is, for rule precedence: exact (3) before template (2) before
    /// prefix (1); then, within a kind, the longer exact path, the template with more literal
    /// segments, the longer prefix.
    pub(crate) fn rank(&self) -> (u8, usize) {
        match self {
            PathPattern::Exact(p) => (3, p.len()),
            PathPattern::Template(t) => (2, t.literals()),
            PathPattern::Prefix(p) => (1, p.len()),
        }
    }

    /// Whether one path or route matches. The query (from `?`) is ignored.
    fn matches_one(&self, s: &str) -> bool {
        let s = s.split(['?', '#']).next().unwrap_or_default();
        match self {
            PathPattern::Exact(p) => trim_slash(s) == p,
            PathPattern::Prefix(p) => s.starts_with(p.as_str()),
            PathPattern::Template(t) => t.matches_path(s),
        }
    }

    /// Whether the request path or its route matches.
    pub(crate) fn matches(&self, path: Option<&str>, route: Option<&str>) -> bool {
        path.is_some_and(|p| self.matches_one(p)) || route.is_some_and(|r| self.matches_one(r))
    }
}

/// A service name pattern: exact, or a prefix with a final `*`. Case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NamePattern {
    /// The whole name.
    Exact(String),
    /// Names starting with this.
    Prefix(String),
}

impl NamePattern {
    /// Parses a name pattern: 1 to 256 bytes, `*` only at the end and not alone.
    pub(crate) fn parse(s: &str) -> Result<NamePattern, String> {
        if s.is_empty() || s.len() > 256 {
            return Err("must be 1 to 256 bytes".into());
        }
        if s == "*" {
            return Err("\"*\" matches every service: leave the field out instead".into());
        }
        match s.strip_suffix('*') {
            Some(p) if !p.contains('*') => Ok(NamePattern::Prefix(p.to_owned())),
            None if !s.contains('*') => Ok(NamePattern::Exact(s.to_owned())),
            _ => Err(format!("'*' is only allowed at the end (a prefix): {s:?}")),
        }
    }

    /// Canonical form, as configured.
    pub(crate) fn canonical(&self) -> String {
        match self {
            NamePattern::Exact(p) => p.clone(),
            NamePattern::Prefix(p) => format!("{p}*"),
        }
    }

    /// Exact (2) before prefix (1); then the longer.
    pub(crate) fn rank(&self) -> (u8, usize) {
        match self {
            NamePattern::Exact(p) => (2, p.len()),
            NamePattern::Prefix(p) => (1, p.len()),
        }
    }

    /// Whether `name` matches; no name never matches.
    pub(crate) fn matches(&self, name: Option<&str>) -> bool {
        match (self, name) {
            (NamePattern::Exact(p), Some(n)) => p == n,
            (NamePattern::Prefix(p), Some(n)) => n.starts_with(p.as_str()),
            (_, None) => false,
        }
    }
}

/// Validates an HTTP method (an RFC 9110 token, 1 to 32 bytes) and returns it upper-cased.
pub(crate) fn method(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(s.to_ascii_uppercase())
    } else {
        Err(format!("not an HTTP method: {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathPattern {
        PathPattern::parse(s).unwrap()
    }

    #[test]
    fn exact_paths_ignore_one_trailing_slash_and_the_query() {
        let h = p("/healthz");
        assert!(h.matches(Some("/healthz"), None));
        assert!(h.matches(Some("/healthz/"), None));
        assert!(h.matches(Some("/healthz?verbose=1"), None));
        assert!(!h.matches(Some("/healthz/x"), None));
        assert!(!h.matches(Some("/healthzz"), None));
        assert!(!h.matches(Some("/Healthz"), None));
        assert!(!h.matches(None, None));
        assert_eq!(p("/healthz/").canonical(), "/healthz");
        assert!(p("/").matches(Some("/"), None));
        assert!(!p("/").matches(Some("/a"), None));
    }

    #[test]
    fn prefixes_and_templates() {
        let a = p("/admin*");
        assert!(a.matches(Some("/admin"), None));
        assert!(a.matches(Some("/admin/users/7"), None));
        assert!(a.matches(Some("/administrator"), None));
        assert!(!a.matches(Some("/api/admin"), None));
        let t = p("/users/{id}/orders/{rest*}");
        assert!(t.matches(Some("/users/42/orders/7"), None));
        assert!(t.matches(Some("/users/42/orders/7/items/"), None));
        assert!(!t.matches(Some("/users/42/orders"), None));
        assert!(!t.matches(Some("/users//orders/7"), None));
        let one = p("/users/{id}");
        assert!(one.matches(Some("/users/42"), None));
        assert!(one.matches(Some("/users/42/"), None));
        assert!(!one.matches(Some("/users/42/x"), None));
        // The route (already templated) matches too.
        assert!(one.matches(Some("/nope"), Some("/users/{id}")));
        assert!(p("/users/{id}").matches(None, Some("/users/{uuid}")));
    }

    #[test]
    fn invalid_patterns() {
        for bad in [
            "",
            "healthz",
            "/a*b",
            "/a/*/c",
            "/a/{id}*",
            "/a/{}",
            "/a/{x*}/b",
            "/a/x{id}",
            "/a?b=1",
            "/a/{bad-name}",
        ] {
            assert!(
                PathPattern::parse(bad).is_err(),
                "{bad:?} should be invalid"
            );
        }
        assert!(PathPattern::parse(&format!("/{}", "a".repeat(1024))).is_err());
    }

    #[test]
    fn ranks_order_exact_template_prefix() {
        assert!(p("/a/b").rank() > p("/a/{x}").rank());
        assert!(p("/a/{x}").rank() > p("/a/b/c/d*").rank());
        assert!(p("/a/b/{x}").rank() > p("/a/{x}/{y}").rank());
        assert!(p("/api/v1*").rank() > p("/api*").rank());
    }

    #[test]
    fn names_and_methods() {
        let e = NamePattern::parse("checkout").unwrap();
        assert!(e.matches(Some("checkout")));
        assert!(!e.matches(Some("checkout-v2")));
        assert!(!e.matches(None));
        let pre = NamePattern::parse("checkout*").unwrap();
        assert!(pre.matches(Some("checkout-v2")));
        assert!(e.rank() > pre.rank());
        for bad in ["", "*", "a*b*", "a*b"] {
            assert!(NamePattern::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(method("delete").unwrap(), "DELETE");
        assert!(method("GET POST").is_err());
        assert!(method("").is_err());
    }
}
