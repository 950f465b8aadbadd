//! Route templates (`/users/{id}/orders/{rest*}`): one syntax and one parser for everything that
//! names routes, the redaction policy's path templates and the sampling rules' path patterns.

/// Longest template, bytes.
pub(crate) const MAX_TEMPLATE_LEN: usize = 1024;

/// One segment of a route template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// Must equal the path segment.
    Lit(String),
    /// `{name}`: any one non-empty segment.
    One,
    /// `{name*}` (last only): one or more remaining segments.
    Rest,
}

/// A parsed route template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteTemplate {
    source: String,
    segs: Vec<Seg>,
    literals: usize,
}

/// One trailing `/` does not change a path (`/healthz/` is `/healthz`); `/` stays `/`.
pub(crate) fn trim_slash(s: &str) -> &str {
    match s.strip_suffix('/') {
        Some(t) if !t.is_empty() => t,
        _ => s,
    }
}

impl RouteTemplate {
    /// Parses a template: starts with `/`, at most 1024 bytes; segments are literals (no `{`,
    /// `}`, `*`), `{name}` or, as the last segment only, `{name*}`; names are 1 to 32 of
    /// `A-Z a-z 0-9 _`. One trailing `/` is ignored.
    pub(crate) fn parse(s: &str) -> Result<RouteTemplate, String> {
        if s.len() > MAX_TEMPLATE_LEN {
            return Err(format!("longer than {MAX_TEMPLATE_LEN} bytes"));
        }
        let Some(rest) = trim_slash(s).strip_prefix('/') else {
            return Err(format!("must start with '/', got {s:?}"));
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let mut segs = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            if let Some(inner) = p.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
                let (name, is_rest) = match inner.strip_suffix('*') {
                    Some(n) => (n, true),
                    None => (inner, false),
                };
                let ok = !name.is_empty()
                    && name.len() <= 32
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !ok {
                    return Err(format!(
                        "placeholder {p:?}: names are 1 to 32 of A-Z, a-z, 0-9, '_'"
                    ));
                }
                if is_rest && i + 1 != parts.len() {
                    return Err(format!("{p:?} may only be the last segment"));
                }
                segs.push(if is_rest { Seg::Rest } else { Seg::One });
            } else if p.contains(['{', '}', '*']) {
                return Err(format!(
                    "segment {p:?}: a placeholder must be a whole segment, like {{id}}"
                ));
            } else {
                segs.push(Seg::Lit((*p).to_owned()));
            }
        }
        let literals = segs
            .iter()
            .filter(|x| matches!(x, Seg::Lit(l) if !l.is_empty()))
            .count();
        Ok(RouteTemplate {
            source: s.to_owned(),
            segs,
            literals,
        })
    }

    /// The template as configured.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Literal (non-empty) segments: more is more specific.
    pub(crate) fn literals(&self) -> usize {
        self.literals
    }

    /// Whether path segments (after the leading `/`) match; a trailing empty segment (a
    /// trailing `/`) is ignored.
    pub(crate) fn matches(&self, segs: &[&str]) -> bool {
        let segs = match segs.split_last() {
            Some((last, init)) if last.is_empty() && !init.is_empty() => init,
            _ => segs,
        };
        self.matches_parts(segs.iter().copied())
    }

    /// Whether a path (`/a/b`, query already removed) matches; one trailing `/` is ignored.
    pub(crate) fn matches_path(&self, path: &str) -> bool {
        match trim_slash(path).strip_prefix('/') {
            Some(rest) => self.matches_parts(rest.split('/')),
            None => false,
        }
    }

    fn matches_parts<'a>(&self, mut parts: impl Iterator<Item = &'a str>) -> bool {
        for seg in &self.segs {
            match seg {
                Seg::Lit(l) => {
                    if parts.next() != Some(l.as_str()) {
                        return false;
                    }
                }
                Seg::One => {
                    if parts.next().is_none_or(str::is_empty) {
                        return false;
                    }
                }
                Seg::Rest => return parts.next().is_some_and(|p| !p.is_empty()),
            }
        }
        parts.next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let t = RouteTemplate::parse("/api/v1/users/{user}/orders/{order}").unwrap();
        assert_eq!(t.literals(), 4);
        assert!(t.matches_path("/api/v1/users/42/orders/7/"));
        assert!(!t.matches_path("/api/v1/users//orders/7"));
        assert!(t.matches(&["api", "v1", "users", "42", "orders", "7", ""]));
        let r = RouteTemplate::parse("/static/{file*}").unwrap();
        assert!(r.matches_path("/static/a/b.css"));
        assert!(!r.matches_path("/static"));
        assert!(RouteTemplate::parse("/").unwrap().matches_path("/"));
        for bad in [
            "users/{id}",
            "/a/{}",
            "/a/{x*}/b",
            "/a/b{id}",
            "/a*b",
            "/a/{bad-name}",
        ] {
            assert!(RouteTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
