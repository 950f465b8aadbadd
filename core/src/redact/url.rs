//! URL-valued fields (`Referer`, `Location`, …): userinfo, host, path, query and fragment each get
//! their own treatment.

use super::decode::Enc;
use super::engine::{Out, Rendered};
use super::path::path_end;
use super::{Kind, RedactionPolicy, Summary};
use std::borrow::Cow;

/// Index just after `scheme://`, when `raw` starts with a URI scheme and `://`.
fn after_scheme(raw: &str) -> Option<usize> {
    let b = raw.as_bytes();
    if !b.first()?.is_ascii_alphabetic() {
        return None;
    }
    let n = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        .count();
    b.get(n..)?.starts_with(b"://").then_some(n + 3)
}

impl RedactionPolicy {
    /// Redacts a URL: `scheme://user:pass@host/path?query#fragment`. The userinfo becomes
    /// `[REDACTED:url_credentials]` (partial: the user stays), the host goes through the detectors,
    /// the path is templated and redacted like a request path (without configured templates), the
    /// query and the fragment (which may carry `access_token=` in OAuth implicit flows) go through
    /// the query policy. A relative reference (`/path?query`) is treated the same way; anything
    /// else through the text detectors. `None`: drop the field.
    pub fn url<'a>(&self, value: &'a str, s: &mut Summary) -> Option<Cow<'a, str>> {
        self.url_inner(value, s).into_cow(value)
    }

    /// `headers.url_origin_only`: a URL header's value cut to its origin, `scheme://host[:port]`
    /// (the host through the detectors). Userinfo, path, query and fragment are left out (userinfo
    /// is counted as `url_credentials`); a relative reference (`/path`), which has no origin of
    /// its own, drops the field; anything that is not a URL (`Origin: null`) goes through the
    /// text detectors.
    pub(crate) fn url_origin(&self, raw: &str, s: &mut Summary) -> Out {
        let Some(a) = after_scheme(raw) else {
            return if raw.starts_with('/') {
                Out::Drop
            } else {
                self.redact_value(raw, Enc::Plain, s).out
            };
        };
        let e = raw
            .get(a..)
            .and_then(|r| r.find(['/', '?', '#']))
            .map_or(raw.len(), |x| a + x);
        let authority = raw.get(a..e).unwrap_or_default();
        let host = match authority.rfind('@') {
            Some(p) => {
                if p > 0 {
                    s.add(Kind::UrlCredentials);
                }
                authority.get(p + 1..).unwrap_or_default()
            }
            None => authority,
        };
        let mut o = String::with_capacity(e);
        o.push_str(raw.get(..a).unwrap_or_default());
        match self.redact_value(host, Enc::Percent, s).out {
            Out::Drop => return Out::Drop,
            Out::Changed(t) => o.push_str(&t),
            Out::Same => o.push_str(host),
        }
        if o == raw { Out::Same } else { Out::Changed(o) }
    }

    pub(crate) fn url_inner(&self, raw: &str, s: &mut Summary) -> Out {
        if raw.is_empty() {
            return Out::Same;
        }
        if self.oversize(raw.len()) {
            return self.redact_value(raw, Enc::Plain, s).out;
        }
        let (auth, rest_start) = match after_scheme(raw) {
            Some(a) => {
                let e = raw
                    .get(a..)
                    .and_then(|r| r.find(['/', '?', '#']))
                    .map_or(raw.len(), |x| a + x);
                (Some((a, e)), e)
            }
            None if raw.starts_with('/') => (None, 0),
            None => return self.redact_value(raw, Enc::Plain, s).out,
        };
        let mut o = String::with_capacity(raw.len() + 32);
        let mut changed = false;

        if let Some((a, e)) = auth {
            o.push_str(raw.get(..a).unwrap_or_default());
            let authority = raw.get(a..e).unwrap_or_default();
            let (userinfo, host) = match authority.rfind('@') {
                Some(p) => (
                    Some(authority.get(..p).unwrap_or_default()),
                    authority.get(p + 1..).unwrap_or_default(),
                ),
                None => (None, authority),
            };
            if let Some(ui) = userinfo {
                if ui.is_empty() {
                    o.push('@');
                } else if self.det.on(Kind::UrlCredentials) {
                    let dec = super::decode::decode_value(ui.as_bytes(), Enc::Percent);
                    match self.render(Kind::UrlCredentials, 0, &dec, s) {
                        Rendered::Text(t) => o.push_str(&t),
                        Rendered::Drop => return Out::Drop,
                    }
                    o.push('@');
                    changed = true;
                } else {
                    match self.redact_value(ui, Enc::Percent, s).out {
                        Out::Drop => return Out::Drop,
                        Out::Changed(t) => {
                            changed = true;
                            o.push_str(&t);
                        }
                        Out::Same => o.push_str(ui),
                    }
                    o.push('@');
                }
            }
            match self.redact_value(host, Enc::Percent, s).out {
                Out::Drop => return Out::Drop,
                Out::Changed(t) => {
                    changed = true;
                    o.push_str(&t);
                }
                Out::Same => o.push_str(host),
            }
        }

        let rest = raw.get(rest_start..).unwrap_or_default();
        let pe = path_end(rest);
        let path = rest.get(..pe).unwrap_or_default();
        if !path.is_empty() {
            let p = self.path_inner(path, false, s);
            match p.path {
                None => return Out::Drop,
                Some(Cow::Borrowed(_)) => o.push_str(path),
                Some(Cow::Owned(t)) => {
                    changed = true;
                    o.push_str(&t);
                }
            }
        }
        let tail = rest.get(pe..).unwrap_or_default();
        let (query, fragment) = match tail.strip_prefix('?') {
            Some(q) => match q.split_once('#') {
                Some((q, f)) => (Some(q), Some(f)),
                None => (Some(q), None),
            },
            None => (None, tail.strip_prefix('#')),
        };
        for (sep, part) in [('?', query), ('#', fragment)] {
            let Some(part) = part else { continue };
            o.push(sep);
            match self.query_inner(part, s) {
                Out::Drop => return Out::Drop,
                Out::Changed(t) => {
                    changed = true;
                    o.push_str(&t);
                }
                Out::Same => o.push_str(part),
            }
        }
        if changed { Out::Changed(o) } else { Out::Same }
    }
}
