//! The bounded building blocks of every rule: a sliding-window counter in fixed buckets, an
//! exponentially weighted baseline, a fire/resolve latch, and a map of groups with a cap.
//! Time is always passed in (unix nanoseconds).

use crate::bytes::same;
use indexmap::IndexMap;

/// The groups' hasher: fast on short strings, seeded per map (keys come from the traffic).
type Hasher = foldhash::fast::RandomState;

/// Buckets per window: the window slides in steps of a twelfth of its length.
pub const BUCKETS: usize = 12;

/// Counts in a sliding window of fixed buckets: constant memory whatever the rate. The window
/// covers the current bucket and the 11 before it.
#[derive(Debug, Clone)]
pub struct RollingCount {
    bucket_ns: u64,
    slots: [(u64, f64); BUCKETS],
}

impl RollingCount {
    /// A counter over `window_ns`.
    pub fn new(window_ns: u64) -> Self {
        RollingCount {
            bucket_ns: (window_ns / BUCKETS as u64).max(1),
            slots: [(u64::MAX, 0.0); BUCKETS],
        }
    }

    fn epoch(&self, now: u64) -> u64 {
        now / self.bucket_ns
    }

    /// Adds `n` at `now`.
    pub fn add(&mut self, now: u64, n: f64) {
        let e = self.epoch(now);
        let i = (e % BUCKETS as u64) as usize;
        if let Some(slot) = self.slots.get_mut(i) {
            if slot.0 != e {
                *slot = (e, 0.0);
            }
            slot.1 += n;
        }
    }

    /// The count in the window ending at `now`.
    pub fn total(&self, now: u64) -> f64 {
        let e = self.epoch(now);
        let oldest = e.saturating_sub(BUCKETS as u64 - 1);
        self.slots
            .iter()
            .filter(|(se, _)| *se != u64::MAX && *se >= oldest && *se <= e)
            .map(|(_, c)| c)
            .sum()
    }
}

/// An exponentially weighted moving mean and variance.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ewma {
    /// The mean.
    pub mean: f64,
    /// The variance.
    pub var: f64,
    /// Samples taken (saturating).
    pub n: u32,
}

impl Ewma {
    /// Takes sample `x` with weight `alpha` (the first sample sets the mean).
    pub fn update(&mut self, x: f64, alpha: f64) {
        if self.n == 0 {
            self.mean = x;
            self.var = 0.0;
        } else {
            let d = x - self.mean;
            self.mean += alpha * d;
            self.var = (1.0 - alpha) * (self.var + alpha * d * d);
        }
        self.n = self.n.saturating_add(1);
    }

    /// The standard deviation.
    pub fn sd(&self) -> f64 {
        self.var.max(0.0).sqrt()
    }
}

/// A change of a latch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// The condition became true.
    Fire,
    /// The condition has been false for the resolve delay.
    Clear,
}

/// Fire when a condition holds; resolve once it has been false for a delay (so an alert does
/// not flap on a boundary).
#[derive(Debug, Clone, Copy, Default)]
pub struct Latch {
    /// Firing now.
    pub firing: bool,
    /// When the condition was last true.
    pub last_true: u64,
    /// When it started firing.
    pub since: u64,
}

impl Latch {
    /// Takes the condition's value at `now`.
    pub fn update(&mut self, cond: bool, now: u64, resolve_after_ns: u64) -> Option<Edge> {
        if cond {
            self.last_true = now;
            if !self.firing {
                self.firing = true;
                self.since = now;
                return Some(Edge::Fire);
            }
        } else if self.firing && now.saturating_sub(self.last_true) >= resolve_after_ns {
            self.firing = false;
            return Some(Edge::Clear);
        }
        None
    }
}

/// Quiet intervals a baseline is fed as zeros after a pause; after this many it has forgotten
/// the old level anyway.
pub const MAX_QUIET_INTERVALS: u64 = 64;

/// One group's fixed interval, alert latch and baseline: what the rules that compare an
/// interval's amount with the group's own past (5xx spike, secrets, volume) share.
#[derive(Debug, Clone, Copy, Default)]
pub struct Baselined {
    /// The interval being counted (`now / interval`).
    pub epoch: u64,
    /// The group's own past.
    pub baseline: Ewma,
    /// Firing or not.
    pub latch: Latch,
}

/// A rule's per-group state that holds a [`Baselined`] interval.
pub trait HasBaseline {
    /// The interval, latch and baseline.
    fn baselined(&mut self) -> &mut Baselined;
}

/// The tick every baseline rule shares: each group's interval is closed by `roll` (which
/// gives the latch's edge), or with none to close its latch is let go after the resolve delay;
/// a group that resolves gets a [`Signal::Clear`](crate::rules::Signal::Clear); groups neither
/// firing nor seen within `idle_ns` are dropped.
pub fn tick_baselined<V: HasBaseline>(
    groups: &mut Groups<V>,
    now: u64,
    (idle_ns, resolve_after_ns): (u64, u64),
    out: &mut Vec<crate::rules::Signal>,
    mut roll: impl FnMut(&mut V) -> Option<Edge>,
) {
    groups.retain(|key, s, seen| {
        let edge = roll(s).or_else(|| s.baselined().latch.update(false, now, resolve_after_ns));
        if edge == Some(Edge::Clear) {
            out.push(crate::rules::Signal::Clear {
                key: key.to_owned(),
                value: 0.0,
            });
        }
        s.baselined().latch.firing || now.saturating_sub(seen) < idle_ns
    });
}

impl Baselined {
    /// A group's first interval, the one holding `now`. With `zero_prior` the baseline starts
    /// at zero as if one quiet interval had been seen: a first interval that is already
    /// anomalous must not become the baseline.
    pub fn starting(now: u64, interval_ns: u64, zero_prior: bool) -> Self {
        Baselined {
            epoch: now / interval_ns,
            baseline: Ewma {
                n: u32::from(zero_prior),
                ..Ewma::default()
            },
            latch: Latch::default(),
        }
    }

    /// Closes the interval when `now` is past it: `None` while it is open, else the latch's
    /// edge, if any. A firing group's latch takes `was_hot` (a group that turned hot while
    /// learning did not fire and must not look as if it had). `feed` gives the closed interval
    /// to the baseline, with `alpha` (ten times slower while firing, so a lasting new level
    /// becomes the baseline in about an hour, not in the minutes of a storm) and the number of
    /// intervals that passed.
    pub fn close(
        &mut self,
        now: u64,
        interval_ns: u64,
        was_hot: bool,
        (alpha, resolve_after_ns): (f64, u64),
        feed: impl FnOnce(&mut Ewma, f64, u64),
    ) -> Option<Option<Edge>> {
        let e = now / interval_ns;
        if e <= self.epoch {
            return None;
        }
        let firing_before = self.latch.firing;
        let edge = if firing_before {
            self.latch.update(was_hot, now, resolve_after_ns)
        } else {
            None
        };
        let alpha = if firing_before { alpha / 10.0 } else { alpha };
        feed(&mut self.baseline, alpha, e - self.epoch);
        self.epoch = e;
        Some(edge)
    }
}

/// Feeds a count per interval: the closed one's, then zeros for the quiet ones after it.
pub fn feed_counts(count: f64) -> impl FnOnce(&mut Ewma, f64, u64) {
    move |b, alpha, passed| {
        b.update(count, alpha);
        for _ in 1..passed.min(MAX_QUIET_INTERVALS) {
            b.update(0.0, alpha);
        }
    }
}

/// The pairs of the group [`Groups::entry`] found last, to know a repeat without spelling or
/// hashing its key. Labels are `'static` (the rules' literals): a label at the same address with
/// the same length is the same label, as such memory is never freed nor changed (others are
/// compared).
#[derive(Debug, Default)]
struct Last {
    /// Its place in the map; `None` when not held (cleared whenever a group goes).
    at: Option<usize>,
    /// Each label's address, the label and the value.
    pairs: Vec<(usize, String, String)>,
}

impl Last {
    /// True when `pairs` are the last group's.
    #[inline]
    fn is(&self, pairs: &[(&'static str, &str)]) -> bool {
        self.at.is_some()
            && self.pairs.len() == pairs.len()
            && self.pairs.iter().zip(pairs).all(|((addr, l, v), (k, x))| {
                ((*addr == k.as_ptr() as usize && l.len() == k.len())
                    || same(l.as_bytes(), k.as_bytes()))
                    && same(v.as_bytes(), x.as_bytes())
            })
    }

    /// Remembers `pairs`, found at `at` (reusing the strings).
    fn set(&mut self, at: usize, pairs: &[(&'static str, &str)]) {
        self.at = Some(at);
        self.pairs.truncate(pairs.len());
        while self.pairs.len() < pairs.len() {
            self.pairs.push((0, String::new(), String::new()));
        }
        for ((addr, l, v), (k, x)) in self.pairs.iter_mut().zip(pairs) {
            *addr = k.as_ptr() as usize;
            l.clear();
            l.push_str(k);
            v.clear();
            v.push_str(x);
        }
    }
}

/// Per-group state with a cap: when full, idle groups are dropped first, then the least
/// recently seen eighth (never a firing group); what was dropped is counted.
#[derive(Debug)]
pub struct Groups<V> {
    /// Kept in insertion order, so the group found last can be found again by its place.
    map: IndexMap<String, (V, u64), Hasher>,
    cap: usize,
    /// The key being looked up, reused so a lookup of a held group allocates nothing.
    scratch: String,
    /// The group [`Groups::entry`] found last; held until a group is removed. Records come in
    /// runs from one source: a repeat needs one lookup, not two.
    last: Last,
    /// Groups dropped to stay under the cap, or not admitted because every one was firing.
    pub evicted: u64,
}

impl<V> Groups<V> {
    /// An empty map of at most `cap` groups.
    pub fn new(cap: usize) -> Self {
        Groups {
            map: IndexMap::default(),
            cap: cap.max(1),
            scratch: String::new(),
            last: Last::default(),
            evicted: 0,
        }
    }

    /// Groups held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The group `key`, made with `make` if new; `None` when the map is full of firing groups.
    /// `firing` says which groups must not be evicted.
    pub fn get_or_insert(
        &mut self,
        key: &str,
        now: u64,
        make: impl FnOnce() -> V,
        firing: impl Fn(&V) -> bool,
    ) -> Option<&mut V> {
        if !self.map.contains_key(key) {
            if self.map.len() >= self.cap {
                self.evict(&firing);
            }
            if self.map.len() >= self.cap {
                self.evicted += 1;
                return None;
            }
            self.map.insert(key.to_owned(), (make(), now));
        }
        let e = self.map.get_mut(key)?;
        e.1 = now;
        Some(&mut e.0)
    }

    /// [`Groups::get_or_insert`] for the group of label/value `pairs` (its key as
    /// [`crate::rules::key_of`] spells it), built in a reused buffer: nothing is allocated
    /// unless the group is new, and the group found last is known again from the pairs alone.
    /// Labels are `'static` (see `Last`).
    pub fn entry(
        &mut self,
        pairs: &[(&'static str, &str)],
        now: u64,
        make: impl FnOnce() -> V,
        firing: impl Fn(&V) -> bool,
    ) -> Option<&mut V> {
        // The group found last (still held: `last` is cleared whenever a group goes) is
        // recognised from the pairs without spelling or hashing its key, and found by its place.
        if let Some(at) = self.last.at.filter(|_| self.last.is(pairs)) {
            let (_, e) = self.map.get_index_mut(at)?;
            e.1 = now;
            return Some(&mut e.0);
        }
        crate::rules::write_key(&mut self.scratch, pairs);
        let at = match self.map.get_index_of(self.scratch.as_str()) {
            Some(at) => at,
            None => {
                if self.map.len() >= self.cap {
                    self.evict(&firing);
                }
                if self.map.len() >= self.cap {
                    self.evicted += 1;
                    return None;
                }
                self.map.insert_full(self.scratch.clone(), (make(), now)).0
            }
        };
        self.last.set(at, pairs);
        let (_, e) = self.map.get_index_mut(at)?;
        e.1 = now;
        Some(&mut e.0)
    }

    /// [`Groups::touch`] for the group of `pairs`, without allocating.
    pub fn touch_pairs(&mut self, pairs: &[(&str, &str)], now: u64) -> Option<&mut V> {
        crate::rules::write_key(&mut self.scratch, pairs);
        self.map.get_mut(self.scratch.as_str()).map(|e| {
            e.1 = now;
            &mut e.0
        })
    }

    /// Every group with its last-seen time (for a snapshot).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &V, u64)> {
        self.map.iter().map(|(k, (v, t))| (k.as_str(), v, *t))
    }

    /// Puts back a group from a snapshot, last seen at `seen`, if there is room (a snapshot is
    /// never let evict what the traffic has already brought).
    pub fn restore(&mut self, key: &str, v: V, seen: u64) {
        if self.map.len() < self.cap && !self.map.contains_key(key) {
            self.map.insert(key.to_owned(), (v, seen));
        }
    }

    /// The group `key`, if held.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.map.get_mut(key).map(|e| &mut e.0)
    }

    /// The group `key`, if held, marked seen at `now`.
    pub fn touch(&mut self, key: &str, now: u64) -> Option<&mut V> {
        self.map.get_mut(key).map(|e| {
            e.1 = now;
            &mut e.0
        })
    }

    fn evict(&mut self, firing: &impl Fn(&V) -> bool) {
        self.last.at = None;
        let mut ages: Vec<u64> = self
            .map
            .values()
            .filter(|(v, _)| !firing(v))
            .map(|(_, t)| *t)
            .collect();
        if ages.is_empty() {
            return;
        }
        let n = (self.cap / 8).clamp(1, ages.len());
        let (_, cut, _) = ages.select_nth_unstable(n - 1);
        let cut = *cut;
        let before = self.map.len();
        let mut left = n;
        self.map.retain(|_, (v, t)| {
            if left > 0 && *t <= cut && !firing(v) {
                left -= 1;
                false
            } else {
                true
            }
        });
        self.evicted += (before - self.map.len()) as u64;
    }

    /// Drops the groups `keep` refuses (idle ones), not counted as evicted.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut V, u64) -> bool) {
        self.last.at = None;
        self.map.retain(|k, (v, t)| keep(k, v, *t));
    }

    /// Every group with its last-seen time.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut V)> {
        self.map.iter_mut().map(|(k, (v, _))| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_last_group_is_known_again_by_equal_pairs_only(
            a in prop::collection::vec(("[a-c=]{0,3}", "[a-c=\u{1f}]{0,20}"), 0..3),
            b in prop::collection::vec(("[a-c=]{0,3}", "[a-c=\u{1f}]{0,20}"), 0..3),
        ) {
            // Labels are 'static, as the rules' literals are.
            let label = |k: &String| -> &'static str { Box::leak(k.clone().into_boxed_str()) };
            let pa: Vec<(&'static str, &str)> = a.iter().map(|(k, x)| (label(k), x.as_str())).collect();
            let pb: Vec<(&'static str, &str)> = b.iter().map(|(k, x)| (label(k), x.as_str())).collect();
            let mut last = Last::default();
            prop_assert!(!last.is(&pa), "nothing is held yet");
            last.set(3, &pa);
            prop_assert!(last.is(&pa));
            // Other strings with the same text (other addresses) are the same pairs.
            let copies: Vec<(String, String)> = a.clone();
            let pc: Vec<(&'static str, &str)> =
                copies.iter().map(|(k, x)| (label(k), x.as_str())).collect();
            prop_assert!(last.is(&pc));
            prop_assert_eq!(last.is(&pb), pa == pb);
            if last.is(&pb) {
                prop_assert_eq!(crate::rules::key_of(&pa), crate::rules::key_of(&pb));
            }
        }
    }

    #[test]
    fn a_repeated_group_is_found_again_and_a_removed_one_is_made_anew() {
        let mut g: Groups<u32> = Groups::new(2);
        let a = [("service", "a")];
        for _ in 0..3 {
            *g.entry(&a, 1, || 0, |_| false).unwrap() += 1;
        }
        assert_eq!(
            g.get_mut("service=a"),
            Some(&mut 3),
            "one group, counted three times"
        );
        // Removed while it was the last one found: made again from scratch.
        g.retain(|_, _, _| false);
        assert_eq!(*g.entry(&a, 2, || 10, |_| false).unwrap(), 10);
        // Evicted to make room (by another way in) while it was the last one found: made anew.
        let mut one: Groups<u32> = Groups::new(1);
        assert_eq!(*one.entry(&a, 1, || 5, |_| false).unwrap(), 5);
        assert_eq!(*one.get_or_insert("x", 2, || 7, |_| false).unwrap(), 7);
        assert!(one.get_mut("service=a").is_none(), "evicted for x");
        assert_eq!(one.entry(&a, 3, || 40, |_| false).copied(), Some(40));
    }
}
