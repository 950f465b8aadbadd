//! The human-readable report: a summary of the store, its deletions and notes, then the
//! verdict and the findings. A finding explained by another (checkpoints whose roots differ
//! because of a changed frame) is printed under its cause, once, with the count.

use super::super::report::{DataDirReport, Finding, Kind, Report};
use meshlog_format::checkpoint_log::CHECKPOINT_LOG_FILE;
use meshlog_format::receipt::RECEIPTS_FILE;
use std::collections::HashMap;
use std::io::{self, Write};

/// At most this many findings of one kind are printed (all are in `--json`).
const SHOWN_PER_KIND: usize = 50;

fn plural(n: impl Into<u64>) -> &'static str {
    if n.into() == 1 { "" } else { "s" }
}

impl Report {
    /// The human-readable report.
    pub fn write_text(&self, out: &mut impl Write) -> io::Result<()> {
        self.write_summary(out)?;
        self.write_deletions(out)?;
        writeln!(
            out,
            "  checked in {:.2} s ({:.1} MB/s)",
            self.seconds, self.mb_per_s
        )?;
        for n in &self.notes {
            writeln!(out, "  note: {n}")?;
        }
        if self.intact {
            return writeln!(out, "INTACT");
        }
        writeln!(
            out,
            "NOT INTACT: {} finding{}",
            self.findings.len(),
            plural(self.findings.len() as u64)
        )?;
        write_findings(out, &self.findings)
    }

    /// Store, tree, checkpoints and receipts, a line each.
    fn write_summary(&self, out: &mut impl Write) -> io::Result<()> {
        match &self.class {
            Some(class) => writeln!(
                out,
                "meshlog verify: {} (retention class {class})",
                self.data_dir
            )?,
            None => writeln!(out, "meshlog verify: {}", self.data_dir)?,
        }
        writeln!(
            out,
            "  store: {} segment{}, {} frames, {} records, {:.1} MB",
            self.segments,
            plural(self.segments as u64),
            self.frames,
            self.records,
            self.bytes as f64 / 1e6
        )?;
        writeln!(
            out,
            "  Merkle tree: {} leaves, root {}",
            self.tree_size, self.root
        )?;
        let c = &self.checkpoints;
        let keys = if self.signatures_checked {
            format!("{} verified with {}", c.verified, c.keys.join(", "))
        } else {
            "signatures NOT checked (no --public-key)".into()
        };
        write!(
            out,
            "  checkpoints: {} in {CHECKPOINT_LOG_FILE}, {keys}",
            c.entries
        )?;
        match &c.latest {
            Some(l) => writeln!(
                out,
                "; latest #{}: {} leaves at {}",
                l.number, l.size, l.time
            )?,
            None => writeln!(out)?,
        }
        if let Some(r) = &self.receipts {
            writeln!(
                out,
                "  deletion receipts: {} in {RECEIPTS_FILE}, {} valid{}",
                r.entries,
                r.valid,
                if r.authenticated {
                    ""
                } else {
                    " in form only: signatures NOT checked (no --public-key)"
                }
            )?;
        }
        Ok(())
    }

    /// The segments deleted by policy, a line each.
    fn write_deletions(&self, out: &mut impl Write) -> io::Result<()> {
        if self.deletions.is_empty() {
            return Ok(());
        }
        writeln!(
            out,
            "  deleted by policy: {} segment{}, {} leaves{}",
            self.deleted_segments,
            plural(self.deleted_segments as u64),
            self.deleted_frames,
            if self.signatures_checked {
                " (receipts verified)"
            } else {
                " (NOT authenticated: no --public-key)"
            }
        )?;
        for d in &self.deletions {
            let leaves = match d.leaves {
                Some([a, b]) if a == b => format!("leaf {a}"),
                Some([a, b]) => format!("leaves {a}..{b}"),
                None => "leaves not placed".into(),
            };
            writeln!(
                out,
                "    {} {}: {leaves}, {} frame{}, {} record{}; {}; receipt at offset {}; \
                 record: {}",
                d.class,
                d.segment,
                d.frames,
                plural(d.frames),
                d.records,
                plural(d.records),
                d.rule,
                d.receipt_offset,
                d.record
            )?;
        }
        Ok(())
    }
}

/// The findings, at most [`SHOWN_PER_KIND`] of a kind; one explained by another is printed
/// under it, indented.
fn write_findings(out: &mut impl Write, findings: &[Finding]) -> io::Result<()> {
    let mut shown: HashMap<Kind, usize> = HashMap::new();
    for f in findings {
        let n = shown.entry(f.kind).or_default();
        *n += 1;
        if *n > SHOWN_PER_KIND {
            continue;
        }
        let indent = if f.cause.is_some() { "      => " } else { "  " };
        let more = if f.cause.is_some() {
            "         "
        } else {
            "      "
        };
        writeln!(out, "{indent}[{}] {}", f.kind.name(), finding_place(f))?;
        writeln!(out, "{more}{}", f.message)?;
    }
    let mut over: Vec<(&Kind, &usize)> =
        shown.iter().filter(|(_, n)| **n > SHOWN_PER_KIND).collect();
    over.sort();
    for (kind, n) in over {
        writeln!(
            out,
            "  ... and {} more [{}] findings (see --json)",
            n - SHOWN_PER_KIND,
            kind.name()
        )?;
    }
    Ok(())
}

impl DataDirReport {
    /// The human-readable report: each store's, then a line per store and the verdict.
    pub fn write_text(&self, out: &mut impl Write) -> io::Result<()> {
        let name = |r: &Report| match &r.class {
            Some(c) => format!("class {c}"),
            None => "the store without retention".to_owned(),
        };
        writeln!(
            out,
            "meshlog verify: {}: {} store{} ({})",
            self.data_dir,
            self.stores.len(),
            plural(self.stores.len() as u64),
            self.stores.iter().map(name).collect::<Vec<_>>().join(", ")
        )?;
        for r in &self.stores {
            writeln!(out)?;
            r.write_text(out)?;
        }
        writeln!(out)?;
        for n in &self.notes {
            writeln!(out, "note: {n}")?;
        }
        for r in &self.stores {
            let n = r.findings.len();
            if r.intact {
                writeln!(
                    out,
                    "  {}: INTACT ({} segment{}, {} deleted by policy)",
                    name(r),
                    r.segments,
                    plural(r.segments as u64),
                    r.deleted_segments
                )?;
            } else {
                writeln!(
                    out,
                    "  {}: NOT INTACT ({n} finding{})",
                    name(r),
                    plural(n as u64)
                )?;
            }
        }
        if self.intact {
            writeln!(out, "INTACT")
        } else {
            let bad: Vec<String> = self.stores.iter().filter(|r| !r.intact).map(name).collect();
            writeln!(out, "NOT INTACT: {}", bad.join(", "))
        }
    }
}

/// Where a finding is, in words: file, offset, checkpoints, leaves, records.
fn finding_place(f: &Finding) -> String {
    let mut parts = Vec::new();
    if let Some(file) = &f.file {
        parts.push(match f.offset {
            Some(o) => format!("{file} offset {o}"),
            None => file.clone(),
        });
    }
    match (f.checkpoints, f.count) {
        (Some([a, b]), Some(n)) if a != b => parts.push(format!("checkpoints #{a}..#{b} ({n})")),
        _ => {
            if let Some(c) = f.checkpoint {
                parts.push(format!("checkpoint #{c}"));
            }
        }
    }
    if let Some([a, b]) = f.sizes {
        parts.push(if a == b {
            format!("size {a}")
        } else {
            format!("sizes {a}..{b}")
        });
    }
    if let Some(l) = f.leaf {
        parts.push(format!("leaf {l}"));
    }
    if let Some([a, b]) = f.leaves {
        parts.push(if a == b {
            format!("leaf {a}")
        } else {
            format!("leaves {a}..{b}")
        });
    }
    if let Some(r) = f.records {
        let mut s = format!("{r} record{}", plural(r));
        if let Some(b) = &f.batch_id {
            s.push_str(&format!(", batch id {b}"));
        }
        if let Some(ids) = &f.record_ids {
            s.push_str(&format!(", {ids}"));
        }
        parts.push(s);
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grouped_finding_is_printed_under_its_cause() {
        let mut cause = Finding::new(Kind::Modified, "payload CRC mismatch".into());
        cause.file = Some("0000000000000002.seg".into());
        cause.offset = Some(8);
        cause.leaf = Some(4);
        let mut group = Finding::new(
            Kind::CheckpointRootMismatch,
            "3 checkpoints from size 6 to size 12 do not match".into(),
        );
        group.file = Some(CHECKPOINT_LOG_FILE.into());
        group.checkpoint = Some(2);
        group.checkpoints = Some([2, 4]);
        group.sizes = Some([6, 12]);
        group.count = Some(3);
        group.cause = Some(crate::verify::report::Cause::of(0, &cause));
        let mut out = Vec::new();
        write_findings(&mut out, &[cause, group]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "  [modified] 0000000000000002.seg offset 8, leaf 4\n      payload CRC mismatch\n      \
             => [checkpoint_root_mismatch] checkpoints.log, checkpoints #2..#4 (3), sizes \
             6..12\n         3 checkpoints from size 6 to size 12 do not match\n"
        );
    }
}
