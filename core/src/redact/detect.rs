//! The built-in value detectors' dispatcher: one left-to-right pass over the (decoded) bytes of
//! a value.
//!
//! At each position the scanner dispatches on the byte and on whether a word starts there (the
//! previous byte is not alphanumeric), tries the detectors that can start with that byte, and on a
//! hit records the span and jumps past it. Every detector is a hand-written matcher with a bounded
//! look-ahead; those that rescan runs (JWT, entropy, IPv6, `key=value`) remember how far a failed
//! attempt looked, so the pass stays linear. Nothing here allocates unless something is found.
//!
//! The detectors live in `numeric`, `token` and `syntax`, the framework they share in `scan`.
//! Only `key=value` stays here: it re-runs the dispatcher on the key and the value.
//!
//! Detectors work on bytes, so invalid UTF-8 is simply "not alphanumeric".

use super::Kind;
use super::creds;
use super::keys::{self, Strength};
use super::natid;
use super::numeric;
use super::scan::{
    Detectors, Finding, State, alnum_and, at, in_set, is_alnum, run, run_past, starts_with,
};
use super::syntax;
use super::token;

/// Appends the findings in `t` to `out`, ordered and non-overlapping.
pub(crate) fn scan(t: &[u8], d: &Detectors, out: &mut Vec<Finding>) {
    scan_inner(t, d, out, true);
}

fn scan_inner(t: &[u8], d: &Detectors, out: &mut Vec<Finding>, allow_kv: bool) {
    let first = out.len();
    let mut st = State::default();
    let mut i = 0;
    while i < t.len() {
        if !live(t, i) {
            i += 1;
            continue;
        }
        // At a word start, the end of its alphanumeric run: the detectors' runs over the word
        // (`key=`, base64, base64url) start there instead of reading the word again, and no
        // position inside it is live (its bytes and their predecessors are alphanumeric).
        let word_end = if is_alnum(at(t, i)) {
            Some(run(t, i + 1, is_alnum))
        } else {
            None
        };
        match detect_at(t, i, d, &mut st, allow_kv, word_end) {
            Some(f) if f.end > f.start && f.start >= st.last_end => {
                if f.kind == Kind::AwsAccessKey {
                    st.aws_id_seen = true;
                }
                out.push(f);
                st.last_end = f.end;
                i = f.end.max(i + 1);
            }
            _ => i = word_end.unwrap_or(0).max(i + 1),
        }
    }
    // A 40-character base64 token next to an AWS access key id is its secret.
    if st.aws_id_seen && d.on(Kind::AwsSecretKey) && !st.pending_aws.is_empty() {
        let mut added = false;
        for (s, e) in st.pending_aws {
            let mut overlaps = false;
            for f in out.get_mut(first..).unwrap_or_default() {
                if f.start < e && s < f.end {
                    overlaps = true;
                    if f.kind == Kind::HighEntropy && f.start == s && f.end == e {
                        f.kind = Kind::AwsSecretKey;
                    }
                }
            }
            if !overlaps {
                out.push(Finding::new(s, e, Kind::AwsSecretKey));
                added = true;
            }
        }
        if added && let Some(tail) = out.get_mut(first..) {
            tail.sort_by_key(|f| f.start);
        }
    }
}

/// Byte classes for [`live`]: alphanumeric; may start a detector at a word start; may start one
/// anywhere (`@`, `://`, `-----BEGIN`).
const ALNUM: u8 = 1;
const STARTS: u8 = 2;
const ANYWHERE: u8 = 4;

// Evaluated at compile time: an index out of bounds fails the build, it cannot panic.
#[allow(clippy::indexing_slicing)]
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() {
            t[b] = ALNUM | STARTS;
        }
        b += 1;
    }
    // Numbers (`+1 415…`, `(415) …`), IPv6 (`::1`), base64 and base64url runs.
    let starts = b"+(:/_-";
    let mut k = 0;
    while k < starts.len() {
        t[starts[k] as usize] |= STARTS;
        k += 1;
    }
    t[b'@' as usize] |= ANYWHERE;
    t[b':' as usize] |= ANYWHERE;
    t[b'-' as usize] |= ANYWHERE;
    t
};

fn class(b: u8) -> u8 {
    CLASS.get(usize::from(b)).copied().unwrap_or(0)
}

/// Whether any detector can start at `i`: [`detect_at`] answers `None` without touching the
/// look-ahead state everywhere else (inside a word, and at bytes no detector starts with), so the
/// pass skips those positions at one table lookup each. Most bytes of a value are such positions.
#[inline]
fn live(t: &[u8], i: usize) -> bool {
    let b = class(t.get(i).copied().unwrap_or(0));
    if b & ANYWHERE != 0 {
        return true;
    }
    let prev = if i == 0 {
        0
    } else {
        class(t.get(i - 1).copied().unwrap_or(0))
    };
    b & STARTS != 0 && prev & ALNUM == 0
}

/// Bytes that may start an IPv6 address (hex digits and `:`), and a number (digits, `+`, `(`):
/// one lookup each in the dispatcher instead of range tests.
const V6_START: [bool; 256] = byte_set(b"0123456789abcdefABCDEF:");
const NUM_START: [bool; 256] = byte_set(b"0123456789+(");
const ALPHA: [bool; 256] = byte_set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");

// Evaluated at compile time: an index out of bounds fails the build, it cannot panic.
#[allow(clippy::indexing_slicing)]
const fn byte_set(bytes: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut k = 0;
    while k < bytes.len() {
        t[bytes[k] as usize] = true;
        k += 1;
    }
    t
}

/// `word_end`: the end of the alphanumeric run at `i`, when `i` starts one.
fn detect_at(
    t: &[u8],
    i: usize,
    d: &Detectors,
    st: &mut State,
    allow_kv: bool,
    word_end: Option<usize>,
) -> Option<Finding> {
    let b = at(t, i);
    let prev = if i == 0 { 0 } else { at(t, i - 1) };
    let boundary = !is_alnum(prev);
    match b {
        b'@' => {
            return if d.on(Kind::Email) {
                syntax::email(t, i, st.last_end)
            } else {
                None
            };
        }
        b':' if starts_with(t, i, b"://") => {
            if d.on(Kind::UrlCredentials)
                && let Some(f) = syntax::url_credentials(t, i)
            {
                return Some(f);
            }
        }
        b'-' if starts_with(t, i, b"-----BEGIN ") => {
            if d.on(Kind::PrivateKey)
                && let Some(f) = syntax::private_key(t, i)
            {
                return Some(f);
            }
        }
        _ => {}
    }
    if boundary {
        if d.on(Kind::Ssn)
            && is_alnum(b)
            && matches!(prev, b'"' | b':' | b' ')
            && let Some(f) = natid::json_value(t, i)
        {
            return Some(f);
        }
        if in_set(&NUM_START, b) {
            if let Some(f) = numeric::numeric(t, i, d) {
                return Some(f);
            }
        } else if in_set(&ALPHA, b) {
            if creds::may_start_at(t, i)
                && let Some(f) = creds::at_pos(t, i, |k| d.on(k))
            {
                return Some(f);
            }
            if b == b'e' && d.on(Kind::Jwt) && i >= st.jwt_until {
                match token::jwt(t, i) {
                    Ok(f) => return Some(f),
                    Err(until) => st.jwt_until = until,
                }
            }
            if b.is_ascii_uppercase()
                && d.on(Kind::Iban)
                && let Some(f) = token::iban(t, i)
            {
                return Some(f);
            }
            if matches!(b, b'B' | b'b')
                && let Some(f) = syntax::bearer_basic(t, i, d)
            {
                return Some(f);
            }
            if allow_kv && d.on(Kind::SecretParam) && i >= st.kv_until {
                match key_value(t, i, d, word_end) {
                    Ok(f) => return Some(f),
                    Err(until) => st.kv_until = until,
                }
            }
        }
        if in_set(&V6_START, b) && d.on(Kind::Ip) && i >= st.v6_until {
            match syntax::ipv6(t, i, word_end) {
                Ok(f) => return Some(f),
                Err(until) => st.v6_until = until,
            }
        }
    }
    token::entropy(t, i, d, st, word_end)
}

/// How far past a `key=` the value's own detectors may look.
const KV_LOOKAHEAD: usize = 256;

const KEY_BYTES: [bool; 256] = alnum_and(b"_-.[]");

fn is_key_byte(b: u8) -> bool {
    in_set(&KEY_BYTES, b)
}

fn is_value_end(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            0 | b'&' | b';' | b',' | b'"' | b'\'' | b'<' | b'>' | b')' | b'}' | b']' | b'|'
        )
}

/// `key=value` / `key: value` in text where `key` is sensitive: the value. `Err(until)` tells the
/// scanner where this attempt looked up to. `word_end`: as for `detect_at`.
fn key_value(t: &[u8], i: usize, d: &Detectors, word_end: Option<usize>) -> Result<Finding, usize> {
    let ke = run_past(t, i, word_end, is_key_byte);
    let key = t.get(i..ke).ok_or(ke)?;
    if key.len() > 64 {
        return Err(ke);
    }
    // `"key": value` (JSON) and `key = value`: a closing quote and spaces before the separator.
    let mut se = ke;
    let open = if i == 0 { 0 } else { at(t, i - 1) };
    if (open == b'"' || open == b'\'') && at(t, se) == open {
        se += 1;
    }
    se = run(t, se, |b| b == b' ');
    let sep = at(t, se);
    let strength = match sep {
        b'=' | b':' => keys::sensitive(key, &d.extra_keys, &d.allow_keys).ok_or(ke)?,
        _ => return Err(ke),
    };
    if sep == b':' && (strength != Strength::Strong || starts_with(t, se, b"://")) {
        return Err(ke);
    }
    // A key that itself holds a secret (`key-4111111111111111: x`) is scanned as plain text.
    let mut in_key = Vec::new();
    scan_inner(key, d, &mut in_key, false);
    if !in_key.is_empty() {
        return Err(i + 1);
    }
    let mut vs = se + 1;
    if sep == b':' || at(t, vs) == b' ' {
        vs = run(t, vs, |b| b == b' ');
    }
    let q = at(t, vs);
    let ve = if q == b'"' || q == b'\'' {
        vs += 1;
        run(t, vs, |b| b != q && b != 0)
    } else {
        let mut e = run(t, vs, |b| !is_value_end(b));
        // `authorization: Bearer abc`: the scheme alone is not the secret.
        let v = t.get(vs..e).unwrap_or_default();
        if at(t, e) == b' '
            && !v.is_empty()
            && v.len() <= 24
            && v.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && !is_value_end(at(t, e + 1))
        {
            e = run(t, e + 1, |b| !is_value_end(b));
        }
        e
    };
    if ve <= vs {
        return Err(ke);
    }
    // If the value starts with one recognizable thing that covers it (a card under `card=`), name
    // it for what it is, and take all of it even past a space (`pin: 4111 1111 1111 1111`).
    let window = t.get(vs..).unwrap_or_default();
    let window = window.get(..(ve - vs).max(KV_LOOKAHEAD)).unwrap_or(window);
    let mut sub = Vec::new();
    scan_inner(window, d, &mut sub, false);
    match sub.first() {
        Some(f) if f.start == 0 && f.end >= ve - vs => Ok(Finding::new(vs, vs + f.end, f.kind)),
        _ => Ok(Finding::new(vs, ve, Kind::SecretParam)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn start_tables_are_the_range_tests() {
        for b in 0..=u8::MAX {
            let num = b.is_ascii_digit() || b == b'+' || b == b'(';
            assert_eq!(in_set(&NUM_START, b), num, "{b}");
            let v6 = b.is_ascii_hexdigit() || b == b':';
            assert_eq!(in_set(&V6_START, b), v6, "{b}");
            assert_eq!(in_set(&ALPHA, b), b.is_ascii_alphabetic(), "{b}");
        }
    }

    pub(crate) fn all_on() -> Detectors {
        Detectors {
            on: [true; Kind::COUNT],
            extra_keys: Vec::new(),
            allow_keys: Vec::new(),
        }
    }

    /// `(kind, matched text)` of every finding in `s`.
    pub(crate) fn found(s: &str) -> Vec<(Kind, String)> {
        let mut v = Vec::new();
        scan(s.as_bytes(), &all_on(), &mut v);
        v.iter()
            .map(|f| (f.kind, s[f.start..f.end].to_string()))
            .collect()
    }

    pub(crate) fn kinds(s: &str) -> Vec<Kind> {
        found(s).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn emails() {
        for (s, want) in [
            ("jo@example.com", "jo@example.com"),
            (
                "mail tom.popescu+billing@example.com now",
                "tom.popescu+billing@example.com",
            ),
            ("<raj_wei@mail.example.org>", "raj_wei@mail.example.org"),
            (
                "x=Omar.Patel48@corp.example.net.",
                "Omar.Patel48@corp.example.net",
            ),
            ("elena.larsen@example.co.uk,", "elena.larsen@example.co.uk"),
            ("jo@example.com-ref", "jo@example.com"),
            ("a@aa.com.a", "a@aa.com"),
            ("a@aa.com.js", "a@aa.com"),
        ] {
            assert_eq!(found(s), [(Kind::Email, want.to_string())], "{s}");
        }
        for s in [
            "icon@2x.png",
            "icon@2x.min.png",
            "logo@3x.webp?v=2",
            "user@host.png",
            "logo@3x.webp",
            "lodash@4.17.21",
            "user@localhost",
            "@scope/pkg",
            "a@b.c",
            "a@.com",
            "a@b..com",
            "x@-b.com",
            "@@@@",
            "a@example.123",
            "a@example.c0m",
        ] {
            assert_eq!(kinds(s), [], "{s}");
        }
    }

    #[test]
    fn url_credentials_and_private_keys() {
        assert_eq!(
            found("https://maria:CWNX0D1lZEzg@app.example.com/login"),
            [(Kind::UrlCredentials, "maria:CWNX0D1lZEzg".into())]
        );
        assert_eq!(
            found("see ftp://u:p@host and http://plain.example.com/a@b"),
            [(Kind::UrlCredentials, "u:p".into())]
        );
        assert_eq!(kinds("https://example.com/?a=b"), []);
        let pem = "x -----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY----- y";
        assert_eq!(
            found(pem),
            [(
                Kind::PrivateKey,
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----".into()
            )]
        );
        assert_eq!(
            found("-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAA"),
            [(
                Kind::PrivateKey,
                "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAA".into()
            )]
        );
        assert_eq!(
            kinds("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"),
            []
        );
        assert_eq!(kinds("-----BEGIN "), []);
    }

    #[test]
    fn bearer_and_basic_in_text() {
        assert_eq!(
            found("auth was Bearer TEmxI6CmuxV5EbOApZOXzcycDeZ6dqmV ok"),
            [(Kind::Bearer, "TEmxI6CmuxV5EbOApZOXzcycDeZ6dqmV".into())]
        );
        assert_eq!(
            found("basic dXNlcjpwYXNzd29yZA=="),
            [(Kind::Basic, "dXNlcjpwYXNzd29yZA==".into())]
        );
        assert_eq!(kinds("bearer authentication is used"), []);
        assert_eq!(kinds("basic usage of basic features"), []);
        assert_eq!(kinds("Basic QWxhZGRpbg=="), []); // "Aladdin": no colon, no credentials
    }

    #[test]
    fn key_values_in_text() {
        assert_eq!(
            found("https://app/cb?token=abc123&x=1"),
            [(Kind::SecretParam, "abc123".into())]
        );
        assert_eq!(
            found("password: hunter2, user: bob"),
            [(Kind::SecretParam, "hunter2".into())]
        );
        assert_eq!(
            found(r#"{"client_secret":"s3cr3t value"}"#),
            [(Kind::SecretParam, "s3cr3t value".into())]
        );
        assert_eq!(
            found("Authorization: Bearer abc.def"),
            [(Kind::SecretParam, "Bearer abc.def".into())]
        );
        assert_eq!(
            found("shop;jsessionid=1A2B3C4D5E6F"),
            [(Kind::SecretParam, "1A2B3C4D5E6F".into())]
        );
        // Under a sensitive key, a recognizable value keeps its own kind.
        assert_eq!(
            found("card=4111111111111111"),
            [(Kind::Card, "4111111111111111".into())]
        );
        // `code:` is weak: only `code=` counts.
        assert_eq!(kinds("error code: 500"), []);
        assert_eq!(found("code=xyz"), [(Kind::SecretParam, "xyz".into())]);
        assert_eq!(kinds("keyboard=qwerty monkey=george token="), []);
        assert_eq!(
            found("pin: 4111 1111 1111 1111 ok"),
            [(Kind::Card, "4111 1111 1111 1111".into())]
        );
        assert_eq!(kinds("https://example.com"), []);
    }

    #[test]
    fn ipv6_in_text() {
        assert_eq!(
            found("for=\"[2001:db8:cafe::17]:4711\""),
            [(Kind::Ip, "2001:db8:cafe::17".into())]
        );
        assert_eq!(
            found("client 2001:db8:1c7f:a189:2da3:9640:1920:a66a."),
            [(Kind::Ip, "2001:db8:1c7f:a189:2da3:9640:1920:a66a".into())]
        );
        for s in [
            "01:04:52",
            "2026-07-21T01:04:52Z",
            "12:34:56:78:9a:bc",
            "a:b",
            "dead:beefy",
        ] {
            assert_eq!(kinds(s), [], "{s}");
        }
    }

    #[test]
    fn runs_continue_past_the_word_read_once() {
        // A word start reads the alphanumeric run once; the key, base64, base64url and IPv6 runs
        // continue from its end or are answered from it.
        assert_eq!(
            found("user.password=hunter2&x=1"),
            [(Kind::SecretParam, "hunter2".into())]
        );
        assert_eq!(
            found("a 2001:db8::17 b"),
            [(Kind::Ip, "2001:db8::17".into())]
        );
        assert_eq!(found("fe80::1"), [(Kind::Ip, "fe80::1".into())]);
        assert_eq!(
            found("deadbeef fe80::1%eth0"),
            [(Kind::Ip, "fe80::1".into())]
        );
        for s in ["beef cafe:babe", "cafe.babe", "face 12ab", "abc:"] {
            assert_eq!(kinds(s), [], "{s}");
        }
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert_eq!(
            found(&format!("k={secret}")),
            [(Kind::AwsSecretKey, secret.into())]
        );
        let tok = "TEmxI6Cmux-V5EbOApZOX_zcycDeZ6dqmV";
        assert_eq!(found(&format!("{tok} ")), [(Kind::HighEntropy, tok.into())]);
    }

    #[test]
    fn detectors_switch_off() {
        let mut d = all_on();
        d.on[Kind::Email.index()] = false;
        let mut v = Vec::new();
        scan(b"jo@example.com", &d, &mut v);
        assert!(v.is_empty());
    }

    // Bytes read through `at` by the detectors of this thread: the scan's work, counted.
    use crate::redact::scan::STEPS;

    fn steps(s: &str) -> u64 {
        STEPS.with(|n| n.set(0));
        let mut v = Vec::new();
        scan(s.as_bytes(), &all_on(), &mut v);
        STEPS.with(std::cell::Cell::get)
    }

    #[test]
    fn pathological_inputs_are_fast() {
        // Each would be quadratic without the look-ahead memory. Measured in work, not time:
        // doubling the input at most doubles the bytes read (plus a little), and no input costs
        // more than a fixed number of reads per byte (96: a run of `1 ` is tried as a card, a
        // phone number and, with separators or without, a national id from every start; 65 per
        // byte measured).
        let inputs: [(&str, usize, &str); 10] = [
            ("eyJ-", 2_500, ""),
            ("a-", 5_000, ""),
            ("a:", 5_000, ""),
            ("a@", 5_000, ""),
            ("1 ", 5_000, ""),
            ("A/", 5_000, ""),
            ("-----BEGIN x", 1_000, ""),
            ("://a", 2_500, ""),
            ("token=", 2_000, ""),
            ("x", 12_500, "@"),
        ];
        for (unit, n, tail) in inputs {
            let small = unit.repeat(n) + tail;
            let large = unit.repeat(2 * n) + tail;
            let (s, l) = (steps(&small), steps(&large));
            assert!(
                l * 10 <= s * 22,
                "{unit:?}: {s} reads for {} bytes, {l} for {}: superlinear",
                small.len(),
                large.len()
            );
            assert!(
                l <= 96 * large.len() as u64,
                "{unit:?}: {l} reads for {} bytes",
                large.len()
            );
        }
    }
}
