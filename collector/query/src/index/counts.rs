//! Precomputed counts in a segment's index: how many records there are per minute and per
//! combination of the low-cardinality fields (service, namespace, tenant, status, method). An
//! aggregate whose filter and group-by use only those fields (and whose buckets are whole
//! minutes) takes the minutes its time range covers whole from here instead of reading the
//! segment; only the records of partly covered minutes, the frames the index does not list,
//! and segments without an index are read. Like the rest of the index it is a cache checked
//! against the segment's frame headers, never evidence.

use crate::filter::{Filter, Record, field, record_time_ns, value_str};
use crate::params::QueryParams;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// One minute, in ns.
pub const MINUTE_NS: u64 = 60_000_000_000;
/// More distinct rows than this in a segment and its counts are not kept (aggregates then read
/// the segment).
pub const MAX_ROWS: usize = 1 << 20;

/// The counts of one segment (of the frames its index lists).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// The distinct field values; a row refers to `values[i - 1]` by `i`, 0 being "absent".
    pub values: Vec<String>,
    /// One row per distinct (minute, fields) combination.
    pub rows: Vec<CountRow>,
}

/// How many records share one minute and one value of each field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CountRow {
    /// Minute number since the epoch (record time / 60 s) plus one; 0: the record has no time.
    pub minute: u64,
    /// `resource.service.name`.
    pub service: u32,
    /// `resource.service.namespace`.
    pub namespace: u32,
    /// `resource.k8s.namespace.name`.
    pub k8s_namespace: u32,
    /// `resource.meshlog.tenant`.
    pub tenant: u32,
    /// `http.response.status_code` (always an integer where present, else no counts are kept).
    pub status: u32,
    /// `http.request.method` (always a string where present, else no counts are kept).
    pub method: u32,
    /// Records.
    pub count: u64,
}

/// Builds a segment's [`Counts`] record by record.
#[derive(Debug, Default)]
pub struct CountsBuilder {
    values: HashMap<String, u32>,
    order: Vec<String>,
    rows: HashMap<CountRow, u64>,
    /// A record the counts cannot describe exactly was seen (or too many rows).
    spoiled: bool,
}

impl CountsBuilder {
    /// Continues from `counts` (the index of a growing segment's first frames).
    pub fn from_counts(counts: Counts) -> CountsBuilder {
        let mut b = CountsBuilder::default();
        for v in counts.values {
            b.id(&v);
        }
        for r in counts.rows {
            *b.rows.entry(CountRow { count: 0, ..r }).or_default() += r.count;
        }
        b
    }

    fn id(&mut self, v: &str) -> u32 {
        if let Some(i) = self.values.get(v) {
            return *i;
        }
        self.order.push(v.to_owned());
        let i = self.order.len() as u32;
        self.values.insert(v.to_owned(), i);
        i
    }

    /// Folds one record in.
    pub fn add(&mut self, r: &Record) {
        if self.spoiled {
            return;
        }
        let status = match r.get(field::STATUS) {
            None => None,
            Some(v) if v.as_i64().is_some() => Some(value_str(v)),
            Some(_) => {
                self.spoiled = true;
                return;
            }
        };
        let method = match r.get(field::METHOD) {
            None => None,
            Some(Value::String(m)) => Some(m.as_str()),
            Some(_) => {
                self.spoiled = true;
                return;
            }
        };
        let mut id = |k: &str| r.get(k).map_or(0, |v| self.id(&value_str(v)));
        let row = CountRow {
            minute: record_time_ns(r).map_or(0, |t| t / MINUTE_NS + 1),
            service: id(field::SERVICE),
            namespace: id(field::NAMESPACE),
            k8s_namespace: id(field::K8S_NAMESPACE),
            tenant: id(field::TENANT),
            status: status.map_or(0, |s| self.id(&s)),
            method: method.map_or(0, |m| self.id(m)),
            count: 0,
        };
        *self.rows.entry(row).or_default() += 1;
        if self.rows.len() > MAX_ROWS {
            self.spoiled = true;
            self.rows = HashMap::new();
        }
    }

    /// The counts; `None` when some record could not be counted exactly.
    pub fn finish(self) -> Option<Counts> {
        if self.spoiled {
            return None;
        }
        let mut rows: Vec<CountRow> = self
            .rows
            .into_iter()
            .map(|(r, count)| CountRow { count, ..r })
            .collect();
        rows.sort_unstable_by_key(|r| {
            (
                r.minute,
                r.service,
                r.namespace,
                r.k8s_namespace,
                r.tenant,
                r.status,
                r.method,
            )
        });
        Some(Counts {
            values: self.order,
            rows,
        })
    }
}

/// The group-by keys the counts answer (after `_` → `-`).
const GROUP_KEYS: &[&str] = &[
    "service",
    "namespace",
    "tenant",
    "status",
    "status-class",
    "method",
];

/// Time covered by counts: records at `lo <= t < hi` (ns), or all records (with or without a
/// time) when `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Covered {
    /// Everything, records without a time included (no time bounds).
    pub all: bool,
    /// Start, ns, a whole minute.
    pub lo: u64,
    /// End (exclusive), ns, a whole minute.
    pub hi: u64,
}

impl Covered {
    /// Whether a record at time `t` (None: no time) is counted by the counts.
    pub fn holds(&self, t: Option<u64>) -> bool {
        self.all || t.is_some_and(|t| self.lo <= t && t < self.hi)
    }

    /// Whether every record of a frame with time range `time` is.
    pub fn holds_frame(&self, time: Option<[u64; 2]>) -> bool {
        self.all || time.is_some_and(|[lo, hi]| self.lo <= lo && hi < self.hi)
    }
}

/// Whether the aggregate `q` can take counts from the index, and for which time: `None` when
/// its filter or group-by names anything the counts do not hold, or its buckets are not whole
/// minutes.
pub fn plan(q: &QueryParams) -> Option<Covered> {
    let f = &q.filter;
    let only_low = f.route.is_empty()
        && f.principal.is_empty()
        && f.client.is_empty()
        && f.trace_id.is_empty()
        && f.request_id.is_empty()
        && f.enduser.is_empty()
        && f.text.is_empty()
        && f.wheres.is_empty();
    let group_ok = q
        .group_by
        .as_ref()
        .is_none_or(|k| GROUP_KEYS.contains(&k.replace('_', "-").as_str()));
    let every_ok = q.every_ns.is_none_or(|e| e % MINUTE_NS == 0);
    if !(only_low && group_ok && every_ok) {
        return None;
    }
    if f.since_ns.is_none() && f.until_ns.is_none() {
        return Some(Covered {
            all: true,
            lo: 0,
            hi: u64::MAX,
        });
    }
    let lo = f.since_ns.map_or(0, |s| s.div_ceil(MINUTE_NS) * MINUTE_NS);
    let hi = f.until_ns.map_or(u64::MAX / MINUTE_NS * MINUTE_NS, |u| {
        u / MINUTE_NS * MINUTE_NS
    });
    (lo < hi).then_some(Covered { all: false, lo, hi })
}

impl Counts {
    fn value(&self, i: u32) -> Option<&str> {
        i.checked_sub(1)
            .and_then(|i| self.values.get(i as usize))
            .map(String::as_str)
    }

    /// Calls `add(bucket, key, count)` for every row inside `covered` that matches `f`, with
    /// the bucket and group-by key exactly as [`crate::aggregate`] computes them from records.
    /// `None` when a row refers to a value the counts do not hold (a damaged or forged index:
    /// the caller reads the segment instead).
    pub fn each_match(
        &self,
        f: &Filter,
        q: &QueryParams,
        covered: Covered,
        mut add: impl FnMut(Option<u64>, Option<String>, u64),
    ) -> Option<()> {
        let n = self.values.len() as u32;
        let group = q.group_by.as_ref().map(|k| k.replace('_', "-"));
        for r in &self.rows {
            if [
                r.service,
                r.namespace,
                r.k8s_namespace,
                r.tenant,
                r.status,
                r.method,
            ]
            .iter()
            .any(|i| *i > n)
            {
                return None;
            }
            let time = r.minute.checked_sub(1).map(|m| m * MINUTE_NS);
            if !covered.holds(time) {
                continue;
            }
            let str_in = |i: u32, wanted: &[String]| {
                wanted.is_empty() || self.value(i).is_some_and(|v| wanted.iter().any(|w| w == v))
            };
            let status = self.value(r.status).and_then(|s| s.parse::<i64>().ok());
            let ok = str_in(r.service, &f.service)
                && (str_in(r.namespace, &f.namespace) || str_in(r.k8s_namespace, &f.namespace))
                && str_in(r.tenant, &f.tenant)
                && (f.method.is_empty()
                    || self
                        .value(r.method)
                        .is_some_and(|m| f.method.iter().any(|w| w.eq_ignore_ascii_case(m))))
                && (f.status.is_empty()
                    || status.is_some_and(|c| f.status.iter().any(|s| s.matches(c))));
            if !ok {
                continue;
            }
            let bucket = q.every_ns.map(|e| time.unwrap_or(0) / e * e);
            let owned = |i: u32| self.value(i).map(str::to_owned);
            let key = match group.as_deref() {
                None => None,
                Some("service") => owned(r.service),
                Some("namespace") => owned(r.namespace).or_else(|| owned(r.k8s_namespace)),
                Some("tenant") => owned(r.tenant),
                Some("status") => owned(r.status),
                Some("status-class") => status.map(|c| format!("{}xx", c / 100)),
                Some(_) => owned(r.method),
            };
            add(bucket, key, r.count);
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use crate::aggregate::{Aggregate, aggregate};
    use crate::index::build::{index_active, index_closed};
    use crate::params::QueryParams;
    use crate::scan::ScanOptions;
    use meshlog_format::frame::{encode_frame, segment_header};
    use meshlog_format::layout;
    use serde_json::{Map, Value, json};
    use std::io::Write;
    use std::path::Path;

    const T0: u64 = 1_767_225_600_000_000_000;

    /// Records every 7.3 s from T0 + 13 s: minutes are split across frames and segments.
    fn rec(i: u64) -> Map<String, Value> {
        let status = [200, 503, 404, 500, 201][(i % 5) as usize];
        let mut v = json!({
            "time_unix_nano": T0 + 13_000_000_000 + i * 7_300_000_000,
            "resource.service.name": format!("svc-{}", i % 3),
            "resource.meshlog.vm.id": "vm1",
            "meshlog.sequence": i,
            "http.request.method": if i.is_multiple_of(4) { "post" } else { "GET" },
            "http.response.status_code": status,
            "trace_id": format!("{i:032x}"),
        });
        if i.is_multiple_of(6) {
            v["resource.k8s.namespace.name"] = json!("k8s-ns");
        }
        if i.is_multiple_of(9) {
            v["resource.service.namespace"] = json!("shop");
        }
        if i.is_multiple_of(11) {
            v["resource.meshlog.tenant"] = json!("t1");
        }
        if i.is_multiple_of(13) {
            v.as_object_mut().unwrap().remove("time_unix_nano");
        }
        let Value::Object(m) = v else { unreachable!() };
        m
    }

    fn append_frames(dir: &Path, seq: u64, recs: std::ops::Range<u64>, per_frame: u64) {
        std::fs::create_dir_all(layout::segments_dir(dir)).unwrap();
        let path = layout::segment_path(dir, seq);
        let new = !path.exists();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        if new {
            f.write_all(&segment_header()).unwrap();
        }
        let all: Vec<u64> = recs.collect();
        for chunk in all.chunks(per_frame as usize) {
            let rs: Vec<_> = chunk.iter().map(|i| rec(*i)).collect();
            f.write_all(encode_frame(&rs).unwrap().bytes()).unwrap();
        }
    }

    fn agg(dir: &Path, params: &[(&str, String)], no_index: bool) -> Aggregate {
        let q = QueryParams::from_params(params.iter().map(|(k, v)| (*k, v.as_str())), 0).unwrap();
        let opts = ScanOptions {
            no_index,
            no_write_index: true,
            ..ScanOptions::default()
        };
        aggregate(dir, None, &q, &opts).unwrap()
    }

    fn questions() -> Vec<Vec<(&'static str, String)>> {
        let at = |s: u64| meshlog_format::time::rfc3339(T0 + s * 1_000_000_000);
        let p = |v: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
            v.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
        };
        vec![
            p(&[("count", "true")]),
            p(&[("group-by", "status"), ("every", "1m")]),
            p(&[("group-by", "status_class"), ("every", "5m")]),
            p(&[("group-by", "service")]),
            p(&[("group-by", "namespace"), ("every", "2m")]),
            p(&[("group-by", "tenant")]),
            p(&[("group-by", "method"), ("method", "POST")]),
            p(&[("status", "5xx"), ("service", "svc-1"), ("count", "true")]),
            p(&[("namespace", "shop"), ("group-by", "status")]),
            p(&[("namespace", "k8s-ns"), ("tenant", "t1"), ("count", "true")]),
            // Not whole minutes: the edges are read, the middle counted.
            vec![
                ("since", at(95)),
                ("until", at(1_501)),
                ("group-by", "status".into()),
                ("every", "1m".into()),
            ],
            vec![
                ("since", at(61)),
                ("status", "404".into()),
                ("count", "true".into()),
            ],
            vec![("until", at(1_000)), ("group-by", "service".into())],
            // Not answerable from counts: read as before.
            p(&[("group-by", "status"), ("every", "30s")]),
            p(&[
                ("trace-id", "0000000000000000000000000000000c"),
                ("count", "true"),
            ]),
        ]
    }

    fn same_answers(dir: &Path, used_counts: bool) {
        for q in questions() {
            let fast = agg(dir, &q, false);
            let slow = agg(dir, &q, true);
            assert_eq!(fast.groups, slow.groups, "{q:?}");
            assert_eq!(fast.total, slow.total, "{q:?}");
            assert_eq!(
                fast.outcome.completeness, slow.outcome.completeness,
                "{q:?}"
            );
            assert!(
                slow.total > 0 || q.iter().any(|(k, _)| *k == "trace-id"),
                "{q:?}"
            );
            if used_counts && q == questions()[1] {
                // The whole-store aggregate read only the frames the indexes do not list.
                assert!(
                    fast.outcome.stats.frames_read < slow.outcome.stats.frames_read / 3,
                    "{:?} vs {:?}",
                    fast.outcome.stats,
                    slow.outcome.stats
                );
            }
        }
    }

    #[test]
    fn aggregates_from_counts_equal_a_full_scan_and_read_only_what_counts_do_not_hold() {
        let d = tempfile::tempdir().unwrap();
        append_frames(d.path(), 1, 0..120, 7);
        append_frames(d.path(), 2, 120..250, 9);
        append_frames(d.path(), 3, 250..300, 8);
        same_answers(d.path(), false);
        index_closed(d.path(), 0).unwrap();
        same_answers(d.path(), false);
        // The active segment's first frames indexed, then more written after them.
        assert_eq!(index_active(d.path()).unwrap(), 7);
        append_frames(d.path(), 3, 300..330, 8);
        same_answers(d.path(), true);
        assert_eq!(index_active(d.path()).unwrap(), 11);
        same_answers(d.path(), true);
        // Segment 3 grows and closes: its index is continued, not rebuilt from the start.
        append_frames(d.path(), 3, 330..345, 8);
        append_frames(d.path(), 4, 345..350, 8);
        let r = index_closed(d.path(), 0).unwrap();
        assert_eq!((r.built.clone(), r.kept), (vec![3], 2));
        same_answers(d.path(), true);
    }

    #[test]
    fn a_segment_with_a_record_counts_cannot_describe_keeps_no_counts_and_still_answers() {
        let d = tempfile::tempdir().unwrap();
        append_frames(d.path(), 1, 0..40, 7);
        let mut odd = rec(40);
        odd.insert("http.response.status_code".into(), json!("503"));
        std::fs::write(
            layout::segment_path(d.path(), 2),
            [&segment_header()[..], encode_frame(&[odd]).unwrap().bytes()].concat(),
        )
        .unwrap();
        append_frames(d.path(), 3, 41..50, 7);
        index_closed(d.path(), 0).unwrap();
        let idx = |seq| {
            crate::index::load_checked(d.path(), seq, &layout::segment_path(d.path(), seq)).unwrap()
        };
        assert!(idx(1).counts.is_some());
        assert!(idx(2).counts.is_none());
        same_answers(d.path(), false);
    }

    #[test]
    fn a_damaged_or_stale_active_index_is_not_used() {
        let d = tempfile::tempdir().unwrap();
        append_frames(d.path(), 1, 0..40, 7);
        assert_eq!(index_active(d.path()).unwrap(), 6);
        let path = layout::index_path(d.path(), 1);
        let good = std::fs::read(&path).unwrap();
        let seg = layout::segment_path(d.path(), 1);
        assert!(crate::index::load_checked_prefix(d.path(), 1, &seg).is_some());
        // Frames rewritten under the index (a rolled-back write replaced): not used.
        let bytes = std::fs::read(&seg).unwrap();
        std::fs::write(&seg, &bytes[..bytes.len() / 2]).unwrap();
        assert!(crate::index::load_checked_prefix(d.path(), 1, &seg).is_none());
        std::fs::write(&seg, &bytes).unwrap();
        let mut bad = good.clone();
        bad[good.len() / 2] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert!(crate::index::load_checked_prefix(d.path(), 1, &seg).is_none());
        same_answers(d.path(), false);
        // Rebuilt by the next run.
        assert_eq!(index_active(d.path()).unwrap(), 6);
        assert_eq!(std::fs::read(&path).unwrap(), good);
    }
}
