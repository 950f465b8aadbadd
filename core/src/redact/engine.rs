//! Redacting one value: decode, detect, map findings back to raw byte ranges, render replacements.

use super::action::{self, Action, canonical};
use super::decode::{Enc, decode, decode_value, needs_decode};
use super::detect;
use super::scan::Finding;
use super::{Kind, RedactionPolicy, Summary};
use std::borrow::Cow;

/// What became of a value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Out {
    /// Unchanged: log the raw value as is.
    #[default]
    Same,
    /// Log this instead.
    Changed(String),
    /// Drop the field.
    Drop,
}

impl Out {
    pub(crate) fn into_cow(self, raw: &str) -> Option<Cow<'_, str>> {
        match self {
            Out::Same => Some(Cow::Borrowed(raw)),
            Out::Changed(s) => Some(Cow::Owned(s)),
            Out::Drop => None,
        }
    }

    pub(crate) fn changed(&self) -> bool {
        !matches!(self, Out::Same)
    }
}

/// A redacted value and the kind of its first finding (for route placeholders).
pub(crate) struct ValueOut {
    pub(crate) out: Out,
    pub(crate) first: Option<(Kind, u16)>,
}

impl ValueOut {
    pub(crate) const SAME: ValueOut = ValueOut {
        out: Out::Same,
        first: None,
    };
}

/// A finding in raw offsets: start, end, kind, custom pattern index.
type Span = (usize, usize, Kind, u16);

/// A rendered replacement.
pub(crate) enum Rendered {
    Text(String),
    Drop,
}

impl RedactionPolicy {
    /// The marker label of a finding: the kind name, or the custom pattern's name.
    pub(crate) fn label(&self, kind: Kind, custom: u16) -> &str {
        if kind == Kind::Custom {
            self.custom
                .get(usize::from(custom))
                .map_or("custom", |c| c.name.as_str())
        } else {
            kind.name()
        }
    }

    fn action_for(&self, kind: Kind, custom: u16) -> Action {
        if kind == Kind::Custom {
            self.custom
                .get(usize::from(custom))
                .map_or(Action::Mask, |c| c.action)
        } else {
            self.action(kind)
        }
    }

    /// Renders the replacement of `value` (decoded) found as `kind`, and counts it. `Off` renders
    /// as `Mask`: structural redaction (credential headers, cookies) never logs in clear.
    pub(crate) fn render(
        &self,
        kind: Kind,
        custom: u16,
        value: &[u8],
        s: &mut Summary,
    ) -> Rendered {
        s.add(kind);
        let label = self.label(kind, custom);
        match self.action_for(kind, custom) {
            Action::Mask | Action::Off => Rendered::Text(action::mask(label)),
            Action::Hash => match &self.hasher {
                Some(h) => Rendered::Text(h.hash(label, &canonical(kind, value))),
                None => Rendered::Text(action::mask(label)),
            },
            Action::Partial => Rendered::Text(
                action::partial(kind, value, (self.ipv4_prefix, self.ipv6_prefix))
                    .unwrap_or_else(|| action::mask(label)),
            ),
            Action::Drop => Rendered::Drop,
        }
    }

    pub(crate) fn oversize(&self, len: usize) -> bool {
        len > self.max_value_bytes && self.det.on(Kind::Oversize)
    }

    /// Built-in and custom findings in `t`, in any order, possibly overlapping.
    pub(crate) fn find_all(&self, t: &[u8], out: &mut Vec<Finding>) {
        detect::scan(t, &self.det, out);
        for (i, c) in self.custom.iter().enumerate() {
            let idx = u16::try_from(i).unwrap_or(u16::MAX);
            match std::str::from_utf8(t) {
                Ok(s) => {
                    for m in c.re.find_iter(s) {
                        if m.end() > m.start() {
                            out.push(Finding {
                                start: m.start(),
                                end: m.end(),
                                kind: Kind::Custom,
                                custom: idx,
                            });
                        }
                    }
                }
                Err(_) => {
                    if c.re.is_match(&String::from_utf8_lossy(t)) {
                        out.push(Finding {
                            start: 0,
                            end: t.len(),
                            kind: Kind::Custom,
                            custom: idx,
                        });
                    }
                }
            }
        }
    }

    /// The single finding covering all of `t`, if that is what `t` is.
    pub(crate) fn whole(&self, t: &[u8]) -> Option<(Kind, u16)> {
        if self.oversize(t.len()) {
            return None;
        }
        let mut f = Vec::new();
        self.find_all(t, &mut f);
        match f.as_slice() {
            [one] if one.start == 0 && one.end == t.len() => Some((one.kind, one.custom)),
            _ => None,
        }
    }

    /// Replaces `raw` as a whole (a value under a sensitive key, a credential): as the kind it is
    /// when one detector covers it, else as `fallback`.
    pub(crate) fn replace_whole(
        &self,
        raw: &str,
        enc: Enc,
        fallback: Kind,
        s: &mut Summary,
    ) -> ValueOut {
        let value = decode_value(raw.as_bytes(), enc);
        let (kind, custom) = self.whole(&value).unwrap_or((fallback, 0));
        let out = match self.render(kind, custom, &value, s) {
            Rendered::Text(t) => Out::Changed(t),
            Rendered::Drop => Out::Drop,
        };
        ValueOut {
            out,
            first: Some((kind, custom)),
        }
    }

    /// Redacts every finding in `raw` (encoded as `enc`), keeping all other bytes as they were.
    pub(crate) fn redact_value(&self, raw: &str, enc: Enc, s: &mut Summary) -> ValueOut {
        let rb = raw.as_bytes();
        if rb.is_empty() {
            return ValueOut::SAME;
        }
        if self.oversize(rb.len()) {
            let out = match self.render(Kind::Oversize, 0, rb, s) {
                Rendered::Text(t) => Out::Changed(t),
                Rendered::Drop => Out::Drop,
            };
            return ValueOut {
                out,
                first: Some((Kind::Oversize, 0)),
            };
        }
        let mut found: Vec<Finding> = Vec::new();
        // (raw start, raw end, kind, custom)
        let mut spans: Vec<Span> = Vec::new();
        let has_pct = rb.contains(&b'%');
        // Only a form value reads `+` as a space.
        let has_plus = enc == Enc::Form && rb.contains(&b'+');
        // Every spelling the value may mean: plain text as is and percent-decoded; a path segment
        // decoded; a form value decoded, and with `+` kept as a plus (whoever typed `+1 415…`
        // meant it). The raw bytes are scanned when they are one of those spellings.
        if enc == Enc::Plain || !has_pct {
            self.find_all(rb, &mut found);
            spans.extend(found.drain(..).map(|f| (f.start, f.end, f.kind, f.custom)));
        }
        let plus_variants: &[bool] = match enc {
            Enc::Plain | Enc::Percent if has_pct => &[false],
            Enc::Plain | Enc::Percent => &[],
            Enc::Form if has_pct && has_plus => &[true, false],
            Enc::Form if has_pct || has_plus => &[true],
            Enc::Form => &[],
        };
        for &plus in plus_variants {
            let d1 = decode(rb, plus);
            self.find_all(&d1.bytes, &mut found);
            spans.extend(found.drain(..).filter_map(|f| {
                d1.raw_span(f.start, f.end)
                    .map(|(a, b)| (a, b, f.kind, f.custom))
            }));
            // Double-encoded (`jo%2540example.com`, URLs nested in URLs): one more round.
            if needs_decode(&d1.bytes, false) {
                let d2 = decode(&d1.bytes, false);
                self.find_all(&d2.bytes, &mut found);
                spans.extend(found.drain(..).filter_map(|f| {
                    let (a, b) = d2.raw_span(f.start, f.end)?;
                    d1.raw_span(a, b).map(|(a, b)| (a, b, f.kind, f.custom))
                }));
            }
        }
        if spans.is_empty() {
            return ValueOut::SAME;
        }
        spans.sort_by_key(|x| (x.0, std::cmp::Reverse(x.1)));
        let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
        for sp in spans {
            match merged.last_mut() {
                Some(last) if sp.0 < last.1 => last.1 = last.1.max(sp.1),
                _ => merged.push(sp),
            }
        }
        let first = merged.first().map(|m| (m.2, m.3));
        let mut out = String::with_capacity(raw.len() + 16 * merged.len());
        let mut pos = 0;
        let mut drop = false;
        for (a, b, kind, custom) in merged {
            let Some(value) = rb.get(a..b) else { continue };
            let value = decode_value(value, if enc == Enc::Plain { Enc::Percent } else { enc });
            match self.render(kind, custom, &value, s) {
                Rendered::Text(t) => {
                    match raw.get(pos..a) {
                        Some(keep) => out.push_str(keep),
                        None => return self.mask_all(raw, kind, custom),
                    }
                    out.push_str(&t);
                    pos = b;
                }
                Rendered::Drop => drop = true,
            }
        }
        if drop {
            return ValueOut {
                out: Out::Drop,
                first,
            };
        }
        match raw.get(pos..) {
            Some(rest) => out.push_str(rest),
            None => return self.mask_all(raw, first.map_or(Kind::Custom, |f| f.0), 0),
        }
        ValueOut {
            out: Out::Changed(out),
            first,
        }
    }

    /// Fallback when spans do not fall on character boundaries (should not happen): mask it all.
    fn mask_all(&self, _raw: &str, kind: Kind, custom: u16) -> ValueOut {
        ValueOut {
            out: Out::Changed(action::mask(self.label(kind, custom))),
            first: Some((kind, custom)),
        }
    }

    /// Redacts a free-text field (user agent, request id, any other string): every detector runs
    /// over the whole value. `None`: drop the field. Borrows when nothing was found.
    pub fn text<'a>(&self, value: &'a str, s: &mut Summary) -> Option<Cow<'a, str>> {
        self.redact_value(value, Enc::Plain, s).out.into_cow(value)
    }

    /// [`RedactionPolicy::text`] for a field whose values repeat from request to request (the
    /// user agent): a value it leaves untouched is remembered per thread ([`super::memo`]) and
    /// not scanned again. Same result, same counts.
    pub fn repeated_text<'a>(&self, value: &'a str, s: &mut Summary) -> Option<Cow<'a, str>> {
        // A name no header has (a space is not a token byte): apart from header values.
        const FIELD: &str = " text";
        if super::memo::is_clean(self.memo_id, FIELD, value) {
            return Some(Cow::Borrowed(value));
        }
        let before = *s;
        let out = self.redact_value(value, Enc::Plain, s).out;
        if out == Out::Same && *s == before {
            super::memo::remember_clean(self.memo_id, FIELD, value);
        }
        out.into_cow(value)
    }

    /// Anonymizes a client address (the downstream peer, one `X-Forwarded-For` element):
    /// `1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:443` are truncated to the configured prefix
    /// (default `ip` action `partial`), masked, hashed or dropped; a port is kept. Anything that is
    /// not an address goes through the text detectors. `None`: drop the field.
    pub fn client_ip<'a>(&self, ip: &'a str, s: &mut Summary) -> Option<Cow<'a, str>> {
        self.ip_element(ip, s).into_cow(ip)
    }

    pub(crate) fn ip_element(&self, elem: &str, s: &mut Summary) -> Out {
        if !self.det.on(Kind::Ip) {
            return self.redact_value(elem, Enc::Plain, s).out;
        }
        match super::ip::parse_element(elem) {
            // The common case (a client's IPv4 address kept to its prefix) without the
            // `to_string`, re-parse and `Display` of the general path below: same text.
            Some((a, b, std::net::IpAddr::V4(v4)))
                if self.action_for(Kind::Ip, 0) == Action::Partial =>
            {
                s.add(Kind::Ip);
                let t = super::ip::truncated_v4_text(v4, self.ipv4_prefix);
                match (elem.get(..a), elem.get(b..)) {
                    (Some(""), Some("")) | (None, _) | (_, None) => Out::Changed(t),
                    (Some(pre), Some(post)) => Out::Changed(format!("{pre}{t}{post}")),
                }
            }
            Some((a, b, addr)) => {
                let text = addr.to_string();
                match self.render(Kind::Ip, 0, text.as_bytes(), s) {
                    Rendered::Drop => Out::Drop,
                    Rendered::Text(t) => {
                        let (Some(pre), Some(post)) = (elem.get(..a), elem.get(b..)) else {
                            return Out::Changed(t);
                        };
                        Out::Changed(format!("{pre}{t}{post}"))
                    }
                }
            }
            None => self.redact_value(elem, Enc::Plain, s).out,
        }
    }
}
