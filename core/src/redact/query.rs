//! Query strings: sensitive keys lose their values, every key and value goes through the detectors,
//! and everything else stays byte for byte as it was sent.

use super::decode::{Enc, decode_value};
use super::engine::Out;
use super::keys;
use super::memo;
use super::natid;
use super::scan::{find_ascii, split_ascii};
use super::{Kind, RedactionPolicy, Summary};
use std::borrow::Cow;

/// The memo's field for query keys (a space: no header has this name).
const KEY: &str = " query key";

impl RedactionPolicy {
    /// Redacts a query string (without the leading `?`). For each `key=value` pair (split on `&`,
    /// form-decoded for matching):
    /// - the key goes through the detectors (`?jo@example.com` loses the address);
    /// - under a sensitive key (see `keys`: `token`, `password`, `code`, `state`, `key`, `email`, …,
    ///   `query.sensitive_keys`, minus `query.allow_keys`) a non-empty value is replaced whole, as
    ///   the kind it is when a detector covers it all (`card_number=[REDACTED:card]`), else as
    ///   `secret_param`;
    /// - any other value goes through the detectors; a finding replaces only its own bytes.
    ///
    /// Keys, separators, empty pairs and untouched values are kept exactly. `None`: a `drop`
    /// action fired; drop the field. Borrowed when nothing changed.
    pub fn query<'a>(&self, raw_query: &'a str, s: &mut Summary) -> Option<Cow<'a, str>> {
        self.query_inner(raw_query, s).into_cow(raw_query)
    }

    pub(crate) fn query_inner(&self, raw: &str, s: &mut Summary) -> Out {
        if raw.is_empty() {
            return Out::Same;
        }
        if self.oversize(raw.len()) {
            return self.redact_value(raw, Enc::Plain, s).out;
        }
        let mut out: Option<String> = None;
        let mut start = 0;
        for pair in split_ascii(raw, b'&') {
            let end = start + pair.len();
            let (key, value) = match find_ascii(pair, b'=')
                .and_then(|p| Some((pair.get(..p)?, pair.get(p + 1..)?)))
            {
                Some((k, v)) => (k, Some(v)),
                None => (pair, None),
            };
            // Keys repeat request after request (`page`, `user`): a key that passed the
            // detectors untouched and is not sensitive is remembered, and both checks skipped.
            let (key_out, key_sensitive) =
                if !key.is_empty() && memo::is_clean(self.memo_id, KEY, key) {
                    (Out::Same, false)
                } else {
                    let before = *s;
                    let key_out = self.redact_value(key, Enc::Form, s).out;
                    let key_sensitive = self.det.on(Kind::SecretParam)
                        && keys::sensitive(
                            &decode_value(key.as_bytes(), Enc::Form),
                            &self.det.extra_keys,
                            &self.det.allow_keys,
                        )
                        .is_some();
                    if key_out == Out::Same && !key_sensitive && *s == before && !key.is_empty() {
                        memo::remember_clean(self.memo_id, KEY, key);
                    }
                    (key_out, key_sensitive)
                };
            let sensitive = value.is_some_and(|v| !v.is_empty()) && key_sensitive;
            let value_out = match value {
                None => Out::Same,
                Some(v) if sensitive => self.replace_whole(v, Enc::Form, Kind::SecretParam, s).out,
                // A national id without separators as the whole value of a neutral key.
                Some(v)
                    if self.det.on(Kind::Ssn)
                        && natid::is_national_id(&decode_value(v.as_bytes(), Enc::Form))
                        && !natid::id_key(&decode_value(key.as_bytes(), Enc::Form)) =>
                {
                    self.replace_whole(v, Enc::Form, Kind::Ssn, s).out
                }
                Some(v) => self.redact_value(v, Enc::Form, s).out,
            };
            if key_out == Out::Drop || value_out == Out::Drop {
                return Out::Drop;
            }
            if key_out.changed() || value_out.changed() {
                let o = out.get_or_insert_with(|| {
                    let mut o = String::with_capacity(raw.len() + 32);
                    // everything before this pair, without the `&` that ends it
                    o.push_str(raw.get(..start.saturating_sub(1)).unwrap_or_default());
                    o
                });
                if start > 0 {
                    o.push('&');
                }
                push_out(o, &key_out, key);
                if let Some(v) = value {
                    o.push('=');
                    push_out(o, &value_out, v);
                }
            } else if let Some(o) = out.as_mut() {
                if start > 0 {
                    o.push('&');
                }
                o.push_str(pair);
            }
            start = end + 1;
        }
        match out {
            Some(o) => Out::Changed(o),
            None => Out::Same,
        }
    }
}

fn push_out(o: &mut String, out: &Out, raw: &str) {
    match out {
        Out::Changed(t) => o.push_str(t),
        _ => o.push_str(raw),
    }
}
