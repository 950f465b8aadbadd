//! The sweeper: closes segments that are old enough, deletes expired ones with a signed
//! receipt, and leaves everything a legal hold covers.
//!
//! [`Sweeper::sweep`] is one pass at a given time (`now`, so tests drive it with any clock and
//! never sleep for expiry); [`Sweeper::spawn`] runs it on its own thread at start and every
//! interval with a [`Clock`]. Per class, a pass:
//!
//! 0. advances the class's retention clock ([`CLOCK_FILE`], below);
//! 1. closes the active (newest) segment when its first frame was received `segment_max_age`
//!    ago or earlier ([`StoreHandle::rotate`]), so quiet classes expire too;
//! 2. reads `receipts.log` (cutting nothing: only an append cuts a torn tail) and finishes any
//!    deletion whose receipt is durable but whose segment is still there (a crash between the
//!    two), re-checking everything a new deletion checks: the receipt must verify with the
//!    signing key's verifier and name this class and segment (else it is never acted on), the
//!    file must still match its length and SHA-256, and the segment must be expired and unheld
//!    now (decided on a fresh read); then the receipt record is stored (once: it has a fixed
//!    batch id), the segment deleted, no second receipt written;
//! 3. for every other closed segment, learns its retention-time range (each frame's receive
//!    time from its header, or for a frame without one its records' observed times) and its
//!    records' observed-time range (decompressing it once; remembered in `retention.cache`,
//!    which is never evidence) and, when it is expired (below): keeps it if a hold covers
//!    either range, keeps it and logs an error if no signing key is configured, and otherwise
//!    deletes it:
//!    - re-reads the whole file: length, SHA-256, frames, records, time range (expiry and
//!      holds are checked again on these), every frame's Merkle leaf hash;
//!    - writes the leaf hashes to `deleted/<segment>.leaves` (durably);
//!    - signs the [`Receipt`] and appends it to `receipts.log`, fsync'd;
//!    - appends the receipt as a `meshlog.retention.deletion` record to the class's own store
//!      and waits for its fsync, so the tamper-evident log covers the deletion;
//!    - only then deletes the segment file and fsyncs the directory.
//!
//! A failure at any step leaves the segment in place (logged); the next pass tries again. A
//! pass never touches the active segment, never deletes without a durable receipt, and never
//! deletes a damaged segment (any damage is an error that keeps it).
//!
//! # Expiry, and clocks that jump
//!
//! A closed segment is expired at a pass at wall-clock time `now` when **both**:
//!
//! 1. `now` is more than the class's days past its newest retention time (at exactly `days`
//!    it is kept);
//! 2. it has been closed for at least `days` by the class's **retention clock**.
//!
//! The retention clock ([`CLOCK_FILE`], per class) advances at each pass by the monotonic time
//! ([`Clock::monotonic_ns`]) since the previous pass of this process: not by the wall clock,
//! and not while the collector is stopped. A segment first seen closed is dated on it from its
//! newest retention time, counted back by the wall clock only as far back as the wall clock
//! has kept pace with the monotonic clock (within 1 s or 0.1 % per pass) in this run; beyond
//! that, at the pass. So a wall clock that jumps forward cannot delete anything before `days`
//! of monotonic time, one that jumps backward only delays, and a stop delays by its length.
//! Without `retention.clock` (a new class, an upgrade) the first pass believes the wall clock
//! once; an unreadable one stops deletion in its class. Without a monotonic reading
//! ([`Sweeper::sweep`]) the clock advances by how far `now` passes the latest `now` seen, i.e.
//! the wall clock is believed.

use super::classes::ClassRoutes;
use super::policy::{Hold, RetentionConfig, days_ns};
use meshlog_format::batch_id::BatchId;
use meshlog_format::frame::{Damage, FrameBuilder};
use meshlog_format::fsutil::sync_dir;
use meshlog_format::layout::class_dir;
use meshlog_format::reader::{SEGMENTS_DIR, ScanError, SegmentFile, SegmentScanner, list_segments};
use meshlog_format::receipt::{
    self, DELETED_DIR, RECEIPTS_FILE, Receipt, ReceiptError, segment_name,
};
use meshlog_store::{Appended, StoreError, StoreHandle};
use meshlog_tlog::keys::{Keyring, SignerKey};
use meshlog_tlog::merkle::Hash;
use meshlog_tlog::seal::OpenError;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::future::Future;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The sweeper's cache of closed segments' time ranges, in each class directory.
pub const CACHE_FILE: &str = "retention.cache";
/// Version of [`CACHE_FILE`] this build writes (2: receive-time and observed-time ranges).
const CACHE_VERSION: u32 = 2;
/// The sweeper's monotonic view of time, in each class directory (see the module docs).
pub const CLOCK_FILE: &str = "retention.clock";
/// Version of [`CLOCK_FILE`] this build writes.
const CLOCK_VERSION: u32 = 1;

/// Where the sweeper (and ingest, for receive times) gets the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Nanoseconds since the Unix epoch.
    fn now_unix_ns(&self) -> u64;

    /// A monotonic reading in nanoseconds (only differences between two readings of one
    /// process mean anything), if this clock has one. Without it the sweeper believes the
    /// wall clock (see the module docs).
    fn monotonic_ns(&self) -> Option<u64> {
        None
    }
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ns(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    fn monotonic_ns(&self) -> Option<u64> {
        static START: OnceLock<Instant> = OnceLock::new();
        let start = *START.get_or_init(Instant::now);
        Some(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}

/// A clock that says what it is told (tests): a wall clock and, once set, a monotonic one.
#[derive(Debug)]
pub struct ManualClock {
    wall: AtomicU64,
    /// `u64::MAX`: no monotonic clock.
    mono: AtomicU64,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new(0)
    }
}

impl ManualClock {
    /// A clock at `unix_ns`, without a monotonic clock.
    pub fn new(unix_ns: u64) -> Self {
        ManualClock {
            wall: AtomicU64::new(unix_ns),
            mono: AtomicU64::new(u64::MAX),
        }
    }

    /// Sets the time.
    pub fn set(&self, unix_ns: u64) {
        self.wall.store(unix_ns, Ordering::SeqCst);
    }

    /// Sets the monotonic reading (from then on the clock has one).
    pub fn set_monotonic(&self, ns: u64) {
        self.mono.store(ns.min(u64::MAX - 1), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix_ns(&self) -> u64 {
        self.wall.load(Ordering::SeqCst)
    }

    fn monotonic_ns(&self) -> Option<u64> {
        Some(self.mono.load(Ordering::SeqCst)).filter(|&m| m != u64::MAX)
    }
}

/// Why one step of a sweep failed (the segment concerned stays).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// An I/O error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A closed segment is damaged: never deleted, so the damage stays for inspection.
    #[error("segment {} is damaged at offset {offset}: {damage}", path.display())]
    Damaged {
        /// The segment.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What.
        damage: Damage,
    },
    /// A sealed frame could not be opened (no key, wrong key): its time range is unknown.
    #[error("segment {}, frame at offset {offset}: {source}", path.display())]
    Sealed {
        /// The segment.
        path: PathBuf,
        /// The frame.
        offset: u64,
        /// Why.
        source: OpenError,
    },
    /// A sealed frame, and no data-encryption keys.
    #[error(
        "segment {}, frame at offset {offset} is encrypted with data-encryption key {key_id:?} \
         and the collector has no key file: its time range is unknown",
        path.display()
    )]
    NoKeys {
        /// The segment.
        path: PathBuf,
        /// The frame.
        offset: u64,
        /// The key id.
        key_id: String,
    },
    /// A payload that does not decode, or a record without an observed time.
    #[error("segment {}, frame at offset {offset}: {reason}", path.display())]
    BadPayload {
        /// The segment.
        path: PathBuf,
        /// The frame.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A receipt in `receipts.log` for a segment still there that does not verify with the
    /// signing key's verifier, or names another class or segment: never acted on.
    #[error(
        "segment {}: the receipt naming it in receipts.log is not valid ({reason}); the segment \
         is not deleted: inspect receipts.log",
        path.display()
    )]
    ReceiptInvalid {
        /// The segment.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A segment that no longer matches the receipt written for it.
    #[error(
        "segment {} does not match its receipt ({what}); it is not deleted: inspect it",
        path.display()
    )]
    ReceiptMismatch {
        /// The segment.
        path: PathBuf,
        /// What differs.
        what: String,
    },
    /// `receipts.log` could not be read or appended to.
    #[error(transparent)]
    Receipts(#[from] receipt::ReceiptLogError),
    /// A receipt could not be made.
    #[error("making a receipt: {0}")]
    Receipt(#[from] ReceiptError),
    /// The class's store refused the receipt record.
    #[error("storing the receipt record: {0}")]
    Store(#[from] StoreError),
    /// The class's store would not close its active segment.
    #[error("closing the active segment: {0}")]
    Rotate(#[source] StoreError),
    /// `receipts.log` cannot be read: deleting without knowing what was deleted could give a
    /// segment a second receipt.
    #[error("{0}; nothing is deleted in this class until it is fixed")]
    ReceiptsUnreadable(#[source] receipt::ReceiptLogError),
    /// An entry of `receipts.log`, intact as written, that does not parse: altered.
    #[error(
        "{}, receipt at offset {offset}: {source}; nothing is deleted in this class until it is \
         fixed",
        path.display()
    )]
    ReceiptAltered {
        /// `receipts.log`.
        path: PathBuf,
        /// The entry's offset.
        offset: u64,
        /// Why it does not parse.
        source: ReceiptError,
    },
    /// A receipt names a segment that is not expired now.
    #[error(
        "segment {segment} is named by a receipt in receipts.log but is not expired now; it is \
         kept: inspect receipts.log"
    )]
    ReceiptEarly {
        /// The segment file name.
        segment: String,
    },
    /// The retention clock cannot be read or kept.
    #[error("{0}")]
    Clock(String),
    /// The deletion record could not be built into a frame.
    #[error("building the receipt record: {0}")]
    Build(#[source] meshlog_format::frame::BuildError),
}

impl SweepError {
    /// A short stable name of the kind, for logs, reports and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            SweepError::Io { .. } => "io",
            SweepError::Damaged { .. } => "damaged",
            SweepError::Sealed { .. } | SweepError::NoKeys { .. } => "sealed",
            SweepError::BadPayload { .. } => "bad_payload",
            SweepError::ReceiptInvalid { .. }
            | SweepError::ReceiptMismatch { .. }
            | SweepError::ReceiptAltered { .. }
            | SweepError::ReceiptEarly { .. } => "receipt",
            SweepError::Receipts(_) | SweepError::ReceiptsUnreadable(_) => "receipts_log",
            SweepError::Receipt(_) => "receipt_make",
            SweepError::Store(_) | SweepError::Rotate(_) | SweepError::Build(_) => "store",
            SweepError::Clock(_) => "clock",
        }
    }
}

/// What a sweep did in one class.
#[derive(Debug, Default)]
pub struct ClassReport {
    /// The class.
    pub class: String,
    /// The segment closed because it was old enough.
    pub rotated: Option<u64>,
    /// Segments deleted, each with a new receipt.
    pub deleted: Vec<String>,
    /// Segments deleted under a receipt written by an earlier, interrupted pass.
    pub completed: Vec<String>,
    /// Records in the segments deleted (`deleted` and `completed`).
    pub records_deleted: u64,
    /// Expired segments kept by legal holds, with the holds' names.
    pub held: Vec<(String, Vec<String>)>,
    /// Expired segments kept because no signing key is configured.
    pub unsigned: Vec<String>,
    /// Closed segments not expired yet.
    pub kept: usize,
    /// What failed (the segments concerned stay), typed so it can be counted by kind.
    pub errors: Vec<SweepError>,
}

/// What one sweep did.
#[derive(Debug, Default)]
pub struct SweepReport {
    /// Per class, in class order.
    pub classes: Vec<ClassReport>,
}

impl SweepReport {
    /// The report of class `name`.
    pub fn class(&self, name: &str) -> Option<&ClassReport> {
        self.classes.iter().find(|c| c.class == name)
    }
}

/// One class as the sweeper sees it.
#[derive(Debug, Clone)]
pub struct SweepClass {
    /// Its name.
    pub name: String,
    /// Its directory (a store directory).
    pub dir: PathBuf,
    /// Days kept.
    pub days: u32,
    /// Its store, for rotation and receipt records.
    pub handle: StoreHandle,
}

/// The time ranges and counts of a closed segment (what the cache keeps). `oldest` and
/// `newest` are retention times: each frame's receive time (its header's received entry), or
/// for a frame written before that entry existed, its records' observed times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Summary {
    bytes: u64,
    frames: u64,
    records: u64,
    oldest: Option<u64>,
    newest: Option<u64>,
    /// The records' `observed_time_unix_nano` range (the sender's time: data, and what legal
    /// holds are also matched on).
    #[serde(default)]
    observed_oldest: Option<u64>,
    #[serde(default)]
    observed_newest: Option<u64>,
}

/// [`CLOCK_FILE`]: the retention clock and when each closed segment was closed by it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct ClockFile {
    version: u32,
    /// The retention clock, nanoseconds: advanced by monotonic time between passes.
    retention_ns: u64,
    /// The latest wall-clock `now` a pass ran at.
    high_water_unix_ns: u64,
    /// Per closed segment: the retention clock when it was closed (as far as the sweeper can
    /// tell; see the module docs).
    closed: BTreeMap<String, u64>,
}

/// One class's retention clock, in memory.
#[derive(Debug, Default)]
struct ClassClock {
    file: Option<ClockFile>,
    loaded: bool,
    /// Wall and monotonic readings of this process's previous pass.
    last: Option<(u64, u64)>,
    /// The retention clock from which on the wall clock has kept pace with the monotonic
    /// clock (wall-clock differences are believed back to there); `None`: believed without
    /// limit (no monotonic clock).
    trusted_since: Option<u64>,
}

impl ClassClock {
    /// Advances the clock for a pass at `now` (`mono`: the monotonic reading, if any).
    fn advance(&mut self, dir: &Path, now: u64, mono: Option<u64>) -> Result<(), String> {
        let path = dir.join(CLOCK_FILE);
        if !self.loaded {
            self.file = match std::fs::read(&path) {
                Ok(bytes) => match serde_json::from_slice::<ClockFile>(&bytes) {
                    Ok(f) if f.version == CLOCK_VERSION => Some(f),
                    Ok(f) => {
                        return Err(format!(
                            "{}: unknown version {}; nothing is deleted in this class until it is \
                             fixed",
                            path.display(),
                            f.version
                        ));
                    }
                    Err(e) => {
                        return Err(format!(
                            "{}: {e}; nothing is deleted in this class until it is fixed (remove \
                             it to have the sweeper believe the wall clock once)",
                            path.display()
                        ));
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(format!(
                        "{}: {e}; nothing is deleted in this class until it is readable",
                        path.display()
                    ));
                }
            };
            self.loaded = true;
        }
        match &mut self.file {
            None => {
                // No clock yet (a new class, or the first start of a build with one): the
                // wall clock is believed once, for the segments already closed.
                self.file = Some(ClockFile {
                    version: CLOCK_VERSION,
                    retention_ns: now,
                    high_water_unix_ns: now,
                    closed: BTreeMap::new(),
                });
                self.trusted_since = mono.map(|_| 0);
            }
            Some(f) => {
                match (mono, self.last) {
                    (Some(m), Some((last_now, last_mono))) => {
                        let elapsed = m.saturating_sub(last_mono);
                        f.retention_ns = f.retention_ns.saturating_add(elapsed);
                        let wall = i128::from(now) - i128::from(last_now);
                        let tolerance = i128::from((elapsed / 1000).max(1_000_000_000));
                        if (wall - i128::from(elapsed)).abs() > tolerance {
                            tracing::warn!(
                                class_dir = %dir.display(),
                                wall_clock_step_ns = wall,
                                monotonic_step_ns = elapsed,
                                "the wall clock jumped between two sweeps; retention counts \
                                 monotonic time"
                            );
                            self.trusted_since = Some(f.retention_ns);
                        }
                    }
                    // The first pass of this process: the time it was stopped is not counted,
                    // and the wall clock is not believed back past now.
                    (Some(_), None) => self.trusted_since = Some(f.retention_ns),
                    (None, _) => {
                        f.retention_ns = f
                            .retention_ns
                            .saturating_add(now.saturating_sub(f.high_water_unix_ns));
                        self.trusted_since = None;
                    }
                }
                f.high_water_unix_ns = f.high_water_unix_ns.max(now);
            }
        }
        self.last = mono.map(|m| (now, m));
        Ok(())
    }

    /// Records `segment` as closed, first seen at a pass at wall time `now`, its newest
    /// retention time `newest`: closed at the retention clock now, less the wall-clock time
    /// since `newest` as far back as the wall clock is believed.
    fn saw_closed(&mut self, segment: &str, now: u64, newest: Option<u64>) {
        let trusted = self.trusted_since;
        let Some(f) = &mut self.file else {
            return;
        };
        if f.closed.contains_key(segment) {
            return;
        }
        let r = f.retention_ns;
        let span = trusted.map_or(r, |t| r.saturating_sub(t));
        let back = newest.map_or(0, |n| now.saturating_sub(n)).min(span);
        f.closed.insert(segment.to_owned(), r - back.min(r));
    }

    /// How long `segment` has been closed by the retention clock; 0 if it is not recorded.
    fn closed_age(&self, segment: &str) -> u64 {
        self.file
            .as_ref()
            .and_then(|f| {
                f.closed
                    .get(segment)
                    .map(|c| f.retention_ns.saturating_sub(*c))
            })
            .unwrap_or(0)
    }

    fn knows(&self, segment: &str) -> bool {
        self.file
            .as_ref()
            .is_some_and(|f| f.closed.contains_key(segment))
    }

    /// Forgets segments that are gone and writes the file durably.
    fn save(&mut self, dir: &Path, keep: impl Fn(&str) -> bool) -> io::Result<()> {
        let Some(f) = &mut self.file else {
            return Ok(());
        };
        f.closed.retain(|name, _| keep(name));
        let path = dir.join(CLOCK_FILE);
        let tmp = dir.join(format!("{CLOCK_FILE}.tmp"));
        let mut file = File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(f).map_err(io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        sync_dir(dir)
    }
}

/// A full read of a segment: the summary plus what a receipt needs.
#[derive(Debug)]
struct FullScan {
    summary: Summary,
    sha256: Hash,
    leaves: Vec<Hash>,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct CacheFile {
    version: u32,
    segments: BTreeMap<String, Summary>,
}

/// Told what each pass of a running sweeper did (the collector counts deletions in its
/// metrics); kept here as a trait so this crate knows nothing of who listens.
pub trait SweepObserver: Send + Sync + std::fmt::Debug {
    /// A pass ended with `report`.
    fn swept(&self, report: &SweepReport);
}

/// Deletes expired segments of every class; see the module docs.
#[derive(Debug)]
pub struct Sweeper {
    classes: Vec<SweepClass>,
    segment_max_age_ns: u64,
    signer: Option<Arc<SignerKey>>,
    keys: Option<Arc<Keyring>>,
    /// Per class: segment name → summary of a closed segment, and whether it changed since
    /// it was saved.
    cache: Vec<(BTreeMap<String, Summary>, bool)>,
    /// Per class: its retention clock.
    clocks: Vec<ClassClock>,
    stop: Arc<AtomicBool>,
    observer: Option<Arc<dyn SweepObserver>>,
}

impl Sweeper {
    /// A sweeper over `classes`. Without `signer` it deletes nothing (and says so each pass);
    /// `keys` opens sealed frames to read their times.
    pub fn new(
        classes: Vec<SweepClass>,
        segment_max_age: Duration,
        signer: Option<Arc<SignerKey>>,
        keys: Option<Arc<Keyring>>,
    ) -> Self {
        let cache = classes
            .iter()
            .map(|c| (load_cache(&c.dir), false))
            .collect();
        let clocks = classes.iter().map(|_| ClassClock::default()).collect();
        Sweeper {
            classes,
            segment_max_age_ns: u64::try_from(segment_max_age.as_nanos()).unwrap_or(u64::MAX),
            signer,
            keys,
            cache,
            clocks,
            stop: Arc::new(AtomicBool::new(false)),
            observer: None,
        }
    }

    /// Reports every pass to `observer` (from [`sweep`](Self::sweep), [`sweep_at`](Self::sweep_at)
    /// and the thread of [`spawn`](Self::spawn)).
    pub fn with_observer(mut self, observer: Arc<dyn SweepObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// A sweeper over the class stores of `policy` in `data_dir`, reached through `routes`.
    pub fn for_classes(
        data_dir: &Path,
        policy: &RetentionConfig,
        routes: &ClassRoutes,
        signer: Option<Arc<SignerKey>>,
        keys: Option<Arc<Keyring>>,
    ) -> Self {
        let classes = routes
            .names()
            .iter()
            .zip(routes.handles())
            .enumerate()
            .map(|(i, (name, handle))| SweepClass {
                name: name.clone(),
                dir: class_dir(data_dir, name),
                days: policy.days(i),
                handle: handle.clone(),
            })
            .collect();
        Sweeper::new(
            classes,
            Duration::from_secs(policy.segment_max_age_s),
            signer,
            keys,
        )
    }

    /// One pass over every class at time `now_unix_ns`, with `holds` in force, without a
    /// monotonic clock (the wall clock is believed; see the module docs).
    pub fn sweep(&mut self, now_unix_ns: u64, holds: &[Hold]) -> SweepReport {
        self.sweep_at(now_unix_ns, None, holds)
    }

    /// One pass at wall-clock time `now_unix_ns` and monotonic reading `monotonic_ns` (see
    /// [`Clock::monotonic_ns`]), with `holds` in force.
    pub fn sweep_at(
        &mut self,
        now_unix_ns: u64,
        monotonic_ns: Option<u64>,
        holds: &[Hold],
    ) -> SweepReport {
        let mut report = SweepReport::default();
        for i in 0..self.classes.len() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let r = self.sweep_class(i, now_unix_ns, monotonic_ns, holds);
            log_report(&r, self.classes.get(i).map_or(0, |c| c.days));
            report.classes.push(r);
        }
        if let Some(o) = &self.observer {
            o.swept(&report);
        }
        report
    }

    fn sweep_class(
        &mut self,
        i: usize,
        now: u64,
        mono: Option<u64>,
        holds: &[Hold],
    ) -> ClassReport {
        let Some(class) = self.classes.get(i).cloned() else {
            return ClassReport::default();
        };
        let mut r = ClassReport {
            class: class.name.clone(),
            ..ClassReport::default()
        };
        if let Some(clock) = self.clocks.get_mut(i)
            && let Err(e) = clock.advance(&class.dir, now, mono)
        {
            r.errors.push(SweepError::Clock(e));
            return r;
        }
        let segments_dir = class.dir.join(SEGMENTS_DIR);
        let listed = |r: &mut ClassReport| match list_segments(&segments_dir) {
            Ok(s) => Some(s),
            Err(source) => {
                r.errors.push(SweepError::Io {
                    path: segments_dir.clone(),
                    source,
                });
                None
            }
        };
        let Some(segments) = listed(&mut r) else {
            return r;
        };

        // 1. Close the active segment once it is old enough.
        if let Some(active) = segments.last() {
            match first_time(&active.path, self.keys.as_deref()) {
                Ok(Some(oldest)) if oldest.saturating_add(self.segment_max_age_ns) <= now => {
                    match block_on(class.handle.rotate()) {
                        Ok(closed) => r.rotated = closed,
                        Err(e) => r.errors.push(SweepError::Rotate(e)),
                    }
                }
                Ok(_) => {}
                Err(e) => r.errors.push(e),
            }
        }
        let Some(segments) = listed(&mut r) else {
            return r;
        };

        // 2. Receipts already written, by segment.
        let receipts_path = class.dir.join(RECEIPTS_FILE);
        let logged = match receipt::read_log(&receipts_path) {
            Ok(l) => l,
            Err(e) => {
                // Deleting without knowing what was deleted could write a second receipt.
                r.errors.push(SweepError::ReceiptsUnreadable(e));
                return r;
            }
        };
        let mut receipted: HashMap<String, (Receipt, String)> = HashMap::new();
        for entry in &logged.entries {
            match unverified(&entry.note) {
                Ok(pair) => {
                    receipted.insert(pair.0.segment.clone(), pair);
                }
                Err(e) => {
                    // Intact as written but unreadable: altered. Which segment it names is
                    // unknown, so a deletion now could give a segment a second receipt.
                    r.errors.push(SweepError::ReceiptAltered {
                        path: receipts_path.clone(),
                        offset: entry.offset,
                        source: e,
                    });
                    return r;
                }
            }
        }

        // 3. Every closed segment.
        let closed = segments.split_last().map_or(&[][..], |(_, rest)| rest);
        for seg in closed {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let name = segment_name(seg.seq);
            // A segment first seen closed is read afresh (never from the cache) to date its
            // closing on the retention clock.
            let first_seen = !self.clocks.get(i).is_some_and(|c| c.knows(&name));
            let summary = match self.summary(i, seg, first_seen) {
                Ok(s) => s,
                Err(e) => {
                    r.errors.push(e);
                    continue;
                }
            };
            let age = match self.clocks.get_mut(i) {
                Some(clock) => {
                    clock.saw_closed(&name, now, summary.newest);
                    clock.closed_age(&name)
                }
                None => 0,
            };
            if let Some((receipt, note)) = receipted.get(&name) {
                match self.finish(&class, seg, receipt, note, now, age, holds) {
                    Ok(Decision::Delete) => {
                        r.records_deleted += receipt.records;
                        r.completed.push(name);
                    }
                    Ok(Decision::Held(names)) => r.held.push((name, names)),
                    Ok(Decision::Keep) if self.signer.is_none() => r.unsigned.push(name),
                    Ok(Decision::Keep) => r.errors.push(SweepError::ReceiptEarly { segment: name }),
                    Err(e) => r.errors.push(e),
                }
                continue;
            }
            match self.decide(&class, &name, &summary, now, age, holds) {
                Decision::Keep => r.kept += 1,
                Decision::Held(names) => r.held.push((name, names)),
                Decision::Delete if self.signer.is_none() => r.unsigned.push(name),
                Decision::Delete => match self.delete(&class, seg, now, age, holds) {
                    Ok(Decision::Delete) => {
                        r.records_deleted += summary.records;
                        r.deleted.push(name);
                    }
                    Ok(Decision::Held(names)) => r.held.push((name, names)),
                    Ok(Decision::Keep) => r.kept += 1,
                    Err(e) => r.errors.push(e),
                },
            }
        }
        if let Some((cache, dirty)) = self.cache.get_mut(i) {
            // Forget segments that are gone (deleted now, or by a pass before a restart).
            let before = cache.len();
            cache.retain(|name, _| {
                closed
                    .iter()
                    .any(|s| segment_name(s.seq) == *name && s.path.exists())
            });
            *dirty |= cache.len() != before;
            if *dirty {
                match save_cache(&class.dir, cache) {
                    Ok(()) => *dirty = false,
                    Err(e) => tracing::warn!(
                        class = %class.name,
                        error = %e,
                        "cannot save {CACHE_FILE} (a cache: the next start reads the segments again)"
                    ),
                }
            }
        }
        if let Some(clock) = self.clocks.get_mut(i)
            && let Err(e) = clock.save(&class.dir, |name| {
                closed
                    .iter()
                    .any(|s| segment_name(s.seq) == name && s.path.exists())
            })
        {
            r.errors.push(SweepError::Io {
                path: class.dir.join(CLOCK_FILE),
                source: e,
            });
        }
        r
    }

    /// What to do with a closed segment of `class` summarised as `s`, closed for `age` by the
    /// retention clock: expired when its newest retention time plus the class's days is before
    /// `now` (exactly `days` later it is kept) and it has been closed for at least `days` by
    /// the retention clock; then kept if a hold covers its retention-time or observed-time
    /// range.
    fn decide(
        &self,
        class: &SweepClass,
        name: &str,
        s: &Summary,
        now: u64,
        age: u64,
        holds: &[Hold],
    ) -> Decision {
        let (Some(oldest), Some(newest)) = (s.oldest, s.newest) else {
            tracing::debug!(class = %class.name, segment = name, "a segment without records is kept");
            return Decision::Keep;
        };
        let days = days_ns(class.days);
        if newest.saturating_add(days) >= now {
            return Decision::Keep;
        }
        if age < days {
            tracing::debug!(
                class = %class.name,
                segment = name,
                closed_for_ns = age,
                "expired by the wall clock but not closed for the class's days by the retention \
                 clock: kept"
            );
            return Decision::Keep;
        }
        let observed = (s.observed_oldest, s.observed_newest);
        let holding: Vec<String> = holds
            .iter()
            .filter(|h| {
                h.covers(&class.name, oldest, newest)
                    || matches!(observed, (Some(o), Some(n)) if h.covers(&class.name, o, n))
            })
            .map(|h| h.name.clone())
            .collect();
        if holding.is_empty() {
            Decision::Delete
        } else {
            Decision::Held(holding)
        }
    }

    /// The cached summary of a closed segment, or a fresh one (then cached).
    fn summary(&mut self, i: usize, seg: &SegmentFile, fresh: bool) -> Result<Summary, SweepError> {
        let name = segment_name(seg.seq);
        let len = std::fs::metadata(&seg.path)
            .map_err(|source| SweepError::Io {
                path: seg.path.clone(),
                source,
            })?
            .len();
        if !fresh
            && let Some(s) = self.cache.get(i).and_then(|(c, _)| c.get(&name))
            && s.bytes == len
        {
            return Ok(*s);
        }
        let s = scan(&seg.path, self.keys.as_deref(), false)?.summary;
        if let Some((c, dirty)) = self.cache.get_mut(i) {
            c.insert(name, s);
            *dirty = true;
        }
        Ok(s)
    }

    /// Deletes an expired segment with a receipt; returns what the fresh read decided
    /// (`Delete` when it was deleted).
    fn delete(
        &self,
        class: &SweepClass,
        seg: &SegmentFile,
        now: u64,
        age: u64,
        holds: &[Hold],
    ) -> Result<Decision, SweepError> {
        let Some(signer) = &self.signer else {
            return Ok(Decision::Keep);
        };
        let full = scan(&seg.path, self.keys.as_deref(), true)?;
        let name = segment_name(seg.seq);
        // Decided again on the bytes about to be deleted, not on the cache.
        let decision = self.decide(class, &name, &full.summary, now, age, holds);
        let (Decision::Delete, Some(oldest), Some(newest), Some(first), Some(last)) = (
            &decision,
            full.summary.oldest,
            full.summary.newest,
            full.leaves.first(),
            full.leaves.last(),
        ) else {
            return Ok(decision);
        };
        let leaves_sha256 = write_leaves(&class.dir, &name, &full.leaves)?;
        let receipt = Receipt {
            class: class.name.clone(),
            segment: name,
            bytes: full.summary.bytes,
            sha256: full.sha256,
            frames: full.summary.frames,
            records: full.summary.records,
            leaves_sha256,
            first_leaf: *first,
            last_leaf: *last,
            oldest_observed_unix_ns: oldest,
            newest_observed_unix_ns: newest,
            retention_days: class.days,
            swept_unix_ns: now,
        };
        let note = receipt.sign(signer)?;
        receipt::append(&class.dir.join(RECEIPTS_FILE), &note)?;
        store_receipt(class, &receipt, &note)?;
        remove_segment(seg)?;
        tracing::info!(
            class = %class.name,
            segment = %receipt.segment,
            records = receipt.records,
            bytes = receipt.bytes,
            newest_observed_unix_ns = newest,
            days = class.days,
            "deleted an expired segment; its signed receipt is in receipts.log and in the store"
        );
        Ok(Decision::Delete)
    }

    /// Completes a deletion whose receipt is already durable, as if it were a new one: the
    /// receipt must verify with the signing key's verifier and name this class and segment,
    /// the file must still match it, and the segment must be expired and unheld now (decided
    /// on a fresh read); then the record is stored once and the file goes. No second receipt.
    /// Returns what the fresh read decided (`Delete` when it was deleted; `Keep` without a
    /// signing key, since the receipt cannot be checked).
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        class: &SweepClass,
        seg: &SegmentFile,
        receipt: &Receipt,
        note: &str,
        now: u64,
        age: u64,
        holds: &[Hold],
    ) -> Result<Decision, SweepError> {
        let Some(signer) = &self.signer else {
            return Ok(Decision::Keep);
        };
        let invalid = |reason: String| SweepError::ReceiptInvalid {
            path: seg.path.clone(),
            reason,
        };
        let verified = Receipt::verify(note.as_bytes(), &signer.verifier())
            .map_err(|e| invalid(e.to_string()))?;
        let name = segment_name(seg.seq);
        if verified != *receipt || verified.class != class.name || verified.segment != name {
            return Err(invalid(format!(
                "it names class {:?}, segment {:?}",
                verified.class, verified.segment
            )));
        }
        let full = scan(&seg.path, self.keys.as_deref(), true)?;
        let mismatch = |what: String| SweepError::ReceiptMismatch {
            path: seg.path.clone(),
            what,
        };
        if full.summary.bytes != receipt.bytes {
            return Err(mismatch(format!(
                "{} bytes, the receipt says {}",
                full.summary.bytes, receipt.bytes
            )));
        }
        if full.sha256 != receipt.sha256 {
            return Err(mismatch("its SHA-256 differs".into()));
        }
        let decision = self.decide(class, &name, &full.summary, now, age, holds);
        if decision != Decision::Delete {
            return Ok(decision);
        }
        let leaves = class
            .dir
            .join(DELETED_DIR)
            .join(receipt::leaves_file_name(&receipt.segment));
        if !leaves.exists() {
            write_leaves(&class.dir, &receipt.segment, &full.leaves)?;
        }
        store_receipt(class, receipt, note)?;
        remove_segment(seg)?;
        tracing::info!(
            class = %class.name,
            segment = %receipt.segment,
            "deleted a segment whose receipt an interrupted sweep had written"
        );
        Ok(Decision::Delete)
    }

    /// Runs a pass now and then every `interval` on a thread of its own, with the time from
    /// `clock` and the holds from `holds` (called before each pass: a failure skips the pass,
    /// since deleting with unknown holds could destroy held data).
    pub fn spawn(
        mut self,
        clock: Arc<dyn Clock>,
        interval: Duration,
        mut holds: impl FnMut() -> Result<Vec<Hold>, String> + Send + 'static,
    ) -> io::Result<SweeperThread> {
        let (tx, rx) = mpsc::channel::<()>();
        let stop = self.stop.clone();
        let thread = std::thread::Builder::new()
            .name("meshlog-sweeper".into())
            .spawn(move || {
                loop {
                    match holds() {
                        Ok(h) => {
                            self.sweep_at(clock.now_unix_ns(), clock.monotonic_ns(), &h);
                        }
                        Err(e) => tracing::error!(
                            error = %e,
                            "retention sweep skipped: the legal holds could not be read, and \
                             nothing is deleted while they are unknown"
                        ),
                    }
                    if !matches!(
                        rx.recv_timeout(interval),
                        Err(mpsc::RecvTimeoutError::Timeout)
                    ) {
                        break;
                    }
                }
            })?;
        Ok(SweeperThread {
            tx,
            stop,
            thread: Some(thread),
        })
    }
}

/// A running sweeper thread; [`stop`](Self::stop) ends it.
#[derive(Debug)]
pub struct SweeperThread {
    tx: mpsc::Sender<()>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SweeperThread {
    /// Stops the thread (a pass in progress stops before its next segment) and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.tx.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Keep,
    Held(Vec<String>),
    Delete,
}

fn log_report(r: &ClassReport, days: u32) {
    if let Some(seq) = r.rotated {
        tracing::info!(class = %r.class, segment = %segment_name(seq), "closed the active segment: it reached segment_max_age_s");
    }
    if !r.held.is_empty() {
        let mut holds: Vec<&str> = r
            .held
            .iter()
            .flat_map(|(_, h)| h.iter().map(String::as_str))
            .collect();
        holds.sort_unstable();
        holds.dedup();
        tracing::info!(
            class = %r.class,
            segments = r.held.len(),
            holds = %holds.join(", "),
            "legal holds keep expired segments"
        );
    }
    if !r.unsigned.is_empty() {
        tracing::error!(
            class = %r.class,
            segments = r.unsigned.len(),
            days,
            "expired segments are kept: no signing key is configured ([integrity] signing_key), \
             and retention deletes nothing without a signed receipt"
        );
    }
    for e in &r.errors {
        tracing::error!(class = %r.class, kind = e.kind(), error = %e, "retention sweep");
    }
}

/// The receipt in a note and the note, without checking the signature (the sweeper only needs
/// to know which segments have one; `meshlog receipts` verifies).
fn unverified(note: &[u8]) -> Result<(Receipt, String), ReceiptError> {
    let text = std::str::from_utf8(note)
        .map_err(|_| ReceiptError::Note(meshlog_tlog::checkpoint::NoteError::NotUtf8))?;
    let body = text
        .rfind("\n\n")
        .and_then(|i| text.get(..i + 1))
        .ok_or(ReceiptError::Note(
            meshlog_tlog::checkpoint::NoteError::NoSignatures,
        ))?;
    Ok((Receipt::parse_body(body)?, text.to_owned()))
}

/// Appends the receipt's record to the class's own store and waits for its fsync.
fn store_receipt(class: &SweepClass, receipt: &Receipt, note: &str) -> Result<(), SweepError> {
    let id = BatchId::parse(receipt.batch_id().as_bytes())
        .map_err(|e| SweepError::Receipt(ReceiptError::Inconsistent(format!("batch id: {e}"))))?;
    let build = SweepError::Build;
    // Received (stored) at the sweep's time: the record expires like any other.
    let mut b = FrameBuilder::with_received(
        u64::MAX,
        Some(id),
        class.handle.keyring().cloned(),
        Some(receipt.swept_unix_ns),
    )
    .map_err(build)?;
    b.push(&receipt.record(note)).map_err(build)?;
    let frame = b.finish().map_err(build)?;
    match block_on(class.handle.append(frame))? {
        Appended::Stored(_) | Appended::Duplicate => Ok(()),
    }
}

/// Deletes a segment file and makes the deletion durable.
fn remove_segment(seg: &SegmentFile) -> Result<(), SweepError> {
    let io = |source| SweepError::Io {
        path: seg.path.clone(),
        source,
    };
    std::fs::remove_file(&seg.path).map_err(io)?;
    if let Some(dir) = seg.path.parent() {
        sync_dir(dir).map_err(io)?;
    }
    Ok(())
}

/// Writes `deleted/<seq>.leaves` durably; returns the SHA-256 of its content.
fn write_leaves(class_dir: &Path, segment: &str, leaves: &[Hash]) -> Result<Hash, SweepError> {
    let dir = class_dir.join(DELETED_DIR);
    let path = dir.join(receipt::leaves_file_name(segment));
    let tmp = path.with_extension("leaves.tmp");
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| SweepError::Io { path: p, source }
    };
    let bytes: Vec<u8> = leaves.iter().flatten().copied().collect();
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    sync_dir(&dir).map_err(io(&dir))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent).map_err(io(parent))?;
    }
    Ok(Sha256::digest(&bytes).into())
}

fn load_cache(class_dir: &Path) -> BTreeMap<String, Summary> {
    let path = class_dir.join(CACHE_FILE);
    let Ok(bytes) = std::fs::read(&path) else {
        return BTreeMap::new();
    };
    match serde_json::from_slice::<CacheFile>(&bytes) {
        Ok(c) if c.version == CACHE_VERSION => c.segments,
        _ => {
            tracing::warn!(cache = %path.display(), "ignoring an unreadable retention cache (the segments are read again)");
            BTreeMap::new()
        }
    }
}

fn save_cache(class_dir: &Path, segments: &BTreeMap<String, Summary>) -> io::Result<()> {
    let path = class_dir.join(CACHE_FILE);
    let tmp = class_dir.join(format!("{CACHE_FILE}.tmp"));
    let file = CacheFile {
        version: CACHE_VERSION,
        segments: segments.clone(),
    };
    std::fs::write(&tmp, serde_json::to_vec(&file).map_err(io::Error::other)?)?;
    std::fs::rename(&tmp, &path)
}

/// The oldest retention time in the first frame of `path` (the active segment): its receive
/// time, or for a frame without one its oldest observed time; `None` when it has no complete
/// frame yet.
fn first_time(path: &Path, keys: Option<&Keyring>) -> Result<Option<u64>, SweepError> {
    let mut scanner = match SegmentScanner::open(path) {
        Ok(s) => s,
        Err(ScanError::Damage { damage, .. }) if damage.is_torn() => return Ok(None),
        Err(e) => return Err(scan_error(path, e)),
    };
    match scanner.next_frame(true) {
        Ok(Some(frame)) => {
            if let Some(t) = frame.header.extensions.received_unix_ns {
                return Ok(Some(t));
            }
            let mut oldest = None;
            frame_times(path, &frame, keys, |t| {
                oldest = Some(oldest.map_or(t, |o: u64| o.min(t)));
            })?;
            Ok(oldest)
        }
        Ok(None) => Ok(None),
        Err(ScanError::Damage { damage, .. }) if damage.is_torn() => Ok(None),
        Err(e) => Err(scan_error(path, e)),
    }
}

fn scan_error(path: &Path, e: ScanError) -> SweepError {
    match e {
        ScanError::Io(source) => SweepError::Io {
            path: path.to_owned(),
            source,
        },
        ScanError::Damage { offset, damage } => SweepError::Damaged {
            path: path.to_owned(),
            offset,
            damage,
        },
    }
}

/// Reads a closed segment to its end: counts and time range, and with `full` its SHA-256 and
/// every frame's leaf hash. Any damage is an error (a closed segment must be intact).
fn scan(path: &Path, keys: Option<&Keyring>, full: bool) -> Result<FullScan, SweepError> {
    let io = |source| SweepError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // A second handle reads each frame's header bytes for hashing.
    let raw = file.try_clone().map_err(io)?;
    let mut scanner = SegmentScanner::from_file(file).map_err(|e| scan_error(path, e))?;
    let mut summary = Summary {
        bytes: scanner.len(),
        frames: 0,
        records: 0,
        oldest: None,
        newest: None,
        observed_oldest: None,
        observed_newest: None,
    };
    let mut sha = Sha256::new();
    let mut leaves = Vec::new();
    if full {
        let mut head = [0u8; meshlog_format::frame::SEGMENT_HEADER_LEN as usize];
        raw.read_exact_at(&mut head, 0).map_err(io)?;
        sha.update(head);
    }
    while let Some(frame) = scanner.next_frame(true).map_err(|e| scan_error(path, e))? {
        let payload = frame.payload.as_deref().unwrap_or_default();
        if full {
            let mut header = vec![0u8; frame.header_len as usize];
            raw.read_exact_at(&mut header, frame.offset).map_err(io)?;
            sha.update(&header);
            sha.update(payload);
            let mut leaf = Sha256::new();
            leaf.update([0u8]);
            leaf.update(&header);
            leaf.update(payload);
            leaves.push(leaf.finalize().into());
        }
        let received = frame.header.extensions.received_unix_ns;
        let n = frame_times(path, &frame, keys, |t| {
            summary.observed_oldest = Some(summary.observed_oldest.map_or(t, |o| o.min(t)));
            summary.observed_newest = Some(summary.observed_newest.map_or(t, |o| o.max(t)));
            // The collector's receive time when the frame has one, else the observed time.
            let t = received.unwrap_or(t);
            summary.oldest = Some(summary.oldest.map_or(t, |o| o.min(t)));
            summary.newest = Some(summary.newest.map_or(t, |o| o.max(t)));
        })?;
        summary.records += n;
        summary.frames += 1;
    }
    // Frames are back to back from the segment header to the end (a clean end was reached).
    if scanner.position() != summary.bytes {
        return Err(SweepError::BadPayload {
            path: path.to_owned(),
            offset: scanner.position(),
            reason: "the segment changed while it was read".into(),
        });
    }
    Ok(FullScan {
        summary,
        sha256: sha.finalize().into(),
        leaves,
    })
}

/// Calls `f` with each record's `observed_time_unix_nano`; returns the record count (checked
/// against the header).
fn frame_times(
    path: &Path,
    frame: &meshlog_format::reader::RawFrame,
    keys: Option<&Keyring>,
    mut f: impl FnMut(u64),
) -> Result<u64, SweepError> {
    #[derive(serde::Deserialize)]
    struct Times {
        observed_time_unix_nano: Option<u64>,
    }
    let bad = |reason: String| SweepError::BadPayload {
        path: path.to_owned(),
        offset: frame.offset,
        reason,
    };
    let stored = frame.payload.as_deref().unwrap_or_default();
    let opened;
    let plain: &[u8] = match (&frame.header.extensions.sealing, keys) {
        (None, _) => stored,
        (Some(s), None) => {
            return Err(SweepError::NoKeys {
                path: path.to_owned(),
                offset: frame.offset,
                key_id: s.key_id.clone(),
            });
        }
        (Some(_), Some(keys)) => match frame.header.open_payload(keys, stored) {
            Some(Ok(p)) => {
                opened = p;
                &opened
            }
            None => stored,
            Some(Err(source)) => {
                return Err(SweepError::Sealed {
                    path: path.to_owned(),
                    offset: frame.offset,
                    source,
                });
            }
        },
    };
    let dec = zstd::stream::read::Decoder::new(plain).map_err(|e| bad(format!("zstd: {e}")))?;
    let mut lines = BufReader::new(dec);
    let mut line = Vec::new();
    let mut n = 0u64;
    loop {
        line.clear();
        if lines
            .read_until(b'\n', &mut line)
            .map_err(|e| bad(format!("zstd: {e}")))?
            == 0
        {
            break;
        }
        let t: Times =
            serde_json::from_slice(&line).map_err(|e| bad(format!("record {n}: {e}")))?;
        let t = t
            .observed_time_unix_nano
            .ok_or_else(|| bad(format!("record {n} has no observed_time_unix_nano")))?;
        f(t);
        n += 1;
    }
    if n != u64::from(frame.header.record_count) {
        return Err(bad(format!(
            "header promises {} records, payload has {n}",
            frame.header.record_count
        )));
    }
    Ok(n)
}

/// Runs a future to completion on this thread. The sweeper's only futures wait for the store's
/// writer (tokio channels, which need no runtime), and a pass may run inside or outside one.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
