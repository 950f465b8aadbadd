//! What the outbox lost, by sequence number, until the collector hears about it: records dropped
//! for overflow and records the collector refused. Shipped as a `meshlog.delivery.tally` record
//! so that, per VM, every sequence number is either stored or explained.

use crate::record::{AttrValue, Event, Severity};

/// `eventName` of the record that ships a [`DeliveryTally`].
pub use crate::schema::DELIVERY_TALLY_EVENT_NAME;
/// Records dropped because the VM's buffer was full, listed in this record (integer).
pub use crate::schema::MESHLOG_DELIVERY_DROPPED_OVERFLOW as ATTR_DROPPED_OVERFLOW;
/// Their sequence numbers (string): inclusive ranges, `"3-9,15-15"`.
pub use crate::schema::MESHLOG_DELIVERY_DROPPED_OVERFLOW_SEQUENCES as ATTR_DROPPED_OVERFLOW_SEQUENCES;
/// Records dropped for overflow since the VM started, as of this record (integer). Monotonic:
/// the largest value among a VM's tally records is its exact total, even when a record was
/// repeated (see [`DeliveryTally`]).
pub use crate::schema::MESHLOG_DELIVERY_DROPPED_OVERFLOW_TOTAL as ATTR_DROPPED_OVERFLOW_TOTAL;
/// Records in batches the collector refused for good (4xx and the like), listed in this record
/// (integer).
pub use crate::schema::MESHLOG_DELIVERY_FAILED as ATTR_FAILED;
/// Their sequence numbers (string), as for overflow.
pub use crate::schema::MESHLOG_DELIVERY_FAILED_SEQUENCES as ATTR_FAILED_SEQUENCES;
/// Records refused since the VM started, as of this record (integer), like
/// [`ATTR_DROPPED_OVERFLOW_TOTAL`].
pub use crate::schema::MESHLOG_DELIVERY_FAILED_TOTAL as ATTR_FAILED_TOTAL;
/// Present (integer 1) only when a range list outgrew [`MAX_RANGES`] and neighbouring ranges
/// were joined: the ranges then also cover some numbers that were not lost (the counts stay
/// exact).
pub use crate::schema::MESHLOG_DELIVERY_SEQUENCES_APPROXIMATE as ATTR_SEQUENCES_APPROXIMATE;

/// At most this many ranges are listed per kind; past it the two closest ranges are joined.
/// Bounds the record (about 20 bytes per range) well below the smallest buffer.
pub const MAX_RANGES: usize = 256;

/// A set of sequence numbers as sorted, disjoint, non-adjacent inclusive ranges, with an exact
/// count of the numbers put in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqRanges {
    ranges: Vec<(u64, u64)>,
    count: u64,
    approximate: bool,
}

impl SeqRanges {
    /// Adds `first..=last`, which must not overlap what is already in (each record is lost once).
    pub fn insert(&mut self, first: u64, last: u64) {
        let (first, last) = (first.min(last), first.max(last));
        self.count = self.count.saturating_add(last - first).saturating_add(1);
        let i = self.ranges.partition_point(|&(a, _)| a < first);
        self.ranges.insert(i, (first, last));
        // Join with the neighbours where adjacent (or, if the caller broke the rule, overlapping).
        if let Some(&(_, b)) = i.checked_sub(1).and_then(|p| self.ranges.get(p))
            && b.saturating_add(1) >= first
        {
            self.join(i - 1);
            self.join_next_while_touching(i - 1);
        } else {
            self.join_next_while_touching(i);
        }
        if self.ranges.len() > MAX_RANGES {
            let closest = (0..self.ranges.len() - 1).min_by_key(|&k| {
                match (self.ranges.get(k), self.ranges.get(k + 1)) {
                    (Some(&(_, b)), Some(&(c, _))) => c - b,
                    _ => u64::MAX,
                }
            });
            if let Some(k) = closest {
                self.join(k);
                self.approximate = true;
            }
        }
    }

    fn join_next_while_touching(&mut self, i: usize) {
        while let (Some(&(_, b)), Some(&(c, _))) = (self.ranges.get(i), self.ranges.get(i + 1)) {
            if b.saturating_add(1) < c {
                break;
            }
            self.join(i);
        }
    }

    /// Replaces ranges `i` and `i + 1` by one spanning both.
    fn join(&mut self, i: usize) {
        if i + 1 < self.ranges.len() {
            let (_, d) = self.ranges.remove(i + 1);
            if let Some(r) = self.ranges.get_mut(i) {
                r.1 = r.1.max(d);
            }
        }
    }

    /// Adds every number of `other`.
    pub fn merge(&mut self, other: &SeqRanges) {
        for &(a, b) in &other.ranges {
            let before = self.count;
            self.insert(a, b);
            // The count is `other`'s, which is exact even where its ranges are not.
            self.count = before;
        }
        self.count = self.count.saturating_add(other.count);
        self.approximate |= other.approximate;
    }

    /// How many numbers were put in (exact).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// True when nothing was put in.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The ranges, ascending.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// True when ranges were joined past [`MAX_RANGES`], so they over-cover.
    pub fn is_approximate(&self) -> bool {
        self.approximate
    }

    /// `"3-9,15-15"`.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(self.ranges.len() * 20);
        for (i, (a, b)) in self.ranges.iter().enumerate() {
            // Writing to a String cannot fail.
            let _ = write!(s, "{}{a}-{b}", if i > 0 { "," } else { "" });
        }
        s
    }
}

/// Records lost and not yet known to be reported: since the last delivery tally that reached the
/// collector *with an answer*. A tally record whose batch was stored but whose answer was lost,
/// and which was then dropped, is reported again in the next one: readers take the union of the
/// ranges and the largest totals, which are exact either way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryTally {
    /// Dropped because the buffer was full.
    pub dropped_overflow: SeqRanges,
    /// Refused by the collector for good.
    pub failed: SeqRanges,
    /// All records dropped for overflow by the VM so far, when the record was written.
    pub dropped_overflow_total: u64,
    /// All records refused by the collector so far, when the record was written.
    pub failed_total: u64,
}

impl DeliveryTally {
    /// True when nothing was lost.
    pub fn is_empty(&self) -> bool {
        self.dropped_overflow.is_empty() && self.failed.is_empty()
    }

    /// Adds everything `other` counted.
    pub fn merge(&mut self, other: &DeliveryTally) {
        self.dropped_overflow.merge(&other.dropped_overflow);
        self.failed.merge(&other.failed);
        self.dropped_overflow_total = self
            .dropped_overflow_total
            .max(other.dropped_overflow_total);
        self.failed_total = self.failed_total.max(other.failed_total);
    }

    /// Calls `f(key, value)` for every attribute of the tally record (the `ATTR_*` constants of
    /// this module). Counts are always present, range lists only when non-empty.
    pub fn for_each_attribute(&self, mut f: impl FnMut(&str, AttrValue<'_>)) {
        let i = |v: u64| AttrValue::Int(i64::try_from(v).unwrap_or(i64::MAX));
        f(ATTR_DROPPED_OVERFLOW, i(self.dropped_overflow.count()));
        if !self.dropped_overflow.is_empty() {
            let t = self.dropped_overflow.to_text();
            f(ATTR_DROPPED_OVERFLOW_SEQUENCES, AttrValue::Str(&t));
        }
        f(ATTR_DROPPED_OVERFLOW_TOTAL, i(self.dropped_overflow_total));
        f(ATTR_FAILED, i(self.failed.count()));
        if !self.failed.is_empty() {
            let t = self.failed.to_text();
            f(ATTR_FAILED_SEQUENCES, AttrValue::Str(&t));
        }
        f(ATTR_FAILED_TOTAL, i(self.failed_total));
        if self.dropped_overflow.is_approximate() || self.failed.is_approximate() {
            f(ATTR_SEQUENCES_APPROXIMATE, AttrValue::Int(1));
        }
    }
}

/// Parses a range list written by [`SeqRanges::to_text`] (for readers and tests).
pub fn parse_ranges(s: &str) -> Option<Vec<(u64, u64)>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split(',')
        .map(|r| {
            let (a, b) = r.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

/// Shipped as `meshlog.delivery.tally`, severity WARN (records were lost), timed when written.
impl Event for DeliveryTally {
    fn event_name(&self) -> &'static str {
        DELIVERY_TALLY_EVENT_NAME
    }

    fn severity(&self) -> Severity {
        Severity::Warn
    }

    fn time_ns(&self, now_ns: u64) -> u64 {
        now_ns
    }

    fn visit_attributes(&self, f: &mut dyn FnMut(&str, AttrValue<'_>)) {
        self.for_each_attribute(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges_join_when_adjacent() {
        let mut r = SeqRanges::default();
        r.insert(5, 9);
        r.insert(10, 10);
        r.insert(0, 2);
        r.insert(20, 29);
        assert_eq!(r.ranges(), [(0, 2), (5, 10), (20, 29)]);
        r.insert(11, 19);
        assert_eq!(r.ranges(), [(0, 2), (5, 29)]);
        r.insert(3, 4);
        assert_eq!(r.ranges(), [(0, 29)]);
        assert_eq!(r.count(), 30);
        assert_eq!(r.to_text(), "0-29");
        assert!(!r.is_approximate());
    }

    #[test]
    fn past_the_cap_the_closest_ranges_join_and_the_count_stays_exact() {
        let mut r = SeqRanges::default();
        for k in 0..=MAX_RANGES as u64 {
            // Gaps of 2, except one gap of 1 between 100 and 101's ranges.
            let a = if k > 100 { k * 3 - 1 } else { k * 3 };
            r.insert(a, a);
        }
        assert_eq!(r.ranges().len(), MAX_RANGES);
        assert_eq!(r.count(), MAX_RANGES as u64 + 1);
        assert!(r.is_approximate());
        assert!(
            r.ranges().contains(&(300, 302)),
            "the closest pair was joined"
        );
    }

    #[test]
    fn merge_keeps_counts_and_ranges() {
        let mut a = DeliveryTally::default();
        a.dropped_overflow.insert(0, 4);
        a.failed.insert(10, 12);
        let mut b = DeliveryTally::default();
        b.dropped_overflow.insert(5, 6);
        b.dropped_overflow.insert(20, 20);
        a.merge(&b);
        assert_eq!(a.dropped_overflow.ranges(), [(0, 6), (20, 20)]);
        assert_eq!(a.dropped_overflow.count(), 8);
        assert_eq!(a.failed.count(), 3);
        let mut attrs = Vec::new();
        a.for_each_attribute(|k, v| attrs.push(format!("{k}={v:?}")));
        assert_eq!(
            attrs,
            [
                "meshlog.delivery.dropped_overflow=Int(8)",
                "meshlog.delivery.dropped_overflow.sequences=Str(\"0-6,20-20\")",
                "meshlog.delivery.dropped_overflow.total=Int(0)",
                "meshlog.delivery.failed=Int(3)",
                "meshlog.delivery.failed.sequences=Str(\"10-12\")",
                "meshlog.delivery.failed.total=Int(0)",
            ]
        );
        assert_eq!(parse_ranges("0-6,20-20"), Some(vec![(0, 6), (20, 20)]));
        assert_eq!(parse_ranges("0-6,x"), None);
    }

    proptest! {
        /// Whatever the order, the set is exactly the numbers put in, in canonical form.
        #[test]
        fn any_disjoint_insert_order(mut seqs in proptest::collection::btree_set(0u64..400, 0..200)
            .prop_map(|s| s.into_iter().collect::<Vec<_>>()), seed in any::<u64>()) {
            // Shuffle deterministically.
            let mut x = seed | 1;
            for i in (1..seqs.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                seqs.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut r = SeqRanges::default();
            for &s in &seqs { r.insert(s, s); }
            prop_assert_eq!(r.count(), seqs.len() as u64);
            let covered: Vec<u64> = r.ranges().iter().flat_map(|&(a, b)| a..=b).collect();
            let mut sorted = seqs.clone();
            sorted.sort_unstable();
            prop_assert_eq!(covered, sorted);
            for w in r.ranges().windows(2) {
                prop_assert!(w[0].1 + 1 < w[1].0, "canonical: {:?}", r.ranges());
            }
        }
    }
}
