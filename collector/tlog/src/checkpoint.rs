//! Signed checkpoints: the store's tree size and root hash at a moment, signed with Ed25519,
//! in the C2SP `tlog-checkpoint` body format inside a C2SP `signed-note`.
//!
//! ```text
//! example.com/meshlog            origin (= the signing key's name)
//! 1234                           tree size: leaves (stored frames), decimal
//! 3q2+7w...=                     root hash, base64 (RFC 6962 Merkle tree hash)
//! timestamp_unix_ns 1764000000   extension line: when the checkpoint was made
//!                                blank line
//! — example.com/meshlog AbCd...  signature: key name, base64(key id (4 bytes, BE) || sig)
//! ```
//!
//! The signature covers the text up to and including the timestamp line's newline. Any
//! signed-note tool can check the signature with the verifier key
//! ([`crate::keys::VerifierKey`]); this module also parses the body strictly (a line it does
//! not understand is refused rather than ignored: the checkpoint is evidence).
//!
//! Notes come from files and are untrusted: size, encoding and every line are checked before
//! use, errors name the line (counted from 1 over the whole note), and no input panics.
//! Following the signed-note rules, signatures by other keys are ignored, a note without a
//! signature by the verifier's key is refused, and a failing signature by that key rejects
//! the whole note even if another one verifies.

use crate::keys::{self, SignerKey, VerifierKey};
use crate::merkle::{HASH_LEN, Hash};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// Largest note accepted, bytes (a checkpoint with one signature is about 200).
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// Most signature lines accepted in one note (the signed-note spec asks for at least 16).
pub const MAX_SIGNATURES: usize = 100;
/// Start of a signature line: em dash (U+2014) and a space.
pub(crate) const SIG_PREFIX: &str = "\u{2014} ";
/// Key of the extension line that carries the checkpoint's time.
pub const TIMESTAMP_KEY: &str = "timestamp_unix_ns";

/// Why a signed note could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Larger than [`MAX_NOTE_BYTES`].
    #[error("the note is {len} bytes, more than the {MAX_NOTE_BYTES} accepted")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// Not UTF-8.
    #[error("the note is not UTF-8 text")]
    NotUtf8,
    /// An ASCII control character other than newline (tabs and carriage returns included).
    #[error("line {line}: control character {byte:#04x} (notes allow none but newline)")]
    ControlCharacter {
        /// The line.
        line: usize,
        /// The character.
        byte: u8,
    },
    /// The note does not end with a newline.
    #[error("the note does not end with a newline (truncated?)")]
    MissingFinalNewline,
    /// No blank line separating text and signatures, or no signature after it.
    #[error("no signatures: a signed note is text, a blank line, then signature lines")]
    NoSignatures,
    /// A text to sign that is empty or does not end with a newline.
    #[error("the text to sign must be non-empty and end with a newline")]
    BadText,
    /// A signature line that is not `— <key name> <base64>`.
    #[error("line {line}: malformed signature line: {reason}")]
    MalformedSignature {
        /// The line.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// More than [`MAX_SIGNATURES`] signature lines.
    #[error("{count} signature lines, more than the {MAX_SIGNATURES} accepted")]
    TooManySignatures {
        /// Signature lines found.
        count: usize,
    },
    /// No signature by the verifier's key (same name and key id).
    #[error(
        "not signed by key {wanted}: the note carries signatures by {}",
        if found.is_empty() { "no key".to_owned() } else { found.join(", ") }
    )]
    UnknownKey {
        /// The verifier's `<name>+<key id>`.
        wanted: String,
        /// The `<name>+<key id>` of each signature present.
        found: Vec<String>,
    },
    /// A signature by the verifier's key (name and key id match) that does not verify.
    #[error(
        "line {line}: the signature by {key} does not verify: the note was altered after \
         signing (or signed by another key with the same name and id)"
    )]
    BadSignature {
        /// The signature line.
        line: usize,
        /// The key's `<name>+<key id>`.
        key: String,
    },
}

/// Why a checkpoint could not be made or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The signed-note layer failed (size, encoding, signatures).
    #[error(transparent)]
    Note(#[from] NoteError),
    /// A body line that is present but wrong.
    #[error("line {line}: malformed {what}: {reason}")]
    MalformedLine {
        /// The line.
        line: usize,
        /// Which line it is.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The body ends before this line.
    #[error("line {line}: missing {what}")]
    MissingLine {
        /// The line.
        line: usize,
        /// Which line is missing.
        what: &'static str,
    },
    /// A body line after the known ones.
    #[error(
        "line {line}: unexpected extension line (this build knows origin, size, root hash and \
         {TIMESTAMP_KEY} only)"
    )]
    UnexpectedLine {
        /// The line.
        line: usize,
    },
    /// The origin is not the signing key's name.
    #[error("checkpoint origin {origin:?} is not the key's name {key_name:?}")]
    OriginMismatch {
        /// The checkpoint's origin.
        origin: String,
        /// The key's name.
        key_name: String,
    },
    /// An origin a checkpoint cannot carry.
    #[error(
        "invalid origin {0:?}: it must be non-empty, with no spaces, '+' or control characters"
    )]
    InvalidOrigin(String),
}

/// Signs `text` (non-empty, ending in a newline, no control characters but newlines): returns
/// the signed note, text + blank line + one signature line.
pub fn sign_note(text: &str, key: &SignerKey) -> Result<String, NoteError> {
    if text.is_empty() || !text.ends_with('\n') {
        return Err(NoteError::BadText);
    }
    check_controls(text)?;
    let sig = key.sign(text.as_bytes());
    let mut blob = Vec::with_capacity(4 + sig.len());
    blob.extend_from_slice(&key.key_id().to_be_bytes());
    blob.extend_from_slice(&sig);
    let note = format!("{text}\n{SIG_PREFIX}{} {}\n", key.name(), B64.encode(&blob));
    if note.len() > MAX_NOTE_BYTES {
        return Err(NoteError::TooLarge { len: note.len() });
    }
    Ok(note)
}

/// Opens a signed note: checks its form and that it carries a valid signature by `key`;
/// returns the signed text (ending in a newline).
pub fn open_note<'a>(note: &'a [u8], key: &VerifierKey) -> Result<&'a str, NoteError> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(NoteError::TooLarge { len: note.len() });
    }
    let note = std::str::from_utf8(note).map_err(|_| NoteError::NotUtf8)?;
    check_controls(note)?;
    if !note.ends_with('\n') {
        return Err(NoteError::MissingFinalNewline);
    }
    // The text may contain blank lines: the signatures start after the last one.
    let split = note.rfind("\n\n").ok_or(NoteError::NoSignatures)?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    if sigs.is_empty() {
        return Err(NoteError::NoSignatures);
    }
    let first_sig_line = text.matches('\n').count() + 2;
    let lines: Vec<&str> = sigs
        .strip_suffix('\n')
        .unwrap_or(sigs)
        .split('\n')
        .collect();
    if lines.len() > MAX_SIGNATURES {
        return Err(NoteError::TooManySignatures { count: lines.len() });
    }
    let wanted = format!("{}+{:08x}", key.name(), key.key_id());
    let mut found = Vec::new();
    let mut verified = false;
    for (i, line) in lines.iter().enumerate() {
        let line_no = first_sig_line + i;
        let (name, id, sig) =
            parse_signature_line(line).map_err(|reason| NoteError::MalformedSignature {
                line: line_no,
                reason,
            })?;
        if name == key.name() && id == key.key_id() {
            if !key.verify(text.as_bytes(), &sig) {
                return Err(NoteError::BadSignature {
                    line: line_no,
                    key: wanted,
                });
            }
            verified = true;
        } else {
            // Another signer (a witness, a rotated key): ignored, as the spec requires.
            found.push(format!("{name}+{id:08x}"));
        }
    }
    if !verified {
        return Err(NoteError::UnknownKey { wanted, found });
    }
    Ok(text)
}

/// Splits `— <name> <base64(key id || signature)>`.
pub(crate) fn parse_signature_line(line: &str) -> Result<(&str, u32, Vec<u8>), &'static str> {
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or("expected an em dash (U+2014) and a space")?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or("expected a key name, a space and a base64 signature")?;
    keys::check_key_name(name).map_err(|_| "invalid key name")?;
    let blob = B64
        .decode(b64)
        .map_err(|_| "the signature is not valid base64")?;
    match blob.split_first_chunk::<4>() {
        Some((id, sig)) if !sig.is_empty() => Ok((name, u32::from_be_bytes(*id), sig.to_vec())),
        _ => Err("the signature is shorter than a key id and a signature"),
    }
}

/// Refuses ASCII control characters other than newline.
fn check_controls(s: &str) -> Result<(), NoteError> {
    let mut line = 1;
    for b in s.bytes() {
        if b == b'\n' {
            line += 1;
        } else if b < 0x20 {
            return Err(NoteError::ControlCharacter { line, byte: b });
        }
    }
    Ok(())
}

/// A checkpoint: the tree of the first `size` stored leaves has root `root`, as of
/// `timestamp_unix_ns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity; must equal the signing key's name.
    pub origin: String,
    /// Leaves in the tree.
    pub size: u64,
    /// The RFC 6962 root hash of those leaves.
    pub root: Hash,
    /// When the checkpoint was made, nanoseconds since the Unix epoch.
    pub timestamp_unix_ns: u64,
}

impl Checkpoint {
    /// The note text (body) of this checkpoint.
    pub fn body(&self) -> Result<String, CheckpointError> {
        if keys::check_key_name(&self.origin).is_err() {
            return Err(CheckpointError::InvalidOrigin(self.origin.clone()));
        }
        Ok(format!(
            "{}\n{}\n{}\n{TIMESTAMP_KEY} {}\n",
            self.origin,
            self.size,
            B64.encode(self.root),
            self.timestamp_unix_ns
        ))
    }

    /// The signed checkpoint note. The key's name must be the origin.
    pub fn sign(&self, key: &SignerKey) -> Result<String, CheckpointError> {
        if key.name() != self.origin {
            return Err(CheckpointError::OriginMismatch {
                origin: self.origin.clone(),
                key_name: key.name().to_owned(),
            });
        }
        Ok(sign_note(&self.body()?, key)?)
    }

    /// Verifies a signed checkpoint note with the verifier key and parses it.
    pub fn verify(note: &[u8], key: &VerifierKey) -> Result<Self, CheckpointError> {
        let text = open_note(note, key)?;
        let cp = Self::parse_body(text)?;
        if cp.origin != key.name() {
            return Err(CheckpointError::OriginMismatch {
                origin: cp.origin,
                key_name: key.name().to_owned(),
            });
        }
        Ok(cp)
    }

    /// Parses a checkpoint body (unverified: use [`Checkpoint::verify`] for anything read
    /// from outside).
    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        let mut lines = text.strip_suffix('\n').unwrap_or(text).split('\n');
        let mut next = |line: usize, what: &'static str| {
            lines
                .next()
                .filter(|l| !l.is_empty())
                .ok_or(CheckpointError::MissingLine { line, what })
        };
        let malformed =
            |line: usize, what: &'static str, reason: &str| CheckpointError::MalformedLine {
                line,
                what,
                reason: reason.to_owned(),
            };

        let origin = next(1, "origin")?;
        if keys::check_key_name(origin).is_err() {
            return Err(malformed(
                1,
                "origin",
                "it must have no spaces, '+' or control characters",
            ));
        }
        let size = parse_decimal(next(2, "tree size")?)
            .map_err(|reason| malformed(2, "tree size", reason))?;
        let root_b64 = next(3, "root hash")?;
        let root: Hash = B64
            .decode(root_b64)
            .map_err(|_| malformed(3, "root hash", "not valid base64"))?
            .try_into()
            .map_err(|v: Vec<u8>| {
                malformed(
                    3,
                    "root hash",
                    &format!("{} bytes, expected {HASH_LEN}", v.len()),
                )
            })?;
        let ts_line = next(4, "timestamp")?;
        let ts = ts_line
            .strip_prefix(TIMESTAMP_KEY)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or_else(|| {
                malformed(
                    4,
                    "timestamp",
                    &format!("expected `{TIMESTAMP_KEY} <nanoseconds>`"),
                )
            })?;
        let timestamp_unix_ns =
            parse_decimal(ts).map_err(|reason| malformed(4, "timestamp", reason))?;
        if lines.next().is_some() {
            return Err(CheckpointError::UnexpectedLine { line: 5 });
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            timestamp_unix_ns,
        })
    }
}

/// A u64 in canonical ASCII decimal: digits only, no sign, no leading zeros (but `0`).
pub fn parse_decimal(s: &str) -> Result<u64, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected decimal digits only");
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err("leading zeros are not allowed");
    }
    s.parse().map_err(|_| "does not fit in 64 bits")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle;
    use proptest::prelude::*;

    // golang.org/x/mod/sumdb/note's documentation example: key, text and exact signed note.
    const GO_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\n\
        then you don't know what your problem is.\n\
        \n\
        \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    fn key() -> SignerKey {
        SignerKey::from_seed("example.com/meshlog", &[42; 32]).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        let leaves: Vec<_> = (0..5u8).map(|i| merkle::leaf_hash(&[i])).collect();
        Checkpoint {
            origin: "example.com/meshlog".into(),
            size: 5,
            root: merkle::root(&leaves),
            timestamp_unix_ns: 1_764_000_000_123_456_789,
        }
    }

    /// A signature line by `name` with id and signature bytes as given.
    fn sig_line(name: &str, id: u32, sig: &[u8]) -> String {
        let mut blob = id.to_be_bytes().to_vec();
        blob.extend_from_slice(sig);
        format!("\u{2014} {name} {}\n", B64.encode(blob))
    }

    #[test]
    fn go_reference_note_signs_and_opens_byte_for_byte() {
        let skey = SignerKey::parse(GO_SKEY).unwrap();
        assert_eq!(sign_note(GO_TEXT, &skey).unwrap(), GO_NOTE);
        let vkey = VerifierKey::parse(GO_VKEY).unwrap();
        assert_eq!(open_note(GO_NOTE.as_bytes(), &vkey).unwrap(), GO_TEXT);
    }

    /// The C2SP signed-note spec's example, and a note signed by two keys from the Go tests
    /// (`EnochRoot`), opened with either key.
    #[test]
    fn spec_example_and_a_doubly_signed_reference_note_open() {
        let spec_vkey = VerifierKey::parse(
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        )
        .unwrap();
        assert_eq!(spec_vkey.key_id(), 0x530d903a);
        let spec_note = "This is an example message.\n\n\u{2014} example.com/foo \
            Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
        assert_eq!(
            open_note(spec_note.as_bytes(), &spec_vkey).unwrap(),
            "This is an example message.\n"
        );
        let enoch =
            VerifierKey::parse("EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop")
                .unwrap();
        let both = format!(
            "{GO_NOTE}\u{2014} EnochRoot \
             rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
        );
        assert_eq!(open_note(both.as_bytes(), &enoch).unwrap(), GO_TEXT);
        let peter = VerifierKey::parse(GO_VKEY).unwrap();
        assert_eq!(open_note(both.as_bytes(), &peter).unwrap(), GO_TEXT);
        // Enoch's key does not vouch for the spec example.
        assert!(matches!(
            open_note(spec_note.as_bytes(), &enoch),
            Err(NoteError::UnknownKey { .. })
        ));
    }

    #[test]
    fn checkpoint_round_trips_in_the_documented_layout() {
        let cp = checkpoint();
        let note = cp.sign(&key()).unwrap();
        let body = cp.body().unwrap();
        assert_eq!(
            body,
            format!(
                "example.com/meshlog\n5\n{}\ntimestamp_unix_ns 1764000000123456789\n",
                B64.encode(cp.root)
            )
        );
        assert!(note.starts_with(&format!("{body}\n\u{2014} example.com/meshlog ")));
        assert!(note.ends_with("=\n"), "{note}");
        assert_eq!(
            Checkpoint::verify(note.as_bytes(), &key().verifier()),
            Ok(cp)
        );
        // The empty tree.
        let empty = Checkpoint {
            size: 0,
            root: merkle::empty_root(),
            timestamp_unix_ns: 0,
            ..checkpoint()
        };
        let note = empty.sign(&key()).unwrap();
        assert!(note.contains("\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"));
        assert_eq!(
            Checkpoint::verify(note.as_bytes(), &key().verifier()),
            Ok(empty)
        );
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let note = checkpoint().sign(&key()).unwrap().into_bytes();
        let v = key().verifier();
        for bit in 0..note.len() * 8 {
            let mut b = note.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(Checkpoint::verify(&b, &v).is_err(), "bit {bit} flipped");
        }
        // Truncation anywhere, too.
        for len in 0..note.len() {
            assert!(
                Checkpoint::verify(&note[..len], &v).is_err(),
                "cut at {len}"
            );
        }
    }

    #[test]
    fn signatures_by_other_keys_are_ignored_but_a_bad_known_one_rejects() {
        let note = checkpoint().sign(&key()).unwrap();
        let v = key().verifier();
        // A witness cosignature and a rotated key: ignored.
        let other = SignerKey::from_seed("example.com/meshlog", &[7; 32]).unwrap();
        let body = checkpoint().body().unwrap();
        let extra = format!(
            "{note}{}{}",
            sig_line("witness.example/w1", 0x01020304, &[9; 64]),
            sig_line(other.name(), other.key_id(), &other.sign(body.as_bytes()))
        );
        assert_eq!(Checkpoint::verify(extra.as_bytes(), &v), Ok(checkpoint()));
        // Verified with the other key alone: it finds its own signature.
        assert_eq!(
            Checkpoint::verify(extra.as_bytes(), &other.verifier()),
            Ok(checkpoint())
        );
        // Only other keys: unknown key, listing who did sign.
        let only_other = sign_note(&body, &other).unwrap();
        let err = Checkpoint::verify(only_other.as_bytes(), &v).unwrap_err();
        assert_eq!(
            err,
            CheckpointError::Note(NoteError::UnknownKey {
                wanted: format!("example.com/meshlog+{:08x}", v.key_id()),
                found: vec![format!("example.com/meshlog+{:08x}", other.key_id())],
            })
        );
        // A second, failing signature by the known key rejects the note.
        let bad = format!(
            "{note}{}",
            sig_line(v.name(), v.key_id(), &other.sign(body.as_bytes()))
        );
        assert_eq!(
            Checkpoint::verify(bad.as_bytes(), &v).unwrap_err(),
            CheckpointError::Note(NoteError::BadSignature {
                line: 7,
                key: format!("example.com/meshlog+{:08x}", v.key_id()),
            })
        );
    }

    #[test]
    fn altered_content_is_a_bad_signature() {
        let note = checkpoint().sign(&key()).unwrap();
        let v = key().verifier();
        let altered = note.replacen("\n5\n", "\n6\n", 1);
        assert_eq!(
            Checkpoint::verify(altered.as_bytes(), &v).unwrap_err(),
            CheckpointError::Note(NoteError::BadSignature {
                line: 6,
                key: format!("example.com/meshlog+{:08x}", v.key_id()),
            })
        );
    }

    #[test]
    fn note_form_errors_are_precise() {
        let v = key().verifier();
        let good = checkpoint().sign(&key()).unwrap();
        let note_err = |n: &[u8]| match Checkpoint::verify(n, &v) {
            Err(CheckpointError::Note(e)) => e,
            other => panic!("expected a note error, got {other:?}"),
        };
        assert_eq!(
            note_err(&vec![b'a'; MAX_NOTE_BYTES + 1]),
            NoteError::TooLarge {
                len: MAX_NOTE_BYTES + 1
            }
        );
        assert_eq!(note_err(b"a\xff\n\n"), NoteError::NotUtf8);
        assert_eq!(
            note_err(good.replacen("\n5\n", "\n5\r\n", 1).as_bytes()),
            NoteError::ControlCharacter {
                line: 2,
                byte: b'\r'
            }
        );
        assert_eq!(
            note_err(good.trim_end().as_bytes()),
            NoteError::MissingFinalNewline
        );
        assert_eq!(
            note_err(checkpoint().body().unwrap().as_bytes()),
            NoteError::NoSignatures
        );
        assert_eq!(
            note_err(format!("{}\n", checkpoint().body().unwrap()).as_bytes()),
            NoteError::NoSignatures
        );
        let body = checkpoint().body().unwrap();
        for (sig, reason) in [
            ("-- example.com/meshlog AAAA", "expected an em dash"),
            ("\u{2014} example.com/meshlog", "expected a key name"),
            ("\u{2014} a+b AAAAAAAA", "invalid key name"),
            ("\u{2014} x AAAA*", "not valid base64"),
            ("\u{2014} x AAAAAA==", "shorter than a key id"),
        ] {
            let n = format!("{body}\n{sig}\n");
            match note_err(n.as_bytes()) {
                NoteError::MalformedSignature { line: 6, reason: r } => {
                    assert!(r.contains(reason), "{sig}: {r}")
                }
                other => panic!("{sig}: {other:?}"),
            }
        }
        let many: String = (0..=MAX_SIGNATURES)
            .map(|i| sig_line("w", i as u32, &[0; 64]))
            .collect();
        assert_eq!(
            note_err(format!("{body}\n{many}").as_bytes()),
            NoteError::TooManySignatures {
                count: MAX_SIGNATURES + 1
            }
        );
        // Signing refuses what could not be opened.
        assert_eq!(sign_note("", &key()), Err(NoteError::BadText));
        assert_eq!(sign_note("no newline", &key()), Err(NoteError::BadText));
        assert_eq!(
            sign_note("a\tb\n", &key()),
            Err(NoteError::ControlCharacter { line: 1, byte: 9 })
        );
    }

    #[test]
    fn body_errors_name_the_line() {
        let k = key();
        let v = k.verifier();
        let root = B64.encode([1u8; 32]);
        let verify_text = |text: &str| {
            let note = sign_note(text, &k).unwrap();
            Checkpoint::verify(note.as_bytes(), &v).unwrap_err()
        };
        let o = "example.com/meshlog";
        let ts = "timestamp_unix_ns 1";
        let malformed = |e: CheckpointError| match e {
            CheckpointError::MalformedLine { line, what, .. } => (line, what),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            malformed(verify_text(&format!("{o}\n007\n{root}\n{ts}\n"))),
            (2, "tree size")
        );
        assert_eq!(
            malformed(verify_text(&format!("{o}\n+7\n{root}\n{ts}\n"))),
            (2, "tree size")
        );
        assert_eq!(
            malformed(verify_text(&format!(
                "{o}\n18446744073709551616\n{root}\n{ts}\n"
            ))),
            (2, "tree size")
        );
        assert_eq!(
            malformed(verify_text(&format!("{o}\n7\nnot*base64\n{ts}\n"))),
            (3, "root hash")
        );
        let err = verify_text(&format!("{o}\n7\n{}\n{ts}\n", B64.encode([1u8; 31])));
        assert!(err.to_string().contains("31 bytes, expected 32"), "{err}");
        assert_eq!(
            malformed(verify_text(&format!("{o}\n7\n{root}\ntimestamp 1\n"))),
            (4, "timestamp")
        );
        assert_eq!(
            malformed(verify_text(&format!(
                "{o}\n7\n{root}\ntimestamp_unix_ns -1\n"
            ))),
            (4, "timestamp")
        );
        assert_eq!(
            verify_text(&format!("{o}\n7\n{root}\n")),
            CheckpointError::MissingLine {
                line: 4,
                what: "timestamp"
            }
        );
        assert_eq!(
            verify_text(&format!("{o}\n")),
            CheckpointError::MissingLine {
                line: 2,
                what: "tree size"
            }
        );
        assert_eq!(
            verify_text(&format!("{o}\n7\n{root}\n{ts}\nmore\n")),
            CheckpointError::UnexpectedLine { line: 5 }
        );
        // A blank line inside the text is allowed by signed notes but not by checkpoints.
        assert_eq!(
            verify_text(&format!("{o}\n\n7\n{root}\n{ts}\n")),
            CheckpointError::MissingLine {
                line: 2,
                what: "tree size"
            }
        );
        let err = verify_text(&format!("other.example/log\n7\n{root}\n{ts}\n"));
        assert_eq!(
            err,
            CheckpointError::OriginMismatch {
                origin: "other.example/log".into(),
                key_name: o.into()
            }
        );
    }

    #[test]
    fn signing_checks_the_origin() {
        let mut cp = checkpoint();
        cp.origin = "another.example/log".into();
        assert!(matches!(
            cp.sign(&key()),
            Err(CheckpointError::OriginMismatch { .. })
        ));
        cp.origin = "has space".into();
        assert_eq!(
            cp.body(),
            Err(CheckpointError::InvalidOrigin("has space".into()))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_checkpoint_round_trips(
            origin in "[a-z0-9.]{1,20}(/[a-zA-Z0-9_-]{1,10}){0,3}",
            size in any::<u64>(),
            root in any::<[u8; 32]>(),
            ts in any::<u64>(),
        ) {
            let k = SignerKey::from_seed(&origin, &[3; 32]).unwrap();
            let cp = Checkpoint { origin, size, root, timestamp_unix_ns: ts };
            let note = cp.sign(&k).unwrap();
            prop_assert_eq!(Checkpoint::verify(note.as_bytes(), &k.verifier()), Ok(cp));
        }

        #[test]
        fn arbitrary_bytes_never_verify_or_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            prop_assert!(Checkpoint::verify(&bytes, &key().verifier()).is_err());
        }

        #[test]
        fn arbitrary_text_before_a_signature_block_never_panics(text in "\\PC{0,200}") {
            let note = format!("{text}\n\n{}", sig_line("example.com/meshlog", 1, &[0; 64]));
            prop_assert!(Checkpoint::verify(note.as_bytes(), &key().verifier()).is_err());
            let _ = Checkpoint::parse_body(&text);
        }
    }
}
