//! "Nothing acknowledged is ever lost", the collector's half: a `meshlog-batch-id` makes a retry
//! idempotent (concurrently and across restarts), a full ingest queue and a full disk answer
//! retryable errors instead of buffering without bound or corrupting the store, stores written
//! with version-1 frames stay readable, and kill -9 of the real binary loses no acknowledged
//! batch and stores none twice.

use super::*;
use meshlog_format::reader::SegmentScanner;
use meshlog_server::ingest::{BATCH_ID_HEADER, DEFAULT_ACK_TIMEOUT, DUPLICATE_HEADER};
use meshlog_store::WriterPause;
use meshlog_store::queue::OVERHEAD_BYTES;
use std::collections::{BTreeSet, HashMap};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------------------------------------
// Helpers

/// A 200 that stored the batch now (no `meshlog-duplicate` header).
macro_rules! stored {
    ($r:expr) => {{
        let r: &Reply = &$r;
        let body = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, StatusCode::OK, "{body}");
        assert!(
            r.headers.get(DUPLICATE_HEADER).is_none(),
            "a fresh store is marked duplicate"
        );
    }};
}

/// A 200 for a batch id stored before: `meshlog-duplicate: true`.
macro_rules! duplicate {
    ($r:expr) => {{
        let r: &Reply = &$r;
        let body = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, StatusCode::OK, "{body}");
        assert_eq!(
            r.headers.get(DUPLICATE_HEADER).map(|v| v.to_str().unwrap()),
            Some("true"),
            "not marked duplicate"
        );
    }};
}

/// A refusal the client should retry: status, `Retry-After` seconds, a message naming why.
macro_rules! retry_later {
    ($r:expr => $status:ident, $secs:expr, $needle:expr) => {{
        let r: &Reply = &$r;
        let body = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, StatusCode::$status, "{body}");
        assert_eq!(
            r.headers
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap()),
            Some($secs),
            "Retry-After"
        );
        let msg = r.message();
        assert!(msg.contains($needle), "{msg:?} lacks {:?}", $needle);
    }};
}

/// How often each `meshlog.request_id` is stored.
fn counts(records: &[Map<String, Value>]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in records {
        *m.entry(r["meshlog.request_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    m
}

/// The batch id of every frame, in order.
fn frame_ids(dir: &Path) -> Vec<Option<String>> {
    reader::frames(dir)
        .unwrap()
        .map(|f| f.unwrap().batch_id.map(|b| b.to_string()))
        .collect()
}

/// Polls `cond` until it holds; fails the test after `secs` seconds.
async fn eventually(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_paused(pause: &WriterPause) {
    let p = pause.clone();
    let paused = tokio::task::spawn_blocking(move || p.wait_until_paused(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(paused, "the writer never reached its fsync");
}

/// Letters from a xorshift generator: zstd cannot shrink them much.
fn noise(seed: u64, n: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// One record `id` carrying `pad` incompressible letters.
fn padded_batch(id: &str, pad: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "attributes": [
            {"key": "meshlog.request_id", "value": {"stringValue": id}},
            {"key": "pad", "value": {"stringValue": noise(id.len() as u64 * 31 + 7, pad)}},
        ]
    }]}]}]}))
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Batch ids

#[tokio::test]
async fn a_retried_batch_is_stored_once_even_across_a_restart() {
    let h = Harness::new(Limits::default());
    let (id, body) = ("00000000000000aa:1-2", otlp_json("retry", &["r1", "r2"]));
    let first = h.post_with(JSON, None, Some(id), body.clone()).await;
    stored!(first);
    let again = h.post_with(JSON, None, Some(id), body.clone()).await;
    duplicate!(again);
    assert_eq!(
        (again.ctype.as_str(), again.body.as_slice()),
        (first.ctype.as_str(), first.body.as_slice()),
        "a duplicate gets the same success body"
    );

    let (pid, pbody) = ("00000000000000aa:3-3", otlp_proto("retry", "r3", 200));
    let p1 = h.post_with(PROTO, None, Some(pid), pbody.clone()).await;
    stored!(p1);
    let p2 = h.post_with(PROTO, None, Some(pid), pbody.clone()).await;
    duplicate!(p2);
    assert_eq!(p2.body, p1.body);
    assert_eq!(
        ExportLogsServiceResponse::decode(p2.body.as_slice()).unwrap(),
        ExportLogsServiceResponse::default()
    );

    // The id is the identity, not the content: another id is another batch...
    let other = otlp_json("retry", &["r4"]);
    stored!(
        h.post_with(JSON, None, Some("00000000000000bb:1-1"), other)
            .await
    );
    // ...and plain OTLP without the header is never deduplicated.
    for _ in 0..2 {
        stored!(h.post(JSON, None, otlp_json("plain", &["n1"])).await);
    }
    let c = counts(&h.stored());
    assert_eq!(
        (c["r1"], c["r2"], c["r3"], c["r4"], c["n1"]),
        (1, 1, 1, 1, 2)
    );

    // Restart: the index is rebuilt from the frame headers.
    let dir = h.close().await;
    let h = Harness::open(dir, Limits::default());
    duplicate!(h.post_with(JSON, None, Some(id), body).await);
    duplicate!(
        h.post_with(PROTO, Some("gzip"), Some(pid), gzip(&pbody))
            .await
    );
    let c = counts(&h.stored());
    assert_eq!((c["r1"], c["r2"], c["r3"], c.len()), (1, 1, 1, 5));
    assert_eq!(
        frame_ids(h.path()),
        [
            Some(id.to_owned()),
            Some(pid.to_owned()),
            Some("00000000000000bb:1-1".to_owned()),
            None,
            None
        ]
    );
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_copies_of_a_batch_are_stored_once() {
    let pause = WriterPause::new();
    let h = Harness::open_with(
        tempfile::tempdir().unwrap(),
        StoreOptions {
            pause: Some(pause.clone()),
            ..StoreOptions::default()
        },
        Limits::default(),
        DEFAULT_ACK_TIMEOUT,
    );
    let spawn_copies = |n: usize, id: &'static str, records: &'static [&'static str]| {
        let barrier = Arc::new(tokio::sync::Barrier::new(n));
        (0..n)
            .map(|_| {
                let (app, barrier) = (h.app.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    post_to(&app, JSON, None, Some(id), otlp_json("conc", records)).await
                })
            })
            .collect::<Vec<_>>()
    };

    // 32 copies let go at the same moment: one stores, every other one is told duplicate.
    let mut fresh = 0;
    for t in spawn_copies(32, "00000000000000cc:1-3", &["c1", "c2", "c3"]) {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        if r.headers.get(DUPLICATE_HEADER).is_none() {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "exactly one copy stored the batch");

    // Copies arriving while the first is written wait for its fsync and share its outcome.
    let queue = h.store.as_ref().unwrap().handle();
    pause.hold();
    let (first_id, first_recs): (&str, &[&str]) = ("00000000000000cc:4-4", &["d1"]);
    let first = tokio::spawn({
        let app = h.app.clone();
        async move {
            post_to(
                &app,
                JSON,
                None,
                Some(first_id),
                otlp_json("conc", first_recs),
            )
            .await
        }
    });
    wait_paused(&pause).await;
    let base = queue.queued_bytes();
    let copies = spawn_copies(16, first_id, first_recs);
    // Every copy is admitted (it holds queue bytes): it got past the early index check.
    eventually("16 copies in the queue", 10, || {
        queue.queued_bytes() >= base + 16 * OVERHEAD_BYTES
    })
    .await;
    assert!(
        copies.iter().all(|c| !c.is_finished()) && !first.is_finished(),
        "answered before the first copy's fsync"
    );
    pause.release();
    stored!(first.await.unwrap());
    for c in copies {
        duplicate!(c.await.unwrap());
    }
    let c = counts(&h.stored());
    assert_eq!(
        (c["c1"], c["c2"], c["c3"], c["d1"], c.len()),
        (1, 1, 1, 1, 4)
    );
    assert_eq!(reader::frames(h.path()).unwrap().count(), 2);
    eprintln!("copies: 32 racing → 1 stored; 16 waiting on an fsync → 16 duplicates");
    h.close().await;
}

#[tokio::test]
async fn bad_batch_ids_are_refused_precisely_and_store_nothing() {
    let h = Harness::new(Limits::default());
    let post_raw = |values: Vec<axum::http::HeaderValue>| {
        let app = h.app.clone();
        async move {
            let mut req = Request::post("/v1/logs").header(header::CONTENT_TYPE, JSON);
            for v in values {
                req = req.header(BATCH_ID_HEADER, v);
            }
            let resp = app
                .oneshot(req.body(Body::from(otlp_json("bad", &["b1"]))).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
                .await
                .unwrap();
            let v: Value = serde_json::from_slice(&body).unwrap();
            (status, v["message"].as_str().unwrap_or_default().to_owned())
        }
    };
    let hv = |b: &[u8]| axum::http::HeaderValue::from_bytes(b).unwrap();
    let long = "x".repeat(129);
    for (values, message) in [
        (
            vec![hv(b"vm:1 -2")],
            "has byte 0x20 at position 4; only visible ASCII (0x21 to 0x7e) is allowed",
        ),
        (
            vec![hv(b"")],
            "is empty; expected 1 to 128 visible ASCII characters",
        ),
        (
            vec![hv(long.as_bytes())],
            "is 129 bytes long; at most 128 are allowed",
        ),
        (
            vec![hv("café".as_bytes())],
            "has byte 0xc3 at position 3; only visible ASCII (0x21 to 0x7e) is allowed",
        ),
        (
            vec![hv(b"a"), hv(b"b")],
            "repeated meshlog-batch-id header; send exactly one",
        ),
    ] {
        let (status, msg) = post_raw(values).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{msg}");
        let want = if message.starts_with("repeated") {
            message.to_owned()
        } else {
            format!("invalid meshlog-batch-id header: {message}")
        };
        assert_eq!(msg, want);
    }
    assert!(h.stored().is_empty());
    // The longest id allowed, every visible character.
    let widest: String = (0x21u8..=0x7e)
        .map(char::from)
        .chain("!".repeat(34).chars())
        .collect();
    assert_eq!(widest.len(), 128);
    let (status, msg) = post_raw(vec![hv(widest.as_bytes())]).await;
    assert_eq!(status, StatusCode::OK, "{msg}");
    assert_eq!(frame_ids(h.path()), [Some(widest)]);
    h.close().await;
}

// ---------------------------------------------------------------------------------------------
// Backpressure

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after_instead_of_buffering() {
    let pause = WriterPause::new();
    let h = Harness::open_with(
        tempfile::tempdir().unwrap(),
        StoreOptions {
            // One batch at a time: whatever is admitted fills the queue.
            max_queue_bytes: 1,
            pause: Some(pause.clone()),
            ..StoreOptions::default()
        },
        Limits::default(),
        DEFAULT_ACK_TIMEOUT,
    );
    stored!(
        h.post_with(JSON, None, Some("q:0"), otlp_json("q", &["q0"]))
            .await
    );

    pause.hold();
    let held = tokio::spawn({
        let app = h.app.clone();
        async move { post_to(&app, JSON, None, Some("q:1"), otlp_json("q", &["q1"])).await }
    });
    wait_paused(&pause).await;
    let queued = h.store.as_ref().unwrap().handle().queued_bytes();
    assert!(queued > 1, "the held batch holds the queue: {queued} bytes");

    let t0 = Instant::now();
    let busy = h
        .post_with(JSON, None, Some("q:2"), otlp_json("q", &["q2"]))
        .await;
    retry_later!(busy => SERVICE_UNAVAILABLE, "1", "the ingest queue is full");
    let busy_proto = h
        .post(PROTO, Some("gzip"), gzip(&otlp_proto("q", "q3", 200)))
        .await;
    retry_later!(busy_proto => SERVICE_UNAVAILABLE, "1", "the ingest queue is full");
    assert_eq!(
        busy_proto.ctype, PROTO,
        "error body in the request's encoding"
    );
    let refused_in = t0.elapsed();
    // A retry of a stored batch needs no room: the index answers it.
    duplicate!(
        h.post_with(JSON, None, Some("q:0"), otlp_json("q", &["q0"]))
            .await
    );
    assert!(!held.is_finished(), "acknowledged before its fsync");

    pause.release();
    stored!(held.await.unwrap());
    // The refused batches, retried as they are, go through now.
    stored!(
        h.post_with(JSON, None, Some("q:2"), otlp_json("q", &["q2"]))
            .await
    );
    stored!(
        h.post(PROTO, Some("gzip"), gzip(&otlp_proto("q", "q3", 200)))
            .await
    );
    let c = counts(&h.stored());
    assert_eq!(
        (c["q0"], c["q1"], c["q2"], c["q3"], c.len()),
        (1, 1, 1, 1, 4)
    );
    assert_eq!(h.store.as_ref().unwrap().handle().queued_bytes(), 0);
    eprintln!("queue full at {queued} bytes: two batches refused in {refused_in:?}");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_not_confirmed_in_time_is_unacknowledged_and_its_retry_a_duplicate() {
    let pause = WriterPause::new();
    let h = Harness::open_with(
        tempfile::tempdir().unwrap(),
        StoreOptions {
            pause: Some(pause.clone()),
            ..StoreOptions::default()
        },
        Limits::default(),
        Duration::from_millis(200),
    );
    pause.hold();
    let (id, body) = ("t:1-1", otlp_json("slow", &["t1"]));
    let slow = h.post_with(JSON, None, Some(id), body.clone()).await;
    retry_later!(slow => SERVICE_UNAVAILABLE, "1",
        "the batch was not confirmed on disk within 200 ms and is not acknowledged; it may still \
         be stored: retry it with the same meshlog-batch-id");
    // The frame was not dropped with the answer: once the disk catches up it is stored, and
    // the retry finds it (after the first copy's fsync, whichever group it lands in).
    pause.release();
    duplicate!(h.post_with(JSON, None, Some(id), body).await);
    assert_eq!(counts(&h.stored())["t1"], 1);
    h.close().await;
}

// ---------------------------------------------------------------------------------------------
// Version-1 frames

/// `tests/data/v1-segment.seg` was written by `meshlog serve` before frame version 2 (commit
/// e7403e9): two JSON batches, records v1-a and v1-b, then v1-c.
#[tokio::test]
async fn a_store_of_version_1_frames_is_read_and_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let segs = dir.path().join(SEGMENTS_DIR);
    std::fs::create_dir_all(&segs).unwrap();
    let v1 = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/v1-segment.seg"
    ))
    .unwrap();
    let seg = segs.join(segment_file_name(1));
    std::fs::write(&seg, &v1).unwrap();

    let frames: Vec<_> = reader::frames(dir.path())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let versions: Vec<u8> = frames.iter().map(|f| v1[f.offset as usize + 4]).collect();
    assert_eq!(versions, [1, 1], "the fixture holds version-1 frames");
    assert!(frames.iter().all(|f| f.batch_id.is_none()));
    let recs = reader::read_all(dir.path()).unwrap();
    assert_eq!(
        Value::Object(recs[0].clone()),
        json!({
            "http.request.method": "GET",
            "meshlog.request_id": "v1-a",
            "observed_time_unix_nano": 1_764_000_000_100_000_000u64,
            "resource.service.name": "v1-store",
            "scope.name": "meshlog",
            "severity_number": 9,
            "time_unix_nano": 1_764_000_000_000_000_000u64,
            "url.path": "/v1/v1-a",
        })
    );

    // The store opens on it (recovery walks version-1 frames and cuts nothing) and appends
    // version-2 frames behind them.
    let h = Harness::open(dir, Limits::default());
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), v1.len() as u64);
    let body = otlp_json("v2", &["v2-a"]);
    stored!(h.post_with(JSON, None, Some("v2:1-1"), body.clone()).await);
    duplicate!(h.post_with(JSON, None, Some("v2:1-1"), body).await);
    let dir = h.close().await;
    let bytes = std::fs::read(&seg).unwrap();
    assert_eq!(&bytes[..v1.len()], &v1[..], "old frames never rewritten");
    assert_eq!(bytes[v1.len() + 4], 2, "new frames are version 2");
    assert_eq!(frame_ids(dir.path()), [None, None, Some("v2:1-1".into())]);
    assert!(!dir.path().join("quarantine").exists());
    assert_eq!(query_ids(dir.path()), ["v1-a", "v1-b", "v1-c", "v2-a"]);

    // The new frame is chained to the old ones, which are leaves without a chain entry: the
    // store verifies, and says the old frames rest on checkpoints alone.
    let out = run(&[
        "verify",
        "--json",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["tree_size"], 3);
    assert_eq!(report["unchained_frames"], 2);
    assert!(
        report["notes"][0]
            .as_str()
            .unwrap()
            .contains("the first 2 frames were written before the hash chain"),
        "{report:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// The real binary: full disk, kill -9

/// An HTTP response from the real binary.
struct HttpReply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn message(&self) -> String {
        let v: Value = serde_json::from_slice(&self.body).unwrap();
        v["message"].as_str().unwrap().to_owned()
    }
}

/// POSTs OTLP/JSON with an optional batch id; an I/O error (refused, reset, cut short) is
/// returned, not a panic: the kill -9 test retries on it.
fn send(addr: SocketAddr, batch_id: Option<&str>, body: &[u8]) -> std::io::Result<HttpReply> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let id = batch_id
        .map(|i| format!("{BATCH_ID_HEADER}: {i}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "POST /v1/logs HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {JSON}\r\n{id}\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let cut = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "response cut short");
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(cut)?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(cut)?;
    Ok(HttpReply {
        status,
        head,
        body: buf[head_end + 4..].to_vec(),
    })
}

/// A tmpfs mounted on a temp dir, unmounted on drop.
struct Tmpfs {
    mnt: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mnt)
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "mount -t tmpfs failed ({}): {}; this test needs root (CAP_SYS_ADMIN) to mount a \
                 small filesystem it can fill",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!(
                "cannot run mount ({e}); this test needs root (CAP_SYS_ADMIN) and mount(8) to \
                 mount a small filesystem it can fill"
            ),
        }
        Tmpfs { mnt, _dir: dir }
    }

    fn path(&self) -> &Path {
        &self.mnt
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a collector that outlived a failed test): detach it.
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

/// Writes `path` until the filesystem is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0xa5u8; 4096];
    let mut n = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(k) => n += k as u64,
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
                return n;
            }
        }
    }
}

impl Proc {
    /// Every stderr line, once the process has exited (its end of the pipe closes with it).
    fn drain(&mut self) -> Vec<String> {
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(10)) {
            self.seen.push(l);
        }
        self.seen.clone()
    }

    /// SIGKILL, and reap.
    fn kill9(&mut self) -> std::process::ExitStatus {
        self.child.kill().unwrap();
        self.child.wait().unwrap()
    }
}

#[test]
fn a_full_disk_answers_507_keeps_the_store_clean_and_recovers_when_space_returns() {
    let fs = Tmpfs::mount("512k");
    let data = fs.path().join("data");
    let dir = data.to_str().unwrap();
    // The delivery settings come from the file (outside the small filesystem).
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("meshlog.toml");
    std::fs::write(
        &cfg,
        "max_queue_bytes = 1048576\ndedup_window_batches = 1000\nack_timeout_ms = 5000\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let serve_args = [
        "serve",
        "--config",
        cfg,
        "--data-dir",
        dir,
        "--listen",
        "127.0.0.1:0",
    ];
    let mut serve = Proc::spawn(&serve_args);
    let open = serve.wait_line("store open");
    assert!(
        open.contains("dedup_window=1000") && open.contains("max_queue_bytes=1048576"),
        "{open}"
    );
    let addr = serve.addr();
    let ok = |r: &HttpReply, dup: bool| {
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(
            r.header(DUPLICATE_HEADER),
            dup.then_some("true"),
            "{}",
            r.head
        );
    };
    for i in 0..3 {
        let r = send(
            addr,
            Some(&format!("f:{i}")),
            &otlp_json("disk", &[&*format!("fd{i}")]),
        );
        ok(&r.unwrap(), false);
    }
    let seg = data.join(SEGMENTS_DIR).join(segment_file_name(1));
    let len_before = std::fs::metadata(&seg).unwrap().len();

    let filler = fs.path().join("filler");
    let filled = fill(&filler);
    // Frames of ~10 KB: larger than any slack left in the segment's last page.
    let big = |i: usize| padded_batch(&format!("fd{i}"), 16_000);
    for i in 3..6 {
        let r = send(addr, Some(&format!("f:{i}")), &big(i)).unwrap();
        assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("retry-after"), Some("10"), "{}", r.head);
        assert!(
            r.message().starts_with("insufficient storage"),
            "{}",
            r.message()
        );
    }
    // Every failed frame was cut back: the segment is exactly what was acknowledged, every
    // frame checks out to its end, and query (read-only) shows exactly those records.
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len_before);
    let mut sc = SegmentScanner::open(&seg).unwrap();
    let mut frames = 0;
    while sc.next_frame(true).unwrap().is_some() {
        frames += 1;
    }
    assert_eq!((frames, sc.position()), (3, len_before));
    assert_eq!(query_ids(&data), ["fd0", "fd1", "fd2"]);

    // A full disk does not prevent a clean stop; all of stderr, read to its end, shows the
    // episode logged once, not once per refused batch.
    assert_eq!(serve.terminate().code(), Some(0));
    let episode_logs = |lines: &[String]| -> Vec<String> {
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("refusing all further writes"))
        );
        lines
            .iter()
            .filter(|l| l.contains("disk full: batches are refused with 507"))
            .cloned()
            .collect()
    };
    let full = episode_logs(&serve.drain());
    assert_eq!(full.len(), 1, "{full:#?}");
    assert!(
        full[0].contains("ERROR") && full[0].contains("No space left"),
        "{}",
        full[0]
    );

    // Nor a restart on the still-full disk: nothing to repair, nothing to write, and it serves
    // (a retry of a stored batch is answered; a new one is refused again).
    let mut serve = Proc::spawn(&serve_args);
    let open = serve.wait_line("store open");
    assert!(
        open.contains("bytes_cut=0") && open.contains("batch_ids=3"),
        "{open}"
    );
    let addr = serve.addr();
    ok(
        &send(addr, Some("f:0"), &otlp_json("disk", &["fd0"])).unwrap(),
        true,
    );
    assert_eq!(send(addr, Some("f:3"), &big(3)).unwrap().status, 507);

    // Space returns: the next batch simply goes through; the store was never poisoned.
    std::fs::remove_file(&filler).unwrap();
    ok(&send(addr, Some("f:6"), &big(6)).unwrap(), false);
    let back = serve.wait_line("disk space available again");
    assert!(back.contains("batches_refused=1"), "{back}");
    // Every line before that one has been read.
    assert_eq!(episode_logs(&serve.seen).len(), 1);

    // The refused batches, retried as the filter does, are stored now (they never were), and
    // a retry of a batch stored before the episode is a duplicate.
    for i in 3..6 {
        ok(
            &send(addr, Some(&format!("f:{i}")), &big(i)).unwrap(),
            false,
        );
    }
    ok(
        &send(addr, Some("f:0"), &otlp_json("disk", &["fd0"])).unwrap(),
        true,
    );

    // A restart finds nothing to repair, and every acknowledged record exactly once.
    assert_eq!(serve.terminate().code(), Some(0));
    let mut serve = Proc::spawn(&serve_args);
    let open = serve.wait_line("store open");
    assert!(
        open.contains("bytes_cut=0") && open.contains("batch_ids=7"),
        "{open}"
    );
    assert!(!data.join("quarantine").exists());
    assert_eq!(
        query_ids(&data),
        ["fd0", "fd1", "fd2", "fd6", "fd3", "fd4", "fd5"]
    );
    // Stopped once it serves: a SIGTERM before its handler is installed would kill it.
    serve.addr();
    assert_eq!(serve.terminate().code(), Some(0));
    // The refused writes were rolled back in the Merkle tree too: the chain is unbroken.
    let out = run(&["verify", "--json", "--data-dir", data.to_str().unwrap()]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["tree_size"], 7);
    eprintln!(
        "full disk: filler {filled} bytes on a 512 KiB tmpfs; 3 batches refused with 507 (one \
         ERROR line), segment unchanged at {len_before} bytes; clean stop and restart while \
         full; all 7 batches stored once after space returned"
    );
}

/// What the kill -9 test's clients share.
#[derive(Default)]
struct Stream {
    addr: Mutex<Option<SocketAddr>>,
    stop: AtomicBool,
    /// (client, batch number, answered as duplicate), in order of the 200s.
    acked: Mutex<Vec<(u64, u64, bool)>>,
}

const RECORDS_PER_BATCH: u64 = 3;

/// Batch `n` of client `c`, as the filter would send it: `<vm_id>:<first_seq>-<last_seq>`, and
/// one unique `meshlog.request_id` per record.
fn stream_batch(c: u64, n: u64) -> (String, Vec<u8>) {
    let first = n * RECORDS_PER_BATCH + 1;
    let id = format!(
        "{:016x}:{first}-{}",
        0xfeed_0000u64 + c,
        first + RECORDS_PER_BATCH - 1
    );
    let recs: Vec<String> = (0..RECORDS_PER_BATCH)
        .map(|k| format!("c{c}-b{n}-r{k}"))
        .collect();
    let refs: Vec<&str> = recs.iter().map(String::as_str).collect();
    (id, otlp_json(&format!("client-{c}"), &refs))
}

#[derive(Debug, Default)]
struct ClientStats {
    batches: u64,
    failed_attempts: u64,
    refused: Vec<u16>,
}

/// Sends batches one after another, each retried (same id, same body) until a 200, like the
/// filter; stops only between batches, so every batch started is acknowledged in the end.
fn stream_client(c: u64, s: Arc<Stream>) -> ClientStats {
    let mut stats = ClientStats::default();
    let mut n = 0;
    while !s.stop.load(Ordering::Acquire) {
        let (id, body) = stream_batch(c, n);
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            let addr = *s.addr.lock().unwrap();
            let reply = match addr {
                Some(a) => send(a, Some(&id), &body),
                None => Err(std::io::Error::other("collector down")),
            };
            match reply {
                Ok(r) if r.status == 200 => {
                    let dup = r.header(DUPLICATE_HEADER) == Some("true");
                    s.acked.lock().unwrap().push((c, n, dup));
                    break;
                }
                Ok(r) => stats.refused.push(r.status),
                Err(_) => stats.failed_attempts += 1,
            }
            assert!(
                Instant::now() < give_up,
                "client {c}: batch {n} never acknowledged"
            );
            std::thread::sleep(Duration::from_millis(5 + 3 * c));
        }
        n += 1;
    }
    stats.batches = n;
    stats
}

#[test]
fn kill_9_loses_no_acknowledged_batch_and_stores_none_twice() {
    const CYCLES: usize = 5;
    const CLIENTS: u64 = 4;
    const PER_CYCLE: usize = 100;
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap().to_owned();
    let s = Arc::new(Stream::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let s = s.clone();
            std::thread::spawn(move || stream_client(c, s))
        })
        .collect();
    let started = Instant::now();
    let acked_len = || s.acked.lock().unwrap().len();
    let mut rechecked = 0;
    let mut serve;
    let mut cycle = 0;
    loop {
        serve = Proc::spawn(&["serve", "--data-dir", &dir, "--listen", "127.0.0.1:0"]);
        let addr = serve.addr();
        // The last batch acknowledged before the kill is known after it: the index came back
        // from the frame headers.
        let last = s.acked.lock().unwrap().last().copied();
        if let Some((c, n, _)) = last {
            let (id, body) = stream_batch(c, n);
            let r = send(addr, Some(&id), &body).unwrap();
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            assert_eq!(
                r.header(DUPLICATE_HEADER),
                Some("true"),
                "{id} after restart"
            );
            rechecked += 1;
        }
        *s.addr.lock().unwrap() = Some(addr);
        if cycle == CYCLES {
            break;
        }
        let target = acked_len() + PER_CYCLE;
        let end = Instant::now() + Duration::from_secs(30);
        while acked_len() < target {
            assert!(Instant::now() < end, "cycle {cycle}: clients stalled");
            std::thread::sleep(Duration::from_millis(2));
        }
        // Requests are in flight at any moment; vary the moment a little anyway.
        std::thread::sleep(Duration::from_millis(3 * cycle as u64));
        let st = serve.kill9();
        assert_eq!(st.signal(), Some(9), "{st}");
        *s.addr.lock().unwrap() = None;
        cycle += 1;
    }
    // The last collector stays up; each client finishes the batch in hand, then stops.
    let target = acked_len() + PER_CYCLE;
    let end = Instant::now() + Duration::from_secs(30);
    while acked_len() < target {
        assert!(
            Instant::now() < end,
            "clients stalled after the last restart"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    s.stop.store(true, Ordering::Release);
    let stats: Vec<ClientStats> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(serve.terminate().code(), Some(0));

    let acked = s.acked.lock().unwrap().clone();
    let acked_batches: BTreeSet<(u64, u64)> = acked.iter().map(|(c, n, _)| (*c, *n)).collect();
    assert_eq!(
        acked_batches.len(),
        acked.len(),
        "a batch acknowledged twice"
    );
    let sent: u64 = stats.iter().map(|s| s.batches).sum();
    assert_eq!(
        sent as usize,
        acked.len(),
        "every batch sent was acknowledged"
    );
    for st in &stats {
        assert!(
            st.refused.iter().all(|code| *code >= 500),
            "a client error: {:?}",
            st.refused
        );
    }

    let lines = query_lines(data.path());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for l in &lines {
        *seen
            .entry(l["meshlog.request_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    for (c, n) in &acked_batches {
        for k in 0..RECORDS_PER_BATCH {
            let rid = format!("c{c}-b{n}-r{k}");
            assert_eq!(
                seen.get(&rid),
                Some(&1),
                "{rid} acknowledged, not stored once"
            );
        }
    }
    assert_eq!(
        lines.len() as u64,
        acked.len() as u64 * RECORDS_PER_BATCH,
        "only acknowledged batches are stored"
    );
    // Five crashes, torn tails cut, restarts that resumed the tree: the chain is unbroken.
    let out = run(&["verify", "--json", "--data-dir", &dir]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["tree_size"], acked_batches.len());
    let duplicates = acked.iter().filter(|a| a.2).count();
    let failed: u64 = stats.iter().map(|s| s.failed_attempts).sum();
    let refused: usize = stats.iter().map(|s| s.refused.len()).sum();
    let cut = std::fs::read_dir(data.path().join("quarantine")).map_or(0, |d| d.count());
    assert_eq!(rechecked, CYCLES);
    eprintln!(
        "kill -9: {CYCLES} kills in {:?}; {CLIENTS} clients, {} batches acknowledged ({} records, \
         each stored once); {failed} attempts failed on a dead collector and were retried; \
         {duplicates} retries answered as duplicates (stored before the kill, answer lost); \
         {refused} refused with 5xx; {cut} torn tails cut; {rechecked} post-restart duplicate \
         checks",
        started.elapsed(),
        acked.len(),
        lines.len()
    );
}
