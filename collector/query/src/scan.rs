//! Walking a data directory for a query: every store (the data directory's own, then each
//! retention class), every segment oldest first, every frame; a closed segment's frames that
//! its index rules out are stepped over without reading their payload, the rest are read
//! (opened with the data key when sealed) and each record matched against the [`Filter`].
//! Every frame, read or not, is accounted for in the [`Completeness`] statement.

use crate::complete::{self, Completeness, StoreCoverage, VmAccount};
use crate::filter::{Filter, Record, field, record_time_ns, value_str};
use crate::index::counts::{CountsBuilder, Covered};
use crate::index::{self, FrameBuilder, Light, SegmentIndex, VmEntry};
use meshlog_format::encryption::DataKeys;
use meshlog_format::layout;
use meshlog_format::reader::{Frame, ReadError, ScanError, SegmentScanner};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::Path;
use std::str::FromStr;

/// Where a record is: store (0 = the data directory's own, then classes by name), segment,
/// frame offset, record within the frame. Ordered as the store is: oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Store number.
    pub store: u32,
    /// Segment sequence number.
    pub segment: u64,
    /// Frame offset in the segment.
    pub offset: u64,
    /// Record number in the frame.
    pub record: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}-{}-{}",
            self.store, self.segment, self.offset, self.record
        )
    }
}

impl FromStr for Position {
    type Err = ();

    /// The [`Display`](fmt::Display) form, `store-segment-offset-record`: the API's cursor.
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut it = s.split('-');
        let mut next = || it.next().ok_or(())?.parse::<u64>().map_err(|_| ());
        let p = Position {
            store: u32::try_from(next()?).map_err(|_| ())?,
            segment: next()?,
            offset: next()?,
            record: u32::try_from(next()?).map_err(|_| ())?,
        };
        if it.next().is_some() {
            return Err(());
        }
        Ok(p)
    }
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Reading the store failed (damage, a missing key, I/O).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A parameter was bad.
    #[error(transparent)]
    Param(#[from] crate::filter::FilterError),
}

/// Whether the visitor wants more records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    More,
    /// No more records wanted (the scan still accounts for the rest of the store, reading
    /// payloads only where no index says what they hold).
    Enough,
}

/// How to scan.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Skip frames with the indexes (false: read every frame, as `--no-index`).
    pub no_index: bool,
    /// Don't write the indexes built on the way (a read-only look).
    pub no_write_index: bool,
    /// Only records after this position.
    pub after: Option<Position>,
    /// Only records before this position.
    pub before: Option<Position>,
}

/// What a scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanStats {
    /// Frames in the stores.
    pub frames: u64,
    /// Frames whose payload was read.
    pub frames_read: u64,
    /// Frames an index ruled out.
    pub frames_skipped: u64,
    /// Records decoded and matched.
    pub records_examined: u64,
    /// Segments whose index was used (its summary, or its frame entries).
    pub indexes_used: u64,
    /// Segments stepped over on their index summary alone (frame entries not decoded).
    pub segments_summarised: u64,
    /// Closed segments whose index was (re)built.
    pub indexes_built: u64,
}

/// A scan's outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanOutcome {
    /// Counts.
    pub stats: ScanStats,
    /// The completeness statement.
    pub completeness: Completeness,
}

/// Scans `data_dir` for records matching `filter`, calling `visit` with each in store order.
pub fn scan(
    data_dir: &Path,
    keys: Option<&DataKeys>,
    filter: &Filter,
    opts: &ScanOptions,
    visit: impl FnMut(Position, Record) -> io::Result<Flow>,
) -> Result<ScanOutcome, QueryError> {
    scan_counted(data_dir, keys, filter, opts, &mut |_| None, visit)
}

/// Like [`scan`], offering `counted` the index of each indexed segment: when it takes the
/// records of a time range from the index's counts ([`Covered`]), the records of the frames
/// the index lists that lie in that range are not visited, and frames holding only such
/// records are not read. Records of frames the index does not list are always visited.
pub fn scan_counted(
    data_dir: &Path,
    keys: Option<&DataKeys>,
    filter: &Filter,
    opts: &ScanOptions,
    counted: &mut dyn FnMut(&SegmentIndex) -> Option<Covered>,
    mut visit: impl FnMut(Position, Record) -> io::Result<Flow>,
) -> Result<ScanOutcome, QueryError> {
    if !data_dir.is_dir() {
        return Err(ReadError::NoDataDir(data_dir.to_owned()).into());
    }
    let dirs = layout::store_dirs(data_dir).map_err(|source| ReadError::Io {
        path: layout::classes_dir(data_dir),
        source,
    })?;
    let mut out = ScanOutcome::default();
    let mut vms: BTreeMap<String, VmAccount> = BTreeMap::new();
    let mut enough = false;
    for (store_no, dir) in dirs.iter().enumerate() {
        let mut s = StoreScan {
            store: store_no as u32,
            dir,
            keys,
            filter,
            opts,
            stats: &mut out.stats,
            vms: &mut vms,
            enough: &mut enough,
            frames: 0,
            counted: &mut *counted,
        };
        s.run(&mut visit)?;
        let frames = s.frames;
        let deleted: u64 = layout::deleted_leaves_files(dir)
            .unwrap_or_default()
            .values()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len() / 32)
            .sum();
        let checkpoint = complete::newest_checkpoint(dir);
        let leaves = deleted + frames;
        let size = checkpoint.as_ref().map_or(0, |c| c.size);
        if store_no > 0 || frames > 0 || checkpoint.is_some() {
            out.completeness.stores.push(StoreCoverage {
                store: if store_no == 0 {
                    ".".into()
                } else {
                    dir.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                },
                after_checkpoint: leaves.saturating_sub(size),
                covers_checkpoint: leaves >= size,
                checkpoint,
                leaves,
            });
        }
    }
    out.completeness.vms = complete::vm_coverage(&vms);
    out.completeness.complete = out.completeness.stores.iter().all(|s| s.covers_checkpoint)
        && out
            .completeness
            .vms
            .iter()
            .all(|v| v.unexplained.is_empty());
    Ok(out)
}

struct StoreScan<'a> {
    store: u32,
    dir: &'a Path,
    keys: Option<&'a DataKeys>,
    filter: &'a Filter,
    opts: &'a ScanOptions,
    stats: &'a mut ScanStats,
    vms: &'a mut BTreeMap<String, VmAccount>,
    enough: &'a mut bool,
    frames: u64,
    counted: &'a mut dyn FnMut(&SegmentIndex) -> Option<Covered>,
}

impl StoreScan<'_> {
    fn run(
        &mut self,
        visit: &mut impl FnMut(Position, Record) -> io::Result<Flow>,
    ) -> Result<(), QueryError> {
        let seg_dir = layout::segments_dir(self.dir);
        let segs = match layout::list_segments(&seg_dir) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(ReadError::Io {
                    path: seg_dir,
                    source,
                }
                .into());
            }
        };
        let n = segs.len();
        for (i, seg) in segs.iter().enumerate() {
            let newest = i + 1 == n;
            self.segment(seg.seq, &seg.path, newest, visit)?;
        }
        Ok(())
    }

    /// Whether any record of the frame at `offset` may lie inside the cursor bounds.
    fn frame_in_position_range(&self, segment: u64, offset: u64) -> bool {
        let first = Position {
            store: self.store,
            segment,
            offset,
            record: 0,
        };
        let last = Position {
            record: u32::MAX,
            ..first
        };
        self.opts.after.is_none_or(|a| last > a) && self.opts.before.is_none_or(|b| first < b)
    }

    /// When the summary `sum` of segment `seq` says none of its records is wanted (the scan
    /// has enough, the cursor bounds exclude the segment, or no record can match), each of its
    /// VMs' "in the time range" flag as frame-by-frame accounting would give; `None` when its
    /// frames must be looked at.
    fn rules_out(&self, seq: u64, sum: &index::summary::Summary) -> Option<Vec<bool>> {
        let first = Position {
            store: self.store,
            segment: seq,
            offset: 0,
            record: 0,
        };
        let last = Position {
            offset: u64::MAX,
            record: u32::MAX,
            ..first
        };
        let in_bounds =
            self.opts.after.is_none_or(|a| last > a) && self.opts.before.is_none_or(|b| first < b);
        let unwanted = *self.enough || !in_bounds || !sum.may_match(self.filter);
        if !unwanted {
            return None;
        }
        sum.vms_in_range(self.filter.since_ns, self.filter.until_ns)
    }

    fn account(&mut self, vms: &BTreeMap<String, VmEntry>) {
        let (since, until) = (self.filter.since_ns, self.filter.until_ns);
        for (vm, e) in vms {
            let in_range = match e.time {
                Some([lo, hi]) => since.is_none_or(|s| hi >= s) && until.is_none_or(|u| lo < u),
                None => since.is_none() && until.is_none(),
            };
            self.vms.entry(vm.clone()).or_default().add(e, in_range);
        }
    }

    fn segment(
        &mut self,
        seq: u64,
        path: &Path,
        newest: bool,
        visit: &mut impl FnMut(Position, Record) -> io::Result<Flow>,
    ) -> Result<(), QueryError> {
        let closed = !newest;
        // The summary first: a segment none of whose indexed records can be wanted is stepped
        // over without decoding its frame entries (the active one: its indexed frames).
        let mut skip_to = None;
        if !self.opts.no_index
            && let Some((len, sum)) = index::load_summary(self.dir, seq, path, newest)
            && let Some(in_range) = self.rules_out(seq, &sum)
        {
            self.stats.indexes_used += 1;
            self.stats.segments_summarised += 1;
            self.frames += sum.frames;
            self.stats.frames += sum.frames;
            self.stats.frames_skipped += sum.frames;
            for ((vm, e), in_range) in sum.vms.iter().zip(in_range) {
                self.vms.entry(vm.clone()).or_default().add(e, in_range);
            }
            if closed {
                return Ok(());
            }
            skip_to = Some(len);
        }
        let mut idx = match (self.opts.no_index || skip_to.is_some(), closed) {
            (true, _) => None,
            (false, true) => index::load_checked(self.dir, seq, path),
            // The active segment's index lists its first frames only (when there is one).
            (false, false) => index::load_checked_prefix(self.dir, seq, path),
        };
        // The indexed frames' VMs: from the summary at once when it tells exactly, else from
        // each frame's entry (all decoded now: one that does not decode voids the index).
        let mut frame_vms: Vec<index::VmMap> = Vec::new();
        if let Some(i) = &idx {
            match i
                .summary
                .vms_in_range(self.filter.since_ns, self.filter.until_ns)
            {
                Some(flags) => {
                    for ((vm, e), in_range) in i.summary.vms.iter().zip(flags) {
                        self.vms.entry(vm.clone()).or_default().add(e, in_range);
                    }
                }
                None => match i.frames.iter().map(|e| e.vms.get()).collect() {
                    Some(v) => frame_vms = v,
                    None => idx = None,
                },
            }
        }
        if idx.is_some() {
            self.stats.indexes_used += 1;
        }
        let covered = idx.as_ref().and_then(|i| (self.counted)(i));
        // Without the index (`--no-index`) nothing is built either: a plain scan.
        let build = closed && idx.is_none() && !self.opts.no_index;
        let mut built: Vec<index::FrameEntry> = Vec::new();
        let mut built_counts = build.then(CountsBuilder::default);
        let mut sealed = false;
        let mut scanner = match SegmentScanner::open(path) {
            Ok(s) => s,
            Err(ScanError::Damage { damage, .. }) if newest && damage.is_torn() => return Ok(()),
            Err(e) => return Err(e.into_read_error(path).into()),
        };
        let len = scanner.len();
        if let Some(to) = skip_to {
            // Past the frames the summary accounted for (it was checked against them).
            while scanner.position() < to {
                match scanner.next_frame(false) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => return Err(e.into_read_error(path).into()),
                }
            }
        }
        let mut summary = index::summary::Summary::default();
        let mut k = 0usize;
        loop {
            let offset = scanner.position();
            let entry = idx.as_ref().and_then(|i| i.frames.get(k));
            let entry_vms = frame_vms.get(k);
            k += 1;
            let wanted = !*self.enough
                && self.frame_in_position_range(seq, offset)
                && entry.is_none_or(|e| {
                    e.may_match(self.filter) && !covered.is_some_and(|c| c.holds_frame(e.time))
                });
            // Records of this frame the index's counts already answered.
            let counted = covered.filter(|_| entry.is_some());
            if entry.is_some() && !wanted {
                match scanner.next_frame(false) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => return Err(e.into_read_error(path).into()),
                }
                self.frames += 1;
                self.stats.frames += 1;
                self.stats.frames_skipped += 1;
                if let Some(v) = entry_vms {
                    self.account(v);
                }
                continue;
            }
            let raw = match scanner.next_frame(true) {
                Ok(Some(raw)) => raw,
                Ok(None) => break,
                Err(ScanError::Damage { damage, .. }) if newest && damage.is_torn() => break,
                Err(e) => return Err(e.into_read_error(path).into()),
            };
            self.frames += 1;
            self.stats.frames += 1;
            self.stats.frames_read += 1;
            sealed |= raw.header.extensions.sealing.is_some();
            let crc = raw.header.payload_crc;
            let count = raw.header.record_count;
            let frame = Frame::from_raw(seq, path.to_owned(), raw, self.keys.cloned());
            let mut builder = build.then(FrameBuilder::default);
            let mut vms: BTreeMap<String, VmEntry> = BTreeMap::new();
            let mut bad = None;
            let mut no = 0u32;
            let (store, filter, opts) = (self.store, self.filter, self.opts);
            let (stats, enough) = (&mut *self.stats, &mut *self.enough);
            frame.for_each_line(|line| {
                let pos = Position {
                    store,
                    segment: seq,
                    offset,
                    record: no,
                };
                no += 1;
                stats.records_examined += 1;
                // Parse the whole record only when it may match or an index is being built.
                let candidate = wanted
                    && !*enough
                    && opts.after.is_none_or(|a| pos > a)
                    && opts.before.is_none_or(|b| pos < b)
                    && filter.line_may_match(line);
                let record: Option<Record> = if candidate || builder.is_some() {
                    match serde_json::from_slice(line) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            bad.get_or_insert(e);
                            return Ok(());
                        }
                    }
                } else {
                    None
                };
                if entry.is_none() {
                    match &record {
                        Some(r) => {
                            if let Some(vm) = r.get(field::VM_ID) {
                                vms.entry(value_str(vm).into_owned()).or_default().add(r);
                            }
                        }
                        None => match serde_json::from_slice::<Light>(line) {
                            Ok(l) => {
                                if let Some(vm) = &l.vm {
                                    vms.entry(value_str(vm).into_owned())
                                        .or_default()
                                        .add_light(&l);
                                }
                            }
                            Err(e) => {
                                bad.get_or_insert(e);
                                return Ok(());
                            }
                        },
                    }
                }
                if let (Some(b), Some(r)) = (builder.as_mut(), record.as_ref()) {
                    b.add(r);
                    if let Some(c) = built_counts.as_mut() {
                        c.add(r);
                    }
                }
                if candidate
                    && let Some(r) = record
                    && !counted.is_some_and(|c| c.holds(record_time_ns(&r)))
                    && filter.matches(&r)
                    && visit(pos, r)? == Flow::Enough
                {
                    *enough = true;
                }
                Ok(())
            })?;
            if let Some(e) = bad {
                return Err(ReadError::BadPayload {
                    path: path.to_owned(),
                    offset,
                    reason: format!("record is not a JSON object: {e}"),
                }
                .into());
            }
            match (entry, entry_vms) {
                (Some(_), Some(v)) => self.account(v),
                (Some(_), None) => {} // Accounted from the summary.
                (None, _) => self.account(&vms),
            }
            if let Some(b) = builder {
                built.push(b.finish_into(offset, crc, count, &mut summary));
            }
        }
        if build {
            self.stats.indexes_built += 1;
            if !sealed && !self.opts.no_write_index {
                let idx = SegmentIndex {
                    segment: seq,
                    len,
                    frames: built,
                    counts: built_counts.and_then(CountsBuilder::finish),
                    summary,
                };
                if let Err(e) = index::store(self.dir, &idx) {
                    let path = layout::index_path(self.dir, seq);
                    tracing::debug!(index = %path.display(), error = %e, "query index not written");
                }
            }
        }
        Ok(())
    }
}

/// The time of a record for bucketing, 0 when it has none.
pub fn time_of(r: &Record) -> u64 {
    record_time_ns(r).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{Order, QueryParams};
    use meshlog_format::frame::{FrameBuilder as Fb, encode_frame, segment_header};
    use meshlog_tlog::keys::{DataKey, Keyring};
    use serde_json::{Value, json};
    use std::io::Write;
    use std::sync::Arc;

    fn rec(svc: &str, seq: u64, t: u64) -> Record {
        let Value::Object(m) = json!({
            "time_unix_nano": t,
            "resource.service.name": svc,
            "resource.meshlog.vm.id": "vm1",
            "meshlog.sequence": seq,
            "http.response.status_code": 200,
        }) else {
            unreachable!()
        };
        m
    }

    fn write_segment(dir: &Path, seq: u64, frames: &[Vec<Record>], keys: Option<&Arc<Keyring>>) {
        let segs = layout::segments_dir(dir);
        std::fs::create_dir_all(&segs).unwrap();
        let mut f = std::fs::File::create(layout::segment_path(dir, seq)).unwrap();
        f.write_all(&segment_header()).unwrap();
        for fr in frames {
            let frame = match keys {
                None => encode_frame(fr).unwrap(),
                Some(k) => {
                    let mut b = Fb::with_encryption(u64::MAX, None, Some(k.clone())).unwrap();
                    for r in fr {
                        b.push(r).unwrap();
                    }
                    b.finish().unwrap()
                }
            };
            f.write_all(frame.bytes()).unwrap();
        }
    }

    /// seg 1: a(0) b(1) | c(2); seg 2: c(3); seg 3 (active): a(5), with 4 missing.
    fn store(dir: &Path, keys: Option<&Arc<Keyring>>) {
        write_segment(
            dir,
            1,
            &[
                vec![rec("a", 0, 10), rec("b", 1, 11)],
                vec![rec("c", 2, 12)],
            ],
            keys,
        );
        write_segment(dir, 2, &[vec![rec("c", 3, 13)]], keys);
        write_segment(dir, 3, &[vec![rec("a", 5, 15)]], keys);
    }

    fn services(dir: &Path, q: &QueryParams, keys: Option<&DataKeys>) -> (Vec<String>, ScanStats) {
        let mut out = Vec::new();
        let l = crate::records::list(dir, keys, q, &ScanOptions::default(), |_, r| {
            out.push(format!(
                "{}{}",
                r["resource.service.name"].as_str().unwrap(),
                r["meshlog.sequence"]
            ));
            Ok(())
        })
        .unwrap();
        (out, l.outcome.stats)
    }

    fn q(params: &[(&str, &str)]) -> QueryParams {
        QueryParams::from_params(params.iter().copied(), 100).unwrap()
    }

    #[test]
    fn indexes_are_built_then_used_to_skip_and_rebuilt_when_damaged() {
        let d = tempfile::tempdir().unwrap();
        store(d.path(), None);
        let (got, st) = services(d.path(), &q(&[("service", "a")]), None);
        assert_eq!(got, ["a0", "a5"]);
        assert_eq!(
            (st.indexes_built, st.indexes_used, st.frames_skipped),
            (2, 0, 0)
        );
        assert!(layout::index_path(d.path(), 1).exists());
        assert!(
            !layout::index_path(d.path(), 3).exists(),
            "active segment indexed"
        );
        let (got, st) = services(d.path(), &q(&[("service", "a")]), None);
        assert_eq!(got, ["a0", "a5"]);
        assert_eq!(
            (st.indexes_built, st.indexes_used, st.frames_skipped),
            (0, 2, 2)
        );
        // A damaged index is rebuilt; one that no longer matches the frames is too.
        std::fs::write(layout::index_path(d.path(), 1), b"{not json").unwrap();
        let bytes = std::fs::read(layout::index_path(d.path(), 2)).unwrap();
        let mut idx = index::file::decode(&bytes).unwrap();
        idx.frames[0].crc ^= 1;
        std::fs::write(layout::index_path(d.path(), 2), index::file::encode(&idx)).unwrap();
        let (got, st) = services(d.path(), &q(&[("service", "c")]), None);
        assert_eq!(got, ["c2", "c3"]);
        assert_eq!((st.indexes_built, st.indexes_used), (2, 0));
        let (_, st) = services(d.path(), &q(&[("service", "c")]), None);
        assert_eq!((st.indexes_built, st.indexes_used), (0, 2));
    }

    #[test]
    fn indexes_built_at_close_are_used_and_a_flipped_byte_anywhere_changes_no_answer() {
        let d = tempfile::tempdir().unwrap();
        store(d.path(), None);
        // What the collector runs when a segment closes: no query has run yet.
        let r = index::build::index_closed(d.path(), 0).unwrap();
        assert_eq!(r.built, [1, 2]);
        let (got, st) = services(d.path(), &q(&[("service", "c")]), None);
        assert_eq!(got, ["c2", "c3"]);
        assert_eq!(
            (st.indexes_built, st.indexes_used, st.frames_skipped),
            (0, 2, 1)
        );
        let good = std::fs::read(layout::index_path(d.path(), 1)).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            std::fs::write(layout::index_path(d.path(), 1), &bad).unwrap();
            let opts = ScanOptions {
                no_write_index: true,
                ..ScanOptions::default()
            };
            for (svc, want) in [
                ("a", vec!["a0", "a5"]),
                ("b", vec!["b1"]),
                ("c", vec!["c2", "c3"]),
            ] {
                let mut got = Vec::new();
                let l =
                    crate::records::list(d.path(), None, &q(&[("service", svc)]), &opts, |_, r| {
                        got.push(format!("{svc}{}", r["meshlog.sequence"]));
                        Ok(())
                    })
                    .unwrap();
                assert_eq!(got, want, "byte {i} flipped");
                // The damaged index was not used: segment 1 was read and indexed in memory.
                assert_eq!(l.outcome.stats.indexes_built, 1, "byte {i} flipped");
            }
        }
        // A query rewrites it; the next one uses it again.
        let (_, st) = services(d.path(), &q(&[("service", "a")]), None);
        assert_eq!((st.indexes_built, st.indexes_used), (1, 1));
        assert_eq!(
            std::fs::read(layout::index_path(d.path(), 1)).unwrap(),
            good
        );
        let (_, st) = services(d.path(), &q(&[("service", "a")]), None);
        assert_eq!((st.indexes_built, st.indexes_used), (0, 2));
    }

    #[test]
    fn segments_ruled_out_by_their_summary_are_not_decoded_and_answer_as_a_full_scan() {
        let d = tempfile::tempdir().unwrap();
        // Three closed segments over separate times and services, one VM with a gap (seq 7),
        // then the active one.
        write_segment(
            d.path(),
            1,
            &[
                vec![rec("a", 0, 100), rec("a", 1, 110)],
                vec![rec("b", 2, 120)],
            ],
            None,
        );
        write_segment(
            d.path(),
            2,
            &[vec![rec("c", 3, 200)], vec![rec("c", 4, 210)]],
            None,
        );
        write_segment(
            d.path(),
            3,
            &[vec![rec("d", 5, 300), rec("d", 6, 310)]],
            None,
        );
        write_segment(d.path(), 4, &[vec![rec("e", 8, 400)]], None);
        index::build::index_closed(d.path(), 0).unwrap();
        index::build::index_active(d.path()).unwrap();
        let run = |p: &[(&str, &str)], no_index: bool| {
            let opts = ScanOptions {
                no_index,
                no_write_index: true,
                ..ScanOptions::default()
            };
            let mut got = Vec::new();
            let l = crate::records::list(d.path(), None, &q(p), &opts, |_, r| {
                got.push(r["meshlog.sequence"].as_u64().unwrap());
                Ok(())
            })
            .unwrap();
            (got, l.outcome)
        };
        let t = |ns: u64| meshlog_format::time::rfc3339(ns);
        for (p, summarised) in [
            (vec![("service", "c".to_owned())], 3),
            (vec![("service", "zz".to_owned())], 4),
            (vec![("trace-id", "ab".repeat(16))], 4),
            (vec![("since", t(200)), ("until", t(215))], 3),
            // Segment 1's VM times straddle `since`: its frames are looked at.
            (vec![("service", "zz".to_owned()), ("since", t(105))], 3),
            (
                vec![("service", "a".to_owned()), ("limit", "1".to_owned())],
                3,
            ),
        ] {
            let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (got, out) = run(&p, false);
            let (want, full) = run(&p, true);
            assert_eq!(got, want, "{p:?}");
            assert_eq!(out.completeness, full.completeness, "{p:?}");
            assert_eq!(out.stats.frames, full.stats.frames, "{p:?}");
            assert_eq!(out.stats.segments_summarised, summarised, "{p:?}");
        }
        // A summary that no longer matches the frame headers is not used.
        let path = layout::index_path(d.path(), 2);
        let mut idx = index::file::decode(&std::fs::read(&path).unwrap()).unwrap();
        idx.summary.digest ^= 1;
        std::fs::write(&path, index::file::encode(&idx)).unwrap();
        let (got, out) = run(&[("service", "zz")], false);
        assert!(got.is_empty());
        assert_eq!(out.stats.segments_summarised, 3);
        assert!(index::load_checked(d.path(), 2, &layout::segment_path(d.path(), 2)).is_none());
    }

    #[test]
    fn a_frame_entry_whose_vm_map_does_not_decode_voids_the_index_only_when_it_is_needed() {
        let d = tempfile::tempdir().unwrap();
        write_segment(
            d.path(),
            1,
            &[vec![rec("a", 0, 100)], vec![rec("b", 1, 200)]],
            None,
        );
        write_segment(d.path(), 2, &[vec![rec("c", 2, 300)]], None);
        index::build::index_closed(d.path(), 0).unwrap();
        let path = layout::index_path(d.path(), 1);
        let mut idx = index::file::decode(&std::fs::read(&path).unwrap()).unwrap();
        idx.frames[0].vms = index::lazy::Lazy::from_bytes(vec![0xff, 0xff]);
        idx.frames[0].low = index::lazy::Lazy::from_bytes(vec![0xff]);
        std::fs::write(&path, index::file::encode(&idx)).unwrap();
        let opts = ScanOptions {
            no_write_index: true,
            ..ScanOptions::default()
        };
        let t = meshlog_format::time::rfc3339;
        for (p, built) in [
            // The summary accounts for the VM: the frame maps are never decoded; the forged
            // low sets rule nothing out.
            (vec![("service", "b".to_owned())], 0),
            // The VM's time straddles `since`: the frame maps are needed, the index is void.
            (vec![("service", "b".to_owned()), ("since", t(150))], 1),
        ] {
            let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let mut got = Vec::new();
            let l = crate::records::list(d.path(), None, &q(&p), &opts, |_, r| {
                got.push(r["meshlog.sequence"].as_u64().unwrap());
                Ok(())
            })
            .unwrap();
            assert_eq!(got, [1], "{p:?}");
            assert_eq!(l.outcome.stats.indexes_built, built, "{p:?}");
            let vm = &l.outcome.completeness.vms[0];
            assert_eq!((vm.first, vm.last), (0, 2), "{p:?}");
        }
    }

    #[test]
    fn pages_follow_the_cursor_both_ways() {
        let d = tempfile::tempdir().unwrap();
        store(d.path(), None);
        let mut query = q(&[("limit", "2")]);
        let mut pages = Vec::new();
        loop {
            let mut page = Vec::new();
            let l =
                crate::records::list(d.path(), None, &query, &ScanOptions::default(), |_, r| {
                    page.push(r["meshlog.sequence"].as_u64().unwrap());
                    Ok(())
                })
                .unwrap();
            pages.push(page);
            match l.next_cursor {
                Some(c) => query.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(pages, [vec![0, 1], vec![2, 3], vec![5]]);
        let mut query = q(&[("limit", "3"), ("order", "newest")]);
        let (first, _) = services(d.path(), &query, None);
        assert_eq!(first, ["a5", "c3", "c2"]);
        let l = crate::records::list(d.path(), None, &query, &ScanOptions::default(), |_, _| {
            Ok(())
        })
        .unwrap();
        query.cursor = l.next_cursor;
        let (second, _) = services(d.path(), &query, None);
        assert_eq!(second, ["b1", "a0"]);
        assert_eq!(query.order, Order::Newest);
    }

    #[test]
    fn completeness_lists_the_gap_and_encrypted_stores_need_the_key_and_keep_no_index() {
        let d = tempfile::tempdir().unwrap();
        let ring = Keyring::new(vec![DataKey::new("k1", [7; 32]).unwrap()]).unwrap();
        let keys = DataKeys::new(ring, "data.keys".into());
        store(d.path(), Some(keys.keyring()));
        let (got, st) = services(d.path(), &q(&[("service", "c")]), Some(&keys));
        assert_eq!(got, ["c2", "c3"]);
        assert_eq!(st.indexes_built, 2);
        assert!(
            !layout::index_dir(d.path()).exists(),
            "index of sealed frames written"
        );
        let err = crate::records::list(d.path(), None, &q(&[]), &ScanOptions::default(), |_, _| {
            Ok(())
        })
        .unwrap_err();
        assert!(err.to_string().contains("no key file was given"), "{err}");
        let l = crate::records::list(
            d.path(),
            Some(&keys),
            &q(&[]),
            &ScanOptions::default(),
            |_, _| Ok(()),
        )
        .unwrap();
        let vm = &l.outcome.completeness.vms[0];
        assert_eq!((vm.first, vm.last, vm.gapless), (0, 5, false));
        assert_eq!(vm.unexplained, [[4, 4]]);
        assert!(!l.outcome.completeness.complete);
        assert_eq!(l.outcome.completeness.stores[0].leaves, 4);
    }
}
