//! The detector framework: what a finding is, which detectors are on, the look-ahead state that
//! keeps a pass linear, and the byte helpers every detector uses.
//!
//! A leaf of `redact`: the detectors (`detect`, `numeric`, `token`) depend on it and never on
//! each other's dispatch, so adding a detector touches no framework code.

use super::Kind;

/// One detected span, in offsets of the scanned bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) kind: Kind,
    /// Index of the custom pattern when `kind` is [`Kind::Custom`].
    pub(crate) custom: u16,
}

impl Finding {
    pub(crate) const fn new(start: usize, end: usize, kind: Kind) -> Self {
        Finding {
            start,
            end,
            kind,
            custom: 0,
        }
    }
}

/// Which detectors run, and the configured key names for `key=value` detection.
#[derive(Debug, Clone)]
pub(crate) struct Detectors {
    pub(crate) on: [bool; Kind::COUNT],
    pub(crate) extra_keys: Vec<String>,
    pub(crate) allow_keys: Vec<String>,
}

impl Detectors {
    pub(crate) fn on(&self, k: Kind) -> bool {
        self.on.get(k.index()).copied().unwrap_or(false)
    }
}

/// The byte at `i`, or 0 past the end (0 is neither alphanumeric nor any detector's trigger).
#[inline]
pub(crate) fn at(t: &[u8], i: usize) -> u8 {
    #[cfg(test)]
    STEPS.with(|n| n.set(n.get() + 1));
    t.get(i).copied().unwrap_or(0)
}

#[cfg(test)]
thread_local! {
    /// Bytes read by [`at`] on this thread: lets tests bound a scan's work without timing it.
    pub(crate) static STEPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A set of bytes as a table: ASCII alphanumerics plus `extra` (built at compile time). A lookup
/// is cheaper than a chain of range tests in the runs every detector reads.
// Evaluated at compile time: an index out of bounds fails the build, it cannot panic.
#[allow(clippy::indexing_slicing)]
pub(crate) const fn alnum_and(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut k = 0;
    while k < extra.len() {
        t[extra[k] as usize] = true;
        k += 1;
    }
    t
}

/// Whether `b` is in `set` (see [`alnum_and`]).
#[inline]
pub(crate) fn in_set(set: &[bool; 256], b: u8) -> bool {
    set.get(usize::from(b)).copied().unwrap_or(false)
}

const ALNUM: [bool; 256] = alnum_and(b"");

/// ASCII alphanumeric, by one table lookup: the word runs of the dispatcher read every byte of a
/// word with it, and a lookup is fewer instructions than three range tests.
#[inline]
pub(crate) fn is_alnum(b: u8) -> bool {
    in_set(&ALNUM, b)
}

#[inline]
pub(crate) fn starts_with(t: &[u8], i: usize, p: &[u8]) -> bool {
    t.get(i..).is_some_and(|r| r.starts_with(p))
}

#[inline]
pub(crate) fn starts_with_ci(t: &[u8], i: usize, p: &[u8]) -> bool {
    t.get(i..i + p.len())
        .is_some_and(|r| r.eq_ignore_ascii_case(p))
}

/// Splits `s` at each `sep` (an ASCII byte), as `str::split(char)` does, without the char
/// searcher's set-up per call (path segments and query pairs are a few bytes each).
pub(crate) fn split_ascii(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match find_ascii(r, sep) {
            Some(p) => {
                rest = r.get(p + 1..);
                r.get(..p)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Index of the first `b` (an ASCII byte) in `s`.
#[inline]
pub(crate) fn find_ascii(s: &str, b: u8) -> Option<usize> {
    s.bytes().position(|x| x == b)
}

/// End of the run of bytes satisfying `f` starting at `i`, when every byte of `t[i..word_end]` is
/// known to satisfy it (`word_end`: the end of the alphanumeric run at `i`, for a set that holds
/// the alphanumerics): the run's bytes inside the word are read once, by the dispatcher, for
/// every detector that runs over them.
#[inline]
pub(crate) fn run_past(
    t: &[u8],
    i: usize,
    word_end: Option<usize>,
    f: impl Fn(u8) -> bool,
) -> usize {
    run(t, word_end.unwrap_or(i).max(i), f)
}

/// End of the run of bytes satisfying `f` starting at `i`.
#[inline]
pub(crate) fn run(t: &[u8], i: usize, f: impl Fn(u8) -> bool) -> usize {
    let rest = t.get(i..).unwrap_or_default();
    let n = rest.iter().position(|b| !f(*b)).unwrap_or(rest.len());
    // As many reads as a loop over `at` would count: the run and the byte that ends it.
    #[cfg(test)]
    STEPS.with(|s| s.set(s.get() + n as u64 + 1));
    i + n
}

/// Look-ahead memory that keeps the pass linear.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) last_end: usize,
    pub(crate) jwt_until: usize,
    pub(crate) std_until: usize,
    pub(crate) url_until: usize,
    pub(crate) kv_until: usize,
    pub(crate) v6_until: usize,
    pub(crate) aws_id_seen: bool,
    pub(crate) pending_aws: Vec<(usize, usize)>,
}

#[cfg(test)]
mod tests_run_past {
    use super::*;

    #[test]
    fn a_run_past_the_word_ends_where_the_whole_run_ends() {
        const SETS: [[bool; 256]; 3] = [alnum_and(b"_-.[]"), alnum_and(b"+/"), alnum_and(b"-_")];
        for s in [
            "",
            "abc",
            "ab_c-d.e[f]/g+h:i j",
            "a+b/c=",
            "x-y_z.w",
            "é日本",
            "AKIA/+_-.:[]",
        ] {
            let t = s.as_bytes();
            for i in 0..=t.len() {
                let we = run(t, i, is_alnum);
                for set in &SETS {
                    let f = |b| in_set(set, b);
                    assert_eq!(run_past(t, i, Some(we), f), run(t, i, f), "{s:?} at {i}");
                    assert_eq!(run_past(t, i, None, f), run(t, i, f), "{s:?} at {i}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_ascii_splits_as_str_split() {
        for s in ["", "/", "//", "/a/b;c=d/", "a", "é/ü/%2F", "a&&b=c&", "&"] {
            for sep in [b'/', b'&', b';'] {
                let want: Vec<&str> = s.split(char::from(sep)).collect();
                let got: Vec<&str> = split_ascii(s, sep).collect();
                assert_eq!(got, want, "{s:?} at {:?}", char::from(sep));
                assert_eq!(find_ascii(s, sep), s.find(char::from(sep)), "{s:?}");
            }
        }
    }

    #[test]
    fn byte_sets_are_alphanumerics_and_the_extras() {
        const SET: [bool; 256] = alnum_and(b"+/");
        for b in 0..=u8::MAX {
            let want = b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
            assert_eq!(in_set(&SET, b), want, "{b}");
            assert_eq!(is_alnum(b), b.is_ascii_alphanumeric(), "{b}");
        }
    }
}
