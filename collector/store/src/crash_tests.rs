//! Power-loss tests: the writer and recovery on the simulated file system ([`crate::sim`]).
//!
//! `crashes_at_random_points_lose_no_acknowledged_batch` runs `MESHLOG_CRASH_RUNS` (default
//! 2,000) seeded runs; run `i` uses seed `MESHLOG_CRASH_SEED + i` (default base below), and a
//! failure names its seed: `MESHLOG_CRASH_SEED=<seed> MESHLOG_CRASH_RUNS=1` replays it.

use crate::fs::{FileSystem, StdFs};
use crate::queue::IngestQueue;
use crate::sim::{Op, Rng, SimFs};
use crate::writer::{Msg, WriteError, WriteErrorKind};
use crate::{Appended, Store, StoreError, StoreOptions, prepare_writer};
use meshlog_format::batch_id::BatchId;
use meshlog_format::frame::{EncodedFrame, encode_frame_with_id};
use meshlog_format::reader::{SEGMENTS_DIR, frames, segment_file_name};
use meshlog_tlog::keys::SignerKey;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

const DEFAULT_BASE_SEED: u64 = 0x6d65_7368_6c6f_6701;
const DEFAULT_RUNS: u64 = 2_000;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

fn signer() -> Arc<SignerKey> {
    Arc::new(SignerKey::from_seed("crash-test", &[7; 32]).unwrap())
}

fn opts(signer: &Arc<SignerKey>) -> StoreOptions {
    let mut o = StoreOptions {
        segment_max_bytes: 1200,
        dedup_window: 100_000,
        ..StoreOptions::default()
    };
    o.integrity.signer = Some(signer.clone());
    o.integrity.checkpoint_interval = std::time::Duration::from_secs(3600);
    o
}

/// Batch `id`: always the same bytes for the same id (a retry resends the same batch).
fn batch(id: u64) -> EncodedFrame {
    thread_local! {
        static MADE: std::cell::RefCell<BTreeMap<u64, EncodedFrame>> = Default::default();
    }
    MADE.with(|m| {
        m.borrow_mut()
            .entry(id)
            .or_insert_with(|| make_batch(id))
            .clone()
    })
}

fn make_batch(id: u64) -> EncodedFrame {
    let mut rng = Rng::new(id ^ 0xb47c);
    let recs: Vec<Map<String, Value>> = (0..1 + rng.below(3))
        .map(|r| {
            let pad: String = (0..20 + rng.below(150))
                .map(|_| char::from(b'a' + rng.below(26) as u8))
                .collect();
            let Value::Object(m) = json!({ "batch": id, "r": r, "pad": pad }) else {
                unreachable!()
            };
            m
        })
        .collect();
    let bid = BatchId::parse(format!("b{id}").as_bytes()).unwrap();
    encode_frame_with_id(&recs, Some(bid)).unwrap()
}

/// Batch ids of the frames on disk, with how often each occurs.
fn stored_ids(root: &Path) -> BTreeMap<u64, usize> {
    let mut out = BTreeMap::new();
    for f in frames(root).unwrap() {
        let f = f.unwrap();
        let id = f.batch_id.expect("every test frame has a batch id");
        let n: u64 = id.to_string().trim_start_matches('b').parse().unwrap();
        *out.entry(n).or_default() += 1;
    }
    out
}

/// `meshlog verify` (with the checkpoint key when there is one): no findings.
fn assert_verifies(root: &Path, key: Option<&SignerKey>, what: &str) {
    let keys: Vec<_> = key.map(SignerKey::verifier).into_iter().collect();
    let report = meshlog_audit::verify::verify(root, &keys, &mut |_, _| {}).unwrap();
    assert!(
        report.intact && report.findings.is_empty(),
        "{what}: the store does not verify: {:#?}",
        report.findings
    );
}

fn is_ack(r: &Result<Appended, WriteError>) -> bool {
    matches!(r, Ok(Appended::Stored(_) | Appended::Duplicate))
}

/// One life of the collector on `fs`: opens the store (recovery) and runs the writer on this
/// thread over `msgs` already queued (so groups are the same on every replay: a group ends at
/// a rotation, requested or for size). Returns the batch ids acknowledged; `Err` when opening
/// failed.
fn life<F: FileSystem>(
    fs: F,
    root: &Path,
    opts: &StoreOptions,
    steps: &[Step],
) -> Result<BTreeSet<u64>, StoreError> {
    let (w, _dedup, _stats) = prepare_writer(fs, root, opts)?;
    let queue = IngestQueue::new(1 << 30);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut acks = Vec::new();
    for s in steps {
        match s {
            Step::Write(id) => {
                let frame = batch(*id);
                let (ack, rx) = oneshot::channel();
                let reservation = queue.reserve(frame.bytes().len() as u64).unwrap();
                tx.send(Msg::Write {
                    frame,
                    ack,
                    reservation,
                })
                .unwrap();
                acks.push((*id, rx));
            }
            Step::Rotate => {
                let (ack, _rx) = oneshot::channel();
                tx.send(Msg::Rotate(ack)).unwrap();
            }
            Step::Checkpoint => tx.send(Msg::Checkpoint).unwrap(),
        }
    }
    tx.send(Msg::Close).unwrap();
    w.run(rx);
    Ok(acks
        .into_iter()
        .filter_map(|(id, mut rx)| rx.try_recv().ok().filter(is_ack).map(|_| id))
        .collect())
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Write(u64),
    Rotate,
    Checkpoint,
}

/// A workload: new batches, retries of earlier ones, rotations, checkpoints.
fn workload(rng: &mut Rng, next_id: &mut u64, n: u64) -> Vec<Step> {
    (0..n)
        .map(|_| match rng.below(16) {
            0 | 1 => Step::Rotate,
            2 => Step::Checkpoint,
            3 | 4 if *next_id > 0 => Step::Write(rng.below(*next_id)),
            _ => {
                *next_id += 1;
                Step::Write(*next_id - 1)
            }
        })
        .collect()
}

#[derive(Debug, Default)]
struct Stats {
    crashed_mid_run: u64,
    acked: u64,
    torn: u64,
    failed_opens: u64,
    signed: u64,
    faults: u64,
}

/// A temporary directory, on tmpfs when there is one: the simulated disk needs no real fsync,
/// and the Merkle log's own files (outside the simulation) are fsync'd for real.
fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

fn run_one(seed: u64, stats: &mut Stats) {
    let mut rng = Rng::new(seed);
    let d = tempdir();
    let root = d.path().join("data");
    std::fs::create_dir_all(&root).unwrap();
    // Signing (Ed25519, slow in debug builds) in one run of 25; the hash chain and the tree
    // are checked in every run.
    let key = signer();
    let mut opts = opts(&key);
    let signed = rng.below(25) == 0;
    if signed {
        stats.signed += 1;
    } else {
        opts.integrity.signer = None;
    }
    let mut next_id = 0u64;
    let mut acked = BTreeSet::new();

    // Sometimes a clean earlier life, on the real file system.
    if rng.below(3) == 0 {
        let n = 1 + rng.below(8);
        let steps = workload(&mut rng, &mut next_id, n);
        acked.extend(life(StdFs, &root, &opts, &steps).unwrap());
    }

    // One or two lives that end in power loss at a random operation.
    for _ in 0..1 + rng.below(2) {
        let sim = SimFs::new(&root).unwrap();
        let n = 4 + rng.below(40);
        let steps = workload(&mut rng, &mut next_id, n);
        let span = 3 * n + 12;
        sim.crash_at(1 + rng.below(span));
        // In one life of three, an I/O error or a full disk before the crash, maybe in a
        // sync (the rollback), maybe in the rollback itself (the writer stops writing).
        let mut faults = 0;
        if rng.below(3) == 0 {
            faults = 1 + rng.below(2);
            for _ in 0..faults {
                let kind = match rng.below(2) {
                    0 => io::ErrorKind::Other,
                    _ => io::ErrorKind::StorageFull,
                };
                sim.fail_at(1 + rng.below(span), kind);
            }
            stats.faults += faults;
        }
        match life(sim.clone(), &root, &opts, &steps) {
            Ok(ids) => acked.extend(ids),
            Err(e) => {
                assert!(
                    sim.crashed() || faults > 0,
                    "opening failed without a crash or a fault: {e}"
                );
                stats.failed_opens += 1;
            }
        }
        if sim.crashed() {
            stats.crashed_mid_run += 1;
        }
        stats.torn += sim.power_loss(rng.next_u64()).unwrap() as u64;
    }
    stats.acked += acked.len() as u64;

    // Reboot: the store must open, and hold every acknowledged batch exactly once.
    let sim = SimFs::new(&root).unwrap();
    let store = Store::open_in(sim, &root, opts.clone())
        .unwrap_or_else(|e| panic!("recovery refused to start after power loss: {e}"));
    let on_disk = stored_ids(&root);
    for id in &acked {
        assert_eq!(
            on_disk.get(id),
            Some(&1),
            "acknowledged batch b{id} is not stored exactly once after power loss (on disk: \
             {on_disk:?})"
        );
    }
    if let Some((id, n)) = on_disk.iter().find(|(_, n)| **n > 1) {
        panic!("batch b{id} is stored {n} times");
    }
    // Every batch retried: the acknowledged ones are known duplicates, the rest get stored.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let h = store.handle();
    for id in 0..next_id + 1 {
        match rt.block_on(h.append(batch(id))) {
            Ok(Appended::Stored(_)) => assert!(
                !acked.contains(&id),
                "acknowledged batch b{id} was stored again after the restart"
            ),
            Ok(Appended::Duplicate) => {}
            Err(e) => panic!("appending b{id} after the restart: {e}"),
        }
    }
    store.close().unwrap();
    let on_disk = stored_ids(&root);
    assert_eq!(
        on_disk,
        (0..next_id + 1).map(|id| (id, 1)).collect(),
        "after retrying every batch, each must be stored exactly once"
    );
    assert_verifies(
        &root,
        signed.then_some(&*key),
        "after power loss and restart",
    );
}

#[test]
fn crashes_at_random_points_lose_no_acknowledged_batch() {
    let base = env_u64("MESHLOG_CRASH_SEED").unwrap_or(DEFAULT_BASE_SEED);
    let runs = env_u64("MESHLOG_CRASH_RUNS").unwrap_or(DEFAULT_RUNS);
    println!(
        "power-loss test: {runs} runs, seeds {base:#x} + 0..{runs} \
         (MESHLOG_CRASH_SEED / MESHLOG_CRASH_RUNS to change)"
    );
    let mut stats = Stats::default();
    for i in 0..runs {
        let seed = base.wrapping_add(i);
        let r =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_one(seed, &mut stats)));
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!(
                "run {i} failed: {msg}\nreplay with MESHLOG_CRASH_SEED={seed:#x} \
                 MESHLOG_CRASH_RUNS=1"
            );
        }
    }
    println!("power-loss test: {runs} runs done: {stats:?}");
    assert!(
        runs < 50 || stats.crashed_mid_run > runs / 2,
        "most runs should crash mid-run: {stats:?}"
    );
}

/// A store on a simulated disk with batch 1 stored.
fn one_batch_stored() -> (tempfile::TempDir, SimFs, Store, Arc<SignerKey>) {
    let d = tempdir();
    let root = d.path().join("data");
    std::fs::create_dir_all(&root).unwrap();
    let key = signer();
    let sim = SimFs::new(&root).unwrap();
    let store = Store::open_in(sim.clone(), &root, opts(&key)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert!(matches!(
        rt.block_on(store.handle().append(batch(1))),
        Ok(Appended::Stored(_))
    ));
    (d, sim, store, key)
}

fn append(store: &Store, id: u64) -> Result<Appended, StoreError> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(store.handle().append(batch(id)))
}

/// Power loss (several ways of tearing), restart on the real file system: the store opens,
/// verifies, and holds `want` (and maybe `maybe`, never acknowledged) once each.
fn after_power_loss(d: &Path, sim: &SimFs, key: &SignerKey, want: &[u64], maybe: &[u64]) {
    let root = d.join("data");
    let image = d.join("image");
    for tear in 0..8 {
        sim.power_loss(tear).unwrap();
        let _ = std::fs::remove_dir_all(&image);
        copy_dir(&root, &image);
        let store = Store::open(&image, opts(&signer())).unwrap();
        store.close().unwrap();
        let ids = stored_ids(&image);
        for id in want {
            assert_eq!(ids.get(id), Some(&1), "b{id} after tear {tear}: {ids:?}");
        }
        for (id, n) in &ids {
            assert!(
                want.contains(id) || (maybe.contains(id) && *n == 1),
                "b{id} stored {n} times after tear {tear}"
            );
        }
        assert_verifies(&image, Some(key), "after a fault and power loss");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn segment(d: &Path, seq: u64) -> std::path::PathBuf {
    d.join("data")
        .join(SEGMENTS_DIR)
        .join(segment_file_name(seq))
}

#[test]
fn a_failed_fsync_is_rolled_back_and_not_acknowledged() {
    let (d, sim, store, key) = one_batch_stored();
    let seg = segment(d.path(), 1);
    let synced = sim.durable_len(&seg).unwrap();
    sim.fail_next(Op::Sync, io::ErrorKind::Other);
    match append(&store, 2) {
        Err(StoreError::Write(e)) => {
            assert_eq!(e.kind, WriteErrorKind::Other);
            assert!(e.message.starts_with("fsync"), "{e}");
        }
        other => panic!("a failed fsync must not be acknowledged: {other:?}"),
    }
    // The writer answers, then cuts: the next append comes after the rollback.
    assert!(matches!(append(&store, 3), Ok(Appended::Stored(_))));
    let ids: Vec<u64> = stored_ids(&d.path().join("data")).into_keys().collect();
    assert_eq!(ids, [1, 3], "batch 2 was not cut");
    assert!(
        sim.durable_len(&seg).unwrap() > synced,
        "batch 3 is durable after batch 1"
    );
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len() as usize,
        sim.durable_len(&seg).unwrap(),
        "everything written is synced"
    );
    store.close().unwrap();
    after_power_loss(d.path(), &sim, &key, &[1, 3], &[]);
}

#[test]
fn a_failed_rollback_poisons_the_writer() {
    // The cut fails, or the fsync after the cut does: either way the writer stops writing.
    for second in [Op::SetLen, Op::Sync] {
        let (d, sim, store, key) = one_batch_stored();
        sim.fail_next(Op::Sync, io::ErrorKind::Other);
        sim.fail_next(second, io::ErrorKind::Other);
        assert!(append(&store, 2).is_err(), "{second:?}");
        for id in [3, 4] {
            match append(&store, id) {
                Err(StoreError::Write(e)) => {
                    assert!(
                        e.message.starts_with("store is unusable"),
                        "{second:?}: {e}"
                    )
                }
                other => panic!("{second:?}: a poisoned writer wrote b{id}: {other:?}"),
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(store.handle().rotate()).is_err(), "{second:?}");
        let writes = sim.count(Op::Write);
        store.close().unwrap();
        assert_eq!(
            sim.count(Op::Write),
            writes,
            "nothing written after poisoning"
        );
        // Batch 2 was never acknowledged, but its bytes may have reached the disk.
        after_power_loss(d.path(), &sim, &key, &[1], &[2]);
    }
}

#[test]
fn a_rollback_refused_for_lack_of_space_is_finished_before_the_next_write() {
    let (d, sim, store, key) = one_batch_stored();
    sim.fail_next(Op::Sync, io::ErrorKind::Other);
    sim.fail_next(Op::SetLen, io::ErrorKind::StorageFull);
    assert!(append(&store, 2).is_err());
    assert!(matches!(append(&store, 3), Ok(Appended::Stored(_))));
    let ids: Vec<u64> = stored_ids(&d.path().join("data")).into_keys().collect();
    assert_eq!(ids, [1, 3]);
    store.close().unwrap();
    after_power_loss(d.path(), &sim, &key, &[1, 3], &[]);
}

#[test]
fn the_simulator_loses_what_was_not_synced() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let sim = SimFs::new(root).unwrap();
    let (a, b) = (root.join("a"), root.join("b"));
    let mut fa = sim.create(&a).unwrap();
    io::Write::write_all(&mut fa, b"synced").unwrap();
    crate::fs::FsFile::sync_data(&fa).unwrap();
    sim.sync_dir(root).unwrap();
    io::Write::write_all(&mut fa, b" and not").unwrap();
    let mut fb = sim.create(&b).unwrap();
    io::Write::write_all(&mut fb, b"never in the directory").unwrap();
    crate::fs::FsFile::sync_data(&fb).unwrap();
    let (mut kept_b, mut lost_b, mut tails) = (0, 0, BTreeSet::new());
    for seed in 0..64 {
        sim.power_loss(seed).unwrap();
        let got = std::fs::read(&a).unwrap();
        assert!(got.starts_with(b"synced") && b"synced and not".starts_with(&got[..]));
        tails.insert(got.len());
        if b.exists() {
            kept_b += 1;
        } else {
            lost_b += 1;
        }
    }
    assert!(kept_b > 0 && lost_b > 0, "{kept_b} {lost_b}");
    assert!(tails.len() > 2, "{tails:?}");
    assert!(
        sim.create(&root.join("c")).is_err(),
        "dead after power loss"
    );
}
