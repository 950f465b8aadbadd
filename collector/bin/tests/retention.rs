//! Retention with real class stores and the app in-process, and a sweeper driven by an injected
//! clock (never a sleep for expiry): records land in their class's store and `query` returns
//! them all; expired closed segments are deleted, each with exactly one signed receipt in
//! `receipts.log` and one `meshlog.retention.deletion` record in the store, while the active
//! segment and unexpired ones stay; receipts verify with the public key and fail with another
//! key or a flipped byte; legal holds keep data until lifted; an interrupted deletion is
//! finished without a second receipt; without a signing key nothing is deleted. Then the real
//! binary: `meshlog receipts` exit codes, and `serve` sweeping on its own with holds re-read
//! from the configuration file.

use super::integrity::{checkpoints, kinds, the, verify_json};
use super::*;
use meshlog::Config;
use meshlog::cli;
use meshlog_audit::verify::verify_data_dir;
use meshlog_format::checkpoint_log::{self, CHECKPOINT_LOG_FILE};
use meshlog_format::encryption::DataKeys;
use meshlog_format::receipt::{
    DELETED_DIR, DELETION_EVENT, RECEIPTS_FILE, Receipt, read_log, receipts,
};
use meshlog_retention::classes::{ClassStores, class_dir};
use meshlog_retention::policy::{Hold, HoldClasses, RetentionConfig};
use meshlog_retention::sweep::{ManualClock, SweepReport, Sweeper};
use meshlog_server::{AppState, Pipeline, app};
use meshlog_store::ledger::{IntegrityOptions, LeafLog, TREE_STATE_FILE};
use meshlog_tlog::checkpoint::sign_note;
use meshlog_tlog::keys::{
    DataKey, Keyring, SIGNING_KEY_FILE, SignerKey, VERIFIER_KEY_FILE, write_signer_key,
    write_verifier_key,
};
use sha2::{Digest, Sha256};
use std::sync::Arc;

pub(crate) const DAY: u64 = 86_400 * 1_000_000_000;
pub(crate) const HOUR: u64 = 3_600 * 1_000_000_000;
/// 2023-11-14T22:13:20Z: the records' observed times count from here.
pub(crate) const T0: u64 = 1_700_000_000 * 1_000_000_000;

// ---------------------------------------------------------------------------------------------
// Helpers

const POLICY: &str = r#"
[retention]
default_days = 400
segment_max_age_s = 3600
[[retention.classes]]
name = "short"
days = 30
match = { "service.name" = ["checkout", "cart"] }
"#;

pub(crate) fn policy() -> RetentionConfig {
    Config::from_toml(POLICY).unwrap().retention.unwrap()
}

pub(crate) fn signer() -> SignerKey {
    SignerKey::from_seed("example.com/meshlog", &[42; 32]).unwrap()
}

/// OTLP/JSON with one resource per `(service, ids)`, every record observed at `observed`.
pub(crate) fn otlp_at(parts: &[(&str, &[&str])], observed: u64) -> Vec<u8> {
    let resource_logs: Vec<Value> = parts
        .iter()
        .map(|(service, ids)| {
            let records: Vec<Value> = ids
                .iter()
                .map(|id| {
                    json!({
                        "timeUnixNano": observed.to_string(),
                        "observedTimeUnixNano": observed.to_string(),
                        "eventName": "meshlog.http.access",
                        "attributes": [{"key": "meshlog.request_id", "value": {"stringValue": id}}],
                    })
                })
                .collect();
            json!({
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeLogs": [{"logRecords": records}],
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "resourceLogs": resource_logs })).unwrap()
}

/// Class stores in a temp dir, the classed app in front, a sweeper over them, and a runtime
/// to post with (the tests are plain threads, as the sweeper thread in `serve` is).
pub(crate) struct Classed {
    pub(crate) dir: tempfile::TempDir,
    /// The collector's clock for receive times (the sweeper gets its time per pass).
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) stores: Option<ClassStores>,
    pub(crate) app: Router,
    pub(crate) sweeper: Sweeper,
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) signed: bool,
    pub(crate) encryption: Option<Arc<Keyring>>,
    pub(crate) sweeper_keys: bool,
}

impl Classed {
    pub(crate) fn new(signed: bool) -> Self {
        Self::open(signed, None, false)
    }

    /// With `signed`, the sweeper signs receipts and the class stores sign checkpoints with
    /// the same key (as `serve` does); with `encryption`, the class stores seal every frame;
    /// `sweeper_keys` gives the sweeper the keys to read them.
    pub(crate) fn open(signed: bool, encryption: Option<Arc<Keyring>>, sweeper_keys: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let (stores, app, sweeper) =
            Self::start(dir.path(), &clock, signed, &encryption, sweeper_keys);
        Classed {
            dir,
            clock,
            stores: Some(stores),
            app,
            sweeper,
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap(),
            signed,
            encryption,
            sweeper_keys,
        }
    }

    pub(crate) fn start(
        dir: &Path,
        clock: &Arc<ManualClock>,
        signed: bool,
        encryption: &Option<Arc<Keyring>>,
        sweeper_keys: bool,
    ) -> (ClassStores, Router, Sweeper) {
        let policy = policy();
        let opts = StoreOptions {
            encryption: encryption.clone(),
            integrity: IntegrityOptions {
                signer: signed.then(|| Arc::new(signer())),
                // Checkpoints at start and shutdown only, so tests know which exist.
                checkpoint_interval: Duration::from_secs(3600),
            },
            ..StoreOptions::default()
        };
        let stores = ClassStores::open(dir, &policy, &opts).unwrap();
        let state = AppState::new(
            Pipeline::new(
                stores.routes(),
                Limits::default(),
                meshlog_server::ingest::DEFAULT_ACK_TIMEOUT,
            )
            .with_clock(clock.clone()),
        );
        // The sweeper reports to the app's /metrics, as `serve` wires it.
        let sweeper = Sweeper::for_classes(
            dir,
            &policy,
            &stores.routes(),
            signed.then(|| Arc::new(signer())),
            encryption.clone().filter(|_| sweeper_keys),
        )
        .with_observer(state.metrics.clone());
        (stores, app(state), sweeper)
    }

    /// Stops the class stores (each signs a checkpoint at shutdown, with a key) and starts
    /// them again on the same directory (each rebuilds its tree and signs one at start).
    pub(crate) fn restart(&mut self) {
        if let Some(stores) = self.stores.take() {
            stores.close().unwrap();
        }
        let (stores, app, sweeper) = Self::start(
            self.dir.path(),
            &self.clock,
            self.signed,
            &self.encryption,
            self.sweeper_keys,
        );
        self.stores = Some(stores);
        self.app = app;
        self.sweeper = sweeper;
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn class(&self, name: &str) -> PathBuf {
        class_dir(self.path(), name)
    }

    pub(crate) fn post(&self, batch_id: Option<&str>, body: Vec<u8>) -> Reply {
        let r = self
            .rt
            .block_on(post_to(&self.app, JSON, None, batch_id, body));
        assert_eq!(r.status, StatusCode::OK, "{}", r.message());
        r
    }

    /// `ids` of `service`, observed at `observed` and received then, as one batch.
    pub(crate) fn post_one(&self, service: &str, ids: &[&str], observed: u64) {
        self.clock.set(observed);
        self.post(None, otlp_at(&[(service, ids)], observed));
    }

    /// `GET /metrics` (OpenMetrics text) from the app.
    pub(crate) fn metrics(&self) -> String {
        self.rt.block_on(async {
            let req = Request::get("/metrics")
                .header(header::ACCEPT, "application/openmetrics-text")
                .body(Body::empty())
                .unwrap();
            let resp = self.app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            String::from_utf8(body.to_vec()).unwrap()
        })
    }

    pub(crate) fn sweep(&mut self, now: u64, holds: &[Hold]) -> SweepReport {
        self.sweeper.sweep(now, holds)
    }

    /// Segment sequence numbers of a class.
    pub(crate) fn segments(&self, class: &str) -> Vec<u64> {
        reader::list_segments(&self.class(class).join(SEGMENTS_DIR))
            .unwrap()
            .iter()
            .map(|s| s.seq)
            .collect()
    }

    /// Request ids stored in a class, in store order (deletion records left out).
    pub(crate) fn ids(&self, class: &str) -> Vec<String> {
        reader::read_all(&self.class(class))
            .unwrap()
            .iter()
            .filter_map(|r| r.get("meshlog.request_id").and_then(Value::as_str))
            .map(str::to_owned)
            .collect()
    }

    /// The deletion records stored in a class.
    pub(crate) fn deletion_records(&self, class: &str) -> Vec<Map<String, Value>> {
        reader::read_all(&self.class(class))
            .unwrap()
            .into_iter()
            .filter(|r| r["event_name"] == DELETION_EVENT)
            .collect()
    }

    pub(crate) fn seg_path(&self, class: &str, seq: u64) -> PathBuf {
        self.class(class)
            .join(SEGMENTS_DIR)
            .join(segment_file_name(seq))
    }

    pub(crate) fn close(mut self) -> tempfile::TempDir {
        if let Some(stores) = self.stores.take() {
            stores.close().unwrap();
        }
        self.dir
    }
}

/// A short class with segments 1 (observed T0), 2 (T0 + 1 d) and 3 (T0 + 10 d) closed by
/// age, and 4 (T0 + 40 d) active; the default class with one segment closed (T0).
pub(crate) fn four_segments(signed: bool) -> Classed {
    let mut c = Classed::new(signed);
    for (i, (ids, day)) in [(&["a1", "a2"][..], 0), (&["b1"], 1), (&["c1"], 10)]
        .into_iter()
        .enumerate()
    {
        c.post_one("checkout", ids, T0 + day * DAY);
        if i == 0 {
            c.post_one("billing", &["d1"], T0);
        }
        // Two hours later the segment is older than segment_max_age_s: closed, nothing expired.
        let r = c.sweep(T0 + day * DAY + 2 * HOUR, &[]);
        let short = r.class("short").unwrap();
        assert_eq!(short.rotated, Some(i as u64 + 1), "{r:?}");
        assert!(short.deleted.is_empty() && short.errors.is_empty(), "{r:?}");
    }
    c.post_one("cart", &["e1"], T0 + 40 * DAY);
    assert_eq!(c.segments("short"), [1, 2, 3, 4]);
    assert_eq!(c.segments("default"), [1, 2]);
    c
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The RFC 6962 leaf hash of the only frame of a one-frame segment.
pub(crate) fn only_leaf(segment: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(&segment[8..]);
    h.finalize().into()
}

pub(crate) fn hold(
    name: &str,
    classes: HoldClasses,
    from: Option<u64>,
    until: Option<u64>,
) -> Hold {
    Hold {
        name: name.into(),
        reason: "litigation hold, ticket LEGAL-4711".into(),
        classes,
        from_unix_ns: from,
        until_unix_ns: until,
    }
}

pub(crate) fn write_keys(dir: &Path) -> (PathBuf, PathBuf) {
    let (s, v) = (dir.join(SIGNING_KEY_FILE), dir.join(VERIFIER_KEY_FILE));
    write_signer_key(&s, &signer()).unwrap();
    write_verifier_key(&v, &signer().verifier()).unwrap();
    (s, v)
}

// ---------------------------------------------------------------------------------------------
// In-process

#[test]
fn records_land_in_their_class_store_and_query_returns_them_all() {
    let c = Classed::new(true);
    let body = otlp_at(
        &[
            ("checkout", &["s1", "s2"]),
            ("billing", &["d1"]),
            ("cart", &["s3"]),
        ],
        T0,
    );
    let r = c.post(Some("vm:1-4"), body.clone());
    assert!(r.headers.get("meshlog-duplicate").is_none());
    assert_eq!(c.ids("short"), ["s1", "s2", "s3"]);
    assert_eq!(c.ids("default"), ["d1"]);
    // Each class's frame carries the batch id: a retry splits the same way and is a duplicate.
    let r = c.post(Some("vm:1-4"), body);
    assert_eq!(r.headers["meshlog-duplicate"], "true");
    assert_eq!(c.ids("short").len(), 3);
    for class in ["short", "default"] {
        let ids: Vec<_> = reader::frames(&c.class(class))
            .unwrap()
            .map(|f| f.unwrap().batch_id.unwrap().to_string())
            .collect();
        assert_eq!(ids, ["vm:1-4"], "{class}");
    }
    // A batch touching one class only: stored there, nothing in the other.
    c.post(Some("vm:5-5"), otlp_at(&[("billing", &["d2"])], T0));
    assert_eq!(c.ids("default"), ["d1", "d2"]);
    assert!(
        !c.path().join(SEGMENTS_DIR).exists(),
        "no store outside the classes"
    );

    // query: each class's store in store order, classes by name (default < short).
    let mut out = Vec::new();
    assert_eq!(cli::query(c.path(), None, &mut out).unwrap(), 5);
    let ids: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["meshlog.request_id"].to_string())
        .collect();
    assert_eq!(ids, ["\"d1\"", "\"d2\"", "\"s1\"", "\"s2\"", "\"s3\""]);
    let dir = c.close();
    // The real binary reads the same.
    assert_eq!(query_ids(dir.path()), ["d1", "d2", "s1", "s2", "s3"]);
}

#[test]
fn expired_closed_segments_are_deleted_each_with_one_receipt_and_one_record() {
    let mut c = four_segments(true);
    let before: Vec<Vec<u8>> = [1, 2]
        .iter()
        .map(|s| std::fs::read(c.seg_path("short", *s)).unwrap())
        .collect();

    // 31.5 days after T0: segments 1 (T0) and 2 (T0 + 1 d) are more than 30 days old; 3 is
    // not; 4 is active; the default class keeps 400 days.
    let now = T0 + 31 * DAY + 12 * HOUR;
    let r = c.sweep(now, &[]);
    let short = r.class("short").unwrap();
    assert_eq!(
        short.deleted,
        ["0000000000000001.seg", "0000000000000002.seg"]
    );
    assert_eq!((short.kept, short.rotated), (1, None), "{short:?}");
    assert!(
        short.errors.is_empty() && short.held.is_empty(),
        "{short:?}"
    );
    let default = r.class("default").unwrap();
    assert!(default.deleted.is_empty() && default.errors.is_empty());
    assert_eq!(default.kept, 1);
    // a1, a2 and b1 went; /metrics counts them per class, and the trees keep every leaf.
    assert_eq!((short.records_deleted, default.records_deleted), (3, 0));
    let m = c.metrics();
    for line in [
        "meshlog_retention_deleted_segments_total{class=\"short\"} 2",
        "meshlog_retention_deleted_records_total{class=\"short\"} 3",
        "meshlog_retention_deleted_segments_total{class=\"default\"} 0",
        // Four batches and the two deletion records.
        "meshlog_tree_size{class=\"short\"} 6",
        "meshlog_tree_size{class=\"default\"} 1",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} not in\n{m}");
    }
    // Each store signed a checkpoint when it opened (the real clock, not the test's).
    let signed_at: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("meshlog_last_checkpoint_timestamp_seconds{class=\"short\"} "))
        .unwrap_or_else(|| panic!("no checkpoint time in\n{m}"))
        .parse()
        .unwrap();
    let wall = now_ns() as f64 / 1e9;
    assert!(
        signed_at <= wall && signed_at > wall - 600.0,
        "{signed_at} vs {wall}"
    );

    assert_eq!(c.segments("short"), [3, 4], "active and unexpired stay");
    assert_eq!(c.ids("short"), ["c1", "e1"]);
    assert_eq!(c.ids("default"), ["d1"]);

    // Exactly one receipt per deletion, valid under the public key, naming the exact bytes.
    let got = receipts(&c.class("short"), &signer().verifier()).unwrap();
    assert_eq!(got.len(), 2);
    for (r, bytes) in got.iter().zip(&before) {
        assert_eq!(r.class, "short");
        assert_eq!(r.bytes, bytes.len() as u64);
        assert_eq!(hex::encode(r.sha256), sha256_hex(bytes));
        assert_eq!((r.frames, r.retention_days, r.swept_unix_ns), (1, 30, now));
        assert_eq!(r.first_leaf, only_leaf(bytes));
        assert_eq!(r.last_leaf, only_leaf(bytes));
        let leaves = std::fs::read(
            c.class("short")
                .join(DELETED_DIR)
                .join(r.segment.replace(".seg", ".leaves")),
        )
        .unwrap();
        assert_eq!(leaves, only_leaf(bytes));
        assert_eq!(hex::encode(r.leaves_sha256), sha256_hex(&leaves));
    }
    assert_eq!(
        (
            got[0].records,
            got[0].oldest_observed_unix_ns,
            got[0].newest_observed_unix_ns
        ),
        (2, T0, T0)
    );
    assert_eq!(got[1].newest_observed_unix_ns, T0 + DAY);

    // And one record per deletion in the class's own store, carrying the same signed note.
    let recs = c.deletion_records("short");
    assert_eq!(recs.len(), 2);
    let log = read_log(&c.class("short").join(RECEIPTS_FILE)).unwrap();
    for ((rec, receipt), logged) in recs.iter().zip(&got).zip(&log.entries) {
        assert_eq!(rec["meshlog.retention.segment"], receipt.segment.as_str());
        assert_eq!(rec["meshlog.retention.segment.records"], receipt.records);
        let note = rec["meshlog.retention.receipt"].as_str().unwrap();
        assert_eq!(note.as_bytes(), logged.note.as_slice());
        assert_eq!(
            Receipt::verify(note.as_bytes(), &signer().verifier()).unwrap(),
            *receipt
        );
    }
    assert!(c.deletion_records("default").is_empty());

    // Another key, or a flipped byte anywhere in a note, does not verify.
    let other = SignerKey::from_seed("example.com/meshlog", &[43; 32]).unwrap();
    let e = receipts(&c.class("short"), &other.verifier()).unwrap_err();
    assert!(e.to_string().contains("not signed by key"), "{e}");
    let note = &log.entries[0].note;
    for i in (0..note.len()).step_by(7) {
        let mut b = note.clone();
        b[i] ^= 0x01;
        assert!(
            Receipt::verify(&b, &signer().verifier()).is_err(),
            "byte {i} flipped"
        );
    }

    // The next sweep finds nothing more to do: no second receipt, nothing else deleted.
    let r = c.sweep(now + HOUR, &[]);
    assert!(r.class("short").unwrap().deleted.is_empty(), "{r:?}");
    assert_eq!(
        read_log(&c.class("short").join(RECEIPTS_FILE))
            .unwrap()
            .entries
            .len(),
        2
    );
    c.close();
}

#[test]
fn a_legal_hold_keeps_data_until_it_is_lifted() {
    let mut c = four_segments(true);
    let now = T0 + 31 * DAY + 12 * HOUR;
    // Held: the short class's records observed on T0's day only (segment 1, not segment 2),
    // and every class, which does not matter for the default class's unexpired data.
    let holds = [
        hold(
            "case-4711",
            HoldClasses::Named(vec!["short".into()]),
            Some(T0 - HOUR),
            Some(T0 + HOUR),
        ),
        hold("regulator", HoldClasses::All, Some(T0 + 5 * DAY), None),
    ];
    let r = c.sweep(now, &holds);
    let short = r.class("short").unwrap();
    assert_eq!(
        short.held,
        [(
            "0000000000000001.seg".to_owned(),
            vec!["case-4711".to_owned()]
        )]
    );
    assert_eq!(short.deleted, ["0000000000000002.seg"]);
    assert_eq!(c.segments("short"), [1, 3, 4]);
    assert_eq!(c.ids("short"), ["a1", "a2", "c1", "e1"]);

    // Later sweeps with the hold in force keep it while deleting what expires meanwhile (and
    // segment 4, older than segment_max_age_s by now, is closed).
    let r = c.sweep(now + 20 * DAY, &holds[..1]);
    let short = r.class("short").unwrap();
    assert_eq!(short.held.len(), 1);
    assert_eq!(short.deleted, ["0000000000000003.seg"]);
    assert_eq!(short.rotated, Some(4));
    assert!(c.seg_path("short", 1).exists());
    assert_eq!(
        receipts(&c.class("short"), &signer().verifier())
            .unwrap()
            .len(),
        2
    );

    // Lifted: the next sweep deletes it, with its receipt and record.
    let r = c.sweep(now + 21 * DAY, &[]);
    assert_eq!(r.class("short").unwrap().deleted, ["0000000000000001.seg"]);
    assert!(r.class("short").unwrap().held.is_empty());
    assert!(!c.seg_path("short", 1).exists());
    let segs: Vec<String> = receipts(&c.class("short"), &signer().verifier())
        .unwrap()
        .into_iter()
        .map(|r| r.segment)
        .collect();
    assert_eq!(
        segs,
        [
            "0000000000000002.seg",
            "0000000000000003.seg",
            "0000000000000001.seg"
        ]
    );
    assert_eq!(c.deletion_records("short").len(), 3);
    // Much later, the segments holding those deletion records expire in turn (segment 6,
    // active since the last sweep closed 5, is closed first).
    let r = c.sweep(T0 + 500 * DAY, &[]);
    let short = r.class("short").unwrap();
    assert_eq!(short.rotated, Some(6), "{short:?}");
    assert_eq!(
        short.deleted,
        [
            "0000000000000004.seg",
            "0000000000000005.seg",
            "0000000000000006.seg"
        ],
        "{short:?}"
    );
    let dir = c.close();
    // Deleted out of order (2, 3, 1, then 4 to 6), each record stored wherever the active
    // segment was: verify places them in sequence order from the start of the log, and finds
    // each deletion's record in the store or in a segment deleted after it.
    let report = verify_data_dir(dir.path(), &[signer().verifier()], &mut |_, _| {}).unwrap();
    let short = report
        .stores
        .iter()
        .find(|r| r.class.as_deref() == Some("short"));
    let short = short.unwrap();
    assert!(report.intact, "{:#?}", short.findings);
    let placed: Vec<(&str, Option<[u64; 2]>, &str)> = short
        .deletions
        .iter()
        .map(|d| (d.segment.as_str(), d.leaves, d.record.as_str()))
        .collect();
    println!("{placed:?}");
    let in_later = |seq: u64| format!("in {seq:016}.seg, deleted by policy too");
    // Segment 4 held e1 and the record of segment 2's deletion, 5 that of 3, 6 that of 1.
    let want = [
        (1, [0, 0], in_later(6)),
        (2, [1, 1], in_later(4)),
        (3, [2, 2], in_later(5)),
        (4, [3, 4], "leaf 7, 0000000000000007.seg".to_owned()),
        (5, [5, 5], "leaf 8, 0000000000000007.seg".to_owned()),
        (6, [6, 6], "leaf 9, 0000000000000007.seg".to_owned()),
    ];
    assert_eq!(placed.len(), want.len());
    for ((segment, leaves, record), (seq, l, r)) in placed.iter().zip(&want) {
        assert_eq!(*segment, segment_file_name(*seq));
        assert_eq!(*leaves, Some(*l), "{segment}");
        assert!(record.starts_with(r.as_str()), "{segment}: {record}");
    }
}

#[test]
fn a_deletion_interrupted_after_its_receipt_is_finished_without_a_second_one() {
    let mut c = four_segments(true);
    let seg1 = c.seg_path("short", 1);
    let bytes = std::fs::read(&seg1).unwrap();
    let now = T0 + 31 * DAY + 12 * HOUR;
    // Only segment 1 is expired at this time.
    let r = c.sweep(T0 + 30 * DAY + 12 * HOUR, &[]);
    assert_eq!(r.class("short").unwrap().deleted, ["0000000000000001.seg"]);
    // A crash after the receipt (and its record) were durable but before the unlink: the
    // segment is still there.
    std::fs::write(&seg1, &bytes).unwrap();
    let r = c.sweep(now, &[]);
    let short = r.class("short").unwrap();
    assert_eq!(short.completed, ["0000000000000001.seg"], "{short:?}");
    assert_eq!(short.deleted, ["0000000000000002.seg"]);
    assert!(!seg1.exists());
    let got = receipts(&c.class("short"), &signer().verifier()).unwrap();
    let segs: Vec<&str> = got.iter().map(|r| r.segment.as_str()).collect();
    assert_eq!(
        segs,
        ["0000000000000001.seg", "0000000000000002.seg"],
        "one receipt each"
    );
    assert_eq!(
        c.deletion_records("short").len(),
        2,
        "the record is stored once"
    );

    // A segment that no longer matches its receipt is not deleted.
    let mut changed = bytes.clone();
    let last = changed.len() - 1;
    changed[last] ^= 0x01;
    std::fs::write(&seg1, &changed).unwrap();
    let r = c.sweep(now + HOUR, &[]);
    let short = r.class("short").unwrap();
    assert!(short.completed.is_empty(), "{short:?}");
    assert_eq!(short.errors.len(), 1, "{short:?}");
    assert!(seg1.exists());
    assert_eq!(
        read_log(&c.class("short").join(RECEIPTS_FILE))
            .unwrap()
            .entries
            .len(),
        2
    );
    c.close();
}

#[test]
fn the_time_range_cache_survives_a_restart_and_never_decides_a_deletion() {
    use meshlog_retention::sweep::CACHE_FILE;
    let c = four_segments(true);
    let cache_path = c.class("short").join(CACHE_FILE);
    let mut cache: Value = serde_json::from_slice(&std::fs::read(&cache_path).unwrap()).unwrap();
    let names: Vec<&String> = cache["segments"].as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            "0000000000000001.seg",
            "0000000000000002.seg",
            "0000000000000003.seg"
        ]
    );
    assert_eq!(
        cache["segments"]["0000000000000003.seg"]["newest"],
        T0 + 10 * DAY
    );
    // A cache claiming segment 3 is as old as segment 1: the re-read before deleting keeps it.
    cache["segments"]["0000000000000003.seg"]["oldest"] = json!(T0);
    cache["segments"]["0000000000000003.seg"]["newest"] = json!(T0);
    std::fs::write(&cache_path, serde_json::to_vec(&cache).unwrap()).unwrap();
    let stores = c.stores.as_ref().unwrap();
    let mut restarted = Sweeper::for_classes(
        c.path(),
        &policy(),
        &stores.routes(),
        Some(Arc::new(signer())),
        None,
    );
    let r = restarted.sweep(T0 + 31 * DAY + 12 * HOUR, &[]);
    let short = r.class("short").unwrap();
    assert_eq!(
        short.deleted,
        ["0000000000000001.seg", "0000000000000002.seg"]
    );
    assert_eq!(short.kept, 1, "{short:?}");
    assert_eq!(c.segments("short"), [3, 4]);
    // Deleted segments leave the cache.
    let cache: Value = serde_json::from_slice(&std::fs::read(&cache_path).unwrap()).unwrap();
    let names: Vec<&String> = cache["segments"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["0000000000000003.seg"]);
    c.close();
}

#[test]
fn an_altered_receipt_stops_deletion_in_its_class() {
    let mut c = four_segments(true);
    let r = c.sweep(T0 + 30 * DAY + 12 * HOUR, &[]);
    assert_eq!(r.class("short").unwrap().deleted, ["0000000000000001.seg"]);
    // Its segment line edited, the entry's CRC recomputed: intact as stored, but altered.
    let path = c.class("short").join(RECEIPTS_FILE);
    let note = read_log(&path).unwrap().entries[0].note.clone();
    let note = String::from_utf8(note).unwrap().replace(
        "segment 0000000000000001.seg",
        "segment 00000000000000x1.seg",
    );
    let mut entry = format!(
        "MLRC {} {:08x}\n",
        note.len(),
        crc32fast::hash(note.as_bytes())
    );
    entry.push_str(&note);
    std::fs::write(&path, entry).unwrap();
    let r = c.sweep(T0 + 31 * DAY + 12 * HOUR, &[]);
    let short = r.class("short").unwrap();
    assert!(short.deleted.is_empty(), "{short:?}");
    assert!(
        short.errors[0]
            .to_string()
            .contains("nothing is deleted in this class until it is fixed"),
        "{short:?}"
    );
    assert!(c.seg_path("short", 2).exists(), "expired, but kept");
    c.close();
}

#[test]
fn sealed_classes_are_swept_with_the_keys_and_kept_without_them() {
    let ring = || Keyring::new(vec![DataKey::new("k1", [9; 32]).unwrap()]).unwrap();
    let mut c = Classed::open(true, Some(Arc::new(ring())), true);
    c.post_one("checkout", &["x1"], T0);
    assert_eq!(
        c.sweep(T0 + 2 * HOUR, &[]).class("short").unwrap().rotated,
        Some(1)
    );
    let r = c.sweep(T0 + 31 * DAY, &[]);
    assert_eq!(
        r.class("short").unwrap().deleted,
        ["0000000000000001.seg"],
        "{r:?}"
    );
    // The deletion record is sealed like every other frame of the store.
    let keys = DataKeys::new(ring(), "data.keys".into());
    let frames: Vec<_> = reader::frames(&c.class("short"))
        .unwrap()
        .with_keys(Some(keys))
        .map(Result::unwrap)
        .collect();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].key_id(), Some("k1"));
    assert_eq!(
        frames[0].records().unwrap()[0]["event_name"],
        DELETION_EVENT
    );
    assert_eq!(
        receipts(&c.class("short"), &signer().verifier())
            .unwrap()
            .len(),
        1
    );
    c.close();

    // Without the keys the sweeper can close a sealed segment (its receive time is in the
    // plain frame header) but cannot read its records (their observed times, which legal holds
    // also match): it never deletes it, and says which key it lacks.
    let mut c = Classed::open(true, Some(Arc::new(ring())), false);
    c.post_one("checkout", &["x1"], T0);
    let r = c.sweep(T0 + 31 * DAY, &[]);
    let short = r.class("short").unwrap();
    assert_eq!(short.deleted.len(), 0, "{short:?}");
    let r = c.sweep(T0 + 32 * DAY, &[]);
    let short = r.class("short").unwrap();
    assert_eq!(short.deleted.len(), 0, "{short:?}");
    assert!(
        short.errors[0]
            .to_string()
            .contains("encrypted with data-encryption key \"k1\""),
        "{short:?}"
    );
    assert!(c.seg_path("short", 1).exists());
    c.close();
}

#[test]
fn without_a_signing_key_nothing_is_deleted() {
    let mut c = four_segments(false);
    // Everything is expired by then (segment 4 is closed by age first).
    let r = c.sweep(T0 + 400 * DAY, &[]);
    let short = r.class("short").unwrap();
    assert_eq!(short.rotated, Some(4));
    assert_eq!(
        short.unsigned,
        [
            "0000000000000001.seg",
            "0000000000000002.seg",
            "0000000000000003.seg",
            "0000000000000004.seg"
        ]
    );
    assert!(short.deleted.is_empty());
    assert_eq!(c.segments("short"), [1, 2, 3, 4, 5]);
    assert_eq!(c.ids("short"), ["a1", "a2", "b1", "c1", "e1"]);
    assert!(!c.class("short").join(RECEIPTS_FILE).exists());
    assert!(c.deletion_records("short").is_empty());
    c.close();
}

#[test]
fn the_sweeper_thread_sweeps_at_start_with_its_clock_and_stops() {
    let c = four_segments(true);
    let Classed {
        dir,
        stores,
        sweeper,
        ..
    } = c;
    let clock = Arc::new(ManualClock::new(T0 + 31 * DAY + 12 * HOUR));
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = sweeper
        .spawn(clock, Duration::from_millis(20), move || {
            let _ = tx.send(());
            Ok(Vec::new())
        })
        .unwrap();
    // The holds are read before each pass: a second read means the first pass (at start) is
    // done and the interval loop runs.
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    thread.stop();
    let after_stop = rx.try_iter().count();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        rx.try_iter().count(),
        0,
        "no pass after stop ({after_stop} just before)"
    );
    let gone = |s| {
        !class_dir(dir.path(), "short")
            .join(SEGMENTS_DIR)
            .join(segment_file_name(s))
            .exists()
    };
    assert!(gone(1) && gone(2) && !gone(3));
    stores.unwrap().close().unwrap();
}

#[test]
fn class_stores_refuse_segments_written_without_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let h = store.handle();
    let frame = meshlog_format::frame::encode_frame(&[Map::new()]).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(h.append(frame))
        .unwrap();
    store.close().unwrap();
    let e = ClassStores::open(dir.path(), &policy(), &StoreOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("1 segment(s) written without [retention]"),
        "{e}"
    );
    assert!(e.contains("classes/default"), "{e}");
    assert!(!dir.path().join("classes").exists(), "nothing created");
}

#[test]
fn a_class_store_signed_under_the_collector_origin_goes_on_under_its_class_log_origin() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        integrity: IntegrityOptions {
            signer: Some(Arc::new(signer())),
            checkpoint_interval: Duration::from_secs(3600),
        },
        ..StoreOptions::default()
    };
    let append = |opts: StoreOptions| {
        let store = Store::open(&class_dir(dir.path(), "short"), opts).unwrap();
        let frame = meshlog_format::frame::encode_frame(&[Map::new()]).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(store.handle().append(frame))
            .unwrap();
        store.close().unwrap();
    };
    // As a class store was signed before class logs had origins of their own.
    append(opts.clone());
    // Now: the class log's key, `<origin>/short`.
    append(meshlog_retention::classes::class_options(&opts, "short"));
    let bytes = std::fs::read(class_dir(dir.path(), "short").join(CHECKPOINT_LOG_FILE)).unwrap();
    let origins: Vec<String> = checkpoint_log::parse(&bytes)
        .into_iter()
        .map(|i| match i {
            checkpoint_log::Item::Entry(e) => String::from_utf8(e.note).unwrap(),
            other => panic!("{other:?}"),
        })
        .map(|n| n.lines().next().unwrap().to_owned())
        .collect();
    assert_eq!(
        origins.first().unwrap(),
        "example.com/meshlog",
        "{origins:?}"
    );
    assert_eq!(
        origins.last().unwrap(),
        "example.com/meshlog/short",
        "{origins:?}"
    );
    // The collector's one verifier key checks both, each root against the store.
    let report = verify_data_dir(dir.path(), &[signer().verifier()], &mut |_, _| {}).unwrap();
    let short = &report.stores[0];
    assert!(report.intact, "{:?}", short.findings);
    assert_eq!(short.checkpoints.verified, origins.len());
    assert_eq!(short.tree_size, 2);
}

// ---------------------------------------------------------------------------------------------
// meshlog verify on class stores: deletions by policy accepted, every other gap flagged

/// A signed data directory after a deletion by policy: `four_segments` restarted (so
/// checkpoints #2 and #3 sign class short's 4 leaves), swept at T0 + 31.5 d, which deletes
/// short's segments 1 and 2 (leaves 0 and 1) and stores their two deletion records (leaves 4
/// and 5) in segment 4, then closed (checkpoint #4 signs 6 leaves). Returns the data directory,
/// and the verifier key in a directory of its own.
pub(crate) fn swept() -> (tempfile::TempDir, tempfile::TempDir, PathBuf) {
    let mut c = four_segments(true);
    c.restart();
    let r = c.sweep(T0 + 31 * DAY + 12 * HOUR, &[]);
    assert_eq!(
        r.class("short").unwrap().deleted,
        ["0000000000000001.seg", "0000000000000002.seg"]
    );
    let dir = c.close();
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = write_keys(keys.path());
    (dir, keys, public)
}

/// The report of class `name` in a data directory's report.
pub(crate) fn class_report<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["class"] == name)
        .unwrap_or_else(|| panic!("no class {name}: {report:#}"))
}

/// A copy of `dir` to damage.
pub(crate) fn copy_of(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    super::integrity::copy_dir(dir, copy.path());
    copy
}

/// Rewrites `receipts.log` with `notes` as its entries (CRCs right: intact as stored).
pub(crate) fn write_receipts(path: &Path, notes: &[Vec<u8>]) {
    let mut out = Vec::new();
    for note in notes {
        out.extend_from_slice(
            format!("MLRC {} {:08x}\n", note.len(), crc32fast::hash(note)).as_bytes(),
        );
        out.extend_from_slice(note);
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn verify_accepts_segments_deleted_by_policy_and_lists_each_deletion() {
    let (dir, _keys, public) = swept();
    let (code, report) = verify_json(dir.path(), &public);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["intact"], true);
    let classes: Vec<&str> = report["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["class"].as_str().unwrap())
        .collect();
    assert_eq!(
        classes,
        ["default", "short"],
        "no store outside the classes"
    );

    let short = class_report(&report, "short");
    assert_eq!(short["findings"], json!([]));
    assert_eq!(short["segments"], 2);
    assert_eq!(
        (
            short["deleted_segments"].as_u64(),
            short["deleted_frames"].as_u64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(short["tree_size"], 6, "the deleted leaves are still leaves");
    assert_eq!(
        short["receipts"],
        json!({"entries": 2, "valid": 2, "authenticated": true})
    );
    // Every checkpoint verifies, the two signed before the deletion (4 leaves, 0 and 1 now
    // deleted) included.
    let cps = checkpoints(&class_dir(dir.path(), "short"), &signer().verifier());
    let sizes: Vec<u64> = cps.iter().map(|c| c.size).collect();
    assert_eq!(sizes, [0, 4, 4, 6]);
    assert_eq!(short["checkpoints"]["verified"], 4);
    let d = short["deletions"].as_array().unwrap();
    assert_eq!(d.len(), 2);
    for (i, (segment, records)) in [("0000000000000001.seg", 2), ("0000000000000002.seg", 1)]
        .into_iter()
        .enumerate()
    {
        assert_eq!(d[i]["class"], "short");
        assert_eq!(d[i]["segment"], segment);
        assert_eq!(d[i]["leaves"], json!([i, i]));
        assert_eq!(
            (d[i]["frames"].as_u64(), d[i]["records"].as_u64()),
            (Some(1), Some(records))
        );
        assert_eq!(d[i]["retention_days"], 30);
        assert_eq!(d[i]["authenticated"], true);
        // Its deletion record: leaf 4 and 5, in segment 4.
        let record = d[i]["record"].as_str().unwrap();
        assert!(
            record.starts_with(&format!("leaf {}, 0000000000000004.seg offset ", 4 + i)),
            "{record}"
        );
    }
    assert_eq!(
        d[0]["rule"],
        "newest record observed 2023-11-14T22:13:20Z + 30 days is before the sweep at \
         2023-12-16T10:13:20Z"
    );
    assert_eq!(d[1]["newest_observed"], "2023-11-15T22:13:20.000Z");

    let default = class_report(&report, "default");
    assert_eq!(default["intact"], true);
    assert_eq!(default["deleted_segments"], 0);
    assert!(default.get("deletions").is_none(), "{default:#}");

    // Proofs still work over the kept leaves: a record kept after the deletion (leaf 2, c1),
    // and the checkpoint signed before the deletion (4 leaves) as a prefix of the one after.
    let short_dir = class_dir(dir.path(), "short");
    let short_dir = short_dir.to_str().unwrap();
    let public = public.to_str().unwrap();
    for (what, args) in [
        ("inclusion", vec!["prove", "--data-dir", short_dir, "2/1"]),
        (
            "consistency",
            vec!["prove", "--data-dir", short_dir, "--consistency", "4", "6"],
        ),
    ] {
        let out = run(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let proof = dir.path().join(format!("{what}.json"));
        std::fs::write(&proof, &out.stdout).unwrap();
        let out = run(&[
            "verify-proof",
            "--public-key",
            public,
            proof.to_str().unwrap(),
        ]);
        let text = stdout_of(&out);
        assert!(text.trim_end().ends_with("VALID"), "{what}: {text}");
        if what == "inclusion" {
            assert!(text.contains("is leaf 2 of that tree"), "{text}");
        }
    }
}

#[test]
fn verify_flags_a_segment_deleted_without_its_own_receipt_or_not_chained() {
    let (dir, _keys, public) = swept();
    let short_of = |d: &Path| class_dir(d, "short");
    let mismatches = |n: usize| vec!["checkpoint_root_mismatch"; n];

    // By hand: segment 3 (closed, not expired, no receipt).
    let by_hand = copy_of(dir.path());
    std::fs::remove_file(
        short_of(by_hand.path())
            .join(SEGMENTS_DIR)
            .join(segment_file_name(3)),
    )
    .unwrap();
    let (code, report) = verify_json(by_hand.path(), &public);
    assert_eq!(code, 1, "{report:#}");
    let short = class_report(&report, "short");
    // The checkpoints over the missing leaf (#2, #3, #4): one finding, under its cause.
    let mut want = mismatches(1);
    want.push("segment_missing");
    assert_eq!(kinds(short), want, "{short:#}");
    let g = the(short, "checkpoint_root_mismatch");
    assert_eq!(
        (g["count"].as_u64(), g["cause"]["kind"].as_str()),
        (Some(3), Some("segment_missing"))
    );
    let f = the(short, "segment_missing");
    assert_eq!(f["file"], "0000000000000003.seg");
    assert_eq!(f["leaves"], json!([2, 2]));
    let m = f["message"].as_str().unwrap();
    assert!(
        m.contains("is missing and no valid deletion receipt names it"),
        "{m}"
    );
    println!("by hand: {m}");
    assert_eq!(
        short["deleted_segments"], 2,
        "the deletions by policy still are"
    );
    assert_eq!(class_report(&report, "default")["intact"], true);

    // Only another segment's receipt: segment 2's receipt removed, segment 1's kept.
    let other = copy_of(dir.path());
    let log_path = short_of(other.path()).join(RECEIPTS_FILE);
    let log = read_log(&log_path).unwrap();
    write_receipts(&log_path, &[log.entries[0].note.clone()]);
    let (code, report) = verify_json(other.path(), &public);
    assert_eq!(code, 1, "{report:#}");
    let short = class_report(&report, "short");
    assert_eq!(kinds(short), want, "{short:#}");
    let f = the(short, "segment_missing");
    assert_eq!(f["file"], "0000000000000002.seg");
    assert_eq!(f["leaves"], json!([1, 1]));
    println!("another segment's receipt: {}", f["message"]);
    assert_eq!(short["deletions"][0]["segment"], "0000000000000001.seg");
    assert_eq!(short["deletions"].as_array().unwrap().len(), 1);

    // The frame after the gap re-chained to another predecessor (its CRCs recomputed): it no
    // longer names the receipt's last leaf.
    let rechained = copy_of(dir.path());
    let seg3 = short_of(rechained.path())
        .join(SEGMENTS_DIR)
        .join(segment_file_name(3));
    let mut bytes = std::fs::read(&seg3).unwrap();
    super::integrity::set_prev(&mut bytes, 8, [7; 32]);
    std::fs::write(&seg3, &bytes).unwrap();
    let (code, report) = verify_json(rechained.path(), &public);
    assert_eq!(code, 1, "{report:#}");
    let short = class_report(&report, "short");
    // Leaf 2 changed: every checkpoint over it (#2, #3, #4) no longer matches, one finding.
    let mut want = mismatches(1);
    want.extend(["deletion_mismatch", "modified"]);
    assert_eq!(kinds(short), want, "{short:#}");
    let f = the(short, "deletion_mismatch");
    assert_eq!(
        (f["file"].as_str(), f["offset"].as_u64(), f["leaf"].as_u64()),
        (Some("0000000000000003.seg"), Some(8), Some(2))
    );
    let m = f["message"].as_str().unwrap();
    assert!(
        m.contains("names the last leaf of 0000000000000002.seg") && m.contains(&"07".repeat(32)),
        "{m}"
    );
    println!("re-chained: {m}");
}

#[test]
fn a_deletion_whose_record_is_gone_is_flagged_but_stays_accepted() {
    let (dir, _keys, public) = swept();
    // The last frame, the record of segment 2's deletion (leaf 5), cut from segment 4.
    let seg4 = class_dir(dir.path(), "short")
        .join(SEGMENTS_DIR)
        .join(segment_file_name(4));
    let frames: Vec<u64> = reader::frames(&class_dir(dir.path(), "short"))
        .unwrap()
        .map(|f| f.unwrap().offset)
        .collect();
    let last = *frames.last().unwrap();
    let bytes = std::fs::read(&seg4).unwrap();
    std::fs::write(&seg4, &bytes[..last as usize]).unwrap();
    let (code, report) = verify_json(dir.path(), &public);
    assert_eq!(code, 1, "{report:#}");
    let short = class_report(&report, "short");
    // The cut itself (checkpoint #4 signed 6 leaves), and the missing record.
    assert_eq!(
        kinds(short),
        ["deletion_record_missing", "truncated"],
        "{short:#}"
    );
    let f = the(short, "deletion_record_missing");
    let offset = read_log(&class_dir(dir.path(), "short").join(RECEIPTS_FILE))
        .unwrap()
        .entries[1]
        .offset;
    assert_eq!(
        (f["file"].as_str(), f["offset"].as_u64()),
        (Some(RECEIPTS_FILE), Some(offset))
    );
    assert_eq!(f["leaves"], json!([1, 1]));
    let m = f["message"].as_str().unwrap();
    assert!(
        m.contains("no meshlog.retention.deletion record for the deletion of 0000000000000002.seg"),
        "{m}"
    );
    println!("record gone: {m}");
    // Still a deletion by policy: listed, and segment 2 is not reported missing.
    assert_eq!(short["deletions"][1]["segment"], "0000000000000002.seg");
    assert_eq!(short["deletions"][1]["record"], "missing");
    assert_eq!(short["deleted_segments"], 2);
}

#[test]
fn verify_refuses_a_receipt_altered_or_signed_by_another_key() {
    let (dir, _keys, public) = swept();
    let log_of = |d: &Path| class_dir(d, "short").join(RECEIPTS_FILE);
    let notes: Vec<Vec<u8>> = read_log(&log_of(dir.path()))
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.note)
        .collect();

    // A byte of the first receipt flipped, its entry's CRC recomputed: intact as stored, but
    // the signature fails. Segment 1 is then missing like any other; segment 2 still is
    // deleted by policy.
    let flipped = copy_of(dir.path());
    let mut first = notes[0].clone();
    first[60] ^= 0x01;
    write_receipts(&log_of(flipped.path()), &[first, notes[1].clone()]);
    let (code, report) = verify_json(flipped.path(), &public);
    assert_eq!(code, 1, "{report:#}");
    let short = class_report(&report, "short");
    let k = kinds(short);
    assert!(
        k.contains(&"receipt_invalid".to_owned()) && k.contains(&"segment_missing".to_owned()),
        "{k:?}"
    );
    let f = the(short, "receipt_invalid");
    assert_eq!(
        (f["file"].as_str(), f["offset"].as_u64()),
        (Some(RECEIPTS_FILE), Some(0))
    );
    assert!(
        f["message"].as_str().unwrap().contains("does not verify"),
        "{f:#}"
    );
    println!("flipped: {}", f["message"]);
    let f = the(short, "segment_missing");
    assert_eq!(
        (f["file"].as_str(), &f["leaves"]),
        (Some("0000000000000001.seg"), &json!([0, 0]))
    );
    assert_eq!(short["deletions"].as_array().unwrap().len(), 1);
    assert_eq!(short["deletions"][0]["segment"], "0000000000000002.seg");

    // Both receipts signed by another key: neither is valid, both segments are missing.
    let forged = copy_of(dir.path());
    let other = SignerKey::from_seed("example.com/meshlog", &[43; 32]).unwrap();
    let resigned: Vec<Vec<u8>> = notes
        .iter()
        .map(|n| {
            let text = std::str::from_utf8(n).unwrap();
            let body = &text[..text.rfind("\n\n").unwrap() + 1];
            sign_note(body, &other).unwrap().into_bytes()
        })
        .collect();
    write_receipts(&log_of(forged.path()), &resigned);
    let (code, report) = verify_json(forged.path(), &public);
    assert_eq!(code, 1, "{report:#}");
    let short = class_report(&report, "short");
    let invalid: Vec<&Value> = short["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "receipt_invalid")
        .collect();
    assert_eq!(invalid.len(), 2, "{short:#}");
    for f in &invalid {
        let m = f["message"].as_str().unwrap();
        assert!(m.contains("is not signed by the given key"), "{m}");
    }
    println!("another key: {}", invalid[0]["message"]);
    let f = the(short, "segment_missing");
    assert_eq!(f["leaves"], json!([0, 1]));
    assert!(short.get("deletions").is_none(), "{short:#}");

    // A flipped byte without the CRC fixed: the log itself is damaged there.
    let damaged = copy_of(dir.path());
    let mut raw = std::fs::read(log_of(damaged.path())).unwrap();
    raw[90] ^= 0x01;
    std::fs::write(log_of(damaged.path()), &raw).unwrap();
    let (code, report) = verify_json(damaged.path(), &public);
    assert_eq!(code, 1);
    let short = class_report(&report, "short");
    let f = the(short, "receipt_log_damaged");
    assert_eq!(f["offset"], 0);
    println!("damaged log: {}", f["message"]);
    assert_eq!(the(short, "segment_missing")["leaves"], json!([0, 1]));
}

#[test]
fn verify_flags_kept_leaf_hashes_that_were_altered_or_removed() {
    let (dir, _keys, public) = swept();
    let leaves_of = |d: &Path, seq: u64| {
        class_dir(d, "short")
            .join(DELETED_DIR)
            .join(format!("{seq:016}.leaves"))
    };

    let altered = copy_of(dir.path());
    let mut bytes = std::fs::read(leaves_of(altered.path(), 1)).unwrap();
    bytes[5] ^= 0x01;
    std::fs::write(leaves_of(altered.path(), 1), &bytes).unwrap();
    let (code, report) = verify_json(altered.path(), &public);
    assert_eq!(code, 1, "{report:#}");
    let short = class_report(&report, "short");
    assert_eq!(kinds(short), ["deleted_leaves"], "{short:#}");
    let f = the(short, "deleted_leaves");
    assert_eq!(f["file"], "deleted/0000000000000001.leaves");
    assert!(
        f["message"].as_str().unwrap().contains("was altered"),
        "{f:#}"
    );
    println!("altered: {}", f["message"]);
    // What cannot be recomputed is said, not passed.
    assert_eq!(short["root"], "unknown");
    let notes = short["notes"].to_string();
    assert!(
        notes.contains("the roots of checkpoints #2, #3, #4 were not checked"),
        "{notes}"
    );

    let removed = copy_of(dir.path());
    std::fs::remove_file(leaves_of(removed.path(), 2)).unwrap();
    let (code, report) = verify_json(removed.path(), &public);
    assert_eq!(code, 1);
    let short = class_report(&report, "short");
    assert_eq!(kinds(short), ["deleted_leaves"], "{short:#}");
    let f = the(short, "deleted_leaves");
    assert_eq!(f["file"], "deleted/0000000000000002.leaves");
    assert!(
        f["message"].as_str().unwrap().contains("is missing"),
        "{f:#}"
    );
}

#[test]
fn a_restart_after_a_deletion_rebuilds_the_signed_tree_with_or_without_tree_state() {
    let mut c = four_segments(true);
    c.restart();
    let r = c.sweep(T0 + 31 * DAY + 12 * HOUR, &[]);
    assert_eq!(r.class("short").unwrap().deleted.len(), 2);
    // Stopped: checkpoint #4 signs the 6 leaves, the 2 deleted ones included.
    c.stores.take().unwrap().close().unwrap();
    let short = c.class("short");
    let signed = checkpoints(&short, &signer().verifier());
    let after_sweep = signed.last().unwrap().clone();
    assert_eq!((signed.len(), after_sweep.size), (4, 6));

    // Started with its tree.state (whose last leaf is in segment 4) and stopped: the start
    // checkpoint is the same tree.
    c.restart();
    c.stores.take().unwrap().close().unwrap();
    // Without tree.state: the tree rebuilt from segments 3 and 4 and the leaves kept of 1 and
    // 2 is the signed one (what the start-up comparison checks).
    std::fs::remove_file(short.join(TREE_STATE_FILE)).unwrap();
    let log = LeafLog::open(
        &short,
        &short.join(SEGMENTS_DIR),
        &IntegrityOptions::default(),
    )
    .unwrap();
    assert_eq!(
        (log.committed_size(), log.committed_root()),
        (after_sweep.size, after_sweep.root),
        "the rebuilt tree matches the checkpoint signed after the deletion"
    );
    drop(log);

    // Started again without tree.state: its start checkpoint is that tree too, and a new
    // record becomes leaf 6, chained to leaf 5.
    c.restart();
    c.post_one("cart", &["f1"], T0 + 41 * DAY);
    let dir = c.close();
    let cps = checkpoints(&class_dir(dir.path(), "short"), &signer().verifier());
    let sizes: Vec<u64> = cps.iter().map(|c| c.size).collect();
    assert_eq!(sizes, [0, 4, 4, 6, 6, 6, 6, 7]);
    for (i, cp) in cps.iter().enumerate().take(7).skip(4) {
        assert_eq!(cp.root, after_sweep.root, "checkpoint #{}", i + 1);
    }
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = write_keys(keys.path());
    let (code, report) = verify_json(dir.path(), &public);
    assert_eq!(code, 0, "{report:#}");
    let short = class_report(&report, "short");
    assert_eq!(short["tree_size"], 7);
    assert_eq!(
        short["checkpoints"]["verified"], 8,
        "signed before and after the deletion"
    );
    assert_eq!(short["deleted_segments"], 2);
}

#[test]
fn meshlog_verify_reports_each_class_with_and_without_the_public_key() {
    let (dir, _keys, public) = swept();
    let data = dir.path().to_str().unwrap();
    let public = public.to_str().unwrap();
    let out = run(&["verify", "--data-dir", data, "--public-key", public]);
    let text = stdout_of(&out);
    println!("{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    for needle in [
        format!("meshlog verify: {data}: 2 stores (class default, class short)"),
        format!("meshlog verify: {data}/classes/default (retention class default)"),
        format!("meshlog verify: {data}/classes/short (retention class short)"),
        "deletion receipts: 2 in receipts.log, 2 valid\n".into(),
        "deleted by policy: 2 segments, 2 leaves (receipts verified)".into(),
        "short 0000000000000001.seg: leaf 0, 1 frame, 2 records; newest record observed \
         2023-11-14T22:13:20Z + 30 days is before the sweep at 2023-12-16T10:13:20Z; receipt \
         at offset 0; record: leaf 4, 0000000000000004.seg offset"
            .into(),
        "  class default: INTACT (2 segments, 0 deleted by policy)".into(),
        "  class short: INTACT (2 segments, 2 deleted by policy)".into(),
    ] {
        assert!(text.contains(&needle), "{needle:?} not in\n{text}");
    }
    assert!(text.trim_end().ends_with("\nINTACT"), "{text}");

    // Without the key: the structure is checked, the deletions accepted on their receipts'
    // form, and the report says they are not authenticated.
    let out = run(&["verify", "--data-dir", data, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["signatures_checked"], false);
    let short = class_report(&report, "short");
    assert_eq!(short["deletions"][0]["authenticated"], false);
    assert_eq!(short["receipts"]["authenticated"], false);
    let notes = short["notes"].to_string();
    assert!(
        notes.contains("2 deletions were accepted on the receipts' form alone")
            && notes.contains("NOT authenticated"),
        "{notes}"
    );
    let out = run(&["verify", "--data-dir", data]);
    let text = stdout_of(&out);
    assert!(
        text.contains(
            "deleted by policy: 2 segments, 2 leaves (NOT authenticated: no --public-key)"
        ),
        "{text}"
    );

    // One class damaged: exit 1, and the summary names it; the other class is intact.
    std::fs::remove_file(
        class_dir(dir.path(), "short")
            .join(SEGMENTS_DIR)
            .join(segment_file_name(3)),
    )
    .unwrap();
    let out = run(&["verify", "--data-dir", data, "--public-key", public]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("  class default: INTACT"), "{text}");
    // The missing segment, and the three checkpoints over it as one finding under it.
    assert!(
        text.contains("  class short: NOT INTACT (2 findings)"),
        "{text}"
    );
    assert!(
        text.trim_end().ends_with("NOT INTACT: class short"),
        "{text}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the store is NOT intact: 2 findings"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A class directory checked on its own is that class store, receipts and all.
    let out = run(&[
        "verify",
        "--data-dir",
        &format!("{data}/classes/default"),
        "--public-key",
        public,
    ]);
    assert_eq!(out.status.code(), Some(0));
}

// ---------------------------------------------------------------------------------------------
// The real binary

#[test]
fn meshlog_receipts_lists_and_verifies_with_exit_codes() {
    let mut c = four_segments(true);
    c.sweep(T0 + 31 * DAY + 12 * HOUR, &[]);
    let dir = c.close();
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = write_keys(keys.path());
    let data = dir.path().to_str().unwrap();
    let public = public.to_str().unwrap();

    let out = run(&["receipts", "--data-dir", data, "--public-key", public]);
    let text = stdout_of(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("valid short 0000000000000001.seg records=2 frames=1 bytes="),
        "{text}"
    );
    assert!(
        lines[0].contains(
            "observed=2023-11-14T22:13:20Z..2023-11-14T22:13:20Z days=30 swept=2023-12-16T10:13:20Z"
        ),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 deletion receipts, all valid"));

    let out = run(&[
        "receipts",
        "--data-dir",
        data,
        "--public-key",
        public,
        "--json",
    ]);
    let doc: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(
        (doc["valid"].as_u64(), doc["invalid"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(doc["receipts"][1]["segment"], "0000000000000002.seg");
    assert_eq!(doc["receipts"][1]["records"], 1);

    // Another key: every receipt is invalid, exit 1.
    let other = keys.path().join("other.pub");
    write_verifier_key(
        &other,
        &SignerKey::from_seed("example.com/meshlog", &[1; 32])
            .unwrap()
            .verifier(),
    )
    .unwrap();
    let out = run(&[
        "receipts",
        "--data-dir",
        data,
        "--public-key",
        other.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("INVALID short").count(), 2, "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 of 2 deletion receipts are not valid")
    );

    // A flipped byte inside the first receipt's note, its entry CRC recomputed: that receipt
    // is invalid, the other still valid, exit 1.
    let log_path = class_dir(dir.path(), "short").join(RECEIPTS_FILE);
    let log = read_log(&log_path).unwrap();
    let mut forged = Vec::new();
    for (i, e) in log.entries.iter().enumerate() {
        let mut note = e.note.clone();
        if i == 0 {
            note[60] ^= 0x01;
        }
        forged.extend_from_slice(
            format!("MLRC {} {:08x}\n", note.len(), crc32fast::hash(&note)).as_bytes(),
        );
        forged.extend_from_slice(&note);
    }
    std::fs::write(&log_path, &forged).unwrap();
    let out = run(&["receipts", "--data-dir", data, "--public-key", public]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("INVALID short") && text.contains("offset 0: line"),
        "{text}"
    );
    assert!(text.contains("valid short 0000000000000002.seg"), "{text}");
    // The same flip without fixing the CRC: the log is damaged.
    let mut raw = std::fs::read(&log_path).unwrap();
    raw[90] ^= 0x01;
    std::fs::write(&log_path, &raw).unwrap();
    let out = run(&["receipts", "--data-dir", data, "--public-key", public]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("is damaged at offset"));

    // Usage errors: exit 2.
    assert_eq!(
        run(&["receipts", "--data-dir", data]).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&["receipts", "--public-key", public, "--bogus"])
            .status
            .code(),
        Some(2)
    );
}

/// Writes, into class `class` of the data directory `data` configured by `cfg`, a closed
/// segment of one frame without a receive time (as written before that header entry existed):
/// one record `id` observed at `observed`.
pub(crate) fn write_old_segment(data: &Path, cfg: &Path, class: &str, id: &str, observed: u64) {
    let text = std::fs::read_to_string(cfg).unwrap();
    let policy = Config::from_toml(&text).unwrap().retention.unwrap();
    let stores = ClassStores::open(data, &policy, &StoreOptions::default()).unwrap();
    let routes = stores.routes();
    let i = routes.names().iter().position(|n| n == class).unwrap();
    let handle = routes.handles()[i].clone();
    let Value::Object(record) = json!({
        "event_name": "meshlog.http.access",
        "observed_time_unix_nano": observed,
        "time_unix_nano": observed,
        "resource.service.name": "checkout",
        "meshlog.request_id": id,
    }) else {
        unreachable!()
    };
    let frame = meshlog_format::frame::encode_frame([&record]).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(handle.append(frame)).unwrap();
    rt.block_on(handle.rotate()).unwrap();
    stores.close().unwrap();
}

#[test]
fn serve_sweeps_on_its_own_and_rereads_holds_from_the_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (signing, public) = write_keys(tmp.path());
    let cfg = tmp.path().join("meshlog.toml");
    let write_cfg = |with_hold: bool| {
        let mut text = format!(
            "data_dir = {:?}\n[integrity]\nsigning_key = {:?}\n\
             [retention]\ndefault_days = 400\nsweep_interval_s = 1\nsegment_max_age_s = 60\n\
             [[retention.classes]]\nname = \"short\"\ndays = 1\n\
             match = {{ \"service.name\" = \"checkout\" }}\n",
            data.to_str().unwrap(),
            signing.to_str().unwrap()
        );
        if with_hold {
            text.push_str(
                "[[retention.holds]]\nname = \"case-1\"\nreason = \"litigation\"\n\
                 classes = [\"short\"]\n",
            );
        }
        std::fs::write(&cfg, text).unwrap();
    };
    write_cfg(true);
    // Retention runs on receive times, so a record sent now cannot expire during a test: the
    // short class holds a closed segment written before frames had a receive time, one record
    // observed in 2020 (so dated by that), past any retention.
    write_old_segment(&data, &cfg, "short", "old1", 1_600_000_000 * 1_000_000_000);
    let mut serve = Proc::spawn(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let addr = serve.addr();
    serve.wait_line("retention on");
    // Recent records of the default class stay.
    let (status, _) = http_post(addr, JSON, &otlp_at(&[("billing", &["new1"])], now_ns()));
    assert_eq!(status, 200);
    let held = serve.wait_line("legal holds keep expired segments");
    assert!(
        held.contains("case-1") && held.contains("class=short"),
        "{held}"
    );
    let receipts_log = class_dir(&data, "short").join(RECEIPTS_FILE);
    assert!(!receipts_log.exists());

    // Lifted in the file: the next pass deletes, no restart.
    write_cfg(false);
    serve.wait_line("legal holds changed");
    serve.wait_line("deleted an expired segment");
    let out = run(&[
        "receipts",
        "--data-dir",
        data.to_str().unwrap(),
        "--public-key",
        public.to_str().unwrap(),
    ]);
    let text = stdout_of(&out);
    assert!(
        text.starts_with("valid short 0000000000000001.seg records=1"),
        "{text}"
    );
    let lines = query_lines(&data);
    let events: Vec<(&str, &str)> = lines
        .iter()
        .map(|r| {
            (
                r["event_name"].as_str().unwrap(),
                r.get("meshlog.request_id")
                    .and_then(Value::as_str)
                    .unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        events,
        [("meshlog.http.access", "new1"), (DELETION_EVENT, "-")],
        "default class first, then short: the old record gone, its deletion recorded"
    );
    assert_eq!(serve.terminate().code(), Some(0));
}

#[test]
fn serve_refuses_a_bad_retention_config_with_every_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("meshlog.toml");
    std::fs::write(
        &cfg,
        "[retention]\ndefault_days = 0\n\
         [[retention.classes]]\nname = \"Short!\"\ndays = 30\nmatch = { \"service.name\" = \"a\" }\n\
         [[retention.classes]]\nname = \"dup\"\ndays = 1\nmatch = { \"service.name\" = \"b\" }\n\
         [[retention.classes]]\nname = \"dup\"\ndays = 1\nmatch = { \"service.name\" = \"c\" }\n\
         [[retention.holds]]\nname = \"h\"\nreason = \"r\"\nclasses = [\"nope\"]\n",
    )
    .unwrap();
    let out = run(&["serve", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "(4 problems)",
        "retention.default_days: expected an integer from 1 to 36500, got 0",
        "retention.classes[0].name: expected 1 to 32 of a-z, 0-9 and -, got \"Short!\"",
        "retention.classes[2].name: duplicate class name \"dup\"",
        "retention.holds[0].classes: unknown class \"nope\"",
    ] {
        assert!(err.contains(needle), "{needle} not in {err}");
    }
}

#[test]
fn moving_a_store_into_classes_as_the_error_says_keeps_its_signed_checkpoints_checked() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = write_keys(keys.path());
    let opts = StoreOptions {
        integrity: IntegrityOptions {
            signer: Some(Arc::new(signer())),
            checkpoint_interval: Duration::from_secs(3600),
        },
        ..StoreOptions::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = Store::open(dir.path(), opts.clone()).unwrap();
    for _ in 0..3 {
        let frame = meshlog_format::frame::encode_frame(&[Map::new()]).unwrap();
        rt.block_on(store.handle().append(frame)).unwrap();
    }
    store.close().unwrap();
    let before =
        checkpoint_log::parse(&std::fs::read(dir.path().join(CHECKPOINT_LOG_FILE)).unwrap()).len();
    assert!(before >= 2, "start and shutdown checkpoints");

    // With [retention] the store is refused, with the commands that move it.
    let e = ClassStores::open(dir.path(), &policy(), &opts)
        .unwrap_err()
        .to_string();
    let command = e.split("first, with its signed checkpoints so that verify keeps checking them across the move: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no command in {e}"));
    assert!(command.contains(CHECKPOINT_LOG_FILE), "{command}");
    let ran = std::process::Command::new("sh")
        .args(["-c", command])
        .status()
        .unwrap();
    assert!(ran.success(), "{command}");

    // The class store continues the same log: more leaves, more checkpoints, all verified.
    let stores = ClassStores::open(dir.path(), &policy(), &opts).unwrap();
    let frame = meshlog_format::frame::encode_frame(&[Map::new()]).unwrap();
    let default = stores.routes().default_handle().unwrap().clone();
    rt.block_on(default.append(frame)).unwrap();
    stores.close().unwrap();
    let out = run(&[
        "verify",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--public-key",
        public.to_str().unwrap(),
        "--json",
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report}");
    let class = class_report(&report, "default");
    let checkpoints = &class["checkpoints"];
    assert!(
        checkpoints["verified"].as_u64().unwrap() as usize >= before + 2,
        "the old checkpoints are checked with the new ones: {checkpoints}"
    );
    assert_eq!(checkpoints["verified"], checkpoints["entries"]);
    assert_eq!(checkpoints["latest"]["size"], 4, "{checkpoints}");
}
