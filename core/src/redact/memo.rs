//! A per-thread memo of header values a policy leaves untouched.
//!
//! The same header values come back request after request on one worker (`content-type`,
//! `server`, `user-agent`, `x-forwarded-proto`): each costs a full detector pass (about 800
//! instructions for a one-byte value, 3,000 for a `content-type`) only to be logged as it came.
//! A value whose redaction changed nothing and counted nothing is remembered here, per policy,
//! and the next identical value under the same header name skips the pass. Only such clean
//! values are kept, so a hit has nothing to replay: the record and the redaction tallies are
//! exactly what the full pass gives. Bounded (entries and value length); emptied when full.
//!
//! Per thread, so no lock: one Envoy worker (native) or the Wasm VM's one thread.

use rustc_hash::FxHashSet;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Values longer than this are not remembered (long values rarely repeat).
const MAX_VALUE: usize = 256;
/// Entries per thread before the memo is emptied (about 100 KB at most).
const MAX_ENTRIES: usize = 512;
/// Between a name and its value in a key: 0xff never occurs in UTF-8.
const SEP: u8 = 0xff;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh id for a compiled policy: the memo's entries belong to one policy.
pub(crate) fn next_policy_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

#[derive(Default)]
struct Memo {
    policy: u64,
    clean: FxHashSet<Box<[u8]>>,
    key: Vec<u8>,
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
}

fn make_key(key: &mut Vec<u8>, name: &str, value: &str) {
    key.clear();
    key.extend_from_slice(name.as_bytes());
    key.push(SEP);
    key.extend_from_slice(value.as_bytes());
}

/// Whether `value` under header `name` is known to pass `policy` (by id) untouched.
pub(crate) fn is_clean(policy: u64, name: &str, value: &str) -> bool {
    if value.len() > MAX_VALUE {
        return false;
    }
    MEMO.try_with(|m| {
        let Ok(mut m) = m.try_borrow_mut() else {
            return false;
        };
        if m.policy != policy {
            return false;
        }
        let m = &mut *m;
        make_key(&mut m.key, name, value);
        m.clean.contains(m.key.as_slice())
    })
    .unwrap_or(false)
}

/// Remembers that `value` under header `name` passed `policy` untouched.
pub(crate) fn remember_clean(policy: u64, name: &str, value: &str) {
    if value.len() > MAX_VALUE {
        return;
    }
    let _ = MEMO.try_with(|m| {
        let Ok(mut m) = m.try_borrow_mut() else {
            return;
        };
        let m = &mut *m;
        if m.policy != policy || m.clean.len() >= MAX_ENTRIES {
            m.clean.clear();
            m.policy = policy;
        }
        make_key(&mut m.key, name, value);
        m.clean.insert(m.key.as_slice().into());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_policy_name_and_value() {
        let (a, b) = (next_policy_id(), next_policy_id());
        assert!(!is_clean(a, "server", "envoy"));
        remember_clean(a, "server", "envoy");
        assert!(is_clean(a, "server", "envoy"));
        // Another name, another value, another policy: not known.
        assert!(!is_clean(a, "via", "envoy"));
        assert!(!is_clean(a, "server", "envoy2"));
        assert!(!is_clean(b, "server", "envoy"));
        // Name and value do not run into each other.
        remember_clean(a, "ab", "c");
        assert!(!is_clean(a, "a", "bc"));
        // Another policy takes the memo over.
        remember_clean(b, "server", "envoy");
        assert!(is_clean(b, "server", "envoy"));
        assert!(!is_clean(a, "server", "envoy"));
    }

    #[test]
    fn is_bounded() {
        let p = next_policy_id();
        let long = "x".repeat(MAX_VALUE + 1);
        remember_clean(p, "h", &long);
        assert!(!is_clean(p, "h", &long));
        for i in 0..MAX_ENTRIES + 10 {
            remember_clean(p, "h", &i.to_string());
        }
        MEMO.with(|m| assert!(m.borrow().clean.len() <= MAX_ENTRIES));
    }
}
