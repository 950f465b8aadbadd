//! Encryption at rest with the real binary: with `[encryption] key_file` set, no record field
//! and no corpus secret is anywhere in the data directory in plain (and with it off the same
//! search finds every one, so the search works); a missing, wrong or too-old key file and
//! tampered data are told apart, naming key id, key file, segment and offset; rotation by
//! `keygen --data-key` and a restart; a plain store keeps reading its old frames once
//! encryption is on; recovery needs no key; an unknown critical extension is still refused.

use super::*;
use base64::Engine;
use meshlog_format::frame::{FRAME_HEADER_PREFIX_LEN, FrameHeader, frame_header_len};
use meshlog_server::ingest::{BATCH_ID_HEADER, DUPLICATE_HEADER};
use meshlog_tlog::keys::Keyring;
use std::collections::BTreeSet;

// ---------------------------------------------------------------------------------------------
// Helpers

/// A data directory, a key file and a config file naming both, in one temp dir.
struct Setup {
    tmp: tempfile::TempDir,
    data: PathBuf,
    keys: PathBuf,
    cfg: PathBuf,
}

impl Setup {
    /// With `encrypted`, a fresh key file (one key) in the config; else a config without it.
    fn new(encrypted: bool) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let keys = tmp.path().join("data.keys");
        let cfg = tmp.path().join("meshlog.toml");
        let s = Setup {
            tmp,
            data,
            keys,
            cfg,
        };
        s.write_config(encrypted);
        if encrypted {
            s.keygen();
        }
        s
    }

    fn write_config(&self, encrypted: bool) {
        // Redaction at the collector off: the secrets must reach the store for the search to
        // prove anything (with it on they are redacted before they are written).
        let mut text = format!(
            "data_dir = {:?}\n[redaction]\nenabled = false\n",
            self.data.to_str().unwrap()
        );
        if encrypted {
            text.push_str(&format!(
                "[encryption]\nkey_file = {:?}\n",
                self.keys.to_str().unwrap()
            ));
        }
        std::fs::write(&self.cfg, text).unwrap();
    }

    /// Adds a data key (`meshlog keygen --data-key`); returns its id.
    fn keygen(&self) -> String {
        let out = run(&["keygen", "--data-key", self.keys.to_str().unwrap()]);
        stdout_of(&out).trim().to_owned()
    }

    fn serve(&self) -> Proc {
        let cfg = self.cfg.to_str().unwrap();
        Proc::spawn(&["serve", "--config", cfg, "--listen", "127.0.0.1:0"])
    }

    fn query(&self, extra: &[&str]) -> std::process::Output {
        let mut args = vec!["query"];
        args.extend_from_slice(extra);
        run(&args)
    }

    /// Records via `query --config`.
    fn records(&self) -> Vec<Value> {
        let out = self.query(&["--config", self.cfg.to_str().unwrap()]);
        stdout_of(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// POSTs OTLP/JSON with a batch id; returns the status and whether it was a duplicate.
fn post(addr: SocketAddr, batch_id: &str, body: &[u8]) -> (u16, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /v1/logs HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {JSON}\r\n\
         {BATCH_ID_HEADER}: {batch_id}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let duplicate = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with(DUPLICATE_HEADER));
    (status, duplicate)
}

/// OTLP/JSON with one log record per entry, each with these string attributes.
fn otlp_attrs(service: &str, records: &[Vec<(&str, String)>]) -> Vec<u8> {
    let records: Vec<Value> = records
        .iter()
        .map(|attrs| {
            let attrs: Vec<Value> = attrs
                .iter()
                .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}}))
                .collect();
            json!({"timeUnixNano": "1764000000000000000", "attributes": attrs})
        })
        .collect();
    serde_json::to_vec(&json!({
        "resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeLogs": [{"scope": {"name": "meshlog"}, "logRecords": records}]
        }]
    }))
    .unwrap()
}

/// One batch of one record with this request id.
fn one(service: &str, id: &str) -> Vec<u8> {
    otlp_attrs(service, &[vec![("meshlog.request_id", id.to_owned())]])
}

/// Everything `p` wrote to stderr, once it has exited.
fn stderr_all(p: &mut Proc) -> String {
    while let Ok(l) = p.lines.recv_timeout(Duration::from_secs(10)) {
        p.seen.push(l);
    }
    p.seen.join("\n")
}

/// The key ids of every frame, in order (from headers: no key needed).
fn frame_keys(data: &Path) -> Vec<Option<String>> {
    reader::frames(data)
        .unwrap()
        .map(|f| f.unwrap().key_id().map(str::to_owned))
        .collect()
}

/// Offset and header length of every frame of a segment file.
fn frame_bounds(seg: &Path) -> Vec<(usize, usize)> {
    let bytes = std::fs::read(seg).unwrap();
    let mut out = Vec::new();
    let mut at = 8;
    while at < bytes.len() {
        let prefix: [u8; FRAME_HEADER_PREFIX_LEN] =
            bytes[at..at + FRAME_HEADER_PREFIX_LEN].try_into().unwrap();
        let hlen = frame_header_len(&prefix).unwrap();
        let h = FrameHeader::decode(&bytes[at..at + hlen]).unwrap();
        out.push((at, hlen));
        at += hlen + h.payload_len as usize;
    }
    out
}

/// The exit status and stderr of a command that must fail.
fn failure(out: &std::process::Output) -> (Option<i32>, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The labelled corpus generator (`tests/src/corpus_gen.rs`), shared with core's and the
/// end-to-end tests: the secrets are generated, so the test needs nothing beside the repository.
#[path = "../../../tests/src/corpus_gen.rs"]
mod corpus_gen;

/// A sample of the generated PII corpus's secrets: up to `per_kind` of each kind, in corpus
/// order (every kind of the corpus, from e-mail addresses to vendor API tokens).
fn corpus_secrets(per_kind: usize) -> Vec<(String, String)> {
    let mut per: std::collections::HashMap<String, usize> = Default::default();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for r in corpus_gen::corpus() {
        for (kind, value) in r.secrets {
            let n = per.entry(kind.clone()).or_default();
            if *n < per_kind && seen.insert(value.clone()) {
                *n += 1;
                out.push((kind, value));
            }
        }
    }
    out
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Searches every file under `dir` for each needle: in its raw bytes, and in the output of
/// every zstd frame that decodes from any offset where the zstd magic appears. Returns the
/// needles found and the number of zstd frames decoded.
fn search(dir: &Path, needles: &[String]) -> (BTreeSet<String>, usize) {
    let mut hay = Vec::new();
    let mut zstd_frames = 0;
    for f in files(dir) {
        let bytes = std::fs::read(&f).unwrap();
        for (i, w) in bytes.windows(4).enumerate() {
            if w != [0x28, 0xB5, 0x2F, 0xFD] {
                continue;
            }
            let mut out = Vec::new();
            let Ok(dec) = zstd::stream::read::Decoder::new(&bytes[i..]) else {
                continue;
            };
            // Whatever decodes before an error counts; at most 64 MiB per frame.
            let _ = dec.single_frame().take(64 << 20).read_to_end(&mut out);
            if !out.is_empty() {
                zstd_frames += 1;
                hay.push(out);
            }
        }
        hay.push(bytes);
    }
    // Lossy UTF-8 keeps every valid sequence, so a needle (valid UTF-8) is found in it exactly
    // where its bytes are; `str::contains` is fast even in a debug build.
    let hay: Vec<String> = hay
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    let found = needles
        .iter()
        .filter(|n| hay.iter().any(|h| h.contains(n.as_str())))
        .cloned()
        .collect();
    (found, zstd_frames)
}

/// What a test wrote: batch ids, needles (every field value, and every secret verbatim and
/// as escaped in JSON), and serve's stderr.
struct Corpus {
    batch_ids: Vec<String>,
    needles: Vec<String>,
    secrets: usize,
    stderr: String,
}

/// Runs serve on `s`, stores records carrying corpus secrets and distinctive values, sends one
/// malformed body that quotes a secret, and stops serve.
fn store_corpus(s: &Setup) -> Corpus {
    let secrets = corpus_secrets(12);
    assert!(secrets.len() >= 150, "sample of {} secrets", secrets.len());
    let kinds: BTreeSet<&str> = secrets.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.len(), corpus_gen::KINDS.len(), "kinds {kinds:?}");
    let service = "svc-okapi-7c1e9d";
    let mut needles = vec![service.to_owned()];
    let mut records = Vec::new();
    for (i, (kind, secret)) in secrets.iter().enumerate() {
        let fields = vec![
            ("meshlog.request_id", format!("req-quokka-{i:04}")),
            ("url.path", format!("/ledger/axolotl-{i:04}/entries")),
            ("user_agent.original", format!("NarwhalClient/{i}.{i}")),
            ("app.secret_kind", format!("kind-marmot-{kind}")),
            // Stored verbatim: `[redaction] enabled = false` in this test's config.
            ("app.secret", secret.clone()),
            ("url.query", format!("token={secret}&page={i}")),
        ];
        for (_, v) in &fields {
            needles.push(v.clone());
            // As NDJSON writes it (differs only for secrets with quotes, backslashes, ...).
            let escaped = serde_json::to_string(v).unwrap();
            needles.push(escaped[1..escaped.len() - 1].to_owned());
        }
        records.push(fields);
    }
    needles.sort();
    needles.dedup();
    let mut serve = s.serve();
    let addr = serve.addr();
    let mut batch_ids = Vec::new();
    for (b, chunk) in records.chunks(20).enumerate() {
        let id = format!("vm-enc-0001:{}-{}", b * 20 + 1, b * 20 + chunk.len());
        assert_eq!(post(addr, &id, &otlp_attrs(service, chunk)), (200, false));
        batch_ids.push(id);
    }
    // A malformed body whose decoder error quotes a secret: refused, and not in the log.
    let (_, secret) = &secrets[0];
    let bad = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"attributes": secret}]}]}]});
    let (status, _) = post(addr, "vm-enc-0001:0-0", bad.to_string().as_bytes());
    assert_eq!(status, 400);
    assert_eq!(serve.terminate().code(), Some(0));
    let stderr = stderr_all(&mut serve);
    assert!(stderr.contains("rejected: invalid OTLP/JSON"), "{stderr}");
    Corpus {
        batch_ids,
        needles,
        secrets: secrets.len(),
        stderr,
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn with_encryption_on_no_field_value_or_corpus_secret_is_in_the_data_directory() {
    // Off first: the same search must find everything, or it proves nothing.
    let plain = Setup::new(false);
    let c = store_corpus(&plain);
    let (found, zstd_frames) = search(&plain.data, &c.needles);
    let missed: Vec<_> = c.needles.iter().filter(|n| !found.contains(*n)).collect();
    assert!(missed.is_empty(), "plain store: search missed {missed:?}");
    assert!(
        zstd_frames >= c.batch_ids.len(),
        "{zstd_frames} zstd frames"
    );
    assert!(c.stderr.contains("encryption at rest off"), "{}", c.stderr);

    let sealed = Setup::new(true);
    let c = store_corpus(&sealed);
    let (found, zstd_frames) = search(&sealed.data, &c.needles);
    assert!(
        found.is_empty(),
        "encrypted store: {} of {} values in plain: {found:?}",
        found.len(),
        c.needles.len()
    );
    eprintln!(
        "encrypted store: 0 of {} needles ({} corpus secrets, each verbatim and JSON-escaped, \
         plus every other field value) in {} files, raw or in {zstd_frames} decodable zstd \
         frames",
        c.needles.len(),
        c.secrets,
        files(&sealed.data).len()
    );
    // Batch ids are metadata and stay plain (recovery and dedup read them without a key).
    let (ids, _) = search(&sealed.data, &c.batch_ids);
    assert_eq!(ids.len(), c.batch_ids.len());
    // The log carries no record content either (the malformed body's secret included).
    let leaked: Vec<_> = c.needles.iter().filter(|n| c.stderr.contains(*n)).collect();
    assert!(
        leaked.is_empty(),
        "in serve's log: {leaked:?}\n{}",
        c.stderr
    );
    // And the records are all there, for whoever has the key file.
    let records = sealed.records();
    assert_eq!(records.len(), c.secrets);
    let (_, first) = &corpus_secrets(12)[0];
    assert_eq!(records[0]["app.secret"], first.as_str());
    assert_eq!(frame_keys(&sealed.data).len(), c.batch_ids.len());
    assert!(frame_keys(&sealed.data).iter().all(Option::is_some));
}

#[test]
fn query_without_the_key_or_with_a_wrong_one_says_which_and_tampering_is_caught() {
    let s = Setup::new(true);
    let id = Keyring::load(&s.keys).unwrap().current().id().to_owned();
    let mut serve = s.serve();
    let addr = serve.addr();
    assert_eq!(post(addr, "q:1-1", &one("enc", "e1")).0, 200);
    assert_eq!(post(addr, "q:2-2", &one("enc", "e2")).0, 200);
    assert_eq!(serve.terminate().code(), Some(0));
    let data = s.data.to_str().unwrap();
    let seg = seg1(&s.data);
    let frames = frame_bounds(&seg);
    let (second, second_hlen) = frames[1];

    // No key file at all.
    let (code, err) = failure(&s.query(&["--data-dir", data]));
    assert_eq!(code, Some(1), "{err}");
    for needle in [
        "0000000000000001.seg, frame at offset 8 is encrypted with data-encryption key",
        &format!("key {id:?}, and no key file was given (--key-file FILE"),
    ] {
        assert!(err.contains(needle), "{err} lacks {needle:?}");
    }

    // The same id with other key bytes: authentication fails.
    let wrong = s.tmp.path().join("wrong.keys");
    let b64 = base64::engine::general_purpose::STANDARD.encode([0x5a; 32]);
    std::fs::write(&wrong, format!("{id} {b64}\n")).unwrap();
    let (code, err) =
        failure(&s.query(&["--data-dir", data, "--key-file", wrong.to_str().unwrap()]));
    assert_eq!(code, Some(1), "{err}");
    for needle in [
        format!(
            "0000000000000001.seg, frame at offset 8: authentication failed with \
             data-encryption key {id:?} from {}",
            wrong.display()
        ),
        "wrong key".into(),
        "or tampered data".into(),
    ] {
        assert!(err.contains(&needle), "{err} lacks {needle:?}");
    }

    // A key file without the id: names the id, the file and what it has.
    let other = s.tmp.path().join("other.keys");
    std::fs::write(&other, format!("k-other {b64}\n")).unwrap();
    let (code, err) =
        failure(&s.query(&["--data-dir", data, "--key-file", other.to_str().unwrap()]));
    assert_eq!(code, Some(1), "{err}");
    let needle = format!(
        "encrypted with data-encryption key {id:?}, which the key file {} does not have (it has k-other)",
        other.display()
    );
    assert!(err.contains(&needle), "{err} lacks {needle:?}");

    // A key file that does not load: exit 2 (usage), naming it.
    let missing = s.tmp.path().join("missing.keys");
    let (code, err) =
        failure(&s.query(&["--data-dir", data, "--key-file", missing.to_str().unwrap()]));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("cannot load the keys for encryption at rest"),
        "{err}"
    );
    assert!(err.contains("missing.keys"), "{err}");

    // The right key file, from the config or the flag, reads everything.
    let ids = |out: std::process::Output| -> Vec<String> {
        stdout_of(&out)
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["meshlog.request_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(
        ids(s.query(&["--config", s.cfg.to_str().unwrap()])),
        ["e1", "e2"]
    );
    assert_eq!(
        ids(s.query(&["--data-dir", data, "--key-file", s.keys.to_str().unwrap()])),
        ["e1", "e2"]
    );

    // Tampering: one ciphertext byte changed, both CRCs made to match again.
    let good = std::fs::read(&seg).unwrap();
    let mut bad = good.clone();
    let mut h = FrameHeader::decode(&bad[second..second + second_hlen]).unwrap();
    let payload = second + second_hlen..second + second_hlen + h.payload_len as usize;
    bad[payload.start + 3] ^= 0x10;
    h.payload_crc = crc32fast::hash(&bad[payload.clone()]);
    bad[second..second + second_hlen].copy_from_slice(&h.encode());
    std::fs::write(&seg, &bad).unwrap();
    let out = s.query(&["--config", s.cfg.to_str().unwrap()]);
    let (code, err) = failure(&out);
    assert_eq!(code, Some(1));
    let needle = format!("0000000000000001.seg, frame at offset {second}: authentication failed");
    assert!(err.contains(&needle) && err.contains("tampered"), "{err}");
    // The frame before it was printed: damage is reported where it is.
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);

    // Recovery needs no key: serve without [encryption] cuts a torn tail and starts.
    std::fs::write(&seg, &good[..good.len() - 3]).unwrap();
    let mut plain = Proc::spawn(&["serve", "--data-dir", data, "--listen", "127.0.0.1:0"]);
    let warn = plain.wait_line("cut the torn or corrupt tail");
    assert!(warn.contains(&format!("offset={second}")), "{warn}");
    plain.addr();
    assert_eq!(plain.terminate().code(), Some(0));
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), second as u64);
    assert_eq!(ids(s.query(&["--config", s.cfg.to_str().unwrap()])), ["e1"]);
}

#[test]
fn a_new_data_key_and_a_restart_seal_new_frames_and_old_ones_stay_readable() {
    let s = Setup::new(true);
    let first = Keyring::load(&s.keys).unwrap().current().id().to_owned();
    let old_keys = s.tmp.path().join("before-rotation.keys");
    std::fs::copy(&s.keys, &old_keys).unwrap();
    let mut serve = s.serve();
    let line = serve.wait_line("encryption at rest on");
    assert!(
        line.contains(&format!("sealed with data-encryption key {first}")),
        "{line}"
    );
    let addr = serve.addr();
    assert_eq!(post(addr, "r:1-1", &one("rot", "before")).0, 200);
    assert_eq!(serve.terminate().code(), Some(0));

    let second = s.keygen();
    assert_ne!(first, second);
    let mut serve = s.serve();
    let line = serve.wait_line("encryption at rest on");
    assert!(
        line.contains(&format!("sealed with data-encryption key {second}")),
        "{line}"
    );
    assert!(line.contains("keys=2"), "{line}");
    let addr = serve.addr();
    assert_eq!(post(addr, "r:2-2", &one("rot", "after")).0, 200);
    // The old batch id is still known: a retry from before the rotation is a duplicate.
    assert_eq!(post(addr, "r:1-1", &one("rot", "before")), (200, true));
    assert_eq!(serve.terminate().code(), Some(0));
    // The log names keys by id only: no key bytes.
    let log = stderr_all(&mut serve);
    for line in std::fs::read_to_string(&s.keys)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
    {
        let b64 = line.split_whitespace().nth(1).unwrap();
        assert!(!log.contains(b64), "key bytes in the log:\n{log}");
    }

    assert_eq!(
        frame_keys(&s.data),
        [Some(first.clone()), Some(second.clone())]
    );
    let got: Vec<String> = s
        .records()
        .iter()
        .map(|r| r["meshlog.request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ["before", "after"]);
    // A copy of the key file from before the rotation lacks the new key, and says so.
    let out = s.query(&[
        "--data-dir",
        s.data.to_str().unwrap(),
        "--key-file",
        old_keys.to_str().unwrap(),
    ]);
    let (code, err) = failure(&out);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!("key {second:?}, which the key file")),
        "{err}"
    );
    assert!(err.contains(&format!("(it has {first})")), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "the old frame reads"
    );
}

#[test]
fn a_plain_store_keeps_its_old_frames_readable_once_encryption_is_on() {
    let s = Setup::new(false);
    // Version-1 frames (the fixture), then a plain version-2 frame with a batch id.
    let segs = s.data.join(SEGMENTS_DIR);
    std::fs::create_dir_all(&segs).unwrap();
    let v1 = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/v1-segment.seg"
    ))
    .unwrap();
    std::fs::write(segs.join(segment_file_name(1)), &v1).unwrap();
    let mut serve = s.serve();
    let addr = serve.addr();
    assert_eq!(post(addr, "p:1-1", &one("mixed", "plain-v2")), (200, false));
    assert_eq!(serve.terminate().code(), Some(0));
    let plain_len = std::fs::metadata(seg1(&s.data)).unwrap().len() as usize;

    // Turn it on.
    s.write_config(true);
    let id = s.keygen();
    let mut serve = s.serve();
    let addr = serve.addr();
    assert_eq!(
        post(addr, "p:2-2", &one("mixed", "sealed-v2")),
        (200, false)
    );
    // A plain frame's batch id still deduplicates.
    assert_eq!(post(addr, "p:1-1", &one("mixed", "plain-v2")), (200, true));
    assert_eq!(serve.terminate().code(), Some(0));

    let bytes = std::fs::read(seg1(&s.data)).unwrap();
    assert_eq!(&bytes[..v1.len()], &v1[..], "old frames never rewritten");
    assert_eq!(frame_keys(&s.data), [None, None, None, Some(id.clone())]);
    let got: Vec<String> = s
        .records()
        .iter()
        .map(|r| r["meshlog.request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ["v1-a", "v1-b", "v1-c", "plain-v2", "sealed-v2"]);
    // Without the key: the plain frames print, the sealed one is refused by name.
    let out = s.query(&["--data-dir", s.data.to_str().unwrap()]);
    let (code, err) = failure(&out);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!(
            "offset {plain_len} is encrypted with data-encryption key {id:?}"
        )),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);
}

#[test]
fn an_unknown_critical_extension_is_still_refused_not_cut() {
    let s = Setup::new(true);
    let mut serve = s.serve();
    let addr = serve.addr();
    assert_eq!(post(addr, "c:1-1", &one("crit", "c1")).0, 200);
    assert_eq!(serve.terminate().code(), Some(0));
    // A copy of the sealed frame with one more, unknown, critical entry (CRC made to match):
    // what a newer build might write.
    let seg = seg1(&s.data);
    let mut bytes = std::fs::read(&seg).unwrap();
    let (at, hlen) = frame_bounds(&seg)[0];
    let frame = bytes[at..].to_vec();
    let area_len = u16::from_le_bytes([frame[20], frame[21]]);
    let mut h = frame[..hlen - 4].to_vec();
    h[20..22].copy_from_slice(&(area_len + 4).to_le_bytes());
    h.extend_from_slice(&0x8042u16.to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes());
    let crc = crc32fast::hash(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    let second = bytes.len();
    bytes.extend_from_slice(&h);
    bytes.extend_from_slice(&frame[hlen..]);
    std::fs::write(&seg, &bytes).unwrap();

    let out = s.query(&["--config", s.cfg.to_str().unwrap()]);
    let (code, err) = failure(&out);
    assert_eq!(code, Some(1));
    let needle = format!(
        "0000000000000001.seg is damaged at offset {second}: unknown critical frame extension 0x8042"
    );
    assert!(err.contains(&needle), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let out = run(&[
        "serve",
        "--config",
        s.cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let (code, err) = failure(&out);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&needle) && err.contains("refuses to start"),
        "{err}"
    );
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "nothing cut");
}

#[test]
fn a_bad_key_file_stops_serve_naming_file_and_line() {
    let s = Setup::new(true);
    // Missing.
    std::fs::remove_file(&s.keys).unwrap();
    let out = run(&[
        "serve",
        "--config",
        s.cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let (code, err) = failure(&out);
    // A key file that does not load is a usage error: exit 2.
    assert_eq!(code, Some(2));
    assert!(
        err.contains("cannot load the keys for encryption at rest"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}: opening", s.keys.display())),
        "{err}"
    );
    // Malformed on line 2: named, and no key material echoed.
    std::fs::write(&s.keys, "# keys\nk1 c2VjcmV0\n").unwrap();
    let out = run(&[
        "serve",
        "--config",
        s.cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let (code, err) = failure(&out);
    assert_eq!(code, Some(2), "a key file that is not one is a usage error");
    assert!(
        err.contains("line 2: key \"k1\" is 6 bytes; expected 32"),
        "{err}"
    );
    assert!(!err.contains("c2VjcmV0"), "{err}");
    assert!(!s.data.exists(), "nothing started");
}

#[test]
fn prove_opens_sealed_frames_with_the_key_and_says_sealed_without_it() {
    let s = Setup::new(true);
    let kdir = s.tmp.path().join("signing");
    let made = run(&["keygen", "--out", kdir.to_str().unwrap()]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mut cfg = std::fs::read_to_string(&s.cfg).unwrap();
    cfg.push_str(&format!(
        "[integrity]\nsigning_key = {:?}\n",
        kdir.join("signing.key").to_str().unwrap()
    ));
    std::fs::write(&s.cfg, cfg).unwrap();
    let mut serve = s.serve();
    assert_eq!(post(serve.addr(), "p:1-1", &one("enc", "sealed-e1")).0, 200);
    assert_eq!(serve.terminate().code(), Some(0));
    let data = s.data.to_str().unwrap();

    // Without the key: not "no record", but which frame is sealed and how to open it.
    let (code, err) = failure(&run(&["prove", "--data-dir", data, "0/1"]));
    assert_eq!(code, Some(1), "{err}");
    for needle in ["sealed", "leaf 0", "--key-file FILE or --config FILE"] {
        assert!(err.contains(needle), "{err} lacks {needle:?}");
    }
    assert!(!err.contains("no record 0/1 in the store"), "{err}");

    // With the key file, and with the configuration naming it: a proof that verifies.
    for extra in [
        ["--key-file", s.keys.to_str().unwrap()],
        ["--config", s.cfg.to_str().unwrap()],
    ] {
        let mut args = vec!["prove", "--data-dir", data];
        args.extend_from_slice(&extra);
        args.push("0/1");
        let out = run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let proof: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(proof["leaf_index"], 0);
        assert!(
            proof["record"]["text"]
                .as_str()
                .unwrap()
                .contains("sealed-e1"),
            "{proof}"
        );
        let file = s.tmp.path().join("proof.json");
        std::fs::write(&file, &out.stdout).unwrap();
        let pubkey = kdir.join("verifier.pub");
        let checked = run(&[
            "verify-proof",
            "--public-key",
            pubkey.to_str().unwrap(),
            file.to_str().unwrap(),
        ]);
        assert!(
            checked.status.success(),
            "{}",
            String::from_utf8_lossy(&checked.stderr)
        );
        // Inclusion is proven; the sealed content is said to be unchecked, not passed off.
        assert!(
            stdout_of(&checked).contains("the record's content could NOT be checked"),
            "{}",
            stdout_of(&checked)
        );
    }
}
