//! Token-shaped secrets: JWTs, IBANs, AWS secret keys and other high-entropy tokens. Vendor keys
//! recognized by their public prefix are the credential library's (`creds`); the vendor cases
//! below are kept as regression tests of the scanner.

use super::Kind;
use super::scan::{
    Detectors, Finding, State, alnum_and, at, in_set, is_alnum, run, run_past, starts_with,
};

fn upper_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

fn b64url_val(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'-' | b'+' => Some(62),
        b'_' | b'/' => Some(63),
        _ => None,
    }
}

/// Decodes base64 / base64url (padding optional) and calls `f` with each byte; false when invalid.
fn decode_b64(s: &[u8], mut f: impl FnMut(u8)) -> bool {
    let s = match s.iter().position(|b| *b == b'=') {
        Some(p) => {
            if s.get(p..).is_some_and(|r| r.iter().any(|b| *b != b'=')) {
                return false;
            }
            s.get(..p).unwrap_or_default()
        }
        None => s,
    };
    if s.len() % 4 == 1 {
        return false;
    }
    let mut acc = 0u32;
    let mut bits = 0u32;
    for b in s {
        let Some(v) = b64url_val(*b) else {
            return false;
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            f(((acc >> bits) & 0xff) as u8);
        }
    }
    true
}

/// Whether `tok` is base64 of something containing `:` (a Basic credential `user:password`).
pub(crate) fn base64_has_colon(tok: &[u8]) -> bool {
    let mut colon = false;
    decode_b64(tok, |b| colon |= b == b':') && colon
}

const B64URL: [bool; 256] = alnum_and(b"-_");

fn is_b64url(b: u8) -> bool {
    in_set(&B64URL, b)
}

/// A JWT (`header.payload.signature`, signature possibly empty) or JWE (five segments) starting at
/// `i` with `eyJ`. The header must decode to a JSON object, or the payload must also start with
/// `eyJ`. `Err(until)` is how far the attempt looked.
pub(crate) fn jwt(t: &[u8], i: usize) -> Result<Finding, usize> {
    if !starts_with(t, i, b"eyJ") {
        return Err(i + 1);
    }
    let mut dots = [0usize; 4];
    let mut nd = 0;
    let mut j = i;
    loop {
        j = run(t, j, is_b64url);
        if at(t, j) == b'.' && nd < 4 {
            if let Some(slot) = dots.get_mut(nd) {
                *slot = j;
            }
            nd += 1;
            j += 1;
        } else {
            break;
        }
    }
    let end = j;
    if nd < 2 {
        return Err(end);
    }
    let (d0, d1) = (dots[0], dots[1]);
    let header = t.get(i..d0).ok_or(end)?;
    let payload = t.get(d0 + 1..d1).ok_or(end)?;
    if header.len() < 8 || payload.len() < 2 {
        return Err(end);
    }
    let mut first = None;
    let mut last = 0u8;
    let ok = decode_b64(header, |b| {
        if !b.is_ascii_whitespace() {
            first.get_or_insert(b);
            last = b;
        }
    });
    let json = ok && first == Some(b'{') && last == b'}';
    if !(json || payload.starts_with(b"eyJ")) {
        return Err(end);
    }
    // `a.b.` with nothing after the last dot: an unsecured JWT; keep the dot in the span.
    Ok(Finding::new(i, end, Kind::Jwt))
}

/// IBAN lengths of the countries that use them.
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

fn mod97(iban: &[u8]) -> bool {
    let mut r = 0u32;
    let rotated = iban.iter().skip(4).chain(iban.iter().take(4));
    for b in rotated {
        r = match b {
            b'0'..=b'9' => (r * 10 + u32::from(b - b'0')) % 97,
            b'A'..=b'Z' => (r * 100 + u32::from(b - b'A' + 10)) % 97,
            _ => return false,
        };
    }
    r == 1
}

/// An IBAN at `i`: two upper-case letters, two check digits, the BBAN; compact or in groups of four
/// separated by single spaces; mod-97 valid and of the country's length (15–34 for unknown ones).
pub(crate) fn iban(t: &[u8], i: usize) -> Option<Finding> {
    if !(at(t, i + 1).is_ascii_uppercase()
        && at(t, i + 2).is_ascii_digit()
        && at(t, i + 3).is_ascii_digit())
    {
        return None;
    }
    let mut buf = [0u8; 34];
    let mut ends = [0usize; 34];
    let mut len = 0;
    let mut j = i;
    let mut grouped: Option<bool> = None;
    while len < buf.len() {
        let c = at(t, j);
        if upper_digit(c) {
            if let (Some(b), Some(e)) = (buf.get_mut(len), ends.get_mut(len)) {
                *b = c;
                *e = j + 1;
            }
            len += 1;
            j += 1;
            if len == 4 {
                grouped = Some(at(t, j) == b' ' && upper_digit(at(t, j + 1)));
            }
            continue;
        }
        if c == b' ' && grouped == Some(true) && len % 4 == 0 && upper_digit(at(t, j + 1)) {
            j += 1;
            continue;
        }
        break;
    }
    let cc = buf.get(..2)?;
    let known = IBAN_LENGTHS
        .iter()
        .find(|(c, _)| c.as_slice() == cc)
        .map(|(_, l)| *l);
    let (lo, hi) = match known {
        Some(l) if l <= len => (l, l),
        Some(_) => return None,
        None => (15, len),
    };
    for l in (lo..=hi).rev() {
        let end = *ends.get(l - 1)?;
        if is_alnum(at(t, end)) {
            continue;
        }
        if mod97(buf.get(..l)?) {
            return Some(Finding::new(i, end, Kind::Iban));
        }
    }
    None
}

/// Shannon entropy in bits per byte.
pub(crate) fn shannon(tok: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    // The bytes present, as a bit set: the sum below visits only them, in byte order (the same
    // order, so the same floating-point sum, as a walk of all 256 counts).
    let mut present = [0u64; 4];
    for b in tok {
        if let Some(c) = counts.get_mut(usize::from(*b)) {
            *c += 1;
        }
        if let Some(w) = present.get_mut(usize::from(*b >> 6)) {
            *w |= 1 << (*b & 63);
        }
    }
    let n = tok.len() as f64;
    let mut sum = 0.0;
    for (k, &word) in present.iter().enumerate() {
        let mut w = word;
        while w != 0 {
            let b = k * 64 + w.trailing_zeros() as usize;
            w &= w - 1;
            let p = f64::from(counts.get(b).copied().unwrap_or(0)) / n;
            sum += -p * p.log2();
        }
    }
    sum
}

const STD: [bool; 256] = alnum_and(b"+/");

fn is_std(b: u8) -> bool {
    in_set(&STD, b)
}

/// Minimum Shannon entropy of a random-looking token, bits per byte. Random base62 of 32 bytes
/// scores about 4.5 (1st percentile 4.2); identifiers and words score less.
pub(crate) const MIN_BITS: f64 = 4.2;
/// Minimum share of adjacent bytes that change character class (upper, lower, digit, other).
/// Random base62 averages 0.62; camelCase identifiers (`AbstractSingletonProxyFactoryBean2Impl`,
/// `MozillaFirefoxWindowsNT10Win64x64Gecko`) stay under 0.45 even when their entropy is high.
pub(crate) const MIN_TRANSITIONS: f64 = 0.45;
/// Minimum length of a generic high-entropy token.
pub(crate) const HIGH_ENTROPY_MIN_LEN: usize = 32;

fn class(b: u8) -> u8 {
    if b.is_ascii_uppercase() {
        0
    } else if b.is_ascii_lowercase() {
        1
    } else if b.is_ascii_digit() {
        2
    } else {
        3
    }
}

/// Share of adjacent byte pairs whose character classes differ.
pub(crate) fn transitions(tok: &[u8]) -> f64 {
    if tok.len() < 2 {
        return 0.0;
    }
    let changes = tok.windows(2).filter(|w| match w {
        [a, b] => class(*a) != class(*b),
        _ => false,
    });
    changes.count() as f64 / (tok.len() - 1) as f64
}

fn classes(tok: &[u8]) -> bool {
    tok.iter().any(u8::is_ascii_uppercase)
        && tok.iter().any(u8::is_ascii_lowercase)
        && tok.iter().any(u8::is_ascii_digit)
}

/// AWS secret keys (40 base64 bytes) and other long random tokens. Runs of each alphabet are
/// examined once, at their first byte.
///
/// - A run of exactly 40 bytes of `A-Z a-z 0-9 + /` with upper and lower case and a digit, `/` or
///   `+`, not hex, is an AWS secret key when an AWS access key id is in the same value, or when it
///   looks random (entropy ≥ 4.0 bits, class transitions ≥ 0.3: random 40-byte base64 misses this
///   about 3 times in 100,000). SHA-1 hex (40 hex digits) never matches.
/// - A run of 32+ bytes of `A-Z a-z 0-9 - _` with upper, lower and digits, not hex/UUID-like,
///   entropy ≥ 4.2 and transitions ≥ 0.45 is a `high_entropy` token.
///
/// `word_end`: the end of the alphanumeric run at `i`, when `i` starts one (both alphabets hold
/// the alphanumerics, so their runs continue from there).
pub(crate) fn entropy(
    t: &[u8],
    i: usize,
    d: &Detectors,
    st: &mut State,
    word_end: Option<usize>,
) -> Option<Finding> {
    let b = at(t, i);
    let prev = if i == 0 { 0 } else { at(t, i - 1) };
    if d.on(Kind::AwsSecretKey) && i >= st.std_until && is_std(b) && !is_std(prev) {
        let e = run_past(t, i, word_end, is_std);
        st.std_until = e;
        if e - i == 40
            && let Some(tok) = t.get(i..e)
            && !tok.iter().all(u8::is_ascii_hexdigit)
            && tok.iter().any(u8::is_ascii_uppercase)
            && tok.iter().any(u8::is_ascii_lowercase)
            && tok
                .iter()
                .any(|b| b.is_ascii_digit() || *b == b'/' || *b == b'+')
        {
            if st.aws_id_seen || (shannon(tok) >= 4.0 && transitions(tok) >= 0.3) {
                return Some(Finding::new(i, e, Kind::AwsSecretKey));
            }
            st.pending_aws.push((i, e));
        }
    }
    if d.on(Kind::HighEntropy) && i >= st.url_until && is_b64url(b) && !is_b64url(prev) {
        let e = run_past(t, i, word_end, is_b64url);
        st.url_until = e;
        // A multipart boundary is random by design and secret to no one.
        let boundary = || {
            i >= 9
                && t.get(i - 9..i)
                    .is_some_and(|p| p.eq_ignore_ascii_case(b"boundary="))
        };
        if e - i >= HIGH_ENTROPY_MIN_LEN
            && !boundary()
            && let Some(tok) = t.get(i..e)
            && !tok
                .iter()
                .all(|b| b.is_ascii_hexdigit() || *b == b'-' || *b == b'_')
            && classes(tok)
            && shannon(tok) >= MIN_BITS
            && transitions(tok) >= MIN_TRANSITIONS
        {
            return Some(Finding::new(i, e, Kind::HighEntropy));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::detect::tests::{found, kinds};
    use super::*;

    #[test]
    fn shannon_sums_as_a_walk_of_all_counts() {
        let mut toks: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"aaaa".to_vec(),
            b"AKIAZTNOVMIZWDIAEQ3K/wJalrXUtnFEMI+K7MDENG".to_vec(),
            (0..=255u8).collect(),
        ];
        let mut x: u32 = 12345;
        for len in [17, 32, 40, 64, 200] {
            toks.push(
                (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        (x >> 16) as u8
                    })
                    .collect(),
            );
        }
        for tok in toks {
            let mut counts = [0u32; 256];
            for b in &tok {
                if let Some(c) = counts.get_mut(usize::from(*b)) {
                    *c += 1;
                }
            }
            let n = tok.len() as f64;
            let want: f64 = counts
                .iter()
                .filter(|c| **c > 0)
                .map(|c| {
                    let p = f64::from(*c) / n;
                    -p * p.log2()
                })
                .sum();
            assert_eq!(shannon(&tok), want, "{tok:?}");
        }
    }

    #[test]
    fn vendor_tokens() {
        for (s, k) in [
            ("AKIAZTNOVMIZWDIAEQ3K", Kind::AwsAccessKey),
            ("ASIAP7KAKU57S5X32ELX", Kind::AwsAccessKey),
            (
                "AIzaQ52ryFlwRlOEVHzc0X0AWIRh-JUqBlIFXZ5",
                Kind::GoogleApiKey,
            ),
            (
                "AIza8U5buUq16_ey-0AQYdCNB6CqkBmX5v-lSod",
                Kind::GoogleApiKey,
            ),
            (
                "ghp_bciOx9gy1CJdObOIRpFqaDZeV7G5IfQHeVVE",
                Kind::GithubToken,
            ),
            (
                "gho_bciOx9gy1CJdObOIRpFqaDZeV7G5IfQHeVVE",
                Kind::GithubToken,
            ),
            (
                "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRS",
                Kind::GithubToken,
            ),
            ("glpat-xxxxXXXX1234yyyyZZZZ", Kind::GitlabToken),
            (
                "xoxb-37431304786-39766425701-eLfjVHq8xiM0OGr4hTxoF54F",
                Kind::SlackToken,
            ),
            ("xoxp-1234567890-abcdef", Kind::SlackToken),
            ("sk_live_4bZWOz648JJnUfd7UACNWiP3", Kind::StripeKey),
            ("rk_test_4bZWOz648JJnUfd7", Kind::StripeKey),
            ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Kind::StripeKey),
            ("sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", Kind::OpenaiKey),
            (
                "sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6hIj9kLm2n",
                Kind::OpenaiKey,
            ),
            (
                "sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
                Kind::AnthropicKey,
            ),
        ] {
            assert_eq!(found(&format!("k={s} ")), [(k, s.to_string())], "{s}");
            assert_eq!(found(&format!("x {s}")), [(k, s.to_string())], "{s}");
        }
        assert_eq!(
            found("https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXX"),
            [(Kind::SlackWebhook, "T0000/B0000/XXXXXXXXXXXXXXXX".into())]
        );
        for s in [
            "AKIA1234",
            "AKIAzznovmizwdiaeq3k",
            "ghp_short",
            "xoxb-123",
            "sk_live_",
            "sk-learn-is-a-python-library",
            "task-manager",
            "AIzaShort",
            "glpat-short",
            "xAKIAZTNOVMIZWDIAEQ3K",
        ] {
            assert_eq!(kinds(s), [], "{s}");
        }
    }

    #[test]
    fn jwts() {
        let jwt = "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiYSJ9.c2lnbmF0dXJl";
        assert_eq!(found(&format!("Bearer {jwt}")), [(Kind::Jwt, jwt.into())]);
        assert_eq!(
            found(&format!("id_token={jwt}&x=1")),
            [(Kind::Jwt, jwt.into())]
        );
        let unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.";
        assert_eq!(found(unsigned), [(Kind::Jwt, unsigned.into())]);
        let jwe = "eyJhbGciOiJSU0EtT0FFUCJ9.a2V5.aXY.Y2lwaGVy.dGFn";
        assert_eq!(found(jwe), [(Kind::Jwt, jwe.into())]);
        for s in [
            "eyJhbGciOiJub25lIn0",
            "eyJ.eyJ.x",
            "eyJzzzz.abc.def",
            "eyes.only.here",
        ] {
            assert!(!kinds(s).contains(&Kind::Jwt), "{s}");
        }
    }

    #[test]
    fn ibans() {
        for s in [
            "DE95640037614365370565",
            "DE89 3704 0044 0532 0130 00",
            "GB82WEST12345698765432",
            "GB82 WEST 1234 5698 7654 32",
            "FR1420041010050500013M02606",
            "NO9386011117947",
        ] {
            assert_eq!(
                found(&format!("acct {s}.")),
                [(Kind::Iban, s.to_string())],
                "{s}"
            );
        }
        for s in [
            "DE95640037614365370566", // checksum
            "DE9564003761436537056",  // length
            "GB82WEST12345698765432X",
            "AB12",
            "SKU-IHXYGH-757",
        ] {
            assert!(!kinds(s).contains(&Kind::Iban), "{s}: {:?}", found(s));
        }
    }

    #[test]
    fn aws_secret_and_high_entropy() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert_eq!(found(secret), [(Kind::AwsSecretKey, secret.into())]);
        // No '/' or '+': only next to an access key id, or as a generic high-entropy token.
        let plain = "hkWKFLf6xuI5aHUQPFeNBTxaQWk8JzFalHlsZfYc";
        assert_eq!(
            found(&format!("{plain} AKIAZTNOVMIZWDIAEQ3K")),
            [
                (Kind::AwsSecretKey, plain.into()),
                (Kind::AwsAccessKey, "AKIAZTNOVMIZWDIAEQ3K".into())
            ]
        );
        assert_eq!(found(plain), [(Kind::AwsSecretKey, plain.into())]);
        let tok = "TEmxI6CmuxV5EbOApZOXzcycDeZ6dqmV";
        assert_eq!(
            found(&format!("x={tok};")),
            [(Kind::HighEntropy, tok.into())]
        );
        for s in [
            "da39a3ee5e6b4b0d3255bfef95601890afd80709", // SHA-1 hex
            "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709",
            "fec94dbc-a3a0-4ac3-a098-b2cc2bd81831",
            "getUserProfileSettingsForAccount2024Version2",
            "abcdefghijklmnopqrstuvwxyzabcdefghijklmn",
            "/api/v2/accounts/ORD2320109832638986/orders",
            "payments-api-7d9f8b6c5d-x2k4p",
            "ORD2819482199351819",
            "AbstractSingletonProxyFactoryBean2Impl",
            "MozillaFirefoxWindowsNT10Win64x64Gecko",
            "Base64EncodedStringWith2NumbersInIt",
            "ThisIsSomeVeryLongIdentifierName2024",
            "customer_profile_2024_export_v2_final",
            "SKU-ABCDEF-123-XYZ-9876-REGION-EU-WEST",
        ] {
            assert_eq!(kinds(s), [], "{s}");
        }
        assert!(shannon(b"aaaa") < 0.01);
        assert!((shannon(b"abcd") - 2.0).abs() < 1e-9);
    }

    #[test]
    fn basic_decoding() {
        assert!(base64_has_colon(b"dXNlcjpwYXNz"));
        assert!(base64_has_colon(b"dXNlcjpwYXNzd29yZA=="));
        assert!(!base64_has_colon(b"QWxhZGRpbg=="));
        assert!(!base64_has_colon(b"dXNlcjpw=YXNz"));
        assert!(!base64_has_colon(b"a"));
    }
}
