//! A labelled PII request corpus, generated deterministically from a seed.
//!
//! The tests that need labelled secrets (core's corpus test, the end-to-end corpus test through
//! Envoy, the collector's encryption-at-rest test, the benchmark) use this generator by default,
//! so they pass on a bare clone. The same shape as the shared corpus
//! (the shared corpus beside the repository, `pii-requests.jsonl`): a request (method, path with query, headers) and its
//! labels, `secrets` (kind, value) that must never be stored readable and `benign` look-alikes
//! that must survive.
//!
//! Self-contained (std only) so every crate can include it by path:
//! `#[path = "<…>/tests/src/corpus_gen.rs"] mod corpus_gen;`. Values are built from each
//! format's documented shape with this file's own PRNG (SplitMix64): card numbers pass Luhn,
//! IBANs mod-97, SSNs are in issued ranges, JWTs decode, GitHub tokens carry their CRC32, vendor
//! tokens have the vendor's prefix, alphabet and length, national ids written without separators
//! carry their check digits and issued ranges. The generator is written independently of
//! core's detectors: it states what a secret looks like, the detectors have to find it.

#![allow(dead_code)]

/// The seed the tests use by default.
pub const DEFAULT_SEED: u64 = 0x6d65_7368_6c6f_6721;
/// Requests in the default corpus.
pub const DEFAULT_SIZE: usize = 2000;

/// One labelled request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: String,
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// `(kind, value)`: must never be stored readable.
    pub secrets: Vec<(String, String)>,
    /// Must survive wherever their field is logged.
    pub benign: Vec<String>,
}

/// SplitMix64: small, fast, good enough for test data, identical on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// `n` bytes drawn from `alphabet`.
    pub fn string(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| char::from(alphabet[self.below(alphabet.len())]))
            .collect()
    }

    pub fn digits(&mut self, n: usize) -> String {
        self.string(DIGITS, n)
    }
}

pub const DIGITS: &[u8] = b"0123456789";
pub const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
pub const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
pub const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
pub const UPPER_DIGIT: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
pub const LOWER_DIGIT: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
pub const HEX: &[u8] = b"0123456789abcdef";
pub const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
pub const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
pub const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The kinds of secrets in the corpus, in the order they rotate.
pub const KINDS: &[&str] = &[
    "email",
    "card",
    "ssn",
    "phone",
    "jwt",
    "aws",
    "github",
    "slack",
    "stripe",
    "gapi",
    "iban",
    "password",
    "bearer",
    "cookie",
    "xff",
    "apikey_header",
    "basic_url",
    "referer_token",
    "vendor",
    "national_id",
];

/// The corpus kinds whose value is a number or code written with separators: a leak is also
/// its bare letters and digits.
pub fn numeric_kind(kind: &str) -> bool {
    matches!(kind, "card" | "ssn" | "phone" | "iban")
}

/// The default corpus.
pub fn corpus() -> Vec<Request> {
    generate(DEFAULT_SEED, DEFAULT_SIZE)
}

/// `n` requests from `seed`; kinds rotate so every kind gets `n / KINDS.len()` or one more.
pub fn generate(seed: u64, n: usize) -> Vec<Request> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| request(&mut rng, i, KINDS[i % KINDS.len()]))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Percent-encoding of everything but unreserved characters, `@` and `:`.
pub fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' | b':' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn b64url(bytes: &[u8]) -> String {
    let mut o = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..=c.len() {
            o.push(char::from(B64URL[((n >> (18 - 6 * k)) & 63) as usize]));
        }
    }
    o
}

fn b64std(bytes: &[u8]) -> String {
    let mut o = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                o.push(char::from(B64[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                o.push('=');
            }
        }
    }
    o
}

// ---------------------------------------------------------------------------------------------
// Checksums (independent implementations of the published algorithms)

/// The Luhn check digit for `body` (digits).
pub fn luhn_digit(body: &[u8]) -> u8 {
    let mut sum = 0u32;
    for (i, d) in body.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    ((10 - sum % 10) % 10) as u8
}

pub fn luhn_valid(num: &[u8]) -> bool {
    match num.split_last() {
        Some((last, body)) => luhn_digit(body) == last - b'0',
        None => false,
    }
}

/// CRC-32 (IEEE, reflected), bitwise.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for b in data {
        c ^= u32::from(*b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// `v` in base62 (`0-9A-Za-z`), left-padded with `0` to `width`.
pub fn base62(mut v: u32, width: usize) -> String {
    const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = A[(v % 62) as usize];
        v /= 62;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// ISO 7064 mod 97-10 check digits for an IBAN with country `cc` and `bban`.
pub fn iban(cc: &str, bban: &str) -> String {
    let rearranged = format!("{bban}{cc}00");
    let mut r = 0u32;
    for b in rearranged.bytes() {
        r = match b {
            b'0'..=b'9' => (r * 10 + u32::from(b - b'0')) % 97,
            _ => (r * 100 + u32::from(b.to_ascii_uppercase() - b'A' + 10)) % 97,
        };
    }
    format!("{cc}{:02}{bban}", 98 - r)
}

// ---------------------------------------------------------------------------------------------
// Values

const FIRST: &[&str] = &[
    "tom", "maria", "aiko", "omar", "elena", "raj", "li", "sven", "jane", "kwame", "fatima", "ivan",
];
const LAST: &[&str] = &[
    "popescu", "larsen", "sato", "patel", "haddad", "wei", "doe", "okafor", "novak", "garcia",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "corp.example.net",
    "example.co.uk",
];
const AGENTS: &[&str] = &[
    "curl/8.5.0",
    "okhttp/4.12.0",
    "python-requests/2.32.3",
    "Go-http-client/2.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
];

pub fn email(r: &mut Rng) -> String {
    let first = r.pick(FIRST);
    let last = r.pick(LAST);
    let local = match r.below(4) {
        0 => format!("{first}.{last}"),
        1 => format!("{first}_{last}{}", r.range(1, 99)),
        2 => format!("{first}{last}+{}", r.pick(&["billing", "x1", "news"])),
        _ => format!("{}{last}", &first[..1]),
    };
    format!("{local}@{}", r.pick(DOMAINS))
}

pub fn card(r: &mut Rng) -> String {
    let (prefix, len): (String, usize) = match r.below(4) {
        0 => ("4".into(), 16),
        1 => (format!("5{}", r.range(1, 5)), 16),
        2 => (format!("3{}", r.pick(&[4, 7])), 15),
        _ => ("6011".into(), 16),
    };
    let mut body = prefix.clone();
    body.push_str(&r.digits(len - 1 - prefix.len()));
    let check = luhn_digit(body.as_bytes());
    body.push(char::from(b'0' + check));
    match r.below(3) {
        0 => body,
        1 if len == 15 => format!("{} {} {}", &body[..4], &body[4..10], &body[10..]),
        sep_kind => {
            let sep = if sep_kind == 1 { " " } else { "-" };
            body.as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join(sep)
        }
    }
}

pub fn ssn(r: &mut Rng) -> String {
    let mut area = r.range(1, 899);
    if area == 666 {
        area = 665;
    }
    let sep = if r.chance(80) { "-" } else { " " };
    format!(
        "{area:03}{sep}{:02}{sep}{:04}",
        r.range(1, 99),
        r.range(1, 9999)
    )
}

pub fn phone(r: &mut Rng) -> String {
    let area = r.range(201, 989);
    let exch = r.range(201, 989);
    let line = r.range(0, 9999);
    match r.below(5) {
        0 => format!("+1-{area}-{exch}-{line:04}"),
        1 => format!("({area}) {exch}-{line:04}"),
        2 => format!("+1 {area} {exch} {line:04}"),
        3 => format!("+44 20 {exch}{line:04}"),
        _ => format!("+49 30 {exch}{line:04}"),
    }
}

pub fn jwt(r: &mut Rng) -> String {
    let header = b64url(br#"{"alg": "RS256", "typ": "JWT"}"#);
    let payload = b64url(
        format!(
            r#"{{"sub": "{}", "iat": {}}}"#,
            email(r),
            r.range(1_600_000_000, 1_800_000_000)
        )
        .as_bytes(),
    );
    let sig_len = r.pick(&[43usize, 86, 342]);
    format!("{header}.{payload}.{}", r.string(B64URL, sig_len))
}

pub fn aws_key_id(r: &mut Rng) -> String {
    format!(
        "{}{}",
        r.pick(&["AKIA", "ASIA"]),
        r.string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    )
}

/// 40 base64 characters as AWS issues them (random bytes, so mixed case with `/` or `+`).
pub fn aws_secret(r: &mut Rng) -> String {
    loop {
        let bytes: Vec<u8> = (0..30).map(|_| r.next_u64() as u8).collect();
        let s = b64std(&bytes);
        if s.contains(['/', '+']) {
            return s;
        }
    }
}

/// A GitHub token of the current format: prefix, 30 random base62 characters, and the CRC32 of
/// those in 6 base62 digits.
pub fn github(r: &mut Rng) -> String {
    let prefix = r.pick(&["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]);
    let body = r.string(ALNUM, 30);
    format!("{prefix}{body}{}", base62(crc32(body.as_bytes()), 6))
}

pub fn slack(r: &mut Rng) -> String {
    format!(
        "{}-{}-{}-{}",
        r.pick(&["xoxb", "xoxp"]),
        r.digits(11),
        r.digits(11),
        r.string(ALNUM, 24)
    )
}

pub fn stripe(r: &mut Rng) -> String {
    format!("{}{}", r.pick(&["sk_live_", "rk_live_", "sk_test_"]), {
        let n = r.pick(&[24usize, 99]);
        r.string(ALNUM, n)
    })
}

pub fn gapi(r: &mut Rng) -> String {
    format!("AIza{}", r.string(B64URL, 35))
}

pub fn iban_value(r: &mut Rng) -> String {
    let compact = match r.below(4) {
        0 | 1 => iban("DE", &r.digits(18)),
        2 => iban("GB", &format!("{}{}", r.string(UPPER, 4), r.digits(14))),
        _ => iban("NL", &format!("{}{}", r.string(UPPER, 4), r.digits(10))),
    };
    if r.chance(25) {
        compact
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        compact
    }
}

/// Tokens of well-known vendors, each built from the vendor's documented shape.
pub fn vendor(r: &mut Rng) -> String {
    match r.below(20) {
        0 => format!("npm_{}", r.string(ALNUM, 36)),
        1 => format!("glpat-{}", r.string(ALNUM, 20)),
        2 => format!("hf_{}", r.string(ALNUM, 34)),
        3 => format!("pypi-AgEIcHlwaS5vcmc{}", r.string(B64URL, 70)),
        4 => format!("SG.{}.{}", r.string(B64URL, 22), r.string(B64URL, 43)),
        5 => format!("shpat_{}", r.string(HEX, 32)),
        6 => format!("dop_v1_{}", r.string(HEX, 64)),
        7 => format!("dp.pt.{}", r.string(ALNUM, 43)),
        8 => format!("dapi{}", r.string(HEX, 32)),
        9 => format!("PMAK-{}-{}", r.string(HEX, 24), r.string(HEX, 34)),
        10 => format!("lin_api_{}", r.string(ALNUM, 40)),
        11 => format!("hvs.{}", r.string(B64URL, 90)),
        12 => format!("glsa_{}_{}", r.string(ALNUM, 32), r.string(HEX, 8)),
        13 => format!("sk-ant-api03-{}AA", r.string(B64URL, 93)),
        14 => format!(
            "sk-proj-{}T3BlbkFJ{}",
            r.string(B64URL, 74),
            r.string(B64URL, 74)
        ),
        15 => format!("SK{}", r.string(HEX, 32)),
        16 => format!("key-{}", r.string(HEX, 32)),
        17 => format!("secret_{}", r.string(ALNUM, 43)),
        18 => format!(
            "xapp-1-A{}-{}-{}",
            r.digits(10),
            r.digits(13),
            r.string(HEX, 64)
        ),
        _ => format!("ATATT3xFfGF0{}", r.string(B64URL, 180)),
    }
}

fn password(r: &mut Rng) -> String {
    format!(
        "{}{}{}",
        {
            let n = r.range(6, 12);
            r.string(ALNUM, n)
        },
        r.pick(&["!", "#", "$", "%", "&"]),
        r.digits(2)
    )
}

fn ipv4(r: &mut Rng) -> String {
    format!(
        "{}.{}.{}.{}",
        r.pick(&[23, 45, 81, 142, 185, 203]),
        r.range(0, 255),
        r.range(0, 255),
        r.range(1, 254)
    )
}

fn ipv6(r: &mut Rng) -> String {
    format!(
        "2001:db8:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
        r.range(1, 0xffff),
        r.range(0, 0xffff),
        r.range(0, 0xffff),
        r.range(0, 0xffff),
        r.range(1, 0xffff),
        r.range(1, 0xffff)
    )
}

// ---------------------------------------------------------------------------------------------
// National ids without separators (each from its published rule)

/// The national-id formats [`national_id`] writes, in its order.
pub const NATIONAL_IDS: &[&str] = &[
    "us ssn",
    "canadian sin",
    "dutch bsn",
    "uk nino",
    "spanish dni",
    "spanish nie",
    "brazilian cpf",
    "french nir",
    "chinese ric",
    "italian codice fiscale",
];

fn digit_vals(s: &str) -> Vec<u32> {
    s.bytes().map(|b| u32::from(b - b'0')).collect()
}

/// A US SSN in the issued ranges (area not 000, 666 or 9xx; group and serial not zero).
pub fn ssn_bare(r: &mut Rng) -> String {
    let mut area = r.range(1, 899);
    if area == 666 {
        area = 667;
    }
    format!("{area:03}{:02}{:04}", r.range(1, 99), r.range(1, 9999))
}

/// A Canadian SIN: first digit not 0 or 8, Luhn check digit.
pub fn sin(r: &mut Rng) -> String {
    let body = format!("{}{}", r.pick(&[1, 2, 3, 4, 5, 6, 7, 9]), r.digits(7));
    let check = luhn_digit(body.as_bytes());
    format!("{body}{check}")
}

/// Whether the 9 digits pass the Dutch eleven-test (weights 9..2, last digit -1).
pub fn elf_proef(s: &str) -> bool {
    let d = digit_vals(s);
    let sum: i64 = d
        .iter()
        .zip([9i64, 8, 7, 6, 5, 4, 3, 2, -1])
        .map(|(x, w)| i64::from(*x) * w)
        .sum();
    sum.rem_euclid(11) == 0
}

/// A Dutch BSN: 9 digits passing the eleven-test.
pub fn bsn(r: &mut Rng) -> String {
    loop {
        let body = format!("{}{}", r.range(1, 9), r.digits(7));
        let sum: u32 = digit_vals(&body)
            .iter()
            .zip([9u32, 8, 7, 6, 5, 4, 3, 2])
            .map(|(x, w)| x * w)
            .sum();
        let check = sum % 11;
        if check < 10 {
            return format!("{body}{check}");
        }
    }
}

/// A UK National Insurance number: HMRC's allowed prefix letters, 6 digits, suffix A–D.
pub fn nino(r: &mut Rng) -> String {
    loop {
        let a = r.pick(b"ABCEGHJKLMNOPRSTWXYZ");
        let b = r.pick(b"ABCEGHJKLMNPRSTWXYZ");
        let pair = [a, b];
        if [b"BG", b"GB", b"NK", b"KN", b"TN", b"NT", b"ZZ"].contains(&&pair) {
            continue;
        }
        return format!(
            "{}{}{}{}",
            char::from(a),
            char::from(b),
            r.digits(6),
            char::from(r.pick(b"ABCD"))
        );
    }
}

const DNI_LETTERS: &[u8] = b"TRWAGMYFPDXBNJZSQVHLCKE";

/// A Spanish DNI: 8 digits and their mod-23 letter.
pub fn dni(r: &mut Rng) -> String {
    let n = r.range(1_000_000, 99_999_999);
    format!("{n:08}{}", char::from(DNI_LETTERS[n % 23]))
}

/// A Spanish NIE: `X`/`Y`/`Z` (0/1/2), 7 digits, the mod-23 letter of the whole number.
pub fn nie(r: &mut Rng) -> String {
    let lead = r.below(3);
    let n = r.range(0, 9_999_999);
    let letter = DNI_LETTERS[(lead * 10_000_000 + n) % 23];
    format!("{}{n:07}{}", ["X", "Y", "Z"][lead], char::from(letter))
}

/// The CPF check digit over `d` (weights `d.len() + 1` down to 2).
pub fn cpf_digit(d: &[u32]) -> u32 {
    let n = d.len() as u32 + 1;
    let sum: u32 = d.iter().enumerate().map(|(i, x)| x * (n - i as u32)).sum();
    match 11 - sum % 11 {
        10 | 11 => 0,
        c => c,
    }
}

/// A Brazilian CPF: 9 digits (not all the same) and two mod-11 check digits.
pub fn cpf(r: &mut Rng) -> String {
    loop {
        let body = r.digits(9);
        let mut d = digit_vals(&body);
        if d.iter().all(|x| *x == d[0]) {
            continue;
        }
        d.push(cpf_digit(&d));
        d.push(cpf_digit(&d));
        return d.iter().map(|x| char::from(b'0' + *x as u8)).collect();
    }
}

/// A French NIR: sex, year, month, department, commune, order, and the 97-complement key.
pub fn nir(r: &mut Rng) -> String {
    let body = format!(
        "{}{:02}{:02}{:02}{:03}{:03}",
        r.pick(&[1, 2]),
        r.range(0, 99),
        r.range(1, 12),
        r.range(1, 95),
        r.range(1, 999),
        r.range(1, 999)
    );
    let n: u64 = body.parse().unwrap_or(0);
    format!("{body}{:02}", 97 - n % 97)
}

/// The ISO 7064 mod 11-2 check character of a Chinese resident id's first 17 digits.
pub fn ric_check(body: &str) -> char {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = digit_vals(body).iter().zip(W).map(|(x, w)| x * w).sum();
    char::from(b"10X98765432"[(sum % 11) as usize])
}

/// A Chinese resident identity number: region, birth date, sequence, check character.
pub fn china_ric(r: &mut Rng) -> String {
    let body = format!(
        "{}{}{:02}{:02}{:03}",
        r.pick(&["110105", "310104", "440305", "510107", "330106"]),
        r.range(1950, 2008),
        r.range(1, 12),
        r.range(1, 28),
        r.range(1, 999)
    );
    let check = ric_check(&body);
    format!("{body}{check}")
}

/// The check letter of an Italian codice fiscale's first 15 characters.
pub fn cf_check(body: &str) -> char {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, c)| {
            let v = if c.is_ascii_digit() {
                c - b'0'
            } else {
                c - b'A'
            } as usize;
            // Positions 1, 3, 5, … (1-based) use the odd table.
            if i % 2 == 0 { ODD[v] } else { v as u32 }
        })
        .sum();
    char::from(b'A' + (sum % 26) as u8)
}

/// An Italian codice fiscale: surname and name letters, birth year, month letter, day (+40 for
/// women), place code, check letter.
pub fn codice_fiscale(r: &mut Rng) -> String {
    let day = r.range(1, 28) + if r.chance(50) { 40 } else { 0 };
    let body = format!(
        "{}{:02}{}{day:02}{}{:03}",
        r.string(UPPER, 6),
        r.range(0, 99),
        char::from(r.pick(b"ABCDEHLMPRST")),
        char::from(r.pick(b"ABCDEFGHILM")),
        r.range(1, 999)
    );
    let check = cf_check(&body);
    format!("{body}{check}")
}

/// A national id of format `t` ([`NATIONAL_IDS`]), written without separators.
pub fn national_id_of(r: &mut Rng, t: usize) -> String {
    match t {
        0 => ssn_bare(r),
        1 => sin(r),
        2 => bsn(r),
        3 => nino(r),
        4 => dni(r),
        5 => nie(r),
        6 => cpf(r),
        7 => nir(r),
        8 => china_ric(r),
        _ => codice_fiscale(r),
    }
}

/// A national id of any of the [`NATIONAL_IDS`] formats.
pub fn national_id(r: &mut Rng) -> String {
    let t = r.below(NATIONAL_IDS.len());
    national_id_of(r, t)
}

// ---------------------------------------------------------------------------------------------
// Benign look-alikes

/// An order number: 16 digits failing Luhn behind `ORD`.
fn order_number(r: &mut Rng) -> String {
    loop {
        let d = format!("{}{}", r.range(1, 9), r.digits(15));
        if !luhn_valid(d.as_bytes()) {
            return format!("ORD{d}");
        }
    }
}

fn uuid(r: &mut Rng) -> String {
    let h = r.string(HEX, 32);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..]
    )
}

/// An ISBN-13 with its check digit.
fn isbn13(r: &mut Rng) -> String {
    let body = format!("978{}", r.digits(9));
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// Names of the benign look-alike types, in [`benign_of`] order.
pub const BENIGN_TYPES: &[&str] = &[
    "order number (fails Luhn)",
    "date",
    "timestamp",
    "version",
    "uuid",
    "short hex",
    "sku",
    "commit id (40 hex)",
    "epoch millis",
    "isbn-13",
    "ups tracking",
    "fedex tracking (12 digits)",
    "9 digits failing every national-id check",
    "order id (9 digits in the ssn ranges)",
    "11 digits failing the cpf check",
    "18 digits failing the resident-id check and luhn",
    "dni shape with the wrong letter",
    "epoch millis (neutral key)",
    "isbn-10 (neutral key)",
    "isbn-13 (neutral key)",
];

/// A benign value and the neutral query key it travels under.
pub fn benign(r: &mut Rng) -> (&'static str, String) {
    let t = r.below(BENIGN_TYPES.len());
    benign_of(r, t)
}

/// A benign value of type `t` ([`BENIGN_TYPES`]) and its neutral query key.
pub fn benign_of(r: &mut Rng, t: usize) -> (&'static str, String) {
    match t {
        0 => ("order", order_number(r)),
        1 => (
            "sort",
            format!(
                "20{}-{:02}-{:02}",
                r.range(24, 26),
                r.range(1, 12),
                r.range(1, 28)
            ),
        ),
        2 => (
            "since",
            format!(
                "2026-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                r.range(1, 12),
                r.range(1, 28),
                r.range(0, 23),
                r.range(0, 59),
                r.range(0, 59)
            ),
        ),
        3 => (
            "build",
            format!("v{}.{}.{}", r.range(1, 9), r.range(0, 30), r.range(0, 30)),
        ),
        4 => ("ref", uuid(r)),
        5 => ("ref", r.string(HEX, 12)),
        6 => (
            "order",
            format!("SKU-{}-{}", r.string(UPPER, 6), r.range(100, 999)),
        ),
        // Look-alikes of secrets under neutral keys: a commit id, epoch millis, an ISBN, a UPS
        // tracking number, a FedEx one.
        7 => ("commit", r.string(HEX, 40)),
        8 => ("ts", format!("17{}", r.digits(11))),
        9 => ("isbn", isbn13(r)),
        10 => (
            "tracking",
            format!("1Z{}{}", r.string(UPPER_DIGIT, 6), r.digits(10)),
        ),
        11 => ("tracking", r.digits(12)),
        // Look-alikes of national ids without separators: the same lengths failing the checks
        // under a neutral key, and valid-looking numbers under a key that says what they are.
        12 => ("ref", nine_digits_no_id(r)),
        13 => (
            r.pick(&["order_id", "orderId", "invoice", "tracking_number", "page"]),
            ssn_bare(r),
        ),
        14 => ("ref", eleven_digits_no_cpf(r)),
        15 => ("ref", ric_wrong_check(r)),
        16 => ("ref", dni_wrong_letter(r)),
        17 => (r.pick(&["ref", "at", "q"]), format!("17{}", r.digits(11))),
        18 => (r.pick(&["ref", "q"]), isbn10(r)),
        _ => (r.pick(&["ref", "q"]), isbn13(r)),
    }
}

/// 9 digits in no issued SSN area (9xx) that fail Luhn (SIN) and the eleven-test (BSN).
fn nine_digits_no_id(r: &mut Rng) -> String {
    loop {
        let v = format!("9{}", r.digits(8));
        if !luhn_valid(v.as_bytes()) && !elf_proef(&v) {
            return v;
        }
    }
}

/// 11 digits whose CPF check digits are wrong.
fn eleven_digits_no_cpf(r: &mut Rng) -> String {
    loop {
        let v = r.digits(11);
        let d = digit_vals(&v);
        let first = cpf_digit(&d[..9]);
        if d[9] != first || d[10] != cpf_digit(&d[..10]) {
            return v;
        }
    }
}

/// A resident-id shape (region, birth date, sequence) with a wrong check character.
fn ric_wrong_check(r: &mut Rng) -> String {
    let valid = china_ric(r);
    let (body, check) = valid.split_at(17);
    // Not Luhn-valid either: 18 digits passing Luhn are as much a card number (Visa runs to 19).
    (b'0'..=b'9')
        .map(|c| format!("{body}{}", char::from(c)))
        .find(|v| !v.ends_with(check) && !luhn_valid(v.as_bytes()))
        .unwrap_or_default()
}

/// A DNI shape (8 digits, letter) whose letter is not the number's.
fn dni_wrong_letter(r: &mut Rng) -> String {
    let n = r.range(1_000_000, 99_999_999);
    let right = DNI_LETTERS[n % 23];
    let wrong = DNI_LETTERS[(n + 1 + r.below(22)) % 23];
    debug_assert_ne!(right, wrong);
    format!("{n:08}{}", char::from(wrong))
}

/// An ISBN-10 with its mod-11 check character (`X` for 10).
fn isbn10(r: &mut Rng) -> String {
    let body = format!("{}{}", r.range(0, 1), r.digits(8));
    let sum: u32 = digit_vals(&body)
        .iter()
        .enumerate()
        .map(|(i, x)| x * (10 - i as u32))
        .sum();
    match (11 - sum % 11) % 11 {
        10 => format!("{body}X"),
        c => format!("{body}{c}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

struct Builder {
    segs: Vec<String>,
    params: Vec<String>,
    headers: Vec<(String, String)>,
    secrets: Vec<(String, String)>,
}

impl Builder {
    fn param(&mut self, key: &str, value: &str) {
        self.params.push(format!("{key}={}", pct(value)));
    }
    fn header(&mut self, name: &str, value: String) {
        self.headers.push((name.to_owned(), value));
    }
    fn secret(&mut self, kind: &str, value: &str) {
        self.secrets.push((kind.to_owned(), value.to_owned()));
    }
}

fn request(r: &mut Rng, i: usize, kind: &str) -> Request {
    let method = (r.pick(&["GET", "GET", "POST", "PUT", "DELETE"])).to_owned();
    let version = r.pick(&["v1", "v2"]);
    let resource = r.pick(&["orders", "users", "payments", "accounts", "search"]);
    let mut b = Builder {
        segs: vec!["api".into(), version.into(), resource.into()],
        params: Vec::new(),
        headers: vec![("user-agent".into(), (r.pick(AGENTS)).to_owned())],
        secrets: Vec::new(),
    };
    let mut benign = Vec::new();
    let (bk, bv) = benign_value(r);
    let rid = if r.chance(50) { uuid(r) } else { bv.clone() };
    b.header("x-request-id", rid);
    b.param(bk, &bv);
    benign.push(bv);
    plant(r, kind, &mut b);
    if r.chance(40) {
        let (bk, bv) = benign_value(r);
        b.param(bk, &bv);
        benign.push(bv);
    }
    // Shuffle the query a little: secrets are not always last.
    if b.params.len() > 1 && r.chance(50) {
        b.params.rotate_left(1);
    }
    let mut path = format!("/{}", b.segs.join("/"));
    if !b.params.is_empty() {
        path.push('?');
        path.push_str(&b.params.join("&"));
    }
    Request {
        id: format!("g{i:05}"),
        method,
        path,
        headers: b.headers,
        secrets: b.secrets,
        benign,
    }
}

fn benign_value(r: &mut Rng) -> (&'static str, String) {
    benign(r)
}

/// Puts one secret of `kind` somewhere a client would.
fn plant(r: &mut Rng, kind: &str, b: &mut Builder) {
    match kind {
        "email" => {
            let v = email(r);
            match r.below(3) {
                0 => b.segs.push(pct(&v)),
                1 => b.param(r.pick(&["contact", "email", "user"]), &v),
                _ => b.param(r.pick(&["q", "note"]), &v),
            }
            b.secret(kind, &v);
        }
        "card" | "ssn" | "phone" | "iban" => {
            let v = match kind {
                "card" => card(r),
                "ssn" => ssn(r),
                "phone" => phone(r),
                _ => iban_value(r),
            };
            let keys: &[&str] = match kind {
                "card" => &["pan", "card", "q"],
                "ssn" => &["ssn", "tax_id", "q"],
                "phone" => &["phone", "to", "q"],
                _ => &["acct", "iban", "to", "q"],
            };
            if r.chance(35) {
                b.segs.push(pct(&v));
            } else {
                b.param(r.pick(keys), &v);
            }
            b.secret(kind, &v);
        }
        "jwt" => {
            let v = jwt(r);
            if r.chance(60) {
                b.header("authorization", format!("Bearer {v}"));
            } else {
                b.param(r.pick(&["id_token", "state", "q"]), &v);
            }
            b.secret(kind, &v);
        }
        "aws" => {
            let id = aws_key_id(r);
            let secret = aws_secret(r);
            b.param("AWSAccessKeyId", &id);
            b.param(r.pick(&["Signature", "aws_secret_access_key"]), &secret);
            b.secret(kind, &id);
            b.secret(kind, &secret);
        }
        "github" | "slack" | "stripe" | "gapi" | "vendor" => {
            let v = match kind {
                "github" => github(r),
                "slack" => slack(r),
                "stripe" => stripe(r),
                "gapi" => gapi(r),
                _ => vendor(r),
            };
            match r.below(5) {
                0 => b.segs.push(pct(&v)),
                1 => b.param(r.pick(&["token", "api_key"]), &v),
                2 => b.param(r.pick(&["q", "note", "ref"]), &v),
                3 => b.header("authorization", format!("token {v}")),
                _ => b.header(r.pick(&["x-api-key", "x-auth-token"]), v.clone()),
            }
            b.secret(kind, &v);
        }
        "password" => {
            let v = password(r);
            b.param(r.pick(&["password", "pwd", "passwd", "pass"]), &v);
            b.secret(kind, &v);
        }
        "bearer" => {
            let v = r.string(ALNUM, 32);
            b.header("authorization", format!("Bearer {v}"));
            b.secret(kind, &v);
        }
        "cookie" => {
            let v = r.string(ALNUM, 40);
            b.header("cookie", format!("theme=dark; session={v}; lang=en"));
            b.secret(kind, &v);
        }
        "xff" => {
            let v = if r.chance(70) { ipv4(r) } else { ipv6(r) };
            let h = if r.chance(50) {
                v.clone()
            } else {
                format!("{v}, 10.0.0.7")
            };
            b.header("x-forwarded-for", h);
            b.secret(kind, &v);
        }
        "apikey_header" => {
            let v = r.string(HEX, 32);
            b.header(
                r.pick(&["x-api-key", "x-auth-token", "proxy-authorization"]),
                v.clone(),
            );
            b.secret(kind, &v);
        }
        "basic_url" => {
            let user = r.pick(FIRST);
            let v = r.string(ALNUM, 12);
            b.header(
                "referer",
                format!("https://{user}:{v}@app.example.com/login"),
            );
            b.secret(kind, &v);
        }
        "national_id" => {
            // Without separators, under a neutral key: in the request's query or in the query
            // of a URL in the Referer.
            let v = national_id(r);
            let key = r.pick(&["ref", "q", "member", "applicant", "person", "lookup"]);
            if r.chance(60) {
                b.param(key, &v);
            } else {
                b.header(
                    "referer",
                    format!(
                        "https://portal.example.com/forms/verify?step={}&{key}={}",
                        r.range(1, 4),
                        pct(&v)
                    ),
                );
            }
            b.secret(kind, &v);
        }
        _ => {
            // referer_token: an OAuth redirect in the Referer, its code or token in the query
            // or in the fragment, next to a neutral parameter that must survive.
            let n = r.range(20, 43);
            let v = r.string(B64URL, n);
            let key = r.pick(&["code", "access_token", "token", "session_id"]);
            let sep = if key == "access_token" && r.chance(50) {
                '#'
            } else {
                '?'
            };
            b.header(
                "referer",
                format!("https://login.example.com/oauth/callback{sep}{key}={v}&lang=en"),
            );
            b.secret("referer_token", &v);
        }
    }
}

/// The request as one line of the shared corpus's JSONL format.
pub fn to_jsonl(r: &Request) -> String {
    fn q(s: &str) -> String {
        let mut o = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => o.push_str("\\\""),
                '\\' => o.push_str("\\\\"),
                c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
                c => o.push(c),
            }
        }
        o.push('"');
        o
    }
    let headers: Vec<String> = r
        .headers
        .iter()
        .map(|(k, v)| format!("{}: {}", q(k), q(v)))
        .collect();
    let secrets: Vec<String> = r
        .secrets
        .iter()
        .map(|(k, v)| format!("{{\"kind\": {}, \"value\": {}}}", q(k), q(v)))
        .collect();
    let benign: Vec<String> = r.benign.iter().map(|b| q(b)).collect();
    format!(
        "{{\"id\": {}, \"method\": {}, \"path\": {}, \"headers\": {{{}}}, \"secrets\": [{}], \"benign\": [{}]}}",
        q(&r.id),
        q(&r.method),
        q(&r.path),
        headers.join(", "),
        secrets.join(", "),
        benign.join(", ")
    )
}
