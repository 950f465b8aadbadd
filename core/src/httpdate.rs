//! HTTP-date parsing (RFC 9110 §5.6.7), for `Retry-After`: the three formats a recipient must
//! accept, to unix seconds. No clock here: the caller compares with its own `now`.
//!
//! - IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT` (what senders must generate)
//! - obsolete RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT` (two-digit years: 70–99 are 19xx,
//!   00–69 are 20xx)
//! - obsolete asctime: `Sun Nov  6 08:49:37 1994`
//!
//! The weekday is checked for shape, not against the date; dates before 1970 are refused.

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Unix seconds of an HTTP-date, or `None` if `s` is not one.
pub fn parse_http_date(s: &[u8]) -> Option<u64> {
    let s = s.trim_ascii();
    let comma = s.iter().position(|&b| b == b',');
    if let Some(c) = comma
        && !s.get(..c)?.iter().all(u8::is_ascii_alphabetic)
    {
        return None;
    }
    let (y, mo, d, time) = match comma {
        Some(3) => imf_fixdate(s.get(4..)?)?,
        Some(c @ 6..=9) => rfc850(s.get(c + 1..)?)?,
        None => asctime(s)?,
        Some(_) => return None,
    };
    let (h, mi, sec) = time;
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 {
        return None;
    }
    // 60: a leap second, which unix time folds into the next minute's first.
    if sec > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d)?;
    Some(days * 86_400 + u64::from(h) * 3_600 + u64::from(mi) * 60 + u64::from(sec))
}

/// Hour, minute, second.
type Hms = (u32, u32, u32);
/// Year, month (1–12), day, time of day.
type Parts = (u64, u32, u32, Hms);

/// ` 06 Nov 1994 08:49:37 GMT` (after the comma).
fn imf_fixdate(s: &[u8]) -> Option<Parts> {
    let [b' ', d1, d2, b' ', rest @ ..] = s else {
        return None;
    };
    let d = digits(&[*d1, *d2])?;
    let (mo, rest) = month(rest)?;
    let [b' ', y1, y2, y3, y4, b' ', rest @ ..] = rest else {
        return None;
    };
    let y = digits(&[*y1, *y2, *y3, *y4])?;
    let (time, rest) = clock(rest)?;
    (rest == b" GMT").then_some((u64::from(y), mo, d, time))
}

/// ` 06-Nov-94 08:49:37 GMT` (after the comma).
fn rfc850(s: &[u8]) -> Option<Parts> {
    let [b' ', d1, d2, b'-', rest @ ..] = s else {
        return None;
    };
    let d = digits(&[*d1, *d2])?;
    let (mo, rest) = month(rest)?;
    let [b'-', y1, y2, b' ', rest @ ..] = rest else {
        return None;
    };
    let yy = digits(&[*y1, *y2])?;
    let y = if yy >= 70 { 1900 + yy } else { 2000 + yy };
    let (time, rest) = clock(rest)?;
    (rest == b" GMT").then_some((u64::from(y), mo, d, time))
}

/// `Sun Nov  6 08:49:37 1994`.
fn asctime(s: &[u8]) -> Option<Parts> {
    let [w1, w2, w3, b' ', rest @ ..] = s else {
        return None;
    };
    if ![w1, w2, w3].iter().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let (mo, rest) = month(rest)?;
    let [b' ', d1, d2, b' ', rest @ ..] = rest else {
        return None;
    };
    let d = if *d1 == b' ' {
        digits(&[*d2])?
    } else {
        digits(&[*d1, *d2])?
    };
    let (time, rest) = clock(rest)?;
    let [b' ', y1, y2, y3, y4] = rest else {
        return None;
    };
    let y = digits(&[*y1, *y2, *y3, *y4])?;
    Some((u64::from(y), mo, d, time))
}

fn month(s: &[u8]) -> Option<(u32, &[u8])> {
    let name = s.get(..3)?;
    let i = MONTHS.iter().position(|m| m.as_slice() == name)?;
    Some((u32::try_from(i).ok()? + 1, s.get(3..)?))
}

/// `08:49:37` then the rest.
fn clock(s: &[u8]) -> Option<(Hms, &[u8])> {
    let [h1, h2, b':', m1, m2, b':', s1, s2, rest @ ..] = s else {
        return None;
    };
    Some((
        (
            digits(&[*h1, *h2])?,
            digits(&[*m1, *m2])?,
            digits(&[*s1, *s2])?,
        ),
        rest,
    ))
}

fn digits(ds: &[u8]) -> Option<u32> {
    ds.iter().try_fold(0u32, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

fn is_leap(y: u64) -> bool {
    y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400))
}

fn days_in_month(y: u64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`); `None` before 1970.
fn days_from_civil(y: u64, m: u32, d: u32) -> Option<u64> {
    let y = i64::try_from(y).ok()? - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 784_111_777; // 1994-11-06T08:49:37Z

    #[test]
    fn the_three_formats() {
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"), Some(T));
        assert_eq!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), Some(T));
        assert_eq!(parse_http_date(b"Sun Nov  6 08:49:37 1994"), Some(T));
        assert_eq!(
            parse_http_date(b"  Sun, 06 Nov 1994 08:49:37 GMT "),
            Some(T)
        );
    }

    #[test]
    fn calendar_edges() {
        assert_eq!(parse_http_date(b"Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date(b"Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(1_835_438_400)
        );
        assert_eq!(
            parse_http_date(b"Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(253_402_300_799)
        );
        assert_eq!(
            parse_http_date(b"Wednesday, 01-Jan-25 00:00:00 GMT"),
            Some(1_735_689_600)
        );
        assert_eq!(
            parse_http_date(b"Wed Jan 10 00:00:00 2001"),
            Some(979_084_800)
        );
    }

    #[test]
    fn refuses_what_is_not_a_date() {
        for bad in [
            &b""[..],
            b"120",
            b"Sun, 06 Nov 1994 08:49:37 UTC",
            b"Sun, 6 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Foo 1994 08:49:37 GMT",
            b"Sun, 31 Nov 1994 08:49:37 GMT",
            b"Sun, 29 Feb 2100 08:49:37 GMT",
            b"Sun, 06 Nov 1994 24:00:00 GMT",
            b"Sun, 06 Nov 1994 08:60:00 GMT",
            b"Sun, 06 Nov 1969 08:49:37 GMT",
            b"Sun, 06 Nov 1994 08:49:37 GMT x",
            b"1un, 06 Nov 1994 08:49:37 GMT",
            b"Sunday, 06-Nov-1994 08:49:37 GMT",
            b"Sun Nov 06 08:49:37 94",
            b"S, 06 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(
                parse_http_date(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
