//! Numbers written in groups: payment cards, US SSNs, phone numbers and IPv4 addresses.
//!
//! At a word start the scanner reads a *run*: an optional `+`, then up to 12 digit groups, each
//! optionally in parentheses, separated by one space, `-` or `.`. Windows of consecutive groups
//! (starting at the first, longest first) are classified:
//!
//! - **card**: 13–19 digits, issuer prefix 2–6, Luhn-valid; written without separators or grouped
//!   4-4-4-4(-1..4), 4-6-5 or 4-6-4 with one consistent space or `-`. Order numbers that fail Luhn,
//!   timestamps (`1733…` ms) and anything grouped otherwise survive.
//! - **ssn**: `AAA-GG-SSSS` / `AAA GG SSSS`, area not 000, 666 or 900–999, group not 00, serial not
//!   0000. Bare 9-digit numbers are not SSNs (too many ids look like that; `ssn=` keys are caught by
//!   the key rule).
//! - **phone**: `+` followed by 8–15 digits in any grouping (E.164); NANP `(415) 555-0134`,
//!   `415-555-0134`, `415.555.0134`, `1 415 555 0134` (area and exchange 2–9); `00` + country,
//!   11–17 digits; national `0…` numbers of 10–11 digits in at least two groups of 2–8 digits with one
//!   separator (`020 7946 0958`, `06 12 34 56 78`). Bare digit strings, dates (`2025-06-01`),
//!   versions (`7.7.4`) and times do not match.
//! - **ip**: exactly four dot-separated groups of at most 3 digits, each ≤ 255, as the whole run, not
//!   right after a `.` or a product token (`Chrome/120.0.0.0`).
//!
//! A window must end at a non-alphanumeric byte. When a window matches, later windows that overlap
//! it and cover more digits win (so `+1 4111 1111 1111 1111` is a card, not a phone).

use super::Kind;
use super::scan::{Detectors, Finding, at, is_alnum, run};

const MAX_GROUPS: usize = 12;

#[derive(Clone, Copy, Default)]
struct Group {
    /// First digit.
    s: usize,
    /// End of digits.
    e: usize,
    /// End including a closing parenthesis.
    close: usize,
    /// Written in parentheses.
    paren: bool,
    /// Separator before this group (0 for the first, `)` when glued to a parenthesis).
    sep: u8,
}

impl Group {
    fn len(&self) -> usize {
        self.e - self.s
    }
    fn start(&self) -> usize {
        if self.paren { self.s - 1 } else { self.s }
    }
}

/// A grouped number starting at `i` (a digit, `+` or `(` at a word start).
pub(crate) fn numeric(t: &[u8], i: usize, d: &Detectors) -> Option<Finding> {
    if !(d.on(Kind::Card) || d.on(Kind::Ssn) || d.on(Kind::Phone) || d.on(Kind::Ip)) {
        return None;
    }
    let mut groups = [Group::default(); MAX_GROUPS];
    let mut n = 0;
    let plus = at(t, i) == b'+';
    let mut j = if plus { i + 1 } else { i };
    let mut sep = 0u8;
    loop {
        let paren = at(t, j) == b'(';
        let s = if paren { j + 1 } else { j };
        let e = run(t, s, |b| b.is_ascii_digit());
        if e == s || e - s > 19 {
            break;
        }
        let close = if paren {
            if at(t, e) != b')' {
                break;
            }
            e + 1
        } else {
            e
        };
        let Some(slot) = groups.get_mut(n) else { break };
        *slot = Group {
            s,
            e,
            close,
            paren,
            sep,
        };
        n += 1;
        if n == MAX_GROUPS {
            break;
        }
        let c = at(t, close);
        let c1 = at(t, close + 1);
        if matches!(c, b' ' | b'-' | b'.') && (c1.is_ascii_digit() || c1 == b'(') {
            sep = c;
            j = close + 1;
        } else if paren && c.is_ascii_digit() {
            sep = b')';
            j = close;
        } else {
            break;
        }
    }
    let groups = groups.get(..n)?;
    // Every kind but IPv4 needs 8 digits or more (a phone after `+`; cards 13, SSNs 9, other
    // phones 10), and IPv4 is exactly four groups: most numbers (years, versions, counts) stop here.
    if digits(groups) < 8 && n != 4 {
        return None;
    }
    // A UUID's digits are an identifier; looked for only now, past the cheap rejection above.
    if at(t, i).is_ascii_digit() && in_uuid(t, i) {
        return None;
    }
    let (end, kind) = best_from(t, groups, 0, plus, i, d)?;
    let mut best = (0usize, end, kind, digits(groups.get(..end)?));
    // A longer overlapping match further in wins.
    for k in 1..best.1 {
        if let Some((e, kind)) = best_from(t, groups, k, false, i, d) {
            let cover = digits(groups.get(k..e)?);
            if cover > best.3 {
                best = (k, e, kind, cover);
            }
        }
    }
    let first = groups.get(best.0)?;
    let last = groups.get(best.1 - 1)?;
    let start = if best.0 == 0 { i } else { first.start() };
    Some(Finding::new(start, last.close, best.2))
}

fn digits(w: &[Group]) -> usize {
    w.iter().map(Group::len).sum()
}

/// The longest window starting at group `k` that classifies, as (end group, kind).
fn best_from(
    t: &[u8],
    groups: &[Group],
    k: usize,
    plus: bool,
    i: usize,
    d: &Detectors,
) -> Option<(usize, Kind)> {
    let n = groups.len();
    for end in (k + 1..=n).rev() {
        let w = groups.get(k..end)?;
        let last = w.last()?;
        if is_alnum(at(t, last.close)) {
            continue;
        }
        if let Some(kind) = classify(t, w, plus, k == 0 && end == n, i, d) {
            return Some((end, kind));
        }
    }
    None
}

/// Whether a UUID (`8-4-4-4-12` hex digits, standing alone) starts at `s`.
fn uuid_at(t: &[u8], s: usize) -> bool {
    let Some(u) = t.get(s..s + 36) else {
        return false;
    };
    let alone = (s == 0 || !is_alnum(at(t, s - 1))) && !is_alnum(at(t, s + 36));
    alone
        && u.iter().enumerate().all(|(k, b)| {
            if matches!(k, 8 | 13 | 18 | 23) {
                *b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

/// Whether `i` (a word start) is the start of a segment of a UUID: its digits are an
/// identifier, not a phone number (`00803770-8114-4b57-…`) or a national number.
fn in_uuid(t: &[u8], i: usize) -> bool {
    [0usize, 9, 14, 19, 24]
        .iter()
        .any(|o| i.checked_sub(*o).is_some_and(|s| uuid_at(t, s)))
}

fn classify(
    t: &[u8],
    w: &[Group],
    plus: bool,
    whole_run: bool,
    i: usize,
    d: &Detectors,
) -> Option<Kind> {
    let first = w.first()?;
    let total = digits(w);
    let any_paren = w.iter().any(|g| g.paren);
    let seps = w.get(1..).unwrap_or_default();
    let one_sep = seps.first().map(|g| g.sep);
    let same_sep = seps.iter().all(|g| Some(g.sep) == one_sep);
    let lead = at(t, first.s);

    if d.on(Kind::Card)
        && !plus
        && !any_paren
        && (13..=19).contains(&total)
        && (b'2'..=b'6').contains(&lead)
        && card_grouping(w, same_sep, one_sep)
        && luhn(t, w)
    {
        return Some(Kind::Card);
    }
    if d.on(Kind::Ssn) && !plus && !any_paren && ssn(t, w, same_sep, one_sep) {
        return Some(Kind::Ssn);
    }
    if d.on(Kind::Phone) && phone(t, w, plus, total, same_sep) {
        return Some(Kind::Phone);
    }
    if d.on(Kind::Ip) && whole_run && !plus && !any_paren && ipv4(t, w, i) {
        return Some(Kind::Ip);
    }
    None
}

fn sizes(w: &[Group]) -> impl Iterator<Item = usize> + '_ {
    w.iter().map(Group::len)
}

fn card_grouping(w: &[Group], same_sep: bool, sep: Option<u8>) -> bool {
    if w.len() == 1 {
        return true;
    }
    if !same_sep || !matches!(sep, Some(b' ' | b'-')) {
        return false;
    }
    let v: Vec<usize> = sizes(w).collect();
    match v.as_slice() {
        [4, 6, 5] | [4, 6, 4] => true,
        [init @ .., last] if init.len() >= 2 => {
            init.iter().all(|s| *s == 4) && (1..=4).contains(last)
        }
        _ => false,
    }
}

fn luhn(t: &[u8], w: &[Group]) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for g in w.iter().rev() {
        let Some(ds) = t.get(g.s..g.e) else {
            return false;
        };
        for b in ds.iter().rev() {
            let mut v = u32::from(b - b'0');
            if double {
                v *= 2;
                if v > 9 {
                    v -= 9;
                }
            }
            sum += v;
            double = !double;
        }
    }
    sum.is_multiple_of(10)
}

fn number(t: &[u8], g: &Group) -> u32 {
    t.get(g.s..g.e)
        .unwrap_or_default()
        .iter()
        .fold(0u32, |a, b| {
            a.saturating_mul(10).saturating_add(u32::from(b - b'0'))
        })
}

fn ssn(t: &[u8], w: &[Group], same_sep: bool, sep: Option<u8>) -> bool {
    let [a, g, s] = w else { return false };
    if !(a.len() == 3 && g.len() == 2 && s.len() == 4) {
        return false;
    }
    if !same_sep || !matches!(sep, Some(b'-' | b' ')) {
        return false;
    }
    let area = number(t, a);
    area != 0 && area != 666 && area < 900 && number(t, g) != 0 && number(t, s) != 0
}

fn nanp(t: &[u8], area: &Group, exch: &Group, line: &Group) -> bool {
    area.len() == 3
        && exch.len() == 3
        && line.len() == 4
        && (b'2'..=b'9').contains(&at(t, area.s))
        && (b'2'..=b'9').contains(&at(t, exch.s))
        && !exch.paren
        && !line.paren
        && line.sep != b')'
}

fn phone(t: &[u8], w: &[Group], plus: bool, total: usize, same_sep: bool) -> bool {
    let Some(first) = w.first() else { return false };
    let lead = at(t, first.s);
    if plus {
        return (8..=15).contains(&total) && lead != b'0';
    }
    match w {
        [a, b, c] if nanp(t, a, b, c) => return true,
        [one, a, b, c] if one.len() == 1 && lead == b'1' && !one.paren && nanp(t, a, b, c) => {
            return true;
        }
        _ => {}
    }
    if w.iter().any(|g| g.paren) || w.len() < 2 {
        return false;
    }
    let second = at(t, first.s + 1);
    if lead == b'0' && second == b'0' {
        return (11..=17).contains(&total) && at(t, first.s + 2) != b'0';
    }
    lead == b'0'
        && second != b'0'
        && (10..=11).contains(&total)
        && same_sep
        && sizes(w).all(|s| (2..=8).contains(&s))
}

fn ipv4(t: &[u8], w: &[Group], i: usize) -> bool {
    if w.len() != 4 || w.iter().skip(1).any(|g| g.sep != b'.') {
        return false;
    }
    if w.iter().any(|g| g.len() > 3 || number(t, g) > 255) {
        return false;
    }
    let prev = if i == 0 { 0 } else { at(t, i - 1) };
    let before = if i < 2 { 0 } else { at(t, i - 2) };
    !(prev == b'.' || (prev == b'/' && is_alnum(before)))
}

#[cfg(test)]
mod tests {
    use super::super::detect::tests::{found, kinds};
    use super::*;

    #[test]
    fn cards() {
        for s in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "3732 319487 57497",
            "3793-218583-82537",
            "6011-3126-2825-3661",
            "5508 7577 3553 1114",
            "373166877603397",
            "4984-2004-5596-0425",
            "6011 0682 4713 5099",
            "30569309025904",
        ] {
            // several of these come from the corpus; all pass Luhn
            let f = found(&format!("pay {s}."));
            assert_eq!(f, [(Kind::Card, s.to_string())], "{s}");
        }
        for s in [
            "4111111111111112", // Luhn fails
            "1733627106123",    // ms timestamp: issuer digit 1
            "2819482199351819", // corpus order number, fails Luhn
            "4111 1111 1111 1111x",
            "4111.1111.1111.1111", // dots are not card separators
            "4111 1111-1111 1111", // mixed separators
            "41 11111111 111111",  // odd grouping
            "ORD2819482199351819",
            "12345678-1234-1234-1234-123456789012",
        ] {
            assert!(!kinds(s).contains(&Kind::Card), "{s}: {:?}", found(s));
        }
        // a longer match further into the run wins over the phone at its start
        assert_eq!(
            found("+1 4111 1111 1111 1111"),
            [(Kind::Card, "4111 1111 1111 1111".into())]
        );
    }

    #[test]
    fn ssns() {
        for s in ["663-74-7302", "049-33-9256", "216 54 5336", "899-01-0001"] {
            assert_eq!(found(s), [(Kind::Ssn, s.to_string())], "{s}");
        }
        for s in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "123-45 6789",
            "123456789",
            "123-45-67890",
            "2025-06-01",
        ] {
            assert!(!kinds(s).contains(&Kind::Ssn), "{s}: {:?}", found(s));
        }
    }

    #[test]
    fn uuids_with_leading_digits_are_not_phones() {
        for s in [
            "00803770-8114-4b57-a6c2-7b410b5ae5b0",
            "00441234-5678-4abc-9def-0123456789ab",
        ] {
            assert_eq!(kinds(s), [], "{s}");
        }
        // A phone number followed by a word still is one, and one glued to a word by '-'.
        assert_eq!(kinds("call 0044 20 7946 0958 - later"), [Kind::Phone]);
        assert_eq!(kinds("+1-200-200-0000-a"), [Kind::Phone]);
        assert_eq!(kinds("00803770-8114-a"), [Kind::Phone]);
    }

    #[test]
    fn phones() {
        for s in [
            "+1-485-340-7053",
            "+1 799 890 8652",
            "+44 20 7310124",
            "+14155550134",
            "+1 (415) 555-0134",
            "(415) 555-0134",
            "(569) 753-9331",
            "(415)555-0134",
            "415-555-0134",
            "415.555.0134",
            "415 555 0134",
            "1-415-555-0134",
            "0044 20 7946 0958",
            "020 7946 0958",
            "06 12 34 56 78",
            "+33 6 12 34 56 78",
            "+49 30 1234567",
        ] {
            assert_eq!(
                found(&format!("call {s}!")),
                [(Kind::Phone, s.to_string())],
                "{s}"
            );
        }
        for s in [
            "2025-06-01",
            "06-01-2025",
            "v7.7.4",
            "7.7.4",
            "10.0.19045.2965",
            "2026-07-21T01:04:52Z",
            "4155550134",
            "1733627106",
            "115-555-0134", // area code cannot start with 1
            "415-155-0134", // nor the exchange
            "+123",
            "+0 123 456 789",
            "SKU-IHXYGH-757",
            "fec94dbc-a3a0-4ac3-a098-b2cc2bd81831",
            "3f16947ccf25",
            "12:30:45",
            "1 234 567",
            "415-555-01345",
        ] {
            assert!(!kinds(s).contains(&Kind::Phone), "{s}: {:?}", found(s));
        }
    }

    #[test]
    fn ipv4_in_text() {
        assert_eq!(
            found("from 45.229.133.199:443"),
            [(Kind::Ip, "45.229.133.199".into())]
        );
        assert_eq!(
            found("for=10.1.2.3;proto=https"),
            [(Kind::Ip, "10.1.2.3".into())]
        );
        for s in [
            "Chrome/120.0.0.0 Safari/537.36",
            "1.2.3.4.5",
            "256.1.1.1",
            "1.2.3",
            "v1.2.3.4",
            "Version/4.0",
        ] {
            assert!(!kinds(s).contains(&Kind::Ip), "{s}: {:?}", found(s));
        }
    }
}
