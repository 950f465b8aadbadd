//! National identification numbers written without separators, where the context allows: the
//! whole value of a query parameter or of a JSON field whose key names no other kind of number.
//!
//! A bare 9-digit number is as likely an order or tracking number as a US SSN, so these are only
//! judged as a *whole value* (never inside free text), only when the value passes the id's own
//! validation (issued ranges, check digits, embedded dates), and never under a key that says what
//! else the number is (`order`, `invoice`, `tracking`, `id`, `page`, `ts`, …: [`ID_WORDS`]). Under
//! a sensitive key (`ssn=`, `tax_id=`) the key rule catches any value already. Recognized, counted
//! as `ssn`:
//!
//! | id | shape | validation |
//! |---|---|---|
//! | US SSN | 9 digits | area not 000, 666, 900–999; group not 00; serial not 0000 |
//! | Canadian SIN | 9 digits | Luhn, first digit not 0 or 8 |
//! | Dutch BSN | 9 digits | eleven-test |
//! | UK National Insurance number | 2 letters, 6 digits, `A`–`D` | HMRC prefix rules |
//! | Spanish DNI / NIE | 8 digits or `X`/`Y`/`Z` + 7, letter | mod-23 check letter |
//! | Brazilian CPF | 11 digits | two mod-11 check digits, not one repeated digit |
//! | French NIR | 15 digits, first 1, 2, 7 or 8 | 97-complement key |
//! | Chinese resident id | 17 digits + digit or `X` | birth date, ISO 7064 mod 11-2 |
//! | Italian codice fiscale | 16 letters and digits | structure, month letter, check letter |
//!
//! Not recognized without separators: ids whose check passes for 1 in 10 random numbers of a
//! length benign ids also have (Indian Aadhaar: 12 digits, like FedEx tracking numbers).

use super::Kind;
use super::keys;
use super::scan::{Finding, at, is_alnum, run};

/// Words of a key that name a number that is not a person's (compared lower-case, per word).
const ID_WORDS: &[&str] = &[
    "id",
    "ids",
    "uid",
    "order",
    "orders",
    "invoice",
    "tracking",
    "track",
    "sku",
    "number",
    "num",
    "no",
    "nr",
    "page",
    "limit",
    "offset",
    "count",
    "qty",
    "quantity",
    "amount",
    "price",
    "total",
    "ts",
    "time",
    "timestamp",
    "date",
    "zip",
    "postal",
    "postcode",
    "version",
    "v",
    "build",
    "seq",
    "sequence",
    "batch",
    "item",
    "product",
    "cart",
    "shipment",
    "parcel",
    "isbn",
    "ean",
    "upc",
    "gtin",
    "code",
    "size",
    "width",
    "height",
    "lat",
    "lng",
    "lon",
];

/// Whether the key names another kind of number (`order_id`, `trackingNumber`, `page`).
pub(crate) fn id_key(key: &[u8]) -> bool {
    keys::any_word(key, |w| {
        ID_WORDS
            .iter()
            .any(|x| w.eq_ignore_ascii_case(x.as_bytes()))
    })
}

fn digits(v: &[u8]) -> Option<Vec<u32>> {
    v.iter()
        .map(|b| b.is_ascii_digit().then(|| u32::from(b - b'0')))
        .collect()
}

fn num(d: &[u32]) -> u64 {
    d.iter().fold(0u64, |a, x| a * 10 + u64::from(*x))
}

fn luhn(d: &[u32]) -> bool {
    let s: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, x)| {
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 { y - 9 } else { y }
            } else {
                *x
            }
        })
        .sum();
    s.is_multiple_of(10)
}

fn us_ssn(d: &[u32]) -> bool {
    let (Some(a), Some(g), Some(s)) = (d.get(..3), d.get(3..5), d.get(5..9)) else {
        return false;
    };
    let (a, g, s) = (num(a), num(g), num(s));
    a != 0 && a != 666 && a < 900 && g != 0 && s != 0
}

fn sin(d: &[u32]) -> bool {
    !matches!(d.first(), Some(0 | 8) | None) && luhn(d)
}

fn bsn(d: &[u32]) -> bool {
    let s: i64 = d
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let w = if i == 8 { -1 } else { 9 - i as i64 };
            w * i64::from(*x)
        })
        .sum();
    d.first() != Some(&0) && s % 11 == 0
}

fn cpf(d: &[u32]) -> bool {
    if d.windows(2).all(|w| w.first() == w.get(1)) {
        return false;
    }
    let check = |n: usize| {
        let s: u32 = d
            .iter()
            .take(n)
            .enumerate()
            .map(|(i, x)| x * (n as u32 + 1 - i as u32))
            .sum();
        let r = s * 10 % 11;
        (if r == 10 { 0 } else { r }) == d.get(n).copied().unwrap_or(99)
    };
    check(9) && check(10)
}

fn nir(d: &[u32]) -> bool {
    if !matches!(d.first(), Some(1 | 2 | 7 | 8)) {
        return false;
    }
    let (Some(body), Some(key)) = (d.get(..13), d.get(13..15)) else {
        return false;
    };
    // Birth month 01–12, or 20 and above for unknown months and overseas registrations.
    let month = d.get(3..5).map(num).unwrap_or(0);
    ((1..=12).contains(&month) || month >= 20) && 97 - num(body) % 97 == num(key)
}

fn valid_date(y: u64, m: u64, day: u64) -> bool {
    (1900..=2099).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&day)
}

fn china_ric(v: &[u8]) -> bool {
    let (Some(body), Some(&last)) = (v.get(..17), v.get(17)) else {
        return false;
    };
    let Some(d) = digits(body) else { return false };
    let date = |a: usize, b: usize| d.get(a..b).map(num).unwrap_or(0);
    if !valid_date(date(6, 10), date(10, 12), date(12, 14)) {
        return false;
    }
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let s: u32 = d.iter().zip(W).map(|(x, w)| x * w).sum();
    b"10X98765432".get((s % 11) as usize) == Some(&last)
}

fn uk_nino(v: &[u8]) -> bool {
    let [a, b, rest @ .., last] = v else {
        return false;
    };
    rest.len() == 6
        && rest.iter().all(u8::is_ascii_digit)
        && matches!(last, b'A'..=b'D')
        && a.is_ascii_uppercase()
        && b.is_ascii_uppercase()
        && !b"DFIQUV".contains(a)
        && !b"DFIOQUV".contains(b)
        && ![b"BG", b"GB", b"NK", b"KN", b"TN", b"NT", b"ZZ"].contains(&&[*a, *b])
}

fn spanish(v: &[u8]) -> bool {
    let [body @ .., last] = v else { return false };
    if body.len() != 8 {
        return false;
    }
    let lead = match body.first() {
        Some(b'X') => Some(0),
        Some(b'Y') => Some(1),
        Some(b'Z') => Some(2),
        Some(c) if c.is_ascii_digit() => None,
        _ => return false,
    };
    let d = match lead {
        Some(l) => digits(body.get(1..).unwrap_or_default()).map(|mut d| {
            d.insert(0, l);
            d
        }),
        None => digits(body),
    };
    let Some(d) = d else { return false };
    b"TRWAGMYFPDXBNJZSQVHLCKE".get((num(&d) % 23) as usize) == Some(last)
}

fn italian_cf(v: &[u8]) -> bool {
    if v.len() != 16 {
        return false;
    }
    let shape = v.iter().enumerate().all(|(i, c)| match i {
        0..=5 | 8 | 11 | 15 => c.is_ascii_uppercase(),
        _ => c.is_ascii_digit(),
    });
    if !shape || !v.get(8).is_some_and(|m| b"ABCDEHLMPRST".contains(m)) {
        return false;
    }
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    let val = |c: u8| -> usize {
        if c.is_ascii_digit() {
            usize::from(c - b'0')
        } else {
            usize::from(c - b'A')
        }
    };
    let s: u32 = v
        .iter()
        .take(15)
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                ODD.get(val(*c)).copied().unwrap_or(0)
            } else {
                val(*c) as u32
            }
        })
        .sum();
    v.get(15) == Some(&(b'A' + (s % 26) as u8))
}

/// Whether `v`, as a whole, is a national id of one of the recognized shapes.
pub(crate) fn is_national_id(v: &[u8]) -> bool {
    match digits(v) {
        Some(d) => match d.len() {
            9 => us_ssn(&d) || sin(&d) || bsn(&d),
            11 => cpf(&d),
            15 => nir(&d),
            // Most resident ids end in a digit; only 1 in 11 ends in `X`.
            18 => china_ric(v),
            _ => false,
        },
        None => match v.len() {
            9 => uk_nino(v) || spanish(v),
            16 => italian_cf(v),
            18 => china_ric(v),
            _ => false,
        },
    }
}

/// In text: a JSON field's whole value at `i` (`"ref": "123456789"`, `"ref":123456789`) that is a
/// national id, under a key that is neither sensitive (the key rule has it) nor an identifier's.
pub(crate) fn json_value(t: &[u8], i: usize) -> Option<Finding> {
    let quoted = i > 0 && at(t, i - 1) == b'"';
    let ve = run(t, i, is_alnum);
    let after = at(t, ve);
    if quoted {
        if after != b'"' {
            return None;
        }
    } else if !matches!(after, b',' | b'}' | b']' | b' ' | b'\n' | 0) {
        return None;
    }
    let v = t.get(i..ve)?;
    if !matches!(v.len(), 9 | 11 | 15 | 16 | 18) {
        return None;
    }
    // Back over `"key"\s*:\s*"?`.
    let mut k = if quoted { i - 1 } else { i };
    while k > 0 && at(t, k - 1) == b' ' {
        k -= 1;
    }
    if k == 0 || at(t, k - 1) != b':' {
        return None;
    }
    k -= 1;
    while k > 0 && at(t, k - 1) == b' ' {
        k -= 1;
    }
    if k == 0 || at(t, k - 1) != b'"' {
        return None;
    }
    let ke = k - 1;
    let mut ks = ke;
    while ks > 0 && ke - ks < 64 && at(t, ks - 1) != b'"' {
        ks -= 1;
    }
    if ks == 0 || at(t, ks - 1) != b'"' {
        return None;
    }
    let key = t.get(ks..ke)?;
    if id_key(key) || keys::sensitive(key, &[], &[]).is_some() {
        return None;
    }
    is_national_id(v).then(|| Finding::new(i, ve, Kind::Ssn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_each_shape() {
        for v in [
            "078051121",          // SSN ranges
            "046454286",          // SIN (Luhn)
            "111222333",          // BSN eleven-test
            "AB123456C",          // NINO
            "12345678Z",          // DNI
            "X1234567L",          // NIE
            "52998224725",        // CPF
            "255081416802538",    // NIR
            "11010519491231002X", // China RIC
            "510107199504111021", // China RIC, all digits
            "RSSMRA85T10A562S",   // codice fiscale
        ] {
            assert!(is_national_id(v.as_bytes()), "{v}");
        }
        for v in [
            "000123456",
            "666123456",
            "999123456",
            "123006789",
            "AB123456E",
            "QQ123456C",
            "GB123456A",
            "12345678A",
            "52998224726",
            "11111111111",
            "255081416802539",
            "11010519491231002Y",
            "510107199504111022",
            "11010519491331002X",
            "RSSMRA85T10A562T",
            "12345678",
            "1234567890",
            "4111111111111111",
        ] {
            assert!(!is_national_id(v.as_bytes()), "{v}");
        }
    }

    #[test]
    fn json_fields_under_neutral_keys() {
        fn f(s: &str) -> Option<&str> {
            let i = s
                .find(|c: char| c.is_ascii_digit() || c == 'A')
                .unwrap_or(0);
            json_value(s.as_bytes(), i).map(|f| &s[f.start..f.end])
        }
        assert_eq!(f(r#"{"ref": "078051121"}"#), Some("078051121"));
        assert_eq!(f(r#"{"ref":078051121,"x":1}"#), Some("078051121"));
        assert_eq!(f(r#"{"order_id": "078051121"}"#), None);
        assert_eq!(f(r#"{"trackingNumber":"078051121"}"#), None);
        assert_eq!(f(r#"{"ref": "078051121x"}"#), None);
        assert_eq!(f(r#"ref 078051121"#), None);
        assert!(id_key(b"orderId") && id_key(b"page") && !id_key(b"ref") && !id_key(b"member"));
    }
}
