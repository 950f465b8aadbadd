//! Reading a frame's records for the report (when its payload is plain zstd NDJSON: verify
//! never opens a sealed one): which records a frame named in a finding holds, and the receipts
//! a deletion record carries.

use super::report::Finding;
use super::scanned::Scanned;
use crate::scan::ScannedFrame;
use meshlog_format::receipt::DELETION_EVENT;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// At most this many findings get their records read: a store broken everywhere need not be
/// decompressed whole for the report.
const DESCRIBED: usize = 1000;

/// Fills in which records the frames named in findings hold.
pub(super) fn describe_records(s: &Scanned<'_>, findings: &mut [Finding]) {
    let wanted: HashSet<(String, u64)> = findings
        .iter()
        .filter(|f| f.records.is_some())
        .take(DESCRIBED)
        .filter_map(|f| Some((f.file.clone()?, f.offset?)))
        .collect();
    if wanted.is_empty() {
        return;
    }
    let mut by_place: HashMap<(String, u64), &ScannedFrame> = HashMap::new();
    for (_, fr) in &s.frames {
        let key = (s.seg_name(fr.segment), fr.offset);
        if wanted.contains(&key) {
            by_place.insert(key, fr);
        }
    }
    for f in findings
        .iter_mut()
        .filter(|f| f.records.is_some())
        .take(DESCRIBED)
    {
        let (Some(name), Some(offset), Some(end)) = (&f.file, f.offset, f.end) else {
            continue;
        };
        let Some(fr) = by_place.get(&(name.clone(), offset)).copied() else {
            continue;
        };
        if fr.opaque || end != fr.offset + fr.len {
            continue;
        }
        let Some(seg) = s.segments.get(fr.segment) else {
            continue;
        };
        f.record_ids = record_ids(&seg.path, fr).ok().flatten();
    }
}

/// The frame's payload decompressed (`None`: not plain zstd, i.e. sealed).
fn payload_text(path: &Path, f: &ScannedFrame) -> io::Result<Option<Vec<u8>>> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(f.offset + u64::from(f.header_len)))?;
    let mut payload = vec![0u8; (f.len - u64::from(f.header_len)) as usize];
    file.read_exact(&mut payload)?;
    Ok(zstd::decode_all(payload.as_slice()).ok())
}

/// The JSON lines of `text`.
fn lines(text: &[u8]) -> impl Iterator<Item = serde_json::Value> + '_ {
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
}

/// The receipts carried by the deletion records in a frame (`None`: sealed).
pub(super) fn deletion_notes(path: &Path, f: &ScannedFrame) -> io::Result<Option<Vec<String>>> {
    let Some(text) = payload_text(path, f)? else {
        return Ok(None);
    };
    Ok(Some(
        lines(&text)
            .filter(|v| v.get("event_name").and_then(|e| e.as_str()) == Some(DELETION_EVENT))
            .filter_map(|v| {
                v.get("meshlog.retention.receipt")
                    .and_then(|n| n.as_str())
                    .map(str::to_owned)
            })
            .collect(),
    ))
}

/// Which records a frame holds: `vm <id> sequence <a>-<b>` per VM, else request ids.
fn record_ids(path: &Path, f: &ScannedFrame) -> io::Result<Option<String>> {
    let Some(text) = payload_text(path, f)? else {
        return Ok(None);
    };
    let mut vms: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut ids = Vec::new();
    for v in lines(&text) {
        if let (Some(vm), Some(seq)) = (
            v.get("resource.meshlog.vm.id").and_then(|x| x.as_str()),
            v.get("meshlog.sequence").and_then(|x| x.as_u64()),
        ) {
            let e = vms.entry(vm.to_owned()).or_insert((seq, seq));
            e.0 = e.0.min(seq);
            e.1 = e.1.max(seq);
        } else if let Some(id) = v.get("meshlog.request_id").and_then(|x| x.as_str()) {
            ids.push(id.to_owned());
        }
    }
    let mut parts: Vec<String> = vms
        .iter()
        .map(|(vm, (a, b))| format!("vm {vm} sequence {a}-{b}"))
        .collect();
    if !ids.is_empty() {
        let shown: Vec<&str> = ids.iter().take(5).map(String::as_str).collect();
        parts.push(format!(
            "request ids {}{}",
            shown.join(", "),
            if ids.len() > 5 {
                format!(" and {} more", ids.len() - 5)
            } else {
                String::new()
            }
        ));
    }
    Ok((!parts.is_empty()).then(|| parts.join("; ")))
}
