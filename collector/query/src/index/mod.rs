//! The sidecar index of a closed segment (`index/<seq>.idx`, named in meshlog-format's
//! layout): per frame, what a query needs to skip it without reading it. It is a cache, never
//! evidence: `meshlog verify` does not read it, a query checks it against the segment's frame
//! headers before using it, and a missing, unreadable, damaged or mismatched index is rebuilt
//! from the segment. The active (newest) segment has no index and is always scanned. The index
//! of a segment holding sealed (encrypted) frames is never written: it would hold record content
//! in the clear.
//!
//! Indexes are built when a segment closes ([`build::index_closed`], run by the collector after
//! the writer seals a segment), and by a query that finds a closed segment without one.
//!
//! The file is binary ([`file`], docs/query.md#index-file-format): magic, a version byte, the
//! [`SegmentIndex`] in the postcard wire format, and a CRC-32 of everything before it.

pub mod bloom;
pub mod build;
pub mod counts;
pub mod file;
pub mod lazy;
pub mod summary;

use crate::filter::{Filter, Record, field, record_time_ns, value_str};
use bloom::Bloom;
use lazy::Lazy;
use meshlog_core::schema;
use meshlog_format::fsutil;
use meshlog_format::reader::SegmentScanner;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// More distinct values than this in a frame and a low-cardinality field is not listed (the
/// frame is then never skipped for that field).
pub const MAX_LOW_VALUES: usize = 64;
/// The low-cardinality fields, by their names in [`FrameEntry::low`].
pub const LOW_FIELDS: &[&str] = &["service", "namespace", "tenant", "status", "method"];

/// One segment's index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentIndex {
    /// The segment's sequence number.
    pub segment: u64,
    /// The segment file's length in bytes when indexed.
    pub len: u64,
    /// One entry per frame, in file order.
    pub frames: Vec<FrameEntry>,
    /// Record counts per minute and low-cardinality values over those frames (absent when a
    /// record could not be counted exactly).
    pub counts: Option<counts::Counts>,
    /// The frames merged: written in its own section of the file ([`file`]), read alone first.
    #[serde(skip)]
    pub summary: summary::Summary,
}

/// What one frame holds, in summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameEntry {
    /// Byte offset of the frame in the segment.
    pub offset: u64,
    /// The payload CRC from the frame header (ties the entry to the frame).
    pub crc: u32,
    /// Records in the frame.
    pub records: u32,
    /// Earliest and latest record time (Unix ns); absent when no record has a time.
    pub time: Option<[u64; 2]>,
    /// Per low-cardinality field ([`LOW_FIELDS`]), its distinct values; `null` when there
    /// were more than [`MAX_LOW_VALUES`] (decoded when asked for).
    pub low: Lazy<LowSets>,
    /// High-cardinality values, tagged (`t:` trace id, `r:` request id, `p:` principal, `c:`
    /// client address, `e:` end user, `o:` route, `w:` lower-case word of any value).
    pub bloom: Bloom,
    /// Per VM (`resource.meshlog.vm.id`), what completeness needs (decoded when asked for).
    pub vms: Lazy<VmMap>,
}

/// Per low-cardinality field, its distinct values (`None`: too many to list).
pub type LowSets = BTreeMap<String, Option<BTreeSet<String>>>;
/// Per VM, its entry.
pub type VmMap = BTreeMap<String, VmEntry>;

/// One VM's records in a frame.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmEntry {
    /// Its `meshlog.sequence` numbers, as inclusive ranges.
    pub seqs: Vec<[u64; 2]>,
    /// Sequence ranges its delivery tallies report lost, as inclusive ranges.
    pub lost: Vec<[u64; 2]>,
    /// Largest `meshlog.delivery.dropped_overflow.total` seen.
    pub dropped_overflow_total: u64,
    /// Largest `meshlog.delivery.failed.total` seen.
    pub failed_total: u64,
    /// Earliest and latest record time.
    pub time: Option<[u64; 2]>,
}

/// The fields of a record that completeness needs, read without building the whole record
/// (any JSON type is accepted; a field of an unexpected type counts as absent, as in
/// [`VmEntry::add`]).
#[derive(Debug, Default, Deserialize)]
pub struct Light {
    /// `resource.meshlog.vm.id`.
    #[serde(rename = "resource.meshlog.vm.id", default)]
    pub vm: Option<Value>,
    #[serde(rename = "meshlog.sequence", default)]
    sequence: Option<Value>,
    #[serde(rename = "time_unix_nano", default)]
    time: Option<Value>,
    #[serde(rename = "observed_time_unix_nano", default)]
    observed: Option<Value>,
    #[serde(rename = "meshlog.delivery.dropped_overflow.sequences", default)]
    overflow_seqs: Option<Value>,
    #[serde(rename = "meshlog.delivery.dropped_overflow.total", default)]
    overflow_total: Option<Value>,
    #[serde(rename = "meshlog.delivery.failed.sequences", default)]
    failed_seqs: Option<Value>,
    #[serde(rename = "meshlog.delivery.failed.total", default)]
    failed_total: Option<Value>,
}

impl VmEntry {
    /// Folds `record` (of this VM) in.
    pub fn add(&mut self, record: &Record) {
        let s = |k: &str| record.get(k).and_then(Value::as_str);
        let n = |k: &str| record.get(k).and_then(Value::as_u64);
        self.add_parts(
            record_time_ns(record),
            n(field::SEQUENCE),
            [
                (
                    s(schema::MESHLOG_DELIVERY_DROPPED_OVERFLOW_SEQUENCES),
                    n(schema::MESHLOG_DELIVERY_DROPPED_OVERFLOW_TOTAL),
                ),
                (
                    s(schema::MESHLOG_DELIVERY_FAILED_SEQUENCES),
                    n(schema::MESHLOG_DELIVERY_FAILED_TOTAL),
                ),
            ],
        );
    }

    /// Folds in a record read as [`Light`].
    pub fn add_light(&mut self, l: &Light) {
        let n = |v: &Option<Value>| v.as_ref().and_then(Value::as_u64);
        fn s(v: &Option<Value>) -> Option<&str> {
            v.as_ref().and_then(Value::as_str)
        }
        let time = n(&l.time).filter(|t| *t != 0).or(n(&l.observed));
        self.add_parts(
            time,
            n(&l.sequence),
            [
                (s(&l.overflow_seqs), n(&l.overflow_total)),
                (s(&l.failed_seqs), n(&l.failed_total)),
            ],
        );
    }

    fn add_parts(
        &mut self,
        time: Option<u64>,
        seq: Option<u64>,
        lost: [(Option<&str>, Option<u64>); 2],
    ) {
        if let Some(t) = time {
            widen(&mut self.time, t);
        }
        if let Some(s) = seq {
            push_range(&mut self.seqs, [s, s]);
        }
        let [(o_list, o_total), (f_list, f_total)] = lost;
        for list in [o_list, f_list].into_iter().flatten() {
            for r in parse_ranges(list) {
                push_range(&mut self.lost, r);
            }
        }
        if let Some(t) = o_total {
            self.dropped_overflow_total = self.dropped_overflow_total.max(t);
        }
        if let Some(t) = f_total {
            self.failed_total = self.failed_total.max(t);
        }
    }
}

/// `"3-9,15-15"` → `[[3,9],[15,15]]` (malformed parts are skipped).
pub fn parse_ranges(list: &str) -> Vec<[u64; 2]> {
    list.split(',')
        .filter_map(|p| {
            let (a, b) = p.trim().split_once('-').unwrap_or((p.trim(), p.trim()));
            let (a, b) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b).then_some([a, b])
        })
        .collect()
}

/// Appends `r` to sorted-by-arrival `ranges`, joining it to the last one when adjacent (the
/// common case: a VM's records arrive in order).
pub fn push_range(ranges: &mut Vec<[u64; 2]>, r: [u64; 2]) {
    if let Some(last) = ranges.last_mut()
        && r[0] <= last[1].saturating_add(1)
        && r[1].saturating_add(1) >= last[0]
    {
        last[0] = last[0].min(r[0]);
        last[1] = last[1].max(r[1]);
        return;
    }
    ranges.push(r);
}

fn widen(range: &mut Option<[u64; 2]>, t: u64) {
    match range {
        Some([a, b]) => {
            *a = (*a).min(t);
            *b = (*b).max(t);
        }
        None => *range = Some([t, t]),
    }
}

/// The lower-case words of `s`: runs of ASCII letters and digits (other bytes separate).
pub fn words(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
}

/// The words of a `text` needle that any matching value must contain whole: those with a
/// separator (or the needle's end being a separator) on both sides inside the needle.
pub fn whole_words(needle: &str) -> Vec<String> {
    let b = needle.as_bytes();
    let mut out = Vec::new();
    let mut start = None;
    for i in 0..=b.len() {
        let alnum = b.get(i).is_some_and(u8::is_ascii_alphanumeric);
        match (alnum, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                // Whole only when bounded by a separator inside the needle on both sides.
                if s > 0 && i < b.len() {
                    out.push(needle[s..i].to_ascii_lowercase());
                }
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// Builds one frame's entry from its records.
#[derive(Debug, Default)]
pub struct FrameBuilder {
    time: Option<[u64; 2]>,
    low: BTreeMap<&'static str, Option<BTreeSet<String>>>,
    items: BTreeSet<String>,
    vms: BTreeMap<String, VmEntry>,
}

impl FrameBuilder {
    /// Folds one record in.
    pub fn add(&mut self, r: &Record) {
        if let Some(t) = record_time_ns(r) {
            widen(&mut self.time, t);
        }
        for name in LOW_FIELDS {
            let slot = self
                .low
                .entry(name)
                .or_insert_with(|| Some(BTreeSet::new()));
            let keys: &[&str] = match *name {
                "service" => &[field::SERVICE],
                "namespace" => &[field::NAMESPACE, field::K8S_NAMESPACE],
                "tenant" => &[field::TENANT],
                "status" => &[field::STATUS],
                _ => &[field::METHOD],
            };
            for k in keys {
                if let (Some(set), Some(v)) = (slot.as_mut(), r.get(*k)) {
                    let v = value_str(v);
                    let v = if *name == "method" {
                        v.to_ascii_uppercase()
                    } else {
                        v.into_owned()
                    };
                    set.insert(v);
                    if set.len() > MAX_LOW_VALUES {
                        *slot = None;
                    }
                }
            }
        }
        for (tag, key) in [
            ("t:", field::TRACE_ID),
            ("r:", field::REQUEST_ID),
            ("p:", field::PRINCIPAL),
            ("c:", field::CLIENT),
            ("e:", field::ENDUSER),
            ("o:", field::ROUTE),
        ] {
            if let Some(v) = r.get(key) {
                let v = value_str(v);
                let v = if key == field::TRACE_ID {
                    v.to_ascii_lowercase()
                } else {
                    v.into_owned()
                };
                self.items.insert(format!("{tag}{v}"));
            }
        }
        for v in r.values() {
            for w in words(&value_str(v)) {
                self.items.insert(format!("w:{w}"));
            }
        }
        if let Some(vm) = r.get(field::VM_ID) {
            self.vms
                .entry(value_str(vm).into_owned())
                .or_default()
                .add(r);
        }
    }

    /// The entry (as [`FrameBuilder::finish`]), also folded into `summary`.
    pub fn finish_into(
        mut self,
        offset: u64,
        crc: u32,
        records: u32,
        summary: &mut summary::Summary,
    ) -> FrameEntry {
        let items = std::mem::take(&mut self.items);
        self.finish_items(offset, crc, records, &items, Some(summary))
    }

    /// The entry, for the frame at `offset` with payload CRC `crc` and `records` records.
    pub fn finish(mut self, offset: u64, crc: u32, records: u32) -> FrameEntry {
        let items = std::mem::take(&mut self.items);
        self.finish_items(offset, crc, records, &items, None)
    }

    fn finish_items(
        self,
        offset: u64,
        crc: u32,
        records: u32,
        items: &BTreeSet<String>,
        summary: Option<&mut summary::Summary>,
    ) -> FrameEntry {
        let mut bloom = Bloom::with_items(items.len());
        for i in items {
            bloom.insert(i.as_bytes());
        }
        let mut low: BTreeMap<String, Option<BTreeSet<String>>> = LOW_FIELDS
            .iter()
            .map(|n| ((*n).to_owned(), Some(BTreeSet::new())))
            .collect();
        for (k, v) in self.low {
            low.insert(k.to_owned(), v);
        }
        if let Some(s) = summary {
            s.add_frame(offset, crc, records, self.time, &low, &self.vms, items);
        }
        FrameEntry {
            offset,
            crc,
            records,
            time: self.time,
            low: Lazy::new(&low),
            bloom,
            vms: Lazy::new(&self.vms),
        }
    }
}

impl FrameEntry {
    /// False when no record of this frame can match `filter` (true is "maybe": the records
    /// are read and matched one by one).
    pub fn may_match(&self, f: &Filter) -> bool {
        let names_low = !(f.service.is_empty()
            && f.namespace.is_empty()
            && f.tenant.is_empty()
            && f.method.is_empty()
            && f.status.is_empty());
        // Undecodable sets (a forged index) rule nothing out.
        let low = names_low
            .then(|| self.low.get())
            .flatten()
            .unwrap_or_default();
        low_and_bloom_may_match(self.time, &low, |i| self.bloom.may_contain(i), f)
    }

    /// Whether the frame may hold records in `[since, until)` (for "VMs in the range").
    pub fn overlaps(&self, since: Option<u64>, until: Option<u64>) -> bool {
        match self.time {
            None => since.is_none() && until.is_none(),
            Some([lo, hi]) => since.is_none_or(|s| hi >= s) && until.is_none_or(|u| lo < u),
        }
    }
}

/// False when no record with times in `time`, low-cardinality values in `low` and items
/// `may_contain` says may be there can match `f` (of a frame, or a whole segment's summary).
pub fn low_and_bloom_may_match(
    time: Option<[u64; 2]>,
    low: &BTreeMap<String, Option<BTreeSet<String>>>,
    may_contain: impl Fn(&[u8]) -> bool,
    f: &Filter,
) -> bool {
    if f.since_ns.is_some() || f.until_ns.is_some() {
        let Some([lo, hi]) = time else {
            return false;
        };
        if f.since_ns.is_some_and(|s| hi < s) || f.until_ns.is_some_and(|u| lo >= u) {
            return false;
        }
    }
    let low_ok = |name: &str, wanted: &[String]| {
        wanted.is_empty()
            || match low.get(name) {
                Some(Some(set)) => wanted.iter().any(|w| set.contains(w)),
                _ => true,
            }
    };
    if !(low_ok("service", &f.service)
        && low_ok("namespace", &f.namespace)
        && low_ok("tenant", &f.tenant)
        && low_ok("method", &f.method))
    {
        return false;
    }
    if !f.status.is_empty()
        && let Some(Some(set)) = low.get("status")
        && !set.iter().any(|c| {
            c.parse::<i64>()
                .is_ok_and(|c| f.status.iter().any(|s| s.matches(c)))
        })
    {
        return false;
    }
    let bloom_ok = |tag: &str, wanted: &[String]| {
        wanted.is_empty()
            || wanted
                .iter()
                .any(|w| may_contain(format!("{tag}{w}").as_bytes()))
    };
    bloom_ok("t:", &f.trace_id)
        && bloom_ok("r:", &f.request_id)
        && bloom_ok("p:", &f.principal)
        && bloom_ok("c:", &f.client)
        && bloom_ok("e:", &f.enduser)
        && bloom_ok("o:", &f.route)
        && f.text.iter().all(|needle| {
            whole_words(needle)
                .iter()
                .all(|w| may_contain(format!("w:{w}").as_bytes()))
        })
}

/// The summary section of segment `seq`'s index ([`file::decode_summary`]) with the segment's
/// length when indexed, when it reads back intact and its frame count and header digest equal
/// those of the segment's first frames (all of them unless `prefix`: the active segment).
pub fn load_summary(
    store_dir: &Path,
    seq: u64,
    segment: &Path,
    prefix: bool,
) -> Option<(u64, summary::Summary)> {
    let path = meshlog_format::layout::index_path(store_dir, seq);
    let (s_seq, len, sum) = match file::read_summary(&path) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(index = %path.display(), why = %e, "index summary not used");
            return None;
        }
    };
    if s_seq != seq {
        return None;
    }
    let mut scanner = SegmentScanner::open(segment).ok()?;
    if scanner.len() != len && !(prefix && len < scanner.len()) {
        return None;
    }
    let (mut frames, mut digest) = (0u64, 0u32);
    while scanner.position() < len {
        let raw = scanner.next_frame(false).ok()??;
        frames += 1;
        digest = summary::digest_step(
            digest,
            raw.offset,
            raw.header.payload_crc,
            raw.header.record_count,
        );
    }
    (scanner.position() == len && frames == sum.frames && digest == sum.digest)
        .then_some((len, sum))
}

/// Loads the index of segment `seq` at `path` from `store_dir`, if there is one that reads
/// back intact ([`file::decode`]) and matches the segment's frame headers exactly (a cheap walk
/// of the headers, payloads skipped); `None` means "rebuild", with the reason logged at debug
/// level.
pub fn load_checked(store_dir: &Path, seq: u64, segment: &Path) -> Option<SegmentIndex> {
    load(store_dir, seq, segment, false)
}

/// Like [`load_checked`], for the active (still growing) segment: the index may list only its
/// first frames ([`build::index_active`]); those must match the segment's first frame headers
/// exactly, the frames after them are read by the query.
pub fn load_checked_prefix(store_dir: &Path, seq: u64, segment: &Path) -> Option<SegmentIndex> {
    load(store_dir, seq, segment, true)
}

fn load(store_dir: &Path, seq: u64, segment: &Path, prefix: bool) -> Option<SegmentIndex> {
    let path = meshlog_format::layout::index_path(store_dir, seq);
    let bytes = std::fs::read(&path).ok()?;
    let why_not = |why: &dyn std::fmt::Display| {
        tracing::debug!(index = %path.display(), %why, "query index not used: rebuilding");
    };
    let idx = match file::decode(&bytes) {
        Ok(i) => i,
        Err(e) => {
            why_not(&e);
            return None;
        }
    };
    if idx.segment != seq {
        why_not(&"the index is of another segment");
        return None;
    }
    let digest = idx.frames.iter().fold(0, |d, e| {
        summary::digest_step(d, e.offset, e.crc, e.records)
    });
    if idx.summary.frames != idx.frames.len() as u64 || idx.summary.digest != digest {
        why_not(&"the summary does not match the frame entries");
        return None;
    }
    match matches_segment(&idx, segment, prefix) {
        Ok(()) => Some(idx),
        Err(why) => {
            why_not(&why);
            None
        }
    }
}

/// Whether `idx` lists exactly the frames of the segment file at `segment` (offset, payload
/// CRC and record count of each, and the file's length; with `prefix`, the frames up to the
/// length the index gives); `Err` says what differs.
fn matches_segment(idx: &SegmentIndex, segment: &Path, prefix: bool) -> Result<(), &'static str> {
    let mut scanner = SegmentScanner::open(segment).map_err(|_| "the segment does not open")?;
    if scanner.len() != idx.len && !(prefix && idx.len < scanner.len()) {
        return Err("segment length differs");
    }
    let mut entries = idx.frames.iter();
    while scanner.position() < idx.len {
        match scanner.next_frame(false) {
            Ok(Some(raw)) => {
                let ok = entries.next().is_some_and(|e| {
                    e.offset == raw.offset
                        && e.crc == raw.header.payload_crc
                        && e.records == raw.header.record_count
                });
                if !ok {
                    return Err("frames differ");
                }
            }
            Ok(None) => break,
            Err(_) => return Err("the segment does not scan"),
        }
    }
    if scanner.position() != idx.len {
        return Err("the indexed frames do not end where the index says");
    }
    if entries.next().is_some() {
        return Err("more entries than frames");
    }
    Ok(())
}

/// Writes `idx` for its segment into `store_dir` (durably replaced). A failure is returned for
/// the caller to log: a read-only data directory just means indexes are built in memory.
pub fn store(store_dir: &Path, idx: &SegmentIndex) -> std::io::Result<()> {
    let path = meshlog_format::layout::index_path(store_dir, idx.segment);
    std::fs::create_dir_all(meshlog_format::layout::index_dir(store_dir))?;
    fsutil::write_durably(&path, &file::encode(idx))
}

/// Writes `idx` like [`store`], without the fsyncs (for the active segment's index, rewritten
/// every few seconds: a torn file fails its checksum and is rebuilt).
pub fn store_quick(store_dir: &Path, idx: &SegmentIndex) -> std::io::Result<()> {
    let path = meshlog_format::layout::index_path(store_dir, idx.segment);
    std::fs::create_dir_all(meshlog_format::layout::index_dir(store_dir))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, file::encode(idx))?;
    std::fs::rename(&tmp, &path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: Value) -> Record {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn entry() -> FrameEntry {
        let mut b = FrameBuilder::default();
        for (i, (svc, status, trace)) in [
            ("checkout", 200, "aa"),
            ("checkout", 503, "bb"),
            ("cart", 404, "cc"),
        ]
        .iter()
        .enumerate()
        {
            b.add(&rec(json!({
                "time_unix_nano": 1000 + i as u64,
                "resource.service.name": svc,
                "resource.meshlog.vm.id": "vm1",
                "meshlog.sequence": i as u64 * 2,
                "http.response.status_code": status,
                "http.request.method": "get",
                "trace_id": format!("{trace:0>32}"),
                "url.path": "/api/payments/42",
            })));
        }
        b.finish(8, 1, 3)
    }

    fn filter(params: &[(&str, &str)]) -> Filter {
        Filter::from_params(params.iter().copied(), 10_000).unwrap()
    }

    #[test]
    fn frames_are_skipped_only_when_no_record_can_match() {
        let e = entry();
        for (p, may) in [
            (vec![("service", "checkout")], true),
            (vec![("service", "payments")], false),
            (vec![("status", "5xx")], true),
            (vec![("status", "3xx")], false),
            (vec![("method", "GET")], true),
            (vec![("method", "POST")], false),
            (vec![("trace-id", "000000000000000000000000000000bb")], true),
            (
                vec![("trace-id", "000000000000000000000000000000dd")],
                false,
            ),
            (vec![("text", "/payments/")], true),
            (vec![("text", "/refunds/")], false),
            // Not a whole word: the bloom cannot tell, so the frame is read.
            (vec![("text", "paym")], true),
            (vec![("tenant", "acme")], false),
        ] {
            assert_eq!(e.may_match(&filter(&p)), may, "{p:?}");
        }
        let mut since = Filter {
            since_ns: Some(1003),
            ..Filter::default()
        };
        assert!(!e.may_match(&since));
        since.since_ns = Some(1002);
        assert!(e.may_match(&since));
        let vm = &e.vms.get().unwrap()["vm1"];
        assert_eq!(vm.seqs, [[0, 0], [2, 2], [4, 4]]);
    }

    #[test]
    fn words_and_ranges_parse() {
        assert_eq!(whole_words("/api/payments/"), ["api", "payments"]);
        assert_eq!(whole_words("payments"), Vec::<String>::new());
        assert_eq!(whole_words("a b c"), ["b"]);
        assert_eq!(parse_ranges("3-9,15-15,x,7"), [[3, 9], [15, 15], [7, 7]]);
        let mut r = vec![];
        for s in [1, 2, 3, 5, 4] {
            push_range(&mut r, [s, s]);
        }
        // Only the last range is joined (the accounting merges the rest).
        assert_eq!(r, [[1, 3], [4, 5]]);
    }

    #[test]
    fn a_too_varied_low_field_is_never_used_to_skip() {
        let mut b = FrameBuilder::default();
        for i in 0..=MAX_LOW_VALUES {
            b.add(&rec(json!({ "resource.service.name": format!("s{i}") })));
        }
        let e = b.finish(8, 0, 1);
        assert_eq!(e.low.get().unwrap()["service"], None);
        assert!(e.may_match(&filter(&[("service", "other")])));
    }
}
