//! Witness cosignatures on checkpoints, as C2SP `tlog-cosignature` (`cosignature/v1`) defines
//! them.
//!
//! A witness that has checked a checkpoint consistent with the last one it saw for that log
//! signs, with Ed25519, the message
//!
//! ```text
//! cosignature/v1
//! time <seconds since the Unix epoch>
//! <the checkpoint's note text: origin, size, root, extension lines>
//! ```
//!
//! and returns one signed-note signature line,
//! `— <witness name> base64(key id (4 bytes) || time (8 bytes, BE) || signature (64 bytes))`,
//! which the log appends to the checkpoint note's signatures (other signed-note readers skip
//! it: a signature by an unknown key is ignored). The key id is C2SP's for cosignatures:
//! `SHA-256(name || 0x0A || 0x04 || public key)[:4]`. Witness keys use the same key files as
//! checkpoint signing keys (`meshlog keygen --out DIR --name WITNESS-NAME`).
//!
//! Everything parsed here is untrusted: malformed lines are errors, never panics.

use crate::checkpoint::{NoteError, SIG_PREFIX, parse_signature_line};
use crate::keys::{SIGNATURE_LEN, SignerKey, VerifierKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

/// The signature type byte of `cosignature/v1` keys.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// The first line of every cosigned message.
const HEADER: &str = "cosignature/v1\n";

/// Why a cosignature is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    /// The note itself is not a signed note.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// No signature line by this witness (name and cosignature key id).
    #[error("no cosignature by witness {0}")]
    Missing(String),
    /// A line by this witness that is not a cosignature (wrong length).
    #[error("the cosignature by witness {0} is malformed (expected 76 bytes)")]
    Malformed(String),
    /// A cosignature by this witness that does not verify.
    #[error(
        "the cosignature by witness {0} does not verify: the checkpoint or the line was altered"
    )]
    BadSignature(String),
}

/// The cosignature key id of a witness key: `SHA-256(name || 0x0A || 0x04 || key)[:4]`.
pub fn cosignature_key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_COSIGNATURE_V1]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// `<name>+<cosignature key id>`: how a witness is named in reports.
pub fn witness_id(key: &VerifierKey) -> String {
    format!(
        "{}+{:08x}",
        key.name(),
        cosignature_key_id(key.name(), &key.public_bytes())
    )
}

fn message(text: &str, time: u64) -> String {
    format!("{HEADER}time {time}\n{text}")
}

/// Splits a signed note into its text (ending in a newline) and its signature lines.
pub fn split_note(note: &[u8]) -> Result<(&str, Vec<&str>), NoteError> {
    let note = std::str::from_utf8(note).map_err(|_| NoteError::NotUtf8)?;
    if !note.ends_with('\n') {
        return Err(NoteError::MissingFinalNewline);
    }
    let split = note.rfind("\n\n").ok_or(NoteError::NoSignatures)?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    let lines: Vec<&str> = sigs
        .strip_suffix('\n')
        .unwrap_or(sigs)
        .split('\n')
        .collect();
    if sigs.is_empty() {
        return Err(NoteError::NoSignatures);
    }
    Ok((text, lines))
}

/// The cosignature line (ending in a newline) of `key` on the checkpoint note text `text`, at
/// `time` (seconds since the Unix epoch).
pub fn cosign(text: &str, key: &SignerKey, time: u64) -> String {
    let pubkey = key.verifier().public_bytes();
    let id = cosignature_key_id(key.name(), &pubkey);
    let sig = key.sign(message(text, time).as_bytes());
    let mut blob = Vec::with_capacity(12 + SIGNATURE_LEN);
    blob.extend_from_slice(&id.to_be_bytes());
    blob.extend_from_slice(&time.to_be_bytes());
    blob.extend_from_slice(&sig);
    format!("{SIG_PREFIX}{} {}\n", key.name(), B64.encode(&blob))
}

/// Checks that `note` (a signed checkpoint, with any signature lines) carries a valid
/// cosignature by witness `key`; returns its time. Lines by other keys are ignored.
pub fn verify_cosignature(note: &[u8], key: &VerifierKey) -> Result<u64, CosignatureError> {
    let (text, lines) = split_note(note)?;
    let id = cosignature_key_id(key.name(), &key.public_bytes());
    let who = witness_id(key);
    for line in lines {
        let Ok((name, line_id, rest)) = parse_signature_line(line) else {
            continue;
        };
        if name != key.name() || line_id != id {
            continue;
        }
        let Some((time, sig)) = rest.split_first_chunk::<8>() else {
            return Err(CosignatureError::Malformed(who));
        };
        if sig.len() != SIGNATURE_LEN {
            return Err(CosignatureError::Malformed(who));
        }
        let time = u64::from_be_bytes(*time);
        if !key.verify(message(text, time).as_bytes(), sig) {
            return Err(CosignatureError::BadSignature(who));
        }
        return Ok(time);
    }
    Err(CosignatureError::Missing(who))
}

/// `note` with `lines` (signature lines, each ending in a newline) appended.
pub fn add_signature_lines(note: &str, lines: &str) -> String {
    format!("{note}{lines}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;

    fn note() -> (String, SignerKey) {
        let log = SignerKey::from_seed("example.com/log", &[1; 32]).unwrap();
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 7,
            root: [9; 32],
            timestamp_unix_ns: 5,
        };
        (cp.sign(&log).unwrap(), log)
    }

    #[test]
    fn a_cosigned_note_verifies_for_the_witness_and_still_for_the_log() {
        let (note, log) = note();
        let w = SignerKey::from_seed("witness.example", &[2; 32]).unwrap();
        let (text, _) = split_note(note.as_bytes()).unwrap();
        let cosigned = add_signature_lines(&note, &cosign(text, &w, 1_700_000_000));
        assert_eq!(
            verify_cosignature(cosigned.as_bytes(), &w.verifier()),
            Ok(1_700_000_000)
        );
        assert!(Checkpoint::verify(cosigned.as_bytes(), &log.verifier()).is_ok());
        let other = SignerKey::from_seed("witness.example", &[3; 32]).unwrap();
        assert!(matches!(
            verify_cosignature(cosigned.as_bytes(), &other.verifier()),
            Err(CosignatureError::Missing(_))
        ));
        // The log's own signature is no cosignature (another key id).
        assert!(matches!(
            verify_cosignature(note.as_bytes(), &log.verifier()),
            Err(CosignatureError::Missing(_))
        ));
        let altered = cosigned.replacen("\n7\n", "\n8\n", 1);
        assert!(matches!(
            verify_cosignature(altered.as_bytes(), &w.verifier()),
            Err(CosignatureError::BadSignature(_))
        ));
    }
}
