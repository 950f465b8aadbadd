//! Retention deletions judged against the policy: the `integrity` rule reads each
//! `meshlog.retention.deletion` record (the sweeper appends one to the class's own store for
//! every segment it deletes, so detection sees it on the committed-record stream) and finds it
//! outside policy when the class is not configured, when the segment held records younger than
//! the class's days at the sweep, or when a legal hold in force covers it. The sweeper checks
//! the same before deleting; this is the independent check that says when it did not.

use crate::NS_PER_S;
use crate::flat::Flat;
use meshlog_format::receipt::Receipt;
use meshlog_tlog::checkpoint::open_note;
use meshlog_tlog::keys::VerifierKey;

/// Nanoseconds in a day.
const DAY_NS: u64 = 86_400 * NS_PER_S;

/// The retention policy deletions are held to: what the collector's `[retention]` section says
/// (not a `[detect]` key; the collector sets it, and again when the holds in its configuration
/// file change).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Each class (`default` included) and the days it keeps records.
    pub classes: Vec<(String, u32)>,
    /// The legal holds in force.
    pub holds: Vec<RetentionHold>,
    /// The key deletion receipts are signed with: with it, a deletion is judged by what its
    /// signed receipt (`meshlog.retention.receipt`) says (a receipt signed but inconsistent,
    /// e.g. deleted before it expired by its own days, is outside policy), and a record whose
    /// receipt is not signed with it is no deletion of this collector's (any client could send
    /// one) and is not judged.
    pub verifier: Option<VerifierKey>,
}

/// One legal hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionHold {
    /// Its name.
    pub name: String,
    /// The classes it covers; `None` for all.
    pub classes: Option<Vec<String>>,
    /// Records at or after this instant, unix ns.
    pub from_unix_ns: Option<u64>,
    /// Records at or before this instant, unix ns.
    pub until_unix_ns: Option<u64>,
}

impl RetentionHold {
    /// True when the hold covers a segment of `class` spanning `oldest..=newest` (as the
    /// sweeper decides: the class is named or all are, and the ranges overlap).
    pub fn covers(&self, class: &str, oldest: u64, newest: u64) -> bool {
        self.classes
            .as_ref()
            .is_none_or(|c| c.iter().any(|n| n == class))
            && self.from_unix_ns.is_none_or(|f| newest >= f)
            && self.until_unix_ns.is_none_or(|u| oldest <= u)
    }
}

/// `meshlog.retention.class` of a deletion record.
const CLASS: &str = "meshlog.retention.class";
/// The deleted segment's file name.
const SEGMENT: &str = "meshlog.retention.segment";
/// Its oldest retention time (receive time).
const OLDEST: &str = "meshlog.retention.segment.oldest_observed_unix_nano";
/// Its newest retention time.
const NEWEST: &str = "meshlog.retention.segment.newest_observed_unix_nano";
/// When the sweep deleted it.
const SWEPT: &str = "meshlog.retention.swept_unix_nano";
/// The signed receipt.
const RECEIPT: &str = "meshlog.retention.receipt";

/// Every key [`RetentionPolicy::outside`] reads.
pub(crate) const KEYS: [&str; 6] = [CLASS, SEGMENT, OLDEST, NEWEST, SWEPT, RECEIPT];

/// What a deletion says of itself.
struct Deletion<'a> {
    class: &'a str,
    segment: &'a str,
    oldest: u64,
    newest: u64,
    swept: u64,
}

impl RetentionPolicy {
    /// Why the deletion `r` (a `meshlog.retention.deletion` record) is outside this policy;
    /// `None` when the policy allows it.
    pub fn outside(&self, r: &Flat<'_>) -> Option<String> {
        let receipt;
        let d = match &self.verifier {
            Some(key) => {
                // Not signed with this collector's key: no deletion of its own.
                let body = open_note(r.str(RECEIPT)?.as_bytes(), key).ok()?;
                receipt = match Receipt::parse_body(body) {
                    Ok(receipt) => receipt,
                    Err(e) => {
                        return Some(format!(
                            "the signed receipt of segment {} is no deletion by policy: {e}",
                            r.str(SEGMENT).unwrap_or("?")
                        ));
                    }
                };
                Deletion {
                    class: &receipt.class,
                    segment: &receipt.segment,
                    oldest: receipt.oldest_observed_unix_ns,
                    newest: receipt.newest_observed_unix_ns,
                    swept: receipt.swept_unix_ns,
                }
            }
            None => {
                let segment = r.str(SEGMENT).unwrap_or("?");
                let Some(class) = r.str(CLASS) else {
                    return Some(format!("a deletion of segment {segment} names no class"));
                };
                let at = |k: &str| r.int(k).and_then(|t| u64::try_from(t).ok());
                let (Some(oldest), Some(newest), Some(swept)) = (at(OLDEST), at(NEWEST), at(SWEPT))
                else {
                    return Some(format!(
                        "the deletion of segment {segment} of class {class} does not say its \
                         time range"
                    ));
                };
                Deletion {
                    class,
                    segment,
                    oldest,
                    newest,
                    swept,
                }
            }
        };
        let Deletion {
            class,
            segment,
            oldest,
            newest,
            swept,
        } = d;
        let what = format!("segment {segment} of class {class}");
        let Some(days) = self
            .classes
            .iter()
            .find(|(c, _)| c == class)
            .map(|(_, d)| *d)
        else {
            return Some(format!(
                "{what} was deleted, but the policy has no class {class}"
            ));
        };
        // The sweeper's rule: expired only when the sweep is more than `days` past the
        // segment's newest record.
        let kept_until = newest.saturating_add(u64::from(days).saturating_mul(DAY_NS));
        if swept <= kept_until {
            return Some(format!(
                "{what} was deleted {:.1} days after its newest record; the class keeps {days} days",
                swept.saturating_sub(newest) as f64 / DAY_NS as f64
            ));
        }
        if let Some(h) = self.holds.iter().find(|h| h.covers(class, oldest, newest)) {
            return Some(format!("{what} was deleted under legal hold {}", h.name));
        }
        None
    }
}
