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

#[inline]
pub(crate) fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
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

/// End of the run of bytes satisfying `f` starting at `i`.
#[inline]
pub(crate) fn run(t: &[u8], i: usize, f: impl Fn(u8) -> bool) -> usize {
    let mut j = i;
    while j < t.len() && f(at(t, j)) {
        j += 1;
    }
    j
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
    /// The credential library's next anchor candidate.
    pub(crate) creds: super::creds::Cursor,
}
