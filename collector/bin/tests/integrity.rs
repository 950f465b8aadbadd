//! Tamper evidence end to end: a store written with a signing key, then damaged every way the
//! issue lists (and a few more), checked by the real `meshlog verify`, which must exit 1 and
//! name the place, with exactly the findings each damage explains; the untouched store exits
//! 0. Checkpoints at start, periodically without traffic and at shutdown from the real
//! `serve`; `prove` / `verify-proof` round trips, and tampered proofs refused.

use super::*;
use meshlog_audit::scan::{self, Item};
use meshlog_format::batch_id::BatchId;
use meshlog_format::checkpoint_log::{self, CHECKPOINT_LOG_FILE, encode_entry};
use meshlog_format::frame::{
    CHAIN_VALUE_LEN, EXT_CHAIN, FRAME_HEADER_PREFIX_LEN, FRAME_V2_FIXED_LEN, encode_frame,
    encode_frame_with_id, find_entry, frame_header_len,
};
use meshlog_store::StoreError;
use meshlog_store::ledger::IntegrityOptions;
use meshlog_tlog::checkpoint::Checkpoint;
use meshlog_tlog::keys::{SignerKey, VerifierKey, write_verifier_key};
use meshlog_tlog::merkle::leaf_hash;
use std::sync::Arc;

const ORIGIN: &str = "example.com/meshlog";
const VM: &str = "a1b2c3d4e5f60718";

// ---------------------------------------------------------------------------------------------
// Helpers

/// A frame of the store, located.
#[derive(Debug, Clone)]
struct At {
    path: PathBuf,
    name: String,
    offset: usize,
    len: usize,
}

/// Every frame of the store in `data`, in store order (leaf order for an intact store).
fn layout(data: &Path) -> Vec<At> {
    let mut out = Vec::new();
    for (i, seg) in scan::segments(data).unwrap().iter().enumerate() {
        let bytes = scan::read_segment(seg).unwrap();
        for item in scan::parse_segment(&bytes, i, &mut |_| {}) {
            let Item::Frame(f) = item else {
                panic!("{}: not intact: {item:?}", seg.name)
            };
            out.push(At {
                path: seg.path.clone(),
                name: seg.name.clone(),
                offset: f.offset as usize,
                len: f.len as usize,
            });
        }
    }
    out
}

fn header_len(b: &[u8], at: usize) -> usize {
    frame_header_len(&b[at..at + FRAME_HEADER_PREFIX_LEN].try_into().unwrap()).unwrap()
}

/// Recomputes the payload CRC and the header CRC of the frame at `at` (what an attacker who
/// knows the format does after an edit).
pub(super) fn fix_crcs(b: &mut [u8], at: usize) {
    let hlen = header_len(b, at);
    let plen = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
    let pcrc = crc32fast::hash(&b[at + hlen..at + hlen + plen]);
    b[at + 16..at + 20].copy_from_slice(&pcrc.to_le_bytes());
    let hcrc = crc32fast::hash(&b[at..at + hlen - 4]);
    b[at + hlen - 4..at + hlen].copy_from_slice(&hcrc.to_le_bytes());
}

/// Rewrites the chain entry of the frame at `at` to name `prev` as its previous leaf.
pub(super) fn set_prev(b: &mut [u8], at: usize, prev: [u8; 32]) {
    let hlen = header_len(b, at);
    let area = at + FRAME_V2_FIXED_LEN - 4..at + hlen - 4;
    let r = find_entry(&b[area.clone()], EXT_CHAIN).unwrap();
    assert_eq!(r.len(), CHAIN_VALUE_LEN);
    let v = area.start + r.start;
    b[v + 8..v + 40].copy_from_slice(&prev);
    fix_crcs(b, at);
}

pub(super) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A record as the filter sends it: VM id, sequence, request id.
fn vm_record(seq: u64) -> Map<String, Value> {
    let Value::Object(m) = json!({
        "resource.meshlog.vm.id": VM,
        "meshlog.sequence": seq,
        "meshlog.request_id": format!("req-{seq}"),
        "url.path": "/items/{id}",
    }) else {
        unreachable!()
    };
    m
}

/// Frame `i`: records 2i and 2i+1, batch id `<vm>:<2i>-<2i+1>`, as ingest builds it.
fn vm_frame(i: u64) -> meshlog_format::frame::EncodedFrame {
    let recs = [vm_record(2 * i), vm_record(2 * i + 1)];
    let id = BatchId::parse(format!("{VM}:{}-{}", 2 * i, 2 * i + 1).as_bytes()).unwrap();
    encode_frame_with_id(&recs, Some(id)).unwrap()
}

/// A signed store: 12 frames (leaves 0..11), 3 per segment (segments 1..4), written in two
/// runs of the store, so checkpoints #1 (0 leaves, start), #2 (6, shutdown), #3 (6, start) and
/// #4 (12, shutdown). Returns the temp dir (data in `data/`, the key in `keys/`).
fn signed_store() -> (tempfile::TempDir, PathBuf, PathBuf, Arc<SignerKey>) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let signer = Arc::new(SignerKey::generate(ORIGIN).unwrap());
    let public = keys.join("verifier.pub");
    write_verifier_key(&public, &signer.verifier()).unwrap();
    // Room for three frames (they differ in size by a byte or two), not four.
    let one = vm_frame(0).bytes().len() as u64;
    let opts = StoreOptions {
        segment_max_bytes: 8 + 3 * one + one / 2,
        integrity: IntegrityOptions {
            signer: Some(signer.clone()),
            checkpoint_interval: Duration::from_secs(3600),
        },
        ..StoreOptions::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for run in 0..2 {
        let store = open_retrying(&data, &opts);
        let h = store.handle();
        for i in run * 6..run * 6 + 6 {
            rt.block_on(h.append(vm_frame(i))).unwrap();
        }
        store.close().unwrap();
    }
    let frames = layout(&data);
    assert_eq!(frames.len(), 12);
    let per_segment: Vec<&str> = frames.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        per_segment,
        [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4].map(|s| match s {
            1 => "0000000000000001.seg",
            2 => "0000000000000002.seg",
            3 => "0000000000000003.seg",
            _ => "0000000000000004.seg",
        })
    );
    (tmp, data, public, signer)
}

/// `Store::open`, waiting out a lock a `meshlog` child of another test holds for a moment.
fn open_retrying(data: &Path, opts: &StoreOptions) -> Store {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        match Store::open(data, opts.clone()) {
            Err(StoreError::Locked { .. }) if Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(10))
            }
            other => return other.unwrap(),
        }
    }
}

/// Runs `meshlog verify --json` with the key; returns the exit code and the report.
pub(super) fn verify_json(data: &Path, key: &Path) -> (i32, Value) {
    let out = run(&[
        "verify",
        "--json",
        "--data-dir",
        data.to_str().unwrap(),
        "--public-key",
        key.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

pub(super) fn kinds(report: &Value) -> Vec<String> {
    let mut k: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect();
    k.sort();
    k
}

/// The one finding of `kind` (panics unless exactly one).
pub(super) fn the<'a>(report: &'a Value, kind: &str) -> &'a Value {
    let all: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect();
    assert_eq!(all.len(), 1, "one {kind} finding expected: {report:#}");
    all[0]
}

// ---------------------------------------------------------------------------------------------
// The tamper matrix

/// One damage: what to do to a copy of the store, the kinds of findings it must produce (all
/// of them, in any order), and a check of the finding that names the place.
struct Case {
    name: &'static str,
    damage: fn(&Path, &[At], &Path),
    kinds: &'static [&'static str],
    place: fn(&Value, &[At]),
}

fn flip(path: &Path, at: usize, mask: u8) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= mask;
    std::fs::write(path, b).unwrap();
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(path).unwrap();
    f(&mut b);
    std::fs::write(path, b).unwrap();
}

/// A frame finding's place: kind, segment, offset, leaf.
fn frame_place(report: &Value, kind: &str, at: &At, leaf: u64) {
    let f = the(report, kind);
    assert_eq!(f["file"], at.name.as_str(), "{f:#}");
    assert_eq!(f["offset"], at.offset, "{f:#}");
    assert_eq!(f["leaf"], leaf, "{f:#}");
    assert_eq!(f["records"], 2, "{f:#}");
}

fn checkpoint_place(report: &Value, kind: &str, number: u64) -> Value {
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == kind && f["checkpoint"] == number)
        .unwrap_or_else(|| panic!("no {kind} for checkpoint #{number}: {report:#}"))
        .clone();
    assert_eq!(f["file"], CHECKPOINT_LOG_FILE);
    assert!(f["offset"].is_u64());
    f
}

const MISMATCH: &str = "checkpoint_root_mismatch";

/// The one checkpoint root mismatch, grouped under the finding of `cause`: `count` checkpoints,
/// numbers `first..=last`.
fn grouped_under(report: &Value, cause: &str, count: u64, [first, last]: [u64; 2]) {
    let g = the(report, MISMATCH);
    assert_eq!(g["count"], count, "{g:#}");
    assert_eq!(g["checkpoints"], json!([first, last]), "{g:#}");
    assert_eq!(g["checkpoint"], first, "{g:#}");
    assert_eq!(g["cause"]["kind"], cause, "{g:#}");
    let at = g["cause"]["finding"].as_u64().unwrap() as usize;
    assert_eq!(
        report["findings"][at]["kind"], cause,
        "the cause is that finding"
    );
    assert_eq!(report["findings"][at + 1], *g, "and the group follows it");
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "bit flip in a payload",
            damage: |_, fr, _| flip(&fr[4].path, fr[4].offset + fr[4].len - 3, 0x10),
            kinds: &["modified", MISMATCH],
            place: |r, fr| {
                grouped_under(r, "modified", 3, [2, 4]);
                frame_place(r, "modified", &fr[4], 4);
                let f = the(r, "modified");
                assert_eq!(f["batch_id"], format!("{VM}:8-9"));
                assert!(
                    f["message"]
                        .as_str()
                        .unwrap()
                        .contains("payload CRC mismatch")
                );
            },
        },
        Case {
            name: "bit flip in a header",
            // The record count of leaf 7, in the middle of segment 3.
            damage: |_, fr, _| flip(&fr[7].path, fr[7].offset + 13, 0x01),
            kinds: &["damaged", MISMATCH],
            place: |r, fr| {
                grouped_under(r, "damaged", 1, [4, 4]);
                let f = the(r, "damaged");
                assert_eq!(f["file"], fr[7].name.as_str());
                assert_eq!(f["offset"], fr[7].offset);
                assert_eq!(f["end"], fr[7].offset + fr[7].len);
                assert_eq!(f["leaves"], json!([7, 7]));
                assert!(f["message"].as_str().unwrap().contains("header CRC"), "{f}");
            },
        },
        Case {
            name: "payload changed with both CRCs recomputed",
            damage: |_, fr, _| {
                edit(&fr[1].path, |b| {
                    b[fr[1].offset + fr[1].len - 3] ^= 0x10;
                    fix_crcs(b, fr[1].offset);
                })
            },
            kinds: &["modified", MISMATCH],
            place: |r, fr| {
                grouped_under(r, "modified", 3, [2, 4]);
                frame_place(r, "modified", &fr[1], 1);
                let m = the(r, "modified")["message"].as_str().unwrap().to_owned();
                assert!(m.contains("no longer hashes to what leaf 2"), "{m}");
            },
        },
        Case {
            name: "a frame removed",
            damage: |_, fr, _| {
                edit(&fr[4].path, |b| {
                    b.drain(fr[4].offset..fr[4].offset + fr[4].len);
                })
            },
            kinds: &["removed", MISMATCH],
            place: |r, fr| {
                grouped_under(r, "removed", 3, [2, 4]);
                let f = the(r, "removed");
                assert_eq!(f["leaves"], json!([4, 4]));
                assert_eq!(f["file"], fr[5].name.as_str());
                // Leaf 5 now starts where leaf 4 did.
                assert_eq!(f["offset"], fr[4].offset);
            },
        },
        Case {
            name: "a frame duplicated",
            damage: |_, fr, _| {
                edit(&fr[2].path, |b| {
                    let copy = b[fr[2].offset..fr[2].offset + fr[2].len].to_vec();
                    let end = fr[2].offset + fr[2].len;
                    b.splice(end..end, copy);
                })
            },
            kinds: &["duplicated", MISMATCH],
            place: |r, fr| {
                grouped_under(r, "duplicated", 3, [2, 4]);
                let f = the(r, "duplicated");
                assert_eq!(f["file"], fr[2].name.as_str());
                assert_eq!(f["offset"], fr[2].offset + fr[2].len, "the second copy");
                assert_eq!(f["leaf"], 2);
                let ids = f["record_ids"].as_str().unwrap();
                assert_eq!(ids, format!("vm {VM} sequence 4-5"));
            },
        },
        Case {
            name: "two frames swapped",
            damage: |_, fr, _| {
                edit(&fr[6].path, |b| {
                    let (a, c) = (fr[6].offset, fr[7].offset + fr[7].len);
                    let six = b[a..fr[7].offset].to_vec();
                    let seven = b[fr[7].offset..c].to_vec();
                    b.splice(a..c, seven.into_iter().chain(six));
                })
            },
            kinds: &["reordered", MISMATCH],
            place: |r, fr| {
                grouped_under(r, "reordered", 1, [4, 4]);
                let f = the(r, "reordered");
                assert_eq!(f["leaf"], 6);
                assert_eq!(f["file"], fr[6].name.as_str());
                assert_eq!(f["offset"], fr[6].offset + fr[7].len);
                assert!(
                    f["message"]
                        .as_str()
                        .unwrap()
                        .contains("stored after leaf 7")
                );
            },
        },
        Case {
            name: "a segment truncated inside a frame",
            damage: |_, fr, _| {
                edit(&fr[5].path, |b| b.truncate(fr[5].offset + 30));
            },
            kinds: &["truncated", MISMATCH],
            place: |r, fr| {
                grouped_under(r, "truncated", 3, [2, 4]);
                let f = the(r, "truncated");
                assert_eq!(f["file"], fr[5].name.as_str());
                assert_eq!(f["offset"], fr[5].offset);
                assert_eq!(f["leaves"], json!([5, 5]));
            },
        },
        Case {
            name: "the newest segment truncated at a frame boundary",
            damage: |_, fr, _| {
                edit(&fr[11].path, |b| b.truncate(fr[11].offset));
            },
            kinds: &["truncated"],
            place: |r, _| {
                let f = checkpoint_place(r, "truncated", 4);
                assert_eq!(f["leaves"], json!([11, 11]));
            },
        },
        Case {
            name: "a segment removed",
            damage: |_, fr, _| std::fs::remove_file(&fr[6].path).unwrap(),
            kinds: &[MISMATCH, "segment_missing"],
            place: |r, _| {
                grouped_under(r, "segment_missing", 1, [4, 4]);
                let f = the(r, "segment_missing");
                assert_eq!(f["file"], "0000000000000003.seg");
                assert_eq!(f["leaves"], json!([6, 8]));
            },
        },
        Case {
            name: "the newest segment removed",
            damage: |_, fr, _| std::fs::remove_file(&fr[11].path).unwrap(),
            kinds: &["truncated"],
            place: |r, _| {
                let f = checkpoint_place(r, "truncated", 4);
                assert_eq!(f["leaves"], json!([9, 11]));
            },
        },
        Case {
            name: "a frame inserted",
            damage: |_, fr, _| {
                let forged = encode_frame([&vm_record(999)]).unwrap();
                edit(&fr[5].path, |b| {
                    b.splice(fr[5].offset..fr[5].offset, forged.bytes().iter().copied());
                })
            },
            kinds: &["inserted", MISMATCH],
            place: |r, fr| {
                grouped_under(r, "inserted", 3, [2, 4]);
                let f = the(r, "inserted");
                assert_eq!(f["file"], fr[5].name.as_str());
                assert_eq!(f["offset"], fr[5].offset);
                assert_eq!(f["records"], 1);
                assert_eq!(f["record_ids"], format!("vm {VM} sequence 999-999"));
            },
        },
        Case {
            name: "the tail rewritten with a consistent chain",
            // Leaf 9 changed, and leaves 10 and 11 re-chained to it: only a checkpoint tells.
            damage: |_, fr, _| {
                edit(&fr[9].path, |b| {
                    b[fr[9].offset + fr[9].len - 3] ^= 0x10;
                    fix_crcs(b, fr[9].offset);
                    for k in 10..12 {
                        let prev =
                            leaf_hash(&b[fr[k - 1].offset..fr[k - 1].offset + fr[k - 1].len]);
                        set_prev(b, fr[k].offset, prev);
                    }
                })
            },
            kinds: &[MISMATCH],
            place: |r, _| {
                let f = checkpoint_place(r, MISMATCH, 4);
                assert_eq!(f["leaves"], json!([6, 11]), "bounded by checkpoint #2/#3");
                assert!(f.get("cause").is_none(), "no frame-level cause: {f:#}");
            },
        },
        Case {
            name: "a torn tail in the newest segment",
            damage: |_, fr, _| {
                let half = vm_frame(12).bytes()[..40].to_vec();
                edit(&fr[11].path, |b| b.extend_from_slice(&half));
            },
            kinds: &["torn_tail"],
            place: |r, fr| {
                let f = the(r, "torn_tail");
                assert_eq!(f["file"], fr[11].name.as_str());
                assert_eq!(f["offset"], fr[11].offset + fr[11].len);
            },
        },
        Case {
            name: "a crash while creating a segment",
            damage: |data, _, _| {
                std::fs::write(data.join(SEGMENTS_DIR).join(segment_file_name(5)), b"MLS").unwrap()
            },
            kinds: &["torn_tail"],
            place: |r, _| {
                let f = the(r, "torn_tail");
                assert_eq!(f["file"], "0000000000000005.seg");
                assert_eq!(
                    (f["offset"].as_u64(), f["end"].as_u64()),
                    (Some(0), Some(3))
                );
            },
        },
        Case {
            name: "a forged checkpoint",
            damage: |data, _, _| {
                // The right key name and id, a signature by another key.
                let liar = SignerKey::generate(ORIGIN).unwrap();
                let body = Checkpoint {
                    origin: ORIGIN.into(),
                    size: 12,
                    root: [9; 32],
                    timestamp_unix_ns: now_ns(),
                }
                .body()
                .unwrap();
                let real = std::fs::read_to_string(data.join(CHECKPOINT_LOG_FILE)).unwrap();
                let id_line = real.lines().find(|l| l.starts_with('\u{2014}')).unwrap();
                let sig = liar.sign(body.as_bytes());
                let real_id = {
                    use base64::Engine;
                    let b64 = id_line.rsplit(' ').next().unwrap();
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap()[..4]
                        .to_vec()
                };
                let mut blob = real_id;
                blob.extend_from_slice(&sig);
                let note = format!("{body}\n\u{2014} {ORIGIN} {}\n", {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.encode(blob)
                });
                edit(&data.join(CHECKPOINT_LOG_FILE), |b| {
                    b.extend_from_slice(&encode_entry(note.as_bytes()))
                });
            },
            kinds: &["checkpoint_bad_signature"],
            place: |r, _| {
                checkpoint_place(r, "checkpoint_bad_signature", 5);
            },
        },
        Case {
            name: "a checkpoint edited in place (entry CRC recomputed)",
            damage: |data, _, _| {
                let path = data.join(CHECKPOINT_LOG_FILE);
                let bytes = std::fs::read(&path).unwrap();
                let mut out = Vec::new();
                for item in checkpoint_log::parse(&bytes) {
                    let checkpoint_log::Item::Entry(e) = item else {
                        panic!()
                    };
                    let mut note = String::from_utf8(e.note).unwrap();
                    if e.number == 2 {
                        note = note.replacen("\n6\n", "\n5\n", 1);
                    }
                    out.extend_from_slice(&encode_entry(note.as_bytes()));
                }
                std::fs::write(&path, out).unwrap();
            },
            kinds: &["checkpoint_bad_signature"],
            place: |r, _| {
                checkpoint_place(r, "checkpoint_bad_signature", 2);
            },
        },
        Case {
            name: "a swapped key",
            damage: |_, _, key| {
                // The verifier is handed another key of the same name (say, the attacker's).
                let other = SignerKey::generate(ORIGIN).unwrap();
                std::fs::write(key, format!("{}\n", other.verifier())).unwrap();
            },
            kinds: &[
                "checkpoint_wrong_key",
                "checkpoint_wrong_key",
                "checkpoint_wrong_key",
                "checkpoint_wrong_key",
                "no_checkpoints",
            ],
            place: |r, _| {
                for n in 1..=4 {
                    let f = checkpoint_place(r, "checkpoint_wrong_key", n);
                    assert!(
                        f["message"]
                            .as_str()
                            .unwrap()
                            .contains("not signed by the given key")
                    );
                }
            },
        },
        Case {
            name: "the checkpoint log deleted",
            damage: |data, _, _| std::fs::remove_file(data.join(CHECKPOINT_LOG_FILE)).unwrap(),
            kinds: &["no_checkpoints"],
            place: |r, _| {
                let f = the(r, "no_checkpoints");
                assert!(
                    f["message"]
                        .as_str()
                        .unwrap()
                        .contains("checkpoints.log is missing")
                );
            },
        },
        Case {
            name: "a checkpoint entry damaged",
            damage: |data, _, _| {
                let path = data.join(CHECKPOINT_LOG_FILE);
                let second = encode_entry(
                    match &checkpoint_log::parse(&std::fs::read(&path).unwrap())[0] {
                        checkpoint_log::Item::Entry(e) => e.note.clone(),
                        other => panic!("{other:?}"),
                    }
                    .as_slice(),
                )
                .len();
                flip(&path, second + 30, 0x02);
            },
            kinds: &["checkpoint_log_damaged"],
            place: |r, _| {
                let f = the(r, "checkpoint_log_damaged");
                assert_eq!(f["file"], CHECKPOINT_LOG_FILE);
                assert!(f["message"].as_str().unwrap().contains("CRC mismatch"));
            },
        },
    ]
}

#[test]
fn verify_names_every_kind_of_tampering_and_passes_the_untouched_store() {
    let (tmp, pristine, key, _) = signed_store();
    let frames = layout(&pristine);

    // Untouched: exit 0, no findings, every checkpoint verified.
    let (code, report) = verify_json(&pristine, &key);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["intact"], true);
    assert_eq!(report["findings"], json!([]));
    assert_eq!(report["tree_size"], 12);
    assert_eq!(report["frames"], 12);
    assert_eq!(report["records"], 24);
    assert_eq!(report["checkpoints"]["entries"], 4);
    assert_eq!(report["checkpoints"]["verified"], 4);
    assert_eq!(report["checkpoints"]["latest"]["size"], 12);
    assert_eq!(report["unsigned_leaves"], 0);
    let text = run(&[
        "verify",
        "--data-dir",
        pristine.to_str().unwrap(),
        "--public-key",
        key.to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.status.code(), Some(0), "{out}");
    assert!(
        out.contains("4 verified with example.com/meshlog+"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("INTACT"), "{out}");

    for (i, case) in cases().iter().enumerate() {
        let data = tmp.path().join(format!("case-{i}"));
        copy_dir(&pristine, &data);
        let moved: Vec<At> = frames
            .iter()
            .map(|f| At {
                path: data.join(SEGMENTS_DIR).join(&f.name),
                ..f.clone()
            })
            .collect();
        let case_key = tmp.path().join(format!("case-{i}.pub"));
        std::fs::copy(&key, &case_key).unwrap();
        (case.damage)(&data, &moved, &case_key);
        let (code, report) = verify_json(&data, &case_key);
        assert_eq!(code, 1, "{}: {report:#}", case.name);
        assert_eq!(report["intact"], false, "{}", case.name);
        let mut want = case.kinds.to_vec();
        want.sort();
        assert_eq!(kinds(&report), want, "{}: {report:#}", case.name);
        (case.place)(&report, &moved);
        // The text report says the same, and names the place.
        let text = run(&[
            "verify",
            "--data-dir",
            data.to_str().unwrap(),
            "--public-key",
            case_key.to_str().unwrap(),
        ]);
        assert_eq!(text.status.code(), Some(1), "{}", case.name);
        let out = String::from_utf8_lossy(&text.stdout);
        assert!(out.contains("NOT INTACT"), "{}: {out}", case.name);
        let first = &report["findings"][0];
        assert!(
            out.contains(&format!("[{}]", first["kind"].as_str().unwrap())),
            "{}: {out}",
            case.name
        );
        let err = String::from_utf8_lossy(&text.stderr);
        assert!(
            err.contains("the store is NOT intact"),
            "{}: {err}",
            case.name
        );
        println!("{}: {}", case.name, kinds(&report).join(", "));
    }
}

#[test]
fn verify_usage_errors_exit_2_and_unsigned_stores_say_so() {
    let (tmp, data, key, _) = signed_store();
    let d = data.to_str().unwrap();
    let missing = tmp.path().join("missing");
    let private = tmp.path().join("private.key");
    std::fs::write(
        &private,
        format!(
            "{}\n",
            SignerKey::generate(ORIGIN).unwrap().to_text().as_str()
        ),
    )
    .unwrap();
    for (args, needle) in [
        (vec!["verify", "--bogus"], "unexpected argument"),
        (
            vec!["verify", "--data-dir", missing.to_str().unwrap()],
            "does not exist",
        ),
        (
            vec![
                "verify",
                "--data-dir",
                d,
                "--public-key",
                missing.to_str().unwrap(),
            ],
            "missing",
        ),
        (
            vec![
                "verify",
                "--data-dir",
                d,
                "--public-key",
                private.to_str().unwrap(),
            ],
            "private signing key",
        ),
        (vec!["prove", "--data-dir", d], "required"),
        (
            vec!["prove", "--data-dir", d, "nonsense"],
            "expected VM_ID:SEQUENCE",
        ),
        (
            vec![
                "verify-proof",
                "--public-key",
                key.to_str().unwrap(),
                "/no/such/proof",
            ],
            "cannot read proof",
        ),
        (vec!["verify-proof", "proof.json"], "--public-key"),
    ] {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }

    // Without a key: structure checked, signatures not, and the report says so.
    let out = run(&["verify", "--data-dir", d, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["signatures_checked"], false);
    assert!(
        r["notes"][0]
            .as_str()
            .unwrap()
            .contains("signatures were not checked"),
        "{r:#}"
    );
    // ...but damage is still found.
    let frames = layout(&data);
    flip(&frames[3].path, frames[3].offset + frames[3].len - 2, 1);
    let out = run(&["verify", "--data-dir", d, "--json"]);
    assert_eq!(out.status.code(), Some(1));
}

// ---------------------------------------------------------------------------------------------
// Checkpoints from the real serve, proofs

/// The checkpoints in `data`'s log, verified with `key` (a retention class store's, in
/// `classes/<class>/`, with the key's class log key `<name>/<class>`).
pub(super) fn checkpoints(data: &Path, key: &VerifierKey) -> Vec<Checkpoint> {
    let in_class = data.parent().and_then(|p| p.file_name()) == Some("classes".as_ref());
    let class_key = data
        .file_name()
        .and_then(|c| c.to_str())
        .filter(|_| in_class)
        .map(|c| key.for_class(c).unwrap());
    let key = class_key.as_ref().unwrap_or(key);
    let bytes = std::fs::read(data.join(CHECKPOINT_LOG_FILE)).unwrap_or_default();
    checkpoint_log::parse(&bytes)
        .into_iter()
        .map(|i| match i {
            checkpoint_log::Item::Entry(e) => Checkpoint::verify(&e.note, key).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// OTLP/JSON with the filter's VM id and sequence numbers.
fn otlp_vm_json(seqs: &[u64]) -> Vec<u8> {
    let records: Vec<Value> = seqs
        .iter()
        .map(|s| {
            json!({
                "timeUnixNano": "1764000000000000000",
                "attributes": [
                    {"key": "meshlog.sequence", "value": {"intValue": s.to_string()}},
                    {"key": "meshlog.request_id", "value": {"stringValue": format!("p-{s}")}},
                ],
            })
        })
        .collect();
    serde_json::to_vec(&json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "meshlog.vm.id", "value": {"stringValue": VM}}]},
        "scopeLogs": [{"logRecords": records}],
    }]}))
    .unwrap()
}

#[test]
fn serve_signs_checkpoints_at_start_periodically_without_traffic_and_at_shutdown_and_proofs_verify()
{
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let printed = stdout_of(&run(&[
        "keygen",
        "--out",
        keys.to_str().unwrap(),
        "--name",
        ORIGIN,
    ]));
    let vkey = VerifierKey::parse(printed.trim()).unwrap();
    let public = keys.join("verifier.pub");
    // The public key can be exported again from the private one.
    let signing = keys.join("signing.key");
    let exported = stdout_of(&run(&["keygen", "--export", signing.to_str().unwrap()]));
    assert_eq!(exported, printed);
    let out = run(&["keygen", "--export", public.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a public key is not a signing key: a usage error"
    );
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("meshlog.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\n[integrity]\nsigning_key = {:?}\n\
             checkpoint_interval_s = 1\n",
            data.to_str().unwrap(),
            keys.join("signing.key").to_str().unwrap()
        ),
    )
    .unwrap();
    let mut serve = Proc::spawn(&["serve", "--config", cfg.to_str().unwrap()]);
    let addr = serve.addr();
    serve.wait_line("signing checkpoints");

    // No traffic: the start checkpoint and then one a second, all of the empty tree, each
    // later than the one before.
    let wait_for = |pred: &dyn Fn(&[Checkpoint]) -> bool| {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let cps = checkpoints(&data, &vkey);
            if pred(&cps) {
                return cps;
            }
            assert!(Instant::now() < end, "checkpoints so far: {cps:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let idle = wait_for(&|c| c.len() >= 3);
    assert!(
        idle.iter().all(|c| c.size == 0 && c.origin == ORIGIN),
        "{idle:?}"
    );
    assert!(
        idle.windows(2)
            .all(|w| w[1].timestamp_unix_ns > w[0].timestamp_unix_ns),
        "{idle:?}"
    );
    let gap = idle[2].timestamp_unix_ns - idle[1].timestamp_unix_ns;
    assert!(
        (500_000_000..3_000_000_000).contains(&gap),
        "periodic checkpoints {gap} ns apart, interval 1 s"
    );

    // Traffic: a periodic checkpoint covers it.
    for seqs in [[0u64, 1], [2, 3], [4, 5]] {
        let (status, body) = http_post(addr, JSON, &otlp_vm_json(&seqs));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    wait_for(&|c| c.last().is_some_and(|c| c.size == 3));
    // A periodic checkpoint may land between counting and the signal: count from the signal.
    let before_stop = checkpoints(&data, &vkey).len();
    let stop_ns = now_ns();
    assert_eq!(serve.terminate().code(), Some(0));
    let line = serve.wait_line("reason=\"shutdown\"");
    assert!(line.contains("size=3"), "{line}");
    let all = checkpoints(&data, &vkey);
    assert!(all.len() > before_stop, "one more at shutdown");
    let after_stop: Vec<_> = all
        .iter()
        .filter(|c| c.timestamp_unix_ns >= stop_ns)
        .collect();
    assert_eq!(
        after_stop.len(),
        1,
        "exactly one at shutdown: {after_stop:?}"
    );
    assert_eq!(all.last().unwrap().size, 3);
    assert!(all.last().unwrap().timestamp_unix_ns >= stop_ns);

    let (code, report) = verify_json(&data, &public);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["checkpoints"]["verified"], all.len());

    // An inclusion proof for record vm:3 (the second frame), checked with the public key only.
    let d = data.to_str().unwrap();
    let proof_path = tmp.path().join("proof.json");
    let out = run(&["prove", "--data-dir", d, &format!("{VM}:3")]);
    let proof_text = stdout_of(&out);
    std::fs::write(&proof_path, &proof_text).unwrap();
    let proof: Value = serde_json::from_str(&proof_text).unwrap();
    assert_eq!(proof["format"], "meshlog-inclusion-proof/1");
    assert_eq!(proof["leaf_index"], 1);
    assert_eq!(proof["tree_size"], 3);
    assert_eq!(proof["record"]["line"], 2);
    assert_eq!(proof["record"]["sequence"], 3);
    let rec: Value = serde_json::from_str(proof["record"]["text"].as_str().unwrap()).unwrap();
    assert_eq!(rec["meshlog.request_id"], "p-3");
    let verify_proof = |path: &Path| {
        run(&[
            "verify-proof",
            "--public-key",
            public.to_str().unwrap(),
            path.to_str().unwrap(),
        ])
    };
    let ok = verify_proof(&proof_path);
    let text = stdout_of(&ok);
    assert!(text.contains("is leaf 1 of that tree"), "{text}");
    assert!(text.contains(&format!("(vm {VM}, sequence 3)")), "{text}");
    assert!(text.trim_end().ends_with("VALID"), "{text}");
    // The same by leaf and line.
    let by_leaf: Value =
        serde_json::from_str(&stdout_of(&run(&["prove", "--data-dir", d, "1/2"]))).unwrap();
    assert_eq!(by_leaf["record"]["text"], proof["record"]["text"]);

    // Tampered proofs fail, saying why; a proof checked with another key fails too.
    let tampered = |name: &str, f: &dyn Fn(&mut Value)| {
        let mut p = proof.clone();
        f(&mut p);
        let path = tmp.path().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec(&p).unwrap()).unwrap();
        path
    };
    let other_key = tmp.path().join("other.pub");
    std::fs::write(
        &other_key,
        format!("{}\n", SignerKey::generate(ORIGIN).unwrap().verifier()),
    )
    .unwrap();
    for (path, needle, key) in [
        (
            tampered("text", &|p| {
                p["record"]["text"] =
                    json!(p["record"]["text"].as_str().unwrap().replace("p-3", "p-9"))
            }),
            "is not the record's text",
            &public,
        ),
        (
            tampered("seq", &|p| p["record"]["sequence"] = json!(5)),
            "sequence is not 5",
            &public,
        ),
        (
            tampered("path", &|p| {
                let h = p["inclusion_path"][0].as_str().unwrap().to_owned();
                let flipped = if h.starts_with('A') {
                    h.replacen('A', "B", 1)
                } else {
                    format!("A{}", &h[1..])
                };
                p["inclusion_path"][0] = json!(flipped);
            }),
            "is not leaf 1 of the signed tree",
            &public,
        ),
        (
            tampered("index", &|p| p["leaf_index"] = json!(0)),
            "is not leaf 0",
            &public,
        ),
        (
            tampered("size", &|p| {
                p["checkpoint"] = json!(
                    p["checkpoint"]
                        .as_str()
                        .unwrap()
                        .replacen("\n3\n", "\n4\n", 1)
                )
            }),
            "does not verify",
            &public,
        ),
        (proof_path.clone(), "not signed by key", &other_key),
    ] {
        let out = run(&[
            "verify-proof",
            "--public-key",
            key.to_str().unwrap(),
            path.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", path.display());
        assert!(err.contains("the proof is NOT valid"), "{err}");
        assert!(err.contains(needle), "{}: {err}", path.display());
    }

    // Consistency: the empty tree of the first checkpoints, and 3 leaves.
    let cons = tmp.path().join("consistency.json");
    let text = stdout_of(&run(&["prove", "--data-dir", d, "--consistency", "0", "3"]));
    std::fs::write(&cons, &text).unwrap();
    let out = stdout_of(&verify_proof(&cons));
    assert!(
        out.contains("the tree of 0 leaves is a prefix of the tree of 3"),
        "{out}"
    );
    // A tampered consistency proof (the new checkpoint swapped for the old) fails.
    let mut c: Value = serde_json::from_str(&text).unwrap();
    c["proof"] = json!(["47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="]);
    let bad = tmp.path().join("bad-consistency.json");
    std::fs::write(&bad, serde_json::to_vec(&c).unwrap()).unwrap();
    let out = verify_proof(&bad);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a prefix"));
    // No checkpoint of that size: refused with the sizes there are.
    let out = run(&["prove", "--data-dir", d, "--consistency", "1", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no checkpoint of size 1"));
}

#[test]
fn consistency_proofs_between_nonempty_checkpoints_and_a_record_not_yet_signed() {
    let (tmp, data, key, signer) = signed_store();
    let d = data.to_str().unwrap();
    let cons = tmp.path().join("c.json");
    std::fs::write(
        &cons,
        stdout_of(&run(&[
            "prove",
            "--data-dir",
            d,
            "--consistency",
            "6",
            "12",
        ])),
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&std::fs::read(&cons).unwrap()).unwrap();
    assert!(!v["proof"].as_array().unwrap().is_empty());
    let out = run(&[
        "verify-proof",
        "--public-key",
        key.to_str().unwrap(),
        cons.to_str().unwrap(),
    ]);
    let text = stdout_of(&out);
    assert!(
        text.contains("the tree of 6 leaves is a prefix of the tree of 12"),
        "{text}"
    );
    // Swapping the checkpoints' roles fails.
    let mut swapped = v.clone();
    swapped["old_checkpoint"] = v["new_checkpoint"].clone();
    swapped["new_checkpoint"] = v["old_checkpoint"].clone();
    std::fs::write(&cons, serde_json::to_vec(&swapped).unwrap()).unwrap();
    let out = run(&[
        "verify-proof",
        "--public-key",
        key.to_str().unwrap(),
        cons.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));

    // A frame written after the last checkpoint has no proof yet: append one with the store
    // opened without a signing key (chained, but no checkpoint covers it).
    let opts = StoreOptions {
        integrity: IntegrityOptions::default(),
        ..StoreOptions::default()
    };
    let store = open_retrying(&data, &opts);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(store.handle().append(vm_frame(12))).unwrap();
    store.close().unwrap();
    let out = run(&["prove", "--data-dir", d, &format!("{VM}:25")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no signed checkpoint covers leaf 12"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // verify is still intact (the new leaf is chained), and says it is not signed yet.
    let (code, report) = verify_json(&data, &key);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["unsigned_leaves"], 1);
    // Reopened with the key, the start checkpoint covers it.
    let opts = StoreOptions {
        integrity: IntegrityOptions {
            signer: Some(signer),
            checkpoint_interval: Duration::from_secs(3600),
        },
        ..StoreOptions::default()
    };
    open_retrying(&data, &opts).close().unwrap();
    let p: Value = serde_json::from_str(&stdout_of(&run(&[
        "prove",
        "--data-dir",
        d,
        &format!("{VM}:25"),
    ])))
    .unwrap();
    assert_eq!(p["leaf_index"], 12);
    assert_eq!(p["tree_size"], 13);

    // A forged checkpoint appended to the log does not stop proofs: the latest entry that
    // matches the store is used, and the proof verifies.
    let forged = Checkpoint {
        origin: ORIGIN.into(),
        size: 13,
        root: [9; 32],
        timestamp_unix_ns: now_ns(),
    }
    .sign(&SignerKey::generate(ORIGIN).unwrap())
    .unwrap();
    edit(&data.join(CHECKPOINT_LOG_FILE), |b| {
        b.extend_from_slice(&encode_entry(forged.as_bytes()))
    });
    let path = tmp.path().join("after-forgery.json");
    std::fs::write(
        &path,
        stdout_of(&run(&["prove", "--data-dir", d, &format!("{VM}:25")])),
    )
    .unwrap();
    let out = run(&[
        "verify-proof",
        "--public-key",
        key.to_str().unwrap(),
        path.to_str().unwrap(),
    ]);
    assert!(stdout_of(&out).contains("VALID"));
    let (code, report) = verify_json(&data, &key);
    assert_eq!(code, 1);
    assert_eq!(kinds(&report), ["checkpoint_wrong_key"]);
}

// ---------------------------------------------------------------------------------------------
// Consequences under their cause

#[test]
fn one_flipped_byte_before_many_checkpoints_is_one_finding_and_one_grouped_mismatch() {
    // 40 runs of the store, a frame each: checkpoints at every start and shutdown (80, sizes
    // 0, 1, 1, 2, 2, ..., 40), as a long-running serve signs one a minute.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let signer = Arc::new(SignerKey::generate(ORIGIN).unwrap());
    let public = tmp.path().join("verifier.pub");
    write_verifier_key(&public, &signer.verifier()).unwrap();
    let opts = StoreOptions {
        integrity: IntegrityOptions {
            signer: Some(signer.clone()),
            checkpoint_interval: Duration::from_secs(3600),
        },
        ..StoreOptions::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for i in 0..40 {
        let store = open_retrying(&data, &opts);
        rt.block_on(store.handle().append(vm_frame(i))).unwrap();
        store.close().unwrap();
    }
    let cps = checkpoints(&data, &signer.verifier());
    assert_eq!(cps.len(), 80);
    // A byte of leaf 2's payload flipped: every checkpoint over more than 2 leaves differs.
    let frames = layout(&data);
    flip(&frames[2].path, frames[2].offset + frames[2].len - 3, 0x10);
    let over: Vec<usize> = (1..=cps.len()).filter(|n| cps[n - 1].size > 2).collect();
    assert_eq!(over.len(), 75);

    let (code, report) = verify_json(&data, &public);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(kinds(&report), ["checkpoint_root_mismatch", "modified"]);
    frame_place(&report, "modified", &frames[2], 2);
    grouped_under(&report, "modified", 75, [over[0] as u64, 80]);
    let g = the(&report, MISMATCH);
    assert_eq!(g["sizes"], json!([3, 40]));
    assert_eq!(
        g["leaves"],
        json!([2, 39]),
        "checkpoints over 2 leaves still match"
    );
    assert_eq!(g["cause"]["leaf"], 2);

    // The text report: the cause, then the count under it, not 75 lines.
    let out = run(&[
        "verify",
        "--data-dir",
        data.to_str().unwrap(),
        "--public-key",
        public.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("[checkpoint_root_mismatch]").count(),
        1,
        "{text}"
    );
    assert!(text.contains("NOT INTACT: 2 findings"), "{text}");
    assert!(
        text.contains("75 checkpoints from size 3 to size 40 do not match the store"),
        "{text}"
    );
    let cause = text.find("[modified]").unwrap();
    let group = text.find("=> [checkpoint_root_mismatch]").unwrap();
    assert!(cause < group, "the group is under its cause: {text}");
    println!("{text}");
}
