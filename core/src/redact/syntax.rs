//! Secrets recognised by their syntax around a marker byte or word: e-mail addresses (`@`),
//! URL credentials (`://user:pass@`), PEM private keys (`-----BEGIN `), `Bearer`/`Basic`
//! credentials in text, and IPv6 addresses (`:`). The dispatcher in `detect` calls them where
//! their marker is.

use super::Kind;
use super::scan::{Detectors, Finding, at, is_alnum, run, starts_with_ci};
use super::token;

const FILE_EXTENSIONS: &[&[u8]] = &[
    b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"avif", b"ico", b"bmp", b"css", b"js",
    b"mjs", b"map", b"json", b"html", b"htm", b"xml", b"txt", b"pdf", b"woff", b"woff2", b"ttf",
];

fn is_local(b: u8) -> bool {
    is_alnum(b) || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// An e-mail address around the `@` at `at_i`, not reaching back before `floor`.
pub(crate) fn email(t: &[u8], at_i: usize, floor: usize) -> Option<Finding> {
    let mut s = at_i;
    while s > floor && is_local(at(t, s - 1)) {
        s -= 1;
    }
    if s == at_i {
        return None;
    }
    let ds = at_i + 1;
    let mut e = run(t, ds, |b| is_alnum(b) || b == b'-' || b == b'.');
    while e > ds && matches!(at(t, e - 1), b'.' | b'-') {
        e -= 1;
    }
    let domain = t.get(ds..e)?;
    if domain.len() < 4
        || domain.len() > 253
        || domain.starts_with(b".")
        || domain.starts_with(b"-")
    {
        return None;
    }
    if domain.windows(2).any(|w| w == b"..") {
        return None;
    }
    // `icon@2x.png`, `logo@3x.min.webp`: retina asset names, not addresses.
    let first = domain.split(|b| *b == b'.').next().unwrap_or_default();
    if first.len() <= 4 && first.ends_with(b"x") && first.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    // The top-level label starts with 2+ letters (`jo@example.com-ref` is `jo@example.com` then
    // `-ref`); when the last label does not qualify (`jo@example.com.a`), an earlier one may.
    let mut d = domain;
    loop {
        let dot = d.iter().rposition(|b| *b == b'.')?;
        let label = d.get(dot + 1..)?;
        let k = label.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        let tld = label.get(..k)?;
        // A file extension is not a top-level domain: `jo@example.com.js` is an address followed
        // by `.js`, and `user@host.png` is none.
        if (2..=63).contains(&k) && !FILE_EXTENSIONS.iter().any(|x| tld.eq_ignore_ascii_case(x)) {
            return Some(Finding::new(s, ds + dot + 1 + k, Kind::Email));
        }
        d = d.get(..dot)?;
    }
}

/// `user:pass` in `scheme://user:pass@host`; `i` is the `:` of `://`.
pub(crate) fn url_credentials(t: &[u8], i: usize) -> Option<Finding> {
    let a = i + 3;
    let mut j = a;
    let mut last_at = None;
    while j < t.len() {
        match at(t, j) {
            b'/' | b'?' | b'#' | b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'\'' | b'<' | b'>' => break,
            b'@' => last_at = Some(j),
            _ => {}
        }
        j += 1;
    }
    let p = last_at?;
    (p > a).then(|| Finding::new(a, p, Kind::UrlCredentials))
}

fn find(t: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let hay = t.get(from..)?;
    hay.windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// A PEM private key block starting at `i` (`-----BEGIN `); runs to the end of the text when the
/// `-----END` line is missing (a truncated key is still a key).
pub(crate) fn private_key(t: &[u8], i: usize) -> Option<Finding> {
    let label_start = i + 11;
    let window = t.get(label_start..).unwrap_or_default();
    let window = window.get(..72).unwrap_or(window);
    let close = find(window, 0, b"-----")? + label_start;
    let label = t.get(label_start..close)?;
    find(label, 0, b"PRIVATE KEY")?;
    let end = match find(t, close + 5, b"-----END") {
        Some(p) => match find(t, p + 8, b"-----") {
            Some(q) => q + 5,
            None => t.len(),
        },
        None => t.len(),
    };
    Some(Finding::new(i, end, Kind::PrivateKey))
}

fn is_token68(b: u8) -> bool {
    is_alnum(b) || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// The credential after a `Bearer ` or `Basic ` word in text.
pub(crate) fn bearer_basic(t: &[u8], i: usize, d: &Detectors) -> Option<Finding> {
    let (kind, skip) = if starts_with_ci(t, i, b"bearer ") {
        (Kind::Bearer, 7)
    } else if starts_with_ci(t, i, b"basic ") {
        (Kind::Basic, 6)
    } else {
        return None;
    };
    if !d.on(kind) {
        return None;
    }
    let s = run(t, i + skip, |b| b == b' ');
    let e = run(t, s, is_token68);
    let tok = t.get(s..e)?;
    if tok.len() < 8 || is_alnum(at(t, e)) {
        return None;
    }
    let ok = match kind {
        Kind::Bearer => !tok.iter().all(|b| b.is_ascii_lowercase()),
        _ => token::base64_has_colon(tok),
    };
    // A bearer JWT is named for what it is.
    let kind = match token::jwt(t, s) {
        Ok(f) if kind == Kind::Bearer && f.end == e && d.on(Kind::Jwt) => Kind::Jwt,
        _ => kind,
    };
    ok.then(|| Finding::new(s, e, kind))
}

fn is_v6_byte(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':' || b == b'.'
}

/// An IPv6 address (as the standard library parses it) with at least two colons. `word_end`:
/// the end of the alphanumeric run at `i`, when `i` starts one: unless a `:` or `.` follows the
/// word, the candidate ends inside it and has no colon, and `Err(word_end)` says so without
/// reading the word (the scan resumes at `word_end` or later, so that answer and the candidate's
/// own end limit the next attempt alike).
pub(crate) fn ipv6(t: &[u8], i: usize, word_end: Option<usize>) -> Result<Finding, usize> {
    if let Some(w) = word_end
        && !matches!(at(t, w), b':' | b'.')
    {
        return Err(w);
    }
    let prev = if i == 0 { 0 } else { at(t, i - 1) };
    let e = run(t, i, is_v6_byte);
    if prev == b':' || prev == b'.' || word_end.is_some_and(|w| e <= w) {
        return Err(e);
    }
    let cand = t.get(i..e).ok_or(e)?;
    let colons = cand.iter().filter(|b| **b == b':').count();
    if colons < 2 || is_alnum(at(t, e)) {
        return Err(e);
    }
    let mut end = e;
    while end > i {
        let c = t.get(i..end).ok_or(e)?;
        if super::ip::parse_addr(c).is_some_and(|a| a.is_ipv6()) {
            return Ok(Finding::new(i, end, Kind::Ip));
        }
        if matches!(at(t, end - 1), b'.' | b':') {
            end -= 1;
        } else {
            break;
        }
    }
    Err(e)
}
