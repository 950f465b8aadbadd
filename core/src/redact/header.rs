//! Headers: default-deny allowlists, then a treatment chosen by the header name.

use super::decode::Enc;
use super::engine::{Out, Rendered};
use super::keys::{self, Strength};
use super::policy::BUILTIN_CREDENTIAL_HEADERS;
use super::{Kind, RedactionPolicy, Summary};
use std::borrow::Cow;

/// Headers holding client addresses: each comma-separated element is anonymized.
pub const IP_HEADERS: &[&str] = &[
    "x-forwarded-for",
    "x-real-ip",
    "forwarded",
    "true-client-ip",
    "cf-connecting-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "x-original-forwarded-for",
    "x-envoy-external-address",
    "fastly-client-ip",
];

/// Headers holding a URL: userinfo redacted, path templated like the request path, query and
/// fragment through the query policy.
pub const URL_HEADERS: &[&str] = &[
    "referer",
    "referrer",
    "origin",
    "location",
    "content-location",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-envoy-original-path",
];

/// Authorization schemes kept in clear in front of the redacted credential.
const SCHEMES: &[&str] = &[
    "bearer",
    "basic",
    "digest",
    "token",
    "negotiate",
    "ntlm",
    "hoba",
    "mutual",
    "dpop",
    "oauth",
    "apikey",
    "api-key",
    "key",
    "sso-key",
    "ssws",
    "aws4-hmac-sha256",
    "hawk",
    "sharedkey",
    "sharedaccesssignature",
    "splunk",
    "googlelogin",
];

/// How a header's value is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderClass {
    /// `cookie`: names kept, values replaced (`session=[REDACTED:cookie]`).
    Cookie,
    /// `set-cookie`: the cookie's value replaced, attributes kept.
    SetCookie,
    /// Credential-bearing (`authorization`, `x-api-key`, built-ins, `headers.credential`, and any
    /// name with a credential word): a known scheme stays, the credential is replaced whole.
    Credential,
    /// Client addresses (`x-forwarded-for`, `x-real-ip`, `forwarded`, …).
    Ip,
    /// URLs (`referer`, `location`, `origin`, …).
    Url,
    /// Anything else: the text detectors.
    Text,
}

fn in_list(list: &[&str], name: &str) -> bool {
    list.iter().any(|x| x.eq_ignore_ascii_case(name))
}

impl RedactionPolicy {
    /// The treatment of header `name`.
    pub fn header_class(&self, name: &str) -> HeaderClass {
        match self.classes.get(name) {
            Some(c) => *c,
            None => self.judge_header(name),
        }
    }

    /// [`RedactionPolicy::header_class`] judged from the name.
    pub(crate) fn judge_header(&self, name: &str) -> HeaderClass {
        if name.eq_ignore_ascii_case("cookie") {
            HeaderClass::Cookie
        } else if name.eq_ignore_ascii_case("set-cookie") {
            HeaderClass::SetCookie
        } else if in_list(BUILTIN_CREDENTIAL_HEADERS, name)
            || self.credential_headers.contains(name)
            || keys::sensitive(name.as_bytes(), &[], &[]) == Some(Strength::Strong)
        {
            HeaderClass::Credential
        } else if in_list(IP_HEADERS, name) {
            HeaderClass::Ip
        } else if in_list(URL_HEADERS, name) {
            HeaderClass::Url
        } else {
            HeaderClass::Text
        }
    }

    /// Whether request header `name` is logged at all (so the filter can skip reading it).
    pub fn logs_request_header(&self, name: &str) -> bool {
        self.request_headers.contains(name)
    }

    /// Whether response header `name` is logged at all.
    pub fn logs_response_header(&self, name: &str) -> bool {
        self.response_headers.contains(name)
    }

    /// Whether request trailer `name` is logged at all (`trailers.request`).
    pub fn logs_request_trailer(&self, name: &str) -> bool {
        self.request_trailers.contains(name)
    }

    /// Whether response trailer `name` is logged at all (`trailers.response`).
    pub fn logs_response_trailer(&self, name: &str) -> bool {
        self.response_trailers.contains(name)
    }

    /// A request trailer as it may be logged: `None` when not allowlisted or dropped; else the
    /// value redacted like a header of the same name ([`RedactionPolicy::header_value`]).
    pub fn request_trailer<'a>(
        &self,
        name: &str,
        value: &'a str,
        s: &mut Summary,
    ) -> Option<Cow<'a, str>> {
        if !self.logs_request_trailer(name) {
            return None;
        }
        self.header_value(name, value, s)
    }

    /// A response trailer as it may be logged (see [`RedactionPolicy::request_trailer`]).
    pub fn response_trailer<'a>(
        &self,
        name: &str,
        value: &'a str,
        s: &mut Summary,
    ) -> Option<Cow<'a, str>> {
        if !self.logs_response_trailer(name) {
            return None;
        }
        self.header_value(name, value, s)
    }

    /// A request header as it may be logged: `None` when not allowlisted (default deny) or when a
    /// `drop` action fired; otherwise the value after [`RedactionPolicy::header_value`].
    pub fn request_header<'a>(
        &self,
        name: &str,
        value: &'a str,
        s: &mut Summary,
    ) -> Option<Cow<'a, str>> {
        if !self.logs_request_header(name) {
            return None;
        }
        self.header_value(name, value, s)
    }

    /// A response header as it may be logged (see [`RedactionPolicy::request_header`]).
    pub fn response_header<'a>(
        &self,
        name: &str,
        value: &'a str,
        s: &mut Summary,
    ) -> Option<Cow<'a, str>> {
        if !self.logs_response_header(name) {
            return None;
        }
        self.header_value(name, value, s)
    }

    /// Redacts a header value by its [`HeaderClass`], without the allowlist check. `None`: drop.
    pub fn header_value<'a>(
        &self,
        name: &str,
        value: &'a str,
        s: &mut Summary,
    ) -> Option<Cow<'a, str>> {
        if super::memo::is_clean(self.memo_id, name, value) {
            return Some(Cow::Borrowed(value));
        }
        let before = *s;
        let out = match self.header_class(name) {
            HeaderClass::Cookie => self.cookie(value, s),
            HeaderClass::SetCookie => self.set_cookie(value, s),
            HeaderClass::Credential => self.credential(value, s),
            HeaderClass::Ip => self.ip_list(value, s),
            HeaderClass::Url if self.url_origin_only => self.url_origin(value, s),
            HeaderClass::Url => self.url_inner(value, s),
            HeaderClass::Text => self.redact_value(value, Enc::Plain, s).out,
        };
        if out == Out::Same && *s == before {
            super::memo::remember_clean(self.memo_id, name, value);
        }
        out.into_cow(value)
    }

    /// `Scheme credential` or `credential`: a known scheme stays, the credential goes whole.
    fn credential(&self, value: &str, s: &mut Summary) -> Out {
        let v = value.trim();
        if v.is_empty() {
            return Out::Same;
        }
        let (scheme, cred) = match v.split_once(' ') {
            Some((sch, rest)) if in_list(SCHEMES, sch) && !rest.trim().is_empty() => {
                (Some(sch), rest.trim())
            }
            _ => (None, v),
        };
        let fallback = match scheme {
            Some(sch) if sch.eq_ignore_ascii_case("bearer") => Kind::Bearer,
            Some(sch) if sch.eq_ignore_ascii_case("basic") => Kind::Basic,
            _ => Kind::Credential,
        };
        let (kind, custom) = match fallback {
            Kind::Credential => self.whole(cred.as_bytes()).unwrap_or((Kind::Credential, 0)),
            k => (k, 0),
        };
        match self.render(kind, custom, cred.as_bytes(), s) {
            Rendered::Drop => Out::Drop,
            Rendered::Text(t) => Out::Changed(match scheme {
                Some(sch) => format!("{sch} {t}"),
                None => t,
            }),
        }
    }

    fn cookie_pair(&self, pair: &str, o: &mut String, s: &mut Summary) -> bool {
        let pair = pair.trim();
        match pair.split_once('=') {
            Some((name, value)) => {
                let name = name.trim();
                match self.redact_value(name, Enc::Plain, s).out {
                    Out::Changed(n) => o.push_str(&n),
                    Out::Drop => return false,
                    Out::Same => o.push_str(name),
                }
                o.push('=');
                if !value.trim().is_empty() {
                    match self.render(Kind::Cookie, 0, value.trim().as_bytes(), s) {
                        Rendered::Text(t) => o.push_str(&t),
                        Rendered::Drop => return false,
                    }
                }
            }
            None => match self.render(Kind::Cookie, 0, pair.as_bytes(), s) {
                Rendered::Text(t) => o.push_str(&t),
                Rendered::Drop => return false,
            },
        }
        true
    }

    /// `a=1; b=2` → `a=[REDACTED:cookie]; b=[REDACTED:cookie]`.
    fn cookie(&self, value: &str, s: &mut Summary) -> Out {
        let mut o = String::with_capacity(value.len().min(4096));
        for pair in value.split(';').filter(|p| !p.trim().is_empty()) {
            if !o.is_empty() {
                o.push_str("; ");
            }
            if !self.cookie_pair(pair, &mut o, s) {
                return Out::Drop;
            }
        }
        if o == value {
            Out::Same
        } else {
            Out::Changed(o)
        }
    }

    /// `id=abc; Path=/; HttpOnly` → `id=[REDACTED:cookie]; Path=/; HttpOnly`.
    fn set_cookie(&self, value: &str, s: &mut Summary) -> Out {
        let (first, attrs) = match value.split_once(';') {
            Some((f, a)) => (f, Some(a)),
            None => (value, None),
        };
        let mut o = String::with_capacity(value.len());
        if !first.trim().is_empty() && !self.cookie_pair(first, &mut o, s) {
            return Out::Drop;
        }
        if let Some(a) = attrs {
            o.push(';');
            match self.redact_value(a, Enc::Plain, s).out {
                Out::Changed(t) => o.push_str(&t),
                Out::Drop => return Out::Drop,
                Out::Same => o.push_str(a),
            }
        }
        if o == value {
            Out::Same
        } else {
            Out::Changed(o)
        }
    }

    /// `client, proxy1, proxy2`: each element anonymized (see [`RedactionPolicy::client_ip`]).
    fn ip_list(&self, value: &str, s: &mut Summary) -> Out {
        if self.oversize(value.len()) {
            return self.redact_value(value, Enc::Plain, s).out;
        }
        let mut o = String::with_capacity(value.len());
        let mut changed = false;
        for (i, elem) in value.split(',').enumerate() {
            if i > 0 {
                o.push(',');
            }
            match self.ip_element(elem, s) {
                Out::Same => o.push_str(elem),
                Out::Changed(t) => {
                    changed = true;
                    o.push_str(&t);
                }
                Out::Drop => return Out::Drop,
            }
        }
        if changed { Out::Changed(o) } else { Out::Same }
    }
}

#[cfg(test)]
mod class_tests {
    use super::*;

    #[test]
    fn precomputed_classes_agree_with_the_judgement() {
        let p = RedactionPolicy::from_json(
            br#"{"headers": {"request": ["referer", "x-api-key", "cookie", "x-forwarded-for", "x-b3-*"],
                             "credential": ["x-mine"]}}"#,
        )
        .unwrap_or_default();
        assert!(!p.classes.is_empty());
        for (n, c) in p.classes.iter() {
            assert_eq!(*c, p.judge_header(n), "{n}");
            assert_eq!(p.header_class(&n.to_ascii_uppercase()), *c, "{n}");
        }
        assert_eq!(p.header_class("Referer"), HeaderClass::Url);
        assert_eq!(p.header_class("X-Api-Key"), HeaderClass::Credential);
        assert_eq!(p.header_class("x-mine"), HeaderClass::Credential);
        assert_eq!(p.header_class("x-b3-traceid"), HeaderClass::Text);
    }
}
