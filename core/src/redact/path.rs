//! Paths: detector redaction per segment, identifier templating and configured route templates.

use super::decode::{Enc, decode_value};
use super::engine::{Out, ValueOut};
use super::memo;
use super::scan::{alnum_and, find_ascii, in_set, split_ascii};
use super::{Kind, RedactionPolicy, Summary};
use std::borrow::Cow;

/// A redacted request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactedPath<'a> {
    /// The path to log (`url.path`). With `keep_raw_path: false` (default) it is the templated path:
    /// identifiers replaced by placeholders, other segments as sent with detected values replaced by
    /// their markers (`/users/{id}/search/[REDACTED:card]`). With `keep_raw_path: true` it is the
    /// path as sent with only detected values replaced. `None`: a `drop` action fired in a logged
    /// segment; drop the field. Borrowed when unchanged.
    pub path: Option<Cow<'a, str>>,
    /// The low-cardinality route (`http.route`): the matching configured template verbatim, or the
    /// path with identifiers as `{id}`, `{uuid}`, `{ulid}`, `{hex}`, `{token}` and segments holding a
    /// detected value as `{<kind>}` (`{email}`, `{card}`, or the custom pattern's name). `None` when
    /// no template matched and nothing was templated: the route is the path itself.
    pub route: Option<String>,
}

/// Configured path templates: the shared route-template syntax.
pub(crate) use crate::route::RouteTemplate as Template;

fn is_hex(b: &u8) -> bool {
    b.is_ascii_hexdigit()
}

fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn is_ulid(s: &[u8]) -> bool {
    s.len() == 26
        && s.first().is_some_and(|b| (b'0'..=b'7').contains(b))
        && s.iter().all(|b| {
            let u = b.to_ascii_uppercase();
            u.is_ascii_digit()
                || (u.is_ascii_uppercase() && !matches!(u, b'I' | b'L' | b'O' | b'U'))
        })
        && s.iter().any(u8::is_ascii_digit)
        && s.iter().any(u8::is_ascii_alphabetic)
}

const ID_BYTES: [bool; 256] = alnum_and(b"_-~=+");

fn is_id_byte(b: &u8) -> bool {
    in_set(&ID_BYTES, *b)
}

/// The placeholder for an identifier-like segment.
pub(crate) fn classify_id(s: &[u8]) -> Option<&'static str> {
    if s.is_empty() {
        return None;
    }
    if s.iter().all(u8::is_ascii_digit) {
        return Some("{id}");
    }
    if is_uuid(s) {
        return Some("{uuid}");
    }
    if is_ulid(s) {
        return Some("{ulid}");
    }
    let digits = s.iter().filter(|b| b.is_ascii_digit()).count();
    if s.len() >= 12 && s.iter().all(is_hex) && digits > 0 {
        return Some("{hex}");
    }
    if !s.iter().all(is_id_byte) {
        return None;
    }
    if s.len() >= 8 && digits >= 4 && digits * 2 >= s.len() {
        return Some("{id}");
    }
    if s.len() >= 16
        && digits > 0
        && s.iter().any(u8::is_ascii_uppercase)
        && s.iter().any(u8::is_ascii_lowercase)
    {
        return Some("{token}");
    }
    None
}

#[derive(Default)]
struct Seg<'a> {
    raw: &'a str,
    head: &'a str,
    head_changed: bool,
    out: Out,
    first: Option<(Kind, u16)>,
    id: Option<&'static str>,
}

/// Segments kept on the stack up to this many (no allocation for ordinary paths); only the
/// segments pushed are written and dropped.
type Segs<'a> = smallvec::SmallVec<[Seg<'a>; 16]>;

/// The memo's field for path segment heads (a space: no header has this name).
const SEGMENT: &str = " path segment";

/// Index of `?` or `#`, whichever comes first.
pub(crate) fn path_end(raw: &str) -> usize {
    raw.bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(raw.len())
}

impl RedactionPolicy {
    /// Redacts and templates a request path (`:path` without the query; anything from `?` or `#`
    /// on is ignored here: pass the query to [`RedactionPolicy::query`]). Each segment is
    /// percent-decoded for detection; matrix parameters (`;jsessionid=…`) are checked like
    /// `key=value` text and never appear in the route.
    pub fn path<'a>(&self, raw_path: &'a str, s: &mut Summary) -> RedactedPath<'a> {
        self.path_inner(raw_path, true, s)
    }

    pub(crate) fn path_inner<'a>(
        &self,
        raw_path: &'a str,
        use_templates: bool,
        s: &mut Summary,
    ) -> RedactedPath<'a> {
        let raw = raw_path.get(..path_end(raw_path)).unwrap_or(raw_path);
        if self.oversize(raw.len()) {
            let out = self.redact_value(raw, Enc::Plain, s).out;
            return RedactedPath {
                path: out.into_cow(raw),
                route: None,
            };
        }
        let mut list = Segs::new();
        for seg in split_ascii(raw, b'/') {
            // `name;k=v`: the head shapes the route, matrix parameters are only redacted.
            let (head, params) = match find_ascii(seg, b';') {
                Some(p) => (
                    seg.get(..p).unwrap_or(seg),
                    seg.get(p..).unwrap_or_default(),
                ),
                None => (seg, ""),
            };
            // A segment that is not an identifier (`api`, `orders`) comes back request after
            // request: once it passed the detectors untouched, the memo skips the pass.
            let known = !head.is_empty() && memo::is_clean(self.memo_id, SEGMENT, head);
            let before = *s;
            let v = if known {
                ValueOut::SAME
            } else {
                self.redact_value(head, Enc::Percent, s)
            };
            let clean = !known && v.out == Out::Same && v.first.is_none() && *s == before;
            let m = self.redact_value(params, Enc::Percent, s);
            let id = if self.template_ids && v.first.is_none() {
                classify_id(&decode_value(head.as_bytes(), Enc::Percent))
            } else {
                None
            };
            // Identifiers vary per request: only the route's fixed words are remembered.
            if clean && id.is_none() && !head.is_empty() {
                memo::remember_clean(self.memo_id, SEGMENT, head);
            }
            let out = match (v.out, m.out) {
                (Out::Drop, _) | (_, Out::Drop) => Out::Drop,
                (Out::Same, Out::Same) => Out::Same,
                (h, p) => {
                    let mut t = String::with_capacity(seg.len() + 16);
                    match &h {
                        Out::Changed(x) => t.push_str(x),
                        _ => t.push_str(head),
                    }
                    match &p {
                        Out::Changed(x) => t.push_str(x),
                        _ => t.push_str(params),
                    }
                    Out::Changed(t)
                }
            };
            list.push(Seg {
                raw: seg,
                head,
                head_changed: v.first.is_some(),
                out,
                first: v.first,
                id,
            });
        }
        let segs = list.as_slice();
        let template = if use_templates && !self.templates.is_empty() {
            let names: Vec<&str> = segs.iter().skip(1).map(|g| g.raw).collect();
            let leading_slash = segs.first().is_some_and(|g| g.raw.is_empty());
            self.templates
                .iter()
                .filter(|t| leading_slash && t.matches(&names))
                .fold(None::<&super::path::Template>, |best, t| match best {
                    Some(b) if b.literals() >= t.literals() => Some(b),
                    _ => Some(t),
                })
        } else {
            None
        };
        let changed = segs.iter().any(|g| g.out.changed() || g.id.is_some());
        let route = match template {
            Some(t) => Some(t.source().to_owned()),
            None if changed => Some(self.join(segs, |g| match (g.first, g.id) {
                (Some((k, c)), _) => Cow::Owned(format!("{{{}}}", self.label(k, c))),
                (None, Some(id)) => Cow::Borrowed(id),
                (None, None) => Cow::Borrowed(g.head),
            })),
            None => None,
        };
        let logged_drop = segs.iter().any(|g| g.out == Out::Drop);
        let path = if self.keep_raw_path {
            if logged_drop {
                None
            } else if segs.iter().any(|g| g.out.changed()) {
                Some(Cow::Owned(self.join(segs, |g| seg_text(g, false))))
            } else {
                Some(Cow::Borrowed(raw))
            }
        } else if let Some(t) = template {
            Some(Cow::Owned(t.source().to_owned()))
        } else if logged_drop {
            None
        } else if changed {
            Some(Cow::Owned(self.join(segs, |g| seg_text(g, true))))
        } else {
            Some(Cow::Borrowed(raw))
        };
        RedactedPath { path, route }
    }

    fn join<'s, 'a: 's>(
        &self,
        segs: &'s [Seg<'a>],
        f: impl Fn(&'s Seg<'a>) -> Cow<'s, str>,
    ) -> String {
        // Placeholders are short: the raw segments plus a little is usually the whole size.
        let len: usize = segs.iter().map(|g| g.raw.len() + 1).sum();
        let mut out = String::with_capacity(len + 16);
        for (i, g) in segs.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.push_str(&f(g));
        }
        out
    }
}

fn seg_text<'s>(g: &'s Seg<'_>, ids: bool) -> Cow<'s, str> {
    match (&g.out, g.id) {
        (_, Some(id)) if ids && !g.head_changed => {
            // the placeholder, then the matrix parameters (redacted)
            let logged = match &g.out {
                Out::Changed(t) => t.as_str(),
                _ => g.raw,
            };
            match logged.get(g.head.len()..) {
                Some(params) if !params.is_empty() => Cow::Owned(format!("{id}{params}")),
                _ => Cow::Borrowed(id),
            }
        }
        (Out::Changed(t), _) => Cow::Borrowed(t.as_str()),
        _ => Cow::Borrowed(g.raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_longer_than_the_stack_segments() {
        let p = RedactionPolicy::default();
        for n in [15, 16, 17, 40] {
            let raw: String = (0..n).map(|k| format!("/s{k}")).collect::<String>() + "/42";
            let mut s = Summary::new();
            let want: String = (0..n).map(|k| format!("/s{k}")).collect::<String>() + "/{id}";
            let out = p.path(&raw, &mut s);
            assert_eq!(out.route.as_deref(), Some(want.as_str()), "{n}");
            assert_eq!(out.path.as_deref(), Some(want.as_str()), "{n}");
        }
    }

    #[test]
    fn ids() {
        for (s, want) in [
            ("42", Some("{id}")),
            ("fec94dbc-a3a0-4ac3-a098-b2cc2bd81831", Some("{uuid}")),
            ("01ARZ3NDEKTSV4RRFFQ69G5FAV", Some("{ulid}")),
            ("45fda9988c79", Some("{hex}")),
            ("da39a3ee5e6b4b0d3255bfef95601890afd80709", Some("{hex}")),
            ("ORD2819482199351819", Some("{id}")),
            ("INV-2024-000123", Some("{id}")),
            ("Xlq8MxVj5l3V26XkHbwXTpC3", Some("{token}")),
            ("api", None),
            ("v1", None),
            ("users", None),
            ("deadbeef", None),
            ("getUserProfile", None),
            ("report-2025-annual", None),
            ("main.4f3a2b1c.js", None),
            ("SKU-IHXYGH-757", None),
            ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", None),
            ("", None),
        ] {
            assert_eq!(classify_id(s.as_bytes()), want, "{s}");
        }
    }

    #[test]
    fn templates_parse_and_match() {
        let t = Template::parse("/api/v1/users/{user}/orders/{order}").unwrap();
        assert!(t.matches(&["api", "v1", "users", "42", "orders", "7"]));
        assert!(t.matches(&["api", "v1", "users", "42", "orders", "7", ""]));
        assert!(!t.matches(&["api", "v1", "users", "", "orders", "7"]));
        assert!(!t.matches(&["api", "v1", "users", "42", "orders"]));
        assert!(!t.matches(&["api", "v2", "users", "42", "orders", "7"]));
        let r = Template::parse("/static/{file*}").unwrap();
        assert!(r.matches(&["static", "a", "b.css"]));
        assert!(!r.matches(&["static"]));
        assert!(Template::parse("/").unwrap().matches(&[""]));
        for bad in [
            "api",
            "/a/{b*}/c",
            "/a/{}",
            "/a/x{y}",
            "/a/{b c}",
            "/a/{b}}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}
