//! `meshlog receipts`: list and verify retention's signed deletion receipts.

use super::*;

/// What `meshlog receipts` found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiptTally {
    /// Receipts read (a damaged log counts as one invalid receipt).
    pub total: usize,
    /// Of which not valid.
    pub invalid: usize,
}

/// Lists and verifies every receipt in `data_dir`'s class directories with `key`, writing a
/// line per receipt (or, with `json`, one JSON document) to `out`. A torn last entry of a
/// receipt log (a crash during an append: nothing was deleted for it) is noted on stderr and
/// is not a failure.
pub fn receipts(
    data_dir: &Path,
    key: &VerifierKey,
    json: bool,
    out: &mut impl Write,
) -> io::Result<ReceiptTally> {
    if !data_dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("data directory {} does not exist", data_dir.display()),
        ));
    }
    let mut tally = ReceiptTally::default();
    let mut items = Vec::new();
    for (class, dir) in classes::class_dirs(data_dir)? {
        let path = dir.join(RECEIPTS_FILE);
        let log = match receipt::read_log(&path) {
            Ok(l) => l,
            Err(e) => {
                tally.total += 1;
                tally.invalid += 1;
                items.push(
                    serde_json::json!({"class": class, "valid": false, "error": e.to_string()}),
                );
                if !json {
                    writeln!(out, "INVALID {class} {}: {e}", path.display())?;
                }
                continue;
            }
        };
        if log.torn_bytes > 0 {
            eprintln!(
                "meshlog: {}: {} bytes at offset {} are a receipt torn by a crash (its segment \
                 was not deleted; the next sweep cuts them)",
                path.display(),
                log.torn_bytes,
                log.good_len
            );
        }
        for entry in &log.entries {
            tally.total += 1;
            match receipt::verify_logged(entry, Some(&class), key) {
                Ok(r) => {
                    if json {
                        items.push(receipt_json(&r, entry.offset));
                    } else {
                        writeln!(out, "{}", receipt_line(&r))?;
                    }
                }
                Err(e) => {
                    tally.invalid += 1;
                    if json {
                        items.push(serde_json::json!({
                            "class": class, "offset": entry.offset, "valid": false,
                            "error": e.to_string(),
                        }));
                    } else {
                        writeln!(
                            out,
                            "INVALID {class} {} offset {}: {e}",
                            path.display(),
                            entry.offset
                        )?;
                    }
                }
            }
        }
    }
    if json {
        let doc = serde_json::json!({
            "receipts": items,
            "valid": tally.total - tally.invalid,
            "invalid": tally.invalid,
        });
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
    }
    Ok(tally)
}

fn receipt_line(r: &Receipt) -> String {
    use meshlog_retention::policy::rfc3339;
    format!(
        "valid {} {} records={} frames={} bytes={} sha256={} observed={}..{} days={} swept={}",
        r.class,
        r.segment,
        r.records,
        r.frames,
        r.bytes,
        hex::encode(r.sha256),
        rfc3339(r.oldest_observed_unix_ns),
        rfc3339(r.newest_observed_unix_ns),
        r.retention_days,
        rfc3339(r.swept_unix_ns),
    )
}

fn receipt_json(r: &Receipt, offset: u64) -> serde_json::Value {
    serde_json::json!({
        "class": r.class,
        "offset": offset,
        "valid": true,
        "segment": r.segment,
        "bytes": r.bytes,
        "sha256": hex::encode(r.sha256),
        "frames": r.frames,
        "records": r.records,
        "leaves_sha256": hex::encode(r.leaves_sha256),
        "first_leaf": hex::encode(r.first_leaf),
        "last_leaf": hex::encode(r.last_leaf),
        "oldest_observed_unix_ns": r.oldest_observed_unix_ns,
        "newest_observed_unix_ns": r.newest_observed_unix_ns,
        "retention_days": r.retention_days,
        "swept_unix_ns": r.swept_unix_ns,
    })
}
