//! A segment's summary: what all its indexed frames hold together (time range, the merged
//! low-cardinality value sets, a Bloom filter of every high-cardinality item, each VM's merged
//! sequence coverage, and a digest of the frame headers), written at the front of its index
//! file with its own checksum so a query reads and checks it alone. When the summary says no
//! record of the segment can match, the segment's frame entries are never decoded: its
//! frames are stepped over and accounted for from the summary.
//!
//! Like the frame entries it is a cache, never evidence: it is used only when its checksum
//! holds and its frame count and header digest equal those of the segment's frame headers.

use super::bloom::Bloom;
use super::{LOW_FIELDS, LowSets, VmEntry, VmMap, low_and_bloom_may_match, push_range};
use crate::filter::Filter;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// More distinct values than this in a segment and its low-cardinality field is not listed.
pub const MAX_SEGMENT_LOW_VALUES: usize = 1024;
/// Bits per item of a summary Bloom layer (about 0.3% false positives with [`HASHES`]).
const BITS_PER_ITEM: usize = 12;
/// Hash functions of a summary Bloom layer.
const HASHES: u32 = 8;
/// The least first layer's capacity, items (it is sized for 16 frames like the first one).
const FIRST_LAYER: u64 = 256;

/// One layer of the summary's growing Bloom filter: when it holds `capacity` distinct items
/// the next layer, twice as large, is started (a scalable Bloom filter: the segment's item
/// count is not known while it is being indexed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// Items it is sized for.
    pub capacity: u64,
    /// Items added (those it did not already seem to hold).
    pub items: u64,
    /// The filter.
    pub bloom: Bloom,
}

/// What a segment's indexed frames hold, merged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Frames summarised (the segment's first `frames` frames).
    pub frames: u64,
    /// CRC-32 of each summarised frame's offset (u64 LE), payload CRC and record count (u32 LE
    /// each), in file order: ties the summary to the frame headers.
    pub digest: u32,
    /// Earliest and latest record time of any frame (absent when no record has one).
    pub time: Option<[u64; 2]>,
    /// Per low-cardinality field, the union of the frames' values; `None` when a frame did
    /// not list it or there are more than [`MAX_SEGMENT_LOW_VALUES`].
    pub low: BTreeMap<String, Option<BTreeSet<String>>>,
    /// Per VM, its frames' entries merged (sequence ranges sorted and joined).
    pub vms: BTreeMap<String, VmEntry>,
    /// The tagged high-cardinality items of every frame (as in [`FrameEntry::bloom`]).
    pub layers: Vec<Layer>,
}

/// The digest step for one frame.
pub fn digest_step(digest: u32, offset: u64, crc: u32, records: u32) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(digest);
    h.update(&offset.to_le_bytes());
    h.update(&crc.to_le_bytes());
    h.update(&records.to_le_bytes());
    h.finalize()
}

impl Summary {
    /// Folds in one frame's entry and its items (the strings its Bloom filter holds).
    #[allow(clippy::too_many_arguments)]
    pub fn add_frame(
        &mut self,
        offset: u64,
        crc: u32,
        records: u32,
        time: Option<[u64; 2]>,
        low: &LowSets,
        vms: &VmMap,
        items: &BTreeSet<String>,
    ) {
        self.frames += 1;
        self.digest = digest_step(self.digest, offset, crc, records);
        if let Some([lo, hi]) = time {
            self.time = Some(match self.time {
                Some([a, b]) => [a.min(lo), b.max(hi)],
                None => [lo, hi],
            });
        }
        let first = self.frames == 1;
        for name in LOW_FIELDS {
            let theirs = low.get(*name).cloned().flatten();
            let slot = self
                .low
                .entry((*name).to_owned())
                .or_insert_with(|| first.then(BTreeSet::new));
            match (slot.as_mut(), theirs) {
                (Some(set), Some(vals)) => {
                    set.extend(vals);
                    if set.len() > MAX_SEGMENT_LOW_VALUES {
                        *slot = None;
                    }
                }
                _ => *slot = None,
            }
        }
        for (vm, v) in vms {
            let m = self.vms.entry(vm.clone()).or_default();
            m.seqs.extend_from_slice(&v.seqs);
            m.lost.extend_from_slice(&v.lost);
            normalize(&mut m.seqs);
            normalize(&mut m.lost);
            m.dropped_overflow_total = m.dropped_overflow_total.max(v.dropped_overflow_total);
            m.failed_total = m.failed_total.max(v.failed_total);
            if let Some([lo, hi]) = v.time {
                m.time = Some(match m.time {
                    Some([a, b]) => [a.min(lo), b.max(hi)],
                    None => [lo, hi],
                });
            }
        }
        if self.layers.is_empty() {
            self.new_layer((items.len() as u64 * 16).max(FIRST_LAYER));
        }
        for item in items {
            self.insert(item.as_bytes());
        }
    }

    fn insert(&mut self, item: &[u8]) {
        let full = self.layers.last().is_none_or(|l| l.items >= l.capacity);
        if full {
            self.new_layer(self.layers.last().map_or(FIRST_LAYER, |l| l.capacity * 2));
        }
        if let Some(l) = self.layers.last_mut()
            && !l.bloom.may_contain(item)
        {
            l.bloom.insert(item);
            l.items += 1;
        }
    }

    fn new_layer(&mut self, capacity: u64) {
        self.layers.push(Layer {
            capacity,
            items: 0,
            bloom: Bloom::sized(capacity as usize, BITS_PER_ITEM, HASHES),
        });
    }

    /// False when the item was certainly never added.
    pub fn may_contain(&self, item: &[u8]) -> bool {
        self.layers.iter().any(|l| l.bloom.may_contain(item))
    }

    /// False when no record of the summarised frames can match `f`.
    pub fn may_match(&self, f: &Filter) -> bool {
        self.frames > 0 && low_and_bloom_may_match(self.time, &self.low, |i| self.may_contain(i), f)
    }

    /// Each VM's "has records in the time range" exactly as adding its frames' entries one by
    /// one would give; `None` when the merged time range cannot tell (it straddles a bound).
    pub fn vms_in_range(&self, since: Option<u64>, until: Option<u64>) -> Option<Vec<bool>> {
        self.vms
            .values()
            .map(|e| match e.time {
                None => Some(since.is_none() && until.is_none()),
                Some([lo, hi]) => {
                    let inside = since.is_none_or(|s| lo >= s) && until.is_none_or(|u| hi < u);
                    let outside = since.is_some_and(|s| hi < s) || until.is_some_and(|u| lo >= u);
                    if inside {
                        Some(true)
                    } else if outside {
                        Some(false)
                    } else {
                        None
                    }
                }
            })
            .collect()
    }
}

/// Sorts `ranges` and joins the overlapping or adjacent ones.
fn normalize(ranges: &mut Vec<[u64; 2]>) {
    if ranges.len() < 2 {
        return;
    }
    ranges.sort_unstable();
    let mut out: Vec<[u64; 2]> = Vec::with_capacity(ranges.len());
    for r in ranges.drain(..) {
        match out.last_mut() {
            Some(last) if r[0] <= last[1].saturating_add(1) => last[1] = last[1].max(r[1]),
            _ => push_range(&mut out, r),
        }
    }
    *ranges = out;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::FrameBuilder;
    use serde_json::{Value, json};

    fn frame(k: u64, svc: &str, trace: &str, t: u64, s: &mut Summary) {
        let mut b = FrameBuilder::default();
        for i in 0..3 {
            let Value::Object(r) = json!({
                "time_unix_nano": t + i,
                "resource.service.name": svc,
                "resource.meshlog.vm.id": "vm1",
                "meshlog.sequence": k * 3 + i,
                "http.response.status_code": 200 + i,
                "trace_id": trace,
            }) else {
                unreachable!()
            };
            b.add(&r);
        }
        b.finish_into(8 + k * 100, k as u32, 3, s);
    }

    #[test]
    fn a_summary_rules_out_only_what_no_frame_can_match_and_merges_vms() {
        let mut s = Summary::default();
        let traces = ["aa".repeat(16), "bb".repeat(16)];
        for (k, (svc, t)) in [("checkout", 1000), ("cart", 5000)].iter().enumerate() {
            frame(k as u64, svc, &traces[k], *t, &mut s);
        }
        let f = |p: &[(&str, &str)]| Filter::from_params(p.iter().copied(), 100).unwrap();
        assert!(s.may_match(&f(&[("service", "cart")])));
        assert!(!s.may_match(&f(&[("service", "payments")])));
        assert!(s.may_match(&f(&[("trace-id", &traces[1])])));
        assert!(!s.may_match(&f(&[("trace-id", &"cc".repeat(16))])));
        assert!(!s.may_match(&f(&[("status", "5xx")])));
        assert_eq!(s.time, Some([1000, 5002]));
        assert_eq!(s.vms["vm1"].seqs, [[0, 5]]);
        assert_eq!(s.vms_in_range(Some(900), Some(6000)), Some(vec![true]));
        assert_eq!(s.vms_in_range(Some(6000), None), Some(vec![false]));
        assert_eq!(s.vms_in_range(Some(2000), None), None);
        assert!(!Summary::default().may_match(&f(&[])));
    }

    #[test]
    fn the_bloom_grows_in_layers_and_keeps_every_item() {
        let mut s = Summary::default();
        let n = FIRST_LAYER * 5;
        for i in 0..n {
            s.insert(format!("t:{i}").as_bytes());
        }
        assert!(s.layers.len() >= 3, "{} layers", s.layers.len());
        assert!((0..n).all(|i| s.may_contain(format!("t:{i}").as_bytes())));
        let false_pos = (n..n + 10_000)
            .filter(|i| s.may_contain(format!("t:{i}").as_bytes()))
            .count();
        assert!(false_pos < 200, "{false_pos} false positives in 10000");
    }

    #[test]
    fn ranges_are_sorted_and_joined() {
        let mut r = vec![[5, 6], [1, 2], [3, 3], [9, 9], [4, 4]];
        normalize(&mut r);
        assert_eq!(r, [[1, 6], [9, 9]]);
    }
}
