//! Signing a rendered report with the collector's signing key (the `[integrity] signing_key`
//! that signs checkpoints and deletion receipts): the body's SHA-256 goes into a
//! [`Statement`], signed as a C2SP note and appended as the trailer [`crate::verify`]
//! describes.

use crate::model::Report;
use crate::verify::{Format, Statement};
use meshlog_tlog::checkpoint::{NoteError, sign_note};
use meshlog_tlog::keys::SignerKey;
use sha2::{Digest, Sha256};

/// A signed report.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The file's bytes: body and trailer.
    pub bytes: Vec<u8>,
    /// What was signed.
    pub statement: Statement,
    /// The signed note.
    pub note: String,
}

/// Signs `body` (the rendered `report` in `format`) with `key`.
pub fn sign(
    report: &Report,
    format: Format,
    body: Vec<u8>,
    key: &SignerKey,
) -> Result<Signed, NoteError> {
    let statement = Statement {
        format,
        sha256: hex::encode(Sha256::digest(&body)),
        from: report.period.from.clone(),
        to: report.period.to.clone(),
        tenant: report
            .tenant
            .clone()
            .unwrap_or_else(|| "-".into())
            .replace(char::is_control, "?"),
        generated: report.generated_at.clone(),
    };
    let note = sign_note(&statement.text(), key)?;
    let mut bytes = body;
    bytes.extend_from_slice(format.trailer(&note).as_bytes());
    Ok(Signed {
        bytes,
        statement,
        note,
    })
}

/// The JSON body: `{"report": ` and the report (the trailer closes the object).
pub fn json_body(report: &Report) -> Vec<u8> {
    let mut b = b"{\"report\": ".to_vec();
    // A report is plain data (strings, numbers, maps with string keys): it always serialises.
    b.extend(serde_json::to_vec_pretty(report).unwrap_or_default());
    b
}
