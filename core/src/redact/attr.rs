//! Redacting a structured record that arrives without a meshlog policy (the collector's ingest
//! path): one value under one attribute key, treated by what the key says it is.

use super::decode::Enc;
use super::keys;
use super::{Kind, RedactionPolicy, Summary};
use crate::config::fields::{FieldError, Fields};
use std::borrow::Cow;

/// The last dot-separated segment of `key` (`http.request.header.referer` → `referer`).
fn last_segment(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

impl RedactionPolicy {
    /// Reads a redaction section through the caller's walker (a TOML table converted to JSON, as
    /// the collector reads `[redaction]`); the fields and their errors are those of the filter's
    /// `redaction` section, reported under the walker's path.
    pub fn parse_section(f: Fields<'_>, errs: &mut Vec<FieldError>) -> RedactionPolicy {
        super::policy::parse(f, errs)
    }

    /// Redacts `value`, the string under attribute `key` (a flattened OTLP attribute name or a
    /// nested object's key), by what the key names:
    ///
    /// - `…url.full`, `…url.original`, `…referer`, `…location` and other URL keys: as a URL;
    /// - `…url.query`: as a query string;
    /// - `http.request.header.<name>` / `http.response.header.<name>`: as that header's value
    ///   (credential headers are always replaced, client-address headers truncated);
    /// - `client.address`, `source.address`, `network.peer.address`: as a client address;
    /// - a sensitive key (`password`, `app.secret`, `db.token`, …): replaced whole;
    /// - a national id without separators as the whole value, under a key that names no other
    ///   number (`app.ref` but not `order.id`): replaced whole as `ssn`;
    /// - anything else: through the text detectors.
    ///
    /// `None`: a `drop` action fired; leave the value out.
    pub fn attribute<'a>(
        &self,
        key: &str,
        value: &'a str,
        s: &mut Summary,
    ) -> Option<Cow<'a, str>> {
        let last = last_segment(key);
        for prefix in ["http.request.header.", "http.response.header."] {
            if let Some(name) = key.rfind(prefix).and_then(|p| key.get(p + prefix.len()..)) {
                return self.header_value(name, value, s);
            }
        }
        if key.ends_with("url.query") {
            return self.query(value, s);
        }
        if key.ends_with("url.full")
            || key.ends_with("url.original")
            || super::header::URL_HEADERS
                .iter()
                .any(|h| h.eq_ignore_ascii_case(last))
        {
            return self.url(value, s);
        }
        if matches!(
            key,
            "client.address" | "source.address" | "network.peer.address"
        ) {
            return self.client_ip(value, s);
        }
        let sensitive = !value.is_empty()
            && self.det.on(Kind::SecretParam)
            && keys::sensitive(last.as_bytes(), &self.det.extra_keys, &self.det.allow_keys)
                .is_some();
        if sensitive {
            return self
                .replace_whole(value, Enc::Plain, Kind::SecretParam, s)
                .out
                .into_cow(value);
        }
        // A national id without separators as the whole value of a neutral attribute.
        if self.det.on(Kind::Ssn)
            && super::natid::is_national_id(value.as_bytes())
            && !super::natid::id_key(last.as_bytes())
        {
            return self
                .replace_whole(value, Enc::Plain, Kind::Ssn, s)
                .out
                .into_cow(value);
        }
        self.text(value, s)
    }
}
