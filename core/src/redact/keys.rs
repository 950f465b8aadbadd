//! Which names (query keys, header names, `key=value` keys in text) carry sensitive values.
//!
//! A name is split into words at non-alphanumerics, lower→upper case changes (`apiKey`), the end of
//! an upper-case run (`AWSAccessKeyId` → `aws access key id`) and letter/digit changes. It is
//! sensitive when
//! - a word is a credential word (`key`, `token`, `secret`, `password`, `signature`, …) or a
//!   personal-data word (`email`, `phone`, `ssn`, `card`, `iban`, …), or
//! - its compact form (lower case, alphanumerics only) equals an exact-only name (`code`, `state`,
//!   `cc`, `pan`, `taxid`, …: too short or too common to match as words), or
//! - its compact form contains a credential stem (`password`, `secret`, `token`, `apikey`,
//!   `accesskey`, `signature`, `session`, …), which catches `newpassword`, `xsrftoken`, `jsessionid`.
//!
//! So `keyboard`, `monkey`, `turkey`, `zip_code`, `country_code` are not sensitive, while `key`,
//! `api_key`, `X-Amz-Signature`, `AWSAccessKeyId`, `aws_secret_access_key` are.

use super::scan::is_alnum;

/// How strongly a name marks its value as sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Strength {
    /// Personal data or an ambiguous short name (`email`, `code`, `state`): enough for query keys
    /// and `key=value` in text.
    Weak,
    /// A credential (`token`, `password`, `secret`, `key`): also enough for `key: value` in text
    /// and to treat a header as credential-bearing.
    Strong,
}

const STRONG_WORDS: &[&str] = &[
    "key",
    "keys",
    "token",
    "tokens",
    "secret",
    "secrets",
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "passcode",
    "signature",
    "sig",
    "session",
    "auth",
    "authorization",
    "credential",
    "credentials",
    "cookie",
    "jwt",
    "bearer",
    "otp",
    "totp",
    "pin",
    "cvv",
    "cvc",
    "apikey",
    "ticket",
    "hmac",
];

const WEAK_WORDS: &[&str] = &[
    "email", "mail", "phone", "mobile", "msisdn", "tel", "ssn", "card", "cards", "iban", "dob",
    "address", "addr", "ip",
];

const EXACT: &[&str] = &[
    "code",
    "state",
    "cc",
    "ccnum",
    "ccnumber",
    "pan",
    "acct",
    "accountnumber",
    "routingnumber",
    "taxid",
    "tin",
    "firstname",
    "lastname",
    "fullname",
    "surname",
    "birthdate",
    "birthday",
    "dateofbirth",
    "lat",
    "lng",
    "lon",
    "latitude",
    "longitude",
    "authcode",
    "oauthcode",
    "authorizationcode",
    "verificationcode",
    "codeverifier",
    "samlresponse",
    "samlrequest",
    "assertion",
];

const STEMS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "secretkey",
    "signature",
    "credential",
    "authorization",
    "session",
    "sessid",
    "cookie",
];

/// Largest name examined; longer names are judged on their first bytes.
const MAX_NAME: usize = 128;

/// Compact form (lower-case alphanumerics) into `buf`; returns its length.
fn compact(name: &[u8], buf: &mut [u8; MAX_NAME]) -> usize {
    let mut n = 0;
    for b in name.iter().filter(|b| is_alnum(**b)) {
        match buf.get_mut(n) {
            Some(slot) => *slot = b.to_ascii_lowercase(),
            None => break,
        }
        n += 1;
    }
    n
}

const LOWER: u8 = 1;
const UPPER: u8 = 2;
const DIGIT: u8 = 3;

/// Letter case or digit of each byte (0: neither), so a word break costs three lookups.
// Evaluated at compile time: an index out of bounds fails the build, it cannot panic.
#[allow(clippy::indexing_slicing)]
const CASE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_lowercase() {
            LOWER
        } else if c.is_ascii_uppercase() {
            UPPER
        } else if c.is_ascii_digit() {
            DIGIT
        } else {
            0
        };
        b += 1;
    }
    t
};

fn case(b: u8) -> u8 {
    CASE.get(usize::from(b)).copied().unwrap_or(0)
}

/// Calls `f` with each word of `name` (original case); stops when `f` returns true.
pub(crate) fn any_word(name: &[u8], mut f: impl FnMut(&[u8]) -> bool) -> bool {
    let name = name.get(..MAX_NAME).unwrap_or(name);
    let mut start: Option<usize> = None;
    let n = name.len();
    for i in 0..=n {
        let c = name.get(i).copied();
        let split_before = match (start, c) {
            (_, None) => true,
            (_, Some(c)) if !is_alnum(c) => true,
            (None, _) => false,
            (Some(_), Some(c)) => {
                let p = case(name.get(i.wrapping_sub(1)).copied().unwrap_or(b' '));
                let next = case(name.get(i + 1).copied().unwrap_or(b' '));
                let c = case(c);
                (p == LOWER && c == UPPER)
                    || (p == UPPER && c == UPPER && next == LOWER)
                    || ((p == DIGIT) != (c == DIGIT))
            }
        };
        if split_before {
            if let Some(s) = start.take()
                && let Some(w) = name.get(s..i)
                && f(w)
            {
                return true;
            }
            if c.is_some_and(is_alnum) {
                start = Some(i);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    false
}

fn contains_stem(c: &[u8]) -> bool {
    (0..c.len()).any(|i| {
        let r = c.get(i..).unwrap_or_default();
        r.first()
            .is_some_and(|b| STEM_FIRST.get(usize::from(*b)) == Some(&true))
            && STEMS.iter().any(|s| r.starts_with(s.as_bytes()))
    })
}

/// First bytes of [`STEMS`]: most positions of a name start none, and are passed at one lookup.
// Evaluated at compile time: an index out of bounds fails the build, it cannot panic.
#[allow(clippy::indexing_slicing)]
const STEM_FIRST: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < STEMS.len() {
        t[STEMS[i].as_bytes()[0] as usize] = true;
        i += 1;
    }
    t
};

/// Longest word of [`STRONG_WORDS`] and [`WEAK_WORDS`] ("authorization", "credentials").
const WORD_MAX: usize = 16;

/// The strength one word gives a name (case-insensitive), if it is a listed word.
fn word_strength(w: &[u8]) -> Option<Strength> {
    let mut buf = [0u8; WORD_MAX];
    let slot = buf.get_mut(..w.len())?;
    for (d, s) in slot.iter_mut().zip(w) {
        *d = s.to_ascii_lowercase();
    }
    let w: &[u8] = slot;
    if listed(STRONG_WORDS, &STRONG_SHAPES, w) {
        Some(Strength::Strong)
    } else if listed(WEAK_WORDS, &WEAK_SHAPES, w) {
        Some(Strength::Weak)
    } else {
        None
    }
}

/// Judges `name`. `extra` are configured sensitive names (compact form; matched exactly or as a
/// word), `allow` configured exemptions (compact form, exact). Called per header name, query key
/// and `key=` in text, so one pass over the words and one over the compact form.
pub(crate) fn sensitive(name: &[u8], extra: &[String], allow: &[String]) -> Option<Strength> {
    let mut buf = [0u8; MAX_NAME];
    let n = compact(name, &mut buf);
    let c = buf.get(..n).unwrap_or_default();
    if c.is_empty() {
        return None;
    }
    if allow.iter().any(|a| a.as_bytes() == c) {
        return None;
    }
    if !extra.is_empty()
        && (extra.iter().any(|x| x.as_bytes() == c) || any_word(name, |w| word_in_strs(w, extra)))
    {
        return Some(Strength::Strong);
    }
    let mut weak = false;
    let strong_word = any_word(name, |w| match word_strength(w) {
        Some(Strength::Strong) => true,
        Some(Strength::Weak) => {
            weak = true;
            false
        }
        None => false,
    });
    if strong_word || contains_stem(c) {
        return Some(Strength::Strong);
    }
    if weak || listed(EXACT, &EXACT_SHAPES, c) {
        return Some(Strength::Weak);
    }
    None
}

/// Whether `w` is in `list` (`shape`: its [`shapes`]): a word whose first byte and length no
/// entry has is rejected at one lookup, the rest compared by length, first byte, then bytes
/// (called per word of every query key and header name; most words are in no list).
fn listed(list: &[&str], shape: &[u64; 256], w: &[u8]) -> bool {
    let first = w.first().copied();
    let lengths = shape
        .get(usize::from(first.unwrap_or(0)))
        .copied()
        .unwrap_or(0);
    if w.len() >= 64 || lengths >> w.len() & 1 == 0 {
        return false;
    }
    list.iter()
        .any(|x| x.len() == w.len() && x.as_bytes().first().copied() == first && x.as_bytes() == w)
}

/// For each first byte, the lengths of the entries of `list` that start with it (bit `n`: length
/// `n`; entries of 64 bytes or more are left out, [`listed`] never finds them).
// Evaluated at compile time: an index out of bounds fails the build, it cannot panic.
#[allow(clippy::indexing_slicing)]
const fn shapes(list: &[&str]) -> [u64; 256] {
    let mut t = [0u64; 256];
    let mut k = 0;
    while k < list.len() {
        let e = list[k].as_bytes();
        if !e.is_empty() && e.len() < 64 {
            t[e[0] as usize] |= 1 << e.len();
        }
        k += 1;
    }
    t
}

const STRONG_SHAPES: [u64; 256] = shapes(STRONG_WORDS);
const WEAK_SHAPES: [u64; 256] = shapes(WEAK_WORDS);
const EXACT_SHAPES: [u64; 256] = shapes(EXACT);

fn word_in_strs(w: &[u8], list: &[String]) -> bool {
    list.iter().any(|x| w.eq_ignore_ascii_case(x.as_bytes()))
}

/// The compact form of a configured name (`API-Key` → `apikey`).
pub(crate) fn compact_string(name: &str) -> String {
    name.bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| char::from(b.to_ascii_lowercase()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(k: &str) -> Option<Strength> {
        sensitive(k.as_bytes(), &[], &[])
    }

    fn words(k: &str) -> Vec<String> {
        let mut v = Vec::new();
        any_word(k.as_bytes(), |w| {
            v.push(String::from_utf8_lossy(w).to_lowercase());
            false
        });
        v
    }

    #[test]
    fn lists_find_every_entry_and_only_entries() {
        for (list, shape) in [
            (STRONG_WORDS, &STRONG_SHAPES),
            (WEAK_WORDS, &WEAK_SHAPES),
            (EXACT, &EXACT_SHAPES),
        ] {
            for e in list {
                assert!(listed(list, shape, e.as_bytes()), "{e}");
                let mut longer = e.to_string();
                longer.push('x');
                assert_eq!(
                    listed(list, shape, longer.as_bytes()),
                    list.contains(&longer.as_str()),
                    "{longer}"
                );
                assert!(!listed(list, shape, &e.as_bytes()[1..]) || list.contains(&&e[1..]));
            }
            assert!(!listed(list, shape, b""));
            assert!(!listed(list, shape, &[b'k'; 80]));
        }
    }

    #[test]
    fn splits_words() {
        assert_eq!(words("AWSAccessKeyId"), ["aws", "access", "key", "id"]);
        assert_eq!(words("X-Amz-Signature"), ["x", "amz", "signature"]);
        assert_eq!(
            words("aws_secret_access_key"),
            ["aws", "secret", "access", "key"]
        );
        assert_eq!(words("apiKey"), ["api", "key"]);
        assert_eq!(words("user[email]"), ["user", "email"]);
        assert_eq!(words("cvv2"), ["cvv", "2"]);
        assert_eq!(words(""), Vec::<String>::new());
        assert_eq!(words("--"), Vec::<String>::new());
    }

    #[test]
    fn sensitive_keys() {
        for k in [
            "token",
            "access_token",
            "id_token",
            "refresh_token",
            "code",
            "state",
            "password",
            "passwd",
            "pwd",
            "secret",
            "client_secret",
            "api_key",
            "apikey",
            "apiKey",
            "API-KEY",
            "key",
            "KEY",
            "signature",
            "sig",
            "session",
            "sessionId",
            "jsessionid",
            "PHPSESSID",
            "ssn",
            "email",
            "userEmail",
            "card",
            "card_number",
            "cc",
            "aws_secret_access_key",
            "X-Amz-Signature",
            "X-Amz-Credential",
            "X-Amz-Security-Token",
            "AWSAccessKeyId",
            "Signature",
            "newPassword",
            "xsrf-token",
            "tax_id",
            "pan",
            "iban",
            "phone",
            "user[password]",
            "cvv2",
        ] {
            assert!(s(k).is_some(), "{k} should be sensitive");
        }
        for k in [
            "keyboard",
            "monkey",
            "turkey",
            "hockey",
            "keynote",
            "zip_code",
            "country_code",
            "status_code",
            "statement",
            "order",
            "sort",
            "ref",
            "since",
            "build",
            "q",
            "n",
            "to",
            "note",
            "callback",
            "contact",
            "u",
            "page",
            "limit",
            "id",
            "user_id",
            "classname",
            "description",
            "author",
            "bypass",
            "spinner",
            "zip",
            "",
        ] {
            assert_eq!(s(k), None, "{k} should not be sensitive");
        }
        assert_eq!(s("password"), Some(Strength::Strong));
        assert_eq!(s("code"), Some(Strength::Weak));
        assert_eq!(s("email"), Some(Strength::Weak));
    }

    #[test]
    fn configured_names() {
        let extra = vec![compact_string("Member-No")];
        let allow = vec![compact_string("state")];
        assert!(sensitive(b"member_no", &extra, &allow).is_some());
        assert!(sensitive(b"MemberNo", &extra, &allow).is_some());
        assert_eq!(sensitive(b"state", &extra, &allow), None);
        assert!(sensitive(b"token", &extra, &allow).is_some());
        let extra = vec!["acctref".to_string()];
        assert!(sensitive(b"old_acctref", &extra, &[]).is_some());
    }
}
