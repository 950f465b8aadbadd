//! Checking a signed report offline: `meshlog verify-report FILE --public-key KEY`. Written to
//! be read by an auditor; it needs the file and the collector's public verifier key, nothing
//! else (no data directory, no network).
//!
//! # What a signed report looks like
//!
//! A report file is its **body** followed by a **signature trailer**:
//!
//! - HTML: the body is the whole document up to and including `</html>\n`; the trailer is
//!   `<!-- meshlog-report-signature\n` + NOTE + `-->\n`.
//! - JSON: the body is `{"report": ` + the report object; the trailer is
//!   `,\n"signature": ` + NOTE as a JSON string + `\n}\n`, so the whole file is one JSON object
//!   with the members `report` and `signature`.
//!
//! NOTE is a C2SP signed note (the format of meshlog's checkpoints and deletion receipts,
//! Ed25519 with the collector's `[integrity] signing_key`) whose text is the [`Statement`]:
//!
//! ```text
//! meshlog.report v1
//! format html
//! sha256 <64 hex: SHA-256 of the body bytes>
//! period <from, RFC 3339> <to, RFC 3339>
//! tenant <tenant, or ->
//! generated <RFC 3339>
//!
//! — <key name> <base64(key id || signature)>
//! ```
//!
//! # What is checked, in order
//!
//! 1. the file contains exactly one trailer, at its very end, in the form above (re-rendered
//!    from the note it must give the same bytes, so nothing can hide after it);
//! 2. the note's signature verifies with the given public key;
//! 3. the note's text is a statement in the form above;
//! 4. the SHA-256 of the body equals the signed `sha256`, so changing any byte of the body
//!    fails here, and any byte of the note fails at 2.
//!
//! The same statement (and its SHA-256) is appended to the log as a `meshlog.report` record
//! when the report is made, so the log itself shows which reports were issued.

use meshlog_tlog::checkpoint::{NoteError, open_note};
use meshlog_tlog::keys::VerifierKey;
use sha2::{Digest, Sha256};

/// The line that starts an HTML signature trailer.
pub const HTML_MARKER: &str = "<!-- meshlog-report-signature\n";
/// The end of an HTML signature trailer.
pub const HTML_END: &str = "-->\n";
/// The bytes between a JSON body and its note string.
pub const JSON_MARKER: &str = ",\n\"signature\": ";
/// The end of a JSON report.
pub const JSON_END: &str = "\n}\n";
/// The first line of a statement.
pub const HEADER: &str = "meshlog.report v1";

/// A report's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Self-contained HTML.
    Html,
    /// JSON for GRC tools.
    Json,
}

impl Format {
    /// `html` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Json => "json",
        }
    }

    /// The trailer that carries `note`.
    pub fn trailer(self, note: &str) -> String {
        match self {
            Format::Html => format!("{HTML_MARKER}{note}{HTML_END}"),
            Format::Json => {
                let s = serde_json::to_string(note).unwrap_or_default();
                format!("{JSON_MARKER}{s}{JSON_END}")
            }
        }
    }
}

/// What a report's signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The body's format.
    pub format: Format,
    /// SHA-256 of the body, hex.
    pub sha256: String,
    /// Period start, RFC 3339.
    pub from: String,
    /// Period end, RFC 3339.
    pub to: String,
    /// The tenant, or `-`.
    pub tenant: String,
    /// When generated, RFC 3339.
    pub generated: String,
}

impl Statement {
    /// The signed text.
    pub fn text(&self) -> String {
        format!(
            "{HEADER}\nformat {}\nsha256 {}\nperiod {} {}\ntenant {}\ngenerated {}\n",
            self.format.as_str(),
            self.sha256,
            self.from,
            self.to,
            self.tenant,
            self.generated
        )
    }

    /// Parses the signed text strictly: every line, in order, nothing else.
    pub fn parse(text: &str) -> Result<Statement, VerifyError> {
        let bad = |what: &'static str| VerifyError::Statement(what);
        let mut lines = text.strip_suffix('\n').unwrap_or(text).split('\n');
        let mut field = |name: &'static str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .map(str::to_owned)
                .ok_or(bad(name))
        };
        if field("meshlog.report")? != "v1" {
            return Err(bad("meshlog.report v1"));
        }
        let format = match field("format")?.as_str() {
            "html" => Format::Html,
            "json" => Format::Json,
            _ => return Err(bad("format")),
        };
        let sha256 = field("sha256")?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("sha256"));
        }
        let period = field("period")?;
        let (from, to) = period.split_once(' ').ok_or(bad("period"))?;
        let (from, to) = (from.to_owned(), to.to_owned());
        let tenant = field("tenant")?;
        let generated = field("generated")?;
        let s = Statement {
            format,
            sha256,
            from,
            to,
            tenant,
            generated,
        };
        if s.text() != text {
            return Err(bad("no other lines"));
        }
        Ok(s)
    }
}

/// Why a report does not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No signature trailer at the end of the file.
    #[error(
        "no meshlog report signature at the end of the file (not a signed meshlog report, or \
         cut short)"
    )]
    NoSignature,
    /// The trailer is not in its exact form.
    #[error("the signature trailer is malformed: {0}")]
    Trailer(&'static str),
    /// The signature does not verify.
    #[error(
        "the signature does NOT verify with this key ({0}): the signature was altered or made with another key"
    )]
    Signature(#[from] NoteError),
    /// The signed text is not a statement.
    #[error("the signed statement is malformed at its {0} line")]
    Statement(&'static str),
    /// The trailer's kind does not match the statement's format.
    #[error("the file is {found} but the signature was made for a {signed} report")]
    FormatMismatch {
        /// From the trailer.
        found: &'static str,
        /// From the statement.
        signed: &'static str,
    },
    /// The body changed.
    #[error(
        "the report was ALTERED: its content hashes to SHA-256 {actual}, the signature is for {signed}"
    )]
    Altered {
        /// SHA-256 of the body as found.
        actual: String,
        /// As signed.
        signed: String,
    },
}

/// Splits a signed report into its body, format and note.
pub fn split(file: &[u8]) -> Result<(&[u8], Format, String), VerifyError> {
    let find = |marker: &str| {
        file.windows(marker.len())
            .rposition(|w| w == marker.as_bytes())
    };
    let (pos, format) = match (find(HTML_MARKER), find(JSON_MARKER)) {
        (Some(h), Some(j)) if h > j => (h, Format::Html),
        (Some(h), None) => (h, Format::Html),
        (_, Some(j)) => (j, Format::Json),
        (None, None) => return Err(VerifyError::NoSignature),
    };
    let (body, trailer) = file.split_at(pos);
    let trailer = std::str::from_utf8(trailer).map_err(|_| VerifyError::Trailer("not UTF-8"))?;
    let note = match format {
        Format::Html => trailer
            .strip_prefix(HTML_MARKER)
            .and_then(|t| t.strip_suffix(HTML_END))
            .map(str::to_owned)
            .ok_or(VerifyError::Trailer(
                "expected the note and \"-->\" at the end",
            ))?,
        Format::Json => {
            let s = trailer
                .strip_prefix(JSON_MARKER)
                .and_then(|t| t.strip_suffix(JSON_END))
                .ok_or(VerifyError::Trailer(
                    "expected the note string and \"}\" at the end",
                ))?;
            serde_json::from_str::<String>(s)
                .map_err(|_| VerifyError::Trailer("the signature is not one JSON string"))?
        }
    };
    // Exactly the bytes the signer wrote: nothing extra hides in the trailer.
    if format.trailer(&note) != trailer {
        return Err(VerifyError::Trailer("it is not in its canonical form"));
    }
    Ok((body, format, note))
}

/// Checks a signed report with the collector's verifier key; the statement when it holds.
pub fn verify_report(file: &[u8], key: &VerifierKey) -> Result<Statement, VerifyError> {
    let (body, format, note) = split(file)?;
    let text = open_note(note.as_bytes(), key)?;
    let statement = Statement::parse(text)?;
    if statement.format != format {
        return Err(VerifyError::FormatMismatch {
            found: format.as_str(),
            signed: statement.format.as_str(),
        });
    }
    let actual = hex::encode(Sha256::digest(body));
    if actual != statement.sha256 {
        return Err(VerifyError::Altered {
            actual,
            signed: statement.sha256,
        });
    }
    Ok(statement)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use meshlog_tlog::checkpoint::sign_note;
    use meshlog_tlog::keys::SignerKey;

    fn signed(format: Format, body: &[u8], key: &SignerKey) -> Vec<u8> {
        let st = Statement {
            format,
            sha256: hex::encode(Sha256::digest(body)),
            from: "2026-01-01T00:00:00Z".into(),
            to: "2026-02-01T00:00:00Z".into(),
            tenant: "-".into(),
            generated: "2026-02-02T00:00:00Z".into(),
        };
        let note = sign_note(&st.text(), key).unwrap();
        let mut f = body.to_vec();
        f.extend_from_slice(format.trailer(&note).as_bytes());
        f
    }

    #[test]
    fn changed_bytes_and_anything_appended_fail_and_a_good_report_passes() {
        let key = SignerKey::generate("test.example/log").unwrap();
        let other = SignerKey::generate("test.example/log").unwrap();
        for (format, body) in [
            (
                Format::Html,
                &b"<!DOCTYPE html><html><body>42 reads</body></html>\n"[..],
            ),
            (Format::Json, &b"{\"report\": {\"rows\": 42}"[..]),
        ] {
            let file = signed(format, body, &key);
            let st = verify_report(&file, &key.verifier()).unwrap();
            assert_eq!((st.format, st.tenant.as_str()), (format, "-"));
            if format == Format::Json {
                let v: serde_json::Value = serde_json::from_slice(&file).unwrap();
                assert_eq!(v["report"]["rows"], 42);
            }
            // Every fifth byte, body and trailer (Ed25519 is slow in a debug build).
            for i in (0..file.len()).step_by(5) {
                let mut bad = file.clone();
                bad[i] ^= 0x20;
                assert!(
                    verify_report(&bad, &key.verifier()).is_err(),
                    "byte {i} of {format:?} changed and still valid"
                );
            }
            let mut longer = file.clone();
            longer.extend_from_slice(b" ");
            assert!(verify_report(&longer, &key.verifier()).is_err());
            assert!(matches!(
                verify_report(&file, &other.verifier()),
                Err(VerifyError::Signature(_))
            ));
            assert!(matches!(
                verify_report(body, &key.verifier()),
                Err(VerifyError::NoSignature)
            ));
        }
        // Another body under a valid trailer: named as altered.
        let file = signed(Format::Html, b"<html>1</html>\n", &key);
        let mut swapped = b"<html>2</html>\n".to_vec();
        swapped.extend_from_slice(&file[15..]);
        assert!(matches!(
            verify_report(&swapped, &key.verifier()),
            Err(VerifyError::Altered { .. })
        ));
    }
}
