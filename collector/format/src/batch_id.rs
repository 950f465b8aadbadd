//! Batch ids: the `meshlog-batch-id` a client sends with a batch, kept in the frame header so a
//! retried batch is stored once (the index of stored ids lives in the store's `dedup`).

use std::fmt;

/// Longest batch id accepted, bytes.
pub const MAX_BATCH_ID_LEN: usize = 128;

/// A validated batch id: 1 to [`MAX_BATCH_ID_LEN`] bytes of visible ASCII (0x21 to 0x7e). Opaque:
/// the filter's `<vm_id>:<first_seq>-<last_seq>` shape is not relied on.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BatchId(Box<str>);

/// Why a batch id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchIdError {
    /// No bytes.
    #[error("is empty; expected 1 to {MAX_BATCH_ID_LEN} visible ASCII characters")]
    Empty,
    /// Longer than [`MAX_BATCH_ID_LEN`].
    #[error("is {0} bytes long; at most {MAX_BATCH_ID_LEN} are allowed")]
    TooLong(usize),
    /// A byte outside 0x21..=0x7e.
    #[error("has byte {byte:#04x} at position {at}; only visible ASCII (0x21 to 0x7e) is allowed")]
    NotVisibleAscii {
        /// The byte.
        byte: u8,
        /// Its 0-based position.
        at: usize,
    },
}

impl BatchId {
    /// Checks `bytes` and wraps them.
    pub fn parse(bytes: &[u8]) -> Result<BatchId, BatchIdError> {
        if bytes.is_empty() {
            return Err(BatchIdError::Empty);
        }
        if bytes.len() > MAX_BATCH_ID_LEN {
            return Err(BatchIdError::TooLong(bytes.len()));
        }
        if let Some(at) = bytes.iter().position(|b| !b.is_ascii_graphic()) {
            let byte = bytes.get(at).copied().unwrap_or_default();
            return Err(BatchIdError::NotVisibleAscii { byte, at });
        }
        // Visible ASCII is UTF-8.
        let text = String::from_utf8_lossy(bytes);
        Ok(BatchId(text.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id's bytes, as stored.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BatchId({:?})", &*self.0)
    }
}
